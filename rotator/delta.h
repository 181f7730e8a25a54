/* SPDX-License-Identifier: MIT */
/*
 * The element state of `inet mtd` and the delta between two states. Pure:
 * no socket, no kernel (tests/unit/test_rotator_delta.c).
 *
 * A state holds, per per-epoch set or map, the elements exactly as the kernel
 * stores them (key and data bytes, register-padded) with the index of the
 * service that owns each. The rotator keeps the state it last committed; an
 * apply builds the state of the new plan and sends only the delta: the
 * elements to delete (in the old state, not in the new one, or with other
 * data) and to add (in the new state, not in the old one, or with other data).
 * An element in both with the same data is not touched.
 *
 * Expiring elements (a ttl in the plan): the state also remembers when each
 * one expires (CLOCK_MONOTONIC ms, the kernel's clock for set timeouts). An
 * element past its expiry is gone. One the plan drops that expires within
 * RS_LINGER_MS is left to expire (kept in the new state, nothing sent),
 * unless its port is a public or decoy port of the new plan; otherwise it is
 * destroyed (NFT_MSG_DESTROYSETELEM: it may have expired meanwhile). One
 * kept whose expiry must move by more than RS_EXPIRY_TOLERANCE_MS is re-added
 * without NLM_F_EXCL (the kernel updates its timeout).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rotator.h"

enum rs_set {
	RS_SET_SVC4,
	RS_SET_SVC6,
	RS_SET_LOCAL4,
	RS_SET_LOCAL6,
	RS_SET_BACKENDS4,
	RS_SET_BACKENDS6,
	RS_SET_DECOYS,
	/* the instance envelope (rotator_config.instance_envelope) */
	RS_SET_INSTANCES4,
	RS_SET_INSTANCES6,
	RS_SET_INGRESS4,
	RS_SET_INGRESS6,
	RS_SET_EGRESS4, /* intervals: data holds the key's end */
	RS_SET_EGRESS6,
	RS_N_SETS,
};
#define RS_FIRST_INSTANCE_SET RS_SET_INSTANCES4

#define RS_KEY_MAX 40  /* inst_egress6: saddr . proto . daddr . port */
#define RS_DATA_MAX 40 /* map data, or an interval's end key */

/* an element dropped by the plan that expires within this is left to expire */
#define RS_LINGER_MS (2 * ROTATOR_EXPIRY_MARGIN_MS)
/* an expiry that moves less than this is not re-sent */
#define RS_EXPIRY_TOLERANCE_MS (ROTATOR_EXPIRY_MARGIN_MS / 2)
/* the model's expiry (taken before the batch is sent) can precede the
 * kernel's by the transaction's latency: until then an element may be there */
#define RS_EXPIRY_GUARD_MS 1000

struct rs_elem {
	uint8_t key[RS_KEY_MAX];   /* zero beyond key_len */
	uint8_t data[RS_DATA_MAX]; /* maps; interval sets: the end key; zero beyond data_len */
	uint8_t key_len, data_len;
	uint32_t owner; /* index of the owning service or instance (rs_state.names) */
	uint32_t ttl_ms;     /* timeout to send, margin included; 0: never expires */
	uint64_t expires_ms; /* CLOCK_MONOTONIC; 0: never (set by rs_delta_compute) */
};

struct rs_table {
	struct rs_elem *elems;
	size_t n, cap;
	size_t n_plan; /* elems[0..n_plan) are the plan's, the rest are left to expire */
	uint32_t *slots; /* open addressing: element index + 1, 0 = free */
	size_t n_slots;  /* power of two, at least twice n */
};

struct rs_state {
	struct rs_table sets[RS_N_SETS];
	char (*names)[ROTATOR_MAX_NAME]; /* the plan's services, then its instances */
	size_t n_names, cap_names;
};

/* What to send: indices into the old state's elements (del: delete, gone:
 * destroy, no error if already expired) and the new state's (add: create,
 * NLM_F_EXCL; upd: create or refresh the timeout of an expiring element),
 * per set. An element whose data changes is deleted and added. */
struct rs_delta {
	uint32_t *del[RS_N_SETS];
	size_t n_del[RS_N_SETS];
	uint32_t *gone[RS_N_SETS];
	size_t n_gone[RS_N_SETS];
	uint32_t *add[RS_N_SETS];
	size_t n_add[RS_N_SETS];
	uint32_t *upd[RS_N_SETS];
	size_t n_upd[RS_N_SETS];
	size_t n_expiring; /* left to expire: carried into the new state */
	size_t cap[RS_N_SETS]; /* of each list */
	uint32_t *owner_map;   /* old owner -> new owner, for carried elements */
	size_t cap_owner_map;
};

/* Set and map names in the table (RS_SVC4, ...), whether it is a map, an
 * interval set (elements carry an end key in data), an instance's. */
const char *rs_set_name(enum rs_set set);
bool rs_set_is_map(enum rs_set set);
bool rs_set_is_interval(enum rs_set set);
bool rs_set_is_instance(enum rs_set set);

/* Replace *state (its memory is reused) with the elements of a validated
 * plan. The same public port twice in one map is -EEXIST with err naming
 * both services; the state is then empty. Sets (backends, decoys) take
 * duplicates once, owned by the first service. An instance address used by
 * two instances is -EEXIST naming both. */
int rs_state_build(struct rs_state *state, const struct rotator_plan *plan,
		   struct rotator_error *err);
void rs_state_clear(struct rs_state *state); /* empty, memory kept */
void rs_state_free(struct rs_state *state);  /* empty, memory released */
size_t rs_state_count(const struct rs_state *state);

/* The element with this key, or NULL. */
const struct rs_elem *rs_state_find(const struct rs_state *state, enum rs_set set,
				    const uint8_t *key, size_t key_len);
const char *rs_state_owner(const struct rs_state *state, const struct rs_elem *e);

/* The delta from old to new at now_ms (CLOCK_MONOTONIC) into *delta (memory
 * reused). Completes new_state: the expiry of each element as the kernel
 * will have it, and the old elements left to expire. 0 or -ENOMEM. */
int rs_delta_compute(const struct rs_state *old, struct rs_state *new_state, uint64_t now_ms,
		     struct rs_delta *delta);
void rs_delta_free(struct rs_delta *delta);
size_t rs_delta_count_del(const struct rs_delta *delta);
size_t rs_delta_count_add(const struct rs_delta *delta);


/* Element encodings (the kernel's register layout). */
size_t rs_key_proto_port(uint8_t *b, uint8_t proto, uint16_t port);
/* "tcp . 24847 : 10.0.0.1 . 8080" style text of an element, for errors. */
void rs_elem_text(enum rs_set set, const struct rs_elem *e, char *buf, size_t len);
