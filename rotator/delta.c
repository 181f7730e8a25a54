/* SPDX-License-Identifier: MIT */
/* Element states of `inet mtd` and the delta between two (see delta.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "delta.h"
#include "nft.h" /* rotator_error_set */
#include "ruleset.h"

static const struct {
	const char *name;
	bool map;
} set_info[RS_N_SETS] = {
	[RS_SET_SVC4] = { RS_SVC4, true },	   [RS_SET_SVC6] = { RS_SVC6, true },
	[RS_SET_LOCAL4] = { RS_LOCAL4, true },	   [RS_SET_LOCAL6] = { RS_LOCAL6, true },
	[RS_SET_BACKENDS4] = { RS_BACKENDS4, false }, [RS_SET_BACKENDS6] = { RS_BACKENDS6, false },
	[RS_SET_DECOYS] = { RS_DECOYS, false },
};

const char *rs_set_name(enum rs_set set)
{
	return set < RS_N_SETS ? set_info[set].name : "?";
}

bool rs_set_is_map(enum rs_set set)
{
	return set < RS_N_SETS && set_info[set].map;
}

/* --- encodings ------------------------------------------------------------- */

size_t rs_key_proto_port(uint8_t *b, uint8_t proto, uint16_t port)
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

void rs_elem_text(enum rs_set set, const struct rs_elem *e, char *buf, size_t len)
{
	char ap[INET6_ADDRSTRLEN + 16];

	if (set == RS_SET_BACKENDS4 || set == RS_SET_BACKENDS6) {
		addr_port_text(e->key + 4, e->key_len - 4u, ap, sizeof(ap));
		snprintf(buf, len, "%s . %s", proto_text(e->key[0]), ap);
		return;
	}
	if (!e->data_len) {
		snprintf(buf, len, "%s . %u", proto_text(e->key[0]),
			 (unsigned)(e->key[4] << 8 | e->key[5]));
		return;
	}
	addr_port_text(e->data, e->data_len, ap, sizeof(ap));
	snprintf(buf, len, "%s . %u : %s", proto_text(e->key[0]),
		 (unsigned)(e->key[4] << 8 | e->key[5]), ap);
}

/* --- hash tables -------------------------------------------------------------- */

/* murmur3's 64-bit finaliser over the three key words: every input bit
 * reaches the low bits the table index uses */
static uint64_t hash_key(const uint8_t *key)
{
	uint64_t w[3], h;

	memcpy(w, key, sizeof(w));
	h = w[0] ^ (w[1] * 0x9e3779b97f4a7c15ULL) ^ (w[2] * 0xc2b2ae3d27d4eb4fULL);
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	return h ^ (h >> 33);
}

/* Slot of key: its element's slot, or the free slot where it would go. */
static size_t table_probe(const struct rs_table *t, const uint8_t *key)
{
	size_t mask = t->n_slots - 1, i = (size_t)hash_key(key) & mask;

	for (;; i = (i + 1) & mask) {
		uint32_t s = t->slots[i];

		if (!s || memcmp(t->elems[s - 1].key, key, RS_KEY_MAX) == 0)
			return i;
	}
}

static int table_reserve(struct rs_table *t, size_t n)
{
	size_t slots = 64;

	if (n > t->cap) {
		struct rs_elem *e = realloc(t->elems, n * sizeof(*e));

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

/* Insert e (fully built) unless its key is there: returns the element with
 * that key (the new one, or the one already there). Capacity is reserved. */
static const struct rs_elem *table_insert(struct rs_table *t, const struct rs_elem *e,
					  bool *ret_dup)
{
	size_t i = table_probe(t, e->key);

	if (t->slots[i]) {
		*ret_dup = true;
		return &t->elems[t->slots[i] - 1];
	}
	t->elems[t->n] = *e;
	t->slots[i] = (uint32_t)++t->n;
	*ret_dup = false;
	return &t->elems[t->n - 1];
}

const struct rs_elem *rs_state_find(const struct rs_state *state, enum rs_set set,
				    const uint8_t *key, size_t key_len)
{
	const struct rs_table *t = &state->sets[set];
	uint8_t k[RS_KEY_MAX] = {};
	size_t i;

	if (set >= RS_N_SETS || key_len > RS_KEY_MAX || !t->n)
		return NULL;
	memcpy(k, key, key_len);
	i = table_probe(t, k);
	return t->slots[i] ? &t->elems[t->slots[i] - 1] : NULL;
}

const char *rs_state_owner(const struct rs_state *state, const struct rs_elem *e)
{
	return e && e->owner < state->n_names ? state->names[e->owner] : "?";
}

/* --- states ----------------------------------------------------------------- */

void rs_state_clear(struct rs_state *state)
{
	for (size_t s = 0; s < RS_N_SETS; s++) {
		struct rs_table *t = &state->sets[s];

		if (t->n)
			memset(t->slots, 0, t->n_slots * sizeof(*t->slots));
		t->n = 0;
	}
	state->n_names = 0;
}

void rs_state_free(struct rs_state *state)
{
	for (size_t s = 0; s < RS_N_SETS; s++) {
		free(state->sets[s].elems);
		free(state->sets[s].slots);
	}
	free(state->names);
	*state = (struct rs_state){};
}

size_t rs_state_count(const struct rs_state *state)
{
	size_t n = 0;

	for (size_t s = 0; s < RS_N_SETS; s++)
		n += state->sets[s].n;
	return n;
}

static int state_reserve(struct rs_state *state, const struct rotator_plan *plan)
{
	size_t want[RS_N_SETS] = {};
	int r = 0;

	for (size_t i = 0; i < plan->n_services; i++) {
		const struct rotator_service *s = &plan->services[i];
		bool v4 = s->backend.family == AF_INET;

		want[v4 ? RS_SET_SVC4 : RS_SET_SVC6] += 2;
		if (s->local_access)
			want[v4 ? RS_SET_LOCAL4 : RS_SET_LOCAL6] += 2;
		want[v4 ? RS_SET_BACKENDS4 : RS_SET_BACKENDS6]++;
		want[RS_SET_DECOYS] += s->n_decoys;
	}
	for (size_t s = 0; r >= 0 && s < RS_N_SETS; s++)
		r = table_reserve(&state->sets[s], want[s]);
	if (r >= 0 && plan->n_services > state->cap_names) {
		char(*names)[ROTATOR_MAX_NAME] =
			realloc(state->names, plan->n_services * sizeof(*names));

		if (!names)
			r = -ENOMEM;
		else {
			state->names = names;
			state->cap_names = plan->n_services;
		}
	}
	return r;
}

static int map_add(struct rs_state *state, enum rs_set set, const struct rotator_plan *plan,
		   uint32_t owner, uint16_t port, struct rotator_error *err)
{
	const struct rotator_service *s = &plan->services[owner];
	const struct rs_elem *there;
	struct rs_elem e = { .owner = owner };
	bool dup;

	e.key_len = (uint8_t)rs_key_proto_port(e.key, s->proto, port);
	e.data_len = (uint8_t)put_addr(e.data, &s->backend);
	e.data_len += (uint8_t)put_port(e.data + e.data_len, s->backend_port);
	there = table_insert(&state->sets[set], &e, &dup);
	if (!dup)
		return 0;
	if (err) {
		char object[2 * ROTATOR_MAX_NAME + 32];

		snprintf(object, sizeof(object), "service %s: public ports in map %s", s->name,
			 rs_set_name(set));
		rotator_error_set(err, -EEXIST, object, "port %s/%u is also used by service %s",
				  proto_text(s->proto), port, plan->services[there->owner].name);
	}
	return -EEXIST;
}

int rs_state_build(struct rs_state *state, const struct rotator_plan *plan,
		   struct rotator_error *err)
{
	int r;

	rs_state_clear(state);
	r = state_reserve(state, plan);
	if (r < 0)
		return rotator_error_set(err, r, "rotator", "element state");
	for (size_t i = 0; i < plan->n_services; i++) {
		const struct rotator_service *s = &plan->services[i];
		bool v4 = s->backend.family == AF_INET, dup;
		uint32_t owner = (uint32_t)i;
		struct rs_elem e = { .owner = owner };
		size_t len = strlen(s->name);

		memcpy(state->names[i], s->name, len + 1); /* checked < ROTATOR_MAX_NAME */
		r = map_add(state, v4 ? RS_SET_SVC4 : RS_SET_SVC6, plan, owner, s->port, err);
		if (r >= 0 && s->grace_port && s->grace_port != s->port)
			r = map_add(state, v4 ? RS_SET_SVC4 : RS_SET_SVC6, plan, owner,
				    s->grace_port, err);
		if (r >= 0 && s->local_access)
			r = map_add(state, v4 ? RS_SET_LOCAL4 : RS_SET_LOCAL6, plan, owner,
				    s->port, err);
		if (r >= 0 && s->local_access && s->grace_port && s->grace_port != s->port)
			r = map_add(state, v4 ? RS_SET_LOCAL4 : RS_SET_LOCAL6, plan, owner,
				    s->grace_port, err);
		if (r < 0) {
			rs_state_clear(state);
			return r;
		}
		e.key[0] = s->proto;
		len = 4 + put_addr(e.key + 4, &s->backend);
		len += put_port(e.key + len, s->backend_port);
		e.key_len = (uint8_t)len;
		table_insert(&state->sets[v4 ? RS_SET_BACKENDS4 : RS_SET_BACKENDS6], &e, &dup);
		for (size_t j = 0; j < s->n_decoys; j++) {
			struct rs_elem d = { .owner = owner };

			d.key_len = (uint8_t)rs_key_proto_port(d.key, s->proto, s->decoys[j]);
			table_insert(&state->sets[RS_SET_DECOYS], &d, &dup);
		}
	}
	state->n_names = plan->n_services;
	return 0;
}

/* --- delta ------------------------------------------------------------------- */

static int delta_reserve(struct rs_delta *d, size_t set, size_t n)
{
	if (n > d->cap[set]) {
		uint32_t *del = realloc(d->del[set], n * sizeof(*del)), *add;

		if (!del)
			return -ENOMEM;
		d->del[set] = del;
		add = realloc(d->add[set], n * sizeof(*add));
		if (!add)
			return -ENOMEM;
		d->add[set] = add;
		d->cap[set] = n;
	}
	d->n_del[set] = d->n_add[set] = 0;
	return 0;
}

int rs_delta_compute(const struct rs_state *old, const struct rs_state *new_state,
		     struct rs_delta *delta)
{
	for (size_t s = 0; s < RS_N_SETS; s++) {
		const struct rs_table *o = &old->sets[s], *n = &new_state->sets[s];
		int r = delta_reserve(delta, s, o->n + n->n);

		if (r < 0)
			return r;
		for (size_t i = 0; i < n->n; i++) {
			const struct rs_elem *e = &n->elems[i];
			uint32_t slot = o->n ? o->slots[table_probe(o, e->key)] : 0;

			if (slot && memcmp(o->elems[slot - 1].data, e->data, RS_DATA_MAX) == 0)
				continue; /* unchanged: not touched */
			if (slot) /* same key, other data: replace */
				delta->del[s][delta->n_del[s]++] = slot - 1;
			delta->add[s][delta->n_add[s]++] = (uint32_t)i;
		}
		for (size_t i = 0; i < o->n; i++)
			if (!n->n || !n->slots[table_probe(n, o->elems[i].key)])
				delta->del[s][delta->n_del[s]++] = (uint32_t)i;
	}
	return 0;
}

void rs_delta_free(struct rs_delta *delta)
{
	for (size_t s = 0; s < RS_N_SETS; s++) {
		free(delta->del[s]);
		free(delta->add[s]);
	}
	*delta = (struct rs_delta){};
}

size_t rs_delta_count_del(const struct rs_delta *delta)
{
	size_t n = 0;

	for (size_t s = 0; s < RS_N_SETS; s++)
		n += delta->n_del[s];
	return n;
}

size_t rs_delta_count_add(const struct rs_delta *delta)
{
	size_t n = 0;

	for (size_t s = 0; s < RS_N_SETS; s++)
		n += delta->n_add[s];
	return n;
}
