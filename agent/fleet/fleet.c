/* SPDX-License-Identifier: MIT */
/* The fleet: the managed services of the policy set in force (which are
 * new, changed, gone), the answers to their instances' events (health,
 * signals of compromise, exits), and the public fleet_* API (fleet.h). The
 * top of agent/fleet/: it uses response.c, standby.c and service.c, and
 * nothing there calls it (the instances' events come through the hooks set
 * here in fleet_new()). */
#include "fleet.h"
#include "fleet_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "macro.h"
#include "policy.h"
#include "quarantine.h"
#include "rotation.h"
#include "sandbox.h"
#include "step_error.h"

/* The service an instance is current, next or a standby of; NULL when none. */
static struct service *owner_of(struct fleet *fleet, const struct instance *instance)
{
	for (size_t i = 0; i < fleet->n_services; i++) {
		struct service *svc = fleet->services[i];
		/* NULL: an old service being replaced by fleet_apply_policies(),
		 * which can start an instance (whose hooks run) meanwhile */
		if (svc && (svc->current == instance || svc->next == instance ||
			    service_standby_index(svc, instance) >= 0))
			return svc;
	}
	return NULL;
}

static void on_instance_healthy(struct instance *instance, void *userdata)
{
	struct fleet *fleet = userdata;
	struct service *svc = owner_of(fleet, instance);

	if (!svc)
		return;
	service_audit(
	    fleet, "instance-healthy",
	    json_pack("{s:s, s:s}", "service", svc->name, "instance", instance_id(instance)),
	    false);
	if (instance == svc->next) {
		response_replacement_healthy(svc);
		return;
	}
	if (service_standby_index(svc, instance) >= 0) {
		standby_healthy(svc);
		return;
	}
	if (instance == svc->current && !svc->routed) {
		if (service_route(svc, instance, NULL) == 0) {
			svc->routed = true;
			response_arm_lifetime(svc);
			/* Standbys only once the service serves: they never slow
			 * the first instance down. */
			standby_schedule(svc, 0);
		} else {
			service_stop_instance(svc, instance, "could not be routed");
		}
	}
}

static void on_instance_unhealthy(struct instance *instance, const char *reason, void *userdata)
{
	struct fleet *fleet = userdata;
	struct service *svc = owner_of(fleet, instance);

	if (!svc)
		return;
	service_audit(fleet, "instance-unhealthy",
		      json_pack("{s:s, s:s, s:s}", "service", svc->name, "instance",
				instance_id(instance), "reason", reason),
		      true);
	/* An unhealthy standby is no use: it is stopped and another one
	 * started on the next loop turn (not here: its callback is on the
	 * stack). */
	if (service_standby_index(svc, instance) >= 0) {
		standby_schedule(svc, 0);
		return;
	}
	/* Replaced and killed unless OnUnhealthy=quarantine: failing health is
	 * no sign of compromise by itself. */
	if (instance == svc->current)
		response_replace(svc, instance, "health", json_pack("{s:s}", "health", reason),
				 svc->policy->on_unhealthy == COMPROMISE_QUARANTINE
				     ? RESPONSE_DISPOSE_QUARANTINE
				     : RESPONSE_DISPOSE_KILL,
				 0, 0);
}

static void on_instance_signal(struct instance *instance, const char *kind, json_t *evidence,
			       void *userdata)
{
	struct fleet *fleet = userdata;
	struct service *svc = owner_of(fleet, instance);
	uint64_t detected_usec = now(CLOCK_MONOTONIC);
	enum response_action action;
	struct drain *d;

	if (!svc && (d = drain_find(fleet, instance))) {
		/* A draining instance: no longer any service's, but its
		 * policy's answer holds (the service may be gone: kill, or
		 * alert under --monitor). */
		struct service *owner = service_find(fleet, drain_service(d));

		action = owner		  ? response_decide(owner->policy, fleet->monitor, kind)
			 : fleet->monitor ? RESPONSE_ACT_ALERT
					  : RESPONSE_ACT_KILL;
		if (action == RESPONSE_ACT_ALERT || action == RESPONSE_ACT_ERRNO) {
			if (owner)
				owner->not_acted_on[response_signal_kind_index(kind)]++;
			service_audit(fleet, kind,
				      json_pack("{s:s, s:s, s:o, s:s, s:b}", "service",
						drain_service(d), "instance", instance_id(instance),
						"evidence", evidence, "action",
						response_action_name(action), "draining", true),
				      true);
			return;
		}
		drain_compromised(d, kind, evidence,
				  action == RESPONSE_ACT_KILL ? RESPONSE_DISPOSE_KILL
							      : RESPONSE_DISPOSE_QUARANTINE);
		return;
	}
	if (!svc) {
		json_decref(evidence);
		return;
	}
	action = response_decide(svc->policy, fleet->monitor, kind);
	/* Alert (OnCompromise=alert, --monitor) or OnSyscallViolation=errno
	 * (the call failed with EPERM already): recorded and counted, the
	 * instance runs on. */
	if (action == RESPONSE_ACT_ALERT || action == RESPONSE_ACT_ERRNO) {
		svc->not_acted_on[response_signal_kind_index(kind)]++;
		service_audit(fleet, kind,
			      json_pack("{s:s, s:s, s:o, s:s}", "service", svc->name, "instance",
					instance_id(instance), "evidence", evidence, "action",
					response_action_name(action)),
			      true);
		return;
	}
	/* Every kind here is a sign of compromise, answered now: contained
	 * (frozen, cut off) before anything else, its record included, then
	 * replaced. The response may run inside this instance's own callback
	 * (a seccomp notification, a drift event): it never destroys an
	 * instance there (disposal waits for the next loop turn). The signal's
	 * record is written by the response, before its own records; it is
	 * made durable with the replacement's (an fdatasync here, 0.3 to 9 ms,
	 * would hold the replacement up). */
	response_replace(svc, instance, kind, evidence,
			 action == RESPONSE_ACT_KILL ? RESPONSE_DISPOSE_KILL
						     : RESPONSE_DISPOSE_QUARANTINE,
			 detected_usec, RESPONSE_COMPROMISED | RESPONSE_RECORD_SIGNAL);
}

/* The signals after the first of their kind, one record an interval. */
static void on_instance_signals_counted(const char *service, const char *instance, const char *kind,
					uint64_t count, json_t *first_evidence,
					uint64_t interval_usec, void *userdata)
{
	struct fleet *fleet = userdata;
	struct service *svc = service_find(fleet, service);
	const char *action = NULL;

	/* Under alert or errno each of them is a detection not acted on. */
	if (svc) {
		enum response_action a = response_decide(svc->policy, fleet->monitor, kind);

		action = response_action_name(a);
		if (a == RESPONSE_ACT_ALERT || a == RESPONSE_ACT_ERRNO)
			svc->not_acted_on[response_signal_kind_index(kind)] += count;
	}
	service_audit(fleet, "signals-counted",
		      json_pack("{s:s, s:s, s:s, s:I, s:I, s:O?, s:s?}", "service", service,
				"instance", instance, "kind", kind, "count", (json_int_t)count,
				"interval_usec", (json_int_t)interval_usec, "first_evidence",
				first_evidence, "action", action),
		      false);
}

void fleet_egress_drop(struct fleet *fleet, const char *link, json_t *evidence)
{
	struct drain *d = link ? drain_find_link(fleet, link) : NULL;

	if (d) {
		/* A draining instance: charged the same way, up to the
		 * threshold of its service's policy (1 when it is gone). */
		const struct service *owner = service_find(fleet, drain_service(d));
		unsigned drops = drain_egress_drop(d);

		if (drops == (owner ? owner->policy->egress_alert_threshold : 1)) {
			json_object_set_new(evidence, "drops", json_integer(drops));
			on_instance_signal(drain_instance(d), "egress", evidence, fleet);
			return;
		}
		json_decref(evidence);
		return;
	}
	for (size_t i = 0; link && i < fleet->n_services; i++) {
		struct service *svc = fleet->services[i];

		struct instance *x[2 + ELEMENTSOF(svc->standbys)] = {svc->current, svc->next};

		for (size_t k = 0; k < svc->n_standbys; k++)
			x[2 + k] = svc->standbys[k].instance;
		for (struct instance **p = x; p < x + 2 + svc->n_standbys; p++) {
			const char *instance_name;

			if (!*p || !streq(instance_link(*p), link))
				continue;
			instance_name = instance_id(*p);
			if (!streq(svc->egress_instance, instance_name)) {
				snprintf(svc->egress_instance, sizeof(svc->egress_instance), "%s",
					 instance_name);
				svc->egress_drops = 0;
			}
			/* EgressAlertThreshold= drops make a compromise signal, once. */
			if (++svc->egress_drops == svc->policy->egress_alert_threshold) {
				json_object_set_new(evidence, "drops",
						    json_integer(svc->egress_drops));
				on_instance_signal(*p, "egress", evidence, fleet);
				return;
			}
			json_decref(evidence);
			return;
		}
	}
	json_decref(evidence);
}

static void on_instance_exit(struct instance *instance, const siginfo_t *info, void *userdata)
{
	struct fleet *fleet = userdata;
	struct service *svc = owner_of(fleet, instance);
	bool sigsys = (info->si_code == CLD_KILLED || info->si_code == CLD_DUMPED) &&
		      info->si_status == SIGSYS;
	bool quick =
	    now(CLOCK_MONOTONIC) - instance_started_usec(instance) < SERVICE_QUICK_FAILURE_USEC;
	char how[64];
	struct drain *d;

	if (!svc && (d = drain_find(fleet, instance))) {
		instance_format_exit(info, how, sizeof(how));
		service_audit(fleet, "instance-exit",
			      json_pack("{s:s, s:s, s:s, s:i, s:b, s:s}", "service",
					drain_service(d), "instance", instance_id(instance),
					"status", how, "pid", (int)info->si_pid, "sigsys", sigsys,
					"role", "draining"),
			      true);
		drain_exited(d);
		return;
	}
	if (!svc)
		return;
	instance_format_exit(info, how, sizeof(how));
	if (service_standby_index(svc, instance) >= 0) {
		service_audit(fleet, "instance-exit",
			      json_pack("{s:s, s:s, s:s, s:i, s:b, s:s}", "service", svc->name,
					"instance", instance_id(instance), "status", how, "pid",
					(int)info->si_pid, "sigsys", sigsys, "role", "standby"),
			      true);
		service_forget_standby(svc, instance);
		service_destroy_instance(fleet, instance);
		standby_exited(svc, quick);
		return;
	}
	service_audit(fleet, "instance-exit",
		      json_pack("{s:s, s:s, s:s, s:i, s:b}", "service", svc->name, "instance",
				instance_id(instance), "status", how, "pid", (int)info->si_pid,
				"sigsys", sigsys),
		      true);
	/* A SIGSYS death is a seccomp violation too (SystemCallDefault=kill, or
	 * the agent's own unit filter): audited as such; the restart below is
	 * the replacement. */
	if (sigsys)
		service_audit(fleet, "seccomp-violation",
			      json_pack("{s:s, s:s, s:{s:s, s:i}}", "service", svc->name,
					"instance", instance_id(instance), "evidence", "signal",
					"SIGSYS", "pid", (int)info->si_pid),
			      true);
	svc->quick_failures = quick ? svc->quick_failures + 1 : 0;
	if (svc->current == instance) {
		service_unroute(svc);
		svc->current = NULL;
		service_destroy_instance(fleet, instance);
		if (svc->next) {
			/* The replacement takes over as the one starting. */
			svc->current = svc->next;
			svc->next = NULL;
			svc->replacing = false;
			if (instance_state(svc->current) == INSTANCE_HEALTHY &&
			    service_route(svc, svc->current, NULL) == 0) {
				svc->routed = true;
				response_arm_lifetime(svc);
			}
		} else if (!quick && (svc->current = standby_take(svc))) {
			/* A standby takes over at once (unless instances die
			 * young: then the restart back-off decides). */
			if (service_route(svc, svc->current, NULL) == 0) {
				svc->routed = true;
				response_arm_lifetime(svc);
				standby_schedule(svc, 0);
			} else {
				service_stop_instance(svc, svc->current, "could not be routed");
				service_schedule_restart(svc);
			}
		} else {
			service_schedule_restart(svc);
		}
		return;
	}
	svc->next = NULL;
	service_destroy_instance(fleet, instance);
	/* A replacement that died is started again; the old one keeps serving. */
	if (svc->replacing)
		service_schedule_restart(svc);
}

/* A service that is gone: its instances stopped, its response state and
 * then the service itself freed. NULL is fine. */
static void service_drop(struct service *svc)
{
	if (!svc)
		return;
	standby_stop_all(svc, "service stopped");
	service_stop_instance(svc, svc->next, "service stopped");
	service_stop_instance(svc, svc->current, "service stopped");
	response_service_done(svc);
	service_free(svc);
}

void fleet_apply_policies(struct fleet *fleet, const struct policy_set *set)
{
	struct service **next = calloc(set->count + 1, sizeof(*next));
	/* Instances start once the fleet lists their services: one without a
	 * health check is healthy at once, and its hook looks the service up. */
	bool *start = calloc(set->count + 1, sizeof(*start));
	size_t n = 0;

	if (!next || !start) {
		free(next);
		free(start);
		return;
	}
	for (size_t i = 0; i < set->count; i++) {
		const struct policy *p = set->policies[i];
		struct service *old, *svc;

		if (!p->snapshot)
			continue;
		svc = service_new(fleet, p);
		if (!svc)
			break;

		old = service_find(fleet, p->name);
		if (old) {
			/* Instances move over; a changed policy gets a replacement. */
			bool changed = !old->policy_text || !svc->policy_text ||
				       !streq(old->policy_text, svc->policy_text);

			svc->current = TAKE_PTR(old->current);
			svc->next = TAKE_PTR(old->next);
			/* Standbys of an unchanged policy wait on; others go (they
			 * run what the old policy said). */
			if (changed || step_error_failed(&svc->failed))
				standby_stop_all(old, "policy changed");
			memcpy(svc->standbys, old->standbys, sizeof(svc->standbys));
			svc->n_standbys = old->n_standbys;
			old->n_standbys = 0;
			svc->routed = old->routed;
			old->routed = false;
			memcpy(svc->previous, old->previous, sizeof(svc->previous));
			memcpy(svc->not_acted_on, old->not_acted_on, sizeof(svc->not_acted_on));
			svc->n_previous = old->n_previous;
			for (size_t j = 0; j < fleet->n_services; j++)
				if (fleet->services[j] == old)
					fleet->services[j] = NULL;
			service_drop(old);
			next[n++] = svc;
			if (step_error_failed(&svc->failed)) {
				service_stop_instance(svc, svc->next,
						      "the service failed verification");
				service_stop_instance(svc, svc->current,
						      "the service failed verification");
			} else if (changed) {
				service_stop_instance(svc, svc->next, "policy changed");
				start[n - 1] = true;
			} else if (!svc->current) {
				start[n - 1] = true;
			} else {
				standby_schedule(svc, 0);
			}
			continue;
		}
		start[n] = true;
		next[n++] = svc;
	}
	/* Services that are gone. Each leaves the array once freed: an ending
	 * instance's last signals-counted looks its service up (service_find). */
	for (size_t j = 0; j < fleet->n_services; j++) {
		service_drop(fleet->services[j]);
		fleet->services[j] = NULL;
	}
	free(fleet->services);
	fleet->services = next;
	fleet->n_services = n;
	for (size_t i = 0; i < n; i++)
		if (start[i])
			service_start_instance(next[i]);
	free(start);
}

/* What the instance is to its service: serving (the public port leads to
 * it), starting, replacement, standby (healthy or not yet, never routed),
 * standby-retiring, quarantined. */
static json_t *with_role(json_t *instance, const char *role)
{
	json_object_set_new(instance, "role", json_string(role));
	return instance;
}

json_t *fleet_instances_json(const struct fleet *fleet)
{
	json_t *list = json_array();

	for (size_t i = 0; list && i < fleet->n_services; i++) {
		const struct service *svc = fleet->services[i];

		if (step_error_failed(&svc->failed))
			json_array_append_new(list, json_pack("{s:s, s:s, s:s}", "service",
							      svc->name, "state", "failed",
							      "health", svc->failed.detail));
		if (svc->current)
			json_array_append_new(list,
					      with_role(instance_to_json(svc->current),
							svc->routed ? "serving" : "starting"));
		if (svc->next)
			json_array_append_new(
			    list, with_role(instance_to_json(svc->next), "replacement"));
		for (size_t k = 0; k < svc->n_standbys; k++)
			json_array_append_new(
			    list,
			    with_role(instance_to_json(svc->standbys[k].instance),
				      svc->standbys[k].retiring ? "standby-retiring" : "standby"));
	}
	json_t *draining = drain_instances_json(fleet);

	json_array_extend(list, draining);
	json_decref(draining);
	for (size_t i = 0; list && i < fleet->n_quarantined; i++)
		json_array_append_new(list, response_quarantined_json(&fleet->quarantined[i]));
	return list;
}

/* {"seccomp-violation": N, "drift": N, "egress": N, "other": N} */
static json_t *not_acted_on_json(const struct service *svc)
{
	json_t *o = json_object();

	for (size_t k = 0; o && k < RESPONSE_SIGNAL_KINDS; k++)
		json_object_set_new(o, response_signal_kinds[k],
				    json_integer((json_int_t)svc->not_acted_on[k]));
	return o;
}

json_t *fleet_services_json(const struct fleet *fleet)
{
	json_t *list = json_array();

	for (size_t i = 0; list && i < fleet->n_services; i++) {
		const struct service *svc = fleet->services[i];

		json_array_append_new(
		    list,
		    json_pack(
			"{s:s, s:s?, s:b, s:b, s:o, s:s, s:o, s:o}", "service", svc->name,
			"serving", svc->current ? instance_id(svc->current) : NULL, "routed",
			svc->routed, "replacing", svc->replacing, "standbys", standby_json(svc),
			"on_compromise",
			response_action_name(response_decide(svc->policy, fleet->monitor, "drift")),
			"not_acted_on", not_acted_on_json(svc), "draining",
			drain_service_json(fleet, svc->name)));
	}
	return list;
}

static void purge_links(void)
{
	struct if_nameindex *links = if_nameindex();

	for (struct if_nameindex *l = links; l && l->if_index; l++)
		if (strncmp(l->if_name, "mtdi", 4) == 0)
			(void)netdev_delete_link(l->if_name);
	if (links)
		if_freenameindex(links);
}

/* What fleet_new() made before a step failed: no instance runs yet, and the
 * cgroup root stays (fleet_free() removes it). NULL is fine. */
static void fleet_unmake(struct fleet *fleet)
{
	if (!fleet)
		return;
	uid_ranges_free(fleet->uid_ranges);
	instance_ids_free(fleet->ids);
	cgroup_root_free(fleet->cgroups);
	sd_event_unref(fleet->event);
	free(fleet->state_dir);
	free(fleet);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct fleet *, fleet_unmake);

/* *ret_error = the sentence; r is returned. */
_printf_(3, 4) static int new_failed(char **ret_error, int r, const char *format, ...)
{
	va_list ap;

	va_start(ap, format);
	if (vasprintf(ret_error, format, ap) < 0)
		*ret_error = NULL;
	va_end(ap);
	return r;
}

/* Evidence a killed agent was still writing is incomplete: not kept. */
static void remove_interrupted(struct fleet *fleet)
{
	json_t *removed = NULL;

	if (quarantine_remove_interrupted(fleet->state_dir, &removed) == 0 &&
	    json_array_size(removed) > 0)
		service_audit(fleet, "quarantine-interrupted",
			      json_pack("{s:O, s:s}", "instances", removed, "outcome",
					"incomplete evidence removed"),
			      true);
	json_decref(removed);
}

int fleet_new(sd_event *event, struct rotation *rotation, struct forwarding *forwarding,
	      const char *cgroup_name, const char *state_dir, bool monitor,
	      const struct fleet_hooks *hooks, struct fleet **ret_fleet, char **ret_error)
{
	_cleanup_(fleet_unmakep) struct fleet *fleet = calloc(1, sizeof(*fleet));
	int r;

	if (!fleet)
		return -ENOMEM;
	fleet->state_dir = strdup(state_dir);
	if (!fleet->state_dir)
		return -ENOMEM;
	fleet->event = sd_event_ref(event);
	fleet->rotation = rotation;
	fleet->monitor = monitor;
	fleet->hooks = *hooks;
	/* Every instance's events come back here (service.c starts them). */
	fleet->instance_hooks = (struct instance_hooks){
	    .on_healthy = on_instance_healthy,
	    .on_unhealthy = on_instance_unhealthy,
	    .on_exit = on_instance_exit,
	    .on_signal = on_instance_signal,
	    .on_signals_counted = on_instance_signals_counted,
	    .userdata = fleet,
	};
	r = instance_ids_open(state_dir, &fleet->ids);
	if (r < 0)
		return new_failed(ret_error, r, "instance numbers (%s/instance-ids): %s", state_dir,
				  strerror(-r));
	r = cgroup_root_open(cgroup_name, &fleet->cgroups);
	if (r < 0)
		return new_failed(ret_error, r, "cgroup %s: %s", cgroup_name, strerror(-r));
	remove_interrupted(fleet);
	/* A killed agent leaves its instances running: end them and their links. */
	r = cgroup_root_purge(fleet->cgroups, 5 * USEC_PER_SEC);
	if (r > 0)
		service_audit(fleet, "instances-purged",
			      json_pack("{s:i, s:s}", "count", r, "reason",
					"left running by a previous agent"),
			      true);
	purge_links();
	/* After the purge: what still runs in a range keeps it (sandbox.h). */
	r = uid_ranges_open("/", UID_RANGE_REGION_FIRST, UID_RANGE_REGION_END, &fleet->uid_ranges);
	if (r < 0)
		return new_failed(ret_error, r, "host id ranges: %s", strerror(-r));
	/* Forwarding carries DNATed traffic to the instances' links (and only
	 * there: rotation.h). */
	r = forwarding_enable(forwarding);
	if (r < 0)
		return new_failed(ret_error, r, "IP forwarding: %s", strerror(-r));
	*ret_fleet = TAKE_PTR(fleet);
	return 0;
}

void fleet_free(struct fleet *fleet)
{
	if (!fleet)
		return;
	/* As in fleet_apply_policies(): no freed service stays findable while
	 * instances end (theirs, then the disposals and quarantined ones). */
	for (size_t i = 0; i < fleet->n_services; i++) {
		service_drop(fleet->services[i]);
		fleet->services[i] = NULL;
	}
	free(fleet->services);
	fleet->services = NULL;
	fleet->n_services = 0;
	drain_fleet_done(fleet);
	response_fleet_done(fleet);
	if (fleet->cgroups) {
		(void)cgroup_root_remove(fleet->cgroups);
		cgroup_root_free(fleet->cgroups);
	}
	instance_ids_free(fleet->ids);
	uid_ranges_free(fleet->uid_ranges);
	sd_event_unref(fleet->event);
	free(fleet->state_dir);
	free(fleet);
}

static struct service *find_target(struct fleet *fleet, const char *target,
				   struct instance **ret_instance)
{
	for (size_t i = 0; i < fleet->n_services; i++) {
		struct service *svc = fleet->services[i];

		if (streq(svc->name, target) && svc->current) {
			*ret_instance = svc->current;
			return svc;
		}
		for (struct instance *x[] = {svc->current, svc->next}, **p = x; p < x + 2; p++)
			if (*p && streq(instance_id(*p), target)) {
				*ret_instance = *p;
				return svc;
			}
		for (size_t k = 0; k < svc->n_standbys; k++)
			if (streq(instance_id(svc->standbys[k].instance), target)) {
				*ret_instance = svc->standbys[k].instance;
				return svc;
			}
	}
	return NULL;
}

int fleet_quarantine(struct fleet *fleet, const char *target, const char *reason, json_t *requester,
		     char **ret_message)
{
	uint64_t detected_usec = now(CLOCK_MONOTONIC);
	struct instance *instance = NULL;
	struct service *svc = find_target(fleet, target, &instance);
	struct drain *d = svc ? NULL : drain_find_id(fleet, target);
	json_t *evidence;

	if (d) {
		/* A draining instance: cut off and frozen at once, then kept. */
		if (asprintf(ret_message, "quarantining %s: its drain ends now", target) < 0)
			*ret_message = NULL;
		drain_compromised(
		    d, "manual",
		    json_pack("{s:s, s:o?}", "reason", reason, "requested_by", requester),
		    RESPONSE_DISPOSE_QUARANTINE);
		return 0;
	}
	if (!svc) {
		json_decref(requester);
		return -ENOENT;
	}
	/* The operator's word is a detection: frozen and cut off first. */
	response_contain(svc, instance, "manual", detected_usec);
	evidence = json_pack("{s:s, s:o?}", "reason", reason, "requested_by", requester);
	if (asprintf(ret_message, "quarantining %s: a replacement starts from the clean snapshot",
		     instance_id(instance)) < 0)
		*ret_message = NULL;
	response_replace(svc, instance, "manual", evidence, RESPONSE_DISPOSE_QUARANTINE,
			 detected_usec, RESPONSE_COMPROMISED);
	return 0;
}

int fleet_replace(struct fleet *fleet, const char *target, json_t *requester, char **ret_message)
{
	struct instance *instance = NULL;
	struct service *svc = find_target(fleet, target, &instance);

	if (!svc) {
		json_decref(requester);
		return -ENOENT;
	}
	/* Only the serving instance is replaced this way (a standby or a
	 * replacement starting has no connections to drain). */
	if (instance != svc->current || !svc->routed || svc->replacing) {
		json_decref(requester);
		return -EBUSY;
	}
	if (asprintf(ret_message,
		     "replacing %s: a fresh instance takes new connections once healthy%s",
		     instance_id(instance),
		     svc->policy->drain_timeout_usec ? "; established ones drain" : "") < 0)
		*ret_message = NULL;
	/* Planned: outside the storm bound, never contained, drains. */
	response_replace(svc, instance, "manual-replace",
			 json_pack("{s:o}", "requested_by", requester), RESPONSE_DISPOSE_KILL, 0,
			 RESPONSE_PLANNED);
	return 0;
}

static ssize_t find_quarantined(struct fleet *fleet, const char *id)
{
	for (size_t i = 0; i < fleet->n_quarantined; i++)
		if (streq(instance_id(fleet->quarantined[i].instance), id))
			return (ssize_t)i;
	return -1;
}

int fleet_release(struct fleet *fleet, const char *id)
{
	ssize_t i = find_quarantined(fleet, id);
	int r;

	if (i < 0)
		return -ENOENT;
	response_quarantine_remove(fleet, (size_t)i);
	r = quarantine_remove(fleet->state_dir, id);
	service_audit(fleet, "instance-released",
		      json_pack("{s:s, s:s?}", "instance", id, "evidence_removal_error",
				r < 0 && r != -ENOENT ? strerror(-r) : NULL),
		      true);
	return 0;
}

int fleet_inspect(struct fleet *fleet, const char *id, bool verify, json_t **ret)
{
	struct instance *instance = NULL;
	struct service *svc = find_target(fleet, id, &instance);
	json_t *findings;
	int r;

	/* A live instance: a drift scan of its writable layer, now. */
	if (svc && streq(instance_id(instance), id)) {
		r = instance_scan_drift(instance, &findings);
		if (r < 0)
			return r;
		*ret = json_pack("{s:o, s:o}", "instance", instance_to_json(instance), "drift",
				 findings);
		return *ret ? 0 : -ENOMEM;
	}
	/* Kept evidence: what was computed when it was saved, or (root's
	 * --verify) every file checked against the manifest now. */
	return verify ? quarantine_inspect(fleet->state_dir, id, ret)
		      : quarantine_summary(fleet->state_dir, id, ret);
}
