/* SPDX-License-Identifier: MIT */
/* Drift in an instance's writable layer: a scan and an inotify watch that
 * report the same things (drift.h, docs/quarantine.md). */
#include "drift.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "macro.h"

#define DRIFT_MAX_DEPTH 256
#define DRIFT_MAX_WATCHES 65536
#define DRIFT_PENDING_MAX 1024
#define DRIFT_RECENT 256
#define DRIFT_WATCH_MASK                                                                           \
	(IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE | IN_ATTRIB | IN_ONLYDIR | IN_EXCL_UNLINK)

struct watch_entry {
	int wd;
	char *path; /* "" for upper/ itself, else "/a/b" */
};

struct pending {
	enum drift_kind kind;
	char *path;
};

struct drift_watch {
	int inotify_fd;
	int upper_fd; /* not owned */
	char **writable;
	size_t n_writable;
	struct watch_entry *watches;
	size_t n_watches;
	struct pending pending[DRIFT_PENDING_MAX];
	size_t pending_head, n_pending;
	bool lost; /* an events-lost report is queued or due */
	uint64_t recent[DRIFT_RECENT];
	size_t recent_next;
};

/* Where a walk sends what it finds. */
struct sink {
	int (*emit)(struct sink *s, enum drift_kind kind, const char *path);
	char *const *writable;
	size_t n_writable;
	struct drift_watch *watch; /* add watches to directories (watch mode) */
	drift_scan_cb cb;
	void *userdata;
};

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
static int open_dir_at(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

/* upper/ + rel ("" or "/a/b"), one O_NOFOLLOW component at a time. */
static int open_upper_path(int upper_fd, const char *rel)
{
	_cleanup_close_ int fd = open_dir_at(upper_fd, "upper");
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
		next = open_dir_at(fd, name);
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
static int classify(struct sink *s, int dirfd, const char *name, const char *path,
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
static void join(char *buf, size_t size, const char *path, const char *name)
{
	int n = snprintf(buf, size, "%s/%s", path, name);

	if (n < 0 || (size_t)n >= size)
		memcpy(buf + size - 5, "/...", 5);
}

static int watch_add(struct drift_watch *w, int dirfd, const char *path);

/* Everything below the open directory dirfd (whose path is path); adds
 * inotify watches in watch mode. */
static int walk(struct sink *s, int dirfd, const char *path, unsigned depth)
{
	_cleanup_free_ char *child = NULL;
	DIR *d;
	int fd, r = 0;

	if (depth > DRIFT_MAX_DEPTH)
		return s->emit(s, DRIFT_EVENTS_LOST, path);
	if (s->watch) {
		r = watch_add(s->watch, dirfd, path);
		if (r < 0)
			return r;
	}
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
		join(child, DRIFT_PATH_MAX, path, de->d_name);
		if (S_ISDIR(st.st_mode))
			sub = open_dir_at(dirfd, de->d_name);
		r = classify(s, dirfd, de->d_name, child, &st, sub);
		if (r == 0 && sub >= 0)
			r = walk(s, sub, child, depth + 1);
	}
	closedir(d);
	return r;
}

static int scan_emit(struct sink *s, enum drift_kind kind, const char *path)
{
	struct drift_event *ev;
	int r;

	if (!s->cb)
		return 0;
	ev = malloc(sizeof(*ev));
	if (!ev)
		return -ENOMEM;
	ev->kind = kind;
	snprintf(ev->path, sizeof(ev->path), "%s", path[0] ? path : "/");
	r = s->cb(ev, s->userdata);
	free(ev);
	return r;
}

int drift_scan(int upper_fd, char *const *writable, size_t n_writable, drift_scan_cb cb,
	       void *userdata)
{
	struct sink s = {
	    .emit = scan_emit,
	    .writable = writable,
	    .n_writable = n_writable,
	    .cb = cb,
	    .userdata = userdata,
	};
	_cleanup_close_ int fd = open_upper_path(upper_fd, "");

	if (fd < 0)
		return fd;
	return walk(&s, fd, "", 0);
}

/* --- the watch ---------------------------------------------------------------- */

static uint64_t report_hash(enum drift_kind kind, const char *path)
{
	uint64_t h = 1469598103934665603ull ^ (uint64_t)kind;

	for (const unsigned char *p = (const unsigned char *)path; *p; p++)
		h = (h ^ *p) * 1099511628211ull;
	return h | 1; /* 0 marks an empty slot */
}

static int watch_emit(struct sink *s, enum drift_kind kind, const char *path)
{
	struct drift_watch *w = s->watch;
	uint64_t h = report_hash(kind, path);
	struct pending *p;

	if (kind == DRIFT_EVENTS_LOST) {
		w->lost = true;
		return 0;
	}
	for (size_t i = 0; i < DRIFT_RECENT; i++)
		if (w->recent[i] == h)
			return 0; /* reported lately */
	if (w->n_pending >= DRIFT_PENDING_MAX) {
		w->lost = true;
		return 0;
	}
	p = &w->pending[(w->pending_head + w->n_pending) % DRIFT_PENDING_MAX];
	p->path = strdup(path[0] ? path : "/");
	if (!p->path) {
		w->lost = true;
		return 0;
	}
	p->kind = kind;
	w->n_pending++;
	w->recent[w->recent_next] = h;
	w->recent_next = (w->recent_next + 1) % DRIFT_RECENT;
	return 0;
}

static struct watch_entry *watch_find(struct drift_watch *w, int wd)
{
	for (size_t i = 0; i < w->n_watches; i++)
		if (w->watches[i].wd == wd)
			return &w->watches[i];
	return NULL;
}

/* inotify on the open directory; a directory watched already (moved) gets
 * its new path. */
static int watch_add(struct drift_watch *w, int dirfd, const char *path)
{
	char proc[64];
	struct watch_entry *e;
	char *copy;
	int wd;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", dirfd);
	wd = inotify_add_watch(w->inotify_fd, proc, DRIFT_WATCH_MASK);
	if (wd < 0) {
		if (errno == ENOSPC || errno == ENOMEM) {
			w->lost = true; /* out of watches: only a scan sees below */
			return 0;
		}
		return -errno;
	}
	copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	e = watch_find(w, wd);
	if (e) {
		free(e->path);
		e->path = copy;
		return 0;
	}
	if (w->n_watches >= DRIFT_MAX_WATCHES) {
		free(copy);
		(void)inotify_rm_watch(w->inotify_fd, wd);
		w->lost = true;
		return 0;
	}
	if (w->n_watches % 64 == 0) {
		struct watch_entry *n = realloc(w->watches, (w->n_watches + 64) * sizeof(*n));
		if (!n) {
			free(copy);
			(void)inotify_rm_watch(w->inotify_fd, wd);
			return -ENOMEM;
		}
		w->watches = n;
	}
	w->watches[w->n_watches++] = (struct watch_entry){.wd = wd, .path = copy};
	return 0;
}

static void watch_forget(struct drift_watch *w, int wd)
{
	struct watch_entry *e = watch_find(w, wd);

	if (!e)
		return;
	free(e->path);
	*e = w->watches[--w->n_watches];
}

static struct sink watch_sink(struct drift_watch *w)
{
	return (struct sink){
	    .emit = watch_emit,
	    .writable = w->writable,
	    .n_writable = w->n_writable,
	    .watch = w,
	};
}

static int rescan(struct drift_watch *w)
{
	struct sink s = watch_sink(w);
	_cleanup_close_ int fd = open_upper_path(w->upper_fd, "");

	if (fd < 0)
		return fd;
	return walk(&s, fd, "", 0);
}

/* One inotify event: what it names, and below it when a directory arrived. */
static int handle(struct drift_watch *w, const struct inotify_event *ev)
{
	struct sink s = watch_sink(w);
	_cleanup_free_ char *path = NULL, *parent_path = NULL;
	_cleanup_close_ int parent = -1, sub = -1;
	struct watch_entry *e;
	const char *name;
	struct stat st;
	int r;

	if (ev->mask & IN_Q_OVERFLOW)
		return rescan(w);
	if (ev->mask & IN_IGNORED) {
		watch_forget(w, ev->wd);
		return 0;
	}
	e = watch_find(w, ev->wd);
	if (!e)
		return 0;
	path = malloc(DRIFT_PATH_MAX);
	if (!path)
		return -ENOMEM;
	if (ev->len > 0 && ev->name[0]) {
		parent_path = strdup(e->path);
		name = ev->name;
		join(path, DRIFT_PATH_MAX, e->path, name);
	} else {
		/* the directory itself (IN_ATTRIB: opaque now?) */
		char *slash = strrchr(e->path, '/');

		if (!slash)
			return 0; /* upper/ itself */
		parent_path = strndup(e->path, (size_t)(slash - e->path));
		name = slash + 1;
		snprintf(path, DRIFT_PATH_MAX, "%s", e->path);
	}
	if (!parent_path)
		return -ENOMEM;
	parent = open_upper_path(w->upper_fd, parent_path);
	if (parent < 0)
		return 0; /* gone, or replaced by a symlink: nothing to read there */
	if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	if (S_ISDIR(st.st_mode))
		sub = open_dir_at(parent, name);
	r = classify(&s, parent, name, path, &st, sub);
	if (r == 0 && sub >= 0 && (ev->mask & (IN_CREATE | IN_MOVED_TO)))
		r = walk(&s, sub, path, 1);
	return r;
}

int drift_watch_new(int upper_fd, char *const *writable, size_t n_writable,
		    struct drift_watch **ret)
{
	struct drift_watch *w;
	int r;

	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->upper_fd = upper_fd;
	w->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->inotify_fd < 0) {
		r = -errno;
		free(w);
		return r;
	}
	w->writable = calloc(n_writable + 1, sizeof(char *));
	if (!w->writable) {
		drift_watch_free(w);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n_writable; i++) {
		w->writable[i] = strdup(writable[i]);
		if (!w->writable[i]) {
			drift_watch_free(w);
			return -ENOMEM;
		}
		w->n_writable++;
	}
	r = rescan(w);
	if (r < 0) {
		drift_watch_free(w);
		return r;
	}
	*ret = w;
	return 0;
}

int drift_watch_fd(const struct drift_watch *w)
{
	return w->inotify_fd;
}

static size_t drain(struct drift_watch *w, struct drift_event *events, size_t n, size_t k)
{
	while (k < n && w->n_pending > 0) {
		struct pending *p = &w->pending[w->pending_head];

		events[k].kind = p->kind;
		snprintf(events[k].path, sizeof(events[k].path), "%s", p->path);
		free(p->path);
		p->path = NULL;
		w->pending_head = (w->pending_head + 1) % DRIFT_PENDING_MAX;
		w->n_pending--;
		k++;
	}
	if (k < n && w->n_pending == 0 && w->lost) {
		events[k].kind = DRIFT_EVENTS_LOST;
		snprintf(events[k].path, sizeof(events[k].path), "/");
		w->lost = false;
		k++;
	}
	return k;
}

int drift_watch_read(struct drift_watch *w, struct drift_event *events, size_t n, size_t *ret_n)
{
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
	size_t k = 0;

	k = drain(w, events, n, k);
	while (k < n && w->n_pending == 0) {
		ssize_t len = read(w->inotify_fd, buf, sizeof(buf));

		if (len < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || k > 0)
				break;
			return -errno;
		}
		for (char *p = buf; p < buf + len;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;

			/* What cannot be looked at now is for a scan to find. */
			if (handle(w, ev) < 0)
				w->lost = true;
			p += sizeof(*ev) + ev->len;
		}
		k = drain(w, events, n, k);
	}
	*ret_n = k;
	return 0;
}

void drift_watch_free(struct drift_watch *w)
{
	if (!w)
		return;
	closep(&w->inotify_fd);
	for (size_t i = 0; i < w->n_watches; i++)
		free(w->watches[i].path);
	free(w->watches);
	for (size_t i = 0; i < w->n_pending; i++)
		free(w->pending[(w->pending_head + i) % DRIFT_PENDING_MAX].path);
	for (size_t i = 0; w->writable && i < w->n_writable; i++)
		free(w->writable[i]);
	free(w->writable);
	free(w);
}
