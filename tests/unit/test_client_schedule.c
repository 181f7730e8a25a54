/* SPDX-License-Identifier: MIT */
/* Per-client schedules and knock packets against the test vectors of
 * docs/schedule.md ("A schedule per client", "Knock packets"). mtd-client's
 * tests check the same vectors through its command line. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "knock.h"
#include "schedule.h"

static const uint8_t key_0_31[32] = {0,	 1,  2,	 3,  4,	 5,  6,	 7,  8,	 9,  10,
				     11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21,
				     22, 23, 24, 25, 26, 27, 28, 29, 30, 31};
#define KEY_SSH "mtd-test-key"
#define EPOCH_WEB 28333334ULL

static struct schedule_client web_client(const char *client, const char *host_id)
{
	return (struct schedule_client){.key = key_0_31,
					.key_len = sizeof(key_0_31),
					.service = "web",
					.client = client,
					.host_id = host_id,
					.first = 20000,
					.last = 29999};
}

static void expect_doors(const struct schedule_client *c, uint16_t prev, uint16_t cur,
			 uint16_t next)
{
	uint16_t p = 0;

	assert_int_equal(schedule_client_port(c, EPOCH_WEB - 1, NULL, NULL, &p), 0);
	assert_int_equal(p, prev);
	assert_int_equal(schedule_client_port(c, EPOCH_WEB, NULL, NULL, &p), 0);
	assert_int_equal(p, cur);
	assert_int_equal(schedule_client_port(c, EPOCH_WEB + 1, NULL, NULL, &p), 0);
	assert_int_equal(p, next);
}

static void expect_knocks(const struct schedule_client *c, uint16_t prev, uint16_t cur,
			  uint16_t next)
{
	uint16_t p = 0;

	assert_int_equal(schedule_client_knock_port(c, EPOCH_WEB - 1, &p), 0);
	assert_int_equal(p, prev);
	assert_int_equal(schedule_client_knock_port(c, EPOCH_WEB, &p), 0);
	assert_int_equal(p, cur);
	assert_int_equal(schedule_client_knock_port(c, EPOCH_WEB + 1, &p), 0);
	assert_int_equal(p, next);
}

static void test_vector_4_alice_on_two_hosts_and_bob(void **state)
{
	static const uint16_t want_window[4] = {24574, 29756, 28345, 21371};
	struct schedule_client alice_a = web_client("alice", "203.0.113.5");
	struct schedule_client alice_b = web_client("alice", "198.51.100.7");
	struct schedule_client bob_a = web_client("bob", "203.0.113.5");
	uint16_t window[4];

	assert_int_equal(schedule_client_candidates(&alice_a, EPOCH_WEB, window, 4), 0);
	assert_memory_equal(window, want_window, sizeof(want_window));
	expect_doors(&alice_a, 21195, 24574, 21530);
	expect_knocks(&alice_a, 28082, 20816, 22952);
	/* the same key on another host: other doors */
	expect_doors(&alice_b, 27906, 23447, 26527);
	expect_knocks(&alice_b, 26471, 27944, 20651);
	/* another client (same key bytes here): other doors */
	expect_doors(&bob_a, 23660, 23844, 21430);
	expect_knocks(&bob_a, 25240, 24938, 25207);
}

static bool exclude_first_two(uint16_t port, void *userdata)
{
	return port == 40008 || port == 40009;
}

static void test_vector_5_tiny_range_and_exclusions(void **state)
{
	static const uint16_t want[10] = {40008, 40009, 40004, 40006, 40002,
					  40007, 40000, 40003, 40001, 40005};
	struct schedule_client c = {.key = (const uint8_t *)KEY_SSH,
				    .key_len = strlen(KEY_SSH),
				    .service = "ssh",
				    .client = "ops-1",
				    .host_id = "host-a",
				    .first = 40000,
				    .last = 40009};
	uint16_t got[10], port = 0;

	assert_int_equal(schedule_client_candidates(&c, 1234567890, got, 10), 0);
	assert_memory_equal(got, want, sizeof(want));
	assert_int_equal(schedule_client_candidates(&c, 1234567890, got, 11), -EINVAL);
	assert_int_equal(schedule_client_port(&c, 1234567890, exclude_first_two, NULL, &port), 0);
	assert_int_equal(port, 40004);
	assert_int_equal(schedule_client_knock_port(&c, 1234567890, &port), 0);
	assert_int_equal(port, 40001);
}

static void test_names_and_host_ids(void **state)
{
	char long_name[SCHEDULE_MAX_CLIENT_NAME + 2];
	struct schedule_client c = web_client("alice", "203.0.113.5");
	uint16_t port;

	assert_true(schedule_client_name_valid("alice"));
	assert_true(schedule_client_name_valid("ops_1.laptop-2"));
	assert_false(schedule_client_name_valid(""));
	assert_false(schedule_client_name_valid(".hidden"));
	assert_false(schedule_client_name_valid("-x"));
	assert_false(schedule_client_name_valid("a/b"));
	assert_false(schedule_client_name_valid("a b"));
	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = 0;
	assert_false(schedule_client_name_valid(long_name));
	long_name[SCHEDULE_MAX_CLIENT_NAME] = 0;
	assert_true(schedule_client_name_valid(long_name));

	assert_true(schedule_host_id_valid("2001:db8::1"));
	assert_true(schedule_host_id_valid("web-1.example.org"));
	assert_false(schedule_host_id_valid(""));
	assert_false(schedule_host_id_valid("a b"));

	c.client = "a/b";
	assert_int_equal(schedule_client_port(&c, 1, NULL, NULL, &port), -EINVAL);
	c.client = "alice";
	c.host_id = "";
	assert_int_equal(schedule_client_knock_port(&c, 1, &port), -EINVAL);
}

static const uint8_t nonce_10_1f[16] = {0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17,
					0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f};

static const struct knock_key web_knock_key = {
    .key = key_0_31, .key_len = sizeof(key_0_31), .service = "web", .host_id = "203.0.113.5"};

static size_t unhex(const char *hex, uint8_t *out)
{
	size_t n = strlen(hex) / 2;

	for (size_t i = 0; i < n; i++) {
		unsigned byte;

		assert_int_equal(sscanf(hex + 2 * i, "%2x", &byte), 1);
		out[i] = (uint8_t)byte;
	}
	return n;
}

static void test_vector_6_knock_packets(void **state)
{
	static const char *want_source =
	    "4d54444b0105616c696365000000006553f12d101112131415161718191a1b1c1d1e1f00"
	    "86e1300b62e5d2afd1e31cfbc14a92e53d7accda1f7d14f9e4ab516854935548";
	static const char *want_ipv4 =
	    "4d54444b0105616c696365000000006553f12d101112131415161718191a1b1c1d1e1f04c000020a"
	    "8ebb2e52d191923a03157f3afe23cac4f178ee25c0c826bdc8881e3b86c187df";
	uint8_t want[KNOCK_MAX_SIZE], got[KNOCK_MAX_SIZE];
	struct knock k = {.client = "alice", .time_sec = 1700000045, .admit = KNOCK_ADMIT_SOURCE};
	struct knock parsed;
	const char *reason = NULL;
	size_t want_len;
	int len;

	memcpy(k.nonce, nonce_10_1f, sizeof(k.nonce));
	want_len = unhex(want_source, want);
	len = knock_encode(&k, &web_knock_key, got, sizeof(got));
	assert_int_equal(len, (int)want_len);
	assert_memory_equal(got, want, want_len);
	assert_int_equal(knock_verify(got, (size_t)len, &web_knock_key), 0);
	assert_int_equal(knock_parse(got, (size_t)len, &parsed, &reason), 0);
	assert_string_equal(parsed.client, "alice");
	assert_int_equal(parsed.time_sec, 1700000045);
	assert_memory_equal(parsed.nonce, nonce_10_1f, sizeof(nonce_10_1f));
	assert_int_equal(parsed.admit, KNOCK_ADMIT_SOURCE);

	k.admit = KNOCK_ADMIT_IPV4;
	memcpy(k.admit_addr, (uint8_t[]){192, 0, 2, 10}, 4);
	want_len = unhex(want_ipv4, want);
	len = knock_encode(&k, &web_knock_key, got, sizeof(got));
	assert_int_equal(len, (int)want_len);
	assert_memory_equal(got, want, want_len);
	assert_int_equal(knock_parse(got, (size_t)len, &parsed, &reason), 0);
	assert_int_equal(parsed.admit, KNOCK_ADMIT_IPV4);
	assert_memory_equal(parsed.admit_addr, ((uint8_t[]){192, 0, 2, 10}), 4);
}

static void test_knock_verify_refuses_what_it_must(void **state)
{
	struct knock k = {.client = "alice", .time_sec = 1700000045};
	struct knock_key other_host = web_knock_key, other_service = web_knock_key,
			 other_key = web_knock_key;
	uint8_t packet[KNOCK_MAX_SIZE], bent[KNOCK_MAX_SIZE];
	struct knock parsed;
	const char *reason = NULL;
	int len;

	len = knock_encode(&k, &web_knock_key, packet, sizeof(packet));
	assert_true(len > 0);
	other_host.host_id = "198.51.100.7";
	other_service.service = "ssh";
	other_key.key_len = 31;
	assert_int_equal(knock_verify(packet, (size_t)len, &other_host), -EBADMSG);
	assert_int_equal(knock_verify(packet, (size_t)len, &other_service), -EBADMSG);
	assert_int_equal(knock_verify(packet, (size_t)len, &other_key), -EBADMSG);
	/* every single bit flipped anywhere is refused */
	for (int i = 0; i < len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			memcpy(bent, packet, (size_t)len);
			bent[i] ^= (uint8_t)(1u << bit);
			assert_int_not_equal(knock_verify(bent, (size_t)len, &web_knock_key), 0);
		}
	}
	/* truncated or extended */
	assert_int_equal(knock_verify(packet, (size_t)len - 1, &web_knock_key), -EBADMSG);
	memcpy(bent, packet, (size_t)len);
	bent[len] = 0;
	assert_int_equal(knock_verify(bent, (size_t)len + 1, &web_knock_key), -EBADMSG);
	assert_int_equal(knock_parse(packet, 10, &parsed, &reason), -EBADMSG);
	assert_string_equal(reason, "too short");
	memcpy(bent, packet, (size_t)len);
	bent[0] = 'X';
	assert_int_equal(knock_parse(bent, (size_t)len, &parsed, &reason), -EBADMSG);
	assert_string_equal(reason, "bad magic");
	memcpy(bent, packet, (size_t)len);
	bent[6] = '/';
	assert_int_equal(knock_parse(bent, (size_t)len, &parsed, &reason), -EBADMSG);
	assert_string_equal(reason, "bad client name");
	/* a bad name or admit field is not encoded */
	k.admit = 5;
	assert_int_equal(knock_encode(&k, &web_knock_key, packet, sizeof(packet)), -EINVAL);
	k.admit = KNOCK_ADMIT_SOURCE;
	strcpy(k.client, "a b");
	assert_int_equal(knock_encode(&k, &web_knock_key, packet, sizeof(packet)), -EINVAL);
	strcpy(k.client, "alice");
	assert_int_equal(knock_encode(&k, &web_knock_key, packet, 20), -ENOBUFS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vector_4_alice_on_two_hosts_and_bob),
	    cmocka_unit_test(test_vector_5_tiny_range_and_exclusions),
	    cmocka_unit_test(test_names_and_host_ids),
	    cmocka_unit_test(test_vector_6_knock_packets),
	    cmocka_unit_test(test_knock_verify_refuses_what_it_must),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
