/* SPDX-License-Identifier: MIT */
/* One managed service: its verified snapshot, sealed binary and compiled
 * filter (prepared once per policy load), and the operations on its
 * instances that every layer above uses: start one (an id, fresh addresses,
 * its nftables envelope, the instance itself), route the public port to it,
 * stop it, restart with back-off. The layers above decide when: response.c
 * (replacement, containment), standby.c (StandbyInstances=), fleet.c (the
 * set of services, the instances' hooks). Nothing here calls them: an
 * instance's events reach fleet.c through the hooks it set in struct
 * fleet. */
#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <net/if.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "fleet_internal.h"
#include "clock.h"
#include "macro.h"
#include "policy.h"
#include "rotation.h"
#include "rotator.h"
#include "sandbox.h"
#include "snapshot.h"
#include "step_error.h"

void service_audit(struct fleet *fleet, const char *type, json_t *fields, bool sync)
{
	if (fleet->hooks.audit)
		(void)fleet->hooks.audit(type, fields, sync, fleet->hooks.userdata);
	else
		json_decref(fields);
}

static json_t *addresses_json(const struct netdev_address *a, size_t n)
{
	json_t *list = json_array();

	for (size_t i = 0; list && i < n; i++) {
		char text[INET6_ADDRSTRLEN] = "?";

		inet_ntop(a[i].family, &a[i].v4, text, sizeof(text));
		json_array_append_new(list, json_string(text));
	}
	return list;
}

void service_destroy_instance(struct fleet *fleet, struct instance *instance)
{
	struct step_error error = {0};
	char reason[STEP_ERROR_FORMAT_MAX];

	if (!instance)
		return;
	/* A stop, too, resets its clients rather than leaving them hanging
	 * (nothing when it ran already). */
	(void)instance_reset_connections(instance);
	if (rotation_remove_instance(fleet->rotation, instance_id(instance), &error) < 0)
		service_audit(fleet, "instance-route-failed",
			      json_pack("{s:s, s:s}", "instance", instance_id(instance), "reason",
					step_error_failed(&error)
					    ? step_error_format(&error, reason, sizeof(reason))
					    : "cannot remove its envelope"),
			      true);
	instance_destroy(instance);
}

/* Route the service's public port to an instance: one transaction. */
int service_route(struct service *svc, struct instance *instance, struct instance *cut)
{
	struct rotator_addr backends[2] = {0};
	const struct netdev_address *a;
	struct step_error error = {0};
	char reason[STEP_ERROR_FORMAT_MAX];
	size_t n;
	int r;

	a = instance_addresses(instance, &n);
	for (size_t i = 0; i < n; i++) {
		backends[i].family = a[i].family;
		memcpy(&backends[i].in6, &a[i].v6,
		       a[i].family == AF_INET ? sizeof(struct in_addr) : sizeof(struct in6_addr));
	}
	r = rotation_set_instance_backend(svc->fleet->rotation, svc->name, backends, n,
					  svc->policy->listen_port, cut ? instance_id(cut) : NULL,
					  &error);
	if (r < 0)
		service_audit(svc->fleet, "instance-route-failed",
			      json_pack("{s:s, s:s, s:s}", "service", svc->name, "instance",
					instance_id(instance), "reason",
					step_error_reason(&error, r, reason, sizeof(reason))),
			      true);
	return r;
}

void service_unroute(struct service *svc)
{
	struct step_error error = {0};
	char reason[STEP_ERROR_FORMAT_MAX];

	if (!svc->routed)
		return;
	svc->routed = false;
	if (rotation_clear_instance_backend(svc->fleet->rotation, svc->name, &error) < 0)
		service_audit(svc->fleet, "instance-route-failed",
			      json_pack("{s:s, s:s}", "service", svc->name, "reason",
					step_error_failed(&error)
					    ? step_error_format(&error, reason, sizeof(reason))
					    : "cannot remove the route"),
			      true);
}

void service_stop_instance(struct service *svc, struct instance *instance, const char *reason)
{
	if (!instance)
		return;
	service_audit(svc->fleet, "instance-stop",
		      json_pack("{s:s, s:s, s:s}", "service", svc->name, "instance",
				instance_id(instance), "reason", reason),
		      false);
	if (svc->current == instance) {
		service_unroute(svc);
		svc->current = NULL;
	}
	if (svc->next == instance)
		svc->next = NULL;
	service_forget_standby(svc, instance);
	service_destroy_instance(svc->fleet, instance);
}

ssize_t service_standby_index(const struct service *svc, const struct instance *instance)
{
	for (size_t i = 0; instance && i < svc->n_standbys; i++)
		if (svc->standbys[i].instance == instance)
			return (ssize_t)i;
	return -1;
}

void service_forget_standby(struct service *svc, struct instance *instance)
{
	ssize_t i = service_standby_index(svc, instance);

	if (i < 0)
		return;
	/* Keep the order: the oldest standby stays first. */
	memmove(&svc->standbys[i], &svc->standbys[i + 1],
		(svc->n_standbys - (size_t)i - 1) * sizeof(svc->standbys[0]));
	svc->n_standbys--;
}

static int on_restart_timer(sd_event_source *source, uint64_t usec, void *userdata)
{
	service_start_instance(userdata);
	return 0;
}

void service_schedule_restart(struct service *svc)
{
	uint64_t delay = 0;

	if (step_error_failed(&svc->failed))
		return;
	if (svc->quick_failures > 0) {
		unsigned shift = svc->quick_failures - 1 < 16 ? svc->quick_failures - 1 : 16;

		delay = SERVICE_BACKOFF_FIRST_USEC << shift;
		if (delay > SERVICE_BACKOFF_MAX_USEC)
			delay = SERVICE_BACKOFF_MAX_USEC;
		service_audit(svc->fleet, "instance-backoff",
			      json_pack("{s:s, s:i, s:I}", "service", svc->name, "quick_failures",
					(int)svc->quick_failures, "delay_usec", (json_int_t)delay),
			      false);
	}
	if (!svc->restart_timer) {
		if (sd_event_add_time_relative(svc->fleet->event, &svc->restart_timer,
					       CLOCK_MONOTONIC, delay, 0, on_restart_timer,
					       svc) < 0)
			return;
	} else {
		(void)sd_event_source_set_time_relative(svc->restart_timer, delay);
	}
	(void)sd_event_source_set_enabled(svc->restart_timer, SD_EVENT_ONESHOT);
}

/* A fresh address from each of the service's pools (one IPv4, one IPv6 at
 * most), never one a live instance has or the previous instance had. */
static int pick_addresses(struct service *svc, struct netdev_address *ret, size_t *ret_n)
{
	/* two addresses each: current, next, the standbys, the previous, and
	 * the draining instances (of every service: a reload may move pools) */
	struct instance *live[2 + ELEMENTSOF(svc->standbys)] = {svc->current, svc->next};
	size_t n_avoid = 0, n = 0, max_avoid = 2 * (3 + ELEMENTSOF(svc->standbys));
	_cleanup_free_ struct netdev_address *avoid = NULL;
	bool have_v4 = false, have_v6 = false;

	for (const struct drain *d = svc->fleet->drains; d; d = d->next)
		max_avoid += 2;
	avoid = calloc(max_avoid, sizeof(*avoid));
	if (!avoid)
		return -ENOMEM;

	for (size_t k = 0; k < svc->n_standbys; k++)
		live[2 + k] = svc->standbys[k].instance;
	for (struct instance **i = live; i < live + 2 + svc->n_standbys; i++) {
		const struct netdev_address *a;
		size_t k;

		if (!*i)
			continue;
		a = instance_addresses(*i, &k);
		for (size_t j = 0; j < k && n_avoid < max_avoid; j++)
			avoid[n_avoid++] = a[j];
	}
	for (size_t j = 0; j < svc->n_previous && n_avoid < max_avoid; j++)
		avoid[n_avoid++] = svc->previous[j];
	for (const struct drain *d = svc->fleet->drains; d; d = d->next) {
		size_t k;
		const struct netdev_address *a = instance_addresses(d->instance, &k);

		for (size_t j = 0; j < k && n_avoid < max_avoid; j++)
			avoid[n_avoid++] = a[j];
	}

	for (size_t i = 0; i < svc->policy->address_pool_count && n < 2; i++) {
		const struct cidr *pool = &svc->policy->address_pools[i];
		int r;

		if ((pool->family == AF_INET && have_v4) || (pool->family == AF_INET6 && have_v6))
			continue;
		r = address_pool_pick(pool, avoid, n_avoid, &ret[n]);
		if (r < 0)
			return r;
		have_v4 |= pool->family == AF_INET;
		have_v6 |= pool->family == AF_INET6;
		n++;
	}
	if (n == 0)
		return -EADDRNOTAVAIL;
	*ret_n = n;
	return 0;
}

/* The instance's firewall in inet mtd, before anything of it runs. */
static int add_envelope(struct service *svc, const char *id, const struct instance_spec *spec,
			struct step_error *ret_error)
{
	struct rotator_addr addresses[2] = {0};
	struct step_error error = {0};
	char reason[STEP_ERROR_FORMAT_MAX];
	int r;

	for (size_t i = 0; i < spec->n_addresses; i++) {
		addresses[i].family = spec->addresses[i].family;
		memcpy(&addresses[i].in6, &spec->addresses[i].v6,
		       spec->addresses[i].family == AF_INET ? sizeof(struct in_addr)
							    : sizeof(struct in6_addr));
	}
	r = rotation_add_instance(
	    svc->fleet->rotation, id, addresses, spec->n_addresses,
	    svc->policy->listen_proto == POLICY_PROTO_UDP ? IPPROTO_UDP : IPPROTO_TCP,
	    svc->policy->listen_port, svc->policy->egress, svc->policy->egress_count, &error);
	if (r < 0)
		step_error_set(ret_error, "nftables envelope", r, "%s",
			       step_error_reason(&error, r, reason, sizeof(reason)));
	return r;
}

uint64_t service_lifetime_deadline(const struct service *svc, const struct instance *instance)
{
	uint64_t lifetime = svc->policy->max_lifetime_usec, jitter = 0;

	if (!lifetime)
		return 0;
	/* Jitter shortens each lifetime by a random amount, so instances of
	 * many services do not all turn over at once and an attacker cannot
	 * predict the moment. */
	if (svc->policy->max_lifetime_jitter_usec &&
	    getrandom(&jitter, sizeof(jitter), 0) == sizeof(jitter))
		jitter %= svc->policy->max_lifetime_jitter_usec;
	return instance_started_usec(instance) + lifetime - jitter;
}

int service_launch_instance(struct service *svc, const char *role, struct instance **ret)
{
	struct fleet *fleet = svc->fleet;
	/* fleet.c's answers to the instance's events */
	struct instance_hooks hooks = fleet->instance_hooks;
	struct instance_spec spec = {
	    .policy = svc->policy,
	    .snapshot = svc->snapshot,
	    .exec_fd = svc->exec_fd,
	    .seccomp = svc->seccomp,
	    .cgroups = fleet->cgroups,
	    .writable = svc->policy->writable.items,
	    .n_writable = svc->policy->writable.count,
	    .uid = svc->uid,
	    .gid = svc->gid,
	    .uid_ranges = fleet->uid_ranges,
	};
	char id[INSTANCE_ID_MAX], ifname[IFNAMSIZ];
	struct step_error error = {0};
	struct instance *instance = NULL;
	uint64_t number = 0;
	int r;

	r = instance_ids_next(fleet->ids, &number);
	snprintf(id, sizeof(id), "%s-%llu", svc->name, (unsigned long long)number);
	snprintf(ifname, sizeof(ifname), "mtdi%llu", (unsigned long long)number);
	spec.id = id;
	spec.host_ifname = ifname;

	if (r < 0)
		step_error_set(&error, "instance id", r,
			       "cannot reserve numbers in %s/instance-ids: %s", fleet->state_dir,
			       strerror(-r));
	else if ((r = pick_addresses(svc, spec.addresses, &spec.n_addresses)) < 0)
		step_error_set(&error, "address", r, "AddressPool=: %s", strerror(-r));
	else
		r = add_envelope(svc, id, &spec, &error);
	if (r >= 0) {
		r = instance_start(fleet->event, &spec, &hooks, &instance, &error);
		if (r < 0)
			(void)rotation_remove_instance(fleet->rotation, id, NULL);
	}
	if (r < 0) {
		/* Fail closed: nothing runs; audited, then retried with back-off. */
		service_audit(fleet, "instance-start-failed",
			      json_pack("{s:s, s:s, s:s, s:s, s:s}", "service", svc->name,
					"instance", id, "step", error.step, "reason", error.detail,
					"role", role),
			      true);
		return r;
	}
	memcpy(svc->previous, spec.addresses, sizeof(svc->previous));
	svc->n_previous = spec.n_addresses;
	/* A replacement's start is synced with the instance-replaced record
	 * that follows it within milliseconds: its health probes must not wait
	 * for the disk. */
	service_audit(fleet, "instance-start",
		      json_pack("{s:s, s:s, s:i, s:o, s:s, s:s}", "service", svc->name, "instance",
				id, "pid", (int)instance_pid(instance), "addresses",
				addresses_json(spec.addresses, spec.n_addresses), "link", ifname,
				"role", role),
		      !svc->replacing);
	*ret = instance;
	return 0;
}

void service_start_instance(struct service *svc)
{
	struct instance *instance = NULL;

	if (step_error_failed(&svc->failed) || (svc->current && svc->next))
		return;
	if (service_launch_instance(svc, svc->current ? "replacement" : "instance", &instance) <
	    0) {
		svc->quick_failures++;
		if (!svc->current)
			service_schedule_restart(svc);
		return;
	}
	if (svc->current)
		svc->next = instance;
	else
		svc->current = instance;
	/* A service without a health check is healthy at once (the hook ran
	 * before svc->current was set): fleet.c routes it now. */
	if (instance_state(instance) == INSTANCE_HEALTHY && svc->fleet->instance_hooks.on_healthy)
		svc->fleet->instance_hooks.on_healthy(instance,
						      svc->fleet->instance_hooks.userdata);
}

/* The snapshot's own passwd or group as verified: resolved through the
 * signed manifest, read beneath the verified root fd, its bytes hashed into a
 * sealed memfd (never a path on the host, which could be swapped since). NULL
 * when the snapshot has none (or it changed: nothing is then found). */
static FILE *open_snapshot_file(const struct snapshot *s, const char *path)
{
	int fd = -1;
	FILE *f;

	if (snapshot_open_file(s, path, &fd, NULL) < 0)
		return NULL;
	f = fdopen(fd, "re");
	if (!f)
		close(fd);
	return f;
}

/* User=/Group= by number, or by name in the snapshot's own passwd/group. */
static int resolve_ids(const struct policy *p, const struct snapshot *s, uid_t *ret_uid,
		       gid_t *ret_gid, struct step_error *ret_error)
{
	uid_t uid = 0;
	gid_t gid = 0;
	bool gid_set = false;
	char *end;

	if (p->user) {
		unsigned long v = strtoul(p->user, &end, 10);

		if (*p->user && !*end) {
			uid = (uid_t)v;
		} else {
			_cleanup_fclose_ FILE *f = open_snapshot_file(s, "/etc/passwd");
			struct passwd *pw = NULL;

			while (f && (pw = fgetpwent(f)))
				if (streq(pw->pw_name, p->user))
					break;
			if (!pw) {
				return step_error_set(ret_error, "User=", ESRCH,
						      "User=%s: not in the snapshot's /etc/passwd",
						      p->user);
			}
			uid = pw->pw_uid;
			gid = pw->pw_gid;
			gid_set = true;
		}
	}
	if (p->group) {
		unsigned long v = strtoul(p->group, &end, 10);

		if (*p->group && !*end) {
			gid = (gid_t)v;
		} else {
			_cleanup_fclose_ FILE *f = open_snapshot_file(s, "/etc/group");
			struct group *gr = NULL;

			while (f && (gr = fgetgrent(f)))
				if (streq(gr->gr_name, p->group))
					break;
			if (!gr) {
				return step_error_set(ret_error, "Group=", ESRCH,
						      "Group=%s: not in the snapshot's /etc/group",
						      p->group);
			}
			gid = gr->gr_gid;
		}
	} else if (!gid_set) {
		gid = (gid_t)uid;
	}
	*ret_uid = uid;
	*ret_gid = gid;
	return 0;
}

/* Verify the snapshot and compile the filter for one load of the policy.
 * What fails goes into svc->failed: its step names the check, its detail is
 * the sentence the service-failed record and `mtdctl status` show. */
static void prepare(struct service *svc)
{
	const struct policy *p = svc->policy;
	struct snapshot_options options = {
	    .allow_devices = p->allow_devices,
	    .allow_setuid = p->allow_setuid,
	};
	struct snapshot_error error = {0};
	const char *bad_item = NULL;
	int r;

	if (!p->snapshot_key) {
		step_error_set(&svc->failed, "SnapshotKey=", 0,
			       "no SnapshotKey=: an unsigned snapshot is never launched");
		goto refused;
	}
	if (p->address_pool_count == 0) {
		step_error_set(&svc->failed, "AddressPool=", 0,
			       "no AddressPool= for its instances");
		goto refused;
	}
	r = snapshot_verify(p->snapshot, p->snapshot_key, &options, &svc->snapshot, &error);
	if (r < 0) {
		step_error_set(&svc->failed, "snapshot", r, "snapshot %s: %.120s: %.120s",
			       p->snapshot, error.path, error.reason);
		goto refused;
	}
	/* The bytes that run are the bytes that were hashed: one sealed copy
	 * of the binary per policy load, shared by every launch. */
	r = snapshot_open_exec(svc->snapshot, p->exec_argv.items[0], &svc->exec_fd, &error);
	if (r < 0) {
		step_error_set(&svc->failed, "Exec=", r, "Exec=%s: %.120s: %.120s",
			       p->exec_argv.items[0], error.path, error.reason);
		goto refused;
	}
	service_audit(svc->fleet, "snapshot-verified",
		      json_pack("{s:s, s:s}", "service", svc->name, "snapshot", p->snapshot),
		      false);
	r = seccomp_program_compile_violations(
	    p->system_calls.items, p->system_calls.count, p->violation_system_calls.items,
	    p->violation_system_calls.count,
	    /* --monitor kills nothing: the kernel's SIGSYS neither (fleet.h) */
	    p->syscall_default == SYSCALL_DEFAULT_KILL && !svc->fleet->monitor
		? SECCOMP_DEFAULT_KILL
		: SECCOMP_DEFAULT_ERRNO,
	    &svc->seccomp, &bad_item);
	if (r < 0) {
		step_error_set(&svc->failed, "seccomp filter", r,
			       "SystemCalls=/ViolationSystemCalls=: cannot compile%s%s: %s",
			       bad_item ? " " : "", bad_item ? bad_item : "", strerror(-r));
		goto refused;
	}
	if (resolve_ids(p, svc->snapshot, &svc->uid, &svc->gid, &svc->failed) < 0)
		goto refused;
	/* the instance's user namespace maps ids 0..65535 only (sandbox.h) */
	if (svc->uid >= UID_RANGE_SIZE || svc->gid >= UID_RANGE_SIZE) {
		step_error_set(&svc->failed, "User=/Group=", ERANGE,
			       "User=/Group=: uid %u, gid %u: an instance has ids 0..%u only",
			       (unsigned)svc->uid, (unsigned)svc->gid, UID_RANGE_SIZE - 1);
		goto refused;
	}
	return;
refused:
	service_audit(svc->fleet, "service-failed",
		      json_pack("{s:s, s:s}", "service", svc->name, "reason", svc->failed.detail),
		      true);
}

static char *policy_text(const struct policy *p)
{
	json_t *o = policy_to_json(p);
	char *text = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;

	json_decref(o);
	return text;
}

struct service *service_new(struct fleet *fleet, const struct policy *p)
{
	struct service *svc = calloc(1, sizeof(*svc));

	if (!svc)
		return NULL;
	svc->fleet = fleet;
	svc->exec_fd = -1;
	snprintf(svc->name, sizeof(svc->name), "%s", p->name);
	svc->policy = p;
	svc->policy_text = policy_text(p);
	prepare(svc);
	return svc;
}

void service_free(struct service *svc)
{
	if (!svc)
		return;
	sd_event_source_disable_unref(svc->restart_timer);
	sd_event_source_disable_unref(svc->standby_timer);
	snapshot_free(svc->snapshot);
	if (svc->exec_fd >= 0)
		close(svc->exec_fd);
	seccomp_program_free(svc->seccomp);
	free(svc->policy_text);
	free(svc);
}

struct service *service_find(struct fleet *fleet, const char *name)
{
	for (size_t i = 0; i < fleet->n_services; i++)
		if (fleet->services[i] && streq(fleet->services[i]->name, name))
			return fleet->services[i];
	return NULL;
}
