/* SPDX-License-Identifier: MIT */
/*
 * mtd-client: a service's client on its own machine (docs/clients.md). It
 * reads a profile (one client of one service, its key, the hosts) and follows
 * the client's schedule with common/schedule.h and common/knock.h only, so it
 * links libcrypto and libc and nothing of the agent. Its files call one way:
 *   mtd-client.c   the command table, dispatch, usage, main
 *   forward.c      forward: the local TCP forwarder (epoll loop)
 *   relay.c        connect: the door of the moment, then stdio
 *   door.c         the client's doors, window and knock ports; the knock
 *   profile.c      the profile: parsing and reading (owner-only)
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "schedule.h"

#define PROFILE_VERSION 1
#define PROFILE_MAX_HOSTS 16
#define PROFILE_MAX_ADDRESS 255 /* an IP literal or a DNS name */
#define PROFILE_MIN_KEY 16
#define PROFILE_MAX_KEY 1024
#define PROFILE_MAX_SIZE 65536 /* a profile file is at most this many bytes */
#define PROFILE_MAX_ERROR 512

enum profile_auth {
	PROFILE_AUTH_NONE,
	PROFILE_AUTH_KNOCK,
};

enum profile_protocol {
	PROFILE_PROTOCOL_TCP,
	PROFILE_PROTOCOL_UDP,
};

struct profile_host {
	char address[PROFILE_MAX_ADDRESS + 1];
	char host_id[SCHEDULE_MAX_HOST_ID + 1];
};

struct profile {
	char service[SCHEDULE_MAX_SERVICE_NAME + 1];
	char client[SCHEDULE_MAX_CLIENT_NAME + 1];
	struct profile_host hosts[PROFILE_MAX_HOSTS];
	size_t n_hosts;
	enum profile_protocol protocol;
	uint16_t first; /* PublicPorts=, inclusive */
	uint16_t last;
	uint64_t interval_sec;
	uint64_t grace_usec;
	enum profile_auth auth;
	uint8_t key[PROFILE_MAX_KEY];
	size_t key_len;
};

/* --- profile.c ------------------------------------------------------------- */

/*
 * Parses a profile's text (len bytes, NUL bytes refused). name is what errors
 * start with (the file's path). On failure returns -EINVAL and writes one
 * line "NAME:LINE: why" (or "NAME: why" for what no line holds) into error;
 * *ret is then cleared.
 */
int profile_parse(const char *text, size_t len, const char *name, struct profile *ret, char *error,
		  size_t error_size);

/*
 * Reads and parses the profile at path: a secret file (common/secret_file.h:
 * a regular file of root or the caller, no access for group or others),
 * decided on the descriptor that is read. Errors as profile_parse(), also for
 * a file that cannot be opened or read ("PATH: why").
 */
int profile_load(const char *path, struct profile *ret, char *error, size_t error_size);

/* Wipes the key. */
void profile_clear(struct profile *p);

/* The host whose address or host id is h, or NULL. */
const struct profile_host *profile_find_host(const struct profile *p, const char *h);

/* The schedule of the profile's client on host. */
struct schedule_client profile_schedule(const struct profile *p, const struct profile_host *host);

/* "tcp", "udp"; "none", "knock". */
const char *profile_protocol_name(enum profile_protocol protocol);
const char *profile_auth_name(enum profile_auth auth);

/* --- door.c ---------------------------------------------------------------- */

/* The client's view of one epoch on one host. */
struct client_epoch {
	uint64_t epoch;
	uint64_t start_usec; /* the epoch's boundary, usec since the Unix epoch */
	uint64_t end_usec;   /* the next boundary */
	uint16_t window[SCHEDULE_CLIENT_CANDIDATES]; /* the door first, then the ports after it */
	size_t n_window;
	uint16_t knock_port;
	uint16_t prev_door; /* the previous epoch's door (its grace door), 0 for epoch 0 */
	uint16_t next_door; /* the next epoch's door */
};

#define CLIENT_MAX_ORDER 3

/* After a knock, the agent admits the source in about a millisecond
 * (tests/bench); a connection waits the first settle time, and on a refusal
 * knocks again (a lost datagram, a busy agent, a boundary crossed) and waits
 * the next one. Without a knock, passes are tried at once. */
#define CLIENT_PASSES 3
#define CLIENT_SETTLE_MSEC                                                                         \
	{                                                                                          \
		20, 250, 1000                                                                      \
	}

/* The ports to try, in order, to reach the door of e: the door, then the
 * neighbouring epochs' doors (a clock a little off the agent's). Distinct;
 * returns how many (<= CLIENT_MAX_ORDER). Not the rest of the window: the
 * agent's decoys avoid every client's doors, not the candidates after them,
 * and touching a decoy blocks the source (docs/clients.md, "Limits"). */
size_t client_door_order(const struct client_epoch *e, uint16_t ret[CLIENT_MAX_ORDER]);

/* The epoch containing at_usec on host. -errno on failure. */
int client_epoch_at(const struct profile *p, const struct profile_host *host, uint64_t at_usec,
		    struct client_epoch *ret);

/*
 * Sends the knock for the epoch containing at_usec (the time field) to
 * host's knock port of that epoch, from a new UDP socket, with a fresh nonce
 * from getrandom(). Returns the knock port, or -errno.
 */
int client_knock(const struct profile *p, const struct profile_host *host,
		 const struct client_epoch *e, uint64_t at_usec);

/* Resolves host's address (numeric or DNS) for TCP into *ret (AF_INET or
 * AF_INET6 sockaddr, port 0). -errno, or -EHOSTUNREACH with *ret_reason. */
int client_resolve(const struct profile_host *host, struct sockaddr_storage *ret,
		   const char **ret_reason);

/* Writes "mtd-client: ..." and a newline to stderr. */
__attribute__((format(printf, 1, 2))) void client_log(const char *fmt, ...);

/* --- relay.c --------------------------------------------------------------- */

/* The connect command: knock (Auth=knock), connect to the door of the moment
 * (client_door_order), relay stdin/stdout.
 * host NULL: the profile's hosts in order. Returns an exit code. */
int client_connect_command(const struct profile *p, const char *host);

/* Connects (blocking, bounded) to the door of the moment on host, knocking
 * first when the profile says so. Returns a connected fd, or -errno. */
int client_connect_door(const struct profile *p, const struct profile_host *host);

/* --- forward.c ------------------------------------------------------------- */

struct client_forward_options {
	const char *listen; /* "127.0.0.1:PORT", "[::1]:PORT" */
	const char *host;   /* NULL: the profile's hosts in order */
	unsigned max_connections;
};

/* The forward command; returns an exit code (0 after SIGTERM/SIGINT). */
int client_forward_command(const struct profile *p, const struct client_forward_options *o);
