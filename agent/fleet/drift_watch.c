/* SPDX-License-Identifier: MIT */
/* Drift in an instance's writable layer, as it happens: an inotify watch on
 * every directory of upper/, added as directories appear, its reports queued
 * and handed out in slices (fleet_internal.h). What an entry means is
 * drift.c's (drift_classify()): the watch and drift_scan() report the same
 * things. */
#include "fleet_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sandbox.h"
#include "macro.h"

#define DRIFT_MAX_WATCHES 65536
#define DRIFT_PENDING_MAX 1024
#define DRIFT_RECENT 256
/* inotify events handled per drift_watch_read(): a storm of new directories
 * (each one a watch to add and a directory to read) is taken in slices */
#define DRIFT_EVENTS_PER_READ 64
#define DRIFT_WATCH_MASK                                                                           \
	(IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE | IN_ATTRIB | IN_ONLYDIR | IN_EXCL_UNLINK)

/* A watched directory: its name in its parent's, so a directory renamed
 * with everything below it changes one entry, whatever it holds. Its path is
 * put together from the parents when an event names it. */
struct watch_entry {
	int wd;
	int parent; /* the parent's wd; -1 for upper/ itself */
	char *name; /* "" for upper/ itself */
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
	/* wd -> position in watches + 1 (0: empty), open addressing: an event
	 * finds its watch in constant time however many there are */
	uint32_t *index;
	size_t index_cap; /* a power of two, at least twice n_watches */
	struct pending pending[DRIFT_PENDING_MAX];
	size_t pending_head, n_pending;
	bool lost; /* an events-lost report is queued or due */
	uint64_t recent[DRIFT_RECENT];
	size_t recent_next;
	/* inotify events read and not yet handled: a read handles at most
	 * DRIFT_EVENTS_PER_READ, the rest wait here for the next */
	char events[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
	size_t events_len, events_off;
	/* Directories still to be read, taken in slices like the events: a
	 * new directory (what was made in it before its watch), or the whole
	 * layer after an inotify queue overflow. Depth first, top last. */
	struct walk_frame {
		DIR *dir;
		int wd;
		unsigned level; /* below upper/ */
		bool moving;	/* a watched directory met below was renamed there */
		char *path;
	} * stack;
	size_t depth, stack_cap;
};

static uint64_t report_hash(enum drift_kind kind, const char *path)
{
	uint64_t h = 1469598103934665603ull ^ (uint64_t)kind;

	for (const unsigned char *p = (const unsigned char *)path; *p; p++)
		h = (h ^ *p) * 1099511628211ull;
	return h | 1; /* 0 marks an empty slot */
}

static int watch_emit(struct drift_sink *s, enum drift_kind kind, const char *path)
{
	struct drift_watch *w = s->userdata;
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

static size_t slot_of(const struct drift_watch *w, int wd)
{
	return ((uint32_t)wd * 2654435761u) & (w->index_cap - 1);
}

static struct watch_entry *watch_find(struct drift_watch *w, int wd)
{
	if (w->index_cap == 0)
		return NULL;
	for (size_t i = slot_of(w, wd);; i = (i + 1) & (w->index_cap - 1)) {
		uint32_t pos = w->index[i];

		if (pos == 0)
			return NULL;
		if (w->watches[pos - 1].wd == wd)
			return &w->watches[pos - 1];
	}
}

static void index_put(struct drift_watch *w, size_t pos)
{
	size_t i = slot_of(w, w->watches[pos].wd);

	while (w->index[i] != 0)
		i = (i + 1) & (w->index_cap - 1);
	w->index[i] = (uint32_t)pos + 1;
}

/* Room for one more watch: the array and an index at most half full. */
static int watch_reserve(struct drift_watch *w)
{
	if (w->n_watches % 64 == 0) {
		struct watch_entry *n = realloc(w->watches, (w->n_watches + 64) * sizeof(*n));

		if (!n)
			return -ENOMEM;
		w->watches = n;
	}
	if ((w->n_watches + 1) * 2 > w->index_cap) {
		size_t cap = w->index_cap ? w->index_cap * 2 : 128;
		uint32_t *index = calloc(cap, sizeof(*index));

		if (!index)
			return -ENOMEM;
		free(w->index);
		w->index = index;
		w->index_cap = cap;
		for (size_t pos = 0; pos < w->n_watches; pos++)
			index_put(w, pos);
	}
	return 0;
}

/* inotify on the open directory, name in the watched parent; a directory
 * watched already (renamed) gets its new place, *ret_known. */
static int watch_add(struct drift_watch *w, int dirfd, int parent, const char *name, int *ret_wd,
		     bool *ret_known)
{
	char proc[64];
	struct watch_entry *e;
	char *copy;
	int wd, r;

	*ret_wd = -1;
	*ret_known = false;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", dirfd);
	wd = inotify_add_watch(w->inotify_fd, proc, DRIFT_WATCH_MASK);
	if (wd < 0) {
		if (errno == ENOSPC || errno == ENOMEM) {
			w->lost = true; /* out of watches: only a scan sees below */
			return 0;
		}
		return -errno;
	}
	copy = strdup(name);
	if (!copy)
		return -ENOMEM;
	*ret_wd = wd;
	e = watch_find(w, wd);
	if (e) {
		free(e->name);
		e->name = copy;
		e->parent = parent;
		*ret_known = true;
		return 0;
	}
	if (w->n_watches >= DRIFT_MAX_WATCHES) {
		free(copy);
		(void)inotify_rm_watch(w->inotify_fd, wd);
		*ret_wd = -1;
		w->lost = true;
		return 0;
	}
	r = watch_reserve(w);
	if (r < 0) {
		free(copy);
		(void)inotify_rm_watch(w->inotify_fd, wd);
		*ret_wd = -1;
		return r;
	}
	w->watches[w->n_watches] = (struct watch_entry){.wd = wd, .parent = parent, .name = copy};
	index_put(w, w->n_watches++);
	return 0;
}

static void watch_forget(struct drift_watch *w, int wd)
{
	struct watch_entry *e = watch_find(w, wd);
	size_t pos, last;

	if (!e)
		return;
	pos = (size_t)(e - w->watches);
	last = w->n_watches - 1;
	free(e->name);
	w->watches[pos] = w->watches[last];
	w->n_watches--;
	/* Positions changed: rebuild the index (a directory's removal, not
	 * a hot path; rename and create never get here). */
	memset(w->index, 0, w->index_cap * sizeof(*w->index));
	for (size_t i = 0; i < w->n_watches; i++)
		index_put(w, i);
}

/* The path of a watched directory from its parents: "" for upper/, else
 * "/a/b". -ENOENT when a parent is no longer watched. */
static int watch_path(struct drift_watch *w, const struct watch_entry *e, char *buf, size_t size)
{
	const struct watch_entry *chain[DRIFT_MAX_DEPTH + 2];
	size_t n = 0, len = 0;

	while (e && e->parent >= 0) {
		if (n == ELEMENTSOF(chain))
			return -ELOOP;
		chain[n++] = e;
		e = watch_find(w, e->parent);
	}
	if (!e)
		return -ENOENT;
	buf[0] = '\0';
	while (n > 0) {
		int k = snprintf(buf + len, size - len, "/%s", chain[--n]->name);

		if (k < 0 || (size_t)k >= size - len) {
			memcpy(buf + size - 5, "/...", 5);
			return 0;
		}
		len += (size_t)k;
	}
	return 0;
}

static struct drift_sink watch_sink(struct drift_watch *w)
{
	return (struct drift_sink){
	    .emit = watch_emit,
	    .writable = w->writable,
	    .n_writable = w->n_writable,
	    .userdata = w,
	};
}

static void walk_stop(struct drift_watch *w)
{
	while (w->depth > 0) {
		struct walk_frame *f = &w->stack[--w->depth];

		closedir(f->dir);
		free(f->path);
	}
}

/* Watch the open directory fd (taken), name in the directory watched as
 * parent, and queue it to be read. A directory watched already that shows
 * up while moving has been renamed with what is below it: only its new
 * place counts. */
static int walk_push(struct drift_watch *w, int fd, int parent, const char *name, const char *path,
		     unsigned level, bool moving)
{
	struct drift_sink s = watch_sink(w);
	char *copy;
	int wd = -1, r;
	bool known;
	DIR *d;

	if (level > DRIFT_MAX_DEPTH) {
		close(fd);
		w->lost = true;
		return 0;
	}
	r = watch_add(w, fd, parent, name, &wd, &known);
	if (r < 0) {
		close(fd);
		return r;
	}
	if (known && moving) {
		close(fd);
		return drift_path_writable(path, w->writable, w->n_writable)
			   ? 0
			   : s.emit(&s, DRIFT_WRITE_OUTSIDE_WRITABLE, path);
	}
	if (w->depth == w->stack_cap) {
		size_t cap = w->stack_cap ? w->stack_cap * 2 : 16;
		struct walk_frame *n;

		if (cap > DRIFT_MAX_WATCHES) {
			close(fd);
			w->lost = true;
			return 0;
		}
		n = realloc(w->stack, cap * sizeof(*n));
		if (!n) {
			close(fd);
			return -ENOMEM;
		}
		w->stack = n;
		w->stack_cap = cap;
	}
	copy = strdup(path);
	d = copy ? fdopendir(fd) : NULL;
	if (!d) {
		r = copy ? -errno : -ENOMEM;
		free(copy);
		close(fd);
		return r;
	}
	w->stack[w->depth++] =
	    (struct walk_frame){.dir = d, .wd = wd, .level = level, .moving = moving, .path = copy};
	return 0;
}

/* Look at the whole layer again (after a queue overflow): what is queued
 * goes, upper/ comes; walk_step() does the work. */
static int rescan_start(struct drift_watch *w)
{
	int fd;

	walk_stop(w);
	fd = drift_open_upper(w->upper_fd, "");
	if (fd < 0)
		return fd;
	return walk_push(w, fd, -1, "", "", 0, false);
}

/* Up to *budget entries of the queued directories; *budget says what is left. */
static int walk_step(struct drift_watch *w, unsigned *budget)
{
	struct drift_sink s = watch_sink(w);
	char *child = malloc(DRIFT_PATH_MAX);
	int r = 0;

	if (!child)
		return -ENOMEM;
	while (w->depth > 0 && *budget > 0 && r >= 0) {
		struct walk_frame *top = &w->stack[w->depth - 1];
		_cleanup_close_ int sub = -1;
		struct dirent *de;
		struct stat st;
		int dir_fd = dirfd(top->dir);

		de = readdir(top->dir);
		if (!de) {
			closedir(top->dir);
			free(top->path);
			w->depth--;
			continue;
		}
		if (streq(de->d_name, ".") || streq(de->d_name, ".."))
			continue;
		(*budget)--;
		if (fstatat(dir_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue; /* gone meanwhile */
		drift_join(child, DRIFT_PATH_MAX, top->path, de->d_name);
		if (S_ISDIR(st.st_mode))
			sub = drift_open_dir(dir_fd, de->d_name);
		r = drift_classify(&s, dir_fd, de->d_name, child, &st, sub);
		if (r >= 0 && sub >= 0)
			/* may move the stack: top is not used after this */
			r = walk_push(w, TAKE_FD(sub), top->wd, de->d_name, child, top->level + 1,
				      top->moving);
	}
	free(child);
	return r;
}

/* One inotify event: what it names, and below it when a directory arrived. */
static int handle(struct drift_watch *w, const struct inotify_event *ev)
{
	struct drift_sink s = watch_sink(w);
	_cleanup_free_ char *path = NULL, *parent_path = NULL, *name = NULL;
	_cleanup_close_ int parent = -1, sub = -1;
	struct watch_entry *e;
	struct stat st;
	int parent_wd, r;

	if (ev->mask & IN_Q_OVERFLOW)
		return rescan_start(w); /* in slices, from drift_watch_read() */
	if (ev->mask & IN_IGNORED) {
		watch_forget(w, ev->wd);
		return 0;
	}
	e = watch_find(w, ev->wd);
	if (!e)
		return 0;
	path = malloc(DRIFT_PATH_MAX);
	parent_path = malloc(DRIFT_PATH_MAX);
	if (!path || !parent_path)
		return -ENOMEM;
	if (ev->len > 0 && ev->name[0]) {
		/* something in the watched directory */
		if (watch_path(w, e, parent_path, DRIFT_PATH_MAX) < 0)
			return 0;
		parent_wd = e->wd;
		name = strdup(ev->name);
	} else {
		/* the directory itself (IN_ATTRIB: opaque now?) */
		struct watch_entry *pe = e->parent >= 0 ? watch_find(w, e->parent) : NULL;

		if (!pe || watch_path(w, pe, parent_path, DRIFT_PATH_MAX) < 0)
			return 0; /* upper/ itself, or its parent is gone */
		parent_wd = e->parent;
		name = strdup(e->name);
	}
	if (!name)
		return -ENOMEM;
	drift_join(path, DRIFT_PATH_MAX, parent_path, name);
	parent = drift_open_upper(w->upper_fd, parent_path);
	if (parent < 0)
		return 0; /* gone, or replaced by a symlink: nothing to read there */
	if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	if (S_ISDIR(st.st_mode))
		sub = drift_open_dir(parent, name);
	r = drift_classify(&s, parent, name, path, &st, sub);
	if (r == 0 && sub >= 0 && (ev->mask & (IN_CREATE | IN_MOVED_TO))) {
		/* Read in slices; any watched directory met below arrived by a
		 * rename (made before its new parent's watch, perhaps). */
		unsigned level = 1;

		for (const char *p = path; *p; p++)
			level += *p == '/';
		r = walk_push(w, TAKE_FD(sub), parent_wd, name, path, level, true);
	}
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
	/* A new layer is small (empty, for an instance just started): all at once. */
	r = rescan_start(w);
	while (r >= 0 && w->depth > 0) {
		unsigned all = UINT32_MAX;

		r = walk_step(w, &all);
	}
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
	unsigned budget = DRIFT_EVENTS_PER_READ;
	size_t k = 0;

	k = drain(w, events, n, k);
	while (k < n && w->n_pending == 0 && budget > 0) {
		/* Queued directories before any later event: an event below a
		 * directory renamed meanwhile finds its path only once the
		 * directory's new place is known. */
		if (w->depth > 0) {
			if (walk_step(w, &budget) < 0)
				w->lost = true;
			k = drain(w, events, n, k);
			continue; /* on with events if the walk is done and budget left */
		}
		if (w->events_off >= w->events_len) {
			ssize_t len = read(w->inotify_fd, w->events, sizeof(w->events));

			if (len < 0) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN || k > 0)
					break;
				return -errno;
			}
			w->events_len = (size_t)len;
			w->events_off = 0;
			if (len == 0)
				break;
		}
		while (w->events_off < w->events_len && budget > 0 && w->depth == 0) {
			const struct inotify_event *ev =
			    (const struct inotify_event *)(w->events + w->events_off);

			/* What cannot be looked at now is for a scan to find. */
			if (handle(w, ev) < 0)
				w->lost = true;
			w->events_off += sizeof(*ev) + ev->len;
			budget--;
		}
		k = drain(w, events, n, k);
	}
	*ret_n = k;
	return 0;
}

bool drift_watch_busy(const struct drift_watch *w)
{
	return w->events_off < w->events_len || w->n_pending > 0 || w->lost || w->depth > 0;
}

void drift_watch_free(struct drift_watch *w)
{
	if (!w)
		return;
	walk_stop(w);
	free(w->stack);
	/* removing every watch is the attacker's to make long */
	fd_graveyard_close(w->inotify_fd);
	for (size_t i = 0; i < w->n_watches; i++)
		free(w->watches[i].name);
	free(w->watches);
	free(w->index);
	for (size_t i = 0; i < w->n_pending; i++)
		free(w->pending[(w->pending_head + i) % DRIFT_PENDING_MAX].path);
	for (size_t i = 0; w->writable && i < w->n_writable; i++)
		free(w->writable[i]);
	free(w->writable);
	free(w);
}
