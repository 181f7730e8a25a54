/* SPDX-License-Identifier: MIT */
/* Drift in a writable layer: a temp directory with upper/ stands in for the
 * instance's tmpfs. The scan and the inotify watch must report the same
 * things with paths from the instance's root. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cmocka.h>

#include "fleet_internal.h"

static char *const writable[] = {"/var/cache/nginx/", "/run", "/tmp"};
#define N_WRITABLE 3

struct fixture {
	char dir[64];
	int fd; /* the "tmpfs": dir, with upper/ in it */
	char seen[64][DRIFT_PATH_MAX + 32];
	size_t n_seen;
};

static void sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	assert_int_equal(system(cmd), 0);
}

static void put(struct fixture *f, const char *rel, const char *content, mode_t mode)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/upper%s", f->dir, rel);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/test-drift-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	sh("mkdir -p %s/upper %s/work", f->dir, f->dir);
	f->fd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(f->fd >= 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	close(f->fd);
	sh("rm -rf %s", f->dir);
	free(f);
	return 0;
}

static void record(struct fixture *f, const struct drift_event *ev)
{
	assert_true(f->n_seen < 64);
	snprintf(f->seen[f->n_seen++], sizeof(f->seen[0]), "%s %s", drift_kind_name(ev->kind),
		 ev->path);
}

static bool saw(struct fixture *f, const char *line)
{
	for (size_t i = 0; i < f->n_seen; i++)
		if (strcmp(f->seen[i], line) == 0)
			return true;
	return false;
}

static int on_event(const struct drift_event *ev, void *userdata)
{
	record(userdata, ev);
	return 0;
}

static void test_writable_prefix_matches_whole_components(void **state)
{
	assert_true(drift_path_writable("/var/cache/nginx", writable, N_WRITABLE));
	assert_true(drift_path_writable("/var/cache/nginx/x", writable, N_WRITABLE));
	assert_true(drift_path_writable("/run/a/b", writable, N_WRITABLE));
	assert_false(drift_path_writable("/var/cache/nginxfoo", writable, N_WRITABLE));
	assert_false(drift_path_writable("/var/cache", writable, N_WRITABLE));
	assert_false(drift_path_writable("/runx", writable, N_WRITABLE));
	assert_false(drift_path_writable("/etc/passwd", writable, N_WRITABLE));
	assert_true(drift_path_writable("/anything", (char *const[]){"/"}, 1));
	assert_false(drift_path_writable("/etc", (char *const[]){"relative"}, 1));
	assert_false(drift_path_writable("/etc", NULL, 0));
}

static void make_tree(struct fixture *f)
{
	sh("cd %s/upper && mkdir -p etc var/cache/nginx/sub var/cache/nginxfoo tmp run", f->dir);
	put(f, "/etc/passwd", "root:x:0:0::/:/bin/sh\n", 0644);
	put(f, "/var/cache/nginx/sub/page", "cached\n", 0644);
	put(f, "/var/cache/nginxfoo/y", "not covered\n", 0644);
	put(f, "/var/cache/nginx/run.sh", "#!/bin/sh\necho hi\n", 0644);
	put(f, "/var/cache/nginx/elf",
	    "\x7f"
	    "ELF\x02\x01\x01",
	    0600);
	put(f, "/tmp/tool", "plain text but executable\n", 0755);
	put(f, "/run/pid", "1\n", 0644);
	/* a symlink out of a writable path: reported where it is, never followed */
	sh("ln -s /etc %s/upper/var/cache/nginx/etc-link", f->dir);
	sh("ln -s ../../../etc %s/upper/run/up", f->dir);
	sh("ln -s /bin/sh %s/upper/etc/shell", f->dir);
}

static void test_scan_reports_writes_outside_and_executables(void **state)
{
	struct fixture *f = *state;

	make_tree(f);
	assert_int_equal(drift_scan(f->fd, writable, N_WRITABLE, on_event, f), 0);
	assert_true(saw(f, "write-outside-writable /etc/passwd"));
	assert_true(saw(f, "write-outside-writable /etc/shell"));
	assert_true(saw(f, "write-outside-writable /var/cache/nginxfoo/y"));
	assert_true(saw(f, "new-executable /var/cache/nginx/run.sh"));
	assert_true(saw(f, "new-executable /var/cache/nginx/elf"));
	assert_true(saw(f, "new-executable /tmp/tool"));
	/* exactly these: nothing for writable data, directories or symlinks in
	 * writable paths, and /etc/passwd once (the symlinks were not followed) */
	assert_int_equal(f->n_seen, 6);
}

static int stop_at_first(const struct drift_event *ev, void *userdata)
{
	record(userdata, ev);
	return 7;
}

static void test_scan_callback_stops_the_walk(void **state)
{
	struct fixture *f = *state;

	make_tree(f);
	assert_int_equal(drift_scan(f->fd, writable, N_WRITABLE, stop_at_first, f), 7);
	assert_int_equal(f->n_seen, 1);
}

static void test_scan_without_upper_fails(void **state)
{
	struct fixture *f = *state;

	sh("rmdir %s/upper && ln -s /etc %s/upper", f->dir, f->dir);
	assert_int_equal(drift_scan(f->fd, writable, N_WRITABLE, on_event, f), -ENOTDIR);
	assert_int_equal(f->n_seen, 0);
}

/* Whiteouts (0/0 character devices) and opaque directories: deletions. */
static void test_scan_reports_deletions_outside_writable(void **state)
{
	struct fixture *f = *state;
	char path[256];
	bool opaque;

	sh("mkdir -p %s/upper/etc %s/upper/run %s/upper/opt %s/upper/run/cache", f->dir, f->dir,
	   f->dir, f->dir);
	snprintf(path, sizeof(path), "%s/upper/etc/shadow", f->dir);
	if (mknod(path, S_IFCHR | 0, makedev(0, 0)) < 0) {
		assert_int_equal(errno, EPERM);
		skip();
	}
	snprintf(path, sizeof(path), "%s/upper/run/old.pid", f->dir);
	assert_int_equal(mknod(path, S_IFCHR | 0, makedev(0, 0)), 0);
	snprintf(path, sizeof(path), "%s/upper/opt", f->dir);
	opaque = setxattr(path, "trusted.overlay.opaque", "y", 1, 0) == 0;
	snprintf(path, sizeof(path), "%s/upper/run/cache", f->dir);
	if (opaque)
		assert_int_equal(setxattr(path, "trusted.overlay.opaque", "y", 1, 0), 0);
	assert_int_equal(drift_scan(f->fd, writable, N_WRITABLE, on_event, f), 0);
	assert_true(saw(f, "delete-outside-writable /etc/shadow"));
	if (opaque)
		assert_true(saw(f, "delete-outside-writable /opt"));
	else
		print_message("trusted xattrs unsupported here: opaque directories not tested\n");
	assert_int_equal(f->n_seen, opaque ? 2 : 1);
}

/* --- the watch ------------------------------------------------------------------- */

/* Read until want is seen (or 2 s pass). */
static bool wait_for(struct fixture *f, struct drift_watch *w, const char *want)
{
	for (int i = 0; i < 40 && !saw(f, want); i++) {
		struct pollfd p = {.fd = drift_watch_fd(w), .events = POLLIN};
		struct drift_event ev[8];
		size_t n;

		(void)poll(&p, 1, 50);
		do {
			assert_int_equal(drift_watch_read(w, ev, 8, &n), 0);
			for (size_t k = 0; k < n; k++)
				record(f, &ev[k]);
		} while (n == 8);
	}
	return saw(f, want);
}

static void test_watch_reports_what_was_there_at_start(void **state)
{
	struct fixture *f = *state;
	struct drift_watch *w = NULL;
	struct drift_event ev[4];
	size_t n = 99;

	make_tree(f);
	assert_int_equal(drift_watch_new(f->fd, writable, N_WRITABLE, &w), 0);
	assert_true(fcntl(drift_watch_fd(w), F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(drift_watch_fd(w), F_GETFD) & FD_CLOEXEC);
	assert_true(wait_for(f, w, "write-outside-writable /etc/passwd"));
	assert_true(saw(f, "new-executable /tmp/tool"));
	assert_int_equal(f->n_seen, 6);
	/* and then nothing more: reading does not block */
	assert_int_equal(drift_watch_read(w, ev, 4, &n), 0);
	assert_int_equal(n, 0);
	drift_watch_free(w);
}

static void test_watch_reports_new_writes_with_instance_paths(void **state)
{
	struct fixture *f = *state;
	struct drift_watch *w = NULL;

	sh("mkdir -p %s/upper/var/cache/nginx %s/upper/tmp", f->dir, f->dir);
	assert_int_equal(drift_watch_new(f->fd, writable, N_WRITABLE, &w), 0);

	put(f, "/var/cache/nginx/data", "fine\n", 0644);
	sh("mkdir %s/upper/etc && echo x > %s/upper/etc/passwd", f->dir, f->dir);
	assert_true(wait_for(f, w, "write-outside-writable /etc/passwd"));
	/* a deep tree made at once: the files below directories that appeared
	 * before their watch are found by the scan of the new directory */
	sh("mkdir -p %s/upper/usr/lib/a/b/c && echo x > %s/upper/usr/lib/a/b/c/evil.so", f->dir,
	   f->dir);
	assert_true(wait_for(f, w, "write-outside-writable /usr/lib/a/b/c/evil.so"));
	/* an executable in a writable path: created with x, chmod +x, ELF written */
	put(f, "/tmp/dropper", "binary", 0700);
	assert_true(wait_for(f, w, "new-executable /tmp/dropper"));
	put(f, "/var/cache/nginx/later", "text", 0644);
	sh("chmod u+x %s/upper/var/cache/nginx/later", f->dir);
	assert_true(wait_for(f, w, "new-executable /var/cache/nginx/later"));
	put(f, "/var/cache/nginx/payload",
	    "\x7f"
	    "ELF....",
	    0644);
	assert_true(wait_for(f, w, "new-executable /var/cache/nginx/payload"));
	/* a file moved in, and a directory moved: its watch follows it */
	sh("echo x > %s/moved && mv %s/moved %s/upper/etc/moved", f->dir, f->dir, f->dir);
	assert_true(wait_for(f, w, "write-outside-writable /etc/moved"));
	sh("mkdir %s/upper/tmp/d && mv %s/upper/tmp/d %s/upper/etc/d && echo x > %s/upper/etc/d/f",
	   f->dir, f->dir, f->dir, f->dir);
	assert_true(wait_for(f, w, "write-outside-writable /etc/d/f"));
	/* nothing about the plain writable data */
	assert_false(saw(f, "write-outside-writable /var/cache/nginx/data"));
	assert_false(saw(f, "new-executable /var/cache/nginx/data"));
	drift_watch_free(w);
}

/* A directory renamed with everything below it: the rename is one change
 * (the moved directory is reported where it lands outside Writable=, not
 * re-walked), and what happens below it later is reported at its new path,
 * however deep and however often it moved. */
static void test_watch_follows_renamed_trees_without_rewalking(void **state)
{
	struct fixture *f = *state;
	struct drift_watch *w = NULL;

	sh("mkdir -p %s/upper/tmp/t/a/b/c %s/upper/run %s/upper/tmp/t/many && cd "
	   "%s/upper/tmp/t/many "
	   "&& for i in $(seq 0 299); do mkdir d$i; done",
	   f->dir, f->dir, f->dir, f->dir);
	assert_int_equal(drift_watch_new(f->fd, writable, N_WRITABLE, &w), 0);
	sh("echo x > %s/upper/tmp/t/a/b/c/ok", f->dir);
	(void)wait_for(f, w, "never");
	assert_false(saw(f, "write-outside-writable /tmp/t/a/b/c/ok")); /* writable */

	/* within Writable=: nothing to report, and the tree's files keep quiet */
	sh("mv %s/upper/tmp/t %s/upper/run/t", f->dir, f->dir);
	sh("echo x > %s/upper/run/t/a/b/c/still-ok", f->dir);
	(void)wait_for(f, w, "never");
	assert_false(saw(f, "write-outside-writable /run/t"));
	assert_false(saw(f, "write-outside-writable /run/t/a/b/c/still-ok"));

	/* out of Writable=: the moved directory is reported where it landed */
	sh("mkdir -p %s/upper/etc && mv %s/upper/run/t %s/upper/etc/t", f->dir, f->dir, f->dir);
	assert_true(wait_for(f, w, "write-outside-writable /etc/t"));
	/* not every file of the 300 directories again */
	assert_false(saw(f, "write-outside-writable /etc/t/a/b/c/ok"));
	/* and what is written below it afterwards has its new path */
	sh("echo x > %s/upper/etc/t/a/b/c/evil && echo y > %s/upper/etc/t/many/d299/evil2", f->dir,
	   f->dir);
	assert_true(wait_for(f, w, "write-outside-writable /etc/t/a/b/c/evil"));
	assert_true(wait_for(f, w, "write-outside-writable /etc/t/many/d299/evil2"));
	/* renamed again, deeper */
	sh("mkdir -p %s/upper/etc/x/y && mv %s/upper/etc/t %s/upper/etc/x/y/t2", f->dir, f->dir,
	   f->dir);
	sh("echo z > %s/upper/etc/x/y/t2/a/b/c/evil3", f->dir);
	assert_true(wait_for(f, w, "write-outside-writable /etc/x/y/t2/a/b/c/evil3"));
	drift_watch_free(w);
}

static void test_watch_reports_whiteouts(void **state)
{
	struct fixture *f = *state;
	struct drift_watch *w = NULL;
	char path[256];

	sh("mkdir -p %s/upper/etc", f->dir);
	assert_int_equal(drift_watch_new(f->fd, writable, N_WRITABLE, &w), 0);
	snprintf(path, sizeof(path), "%s/upper/etc/hosts", f->dir);
	if (mknod(path, S_IFCHR | 0, makedev(0, 0)) < 0) {
		drift_watch_free(w);
		skip();
	}
	assert_true(wait_for(f, w, "delete-outside-writable /etc/hosts"));
	drift_watch_free(w);
}

/* More reports than the watch queues: events-lost tells the agent to scan. */
static void test_watch_overflow_says_events_lost(void **state)
{
	struct fixture *f = *state;
	struct drift_watch *w = NULL;
	struct drift_event *ev = calloc(64, sizeof(*ev));
	size_t n, total = 0;
	bool lost = false;

	sh("mkdir -p %s/upper/etc && cd %s/upper/etc && for i in $(seq 1100); do : > f$i; done",
	   f->dir, f->dir);
	assert_int_equal(drift_watch_new(f->fd, writable, N_WRITABLE, &w), 0);
	do {
		assert_int_equal(drift_watch_read(w, ev, 64, &n), 0);
		for (size_t i = 0; i < n; i++) {
			lost |= ev[i].kind == DRIFT_EVENTS_LOST;
			total++;
		}
	} while (n > 0);
	assert_true(lost);
	assert_int_equal(total, 1024 + 1);
	drift_watch_free(w);
	free(ev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_writable_prefix_matches_whole_components),
	    cmocka_unit_test_setup_teardown(test_scan_reports_writes_outside_and_executables, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_scan_callback_stops_the_walk, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_scan_without_upper_fails, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_scan_reports_deletions_outside_writable, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_watch_reports_what_was_there_at_start, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_watch_reports_new_writes_with_instance_paths,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_watch_follows_renamed_trees_without_rewalking,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_watch_reports_whiteouts, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_watch_overflow_says_events_lost, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
