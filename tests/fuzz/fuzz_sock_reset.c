/* SPDX-License-Identifier: MIT */
/* libFuzzer target: sock_reset_parse_dump() and sock_reset_parse_ack(), the
 * sock_diag replies the agent reads when it destroys an instance's TCP
 * sockets (agent/sandbox/sock_reset.c). The kernel frames them, but the
 * sockets are whatever the instance (a compromised one) opened, and a
 * malformed message, another request's or an NLMSG_ERROR must be survived.
 *
 * Input: one mode byte (bit 0: IPv6 dump instead of IPv4; bits 1-3: capacity
 * - 1, 1..8, so the bound is reached; bit 4: an acknowledgement instead of a
 * dump), then the datagram. The request is FUZZ_SEQ. Seeds:
 * tests/fuzz/gen_seeds.c. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "sandbox.h"

#define MAX_ENTRIES 8
#define FUZZ_SEQ 0x5eed

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sock_reset_entry entries[MAX_ENTRIES];
	uint8_t family;
	size_t max, n = 0;
	bool truncated = false, ack;
	void *buf;
	int r;

	if (size < 1)
		return 0;
	family = (data[0] & 1) ? AF_INET6 : AF_INET;
	max = (size_t)((data[0] >> 1) & 7) + 1;
	ack = data[0] & 0x10;

	/* aligned like the agent's receive buffer, exactly sized for ASan */
	buf = malloc(size - 1 ? size - 1 : 1);
	if (!buf)
		return 0;
	memcpy(buf, data + 1, size - 1);
	if (ack) {
		r = sock_reset_parse_ack(buf, size - 1, FUZZ_SEQ);
		free(buf);
		/* 0 or an errno the kernel could have sent */
		if (r > 0 || r <= -4096)
			abort();
		return 0;
	}
	r = sock_reset_parse_dump(buf, size - 1, FUZZ_SEQ, family, entries, max, &n, &truncated);
	free(buf);
	if (r > 1 || r <= -4096 || n > max || (truncated && n != max))
		abort();
	for (size_t i = 0; i < n; i++)
		if (entries[i].family != family)
			abort();
	return 0;
}
