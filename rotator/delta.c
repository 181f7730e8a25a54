/* SPDX-License-Identifier: MIT */
/* Element states of `inet mtd` and the delta between two (see rotator_internal.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <linux/netfilter.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rotator_internal.h"
#include "macro.h"

static const struct {
	const char *name;
	bool map, interval;
	uint8_t key_cap, data_cap; /* the longest key and data its elements have */
} set_info[RS_N_SETS] = {
    [RS_SET_SVC4] = {.name = RS_BANK_NAME(RS_SVC4, 0), .map = true, .key_cap = 8, .data_cap = 8},
    [RS_SET_SVC6] = {.name = RS_BANK_NAME(RS_SVC6, 0), .map = true, .key_cap = 8, .data_cap = 20},
    [RS_SET_LOCAL4] = {.name = RS_BANK_NAME(RS_LOCAL4, 0),
		       .map = true,
		       .key_cap = 8,
		       .data_cap = 8},
    [RS_SET_LOCAL6] = {.name = RS_BANK_NAME(RS_LOCAL6, 0),
		       .map = true,
		       .key_cap = 8,
		       .data_cap = 20},
    [RS_SET_DECOYS] = {.name = RS_BANK_NAME(RS_DECOYS, 0),
		       .map = false,
		       .key_cap = 8,
		       .data_cap = 0},
    [RS_SET_GATED] = {.name = RS_BANK_NAME(RS_GATED, 0), .map = false, .key_cap = 8, .data_cap = 0},
    [RS_SET_KNOCK] = {.name = RS_BANK_NAME(RS_KNOCK, 0), .map = false, .key_cap = 8, .data_cap = 0},
    [RS_SET_SVC4_1] = {.name = RS_BANK_NAME(RS_SVC4, 1), .map = true, .key_cap = 8, .data_cap = 8},
    [RS_SET_SVC6_1] = {.name = RS_BANK_NAME(RS_SVC6, 1), .map = true, .key_cap = 8, .data_cap = 20},
    [RS_SET_LOCAL4_1] = {.name = RS_BANK_NAME(RS_LOCAL4, 1),
			 .map = true,
			 .key_cap = 8,
			 .data_cap = 8},
    [RS_SET_LOCAL6_1] = {.name = RS_BANK_NAME(RS_LOCAL6, 1),
			 .map = true,
			 .key_cap = 8,
			 .data_cap = 20},
    [RS_SET_DECOYS_1] = {.name = RS_BANK_NAME(RS_DECOYS, 1),
			 .map = false,
			 .key_cap = 8,
			 .data_cap = 0},
    [RS_SET_GATED_1] = {.name = RS_BANK_NAME(RS_GATED, 1),
			.map = false,
			.key_cap = 8,
			.data_cap = 0},
    [RS_SET_KNOCK_1] = {.name = RS_BANK_NAME(RS_KNOCK, 1),
			.map = false,
			.key_cap = 8,
			.data_cap = 0},
    [RS_SET_ACTIVE0] = {.name = RS_ACTIVE0, .map = false, .key_cap = 4, .data_cap = 0},
    [RS_SET_ACTIVE1] = {.name = RS_ACTIVE1, .map = false, .key_cap = 4, .data_cap = 0},
    [RS_SET_BACKENDS4] = {.name = RS_BACKENDS4, .map = false, .key_cap = 12, .data_cap = 0},
    [RS_SET_BACKENDS6] = {.name = RS_BACKENDS6, .map = false, .key_cap = 24, .data_cap = 0},
    [RS_SET_INSTANCES4] = {.name = RS_INSTANCES4, .map = false, .key_cap = 4, .data_cap = 0},
    [RS_SET_INSTANCES6] = {.name = RS_INSTANCES6, .map = false, .key_cap = 16, .data_cap = 0},
    [RS_SET_INGRESS4] = {.name = RS_INGRESS4, .map = false, .key_cap = 12, .data_cap = 0},
    [RS_SET_INGRESS6] = {.name = RS_INGRESS6, .map = false, .key_cap = 24, .data_cap = 0},
    [RS_SET_EGRESS4] =
	{.name = RS_EGRESS4, .map = false, .interval = true, .key_cap = 16, .data_cap = 16},
    [RS_SET_EGRESS6] =
	{.name = RS_EGRESS6, .map = false, .interval = true, .key_cap = 40, .data_cap = 40},
    [RS_SET_DEAD4] = {.name = RS_DEAD4, .map = false, .key_cap = 4, .data_cap = 0},
    [RS_SET_DEAD6] = {.name = RS_DEAD6, .map = false, .key_cap = 16, .data_cap = 0},
};

const char *delta_set_name(enum rs_set set)
{
	return set < RS_N_SETS ? set_info[set].name : "?";
}

bool delta_set_is_map(enum rs_set set)
{
	return set < RS_N_SETS && set_info[set].map;
}

bool delta_set_is_interval(enum rs_set set)
{
	return set < RS_N_SETS && set_info[set].interval;
}

bool delta_set_is_instance(enum rs_set set)
{
	return set >= RS_FIRST_INSTANCE_SET && set < RS_N_SETS;
}

/* --- encodings ------------------------------------------------------------- */

size_t delta_key_nfproto(uint8_t *b, uint8_t nfproto)
{
	memset(b, 0, 4);
	b[0] = nfproto;
	return 1;
}

size_t delta_key_proto_port(uint8_t *b, uint8_t proto, uint16_t port)
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

static const char *proto_text(uint8_t proto)
{
	return proto == IPPROTO_TCP ? "tcp" : proto == IPPROTO_UDP ? "udp" : "?";
}

static void addr_port_text(const uint8_t *b, size_t len, char *buf, size_t n)
{
	char a[INET6_ADDRSTRLEN] = "?";

	inet_ntop(len == 8 ? AF_INET : AF_INET6, b, a, sizeof(a));
	snprintf(buf, n, "%s . %u", a, (unsigned)(b[len - 4] << 8 | b[len - 3]));
}

static void addr_text(const uint8_t *b, size_t len, char *buf, size_t n)
{
	if (!inet_ntop(len == 4 ? AF_INET : AF_INET6, b, buf, (socklen_t)n))
		snprintf(buf, n, "?");
}

static void egress_text(const struct rs_elem *e, char *buf, size_t len)
{
	size_t al = e->key_len == 16 ? 4 : 16;
	const uint8_t *k = rs_elem_key(e), *end = rs_elem_data(e);
	char src[INET6_ADDRSTRLEN], a[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN];
	unsigned p0 = (unsigned)(k[2 * al + 4] << 8 | k[2 * al + 5]);
	unsigned p1 = (unsigned)(end[2 * al + 4] << 8 | end[2 * al + 5]);

	addr_text(k, al, src, sizeof(src));
	addr_text(k + al + 4, al, a, sizeof(a));
	addr_text(end + al + 4, al, b, sizeof(b));
	snprintf(buf, len, "%s . %s . %s-%s . %u-%u", src, proto_text(k[al]), a, b, p0, p1);
}

void delta_elem_text(enum rs_set set, const struct rs_elem *e, char *buf, size_t len)
{
	char ap[INET6_ADDRSTRLEN + 16];

	switch (set) {
	case RS_SET_INSTANCES4:
	case RS_SET_INSTANCES6:
	case RS_SET_DEAD4:
	case RS_SET_DEAD6:
		addr_text(rs_elem_key(e), e->key_len, buf, len);
		return;
	case RS_SET_INGRESS4:
	case RS_SET_INGRESS6: {
		size_t al = e->key_len - 8u;

		addr_text(rs_elem_key(e), al, ap, sizeof(ap));
		snprintf(buf, len, "%s . %s . %u", ap, proto_text(rs_elem_key(e)[al]),
			 (unsigned)(rs_elem_key(e)[al + 4] << 8 | rs_elem_key(e)[al + 5]));
		return;
	}
	case RS_SET_EGRESS4:
	case RS_SET_EGRESS6:
		egress_text(e, buf, len);
		return;
	case RS_SET_ACTIVE0:
	case RS_SET_ACTIVE1:
		snprintf(buf, len, "%s", rs_elem_key(e)[0] == NFPROTO_IPV4 ? "ipv4" : "ipv6");
		return;
	default:
		break;
	}

	if (set == RS_SET_BACKENDS4 || set == RS_SET_BACKENDS6) {
		addr_port_text(rs_elem_key(e) + 4, e->key_len - 4u, ap, sizeof(ap));
		snprintf(buf, len, "%s . %s", proto_text(rs_elem_key(e)[0]), ap);
		return;
	}
	if (!e->data_len) {
		snprintf(buf, len, "%s . %u", proto_text(rs_elem_key(e)[0]),
			 (unsigned)(rs_elem_key(e)[4] << 8 | rs_elem_key(e)[5]));
		return;
	}
	addr_port_text(rs_elem_data(e), e->data_len, ap, sizeof(ap));
	snprintf(buf, len, "%s . %u : %s", proto_text(rs_elem_key(e)[0]),
		 (unsigned)(rs_elem_key(e)[4] << 8 | rs_elem_key(e)[5]), ap);
}

/* --- hash tables -------------------------------------------------------------- */

/* An element being built: the whole room, zero beyond the lengths. */
struct elem_buf {
	uint8_t key[RS_KEY_MAX];
	uint8_t data[RS_DATA_MAX];
	uint8_t key_len, data_len;
	uint32_t owner;
};

/* murmur3's 64-bit finaliser over the key words (key: key_cap bytes): every
 * input bit reaches the low bits the table index uses */
static uint64_t hash_key(const uint8_t *key, size_t key_cap)
{
	uint64_t w[RS_KEY_MAX / 8] = {0}, h;

	memcpy(w, key, key_cap);
	h = w[0] ^ (w[1] * 0x9e3779b97f4a7c15ULL) ^ (w[2] * 0xc2b2ae3d27d4eb4fULL) ^
	    (w[3] * 0x165667b19e3779f9ULL) ^ (w[4] * 0x27d4eb2f165667c5ULL);
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	return h ^ (h >> 33);
}

static struct rs_elem *table_elem(struct rs_table *t, size_t i)
{
	return (struct rs_elem *)(void *)(t->elems + i * t->stride);
}

/* Slot of key (key_cap bytes, zero beyond its length): its element's slot,
 * or the free slot where it would go. */
static size_t table_probe(const struct rs_table *t, const uint8_t *key)
{
	size_t mask = t->n_slots - 1, i = (size_t)hash_key(key, t->key_cap) & mask;

	for (;; i = (i + 1) & mask) {
		uint32_t s = t->slots[i];

		if (!s || memcmp(rs_table_elem(t, s - 1)->bytes, key, t->key_cap) == 0)
			return i;
	}
}

/* The record size of set's elements, the first time its table is used. */
static void table_setup(struct rs_table *t, enum rs_set set)
{
	if (t->stride)
		return;
	t->key_cap = set_info[set].key_cap;
	t->data_cap = set_info[set].data_cap;
	t->stride = (sizeof(struct rs_elem) + t->key_cap + t->data_cap + 3) & ~(size_t)3;
}

static int table_reserve(struct rs_table *t, size_t n)
{
	size_t slots = 64;

	if (n > t->cap) {
		uint8_t *e = realloc(t->elems, n * t->stride);

		if (!e)
			return -ENOMEM;
		t->elems = e;
		t->cap = n;
	}
	while (slots < 2 * n)
		slots *= 2;
	if (slots > t->n_slots) {
		uint32_t *s = malloc(slots * sizeof(*s));

		if (!s)
			return -ENOMEM;
		free(t->slots);
		t->slots = s;
		t->n_slots = slots;
	}
	memset(t->slots, 0, t->n_slots * sizeof(*t->slots));
	t->n = 0;
	return 0;
}

/* Insert e (fully built, its lengths within the set's) unless its key is
 * there: returns the element with that key (the new one, or the one already
 * there). Capacity is reserved. */
static const struct rs_elem *table_insert(struct rs_table *t, const struct elem_buf *e,
					  bool *ret_dup)
{
	size_t i = table_probe(t, e->key);
	struct rs_elem *r;

	if (t->slots[i]) {
		*ret_dup = true;
		return rs_table_elem(t, t->slots[i] - 1);
	}
	r = table_elem(t, t->n);
	r->owner = e->owner;
	r->key_len = e->key_len;
	r->data_len = e->data_len;
	r->key_cap = t->key_cap;
	r->data_cap = t->data_cap;
	memcpy(r->bytes, e->key, t->key_cap);
	memcpy(r->bytes + t->key_cap, e->data, t->data_cap);
	t->slots[i] = (uint32_t)++t->n;
	*ret_dup = false;
	return r;
}

/* Room for n elements, keeping those there (rehashed if the slots grow). */
static int table_grow(struct rs_table *t, size_t n)
{
	size_t slots = t->n_slots ? t->n_slots : 64;

	if (n > t->cap) {
		uint8_t *e = realloc(t->elems, n * t->stride);

		if (!e)
			return -ENOMEM;
		t->elems = e;
		t->cap = n;
	}
	while (slots < 2 * n)
		slots *= 2;
	if (slots > t->n_slots) {
		uint32_t *s = calloc(slots, sizeof(*s));

		if (!s)
			return -ENOMEM;
		free(t->slots);
		t->slots = s;
		t->n_slots = slots;
		for (size_t i = 0; i < t->n; i++)
			t->slots[table_probe(t, rs_table_elem(t, i)->bytes)] = (uint32_t)i + 1;
	}
	return 0;
}

const struct rs_elem *delta_state_find(const struct rs_state *state, enum rs_set set,
				       const uint8_t *key, size_t key_len)
{
	const struct rs_table *t;
	uint8_t k[RS_KEY_MAX] = {};
	size_t i;

	if (set >= RS_N_SETS)
		return NULL;
	t = &state->sets[set];
	if (!t->n || key_len > t->key_cap)
		return NULL;
	memcpy(k, key, key_len);
	i = table_probe(t, k);
	return t->slots[i] ? rs_table_elem(t, t->slots[i] - 1) : NULL;
}

const char *delta_state_owner(const struct rs_state *state, const struct rs_elem *e)
{
	return e && e->owner < state->n_names ? state->names[e->owner] : "?";
}

/* --- states ----------------------------------------------------------------- */

void delta_state_clear(struct rs_state *state)
{
	for (size_t s = 0; s < RS_N_SETS; s++) {
		struct rs_table *t = &state->sets[s];

		if (t->n)
			memset(t->slots, 0, t->n_slots * sizeof(*t->slots));
		t->n = 0;
	}
	state->n_names = 0;
}

void delta_state_free(struct rs_state *state)
{
	for (size_t s = 0; s < RS_N_SETS; s++) {
		free(state->sets[s].elems);
		free(state->sets[s].slots);
	}
	free(state->names);
	*state = (struct rs_state){};
}

size_t delta_state_count(const struct rs_state *state)
{
	size_t n = 0;

	for (size_t s = 0; s < RS_N_SETS; s++)
		n += state->sets[s].n;
	return n;
}

static void want_services(size_t *want, const struct rotator_service *svcs, size_t n, unsigned bank)
{
	for (size_t i = 0; i < n; i++) {
		const struct rotator_service *s = &svcs[i];
		bool v4 = s->backend.family == AF_INET;

		want[rs_bank_set(v4 ? RS_SET_SVC4 : RS_SET_SVC6, bank)] += 2 + s->n_client_ports;
		if (s->local_access)
			want[rs_bank_set(v4 ? RS_SET_LOCAL4 : RS_SET_LOCAL6, bank)] +=
			    2 + s->n_client_ports;
		if (s->gated)
			want[rs_bank_set(RS_SET_GATED, bank)] += 2 + s->n_client_ports;
		want[rs_bank_set(RS_SET_KNOCK, bank)] += s->n_knock_ports;
		want[v4 ? RS_SET_BACKENDS4 : RS_SET_BACKENDS6]++;
		want[rs_bank_set(RS_SET_DECOYS, bank)] += s->n_decoys;
	}
}

static int state_reserve(struct rs_state *state, const struct rotator_plan *plan,
			 unsigned live_bank)
{
	size_t want[RS_N_SETS] = {[RS_SET_ACTIVE0] = 2, [RS_SET_ACTIVE1] = 2};
	size_t n_names = plan->n_services + plan->n_next + plan->n_instances;
	int r = 0;

	want_services(want, plan->services, plan->n_services, live_bank);
	want_services(want, plan->next, plan->n_next, !live_bank);
	for (size_t i = 0; i < plan->n_instances; i++) {
		const struct rotator_instance *in = &plan->instances[i];

		for (size_t a = 0; a < in->n_addresses; a++) {
			bool v4 = in->addresses[a].family == AF_INET;

			want[v4 ? RS_SET_INSTANCES4 : RS_SET_INSTANCES6]++;
			want[v4 ? RS_SET_INGRESS4 : RS_SET_INGRESS6]++;
			want[v4 ? RS_SET_DEAD4 : RS_SET_DEAD6]++;
			/* a first guess: overlapping rules may need more (grown then) */
			want[v4 ? RS_SET_EGRESS4 : RS_SET_EGRESS6] += in->n_egress;
		}
	}
	for (size_t s = 0; r >= 0 && s < RS_N_SETS; s++) {
		table_setup(&state->sets[s], (enum rs_set)s);
		r = table_reserve(&state->sets[s], want[s]);
	}
	if (r >= 0 && n_names > state->cap_names) {
		char(*names)[ROTATOR_MAX_NAME] = realloc(state->names, n_names * sizeof(*names));

		if (!names)
			r = -ENOMEM;
		else {
			state->names = names;
			state->cap_names = n_names;
		}
	}
	return r;
}

static int map_add(struct rs_state *state, enum rs_set set, const struct rotator_service *s,
		   uint32_t owner, uint16_t port, struct step_error *err)
{
	const struct rs_elem *there;
	struct elem_buf e = {.owner = owner};
	bool dup;

	e.key_len = (uint8_t)delta_key_proto_port(e.key, s->proto, port);
	e.data_len = (uint8_t)put_addr(e.data, &s->backend);
	e.data_len += (uint8_t)put_port(e.data + e.data_len, s->backend_port);
	there = table_insert(&state->sets[set], &e, &dup);
	/* a door that is also another client's door, or the service's port */
	if (!dup || (there->owner == owner &&
		     memcmp(rs_elem_data(there), e.data, state->sets[set].data_cap) == 0))
		return 0;
	if (err) {
		char object[2 * ROTATOR_MAX_NAME + 32];

		snprintf(object, sizeof(object), "service %s: public ports in map %s", s->name,
			 delta_set_name(set));
		step_error_set(err, object, -EEXIST, "port %s/%u is also used by service %s",
			       proto_text(s->proto), port, state->names[there->owner]);
	}
	return -EEXIST;
}

static int instance_error(struct step_error *err, int e, const struct rotator_instance *in,
			  const char *message, const char *arg)
{
	char object[ROTATOR_MAX_NAME + 16];

	snprintf(object, sizeof(object), "instance %s", in->name);
	return step_error_set(err, object, e, "%s%s", message, arg);
}

/* The egress boxes of one instance address: saddr . proto . daddr . port
 * from its first to its last corner. */
static int egress_add(struct rs_state *state, uint32_t owner, const struct rotator_instance *in,
		      const struct rotator_addr *src, struct step_error *err)
{
	bool v4 = src->family == AF_INET;
	struct rs_table *t = &state->sets[v4 ? RS_SET_EGRESS4 : RS_SET_EGRESS6];
	_cleanup_free_ struct egress_box *boxes = NULL;
	size_t n = 0, al = v4 ? 4 : 16;
	int r;

	if (!in->n_egress)
		return 0;
	boxes = calloc(EGRESS_MAX_BOXES, sizeof(*boxes));
	if (!boxes)
		return -ENOMEM;
	r = egress_boxes(in->egress, in->n_egress, src->family, boxes, EGRESS_MAX_BOXES, &n);
	if (r < 0)
		return instance_error(err, r, in, "egress rules: too many or invalid", "");
	r = table_grow(t, t->n + n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		struct elem_buf e = {.owner = owner};
		bool dup;

		put_addr(e.key, src);
		e.key[al] = boxes[i].proto;
		memcpy(e.key + al + 4, boxes[i].addr_first, al);
		put_port(e.key + 2 * al + 4, boxes[i].port_first);
		e.key_len = (uint8_t)(2 * al + 8);
		memcpy(e.data, e.key, e.key_len); /* the end: same source and proto */
		memcpy(e.data + al + 4, boxes[i].addr_last, al);
		put_port(e.data + 2 * al + 4, boxes[i].port_last);
		e.data_len = e.key_len;
		table_insert(t, &e, &dup); /* disjoint boxes: never a duplicate */
	}
	return 0;
}

static int instance_add(struct rs_state *state, uint32_t owner, const struct rotator_instance *in,
			struct step_error *err)
{
	memcpy(state->names[owner], in->name, strlen(in->name) + 1); /* checked */
	for (size_t a = 0; a < in->n_addresses; a++) {
		const struct rotator_addr *addr = &in->addresses[a];
		bool v4 = addr->family == AF_INET, dup = false;
		size_t al = v4 ? 4 : 16;
		struct elem_buf e = {.owner = owner};
		const struct rs_elem *there;
		int r;

		e.key_len = (uint8_t)put_addr(e.key, addr);
		there = in->cut || in->dead
			    ? NULL
			    : table_insert(&state->sets[v4 ? RS_SET_INSTANCES4 : RS_SET_INSTANCES6],
					   &e, &dup);
		if (there && dup)
			return instance_error(err, -EEXIST, in, "address also used by instance ",
					      state->names[there->owner]);
		if (in->port && !in->cut && !in->dead) {
			memset(&e, 0, sizeof(e));
			e.owner = owner;
			put_addr(e.key, addr);
			e.key[al] = in->proto;
			put_port(e.key + al + 4, in->port);
			e.key_len = (uint8_t)(al + 8);
			table_insert(&state->sets[v4 ? RS_SET_INGRESS4 : RS_SET_INGRESS6], &e,
				     &dup);
		}
		r = in->dead ? 0 : egress_add(state, owner, in, addr, err);
		if (r < 0)
			return r;
	}
	return 0;
}

/* A cut or dead instance's addresses into dead4/dead6 (a packet of a flow
 * still tracked to them is answered with a reset), after every instance is
 * in: an address a live instance has now is left out, its flows are the
 * live instance's. */
static void dead_add(struct rs_state *state, uint32_t owner, const struct rotator_instance *in)
{
	if (!in->cut && !in->dead)
		return;
	for (size_t a = 0; a < in->n_addresses; a++) {
		bool v4 = in->addresses[a].family == AF_INET, dup;
		struct elem_buf e = {.owner = owner};

		e.key_len = (uint8_t)put_addr(e.key, &in->addresses[a]);
		if (delta_state_find(state, v4 ? RS_SET_INSTANCES4 : RS_SET_INSTANCES6, e.key,
				     e.key_len))
			continue;
		table_insert(&state->sets[v4 ? RS_SET_DEAD4 : RS_SET_DEAD6], &e, &dup);
	}
}

/* A knock-gated door into the bank's gated set (once). */
static void gate_add(struct rs_state *state, unsigned bank, uint32_t owner, uint8_t proto,
		     uint16_t port)
{
	struct elem_buf g = {.owner = owner};
	bool dup;

	g.key_len = (uint8_t)delta_key_proto_port(g.key, proto, port);
	table_insert(&state->sets[rs_bank_set(RS_SET_GATED, bank)], &g, &dup);
}

/* The services of one bank; their owners (names) from first_owner on. */
static int services_add(struct rs_state *state, const struct rotator_service *svcs, size_t n,
			uint32_t first_owner, unsigned bank, struct step_error *err)
{
	for (size_t i = 0; i < n; i++) {
		const struct rotator_service *s = &svcs[i];
		bool v4 = s->backend.family == AF_INET, dup;
		enum rs_set map = rs_bank_set(v4 ? RS_SET_SVC4 : RS_SET_SVC6, bank);
		enum rs_set local = rs_bank_set(v4 ? RS_SET_LOCAL4 : RS_SET_LOCAL6, bank);
		bool grace = s->grace_port && s->grace_port != s->port;
		uint32_t owner = first_owner + (uint32_t)i;
		struct elem_buf e = {.owner = owner};
		size_t len = strlen(s->name);
		int r;

		memcpy(state->names[owner], s->name, len + 1); /* checked < ROTATOR_MAX_NAME */
		r = map_add(state, map, s, owner, s->port, err);
		if (r >= 0 && grace)
			r = map_add(state, map, s, owner, s->grace_port, err);
		if (r >= 0 && s->local_access)
			r = map_add(state, local, s, owner, s->port, err);
		if (r >= 0 && s->local_access && grace)
			r = map_add(state, local, s, owner, s->grace_port, err);
		for (size_t j = 0; r >= 0 && j < s->n_client_ports; j++) {
			r = map_add(state, map, s, owner, s->client_ports[j], err);
			if (r >= 0 && s->local_access)
				r = map_add(state, local, s, owner, s->client_ports[j], err);
		}
		if (r < 0)
			return r;
		if (s->gated) {
			gate_add(state, bank, owner, s->proto, s->port);
			if (grace)
				gate_add(state, bank, owner, s->proto, s->grace_port);
			for (size_t j = 0; j < s->n_client_ports; j++)
				gate_add(state, bank, owner, s->proto, s->client_ports[j]);
		}
		for (size_t j = 0; j < s->n_knock_ports; j++) {
			struct elem_buf k = {.owner = owner};

			k.key_len =
			    (uint8_t)delta_key_proto_port(k.key, IPPROTO_UDP, s->knock_ports[j]);
			table_insert(&state->sets[rs_bank_set(RS_SET_KNOCK, bank)], &k, &dup);
		}
		e.key[0] = s->proto;
		len = 4 + put_addr(e.key + 4, &s->backend);
		len += put_port(e.key + len, s->backend_port);
		e.key_len = (uint8_t)len;
		table_insert(&state->sets[v4 ? RS_SET_BACKENDS4 : RS_SET_BACKENDS6], &e, &dup);
		for (size_t j = 0; j < s->n_decoys; j++) {
			struct elem_buf d = {.owner = owner};

			d.key_len = (uint8_t)delta_key_proto_port(d.key, s->proto, s->decoys[j]);
			table_insert(&state->sets[rs_bank_set(RS_SET_DECOYS, bank)], &d, &dup);
		}
	}
	return 0;
}

int delta_state_switch(struct rs_state *state, unsigned live_bank)
{
	static const uint8_t nfprotos[] = {NFPROTO_IPV4, NFPROTO_IPV6};
	int r;

	table_setup(&state->sets[RS_SET_ACTIVE0], RS_SET_ACTIVE0);
	table_setup(&state->sets[RS_SET_ACTIVE1], RS_SET_ACTIVE1);
	r = table_reserve(&state->sets[RS_SET_ACTIVE0], 2);
	if (r >= 0)
		r = table_reserve(&state->sets[RS_SET_ACTIVE1], 2);
	if (r < 0)
		return r;
	for (size_t i = 0; i < ELEMENTSOF(nfprotos); i++) {
		struct elem_buf e = {.owner = UINT32_MAX};
		bool dup;

		e.key_len = (uint8_t)delta_key_nfproto(e.key, nfprotos[i]);
		table_insert(&state->sets[live_bank ? RS_SET_ACTIVE1 : RS_SET_ACTIVE0], &e, &dup);
	}
	return 0;
}

int delta_state_build(struct rs_state *state, const struct rotator_plan *plan, unsigned live_bank,
		      struct step_error *err)
{
	uint32_t first_instance = (uint32_t)(plan->n_services + plan->n_next);
	int r;

	delta_state_clear(state);
	r = state_reserve(state, plan, live_bank);
	if (r >= 0)
		r = delta_state_switch(state, live_bank);
	if (r < 0)
		return step_error_set(err, "rotator", r, "element state");
	r = services_add(state, plan->services, plan->n_services, 0, live_bank, err);
	if (r >= 0)
		r = services_add(state, plan->next, plan->n_next, (uint32_t)plan->n_services,
				 !live_bank, err);
	for (size_t i = 0; r >= 0 && i < plan->n_instances; i++)
		r = instance_add(state, first_instance + (uint32_t)i, &plan->instances[i], err);
	for (size_t i = 0; r >= 0 && i < plan->n_instances; i++)
		dead_add(state, first_instance + (uint32_t)i, &plan->instances[i]);
	if (r < 0) {
		delta_state_clear(state);
		return r;
	}
	state->n_names = first_instance + plan->n_instances;
	return 0;
}

/* --- delta ------------------------------------------------------------------- */

static int grow_list(uint32_t **list, size_t n)
{
	uint32_t *l = realloc(*list, n * sizeof(*l));

	if (!l)
		return -ENOMEM;
	*list = l;
	return 0;
}

static int delta_reserve(struct rs_delta *d, size_t set, size_t n)
{
	if (n > d->cap[set]) {
		if (grow_list(&d->del[set], n) < 0 || grow_list(&d->add[set], n) < 0)
			return -ENOMEM;
		d->cap[set] = n;
	}
	d->n_del[set] = d->n_add[set] = 0;
	return 0;
}

static bool is_active_set(size_t set)
{
	return set == RS_SET_ACTIVE0 || set == RS_SET_ACTIVE1;
}

static int delta_diff(const struct rs_state *old, const struct rs_state *new_state,
		      bool only_active_sets, struct rs_delta *delta)
{
	for (size_t s = 0; s < RS_N_SETS; s++) {
		const struct rs_table *o = &old->sets[s], *n = &new_state->sets[s];
		int r = delta_reserve(delta, s, o->n + n->n);

		if (r < 0)
			return r;
		if (only_active_sets && !is_active_set(s))
			continue;
		for (size_t i = 0; i < n->n; i++) {
			const struct rs_elem *e = rs_table_elem(n, i);
			uint32_t slot = o->n ? o->slots[table_probe(o, e->bytes)] : 0;

			if (slot && memcmp(rs_elem_data(rs_table_elem(o, slot - 1)),
					   rs_elem_data(e), n->data_cap) == 0)
				continue; /* there, the same: not touched */
			if (slot)	  /* other data: replaced */
				delta->del[s][delta->n_del[s]++] = slot - 1;
			delta->add[s][delta->n_add[s]++] = (uint32_t)i;
		}
		for (size_t i = 0; i < o->n; i++)
			if (!n->n || !n->slots[table_probe(n, rs_table_elem(o, i)->bytes)])
				delta->del[s][delta->n_del[s]++] = (uint32_t)i;
	}
	return 0;
}

int delta_compute(const struct rs_state *old, const struct rs_state *new_state,
		  struct rs_delta *delta)
{
	return delta_diff(old, new_state, false, delta);
}

int delta_switch(const struct rs_state *old, const struct rs_state *new_state,
		 struct rs_delta *delta)
{
	return delta_diff(old, new_state, true, delta);
}

void delta_free(struct rs_delta *delta)
{
	for (size_t s = 0; s < RS_N_SETS; s++) {
		free(delta->del[s]);
		free(delta->add[s]);
	}
	*delta = (struct rs_delta){};
}

size_t delta_count_del(const struct rs_delta *delta)
{
	size_t n = 0;

	for (size_t s = 0; s < RS_N_SETS; s++)
		n += delta->n_del[s];
	return n;
}

size_t delta_count_add(const struct rs_delta *delta)
{
	size_t n = 0;

	for (size_t s = 0; s < RS_N_SETS; s++)
		n += delta->n_add[s];
	return n;
}
