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
 * The per-epoch maps and decoy sets exist once per bank (docs/nftables.md,
 * "Two banks"): a state is built with the plan's services in the live bank,
 * its next services in the other, and ipv4 and ipv6 in the live bank's
 * active set.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rotator.h"

enum rs_set {
	/* bank 0 */
	RS_SET_SVC4,
	RS_SET_SVC6,
	RS_SET_LOCAL4,
	RS_SET_LOCAL6,
	RS_SET_DECOYS,
	/* bank 1: the same, RS_BANK_SETS on (rs_bank_set()) */
	RS_SET_SVC4_1,
	RS_SET_SVC6_1,
	RS_SET_LOCAL4_1,
	RS_SET_LOCAL6_1,
	RS_SET_DECOYS_1,
	RS_SET_ACTIVE0, /* key: the nfproto (ipv4, ipv6) while bank 0 is live */
	RS_SET_ACTIVE1,
	RS_SET_BACKENDS4,
	RS_SET_BACKENDS6,
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
#define RS_BANK_SETS 5

/* A bank-0 set's counterpart in bank (0 or 1). */
static inline enum rs_set rs_bank_set(enum rs_set bank0_set, unsigned bank)
{
	return (enum rs_set)(bank0_set + bank * RS_BANK_SETS);
}

#define RS_KEY_MAX 40  /* inst_egress6: saddr . proto . daddr . port */
#define RS_DATA_MAX 40 /* map data, or an interval's end key */

struct rs_elem {
	uint8_t key[RS_KEY_MAX];   /* zero beyond key_len */
	uint8_t data[RS_DATA_MAX]; /* maps; interval sets: the end key; zero beyond data_len */
	uint8_t key_len, data_len;
	uint32_t owner; /* index of the owning service or instance (rs_state.names) */
};

struct rs_table {
	struct rs_elem *elems;
	size_t n, cap;
	uint32_t *slots; /* open addressing: element index + 1, 0 = free */
	size_t n_slots;  /* power of two, at least twice n */
};

struct rs_state {
	struct rs_table sets[RS_N_SETS];
	/* the plan's services, its next services, then its instances */
	char (*names)[ROTATOR_MAX_NAME];
	size_t n_names, cap_names;
};

/* What to send: indices into the old state's elements (del) and the new
 * state's (add, NLM_F_EXCL), per set. An element whose data changes is
 * deleted and added. */
struct rs_delta {
	uint32_t *del[RS_N_SETS];
	size_t n_del[RS_N_SETS];
	uint32_t *add[RS_N_SETS];
	size_t n_add[RS_N_SETS];
	size_t cap[RS_N_SETS]; /* of each list */
};

/* Set and map names in the table (RS_SVC4, ...), whether it is a map, an
 * interval set (elements carry an end key in data), an instance's. */
const char *rs_set_name(enum rs_set set);
bool rs_set_is_map(enum rs_set set);
bool rs_set_is_interval(enum rs_set set);
bool rs_set_is_instance(enum rs_set set);

/* Replace *state (its memory is reused) with the elements of a validated
 * plan, its services in live_bank (0 or 1), its next services in the other.
 * The same public port twice in one map is -EEXIST with err naming both
 * services; the state is then empty. Sets (backends, decoys) take
 * duplicates once, owned by the first service. An instance address used by
 * two instances is -EEXIST naming both. */
int rs_state_build(struct rs_state *state, const struct rotator_plan *plan, unsigned live_bank,
		   struct rotator_error *err);
/* Make live_bank's active set the one that holds ipv4 and ipv6 (what a
 * switch of banks does to the kernel's table). */
int rs_state_switch(struct rs_state *state, unsigned live_bank);
/* ipv4 / ipv6 keys of the active sets */
size_t rs_key_nfproto(uint8_t *b, uint8_t nfproto);
void rs_state_clear(struct rs_state *state); /* empty, memory kept */
void rs_state_free(struct rs_state *state);  /* empty, memory released */
size_t rs_state_count(const struct rs_state *state);

/* The element with this key, or NULL. */
const struct rs_elem *rs_state_find(const struct rs_state *state, enum rs_set set,
				    const uint8_t *key, size_t key_len);
const char *rs_state_owner(const struct rs_state *state, const struct rs_elem *e);

/* The delta from old to new_state into *delta (memory reused). 0 or -ENOMEM. */
int rs_delta_compute(const struct rs_state *old, const struct rs_state *new_state,
		     struct rs_delta *delta);
/* The same for the active sets alone (a switch of banks), the rest untouched. */
int rs_delta_switch(const struct rs_state *old, const struct rs_state *new_state,
		    struct rs_delta *delta);
void rs_delta_free(struct rs_delta *delta);
size_t rs_delta_count_del(const struct rs_delta *delta);
size_t rs_delta_count_add(const struct rs_delta *delta);


/* Element encodings (the kernel's register layout). */
size_t rs_key_proto_port(uint8_t *b, uint8_t proto, uint16_t port);
/* "tcp . 24847 : 10.0.0.1 . 8080" style text of an element, for errors. */
void rs_elem_text(enum rs_set set, const struct rs_elem *e, char *buf, size_t len);
