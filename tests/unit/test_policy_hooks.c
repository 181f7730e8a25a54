/* SPDX-License-Identifier: MIT */
/* The global file's [Hooks] section (OnEvent=, HookTimeout=, HookRate=,
 * HookUser=), which record types run a hook (policy_hook_matches) and the
 * rate limit the runner applies (policy_rate_admit). Every error is checked
 * with its exact line. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "clock.h"
#include "policy.h"
#include "policy_internal.h"

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

static struct policy_globals *globals_ok(const char *text)
{
	struct policy_errors errors = {0};
	struct policy_globals *g = NULL;
	int r = policy_globals_parse_buffer("mtd.conf", text, strlen(text), &g, &errors);

	if (r != 0)
		fail_msg("parse failed (%d):\n%s", r, render_errors(&errors));
	assert_non_null(g);
	return g;
}

static void assert_globals_errors(const char *text, const char *want)
{
	struct policy_errors errors = {0};
	struct policy_globals *g = NULL;
	char *got;

	assert_int_equal(policy_globals_parse_buffer("mtd.conf", text, strlen(text), &g, &errors),
			 -EINVAL);
	assert_null(g);
	got = render_errors(&errors);
	if (strcmp(got, want) != 0) {
		/* cmocka cuts long messages: the whole text on stderr */
		fprintf(stderr, "--- expected\n%s--- got\n%s", want, got);
		fail();
	}
	free(got);
	policy_errors_free(&errors);
}

static void test_hooks_defaults(void **state)
{
	struct policy_globals *g = globals_ok("[Hooks]\n");

	assert_int_equal(g->hook_count, 0);
	assert_true(g->hook_timeout_usec == 10 * USEC_PER_SEC);
	assert_int_equal(g->hook_rate_limit, 30);
	assert_true(g->hook_rate_interval_usec == USEC_PER_MINUTE);
	assert_string_equal(g->hook_user, "nobody");
	policy_globals_free(g);

	/* No file at all: the same defaults. */
	{
		struct policy_errors errors = {0};

		assert_int_equal(policy_globals_load("/nonexistent/mtd.conf", false, &g, &errors),
				 0);
		assert_string_equal(g->hook_user, "nobody");
		assert_true(g->hook_timeout_usec == 10 * USEC_PER_SEC);
		policy_globals_free(g);
	}
}

static void test_hooks_take_their_values(void **state)
{
	struct policy_globals *g =
	    globals_ok("[Decoys]\n"
		       "UDPBlockLimit=5/10s\n"
		       "[Hooks]\n"
		       "OnEvent=decoy-hit,source-blocked /usr/share/mtd/hooks/webhook "
		       "http://127.0.0.1:8080/x\n"
		       "OnEvent=* /usr/local/bin/log-all 'two words' \"a\\\"b\"  # everything\n"
		       "OnEvent=instance-* /bin/true\n"
		       "HookTimeout=2s\n"
		       "HookRate=3/5s\n"
		       "HookUser=mtd-hook\n");

	assert_int_equal(g->udp_block_limit, 5);
	assert_int_equal(g->hook_count, 3);
	assert_int_equal(g->hooks[0].type_count, 2);
	assert_string_equal(g->hooks[0].types[0], "decoy-hit");
	assert_string_equal(g->hooks[0].types[1], "source-blocked");
	assert_null(g->hooks[0].types[2]);
	assert_int_equal(g->hooks[0].argc, 2);
	assert_string_equal(g->hooks[0].argv[0], "/usr/share/mtd/hooks/webhook");
	assert_string_equal(g->hooks[0].argv[1], "http://127.0.0.1:8080/x");
	assert_null(g->hooks[0].argv[2]);
	assert_int_equal(g->hooks[0].line, 4);
	assert_int_equal(g->hooks[1].argc, 3);
	assert_string_equal(g->hooks[1].argv[1], "two words");
	assert_string_equal(g->hooks[1].argv[2], "a\"b");
	assert_int_equal(g->hooks[1].line, 5);
	assert_string_equal(g->hooks[2].types[0], "instance-*");
	assert_int_equal(g->hooks[2].argc, 1);
	assert_true(g->hook_timeout_usec == 2 * USEC_PER_SEC);
	assert_int_equal(g->hook_rate_limit, 3);
	assert_true(g->hook_rate_interval_usec == 5 * USEC_PER_SEC);
	assert_string_equal(g->hook_user, "mtd-hook");

	{
		json_t *j = policy_globals_to_json(g);
		char *text;

		assert_non_null(j);
		text = json_dumps(json_object_get(j, "hooks"), JSON_COMPACT);
		assert_string_equal(text,
				    "[{\"types\":[\"decoy-hit\",\"source-blocked\"],\"exec\":[\"/"
				    "usr/share/mtd/hooks/webhook\",\"http://127.0.0.1:8080/x\"]},"
				    "{\"types\":[\"*\"],\"exec\":[\"/usr/local/bin/log-all\","
				    "\"two words\",\"a\\\"b\"]},{\"types\":[\"instance-*\"],"
				    "\"exec\":[\"/bin/true\"]}]");
		free(text);
		assert_string_equal(json_string_value(json_object_get(j, "hook_timeout")), "2s");
		assert_int_equal(json_integer_value(json_object_get(j, "hook_rate_limit")), 3);
		assert_string_equal(json_string_value(json_object_get(j, "hook_rate_interval")),
				    "5s");
		assert_string_equal(json_string_value(json_object_get(j, "hook_user")), "mtd-hook");
		json_decref(j);
	}
	policy_globals_free(g);
}

static void test_hooks_errors_name_file_and_line(void **state)
{
	assert_globals_errors(
	    "[Hooks]\n"
	    "OnEvent=decoy-hit\n"
	    "OnEvent=decoy-hit webhook\n"
	    "OnEvent=Decoy-Hit /bin/true\n"
	    "OnEvent=decoy-hit,,source-blocked /bin/true\n"
	    "OnEvent=decoy-hit, /bin/true\n"
	    "OnEvent='unbalanced /bin/true\n"
	    "OnEvent=\n"
	    "HookTimeout=10ms\n"
	    "HookTimeout=2h\n"
	    "HookRate=30\n"
	    "HookRate=0/1min\n"
	    "HookRate=5/500ms\n"
	    "HookRate=5/2d\n"
	    "HookUser=Not A User\n"
	    "NeverBlock=10.0.0.0/8\n",
	    "mtd.conf:2: Hooks.OnEvent: \"decoy-hit\": expected TYPES PROGRAM [ARGS...] (e.g. "
	    "decoy-hit,source-blocked /usr/share/mtd/hooks/webhook)\n"
	    "mtd.conf:3: Hooks.OnEvent: \"decoy-hit webhook\": PROGRAM must be an absolute path "
	    "(there is no $PATH search)\n"
	    "mtd.conf:4: Hooks.OnEvent: \"Decoy-Hit /bin/true\": TYPES takes record types (a-z, "
	    "0-9, '-') or globs of them ('*', '?'), separated by commas\n"
	    "mtd.conf:5: Hooks.OnEvent: \"decoy-hit,,source-blocked /bin/true\": an empty record "
	    "type in TYPES\n"
	    "mtd.conf:6: Hooks.OnEvent: \"decoy-hit, /bin/true\": an empty record type in TYPES\n"
	    "mtd.conf:7: Hooks.OnEvent: \"'unbalanced /bin/true\": unbalanced single quote\n"
	    "mtd.conf:8: Hooks.OnEvent: empty value\n"
	    "mtd.conf:9: Hooks.HookTimeout: \"10ms\": time span too short\n"
	    "mtd.conf:10: Hooks.HookTimeout: given twice (first at line 9); this key does not "
	    "repeat\n"
	    "mtd.conf:11: Hooks.HookRate: \"30\": expected RUNS/SPAN (e.g. 30/1min)\n"
	    "mtd.conf:12: Hooks.HookRate: given twice (first at line 11); this key does not "
	    "repeat\n"
	    "mtd.conf:13: Hooks.HookRate: given twice (first at line 11); this key does not "
	    "repeat\n"
	    "mtd.conf:14: Hooks.HookRate: given twice (first at line 11); this key does not "
	    "repeat\n"
	    "mtd.conf:15: Hooks.HookUser: \"Not A User\": name must start with [a-z_]\n"
	    "mtd.conf:16: Hooks.NeverBlock: unknown key\n");
	/* Each bound of HookTimeout= and HookRate= on its own. */
	assert_globals_errors("[Hooks]\nHookTimeout=2h\n",
			      "mtd.conf:2: Hooks.HookTimeout: \"2h\": time span too long\n");
	assert_globals_errors("[Hooks]\nHookRate=0/1min\n",
			      "mtd.conf:2: Hooks.HookRate: \"0/1min\": RUNS not in 1-100000\n");
	assert_globals_errors(
	    "[Hooks]\nHookRate=100001/1min\n",
	    "mtd.conf:2: Hooks.HookRate: \"100001/1min\": RUNS not in 1-100000\n");
	assert_globals_errors("[Hooks]\nHookRate=5/500ms\n",
			      "mtd.conf:2: Hooks.HookRate: \"5/500ms\": SPAN shorter than 1s\n");
	assert_globals_errors("[Hooks]\nHookRate=5/2d\n",
			      "mtd.conf:2: Hooks.HookRate: \"5/2d\": SPAN longer than 1d\n");
	/* A policy file has no [Hooks]. */
	{
		static const char text[] = "[Service]\nName=web\nBackend=127.0.0.1:80\n[Hooks]\n";
		struct policy_errors errors = {0};
		struct policy *p = NULL;
		char *got;

		assert_int_equal(policy_parse_buffer("web.policy", text, strlen(text), &p, &errors),
				 -EINVAL);
		got = render_errors(&errors);
		assert_non_null(strstr(got, "web.policy:4: unknown section \"Hooks\""));
		free(got);
		policy_errors_free(&errors);
	}
}

/* A policy's own OnEvent= in [Service]: same syntax, same errors. Runs from
 * the repo root (KeyFile=). */
#define WEB "tests/policy/good/web.policy"
static void test_service_hooks_in_a_policy(void **state)
{
	static const char good[] = "[Service]\n"
				   "Name=web\n"
				   "Backend=127.0.0.1:80\n"
				   "OnEvent=decoy-hit /usr/local/bin/page web-team\n"
				   "OnEvent=instance-*,source-blocked /bin/true\n"
				   "[Rotation]\n"
				   "PublicPorts=20000-20099\n"
				   "KeyFile=../keys/test.key\n";
	static const char bad[] = "[Service]\n"
				  "Name=web\n"
				  "Backend=127.0.0.1:80\n"
				  "OnEvent=decoy-hit page\n"
				  "[Rotation]\n"
				  "PublicPorts=20000-20099\n"
				  "KeyFile=../keys/test.key\n";
	struct policy_errors errors = {0};
	struct policy *p = NULL;
	json_t *j;
	char *got;

	assert_int_equal(policy_parse_buffer(WEB, good, strlen(good), &p, &errors), 0);
	assert_int_equal(p->hook_count, 2);
	assert_string_equal(p->hooks[0].types[0], "decoy-hit");
	assert_string_equal(p->hooks[0].argv[0], "/usr/local/bin/page");
	assert_string_equal(p->hooks[0].argv[1], "web-team");
	assert_int_equal(p->hooks[0].line, 4);
	assert_int_equal(p->hooks[1].type_count, 2);
	j = policy_to_json(p);
	assert_non_null(j);
	got = json_dumps(json_object_get(json_object_get(j, "service"), "hooks"), JSON_COMPACT);
	assert_string_equal(got, "[{\"types\":[\"decoy-hit\"],\"exec\":[\"/usr/local/bin/page\","
				 "\"web-team\"]},{\"types\":[\"instance-*\",\"source-blocked\"],"
				 "\"exec\":[\"/bin/true\"]}]");
	free(got);
	json_decref(j);
	policy_free(p);
	p = NULL;

	assert_int_equal(policy_parse_buffer(WEB, bad, strlen(bad), &p, &errors), -EINVAL);
	got = render_errors(&errors);
	assert_string_equal(got, WEB ":4: Service.OnEvent: \"decoy-hit page\": PROGRAM must "
				     "be an absolute path (there is no $PATH search)\n");
	free(got);
	policy_errors_free(&errors);
}

static void test_hooks_count_is_bounded(void **state)
{
	char text[8192] = "[Hooks]\n", want[256];
	size_t len = strlen(text);

	for (int i = 0; i < POLICY_HOOKS_MAX + 1; i++)
		len += (size_t)snprintf(text + len, sizeof(text) - len, "OnEvent=* /bin/true\n");
	snprintf(want, sizeof(want),
		 "mtd.conf:%d: Hooks.OnEvent: \"* /bin/true\": more than 32 OnEvent= hooks\n",
		 POLICY_HOOKS_MAX + 2);
	assert_globals_errors(text, want);
}

static void test_hook_matches_types_and_globs_never_its_own_records(void **state)
{
	struct policy_globals *g = globals_ok("[Hooks]\n"
					      "OnEvent=decoy-hit,source-blocked /bin/true\n"
					      "OnEvent=instance-* /bin/true\n"
					      "OnEvent=* /bin/true\n"
					      "OnEvent=hook-* /bin/true\n");

	assert_true(policy_hook_matches(&g->hooks[0], "decoy-hit"));
	assert_true(policy_hook_matches(&g->hooks[0], "source-blocked"));
	assert_false(policy_hook_matches(&g->hooks[0], "source-blocked-x"));
	assert_false(policy_hook_matches(&g->hooks[0], "decoy"));
	assert_false(policy_hook_matches(&g->hooks[0], "source-unblocked"));
	assert_true(policy_hook_matches(&g->hooks[1], "instance-started"));
	assert_false(policy_hook_matches(&g->hooks[1], "instances"));
	assert_true(policy_hook_matches(&g->hooks[2], "agent-start"));
	/* The runner's own records run no hook, even a hook that asks. */
	assert_false(policy_hook_matches(&g->hooks[2], "hook-failed"));
	assert_false(policy_hook_matches(&g->hooks[2], "hook-rate-limited"));
	assert_false(policy_hook_matches(&g->hooks[3], "hook-failed"));
	policy_globals_free(g);
}

static void test_rate_admits_limit_per_window_and_counts_drops(void **state)
{
	struct policy_rate rate = {0};
	const uint64_t span = 10 * USEC_PER_SEC, t0 = 1000 * USEC_PER_SEC;
	bool first = false;

	for (int i = 0; i < 3; i++)
		assert_true(policy_rate_admit(&rate, 3, span, t0 + (uint64_t)i, &first));
	assert_false(policy_rate_admit(&rate, 3, span, t0 + 5, &first));
	assert_true(first);
	assert_false(policy_rate_admit(&rate, 3, span, t0 + span - 1, &first));
	assert_false(first); /* one notice per window */
	assert_true(rate.dropped == 2 && rate.dropped_total == 2);

	/* The next window: admits again, and its first drop is a first again. */
	for (int i = 0; i < 3; i++)
		assert_true(policy_rate_admit(&rate, 3, span, t0 + span + (uint64_t)i, &first));
	assert_false(policy_rate_admit(&rate, 3, span, t0 + span + 3, &first));
	assert_true(first);
	assert_true(rate.dropped == 1 && rate.dropped_total == 3);

	/* A clock that went back starts a new window rather than blocking. */
	assert_true(policy_rate_admit(&rate, 3, span, t0, &first));
	assert_int_equal(rate.used, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hooks_defaults),
	    cmocka_unit_test(test_hooks_take_their_values),
	    cmocka_unit_test(test_hooks_errors_name_file_and_line),
	    cmocka_unit_test(test_service_hooks_in_a_policy),
	    cmocka_unit_test(test_hooks_count_is_bounded),
	    cmocka_unit_test(test_hook_matches_types_and_globs_never_its_own_records),
	    cmocka_unit_test(test_rate_admits_limit_per_window_and_counts_drops),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
