/* SPDX-License-Identifier: MIT */
/* Pure nftables expression and rule builders (see rotator_internal.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/rtnetlink.h>

#include "macro.h"
#include "rotator_internal.h"
#include "rotator.h"

#define LOOPBACK_IFINDEX 1 /* "lo" is ifindex 1 in every network namespace */

DEFINE_TRIVIAL_CLEANUP_FUNC(struct nftnl_rule *, nftnl_rule_free)
#define _cleanup_rule_ _cleanup_(nftnl_rule_freep)

static int add(struct nftnl_rule *r, struct nftnl_expr *e)
{
	if (!e)
		return -ENOMEM;
	nftnl_rule_add_expr(r, e);
	return 0;
}

static int meta_load(struct nftnl_rule *r, uint32_t key, uint32_t dreg)
{
	struct nftnl_expr *e = nftnl_expr_alloc("meta");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
		nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, dreg);
	}
	return add(r, e);
}

static int cmp(struct nftnl_rule *r, uint32_t sreg, uint32_t op, const void *data, uint32_t len)
{
	struct nftnl_expr *e = nftnl_expr_alloc("cmp");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, sreg);
		nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
		nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
	}
	return add(r, e);
}

static int cmp_u32(struct nftnl_rule *r, uint32_t op, uint32_t v)
{
	return cmp(r, NFT_REG_1, op, &v, sizeof(v));
}

static int cmp_u8(struct nftnl_rule *r, uint32_t op, uint8_t v)
{
	return cmp(r, NFT_REG_1, op, &v, sizeof(v));
}

static int payload_load(struct nftnl_rule *r, uint32_t base, uint32_t offset, uint32_t len,
			uint32_t dreg)
{
	struct nftnl_expr *e = nftnl_expr_alloc("payload");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, offset);
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, dreg);
	}
	return add(r, e);
}

/* dreg 0: plain membership test */
static int lookup(struct nftnl_rule *r, uint32_t sreg, const char *set, uint32_t dreg)
{
	struct nftnl_expr *e = nftnl_expr_alloc("lookup");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, sreg);
		nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set);
		if (dreg)
			nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_DREG, dreg);
	}
	return add(r, e);
}

static int fib_daddr_local(struct nftnl_rule *r)
{
	struct nftnl_expr *e = nftnl_expr_alloc("fib");
	int k;

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_FLAGS, NFTA_FIB_F_DADDR);
		nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE);
		nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_DREG, NFT_REG_1);
	}
	k = add(r, e);
	return k < 0 ? k : cmp_u32(r, NFT_CMP_EQ, RTN_LOCAL);
}

static int nfproto_is(struct nftnl_rule *r, uint8_t nfproto)
{
	int k = meta_load(r, NFT_META_NFPROTO, NFT_REG_1);

	return k < 0 ? k : cmp_u8(r, NFT_CMP_EQ, nfproto);
}

static int iif_is_loopback(struct nftnl_rule *r, uint32_t op)
{
	int k = meta_load(r, NFT_META_IIF, NFT_REG_1);

	return k < 0 ? k : cmp_u32(r, op, LOOPBACK_IFINDEX);
}

/* meta l4proto . th dport into reg 1 / reg32 01 */
static int proto_dport_key(struct nftnl_rule *r)
{
	int k = meta_load(r, NFT_META_L4PROTO, NFT_REG_1);

	return k < 0 ? k : payload_load(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, NFT_REG32_01);
}

static int counter(struct nftnl_rule *r)
{
	return add(r, nftnl_expr_alloc("counter"));
}

static int verdict(struct nftnl_rule *r, int v)
{
	struct nftnl_expr *e = nftnl_expr_alloc("immediate");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
		nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, (uint32_t)v);
	}
	return add(r, e);
}

static bool nfproto_valid(uint8_t nfproto)
{
	return nfproto == NFPROTO_IPV4 || nfproto == NFPROTO_IPV6;
}

/* source or destination address of the network header, into dreg */
static int addr_load(struct nftnl_rule *r, uint8_t nfproto, bool source, uint32_t dreg)
{
	if (nfproto == NFPROTO_IPV4)
		return payload_load(r, NFT_PAYLOAD_NETWORK_HEADER, source ? 12 : 16, 4, dreg);
	return payload_load(r, NFT_PAYLOAD_NETWORK_HEADER, source ? 8 : 24, 16, dreg);
}

int nft_rule_set_comment(struct nftnl_rule *r, const char *comment)
{
	struct nftnl_udata_buf *udata;

	if (!comment)
		return 0;
	if (strlen(comment) >= NFTNL_UDATA_COMMENT_MAXLEN)
		return -EINVAL;
	udata = nftnl_udata_buf_alloc(NFTNL_UDATA_COMMENT_MAXLEN + 16);
	if (!udata)
		return -ENOMEM;
	if (!nftnl_udata_put_strz(udata, NFTNL_UDATA_RULE_COMMENT, comment)) {
		nftnl_udata_buf_free(udata);
		return -ENOMEM;
	}
	nftnl_rule_set_data(r, NFTNL_RULE_USERDATA, nftnl_udata_buf_data(udata),
			    nftnl_udata_buf_len(udata));
	nftnl_udata_buf_free(udata);
	return 0;
}

static struct nftnl_rule *rule_new(const char *chain)
{
	struct nftnl_rule *r = nftnl_rule_alloc();

	if (!r)
		return NULL;
	nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_INET);
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, ROTATOR_TABLE);
	nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, chain);
	return r;
}

/* Hand the rule over when every step succeeded. */
static struct nftnl_rule *rule_done(struct nftnl_rule **r, int k, const char *comment)
{
	if (k >= 0)
		k = nft_rule_set_comment(*r, comment);
	if (k < 0)
		return NULL;
	return TAKE_PTR(*r);
}

struct nftnl_rule *nft_rule_loopback_accept(const char *chain, const char *comment)
{
	_cleanup_rule_ struct nftnl_rule *r = rule_new(chain);
	int k;

	if (!r)
		return NULL;
	k = iif_is_loopback(r, NFT_CMP_EQ);
	if (k >= 0)
		k = verdict(r, NF_ACCEPT);
	return rule_done(&r, k, comment);
}

struct nftnl_rule *nft_rule_blocked_drop(const char *chain, uint8_t nfproto, const char *set,
					 const char *comment)
{
	_cleanup_rule_ struct nftnl_rule *r = NULL;
	int k;

	if (!nfproto_valid(nfproto) || !(r = rule_new(chain)))
		return NULL;
	k = nfproto_is(r, nfproto);
	if (k >= 0)
		k = addr_load(r, nfproto, true, NFT_REG_1);
	if (k >= 0)
		k = lookup(r, NFT_REG_1, set, 0);
	if (k >= 0)
		k = counter(r);
	if (k >= 0)
		k = verdict(r, NF_DROP);
	return rule_done(&r, k, comment);
}

static int log_group(struct nftnl_rule *r, uint16_t group, const char *prefix)
{
	struct nftnl_expr *e = nftnl_expr_alloc("log");

	if (e) {
		nftnl_expr_set_u16(e, NFTNL_EXPR_LOG_GROUP, group);
		if (prefix)
			nftnl_expr_set_str(e, NFTNL_EXPR_LOG_PREFIX, prefix);
	}
	return add(r, e);
}

/* reg 1 &= mask (len bytes, at most 4) */
static int mask_reg1(struct nftnl_rule *r, const void *mask, uint32_t len)
{
	static const uint8_t zero[4];
	struct nftnl_expr *e = nftnl_expr_alloc("bitwise");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, len);
		nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, mask, len);
		nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, zero, len);
	}
	return add(r, e);
}

/* ct KEY & mask into register 1: the first half of "ct status dnat",
 * "ct state established,related" and their negations */
static int ct_masked_load(struct nftnl_rule *r, uint32_t key, uint32_t mask)
{
	struct nftnl_expr *e = nftnl_expr_alloc("ct");
	int k;

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, key);
		nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, NFT_REG_1);
	}
	k = add(r, e);
	if (k < 0)
		return k;
	return mask_reg1(r, &mask, sizeof(mask));
}

static int ct_status_not_dnat(struct nftnl_rule *r)
{
	int k = ct_masked_load(r, NFT_CT_STATUS, IPS_DST_NAT);

	return k < 0 ? k : cmp_u32(r, NFT_CMP_NEQ, IPS_DST_NAT);
}

static int ct_status_dnat(struct nftnl_rule *r)
{
	int k = ct_masked_load(r, NFT_CT_STATUS, IPS_DST_NAT);

	return k < 0 ? k : cmp_u32(r, NFT_CMP_NEQ, 0); /* as nft: "ct status dnat" */
}

#define CT_STATE_ESTABLISHED_RELATED                                                               \
	(NF_CT_STATE_BIT(IP_CT_ESTABLISHED) | NF_CT_STATE_BIT(IP_CT_RELATED))

static int ct_state_established_related(struct nftnl_rule *r)
{
	int k = ct_masked_load(r, NFT_CT_STATE, CT_STATE_ESTABLISHED_RELATED);

	return k < 0 ? k : cmp_u32(r, NFT_CMP_NEQ, 0);
}

/* new, invalid or untracked: a probe, not a packet of a flow that began when
 * its port meant something else */
static int ct_state_not_established_related(struct nftnl_rule *r)
{
	int k = ct_masked_load(r, NFT_CT_STATE, CT_STATE_ESTABLISHED_RELATED);

	return k < 0 ? k : cmp_u32(r, NFT_CMP_EQ, 0);
}

/* Both families in one rule: the decoy sets hold proto . port only, and the
 * source is not taken (the table never blocks on its own: the caller decides,
 * rotator_block()). */
static struct nftnl_rule *decoy_hit(const char *chain, const char *decoy_set, uint16_t log_group_id,
				    const char *log_prefix, bool drop, const char *comment)
{
	_cleanup_rule_ struct nftnl_rule *r = rule_new(chain);
	int k;

	if (!r)
		return NULL;
	/* A flow that began on a service's port before that port turned decoy
	 * (a long-lived connection) is not a scanner. First: every packet of
	 * every established flow passes this chain, and the conntrack state
	 * is a field of the packet where the FIB is a route lookup. */
	k = ct_state_not_established_related(r);
	if (k >= 0)
		k = fib_daddr_local(r);
	if (k >= 0)
		k = proto_dport_key(r);
	if (k >= 0)
		k = lookup(r, NFT_REG_1, decoy_set, 0);
	if (k >= 0)
		k = log_group(r, log_group_id, log_prefix);
	if (k >= 0)
		k = counter(r);
	if (k >= 0 && drop)
		k = verdict(r, NF_DROP);
	return rule_done(&r, k, comment);
}

struct nftnl_rule *nft_rule_decoy_hit(const char *chain, const char *decoy_set,
				      uint16_t log_group_id, const char *log_prefix,
				      const char *comment)
{
	return decoy_hit(chain, decoy_set, log_group_id, log_prefix, true, comment);
}

struct nftnl_rule *nft_rule_decoy_report(const char *chain, const char *decoy_set,
					 uint16_t log_group_id, const char *log_prefix,
					 const char *comment)
{
	return decoy_hit(chain, decoy_set, log_group_id, log_prefix, false, comment);
}

/* the port (host order) into reg 1, network order, as NAT expects it */
static int port_imm(struct nftnl_rule *r, uint16_t port)
{
	struct nftnl_expr *e = nftnl_expr_alloc("immediate");
	uint16_t be = htons(port);

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_1);
		nftnl_expr_set(e, NFTNL_EXPR_IMM_DATA, &be, sizeof(be));
	}
	return add(r, e);
}

struct nftnl_rule *nft_rule_decoy_redirect(const char *chain, const char *decoy_set, uint16_t port,
					   const char *comment)
{
	_cleanup_rule_ struct nftnl_rule *r = rule_new(chain);
	struct nftnl_expr *e;
	int k;

	if (!r || port == 0)
		return NULL;
	k = fib_daddr_local(r);
	if (k >= 0)
		k = proto_dport_key(r);
	if (k >= 0)
		k = lookup(r, NFT_REG_1, decoy_set, 0);
	if (k >= 0)
		k = cmp_u8(r, NFT_CMP_EQ, IPPROTO_TCP); /* reg 1 still holds l4proto */
	if (k >= 0)
		k = port_imm(r, port);
	if (k >= 0) {
		e = nftnl_expr_alloc("redir");
		if (e)
			nftnl_expr_set_u32(e, NFTNL_EXPR_REDIR_REG_PROTO_MIN, NFT_REG_1);
		k = add(r, e);
	}
	return rule_done(&r, k, comment);
}

struct nftnl_rule *nft_rule_decoy_drop_non_tcp(const char *chain, const char *decoy_set,
					       const char *comment)
{
	_cleanup_rule_ struct nftnl_rule *r = rule_new(chain);
	int k;

	if (!r)
		return NULL;
	k = ct_state_not_established_related(r); /* first, as in decoy_hit() */
	if (k >= 0)
		k = fib_daddr_local(r);
	if (k >= 0)
		k = proto_dport_key(r);
	if (k >= 0)
		k = lookup(r, NFT_REG_1, decoy_set, 0);
	if (k >= 0)
		k = cmp_u8(r, NFT_CMP_NEQ, IPPROTO_TCP);
	if (k >= 0)
		k = verdict(r, NF_DROP);
	return rule_done(&r, k, comment);
}

static int dnat(struct nftnl_rule *r, uint8_t nfproto)
{
	struct nftnl_expr *e = nftnl_expr_alloc("nat");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_TYPE, NFT_NAT_DNAT);
		nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_FAMILY, nfproto);
		nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_REG_ADDR_MIN, NFT_REG_1);
		/* the port follows the address in the map data: 4 or 16 bytes on */
		nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_REG_PROTO_MIN,
				   nfproto == NFPROTO_IPV4 ? NFT_REG32_01 : NFT_REG_2);
	}
	return add(r, e);
}

struct nftnl_rule *nft_rule_dnat(const char *chain, uint8_t nfproto, const char *map,
				 const char *comment)
{
	_cleanup_rule_ struct nftnl_rule *r = NULL;
	int k;

	if (!nfproto_valid(nfproto) || !(r = rule_new(chain)))
		return NULL;
	k = fib_daddr_local(r);
	if (k >= 0)
		k = proto_dport_key(r);
	if (k >= 0)
		k = lookup(r, NFT_REG_1, map, NFT_REG_1);
	if (k >= 0)
		k = dnat(r, nfproto);
	return rule_done(&r, k, comment);
}

struct nftnl_rule *nft_rule_honeypot_guard(const char *chain, uint16_t port, const char *comment)
{
	_cleanup_rule_ struct nftnl_rule *r = rule_new(chain);
	uint16_t be = htons(port);
	int k;

	if (!r || port == 0)
		return NULL;
	k = iif_is_loopback(r, NFT_CMP_NEQ);
	if (k >= 0)
		k = ct_status_not_dnat(r);
	if (k >= 0)
		k = meta_load(r, NFT_META_L4PROTO, NFT_REG_1);
	if (k >= 0)
		k = cmp_u8(r, NFT_CMP_EQ, IPPROTO_TCP);
	if (k >= 0)
		k = payload_load(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, NFT_REG_1);
	if (k >= 0)
		k = cmp(r, NFT_REG_1, NFT_CMP_EQ, &be, sizeof(be));
	if (k >= 0)
		k = counter(r);
	if (k >= 0)
		k = verdict(r, NF_DROP);
	return rule_done(&r, k, comment);
}

struct nftnl_rule *nft_rule_honeypot_flow_accept(const char *chain, uint16_t port,
						 const char *comment)
{
	_cleanup_rule_ struct nftnl_rule *r = rule_new(chain);
	uint16_t be = htons(port);
	struct nftnl_expr *e;
	int k;

	if (!r || port == 0)
		return NULL;
	k = ct_masked_load(r, NFT_CT_STATUS, IPS_DST_NAT);
	if (k >= 0)
		k = cmp_u32(r, NFT_CMP_EQ, IPS_DST_NAT);
	if (k >= 0)
		k = meta_load(r, NFT_META_L4PROTO, NFT_REG_1);
	if (k >= 0)
		k = cmp_u8(r, NFT_CMP_EQ, IPPROTO_TCP);
	if (k >= 0) {
		e = nftnl_expr_alloc("ct");
		if (e) {
			nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, NFT_CT_PROTO_SRC);
			nftnl_expr_set_u8(e, NFTNL_EXPR_CT_DIR, 1); /* IP_CT_DIR_REPLY */
			nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, NFT_REG_1);
		}
		k = add(r, e);
	}
	if (k >= 0)
		k = cmp(r, NFT_REG_1, NFT_CMP_EQ, &be, sizeof(be));
	if (k >= 0)
		k = verdict(r, NF_ACCEPT);
	return rule_done(&r, k, comment);
}

struct nftnl_rule *nft_rule_backend_guard(const char *chain, uint8_t nfproto, const char *set,
					  const char *comment)
{
	_cleanup_rule_ struct nftnl_rule *r = NULL;
	int k;

	if (!nfproto_valid(nfproto) || !(r = rule_new(chain)))
		return NULL;
	k = iif_is_loopback(r, NFT_CMP_NEQ);
	if (k >= 0)
		k = ct_status_not_dnat(r);
	if (k >= 0)
		k = nfproto_is(r, nfproto);
	if (k >= 0)
		k = meta_load(r, NFT_META_L4PROTO, NFT_REG_1);
	if (k >= 0)
		k = addr_load(r, nfproto, false, NFT_REG32_01);
	if (k >= 0)
		k = payload_load(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2,
				 nfproto == NFPROTO_IPV4 ? NFT_REG32_02 : NFT_REG32_05);
	if (k >= 0)
		k = lookup(r, NFT_REG_1, set, 0);
	if (k >= 0)
		k = counter(r);
	if (k >= 0)
		k = verdict(r, NF_DROP);
	return rule_done(&r, k, comment);
}

/* --- the instance envelope ------------------------------------------------------- */

/* iifname/oifname "prefix*": only the prefix's bytes are compared */
static int ifname_prefix(struct nftnl_rule *r, bool outgoing, const char *prefix)
{
	size_t len = strlen(prefix);
	int k;

	if (len == 0 || len >= 16)
		return -EINVAL;
	k = meta_load(r, outgoing ? NFT_META_OIFNAME : NFT_META_IIFNAME, NFT_REG_1);
	return k < 0 ? k : cmp(r, NFT_REG_1, NFT_CMP_EQ, prefix, (uint32_t)len);
}

/* iifname (or oifname) != "PREFIX*" */
static int ifname_not_prefix(struct nftnl_rule *r, bool outgoing, const char *prefix)
{
	size_t len = strlen(prefix);
	int k;

	if (len == 0 || len >= 16)
		return -EINVAL;
	k = meta_load(r, outgoing ? NFT_META_OIFNAME : NFT_META_IIFNAME, NFT_REG_1);
	return k < 0 ? k : cmp(r, NFT_REG_1, NFT_CMP_NEQ, prefix, (uint32_t)len);
}

static int jump(struct nftnl_rule *r, const char *target)
{
	struct nftnl_expr *e = nftnl_expr_alloc("immediate");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
		nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, (uint32_t)NFT_JUMP);
		nftnl_expr_set_str(e, NFTNL_EXPR_IMM_CHAIN, target);
	}
	return add(r, e);
}

struct nftnl_rule *nft_rule_ifname_jump(const char *chain, bool outgoing, const char *prefix,
					const char *target, const char *comment)
{
	_cleanup_rule_ struct nftnl_rule *r = rule_new(chain);
	int k;

	if (!r)
		return NULL;
	k = ifname_prefix(r, outgoing, prefix);
	if (k >= 0)
		k = jump(r, target);
	return rule_done(&r, k, comment);
}

struct nftnl_rule *nft_rule_ifname_return(const char *chain, const char *prefix,
					  const char *comment)
{
	_cleanup_rule_ struct nftnl_rule *r = rule_new(chain);
	int k;

	if (!r)
		return NULL;
	k = ifname_prefix(r, false, prefix);
	if (k >= 0)
		k = verdict(r, NFT_RETURN);
	return rule_done(&r, k, comment);
}

struct nftnl_rule *nft_rule_bank_jump(const char *chain, const char *active_set, const char *target,
				      const char *comment)
{
	_cleanup_rule_ struct nftnl_rule *r = rule_new(chain);
	int k;

	if (!r)
		return NULL;
	k = meta_load(r, NFT_META_NFPROTO, NFT_REG_1);
	if (k >= 0)
		k = lookup(r, NFT_REG_1, active_set, 0);
	if (k >= 0)
		k = jump(r, target);
	return rule_done(&r, k, comment);
}

struct nftnl_rule *nft_rule_icmpv6_link_accept(const char *chain, const char *prefix,
					       const char *set, const char *comment)
{
	_cleanup_rule_ struct nftnl_rule *r = rule_new(chain);
	int k;

	if (!r)
		return NULL;
	k = ifname_prefix(r, false, prefix);
	if (k >= 0)
		k = nfproto_is(r, NFPROTO_IPV6);
	if (k >= 0)
		k = meta_load(r, NFT_META_L4PROTO, NFT_REG_1);
	if (k >= 0)
		k = cmp_u8(r, NFT_CMP_EQ, IPPROTO_ICMPV6);
	if (k >= 0)
		k = payload_load(r, NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1, NFT_REG_1);
	if (k >= 0)
		k = lookup(r, NFT_REG_1, set, 0);
	if (k >= 0)
		k = verdict(r, NF_ACCEPT);
	return rule_done(&r, k, comment);
}

struct nftnl_rule *nft_rule_antispoof_drop(const char *chain, uint16_t log_group_id,
					   const char *log_prefix, const char *comment)
{
	_cleanup_rule_ struct nftnl_rule *r = rule_new(chain);
	struct nftnl_expr *e;
	int k;

	if (!r)
		return NULL;
	e = nftnl_expr_alloc("fib");
	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_FLAGS,
				   NFTA_FIB_F_SADDR | NFTA_FIB_F_IIF | NFTA_FIB_F_PRESENT);
		nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_RESULT, NFT_FIB_RESULT_OIF);
		nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_DREG, NFT_REG_1);
	}
	k = add(r, e);
	if (k >= 0)
		k = cmp_u32(r, NFT_CMP_EQ, 0); /* as nft: "oif missing" */
	if (k >= 0)
		k = log_group(r, log_group_id, log_prefix);
	if (k >= 0)
		k = counter(r);
	if (k >= 0)
		k = verdict(r, NF_DROP);
	return rule_done(&r, k, comment);
}

struct nftnl_rule *nft_rule_ct_live_return(const char *chain, uint8_t nfproto, bool source,
					   const char *set, const char *comment)
{
	_cleanup_rule_ struct nftnl_rule *r = NULL;
	int k;

	if (!nfproto_valid(nfproto) || !(r = rule_new(chain)))
		return NULL;
	k = ct_state_established_related(r);
	if (k >= 0)
		k = nfproto_is(r, nfproto);
	if (k >= 0)
		k = addr_load(r, nfproto, source, NFT_REG_1);
	if (k >= 0)
		k = lookup(r, NFT_REG_1, set, 0);
	if (k >= 0)
		k = verdict(r, NFT_RETURN);
	return rule_done(&r, k, comment);
}

/* reg32 index n (0..15) as a register number */
#define REG32(n) ((uint32_t)NFT_REG32_00 + (n))

struct nftnl_rule *nft_rule_ingress_return(const char *chain, uint8_t nfproto, const char *set,
					   const char *comment)
{
	_cleanup_rule_ struct nftnl_rule *r = NULL;
	uint32_t words = nfproto == NFPROTO_IPV4 ? 1 : 4;
	int k;

	if (!nfproto_valid(nfproto) || !(r = rule_new(chain)))
		return NULL;
	k = ct_status_dnat(r);
	if (k >= 0)
		k = nfproto_is(r, nfproto);
	if (k >= 0)
		k = addr_load(r, nfproto, false, NFT_REG_1);
	if (k >= 0)
		k = meta_load(r, NFT_META_L4PROTO, REG32(words));
	if (k >= 0)
		k = payload_load(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, REG32(words + 1));
	if (k >= 0)
		k = lookup(r, NFT_REG_1, set, 0);
	if (k >= 0)
		k = verdict(r, NFT_RETURN);
	return rule_done(&r, k, comment);
}

struct nftnl_rule *nft_rule_gate(const char *chain, uint8_t nfproto, const char *gated_set,
				 const char *admitted_set, const char *comment)
{
	_cleanup_rule_ struct nftnl_rule *r = NULL;
	uint32_t words = nfproto == NFPROTO_IPV4 ? 1 : 4;
	struct nftnl_expr *e;
	int k;

	if (!nfproto_valid(nfproto) || !(r = rule_new(chain)))
		return NULL;
	k = nfproto_is(r, nfproto);
	if (k >= 0)
		k = proto_dport_key(r);
	if (k >= 0)
		k = lookup(r, NFT_REG_1, gated_set, 0);
	if (k >= 0)
		k = addr_load(r, nfproto, true, NFT_REG_1);
	if (k >= 0)
		k = meta_load(r, NFT_META_L4PROTO, REG32(words));
	if (k >= 0)
		k = payload_load(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, REG32(words + 1));
	if (k >= 0) {
		e = nftnl_expr_alloc("lookup");
		if (e) {
			nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
			nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, admitted_set);
			nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
		}
		k = add(r, e);
	}
	if (k >= 0)
		k = verdict(r, NFT_RETURN);
	return rule_done(&r, k, comment);
}

struct nftnl_rule *nft_rule_egress_return(const char *chain, uint8_t nfproto, const char *live_set,
					  const char *set, const char *comment)
{
	_cleanup_rule_ struct nftnl_rule *r = NULL;
	uint32_t words = nfproto == NFPROTO_IPV4 ? 1 : 4;
	int k;

	if (!nfproto_valid(nfproto) || !(r = rule_new(chain)))
		return NULL;
	k = nfproto_is(r, nfproto);
	if (k >= 0)
		k = addr_load(r, nfproto, true, NFT_REG_1);
	if (k >= 0)
		k = lookup(r, NFT_REG_1, live_set, 0);
	if (k >= 0)
		k = meta_load(r, NFT_META_L4PROTO, REG32(words));
	if (k >= 0)
		k = addr_load(r, nfproto, false, REG32(words + 1));
	if (k >= 0)
		k = payload_load(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, REG32(2 * words + 1));
	if (k >= 0)
		k = lookup(r, NFT_REG_1, set, 0);
	if (k >= 0)
		k = verdict(r, NFT_RETURN);
	return rule_done(&r, k, comment);
}

struct nftnl_rule *nft_rule_forward_guard(const char *chain, uint8_t nfproto, const char *prefix,
					  const char *comment)
{
	_cleanup_rule_ struct nftnl_rule *r = rule_new(chain);
	int k;

	if (!r)
		return NULL;
	k = nfproto_is(r, nfproto);
	if (k >= 0)
		k = ifname_not_prefix(r, false, prefix);
	if (k >= 0)
		k = ifname_not_prefix(r, true, prefix);
	if (k >= 0)
		k = ct_status_not_dnat(r);
	if (k >= 0)
		k = counter(r);
	if (k >= 0)
		k = verdict(r, NF_DROP);
	return rule_done(&r, k, comment);
}

/* ct reply ip[6] saddr into dreg: where a DNATed flow really goes (the
 * backend), whichever side the packet comes from */
static int ct_reply_saddr_load(struct nftnl_rule *r, uint8_t nfproto, uint32_t dreg)
{
	struct nftnl_expr *e = nftnl_expr_alloc("ct");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY,
				   nfproto == NFPROTO_IPV4 ? NFT_CT_SRC_IP : NFT_CT_SRC_IP6);
		nftnl_expr_set_u8(e, NFTNL_EXPR_CT_DIR, 1); /* IP_CT_DIR_REPLY */
		nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, dreg);
	}
	return add(r, e);
}

static int reject(struct nftnl_rule *r, uint32_t type, uint8_t code)
{
	struct nftnl_expr *e = nftnl_expr_alloc("reject");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_REJECT_TYPE, type);
		nftnl_expr_set_u8(e, NFTNL_EXPR_REJECT_CODE, code);
	}
	return add(r, e);
}

struct nftnl_rule *nft_rule_dead_jump(const char *chain, uint8_t nfproto, const char *set,
				      const char *target, const char *comment)
{
	_cleanup_rule_ struct nftnl_rule *r = NULL;
	int k;

	if (!nfproto_valid(nfproto) || !(r = rule_new(chain)))
		return NULL;
	k = nfproto_is(r, nfproto);
	if (k >= 0)
		k = ct_reply_saddr_load(r, nfproto, NFT_REG_1);
	if (k >= 0)
		k = lookup(r, NFT_REG_1, set, 0);
	if (k >= 0)
		k = jump(r, target);
	return rule_done(&r, k, comment);
}

#define TCP_FLAG_RST 0x04

struct nftnl_rule *nft_rule_dead_reset_return(const char *chain, uint8_t nfproto, const char *set,
					      const char *comment)
{
	_cleanup_rule_ struct nftnl_rule *r = NULL;
	int k;

	if (!nfproto_valid(nfproto) || !(r = rule_new(chain)))
		return NULL;
	k = ct_masked_load(r, NFT_CT_STATE, NF_CT_STATE_BIT(IP_CT_ESTABLISHED));
	if (k >= 0)
		k = cmp_u32(r, NFT_CMP_NEQ, 0);
	if (k >= 0)
		k = nfproto_is(r, nfproto);
	if (k >= 0)
		k = addr_load(r, nfproto, true, NFT_REG_1);
	if (k >= 0)
		k = lookup(r, NFT_REG_1, set, 0);
	if (k >= 0)
		k = meta_load(r, NFT_META_L4PROTO, NFT_REG_1);
	if (k >= 0)
		k = cmp_u8(r, NFT_CMP_EQ, IPPROTO_TCP);
	if (k >= 0)
		k = payload_load(r, NFT_PAYLOAD_TRANSPORT_HEADER, 13, 1, NFT_REG_1);
	if (k >= 0)
		k = mask_reg1(r, &(uint8_t){TCP_FLAG_RST}, 1); /* tcp flags & rst */
	if (k >= 0)
		k = cmp_u8(r, NFT_CMP_NEQ, 0);
	if (k >= 0)
		k = counter(r);
	if (k >= 0)
		k = verdict(r, NFT_RETURN);
	return rule_done(&r, k, comment);
}

struct nftnl_rule *nft_rule_reject(const char *chain, bool tcp, const char *comment)
{
	_cleanup_rule_ struct nftnl_rule *r = rule_new(chain);
	int k = 0;

	if (!r)
		return NULL;
	if (tcp)
		k = meta_load(r, NFT_META_L4PROTO, NFT_REG_1);
	if (k >= 0 && tcp)
		k = cmp_u8(r, NFT_CMP_EQ, IPPROTO_TCP);
	if (k >= 0)
		k = counter(r);
	if (k >= 0)
		k = tcp ? reject(r, NFT_REJECT_TCP_RST, 0)
			: reject(r, NFT_REJECT_ICMPX_UNREACH, NFT_REJECT_ICMPX_ADMIN_PROHIBITED);
	return rule_done(&r, k, comment);
}

struct nftnl_rule *nft_rule_drop(const char *chain, uint16_t log_group_id, const char *log_prefix,
				 const char *comment)
{
	_cleanup_rule_ struct nftnl_rule *r = rule_new(chain);
	int k = 0;

	if (!r)
		return NULL;
	if (log_prefix)
		k = log_group(r, log_group_id, log_prefix);
	if (k >= 0)
		k = counter(r);
	if (k >= 0)
		k = verdict(r, NF_DROP);
	return rule_done(&r, k, comment);
}
