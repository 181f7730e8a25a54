/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "audit.h"

/* The control protocol between mtdctl and the agent: one JSON object per
 * SOCK_SEQPACKET message. Requests name one command from a closed list and
 * carry only that command's typed fields; anything else is refused with a
 * reason. Replies are {"ok":true,"result":...} or {"ok":false,"error":"..."};
 * a streamed reply (audit-show) is a series of {"ok":true,"records":[...],
 * "more":true} ending with "more":false. */

#define CONTROL_REQUEST_MAX 4096       /* bytes; a longer request is refused */
#define CONTROL_REPLY_MAX (128 * 1024) /* bytes in one reply message */
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
	CONTROL_METRICS,
	CONTROL_REPLACE,
	CONTROL_SHARED_BLOCKS,
	_CONTROL_COMMAND_MAX,
};

/* shared-blocks: what a bridge to a fleet's decision engine (mtd-crowdsec,
 * docs/fleet.md) hands the agent in one request: sources (addresses or
 * ranges ADDRESS/LENGTH) to block for a time, sources to unblock, and its
 * own state for `mtdctl status`. At most
 * CONTROL_SHARED_MAX of each per request (the bridge sends more requests). */
#define CONTROL_SHARED_MAX 32
#define CONTROL_SHARED_SECONDS_MAX (366u * 86400)
/* an address, or a range "ADDRESS/LENGTH" (the agent parses both) */
#define CONTROL_SHARED_ADDRESS_MAX 56

struct control_shared_ban {
	char address[CONTROL_SHARED_ADDRESS_MAX];
	uint32_t seconds; /* remaining time of the decision, 1 .. CONTROL_SHARED_SECONDS_MAX */
};

struct control_bridge_report {
	bool present;
	char engine[16];     /* "crowdsec" */
	char lapi[16];	     /* "up", "down", "connecting" */
	char error[128];     /* the last failure, printable ASCII ("" none) */
	uint64_t since_usec; /* realtime of the last change of lapi */
	uint64_t alerts_sent, alerts_failed, alerts_queued;
	uint64_t decisions_new, decisions_deleted, decisions_skipped;
};

struct control_request {
	enum control_command command;
	char name[64];	       /* policy-show: service name */
	uint64_t since;	       /* audit-show: records with seq > since */
	bool follow;	       /* audit-show: keep streaming new records */
	bool verify;	       /* inspect: check every kept file now (root only) */
	bool keep_connections; /* reload: revoked clients' established flows stay */
	char address[48];      /* unblock: an IPv4 or IPv6 address */
	char target[64];  /* quarantine: instance id or service; release, inspect: instance id */
	char reason[200]; /* quarantine: free text, printable ASCII */
	/* shared-blocks */
	struct control_shared_ban bans[CONTROL_SHARED_MAX];
	size_t n_bans;
	char unbans[CONTROL_SHARED_MAX][CONTROL_SHARED_ADDRESS_MAX];
	size_t n_unbans;
	struct control_bridge_report bridge;
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

/* The control socket server: RUNTIME_DIR/control.sock, SOCK_SEQPACKET, one
 * JSON request per message (control.h). It reads the kernel's peer
 * credentials of each connection, decodes requests, and hands them to the
 * agent; replies are queued and written without ever blocking the loop. */

struct control_server;
struct control_client;

struct control_peer {
	pid_t pid;
	uid_t uid;
	gid_t gid;
	bool in_read_group;  /* primary or supplementary member of the read group */
	bool in_block_group; /* ... of the block group (shared-blocks) */
};

/* Called for each valid request. The handler answers with control_client_send
 * (now or later, e.g. after a reload). */
typedef void (*control_request_handler_t)(struct control_client *client,
					  const struct control_peer *peer,
					  const struct control_request *request, void *userdata);

/* Why a connection or a message was refused before it reached the handler. */
enum control_refusal {
	CONTROL_REFUSED_MALFORMED,  /* not a valid request (too large, bad JSON, unknown command) */
	CONTROL_REFUSED_PERMISSION, /* the peer may not run the command */
	CONTROL_REFUSED_RATE,	    /* the peer's uid is over its request rate */
	CONTROL_REFUSED_CONNECTIONS, /* the peer's uid holds too many connections */
	_CONTROL_REFUSED_MAX,
};

const char *control_refusal_name(enum control_refusal kind);

/* Called for each connection or message refused before it reached the
 * handler, so the agent can count or audit it. command is the refused
 * command when the message was decoded, else NULL. */
typedef void (*control_refusal_handler_t)(const struct control_peer *peer,
					  enum control_refusal kind, const char *command,
					  const char *reason, void *userdata);

/* Listens on socket_path (replacing a stale socket file, 0660 so the read
 * group can connect). read_group is the gid allowed read-only commands, or
 * (gid_t)-1 for root only. */
int control_server_new(sd_event *event, const char *socket_path, gid_t read_group,
		       control_request_handler_t on_request, control_refusal_handler_t on_refusal,
		       void *userdata, struct control_server **ret_server);

/* The group whose members may send shared-blocks besides root (a bridge
 * that runs unprivileged, docs/fleet.md); (gid_t)-1 (the default): root only.
 * Applies to connections accepted from now on. */
void control_server_set_block_group(struct control_server *server, gid_t block_group);

/* Closes every connection and removes the socket file. */
void control_server_free(struct control_server *server);

/* Queue one message to the client. Returns -ENOBUFS (and drops the client)
 * when a client stops reading and its queue passes the cap. */
int control_client_send(struct control_client *client, const char *message);

/* Serves a long reply in steps, one step per wakeup and only when the
 * client's socket takes more: step() returns 1 when done, 0 for more, a
 * negative errno to drop the client. While a job runs the client's next
 * requests wait. free_data() is called once, also when the client goes. */
typedef int (*control_job_step_t)(struct control_client *client, void *data);
int control_client_start_job(struct control_client *client, control_job_step_t step,
			     void (*free_data)(void *data), void *data);

/* Followers get every message passed to control_server_broadcast. */
void control_client_follow(struct control_client *client);
void control_server_broadcast(struct control_server *server, const char *message);

/* Connections now, and refusals so far (by kind), for status. */
json_t *control_server_stats(const struct control_server *server);

/* Whether a peer may make a request: reads for root and the read group,
 * mutating commands and unbounded reads (control_request_needs_root) for
 * root only, but shared-blocks also for the block group. On refusal fills a one-line reason. */
bool control_peer_may(const struct control_peer *peer, const struct control_request *request,
		      char reason[CONTROL_REASON_MAX]);

/* Refusals of the control socket into the audit log and the journal, at a
 * fixed rate: control_denials.c counts them per uid and window, this puts the
 * windows on the event loop (a timer at the next window end) and hands each
 * record to the agent's audit function. */

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

/* Serving `audit-show {since, follow}` on the control socket: the records
 * with seq > since, oldest first, in batches of about 64 KiB, one batch per
 * wakeup of the client (a control job), found by audit_seek() — so a request
 * costs what it returns, whatever the size of the log. */

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
