/* SPDX-License-Identifier: MIT */
/* StandbyInstances=: fresh instances of a service, started from the same
 * verified snapshot and sealed binary as any other, kept running and healthy
 * but unrouted, so that a replacement is one transaction (response.c takes
 * one with standby_take()).
 *
 * What a standby is not: no DNAT leads to it (only the serving instance is
 * a rotation backend), so the public port never reaches it; its envelope
 * admits new flows only through the DNAT, so nothing reaches it at all but
 * the agent's own health probes from the host. It is not the service's
 * current instance, so MaxLifetime= replacements, the storm bound and the
 * restart back-off of the service do not count it. It is renewed by its own
 * MaxLifetime= (counted from its start, as for every instance): a successor
 * starts, and the old standby goes once the successor is healthy, so a
 * healthy standby is ready throughout. Standbys start only while the service
 * serves and no replacement is under way: they never compete with the
 * instance that is to take the port. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "fleet_internal.h"
#include "macro.h"
#include "clock.h"

static int on_standby_timer(sd_event_source *source, uint64_t usec, void *userdata);

bool standby_available(const struct service *svc)
{
	for (size_t i = 0; i < svc->n_standbys; i++)
		if (instance_state(svc->standbys[i].instance) == INSTANCE_HEALTHY)
			return true;
	return false;
}

struct instance *standby_take(struct service *svc)
{
	/* The youngest fresh one (the most of its MaxLifetime= ahead; older
	 * ones are renewed in their turn); a retiring one (past its
	 * MaxLifetime=, its successor not yet healthy) only when there is
	 * nothing else. Standbys are kept in the order they started. */
	for (int retiring = 0; retiring < 2; retiring++)
		for (size_t i = svc->n_standbys; i-- > 0;) {
			struct instance *instance = svc->standbys[i].instance;

			if (svc->standbys[i].retiring != (bool)retiring ||
			    instance_state(instance) != INSTANCE_HEALTHY)
				continue;
			service_forget_standby(svc, instance);
			return instance;
		}
	return NULL;
}

void standby_stop_all(struct service *svc, const char *reason)
{
	while (svc->n_standbys > 0)
		service_stop_instance(svc, svc->standbys[svc->n_standbys - 1].instance, reason);
}

void standby_schedule(struct service *svc, uint64_t delay_usec)
{
	if (!svc->policy->standby_instances && svc->n_standbys == 0)
		return;
	if (!svc->standby_timer) {
		if (sd_event_add_time_relative(svc->fleet->event, &svc->standby_timer,
					       CLOCK_MONOTONIC, delay_usec, 1000, on_standby_timer,
					       svc) < 0)
			return;
	} else {
		(void)sd_event_source_set_time_relative(svc->standby_timer, delay_usec);
	}
	(void)sd_event_source_set_enabled(svc->standby_timer, SD_EVENT_ONESHOT);
}

static size_t count(const struct service *svc, bool retiring, bool healthy_only)
{
	size_t n = 0;

	for (size_t i = 0; i < svc->n_standbys; i++)
		n += svc->standbys[i].retiring == retiring &&
		     (!healthy_only ||
		      instance_state(svc->standbys[i].instance) == INSTANCE_HEALTHY);
	return n;
}

void standby_healthy(struct service *svc)
{
	svc->standby_failures = 0;
	/* The successors are ready: the retiring ones go. */
	if (count(svc, false, true) < svc->policy->standby_instances)
		return;
	for (size_t i = svc->n_standbys; i-- > 0;)
		if (svc->standbys[i].retiring)
			service_stop_instance(svc, svc->standbys[i].instance,
					      "standby renewed (MaxLifetime=)");
}

/* A standby not healthy this long after its start is given up (as a
 * replacement is). */
#define STANDBY_START_DEADLINE_USEC (20 * USEC_PER_SEC)

/* Standbys past their MaxLifetime= retire (they still serve as a last
 * resort until a successor is healthy); unhealthy ones go, and so do ones
 * that never became healthy. */
static bool sweep(struct service *svc, uint64_t now_usec)
{
	bool gave_up = false;

	for (size_t i = svc->n_standbys; i-- > 0;) {
		struct standby *s = &svc->standbys[i];
		enum instance_state state = instance_state(s->instance);

		if (state == INSTANCE_UNHEALTHY) {
			service_stop_instance(svc, s->instance, "standby unhealthy");
			continue;
		}
		if (state == INSTANCE_STARTING &&
		    now_usec - instance_started_usec(s->instance) >= STANDBY_START_DEADLINE_USEC) {
			svc->standby_failures++;
			service_stop_instance(svc, s->instance, "standby not healthy in time");
			gave_up = true;
			continue;
		}
		if (!s->retiring && s->deadline_usec && s->deadline_usec <= now_usec) {
			s->retiring = true;
			service_audit(svc->fleet, "standby-retiring",
				      json_pack("{s:s, s:s, s:s}", "service", svc->name, "instance",
						instance_id(s->instance), "reason", "max-lifetime"),
				      false);
		}
	}
	/* More than the policy asks (a reload lowered it): the newest go. */
	while (count(svc, false, false) > svc->policy->standby_instances) {
		for (size_t i = svc->n_standbys; i-- > 0;)
			if (!svc->standbys[i].retiring) {
				service_stop_instance(svc, svc->standbys[i].instance,
						      "more standbys than StandbyInstances=");
				break;
			}
	}
	return gave_up;
}

/* A standby that fails to start or dies young waits before the next one, as
 * a crashing instance does: 250 ms doubling, at most 30 s. */
static uint64_t backoff(const struct service *svc)
{
	unsigned f = svc->standby_failures;

	if (f == 0)
		return 0;
	return f - 1 >= 7 ? SERVICE_BACKOFF_MAX_USEC : SERVICE_BACKOFF_FIRST_USEC << (f - 1);
}

static int start_one(struct service *svc)
{
	struct instance *instance = NULL;
	struct standby *s;
	int r;

	if (svc->n_standbys >= ELEMENTSOF(svc->standbys))
		return -ENOSPC;
	r = service_launch_instance(svc, "standby", &instance);
	if (r < 0)
		return r;
	s = &svc->standbys[svc->n_standbys++];
	*s = (struct standby){.instance = instance,
			      .deadline_usec = service_lifetime_deadline(svc, instance)};
	/* Without a health check it is healthy already. */
	if (instance_state(instance) == INSTANCE_HEALTHY)
		standby_healthy(svc);
	return 0;
}

static void fill(struct service *svc)
{
	uint64_t now_usec = now(CLOCK_MONOTONIC), next = UINT64_MAX;

	bool hold;

	if (step_error_failed(&svc->failed))
		return;
	/* One given up now: the next one after the back-off. */
	hold = sweep(svc, now_usec);
	if (hold)
		next = now_usec + backoff(svc);
	/* Only beside a serving instance, and not while a replacement starts:
	 * the standbys are started again when it is done. */
	if (!svc->routed || svc->replacing || svc->next)
		return;
	while (!hold && count(svc, false, false) < svc->policy->standby_instances) {
		if (start_one(svc) < 0) {
			svc->standby_failures++;
			next = now_usec + backoff(svc);
			break;
		}
	}
	for (size_t i = 0; i < svc->n_standbys; i++) {
		const struct standby *s = &svc->standbys[i];
		uint64_t due =
		    instance_state(s->instance) == INSTANCE_STARTING
			? instance_started_usec(s->instance) + STANDBY_START_DEADLINE_USEC
		    : s->retiring ? 0
				  : s->deadline_usec;

		if (due && due < next)
			next = due;
	}
	if (next != UINT64_MAX)
		standby_schedule(svc, next > now_usec ? next - now_usec : 0);
}

static int on_standby_timer(sd_event_source *source, uint64_t usec, void *userdata)
{
	fill(userdata);
	return 0;
}

void standby_exited(struct service *svc, bool quick)
{
	svc->standby_failures = quick ? svc->standby_failures + 1 : 0;
	standby_schedule(svc, backoff(svc));
}

json_t *standby_json(const struct service *svc)
{
	json_t *ready = json_array(), *starting = json_array(), *retiring = json_array();

	for (size_t i = 0; i < svc->n_standbys; i++) {
		const struct standby *s = &svc->standbys[i];
		json_t *list = s->retiring					 ? retiring
			       : instance_state(s->instance) == INSTANCE_HEALTHY ? ready
										 : starting;

		json_array_append_new(list, json_string(instance_id(s->instance)));
	}
	return json_pack("{s:i, s:o, s:o, s:o}", "target", (int)svc->policy->standby_instances,
			 "ready", ready, "starting", starting, "retiring", retiring);
}
