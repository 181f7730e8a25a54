/* SPDX-License-Identifier: MIT */
/* The keyed schedule against the test vectors of docs/schedule.md. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "rotator.h"

static const uint8_t key_0_31[32] = {0,	 1,  2,	 3,  4,	 5,  6,	 7,  8,	 9,  10,
				     11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21,
				     22, 23, 24, 25, 26, 27, 28, 29, 30, 31};
static const uint8_t key_db[16] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
				   0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
#define KEY_SSH "mtd-test-key"

static void test_epoch_is_floor_of_time_over_interval(void **state)
{
	uint64_t e = 0;

	assert_int_equal(schedule_epoch(1700000045, 60, &e), 0);
	assert_int_equal(e, 28333334);
	assert_int_equal(schedule_epoch(1700000039, 60, &e), 0);
	assert_int_equal(e, 28333333);
	assert_int_equal(schedule_epoch(0, 1, &e), 0);
	assert_int_equal(e, 0);
	e = 42;
	assert_int_equal(schedule_epoch(5, 0, &e), -EINVAL);
	assert_int_equal(e, 42); /* untouched on failure */
}

static void test_candidates_match_vector_web(void **state)
{
	static const uint16_t want[12] = {24847, 27447, 24608, 22239, 20346, 25882,
					  23472, 29712, 28457, 23359, 23920, 27441};
	uint16_t got[12];

	assert_int_equal(
	    schedule_candidates(key_0_31, sizeof(key_0_31), "web", 28333334, 20000, 29999, got, 12),
	    0);
	assert_memory_equal(got, want, sizeof(want));
}

static void test_candidates_cover_small_range_exactly_once(void **state)
{
	static const uint16_t want[10] = {40003, 40004, 40000, 40006, 40001,
					  40009, 40005, 40008, 40002, 40007};
	uint16_t got[10];

	assert_int_equal(schedule_candidates((const uint8_t *)KEY_SSH, strlen(KEY_SSH), "ssh",
					     1234567890, 40000, 40009, got, 10),
			 0);
	assert_memory_equal(got, want, sizeof(want));
	/* more candidates than ports in the range is a caller error */
	assert_int_equal(schedule_candidates((const uint8_t *)KEY_SSH, strlen(KEY_SSH), "ssh",
					     1234567890, 40000, 40009, got, 11),
			 -EINVAL);
}

static void test_candidates_depend_on_key_service_and_epoch(void **state)
{
	uint16_t a[4], b[4];

	assert_int_equal(schedule_candidates(key_0_31, 32, "web", 1, 1024, 65535, a, 4), 0);
	assert_int_equal(schedule_candidates(key_0_31, 32, "web", 2, 1024, 65535, b, 4), 0);
	assert_memory_not_equal(a, b, sizeof(a));
	assert_int_equal(schedule_candidates(key_0_31, 32, "weB", 1, 1024, 65535, b, 4), 0);
	assert_memory_not_equal(a, b, sizeof(a));
	assert_int_equal(schedule_candidates(key_0_31, 31, "web", 1, 1024, 65535, b, 4), 0);
	assert_memory_not_equal(a, b, sizeof(a));
	assert_int_equal(schedule_candidates(key_0_31, 32, "web", 1, 1024, 65535, b, 4), 0);
	assert_memory_equal(a, b, sizeof(a));
}

static void test_compute_inside_grace_gives_previous_port(void **state)
{
	static const uint16_t decoys[8] = {20346, 25882, 23472, 29712, 28457, 23359, 23920, 27441};
	struct schedule_params p = {
	    .key = key_0_31,
	    .key_len = 32,
	    .service = "web",
	    .first = 20000,
	    .last = 29999,
	    .interval_sec = 60,
	    .grace_sec = 15,
	    .n_decoys = 8,
	};
	struct schedule_result r;

	assert_int_equal(schedule_compute(&p, 1700000045ULL * 1000000 + 123, &r), 0);
	assert_int_equal(r.epoch, 28333334);
	assert_int_equal(r.port, 24847);
	assert_int_equal(r.prev_port, 24121);
	assert_int_equal(r.next_port, 29585);
	assert_int_equal(r.grace_port, 24121);
	assert_int_equal(r.n_decoys, 8);
	assert_memory_equal(r.decoys, decoys, sizeof(decoys));
	assert_int_equal(r.boundary_usec, 1700000040ULL * 1000000);
	assert_int_equal(r.next_boundary_usec, 1700000100ULL * 1000000);

	/* 30 s into the epoch: grace is over, the rest is the same */
	assert_int_equal(schedule_compute(&p, 1700000070ULL * 1000000, &r), 0);
	assert_int_equal(r.port, 24847);
	assert_int_equal(r.grace_port, 0);
	assert_memory_equal(r.decoys, decoys, sizeof(decoys));
}

static void test_decoys_avoid_every_port_a_client_may_try(void **state)
{
	static const uint16_t decoys[1] = {40007};
	struct schedule_params p = {
	    .key = (const uint8_t *)KEY_SSH,
	    .key_len = strlen(KEY_SSH),
	    .service = "ssh",
	    .first = 40000,
	    .last = 40009,
	    .interval_sec = 1,
	    .grace_sec = 0,
	    .n_decoys = 3,
	};
	struct schedule_result r;

	assert_int_equal(schedule_compute(&p, 1234567890ULL * 1000000, &r), 0);
	assert_int_equal(r.port, 40003);
	assert_int_equal(r.prev_port, 40002);
	assert_int_equal(r.next_port, 40004); /* candidate 1, so not a decoy */
	assert_int_equal(r.grace_port, 0);
	/* 10 ports: 4 in this epoch's client window, 7 more in the windows of
	 * the epochs around it: one port is left to be a decoy. */
	assert_int_equal(r.n_decoys, 1);
	assert_memory_equal(r.decoys, decoys, sizeof(decoys));
}

static bool exclude_53331(uint16_t port, void *userdata)
{
	(*(int *)userdata)++;
	return port == 53331;
}

static void test_excluded_port_moves_to_next_candidate(void **state)
{
	static const uint16_t decoys[4] = {40303, 31032, 45269, 52008};
	int calls = 0;
	struct schedule_params p = {
	    .key = key_db,
	    .key_len = 16,
	    .service = "db",
	    .first = 1024,
	    .last = 65535,
	    .interval_sec = 300,
	    .grace_sec = 30,
	    .n_decoys = 4,
	    .exclude = exclude_53331,
	    .userdata = &calls,
	};
	struct schedule_result r;
	uint16_t port = 0;

	assert_int_equal(schedule_compute(&p, 1700000000ULL * 1000000, &r), 0);
	assert_int_equal(r.epoch, 5666666);
	assert_int_equal(r.port, 58742);
	assert_int_equal(r.prev_port, 55779);
	assert_int_equal(r.next_port, 37174);
	assert_memory_equal(r.decoys, decoys, sizeof(decoys));
	assert_true(calls > 0);

	p.exclude = NULL;
	assert_int_equal(schedule_port(&p, 5666666, &port), 0);
	assert_int_equal(port, 53331);
}

static bool exclude_all(uint16_t port, void *userdata)
{
	return true;
}

static void test_fully_excluded_range_is_an_error(void **state)
{
	struct schedule_params p = {
	    .key = key_db,
	    .key_len = 16,
	    .service = "db",
	    .first = 5000,
	    .last = 5003,
	    .interval_sec = 10,
	    .exclude = exclude_all,
	};
	struct schedule_result r;
	uint16_t port = 7;

	assert_int_equal(schedule_port(&p, 1, &port), -EADDRINUSE);
	assert_int_equal(port, 7);
	assert_int_equal(schedule_compute(&p, 100000000, &r), -EADDRINUSE);
}

static void test_small_range_gives_fewer_decoys(void **state)
{
	struct schedule_params p = {
	    .key = key_db,
	    .key_len = 16,
	    .service = "db",
	    .first = 5000,
	    .last = 5004,
	    .interval_sec = 10,
	    .n_decoys = 8,
	};
	struct schedule_result r;

	assert_int_equal(schedule_compute(&p, 123456789000000ULL, &r), 0);
	assert_true(r.n_decoys <= 4);
	for (size_t i = 0; i < r.n_decoys; i++) {
		assert_true(r.decoys[i] >= 5000 && r.decoys[i] <= 5004);
		assert_int_not_equal(r.decoys[i], r.port);
		assert_int_not_equal(r.decoys[i], r.prev_port);
		assert_int_not_equal(r.decoys[i], r.next_port);
	}
}

static void test_single_port_range(void **state)
{
	uint16_t got = 0;

	assert_int_equal(schedule_candidates(key_db, 16, "x", 9, 65535, 65535, &got, 1), 0);
	assert_int_equal(got, 65535);
}

static void test_invalid_arguments_are_rejected(void **state)
{
	uint16_t got[2];
	char long_name[300];
	struct schedule_params p = {
	    .key = key_db,
	    .key_len = 16,
	    .service = "db",
	    .first = 100,
	    .last = 200,
	    .interval_sec = 10,
	    .grace_sec = 10,
	};
	struct schedule_result r;

	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = 0;
	assert_int_equal(schedule_candidates(key_db, 0, "x", 1, 100, 200, got, 2), -EINVAL);
	assert_int_equal(schedule_candidates(key_db, 16, "", 1, 100, 200, got, 2), -EINVAL);
	assert_int_equal(schedule_candidates(key_db, 16, long_name, 1, 100, 200, got, 2), -EINVAL);
	assert_int_equal(schedule_candidates(key_db, 16, "x", 1, 200, 100, got, 2), -EINVAL);
	assert_int_equal(schedule_candidates(key_db, 16, "x", 1, 0, 100, got, 2), -EINVAL);
	/* grace must be shorter than the interval */
	assert_int_equal(schedule_compute(&p, 0, &r), -EINVAL);
}

static void test_boundaries(void **state)
{
	uint64_t next = 0;

	assert_int_equal(schedule_next_boundary_usec(1700000045ULL * 1000000, 60, &next), 0);
	assert_int_equal(next, 1700000100ULL * 1000000);
	/* exactly on a boundary: the next one is a whole interval away */
	assert_int_equal(schedule_next_boundary_usec(1700000040ULL * 1000000, 60, &next), 0);
	assert_int_equal(next, 1700000100ULL * 1000000);
	assert_int_equal(schedule_next_boundary_usec(5, 0, &next), -EINVAL);
	assert_int_equal(schedule_next_boundary_usec(UINT64_MAX - 1, 60, &next), -ERANGE);

	assert_true(schedule_in_grace(1700000040ULL * 1000000, 60, 15));
	assert_true(schedule_in_grace(1700000054ULL * 1000000 + 999999, 60, 15));
	assert_false(schedule_in_grace(1700000055ULL * 1000000, 60, 15));
	assert_false(schedule_in_grace(1700000040ULL * 1000000, 60, 0));
	assert_false(schedule_in_grace(1700000040ULL * 1000000, 0, 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_epoch_is_floor_of_time_over_interval),
	    cmocka_unit_test(test_candidates_match_vector_web),
	    cmocka_unit_test(test_candidates_cover_small_range_exactly_once),
	    cmocka_unit_test(test_candidates_depend_on_key_service_and_epoch),
	    cmocka_unit_test(test_compute_inside_grace_gives_previous_port),
	    cmocka_unit_test(test_decoys_avoid_every_port_a_client_may_try),
	    cmocka_unit_test(test_excluded_port_moves_to_next_candidate),
	    cmocka_unit_test(test_fully_excluded_range_is_an_error),
	    cmocka_unit_test(test_small_range_gives_fewer_decoys),
	    cmocka_unit_test(test_single_port_range),
	    cmocka_unit_test(test_invalid_arguments_are_rejected),
	    cmocka_unit_test(test_boundaries),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
