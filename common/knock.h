/* SPDX-License-Identifier: MIT */
/*
 * The knock packet (docs/schedule.md, "Knock packets"): one UDP datagram a
 * client sends to its knock port of the epoch to be admitted to its door.
 *
 *   offset  size  field
 *   0       4     magic "MTDK"
 *   4       1     version (1)
 *   5       1     n = length of the client name (1..64)
 *   6       n     client name
 *   6+n     8     time: Unix time in seconds, big endian
 *   14+n    16    nonce: random, never reused
 *   30+n    1     admit: 0 = the packet's source address, 4 = the IPv4
 *                 address that follows (4 bytes), 6 = the IPv6 address that
 *                 follows (16 bytes); the address must be the packet's source
 *   ...     32    mac: HMAC-SHA256(client key, KNOCK_MAC_LABEL 0x00 service
 *                 0x00 host_id 0x00 || every byte before the mac)
 *
 * Pure computation, no I/O: the agent and mtd-client both use it.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "schedule.h"

#define KNOCK_MAGIC "MTDK"
#define KNOCK_VERSION 1
#define KNOCK_MAC_LABEL "mtd-knock-packet-v1"
#define KNOCK_NONCE_SIZE 16
#define KNOCK_MAC_SIZE 32
#define KNOCK_MIN_SIZE (4 + 1 + 1 + 1 + 8 + KNOCK_NONCE_SIZE + 1 + KNOCK_MAC_SIZE)
#define KNOCK_MAX_SIZE                                                                             \
	(4 + 1 + 1 + SCHEDULE_MAX_CLIENT_NAME + 8 + KNOCK_NONCE_SIZE + 1 + 16 + KNOCK_MAC_SIZE)

enum knock_admit {
	KNOCK_ADMIT_SOURCE = 0,
	KNOCK_ADMIT_IPV4 = 4,
	KNOCK_ADMIT_IPV6 = 6,
};

struct knock {
	char client[SCHEDULE_MAX_CLIENT_NAME + 1];
	uint64_t time_sec;
	uint8_t nonce[KNOCK_NONCE_SIZE];
	enum knock_admit admit;
	uint8_t admit_addr[16]; /* 4 or 16 bytes used, network order */
};

/* What the MAC binds besides the packet: the key and where it is for. */
struct knock_key {
	const uint8_t *key;
	size_t key_len;
	const char *service;
	const char *host_id;
};

/* Writes the packet for k into buffer (at least KNOCK_MAX_SIZE bytes).
 * Returns its length, or -EINVAL (bad name, admit) / -EIO (MAC failed). */
int knock_encode(const struct knock *k, const struct knock_key *key, uint8_t *buffer, size_t size);

/* Reads the fields of a packet without checking its MAC (the client name
 * says which key to check it with). Returns 0, or -EBADMSG with *ret_reason
 * set to why ("too short", "bad magic", ...). */
int knock_parse(const uint8_t *packet, size_t len, struct knock *ret, const char **ret_reason);

/* Whether the packet's MAC is right for key (constant time). 0 if so,
 * -EBADMSG if not or if the packet does not parse, -EIO if the MAC failed. */
int knock_verify(const uint8_t *packet, size_t len, const struct knock_key *key);
