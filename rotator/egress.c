/* SPDX-License-Identifier: MIT */
/* Egress= rules as disjoint boxes (see rotator_internal.h). */
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "rotator_internal.h"
#include "macro.h"

/* An address as a big-endian number of len bytes. */
struct addr_num {
	uint8_t b[16];
};

static int cmp_num(const struct addr_num *a, const struct addr_num *b, size_t len)
{
	return memcmp(a->b, b->b, len);
}

static bool is_max(const struct addr_num *a, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (a->b[i] != 0xff)
			return false;
	return true;
}

static void add_one(struct addr_num *a, size_t len)
{
	for (size_t i = len; i-- > 0;)
		if (++a->b[i] != 0)
			return;
}

static void sub_one(struct addr_num *a, size_t len)
{
	for (size_t i = len; i-- > 0;)
		if (a->b[i]-- != 0)
			return;
}

/* The rule's destination range [first, last]. */
static void rule_range(const struct rotator_egress *e, size_t len, struct addr_num *first,
		       struct addr_num *last)
{
	unsigned prefix = e->has_destination ? e->prefix_len : 0;

	memset(first, 0, sizeof(*first));
	if (e->has_destination)
		memcpy(first->b, len == 4 ? (const void *)&e->destination.in : &e->destination.in6,
		       len);
	*last = *first;
	for (size_t bit = prefix; bit < len * 8; bit++) {
		first->b[bit / 8] &= (uint8_t) ~(0x80u >> (bit % 8));
		last->b[bit / 8] |= (uint8_t)(0x80u >> (bit % 8));
	}
}

struct port_range {
	uint16_t first, last;
};

static int cmp_ports(const void *a, const void *b)
{
	const struct port_range *x = a, *y = b;

	return x->first != y->first ? (x->first < y->first ? -1 : 1)
				    : (x->last < y->last ? -1 : x->last > y->last);
}

static size_t merge_ports(struct port_range *p, size_t n)
{
	size_t out = 0;

	qsort(p, n, sizeof(*p), cmp_ports);
	for (size_t i = 0; i < n; i++) {
		if (out && (uint32_t)p[out - 1].last + 1 >= p[i].first) {
			if (p[i].last > p[out - 1].last)
				p[out - 1].last = p[i].last;
			continue;
		}
		p[out++] = p[i];
	}
	return out;
}

static int cmp_cut(const void *a, const void *b, void *len)
{
	return cmp_num(a, b, *(size_t *)len);
}

static int emit(struct egress_box *boxes, size_t max, size_t *n, uint8_t proto, size_t len,
		const struct addr_num *first, const struct addr_num *last,
		const struct port_range *ports, size_t n_ports)
{
	for (size_t i = 0; i < n_ports; i++) {
		struct egress_box *b;

		if (*n >= max)
			return -E2BIG;
		b = &boxes[(*n)++];
		memset(b, 0, sizeof(*b));
		b->proto = proto;
		memcpy(b->addr_first, first->b, len);
		memcpy(b->addr_last, last->b, len);
		b->port_first = ports[i].first;
		b->port_last = ports[i].last;
	}
	return 0;
}

static int boxes_of_proto(const struct rotator_egress *rules, size_t n_rules, int family,
			  uint8_t proto, struct egress_box *boxes, size_t max, size_t *n)
{
	size_t len = family == AF_INET ? 4 : 16, n_cuts = 0, n_prev = 0;
	_cleanup_free_ struct addr_num *cuts = calloc(2 * n_rules + 1, sizeof(*cuts));
	_cleanup_free_ struct port_range *cur = calloc(n_rules + 1, sizeof(*cur));
	_cleanup_free_ struct port_range *prev = calloc(n_rules + 1, sizeof(*prev));
	struct addr_num run_first = {}, run_last = {};
	int r;

	if (!cuts || !cur || !prev)
		return -ENOMEM;
	for (size_t k = 0; k < n_rules; k++) {
		struct addr_num first, last;

		if (rules[k].proto != proto ||
		    (rules[k].has_destination && rules[k].destination.family != family))
			continue;
		rule_range(&rules[k], len, &first, &last);
		cuts[n_cuts++] = first;
		if (!is_max(&last, len)) {
			add_one(&last, len);
			cuts[n_cuts++] = last;
		}
	}
	if (!n_cuts)
		return 0;
	qsort_r(cuts, n_cuts, sizeof(*cuts), cmp_cut, &len);
	for (size_t i = 0; i < n_cuts; i++) {
		struct addr_num piece_last;
		size_t n_cur = 0;

		if (i + 1 < n_cuts && cmp_num(&cuts[i], &cuts[i + 1], len) == 0)
			continue; /* the same cut twice: the later one makes the piece */
		/* the elementary piece [cuts[i], next cut - 1] (or to the end) */
		if (i + 1 < n_cuts) {
			piece_last = cuts[i + 1];
			sub_one(&piece_last, len);
		} else
			memset(piece_last.b, 0xff, len);
		for (size_t k = 0; k < n_rules; k++) {
			struct addr_num first, last;

			if (rules[k].proto != proto ||
			    (rules[k].has_destination && rules[k].destination.family != family))
				continue;
			rule_range(&rules[k], len, &first, &last);
			if (cmp_num(&first, &cuts[i], len) <= 0 &&
			    cmp_num(&cuts[i], &last, len) <= 0)
				cur[n_cur++] =
				    (struct port_range){rules[k].port_first, rules[k].port_last};
		}
		n_cur = merge_ports(cur, n_cur);
		if (n_prev && n_cur == n_prev && memcmp(cur, prev, n_cur * sizeof(*cur)) == 0) {
			run_last = piece_last; /* the same ports: extend the run */
			continue;
		}
		r = emit(boxes, max, n, proto, len, &run_first, &run_last, prev, n_prev);
		if (r < 0)
			return r;
		memcpy(prev, cur, n_cur * sizeof(*cur));
		n_prev = n_cur;
		run_first = cuts[i];
		run_last = piece_last;
	}
	return emit(boxes, max, n, proto, len, &run_first, &run_last, prev, n_prev);
}

int egress_boxes(const struct rotator_egress *rules, size_t n_rules, int family,
		 struct egress_box *boxes, size_t max, size_t *ret_n)
{
	static const uint8_t protos[] = {IPPROTO_TCP, IPPROTO_UDP};
	size_t n = 0;
	int r;

	if (family != AF_INET && family != AF_INET6)
		return -EINVAL;
	for (size_t k = 0; k < n_rules; k++) {
		const struct rotator_egress *e = &rules[k];

		if ((e->proto != IPPROTO_TCP && e->proto != IPPROTO_UDP) || e->port_first == 0 ||
		    e->port_first > e->port_last ||
		    (e->has_destination &&
		     ((e->destination.family != AF_INET && e->destination.family != AF_INET6) ||
		      e->prefix_len > (e->destination.family == AF_INET ? 32u : 128u))))
			return -EINVAL;
	}
	for (size_t i = 0; i < ELEMENTSOF(protos); i++) {
		r = boxes_of_proto(rules, n_rules, family, protos[i], boxes, max, &n);
		if (r < 0)
			return r;
	}
	*ret_n = n;
	return 0;
}
