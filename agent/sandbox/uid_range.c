/* SPDX-License-Identifier: MIT */
#include "sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "macro.h"

struct uid_ranges {
	uint32_t first;
	unsigned n_slots;
	uint8_t *excluded; /* host users, subuid/subgid, processes found at open */
	uint8_t *in_use;   /* taken by an instance */
	int *userns_fds;   /* the slot's mapping namespace, -1 until first use */
	unsigned n_excluded, n_in_use;
};

/* --- what the host already uses ------------------------------------------------- */

static void exclude_ids(struct uid_ranges *r, uint64_t start, uint64_t count)
{
	uint64_t end = start + count;

	if (count == 0 || end <= r->first)
		return;
	if (start < r->first)
		start = r->first;
	for (uint64_t s = (start - r->first) / UID_RANGE_SIZE;
	     s < r->n_slots && r->first + s * UID_RANGE_SIZE < end; s++)
		if (!r->excluded[s]) {
			r->excluded[s] = 1;
			r->n_excluded++;
		}
}

/* A decimal id field: digits only, at most 2^32 - 1. */
static bool parse_id(const char *s, size_t len, uint64_t *ret)
{
	uint64_t v = 0;

	if (len == 0 || len > 10)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > UINT32_MAX)
		return false;
	*ret = v;
	return true;
}

/* The n-th ':'-separated field of line (0-based), or NULL. */
static const char *field(const char *line, unsigned n, size_t *ret_len)
{
	const char *p = line, *end;

	for (unsigned i = 0; i < n; i++) {
		p = strchr(p, ':');
		if (!p)
			return NULL;
		p++;
	}
	end = strchr(p, ':');
	*ret_len = end ? (size_t)(end - p) : strcspn(p, "\n");
	return p;
}

/* passwd: fields 2 (uid) and 3 (gid); group: field 2; subuid/subgid:
 * fields 1 (start) and 2 (count). Lines that do not parse are skipped: what
 * is excluded is only ever more than needed. */
static void exclude_from_file(struct uid_ranges *r, const char *root, const char *name)
{
	_cleanup_free_ char *path = NULL, *line = NULL;
	_cleanup_fclose_ FILE *f = NULL;
	size_t cap = 0;
	bool sub = strstr(name, "sub") != NULL;

	if (asprintf(&path, "%s/etc/%s", root, name) < 0)
		return;
	f = fopen(path, "re");
	if (!f)
		return;
	while (getline(&line, &cap, f) > 0) {
		const char *p;
		size_t len;
		uint64_t a, b;

		if (sub) {
			const char *q;
			size_t qlen;

			p = field(line, 1, &len);
			q = field(line, 2, &qlen);
			if (p && q && parse_id(p, len, &a) && parse_id(q, qlen, &b))
				exclude_ids(r, a, b);
			continue;
		}
		for (unsigned n = 2; n <= (streq(name, "passwd") ? 3u : 2u); n++) {
			p = field(line, n, &len);
			if (p && parse_id(p, len, &a))
				exclude_ids(r, a, 1);
		}
	}
}

/* Every id on the Uid: and Gid: lines of every /proc/PID/status. */
static void exclude_running(struct uid_ranges *r, const char *root)
{
	_cleanup_free_ char *path = NULL;
	struct dirent *de;
	DIR *d;

	if (asprintf(&path, "%s/proc", root) < 0)
		return;
	d = opendir(path);
	if (!d)
		return;
	while ((de = readdir(d))) {
		char status[300], buf[4096];
		_cleanup_close_ int fd = -1;
		ssize_t n;

		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(status, sizeof(status), "%s/%s/status", path, de->d_name);
		fd = open(status, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || (n = read(fd, buf, sizeof(buf) - 1)) <= 0)
			continue; /* gone meanwhile */
		buf[n] = '\0';
		for (const char *key = buf; (key = strstr(key, "id:\t")); key += 4) {
			if (key - buf < 2 || (key[-1] != 'U' && key[-1] != 'G') || key[-2] != '\n')
				continue;
			for (const char *p = key + 4; *p && *p != '\n';) {
				size_t len = strspn(p, "0123456789");
				uint64_t v;

				if (parse_id(p, len, &v))
					exclude_ids(r, v, 1);
				p += len;
				p += strspn(p, "\t ");
				if (len == 0)
					break;
			}
		}
	}
	closedir(d);
}

int uid_ranges_open(const char *root, uint32_t first, uint32_t end, struct uid_ranges **ret)
{
	static const char *const files[] = {"passwd", "group", "subuid", "subgid"};
	struct uid_ranges *r;

	if (first == 0 || first % UID_RANGE_SIZE || end % UID_RANGE_SIZE || end <= first)
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->first = first;
	r->n_slots = (end - first) / UID_RANGE_SIZE;
	r->excluded = calloc(r->n_slots, 1);
	r->in_use = calloc(r->n_slots, 1);
	r->userns_fds = malloc(r->n_slots * sizeof(int));
	if (!r->excluded || !r->in_use || !r->userns_fds) {
		uid_ranges_free(r);
		return -ENOMEM;
	}
	for (unsigned s = 0; s < r->n_slots; s++)
		r->userns_fds[s] = -1;
	for (size_t i = 0; i < ELEMENTSOF(files); i++)
		exclude_from_file(r, root, files[i]);
	exclude_running(r, root);
	*ret = r;
	return 0;
}

int uid_ranges_take(struct uid_ranges *r, uid_t *ret_base)
{
	for (unsigned s = 0; s < r->n_slots; s++) {
		if (r->excluded[s] || r->in_use[s])
			continue;
		r->in_use[s] = 1;
		r->n_in_use++;
		*ret_base = r->first + s * UID_RANGE_SIZE;
		return 0;
	}
	return -ENOSPC;
}

static int slot_of(const struct uid_ranges *r, uid_t base, unsigned *ret_slot)
{
	if (base < r->first || (base - r->first) % UID_RANGE_SIZE ||
	    (base - r->first) / UID_RANGE_SIZE >= r->n_slots)
		return -EINVAL;
	*ret_slot = (base - r->first) / UID_RANGE_SIZE;
	return 0;
}

int uid_ranges_idmap_userns(struct uid_ranges *r, uid_t base, int *ret_fd)
{
	unsigned s;
	int k = slot_of(r, base, &s);

	if (k < 0)
		return k;
	if (!r->in_use[s])
		return -ESRCH;
	if (r->userns_fds[s] < 0) {
		k = uid_range_userns_new(base, &r->userns_fds[s]);
		if (k < 0)
			return k;
	}
	*ret_fd = r->userns_fds[s];
	return 0;
}

void uid_ranges_release(struct uid_ranges *r, uid_t base)
{
	unsigned s;

	if (!r || slot_of(r, base, &s) < 0)
		return;
	if (r->in_use[s]) {
		r->in_use[s] = 0;
		r->n_in_use--;
	}
}

void uid_ranges_counts(const struct uid_ranges *r, unsigned *ret_excluded, unsigned *ret_in_use)
{
	*ret_excluded = r->n_excluded;
	*ret_in_use = r->n_in_use;
}

void uid_ranges_free(struct uid_ranges *r)
{
	if (!r)
		return;
	for (unsigned s = 0; r->userns_fds && s < r->n_slots; s++)
		closep(&r->userns_fds[s]);
	free(r->userns_fds);
	free(r->excluded);
	free(r->in_use);
	free(r);
}

/* --- the mapping namespace -------------------------------------------------------- */

/* The helper shares the caller's memory and fd table (CLONE_VM |
 * CLONE_FILES: nothing is copied) and only waits for the pipe's write end to
 * close: raw system calls, no libc state touched. */
static int userns_helper(void *arg)
{
	char c;

	(void)syscall(SYS_read, *(int *)arg, &c, 1);
	syscall(SYS_exit, 0);
	return 0;
}

static int write_map(pid_t pid, const char *file, const char *map)
{
	char path[64];
	_cleanup_close_ int fd = -1;
	size_t len = strlen(map);

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, map, len) != (ssize_t)len)
		return errno ? -errno : -EIO;
	return 0;
}

int uid_range_userns_new(uid_t base, int *ret_fd)
{
	static char stack[16384] __attribute__((aligned(16)));
	int p[2], r, fd = -1;
	char map[48], path[64];
	pid_t pid;

	if (base == 0 || base > UINT32_MAX - UID_RANGE_SIZE)
		return -EINVAL;
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	/* exit signal 0: no SIGCHLD for the agent's loop; reaped with __WCLONE */
	pid = clone(userns_helper, stack + sizeof(stack), CLONE_NEWUSER | CLONE_VM | CLONE_FILES,
		    &p[0]);
	if (pid < 0) {
		r = -errno;
		close(p[0]);
		close(p[1]);
		return r;
	}
	snprintf(map, sizeof(map), "0 %u %u\n", (unsigned)base, UID_RANGE_SIZE);
	r = write_map(pid, "uid_map", map);
	if (r == 0)
		r = write_map(pid, "gid_map", map);
	if (r == 0) {
		snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)pid);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			r = -errno;
	}
	close(p[1]);
	while (waitpid(pid, NULL, __WCLONE) < 0 && errno == EINTR)
		;
	close(p[0]);
	if (r < 0) {
		closep(&fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}
