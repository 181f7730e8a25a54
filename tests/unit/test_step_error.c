/* SPDX-License-Identifier: MIT */
/* step_error: the one error type that says which step failed and why. It is
 * bounded (it crosses from the envelope's child to the agent over a socket),
 * and its text reaches the audit log and the CLI, so the words it makes are
 * checked here. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "step_error.h"

static void test_set_returns_the_negative_errno_whatever_its_sign(void **state)
{
	struct step_error e;

	assert_int_equal(step_error_set(&e, "pivot_root", EPERM, "%s", "/new"), -EPERM);
	assert_int_equal(e.err, EPERM);
	assert_int_equal(step_error_set(&e, "mount overlay", -ENOENT, "%s", "lower"), -ENOENT);
	assert_int_equal(e.err, ENOENT);
	assert_string_equal(e.step, "mount overlay");
	assert_string_equal(e.detail, "lower");
	/* no struct to fill: still the return a caller passes on */
	assert_int_equal(step_error_set(NULL, "clone", ENOMEM, "clone3"), -ENOMEM);
}

static void test_the_words_are_step_detail_and_reason(void **state)
{
	struct step_error e;
	char buf[STEP_ERROR_FORMAT_MAX];

	step_error_set(&e, "mount tmpfs", EINVAL, "tmpfs size");
	assert_string_equal(step_error_format(&e, buf, sizeof(buf)),
			    "mount tmpfs: tmpfs size: Invalid argument");
	step_error_set(&e, "rtnetlink", EPERM, "%s", "");
	assert_string_equal(step_error_format(&e, buf, sizeof(buf)),
			    "rtnetlink: Operation not permitted");
	step_error_set(&e, "service b: public ports in map svc4_0", 0, "port tcp/26000");
	assert_string_equal(step_error_format(&e, buf, sizeof(buf)),
			    "service b: public ports in map svc4_0: port tcp/26000");
}

static void test_long_text_is_cut_never_overflowed(void **state)
{
	struct step_error e;
	char big[4 * STEP_ERROR_DETAIL_MAX], buf[STEP_ERROR_FORMAT_MAX], small[8];

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memset(&e, 0x55, sizeof(e));
	step_error_set(&e, big, E2BIG, "%s", big);
	assert_int_equal(strlen(e.step), STEP_ERROR_STEP_MAX - 1);
	assert_int_equal(strlen(e.detail), STEP_ERROR_DETAIL_MAX - 1);
	/* the whole of a full error fits the format size it names */
	step_error_format(&e, buf, sizeof(buf));
	assert_int_equal(strlen(buf), STEP_ERROR_STEP_MAX - 1 + 2 + STEP_ERROR_DETAIL_MAX - 1 + 2 +
					  strlen(strerror(E2BIG)));
	assert_string_equal(step_error_format(&e, small, sizeof(small)), "xxxxxxx");
}

static void test_prefix_adds_context_in_front_and_keeps_the_head(void **state)
{
	struct step_error e;
	char big[2 * STEP_ERROR_DETAIL_MAX];

	step_error_set(&e, "map svc4", EEXIST, "port %u", 26000);
	step_error_prefix(&e, "service %s: ", "web");
	assert_string_equal(e.detail, "service web: port 26000");
	assert_string_equal(e.step, "map svc4");

	memset(big, 'd', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	step_error_set(&e, "map svc4", EEXIST, "%s", big);
	step_error_prefix(&e, "service web: ");
	assert_int_equal(strlen(e.detail), STEP_ERROR_DETAIL_MAX - 1);
	assert_memory_equal(e.detail, "service web: ddd", 16);
	assert_int_equal(e.detail[STEP_ERROR_DETAIL_MAX - 2], 'd');
	/* a prefix as long as the detail can hold leaves only the prefix */
	step_error_prefix(&e, "%s", big);
	assert_int_equal(strlen(e.detail), STEP_ERROR_DETAIL_MAX - 1);
	step_error_prefix(NULL, "ignored");
}

static void test_reason_is_the_step_or_else_the_errno(void **state)
{
	struct step_error e = {0};
	char buf[STEP_ERROR_FORMAT_MAX];

	(void)state;
	assert_string_equal(step_error_reason(&e, -ENOMEM, buf, sizeof(buf)), strerror(ENOMEM));
	assert_string_equal(step_error_reason(NULL, -EINVAL, buf, sizeof(buf)), strerror(EINVAL));
	step_error_set(&e, "nftables", 0, "service web: %s", "map svc4_0");
	assert_string_equal(step_error_reason(&e, -EEXIST, buf, sizeof(buf)),
			    "nftables: service web: map svc4_0");
}

static void test_clear_makes_it_not_failed(void **state)
{
	struct step_error e = {0};

	assert_false(step_error_failed(&e));
	step_error_set(&e, "seccomp", EPROTO, "no listener from the child");
	assert_true(step_error_failed(&e));
	step_error_clear(&e);
	assert_false(step_error_failed(&e));
	assert_string_equal(e.step, "");
	assert_string_equal(e.detail, "");
	step_error_clear(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_set_returns_the_negative_errno_whatever_its_sign),
	    cmocka_unit_test(test_the_words_are_step_detail_and_reason),
	    cmocka_unit_test(test_long_text_is_cut_never_overflowed),
	    cmocka_unit_test(test_prefix_adds_context_in_front_and_keeps_the_head),
	    cmocka_unit_test(test_reason_is_the_step_or_else_the_errno),
	    cmocka_unit_test(test_clear_makes_it_not_failed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
