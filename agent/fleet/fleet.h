/* SPDX-License-Identifier: MIT */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <systemd/sd-event.h>

#include "policy.h"
#include "rotation.h"

/* The managed services of the policy set in force: each one's verified
 * snapshot and compiled seccomp filter (once per policy load), its running
 * instance, restarts with back-off, and routing its public port to the
 * instance once healthy (rotation.c). */

struct fleet;
struct forwarding;

struct fleet_hooks {
	/* Audit one event (fields stolen); security events are synced. */
	int (*audit)(const char *type, json_t *fields, bool sync, void *userdata);
	void *userdata;
};

/* cgroup_name: the instances' parent cgroup under the agent's own;
 * state_dir: quarantined instances' evidence goes to STATE_DIR/quarantine;
 * monitor (mtd-agent --monitor): every service in alert, whatever its
 * OnCompromise=: detections are audited and counted, no instance is
 * contained, replaced, killed or quarantined for one, and
 * SystemCallDefault=kill is compiled as errno (docs/mtd-agent.8). */
int fleet_new(sd_event *event, struct rotation *rotation, struct forwarding *forwarding,
	      const char *cgroup_name, const char *state_dir, bool monitor,
	      const struct fleet_hooks *hooks, struct fleet **ret_fleet, char **ret_error);

/* Take the managed services of a (validated, applied) policy set: verify
 * their snapshots, compile their filters, start what is new or changed,
 * stop what is gone. A service that cannot be prepared (tampered snapshot,
 * missing key) is marked failed and audited; the others go on. The set must
 * outlive its use (until the next call). */
void fleet_apply_policies(struct fleet *fleet, const struct policy_set *set);

/* [{id, service, pid, addresses, age_usec, state, health, role}, ...] (draining
 * ones with open_connections and drain_left_usec) and failed services */
json_t *fleet_instances_json(const struct fleet *fleet);

/* Per managed service, for status: {service, serving, routed, replacing,
 * standbys: {target, ready, starting, retiring}, on_compromise: what a
 * detection gets ("alert" under --monitor), not_acted_on: {KIND: count} of
 * detections audited and counted but not acted on (alert, and
 * OnSyscallViolation=errno), draining: [ids]} */
json_t *fleet_services_json(const struct fleet *fleet);

/* mtdctl quarantine: target is an instance id or a service name (its serving
 * instance). The replacement starts at once; the instance is frozen and kept
 * once the replacement serves. -ENOENT: no such instance. ret_message says
 * what was started. requester is stolen. */
int fleet_quarantine(struct fleet *fleet, const char *target, const char *reason, json_t *requester,
		     char **ret_message);

/* mtdctl replace: target is an instance id or a service name (its serving
 * instance). A planned replacement: a fresh instance starts, takes the
 * public port once healthy, and the old one drains (DrainTimeout=) or is
 * cut. -ENOENT: no such instance; -EBUSY: not the serving instance, or a
 * replacement is under way. requester is stolen. */
int fleet_replace(struct fleet *fleet, const char *target, json_t *requester, char **ret_message);

/* mtdctl release: kill a quarantined instance and remove everything of it,
 * its evidence included. -ENOENT: not quarantined. */
int fleet_release(struct fleet *fleet, const char *id);

/* mtdctl inspect: what was kept of a quarantined instance and why. */
int fleet_inspect(struct fleet *fleet, const char *id, bool verify, json_t **ret);

/* The envelope dropped a packet that came in on link (an instance's host
 * end; evidence stolen): charged to that instance, whatever the packet's
 * source address; EgressAlertThreshold= of them make an "egress" compromise
 * signal. */
void fleet_egress_drop(struct fleet *fleet, const char *link, json_t *evidence);

/* Stop every instance and remove everything they had (cgroups, links,
 * writable layers, routes). */
void fleet_free(struct fleet *fleet);
