/* SPDX-License-Identifier: MIT */
/* Walking a snapshot tree (lstat only, symlinks never followed) and hashing
 * its regular files in one streaming pass. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "snapshot_internal.h"

#define HASH_BUFFER_SIZE (1u << 20)

int snapshot_hasher_init(struct snapshot_hasher *h)
{
	*h = (struct snapshot_hasher){0};
	h->md = EVP_MD_fetch(NULL, "SHA256", NULL);
	h->ctx = EVP_MD_CTX_new();
	h->buffer_size = HASH_BUFFER_SIZE;
	h->buffer = malloc(h->buffer_size);
	if (!h->md || !h->ctx || !h->buffer) {
		snapshot_hasher_done(h);
		return -ENOMEM;
	}
	return 0;
}

void snapshot_hasher_done(struct snapshot_hasher *h)
{
	EVP_MD_CTX_free(h->ctx);
	EVP_MD_free(h->md);
	free(h->buffer);
	*h = (struct snapshot_hasher){0};
}

int snapshot_hash_fd(struct snapshot_hasher *h, int fd, uint8_t ret_sha256[SNAPSHOT_SHA256_SIZE],
		     uint64_t *ret_size)
{
	uint64_t total = 0;
	unsigned int len = 0;

	if (EVP_DigestInit_ex(h->ctx, h->md, NULL) != 1)
		return -EIO;
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	for (;;) {
		ssize_t n = read(fd, h->buffer, h->buffer_size);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		if (EVP_DigestUpdate(h->ctx, h->buffer, (size_t)n) != 1)
			return -EIO;
		total += (uint64_t)n;
	}
	if (EVP_DigestFinal_ex(h->ctx, ret_sha256, &len) != 1 || len != SNAPSHOT_SHA256_SIZE)
		return -EIO;
	*ret_size = total;
	return 0;
}

/* Without openat2 (Linux < 5.6, valgrind): one component at a time, each
 * opened O_NOFOLLOW, which refuses the same things for the canonical paths
 * of a manifest (no ".", "..", or empty component). */
static int open_by_components(int root_fd, const char *relative, int flags)
{
	_cleanup_close_ int dir = -1;
	int at = root_fd;
	const char *p = relative;

	for (;;) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		char name[NAME_MAX + 1];
		int fd;

		if (n == 0 || n > NAME_MAX || (n == 1 && p[0] == '.' && slash) ||
		    (n == 2 && p[0] == '.' && p[1] == '.'))
			return -EINVAL;
		memcpy(name, p, n);
		name[n] = '\0';
		if (!slash) {
			fd = openat(at, name, flags | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
			return fd < 0 ? -errno : fd;
		}
		fd = openat(at, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return errno == ENOTDIR ? -ELOOP : -errno;
		closep(&dir);
		dir = fd;
		at = fd;
		p = slash + 1;
	}
}

int snapshot_open_beneath(int root_fd, const char *path, int flags)
{
	struct open_how how = {
	    .flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY),
	    .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	const char *relative = path[0] == '/' ? path + 1 : path;
	long fd;

	if (!relative[0])
		relative = ".";
	fd = syscall(SYS_openat2, root_fd, relative, &how, sizeof(how));
	if (fd < 0 && errno == ENOSYS)
		return open_by_components(root_fd, relative, flags);
	return fd < 0 ? -errno : (int)fd;
}

static int fill_entry(struct snapshot_entry *e, int dirfd, const char *name, const struct stat *st)
{
	e->type = snapshot_type_of(st->st_mode);
	e->mode = st->st_mode & 07777;
	e->uid = st->st_uid;
	e->gid = st->st_gid;
	e->nlink = st->st_nlink;
	e->dev = st->st_dev;
	e->ino = st->st_ino;
	e->ctime = st->st_ctim;
	e->mtime = st->st_mtim;
	if (e->type == SNAPSHOT_FILE)
		e->size = (uint64_t)st->st_size;
	if (e->type == SNAPSHOT_CHAR || e->type == SNAPSHOT_BLOCK) {
		e->major = major(st->st_rdev);
		e->minor = minor(st->st_rdev);
	}
	if (e->type == SNAPSHOT_SYMLINK) {
		char target[SNAPSHOT_PATH_MAX + 2];
		ssize_t n = readlinkat(dirfd, name, target, sizeof(target));

		if (n < 0)
			return -errno;
		if (n == 0 || (size_t)n > SNAPSHOT_PATH_MAX)
			return -ENAMETOOLONG;
		e->target = strndup(target, (size_t)n);
		if (!e->target)
			return -ENOMEM;
	}
	return 0;
}

static int walk_dir(int dirfd, const char *prefix, unsigned depth, struct snapshot_manifest *list,
		    struct snapshot_error *error)
{
	_cleanup_close_ int fd = -1;
	DIR *d;
	struct dirent *de;
	int r = 0;

	if (depth > SNAPSHOT_DEPTH_MAX) {
		snapshot_error_set_entry(error, prefix, "deeper than %d levels",
					 SNAPSHOT_DEPTH_MAX);
		return -ELOOP;
	}
	fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d)
		return -errno;
	fd = -1; /* owned by d now */
	/* a dup shares the offset: the root fd is walked again at each recheck */
	rewinddir(d);
	while ((errno = 0, de = readdir(d))) {
		struct snapshot_entry *e;
		struct stat st;
		size_t plen, nlen;
		char *path;

		if (streq(de->d_name, ".") || streq(de->d_name, ".."))
			continue;
		plen = streq(prefix, "/") ? 0 : strlen(prefix);
		nlen = strlen(de->d_name);
		if (plen + 1 + nlen > SNAPSHOT_PATH_MAX) {
			snapshot_error_set_entry(error, prefix, "path longer than %d bytes",
						 SNAPSHOT_PATH_MAX);
			r = -ENAMETOOLONG;
			break;
		}
		path = malloc(plen + nlen + 2);
		if (!path) {
			r = -ENOMEM;
			break;
		}
		memcpy(path, prefix, plen);
		path[plen] = '/';
		memcpy(path + plen + 1, de->d_name, nlen + 1);
		e = snapshot_manifest_add(list);
		if (!e) {
			free(path);
			r = -ENOMEM;
			break;
		}
		e->path = path;
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    (r = fill_entry(e, dirfd, de->d_name, &st)) < 0) {
			if (r == 0)
				r = -errno;
			snapshot_error_set_entry(error, path, "cannot read: %s", strerror(-r));
			break;
		}
		if (e->type == SNAPSHOT_DIR) {
			_cleanup_close_ int sub = openat(
			    dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub < 0) {
				r = -errno;
				snapshot_error_set_entry(error, path, "cannot open: %s",
							 strerror(-r));
				break;
			}
			/* list may move: do not keep e across the recursion. */
			r = walk_dir(sub, path, depth + 1, list, error);
			if (r < 0)
				break;
		}
	}
	if (r == 0 && errno != 0) {
		r = -errno;
		snapshot_error_set_entry(error, prefix, "cannot list: %s", strerror(-r));
	}
	closedir(d);
	return r;
}

int snapshot_walk(int root_fd, struct snapshot_manifest *ret_list, struct snapshot_error *ret_error)
{
	struct snapshot_manifest list = {0};
	struct snapshot_entry *e;
	struct stat st;
	int r;

	if (fstat(root_fd, &st) < 0)
		return -errno;
	e = snapshot_manifest_add(&list);
	if (!e || !(e->path = strdup("/"))) {
		snapshot_manifest_clear(&list);
		return -ENOMEM;
	}
	r = fill_entry(e, root_fd, "", &st);
	if (r == 0)
		r = walk_dir(root_fd, "/", 1, &list, ret_error);
	if (r < 0) {
		snapshot_manifest_clear(&list);
		return r;
	}
	*ret_list = list;
	return 0;
}
