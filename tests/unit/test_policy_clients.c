/* SPDX-License-Identifier: MIT */
/* Per-client mode of a policy (ClientKeys=, ClientAuth=, KnockWindow=,
 * KnockRate=), the ClientKeys= directory's rules, the global file's [Agent]
 * HostId=, and the one N/SPAN parser behind UDPBlockLimit=, HookRate= and
 * KnockRate=. Every error is checked with its exact text. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "clock.h"
#include "policy.h"
#include "policy_internal.h"

static char dir[] = "/tmp/test_policy_clients.XXXXXX";
static char keys[128];

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

static void write_file(const char *name, size_t bytes, mode_t mode)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", keys, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	for (size_t i = 0; i < bytes; i++) {
		uint8_t b = (uint8_t)(i * 7 + strlen(name));
		assert_int_equal(write(fd, &b, 1), 1);
	}
	close(fd);
	assert_int_equal(chmod(path, mode), 0);
}

static void remove_file(const char *name)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", keys, name);
	assert_int_equal(unlink(path), 0);
}

static int setup(void **state)
{
	if (!mkdtemp(dir))
		return -1;
	snprintf(keys, sizeof(keys), "%s/clients", dir);
	if (mkdir(keys, 0700) < 0)
		return -1;
	write_file("bob.key", 32, 0600);
	write_file("alice.key", 16, 0400);
	return 0;
}

static int teardown(void **state)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static char *policy_text(const char *rotation_extra)
{
	char *s;
	assert_true(asprintf(&s,
			     "[Service]\nName=web\nBackend=10.0.0.1:80\n[Rotation]\n"
			     "PublicPorts=20000-20999\n%s",
			     rotation_extra) > 0);
	return s;
}

static struct policy *parse_ok(const char *extra)
{
	struct policy_errors errors = {0};
	struct policy *p = NULL;
	char *text = policy_text(extra);
	int r = policy_parse_buffer("web.policy", text, strlen(text), &p, &errors);

	if (r != 0)
		fail_msg("parse failed (%d):\n%s", r, render_errors(&errors));
	free(text);
	return p;
}

static void assert_errors(const char *extra, const char *want)
{
	struct policy_errors errors = {0};
	struct policy *p = NULL;
	char *text = policy_text(extra), *got;

	assert_int_equal(policy_parse_buffer("web.policy", text, strlen(text), &p, &errors),
			 -EINVAL);
	assert_null(p);
	got = render_errors(&errors);
	assert_string_equal(got, want);
	free(got);
	free(text);
	policy_errors_free(&errors);
}

static void test_client_keys_take_their_values_and_defaults(void **state)
{
	char extra[256];
	struct policy *p;

	snprintf(extra, sizeof(extra), "ClientKeys=%s\n", keys);
	p = parse_ok(extra);
	assert_string_equal(p->client_keys, keys);
	assert_null(p->key_file);
	assert_int_equal(p->client_auth, POLICY_CLIENT_AUTH_NONE);
	assert_true(p->knock_window_usec == 30 * USEC_PER_SEC);
	assert_int_equal(p->knock_rate_limit, 20);
	assert_true(p->knock_rate_interval_usec == USEC_PER_SEC);
	policy_free(p);

	snprintf(extra, sizeof(extra),
		 "ClientKeys=%s\nClientAuth=knock\nKnockWindow=2min\nKnockRate=5/10s\n", keys);
	p = parse_ok(extra);
	assert_int_equal(p->client_auth, POLICY_CLIENT_AUTH_KNOCK);
	assert_true(p->knock_window_usec == 120 * USEC_PER_SEC);
	assert_int_equal(p->knock_rate_limit, 5);
	assert_true(p->knock_rate_interval_usec == 10 * USEC_PER_SEC);
	policy_free(p);
}

static void test_client_keys_load_sorted_raw_keys(void **state)
{
	struct policy_client_keys k = {0};
	char *error = NULL;

	assert_int_equal(policy_client_keys_load(keys, &k, &error), 0);
	assert_null(error);
	assert_int_equal(k.count, 2);
	assert_string_equal(k.items[0].name, "alice");
	assert_int_equal(k.items[0].key_len, 16);
	assert_string_equal(k.items[1].name, "bob");
	assert_int_equal(k.items[1].key_len, 32);
	/* raw bytes, as written */
	assert_int_equal(k.items[1].key[1], (uint8_t)(7 + strlen("bob.key")));
	policy_client_keys_free(&k);
	assert_int_equal(k.count, 0);
	assert_null(k.items);
}

static void test_client_mode_errors_name_file_and_line(void **state)
{
	char extra[512], want[1024];

	snprintf(extra, sizeof(extra), "KeyFile=tests/policy/keys/test.key\nClientKeys=%s\n", keys);
	snprintf(want, sizeof(want),
		 "web.policy:7: Rotation.ClientKeys: excludes KeyFile= (line 6): a service has one "
		 "shared key (KeyFile=) or a key per client (ClientKeys=), not both\n");
	assert_errors(extra, want);

	assert_errors("KeyFile=/nonexistent/web.key\nClientAuth=knock\n",
		      "web.policy:6: Rotation.KeyFile: /nonexistent/web.key: No such file or "
		      "directory\n"
		      "web.policy:7: Rotation.ClientAuth: knock needs ClientKeys= (a knock is made "
		      "with a client's own key)\n");

	snprintf(extra, sizeof(extra), "ClientKeys=%s\nKnockWindow=10s\nKnockRate=1/1s\n", keys);
	assert_errors(extra,
		      "web.policy:7: Rotation.KnockWindow: only valid with ClientAuth=knock\n"
		      "web.policy:8: Rotation.KnockRate: only valid with ClientAuth=knock\n");

	snprintf(extra, sizeof(extra), "ClientKeys=%s\nClientAuth=maybe\n", keys);
	assert_errors(
	    extra, "web.policy:7: Rotation.ClientAuth: \"maybe\": expected one of: none, knock\n");
	snprintf(extra, sizeof(extra),
		 "ClientKeys=%s\nClientAuth=knock\nKnockWindow=0s\nKnockRate=abc\n", keys);
	assert_errors(
	    extra,
	    "web.policy:8: Rotation.KnockWindow: \"0s\": time span too short\n"
	    "web.policy:9: Rotation.KnockRate: \"abc\": expected KNOCKS/SPAN (e.g. 20/1s)\n");

	snprintf(extra, sizeof(extra),
		 "ClientKeys=%s\nClientAuth=knock\nKnockWindow=301s\nKnockRate=0/1s\n", keys);
	assert_errors(extra,
		      "web.policy:8: Rotation.KnockWindow: \"301s\": time span too long\n"
		      "web.policy:9: Rotation.KnockRate: \"0/1s\": KNOCKS not in 1-100000\n");

	snprintf(extra, sizeof(extra), "ClientKeys=%s\nClientAuth=knock\nKnockRate=5/500ms\n",
		 keys);
	assert_errors(extra,
		      "web.policy:8: Rotation.KnockRate: \"5/500ms\": SPAN shorter than 1s\n");
	snprintf(extra, sizeof(extra), "ClientKeys=%s\nClientAuth=knock\nKnockRate=5/2d\n", keys);
	assert_errors(extra, "web.policy:8: Rotation.KnockRate: \"5/2d\": SPAN longer than 1d\n");
}

/* Each rule of the directory, one error naming the file and why. */
static void test_client_keys_directory_rules(void **state)
{
	char extra[256], want[512];

	snprintf(extra, sizeof(extra), "ClientKeys=%s\n", keys);

	write_file("notes.txt", 20, 0600);
	snprintf(want, sizeof(want),
		 "web.policy:6: Rotation.ClientKeys: %s/notes.txt: not a client key (only NAME.key "
		 "files belong here)\n",
		 keys);
	assert_errors(extra, want);
	remove_file("notes.txt");

	write_file("-x.key", 20, 0600);
	snprintf(want, sizeof(want),
		 "web.policy:6: Rotation.ClientKeys: %s/-x.key: not a client name (1 to 64 of A-Z "
		 "a-z 0-9 _ . -, not starting with . or -)\n",
		 keys);
	assert_errors(extra, want);
	remove_file("-x.key");

	write_file("carol.key", 15, 0600);
	snprintf(want, sizeof(want),
		 "web.policy:6: Rotation.ClientKeys: %s/carol.key: key shorter than 16 bytes\n",
		 keys);
	assert_errors(extra, want);
	write_file("carol.key", 1025, 0600);
	snprintf(want, sizeof(want),
		 "web.policy:6: Rotation.ClientKeys: %s/carol.key: key longer than 1024 bytes\n",
		 keys);
	assert_errors(extra, want);
	write_file("carol.key", 32, 0640);
	snprintf(want, sizeof(want),
		 "web.policy:6: Rotation.ClientKeys: %s/carol.key: must not be accessible to group "
		 "or others (owner uid %u, mode 0640)\n",
		 keys, (unsigned)geteuid());
	{
		struct policy_errors errors = {0};
		struct policy *p = NULL;
		char *text = policy_text(extra), *got;
		assert_int_equal(policy_parse_buffer("web.policy", text, strlen(text), &p, &errors),
				 -EINVAL);
		got = render_errors(&errors);
		assert_non_null(strstr(got, "/carol.key: "));
		assert_non_null(strstr(got, "mode 0640"));
		free(got);
		free(text);
		policy_errors_free(&errors);
	}
	remove_file("carol.key");

	assert_int_equal(chmod(keys, 0770), 0);
	snprintf(want, sizeof(want),
		 "web.policy:6: Rotation.ClientKeys: %s: writable by group or others (mode 0770)\n",
		 keys);
	assert_errors(extra, want);
	assert_int_equal(chmod(keys, 0700), 0);

	if (geteuid() == 0) {
		assert_int_equal(chown(keys, 4242, 0), 0);
		snprintf(want, sizeof(want),
			 "web.policy:6: Rotation.ClientKeys: %s: owned by uid 4242, not root\n",
			 keys);
		assert_errors(extra, want);
		assert_int_equal(chown(keys, 0, 0), 0);
	}

	{
		char empty[160];
		snprintf(empty, sizeof(empty), "%s/empty", dir);
		assert_int_equal(mkdir(empty, 0700), 0);
		snprintf(extra, sizeof(extra), "ClientKeys=%s\n", empty);
		snprintf(want, sizeof(want),
			 "web.policy:6: Rotation.ClientKeys: %s: no client keys (NAME.key files)\n",
			 empty);
		if (geteuid() == 0)
			assert_errors(extra, want);
		assert_int_equal(rmdir(empty), 0);
	}
}

static struct policy_globals *globals_parse(const char *text, char **ret_errors)
{
	struct policy_errors errors = {0};
	struct policy_globals *g = NULL;

	policy_globals_parse_buffer("mtd.conf", text, strlen(text), &g, &errors);
	*ret_errors = render_errors(&errors);
	policy_errors_free(&errors);
	return g;
}

static void test_host_id_in_agent_section(void **state)
{
	struct policy_globals *g;
	char *errors;

	g = globals_parse("[Decoys]\nNeverBlock=10.0.0.0/8\n", &errors);
	assert_non_null(g);
	assert_null(g->host_id);
	assert_string_equal(errors, "");
	free(errors);
	policy_globals_free(g);

	g = globals_parse("[Agent]\nHostId=web1.example.org\n", &errors);
	assert_non_null(g);
	assert_string_equal(g->host_id, "web1.example.org");
	{
		json_t *j = policy_globals_to_json(g);
		assert_string_equal(json_string_value(json_object_get(j, "host_id")),
				    "web1.example.org");
		json_decref(j);
	}
	free(errors);
	policy_globals_free(g);

	g = globals_parse("[Agent]\nHostId=web 1\nHostID=x\n[Rotation]\n", &errors);
	assert_null(g);
	assert_string_equal(
	    errors, "mtd.conf:2: Agent.HostId: \"web 1\": not a host id (1 to 255 of A-Z a-z 0-9 _ "
		    ". : -)\n"
		    "mtd.conf:3: Agent.HostID: unknown key (did you mean HostId=?)\n"
		    "mtd.conf:4: unknown section \"Rotation\" (expected [Agent], [Decoys] or "
		    "[Hooks])\n");
	free(errors);
}

/* The three N/SPAN keys share one parser and keep their own words. */
static void test_rate_parser_keeps_each_keys_texts(void **state)
{
	unsigned n = 7;
	uint64_t span = 9;
	const char *reason = NULL;
	struct policy_globals *g;
	char *errors;

	assert_int_equal(policy_parse_rate("20/1s", 1, 100, "F", "R", &n, &span, &reason), 0);
	assert_int_equal(n, 20);
	assert_true(span == USEC_PER_SEC);
	n = 7;
	span = 9;
	assert_int_equal(policy_parse_rate("/1s", 1, 100, "F", "R", &n, &span, &reason), -EINVAL);
	assert_string_equal(reason, "F");
	assert_int_equal(policy_parse_rate("5/", 1, 100, "F", "R", &n, &span, &reason), -EINVAL);
	assert_string_equal(reason, "F");
	assert_int_equal(policy_parse_rate("101/1s", 1, 100, "F", "R", &n, &span, &reason),
			 -EINVAL);
	assert_string_equal(reason, "R");
	assert_int_equal(policy_parse_rate("5/soon", 1, 100, "F", "R", &n, &span, &reason),
			 -EINVAL);
	assert_int_equal(n, 7); /* untouched on failure */
	assert_true(span == 9);

	g = globals_parse("[Decoys]\nUDPBlockLimit=x\n[Hooks]\nHookRate=0/1min\n", &errors);
	assert_null(g);
	assert_string_equal(errors,
			    "mtd.conf:2: Decoys.UDPBlockLimit: \"x\": expected SOURCES/SPAN (e.g. "
			    "32/1min)\n"
			    "mtd.conf:4: Hooks.HookRate: \"0/1min\": RUNS not in 1-100000\n");
	free(errors);
	g = globals_parse("[Decoys]\nUDPBlockLimit=100001/1min\n[Hooks]\nHookRate=x\n", &errors);
	assert_null(g);
	assert_string_equal(
	    errors, "mtd.conf:2: Decoys.UDPBlockLimit: \"100001/1min\": SOURCES not in "
		    "0-100000\n"
		    "mtd.conf:4: Hooks.HookRate: \"x\": expected RUNS/SPAN (e.g. 30/1min)\n");
	free(errors);
	g = globals_parse("[Decoys]\nUDPBlockLimit=0/1min\n[Hooks]\nHookRate=3/2h\n", &errors);
	assert_non_null(g);
	assert_int_equal(g->udp_block_limit, 0);
	assert_int_equal(g->hook_rate_limit, 3);
	assert_true(g->hook_rate_interval_usec == 2 * USEC_PER_HOUR);
	free(errors);
	policy_globals_free(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_client_keys_take_their_values_and_defaults),
	    cmocka_unit_test(test_client_keys_load_sorted_raw_keys),
	    cmocka_unit_test(test_client_mode_errors_name_file_and_line),
	    cmocka_unit_test(test_client_keys_directory_rules),
	    cmocka_unit_test(test_host_id_in_agent_section),
	    cmocka_unit_test(test_rate_parser_keeps_each_keys_texts),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
