/* SPDX-License-Identifier: MIT */
/* mtd-crowdsec's parsing: Go durations, the LAPI's decision stream, the alert
 * of an agent record, the credential files. */
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

#include "crowdsec.h"
#include "macro.h"

static void test_go_durations_parse(void **state)
{
	int64_t usec;

	assert_int_equal(crowdsec_parse_duration("3h59m58.5s", &usec), 0);
	assert_int_equal(usec, (3 * 3600 + 59 * 60 + 58) * 1000000LL + 500000);
	assert_int_equal(crowdsec_parse_duration("150ms", &usec), 0);
	assert_int_equal(usec, 150000);
	assert_int_equal(crowdsec_parse_duration("-1.5s", &usec), 0);
	assert_int_equal(usec, -1500000);
	assert_int_equal(crowdsec_parse_duration("2µs", &usec), 0);
	assert_int_equal(usec, 2);
	assert_int_equal(crowdsec_parse_duration("0", &usec), 0);
	assert_int_equal(usec, 0);
	assert_int_equal(crowdsec_parse_duration("", &usec), -EINVAL);
	assert_int_equal(crowdsec_parse_duration("4", &usec), -EINVAL);
	assert_int_equal(crowdsec_parse_duration("4d", &usec), -EINVAL);
	assert_int_equal(crowdsec_parse_duration("1h ", &usec), -EINVAL);
	assert_int_equal(crowdsec_parse_duration("h", &usec), -EINVAL);
	assert_int_equal(crowdsec_parse_duration("99999999999999h", &usec), -ERANGE);
}

static void test_stream_keeps_single_addresses_and_ranges(void **state)
{
	json_t *body = json_loads(
	    "{\"new\":["
	    "{\"type\":\"ban\",\"scope\":\"Ip\",\"value\":\"10.1.2.3\",\"duration\":\"9m59s\"},"
	    "{\"type\":\"ban\",\"scope\":\"Ip\",\"value\":\"fd00:0::1\",\"duration\":\"1h\"},"
	    "{\"type\":\"ban\",\"scope\":\"Range\",\"value\":\"10.9.0.7/32\",\"duration\":\"1h\"},"
	    "{\"type\":\"ban\",\"scope\":\"Range\",\"value\":\"10.8.0.0/16\",\"duration\":\"1h\"},"
	    "{\"type\":\"captcha\",\"scope\":\"Ip\",\"value\":\"10.1.1.1\",\"duration\":\"1h\"},"
	    "{\"type\":\"ban\",\"scope\":\"Country\",\"value\":\"FR\",\"duration\":\"1h\"},"
	    "{\"type\":\"ban\",\"scope\":\"Ip\",\"value\":\"10.1.1.2\",\"duration\":\"-3s\"},"
	    "{\"type\":\"ban\",\"scope\":\"Ip\",\"value\":\"10.1.1.300\",\"duration\":\"1h\"},"
	    "{\"type\":\"ban\",\"scope\":\"Ip\",\"value\":\"10.1.1.4/32\",\"duration\":\"1h\"},"
	    "{\"type\":\"ban\",\"scope\":\"Range\",\"value\":\"10.7.3.9/24\",\"duration\":\"2h\"},"
	    "{\"type\":\"ban\",\"scope\":\"Range\",\"value\":\"2001:db8:1:2::5/48\","
	    "\"duration\":\"1h\"},"
	    "{\"type\":\"ban\",\"scope\":\"Range\",\"value\":\"10.6.0.0/33\",\"duration\":\"1h\"},"
	    "{\"type\":\"ban\",\"scope\":\"Range\",\"value\":\"10.6.0.0/1x\",\"duration\":\"1h\"}],"
	    "\"deleted\":[{\"type\":\"ban\",\"scope\":\"Ip\",\"value\":\"10.5.5.5\","
	    "\"duration\":\"-1s\"},{\"type\":\"ban\",\"scope\":\"Range\",\"value\":"
	    "\"10.8.0.0/16\",\"duration\":\"-1s\"}]}",
	    0, NULL);
	struct crowdsec_stream s;
	char reason[CROWDSEC_REASON_MAX];

	assert_non_null(body);
	assert_int_equal(crowdsec_parse_stream(body, &s, reason), 0);
	assert_int_equal(s.n_bans, 6);
	assert_string_equal(s.bans[0].address, "10.1.2.3");
	assert_int_equal(s.bans[0].remaining_usec, 599 * 1000000LL);
	assert_string_equal(s.bans[1].address, "fd00::1");
	assert_string_equal(s.bans[2].address, "10.9.0.7");
	/* ranges, with their host bits cleared */
	assert_string_equal(s.bans[3].address, "10.8.0.0/16");
	assert_string_equal(s.bans[4].address, "10.7.3.0/24");
	assert_int_equal(s.bans[4].remaining_usec, 7200 * 1000000LL);
	assert_string_equal(s.bans[5].address, "2001:db8:1::/48");
	assert_int_equal(s.n_unbans, 2);
	assert_string_equal(s.unbans[0].address, "10.5.5.5");
	assert_string_equal(s.unbans[1].address, "10.8.0.0/16");
	/* captcha, Country, expired, .300, Ip with /32, /33, /1x */
	assert_int_equal(s.skipped, 7);
	crowdsec_stream_done(&s);
	json_decref(body);

	body = json_loads("{\"new\":null,\"deleted\":null}", 0, NULL);
	assert_int_equal(crowdsec_parse_stream(body, &s, reason), 0);
	assert_int_equal(s.n_bans + s.n_unbans + s.skipped, 0);
	crowdsec_stream_done(&s);
	json_decref(body);
	body = json_loads("{\"new\":{}}", 0, NULL);
	assert_int_equal(crowdsec_parse_stream(body, &s, reason), -EINVAL);
	assert_string_equal(reason, "decision stream: \"new\" is not an array");
	json_decref(body);
}

static void test_alert_only_for_blocks_carried_out(void **state)
{
	json_t *record = json_loads(
	    "{\"seq\":7,\"type\":\"source-blocked\",\"fields\":{\"service\":\"web\",\"source\":"
	    "\"10.0.0.9\",\"proto\":\"tcp\",\"port\":20042,\"evidence\":\"tcp-handshake\","
	    "\"block_sec\":600,\"strike\":1}}",
	    0, NULL);
	json_t *alert = crowdsec_alert_from_record(record, "2026-12-07T20:00:00Z");
	json_t *decision;

	assert_non_null(alert);
	assert_string_equal(json_string_value(json_object_get(alert, "scenario")), "mtd/decoy-hit");
	decision = json_array_get(json_object_get(alert, "decisions"), 0);
	assert_string_equal(json_string_value(json_object_get(decision, "type")), "ban");
	assert_string_equal(json_string_value(json_object_get(decision, "value")), "10.0.0.9");
	assert_string_equal(json_string_value(json_object_get(decision, "duration")), "600s");
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(alert, "source"), "scope")), "Ip");
	assert_string_equal(json_string_value(json_object_get(
				json_array_get(json_object_get(alert, "meta"), 0), "value")),
			    "web");
	json_decref(alert);

	/* simulated (monitor mode): decided, not done, so nothing for the fleet */
	json_object_set_new(json_object_get(record, "fields"), "simulated", json_true());
	assert_null(crowdsec_alert_from_record(record, "2026-12-07T20:00:00Z"));
	json_object_del(json_object_get(record, "fields"), "simulated");
	/* a decoy hit alone (a SYN's source may be forged) makes no alert */
	json_object_set_new(record, "type", json_string("decoy-hit"));
	assert_null(crowdsec_alert_from_record(record, "2026-12-07T20:00:00Z"));
	json_object_set_new(record, "type", json_string("source-blocked"));
	json_object_set_new(json_object_get(record, "fields"), "source", json_string("bogus"));
	assert_null(crowdsec_alert_from_record(record, "2026-12-07T20:00:00Z"));
	json_decref(record);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "we");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

static void test_credential_files(void **state)
{
	char dir[] = "/tmp/test_crowdsec.XXXXXX", path[64], key[256], reason[CROWDSEC_REASON_MAX];
	struct crowdsec_machine m;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/machine.yaml", dir);
	write_file(path, "url: http://10.0.0.1:8080\nlogin: host-a\npassword: 's3cret'\n", 0600);
	assert_int_equal(crowdsec_read_machine_file(path, &m, reason), 0);
	assert_string_equal(m.url, "http://10.0.0.1:8080");
	assert_string_equal(m.login, "host-a");
	assert_string_equal(m.password, "s3cret");
	/* readable by others: refused, saying why */
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(crowdsec_read_machine_file(path, &m, reason), -EPERM);
	assert_non_null(strstr(reason, "mode 0644"));
	write_file(path, "url: http://x\nlogin: a\n", 0600);
	assert_int_equal(crowdsec_read_machine_file(path, &m, reason), -EINVAL);
	assert_non_null(strstr(reason, "needs \"login:\" and \"password:\""));
	unlink(path);

	snprintf(path, sizeof(path), "%s/bouncer.key", dir);
	write_file(path, "0123abcd\n", 0600);
	assert_int_equal(crowdsec_read_key_file(path, key, sizeof(key), reason), 0);
	assert_string_equal(key, "0123abcd");
	write_file(path, "two words\n", 0600);
	assert_int_equal(crowdsec_read_key_file(path, key, sizeof(key), reason), -EINVAL);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_go_durations_parse),
	    cmocka_unit_test(test_stream_keeps_single_addresses_and_ranges),
	    cmocka_unit_test(test_alert_only_for_blocks_carried_out),
	    cmocka_unit_test(test_credential_files),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
