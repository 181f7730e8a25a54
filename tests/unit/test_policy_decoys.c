/* SPDX-License-Identifier: MIT */
/* Who decoys may block and for how long: the [Rotation] keys NeverBlock=,
 * DecoyBlockFactor=, DecoyBlockMax=, DecoyRepeatWindow=, the global file's
 * [Decoys] section (policy_globals_*) and policy_cidr_contains(). Every error
 * is checked with its exact line. Runs from the repo root (KeyFile=). */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "policy.h"
#include "policy_internal.h"

#define FILE_NAME "tests/policy/good/decoys.policy"

/* A host service; the lines of extra start at line 7. */
static const char head[] = "[Service]\n"
			   "Name=web\n"
			   "Backend=127.0.0.1:80\n"
			   "[Rotation]\n"
			   "PublicPorts=20000-20099\n"
			   "KeyFile=../keys/test.key\n";

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

static struct policy *parse_ok(const char *extra)
{
	struct policy_errors errors = {0};
	struct policy *p = NULL;
	char text[4096];
	int r;

	snprintf(text, sizeof(text), "%s%s", head, extra);
	r = policy_parse_buffer(FILE_NAME, text, strlen(text), &p, &errors);
	if (r != 0)
		fail_msg("parse failed (%d):\n%s", r, render_errors(&errors));
	assert_non_null(p);
	return p;
}

/* Parsing head + extra fails with exactly the error lines want. */
static void assert_errors(const char *extra, const char *want)
{
	struct policy_errors errors = {0};
	struct policy *p = NULL;
	char text[4096], *got;

	snprintf(text, sizeof(text), "%s%s", head, extra);
	assert_int_equal(policy_parse_buffer(FILE_NAME, text, strlen(text), &p, &errors), -EINVAL);
	assert_null(p);
	got = render_errors(&errors);
	if (strcmp(got, want) != 0)
		fail_msg("--- expected\n%s--- got\n%s", want, got);
	free(got);
	policy_errors_free(&errors);
}

static const char *cidr_text(const struct cidr *c)
{
	static char buf[POLICY_CIDR_MAX];
	return policy_format_cidr(buf, sizeof(buf), c);
}

static void test_decoy_keys_default_without_decoys(void **state)
{
	struct policy *p = parse_ok("");

	assert_int_equal(p->decoys, 0);
	assert_int_equal(p->never_block_count, 0);
	assert_null(p->never_block);
	assert_int_equal(p->decoy_block_factor, 2);
	assert_true(p->decoy_block_usec == 10 * USEC_PER_MINUTE);
	assert_true(p->decoy_block_max_usec == USEC_PER_DAY);
	assert_true(p->decoy_repeat_window_usec == USEC_PER_DAY);
	policy_free(p);
}

/* Accepted without Decoys= too, like DecoyBlock=. */
static void test_decoy_keys_take_their_values(void **state)
{
	struct policy *p = parse_ok("NeverBlock=192.0.2.0/24 2001:db8::/32\n"
				    "NeverBlock=10.0.0.7   fd00::1\n"
				    "NeverBlock=::ffff:198.51.100.0/120\n"
				    "DecoyBlockFactor=100\n"
				    "DecoyBlock=1h\n"
				    "DecoyBlockMax=30d\n"
				    "DecoyRepeatWindow=12h 30min\n");

	assert_int_equal(p->never_block_count, 5);
	assert_string_equal(cidr_text(&p->never_block[0]), "192.0.2.0/24");
	assert_string_equal(cidr_text(&p->never_block[1]), "2001:db8::/32");
	assert_string_equal(cidr_text(&p->never_block[2]), "10.0.0.7/32");
	assert_string_equal(cidr_text(&p->never_block[3]), "fd00::1/128");
	assert_string_equal(cidr_text(&p->never_block[4]), "::ffff:198.51.100.0/120");
	assert_int_equal(p->decoy_block_factor, 100);
	assert_true(p->decoy_block_max_usec == 30 * USEC_PER_DAY);
	assert_true(p->decoy_repeat_window_usec == 12 * USEC_PER_HOUR + 30 * USEC_PER_MINUTE);
	policy_free(p);

	p = parse_ok("Decoys=4\nDecoyBlockFactor=1\nDecoyBlock=2h\nDecoyBlockMax=2h\n"
		     "DecoyRepeatWindow=0\n");
	assert_int_equal(p->decoy_block_factor, 1);
	assert_true(p->decoy_block_max_usec == 2 * USEC_PER_HOUR);
	assert_true(p->decoy_repeat_window_usec == 0);
	policy_free(p);
}

/* DecoyBlockMax= left out is 1d, or DecoyBlock= when that is longer: a file
 * valid before the key existed stays valid. */
static void test_decoy_block_max_default_covers_long_decoy_block(void **state)
{
	struct policy *p = parse_ok("DecoyBlock=1w\n");

	assert_true(p->decoy_block_max_usec == USEC_PER_WEEK);
	policy_free(p);
}

static void test_decoy_block_max_must_cover_decoy_block(void **state)
{
	assert_errors("DecoyBlockMax=5min\n",
		      FILE_NAME ":7: Rotation.DecoyBlockMax: 5min is shorter than DecoyBlock= "
				"(10min)\n");
	assert_errors("DecoyBlock=2h\nDecoyBlockMax=1h 59min\n",
		      FILE_NAME ":8: Rotation.DecoyBlockMax: 1h 59min is shorter than "
				"DecoyBlock= (2h)\n");
}

static void test_decoy_number_and_span_errors(void **state)
{
	assert_errors("DecoyBlockFactor=0\n",
		      FILE_NAME ":7: Rotation.DecoyBlockFactor: \"0\": must be 1 to 100\n");
	assert_errors("DecoyBlockFactor=101\n",
		      FILE_NAME ":7: Rotation.DecoyBlockFactor: \"101\": must be 1 to 100\n");
	assert_errors("DecoyBlockFactor=1.5\n",
		      FILE_NAME ":7: Rotation.DecoyBlockFactor: \"1.5\": not an unsigned decimal "
				"number\n");
	assert_errors("DecoyBlockMax=31d\n",
		      FILE_NAME ":7: Rotation.DecoyBlockMax: \"31d\": time span too long\n");
	assert_errors("DecoyRepeatWindow=30d 1s\n",
		      FILE_NAME ":7: Rotation.DecoyRepeatWindow: \"30d 1s\": time span too long\n");
	assert_errors("DecoyRepeatWindow=1 fortnight\n",
		      FILE_NAME ":7: Rotation.DecoyRepeatWindow: \"1 fortnight\": unknown time "
				"unit\n");
	assert_errors("DecoyBlockFactor=3\nDecoyBlockFactor=4\n",
		      FILE_NAME ":8: Rotation.DecoyBlockFactor: given twice (first at line 7); "
				"this key does not repeat\n");
}

/* Host bits name the network that was probably meant; every bad word of a
 * line is reported, the good ones of it kept out of a failed parse. */
static void test_never_block_errors(void **state)
{
	assert_errors("NeverBlock=10.1.2.3/8\n",
		      FILE_NAME ":7: Rotation.NeverBlock: \"10.1.2.3/8\": host bits set after "
				"the /8 prefix (the network is 10.0.0.0/8)\n");
	assert_errors("NeverBlock=fd00::1/64\n",
		      FILE_NAME ":7: Rotation.NeverBlock: \"fd00::1/64\": host bits set after "
				"the /64 prefix (the network is fd00::/64)\n");
	assert_errors("NeverBlock=192.0.2.1 bastion 10.0.0.0/33\n",
		      FILE_NAME ":7: Rotation.NeverBlock: \"bastion\": not an IPv4 or IPv6 "
				"address\n" FILE_NAME
				":7: Rotation.NeverBlock: \"10.0.0.0/33\": prefix length not in "
				"0-32\n");
	assert_errors("NeverBlock=192.0.2.0/24\nNeverBlock=::1/129\n",
		      FILE_NAME ":8: Rotation.NeverBlock: \"::1/129\": prefix length not in "
				"0-128\n");
}

/* Like every repeating key of a policy (AddressPool=, SystemCalls=, ...), an
 * empty NeverBlock= is an error, not a reset of the list. */
static void test_never_block_empty_assignment_is_an_error(void **state)
{
	assert_errors("NeverBlock=192.0.2.0/24\nNeverBlock=\n",
		      FILE_NAME ":8: Rotation.NeverBlock: empty value\n");
	assert_errors("NeverBlock=   # nobody\n",
		      FILE_NAME ":7: Rotation.NeverBlock: empty value\n");
}

static void test_decoys_section_belongs_to_the_global_file(void **state)
{
	assert_errors("[Decoys]\nUDPBlockLimit=1/1s\n",
		      FILE_NAME ":7: unknown section \"Decoys\" (expected [Service], [Rotation] or "
				"[Envelope])\n");
}

static void test_json_has_decoy_keys(void **state)
{
	struct policy *p = parse_ok("NeverBlock=192.0.2.0/24 fd00::1\nDecoyBlockFactor=3\n"
				    "DecoyRepeatWindow=2h\n");
	json_t *j = policy_to_json(p), *rot;

	assert_non_null(j);
	rot = json_object_get(j, "rotation");
	assert_int_equal(json_array_size(json_object_get(rot, "never_block")), 2);
	assert_string_equal(
	    json_string_value(json_array_get(json_object_get(rot, "never_block"), 1)),
	    "fd00::1/128");
	assert_int_equal(json_integer_value(json_object_get(rot, "decoy_block_factor")), 3);
	assert_string_equal(json_string_value(json_object_get(rot, "decoy_block_max")), "1d");
	assert_true(json_integer_value(json_object_get(rot, "decoy_block_max_usec")) ==
		    (json_int_t)USEC_PER_DAY);
	assert_string_equal(json_string_value(json_object_get(rot, "decoy_repeat_window")), "2h");
	assert_true(json_integer_value(json_object_get(rot, "decoy_repeat_window_usec")) ==
		    (json_int_t)(2 * USEC_PER_HOUR));
	json_decref(j);
	policy_free(p);
}

/* --- the global file ---------------------------------------------------------- */

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
	if (strcmp(got, want) != 0)
		fail_msg("--- expected\n%s--- got\n%s", want, got);
	free(got);
	policy_errors_free(&errors);
}

static void assert_default_globals(const struct policy_globals *g)
{
	assert_int_equal(g->never_block_count, 0);
	assert_int_equal(g->udp_block_limit, 32);
	assert_true(g->udp_block_interval_usec == USEC_PER_MINUTE);
}

static void test_globals_missing_file_gives_defaults_unless_required(void **state)
{
	struct policy_errors errors = {0};
	struct policy_globals *g = NULL;
	char *got;

	assert_int_equal(policy_globals_load("/nonexistent/mtd.conf", false, &g, &errors), 0);
	assert_non_null(g);
	assert_null(g->path);
	assert_default_globals(g);
	assert_int_equal(errors.count, 0);
	policy_globals_free(g);
	g = NULL;

	assert_int_equal(policy_globals_load("/nonexistent/mtd.conf", true, &g, &errors), -EINVAL);
	assert_null(g);
	got = render_errors(&errors);
	assert_string_equal(got, "/nonexistent/mtd.conf: cannot read: No such file or directory\n");
	free(got);
	policy_errors_free(&errors);

	/* A directory is no missing file: an error with or without must_exist. */
	assert_int_equal(policy_globals_load("tests/policy", false, &g, &errors), -EINVAL);
	assert_null(g);
	got = render_errors(&errors);
	assert_string_equal(got, "tests/policy: cannot read: not a regular file\n");
	free(got);
	policy_errors_free(&errors);
}

static void test_globals_empty_file_gives_defaults(void **state)
{
	struct policy_globals *g = globals_ok("# nothing set\n\n[Decoys]\n");

	assert_string_equal(g->path, "mtd.conf");
	assert_default_globals(g);
	policy_globals_free(g);
}

static void test_globals_take_their_values(void **state)
{
	struct policy_globals *g = globals_ok("[Decoys]\n"
					      "NeverBlock=192.0.2.10 198.51.100.0/24\n"
					      "NeverBlock=2001:db8:1::/48   # the scanners\n"
					      "UDPBlockLimit=100000/1d\n");

	assert_int_equal(g->never_block_count, 3);
	assert_string_equal(cidr_text(&g->never_block[0]), "192.0.2.10/32");
	assert_string_equal(cidr_text(&g->never_block[1]), "198.51.100.0/24");
	assert_string_equal(cidr_text(&g->never_block[2]), "2001:db8:1::/48");
	assert_int_equal(g->udp_block_limit, 100000);
	assert_true(g->udp_block_interval_usec == USEC_PER_DAY);
	policy_globals_free(g);

	g = globals_ok("[Decoys]\nUDPBlockLimit=0/1s\n");
	assert_int_equal(g->udp_block_limit, 0);
	assert_true(g->udp_block_interval_usec == USEC_PER_SEC);
	policy_globals_free(g);
}

static void test_globals_load_reads_a_file(void **state)
{
	char path[] = "/tmp/mtd-test-conf.XXXXXX";
	struct policy_errors errors = {0};
	struct policy_globals *g = NULL;
	int fd = mkstemp(path);
	static const char good[] = "[Decoys]\nNeverBlock=10.9.0.0/16\nUDPBlockLimit=5/10s\n";
	static const char bad[] = "[Decoys]\nUDPBlockLimit=5\n";
	char want[256], *got;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, good, sizeof(good) - 1), (ssize_t)sizeof(good) - 1);
	assert_int_equal(policy_globals_load(path, true, &g, &errors), 0);
	assert_string_equal(g->path, path);
	assert_int_equal(g->never_block_count, 1);
	assert_int_equal(g->udp_block_limit, 5);
	assert_true(g->udp_block_interval_usec == 10 * USEC_PER_SEC);
	policy_globals_free(g);
	g = NULL;

	assert_int_equal(ftruncate(fd, 0), 0);
	assert_int_equal(pwrite(fd, bad, sizeof(bad) - 1, 0), (ssize_t)sizeof(bad) - 1);
	assert_int_equal(policy_globals_load(path, false, &g, &errors), -EINVAL);
	assert_null(g);
	got = render_errors(&errors);
	snprintf(want, sizeof(want),
		 "%s:2: Decoys.UDPBlockLimit: \"5\": expected SOURCES/SPAN (e.g. 32/1min)\n", path);
	assert_string_equal(got, want);
	free(got);
	policy_errors_free(&errors);
	close(fd);
	unlink(path);
}

static void test_globals_udp_block_limit_errors(void **state)
{
	assert_globals_errors(
	    "[Decoys]\n"
	    "UDPBlockLimit=32\n",
	    "mtd.conf:2: Decoys.UDPBlockLimit: \"32\": expected SOURCES/SPAN (e.g. "
	    "32/1min)\n");
	assert_globals_errors("[Decoys]\nUDPBlockLimit=/1min\n",
			      "mtd.conf:2: Decoys.UDPBlockLimit: \"/1min\": expected SOURCES/SPAN "
			      "(e.g. 32/1min)\n");
	assert_globals_errors("[Decoys]\nUDPBlockLimit=32/\n",
			      "mtd.conf:2: Decoys.UDPBlockLimit: \"32/\": expected SOURCES/SPAN "
			      "(e.g. 32/1min)\n");
	assert_globals_errors("[Decoys]\nUDPBlockLimit=100001/1min\n",
			      "mtd.conf:2: Decoys.UDPBlockLimit: \"100001/1min\": SOURCES not in "
			      "0-100000\n");
	assert_globals_errors("[Decoys]\nUDPBlockLimit=-1/1min\n",
			      "mtd.conf:2: Decoys.UDPBlockLimit: \"-1/1min\": SOURCES not in "
			      "0-100000\n");
	assert_globals_errors("[Decoys]\nUDPBlockLimit=32/0\n",
			      "mtd.conf:2: Decoys.UDPBlockLimit: \"32/0\": SPAN shorter than 1s\n");
	assert_globals_errors("[Decoys]\nUDPBlockLimit=32/999ms\n",
			      "mtd.conf:2: Decoys.UDPBlockLimit: \"32/999ms\": SPAN shorter than "
			      "1s\n");
	assert_globals_errors("[Decoys]\nUDPBlockLimit=32/1d 1s\n",
			      "mtd.conf:2: Decoys.UDPBlockLimit: \"32/1d 1s\": SPAN longer than "
			      "1d\n");
	assert_globals_errors(
	    "[Decoys]\nUDPBlockLimit=32/1 moon\n",
	    "mtd.conf:2: Decoys.UDPBlockLimit: \"32/1 moon\": unknown time unit\n");
}

/* Every error of the file, in line order, in the policy files' shape. */
static void test_globals_report_every_error(void **state)
{
	assert_globals_errors(
	    "UDPBlockLimit=1/1s\n"
	    "[Service]\n"
	    "Name=web\n"
	    "[Decoys]\n"
	    "UDPBlockLimit=1/1s\n"
	    "UDPBlockLimit=2/1s\n"
	    "neverblock=10.0.0.0/8\n"
	    "Whitelist=10.0.0.0/8\n"
	    "NeverBlock=10.0.0.1/8 ::/0\n",
	    "mtd.conf:1: Key=Value before any [Section]\n"
	    "mtd.conf:2: unknown section \"Service\" (expected [Agent], [Decoys] or [Hooks])\n"
	    "mtd.conf:6: Decoys.UDPBlockLimit: given twice (first at line 5); this "
	    "key does not repeat\n"
	    "mtd.conf:7: Decoys.neverblock: unknown key (did you mean "
	    "NeverBlock=?)\n"
	    "mtd.conf:8: Decoys.Whitelist: unknown key\n"
	    "mtd.conf:9: Decoys.NeverBlock: \"10.0.0.1/8\": host bits set after the "
	    "/8 prefix (the network is 10.0.0.0/8)\n");
	assert_globals_errors("[Decoys]\nNeverBlock=\n",
			      "mtd.conf:2: Decoys.NeverBlock: empty value\n");
	/* The policy files' keys are not the global file's. */
	assert_globals_errors("[Decoys]\nDecoyBlock=1h\n",
			      "mtd.conf:2: Decoys.DecoyBlock: unknown key\n");
}

/* --- policy_cidr_contains ----------------------------------------------------- */

static bool contains(const char *cidr, const char *addr)
{
	struct cidr c;
	struct in6_addr a6;
	struct in_addr a4;

	assert_int_equal(policy_parse_cidr(cidr, true, &c, NULL), 0);
	if (inet_pton(AF_INET, addr, &a4) == 1)
		return policy_cidr_contains(&c, AF_INET, &a4);
	assert_int_equal(inet_pton(AF_INET6, addr, &a6), 1);
	return policy_cidr_contains(&c, AF_INET6, &a6);
}

static void test_cidr_contains(void **state)
{
	struct cidr c;
	struct in_addr a4 = {0};

	assert_true(contains("192.0.2.0/24", "192.0.2.0"));
	assert_true(contains("192.0.2.0/24", "192.0.2.255"));
	assert_false(contains("192.0.2.0/24", "192.0.3.0"));
	assert_false(contains("192.0.2.0/25", "192.0.2.128"));
	assert_true(contains("192.0.2.7", "192.0.2.7"));
	assert_false(contains("192.0.2.7", "192.0.2.6"));
	assert_true(contains("0.0.0.0/0", "203.0.113.9"));
	assert_true(contains("2001:db8::/32", "2001:db8:ffff::1"));
	assert_false(contains("2001:db8::/32", "2001:db9::1"));
	assert_true(contains("fd00::1", "fd00::1"));
	assert_false(contains("fd00::1", "fd00::2"));
	/* Families do not mix, */
	assert_false(contains("0.0.0.0/0", "2001:db8::1"));
	assert_false(contains("::/0", "192.0.2.1"));
	/* but an IPv4-mapped address is its IPv4 address, on either side. */
	assert_true(contains("192.0.2.0/24", "::ffff:192.0.2.44"));
	assert_false(contains("192.0.2.0/24", "::ffff:192.0.3.44"));
	assert_true(contains("::ffff:192.0.2.0/120", "192.0.2.44"));
	assert_false(contains("::ffff:192.0.2.0/120", "192.0.3.44"));
	assert_true(contains("::ffff:192.0.2.0/120", "::ffff:192.0.2.1"));
	assert_false(contains("192.0.2.0/24", "::192.0.2.44")); /* compatible, not mapped */
	/* Any other family matches nothing. */
	assert_int_equal(policy_parse_cidr("0.0.0.0/0", false, &c, NULL), 0);
	assert_false(policy_cidr_contains(&c, AF_UNIX, &a4));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_decoy_keys_default_without_decoys),
	    cmocka_unit_test(test_decoy_keys_take_their_values),
	    cmocka_unit_test(test_decoy_block_max_default_covers_long_decoy_block),
	    cmocka_unit_test(test_decoy_block_max_must_cover_decoy_block),
	    cmocka_unit_test(test_decoy_number_and_span_errors),
	    cmocka_unit_test(test_never_block_errors),
	    cmocka_unit_test(test_never_block_empty_assignment_is_an_error),
	    cmocka_unit_test(test_decoys_section_belongs_to_the_global_file),
	    cmocka_unit_test(test_json_has_decoy_keys),
	    cmocka_unit_test(test_globals_missing_file_gives_defaults_unless_required),
	    cmocka_unit_test(test_globals_empty_file_gives_defaults),
	    cmocka_unit_test(test_globals_take_their_values),
	    cmocka_unit_test(test_globals_load_reads_a_file),
	    cmocka_unit_test(test_globals_udp_block_limit_errors),
	    cmocka_unit_test(test_globals_report_every_error),
	    cmocka_unit_test(test_cidr_contains),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
