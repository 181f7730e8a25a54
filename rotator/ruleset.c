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
#include "nft.h"
#include "nft_expr.h"
#include "ruleset.h"

#ifndef NFT_MSG_DESTROYSETELEM
#define NFT_MSG_DESTROYSETELEM 30 /* Linux 6.3: delete, no error if absent */
#endif

/* nft's datatype ids, concatenations are (a << 6) | b */
enum {
	TYPE_IPADDR = 7,
	TYPE_IP6ADDR = 8,
	TYPE_INET_PROTOCOL = 12,
	TYPE_INET_SERVICE = 13,
};
#define CONCAT2(a, b) (((a) << 6) | (b))
#define CONCAT3(a, b, c) (((((a) << 6) | (b)) << 6) | (c))

struct set_def {
	const char *name;
	uint32_t key_type, key_len;
	uint32_t data_type, data_len; /* 0: plain set */
	uint32_t flags;
	uint32_t size;
	const char *comment;
};

static const struct set_def sets[] = {
	{ RS_SVC4, CONCAT2(TYPE_INET_PROTOCOL, TYPE_INET_SERVICE), 8,
	  CONCAT2(TYPE_IPADDR, TYPE_INET_SERVICE), 8, NFT_SET_MAP, 0,
	  "public port -> IPv4 backend: current and grace port of each service" },
	{ RS_SVC6, CONCAT2(TYPE_INET_PROTOCOL, TYPE_INET_SERVICE), 8,
	  CONCAT2(TYPE_IP6ADDR, TYPE_INET_SERVICE), 20, NFT_SET_MAP, 0,
	  "public port -> IPv6 backend: current and grace port of each service" },
	{ RS_LOCAL4, CONCAT2(TYPE_INET_PROTOCOL, TYPE_INET_SERVICE), 8,
	  CONCAT2(TYPE_IPADDR, TYPE_INET_SERVICE), 8, NFT_SET_MAP, 0,
	  "like svc4, for clients on this host (services with local access)" },
	{ RS_LOCAL6, CONCAT2(TYPE_INET_PROTOCOL, TYPE_INET_SERVICE), 8,
	  CONCAT2(TYPE_IP6ADDR, TYPE_INET_SERVICE), 20, NFT_SET_MAP, 0,
	  "like svc6, for clients on this host (services with local access)" },
	{ RS_BACKENDS4, CONCAT3(TYPE_INET_PROTOCOL, TYPE_IPADDR, TYPE_INET_SERVICE), 12, 0, 0, 0,
	  0, "real IPv4 backends: reachable from outside only through the DNAT" },
	{ RS_BACKENDS6, CONCAT3(TYPE_INET_PROTOCOL, TYPE_IP6ADDR, TYPE_INET_SERVICE), 24, 0, 0,
	  0, 0, "real IPv6 backends: reachable from outside only through the DNAT" },
	{ RS_DECOYS, CONCAT2(TYPE_INET_PROTOCOL, TYPE_INET_SERVICE), 8, 0, 0, 0, 0,
	  "decoy ports of this epoch: a source touching one is blocked" },
	{ RS_BLOCKED4, TYPE_IPADDR, 4, 0, 0, NFT_SET_TIMEOUT | NFT_SET_EVAL, 65535,
	  "IPv4 sources that touched a decoy" },
	{ RS_BLOCKED6, TYPE_IP6ADDR, 16, 0, 0, NFT_SET_TIMEOUT | NFT_SET_EVAL, 65535,
	  "IPv6 sources that touched a decoy" },
};

struct chain_def {
	const char *name;
	const char *type;
	uint32_t hook;
	int32_t prio;
	const char *comment;
};

#define CH_PRE_FILTER "prerouting_filter"
#define CH_PRE_NAT "prerouting_nat"
#define CH_OUT_NAT "output_nat"
#define CH_IN_FILTER "input_filter"
#define CH_FWD_FILTER "forward_filter"

static const struct chain_def chains[] = {
	{ CH_PRE_FILTER, "filter", NF_INET_PRE_ROUTING, -150,
	  "blocked sources are dropped; touching a decoy blocks the source" },
	{ CH_PRE_NAT, "nat", NF_INET_PRE_ROUTING, -100, "current/grace public port -> backend" },
	{ CH_OUT_NAT, "nat", NF_INET_LOCAL_OUT, -100,
	  "public port -> backend for clients on this host" },
	{ CH_IN_FILTER, "filter", NF_INET_LOCAL_IN, 0,
	  "backends on this host: only through the DNAT" },
	{ CH_FWD_FILTER, "filter", NF_INET_FORWARD, 0,
	  "backends behind this host: only through the DNAT" },
};

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
	nlh = nft_txn_msg(t, NFT_MSG_DELTABLE, NFPROTO_INET, 0,
			  "adopting: delete the " RS_TABLE_DESC " of a previous run");
	if (!nlh) {
		nftnl_table_free(tb);
		return -ENOMEM;
	}
	nftnl_table_nlmsg_build_payload(nlh, tb);
	nftnl_table_free(tb);
	return nft_txn_msg_end(t, nlh);
}

static int add_table(struct nft_txn *t, uint32_t flags)
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
			  RS_TABLE_DESC " (flags 0x%x)", flags);
	if (!nlh) {
		nftnl_table_free(tb);
		return -ENOMEM;
	}
	nftnl_table_nlmsg_build_payload(nlh, tb);
	nftnl_table_free(tb);
	return nft_txn_msg_end(t, nlh);
}

static int add_set(struct nft_txn *t, const struct set_def *d, uint32_t id)
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
	nftnl_set_set_data(s, NFTNL_SET_USERDATA, nftnl_udata_buf_data(u), nftnl_udata_buf_len(u));
	nftnl_udata_buf_free(u);
	nlh = nft_txn_msg(t, NFT_MSG_NEWSET, NFPROTO_INET, NLM_F_CREATE | NLM_F_EXCL, "%s %s",
			  d->data_len ? "map" : "set", d->name);
	if (!nlh) {
		nftnl_set_free(s);
		return -ENOMEM;
	}
	nftnl_set_nlmsg_build_payload(nlh, s);
	nftnl_set_free(s);
	return nft_txn_msg_end(t, nlh);
}

static int add_chain(struct nft_txn *t, const struct chain_def *d)
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
	nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, d->type);
	nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, d->hook);
	nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, d->prio);
	nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
	nftnl_chain_set_data(c, NFTNL_CHAIN_USERDATA, nftnl_udata_buf_data(u),
			     nftnl_udata_buf_len(u));
	nftnl_udata_buf_free(u);
	nlh = nft_txn_msg(t, NFT_MSG_NEWCHAIN, NFPROTO_INET, NLM_F_CREATE | NLM_F_EXCL, "chain %s",
			  d->name);
	if (!nlh) {
		nftnl_chain_free(c);
		return -ENOMEM;
	}
	nftnl_chain_nlmsg_build_payload(nlh, c);
	nftnl_chain_free(c);
	return nft_txn_msg_end(t, nlh);
}

/* Takes ownership of rule. */
static int add_rule(struct nft_txn *t, struct nftnl_rule *rule, const char *what)
{
	struct nlmsghdr *nlh;

	if (!rule)
		return -ENOMEM;
	nlh = nft_txn_msg(t, NFT_MSG_NEWRULE, NFPROTO_INET, NLM_F_CREATE | NLM_F_APPEND,
			  "rule '%s' in chain %s", what,
			  nftnl_rule_get_str(rule, NFTNL_RULE_CHAIN));
	if (!nlh) {
		nftnl_rule_free(rule);
		return -ENOMEM;
	}
	nftnl_rule_nlmsg_build_payload(nlh, rule);
	nftnl_rule_free(rule);
	return nft_txn_msg_end(t, nlh);
}

int ruleset_add_layout(struct nft_txn *t, uint32_t table_flags,
		       const struct rotator_config *config)
{
	uint64_t timeout_ms = (uint64_t)config->block_timeout_sec * 1000;
	uint16_t group = config->nflog_group;
	int r;

	r = add_table(t, table_flags);
	for (size_t i = 0; r >= 0 && i < ELEMENTSOF(sets); i++)
		r = add_set(t, &sets[i], (uint32_t)i + 1);
	for (size_t i = 0; r >= 0 && i < ELEMENTSOF(chains); i++)
		r = add_chain(t, &chains[i]);
	if (r < 0)
		return r;

	struct {
		struct nftnl_rule *rule;
		const char *what;
	} rules[] = {
		{ nft_rule_loopback_accept(CH_PRE_FILTER, "this host's own traffic is never blocked"),
		  "loopback" },
		{ nft_rule_blocked_drop(CH_PRE_FILTER, NFPROTO_IPV4, RS_BLOCKED4,
					"blocked IPv4 sources reach nothing"),
		  "blocked4" },
		{ nft_rule_blocked_drop(CH_PRE_FILTER, NFPROTO_IPV6, RS_BLOCKED6,
					"blocked IPv6 sources reach nothing"),
		  "blocked6" },
		{ nft_rule_decoy_hit(CH_PRE_FILTER, NFPROTO_IPV4, RS_DECOYS, RS_BLOCKED4, timeout_ms,
				     group, RS_LOG_PREFIX, "decoy hit: block and report the source"),
		  "decoy4" },
		{ nft_rule_decoy_hit(CH_PRE_FILTER, NFPROTO_IPV6, RS_DECOYS, RS_BLOCKED6, timeout_ms,
				     group, RS_LOG_PREFIX, "decoy hit: block and report the source"),
		  "decoy6" },
		{ nft_rule_dnat(CH_PRE_NAT, NFPROTO_IPV4, RS_SVC4, NULL), "dnat4" },
		{ nft_rule_dnat(CH_PRE_NAT, NFPROTO_IPV6, RS_SVC6, NULL), "dnat6" },
		{ nft_rule_dnat(CH_OUT_NAT, NFPROTO_IPV4, RS_LOCAL4, NULL), "local dnat4" },
		{ nft_rule_dnat(CH_OUT_NAT, NFPROTO_IPV6, RS_LOCAL6, NULL), "local dnat6" },
		{ nft_rule_backend_guard(CH_IN_FILTER, NFPROTO_IPV4, RS_BACKENDS4,
					 "real port without DNAT"),
		  "guard4" },
		{ nft_rule_backend_guard(CH_IN_FILTER, NFPROTO_IPV6, RS_BACKENDS6,
					 "real port without DNAT"),
		  "guard6" },
		{ nft_rule_backend_guard(CH_FWD_FILTER, NFPROTO_IPV4, RS_BACKENDS4,
					 "real port without DNAT"),
		  "forward guard4" },
		{ nft_rule_backend_guard(CH_FWD_FILTER, NFPROTO_IPV6, RS_BACKENDS6,
					 "real port without DNAT"),
		  "forward guard6" },
	};
	for (size_t i = 0; i < ELEMENTSOF(rules); i++) {
		if (r >= 0)
			r = add_rule(t, rules[i].rule, rules[i].what);
		else
			nftnl_rule_free(rules[i].rule);
	}
	return r;
}

/* --- elements ----------------------------------------------------------------- */

static int flush_set(struct nft_txn *t, const char *name)
{
	struct nlmsghdr *nlh = nft_txn_msg(t, NFT_MSG_DELSETELEM, NFPROTO_INET, 0,
					   "flush of %s", name);

	if (!nlh)
		return -ENOMEM;
	/* no element list: the kernel flushes the whole set */
	mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, ROTATOR_TABLE);
	mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, name);
	return nft_txn_msg_end(t, nlh);
}

static size_t put_proto_port(uint8_t *b, uint8_t proto, uint16_t port)
{
	memset(b, 0, 8);
	b[0] = proto;
	b[4] = (uint8_t)(port >> 8);
	b[5] = (uint8_t)port;
	return 8;
}

static size_t put_addr(uint8_t *b, const struct rotator_addr *a)
{
	if (a->family == AF_INET) {
		memcpy(b, &a->in, 4);
		return 4;
	}
	memcpy(b, &a->in6, 16);
	return 16;
}

static size_t put_port(uint8_t *b, uint16_t port)
{
	b[0] = (uint8_t)(port >> 8);
	b[1] = (uint8_t)port;
	b[2] = b[3] = 0;
	return 4;
}

static int elem_add(struct nftnl_set *s, const void *key, size_t key_len, const void *data,
		    size_t data_len)
{
	struct nftnl_set_elem *e = nftnl_set_elem_alloc();

	if (!e)
		return -ENOMEM;
	nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, key, (uint32_t)key_len);
	if (data)
		nftnl_set_elem_set(e, NFTNL_SET_ELEM_DATA, data, (uint32_t)data_len);
	nftnl_set_elem_add(s, e);
	return 0;
}

static struct nftnl_set *elem_set(const char *name)
{
	struct nftnl_set *s = nftnl_set_alloc();

	if (!s)
		return NULL;
	nftnl_set_set_str(s, NFTNL_SET_TABLE, ROTATOR_TABLE);
	nftnl_set_set_str(s, NFTNL_SET_NAME, name);
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
	return s;
}

static int send_elems(struct nft_txn *t, struct nftnl_set *s, uint16_t cmd, uint16_t flags,
		      const char *service, const char *what)
{
	struct nlmsghdr *nlh = nft_txn_msg(t, cmd, NFPROTO_INET, flags, "service %s: %s %s",
					   service, what, nftnl_set_get_str(s, NFTNL_SET_NAME));

	if (!nlh)
		return -ENOMEM;
	nftnl_set_elems_nlmsg_build_payload(nlh, s);
	return nft_txn_msg_end(t, nlh);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct nftnl_set *, nftnl_set_free)
#define _cleanup_set_ _cleanup_(nftnl_set_freep)

static int service_map_elems(struct nft_txn *t, const struct rotator_service *svc,
			     const char *map)
{
	_cleanup_set_ struct nftnl_set *s = elem_set(map);
	uint8_t key[8], data[20];
	size_t data_len;
	int r;

	if (!s)
		return -ENOMEM;
	data_len = put_addr(data, &svc->backend);
	data_len += put_port(data + data_len, svc->backend_port);
	put_proto_port(key, svc->proto, svc->port);
	r = elem_add(s, key, sizeof(key), data, data_len);
	if (r >= 0 && svc->grace_port && svc->grace_port != svc->port) {
		put_proto_port(key, svc->proto, svc->grace_port);
		r = elem_add(s, key, sizeof(key), data, data_len);
	}
	if (r < 0)
		return r;
	/* EXCL: a public port taken twice is an error naming this service */
	return send_elems(t, s, NFT_MSG_NEWSETELEM, NLM_F_CREATE | NLM_F_EXCL, svc->name,
			  "public ports in map");
}

static int service_backend_elem(struct nft_txn *t, const struct rotator_service *svc)
{
	bool v4 = svc->backend.family == AF_INET;
	_cleanup_set_ struct nftnl_set *s = elem_set(v4 ? RS_BACKENDS4 : RS_BACKENDS6);
	uint8_t key[24] = { svc->proto };
	size_t len = 4;
	int r;

	if (!s)
		return -ENOMEM;
	len += put_addr(key + len, &svc->backend);
	len += put_port(key + len, svc->backend_port);
	r = elem_add(s, key, len, NULL, 0);
	if (r < 0)
		return r;
	/* no EXCL: services may share a backend */
	return send_elems(t, s, NFT_MSG_NEWSETELEM, NLM_F_CREATE, svc->name, "backend in set");
}

static int service_decoy_elems(struct nft_txn *t, const struct rotator_service *svc)
{
	_cleanup_set_ struct nftnl_set *s = NULL;
	uint8_t key[8];
	int r = 0;

	if (svc->n_decoys == 0)
		return 0;
	s = elem_set(RS_DECOYS);
	if (!s)
		return -ENOMEM;
	for (size_t i = 0; r >= 0 && i < svc->n_decoys; i++) {
		put_proto_port(key, svc->proto, svc->decoys[i]);
		r = elem_add(s, key, sizeof(key), NULL, 0);
	}
	if (r < 0)
		return r;
	return send_elems(t, s, NFT_MSG_NEWSETELEM, NLM_F_CREATE, svc->name, "decoys in set");
}

static int unblock_elem(struct nft_txn *t, const struct rotator_addr *a)
{
	bool v4 = a->family == AF_INET;
	_cleanup_set_ struct nftnl_set *s = elem_set(v4 ? RS_BLOCKED4 : RS_BLOCKED6);
	char text[INET6_ADDRSTRLEN] = "?";
	struct nlmsghdr *nlh;
	uint8_t key[16];
	size_t len;
	int r;

	if (!s)
		return -ENOMEM;
	len = put_addr(key, a);
	r = elem_add(s, key, len, NULL, 0);
	if (r < 0)
		return r;
	inet_ntop(a->family, v4 ? (const void *)&a->in : (const void *)&a->in6, text,
		  sizeof(text));
	/* DESTROY: an address that already expired is not an error */
	nlh = nft_txn_msg(t, NFT_MSG_DESTROYSETELEM, NFPROTO_INET, 0, "unblock %s in set %s",
			  text, v4 ? RS_BLOCKED4 : RS_BLOCKED6);
	if (!nlh)
		return -ENOMEM;
	nftnl_set_elems_nlmsg_build_payload(nlh, s);
	return nft_txn_msg_end(t, nlh);
}

int ruleset_add_elements(struct nft_txn *t, const struct rotator_plan *plan)
{
	static const char *const per_epoch[] = { RS_SVC4,      RS_SVC6,      RS_LOCAL4, RS_LOCAL6,
						 RS_BACKENDS4, RS_BACKENDS6, RS_DECOYS };
	int r = 0;

	for (size_t i = 0; r >= 0 && i < ELEMENTSOF(per_epoch); i++)
		r = flush_set(t, per_epoch[i]);
	for (size_t i = 0; r >= 0 && i < plan->n_services; i++) {
		const struct rotator_service *svc = &plan->services[i];
		bool v4 = svc->backend.family == AF_INET;

		r = service_map_elems(t, svc, v4 ? RS_SVC4 : RS_SVC6);
		if (r >= 0 && svc->local_access)
			r = service_map_elems(t, svc, v4 ? RS_LOCAL4 : RS_LOCAL6);
		if (r >= 0)
			r = service_backend_elem(t, svc);
		if (r >= 0)
			r = service_decoy_elems(t, svc);
	}
	for (size_t i = 0; r >= 0 && i < plan->n_unblock; i++)
		r = unblock_elem(t, &plan->unblock[i]);
	return r;
}
