/* SPDX-License-Identifier: MIT */
/* The blocked ranges in the kernel (see rotator.h, rotator_block_ranges()):
 * the interval sets ranges4/ranges6, programmed from ranges.c's disjoint
 * segments. An interval is two elements, as nft writes them: its first
 * address, and the address after its last one flagged
 * NFT_SET_ELEM_INTERVAL_END (none when the interval reaches the end of the
 * address space); the timeout is the first element's, which the kernel's
 * rbtree set expires with the interval. */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include "clock.h"
#include "macro.h"
#include "rotator_internal.h"

#ifndef NFT_MSG_DESTROYSETELEM
#define NFT_MSG_DESTROYSETELEM 30 /* Linux 6.3: delete, no error if absent */
#endif

#define MAX_RESTARTS 5

enum {
	REF_RANGE_FLUSH = 100,
	REF_RANGE_DEL,
	REF_RANGE_ADD,
};

uint64_t rotator_ranges_now_ms(void)
{
	return now(CLOCK_MONOTONIC) / USEC_PER_MSEC;
}

static range_u128 family_max(int family)
{
	return family == AF_INET ? (range_u128)UINT32_MAX : ~(range_u128)0;
}

static const char *set_of(int family)
{
	return family == AF_INET ? RS_RANGES4 : RS_RANGES6;
}

static void put_key(struct nlmsghdr *nlh, int family, range_u128 value)
{
	uint8_t key[16];

	rotator_range_key(family, value, key);
	elements_put_value(nlh, NFTA_SET_ELEM_KEY, key, family == AF_INET ? 4 : 16);
}

/* The segments of one family, as many messages as it takes; each message's
 * ref carries the position of its first segment. */
static int send_segments(struct nft_txn *t, uint16_t kind, const struct rotator_range_segment *s,
			 size_t n, int family, uint64_t now_ms)
{
	bool add = kind == REF_RANGE_ADD;
	struct elements_batch batch = {.t = t,
				       .cmd = add ? NFT_MSG_NEWSETELEM : NFT_MSG_DESTROYSETELEM,
				       .flags = add ? NLM_F_CREATE | NLM_F_EXCL : 0,
				       .set = set_of(family)};
	int r;

	for (size_t i = 0; i < n; i++) {
		struct nft_ref ref = {.kind = kind, .index = (uint32_t)i};
		struct nlmsghdr *nlh;
		struct nlattr *el;

		if (s[i].family != family)
			continue;
		nlh = elements_batch_msg(&batch, &ref);
		if (!nlh)
			return -ENOMEM;
		el = mnl_attr_nest_start(nlh, NFTA_LIST_ELEM);
		put_key(nlh, family, s[i].start);
		if (add)
			mnl_attr_put_u64(
			    nlh, NFTA_SET_ELEM_TIMEOUT,
			    htobe64(s[i].until_ms > now_ms ? s[i].until_ms - now_ms : 1));
		mnl_attr_nest_end(nlh, el);
		if (s[i].end != family_max(family)) {
			el = mnl_attr_nest_start(nlh, NFTA_LIST_ELEM);
			put_key(nlh, family, s[i].end + 1);
			mnl_attr_put_u32(nlh, NFTA_SET_ELEM_FLAGS,
					 htonl(NFT_SET_ELEM_INTERVAL_END));
			mnl_attr_nest_end(nlh, el);
		}
		r = elements_batch_next(&batch);
		if (r < 0)
			return r;
	}
	return elements_batch_end(&batch);
}

static int flush_ranges(struct nft_txn *t, int family)
{
	struct nft_ref ref = {.kind = REF_RANGE_FLUSH, .index = (uint32_t)family};
	struct nlmsghdr *nlh = nft_txn_msg(t, NFT_MSG_DELSETELEM, NFPROTO_INET, 0, &ref);

	if (!nlh)
		return -ENOMEM;
	mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, ROTATOR_TABLE);
	mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, set_of(family));
	return nft_txn_msg_end(t, nlh);
}

int rotator_ranges_add_elems(struct nft_txn *t, const struct rotator_range_segment *del,
			     size_t n_del, const struct rotator_range_segment *add, size_t n_add,
			     bool flush, uint64_t now_ms)
{
	static const int families[] = {AF_INET, AF_INET6};
	int r = 0;

	for (size_t f = 0; r >= 0 && f < ELEMENTSOF(families); f++) {
		if (flush)
			r = flush_ranges(t, families[f]);
		else
			r = send_segments(t, REF_RANGE_DEL, del, n_del, families[f], now_ms);
		if (r >= 0)
			r = send_segments(t, REF_RANGE_ADD, add, n_add, families[f], now_ms);
	}
	return r;
}

/* "192.0.2.0-192.0.2.255" */
void rotator_range_text(int family, range_u128 start, range_u128 end, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN] = "?", b[INET6_ADDRSTRLEN] = "?";
	uint8_t k[16];

	rotator_range_key(family, start, k);
	inet_ntop(family, k, a, sizeof(a));
	rotator_range_key(family, end, k);
	inet_ntop(family, k, b, sizeof(b));
	snprintf(buf, len, "%s-%s", a, b);
}

struct describe_ctx {
	const struct rotator_range_segment *del, *add;
	size_t n_del, n_add;
};

/* Which segment of the message the kernel blamed: attributes are walked to
 * the offset (two elements per segment but the one reaching the end). */
static void describe(void *userdata, const struct nft_ref *ref, const struct nlmsghdr *msg,
		     uint32_t bad_offset, char *buf, size_t len)
{
	const struct describe_ctx *ctx = userdata;
	const struct rotator_range_segment *list = ref->kind == REF_RANGE_ADD	? ctx->add
						   : ref->kind == REF_RANGE_DEL ? ctx->del
										: NULL;
	size_t n = ref->kind == REF_RANGE_ADD ? ctx->n_add : ctx->n_del;
	const struct rotator_range_segment *s;
	char text[2 * INET6_ADDRSTRLEN + 2];

	if (!list) {
		snprintf(buf, len, "flush of set %s", set_of((int)ref->index));
		return;
	}
	if (ref->index >= n) {
		snprintf(buf, len, "ranges: message of kind %u", ref->kind);
		return;
	}
	s = &list[ref->index];
	if (bad_offset) {
		/* the elements of the message: count the ones before the offset */
		const struct nlattr *attr;
		size_t seen = 0;

		mnl_attr_for_each(attr, msg, sizeof(struct nfgenmsg))
		{
			const struct nlattr *el;

			if (mnl_attr_get_type(attr) != NFTA_SET_ELEM_LIST_ELEMENTS)
				continue;
			mnl_attr_for_each_nested(el, attr)
			{
				if ((const char *)el - (const char *)msg + mnl_attr_get_len(el) <=
				    bad_offset)
					seen++;
			}
		}
		/* seen elements precede the blamed one: find its segment */
		for (size_t i = ref->index; i < n; i++) {
			size_t elems;

			if (list[i].family != s->family)
				continue;
			elems = list[i].end == family_max(list[i].family) ? 1 : 2;
			if (seen < elems) {
				s = &list[i];
				break;
			}
			seen -= elems;
		}
	}
	rotator_range_text(s->family, s->start, s->end, text, sizeof(text));
	snprintf(buf, len, "%s range %s %s set %s",
		 ref->kind == REF_RANGE_ADD ? "blocking" : "removing", text,
		 ref->kind == REF_RANGE_ADD ? "in" : "from", set_of(s->family));
}

int rotator_ranges_commit(struct nft_sock *sock, struct rotator_range_state *st,
			  struct rotator_range_map *map, const struct rotator_range_hole *holes,
			  size_t n_holes, struct step_error *err)
{
	_cleanup_(nft_txn_freep) struct nft_txn *t = NULL;
	_cleanup_free_ struct rotator_range_segment *segs = NULL, *del = NULL, *add = NULL;
	size_t n_segs = 0, n_del = 0, n_add = 0;
	uint64_t now_ms = rotator_ranges_now_ms();
	struct describe_ctx ctx;
	bool flush = !st->valid;
	int k;

	rotator_range_expire(map, now_ms + 1);
	k = rotator_range_segments(map, holes, n_holes, now_ms + 1, &segs, &n_segs);
	if (k >= 0)
		k = rotator_range_diff(flush ? NULL : st->programmed, flush ? 0 : st->n_programmed,
				       segs, n_segs, &del, &n_del, &add, &n_add);
	if (k < 0)
		return step_error_set(err, "ranges", k, "computing the segments");
	if (!flush && n_del == 0 && n_add == 0) {
		/* nothing changes in the kernel: the decisions do */
		rotator_range_map_free(&st->map);
		st->map = *map;
		*map = (struct rotator_range_map){0};
		return 0;
	}
	k = nft_txn_new(sock, &t);
	if (k >= 0)
		k = rotator_ranges_add_elems(t, del, n_del, add, n_add, flush, now_ms);
	if (k < 0)
		return step_error_set(err, "transaction", k, "building the batch");
	ctx = (struct describe_ctx){.del = del, .add = add, .n_del = n_del, .n_add = n_add};
	nft_txn_set_describe(t, describe, &ctx);
	k = nft_txn_commit(sock, t, MAX_RESTARTS, err);
	if (k < 0) {
		/* Unclear, or refused: the kernel's sets are not what st says
		 * (an element overlaps one someone else added, one we knew is
		 * gone): the next call flushes both and adds every segment. */
		st->valid = false;
		return k;
	}
	rotator_range_map_free(&st->map);
	st->map = *map;
	*map = (struct rotator_range_map){0};
	free(st->programmed);
	st->programmed = TAKE_PTR(segs);
	st->n_programmed = n_segs;
	st->valid = true;
	return 0;
}

struct elem_reader {
	int family;
	struct rotator_range_elem *list;
	size_t n, cap;
};

static int read_one(const struct nft_elem_info *elem, void *userdata)
{
	struct elem_reader *reader = userdata;
	struct rotator_addr a = {.family = reader->family};

	if (elem->key_len != (reader->family == AF_INET ? 4u : 16u))
		return 0; /* a table of another layout */
	if (reader->n == reader->cap) {
		size_t cap = reader->cap ? 2 * reader->cap : 16;
		struct rotator_range_elem *grown = realloc(reader->list, cap * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		reader->list = grown;
		reader->cap = cap;
	}
	memcpy(&a.in6, elem->key, elem->key_len); /* in: same start */
	reader->list[reader->n++] = (struct rotator_range_elem){
	    .value = rotator_range_value(&a),
	    .end = (elem->flags & NFT_SET_ELEM_INTERVAL_END) != 0,
	    .expires_in_ms = elem->timeout_ms ? elem->expires_in_ms : 0};
	return 0;
}

int rotator_ranges_read(struct nft_sock *sock, struct rotator_range_state *st,
			struct step_error *err)
{
	static const int families[] = {AF_INET, AF_INET6};
	struct rotator_range_map map = {0};
	uint64_t now_ms = rotator_ranges_now_ms();
	int k = 0;

	for (size_t f = 0; k >= 0 && f < ELEMENTSOF(families); f++) {
		struct elem_reader reader = {.family = families[f]};

		k = nft_dump_set_elems(sock, NFPROTO_INET, ROTATOR_TABLE, set_of(families[f]),
				       read_one, &reader);
		if (k == -ENOENT) /* a table of an older layout */
			k = 0;
		else if (k < 0)
			step_error_set(err, set_of(families[f]), k, "reading the blocked ranges");
		if (k >= 0)
			k = rotator_range_from_elems(families[f], reader.list, reader.n, now_ms,
						     &map);
		free(reader.list);
	}
	if (k < 0) {
		rotator_range_map_free(&map);
		return err && step_error_failed(err)
			   ? k
			   : step_error_set(err, "ranges", k, "carrying the blocked ranges over");
	}
	rotator_ranges_state_free(st);
	st->map = map;
	k = rotator_range_segments(&st->map, NULL, 0, now_ms + 1, &st->programmed,
				   &st->n_programmed);
	if (k < 0)
		return step_error_set(err, "ranges", k, "carrying the blocked ranges over");
	/* what the adopting transaction adds: valid once it commits */
	st->valid = false;
	return 0;
}

void rotator_ranges_state_free(struct rotator_range_state *st)
{
	rotator_range_map_free(&st->map);
	free(st->programmed);
	*st = (struct rotator_range_state){0};
}

/* A caller's range as an interval; -EINVAL with err naming it. */
static int range_of(const struct rotator_range *x, const char *what, size_t i, range_u128 *start,
		    range_u128 *end, struct step_error *err)
{
	if (x->addr.family != AF_INET && x->addr.family != AF_INET6)
		return step_error_set(err, "ranges", -EINVAL,
				      "%s #%zu: address family %d is not IPv4 or IPv6", what, i,
				      x->addr.family);
	if (rotator_range_from_prefix(&x->addr, x->prefix_len, start, end) < 0)
		return step_error_set(err, "ranges", -EINVAL,
				      "%s #%zu: prefix length %u is longer than the address", what,
				      i, x->prefix_len);
	return 0;
}

int rotator_ranges_block(struct nft_sock *sock, struct rotator_range_state *st,
			 const struct rotator_range *bans, size_t n_bans,
			 const struct rotator_range *unbans, size_t n_unbans,
			 const struct rotator_range *never, size_t n_never, struct step_error *err)
{
	_cleanup_free_ struct rotator_range_hole *holes = calloc(n_never + 1, sizeof(*holes));
	struct rotator_range_map map = {0};
	uint64_t now_ms = rotator_ranges_now_ms();
	range_u128 start, end;
	int k;

	if (!holes)
		return step_error_set(err, "ranges", -ENOMEM, "%s", "");
	for (size_t i = 0; i < n_never; i++) {
		k = range_of(&never[i], "never-blocked range", i, &start, &end, err);
		if (k < 0)
			return k;
		holes[i] = (struct rotator_range_hole){
		    .family = never[i].addr.family, .start = start, .end = end};
	}
	for (size_t i = 0; i < n_bans; i++) {
		k = range_of(&bans[i], "range", i, &start, &end, err);
		if (k < 0)
			return k;
		if (!bans[i].expires_in_ms)
			return step_error_set(err, "ranges", -EINVAL,
					      "range #%zu: no time (expires_in_ms 0)", i);
	}
	for (size_t i = 0; i < n_unbans; i++) {
		k = range_of(&unbans[i], "unblocked range", i, &start, &end, err);
		if (k < 0)
			return k;
	}
	k = rotator_range_map_copy(&st->map, &map);
	for (size_t i = 0; k >= 0 && i < n_unbans; i++) {
		(void)rotator_range_from_prefix(&unbans[i].addr, unbans[i].prefix_len, &start,
						&end);
		k = rotator_range_unban(&map, unbans[i].addr.family, start, end);
	}
	for (size_t i = 0; k >= 0 && i < n_bans; i++) {
		(void)rotator_range_from_prefix(&bans[i].addr, bans[i].prefix_len, &start, &end);
		k = rotator_range_ban(&map, bans[i].addr.family, start, end,
				      now_ms + bans[i].expires_in_ms);
	}
	if (k == -E2BIG)
		k = step_error_set(err, "ranges", k, "more than %d ranges in force",
				   ROTATOR_MAX_RANGES);
	else if (k < 0)
		k = step_error_set(err, "ranges", k, "%s", "");
	if (k >= 0)
		k = rotator_ranges_commit(sock, st, &map, holes, n_never, err);
	rotator_range_map_free(&map);
	return k;
}
