/* SPDX-License-Identifier: MIT */
/*
 * Blocked ranges (rotator/ranges.c): the decisions in force become disjoint
 * segments an interval set can hold, each until the latest end of the
 * decisions covering it, minus the never-blocked addresses; removing one
 * decision keeps what another covers; a dumped set comes back as adopted
 * pieces. And rotator_block_ranges()'s input checks, before anything is sent.
 * The kernel's side is checked in tests/integration/rotator_nft.sh.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "rotator_internal.h"

static struct rotator_addr addr_of(const char *text)
{
	struct rotator_addr a = {0};

	if (inet_pton(AF_INET, text, &a.in) == 1)
		a.family = AF_INET;
	else {
		assert_int_equal(inet_pton(AF_INET6, text, &a.in6), 1);
		a.family = AF_INET6;
	}
	return a;
}

/* "10.0.0.0/24" as [start, end] */
static void prefix(const char *text, int *family, range_u128 *start, range_u128 *end)
{
	char copy[64];
	char *slash;
	struct rotator_addr a;

	snprintf(copy, sizeof(copy), "%s", text);
	slash = strchr(copy, '/');
	assert_non_null(slash);
	*slash = '\0';
	a = addr_of(copy);
	*family = a.family;
	assert_int_equal(rotator_range_from_prefix(&a, (unsigned)atoi(slash + 1), start, end), 0);
}

static void ban(struct rotator_range_map *m, const char *text, uint64_t until_ms)
{
	int family;
	range_u128 s, e;

	prefix(text, &family, &s, &e);
	assert_int_equal(rotator_range_ban(m, family, s, e, until_ms), 0);
}

static void unban(struct rotator_range_map *m, const char *text)
{
	int family;
	range_u128 s, e;

	prefix(text, &family, &s, &e);
	assert_int_equal(rotator_range_unban(m, family, s, e), 0);
}

static struct rotator_range_hole hole(const char *text)
{
	struct rotator_range_hole h;

	prefix(text, &h.family, &h.start, &h.end);
	return h;
}

/* The segments as "first-last@until first-last@until ..." */
static char *segments_text(const struct rotator_range_map *m, const struct rotator_range_hole *h,
			   size_t n_h, uint64_t now_ms)
{
	struct rotator_range_segment *s = NULL;
	size_t n = 0, used = 0;
	static char out[4096];

	out[0] = '\0';
	assert_int_equal(rotator_range_segments(m, h, n_h, now_ms, &s, &n), 0);
	for (size_t i = 0; i < n; i++) {
		char text[128];

		rotator_range_text(s[i].family, s[i].start, s[i].end, text, sizeof(text));
		used += (size_t)snprintf(out + used, sizeof(out) - used, "%s%s@%llu", i ? " " : "",
					 text, (unsigned long long)s[i].until_ms);
	}
	free(s);
	return out;
}

static void test_overlapping_ranges_become_disjoint_segments_with_the_latest_end(void **state)
{
	struct rotator_range_map m = {0};

	ban(&m, "10.0.0.0/16", 1000);
	ban(&m, "10.0.1.0/24", 5000);
	assert_string_equal(segments_text(&m, NULL, 0, 0),
			    "10.0.0.0-10.0.0.255@1000 10.0.1.0-10.0.1.255@5000 "
			    "10.0.2.0-10.0.255.255@1000");
	/* a narrower range that ends first adds nothing: one interval */
	rotator_range_map_free(&m);
	ban(&m, "10.0.0.0/16", 5000);
	ban(&m, "10.0.1.0/24", 1000);
	assert_string_equal(segments_text(&m, NULL, 0, 0), "10.0.0.0-10.0.255.255@5000");
	/* partial overlap, and two adjacent ranges with the same end merge */
	rotator_range_map_free(&m);
	ban(&m, "192.0.2.0/25", 3000);
	ban(&m, "192.0.2.128/25", 3000);
	ban(&m, "192.0.2.64/26", 4000);
	ban(&m, "192.0.2.96/27", 2000);
	assert_string_equal(segments_text(&m, NULL, 0, 0),
			    "192.0.2.0-192.0.2.63@3000 192.0.2.64-192.0.2.127@4000 "
			    "192.0.2.128-192.0.2.255@3000");
	rotator_range_map_free(&m);
}

static void test_removing_one_decision_keeps_what_another_covers(void **state)
{
	struct rotator_range_map m = {0};

	ban(&m, "10.0.0.0/16", 1000);
	ban(&m, "10.0.1.0/24", 5000);
	unban(&m, "10.0.1.0/24");
	assert_string_equal(segments_text(&m, NULL, 0, 0), "10.0.0.0-10.0.255.255@1000");
	ban(&m, "10.0.1.0/24", 5000);
	unban(&m, "10.0.0.0/16");
	assert_string_equal(segments_text(&m, NULL, 0, 0), "10.0.1.0-10.0.1.255@5000");
	/* an unban of a range nobody decided changes nothing */
	unban(&m, "10.0.1.0/25");
	assert_string_equal(segments_text(&m, NULL, 0, 0), "10.0.1.0-10.0.1.255@5000");
	unban(&m, "10.0.1.0/24");
	assert_int_equal(m.n, 0);
	assert_string_equal(segments_text(&m, NULL, 0, 0), "");
	rotator_range_map_free(&m);
}

static void test_a_range_is_split_around_never_blocked_addresses(void **state)
{
	struct rotator_range_map m = {0};
	struct rotator_range_hole h[] = {hole("10.0.0.7/32"), hole("10.0.0.128/25"),
					 hole("10.0.0.9/32"), hole("2001:db8::1/128")};

	ban(&m, "10.0.0.0/24", 1000);
	assert_string_equal(
	    segments_text(&m, h, 4, 0),
	    "10.0.0.0-10.0.0.6@1000 10.0.0.8-10.0.0.8@1000 10.0.0.10-10.0.0.127@1000");
	/* a range wholly never blocked programs nothing */
	rotator_range_map_free(&m);
	ban(&m, "10.0.0.128/26", 1000);
	assert_string_equal(segments_text(&m, h, 4, 0), "");
	/* holes of the other family do not cut */
	ban(&m, "2001:db8::/126", 700);
	assert_string_equal(segments_text(&m, h, 4, 0), "2001:db8::-2001:db8::@700 "
							"2001:db8::2-2001:db8::3@700");
	rotator_range_map_free(&m);
}

static void test_ipv6_ranges_and_the_whole_space(void **state)
{
	struct rotator_range_map m = {0};

	ban(&m, "2001:db8::/32", 1000);
	ban(&m, "2001:db8:1::/48", 9000);
	ban(&m, "10.0.0.0/8", 50);
	assert_string_equal(segments_text(&m, NULL, 0, 0),
			    "10.0.0.0-10.255.255.255@50 "
			    "2001:db8::-2001:db8:0:ffff:ffff:ffff:ffff:ffff@1000 "
			    "2001:db8:1::-2001:db8:1:ffff:ffff:ffff:ffff:ffff@9000 "
			    "2001:db8:2::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff@1000");
	rotator_range_map_free(&m);
	/* ranges up to the end of the space (no address after it) */
	ban(&m, "::/0", 10);
	ban(&m, "ffff::/16", 20);
	ban(&m, "0.0.0.0/0", 30);
	ban(&m, "255.255.255.0/24", 40);
	assert_string_equal(segments_text(&m, NULL, 0, 0),
			    "0.0.0.0-255.255.254.255@30 255.255.255.0-255.255.255.255@40 "
			    "::-fffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff@10 "
			    "ffff::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff@20");
	rotator_range_map_free(&m);
}

static void test_expired_decisions_cover_nothing(void **state)
{
	struct rotator_range_map m = {0};

	ban(&m, "10.0.0.0/16", 1000);
	ban(&m, "10.0.1.0/24", 5000);
	assert_string_equal(segments_text(&m, NULL, 0, 1000), "10.0.1.0-10.0.1.255@5000");
	rotator_range_expire(&m, 1001);
	assert_int_equal(m.n, 1);
	rotator_range_map_free(&m);
}

static void test_the_same_range_again_takes_its_new_end_unless_resent(void **state)
{
	struct rotator_range_map m = {0};

	ban(&m, "10.0.0.0/24", 100000);
	ban(&m, "10.0.0.0/24", 100000 - ROTATOR_RANGE_SAME_MS + 1); /* a resync */
	assert_int_equal(m.n, 1);
	assert_int_equal(m.d[0].until_ms, 100000);
	ban(&m, "10.0.0.0/24", 30000); /* shorter: taken */
	assert_int_equal(m.n, 1);
	assert_int_equal(m.d[0].until_ms, 30000);
	/* host bits do not make another range */
	ban(&m, "10.0.0.77/24", 90000);
	assert_int_equal(m.n, 1);
	assert_int_equal(m.d[0].until_ms, 90000);
	rotator_range_map_free(&m);
}

static void test_diff_deletes_and_adds_only_what_changed(void **state)
{
	struct rotator_range_map m = {0};
	struct rotator_range_segment *a = NULL, *b = NULL, *del = NULL, *add = NULL;
	size_t na, nb, nd, nadd;
	char text[128];

	ban(&m, "10.0.0.0/16", 1000);
	ban(&m, "192.0.2.0/24", 1000);
	assert_int_equal(rotator_range_segments(&m, NULL, 0, 0, &a, &na), 0);
	ban(&m, "10.0.1.0/24", 5000);
	assert_int_equal(rotator_range_segments(&m, NULL, 0, 0, &b, &nb), 0);
	assert_int_equal(rotator_range_diff(a, na, b, nb, &del, &nd, &add, &nadd), 0);
	assert_int_equal(nd, 1); /* 10.0.0.0/16 goes, in three pieces; 192.0.2.0/24 stays */
	rotator_range_text(del[0].family, del[0].start, del[0].end, text, sizeof(text));
	assert_string_equal(text, "10.0.0.0-10.0.255.255");
	assert_int_equal(nadd, 3);
	free(del);
	free(add);
	assert_int_equal(rotator_range_diff(b, nb, b, nb, &del, &nd, &add, &nadd), 0);
	assert_int_equal(nd + nadd, 0);
	free(a);
	free(b);
	free(del);
	free(add);
	rotator_range_map_free(&m);
}

static void test_a_dumped_set_comes_back_and_an_unban_takes_its_part(void **state)
{
	struct rotator_range_map m = {0};
	struct rotator_addr a1 = addr_of("10.0.0.0"), a2 = addr_of("10.0.2.0"),
			    a3 = addr_of("250.0.0.0");
	/* as the kernel dumps them: in any order, ends flagged */
	struct rotator_range_elem e[] = {
	    {.value = rotator_range_value(&a3), .expires_in_ms = 300},
	    {.value = rotator_range_value(&a2), .end = true},
	    {.value = rotator_range_value(&a1), .expires_in_ms = 100},
	};

	/* an empty set, as an empty dump gives it */
	assert_int_equal(rotator_range_from_elems(AF_INET6, NULL, 0, 1000, &m), 0);
	assert_int_equal(m.n, 0);
	assert_int_equal(rotator_range_from_elems(AF_INET, e, 3, 1000, &m), 0);
	assert_int_equal(m.n, 2);
	assert_true(m.d[0].adopted);
	assert_string_equal(segments_text(&m, NULL, 0, 1000),
			    "10.0.0.0-10.0.1.255@1100 250.0.0.0-255.255.255.255@1300");
	/* the decision that made a piece is deleted: its part goes, even from
	 * the middle of a piece, the rest stays */
	unban(&m, "10.0.1.0/25");
	assert_string_equal(segments_text(&m, NULL, 0, 1000),
			    "10.0.0.0-10.0.0.255@1100 10.0.1.128-10.0.1.255@1100 "
			    "250.0.0.0-255.255.255.255@1300");
	unban(&m, "0.0.0.0/0");
	assert_int_equal(m.n, 0);
	rotator_range_map_free(&m);
}

static void test_block_ranges_refuses_bad_input_before_sending(void **state)
{
	struct rotator_config config = {.nflog_group = 7};
	struct rotator_range good = {
	    .addr = addr_of("192.0.2.0"), .prefix_len = 24, .expires_in_ms = 1000};
	struct rotator_range bad[2] = {good, good};
	struct step_error err = {0};
	struct rotator *r = NULL;
	size_t n_ranges = 9, n_segments = 9;

	assert_int_equal(rotator_new(&config, &r), 0);
	bad[1].prefix_len = 33;
	assert_int_equal(rotator_block_ranges(r, bad, 2, NULL, 0, NULL, 0, &err), -EINVAL);
	assert_non_null(strstr(err.detail, "range #1: prefix length 33"));
	bad[1] = (struct rotator_range){.addr.family = AF_UNIX, .expires_in_ms = 5};
	assert_int_equal(rotator_block_ranges(r, NULL, 0, bad, 2, NULL, 0, &err), -EINVAL);
	assert_non_null(strstr(err.detail, "unblocked range #1: address family"));
	bad[1] = good;
	bad[1].expires_in_ms = 0;
	assert_int_equal(rotator_block_ranges(r, bad, 2, NULL, 0, NULL, 0, &err), -EINVAL);
	assert_non_null(strstr(err.detail, "range #1: no time"));
	bad[1] = good;
	bad[1].addr = addr_of("2001:db8::");
	bad[1].prefix_len = 129;
	assert_int_equal(rotator_block_ranges(r, NULL, 0, NULL, 0, bad, 2, &err), -EINVAL);
	assert_non_null(strstr(err.detail, "never-blocked range #1: prefix length 129"));
	assert_int_equal(rotator_block_ranges(r, NULL, 1, NULL, 0, NULL, 0, &err), -EINVAL);
	assert_int_equal(rotator_block_ranges(NULL, &good, 1, NULL, 0, NULL, 0, &err), -EINVAL);
	rotator_ranges_count(r, &n_ranges, &n_segments);
	assert_int_equal(n_ranges + n_segments, 0);
	rotator_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_overlapping_ranges_become_disjoint_segments_with_the_latest_end),
	    cmocka_unit_test(test_removing_one_decision_keeps_what_another_covers),
	    cmocka_unit_test(test_a_range_is_split_around_never_blocked_addresses),
	    cmocka_unit_test(test_ipv6_ranges_and_the_whole_space),
	    cmocka_unit_test(test_expired_decisions_cover_nothing),
	    cmocka_unit_test(test_the_same_range_again_takes_its_new_end_unless_resent),
	    cmocka_unit_test(test_diff_deletes_and_adds_only_what_changed),
	    cmocka_unit_test(test_a_dumped_set_comes_back_and_an_unban_takes_its_part),
	    cmocka_unit_test(test_block_ranges_refuses_bad_input_before_sending),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
