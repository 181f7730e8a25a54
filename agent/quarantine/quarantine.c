/* SPDX-License-Identifier: MIT */
/* The forensic evidence store: saving an instance, the cap, list and remove
 * (quarantine.h, docs/quarantine.md). Uses the manifest and its verification
 * (quarantine_manifest.c), SUMMARY.json (quarantine_summary.c) and the
 * store's file helpers (quarantine_store.c); none of them calls back. */
#include "quarantine.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "json_bytes.h"
#include "macro.h"
#include "quarantine_internal.h"
#include "clock.h"

#define MAX_PROCESSES 4096
#define MAX_CGROUP_DEPTH 16

void quarantine_result_done(struct quarantine_result *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_evicted; i++)
		free(r->evicted[i]);
	free(r->evicted);
	r->evicted = NULL;
	r->n_evicted = 0;
}

static _printf_(3, 4) int fail(char **ret_error, int r, const char *fmt, ...)
{
	_cleanup_free_ char *what = NULL;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&what, fmt, ap) < 0)
		what = NULL;
	va_end(ap);
	if (ret_error &&
	    asprintf(ret_error, "%s: %s", what ? what : "quarantine", strerror(-r)) < 0)
		*ret_error = NULL;
	return r;
}

/* --- processes.json --------------------------------------------------------------- */

static int parse_u64(const char *s, uint64_t *ret)
{
	char *end;
	unsigned long long v;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	*ret = v;
	return 0;
}

/* The whitespace-separated numbers after "Key:" in /proc/PID/status. */
static json_t *status_numbers(const char *status, const char *key)
{
	size_t kl = strlen(key);
	json_t *list;

	for (const char *line = status; line && *line;
	     line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
		const char *p;

		if (strncmp(line, key, kl) != 0 || line[kl] != ':')
			continue;
		list = json_array();
		for (p = line + kl + 1; list && *p && *p != '\n';) {
			uint64_t v;
			char *end;

			while (*p == ' ' || *p == '\t')
				p++;
			if (*p == '\n' || !*p)
				break;
			if (parse_u64(p, &v) < 0)
				break;
			json_array_append_new(list, json_integer((json_int_t)v));
			strtoull(p, &end, 10);
			p = end;
		}
		return list;
	}
	return json_array();
}

static json_t *status_text(const char *status, const char *key)
{
	size_t kl = strlen(key);

	for (const char *line = status; line && *line;
	     line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
		const char *v, *end;

		if (strncmp(line, key, kl) != 0 || line[kl] != ':')
			continue;
		v = line + kl + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		end = strchrnul(v, '\n');
		return json_bytes(v, (size_t)(end - v));
	}
	return json_null();
}

static json_t *process_json(pid_t pid, const char *cgroup_rel)
{
	_cleanup_free_ char *comm = NULL, *cmdline = NULL, *status = NULL;
	_cleanup_close_ int dir = -1;
	json_t *o, *argv;
	char path[64], exe[PATH_MAX];
	size_t n = 0;
	ssize_t k;

	snprintf(path, sizeof(path), "/proc/%d", (int)pid);
	dir = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return json_pack("{s:i, s:s, s:s}", "pid", (int)pid, "cgroup", cgroup_rel, "error",
				 "gone");
	(void)quarantine_read_at(dir, "comm", 4096, &comm, NULL);
	(void)quarantine_read_at(dir, "cmdline", QUARANTINE_CMDLINE_MAX, &cmdline, &n);
	(void)quarantine_read_at(dir, "status", 65536, &status, NULL);
	if (comm)
		comm[strcspn(comm, "\n")] = '\0';
	argv = json_array();
	for (size_t i = 0; argv && cmdline && i < n;) {
		size_t len = strnlen(cmdline + i, n - i);

		json_array_append_new(argv, json_bytes(cmdline + i, len));
		i += len + 1;
	}
	k = readlinkat(dir, "exe", exe, sizeof(exe) - 1);
	exe[k > 0 ? k : 0] = '\0';
	o = json_pack("{s:i, s:o, s:o?, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "pid", (int)pid,
		      "cgroup", json_bytes_str(cgroup_rel), "comm", json_bytes_str(comm), "cmdline",
		      argv ? argv : json_array(), "state", status_text(status, "State"), "ppid",
		      status_numbers(status, "PPid"), "nspid", status_numbers(status, "NSpid"),
		      "uid", status_numbers(status, "Uid"), "gid", status_numbers(status, "Gid"),
		      "exe", json_bytes_str(exe));
	return o;
}

/* Every pid of the cgroup dirfd and of its descendants into list. */
static int processes_of(int dirfd, const char *rel, unsigned depth, json_t *list)
{
	_cleanup_free_ char *procs = NULL;
	DIR *d;
	int fd;

	if (depth > MAX_CGROUP_DEPTH)
		return -ELOOP;
	if (quarantine_read_at(dirfd, "cgroup.procs", 1 << 20, &procs, NULL) == 0) {
		for (char *save = NULL, *t = strtok_r(procs, "\n", &save); t;
		     t = strtok_r(NULL, "\n", &save)) {
			uint64_t v;

			if (json_array_size(list) >= MAX_PROCESSES)
				break;
			if (parse_u64(t, &v) < 0 || v == 0 || v > INT32_MAX)
				continue;
			json_array_append_new(list, process_json((pid_t)v, rel[0] ? rel : "/"));
		}
	}
	fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	for (struct dirent *de; (de = readdir(d));) {
		_cleanup_close_ int sub = -1;
		char child[PATH_MAX];

		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0)
			continue;
		snprintf(child, sizeof(child), "%s/%s", rel, de->d_name);
		(void)processes_of(sub, child, depth + 1, list);
	}
	closedir(d);
	return 0;
}

static int processes_json(const char *cgroup_path, json_t **ret)
{
	_cleanup_close_ int fd = open(cgroup_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	_cleanup_free_ char *events = NULL;
	json_t *list;
	bool frozen = false;
	int r;

	if (fd < 0)
		return -errno;
	if (quarantine_read_at(fd, "cgroup.events", 4096, &events, NULL) == 0)
		frozen = strstr(events, "frozen 1") != NULL;
	list = json_array();
	if (!list)
		return -ENOMEM;
	r = processes_of(fd, "", 0, list);
	if (r < 0) {
		json_decref(list);
		return r;
	}
	*ret = json_pack("{s:s, s:b, s:o}", "cgroup", cgroup_path, "frozen", frozen, "processes",
			 list);
	return *ret ? 0 : -ENOMEM;
}

/* --- metadata.json ------------------------------------------------------------------ */

static json_t *time_json(uint64_t usec)
{
	char buf[64];
	struct tm tm;
	time_t t = (time_t)(usec / 1000000u);

	if (usec == 0 || !gmtime_r(&t, &tm))
		return json_null();
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_string(buf);
}

static json_t *metadata_json(const struct quarantine_record *rec, uint64_t quarantined,
			     const struct quarantine_copy *c, bool estimate)
{
	json_t *addresses = json_array();
	int64_t big = INT64_MAX;

	for (size_t i = 0; addresses && i < rec->n_addresses; i++)
		json_array_append_new(addresses, json_string(rec->addresses[i]));
	/* The estimate is never shorter than the final text (the cap). */
	return json_pack("{s:i, s:s, s:s, s:s, s:O?, s:I, s:o, s:I, s:o, s:o, s:i, s:b, s:{s:I, "
			 "s:I, s:I, s:I}}",
			 "format", 1, "id", rec->id, "service", rec->service, "reason",
			 rec->reason ? rec->reason : "", "evidence", rec->evidence, "started_usec",
			 (json_int_t)rec->started_usec, "started", time_json(rec->started_usec),
			 "quarantined_usec", (json_int_t)quarantined, "quarantined",
			 time_json(quarantined), "addresses", addresses ? addresses : json_array(),
			 "pid", (int)rec->pid, "truncated", estimate ? false : c->truncated,
			 "upper", "entries", (json_int_t)(estimate ? big : (int64_t)c->entries),
			 "files", (json_int_t)(estimate ? big : (int64_t)c->files), "bytes_saved",
			 (json_int_t)(estimate ? big : (int64_t)c->saved), "bytes_found",
			 (json_int_t)(estimate ? big : (int64_t)c->found));
}

/* --- the cap ------------------------------------------------------------------------ */

struct stored {
	char id[QUARANTINE_ID_MAX + 1];
	char service[QUARANTINE_ID_MAX + 1];
	char reason[128];
	uint64_t quarantined_usec;
	uint64_t bytes;
	bool truncated;
};

static int stored_cmp(const void *a, const void *b)
{
	const struct stored *x = a, *y = b;

	if (x->quarantined_usec != y->quarantined_usec)
		return x->quarantined_usec < y->quarantined_usec ? -1 : 1;
	return strcmp(x->id, y->id);
}

/* Every complete entry of the store, oldest first. */
static int stored_list(int store, struct stored **ret, size_t *ret_n)
{
	_cleanup_free_ struct stored *v = NULL;
	size_t n = 0;
	DIR *d;
	int fd = fcntl(store, F_DUPFD_CLOEXEC, 3);

	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	for (struct dirent *de; (de = readdir(d));) {
		_cleanup_close_ int entry = -1;
		json_auto_t *meta = NULL;
		struct stored *nv, *s;
		const char *service, *reason;

		if (!quarantine_id_valid(de->d_name))
			continue;
		entry = openat(store, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (entry < 0 || quarantine_load_json_at(entry, "metadata.json", &meta) < 0)
			continue;
		nv = realloc(v, (n + 1) * sizeof(*v));
		if (!nv) {
			closedir(d);
			return -ENOMEM;
		}
		v = nv;
		s = &v[n++];
		memset(s, 0, sizeof(*s));
		memcpy(s->id, de->d_name, strlen(de->d_name) + 1); /* valid: short */
		service = json_string_value(json_object_get(meta, "service"));
		reason = json_string_value(json_object_get(meta, "reason"));
		if (service && strlen(service) < sizeof(s->service))
			memcpy(s->service, service, strlen(service) + 1);
		snprintf(s->reason, sizeof(s->reason), "%.127s", reason ? reason : "");
		s->quarantined_usec =
		    (uint64_t)json_integer_value(json_object_get(meta, "quarantined_usec"));
		s->truncated = json_is_true(json_object_get(meta, "truncated"));
		(void)quarantine_tree_bytes(entry, &s->bytes);
	}
	closedir(d);
	if (n > 1)
		qsort(v, n, sizeof(*v), stored_cmp);
	*ret = TAKE_PTR(v);
	*ret_n = n;
	return 0;
}

static int evict(int store, const char *service, const char *keep, uint64_t new_bytes,
		 uint64_t max_bytes, struct quarantine_result *res)
{
	_cleanup_free_ struct stored *v = NULL;
	uint64_t total = new_bytes;
	size_t n = 0;
	int r;

	r = stored_list(store, &v, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++)
		if (streq(v[i].service, service) && !streq(v[i].id, keep))
			total += v[i].bytes;
	for (size_t i = 0; i < n && total > max_bytes; i++) {
		char **ne;

		if (!streq(v[i].service, service) || streq(v[i].id, keep))
			continue;
		r = quarantine_rm_rf_at(store, v[i].id, 0);
		if (r < 0)
			return r;
		total -= v[i].bytes;
		ne = realloc(res->evicted, (res->n_evicted + 2) * sizeof(char *));
		if (!ne)
			return -ENOMEM;
		res->evicted = ne;
		res->evicted[res->n_evicted] = strdup(v[i].id);
		if (!res->evicted[res->n_evicted])
			return -ENOMEM;
		res->evicted[++res->n_evicted] = NULL;
	}
	return 0;
}

/* --- save --------------------------------------------------------------------------- */

static int build(int entry, const struct quarantine_record *rec, int upper_fd,
		 const char *cgroup_path, uint64_t max_bytes, struct quarantine_result *res,
		 char **ret_error)
{
	json_auto_t *procs = NULL, *meta = NULL;
	_cleanup_free_ char *procs_text = NULL, *meta_text = NULL;
	struct quarantine_copy c = {.budget = max_bytes ? max_bytes : UINT64_MAX};
	uint64_t quarantined = rec->quarantined_usec ? rec->quarantined_usec : now(CLOCK_REALTIME);
	uint64_t fixed;
	int r;

	r = processes_json(cgroup_path, &procs);
	if (r < 0)
		return fail(ret_error, r, "processes of %s", cgroup_path);
	procs_text = json_dumps(procs, JSON_INDENT(2) | JSON_SORT_KEYS);
	meta = metadata_json(rec, quarantined, &c, true);
	meta_text = meta ? json_dumps(meta, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
	if (!procs_text || !meta_text)
		return fail(ret_error, -ENOMEM, "evidence");

	/* What the upper copy may use: the cap less the fixed files and their
	 * manifest lines (an upper bound of each). */
	fixed = strlen(procs_text) + strlen(meta_text) + 2 * QUARANTINE_LINE_FIXED + 64 +
		QUARANTINE_SUMMARY_MAX;
	c.budget = c.budget > fixed ? c.budget - fixed : 0;
	r = quarantine_manifest_begin(&c);
	if (r < 0)
		return fail(ret_error, r, "manifest");
	r = quarantine_copy_upper(&c, upper_fd, entry);
	if (r < 0) {
		quarantine_copy_done(&c);
		return fail(ret_error, r, "copy of the writable layer%s%s",
			    c.error_path[0] ? " at " : "", c.error_path);
	}
	json_decref(meta);
	free(meta_text);
	meta = metadata_json(rec, quarantined, &c, false);
	meta_text = meta ? json_dumps(meta, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
	if (!meta_text)
		r = -ENOMEM;
	if (r == 0)
		r = quarantine_write_file(&c, entry, "processes.json", procs_text);
	if (r == 0)
		r = quarantine_write_file(&c, entry, "metadata.json", meta_text);
	if (r == 0)
		r = quarantine_manifest_finish(&c, entry, res->manifest_sha256);
	if (r == 0)
		r = quarantine_summary_write(&c, entry, res->manifest_sha256);
	res->truncated = c.truncated;
	quarantine_copy_done(&c);
	if (r < 0)
		return fail(ret_error, r, "writing the evidence");
	if (syncfs(entry) < 0)
		return fail(ret_error, -errno, "syncfs");
	return 0;
}

int quarantine_save(const char *state_dir, const struct quarantine_record *rec, int upper_fd,
		    const char *cgroup_path, uint64_t max_bytes, struct quarantine_result *ret,
		    char **ret_error)
{
	struct quarantine_result res = {0};
	_cleanup_close_ int store = -1, entry = -1;
	char tmp[QUARANTINE_ID_MAX + 8];
	struct stat st;
	int r;

	if (!rec || !quarantine_id_valid(rec->id))
		return fail(ret_error, -EINVAL, "instance id");
	if (!quarantine_id_valid(rec->service))
		return fail(ret_error, -EINVAL, "service name");
	if (rec->evidence && !json_is_object(rec->evidence))
		return fail(ret_error, -EINVAL, "evidence (not an object)");
	store = quarantine_open_store(state_dir, true);
	if (store < 0)
		return fail(ret_error, store, "%s/quarantine", state_dir);
	if (fstatat(store, rec->id, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return fail(ret_error, -EEXIST, "quarantine/%s", rec->id);
	snprintf(tmp, sizeof(tmp), "%s.tmp", rec->id);
	r = quarantine_rm_rf_at(store, tmp, 0); /* a save interrupted before */
	if (r < 0 && r != -ENOENT)
		return fail(ret_error, r, "removing quarantine/%s", tmp);
	if (mkdirat(store, tmp, 0700) < 0)
		return fail(ret_error, -errno, "quarantine/%s", tmp);
	entry = openat(store, tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (entry < 0) {
		r = -errno;
		(void)quarantine_rm_rf_at(store, tmp, 0);
		return fail(ret_error, r, "quarantine/%s", tmp);
	}
	r = build(entry, rec, upper_fd, cgroup_path, max_bytes, &res, ret_error);
	if (r == 0) {
		r = quarantine_tree_bytes(entry, &res.bytes);
		if (r < 0)
			(void)fail(ret_error, r, "size of quarantine/%s", tmp);
	}
	if (r == 0 && renameat2(store, tmp, store, rec->id, RENAME_NOREPLACE) < 0)
		r = fail(ret_error, -errno, "renaming quarantine/%s", tmp);
	if (r < 0) {
		(void)quarantine_rm_rf_at(store, tmp, 0);
		quarantine_result_done(&res);
		return r;
	}
	(void)fsync(store);
	res.over_cap = max_bytes && res.bytes > max_bytes;
	if (max_bytes) {
		/* The new entry is safe on disk; now the oldest of the service go. */
		r = evict(store, rec->service, rec->id, res.bytes, max_bytes, &res);
		(void)fsync(store);
		if (r < 0) {
			quarantine_result_done(&res);
			return fail(ret_error, r, "evicting older entries of %s (%s is saved)",
				    rec->service, rec->id);
		}
	}
	*ret = res;
	return 0;
}

/* --- list, remove --------------------------------------------------------------------- */

int quarantine_list(const char *state_dir, json_t **ret)
{
	_cleanup_free_ struct stored *v = NULL;
	_cleanup_close_ int store = quarantine_open_store(state_dir, false);
	json_t *list;
	size_t n = 0;
	int r;

	if (store == -ENOENT) {
		*ret = json_array();
		return *ret ? 0 : -ENOMEM;
	}
	if (store < 0)
		return store;
	r = stored_list(store, &v, &n);
	if (r < 0)
		return r;
	list = json_array();
	for (size_t i = 0; list && i < n; i++)
		json_array_append_new(
		    list, json_pack("{s:s, s:s, s:s, s:I, s:I, s:b}", "id", v[i].id, "service",
				    v[i].service, "reason", v[i].reason, "quarantined_usec",
				    (json_int_t)v[i].quarantined_usec, "bytes",
				    (json_int_t)v[i].bytes, "truncated", v[i].truncated));
	if (!list)
		return -ENOMEM;
	*ret = list;
	return 0;
}

int quarantine_remove_interrupted(const char *state_dir, json_t **ret_removed)
{
	_cleanup_close_ int store = quarantine_open_store(state_dir, false);
	json_t *removed = json_array();
	struct dirent *de;
	DIR *d;
	int r = 0;

	if (!removed)
		return -ENOMEM;
	if (store == -ENOENT) {
		*ret_removed = removed;
		return 0;
	}
	if (store < 0) {
		json_decref(removed);
		return store;
	}
	d = fdopendir(fcntl(store, F_DUPFD_CLOEXEC, 3));
	if (!d) {
		json_decref(removed);
		return -errno;
	}
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		int k;

		/* ID.tmp: a save that never reached its rename. */
		if (len <= 4 || !streq(de->d_name + len - 4, ".tmp"))
			continue;
		k = quarantine_rm_rf_at(store, de->d_name, 0);
		if (k < 0 && r == 0)
			r = k;
		else if (k == 0)
			json_array_append_new(removed, json_bytes(de->d_name, len - 4));
	}
	closedir(d);
	(void)fsync(store);
	if (r < 0) {
		json_decref(removed);
		return r;
	}
	*ret_removed = removed;
	return 0;
}

int quarantine_discard_partial(const char *state_dir, const char *id)
{
	_cleanup_close_ int store = quarantine_open_store(state_dir, false);
	char tmp[QUARANTINE_ID_MAX + 8];

	if (store < 0)
		return store;
	if (!quarantine_id_valid(id))
		return -EINVAL;
	snprintf(tmp, sizeof(tmp), "%s.tmp", id);
	return quarantine_rm_rf_at(store, tmp, 0);
}

int quarantine_remove(const char *state_dir, const char *id)
{
	_cleanup_close_ int store = -1;
	int r;

	if (!quarantine_id_valid(id))
		return -EINVAL;
	store = quarantine_open_store(state_dir, false);
	if (store < 0)
		return store;
	r = quarantine_rm_rf_at(store, id, 0);
	if (r == 0)
		(void)fsync(store);
	return r;
}
