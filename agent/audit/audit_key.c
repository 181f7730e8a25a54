/* SPDX-License-Identifier: MIT */
/* Audit key files and the one-way key evolution.
 *
 * STATE_DIR/audit.key holds the writer's current key, one line of JSON in a
 * fixed layout (parsed strictly, so key material never passes through a
 * general-purpose allocator that would not erase it):
 *
 *   {"version":1,"epoch":E,"key":"<64 hex>","seal_seq":N,"seal_mac":"<64 hex>"}
 *
 * It is replaced atomically (temp file, fsync, rename, fsync of the
 * directory). The verification key file is 64 hex digits and a newline,
 * created once with O_EXCL and never rewritten. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "audit_internal.h"
#include "macro.h"
#include "secret_file.h"

#define KEY_STATE_FILE_MAX 512

int audit_key_next(const uint8_t key[AUDIT_KEY_SIZE], uint8_t ret_next[AUDIT_KEY_SIZE])
{
	return audit_hmac(key, AUDIT_EVOLVE_LABEL, strlen(AUDIT_EVOLVE_LABEL), ret_next);
}

void audit_key_evolve(const uint8_t key[AUDIT_KEY_SIZE], uint8_t ret_next[AUDIT_KEY_SIZE])
{
	/* HMAC-SHA256 fails only when the crypto library itself is broken
	 * (no default provider); going on with a wrong key would be worse. */
	if (audit_key_next(key, ret_next) < 0)
		abort();
}

void audit_key_state_cleanse(struct audit_key_state *state)
{
	OPENSSL_cleanse(state, sizeof(*state));
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads a small file that holds a key whole; fails -EFBIG when it has max
 * bytes or more, -EPERM when it may not hold a secret (secret_file.h). */
static int read_small(int dir_fd, const char *path, char *buf, size_t max, size_t *ret_len)
{
	_cleanup_close_ int fd = -1;
	struct stat st;
	size_t len = 0;

	fd = openat(dir_fd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (secret_file_refusal(&st))
		return -EPERM;
	for (;;) {
		ssize_t n = read(fd, buf + len, max - len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == max)
			return -EFBIG;
	}
	*ret_len = len;
	return 0;
}

/* A strict cursor over the fixed layout of audit.key. */
struct cursor {
	const char *p, *end;
};

static bool expect(struct cursor *c, const char *lit)
{
	size_t n = strlen(lit);

	if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n) != 0)
		return false;
	c->p += n;
	return true;
}

static bool number(struct cursor *c, uint64_t max, uint64_t *ret)
{
	uint64_t v = 0;
	const char *start = c->p;

	while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
		unsigned d = (unsigned)(*c->p - '0');

		if (c->p - start > 0 && *start == '0')
			return false; /* no leading zeros */
		if (v > (max - d) / 10)
			return false;
		v = v * 10 + d;
		c->p++;
	}
	if (c->p == start)
		return false;
	*ret = v;
	return true;
}

static bool hex64(struct cursor *c, char *out)
{
	if (c->end - c->p < AUDIT_KEY_HEX_LEN || !audit_is_mac_hex(c->p, AUDIT_KEY_HEX_LEN))
		return false;
	memcpy(out, c->p, AUDIT_KEY_HEX_LEN);
	out[AUDIT_KEY_HEX_LEN] = '\0';
	c->p += AUDIT_KEY_HEX_LEN;
	return true;
}

int audit_key_state_load(int dir_fd, struct audit_key_state *ret_state)
{
	char buf[KEY_STATE_FILE_MAX], key_hex[AUDIT_KEY_HEX_LEN + 1];
	struct audit_key_state st = {};
	struct cursor c;
	uint64_t version;
	size_t len;
	int r;

	r = read_small(dir_fd, AUDIT_KEY_FILE, buf, sizeof(buf), &len);
	if (r < 0)
		goto out;
	c = (struct cursor){buf, buf + len};
	r = -EBADMSG;
	if (!expect(&c, "{\"version\":") || !number(&c, 1, &version) || version != 1 ||
	    !expect(&c, ",\"epoch\":") || !number(&c, AUDIT_SEQ_MAX, &st.epoch) ||
	    !expect(&c, ",\"key\":\"") || !hex64(&c, key_hex) || !expect(&c, "\",\"seal_seq\":") ||
	    !number(&c, AUDIT_SEQ_MAX, &st.seal_seq) || !expect(&c, ",\"seal_mac\":\"") ||
	    !hex64(&c, st.seal_mac) || !expect(&c, "\"}\n") || c.p != c.end)
		goto out;
	if (audit_unhex(key_hex, AUDIT_KEY_HEX_LEN, st.key) < 0)
		goto out;
	*ret_state = st;
	r = 0;
out:
	OPENSSL_cleanse(buf, sizeof(buf));
	OPENSSL_cleanse(key_hex, sizeof(key_hex));
	audit_key_state_cleanse(&st);
	return r;
}

int audit_key_state_write_temp(int dir_fd, const struct audit_key_state *state,
			       char ret_name[AUDIT_KEY_TEMP_NAME_MAX])
{
	char buf[KEY_STATE_FILE_MAX], key_hex[AUDIT_KEY_HEX_LEN + 1], tmp[AUDIT_KEY_TEMP_NAME_MAX];
	uint8_t rnd[8];
	char rnd_hex[sizeof(rnd) * 2 + 1];
	int fd = -1, n, r;

	if (!audit_is_mac_hex(state->seal_mac, strlen(state->seal_mac)))
		return -EINVAL;
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return -EIO;
	audit_hex(rnd, sizeof(rnd), rnd_hex);
	snprintf(tmp, sizeof(tmp), "%s%s", AUDIT_KEY_TEMP_PREFIX, rnd_hex);

	audit_hex(state->key, AUDIT_KEY_SIZE, key_hex);
	n = snprintf(buf, sizeof(buf),
		     "{\"version\":1,\"epoch\":%" PRIu64 ",\"key\":\"%s\",\"seal_seq\":%" PRIu64
		     ",\"seal_mac\":\"%s\"}\n",
		     state->epoch, key_hex, state->seal_seq, state->seal_mac);
	if (n < 0 || (size_t)n >= sizeof(buf)) {
		r = -EINVAL;
		goto out;
	}

	fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY,
		    0600);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	r = write_all(fd, buf, (size_t)n);
	if (r >= 0 && fsync(fd) < 0)
		r = -errno;
	if (r < 0) {
		unlinkat(dir_fd, tmp, 0);
		goto out;
	}
	memcpy(ret_name, tmp, sizeof(tmp));
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	OPENSSL_cleanse(buf, sizeof(buf));
	OPENSSL_cleanse(key_hex, sizeof(key_hex));
	return r;
}

int audit_key_state_rename(int dir_fd, const char *temp_name, bool no_replace)
{
	if (renameat2(dir_fd, temp_name, dir_fd, AUDIT_KEY_FILE,
		      no_replace ? RENAME_NOREPLACE : 0) < 0)
		return -errno;
	return 0;
}

int audit_key_state_store(int dir_fd, const struct audit_key_state *state, bool no_replace)
{
	char tmp[AUDIT_KEY_TEMP_NAME_MAX];
	int r;

	r = audit_key_state_write_temp(dir_fd, state, tmp);
	if (r < 0)
		return r;
	r = audit_key_state_rename(dir_fd, tmp, no_replace);
	if (r < 0) {
		unlinkat(dir_fd, tmp, 0);
		return r;
	}
	if (fsync(dir_fd) < 0)
		return -errno;
	return 0;
}

int audit_key_temp_sweep(int dir_fd)
{
	_cleanup_close_ int fd = dup(dir_fd);
	struct dirent *de;
	DIR *d;
	int r = 0;

	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d)
		return -errno;
	fd = -1; /* owned by d */
	rewinddir(d);
	while ((de = readdir(d)))
		if (strncmp(de->d_name, AUDIT_KEY_TEMP_PREFIX, strlen(AUDIT_KEY_TEMP_PREFIX)) ==
			0 &&
		    unlinkat(dir_fd, de->d_name, 0) < 0 && errno != ENOENT)
			r = -errno;
	closedir(d);
	return r;
}

int audit_open_parent_dir(const char *path)
{
	_cleanup_free_ char *copy = strdup(path);
	char *slash;
	int fd;

	if (!copy)
		return -ENOMEM;
	slash = strrchr(copy, '/');
	if (!slash)
		fd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	else if (slash == copy)
		fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	else {
		*slash = '\0';
		fd = open(copy, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	return fd < 0 ? -errno : fd;
}

/* The verification key file's one line: 64 hex digits and a newline. The
 * hex copy of the key is erased before returning. */
static int write_key_hex(int fd, const uint8_t key[AUDIT_KEY_SIZE])
{
	char hex[AUDIT_KEY_HEX_LEN + 2];
	int r;

	audit_hex(key, AUDIT_KEY_SIZE, hex);
	hex[AUDIT_KEY_HEX_LEN] = '\n';
	hex[AUDIT_KEY_HEX_LEN + 1] = '\0';
	r = write_all(fd, hex, AUDIT_KEY_HEX_LEN + 1);
	OPENSSL_cleanse(hex, sizeof(hex));
	return r;
}

int audit_key_init(const char *state_dir, const char *key_out)
{
	_cleanup_(audit_key_state_cleanse) struct audit_key_state st = {};
	_cleanup_close_ int dir_fd = -1, out_fd = -1, out_dir_fd = -1;
	int r;

	if (!state_dir || !key_out)
		return -EINVAL;
	dir_fd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir_fd < 0)
		return -errno;
	if (faccessat(dir_fd, AUDIT_KEY_FILE, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return -EEXIST;
	if (errno != ENOENT)
		return -errno;
	out_dir_fd = audit_open_parent_dir(key_out);
	if (out_dir_fd < 0)
		return out_dir_fd;

	if (RAND_bytes(st.key, sizeof(st.key)) != 1)
		return -EIO;
	memcpy(st.seal_mac, AUDIT_ZERO_MAC, sizeof(st.seal_mac));

	out_fd =
	    open(key_out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
	if (out_fd < 0)
		return -errno;
	r = write_key_hex(out_fd, st.key);
	if (r >= 0 && fsync(out_fd) < 0)
		r = -errno;
	if (r >= 0 && fsync(out_dir_fd) < 0)
		r = -errno;
	if (r >= 0)
		r = audit_key_state_store(dir_fd, &st, true);
	if (r < 0)
		unlink(key_out); /* we created it; let a retry start clean */
	return r < 0 ? r : 0;
}

int audit_key_read(const char *path, uint8_t ret_key[AUDIT_KEY_SIZE])
{
	char buf[AUDIT_KEY_HEX_LEN + 3];
	uint8_t key[AUDIT_KEY_SIZE];
	size_t len;
	int r;

	if (!path)
		return -EINVAL;
	r = read_small(AT_FDCWD, path, buf, sizeof(buf), &len);
	if (r == -EFBIG)
		r = -EBADMSG;
	if (r < 0)
		goto out;
	r = -EBADMSG;
	if (len == AUDIT_KEY_HEX_LEN + 1 && buf[AUDIT_KEY_HEX_LEN] == '\n')
		len--;
	if (len != AUDIT_KEY_HEX_LEN)
		goto out;
	for (size_t i = 0; i < len; i++)
		if (buf[i] >= 'A' && buf[i] <= 'F')
			buf[i] = (char)(buf[i] - 'A' + 'a');
	if (audit_unhex(buf, len, key) < 0)
		goto out;
	memcpy(ret_key, key, sizeof(key));
	r = 0;
out:
	OPENSSL_cleanse(buf, sizeof(buf));
	OPENSSL_cleanse(key, sizeof(key));
	return r;
}
