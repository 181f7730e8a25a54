/* SPDX-License-Identifier: MIT */
/*
 * One netlink message per object of `inet mtd`: a set, a chain, a rule. The
 * bottom of the ruleset files: ruleset.c (the base layout) and
 * ruleset_instance.c (the instance envelope) both build on these, and neither
 * calls the other back.
 */
#include <errno.h>
#include <netinet/in.h>
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

static int udata_comment(uint8_t type, const char *comment, struct nftnl_udata_buf **ret)
{
	struct nftnl_udata_buf *u = nftnl_udata_buf_alloc(NFTNL_UDATA_COMMENT_MAXLEN + 16);

	if (!u)
		return -ENOMEM;
	if (strlen(comment) >= NFTNL_UDATA_COMMENT_MAXLEN ||
	    !nftnl_udata_put_strz(u, type, comment)) {
		nftnl_udata_buf_free(u);
		return -EINVAL;
	}
	*ret = u;
	return 0;
}

int ruleset_delete_table(struct nft_txn *t)
{
	struct nftnl_table *tb = nftnl_table_alloc();
	struct nlmsghdr *nlh;

	if (!tb)
		return -ENOMEM;
	nftnl_table_set_str(tb, NFTNL_TABLE_NAME, ROTATOR_TABLE);
	nlh = nft_txn_msg(
	    t, NFT_MSG_DELTABLE, NFPROTO_INET, 0,
	    &(struct nft_ref){.what = "adopting: delete the " RS_TABLE_DESC " of a previous run"});
	if (!nlh) {
		nftnl_table_free(tb);
		return -ENOMEM;
	}
	nftnl_table_nlmsg_build_payload(nlh, tb);
	nftnl_table_free(tb);
	return nft_txn_msg_end(t, nlh);
}

int ruleset_add_table(struct nft_txn *t, uint32_t flags)
{
	struct nftnl_udata_buf *u = NULL;
	struct nftnl_table *tb;
	struct nlmsghdr *nlh;
	int r;

	r = udata_comment(NFTNL_UDATA_TABLE_COMMENT,
			  "mtd-agent moving-target defense: managed by mtd-agent, do not edit", &u);
	if (r < 0)
		return r;
	tb = nftnl_table_alloc();
	if (!tb) {
		nftnl_udata_buf_free(u);
		return -ENOMEM;
	}
	nftnl_table_set_str(tb, NFTNL_TABLE_NAME, ROTATOR_TABLE);
	nftnl_table_set_u32(tb, NFTNL_TABLE_FLAGS, flags);
	nftnl_table_set_data(tb, NFTNL_TABLE_USERDATA, nftnl_udata_buf_data(u),
			     nftnl_udata_buf_len(u));
	nftnl_udata_buf_free(u);
	nlh = nft_txn_msg(t, NFT_MSG_NEWTABLE, NFPROTO_INET, NLM_F_CREATE | NLM_F_EXCL,
			  &(struct nft_ref){.what = RS_TABLE_DESC,
					    .name = (flags & NFT_TABLE_F_PERSIST)
							? "(flags owner,persist)"
							: "(flags owner)"});
	if (!nlh) {
		nftnl_table_free(tb);
		return -ENOMEM;
	}
	nftnl_table_nlmsg_build_payload(nlh, tb);
	nftnl_table_free(tb);
	return nft_txn_msg_end(t, nlh);
}

int ruleset_add_set(struct nft_txn *t, const struct set_def *d, uint32_t id)
{
	struct nftnl_udata_buf *u = NULL;
	struct nlmsghdr *nlh;
	struct nftnl_set *s;
	int r;

	r = udata_comment(NFTNL_UDATA_SET_COMMENT, d->comment, &u);
	if (r < 0)
		return r;
	s = nftnl_set_alloc();
	if (!s) {
		nftnl_udata_buf_free(u);
		return -ENOMEM;
	}
	nftnl_set_set_str(s, NFTNL_SET_TABLE, ROTATOR_TABLE);
	nftnl_set_set_str(s, NFTNL_SET_NAME, d->name);
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, d->key_type);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, d->key_len);
	nftnl_set_set_u32(s, NFTNL_SET_FLAGS, d->flags);
	nftnl_set_set_u32(s, NFTNL_SET_ID, id); /* the kernel requires a transaction-local id */
	if (d->data_len) {
		nftnl_set_set_u32(s, NFTNL_SET_DATA_TYPE, d->data_type);
		nftnl_set_set_u32(s, NFTNL_SET_DATA_LEN, d->data_len);
	}
	if (d->size)
		nftnl_set_set_u32(s, NFTNL_SET_DESC_SIZE, d->size);
	if (d->field_len) {
		size_t n = strlen((const char *)d->field_len);

		nftnl_set_set_data(s, NFTNL_SET_DESC_CONCAT, d->field_len, (uint32_t)n);
	}
	nftnl_set_set_data(s, NFTNL_SET_USERDATA, nftnl_udata_buf_data(u), nftnl_udata_buf_len(u));
	nftnl_udata_buf_free(u);
	nlh = nft_txn_msg(t, NFT_MSG_NEWSET, NFPROTO_INET, NLM_F_CREATE | NLM_F_EXCL,
			  &(struct nft_ref){.what = d->data_len ? "map" : "set", .name = d->name});
	if (!nlh) {
		nftnl_set_free(s);
		return -ENOMEM;
	}
	nftnl_set_nlmsg_build_payload(nlh, s);
	nftnl_set_free(s);
	return nft_txn_msg_end(t, nlh);
}

int ruleset_add_chain(struct nft_txn *t, const struct chain_def *d)
{
	struct nftnl_udata_buf *u = NULL;
	struct nftnl_chain *c;
	struct nlmsghdr *nlh;
	int r;

	r = udata_comment(NFTNL_UDATA_CHAIN_COMMENT, d->comment, &u);
	if (r < 0)
		return r;
	c = nftnl_chain_alloc();
	if (!c) {
		nftnl_udata_buf_free(u);
		return -ENOMEM;
	}
	nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, ROTATOR_TABLE);
	nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, d->name);
	nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, NFPROTO_INET);
	if (d->type) { /* a base chain */
		nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, d->type);
		nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, d->hook);
		nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, d->prio);
		nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
	}
	nftnl_chain_set_data(c, NFTNL_CHAIN_USERDATA, nftnl_udata_buf_data(u),
			     nftnl_udata_buf_len(u));
	nftnl_udata_buf_free(u);
	nlh = nft_txn_msg(t, NFT_MSG_NEWCHAIN, NFPROTO_INET, NLM_F_CREATE | NLM_F_EXCL,
			  &(struct nft_ref){.what = "chain", .name = d->name});
	if (!nlh) {
		nftnl_chain_free(c);
		return -ENOMEM;
	}
	nftnl_chain_nlmsg_build_payload(nlh, c);
	nftnl_chain_free(c);
	return nft_txn_msg_end(t, nlh);
}

int ruleset_add_rule(struct nft_txn *t, struct nftnl_rule *rule, const char *what)
{
	struct nlmsghdr *nlh;

	if (!rule)
		return -ENOMEM;
	nlh = nft_txn_msg(t, NFT_MSG_NEWRULE, NFPROTO_INET, NLM_F_CREATE | NLM_F_APPEND,
			  &(struct nft_ref){.what = "rule", .name = what});
	if (!nlh) {
		nftnl_rule_free(rule);
		return -ENOMEM;
	}
	nftnl_rule_nlmsg_build_payload(nlh, rule);
	nftnl_rule_free(rule);
	return nft_txn_msg_end(t, nlh);
}

/* Adds the wanted rules in order (each is taken); frees the rest. */
int ruleset_add_rules(struct nft_txn *t, struct ruleset_rule *rules, size_t n)
{
	int r = 0;

	for (size_t i = 0; i < n; i++) {
		if (r >= 0 && !rules[i].unwanted)
			r = ruleset_add_rule(t, rules[i].rule, rules[i].what); /* takes it */
		else if (rules[i].rule)
			nftnl_rule_free(rules[i].rule);
	}
	return r;
}
