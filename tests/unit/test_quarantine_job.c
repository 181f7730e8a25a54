/* SPDX-License-Identifier: MIT */
/* quarantine_save() in a process of its own: the loop keeps turning while a
 * large layer is saved, the result (manifest hash, evictions, errors) comes
 * back intact through the pipe, and a cancelled save leaves nothing. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "quarantine.h"

struct fixture {
	char dir[64];
	char state[128], layer[128], cgroup[128];
	int layer_fd;
	sd_event *event;
};

struct outcome {
	bool done;
	int r;
	char sha[65];
	char error[256];
	size_t n_evicted;
	char evicted[4][QUARANTINE_ID_MAX + 1];
	unsigned ticks_before_done;
};

static unsigned ticks;

static void sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	assert_int_equal(system(cmd), 0);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/test-quarantine-job-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->state, sizeof(f->state), "%s/state", f->dir);
	snprintf(f->layer, sizeof(f->layer), "%s/layer", f->dir);
	snprintf(f->cgroup, sizeof(f->cgroup), "%s/cgroup", f->dir);
	sh("mkdir -p %s %s/upper/etc %s/work %s", f->state, f->layer, f->layer, f->cgroup);
	sh("printf 'evil:x:0:0::/:/bin/sh\\n' > %s/upper/etc/passwd", f->layer);
	sh("echo %d > %s/cgroup.procs && echo 'frozen 1' > %s/cgroup.events", (int)getpid(),
	   f->cgroup, f->cgroup);
	f->layer_fd = open(f->layer, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(f->layer_fd >= 0);
	assert_int_equal(sd_event_new(&f->event), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	sd_event_unref(f->event);
	close(f->layer_fd);
	sh("rm -rf %s", f->dir);
	free(f);
	return 0;
}

static void on_done(int r, const struct quarantine_result *res, const char *error, void *userdata)
{
	struct outcome *o = userdata;

	o->done = true;
	o->r = r;
	o->ticks_before_done = ticks;
	snprintf(o->sha, sizeof(o->sha), "%s", res->manifest_sha256);
	snprintf(o->error, sizeof(o->error), "%s", error ? error : "");
	for (size_t i = 0; i < res->n_evicted && i < 4; i++)
		snprintf(o->evicted[o->n_evicted++], QUARANTINE_ID_MAX + 1, "%s", res->evicted[i]);
}

static int on_tick(sd_event_source *s, uint64_t usec, void *userdata)
{
	ticks++;
	return sd_event_source_set_time_relative(s, 1000);
}

static struct quarantine_record record(const char *id, const char *service)
{
	return (struct quarantine_record){
	    .id = id, .service = service, .reason = "drift", .pid = 4242};
}

static void run_until_done(struct fixture *f, struct outcome *o)
{
	for (int i = 0; i < 600000 && !o->done; i++)
		assert_true(sd_event_run(f->event, 100000) >= 0);
	assert_true(o->done);
}

static int start(struct fixture *f, const char *id, const char *service, uint64_t cap,
		 struct outcome *o, struct quarantine_job **ret_job)
{
	struct quarantine_record rec = record(id, service);

	return quarantine_job_start(f->event, f->state, &rec, f->layer_fd, f->cgroup, cap, on_done,
				    o, ret_job);
}

static void test_loop_turns_while_a_large_layer_is_saved(void **state)
{
	struct fixture *f = *state;
	struct outcome o = {0};
	sd_event_source *tick = NULL;
	json_t *inspected = NULL;
	const char *sha = NULL;

	/* 2,000 files: a save that takes far longer than one tick (1 ms) */
	sh("mkdir -p %s/upper/many && cd %s/upper/many && seq 1 2000 | xargs touch", f->layer,
	   f->layer);
	ticks = 0;
	assert_int_equal(
	    sd_event_add_time_relative(f->event, &tick, CLOCK_MONOTONIC, 1000, 0, on_tick, NULL),
	    0);
	assert_int_equal(start(f, "web-1", "web", 0, &o, NULL), 0);
	/* never reported from start itself, always from the loop */
	assert_false(o.done);
	run_until_done(f, &o);
	sd_event_source_disable_unref(tick);
	if (o.r < 0)
		print_message("save: %s\n", o.error);
	assert_int_equal(o.r, 0);
	assert_string_equal(o.error, "");
	/* the loop ran its timer while the other process copied */
	assert_true(o.ticks_before_done > 0);
	assert_int_equal(quarantine_inspect(f->state, "web-1", &inspected), 0);
	assert_int_equal(json_unpack(inspected, "{s:{s:s}}", "manifest", "sha256", &sha), 0);
	assert_string_equal(sha, o.sha);
	assert_true(json_is_true(json_object_get(inspected, "verified")));
	json_decref(inspected);
}

static void test_evictions_and_errors_come_back(void **state)
{
	struct fixture *f = *state;
	struct outcome first = {0}, second = {0}, bad = {0};

	/* each entry is ~1 MiB: a cap of 1.5 MiB keeps one */
	sh("head -c 1048576 /dev/urandom > %s/upper/etc/blob", f->layer);
	assert_int_equal(start(f, "web-1", "web", 3 << 19, &first, NULL), 0);
	run_until_done(f, &first);
	assert_int_equal(first.r, 0);
	assert_int_equal(start(f, "web-2", "web", 3 << 19, &second, NULL), 0);
	run_until_done(f, &second);
	assert_int_equal(second.r, 0);
	assert_int_equal(second.n_evicted, 1);
	assert_string_equal(second.evicted[0], "web-1");

	/* an error of the save itself, with its reason */
	assert_int_equal(start(f, "web-3", "no/such", 0, &bad, NULL), 0);
	run_until_done(f, &bad);
	assert_int_equal(bad.r, -EINVAL);
	assert_non_null(strstr(bad.error, "service name"));
	sh("test ! -e %s/quarantine/web-3 && test ! -e %s/quarantine/web-3.tmp", f->state,
	   f->state);
}

static void test_cancel_leaves_nothing(void **state)
{
	struct fixture *f = *state;
	struct outcome o = {0};
	struct quarantine_job *job = NULL;

	sh("mkdir -p %s/upper/many && cd %s/upper/many && seq 1 2000 | xargs touch", f->layer,
	   f->layer);
	assert_int_equal(start(f, "web-1", "web", 0, &o, &job), 0);
	assert_non_null(job);
	quarantine_job_cancel(job);
	/* the loop has nothing left of the job to run */
	assert_true(sd_event_run(f->event, 50000) >= 0);
	assert_false(o.done);
	sh("test ! -e %s/quarantine/web-1 && test ! -e %s/quarantine/web-1.tmp", f->state,
	   f->state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_loop_turns_while_a_large_layer_is_saved, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_evictions_and_errors_come_back, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cancel_leaves_nothing, setup, teardown),
	};
	sigset_t mask;

	/* sd-event follows the save process by pidfd and wants SIGCHLD blocked */
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
