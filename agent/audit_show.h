/* SPDX-License-Identifier: MIT */
/* Serving `audit-show {since, follow}` on the control socket: the records
 * with seq > since, oldest first, in batches of about 64 KiB, one batch per
 * wakeup of the client (a control job), found by audit_seek() — so a request
 * costs what it returns, whatever the size of the log. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "audit.h"
#include "control.h"

/* At most this many records in one request; mtdctl asks again from where a
 * reply stopped (truncated). */
#define AUDIT_SHOW_RECORDS_MAX 10000
#define AUDIT_SHOW_BATCH_BYTES (64 * 1024)

struct audit_show_stats {
	uint64_t requests;
	uint64_t lines_read; /* lines read from the log files for all requests */
	uint64_t records_sent;
};

/* log is asked for its last seq only now; the files are read by name and
 * followed across rotations by inode. stats must outlive the client (the
 * agent frees the control server first); it is updated as the request is
 * served. */
int audit_show_start(struct control_client *client, const struct audit_log *log,
		     const char *log_path, unsigned keep, uint64_t since, bool follow,
		     struct audit_show_stats *stats);
