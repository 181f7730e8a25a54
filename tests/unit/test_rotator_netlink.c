/* SPDX-License-Identifier: MIT */
/* The rotator's netlink parse steps without sockets: NFLOG datagrams
 * (rotator_nflog_parse) and ctnetlink dumps (rotator_conntrack_parse), built
 * here with libmnl as the kernel lays them out, including the hostile framing
 * fuzz_conntrack found (a message length near 2^32). */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_conntrack_tcp.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netfilter/nfnetlink_log.h>

#include "rotator_internal.h"

static char buf[8192] __attribute__((aligned(__alignof__(struct nlmsghdr))));

/* NFULNL_MSG_PACKET with prefix and an IPv4 TCP SYN src -> dst:dport. */
static size_t put_nflog_tcp4(size_t off, const char *prefix, const char *src, uint16_t dport)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf + off);
	struct nfgenmsg *nfg;
	uint8_t pkt[40] = {0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, IPPROTO_TCP};

	inet_pton(AF_INET, src, pkt + 12);
	inet_pton(AF_INET, "192.0.2.10", pkt + 16);
	pkt[22] = (uint8_t)(dport >> 8);
	pkt[23] = (uint8_t)dport;
	pkt[33] = 0x02;
	nlh->nlmsg_type = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET;
	nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	nfg->nfgen_family = AF_INET;
	mnl_attr_put_strz(nlh, NFULA_PREFIX, prefix);
	mnl_attr_put_u32(nlh, NFULA_IFINDEX_INDEV, htonl(7));
	mnl_attr_put(nlh, NFULA_PAYLOAD, sizeof(pkt), pkt);
	return off + nlh->nlmsg_len;
}

/* A message header claiming len bytes, nothing behind it. */
static size_t put_bogus(size_t off, uint32_t len)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf + off);

	nlh->nlmsg_type = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET;
	nlh->nlmsg_len = len;
	return off + sizeof(*nlh);
}

static void test_nflog_decoy_hit_gives_source_and_port(void **state)
{
	struct rotator_hit hits[4];
	struct rotator_nflog_batch b = {.hits = hits, .max = 4};
	size_t off;
	char text[INET_ADDRSTRLEN];

	memset(buf, 0, sizeof(buf));
	off = put_nflog_tcp4(0, "mtd-decoy ", "198.51.100.7", 31337);
	off = put_nflog_tcp4(off, "mtd-egress ", "10.77.0.2", 443); /* not a decoy's */
	assert_int_equal(rotator_nflog_parse(buf, off, &b), 0);
	assert_int_equal(b.n, 1);
	assert_int_equal(hits[0].source.family, AF_INET);
	inet_ntop(AF_INET, &hits[0].source.in, text, sizeof(text));
	assert_string_equal(text, "198.51.100.7");
	assert_int_equal(hits[0].proto, IPPROTO_TCP);
	assert_int_equal(hits[0].port, 31337);
}

/* NFULNL_MSG_PACKET with prefix: an IPv4 UDP datagram src -> dport whose UDP
 * header says udp_payload bytes, of which len are copied. */
static size_t put_nflog_udp4(size_t off, const char *prefix, const char *src, uint16_t dport,
			     const void *payload, size_t len, size_t udp_payload)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf + off);
	struct nfgenmsg *nfg;
	uint8_t pkt[28 + 512] = {0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, IPPROTO_UDP};

	inet_pton(AF_INET, src, pkt + 12);
	inet_pton(AF_INET, "192.0.2.10", pkt + 16);
	pkt[22] = (uint8_t)(dport >> 8);
	pkt[23] = (uint8_t)dport;
	pkt[24] = (uint8_t)((udp_payload + 8) >> 8);
	pkt[25] = (uint8_t)(udp_payload + 8);
	memcpy(pkt + 28, payload, len);
	nlh->nlmsg_type = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET;
	nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	nfg->nfgen_family = AF_INET;
	mnl_attr_put_strz(nlh, NFULA_PREFIX, prefix);
	mnl_attr_put(nlh, NFULA_PAYLOAD, 28 + len, pkt);
	return off + nlh->nlmsg_len;
}

static void test_nflog_knock_gives_its_payload_and_connections_their_door(void **state)
{
	struct rotator_knock knocks[8];
	struct rotator_nflog_batch b = {.knocks = knocks, .max = 8};
	uint8_t big[300];
	size_t off;

	memset(buf, 0, sizeof(buf));
	memset(big, 0x5a, sizeof(big));
	off = put_nflog_udp4(0, "mtd-knock ", "198.51.100.7", 4000, "MTDK\x01", 5, 5);
	off = put_nflog_tcp4(off, "mtd-connect ", "198.51.100.7", 5000);
	off = put_nflog_tcp4(off, "mtd-decoy ", "198.51.100.8", 31337); /* not a knock */
	off = put_nflog_tcp4(off, "mtd-knock ", "198.51.100.8", 4000);	/* TCP: no knock */
	/* more than the copy range: marked truncated, never beyond the buffer */
	off = put_nflog_udp4(off, "mtd-knock ", "198.51.100.9", 4000, big, sizeof(big), 1000);
	/* a UDP length shorter than what was copied (padding): the UDP length wins */
	off = put_nflog_udp4(off, "mtd-knock ", "198.51.100.9", 4001, big, 20, 3);
	assert_int_equal(rotator_nflog_parse(buf, off, &b), 0);
	assert_int_equal(b.n, 4);
	assert_int_equal(knocks[0].kind, ROTATOR_KNOCK_DATAGRAM);
	assert_int_equal(knocks[0].port, 4000);
	assert_int_equal(knocks[0].len, 5);
	assert_memory_equal(knocks[0].payload, "MTDK\x01", 5);
	assert_false(knocks[0].truncated);
	assert_int_equal(knocks[1].kind, ROTATOR_KNOCK_CONNECTION);
	assert_int_equal(knocks[1].proto, IPPROTO_TCP);
	assert_int_equal(knocks[1].port, 5000);
	assert_int_equal(knocks[2].len, ROTATOR_KNOCK_PAYLOAD_MAX);
	assert_true(knocks[2].truncated);
	assert_int_equal(knocks[3].len, 3);
	assert_false(knocks[3].truncated);
}

static void test_nflog_message_with_huge_length_is_not_followed(void **state)
{
	struct rotator_egress_drop drops[4];
	struct rotator_nflog_batch b = {.drops = drops, .max = 4};
	size_t off;

	memset(buf, 0, sizeof(buf));
	off = put_nflog_tcp4(0, "mtd-egress ", "10.77.0.2", 443);
	off = put_bogus(off, 0xfffffff0); /* libmnl would step 4 GiB on */
	assert_int_equal(rotator_nflog_parse(buf, off, &b), 0);
	assert_int_equal(b.n, 1); /* what came before is still read */
	assert_int_equal(drops[0].port, 443);
	assert_int_equal(drops[0].ifindex, 7);
	assert_false(drops[0].spoofed);
}

/* A flow from src whose reply comes from reply_src; with has_status its
 * status bits, with tcp_state >= 0 its TCP state. */
static size_t put_flow4_full(size_t off, const char *src, const char *reply_src, bool has_status,
			     uint32_t status, int tcp_state)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf + off);
	struct nfgenmsg *nfg;
	const char *sides[2] = {src, reply_src};

	nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW;
	nlh->nlmsg_flags = NLM_F_MULTI;
	nlh->nlmsg_seq = 99;
	nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	nfg->nfgen_family = AF_INET;
	for (int i = 0; i < 2; i++) {
		struct nlattr *t = mnl_attr_nest_start(nlh, i ? CTA_TUPLE_REPLY : CTA_TUPLE_ORIG);
		struct nlattr *ip = mnl_attr_nest_start(nlh, CTA_TUPLE_IP);
		struct in_addr a;

		inet_pton(AF_INET, sides[i], &a);
		mnl_attr_put(nlh, CTA_IP_V4_SRC, 4, &a);
		mnl_attr_nest_end(nlh, ip);
		mnl_attr_nest_end(nlh, t);
	}
	if (has_status)
		mnl_attr_put_u32(nlh, CTA_STATUS, htonl(status));
	if (tcp_state >= 0) {
		struct nlattr *p = mnl_attr_nest_start(nlh, CTA_PROTOINFO);
		struct nlattr *tcp = mnl_attr_nest_start(nlh, CTA_PROTOINFO_TCP);

		mnl_attr_put_u8(nlh, CTA_PROTOINFO_TCP_STATE, (uint8_t)tcp_state);
		mnl_attr_nest_end(nlh, tcp);
		mnl_attr_nest_end(nlh, p);
	}
	return off + nlh->nlmsg_len;
}

static size_t put_flow4(size_t off, const char *src, const char *reply_src)
{
	return put_flow4_full(off, src, reply_src, false, 0, -1);
}

static size_t put_done(size_t off)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf + off);

	nlh->nlmsg_type = NLMSG_DONE;
	nlh->nlmsg_seq = 99;
	*(int *)mnl_nlmsg_put_extra_header(nlh, sizeof(int)) = 0;
	return off + nlh->nlmsg_len;
}

static void test_conntrack_dump_gives_distinct_reply_sources(void **state)
{
	struct rotator_addr source = {.family = AF_INET}, found[4];
	struct rotator_conntrack_dump d = {.source = &source, .found = found, .max = 4};
	char text[INET_ADDRSTRLEN];
	size_t off;

	inet_pton(AF_INET, "198.51.100.7", &source.in);
	memset(buf, 0, sizeof(buf));
	off = put_flow4(0, "198.51.100.7", "10.77.0.2");
	off = put_flow4(off, "198.51.100.7", "10.77.0.2");		   /* same instance again */
	off = put_flow4(off, "203.0.113.9", "10.77.0.6");		   /* another source */
	assert_int_equal(rotator_conntrack_parse(buf, off, 99, 0, &d), 1); /* more to come */
	off = put_flow4(0, "198.51.100.7", "10.77.0.6");
	off = put_done(off);
	assert_int_equal(rotator_conntrack_parse(buf, off, 99, 0, &d), 0); /* done */
	assert_int_equal(d.n, 2);
	inet_ntop(AF_INET, &found[0].in, text, sizeof(text));
	assert_string_equal(text, "10.77.0.2");
	inet_ntop(AF_INET, &found[1].in, text, sizeof(text));
	assert_string_equal(text, "10.77.0.6");
}

static void test_conntrack_message_with_huge_length_is_not_followed(void **state)
{
	struct rotator_addr source = {.family = AF_INET}, found[4];
	struct rotator_conntrack_dump d = {.source = &source, .found = found, .max = 4};
	size_t off;

	inet_pton(AF_INET, "198.51.100.7", &source.in);
	memset(buf, 0, sizeof(buf));
	off = put_flow4(0, "198.51.100.7", "10.77.0.2");
	off = put_bogus(off, 0xfffffff0);
	/* Before the fix: SEGV in libmnl's mnl_nlmsg_ok(), 4 GiB past buf. */
	assert_int_equal(rotator_conntrack_parse(buf, off, 99, 0, &d), 1);
	assert_int_equal(d.n, 1);
}

static void test_conntrack_count_to_counts_open_dnated_flows_only(void **state)
{
	struct rotator_addr to = {.family = AF_INET};
	struct rotator_conntrack_dump d = {.to = &to};
	uint32_t nat = IPS_DST_NAT | IPS_DST_NAT_DONE | IPS_CONFIRMED;
	size_t off;

	inet_pton(AF_INET, "10.77.0.2", &to.in);
	memset(buf, 0, sizeof(buf));
	/* counted: an established download, a half-closed one, a UDP flow */
	off = put_flow4_full(0, "198.51.100.7", "10.77.0.2", true, nat, TCP_CONNTRACK_ESTABLISHED);
	off = put_flow4_full(off, "198.51.100.8", "10.77.0.2", true, nat, TCP_CONNTRACK_CLOSE_WAIT);
	off = put_flow4_full(off, "198.51.100.9", "10.77.0.2", true, nat, -1);
	/* not counted: over (TIME_WAIT, CLOSE), not DNATed (a health probe),
	 * no status, another instance */
	off = put_flow4_full(off, "198.51.100.7", "10.77.0.2", true, nat, TCP_CONNTRACK_TIME_WAIT);
	off = put_flow4_full(off, "198.51.100.7", "10.77.0.2", true, nat, TCP_CONNTRACK_CLOSE);
	off = put_flow4_full(off, "10.77.0.1", "10.77.0.2", true, IPS_CONFIRMED,
			     TCP_CONNTRACK_ESTABLISHED);
	off = put_flow4(off, "198.51.100.7", "10.77.0.2");
	off =
	    put_flow4_full(off, "198.51.100.7", "10.77.0.6", true, nat, TCP_CONNTRACK_ESTABLISHED);
	off = put_done(off);
	assert_int_equal(rotator_conntrack_parse(buf, off, 99, 0, &d), 0);
	assert_int_equal(d.count, 3);
	assert_int_equal(d.n, 0); /* counting fills nothing else */
}

/* Ending them (rotator_conntrack_end_to): the counted flows' original tuples
 * are kept whole, to be sent back in the delete requests; nothing else. */
static void test_conntrack_end_keeps_the_original_tuples_of_counted_flows(void **state)
{
	struct rotator_addr to = {.family = AF_INET};
	struct rotator_conntrack_dump d = {.to = &to, .end = true};
	uint32_t nat = IPS_DST_NAT | IPS_DST_NAT_DONE | IPS_CONFIRMED;
	const struct nlattr *a;
	struct in_addr src;
	size_t off;

	inet_pton(AF_INET, "10.77.0.2", &to.in);
	memset(buf, 0, sizeof(buf));
	off = put_flow4_full(0, "198.51.100.7", "10.77.0.2", true, nat, TCP_CONNTRACK_ESTABLISHED);
	off = put_flow4_full(off, "198.51.100.8", "10.77.0.2", true, nat, TCP_CONNTRACK_TIME_WAIT);
	off =
	    put_flow4_full(off, "198.51.100.9", "10.77.0.6", true, nat, TCP_CONNTRACK_ESTABLISHED);
	off = put_done(off);
	assert_int_equal(rotator_conntrack_parse(buf, off, 99, 0, &d), 0);
	assert_int_equal(d.count, 1);
	assert_int_equal(d.n_tuples, 1);
	a = (const struct nlattr *)d.tuples[0].bytes;
	assert_int_equal(mnl_attr_get_type(a), CTA_TUPLE_ORIG);
	assert_int_equal(a->nla_len, d.tuples[0].len);
	/* CTA_TUPLE_ORIG { CTA_TUPLE_IP { CTA_IP_V4_SRC } }: the client's address */
	a = mnl_attr_get_payload(mnl_attr_get_payload(a));
	assert_int_equal(mnl_attr_get_type(a), CTA_IP_V4_SRC);
	inet_pton(AF_INET, "198.51.100.7", &src);
	assert_memory_equal(mnl_attr_get_payload(a), &src, 4);
	free(d.tuples);
}

static void test_conntrack_error_is_negative_errno(void **state)
{
	struct rotator_addr source = {.family = AF_INET}, found[1];
	struct rotator_conntrack_dump d = {.source = &source, .found = found, .max = 1};
	struct nlmsghdr *nlh;
	struct nlmsgerr *err;

	memset(buf, 0, sizeof(buf));
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = NLMSG_ERROR;
	err = mnl_nlmsg_put_extra_header(nlh, sizeof(*err));
	err->error = -EPERM;
	assert_int_equal(rotator_conntrack_parse(buf, nlh->nlmsg_len, 99, 0, &d), -EPERM);
	assert_int_equal(d.n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_nflog_decoy_hit_gives_source_and_port),
	    cmocka_unit_test(test_nflog_knock_gives_its_payload_and_connections_their_door),
	    cmocka_unit_test(test_nflog_message_with_huge_length_is_not_followed),
	    cmocka_unit_test(test_conntrack_dump_gives_distinct_reply_sources),
	    cmocka_unit_test(test_conntrack_count_to_counts_open_dnated_flows_only),
	    cmocka_unit_test(test_conntrack_end_keeps_the_original_tuples_of_counted_flows),
	    cmocka_unit_test(test_conntrack_message_with_huge_length_is_not_followed),
	    cmocka_unit_test(test_conntrack_error_is_negative_errno),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
