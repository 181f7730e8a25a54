/* SPDX-License-Identifier: MIT */
/* The upper copy of a quarantined instance, its MANIFEST, and checking an
 * entry against its manifest (docs/quarantine.md). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "macro.h"
#include "quarantine.h"
#include "quarantine_internal.h"

#define MANIFEST_HEADER "mtd-quarantine-manifest 1\n"
#define MAX_PROBLEMS 32

static const char hex[] = "0123456789abcdef";

static void to_hex(const unsigned char *d, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[d[i] >> 4];
		out[2 * i + 1] = hex[d[i] & 15];
	}
	out[2 * n] = '\0';
}

static int sha256_hex(const void *data, size_t size, char out[65])
{
	unsigned char md[32];
	unsigned int n = 0;

	if (!EVP_Digest(data, size, md, &n, EVP_sha256(), NULL) || n != 32)
		return -EIO;
	to_hex(md, 32, out);
	return 0;
}

/* Bytes outside 0x21..0x7e, and '\', as \xHH (as in the snapshot manifest). */
static char *escape(const char *raw)
{
	size_t n = strlen(raw);
	char *out = malloc(4 * n + 1), *o = out;

	if (!out)
		return NULL;
	for (const unsigned char *p = (const unsigned char *)raw; *p; p++) {
		if (*p >= 0x21 && *p <= 0x7e && *p != '\\') {
			*o++ = (char)*p;
		} else {
			*o++ = '\\';
			*o++ = 'x';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 15];
		}
	}
	*o = '\0';
	return out;
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static char *unescape(const char *esc)
{
	char *out = malloc(strlen(esc) + 1), *o = out;

	if (!out)
		return NULL;
	for (const char *p = esc; *p; p++) {
		if (*p != '\\') {
			*o++ = *p;
			continue;
		}
		if (p[1] != 'x' || hexval(p[2]) < 0 || hexval(p[3]) < 0 ||
		    (hexval(p[2]) << 4 | hexval(p[3])) == 0) {
			free(out);
			return NULL;
		}
		*o++ = (char)(hexval(p[2]) << 4 | hexval(p[3]));
		p += 3;
	}
	*o = '\0';
	return out;
}

/* --- building ------------------------------------------------------------------------- */

static int add_line(struct quarantine_copy *c, char type, mode_t mode, uid_t uid, gid_t gid,
		    uint64_t size, const char *sha, const char *flags, const char *raw_path)
{
	_cleanup_free_ char *esc = escape(raw_path);
	struct quarantine_line *nl;
	char *text;
	int n;

	if (!esc)
		return -ENOMEM;
	n = asprintf(&text, "%c %04o %u %u %llu %s %s %s\n", type, (unsigned)(mode & 07777),
		     (unsigned)uid, (unsigned)gid, (unsigned long long)size, sha ? sha : "-",
		     flags && flags[0] ? flags : "-", esc);
	if (n < 0)
		return -ENOMEM;
	nl = realloc(c->lines, (c->n_lines + 1) * sizeof(*nl));
	if (!nl) {
		free(text);
		return -ENOMEM;
	}
	c->lines = nl;
	c->lines[c->n_lines].text = text;
	c->lines[c->n_lines].path = text + n - 1 - strlen(esc);
	c->n_lines++;
	return 0;
}

int quarantine_manifest_begin(struct quarantine_copy *c)
{
	c->lines = NULL;
	c->n_lines = 0;
	return 0;
}

void quarantine_copy_done(struct quarantine_copy *c)
{
	for (size_t i = 0; i < c->n_lines; i++)
		free(c->lines[i].text);
	free(c->lines);
	c->lines = NULL;
	c->n_lines = 0;
}

static int open_read_nofollow(int at, const char *name)
{
	int fd =
	    openat(at, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_NOATIME | O_CLOEXEC);

	if (fd < 0 && errno == EPERM)
		fd = openat(at, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Where the data at or after pos begins: pos itself when the file system
 * cannot tell (no SEEK_DATA), size when only a hole is left. */
static off_t next_data(int fd, off_t pos, off_t size)
{
	off_t d = lseek(fd, pos, SEEK_DATA);

	if (d >= 0)
		return d < size ? d : size;
	return errno == ENXIO ? size : pos;
}

/* Copy at most limit bytes of src (size bytes long) into dst while hashing;
 * *ret_more when src had more. Holes stay holes: an instance's sparse file
 * of a terabyte costs the evidence store nothing, though it counts against
 * limit and its zeros are hashed (MANIFEST holds the hash of the content). */
static int copy_bytes(int src, int dst, off_t size, uint64_t limit, uint64_t *ret_copied,
		      bool *ret_more, char sha[65])
{
	static const unsigned char zeros[65536];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char md[32], buf[65536];
	uint64_t copied = 0;
	off_t data = 0;
	int r = 0;

	if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
		EVP_MD_CTX_free(ctx);
		return -ENOMEM;
	}
	*ret_more = false;
	for (;;) {
		size_t want = sizeof(buf);
		ssize_t n;

		if (copied >= limit) {
			*ret_more = (uint64_t)size > copied || read(src, buf, 1) > 0;
			break;
		}
		if (limit - copied < want)
			want = (size_t)(limit - copied);
		if ((off_t)copied >= data)
			data = next_data(src, (off_t)copied, size);
		if ((off_t)copied < data) {
			/* In a hole: skip it in dst, hash its zeros. */
			if ((uint64_t)(data - (off_t)copied) < want)
				want = (size_t)(data - (off_t)copied);
			if (lseek(dst, (off_t)(copied + want), SEEK_SET) < 0 ||
			    lseek(src, (off_t)(copied + want), SEEK_SET) < 0) {
				r = -errno;
				break;
			}
			EVP_DigestUpdate(ctx, zeros, want);
			copied += want;
			continue;
		}
		n = read(src, buf, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			break;
		}
		if (n == 0)
			break;
		r = write_all(dst, (const char *)buf, (size_t)n);
		if (r < 0)
			break;
		EVP_DigestUpdate(ctx, buf, (size_t)n);
		copied += (uint64_t)n;
	}
	/* A file that ends in a hole: its size, not its last data. */
	if (r == 0) {
		struct stat dst_st;

		if (fstat(dst, &dst_st) == 0 && S_ISREG(dst_st.st_mode) &&
		    ftruncate(dst, (off_t)copied) < 0)
			r = -errno;
	}
	if (r == 0) {
		unsigned int len = 0;
		EVP_DigestFinal_ex(ctx, md, &len);
		to_hex(md, 32, sha);
		*ret_copied = copied;
	}
	EVP_MD_CTX_free(ctx);
	return r;
}

static int copy_file(struct quarantine_copy *c, int src_dir, int dst_dir, const char *name,
		     const char *path, const struct stat *st)
{
	_cleanup_close_ int src = open_read_nofollow(src_dir, name), dst = -1;
	uint64_t copied = 0, limit = c->budget > c->used ? c->budget - c->used : 0;
	char sha[65], flags[48] = "";
	struct stat now;
	bool more;
	int r;

	c->files++;
	c->found += (uint64_t)st->st_size;
	if (src < 0 || fstat(src, &now) < 0 || !S_ISREG(now.st_mode) || now.st_ino != st->st_ino)
		return add_line(c, 'f', st->st_mode, st->st_uid, st->st_gid, 0, NULL, "unreadable",
				path);
	dst = openat(dst_dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (dst < 0)
		return -errno;
	r = copy_bytes(src, dst, now.st_size, limit, &copied, &more, sha);
	if (r < 0)
		return r;
	c->used += copied;
	c->saved += copied;
	if (more) {
		c->truncated = true;
		snprintf(flags, sizeof(flags), "truncated=%llu", (unsigned long long)now.st_size);
	}
	return add_line(c, 'f', st->st_mode, st->st_uid, st->st_gid, copied, sha, flags, path);
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int copy_dir(struct quarantine_copy *c, int src, int dst, const char *rel, unsigned depth);

static int copy_entry(struct quarantine_copy *c, int src, int dst, const char *name,
		      const char *path, unsigned depth)
{
	_cleanup_close_ int s = -1, d = -1;
	struct stat st;
	char target[PATH_MAX], sha[65], flags[48] = "";
	uint64_t cost;
	ssize_t n;

	if (fstatat(src, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0; /* the instance is frozen: only a race with nothing */
	/* Every entry pays its manifest line; content pays its bytes. */
	cost = QUARANTINE_LINE_FIXED + 4 * strlen(path);
	if (c->used + cost > c->budget) {
		c->truncated = true;
		return 0;
	}
	c->used += cost;
	c->entries++;
	switch (st.st_mode & S_IFMT) {
	case S_IFDIR:
		s = openat(src, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (s < 0)
			return add_line(c, 'd', st.st_mode, st.st_uid, st.st_gid, 0, NULL,
					"unreadable", path);
		if (fgetxattr(s, "trusted.overlay.opaque", flags, 1) == 1 && flags[0] == 'y')
			snprintf(flags, sizeof(flags), "opaque");
		else
			flags[0] = '\0';
		if (depth >= QUARANTINE_MAX_DEPTH) {
			c->truncated = true;
			snprintf(flags, sizeof(flags), "too-deep");
		}
		if (mkdirat(dst, name, 0700) < 0)
			return -errno;
		add_line(c, 'd', st.st_mode, st.st_uid, st.st_gid, 0, NULL, flags, path);
		if (depth >= QUARANTINE_MAX_DEPTH)
			return 0;
		d = openat(dst, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (d < 0)
			return -errno;
		return copy_dir(c, s, d, path, depth + 1);
	case S_IFREG:
		return copy_file(c, src, dst, name, path, &st);
	case S_IFLNK:
		n = readlinkat(src, name, target, sizeof(target) - 1);
		if (n < 0)
			return add_line(c, 'l', st.st_mode, st.st_uid, st.st_gid, 0, NULL,
					"unreadable", path);
		target[n] = '\0';
		if (symlinkat(target, dst, name) < 0)
			return -errno;
		if (sha256_hex(target, (size_t)n, sha) < 0)
			return -EIO;
		return add_line(c, 'l', st.st_mode, st.st_uid, st.st_gid, (uint64_t)n, sha, NULL,
				path);
	case S_IFCHR:
		if (major(st.st_rdev) == 0 && minor(st.st_rdev) == 0)
			return add_line(c, 'w', st.st_mode, st.st_uid, st.st_gid, 0, NULL, NULL,
					path);
		snprintf(flags, sizeof(flags), "rdev=%u:%u", major(st.st_rdev), minor(st.st_rdev));
		return add_line(c, 'c', st.st_mode, st.st_uid, st.st_gid, 0, NULL, flags, path);
	case S_IFBLK:
		snprintf(flags, sizeof(flags), "rdev=%u:%u", major(st.st_rdev), minor(st.st_rdev));
		return add_line(c, 'b', st.st_mode, st.st_uid, st.st_gid, 0, NULL, flags, path);
	case S_IFIFO:
		return add_line(c, 'p', st.st_mode, st.st_uid, st.st_gid, 0, NULL, NULL, path);
	default:
		return add_line(c, 's', st.st_mode, st.st_uid, st.st_gid, 0, NULL, NULL, path);
	}
}

/* Names sorted, so what the cap cuts does not depend on readdir order. */
static int copy_dir(struct quarantine_copy *c, int src, int dst, const char *rel, unsigned depth)
{
	char **names = NULL;
	size_t n = 0;
	int fd, r = 0;
	DIR *d;

	fd = fcntl(src, F_DUPFD_CLOEXEC, 3);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	for (struct dirent *de; (de = readdir(d));) {
		char **nn;

		if (streq(de->d_name, ".") || streq(de->d_name, ".."))
			continue;
		nn = realloc(names, (n + 1) * sizeof(char *));
		if (!nn || !(nn[n] = strdup(de->d_name))) {
			names = nn ? nn : names;
			r = -ENOMEM;
			break;
		}
		names = nn;
		n++;
	}
	closedir(d);
	if (r == 0 && n > 1)
		qsort(names, n, sizeof(char *), name_cmp);
	for (size_t i = 0; r == 0 && i < n; i++) {
		_cleanup_free_ char *path = NULL;

		if (asprintf(&path, "%s/%s", rel, names[i]) < 0) {
			r = -ENOMEM;
			break;
		}
		r = copy_entry(c, src, dst, names[i], path, depth);
		if (r < 0)
			snprintf(c->error_path, sizeof(c->error_path), "%s", path);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return r;
}

int quarantine_copy_upper(struct quarantine_copy *c, int upper_fd, int entry)
{
	_cleanup_close_ int src = -1, dst = -1;
	struct stat st;
	int r;

	src = openat(upper_fd, "upper", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (src < 0 || fstat(src, &st) < 0)
		return -errno;
	if (mkdirat(entry, "upper", 0700) < 0)
		return -errno;
	dst = openat(entry, "upper", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dst < 0)
		return -errno;
	r = add_line(c, 'd', st.st_mode, st.st_uid, st.st_gid, 0, NULL, NULL, "upper");
	if (r < 0)
		return r;
	return copy_dir(c, src, dst, "upper", 0);
}

int quarantine_write_file(struct quarantine_copy *c, int entry, const char *name, const char *text)
{
	_cleanup_close_ int fd = -1;
	size_t n = strlen(text);
	char sha[65];
	int r;

	fd = openat(entry, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	r = write_all(fd, text, n);
	if (r < 0)
		return r;
	if (sha256_hex(text, n, sha) < 0)
		return -EIO;
	return add_line(c, 'f', 0600, geteuid(), getegid(), n, sha, NULL, name);
}

static int line_cmp(const void *a, const void *b)
{
	return strcmp(((const struct quarantine_line *)a)->path,
		      ((const struct quarantine_line *)b)->path);
}

int quarantine_manifest_finish(struct quarantine_copy *c, int entry, char ret_sha256[65])
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *text = NULL;
	size_t size = strlen(MANIFEST_HEADER), off;
	char sha[65];
	int r;

	qsort(c->lines, c->n_lines, sizeof(*c->lines), line_cmp);
	for (size_t i = 0; i < c->n_lines; i++)
		size += strlen(c->lines[i].text);
	text = malloc(size + 1);
	if (!text)
		return -ENOMEM;
	off = strlen(MANIFEST_HEADER);
	memcpy(text, MANIFEST_HEADER, off);
	for (size_t i = 0; i < c->n_lines; i++) {
		size_t l = strlen(c->lines[i].text);
		memcpy(text + off, c->lines[i].text, l);
		off += l;
	}
	fd = openat(entry, "MANIFEST", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400);
	if (fd < 0)
		return -errno;
	r = write_all(fd, text, size);
	if (r < 0)
		return r;
	if (sha256_hex(text, size, sha) < 0)
		return -EIO;
	memcpy(ret_sha256, sha, 65);
	return 0;
}

/* --- reading back ------------------------------------------------------------------------ */

typedef int (*tree_cb)(int dirfd, const char *name, const char *path, const struct stat *st,
		       void *userdata);

static int tree_walk(int fd, const char *rel, unsigned depth, tree_cb cb, void *userdata)
{
	DIR *d;
	int dup_fd, r = 0;

	if (depth > QUARANTINE_MAX_DEPTH + 2)
		return -ELOOP;
	dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (dup_fd < 0)
		return -errno;
	d = fdopendir(dup_fd);
	if (!d) {
		close(dup_fd);
		return -errno;
	}
	for (struct dirent *de; r == 0 && (de = readdir(d));) {
		_cleanup_free_ char *path = NULL;
		struct stat st;

		if (streq(de->d_name, ".") || streq(de->d_name, ".."))
			continue;
		if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (asprintf(&path, "%s%s%s", rel, rel[0] ? "/" : "", de->d_name) < 0) {
			r = -ENOMEM;
			break;
		}
		r = cb(fd, de->d_name, path, &st, userdata);
		if (r == 0 && S_ISDIR(st.st_mode)) {
			_cleanup_close_ int sub =
			    openat(fd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub >= 0)
				r = tree_walk(sub, path, depth + 1, cb, userdata);
		}
	}
	closedir(d);
	return r;
}

static int add_size(int dirfd, const char *name, const char *path, const struct stat *st,
		    void *userdata)
{
	if (S_ISREG(st->st_mode))
		*(uint64_t *)userdata += (uint64_t)st->st_size;
	return 0;
}

int quarantine_tree_bytes(int fd, uint64_t *ret)
{
	uint64_t total = 0;
	int r = tree_walk(fd, "", 0, add_size, &total);

	if (r < 0)
		return r;
	*ret = total;
	return 0;
}

struct mentry {
	char type;
	uint64_t size;
	char sha[65];
	char *esc;
	char *raw;
};

struct verify {
	struct mentry *m;
	size_t n;
	json_t *problems;
	size_t n_problems;
	uint64_t bytes, files;
};

static void problem(struct verify *v, const char *esc_path, const char *what)
{
	v->n_problems++;
	if (json_array_size(v->problems) < MAX_PROBLEMS)
		json_array_append_new(v->problems, json_sprintf("%s: %s", esc_path, what));
}

static bool all_of(const char *s, size_t n, const char *set)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!strchr(set, s[i]))
			return false;
	return true;
}

/* One manifest line (without '\n') into e; false when malformed. */
static bool parse_line(char *line, struct mentry *e)
{
	char *f[8], *save = NULL, *end;
	size_t k = 0;

	for (char *t = strtok_r(line, " ", &save); t && k < 8; t = strtok_r(NULL, " ", &save))
		f[k++] = t;
	if (k != 8 || strtok_r(NULL, " ", &save) || strlen(f[0]) != 1 ||
	    !strchr("fdlwcbps", f[0][0]))
		return false;
	if (strlen(f[1]) != 4 || !all_of(f[1], 4, "01234567") ||
	    !all_of(f[2], strlen(f[2]), "0123456789") ||
	    !all_of(f[3], strlen(f[3]), "0123456789") ||
	    !all_of(f[4], strlen(f[4]), "0123456789") || strlen(f[4]) > 20)
		return false;
	if (!streq(f[5], "-") && (strlen(f[5]) != 64 || !all_of(f[5], 64, hex)))
		return false;
	errno = 0;
	e->size = strtoull(f[4], &end, 10);
	if (errno || *end)
		return false;
	e->type = f[0][0];
	snprintf(e->sha, sizeof(e->sha), "%s", f[5]);
	e->esc = f[7];
	e->raw = unescape(f[7]);
	if (!e->raw)
		return false;
	/* processes.json, metadata.json, upper, upper/... without . or .. */
	if (!streq(e->raw, "processes.json") && !streq(e->raw, "metadata.json") &&
	    !streq(e->raw, "upper") && strncmp(e->raw, "upper/", 6) != 0)
		return false;
	if (strstr(e->raw, "//") || strstr(e->raw, "/./") || strstr(e->raw, "/../") ||
	    e->raw[strlen(e->raw) - 1] == '/' ||
	    (strlen(e->raw) >= 2 && streq(e->raw + strlen(e->raw) - 2, "/.")) ||
	    (strlen(e->raw) >= 3 && streq(e->raw + strlen(e->raw) - 3, "/..")))
		return false;
	return true;
}

/* The parent directory of raw (relative to entry), O_NOFOLLOW per component. */
static int open_parent(int entry, const char *raw, const char **ret_name)
{
	_cleanup_close_ int fd = fcntl(entry, F_DUPFD_CLOEXEC, 3);
	const char *p = raw, *slash;

	if (fd < 0)
		return -errno;
	while ((slash = strchr(p, '/'))) {
		_cleanup_free_ char *name = strndup(p, (size_t)(slash - p));
		int next;

		if (!name)
			return -ENOMEM;
		next = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0)
			return -errno;
		closep(&fd);
		fd = next;
		p = slash + 1;
	}
	*ret_name = p;
	return TAKE_FD(fd);
}

static void check_entry(struct verify *v, int entry, const struct mentry *e)
{
	_cleanup_close_ int dir = -1, fd = -1;
	const char *name = NULL;
	struct stat st;
	char sha[65], target[PATH_MAX];
	uint64_t copied;
	bool more;
	bool saved = e->type == 'd' || ((e->type == 'f' || e->type == 'l') && e->sha[0] != '-');
	ssize_t n;

	dir = open_parent(entry, e->raw, &name);
	if (dir < 0 || fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (saved)
			problem(v, e->esc, "missing");
		return;
	}
	if (!saved) {
		problem(v, e->esc, "present but recorded as not saved");
		return;
	}
	if ((e->type == 'd' && !S_ISDIR(st.st_mode)) || (e->type == 'f' && !S_ISREG(st.st_mode)) ||
	    (e->type == 'l' && !S_ISLNK(st.st_mode))) {
		problem(v, e->esc, "type differs");
		return;
	}
	if (e->type == 'd')
		return;
	if (e->type == 'l') {
		n = readlinkat(dir, name, target, sizeof(target));
		if (n < 0 || (uint64_t)n != e->size || sha256_hex(target, (size_t)n, sha) < 0 ||
		    !streq(sha, e->sha))
			problem(v, e->esc, "symlink target differs");
		return;
	}
	v->files++;
	v->bytes += (uint64_t)st.st_size;
	if ((uint64_t)st.st_size != e->size) {
		problem(v, e->esc, "size differs");
		return;
	}
	fd = open_read_nofollow(dir, name);
	closep(&dir);
	dir = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || dir < 0 ||
	    copy_bytes(fd, dir, st.st_size, e->size, &copied, &more, sha) < 0 || more ||
	    !streq(sha, e->sha))
		problem(v, e->esc, "content differs");
}

static int mentry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct mentry *)a)->esc, ((const struct mentry *)b)->esc);
}

static int check_listed(int dirfd, const char *name, const char *path, const struct stat *st,
			void *userdata)
{
	struct verify *v = userdata;
	_cleanup_free_ char *esc = NULL;
	struct mentry key;

	if (streq(path, "MANIFEST") || streq(path, "SUMMARY.json"))
		return 0;
	esc = escape(path);
	if (!esc)
		return -ENOMEM;
	key.esc = esc;
	if (!bsearch(&key, v->m, v->n, sizeof(*v->m), mentry_cmp))
		problem(v, esc, "not in the manifest");
	return 0;
}

/* Check entry against its MANIFEST: problems into v. */
static int verify_entry(int entry, struct verify *v, char sha[65])
{
	_cleanup_free_ char *text = NULL;
	size_t size, hl = strlen(MANIFEST_HEADER);
	char *p;
	int r;

	r = quarantine_read_at(entry, "MANIFEST", QUARANTINE_MANIFEST_MAX, &text, &size);
	if (r < 0) {
		problem(v, "MANIFEST", r == -ENOENT ? "missing" : "unreadable");
		return 0;
	}
	if (sha256_hex(text, size, sha) < 0)
		return -EIO;
	if (size < hl || memcmp(text, MANIFEST_HEADER, hl) != 0 || strlen(text) != size ||
	    text[size - 1] != '\n') {
		problem(v, "MANIFEST", "not a manifest");
		return 0;
	}
	for (p = text + hl; *p;) {
		char *nl = strchr(p, '\n');
		struct mentry *nm;

		*nl = '\0';
		nm = realloc(v->m, (v->n + 1) * sizeof(*nm));
		if (!nm)
			return -ENOMEM;
		v->m = nm;
		memset(&v->m[v->n], 0, sizeof(*v->m));
		if (!parse_line(p, &v->m[v->n])) {
			free(v->m[v->n].raw);
			problem(v, "MANIFEST", "malformed line");
			return 0;
		}
		if (v->n > 0 && strcmp(v->m[v->n - 1].esc, v->m[v->n].esc) >= 0) {
			v->n++;
			problem(v, "MANIFEST", "lines out of order");
			return 0;
		}
		v->n++;
		p = nl + 1;
	}
	for (size_t i = 0; i < v->n; i++)
		check_entry(v, entry, &v->m[i]);
	return tree_walk(entry, "", 0, check_listed, v);
}

int quarantine_inspect(const char *state_dir, const char *id, json_t **ret)
{
	_cleanup_close_ int store = -1, entry = -1;
	struct verify v = {.problems = json_array()};
	json_t *meta = NULL, *procs = NULL, *o;
	char sha[65] = "";
	int r;

	if (!quarantine_id_valid(id)) {
		json_decref(v.problems);
		return -EINVAL;
	}
	store = quarantine_open_store(state_dir, false);
	if (store >= 0)
		entry = openat(store, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (store < 0 || entry < 0) {
		json_decref(v.problems);
		return store < 0 ? store : -errno;
	}
	if (quarantine_load_json_at(entry, "metadata.json", &meta) < 0)
		problem(&v, "metadata.json", "unreadable");
	if (quarantine_load_json_at(entry, "processes.json", &procs) < 0)
		problem(&v, "processes.json", "unreadable");
	r = verify_entry(entry, &v, sha);
	for (size_t i = 0; i < v.n; i++)
		free(v.m[i].raw);
	free(v.m);
	if (r < 0) {
		json_decref(meta);
		json_decref(procs);
		json_decref(v.problems);
		return r;
	}
	o = json_pack("{s:s, s:o, s:o, s:{s:s, s:I, s:I, s:I}, s:b, s:I, s:o}", "id", id,
		      "metadata", meta ? meta : json_null(), "processes",
		      procs ? procs : json_null(), "manifest", "sha256", sha, "entries",
		      (json_int_t)v.n, "files", (json_int_t)v.files, "bytes", (json_int_t)v.bytes,
		      "verified", v.n_problems == 0, "n_problems", (json_int_t)v.n_problems,
		      "problems", v.problems);
	if (!o)
		return -ENOMEM;
	*ret = o;
	return 0;
}
