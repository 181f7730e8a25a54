/* SPDX-License-Identifier: MIT */
/* Value parsers of policy files: good and bad inputs of every type. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <linux/capability.h>

#include <cmocka.h>
#include <seccomp.h>

#include "policy_internal.h"
#include "policy.h"

static void test_timespan_accepts_systemd_forms(void **state)
{
	static const struct {
		const char *in;
		uint64_t usec;
	} good[] = {
	    {"90s", 90 * USEC_PER_SEC},
	    {"15min", 15 * USEC_PER_MINUTE},
	    {"1h", USEC_PER_HOUR},
	    {"2h 30min", 2 * USEC_PER_HOUR + 30 * USEC_PER_MINUTE},
	    {"2h30min", 2 * USEC_PER_HOUR + 30 * USEC_PER_MINUTE},
	    {"500ms", 500 * USEC_PER_MSEC},
	    {"1d", USEC_PER_DAY},
	    {"1w", USEC_PER_WEEK},
	    {"60", 60 * USEC_PER_SEC},
	    {"0", 0},
	    {"7us", 7},
	    {"3 minutes", 3 * USEC_PER_MINUTE},
	    {"1m 1s 1ms", USEC_PER_MINUTE + USEC_PER_SEC + USEC_PER_MSEC},
	    {"18446744073709551615us", UINT64_MAX},
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		uint64_t v = 1234;
		const char *why = NULL;
		assert_int_equal(policy_parse_timespan(good[i].in, &v, &why), 0);
		assert_true(v == good[i].usec);
	}
}

static void test_timespan_rejects_garbage_and_overflow(void **state)
{
	static const char *const bad[] = {
	    "",
	    " ",
	    "s",
	    "15mins",
	    "1.5s",
	    "-1s",
	    "1 2",
	    "1h 30",
	    "10x",
	    "1h-",
	    "18446744073709551616us",
	    "18446744073709551615s",
	    "213503983d",
	    "abc",
	    "+5s",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t v = 4321;
		const char *why = NULL;
		assert_int_equal(policy_parse_timespan(bad[i], &v, &why), -EINVAL);
		assert_non_null(why);
		assert_true(v == 4321); /* untouched on failure */
	}
}

static void test_timespan_format_round_trips(void **state)
{
	static const char *const in[] = {"2h 30min", "500ms", "1d", "15min", "1w 1d 1h 1min 1s"};
	char buf[POLICY_TIMESPAN_MAX];
	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		uint64_t v, back;
		assert_int_equal(policy_parse_timespan(in[i], &v, NULL), 0);
		policy_format_timespan(buf, sizeof(buf), v);
		assert_string_equal(buf, in[i]);
		assert_int_equal(policy_parse_timespan(buf, &back, NULL), 0);
		assert_true(back == v);
	}
	assert_string_equal(policy_format_timespan(buf, sizeof(buf), 0), "0");
	assert_string_equal(policy_format_timespan(buf, sizeof(buf), 90 * USEC_PER_SEC),
			    "1min 30s");
}

static void test_size_parses_base_1024(void **state)
{
	uint64_t v;
	assert_int_equal(policy_parse_size("256M", &v, NULL), 0);
	assert_true(v == UINT64_C(256) << 20);
	assert_int_equal(policy_parse_size("1G", &v, NULL), 0);
	assert_true(v == UINT64_C(1) << 30);
	assert_int_equal(policy_parse_size("512K", &v, NULL), 0);
	assert_true(v == 512 * 1024);
	assert_int_equal(policy_parse_size("4096", &v, NULL), 0);
	assert_true(v == 4096);
	assert_int_equal(policy_parse_size("10B", &v, NULL), 0);
	assert_true(v == 10);
	assert_int_equal(policy_parse_size("2T", &v, NULL), 0);
	assert_true(v == UINT64_C(2) << 40);
	assert_int_equal(policy_parse_size("16777215T", &v, NULL), 0);
}

static void test_size_rejects_bad_suffix_and_overflow(void **state)
{
	static const char *const bad[] = {
	    "",	  "M",	 "1.5G", "256m", "256MB", "1 G", "-1", "16777216T", "99999999999999999999",
	    "1P", "0x10"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t v = 7;
		const char *why = NULL;
		assert_int_equal(policy_parse_size(bad[i], &v, &why), -EINVAL);
		assert_non_null(why);
		assert_true(v == 7);
	}
}

static void test_size_format(void **state)
{
	char buf[POLICY_SIZE_MAX];
	assert_string_equal(policy_format_size(buf, sizeof(buf), UINT64_C(256) << 20), "256M");
	assert_string_equal(policy_format_size(buf, sizeof(buf), UINT64_C(1) << 30), "1G");
	assert_string_equal(policy_format_size(buf, sizeof(buf), 1536), "1536");
	assert_string_equal(policy_format_size(buf, sizeof(buf), 2048), "2K");
}

static void test_unsigned_bounds(void **state)
{
	unsigned u = 99;
	uint64_t v;
	const char *why;
	assert_int_equal(policy_parse_unsigned("5", 1, 10, &u, &why), 0);
	assert_int_equal(u, 5);
	assert_int_equal(policy_parse_unsigned("0", 1, 10, &u, &why), -EINVAL);
	assert_string_equal(why, "number too small");
	assert_int_equal(policy_parse_unsigned("11", 1, 10, &u, &why), -EINVAL);
	assert_string_equal(why, "number too large");
	assert_int_equal(u, 5);
	assert_int_equal(policy_parse_unsigned("-1", 0, 10, &u, &why), -EINVAL);
	assert_int_equal(policy_parse_unsigned(" 1", 0, 10, &u, &why), -EINVAL);
	assert_int_equal(policy_parse_unsigned("1 ", 0, 10, &u, &why), -EINVAL);
	assert_int_equal(policy_parse_unsigned("0x1", 0, 10, &u, &why), -EINVAL);
	assert_int_equal(policy_parse_unsigned("", 0, 10, &u, &why), -EINVAL);
	assert_int_equal(policy_parse_uint64("18446744073709551615", 0, UINT64_MAX, &v, &why), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(policy_parse_uint64("18446744073709551616", 0, UINT64_MAX, &v, &why),
			 -EINVAL);
}

static void test_bool_words(void **state)
{
	static const char *const yes[] = {"yes", "true", "on", "1", "YES", "True"};
	static const char *const no[] = {"no", "false", "off", "0", "No"};
	static const char *const bad[] = {"", "y", "2", "enable", "yes "};
	bool b;
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		b = false;
		assert_int_equal(policy_parse_bool(yes[i], &b, NULL), 0);
		assert_true(b);
	}
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		b = true;
		assert_int_equal(policy_parse_bool(no[i], &b, NULL), 0);
		assert_false(b);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(policy_parse_bool(bad[i], &b, NULL), -EINVAL);
}

static void test_ports_and_ranges(void **state)
{
	struct port_range pr;
	uint16_t port;
	enum policy_proto proto;
	const char *why;

	assert_int_equal(policy_parse_port_range("20000-29999", &pr, &why), 0);
	assert_int_equal(pr.first, 20000);
	assert_int_equal(pr.last, 29999);
	assert_int_equal(policy_parse_port_range("8080", &pr, &why), 0);
	assert_int_equal(pr.first, 8080);
	assert_int_equal(pr.last, 8080);
	assert_int_equal(policy_parse_port_range("1-65535", &pr, &why), 0);
	assert_int_equal(policy_parse_port_range("0-10", &pr, &why), -EINVAL);
	assert_int_equal(policy_parse_port_range("10-65536", &pr, &why), -EINVAL);
	assert_int_equal(policy_parse_port_range("30000-20000", &pr, &why), -EINVAL);
	assert_string_equal(why, "port range is reversed (first > last)");
	assert_int_equal(policy_parse_port_range("-10", &pr, &why), -EINVAL);
	assert_int_equal(policy_parse_port_range("10-", &pr, &why), -EINVAL);
	assert_int_equal(policy_parse_port_range("10-20-30", &pr, &why), -EINVAL);
	assert_int_equal(policy_parse_port_range("http", &pr, &why), -EINVAL);

	assert_int_equal(policy_parse_port_proto("8080/tcp", &port, &proto, &why), 0);
	assert_int_equal(port, 8080);
	assert_int_equal(proto, POLICY_PROTO_TCP);
	assert_int_equal(policy_parse_port_proto("53/udp", &port, &proto, &why), 0);
	assert_int_equal(port, 53);
	assert_int_equal(proto, POLICY_PROTO_UDP);
	assert_int_equal(policy_parse_port_proto("22", &port, &proto, &why), 0);
	assert_int_equal(proto, POLICY_PROTO_TCP);
	assert_int_equal(policy_parse_port_proto("53/sctp", &port, &proto, &why), -EINVAL);
	assert_int_equal(policy_parse_port_proto("53/UDP", &port, &proto, &why), -EINVAL);
	assert_int_equal(policy_parse_port_proto("/udp", &port, &proto, &why), -EINVAL);
	assert_int_equal(policy_parse_port_proto("0/udp", &port, &proto, &why), -EINVAL);
	assert_int_equal(policy_parse_port_proto("70000/tcp", &port, &proto, &why), -EINVAL);
	assert_int_equal(port, 22);
}

static void test_cidr_v4_v6(void **state)
{
	struct cidr c;
	char buf[POLICY_CIDR_MAX];
	const char *why;

	assert_int_equal(policy_parse_cidr("10.213.0.0/24", false, &c, &why), 0);
	assert_int_equal(c.family, AF_INET);
	assert_int_equal(c.prefix_len, 24);
	assert_string_equal(policy_format_cidr(buf, sizeof(buf), &c), "10.213.0.0/24");
	assert_int_equal(policy_parse_cidr("fd00:1::/64", false, &c, &why), 0);
	assert_int_equal(c.family, AF_INET6);
	assert_string_equal(policy_format_cidr(buf, sizeof(buf), &c), "fd00:1::/64");
	assert_int_equal(policy_parse_cidr("0.0.0.0/0", false, &c, &why), 0);
	assert_int_equal(policy_parse_cidr("192.0.2.53", true, &c, &why), 0);
	assert_int_equal(c.prefix_len, 32);
	assert_int_equal(policy_parse_cidr("::1", true, &c, &why), 0);
	assert_int_equal(c.prefix_len, 128);

	assert_int_equal(policy_parse_cidr("192.0.2.53", false, &c, &why), -EINVAL);
	assert_string_equal(why, "missing /PREFIX");
	assert_int_equal(policy_parse_cidr("10.0.0.1/8", false, &c, &why), -EINVAL);
	assert_string_equal(why, "host bits set after the prefix");
	assert_int_equal(policy_parse_cidr("fd00::1/64", false, &c, &why), -EINVAL);
	assert_string_equal(why, "host bits set after the prefix");
	assert_int_equal(policy_parse_cidr("10.0.0.0/33", false, &c, &why), -EINVAL);
	assert_int_equal(policy_parse_cidr("fd00::/129", false, &c, &why), -EINVAL);
	assert_int_equal(policy_parse_cidr("10.0.0.0/", false, &c, &why), -EINVAL);
	assert_int_equal(policy_parse_cidr("10.0.0.0/-1", false, &c, &why), -EINVAL);
	assert_int_equal(policy_parse_cidr("10.0.0/8", false, &c, &why), -EINVAL);
	assert_int_equal(policy_parse_cidr("300.0.0.0/8", false, &c, &why), -EINVAL);
	assert_int_equal(policy_parse_cidr("/8", false, &c, &why), -EINVAL);
	assert_int_equal(policy_parse_cidr("example.com/8", false, &c, &why), -EINVAL);
}

static void test_cidr_overlap(void **state)
{
	struct cidr a, b, c, d;
	assert_int_equal(policy_parse_cidr("10.0.0.0/8", false, &a, NULL), 0);
	assert_int_equal(policy_parse_cidr("10.213.0.0/24", false, &b, NULL), 0);
	assert_int_equal(policy_parse_cidr("10.213.1.0/24", false, &c, NULL), 0);
	assert_int_equal(policy_parse_cidr("fd00::/8", false, &d, NULL), 0);
	assert_true(policy_cidr_overlap(&a, &b));
	assert_true(policy_cidr_overlap(&b, &a));
	assert_false(policy_cidr_overlap(&b, &c));
	assert_false(policy_cidr_overlap(&a, &d));
}

static void test_socket_address(void **state)
{
	struct socket_address sa;
	char buf[POLICY_SOCKADDR_MAX];
	const char *why;

	assert_int_equal(policy_parse_socket_address("127.0.0.1:22", &sa, &why), 0);
	assert_int_equal(sa.family, AF_INET);
	assert_int_equal(sa.port, 22);
	assert_true(sa.addr.v4.s_addr == htonl(INADDR_LOOPBACK));
	assert_string_equal(policy_format_socket_address(buf, sizeof(buf), &sa), "127.0.0.1:22");
	assert_int_equal(policy_parse_socket_address("[::1]:2222", &sa, &why), 0);
	assert_int_equal(sa.family, AF_INET6);
	assert_int_equal(sa.port, 2222);
	assert_string_equal(policy_format_socket_address(buf, sizeof(buf), &sa), "[::1]:2222");

	static const char *const bad[] = {
	    "127.0.0.1",    "127.0.0.1:",      "127.0.0.1:0", ":22",
	    "::1:22",	    "[::1]",	       "[::1]22",     "[127.0.0.1]:22",
	    "localhost:22", "127.0.0.1:65536", "[::1:22",     "1.2.3.4:22x"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(policy_parse_socket_address(bad[i], &sa, &why), -EINVAL);
}

static void test_egress_rules(void **state)
{
	struct egress_rule e;
	char buf[POLICY_CIDR_MAX];
	const char *why;

	assert_int_equal(policy_parse_egress("udp/53 192.0.2.53", &e, &why), 0);
	assert_int_equal(e.proto, POLICY_PROTO_UDP);
	assert_int_equal(e.ports.first, 53);
	assert_int_equal(e.ports.last, 53);
	assert_true(e.has_destination);
	assert_string_equal(policy_format_cidr(buf, sizeof(buf), &e.destination), "192.0.2.53/32");
	assert_int_equal(policy_parse_egress("tcp/443", &e, &why), 0);
	assert_false(e.has_destination);
	assert_int_equal(policy_parse_egress("tcp/8000-8100 10.0.0.0/8", &e, &why), 0);
	assert_int_equal(e.ports.first, 8000);
	assert_int_equal(e.ports.last, 8100);
	assert_int_equal(e.destination.prefix_len, 8);
	assert_int_equal(policy_parse_egress("tcp/443 2001:db8::/32", &e, &why), 0);
	assert_int_equal(e.destination.family, AF_INET6);

	static const char *const bad[] = {"",
					  "tcp",
					  "443/tcp",
					  "icmp/1",
					  "tcp/",
					  "tcp/0",
					  "tcp/443 10.0.0.1/8",
					  "tcp/443 10.0.0.0/8 extra",
					  "tcp/443,80",
					  "TCP/443",
					  "tcp/9000-8000",
					  "/443 10.0.0.0/8"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(policy_parse_egress(bad[i], &e, &why), -EINVAL);
}

static void test_capability_names(void **state)
{
	unsigned cap = 999;
	assert_int_equal(policy_parse_capability("CAP_NET_BIND_SERVICE", &cap, NULL), 0);
	assert_int_equal(cap, CAP_NET_BIND_SERVICE);
	assert_int_equal(policy_parse_capability("cap_net_admin", &cap, NULL), 0);
	assert_int_equal(cap, CAP_NET_ADMIN);
	assert_int_equal(policy_parse_capability("Cap_Sys_Admin", &cap, NULL), 0);
	assert_int_equal(cap, CAP_SYS_ADMIN);
	assert_int_equal(policy_parse_capability("CAP_NOPE", &cap, NULL), -EINVAL);
	assert_int_equal(policy_parse_capability("NET_ADMIN", &cap, NULL), -EINVAL);
	assert_int_equal(policy_parse_capability("12", &cap, NULL), -EINVAL);
	assert_int_equal(policy_parse_capability("all", &cap, NULL), -EINVAL);
	assert_int_equal(policy_parse_capability("", &cap, NULL), -EINVAL);
	assert_int_equal(cap, CAP_SYS_ADMIN);
}

static void test_syscall_names_and_groups(void **state)
{
	const char *why;
	assert_int_equal(policy_check_syscall("read", &why), 0);
	assert_int_equal(policy_check_syscall("openat", &why), 0);
	assert_int_equal(policy_check_syscall("@system-service", &why), 0);
	assert_int_equal(policy_check_syscall("@network-io", &why), 0);
	assert_int_equal(policy_check_syscall("@nope", &why), -EINVAL);
	assert_string_equal(why, "unknown system call group");
	assert_int_equal(policy_check_syscall("not_a_syscall", &why), -EINVAL);
	assert_int_equal(policy_check_syscall("READ", &why), -EINVAL);
	assert_int_equal(policy_check_syscall("", &why), -EINVAL);
	assert_int_equal(policy_check_syscall("@", &why), -EINVAL);
}

static void test_every_group_member_is_known_on_x86_64(void **state)
{
	size_t n;
	const struct syscall_group *g = syscall_groups_all(&n);
	assert_true(n >= 10);
	for (size_t i = 0; i < n; i++) {
		assert_ptr_equal(syscall_group_lookup(g[i].name), &g[i]);
		for (const char *const *m = g[i].members; *m; m++) {
			if ((*m)[0] == '@') {
				assert_non_null(syscall_group_lookup(*m));
				continue;
			}
			if (seccomp_syscall_resolve_name_arch(SCMP_ARCH_X86_64, *m) ==
			    __NR_SCMP_ERROR)
				fail_msg("%s: %s unknown to libseccomp on x86_64", g[i].name, *m);
		}
	}
}

static bool has(char **v, const char *s)
{
	for (; *v; v++)
		if (strcmp(*v, s) == 0)
			return true;
	return false;
}

static void test_group_expansion_is_flat_sorted_and_native(void **state)
{
	char *items[] = {"@system-service", "read", "ptrace"};
	char **names = NULL;
	size_t n = 0;

	assert_int_equal(syscall_group_expand(items, 3, &names, &n), 0);
	assert_true(n > 150);
	for (size_t i = 0; i < n; i++) {
		assert_true(names[i][0] != '@');
		assert_true(seccomp_syscall_resolve_name(names[i]) >= 0);
		if (i)
			assert_true(strcmp(names[i - 1], names[i]) < 0); /* sorted, unique */
	}
	assert_null(names[n]);
	assert_true(has(names, "accept4")); /* from @network-io, nested */
	assert_true(has(names, "openat"));  /* from @file-system */
	assert_true(has(names, "ptrace"));  /* given directly */
	assert_false(has(names, "io_uring_setup"));
	assert_false(has(names, "userfaultfd"));
#if defined(__x86_64__)
	assert_false(has(names, "mmap2")); /* not native: skipped silently */
	assert_false(has(names, "socketcall"));
#endif
	syscall_group_names_free(names);

	char *bad[] = {"@nope"};
	names = NULL;
	assert_int_equal(syscall_group_expand(bad, 1, &names, &n), -EINVAL);
	assert_null(names);
	char *bad2[] = {"read", "nosuchcall"};
	assert_int_equal(syscall_group_expand(bad2, 2, &names, &n), -EINVAL);
	assert_null(names);
}

static void test_exec_split_quoting(void **state)
{
	char **v = NULL;
	size_t n = 0;
	const char *why;

	assert_int_equal(policy_split_words("/usr/sbin/nginx -g \"daemon off;\"", &v, &n, &why), 0);
	assert_int_equal(n, 3);
	assert_string_equal(v[0], "/usr/sbin/nginx");
	assert_string_equal(v[1], "-g");
	assert_string_equal(v[2], "daemon off;");
	assert_null(v[3]);
	policy_strv_free(v);

	assert_int_equal(policy_split_words("/bin/sh -c 'echo \"$HOME\" \\n' a\\ b \"x\\\"y\\\\z\"",
					    &v, &n, &why),
			 0);
	assert_int_equal(n, 5);
	assert_string_equal(v[2], "echo \"$HOME\" \\n");
	assert_string_equal(v[3], "a b");
	assert_string_equal(v[4], "x\"y\\z");
	policy_strv_free(v);

	assert_int_equal(policy_split_words("  /bin/true   x''y \"\" # comment here", &v, &n, &why),
			 0);
	assert_int_equal(n, 3);
	assert_string_equal(v[1], "xy");
	assert_string_equal(v[2], "");
	policy_strv_free(v);

	assert_int_equal(policy_split_words("/bin/echo a#b", &v, &n, &why), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[1], "a#b");
	policy_strv_free(v);

	v = NULL;
	assert_int_equal(policy_split_words("/bin/sh -c \"oops", &v, &n, &why), -EINVAL);
	assert_string_equal(why, "unbalanced double quote");
	assert_int_equal(policy_split_words("/bin/sh -c 'oops", &v, &n, &why), -EINVAL);
	assert_string_equal(why, "unbalanced single quote");
	assert_int_equal(policy_split_words("/bin/sh \\", &v, &n, &why), -EINVAL);
	assert_string_equal(why, "trailing backslash");
	assert_int_equal(policy_split_words("   ", &v, &n, &why), -EINVAL);
	assert_int_equal(policy_split_words("# only a comment", &v, &n, &why), -EINVAL);
	assert_null(v);
}

static void test_exec_split_argument_cap(void **state)
{
	char line[4 * (POLICY_EXEC_ARGS_MAX + 2)] = "/bin/x";
	char **v = NULL;
	size_t n;
	for (int i = 1; i < POLICY_EXEC_ARGS_MAX; i++)
		strcat(line, " a");
	assert_int_equal(policy_split_words(line, &v, &n, NULL), 0);
	assert_int_equal(n, POLICY_EXEC_ARGS_MAX);
	policy_strv_free(v);
	strcat(line, " b");
	v = NULL;
	assert_int_equal(policy_split_words(line, &v, &n, NULL), -EINVAL);
	assert_null(v);
}

static void test_service_names(void **state)
{
	static const char *const good[] = {"web",   "a",      "0",
					   "ssh-2", "my_svc", "abcdefghijklmnopqrstuvwxyz012345"};
	static const char *const bad[] = {
	    "",	    "Web",   "-web", "_web",
	    "we b", "web.x", "wéb",  "abcdefghijklmnopqrstuvwxyz0123456",
	    "web/", "a:b"};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_int_equal(policy_check_service_name(good[i], NULL), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(policy_check_service_name(bad[i], NULL), -EINVAL);
}

static void test_user_names(void **state)
{
	assert_int_equal(policy_check_user_name("www-data", NULL), 0);
	assert_int_equal(policy_check_user_name("_apt", NULL), 0);
	assert_int_equal(policy_check_user_name("0", NULL), 0);
	assert_int_equal(policy_check_user_name("65535", NULL), 0);
	assert_int_equal(policy_check_user_name("65536", NULL), -EINVAL);
	assert_int_equal(policy_check_user_name("4294967294", NULL), -EINVAL);
	assert_int_equal(policy_check_user_name("1abc", NULL), -EINVAL);
	assert_int_equal(policy_check_user_name("Root", NULL), -EINVAL);
	assert_int_equal(policy_check_user_name("a b", NULL), -EINVAL);
	assert_int_equal(policy_check_user_name("", NULL), -EINVAL);
}

static void test_absolute_paths(void **state)
{
	char long_path[POLICY_PATH_MAX + 2];
	assert_int_equal(policy_check_absolute_path("/var/cache/nginx", NULL), 0);
	assert_int_equal(policy_check_absolute_path("/", NULL), 0);
	assert_int_equal(policy_check_absolute_path("/a/..b/c.", NULL), 0);
	assert_int_equal(policy_check_absolute_path("relative", NULL), -EINVAL);
	assert_int_equal(policy_check_absolute_path("", NULL), -EINVAL);
	assert_int_equal(policy_check_absolute_path("/a/../etc", NULL), -EINVAL);
	assert_int_equal(policy_check_absolute_path("/a/..", NULL), -EINVAL);
	assert_int_equal(policy_check_absolute_path("/a/./b", NULL), -EINVAL);
	assert_int_equal(policy_check_absolute_path("/a\nb", NULL), -EINVAL);
	memset(long_path, 'a', sizeof(long_path) - 1);
	long_path[0] = '/';
	long_path[sizeof(long_path) - 1] = 0;
	assert_int_equal(policy_check_absolute_path(long_path, NULL), -EINVAL);
	long_path[POLICY_PATH_MAX] = 0;
	assert_int_equal(policy_check_absolute_path(long_path, NULL), 0);
}

static void test_key_text(void **state)
{
	const char *hex = "# comment\n"
			  "00112233445566778899aabbccddeeff\n"
			  "00112233445566778899AABBCCDDEEFF\n";
	uint8_t *key = NULL;
	size_t len = 0;
	const char *why;

	assert_int_equal(policy_parse_key_text(hex, strlen(hex), &key, &len, &why), 0);
	assert_int_equal(len, 32);
	assert_int_equal(key[0], 0x00);
	assert_int_equal(key[10], 0xaa);
	assert_int_equal(key[31], 0xff);
	free(key);
	key = NULL;
	assert_int_equal(policy_parse_key_text("0011", 4, &key, &len, &why), -EINVAL);
	assert_string_equal(why, "key shorter than 32 bytes (64 hex digits)");
	assert_int_equal(policy_parse_key_text("zz", 2, &key, &len, &why), -EINVAL);
	assert_int_equal(policy_parse_key_text("001", 3, &key, &len, &why), -EINVAL);
	assert_null(key);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_timespan_accepts_systemd_forms),
	    cmocka_unit_test(test_timespan_rejects_garbage_and_overflow),
	    cmocka_unit_test(test_timespan_format_round_trips),
	    cmocka_unit_test(test_size_parses_base_1024),
	    cmocka_unit_test(test_size_rejects_bad_suffix_and_overflow),
	    cmocka_unit_test(test_size_format),
	    cmocka_unit_test(test_unsigned_bounds),
	    cmocka_unit_test(test_bool_words),
	    cmocka_unit_test(test_ports_and_ranges),
	    cmocka_unit_test(test_cidr_v4_v6),
	    cmocka_unit_test(test_cidr_overlap),
	    cmocka_unit_test(test_socket_address),
	    cmocka_unit_test(test_egress_rules),
	    cmocka_unit_test(test_capability_names),
	    cmocka_unit_test(test_syscall_names_and_groups),
	    cmocka_unit_test(test_every_group_member_is_known_on_x86_64),
	    cmocka_unit_test(test_group_expansion_is_flat_sorted_and_native),
	    cmocka_unit_test(test_exec_split_quoting),
	    cmocka_unit_test(test_exec_split_argument_cap),
	    cmocka_unit_test(test_service_names),
	    cmocka_unit_test(test_user_names),
	    cmocka_unit_test(test_absolute_paths),
	    cmocka_unit_test(test_key_text),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
