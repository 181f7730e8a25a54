/* SPDX-License-Identifier: MIT */
/* Per-instance cgroups on unified and hybrid hosts; see sandbox.h for the
 * layout and the delegation rules. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sandbox.h"
#include "macro.h"
#include "clock.h"

static const char *const controller_names[_CGROUP_CONTROLLER_MAX] = {
    [CGROUP_MEMORY] = "memory",
    [CGROUP_PIDS] = "pids",
    [CGROUP_CPU] = "cpu",
};

const char *cgroup_controller_name(enum cgroup_controller c)
{
	return c < _CGROUP_CONTROLLER_MAX ? controller_names[c] : NULL;
}

void cgroup_layout_done(struct cgroup_layout *l)
{
	free(l->unified);
	for (int i = 0; i < _CGROUP_CONTROLLER_MAX; i++)
		free(l->v1[i]);
	*l = (struct cgroup_layout){0};
}

/* --- parsing ----------------------------------------------------------------- */

/* Is word one of the comma-separated items of list? */
static bool list_has(const char *list, size_t len, const char *word)
{
	size_t wl = strlen(word);
	const char *p = list, *end = list + len;

	while (p < end) {
		const char *comma = memchr(p, ',', end - p);
		size_t n = comma ? (size_t)(comma - p) : (size_t)(end - p);
		if (n == wl && memcmp(p, word, n) == 0)
			return true;
		p += n + 1;
	}
	return false;
}

/* Split a line into at most max space-separated fields (in place). */
static size_t split_fields(char *line, char **fields, size_t max)
{
	size_t n = 0;
	char *save = NULL;

	for (char *t = strtok_r(line, " ", &save); t && n < max; t = strtok_r(NULL, " ", &save))
		fields[n++] = t;
	return n;
}

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape_octal(char *s)
{
	char *w = s;

	for (char *r = s; *r; r++) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
		    r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
			r += 3;
		} else
			*w++ = *r;
	}
	*w = '\0';
}

struct mount_entry {
	char *root, *point;
};

static void mount_entry_done(struct mount_entry *m)
{
	free(m->root);
	free(m->point);
	*m = (struct mount_entry){0};
}

static int mount_entry_set(struct mount_entry *m, const char *root, const char *point)
{
	if (m->point)
		return 0; /* the first mount of a hierarchy wins */
	m->root = strdup(root);
	m->point = strdup(point);
	if (!m->root || !m->point) {
		mount_entry_done(m);
		return -ENOMEM;
	}
	unescape_octal(m->root);
	unescape_octal(m->point);
	return 0;
}

/* MOUNTPOINT + (path below ROOT) */
static int join_mount(const struct mount_entry *m, const char *path, char **ret)
{
	size_t rl = strlen(m->root);
	const char *rel = path;
	char *s;

	if (!streq(m->root, "/") && strncmp(path, m->root, rl) == 0 &&
	    (path[rl] == '/' || path[rl] == '\0'))
		rel = path + rl;
	while (*rel == '/')
		rel++;
	if (asprintf(&s, "%s%s%s", m->point, *rel ? "/" : "", rel) < 0)
		return -ENOMEM;
	/* "/sys/fs/cgroup/" + "" for the root: drop a trailing slash */
	*ret = s;
	return 0;
}

struct parse_state {
	struct mount_entry unified;
	struct mount_entry v1[_CGROUP_CONTROLLER_MAX];
	char *unified_path;
	char *v1_path[_CGROUP_CONTROLLER_MAX];
};

static void parse_state_done(struct parse_state *s)
{
	mount_entry_done(&s->unified);
	free(s->unified_path);
	for (int i = 0; i < _CGROUP_CONTROLLER_MAX; i++) {
		mount_entry_done(&s->v1[i]);
		free(s->v1_path[i]);
	}
}

static int parse_mountinfo_line(struct parse_state *s, char *line)
{
	char *f[64];
	size_t n = split_fields(line, f, ELEMENTSOF(f)), dash;
	int r;

	for (dash = 6; dash < n && !streq(f[dash], "-"); dash++)
		;
	if (n < 5 || dash + 3 >= n + 1 || dash + 2 >= n)
		return -EINVAL;
	const char *fstype = f[dash + 1], *superopts = dash + 3 < n ? f[dash + 3] : "";

	if (streq(fstype, "cgroup2"))
		return mount_entry_set(&s->unified, f[3], f[4]);
	if (!streq(fstype, "cgroup"))
		return 0;
	for (int c = 0; c < _CGROUP_CONTROLLER_MAX; c++)
		if (list_has(superopts, strlen(superopts), controller_names[c])) {
			r = mount_entry_set(&s->v1[c], f[3], f[4]);
			if (r < 0)
				return r;
		}
	return 0;
}

static int parse_self_line(struct parse_state *s, const char *line)
{
	const char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;

	if (!c1 || !c2 || c2[1] != '/')
		return -EINVAL;
	if (c1 - line == 1 && line[0] == '0' && c2 == c1 + 1) {
		free(s->unified_path);
		s->unified_path = strdup(c2 + 1);
		return s->unified_path ? 0 : -ENOMEM;
	}
	for (int c = 0; c < _CGROUP_CONTROLLER_MAX; c++)
		if (list_has(c1 + 1, c2 - c1 - 1, controller_names[c])) {
			free(s->v1_path[c]);
			s->v1_path[c] = strdup(c2 + 1);
			if (!s->v1_path[c])
				return -ENOMEM;
		}
	return 0;
}

/* Call fn for each non-empty line of text (copied, so fn may modify it). */
static int for_each_line(const char *text, struct parse_state *s,
			 int (*fn)(struct parse_state *, char *))
{
	const char *p = text;

	while (*p) {
		const char *nl = strchrnul(p, '\n');
		size_t len = nl - p;
		if (len > 0) {
			_cleanup_free_ char *line = strndup(p, len);
			if (!line)
				return -ENOMEM;
			int r = fn(s, line);
			if (r < 0)
				return r;
		}
		p = *nl ? nl + 1 : nl;
	}
	return 0;
}

static int parse_self_line_mut(struct parse_state *s, char *line)
{
	return parse_self_line(s, line);
}

int cgroup_layout_parse(const char *mountinfo, const char *self_cgroup,
			const char *unified_controllers, struct cgroup_layout *ret)
{
	struct parse_state s = {0};
	struct cgroup_layout l = {0};
	int r;

	r = for_each_line(mountinfo, &s, parse_mountinfo_line);
	if (r >= 0)
		r = for_each_line(self_cgroup, &s, parse_self_line_mut);
	if (r >= 0 && (!s.unified.point || !s.unified_path))
		r = -ENOENT;
	if (r >= 0)
		r = join_mount(&s.unified, s.unified_path, &l.unified);
	for (int c = 0; r >= 0 && c < _CGROUP_CONTROLLER_MAX; c++) {
		const char *ctl = unified_controllers ? unified_controllers : "";
		_cleanup_free_ char *copy = strdup(ctl);
		if (!copy) {
			r = -ENOMEM;
			break;
		}
		for (char *q = copy; *q; q++)
			if (*q == ' ' || *q == '\n' || *q == '\t')
				*q = ',';
		l.unified_has[c] = list_has(copy, strlen(copy), controller_names[c]);
		if (!l.unified_has[c] && s.v1[c].point && s.v1_path[c])
			r = join_mount(&s.v1[c], s.v1_path[c], &l.v1[c]);
	}
	parse_state_done(&s);
	if (r < 0) {
		cgroup_layout_done(&l);
		return r;
	}
	*ret = l;
	return 0;
}

/* --- small file helpers ---------------------------------------------------------- */

static int read_text(const char *path, char **ret)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	_cleanup_free_ char *buf = NULL;
	size_t len = 0, cap = 0;

	if (fd < 0)
		return -errno;
	for (;;) {
		if (len + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 16384;
			char *n = realloc(buf, cap);
			if (!n)
				return -ENOMEM;
			buf = n;
		}
		ssize_t k = read(fd, buf + len, cap - len - 1);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (k == 0)
			break;
		len += k;
	}
	buf[len] = '\0';
	*ret = TAKE_PTR(buf);
	return 0;
}

static int write_at(int dirfd, const char *file, const char *value)
{
	_cleanup_close_ int fd = openat(dirfd, file, O_WRONLY | O_CLOEXEC);
	size_t len = strlen(value);

	if (fd < 0)
		return -errno;
	ssize_t k = write(fd, value, len);
	if (k < 0)
		return -errno;
	return (size_t)k == len ? 0 : -EIO;
}

static int write_path(const char *dir, const char *file, const char *value)
{
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (dfd < 0)
		return -errno;
	return write_at(dfd, file, value);
}

/* mkdir that accepts an existing directory (explicit mode: UMask=0077). */
static int mkdir_exist_ok(const char *path)
{
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* Value of key in a "key value" flat-keyed file (cgroup.events). */
static int read_key(int dirfd, const char *file, const char *key, long *ret)
{
	char buf[512], *p;
	_cleanup_close_ int fd = openat(dirfd, file, O_RDONLY | O_CLOEXEC);
	size_t kl = strlen(key);

	if (fd < 0)
		return -errno;
	ssize_t k = pread(fd, buf, sizeof(buf) - 1, 0);
	if (k < 0)
		return -errno;
	buf[k] = '\0';
	for (p = buf; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, key, kl) == 0 && p[kl] == ' ') {
			*ret = strtol(p + kl + 1, NULL, 10);
			return 0;
		}
	return -ENOENT;
}

/* Wait until key in cgroup.events has value want (inotify-free: poll with
 * POLLPRI on the file as the kernel documents, with a short fallback tick). */
/* How long to re-read cgroup.events before sleeping in poll(): the kernel
 * signals a change of cgroup.events through a work item, at most once per
 * 20 ms per file (CGROUP_FILE_NOTIFY_MIN_INTV), while a freeze of a few
 * processes completes in about 0.1 ms. Yielding between reads lets the
 * processes being frozen (or killed) reach their trap on a busy host. */
#define EVENTS_SPIN_USEC 1000

static int wait_events_key(int dirfd, const char *key, long want, uint64_t timeout_usec)
{
	uint64_t start = now(CLOCK_MONOTONIC), deadline = start + timeout_usec;
	_cleanup_close_ int fd = openat(dirfd, "cgroup.events", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	for (;;) {
		long v;
		int r = read_key(dirfd, "cgroup.events", key, &v);
		if (r < 0)
			return r;
		if (v == want)
			return 0;
		uint64_t now_usec = now(CLOCK_MONOTONIC);
		if (now_usec >= deadline)
			return -ETIMEDOUT;
		if (now_usec - start < EVENTS_SPIN_USEC) {
			sched_yield();
			continue;
		}
		struct pollfd p = {.fd = fd, .events = POLLPRI};
		uint64_t left_ms = (deadline - now_usec + 999) / 1000;
		(void)poll(&p, 1, left_ms > 10 ? 10 : (int)left_ms);
	}
}

/* --- the parent of all instances -------------------------------------------------- */

struct cgroup_root {
	struct cgroup_layout layout;
	char *unified;			  /* AGENT/NAME in cgroup2 */
	char *v1[_CGROUP_CONTROLLER_MAX]; /* AGENT/NAME in each v1 hierarchy used */
	bool hybrid;
};

int cgroup_layout_load(struct cgroup_layout *ret)
{
	_cleanup_free_ char *mi = NULL, *self = NULL, *ctl = NULL, *path = NULL;
	struct cgroup_layout l = {0};
	int r;

	r = read_text("/proc/self/mountinfo", &mi);
	if (r < 0)
		return r;
	r = read_text("/proc/self/cgroup", &self);
	if (r < 0)
		return r;
	/* first pass without controllers, to learn where cgroup.controllers is */
	r = cgroup_layout_parse(mi, self, NULL, &l);
	if (r < 0)
		return r;
	if (asprintf(&path, "%s/cgroup.controllers", l.unified) < 0) {
		cgroup_layout_done(&l);
		return -ENOMEM;
	}
	cgroup_layout_done(&l);
	r = read_text(path, &ctl);
	if (r < 0)
		return r;
	return cgroup_layout_parse(mi, self, ctl, ret);
}

/* Unified delegation: move every process of agent_dir into agent_dir/agent,
 * then enable the controllers for the children of agent_dir. */
static int delegate_unified(const struct cgroup_layout *l, const char *ctl_line)
{
	_cleanup_free_ char *leaf = NULL, *procs = NULL;
	_cleanup_close_ int dfd = -1, leaf_fd = -1;
	long dummy;
	int r;

	dfd = open(l->unified, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	/* cgroup.events is absent only in the root cgroup, which may hold
	 * processes and still enable controllers for its children */
	if (read_key(dfd, "cgroup.events", "populated", &dummy) != -ENOENT) {
		if (asprintf(&leaf, "%s/agent", l->unified) < 0)
			return -ENOMEM;
		r = mkdir_exist_ok(leaf);
		if (r < 0)
			return r;
		leaf_fd = open(leaf, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (leaf_fd < 0)
			return -errno;
		/* processes may fork meanwhile: repeat until the list is empty */
		for (int round = 0; round < 16; round++) {
			free(procs);
			procs = NULL;
			_cleanup_free_ char *pp = NULL;
			if (asprintf(&pp, "%s/cgroup.procs", l->unified) < 0)
				return -ENOMEM;
			r = read_text(pp, &procs);
			if (r < 0)
				return r;
			if (!procs[0])
				break;
			for (char *save = NULL, *t = strtok_r(procs, "\n", &save); t;
			     t = strtok_r(NULL, "\n", &save)) {
				r = write_at(leaf_fd, "cgroup.procs", t);
				if (r < 0 && r != -ESRCH)
					return r;
			}
		}
	}
	return write_at(dfd, "cgroup.subtree_control", ctl_line);
}

int cgroup_root_open_layout(struct cgroup_layout *layout, const char *name,
			    struct cgroup_root **ret)
{
	struct cgroup_root *r;
	char ctl_line[64] = "";
	int k;

	if (!name || !name[0] || strchr(name, '/') || streq(name, ".") || streq(name, ".."))
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->layout = *layout;
	*layout = (struct cgroup_layout){0};

	for (int c = 0; c < _CGROUP_CONTROLLER_MAX; c++) {
		if (r->layout.unified_has[c]) {
			strcat(ctl_line, ctl_line[0] ? " +" : "+");
			strcat(ctl_line, controller_names[c]);
		} else if (r->layout.v1[c])
			r->hybrid = true;
	}
	k = -ENOMEM;
	if (asprintf(&r->unified, "%s/%s", r->layout.unified, name) < 0) {
		r->unified = NULL;
		goto fail;
	}
	if (ctl_line[0]) {
		k = delegate_unified(&r->layout, ctl_line);
		if (k < 0)
			goto fail;
	}
	k = mkdir_exist_ok(r->unified);
	if (k < 0)
		goto fail;
	if (ctl_line[0]) {
		k = write_path(r->unified, "cgroup.subtree_control", ctl_line);
		if (k < 0)
			goto fail;
	}
	for (int c = 0; c < _CGROUP_CONTROLLER_MAX; c++) {
		if (r->layout.unified_has[c] || !r->layout.v1[c])
			continue;
		k = -ENOMEM;
		if (asprintf(&r->v1[c], "%s/%s", r->layout.v1[c], name) < 0) {
			r->v1[c] = NULL;
			goto fail;
		}
		k = mkdir_exist_ok(r->v1[c]);
		if (k < 0)
			goto fail;
	}
	*ret = r;
	return 0;
fail:
	cgroup_root_remove(r);
	cgroup_root_free(r);
	return k;
}

int cgroup_root_open(const char *name, struct cgroup_root **ret)
{
	struct cgroup_layout l;
	int r = cgroup_layout_load(&l);

	if (r < 0)
		return r;
	r = cgroup_root_open_layout(&l, name, ret);
	cgroup_layout_done(&l);
	return r;
}

bool cgroup_root_is_hybrid(const struct cgroup_root *r)
{
	return r->hybrid;
}

bool cgroup_root_has(const struct cgroup_root *r, enum cgroup_controller c)
{
	return r->layout.unified_has[c] || r->v1[c];
}

const char *cgroup_root_path(const struct cgroup_root *r)
{
	return r->unified;
}

const char *cgroup_root_v1_path(const struct cgroup_root *r, enum cgroup_controller c)
{
	return (unsigned)c < _CGROUP_CONTROLLER_MAX ? r->v1[c] : NULL;
}

int cgroup_root_remove(struct cgroup_root *r)
{
	int ret = 0;

	if (!r)
		return 0;
	if (r->unified && rmdir(r->unified) < 0 && errno != ENOENT)
		ret = -errno;
	for (int c = 0; c < _CGROUP_CONTROLLER_MAX; c++) {
		if (!r->v1[c])
			continue;
		/* cpu and cpuacct may share one hierarchy: ENOENT the second time */
		if (rmdir(r->v1[c]) < 0 && errno != ENOENT && ret == 0)
			ret = -errno;
	}
	return ret;
}

void cgroup_root_free(struct cgroup_root *r)
{
	if (!r)
		return;
	cgroup_layout_done(&r->layout);
	free(r->unified);
	for (int c = 0; c < _CGROUP_CONTROLLER_MAX; c++)
		free(r->v1[c]);
	free(r);
}

/* --- one instance ------------------------------------------------------------------ */

struct cgroup_instance {
	char *unified;
	int unified_fd;
	char *v1[_CGROUP_CONTROLLER_MAX];	 /* only those that hold a limit */
	int v1_tasks_fd[_CGROUP_CONTROLLER_MAX]; /* V1DIR/tasks, O_WRONLY, or -1 */
};

void cgroup_instance_free(struct cgroup_instance *c)
{
	if (!c)
		return;
	closep(&c->unified_fd);
	free(c->unified);
	for (int i = 0; i < _CGROUP_CONTROLLER_MAX; i++) {
		free(c->v1[i]);
		closep(&c->v1_tasks_fd[i]);
	}
	free(c);
}

static bool valid_id(const char *id)
{
	if (!id || !id[0] || strlen(id) > 128 || streq(id, ".") || streq(id, ".."))
		return false;
	for (const char *p = id; *p; p++)
		if (*p == '/' || *p == '\n' || *p < 0x20)
			return false;
	return true;
}

/* Writes the limit for controller ctl into dir (v2 file names when unified). */
static int write_limit(int dfd, enum cgroup_controller ctl, bool v2, const struct cgroup_limits *l)
{
	char buf[64];
	int r;

	switch (ctl) {
	case CGROUP_MEMORY:
		snprintf(buf, sizeof(buf), "%" PRIu64, l->memory_max);
		if (!v2)
			return write_at(dfd, "memory.limit_in_bytes", buf);
		r = write_at(dfd, "memory.max", buf);
		if (r < 0)
			return r;
		/* no swap either, when the host has swap accounting */
		r = write_at(dfd, "memory.swap.max", "0");
		return r == -ENOENT ? 0 : r;
	case CGROUP_PIDS:
		snprintf(buf, sizeof(buf), "%" PRIu64, l->tasks_max);
		return write_at(dfd, "pids.max", buf);
	case CGROUP_CPU: {
		uint64_t period = 100000, quota = (uint64_t)l->cpu_quota_percent * 1000;
		if (quota < 1000)
			quota = 1000;
		if (v2) {
			snprintf(buf, sizeof(buf), "%" PRIu64 " %" PRIu64, quota, period);
			return write_at(dfd, "cpu.max", buf);
		}
		snprintf(buf, sizeof(buf), "%" PRIu64, period);
		r = write_at(dfd, "cpu.cfs_period_us", buf);
		if (r < 0)
			return r;
		snprintf(buf, sizeof(buf), "%" PRIu64, quota);
		return write_at(dfd, "cpu.cfs_quota_us", buf);
	}
	default:
		return -EINVAL;
	}
}

static bool limit_wanted(enum cgroup_controller c, const struct cgroup_limits *l)
{
	switch (c) {
	case CGROUP_MEMORY:
		return l->memory_max > 0;
	case CGROUP_PIDS:
		return l->tasks_max > 0;
	case CGROUP_CPU:
		return l->cpu_quota_percent > 0;
	default:
		return false;
	}
}

static const char *const limit_steps[_CGROUP_CONTROLLER_MAX] = {
    [CGROUP_MEMORY] = "cgroup memory",
    [CGROUP_PIDS] = "cgroup pids",
    [CGROUP_CPU] = "cgroup cpu",
};

static void rmdir_all(struct cgroup_instance *c)
{
	for (int i = 0; i < _CGROUP_CONTROLLER_MAX; i++)
		if (c->v1[i])
			(void)rmdir(c->v1[i]);
	if (c->unified)
		(void)rmdir(c->unified);
}

/* The limit of controller i in its v1 hierarchy: NAME/id there, the limit,
 * and its tasks file for cgroup_instance_join_v1_self(). A directory made
 * here is left in c->v1[i] for the caller's rmdir_all() on failure. */
static int create_v1(struct cgroup_instance *c, const struct cgroup_root *root, int i,
		     const char *id, const struct cgroup_limits *limits)
{
	_cleanup_close_ int dfd = -1;
	int r;

	if (!root->v1[i])
		return -EOPNOTSUPP; /* the controller is nowhere: refuse, never ignore */
	if (asprintf(&c->v1[i], "%s/%s", root->v1[i], id) < 0) {
		c->v1[i] = NULL;
		return -ENOMEM;
	}
	if (mkdir(c->v1[i], 0755) < 0) {
		r = -errno;
		free(c->v1[i]);
		c->v1[i] = NULL; /* not ours: never rmdir it */
		return r;
	}
	dfd = open(c->v1[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	r = write_limit(dfd, i, false, limits);
	if (r < 0)
		return r;
	c->v1_tasks_fd[i] = openat(dfd, "tasks", O_WRONLY | O_CLOEXEC);
	return c->v1_tasks_fd[i] < 0 ? -errno : 0;
}

int cgroup_instance_create(const struct cgroup_root *root, const char *id,
			   const struct cgroup_limits *limits, struct cgroup_instance **ret,
			   struct step_error *ret_error)
{
	struct cgroup_instance *c;
	const char *step = "cgroup create";
	int r;

	if (!valid_id(id))
		return step_error_set(ret_error, step, EINVAL, "%s", id ? id : "");
	c = calloc(1, sizeof(*c));
	if (!c)
		return step_error_set(ret_error, step, ENOMEM, "%s", id);
	c->unified_fd = -1;
	for (int i = 0; i < _CGROUP_CONTROLLER_MAX; i++)
		c->v1_tasks_fd[i] = -1;
	if (asprintf(&c->unified, "%s/%s", root->unified, id) < 0) {
		c->unified = NULL;
		r = -ENOMEM;
		goto fail;
	}
	if (mkdir(c->unified, 0755) < 0) {
		r = -errno;
		free(c->unified);
		c->unified = NULL; /* not ours: never rmdir it */
		goto fail;
	}
	c->unified_fd = open(c->unified, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c->unified_fd < 0) {
		r = -errno;
		goto fail;
	}
	for (int i = 0; i < _CGROUP_CONTROLLER_MAX; i++) {
		if (!limit_wanted(i, limits))
			continue;
		step = limit_steps[i];
		if (root->layout.unified_has[i])
			r = write_limit(c->unified_fd, i, true, limits);
		else
			r = create_v1(c, root, i, id, limits);
		if (r < 0)
			goto fail;
	}
	*ret = c;
	return 0;
fail:
	rmdir_all(c);
	cgroup_instance_free(c);
	return step_error_set(ret_error, step, r, "%s", id);
}

int cgroup_instance_fd(const struct cgroup_instance *c)
{
	return c->unified_fd;
}

const char *cgroup_instance_path(const struct cgroup_instance *c)
{
	return c->unified;
}

int cgroup_instance_join_v1_self(const struct cgroup_instance *c)
{
	for (int i = 0; i < _CGROUP_CONTROLLER_MAX; i++) {
		if (c->v1_tasks_fd[i] < 0)
			continue;
		/* "0" = the calling thread: the kernel skips the global
		 * threadgroup lock and its RCU grace period (see sandbox.h) */
		if (write(c->v1_tasks_fd[i], "0", 1) != 1)
			return errno ? -errno : -EIO;
	}
	return 0;
}

int cgroup_instance_populated(const struct cgroup_instance *c)
{
	long v;
	int r = read_key(c->unified_fd, "cgroup.events", "populated", &v);

	return r < 0 ? r : v != 0;
}

int cgroup_instance_freeze(const struct cgroup_instance *c, bool freeze, uint64_t timeout_usec)
{
	int r = write_at(c->unified_fd, "cgroup.freeze", freeze ? "1" : "0");

	if (r < 0)
		return r;
	return wait_events_key(c->unified_fd, "frozen", freeze ? 1 : 0, timeout_usec);
}

int cgroup_instance_kill(const struct cgroup_instance *c)
{
	return write_at(c->unified_fd, "cgroup.kill", "1");
}

int cgroup_instance_remove(struct cgroup_instance *c, uint64_t timeout_usec)
{
	uint64_t deadline = now(CLOCK_MONOTONIC) + timeout_usec;
	int r;

	if (c->unified_fd >= 0 && cgroup_instance_populated(c) > 0) {
		/* a frozen cgroup still dies from cgroup.kill */
		r = cgroup_instance_kill(c);
		if (r < 0)
			return r;
		r = wait_events_key(c->unified_fd, "populated", 0, timeout_usec);
		if (r < 0)
			return r;
	}
	/* rmdir can race with the last exit being accounted: retry briefly */
	for (;;) {
		r = 0;
		for (int i = 0; i < _CGROUP_CONTROLLER_MAX; i++) {
			if (!c->v1[i])
				continue;
			if (rmdir(c->v1[i]) < 0 && errno != ENOENT)
				r = -errno;
			else {
				free(c->v1[i]);
				c->v1[i] = NULL;
			}
		}
		if (c->unified) {
			if (rmdir(c->unified) < 0 && errno != ENOENT)
				r = r ? r : -errno;
			else {
				free(c->unified);
				c->unified = NULL;
				closep(&c->unified_fd);
				c->unified_fd = -1;
			}
		}
		if (r != -EBUSY || now(CLOCK_MONOTONIC) >= deadline)
			return r;
		usleep(1000);
	}
}
