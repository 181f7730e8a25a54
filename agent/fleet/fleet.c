/* SPDX-License-Identifier: MIT */
#include "fleet.h"
#include "fleet_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <net/if.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "rotation.h"
#include "sandbox.h"
#include "macro.h"
#include "policy.h"
#include "quarantine.h"
#include "rotator.h"
#include "snapshot.h"
#include "clock.h"

void fleet_audit(struct fleet *fleet, const char *type, json_t *fields, bool sync)
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

/* Route the service's public port to an instance: one transaction. */
void fleet_destroy_instance(struct fleet *fleet, struct instance *instance)
{
	_cleanup_free_ char *error = NULL;

	if (!instance)
		return;
	if (rotation_remove_instance(fleet->rotation, instance_id(instance), &error) < 0)
		fleet_audit(fleet, "instance-route-failed",
			    json_pack("{s:s, s:s}", "instance", instance_id(instance), "reason",
				      error ? error : "cannot remove its envelope"),
			    true);
	instance_destroy(instance);
}

int route_to(struct managed_service *svc, struct instance *instance, struct instance *cut)
{
	struct rotator_addr backends[2] = {0};
	const struct netdev_address *a;
	_cleanup_free_ char *error = NULL;
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
		fleet_audit(svc->fleet, "instance-route-failed",
			    json_pack("{s:s, s:s, s:s}", "service", svc->name, "instance",
				      instance_id(instance), "reason",
				      error ? error : strerror(-r)),
			    true);
	return r;
}

static void unroute(struct managed_service *svc)
{
	_cleanup_free_ char *error = NULL;

	if (!svc->routed)
		return;
	svc->routed = false;
	if (rotation_clear_instance_backend(svc->fleet->rotation, svc->name, &error) < 0)
		fleet_audit(svc->fleet, "instance-route-failed",
			    json_pack("{s:s, s:s}", "service", svc->name, "reason",
				      error ? error : "cannot remove the route"),
			    true);
}

struct managed_service *service_of(struct fleet *fleet, const struct instance *instance)
{
	for (size_t i = 0; i < fleet->n_services; i++) {
		struct managed_service *svc = fleet->services[i];
		/* NULL: an old service being replaced by fleet_apply_policies(),
		 * which can start an instance (whose hooks run) meanwhile */
		if (svc && (svc->current == instance || svc->next == instance ||
			    standby_index(svc, instance) >= 0))
			return svc;
	}
	return NULL;
}

void stop_instance(struct managed_service *svc, struct instance *instance, const char *reason)
{
	if (!instance)
		return;
	fleet_audit(svc->fleet, "instance-stop",
		    json_pack("{s:s, s:s, s:s}", "service", svc->name, "instance",
			      instance_id(instance), "reason", reason),
		    false);
	if (svc->current == instance) {
		unroute(svc);
		svc->current = NULL;
	}
	if (svc->next == instance)
		svc->next = NULL;
	standby_forget(svc, instance);
	fleet_destroy_instance(svc->fleet, instance);
}

static void on_instance_healthy(struct instance *instance, void *userdata)
{
	struct fleet *fleet = userdata;
	struct managed_service *svc = service_of(fleet, instance);

	if (!svc)
		return;
	fleet_audit(
	    fleet, "instance-healthy",
	    json_pack("{s:s, s:s}", "service", svc->name, "instance", instance_id(instance)),
	    false);
	if (instance == svc->next) {
		response_replacement_healthy(svc);
		return;
	}
	if (standby_index(svc, instance) >= 0) {
		standby_healthy(svc);
		return;
	}
	if (instance == svc->current && !svc->routed) {
		if (route_to(svc, instance, NULL) == 0) {
			svc->routed = true;
			response_arm_lifetime(svc);
			/* Standbys only once the service serves: they never slow
			 * the first instance down. */
			standby_schedule(svc, 0);
		} else {
			stop_instance(svc, instance, "could not be routed");
		}
	}
}

static void on_instance_unhealthy(struct instance *instance, const char *reason, void *userdata)
{
	struct fleet *fleet = userdata;
	struct managed_service *svc = service_of(fleet, instance);

	if (!svc)
		return;
	fleet_audit(fleet, "instance-unhealthy",
		    json_pack("{s:s, s:s, s:s}", "service", svc->name, "instance",
			      instance_id(instance), "reason", reason),
		    true);
	/* An unhealthy standby is no use: it is stopped and another one
	 * started on the next loop turn (not here: its callback is on the
	 * stack). */
	if (standby_index(svc, instance) >= 0) {
		standby_schedule(svc, 0);
		return;
	}
	/* Replaced and killed unless OnUnhealthy=quarantine: failing health is
	 * no sign of compromise by itself. */
	if (instance == svc->current)
		response_replace(svc, instance, "health", json_pack("{s:s}", "health", reason),
				 svc->policy->on_unhealthy == COMPROMISE_QUARANTINE
				     ? DISPOSE_QUARANTINE
				     : DISPOSE_KILL,
				 0, 0);
}

static enum disposal disposal_for(const struct policy *p, const char *kind)
{
	if (streq(kind, "seccomp-violation"))
		return p->on_syscall_violation == SYSCALL_VIOLATION_KILL ? DISPOSE_KILL
									 : DISPOSE_QUARANTINE;
	return p->on_compromise == COMPROMISE_KILL ? DISPOSE_KILL : DISPOSE_QUARANTINE;
}

static void on_instance_signal(struct instance *instance, const char *kind, json_t *evidence,
			       void *userdata)
{
	struct fleet *fleet = userdata;
	struct managed_service *svc = service_of(fleet, instance);
	uint64_t detected_usec = now(CLOCK_MONOTONIC);

	if (!svc) {
		json_decref(evidence);
		return;
	}
	/* OnSyscallViolation=errno: the call failed with EPERM; record only. */
	if (streq(kind, "seccomp-violation") &&
	    svc->policy->on_syscall_violation == SYSCALL_VIOLATION_ERRNO) {
		fleet_audit(fleet, kind,
			    json_pack("{s:s, s:s, s:o}", "service", svc->name, "instance",
				      instance_id(instance), "evidence", evidence),
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
	response_replace(svc, instance, kind, evidence, disposal_for(svc->policy, kind),
			 detected_usec, RESPONSE_COMPROMISED | RESPONSE_RECORD_SIGNAL);
}

/* The signals after the first of their kind, one record an interval. */
static void on_instance_signals_counted(const char *service, const char *instance, const char *kind,
					uint64_t count, json_t *first_evidence,
					uint64_t interval_usec, void *userdata)
{
	fleet_audit(userdata, "signals-counted",
		    json_pack("{s:s, s:s, s:s, s:I, s:I, s:O?}", "service", service, "instance",
			      instance, "kind", kind, "count", (json_int_t)count, "interval_usec",
			      (json_int_t)interval_usec, "first_evidence", first_evidence),
		    false);
}

void fleet_egress_drop(struct fleet *fleet, const char *link, json_t *evidence)
{
	for (size_t i = 0; link && i < fleet->n_services; i++) {
		struct managed_service *svc = fleet->services[i];

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
	struct managed_service *svc = service_of(fleet, instance);
	bool sigsys = (info->si_code == CLD_KILLED || info->si_code == CLD_DUMPED) &&
		      info->si_status == SIGSYS;
	bool quick = now(CLOCK_MONOTONIC) - instance_started_usec(instance) < QUICK_FAILURE_USEC;
	char how[64];

	if (!svc)
		return;
	instance_format_exit(info, how, sizeof(how));
	if (standby_index(svc, instance) >= 0) {
		fleet_audit(fleet, "instance-exit",
			    json_pack("{s:s, s:s, s:s, s:i, s:b, s:s}", "service", svc->name,
				      "instance", instance_id(instance), "status", how, "pid",
				      (int)info->si_pid, "sigsys", sigsys, "role", "standby"),
			    true);
		standby_forget(svc, instance);
		fleet_destroy_instance(fleet, instance);
		standby_exited(svc, quick);
		return;
	}
	fleet_audit(fleet, "instance-exit",
		    json_pack("{s:s, s:s, s:s, s:i, s:b}", "service", svc->name, "instance",
			      instance_id(instance), "status", how, "pid", (int)info->si_pid,
			      "sigsys", sigsys),
		    true);
	/* A SIGSYS death is a seccomp violation too (SystemCallDefault=kill, or
	 * the agent's own unit filter): audited as such; the restart below is
	 * the replacement. */
	if (sigsys)
		fleet_audit(fleet, "seccomp-violation",
			    json_pack("{s:s, s:s, s:{s:s, s:i}}", "service", svc->name, "instance",
				      instance_id(instance), "evidence", "signal", "SIGSYS", "pid",
				      (int)info->si_pid),
			    true);
	svc->quick_failures = quick ? svc->quick_failures + 1 : 0;
	if (svc->current == instance) {
		unroute(svc);
		svc->current = NULL;
		fleet_destroy_instance(fleet, instance);
		if (svc->next) {
			/* The replacement takes over as the one starting. */
			svc->current = svc->next;
			svc->next = NULL;
			svc->replacing = false;
			if (instance_state(svc->current) == INSTANCE_HEALTHY &&
			    route_to(svc, svc->current, NULL) == 0) {
				svc->routed = true;
				response_arm_lifetime(svc);
			}
		} else if (!quick && (svc->current = standby_take(svc))) {
			/* A standby takes over at once (unless instances die
			 * young: then the restart back-off decides). */
			if (route_to(svc, svc->current, NULL) == 0) {
				svc->routed = true;
				response_arm_lifetime(svc);
				standby_schedule(svc, 0);
			} else {
				stop_instance(svc, svc->current, "could not be routed");
				schedule_restart(svc);
			}
		} else {
			schedule_restart(svc);
		}
		return;
	}
	svc->next = NULL;
	fleet_destroy_instance(fleet, instance);
	/* A replacement that died is started again; the old one keeps serving. */
	if (svc->replacing)
		schedule_restart(svc);
}

static int on_restart_timer(sd_event_source *source, uint64_t usec, void *userdata)
{
	start_instance(userdata);
	return 0;
}

void schedule_restart(struct managed_service *svc)
{
	uint64_t delay = 0;

	if (svc->failed[0])
		return;
	if (svc->quick_failures > 0) {
		unsigned shift = svc->quick_failures - 1 < 16 ? svc->quick_failures - 1 : 16;

		delay = BACKOFF_FIRST_USEC << shift;
		if (delay > BACKOFF_MAX_USEC)
			delay = BACKOFF_MAX_USEC;
		fleet_audit(svc->fleet, "instance-backoff",
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
static int pick_addresses(struct managed_service *svc, struct netdev_address *ret, size_t *ret_n)
{
	/* two addresses each: current, next, the standbys, and the previous */
	struct netdev_address avoid[2 * (3 + ELEMENTSOF(svc->standbys))];
	struct instance *live[2 + ELEMENTSOF(svc->standbys)] = {svc->current, svc->next};
	size_t n_avoid = 0, n = 0;
	bool have_v4 = false, have_v6 = false;

	for (size_t k = 0; k < svc->n_standbys; k++)
		live[2 + k] = svc->standbys[k].instance;
	for (struct instance **i = live; i < live + 2 + svc->n_standbys; i++) {
		const struct netdev_address *a;
		size_t k;

		if (!*i)
			continue;
		a = instance_addresses(*i, &k);
		for (size_t j = 0; j < k && n_avoid < ELEMENTSOF(avoid); j++)
			avoid[n_avoid++] = a[j];
	}
	for (size_t j = 0; j < svc->n_previous && n_avoid < ELEMENTSOF(avoid); j++)
		avoid[n_avoid++] = svc->previous[j];

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
static int add_envelope(struct managed_service *svc, const char *id,
			const struct instance_spec *spec, struct step_error *ret_error)
{
	struct rotator_addr addresses[2] = {0};
	_cleanup_free_ char *error = NULL;
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
			       error ? error : strerror(-r));
	return r;
}

uint64_t lifetime_deadline(const struct managed_service *svc, const struct instance *instance)
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

int launch_instance(struct managed_service *svc, const char *role, struct instance **ret)
{
	struct fleet *fleet = svc->fleet;
	struct instance_hooks hooks = {
	    .on_healthy = on_instance_healthy,
	    .on_unhealthy = on_instance_unhealthy,
	    .on_exit = on_instance_exit,
	    .on_signal = on_instance_signal,
	    .on_signals_counted = on_instance_signals_counted,
	    .userdata = fleet,
	};
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
		fleet_audit(fleet, "instance-start-failed",
			    json_pack("{s:s, s:s, s:s, s:s, s:s}", "service", svc->name, "instance",
				      id, "step", error.step, "reason", error.detail, "role", role),
			    true);
		return r;
	}
	memcpy(svc->previous, spec.addresses, sizeof(svc->previous));
	svc->n_previous = spec.n_addresses;
	/* A replacement's start is synced with the instance-replaced record
	 * that follows it within milliseconds: its health probes must not wait
	 * for the disk. */
	fleet_audit(fleet, "instance-start",
		    json_pack("{s:s, s:s, s:i, s:o, s:s, s:s}", "service", svc->name, "instance",
			      id, "pid", (int)instance_pid(instance), "addresses",
			      addresses_json(spec.addresses, spec.n_addresses), "link", ifname,
			      "role", role),
		    !svc->replacing);
	*ret = instance;
	return 0;
}

void start_instance(struct managed_service *svc)
{
	struct instance *instance = NULL;

	if (svc->failed[0] || (svc->current && svc->next))
		return;
	if (launch_instance(svc, svc->current ? "replacement" : "instance", &instance) < 0) {
		svc->quick_failures++;
		if (!svc->current)
			schedule_restart(svc);
		return;
	}
	if (svc->current)
		svc->next = instance;
	else
		svc->current = instance;
	/* A service without a health check is healthy at once (the hook ran
	 * before svc->current was set): route it now. */
	if (instance_state(instance) == INSTANCE_HEALTHY)
		on_instance_healthy(instance, svc->fleet);
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
		       gid_t *ret_gid, char *error, size_t error_size)
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
				snprintf(error, error_size,
					 "User=%s: not in the snapshot's /etc/passwd", p->user);
				return -ESRCH;
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
				snprintf(error, error_size,
					 "Group=%s: not in the snapshot's /etc/group", p->group);
				return -ESRCH;
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

/* Verify the snapshot and compile the filter for one load of the policy. */
static void prepare(struct managed_service *svc)
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
		snprintf(svc->failed, sizeof(svc->failed),
			 "no SnapshotKey=: an unsigned snapshot is never launched");
		goto refused;
	}
	if (p->address_pool_count == 0) {
		snprintf(svc->failed, sizeof(svc->failed), "no AddressPool= for its instances");
		goto refused;
	}
	r = snapshot_verify(p->snapshot, p->snapshot_key, &options, &svc->snapshot, &error);
	if (r < 0) {
		snprintf(svc->failed, sizeof(svc->failed), "snapshot %s: %.120s: %.120s",
			 p->snapshot, error.path, error.reason);
		goto refused;
	}
	/* The bytes that run are the bytes that were hashed: one sealed copy
	 * of the binary per policy load, shared by every launch. */
	r = snapshot_open_exec(svc->snapshot, p->exec_argv.items[0], &svc->exec_fd, &error);
	if (r < 0) {
		snprintf(svc->failed, sizeof(svc->failed), "Exec=%s: %.120s: %.120s",
			 p->exec_argv.items[0], error.path, error.reason);
		goto refused;
	}
	fleet_audit(svc->fleet, "snapshot-verified",
		    json_pack("{s:s, s:s}", "service", svc->name, "snapshot", p->snapshot), false);
	r = seccomp_program_compile_violations(
	    p->system_calls.items, p->system_calls.count, p->violation_system_calls.items,
	    p->violation_system_calls.count,
	    p->syscall_default == SYSCALL_DEFAULT_KILL ? SECCOMP_DEFAULT_KILL
						       : SECCOMP_DEFAULT_ERRNO,
	    &svc->seccomp, &bad_item);
	if (r < 0) {
		snprintf(svc->failed, sizeof(svc->failed),
			 "SystemCalls=/ViolationSystemCalls=: cannot compile%s%s: %s",
			 bad_item ? " " : "", bad_item ? bad_item : "", strerror(-r));
		goto refused;
	}
	if (resolve_ids(p, svc->snapshot, &svc->uid, &svc->gid, svc->failed, sizeof(svc->failed)) <
	    0)
		goto refused;
	/* the instance's user namespace maps ids 0..65535 only (sandbox.h) */
	if (svc->uid >= UID_RANGE_SIZE || svc->gid >= UID_RANGE_SIZE) {
		snprintf(svc->failed, sizeof(svc->failed),
			 "User=/Group=: uid %u, gid %u: an instance has ids 0..%u only",
			 (unsigned)svc->uid, (unsigned)svc->gid, UID_RANGE_SIZE - 1);
		goto refused;
	}
	return;
refused:
	fleet_audit(svc->fleet, "service-failed",
		    json_pack("{s:s, s:s}", "service", svc->name, "reason", svc->failed), true);
}

static void service_free(struct managed_service *svc)
{
	if (!svc)
		return;
	standby_stop_all(svc, "service stopped");
	stop_instance(svc, svc->next, "service stopped");
	stop_instance(svc, svc->current, "service stopped");
	response_service_done(svc);
	sd_event_source_disable_unref(svc->restart_timer);
	sd_event_source_disable_unref(svc->standby_timer);
	snapshot_free(svc->snapshot);
	if (svc->exec_fd >= 0)
		close(svc->exec_fd);
	seccomp_program_free(svc->seccomp);
	free(svc->policy_text);
	free(svc);
}

static char *policy_text(const struct policy *p)
{
	json_t *o = policy_to_json(p);
	char *text = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;

	json_decref(o);
	return text;
}

static struct managed_service *find_service(struct fleet *fleet, const char *name)
{
	for (size_t i = 0; i < fleet->n_services; i++)
		if (fleet->services[i] && streq(fleet->services[i]->name, name))
			return fleet->services[i];
	return NULL;
}

void fleet_apply_policies(struct fleet *fleet, const struct policy_set *set)
{
	struct managed_service **next = calloc(set->count + 1, sizeof(*next));
	size_t n = 0;

	if (!next)
		return;
	for (size_t i = 0; i < set->count; i++) {
		const struct policy *p = set->policies[i];
		struct managed_service *old, *svc;
		_cleanup_free_ char *text = NULL;

		if (!p->snapshot)
			continue;
		text = policy_text(p);
		svc = calloc(1, sizeof(*svc));
		if (!svc)
			break;
		svc->fleet = fleet;
		svc->exec_fd = -1;
		snprintf(svc->name, sizeof(svc->name), "%s", p->name);
		svc->policy = p;
		svc->policy_text = TAKE_PTR(text);
		prepare(svc);

		old = find_service(fleet, p->name);
		if (old) {
			/* Instances move over; a changed policy gets a replacement. */
			bool changed = !old->policy_text || !svc->policy_text ||
				       !streq(old->policy_text, svc->policy_text);

			svc->current = TAKE_PTR(old->current);
			svc->next = TAKE_PTR(old->next);
			/* Standbys of an unchanged policy wait on; others go (they
			 * run what the old policy said). */
			if (changed || svc->failed[0])
				standby_stop_all(old, "policy changed");
			memcpy(svc->standbys, old->standbys, sizeof(svc->standbys));
			svc->n_standbys = old->n_standbys;
			old->n_standbys = 0;
			svc->routed = old->routed;
			old->routed = false;
			memcpy(svc->previous, old->previous, sizeof(svc->previous));
			svc->n_previous = old->n_previous;
			for (size_t j = 0; j < fleet->n_services; j++)
				if (fleet->services[j] == old)
					fleet->services[j] = NULL;
			service_free(old);
			next[n++] = svc;
			if (svc->failed[0]) {
				stop_instance(svc, svc->next, "the service failed verification");
				stop_instance(svc, svc->current, "the service failed verification");
			} else if (changed) {
				stop_instance(svc, svc->next, "policy changed");
				start_instance(svc);
			} else if (!svc->current) {
				start_instance(svc);
			} else {
				standby_schedule(svc, 0);
			}
			continue;
		}
		next[n++] = svc;
		start_instance(svc);
	}
	/* Services that are gone. */
	for (size_t j = 0; j < fleet->n_services; j++)
		service_free(fleet->services[j]);
	free(fleet->services);
	fleet->services = next;
	fleet->n_services = n;
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
		const struct managed_service *svc = fleet->services[i];

		if (svc->failed[0])
			json_array_append_new(list,
					      json_pack("{s:s, s:s, s:s}", "service", svc->name,
							"state", "failed", "health", svc->failed));
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
	for (size_t i = 0; list && i < fleet->n_quarantined; i++)
		json_array_append_new(list, response_quarantined_json(&fleet->quarantined[i]));
	return list;
}

json_t *fleet_services_json(const struct fleet *fleet)
{
	json_t *list = json_array();

	for (size_t i = 0; list && i < fleet->n_services; i++) {
		const struct managed_service *svc = fleet->services[i];

		json_array_append_new(
		    list, json_pack("{s:s, s:s?, s:b, s:b, s:o}", "service", svc->name, "serving",
				    svc->current ? instance_id(svc->current) : NULL, "routed",
				    svc->routed, "replacing", svc->replacing, "standbys",
				    standby_json(svc)));
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

int fleet_new(sd_event *event, struct rotation *rotation, struct forwarding *forwarding,
	      const char *cgroup_name, const char *state_dir, const struct fleet_hooks *hooks,
	      struct fleet **ret_fleet, char **ret_error)
{
	struct fleet *fleet = calloc(1, sizeof(*fleet));
	int r;

	if (!fleet)
		return -ENOMEM;
	fleet->state_dir = strdup(state_dir);
	if (!fleet->state_dir) {
		free(fleet);
		return -ENOMEM;
	}
	fleet->event = sd_event_ref(event);
	fleet->rotation = rotation;
	fleet->hooks = *hooks;
	r = instance_ids_open(state_dir, &fleet->ids);
	if (r < 0) {
		if (asprintf(ret_error, "instance numbers (%s/instance-ids): %s", state_dir,
			     strerror(-r)) < 0)
			*ret_error = NULL;
		sd_event_unref(fleet->event);
		free(fleet->state_dir);
		free(fleet);
		return r;
	}
	r = cgroup_root_open(cgroup_name, &fleet->cgroups);
	if (r < 0) {
		if (asprintf(ret_error, "cgroup %s: %s", cgroup_name, strerror(-r)) < 0)
			*ret_error = NULL;
		instance_ids_free(fleet->ids);
		sd_event_unref(fleet->event);
		free(fleet->state_dir);
		free(fleet);
		return r;
	}
	/* Evidence a killed agent was still writing is incomplete: not kept. */
	{
		json_t *removed = NULL;

		if (quarantine_remove_interrupted(state_dir, &removed) == 0 &&
		    json_array_size(removed) > 0)
			fleet_audit(fleet, "quarantine-interrupted",
				    json_pack("{s:O, s:s}", "instances", removed, "outcome",
					      "incomplete evidence removed"),
				    true);
		json_decref(removed);
	}
	/* A killed agent leaves its instances running: end them and their links. */
	r = cgroup_root_purge(fleet->cgroups, 5 * USEC_PER_SEC);
	if (r > 0)
		fleet_audit(fleet, "instances-purged",
			    json_pack("{s:i, s:s}", "count", r, "reason",
				      "left running by a previous agent"),
			    true);
	purge_links();
	/* After the purge: what still runs in a range keeps it (sandbox.h). */
	r = uid_ranges_open("/", UID_RANGE_REGION_FIRST, UID_RANGE_REGION_END, &fleet->uid_ranges);
	if (r < 0) {
		if (asprintf(ret_error, "host id ranges: %s", strerror(-r)) < 0)
			*ret_error = NULL;
		instance_ids_free(fleet->ids);
		cgroup_root_free(fleet->cgroups);
		sd_event_unref(fleet->event);
		free(fleet->state_dir);
		free(fleet);
		return r;
	}

	/* Forwarding carries DNATed traffic to the instances' links (and only
	 * there: rotation.h). */
	r = forwarding_enable(forwarding);
	if (r < 0) {
		if (asprintf(ret_error, "IP forwarding: %s", strerror(-r)) < 0)
			*ret_error = NULL;
		uid_ranges_free(fleet->uid_ranges);
		instance_ids_free(fleet->ids);
		cgroup_root_free(fleet->cgroups);
		sd_event_unref(fleet->event);
		free(fleet->state_dir);
		free(fleet);
		return r;
	}
	*ret_fleet = fleet;
	return 0;
}

void fleet_free(struct fleet *fleet)
{
	if (!fleet)
		return;
	for (size_t i = 0; i < fleet->n_services; i++)
		service_free(fleet->services[i]);
	free(fleet->services);
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
