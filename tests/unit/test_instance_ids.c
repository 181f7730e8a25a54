/* SPDX-License-Identifier: MIT */
/* Instance numbers are never used twice on a host: not after a clean
 * restart, not after a kill, not after a state directory that only holds
 * quarantined evidence; a damaged file stops the start instead of guessing. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "fleet_internal.h"

static char dir[] = "/tmp/test-instance-ids.XXXXXX";

static void write_file(const char *name, const char *text)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int setup(void **state)
{
	strcpy(dir, "/tmp/test-instance-ids.XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static uint64_t next(struct instance_ids *ids)
{
	uint64_t n = 0;

	assert_int_equal(instance_ids_next(ids, &n), 0);
	return n;
}

static void test_numbers_continue_across_restarts_and_kills(void **state)
{
	struct instance_ids *ids;
	uint64_t first_run_last = 0;

	assert_int_equal(instance_ids_open(dir, &ids), 0);
	assert_int_equal(next(ids), 1);
	for (int i = 0; i < INSTANCE_IDS_BLOCK + 5; i++) /* crosses a block */
		first_run_last = next(ids);
	instance_ids_free(ids); /* or killed: nothing is written at exit */

	assert_int_equal(instance_ids_open(dir, &ids), 0);
	assert_true(next(ids) > first_run_last);
	instance_ids_free(ids);
}

static void test_first_start_begins_above_quarantined_evidence(void **state)
{
	struct instance_ids *ids;
	char path[128];

	snprintf(path, sizeof(path), "%s/quarantine", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/quarantine/web-41", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/quarantine/my-db-7", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(instance_ids_open(dir, &ids), 0);
	assert_int_equal(next(ids), 42);
	instance_ids_free(ids);
}

static void test_damaged_file_is_refused(void **state)
{
	static const char *const bad[] = {"", "12", "-5\n", "012\n", "1x\n", "999999999999999\n"};
	struct instance_ids *ids = NULL;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_file("instance-ids", bad[i]);
		assert_int_equal(instance_ids_open(dir, &ids), -EBADMSG);
	}
	write_file("instance-ids", "3000\n");
	assert_int_equal(instance_ids_open(dir, &ids), 0);
	assert_int_equal(next(ids), 3000);
	instance_ids_free(ids);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_numbers_continue_across_restarts_and_kills, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_first_start_begins_above_quarantined_evidence,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_damaged_file_is_refused, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
