/* SPDX-License-Identifier: MIT */
/* The parse step of nflog.c without the socket: what the kernel's NFLOG
 * messages (built from a remote sender's packet) turn into. Not for use
 * outside nflog.c, its unit test and the fuzzer (tests/fuzz/fuzz_nflog.c). */
#pragma once

#include <stddef.h>

#include "nflog.h"

/* Where parsed packets go: decoy hits (hits set) or egress drops (drops set),
 * exactly one of the two; n of max filled. */
struct rotator_nflog_batch {
	struct rotator_hit *hits;
	struct rotator_egress_drop *drops;
	size_t n, max;
};

/* One datagram as read from the NFLOG socket (netlink messages, unsolicited:
 * portid and seq 0). Appends the decoy hits or egress drops it logs to batch
 * until it holds max; skips every other message and packet. 0, or -errno: an
 * NLMSG_ERROR's error (-ENOBUFS: the kernel dropped log messages), -EBADMSG
 * for a malformed one. */
int rotator_nflog_parse(const void *buf, size_t len, struct rotator_nflog_batch *batch);
