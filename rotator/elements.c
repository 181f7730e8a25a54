/* SPDX-License-Identifier: MIT */
/* Element messages of a delta (see rotator_internal.h). */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include "macro.h"
#include "rotator_internal.h"

#ifndef NFT_MSG_DESTROYSETELEM
#define NFT_MSG_DESTROYSETELEM 30 /* Linux 6.3: delete, no error if absent */
#endif

enum {
	REF_FLUSH = 1,
	REF_DEL, /* NFT_MSG_DELSETELEM: the element must be there */
	REF_ADD, /* NFT_MSG_NEWSETELEM, NLM_F_EXCL: the element must not be there */
	REF_UNBLOCK,
	REF_CARRY,     /* blocked sources of an adopted table */
	REF_BLOCK_DEL, /* rotator_block(): a source's old element (if any) */
	REF_BLOCK_ADD, /* rotator_block(): the source with its new timeout */
	REF_ADMIT_DEL, /* rotator_admit(): an admission's old element (if any) */
	REF_ADMIT_ADD, /* rotator_admit(): the admission with its new timeout */
	REF_UNADMIT,   /* rotator_unadmit() */
};

static struct nlmsghdr *elems_msg_start(struct nft_txn *t, uint16_t cmd, uint16_t flags,
					const char *set, struct nlattr **ret_list,
					const struct nft_ref *ref)
{
	struct nlmsghdr *nlh = nft_txn_msg(t, cmd, NFPROTO_INET, flags, ref);

	if (!nlh)
		return NULL;
	mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, ROTATOR_TABLE);
	mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, set);
	*ret_list = mnl_attr_nest_start(nlh, NFTA_SET_ELEM_LIST_ELEMENTS);
	return nlh;
}

void elements_put_value(struct nlmsghdr *nlh, uint16_t type, const void *v, size_t len)
{
	struct nlattr *nest = mnl_attr_nest_start(nlh, type);

	mnl_attr_put(nlh, NFTA_DATA_VALUE, len, v);
	mnl_attr_nest_end(nlh, nest);
}

struct nlmsghdr *elements_batch_msg(struct elements_batch *b, const struct nft_ref *ref)
{
	if (!b->nlh)
		b->nlh = elems_msg_start(b->t, b->cmd, b->flags, b->set, &b->list, ref);
	return b->nlh;
}

int elements_batch_end(struct elements_batch *b)
{
	struct nlmsghdr *nlh = b->nlh;

	if (!nlh)
		return 0;
	mnl_attr_nest_end(nlh, b->list);
	b->nlh = NULL;
	return nft_txn_msg_end(b->t, nlh);
}

int elements_batch_next(struct elements_batch *b)
{
	/* close a message a little before the page slack could be overrun */
	return b->nlh && b->nlh->nlmsg_len >= NFT_TXN_MSG_MAX - 512 ? elements_batch_end(b) : 0;
}

/* One operation on a list of elements of one set, in as many messages as it
 * takes. Each message's ref carries the position of its first element. */
static int send_elems(struct nft_txn *t, enum rs_set set, uint16_t kind, const struct rs_table *tab,
		      const uint32_t *idx, size_t n)
{
	bool add = kind == REF_ADD;
	uint16_t cmd = add ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM;
	/* EXCL: the delta only adds what the kernel does not have; anything
	 * else means our state is wrong, which must not pass silently. */
	uint16_t flags = add ? NLM_F_CREATE | NLM_F_EXCL : 0;
	struct elements_batch b = {.t = t, .cmd = cmd, .flags = flags, .set = delta_set_name(set)};
	int r;

	for (size_t i = 0; i < n; i++) {
		const struct rs_elem *e = rs_table_elem(tab, idx[i]);
		struct nft_ref ref = {.kind = kind, .sub = (uint16_t)set, .index = (uint32_t)i};
		struct nlmsghdr *nlh = elements_batch_msg(&b, &ref);
		struct nlattr *el;

		if (!nlh)
			return -ENOMEM;
		el = mnl_attr_nest_start(nlh, NFTA_LIST_ELEM);
		elements_put_value(nlh, NFTA_SET_ELEM_KEY, rs_elem_key(e), e->key_len);
		if (delta_set_is_interval(set))
			elements_put_value(nlh, NFTA_SET_ELEM_KEY_END, rs_elem_data(e),
					   e->data_len);
		else if (add && e->data_len)
			elements_put_value(nlh, NFTA_SET_ELEM_DATA, rs_elem_data(e), e->data_len);
		mnl_attr_nest_end(nlh, el);
		r = elements_batch_next(&b);
		if (r < 0)
			return r;
	}
	return elements_batch_end(&b);
}

static int flush_set(struct nft_txn *t, enum rs_set set)
{
	struct nft_ref ref = {.kind = REF_FLUSH, .sub = (uint16_t)set};
	struct nlmsghdr *nlh = nft_txn_msg(t, NFT_MSG_DELSETELEM, NFPROTO_INET, 0, &ref);

	if (!nlh)
		return -ENOMEM;
	/* no element list: the kernel flushes the whole set */
	mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, ROTATOR_TABLE);
	mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, delta_set_name(set));
	return nft_txn_msg_end(t, nlh);
}

int elements_add_delta(struct nft_txn *t, const struct elements_ctx *ctx, bool flush)
{
	const struct rs_delta *d = ctx->delta;
	int r = 0;

	for (size_t s = 0; flush && r >= 0 && s < RS_N_SETS; s++)
		if (ctx->envelope || !delta_set_is_instance((enum rs_set)s))
			r = flush_set(t, (enum rs_set)s);
	for (size_t s = 0; r >= 0 && s < RS_N_SETS; s++)
		r = send_elems(t, (enum rs_set)s, REF_DEL, &ctx->old->sets[s], d->del[s],
			       d->n_del[s]);
	for (size_t s = 0; r >= 0 && s < RS_N_SETS; s++)
		r = send_elems(t, (enum rs_set)s, REF_ADD, &ctx->new_state->sets[s], d->add[s],
			       d->n_add[s]);
	return r;
}

/* Sources of one family from list into blocked4/6, as many messages as it
 * takes: cmd NEWSETELEM (with each one's timeout) or DESTROYSETELEM. Each
 * message's ref carries the position in list of its first element. */
static int send_blocked(struct nft_txn *t, uint16_t kind, uint16_t cmd, uint16_t flags,
			const struct rotator_blocked *list, size_t n, int family)
{
	bool v4 = family == AF_INET;
	struct elements_batch batch = {
	    .t = t, .cmd = cmd, .flags = flags, .set = v4 ? RS_BLOCKED4 : RS_BLOCKED6};
	int r;

	for (size_t i = 0; i < n; i++) {
		const struct rotator_blocked *b = &list[i];
		struct nft_ref ref = {.kind = kind, .index = (uint32_t)i};
		struct nlmsghdr *nlh;
		struct nlattr *el;

		if (b->source.family != family)
			continue;
		nlh = elements_batch_msg(&batch, &ref);
		if (!nlh)
			return -ENOMEM;
		el = mnl_attr_nest_start(nlh, NFTA_LIST_ELEM);
		elements_put_value(nlh, NFTA_SET_ELEM_KEY,
				   v4 ? (const void *)&b->source.in : b->source.in6.s6_addr,
				   v4 ? 4 : 16);
		if (cmd == NFT_MSG_NEWSETELEM && b->expires_in_ms)
			mnl_attr_put_u64(nlh, NFTA_SET_ELEM_TIMEOUT, htobe64(b->expires_in_ms));
		mnl_attr_nest_end(nlh, el);
		r = elements_batch_next(&batch);
		if (r < 0)
			return r;
	}
	return elements_batch_end(&batch);
}

int elements_add_carried(struct nft_txn *t, const struct elements_ctx *ctx)
{
	int r = send_blocked(t, REF_CARRY, NFT_MSG_NEWSETELEM, NLM_F_CREATE, ctx->carried,
			     ctx->n_carried, AF_INET);

	if (r >= 0)
		r = send_blocked(t, REF_CARRY, NFT_MSG_NEWSETELEM, NLM_F_CREATE, ctx->carried,
				 ctx->n_carried, AF_INET6);
	return r;
}

/* An entry of rotator_block()'s input with its position: sorted by source,
 * then position, so the last entry of each source is the last of its run. */
struct block_entry {
	struct rotator_blocked b;
	size_t pos;
};

static int block_entry_cmp(const void *x, const void *y)
{
	const struct block_entry *a = x, *b = y;
	int c;

	if (a->b.source.family != b->b.source.family)
		return a->b.source.family < b->b.source.family ? -1 : 1;
	c = a->b.source.family == AF_INET ? memcmp(&a->b.source.in, &b->b.source.in, 4)
					  : memcmp(&a->b.source.in6, &b->b.source.in6, 16);
	if (c)
		return c;
	return a->pos < b->pos ? -1 : a->pos > b->pos;
}

int elements_block_list(const struct rotator_blocked *sources, size_t n,
			struct rotator_blocked **ret, size_t *ret_n)
{
	_cleanup_free_ struct block_entry *entries = calloc(n, sizeof(*entries));
	struct rotator_blocked *list;
	size_t m = 0;

	if (!entries)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		entries[i].b = (struct rotator_blocked){.source.family = sources[i].source.family,
							.expires_in_ms = sources[i].expires_in_ms};
		if (sources[i].source.family == AF_INET)
			entries[i].b.source.in = sources[i].source.in;
		else
			entries[i].b.source.in6 = sources[i].source.in6;
		entries[i].pos = i;
	}
	qsort(entries, n, sizeof(*entries), block_entry_cmp);
	list = calloc(n, sizeof(*list));
	if (!list)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		bool last_of_source =
		    i + 1 == n || entries[i + 1].b.source.family != entries[i].b.source.family ||
		    memcmp(&entries[i + 1].b.source.in6, &entries[i].b.source.in6,
			   entries[i].b.source.family == AF_INET ? 4 : 16) != 0;

		if (last_of_source)
			list[m++] = entries[i].b;
	}
	*ret = list;
	*ret_n = m;
	return 0;
}

int elements_add_block(struct nft_txn *t, const struct elements_ctx *ctx)
{
	static const int families[] = {AF_INET, AF_INET6};
	int r = 0;

	/* DESTROY (no error when absent) then add with EXCL: a source already
	 * blocked takes the new timeout, and the transaction is atomic, so it
	 * is never out of the set in between. */
	for (size_t f = 0; r >= 0 && f < ELEMENTSOF(families); f++) {
		r = send_blocked(t, REF_BLOCK_DEL, NFT_MSG_DESTROYSETELEM, 0, ctx->block,
				 ctx->n_block, families[f]);
		if (r >= 0)
			r = send_blocked(t, REF_BLOCK_ADD, NFT_MSG_NEWSETELEM,
					 NLM_F_CREATE | NLM_F_EXCL, ctx->block, ctx->n_block,
					 families[f]);
	}
	return r;
}

/* source . proto . port as admitted4/6 store it; returns the key length */
static size_t admission_key(uint8_t *b, const struct rotator_admission *a)
{
	size_t al = a->source.family == AF_INET ? 4 : 16;

	memset(b, 0, al + 8);
	memcpy(b, a->source.family == AF_INET ? (const void *)&a->source.in : &a->source.in6, al);
	b[al] = a->proto;
	b[al + 4] = (uint8_t)(a->port >> 8);
	b[al + 5] = (uint8_t)a->port;
	return al + 8;
}

struct admit_entry {
	struct rotator_admission a;
	uint8_t key[24];
	size_t pos;
};

static int admit_entry_cmp(const void *x, const void *y)
{
	const struct admit_entry *a = x, *b = y;
	int c;

	if (a->a.source.family != b->a.source.family)
		return a->a.source.family < b->a.source.family ? -1 : 1;
	c = memcmp(a->key, b->key, sizeof(a->key));
	if (c)
		return c;
	return a->pos < b->pos ? -1 : a->pos > b->pos;
}

int elements_admit_list(const struct rotator_admission *a, size_t n, struct rotator_admission **ret,
			size_t *ret_n)
{
	_cleanup_free_ struct admit_entry *entries = calloc(n, sizeof(*entries));
	struct rotator_admission *list;
	size_t m = 0;

	if (!entries)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		entries[i].a = a[i];
		admission_key(entries[i].key, &a[i]);
		entries[i].pos = i;
	}
	qsort(entries, n, sizeof(*entries), admit_entry_cmp);
	list = calloc(n, sizeof(*list));
	if (!list)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (i + 1 == n || entries[i + 1].a.source.family != entries[i].a.source.family ||
		    memcmp(entries[i + 1].key, entries[i].key, sizeof(entries[i].key)) != 0)
			list[m++] = entries[i].a;
	*ret = list;
	*ret_n = m;
	return 0;
}

/* Admissions of one family into admitted4/6, as many messages as it takes. */
static int send_admissions(struct nft_txn *t, uint16_t kind, uint16_t cmd, uint16_t flags,
			   const struct rotator_admission *list, size_t n, int family)
{
	bool v4 = family == AF_INET;
	struct elements_batch batch = {
	    .t = t, .cmd = cmd, .flags = flags, .set = v4 ? RS_ADMITTED4 : RS_ADMITTED6};
	uint8_t key[24];
	int r;

	for (size_t i = 0; i < n; i++) {
		const struct rotator_admission *a = &list[i];
		struct nft_ref ref = {.kind = kind, .index = (uint32_t)i};
		struct nlmsghdr *nlh;
		struct nlattr *el;
		size_t len;

		if (a->source.family != family)
			continue;
		nlh = elements_batch_msg(&batch, &ref);
		if (!nlh)
			return -ENOMEM;
		len = admission_key(key, a);
		el = mnl_attr_nest_start(nlh, NFTA_LIST_ELEM);
		elements_put_value(nlh, NFTA_SET_ELEM_KEY, key, len);
		if (cmd == NFT_MSG_NEWSETELEM)
			mnl_attr_put_u64(nlh, NFTA_SET_ELEM_TIMEOUT, htobe64(a->expires_in_ms));
		mnl_attr_nest_end(nlh, el);
		r = elements_batch_next(&batch);
		if (r < 0)
			return r;
	}
	return elements_batch_end(&batch);
}

int elements_add_admit(struct nft_txn *t, const struct elements_ctx *ctx, bool remove)
{
	static const int families[] = {AF_INET, AF_INET6};
	int r = 0;

	/* DESTROY (no error when absent), then (admit) add with EXCL: one
	 * already there takes the new timeout without a gap. */
	for (size_t f = 0; r >= 0 && f < ELEMENTSOF(families); f++) {
		r = send_admissions(t, remove ? REF_UNADMIT : REF_ADMIT_DEL, NFT_MSG_DESTROYSETELEM,
				    0, ctx->admit, ctx->n_admit, families[f]);
		if (r >= 0 && !remove)
			r = send_admissions(t, REF_ADMIT_ADD, NFT_MSG_NEWSETELEM,
					    NLM_F_CREATE | NLM_F_EXCL, ctx->admit, ctx->n_admit,
					    families[f]);
	}
	return r;
}

int elements_add_unblock(struct nft_txn *t, const struct elements_ctx *ctx)
{
	for (size_t i = 0; i < ctx->plan->n_unblock; i++) {
		const struct rotator_addr *a = &ctx->plan->unblock[i];
		bool v4 = a->family == AF_INET;
		struct nft_ref ref = {.kind = REF_UNBLOCK, .index = (uint32_t)i};
		struct nlattr *list, *el;
		struct nlmsghdr *nlh;
		int r;

		/* DESTROY: an address that already expired is not an error */
		nlh = elems_msg_start(t, NFT_MSG_DESTROYSETELEM, 0, v4 ? RS_BLOCKED4 : RS_BLOCKED6,
				      &list, &ref);
		if (!nlh)
			return -ENOMEM;
		el = mnl_attr_nest_start(nlh, NFTA_LIST_ELEM);
		elements_put_value(nlh, NFTA_SET_ELEM_KEY,
				   v4 ? (const uint8_t *)&a->in : a->in6.s6_addr, v4 ? 4 : 16);
		mnl_attr_nest_end(nlh, el);
		mnl_attr_nest_end(nlh, list);
		r = nft_txn_msg_end(t, nlh);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Which element of msg's element list holds the attribute at offset; -1. */
static long elem_at(const struct nlmsghdr *msg, uint32_t offset)
{
	const struct nlattr *attr, *el;
	long i = 0;

	if (!msg || !offset)
		return -1;
	mnl_attr_for_each(attr, msg, sizeof(struct nfgenmsg))
	{
		if (mnl_attr_get_type(attr) != NFTA_SET_ELEM_LIST_ELEMENTS)
			continue;
		mnl_attr_for_each_nested(el, attr)
		{
			uint32_t start = (uint32_t)((const char *)el - (const char *)msg);

			if (offset >= start && offset < start + el->nla_len)
				return i;
			i++;
		}
	}
	return -1;
}

void elements_describe(void *userdata, const struct nft_ref *ref, const struct nlmsghdr *msg,
		       uint32_t bad_offset, char *buf, size_t len)
{
	const struct elements_ctx *ctx = userdata;
	enum rs_set set = (enum rs_set)ref->sub;
	const char *kind = delta_set_is_map(set) ? "map" : "set";
	bool add = ref->kind == REF_ADD;
	const struct rs_state *st = add ? ctx->new_state : ctx->old;
	const uint32_t *idx;
	size_t n = 0;
	const struct rs_elem *e;
	char text[96];
	long at;

	switch (ref->kind) {
	case REF_FLUSH:
		snprintf(buf, len, "flush of %s %s", kind, delta_set_name(set));
		return;
	case REF_UNBLOCK: {
		const struct rotator_addr *a = &ctx->plan->unblock[ref->index];
		char addr[INET6_ADDRSTRLEN] = "?";

		inet_ntop(a->family, a->family == AF_INET ? (const void *)&a->in : &a->in6, addr,
			  sizeof(addr));
		snprintf(buf, len, "unblock %s in set %s", addr,
			 a->family == AF_INET ? RS_BLOCKED4 : RS_BLOCKED6);
		return;
	}
	case REF_CARRY:
	case REF_BLOCK_DEL:
	case REF_BLOCK_ADD: {
		const struct rotator_blocked *list =
		    ref->kind == REF_CARRY ? ctx->carried : ctx->block;
		size_t n_list = ref->kind == REF_CARRY ? ctx->n_carried : ctx->n_block;
		const struct rotator_blocked *b = &list[ref->index];
		char addr[INET6_ADDRSTRLEN] = "?";

		/* the message's elements are list[index..] of one family */
		at = elem_at(msg, bad_offset);
		for (size_t i = ref->index + 1; at > 0 && i < n_list; i++)
			if (list[i].source.family == b->source.family && --at == 0)
				b = &list[i];
		inet_ntop(b->source.family, &b->source.in6, addr,
			  sizeof(addr)); /* in: same start */
		snprintf(buf, len, "%s %s %s set %s",
			 ref->kind == REF_CARRY	      ? "carrying blocked source"
			 : ref->kind == REF_BLOCK_DEL ? "replacing blocked source"
						      : "blocking source",
			 addr, ref->kind == REF_CARRY ? "over into" : "in",
			 b->source.family == AF_INET ? RS_BLOCKED4 : RS_BLOCKED6);
		return;
	}
	case REF_ADMIT_DEL:
	case REF_ADMIT_ADD:
	case REF_UNADMIT: {
		const struct rotator_admission *a = &ctx->admit[ref->index];
		char addr[INET6_ADDRSTRLEN] = "?";

		at = elem_at(msg, bad_offset);
		for (size_t i = ref->index + 1; at > 0 && i < ctx->n_admit; i++)
			if (ctx->admit[i].source.family == a->source.family && --at == 0)
				a = &ctx->admit[i];
		inet_ntop(a->source.family, &a->source.in6, addr,
			  sizeof(addr)); /* in: same start */
		snprintf(buf, len, "%s %s to %s/%u in set %s",
			 ref->kind == REF_ADMIT_ADD   ? "admitting"
			 : ref->kind == REF_ADMIT_DEL ? "replacing admission of"
						      : "revoking admission of",
			 addr, a->proto == IPPROTO_UDP ? "udp" : "tcp", a->port,
			 a->source.family == AF_INET ? RS_ADMITTED4 : RS_ADMITTED6);
		return;
	}
	case REF_ADD:
	case REF_DEL:
		break;
	default:
		snprintf(buf, len, "message of kind %u", ref->kind);
		return;
	}
	idx = add ? ctx->delta->add[set] : ctx->delta->del[set];
	n = add ? ctx->delta->n_add[set] : ctx->delta->n_del[set];
	at = elem_at(msg, bad_offset);
	if (at < 0 || ref->index + (size_t)at >= n) {
		snprintf(buf, len, "%s %s: %s elements from #%u", kind, delta_set_name(set),
			 add ? "adding" : "deleting", ref->index);
		return;
	}
	e = rs_table_elem(&st->sets[set], idx[ref->index + (size_t)at]);
	delta_elem_text(set, e, text, sizeof(text));
	if (set == RS_SET_ACTIVE0 || set == RS_SET_ACTIVE1) {
		snprintf(buf, len, "switching banks: %s %s %s set %s", add ? "adding" : "deleting",
			 text, add ? "to" : "from", delta_set_name(set));
		return;
	}
	snprintf(buf, len, "%s %s: %s %s %s %s %s",
		 delta_set_is_instance(set) ? "instance" : "service", delta_state_owner(st, e),
		 add ? "adding" : "deleting", text, add ? "to" : "from", kind, delta_set_name(set));
}
