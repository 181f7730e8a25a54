/* SPDX-License-Identifier: MIT */
/* libFuzzer target: rotator_nflog_parse(), the NFLOG datagrams the decoy and
 * egress listeners read. The kernel builds them, but from packets a remote
 * sender (decoy hits) or a compromised instance (egress drops) chose: the
 * payload attribute is the sender's IP packet, and a malformed netlink
 * framing must be survived too.
 *
 * Input: one mode byte, then the datagram. Mode bit 0: egress listener
 * (drops) instead of decoy listener (hits); bits 1-3: capacity - 1 (1..8), so
 * the "batch full" path is reached; bit 4: the knock listener (knocks, each
 * payload then read by knock_parse()) instead of either. Seeds:
 * tests/fuzz/gen_seeds.c. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <netinet/in.h>

#include "knock.h"
#include "rotator_internal.h"

#define MAX_BATCH 8

static void check_addr(const struct rotator_addr *a)
{
	if (a->family != AF_INET && a->family != AF_INET6)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rotator_hit hits[MAX_BATCH];
	struct rotator_egress_drop drops[MAX_BATCH];
	struct rotator_knock knocks[MAX_BATCH];
	struct rotator_nflog_batch batch = {0};
	bool egress, knock;
	void *buf;
	int r;

	if (size < 1)
		return 0;
	egress = data[0] & 1;
	knock = data[0] & 0x10;
	batch.max = (size_t)((data[0] >> 1) & 7) + 1;
	if (knock)
		batch.knocks = knocks;
	else if (egress)
		batch.drops = drops;
	else
		batch.hits = hits;

	/* The agent reads into a buffer aligned like struct nlmsghdr: so does
	 * this copy (exactly sized, so ASan sees any read past the datagram). */
	buf = malloc(size - 1 ? size - 1 : 1);
	if (!buf)
		return 0;
	memcpy(buf, data + 1, size - 1);
	r = rotator_nflog_parse(buf, size - 1, &batch);
	free(buf);
	if (r > 0 || batch.n > batch.max)
		abort();
	for (size_t i = 0; i < batch.n; i++) {
		if (knock) {
			const struct rotator_knock *k = &knocks[i];
			struct knock parsed;
			const char *why;

			check_addr(&k->source);
			if (k->len > ROTATOR_KNOCK_PAYLOAD_MAX ||
			    (k->kind == ROTATOR_KNOCK_DATAGRAM && k->proto != IPPROTO_UDP))
				abort();
			if (k->kind == ROTATOR_KNOCK_DATAGRAM &&
			    knock_parse(k->payload, k->len, &parsed, &why) == 0 &&
			    parsed.client[0] == '\0')
				abort();
		} else if (egress) {
			const struct rotator_egress_drop *d = &drops[i];
			bool ported = d->proto == IPPROTO_TCP || d->proto == IPPROTO_UDP ||
				      d->proto == IPPROTO_SCTP || d->proto == IPPROTO_UDPLITE;

			check_addr(&d->source);
			if (d->destination.family != d->source.family || (!ported && d->port != 0))
				abort();
		} else {
			check_addr(&hits[i].source);
			if (hits[i].proto != IPPROTO_TCP && hits[i].proto != IPPROTO_UDP)
				abort();
		}
	}
	return 0;
}
