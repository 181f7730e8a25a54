/* SPDX-License-Identifier: MIT */
/* Host id ranges for the instances' user namespaces: never one that a host
 * user or group, a subordinate range or a running process already uses, never
 * one that is taken, the lowest free one first, and taken again only after
 * it was given back. No privileges: the allocator reads a fake root. */
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

#include "sandbox.h"

#define FIRST 0x70000000u
#define SLOT(n) (FIRST + (n)*UID_RANGE_SIZE)

static char dir[] = "/tmp/test-uid-range.XXXXXX";

static void write_file(const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int setup(void **state)
{
	char path[256];

	strcpy(dir, "/tmp/test-uid-range.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/etc", dir);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/proc", dir);
	assert_int_equal(mkdir(path, 0755), 0);
	return 0;
}

static int teardown(void **state)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static void test_lowest_free_range_first_and_reused_after_release(void **state)
{
	struct uid_ranges *r = NULL;
	uid_t a, b, c;

	assert_int_equal(uid_ranges_open(dir, FIRST, SLOT(3), &r), 0);
	assert_int_equal(uid_ranges_take(r, &a), 0);
	assert_int_equal(uid_ranges_take(r, &b), 0);
	assert_int_equal(a, SLOT(0));
	assert_int_equal(b, SLOT(1));
	uid_ranges_release(r, a);
	assert_int_equal(uid_ranges_take(r, &c), 0);
	assert_int_equal(c, SLOT(0));
	uid_ranges_free(r);
}

static void test_no_range_while_every_one_is_taken(void **state)
{
	struct uid_ranges *r = NULL;
	uid_t a;
	unsigned excluded, in_use;

	assert_int_equal(uid_ranges_open(dir, FIRST, SLOT(2), &r), 0);
	assert_int_equal(uid_ranges_take(r, &a), 0);
	assert_int_equal(uid_ranges_take(r, &a), 0);
	assert_int_equal(uid_ranges_take(r, &a), -ENOSPC);
	uid_ranges_counts(r, &excluded, &in_use);
	assert_int_equal(excluded, 0);
	assert_int_equal(in_use, 2);
	/* a base that was never handed out changes nothing */
	uid_ranges_release(r, SLOT(0) + 5);
	uid_ranges_release(r, SLOT(7));
	assert_int_equal(uid_ranges_take(r, &a), -ENOSPC);
	uid_ranges_free(r);
}

static void test_host_users_groups_and_subordinate_ranges_are_never_handed_out(void **state)
{
	struct uid_ranges *r = NULL;
	unsigned excluded, in_use;
	uid_t a;
	char text[512];

	/* a user's uid in slot 0, another's gid in slot 1, a group in slot 2 */
	snprintf(text, sizeof(text),
		 "root:x:0:0::/:/bin/sh\nbig:x:%u:100::/:/bin/sh\n"
		 "other:x:1000:%u::/:/bin/sh\nbroken line\nbad:x:12x:1::/:\n",
		 SLOT(0) + 7, SLOT(1) + 65535);
	write_file("etc/passwd", text);
	snprintf(text, sizeof(text), "root:x:0:\ng:x:%u:\n", SLOT(2));
	write_file("etc/group", text);
	/* subordinate ids: slot 3 and 4 (a range across their boundary), slot 5 */
	snprintf(text, sizeof(text), "alice:%u:2\n", SLOT(4) - 1);
	write_file("etc/subuid", text);
	snprintf(text, sizeof(text), "alice:%u:65536\n", SLOT(5));
	write_file("etc/subgid", text);

	assert_int_equal(uid_ranges_open(dir, FIRST, SLOT(7), &r), 0);
	uid_ranges_counts(r, &excluded, &in_use);
	assert_int_equal(excluded, 6);
	assert_int_equal(uid_ranges_take(r, &a), 0);
	assert_int_equal(a, SLOT(6));
	assert_int_equal(uid_ranges_take(r, &a), -ENOSPC);
	uid_ranges_free(r);
}

static void test_ranges_of_running_processes_are_never_handed_out(void **state)
{
	struct uid_ranges *r = NULL;
	char text[512], path[256];
	uid_t a;

	/* a previous agent's instance: its uid in slot 0, its gid in slot 1 */
	snprintf(path, sizeof(path), "%s/proc/4242", dir);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(text, sizeof(text),
		 "Name:\tprobe\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\n"
		 "Uid:\t%u\t%u\t%u\t%u\nGid:\t%u\t%u\t%u\t%u\nFDSize:\t64\n",
		 SLOT(0) + 1000, SLOT(0) + 1000, SLOT(0) + 1000, SLOT(0) + 1000, SLOT(1), SLOT(1),
		 SLOT(1), SLOT(1));
	write_file("proc/4242/status", text);
	/* not a process directory */
	snprintf(path, sizeof(path), "%s/proc/self", dir);
	assert_int_equal(mkdir(path, 0755), 0);

	assert_int_equal(uid_ranges_open(dir, FIRST, SLOT(3), &r), 0);
	assert_int_equal(uid_ranges_take(r, &a), 0);
	assert_int_equal(a, SLOT(2));
	uid_ranges_free(r);
}

static void test_a_region_that_is_not_whole_ranges_is_refused(void **state)
{
	struct uid_ranges *r = NULL;

	assert_int_equal(uid_ranges_open(dir, 0, SLOT(1), &r), -EINVAL);
	assert_int_equal(uid_ranges_open(dir, FIRST + 1, SLOT(1), &r), -EINVAL);
	assert_int_equal(uid_ranges_open(dir, FIRST, FIRST, &r), -EINVAL);
	assert_int_equal(uid_ranges_open(dir, SLOT(2), SLOT(1), &r), -EINVAL);
	assert_null(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_lowest_free_range_first_and_reused_after_release,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_range_while_every_one_is_taken, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(
		test_host_users_groups_and_subordinate_ranges_are_never_handed_out, setup,
		teardown),
	    cmocka_unit_test_setup_teardown(test_ranges_of_running_processes_are_never_handed_out,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_a_region_that_is_not_whole_ranges_is_refused,
					    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
