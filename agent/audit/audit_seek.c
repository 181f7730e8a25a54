/* SPDX-License-Identifier: MIT */
/* Binary search for a seq in the audit log files (audit.h). */
#include "audit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"

#define SEEK_CHUNK 4096
#define SEQ_PREFIX "{\"seq\":"
#define LINE_MAX_BYTES (64 * 1024 + 1) /* a record line and its newline (audit_internal.h) */

char *audit_file_name(const char *log_path, unsigned file)
{
	char *name;

	if (file == 0)
		return strdup(log_path);
	if (asprintf(&name, "%s.%u", log_path, file) < 0)
		return NULL;
	return name;
}

/* The seq of the line that starts at off; false when it is not a record. */
static bool seq_at(int fd, uint64_t off, uint64_t *ret_seq)
{
	char buf[32];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, (off_t)off);
	const size_t plen = strlen(SEQ_PREFIX);
	uint64_t seq = 0;
	size_t i;

	if (n < (ssize_t)plen + 1)
		return false;
	buf[n] = '\0';
	if (memcmp(buf, SEQ_PREFIX, plen) != 0)
		return false;
	for (i = plen; buf[i] >= '0' && buf[i] <= '9' && i < plen + 16; i++)
		seq = seq * 10 + (uint64_t)(buf[i] - '0');
	if (i == plen || buf[i] != ',')
		return false;
	*ret_seq = seq;
	return true;
}

/* The first line that starts at or after off (size when none). */
static uint64_t line_start_at_or_after(int fd, uint64_t off, uint64_t size)
{
	char buf[SEEK_CHUNK];
	uint64_t pos;

	if (off == 0)
		return 0;
	/* A line starts at off when the byte before it is a newline. */
	for (pos = off - 1; pos < size && pos < off - 1 + LINE_MAX_BYTES;) {
		ssize_t n = pread(fd, buf, sizeof(buf), (off_t)pos);
		char *nl;

		if (n <= 0)
			return size;
		nl = memchr(buf, '\n', (size_t)n);
		if (nl)
			return pos + (uint64_t)(nl - buf) + 1;
		pos += (uint64_t)n;
	}
	return size;
}

/* The first line of fd with seq > since; lines that are not records count
 * as older (they are skipped by the reader anyway). */
static uint64_t search(int fd, uint64_t size, uint64_t since)
{
	uint64_t lo = 0, hi = size;

	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		uint64_t start = line_start_at_or_after(fd, mid, size), seq = 0;

		if (start >= size || (seq_at(fd, start, &seq) && seq > since))
			hi = mid;
		else
			lo = start + 1 > mid + 1 ? start + 1 : mid + 1;
	}
	return line_start_at_or_after(fd, lo, size);
}

int audit_seek(const char *log_path, unsigned keep, uint64_t since, unsigned *ret_file,
	       uint64_t *ret_offset)
{
	unsigned oldest = 0;

	/* Newest first: the first file that begins at or before since + 1
	 * holds it. */
	for (unsigned i = 0; i <= keep; i++) {
		_cleanup_free_ char *name = audit_file_name(log_path, i);
		_cleanup_close_ int fd = -1;
		struct stat st;
		uint64_t first;

		if (!name)
			return -ENOMEM;
		fd = open(name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
		if (fd < 0) {
			if (i == 0)
				return -errno;
			if (errno == ENOENT)
				break; /* files are kept without gaps */
			continue;
		}
		if (fstat(fd, &st) < 0)
			return -errno;
		oldest = i;
		if (st.st_size == 0 || !seq_at(fd, 0, &first) || first > since + 1)
			continue;
		*ret_file = i;
		*ret_offset = search(fd, (uint64_t)st.st_size, since);
		return 0;
	}
	*ret_file = oldest;
	*ret_offset = 0;
	return 0;
}
