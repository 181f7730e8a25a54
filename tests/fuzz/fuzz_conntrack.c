/* SPDX-License-Identifier: MIT */
/* libFuzzer target: rotator_conntrack_parse(), one datagram of the ctnetlink
 * dump the agent reads after a decoy hit. The kernel frames it, but the flows'
 * addresses and ports are whatever remote peers used, and a malformed
 * message (or an NLMSG_ERROR) must be survived too.
 *
 * Input: one byte (bit 0: IPv6 source; bits 1-3: capacity - 1, 1..8), the
 * source address asked about (4 or 16 bytes), then the datagram. The dump is
 * request FUZZ_SEQ of FUZZ_PORTID (messages with seq/portid 0 pass as well).
 * Seeds: tests/fuzz/gen_seeds.c. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "rotator_internal.h"

#define MAX_FOUND 8
#define FUZZ_SEQ 0x5eed
#define FUZZ_PORTID 4242

static bool same(const struct rotator_addr *a, const struct rotator_addr *b)
{
	return a->family == b->family &&
	       memcmp(&a->in6, &b->in6, a->family == AF_INET ? 4 : 16) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rotator_addr source = {0}, found[MAX_FOUND];
	struct rotator_conntrack_dump d = {.source = &source, .found = found};
	size_t alen;
	void *buf;
	int r;

	if (size < 1)
		return 0;
	source.family = (data[0] & 1) ? AF_INET6 : AF_INET;
	alen = source.family == AF_INET ? 4 : 16;
	d.max = (size_t)((data[0] >> 1) & 7) + 1;
	if (size < 1 + alen)
		return 0;
	memcpy(&source.in6, data + 1, alen);

	/* aligned like the agent's receive buffer, exactly sized for ASan */
	buf = malloc(size - 1 - alen ? size - 1 - alen : 1);
	if (!buf)
		return 0;
	memcpy(buf, data + 1 + alen, size - 1 - alen);
	r = rotator_conntrack_parse(buf, size - 1 - alen, FUZZ_SEQ, FUZZ_PORTID, &d);
	free(buf);
	if (r > 1 || d.n > d.max)
		abort();
	/* distinct reply sources, each a real address */
	for (size_t i = 0; i < d.n; i++) {
		if (found[i].family != AF_INET && found[i].family != AF_INET6)
			abort();
		for (size_t j = 0; j < i; j++)
			if (same(&found[i], &found[j]))
				abort();
	}
	return 0;
}
