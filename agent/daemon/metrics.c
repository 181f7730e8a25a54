/* SPDX-License-Identifier: MIT */
/* The agent's figures in the Prometheus text format (docs/metrics.md):
 * events counted from the audit records the agent submits (one place where
 * every decoy hit, block, detection, replacement and launch passes), state
 * read from the layers when rendered. Names follow Prometheus: mtd_ prefix,
 * _total for counters, _seconds for durations. */
#include "agent_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "macro.h"
#include "metric.h"

struct metrics {
	uint64_t start_realtime_usec;
	uint64_t records;
	struct metric_counts decoy_hits;	 /* service */
	struct metric_counts sources_blocked;	 /* evidence */
	struct metric_counts detections;	 /* service, signal */
	struct metric_counts replacements;	 /* service, reason */
	struct metric_counts launches;		 /* service */
	struct metric_counts launch_failures;	 /* service, step */
	struct metric_counts clients_admitted;	 /* service */
	struct metric_counts knocks_refused;	 /* service, reason */
	struct metric_counts client_connections; /* service */
	struct metric_histogram detection_to_replacement;
};

/* From 1 ms (a standby takes the port in a few) to 60 s (a fresh instance
 * that is slow to become healthy; 20 s is the give-up bound). */
static const uint64_t response_bounds_usec[] = {
    USEC_PER_MSEC,	5 * USEC_PER_MSEC,    10 * USEC_PER_MSEC,  25 * USEC_PER_MSEC,
    50 * USEC_PER_MSEC, 100 * USEC_PER_MSEC,  250 * USEC_PER_MSEC, 500 * USEC_PER_MSEC,
    USEC_PER_SEC,	2500 * USEC_PER_MSEC, 5 * USEC_PER_SEC,	   10 * USEC_PER_SEC,
    20 * USEC_PER_SEC,	60 * USEC_PER_SEC,
};

int metrics_new(struct metrics **ret)
{
	struct metrics *m = calloc(1, sizeof(*m));

	if (!m)
		return -ENOMEM;
	m->start_realtime_usec = now(CLOCK_REALTIME);
	metric_histogram_init(&m->detection_to_replacement, response_bounds_usec,
			      ELEMENTSOF(response_bounds_usec));
	*ret = m;
	return 0;
}

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	metric_counts_done(&m->decoy_hits);
	metric_counts_done(&m->sources_blocked);
	metric_counts_done(&m->detections);
	metric_counts_done(&m->replacements);
	metric_counts_done(&m->launches);
	metric_counts_done(&m->launch_failures);
	metric_counts_done(&m->clients_admitted);
	metric_counts_done(&m->knocks_refused);
	metric_counts_done(&m->client_connections);
	free(m);
}

static const char *field(const json_t *fields, const char *key)
{
	const char *s = json_string_value(json_object_get(fields, key));

	return s ? s : "";
}

/* The compromise signals (docs/ARCHITECTURE.md, "Detection and response")
 * and failed health, as their records name them. */
static const char *signal_of(const char *type)
{
	static const char *const signals[] = {"seccomp-violation", "drift", "egress"};

	for (size_t i = 0; i < ELEMENTSOF(signals); i++)
		if (streq(type, signals[i]))
			return signals[i];
	if (streq(type, "instance-unhealthy"))
		return "health";
	return NULL;
}

void metrics_observe(struct metrics *m, const char *type, const json_t *fields)
{
	const char *service = field(fields, "service");
	const char *signal = signal_of(type);

	m->records++;
	if (streq(type, "decoy-hit"))
		metric_counts_add(&m->decoy_hits, service, NULL, 1);
	else if (streq(type, "source-blocked")) {
		/* monitor mode decides without blocking: not a block */
		if (!json_is_true(json_object_get(fields, "simulated")))
			metric_counts_add(&m->sources_blocked, field(fields, "evidence"), NULL, 1);
	} else if (signal)
		metric_counts_add(&m->detections, service, signal, 1);
	else if (streq(type, "signals-counted")) {
		json_int_t n = json_integer_value(json_object_get(fields, "count"));

		if (n > 0)
			metric_counts_add(&m->detections, service, field(fields, "kind"),
					  (uint64_t)n);
	} else if (streq(type, "instance-replaced")) {
		json_int_t usec =
		    json_integer_value(json_object_get(fields, "detection_to_replacement_usec"));

		metric_counts_add(&m->replacements, service, field(fields, "reason"), 1);
		/* 0: a policy change, no detection to time from */
		if (usec > 0)
			metric_histogram_observe(&m->detection_to_replacement, (uint64_t)usec);
	} else if (streq(type, "instance-start"))
		metric_counts_add(&m->launches, service, NULL, 1);
	else if (streq(type, "instance-start-failed"))
		metric_counts_add(&m->launch_failures, service, field(fields, "step"), 1);
	else if (streq(type, "client-admitted"))
		metric_counts_add(&m->clients_admitted, service, NULL, 1);
	else if (streq(type, "knock-refused")) {
		json_int_t n = json_integer_value(json_object_get(fields, "count"));

		if (n > 0)
			metric_counts_add(&m->knocks_refused, service, field(fields, "reason"),
					  (uint64_t)n);
	} else if (streq(type, "client-connected"))
		metric_counts_add(&m->client_connections, service, NULL, 1);
}

static void one(struct metric_text *t, const char *name, const char *type, const char *help,
		uint64_t value)
{
	metric_text_family(t, name, type, help);
	metric_text_u64(t, name, NULL, NULL, 0, value);
}

static void render_rotation(struct metric_text *t, const struct rotation *rotation)
{
	struct rotation_metrics r;

	rotation_get_metrics(rotation, &r);
	one(t, "mtd_rotation_transactions_total", "counter",
	    "nftables transactions committed by the rotation", r.transactions);
	one(t, "mtd_rotation_bank_switches_total", "counter",
	    "of those, switches to the bank loaded ahead", r.switches);
	one(t, "mtd_rotation_transaction_failures_total", "counter",
	    "nftables transactions of the rotation that failed", r.failures);
	one(t, "mtd_rotation_timed_changes_total", "counter",
	    "boundaries and grace ends switched to", r.timed_changes);
	metric_text_histogram(t, "mtd_rotation_switch_duration_seconds",
			      "time of the transaction that moves the ports at a timed change",
			      r.switch_durations);
	metric_text_histogram(t, "mtd_rotation_staging_duration_seconds",
			      "time of the transaction that loads the next change ahead",
			      r.staging_durations);
	one(t, "mtd_blocked_sources", "gauge", "sources blocked by decoys now", r.blocked_now);
	{
		size_t ranges = 0, segments = 0;

		rotation_shared_ranges(rotation, &ranges, &segments);
		one(t, "mtd_shared_blocked_ranges", "gauge",
		    "ranges a fleet's decisions block now (IPv4 shorter than /32, IPv6 than /128)",
		    ranges);
		one(t, "mtd_shared_blocked_intervals", "gauge",
		    "disjoint intervals programmed for those ranges", segments);
	}
}

static void render_audit(struct metric_text *t, const struct metrics *m,
			 const struct metrics_sources *s)
{
	struct audit_log_status st;

	one(t, "mtd_audit_records_total", "counter",
	    "audit records the agent submitted (written, or queued while the log cannot be "
	    "written)",
	    m->records);
	if (s->audit_timer) {
		struct audit_timer_stats ts;

		audit_timer_get_stats(s->audit_timer, &ts);
		one(t, "mtd_audit_seals_total", "counter", "audit epochs sealed by the timer",
		    ts.seals);
		one(t, "mtd_audit_seal_failures_total", "counter",
		    "seal attempts that failed (each retried)", ts.seal_failures);
	}
	if (s->audit) {
		audit_log_get_status(s->audit, &st);
		one(t, "mtd_audit_records_lost_total", "counter",
		    "audit records lost because the queue was full", st.lost_total);
		one(t, "mtd_audit_queued", "gauge", "audit records waiting for a writable log",
		    st.queued);
		one(t, "mtd_audit_writable", "gauge", "1 when the audit log is written normally",
		    !st.pending);
		if (st.journal) {
			one(t, "mtd_audit_journal_sent_total", "counter",
			    "audit records copied to the journal", st.journal_sent);
			one(t, "mtd_audit_journal_dropped_total", "counter",
			    "audit records the journal could not take (a gap in the shipped "
			    "copy)",
			    st.journal_dropped);
		}
	}
}

static void render_clock(struct metric_text *t, const struct clock_trust *clock)
{
	one(t, "mtd_clock_trusted", "gauge",
	    "1 when the kernel says the clock is synchronised within the bound",
	    clock->state == CLOCK_TRUSTED);
	if (clock->state == CLOCK_STATE_UNREADABLE)
		return;
	metric_text_family(t, "mtd_clock_estimated_error_seconds", "gauge",
			   "the kernel's estimated error of the clock (adjtimex esterror)");
	metric_text_usec(t, "mtd_clock_estimated_error_seconds", NULL, NULL, 0,
			 clock->sync.esterror_usec > 0 ? (uint64_t)clock->sync.esterror_usec : 0);
	metric_text_family(t, "mtd_clock_maximum_error_seconds", "gauge",
			   "the kernel's maximum error of the clock (adjtimex maxerror)");
	metric_text_usec(t, "mtd_clock_maximum_error_seconds", NULL, NULL, 0,
			 clock->sync.maxerror_usec > 0 ? (uint64_t)clock->sync.maxerror_usec : 0);
}

/* Instances by service and state, from the fleet's own list. */
static void render_instances(struct metric_text *t, const struct fleet *fleet)
{
	_cleanup_(json_decrefp) json_t *list = fleet_instances_json(fleet);
	struct metric_counts states = {0};
	const char *names[] = {"service", "state"};
	size_t i;
	json_t *item;

	json_array_foreach(list, i, item)
	{
		/* a failed service's line names no instance */
		if (!json_object_get(item, "id"))
			continue;
		metric_counts_add(&states, field(item, "service"), field(item, "state"), 1);
	}
	metric_text_counts(t, "mtd_instances", "gauge", "instances by service and state", names, 2,
			   &states);
	metric_counts_done(&states);
}

char *metrics_render(const struct metrics *m, const struct metrics_sources *s, size_t *ret_len)
{
	const char *service[] = {"service"}, *service_signal[] = {"service", "signal"},
		   *service_reason[] = {"service", "reason"}, *service_step[] = {"service", "step"},
		   *evidence[] = {"evidence"}, *version_name[] = {"version"},
		   *version[] = {MTD_VERSION};
	struct metric_text t;

	if (metric_text_open(&t) < 0)
		return NULL;
	metric_text_family(&t, "mtd_build_info", "gauge", "the agent's version");
	metric_text_u64(&t, "mtd_build_info", version_name, version, 1, 1);
	metric_text_family(&t, "mtd_agent_start_time_seconds", "gauge",
			   "when the agent started, seconds since the epoch");
	metric_text_usec(&t, "mtd_agent_start_time_seconds", NULL, NULL, 0, m->start_realtime_usec);
	if (s->rotation)
		render_rotation(&t, s->rotation);
	metric_text_counts(&t, "mtd_decoy_hits_total", "counter",
			   "packets that reached a decoy port (service \"\": a decoy no service "
			   "owns any more)",
			   service, 1, &m->decoy_hits);
	metric_text_counts(&t, "mtd_sources_blocked_total", "counter",
			   "sources blocked for touching a decoy, by the evidence that decided",
			   evidence, 1, &m->sources_blocked);
	metric_text_counts(&t, "mtd_detections_total", "counter",
			   "detections (compromise signals and failed health) by signal",
			   service_signal, 2, &m->detections);
	metric_text_counts(&t, "mtd_replacements_total", "counter", "instances replaced, by reason",
			   service_reason, 2, &m->replacements);
	metric_text_histogram(&t, "mtd_detection_to_replacement_seconds",
			      "from a detection to the replacement taking the public port",
			      &m->detection_to_replacement);
	metric_text_counts(&t, "mtd_instance_launches_total", "counter", "instances started",
			   service, 1, &m->launches);
	metric_text_counts(&t, "mtd_instance_launch_failures_total", "counter",
			   "instance starts that failed, by the step that failed", service_step, 2,
			   &m->launch_failures);
	metric_text_counts(&t, "mtd_clients_admitted_total", "counter",
			   "sources admitted to a client's door by a knock", service, 1,
			   &m->clients_admitted);
	metric_text_counts(&t, "mtd_knocks_refused_total", "counter",
			   "knocks refused, by reason (docs/schedule.md, \"Knock packets\")",
			   service_reason, 2, &m->knocks_refused);
	metric_text_counts(&t, "mtd_client_connections_total", "counter",
			   "first connections of an admitted client to its door in an epoch",
			   service, 1, &m->client_connections);
	if (s->fleet)
		render_instances(&t, s->fleet);
	render_audit(&t, m, s);
	if (s->clock)
		render_clock(&t, s->clock);
	one(&t, "mtd_metrics_series_dropped_total", "counter",
	    "events not counted because their family had no room for another series",
	    m->decoy_hits.dropped + m->sources_blocked.dropped + m->detections.dropped +
		m->replacements.dropped + m->launches.dropped + m->launch_failures.dropped +
		m->clients_admitted.dropped + m->knocks_refused.dropped +
		m->client_connections.dropped);
	return metric_text_finish(&t, ret_len);
}
