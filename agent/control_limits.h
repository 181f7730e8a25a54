/* SPDX-License-Identifier: MIT */
/* Admission on the control socket, per uid: how many connections each uid
 * holds, and a token bucket of requests per uid. Root (uid 0) is never rate
 * limited and has CONTROL_ROOT_RESERVED of the CONTROL_CLIENTS_MAX slots to
 * itself, so no other uid can lock it out. Pure bookkeeping: the caller passes
 * the time (CLOCK_MONOTONIC, µs) and acts on the answer. */
#pragma once

#include <stdint.h>
#include <sys/types.h>

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
