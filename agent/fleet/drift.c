/* SPDX-License-Identifier: MIT */
/* Drift in an instance's writable layer, its rules: what an entry of the
 * upper layer means (drift_classify()) and a scan of the whole layer at once.
 * The inotify watch (drift_watch.c) reports the same things through the same
 * rules (fleet_internal.h, docs/quarantine.md). */
#include "fleet_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "sandbox.h"
#include "macro.h"

const char *drift_kind_name(enum drift_kind kind)
{
	switch (kind) {
	case DRIFT_WRITE_OUTSIDE_WRITABLE:
		return "write-outside-writable";
	case DRIFT_NEW_EXECUTABLE:
		return "new-executable";
	case DRIFT_DELETE_OUTSIDE_WRITABLE:
		return "delete-outside-writable";
	case DRIFT_EVENTS_LOST:
		return "events-lost";
	}
	return "unknown";
}

bool drift_path_writable(const char *path, char *const *writable, size_t n_writable)
{
	for (size_t i = 0; i < n_writable; i++) {
		const char *e = writable[i];
		size_t len;

		if (!e || e[0] != '/')
			continue;
		len = strlen(e);
		while (len > 0 && e[len - 1] == '/')
			len--;
		if (len == 0)
			return true;
		if (strncmp(path, e, len) == 0 && (path[len] == '\0' || path[len] == '/'))
			return true;
	}
	return false;
}

/* One directory below dirfd, never through a symlink. */
int drift_open_dir(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

/* upper/ + rel ("" or "/a/b"), one O_NOFOLLOW component at a time. */
int drift_open_upper(int upper_fd, const char *rel)
{
	_cleanup_close_ int fd = drift_open_dir(upper_fd, "upper");
	char name[NAME_MAX + 1];

	if (fd < 0)
		return fd;
	for (const char *p = rel; *p;) {
		size_t len;
		int next;

		while (*p == '/')
			p++;
		len = strcspn(p, "/");
		if (len == 0)
			break;
		if (len > NAME_MAX)
			return -ENAMETOOLONG;
		memcpy(name, p, len);
		name[len] = '\0';
		if (streq(name, ".") || streq(name, ".."))
			return -EINVAL;
		next = drift_open_dir(fd, name);
		if (next < 0)
			return next;
		closep(&fd);
		fd = next;
		p += len;
	}
	return TAKE_FD(fd);
}

/* A regular file with an x bit, or whose first bytes are an ELF or #! header. */
static bool regular_is_executable(int dirfd, const char *name, const struct stat *st)
{
	_cleanup_close_ int fd = -1;
	unsigned char head[4];
	struct stat now;
	ssize_t n;

	if (st->st_mode & 0111)
		return true;
	fd = openat(dirfd, name,
		    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_NOATIME | O_CLOEXEC);
	if (fd < 0 && errno == EPERM)
		fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &now) < 0 || !S_ISREG(now.st_mode))
		return false;
	if (now.st_mode & 0111)
		return true;
	n = pread(fd, head, sizeof(head), 0);
	if (n >= 4 && memcmp(head,
			     "\x7f"
			     "ELF",
			     4) == 0)
		return true;
	return n >= 2 && head[0] == '#' && head[1] == '!';
}

static bool dir_is_opaque(int fd)
{
	static const char *const names[] = {"trusted.overlay.opaque", "user.overlay.opaque"};
	char value[4];

	for (size_t i = 0; i < ELEMENTSOF(names); i++) {
		ssize_t n = fgetxattr(fd, names[i], value, sizeof(value));
		if (n >= 1 && value[0] == 'y')
			return true;
	}
	return false;
}

/* Report what one entry of the upper layer means. dirfd is its directory,
 * path its full path from the instance root. For a directory, fd (>= 0)
 * is the open directory (opacity). */
int drift_classify(struct drift_sink *s, int dirfd, const char *name, const char *path,
		   const struct stat *st, int fd)
{
	bool writable = drift_path_writable(path, s->writable, s->n_writable);
	int r;

	switch (st->st_mode & S_IFMT) {
	case S_IFDIR:
		if (!writable && fd >= 0 && dir_is_opaque(fd))
			return s->emit(s, DRIFT_DELETE_OUTSIDE_WRITABLE, path);
		return 0;
	case S_IFCHR:
		if (major(st->st_rdev) == 0 && minor(st->st_rdev) == 0)
			return writable ? 0 : s->emit(s, DRIFT_DELETE_OUTSIDE_WRITABLE, path);
		break;
	case S_IFREG:
		if (regular_is_executable(dirfd, name, st)) {
			r = s->emit(s, DRIFT_NEW_EXECUTABLE, path);
			if (r != 0)
				return r;
		}
		break;
	default:
		break;
	}
	return writable ? 0 : s->emit(s, DRIFT_WRITE_OUTSIDE_WRITABLE, path);
}

/* path + "/" + name into buf; a path too long for an event ends in "/...". */
void drift_join(char *buf, size_t size, const char *path, const char *name)
{
	int n = snprintf(buf, size, "%s/%s", path, name);

	if (n < 0 || (size_t)n >= size)
		memcpy(buf + size - 5, "/...", 5);
}

/* Everything below the open directory dirfd, whose path is path, at once
 * (drift_scan; the watch, drift_watch.c, reads in slices). */
static int walk(struct drift_sink *s, int dirfd, const char *path, unsigned depth)
{
	_cleanup_free_ char *child = NULL;
	int fd, r = 0;
	DIR *d;

	if (depth > DRIFT_MAX_DEPTH)
		return s->emit(s, DRIFT_EVENTS_LOST, path);
	child = malloc(DRIFT_PATH_MAX);
	if (!child)
		return -ENOMEM;
	fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		r = -errno;
		close(fd);
		return r;
	}
	for (struct dirent *de; r == 0 && (errno = 0, de = readdir(d));) {
		_cleanup_close_ int sub = -1;
		struct stat st;

		if (streq(de->d_name, ".") || streq(de->d_name, ".."))
			continue;
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue; /* gone meanwhile */
		drift_join(child, DRIFT_PATH_MAX, path, de->d_name);
		if (S_ISDIR(st.st_mode))
			sub = drift_open_dir(dirfd, de->d_name);
		r = drift_classify(s, dirfd, de->d_name, child, &st, sub);
		if (r == 0 && sub >= 0)
			r = walk(s, sub, child, depth + 1);
	}
	closedir(d);
	return r;
}

/* drift_scan()'s caller, as a sink's userdata */
struct scan_target {
	drift_scan_cb cb;
	void *userdata;
};

static int scan_emit(struct drift_sink *s, enum drift_kind kind, const char *path)
{
	const struct scan_target *t = s->userdata;
	struct drift_event *ev;
	int r;

	if (!t->cb)
		return 0;
	ev = malloc(sizeof(*ev));
	if (!ev)
		return -ENOMEM;
	ev->kind = kind;
	snprintf(ev->path, sizeof(ev->path), "%s", path[0] ? path : "/");
	r = t->cb(ev, t->userdata);
	free(ev);
	return r;
}

int drift_scan(int upper_fd, char *const *writable, size_t n_writable, drift_scan_cb cb,
	       void *userdata)
{
	struct scan_target target = {.cb = cb, .userdata = userdata};
	struct drift_sink s = {
	    .emit = scan_emit,
	    .writable = writable,
	    .n_writable = n_writable,
	    .userdata = &target,
	};
	_cleanup_close_ int fd = drift_open_upper(upper_fd, "");

	if (fd < 0)
		return fd;
	return walk(&s, fd, "", 0);
}
