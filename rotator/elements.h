/* SPDX-License-Identifier: MIT */
/*
 * The element messages of a transaction: a delta between two element states
 * (delta.h) as NFT_MSG_DELSETELEM / NFT_MSG_NEWSETELEM messages, many
 * elements per message, built straight into the transaction's pages with
 * libmnl; and the removal of unblocked sources. Nothing is formatted unless
 * the kernel refuses a message: then elements_describe() names the element
 * the kernel blamed and the service that owns it.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "delta.h"
#include "nft.h"
#include "rotator.h"

struct elements_ctx {
	const struct rs_state *old;   /* deletions index into it */
	const struct rs_state *new_state; /* additions index into it */
	const struct rs_delta *delta;
	const struct rotator_plan *plan; /* unblocked addresses */
	bool envelope; /* the instance sets exist (rotator_config.instance_envelope) */
	const struct rotator_blocked *carried; /* blocked sources of an adopted table */
	size_t n_carried;
};

/* With flush, every per-epoch set is flushed first (the kernel's contents
 * are not known: resynchronisation) and the delta must be against an empty
 * old state. Then all deletions, then all additions (so a key whose data
 * changes is deleted before it is added again). */
int elements_add_delta(struct nft_txn *t, const struct elements_ctx *ctx, bool flush);

/* Add the carried blocked sources back, each with the time it had left. */
int elements_add_carried(struct nft_txn *t, const struct elements_ctx *ctx);

/* Remove the plan's unblocked sources (no error if one already expired). */
int elements_add_unblock(struct nft_txn *t, const struct elements_ctx *ctx);

/* nft_describe_fn for the messages above; userdata is the elements_ctx. */
void elements_describe(void *userdata, const struct nft_ref *ref, const struct nlmsghdr *msg,
		       uint32_t bad_offset, char *buf, size_t len);
