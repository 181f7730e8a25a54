/* SPDX-License-Identifier: MIT */
/* Quarantined instances and their evidence. The instance is frozen and kept;
 * its writable layer, processes and record are saved under
 * STATE_DIR/quarantine/ID by a process of its own (quarantine.h), one
 * save at a time in the order of quarantine (evictions by QuarantineMax= are
 * then decided on complete entries only), so a layer of any size never
 * stalls the loop. The `instance-quarantined` record is written when the
 * save is over, with its outcome. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet_internal.h"
#include "macro.h"
#include "quarantine.h"

static void start_next_save(struct fleet *fleet);

static void remove_at(struct fleet *fleet, size_t i)
{
	struct response_quarantined *q = &fleet->quarantined[i];

	quarantine_job_cancel(TAKE_PTR(q->job));
	json_decref(TAKE_PTR(q->evidence));
	service_destroy_instance(fleet, q->instance);
	/* the order is the order of the saves: keep it */
	memmove(q, q + 1, (fleet->n_quarantined - i - 1) * sizeof(*q));
	fleet->n_quarantined--;
}

void response_quarantine_remove(struct fleet *fleet, size_t index)
{
	bool was_saving = fleet->quarantined[index].job != NULL;

	remove_at(fleet, index);
	if (was_saving)
		start_next_save(fleet);
}

void response_quarantine_clear(struct fleet *fleet)
{
	/* the last first: nothing moves, no save starts */
	while (fleet->n_quarantined > 0)
		remove_at(fleet, fleet->n_quarantined - 1);
}

json_t *response_quarantined_json(const struct response_quarantined *q)
{
	json_t *o = instance_to_json(q->instance);

	if (o) {
		json_object_set_new(o, "role", json_string("quarantined"));
		json_object_set_new(o, "evidence",
				    json_string(q->job	   ? "saving"
						: q->saved ? "kept"
							   : "waiting"));
	}
	return o;
}

static ssize_t find_by_id(struct fleet *fleet, const char *id)
{
	for (size_t i = 0; i < fleet->n_quarantined; i++)
		if (streq(instance_id(fleet->quarantined[i].instance), id))
			return (ssize_t)i;
	return -1;
}

static void audit_saved(struct fleet *fleet, struct response_quarantined *q, int r,
			const struct quarantine_result *res, const char *error)
{
	_cleanup_free_ char *kept = NULL;

	if (r >= 0 &&
	    asprintf(&kept, "%s/quarantine/%s", fleet->state_dir, instance_id(q->instance)) < 0)
		kept = NULL;
	service_audit(fleet, "instance-quarantined",
		      json_pack("{s:s, s:s, s:s, s:O?, s:s?, s:s, s:b, s:s?, s:o?}", "service",
				q->service, "instance", instance_id(q->instance), "reason",
				q->reason, "evidence", q->evidence, "kept", kept, "manifest_sha256",
				res ? res->manifest_sha256 : "", "truncated", res && res->truncated,
				"save_error", r < 0 ? (error ? error : strerror(-r)) : NULL,
				"connections_reset", instance_reset_json(q->instance)),
		      true);
	json_decref(TAKE_PTR(q->evidence));
	q->saved = true;
}

static void on_saved(int r, const struct quarantine_result *res, const char *error, void *userdata)
{
	struct fleet *fleet = userdata;
	struct response_quarantined *q = NULL;

	for (size_t i = 0; i < fleet->n_quarantined && !q; i++)
		if (fleet->quarantined[i].job)
			q = &fleet->quarantined[i];
	if (!q)
		return; /* cannot be: the job is cancelled with its instance */
	q->job = NULL;	/* the job frees itself after this call */
	audit_saved(fleet, q, r, res, error);
	for (size_t i = 0; r >= 0 && i < res->n_evicted; i++) {
		/* Evicted evidence: its frozen instance goes too. */
		ssize_t j = find_by_id(fleet, res->evicted[i]);

		service_audit(fleet, "quarantine-evicted",
			      json_pack("{s:s, s:s, s:s}", "service",
					j >= 0 ? fleet->quarantined[j].service : "", "instance",
					res->evicted[i], "reason", "QuarantineMax= reached"),
			      true);
		if (j >= 0 && fleet->quarantined[j].saved)
			remove_at(fleet, (size_t)j);
	}
	start_next_save(fleet);
}

static void start_next_save(struct fleet *fleet)
{
	struct quarantine_record record = {0};
	struct response_quarantined *q = NULL;
	char text[2][INET6_ADDRSTRLEN];
	const char *addresses[2];
	const struct netdev_address *a;
	size_t n;
	int r;

	for (size_t i = 0; i < fleet->n_quarantined; i++) {
		if (fleet->quarantined[i].job)
			return; /* one at a time */
		if (!q && !fleet->quarantined[i].saved)
			q = &fleet->quarantined[i];
	}
	if (!q)
		return;
	a = instance_addresses(q->instance, &n);
	for (size_t i = 0; i < n && i < 2; i++) {
		inet_ntop(a[i].family, &a[i].v4, text[i], sizeof(text[i]));
		addresses[i] = text[i];
	}
	record.id = instance_id(q->instance);
	record.service = q->service;
	record.reason = q->reason;
	record.evidence = q->evidence;
	record.pid = instance_pid(q->instance);
	record.addresses = addresses;
	record.n_addresses = n < 2 ? n : 2;
	r = quarantine_job_start(fleet->event, fleet->state_dir, &record,
				 instance_upper_fd(q->instance), instance_cgroup_path(q->instance),
				 q->max_bytes, on_saved, fleet, &q->job);
	if (r < 0) {
		audit_saved(fleet, q, r, NULL, "the save could not be started");
		start_next_save(fleet);
	}
}

void response_quarantine_instance(struct fleet *fleet, struct service *svc,
				  struct instance *instance, const char *reason, json_t *evidence)
{
	struct response_quarantined *grown;
	int r;

	r = instance_isolate_and_freeze(instance);
	if (r < 0) {
		/* Could not freeze: kill rather than leave it running cut off. */
		service_audit(fleet, "quarantine-failed",
			      json_pack("{s:s, s:s, s:s, s:s}", "service", svc->name, "instance",
					instance_id(instance), "reason", strerror(-r), "outcome",
					"killed instead"),
			      true);
		service_destroy_instance(fleet, instance);
		return;
	}
	grown = realloc(fleet->quarantined, (fleet->n_quarantined + 1) * sizeof(*grown));
	if (!grown) {
		service_destroy_instance(fleet, instance);
		return;
	}
	fleet->quarantined = grown;
	grown[fleet->n_quarantined] = (struct response_quarantined){
	    .instance = instance,
	    .evidence = json_incref(evidence),
	    .max_bytes = svc->policy->quarantine_max_bytes,
	};
	snprintf(grown[fleet->n_quarantined].service, sizeof(grown->service), "%s", svc->name);
	snprintf(grown[fleet->n_quarantined].reason, sizeof(grown->reason), "%s", reason);
	fleet->n_quarantined++;
	start_next_save(fleet);
}
