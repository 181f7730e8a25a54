/* SPDX-License-Identifier: MIT */
/* How often one instance's signals of compromise reach the audit log. A
 * compromised instance can raise a signal as fast as it can make a system
 * call or a file; each used to cost an fdatasync'd record and an allocation,
 * and four threads kept the agent busy answering them. Now, per instance and
 * per kind, the first signal passes at once (it starts the response); every
 * later one is only counted, and once an interval a summary with the count
 * and the first evidence of that interval is recorded: one record per
 * instance, kind and interval, whatever the rate. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define SIGNAL_TALLY_KINDS 4 /* seccomp-violation, drift, egress, spare */

struct signal_tally;

/* interval_usec: how long counted signals wait for their summary. */
struct signal_tally *signal_tally_new(uint64_t interval_usec);
void signal_tally_free(struct signal_tally *t);

/* A signal of kind at now. true: the first of its kind, raise it (evidence
 * stays the caller's). false: counted; evidence is stolen (kept as the
 * interval's first, or dropped). */
bool signal_tally_add(struct signal_tally *t, const char *kind, json_t *evidence, uint64_t now);

/* When the next summary is due (CLOCK_MONOTONIC usec), 0 when none is. */
uint64_t signal_tally_due(const struct signal_tally *t);

typedef void (*signal_tally_summary_cb)(const char *kind, uint64_t count, json_t *first_evidence,
					 uint64_t interval_usec, void *userdata);

/* Every kind whose interval has ended by now with counted signals: cb with
 * the count and the interval's first evidence (borrowed), then reset. */
void signal_tally_flush(struct signal_tally *t, uint64_t now, signal_tally_summary_cb cb,
			void *userdata);
