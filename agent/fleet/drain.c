/* SPDX-License-Identifier: MIT */
/* Draining (DrainTimeout=): after a planned replacement (MaxLifetime=, a
 * reload that changed the service, `mtdctl replace`) the public port leads
 * to the new instance, and the old one keeps its envelope: its addresses
 * stay in the live set and its ingress element stays, so the flows that
 * conntrack already bound to it (their DNAT is decided once, at the first
 * packet) pass on, while the route sends every new flow elsewhere. It is
 * polled every DRAIN_POLL_USEC: once conntrack lists no open DNATed flow to
 * its addresses, or once DrainTimeout= passed, it is cut and killed like any
 * replaced instance (instance-drained says how many flows were still open
 * and whether the timeout expired). A compromise never drains: a draining
 * instance that shows a sign of compromise is cut off at once and disposed
 * of as its policy says. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet_internal.h"
#include "clock.h"
#include "macro.h"
#include "rotation.h"
#include "rotator.h"

#define DRAIN_POLL_USEC (250 * USEC_PER_MSEC)

static void drain_free(struct drain *d)
{
	for (struct drain **p = &d->fleet->drains; *p; p = &(*p)->next)
		if (*p == d) {
			*p = d->next;
			break;
		}
	sd_event_source_disable_unref(d->timer);
	json_decref(d->evidence);
	free(d);
}

/* Open DNATed flows to the instance's addresses; -errno when conntrack
 * cannot be read. */
static int count_open(const struct drain *d, size_t *ret_open)
{
	const struct netdev_address *a;
	size_t n, total = 0;

	a = instance_addresses(d->instance, &n);
	for (size_t i = 0; i < n; i++) {
		struct rotator_addr addr = {.family = a[i].family};
		size_t k = 0;
		int r;

		memcpy(&addr.in6, &a[i].v6,
		       a[i].family == AF_INET ? sizeof(struct in_addr) : sizeof(struct in6_addr));
		r = rotator_conntrack_count_to(&addr, &k);
		if (r < 0)
			return r;
		total += k;
	}
	*ret_open = total;
	return 0;
}

static void finish(struct drain *d, const char *why, bool timed_out)
{
	struct fleet *fleet = d->fleet;
	struct service *svc = service_find(fleet, d->service);

	service_audit(
	    fleet, "instance-drained",
	    json_pack("{s:s, s:s, s:s, s:I, s:b, s:I, s:s?}", "service", d->service, "instance",
		      instance_id(d->instance), "why", why, "open_connections", (json_int_t)d->open,
		      "timeout_expired", timed_out, "drained_usec",
		      (json_int_t)(now(CLOCK_MONOTONIC) - d->started_usec), "conntrack_error",
		      d->count_error < 0 ? strerror(-d->count_error) : NULL),
	    true);
	if (d->compromised && svc && d->disposal == RESPONSE_DISPOSE_QUARANTINE) {
		(void)rotation_remove_instance(fleet->rotation, instance_id(d->instance), NULL);
		response_quarantine_instance(fleet, svc, d->instance, d->reason, d->evidence);
	} else {
		/* What DrainTimeout= left open ends with a reset now (its
		 * clients waiting for an answer included), not a hang. */
		(void)instance_reset_connections(d->instance);
		service_audit(fleet, "instance-killed",
			      json_pack("{s:s, s:s, s:s, s:o?}", "service", d->service, "instance",
					instance_id(d->instance), "reason",
					d->compromised ? d->reason : "drained", "connections_reset",
					instance_reset_json(d->instance)),
			      true);
		/* Its envelope goes (every flow still open to it is cut), then
		 * the instance. */
		service_destroy_instance(fleet, d->instance);
	}
	drain_free(d);
}

static int on_drain_timer(sd_event_source *source, uint64_t usec, void *userdata)
{
	struct drain *d = userdata;
	uint64_t t = now(CLOCK_MONOTONIC);

	if (d->compromised) {
		finish(d, "compromised", false);
		return 0;
	}
	d->count_error = count_open(d, &d->open);
	/* Conntrack unreadable: the timeout decides (fail towards the
	 * connections, which the route already keeps from new flows). */
	if (d->count_error == 0 && d->open == 0) {
		finish(d, "no connection left", false);
		return 0;
	}
	if (t >= d->deadline_usec) {
		finish(d, "DrainTimeout= passed", true);
		return 0;
	}
	(void)sd_event_source_set_time(source, t + DRAIN_POLL_USEC < d->deadline_usec
						   ? t + DRAIN_POLL_USEC
						   : d->deadline_usec);
	(void)sd_event_source_set_enabled(source, SD_EVENT_ONESHOT);
	return 0;
}

size_t drain_count(const struct fleet *fleet, const char *service)
{
	size_t n = 0;

	for (const struct drain *d = fleet->drains; d; d = d->next)
		if (streq(d->service, service))
			n++;
	return n;
}

bool drain_begin(struct service *svc, struct instance *instance, const char *reason)
{
	struct fleet *fleet = svc->fleet;
	uint64_t timeout = svc->policy->drain_timeout_usec, t = now(CLOCK_MONOTONIC);
	struct drain *d;

	if (!timeout || instance_containment(instance)->cut_usec)
		return false;
	if (drain_count(fleet, svc->name) >= DRAIN_MAX_PER_SERVICE) {
		service_audit(fleet, "instance-drain-refused",
			      json_pack("{s:s, s:s, s:s, s:i}", "service", svc->name, "instance",
					instance_id(instance), "why",
					"too many instances of the service draining already",
					"draining", DRAIN_MAX_PER_SERVICE),
			      false);
		return false;
	}
	d = calloc(1, sizeof(*d));
	if (!d)
		return false;
	d->fleet = fleet;
	d->instance = instance;
	snprintf(d->service, sizeof(d->service), "%s", svc->name);
	d->started_usec = t;
	d->deadline_usec = t + timeout;
	/* The first look at once: an instance without connections goes now. */
	if (sd_event_add_time(fleet->event, &d->timer, CLOCK_MONOTONIC, t, 0, on_drain_timer, d) <
	    0) {
		free(d);
		return false;
	}
	d->next = fleet->drains;
	fleet->drains = d;
	service_audit(fleet, "instance-draining",
		      json_pack("{s:s, s:s, s:s, s:I}", "service", svc->name, "instance",
				instance_id(instance), "reason", reason, "timeout_usec",
				(json_int_t)timeout),
		      false);
	return true;
}

struct drain *drain_find(const struct fleet *fleet, const struct instance *instance)
{
	for (struct drain *d = fleet->drains; d; d = d->next)
		if (d->instance == instance)
			return d;
	return NULL;
}

struct drain *drain_find_id(const struct fleet *fleet, const char *id)
{
	for (struct drain *d = fleet->drains; d; d = d->next)
		if (streq(instance_id(d->instance), id))
			return d;
	return NULL;
}

struct drain *drain_find_link(const struct fleet *fleet, const char *link)
{
	for (struct drain *d = fleet->drains; d; d = d->next)
		if (streq(instance_link(d->instance), link))
			return d;
	return NULL;
}

const char *drain_service(const struct drain *d)
{
	return d->service;
}

struct instance *drain_instance(const struct drain *d)
{
	return d->instance;
}

unsigned drain_egress_drop(struct drain *d)
{
	return ++d->egress_drops;
}

void drain_compromised(struct drain *d, const char *kind, json_t *evidence,
		       enum response_disposal disposal)
{
	struct step_error error = {0};

	/* The signal's record ("manual": the operator's control-request is). */
	if (!streq(kind, "manual"))
		service_audit(d->fleet, kind,
			      json_pack("{s:s, s:s, s:O?, s:b}", "service", d->service, "instance",
					instance_id(d->instance), "evidence", evidence, "draining",
					true),
			      true);
	if (d->compromised) {
		json_decref(evidence);
		return;
	}
	/* Contained now: frozen (killed when it cannot be), cut off. */
	if (instance_freeze_begin(d->instance) < 0)
		(void)instance_kill(d->instance);
	if (rotation_cut_instance(d->fleet->rotation, instance_id(d->instance), &error) < 0)
		(void)rotation_remove_instance(d->fleet->rotation, instance_id(d->instance), NULL);
	/* Its clients waiting for an answer are reset now (SOCK_DESTROY). */
	(void)instance_reset_connections(d->instance);
	d->compromised = true;
	d->disposal = disposal;
	snprintf(d->reason, sizeof(d->reason), "%s", kind);
	d->evidence = evidence;
	(void)sd_event_source_set_time(d->timer, now(CLOCK_MONOTONIC));
	(void)sd_event_source_set_enabled(d->timer, SD_EVENT_ONESHOT);
}

void drain_exited(struct drain *d)
{
	finish(d, "the instance exited", false);
}

json_t *drain_instances_json(const struct fleet *fleet)
{
	json_t *list = json_array();
	uint64_t t = now(CLOCK_MONOTONIC);

	for (const struct drain *d = fleet->drains; list && d; d = d->next) {
		json_t *o = instance_to_json(d->instance);

		json_object_set_new(o, "role", json_string("draining"));
		json_object_set_new(o, "open_connections", json_integer((json_int_t)d->open));
		json_object_set_new(
		    o, "drain_left_usec",
		    json_integer((json_int_t)(d->deadline_usec > t ? d->deadline_usec - t : 0)));
		json_array_append_new(list, o);
	}
	return list;
}

json_t *drain_service_json(const struct fleet *fleet, const char *service)
{
	json_t *list = json_array();

	for (const struct drain *d = fleet->drains; list && d; d = d->next)
		if (streq(d->service, service))
			json_array_append_new(list, json_string(instance_id(d->instance)));
	return list;
}

void drain_fleet_done(struct fleet *fleet)
{
	while (fleet->drains) {
		struct drain *d = fleet->drains;

		service_audit(fleet, "instance-stop",
			      json_pack("{s:s, s:s, s:s}", "service", d->service, "instance",
					instance_id(d->instance), "reason",
					"agent stopping (draining)"),
			      false);
		service_destroy_instance(fleet, d->instance);
		drain_free(d);
	}
}
