/* SPDX-License-Identifier: MIT */
/*
 * The layout of `inet mtd` (docs/nftables.md): table, named sets and maps,
 * base chains and their static rules, and the element messages of a plan.
 * Everything is appended to a transaction; nothing is sent here.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "rotator.h"

struct nft_txn;

#ifndef NFT_TABLE_F_PERSIST
#define NFT_TABLE_F_PERSIST 0x4 /* Linux 6.9 */
#endif

#define RS_SVC4 "svc4"
#define RS_SVC6 "svc6"
#define RS_LOCAL4 "local4"
#define RS_LOCAL6 "local6"
#define RS_BACKENDS4 "backends4"
#define RS_BACKENDS6 "backends6"
#define RS_DECOYS "decoys"
#define RS_BLOCKED4 "blocked4"
#define RS_BLOCKED6 "blocked6"
#define RS_LOG_PREFIX "mtd-decoy "
#define RS_TABLE_DESC "table inet " ROTATOR_TABLE

/* Delete the existing table (adoption: it is rebuilt in the same transaction). */
int ruleset_delete_table(struct nft_txn *t);

/* Table (with NFT_TABLE_F_* flags), sets, maps, chains and rules. */
int ruleset_add_layout(struct nft_txn *t, uint32_t table_flags,
		       const struct rotator_config *config);
