/* SPDX-License-Identifier: MIT */
/* Unit tests for the agent's audit clock (agent/audit/audit_timer.c) on a real
 * sd-event loop with short epochs: a seal every epoch for as long as it runs,
 * the key file moving on each time, a failed seal retried until it succeeds
 * (never skipped), queued records written once the log can take them. The
 * loop runs until the condition holds (bounded by a number of iterations,
 * not by time). A full disk is RLIMIT_FSIZE, as in test_audit_resume.c. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <systemd/sd-event.h>

#include "audit.h"
#include "audit_internal.h"
#include "macro.h"

#define EPOCH_USEC (20 * 1000ULL)
#define LOOP_MAX 200000

struct fx {
	char dir[64];
	char state[128];
	char log_path[128];
	uint8_t key0[AUDIT_KEY_SIZE];
	sd_event *event;
	struct audit_log *log;
	struct audit_timer *timer;
};

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void disk_full_at(off_t size)
{
	struct rlimit rl = {.rlim_cur = (rlim_t)size, .rlim_max = RLIM_INFINITY};

	assert_int_equal(setrlimit(RLIMIT_FSIZE, &rl), 0);
}

static void disk_free(void)
{
	struct rlimit rl = {.rlim_cur = RLIM_INFINITY, .rlim_max = RLIM_INFINITY};

	assert_int_equal(setrlimit(RLIMIT_FSIZE, &rl), 0);
}

static off_t file_size(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_size;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char vpath[160];

	assert_non_null(f);
	strcpy(f->dir, "/tmp/test-audit-timer-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->state, sizeof(f->state), "%s/state", f->dir);
	snprintf(f->log_path, sizeof(f->log_path), "%s/audit.log", f->dir);
	assert_int_equal(mkdir(f->state, 0700), 0);
	assert_int_equal(sd_event_new(&f->event), 0);
	assert_int_equal(audit_log_open(f->log_path, f->state, NULL, &f->log, NULL), 0);
	snprintf(vpath, sizeof(vpath), "%s/audit-verify.key", f->state);
	assert_int_equal(audit_key_read(vpath, f->key0), 0);
	assert_int_equal(audit_log_append(f->log, "agent-start", NULL, true, NULL, NULL), 0);
	assert_int_equal(audit_timer_new(f->event, f->log, EPOCH_USEC, &f->timer), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	disk_free();
	audit_timer_free(f->timer);
	audit_log_close(f->log);
	sd_event_unref(f->event);
	nftw(f->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static uint64_t key_file_epoch(struct fx *f)
{
	struct audit_key_state ks = {};
	int fd = open(f->state, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	uint64_t epoch;

	assert_true(fd >= 0);
	assert_int_equal(audit_key_state_load(fd, &ks), 0);
	close(fd);
	epoch = ks.epoch;
	audit_key_state_cleanse(&ks);
	return epoch;
}

static struct audit_timer_stats stats(struct fx *f)
{
	struct audit_timer_stats s;

	audit_timer_get_stats(f->timer, &s);
	return s;
}

/* One turn of the loop; whatever the condition, it is checked by the caller. */
static void turn(struct fx *f)
{
	assert_true(sd_event_run(f->event, 5 * 1000000ULL) >= 0);
}

/* The seals in the log, in order: their epochs in epochs[], the count returned. */
static size_t seal_epochs(struct fx *f, uint64_t *epochs, size_t max)
{
	FILE *fp = fopen(f->log_path, "re");
	char *line = NULL;
	size_t cap = 0, n = 0;
	ssize_t len;

	assert_non_null(fp);
	while ((len = getline(&line, &cap, fp)) > 0) {
		struct audit_record rec;

		assert_int_equal(audit_record_parse(line, (size_t)len, &rec), 0);
		if (streq(rec.type, "seal") && n < max)
			epochs[n++] =
			    (uint64_t)json_integer_value(json_object_get(rec.fields, "epoch"));
		audit_record_done(&rec);
	}
	free(line);
	fclose(fp);
	return n;
}

static void assert_verifies(struct fx *f)
{
	struct audit_verify_result res = {};
	const char *paths[] = {f->log_path};

	assert_int_equal(audit_verify_files(f->key0, paths, 1, &res), 0);
	if (!res.ok)
		fail_msg("verify: seq %llu: %s", (unsigned long long)res.bad_seq, res.reason);
	audit_verify_result_done(&res);
}

static void test_seals_every_epoch_and_the_key_moves_on(void **state)
{
	struct fx *f = *state;
	uint64_t seen[16], epochs[16], last_seen = 0;
	size_t n_seen = 0, n;
	int i;

	for (i = 0; i < LOOP_MAX && stats(f).seals < 6; i++) {
		uint64_t e;

		turn(f);
		e = key_file_epoch(f);
		if (e != last_seen && n_seen < ELEMENTSOF(seen))
			seen[n_seen++] = e;
		last_seen = e;
		/* the file and the writer move together */
		assert_int_equal(e, audit_log_epoch(f->log));
	}
	assert_true(stats(f).seals >= 6);
	assert_int_equal(stats(f).seal_failures, 0);
	/* every epoch was seen in audit.key, one after the other */
	assert_true(n_seen >= 6);
	for (size_t k = 0; k < n_seen; k++)
		assert_int_equal(seen[k], k + 1);
	n = seal_epochs(f, epochs, ELEMENTSOF(epochs));
	assert_int_equal(n, stats(f).seals);
	for (size_t k = 0; k < n; k++)
		assert_int_equal(epochs[k], k);
	assert_int_equal(key_file_epoch(f), n);
	assert_verifies(f);
}

static void test_failed_seal_is_retried_not_skipped(void **state)
{
	struct fx *f = *state;
	uint64_t epochs[16], failures;
	size_t n;
	int i;

	disk_full_at(file_size(f->log_path));
	for (i = 0; i < LOOP_MAX && stats(f).seal_failures < 3; i++)
		turn(f);
	failures = stats(f).seal_failures;
	n = (size_t)stats(f).seals;
	disk_free();
	assert_true(failures >= 3);
	assert_int_equal(n, 0);
	assert_int_equal(key_file_epoch(f), 0);
	/* the failed seals left nothing behind: the log takes a record again,
	 * in the epoch that is still open */
	assert_int_equal(audit_log_submit(f->log, "event", NULL, true, NULL, NULL), 0);
	assert_int_equal(audit_log_epoch(f->log), 0);

	for (i = 0; i < LOOP_MAX && stats(f).seals < 3; i++)
		turn(f);
	assert_true(stats(f).seals >= 3);
	n = seal_epochs(f, epochs, ELEMENTSOF(epochs));
	for (size_t k = 0; k < n; k++)
		assert_int_equal(epochs[k], k);
	assert_int_equal(key_file_epoch(f), n);
	assert_verifies(f);
}

static void test_queued_records_are_written_when_space_returns(void **state)
{
	struct fx *f = *state;
	struct audit_log_status st;
	int r[3], i;

	disk_full_at(file_size(f->log_path));
	for (int k = 0; k < 3; k++)
		r[k] = audit_log_submit(f->log, "event", NULL, true, NULL, NULL);
	audit_timer_kick(f->timer);
	for (i = 0; i < LOOP_MAX && stats(f).seal_failures < 2; i++)
		turn(f);
	audit_log_get_status(f->log, &st);
	disk_free();
	for (int k = 0; k < 3; k++)
		assert_int_equal(r[k], AUDIT_QUEUED);
	assert_int_equal(st.queued, 3);

	for (i = 0; i < LOOP_MAX; i++) {
		audit_log_get_status(f->log, &st);
		if (!st.pending)
			break;
		turn(f);
	}
	assert_false(st.pending);
	assert_int_equal(st.queued, 0);
	assert_int_equal(st.queued_total, 3);
	assert_true(audit_log_last_seq(f->log) >= 4);
	assert_verifies(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	    T(test_seals_every_epoch_and_the_key_moves_on),
	    T(test_failed_seal_is_retried_not_skipped),
	    T(test_queued_records_are_written_when_space_returns),
#undef T
	};

	signal(SIGXFSZ, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
