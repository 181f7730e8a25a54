/* SPDX-License-Identifier: MIT */
/* schedule_client_ports_fast() (one keyed MAC reused for many clients, no
 * record of candidates seen) gives byte for byte the doors and knock ports of
 * schedule_client_port() and schedule_client_knock_port(): with no exclusion,
 * with a few ports excluded, and with nearly every port excluded (where the
 * fast path gives up and the exact one answers). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "schedule.h"

/* excludes ports whose number is divisible by *modulus (1: all but one) */
static bool exclude_mod(uint16_t port, void *userdata)
{
	const unsigned *modulus = userdata;

	if (*modulus == 1)
		return port != 20007; /* only one port left */
	return port % *modulus == 0;
}

static void check_same(unsigned modulus, uint16_t first, uint16_t last)
{
	struct schedule_mac *m = NULL;
	uint8_t key[32];
	char name[32];

	assert_int_equal(schedule_mac_new(&m), 0);
	for (unsigned client = 0; client < 64; client++) {
		uint64_t epochs[3] = {1000000 + client, 1000001 + client, 29000000ULL * client};
		uint16_t doors[3], knocks[3];
		struct schedule_client c;

		for (size_t i = 0; i < sizeof(key); i++)
			key[i] = (uint8_t)(client * 31 + i);
		snprintf(name, sizeof(name), "client-%u", client);
		c = (struct schedule_client){.key = key,
					     .key_len = 16 + client % 17,
					     .service = "web",
					     .client = name,
					     .host_id = "192.0.2.10",
					     .first = first,
					     .last = last};
		assert_int_equal(schedule_client_ports_fast(m, &c, epochs, 3,
							    modulus ? exclude_mod : NULL, &modulus,
							    doors, knocks),
				 0);
		for (size_t i = 0; i < 3; i++) {
			uint16_t door = 0, knock = 0;

			assert_int_equal(schedule_client_port(&c, epochs[i],
							      modulus ? exclude_mod : NULL,
							      &modulus, &door),
					 0);
			assert_int_equal(schedule_client_knock_port(&c, epochs[i], &knock), 0);
			assert_int_equal(doors[i], door);
			assert_int_equal(knocks[i], knock);
		}
	}
	schedule_mac_free(m);
}

static void test_fast_doors_equal_exact_without_exclusion(void **state)
{
	check_same(0, 20000, 29999);
	check_same(0, 40000, 40001);
}

static void test_fast_doors_equal_exact_with_ports_excluded(void **state)
{
	check_same(3, 20000, 29999);
	check_same(2, 20000, 20009);
}

static void test_fast_doors_fall_back_when_almost_all_are_excluded(void **state)
{
	check_same(1, 20000, 20999);
}

static void test_fast_refuses_bad_clients(void **state)
{
	struct schedule_mac *m = NULL;
	uint8_t key[16] = {1};
	uint64_t epoch = 1;
	uint16_t door;
	struct schedule_client c = {.key = key,
				    .key_len = sizeof(key),
				    .service = "web",
				    .client = "-bad",
				    .host_id = "h",
				    .first = 1,
				    .last = 10};

	assert_int_equal(schedule_mac_new(&m), 0);
	assert_int_equal(schedule_client_ports_fast(m, &c, &epoch, 1, NULL, NULL, &door, NULL),
			 -EINVAL);
	c.client = "ok";
	c.host_id = "bad host";
	assert_int_equal(schedule_client_ports_fast(m, &c, &epoch, 1, NULL, NULL, &door, NULL),
			 -EINVAL);
	schedule_mac_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fast_doors_equal_exact_without_exclusion),
	    cmocka_unit_test(test_fast_doors_equal_exact_with_ports_excluded),
	    cmocka_unit_test(test_fast_doors_fall_back_when_almost_all_are_excluded),
	    cmocka_unit_test(test_fast_refuses_bad_clients),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
