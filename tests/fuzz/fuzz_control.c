/* SPDX-License-Identifier: MIT */
/* libFuzzer: the control request decoder sees raw socket messages. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct control_request request;
	char reason[CONTROL_REASON_MAX];

	if (control_request_decode((const char *)data, size, &request, reason) == 0) {
		char *again = control_request_encode(&request);
		struct control_request round;

		/* Whatever decodes must encode to something that decodes the same. */
		if (!again || control_request_decode(again, strlen(again), &round, reason) != 0 ||
		    round.command != request.command || round.since != request.since ||
		    round.follow != request.follow || strcmp(round.name, request.name) != 0)
			abort();
		free(again);
	}
	return 0;
}
