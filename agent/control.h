/* SPDX-License-Identifier: MIT */
/* The control socket server: RUNTIME_DIR/control.sock, SOCK_SEQPACKET, one
 * JSON request per message (control_proto.h). It reads the kernel's peer
 * credentials of each connection, decodes requests, and hands them to the
 * agent; replies are queued and written without ever blocking the loop. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>
#include <systemd/sd-event.h>
#include <jansson.h>

#include "control_proto.h"

struct control_server;
struct control_client;

struct control_peer {
	pid_t pid;
	uid_t uid;
	gid_t gid;
	bool in_read_group; /* primary or supplementary member of the read group */
};

/* Called for each valid request. The handler answers with control_client_send
 * (now or later, e.g. after a reload). */
typedef void (*control_request_handler_t)(struct control_client *client,
					  const struct control_peer *peer,
					  const struct control_request *request, void *userdata);

/* Why a connection or a message was refused before it reached the handler. */
enum control_refusal {
	CONTROL_REFUSED_MALFORMED,   /* not a valid request (too large, bad JSON, unknown command) */
	CONTROL_REFUSED_PERMISSION,  /* the peer may not run the command */
	CONTROL_REFUSED_RATE,        /* the peer's uid is over its request rate */
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
 * root only. On refusal fills a one-line reason. */
bool control_peer_may(const struct control_peer *peer, const struct control_request *request,
		      char reason[CONTROL_REASON_MAX]);
