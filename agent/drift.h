/* SPDX-License-Identifier: MIT */
/* Drift: what an instance changed in its writable layer that its policy does
 * not allow (docs/quarantine.md, "Drift").
 *
 * The instance's writable layer is a tmpfs the agent holds by fd
 * (envelope_upper_fd()) with the overlay's upper/ directory in it. Every path
 * below is relative to the instance's root ("/etc/passwd" is upper/etc/passwd).
 * What is reported:
 *
 *   write-outside-writable   a file, symlink or special file in the upper
 *                            layer outside every Writable= path (created,
 *                            copied up for a write, renamed there, linked)
 *   new-executable           a regular file with any x bit or starting with
 *                            "\x7fELF" or "#!", anywhere, Writable= included
 *   delete-outside-writable  an overlay whiteout (0/0 character device) or an
 *                            opaque directory outside every Writable= path: a
 *                            file or directory of the snapshot was removed
 *   events-lost              the watch could not keep up (its own queue of
 *                            reports is full, no inotify watch left); call
 *                            drift_scan(). From either: a directory deeper
 *                            than 256 levels, not looked into
 *
 * A Writable= entry covers itself and what is below it, by whole path
 * components: "/var/cache/nginx" covers "/var/cache/nginx/x", not
 * "/var/cache/nginxfoo". Directories themselves are not reported (a copied-up
 * parent of a written file is not a write); what is in them is.
 *
 * drift_watch uses inotify with one watch per directory of upper/, added as
 * directories appear (and what appeared before the watch was in place is
 * scanned at once); an inotify queue overflow rescans the whole layer. A
 * watched directory knows only its name and its parent, so renaming a tree
 * is one change whatever it holds: the renamed directory is reported where
 * it lands outside Writable= (write-outside-writable), its contents are not
 * walked again, and later events below it carry the new path. Watches are
 * found by a hash of their descriptor, in constant time. The
 * watch reads the tree through O_NOFOLLOW opens of single components: the
 * instance cannot make it follow a symlink. It never blocks. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define DRIFT_PATH_MAX 4096

enum drift_kind {
	DRIFT_WRITE_OUTSIDE_WRITABLE,
	DRIFT_NEW_EXECUTABLE,
	DRIFT_DELETE_OUTSIDE_WRITABLE,
	DRIFT_EVENTS_LOST,
};

struct drift_event {
	enum drift_kind kind;
	char path[DRIFT_PATH_MAX]; /* "/etc/passwd"; raw bytes of the names */
};

/* "write-outside-writable", "new-executable", "delete-outside-writable", "events-lost" */
const char *drift_kind_name(enum drift_kind kind);

/* True when path (absolute, as above) is covered by one of the writable
 * entries (absolute paths; trailing slashes ignored; "/" covers everything). */
bool drift_path_writable(const char *path, char *const *writable, size_t n_writable);

/* Walk upper/ of the writable layer and call cb for everything reportable
 * (events-lost only for a directory too deep to walk). cb returning non-zero stops the walk and is
 * returned. 0 when the walk completed; -errno when it could not. */
typedef int (*drift_scan_cb)(const struct drift_event *event, void *userdata);
int drift_scan(int upper_fd, char *const *writable, size_t n_writable, drift_scan_cb cb,
	       void *userdata);

struct drift_watch;

/* Watch upper/ of the writable layer (upper_fd is not taken; it must stay open
 * while the watch lives). writable is copied. What is already there when the
 * watch starts is reported by the first drift_watch_read(). */
int drift_watch_new(int upper_fd, char *const *writable, size_t n_writable,
		    struct drift_watch **ret);
/* The inotify fd (non-blocking, close-on-exec) for the event loop: EPOLLIN. */
int drift_watch_fd(const struct drift_watch *w);
/* Up to n reports; *ret_n = 0 when there is nothing (never blocks). It
 * handles at most 64 inotify events (or entries of new directories) a call, so a storm is taken in slices:
 * call again while it fills the whole array or drift_watch_busy() says work
 * is left (which the fd's readiness does not show: the events are read). */
int drift_watch_read(struct drift_watch *w, struct drift_event *events, size_t n, size_t *ret_n);
bool drift_watch_busy(const struct drift_watch *w);
void drift_watch_free(struct drift_watch *w);
