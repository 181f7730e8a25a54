/* SPDX-License-Identifier: MIT */
/*
 * The keyed port schedule: which public port (and which decoy ports) a service
 * uses in an epoch. Pure computation, no I/O; the algorithm and its test
 * vectors are in docs/schedule.md so that any client can follow it.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
	uint64_t interval_sec; /* > 0 */
	uint64_t grace_sec;    /* < interval_sec */
	size_t n_decoys;       /* <= SCHEDULE_MAX_DECOYS */
	schedule_exclude_fn exclude; /* may be NULL */
	void *userdata;
};

struct schedule_result {
	uint64_t epoch;
	uint16_t port;       /* current public port */
	uint16_t prev_port;  /* public port of epoch - 1 (0 for epoch 0) */
	uint16_t next_port;  /* public port of epoch + 1 */
	uint16_t grace_port; /* prev_port while inside grace and != port, else 0 */
	uint16_t decoys[SCHEDULE_MAX_DECOYS];
	size_t n_decoys;
	uint64_t boundary_usec;      /* start of this epoch, usec since the Unix epoch */
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
