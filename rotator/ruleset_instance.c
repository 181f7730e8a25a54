/* SPDX-License-Identifier: MIT */
/*
 * The instance envelope in `inet mtd` (docs/nftables.md, "Instance
 * envelope"): its sets, the two regular chains instance_ingress and
 * instance_egress, and the static rules that send every packet to or from an
 * "mtdi*" link through them. Default-deny: with no element, nothing passes.
 * A flow still tracked to a killed or cut instance (dead4/dead6) is answered
 * with a reset in prerouting_filter.
 */
#include <errno.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <string.h>

#include <libmnl/libmnl.h>
#include <libnftnl/rule.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>

#include "macro.h"
#include "rotator_internal.h"

#define CH_INGRESS "instance_ingress"
#define CH_EGRESS "instance_egress"
#define CH_DEAD "instance_dead"
#define IFPREFIX ROTATOR_INSTANCE_IFPREFIX

static const uint8_t egress4_fields[] = {4, 1, 4, 2, 0};
static const uint8_t egress6_fields[] = {16, 1, 16, 2, 0};

static const struct set_def instance_sets[] = {
    {RS_INSTANCES4, RS_TYPE_IPADDR, 4, 0, 0, 0, 0,
     "IPv4 addresses of live instances: their established flows pass", NULL},
    {RS_INSTANCES6, RS_TYPE_IP6ADDR, 16, 0, 0, 0, 0,
     "IPv6 addresses of live instances: their established flows pass", NULL},
    {RS_INGRESS4, RS_CONCAT3(RS_TYPE_IPADDR, RS_TYPE_INET_PROTOCOL, RS_TYPE_INET_SERVICE), 12, 0, 0,
     0, 0, "instance IPv4 address . proto . port: new flows through the DNAT", NULL},
    {RS_INGRESS6, RS_CONCAT3(RS_TYPE_IP6ADDR, RS_TYPE_INET_PROTOCOL, RS_TYPE_INET_SERVICE), 24, 0,
     0, 0, 0, "instance IPv6 address . proto . port: new flows through the DNAT", NULL},
    {RS_EGRESS4,
     RS_CONCAT4(RS_TYPE_IPADDR, RS_TYPE_INET_PROTOCOL, RS_TYPE_IPADDR, RS_TYPE_INET_SERVICE), 16, 0,
     0, NFT_SET_INTERVAL | NFT_SET_CONCAT, 0,
     "instance . proto . destination . ports: its Egress= rules (IPv4)", egress4_fields},
    {RS_EGRESS6,
     RS_CONCAT4(RS_TYPE_IP6ADDR, RS_TYPE_INET_PROTOCOL, RS_TYPE_IP6ADDR, RS_TYPE_INET_SERVICE), 40,
     0, 0, NFT_SET_INTERVAL | NFT_SET_CONCAT, 0,
     "instance . proto . destination . ports: its Egress= rules (IPv6)", egress6_fields},
    {RS_ICMPV6_LINK, RS_TYPE_ICMP6_TYPE, 1, 0, 0, NFT_SET_CONSTANT, 0,
     "neighbour discovery and MLD reports an instance sends to the host", NULL},
    {RS_DEAD4, RS_TYPE_IPADDR, 4, 0, 0, 0, 0,
     "IPv4 addresses of killed or cut instances: their tracked flows are reset", NULL},
    {RS_DEAD6, RS_TYPE_IP6ADDR, 16, 0, 0, 0, 0,
     "IPv6 addresses of killed or cut instances: their tracked flows are reset", NULL},
};

/* router solicitation, neighbour solicitation and advertisement, MLD reports */
static const uint8_t icmpv6_link_types[] = {
    ND_ROUTER_SOLICIT,	 ND_NEIGHBOR_SOLICIT,	 ND_NEIGHBOR_ADVERT,
    MLD_LISTENER_REPORT, 143 /* MLDv2 report */,
};

static const struct chain_def instance_chains[] = {
    {CH_INGRESS, NULL, 0, 0, "to an instance: replies, and new flows to its port through the DNAT"},
    {CH_EGRESS, NULL, 0, 0, "from an instance: replies, and new flows its Egress= rules allow"},
    {CH_DEAD, NULL, 0, 0, "a flow to a killed or cut instance: answered at once"},
};

/* The constant set's elements, in the transaction that creates it. */
static int add_icmpv6_types(struct nft_txn *t)
{
	struct nlattr *list, *el, *key;
	struct nlmsghdr *nlh;

	nlh = nft_txn_msg(t, NFT_MSG_NEWSETELEM, NFPROTO_INET, NLM_F_CREATE | NLM_F_EXCL,
			  &(struct nft_ref){.what = "elements of set", .name = RS_ICMPV6_LINK});
	if (!nlh)
		return -ENOMEM;
	mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, ROTATOR_TABLE);
	mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, RS_ICMPV6_LINK);
	list = mnl_attr_nest_start(nlh, NFTA_SET_ELEM_LIST_ELEMENTS);
	for (size_t i = 0; i < ELEMENTSOF(icmpv6_link_types); i++) {
		el = mnl_attr_nest_start(nlh, NFTA_LIST_ELEM);
		key = mnl_attr_nest_start(nlh, NFTA_SET_ELEM_KEY);
		mnl_attr_put(nlh, NFTA_DATA_VALUE, 1, &icmpv6_link_types[i]);
		mnl_attr_nest_end(nlh, key);
		mnl_attr_nest_end(nlh, el);
	}
	mnl_attr_nest_end(nlh, list);
	return nft_txn_msg_end(t, nlh);
}

int ruleset_add_instance_objects(struct nft_txn *t, uint32_t first_set_id)
{
	int r = 0;

	for (size_t i = 0; r >= 0 && i < ELEMENTSOF(instance_sets); i++)
		r = ruleset_add_set(t, &instance_sets[i], first_set_id + (uint32_t)i);
	if (r >= 0)
		r = add_icmpv6_types(t);
	for (size_t i = 0; r >= 0 && i < ELEMENTSOF(instance_chains); i++)
		r = ruleset_add_chain(t, &instance_chains[i]);
	return r;
}

int ruleset_add_instance_rules(struct nft_txn *t, const struct rotator_config *config)
{
	uint16_t group = config->egress_nflog_group;
	struct ruleset_rule rules[] = {
	    /* the base chains: every packet to or from an instance link */
	    {nft_rule_ifname_jump(RS_CH_FORWARD_FILTER, true, IFPREFIX, CH_INGRESS,
				  "forwarded to an instance"),
	     "jump " CH_INGRESS " in " RS_CH_FORWARD_FILTER, false},
	    {nft_rule_ifname_jump(RS_CH_FORWARD_FILTER, false, IFPREFIX, CH_EGRESS,
				  "forwarded from an instance"),
	     "jump " CH_EGRESS " in " RS_CH_FORWARD_FILTER, false},
	    {nft_rule_icmpv6_link_accept(RS_CH_INPUT_FILTER, IFPREFIX, RS_ICMPV6_LINK,
					 "IPv6 on the instance link needs these"),
	     "neighbour discovery accept in " RS_CH_INPUT_FILTER, false},
	    {nft_rule_ifname_jump(RS_CH_INPUT_FILTER, false, IFPREFIX, CH_EGRESS,
				  "from an instance to this host"),
	     "jump " CH_EGRESS " in " RS_CH_INPUT_FILTER, false},
	    /* a flow conntrack still sends to a killed or cut instance: the
	     * client is answered now (a reset), not left to time out; before
	     * routing, since a killed instance's link and route are gone */
	    {nft_rule_dead_jump(RS_CH_PREROUTING_FILTER, NFPROTO_IPV4, RS_DEAD4, CH_DEAD,
				"flow to a killed instance"),
	     "dead4 jump in " RS_CH_PREROUTING_FILTER, false},
	    {nft_rule_dead_jump(RS_CH_PREROUTING_FILTER, NFPROTO_IPV6, RS_DEAD6, CH_DEAD,
				"flow to a killed instance"),
	     "dead6 jump in " RS_CH_PREROUTING_FILTER, false},
	    {nft_rule_reject(CH_DEAD, true, "TCP: reset"), "reset in " CH_DEAD, false},
	    {nft_rule_reject(CH_DEAD, false, "others: refused"), "reject in " CH_DEAD, false},
	    /* to an instance */
	    {nft_rule_ct_live_return(CH_INGRESS, NFPROTO_IPV4, false, RS_INSTANCES4,
				     "replies and related ICMP to a live instance"),
	     "established4 in " CH_INGRESS, false},
	    {nft_rule_ct_live_return(CH_INGRESS, NFPROTO_IPV6, false, RS_INSTANCES6,
				     "replies and related ICMP to a live instance"),
	     "established6 in " CH_INGRESS, false},
	    {nft_rule_ingress_return(CH_INGRESS, NFPROTO_IPV4, RS_INGRESS4,
				     "new flow to its port, through the DNAT"),
	     "ingress4 in " CH_INGRESS, false},
	    {nft_rule_ingress_return(CH_INGRESS, NFPROTO_IPV6, RS_INGRESS6,
				     "new flow to its port, through the DNAT"),
	     "ingress6 in " CH_INGRESS, false},
	    /* The first packet of a flow the DNAT still sent to a cut instance
	     * (in the moment between the cut and the route's move) is dropped by
	     * the chain's end, not reset: the client's retransmitted SYN is a new
	     * flow, which the DNAT sends to the instance serving by then. A reset
	     * would fail that request (response.sh's client loop saw it). */
	    {nft_rule_drop(CH_INGRESS, 0, NULL, "anything else to an instance"),
	     "drop in " CH_INGRESS, false},
	    /* from an instance */
	    {nft_rule_antispoof_drop(CH_EGRESS, group, RS_SPOOF_LOG_PREFIX,
				     "source address not routed via its link: spoofed"),
	     "anti-spoofing in " CH_EGRESS, false},
	    {nft_rule_ct_live_return(CH_EGRESS, NFPROTO_IPV4, true, RS_INSTANCES4,
				     "replies and related ICMP of a live instance"),
	     "established4 in " CH_EGRESS, false},
	    {nft_rule_ct_live_return(CH_EGRESS, NFPROTO_IPV6, true, RS_INSTANCES6,
				     "replies and related ICMP of a live instance"),
	     "established6 in " CH_EGRESS, false},
	    {nft_rule_egress_return(CH_EGRESS, NFPROTO_IPV4, RS_INSTANCES4, RS_EGRESS4,
				    "new flow its Egress= rules allow (a live instance)"),
	     "egress4 in " CH_EGRESS, false},
	    {nft_rule_egress_return(CH_EGRESS, NFPROTO_IPV6, RS_INSTANCES6, RS_EGRESS6,
				    "new flow its Egress= rules allow (a live instance)"),
	     "egress6 in " CH_EGRESS, false},
	    /* A killed or cut instance's kernel resetting a tracked flow (the
	     * agent destroys its sockets: SOCK_DESTROY, agent/sandbox/
	     * sock_reset.c): the reset reaches the peer, which then fails at
	     * once instead of waiting for an answer that never comes. */
	    {nft_rule_dead_reset_return(CH_EGRESS, NFPROTO_IPV4, RS_DEAD4,
					"reset by a killed or cut instance's kernel"),
	     "dead reset4 in " CH_EGRESS, false},
	    {nft_rule_dead_reset_return(CH_EGRESS, NFPROTO_IPV6, RS_DEAD6,
					"reset by a killed or cut instance's kernel"),
	     "dead reset6 in " CH_EGRESS, false},
	    {nft_rule_drop(CH_EGRESS, group, RS_EGRESS_LOG_PREFIX,
			   "unexpected egress: charged to the link it came in on"),
	     "drop in " CH_EGRESS, false},
	};
	return ruleset_add_rules(t, rules, ELEMENTSOF(rules));
}
