/* SPDX-License-Identifier: MIT */
/* What a knock must pass besides its MAC: a rate per source (another source
 * unaffected, a full table refusing nobody for want of room), the window
 * (also after the clock is set back), the replay cache (failing closed when a
 * client's slots are all held), the knock port of the epoch or of the grace,
 * the admit field; and refusals summarised at most once a second per reason. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "clock.h"
#include "macro.h"
#include "rotation.h"
#include "rotation_internal.h"
#include "rotator.h"

#define T0 (1700000000ull * USEC_PER_SEC)
#define MONO0 (1000ull * USEC_PER_SEC)

static const struct knock_guard_limits limits = {
    .rate = 20, .rate_span_usec = USEC_PER_SEC, .window_usec = 30 * USEC_PER_SEC};

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

static struct knock_guard *new_guard(const struct knock_guard_limits *l)
{
	struct knock_guard *guard = NULL;

	assert_int_equal(knock_guard_new(l, &guard), 0);
	return guard;
}

static struct knock knock_of(const char *client, uint64_t time_usec, uint8_t nonce_byte)
{
	struct knock k = {.time_sec = time_usec / USEC_PER_SEC, .admit = KNOCK_ADMIT_SOURCE};

	snprintf(k.client, sizeof(k.client), "%s", client);
	memset(k.nonce, nonce_byte, sizeof(k.nonce));
	return k;
}

/* epoch 100 (knock port 4000, door 5000) now, epoch 99 (4001, 5001) in grace */
static const struct knock_guard_epoch epochs[] = {
    {.epoch = 100, .knock_port = 4000, .door = 5000, .until_usec = T0 + USEC_PER_HOUR},
    {.epoch = 99, .knock_port = 4001, .door = 5001, .until_usec = T0 + 10 * USEC_PER_SEC},
};

static enum knock_guard_reason decide(struct knock_guard *guard, const struct knock *k,
				      const char *source, uint16_t port, uint64_t now_usec,
				      struct knock_guard_admission *ret)
{
	struct rotator_addr a = addr(source);
	struct knock_guard_admission ignored;

	return knock_guard_decide(guard, k, &a, port, epochs, ELEMENTSOF(epochs), now_usec,
				  ret ? ret : &ignored);
}

static enum knock_guard_reason rate(struct knock_guard *guard, const char *source,
				    uint64_t mono_usec)
{
	struct rotator_addr a = addr(source);

	return knock_guard_rate(guard, &a, mono_usec);
}

static void test_a_source_gets_its_rate_and_no_more(void **state)
{
	struct knock_guard *guard = new_guard(&limits);

	(void)state;
	for (int i = 0; i < 20; i++)
		assert_int_equal(rate(guard, "192.0.2.1", MONO0), KNOCK_GUARD_ADMIT);
	assert_int_equal(rate(guard, "192.0.2.1", MONO0), KNOCK_GUARD_RATE);
	assert_int_equal(rate(guard, "192.0.2.1", MONO0 + 49 * USEC_PER_MSEC), KNOCK_GUARD_RATE);
	/* another source is not held back by the flood */
	assert_int_equal(rate(guard, "192.0.2.2", MONO0), KNOCK_GUARD_ADMIT);
	/* one token back every 50 ms, refused knocks earn nothing */
	assert_int_equal(rate(guard, "192.0.2.1", MONO0 + 50 * USEC_PER_MSEC), KNOCK_GUARD_ADMIT);
	assert_int_equal(rate(guard, "192.0.2.1", MONO0 + 50 * USEC_PER_MSEC), KNOCK_GUARD_RATE);
	/* a quiet second fills the bucket, not beyond */
	for (int i = 0; i < 20; i++)
		assert_int_equal(rate(guard, "192.0.2.1", MONO0 + 10 * USEC_PER_SEC),
				 KNOCK_GUARD_ADMIT);
	assert_int_equal(rate(guard, "192.0.2.1", MONO0 + 10 * USEC_PER_SEC), KNOCK_GUARD_RATE);
	knock_guard_free(guard);
}

static void test_an_ipv6_host_is_its_slash_64(void **state)
{
	struct knock_guard_limits one = limits;
	struct knock_guard *guard;

	(void)state;
	one.rate = 1;
	guard = new_guard(&one);
	assert_int_equal(rate(guard, "2001:db8:1:2::1", MONO0), KNOCK_GUARD_ADMIT);
	assert_int_equal(rate(guard, "2001:db8:1:2::ffff", MONO0), KNOCK_GUARD_RATE);
	assert_int_equal(rate(guard, "2001:db8:1:3::1", MONO0), KNOCK_GUARD_ADMIT);
	/* an IPv4 address whose bytes begin like it is another source */
	assert_int_equal(rate(guard, "32.1.13.184", MONO0), KNOCK_GUARD_ADMIT);
	knock_guard_free(guard);
}

static void test_a_full_table_refuses_nobody_for_want_of_room(void **state)
{
	struct knock_guard_limits one = limits;
	struct knock_guard *guard;
	json_t *status;
	char text[32];
	size_t n = 4 * KNOCK_GUARD_RATE_SETS * KNOCK_GUARD_RATE_WAYS;

	(void)state;
	one.rate = 1;
	one.rate_span_usec = USEC_PER_HOUR;
	guard = new_guard(&one);
	assert_int_equal(rate(guard, "198.51.100.7", MONO0), KNOCK_GUARD_ADMIT);
	/* four times as many sources as the table holds, each spent */
	for (size_t i = 0; i < n; i++) {
		snprintf(text, sizeof(text), "10.%zu.%zu.%zu", i >> 16, (i >> 8) & 255, i & 255);
		assert_int_equal(rate(guard, text, MONO0 + 1 + i), KNOCK_GUARD_ADMIT);
	}
	/* the least recently seen went: 198.51.100.7 has a fresh bucket (as it
	 * would with any number of addresses of its own); the latest is held */
	assert_int_equal(rate(guard, "198.51.100.7", MONO0 + n + 1), KNOCK_GUARD_ADMIT);
	assert_int_equal(rate(guard, text, MONO0 + n + 2), KNOCK_GUARD_RATE);
	status = knock_guard_status(guard);
	assert_int_equal(json_integer_value(json_object_get(status, "sources")),
			 KNOCK_GUARD_RATE_SETS * KNOCK_GUARD_RATE_WAYS);
	json_decref(status);
	knock_guard_free(guard);
}

static void test_rate_zero_refuses_everything(void **state)
{
	struct knock_guard_limits none = limits;
	struct knock_guard *guard;

	(void)state;
	none.rate = 0;
	guard = new_guard(&none);
	assert_int_equal(rate(guard, "192.0.2.1", MONO0), KNOCK_GUARD_RATE);
	knock_guard_free(guard);
}

static void test_the_current_epoch_admits_to_its_door(void **state)
{
	struct knock_guard *guard = new_guard(&limits);
	struct knock k = knock_of("alice", T0, 1);
	struct knock_guard_admission a = {0};

	(void)state;
	assert_int_equal(decide(guard, &k, "192.0.2.1", 4000, T0, &a), KNOCK_GUARD_ADMIT);
	assert_int_equal(a.epoch, 100);
	assert_int_equal(a.door, 5000);
	assert_int_equal(a.until_usec, T0 + USEC_PER_HOUR);
	knock_guard_free(guard);
}

static void test_the_grace_epoch_admits_to_its_own_door_until_the_grace_ends(void **state)
{
	struct knock_guard *guard = new_guard(&limits);
	struct knock k1 = knock_of("alice", T0, 1),
		     k2 = knock_of("alice", T0 + 10 * USEC_PER_SEC, 2);
	struct knock_guard_admission a = {0};

	(void)state;
	assert_int_equal(decide(guard, &k1, "192.0.2.1", 4001, T0, &a), KNOCK_GUARD_ADMIT);
	assert_int_equal(a.epoch, 99);
	assert_int_equal(a.door, 5001);
	assert_int_equal(a.until_usec, T0 + 10 * USEC_PER_SEC);
	/* the grace is over: its knock port is any other port */
	assert_int_equal(decide(guard, &k2, "192.0.2.1", 4001, T0 + 10 * USEC_PER_SEC, NULL),
			 KNOCK_GUARD_WRONG_PORT);
	knock_guard_free(guard);
}

static void test_another_port_is_refused_and_the_nonce_stays_unused(void **state)
{
	struct knock_guard *guard = new_guard(&limits);
	struct knock k = knock_of("alice", T0, 1);

	(void)state;
	assert_int_equal(decide(guard, &k, "192.0.2.1", 4002, T0, NULL), KNOCK_GUARD_WRONG_PORT);
	assert_int_equal(decide(guard, &k, "192.0.2.1", 5000, T0, NULL), KNOCK_GUARD_WRONG_PORT);
	/* a refused knock did not burn its nonce */
	assert_int_equal(decide(guard, &k, "192.0.2.1", 4000, T0, NULL), KNOCK_GUARD_ADMIT);
	knock_guard_free(guard);
}

static void test_the_time_must_be_within_the_window(void **state)
{
	struct knock_guard *guard = new_guard(&limits);
	struct knock old = knock_of("alice", T0 - 31 * USEC_PER_SEC, 1),
		     edge_old = knock_of("alice", T0 - 30 * USEC_PER_SEC, 2),
		     edge_new = knock_of("alice", T0 + 30 * USEC_PER_SEC, 3),
		     future = knock_of("alice", T0 + 31 * USEC_PER_SEC, 4),
		     absurd = knock_of("alice", 0, 5);

	(void)state;
	absurd.time_sec = UINT64_MAX;
	assert_int_equal(decide(guard, &old, "192.0.2.1", 4000, T0, NULL), KNOCK_GUARD_TIME);
	assert_int_equal(decide(guard, &future, "192.0.2.1", 4000, T0, NULL), KNOCK_GUARD_TIME);
	assert_int_equal(decide(guard, &absurd, "192.0.2.1", 4000, T0, NULL), KNOCK_GUARD_TIME);
	assert_int_equal(decide(guard, &edge_old, "192.0.2.1", 4000, T0, NULL), KNOCK_GUARD_ADMIT);
	assert_int_equal(decide(guard, &edge_new, "192.0.2.1", 4000, T0, NULL), KNOCK_GUARD_ADMIT);
	knock_guard_free(guard);
}

static void test_a_replay_is_refused_while_its_time_is_valid(void **state)
{
	struct knock_guard *guard = new_guard(&limits);
	struct knock k = knock_of("alice", T0, 1), bob = knock_of("bob", T0, 1);

	(void)state;
	assert_int_equal(decide(guard, &k, "192.0.2.1", 4000, T0, NULL), KNOCK_GUARD_ADMIT);
	assert_int_equal(decide(guard, &k, "192.0.2.1", 4000, T0, NULL), KNOCK_GUARD_REPLAY);
	/* from elsewhere, to the grace port: still the same knock */
	assert_int_equal(decide(guard, &k, "192.0.2.9", 4001, T0 + USEC_PER_SEC, NULL),
			 KNOCK_GUARD_REPLAY);
	assert_int_equal(decide(guard, &k, "192.0.2.1", 4000, T0 + 30 * USEC_PER_SEC, NULL),
			 KNOCK_GUARD_REPLAY);
	/* the pair is (client, nonce): bob's nonce is his own */
	assert_int_equal(decide(guard, &bob, "192.0.2.2", 4000, T0, NULL), KNOCK_GUARD_ADMIT);
	/* once the nonce may be forgotten, the time refuses the packet */
	assert_int_equal(decide(guard, &k, "192.0.2.1", 4000, T0 + 31 * USEC_PER_SEC, NULL),
			 KNOCK_GUARD_TIME);
	knock_guard_free(guard);
}

static void test_a_clock_set_back_never_revives_a_forgotten_nonce(void **state)
{
	struct knock_guard *guard = new_guard(&limits);
	struct knock k = knock_of("alice", T0, 1), fresh = knock_of("alice", T0, 2);

	(void)state;
	assert_int_equal(decide(guard, &k, "192.0.2.1", 4000, T0, NULL), KNOCK_GUARD_ADMIT);
	/* a minute later its slot is free; then the clock is set back a minute */
	for (uint8_t i = 10; i < 10 + KNOCK_GUARD_NONCES_PER_CLIENT; i++) {
		struct knock later = knock_of("alice", T0 + 60 * USEC_PER_SEC, i);

		assert_int_equal(
		    decide(guard, &later, "192.0.2.1", 4000, T0 + 60 * USEC_PER_SEC, NULL),
		    KNOCK_GUARD_ADMIT);
	}
	assert_int_equal(decide(guard, &k, "192.0.2.1", 4000, T0, NULL), KNOCK_GUARD_TIME);
	assert_int_equal(decide(guard, &fresh, "192.0.2.1", 4000, T0, NULL), KNOCK_GUARD_TIME);
	knock_guard_free(guard);
}

static void test_a_full_replay_cache_refuses_rather_than_forgets(void **state)
{
	struct knock_guard *guard = new_guard(&limits);
	struct knock bob = knock_of("bob", T0, 200);

	(void)state;
	for (uint8_t i = 0; i < KNOCK_GUARD_NONCES_PER_CLIENT; i++) {
		struct knock k = knock_of("alice", T0, i);

		assert_int_equal(decide(guard, &k, "192.0.2.1", 4000, T0, NULL), KNOCK_GUARD_ADMIT);
	}
	struct knock more = knock_of("alice", T0, 100);
	assert_int_equal(decide(guard, &more, "192.0.2.1", 4000, T0, NULL),
			 KNOCK_GUARD_REPLAY_FULL);
	/* every earlier one is still remembered */
	for (uint8_t i = 0; i < KNOCK_GUARD_NONCES_PER_CLIENT; i++) {
		struct knock k = knock_of("alice", T0, i);

		assert_int_equal(decide(guard, &k, "192.0.2.1", 4000, T0, NULL),
				 KNOCK_GUARD_REPLAY);
	}
	/* another client is not held back */
	assert_int_equal(decide(guard, &bob, "192.0.2.2", 4000, T0, NULL), KNOCK_GUARD_ADMIT);
	/* when the window of the first ones is over, a new knock has room */
	more = knock_of("alice", T0 + 31 * USEC_PER_SEC, 100);
	assert_int_equal(decide(guard, &more, "192.0.2.1", 4000, T0 + 31 * USEC_PER_SEC, NULL),
			 KNOCK_GUARD_ADMIT);
	knock_guard_free(guard);
}

static void test_clients_out_of_the_window_are_swept(void **state)
{
	struct knock_guard *guard = new_guard(&limits);
	struct knock a = knock_of("alice", T0, 1), b = knock_of("bob", T0, 1),
		     c = knock_of("carol", T0 + 40 * USEC_PER_SEC, 1);
	json_t *status;

	(void)state;
	assert_int_equal(decide(guard, &a, "192.0.2.1", 4000, T0, NULL), KNOCK_GUARD_ADMIT);
	assert_int_equal(decide(guard, &b, "192.0.2.2", 4000, T0, NULL), KNOCK_GUARD_ADMIT);
	status = knock_guard_status(guard);
	assert_int_equal(json_integer_value(json_object_get(status, "clients")), 2);
	assert_int_equal(json_integer_value(json_object_get(status, "nonces")), 2);
	json_decref(status);
	/* a new client's knock 40 s later: alice's and bob's windows are over */
	assert_int_equal(decide(guard, &c, "192.0.2.3", 4000, T0 + 40 * USEC_PER_SEC, NULL),
			 KNOCK_GUARD_ADMIT);
	status = knock_guard_status(guard);
	assert_int_equal(json_integer_value(json_object_get(status, "clients")), 1);
	assert_int_equal(json_integer_value(json_object_get(status, "nonces")), 1);
	json_decref(status);
	knock_guard_free(guard);
}

static void test_the_admit_field_must_be_the_source(void **state)
{
	struct knock_guard *guard = new_guard(&limits);
	struct knock v4 = knock_of("alice", T0, 1), v6 = knock_of("alice", T0, 2);
	struct rotator_addr a4 = addr("192.0.2.1"), a6 = addr("2001:db8::1");

	(void)state;
	v4.admit = KNOCK_ADMIT_IPV4;
	memcpy(v4.admit_addr, &a4.in, 4);
	v6.admit = KNOCK_ADMIT_IPV6;
	memcpy(v6.admit_addr, &a6.in6, 16);
	assert_int_equal(decide(guard, &v4, "192.0.2.2", 4000, T0, NULL), KNOCK_GUARD_WRONG_SOURCE);
	assert_int_equal(decide(guard, &v6, "192.0.2.1", 4000, T0, NULL), KNOCK_GUARD_WRONG_SOURCE);
	assert_int_equal(decide(guard, &v6, "2001:db8::2", 4000, T0, NULL),
			 KNOCK_GUARD_WRONG_SOURCE);
	assert_int_equal(decide(guard, &v4, "192.0.2.1", 4000, T0, NULL), KNOCK_GUARD_ADMIT);
	assert_int_equal(decide(guard, &v6, "2001:db8::1", 4000, T0, NULL), KNOCK_GUARD_ADMIT);
	knock_guard_free(guard);
}

static void test_refusals_are_summarised_once_a_second_per_reason(void **state)
{
	struct knock_guard *guard = new_guard(&limits);
	uint64_t next = 1;

	(void)state;
	assert_int_equal(knock_guard_count(guard, KNOCK_GUARD_ADMIT, MONO0), 0);
	/* the first refusal of a reason is told at once */
	assert_int_equal(knock_guard_count(guard, KNOCK_GUARD_BAD_MAC, MONO0), 1);
	assert_int_equal(knock_guard_flush(guard, KNOCK_GUARD_BAD_MAC, MONO0, &next), 0);
	assert_int_equal(next, 0);
	/* then held for the rest of the second */
	for (int i = 0; i < 5; i++)
		assert_int_equal(knock_guard_count(guard, KNOCK_GUARD_BAD_MAC, MONO0 + 1 + i), 0);
	/* another reason has its own second */
	assert_int_equal(knock_guard_count(guard, KNOCK_GUARD_REPLAY, MONO0 + 10), 1);
	assert_int_equal(
	    knock_guard_flush(guard, KNOCK_GUARD_BAD_MAC, MONO0 + USEC_PER_SEC - 1, &next), 0);
	assert_int_equal(next, MONO0 + USEC_PER_SEC);
	assert_int_equal(knock_guard_flush(guard, KNOCK_GUARD_BAD_MAC, MONO0 + USEC_PER_SEC, &next),
			 5);
	assert_int_equal(next, 0);
	/* the next refusal after that waits for its second */
	assert_int_equal(knock_guard_count(guard, KNOCK_GUARD_BAD_MAC, MONO0 + USEC_PER_SEC + 1),
			 0);
	assert_int_equal(knock_guard_count(guard, KNOCK_GUARD_BAD_MAC, MONO0 + 2 * USEC_PER_SEC),
			 2);
	assert_int_equal(knock_guard_counted(guard, KNOCK_GUARD_BAD_MAC), 8);
	assert_int_equal(knock_guard_counted(guard, KNOCK_GUARD_REPLAY), 1);
	assert_int_equal(knock_guard_counted(guard, KNOCK_GUARD_ADMIT), 1);
	knock_guard_free(guard);
}

static void test_status_and_names(void **state)
{
	struct knock_guard *guard = new_guard(&limits);
	json_t *status;

	(void)state;
	knock_guard_count(guard, KNOCK_GUARD_RATE, MONO0);
	knock_guard_count(guard, KNOCK_GUARD_ADMIT, MONO0);
	status = knock_guard_status(guard);
	assert_non_null(status);
	assert_int_equal(json_integer_value(json_object_get(status, "admitted")), 1);
	assert_int_equal(
	    json_integer_value(json_object_get(json_object_get(status, "refused"), "rate-limited")),
	    1);
	assert_int_equal(
	    json_integer_value(json_object_get(json_object_get(status, "refused"), "replayed")), 0);
	json_decref(status);
	for (int i = 0; i < KNOCK_GUARD_N_REASONS; i++)
		assert_string_not_equal(knock_guard_reason_name(i), "?");
	assert_string_equal(knock_guard_reason_name(KNOCK_GUARD_N_REASONS), "?");
	knock_guard_free(guard);
}

/* --- the receiver ------------------------------------------------------------ */

static const uint8_t alice_key[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
				      12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
				      23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static const uint8_t bob_key[16] = {0xb0, 0xb0, 0xb0, 0xb0, 0xb0, 0xb0, 0xb0, 0xb0,
				    0xb0, 0xb0, 0xb0, 0xb0, 0xb0, 0xb0, 0xb0, 0xb0};

/* Two services: "ssh" (alice, bob) and "web" (bob, with the same key: the
 * MAC binds the service). Alice's knock port is 4000 for ssh, bob's 4100 for
 * both. */
struct world {
	struct knock_service ssh, web;
	unsigned client_calls, admits;
	int admit_result;
	struct rotator_addr admitted;
	uint16_t admitted_door;
	uint64_t admitted_until;
	char admitted_client[80];
	const struct knock_service *admitted_service;
};

static size_t world_services_at(void *userdata, uint16_t port, const struct knock_service **ret,
				size_t max)
{
	struct world *w = userdata;
	size_t n = 0;

	if ((port == 4000 || port == 4100) && n < max)
		ret[n++] = &w->ssh;
	if (port == 4100 && n < max)
		ret[n++] = &w->web;
	return n;
}

static int world_client(void *userdata, const struct knock_service *service, const char *client,
			struct knock_client *ret)
{
	struct world *w = userdata;
	struct knock_client c = {.n_epochs = 1};

	w->client_calls++;
	if (streq(client, "alice") && service == &w->ssh) {
		c.key = alice_key;
		c.key_len = sizeof(alice_key);
		c.epochs[0] = (struct knock_guard_epoch){
		    .epoch = 7, .knock_port = 4000, .door = 5000, .until_usec = T0 + USEC_PER_HOUR};
	} else if (streq(client, "bob")) {
		c.key = bob_key;
		c.key_len = sizeof(bob_key);
		c.epochs[0] = (struct knock_guard_epoch){.epoch = 7,
							 .knock_port = 4100,
							 .door = service == &w->ssh ? 5100 : 6100,
							 .until_usec = T0 + USEC_PER_HOUR};
	} else
		return -ENOENT;
	*ret = c;
	return 0;
}

static int world_admit(void *userdata, const struct knock_service *service, const char *client,
		       const struct rotator_addr *source, uint16_t door, uint64_t until_usec,
		       struct step_error *ret_error)
{
	struct world *w = userdata;

	w->admits++;
	if (w->admit_result < 0)
		return step_error_set(ret_error, "admit", w->admit_result, "test");
	w->admitted = *source;
	w->admitted_door = door;
	w->admitted_until = until_usec;
	w->admitted_service = service;
	snprintf(w->admitted_client, sizeof(w->admitted_client), "%s", client);
	return 0;
}

static int world_setup(void **state)
{
	struct world *w = calloc(1, sizeof(*w));

	assert_non_null(w);
	w->ssh = (struct knock_service){.name = "ssh",
					.host_id = "192.0.2.100",
					.proto = IPPROTO_TCP,
					.guard = new_guard(&limits)};
	w->web = (struct knock_service){.name = "web",
					.host_id = "192.0.2.100",
					.proto = IPPROTO_TCP,
					.guard = new_guard(&limits)};
	*state = w;
	return 0;
}

static int world_teardown(void **state)
{
	struct world *w = *state;

	knock_guard_free(w->ssh.guard);
	knock_guard_free(w->web.guard);
	free(w);
	return 0;
}

static struct knock_outcome receive_at(struct world *w, const char *service, const char *client,
				       const uint8_t *key, size_t key_len, uint8_t nonce_byte,
				       const char *source, uint16_t port, uint64_t knock_usec,
				       uint64_t now_usec)
{
	const struct knock_receiver_ops ops = {.services_at = world_services_at,
					       .client = world_client,
					       .admit = world_admit,
					       .userdata = w};
	struct knock k = knock_of(client, knock_usec, nonce_byte);
	struct knock_key kk = {
	    .key = key, .key_len = key_len, .service = service, .host_id = "192.0.2.100"};
	uint8_t packet[KNOCK_MAX_SIZE];
	int len = knock_encode(&k, &kk, packet, sizeof(packet));
	struct knock_datagram d = {.source = addr(source), .port = port, .payload = packet};
	struct knock_outcome out;

	assert_true(len > 0);
	d.len = (size_t)len;
	knock_receiver_handle(&ops, &d, now_usec, MONO0, &out);
	return out;
}

static struct knock_outcome receive(struct world *w, const char *service, const char *client,
				    const uint8_t *key, size_t key_len, uint8_t nonce_byte,
				    const char *source, uint16_t port, uint64_t now_usec)
{
	return receive_at(w, service, client, key, key_len, nonce_byte, source, port, now_usec,
			  now_usec);
}

static void test_a_valid_knock_admits_its_source_to_its_door(void **state)
{
	struct world *w = *state;
	struct knock_outcome out =
	    receive(w, "ssh", "alice", alice_key, sizeof(alice_key), 1, "192.0.2.1", 4000, T0);
	struct rotator_addr expected = addr("192.0.2.1");

	assert_int_equal(out.reason, KNOCK_GUARD_ADMIT);
	assert_ptr_equal(out.service, &w->ssh);
	assert_string_equal(out.client, "alice");
	assert_int_equal(out.admission.door, 5000);
	assert_int_equal(out.admission.epoch, 7);
	assert_int_equal(w->admits, 1);
	assert_int_equal(w->admitted_door, 5000);
	assert_int_equal(w->admitted_until, T0 + USEC_PER_HOUR);
	assert_string_equal(w->admitted_client, "alice");
	assert_memory_equal(&w->admitted.in, &expected.in, sizeof(expected.in));
	assert_int_equal(knock_guard_counted(w->ssh.guard, KNOCK_GUARD_ADMIT), 1);
	/* the same packet again: replayed, nothing admitted */
	out = receive(w, "ssh", "alice", alice_key, sizeof(alice_key), 1, "192.0.2.1", 4000, T0);
	assert_int_equal(out.reason, KNOCK_GUARD_REPLAY);
	assert_int_equal(out.summarise, 1);
	assert_int_equal(w->admits, 1);
}

static void test_the_mac_binds_the_service(void **state)
{
	struct world *w = *state;
	/* bob's knock for web reaches port 4100, where ssh and web both listen */
	struct knock_outcome out =
	    receive(w, "web", "bob", bob_key, sizeof(bob_key), 1, "192.0.2.2", 4100, T0);

	assert_int_equal(out.reason, KNOCK_GUARD_ADMIT);
	assert_ptr_equal(out.service, &w->web);
	assert_int_equal(w->admitted_door, 6100);
	/* both services charged the source's rate, only web counted it */
	assert_int_equal(knock_guard_counted(w->web.guard, KNOCK_GUARD_ADMIT), 1);
	assert_int_equal(knock_guard_counted(w->ssh.guard, KNOCK_GUARD_ADMIT), 0);
}

static void test_a_wrong_key_or_name_admits_nothing(void **state)
{
	struct world *w = *state;
	struct knock_outcome out;

	out = receive(w, "ssh", "alice", bob_key, sizeof(bob_key), 1, "192.0.2.1", 4000, T0);
	assert_int_equal(out.reason, KNOCK_GUARD_BAD_MAC);
	assert_string_equal(out.client, "alice");
	/* alice's key, but for another service: the MAC binds it */
	out = receive(w, "web", "alice", alice_key, sizeof(alice_key), 2, "192.0.2.1", 4000, T0);
	assert_int_equal(out.reason, KNOCK_GUARD_BAD_MAC);
	out = receive(w, "ssh", "mallory", alice_key, sizeof(alice_key), 3, "192.0.2.1", 4000, T0);
	assert_int_equal(out.reason, KNOCK_GUARD_UNKNOWN_CLIENT);
	/* alice's valid knock to bob's knock port */
	out = receive(w, "ssh", "alice", alice_key, sizeof(alice_key), 4, "192.0.2.1", 4100, T0);
	assert_int_equal(out.reason, KNOCK_GUARD_WRONG_PORT);
	/* a port no service knocks on */
	out = receive(w, "ssh", "alice", alice_key, sizeof(alice_key), 5, "192.0.2.1", 4200, T0);
	assert_int_equal(out.reason, KNOCK_GUARD_WRONG_PORT);
	assert_null(out.service);
	/* an old timestamp */
	out = receive_at(w, "ssh", "alice", alice_key, sizeof(alice_key), 6, "192.0.2.1", 4000,
			 T0 - 31 * USEC_PER_SEC, T0);
	assert_int_equal(out.reason, KNOCK_GUARD_TIME);
	assert_int_equal(w->admits, 0);
	assert_int_equal(knock_guard_counted(w->ssh.guard, KNOCK_GUARD_BAD_MAC), 2);
	assert_int_equal(knock_guard_counted(w->ssh.guard, KNOCK_GUARD_UNKNOWN_CLIENT), 1);
}

static void test_garbage_is_malformed(void **state)
{
	struct world *w = *state;
	const struct knock_receiver_ops ops = {.services_at = world_services_at,
					       .client = world_client,
					       .admit = world_admit,
					       .userdata = w};
	const uint8_t garbage[] = "GET / HTTP/1.0\r\n\r\n";
	struct knock_datagram d = {
	    .source = addr("192.0.2.1"), .port = 4000, .payload = garbage, .len = sizeof(garbage)};
	struct knock_outcome out;

	knock_receiver_handle(&ops, &d, T0, MONO0, &out);
	assert_int_equal(out.reason, KNOCK_GUARD_MALFORMED);
	assert_string_equal(out.client, "");
	assert_int_equal(w->client_calls, 0);
}

static void test_a_flood_is_refused_before_any_mac_work(void **state)
{
	struct world *w = *state;
	struct knock_outcome out;
	unsigned calls;

	for (uint8_t i = 0; i < 20; i++) {
		out =
		    receive(w, "ssh", "alice", bob_key, sizeof(bob_key), i, "192.0.2.66", 4000, T0);
		assert_int_equal(out.reason, KNOCK_GUARD_BAD_MAC);
	}
	calls = w->client_calls;
	out = receive(w, "ssh", "alice", bob_key, sizeof(bob_key), 99, "192.0.2.66", 4000, T0);
	assert_int_equal(out.reason, KNOCK_GUARD_RATE);
	assert_int_equal(w->client_calls, calls);
	/* alice from elsewhere is admitted meanwhile */
	out = receive(w, "ssh", "alice", alice_key, sizeof(alice_key), 1, "192.0.2.1", 4000, T0);
	assert_int_equal(out.reason, KNOCK_GUARD_ADMIT);
}

static void test_a_failed_admission_is_reported(void **state)
{
	struct world *w = *state;
	struct knock_outcome out;
	char buf[STEP_ERROR_FORMAT_MAX];

	w->admit_result = -ENOBUFS;
	out = receive(w, "ssh", "alice", alice_key, sizeof(alice_key), 1, "192.0.2.1", 4000, T0);
	assert_int_equal(out.reason, KNOCK_GUARD_FAILED);
	assert_non_null(strstr(step_error_format(&out.error, buf, sizeof(buf)), "admit"));
	assert_int_equal(knock_guard_counted(w->ssh.guard, KNOCK_GUARD_FAILED), 1);
}

/* --- the listener ------------------------------------------------------------ */

struct heard {
	unsigned admitted, refused, connected;
	char client[80], service[80], source[64], reason[32];
	uint64_t count, epoch;
	uint16_t door;
	bool named;
};

static void heard_admitted(const struct rotation_client_event *e, void *userdata)
{
	struct heard *h = userdata;

	h->admitted++;
	snprintf(h->client, sizeof(h->client), "%s", e->client);
	snprintf(h->service, sizeof(h->service), "%s", e->service);
	snprintf(h->source, sizeof(h->source), "%s", e->source);
	h->door = e->door;
	h->epoch = e->epoch;
}

static void heard_refused(const char *service, const char *reason, uint64_t count, void *userdata)
{
	struct heard *h = userdata;

	h->refused++;
	snprintf(h->service, sizeof(h->service), "%s", service);
	snprintf(h->reason, sizeof(h->reason), "%s", reason);
	h->count = count;
}

static void heard_connected(const struct rotation_client_event *e, void *userdata)
{
	struct heard *h = userdata;

	h->connected++;
	h->named = e->client != NULL;
	snprintf(h->client, sizeof(h->client), "%s", e->client ? e->client : "");
	snprintf(h->source, sizeof(h->source), "%s", e->source);
	h->door = e->door;
	h->epoch = e->epoch;
}

/* The world's services, with guards the listener owns. */
static struct knock_listener *new_listener(struct world *w, struct heard *h)
{
	const struct knock_receiver_ops ops = {.services_at = world_services_at,
					       .client = world_client,
					       .admit = world_admit,
					       .userdata = w};
	const struct knock_listener_hooks hooks = {.on_admitted = heard_admitted,
						   .on_refused = heard_refused,
						   .on_connected = heard_connected,
						   .userdata = h};
	struct knock_listener *l = NULL;

	assert_int_equal(knock_listener_new(NULL, 0, &ops, &hooks, &l), 0);
	knock_guard_free(w->ssh.guard);
	knock_guard_free(w->web.guard);
	w->ssh.guard = knock_listener_service(l, "ssh", &limits);
	w->web.guard = knock_listener_service(l, "web", &limits);
	assert_non_null(w->ssh.guard);
	assert_non_null(w->web.guard);
	return l;
}

static struct rotator_knock knock_record(const char *client, const uint8_t *key, size_t key_len,
					 const char *service, uint8_t nonce_byte,
					 const char *source, uint16_t port, uint64_t time_usec)
{
	struct knock k = knock_of(client, time_usec, nonce_byte);
	struct knock_key kk = {
	    .key = key, .key_len = key_len, .service = service, .host_id = "192.0.2.100"};
	struct rotator_knock r = {.kind = ROTATOR_KNOCK_DATAGRAM,
				  .source = addr(source),
				  .proto = IPPROTO_UDP,
				  .port = port};
	int len = knock_encode(&k, &kk, r.payload, sizeof(r.payload));

	assert_true(len > 0);
	r.len = (uint16_t)len;
	return r;
}

static struct rotator_knock connection(const char *source, uint16_t door)
{
	return (struct rotator_knock){.kind = ROTATOR_KNOCK_CONNECTION,
				      .source = addr(source),
				      .proto = IPPROTO_TCP,
				      .port = door};
}

static void test_the_listener_names_the_client_of_a_first_connection(void **state)
{
	struct world *w = *state;
	struct heard h = {0};
	struct knock_listener *l = new_listener(w, &h);
	struct rotator_knock k =
	    knock_record("alice", alice_key, sizeof(alice_key), "ssh", 1, "192.0.2.1", 4000, T0);
	struct rotator_knock c = connection("192.0.2.1", 5000);
	json_t *status, *client;

	knock_listener_handle(l, &k, T0, MONO0);
	assert_int_equal(h.admitted, 1);
	assert_string_equal(h.client, "alice");
	assert_string_equal(h.service, "ssh");
	assert_string_equal(h.source, "192.0.2.1");
	assert_int_equal(h.door, 5000);
	knock_listener_handle(l, &c, T0 + USEC_PER_SEC, MONO0);
	assert_int_equal(h.connected, 1);
	assert_true(h.named);
	assert_string_equal(h.client, "alice");
	assert_int_equal(h.epoch, 7);
	/* its next flows are not told again, not even after a knock in the epoch */
	knock_listener_handle(l, &c, T0 + 2 * USEC_PER_SEC, MONO0);
	k = knock_record("alice", alice_key, sizeof(alice_key), "ssh", 2, "192.0.2.1", 4000, T0);
	knock_listener_handle(l, &k, T0 + 2 * USEC_PER_SEC, MONO0);
	assert_int_equal(h.admitted, 2);
	knock_listener_handle(l, &c, T0 + 3 * USEC_PER_SEC, MONO0);
	assert_int_equal(h.connected, 1);
	/* another source at the same door was never admitted by a knock */
	c = connection("192.0.2.2", 5000);
	knock_listener_handle(l, &c, T0 + USEC_PER_SEC, MONO0);
	assert_int_equal(h.connected, 1);

	status = knock_listener_status(l);
	assert_non_null(status);
	assert_int_equal(json_array_size(json_object_get(status, "clients")), 1);
	client = json_array_get(json_object_get(status, "clients"), 0);
	assert_string_equal(json_string_value(json_object_get(client, "client")), "alice");
	assert_string_equal(json_string_value(json_object_get(client, "last_admitted_source")),
			    "192.0.2.1");
	assert_int_equal(json_integer_value(json_object_get(client, "last_connected_usec")),
			 T0 + 3 * USEC_PER_SEC);
	assert_int_equal(json_integer_value(json_object_get(status, "unattributed_connections")),
			 1);
	json_decref(status);

	/* what a revocation takes back */
	struct rotator_admission taken[4];
	assert_int_equal(knock_listener_admissions(l, "ssh", "alice", T0, taken, 4), 1);
	assert_int_equal(taken[0].port, 5000);
	assert_int_equal(taken[0].proto, IPPROTO_TCP);
	assert_int_equal(taken[0].expires_in_ms, USEC_PER_HOUR / USEC_PER_MSEC);
	assert_int_equal(knock_listener_admissions(l, "ssh", "bob", T0, taken, 4), 0);
	assert_int_equal(knock_listener_admissions(l, "ssh", "alice", T0 + USEC_PER_HOUR, taken, 4),
			 0);
	/* revoked: its line and its admission go */
	knock_listener_drop_client(l, "ssh", "alice");
	c = connection("192.0.2.1", 5000);
	knock_listener_handle(l, &c, T0 + 4 * USEC_PER_SEC, MONO0);
	assert_int_equal(h.connected, 1);
	status = knock_listener_status(l);
	assert_int_equal(json_array_size(json_object_get(status, "clients")), 0);
	json_decref(status);
	knock_listener_free(l);
	w->ssh.guard = w->web.guard = NULL;
}

static void test_the_listener_summarises_refusals_once_a_second(void **state)
{
	struct world *w = *state;
	struct heard h = {0};
	struct knock_listener *l = new_listener(w, &h);

	for (uint8_t i = 0; i < 5; i++) {
		struct rotator_knock k = knock_record("alice", bob_key, sizeof(bob_key), "ssh", i,
						      "192.0.2.9", 4000, T0);

		knock_listener_handle(l, &k, T0, MONO0 + i);
	}
	/* the first at once, the other four held */
	assert_int_equal(h.refused, 1);
	assert_string_equal(h.reason, "bad-mac");
	assert_string_equal(h.service, "ssh");
	assert_int_equal(h.count, 1);
	knock_listener_flush(l, MONO0 + USEC_PER_SEC / 2);
	assert_int_equal(h.refused, 1);
	knock_listener_flush(l, MONO0 + USEC_PER_SEC);
	assert_int_equal(h.refused, 2);
	assert_int_equal(h.count, 4);
	assert_int_equal(h.admitted, 0);
	/* a truncated datagram is malformed, whatever it began with */
	struct rotator_knock t =
	    knock_record("alice", alice_key, sizeof(alice_key), "ssh", 9, "192.0.2.1", 4000, T0);
	t.truncated = true;
	knock_listener_handle(l, &t, T0, MONO0 + 2 * USEC_PER_SEC);
	assert_string_equal(h.reason, "malformed");
	assert_int_equal(h.admitted, 0);
	/* a service dropped: its guard is gone, nothing of it in the status */
	knock_listener_drop_service(l, "web");
	json_t *status = knock_listener_status(l);
	assert_int_equal(json_array_size(json_object_get(status, "services")), 1);
	json_decref(status);
	knock_listener_free(l);
	w->ssh.guard = w->web.guard = NULL;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_a_source_gets_its_rate_and_no_more),
	    cmocka_unit_test(test_an_ipv6_host_is_its_slash_64),
	    cmocka_unit_test(test_a_full_table_refuses_nobody_for_want_of_room),
	    cmocka_unit_test(test_rate_zero_refuses_everything),
	    cmocka_unit_test(test_the_current_epoch_admits_to_its_door),
	    cmocka_unit_test(test_the_grace_epoch_admits_to_its_own_door_until_the_grace_ends),
	    cmocka_unit_test(test_another_port_is_refused_and_the_nonce_stays_unused),
	    cmocka_unit_test(test_the_time_must_be_within_the_window),
	    cmocka_unit_test(test_a_replay_is_refused_while_its_time_is_valid),
	    cmocka_unit_test(test_a_clock_set_back_never_revives_a_forgotten_nonce),
	    cmocka_unit_test(test_a_full_replay_cache_refuses_rather_than_forgets),
	    cmocka_unit_test(test_clients_out_of_the_window_are_swept),
	    cmocka_unit_test(test_the_admit_field_must_be_the_source),
	    cmocka_unit_test(test_refusals_are_summarised_once_a_second_per_reason),
	    cmocka_unit_test(test_status_and_names),
	    cmocka_unit_test_setup_teardown(test_a_valid_knock_admits_its_source_to_its_door,
					    world_setup, world_teardown),
	    cmocka_unit_test_setup_teardown(test_the_mac_binds_the_service, world_setup,
					    world_teardown),
	    cmocka_unit_test_setup_teardown(test_a_wrong_key_or_name_admits_nothing, world_setup,
					    world_teardown),
	    cmocka_unit_test_setup_teardown(test_garbage_is_malformed, world_setup, world_teardown),
	    cmocka_unit_test_setup_teardown(test_a_flood_is_refused_before_any_mac_work,
					    world_setup, world_teardown),
	    cmocka_unit_test_setup_teardown(test_a_failed_admission_is_reported, world_setup,
					    world_teardown),
	    cmocka_unit_test_setup_teardown(
		test_the_listener_names_the_client_of_a_first_connection, world_setup,
		world_teardown),
	    cmocka_unit_test_setup_teardown(test_the_listener_summarises_refusals_once_a_second,
					    world_setup, world_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
