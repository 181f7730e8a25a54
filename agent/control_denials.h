/* SPDX-License-Identifier: MIT */
/* Refused control requests, aggregated per uid: the first refusal of a uid
 * opens a window and is recorded at once; what follows in the window is
 * counted and recorded once when it ends (and opens the next window if there
 * was any). So a uid makes at most one control-denied record per window,
 * however fast it is refused. Pure bookkeeping: the caller passes the time
 * (CLOCK_MONOTONIC, µs) and writes the records. */
#pragma once

#include <stdint.h>
#include <sys/types.h>
#include <jansson.h>

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
