/* SPDX-License-Identifier: MIT */
/*
 * Decoy hits as the agent learns of them: the decoy rule of `inet mtd` logs
 * every hit to an NFLOG group (with the prefix "mtd-decoy "); this listens on
 * that group over its own netlink socket and parses each logged packet into
 * (source address, protocol, port). Map the port to a service with
 * rotator_decoy_owner(). The kernel has already blocked the source.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rotator.h"

struct rotator_nflog;

struct rotator_hit {
	struct rotator_addr source;
	uint8_t proto;  /* IPPROTO_TCP or IPPROTO_UDP */
	uint16_t port;  /* the decoy port that was touched (host order) */
};

/* Bind NFLOG group (same as rotator_config.nflog_group) in this netns.
 * -EBUSY if another listener has the group. */
int rotator_nflog_open(uint16_t group, struct rotator_nflog **ret);
void rotator_nflog_free(struct rotator_nflog *l);

/* Non-blocking, close-on-exec fd for the caller's event loop. */
int rotator_nflog_fd(const struct rotator_nflog *l);

/* Wait up to timeout_ms for a hit: 1 readable, 0 timeout, negative errno. */
int rotator_nflog_wait(struct rotator_nflog *l, int timeout_ms);

/* Parse what is queued (does not block): up to n hits into hits, count in
 * *ret_n (0 if nothing was queued). Packets that are not decoy hits are
 * skipped. -ENOBUFS means the kernel dropped log messages (overrun). */
int rotator_nflog_read(struct rotator_nflog *l, struct rotator_hit *hits, size_t n,
		       size_t *ret_n);

/*
 * Egress drops of the instance envelope: open a listener on
 * rotator_config.egress_nflog_group and read them with this instead. The
 * sender is the link it came in on (ifindex, the host end "mtdi<N>"), never
 * its source address, which an instance can write (a spoofed source, one not
 * routed via that link, is flagged).
 */
struct rotator_egress_drop {
	struct rotator_addr source, destination;
	uint8_t proto;  /* any IP protocol (ICMP too) */
	uint16_t port;  /* destination port for TCP/UDP/SCTP/UDP-Lite, else 0 */
	uint32_t ifindex; /* the link it came in on, 0 if not known */
	bool spoofed;   /* logged by the anti-spoofing rule ("mtd-spoof ") */
};

/* Like rotator_nflog_read(), for a listener on the egress group. */
int rotator_nflog_read_egress(struct rotator_nflog *l, struct rotator_egress_drop *drops,
			      size_t n, size_t *ret_n);
