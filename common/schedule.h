/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The keyed port schedule: which public port (and which decoy ports) a service
 * uses in an epoch. Pure computation, no I/O; the algorithm and its test
 * vectors are in docs/schedule.md so that any client can follow it.
 */

#define SCHEDULE_LABEL "mtd-port-v1"
#define SCHEDULE_MAX_DECOYS 64
#define SCHEDULE_MAX_SERVICE_NAME 255
/* Clients try this many candidates of an epoch in order (mtdctl connect);
 * decoys are never among them. */
#define SCHEDULE_CLIENT_CANDIDATES 4

/* epoch = floor(unix_time / interval_seconds). -EINVAL if the interval is 0. */
int schedule_epoch(uint64_t unix_time, uint64_t interval_seconds, uint64_t *ret_epoch);

/*
 * The first n distinct candidate ports of the keyed stream for (service,
 * epoch) inside [first, last]. n must not exceed the size of the range.
 * Returns 0, -EINVAL on bad arguments, -ENOMEM/-EIO if the MAC fails.
 */
int schedule_candidates(const uint8_t *key, size_t key_len, const char *service, uint64_t epoch,
			uint16_t first, uint16_t last, uint16_t *ret_ports, size_t n);

/* Decides whether a port may not be used (bound on the host, taken by another
 * service). Must be deterministic for the duration of one schedule_compute(). */
typedef bool (*schedule_exclude_fn)(uint16_t port, void *userdata);

struct schedule_params {
	const uint8_t *key;
	size_t key_len;
	const char *service;
	uint16_t first; /* public range, inclusive */
	uint16_t last;
	uint64_t interval_sec;	     /* > 0 */
	uint64_t grace_sec;	     /* < interval_sec */
	size_t n_decoys;	     /* <= SCHEDULE_MAX_DECOYS */
	schedule_exclude_fn exclude; /* may be NULL */
	void *userdata;
};

struct schedule_result {
	uint64_t epoch;
	uint16_t port;	     /* current public port */
	uint16_t prev_port;  /* public port of epoch - 1 (0 for epoch 0) */
	uint16_t next_port;  /* public port of epoch + 1 */
	uint16_t grace_port; /* prev_port while inside grace and != port, else 0 */
	uint16_t decoys[SCHEDULE_MAX_DECOYS];
	size_t n_decoys;
	uint64_t boundary_usec;	     /* start of this epoch, usec since the Unix epoch */
	uint64_t next_boundary_usec; /* start of the next epoch */
};

/*
 * The public port of a service for one epoch: the first candidate that is not
 * excluded. -EADDRINUSE if every port of the range is excluded.
 */
int schedule_port(const struct schedule_params *p, uint64_t epoch, uint16_t *ret_port);

/*
 * Everything the rotator needs at real time now_usec (usec since the Unix
 * epoch): epoch, port, grace port and decoys. Decoys are the next distinct
 * candidates after the chosen port that are not excluded and are none of the
 * service's previous, current and next ports (so a client with a skewed
 * clock never lands on a decoy). Fewer decoys than asked if the range is
 * too small.
 */
int schedule_compute(const struct schedule_params *p, uint64_t now_usec,
		     struct schedule_result *ret);

/* Start of the epoch after the one containing now_usec, in usec. */
int schedule_next_boundary_usec(uint64_t now_usec, uint64_t interval_sec, uint64_t *ret_usec);

/* Whether now_usec lies within grace_sec after the start of its epoch. */
bool schedule_in_grace(uint64_t now_usec, uint64_t interval_sec, uint64_t grace_sec);

/*
 * Per-client schedules (docs/schedule.md, "A schedule per client"): each
 * client of a service has its own key, and from it its own door (public port)
 * and knock port per epoch, different on every host (host_id). The candidate
 * stream is the one above over another base:
 *
 *   label 0x00 service 0x00 client 0x00 host_id 0x00 epoch(8 bytes, big endian)
 *
 * with label SCHEDULE_CLIENT_PORT_LABEL for the door and
 * SCHEDULE_CLIENT_KNOCK_LABEL for the knock port.
 */
#define SCHEDULE_CLIENT_PORT_LABEL "mtd-client-port-v1"
#define SCHEDULE_CLIENT_KNOCK_LABEL "mtd-client-knock-v1"
#define SCHEDULE_MAX_CLIENT_NAME 64
#define SCHEDULE_MAX_HOST_ID 255

struct schedule_client {
	const uint8_t *key;
	size_t key_len;
	const char *service;
	const char *client;  /* schedule_client_name_valid() */
	const char *host_id; /* schedule_host_id_valid() */
	uint16_t first;	     /* public range, inclusive */
	uint16_t last;
};

/* A client name: 1..SCHEDULE_MAX_CLIENT_NAME of [A-Za-z0-9_.-], not starting
 * with '.' or '-' (it names a key file, NAME.key, and appears in logs). */
bool schedule_client_name_valid(const char *name);

/* A host id: 1..SCHEDULE_MAX_HOST_ID of [A-Za-z0-9_.:-] (an address, a host
 * name). */
bool schedule_host_id_valid(const char *host_id);

/* The first n distinct candidates of the client's door stream for epoch. */
int schedule_client_candidates(const struct schedule_client *c, uint64_t epoch, uint16_t *ret_ports,
			       size_t n);

/* The client's door for epoch: its first candidate that is not excluded
 * (exclude may be NULL). -EADDRINUSE if every port is excluded. */
int schedule_client_port(const struct schedule_client *c, uint64_t epoch,
			 schedule_exclude_fn exclude, void *userdata, uint16_t *ret_port);

/* The client's knock port (UDP) for epoch: the first candidate of its knock
 * stream. Never excluded: nothing answers on it either way. */
int schedule_client_knock_port(const struct schedule_client *c, uint64_t epoch, uint16_t *ret_port);

/*
 * Many clients at once (an agent with thousands of them): one HMAC fetched
 * and its context reused, keyed once per client per call, and the candidate
 * streams read without the record of candidates seen (the first one not
 * excluded is the same either way). Outputs are byte for byte those of
 * schedule_client_port() and schedule_client_knock_port().
 */
struct schedule_mac;
int schedule_mac_new(struct schedule_mac **ret);
void schedule_mac_free(struct schedule_mac *m);
/* For each of the n epochs: the client's door (ret_doors[i], exclude as in
 * schedule_client_port) and its knock port (ret_knocks[i]); either output may
 * be NULL. */
int schedule_client_ports_fast(struct schedule_mac *m, const struct schedule_client *c,
			       const uint64_t *epochs, size_t n, schedule_exclude_fn exclude,
			       void *userdata, uint16_t *ret_doors, uint16_t *ret_knocks);
