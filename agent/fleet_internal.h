/* SPDX-License-Identifier: MIT */
/* Shared between fleet.c (the managed services and their instances) and
 * response.c (replacement, quarantine, rejuvenation). Not for other files. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

struct quarantine_job;

#include "fleet.h"
#include "instance.h"
#include "netdev.h"
#include "policy.h"
#include "seccomp_policy.h"
#include "snapshot.h"

#define USEC_PER_SEC 1000000ull
/* An instance that dies sooner than this after its start counts as a crash
 * loop: the next start waits, doubling up to the cap. */
#define QUICK_FAILURE_USEC (10 * USEC_PER_SEC)
#define BACKOFF_FIRST_USEC (250 * 1000ull)
#define BACKOFF_MAX_USEC (30 * USEC_PER_SEC)

enum disposal {
	DISPOSE_KILL,	    /* kill and clean up */
	DISPOSE_QUARANTINE, /* freeze, cut off, keep for forensics */
};

/* StandbyInstances= (standby.c): a fresh, verified instance that waits,
 * healthy and unrouted (no DNAT leads to it), for the next replacement. */
struct standby {
	struct instance *instance;
	uint64_t deadline_usec; /* CLOCK_MONOTONIC: its MaxLifetime= (with jitter); 0 = none */
	bool retiring;		/* past it: goes once a fresh standby is healthy */
};

struct managed_service {
	struct fleet *fleet;
	char name[POLICY_NAME_MAX + 1];
	const struct policy *policy;
	char *policy_text; /* the policy as JSON, to notice a change on reload */
	struct snapshot *snapshot;
	struct seccomp_program *seccomp;
	int exec_fd; /* sealed memfd of the verified binary, for every launch */
	uid_t uid;
	gid_t gid;
	char failed[320];	  /* why the service cannot run; empty when it can */
	struct instance *current; /* serving, or the first one starting */
	struct instance *next;	  /* a replacement starting */
	bool routed;		  /* the public port leads to current */
	sd_event_source *restart_timer;
	unsigned quick_failures;
	struct netdev_address previous[2];
	size_t n_previous;

	/* A replacement under way (response.c): what happens to current once
	 * next is healthy and routed. */
	bool replacing;
	uint64_t detected_usec; /* CLOCK_MONOTONIC when the signal arrived */
	enum disposal disposal;
	char reason[64];
	json_t *evidence;
	sd_event_source *replacement_deadline;
	sd_event_source *lifetime_timer;
	uint64_t *replacements; /* monotonic times of recent replacements (storm bound) */
	char egress_instance[INSTANCE_ID_MAX]; /* whose egress drops are counted */
	unsigned egress_drops;
	size_t n_replacements;
	bool from_standby; /* the replacement under way is a promoted standby */

	/* StandbyInstances= (standby.c); one more than the policy's most while
	 * a retiring standby waits for its successor to be healthy. */
	struct standby standbys[POLICY_STANDBY_MAX + 1];
	size_t n_standbys;
	sd_event_source *standby_timer; /* fill, renew, or retry after a failure */
	unsigned standby_failures;	/* consecutive: the retry backs off */
};

/* A frozen instance kept for forensics, and its evidence: saved by one
 * process at a time (quarantine_job.h), in the order they were quarantined. */
struct quarantined_instance {
	char service[POLICY_NAME_MAX + 1];
	struct instance *instance;
	struct quarantine_job *job; /* its save is running */
	bool saved;		    /* its save is over (kept, or failed: audited) */
	char reason[64];
	json_t *evidence; /* until the save's record is written */
	uint64_t max_bytes;
};

struct disposal_job;

struct fleet {
	sd_event *event;
	struct disposal_job *disposals; /* instances disposed of on the next loop turn */
	char *state_dir;
	struct quarantined_instance *quarantined;
	size_t n_quarantined;
	struct rotation *rotation;
	struct cgroup_root *cgroups;
	struct fleet_hooks hooks;
	struct managed_service **services;
	size_t n_services;
	struct instance_ids *ids;      /* SERVICE-N: N never used twice on this host */
	struct uid_ranges *uid_ranges; /* each instance's host ids */
};

uint64_t monotonic_usec(void);
void fleet_audit(struct fleet *fleet, const char *type, json_t *fields, bool sync);
struct managed_service *service_of(struct fleet *fleet, const struct instance *instance);
/* Route the public port to instance; cut (may be NULL) loses its envelope in
 * the same transaction. */
int route_to(struct managed_service *svc, struct instance *instance, struct instance *cut);
/* Remove its envelope from the table, then destroy it. */
void fleet_destroy_instance(struct fleet *fleet, struct instance *instance);
void stop_instance(struct managed_service *svc, struct instance *instance, const char *reason);
void start_instance(struct managed_service *svc);
/* Start one instance of the service (id, addresses, envelope, process);
 * role ("instance", "standby") goes into its instance-start record. On
 * failure it is audited (instance-start-failed) and nothing remains. */
int launch_instance(struct managed_service *svc, const char *role, struct instance **ret);
/* CLOCK_MONOTONIC when an instance started now reaches MaxLifetime= (less a
 * random jitter); 0 without MaxLifetime=. */
uint64_t lifetime_deadline(const struct managed_service *svc, const struct instance *instance);
void schedule_restart(struct managed_service *svc);

/* standby.c */
/* Bring the standbys to StandbyInstances= (and renew those past MaxLifetime=)
 * after delay_usec, once the service serves and no replacement is under way. */
void standby_schedule(struct managed_service *svc, uint64_t delay_usec);
/* A standby died (already forgotten and destroyed): another one starts, after
 * a back-off when they keep dying young. */
void standby_exited(struct managed_service *svc, bool quick);
/* Index of instance among the standbys, or -1. */
ssize_t standby_index(const struct managed_service *svc, const struct instance *instance);
/* Whether standby_take() would give one. */
bool standby_available(const struct managed_service *svc);
/* A healthy standby, taken out of the list (fresh ones before retiring
 * ones), or NULL. */
struct instance *standby_take(struct managed_service *svc);
/* Take instance out of the list (the caller disposes of it); refill later. */
void standby_forget(struct managed_service *svc, struct instance *instance);
/* Stop every standby (service stopped, changed, failed, in a storm). */
void standby_stop_all(struct managed_service *svc, const char *reason);
/* A standby became healthy: retiring ones whose successors are ready go. */
void standby_healthy(struct managed_service *svc);
/* {"target": N, "ready": [ids], "starting": [ids], "retiring": [ids]} */
json_t *standby_json(const struct managed_service *svc);

/* response.c */

/* At detection, before anything else (its record included): the instance
 * frozen (cgroup.freeze requested), cut off (out of the table's live and ingress sets,
 * one transaction), the freeze confirmed; a freeze that fails kills it.
 * Recorded as instance-contained with the times since detected_usec. Once
 * per instance. */
void response_contain(struct managed_service *svc, struct instance *instance, const char *reason,
		      uint64_t detected_usec);
/* Replace an instance. RESPONSE_COMPROMISED: contained first
 * (response_contain). RESPONSE_RECORD_SIGNAL: the signal's own record
 * (type = reason, with the evidence) is written before the response's. Then
 * a healthy standby
 * takes the port in one transaction, or else a fresh instance is started;
 * detected_usec: when the signal arrived (CLOCK_MONOTONIC; 0 = now), for the
 * detection-to-replacement time in the instance-replaced record;
 * once it is healthy, one transaction routes the public port to it, then the
 * old one is disposed of. evidence is stolen (may be NULL). */
enum {
	RESPONSE_COMPROMISED = 1 << 0,	 /* contain first */
	RESPONSE_RECORD_SIGNAL = 1 << 1, /* write the signal's record (type reason) first */
	/* planned (MaxLifetime=): outside the storm bound, which is for
	 * compromises and crashes; a planned replacement never takes a service
	 * down */
	RESPONSE_PLANNED = 1 << 2,
};
void response_replace(struct managed_service *svc, struct instance *instance, const char *reason,
		      json_t *evidence, enum disposal disposal, uint64_t detected_usec,
		      unsigned flags);
/* next became healthy: route to it and dispose of the old one. */
void response_replacement_healthy(struct managed_service *svc);
/* Arm MaxLifetime= (with jitter) for the serving instance. */
void response_arm_lifetime(struct managed_service *svc);
/* The service's response state goes (service removed or stopped). */
void response_service_done(struct managed_service *svc);
/* Quarantined instances are freed with the fleet. */
void response_fleet_done(struct fleet *fleet);

/* response_quarantine.c: quarantine_instance() freezes (or kills when it
 * cannot) and queues the evidence save; the rest remove a kept instance (its
 * save cancelled if running) and describe it. */
void response_quarantine_instance(struct fleet *fleet, struct managed_service *svc,
				  struct instance *instance, const char *reason, json_t *evidence);
void response_quarantine_remove(struct fleet *fleet, size_t index);
void response_quarantine_clear(struct fleet *fleet); /* at the fleet's end: saves cancelled */
json_t *response_quarantined_json(const struct quarantined_instance *q);
