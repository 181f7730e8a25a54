/* SPDX-License-Identifier: MIT */
#pragma once

/* mtd-crowdsec: the bridge between one agent and a CrowdSec local API (LAPI),
 * its own unprivileged process so that the agent's loop never waits on the
 * network (docs/fleet.md, "CrowdSec"). Sensor: the agent's source-blocked
 * records (followed on the control socket) become alerts with a ban
 * decision, scenario mtd/decoy-hit. Bouncer: the LAPI's decision stream
 * becomes shared-blocks requests to the agent. */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "control.h"

#define CROWDSEC_REASON_MAX 256
#define CROWDSEC_SCENARIO "mtd/decoy-hit"

/* The machine's credentials, as `cscli machines add NAME -f FILE` writes
 * them: lines "url: ...", "login: ...", "password: ..." (other lines are
 * ignored). The file holds a secret: owned by root or the reader, no access
 * for group or others (common/secret_file.h). */
struct crowdsec_machine {
	char url[256];
	char login[128];
	char password[256];
};
int crowdsec_read_machine_file(const char *path, struct crowdsec_machine *ret,
			       char reason[CROWDSEC_REASON_MAX]);

/* The bouncer's API key (`cscli bouncers add NAME -o raw`): one line, same
 * rules for the file. */
int crowdsec_read_key_file(const char *path, char *ret_key, size_t size,
			   char reason[CROWDSEC_REASON_MAX]);

/* A Go duration as the LAPI prints them ("3h59m58.123s", "-1.5s", "150ms",
 * "2µs") in microseconds; -EINVAL for anything else. */
int crowdsec_parse_duration(const char *text, int64_t *ret_usec);

/* One decision of the stream as the agent takes it: a single address
 * (scope Ip, or a Range of one address: /32, /128), or a range
 * "ADDRESS/LENGTH" (scope Range, host bits cleared). */
struct crowdsec_decision {
	char address[CONTROL_SHARED_ADDRESS_MAX];
	int64_t remaining_usec;
};

struct crowdsec_stream {
	struct crowdsec_decision *bans, *unbans;
	size_t n_bans, n_unbans;
	/* decisions the agent cannot take: not a ban (captcha, ...), another
	 * scope, an expired ban, a bad value */
	size_t skipped;
};

/* The body of GET /v1/decisions/stream: {"new":[...]|null, "deleted":[...]|null}.
 * -EINVAL with a reason when it is not that shape. */
int crowdsec_parse_stream(json_t *body, struct crowdsec_stream *ret,
			  char reason[CROWDSEC_REASON_MAX]);
void crowdsec_stream_done(struct crowdsec_stream *stream);

/* The alert for one agent record, or NULL when the record is not one the
 * sensor sends: a source-blocked record that was carried out (not
 * simulated) with a source and block_sec. now_text: RFC 3339 time. */
json_t *crowdsec_alert_from_record(json_t *record, const char *now_text);

/* The LAPI over HTTP (libcurl: TLS, proxies and redirects as teams run them;
 * each call bounded by the timeout). Calls block the bridge, never the
 * agent. */
struct lapi;

int lapi_new(const char *url, const char *bouncer_key, const struct crowdsec_machine *machine,
	     long timeout_ms, struct lapi **ret);
void lapi_free(struct lapi *lapi);

/* GET /v1/decisions/stream (startup=true: every decision in force). The
 * parsed body in *ret (caller decrefs). */
int lapi_pull(struct lapi *lapi, bool startup, json_t **ret, char reason[CROWDSEC_REASON_MAX]);

/* POST /v1/alerts with the machine's JWT (logging in through
 * /v1/watchers/login first, and again once when the token is refused). */
int lapi_post_alerts(struct lapi *lapi, json_t *alerts, char reason[CROWDSEC_REASON_MAX]);

/* The agent's control socket: one connection for requests, one following
 * the audit log. */
struct crowdsec_agent;

int crowdsec_agent_connect(const char *socket_path, struct crowdsec_agent **ret,
			   char reason[CROWDSEC_REASON_MAX]);
void crowdsec_agent_free(struct crowdsec_agent *agent);

/* One request, its reply waited for up to timeout_ms; the reply's "result"
 * (caller decrefs), or -EIO with the agent's reason. */
int crowdsec_agent_request(struct crowdsec_agent *agent, const struct control_request *request,
			   int timeout_ms, json_t **ret_result, char reason[CROWDSEC_REASON_MAX]);

/* Start following the audit log after seq `since`; the fd to poll. */
int crowdsec_agent_follow(struct crowdsec_agent *agent, uint64_t since,
			  char reason[CROWDSEC_REASON_MAX]);
int crowdsec_agent_follow_fd(const struct crowdsec_agent *agent);

/* One message of the follow connection: its records (borrowed from *ret_message,
 * which the caller decrefs). 0 when nothing is waiting, 1 with a message,
 * -ECONNRESET when the agent closed it or the stream ended (follow again from
 * the last seq). */
int crowdsec_agent_read_follow(struct crowdsec_agent *agent, json_t **ret_message,
			       char reason[CROWDSEC_REASON_MAX]);
