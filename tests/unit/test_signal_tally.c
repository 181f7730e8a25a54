/* SPDX-License-Identifier: MIT */
/* signal_tally: the first signal of a kind passes, the rest are counted and
 * summed up once an interval with the interval's first evidence. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "fleet_internal.h"

struct seen {
	char kind[32];
	uint64_t count;
	json_int_t first;
	int calls;
};

static void summary(const char *kind, uint64_t count, json_t *first, uint64_t interval,
		    void *userdata)
{
	struct seen *s = userdata;

	snprintf(s->kind, sizeof(s->kind), "%s", kind);
	s->count = count;
	s->first = json_integer_value(json_object_get(first, "n"));
	s->calls++;
	assert_int_equal(interval, 1000);
}

static json_t *ev(int n)
{
	return json_pack("{s:i}", "n", n);
}

static void test_a_storm_is_one_raise_and_one_summary_per_interval(void **state)
{
	struct signal_tally *t = signal_tally_new(1000);
	struct seen s = {0};
	json_t *first = ev(0);

	assert_true(signal_tally_add(t, "seccomp-violation", first, 10)); /* raised */
	json_decref(first);
	for (int i = 1; i <= 5000; i++) /* counted, evidence stolen (ASan: no leak) */
		assert_false(
		    signal_tally_add(t, "seccomp-violation", ev(i), 10 + (uint64_t)i / 10));
	assert_int_equal(signal_tally_due(t), 10 + 1000);
	signal_tally_flush(t, 500, summary, &s);
	assert_int_equal(s.calls, 0); /* not due yet */
	signal_tally_flush(t, 1010, summary, &s);
	assert_int_equal(s.calls, 1);
	assert_string_equal(s.kind, "seccomp-violation");
	assert_int_equal(s.count, 5000);
	assert_int_equal(s.first, 1); /* the interval's first, not the raised one */
	assert_int_equal(signal_tally_due(t), 0);

	/* the next interval starts with its next signal, still only counted */
	assert_false(signal_tally_add(t, "seccomp-violation", ev(9), 3000));
	signal_tally_flush(t, 4000, summary, &s);
	assert_int_equal(s.calls, 2);
	assert_int_equal(s.count, 1);
	signal_tally_free(t);
}

static void test_kinds_are_counted_apart(void **state)
{
	struct signal_tally *t = signal_tally_new(1000);
	struct seen s = {0};
	json_t *e = ev(0);

	assert_true(signal_tally_add(t, "seccomp-violation", e, 0));
	assert_true(signal_tally_add(t, "drift", e, 0)); /* its own first */
	json_decref(e);
	assert_false(signal_tally_add(t, "drift", ev(1), 5));
	signal_tally_flush(t, UINT64_MAX, summary, &s); /* the instance ends */
	assert_int_equal(s.calls, 1);
	assert_string_equal(s.kind, "drift");
	signal_tally_free(t); /* nothing counted is left to leak */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_a_storm_is_one_raise_and_one_summary_per_interval),
	    cmocka_unit_test(test_kinds_are_counted_apart),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
