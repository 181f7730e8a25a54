/* SPDX-License-Identifier: MIT */
/* The envelope: confine and start one service instance.
 *
 * envelope_spawn() runs the recipe below; every step fails closed, and the
 * failing step comes back in struct envelope_error (the service binary is then
 * never executed and nothing of the attempt remains):
 *
 *   parent: cgroup (cgroup_instance_create: dir + limits)
 *           tmpfs for the writable layer (fsopen/fsmount: a detached mount the
 *           agent holds; upper/, work/, root/ inside)
 *           clone3(CLONE_PIDFD | CLONE_INTO_CGROUP | CLONE_NEWNS | CLONE_NEWPID |
 *                  CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWCGROUP)
 *           spec->setup_in_parent (the agent moves the veth in here),
 *           while the child does its mounts
 *           "go" to the child, then wait for exec (EOF) or an error record
 *   child:  session (setsid: no controlling terminal)
 *           hybrid hosts: into each v1 controller cgroup ("0" to its tasks)
 *           mounts: / rslave, the tmpfs attached, overlay (lower = lower_dir,
 *           read-only; upper/work on the tmpfs), minimal /dev, fresh /proc
 *           (/proc/sys read-only), pivot_root, old root detached
 *           hostname
 *           wait for go (the parent opened /proc/PID/ns/net: no credential
 *           change before that)
 *           capability bounding set
 *           credentials (setgroups, setresgid, setresuid; keep-caps)
 *           capabilities (permitted, effective, inheritable; ambient if uid != 0)
 *           no_new_privs
 *           fds (stdio, pass_fds at 3.., everything else closed)
 *           rlimits (NOFILE, CORE=0)
 *           seccomp (last): with ViolationSystemCalls=, the notify filter
 *           first, its listener to the parent (SCM_RIGHTS over the report
 *           socket), then the main filter
 *           execveat(binary, "", argv, envp, AT_EMPTY_PATH)
 *
 * The child runs on a copy of the caller's memory (no CLONE_VM): nothing it
 * does allocates, and it reports through a close-on-exec socket. The caller
 * must be single-threaded while envelope_spawn() runs (the agent is).
 *
 * The instance is pid 1 of its pid namespace: when it exits, the kernel kills
 * the rest of its namespace. It runs with umask 0022. Writes anywhere in the
 * root (/tmp included) go to the size-limited tmpfs upper layer. */
#pragma once

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "cgroup.h"
#include "seccomp_policy.h"

#define ENVELOPE_MAX_PASS_FDS 64

struct envelope_spec {
	const char *instance_id;   /* names the cgroup; [^/]+, unique among instances */
	const char *lower_dir;	   /* the verified snapshot root: overlay lower, never written */
	uint64_t upper_size_bytes; /* tmpfs for upper + work (WritableSize=), > 0 */
	int exec_fd;		   /* the binary to run (sealed memfd or any fd) */
	char *const *argv;	   /* argv[0] is what the service sees */
	char *const *envp;
	uid_t uid; /* inside (User=/Group=), 0 = root */
	gid_t gid;
	uint64_t capabilities;		       /* bit mask of CAP_* kept in every set */
	const struct seccomp_program *seccomp; /* NULL: no filter (tests only) */
	uint64_t limit_nofile;		       /* 0 = inherit */
	struct cgroup_limits limits;
	const char *hostname; /* NULL = instance_id */
	int stdio_fds[3];     /* -1: /dev/null inside (envelope_spec_init) */
	const int *pass_fds;  /* become fds 3, 4, ... in the instance */
	size_t n_pass_fds;
	/* Called in the parent after clone3, while the child does its mounts
	 * (then waits before its credentials change). Non-zero return: the child is killed, the spawn fails
	 * (step "setup in parent", err = the return value if negative). */
	int (*setup_in_parent)(pid_t pid, int pidfd, void *userdata);
	void *userdata;
};

/* Zero the spec and set the stdio fds to -1. */
void envelope_spec_init(struct envelope_spec *spec);

struct envelope_error {
	char step[32];	  /* "mount overlay", "pivot_root", "seccomp", "cgroup memory", ... */
	int err;	  /* positive errno */
	char detail[256]; /* what was being done, e.g. the path */
};

struct envelope_instance;

/* Start one instance. On failure returns -errno, fills *ret_error and leaves
 * nothing behind (no process, cgroup or mount). */
int envelope_spawn(const struct envelope_spec *spec, const struct cgroup_root *cgroups,
		   struct envelope_instance **ret, struct envelope_error *ret_error);

pid_t envelope_pid(const struct envelope_instance *e);
int envelope_pidfd(const struct envelope_instance *e); /* owned by the instance */
/* The seccomp listener (SECCOMP_FILTER_FLAG_NEW_LISTENER) of an instance
 * whose program has violations, for seccomp_notify_handle(); -1 without.
 * Owned by the instance (close-on-exec, non-blocking use via poll), valid
 * until envelope_free(). A spawn whose program has violations fails at step
 * "seccomp" when the listener does not arrive. */
int envelope_notify_fd(const struct envelope_instance *e);
/* The tmpfs of the writable layer (directories upper/ and work/): what the
 * instance wrote, for quarantine copies. Owned by the instance; valid until
 * envelope_cleanup(). */
int envelope_upper_fd(const struct envelope_instance *e);
const char *envelope_cgroup_path(const struct envelope_instance *e);

/* Freeze (quarantine) or thaw the whole tree; waits until frozen. */
int envelope_freeze(struct envelope_instance *e, bool freeze);
/* Ask for the freeze and return at once (cgroup.freeze written: every task
 * traps before its next instruction in user space); envelope_freeze() then
 * waits for the kernel to report the whole tree frozen. */
int envelope_freeze_request(struct envelope_instance *e);
/* SIGKILL to every process of the instance (cgroup.kill). */
int envelope_kill(struct envelope_instance *e);
/* Block until pid 1 of the instance exits and reap it (tools and tests; the
 * agent reaps through its event loop's pidfd source instead). */
int envelope_wait(struct envelope_instance *e, siginfo_t *ret_info);
/* Kill whatever still runs, wait until the cgroup is empty, remove the
 * cgroups, release the writable layer. 0 only when nothing remains; may be
 * called again after a failure. Does not reap pid 1. */
int envelope_cleanup(struct envelope_instance *e);
/* Frees memory and fds (cleans up first if envelope_cleanup() was not done). */
void envelope_free(struct envelope_instance *e);

/* "step: detail: strerror" into buf (for the caller's log line). */
const char *envelope_error_format(const struct envelope_error *e, char *buf, size_t size);
