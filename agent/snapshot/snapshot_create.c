/* SPDX-License-Identifier: MIT */
/* Making snapshots: copy a tree (or a binary's closure, snapshot_closure.c)
 * into DEST.tmp-XXXXXX/root, describe it in a manifest, sign it, and rename
 * the whole into place. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "snapshot_internal.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_PKEY *, EVP_PKEY_free)

/* Remove name below parent_fd recursively, never following symlinks. */
static int remove_tree_at(int parent_fd, const char *name, unsigned depth)
{
	_cleanup_close_ int fd = -1;
	struct dirent *de;
	DIR *d;

	if (unlinkat(parent_fd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if ((errno != EISDIR && errno != EPERM) || depth > SNAPSHOT_DEPTH_MAX + 2)
		return -errno;
	fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	(void)fchmod(fd, 0700); /* a read-only directory of ours must still empty */
	d = fdopendir(fd);
	if (!d)
		return -errno;
	while ((de = readdir(d)))
		if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
			remove_tree_at(dirfd(d), de->d_name, depth + 1);
	closedir(d);
	fd = -1;
	return unlinkat(parent_fd, name, AT_REMOVEDIR) < 0 ? -errno : 0;
}

int snapshot_remove_tree(const char *path)
{
	return remove_tree_at(AT_FDCWD, path, 0);
}

int snapshot_copy_file(int src_fd, int dst_fd)
{
	char buffer[1 << 16];

	for (;;) {
		ssize_t n = copy_file_range(src_fd, NULL, dst_fd, NULL, 1 << 30, 0);

		if (n == 0)
			return 0;
		if (n > 0)
			continue;
		if (errno == EINTR)
			continue;
		if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
			return -errno;
		break;
	}
	/* Fallback: plain read/write. */
	for (;;) {
		ssize_t n = read(src_fd, buffer, sizeof(buffer)), done = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;
		while (done < n) {
			ssize_t k = write(dst_fd, buffer + done, (size_t)(n - done));
			if (k < 0 && errno == EINTR)
				continue;
			if (k < 0)
				return -errno;
			done += k;
		}
	}
}

/* Give a created inode the source's owner, then its mode (chown clears setuid). */
int snapshot_apply_meta(int dirfd, const char *name, int fd, const struct stat *st)
{
	if (fd >= 0) {
		if (fchown(fd, st->st_uid, st->st_gid) < 0 || fchmod(fd, st->st_mode & 07777) < 0)
			return -errno;
		return 0;
	}
	if (fchownat(dirfd, name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (!S_ISLNK(st->st_mode) && fchmodat(dirfd, name, st->st_mode & 07777, 0) < 0)
		return -errno;
	return 0;
}

/* Create one non-directory inode like (src_dir, name, st) at (dst_dir, name). */
int snapshot_copy_inode(int src_dir, int dst_dir, const char *name, const struct stat *st)
{
	if (S_ISREG(st->st_mode)) {
		_cleanup_close_ int in =
		    openat(src_dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
		_cleanup_close_ int out = -1;
		int r;

		if (in < 0)
			return -errno;
		out = openat(dst_dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			     0600);
		if (out < 0)
			return -errno;
		r = snapshot_copy_file(in, out);
		return r < 0 ? r : snapshot_apply_meta(-1, NULL, out, st);
	}
	if (S_ISLNK(st->st_mode)) {
		char target[SNAPSHOT_PATH_MAX + 2];
		ssize_t n = readlinkat(src_dir, name, target, sizeof(target) - 1);

		if (n < 0)
			return -errno;
		if ((size_t)n > SNAPSHOT_PATH_MAX)
			return -ENAMETOOLONG;
		target[n] = '\0';
		if (symlinkat(target, dst_dir, name) < 0)
			return -errno;
		return snapshot_apply_meta(dst_dir, name, -1, st);
	}
	if (S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode) || S_ISFIFO(st->st_mode)) {
		if (mknodat(dst_dir, name, (st->st_mode & S_IFMT) | 0600, st->st_rdev) < 0)
			return -errno;
		return snapshot_apply_meta(dst_dir, name, -1, st);
	}
	return -EOPNOTSUPP;
}

struct copy {
	const char *src;
	const struct snapshot_options *opts;
	struct snapshot_error *error;
	char path[SNAPSHOT_PATH_MAX + 2]; /* the current path, "/" relative to SRC */
};

/* Errors name the source file: SRC + path. */
static void copy_error(struct copy *c, const char *fmt, ...) _printf_(2, 3);
static void copy_error(struct copy *c, const char *fmt, ...)
{
	char escaped[sizeof(c->error->path)];
	va_list ap;

	if (!c->error)
		return;
	snapshot_escape(c->path, escaped, sizeof(escaped));
	snprintf(c->error->path, sizeof(c->error->path), "%s%s", c->src,
		 streq(escaped, "/") ? "" : escaped);
	va_start(ap, fmt);
	vsnprintf(c->error->reason, sizeof(c->error->reason), fmt, ap);
	va_end(ap);
}

static int refuse_source(struct copy *c, const struct stat *st)
{
	struct snapshot_entry e = {
	    .type = snapshot_type_of(st->st_mode), .mode = st->st_mode & 07777, .uid = st->st_uid};
	char why[128];
	const char *refused = snapshot_entry_refused(&e, c->opts);

	/* the verifier would refuse it: say so now, with the source path */
	if (!refused)
		refused = snapshot_entry_unsafe(&e, geteuid(), why, sizeof(why));

	if (!refused)
		return 0;
	copy_error(c, "%s", refused);
	return -EPERM;
}

static int copy_dir(struct copy *c, int src, int dst, unsigned depth)
{
	size_t len = strlen(c->path);
	struct dirent *de;
	DIR *d;
	int r = 0, fd;

	if (depth > SNAPSHOT_DEPTH_MAX) {
		copy_error(c, "deeper than %d levels", SNAPSHOT_DEPTH_MAX);
		return -ELOOP;
	}
	fd = fcntl(src, F_DUPFD_CLOEXEC, 3);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while (r == 0 && (errno = 0, de = readdir(d))) {
		struct stat st;
		size_t n = strlen(de->d_name);

		if (streq(de->d_name, ".") || streq(de->d_name, ".."))
			continue;
		if (len + 1 + n > SNAPSHOT_PATH_MAX) {
			copy_error(c, "path too long");
			r = -ENAMETOOLONG;
			break;
		}
		snprintf(c->path + len, sizeof(c->path) - len, "%s%s", len > 1 ? "/" : "",
			 de->d_name);
		if (fstatat(src, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			r = -errno;
			copy_error(c, "cannot stat: %s", strerror(-r));
			break;
		}
		r = refuse_source(c, &st);
		if (r < 0)
			break;
		if (S_ISDIR(st.st_mode)) {
			_cleanup_close_ int s = openat(
			    src, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			_cleanup_close_ int t = -1;

			if (s < 0 || mkdirat(dst, de->d_name, 0700) < 0 ||
			    (t = openat(dst, de->d_name,
					O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
				r = -errno;
				copy_error(c, "cannot copy directory: %s", strerror(-r));
				break;
			}
			r = copy_dir(c, s, t, depth + 1);
			/* Metadata last, so a read-only directory could be filled. */
			if (r == 0 && (r = snapshot_apply_meta(-1, NULL, t, &st)) < 0)
				copy_error(c, "cannot set owner/mode: %s", strerror(-r));
		} else {
			r = snapshot_copy_inode(src, dst, de->d_name, &st);
			if (r < 0)
				copy_error(c, "cannot copy: %s%s", strerror(-r),
					   r == -EPERM ? " (owners and devices need root)" : "");
		}
		c->path[len] = '\0';
	}
	if (r == 0 && errno)
		r = -errno;
	closedir(d);
	return r;
}

int snapshot_stage_begin(const char *dest, struct snapshot_stage *ret_stage,
			 struct snapshot_error *error)
{
	struct snapshot_stage st = {.dir_fd = -1, .root_fd = -1};
	struct stat s;

	if (lstat(dest, &s) == 0) {
		_cleanup_close_ int fd = -1;
		DIR *d;
		struct dirent *de;
		bool empty = true;

		if (!S_ISDIR(s.st_mode)) {
			snapshot_error_set(error, dest, "exists and is not a directory");
			return -EEXIST;
		}
		fd = open(dest, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		d = fd >= 0 ? fdopendir(fd) : NULL;
		if (!d) {
			snapshot_error_set(error, dest, "cannot open: %s", strerror(errno));
			return -errno;
		}
		fd = -1;
		while ((de = readdir(d)))
			if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
				empty = false;
		closedir(d);
		if (!empty) {
			snapshot_error_set(error, dest, "exists and is not empty");
			return -ENOTEMPTY;
		}
	} else if (errno != ENOENT) {
		snapshot_error_set(error, dest, "cannot stat: %s", strerror(errno));
		return -errno;
	}
	if (asprintf(&st.tmp_path, "%s.tmp-XXXXXX", dest) < 0)
		return -ENOMEM;
	if (!mkdtemp(st.tmp_path)) {
		int r = -errno;
		snapshot_error_set(error, dest, "cannot create a staging directory next to it: %s",
				   strerror(-r));
		free(st.tmp_path);
		return r;
	}
	st.dest = strdup(dest);
	st.dir_fd = open(st.tmp_path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (!st.dest || st.dir_fd < 0 || mkdirat(st.dir_fd, "root", 0700) < 0 ||
	    (st.root_fd =
		 openat(st.dir_fd, "root", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		int r = st.dest ? -errno : -ENOMEM;
		snapshot_error_set(error, st.tmp_path, "cannot prepare: %s", strerror(-r));
		snapshot_stage_abort(&st);
		return r;
	}
	*ret_stage = st;
	return 0;
}

void snapshot_stage_abort(struct snapshot_stage *st)
{
	if (st->root_fd >= 0)
		close(st->root_fd);
	if (st->dir_fd >= 0)
		close(st->dir_fd);
	if (st->tmp_path)
		snapshot_remove_tree(st->tmp_path);
	free(st->tmp_path);
	free(st->dest);
	*st = (struct snapshot_stage){.dir_fd = -1, .root_fd = -1};
}

static int write_at(int dirfd, const char *name, const void *data, size_t size)
{
	_cleanup_close_ int fd =
	    openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	size_t done = 0;

	if (fd < 0)
		return -errno;
	if (fchmod(fd, 0644) < 0)
		return -errno;
	while (done < size) {
		ssize_t k = write(fd, (const char *)data + done, size - done);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		done += (size_t)k;
	}
	return 0;
}

/* Describe the staged root: the walk, sorted, with every regular file hashed. */
static int describe(int root_fd, struct snapshot_manifest *ret, struct snapshot_error *error)
{
	struct snapshot_manifest m = {0};
	struct snapshot_hasher h;
	int r = snapshot_walk(root_fd, &m, error);

	if (r < 0)
		return r;
	snapshot_manifest_sort(&m);
	r = snapshot_hasher_init(&h);
	if (r < 0) {
		snapshot_manifest_clear(&m);
		return r;
	}
	for (size_t i = 0; r == 0 && i < m.count; i++) {
		struct snapshot_entry *e = &m.entries[i];
		_cleanup_close_ int fd = -1;
		uint64_t size = 0;

		if (e->type == SNAPSHOT_SOCKET) {
			snapshot_error_set_entry(error, e->path,
						 "socket not allowed in a snapshot");
			r = -EPERM;
			break;
		}
		if (e->type != SNAPSHOT_FILE)
			continue;
		fd = snapshot_open_beneath(root_fd, e->path, O_RDONLY);
		r = fd < 0 ? fd : snapshot_hash_fd(&h, fd, e->sha256, &size);
		if (r == 0 && size != e->size)
			r = -EIO;
		if (r < 0)
			snapshot_error_set_entry(error, e->path, "cannot hash: %s", strerror(-r));
	}
	snapshot_hasher_done(&h);
	if (r < 0) {
		snapshot_manifest_clear(&m);
		return r;
	}
	*ret = m;
	return 0;
}

int snapshot_stage_commit(struct snapshot_stage *st, const char *privkey_path,
			  struct snapshot_error *error)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
	struct snapshot_manifest m = {0};
	_cleanup_free_ char *text = NULL;
	uint8_t sig[SNAPSHOT_SIG_SIZE];
	size_t size;
	int r;

	r = snapshot_load_private_key(privkey_path, &key, error);
	if (r < 0)
		return r;
	r = describe(st->root_fd, &m, error);
	if (r < 0)
		return r;
	r = snapshot_manifest_format(&m, &text, &size);
	snapshot_manifest_clear(&m);
	if (r < 0)
		return r;
	r = snapshot_sign(key, text, size, sig);
	if (r < 0) {
		snapshot_error_set(error, privkey_path, "signing failed");
		return r;
	}
	if ((r = write_at(st->dir_fd, "manifest", text, size)) < 0 ||
	    (r = write_at(st->dir_fd, "manifest.sig", sig, sizeof(sig))) < 0) {
		snapshot_error_set(error, st->tmp_path, "cannot write the manifest: %s",
				   strerror(-r));
		return r;
	}
	/* Durable before it becomes visible under its name. */
	if (fchmod(st->dir_fd, 0755) < 0 || syncfs(st->dir_fd) < 0) {
		r = -errno;
		snapshot_error_set(error, st->tmp_path, "cannot sync: %s", strerror(-r));
		return r;
	}
	if (rename(st->tmp_path, st->dest) < 0) {
		r = -errno;
		snapshot_error_set(error, st->dest,
				   "cannot rename the staged snapshot into place: %s",
				   strerror(-r));
		return r;
	}
	free(st->tmp_path);
	st->tmp_path = NULL; /* nothing left to remove */
	snapshot_stage_abort(st);
	return 0;
}

int snapshot_create(const char *src, const char *dest, const char *privkey_path,
		    const struct snapshot_options *opts, struct snapshot_error *ret_error)
{
	struct snapshot_stage st;
	struct copy c = {.src = src, .opts = opts, .error = ret_error, .path = "/"};
	_cleanup_close_ int src_fd = -1;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
	struct stat s;
	int r;

	/* Fail on a bad key before copying anything. */
	r = snapshot_load_private_key(privkey_path, &key, ret_error);
	if (r < 0)
		return r;
	src_fd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (src_fd < 0 || fstat(src_fd, &s) < 0) {
		r = -errno;
		snapshot_error_set(ret_error, src, "cannot open source directory: %s",
				   strerror(-r));
		return r;
	}
	r = snapshot_stage_begin(dest, &st, ret_error);
	if (r < 0)
		return r;
	r = copy_dir(&c, src_fd, st.root_fd, 1);
	if (r == 0 && (r = snapshot_apply_meta(-1, NULL, st.root_fd, &s)) < 0)
		snapshot_error_set(ret_error, src, "cannot set owner/mode: %s", strerror(-r));
	if (r == 0)
		r = snapshot_stage_commit(&st, privkey_path, ret_error);
	if (r < 0)
		snapshot_stage_abort(&st);
	return r;
}
