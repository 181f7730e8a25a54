/* SPDX-License-Identifier: MIT */
/* response_decide: what a detection gets from OnCompromise=,
 * OnSyscallViolation= and the agent's --monitor. Alert (the policy's or
 * --monitor) acts on nothing, whatever the other keys say. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "fleet_internal.h"

static const char *decide(enum compromise_action on_compromise,
			  enum syscall_violation_action on_violation, bool monitor,
			  const char *kind)
{
	struct policy p = {.on_compromise = on_compromise, .on_syscall_violation = on_violation};

	return response_action_name(response_decide(&p, monitor, kind));
}

static void test_enforce_follows_the_policy(void **state)
{
	assert_string_equal(decide(COMPROMISE_QUARANTINE, SYSCALL_VIOLATION_KILL, false, "drift"),
			    "quarantine");
	assert_string_equal(decide(COMPROMISE_KILL, SYSCALL_VIOLATION_QUARANTINE, false, "egress"),
			    "kill");
	assert_string_equal(
	    decide(COMPROMISE_KILL, SYSCALL_VIOLATION_QUARANTINE, false, "seccomp-violation"),
	    "quarantine");
	assert_string_equal(
	    decide(COMPROMISE_QUARANTINE, SYSCALL_VIOLATION_KILL, false, "seccomp-violation"),
	    "kill");
	assert_string_equal(
	    decide(COMPROMISE_KILL, SYSCALL_VIOLATION_ERRNO, false, "seccomp-violation"), "errno");
}

static void test_alert_acts_on_no_kind(void **state)
{
	static const char *const kinds[] = {"seccomp-violation", "drift", "egress", "new-kind"};

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		/* the policy's OnCompromise=alert (validation made violations errno) */
		assert_string_equal(
		    decide(COMPROMISE_ALERT, SYSCALL_VIOLATION_ERRNO, false, kinds[i]), "alert");
		/* --monitor over a policy that would kill or quarantine */
		assert_string_equal(decide(COMPROMISE_KILL, SYSCALL_VIOLATION_KILL, true, kinds[i]),
				    "alert");
		assert_string_equal(
		    decide(COMPROMISE_QUARANTINE, SYSCALL_VIOLATION_ERRNO, true, kinds[i]),
		    "alert");
	}
}

static void test_signal_kinds_have_a_slot_each(void **state)
{
	assert_int_equal(response_signal_kind_index("seccomp-violation"), 0);
	assert_int_equal(response_signal_kind_index("drift"), 1);
	assert_int_equal(response_signal_kind_index("egress"), 2);
	assert_int_equal(response_signal_kind_index("anything else"), RESPONSE_SIGNAL_KINDS - 1);
	assert_string_equal(response_signal_kinds[RESPONSE_SIGNAL_KINDS - 1], "other");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_enforce_follows_the_policy),
	    cmocka_unit_test(test_alert_acts_on_no_kind),
	    cmocka_unit_test(test_signal_kinds_have_a_slot_each),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
