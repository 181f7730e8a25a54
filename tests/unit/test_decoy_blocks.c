/* SPDX-License-Identifier: MIT */
/* Whom a decoy hit blocks: NeverBlock= sources never, TCP sources only once
 * their handshake completed, UDP sources within the bound, repeat offenders
 * for longer each time up to the cap, and nothing in monitor mode. */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "clock.h"
#include "macro.h"
#include "rotation_internal.h"
#include "rotator.h"

#define T0 (1700000000ull * USEC_PER_SEC)

static struct rotator_addr addr(const char *text)
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

static struct cidr cidr(const char *text, unsigned prefix_len)
{
	struct rotator_addr a = addr(text);
	struct cidr c = {.family = a.family, .prefix_len = prefix_len};

	if (a.family == AF_INET)
		c.addr.v4 = a.in;
	else
		c.addr.v6 = a.in6;
	return c;
}

static const struct decoy_rules default_rules = {
    .block_usec = 10 * USEC_PER_MINUTE,
    .factor = 2,
    .max_usec = USEC_PER_DAY,
    .window_usec = USEC_PER_DAY,
};

static struct decoy_blocks *new_blocks(unsigned udp_limit, uint64_t udp_interval_usec)
{
	struct decoy_blocks *blocks = NULL;
	struct decoy_limits limits = {.udp_limit = udp_limit,
				      .udp_interval_usec = udp_interval_usec,
				      .handshake_possible = true};

	assert_int_equal(decoy_blocks_new(&blocks), 0);
	assert_int_equal(decoy_blocks_set_limits(blocks, &limits), 0);
	return blocks;
}

/* decide, and record it as the agent does once the block is made */
static struct decoy_decision hit(struct decoy_blocks *blocks, const struct decoy_rules *rules,
				 const char *source, enum decoy_evidence evidence, uint64_t at)
{
	struct rotator_addr a = addr(source);
	struct decoy_decision d = decoy_blocks_decide(blocks, rules, &a, evidence, at);

	decoy_blocks_record(blocks, &a, rules, &d, evidence, at);
	return d;
}

static void test_a_spoofable_syn_waits_for_the_handshake(void **state)
{
	struct decoy_blocks *blocks = new_blocks(32, USEC_PER_MINUTE);
	struct decoy_limits no_honeypot = {.udp_limit = 32, .udp_interval_usec = USEC_PER_MINUTE};

	assert_int_equal(
	    hit(blocks, &default_rules, "192.0.2.7", DECOY_EVIDENCE_TCP_SYN, T0).verdict,
	    DECOY_AWAIT_HANDSHAKE);
	/* the SYN left no strike: the handshake is the first block */
	struct decoy_decision d =
	    hit(blocks, &default_rules, "192.0.2.7", DECOY_EVIDENCE_TCP_HANDSHAKE, T0 + 1000);
	assert_int_equal(d.verdict, DECOY_BLOCK);
	assert_int_equal(d.strike, 1);
	assert_int_equal(d.block_usec, 10 * USEC_PER_MINUTE);

	assert_int_equal(decoy_blocks_set_limits(blocks, &no_honeypot), 0);
	assert_int_equal(
	    hit(blocks, &default_rules, "192.0.2.8", DECOY_EVIDENCE_TCP_SYN, T0).verdict,
	    DECOY_NO_HANDSHAKE);
	decoy_blocks_free(blocks);
}

static void test_never_block_of_the_host_and_of_the_service(void **state)
{
	struct cidr host_list[] = {cidr("10.20.0.0", 16), cidr("2001:db8::", 32)};
	struct cidr service_list[] = {cidr("198.51.100.5", 32)};
	struct decoy_limits limits = {.never_block = host_list,
				      .n_never_block = 2,
				      .udp_limit = 32,
				      .udp_interval_usec = USEC_PER_MINUTE,
				      .handshake_possible = true};
	struct decoy_rules rules = default_rules;
	struct decoy_blocks *blocks = new_blocks(0, 0);

	assert_int_equal(decoy_blocks_set_limits(blocks, &limits), 0);
	rules.never_block = service_list;
	rules.n_never_block = 1;

	assert_int_equal(
	    hit(blocks, &rules, "10.20.255.1", DECOY_EVIDENCE_TCP_HANDSHAKE, T0).verdict,
	    DECOY_NEVER_BLOCK);
	assert_int_equal(hit(blocks, &rules, "10.21.0.1", DECOY_EVIDENCE_TCP_HANDSHAKE, T0).verdict,
			 DECOY_BLOCK);
	assert_int_equal(hit(blocks, &rules, "2001:db8:1::9", DECOY_EVIDENCE_UDP, T0).verdict,
			 DECOY_NEVER_BLOCK);
	assert_int_equal(hit(blocks, &rules, "2001:db9::9", DECOY_EVIDENCE_UDP, T0).verdict,
			 DECOY_BLOCK);
	/* the service's own list counts for its decoys only */
	assert_int_equal(
	    hit(blocks, &rules, "198.51.100.5", DECOY_EVIDENCE_TCP_HANDSHAKE, T0).verdict,
	    DECOY_NEVER_BLOCK);
	assert_int_equal(
	    hit(blocks, &default_rules, "198.51.100.5", DECOY_EVIDENCE_TCP_HANDSHAKE, T0).verdict,
	    DECOY_BLOCK);
	assert_int_equal(
	    hit(blocks, &rules, "198.51.100.4", DECOY_EVIDENCE_TCP_HANDSHAKE, T0).verdict,
	    DECOY_BLOCK);
	decoy_blocks_free(blocks);
}

static void test_prefixes_that_end_inside_a_byte(void **state)
{
	struct cidr list[] = {cidr("203.0.113.64", 27)}; /* .64 to .95 */
	struct decoy_rules rules = default_rules;
	struct decoy_blocks *blocks = new_blocks(32, USEC_PER_MINUTE);

	rules.never_block = list;
	rules.n_never_block = 1;
	assert_int_equal(hit(blocks, &rules, "203.0.113.64", DECOY_EVIDENCE_UDP, T0).verdict,
			 DECOY_NEVER_BLOCK);
	assert_int_equal(hit(blocks, &rules, "203.0.113.95", DECOY_EVIDENCE_UDP, T0).verdict,
			 DECOY_NEVER_BLOCK);
	assert_int_equal(hit(blocks, &rules, "203.0.113.96", DECOY_EVIDENCE_UDP, T0).verdict,
			 DECOY_BLOCK);
	assert_int_equal(hit(blocks, &rules, "203.0.113.63", DECOY_EVIDENCE_UDP, T0).verdict,
			 DECOY_BLOCK);
	decoy_blocks_free(blocks);
}

static void test_udp_blocks_at_most_the_limit_per_interval(void **state)
{
	struct decoy_blocks *blocks = new_blocks(3, USEC_PER_MINUTE);
	char source[32];

	for (unsigned i = 0; i < 3; i++) {
		snprintf(source, sizeof(source), "192.0.2.%u", i + 1);
		assert_int_equal(
		    hit(blocks, &default_rules, source, DECOY_EVIDENCE_UDP, T0 + i * USEC_PER_SEC)
			.verdict,
		    DECOY_BLOCK);
	}
	assert_int_equal(
	    hit(blocks, &default_rules, "192.0.2.9", DECOY_EVIDENCE_UDP, T0 + 59 * USEC_PER_SEC)
		.verdict,
	    DECOY_UDP_LIMIT);
	/* a handshake proves its source: not bound by the UDP limit */
	assert_int_equal(hit(blocks, &default_rules, "192.0.2.9", DECOY_EVIDENCE_TCP_HANDSHAKE,
			     T0 + 59 * USEC_PER_SEC)
			     .verdict,
			 DECOY_BLOCK);
	/* the interval slides: the first block is a minute old, one more fits */
	assert_int_equal(
	    hit(blocks, &default_rules, "192.0.2.10", DECOY_EVIDENCE_UDP, T0 + USEC_PER_MINUTE)
		.verdict,
	    DECOY_BLOCK);
	assert_int_equal(
	    hit(blocks, &default_rules, "192.0.2.11", DECOY_EVIDENCE_UDP, T0 + USEC_PER_MINUTE)
		.verdict,
	    DECOY_UDP_LIMIT);

	json_t *status = decoy_blocks_status(blocks, T0 + USEC_PER_MINUTE);
	assert_int_equal(json_integer_value(json_object_get(status, "udp_blocked_in_interval")), 3);
	json_decref(status);
	decoy_blocks_free(blocks);
}

static void test_a_lower_limit_keeps_the_latest_blocks(void **state)
{
	struct decoy_blocks *blocks = new_blocks(4, USEC_PER_MINUTE);
	struct decoy_limits two = {.udp_limit = 2, .udp_interval_usec = USEC_PER_MINUTE};
	struct decoy_limits none = {.udp_limit = 0, .udp_interval_usec = USEC_PER_MINUTE};

	assert_int_equal(hit(blocks, &default_rules, "192.0.2.1", DECOY_EVIDENCE_UDP, T0).verdict,
			 DECOY_BLOCK);
	assert_int_equal(
	    hit(blocks, &default_rules, "192.0.2.2", DECOY_EVIDENCE_UDP, T0 + 10 * USEC_PER_SEC)
		.verdict,
	    DECOY_BLOCK);
	assert_int_equal(
	    hit(blocks, &default_rules, "192.0.2.3", DECOY_EVIDENCE_UDP, T0 + 20 * USEC_PER_SEC)
		.verdict,
	    DECOY_BLOCK);
	assert_int_equal(decoy_blocks_set_limits(blocks, &two), 0);
	/* .2 and .3 fill the bound of 2 until .2 is a minute old */
	assert_int_equal(
	    hit(blocks, &default_rules, "192.0.2.4", DECOY_EVIDENCE_UDP, T0 + 65 * USEC_PER_SEC)
		.verdict,
	    DECOY_UDP_LIMIT);
	assert_int_equal(
	    hit(blocks, &default_rules, "192.0.2.4", DECOY_EVIDENCE_UDP, T0 + 70 * USEC_PER_SEC)
		.verdict,
	    DECOY_BLOCK);
	assert_int_equal(decoy_blocks_set_limits(blocks, &none), 0);
	assert_int_equal(
	    hit(blocks, &default_rules, "192.0.2.5", DECOY_EVIDENCE_UDP, T0 + USEC_PER_DAY).verdict,
	    DECOY_UDP_LIMIT);
	decoy_blocks_free(blocks);
}

static void test_repeat_offenders_are_blocked_longer_up_to_the_cap(void **state)
{
	struct decoy_rules rules = {.block_usec = 2 * USEC_PER_SEC,
				    .factor = 3,
				    .max_usec = 10 * USEC_PER_SEC,
				    .window_usec = USEC_PER_MINUTE};
	struct decoy_blocks *blocks = new_blocks(32, USEC_PER_MINUTE);
	const uint64_t expected[] = {2, 6, 10, 10};
	struct decoy_decision d;

	for (unsigned i = 0; i < ELEMENTSOF(expected); i++) {
		d = hit(blocks, &rules, "2001:db8::1", DECOY_EVIDENCE_TCP_HANDSHAKE,
			T0 + i * 20 * USEC_PER_SEC);
		assert_int_equal(d.verdict, DECOY_BLOCK);
		assert_int_equal(d.strike, i + 1);
		assert_int_equal(d.block_usec, expected[i] * USEC_PER_SEC);
	}
	/* a window after the last block began, the chain starts over */
	d = hit(blocks, &rules, "2001:db8::1", DECOY_EVIDENCE_TCP_HANDSHAKE,
		T0 + 60 * USEC_PER_SEC + USEC_PER_MINUTE);
	assert_int_equal(d.strike, 1);
	assert_int_equal(d.block_usec, 2 * USEC_PER_SEC);
	/* another source has its own chain */
	d = hit(blocks, &rules, "2001:db8::2", DECOY_EVIDENCE_TCP_HANDSHAKE, T0);
	assert_int_equal(d.strike, 1);
	decoy_blocks_free(blocks);
}

static void test_growth_saturates_without_overflow(void **state)
{
	struct decoy_rules rules = {.block_usec = USEC_PER_DAY,
				    .factor = 100,
				    .max_usec = 30 * USEC_PER_DAY,
				    .window_usec = 30 * USEC_PER_DAY};
	struct decoy_blocks *blocks = new_blocks(32, USEC_PER_MINUTE);
	struct decoy_decision d = {0};

	for (unsigned i = 0; i < 40; i++)
		d = hit(blocks, &rules, "192.0.2.1", DECOY_EVIDENCE_TCP_HANDSHAKE, T0 + i);
	assert_int_equal(d.strike, 40);
	assert_int_equal(d.block_usec, 30 * USEC_PER_DAY);
	decoy_blocks_free(blocks);
}

static void test_decoy_block_zero_records_only(void **state)
{
	struct decoy_rules rules = default_rules;
	struct decoy_blocks *blocks = new_blocks(32, USEC_PER_MINUTE);

	rules.block_usec = 0;
	assert_int_equal(hit(blocks, &rules, "192.0.2.1", DECOY_EVIDENCE_UDP, T0).verdict,
			 DECOY_RECORD_ONLY);
	assert_int_equal(hit(blocks, &rules, "192.0.2.1", DECOY_EVIDENCE_TCP_HANDSHAKE, T0).verdict,
			 DECOY_RECORD_ONLY);
	decoy_blocks_free(blocks);
}

static void test_monitor_mode_says_what_it_would_do(void **state)
{
	struct decoy_limits monitor = {.udp_limit = 1,
				       .udp_interval_usec = USEC_PER_MINUTE,
				       .handshake_possible = true,
				       .monitor = true};
	struct decoy_blocks *blocks = new_blocks(0, 0);
	struct decoy_decision d;

	assert_int_equal(decoy_blocks_set_limits(blocks, &monitor), 0);
	d = hit(blocks, &default_rules, "192.0.2.1", DECOY_EVIDENCE_TCP_HANDSHAKE, T0);
	assert_int_equal(d.verdict, DECOY_MONITOR);
	assert_int_equal(d.block_usec, 10 * USEC_PER_MINUTE);
	d = hit(blocks, &default_rules, "192.0.2.1", DECOY_EVIDENCE_TCP_HANDSHAKE, T0 + 1);
	assert_int_equal(d.strike, 2);
	assert_int_equal(d.block_usec, 20 * USEC_PER_MINUTE);
	assert_int_equal(hit(blocks, &default_rules, "192.0.2.2", DECOY_EVIDENCE_UDP, T0).verdict,
			 DECOY_MONITOR);
	assert_int_equal(hit(blocks, &default_rules, "192.0.2.3", DECOY_EVIDENCE_UDP, T0).verdict,
			 DECOY_UDP_LIMIT);
	assert_string_equal(decoy_blocks_verdict_name(DECOY_MONITOR), "not-blocked-monitor");
	decoy_blocks_free(blocks);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_a_spoofable_syn_waits_for_the_handshake),
	    cmocka_unit_test(test_never_block_of_the_host_and_of_the_service),
	    cmocka_unit_test(test_prefixes_that_end_inside_a_byte),
	    cmocka_unit_test(test_udp_blocks_at_most_the_limit_per_interval),
	    cmocka_unit_test(test_a_lower_limit_keeps_the_latest_blocks),
	    cmocka_unit_test(test_repeat_offenders_are_blocked_longer_up_to_the_cap),
	    cmocka_unit_test(test_growth_saturates_without_overflow),
	    cmocka_unit_test(test_decoy_block_zero_records_only),
	    cmocka_unit_test(test_monitor_mode_says_what_it_would_do),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
