/* SPDX-License-Identifier: MIT */
/* The agent's clock on the audit log: one seal per audit epoch for as long as
 * the agent runs (each seal evolves the key and erases the old one), a failed
 * seal retried with back-off until it succeeds (never skipped), and records
 * that wait in the log's queue (disk full, failed write or fdatasync) retried
 * with back-off until they are written. */
#pragma once

#include <stdint.h>
#include <systemd/sd-event.h>

struct audit_log;
struct audit_timer;

struct audit_timer_stats {
	uint64_t seals;		/* seals written by the timer */
	uint64_t seal_failures; /* attempts that failed (each retried) */
	uint64_t seal_due_usec; /* CLOCK_MONOTONIC of the next attempt */
};

/* Seals every epoch_usec (CLOCK_MONOTONIC) from now. */
int audit_timer_new(sd_event *event, struct audit_log *log, uint64_t epoch_usec,
		    struct audit_timer **ret_timer);
/* The log has records or work waiting: flush soon, then with back-off. */
void audit_timer_kick(struct audit_timer *timer);
void audit_timer_get_stats(const struct audit_timer *timer, struct audit_timer_stats *ret_stats);
void audit_timer_free(struct audit_timer *timer);
