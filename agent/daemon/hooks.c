/* SPDX-License-Identifier: MIT */
/* OnEvent= hooks ([Hooks] of the global file, docs/hooks.md): each audit
 * record the agent publishes runs the hooks whose TYPES match it. A hook is a
 * process of its own, started with fork+exec and followed by its pidfd; its
 * stdin is a pipe the loop writes the record line into without blocking, its
 * stdout and stderr a pipe the loop reads into the log. The loop never waits
 * for a hook: a hook that does not read, does not exit or floods its output
 * costs a few fds and is killed at HookTimeout=.
 *
 * The child's path from fork to exec is the sandbox, in order: its own
 * process group (the timeout kills the group), default signal mask and
 * dispositions, stdin/stdout/stderr and nothing else, HookUser=
 * (setgroups, setgid, setuid), no new privileges, death with the agent, "/"
 * as working directory, an environment of PATH and MTD_EVENT_* only.
 *
 * Failures (exec or set-up failure, exit status other than 0, a signal, the
 * timeout, a full queue) are audited as hook-failed; a hook over HookRate= is
 * audited once per window as hook-rate-limited. Those records are emitted
 * from a deferred event, never from inside the publishing of another record,
 * and they never run hooks themselves (policy_hook_matches). */
#include "agent_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "macro.h"

#define HOOKS_RUNNING_MAX 8  /* hooks running at once */
#define HOOKS_QUEUE_MAX 256  /* waiting for one of those; beyond, dropped */
#define HOOK_OUTPUT_MAX 4096 /* bytes of a hook's output logged; the rest counted */
#define HOOK_PATH "PATH=/usr/local/bin:/usr/bin:/bin"

/* What the child reports through its status pipe when a step before exec
 * (or exec itself) fails. */
struct child_failure {
	int step;
	int error;
};

enum child_step { STEP_FDS, STEP_USER, STEP_NO_NEW_PRIVS, STEP_EXEC };
static const char *const step_names[] = {
    [STEP_FDS] = "descriptors",
    [STEP_USER] = "HookUser=",
    [STEP_NO_NEW_PRIVS] = "no_new_privs",
    [STEP_EXEC] = "exec",
};

struct job {
	struct hooks *hooks;
	struct job *next; /* queue, or the list of running jobs */
	char **argv;	  /* copies: a reload does not pull them away */
	char *type;
	char *line; /* the record line and "\n", written to stdin */
	size_t line_len, written;
	uint64_t seq;
	uint64_t timeout_usec;
	pid_t pid;
	int pidfd, stdin_fd, output_fd, status_fd;
	sd_event_source *child_source, *stdin_source, *output_source, *timer_source;
	bool timed_out;
	char output[HOOK_OUTPUT_MAX + 1];
	size_t output_len;   /* in output[], not logged yet */
	size_t output_taken; /* bytes of this run logged or to be: at most HOOK_OUTPUT_MAX */
	size_t output_dropped;
};

/* Records of the runner's own, waiting for the deferred event. */
struct notice {
	struct notice *next;
	char *type;
	json_t *fields;
};

struct hook_config {
	struct policy_hook hook; /* owned copies */
	char *service;		 /* a policy's OnEvent=: only records of this service */
	struct policy_rate rate;
};

struct hooks {
	sd_event *event;
	hooks_audit_fn audit;
	void *userdata;
	struct hook_config *configs;
	size_t config_count;
	uint64_t timeout_usec;
	unsigned rate_limit;
	uint64_t rate_interval_usec;
	char *user;
	uid_t uid;
	gid_t gid;
	int user_error; /* errno of resolving HookUser=, 0 when resolved */
	struct job *running, *queue_head, *queue_tail;
	size_t running_count, queue_count;
	bool queue_full_audited; /* until the queue empties: drops only counted */
	struct notice *notices, **notices_tail;
	sd_event_source *notice_source;
	uint64_t started, failed, rate_limited, queue_dropped;
};

static void strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

static char **strv_copy(char *const *v, size_t n)
{
	char **c = calloc(n + 1, sizeof(*c));

	for (size_t i = 0; c && i < n; i++)
		if (!(c[i] = strdup(v[i]))) {
			strv_free(c);
			return NULL;
		}
	return c;
}

/* --- the runner's own records ------------------------------------------------ */

static int on_notices(sd_event_source *s, void *userdata)
{
	struct hooks *h = userdata;
	struct notice *n;

	while ((n = h->notices)) {
		h->notices = n->next;
		if (!h->notices)
			h->notices_tail = &h->notices;
		(void)h->audit(n->type, n->fields, h->userdata);
		free(n->type);
		free(n);
	}
	return 0;
}

/* fields stolen. Logged at once when it cannot be queued. */
static void notice_push(struct hooks *h, const char *type, json_t *fields)
{
	struct notice *n = calloc(1, sizeof(*n));

	if (!n || !fields || !(n->type = strdup(type)) ||
	    sd_event_source_set_enabled(h->notice_source, SD_EVENT_ONESHOT) < 0) {
		log_error("hooks: cannot audit a %s record (out of memory)", type);
		json_decref(fields);
		if (n)
			free(n->type);
		free(n);
		return;
	}
	n->fields = fields;
	*h->notices_tail = n;
	h->notices_tail = &n->next;
}

static void audit_failure(struct hooks *h, const char *program, const char *type, uint64_t seq,
			  const char *reason)
{
	h->failed++;
	log_warning("hooks: %s for %s record %llu failed: %s", program, type,
		    (unsigned long long)seq, reason);
	notice_push(h, "hook-failed",
		    json_pack("{s:s, s:I, s:s, s:s}", "hook", program, "event_seq", (json_int_t)seq,
			      "event_type", type, "reason", reason));
}

/* --- a job's life ------------------------------------------------------------ */

static void job_free(struct job *job)
{
	if (!job)
		return;
	sd_event_source_disable_unref(job->child_source);
	sd_event_source_disable_unref(job->stdin_source);
	sd_event_source_disable_unref(job->output_source);
	sd_event_source_disable_unref(job->timer_source);
	closep(&job->pidfd);
	closep(&job->stdin_fd);
	closep(&job->output_fd);
	closep(&job->status_fd);
	strv_free(job->argv);
	free(job->type);
	free(job->line);
	free(job);
}

/* The hook's output, one log line per line, prefixed with who wrote it. */
static void flush_output(struct job *job, bool all)
{
	char *start = job->output, *end = job->output + job->output_len, *nl;

	while ((nl = memchr(start, '\n', (size_t)(end - start))) || (all && start < end)) {
		if (!nl)
			nl = end;
		*nl = 0;
		log_info("hook %s[%d]: %s", job->argv[0], (int)job->pid, start);
		start = nl < end ? nl + 1 : end;
	}
	job->output_len = (size_t)(end - start);
	memmove(job->output, start, job->output_len);
}

static void read_output(struct job *job)
{
	for (;;) {
		char chunk[4096];
		ssize_t n = read(job->output_fd, chunk, sizeof(chunk));
		size_t room = HOOK_OUTPUT_MAX - job->output_taken, take;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0 || errno != EAGAIN) {
				job->output_source =
				    sd_event_source_disable_unref(job->output_source);
				closep(&job->output_fd);
				job->output_fd = -1;
			}
			return;
		}
		take = (size_t)n < room ? (size_t)n : room;
		memcpy(job->output + job->output_len, chunk, take);
		job->output_len += take;
		job->output_taken += take;
		job->output_dropped += (size_t)n - take;
		flush_output(job, job->output_len == HOOK_OUTPUT_MAX);
	}
}

static int on_output(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	read_output(userdata);
	return 0;
}

static void close_stdin(struct job *job)
{
	job->stdin_source = sd_event_source_disable_unref(job->stdin_source);
	closep(&job->stdin_fd);
	job->stdin_fd = -1;
}

/* The record line, as much as the pipe takes now; closed when all is
 * written or the hook is gone (EPIPE: it need not read it). */
static int on_stdin(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct job *job = userdata;

	while (job->written < job->line_len) {
		ssize_t n =
		    write(job->stdin_fd, job->line + job->written, job->line_len - job->written);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n < 0)
			break;
		job->written += (size_t)n;
	}
	close_stdin(job);
	return 0;
}

static int on_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct job *job = userdata;

	job->timed_out = true;
	(void)kill(-job->pid, SIGKILL);
	(void)syscall(SYS_pidfd_send_signal, job->pidfd, SIGKILL, NULL, 0);
	return 0;
}

static void start_queued(struct hooks *h);

static void job_unlink_running(struct hooks *h, struct job *job)
{
	for (struct job **p = &h->running; *p; p = &(*p)->next)
		if (*p == job) {
			*p = job->next;
			h->running_count--;
			return;
		}
}

static int on_hook_exit(sd_event_source *s, const siginfo_t *si, void *userdata)
{
	struct job *job = userdata;
	struct hooks *h = job->hooks;
	struct child_failure failure;
	char reason[256], span[POLICY_TIMESPAN_MAX];
	ssize_t n;

	/* The leader is a zombie until this returns: its group id is still
	 * its own, so what it left running in the group goes with it. */
	(void)kill(-job->pid, SIGKILL);
	n = read(job->status_fd, &failure, sizeof(failure));
	if (n == (ssize_t)sizeof(failure) && failure.step >= 0 &&
	    (size_t)failure.step < ELEMENTSOF(step_names))
		snprintf(reason, sizeof(reason), "%s: %s", step_names[failure.step],
			 strerror(failure.error));
	else if (job->timed_out)
		snprintf(reason, sizeof(reason), "timeout: killed after HookTimeout=%s",
			 policy_format_timespan(span, sizeof(span), job->timeout_usec));
	else if (si->si_code == CLD_EXITED && si->si_status != 0)
		snprintf(reason, sizeof(reason), "exit status %d", si->si_status);
	else if (si->si_code == CLD_KILLED || si->si_code == CLD_DUMPED)
		snprintf(reason, sizeof(reason), "killed by signal %d (%s)", si->si_status,
			 strsignal(si->si_status));
	else
		reason[0] = 0;
	if (job->output_fd >= 0)
		read_output(job);
	flush_output(job, true);
	if (job->output_dropped)
		log_info("hook %s[%d]: (%zu more bytes of output not logged)", job->argv[0],
			 (int)job->pid, job->output_dropped);
	if (reason[0])
		audit_failure(h, job->argv[0], job->type, job->seq, reason);
	job_unlink_running(h, job);
	job_free(job);
	start_queued(h);
	return 0;
}

/* --- the child: fork to exec -------------------------------------------------- */

_Noreturn static void child_fail(int status_fd, enum child_step step)
{
	struct child_failure f = {.step = step, .error = errno};

	(void)!write(status_fd, &f, sizeof(f));
	_exit(127);
}

/* Only async-signal-safe calls from here to exec: the agent may have other
 * threads' locks held at the fork. */
_Noreturn static void child_run(const struct hooks *h, const struct job *job, int stdin_fd,
				int output_fd, int status_fd, char *const envp[])
{
	struct sigaction dfl = {.sa_handler = SIG_DFL};
	sigset_t none;
	int fd;

	(void)setpgid(0, 0);
	sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
	for (int sig = 1; sig < NSIG; sig++)
		(void)sigaction(sig, &dfl, NULL);

	/* 0, 1, 2 and the status pipe (close-on-exec) at 3; nothing else. */
	fd = fcntl(status_fd, F_DUPFD_CLOEXEC, 16);
	if (fd < 0)
		_exit(127);
	status_fd = fd;
	if (dup2(stdin_fd, STDIN_FILENO) < 0 || dup2(output_fd, STDOUT_FILENO) < 0 ||
	    dup2(output_fd, STDERR_FILENO) < 0)
		child_fail(status_fd, STEP_FDS);
	if (dup3(status_fd, 3, O_CLOEXEC) < 0)
		child_fail(status_fd, STEP_FDS);
	status_fd = 3;
	if (syscall(SYS_close_range, 4U, ~0U, 0U) < 0)
		child_fail(status_fd, STEP_FDS);

	if (setgroups(0, NULL) < 0 || setresgid(h->gid, h->gid, h->gid) < 0 ||
	    setresuid(h->uid, h->uid, h->uid) < 0)
		child_fail(status_fd, STEP_USER);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		child_fail(status_fd, STEP_NO_NEW_PRIVS);
	/* After setuid, which clears it. */
	(void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	(void)!chdir("/");
	execve(job->argv[0], job->argv, envp);
	child_fail(status_fd, STEP_EXEC);
}

static int make_env(const struct job *job, char ***ret)
{
	char **env = calloc(4, sizeof(*env));

	if (!env)
		return -ENOMEM;
	if (!(env[0] = strdup(HOOK_PATH)) ||
	    asprintf(&env[1], "MTD_EVENT_TYPE=%s", job->type) < 0 ||
	    asprintf(&env[2], "MTD_EVENT_SEQ=%llu", (unsigned long long)job->seq) < 0) {
		env[1] = env[2] = NULL;
		strv_free(env);
		return -ENOMEM;
	}
	*ret = env;
	return 0;
}

/* Fork, exec, and hand the pipes and the pidfd to the loop. On failure the
 * job is untouched but for its fds (the caller frees it). */
static int job_start(struct hooks *h, struct job *job)
{
	int in[2] = {-1, -1}, out[2] = {-1, -1}, status[2] = {-1, -1}, r;
	char **env = NULL;

	if (h->user_error)
		return -h->user_error;
	r = make_env(job, &env);
	if (r < 0)
		return r;
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 ||
	    pipe2(status, O_CLOEXEC | O_NONBLOCK) < 0) {
		r = -errno;
		goto fail;
	}
	job->pid = fork();
	if (job->pid < 0) {
		r = -errno;
		goto fail;
	}
	if (job->pid == 0)
		child_run(h, job, in[0], out[1], status[1], env);
	/* Also here: whichever of the two runs first, the group exists before
	 * the timeout could signal it. */
	(void)setpgid(job->pid, job->pid);
	close(in[0]);
	close(out[1]);
	close(status[1]);
	in[0] = out[1] = status[1] = -1;
	job->stdin_fd = in[1];
	job->output_fd = out[0];
	job->status_fd = status[0];
	in[1] = out[0] = status[0] = -1;
	strv_free(env);
	env = NULL;

	/* Not reaped before the pidfd is open, so the pid is still ours. */
	job->pidfd = (int)syscall(SYS_pidfd_open, job->pid, 0);
	if (job->pidfd < 0) {
		r = -errno;
		(void)kill(-job->pid, SIGKILL);
		(void)kill(job->pid, SIGKILL);
		(void)waitpid(job->pid, NULL, 0);
		return r;
	}
	if (fcntl(job->stdin_fd, F_SETFL, O_NONBLOCK) < 0 ||
	    fcntl(job->output_fd, F_SETFL, O_NONBLOCK) < 0)
		r = -errno;
	else
		r = sd_event_add_child_pidfd(h->event, &job->child_source, job->pidfd, WEXITED,
					     on_hook_exit, job);
	if (r >= 0)
		r = sd_event_add_io(h->event, &job->stdin_source, job->stdin_fd, EPOLLOUT, on_stdin,
				    job);
	if (r >= 0)
		r = sd_event_add_io(h->event, &job->output_source, job->output_fd, EPOLLIN,
				    on_output, job);
	if (r >= 0)
		r = sd_event_add_time_relative(h->event, &job->timer_source, CLOCK_MONOTONIC,
					       job->timeout_usec, 0, on_timeout, job);
	if (r < 0) {
		siginfo_t si;

		(void)kill(-job->pid, SIGKILL);
		(void)syscall(SYS_pidfd_send_signal, job->pidfd, SIGKILL, NULL, 0);
		while (waitid(P_PIDFD, (id_t)job->pidfd, &si, WEXITED) < 0 && errno == EINTR)
			;
		return r;
	}
	return 0;

fail:
	for (int i = 0; i < 2; i++) {
		closep(&in[i]);
		closep(&out[i]);
		closep(&status[i]);
	}
	strv_free(env);
	return r;
}

static void run(struct hooks *h, struct job *job)
{
	char reason[256];
	int r = job_start(h, job);

	if (r < 0) {
		if (h->user_error)
			snprintf(reason, sizeof(reason), "HookUser=%s: %s", h->user,
				 h->user_error == ENOENT ? "no such user"
							 : strerror(h->user_error));
		else
			snprintf(reason, sizeof(reason), "cannot start: %s", strerror(-r));
		audit_failure(h, job->argv[0], job->type, job->seq, reason);
		job_free(job);
		return;
	}
	h->started++;
	job->next = h->running;
	h->running = job;
	h->running_count++;
}

static void start_queued(struct hooks *h)
{
	while (h->running_count < HOOKS_RUNNING_MAX && h->queue_head) {
		struct job *job = h->queue_head;

		h->queue_head = job->next;
		if (!h->queue_head)
			h->queue_tail = NULL;
		h->queue_count--;
		if (h->queue_count == 0)
			h->queue_full_audited = false;
		job->next = NULL;
		run(h, job);
	}
}

/* --- the interface ------------------------------------------------------------ */

static struct job *job_new(struct hooks *h, const struct policy_hook *hook, const char *type,
			   uint64_t seq, const char *line)
{
	struct job *job = calloc(1, sizeof(*job));

	if (!job)
		return NULL;
	job->hooks = h;
	job->pidfd = job->stdin_fd = job->output_fd = job->status_fd = -1;
	job->seq = seq;
	job->timeout_usec = h->timeout_usec;
	job->argv = strv_copy(hook->argv, hook->argc);
	job->type = strdup(type);
	if (asprintf(&job->line, "%s\n", line) < 0)
		job->line = NULL;
	if (!job->argv || !job->type || !job->line) {
		job_free(job);
		return NULL;
	}
	job->line_len = strlen(job->line);
	return job;
}

void hooks_dispatch(struct hooks *h, const char *type, const char *service, uint64_t seq,
		    const char *line)
{
	uint64_t t = h->config_count ? now(CLOCK_MONOTONIC) : 0;

	for (size_t i = 0; i < h->config_count; i++) {
		struct hook_config *c = &h->configs[i];
		const char *program = c->hook.argv[0];
		struct job *job;
		bool first_drop = false;

		if (!policy_hook_matches(&c->hook, type))
			continue;
		if (c->service && (!service || !streq(c->service, service)))
			continue;
		if (!policy_rate_admit(&c->rate, h->rate_limit, h->rate_interval_usec, t,
				       &first_drop)) {
			char span[POLICY_TIMESPAN_MAX];

			h->rate_limited++;
			if (first_drop)
				notice_push(
				    h, "hook-rate-limited",
				    json_pack("{s:s, s:I, s:s, s:I, s:s, s:I}", "hook", program,
					      "limit", (json_int_t)h->rate_limit, "interval",
					      policy_format_timespan(span, sizeof(span),
								     h->rate_interval_usec),
					      "event_seq", (json_int_t)seq, "event_type", type,
					      "dropped_total", (json_int_t)c->rate.dropped_total));
			continue;
		}
		if (h->running_count >= HOOKS_RUNNING_MAX && h->queue_count >= HOOKS_QUEUE_MAX) {
			char reason[160];

			/* One record per full queue, not one per drop: a flood
			 * does not become a flood of records (status counts). */
			h->queue_dropped++;
			if (h->queue_full_audited) {
				h->failed++;
				continue;
			}
			h->queue_full_audited = true;
			snprintf(reason, sizeof(reason),
				 "dropped: %d hooks running and %d waiting (further drops are "
				 "counted until the queue empties)",
				 HOOKS_RUNNING_MAX, HOOKS_QUEUE_MAX);
			audit_failure(h, program, type, seq, reason);
			continue;
		}
		job = job_new(h, &c->hook, type, seq, line);
		if (!job) {
			audit_failure(h, program, type, seq, "cannot start: out of memory");
			continue;
		}
		if (h->queue_tail)
			h->queue_tail->next = job;
		else
			h->queue_head = job;
		h->queue_tail = job;
		h->queue_count++;
	}
	start_queued(h);
}

static void configs_free(struct hook_config *configs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		strv_free(configs[i].hook.types);
		free(configs[i].service);
		strv_free(configs[i].hook.argv);
	}
	free(configs);
}

/* HookUser=: a name, or a decimal id (then its group is the user's primary
 * group when the id has an entry, else the same number). */
static void resolve_user(struct hooks *h)
{
	struct passwd *pw;
	char *end;
	unsigned long id;

	h->user_error = 0;
	errno = 0;
	id = strtoul(h->user, &end, 10);
	if (*h->user && !*end) {
		pw = getpwuid((uid_t)id);
		h->uid = (uid_t)id;
		h->gid = pw ? pw->pw_gid : (gid_t)id;
		return;
	}
	errno = 0;
	pw = getpwnam(h->user);
	if (!pw) {
		h->user_error = errno ? errno : ENOENT;
		log_error("hooks: HookUser=%s: %s; every hook will fail", h->user,
			  errno ? strerror(errno) : "no such user");
		return;
	}
	h->uid = pw->pw_uid;
	h->gid = pw->pw_gid;
}

static bool strv_equal(char *const *a, char *const *b)
{
	for (; *a && *b; a++, b++)
		if (!streq(*a, *b))
			return false;
	return !*a && !*b;
}

/* A hook a reload keeps (same TYPES, same command line) keeps its rate
 * window: reloads must not reset HookRate=. */
static void carry_rate(const struct hooks *h, struct hook_config *c)
{
	for (size_t i = 0; i < h->config_count; i++)
		if (!h->configs[i].service == !c->service &&
		    (!c->service || streq(h->configs[i].service, c->service)) &&
		    strv_equal(h->configs[i].hook.types, c->hook.types) &&
		    strv_equal(h->configs[i].hook.argv, c->hook.argv)) {
			c->rate = h->configs[i].rate;
			return;
		}
}

/* One hook's copy; service NULL for the global file's. */
static int config_copy(const struct hooks *h, const struct policy_hook *hook, const char *service,
		       struct hook_config *c)
{
	c->hook = *hook;
	c->hook.types = strv_copy(hook->types, hook->type_count);
	c->hook.argv = strv_copy(hook->argv, hook->argc);
	c->service = service ? strdup(service) : NULL;
	if (!c->hook.types || !c->hook.argv || (service && !c->service))
		return -ENOMEM;
	carry_rate(h, c);
	return 0;
}

int hooks_configure(struct hooks *h, const struct policy_globals *g, const struct policy_set *set)
{
	size_t n = g->hook_count, k = 0;
	struct hook_config *configs;
	char *user;

	for (size_t i = 0; set && i < set->count; i++)
		n += set->policies[i]->hook_count;
	configs = calloc(n ? n : 1, sizeof(*configs));
	user = strdup(g->hook_user ? g->hook_user : "nobody");
	if (!configs || !user) {
		free(configs);
		free(user);
		return -ENOMEM;
	}
	for (size_t i = 0; i < g->hook_count; i++)
		if (config_copy(h, &g->hooks[i], NULL, &configs[k++]) < 0)
			goto oom;
	for (size_t i = 0; set && i < set->count; i++) {
		const struct policy *p = set->policies[i];

		for (size_t j = 0; j < p->hook_count; j++)
			if (config_copy(h, &p->hooks[j], p->name, &configs[k++]) < 0)
				goto oom;
	}
	configs_free(h->configs, h->config_count);
	h->configs = configs;
	h->config_count = n;
	h->timeout_usec = g->hook_timeout_usec;
	h->rate_limit = g->hook_rate_limit;
	h->rate_interval_usec = g->hook_rate_interval_usec;
	free(h->user);
	h->user = user;
	if (h->config_count)
		resolve_user(h);
	return 0;

oom:
	configs_free(configs, k);
	free(user);
	return -ENOMEM;
}

int hooks_new(sd_event *event, hooks_audit_fn audit, void *userdata, struct hooks **ret)
{
	struct hooks *h = calloc(1, sizeof(*h));
	int r;

	if (!h)
		return -ENOMEM;
	h->event = sd_event_ref(event);
	h->audit = audit;
	h->userdata = userdata;
	h->notices_tail = &h->notices;
	r = sd_event_add_defer(event, &h->notice_source, on_notices, h);
	if (r >= 0)
		r = sd_event_source_set_enabled(h->notice_source, SD_EVENT_OFF);
	if (r < 0) {
		hooks_free(h);
		return r;
	}
	*ret = h;
	return 0;
}

json_t *hooks_status_json(const struct hooks *h)
{
	return json_pack(
	    "{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "configured", (json_int_t)h->config_count,
	    "running", (json_int_t)h->running_count, "queued", (json_int_t)h->queue_count,
	    "started", (json_int_t)h->started, "failed", (json_int_t)h->failed, "rate_limited",
	    (json_int_t)h->rate_limited, "queue_dropped", (json_int_t)h->queue_dropped);
}

void hooks_free(struct hooks *h)
{
	struct job *job;
	struct notice *n;

	if (!h)
		return;
	while ((job = h->running)) {
		siginfo_t si;

		h->running = job->next;
		(void)kill(-job->pid, SIGKILL);
		(void)syscall(SYS_pidfd_send_signal, job->pidfd, SIGKILL, NULL, 0);
		while (waitid(P_PIDFD, (id_t)job->pidfd, &si, WEXITED) < 0 && errno == EINTR)
			;
		job_free(job);
	}
	while ((job = h->queue_head)) {
		h->queue_head = job->next;
		job_free(job);
	}
	while ((n = h->notices)) {
		h->notices = n->next;
		json_decref(n->fields);
		free(n->type);
		free(n);
	}
	sd_event_source_disable_unref(h->notice_source);
	configs_free(h->configs, h->config_count);
	free(h->user);
	sd_event_unref(h->event);
	free(h);
}
