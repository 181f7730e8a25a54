/* SPDX-License-Identifier: MIT */
/* mtd-client's profile (client/profile.c, docs/clients.md): what it reads, and
 * the one-line error, file:line: why, for everything it refuses. */
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

#include "client.h"

#define KEY_HEX "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

static const char full[] = "# written by mtdctl client add\n"
			   "[Profile]\n"
			   "Version=1\n"
			   "Service=web\n"
			   "Client=alice\n"
			   "Host=203.0.113.5\n"
			   "Host = web2.example.org   198.51.100.7\n"
			   "Host=2001:DB8::1\n"
			   "Protocol=tcp\n"
			   "PublicPorts=20000-29999\n"
			   "Interval=1min\n"
			   "Grace=2s 500ms\n"
			   "Auth=knock\n"
			   "Key=" KEY_HEX "\n";

static int parse(const char *text, struct profile *p, char *error)
{
	return profile_parse(text, strlen(text), "p", p, error, PROFILE_MAX_ERROR);
}

static void test_profile_reads_every_key(void **state)
{
	static struct profile p;
	char error[PROFILE_MAX_ERROR] = "";
	uint8_t want_key[32];

	for (int i = 0; i < 32; i++)
		want_key[i] = (uint8_t)i;
	assert_int_equal(parse(full, &p, error), 0);
	assert_string_equal(p.service, "web");
	assert_string_equal(p.client, "alice");
	assert_int_equal(p.n_hosts, 3);
	assert_string_equal(p.hosts[0].address, "203.0.113.5");
	assert_string_equal(p.hosts[0].host_id, "203.0.113.5");
	assert_string_equal(p.hosts[1].address, "web2.example.org");
	assert_string_equal(p.hosts[1].host_id, "198.51.100.7");
	/* an address without a host id is its own, in the agent's textual form */
	assert_string_equal(p.hosts[2].address, "2001:DB8::1");
	assert_string_equal(p.hosts[2].host_id, "2001:db8::1");
	assert_int_equal(p.protocol, PROFILE_PROTOCOL_TCP);
	assert_int_equal(p.first, 20000);
	assert_int_equal(p.last, 29999);
	assert_int_equal(p.interval_sec, 60);
	assert_int_equal(p.grace_usec, 2500000);
	assert_int_equal(p.auth, PROFILE_AUTH_KNOCK);
	assert_int_equal(p.key_len, 32);
	assert_memory_equal(p.key, want_key, 32);

	assert_ptr_equal(profile_find_host(&p, "web2.example.org"), &p.hosts[1]);
	assert_ptr_equal(profile_find_host(&p, "198.51.100.7"), &p.hosts[1]);
	assert_null(profile_find_host(&p, "192.0.2.1"));
	profile_clear(&p);
	assert_int_equal(p.key[1], 0);
}

static void test_profile_defaults(void **state)
{
	static struct profile p;
	char error[PROFILE_MAX_ERROR] = "";

	assert_int_equal(parse("[Profile]\nVersion=1\nService=ssh\nClient=ops-1\nHost=host-a\n"
			       "PublicPorts=40000-40009\nInterval=1\nKey=" KEY_HEX "\n",
			       &p, error),
			 0);
	assert_int_equal(p.protocol, PROFILE_PROTOCOL_TCP);
	assert_int_equal(p.auth, PROFILE_AUTH_NONE);
	assert_int_equal(p.grace_usec, 0);
	assert_int_equal(p.interval_sec, 1);
	/* a host name is its own host id (HostId=host-a on the agent) */
	assert_string_equal(p.hosts[0].host_id, "host-a");
}

/* Replaces the line of full that starts with prefix by line (NULL: drops
 * it), parses, and expects error. */
static void expect_error(const char *prefix, const char *line, const char *want)
{
	static struct profile p;
	char text[4096] = "", error[PROFILE_MAX_ERROR] = "";
	const char *at = full;

	while (*at) {
		const char *nl = strchr(at, '\n');
		size_t n = (size_t)(nl - at) + 1;

		if (!strncmp(at, prefix, strlen(prefix))) {
			if (line) {
				strcat(text, line);
				strcat(text, "\n");
			}
		} else
			strncat(text, at, n);
		at += n;
	}
	if (parse(text, &p, error) != -EINVAL)
		fail_msg("%s: parsed", line ? line : prefix);
	assert_string_equal(error, want);
	/* nothing of a refused profile is kept */
	assert_int_equal(p.key_len, 0);
	assert_int_equal(p.n_hosts, 0);
}

static void test_profile_refuses_with_file_line_why(void **state)
{
	expect_error("Version=", "Version=2",
		     "p:3: Version=2: this mtd-client reads version 1 "
		     "profiles only");
	expect_error("Version=", "Version=one", "p:3: Version=: 'one' is not a number");
	expect_error("Service=", "Service=Web",
		     "p:4: Service=: 'Web' is not a service name ([a-z0-9][a-z0-9_-], at most 32)");
	expect_error("Client=", "Client=-x",
		     "p:5: Client=: '-x' is not a client name (1 to 64 of A-Z a-z 0-9 _ . -, not "
		     "first . or -)");
	expect_error("Host=203", "Host=203.0.113.5 a b",
		     "p:6: Host=: expected ADDRESS [HOSTID], got more words");
	expect_error("Host=203", "Host=web_1",
		     "p:6: Host=: 'web_1' is not an IP address or a host "
		     "name");
	expect_error("Host=203", "Host=203.0.113.5 id/1",
		     "p:6: Host=: host id 'id/1' is not valid (1 to 255 of A-Z a-z 0-9 _ . : -)");
	expect_error("Host=2001", "Host=web2.example.org",
		     "p:8: Host=: web2.example.org is listed twice");
	expect_error("Protocol=", "Protocol=sctp", "p:9: Protocol=: 'sctp' is not tcp or udp");
	expect_error("PublicPorts=", "PublicPorts=29999-20000",
		     "p:10: PublicPorts=: '29999-20000' is not a range of ports 1-65535, low to "
		     "high");
	expect_error("PublicPorts=", "PublicPorts=20000-70000",
		     "p:10: PublicPorts=: '20000-70000' is not PORT or PORT-PORT (1-65535)");
	expect_error("Interval=", "Interval=1500ms",
		     "p:11: Interval=: '1500ms' is not whole seconds from 1s to 1w");
	expect_error("Interval=", "Interval=soon",
		     "p:11: Interval=: 'soon' is not a time span (30s, 2min, 1h)");
	expect_error("Grace=", "Grace=1min", "p:12: Grace=: must be shorter than Interval= (60s)");
	expect_error("Auth=", "Auth=password", "p:13: Auth=: 'password' is not none or knock");
	expect_error("Key=", "Key=0001", "p:14: Key=: 2 bytes; a key has 16 to 1024 bytes (hex)");
	expect_error("Key=", "Key=" KEY_HEX "0", "p:14: Key=: an odd number of hex digits");
	expect_error("Key=", "Key=" KEY_HEX "zz", "p:14: Key=: not hex at character 65");
	expect_error("Key=", "Key=", "p:14: Key=: empty value");
	expect_error("Key=", NULL, "p: [Profile] has no Key=");
	expect_error("Host", NULL, "p: [Profile] has no Host=");
	expect_error("Auth=", "Service=ssh", "p:13: Service= given twice (first on line 4)");
	expect_error("Auth=", "KeyFile=/etc/mtd/web.key", "p:13: unknown key KeyFile=");
	expect_error("Auth=", "[Rotation]",
		     "p:13: unknown section [Rotation] (a profile has "
		     "[Profile] only)");
	expect_error("Auth=", "[Profile]", "p:13: [Profile] given twice");
	expect_error("Auth=", "knock", "p:13: expected KEY=VALUE");
	expect_error("[Profile]", NULL, "p:2: a key before [Profile]");
	expect_error("#", "[Profile",
		     "p:1: unknown section [Profile (a profile has [Profile] "
		     "only)");
}

static void test_profile_refuses_nul_and_empty(void **state)
{
	static struct profile p;
	char error[PROFILE_MAX_ERROR] = "";

	assert_int_equal(profile_parse("[Profile]\n\0", 11, "p", &p, error, sizeof(error)),
			 -EINVAL);
	assert_string_equal(error, "p: a NUL byte: not a text file");
	assert_int_equal(parse("", &p, error), -EINVAL);
	assert_string_equal(error, "p: no [Profile] section");
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void test_profile_file_must_be_owner_only(void **state)
{
	static struct profile p;
	char dir[] = "/tmp/test_client_profile.XXXXXX", path[64], error[PROFILE_MAX_ERROR] = "",
	     want[PROFILE_MAX_ERROR];

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/web.profile", dir);
	write_file(path, full, 0644);
	assert_int_equal(profile_load(path, &p, error, sizeof(error)), -EINVAL);
	snprintf(want, sizeof(want),
		 "%s: owner uid %u, mode 0644: a secret must not be accessible to group or others "
		 "(chmod 0600); it holds a key, so mtd-client does not read it",
		 path, (unsigned)geteuid());
	assert_string_equal(error, want);
	assert_int_equal(p.key_len, 0);

	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(profile_load(path, &p, error, sizeof(error)), 0);
	assert_string_equal(p.client, "alice");

	/* the error names the file and the line */
	write_file(path, "[Profile]\nVersion=1\nColour=blue\n", 0600);
	assert_int_equal(profile_load(path, &p, error, sizeof(error)), -EINVAL);
	snprintf(want, sizeof(want), "%s:3: unknown key Colour=", path);
	assert_string_equal(error, want);

	assert_int_equal(unlink(path), 0);
	assert_int_equal(profile_load(path, &p, error, sizeof(error)), -ENOENT);
	snprintf(want, sizeof(want), "%s: No such file or directory", path);
	assert_string_equal(error, want);
	/* a directory is not a secret file */
	assert_int_equal(profile_load(dir, &p, error, sizeof(error)), -EINVAL);
	assert_non_null(strstr(error, "not a regular file"));
	assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_profile_reads_every_key),
	    cmocka_unit_test(test_profile_defaults),
	    cmocka_unit_test(test_profile_refuses_with_file_line_why),
	    cmocka_unit_test(test_profile_refuses_nul_and_empty),
	    cmocka_unit_test(test_profile_file_must_be_owner_only),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
