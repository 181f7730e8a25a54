/* SPDX-License-Identifier: MIT */
/* The bottom of agent/quarantine/: the store directory, entry ids, and the
 * bounded file helpers (read, load JSON, remove a tree) every other file of
 * the folder uses. It calls none of them. */
#include "quarantine.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "quarantine_internal.h"

bool quarantine_id_valid(const char *id)
{
	size_t n;

	if (!id || !((id[0] >= 'a' && id[0] <= 'z') || (id[0] >= '0' && id[0] <= '9')))
		return false;
	for (n = 1; id[n]; n++) {
		char c = id[n];
		if (n >= QUARANTINE_ID_MAX)
			return false;
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* STATE_DIR/quarantine, created (0700) when missing. */
int quarantine_open_store(const char *state_dir, bool create)
{
	_cleanup_close_ int state = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int fd;

	if (state < 0)
		return -errno;
	if (create && mkdirat(state, "quarantine", 0700) < 0 && errno != EEXIST)
		return -errno;
	fd = openat(state, "quarantine", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int quarantine_rm_rf_at(int at, const char *name, unsigned depth)
{
	_cleanup_close_ int fd = -1;
	DIR *d;
	int r = 0;

	if (unlinkat(at, name, 0) == 0)
		return 0;
	if (errno == ENOENT)
		return depth == 0 ? -ENOENT : 0;
	if (errno != EISDIR && errno != EPERM)
		return -errno;
	if (depth > QUARANTINE_MAX_DEPTH + 4)
		return -ELOOP;
	fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d)
		return -errno;
	fd = -1; /* the DIR owns it */
	for (struct dirent *de; (de = readdir(d));) {
		int k;

		if (streq(de->d_name, ".") || streq(de->d_name, ".."))
			continue;
		k = quarantine_rm_rf_at(dirfd(d), de->d_name, depth + 1);
		if (k < 0 && r == 0)
			r = k;
	}
	closedir(d);
	if (r == 0 && unlinkat(at, name, AT_REMOVEDIR) < 0)
		r = -errno;
	return r;
}

int quarantine_read_at(int at, const char *name, size_t max, char **ret, size_t *ret_size)
{
	_cleanup_close_ int fd = openat(at, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	_cleanup_free_ char *buf = NULL;
	size_t n = 0, cap = 0;
	struct stat st;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EBADF;
	for (;;) {
		ssize_t k;

		if (n + 1 >= cap) {
			char *nb;

			if (cap > max)
				return -EFBIG;
			cap = cap ? cap * 2 : 4096;
			nb = realloc(buf, cap);
			if (!nb)
				return -ENOMEM;
			buf = nb;
		}
		k = read(fd, buf + n, cap - n - 1);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (k == 0)
			break;
		n += (size_t)k;
		if (n > max)
			return -EFBIG;
	}
	if (!buf && !(buf = calloc(1, 1)))
		return -ENOMEM;
	buf[n] = '\0';
	*ret = TAKE_PTR(buf);
	if (ret_size)
		*ret_size = n;
	return 0;
}

int quarantine_load_json_at(int at, const char *name, json_t **ret)
{
	_cleanup_free_ char *text = NULL;
	size_t n;
	json_t *j;
	int r;

	r = quarantine_read_at(at, name, QUARANTINE_JSON_MAX, &text, &n);
	if (r < 0)
		return r;
	j = json_loadb(text, n, JSON_REJECT_DUPLICATES, NULL);
	if (!j)
		return -EBADMSG;
	*ret = j;
	return 0;
}
