/* SPDX-License-Identifier: MIT */
/* Blocked ranges as disjoint intervals (see rotator_internal.h, "ranges"):
 * the decisions in force, each a range with its own end, and the disjoint
 * segments an interval set can hold, each blocked until the latest end of
 * the decisions that cover it, minus the addresses that are never blocked.
 * Pure: no netlink, no clock; the unit test drives it alone. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "macro.h"
#include "rotator_internal.h"

static range_u128 family_max(int family)
{
	return family == AF_INET ? (range_u128)UINT32_MAX : ~(range_u128)0;
}

range_u128 rotator_range_value(const struct rotator_addr *addr)
{
	const uint8_t *b = addr->family == AF_INET ? (const uint8_t *)&addr->in : addr->in6.s6_addr;
	size_t len = addr->family == AF_INET ? 4 : 16;
	range_u128 v = 0;

	for (size_t i = 0; i < len; i++)
		v = v << 8 | b[i];
	return v;
}

void rotator_range_key(int family, range_u128 value, uint8_t out[16])
{
	size_t len = family == AF_INET ? 4 : 16;

	for (size_t i = len; i-- > 0;) {
		out[i] = (uint8_t)value;
		value >>= 8;
	}
}

int rotator_range_from_prefix(const struct rotator_addr *addr, unsigned prefix_len,
			      range_u128 *ret_start, range_u128 *ret_end)
{
	unsigned bits = addr->family == AF_INET ? 32 : addr->family == AF_INET6 ? 128 : 0;
	range_u128 host;

	if (!bits || prefix_len > bits)
		return -EINVAL;
	host = prefix_len == 0	    ? family_max(addr->family)
	       : prefix_len == bits ? 0
				    : family_max(addr->family) >> prefix_len;
	*ret_start = rotator_range_value(addr) & ~host & family_max(addr->family);
	*ret_end = *ret_start | host;
	return 0;
}

static int map_reserve(struct rotator_range_map *m, size_t more)
{
	struct rotator_range_decision *grown;
	size_t cap;

	if (m->n + more <= m->cap)
		return 0;
	cap = m->cap * 2 > m->n + more + 16 ? m->cap * 2 : m->n + more + 16;
	grown = realloc(m->d, cap * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	m->d = grown;
	m->cap = cap;
	return 0;
}

void rotator_range_map_free(struct rotator_range_map *m)
{
	free(m->d);
	*m = (struct rotator_range_map){0};
}

int rotator_range_map_copy(const struct rotator_range_map *m, struct rotator_range_map *ret)
{
	struct rotator_range_map c = {0};

	if (m->n) {
		c.d = malloc(m->n * sizeof(*c.d));
		if (!c.d)
			return -ENOMEM;
		memcpy(c.d, m->d, m->n * sizeof(*c.d));
	}
	c.n = c.cap = m->n;
	*ret = c;
	return 0;
}

/* The same range decided again takes the new end, except when the two differ
 * by less than ROTATOR_RANGE_SAME_MS: the same decision resent (a resync),
 * which must not rewrite the set. */
int rotator_range_ban(struct rotator_range_map *m, int family, range_u128 start, range_u128 end,
		      uint64_t until_ms)
{
	for (size_t i = 0; i < m->n; i++) {
		struct rotator_range_decision *d = &m->d[i];
		uint64_t diff;

		if (d->adopted || d->family != family || d->start != start || d->end != end)
			continue;
		diff = d->until_ms > until_ms ? d->until_ms - until_ms : until_ms - d->until_ms;
		if (diff >= ROTATOR_RANGE_SAME_MS)
			d->until_ms = until_ms;
		return 0;
	}
	if (m->n >= ROTATOR_MAX_RANGES)
		return -E2BIG;
	if (map_reserve(m, 1) < 0)
		return -ENOMEM;
	m->d[m->n++] = (struct rotator_range_decision){
	    .family = family, .start = start, .end = end, .until_ms = until_ms};
	return 0;
}

/* The decision of exactly this range goes; what other decisions cover stays.
 * Adopted pieces (their decisions unknown) lose the part inside the range:
 * the decision they came from is the one deleted, or overlaps it. */
int rotator_range_unban(struct rotator_range_map *m, int family, range_u128 start, range_u128 end)
{
	size_t n = m->n;

	for (size_t i = 0; i < n; i++) {
		struct rotator_range_decision *d = &m->d[i];

		if (d->family != family || d->end < start || d->start > end)
			continue;
		if (!d->adopted) {
			if (d->start == start && d->end == end)
				d->until_ms = 0; /* removed below */
			continue;
		}
		if (d->start < start && d->end > end) {
			/* split: the part after the range becomes a new piece */
			struct rotator_range_decision after = *d;

			if (map_reserve(m, 1) < 0)
				return -ENOMEM;
			d = &m->d[i];
			after.start = end + 1;
			d->end = start - 1;
			m->d[m->n++] = after;
		} else if (d->start < start)
			d->end = start - 1;
		else if (d->end > end)
			d->start = end + 1;
		else
			d->until_ms = 0;
	}
	rotator_range_expire(m, 1);
	return 0;
}

void rotator_range_expire(struct rotator_range_map *m, uint64_t now_ms)
{
	size_t k = 0;

	for (size_t i = 0; i < m->n; i++)
		if (m->d[i].until_ms >= now_ms && m->d[i].until_ms)
			m->d[k++] = m->d[i];
	m->n = k;
}

static int decision_start_cmp(const void *x, const void *y)
{
	const struct rotator_range_decision *a = *(const struct rotator_range_decision *const *)x;
	const struct rotator_range_decision *b = *(const struct rotator_range_decision *const *)y;

	return a->start < b->start ? -1 : a->start > b->start;
}

static int value_cmp(const void *x, const void *y)
{
	range_u128 a = *(const range_u128 *)x, b = *(const range_u128 *)y;

	return a < b ? -1 : a > b;
}

/* A max-heap of the decisions that cover the sweep's point, by end time;
 * ones behind the point are dropped lazily when they come to the top. */
struct heap {
	const struct rotator_range_decision **d;
	size_t n;
};

static void heap_push(struct heap *h, const struct rotator_range_decision *d)
{
	size_t i = h->n++;

	h->d[i] = d;
	while (i > 0 && h->d[(i - 1) / 2]->until_ms < h->d[i]->until_ms) {
		const struct rotator_range_decision *t = h->d[i];

		h->d[i] = h->d[(i - 1) / 2];
		h->d[(i - 1) / 2] = t;
		i = (i - 1) / 2;
	}
}

static void heap_pop(struct heap *h)
{
	size_t i = 0;

	h->d[0] = h->d[--h->n];
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, top = i;
		const struct rotator_range_decision *t;

		if (l < h->n && h->d[l]->until_ms > h->d[top]->until_ms)
			top = l;
		if (r < h->n && h->d[r]->until_ms > h->d[top]->until_ms)
			top = r;
		if (top == i)
			return;
		t = h->d[i];
		h->d[i] = h->d[top];
		h->d[top] = t;
		i = top;
	}
}

static int push_segment(struct rotator_range_segment **list, size_t *n, size_t *cap,
			const struct rotator_range_segment *s)
{
	struct rotator_range_segment *last = *n ? &(*list)[*n - 1] : NULL;

	/* adjacent with the same end time: one interval */
	if (last && last->family == s->family && last->until_ms == s->until_ms &&
	    last->end + 1 == s->start && last->end != family_max(s->family)) {
		last->end = s->end;
		return 0;
	}
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 16;
		struct rotator_range_segment *grown = realloc(*list, c * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		*list = grown;
		*cap = c;
	}
	(*list)[(*n)++] = *s;
	return 0;
}

/* s minus the holes (sorted by start, disjoint), appended piece by piece. */
static int push_minus_holes(struct rotator_range_segment **list, size_t *n, size_t *cap,
			    struct rotator_range_segment s, const struct rotator_range_hole *holes,
			    size_t n_holes)
{
	for (size_t i = 0; i < n_holes; i++) {
		const struct rotator_range_hole *h = &holes[i];

		if (h->end < s.start)
			continue;
		if (h->start > s.end)
			break;
		if (h->start > s.start) {
			struct rotator_range_segment before = s;
			int r;

			before.end = h->start - 1;
			r = push_segment(list, n, cap, &before);
			if (r < 0)
				return r;
		}
		if (h->end >= s.end)
			return 0;
		s.start = h->end + 1;
	}
	return push_segment(list, n, cap, &s);
}

static int hole_cmp(const void *x, const void *y)
{
	const struct rotator_range_hole *a = x, *b = y;

	return a->start < b->start ? -1 : a->start > b->start;
}

/* The holes of one family, sorted and merged. */
static int holes_of(int family, const struct rotator_range_hole *holes, size_t n_holes,
		    struct rotator_range_hole **ret, size_t *ret_n)
{
	struct rotator_range_hole *h = calloc(n_holes + 1, sizeof(*h));
	size_t n = 0, k = 0;

	if (!h)
		return -ENOMEM;
	for (size_t i = 0; i < n_holes; i++)
		if (holes[i].family == family)
			h[n++] = holes[i];
	qsort(h, n, sizeof(*h), hole_cmp);
	for (size_t i = 0; i < n; i++) {
		if (k && (h[i].start <= h[k - 1].end ||
			  (h[k - 1].end != family_max(family) && h[i].start == h[k - 1].end + 1))) {
			if (h[i].end > h[k - 1].end)
				h[k - 1].end = h[i].end;
			continue;
		}
		h[k++] = h[i];
	}
	*ret = h;
	*ret_n = k;
	return 0;
}

/* One family: a sweep over the points where coverage can change (each
 * decision's start and the address after its end); between two of them the
 * same decisions cover every address, and the segment's end time is their
 * latest. */
static int segments_of(const struct rotator_range_map *m, int family,
		       const struct rotator_range_hole *holes, size_t n_holes, uint64_t now_ms,
		       struct rotator_range_segment **list, size_t *n, size_t *cap)
{
	_cleanup_free_ const struct rotator_range_decision **sorted = NULL;
	_cleanup_free_ const struct rotator_range_decision **heap_space = NULL;
	_cleanup_free_ range_u128 *cuts = NULL;
	_cleanup_free_ struct rotator_range_hole *fholes = NULL;
	size_t n_sorted = 0, n_cuts = 0, n_fholes = 0, next = 0;
	struct heap heap;
	int r;

	sorted = calloc(m->n + 1, sizeof(*sorted));
	heap_space = calloc(m->n + 1, sizeof(*heap_space));
	cuts = calloc(2 * m->n + 1, sizeof(*cuts));
	if (!sorted || !heap_space || !cuts)
		return -ENOMEM;
	r = holes_of(family, holes, n_holes, &fholes, &n_fholes);
	if (r < 0)
		return r;
	for (size_t i = 0; i < m->n; i++) {
		const struct rotator_range_decision *d = &m->d[i];

		if (d->family != family || d->until_ms <= now_ms || d->start > d->end)
			continue;
		sorted[n_sorted++] = d;
		cuts[n_cuts++] = d->start;
		if (d->end != family_max(family))
			cuts[n_cuts++] = d->end + 1;
	}
	qsort(sorted, n_sorted, sizeof(*sorted), decision_start_cmp);
	qsort(cuts, n_cuts, sizeof(*cuts), value_cmp);
	heap = (struct heap){.d = heap_space};
	for (size_t c = 0; c < n_cuts; c++) {
		range_u128 at = cuts[c];
		struct rotator_range_segment s;

		if (c && cuts[c - 1] == at)
			continue;
		while (next < n_sorted && sorted[next]->start <= at)
			heap_push(&heap, sorted[next++]);
		while (heap.n && heap.d[0]->end < at)
			heap_pop(&heap);
		if (!heap.n)
			continue;
		s = (struct rotator_range_segment){
		    .family = family, .start = at, .until_ms = heap.d[0]->until_ms};
		/* up to the next cut point, or the end of the space */
		s.end = family_max(family);
		for (size_t e = c + 1; e < n_cuts; e++)
			if (cuts[e] != at) {
				s.end = cuts[e] - 1;
				break;
			}
		r = push_minus_holes(list, n, cap, s, fholes, n_fholes);
		if (r < 0)
			return r;
	}
	return 0;
}

int rotator_range_segments(const struct rotator_range_map *m,
			   const struct rotator_range_hole *holes, size_t n_holes, uint64_t now_ms,
			   struct rotator_range_segment **ret, size_t *ret_n)
{
	struct rotator_range_segment *list = NULL;
	size_t n = 0, cap = 0;
	int r;

	r = segments_of(m, AF_INET, holes, n_holes, now_ms, &list, &n, &cap);
	if (r >= 0)
		r = segments_of(m, AF_INET6, holes, n_holes, now_ms, &list, &n, &cap);
	if (r < 0) {
		free(list);
		return r;
	}
	*ret = list;
	*ret_n = n;
	return 0;
}

static bool segment_eq(const struct rotator_range_segment *a, const struct rotator_range_segment *b)
{
	return a->family == b->family && a->start == b->start && a->end == b->end &&
	       a->until_ms == b->until_ms;
}

static int segment_cmp(const struct rotator_range_segment *a, const struct rotator_range_segment *b)
{
	if (a->family != b->family)
		return a->family < b->family ? -1 : 1;
	if (a->start != b->start)
		return a->start < b->start ? -1 : 1;
	if (a->end != b->end)
		return a->end < b->end ? -1 : 1;
	return a->until_ms < b->until_ms ? -1 : a->until_ms > b->until_ms;
}

/* Both lists are sorted by family then start (rotator_range_segments'
 * order): a merge. */
int rotator_range_diff(const struct rotator_range_segment *old, size_t n_old,
		       const struct rotator_range_segment *new_list, size_t n_new,
		       struct rotator_range_segment **ret_del, size_t *ret_n_del,
		       struct rotator_range_segment **ret_add, size_t *ret_n_add)
{
	struct rotator_range_segment *del = calloc(n_old + 1, sizeof(*del));
	struct rotator_range_segment *add = calloc(n_new + 1, sizeof(*add));
	size_t i = 0, j = 0, nd = 0, na = 0;

	if (!del || !add) {
		free(del);
		free(add);
		return -ENOMEM;
	}
	while (i < n_old || j < n_new) {
		if (i < n_old && j < n_new && segment_eq(&old[i], &new_list[j])) {
			i++;
			j++;
		} else if (j == n_new || (i < n_old && segment_cmp(&old[i], &new_list[j]) < 0))
			del[nd++] = old[i++];
		else
			add[na++] = new_list[j++];
	}
	*ret_del = del;
	*ret_n_del = nd;
	*ret_add = add;
	*ret_n_add = na;
	return 0;
}

static int elem_cmp(const void *x, const void *y)
{
	const struct rotator_range_elem *a = x, *b = y;

	if (a->value != b->value)
		return a->value < b->value ? -1 : 1;
	/* at one address an end (of the interval before) comes first */
	return (int)b->end - (int)a->end;
}

int rotator_range_from_elems(int family, struct rotator_range_elem *elems, size_t n,
			     uint64_t now_ms, struct rotator_range_map *m)
{
	if (n == 0)
		return 0; /* an empty set (elems may be NULL) */
	qsort(elems, n, sizeof(*elems), elem_cmp);
	for (size_t i = 0; i < n; i++) {
		const struct rotator_range_elem *s = &elems[i];
		range_u128 end = family_max(family);

		if (s->end || !s->expires_in_ms)
			continue; /* a stray end, or one with no time: not ours */
		if (i + 1 < n && elems[i + 1].end)
			end = elems[i + 1].value - 1;
		else if (i + 1 < n)
			continue; /* two starts in a row: not a layout we wrote */
		if (m->n >= ROTATOR_MAX_RANGES)
			return -E2BIG;
		if (map_reserve(m, 1) < 0)
			return -ENOMEM;
		m->d[m->n++] =
		    (struct rotator_range_decision){.family = family,
						    .start = s->value,
						    .end = end,
						    .until_ms = now_ms + s->expires_in_ms,
						    .adopted = true};
	}
	return 0;
}
