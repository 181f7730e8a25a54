/* SPDX-License-Identifier: MIT */
/* metric: the Prometheus text format the agent's figures are written in
 * (docs/metrics.md). promtool checks the agent's whole output in
 * tests/integration/metrics.sh; here the pieces a scraper parses: escaped
 * label values, cumulative buckets ending in +Inf, _sum in seconds and
 * _count, bounded series. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "metric.h"

static char *render_histogram(const struct metric_histogram *h)
{
	struct metric_text t;

	assert_int_equal(metric_text_open(&t), 0);
	metric_text_histogram(&t, "mtd_x_seconds", "how long x took", h);
	return metric_text_finish(&t, NULL);
}

static void test_histogram_buckets_are_cumulative_and_end_in_inf(void **state)
{
	const uint64_t bounds[] = {100, 1000, 250000, 1000000};
	struct metric_histogram h;
	char *text;

	metric_histogram_init(&h, bounds, 4);
	metric_histogram_observe(&h, 50);      /* <= 0.0001 */
	metric_histogram_observe(&h, 100);     /* on the bound: in it (le is <=) */
	metric_histogram_observe(&h, 101);     /* <= 0.001 */
	metric_histogram_observe(&h, 300000);  /* <= 1 */
	metric_histogram_observe(&h, 2500000); /* above every bound */
	text = render_histogram(&h);
	assert_non_null(text);
	assert_string_equal(text, "# HELP mtd_x_seconds how long x took\n"
				  "# TYPE mtd_x_seconds histogram\n"
				  "mtd_x_seconds_bucket{le=\"0.0001\"} 2\n"
				  "mtd_x_seconds_bucket{le=\"0.001\"} 3\n"
				  "mtd_x_seconds_bucket{le=\"0.25\"} 3\n"
				  "mtd_x_seconds_bucket{le=\"1\"} 4\n"
				  "mtd_x_seconds_bucket{le=\"+Inf\"} 5\n"
				  "mtd_x_seconds_sum 2.800251\n"
				  "mtd_x_seconds_count 5\n");
	free(text);
}

static void test_empty_histogram_has_every_bucket_at_zero(void **state)
{
	const uint64_t bounds[] = {1000};
	struct metric_histogram h;
	char *text;

	metric_histogram_init(&h, bounds, 1);
	text = render_histogram(&h);
	assert_non_null(text);
	assert_non_null(strstr(text, "mtd_x_seconds_bucket{le=\"0.001\"} 0\n"
				     "mtd_x_seconds_bucket{le=\"+Inf\"} 0\n"
				     "mtd_x_seconds_sum 0\n"
				     "mtd_x_seconds_count 0\n"));
	free(text);
}

static void test_label_values_escape_backslash_quote_and_newline(void **state)
{
	struct metric_counts c = {0};
	struct metric_text t;
	const char *names[] = {"service", "reason"};
	char *text;

	metric_counts_add(&c, "web", "say \"hi\"\\\nbye", 2);
	metric_counts_add(&c, "web", "say \"hi\"\\\nbye", 1);
	metric_counts_add(&c, "dns", NULL, 1);
	assert_int_equal(metric_text_open(&t), 0);
	metric_text_counts(&t, "mtd_y_total", "counter", "a help with \\ and\nnewline", names, 2,
			   &c);
	text = metric_text_finish(&t, NULL);
	assert_non_null(text);
	assert_string_equal(text,
			    "# HELP mtd_y_total a help with \\\\ and\\nnewline\n"
			    "# TYPE mtd_y_total counter\n"
			    "mtd_y_total{service=\"web\",reason=\"say \\\"hi\\\"\\\\\\nbye\"} 3\n"
			    "mtd_y_total{service=\"dns\",reason=\"\"} 1\n");
	free(text);
	metric_counts_done(&c);
}

static void test_escape_refuses_what_does_not_fit(void **state)
{
	char out[5];

	assert_true(metric_escape_label("a\"b", out, sizeof(out)));
	assert_string_equal(out, "a\\\"b");
	assert_false(metric_escape_label("a\"bc", out, sizeof(out)));
}

static void test_series_are_bounded_and_the_overflow_counted(void **state)
{
	struct metric_counts c = {0};
	char key[32];

	for (unsigned i = 0; i < METRIC_SERIES_MAX + 10; i++) {
		snprintf(key, sizeof(key), "s%u", i);
		metric_counts_add(&c, key, "x", 1);
	}
	assert_int_equal(c.n, METRIC_SERIES_MAX);
	assert_int_equal(c.dropped, 10);
	/* a known key still counts */
	metric_counts_add(&c, "s0", "x", 4);
	assert_int_equal(c.items[0].value, 5);
	assert_int_equal(metric_counts_set(&c, "new", NULL, 1), -ENOSPC);
	metric_counts_done(&c);
}

static void test_samples_without_labels_and_seconds_exactly(void **state)
{
	struct metric_text t;
	const char *names[] = {"version"}, *values[] = {"1.2"};
	char *text;

	assert_int_equal(metric_text_open(&t), 0);
	metric_text_u64(&t, "mtd_a", NULL, NULL, 0, 18446744073709551615ULL);
	metric_text_usec(&t, "mtd_c_seconds", NULL, NULL, 0, 1796688000250000ULL);
	metric_text_usec(&t, "mtd_d_seconds", NULL, NULL, 0, 125);
	metric_text_u64(&t, "mtd_build_info", names, values, 1, 1);
	text = metric_text_finish(&t, NULL);
	assert_non_null(text);
	assert_string_equal(text, "mtd_a 18446744073709551615\n"
				  "mtd_c_seconds 1796688000.25\n"
				  "mtd_d_seconds 0.000125\n"
				  "mtd_build_info{version=\"1.2\"} 1\n");
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_histogram_buckets_are_cumulative_and_end_in_inf),
	    cmocka_unit_test(test_empty_histogram_has_every_bucket_at_zero),
	    cmocka_unit_test(test_label_values_escape_backslash_quote_and_newline),
	    cmocka_unit_test(test_escape_refuses_what_does_not_fit),
	    cmocka_unit_test(test_series_are_bounded_and_the_overflow_counted),
	    cmocka_unit_test(test_samples_without_labels_and_seconds_exactly),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
