/* SPDX-License-Identifier: MIT */
/* The sock_diag replies sock_reset.c reads (agent/sandbox/sock_reset.c): a
 * dump's sockets taken with their cookies, the bound kept, the end and the
 * kernel's errors seen, and anything malformed or foreign refused. Without
 * a kernel: the datagrams are built here. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <cmocka.h>

#include "sandbox.h"

/* aligned like nlmsghdr */
static long buffer[4096 / sizeof(long)];
static size_t used;

static void reset_buffer(void)
{
	memset(buffer, 0, sizeof(buffer));
	used = 0;
}

static struct nlmsghdr *put(uint16_t type, uint32_t seq, size_t payload)
{
	struct nlmsghdr *h = (struct nlmsghdr *)((char *)buffer + used);

	h->nlmsg_len = (uint32_t)NLMSG_LENGTH(payload);
	h->nlmsg_type = type;
	h->nlmsg_seq = seq;
	used += NLMSG_ALIGN(h->nlmsg_len);
	assert_true(used <= sizeof(buffer));
	return h;
}

static struct inet_diag_msg *put_socket(uint32_t seq, uint8_t family, uint16_t sport,
					uint32_t cookie)
{
	struct inet_diag_msg *m = NLMSG_DATA(put(SOCK_DIAG_BY_FAMILY, seq, sizeof(*m)));

	m->idiag_family = family;
	/* a peer outside: 198.51.100.7 or 2001:db8::7 */
	if (family == AF_INET)
		inet_pton(AF_INET, "198.51.100.7", m->id.idiag_dst);
	else
		inet_pton(AF_INET6, "2001:db8::7", m->id.idiag_dst);
	m->idiag_state = 1; /* established */
	m->id.idiag_sport = htons(sport);
	m->id.idiag_cookie[0] = cookie;
	return m;
}

static void put_error(uint32_t seq, int error)
{
	struct nlmsgerr *e = NLMSG_DATA(put(NLMSG_ERROR, seq, sizeof(*e)));

	e->error = error;
}

static void test_dump_takes_every_socket_with_its_cookie(void **state)
{
	struct sock_reset_entry entries[4];
	size_t n = 0;
	bool truncated = false;

	reset_buffer();
	put_socket(7, AF_INET6, 8080, 0x1111);
	put_socket(7, AF_INET6, 8080, 0x2222);
	/* more datagrams follow */
	assert_int_equal(
	    sock_reset_parse_dump(buffer, used, 7, AF_INET6, entries, 4, &n, &truncated), 0);
	assert_int_equal(n, 2);
	assert_false(truncated);
	assert_int_equal(entries[0].family, AF_INET6);
	assert_int_equal(entries[1].id.idiag_cookie[0], 0x2222);
	assert_int_equal(ntohs(entries[1].id.idiag_sport), 8080);
	/* the last one ends it */
	reset_buffer();
	put_socket(7, AF_INET6, 8080, 0x3333);
	put(NLMSG_DONE, 7, sizeof(int));
	assert_int_equal(
	    sock_reset_parse_dump(buffer, used, 7, AF_INET6, entries, 4, &n, &truncated), 1);
	assert_int_equal(n, 3);
}

static void test_dump_keeps_its_bound(void **state)
{
	struct sock_reset_entry entries[2];
	size_t n = 0;
	bool truncated = false;

	reset_buffer();
	for (uint32_t i = 0; i < 5; i++)
		put_socket(1, AF_INET, 80, i);
	put(NLMSG_DONE, 1, sizeof(int));
	assert_int_equal(
	    sock_reset_parse_dump(buffer, used, 1, AF_INET, entries, 2, &n, &truncated), 1);
	assert_int_equal(n, 2);
	assert_true(truncated);
	assert_int_equal(entries[1].id.idiag_cookie[0], 1);
}

/* Both ends of a loopback connection are the instance's: nobody waits. */
static void test_dump_leaves_out_loopback_peers(void **state)
{
	struct sock_reset_entry entries[4];
	size_t n = 0;
	bool truncated = false;

	reset_buffer();
	inet_pton(AF_INET, "127.0.0.1", put_socket(2, AF_INET, 80, 1)->id.idiag_dst);
	inet_pton(AF_INET, "127.3.2.1", put_socket(2, AF_INET, 80, 2)->id.idiag_dst);
	put_socket(2, AF_INET, 80, 3);
	assert_int_equal(
	    sock_reset_parse_dump(buffer, used, 2, AF_INET, entries, 4, &n, &truncated), 0);
	assert_int_equal(n, 1);
	assert_int_equal(entries[0].id.idiag_cookie[0], 3);
	reset_buffer();
	n = 0;
	inet_pton(AF_INET6, "::1", put_socket(2, AF_INET6, 80, 4)->id.idiag_dst);
	inet_pton(AF_INET6, "::ffff:127.0.0.1", put_socket(2, AF_INET6, 80, 5)->id.idiag_dst);
	inet_pton(AF_INET6, "::ffff:10.213.0.2", put_socket(2, AF_INET6, 80, 6)->id.idiag_dst);
	put_socket(2, AF_INET6, 80, 7);
	assert_int_equal(
	    sock_reset_parse_dump(buffer, used, 2, AF_INET6, entries, 4, &n, &truncated), 0);
	assert_int_equal(n, 2);
	assert_int_equal(entries[0].id.idiag_cookie[0], 6);
	assert_int_equal(entries[1].id.idiag_cookie[0], 7);
	assert_false(truncated);
}

static void test_dump_reports_the_kernels_error(void **state)
{
	struct sock_reset_entry entries[2];
	size_t n = 0;
	bool truncated = false;

	reset_buffer();
	put_error(3, -EOPNOTSUPP);
	assert_int_equal(
	    sock_reset_parse_dump(buffer, used, 3, AF_INET, entries, 2, &n, &truncated),
	    -EOPNOTSUPP);
	/* an "error" that is not one */
	reset_buffer();
	put_error(3, 5);
	assert_int_equal(
	    sock_reset_parse_dump(buffer, used, 3, AF_INET, entries, 2, &n, &truncated), -EIO);
	assert_int_equal(n, 0);
}

static void test_dump_refuses_malformed_and_foreign_messages(void **state)
{
	struct sock_reset_entry entries[2];
	size_t n = 0;
	bool truncated = false;
	struct nlmsghdr *h;

	/* another request's answer */
	reset_buffer();
	put_socket(9, AF_INET, 80, 1);
	assert_int_equal(
	    sock_reset_parse_dump(buffer, used, 8, AF_INET, entries, 2, &n, &truncated), -EBADMSG);
	/* another family's socket */
	reset_buffer();
	put_socket(8, AF_INET6, 80, 1);
	assert_int_equal(
	    sock_reset_parse_dump(buffer, used, 8, AF_INET, entries, 2, &n, &truncated), -EBADMSG);
	/* a length past the datagram */
	reset_buffer();
	put_socket(8, AF_INET, 80, 1);
	h = (struct nlmsghdr *)buffer;
	h->nlmsg_len = (uint32_t)used + 4;
	assert_int_equal(
	    sock_reset_parse_dump(buffer, used, 8, AF_INET, entries, 2, &n, &truncated), -EBADMSG);
	/* a socket message too short for its socket */
	reset_buffer();
	put(SOCK_DIAG_BY_FAMILY, 8, 8);
	assert_int_equal(
	    sock_reset_parse_dump(buffer, used, 8, AF_INET, entries, 2, &n, &truncated), -EBADMSG);
	/* an error message too short for its error */
	reset_buffer();
	put(NLMSG_ERROR, 8, 2);
	assert_int_equal(
	    sock_reset_parse_dump(buffer, used, 8, AF_INET, entries, 2, &n, &truncated), -EBADMSG);
	/* a header cut short, an unknown type */
	assert_int_equal(sock_reset_parse_dump(buffer, 3, 8, AF_INET, entries, 2, &n, &truncated),
			 -EBADMSG);
	reset_buffer();
	put(0x77, 8, 64);
	assert_int_equal(
	    sock_reset_parse_dump(buffer, used, 8, AF_INET, entries, 2, &n, &truncated), -EBADMSG);
	assert_int_equal(n, 0);
}

static void test_ack_says_what_became_of_the_socket(void **state)
{
	reset_buffer();
	put_error(5, 0);
	assert_int_equal(sock_reset_parse_ack(buffer, used, 5), 0);
	reset_buffer();
	put_error(5, -ENOENT);
	assert_int_equal(sock_reset_parse_ack(buffer, used, 5), -ENOENT);
	/* another request's, a positive "error", a short one, not an ack */
	assert_int_equal(sock_reset_parse_ack(buffer, used, 6), -EBADMSG);
	reset_buffer();
	put_error(5, 1);
	assert_int_equal(sock_reset_parse_ack(buffer, used, 5), -EBADMSG);
	reset_buffer();
	put(NLMSG_ERROR, 5, 2);
	assert_int_equal(sock_reset_parse_ack(buffer, used, 5), -EBADMSG);
	reset_buffer();
	put_socket(5, AF_INET, 80, 1);
	assert_int_equal(sock_reset_parse_ack(buffer, used, 5), -EBADMSG);
	assert_int_equal(sock_reset_parse_ack(buffer, 0, 5), -EBADMSG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_dump_takes_every_socket_with_its_cookie),
	    cmocka_unit_test(test_dump_keeps_its_bound),
	    cmocka_unit_test(test_dump_leaves_out_loopback_peers),
	    cmocka_unit_test(test_dump_reports_the_kernels_error),
	    cmocka_unit_test(test_dump_refuses_malformed_and_foreign_messages),
	    cmocka_unit_test(test_ack_says_what_became_of_the_socket),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
