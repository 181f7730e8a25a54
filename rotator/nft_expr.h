/* SPDX-License-Identifier: MIT */
/*
 * Pure builders for the rules of `inet mtd`: no socket, no kernel. Each
 * recipe returns a complete struct nftnl_rule (family inet, table mtd) or
 * NULL on ENOMEM; tests/unit/test_rotator_expr.c pins their bytecode.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct nftnl_rule;

/* iif "lo" accept */
struct nftnl_rule *nft_rule_loopback_accept(const char *chain, const char *comment);

/* meta nfproto ipvX ip[6] saddr @set counter drop */
struct nftnl_rule *nft_rule_blocked_drop(const char *chain, uint8_t nfproto, const char *set,
					 const char *comment);

/* fib daddr type local meta l4proto . th dport @decoys meta nfproto ipvX
 * add @blocked { ip[6] saddr timeout T } log prefix P group G counter drop */
struct nftnl_rule *nft_rule_decoy_hit(const char *chain, uint8_t nfproto, const char *decoy_set,
				      const char *blocked_set, uint64_t timeout_ms,
				      uint16_t log_group, const char *log_prefix,
				      const char *comment);

/* The same without the drop: the packet goes on (to the honeypot redirect). */
struct nftnl_rule *nft_rule_decoy_report(const char *chain, uint8_t nfproto,
					 const char *decoy_set, const char *blocked_set,
					 uint64_t timeout_ms, uint16_t log_group_id,
					 const char *log_prefix, const char *comment);

/* fib daddr type local meta l4proto . th dport @decoys meta l4proto tcp
 * redirect to :port (nat chains only) */
struct nftnl_rule *nft_rule_decoy_redirect(const char *chain, const char *decoy_set,
					   uint16_t port, const char *comment);

/* fib daddr type local meta l4proto . th dport @decoys meta l4proto != tcp drop */
struct nftnl_rule *nft_rule_decoy_drop_non_tcp(const char *chain, const char *decoy_set,
					       const char *comment);

/* ct status & dnat == dnat meta l4proto tcp ct reply proto-src port accept:
 * a connection already redirected to the honeypot completes its handshake
 * although its source is blocked (so the decoy looks open to connect()) */
struct nftnl_rule *nft_rule_honeypot_flow_accept(const char *chain, uint16_t port,
						 const char *comment);

/* iif != "lo" ct status & dnat != dnat meta l4proto tcp th dport port counter drop */
struct nftnl_rule *nft_rule_honeypot_guard(const char *chain, uint16_t port,
					   const char *comment);

/* fib daddr type local dnat ip[6] to meta l4proto . th dport map @map */
struct nftnl_rule *nft_rule_dnat(const char *chain, uint8_t nfproto, const char *map,
				 const char *comment);

/* iif != "lo" ct status & dnat != dnat meta nfproto ipvX
 * meta l4proto . ip[6] daddr . th dport @set counter drop */
struct nftnl_rule *nft_rule_backend_guard(const char *chain, uint8_t nfproto, const char *set,
					  const char *comment);

/* meta nfproto @active_set jump target: the dispatch to a bank's chain,
 * taken while the bank is live (its active set holds ipv4 and ipv6) */
struct nftnl_rule *nft_rule_bank_jump(const char *chain, const char *active_set,
				      const char *target, const char *comment);

/* Attach a comment (nft shows `comment "..."`). 0 or -ENOMEM/-EINVAL. */
int nft_rule_set_comment(struct nftnl_rule *r, const char *comment);

/* --- the instance envelope (prefix: ROTATOR_INSTANCE_IFPREFIX) --------------- */

/* iifname "PREFIX*" jump target, or oifname with outgoing */
struct nftnl_rule *nft_rule_ifname_jump(const char *chain, bool outgoing, const char *prefix,
					const char *target, const char *comment);

/* iifname "PREFIX*" meta nfproto ipv6 meta l4proto ipv6-icmp icmpv6 type @set accept */
struct nftnl_rule *nft_rule_icmpv6_link_accept(const char *chain, const char *prefix,
					       const char *set, const char *comment);

/* fib saddr . iif oif missing log prefix P group G counter drop: a source
 * address not routed back through the link it came from */
struct nftnl_rule *nft_rule_antispoof_drop(const char *chain, uint16_t log_group_id,
					   const char *log_prefix, const char *comment);

/* ct state established,related ip[6] saddr|daddr @set return */
struct nftnl_rule *nft_rule_ct_live_return(const char *chain, uint8_t nfproto, bool source,
					   const char *set, const char *comment);

/* ct status & dnat == dnat meta nfproto ipvX
 * ip[6] daddr . meta l4proto . th dport @set return */
struct nftnl_rule *nft_rule_ingress_return(const char *chain, uint8_t nfproto, const char *set,
					   const char *comment);

/* meta nfproto ipvX ip[6] saddr @live_set
 * ip[6] saddr . meta l4proto . ip[6] daddr . th dport @set return
 * (a cut-off instance, out of live_set, loses its Egress= at once, while its
 * elements in set may go later) */
struct nftnl_rule *nft_rule_egress_return(const char *chain, uint8_t nfproto, const char *live_set,
					  const char *set, const char *comment);

/* [log prefix P group G] counter drop (no log when log_prefix is NULL) */
/* meta nfproto NFPROTO iifname != "PREFIX*" oifname != "PREFIX*"
 * ct status & dnat == 0 counter drop: forwarding that neither reaches nor
 * leaves an instance link and was not DNATed here. */
struct nftnl_rule *nft_rule_forward_guard(const char *chain, uint8_t nfproto, const char *prefix,
					  const char *comment);

struct nftnl_rule *nft_rule_drop(const char *chain, uint16_t log_group_id, const char *log_prefix,
				 const char *comment);
