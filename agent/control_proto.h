/* SPDX-License-Identifier: MIT */
/* The control protocol between mtdctl and the agent: one JSON object per
 * SOCK_SEQPACKET message. Requests name one command from a closed list and
 * carry only that command's typed fields; anything else is refused with a
 * reason. Replies are {"ok":true,"result":...} or {"ok":false,"error":"..."};
 * a streamed reply (audit-show) is a series of {"ok":true,"records":[...],
 * "more":true} ending with "more":false. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#define CONTROL_REQUEST_MAX 4096        /* bytes; a longer request is refused */
#define CONTROL_REPLY_MAX (128 * 1024)  /* bytes in one reply message */
#define CONTROL_REASON_MAX 256

enum control_command {
	CONTROL_STATUS,
	CONTROL_POLICY_LIST,
	CONTROL_POLICY_SHOW,
	CONTROL_RELOAD,
	CONTROL_AUDIT_SHOW,
	CONTROL_UNBLOCK,
	CONTROL_INSTANCES,
	CONTROL_QUARANTINE,
	CONTROL_RELEASE,
	CONTROL_INSPECT,
	_CONTROL_COMMAND_MAX,
};

struct control_request {
	enum control_command command;
	char name[64];  /* policy-show: service name */
	uint64_t since; /* audit-show: records with seq > since */
	bool follow;    /* audit-show: keep streaming new records */
	bool verify;    /* inspect: check every kept file now (root only) */
	char address[48]; /* unblock: an IPv4 or IPv6 address */
	char target[64];  /* quarantine: instance id or service; release, inspect: instance id */
	char reason[200]; /* quarantine: free text, printable ASCII */
};

/* Parse and validate one request message. On failure returns -EINVAL (or
 * -EMSGSIZE) and a one-line reason in ret_reason. */
int control_request_decode(const char *message, size_t len, struct control_request *ret_request,
			   char ret_reason[CONTROL_REASON_MAX]);

/* The request as a JSON message (caller frees). */
char *control_request_encode(const struct control_request *request);

const char *control_command_name(enum control_command command);
int control_command_from_name(const char *name, enum control_command *ret_command);

/* Mutating commands are for root only and are audited before they are answered. */
bool control_command_is_mutating(enum control_command command);

/* Whether this request is for root only: a mutating command, or a read whose
 * cost is not bounded for others (inspect with verify). */
bool control_request_needs_root(const struct control_request *request);

/* Reply builders; both return a malloc'd message. */
char *control_reply_ok(json_t *result);
char *control_reply_error(const char *reason);

/* An error reply that also carries details (e.g. every policy error line). */
char *control_reply_error_details(const char *reason, const char *details_key, json_t *details);
