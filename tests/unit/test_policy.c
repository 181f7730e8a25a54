/* SPDX-License-Identifier: MIT */
/* Policy files and sets: the corpora under tests/policy/ (bad files with their
 * exact expected error lines, bad sets, good files), defaults, every key of a
 * full policy, key files and the JSON rendering. Runs from the repo root. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/capability.h>

#include <cmocka.h>
#include <jansson.h>

#include "policy.h"
#include "policy_internal.h"

static char *read_all(const char *path)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t len = 0;

	if (!f)
		fail_msg("cannot open %s: %s", path, strerror(errno));
	buf = malloc(1 << 20);
	assert_non_null(buf);
	len = fread(buf, 1, (1 << 20) - 1, f);
	buf[len] = 0;
	fclose(f);
	return buf;
}

/* All error lines, each ending in "\n". */
static char *render_errors(const struct policy_errors *errors)
{
	size_t size = 1;
	char *out = calloc(1, 1);

	assert_non_null(out);
	for (size_t i = 0; i < errors->count; i++) {
		char *line = policy_error_format(&errors->items[i]);
		assert_non_null(line);
		size += strlen(line) + 1;
		out = realloc(out, size);
		assert_non_null(out);
		strcat(out, line);
		strcat(out, "\n");
		free(line);
	}
	return out;
}

static int load(const char *path, struct policy_set **ret_set, struct policy_errors *errors)
{
	const char *paths[] = {path};
	return policy_set_load(paths, 1, ret_set, errors);
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

static void test_bad_corpus_reports_exact_errors(void **state)
{
	struct dirent **de;
	int n = scandir("tests/policy/bad", &de, NULL, by_name);
	unsigned files = 0;

	assert_true(n > 0);
	for (int i = 0; i < n; i++) {
		char path[512], expected_path[512];
		struct policy_set *set = NULL;
		struct policy_errors errors = {0};
		char *want, *got;
		int r;

		if (!ends_with(de[i]->d_name, ".policy")) {
			free(de[i]);
			continue;
		}
		snprintf(path, sizeof(path), "tests/policy/bad/%s", de[i]->d_name);
		snprintf(expected_path, sizeof(expected_path), "tests/policy/bad/%.*s.expected",
			 (int)(strlen(de[i]->d_name) - 7), de[i]->d_name);
		free(de[i]);

		r = load(path, &set, &errors);
		assert_int_equal(r, -EINVAL);
		assert_null(set);
		assert_true(errors.count > 0);
		want = read_all(expected_path);
		got = render_errors(&errors);
		if (strcmp(want, got) != 0)
			fail_msg("%s:\n--- expected\n%s--- got\n%s", path, want, got);
		free(want);
		free(got);
		policy_errors_free(&errors);
		files++;
	}
	free(de);
	assert_true(files >= 30);
}

static void test_bad_corpus_same_errors_from_buffer(void **state)
{
	/* policy_parse_buffer (the fuzzer's entry) agrees with the file loader. */
	static const char *const names[] = {"many-errors", "bad-egress", "nul-byte", "crlf-and-bom",
					    "host-with-managed-keys"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char path[256], expected[256];
		struct policy *p = NULL;
		struct policy_errors errors = {0};
		struct stat st;
		char *text, *want, *got;
		int fd;

		snprintf(path, sizeof(path), "tests/policy/bad/%s.policy", names[i]);
		snprintf(expected, sizeof(expected), "tests/policy/bad/%s.expected", names[i]);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		assert_true(fd >= 0);
		assert_int_equal(fstat(fd, &st), 0);
		text = malloc((size_t)st.st_size + 1);
		assert_non_null(text);
		assert_int_equal(read(fd, text, (size_t)st.st_size), st.st_size);
		close(fd);
		assert_int_equal(policy_parse_buffer(path, text, (size_t)st.st_size, &p, &errors),
				 -EINVAL);
		assert_null(p);
		want = read_all(expected);
		got = render_errors(&errors);
		assert_string_equal(got, want);
		free(text);
		free(want);
		free(got);
		policy_errors_free(&errors);
	}
}

static void test_bad_sets_report_exact_errors(void **state)
{
	static const char *const sets[] = {"duplicate-name", "overlapping-ports",
					   "overlapping-pools", "mixed"};
	for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
		char dir[256], expected[300];
		struct policy_set *set = NULL;
		struct policy_errors errors = {0};
		char *want, *got;

		snprintf(dir, sizeof(dir), "tests/policy/bad-sets/%s", sets[i]);
		snprintf(expected, sizeof(expected), "%s/expected", dir);
		assert_int_equal(load(dir, &set, &errors), -EINVAL);
		assert_null(set);
		want = read_all(expected);
		got = render_errors(&errors);
		if (strcmp(want, got) != 0)
			fail_msg("%s:\n--- expected\n%s--- got\n%s", dir, want, got);
		free(want);
		free(got);
		policy_errors_free(&errors);
	}
}

static void test_duplicate_name_blames_later_file(void **state)
{
	struct policy_set *set = NULL;
	struct policy_errors errors = {0};

	assert_int_equal(load("tests/policy/bad-sets/duplicate-name", &set, &errors), -EINVAL);
	assert_int_equal(errors.count, 1);
	assert_string_equal(errors.items[0].file, "tests/policy/bad-sets/duplicate-name/b.policy");
	assert_int_equal(errors.items[0].line, 2);
	assert_string_equal(errors.items[0].section, "Service");
	assert_string_equal(errors.items[0].key, "Name");
	assert_non_null(strstr(errors.items[0].reason, "duplicate-name/a.policy:2"));
	policy_errors_free(&errors);
}

static void test_good_directory_loads_sorted_by_name(void **state)
{
	struct policy_set *set = NULL;
	struct policy_errors errors = {0};

	assert_int_equal(load("tests/policy/good", &set, &errors), 0);
	assert_int_equal(errors.count, 0);
	assert_non_null(set);
	assert_int_equal(set->count, 4);
	assert_string_equal(set->policies[0]->name, "full");
	assert_string_equal(set->policies[1]->name, "host");
	assert_string_equal(set->policies[2]->name, "minimal");
	assert_string_equal(set->policies[3]->name, "spacing");
	assert_ptr_equal(policy_set_find(set, "minimal"), set->policies[2]);
	assert_null(policy_set_find(set, "nope"));
	policy_set_free(set);
}

static void test_examples_load(void **state)
{
	struct policy_set *set = NULL;
	struct policy_errors errors = {0};
	const struct policy *web, *ssh;

	assert_int_equal(load("policies/examples", &set, &errors), 0);
	assert_true(set->count >= 2);
	web = policy_set_find(set, "web");
	ssh = policy_set_find(set, "ssh");
	assert_non_null(web);
	assert_non_null(ssh);
	assert_string_equal(web->key_file, "policies/examples/keys/web.key");
	assert_true(ssh->has_backend);
	assert_int_equal(ssh->backend.port, 22);
	policy_set_free(set);
}

static void test_empty_directory_is_an_empty_set(void **state)
{
	char dir[] = "/tmp/mtd-policy-empty-XXXXXX";
	struct policy_set *set = NULL;
	struct policy_errors errors = {0};

	assert_non_null(mkdtemp(dir));
	assert_int_equal(load(dir, &set, &errors), 0);
	assert_non_null(set);
	assert_int_equal(set->count, 0);
	assert_int_equal(errors.count, 0);
	assert_null(policy_set_find(set, "web"));
	policy_set_free(set);
	rmdir(dir);
}

static void test_missing_path_is_an_error(void **state)
{
	struct policy_set *set = NULL;
	struct policy_errors errors = {0};
	char *s;

	assert_int_equal(load("tests/policy/does-not-exist", &set, &errors), -EINVAL);
	assert_null(set);
	assert_int_equal(errors.count, 1);
	s = policy_error_format(&errors.items[0]);
	assert_string_equal(s, "tests/policy/does-not-exist: cannot access: No such file or "
			       "directory");
	free(s);
	policy_errors_free(&errors);
}

static void test_unreadable_file_is_an_error(void **state)
{
	char dir[] = "/tmp/mtd-policy-unreadable-XXXXXX", path[128];
	int fd, status;
	pid_t pid;

	assert_non_null(mkdtemp(dir));
	assert_int_equal(chmod(dir, 0755), 0);
	snprintf(path, sizeof(path), "%s/x.policy", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0000);
	assert_true(fd >= 0);
	close(fd);
	/* Root reads anything: check as nobody in a child. */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct policy_set *set = NULL;
		struct policy_errors errors = {0};
		bool ok;
		if (geteuid() == 0 && (setgid(65534) < 0 || setuid(65534) < 0))
			_exit(2);
		ok = load(dir, &set, &errors) == -EINVAL && !set && errors.count == 1 &&
		     errors.items[0].line == 0 &&
		     strcmp(errors.items[0].reason, "cannot read: Permission denied") == 0;
		policy_errors_free(&errors);
		_exit(ok ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	unlink(path);
	rmdir(dir);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static struct policy *parse_ok(const char *name, const char *text)
{
	struct policy *p = NULL;
	struct policy_errors errors = {0};
	int r = policy_parse_buffer(name, text, strlen(text), &p, &errors);
	if (r != 0) {
		char *s = render_errors(&errors);
		fail_msg("parse failed (%d):\n%s", r, s);
	}
	assert_int_equal(errors.count, 0);
	return p;
}

static void test_defaults_of_managed_service(void **state)
{
	char *text = read_all("tests/policy/good/minimal-managed.policy");
	struct policy *p = parse_ok("tests/policy/good/minimal-managed.policy", text);

	assert_string_equal(p->name, "minimal");
	assert_true(p->has_listen_port);
	assert_int_equal(p->listen_port, 8080);
	assert_int_equal(p->listen_proto, POLICY_PROTO_TCP);
	assert_false(p->has_backend);
	assert_null(p->user);
	assert_true(p->max_lifetime_usec == 0);
	assert_true(p->drain_timeout_usec == 0); /* no drain: cut at once */
	assert_int_equal(p->health_check, HEALTH_CHECK_TCP);
	assert_true(p->health_interval_usec == 5 * USEC_PER_SEC);
	assert_true(p->health_timeout_usec == USEC_PER_SEC);
	assert_int_equal(p->health_failures, 3);
	assert_int_equal(p->on_compromise, COMPROMISE_QUARANTINE);
	assert_true(p->quarantine_max_bytes == UINT64_C(256) << 20);
	assert_int_equal(p->replace_burst, 5);
	assert_true(p->replace_interval_usec == USEC_PER_MINUTE);
	assert_int_equal(p->standby_instances, 0);
	assert_false(p->allow_devices);
	assert_false(p->allow_setuid);
	assert_true(p->interval_usec == 60 * USEC_PER_SEC);
	assert_true(p->grace_usec == 15 * USEC_PER_SEC);
	assert_string_equal(p->key_file, "tests/policy/good/../keys/test.key");
	assert_int_equal(p->decoys, 0);
	assert_true(p->decoy_block_usec == 10 * USEC_PER_MINUTE);
	assert_int_equal(p->address_pool_count, 1); /* required of a managed service */
	assert_false(p->local_access);
	assert_int_equal(p->system_calls.count, 1);
	assert_string_equal(p->system_calls.items[0], "@system-service");
	assert_int_equal(p->violation_system_calls.count, 0);
	assert_int_equal(p->syscall_default, SYSCALL_DEFAULT_ERRNO);
	assert_int_equal(p->on_syscall_violation, SYSCALL_VIOLATION_QUARANTINE);
	assert_int_equal(p->writable.count, 0);
	assert_int_equal(p->egress_count, 0);
	assert_int_equal(p->egress_alert_threshold, 10);
	assert_true(p->capabilities == 0);
	assert_true(p->memory_max_bytes == UINT64_C(512) << 20);
	assert_true(p->tasks_max == 512);
	assert_int_equal(p->cpu_quota_percent, 0);
	assert_true(p->writable_size_bytes == UINT64_C(64) << 20);
	assert_true(p->limit_nofile == 1024);
	assert_false(p->private_users);
	policy_free(p);
	free(text);
}

static void test_defaults_of_host_service(void **state)
{
	char *text = read_all("tests/policy/good/minimal-host.policy");
	struct policy *p = parse_ok("tests/policy/good/minimal-host.policy", text);

	assert_true(p->has_backend);
	assert_int_equal(p->backend.family, AF_INET);
	assert_int_equal(p->backend.port, 22);
	assert_null(p->snapshot);
	assert_int_equal(p->exec_argv.count, 0);
	assert_int_equal(p->health_check, HEALTH_CHECK_NONE);
	assert_int_equal(p->system_calls.count, 0);
	policy_free(p);
	free(text);
}

static void test_every_key_of_full_policy(void **state)
{
	char *text = read_all("tests/policy/good/full.policy");
	struct policy *p = parse_ok("tests/policy/good/full.policy", text);
	char buf[64];

	/* [Service] */
	assert_string_equal(p->snapshot, "/var/lib/mtd/snapshots/full");
	assert_string_equal(p->snapshot_key, "/etc/mtd/keys/snapshot.pub");
	assert_int_equal(p->exec_argv.count, 5); /* "# trailing comment" dropped */
	assert_string_equal(p->exec_argv.items[0], "/usr/sbin/nginx");
	assert_string_equal(p->exec_argv.items[2], "daemon off;");
	assert_string_equal(p->exec_argv.items[4], "/etc/nginx/my conf");
	assert_null(p->exec_argv.items[5]);
	assert_int_equal(p->listen_port, 53);
	assert_int_equal(p->listen_proto, POLICY_PROTO_UDP);
	assert_string_equal(p->user, "www-data");
	assert_string_equal(p->group, "1000");
	assert_true(p->max_lifetime_usec == 150 * USEC_PER_MINUTE);
	assert_true(p->max_lifetime_jitter_usec == 5 * USEC_PER_MINUTE);
	assert_true(p->drain_timeout_usec == 45 * USEC_PER_SEC);
	assert_int_equal(p->health_check, HEALTH_CHECK_NONE);
	assert_true(p->health_interval_usec == 10 * USEC_PER_SEC);
	assert_true(p->health_timeout_usec == 500 * USEC_PER_MSEC);
	assert_int_equal(p->health_failures, 5);
	assert_int_equal(p->on_compromise, COMPROMISE_KILL);
	assert_true(p->quarantine_max_bytes == UINT64_C(1) << 30);
	assert_int_equal(p->replace_burst, 10);
	assert_true(p->replace_interval_usec == 5 * USEC_PER_MINUTE);
	assert_int_equal(p->standby_instances, 2);
	assert_true(p->allow_devices);
	assert_true(p->allow_setuid);
	/* [Rotation] */
	assert_int_equal(p->public_ports.first, 22000);
	assert_int_equal(p->public_ports.last, 22999);
	assert_true(p->interval_usec == 90 * USEC_PER_SEC);
	assert_true(p->grace_usec == 20 * USEC_PER_SEC);
	assert_int_equal(p->decoys, 16);
	assert_true(p->decoy_block_usec == USEC_PER_HOUR);
	assert_int_equal(p->address_pool_count, 2);
	assert_string_equal(policy_format_cidr(buf, sizeof(buf), &p->address_pools[0]),
			    "10.213.7.0/24");
	assert_int_equal(p->address_pools[1].family, AF_INET6);
	assert_true(p->local_access);
	/* [Envelope] */
	assert_int_equal(p->system_calls.count, 4);
	assert_string_equal(p->system_calls.items[0], "@basic-io");
	assert_string_equal(p->system_calls.items[3], "write");
	assert_int_equal(p->violation_system_calls.count, 2);
	assert_int_equal(p->syscall_default, SYSCALL_DEFAULT_KILL);
	assert_int_equal(p->on_syscall_violation, SYSCALL_VIOLATION_ERRNO);
	assert_int_equal(p->writable.count, 3);
	assert_string_equal(p->writable.items[2], "/tmp");
	assert_int_equal(p->egress_count, 4);
	assert_int_equal(p->egress[0].proto, POLICY_PROTO_UDP);
	assert_false(p->egress[1].has_destination);
	assert_int_equal(p->egress[2].ports.last, 8100);
	assert_int_equal(p->egress[3].destination.family, AF_INET6);
	assert_int_equal(p->egress_alert_threshold, 100);
	assert_true(p->capabilities == ((UINT64_C(1) << CAP_NET_BIND_SERVICE) |
					(UINT64_C(1) << CAP_SETUID) | (UINT64_C(1) << CAP_SETGID)));
	assert_true(p->memory_max_bytes == UINT64_C(1) << 30);
	assert_true(p->tasks_max == 0);
	assert_int_equal(p->cpu_quota_percent, 150);
	assert_true(p->writable_size_bytes == UINT64_C(128) << 20);
	assert_true(p->limit_nofile == 65536);
	assert_true(p->private_users);
	policy_free(p);
	free(text);
}

static void test_json_renders_readable_values(void **state)
{
	char *text = read_all("tests/policy/good/full.policy");
	struct policy *p = parse_ok("tests/policy/good/full.policy", text);
	json_t *j = policy_to_json(p);
	json_t *svc, *rot, *env;

	assert_non_null(j);
	svc = json_object_get(j, "service");
	rot = json_object_get(j, "rotation");
	env = json_object_get(j, "envelope");
	assert_string_equal(json_string_value(json_object_get(svc, "name")), "full");
	assert_string_equal(json_string_value(json_object_get(svc, "kind")), "managed");
	assert_string_equal(json_string_value(json_object_get(svc, "listen_port")), "53/udp");
	assert_string_equal(json_string_value(json_object_get(svc, "max_lifetime")), "2h 30min");
	assert_true(json_integer_value(json_object_get(svc, "max_lifetime_usec")) ==
		    (json_int_t)(150 * USEC_PER_MINUTE));
	assert_string_equal(json_string_value(json_object_get(svc, "quarantine_max")), "1G");
	assert_string_equal(json_string_value(json_object_get(svc, "on_compromise")), "kill");
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(rot, "public_ports"), "text")),
	    "22000-22999");
	assert_string_equal(json_string_value(json_object_get(rot, "interval")), "1min 30s");
	assert_string_equal(
	    json_string_value(json_array_get(json_object_get(rot, "address_pools"), 1)),
	    "fd00:213:7::/64");
	assert_string_equal(
	    json_string_value(json_array_get(json_object_get(env, "capabilities"), 0)),
	    "CAP_SETGID");
	assert_int_equal(json_array_size(json_object_get(env, "capabilities")), 3);
	assert_int_equal(json_array_size(json_object_get(env, "egress")), 4);
	assert_string_equal(json_string_value(json_object_get(
				json_array_get(json_object_get(env, "egress"), 0), "destination")),
			    "192.0.2.53/32");
	assert_true(json_is_null(
	    json_object_get(json_array_get(json_object_get(env, "egress"), 1), "destination")));
	assert_string_equal(json_string_value(json_object_get(env, "tasks_max")), "infinity");
	assert_string_equal(json_string_value(json_object_get(env, "cpu_quota")), "150%");
	assert_string_equal(json_string_value(json_object_get(env, "system_call_default")), "kill");
	assert_int_equal(json_array_size(json_object_get(env, "system_calls")), 4);
	json_decref(j);
	policy_free(p);
	free(text);
}

static void test_key_file_is_read_as_hex(void **state)
{
	uint8_t *key = NULL;
	size_t len = 0;
	char *text = read_all("tests/policy/keys/test.key");
	const char *hex = strchr(text, '\n') + 1;
	unsigned first;

	assert_int_equal(policy_read_key_file("tests/policy/keys/test.key", &key, &len, NULL), 0);
	assert_int_equal(len, 32);
	assert_int_equal(sscanf(hex, "%2x", &first), 1);
	assert_int_equal(key[0], first);
	free(key);
	key = NULL;
	assert_int_equal(policy_read_key_file("tests/policy/keys/short.key", &key, &len, NULL),
			 -EINVAL);
	assert_int_equal(policy_read_key_file("tests/policy/keys", &key, &len, NULL), -EINVAL);
	assert_int_equal(policy_read_key_file("tests/policy/keys/none.key", &key, &len, NULL),
			 -ENOENT);
	assert_null(key);
	free(text);
}

/* A key group or others may read, or that another user owns, is refused
 * with the file, its owner and its mode, by the reader and by the whole-set
 * validation (`mtdctl policy check`). */
static void test_key_file_must_be_owner_only(void **state)
{
	char dir[] = "/tmp/mtd-test-key.XXXXXX";
	char key_path[64], policy_path[64], *error = NULL;
	const char *const paths[1] = {dir};
	struct policy_set *set = NULL;
	struct policy_errors errors = {0};
	uint8_t *key = NULL;
	size_t len = 0;
	FILE *f;

	assert_non_null(mkdtemp(dir));
	snprintf(key_path, sizeof(key_path), "%s/web.key", dir);
	snprintf(policy_path, sizeof(policy_path), "%s/web.policy", dir);
	f = fopen(key_path, "w");
	assert_non_null(f);
	fputs("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n", f);
	fclose(f);
	f = fopen(policy_path, "w");
	assert_non_null(f);
	fputs("[Service]\nName=web\nBackend=10.0.0.1:80\n[Rotation]\nPublicPorts=100-200\n"
	      "KeyFile=web.key\n",
	      f);
	fclose(f);

	assert_int_equal(chmod(key_path, 0644), 0);
	assert_int_equal(policy_read_key_file(key_path, &key, &len, &error), -EPERM);
	assert_null(key);
	assert_non_null(strstr(error, "not be accessible to group or others"));
	assert_non_null(strstr(error, "mode 0644"));
	assert_non_null(strstr(error, key_path));
	free(error);
	error = NULL;

	assert_int_equal(policy_set_load(paths, 1, &set, &errors), -EINVAL);
	assert_int_equal(errors.count, 1);
	assert_string_equal(errors.items[0].key, "KeyFile");
	assert_int_equal(errors.items[0].line, 6);
	assert_non_null(strstr(errors.items[0].reason, "mode 0644"));
	policy_errors_free(&errors);

	assert_int_equal(chmod(key_path, 0660), 0);
	assert_int_equal(policy_read_key_file(key_path, &key, &len, NULL), -EPERM);
	assert_int_equal(chmod(key_path, 0606), 0);
	assert_int_equal(policy_read_key_file(key_path, &key, &len, NULL), -EPERM);

	if (geteuid() == 0) {
		/* Root reads only root's secrets: another user could rewrite it. */
		assert_int_equal(chmod(key_path, 0600), 0);
		assert_int_equal(chown(key_path, 4242, 0), 0);
		assert_int_equal(policy_read_key_file(key_path, &key, &len, &error), -EPERM);
		assert_non_null(strstr(error, "owner uid 4242"));
		free(error);
		error = NULL;
		assert_int_equal(chown(key_path, 0, 0), 0);
	}

	assert_int_equal(chmod(key_path, 0400), 0);
	assert_int_equal(policy_read_key_file(key_path, &key, &len, &error), 0);
	assert_int_equal(len, 32);
	free(key);
	assert_int_equal(policy_set_load(paths, 1, &set, &errors), 0);
	policy_set_free(set);

	assert_int_equal(unlink(key_path), 0);
	assert_int_equal(unlink(policy_path), 0);
	assert_int_equal(rmdir(dir), 0);
}

static void test_grace_default_fits_short_interval(void **state)
{
	struct policy *p = parse_ok("x.policy", "[Service]\nName=x\nBackend=10.0.0.1:80\n"
						"[Rotation]\nPublicPorts=100-200\nInterval=10s\n"
						"KeyFile=tests/policy/keys/test.key\n");
	assert_true(p->grace_usec == 5 * USEC_PER_SEC);
	policy_free(p);
}

static void test_repeated_keys_append(void **state)
{
	struct policy *p = parse_ok(
	    "tests/policy/good/x.policy",
	    "[Service]\nName=x\nSnapshot=/s\nExec=/bin/x\nListenPort=1\nSnapshotKey=/k.pub\n"
	    "[Rotation]\nPublicPorts=100-200\nKeyFile=../keys/test.key\n"
	    "[Envelope]\nSystemCalls=read\nSystemCalls=write close\n"
	    "Capabilities=CAP_CHOWN\nCapabilities=CAP_KILL\n"
	    "Writable=/a\nWritable=/b /c\n[Rotation]\nAddressPool=10.1.0.0/16\n"
	    "AddressPool=10.2.0.0/16\n");
	assert_int_equal(p->system_calls.count, 3);
	assert_string_equal(p->system_calls.items[2], "close");
	assert_null(p->system_calls.items[3]);
	assert_true(p->capabilities == ((UINT64_C(1) << CAP_CHOWN) | (UINT64_C(1) << CAP_KILL)));
	assert_int_equal(p->writable.count, 3);
	assert_int_equal(p->address_pool_count, 2);
	policy_free(p);
}

/* StandbyInstances=: 0..POLICY_STANDBY_MAX, managed services only, and room
 * in every AddressPool= for the standbys beside the serving instance. */
static void expect_one_error(const char *text, const char *want)
{
	struct policy *p = NULL;
	struct policy_errors errors = {0};
	char *got;

	assert_int_equal(
	    policy_parse_buffer("tests/policy/good/s.policy", text, strlen(text), &p, &errors),
	    -EINVAL);
	assert_null(p);
	got = render_errors(&errors);
	if (strcmp(got, want) != 0)
		fail_msg("--- expected\n%s--- got\n%s", want, got);
	free(got);
	policy_errors_free(&errors);
}

#define STANDBY_HEAD "[Service]\nName=s\nSnapshot=/s\nExec=/bin/x\nListenPort=1\n"
#define STANDBY_TAIL                                                                               \
	"SnapshotKey=/k.pub\n[Rotation]\nPublicPorts=100-200\nKeyFile=../keys/test.key\n"          \
	"AddressPool=10.9.0.0/24\n"

static void test_standby_instances_range_and_room(void **state)
{
	struct policy *p;

	p = parse_ok("tests/policy/good/s.policy",
		     STANDBY_HEAD "StandbyInstances=4\n" STANDBY_TAIL "AddressPool=10.1.0.0/28\n");
	assert_int_equal(p->standby_instances, POLICY_STANDBY_MAX);
	policy_free(p);
	expect_one_error(STANDBY_HEAD "StandbyInstances=5\n" STANDBY_TAIL,
			 "tests/policy/good/s.policy:6: Service.StandbyInstances: \"5\": at most 4 "
			 "(each standby is a whole running instance)\n");
	expect_one_error(STANDBY_HEAD "StandbyInstances=one\n" STANDBY_TAIL,
			 "tests/policy/good/s.policy:6: Service.StandbyInstances: \"one\": not an "
			 "unsigned decimal number\n");
	/* /29: 6 usable addresses; 4 standbys need 7 */
	expect_one_error(
	    STANDBY_HEAD "StandbyInstances=4\n" STANDBY_TAIL
			 "AddressPool=10.1.0.0/29\nAddressPool=fd00:1::/120\n",
	    "tests/policy/good/s.policy:6: Service.StandbyInstances: 4 standbys need 7 "
	    "addresses of AddressPool=10.1.0.0/29, which has 6\n");
	expect_one_error("[Service]\nName=s\nBackend=10.0.0.1:80\nStandbyInstances=1\n"
			 "[Rotation]\nPublicPorts=100-200\nKeyFile=../keys/test.key\n",
			 "tests/policy/good/s.policy:4: Service.StandbyInstances: only valid for a "
			 "managed service (Snapshot=), not with Backend=\n");
}

/* OnCompromise=alert: accepted, OnSyscallViolation= follows it (errno) when
 * unset, shown as alert; errno given is fine; kill or quarantine given, or
 * SystemCallDefault=kill, contradict it. */
static void test_alert_sets_violations_to_errno_and_refuses_contradictions(void **state)
{
	struct policy *p;
	json_t *j;

	p = parse_ok("tests/policy/good/s.policy",
		     STANDBY_HEAD "OnCompromise=alert\n" STANDBY_TAIL);
	assert_int_equal(p->on_compromise, COMPROMISE_ALERT);
	assert_int_equal(p->on_syscall_violation, SYSCALL_VIOLATION_ERRNO);
	j = policy_to_json(p);
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(j, "service"), "on_compromise")),
	    "alert");
	assert_string_equal(json_string_value(json_object_get(json_object_get(j, "envelope"),
							      "on_syscall_violation")),
			    "errno");
	json_decref(j);
	policy_free(p);
	p = parse_ok("tests/policy/good/s.policy", STANDBY_HEAD
		     "OnCompromise=alert\n" STANDBY_TAIL "[Envelope]\nOnSyscallViolation=errno\n"
		     "SystemCallDefault=errno\n");
	assert_int_equal(p->on_syscall_violation, SYSCALL_VIOLATION_ERRNO);
	policy_free(p);
	/* Without alert, the default stays quarantine. */
	p = parse_ok("tests/policy/good/s.policy", STANDBY_HEAD STANDBY_TAIL);
	assert_int_equal(p->on_syscall_violation, SYSCALL_VIOLATION_QUARANTINE);
	policy_free(p);
	expect_one_error(STANDBY_HEAD "OnCompromise=alert\n" STANDBY_TAIL
				      "[Envelope]\nOnSyscallViolation=quarantine\n",
			 "tests/policy/good/s.policy:13: Envelope.OnSyscallViolation: quarantine "
			 "contradicts OnCompromise=alert (line 6), under which no detection kills "
			 "or quarantines; use errno or leave it unset\n");
	expect_one_error(STANDBY_HEAD "OnUnhealthy=alert\n" STANDBY_TAIL,
			 "tests/policy/good/s.policy:6: Service.OnUnhealthy: \"alert\": expected "
			 "one of: quarantine, kill\n");
}

static void test_error_format_variants(void **state)
{
	struct policy_error e = {
	    .file = "f.policy", .line = 3, .section = "Service", .key = "Name", .reason = "bad"};
	char *s;

	s = policy_error_format(&e);
	assert_string_equal(s, "f.policy:3: Service.Name: bad");
	free(s);
	e.key = NULL;
	s = policy_error_format(&e);
	assert_string_equal(s, "f.policy:3: [Service]: bad");
	free(s);
	e.section = NULL;
	e.line = 0;
	s = policy_error_format(&e);
	assert_string_equal(s, "f.policy: bad");
	free(s);
}

static void test_garbage_input_never_crashes(void **state)
{
	unsigned seed = 12345;
	char buf[512];

	for (int round = 0; round < 2000; round++) {
		struct policy *p = NULL;
		struct policy_errors errors = {0};
		size_t n = (size_t)(rand_r(&seed) % sizeof(buf));
		static const char alphabet[] = "[]=\n \t#;:/\\\"'@-0123456789abcSERVICENamExc%.\r";
		for (size_t i = 0; i < n; i++)
			buf[i] = round % 2 ? (char)rand_r(&seed)
					   : alphabet[rand_r(&seed) % (sizeof(alphabet) - 1)];
		(void)policy_parse_buffer("fuzz.policy", buf, n, &p, &errors);
		policy_free(p);
		policy_errors_free(&errors);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bad_corpus_reports_exact_errors),
	    cmocka_unit_test(test_bad_corpus_same_errors_from_buffer),
	    cmocka_unit_test(test_bad_sets_report_exact_errors),
	    cmocka_unit_test(test_duplicate_name_blames_later_file),
	    cmocka_unit_test(test_good_directory_loads_sorted_by_name),
	    cmocka_unit_test(test_examples_load),
	    cmocka_unit_test(test_empty_directory_is_an_empty_set),
	    cmocka_unit_test(test_missing_path_is_an_error),
	    cmocka_unit_test(test_unreadable_file_is_an_error),
	    cmocka_unit_test(test_defaults_of_managed_service),
	    cmocka_unit_test(test_defaults_of_host_service),
	    cmocka_unit_test(test_every_key_of_full_policy),
	    cmocka_unit_test(test_json_renders_readable_values),
	    cmocka_unit_test(test_key_file_is_read_as_hex),
	    cmocka_unit_test(test_key_file_must_be_owner_only),
	    cmocka_unit_test(test_grace_default_fits_short_interval),
	    cmocka_unit_test(test_repeated_keys_append),
	    cmocka_unit_test(test_standby_instances_range_and_room),
	    cmocka_unit_test(test_alert_sets_violations_to_errno_and_refuses_contradictions),
	    cmocka_unit_test(test_error_format_variants),
	    cmocka_unit_test(test_garbage_input_never_crashes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
