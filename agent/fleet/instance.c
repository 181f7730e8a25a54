/* SPDX-License-Identifier: MIT */
#include "fleet_internal.h"
#include "json_bytes.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sandbox.h"
#include "macro.h"
#include "clock.h"
#include "log.h"

struct instance {
	char id[INSTANCE_ID_MAX];
	char service[POLICY_NAME_MAX + 1];
	char host_ifname[IFNAMSIZ];
	/* Copied from the policy at start: a reload frees the old policy set
	 * while this instance may still run. */
	bool health_tcp;
	uint16_t listen_port;
	uint64_t health_interval_usec;
	uint64_t health_timeout_usec;
	unsigned health_failures_max;
	sd_event *event;
	struct instance_hooks hooks;
	enum instance_state state;
	struct envelope_instance *envelope;
	struct instance_output *output; /* its stdout and stderr */
	sd_event_source *child_source;
	sd_event_source *violation_source; /* seccomp notifications */
	struct signal_tally *tally;   /* the first signal of a kind passes, the rest are counted */
	sd_event_source *tally_timer; /* when the counted ones are summed up */
	sd_event_source *drift_more;  /* the drift watch has more than one callback's share */
	uint64_t last_scan_usec;      /* the last full scan after lost drift events */
	struct drift_watch *drift;
	sd_event_source *drift_source;
	char **writable; /* Writable= (copied: the policy may be freed on reload) */
	size_t n_writable;
	sd_event_source *health_timer;
	struct health_probe *probe;
	unsigned health_failures; /* consecutive */
	char last_health[96];
	struct netdev_address addresses[2];
	size_t n_addresses;
	uint64_t started_usec;
	struct instance_containment containment; /* the owner's notes */
	bool link_created;
	bool reset_done;		/* instance_reset_connections() ran */
	struct sock_reset_result reset; /* what it did */
	int reset_error;		/* -errno, 0 */
	uint64_t reset_usec;		/* how long it took */
	struct uid_ranges *uid_ranges;	/* where host_id_base came from (NULL: none taken) */
	uid_t host_id_base;
};

const char *instance_state_name(enum instance_state state)
{
	switch (state) {
	case INSTANCE_STARTING:
		return "starting";
	case INSTANCE_HEALTHY:
		return "healthy";
	case INSTANCE_UNHEALTHY:
		return "unhealthy";
	case INSTANCE_EXITED:
		return "exited";
	case INSTANCE_QUARANTINED:
		return "quarantined";
	case INSTANCE_CONTAINED:
		return "contained";
	}
	return "?";
}

/* Everything the instance holds, in reverse order of setup. */
static void summarize_signals(const char *kind, uint64_t count, json_t *first_evidence,
			      uint64_t interval_usec, void *userdata);

static void release(struct instance *instance)
{
	health_probe_cancel(TAKE_PTR(instance->probe));
	instance->health_timer = sd_event_source_disable_unref(instance->health_timer);
	instance->child_source = sd_event_source_disable_unref(instance->child_source);
	instance->violation_source = sd_event_source_disable_unref(instance->violation_source);
	instance->drift_source = sd_event_source_disable_unref(instance->drift_source);
	instance->drift_more = sd_event_source_disable_unref(instance->drift_more);
	instance->tally_timer = sd_event_source_disable_unref(instance->tally_timer);
	/* What was counted and not yet summed up is summed up now. */
	if (instance->tally)
		signal_tally_flush(instance->tally, UINT64_MAX, summarize_signals, instance);
	drift_watch_free(TAKE_PTR(instance->drift));
	if (instance->envelope) {
		siginfo_t info;

		/* The host ids go back only once no process of them is left; a
		 * cgroup that would not empty keeps them taken. */
		if (envelope_cleanup(instance->envelope) < 0)
			instance->uid_ranges = NULL;
		/* pid 1 is dead now (the cgroup is empty): reap it unless the
		 * event loop already did, so no zombie outlives the instance. */
		(void)waitid(P_PIDFD, (id_t)envelope_pidfd(instance->envelope), &info,
			     WEXITED | WNOHANG);
		envelope_free(TAKE_PTR(instance->envelope));
	}
	if (instance->uid_ranges)
		uid_ranges_release(TAKE_PTR(instance->uid_ranges), instance->host_id_base);
	instance_output_free(TAKE_PTR(instance->output));
	if (instance->link_created) {
		(void)netdev_delete_link(instance->host_ifname);
		instance->link_created = false;
	}
}

void instance_destroy(struct instance *instance)
{
	if (!instance)
		return;
	release(instance);
	signal_tally_free(instance->tally);
	for (size_t i = 0; i < instance->n_writable; i++)
		free(instance->writable[i]);
	free(instance->writable);
	sd_event_unref(instance->event);
	free(instance);
}

static void arm_health(struct instance *instance);

static void on_health_done(bool healthy, const char *reason, void *userdata)
{
	struct instance *instance = userdata;

	instance->probe = NULL;
	snprintf(instance->last_health, sizeof(instance->last_health), "%s", reason);
	if (healthy) {
		instance->health_failures = 0;
		if (instance->state != INSTANCE_HEALTHY) {
			instance->state = INSTANCE_HEALTHY;
			if (instance->hooks.on_healthy)
				instance->hooks.on_healthy(instance, instance->hooks.userdata);
		}
	} else if (++instance->health_failures >= instance->health_failures_max &&
		   instance->state == INSTANCE_HEALTHY) {
		instance->state = INSTANCE_UNHEALTHY;
		if (instance->hooks.on_unhealthy)
			instance->hooks.on_unhealthy(instance, reason, instance->hooks.userdata);
		return; /* the owner replaces it; no more probes */
	}
	arm_health(instance);
}

static int on_health_timer(sd_event_source *source, uint64_t usec, void *userdata)
{
	struct instance *instance = userdata;
	int r;

	r = health_probe_start(instance->event, &instance->addresses[0], instance->listen_port,
			       instance->health_timeout_usec, on_health_done, instance,
			       &instance->probe);
	if (r < 0) {
		char reason[96];

		snprintf(reason, sizeof(reason), "probe: %s", strerror(-r));
		on_health_done(false, reason, instance);
	}
	return 0;
}

/* Until healthy, probe often so a new instance takes traffic quickly; then
 * every HealthInterval=. */
static void arm_health(struct instance *instance)
{
	uint64_t delay =
	    instance->state == INSTANCE_HEALTHY ? instance->health_interval_usec : 2000;

	if (!instance->health_timer) {
		/* 1 ms accuracy: sd-event's default slack (250 ms) would delay the
		 * first probes of a replacement, and with them the switch. */
		if (sd_event_add_time_relative(instance->event, &instance->health_timer,
					       CLOCK_MONOTONIC, delay, 1000, on_health_timer,
					       instance) < 0)
			return;
	} else {
		(void)sd_event_source_set_time_relative(instance->health_timer, delay);
	}
	(void)sd_event_source_set_enabled(instance->health_timer, SD_EVENT_ONESHOT);
}

static int on_child(sd_event_source *source, const siginfo_t *info, void *userdata)
{
	struct instance *instance = userdata;
	siginfo_t copy = *info;

	instance->state = INSTANCE_EXITED;
	release(instance);
	if (instance->hooks.on_exit)
		instance->hooks.on_exit(instance, &copy, instance->hooks.userdata);
	return 0;
}

static void summarize_signals(const char *kind, uint64_t count, json_t *first_evidence,
			      uint64_t interval_usec, void *userdata)
{
	struct instance *instance = userdata;

	if (instance->hooks.on_signals_counted)
		instance->hooks.on_signals_counted(instance->service, instance->id, kind, count,
						   first_evidence, interval_usec,
						   instance->hooks.userdata);
}

static int on_tally_timer(sd_event_source *source, uint64_t usec, void *userdata)
{
	struct instance *instance = userdata;
	uint64_t due;

	signal_tally_flush(instance->tally, usec, summarize_signals, instance);
	due = signal_tally_due(instance->tally);
	if (due == 0)
		return sd_event_source_set_enabled(source, SD_EVENT_OFF);
	(void)sd_event_source_set_time(source, due);
	return sd_event_source_set_enabled(source, SD_EVENT_ONESHOT);
}

/* The first signal of its kind goes to the owner (which responds); later ones
 * are counted and summed up once an interval (fleet_internal.h). */
static void raise_signal(struct instance *instance, const char *kind, json_t *evidence)
{
	uint64_t due;

	if (!instance->hooks.on_signal) {
		json_decref(evidence);
		return;
	}
	if (signal_tally_add(instance->tally, kind, evidence, now(CLOCK_MONOTONIC))) {
		instance->hooks.on_signal(instance, kind, evidence, instance->hooks.userdata);
		return;
	}
	due = signal_tally_due(instance->tally);
	if (due == 0)
		return;
	if (!instance->tally_timer) {
		if (sd_event_add_time(instance->event, &instance->tally_timer, CLOCK_MONOTONIC, due,
				      0, on_tally_timer, instance) < 0)
			return; /* the count waits for the instance's end */
	} else if (sd_event_source_get_enabled(instance->tally_timer, NULL) <= 0) {
		(void)sd_event_source_set_time(instance->tally_timer, due);
		(void)sd_event_source_set_enabled(instance->tally_timer, SD_EVENT_ONESHOT);
	}
}

/* At most this many notifications per wakeup: a storm of violations shares
 * the loop with the control socket and the rotation timers; what is left
 * stays queued in the kernel (its callers wait for their EPERM) and wakes
 * the loop again. */
#define VIOLATIONS_PER_CALLBACK 32

static int on_violation(sd_event_source *source, int fd, uint32_t revents, void *userdata)
{
	struct instance *instance = userdata;
	struct seccomp_violation v;
	int r = 0;

	/* Each notification is answered EPERM after its signal is raised: the
	 * response (freeze requested) comes first, so the calling thread, held
	 * in the kernel until the answer, never runs user code again. */
	for (unsigned i = 0; i < VIOLATIONS_PER_CALLBACK; i++) {
		r = seccomp_violation_receive(fd, &v);
		if (r < 0)
			break;
		/* The owner disposes of an instance later (deferred): this
		 * instance and its listener stay valid here. */
		raise_signal(instance, "seccomp-violation", seccomp_violation_evidence(&v));
		r = seccomp_violation_refuse(fd, &v);
		if (r < 0)
			break;
	}
	if (r == -EPIPE || (revents & EPOLLHUP))
		(void)sd_event_source_set_enabled(source, SD_EVENT_OFF);
	return 0;
}

static int collect_drift(const struct drift_event *event, void *userdata)
{
	json_array_append_new(userdata,
			      json_pack("{s:s, s:o}", "kind", drift_kind_name(event->kind), "path",
					json_bytes_str(event->path)));
	return 0;
}

static int raise_scanned(const struct drift_event *event, void *userdata)
{
	raise_signal(userdata, "drift",
		     json_pack("{s:s, s:o, s:s}", "kind", drift_kind_name(event->kind), "path",
			       json_bytes_str(event->path), "found_by", "scan"));
	return 0;
}

int instance_scan_drift(struct instance *instance, json_t **ret_findings)
{
	json_t *list = json_array();
	int r;

	if (!instance->envelope || !list) {
		json_decref(list);
		return -ESRCH;
	}
	r = drift_scan(envelope_upper_fd(instance->envelope), instance->writable,
		       instance->n_writable, collect_drift, list);
	if (r < 0) {
		json_decref(list);
		return r;
	}
	*ret_findings = list;
	return 0;
}

/* Reads of the watch per wakeup (each at most 16 reports and 64 inotify
 * events); the rest wait for the next one (drift_more). */
#define DRIFT_BATCHES_PER_CALLBACK 1
/* A full scan after lost events, at most this often once drift is known. */
#define DRIFT_RESCAN_USEC (10 * 1000 * 1000ull)

static void read_drift(struct instance *instance)
{
	struct drift_event events[16];
	size_t n = 0;

	for (unsigned batch = 0; batch < DRIFT_BATCHES_PER_CALLBACK; batch++) {
		if (drift_watch_read(instance->drift, events, ELEMENTSOF(events), &n) < 0)
			return;
		for (size_t i = 0; i < n; i++) {
			uint64_t now_usec = now(CLOCK_MONOTONIC);

			/* The watch fell behind: a scan of the whole layer says what is
			 * there, until drift is known; then at most every 10 s (the
			 * response is under way, and a scan is the attacker's to
			 * make expensive). */
			if (events[i].kind == DRIFT_EVENTS_LOST) {
				if (instance->last_scan_usec &&
				    now_usec - instance->last_scan_usec < DRIFT_RESCAN_USEC)
					continue;
				instance->last_scan_usec = now_usec;
				(void)drift_scan(envelope_upper_fd(instance->envelope),
						 instance->writable, instance->n_writable,
						 raise_scanned, instance);
				continue;
			}
			raise_signal(instance, "drift",
				     json_pack("{s:s, s:o}", "kind",
					       drift_kind_name(events[i].kind), "path",
					       json_bytes_str(events[i].path)));
		}
		if (n < ELEMENTSOF(events) && !drift_watch_busy(instance->drift))
			return;
	}
	/* More than one wakeup's share: go on after everything else pending. */
	(void)sd_event_source_set_enabled(instance->drift_more, SD_EVENT_ONESHOT);
}

static int on_drift(sd_event_source *source, int fd, uint32_t revents, void *userdata)
{
	read_drift(userdata);
	return 0;
}

static int on_drift_more(sd_event_source *source, void *userdata)
{
	read_drift(userdata);
	return 0;
}

/* An instance's signal sources come after root's control connections
 * (control.c: priority 1), the rotation timers and the signals of the agent
 * (priority 0) whenever both are due, and before the read group's control
 * connections (priority 20): a storm from an instance waits, root's `mtdctl
 * status` and a boundary do not, and a flood on the socket does not delay
 * detection. Among themselves they take turns. (sd-event dispatches the oldest
 * pending source of the best priority; a continuation re-enabled inside its
 * own dispatch is always the oldest, so at one priority it would never let
 * the control socket in.) */
#define INSTANCE_SIGNAL_PRIORITY (SD_EVENT_PRIORITY_NORMAL + 10)

/* The detection sources of a running instance: seccomp notifications and
 * drift in its writable layer. Failing to watch is failing to start. */
static int watch_signals(struct instance *instance, char *const *writable, size_t n_writable,
			 struct step_error *ret_error)
{
	int fd = envelope_notify_fd(instance->envelope), r;

	if (fd >= 0) {
		r = sd_event_add_io(instance->event, &instance->violation_source, fd, EPOLLIN,
				    on_violation, instance);
		if (r >= 0)
			r = sd_event_source_set_priority(instance->violation_source,
							 INSTANCE_SIGNAL_PRIORITY);
		if (r < 0)
			return step_error_set(ret_error, "seccomp notify", r, "event source: %s",
					      strerror(-r));
	}
	r = drift_watch_new(envelope_upper_fd(instance->envelope), writable, n_writable,
			    &instance->drift);
	if (r >= 0)
		r = sd_event_add_io(instance->event, &instance->drift_source,
				    drift_watch_fd(instance->drift), EPOLLIN, on_drift, instance);
	if (r >= 0)
		r = sd_event_source_set_priority(instance->drift_source, INSTANCE_SIGNAL_PRIORITY);
	if (r >= 0)
		r = sd_event_add_defer(instance->event, &instance->drift_more, on_drift_more,
				       instance);
	if (r >= 0)
		r = sd_event_source_set_priority(instance->drift_more, INSTANCE_SIGNAL_PRIORITY);
	if (r >= 0)
		r = sd_event_source_set_enabled(instance->drift_more, SD_EVENT_OFF);
	if (r < 0)
		return step_error_set(ret_error, "drift watch", r, "upper layer: %s", strerror(-r));
	return 0;
}

struct setup_context {
	struct instance *instance;
	struct step_error error; /* the link's, when it failed */
};

/* In the parent, while the child does its mounts: its link. */
static int setup_link(pid_t pid, int pidfd, void *userdata)
{
	struct setup_context *ctx = userdata;
	struct instance *instance = ctx->instance;
	struct netdev_link_spec link = {.n_addresses = instance->n_addresses};
	struct step_error link_error;
	char path[64], text[STEP_ERROR_FORMAT_MAX];
	_cleanup_close_ int netns = -1;
	int r;

	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
	netns = open(path, O_RDONLY | O_CLOEXEC);
	if (netns < 0)
		return step_error_set(&ctx->error, "network namespace", errno, "%s: %s", path,
				      strerror(errno));
	snprintf(link.host_ifname, sizeof(link.host_ifname), "%s", instance->host_ifname);
	link.netns_fd = netns;
	memcpy(link.addresses, instance->addresses, sizeof(link.addresses));
	r = netdev_create_instance_link(&link, &link_error);
	if (r < 0)
		return step_error_set(&ctx->error, "network link", r, "%s: %s",
				      instance->host_ifname,
				      step_error_format(&link_error, text, sizeof(text)));
	instance->link_created = true;
	return 0;
}

int instance_start(sd_event *event, const struct instance_spec *spec,
		   const struct instance_hooks *hooks, struct instance **ret_instance,
		   struct step_error *ret_error)
{
	const struct policy *p = spec->policy;
	struct instance *instance;
	struct setup_context ctx = {0};
	struct envelope_spec env;
	struct step_error env_error = {0};
	char instance_env[96];
	int output_fd = -1;
	char *envp[] = {(char *)"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			instance_env, NULL};
	struct snapshot_error snap_error = {0};
	int r;

	/* What runs is what was verified: the tree is still as it was, or is
	 * verified again, or nothing starts (docs/snapshot.md "Every start"). */
	r = snapshot_recheck(spec->snapshot, &snap_error);
	if (r < 0)
		return step_error_set(ret_error, "snapshot", r, "%.80s/%.100s: %.130s", p->snapshot,
				      snap_error.path, snap_error.reason);

	instance = calloc(1, sizeof(*instance));
	if (!instance)
		return -ENOMEM;
	snprintf(instance->id, sizeof(instance->id), "%s", spec->id);
	snprintf(instance->service, sizeof(instance->service), "%s", p->name);
	snprintf(instance->host_ifname, sizeof(instance->host_ifname), "%s", spec->host_ifname);
	instance->health_tcp = p->health_check == HEALTH_CHECK_TCP && p->has_listen_port;
	instance->listen_port = p->listen_port;
	instance->health_interval_usec = p->health_interval_usec;
	instance->health_timeout_usec = p->health_timeout_usec;
	instance->health_failures_max = p->health_failures;
	instance->event = sd_event_ref(event);
	instance->hooks = *hooks;
	instance->tally = signal_tally_new(INSTANCE_SIGNAL_INTERVAL_USEC);
	if (!instance->tally) {
		sd_event_unref(instance->event);
		free(instance);
		return -ENOMEM;
	}
	memcpy(instance->addresses, spec->addresses, sizeof(instance->addresses));
	instance->n_addresses = spec->n_addresses;
	snprintf(instance_env, sizeof(instance_env), "MTD_INSTANCE=%s", spec->id);

	envelope_spec_init(&env);
	env.instance_id = instance->id;
	env.lower_fd = snapshot_root_fd(spec->snapshot);
	env.upper_size_bytes = p->writable_size_bytes;
	env.exec_fd = spec->exec_fd;
	env.argv = p->exec_argv.items;
	env.envp = envp;
	env.uid = spec->uid;
	env.gid = spec->gid;
	r = uid_ranges_take(spec->uid_ranges, &env.host_id_base);
	if (r < 0) {
		step_error_set(ret_error, "host ids", r, "no free range of %u host ids: %s",
			       UID_RANGE_SIZE, strerror(-r));
		goto fail;
	}
	instance->uid_ranges = spec->uid_ranges;
	instance->host_id_base = env.host_id_base;
	r = uid_ranges_idmap_userns(spec->uid_ranges, env.host_id_base, &env.idmap_userns_fd);
	if (r < 0) {
		step_error_set(ret_error, "host ids", r, "user namespace mapping %u..: %s",
			       (unsigned)env.host_id_base, strerror(-r));
		goto fail;
	}
	env.capabilities = p->capabilities;
	env.seccomp = spec->seccomp;
	env.limit_nofile = p->limit_nofile;
	env.limits = (struct cgroup_limits){
	    .memory_max = p->memory_max_bytes,
	    .tasks_max = p->tasks_max,
	    .cpu_quota_percent = p->cpu_quota_percent,
	};
	env.hostname = p->name;
	/* Output goes to the journal under the instance's own name, through
	 * the agent: never to the agent's terminal or journal stream. */
	r = instance_output_new(event, p->name, spec->id, &output_fd, &instance->output);
	if (r < 0) {
		step_error_set(ret_error, "output", r, "pipe for stdout and stderr: %s",
			       strerror(-r));
		goto fail;
	}
	env.stdio_fds[1] = output_fd;
	env.stdio_fds[2] = output_fd;
	ctx.instance = instance;
	env.setup_in_parent = setup_link;
	env.userdata = &ctx;

	r = envelope_spawn(&env, spec->cgroups, &instance->envelope, &env_error);
	/* The child has its copy: the reading end sees EOF once the instance's
	 * last process is gone. */
	close(output_fd);
	if (r < 0) {
		if (step_error_failed(&ctx.error)) {
			*ret_error = ctx.error;
		} else {
			char text[STEP_ERROR_FORMAT_MAX];

			/* the record's reason has always been the whole text */
			step_error_set(ret_error, env_error.step, r, "%s",
				       step_error_format(&env_error, text, sizeof(text)));
		}
		goto fail;
	}
	instance->started_usec = now(CLOCK_MONOTONIC);

	r = sd_event_add_child_pidfd(event, &instance->child_source,
				     envelope_pidfd(instance->envelope), WEXITED, on_child,
				     instance);
	if (r < 0) {
		step_error_set(ret_error, "supervise", r, "pidfd: %s", strerror(-r));
		goto fail;
	}
	/* The envelope owns the pidfd. */
	(void)sd_event_source_set_child_pidfd_own(instance->child_source, false);
	instance->writable = calloc(spec->n_writable + 1, sizeof(char *));
	for (size_t i = 0; instance->writable && i < spec->n_writable; i++) {
		instance->writable[i] = strdup(spec->writable[i]);
		if (!instance->writable[i])
			break;
		instance->n_writable++;
	}
	if (!instance->writable || instance->n_writable != spec->n_writable) {
		r = step_error_set(ret_error, "drift watch", ENOMEM, "out of memory");
		goto fail;
	}
	r = watch_signals(instance, instance->writable, instance->n_writable, ret_error);
	if (r < 0)
		goto fail;

	if (instance->health_tcp) {
		arm_health(instance);
	} else {
		instance->state = INSTANCE_HEALTHY;
		snprintf(instance->last_health, sizeof(instance->last_health), "no health check");
	}
	*ret_instance = instance;
	if (instance->state == INSTANCE_HEALTHY && hooks->on_healthy)
		hooks->on_healthy(instance, hooks->userdata);
	return 0;
fail:
	instance_destroy(instance);
	return r < 0 ? r : -EIO;
}

int instance_freeze_begin(struct instance *instance)
{
	int r;

	if (instance->state == INSTANCE_CONTAINED || instance->state == INSTANCE_QUARANTINED)
		return 0;
	if (!instance->envelope)
		return -ESRCH;
	/* Freeze before anything else: every step after this one (the record,
	 * the cut, the route, the evidence) is time the attacker no longer has.
	 * Written, not waited for: each task traps before its next instruction
	 * in user space, and instance_contain() confirms it. */
	r = envelope_freeze_request(instance->envelope);
	if (r < 0)
		return r;
	/* A frozen instance answers no probe: it must not be judged unhealthy
	 * (a second response) while it waits for its disposal. */
	health_probe_cancel(TAKE_PTR(instance->probe));
	instance->health_timer = sd_event_source_disable_unref(instance->health_timer);
	instance->state = INSTANCE_CONTAINED;
	return 0;
}

int instance_contain(struct instance *instance)
{
	int r;

	if (instance->state == INSTANCE_QUARANTINED)
		return 0;
	r = instance_freeze_begin(instance);
	if (r < 0)
		return r;
	return envelope_freeze(instance->envelope, true);
}

struct instance_containment *instance_containment(struct instance *instance)
{
	return &instance->containment;
}

int instance_kill(struct instance *instance)
{
	return instance->envelope ? envelope_kill(instance->envelope) : -ESRCH;
}

int instance_reset_connections(struct instance *instance)
{
	uint64_t start;

	if (instance->reset_done)
		return instance->reset_error < 0 ? instance->reset_error
						 : (int)instance->reset.reset;
	/* Never healthy, so never routed: no client to reset (and pid 1 of an
	 * exited one is gone). Not marked done: nothing is recorded. */
	if (instance->state == INSTANCE_STARTING || instance->state == INSTANCE_EXITED)
		return 0;
	instance->reset_done = true;
	if (!instance->envelope) {
		instance->reset_error = -ESRCH;
		return -ESRCH;
	}
	start = now(CLOCK_MONOTONIC);
	/* setns() takes a pidfd: the namespace of the instance's pid 1, which
	 * cannot be another process's, even once it has exited (ESRCH). */
	instance->reset_error =
	    sock_reset_netns(envelope_pidfd(instance->envelope), &instance->reset);
	instance->reset_usec = now(CLOCK_MONOTONIC) - start;
	if ((instance->reset_error < 0 && instance->reset_error != -ESRCH) ||
	    instance->reset.failed || instance->reset.truncated)
		log_warning("%s: %u of %u connections reset (%u failed, %s%s)", instance->id,
			    instance->reset.reset, instance->reset.found, instance->reset.failed,
			    strerror(-(instance->reset_error < 0 ? instance->reset_error
								 : instance->reset.first_error)),
			    instance->reset.truncated ? ", more than the bound" : "");
	return instance->reset_error < 0 ? instance->reset_error : (int)instance->reset.reset;
}

json_t *instance_reset_json(const struct instance *instance)
{
	int e;

	if (!instance->reset_done)
		return NULL;
	e = instance->reset_error < 0 ? instance->reset_error : instance->reset.first_error;
	return json_pack(
	    "{s:I, s:I, s:I, s:b, s:I, s:s?}", "reset", (json_int_t)instance->reset.reset, "found",
	    (json_int_t)instance->reset.found, "failed", (json_int_t)instance->reset.failed,
	    "truncated", instance->reset.truncated, "usec", (json_int_t)instance->reset_usec,
	    "error", e < 0 ? strerror(-e) : NULL);
}

int instance_isolate_and_freeze(struct instance *instance)
{
	int r;

	r = instance_contain(instance);
	if (r < 0)
		return r;
	/* Frozen callers of a violation must still be answered: keep that source.
	 * Drift is over: what was written is in the evidence. */
	instance->drift_source = sd_event_source_disable_unref(instance->drift_source);
	instance->drift_more = sd_event_source_disable_unref(instance->drift_more);
	drift_watch_free(TAKE_PTR(instance->drift));
	/* Its memory stays for the evidence, its connections do not: reset
	 * (once: a contained instance's were at its containment). */
	(void)instance_reset_connections(instance);
	if (instance->link_created) {
		r = netdev_delete_link(instance->host_ifname);
		if (r < 0 && r != -ENODEV)
			return r;
		instance->link_created = false;
	}
	instance->state = INSTANCE_QUARANTINED;
	return 0;
}

int instance_upper_fd(const struct instance *instance)
{
	return instance->envelope ? envelope_upper_fd(instance->envelope) : -1;
}

const char *instance_cgroup_path(const struct instance *instance)
{
	return instance->envelope ? envelope_cgroup_path(instance->envelope) : NULL;
}

const char *instance_link(const struct instance *instance)
{
	return instance->host_ifname;
}

const char *instance_id(const struct instance *instance)
{
	return instance->id;
}

const char *instance_service(const struct instance *instance)
{
	return instance->service;
}

enum instance_state instance_state(const struct instance *instance)
{
	return instance->state;
}

pid_t instance_pid(const struct instance *instance)
{
	return instance->envelope ? envelope_pid(instance->envelope) : 0;
}

const struct netdev_address *instance_addresses(const struct instance *instance, size_t *ret_n)
{
	*ret_n = instance->n_addresses;
	return instance->addresses;
}

uint64_t instance_started_usec(const struct instance *instance)
{
	return instance->started_usec;
}

json_t *instance_to_json(const struct instance *instance)
{
	json_t *addresses = json_array();

	for (size_t i = 0; addresses && i < instance->n_addresses; i++) {
		char text[INET6_ADDRSTRLEN] = "?";

		inet_ntop(instance->addresses[i].family, &instance->addresses[i].v4, text,
			  sizeof(text));
		json_array_append_new(addresses, json_string(text));
	}
	return json_pack(
	    "{s:s, s:s, s:i, s:o, s:I, s:s, s:s, s:s, s:I}", "id", instance->id, "service",
	    instance->service, "pid", (int)instance_pid(instance), "addresses", addresses,
	    "age_usec", (json_int_t)(now(CLOCK_MONOTONIC) - instance->started_usec), "state",
	    instance_state_name(instance->state), "health", instance->last_health, "link",
	    instance->host_ifname, "host_ids", (json_int_t)instance->host_id_base);
}

void instance_format_exit(const siginfo_t *info, char *buffer, size_t size)
{
	const char *signal_name;

	switch (info->si_code) {
	case CLD_EXITED:
		snprintf(buffer, size, "exited %d", info->si_status);
		return;
	case CLD_KILLED:
	case CLD_DUMPED:
		signal_name = sigabbrev_np(info->si_status);
		snprintf(buffer, size, "%s by SIG%s",
			 info->si_code == CLD_KILLED ? "killed" : "dumped",
			 signal_name ? signal_name : "?");
		return;
	default:
		snprintf(buffer, size, "ended (code %d)", info->si_code);
	}
}
