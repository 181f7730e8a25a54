/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>
#include <sys/types.h>
#include <jansson.h>

/* Admission on the control socket, per uid: how many connections each uid
 * holds, and a token bucket of requests per uid. Root (uid 0) is never rate
 * limited and has CONTROL_ROOT_RESERVED of the CONTROL_CLIENTS_MAX slots to
 * itself, so no other uid can lock it out. Pure bookkeeping: the caller passes
 * the time (CLOCK_MONOTONIC, µs) and acts on the answer. */

#define CONTROL_CLIENTS_MAX 64	    /* connections in all */
#define CONTROL_ROOT_RESERVED 16    /* of them, only root may use these */
#define CONTROL_UID_CLIENTS_MAX 8   /* connections of one non-root uid */
#define CONTROL_UID_RATE 20	    /* requests per second of one non-root uid... */
#define CONTROL_UID_BURST 40	    /* ...after a burst of this many */
#define CONTROL_LIMITS_UIDS_MAX 128 /* uids tracked at once */
#define CONTROL_LIMITS_REASON_MAX 160

struct control_limits;

int control_limits_new(struct control_limits **ret_limits);
void control_limits_free(struct control_limits *limits);

/* Whether uid may hold one more connection; on yes (0) it is counted. On no:
 * -EUSERS (all slots that uid may use are taken) or -EMFILE (the uid's own
 * cap), with a one-line reason. */
int control_limits_connect(struct control_limits *limits, uid_t uid,
			   char ret_reason[CONTROL_LIMITS_REASON_MAX]);
void control_limits_disconnect(struct control_limits *limits, uid_t uid);

/* Takes one request token of uid at now_usec: 0, or -EBUSY with a one-line
 * reason when the uid is over its rate. */
int control_limits_request(struct control_limits *limits, uid_t uid, uint64_t now_usec,
			   char ret_reason[CONTROL_LIMITS_REASON_MAX]);

unsigned control_limits_clients(const struct control_limits *limits);

/* Refused control requests, aggregated per uid: the first refusal of a uid
 * opens a window and is recorded at once; what follows in the window is
 * counted and recorded once when it ends (and opens the next window if there
 * was any). So a uid makes at most one control-denied record per window,
 * however fast it is refused. Pure bookkeeping: the caller passes the time
 * (CLOCK_MONOTONIC, µs) and writes the records. */

#define CONTROL_DENIALS_WINDOW_USEC (10u * 1000000u)
#define CONTROL_DENIALS_UIDS_MAX 64 /* uids with an open window; more share one */

struct control_denials;

int control_denials_new(uint64_t window_usec, struct control_denials **ret_denials);
void control_denials_free(struct control_denials *denials);

/* Counts one refusal (kind: a short word, "permission", "rate", …; command:
 * the refused command or NULL). Returns 1 and, in *ret_fields, the fields of
 * a control-denied record to write now when this opens the uid's window; 0
 * when it is counted for the record that closes the window. */
int control_denials_add(struct control_denials *denials, uid_t uid, pid_t pid, const char *kind,
			const char *command, const char *reason, uint64_t now_usec,
			json_t **ret_fields);

/* When the earliest window ends, or UINT64_MAX when none is open. */
uint64_t control_denials_next_usec(const struct control_denials *denials);

/* Ends one window that is over by now_usec: returns 1 and the fields of the
 * record of what it counted (a new window then opens), 0 when no window is
 * due (a window that counted nothing just closes). Call until it returns 0. */
int control_denials_pop_due(struct control_denials *denials, uint64_t now_usec,
			    json_t **ret_fields);
