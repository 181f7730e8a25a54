/* SPDX-License-Identifier: MIT */
/*
 * The rule recipes of rotator/nft_expr.c against golden nftnl_rule_snprintf
 * strings, without a kernel. The goldens match what `nft --debug=netlink`
 * prints for the equivalent nft rules (see docs/nftables.md), so a change
 * here is a change of the bytecode the kernel runs.
 */
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <libnftnl/rule.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>

#include "rotator_internal.h"

static const char golden_loopback_accept[] = "inet mtd c\n"
					     "  [ meta load iif => reg 1 ]\n"
					     "  [ cmp eq reg 1 0x00000001 ]\n"
					     "  [ immediate reg 0 accept ]\n";

static const char golden_blocked_drop_ipv4[] =
    "inet mtd c\n"
    "  [ meta load nfproto => reg 1 ]\n"
    "  [ cmp eq reg 1 0x00000002 ]\n"
    "  [ payload load 4b @ network header + 12 => reg 1 ]\n"
    "  [ lookup reg 1 set blocked4 ]\n"
    "  [ counter pkts 0 bytes 0 ]\n"
    "  [ immediate reg 0 drop ]\n";

static const char golden_blocked_drop_ipv6[] =
    "inet mtd c\n"
    "  [ meta load nfproto => reg 1 ]\n"
    "  [ cmp eq reg 1 0x0000000a ]\n"
    "  [ payload load 16b @ network header + 8 => reg 1 ]\n"
    "  [ lookup reg 1 set blocked6 ]\n"
    "  [ counter pkts 0 bytes 0 ]\n"
    "  [ immediate reg 0 drop ]\n";

/* No nfproto match and no source taken: one rule for both families that
 * reports the hit and never blocks (rotator_block() is the caller's). */
static const char golden_decoy_hit[] =
    "inet mtd c\n"
    "  [ ct load state => reg 1 ]\n"
    "  [ bitwise reg 1 = ( reg 1 & 0x00000006 ) ^ 0x00000000 ]\n"
    "  [ cmp eq reg 1 0x00000000 ]\n"
    "  [ fib daddr type => reg 1 ]\n"
    "  [ cmp eq reg 1 0x00000002 ]\n"
    "  [ meta load l4proto => reg 1 ]\n"
    "  [ payload load 2b @ transport header + 2 => reg 9 ]\n"
    "  [ lookup reg 1 set decoys ]\n"
    "  [ log prefix mtd-decoy  group 7 snaplen 0 qthreshold 0 ]\n"
    "  [ counter pkts 0 bytes 0 ]\n"
    "  [ immediate reg 0 drop ]\n";

static const char golden_dnat_ipv4[] = "inet mtd c\n"
				       "  [ fib daddr type => reg 1 ]\n"
				       "  [ cmp eq reg 1 0x00000002 ]\n"
				       "  [ meta load l4proto => reg 1 ]\n"
				       "  [ payload load 2b @ transport header + 2 => reg 9 ]\n"
				       "  [ lookup reg 1 set svc4 dreg 1 ]\n"
				       "  [ nat dnat ip addr_min reg 1 proto_min reg 9 ]\n";

static const char golden_dnat_ipv6[] = "inet mtd c\n"
				       "  [ fib daddr type => reg 1 ]\n"
				       "  [ cmp eq reg 1 0x00000002 ]\n"
				       "  [ meta load l4proto => reg 1 ]\n"
				       "  [ payload load 2b @ transport header + 2 => reg 9 ]\n"
				       "  [ lookup reg 1 set svc6 dreg 1 ]\n"
				       "  [ nat dnat ip6 addr_min reg 1 proto_min reg 2 ]\n";

static const char golden_backend_guard_ipv4[] =
    "inet mtd c\n"
    "  [ meta load iif => reg 1 ]\n"
    "  [ cmp neq reg 1 0x00000001 ]\n"
    "  [ ct load status => reg 1 ]\n"
    "  [ bitwise reg 1 = ( reg 1 & 0x00000020 ) ^ 0x00000000 ]\n"
    "  [ cmp neq reg 1 0x00000020 ]\n"
    "  [ meta load nfproto => reg 1 ]\n"
    "  [ cmp eq reg 1 0x00000002 ]\n"
    "  [ meta load l4proto => reg 1 ]\n"
    "  [ payload load 4b @ network header + 16 => reg 9 ]\n"
    "  [ payload load 2b @ transport header + 2 => reg 10 ]\n"
    "  [ lookup reg 1 set backends4 ]\n"
    "  [ counter pkts 0 bytes 0 ]\n"
    "  [ immediate reg 0 drop ]\n";

static const char golden_backend_guard_ipv6[] =
    "inet mtd c\n"
    "  [ meta load iif => reg 1 ]\n"
    "  [ cmp neq reg 1 0x00000001 ]\n"
    "  [ ct load status => reg 1 ]\n"
    "  [ bitwise reg 1 = ( reg 1 & 0x00000020 ) ^ 0x00000000 ]\n"
    "  [ cmp neq reg 1 0x00000020 ]\n"
    "  [ meta load nfproto => reg 1 ]\n"
    "  [ cmp eq reg 1 0x0000000a ]\n"
    "  [ meta load l4proto => reg 1 ]\n"
    "  [ payload load 16b @ network header + 24 => reg 9 ]\n"
    "  [ payload load 2b @ transport header + 2 => reg 13 ]\n"
    "  [ lookup reg 1 set backends6 ]\n"
    "  [ counter pkts 0 bytes 0 ]\n"
    "  [ immediate reg 0 drop ]\n";

/* honeypot (rotator_config.honeypot_port = 9999 = 0x270f) */
static const char golden_decoy_report[] =
    "inet mtd c\n"
    "  [ ct load state => reg 1 ]\n"
    "  [ bitwise reg 1 = ( reg 1 & 0x00000006 ) ^ 0x00000000 ]\n"
    "  [ cmp eq reg 1 0x00000000 ]\n"
    "  [ fib daddr type => reg 1 ]\n"
    "  [ cmp eq reg 1 0x00000002 ]\n"
    "  [ meta load l4proto => reg 1 ]\n"
    "  [ payload load 2b @ transport header + 2 => reg 9 ]\n"
    "  [ lookup reg 1 set decoys ]\n"
    "  [ log prefix mtd-decoy  group 7 snaplen 0 qthreshold 0 ]\n"
    "  [ counter pkts 0 bytes 0 ]\n";

static const char golden_decoy_redirect[] =
    "inet mtd c\n"
    "  [ fib daddr type => reg 1 ]\n"
    "  [ cmp eq reg 1 0x00000002 ]\n"
    "  [ meta load l4proto => reg 1 ]\n"
    "  [ payload load 2b @ transport header + 2 => reg 9 ]\n"
    "  [ lookup reg 1 set decoys ]\n"
    "  [ cmp eq reg 1 0x00000006 ]\n"
    "  [ immediate reg 1 0x00000f27 ]\n"
    "  [ redir proto_min reg 1 ]\n";

static const char golden_decoy_drop_non_tcp[] =
    "inet mtd c\n"
    "  [ ct load state => reg 1 ]\n"
    "  [ bitwise reg 1 = ( reg 1 & 0x00000006 ) ^ 0x00000000 ]\n"
    "  [ cmp eq reg 1 0x00000000 ]\n"
    "  [ fib daddr type => reg 1 ]\n"
    "  [ cmp eq reg 1 0x00000002 ]\n"
    "  [ meta load l4proto => reg 1 ]\n"
    "  [ payload load 2b @ transport header + 2 => reg 9 ]\n"
    "  [ lookup reg 1 set decoys ]\n"
    "  [ cmp neq reg 1 0x00000006 ]\n"
    "  [ immediate reg 0 drop ]\n";

static const char golden_honeypot_guard[] =
    "inet mtd c\n"
    "  [ meta load iif => reg 1 ]\n"
    "  [ cmp neq reg 1 0x00000001 ]\n"
    "  [ ct load status => reg 1 ]\n"
    "  [ bitwise reg 1 = ( reg 1 & 0x00000020 ) ^ 0x00000000 ]\n"
    "  [ cmp neq reg 1 0x00000020 ]\n"
    "  [ meta load l4proto => reg 1 ]\n"
    "  [ cmp eq reg 1 0x00000006 ]\n"
    "  [ payload load 2b @ transport header + 2 => reg 1 ]\n"
    "  [ cmp eq reg 1 0x00000f27 ]\n"
    "  [ counter pkts 0 bytes 0 ]\n"
    "  [ immediate reg 0 drop ]\n";

static const char golden_honeypot_flow_accept[] =
    "inet mtd c\n"
    "  [ ct load status => reg 1 ]\n"
    "  [ bitwise reg 1 = ( reg 1 & 0x00000020 ) ^ 0x00000000 ]\n"
    "  [ cmp eq reg 1 0x00000020 ]\n"
    "  [ meta load l4proto => reg 1 ]\n"
    "  [ cmp eq reg 1 0x00000006 ]\n"
    "  [ ct load proto_src => reg 1 , dir reply ]\n"
    "  [ cmp eq reg 1 0x00000f27 ]\n"
    "  [ immediate reg 0 accept ]\n";

/* the instance envelope (ROTATOR_INSTANCE_IFPREFIX "mtdi", egress NFLOG group 9) */
/* nft --debug=netlink of `meta nfproto @active0 jump bank0_nat` */
static const char golden_bank_jump[] = "inet mtd c\n"
				       "  [ meta load nfproto => reg 1 ]\n"
				       "  [ lookup reg 1 set active0 ]\n"
				       "  [ immediate reg 0 jump -> bank0_nat ]\n";

static const char golden_jump_to_instance[] = "inet mtd c\n"
					      "  [ meta load oifname => reg 1 ]\n"
					      "  [ cmp eq reg 1 0x6964746d ]\n"
					      "  [ immediate reg 0 jump -> instance_ingress ]\n";

static const char golden_jump_from_instance[] = "inet mtd c\n"
						"  [ meta load iifname => reg 1 ]\n"
						"  [ cmp eq reg 1 0x6964746d ]\n"
						"  [ immediate reg 0 jump -> instance_egress ]\n";

static const char golden_icmpv6_link_accept[] =
    "inet mtd c\n"
    "  [ meta load iifname => reg 1 ]\n"
    "  [ cmp eq reg 1 0x6964746d ]\n"
    "  [ meta load nfproto => reg 1 ]\n"
    "  [ cmp eq reg 1 0x0000000a ]\n"
    "  [ meta load l4proto => reg 1 ]\n"
    "  [ cmp eq reg 1 0x0000003a ]\n"
    "  [ payload load 1b @ transport header + 0 => reg 1 ]\n"
    "  [ lookup reg 1 set icmpv6_link ]\n"
    "  [ immediate reg 0 accept ]\n";

static const char golden_antispoof_drop[] =
    "inet mtd c\n"
    "  [ fib saddr . iif oif present => reg 1 ]\n"
    "  [ cmp eq reg 1 0x00000000 ]\n"
    "  [ log prefix mtd-spoof  group 9 snaplen 0 qthreshold 0 ]\n"
    "  [ counter pkts 0 bytes 0 ]\n"
    "  [ immediate reg 0 drop ]\n";

static const char golden_ct_live_ipv4_daddr[] =
    "inet mtd c\n"
    "  [ ct load state => reg 1 ]\n"
    "  [ bitwise reg 1 = ( reg 1 & 0x00000006 ) ^ 0x00000000 ]\n"
    "  [ cmp neq reg 1 0x00000000 ]\n"
    "  [ meta load nfproto => reg 1 ]\n"
    "  [ cmp eq reg 1 0x00000002 ]\n"
    "  [ payload load 4b @ network header + 16 => reg 1 ]\n"
    "  [ lookup reg 1 set instances4 ]\n"
    "  [ immediate reg 0 return ]\n";

static const char golden_ct_live_ipv6_saddr[] =
    "inet mtd c\n"
    "  [ ct load state => reg 1 ]\n"
    "  [ bitwise reg 1 = ( reg 1 & 0x00000006 ) ^ 0x00000000 ]\n"
    "  [ cmp neq reg 1 0x00000000 ]\n"
    "  [ meta load nfproto => reg 1 ]\n"
    "  [ cmp eq reg 1 0x0000000a ]\n"
    "  [ payload load 16b @ network header + 8 => reg 1 ]\n"
    "  [ lookup reg 1 set instances6 ]\n"
    "  [ immediate reg 0 return ]\n";

static const char golden_ingress_ipv4[] =
    "inet mtd c\n"
    "  [ ct load status => reg 1 ]\n"
    "  [ bitwise reg 1 = ( reg 1 & 0x00000020 ) ^ 0x00000000 ]\n"
    "  [ cmp neq reg 1 0x00000000 ]\n"
    "  [ meta load nfproto => reg 1 ]\n"
    "  [ cmp eq reg 1 0x00000002 ]\n"
    "  [ payload load 4b @ network header + 16 => reg 1 ]\n"
    "  [ meta load l4proto => reg 9 ]\n"
    "  [ payload load 2b @ transport header + 2 => reg 10 ]\n"
    "  [ lookup reg 1 set inst_ingress4 ]\n"
    "  [ immediate reg 0 return ]\n";

static const char golden_ingress_ipv6[] =
    "inet mtd c\n"
    "  [ ct load status => reg 1 ]\n"
    "  [ bitwise reg 1 = ( reg 1 & 0x00000020 ) ^ 0x00000000 ]\n"
    "  [ cmp neq reg 1 0x00000000 ]\n"
    "  [ meta load nfproto => reg 1 ]\n"
    "  [ cmp eq reg 1 0x0000000a ]\n"
    "  [ payload load 16b @ network header + 24 => reg 1 ]\n"
    "  [ meta load l4proto => reg 12 ]\n"
    "  [ payload load 2b @ transport header + 2 => reg 13 ]\n"
    "  [ lookup reg 1 set inst_ingress6 ]\n"
    "  [ immediate reg 0 return ]\n";

static const char golden_egress_ipv4[] = "inet mtd c\n"
					 "  [ meta load nfproto => reg 1 ]\n"
					 "  [ cmp eq reg 1 0x00000002 ]\n"
					 "  [ payload load 4b @ network header + 12 => reg 1 ]\n"
					 "  [ lookup reg 1 set instances4 ]\n"
					 "  [ meta load l4proto => reg 9 ]\n"
					 "  [ payload load 4b @ network header + 16 => reg 10 ]\n"
					 "  [ payload load 2b @ transport header + 2 => reg 11 ]\n"
					 "  [ lookup reg 1 set inst_egress4 ]\n"
					 "  [ immediate reg 0 return ]\n";

static const char golden_egress_ipv6[] = "inet mtd c\n"
					 "  [ meta load nfproto => reg 1 ]\n"
					 "  [ cmp eq reg 1 0x0000000a ]\n"
					 "  [ payload load 16b @ network header + 8 => reg 1 ]\n"
					 "  [ lookup reg 1 set instances6 ]\n"
					 "  [ meta load l4proto => reg 12 ]\n"
					 "  [ payload load 16b @ network header + 24 => reg 13 ]\n"
					 "  [ payload load 2b @ transport header + 2 => reg 17 ]\n"
					 "  [ lookup reg 1 set inst_egress6 ]\n"
					 "  [ immediate reg 0 return ]\n";

static const char golden_counted_drop[] = "inet mtd c\n"
					  "  [ counter pkts 0 bytes 0 ]\n"
					  "  [ immediate reg 0 drop ]\n";

/* as `nft --debug=netlink` prints "meta nfproto ipv6 ct reply ip6 saddr
 * @dead6 jump d", "meta l4proto tcp counter reject with tcp reset" and
 * "counter reject with icmpx admin-prohibited" */
static const char golden_dead_jump_ipv6[] = "inet mtd c\n"
					    "  [ meta load nfproto => reg 1 ]\n"
					    "  [ cmp eq reg 1 0x0000000a ]\n"
					    "  [ ct load src_ip6 => reg 1 , dir reply ]\n"
					    "  [ lookup reg 1 set dead6 ]\n"
					    "  [ immediate reg 0 jump -> d ]\n";

/* as `nft --debug=netlink` prints "ct state established meta nfproto ipv6
 * ip6 saddr @dead6 meta l4proto tcp tcp flags & rst != 0 counter return" */
static const char golden_dead_reset_ipv6[] =
    "inet mtd c\n"
    "  [ ct load state => reg 1 ]\n"
    "  [ bitwise reg 1 = ( reg 1 & 0x00000002 ) ^ 0x00000000 ]\n"
    "  [ cmp neq reg 1 0x00000000 ]\n"
    "  [ meta load nfproto => reg 1 ]\n"
    "  [ cmp eq reg 1 0x0000000a ]\n"
    "  [ payload load 16b @ network header + 8 => reg 1 ]\n"
    "  [ lookup reg 1 set dead6 ]\n"
    "  [ meta load l4proto => reg 1 ]\n"
    "  [ cmp eq reg 1 0x00000006 ]\n"
    "  [ payload load 1b @ transport header + 13 => reg 1 ]\n"
    "  [ bitwise reg 1 = ( reg 1 & 0x00000004 ) ^ 0x00000000 ]\n"
    "  [ cmp neq reg 1 0x00000000 ]\n"
    "  [ counter pkts 0 bytes 0 ]\n"
    "  [ immediate reg 0 return ]\n";

/* the same for "meta nfproto ipv4 ip saddr @dead4" */
static const char golden_dead_reset_ipv4[] =
    "inet mtd c\n"
    "  [ ct load state => reg 1 ]\n"
    "  [ bitwise reg 1 = ( reg 1 & 0x00000002 ) ^ 0x00000000 ]\n"
    "  [ cmp neq reg 1 0x00000000 ]\n"
    "  [ meta load nfproto => reg 1 ]\n"
    "  [ cmp eq reg 1 0x00000002 ]\n"
    "  [ payload load 4b @ network header + 12 => reg 1 ]\n"
    "  [ lookup reg 1 set dead4 ]\n"
    "  [ meta load l4proto => reg 1 ]\n"
    "  [ cmp eq reg 1 0x00000006 ]\n"
    "  [ payload load 1b @ transport header + 13 => reg 1 ]\n"
    "  [ bitwise reg 1 = ( reg 1 & 0x00000004 ) ^ 0x00000000 ]\n"
    "  [ cmp neq reg 1 0x00000000 ]\n"
    "  [ counter pkts 0 bytes 0 ]\n"
    "  [ immediate reg 0 return ]\n";

static const char golden_reset_tcp[] = "inet mtd c\n"
				       "  [ meta load l4proto => reg 1 ]\n"
				       "  [ cmp eq reg 1 0x00000006 ]\n"
				       "  [ counter pkts 0 bytes 0 ]\n"
				       "  [ reject type 1 code 0 ]\n";

static const char golden_reject_admin[] = "inet mtd c\n"
					  "  [ counter pkts 0 bytes 0 ]\n"
					  "  [ reject type 2 code 3 ]\n";

static const char golden_ifname_return[] = "inet mtd c\n"
					   "  [ meta load iifname => reg 1 ]\n"
					   "  [ cmp eq reg 1 0x6964746d ]\n"
					   "  [ immediate reg 0 return ]\n";

static const char golden_logged_drop[] =
    "inet mtd c\n"
    "  [ log prefix mtd-egress  group 9 snaplen 0 qthreshold 0 ]\n"
    "  [ counter pkts 0 bytes 0 ]\n"
    "  [ immediate reg 0 drop ]\n";

/* Forwarding the agent switched on for its instances only: everything
 * else forwarded (neither link an instance's, not DNATed here) drops. */
static const char golden_forward_guard_ipv4[] =
    "inet mtd c\n"
    "  [ meta load nfproto => reg 1 ]\n"
    "  [ cmp eq reg 1 0x00000002 ]\n"
    "  [ meta load iifname => reg 1 ]\n"
    "  [ cmp neq reg 1 0x6964746d ]\n"
    "  [ meta load oifname => reg 1 ]\n"
    "  [ cmp neq reg 1 0x6964746d ]\n"
    "  [ ct load status => reg 1 ]\n"
    "  [ bitwise reg 1 = ( reg 1 & 0x00000020 ) ^ 0x00000000 ]\n"
    "  [ cmp neq reg 1 0x00000020 ]\n"
    "  [ counter pkts 0 bytes 0 ]\n"
    "  [ immediate reg 0 drop ]\n";

static void check(struct nftnl_rule *r, const char *golden)
{
	char buf[4096];

	assert_non_null(r);
	nftnl_rule_snprintf(buf, sizeof(buf), r, NFTNL_OUTPUT_DEFAULT, 0);
	assert_string_equal(buf, golden);
	nftnl_rule_free(r);
}

static void test_loopback_accept_bytecode(void **state)
{
	check(nft_rule_loopback_accept("c", NULL), golden_loopback_accept);
}

static void test_blocked_drop_bytecode(void **state)
{
	check(nft_rule_blocked_drop("c", NFPROTO_IPV4, "blocked4", NULL), golden_blocked_drop_ipv4);
	check(nft_rule_blocked_drop("c", NFPROTO_IPV6, "blocked6", NULL), golden_blocked_drop_ipv6);
}

static void test_decoy_hit_logs_and_drops_without_blocking(void **state)
{
	check(nft_rule_decoy_hit("c", "decoys", 7, "mtd-decoy ", NULL), golden_decoy_hit);
}

static void test_honeypot_rules_report_redirect_and_guard(void **state)
{
	check(nft_rule_decoy_report("c", "decoys", 7, "mtd-decoy ", NULL), golden_decoy_report);
	check(nft_rule_decoy_redirect("c", "decoys", 9999, NULL), golden_decoy_redirect);
	check(nft_rule_decoy_drop_non_tcp("c", "decoys", NULL), golden_decoy_drop_non_tcp);
	check(nft_rule_honeypot_guard("c", 9999, NULL), golden_honeypot_guard);
	check(nft_rule_honeypot_flow_accept("c", 9999, NULL), golden_honeypot_flow_accept);
	assert_null(nft_rule_decoy_redirect("c", "decoys", 0, NULL));
}

static void test_dnat_takes_address_and_port_from_map(void **state)
{
	/* IPv4: port right after the 4-byte address (reg32 01 = 9); IPv6: after 16 bytes (reg 2) */
	check(nft_rule_dnat("c", NFPROTO_IPV4, "svc4", NULL), golden_dnat_ipv4);
	check(nft_rule_dnat("c", NFPROTO_IPV6, "svc6", NULL), golden_dnat_ipv6);
}

static void test_backend_guard_requires_dnat(void **state)
{
	check(nft_rule_backend_guard("c", NFPROTO_IPV4, "backends4", NULL),
	      golden_backend_guard_ipv4);
	check(nft_rule_backend_guard("c", NFPROTO_IPV6, "backends6", NULL),
	      golden_backend_guard_ipv6);
}

static void test_comment_is_stored_as_rule_userdata(void **state)
{
	struct nftnl_rule *r = nft_rule_loopback_accept("c", "hello");
	const char *data;
	uint32_t len = 0;

	assert_non_null(r);
	data = nftnl_rule_get_data(r, NFTNL_RULE_USERDATA, &len);
	assert_non_null(data);
	/* TLV: type NFTNL_UDATA_RULE_COMMENT, length, "hello\0" */
	assert_int_equal(len, 2 + 6);
	assert_int_equal(data[0], NFTNL_UDATA_RULE_COMMENT);
	assert_int_equal(data[1], 6);
	assert_memory_equal(data + 2, "hello", 6);
	nftnl_rule_free(r);
}

static void test_bad_family_or_comment_is_refused(void **state)
{
	char long_comment[200];

	assert_null(nft_rule_dnat("c", NFPROTO_ARP, "svc4", NULL));
	assert_null(nft_rule_blocked_drop("c", NFPROTO_INET, "blocked4", NULL));
	memset(long_comment, 'x', sizeof(long_comment) - 1);
	long_comment[sizeof(long_comment) - 1] = 0;
	assert_null(nft_rule_loopback_accept("c", long_comment));
}

static void test_live_bank_dispatch_is_a_set_lookup_and_jump(void **state)
{
	check(nft_rule_bank_jump("c", "active0", "bank0_nat", NULL), golden_bank_jump);
}

static void test_instance_links_jump_to_the_envelope_chains(void **state)
{
	check(nft_rule_ifname_jump("c", true, "mtdi", "instance_ingress", NULL),
	      golden_jump_to_instance);
	check(nft_rule_ifname_jump("c", false, "mtdi", "instance_egress", NULL),
	      golden_jump_from_instance);
	check(nft_rule_icmpv6_link_accept("c", "mtdi", "icmpv6_link", NULL),
	      golden_icmpv6_link_accept);
	check(nft_rule_ifname_return("c", "mtdi", NULL), golden_ifname_return);
	assert_null(nft_rule_ifname_jump("c", true, "", "x", NULL));
	assert_null(nft_rule_ifname_jump("c", true, "0123456789abcdef", "x", NULL));
}

static void test_forward_guard_drops_what_the_instances_do_not_need(void **state)
{
	check(nft_rule_forward_guard("c", NFPROTO_IPV4, "mtdi", NULL), golden_forward_guard_ipv4);
	assert_null(nft_rule_forward_guard("c", NFPROTO_IPV6, "", NULL));
}

static void test_instance_ingress_needs_dnat_and_its_port(void **state)
{
	check(nft_rule_ct_live_return("c", NFPROTO_IPV4, false, "instances4", NULL),
	      golden_ct_live_ipv4_daddr);
	check(nft_rule_ingress_return("c", NFPROTO_IPV4, "inst_ingress4", NULL),
	      golden_ingress_ipv4);
	/* IPv6: the 16-byte address fills reg32 00-03, proto reg32 04 (12), port 05 (13) */
	check(nft_rule_ingress_return("c", NFPROTO_IPV6, "inst_ingress6", NULL),
	      golden_ingress_ipv6);
	check(nft_rule_drop("c", 0, NULL, NULL), golden_counted_drop);
}

static void test_instance_egress_spoof_check_rules_and_logged_drop(void **state)
{
	check(nft_rule_antispoof_drop("c", 9, "mtd-spoof ", NULL), golden_antispoof_drop);
	check(nft_rule_ct_live_return("c", NFPROTO_IPV6, true, "instances6", NULL),
	      golden_ct_live_ipv6_saddr);
	/* saddr . l4proto . daddr . dport: 4+4+4+4 and 16+4+16+4 bytes of registers */
	check(nft_rule_egress_return("c", NFPROTO_IPV4, "instances4", "inst_egress4", NULL),
	      golden_egress_ipv4);
	check(nft_rule_egress_return("c", NFPROTO_IPV6, "instances6", "inst_egress6", NULL),
	      golden_egress_ipv6);
	check(nft_rule_drop("c", 9, "mtd-egress ", NULL), golden_logged_drop);
	assert_null(nft_rule_egress_return("c", NFPROTO_ARP, "instances4", "inst_egress4", NULL));
}

static void test_flows_to_killed_instances_are_reset(void **state)
{
	check(nft_rule_dead_jump("c", NFPROTO_IPV6, "dead6", "d", NULL), golden_dead_jump_ipv6);
	check(nft_rule_reject("c", true, NULL), golden_reset_tcp);
	check(nft_rule_reject("c", false, NULL), golden_reject_admin);
	assert_null(nft_rule_dead_jump("c", NFPROTO_ARP, "dead4", "d", NULL));
}

/* A killed or cut instance's own kernel resetting its flows (the agent's
 * SOCK_DESTROY) gets out; nothing else of it does. */
static void test_resets_of_killed_instances_get_out(void **state)
{
	check(nft_rule_dead_reset_return("c", NFPROTO_IPV4, "dead4", NULL), golden_dead_reset_ipv4);
	check(nft_rule_dead_reset_return("c", NFPROTO_IPV6, "dead6", NULL), golden_dead_reset_ipv6);
	assert_null(nft_rule_dead_reset_return("c", NFPROTO_ARP, "dead4", NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_loopback_accept_bytecode),
	    cmocka_unit_test(test_blocked_drop_bytecode),
	    cmocka_unit_test(test_decoy_hit_logs_and_drops_without_blocking),
	    cmocka_unit_test(test_honeypot_rules_report_redirect_and_guard),
	    cmocka_unit_test(test_dnat_takes_address_and_port_from_map),
	    cmocka_unit_test(test_backend_guard_requires_dnat),
	    cmocka_unit_test(test_comment_is_stored_as_rule_userdata),
	    cmocka_unit_test(test_bad_family_or_comment_is_refused),
	    cmocka_unit_test(test_live_bank_dispatch_is_a_set_lookup_and_jump),
	    cmocka_unit_test(test_instance_links_jump_to_the_envelope_chains),
	    cmocka_unit_test(test_instance_ingress_needs_dnat_and_its_port),
	    cmocka_unit_test(test_forward_guard_drops_what_the_instances_do_not_need),
	    cmocka_unit_test(test_instance_egress_spoof_check_rules_and_logged_drop),
	    cmocka_unit_test(test_flows_to_killed_instances_are_reset),
	    cmocka_unit_test(test_resets_of_killed_instances_get_out),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
