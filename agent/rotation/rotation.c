/* SPDX-License-Identifier: MIT */
#include "rotation.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/param.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "rotator.h"
#include "rotation_internal.h"
#include "log.h"
#include "macro.h"
#include "clock.h"

/* Boundaries are exact to the millisecond; sd-event's default slack is 250 ms. */
#define TIMER_ACCURACY_USEC 1ull /* the boundary itself: a client computes it */
#define BLOCKED_TRACKED_MAX 4096
/* admissions of one revoked client removed with the reload (its live ones:
 * one per source and epoch it knocked from) */
#define REVOKED_ADMISSIONS_MAX 256
_Static_assert(POLICY_DECOYS_MAX <= SCHEDULE_MAX_DECOYS,
	       "policy check must refuse a Decoys= the schedule cannot hold");
/* After a boundary's switch the next change is loaded this much later (at
 * most a quarter of the way to it): clients connect at the boundary, and the
 * loading (a host-port scan, every schedule, a transaction of thousands of
 * elements for a thousand services) should not take a core from them then. */
#define STAGE_DELAY_USEC 20000ull

struct rotated_service {
	const struct policy *policy; /* borrowed from the set in force */
	uint8_t *key;
	size_t key_len;
	struct schedule_result schedule;
	/* what it will be after the next change of any service (a boundary or
	 * the end of a grace): loaded ahead into the rotator's idle bank */
	struct schedule_result next_schedule;
	uint64_t next_for_usec; /* the change next_schedule was computed for */
	uint64_t decoy_hits;
	/* ClientKeys=: its clients, and their doors and knock ports with
	 * schedule (ports) and with next_schedule (next_ports); NULL: KeyFile= */
	struct service_clients *clients;
	struct client_ports ports, next_ports;
};

/* A source the agent blocked for touching a decoy; the kernel set is the
 * authority, this is what status shows. */
struct blocked_source {
	char address[INET6_ADDRSTRLEN];
	char service[POLICY_NAME_MAX + 1];
	uint64_t until_usec; /* CLOCK_REALTIME */
	unsigned strike;     /* 0: carried over from an adopted table */
};

/* A decoy no service owns any more (the set changed between the hit and its
 * report): the defaults of mtd.policy(5). */
static const struct decoy_rules unowned_decoy_rules = {
    .block_usec = 10 * USEC_PER_MINUTE,
    .factor = 2,
    .max_usec = USEC_PER_DAY,
    .window_usec = USEC_PER_DAY,
};

/* Where a managed service's traffic goes now: its healthy instance. */
struct instance_backend {
	char service[POLICY_NAME_MAX + 1];
	struct rotator_addr addresses[2];
	size_t n_addresses;
	uint16_t port;
};

/* A live instance, enveloped in the table (rotator_instance). */
struct enveloped_instance {
	char name[64];
	struct rotator_addr addresses[2];
	size_t n_addresses;
	uint8_t proto;
	uint16_t port;
	struct rotator_egress *egress;
	size_t n_egress;
	bool cut; /* rotation_cut_instance: nothing passes, until it is removed */
	/* Removed (killed): only its addresses stay, in the dead sets, while
	 * conntrack has open flows to them (on_dead_sweep) */
	bool dead;
	uint64_t dead_usec; /* CLOCK_MONOTONIC when it became dead */
};

#define ROTATION_CHANGES_KEPT 64

/* A timed change of the table (a boundary or a grace end): when it was due,
 * how late the loop ran it, and how late its transactions were committed. */
struct timed_change {
	uint64_t due_usec, fired_late_usec, switch_late_usec, late_usec;
};

struct rotation {
	sd_event *event;
	struct rotation_options options;
	struct rotation_hooks hooks;
	struct rotator *rotator;
	struct rotator_nflog *nflog;
	sd_event_source *nflog_source;
	struct rotator_honeypot *honeypot;
	sd_event_source *honeypot_source;
	sd_event_source *timer;
	sd_event_source *stage_timer; /* loads the change after, once the ports moved */
	sd_event_source *clock_watch;
	int clock_fd;
	struct rotated_service *services;
	size_t n_services;
	struct decoy_blocks *decoy_blocks;
	uint64_t transactions;
	uint64_t switches; /* of them, switches of banks (a change loaded ahead) */
	/* the idle bank holds the services' next_schedule: the last transaction
	 * loaded it and was not a switch */
	bool idle_bank_loaded;
	uint64_t failures;
	uint64_t last_apply_usec; /* CLOCK_REALTIME of the last committed transaction */
	struct blocked_source *blocked;
	size_t n_blocked;
	struct instance_backend *instance_backends;
	size_t n_instance_backends;
	struct enveloped_instance *instances;
	size_t n_instances;
	struct rotator_nflog *egress_log;
	sd_event_source *egress_source;
	struct timed_change changes[ROTATION_CHANGES_KEPT]; /* the last ones (a ring) */
	uint64_t n_changes;
	uint64_t max_late_usec;
	/* how long the transaction moving the ports at a timed change took, and
	 * the one loading the change after into the idle bank (metrics) */
	struct metric_histogram switch_durations, staging_durations;
	sd_event_source *dead_timer; /* sweeps dead instances (rotation_dead_*) */
	/* per-client services: one HMAC for every client's stream; the host's
	 * id in their schedules (HostId=, else its public address, read once) */
	struct schedule_mac *mac;
	char host_id_default[SCHEDULE_MAX_HOST_ID + 1];
	bool host_id_read;
	char host_id[SCHEDULE_MAX_HOST_ID + 1]; /* in force ("" none) */
	/* knocks (knock_listener.c): the listener, and the gated services of
	 * the set in force as the receiver sees them */
	struct knock_listener *knocks;
	/* a reload's revoked clients' admissions, removed in the transaction
	 * that programs the reload (apply_once), then forgotten */
	struct rotator_admission *revoked_admissions;
	size_t n_revoked_admissions;
	struct gated_service *gated;
	size_t n_gated;
};

/* From 100 us (a switch of banks is ~0.3 ms here) to 10 s. */
static const uint64_t duration_bounds_usec[] = {
    100,
    250,
    500,
    USEC_PER_MSEC,
    2500,
    5 * USEC_PER_MSEC,
    10 * USEC_PER_MSEC,
    25 * USEC_PER_MSEC,
    50 * USEC_PER_MSEC,
    100 * USEC_PER_MSEC,
    250 * USEC_PER_MSEC,
    500 * USEC_PER_MSEC,
    USEC_PER_SEC,
    2500 * USEC_PER_MSEC,
    10 * USEC_PER_SEC,
};

static void services_free(struct rotated_service *services, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (services[i].key) {
			explicit_bzero(services[i].key, services[i].key_len);
			free(services[i].key);
		}
		rotation_clients_free(services[i].clients);
		rotation_client_ports_free(&services[i].ports);
		rotation_client_ports_free(&services[i].next_ports);
	}
	free(services);
}

/* Every service with public ports is scheduled; it is programmed once it has
 * somewhere to send traffic: a host service always (Backend=), a managed one
 * once an instance is healthy (rotation_set_instance_backend). */
static bool policy_rotates(const struct policy *p)
{
	return p->has_public_ports;
}

static const struct instance_backend *find_instance_backend(const struct rotation *rotation,
							    const char *service)
{
	for (size_t i = 0; i < rotation->n_instance_backends; i++)
		if (streq(rotation->instance_backends[i].service, service))
			return &rotation->instance_backends[i];
	return NULL;
}

struct exclusion {
	const struct host_ports *bound;
	enum policy_proto proto;
};

static bool exclude_port(uint16_t port, void *userdata)
{
	const struct exclusion *e = userdata;

	return host_ports_is_bound(e->bound, e->proto, port);
}

static int compute_schedule(struct rotated_service *s, const struct host_ports *bound,
			    uint64_t now_usec, struct schedule_result *result)
{
	if (s->clients) {
		struct exclusion x = {
		    .bound = bound,
		    .proto =
			s->policy->has_listen_port ? s->policy->listen_proto : POLICY_PROTO_TCP,
		};

		return rotation_clients_compute(
		    s->clients, s->policy, now_usec, exclude_port, &x,
		    result == &s->next_schedule ? &s->next_ports : &s->ports, result);
	}
	const struct policy *p = s->policy;
	struct exclusion exclusion = {
	    .bound = bound,
	    .proto = p->has_listen_port ? p->listen_proto : POLICY_PROTO_TCP,
	};
	struct schedule_params params = {
	    .key = s->key,
	    .key_len = s->key_len,
	    .service = p->name,
	    .first = p->public_ports.first,
	    .last = p->public_ports.last,
	    .interval_sec = p->interval_usec / USEC_PER_SEC,
	    /* Grace is decided here, to the microsecond (Grace=500ms). */
	    .grace_sec = 0,
	    .n_decoys = p->decoys,
	    .exclude = exclude_port,
	    .userdata = &exclusion,
	};
	int r;

	r = schedule_compute(&params, now_usec, result);
	if (r < 0)
		return r;
	result->grace_port = 0;
	if (result->prev_port && result->prev_port != result->port &&
	    now_usec - result->boundary_usec < p->grace_usec)
		result->grace_port = result->prev_port;
	return 0;
}

static uint64_t next_change_usec(const struct rotated_service *services, size_t n);

/* Every service's schedule after the next change of any of them (by the
 * schedules in force); ports bound on the host are avoided. */
static int compute_next_with(struct rotated_service *services, size_t n,
			     const struct host_ports *bound)
{
	uint64_t next = next_change_usec(services, n);
	int r = 0;

	for (size_t i = 0; r >= 0 && next != UINT64_MAX && i < n; i++) {
		r = compute_schedule(&services[i], bound, next, &services[i].next_schedule);
		services[i].next_for_usec = r < 0 ? 0 : next;
	}
	return r < 0 ? r : 0;
}

static int compute_next(struct rotated_service *services, size_t n)
{
	struct host_ports *bound = NULL;
	int r;

	r = host_ports_scan(&bound);
	if (r < 0)
		return r;
	r = compute_next_with(services, n, bound);
	host_ports_free(bound);
	return r;
}

/* Every service's schedule now, and after the next change of any of them. */
static int compute_all(struct rotated_service *services, size_t n, uint64_t now_usec)
{
	struct host_ports *bound = NULL;
	int r;

	r = host_ports_scan(&bound);
	if (r < 0)
		return r;
	for (size_t i = 0; r >= 0 && i < n; i++)
		r = compute_schedule(&services[i], bound, now_usec, &services[i].schedule);
	if (r >= 0)
		r = compute_next_with(services, n, bound);
	host_ports_free(bound);
	return r < 0 ? r : 0;
}

static void backend_of(const struct policy *p, struct rotator_addr *ret_addr)
{
	memset(ret_addr, 0, sizeof(*ret_addr));
	ret_addr->family = p->backend.family;
	if (p->backend.family == AF_INET)
		ret_addr->in = p->backend.addr.v4;
	else
		ret_addr->in6 = p->backend.addr.v6;
}

static uint8_t proto_of(const struct policy *p)
{
	return p->has_listen_port && p->listen_proto == POLICY_PROTO_UDP ? IPPROTO_UDP
									 : IPPROTO_TCP;
}

static void fill_service(struct rotator_service *rs, const struct rotated_service *s,
			 const struct schedule_result *schedule)
{
	const struct policy *p = s->policy;

	rs->name = p->name;
	rs->proto = proto_of(p);
	rs->port = schedule->port;
	rs->grace_port = schedule->grace_port;
	rs->decoys = schedule->decoys;
	rs->n_decoys = schedule->n_decoys;
	rs->local_access = p->local_access;
	if (s->clients) {
		const struct client_ports *cp =
		    schedule == &s->next_schedule ? &s->next_ports : &s->ports;

		rs->client_ports = cp->doors;
		rs->n_client_ports = cp->n_doors;
		rs->knock_ports = cp->knocks;
		rs->n_knock_ports = cp->n_knocks;
		rs->gated = p->client_auth == POLICY_CLIENT_AUTH_KNOCK;
	}
}

static int program_cut(struct rotation *rotation, struct rotated_service *services, size_t n,
		       const struct rotator_addr *unblock, size_t n_unblock, const char *cut,
		       struct step_error *ret_error);

static int program(struct rotation *rotation, struct rotated_service *services, size_t n,
		   const struct rotator_addr *unblock, size_t n_unblock,
		   struct step_error *ret_error)
{
	return program_cut(rotation, services, n, unblock, n_unblock, NULL, ret_error);
}

/* The rotator's services (one entry per backend address) as they are now,
 * or after the next change; returns how many were written to ret. */
static size_t plan_services_fill(const struct rotation *rotation,
				 const struct rotated_service *services, size_t n, bool next,
				 struct rotator_service *ret)
{
	size_t count = 0;

	for (size_t i = 0; i < n; i++) {
		const struct policy *p = services[i].policy;
		const struct schedule_result *schedule =
		    next ? &services[i].next_schedule : &services[i].schedule;
		const struct instance_backend *b;

		if (p->has_backend) {
			struct rotator_service *rs = &ret[count++];

			fill_service(rs, &services[i], schedule);
			backend_of(p, &rs->backend);
			rs->backend_port = p->backend.port;
			continue;
		}
		b = find_instance_backend(rotation, p->name);
		for (size_t a = 0; b && a < b->n_addresses; a++) {
			struct rotator_service *rs = &ret[count++];

			fill_service(rs, &services[i], schedule);
			/* Decoys once per service, not once per address family. */
			if (a > 0)
				rs->n_decoys = 0;
			rs->backend = b->addresses[a];
			rs->backend_port = b->port;
		}
	}
	return count;
}

static void remember_blocked(struct rotation *rotation, const char *address, const char *service,
			     uint64_t until_usec, unsigned strike)
{
	uint64_t now_usec = now(CLOCK_REALTIME);
	struct blocked_source *b = NULL;

	for (size_t i = 0; i < rotation->n_blocked; i++)
		if (streq(rotation->blocked[i].address, address) ||
		    rotation->blocked[i].until_usec <= now_usec) {
			b = &rotation->blocked[i];
			break;
		}
	if (!b) {
		struct blocked_source *grown;

		if (rotation->n_blocked >= BLOCKED_TRACKED_MAX)
			return;
		grown = realloc(rotation->blocked, (rotation->n_blocked + 1) * sizeof(*grown));
		if (!grown)
			return;
		rotation->blocked = grown;
		b = &rotation->blocked[rotation->n_blocked++];
	}
	snprintf(b->address, sizeof(b->address), "%s", address);
	snprintf(b->service, sizeof(b->service), "%s", service ? service : "");
	b->until_usec = until_usec;
	b->strike = strike;
}

/* After adopting a table: the sources it still blocks (carried over by the
 * rotator) are shown again, without the service, which the kernel does not
 * keep. One the kernel blocks for good was added by hand, not by a decoy. */
static void remember_carried_blocked(struct rotation *rotation)
{
	_cleanup_free_ struct rotator_blocked *list = NULL;
	struct step_error error = {0};
	uint64_t now_usec = now(CLOCK_REALTIME);
	size_t n = 0;

	if (rotator_blocked_list(rotation->rotator, &list, &n, &error) < 0) {
		log_warning(
		    "rotation: the blocked sources of the adopted table are not shown: %s%s%s",
		    error.step, error.step[0] ? ": " : "", error.detail);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		char address[INET6_ADDRSTRLEN] = "?";

		if (list[i].expires_in_ms == 0)
			continue;
		inet_ntop(list[i].source.family, &list[i].source.in6, address, sizeof(address));
		remember_blocked(rotation, address, NULL, now_usec + list[i].expires_in_ms * 1000,
				 0);
	}
}

/* The plan: every service's ports and every live instance's envelope, but
 * the instance named cut (if any): its elements go in the same transaction. */
/* One transaction: the table as the services' schedules are now (live
 * bank) and after their next change (idle bank), the instances but `cut`.
 * When the live bank's contents were what the idle bank held, the
 * transaction only switched banks (*ret_switched). */
static int apply_once(struct rotation *rotation, struct rotated_service *services, size_t n,
		      const struct rotator_addr *unblock, size_t n_unblock, const char *cut,
		      struct step_error *error, bool *ret_switched)
{
	_cleanup_free_ struct rotator_instance *plan_instances =
	    calloc(rotation->n_instances + 1, sizeof(*plan_instances));
	/* Up to two entries a service: a dual-stack instance has two addresses. */
	_cleanup_free_ struct rotator_service *plan_services =
	    calloc(2 * n + 1, sizeof(*plan_services));
	_cleanup_free_ struct rotator_service *plan_next = calloc(2 * n + 1, sizeof(*plan_next));
	struct rotator_plan plan = {.unblock = unblock,
				    .n_unblock = n_unblock,
				    .unadmit = rotation->revoked_admissions,
				    .n_unadmit = rotation->n_revoked_admissions};
	struct rotator_stats stats;
	bool first;
	int r;

	*ret_switched = false;
	if (!plan_services || !plan_next || !plan_instances)
		return -ENOMEM;
	for (size_t i = 0; i < rotation->n_instances; i++) {
		const struct enveloped_instance *e = &rotation->instances[i];

		bool dead = e->dead || (cut && streq(e->name, cut));

		/* the instance named cut goes in this transaction: dead */
		plan_instances[plan.n_instances++] = (struct rotator_instance){
		    .name = e->name,
		    .addresses = e->addresses,
		    .n_addresses = e->n_addresses,
		    .proto = e->proto,
		    .port = e->port,
		    .egress = dead ? NULL : e->egress,
		    .n_egress = dead ? 0 : e->n_egress,
		    .cut = e->cut,
		    .dead = dead,
		};
	}
	plan.instances = plan_instances;
	plan.n_services = plan_services_fill(rotation, services, n, false, plan_services);
	plan.n_next = plan_services_fill(rotation, services, n, true, plan_next);
	plan.services = plan_services;
	plan.next = plan_next;

	first = !(rotator_flags(rotation->rotator) & ROTATOR_F_PROGRAMMED);
	r = rotator_apply(rotation->rotator, &plan, error);
	if (r < 0) {
		rotation->failures++;
		rotation->idle_bank_loaded = false;
		return r;
	}
	rotation->transactions++;
	rotation->last_apply_usec = now(CLOCK_REALTIME);
	if (first && (rotator_flags(rotation->rotator) & ROTATOR_F_ADOPTED))
		remember_carried_blocked(rotation);
	rotator_last_stats(rotation->rotator, &stats);
	if (stats.switched)
		rotation->switches++;
	rotation->idle_bank_loaded = !stats.switched;
	*ret_switched = stats.switched;
	return 0;
}

/* The idle bank gets the next change, in a transaction that touches nothing
 * live. If it fails, the table in force is still right: the next change
 * then takes a full transaction instead of a switch. */
static void stage_next(struct rotation *rotation, struct rotated_service *services, size_t n,
		       const char *cut)
{
	struct step_error error = {0};
	uint64_t started = now(CLOCK_MONOTONIC);
	bool switched;
	int r;

	r = apply_once(rotation, services, n, NULL, 0, cut, &error, &switched);
	if (r >= 0)
		metric_histogram_observe(&rotation->staging_durations,
					 now(CLOCK_MONOTONIC) - started);
	if (r < 0 && rotation->hooks.on_apply_failed) {
		char reason[sizeof("nftables: loading the next change: ") + STEP_ERROR_FORMAT_MAX];

		snprintf(reason, sizeof(reason), "nftables: loading the next change: %s%s%s",
			 error.step, error.step[0] ? ": " : "",
			 error.detail[0] ? error.detail : strerror(-r));
		rotation->hooks.on_apply_failed(reason, rotation->hooks.userdata);
	}
}

/* The rotator's step under "nftables", its detail (or the errno's text)
 * after it: "nftables: service web: public ports in map svc4_0: ...". */
static int apply_error(int r, const struct step_error *error, struct step_error *ret_error)
{
	step_error_set(ret_error, "nftables", 0, "%s%s%s", error->step, error->step[0] ? ": " : "",
		       error->detail[0] ? error->detail : strerror(-r));
	return r;
}

static int program_cut(struct rotation *rotation, struct rotated_service *services, size_t n,
		       const struct rotator_addr *unblock, size_t n_unblock, const char *cut,
		       struct step_error *ret_error)
{
	struct step_error error = {0};
	bool switched;
	int r;

	r = apply_once(rotation, services, n, unblock, n_unblock, cut, &error, &switched);
	if (r < 0)
		return apply_error(r, &error, ret_error);
	/* The ports moved with a switch of banks: the idle bank is stale now. */
	if (switched)
		stage_next(rotation, services, n, cut);
	return 0;
}

/* The services' schedules in force, and nothing loaded ahead yet: the idle
 * bank made live when it holds them (no plan built or compared), else the
 * whole plan. */
static int switch_banks(struct rotation *rotation, struct step_error *ret_error)
{
	struct step_error error = {0};
	bool switched;
	int r = -ESTALE;

	if (rotation->idle_bank_loaded) {
		r = rotator_switch(rotation->rotator, &error);
		if (r >= 0) {
			rotation->transactions++;
			rotation->switches++;
			rotation->last_apply_usec = now(CLOCK_REALTIME);
			rotation->idle_bank_loaded = false;
			return 0;
		}
		rotation->idle_bank_loaded = false;
		if (r != -ESTALE)
			rotation->failures++;
	}
	/* not loaded, or the switch failed (nothing changed then): in full */
	r = apply_once(rotation, rotation->services, rotation->n_services, NULL, 0, NULL, &error,
		       &switched);
	return r < 0 ? apply_error(r, &error, ret_error) : 0;
}

static void instances_remove_named(struct rotation *rotation, const char *name)
{
	for (size_t i = 0; i < rotation->n_instances; i++)
		if (streq(rotation->instances[i].name, name)) {
			free(rotation->instances[i].egress);
			rotation->instances[i] = rotation->instances[--rotation->n_instances];
			return;
		}
}

/* --- dead instances ------------------------------------------------------
 * A removed instance (killed, quarantined, cut off by a route change) stays
 * in the registry as dead: its addresses in the dead sets, so that a packet
 * of a flow conntrack still leads to it is answered with a reset at once
 * (docs/nftables.md, "Killed instances"). Swept every DEAD_SWEEP_USEC: it
 * goes once conntrack has no open DNATed flow to its addresses, or after
 * DEAD_KEEP_USEC, when the flows still open to it are deleted from
 * conntrack (their clients were idle all that time). */
#define DEAD_SWEEP_USEC (1 * USEC_PER_SEC)
#define DEAD_KEEP_USEC (120 * USEC_PER_SEC)

/* Open flows to its addresses; with end, deleted from conntrack too.
 * -errno when conntrack cannot be read. */
static int dead_flows(const struct enveloped_instance *e, bool end, size_t *ret_open)
{
	size_t total = 0;

	for (size_t a = 0; a < e->n_addresses; a++) {
		size_t k = 0;
		int r = end ? rotator_conntrack_end_to(&e->addresses[a], &k)
			    : rotator_conntrack_count_to(&e->addresses[a], &k);

		if (r < 0)
			return r;
		total += k;
	}
	*ret_open = total;
	return 0;
}

static int on_dead_sweep(sd_event_source *source, uint64_t usec, void *userdata)
{
	struct rotation *rotation = userdata;
	uint64_t t = now(CLOCK_MONOTONIC);
	bool changed = false, left = false;

	for (size_t i = 0; i < rotation->n_instances;) {
		struct enveloped_instance *e = &rotation->instances[i];
		bool expired = t - e->dead_usec >= DEAD_KEEP_USEC;
		size_t open = 1;

		/* Conntrack unreadable: kept until DEAD_KEEP_USEC. */
		if (e->dead && (dead_flows(e, expired, &open) < 0 ? expired : expired || !open)) {
			instances_remove_named(rotation, e->name);
			changed = true;
			continue;
		}
		left |= e->dead;
		i++;
	}
	if (changed)
		(void)program(rotation, rotation->services, rotation->n_services, NULL, 0, NULL);
	if (left) {
		(void)sd_event_source_set_time(source, t + DEAD_SWEEP_USEC);
		(void)sd_event_source_set_enabled(source, SD_EVENT_ONESHOT);
	}
	return 0;
}

static void instances_mark_dead(struct rotation *rotation, const char *name)
{
	uint64_t t = now(CLOCK_MONOTONIC);

	for (size_t i = 0; i < rotation->n_instances; i++) {
		struct enveloped_instance *e = &rotation->instances[i];

		if (!streq(e->name, name) || e->dead)
			continue;
		e->dead = true;
		e->dead_usec = t;
		free(e->egress);
		e->egress = NULL;
		e->n_egress = 0;
	}
	/* The first sweep a poll period on: a client that sends in between
	 * gets its reset. */
	if (!rotation->dead_timer) {
		if (sd_event_add_time(rotation->event, &rotation->dead_timer, CLOCK_MONOTONIC,
				      t + DEAD_SWEEP_USEC, 0, on_dead_sweep, rotation) < 0)
			return;
	} else if (sd_event_source_get_enabled(rotation->dead_timer, NULL) == 0) {
		(void)sd_event_source_set_time(rotation->dead_timer, t + DEAD_SWEEP_USEC);
	}
	(void)sd_event_source_set_enabled(rotation->dead_timer, SD_EVENT_ONESHOT);
}

static void instances_forget_dead_with(struct rotation *rotation, const struct rotator_addr *a,
				       size_t n)
{
	for (size_t i = 0; i < rotation->n_instances;) {
		struct enveloped_instance *e = &rotation->instances[i];
		bool shared = false;

		for (size_t x = 0; e->dead && x < e->n_addresses; x++)
			for (size_t y = 0; y < n; y++)
				shared |= e->addresses[x].family == a[y].family &&
					  memcmp(&e->addresses[x].in6, &a[y].in6,
						 a[y].family == AF_INET ? 4 : 16) == 0;
		if (shared) {
			instances_remove_named(rotation, e->name);
			continue;
		}
		i++;
	}
}

int rotation_set_instance_backend(struct rotation *rotation, const char *service,
				  const struct rotator_addr *addresses, size_t n_addresses,
				  uint16_t port, const char *cut_instance,
				  struct step_error *ret_error)
{
	struct instance_backend *b =
	    (struct instance_backend *)find_instance_backend(rotation, service);
	struct instance_backend saved = {0};
	bool existed = b != NULL;
	int r;

	if (n_addresses > ELEMENTSOF(b->addresses))
		return -EINVAL;
	if (!b) {
		struct instance_backend *grown =
		    realloc(rotation->instance_backends,
			    (rotation->n_instance_backends + 1) * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		rotation->instance_backends = grown;
		b = &rotation->instance_backends[rotation->n_instance_backends++];
		memset(b, 0, sizeof(*b));
		snprintf(b->service, sizeof(b->service), "%s", service);
	} else {
		saved = *b;
	}
	memcpy(b->addresses, addresses, n_addresses * sizeof(*addresses));
	b->n_addresses = n_addresses;
	b->port = port;

	/* Moving traffic to the new instance (and cutting the old one off) is
	 * one transaction; if it fails the old route stays, in the kernel and here. */
	r = program_cut(rotation, rotation->services, rotation->n_services, NULL, 0, cut_instance,
			ret_error);
	if (r < 0) {
		if (existed)
			*b = saved;
		else
			rotation->n_instance_backends--;
		return r;
	}
	if (cut_instance)
		instances_mark_dead(rotation, cut_instance);
	return 0;
}

int rotation_clear_instance_backend(struct rotation *rotation, const char *service,
				    struct step_error *ret_error)
{
	for (size_t i = 0; i < rotation->n_instance_backends; i++) {
		struct instance_backend saved = rotation->instance_backends[i];
		int r;

		if (!streq(saved.service, service))
			continue;
		rotation->instance_backends[i] =
		    rotation->instance_backends[--rotation->n_instance_backends];
		r = program(rotation, rotation->services, rotation->n_services, NULL, 0, ret_error);
		if (r < 0) {
			rotation->instance_backends[rotation->n_instance_backends++] =
			    rotation->instance_backends[i];
			rotation->instance_backends[i] = saved;
		}
		return r;
	}
	return 0;
}

/* The next moment the table must change: a boundary, or the end of a grace. */
static uint64_t next_change_usec(const struct rotated_service *services, size_t n)
{
	uint64_t next = UINT64_MAX;

	for (size_t i = 0; i < n; i++) {
		const struct schedule_result *s = &services[i].schedule;
		uint64_t t = s->next_boundary_usec;

		if (s->grace_port || (services[i].clients && services[i].ports.grace))
			t = s->boundary_usec + services[i].policy->grace_usec;
		if (t < next)
			next = t;
	}
	return next;
}

static int arm_timer(struct rotation *rotation)
{
	uint64_t next = next_change_usec(rotation->services, rotation->n_services);

	if (next == UINT64_MAX)
		return sd_event_source_set_enabled(rotation->timer, SD_EVENT_OFF);
	(void)sd_event_source_set_time(rotation->timer, next);
	return sd_event_source_set_enabled(rotation->timer, SD_EVENT_ONESHOT);
}

static void report_apply_failure(struct rotation *rotation, int r, const struct step_error *error)
{
	char reason[STEP_ERROR_FORMAT_MAX];

	if (!rotation->hooks.on_apply_failed)
		return;
	step_error_reason(error, r, reason, sizeof(reason));
	rotation->hooks.on_apply_failed(reason, rotation->hooks.userdata);
}

static void rotate_now(struct rotation *rotation, uint64_t at_least_usec)
{
	uint64_t now_usec = now(CLOCK_REALTIME);
	struct step_error error = {0};
	int r;

	/* A timer never fires early, but the clock may have been set back. */
	if (now_usec < at_least_usec)
		now_usec = at_least_usec;
	r = compute_all(rotation->services, rotation->n_services, now_usec);
	if (r >= 0)
		r = program(rotation, rotation->services, rotation->n_services, NULL, 0, &error);
	if (r < 0)
		report_apply_failure(rotation, r, &error);
	(void)arm_timer(rotation);
}

/* The change due at usec was computed (and loaded into the idle bank) at
 * the previous one, for every service. */
static bool change_is_loaded(const struct rotation *rotation, uint64_t usec)
{
	if (rotation->n_services == 0)
		return false;
	for (size_t i = 0; i < rotation->n_services; i++)
		if (rotation->services[i].next_for_usec != usec)
			return false;
	return true;
}

/* At a boundary (or the end of a grace) the switch goes out first and is
 * the only work done then: the schedules were computed and the idle bank
 * loaded at the previous change. The host-port scan and the schedules of
 * the change after this one follow, then their loading into the idle bank,
 * all after the ports have moved. */
static void load_next_change(struct rotation *rotation);

static void switch_to_loaded(struct rotation *rotation, uint64_t *ret_switched_usec)
{
	struct step_error error = {0};
	uint64_t now_usec, next, delay = STAGE_DELAY_USEC;
	int r;

	uint64_t started = now(CLOCK_MONOTONIC);

	for (size_t i = 0; i < rotation->n_services; i++) {
		struct rotated_service *s = &rotation->services[i];
		struct client_ports swap = s->ports;

		s->schedule = s->next_schedule;
		s->ports = s->next_ports;
		s->next_ports = swap; /* its memory, for the next computation */
	}
	r = switch_banks(rotation, &error);
	now_usec = *ret_switched_usec = now(CLOCK_REALTIME);
	if (r < 0) {
		report_apply_failure(rotation, r, &error);
		return;
	}
	metric_histogram_observe(&rotation->switch_durations, now(CLOCK_MONOTONIC) - started);
	next = next_change_usec(rotation->services, rotation->n_services);
	if (next != UINT64_MAX && next > now_usec && (next - now_usec) / 4 < delay)
		delay = (next - now_usec) / 4;
	if (sd_event_source_set_time_relative(rotation->stage_timer, delay) < 0 ||
	    sd_event_source_set_enabled(rotation->stage_timer, SD_EVENT_ONESHOT) < 0)
		load_next_change(rotation);
}

/* The change after the one just switched to: host ports asked again, every
 * schedule computed, the idle bank loaded. Its time joins the change's
 * record (late_usec: the change's last transaction). */
static void load_next_change(struct rotation *rotation)
{
	struct timed_change *c =
	    rotation->n_changes
		? &rotation->changes[(rotation->n_changes - 1) % ROTATION_CHANGES_KEPT]
		: NULL;
	uint64_t now_usec;
	int r;

	r = compute_next(rotation->services, rotation->n_services);
	if (r < 0)
		report_apply_failure(rotation, r, NULL);
	else
		stage_next(rotation, rotation->services, rotation->n_services, NULL);
	now_usec = now(CLOCK_REALTIME);
	if (c && now_usec > c->due_usec) {
		c->late_usec = now_usec - c->due_usec;
		if (c->late_usec > rotation->max_late_usec)
			rotation->max_late_usec = c->late_usec;
	}
}

static int on_stage_timer(sd_event_source *source, uint64_t usec, void *userdata)
{
	load_next_change(userdata);
	return 0;
}

static int on_timer(sd_event_source *source, uint64_t usec, void *userdata)
{
	struct rotation *rotation = userdata;
	uint64_t fired = now(CLOCK_REALTIME), switched, late;

	if (change_is_loaded(rotation, usec) && fired >= usec) {
		switch_to_loaded(rotation, &switched);
	} else {
		uint64_t started = now(CLOCK_MONOTONIC), failures = rotation->failures;

		rotate_now(rotation, usec);
		switched = now(CLOCK_REALTIME);
		if (rotation->failures == failures)
			metric_histogram_observe(&rotation->switch_durations,
						 now(CLOCK_MONOTONIC) - started);
	}
	(void)arm_timer(rotation);
	/* Lateness of the change: from its due time to its switch committed
	 * (the loop's delay in running the timer included), and to its last
	 * transaction committed (the next change loaded: a little later, see
	 * load_next_change). */
	late = now(CLOCK_REALTIME);
	late = late > usec ? late - usec : 0;
	rotation->changes[rotation->n_changes++ % ROTATION_CHANGES_KEPT] = (struct timed_change){
	    .due_usec = usec,
	    .fired_late_usec = fired > usec ? fired - usec : 0,
	    .switch_late_usec = switched > usec ? switched - usec : 0,
	    .late_usec = late,
	};
	if (late > rotation->max_late_usec)
		rotation->max_late_usec = late;
	if (rotation->hooks.on_boundary)
		rotation->hooks.on_boundary(rotation->hooks.userdata);
	return 0;
}

/* A timerfd armed at the far future with TFD_TIMER_CANCEL_ON_SET becomes
 * readable (ECANCELED) whenever the realtime clock is set: then every
 * boundary is recomputed and the timer re-armed. */
static int arm_clock_watch(int fd)
{
	struct itimerspec far = {.it_value = {.tv_sec = INT32_MAX}};

	if (timerfd_settime(fd, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &far, NULL) < 0)
		return -errno;
	return 0;
}

static int on_clock_set(sd_event_source *source, int fd, uint32_t revents, void *userdata)
{
	struct rotation *rotation = userdata;
	uint64_t expirations;

	/* ECANCELED is the point: the clock was set. */
	if (read(fd, &expirations, sizeof(expirations)) < 0 && errno != ECANCELED &&
	    errno != EAGAIN)
		return 0;
	(void)arm_clock_watch(fd);
	rotate_now(rotation, 0);
	if (rotation->hooks.on_clock_set)
		rotation->hooks.on_clock_set(rotation->hooks.userdata);
	return 0;
}

static const char *proto_name(uint8_t proto)
{
	return proto == IPPROTO_UDP ? "udp" : "tcp";
}

static struct rotated_service *service_named(struct rotation *rotation, const char *name)
{
	for (size_t i = 0; name && i < rotation->n_services; i++)
		if (streq(rotation->services[i].policy->name, name))
			return &rotation->services[i];
	return NULL;
}

static struct decoy_rules decoy_rules_of(const struct rotated_service *service)
{
	const struct policy *p = service ? service->policy : NULL;

	if (!p)
		return unowned_decoy_rules;
	return (struct decoy_rules){
	    .never_block = p->never_block,
	    .n_never_block = p->never_block_count,
	    .block_usec = p->decoy_block_usec,
	    .factor = p->decoy_block_factor,
	    .max_usec = p->decoy_block_max_usec,
	    .window_usec = p->decoy_repeat_window_usec,
	};
}

/* One decoy event as the hooks see it. */
static struct rotation_decoy_event decoy_event(const char *service, const char *source,
					       uint8_t proto, uint16_t port,
					       enum decoy_evidence evidence,
					       const struct decoy_decision *d)
{
	return (struct rotation_decoy_event){
	    .service = service,
	    .source = source,
	    .proto = proto_name(proto),
	    .port = port,
	    .evidence = decoy_blocks_evidence_name(evidence),
	    .action = decoy_blocks_verdict_name(d->verdict),
	    .block_usec = d->block_usec,
	    .strike = d->strike,
	    .simulated = d->verdict == DECOY_MONITOR,
	};
}

/* Carry out a decision to block (or, in monitor mode, only record it) and
 * report it to on_decoy_block. */
static void block_source(struct rotation *rotation, const struct rotator_addr *source,
			 const char *service, const struct decoy_rules *rules,
			 const struct decoy_decision *d, enum decoy_evidence evidence,
			 struct rotation_decoy_event *event)
{
	uint64_t now_usec = now(CLOCK_REALTIME);
	char reason[STEP_ERROR_FORMAT_MAX];
	struct step_error error = {0};

	if (d->verdict == DECOY_BLOCK) {
		struct rotator_blocked entry = {
		    .source = *source, .expires_in_ms = MAX(d->block_usec / USEC_PER_MSEC, 1)};
		int r = rotator_block(rotation->rotator, &entry, 1, &error);

		if (r < 0) {
			event->error = step_error_reason(&error, r, reason, sizeof(reason));
			if (rotation->hooks.on_decoy_block)
				rotation->hooks.on_decoy_block(event, rotation->hooks.userdata);
			return;
		}
		remember_blocked(rotation, event->source, service, now_usec + d->block_usec,
				 d->strike);
	}
	decoy_blocks_record(rotation->decoy_blocks, source, rules, d, evidence, now_usec);
	if (rotation->hooks.on_decoy_block)
		rotation->hooks.on_decoy_block(event, rotation->hooks.userdata);
}

/* A packet to a decoy, as NFLOG reports it: its source may be forged, so
 * only a UDP hit can block here (within the bound); a TCP toucher is
 * blocked when the honeypot completes its handshake (on_honeypot). */
static void decoy_hit(struct rotation *rotation, const struct rotator_hit *hit)
{
	const char *service = rotator_decoy_owner(rotation->rotator, hit->proto, hit->port);
	struct rotated_service *owner = service_named(rotation, service);
	struct decoy_rules rules = decoy_rules_of(owner);
	enum decoy_evidence evidence =
	    hit->proto == IPPROTO_UDP ? DECOY_EVIDENCE_UDP : DECOY_EVIDENCE_TCP_SYN;
	struct decoy_decision d = decoy_blocks_decide(rotation->decoy_blocks, &rules, &hit->source,
						      evidence, now(CLOCK_REALTIME));
	char address[INET6_ADDRSTRLEN] = "?";
	struct rotation_decoy_event event;

	inet_ntop(hit->source.family, &hit->source.in6, address, sizeof(address));
	event = decoy_event(service, address, hit->proto, hit->port, evidence, &d);
	if (owner)
		owner->decoy_hits++;
	if (rotation->hooks.on_decoy_hit) {
		/* Link the hit to the instances this source reached. */
		struct rotator_addr reached[8];
		const char *names[8];
		size_t n_reached = 0, n_names = 0;

		if (rotator_conntrack_reached(&hit->source, reached, ELEMENTSOF(reached),
					      &n_reached) < 0)
			n_reached = 0;
		for (size_t j = 0; j < n_reached; j++) {
			const char *name = rotator_instance_owner(rotation->rotator, &reached[j]);
			if (name)
				names[n_names++] = name;
		}
		rotation->hooks.on_decoy_hit(&event, names, n_names, rotation->hooks.userdata);
	}
	if (d.verdict == DECOY_BLOCK || d.verdict == DECOY_MONITOR)
		block_source(rotation, &hit->source, service, &rules, &d, evidence, &event);
}

static int on_nflog(sd_event_source *source, int fd, uint32_t revents, void *userdata)
{
	struct rotation *rotation = userdata;
	struct rotator_hit hits[64];
	size_t n = 0;

	do {
		int r = rotator_nflog_read(rotation->nflog, hits, ELEMENTSOF(hits), &n);
		if (r < 0 && r != -ENOBUFS)
			return 0;
		for (size_t i = 0; i < n; i++)
			decoy_hit(rotation, &hits[i]);
	} while (n == ELEMENTSOF(hits));
	return 0;
}

static int on_egress_drop(sd_event_source *source, int fd, uint32_t revents, void *userdata)
{
	struct rotation *rotation = userdata;
	struct rotator_egress_drop drops[64];
	size_t n = 0;
	unsigned batches = 0;

	/* At most 4 batches a wakeup: an instance flooding its envelope shares
	 * the loop; the rest waits in the socket (and overflows it, counted). */
	do {
		int r =
		    rotator_nflog_read_egress(rotation->egress_log, drops, ELEMENTSOF(drops), &n);
		if (r < 0 && r != -ENOBUFS)
			return 0;
		for (size_t i = 0; i < n; i++) {
			char from[INET6_ADDRSTRLEN] = "?", to[INET6_ADDRSTRLEN] = "?";
			char link[IF_NAMESIZE];
			/* Charged to the link it came in on, never to its source
			 * address: an instance can write a sibling's address. */
			bool known = drops[i].ifindex && if_indextoname(drops[i].ifindex, link);

			inet_ntop(drops[i].source.family, &drops[i].source.in6, from, sizeof(from));
			inet_ntop(drops[i].destination.family, &drops[i].destination.in6, to,
				  sizeof(to));
			if (rotation->hooks.on_egress_drop)
				rotation->hooks.on_egress_drop(
				    known ? link : NULL, from, to, drops[i].proto, drops[i].port,
				    drops[i].spoofed, rotation->hooks.userdata);
		}
	} while (n == ELEMENTSOF(drops) && ++batches < 4);
	return 0;
}

/* The honeypot completed these handshakes: the sources own their addresses. */
static int on_honeypot(sd_event_source *source, int fd, uint32_t revents, void *userdata)
{
	struct rotation *rotation = userdata;
	struct rotator_honeypot_peer peers[64];
	size_t n = 0;

	(void)rotator_honeypot_accept_all(rotation->honeypot, peers, ELEMENTSOF(peers), &n);
	for (size_t i = 0; i < n; i++) {
		const char *service =
		    rotator_decoy_owner(rotation->rotator, IPPROTO_TCP, peers[i].decoy_port);
		struct decoy_rules rules = decoy_rules_of(service_named(rotation, service));
		struct decoy_decision d =
		    decoy_blocks_decide(rotation->decoy_blocks, &rules, &peers[i].source,
					DECOY_EVIDENCE_TCP_HANDSHAKE, now(CLOCK_REALTIME));
		char address[INET6_ADDRSTRLEN] = "?";
		struct rotation_decoy_event event;

		/* NeverBlock= or DecoyBlock=0: the SYN's record said so already */
		if (d.verdict != DECOY_BLOCK && d.verdict != DECOY_MONITOR)
			continue;
		inet_ntop(peers[i].source.family, &peers[i].source.in6, address, sizeof(address));
		event = decoy_event(service, address, IPPROTO_TCP, peers[i].decoy_port,
				    DECOY_EVIDENCE_TCP_HANDSHAKE, &d);
		block_source(rotation, &peers[i].source, service, &rules, &d,
			     DECOY_EVIDENCE_TCP_HANDSHAKE, &event);
	}
	return 0;
}

/* --- knocks (docs/schedule.md, "Knock packets") ------------------------------- */

/* A ClientAuth=knock service as the knock receiver sees it; index: its place
 * in rotation->services. */
struct gated_service {
	struct knock_service k; /* first: the receiver hands this back */
	size_t index;
};

static int cmp_port(const void *a, const void *b)
{
	return (int)*(const uint16_t *)a - (int)*(const uint16_t *)b;
}

static size_t knock_services_at(void *userdata, uint16_t port, const struct knock_service **ret,
				size_t max)
{
	struct rotation *rotation = userdata;
	size_t n = 0;

	for (size_t i = 0; i < rotation->n_gated && n < max; i++) {
		const struct client_ports *cp = &rotation->services[rotation->gated[i].index].ports;

		if (bsearch(&port, cp->knocks, cp->n_knocks, sizeof(*cp->knocks), cmp_port))
			ret[n++] = &rotation->gated[i].k;
	}
	return n;
}

/* The door and knock port of an epoch the agent computed (the schedule in
 * force: the current epoch, and the previous one in grace). */
static bool client_ports_of(const struct rotation_client *c, uint64_t epoch, uint16_t *ret_door,
			    uint16_t *ret_knock)
{
	for (int j = 0; j < ROTATION_CLIENT_CACHE; j++)
		if ((c->cache_valid & (1u << j)) && c->cache_epoch[j] == epoch) {
			*ret_door = c->cache_door[j];
			*ret_knock = c->cache_knock[j];
			return true;
		}
	return false;
}

static int knock_client(void *userdata, const struct knock_service *service, const char *name,
			struct knock_client *ret)
{
	struct rotation *rotation = userdata;
	const struct rotated_service *s =
	    &rotation->services[((const struct gated_service *)service)->index];
	const struct rotation_client *c = rotation_clients_find(s->clients, name);
	uint64_t epoch = s->ports.epoch, interval = s->policy->interval_usec;
	struct knock_client k = {0};

	if (!c)
		return -ENOENT;
	k.key = c->key;
	k.key_len = c->key_len;
	for (uint64_t back = 0; back <= (s->ports.grace && epoch > 0 ? 1u : 0u); back++) {
		struct knock_guard_epoch *e = &k.epochs[k.n_epochs];

		if (!client_ports_of(c, epoch - back, &e->door, &e->knock_port))
			continue;
		e->epoch = epoch - back;
		/* the end of its epoch plus Grace= */
		e->until_usec = (epoch - back + 1) * interval + s->policy->grace_usec;
		k.n_epochs++;
	}
	*ret = k;
	return 0;
}

static int knock_admit(void *userdata, const struct knock_service *service, const char *client,
		       const struct rotator_addr *source, uint16_t door, uint64_t until_usec,
		       struct step_error *ret_error)
{
	struct rotation *rotation = userdata;
	uint64_t now_usec = now(CLOCK_REALTIME);
	struct rotator_admission a = {
	    .source = *source,
	    .proto = service->proto,
	    .port = door,
	    .expires_in_ms = until_usec > now_usec ? (until_usec - now_usec + 999) / 1000 : 1,
	};

	if (!rotation->rotator)
		return step_error_set(ret_error, "admit", ENOENT, "no table yet");
	return rotator_admit(rotation->rotator, &a, 1, ret_error);
}

static bool knock_keep_service(const char *service, void *userdata)
{
	struct rotation *rotation = userdata;

	for (size_t i = 0; i < rotation->n_gated; i++)
		if (streq(rotation->gated[i].k.name, service))
			return true;
	return false;
}

static bool knock_keep_client(const char *service, const char *client, void *userdata)
{
	struct rotation *rotation = userdata;

	for (size_t i = 0; i < rotation->n_gated; i++)
		if (streq(rotation->gated[i].k.name, service))
			return rotation_clients_find(
				   rotation->services[rotation->gated[i].index].clients, client) !=
			       NULL;
	return false;
}

/* After the services changed: the gated ones of the set in force, each with
 * its guard (a reload keeps the guard's sources, nonces and counts), and the
 * listener forgets services and clients that are gone. A service whose guard
 * cannot be made (no memory) takes no knock: its doors stay closed. */
static void knock_services_refresh(struct rotation *rotation)
{
	struct gated_service *gated;
	size_t n = 0;

	if (!rotation->knocks)
		return;
	gated = calloc(rotation->n_services ? rotation->n_services : 1, sizeof(*gated));
	if (!gated) {
		log_warning("rotation: no memory for the knock-gated services: knocks are refused");
		rotation->n_gated = 0;
		return;
	}
	for (size_t i = 0; i < rotation->n_services; i++) {
		const struct rotated_service *s = &rotation->services[i];
		const struct policy *p = s->policy;
		struct knock_guard_limits limits = {.rate = p->knock_rate_limit,
						    .rate_span_usec = p->knock_rate_interval_usec,
						    .window_usec = p->knock_window_usec};
		struct knock_guard *guard;

		if (!s->clients || p->client_auth != POLICY_CLIENT_AUTH_KNOCK)
			continue;
		guard = knock_listener_service(rotation->knocks, p->name, &limits);
		if (!guard) {
			log_warning("rotation: %s: no memory for its knock guard: knocks are "
				    "refused",
				    p->name);
			continue;
		}
		gated[n++] = (struct gated_service){.k = {.name = p->name,
							  .host_id = s->clients->host_id,
							  .proto = proto_of(p),
							  .guard = guard},
						    .index = i};
	}
	free(rotation->gated);
	rotation->gated = gated;
	rotation->n_gated = n;
	knock_listener_retain(rotation->knocks, knock_keep_service, knock_keep_client, rotation);
}

static int knocks_open(struct rotation *rotation)
{
	const struct knock_receiver_ops ops = {.services_at = knock_services_at,
					       .client = knock_client,
					       .admit = knock_admit,
					       .userdata = rotation};
	const struct knock_listener_hooks hooks = {
	    .on_admitted = rotation->hooks.on_client_admitted,
	    .on_refused = rotation->hooks.on_knocks_refused,
	    .on_connected = rotation->hooks.on_client_connected,
	    .userdata = rotation->hooks.userdata,
	};

	if (!rotation->options.knock_nflog_group)
		return 0;
	return knock_listener_new(rotation->event, rotation->options.knock_nflog_group, &ops,
				  &hooks, &rotation->knocks);
}

int rotation_new(sd_event *event, const struct rotation_options *options,
		 const struct rotation_hooks *hooks, struct rotation **ret_rotation)
{
	struct rotation *rotation;
	int r;

	rotation = calloc(1, sizeof(*rotation));
	if (!rotation)
		return -ENOMEM;
	rotation->clock_fd = -1;
	rotation->event = sd_event_ref(event);
	rotation->options = *options;
	rotation->hooks = *hooks;
	metric_histogram_init(&rotation->switch_durations, duration_bounds_usec,
			      ELEMENTSOF(duration_bounds_usec));
	metric_histogram_init(&rotation->staging_durations, duration_bounds_usec,
			      ELEMENTSOF(duration_bounds_usec));
	r = decoy_blocks_new(&rotation->decoy_blocks);
	if (r < 0)
		goto fail;

	r = sd_event_add_time(event, &rotation->timer, CLOCK_REALTIME, UINT64_MAX,
			      TIMER_ACCURACY_USEC, on_timer, rotation);
	if (r < 0)
		goto fail;
	(void)sd_event_source_set_enabled(rotation->timer, SD_EVENT_OFF);
	r = sd_event_add_time(event, &rotation->stage_timer, CLOCK_MONOTONIC, UINT64_MAX,
			      TIMER_ACCURACY_USEC, on_stage_timer, rotation);
	if (r < 0)
		goto fail;
	(void)sd_event_source_set_enabled(rotation->stage_timer, SD_EVENT_OFF);

	rotation->clock_fd = timerfd_create(CLOCK_REALTIME, TFD_CLOEXEC | TFD_NONBLOCK);
	if (rotation->clock_fd < 0) {
		r = -errno;
		goto fail;
	}
	r = arm_clock_watch(rotation->clock_fd);
	if (r < 0)
		goto fail;
	r = sd_event_add_io(event, &rotation->clock_watch, rotation->clock_fd, EPOLLIN,
			    on_clock_set, rotation);
	if (r < 0)
		goto fail;

	r = rotator_nflog_open(options->nflog_group, &rotation->nflog);
	if (r < 0)
		goto fail;
	r = sd_event_add_io(event, &rotation->nflog_source, rotator_nflog_fd(rotation->nflog),
			    EPOLLIN, on_nflog, rotation);
	if (r < 0)
		goto fail;

	r = rotator_nflog_open(options->egress_nflog_group, &rotation->egress_log);
	if (r < 0)
		goto fail;
	r = sd_event_add_io(event, &rotation->egress_source, rotator_nflog_fd(rotation->egress_log),
			    EPOLLIN, on_egress_drop, rotation);
	if (r < 0)
		goto fail;

	if (options->honeypot_port) {
		r = rotator_honeypot_open(options->honeypot_port, &rotation->honeypot);
		if (r < 0)
			goto fail;
		r = sd_event_add_io(event, &rotation->honeypot_source,
				    rotator_honeypot_fd(rotation->honeypot), EPOLLIN, on_honeypot,
				    rotation);
		if (r < 0)
			goto fail;
	}

	r = knocks_open(rotation);
	if (r < 0)
		goto fail;

	*ret_rotation = rotation;
	return 0;
fail:
	rotation_free(rotation);
	return r;
}

static int load_services(struct rotation *rotation, const struct policy_set *set,
			 const char *host_id, struct rotated_service **ret_services, size_t *ret_n,
			 struct step_error *ret_error)
{
	struct rotated_service *services = calloc(set->count ? set->count : 1, sizeof(*services));
	size_t n = 0;

	if (!services)
		return -ENOMEM;
	for (size_t i = 0; i < set->count; i++) {
		const struct policy *p = set->policies[i];
		struct rotated_service *s;
		int r;

		if (!policy_rotates(p))
			continue;
		s = &services[n++];
		s->policy = p;
		_cleanup_free_ char *error = NULL;

		if (p->client_keys) {
			r = rotation_clients_load(p, host_id, &s->clients, ret_error);
			if (r < 0) {
				services_free(services, n);
				return r;
			}
			s->clients->mac = rotation->mac;
			continue;
		}
		r = policy_read_key_file(p->key_file, &s->key, &s->key_len, &error);
		if (r < 0) {
			step_error_set(ret_error, p->name, 0, "KeyFile %s",
				       error ? error : strerror(-r));
			services_free(services, n);
			return r;
		}
	}
	*ret_services = services;
	*ret_n = n;
	return 0;
}

/* The host's id of the per-client schedules: HostId=, else its public
 * address (read once, at the first set that has a per-client service). */
static int host_id_for(struct rotation *rotation, const struct policy_set *set,
		       const struct policy_globals *globals, struct step_error *ret_error)
{
	bool needed = false;

	for (size_t i = 0; i < set->count; i++)
		needed |= set->policies[i]->client_keys != NULL;
	if (needed && !rotation->mac && schedule_mac_new(&rotation->mac) < 0) {
		step_error_set(ret_error, "schedule", -ENOMEM, "%s", "");
		return -ENOMEM;
	}
	if (globals && globals->host_id) {
		snprintf(rotation->host_id, sizeof(rotation->host_id), "%s", globals->host_id);
		return 0;
	}
	if (needed && !rotation->host_id_read) {
		int r = rotation_default_host_id(rotation->host_id_default,
						 sizeof(rotation->host_id_default));

		rotation->host_id_read = true;
		if (r < 0)
			rotation->host_id_default[0] = 0;
		else
			log_info("rotation: host id %s (the default route's address; HostId= "
				 "sets another)",
				 rotation->host_id_default);
	}
	snprintf(rotation->host_id, sizeof(rotation->host_id), "%s", rotation->host_id_default);
	return 0;
}

/* Whether a client of a service in force is gone from the new set. */
static bool client_revoked(const struct rotated_service *old, const struct rotation_client *cl,
			   struct rotated_service *next, size_t n_next)
{
	for (size_t j = 0; j < n_next; j++)
		if (next[j].clients && streq(next[j].policy->name, old->policy->name))
			return !rotation_clients_find(next[j].clients, cl->name);
	return true;
}

/* The admissions of the clients the new set revokes (knock_listener's
 * record of them), for the transaction that programs the new set: their
 * sources lose their doors in the reload's transaction, shared doors too. */
static int collect_revoked_admissions(struct rotation *rotation, struct rotated_service *next,
				      size_t n_next)
{
	uint64_t now_usec = now(CLOCK_REALTIME);

	for (size_t i = 0; rotation->knocks && i < rotation->n_services; i++) {
		const struct rotated_service *old = &rotation->services[i];

		for (size_t c = 0; old->clients && c < old->clients->n; c++) {
			const struct rotation_client *cl = &old->clients->clients[c];
			struct rotator_admission found[REVOKED_ADMISSIONS_MAX], *grown;
			size_t k;

			if (!client_revoked(old, cl, next, n_next))
				continue;
			k = knock_listener_admissions(rotation->knocks, old->policy->name, cl->name,
						      now_usec, found, REVOKED_ADMISSIONS_MAX);
			if (k == 0)
				continue;
			grown = reallocarray(rotation->revoked_admissions,
					     rotation->n_revoked_admissions + k, sizeof(*grown));
			if (!grown)
				return -ENOMEM;
			memcpy(grown + rotation->n_revoked_admissions, found, k * sizeof(*found));
			rotation->revoked_admissions = grown;
			rotation->n_revoked_admissions += k;
		}
	}
	return 0;
}

/* Clients of the services in force that the new ones (just programmed)
 * no longer have: their admissions and (unless keep) their flows go. */
static void revoke_clients(struct rotation *rotation, struct rotated_service *next, size_t n_next,
			   bool keep)
{
	for (size_t i = 0; i < rotation->n_services; i++) {
		struct rotated_service *old = &rotation->services[i];
		struct rotated_service *now_s = NULL;
		_cleanup_free_ uint64_t *live = NULL;
		uint8_t proto = proto_of(old->policy);

		if (!old->clients)
			continue;
		for (size_t j = 0; j < n_next; j++)
			if (next[j].clients && streq(next[j].policy->name, old->policy->name))
				now_s = &next[j];
		live = calloc(65536 / 64, sizeof(uint64_t));
		if (!live)
			return;
		/* every door of the new set, now and next (other services' too:
		 * a port is the service's it leads to) */
		for (size_t j = 0; j < n_next; j++) {
			for (size_t k = 0; k < next[j].ports.n_doors; k++)
				live[next[j].ports.doors[k] / 64] |=
				    1ull << (next[j].ports.doors[k] % 64);
			for (size_t k = 0; k < next[j].next_ports.n_doors; k++)
				live[next[j].next_ports.doors[k] / 64] |=
				    1ull << (next[j].next_ports.doors[k] % 64);
		}
		for (size_t c = 0; c < old->clients->n; c++) {
			const struct rotation_client *cl = &old->clients->clients[c];
			struct step_error error = {0};
			uint16_t doors[ROTATION_CLIENT_CACHE];
			struct rotator_admission admitted[REVOKED_ADMISSIONS_MAX];
			size_t n_doors = 0, cut = 0, unadmitted = 0, n_admitted, cut_admitted = 0;

			if (now_s && rotation_clients_find(now_s->clients, cl->name))
				continue;
			for (int j = 0; j < ROTATION_CLIENT_CACHE; j++) {
				uint16_t d = cl->cache_door[j];

				if (!(cl->cache_valid & (1u << j)) ||
				    (cl->cache_epoch[j] != old->ports.epoch &&
				     cl->cache_epoch[j] + 1 != old->ports.epoch) ||
				    (live[d / 64] & (1ull << (d % 64))))
					continue;
				doors[n_doors++] = d;
			}
			if (n_doors && rotator_unadmit_ports(rotation->rotator, proto, doors,
							     n_doors, &unadmitted, &error) < 0)
				log_warning(
				    "rotation: revoking %s of %s: its admissions stay until "
				    "they expire: %s%s%s",
				    cl->name, old->policy->name, error.step,
				    error.step[0] ? ": " : "", error.detail);
			if (n_doors && !keep &&
			    rotator_conntrack_cut(proto, doors, n_doors, &cut) < 0)
				log_warning(
				    "rotation: revoking %s of %s: its connections could not "
				    "be cut (conntrack)",
				    cl->name, old->policy->name);
			/* knock mode: also its flows through doors it shared with
			 * clients that stay, known by the sources it knocked from */
			n_admitted =
			    rotation->knocks
				? knock_listener_admissions(rotation->knocks, old->policy->name,
							    cl->name, now(CLOCK_REALTIME), admitted,
							    REVOKED_ADMISSIONS_MAX)
				: 0;
			if (n_admitted && !keep &&
			    rotator_conntrack_cut_admitted(admitted, n_admitted, &cut_admitted) < 0)
				log_warning("rotation: revoking %s of %s: its connections from the "
					    "sources it knocked from could not be cut (conntrack)",
					    cl->name, old->policy->name);
			cut += cut_admitted;
			if (rotation->hooks.on_client_revoked)
				rotation->hooks.on_client_revoked(old->policy->name, cl->name, cut,
								  keep, rotation->hooks.userdata);
		}
	}
}

int rotation_apply_policies(struct rotation *rotation, const struct policy_set *set,
			    const struct policy_globals *globals, struct step_error *ret_error)
{
	return rotation_reload_policies(rotation, set, globals, true, ret_error);
}

static void shared_ranges_recut(struct rotation *rotation);

int rotation_reload_policies(struct rotation *rotation, const struct policy_set *set,
			     const struct policy_globals *globals, bool keep_connections,
			     struct step_error *ret_error)
{
	struct decoy_limits limits = {
	    .never_block = globals->never_block,
	    .n_never_block = globals->never_block_count,
	    .udp_limit = globals->udp_block_limit,
	    .udp_interval_usec = globals->udp_block_interval_usec,
	    .handshake_possible = rotation->options.honeypot_port != 0,
	    .monitor = rotation->options.monitor,
	};
	struct rotated_service *services = NULL;
	size_t n = 0;
	int r;

	for (size_t i = 0; rotation->options.honeypot_port && i < set->count; i++) {
		const struct policy *p = set->policies[i];

		if (p->has_public_ports &&
		    p->public_ports.first <= rotation->options.honeypot_port &&
		    rotation->options.honeypot_port <= p->public_ports.last) {
			step_error_set(ret_error, p->name, 0,
				       "PublicPorts=%u-%u contains the agent's honeypot port %u "
				       "(--honeypot-port)",
				       p->public_ports.first, p->public_ports.last,
				       rotation->options.honeypot_port);
			return -EADDRINUSE;
		}
	}

	r = host_id_for(rotation, set, globals, ret_error);
	if (r < 0)
		return r;
	r = load_services(rotation, set, rotation->host_id[0] ? rotation->host_id : NULL, &services,
			  &n, ret_error);
	if (r < 0)
		return r;

	/* Decoy hits among services from the old set keep their counts. */
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < rotation->n_services; j++)
			if (streq(services[i].policy->name, rotation->services[j].policy->name))
				services[i].decoy_hits = rotation->services[j].decoy_hits;

	r = compute_all(services, n, now(CLOCK_REALTIME));
	if (r < 0) {
		step_error_set(ret_error, "schedule", r, "%s", "");
		services_free(services, n);
		return r;
	}

	if (!rotation->rotator) {
		struct rotator_config config = {
		    .nflog_group = rotation->options.nflog_group,
		    .honeypot_port = rotation->options.honeypot_port,
		    .instance_envelope = true,
		    .egress_nflog_group = rotation->options.egress_nflog_group,
		    .forward_guard4 = rotation->options.forward_guard4,
		    .forward_guard6 = rotation->options.forward_guard6,
		    .knock_nflog_group = rotation->options.knock_nflog_group,
		};

		r = rotator_new(&config, &rotation->rotator);
		if (r < 0) {
			step_error_set(ret_error, "nftables", r, "cannot open netlink");
			services_free(services, n);
			return r;
		}
	}

	r = collect_revoked_admissions(rotation, services, n);
	if (r >= 0)
		r = program(rotation, services, n, NULL, 0, ret_error);
	else
		step_error_set(ret_error, "revocation", r, "listing the admissions to remove");
	free(rotation->revoked_admissions);
	rotation->revoked_admissions = NULL;
	rotation->n_revoked_admissions = 0;
	if (r < 0) {
		services_free(services, n);
		return r;
	}
	revoke_clients(rotation, services, n, keep_connections);
	services_free(rotation->services, rotation->n_services);
	rotation->services = services;
	rotation->n_services = n;
	knock_services_refresh(rotation);
	/* only an allocation can fail: the previous bound stays, still a bound */
	r = decoy_blocks_set_limits(rotation->decoy_blocks, &limits);
	if (r < 0)
		log_warning("rotation: the new [Decoys] limits are not in force: %s", strerror(-r));
	else
		shared_ranges_recut(rotation);
	(void)arm_timer(rotation);
	return 0;
}

int rotation_add_instance(struct rotation *rotation, const char *name,
			  const struct rotator_addr *addresses, size_t n_addresses, uint8_t proto,
			  uint16_t port, const struct egress_rule *egress, size_t n_egress,
			  struct step_error *ret_error)
{
	struct enveloped_instance *grown, *e;
	int r;

	if (n_addresses == 0 || n_addresses > 2 || strlen(name) >= sizeof(e->name))
		return -EINVAL;
	grown = realloc(rotation->instances, (rotation->n_instances + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	rotation->instances = grown;
	e = &rotation->instances[rotation->n_instances];
	memset(e, 0, sizeof(*e));
	snprintf(e->name, sizeof(e->name), "%s", name);
	memcpy(e->addresses, addresses, n_addresses * sizeof(*addresses));
	e->n_addresses = n_addresses;
	e->proto = proto;
	e->port = port;
	e->egress = calloc(n_egress + 1, sizeof(*e->egress));
	if (!e->egress)
		return -ENOMEM;
	for (size_t i = 0; i < n_egress; i++) {
		const struct egress_rule *x = &egress[i];
		struct rotator_egress *y = &e->egress[i];

		y->proto = x->proto == POLICY_PROTO_UDP ? IPPROTO_UDP : IPPROTO_TCP;
		y->port_first = x->ports.first;
		y->port_last = x->ports.last;
		y->has_destination = x->has_destination;
		if (x->has_destination) {
			y->destination.family = x->destination.family;
			memcpy(&y->destination.in6, &x->destination.addr,
			       x->destination.family == AF_INET ? sizeof(struct in_addr)
								: sizeof(struct in6_addr));
			y->prefix_len = x->destination.prefix_len;
		}
	}
	e->n_egress = n_egress;
	rotation->n_instances++;
	/* A dead instance that had one of its addresses: the flows to it are
	 * the new one's now (it resets them itself), the address is live. */
	instances_forget_dead_with(rotation, addresses, n_addresses);

	/* Fail closed: no envelope in the kernel, no instance. */
	r = program(rotation, rotation->services, rotation->n_services, NULL, 0, ret_error);
	if (r < 0)
		instances_remove_named(rotation, name);
	return r;
}

int rotation_cut_instance(struct rotation *rotation, const char *name, struct step_error *ret_error)
{
	struct enveloped_instance *e = NULL;
	int r;

	for (size_t i = 0; i < rotation->n_instances && !e; i++)
		if (streq(rotation->instances[i].name, name))
			e = &rotation->instances[i];
	if (!e)
		return -ENOENT;
	if (e->cut)
		return 0;
	e->cut = true;
	r = program(rotation, rotation->services, rotation->n_services, NULL, 0, ret_error);
	if (r < 0)
		e->cut = false; /* the kernel has the previous state */
	return r;
}

int rotation_remove_instance(struct rotation *rotation, const char *name,
			     struct step_error *ret_error)
{
	const struct enveloped_instance *e = NULL;
	size_t open = 1;
	int r;

	for (size_t i = 0; i < rotation->n_instances && !e; i++)
		if (streq(rotation->instances[i].name, name) && !rotation->instances[i].dead)
			e = &rotation->instances[i];
	if (!e)
		return 0;
	/* No flow left to it (a drained instance, one that never served):
	 * gone at once, nothing to reset. */
	if (dead_flows(e, false, &open) < 0)
		open = 1;
	if (!open) {
		/* Gone from the registry either way: the next transaction drops it. */
		instances_remove_named(rotation, name);
		return program(rotation, rotation->services, rotation->n_services, NULL, 0,
			       ret_error);
	}
	r = program_cut(rotation, rotation->services, rotation->n_services, NULL, 0, name,
			ret_error);
	/* Dead in the registry either way: the next transaction has it so. */
	instances_mark_dead(rotation, name);
	return r;
}

static json_t *ports_json(const uint16_t *ports, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < n; i++)
		json_array_append_new(a, json_integer(ports[i]));
	return a;
}

/* The timed changes kept, oldest first, and the worst lateness since start. */
static json_t *changes_json(const struct rotation *rotation)
{
	json_t *recent = json_array();
	uint64_t n = rotation->n_changes;
	uint64_t first = n > ROTATION_CHANGES_KEPT ? n - ROTATION_CHANGES_KEPT : 0;

	for (uint64_t i = first; recent && i < n; i++) {
		const struct timed_change *c = &rotation->changes[i % ROTATION_CHANGES_KEPT];

		json_array_append_new(
		    recent, json_pack("{s:I, s:I, s:I, s:I}", "due_usec", (json_int_t)c->due_usec,
				      "fired_late_usec", (json_int_t)c->fired_late_usec,
				      "switch_late_usec", (json_int_t)c->switch_late_usec,
				      "late_usec", (json_int_t)c->late_usec));
	}
	return json_pack("{s:I, s:I, s:o}", "count", (json_int_t)n, "max_late_usec",
			 (json_int_t)rotation->max_late_usec, "recent", recent);
}

/* A per-client service's clients and where each one's door is now. */
static json_t *clients_json(const struct rotated_service *s)
{
	json_t *clients = json_array();

	for (size_t i = 0; clients && i < s->clients->n; i++) {
		const struct rotation_client *c = &s->clients->clients[i];
		int door = 0;

		for (int j = 0; j < ROTATION_CLIENT_CACHE; j++)
			if ((c->cache_valid & (1u << j)) && c->cache_epoch[j] == s->ports.epoch)
				door = c->cache_door[j];
		json_array_append_new(clients,
				      json_pack("{s:s, s:i}", "name", c->name, "door", door));
	}
	return json_pack("{s:s, s:s, s:I, s:o}", "client_auth",
			 s->policy->client_auth == POLICY_CLIENT_AUTH_KNOCK ? "knock" : "none",
			 "host_id", s->clients->host_id, "doors", (json_int_t)s->ports.n_doors,
			 "clients", clients);
}

json_t *rotation_status(const struct rotation *rotation)
{
	json_t *services = json_array(), *blocked = json_array();
	uint64_t now_usec = now(CLOCK_REALTIME);
	unsigned flags = rotation->rotator ? rotator_flags(rotation->rotator) : 0;

	for (size_t i = 0; services && i < rotation->n_services; i++) {
		const struct rotated_service *s = &rotation->services[i];

		json_t *o = json_pack(
		    "{s:s, s:I, s:i, s:i, s:I, s:I, s:o, s:I}", "name", s->policy->name, "epoch",
		    (json_int_t)s->schedule.epoch, "port", s->schedule.port, "grace_port",
		    s->schedule.grace_port, "boundary_usec", (json_int_t)s->schedule.boundary_usec,
		    "next_boundary_usec", (json_int_t)s->schedule.next_boundary_usec, "decoys",
		    ports_json(s->schedule.decoys, s->schedule.n_decoys), "decoy_hits",
		    (json_int_t)s->decoy_hits);

		if (o && s->clients)
			json_object_update_new(o, clients_json(s));
		json_array_append_new(services, o);
	}
	for (size_t i = 0; blocked && i < rotation->n_blocked; i++) {
		const struct blocked_source *b = &rotation->blocked[i];

		if (b->until_usec <= now_usec)
			continue;
		json_array_append_new(blocked, json_pack("{s:s, s:s, s:I, s:i}", "address",
							 b->address, "service", b->service,
							 "until_usec", (json_int_t)b->until_usec,
							 "strike", (int)b->strike));
	}
	json_t *o = json_pack(
	    "{s:o, s:o, s:s?, s:o, s:o, s:{s:b, s:b, s:I, s:I, s:I, s:I}}", "services", services,
	    "blocked", blocked, "host_id", rotation->host_id[0] ? rotation->host_id : NULL,
	    "decoy_blocking", decoy_blocks_status(rotation->decoy_blocks, now_usec), "changes",
	    changes_json(rotation), "table", "persist", (flags & ROTATOR_F_PERSIST) != 0, "adopted",
	    (flags & ROTATOR_F_ADOPTED) != 0, "transactions", (json_int_t)rotation->transactions,
	    "bank_switches", (json_int_t)rotation->switches, "failures",
	    (json_int_t)rotation->failures, "last_apply_usec",
	    (json_int_t)rotation->last_apply_usec);

	if (o && rotation->knocks)
		json_object_set_new(o, "knock", knock_listener_status(rotation->knocks));
	return o;
}

static struct rotated_service *client_service(const struct rotation *rotation, const char *service)
{
	for (size_t i = 0; service && i < rotation->n_services; i++)
		if (rotation->services[i].clients &&
		    streq(rotation->services[i].policy->name, service))
			return &rotation->services[i];
	return NULL;
}

int rotation_client_key(const struct rotation *rotation, const char *service, const char *client,
			const uint8_t **ret_key, size_t *ret_len)
{
	struct rotated_service *s = client_service(rotation, service);
	const struct rotation_client *c = s ? rotation_clients_find(s->clients, client) : NULL;

	if (!c)
		return -ENOENT;
	*ret_key = c->key;
	*ret_len = c->key_len;
	return 0;
}

/* A client's door or knock port of an epoch the agent computed: the current
 * one's neighbours (previous, next) included. */
static int client_port(const struct rotation *rotation, const char *service, const char *client,
		       uint64_t epoch, bool knock, uint16_t *ret_port)
{
	struct rotated_service *s = client_service(rotation, service);
	const struct rotation_client *c = s ? rotation_clients_find(s->clients, client) : NULL;

	if (!c)
		return -ENOENT;
	for (int j = 0; j < ROTATION_CLIENT_CACHE; j++)
		if ((c->cache_valid & (1u << j)) && c->cache_epoch[j] == epoch) {
			*ret_port = knock ? c->cache_knock[j] : c->cache_door[j];
			return 0;
		}
	return -ERANGE;
}

int rotation_client_door(const struct rotation *rotation, const char *service, const char *client,
			 uint64_t epoch, uint16_t *ret_door)
{
	return client_port(rotation, service, client, epoch, false, ret_door);
}

int rotation_client_knock_port(const struct rotation *rotation, const char *service,
			       const char *client, uint64_t epoch, uint16_t *ret_port)
{
	return client_port(rotation, service, client, epoch, true, ret_port);
}

int rotation_client_service(const struct rotation *rotation, const char *service,
			    struct rotation_client_service *ret)
{
	struct rotated_service *s = client_service(rotation, service);

	if (!s)
		return -ENOENT;
	*ret = (struct rotation_client_service){
	    .host_id = s->clients->host_id,
	    .knock = s->policy->client_auth == POLICY_CLIENT_AUTH_KNOCK,
	    .knock_window_usec = s->policy->knock_window_usec,
	    .knock_rate_limit = s->policy->knock_rate_limit,
	    .knock_rate_interval_usec = s->policy->knock_rate_interval_usec,
	    .interval_usec = s->policy->interval_usec,
	    .grace_usec = s->policy->grace_usec,
	    .proto = proto_of(s->policy),
	    .epoch = s->ports.epoch,
	    .in_grace = s->ports.grace,
	    .n_clients = s->clients->n,
	};
	return 0;
}

const char *rotation_host_id(const struct rotation *rotation)
{
	return rotation->host_id[0] ? rotation->host_id : NULL;
}

void rotation_get_metrics(const struct rotation *rotation, struct rotation_metrics *ret)
{
	uint64_t now_usec = now(CLOCK_REALTIME);

	*ret = (struct rotation_metrics){
	    .transactions = rotation->transactions,
	    .switches = rotation->switches,
	    .failures = rotation->failures,
	    .timed_changes = rotation->n_changes,
	    .switch_durations = &rotation->switch_durations,
	    .staging_durations = &rotation->staging_durations,
	};
	for (size_t i = 0; i < rotation->n_blocked; i++)
		if (rotation->blocked[i].until_usec > now_usec)
			ret->blocked_now++;
}

int rotation_unblock(struct rotation *rotation, const char *address, struct step_error *ret_error)
{
	struct rotator_addr addr = {0};
	char canonical[INET6_ADDRSTRLEN];
	int r;

	if (inet_pton(AF_INET, address, &addr.in) == 1)
		addr.family = AF_INET;
	else if (inet_pton(AF_INET6, address, &addr.in6) == 1)
		addr.family = AF_INET6;
	else {
		step_error_set(ret_error, "unblock", 0, "'%s' is not an IPv4 or IPv6 address",
			       address);
		return -EINVAL;
	}
	if (!rotation->rotator) {
		step_error_set(ret_error, "unblock", 0, "no table is programmed");
		return -ENOENT;
	}
	r = program(rotation, rotation->services, rotation->n_services, &addr, 1, ret_error);
	if (r < 0)
		return r;
	inet_ntop(addr.family, &addr.in6, canonical, sizeof(canonical));
	for (size_t i = 0; i < rotation->n_blocked; i++)
		if (streq(rotation->blocked[i].address, canonical))
			rotation->blocked[i].until_usec = 0;
	decoy_blocks_forget(rotation->decoy_blocks, &addr);
	return 0;
}

static bool parse_source(const char *address, struct rotator_addr *ret)
{
	struct rotator_addr addr = {0};

	if (inet_pton(AF_INET, address, &addr.in) == 1)
		addr.family = AF_INET;
	else if (inet_pton(AF_INET6, address, &addr.in6) == 1)
		addr.family = AF_INET6;
	else
		return false;
	*ret = addr;
	return true;
}

/* Whether a decoy of this host blocked the source and the block runs on. */
static bool own_block_runs(const struct rotation *rotation, const char *canonical,
			   uint64_t now_usec)
{
	for (size_t i = 0; i < rotation->n_blocked; i++)
		if (streq(rotation->blocked[i].address, canonical) &&
		    rotation->blocked[i].service[0] && rotation->blocked[i].until_usec > now_usec)
			return true;
	return false;
}

/* "ADDRESS" or "ADDRESS/LENGTH": the address, and the prefix length (the
 * family's full length for a single address). */
static bool parse_source_or_range(const char *text, struct rotator_addr *ret,
				  unsigned *ret_prefix_len)
{
	char copy[64];
	const char *slash = strchr(text, '/');
	unsigned bits, len = 0;

	if (strlen(text) >= sizeof(copy))
		return false;
	memcpy(copy, text, strlen(text) + 1);
	if (slash)
		copy[slash - text] = '\0';
	if (!parse_source(copy, ret))
		return false;
	bits = ret->family == AF_INET ? 32 : 128;
	if (!slash) {
		*ret_prefix_len = bits;
		return true;
	}
	if (!slash[1] || strlen(slash + 1) > 3 ||
	    strspn(slash + 1, "0123456789") != strlen(slash + 1))
		return false;
	for (const char *p = slash + 1; *p; p++)
		len = len * 10 + (unsigned)(*p - '0');
	if (len > bits)
		return false;
	*ret_prefix_len = len;
	return true;
}

/* Whether one NeverBlock= entry holds the whole range, or some of it. */
static bool cidr_holds_range(const struct cidr *c, const struct rotator_addr *a, unsigned len)
{
	return c->family == a->family && c->prefix_len <= len &&
	       policy_cidr_contains(c, a->family, &a->in6);
}

static bool cidr_meets_range(const struct cidr *c, const struct rotator_addr *a, unsigned len)
{
	struct rotator_addr first = {.family = c->family};

	if (c->family != a->family)
		return false;
	if (c->prefix_len <= len)
		return policy_cidr_contains(c, a->family, &a->in6);
	/* the NeverBlock= prefix is the narrower: is its address in the range? */
	memcpy(&first.in6, &c->addr, a->family == AF_INET ? 4 : 16);
	return policy_cidr_contains(
	    &(struct cidr){.family = a->family, .addr.v6 = a->in6, .prefix_len = len}, a->family,
	    &first.in6);
}

/* The global file's NeverBlock= as ranges the rotator cuts out (malloc'ed). */
static struct rotator_range *never_ranges(const struct rotation *rotation, size_t *ret_n)
{
	size_t n = 0;
	const struct cidr *never = decoy_blocks_never_block_list(rotation->decoy_blocks, &n);
	struct rotator_range *out = calloc(n + 1, sizeof(*out));

	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		out[i] = (struct rotator_range){.addr.family = never[i].family,
						.prefix_len = never[i].prefix_len};
		memcpy(&out[i].addr.in6, &never[i].addr, never[i].family == AF_INET ? 4 : 16);
	}
	*ret_n = n;
	return out;
}

void rotation_shared_ranges(const struct rotation *rotation, size_t *ret_ranges,
			    size_t *ret_segments)
{
	*ret_ranges = *ret_segments = 0;
	if (rotation->rotator)
		rotator_ranges_count(rotation->rotator, ret_ranges, ret_segments);
}

/* NeverBlock= changed: the ranges in force are cut around the new list. */
static void shared_ranges_recut(struct rotation *rotation)
{
	size_t n_ranges = 0, n_segments = 0, n_never = 0;
	_cleanup_free_ struct rotator_range *never = NULL;
	struct step_error error = {0};
	char reason[STEP_ERROR_FORMAT_MAX];
	int r;

	rotation_shared_ranges(rotation, &n_ranges, &n_segments);
	if (n_ranges == 0)
		return;
	never = never_ranges(rotation, &n_never);
	r = never
		? rotator_block_ranges(rotation->rotator, NULL, 0, NULL, 0, never, n_never, &error)
		: -ENOMEM;
	if (r < 0)
		log_warning("rotation: blocked ranges not cut around the new NeverBlock=: %s",
			    step_error_reason(&error, r, reason, sizeof(reason)));
}

int rotation_shared_blocks(struct rotation *rotation, const struct rotation_shared_ban *bans,
			   size_t n_bans, const char *const *unbans, size_t n_unbans,
			   struct rotation_shared_result *ret_result, struct step_error *ret_error)
{
	_cleanup_free_ struct rotator_blocked *block = calloc(n_bans + 1, sizeof(*block));
	_cleanup_free_ struct rotator_addr *unblock = calloc(n_unbans + 1, sizeof(*unblock));
	_cleanup_free_ struct rotator_range *range_ban = calloc(n_bans + 1, sizeof(*range_ban));
	_cleanup_free_ struct rotator_range *range_unban =
	    calloc(n_unbans + 1, sizeof(*range_unban));
	_cleanup_free_ struct rotator_range *never = NULL;
	struct rotation_shared_result result = {0};
	uint64_t now_usec = now(CLOCK_REALTIME);
	size_t n_block = 0, n_unblock = 0, n_range_ban = 0, n_range_unban = 0, n_never = 0;
	const struct cidr *never_list;
	size_t n_never_list = 0;
	int r;

	if (!block || !unblock || !range_ban || !range_unban)
		return -ENOMEM;
	if (!rotation->rotator) {
		step_error_set(ret_error, "shared blocks", 0, "no table is programmed");
		return -ENOENT;
	}
	never_list = decoy_blocks_never_block_list(rotation->decoy_blocks, &n_never_list);
	for (size_t i = 0; i < n_bans; i++) {
		char canonical[INET6_ADDRSTRLEN];
		struct rotator_addr addr;
		unsigned len;

		if (!parse_source_or_range(bans[i].address, &addr, &len)) {
			result.invalid++;
			continue;
		}
		if (len < (addr.family == AF_INET ? 32u : 128u)) {
			bool whole = false, part = false;

			for (size_t k = 0; k < n_never_list; k++) {
				whole |= cidr_holds_range(&never_list[k], &addr, len);
				part |= cidr_meets_range(&never_list[k], &addr, len);
			}
			if (whole)
				result.never_block++;
			else if (rotation->options.monitor)
				result.simulated++;
			else {
				/* NeverBlock= addresses inside are cut out of it */
				result.never_block += part;
				range_ban[n_range_ban++] = (struct rotator_range){
				    .addr = addr,
				    .prefix_len = len,
				    .expires_in_ms = MAX(bans[i].block_usec / USEC_PER_MSEC, 1)};
			}
			continue;
		}
		inet_ntop(addr.family, &addr.in6, canonical, sizeof(canonical));
		if (decoy_blocks_never_blocks(rotation->decoy_blocks, &addr))
			result.never_block++;
		else if (own_block_runs(rotation, canonical, now_usec + bans[i].block_usec))
			result.kept_own++; /* a new timeout would shorten it */
		else if (rotation->options.monitor)
			result.simulated++;
		else
			block[n_block++] = (struct rotator_blocked){
			    .source = addr,
			    .expires_in_ms = MAX(bans[i].block_usec / USEC_PER_MSEC, 1)};
	}
	for (size_t i = 0; i < n_unbans; i++) {
		char canonical[INET6_ADDRSTRLEN];
		struct rotator_addr addr;
		unsigned len;

		if (!parse_source_or_range(unbans[i], &addr, &len)) {
			result.invalid++;
			continue;
		}
		if (len < (addr.family == AF_INET ? 32u : 128u)) {
			if (!rotation->options.monitor)
				range_unban[n_range_unban++] =
				    (struct rotator_range){.addr = addr, .prefix_len = len};
			continue;
		}
		inet_ntop(addr.family, &addr.in6, canonical, sizeof(canonical));
		if (own_block_runs(rotation, canonical, now_usec))
			result.kept_own++;
		else if (!rotation->options.monitor)
			unblock[n_unblock++] = addr;
	}
	if (n_block > 0) {
		r = rotator_block(rotation->rotator, block, n_block, ret_error);
		if (r < 0)
			return r;
		for (size_t i = 0; i < n_block; i++) {
			char canonical[INET6_ADDRSTRLEN];
			uint64_t until = now_usec + block[i].expires_in_ms * USEC_PER_MSEC;

			inet_ntop(block[i].source.family, &block[i].source.in6, canonical,
				  sizeof(canonical));
			remember_blocked(rotation, canonical, NULL, until, 0);
		}
		result.blocked = (unsigned)n_block;
	}
	if (n_unblock > 0) {
		r = program(rotation, rotation->services, rotation->n_services, unblock, n_unblock,
			    ret_error);
		if (r < 0)
			return r;
		for (size_t i = 0; i < n_unblock; i++) {
			char canonical[INET6_ADDRSTRLEN];

			inet_ntop(unblock[i].family, &unblock[i].in6, canonical, sizeof(canonical));
			for (size_t j = 0; j < rotation->n_blocked; j++)
				if (streq(rotation->blocked[j].address, canonical))
					rotation->blocked[j].until_usec = 0;
		}
		result.unblocked = (unsigned)n_unblock;
	}
	if (n_range_ban > 0 || n_range_unban > 0) {
		/* the ranges' bans and unbans in one transaction (unbans first) */
		never = never_ranges(rotation, &n_never);
		if (!never)
			return -ENOMEM;
		r = rotator_block_ranges(rotation->rotator, range_ban, n_range_ban, range_unban,
					 n_range_unban, never, n_never, ret_error);
		if (r < 0)
			return r;
		result.ranges_blocked = (unsigned)n_range_ban;
		result.ranges_unblocked = (unsigned)n_range_unban;
	}
	*ret_result = result;
	return 0;
}

void rotation_free(struct rotation *rotation)
{
	if (!rotation)
		return;
	if (rotation->rotator && rotation->options.remove_on_stop)
		(void)rotator_remove(rotation->rotator, NULL);
	rotator_free(rotation->rotator);
	sd_event_source_disable_unref(rotation->nflog_source);
	rotator_nflog_free(rotation->nflog);
	sd_event_source_disable_unref(rotation->egress_source);
	rotator_nflog_free(rotation->egress_log);
	sd_event_source_disable_unref(rotation->honeypot_source);
	rotator_honeypot_free(rotation->honeypot);
	sd_event_source_disable_unref(rotation->timer);
	sd_event_source_disable_unref(rotation->stage_timer);
	sd_event_source_disable_unref(rotation->dead_timer);
	sd_event_source_disable_unref(rotation->clock_watch);
	if (rotation->clock_fd >= 0)
		close(rotation->clock_fd);
	knock_listener_free(rotation->knocks);
	free(rotation->gated);
	services_free(rotation->services, rotation->n_services);
	schedule_mac_free(rotation->mac);
	decoy_blocks_free(rotation->decoy_blocks);
	free(rotation->blocked);
	free(rotation->instance_backends);
	for (size_t i = 0; i < rotation->n_instances; i++)
		free(rotation->instances[i].egress);
	free(rotation->instances);
	sd_event_unref(rotation->event);
	free(rotation);
}
