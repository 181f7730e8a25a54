/* SPDX-License-Identifier: MIT */
#include "fleet_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "macro.h"

#define IDS_FILE "instance-ids"
/* Numbers stay far below what "mtdi" + digits fits in IFNAMSIZ. */
#define NUMBER_MAX 99999999999ull

struct instance_ids {
	int dir_fd;
	uint64_t next;	   /* the number instance_ids_next hands out */
	uint64_t reserved; /* numbers below this are reserved on disk */
};

DEFINE_TRIVIAL_CLEANUP_FUNC(struct instance_ids *, instance_ids_free);

/* "123\n" exactly: digits, no sign, no leading zero, at most NUMBER_MAX. */
static int parse_number(const char *s, size_t len, uint64_t *ret)
{
	uint64_t v = 0;

	if (len == 0 || (s[0] == '0' && len > 1))
		return -EBADMSG;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9' || v > NUMBER_MAX / 10)
			return -EBADMSG;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > NUMBER_MAX)
		return -EBADMSG;
	*ret = v;
	return 0;
}

static int read_reserved(int dir_fd, uint64_t *ret)
{
	char buf[32];
	ssize_t n;
	_cleanup_close_ int fd = openat(dir_fd, IDS_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf));
	if (n < 0)
		return -errno;
	if (n < 2 || n == (ssize_t)sizeof(buf) || buf[n - 1] != '\n')
		return -EBADMSG;
	return parse_number(buf, (size_t)n - 1, ret);
}

/* The highest N of the SERVICE-N entries kept under quarantine/. */
static uint64_t highest_quarantined(int dir_fd)
{
	_cleanup_close_ int fd = openat(dir_fd, "quarantine", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	uint64_t highest = 0;
	struct dirent *de;
	DIR *d;

	if (fd < 0 || !(d = fdopendir(fd)))
		return 0;
	fd = -1;
	while ((de = readdir(d))) {
		const char *dash = strrchr(de->d_name, '-');
		uint64_t v;

		if (dash && parse_number(dash + 1, strlen(dash + 1), &v) == 0 && v > highest)
			highest = v;
	}
	closedir(d);
	return highest;
}

static int write_reserved(int dir_fd, uint64_t reserved)
{
	char buf[32], tmp[] = "." IDS_FILE ".tmp";
	int len = snprintf(buf, sizeof(buf), "%llu\n", (unsigned long long)reserved);
	_cleanup_close_ int fd =
	    openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	int r = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, buf, (size_t)len) != len || fsync(fd) < 0)
		r = errno ? -errno : -EIO;
	if (r == 0 && renameat(dir_fd, tmp, dir_fd, IDS_FILE) < 0)
		r = -errno;
	if (r == 0 && fsync(dir_fd) < 0)
		r = -errno;
	if (r < 0)
		(void)unlinkat(dir_fd, tmp, 0);
	return r;
}

static int reserve_block(struct instance_ids *ids)
{
	uint64_t end = ids->next + INSTANCE_IDS_BLOCK;
	int r;

	if (end > NUMBER_MAX)
		return -ERANGE;
	r = write_reserved(ids->dir_fd, end);
	if (r < 0)
		return r;
	ids->reserved = end;
	return 0;
}

int instance_ids_open(const char *state_dir, struct instance_ids **ret_ids)
{
	_cleanup_(instance_ids_freep) struct instance_ids *ids = calloc(1, sizeof(*ids));
	uint64_t start;
	int r;

	if (!ids)
		return -ENOMEM;
	ids->dir_fd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (ids->dir_fd < 0)
		return -errno;
	/* Everything below the saved end may have been used by the agent that
	 * saved it; without the file, everything kept in quarantine was. */
	r = read_reserved(ids->dir_fd, &start);
	if (r == -ENOENT)
		start = highest_quarantined(ids->dir_fd) + 1;
	else if (r < 0)
		return r;
	ids->next = start;
	r = reserve_block(ids);
	if (r < 0)
		return r;
	*ret_ids = TAKE_PTR(ids);
	return 0;
}

int instance_ids_next(struct instance_ids *ids, uint64_t *ret_number)
{
	if (ids->next >= ids->reserved) {
		int r = reserve_block(ids);
		if (r < 0)
			return r;
	}
	*ret_number = ids->next++;
	return 0;
}

void instance_ids_free(struct instance_ids *ids)
{
	if (!ids)
		return;
	if (ids->dir_fd >= 0)
		close(ids->dir_fd);
	free(ids);
}
