/* SPDX-License-Identifier: MIT */
/* Snapshot verification and verified exec (docs/snapshot.md): the signature
 * first, then one sorted merge of the signed manifest against an lstat walk
 * of DIR/root, hashing each regular file once; the first difference in
 * manifest order is the answer. snapshot_open_exec() then hands out a sealed
 * memfd whose content was hashed while it was copied. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapshot_internal.h"

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif
#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif
#define SYMLINK_MAX 40 /* like the kernel's MAXSYMLINKS */

struct snapshot {
	struct snapshot_manifest manifest;
	char *root_path; /* absolute DIR/root */
	int root_fd;	 /* DIR/root, O_DIRECTORY: everything after verification goes through it */
	struct snapshot_stats stats;
	struct snapshot_options opts;
	struct snapshot_stamp *stamps; /* manifest.count, tree order (snapshot_stamp.c) */
	bool changed;		       /* a recheck found it changed and not as signed */
	struct snapshot_error change;  /* ... and where */
};

DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_PKEY *, EVP_PKEY_free)

static void sha_hex(const uint8_t sha[SNAPSHOT_SHA256_SIZE], char out[2 * SNAPSHOT_SHA256_SIZE + 1])
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < SNAPSHOT_SHA256_SIZE; i++) {
		out[2 * i] = digits[sha[i] >> 4];
		out[2 * i + 1] = digits[sha[i] & 15];
	}
	out[2 * SNAPSHOT_SHA256_SIZE] = '\0';
}

static int content_differs(struct snapshot_error *error, const char *path,
			   const uint8_t got[SNAPSHOT_SHA256_SIZE],
			   const uint8_t want[SNAPSHOT_SHA256_SIZE], const char *when)
{
	char a[2 * SNAPSHOT_SHA256_SIZE + 1], b[2 * SNAPSHOT_SHA256_SIZE + 1];

	sha_hex(got, a);
	sha_hex(want, b);
	snapshot_error_set_entry(error, path, "%scontent differs (sha256 %s, expected %s)", when, a,
				 b);
	return -EBADMSG;
}

/* Hash a regular file the walk found and compare it with its manifest entry. */
static int check_content(int root_fd, struct snapshot_hasher *h, const struct snapshot_entry *want,
			 const struct snapshot_entry *found, struct snapshot_error *error)
{
	_cleanup_close_ int fd = snapshot_open_beneath(root_fd, want->path, O_RDONLY | O_NONBLOCK);
	uint8_t sha[SNAPSHOT_SHA256_SIZE];
	uint64_t size;
	struct stat st;
	int r;

	if (fd < 0) {
		snapshot_error_set_entry(error, want->path, "cannot open: %s", strerror(-fd));
		return fd == -ELOOP || fd == -EXDEV ? -EBADMSG : fd;
	}
	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_ino != found->ino || st.st_dev != found->dev) {
		snapshot_error_set_entry(error, want->path, "changed during verification");
		return -EBADMSG;
	}
	r = snapshot_hash_fd(h, fd, sha, &size);
	if (r < 0) {
		snapshot_error_set_entry(error, want->path, "cannot read: %s", strerror(-r));
		return r;
	}
	if (size != want->size) {
		snapshot_error_set_entry(error, want->path,
					 "size differs (%llu bytes, expected %llu)",
					 (unsigned long long)size, (unsigned long long)want->size);
		return -EBADMSG;
	}
	if (memcmp(sha, want->sha256, sizeof(sha)) != 0)
		return content_differs(error, want->path, sha, want->sha256, "");
	return 0;
}

static int compare_entry(int root_fd, struct snapshot_hasher *h, const struct snapshot_entry *want,
			 const struct snapshot_entry *found, const struct snapshot_options *opts,
			 struct snapshot_error *error)
{
	const char *refused = snapshot_entry_refused(want, opts);
	char a[4 * SNAPSHOT_PATH_MAX + 1], b[4 * SNAPSHOT_PATH_MAX + 1], why[128];

	if (refused) {
		snapshot_error_set_entry(error, want->path, "%s", refused);
		return -EBADMSG;
	}
	/* What is on disk first (the danger), then what was signed. */
	refused = snapshot_entry_unsafe(found, geteuid(), why, sizeof(why));
	if (!refused)
		refused = snapshot_entry_unsafe(want, geteuid(), why, sizeof(why));
	if (refused) {
		snapshot_error_set_entry(error, want->path, "%s", refused);
		return -EBADMSG;
	}
	if (found->type != want->type) {
		snapshot_error_set_entry(error, want->path, "type differs (%s, expected %s)",
					 snapshot_type_name(found->type),
					 snapshot_type_name(want->type));
		return -EBADMSG;
	}
	if (found->mode != want->mode) {
		snapshot_error_set_entry(error, want->path, "mode differs (%04o, expected %04o)",
					 found->mode, want->mode);
		return -EBADMSG;
	}
	if (found->uid != want->uid || found->gid != want->gid) {
		snapshot_error_set_entry(error, want->path, "owner differs (%u:%u, expected %u:%u)",
					 found->uid, found->gid, want->uid, want->gid);
		return -EBADMSG;
	}
	switch (want->type) {
	case SNAPSHOT_FILE:
		if (found->nlink != 1) {
			snapshot_error_set_entry(error, want->path,
						 "hard link (%llu links; a snapshot has none)",
						 (unsigned long long)found->nlink);
			return -EBADMSG;
		}
		if (found->size != want->size) {
			snapshot_error_set_entry(
			    error, want->path, "size differs (%llu bytes, expected %llu)",
			    (unsigned long long)found->size, (unsigned long long)want->size);
			return -EBADMSG;
		}
		return check_content(root_fd, h, want, found, error);
	case SNAPSHOT_SYMLINK:
		if (!streq(found->target, want->target)) {
			snapshot_escape(found->target, a, sizeof(a));
			snapshot_escape(want->target, b, sizeof(b));
			snapshot_error_set_entry(error, want->path,
						 "symlink target differs (%s, expected %s)", a, b);
			return -EBADMSG;
		}
		return 0;
	case SNAPSHOT_CHAR:
	case SNAPSHOT_BLOCK:
		if (found->major != want->major || found->minor != want->minor) {
			snapshot_error_set_entry(
			    error, want->path, "device number differs (%u:%u, expected %u:%u)",
			    found->major, found->minor, want->major, want->minor);
			return -EBADMSG;
		}
		return 0;
	default:
		return 0;
	}
}

/* The sorted merge: the first difference in path order wins. */
static int compare_trees(int root_fd, const struct snapshot_manifest *want,
			 const struct snapshot_manifest *found, const struct snapshot_options *opts,
			 struct snapshot_error *error)
{
	struct snapshot_hasher h;
	size_t i = 0, j = 0;
	int r = snapshot_hasher_init(&h);

	if (r < 0)
		return r;
	while (r == 0 && (i < want->count || j < found->count)) {
		int c = i == want->count    ? 1
			: j == found->count ? -1
					    : strcmp(want->entries[i].path, found->entries[j].path);

		if (c < 0) {
			snapshot_error_set_entry(error, want->entries[i].path,
						 "missing (%s in the manifest)",
						 snapshot_type_name(want->entries[i].type));
			r = -EBADMSG;
		} else if (c > 0) {
			snapshot_error_set_entry(error, found->entries[j].path,
						 "not in the manifest (%s)",
						 snapshot_type_name(found->entries[j].type));
			r = -EBADMSG;
		} else
			r = compare_entry(root_fd, &h, &want->entries[i++], &found->entries[j++],
					  opts, error);
	}
	snapshot_hasher_done(&h);
	return r;
}

static int read_signature(int dir_fd, uint8_t sig[SNAPSHOT_SIG_SIZE], struct snapshot_error *error)
{
	_cleanup_free_ char *data = NULL;
	size_t size;
	int r = snapshot_read_file_at(dir_fd, "manifest.sig", 4096, &data, &size);

	if (r < 0) {
		snapshot_error_set(error, "manifest.sig", "%s",
				   r == -ENOENT ? "missing (unsigned snapshot)" : strerror(-r));
		return r == -ENOENT || r == -EFBIG || r == -EBADFD ? -EBADMSG : r;
	}
	if (size != SNAPSHOT_SIG_SIZE) {
		snapshot_error_set(error, "manifest.sig",
				   "not an Ed25519 signature (%zu bytes, expected %d)", size,
				   SNAPSHOT_SIG_SIZE);
		return -EBADMSG;
	}
	memcpy(sig, data, SNAPSHOT_SIG_SIZE);
	return 0;
}

/* The tree below root_fd against the signed manifest: walk, merge, hash;
 * the stamps of what matched for the rechecks at start. */
static int check_tree(int root_fd, const struct snapshot_manifest *manifest,
		      const struct snapshot_options *opts, struct snapshot_stamp **ret_stamps,
		      struct snapshot_error *error)
{
	struct snapshot_manifest found = {0};
	int r = snapshot_walk(root_fd, &found, error);

	if (r < 0)
		return r;
	snapshot_manifest_sort(&found);
	r = compare_trees(root_fd, manifest, &found, opts, error);
	if (r == 0)
		r = snapshot_stamps_make(manifest, &found, ret_stamps);
	snapshot_manifest_clear(&found);
	return r;
}

int snapshot_verify(const char *dir, const char *pubkey_path, const struct snapshot_options *opts,
		    struct snapshot **ret_snapshot, struct snapshot_error *ret_error)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
	_cleanup_close_ int dir_fd = -1, root_fd = -1;
	_cleanup_free_ char *text = NULL, *real = NULL;
	_cleanup_(snapshot_manifest_clear) struct snapshot_manifest manifest = {0};
	_cleanup_free_ struct snapshot_stamp *stamps = NULL;
	_cleanup_free_ struct snapshot *s = NULL;
	uint8_t sig[SNAPSHOT_SIG_SIZE];
	size_t size;
	int r;

	r = snapshot_load_public_key(pubkey_path, &key, ret_error);
	if (r < 0)
		return r;
	dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir_fd < 0) {
		r = -errno;
		snapshot_error_set(ret_error, dir, "cannot open snapshot: %s", strerror(-r));
		return r;
	}
	r = read_signature(dir_fd, sig, ret_error);
	if (r < 0)
		return r;
	r = snapshot_read_file_at(dir_fd, "manifest", SNAPSHOT_MANIFEST_MAX, &text, &size);
	if (r < 0) {
		snapshot_error_set(ret_error, "manifest", "%s",
				   r == -ENOENT ? "missing" : strerror(-r));
		return r == -ENOENT || r == -EFBIG || r == -EBADFD ? -EBADMSG : r;
	}
	/* Nothing in the manifest is looked at before the signature holds. */
	r = snapshot_signature_check(key, text, size, sig);
	if (r < 0) {
		snapshot_error_set(ret_error, "manifest", "bad signature");
		return r;
	}
	r = snapshot_manifest_parse(text, size, &manifest, ret_error);
	if (r < 0)
		return r;
	root_fd = openat(dir_fd, "root", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (root_fd < 0) {
		r = -errno;
		snapshot_error_set(ret_error, "root", "%s",
				   r == -ENOENT			  ? "missing"
				   : r == -ENOTDIR || r == -ELOOP ? "not a directory"
								  : strerror(-r));
		return r;
	}
	r = check_tree(root_fd, &manifest, opts, &stamps, ret_error);
	if (r < 0)
		return r;

	real = realpath(dir, NULL);
	s = calloc(1, sizeof(*s));
	if (!real || !s || asprintf(&s->root_path, "%s/root", real) < 0)
		return -ENOMEM;
	/* The manifest's entries now belong to s: nothing is left to clear. */
	s->manifest = manifest;
	manifest = (struct snapshot_manifest){0};
	s->root_fd = TAKE_FD(root_fd);
	s->stamps = TAKE_PTR(stamps);
	if (opts)
		s->opts = *opts;
	s->stats.entries = s->manifest.count;
	for (size_t i = 0; i < s->manifest.count; i++)
		if (s->manifest.entries[i].type == SNAPSHOT_FILE) {
			s->stats.files++;
			s->stats.bytes += s->manifest.entries[i].size;
		}
	*ret_snapshot = TAKE_PTR(s);
	return 0;
}

void snapshot_free(struct snapshot *s)
{
	if (!s)
		return;
	snapshot_manifest_clear(&s->manifest);
	if (s->root_fd >= 0)
		close(s->root_fd);
	free(s->root_path);
	free(s->stamps);
	free(s);
}

const char *snapshot_root(const struct snapshot *s)
{
	return s->root_path;
}

int snapshot_root_fd(const struct snapshot *s)
{
	return s->root_fd;
}

int snapshot_recheck(struct snapshot *s, struct snapshot_error *ret_error)
{
	struct snapshot_stamp *stamps = NULL;
	struct snapshot_error changed = {0};
	int r;

	if (s->changed) {
		if (ret_error)
			*ret_error = s->change;
		return -EBADMSG;
	}
	r = snapshot_stamps_check(s->root_fd, s->stamps, s->manifest.count, &changed);
	if (r != -EBADMSG)
		return r;
	/* Something moved: the whole tree again, against the signed manifest,
	 * through the same fd. */
	r = check_tree(s->root_fd, &s->manifest, &s->opts, &stamps, &changed);
	if (r == -EBADMSG) {
		/* refused from now on, without hashing again, until the next
		 * policy load verifies it anew */
		s->changed = true;
		s->change = changed;
	}
	if (r < 0) {
		if (ret_error)
			*ret_error = changed;
		return r;
	}
	free(s->stamps);
	s->stamps = stamps;
	return 1;
}

void snapshot_get_stats(const struct snapshot *s, struct snapshot_stats *ret_stats)
{
	*ret_stats = s->stats;
}

/* Resolve path against the verified manifest as the kernel would with the
 * snapshot root as "/" (RESOLVE_IN_ROOT): symlinks followed through their
 * recorded targets, ".." never above the root. */
static int resolve_in_manifest(const struct snapshot_manifest *m, const char *path,
			       const struct snapshot_entry **ret_entry,
			       struct snapshot_error *error)
{
	char cur[SNAPSHOT_PATH_MAX + 1] = "/";
	char rest[2 * SNAPSHOT_PATH_MAX + 4], next[2 * SNAPSHOT_PATH_MAX + 4];
	const struct snapshot_entry *e = snapshot_manifest_find(m, "/");
	unsigned links = 0;
	char *p;

	if (strlen(path) > SNAPSHOT_PATH_MAX) {
		snapshot_error_set(error, path, "path too long");
		return -ENAMETOOLONG;
	}
	strcpy(rest, path);
	p = rest;
	for (;;) {
		size_t clen, cur_len = strlen(cur);
		char *comp;

		while (*p == '/')
			p++;
		if (!*p)
			break;
		comp = p;
		while (*p && *p != '/')
			p++;
		clen = (size_t)(p - comp);
		if (e->type != SNAPSHOT_DIR) {
			snapshot_error_set_entry(error, cur, "not a directory (resolving %s)",
						 path);
			return -ENOTDIR;
		}
		if (clen == 1 && comp[0] == '.')
			continue;
		if (clen == 2 && comp[0] == '.' && comp[1] == '.') {
			char *slash = strrchr(cur, '/');
			if (slash == cur)
				cur[1] = '\0';
			else
				*slash = '\0';
			e = snapshot_manifest_find(m, cur);
			continue;
		}
		if (cur_len + 1 + clen > SNAPSHOT_PATH_MAX) {
			snapshot_error_set(error, path, "path too long");
			return -ENAMETOOLONG;
		}
		if (cur_len > 1)
			cur[cur_len++] = '/';
		memcpy(cur + cur_len, comp, clen);
		cur[cur_len + clen] = '\0';
		e = snapshot_manifest_find(m, cur);
		if (!e) {
			snapshot_error_set_entry(error, cur, "not in the manifest");
			return -ENOENT;
		}
		if (e->type == SNAPSHOT_SYMLINK) {
			if (++links > SYMLINK_MAX) {
				snapshot_error_set(error, path, "too many levels of symlinks");
				return -ELOOP;
			}
			/* Continue with target + the rest of the path. */
			size_t tlen = strlen(e->target), plen = strlen(p);

			if (tlen + 1 + plen >= sizeof(next)) {
				snapshot_error_set(error, path, "path too long");
				return -ENAMETOOLONG;
			}
			memcpy(next, e->target, tlen);
			next[tlen] = '/';
			memcpy(next + tlen + 1, p, plen + 1);
			memcpy(rest, next, tlen + plen + 2);
			p = rest;
			if (e->target[0] == '/')
				strcpy(cur, "/");
			else {
				char *slash = strrchr(cur, '/');
				if (slash == cur)
					cur[1] = '\0';
				else
					*slash = '\0';
			}
			e = snapshot_manifest_find(m, cur);
		}
	}
	*ret_entry = e;
	return 0;
}

static int create_memfd(const char *path, bool exec)
{
	const char *base = strrchr(path, '/');
	char name[64];
	int fd;

	snprintf(name, sizeof(name), "mtd-%s:%s", exec ? "exec" : "file", base ? base + 1 : path);
	fd = memfd_create(name,
			  MFD_CLOEXEC | MFD_ALLOW_SEALING | (exec ? MFD_EXEC : MFD_NOEXEC_SEAL));
	if (fd < 0 && errno == EINVAL)
		fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING); /* before Linux 6.3 */
	return fd < 0 ? -errno : fd;
}

/* Copy size bytes from src straight into the memfd's pages, hashing them. */
static int copy_hashing(int src, int memfd, uint64_t size, uint8_t ret_sha[SNAPSHOT_SHA256_SIZE],
			uint64_t *ret_copied)
{
	struct snapshot_hasher h;
	uint8_t *map = NULL;
	uint64_t done = 0;
	unsigned int len = 0;
	char extra;
	int r = snapshot_hasher_init(&h);

	if (r < 0)
		return r;
	if (EVP_DigestInit_ex(h.ctx, h.md, NULL) != 1) {
		r = -EIO;
		goto out;
	}
	if (size > 0) {
		if (ftruncate(memfd, (off_t)size) < 0) {
			r = -errno;
			goto out;
		}
		map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
		if (map == MAP_FAILED) {
			map = NULL;
			r = -errno;
			goto out;
		}
	}
	while (done < size) {
		size_t want = size - done > h.buffer_size ? h.buffer_size : (size_t)(size - done);
		ssize_t n = read(src, map + done, want);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto out;
		}
		if (n == 0)
			break; /* shrank: the size check reports it */
		if (EVP_DigestUpdate(h.ctx, map + done, (size_t)n) != 1) {
			r = -EIO;
			goto out;
		}
		done += (uint64_t)n;
	}
	/* One byte more means it grew. */
	while (done == size && (r = (int)read(src, &extra, 1)) < 0 && errno == EINTR)
		;
	if (r < 0) {
		r = -errno;
		goto out;
	}
	if (r > 0)
		done++;
	r = 0;
	if (EVP_DigestFinal_ex(h.ctx, ret_sha, &len) != 1)
		r = -EIO;
	*ret_copied = done;
out:
	if (map)
		munmap(map, size);
	snapshot_hasher_done(&h);
	return r;
}

static int open_verified(const struct snapshot *s, const char *path_inside_root, bool exec,
			 int *ret_fd, struct snapshot_error *ret_error)
{
	const struct snapshot_entry *e;
	_cleanup_close_ int fd = -1, memfd = -1;
	uint8_t sha[SNAPSHOT_SHA256_SIZE];
	uint64_t copied = 0;
	struct stat st;
	int r;

	r = resolve_in_manifest(&s->manifest, path_inside_root, &e, ret_error);
	if (r < 0)
		return r;
	if (e->type != SNAPSHOT_FILE) {
		snapshot_error_set_entry(ret_error, e->path, "not a regular file (%s)",
					 snapshot_type_name(e->type));
		return -EACCES;
	}
	/* The manifest path has no symlink left: refuse any on disk. */
	fd = snapshot_open_beneath(s->root_fd, e->path, O_RDONLY | O_NONBLOCK);
	if (fd < 0) {
		snapshot_error_set_entry(ret_error, e->path,
					 "changed since verification: cannot open: %s",
					 strerror(-fd));
		return fd == -ELOOP || fd == -EXDEV || fd == -ENOENT ? -EBADMSG : fd;
	}
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != e->size) {
		snapshot_error_set_entry(ret_error, e->path, "changed since verification: %s",
					 !S_ISREG(st.st_mode) ? "not a regular file"
							      : "size differs");
		return -EBADMSG;
	}
	memfd = create_memfd(e->path, exec);
	if (memfd < 0) {
		snapshot_error_set_entry(ret_error, e->path, "memfd_create: %s", strerror(-memfd));
		return memfd;
	}
	r = copy_hashing(fd, memfd, e->size, sha, &copied);
	if (r < 0) {
		snapshot_error_set_entry(ret_error, e->path, "cannot read: %s", strerror(-r));
		return r;
	}
	if (copied != e->size) {
		snapshot_error_set_entry(ret_error, e->path,
					 "changed since verification: size differs");
		return -EBADMSG;
	}
	if (memcmp(sha, e->sha256, sizeof(sha)) != 0)
		return content_differs(ret_error, e->path, sha, e->sha256,
				       "changed since verification: ");
	if (fcntl(memfd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) <
	    0) {
		r = -errno;
		snapshot_error_set_entry(ret_error, e->path, "cannot seal the memfd: %s",
					 strerror(-r));
		return r;
	}
	*ret_fd = TAKE_FD(memfd);
	return 0;
}

int snapshot_open_exec(const struct snapshot *s, const char *path_inside_root, int *ret_fd,
		       struct snapshot_error *ret_error)
{
	return open_verified(s, path_inside_root, true, ret_fd, ret_error);
}

int snapshot_open_file(const struct snapshot *s, const char *path_inside_root, int *ret_fd,
		       struct snapshot_error *ret_error)
{
	return open_verified(s, path_inside_root, false, ret_fd, ret_error);
}
