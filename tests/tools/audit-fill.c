/* SPDX-License-Identifier: MIT */
/* audit-fill: append N records (about 400 bytes each) to an audit log as the
 * agent would, so a benchmark can start the agent on a full log.
 *
 *   audit-fill LOG STATE_DIR N MAX_BYTES KEEP
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"

int main(int argc, char **argv)
{
	struct audit_options options;
	struct audit_log *log;
	char pad[301];
	long n;
	int r;

	if (argc != 6) {
		fprintf(stderr, "usage: audit-fill LOG STATE_DIR N MAX_BYTES KEEP\n");
		return 2;
	}
	n = atol(argv[3]);
	options = (struct audit_options){.max_bytes = strtoull(argv[4], NULL, 10),
					 .keep = (unsigned)atoi(argv[5])};
	r = audit_log_open(argv[1], argv[2], &options, &log, NULL);
	if (r < 0) {
		fprintf(stderr, "audit-fill: %s: %s\n", argv[1], strerror(-r));
		return 1;
	}
	memset(pad, 'x', 300);
	pad[300] = '\0';
	for (long i = 0; i < n; i++) {
		json_t *fields = json_pack("{s:s, s:I}", "filler", pad, "i", (json_int_t)i);

		r = fields ? audit_log_append(log, "bench-filler", fields, false, NULL, NULL) : -1;
		json_decref(fields);
		if (r < 0) {
			fprintf(stderr, "audit-fill: append: %s\n", strerror(-r));
			audit_log_close(log);
			return 1;
		}
	}
	/* a clean stop, so the agent's start is not an unclean restart */
	r = audit_log_append(log, "agent-stop", NULL, true, NULL, NULL);
	if (r >= 0)
		r = audit_log_seal(log);
	audit_log_close(log);
	return r < 0 ? 1 : 0;
}
