/* SPDX-License-Identifier: MIT */
/* Ports bound on the host: the /proc/net table parser, and a scan that finds
 * a TCP listener of this test (IPv4 and IPv6, loopback only) over
 * NETLINK_SOCK_DIAG without falling back to /proc/net/tcp. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "rotation_internal.h"

static void test_parse_table_keeps_listeners_and_bound_udp(void **state)
{
	/* local port 0x1F90 = 8080 LISTEN (0A), 0x0016 = 22 ESTABLISHED (01) */
	static const char tcp[] =
	    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid\n"
	    "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0\n"
	    "   1: 0100007F:0016 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0\n";
	static const char udp[] =
	    "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid\n"
	    "  12: 00000000:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0\n";
	struct host_ports *ports = NULL;

	assert_int_equal(host_ports_new(&ports), 0);
	assert_int_equal(host_ports_parse_table(ports, POLICY_PROTO_TCP, tcp), 0);
	assert_int_equal(host_ports_parse_table(ports, POLICY_PROTO_UDP, udp), 0);
	assert_true(host_ports_is_bound(ports, POLICY_PROTO_TCP, 8080));
	assert_false(host_ports_is_bound(ports, POLICY_PROTO_TCP, 22));
	assert_true(host_ports_is_bound(ports, POLICY_PROTO_UDP, 53));
	assert_false(host_ports_is_bound(ports, POLICY_PROTO_UDP, 8080));
	host_ports_free(ports);
}

static int listen_on_loopback(int family, uint16_t *ret_port)
{
	struct sockaddr_storage ss = {0};
	socklen_t len =
	    family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	ss.ss_family = (sa_family_t)family;
	if (family == AF_INET)
		((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else
		((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
	assert_int_equal(bind(fd, (struct sockaddr *)&ss, len), 0);
	assert_int_equal(listen(fd, 1), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
	*ret_port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
					    : ((struct sockaddr_in6 *)&ss)->sin6_port);
	return fd;
}

static void test_scan_finds_listeners_over_sock_diag(void **state)
{
	struct host_ports *ports = NULL;
	uint16_t port4, port6;
	int fd4 = listen_on_loopback(AF_INET, &port4);
	int fd6 = -1;

	/* IPv6 may be off in the test's namespace: then only IPv4 */
	if (access("/proc/net/tcp6", R_OK) == 0)
		fd6 = listen_on_loopback(AF_INET6, &port6);
	assert_int_equal(host_ports_scan(&ports), 0);
	assert_true(host_ports_is_bound(ports, POLICY_PROTO_TCP, port4));
	if (fd6 >= 0)
		assert_true(host_ports_is_bound(ports, POLICY_PROTO_TCP, port6));
	/* the dump was read to its end, not redone from /proc/net/tcp */
	assert_false(host_ports_tcp_from_proc(ports));
	host_ports_free(ports);
	close(fd4);
	if (fd6 >= 0)
		close(fd6);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_table_keeps_listeners_and_bound_udp),
	    cmocka_unit_test(test_scan_finds_listeners_over_sock_diag),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
