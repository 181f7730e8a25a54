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

/* The per-epoch maps and decoy sets exist once per bank: "svc4_0", "svc4_1" */
#define RS_SVC4 "svc4"
#define RS_SVC6 "svc6"
#define RS_LOCAL4 "local4"
#define RS_LOCAL6 "local6"
#define RS_DECOYS "decoys"
#define RS_BANK_NAME(name, bank) name "_" #bank
/* ipv4 and ipv6 while its bank is live: what a switch of banks changes */
#define RS_ACTIVE0 "active0"
#define RS_ACTIVE1 "active1"
#define RS_BACKENDS4 "backends4"
#define RS_BACKENDS6 "backends6"
#define RS_BLOCKED4 "blocked4"
#define RS_BLOCKED6 "blocked6"
#define RS_INSTANCES4 "instances4"
#define RS_INSTANCES6 "instances6"
#define RS_INGRESS4 "inst_ingress4"
#define RS_INGRESS6 "inst_ingress6"
#define RS_EGRESS4 "inst_egress4"
#define RS_EGRESS6 "inst_egress6"
#define RS_ICMPV6_LINK "icmpv6_link"
#define RS_LOG_PREFIX "mtd-decoy "
#define RS_EGRESS_LOG_PREFIX "mtd-egress "
#define RS_SPOOF_LOG_PREFIX "mtd-spoof "
#define RS_TABLE_DESC "table inet " ROTATOR_TABLE

/* Delete the existing table (adoption: it is rebuilt in the same transaction). */
int ruleset_delete_table(struct nft_txn *t);

/* Table (with NFT_TABLE_F_* flags), sets, maps, chains and rules. */
int ruleset_add_layout(struct nft_txn *t, uint32_t table_flags,
		       const struct rotator_config *config);

/* --- shared with ruleset_instance.c ---------------------------------------- */

/* nft's datatype ids, concatenations are (a << 6) | b */
enum {
	RS_TYPE_NFPROTO = 2,
	RS_TYPE_IPADDR = 7,
	RS_TYPE_IP6ADDR = 8,
	RS_TYPE_INET_PROTOCOL = 12,
	RS_TYPE_INET_SERVICE = 13,
	RS_TYPE_ICMP6_TYPE = 29,
};
#define RS_CONCAT2(a, b) (((a) << 6) | (b))
#define RS_CONCAT3(a, b, c) (((((a) << 6) | (b)) << 6) | (c))
#define RS_CONCAT4(a, b, c, d) ((RS_CONCAT3(a, b, c) << 6) | (d))

struct set_def {
	const char *name;
	uint32_t key_type, key_len;
	uint32_t data_type, data_len; /* 0: plain set */
	uint32_t flags;
	uint32_t size;
	const char *comment;
	const uint8_t *field_len; /* concatenated intervals: field lengths, 0-terminated */
};

/* Regular chain when type is NULL. */
struct chain_def {
	const char *name;
	const char *type;
	uint32_t hook;
	int32_t prio;
	const char *comment;
};

struct nftnl_rule;
int ruleset_add_set(struct nft_txn *t, const struct set_def *d, uint32_t id);
int ruleset_add_chain(struct nft_txn *t, const struct chain_def *d);
/* Takes ownership of rule (NULL: -ENOMEM). */
int ruleset_add_rule(struct nft_txn *t, struct nftnl_rule *rule, const char *what);

/* The envelope's sets and chains (after the base ones: set ids from
 * first_set_id), then, once the base chains' own rules are in, its rules. */
int ruleset_add_instance_objects(struct nft_txn *t, uint32_t first_set_id);
int ruleset_add_instance_rules(struct nft_txn *t, const struct rotator_config *config);
#define RS_CH_INPUT_FILTER "input_filter"
#define RS_CH_FORWARD_FILTER "forward_filter"
