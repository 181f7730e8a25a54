/* SPDX-License-Identifier: MIT */
/* The envelope: confine and start one service instance.
 *
 * envelope_spawn() runs the recipe below; every step fails closed, and the
 * failing step comes back in struct envelope_error (the service binary is then
 * never executed and nothing of the attempt remains):
 *
 *   parent: cgroup (cgroup_instance_create: dir + limits)
 *           tmpfs for the writable layer (fsopen/fsmount: a detached mount the
 *           agent holds; upper/ (owned by the instance's root), work/, root/,
 *           lower/ inside)
 *           the snapshot: open_tree(lower_fd, OPEN_TREE_CLONE|AT_RECURSIVE),
 *           mount_setattr read-only, nosuid, nodev, idmapped through
 *           idmap_userns_fd (the instance's host range)
 *           clone3(CLONE_PIDFD | CLONE_INTO_CGROUP | CLONE_NEWNS | CLONE_NEWPID |
 *                  CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWCGROUP):
 *           all owned by the host's user namespace
 *           spec->setup_in_parent (the agent moves the veth in here),
 *           while the child does its mounts
 *           a fresh user namespace (uid_map and gid_map "0 host_id_base
 *           65536", uid_range_userns_new)
 *           "go" to the child with that namespace (SCM_RIGHTS), then wait for
 *           exec (EOF) or an error record
 *   child:  session (setsid: no controlling terminal)
 *           hybrid hosts: into each v1 controller cgroup ("0" to its tasks)
 *           mounts: / rslave, the tmpfs attached, the idmapped snapshot
 *           attached at <tmpfs>/lower, overlay (that lower, read-only;
 *           upper/work on the tmpfs), minimal /dev, fresh /proc (with
 *           CAP_NET_BIND_SERVICE: ip_unprivileged_port_start=0 in its network
 *           namespace; vm.memfd_noexec=2 when the policy allows no exec; then
 *           /proc/sys read-only), /tmp owned by the instance's root,
 *           pivot_root, old root detached
 *           hostname
 *           wait for go (the parent opened /proc/PID/ns/net: no credential
 *           change before that), which brings the user namespace
 *           user namespace (setns; its max_user_namespaces set to 0, with
 *           CAP_SYS_ADMIN every max_*_namespaces): from
 *           here it has no privilege over any of its other namespaces and
 *           can make no namespace (docs/userns.md)
 *           capability bounding set (entering the user namespace filled it)
 *           credentials (setgroups, setresgid, setresuid, ids inside; keep-caps)
 *           capabilities (permitted, effective, inheritable; ambient if uid != 0)
 *           no_new_privs
 *           fds (stdio, pass_fds at 3.., everything else closed)
 *           rlimits (NOFILE, CORE=0)
 *           seccomp (last): with ViolationSystemCalls=, the notify filter
 *           first, its listener to the parent (SCM_RIGHTS over the report
 *           socket), then the main filter
 *           execveat(binary, "", argv, envp, AT_EMPTY_PATH); when the
 *           program notifies execveat (a policy without exec), this call is
 *           a notification the parent answers CONTINUE, once, and every
 *           later exec is a violation (docs/seccomp.md)
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
#include "uid_range.h"

#define ENVELOPE_MAX_PASS_FDS 64

struct envelope_spec {
	const char *instance_id;   /* names the cgroup; [^/]+, unique among instances */
	int lower_fd; /* the verified snapshot root (a directory fd, not owned): cloned
		       * (open_tree) as the overlay's read-only lower, never by path */
	uint64_t upper_size_bytes; /* tmpfs for upper + work (WritableSize=), > 0 */
	int exec_fd;		   /* the binary to run (sealed memfd or any fd) */
	char *const *argv;	   /* argv[0] is what the service sees */
	char *const *envp;
	uid_t uid; /* inside (User=/Group=), 0 = root; < UID_RANGE_SIZE */
	gid_t gid;
	/* The instance's user namespace maps its ids 0..UID_RANGE_SIZE-1 onto
	 * host ids host_id_base.. (uid_range.h: a range nothing else uses);
	 * idmap_userns_fd is a namespace with that same mapping, through which
	 * the snapshot is mounted (so its root-owned files are the instance's
	 * root's). Both required: no instance runs as a host user. */
	uid_t host_id_base;
	int idmap_userns_fd;
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

/* Zero the spec and set lower_fd, exec_fd, the stdio fds and idmap_userns_fd to -1. */
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
 * "seccomp" when the listener does not arrive. The envelope's own exec is
 * never among its notifications: envelope_spawn() answered it. */
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
