/* SPDX-License-Identifier: MIT */
/* audit-show as a control job, stepped by hand: the control socket is
 * replaced by the stubs below (the linker takes them before control.o), so
 * the test sees every message and decides when the next step runs — and can
 * rotate the log between steps. */
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "audit.h"
#include "control.h"
#include "macro.h"

#define KEEP 3

static char dir[64], log_path[128];
static struct audit_log *log_;

/* --- the control socket, stubbed ------------------------------------------------------ */
static json_t *messages; /* every message sent, parsed */
static control_job_step_t job_step;
static void (*job_free)(void *);
static void *job_data;
static bool followed;

int control_client_send(struct control_client *client, const char *message)
{
	json_t *m = json_loads(message, 0, NULL);

	assert_non_null(m);
	json_array_append_new(messages, m);
	return 0;
}

void control_client_follow(struct control_client *client)
{
	followed = true;
}

int control_client_start_job(struct control_client *client, control_job_step_t step,
			     void (*free_data)(void *data), void *data)
{
	assert_null(job_step);
	job_step = step;
	job_free = free_data;
	job_data = data;
	return 0;
}

/* Runs the job to its end, calling between() before each step but the first. */
static unsigned run_job(void (*between)(unsigned step))
{
	unsigned steps = 0;
	int r;

	do {
		if (steps > 0 && between)
			between(steps);
		r = job_step(NULL, job_data);
		assert_true(r >= 0);
		steps++;
	} while (r == 0);
	job_free(job_data);
	job_step = NULL;
	return steps;
}

/* --- the log ------------------------------------------------------------------------------ */
static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void append(unsigned n)
{
	char pad[301];

	memset(pad, 'x', 300);
	pad[300] = '\0';
	for (unsigned i = 0; i < n; i++) {
		json_t *fields = json_pack("{s:s}", "pad", pad);

		assert_int_equal(audit_log_append(log_, "test", fields, false, NULL, NULL), 0);
		json_decref(fields);
	}
}

static int setup(void **state)
{
	struct audit_options options = {.max_bytes = 32 * 1024, .keep = KEEP};
	char st[160];

	strcpy(dir, "/tmp/test-audit-show-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(st, sizeof(st), "%s/state", dir);
	snprintf(log_path, sizeof(log_path), "%s/audit.log", dir);
	assert_int_equal(mkdir(st, 0700), 0);
	assert_int_equal(audit_log_open(log_path, st, &options, &log_, NULL), 0);
	messages = json_array();
	followed = false;
	return 0;
}

static int teardown(void **state)
{
	audit_log_close(log_);
	json_decref(messages);
	nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

/* The seq of the first record of log file i. */
static uint64_t first_seq(unsigned i)
{
	char name[160];
	unsigned long long seq = 0;
	FILE *f;

	snprintf(name, sizeof(name), "%s.%u", log_path, i);
	f = fopen(name, "re");
	assert_non_null(f);
	assert_int_equal(fscanf(f, "{\"seq\":%llu,", &seq), 1);
	fclose(f);
	return seq;
}

/* The seqs of every record in every message, in order. */
static uint64_t *received(size_t *ret_n)
{
	uint64_t *seqs = NULL;
	size_t n = 0;

	for (size_t i = 0; i < json_array_size(messages); i++) {
		json_t *records = json_object_get(json_array_get(messages, i), "records");

		for (size_t j = 0; j < json_array_size(records); j++) {
			seqs = realloc(seqs, (n + 1) * sizeof(*seqs));
			assert_non_null(seqs);
			seqs[n++] = (uint64_t)json_integer_value(
			    json_object_get(json_array_get(records, j), "seq"));
		}
	}
	*ret_n = n;
	return seqs;
}

static json_t *last_message(void)
{
	return json_array_get(messages, json_array_size(messages) - 1);
}

static void test_show_streams_in_batches_from_the_middle(void **state)
{
	struct audit_show_stats stats = {0};
	uint64_t last, since, *seqs;
	size_t n;

	append(250); /* ~160 KB in 32 KiB files (~50 records), 3 kept: the oldest are gone */
	last = audit_log_last_seq(log_);
	since = last - 120;
	assert_int_equal(audit_show_start(NULL, log_, log_path, KEEP, since, false, &stats), 0);
	assert_true(run_job(NULL) >= 2); /* ~78 KB: more than one 64 KiB batch */
	seqs = received(&n);
	assert_int_equal(n, 120);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(seqs[i], since + 1 + i);
	free(seqs);
	assert_true(json_is_false(json_object_get(last_message(), "more")));
	assert_int_equal(json_integer_value(json_object_get(last_message(), "next_since")), last);
	/* it read what it returned (and a log-rotated line or two), not the log */
	assert_in_range(stats.lines_read, 120, 125);
	assert_int_equal(stats.records_sent, 120);
	assert_false(followed);
}

static void test_show_past_the_end_reads_nothing(void **state)
{
	struct audit_show_stats stats = {0};
	size_t n;

	append(50);
	assert_int_equal(audit_show_start(NULL, log_, log_path, KEEP,
					  audit_log_last_seq(log_) + 1000, true, &stats),
			 0);
	assert_null(job_step); /* answered at once, no job */
	free(received(&n));
	assert_int_equal(n, 0);
	assert_int_equal(json_array_size(messages), 1);
	assert_true(json_is_true(json_object_get(last_message(), "more")));
	assert_int_equal(stats.lines_read, 0);
	assert_true(followed);
}

/* The log rotates under a slow reader: it goes on in the renamed files, never
 * sends a record twice or out of order; what rotated away is a gap. */
static void rotate_some(unsigned step)
{
	append(90); /* ~58 KB: a rotation or two */
}

static void test_show_follows_the_files_across_rotations(void **state)
{
	struct audit_show_stats stats = {0};
	uint64_t *seqs, first, oldest;
	size_t n;

	append(250);
	first = audit_log_last_seq(log_) - 120;
	oldest = first_seq(KEEP);
	assert_int_equal(audit_show_start(NULL, log_, log_path, KEEP, first, true, &stats), 0);
	assert_true(run_job(rotate_some) >= 3);
	assert_true(first_seq(KEEP) > oldest + 100); /* it did rotate under us, twice or more */
	seqs = received(&n);
	assert_true(n > 0);
	assert_int_equal(seqs[0], first + 1);
	/* each step reads more than the rotations push out: nothing is lost
	 * here, so every record comes once, in order (the log-rotated ones too) */
	for (size_t i = 1; i < n; i++)
		assert_int_equal(seqs[i], seqs[i - 1] + 1);
	assert_int_equal(seqs[n - 1], audit_log_last_seq(log_));
	free(seqs);
	assert_true(followed);
}

/* The reader's file rotated away between two steps: it goes on from the
 * oldest kept file; the lost records are a gap, never a repeat. */
static void rotate_past_keep(unsigned step)
{
	if (step == 1)
		append(300); /* ~6 files: more than KEEP */
}

static void test_show_goes_on_when_its_file_rotated_away(void **state)
{
	struct audit_show_stats stats = {0};
	uint64_t *seqs, first;
	size_t n;
	bool gap = false;

	append(250);
	first = audit_log_last_seq(log_) - 150;
	assert_int_equal(audit_show_start(NULL, log_, log_path, KEEP, first, false, &stats), 0);
	run_job(rotate_past_keep);
	seqs = received(&n);
	assert_int_equal(seqs[0], first + 1);
	for (size_t i = 1; i < n; i++) {
		assert_true(seqs[i] > seqs[i - 1]);
		gap |= seqs[i] != seqs[i - 1] + 1;
	}
	assert_true(gap);
	assert_int_equal(seqs[n - 1], audit_log_last_seq(log_));
	free(seqs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_show_streams_in_batches_from_the_middle, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_show_past_the_end_reads_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_show_follows_the_files_across_rotations, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_show_goes_on_when_its_file_rotated_away, setup,
					    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
