/* SPDX-License-Identifier: MIT */
/* Per-instance cgroups on unified (cgroup2 only) and hybrid (cgroup v1
 * controllers + a controller-less cgroup2) hosts.
 *
 * Every instance gets one cgroup2 directory, AGENT/NAME/ID, where AGENT is
 * the agent's own cgroup (from /proc/self/cgroup) and NAME the instances'
 * parent (e.g. "instances"). The child is cloned straight into it
 * (CLONE_INTO_CGROUP) and cgroup.freeze / cgroup.kill act on it: both are core
 * cgroup2 files, present without any controller, so they work on hybrid hosts
 * too. The limits go where the controller lives:
 *
 *   unified: memory.max, pids.max, cpu.max in the same cgroup2 directory;
 *   hybrid:  memory.limit_in_bytes, pids.max, cpu.cfs_{quota,period}_us in
 *            V1MOUNT/AGENT_V1/NAME/ID of each v1 hierarchy; the child moves
 *            itself into them, first thing after clone, by writing "0" to
 *            their "tasks" files (cgroup_instance_join_v1_self). Moving
 *            another process (its pid into cgroup.procs) write-locks the
 *            kernel's global threadgroup rwsem and waits for an RCU grace
 *            period, 5 to 14 ms measured here; a thread moving itself takes
 *            no such lock (kernel/cgroup/cgroup.c, cgroup_procs_write_start:
 *            "pid=0 && threadgroup=false"), and the child is single-threaded,
 *            so moving its thread moves the process.
 *
 * Unified hosts and "no internal processes": controllers can be enabled for
 * NAME only if AGENT has no processes of its own once subtree_control is
 * written. cgroup_root_open() therefore moves every process of AGENT (the
 * agent itself) into the leaf AGENT/agent first, then enables +memory +pids
 * +cpu in AGENT/cgroup.subtree_control and in AGENT/NAME/cgroup.subtree_control.
 * Under systemd that is what Delegate=yes allows (systemd 252 has no
 * DelegateSubgroup=). In the root cgroup (a test outside systemd) nothing
 * moves: the root is exempt from the rule. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

enum cgroup_controller {
	CGROUP_MEMORY,
	CGROUP_PIDS,
	CGROUP_CPU,
	_CGROUP_CONTROLLER_MAX,
};

const char *cgroup_controller_name(enum cgroup_controller c);

/* Where the hierarchies are and where the agent sits in them. Absolute
 * directory paths; NULL where there is none. */
struct cgroup_layout {
	char *unified;				  /* AGENT's directory in the cgroup2 mount */
	bool unified_has[_CGROUP_CONTROLLER_MAX]; /* controller available in cgroup2 */
	char *v1[_CGROUP_CONTROLLER_MAX];	  /* AGENT's directory in each v1 hierarchy */
};

void cgroup_layout_done(struct cgroup_layout *l);

/* Pure: the layout from the text of /proc/self/mountinfo, /proc/self/cgroup
 * and the cgroup.controllers file of the agent's cgroup2 directory (NULL or ""
 * for none). -ENOENT without a cgroup2 mount, -EINVAL on malformed text. A
 * controller present in cgroup2 wins over a v1 mount of it (on a hybrid host
 * it cannot be both). */
int cgroup_layout_parse(const char *mountinfo, const char *self_cgroup,
			const char *unified_controllers, struct cgroup_layout *ret);

/* The layout of the running process (reads /proc/self/mountinfo,
 * /proc/self/cgroup and cgroup.controllers). */
int cgroup_layout_load(struct cgroup_layout *ret);

struct cgroup_root;

/* Prepare AGENT/name (mkdir in every hierarchy, unified delegation as above).
 * Idempotent: an existing directory is reused. */
int cgroup_root_open(const char *name, struct cgroup_root **ret);
/* Same with a layout the caller loaded (takes its contents). */
int cgroup_root_open_layout(struct cgroup_layout *layout, const char *name,
			    struct cgroup_root **ret);
bool cgroup_root_is_hybrid(const struct cgroup_root *r);
/* True when the limit can be set at all (controller somewhere). */
bool cgroup_root_has(const struct cgroup_root *r, enum cgroup_controller c);
const char *cgroup_root_path(const struct cgroup_root *r); /* cgroup2 dir */
/* AGENT/name in the v1 hierarchy of a controller, or NULL (unified hosts). */
const char *cgroup_root_v1_path(const struct cgroup_root *r, enum cgroup_controller c);

/* Kill and remove every instance cgroup left under AGENT/name (an agent that
 * was killed leaves its instances running): cgroup_purge.c. Returns how many
 * were removed, or a negative errno if one could not be. */
int cgroup_root_purge(const struct cgroup_root *r, uint64_t timeout_usec);

/* rmdir AGENT/name in every hierarchy (must be empty of instances). */
int cgroup_root_remove(struct cgroup_root *r);
void cgroup_root_free(struct cgroup_root *r);

struct cgroup_limits {
	uint64_t memory_max;	    /* bytes, 0 = unlimited */
	uint64_t tasks_max;	    /* 0 = unlimited */
	unsigned cpu_quota_percent; /* of one CPU, 0 = unlimited */
};

struct cgroup_instance;

/* mkdir NAME/id in cgroup2 (and in each v1 hierarchy a limit needs) and
 * write the limits. On failure nothing stays behind and *ret_step names the
 * step ("cgroup create", "cgroup memory", "cgroup pids", "cgroup cpu"); an
 * existing directory is -EEXIST. */
int cgroup_instance_create(const struct cgroup_root *r, const char *id,
			   const struct cgroup_limits *limits, struct cgroup_instance **ret,
			   const char **ret_step);
/* The cgroup2 directory, O_RDONLY|O_DIRECTORY, for CLONE_INTO_CGROUP. */
int cgroup_instance_fd(const struct cgroup_instance *c);
const char *cgroup_instance_path(const struct cgroup_instance *c);
/* Hybrid hosts: move the calling (single-threaded) process into every v1
 * directory, through fds opened by cgroup_instance_create, so it works after
 * the caller changed namespaces. For the freshly cloned child. */
int cgroup_instance_join_v1_self(const struct cgroup_instance *c);
/* 1 when any process is in the cgroup (cgroup.events "populated"), 0 if not. */
int cgroup_instance_populated(const struct cgroup_instance *c);
/* cgroup.freeze; waits up to timeout_usec for "frozen" to follow. */
int cgroup_instance_freeze(const struct cgroup_instance *c, bool freeze, uint64_t timeout_usec);
/* cgroup.kill: SIGKILL to every process of the tree, forks included. */
int cgroup_instance_kill(const struct cgroup_instance *c);
/* Kill, wait up to timeout_usec until empty, rmdir every directory. Returns 0
 * only when nothing remains; may be called again after an error. */
int cgroup_instance_remove(struct cgroup_instance *c, uint64_t timeout_usec);
/* Frees memory and fds only; does not remove anything. */
void cgroup_instance_free(struct cgroup_instance *c);
