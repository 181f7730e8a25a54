/* SPDX-License-Identifier: MIT */
/*
 * Blocking is the caller's (rotator_block()), and the honeypot tells whom it
 * accepted: what can be checked without programming a table. The input of
 * rotator_block() (checked before anything is sent), the list it sends (one
 * entry per source, the last one given), and the peers
 * rotator_honeypot_accept_all() reports for real loopback connections (IPv4
 * as AF_INET, not v4-mapped). The transaction itself is checked against the
 * kernel in tests/integration/rotator_nft.sh.
 */
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

#include "rotator_internal.h"

static struct rotator_blocked blocked(const char *addr, uint64_t ms)
{
	struct rotator_blocked b = {.expires_in_ms = ms};

	if (inet_pton(AF_INET, addr, &b.source.in) == 1)
		b.source.family = AF_INET;
	else {
		assert_int_equal(inet_pton(AF_INET6, addr, &b.source.in6), 1);
		b.source.family = AF_INET6;
	}
	return b;
}

static const char *text(const struct rotator_addr *a, char *buf, size_t len)
{
	return inet_ntop(a->family, &a->in6, buf,
			 (socklen_t)len); /* in and in6 share their start */
}

static void test_block_list_keeps_the_last_entry_of_each_source(void **state)
{
	const struct rotator_blocked in[] = {
	    blocked("192.0.2.7", 1000),	  blocked("2001:db8::1", 0), blocked("192.0.2.7", 50),
	    blocked("192.0.2.1", 600000), blocked("2001:db8::1", 9), blocked("192.0.2.7", 70000),
	};
	struct rotator_blocked *list = NULL;
	size_t n = 0;
	char buf[INET6_ADDRSTRLEN];

	assert_int_equal(elements_block_list(in, 6, &list, &n), 0);
	assert_int_equal(n, 3);
	/* IPv4 first, by address; each with the timeout given last for it */
	assert_string_equal(text(&list[0].source, buf, sizeof(buf)), "192.0.2.1");
	assert_int_equal(list[0].expires_in_ms, 600000);
	assert_string_equal(text(&list[1].source, buf, sizeof(buf)), "192.0.2.7");
	assert_int_equal(list[1].expires_in_ms, 70000);
	assert_string_equal(text(&list[2].source, buf, sizeof(buf)), "2001:db8::1");
	assert_int_equal(list[2].expires_in_ms, 9);
	free(list);
}

static void test_block_list_of_distinct_sources_keeps_them_all(void **state)
{
	struct rotator_blocked in[300], *list = NULL;
	size_t n = 0;

	for (size_t i = 0; i < 300; i++) {
		in[i] = (struct rotator_blocked){.source.family = AF_INET, .expires_in_ms = i};
		in[i].source.in.s_addr =
		    htonl(0xc6336400u + (uint32_t)(299 - i)); /* 198.51.100.x */
	}
	assert_int_equal(elements_block_list(in, 300, &list, &n), 0);
	assert_int_equal(n, 300);
	for (size_t i = 0; i < 300; i++) {
		assert_int_equal(ntohl(list[i].source.in.s_addr), 0xc6336400u + i);
		assert_int_equal(list[i].expires_in_ms, 299 - i);
	}
	free(list);
}

static void test_block_refuses_bad_input_before_sending(void **state)
{
	struct rotator_config config = {.nflog_group = 7};
	struct rotator_blocked good = blocked("192.0.2.1", 1000), two[2];
	struct rotator_blocked *many = calloc(ROTATOR_MAX_BLOCK + 1, sizeof(*many));
	struct step_error err = {};
	struct rotator *r = NULL;

	assert_non_null(many);
	assert_int_equal(rotator_new(&config, &r), 0);
	/* nothing to block: nothing sent (no table here to send it to) */
	assert_int_equal(rotator_block(r, NULL, 0, &err), 0);
	assert_false(step_error_failed(&err));
	two[0] = good;
	two[1] = (struct rotator_blocked){.source.family = AF_UNIX, .expires_in_ms = 5};
	assert_int_equal(rotator_block(r, two, 2, &err), -EINVAL);
	assert_string_equal(err.step, "block");
	assert_non_null(strstr(err.detail, "source #1"));
	assert_int_equal(rotator_block(r, NULL, 1, &err), -EINVAL);
	assert_int_equal(rotator_block(NULL, &good, 1, &err), -EINVAL);
	for (size_t i = 0; i <= ROTATOR_MAX_BLOCK; i++)
		many[i] = good;
	assert_int_equal(rotator_block(r, many, ROTATOR_MAX_BLOCK + 1, &err), -E2BIG);
	rotator_free(r);
	free(many);
}

/* a TCP port free on loopback now */
static uint16_t free_port(void)
{
	struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	return ntohs(sa.sin6_port);
}

/* a completed handshake from addr to the port (connect() returns once it
 * has; the connection then waits in the listener's queue) */
static int connect_to(const char *addr, uint16_t port)
{
	struct sockaddr_storage ss = {};
	socklen_t len;
	int fd;

	if (strchr(addr, ':')) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		assert_int_equal(inet_pton(AF_INET6, addr, &sin6->sin6_addr), 1);
		len = sizeof(*sin6);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		assert_int_equal(inet_pton(AF_INET, addr, &sin->sin_addr), 1);
		len = sizeof(*sin);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&ss, len), 0);
	return fd;
}

static void test_honeypot_reports_the_peers_it_accepted(void **state)
{
	struct rotator_honeypot *h = NULL;
	struct rotator_honeypot_peer peers[4];
	size_t n_peers = 99;
	char buf[INET6_ADDRSTRLEN];
	uint16_t port = free_port();
	int c4, c6, c4b;

	assert_int_equal(rotator_honeypot_open(port, &h), 0);
	assert_int_equal(rotator_honeypot_accept_all(h, peers, 4, &n_peers), 0);
	assert_int_equal(n_peers, 0);

	c4 = connect_to("127.0.0.1", port);
	c6 = connect_to("::1", port);
	assert_int_equal(rotator_honeypot_accept_all(h, peers, 4, &n_peers), 2);
	assert_int_equal(n_peers, 2);
	/* in the order accepted; the IPv4 client as AF_INET, not ::ffff:127.0.0.1 */
	assert_int_equal(peers[0].source.family, AF_INET);
	assert_string_equal(text(&peers[0].source, buf, sizeof(buf)), "127.0.0.1");
	assert_int_equal(peers[1].source.family, AF_INET6);
	assert_string_equal(text(&peers[1].source, buf, sizeof(buf)), "::1");
	/* not redirected: no conntrack original destination here */
	assert_int_equal(peers[0].decoy_port, 0);
	close(c4);
	close(c6);

	/* more connections than room: only as many as reported are taken, the
	 * rest wait for the next call (none is closed unseen) */
	c4 = connect_to("127.0.0.1", port);
	c4b = connect_to("127.0.0.1", port);
	assert_int_equal(rotator_honeypot_accept_all(h, peers, 1, &n_peers), 1);
	assert_int_equal(n_peers, 1);
	assert_int_equal(peers[0].source.family, AF_INET);
	assert_int_equal(rotator_honeypot_accept_all(h, peers, 1, &n_peers), 1);
	assert_int_equal(n_peers, 1);
	assert_int_equal(rotator_honeypot_accept_all(h, peers, 1, &n_peers), 0);
	close(c4);
	close(c4b);

	/* no room at all, as a caller that only drains */
	c6 = connect_to("::1", port);
	assert_int_equal(rotator_honeypot_accept_all(h, NULL, 0, NULL), 1);
	close(c6);
	assert_int_equal(rotator_honeypot_accept_all(h, NULL, 1, &n_peers), -EINVAL);
	assert_int_equal(rotator_honeypot_accept_all(h, peers, 0, &n_peers), -EINVAL);
	rotator_honeypot_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_block_list_keeps_the_last_entry_of_each_source),
	    cmocka_unit_test(test_block_list_of_distinct_sources_keeps_them_all),
	    cmocka_unit_test(test_block_refuses_bad_input_before_sending),
	    cmocka_unit_test(test_honeypot_reports_the_peers_it_accepted),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
