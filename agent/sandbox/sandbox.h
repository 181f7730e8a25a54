/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <linux/filter.h>
#include <linux/inet_diag.h>
#include <stddef.h>
#include <jansson.h>
#include <net/if.h>
#include <netinet/in.h>
#include <signal.h>

#include "step_error.h"

/* Host uid/gid ranges for the instances' user namespaces (docs/userns.md).
 *
 * Every instance runs in a user namespace of its own that maps its ids
 * 0..65535 onto a range of 65,536 host ids that nothing else uses, so no
 * instance process is ever host uid 0 (or any other host user): its root is
 * nobody on the host. Ranges are slots of UID_RANGE_SIZE ids in a region
 * above systemd-nspawn's --private-users=pick area (0x00080000..0x6FFFFFFF)
 * and below systemd's foreign-image range (0x7FFE0000..):
 * UID_RANGE_REGION_FIRST..UID_RANGE_REGION_END, 4,094 slots.
 *
 * A slot is never handed out while it is in use:
 *   - at open, slots that overlap a uid or gid of the host's /etc/passwd and
 *     /etc/group, or a range of /etc/subuid and /etc/subgid, are excluded for
 *     the life of the allocator, and slots in which some process already runs
 *     (any Uid:/Gid: of /proc/PID/status: a previous agent's instance that
 *     survived the purge, another container manager) are busy;
 *   - the agent takes a slot per instance and gives it back only once the
 *     instance's cgroup is empty (every process of the range is gone).
 * Across restarts the agent purges what a killed agent left running, and
 * the /proc scan covers whatever is left after that.
 *
 * A slot also holds a user namespace with the slot's mapping, made on first
 * use and kept: the instance's read-only snapshot is mounted idmapped
 * through it (nothing ever runs in that namespace, so nothing an instance
 * does is kept in it; each instance enters a fresh namespace of its own). */

#define UID_RANGE_SIZE 65536u
#define UID_RANGE_REGION_FIRST 0x70000000u
#define UID_RANGE_REGION_END 0x7FFE0000u /* exclusive */

struct uid_ranges;

/* root: "/" on the host; a test passes a directory holding etc/ and proc/.
 * first..end: the region (multiples of UID_RANGE_SIZE, first > 0). */
int uid_ranges_open(const char *root, uint32_t first, uint32_t end, struct uid_ranges **ret);

/* A free slot (the lowest, so that slots and their namespaces are reused)
 * marked in use: its first host id. -ENOSPC when every slot is in use or
 * excluded. */
int uid_ranges_take(struct uid_ranges *ranges, uid_t *ret_base);
/* The mapping namespace of a taken slot (made on first use; borrowed,
 * valid until uid_ranges_free()). */
int uid_ranges_idmap_userns(struct uid_ranges *ranges, uid_t base, int *ret_fd);
/* The instance of that range is gone, every process of it. */
void uid_ranges_release(struct uid_ranges *ranges, uid_t base);
/* Slots excluded at open (host users, subuid/subgid) and in use now. */
void uid_ranges_counts(const struct uid_ranges *ranges, unsigned *ret_excluded,
		       unsigned *ret_in_use);
void uid_ranges_free(struct uid_ranges *ranges);

/* A new user namespace mapping ids 0..UID_RANGE_SIZE-1 onto base.. (uids and
 * gids), for an idmapped mount; nothing runs in it. Made by a short-lived
 * helper task (clone with CLONE_NEWUSER); the caller must be single-threaded
 * or not mind a task that shares its memory for a few microseconds. */
int uid_range_userns_new(uid_t base, int *ret_fd);

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
 * write the limits. On failure nothing stays behind and ret_error names the
 * step ("cgroup create", "cgroup memory", "cgroup pids", "cgroup cpu", with
 * the id as its detail); an existing directory is -EEXIST. */
int cgroup_instance_create(const struct cgroup_root *r, const char *id,
			   const struct cgroup_limits *limits, struct cgroup_instance **ret,
			   struct step_error *ret_error);
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

/* A policy's SystemCalls= allow-list and ViolationSystemCalls= list compiled
 * once (per policy load) into classic BPF programs that every launch of the
 * policy's instances loads with seccomp() in the child, without allocating.
 * docs/seccomp.md has the whole story.
 *
 * The main filter: native architecture only (any other architecture, x32
 * included, kills the process); every listed system call allowed; clone3
 * answered with ENOSYS whatever the list says (glibc then falls back to
 * clone, whose flags the kernel checks as usual); execveat allowed only as
 * the envelope's own exec (fd SECCOMP_POLICY_EXEC_FD with AT_EMPTY_PATH) when
 * the list does not allow it anyway and it is not notified; everything else
 * gets the default action: EPERM or killing the whole process (SIGSYS).
 *
 * Violations: each system call of the violation list goes to the agent as a
 * user notification (SECCOMP_RET_USER_NOTIF), which answers it with EPERM
 * (sandbox.h). That takes a second, small filter, the notify filter,
 * loaded FIRST with SECCOMP_FILTER_FLAG_NEW_LISTENER: it notifies the
 * violations and allows everything else; the main filter, loaded after the
 * envelope has handed the listener to the agent, then allows the violations
 * (the kernel takes the strictest verdict of all filters, and ERRNO or KILL
 * would beat USER_NOTIF). So a name that is both allowed and a violation is a
 * violation, clone3 included. The envelope needs sendmsg, sendto, seccomp and
 * exit_group between the two loads: those cannot be violations (-EINVAL,
 * named in ret_bad_item).
 *
 * Exec: a policy allows exec when execve or execveat is allowed and not a
 * violation. A policy without exec notifies execve and execveat in every form
 * whatever its violation list says (so it always has a notify filter), and so
 * does a policy that lists execveat as a violation: the envelope's own
 * execveat is then a notification too, which the spawner answers with
 * SECCOMP_USER_NOTIF_FLAG_CONTINUE, once, before any service code has run
 * (seccomp_notify_continue_exec()); every later exec is a violation. */

/* The descriptor number the envelope moves the service binary to before it
 * loads the filter and calls execveat(SECCOMP_POLICY_EXEC_FD, "", ...,
 * AT_EMPTY_PATH). The exec closes it (close-on-exec). */
#define SECCOMP_POLICY_EXEC_FD 100

enum seccomp_default {
	SECCOMP_DEFAULT_ERRNO, /* EPERM */
	SECCOMP_DEFAULT_KILL,  /* kill the process: SIGSYS, seen as killed or dumped */
};

struct seccomp_program {
	struct sock_filter *insns;	  /* the main filter */
	size_t count;			  /* instructions */
	struct sock_filter *notify_insns; /* the notify filter; NULL without violations */
	size_t notify_count;
	enum seccomp_default default_action;
	size_t n_allowed;    /* system calls allowed (after expansion) */
	size_t n_violations; /* system calls of the violation list (after expansion) */
	bool exec_allowed;   /* execve or execveat allowed and not a violation */
	/* execveat is notified in every form: the envelope's own exec comes to
	 * the spawner as the first notification, to be answered CONTINUE once */
	bool exec_notified;
};

/* Expand names and @groups (policy.h) and compile. -EINVAL for an
 * unknown name or group; ret_bad_item (may be NULL) then points into items.
 * No violations: the same as seccomp_program_compile_violations(..., NULL, 0,
 * ...). */
int seccomp_program_compile(char *const *items, size_t n_items, enum seccomp_default def,
			    struct seccomp_program **ret, const char **ret_bad_item);

/* The same with a violation list (names and @groups). -EINVAL for an unknown
 * name or group in either list, or a violation the envelope itself needs
 * (sendmsg, sendto, seccomp, exit_group); ret_bad_item points into items or
 * violations. */
int seccomp_program_compile_violations(char *const *items, size_t n_items, char *const *violations,
				       size_t n_violations, enum seccomp_default def,
				       struct seccomp_program **ret, const char **ret_bad_item);

/* Only the checks of the violation list (for policy validation, without
 * compiling): 0, or -EINVAL for an unknown name or group or a call the
 * envelope needs, with ret_bad_item (may be NULL) pointing into items. */
int seccomp_violations_check(char *const *items, size_t n_items, const char **ret_bad_item);

/* Same from already expanded lists of system call names. */
int seccomp_program_compile_names(char *const *names, size_t n_names, enum seccomp_default def,
				  struct seccomp_program **ret);
int seccomp_program_compile_names_violations(char *const *names, size_t n_names,
					     char *const *violations, size_t n_violations,
					     enum seccomp_default def,
					     struct seccomp_program **ret);

/* Step 1 of 2, only for a program with a notify filter (violations, or no
 * exec; else *ret_listener_fd = -1 and nothing is loaded): load the notify filter with
 * SECCOMP_FILTER_FLAG_NEW_LISTENER; *ret_listener_fd is the listener
 * (close-on-exec), to be handed to the supervisor before step 2. Step 2
 * without step 1 would make the violations plain allowed calls: a programming
 * error. */
int seccomp_program_load_notify(const struct seccomp_program *p, int *ret_listener_fd);

/* Step 2: load the main filter into the calling thread. Both steps are
 * async-signal-safe (no allocation); the caller must have set no_new_privs or
 * hold CAP_SYS_ADMIN. */
int seccomp_program_load(const struct seccomp_program *p);

void seccomp_program_free(struct seccomp_program *p);

/* The seccomp violation signal: read and answer the user notifications of an
 * instance's notify filter (sandbox.h), one at a time, from the agent's
 * event loop. Every notification is answered with EPERM before
 * seccomp_notify_handle() returns: the system call never runs, and the
 * caller in the instance goes on with errno = EPERM. The one exception is
 * seccomp_notify_continue_exec(), the spawner's answer to the envelope's own
 * exec, before the instance has run any code of its own. What the agent does next
 * (OnSyscallViolation=) is its own business. See docs/seccomp.md.
 *
 * In an sd-event loop: an io source on envelope_notify_fd() for EPOLLIN; on
 * each wake-up call seccomp_notify_handle() until -EAGAIN; on -EPIPE (or
 * EPOLLHUP in revents) the instance is gone: disable the source (the fd stays
 * owned by the envelope instance). */

#define SECCOMP_VIOLATION_NAME_MAX 32

struct seccomp_notif;

struct seccomp_violation {
	uint64_t id;   /* the kernel's notification cookie */
	pid_t pid;     /* of the caller, in the reader's pid namespace (0 if none) */
	int nr;	       /* system call number */
	uint32_t arch; /* AUDIT_ARCH_* */
	char name[SECCOMP_VIOLATION_NAME_MAX]; /* "ptrace"; "syscall-NR" if unknown */
	uint64_t args[6];
	uint64_t instruction_pointer;
	/* execveat: what its fd (args[0]) pointed to in the caller, read from
	 * /proc/PID/fd while it waited; "" when unknown (seccomp_notify_handle
	 * only) */
	char exec_fd_target[128];
	/* false: the caller was gone (killed) before the answer; the violation
	 * still happened */
	bool answered;
};

/* Receive one pending notification, answer it with EPERM, describe it in
 * *ret. Never blocks. 0: *ret filled; -EAGAIN: nothing pending; -EPIPE: the
 * listener hung up (no process uses the filter any more); other -errno:
 * failure (*ret untouched). */
int seccomp_notify_handle(int listener_fd, struct seccomp_violation *ret);

/* seccomp_notify_handle() in two steps, for a caller that acts between them
 * (the agent freezes the instance first: the caller then never runs again
 * after its violation). receive: one pending notification, unanswered (its
 * caller waits in the kernel; v->answered: whether it still does), same
 * returns as seccomp_notify_handle(); refuse: answer it EPERM,
 * v->answered says whether anyone still waited.
 * Every received notification must be refused. */
int seccomp_violation_receive(int listener_fd, struct seccomp_violation *ret);
int seccomp_violation_refuse(int listener_fd, struct seccomp_violation *v);

/* The envelope's own exec, for the spawner (envelope.c) of a program whose
 * execveat is notified (sandbox.h: exec_notified): receive one pending
 * notification; when it is execveat(SECCOMP_POLICY_EXEC_FD, "", ...,
 * AT_EMPTY_PATH) from pid (the child, single-threaded, before any service
 * code) answer SECCOMP_USER_NOTIF_FLAG_CONTINUE and return 0; anything else
 * is answered EPERM and returns -EPERM (*ret says what it was). -EAGAIN:
 * nothing pending; -EPIPE: hung up; -ESRCH: the caller was gone. The caller
 * uses this once per instance: every later notification goes to
 * seccomp_notify_handle(). */
int seccomp_notify_continue_exec(int listener_fd, pid_t pid, struct seccomp_violation *ret);

/* "pid=N syscall=NAME nr=N args=0x..,0x..,0x..,0x..,0x..,0x.. ip=0x.." into
 * buf (for log lines and audit records); returns buf. */
const char *seccomp_violation_format(const struct seccomp_violation *v, char *buf, size_t size);

/* The pure step of seccomp_notify_handle(): what a received notification
 * (every field chosen by the confined program: number, arch, arguments,
 * instruction pointer) says, with the system call's name resolved; answered
 * is false. Used by the fuzzer (tests/fuzz/fuzz_seccomp_notify.c). */
void seccomp_violation_from_notif(const struct seccomp_notif *req, struct seccomp_violation *ret);

/* The evidence of a violation for its audit record and signal:
 * {"syscall": NAME, "nr": N, "pid": N, "args": ["0x..", x6], "answered": B},
 * for execveat also "exec_fd": N and, when known, "exec_fd_target": "...".
 * NULL if out of memory. */
json_t *seccomp_violation_evidence(const struct seccomp_violation *v);

/* An instance's link to the host: a veth pair whose inner end is created
 * directly in the instance's network namespace, the instance's address (a
 * /32 or /128 from the service's pool) inside, and a host route to it. The
 * host end carries only the link-local gateway (169.254.0.1, fe80::1), the
 * same on every instance link, so no pool address is spent on the host.
 * rtnetlink through libmnl. */

#define NETDEV_GATEWAY4 "169.254.0.1"
#define NETDEV_GATEWAY6 "fe80::1"
#define NETDEV_INNER_IFNAME "eth0"

struct netdev_address {
	int family; /* AF_INET or AF_INET6 */
	union {
		struct in_addr v4;
		struct in6_addr v6;
	};
};

struct netdev_link_spec {
	char host_ifname[IFNAMSIZ];
	int netns_fd;			    /* the instance's network namespace */
	struct netdev_address addresses[2]; /* at most one IPv4 and one IPv6 */
	size_t n_addresses;
};

/* Create and configure the pair. On failure nothing is left behind and
 * ret_error says which step failed ("create veth", "instance address", ...). */
int netdev_create_instance_link(const struct netdev_link_spec *spec, struct step_error *ret_error);

/* Delete a link by name (its veth peer goes with it). -ENODEV if absent. */
int netdev_delete_link(const char *ifname);

/* ifindex of a host link, or negative errno. */
int netdev_ifindex(const char *ifname);

/* An instance's TCP connections ended with a reset from the kernel's side
 * (sock_reset.c): NETLINK_SOCK_DIAG lists the connection sockets
 * (established, SYN_RECV, FIN_WAIT1/2, CLOSE_WAIT; not listeners; not those
 * whose peer is on the loopback, inside the instance too) of the
 * network namespace netns_fd refers to (a namespace file or a pidfd), and
 * SOCK_DESTROY aborts each (tcp_abort: a RST to the peer), as `ss -K`
 * does. The netlink socket is made inside that namespace, so the host's
 * sockets are never listed. At most SOCK_RESET_MAX sockets a call (the rest:
 * `truncated`), a reply waited for at most 200 ms. Returns 0 when at least
 * one socket was reset or none failed, else the first error (-EOPNOTSUPP:
 * a kernel without CONFIG_INET_DIAG_DESTROY). */
#define SOCK_RESET_MAX 4096

struct sock_reset_result {
	unsigned found;	 /* connection sockets listed */
	unsigned reset;	 /* destroyed: their peers got a reset */
	unsigned gone;	 /* closed meanwhile (ENOENT) */
	unsigned failed; /* not destroyed (first_error says why) */
	int first_error;
	bool truncated; /* more than SOCK_RESET_MAX */
};

int sock_reset_netns(int netns_fd, struct sock_reset_result *ret);

/* A socket as the dump names it (its cookie included). */
struct sock_reset_entry {
	uint8_t family;
	struct inet_diag_sockid id;
};

/* One datagram of a sock_diag dump answering request seq for family: its
 * sockets appended to entries (at most max, *ret_truncated set for the
 * rest; sockets whose peer is a loopback address are left out). 1 at NLMSG_DONE, 0 when more
 * datagrams follow, -errno for the kernel's error, -EBADMSG for a malformed or foreign message.
 * Pure. */
int sock_reset_parse_dump(const void *buffer, size_t size, uint32_t seq, uint8_t family,
			  struct sock_reset_entry *entries, size_t max, size_t *n_entries,
			  bool *ret_truncated);
/* The acknowledgement of request seq: its error (0 or -errno), or -EBADMSG. */
int sock_reset_parse_ack(const void *buffer, size_t size, uint32_t seq);

/* Some last closes are expensive, and an attacker decides how expensive: the
 * last close of an instance's detached tmpfs unmounts it and frees every
 * inode in it (hundreds of milliseconds for 16,000 directories), the close
 * of an inotify instance removes every watch. Done on the agent's loop, that
 * stalls the control socket and the rotation timers. A helper process forked
 * at start ("mtd-closer") takes such descriptors over SCM_RIGHTS and makes
 * the last close, off the loop. Without the helper (tests, tools, or when it
 * is gone) the close happens in place, as before. */

/* Fork the helper; call before any descriptor worth keeping from it is
 * open (it closes all it inherited but its socket). */
int fd_graveyard_start(void);

/* Hand fd over for its last close (or close it here); fd is gone either way. */
void fd_graveyard_close(int fd);

/* Let the helper go (it exits once it has closed what it holds). */
void fd_graveyard_stop(void);

/* The envelope: confine and start one service instance.
 *
 * envelope_spawn() runs the recipe below; every step fails closed, and the
 * failing step comes back in a struct step_error (the service binary is then
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

#define ENVELOPE_MAX_PASS_FDS 64

struct envelope_spec {
	const char *instance_id;   /* names the cgroup; [^/]+, unique among instances */
	int lower_fd;		   /* the verified snapshot root (a directory fd, not owned): cloned
				    * (open_tree) as the overlay's read-only lower, never by path */
	uint64_t upper_size_bytes; /* tmpfs for upper + work (WritableSize=), > 0 */
	int exec_fd;		   /* the binary to run (sealed memfd or any fd) */
	char *const *argv;	   /* argv[0] is what the service sees */
	char *const *envp;
	uid_t uid; /* inside (User=/Group=), 0 = root; < UID_RANGE_SIZE */
	gid_t gid;
	/* The instance's user namespace maps its ids 0..UID_RANGE_SIZE-1 onto
	 * host ids host_id_base.. (sandbox.h: a range nothing else uses);
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
	 * (then waits before its credentials change). Non-zero return: the child is killed, the
	 * spawn fails (step "setup in parent", err = the return value if negative). */
	int (*setup_in_parent)(pid_t pid, int pidfd, void *userdata);
	void *userdata;
};

/* Zero the spec and set lower_fd, exec_fd, the stdio fds and idmap_userns_fd to -1. */
void envelope_spec_init(struct envelope_spec *spec);

struct envelope_instance;

/* Start one instance. On failure returns -errno, fills *ret_error (step:
 * "mount overlay", "pivot_root", "seccomp", "cgroup memory", ...; err: always
 * set; detail: what was being done, e.g. the path) and leaves nothing behind
 * (no process, cgroup or mount). step_error_format() words it for a log. */
int envelope_spawn(const struct envelope_spec *spec, const struct cgroup_root *cgroups,
		   struct envelope_instance **ret, struct step_error *ret_error);

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
