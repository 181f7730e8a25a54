/* SPDX-License-Identifier: MIT */
/* Stamps: what each entry of a verified tree looked like (inode, ctime,
 * mtime, mode, owner, links, size), taken by the verification walk and
 * checked again before every start, so a tree changed after verification is
 * noticed without hashing it again (docs/snapshot.md "Every start"). Any
 * change of content, mode, owner or links moves the ctime; a rename over an
 * entry or a symlink swap changes the inode; an entry added to or removed
 * from a directory moves the directory's. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapshot_internal.h"

/* '/' below every other byte, the end of a string below '/': a directory's
 * subtree comes right after it ("/a", "/a/b", "/a-b"). */
int snapshot_tree_order(const char *a, const char *b)
{
	const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;

	for (;; x++, y++) {
		int cx = *x == '/' ? 1 : *x ? *x + 1 : 0;
		int cy = *y == '/' ? 1 : *y ? *y + 1 : 0;

		if (cx != cy)
			return cx < cy ? -1 : 1;
		if (!cx)
			return 0;
	}
}

static int cmp_stamp(const void *a, const void *b)
{
	return snapshot_tree_order(((const struct snapshot_stamp *)a)->path,
				   ((const struct snapshot_stamp *)b)->path);
}

static void stamp_of(struct snapshot_stamp *s, const struct stat *st)
{
	s->dev = st->st_dev;
	s->ino = st->st_ino;
	s->mode = st->st_mode;
	s->uid = st->st_uid;
	s->gid = st->st_gid;
	s->nlink = st->st_nlink;
	s->size = (uint64_t)st->st_size;
	s->ctime = st->st_ctim;
	s->mtime = st->st_mtim;
}

int snapshot_stamps_make(const struct snapshot_manifest *m, const struct snapshot_manifest *found,
			 struct snapshot_stamp **ret_stamps)
{
	struct snapshot_stamp *stamps;

	if (m->count != found->count || m->count == 0)
		return -EINVAL;
	stamps = calloc(m->count, sizeof(*stamps));
	if (!stamps)
		return -ENOMEM;
	for (size_t i = 0; i < m->count; i++) {
		const struct snapshot_entry *f = &found->entries[i];

		if (!streq(m->entries[i].path, f->path)) {
			free(stamps);
			return -EINVAL;
		}
		/* the walk's lstat, before any content was hashed */
		stamps[i] = (struct snapshot_stamp){
		    .path = m->entries[i].path,
		    .dev = f->dev,
		    .ino = f->ino,
		    .uid = f->uid,
		    .gid = f->gid,
		    .nlink = f->nlink,
		    .size = f->size,
		    .ctime = f->ctime,
		    .mtime = f->mtime,
		};
		stamps[i].mode = f->mode | (f->type == SNAPSHOT_DIR	  ? S_IFDIR
					    : f->type == SNAPSHOT_FILE	  ? S_IFREG
					    : f->type == SNAPSHOT_SYMLINK ? S_IFLNK
					    : f->type == SNAPSHOT_CHAR	  ? S_IFCHR
					    : f->type == SNAPSHOT_BLOCK	  ? S_IFBLK
									  : S_IFIFO);
	}
	qsort(stamps, m->count, sizeof(*stamps), cmp_stamp);
	*ret_stamps = stamps;
	return 0;
}

static const char *stamp_differs(const struct snapshot_stamp *want,
				 const struct snapshot_stamp *got)
{
	if (got->dev != want->dev || got->ino != want->ino)
		return "another inode";
	if ((got->mode & S_IFMT) != (want->mode & S_IFMT))
		return "type";
	if (got->mode != want->mode)
		return "mode";
	if (got->uid != want->uid || got->gid != want->gid)
		return "owner";
	if (got->nlink != want->nlink)
		return "link count";
	if (S_ISREG(want->mode) && got->size != want->size)
		return "size";
	if (got->ctime.tv_sec != want->ctime.tv_sec || got->ctime.tv_nsec != want->ctime.tv_nsec)
		return "ctime";
	if (got->mtime.tv_sec != want->mtime.tv_sec || got->mtime.tv_nsec != want->mtime.tv_nsec)
		return "mtime";
	return NULL;
}

/* The entry's current stamp, by name in its parent directory (nothing
 * followed). A directory is opened (O_PATH) and stamped through its fd, so
 * its children are checked in the directory that was stamped. */
static int stamp_now(int parent, const char *name, const struct snapshot_stamp *want,
		     struct snapshot_stamp *ret_got, int *ret_dir_fd)
{
	struct stat st;

	*ret_dir_fd = -1;
	if (S_ISDIR(want->mode)) {
		int fd = openat(parent, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

		if (fd < 0)
			return -errno;
		if (fstat(fd, &st) < 0) {
			int r = -errno;
			close(fd);
			return r;
		}
		*ret_dir_fd = fd;
	} else if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	stamp_of(ret_got, &st);
	return 0;
}

int snapshot_stamps_check(int root_fd, const struct snapshot_stamp *stamps, size_t n,
			  struct snapshot_error *ret_error)
{
	/* the open directories from the root down to the current entry's parent */
	int fds[SNAPSHOT_DEPTH_MAX + 2];
	const char *dirs[SNAPSHOT_DEPTH_MAX + 2];
	size_t lens[SNAPSHOT_DEPTH_MAX + 2];
	size_t depth = 0;
	struct snapshot_stamp got;
	struct stat st;
	int r = 0;

	if (n == 0 || !streq(stamps[0].path, "/"))
		return -EINVAL;
	if (fstat(root_fd, &st) < 0)
		return -errno;
	stamp_of(&got, &st);
	if (stamp_differs(&stamps[0], &got)) {
		snapshot_error_set_entry(ret_error, "/", "changed since verification (%s)",
					 stamp_differs(&stamps[0], &got));
		return -EBADMSG;
	}
	fds[0] = root_fd;
	dirs[0] = "";
	lens[0] = 0;
	for (size_t i = 1; i < n && r == 0; i++) {
		const char *path = stamps[i].path, *name = strrchr(path, '/') + 1;
		size_t parent_len = (size_t)(name - 1 - path);
		const char *why;
		int dir_fd;

		/* tree order: the parent is on the stack, leave its finished siblings */
		while (depth > 0 &&
		       !(lens[depth] == parent_len && memcmp(dirs[depth], path, parent_len) == 0))
			close(fds[depth--]);
		if (lens[depth] != parent_len) {
			r = -EINVAL; /* not in tree order: a programming error */
			break;
		}
		r = stamp_now(fds[depth], name, &stamps[i], &got, &dir_fd);
		if (r < 0) {
			snapshot_error_set_entry(ret_error, path, "changed since verification (%s)",
						 r == -ENOENT			? "gone"
						 : r == -ENOTDIR || r == -ELOOP ? "type"
										: strerror(-r));
			r = -EBADMSG;
			break;
		}
		why = stamp_differs(&stamps[i], &got);
		if (why) {
			if (dir_fd >= 0)
				close(dir_fd);
			snapshot_error_set_entry(ret_error, path, "changed since verification (%s)",
						 why);
			r = -EBADMSG;
			break;
		}
		if (dir_fd >= 0) {
			if (depth + 1 >= ELEMENTSOF(fds)) {
				close(dir_fd);
				r = -ELOOP;
				break;
			}
			fds[++depth] = dir_fd;
			dirs[depth] = path;
			lens[depth] = strlen(path);
		}
	}
	while (depth > 0)
		close(fds[depth--]);
	return r;
}
