/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "policy.h"

/* Which ports are already bound in the agent's network namespace (TCP
 * listeners; UDP sockets with a local port, connected or not: see
 * host_ports.c), over NETLINK_SOCK_DIAG, else from /proc/net: the schedule
 * skips them so a public port never shadows a program that listens on the
 * host. */

struct host_ports;

int host_ports_scan(struct host_ports **ret_ports);
bool host_ports_is_bound(const struct host_ports *ports, enum policy_proto proto, uint16_t port);
void host_ports_free(struct host_ports *ports);

/* Where host_ports_scan_from() reads: sock_diag with /proc/net as the
 * fallback (what host_ports_scan does), or /proc/net alone (benches). */
enum host_ports_source {
	HOST_PORTS_SOCK_DIAG,
	HOST_PORTS_PROC,
};
int host_ports_scan_from(enum host_ports_source source, struct host_ports **ret_ports);
/* Whether the scan read a /proc/net table (slow: /proc/net/tcp walks the
 * whole established hash), because sock_diag did not answer or was not
 * asked. */
bool host_ports_from_proc(const struct host_ports *ports);

/* Exposed for unit tests. */
int host_ports_new(struct host_ports **ret_ports);
/* Parse one /proc/net/{tcp,tcp6,udp,udp6} table. */
int host_ports_parse_table(struct host_ports *ports, enum policy_proto proto, const char *text);
/* Parse one datagram of a sock_diag dump (buffer aligned like struct
 * nlmsghdr): 1 at its NLMSG_DONE, 0 when more is to come, else a negative
 * errno (the kernel's NLMSG_ERROR, or -EBADMSG for a malformed message). */
int host_ports_parse_diag(struct host_ports *ports, enum policy_proto proto, const void *buffer,
			  size_t size);

/* Whom a decoy hit may block, and for how long (docs/nftables.md, "Who a
 * decoy blocks"). The kernel only reports hits; every block is decided here:
 * never a NeverBlock= source, a TCP source only once it completed a
 * handshake (it owns its address), UDP sources (which cannot prove theirs) at
 * most udp_limit per interval, and a source blocked again within its
 * service's window for longer each time. */

struct rotator_addr;

/* One service's rules (its [Rotation] keys). */
struct decoy_rules {
	const struct cidr *never_block;
	size_t n_never_block;
	uint64_t block_usec;  /* DecoyBlock=; 0 records hits without blocking */
	unsigned factor;      /* DecoyBlockFactor= */
	uint64_t max_usec;    /* DecoyBlockMax= */
	uint64_t window_usec; /* DecoyRepeatWindow= */
};

/* The host's (the global file's [Decoys], and the agent's options). */
struct decoy_limits {
	const struct cidr *never_block;
	size_t n_never_block;
	unsigned udp_limit;	    /* UDP hits block at most this many sources ... */
	uint64_t udp_interval_usec; /* ... per this long */
	bool handshake_possible;    /* a honeypot completes TCP handshakes */
	bool monitor;		    /* decide and record, block nothing */
};

enum decoy_evidence {
	DECOY_EVIDENCE_UDP,	      /* a datagram: its source may be forged */
	DECOY_EVIDENCE_TCP_SYN,	      /* a SYN: its source may be forged */
	DECOY_EVIDENCE_TCP_HANDSHAKE, /* the honeypot accepted it: the source is real */
};

enum decoy_verdict {
	DECOY_BLOCK,
	DECOY_AWAIT_HANDSHAKE, /* TCP: blocked once the honeypot accepts it */
	DECOY_NO_HANDSHAKE,    /* TCP without a honeypot: can never prove its source */
	DECOY_NEVER_BLOCK,     /* NeverBlock= of the service or the host */
	DECOY_RECORD_ONLY,     /* DecoyBlock=0 */
	DECOY_UDP_LIMIT,       /* UDP hits blocked udp_limit sources this interval */
	DECOY_MONITOR,	       /* would block (block_usec, strike), monitor mode */
};

struct decoy_decision {
	enum decoy_verdict verdict;
	uint64_t block_usec; /* DECOY_BLOCK, DECOY_MONITOR */
	unsigned strike;     /* 1: first block; n: the nth within each other's window */
};

struct decoy_blocks;

int decoy_blocks_new(struct decoy_blocks **ret);
void decoy_blocks_free(struct decoy_blocks *blocks);
/* The limits are copied, the never_block list is borrowed (it lives with the
 * policy set's globals). Counts of the UDP interval carry over. */
int decoy_blocks_set_limits(struct decoy_blocks *blocks, const struct decoy_limits *limits);
struct decoy_decision decoy_blocks_decide(const struct decoy_blocks *blocks,
					  const struct decoy_rules *rules,
					  const struct rotator_addr *source,
					  enum decoy_evidence evidence, uint64_t now_usec);
/* A block was made (or, in monitor mode, would have been): the source's
 * strike, and for UDP evidence a place in the interval's count. */
void decoy_blocks_record(struct decoy_blocks *blocks, const struct rotator_addr *source,
			 const struct decoy_rules *rules, const struct decoy_decision *decision,
			 enum decoy_evidence evidence, uint64_t now_usec);
/* The global file's NeverBlock= covers this source (shared decisions, which
 * no service owns, answer to it alone). */
bool decoy_blocks_never_blocks(const struct decoy_blocks *blocks,
			       const struct rotator_addr *source);
/* An operator unblocked it: its next block is a first one again. */
void decoy_blocks_forget(struct decoy_blocks *blocks, const struct rotator_addr *source);
/* The action as audit records and status name it. */
const char *decoy_blocks_verdict_name(enum decoy_verdict verdict);
const char *decoy_blocks_evidence_name(enum decoy_evidence evidence);
/* {"udp_limit", "udp_interval_usec", "udp_blocked_in_interval", "offenders", "monitor"} */
json_t *decoy_blocks_status(const struct decoy_blocks *blocks, uint64_t now_usec);
