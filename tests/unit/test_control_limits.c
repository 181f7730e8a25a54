/* SPDX-License-Identifier: MIT */
/* Admission and refusal bookkeeping of the control socket: a hostile local
 * user must never lock root out, nor make the audit log grow with its
 * refusals faster than one record per window. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "control_internal.h"
#include "macro.h"

#define SEC 1000000ull

static void test_limits_keep_slots_for_root(void **state)
{
	struct control_limits *l;
	char reason[CONTROL_LIMITS_REASON_MAX];
	unsigned held = 0;

	assert_int_equal(control_limits_new(&l), 0);
	/* 20 hostile uids connect as much as they can */
	for (uid_t uid = 1000; uid < 1020; uid++)
		for (int i = 0; i < 20; i++)
			if (control_limits_connect(l, uid, reason) == 0)
				held++;
	assert_int_equal(held, CONTROL_CLIENTS_MAX - CONTROL_ROOT_RESERVED);
	assert_non_null(strstr(reason, "non-root"));
	for (unsigned i = 0; i < CONTROL_ROOT_RESERVED; i++)
		assert_int_equal(control_limits_connect(l, 0, reason), 0);
	assert_int_equal(control_limits_connect(l, 0, reason), -EUSERS);
	/* a non-root connection goes: its slot is for non-root uids again */
	control_limits_disconnect(l, 1000);
	assert_int_equal(control_limits_connect(l, 1000, reason), 0);
	/* a root connection goes: its slot stays root's */
	control_limits_disconnect(l, 0);
	assert_int_equal(control_limits_connect(l, 1001, reason), -EUSERS);
	assert_int_equal(control_limits_connect(l, 0, reason), 0);
	control_limits_free(l);
}

static void test_limits_cap_one_uid(void **state)
{
	struct control_limits *l;
	char reason[CONTROL_LIMITS_REASON_MAX];

	assert_int_equal(control_limits_new(&l), 0);
	for (unsigned i = 0; i < CONTROL_UID_CLIENTS_MAX; i++)
		assert_int_equal(control_limits_connect(l, 1000, reason), 0);
	assert_int_equal(control_limits_connect(l, 1000, reason), -EMFILE);
	assert_string_equal(reason, "too many connections from uid 1000 (at most 8)");
	assert_int_equal(control_limits_connect(l, 1001, reason), 0);
	control_limits_disconnect(l, 1000);
	assert_int_equal(control_limits_connect(l, 1000, reason), 0);
	assert_int_equal(control_limits_clients(l), CONTROL_UID_CLIENTS_MAX + 1);
	control_limits_free(l);
}

static void test_limits_rate_per_uid_not_root(void **state)
{
	struct control_limits *l;
	char reason[CONTROL_LIMITS_REASON_MAX];
	uint64_t t = 100 * SEC;
	unsigned granted = 0;

	assert_int_equal(control_limits_new(&l), 0);
	assert_int_equal(control_limits_connect(l, 1000, reason), 0);
	for (int i = 0; i < 1000; i++)
		if (control_limits_request(l, 1000, t, reason) == 0)
			granted++;
	assert_int_equal(granted, CONTROL_UID_BURST);
	assert_int_equal(control_limits_request(l, 1000, t, reason), -EBUSY);
	assert_string_equal(reason, "rate limit: uid 1000 sends more than 20 requests per second");
	/* another uid has its own bucket; root has none */
	assert_int_equal(control_limits_request(l, 1001, t, reason), 0);
	for (int i = 0; i < 10000; i++)
		assert_int_equal(control_limits_request(l, 0, t, reason), 0);
	/* refill: one token per 1/20 s */
	assert_int_equal(control_limits_request(l, 1000, t + SEC / 20, reason), 0);
	assert_int_equal(control_limits_request(l, 1000, t + SEC / 20, reason), -EBUSY);
	/* over a long run, the rate holds */
	granted = 0;
	for (uint64_t u = 0; u < 10 * SEC; u += SEC / 1000)
		if (control_limits_request(l, 1000, t + SEC / 20 + u, reason) == 0)
			granted++;
	assert_in_range(granted, 10 * CONTROL_UID_RATE - 1, 10 * CONTROL_UID_RATE + 1);
	control_limits_free(l);
}

static void test_limits_reconnect_buys_no_burst(void **state)
{
	struct control_limits *l;
	char reason[CONTROL_LIMITS_REASON_MAX];
	uint64_t t = 5 * SEC;

	assert_int_equal(control_limits_new(&l), 0);
	assert_int_equal(control_limits_connect(l, 1000, reason), 0);
	while (control_limits_request(l, 1000, t, reason) == 0)
		;
	control_limits_disconnect(l, 1000);
	assert_int_equal(control_limits_connect(l, 1000, reason), 0);
	assert_int_equal(control_limits_request(l, 1000, t, reason), -EBUSY);
	control_limits_free(l);
}

static json_int_t field_int(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

static void test_denials_one_record_per_uid_per_window(void **state)
{
	struct control_denials *d;
	json_t *fields = NULL;
	uint64_t t = 1000 * SEC, w = CONTROL_DENIALS_WINDOW_USEC;
	unsigned records = 0;
	json_int_t counted = 0;

	assert_int_equal(control_denials_new(w, &d), 0);
	/* the first refusal is recorded at once */
	assert_int_equal(control_denials_add(d, 1000, 42, "permission", "reload",
					     "permission denied: reload requires root", t, &fields),
			 1);
	assert_int_equal(field_int(fields, "uid"), 1000);
	assert_int_equal(field_int(fields, "count"), 1);
	assert_string_equal(json_string_value(json_object_get(fields, "reason")),
			    "permission denied: reload requires root");
	assert_int_equal(field_int(json_object_get(fields, "commands"), "reload"), 1);
	json_decref(fields);
	records++;
	counted++;
	assert_int_equal(control_denials_next_usec(d), t + w);
	/* a flood of 3000 over 35 s: one record per window */
	for (int i = 1; i < 3000; i++) {
		uint64_t now = t + (uint64_t)i * (35 * SEC / 3000);

		while (control_denials_pop_due(d, now, &fields) == 1) {
			records++;
			counted += field_int(fields, "count");
			assert_null(json_object_get(fields, "reason"));
			json_decref(fields);
		}
		assert_int_equal(control_denials_add(d, 1000, 42, i % 2 ? "rate" : "permission",
						     i % 2 ? NULL : "reload", "x", now, &fields),
				 0);
	}
	while (control_denials_pop_due(d, t + 60 * SEC, &fields) == 1) {
		records++;
		counted += field_int(fields, "count");
		json_decref(fields);
	}
	assert_int_equal(counted, 3000);
	assert_in_range(records, 4, 5); /* 35 s: the opening record and 4 windows */
	assert_int_equal(control_denials_next_usec(d), UINT64_MAX);
	control_denials_free(d);
}

static void test_denials_uids_apart_and_bounded(void **state)
{
	struct control_denials *d;
	json_t *fields = NULL;
	unsigned immediate = 0, shared = 0;

	assert_int_equal(control_denials_new(CONTROL_DENIALS_WINDOW_USEC, &d), 0);
	for (uid_t uid = 1; uid <= 200; uid++) {
		int r = control_denials_add(d, uid, 1, "rate", NULL, "x", SEC, &fields);

		assert_true(r >= 0);
		if (r == 1) {
			immediate++;
			if (json_is_true(json_object_get(fields, "other_uids")))
				shared++;
			json_decref(fields);
		}
	}
	/* each of the first 64 uids and one record for all the others */
	assert_int_equal(immediate, CONTROL_DENIALS_UIDS_MAX + 1);
	assert_int_equal(shared, 1);
	control_denials_free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_limits_keep_slots_for_root),
	    cmocka_unit_test(test_limits_cap_one_uid),
	    cmocka_unit_test(test_limits_rate_per_uid_not_root),
	    cmocka_unit_test(test_limits_reconnect_buys_no_burst),
	    cmocka_unit_test(test_denials_one_record_per_uid_per_window),
	    cmocka_unit_test(test_denials_uids_apart_and_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
