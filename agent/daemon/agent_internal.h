/* SPDX-License-Identifier: MIT */
/* The daemon's own pieces besides agent.c: its figures for Prometheus
 * (metrics.c, docs/metrics.md), the optional listener serving them
 * (metrics_listener.c), and the OnEvent= hooks (hooks.c, docs/hooks.md). */
#pragma once

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <systemd/sd-event.h>

#include "audit.h"
#include "fleet.h"
#include "policy.h"
#include "rotation.h"

struct metrics;

/* What the figures are read from at rendering time (any may be NULL). */
struct metrics_sources {
	struct audit_log *audit;
	const struct audit_timer *audit_timer;
	const struct clock_trust *clock;
	const struct rotation *rotation;
	const struct fleet *fleet;
};

int metrics_new(struct metrics **ret);
void metrics_free(struct metrics *m);
/* Every audit record the agent submits passes here first: decoy hits,
 * blocks, detections, replacements and launches are counted from them. */
void metrics_observe(struct metrics *m, const char *type, const json_t *fields);
/* The text exposition format 0.0.4; NULL when memory ran out. */
char *metrics_render(const struct metrics *m, const struct metrics_sources *sources,
		     size_t *ret_len);

/* --metrics-listen: "unix:PATH", "127.0.0.1:PORT" (any 127/8 address) or
 * "[::1]:PORT". Anything else, a non-loopback address included, is refused
 * with a one-line reason. */
struct metrics_address {
	struct sockaddr_storage addr;
	socklen_t len;
	char text[128]; /* as given */
};
int metrics_address_parse(const char *text, struct metrics_address *ret, char *reason,
			  size_t reason_size);

struct metrics_listener;
/* Renders the text for one request; returns NULL when it cannot. */
typedef char *(*metrics_render_fn)(void *userdata, size_t *ret_len);

/* Listens (a unix socket gets mode 0660, group gid unless (gid_t)-1) and
 * answers GET /metrics from the loop, never blocking it. */
int metrics_listener_new(sd_event *event, const struct metrics_address *address, gid_t gid,
			 metrics_render_fn render, void *userdata, struct metrics_listener **ret);
void metrics_listener_free(struct metrics_listener *l);

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
