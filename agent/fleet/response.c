/* SPDX-License-Identifier: MIT */
/* The response loop. A sign of compromise (a signal, `mtdctl quarantine`)
 * first contains the instance: frozen, then cut off from the network, at
 * detection and before anything else. Then it is replaced: by a healthy
 * standby (StandbyInstances=) in one transaction that routes the public port
 * to it, or else by a fresh instance from the clean snapshot, routed the same
 * way once it is healthy. The old one is then killed or kept frozen for
 * forensics. Failed health, MaxLifetime= and policy changes replace without
 * containment (nothing is compromised): the old instance serves until the
 * switch; after a planned one (MaxLifetime=, a policy change, `mtdctl
 * replace`) it drains with DrainTimeout= (drain.c). Replacement storms are bounded by ReplaceBurst=
 * per ReplaceInterval=. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "fleet_internal.h"
#include "macro.h"
#include "quarantine.h"
#include "clock.h"

/* How long a replacement may take to become healthy before it is given up
 * (the old instance keeps serving, audited). */
#define REPLACEMENT_DEADLINE_USEC (20 * USEC_PER_SEC)
/* A service over its storm bound waits as long as the longest restart
 * back-off (30 s) before the next instance. */
#define STORM_BACKOFF_USEC (30 * USEC_PER_SEC)

static const char *disposal_name(enum response_disposal d)
{
	return d == RESPONSE_DISPOSE_QUARANTINE ? "quarantine" : "kill";
}

const char *const response_signal_kinds[RESPONSE_SIGNAL_KINDS] = {"seccomp-violation", "drift",
								  "egress", "other"};

size_t response_signal_kind_index(const char *kind)
{
	for (size_t i = 0; i < RESPONSE_SIGNAL_KINDS - 1; i++)
		if (streq(kind, response_signal_kinds[i]))
			return i;
	return RESPONSE_SIGNAL_KINDS - 1;
}

/* Alert wins over everything: a service in alert (its OnCompromise=, or the
 * agent's --monitor) is never contained, replaced, killed or quarantined for
 * a detection. The policy guarantees OnSyscallViolation= does not contradict
 * OnCompromise=alert (policy_validate.c); --monitor overrides both. */
enum response_action response_decide(const struct policy *p, bool monitor, const char *kind)
{
	if (monitor || p->on_compromise == COMPROMISE_ALERT)
		return RESPONSE_ACT_ALERT;
	if (streq(kind, "seccomp-violation"))
		switch (p->on_syscall_violation) {
		case SYSCALL_VIOLATION_ERRNO:
			return RESPONSE_ACT_ERRNO;
		case SYSCALL_VIOLATION_KILL:
			return RESPONSE_ACT_KILL;
		default:
			return RESPONSE_ACT_QUARANTINE;
		}
	return p->on_compromise == COMPROMISE_KILL ? RESPONSE_ACT_KILL : RESPONSE_ACT_QUARANTINE;
}

const char *response_action_name(enum response_action action)
{
	switch (action) {
	case RESPONSE_ACT_ALERT:
		return "alert";
	case RESPONSE_ACT_ERRNO:
		return "errno";
	case RESPONSE_ACT_KILL:
		return "kill";
	default:
		return "quarantine";
	}
}

/* ReplaceBurst= replacements per ReplaceInterval=: true when one more would
 * exceed it. Records the attempt otherwise. */
static bool storm_exceeded(struct service *svc)
{
	uint64_t now_usec = now(CLOCK_MONOTONIC), window = svc->policy->replace_interval_usec;
	size_t kept = 0;
	uint64_t *grown;

	for (size_t i = 0; i < svc->n_replacements; i++)
		if (now_usec - svc->replacements[i] < window)
			svc->replacements[kept++] = svc->replacements[i];
	svc->n_replacements = kept;
	if (kept >= svc->policy->replace_burst)
		return true;
	grown = realloc(svc->replacements, (kept + 1) * sizeof(*grown));
	if (!grown)
		return false;
	svc->replacements = grown;
	svc->replacements[svc->n_replacements++] = now_usec;
	return false;
}

static void clear_pending(struct service *svc)
{
	svc->replacing = false;
	svc->from_standby = false;
	svc->planned = false;
	svc->reason[0] = '\0';
	json_decref(svc->evidence);
	svc->evidence = NULL;
	svc->replacement_deadline = sd_event_source_disable_unref(svc->replacement_deadline);
}

static void dispose_now(struct fleet *fleet, struct service *svc, struct instance *instance,
			enum response_disposal disposal, const char *reason, json_t *evidence)
{
	/* Every connection still open to it ends with a reset (once: a
	 * contained instance's were at its containment), while its link is
	 * there and its addresses are dead in the table (or it still serves,
	 * its port already moved). */
	(void)instance_reset_connections(instance);
	if (disposal == RESPONSE_DISPOSE_QUARANTINE) {
		/* What is left of its envelope (a contained instance keeps its
		 * Egress= elements until now) leaves the table: it may be kept
		 * for a long time, and its address may come round again. */
		(void)rotation_remove_instance(fleet->rotation, instance_id(instance), NULL);
		response_quarantine_instance(fleet, svc, instance, reason, evidence);
		return;
	}
	service_audit(fleet, "instance-killed",
		      json_pack("{s:s, s:s, s:s, s:o?}", "service", svc->name, "instance",
				instance_id(instance), "reason", reason, "connections_reset",
				instance_reset_json(instance)),
		      true);
	service_destroy_instance(fleet, instance);
}

/* An instance no longer current, next or standby, disposed of on the next
 * loop turn: the response runs inside the callbacks of the very instance it
 * answers (a seccomp notification, a drift event), which must not be
 * destroyed under them; and the evidence copy of a quarantine is not on the
 * path to the new route. */
struct response_disposal_job {
	struct fleet *fleet;
	struct response_disposal_job *next;
	sd_event_source *source;
	char service[POLICY_NAME_MAX + 1];
	struct instance *instance;
	enum response_disposal disposal;
	char reason[64];
	json_t *evidence;
};

static void disposal_job_free(struct response_disposal_job *job)
{
	for (struct response_disposal_job **p = &job->fleet->disposals; *p; p = &(*p)->next)
		if (*p == job) {
			*p = job->next;
			break;
		}
	sd_event_source_disable_unref(job->source);
	json_decref(job->evidence);
	free(job);
}

static int on_disposal(sd_event_source *source, void *userdata)
{
	struct response_disposal_job *job = userdata;
	struct fleet *fleet = job->fleet;
	struct service *svc = service_find(fleet, job->service);

	if (svc)
		dispose_now(fleet, svc, job->instance, job->disposal, job->reason, job->evidence);
	else {
		/* The service is gone (a reload removed it): nothing to keep it for. */
		(void)instance_reset_connections(job->instance);
		service_audit(fleet, "instance-killed",
			      json_pack("{s:s, s:s, s:s, s:o?}", "service", job->service,
					"instance", instance_id(job->instance), "reason",
					"service removed", "connections_reset",
					instance_reset_json(job->instance)),
			      true);
		service_destroy_instance(fleet, job->instance);
	}
	disposal_job_free(job);
	return 0;
}

static void dispose(struct fleet *fleet, struct service *svc, struct instance *instance,
		    enum response_disposal disposal, const char *reason, json_t *evidence)
{
	struct response_disposal_job *job = calloc(1, sizeof(*job));

	if (job && sd_event_add_defer(fleet->event, &job->source, on_disposal, job) >= 0) {
		job->fleet = fleet;
		snprintf(job->service, sizeof(job->service), "%s", svc->name);
		job->instance = instance;
		job->disposal = disposal;
		snprintf(job->reason, sizeof(job->reason), "%s", reason);
		job->evidence = json_incref(evidence);
		job->next = fleet->disposals;
		fleet->disposals = job;
		return;
	}
	free(job);
	/* No memory for later: now (it is frozen and cut off, or healthy). */
	dispose_now(fleet, svc, instance, disposal, reason, evidence);
}

static int on_replacement_deadline(sd_event_source *source, uint64_t usec, void *userdata)
{
	struct service *svc = userdata;
	struct instance *old = svc->current;
	bool contained = old && instance_state(old) == INSTANCE_CONTAINED;

	service_audit(svc->fleet, "replacement-failed",
		      json_pack("{s:s, s:s, s:s, s:s}", "service", svc->name, "reason", svc->reason,
				"why", "the replacement did not become healthy in time", "outcome",
				contained ? "the contained instance is disposed of; none serves"
				: svc->current ? "the current instance keeps serving"
					       : "no instance serves"),
		      true);
	if (svc->next)
		service_stop_instance(svc, svc->next, "replacement timed out");
	if (contained) {
		/* Frozen and cut off, it serves nothing: fail closed, start over. */
		svc->current = NULL;
		svc->routed = false;
		(void)rotation_clear_instance_backend(svc->fleet->rotation, svc->name, NULL);
		dispose(svc->fleet, svc, old, svc->disposal, svc->reason, svc->evidence);
		svc->quick_failures++;
		service_schedule_restart(svc);
	}
	clear_pending(svc);
	return 0;
}

void response_contain(struct service *svc, struct instance *instance, const char *reason,
		      uint64_t detected_usec)
{
	struct instance_containment *c = instance_containment(instance);
	struct step_error error = {0};

	if (c->cut_usec || instance_state(instance) == INSTANCE_QUARANTINED)
		return;
	snprintf(c->reason, sizeof(c->reason), "%s", reason);
	c->detected_usec = detected_usec;
	/* 1. The freeze, requested: cgroup.freeze written; from here on every
	 * task of the instance traps before its next instruction in user space
	 * (kernel/cgroup/freezer.c; kernel/signal.c, get_signal()). */
	c->freeze_error = instance_freeze_begin(instance);
	if (c->freeze_error < 0)
		(void)instance_kill(instance); /* fail closed: it must not run on */
	c->freeze_requested_usec = now(CLOCK_MONOTONIC);
	/* 2. The cut: out of the live and ingress sets in one transaction (the
	 * rest of its envelope goes with it later: docs/nftables.md), so no
	 * packet passes to or from its link, established flows included; the
	 * public port, while it still leads there, leads nowhere. */
	c->cut_error = rotation_cut_instance(svc->fleet->rotation, instance_id(instance), &error);
	if (c->cut_error < 0 && c->cut_error != -ENOENT) {
		/* The cheap cut failed: the whole envelope goes instead. */
		step_error_clear(&error);
		c->cut_error =
		    rotation_remove_instance(svc->fleet->rotation, instance_id(instance), &error);
	}
	if (c->cut_error < 0)
		step_error_reason(&error, c->cut_error, c->cut_detail, sizeof(c->cut_detail));
	c->cut_usec = now(CLOCK_MONOTONIC);
}

/* 3. The freeze, confirmed (the kernel reports every task trapped; tasks
 * in the middle of an exit are waited for), and the containment recorded:
 * once, before the replacement's records. Off the path to the standby's
 * route: no task runs user code once the freeze is requested. */
static void record_containment(struct service *svc, struct instance *instance)
{
	struct instance_containment *c = instance_containment(instance);
	uint64_t frozen_usec;
	int frozen = c->freeze_error;

	if (!c->cut_usec || c->recorded)
		return;
	c->recorded = true;
	if (frozen == 0) {
		frozen = instance_contain(instance);
		if (frozen < 0)
			(void)instance_kill(instance);
	}
	frozen_usec = now(CLOCK_MONOTONIC);
	/* 4. Its connections reset from its own kernel (SOCK_DESTROY): a
	 * client waiting for an answer the frozen instance will never send
	 * fails now. Here, not at the cut: with a standby, the port has moved
	 * by now (the records wait for it), so the client's retry goes there. */
	(void)instance_reset_connections(instance);
	/* Written now, made durable with the replacement's record. */
	service_audit(
	    svc->fleet, "instance-contained",
	    json_pack("{s:s, s:s, s:s, s:b, s:b, s:b, s:I, s:I, s:I, s:s?, s:s?, s:o?}", "service",
		      svc->name, "instance", instance_id(instance), "reason", c->reason, "frozen",
		      frozen == 0, "killed", frozen < 0, "cut", c->cut_error == 0,
		      "detection_to_freeze_requested_usec",
		      (json_int_t)(c->freeze_requested_usec - c->detected_usec),
		      "detection_to_cut_usec", (json_int_t)(c->cut_usec - c->detected_usec),
		      "detection_to_frozen_usec", (json_int_t)(frozen_usec - c->detected_usec),
		      "freeze_error", frozen < 0 ? strerror(-frozen) : NULL, "cut_error",
		      c->cut_error < 0 ? c->cut_detail : NULL, "connections_reset",
		      instance_reset_json(instance)),
	    false);
}

/* The containment's record, then the decision's (instance-replace). */
static void announce(struct service *svc, struct instance *instance, const char *reason,
		     json_t *evidence, enum response_disposal disposal)
{
	struct instance_containment *c = instance_containment(instance);

	/* The signal that started it all, first. */
	if (c->signal[0]) {
		service_audit(svc->fleet, c->signal,
			      json_pack("{s:s, s:s, s:O?, s:s}", "service", svc->name, "instance",
					instance_id(instance), "evidence", evidence, "action",
					disposal_name(disposal)),
			      false);
		c->signal[0] = '\0';
	}
	record_containment(svc, instance);
	/* Written at once, made durable by the next synced record: the
	 * response must not wait for the disk (an fdatasync took 0.3 to 9 ms
	 * here). */
	service_audit(svc->fleet, "instance-replace",
		      json_pack("{s:s, s:s, s:s, s:O?, s:s}", "service", svc->name, "instance",
				instance_id(instance), "reason", reason, "evidence", evidence,
				"then", disposal_name(disposal)),
		      false);
}

void response_replace(struct service *svc, struct instance *instance, const char *reason,
		      json_t *evidence, enum response_disposal disposal, uint64_t detected_usec,
		      unsigned flags)
{
	struct fleet *fleet = svc->fleet;
	bool promote;

	if (!detected_usec)
		detected_usec = now(CLOCK_MONOTONIC);
	/* A compromised instance is contained before anything else (the
	 * callers do it at detection already; this is for any other way in). */
	if (flags & RESPONSE_COMPROMISED)
		response_contain(svc, instance, reason, detected_usec);
	if (flags & RESPONSE_RECORD_SIGNAL)
		snprintf(instance_containment(instance)->signal,
			 sizeof(instance_containment(instance)->signal), "%s", reason);
	/* With a standby to promote, the records wait until the port moved;
	 * otherwise they are written now. */
	promote = instance == svc->current && !svc->replacing && standby_available(svc);
	if (!promote)
		announce(svc, instance, reason, evidence, disposal);

	if (service_standby_index(svc, instance) >= 0) {
		/* A standby is affected: it goes, another one starts. */
		service_forget_standby(svc, instance);
		dispose(fleet, svc, instance, disposal, reason, evidence);
		json_decref(evidence);
		standby_schedule(svc, 0);
		return;
	}
	if (instance == svc->next) {
		/* The replacement itself is affected: dispose of it, start another. */
		svc->next = NULL;
		dispose(fleet, svc, instance, disposal, reason, evidence);
		json_decref(evidence);
		service_start_instance(svc);
		return;
	}
	if (svc->replacing) {
		/* Already under way: the strongest disposal and the first reason win. */
		if (disposal == RESPONSE_DISPOSE_QUARANTINE)
			svc->disposal = RESPONSE_DISPOSE_QUARANTINE;
		/* A compromise or a failure during a planned replacement: the
		 * old instance no longer drains. */
		if (!(flags & RESPONSE_PLANNED))
			svc->planned = false;
		json_decref(evidence);
		return;
	}
	if (!(flags & RESPONSE_PLANNED) && storm_exceeded(svc)) {
		/* Fail closed: the affected instance goes now, the service waits. */
		if (promote)
			announce(svc, instance, reason, evidence, disposal);
		service_audit(fleet, "replacement-storm",
			      json_pack("{s:s, s:i, s:I, s:I}", "service", svc->name, "burst",
					(int)svc->policy->replace_burst, "interval_usec",
					(json_int_t)svc->policy->replace_interval_usec,
					"backoff_usec", (json_int_t)STORM_BACKOFF_USEC),
			      true);
		if (instance == svc->current) {
			svc->current = NULL;
			svc->routed = false;
			(void)rotation_clear_instance_backend(fleet->rotation, svc->name, NULL);
			dispose(fleet, svc, instance, disposal, reason, evidence);
		}
		/* Nothing of the service runs while it waits. */
		standby_stop_all(svc, "replacement storm");
		json_decref(evidence);
		svc->quick_failures = 8; /* the restart back-off at its long end */
		service_schedule_restart(svc);
		return;
	}

	svc->replacing = true;
	svc->planned = (flags & RESPONSE_PLANNED) && !(flags & RESPONSE_COMPROMISED) &&
		       disposal == RESPONSE_DISPOSE_KILL;
	svc->detected_usec = detected_usec;
	svc->disposal = disposal;
	snprintf(svc->reason, sizeof(svc->reason), "%s", reason);
	svc->evidence = evidence;
	svc->lifetime_timer = sd_event_source_disable_unref(svc->lifetime_timer);
	(void)sd_event_add_time_relative(fleet->event, &svc->replacement_deadline, CLOCK_MONOTONIC,
					 REPLACEMENT_DEADLINE_USEC, 0, on_replacement_deadline,
					 svc);
	/* A healthy standby takes the port now: one transaction. */
	if (instance == svc->current && (svc->next = standby_take(svc))) {
		svc->from_standby = true;
		response_replacement_healthy(svc);
		return;
	}
	if (promote) /* not expected: standby_available() said there was one */
		announce(svc, instance, reason, evidence, disposal);
	service_start_instance(svc);
	if (!svc->next && svc->replacing)
		service_audit(fleet, "replacement-failed",
			      json_pack("{s:s, s:s, s:s}", "service", svc->name, "why",
					"the replacement could not start", "outcome",
					"the current instance keeps serving; retried"),
			      true);
}

void response_replacement_healthy(struct service *svc)
{
	struct fleet *fleet = svc->fleet;
	struct instance *old = svc->current, *fresh = svc->next;
	uint64_t routed_usec;
	/* A planned replacement (a policy change, or MaxLifetime= and `mtdctl
	 * replace` untouched by a compromise since) with DrainTimeout= lets
	 * the old instance's connections run on (drain.c). */
	bool drains = old && (!svc->replacing || svc->planned) && svc->policy->drain_timeout_usec &&
		      !instance_containment(old)->cut_usec &&
		      drain_count(fleet, svc->name) < DRAIN_MAX_PER_SERVICE;

	/* One transaction: the public port now leads to the replacement. */
	/* ...and the old one is cut off (its envelope leaves the table) in the
	 * same transaction: its connections end now, not earlier. Unless it
	 * drains: then it keeps its envelope, and conntrack keeps its
	 * established flows going to it while every new one goes to fresh. */
	/* A contained instance is cut off already: its leftover elements go
	 * with it, not in this transaction. */
	if (service_route(svc, fresh,
			  drains || (old && instance_containment(old)->cut_usec) ? NULL : old) <
	    0) {
		service_stop_instance(svc, fresh, "replacement could not be routed");
		/* A promoted standby that cannot be routed: a fresh one next. */
		if (svc->replacing && svc->from_standby) {
			svc->from_standby = false;
			announce(svc, old, svc->reason, svc->evidence, svc->disposal);
			service_start_instance(svc);
		}
		return;
	}
	/* The public port leads to it from here: the end of the timed span. */
	routed_usec = now(CLOCK_MONOTONIC);
	svc->current = fresh;
	svc->next = NULL;
	svc->routed = true;
	if (old && svc->replacing && svc->from_standby)
		announce(svc, old, svc->reason, svc->evidence, svc->disposal);
	if (old) {
		/* From the signal to the replacement taking the public port. */
		service_audit(fleet, "instance-replaced",
			      json_pack("{s:s, s:s, s:s, s:s, s:I, s:b}", "service", svc->name,
					"old", instance_id(old), "new", instance_id(fresh),
					"reason", svc->replacing ? svc->reason : "policy changed",
					"detection_to_replacement_usec",
					svc->replacing
					    ? (json_int_t)(routed_usec - svc->detected_usec)
					    : (json_int_t)0,
					"standby", svc->from_standby),
			      true);
		if (!drains ||
		    !drain_begin(svc, old, svc->replacing ? svc->reason : "policy changed"))
			dispose(fleet, svc, old,
				svc->replacing ? svc->disposal : RESPONSE_DISPOSE_KILL,
				svc->replacing ? svc->reason : "policy changed", svc->evidence);
	}
	clear_pending(svc);
	response_arm_lifetime(svc);
	/* The standby promoted, or kept waiting during the replacement: top up. */
	standby_schedule(svc, 0);
}

static int on_lifetime(sd_event_source *source, uint64_t usec, void *userdata)
{
	struct service *svc = userdata;

	svc->lifetime_timer = sd_event_source_disable_unref(svc->lifetime_timer);
	if (svc->current)
		response_replace(svc, svc->current, "max-lifetime", NULL, RESPONSE_DISPOSE_KILL, 0,
				 RESPONSE_PLANNED);
	return 0;
}

void response_arm_lifetime(struct service *svc)
{
	uint64_t deadline;

	svc->lifetime_timer = sd_event_source_disable_unref(svc->lifetime_timer);
	if (!svc->current)
		return;
	/* Counted from the instance's start: a promoted standby brings the
	 * time it waited (standby.c renews standbys on the same clock). */
	deadline = service_lifetime_deadline(svc, svc->current);
	if (deadline)
		(void)sd_event_add_time(svc->fleet->event, &svc->lifetime_timer, CLOCK_MONOTONIC,
					deadline, 0, on_lifetime, svc);
}

void response_service_done(struct service *svc)
{
	clear_pending(svc);
	svc->lifetime_timer = sd_event_source_disable_unref(svc->lifetime_timer);
	free(svc->replacements);
	svc->replacements = NULL;
	svc->n_replacements = 0;
}

void response_fleet_done(struct fleet *fleet)
{
	/* Disposals still waiting: their instances go. */
	while (fleet->disposals) {
		service_destroy_instance(fleet, fleet->disposals->instance);
		disposal_job_free(fleet->disposals);
	}
	response_quarantine_clear(fleet);
	free(fleet->quarantined);
	fleet->quarantined = NULL;
	fleet->n_quarantined = 0;
}
