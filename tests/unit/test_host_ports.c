/* SPDX-License-Identifier: MIT */
/* Ports bound on the host: the /proc/net table parser, the sock_diag dump
 * parser fed with crafted datagrams, and a scan that finds this test's TCP
 * listeners and bound UDP sockets (IPv4 and IPv6, loopback only) over
 * NETLINK_SOCK_DIAG without falling back to /proc/net, and the same from
 * /proc/net alone. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdbool.h>
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
	    "  12: 00000000:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0\n"
	    "  13: 0100007F:1388 0100007F:0035 01 00000000:00000000 00:00000000 00000000     0\n";
	struct host_ports *ports = NULL;

	assert_int_equal(host_ports_new(&ports), 0);
	assert_int_equal(host_ports_parse_table(ports, POLICY_PROTO_TCP, tcp), 0);
	assert_int_equal(host_ports_parse_table(ports, POLICY_PROTO_UDP, udp), 0);
	assert_true(host_ports_is_bound(ports, POLICY_PROTO_TCP, 8080));
	assert_false(host_ports_is_bound(ports, POLICY_PROTO_TCP, 22));
	assert_true(host_ports_is_bound(ports, POLICY_PROTO_UDP, 53));
	/* connected (01): it still holds local port 0x1388 = 5000 */
	assert_true(host_ports_is_bound(ports, POLICY_PROTO_UDP, 5000));
	assert_false(host_ports_is_bound(ports, POLICY_PROTO_UDP, 8080));
	host_ports_free(ports);
}

/* A datagram of a sock_diag dump, built message by message. */
struct dump {
	long words[1024]; /* aligned like nlmsghdr */
	size_t size;
};

static struct nlmsghdr *put_message(struct dump *d, uint16_t type, const void *payload, size_t len)
{
	struct nlmsghdr *h = (struct nlmsghdr *)((uint8_t *)d->words + d->size);

	assert_true(d->size + NLMSG_SPACE(len) <= sizeof(d->words));
	memset(h, 0, NLMSG_SPACE(len));
	h->nlmsg_len = (uint32_t)NLMSG_LENGTH(len);
	h->nlmsg_type = type;
	h->nlmsg_flags = NLM_F_MULTI;
	memcpy(NLMSG_DATA(h), payload, len);
	d->size += NLMSG_SPACE(len);
	return h;
}

static struct nlmsghdr *put_socket(struct dump *d, uint8_t family, uint8_t state, uint16_t port)
{
	struct inet_diag_msg m = {.idiag_family = family, .idiag_state = state};

	m.id.idiag_sport = htons(port);
	m.id.idiag_dport = htons(53);
	return put_message(d, SOCK_DIAG_BY_FAMILY, &m, sizeof(m));
}

static void put_done(struct dump *d)
{
	int zero = 0;

	put_message(d, NLMSG_DONE, &zero, sizeof(zero));
}

static int parse(struct host_ports *ports, enum policy_proto proto, const struct dump *d)
{
	return host_ports_parse_diag(ports, proto, d->words, d->size);
}

static void test_parse_diag_marks_every_socket_up_to_done(void **state)
{
	struct dump first = {0}, last = {0};
	struct host_ports *ports = NULL;

	assert_int_equal(host_ports_new(&ports), 0);
	/* a dump in two datagrams: the first has no NLMSG_DONE */
	put_socket(&first, AF_INET, 7, 5353);
	put_socket(&first, AF_INET6, 1, 40000);
	assert_int_equal(parse(ports, POLICY_PROTO_UDP, &first), 0);
	put_socket(&last, AF_INET, 7, 123);
	put_done(&last);
	put_socket(&last, AF_INET, 7, 9999); /* after DONE: not read */
	assert_int_equal(parse(ports, POLICY_PROTO_UDP, &last), 1);
	assert_true(host_ports_is_bound(ports, POLICY_PROTO_UDP, 5353));
	assert_true(host_ports_is_bound(ports, POLICY_PROTO_UDP, 40000));
	assert_true(host_ports_is_bound(ports, POLICY_PROTO_UDP, 123));
	assert_false(host_ports_is_bound(ports, POLICY_PROTO_UDP, 9999));
	/* UDP's ports are not TCP's */
	assert_false(host_ports_is_bound(ports, POLICY_PROTO_TCP, 5353));
	host_ports_free(ports);
}

static void test_parse_diag_returns_the_kernels_error(void **state)
{
	struct nlmsgerr e = {.error = -ENOENT}; /* no udp_diag module, say */
	struct dump d = {0};
	struct host_ports *ports = NULL;

	assert_int_equal(host_ports_new(&ports), 0);
	put_message(&d, NLMSG_ERROR, &e, sizeof(e));
	assert_int_equal(parse(ports, POLICY_PROTO_UDP, &d), -ENOENT);
	host_ports_free(ports);
}

static void test_parse_diag_rejects_malformed_messages(void **state)
{
	struct host_ports *ports = NULL;
	struct dump d;
	struct nlmsghdr *h;
	int zero = 0;

	assert_int_equal(host_ports_new(&ports), 0);
	/* a length beyond the datagram */
	d = (struct dump){0};
	h = put_socket(&d, AF_INET, 10, 80);
	h->nlmsg_len = (uint32_t)d.size + 4;
	assert_int_equal(parse(ports, POLICY_PROTO_TCP, &d), -EBADMSG);
	/* a socket message too short for an inet_diag_msg */
	d = (struct dump){0};
	put_message(&d, SOCK_DIAG_BY_FAMILY, &zero, sizeof(zero));
	assert_int_equal(parse(ports, POLICY_PROTO_TCP, &d), -EBADMSG);
	/* an error message too short for its nlmsgerr */
	d = (struct dump){0};
	put_message(&d, NLMSG_ERROR, &zero, sizeof(zero));
	assert_int_equal(parse(ports, POLICY_PROTO_TCP, &d), -EBADMSG);
	/* a type a dump does not send */
	d = (struct dump){0};
	h = put_socket(&d, AF_INET, 10, 81);
	h->nlmsg_type = NLMSG_NOOP + 100;
	assert_int_equal(parse(ports, POLICY_PROTO_TCP, &d), -EBADMSG);
	/* half a header after a good message: the good one counted, then refused */
	d = (struct dump){0};
	put_socket(&d, AF_INET, 10, 82);
	d.size += 8;
	assert_int_equal(parse(ports, POLICY_PROTO_TCP, &d), -EBADMSG);
	assert_true(host_ports_is_bound(ports, POLICY_PROTO_TCP, 82));
	assert_false(host_ports_is_bound(ports, POLICY_PROTO_TCP, 80));
	assert_false(host_ports_is_bound(ports, POLICY_PROTO_TCP, 81));
	host_ports_free(ports);
}

/* A TCP listener or a bound UDP socket on loopback (a UDP one connected to
 * the loopback's port 9 if connected), on a port the kernel picks. */
static int bind_on_loopback(int family, int type, bool connected, uint16_t *ret_port)
{
	struct sockaddr_storage ss = {0};
	socklen_t len =
	    family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
	int fd = socket(family, type | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	ss.ss_family = (sa_family_t)family;
	if (family == AF_INET)
		((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else
		((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
	assert_int_equal(bind(fd, (struct sockaddr *)&ss, len), 0);
	if (type == SOCK_STREAM)
		assert_int_equal(listen(fd, 1), 0);
	if (connected) {
		if (family == AF_INET)
			((struct sockaddr_in *)&ss)->sin_port = htons(9);
		else
			((struct sockaddr_in6 *)&ss)->sin6_port = htons(9);
		assert_int_equal(connect(fd, (struct sockaddr *)&ss, len), 0);
	}
	assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
	*ret_port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
					    : ((struct sockaddr_in6 *)&ss)->sin6_port);
	return fd;
}

/* One socket of each kind this test binds, per family. */
enum { TCP_LISTENER, UDP_BOUND, UDP_CONNECTED, N_KINDS };

static void scan_finds_sockets(enum host_ports_source source)
{
	static const int families[] = {AF_INET, AF_INET6};
	struct host_ports *ports = NULL;
	uint16_t port[2][N_KINDS];
	int fd[2][N_KINDS];
	/* IPv6 may be off in the test's namespace: then only IPv4 */
	size_t n_families = access("/proc/net/tcp6", R_OK) == 0 ? 2 : 1;

	for (size_t f = 0; f < n_families; f++) {
		fd[f][TCP_LISTENER] =
		    bind_on_loopback(families[f], SOCK_STREAM, false, &port[f][TCP_LISTENER]);
		fd[f][UDP_BOUND] =
		    bind_on_loopback(families[f], SOCK_DGRAM, false, &port[f][UDP_BOUND]);
		fd[f][UDP_CONNECTED] =
		    bind_on_loopback(families[f], SOCK_DGRAM, true, &port[f][UDP_CONNECTED]);
	}
	assert_int_equal(host_ports_scan_from(source, &ports), 0);
	for (size_t f = 0; f < n_families; f++) {
		assert_true(host_ports_is_bound(ports, POLICY_PROTO_TCP, port[f][TCP_LISTENER]));
		assert_true(host_ports_is_bound(ports, POLICY_PROTO_UDP, port[f][UDP_BOUND]));
		assert_true(host_ports_is_bound(ports, POLICY_PROTO_UDP, port[f][UDP_CONNECTED]));
		for (size_t k = 0; k < N_KINDS; k++)
			close(fd[f][k]);
	}
	/* sock_diag: every dump was read to its end, not redone from /proc/net */
	assert_true(host_ports_from_proc(ports) == (source == HOST_PORTS_PROC));
	host_ports_free(ports);
}

static void test_scan_finds_bound_sockets_over_sock_diag(void **state)
{
	scan_finds_sockets(HOST_PORTS_SOCK_DIAG);
}

static void test_scan_finds_bound_sockets_in_proc_net(void **state)
{
	scan_finds_sockets(HOST_PORTS_PROC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_table_keeps_listeners_and_bound_udp),
	    cmocka_unit_test(test_parse_diag_marks_every_socket_up_to_done),
	    cmocka_unit_test(test_parse_diag_returns_the_kernels_error),
	    cmocka_unit_test(test_parse_diag_rejects_malformed_messages),
	    cmocka_unit_test(test_scan_finds_bound_sockets_over_sock_diag),
	    cmocka_unit_test(test_scan_finds_bound_sockets_in_proc_net),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
