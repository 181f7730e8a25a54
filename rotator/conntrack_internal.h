/* SPDX-License-Identifier: MIT */
/* The parse step of conntrack.c without the socket: one datagram of a
 * ctnetlink dump reply. Its flows carry addresses and ports remote peers
 * chose. Not for use outside conntrack.c, its unit test and the fuzzer
 * (tests/fuzz/fuzz_conntrack.c). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "rotator.h"

struct rotator_conntrack_dump {
	const struct rotator_addr *source; /* the original source asked about */
	struct rotator_addr *found;	   /* distinct reply sources, n of max */
	size_t max, n;
};

/* The messages of one datagram answering dump request seq of portid (0
 * accepts any): each flow whose original source is d->source adds its reply
 * source to d->found. 1: more datagrams to come; 0: the dump is done; -errno
 * on a malformed message or an NLMSG_ERROR. */
int rotator_conntrack_parse(const void *buf, size_t len, uint32_t seq, uint32_t portid,
			    struct rotator_conntrack_dump *d);
