/* SPDX-License-Identifier: MIT */
/* The control protocol decoder: every request from a socket is hostile. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "control.h"
#include "macro.h"

static int decode(const char *text, struct control_request *request, char *reason)
{
	return control_request_decode(text, strlen(text), request, reason);
}

static void assert_refused(const char *text, const char *expected_reason)
{
	struct control_request request;
	char reason[CONTROL_REASON_MAX] = "";

	assert_int_equal(decode(text, &request, reason), -EINVAL);
	assert_string_equal(reason, expected_reason);
}

static void test_status_request_decodes(void **state)
{
	struct control_request request;
	char reason[CONTROL_REASON_MAX];

	assert_int_equal(decode("{\"command\":\"status\"}", &request, reason), 0);
	assert_int_equal(request.command, CONTROL_STATUS);
	assert_false(control_command_is_mutating(request.command));
}

static void test_reload_and_unblock_are_the_mutating_commands(void **state)
{
	struct control_request request;
	char reason[CONTROL_REASON_MAX];

	assert_int_equal(decode("{\"command\":\"reload\"}", &request, reason), 0);
	assert_int_equal(request.command, CONTROL_RELOAD);
	for (int c = 0; c < _CONTROL_COMMAND_MAX; c++)
		assert_int_equal(control_command_is_mutating(c),
				 c == CONTROL_RELOAD || c == CONTROL_UNBLOCK ||
				     c == CONTROL_QUARANTINE || c == CONTROL_RELEASE ||
				     c == CONTROL_REPLACE || c == CONTROL_SHARED_BLOCKS);
}

/* reload's one field: revoked clients' connections stay */
static void test_reload_keep_connections_round_trips(void **state)
{
	struct control_request request, back;
	char reason[CONTROL_REASON_MAX];
	char *text;

	assert_int_equal(decode("{\"command\":\"reload\"}", &request, reason), 0);
	assert_false(request.keep_connections);
	assert_int_equal(
	    decode("{\"command\":\"reload\",\"keep_connections\":true}", &request, reason), 0);
	assert_true(request.keep_connections);
	text = control_request_encode(&request);
	assert_non_null(text);
	assert_int_equal(decode(text, &back, reason), 0);
	assert_true(back.keep_connections);
	free(text);
	assert_int_equal(
	    decode("{\"command\":\"reload\",\"keep_connections\":1}", &request, reason), -EINVAL);
	assert_string_equal(reason, "reload: field \"keep_connections\" must be true or false");
}

static void test_metrics_is_read_only_and_takes_no_fields(void **state)
{
	struct control_request request;
	char reason[CONTROL_REASON_MAX];

	assert_int_equal(decode("{\"command\":\"metrics\"}", &request, reason), 0);
	assert_int_equal(request.command, CONTROL_METRICS);
	assert_false(control_request_needs_root(&request));
	assert_refused("{\"command\":\"metrics\",\"name\":\"web\"}",
		       "metrics: unknown field \"name\"");
}

static void test_quarantine_takes_a_target_and_a_reason(void **state)
{
	struct control_request request;
	char reason[CONTROL_REASON_MAX];

	assert_int_equal(decode("{\"command\":\"quarantine\",\"target\":\"web-3\","
				"\"reason\":\"odd outbound traffic\"}",
				&request, reason),
			 0);
	assert_string_equal(request.target, "web-3");
	assert_string_equal(request.reason, "odd outbound traffic");
	assert_refused("{\"command\":\"quarantine\"}", "quarantine: missing field \"target\"");
	assert_refused("{\"command\":\"release\",\"target\":\"../x\"}",
		       "release: \"target\" is not an instance id or service name");
	assert_refused("{\"command\":\"quarantine\",\"target\":\"web\",\"reason\":\"a\\nb\"}",
		       "quarantine: \"reason\" must be printable text of at most 199 characters");
	assert_refused("{\"command\":\"inspect\",\"target\":\"web-1\",\"reason\":\"x\"}",
		       "inspect: unknown field \"reason\"");
	assert_refused("{\"command\":\"inspect\",\"target\":\"web-1\",\"verify\":1}",
		       "inspect: field \"verify\" must be true or false");
}

static void test_replace_takes_a_target_only(void **state)
{
	struct control_request request;
	struct control_peer reader = {.uid = 1000, .in_read_group = true};
	char reason[CONTROL_REASON_MAX];

	assert_int_equal(decode("{\"command\":\"replace\",\"target\":\"web-3\"}", &request, reason),
			 0);
	assert_int_equal(request.command, CONTROL_REPLACE);
	assert_string_equal(request.target, "web-3");
	assert_false(control_peer_may(&reader, &request, reason));
	assert_string_equal(reason, "permission denied: replace requires root");
	assert_refused("{\"command\":\"replace\"}", "replace: missing field \"target\"");
	assert_refused("{\"command\":\"replace\",\"target\":\"web\",\"reason\":\"x\"}",
		       "replace: unknown field \"reason\"");
	assert_refused("{\"command\":\"replace\",\"target\":\"../x\"}",
		       "replace: \"target\" is not an instance id or service name");
}

/* shared-blocks: a bridge's bans (address, seconds), unbans and state;
 * root or the block group, never the read group. */
static void test_shared_blocks_typed_and_for_the_block_group(void **state)
{
	struct control_request request, again;
	struct control_peer reader = {.uid = 1000, .in_read_group = true},
			    bridge = {.uid = 998, .in_block_group = true};
	char reason[CONTROL_REASON_MAX];
	_cleanup_free_ char *text = NULL;

	assert_int_equal(
	    decode("{\"command\":\"shared-blocks\",\"ban\":[{\"address\":\"10.0.0.1\","
		   "\"seconds\":600},{\"address\":\"fd00::1\",\"seconds\":1},{\"address\":"
		   "\"10.8.0.0/16\",\"seconds\":60},{\"address\":\"ffff:ffff:ffff:ffff:ffff:ffff:"
		   "255.255.255.255/128\",\"seconds\":60}],\"unban\":[\"10.0.0.2\",\"2001:db8::/"
		   "32\"],\"bridge\":{\"engine\":\"crowdsec\",\"lapi\":\"up\","
		   "\"alerts_sent\":3,\"decisions_new\":2}}",
		   &request, reason),
	    0);
	assert_int_equal(request.command, CONTROL_SHARED_BLOCKS);
	assert_int_equal(request.n_bans, 4);
	assert_string_equal(request.bans[1].address, "fd00::1");
	assert_int_equal(request.bans[0].seconds, 600);
	assert_string_equal(request.bans[2].address, "10.8.0.0/16");
	assert_string_equal(request.bans[3].address,
			    "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255/128");
	assert_int_equal(request.n_unbans, 2);
	assert_string_equal(request.unbans[0], "10.0.0.2");
	assert_string_equal(request.unbans[1], "2001:db8::/32");
	assert_true(request.bridge.present);
	assert_string_equal(request.bridge.lapi, "up");
	assert_int_equal(request.bridge.alerts_sent, 3);
	assert_false(control_peer_may(&reader, &request, reason));
	assert_string_equal(reason,
			    "permission denied: shared-blocks requires root or the block group");
	assert_true(control_peer_may(&bridge, &request, reason));
	/* the block group is for shared-blocks alone */
	assert_int_equal(decode("{\"command\":\"reload\"}", &again, reason), 0);
	assert_false(control_peer_may(&bridge, &again, reason));

	text = control_request_encode(&request);
	assert_non_null(text);
	assert_int_equal(decode(text, &again, reason), 0);
	assert_int_equal(again.n_bans, 4);
	assert_int_equal(again.bans[1].seconds, 1);
	assert_string_equal(again.bans[2].address, "10.8.0.0/16");
	assert_string_equal(again.unbans[0], "10.0.0.2");
	assert_string_equal(again.unbans[1], "2001:db8::/32");
	assert_int_equal(again.bridge.decisions_new, 2);

	assert_refused("{\"command\":\"shared-blocks\"}",
		       "shared-blocks: needs \"ban\", \"unban\" or \"bridge\"");
	assert_refused("{\"command\":\"shared-blocks\",\"ban\":[{\"address\":\"10.0.0.1\"}]}",
		       "shared-blocks: ban 0 must be {\"address\", \"seconds\"}");
	static const char *const bad_ranges[] = {"10.0.0.0/8x", "10.0.0.0/",   "10.0.0.0/1280",
						 "x/8",		"/8",	       "10.0.0.0/8/8",
						 "10.0.0.0/-8", "10.0.0.0/33", "fd00::/129"};
	for (size_t i = 0; i < ELEMENTSOF(bad_ranges); i++) {
		char message[256];

		snprintf(message, sizeof(message),
			 "{\"command\":\"shared-blocks\",\"ban\":[{\"address\":\"%s\","
			 "\"seconds\":5}]}",
			 bad_ranges[i]);
		assert_refused(message, "shared-blocks: ban 0: \"address\" must be an IPv4 or IPv6 "
					"address or range (ADDRESS/LENGTH)");
		snprintf(message, sizeof(message),
			 "{\"command\":\"shared-blocks\",\"unban\":[\"%s\"]}", bad_ranges[i]);
		assert_refused(message, "shared-blocks: unban 0 must be an IPv4 or IPv6 address or "
					"range (ADDRESS/LENGTH)");
	}
	assert_refused("{\"command\":\"shared-blocks\",\"ban\":[{\"address\":\"10.0.0.1\","
		       "\"seconds\":0}]}",
		       "shared-blocks: ban 0: \"seconds\" must be an integer from 1 to 31622400");
	assert_refused("{\"command\":\"shared-blocks\",\"unban\":[\"x y\"]}",
		       "shared-blocks: unban 0 must be an IPv4 or IPv6 address or range "
		       "(ADDRESS/LENGTH)");
	assert_refused("{\"command\":\"shared-blocks\",\"bridge\":{\"lapi\":\"up\\n\"}}",
		       "shared-blocks: bridge \"lapi\" must be printable text of at most 15 "
		       "characters");
	assert_refused("{\"command\":\"shared-blocks\",\"bridge\":{\"admin\":true}}",
		       "shared-blocks: bridge: unknown field \"admin\"");
}

static void test_shared_blocks_at_most_32_of_each(void **state)
{
	char text[CONTROL_REQUEST_MAX], reason[CONTROL_REASON_MAX];
	struct control_request request;
	size_t len =
	    (size_t)snprintf(text, sizeof(text), "{\"command\":\"shared-blocks\",\"unban\":[");

	for (int i = 0; i < 33; i++)
		len += (size_t)snprintf(text + len, sizeof(text) - len, "%s\"10.0.0.%d\"",
					i ? "," : "", i);
	snprintf(text + len, sizeof(text) - len, "]}");
	assert_int_equal(decode(text, &request, reason), -EINVAL);
	assert_string_equal(reason, "shared-blocks: \"unban\" must be an array of at most 32");
}

/* inspect --verify reads every kept file: root only; plain inspect is a read. */
static void test_inspect_verify_is_for_root(void **state)
{
	struct control_request request;
	struct control_peer reader = {.uid = 1000, .in_read_group = true}, root = {.uid = 0};
	char reason[CONTROL_REASON_MAX];

	assert_int_equal(decode("{\"command\":\"inspect\",\"target\":\"web-1\"}", &request, reason),
			 0);
	assert_false(request.verify);
	assert_false(control_request_needs_root(&request));
	assert_true(control_peer_may(&reader, &request, reason));
	assert_int_equal(decode("{\"command\":\"inspect\",\"target\":\"web-1\",\"verify\":true}",
				&request, reason),
			 0);
	assert_true(request.verify);
	assert_true(control_request_needs_root(&request));
	assert_false(control_peer_may(&reader, &request, reason));
	assert_string_equal(reason, "permission denied: inspect --verify requires root");
	assert_true(control_peer_may(&root, &request, reason));
	assert_int_equal(decode("{\"command\":\"reload\"}", &request, reason), 0);
	assert_false(control_peer_may(&reader, &request, reason));
	assert_string_equal(reason, "permission denied: reload requires root");
}

static void test_unblock_takes_an_address(void **state)
{
	struct control_request request;
	char reason[CONTROL_REASON_MAX];

	assert_int_equal(
	    decode("{\"command\":\"unblock\",\"address\":\"10.0.0.2\"}", &request, reason), 0);
	assert_string_equal(request.address, "10.0.0.2");
	assert_int_equal(
	    decode("{\"command\":\"unblock\",\"address\":\"fd00::2\"}", &request, reason), 0);
	assert_refused("{\"command\":\"unblock\"}", "unblock: missing field \"address\"");
	assert_refused("{\"command\":\"unblock\",\"address\":\"10.0.0.2; rm\"}",
		       "unblock: field \"address\" must be an IPv4 or IPv6 address");
	assert_refused("{\"command\":\"unblock\",\"address\":[1]}",
		       "unblock: field \"address\" must be an IPv4 or IPv6 address");
}

static void test_policy_show_takes_a_valid_name(void **state)
{
	struct control_request request;
	char reason[CONTROL_REASON_MAX];

	assert_int_equal(
	    decode("{\"command\":\"policy-show\",\"name\":\"web-1\"}", &request, reason), 0);
	assert_string_equal(request.name, "web-1");
	assert_refused("{\"command\":\"policy-show\"}", "policy-show: missing field \"name\"");
	assert_refused("{\"command\":\"policy-show\",\"name\":7}",
		       "policy-show: field \"name\" must be a string");
	assert_refused("{\"command\":\"policy-show\",\"name\":\"../etc\"}",
		       "policy-show: \"name\" is not a valid service name");
	assert_refused("{\"command\":\"policy-show\",\"name\":\"\"}",
		       "policy-show: \"name\" is not a valid service name");
	assert_refused("{\"command\":\"policy-show\",\"name\":"
		       "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
		       "policy-show: \"name\" is not a valid service name");
}

static void test_audit_show_fields_are_typed(void **state)
{
	struct control_request request;
	char reason[CONTROL_REASON_MAX];

	assert_int_equal(
	    decode("{\"command\":\"audit-show\",\"since\":42,\"follow\":true}", &request, reason),
	    0);
	assert_int_equal(request.since, 42);
	assert_true(request.follow);
	assert_int_equal(decode("{\"command\":\"audit-show\"}", &request, reason), 0);
	assert_int_equal(request.since, 0);
	assert_false(request.follow);
	assert_refused("{\"command\":\"audit-show\",\"since\":-1}",
		       "audit-show: field \"since\" must be a non-negative integer");
	assert_refused("{\"command\":\"audit-show\",\"since\":\"1\"}",
		       "audit-show: field \"since\" must be a non-negative integer");
	assert_refused("{\"command\":\"audit-show\",\"follow\":1}",
		       "audit-show: field \"follow\" must be true or false");
}

static void test_unknown_commands_and_fields_are_refused(void **state)
{
	assert_refused(
	    "{\"command\":\"shutdown\"}",
	    "unknown command (known: status, policy-list, policy-show, reload, "
	    "audit-show, unblock, instances, quarantine, release, inspect, metrics, replace, "
	    "shared-blocks)");
	assert_refused("{\"command\":\"status\",\"force\":true}",
		       "status: unknown field \"force\"");
	assert_refused("{\"command\":\"reload\",\"name\":\"web\"}",
		       "reload: unknown field \"name\"");
	assert_refused("{\"command\":\"status\",\"bad key\":1}", "status: unknown field");
	assert_refused("{}", "missing field \"command\"");
	assert_refused("{\"command\":3}", "field \"command\" must be a string");
}

static void test_malformed_messages_are_refused(void **state)
{
	struct control_request request;
	char reason[CONTROL_REASON_MAX];

	assert_refused("[\"status\"]", "request must be a JSON object");
	assert_int_equal(decode("\"status\"", &request, reason), -EINVAL);
	assert_non_null(strstr(reason, "malformed JSON"));
	assert_int_equal(decode("{\"command\":", &request, reason), -EINVAL);
	assert_non_null(strstr(reason, "malformed JSON"));
	assert_int_equal(control_request_decode("", 0, &request, reason), -EINVAL);
	assert_string_equal(reason, "empty request");
	assert_int_equal(
	    control_request_decode("{\"command\":\"status\"}\0x", 22, &request, reason), -EINVAL);
	assert_string_equal(reason, "request contains a NUL byte");
	assert_refused("{\"command\":\"status\",\"command\":\"reload\"}",
		       "malformed JSON at column 29: duplicate object key near '\"command\"'");
}

static void test_oversized_request_is_refused(void **state)
{
	size_t len = CONTROL_REQUEST_MAX + 1;
	_cleanup_free_ char *big = malloc(len);
	struct control_request request;
	char reason[CONTROL_REASON_MAX];

	assert_non_null(big);
	memset(big, ' ', len);
	assert_int_equal(control_request_decode(big, len, &request, reason), -EMSGSIZE);
	assert_non_null(strstr(reason, "too large"));
}

static void test_encode_round_trips(void **state)
{
	struct control_request in = {.command = CONTROL_AUDIT_SHOW, .since = 7, .follow = true};
	struct control_request out;
	char reason[CONTROL_REASON_MAX];
	_cleanup_free_ char *text = control_request_encode(&in);

	assert_non_null(text);
	assert_int_equal(decode(text, &out, reason), 0);
	assert_int_equal(out.command, CONTROL_AUDIT_SHOW);
	assert_int_equal(out.since, 7);
	assert_true(out.follow);
}

static void test_replies_are_json_objects(void **state)
{
	_cleanup_free_ char *ok = control_reply_ok(NULL);
	_cleanup_free_ char *error = control_reply_error("nope");

	assert_string_equal(ok, "{\"ok\":true}");
	assert_string_equal(error, "{\"ok\":false,\"error\":\"nope\"}");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_status_request_decodes),
	    cmocka_unit_test(test_reload_and_unblock_are_the_mutating_commands),
	    cmocka_unit_test(test_reload_keep_connections_round_trips),
	    cmocka_unit_test(test_unblock_takes_an_address),
	    cmocka_unit_test(test_metrics_is_read_only_and_takes_no_fields),
	    cmocka_unit_test(test_quarantine_takes_a_target_and_a_reason),
	    cmocka_unit_test(test_replace_takes_a_target_only),
	    cmocka_unit_test(test_policy_show_takes_a_valid_name),
	    cmocka_unit_test(test_audit_show_fields_are_typed),
	    cmocka_unit_test(test_unknown_commands_and_fields_are_refused),
	    cmocka_unit_test(test_malformed_messages_are_refused),
	    cmocka_unit_test(test_oversized_request_is_refused),
	    cmocka_unit_test(test_inspect_verify_is_for_root),
	    cmocka_unit_test(test_shared_blocks_typed_and_for_the_block_group),
	    cmocka_unit_test(test_shared_blocks_at_most_32_of_each),
	    cmocka_unit_test(test_encode_round_trips),
	    cmocka_unit_test(test_replies_are_json_objects),
	};
	return cmocka_run_group_tests_name("control_proto", tests, NULL, NULL);
}
