/* SPDX-License-Identifier: MIT */
/* Refusals of the control socket into the audit log and the journal, at a
 * fixed rate: control_denials.c counts them per uid and window, this puts the
 * windows on the event loop (a timer at the next window end) and hands each
 * record to the agent's audit function. */
#pragma once

#include <jansson.h>
#include <systemd/sd-event.h>

#include "control.h"

struct control_audit;

/* audit() takes the fields (owned) of a control-denied record. */
typedef void (*control_audit_fn)(json_t *fields, void *userdata);

int control_audit_new(sd_event *event, control_audit_fn audit, void *userdata,
		      struct control_audit **ret);

/* One refusal of the control server (control_refusal_handler_t's arguments). */
void control_audit_refusal(struct control_audit *ca, const struct control_peer *peer,
			   enum control_refusal kind, const char *command, const char *reason);

/* Records what the open windows counted (at stop). */
void control_audit_flush(struct control_audit *ca);
void control_audit_free(struct control_audit *ca);
