/* SPDX-License-Identifier: MIT */
/* The clock's trust: the kernel's synchronisation state (as adjtimex gives
 * it) against the bound, the state file tests inject instead of adjtimex,
 * and a record only when the state changes. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timex.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "rotation.h"

static void test_synchronised_within_the_bound_is_trusted(void **state)
{
	struct clock_sync sync = {
	    .status = STA_PLL | STA_NANO, .esterror_usec = 1500, .maxerror_usec = 40000};
	char reason[CLOCK_TRUST_REASON_MAX];

	assert_int_equal(clock_trust_classify(&sync, USEC_PER_SEC, reason, sizeof(reason)),
			 CLOCK_TRUSTED);
	assert_string_equal(reason,
			    "synchronised, estimated error 1ms 500us within the bound of 1s");
	/* the bound itself is still within */
	sync.esterror_usec = USEC_PER_SEC;
	assert_int_equal(clock_trust_classify(&sync, USEC_PER_SEC, reason, sizeof(reason)),
			 CLOCK_TRUSTED);
}

static void test_sta_unsync_is_unsynchronised_whatever_the_error(void **state)
{
	/* what this very host says before NTP has run: status 0x2040, 16 s */
	struct clock_sync sync = {.status = STA_UNSYNC | STA_NANO,
				  .time_error = true,
				  .esterror_usec = 16000000,
				  .maxerror_usec = 16000000};
	char reason[CLOCK_TRUST_REASON_MAX];

	assert_int_equal(clock_trust_classify(&sync, USEC_PER_HOUR, reason, sizeof(reason)),
			 CLOCK_UNSYNCHRONISED);
	assert_string_equal(reason, "the kernel's clock is not synchronised (STA_UNSYNC; "
				    "maximum error 16s)");
	/* the bit alone, a tiny error */
	sync = (struct clock_sync){.status = STA_UNSYNC};
	assert_int_equal(clock_trust_classify(&sync, USEC_PER_SEC, reason, sizeof(reason)),
			 CLOCK_UNSYNCHRONISED);
}

static void test_time_error_alone_is_unsynchronised(void **state)
{
	struct clock_sync sync = {.time_error = true, .esterror_usec = 10};
	char reason[CLOCK_TRUST_REASON_MAX];

	assert_int_equal(clock_trust_classify(&sync, USEC_PER_SEC, reason, sizeof(reason)),
			 CLOCK_UNSYNCHRONISED);
	assert_non_null(strstr(reason, "TIME_ERROR"));
}

static void test_estimated_error_above_the_bound_is_untrusted(void **state)
{
	struct clock_sync sync = {.esterror_usec = USEC_PER_SEC + 1, .maxerror_usec = 3000000};
	char reason[CLOCK_TRUST_REASON_MAX];

	assert_int_equal(clock_trust_classify(&sync, USEC_PER_SEC, reason, sizeof(reason)),
			 CLOCK_ERROR_ABOVE_BOUND);
	assert_string_equal(reason, "estimated error 1s 1us above the bound of 1s");
	/* the maximum error is not the estimate: a large maxerror alone is trusted */
	sync = (struct clock_sync){.esterror_usec = 100, .maxerror_usec = 10 * USEC_PER_SEC};
	assert_int_equal(clock_trust_classify(&sync, USEC_PER_SEC, reason, sizeof(reason)),
			 CLOCK_TRUSTED);
}

static char *write_state(const char *text)
{
	char *path = strdup("/tmp/test_clock_trust.XXXXXX");
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static void test_state_file_gives_status_esterror_maxerror(void **state)
{
	char *path = write_state("64 250 16000000\n");
	struct clock_sync sync;

	assert_int_equal(clock_trust_read(path, &sync, NULL), 0);
	assert_int_equal(sync.status, STA_UNSYNC);
	assert_false(sync.time_error);
	assert_int_equal(sync.esterror_usec, 250);
	assert_int_equal(sync.maxerror_usec, 16000000);
	unlink(path);
	free(path);
}

static void test_state_file_refuses_anything_else_and_says_where(void **state)
{
	static const char *const bad[] = {
	    "",
	    "64 250\n",
	    "64 250 1000 7\n",
	    "sync 0 0\n",
	    "0 -1 0\n",
	    "0 1x 0\n",
	    "0 0 99999999999999999999999\n",
	};
	struct step_error error;
	char text[STEP_ERROR_FORMAT_MAX];
	struct clock_sync sync = {.status = 12345};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *path = write_state(bad[i]);

		error = (struct step_error){0};
		assert_int_equal(clock_trust_read(path, &sync, &error), -EINVAL);
		assert_int_equal(sync.status, 12345); /* untouched on failure */
		step_error_format(&error, text, sizeof(text));
		assert_non_null(strstr(text, path));
		assert_non_null(strstr(text, "clock state file"));
		unlink(path);
		free(path);
	}
	error = (struct step_error){0};
	assert_int_equal(clock_trust_read("/nonexistent/clock", &sync, &error), -ENOENT);
	step_error_format(&error, text, sizeof(text));
	assert_string_equal(text,
			    "clock state file: /nonexistent/clock: No such file or directory");
}

static void set_state(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_a_change_is_reported_once_and_only_a_change(void **state)
{
	char *path = write_state("0 100 2000\n");
	struct clock_trust trust;

	clock_trust_init(&trust, USEC_PER_SEC, path);
	/* trusted at start: no change, nothing to record */
	assert_false(clock_trust_check(&trust));
	assert_int_equal(trust.state, CLOCK_TRUSTED);
	assert_int_equal(trust.sync.esterror_usec, 100);
	set_state(path, "64 100 16000000\n");
	assert_true(clock_trust_check(&trust));
	assert_int_equal(trust.state, CLOCK_UNSYNCHRONISED);
	/* the same state at the next boundaries: no record */
	assert_false(clock_trust_check(&trust));
	assert_false(clock_trust_check(&trust));
	/* synchronised, but too far off: another state */
	set_state(path, "0 3000000 5000000\n");
	assert_true(clock_trust_check(&trust));
	assert_int_equal(trust.state, CLOCK_ERROR_ABOVE_BOUND);
	assert_int_equal(trust.sync.maxerror_usec, 5000000);
	/* a file that cannot be read is a state of its own */
	set_state(path, "garbage\n");
	assert_true(clock_trust_check(&trust));
	assert_int_equal(trust.state, CLOCK_STATE_UNREADABLE);
	assert_non_null(strstr(trust.reason, "cannot read the clock's state: clock state file"));
	set_state(path, "0 10 20\n");
	assert_true(clock_trust_check(&trust));
	assert_int_equal(trust.state, CLOCK_TRUSTED);
	assert_int_equal(trust.checks, 7);
	assert_int_equal(trust.changes, 4);
	unlink(path);
	free(path);
}

static void test_untrusted_at_start_is_a_change(void **state)
{
	char *path = write_state("64 0 16000000\n");
	struct clock_trust trust;
	json_t *fields;

	clock_trust_init(&trust, 500 * USEC_PER_MSEC, path);
	assert_true(clock_trust_check(&trust));
	fields = clock_trust_fields(&trust);
	assert_non_null(fields);
	assert_string_equal(json_string_value(json_object_get(fields, "state")), "unsynchronised");
	assert_true(json_is_false(json_object_get(fields, "trusted")));
	assert_int_equal(json_integer_value(json_object_get(fields, "status")), 64);
	assert_int_equal(json_integer_value(json_object_get(fields, "maxerror_usec")), 16000000);
	assert_int_equal(json_integer_value(json_object_get(fields, "max_error_usec")), 500000);
	assert_string_equal(json_string_value(json_object_get(fields, "source")), "file");
	json_decref(fields);
	unlink(path);
	free(path);
}

static void test_adjtimex_reads_without_privilege_to_change(void **state)
{
	struct clock_sync sync = {.esterror_usec = -1};

	/* a read (modes 0) of the real kernel: it answers, whatever it says */
	assert_int_equal(clock_trust_read(NULL, &sync, NULL), 0);
	assert_true(sync.esterror_usec >= 0);
	assert_true(sync.maxerror_usec >= 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_synchronised_within_the_bound_is_trusted),
	    cmocka_unit_test(test_sta_unsync_is_unsynchronised_whatever_the_error),
	    cmocka_unit_test(test_time_error_alone_is_unsynchronised),
	    cmocka_unit_test(test_estimated_error_above_the_bound_is_untrusted),
	    cmocka_unit_test(test_state_file_gives_status_esterror_maxerror),
	    cmocka_unit_test(test_state_file_refuses_anything_else_and_says_where),
	    cmocka_unit_test(test_a_change_is_reported_once_and_only_a_change),
	    cmocka_unit_test(test_untrusted_at_start_is_a_change),
	    cmocka_unit_test(test_adjtimex_reads_without_privilege_to_change),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
