/* SPDX-License-Identifier: MIT */
/* The agent's clock on the audit log (see audit.h, docs/audit-log.md).
 *
 * Seals keep to a grid of epochs from the start: after a seal at or after
 * due, the next is due one epoch later (or one epoch from now if the loop
 * was held up longer than an epoch). A failed seal is retried after 100 ms,
 * doubling up to an epoch or 30 s, whichever is shorter; the records of the
 * epoch meanwhile stay in it, so the epoch that could not be sealed on time
 * is just longer. Records waiting in the log's queue are retried after
 * 100 ms, doubling up to 5 s. */
#include "audit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "macro.h"
#include "clock.h"

#define RETRY_FIRST_USEC (100 * 1000ULL)
#define SEAL_RETRY_MAX_USEC (30 * 1000000ULL)
#define FLUSH_RETRY_MAX_USEC (5 * 1000000ULL)

struct audit_timer {
	sd_event *event;
	struct audit_log *log;
	uint64_t epoch_usec;
	sd_event_source *seal_source;
	sd_event_source *flush_source;
	uint64_t seal_due;    /* the grid point of the next seal */
	uint64_t seal_retry;  /* the back-off of a failing seal, 0 when sealing on time */
	unsigned seal_streak; /* failed attempts at the current seal */
	uint64_t flush_retry; /* the back-off of a failing flush, 0 when none is waiting */
	struct audit_timer_stats stats;
};

static uint64_t backoff(uint64_t current, uint64_t max)
{
	uint64_t next = current ? current * 2 : RETRY_FIRST_USEC;

	return next < max ? next : max;
}

/* A one-shot source is disabled once it has fired: re-time and re-enable. */
static int arm(sd_event_source *source, uint64_t usec)
{
	int r = sd_event_source_set_time(source, usec);

	if (r >= 0)
		r = sd_event_source_set_enabled(source, SD_EVENT_ONESHOT);
	return r;
}

static void log_queue_state(struct audit_timer *t, const char *what)
{
	struct audit_log_status st;

	audit_log_get_status(t->log, &st);
	if (st.pending)
		log_error("audit: %s: %s; %zu record(s) queued, %llu lost so far%s", what,
			  strerror(st.error < 0 ? -st.error : EIO), st.queued,
			  (unsigned long long)st.lost_total,
			  st.broken ? "; the log cannot be continued: restart the agent" : "");
}

static int on_seal(sd_event_source *source, uint64_t usec, void *userdata)
{
	struct audit_timer *t = userdata;
	uint64_t epoch = audit_log_epoch(t->log), now_usec = now(CLOCK_MONOTONIC);
	uint64_t cap = t->epoch_usec < SEAL_RETRY_MAX_USEC ? t->epoch_usec : SEAL_RETRY_MAX_USEC;
	int r;

	r = audit_log_seal(t->log);
	if (r < 0) {
		t->stats.seal_failures++;
		t->seal_streak++;
		t->seal_retry = backoff(t->seal_retry, cap);
		log_error("audit: cannot seal epoch %llu: %s; retrying in %llu ms",
			  (unsigned long long)epoch, strerror(-r),
			  (unsigned long long)(t->seal_retry / 1000));
		log_queue_state(t, "the log cannot be written");
		t->stats.seal_due_usec = now_usec + t->seal_retry;
		return arm(source, t->stats.seal_due_usec);
	}
	if (t->seal_retry)
		log_notice("audit: epoch %llu sealed after %u failed attempt(s)",
			   (unsigned long long)epoch, t->seal_streak);
	t->seal_retry = 0;
	t->seal_streak = 0;
	t->stats.seals++;
	t->seal_due += t->epoch_usec;
	if (t->seal_due <= now_usec)
		t->seal_due = now_usec + t->epoch_usec;
	t->stats.seal_due_usec = t->seal_due;
	return arm(source, t->seal_due);
}

static int on_flush(sd_event_source *source, uint64_t usec, void *userdata)
{
	struct audit_timer *t = userdata;
	struct audit_log_status before, after;
	int r;

	audit_log_get_status(t->log, &before);
	r = audit_log_flush(t->log);
	audit_log_get_status(t->log, &after);
	if (r >= 0) {
		if (before.pending)
			log_notice("audit: the log is written again: %zu queued entr%s written, "
				   "%llu record(s) lost in all",
				   before.queued, before.queued == 1 ? "y" : "ies",
				   (unsigned long long)after.lost_total);
		t->flush_retry = 0;
		return 0;
	}
	t->flush_retry = backoff(t->flush_retry, FLUSH_RETRY_MAX_USEC);
	return arm(source, now(CLOCK_MONOTONIC) + t->flush_retry);
}

void audit_timer_kick(struct audit_timer *t)
{
	int enabled = SD_EVENT_OFF;

	if (!t)
		return;
	(void)sd_event_source_get_enabled(t->flush_source, &enabled);
	if (enabled != SD_EVENT_OFF)
		return; /* already waiting to retry */
	log_queue_state(t, "the log cannot be written");
	t->flush_retry = backoff(t->flush_retry, FLUSH_RETRY_MAX_USEC);
	if (arm(t->flush_source, now(CLOCK_MONOTONIC) + t->flush_retry) < 0)
		log_error("audit: cannot arm the retry timer");
}

int audit_timer_new(sd_event *event, struct audit_log *log, uint64_t epoch_usec,
		    struct audit_timer **ret_timer)
{
	struct audit_timer *t;
	uint64_t accuracy = epoch_usec / 100;
	int r;

	if (!event || !log || epoch_usec == 0 || !ret_timer)
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->event = sd_event_ref(event);
	t->log = log;
	t->epoch_usec = epoch_usec;
	t->seal_due = now(CLOCK_MONOTONIC) + epoch_usec;
	t->stats.seal_due_usec = t->seal_due;
	if (accuracy < 1000)
		accuracy = 1000;
	if (accuracy > 1000000)
		accuracy = 1000000;
	r = sd_event_add_time(event, &t->seal_source, CLOCK_MONOTONIC, t->seal_due, accuracy,
			      on_seal, t);
	if (r >= 0)
		r = sd_event_add_time(event, &t->flush_source, CLOCK_MONOTONIC, 0, 1000, on_flush,
				      t);
	if (r >= 0)
		r = sd_event_source_set_enabled(t->flush_source, SD_EVENT_OFF);
	if (r < 0) {
		audit_timer_free(t);
		return r;
	}
	*ret_timer = t;
	return 0;
}

void audit_timer_get_stats(const struct audit_timer *t, struct audit_timer_stats *ret_stats)
{
	*ret_stats = t ? t->stats : (struct audit_timer_stats){};
}

void audit_timer_free(struct audit_timer *t)
{
	if (!t)
		return;
	sd_event_source_disable_unref(t->seal_source);
	sd_event_source_disable_unref(t->flush_source);
	sd_event_unref(t->event);
	free(t);
}
