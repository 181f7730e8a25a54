/* SPDX-License-Identifier: MIT */
#include "quarantine.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/ioprio.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "macro.h"

/* A result is a few hundred bytes plus the evicted ids; more is not ours. */
#define RESULT_MAX (1U << 20)

/* Where the child keeps the descriptors it needs (all others closed). */
enum { CHILD_UPPER_FD = 3, CHILD_RESULT_FD = 4 };

struct quarantine_job {
	sd_event_source *child_source, *pipe_source, *defer_source;
	int pidfd, pipe_fd;
	char *buf;
	size_t len;
	bool overflow;
	char *state_dir;
	char id[QUARANTINE_ID_MAX + 1];
	quarantine_job_done_fn done;
	void *userdata;
	/* the save ran in place (no fork): its result, for the deferred done */
	int r;
	struct quarantine_result res;
	char *error;
};

static void job_free(struct quarantine_job *job)
{
	sd_event_source_disable_unref(job->child_source);
	sd_event_source_disable_unref(job->pipe_source);
	sd_event_source_disable_unref(job->defer_source);
	closep(&job->pidfd);
	closep(&job->pipe_fd);
	quarantine_result_done(&job->res);
	free(job->error);
	free(job->buf);
	free(job->state_dir);
	free(job);
}

/* --- the save process -------------------------------------------------------------- */

static json_t *result_json(int r, const struct quarantine_result *res, const char *error)
{
	json_t *evicted = json_array();

	for (size_t i = 0; evicted && i < res->n_evicted; i++)
		json_array_append_new(evicted, json_string(res->evicted[i]));
	return json_pack("{s:i, s:s*, s:I, s:b, s:b, s:s, s:o*}", "r", r, "error", error, "bytes",
			 (json_int_t)res->bytes, "truncated", res->truncated, "over_cap",
			 res->over_cap, "manifest_sha256", res->manifest_sha256, "evicted",
			 evicted);
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			_exit(1);
		p += w;
		n -= (size_t)w;
	}
}

_Noreturn static void save_process(pid_t agent, const char *state_dir,
				   const struct quarantine_record *rec, const char *cgroup_path,
				   uint64_t max_bytes)
{
	struct quarantine_result res = {0};
	char *error = NULL, *text;
	json_t *j;
	int r;

	/* Dies with the agent; the next start removes the ID.tmp it leaves. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != agent)
		_exit(1);
	(void)setpriority(PRIO_PROCESS, 0, 19);
	(void)syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0,
		      IOPRIO_PRIO_VALUE(IOPRIO_CLASS_IDLE, 0));
	r = quarantine_save(state_dir, rec, CHILD_UPPER_FD, cgroup_path, max_bytes, &res, &error);
	j = result_json(r, &res, error);
	text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	if (!text)
		_exit(1);
	write_all(CHILD_RESULT_FD, text, strlen(text));
	_exit(0);
}

/* --- the agent's side -------------------------------------------------------------- */

static void kill_process(int pidfd)
{
	siginfo_t si;

	(void)syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
	while (waitid(P_PIDFD, (id_t)pidfd, &si, WEXITED) < 0 && errno == EINTR)
		;
}

static int drain(struct quarantine_job *job)
{
	for (;;) {
		char chunk[16384];
		ssize_t n = read(job->pipe_fd, chunk, sizeof(chunk));
		char *grown;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN ? 0 : -errno;
		if (n == 0)
			return 1; /* EOF */
		if (job->len + (size_t)n > RESULT_MAX) {
			job->overflow = true;
			continue;
		}
		grown = realloc(job->buf, job->len + (size_t)n + 1);
		if (!grown)
			return -ENOMEM;
		job->buf = grown;
		memcpy(job->buf + job->len, chunk, (size_t)n);
		job->len += (size_t)n;
		job->buf[job->len] = '\0';
	}
}

static int on_pipe(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct quarantine_job *job = userdata;

	/* At EOF (or on an error) the exit, seen on the pidfd, finishes the job. */
	if (drain(job) != 0)
		(void)sd_event_source_set_enabled(s, SD_EVENT_OFF);
	return 0;
}

/* The process is gone without a result: what it left is not evidence. */
static int record_death(struct quarantine_job *job, const siginfo_t *si)
{
	(void)quarantine_discard_partial(job->state_dir, job->id);
	job->r = -EIO;
	if (asprintf(&job->error, "the save process %s %d",
		     si->si_code == CLD_EXITED ? "exited with" : "was killed by signal",
		     si->si_status) < 0)
		job->error = NULL;
	return 0;
}

static int parse_result(struct quarantine_job *job, const siginfo_t *si)
{
	json_t *evicted = NULL;
	json_error_t jerr;
	const char *error = NULL, *sha = "";
	json_int_t bytes = 0;
	int r = 0, truncated = 0, over_cap = 0;
	size_t i;
	json_t *v;
	_cleanup_(json_decrefp) json_t *j = NULL;

	if (si->si_code != CLD_EXITED || si->si_status != 0 || job->overflow || !job->buf)
		return record_death(job, si);
	j = json_loads(job->buf, 0, &jerr);
	if (!j ||
	    json_unpack(j, "{s:i, s?s, s:I, s:b, s:b, s:s, s:o}", "r", &r, "error", &error, "bytes",
			&bytes, "truncated", &truncated, "over_cap", &over_cap, "manifest_sha256",
			&sha, "evicted", &evicted) < 0 ||
	    !json_is_array(evicted))
		return record_death(job, si);
	job->r = r;
	job->res.bytes = (uint64_t)bytes;
	job->res.truncated = truncated;
	job->res.over_cap = over_cap;
	snprintf(job->res.manifest_sha256, sizeof(job->res.manifest_sha256), "%s", sha);
	job->res.evicted = calloc(json_array_size(evicted) + 1, sizeof(char *));
	if (!job->res.evicted)
		return -ENOMEM;
	json_array_foreach(evicted, i,
			   v) if (json_is_string(v) && (job->res.evicted[job->res.n_evicted] =
							    strdup(json_string_value(v))))
	    job->res.n_evicted++;
	if (error && !(job->error = strdup(error)))
		return -ENOMEM;
	return 0;
}

static void finish(struct quarantine_job *job)
{
	job->done(job->r, &job->res, job->r < 0 ? job->error : NULL, job->userdata);
	job_free(job);
}

static int on_save_exit(sd_event_source *s, const siginfo_t *si, void *userdata)
{
	struct quarantine_job *job = userdata;
	int r;

	(void)drain(job);
	r = parse_result(job, si);
	if (r < 0) {
		job->r = r;
		free(job->error);
		job->error = NULL;
	}
	finish(job);
	return 0;
}

static int on_defer(sd_event_source *s, void *userdata)
{
	finish(userdata);
	return 0;
}

/* No process to run it in: save here, report from the loop like a job. */
static int save_in_place(sd_event *event, struct quarantine_job *job,
			 const struct quarantine_record *rec, int upper_fd, const char *cgroup_path,
			 uint64_t max_bytes)
{
	job->r = quarantine_save(job->state_dir, rec, upper_fd, cgroup_path, max_bytes, &job->res,
				 &job->error);
	return sd_event_add_defer(event, &job->defer_source, on_defer, job);
}

/* The child: the descriptors it needs at fixed numbers, nothing else of the
 * agent's (no instance layer, socket or table stays alive through it). */
static void child_fds(int upper_fd, int result_fd)
{
	int hi_upper = fcntl(upper_fd, F_DUPFD, 64), hi_result = fcntl(result_fd, F_DUPFD, 64);

	if (hi_upper < 0 || hi_result < 0 || dup2(hi_upper, CHILD_UPPER_FD) < 0 ||
	    dup2(hi_result, CHILD_RESULT_FD) < 0 ||
	    syscall(SYS_close_range, CHILD_RESULT_FD + 1, ~0U, 0) < 0)
		_exit(1);
}

static int fork_save(sd_event *event, struct quarantine_job *job,
		     const struct quarantine_record *rec, int upper_fd, const char *cgroup_path,
		     uint64_t max_bytes)
{
	pid_t agent = getpid(), pid;
	int pipefd[2], r;

	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		r = -errno;
		close(pipefd[0]);
		close(pipefd[1]);
		return r;
	}
	if (pid == 0) {
		child_fds(upper_fd, pipefd[1]);
		save_process(agent, job->state_dir, rec, cgroup_path, max_bytes);
	}
	close(pipefd[1]);
	job->pipe_fd = pipefd[0];
	/* Not reaped before the pidfd is open, so the pid is still ours. */
	job->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (job->pidfd < 0) {
		r = -errno;
		(void)kill(pid, SIGKILL);
		(void)waitpid(pid, NULL, 0);
		return r;
	}
	if (fcntl(job->pipe_fd, F_SETFL, O_NONBLOCK) < 0)
		return -errno;
	r = sd_event_add_io(event, &job->pipe_source, job->pipe_fd, EPOLLIN, on_pipe, job);
	if (r >= 0)
		r = sd_event_add_child_pidfd(event, &job->child_source, job->pidfd, WEXITED,
					     on_save_exit, job);
	return r;
}

int quarantine_job_start(sd_event *event, const char *state_dir,
			 const struct quarantine_record *rec, int upper_fd, const char *cgroup_path,
			 uint64_t max_bytes, quarantine_job_done_fn done, void *userdata,
			 struct quarantine_job **ret_job)
{
	struct quarantine_job *job;
	int r;

	if (!rec || !quarantine_id_valid(rec->id) || !done)
		return -EINVAL;
	job = calloc(1, sizeof(*job));
	if (!job)
		return -ENOMEM;
	job->pidfd = job->pipe_fd = -1;
	job->done = done;
	job->userdata = userdata;
	snprintf(job->id, sizeof(job->id), "%s", rec->id);
	job->state_dir = strdup(state_dir);
	if (!job->state_dir) {
		job_free(job);
		return -ENOMEM;
	}
	r = fork_save(event, job, rec, upper_fd, cgroup_path, max_bytes);
	if (r < 0 && job->pidfd >= 0) {
		/* The process runs but cannot be followed: stop it, save here. */
		kill_process(job->pidfd);
		(void)quarantine_discard_partial(state_dir, rec->id);
	}
	if (r < 0) {
		job->child_source = sd_event_source_disable_unref(job->child_source);
		job->pipe_source = sd_event_source_disable_unref(job->pipe_source);
		closep(&job->pidfd);
		closep(&job->pipe_fd);
		r = save_in_place(event, job, rec, upper_fd, cgroup_path, max_bytes);
	}
	if (r < 0) {
		job_free(job);
		return r;
	}
	if (ret_job)
		*ret_job = job;
	return 0;
}

void quarantine_job_cancel(struct quarantine_job *job)
{
	if (!job)
		return;
	if (job->pidfd >= 0) {
		kill_process(job->pidfd);
		(void)quarantine_discard_partial(job->state_dir, job->id);
	}
	job_free(job);
}
