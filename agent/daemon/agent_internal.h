/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>
#include <jansson.h>
#include <systemd/sd-event.h>

#include "policy.h"

/* hooks.c: the global file's OnEvent= hooks. A published audit record runs
 * every hook whose TYPES match it, each a sandboxed process of its own fed
 * the record line on stdin; nothing here ever waits in the loop. */

struct hooks;

/* How the runner audits its own records (hook-failed, hook-rate-limited):
 * the agent's agent_audit(); fields are stolen. Called from the loop only,
 * never from inside hooks_dispatch(). */
typedef int (*hooks_audit_fn)(const char *type, json_t *fields, void *userdata);

int hooks_new(sd_event *event, hooks_audit_fn audit, void *userdata, struct hooks **ret);

/* The hooks of g and of the policies of set (start and every reload; set may
 * be NULL). The runner keeps no pointer into either: running and queued
 * hooks keep their own copies. A hook the reload keeps (same service, TYPES
 * and command line) keeps its rate window. */
int hooks_configure(struct hooks *hooks, const struct policy_globals *g,
		    const struct policy_set *set);

/* A record was published: start (or queue) the hooks it matches. service:
 * the record's "service" field, or NULL (a policy's hooks take only the
 * records of their service). Returns at once; never audits from here. */
void hooks_dispatch(struct hooks *hooks, const char *type, const char *service, uint64_t seq,
		    const char *line);

/* {"configured", "running", "queued", "started", "failed", "rate_limited",
 * "queue_dropped"}: a new reference, NULL on allocation failure. */
json_t *hooks_status_json(const struct hooks *hooks);

/* Kills the process group of every hook still running, reaps them. */
void hooks_free(struct hooks *hooks);
