/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>
#include <jansson.h>
#include <signal.h>
#include <sys/types.h>

#include "sandbox.h"
#include "step_error.h"
#include "policy.h"
#include "snapshot.h"
#include "fleet.h"
#include "clock.h"
#include "step_error.h"

/* The private header of agent/fleet/, for its files only. Its files in
 * layers, each using only those below it (no call goes up; an event goes up
 * through a hook the upper layer set):
 *
 *   fleet.c                  the set of services, the instances' hooks, fleet.h
 *   response.c               containment and replacement
 *   response_quarantine.c    quarantined instances and their evidence saves
 *   standby.c                StandbyInstances=
 *   service.c                one service: start, route, stop, restart an instance
 *   instance.c               one instance (envelope, link, health, drift, signals)
 *   drift_watch.c            the inotify watch of an instance's writable layer
 *   health.c drift.c signal_tally.c instance_output.c instance_ids.c address_pool.c
 *
 * Sections below in the same order, from the bottom up. */

/* Instance addresses: a random free address of a service's AddressPool=,
 * never the one its previous instance had, so an instance's address moves
 * with every replacement. */

/* Pick an address of pool that is none of in_use[] (the service's live
 * instances, and the previous one). -EADDRNOTAVAIL when the pool is full. */
int address_pool_pick(const struct cidr *pool, const struct netdev_address *in_use, size_t n_in_use,
		      struct netdev_address *ret_address);

/* The same with an explicit random value (unit tests). */
int address_pool_pick_from(const struct cidr *pool, const struct netdev_address *in_use,
			   size_t n_in_use, uint64_t random, struct netdev_address *ret_address);

/* HealthCheck=tcp: one non-blocking connect to an instance's address and
 * ListenPort, bounded by HealthTimeout=, on the agent's event loop. */

struct health_probe;

/* Called once with the outcome; the probe is freed after the call. */
typedef void (*health_probe_done_t)(bool healthy, const char *reason, void *userdata);

int health_probe_start(sd_event *event, const struct netdev_address *address, uint16_t port,
		       uint64_t timeout_usec, health_probe_done_t done, void *userdata,
		       struct health_probe **ret_probe);

/* Cancel without calling done. */
void health_probe_cancel(struct health_probe *probe);

/* Drift: what an instance changed in its writable layer that its policy does
 * not allow (docs/quarantine.md, "Drift").
 *
 * The instance's writable layer is a tmpfs the agent holds by fd
 * (envelope_upper_fd()) with the overlay's upper/ directory in it. Every path
 * below is relative to the instance's root ("/etc/passwd" is upper/etc/passwd).
 * What is reported:
 *
 *   write-outside-writable   a file, symlink or special file in the upper
 *                            layer outside every Writable= path (created,
 *                            copied up for a write, renamed there, linked)
 *   new-executable           a regular file with any x bit or starting with
 *                            "\x7fELF" or "#!", anywhere, Writable= included
 *   delete-outside-writable  an overlay whiteout (0/0 character device) or an
 *                            opaque directory outside every Writable= path: a
 *                            file or directory of the snapshot was removed
 *   events-lost              the watch could not keep up (its own queue of
 *                            reports is full, no inotify watch left); call
 *                            drift_scan(). From either: a directory deeper
 *                            than 256 levels, not looked into
 *
 * A Writable= entry covers itself and what is below it, by whole path
 * components: "/var/cache/nginx" covers "/var/cache/nginx/x", not
 * "/var/cache/nginxfoo". Directories themselves are not reported (a copied-up
 * parent of a written file is not a write); what is in them is.
 *
 * drift_watch uses inotify with one watch per directory of upper/, added as
 * directories appear (and what appeared before the watch was in place is
 * scanned at once); an inotify queue overflow rescans the whole layer. A
 * watched directory knows only its name and its parent, so renaming a tree
 * is one change whatever it holds: the renamed directory is reported where
 * it lands outside Writable= (write-outside-writable), its contents are not
 * walked again, and later events below it carry the new path. Watches are
 * found by a hash of their descriptor, in constant time. The
 * watch reads the tree through O_NOFOLLOW opens of single components: the
 * instance cannot make it follow a symlink. It never blocks. */

#define DRIFT_PATH_MAX 4096

enum drift_kind {
	DRIFT_WRITE_OUTSIDE_WRITABLE,
	DRIFT_NEW_EXECUTABLE,
	DRIFT_DELETE_OUTSIDE_WRITABLE,
	DRIFT_EVENTS_LOST,
};

struct drift_event {
	enum drift_kind kind;
	char path[DRIFT_PATH_MAX]; /* "/etc/passwd"; raw bytes of the names */
};

/* "write-outside-writable", "new-executable", "delete-outside-writable", "events-lost" */
const char *drift_kind_name(enum drift_kind kind);

/* True when path (absolute, as above) is covered by one of the writable
 * entries (absolute paths; trailing slashes ignored; "/" covers everything). */
bool drift_path_writable(const char *path, char *const *writable, size_t n_writable);

/* Walk upper/ of the writable layer and call cb for everything reportable
 * (events-lost only for a directory too deep to walk). cb returning non-zero stops the walk and is
 * returned. 0 when the walk completed; -errno when it could not. */
typedef int (*drift_scan_cb)(const struct drift_event *event, void *userdata);
int drift_scan(int upper_fd, char *const *writable, size_t n_writable, drift_scan_cb cb,
	       void *userdata);

/* drift.c's rules, shared with the watch (drift_watch.c): what the scan and
 * the watch find goes to a sink, one report at a time. */

/* Deeper directories are not looked into (events-lost). */
#define DRIFT_MAX_DEPTH 256

struct drift_sink {
	/* non-zero stops a walk and is returned */
	int (*emit)(struct drift_sink *s, enum drift_kind kind, const char *path);
	char *const *writable;
	size_t n_writable;
	void *userdata; /* the emitter's */
};

struct stat;

/* Report what one entry of the upper layer means. dirfd is its directory,
 * name its name there, path its full path from the instance root, st its
 * lstat. For a directory, fd (>= 0) is the open directory (opacity). */
int drift_classify(struct drift_sink *s, int dirfd, const char *name, const char *path,
		   const struct stat *st, int fd);
/* path + "/" + name into buf; a path too long for an event ends in "/...". */
void drift_join(char *buf, size_t size, const char *path, const char *name);
/* One directory below dirfd, never through a symlink: an fd or -errno. */
int drift_open_dir(int dirfd, const char *name);
/* upper/ + rel ("" or "/a/b"), one O_NOFOLLOW component at a time. */
int drift_open_upper(int upper_fd, const char *rel);

/* drift_watch.c */

struct drift_watch;

/* Watch upper/ of the writable layer (upper_fd is not taken; it must stay open
 * while the watch lives). writable is copied. What is already there when the
 * watch starts is reported by the first drift_watch_read(). */
int drift_watch_new(int upper_fd, char *const *writable, size_t n_writable,
		    struct drift_watch **ret);
/* The inotify fd (non-blocking, close-on-exec) for the event loop: EPOLLIN. */
int drift_watch_fd(const struct drift_watch *w);
/* Up to n reports; *ret_n = 0 when there is nothing (never blocks). It
 * handles at most 64 inotify events (or entries of new directories) a call, so a storm is taken in
 * slices: call again while it fills the whole array or drift_watch_busy() says work is left (which
 * the fd's readiness does not show: the events are read). */
int drift_watch_read(struct drift_watch *w, struct drift_event *events, size_t n, size_t *ret_n);
bool drift_watch_busy(const struct drift_watch *w);
void drift_watch_free(struct drift_watch *w);

/* How often one instance's signals of compromise reach the audit log. A
 * compromised instance can raise a signal as fast as it can make a system
 * call or a file; each used to cost an fdatasync'd record and an allocation,
 * and four threads kept the agent busy answering them. Now, per instance and
 * per kind, the first signal passes at once (it starts the response); every
 * later one is only counted, and once an interval a summary with the count
 * and the first evidence of that interval is recorded: one record per
 * instance, kind and interval, whatever the rate. */

#define SIGNAL_TALLY_KINDS 4 /* seccomp-violation, drift, egress, spare */

struct signal_tally;

/* interval_usec: how long counted signals wait for their summary. */
struct signal_tally *signal_tally_new(uint64_t interval_usec);
void signal_tally_free(struct signal_tally *t);

/* A signal of kind at now. true: the first of its kind, raise it (evidence
 * stays the caller's). false: counted; evidence is stolen (kept as the
 * interval's first, or dropped). */
bool signal_tally_add(struct signal_tally *t, const char *kind, json_t *evidence, uint64_t now);

/* When the next summary is due (CLOCK_MONOTONIC usec), 0 when none is. */
uint64_t signal_tally_due(const struct signal_tally *t);

typedef void (*signal_tally_summary_cb)(const char *kind, uint64_t count, json_t *first_evidence,
					uint64_t interval_usec, void *userdata);

/* Every kind whose interval has ended by now with counted signals: cb with
 * the count and the interval's first evidence (borrowed), then reset. */
void signal_tally_flush(struct signal_tally *t, uint64_t now, signal_tally_summary_cb cb,
			void *userdata);

/* Instance numbers (SERVICE-N, link mtdiN) that are never used twice on a
 * host, across restarts of the agent: a restarted agent that started again
 * at web-1 could not quarantine its new web-1 while the old web-1's evidence
 * was kept ("File exists"), and that incident's evidence was lost.
 *
 * Numbers are handed out from a block reserved on disk before its first
 * number is used (STATE_DIR/instance-ids holds the block's end, written with
 * fsync and rename), so a launch writes nothing and a killed agent's
 * successor starts above every number it could have used. A state
 * directory without the file (first start) starts above every SERVICE-N kept
 * in STATE_DIR/quarantine. */

#define INSTANCE_IDS_BLOCK 1024

struct instance_ids;

int instance_ids_open(const char *state_dir, struct instance_ids **ret_ids);

/* The next number; reserves the following block first when this one is
 * spent (the only call that writes). */
int instance_ids_next(struct instance_ids *ids, uint64_t *ret_number);

void instance_ids_free(struct instance_ids *ids);

/* An instance's stdout and stderr: a pipe the agent reads on its loop and
 * hands to the journal line by line, under the instance's own identifier
 * (mtd-SERVICE) with MTD_SERVICE= and MTD_INSTANCE=, escaped and
 * rate-limited. The instance never writes to the agent's terminal or to the
 * agent's own journal stream. */

struct instance_output;

/* Lines per second an instance may log once its burst is spent; the rest are
 * counted and reported as one "N lines suppressed" line. */
#define INSTANCE_OUTPUT_LINES_PER_SEC 20
#define INSTANCE_OUTPUT_BURST 200
/* Longer lines are cut there (and marked). */
#define INSTANCE_OUTPUT_LINE_MAX 1024

/* Creates the pipe and watches its reading end. *ret_write_fd (close-on-exec)
 * is what the child gets as fds 1 and 2; the caller closes it once the child
 * has its copy. */
int instance_output_new(sd_event *event, const char *service, const char *instance_id,
			int *ret_write_fd, struct instance_output **ret_output);
void instance_output_free(struct instance_output *output);

/* Lines handed on and lines suppressed so far. */
void instance_output_counts(const struct instance_output *output, uint64_t *ret_lines,
			    uint64_t *ret_suppressed);

/* Escapes one line for a terminal and the journal: bytes outside 0x20..0x7e
 * and the backslash become \xHH. Returns the length written (< size). */
size_t instance_output_escape(const char *line, size_t len, char *buffer, size_t size);

/* One running instance of a managed service: its envelope (envelope.c), its
 * link to the host (netdev.c), its health checks, and supervision by pidfd on
 * the agent's event loop. The service level above (service.c, and response.c,
 * standby.c, fleet.c on top of it) decides when to
 * start, replace and route to instances. */

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
	 * (fleet_internal.h): count of them and the interval's first evidence
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
 * remains; ret_error says what failed: its step, and in its detail the
 * whole reason (for the instance-start-failed record, errno included). */
int instance_start(sd_event *event, const struct instance_spec *spec,
		   const struct instance_hooks *hooks, struct instance **ret_instance,
		   struct step_error *ret_error);

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

/* Every TCP connection of the instance's network namespace ended with a
 * reset to its peer (sock_reset_netns(): sock_diag SOCK_DESTROY, entered
 * through the instance's pidfd), so a client waiting for an answer from a
 * frozen or killed instance fails at once instead of hanging. Done once per
 * instance: later calls return the first call's result. Call it once the
 * instance is cut off or killed from the table's point of view (its
 * addresses in dead4/dead6, whose resets instance_egress lets out), or
 * while it still serves but no longer gets new flows. Never fatal: the
 * table's reset of later packets stays. Returns sockets reset or -errno. */
int instance_reset_connections(struct instance *instance);
/* What that call did, for a record's "connections_reset": {reset, found,
 * failed, truncated, usec, error?}; NULL when it did not run. */
json_t *instance_reset_json(const struct instance *instance);

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

/* service.c: one managed service and the operations on its instances. */

struct quarantine_job;

/* An instance that dies sooner than this after its start counts as a crash
 * loop: the next start waits, doubling up to the cap. */
#define SERVICE_QUICK_FAILURE_USEC (10 * USEC_PER_SEC)
#define SERVICE_BACKOFF_FIRST_USEC (250 * 1000ull)
#define SERVICE_BACKOFF_MAX_USEC (30 * USEC_PER_SEC)

/* How many kinds of detection a service counts when not acted on
 * (response_signal_kinds, response.c). */
#define RESPONSE_SIGNAL_KINDS 4

/* What a replacement does with the instance it replaces (response.c; here
 * because a service keeps the one of the replacement under way). */
enum response_disposal {
	RESPONSE_DISPOSE_KILL,	     /* kill and clean up */
	RESPONSE_DISPOSE_QUARANTINE, /* freeze, cut off, keep for forensics */
};

/* StandbyInstances= (standby.c): a fresh, verified instance that waits,
 * healthy and unrouted (no DNAT leads to it), for the next replacement. */
struct standby {
	struct instance *instance;
	uint64_t deadline_usec; /* CLOCK_MONOTONIC: its MaxLifetime= (with jitter); 0 = none */
	bool retiring;		/* past it: goes once a fresh standby is healthy */
};

struct service {
	struct fleet *fleet;
	char name[POLICY_NAME_MAX + 1];
	const struct policy *policy;
	char *policy_text; /* the policy as JSON, to notice a change on reload */
	struct snapshot *snapshot;
	struct seccomp_program *seccomp;
	int exec_fd; /* sealed memfd of the verified binary, for every launch */
	uid_t uid;
	gid_t gid;
	/* Why the service cannot run (none failed when it can): step names the
	 * check ("SnapshotKey=", "snapshot", "Exec=", "User=", ...), detail is
	 * the sentence its service-failed record and `mtdctl status` show. */
	struct step_error failed;
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
	enum response_disposal disposal;
	char reason[64];
	json_t *evidence;
	sd_event_source *replacement_deadline;
	sd_event_source *lifetime_timer;
	uint64_t *replacements; /* monotonic times of recent replacements (storm bound) */
	char egress_instance[INSTANCE_ID_MAX]; /* whose egress drops are counted */
	unsigned egress_drops;
	size_t n_replacements;
	bool from_standby; /* the replacement under way is a promoted standby */
	/* Detections not acted on (alert, errno), per response_signal_kinds;
	 * carried over a reload. */
	uint64_t not_acted_on[RESPONSE_SIGNAL_KINDS];
	/* the replacement under way is planned (RESPONSE_PLANNED: MaxLifetime=,
	 * `mtdctl replace`) and nothing since made it a compromise or a
	 * failure: the old instance may drain (DrainTimeout=) */
	bool planned;

	/* StandbyInstances= (standby.c); one more than the policy's most while
	 * a retiring standby waits for its successor to be healthy. */
	struct standby standbys[POLICY_STANDBY_MAX + 1];
	size_t n_standbys;
	sd_event_source *standby_timer; /* fill, renew, or retry after a failure */
	unsigned standby_failures;	/* consecutive: the retry backs off */
};

/* A frozen instance kept for forensics, and its evidence: saved by one
 * process at a time (quarantine.h), in the order they were quarantined. */
struct response_quarantined {
	char service[POLICY_NAME_MAX + 1];
	struct instance *instance;
	struct quarantine_job *job; /* its save is running */
	bool saved;		    /* its save is over (kept, or failed: audited) */
	char reason[64];
	json_t *evidence; /* until the save's record is written */
	uint64_t max_bytes;
};

struct response_disposal_job;
struct drain;

/* The fleet's state. fleet.c creates it and owns the set of services; the
 * layers below read its resources (event loop, rotation, cgroups, instance
 * numbers, host ids, audit hook) and response.c keeps its lists in it
 * (disposals, quarantined). */
struct fleet {
	sd_event *event;
	struct response_disposal_job *disposals; /* instances disposed of on the next loop turn */
	struct drain *drains; /* replaced instances whose connections run on (drain.c) */
	char *state_dir;
	struct response_quarantined *quarantined;
	size_t n_quarantined;
	struct rotation *rotation;
	struct cgroup_root *cgroups;
	struct fleet_hooks hooks;
	/* What every instance reports to (fleet.c's answers), set by fleet_new():
	 * service.c hands them to each instance it starts. */
	struct instance_hooks instance_hooks;
	struct service **services;
	size_t n_services;
	struct instance_ids *ids;      /* SERVICE-N: N never used twice on this host */
	struct uid_ranges *uid_ranges; /* each instance's host ids */
	bool monitor;		       /* --monitor: every service in alert (response_decide) */
};

/* Audit one event through the fleet's hook (fields stolen): how every file of
 * the fleet writes a record. */
void service_audit(struct fleet *fleet, const char *type, json_t *fields, bool sync);

/* A service for one load of policy p: its snapshot verified, its binary
 * sealed, its filter compiled, User=/Group= resolved. What fails is kept in
 * svc->failed and audited (service-failed); the service exists all the same
 * (and runs nothing). NULL without memory. */
struct service *service_new(struct fleet *fleet, const struct policy *p);
/* Free what service_new() made and the timers; its instances and response
 * state must be gone already (standby_stop_all, service_stop_instance,
 * response_service_done). NULL is fine. */
void service_free(struct service *svc);
/* The service named name among the fleet's, or NULL. */
struct service *service_find(struct fleet *fleet, const char *name);

/* Route the public port to instance; cut (may be NULL) loses its envelope in
 * the same transaction. */
int service_route(struct service *svc, struct instance *instance, struct instance *cut);
/* The public port leads nowhere (when it was routed). */
void service_unroute(struct service *svc);
/* Remove its envelope from the table, then destroy it. NULL is fine. */
void service_destroy_instance(struct fleet *fleet, struct instance *instance);
/* Audited (instance-stop), unrouted if it served, forgotten as current, next
 * or standby, destroyed. NULL is fine. */
void service_stop_instance(struct service *svc, struct instance *instance, const char *reason);
/* Start the service's current instance or, while one serves, its next
 * (replacement). Its failure is audited and retried with back-off. */
void service_start_instance(struct service *svc);
/* Start one instance of the service (id, addresses, envelope, process);
 * role ("instance", "standby") goes into its instance-start record. On
 * failure it is audited (instance-start-failed) and nothing remains. */
int service_launch_instance(struct service *svc, const char *role, struct instance **ret);
/* CLOCK_MONOTONIC when an instance started now reaches MaxLifetime= (less a
 * random jitter); 0 without MaxLifetime=. */
uint64_t service_lifetime_deadline(const struct service *svc, const struct instance *instance);
/* service_start_instance() on the next loop turn, or after the back-off of
 * quick_failures (audited: instance-backoff). Not for a failed service. */
void service_schedule_restart(struct service *svc);
/* Index of instance among the standbys, or -1. */
ssize_t service_standby_index(const struct service *svc, const struct instance *instance);
/* Take instance out of the standbys (the caller disposes of it). */
void service_forget_standby(struct service *svc, struct instance *instance);

/* response_quarantine.c: response_quarantine_instance() freezes (or kills
 * when it cannot) and queues the evidence save; the rest remove a kept
 * instance (its save cancelled if running) and describe it. */
void response_quarantine_instance(struct fleet *fleet, struct service *svc,
				  struct instance *instance, const char *reason, json_t *evidence);
void response_quarantine_remove(struct fleet *fleet, size_t index);
void response_quarantine_clear(struct fleet *fleet); /* at the fleet's end: saves cancelled */
json_t *response_quarantined_json(const struct response_quarantined *q);

/* standby.c */
/* Bring the standbys to StandbyInstances= (and renew those past MaxLifetime=)
 * after delay_usec, once the service serves and no replacement is under way. */
void standby_schedule(struct service *svc, uint64_t delay_usec);
/* A standby died (already forgotten and destroyed): another one starts, after
 * a back-off when they keep dying young. */
void standby_exited(struct service *svc, bool quick);
/* Whether standby_take() would give one. */
bool standby_available(const struct service *svc);
/* A healthy standby, taken out of the list (fresh ones before retiring
 * ones), or NULL. */
struct instance *standby_take(struct service *svc);
/* Stop every standby (service stopped, changed, failed, in a storm). */
void standby_stop_all(struct service *svc, const char *reason);
/* A standby became healthy: retiring ones whose successors are ready go. */
void standby_healthy(struct service *svc);
/* {"target": N, "ready": [ids], "starting": [ids], "retiring": [ids]} */
json_t *standby_json(const struct service *svc);

/* drain.c: DrainTimeout= */

/* Instances of one service draining at once, at most: each keeps its
 * addresses, memory and tasks. A planned replacement beyond it cuts the old
 * instance at once (audited: instance-drain-refused). */
#define DRAIN_MAX_PER_SERVICE 4

/* One draining instance; fleet->drains lists them (service.c reads their
 * addresses, drain.c owns the rest). */
struct drain {
	struct fleet *fleet;
	struct drain *next;
	char service[POLICY_NAME_MAX + 1];
	struct instance *instance;
	uint64_t started_usec, deadline_usec; /* CLOCK_MONOTONIC */
	sd_event_source *timer;		      /* the next poll, or the end */
	size_t open;			      /* flows at the last poll */
	int count_error;		      /* the last poll's, -errno */
	/* A sign of compromise arrived: cut off already, disposed of on the
	 * next loop turn (not inside the instance's own callback). */
	bool compromised;
	enum response_disposal disposal;
	char reason[32];
	json_t *evidence;
	unsigned egress_drops;
};

/* After a planned replacement routed past instance (it is no longer current,
 * next or standby): keep its envelope and let its established flows run on
 * until none is left or DrainTimeout= passes, then cut and kill it. False
 * when it does not drain (DrainTimeout=0, contained, the bound reached, no
 * memory): the caller disposes of it as before. Audited: instance-draining. */
bool drain_begin(struct service *svc, struct instance *instance, const char *reason);
size_t drain_count(const struct fleet *fleet, const char *service);
/* The drain of an instance (or of its id, or of its link "mtdiN"), or NULL. */
struct drain *drain_find(const struct fleet *fleet, const struct instance *instance);
struct drain *drain_find_id(const struct fleet *fleet, const char *id);
struct drain *drain_find_link(const struct fleet *fleet, const char *link);
const char *drain_service(const struct drain *d);
struct instance *drain_instance(const struct drain *d);
/* One more egress drop charged to the draining instance: how many so far. */
unsigned drain_egress_drop(struct drain *d);
/* A sign of compromise (kind, evidence stolen): its record written, the
 * instance frozen and cut off now, disposed of on the next loop turn. */
void drain_compromised(struct drain *d, const char *kind, json_t *evidence,
		       enum response_disposal disposal);
/* The draining instance exited: its drain ends, it is cleaned up. */
void drain_exited(struct drain *d);
/* For `mtdctl instances` (role "draining") and status (the ids of one
 * service's). */
json_t *drain_instances_json(const struct fleet *fleet);
json_t *drain_service_json(const struct fleet *fleet, const char *service);
/* At the fleet's end: every draining instance stopped (instance-stop). */
void drain_fleet_done(struct fleet *fleet);

/* response.c */

/* What a detection (a signal of compromise from an instance) gets. Pure:
 * the policy's OnCompromise= and OnSyscallViolation=, and the agent's
 * --monitor, which puts every service in alert. `mtdctl quarantine` is no
 * detection: the operator's word always acts. */
enum response_action {
	RESPONSE_ACT_ALERT,	 /* audited and counted, nothing else (docs/mtd.policy.5) */
	RESPONSE_ACT_ERRNO,	 /* OnSyscallViolation=errno: the call failed; recorded */
	RESPONSE_ACT_KILL,	 /* contained, replaced, killed */
	RESPONSE_ACT_QUARANTINE, /* contained, replaced, kept for forensics */
};
/* kind: "seccomp-violation", "drift", "egress" */
enum response_action response_decide(const struct policy *p, bool monitor, const char *kind);
/* "alert", "errno", "kill", "quarantine" (the audit records' "action") */
const char *response_action_name(enum response_action action);
/* The kinds counted per service when not acted on (alert, errno); the last
 * slot takes any other kind. */
extern const char *const response_signal_kinds[RESPONSE_SIGNAL_KINDS];
/* Index of kind in response_signal_kinds (the last one when unknown). */
size_t response_signal_kind_index(const char *kind);

/* At detection, before anything else (its record included): the instance
 * frozen (cgroup.freeze requested), cut off (out of the table's live and ingress sets,
 * one transaction), the freeze confirmed; a freeze that fails kills it.
 * Recorded as instance-contained with the times since detected_usec. Once
 * per instance. */
void response_contain(struct service *svc, struct instance *instance, const char *reason,
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
void response_replace(struct service *svc, struct instance *instance, const char *reason,
		      json_t *evidence, enum response_disposal disposal, uint64_t detected_usec,
		      unsigned flags);
/* next became healthy: route to it and dispose of the old one. */
void response_replacement_healthy(struct service *svc);
/* Arm MaxLifetime= (with jitter) for the serving instance. */
void response_arm_lifetime(struct service *svc);
/* The service's response state goes (service removed or stopped). */
void response_service_done(struct service *svc);
/* Quarantined instances are freed with the fleet. */
void response_fleet_done(struct fleet *fleet);
