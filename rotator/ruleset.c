/* SPDX-License-Identifier: MIT */
/* The table layout of `inet mtd` and the element messages of a plan. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>

#include "macro.h"
#include "rotator_internal.h"

#define TYPE_IPADDR RS_TYPE_IPADDR
#define TYPE_IP6ADDR RS_TYPE_IP6ADDR
#define TYPE_INET_PROTOCOL RS_TYPE_INET_PROTOCOL
#define TYPE_INET_SERVICE RS_TYPE_INET_SERVICE
#define TYPE_NFPROTO RS_TYPE_NFPROTO
#define CONCAT2 RS_CONCAT2
#define CONCAT3 RS_CONCAT3

#define BANK_SETS(b)                                                                               \
	{RS_BANK_NAME(RS_SVC4, b),                                                                 \
	 CONCAT2(TYPE_INET_PROTOCOL, TYPE_INET_SERVICE),                                           \
	 8,                                                                                        \
	 CONCAT2(TYPE_IPADDR, TYPE_INET_SERVICE),                                                  \
	 8,                                                                                        \
	 NFT_SET_MAP,                                                                              \
	 0,                                                                                        \
	 "bank " #b ": public port -> IPv4 backend, current and grace port of each service",       \
	 NULL},                                                                                    \
	    {RS_BANK_NAME(RS_SVC6, b),                                                             \
	     CONCAT2(TYPE_INET_PROTOCOL, TYPE_INET_SERVICE),                                       \
	     8,                                                                                    \
	     CONCAT2(TYPE_IP6ADDR, TYPE_INET_SERVICE),                                             \
	     20,                                                                                   \
	     NFT_SET_MAP,                                                                          \
	     0,                                                                                    \
	     "bank " #b ": public port -> IPv6 backend, current and grace port of each service",   \
	     NULL},                                                                                \
	    {RS_BANK_NAME(RS_LOCAL4, b),                                                           \
	     CONCAT2(TYPE_INET_PROTOCOL, TYPE_INET_SERVICE),                                       \
	     8,                                                                                    \
	     CONCAT2(TYPE_IPADDR, TYPE_INET_SERVICE),                                              \
	     8,                                                                                    \
	     NFT_SET_MAP,                                                                          \
	     0,                                                                                    \
	     "bank " #b ": like svc4, for clients on this host (services with local access)",      \
	     NULL},                                                                                \
	    {RS_BANK_NAME(RS_LOCAL6, b),                                                           \
	     CONCAT2(TYPE_INET_PROTOCOL, TYPE_INET_SERVICE),                                       \
	     8,                                                                                    \
	     CONCAT2(TYPE_IP6ADDR, TYPE_INET_SERVICE),                                             \
	     20,                                                                                   \
	     NFT_SET_MAP,                                                                          \
	     0,                                                                                    \
	     "bank " #b ": like svc6, for clients on this host (services with local access)",      \
	     NULL},                                                                                \
	    {RS_BANK_NAME(RS_DECOYS, b),                                                           \
	     CONCAT2(TYPE_INET_PROTOCOL, TYPE_INET_SERVICE),                                       \
	     8,                                                                                    \
	     0,                                                                                    \
	     0,                                                                                    \
	     0,                                                                                    \
	     0,                                                                                    \
	     "bank " #b ": decoy ports: a packet to one is reported",                              \
	     NULL},                                                                                \
	    {RS_BANK_NAME(RS_GATED, b),                                                            \
	     CONCAT2(TYPE_INET_PROTOCOL, TYPE_INET_SERVICE),                                       \
	     8,                                                                                    \
	     0,                                                                                    \
	     0,                                                                                    \
	     0,                                                                                    \
	     0,                                                                                    \
	     "bank " #b ": knock-gated doors: DNAT only for admitted sources",                     \
	     NULL},                                                                                \
	{                                                                                          \
		RS_BANK_NAME(RS_KNOCK, b), CONCAT2(TYPE_INET_PROTOCOL, TYPE_INET_SERVICE), 8, 0,   \
		    0, 0, 0, "bank " #b ": knock ports: a packet to one is reported", NULL         \
	}

/* Every per-epoch map and set twice (docs/nftables.md, "Two banks"): the
 * live bank is the one whose active set holds ipv4 and ipv6; the idle one is
 * loaded ahead with the next epoch, so a boundary only switches banks. */
static const struct set_def sets[] = {
    BANK_SETS(0),
    BANK_SETS(1),
    {RS_ACTIVE0, TYPE_NFPROTO, 1, 0, 0, 0, 0,
     "ipv4 and ipv6 while bank 0 is live (a boundary moves them to the other bank)", NULL},
    {RS_ACTIVE1, TYPE_NFPROTO, 1, 0, 0, 0, 0,
     "ipv4 and ipv6 while bank 1 is live (a boundary moves them to the other bank)", NULL},
    {RS_BACKENDS4, CONCAT3(TYPE_INET_PROTOCOL, TYPE_IPADDR, TYPE_INET_SERVICE), 12, 0, 0, 0, 0,
     "real IPv4 backends: reachable from outside only through the DNAT", NULL},
    {RS_BACKENDS6, CONCAT3(TYPE_INET_PROTOCOL, TYPE_IP6ADDR, TYPE_INET_SERVICE), 24, 0, 0, 0, 0,
     "real IPv6 backends: reachable from outside only through the DNAT", NULL},
    /* filled by the caller alone (rotator_block()), never from the packet path */
    {RS_BLOCKED4, TYPE_IPADDR, 4, 0, 0, NFT_SET_TIMEOUT, 65535, "IPv4 sources the agent blocked",
     NULL},
    {RS_BLOCKED6, TYPE_IP6ADDR, 16, 0, 0, NFT_SET_TIMEOUT, 65535, "IPv6 sources the agent blocked",
     NULL},
    /* filled by the caller alone (rotator_block_ranges()): disjoint intervals */
    {RS_RANGES4, TYPE_IPADDR, 4, 0, 0, NFT_SET_INTERVAL | NFT_SET_TIMEOUT, 0,
     "IPv4 ranges the agent blocked", NULL},
    {RS_RANGES6, TYPE_IP6ADDR, 16, 0, 0, NFT_SET_INTERVAL | NFT_SET_TIMEOUT, 0,
     "IPv6 ranges the agent blocked", NULL},
    /* filled by the caller alone (rotator_admit()), never from the packet path */
    {RS_ADMITTED4, CONCAT3(TYPE_IPADDR, TYPE_INET_PROTOCOL, TYPE_INET_SERVICE), 12, 0, 0,
     NFT_SET_TIMEOUT, 262144, "IPv4 sources admitted to a knock-gated door by a knock", NULL},
    {RS_ADMITTED6, CONCAT3(TYPE_IP6ADDR, TYPE_INET_PROTOCOL, TYPE_INET_SERVICE), 24, 0, 0,
     NFT_SET_TIMEOUT, 262144, "IPv6 sources admitted to a knock-gated door by a knock", NULL},
};

#define CH_PRE_FILTER "prerouting_filter"
#define CH_PRE_NAT "prerouting_nat"
#define CH_OUT_NAT "output_nat"
#define CH_IN_FILTER RS_CH_INPUT_FILTER
#define CH_FWD_FILTER RS_CH_FORWARD_FILTER
#define CH_BANK_FILTER(b) "bank" #b "_filter"
#define CH_BANK_NAT(b) "bank" #b "_nat"
#define CH_BANK_LOCAL(b) "bank" #b "_local"

#define BANK_CHAINS(b)                                                                             \
	{CH_BANK_FILTER(b), NULL, 0, 0, "bank " #b ": decoy hits are reported"},                   \
	    {CH_BANK_NAT(b), NULL, 0, 0, "bank " #b ": public port -> backend"},                   \
	{                                                                                          \
		CH_BANK_LOCAL(b), NULL, 0, 0,                                                      \
		    "bank " #b ": public port -> backend for clients on this host"                 \
	}

static const struct chain_def chains[] = {
    {CH_PRE_FILTER, "filter", NF_INET_PRE_ROUTING, -150,
     "blocked sources are dropped; decoy hits are reported"},
    {CH_PRE_NAT, "nat", NF_INET_PRE_ROUTING, -100, "current/grace public port -> backend"},
    {CH_OUT_NAT, "nat", NF_INET_LOCAL_OUT, -100, "public port -> backend for clients on this host"},
    {CH_IN_FILTER, "filter", NF_INET_LOCAL_IN, 0, "backends on this host: only through the DNAT"},
    {CH_FWD_FILTER, "filter", NF_INET_FORWARD, 0,
     "backends behind this host: only through the DNAT"},
    BANK_CHAINS(0),
    BANK_CHAINS(1),
};

/* The rules of one bank's chains: its decoys, its public ports. A decoy hit
 * is logged, never blocked here (the caller decides: rotator_block()). */
static int add_bank_rules(struct nft_txn *t, unsigned bank, const struct rotator_config *config)
{
	uint16_t group = config->nflog_group, hp = config->honeypot_port;
	const char *filter = bank ? CH_BANK_FILTER(1) : CH_BANK_FILTER(0);
	const char *nat = bank ? CH_BANK_NAT(1) : CH_BANK_NAT(0);
	const char *local = bank ? CH_BANK_LOCAL(1) : CH_BANK_LOCAL(0);
	const char *decoys = bank ? RS_BANK_NAME(RS_DECOYS, 1) : RS_BANK_NAME(RS_DECOYS, 0);
	const char *gated = bank ? RS_BANK_NAME(RS_GATED, 1) : RS_BANK_NAME(RS_GATED, 0);
	const char *knock_set = bank ? RS_BANK_NAME(RS_KNOCK, 1) : RS_BANK_NAME(RS_KNOCK, 0);
	const char *gate_comment = "knock-gated door: only admitted sources reach the backend";
	uint16_t knock = config->knock_nflog_group;
	struct ruleset_rule rules[] = {
	    {hp ? nft_rule_decoy_report(
		      filter, decoys, group, RS_LOG_PREFIX,
		      "decoy hit: report the source (TCP goes on to the honeypot)")
		: nft_rule_decoy_hit(filter, decoys, group, RS_LOG_PREFIX,
				     "decoy hit: report the source, drop the packet"),
	     "decoy hit in a bank's filter chain", false},
	    {hp ? nft_rule_decoy_drop_non_tcp(filter, decoys,
					      "UDP decoys are dropped, not redirected")
		: NULL,
	     "UDP decoy drop in a bank's filter chain", !hp},
	    {hp ? nft_rule_decoy_redirect(nat, decoys, hp,
					  "TCP decoys look open: the honeypot answers")
		: NULL,
	     "decoy redirect in a bank's nat chain", !hp},
	    {knock ? nft_rule_decoy_report(filter, knock_set, knock, ROTATOR_KNOCK_LOG_PREFIX,
					   "knock: report to the agent (the host answers as a "
					   "closed port)")
		   : NULL,
	     "knock report in a bank's filter chain", !knock},
	    {nft_rule_gate(nat, NFPROTO_IPV4, gated, RS_ADMITTED4, gate_comment),
	     "IPv4 gate in a bank's nat chain", false},
	    {nft_rule_gate(nat, NFPROTO_IPV6, gated, RS_ADMITTED6, gate_comment),
	     "IPv6 gate in a bank's nat chain", false},
	    /* past the gates: the first packet of a flow an admitted source
	     * opens to a gated door (the nat chain sees no other); the agent
	     * audits the first of each admission (client-connected) */
	    {knock ? nft_rule_decoy_report(nat, gated, knock, RS_CONNECT_LOG_PREFIX,
					   "connection to a knock-gated door: report it")
		   : NULL,
	     "connection report in a bank's nat chain", !knock},
	    {nft_rule_gate(local, NFPROTO_IPV4, gated, RS_ADMITTED4, gate_comment),
	     "IPv4 gate in a bank's local chain", false},
	    {nft_rule_gate(local, NFPROTO_IPV6, gated, RS_ADMITTED6, gate_comment),
	     "IPv6 gate in a bank's local chain", false},
	    {nft_rule_dnat(nat, NFPROTO_IPV4,
			   bank ? RS_BANK_NAME(RS_SVC4, 1) : RS_BANK_NAME(RS_SVC4, 0), NULL),
	     "IPv4 dnat in a bank's nat chain", false},
	    {nft_rule_dnat(nat, NFPROTO_IPV6,
			   bank ? RS_BANK_NAME(RS_SVC6, 1) : RS_BANK_NAME(RS_SVC6, 0), NULL),
	     "IPv6 dnat in a bank's nat chain", false},
	    {nft_rule_dnat(local, NFPROTO_IPV4,
			   bank ? RS_BANK_NAME(RS_LOCAL4, 1) : RS_BANK_NAME(RS_LOCAL4, 0), NULL),
	     "IPv4 dnat in a bank's local chain", false},
	    {nft_rule_dnat(local, NFPROTO_IPV6,
			   bank ? RS_BANK_NAME(RS_LOCAL6, 1) : RS_BANK_NAME(RS_LOCAL6, 0), NULL),
	     "IPv6 dnat in a bank's local chain", false},
	};
	return ruleset_add_rules(t, rules, ELEMENTSOF(rules));
}

int ruleset_add_layout(struct nft_txn *t, uint32_t table_flags, const struct rotator_config *config)
{
	uint16_t hp = config->honeypot_port;
	const char *live0 = "bank 0 while it is live", *live1 = "bank 1 while it is live";
	int r;

	r = ruleset_add_table(t, table_flags);
	for (size_t i = 0; r >= 0 && i < ELEMENTSOF(sets); i++)
		r = ruleset_add_set(t, &sets[i], (uint32_t)i + 1);
	for (size_t i = 0; r >= 0 && i < ELEMENTSOF(chains); i++)
		r = ruleset_add_chain(t, &chains[i]);
	if (r >= 0 && config->instance_envelope)
		r = ruleset_add_instance_objects(t, ELEMENTSOF(sets) + 1);
	if (r < 0)
		return r;

	struct ruleset_rule rules[] = {
	    {nft_rule_loopback_accept(CH_PRE_FILTER, "this host's own traffic is never blocked"),
	     "loopback accept in " CH_PRE_FILTER, false},
	    /* replies and flows of the instances: nothing below applies to them
	     * (sources blocked, decoys, flows to killed instances are outside
	     * traffic); instance_egress, in forward and input, decides */
	    {config->instance_envelope
		 ? nft_rule_ifname_return(CH_PRE_FILTER, ROTATOR_INSTANCE_IFPREFIX,
					  "from an instance: its envelope decides (forward, input)")
		 : NULL,
	     "instance links return in " CH_PRE_FILTER, !config->instance_envelope},
	    {hp ? nft_rule_honeypot_flow_accept(CH_PRE_FILTER, hp,
						"decoy connections end at the honeypot")
		: NULL,
	     "honeypot flow accept in " CH_PRE_FILTER, !hp},
	    {nft_rule_blocked_drop(CH_PRE_FILTER, NFPROTO_IPV4, RS_BLOCKED4,
				   "blocked IPv4 sources reach nothing"),
	     "blocked4 drop in " CH_PRE_FILTER, false},
	    {nft_rule_blocked_drop(CH_PRE_FILTER, NFPROTO_IPV6, RS_BLOCKED6,
				   "blocked IPv6 sources reach nothing"),
	     "blocked6 drop in " CH_PRE_FILTER, false},
	    {nft_rule_blocked_drop(CH_PRE_FILTER, NFPROTO_IPV4, RS_RANGES4,
				   "blocked IPv4 ranges reach nothing"),
	     "ranges4 drop in " CH_PRE_FILTER, false},
	    {nft_rule_blocked_drop(CH_PRE_FILTER, NFPROTO_IPV6, RS_RANGES6,
				   "blocked IPv6 ranges reach nothing"),
	     "ranges6 drop in " CH_PRE_FILTER, false},
	    {nft_rule_bank_jump(CH_PRE_FILTER, RS_ACTIVE0, CH_BANK_FILTER(0), live0),
	     "bank 0 jump in " CH_PRE_FILTER, false},
	    {nft_rule_bank_jump(CH_PRE_FILTER, RS_ACTIVE1, CH_BANK_FILTER(1), live1),
	     "bank 1 jump in " CH_PRE_FILTER, false},
	    {nft_rule_bank_jump(CH_PRE_NAT, RS_ACTIVE0, CH_BANK_NAT(0), live0),
	     "bank 0 jump in " CH_PRE_NAT, false},
	    {nft_rule_bank_jump(CH_PRE_NAT, RS_ACTIVE1, CH_BANK_NAT(1), live1),
	     "bank 1 jump in " CH_PRE_NAT, false},
	    {nft_rule_bank_jump(CH_OUT_NAT, RS_ACTIVE0, CH_BANK_LOCAL(0), live0),
	     "bank 0 jump in " CH_OUT_NAT, false},
	    {nft_rule_bank_jump(CH_OUT_NAT, RS_ACTIVE1, CH_BANK_LOCAL(1), live1),
	     "bank 1 jump in " CH_OUT_NAT, false},
	    {nft_rule_backend_guard(CH_IN_FILTER, NFPROTO_IPV4, RS_BACKENDS4,
				    "real port without DNAT"),
	     "backend guard4 in " CH_IN_FILTER, false},
	    {nft_rule_backend_guard(CH_IN_FILTER, NFPROTO_IPV6, RS_BACKENDS6,
				    "real port without DNAT"),
	     "backend guard6 in " CH_IN_FILTER, false},
	    {hp ? nft_rule_honeypot_guard(CH_IN_FILTER, hp,
					  "the honeypot only through a decoy redirect")
		: NULL,
	     "honeypot guard in " CH_IN_FILTER, !hp},
	    {nft_rule_backend_guard(CH_FWD_FILTER, NFPROTO_IPV4, RS_BACKENDS4,
				    "real port without DNAT"),
	     "backend guard4 in " CH_FWD_FILTER, false},
	    {nft_rule_backend_guard(CH_FWD_FILTER, NFPROTO_IPV6, RS_BACKENDS6,
				    "real port without DNAT"),
	     "backend guard6 in " CH_FWD_FILTER, false},
	    {config->forward_guard4
		 ? nft_rule_forward_guard(CH_FWD_FILTER, NFPROTO_IPV4, ROTATOR_INSTANCE_IFPREFIX,
					  "forwarding is on for the instance links only")
		 : NULL,
	     "forward guard4 in " CH_FWD_FILTER, !config->forward_guard4},
	    {config->forward_guard6
		 ? nft_rule_forward_guard(CH_FWD_FILTER, NFPROTO_IPV6, ROTATOR_INSTANCE_IFPREFIX,
					  "forwarding is on for the instance links only")
		 : NULL,
	     "forward guard6 in " CH_FWD_FILTER, !config->forward_guard6},
	};
	r = ruleset_add_rules(t, rules, ELEMENTSOF(rules));
	for (unsigned bank = 0; r >= 0 && bank < 2; bank++)
		r = add_bank_rules(t, bank, config);
	if (r >= 0 && config->instance_envelope)
		r = ruleset_add_instance_rules(t, config);
	return r;
}
