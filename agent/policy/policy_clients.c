/* SPDX-License-Identifier: MIT */
/* ClientKeys=DIR: the clients of a service, one NAME.key file of raw key
 * bytes each (docs/mtd.policy.5). Read at validation (policy check, load,
 * reload) and by the agent when it computes the clients' doors. */
#include <dirent.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy_internal.h"
#include "schedule.h"
#include "secret_file.h"

static void client_key_clear(struct policy_client_key *k)
{
	free(k->name);
	if (k->key) {
		explicit_bzero(k->key, k->key_len);
		free(k->key);
	}
	*k = (struct policy_client_key){0};
}

void policy_client_keys_free(struct policy_client_keys *keys)
{
	if (!keys)
		return;
	for (size_t i = 0; i < keys->count; i++)
		client_key_clear(&keys->items[i]);
	free(keys->items);
	*keys = (struct policy_client_keys){0};
}

static void client_keys_freep(struct policy_client_keys *keys)
{
	policy_client_keys_free(keys);
}

static void closedirp(DIR **d)
{
	if (*d)
		closedir(*d);
}

static int by_name(const void *a, const void *b)
{
	const struct policy_client_key *x = a, *y = b;
	return strcmp(x->name, y->name);
}

/* Sets *ret_error to "DIR/ENTRY: reason" (ENTRY may be NULL: "DIR: reason"). */
static int refuse(char **ret_error, int r, const char *dir, const char *entry, const char *fmt, ...)
    _printf_(5, 6);
static int refuse(char **ret_error, int r, const char *dir, const char *entry, const char *fmt, ...)
{
	_cleanup_free_ char *why = NULL;
	va_list ap;
	int k;

	if (!ret_error)
		return r;
	*ret_error = NULL;
	va_start(ap, fmt);
	k = vasprintf(&why, fmt, ap);
	va_end(ap);
	if (k < 0)
		return r;
	if (asprintf(ret_error, "%s%s%s: %s", dir, entry ? "/" : "", entry ? entry : "", why) < 0)
		*ret_error = NULL;
	return r;
}

/* The raw key of file entry (relative to dfd), errors naming where/entry. */
static int read_raw_key(int dfd, const char *where, const char *entry, uint8_t **ret_key,
			size_t *ret_len, char **ret_error)
{
	_cleanup_close_ int fd = -1;
	uint8_t buf[POLICY_CLIENT_KEY_MAX + 1], *key;
	size_t got = 0;
	const char *refusal;
	char facts[64];
	struct stat st;

	fd = openat(dfd, entry ? entry : where,
		    O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW);
	if (fd < 0)
		return refuse(ret_error, -errno, where, entry, "%s", strerror(errno));
	if (fstat(fd, &st) < 0)
		return refuse(ret_error, -errno, where, entry, "%s", strerror(errno));
	if (!S_ISREG(st.st_mode))
		return refuse(ret_error, -EINVAL, where, entry, "not a regular file");
	refusal = secret_file_refusal(&st);
	if (refusal) {
		secret_file_describe(&st, facts, sizeof(facts));
		return refuse(ret_error, -EPERM, where, entry, "%s (%s)", refusal, facts);
	}
	if (st.st_size < POLICY_CLIENT_KEY_MIN)
		return refuse(ret_error, -EINVAL, where, entry, "key shorter than %d bytes",
			      POLICY_CLIENT_KEY_MIN);
	if (st.st_size > POLICY_CLIENT_KEY_MAX)
		return refuse(ret_error, -EINVAL, where, entry, "key longer than %d bytes",
			      POLICY_CLIENT_KEY_MAX);
	/* read on the stack, kept in a buffer of its size: 64,000 clients'
	 * keys cost 64,000 small allocations, not 64,000 of the maximum */
	for (;;) {
		ssize_t r = read(fd, buf + got, sizeof(buf) - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			explicit_bzero(buf, got);
			return refuse(ret_error, -e, where, entry, "%s", strerror(e));
		}
		if (r == 0)
			break;
		got += (size_t)r;
		if (got > POLICY_CLIENT_KEY_MAX)
			break;
	}
	if (got < POLICY_CLIENT_KEY_MIN || got > POLICY_CLIENT_KEY_MAX) {
		explicit_bzero(buf, got);
		return refuse(ret_error, -EINVAL, where, entry,
			      "key of %zu bytes changed while read", got);
	}
	key = malloc(got);
	if (!key) {
		explicit_bzero(buf, got);
		return -ENOMEM;
	}
	memcpy(key, buf, got);
	explicit_bzero(buf, got);
	*ret_key = key;
	*ret_len = got;
	return 0;
}

int policy_read_client_key_file(const char *path, uint8_t **ret_key, size_t *ret_len,
				char **ret_error)
{
	if (ret_error)
		*ret_error = NULL;
	return read_raw_key(AT_FDCWD, path, NULL, ret_key, ret_len, ret_error);
}

/* One NAME.key of the directory; fills *k. */
static int read_client_key(int dfd, const char *dir, const char *entry, struct policy_client_key *k,
			   char **ret_error)
{
	_cleanup_free_ char *name = NULL;
	size_t n = strlen(entry);
	int r;

	if (n <= 4 || strcmp(entry + n - 4, ".key") != 0)
		return refuse(ret_error, -EINVAL, dir, entry,
			      "not a client key (only NAME.key files belong here)");
	name = strndup(entry, n - 4);
	if (!name)
		return -ENOMEM;
	if (!schedule_client_name_valid(name))
		return refuse(ret_error, -EINVAL, dir, entry,
			      "not a client name (1 to 64 of A-Z a-z 0-9 _ . -, not starting "
			      "with . or -)");
	r = read_raw_key(dfd, dir, entry, &k->key, &k->key_len, ret_error);
	if (r < 0)
		return r;
	k->name = TAKE_PTR(name);
	return 0;
}

int policy_client_keys_load(const char *dir, struct policy_client_keys *ret, char **ret_error)
{
	_cleanup_(closedirp) DIR *d = NULL;
	_cleanup_(client_keys_freep) struct policy_client_keys keys = {0};
	struct dirent *de;
	struct stat st;
	int dfd, r = 0;

	if (ret_error)
		*ret_error = NULL;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return refuse(ret_error, -errno, dir, NULL, "%s", strerror(errno));
	d = fdopendir(dfd);
	if (!d) {
		r = -errno;
		close(dfd);
		return refuse(ret_error, r, dir, NULL, "%s", strerror(-r));
	}
	if (fstat(dfd, &st) < 0)
		return refuse(ret_error, -errno, dir, NULL, "%s", strerror(errno));
	/* Whoever may add a file here may add a client. */
	if (st.st_uid != 0)
		return refuse(ret_error, -EPERM, dir, NULL, "owned by uid %u, not root",
			      (unsigned)st.st_uid);
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		return refuse(ret_error, -EPERM, dir, NULL,
			      "writable by group or others (mode %04o)",
			      (unsigned)(st.st_mode & 07777));
	while ((errno = 0, de = readdir(d))) {
		struct policy_client_key *grown;

		if (streq(de->d_name, ".") || streq(de->d_name, ".."))
			continue;
		if (keys.count >= POLICY_CLIENTS_MAX)
			return refuse(ret_error, -E2BIG, dir, NULL, "more than %d clients",
				      POLICY_CLIENTS_MAX);
		if (keys.count % 64 == 0) {
			grown = reallocarray(keys.items, keys.count + 64, sizeof(*grown));
			if (!grown)
				return -ENOMEM;
			keys.items = grown;
		}
		keys.items[keys.count] = (struct policy_client_key){0};
		r = read_client_key(dfd, dir, de->d_name, &keys.items[keys.count], ret_error);
		if (r < 0)
			return r;
		keys.count++;
	}
	if (errno)
		return refuse(ret_error, -errno, dir, NULL, "%s", strerror(errno));
	if (keys.count == 0)
		return refuse(ret_error, -EINVAL, dir, NULL, "no client keys (NAME.key files)");
	qsort(keys.items, keys.count, sizeof(*keys.items), by_name);
	*ret = keys;
	keys = (struct policy_client_keys){0};
	return 0;
}
