/* SPDX-License-Identifier: MIT */
/* Where the cgroup hierarchies are, from sample /proc/self/mountinfo and
 * /proc/self/cgroup texts of unified, hybrid and namespaced hosts. */
#include <errno.h>
#include <fcntl.h>
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

/* Debian 12 under systemd, unified: the agent in its own service cgroup. */
static const char unified_mountinfo[] =
    "22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n"
    "23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw\n"
    "24 22 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw\n"
    "26 24 0:24 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 "
    "rw,nsdelegate,memory_recursiveprot\n"
    "27 24 0:25 / /sys/fs/pstore rw,nosuid,nodev,noexec,relatime shared:5 - pstore pstore rw\n";
static const char unified_self[] = "0::/system.slice/mtd-agent.service\n";

/* The development host: v1 controllers, cgroup2 at /sys/fs/cgroup/unified. */
static const char hybrid_mountinfo[] =
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
    "33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n"
    "34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n"
    "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
    "36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices\n"
    "39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
    "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
    "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
static const char hybrid_self[] = "9:name=systemd:/\n"
				  "8:pids:/\n"
				  "4:memory:/process_api/3aef\n"
				  "3:cpuset:/\n"
				  "2:cpuacct:/\n"
				  "1:cpu:/\n"
				  "0::/\n";

/* systemd's hybrid layout: cpu and cpuacct joined, optional fields present. */
static const char hybrid_joined_mountinfo[] =
    "30 24 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:4 - tmpfs tmpfs ro,mode=755\n"
    "31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:5 - cgroup2 "
    "cgroup2 rw,nsdelegate\n"
    "32 30 0:28 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:6 - cgroup "
    "cgroup rw,xattr,name=systemd\n"
    "35 30 0:31 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:9 - cgroup "
    "cgroup rw,cpu,cpuacct\n"
    "36 30 0:32 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:10 - cgroup "
    "cgroup rw,memory\n"
    "37 30 0:33 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:11 - cgroup "
    "cgroup rw,pids\n";
static const char hybrid_joined_self[] = "11:pids:/system.slice/mtd-agent.service\n"
					 "5:memory:/system.slice/mtd-agent.service\n"
					 "3:cpu,cpuacct:/system.slice/mtd-agent.service\n"
					 "1:name=systemd:/system.slice/mtd-agent.service\n"
					 "0::/system.slice/mtd-agent.service\n";

static void test_unified_host_uses_cgroup2_for_every_controller(void **state)
{
	struct cgroup_layout l;

	assert_int_equal(cgroup_layout_parse(unified_mountinfo, unified_self,
					     "cpuset cpu io memory hugetlb pids rdma misc\n", &l),
			 0);
	assert_string_equal(l.unified, "/sys/fs/cgroup/system.slice/mtd-agent.service");
	for (int c = 0; c < _CGROUP_CONTROLLER_MAX; c++) {
		assert_true(l.unified_has[c]);
		assert_null(l.v1[c]);
	}
	cgroup_layout_done(&l);
}

static void test_unified_host_without_controllers_has_none(void **state)
{
	struct cgroup_layout l;

	assert_int_equal(cgroup_layout_parse(unified_mountinfo, unified_self, "", &l), 0);
	for (int c = 0; c < _CGROUP_CONTROLLER_MAX; c++) {
		assert_false(l.unified_has[c]);
		assert_null(l.v1[c]);
	}
	cgroup_layout_done(&l);
}

static void test_hybrid_host_puts_limits_on_v1_and_freeze_on_cgroup2(void **state)
{
	struct cgroup_layout l;

	assert_int_equal(cgroup_layout_parse(hybrid_mountinfo, hybrid_self, "hugetlb\n", &l), 0);
	assert_string_equal(l.unified, "/sys/fs/cgroup/unified");
	assert_false(l.unified_has[CGROUP_MEMORY]);
	assert_string_equal(l.v1[CGROUP_MEMORY], "/sys/fs/cgroup/memory/process_api/3aef");
	assert_string_equal(l.v1[CGROUP_PIDS], "/sys/fs/cgroup/pids");
	/* "cpu", not "cpuacct" or "cpuset" */
	assert_string_equal(l.v1[CGROUP_CPU], "/sys/fs/cgroup/cpu");
	cgroup_layout_done(&l);
}

static void test_hybrid_joined_cpu_cpuacct_and_optional_fields(void **state)
{
	struct cgroup_layout l;

	assert_int_equal(cgroup_layout_parse(hybrid_joined_mountinfo, hybrid_joined_self, NULL, &l),
			 0);
	assert_string_equal(l.unified, "/sys/fs/cgroup/unified/system.slice/mtd-agent.service");
	assert_string_equal(l.v1[CGROUP_CPU],
			    "/sys/fs/cgroup/cpu,cpuacct/system.slice/mtd-agent.service");
	assert_string_equal(l.v1[CGROUP_MEMORY],
			    "/sys/fs/cgroup/memory/system.slice/mtd-agent.service");
	assert_string_equal(l.v1[CGROUP_PIDS],
			    "/sys/fs/cgroup/pids/system.slice/mtd-agent.service");
	cgroup_layout_done(&l);
}

static void test_mount_root_below_hierarchy_root_is_stripped(void **state)
{
	/* a bind mount of a subtree (e.g. a container's view) */
	static const char mi[] = "50 40 0:38 /machine/ct1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
	static const char self[] = "0::/machine/ct1/svc\n";
	struct cgroup_layout l;

	assert_int_equal(cgroup_layout_parse(mi, self, "memory pids cpu", &l), 0);
	assert_string_equal(l.unified, "/sys/fs/cgroup/svc");
	cgroup_layout_done(&l);
}

static void test_escaped_mount_point_is_unescaped(void **state)
{
	static const char mi[] = "50 40 0:38 / /mnt/my\\040cgroups rw - cgroup2 cgroup2 rw\n";
	struct cgroup_layout l;

	assert_int_equal(cgroup_layout_parse(mi, "0::/\n", "", &l), 0);
	assert_string_equal(l.unified, "/mnt/my cgroups");
	cgroup_layout_done(&l);
}

static void test_first_cgroup2_mount_wins(void **state)
{
	static const char mi[] = "41 31 0:38 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
				 "90 22 0:38 / /tmp/other rw - cgroup2 cgroup2 rw\n";
	struct cgroup_layout l;

	assert_int_equal(cgroup_layout_parse(mi, "0::/a\n", "", &l), 0);
	assert_string_equal(l.unified, "/sys/fs/cgroup/a");
	cgroup_layout_done(&l);
}

static void test_no_cgroup2_is_enoent_and_garbage_is_einval(void **state)
{
	struct cgroup_layout l = {0};

	/* pure v1 host: no CLONE_INTO_CGROUP, no cgroup.kill: refused */
	assert_int_equal(cgroup_layout_parse("35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup "
					     "cgroup rw,memory\n",
					     "4:memory:/\n", NULL, &l),
			 -ENOENT);
	assert_int_equal(cgroup_layout_parse(unified_mountinfo, "garbage\n", NULL, &l), -EINVAL);
	assert_int_equal(cgroup_layout_parse("1 2 3\n", unified_self, NULL, &l), -EINVAL);
	/* no line for cgroup2 in /proc/self/cgroup */
	assert_int_equal(cgroup_layout_parse(unified_mountinfo, "4:memory:/\n", NULL, &l), -ENOENT);
	assert_null(l.unified);
}

static void put(const char *dir, const char *file, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	f = fopen(path, "we");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void get(const char *dir, const char *file, char *buf, size_t size)
{
	char path[512];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	f = fopen(path, "re");
	assert_non_null(f);
	n = fread(buf, 1, size - 1, f);
	buf[n] = '\0';
	fclose(f);
}

/* The unified delegation sequence against a fake cgroup tree of plain files:
 * the agent's processes go to AGENT/agent, then the controllers are enabled
 * in AGENT and AGENT/NAME; a hybrid layout enables nothing in cgroup2. */
static void test_unified_root_moves_agent_to_leaf_then_enables_controllers(void **state)
{
	char tmpl[] = "/tmp/mtd-cgroup-unit.XXXXXX", sub[600], buf[256];
	struct cgroup_layout l = {0};
	struct cgroup_root *r = NULL;

	assert_non_null(mkdtemp(tmpl));
	put(tmpl, "cgroup.procs", "4242\n");
	put(tmpl, "cgroup.events", "populated 1\nfrozen 0\n"); /* not the root cgroup */
	put(tmpl, "cgroup.subtree_control", "");
	snprintf(sub, sizeof(sub), "%s/agent", tmpl);
	assert_int_equal(mkdir(sub, 0755), 0);
	put(sub, "cgroup.procs", "");
	snprintf(sub, sizeof(sub), "%s/mtd-unit", tmpl);
	assert_int_equal(mkdir(sub, 0755), 0);
	put(sub, "cgroup.subtree_control", "");

	l.unified = strdup(tmpl);
	for (int c = 0; c < _CGROUP_CONTROLLER_MAX; c++)
		l.unified_has[c] = true;
	assert_int_equal(cgroup_root_open_layout(&l, "mtd-unit", &r), 0);
	assert_false(cgroup_root_is_hybrid(r));
	assert_string_equal(cgroup_root_path(r), sub);
	snprintf(sub, sizeof(sub), "%s/agent", tmpl);
	get(sub, "cgroup.procs", buf, sizeof(buf));
	assert_string_equal(buf, "4242");
	get(tmpl, "cgroup.subtree_control", buf, sizeof(buf));
	assert_string_equal(buf, "+memory +pids +cpu");
	snprintf(sub, sizeof(sub), "%s/mtd-unit", tmpl);
	get(sub, "cgroup.subtree_control", buf, sizeof(buf));
	assert_string_equal(buf, "+memory +pids +cpu");
	cgroup_root_free(r);

	/* names that would leave the agent's subtree are refused */
	l.unified = strdup(tmpl);
	assert_int_equal(cgroup_root_open_layout(&l, "../x", &r), -EINVAL);
	cgroup_layout_done(&l);

	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpl);
	assert_int_equal(system(cmd), 0);
}

static void test_controller_names(void **state)
{
	assert_string_equal(cgroup_controller_name(CGROUP_MEMORY), "memory");
	assert_string_equal(cgroup_controller_name(CGROUP_PIDS), "pids");
	assert_string_equal(cgroup_controller_name(CGROUP_CPU), "cpu");
	assert_null(cgroup_controller_name(_CGROUP_CONTROLLER_MAX));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_unified_host_uses_cgroup2_for_every_controller),
	    cmocka_unit_test(test_unified_host_without_controllers_has_none),
	    cmocka_unit_test(test_hybrid_host_puts_limits_on_v1_and_freeze_on_cgroup2),
	    cmocka_unit_test(test_hybrid_joined_cpu_cpuacct_and_optional_fields),
	    cmocka_unit_test(test_mount_root_below_hierarchy_root_is_stripped),
	    cmocka_unit_test(test_escaped_mount_point_is_unescaped),
	    cmocka_unit_test(test_first_cgroup2_mount_wins),
	    cmocka_unit_test(test_no_cgroup2_is_enoent_and_garbage_is_einval),
	    cmocka_unit_test(test_unified_root_moves_agent_to_leaf_then_enables_controllers),
	    cmocka_unit_test(test_controller_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
