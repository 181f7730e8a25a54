/* SPDX-License-Identifier: MIT */
/* One running instance of a managed service: its envelope (envelope.c), its
 * link to the host (netdev.c), its health checks, and supervision by pidfd on
 * the agent's event loop. The service level above (fleet.c) decides when to
 * start, replace and route to instances. */
#pragma once

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "cgroup.h"
#include "netdev.h"
#include "policy.h"
#include "seccomp_policy.h"
#include "snapshot.h"
#include "uid_range.h"

#define INSTANCE_ID_MAX 48

enum instance_state {
	INSTANCE_STARTING, /* running, not yet healthy */
	INSTANCE_HEALTHY,
	INSTANCE_UNHEALTHY, /* HealthFailures= consecutive failures */
	INSTANCE_EXITED,
	INSTANCE_QUARANTINED, /* frozen, cut off, kept for forensics */
	INSTANCE_CONTAINED,   /* frozen at detection, waiting to be disposed of */
};

struct instance;

/* One summary record per instance, kind of signal and interval. */
#define INSTANCE_SIGNAL_INTERVAL_USEC (1000 * 1000)

struct instance_hooks {
	void (*on_healthy)(struct instance *instance, void *userdata);
	void (*on_unhealthy)(struct instance *instance, const char *reason, void *userdata);
	/* A signal of compromise; evidence is a new JSON object (stolen). kind:
	 * "seccomp-violation" (answered EPERM already), "drift". The hook must not
	 * destroy the instance before it returns (respond later, e.g. deferred). */
	void (*on_signal)(struct instance *instance, const char *kind, json_t *evidence,
			  void *userdata);
	/* Signals after the first of their kind, counted over an interval
	 * (signal_tally.h): count of them and the interval's first evidence
	 * (borrowed). Called on the loop, and once more as the instance ends. */
	void (*on_signals_counted)(const char *service, const char *instance, const char *kind,
				   uint64_t count, json_t *first_evidence, uint64_t interval_usec,
				   void *userdata);
	/* pid 1 of the instance exited; the instance is cleaned up already. */
	void (*on_exit)(struct instance *instance, const siginfo_t *info, void *userdata);
	void *userdata;
};

struct instance_spec {
	const char *id;
	const struct policy *policy;
	struct snapshot *snapshot; /* verified; checked again at every start (snapshot_recheck) */
	int exec_fd; /* the service binary as a sealed memfd (snapshot_open_exec), made once
			per policy load: sealed, so every launch runs the verified bytes */
	const struct seccomp_program *seccomp; /* compiled for this policy load */
	const struct cgroup_root *cgroups;
	const char *host_ifname;
	struct netdev_address addresses[2];
	size_t n_addresses;
	char *const *writable; /* Writable= paths, for drift */
	size_t n_writable;
	uid_t uid; /* resolved from User=/Group= in the snapshot */
	gid_t gid;
	struct uid_ranges *uid_ranges; /* the instance takes its host ids here */
};

/* Verify and open the binary, spawn the envelope, set up the link, start
 * health checks. Fails closed: on any error nothing runs and nothing
 * remains; ret_step/ret_detail say what failed. */
int instance_start(sd_event *event, const struct instance_spec *spec,
		   const struct instance_hooks *hooks, struct instance **ret_instance,
		   char ret_step[32], char ret_detail[320]);

/* Kill every process of the instance and remove everything it had: cgroups,
 * writable layer, link. Then free. NULL is fine. */
void instance_destroy(struct instance *instance);

const char *instance_id(const struct instance *instance);
/* The host end of its veth link ("mtdiN"): what its packets come in on. */
const char *instance_link(const struct instance *instance);
const char *instance_service(const struct instance *instance);
enum instance_state instance_state(const struct instance *instance);
pid_t instance_pid(const struct instance *instance);
const struct netdev_address *instance_addresses(const struct instance *instance, size_t *ret_n);
uint64_t instance_started_usec(const struct instance *instance); /* CLOCK_MONOTONIC */
const char *instance_state_name(enum instance_state state);

/* Containment at detection, the first thing done: the freeze requested
 * (cgroup.freeze written, not waited for), health probes stopped, the state
 * CONTAINED. Idempotent. On failure: kill it (instance_kill) rather than
 * leave it running. */
int instance_freeze_begin(struct instance *instance);
/* The freeze requested (if not yet) and waited for until the kernel reports
 * the whole tree frozen. The caller cuts the network next (its envelope out
 * of the table). Idempotent. */
int instance_contain(struct instance *instance);
/* The owner's notes on the containment of this instance (response.c): when
 * each step was done (CLOCK_MONOTONIC, 0 = not yet) and how it went, so it
 * is done once and recorded once. */
struct instance_containment {
	char reason[32];
	char signal[32]; /* a signal's record still to write (its type), "" when none */
	uint64_t detected_usec, freeze_requested_usec, cut_usec;
	int freeze_error, cut_error; /* -errno, 0 */
	char cut_detail[160];
	bool recorded;
};
struct instance_containment *instance_containment(struct instance *instance);
/* SIGKILL to every process (cgroup.kill); the exit is reported as usual. */
int instance_kill(struct instance *instance);

/* Quarantine: freeze every process (unless contained already), stop
 * supervising health, cut the network (the link goes, so every connection of
 * the instance ends). */
int instance_isolate_and_freeze(struct instance *instance);

/* Drift scan on demand: what the instance's writable layer holds that its
 * policy does not allow, as [{kind, path}]. */
int instance_scan_drift(struct instance *instance, json_t **ret_findings);

/* For the evidence copy: the writable layer (a tmpfs with upper/) and the
 * instance's cgroup2 directory. */
int instance_upper_fd(const struct instance *instance);
const char *instance_cgroup_path(const struct instance *instance);

/* {id, service, pid, addresses, age_usec, state, health, link, host_ids} */
json_t *instance_to_json(const struct instance *instance);

/* "exited 3", "killed by SIGSYS", "dumped by SIGSYS" */
void instance_format_exit(const siginfo_t *info, char *buffer, size_t size);
