/* SPDX-License-Identifier: MIT */
/* Cold launch of an enveloped instance, beside bwrap and a bare fork+exec, in
 * the same run. Every launch runs the same static program (the test probe in
 * "ready" mode) and is timed from the call until the program, after exec,
 * writes one byte to an inherited pipe (fd 3): readiness over a pipe, not a
 * TCP accept.
 *
 *   envelope   envelope_spawn(): cgroup dir + limits (memory, pids), tmpfs,
 *              clone3 into 6 namespaces, overlay root, /dev, /proc, pivot_root,
 *              caps dropped, no_new_privs, rlimits, seccomp @system-service,
 *              execveat of a sealed memfd
 *   envelope, no exec
 *              the same under a policy that allows no exec (SystemCalls=
 *              @system-service, ViolationSystemCalls=execve execveat): the
 *              notify filter and the listener handover, and the envelope's
 *              own execveat answered through user notification (docs/seccomp.md)
 *   bwrap      bwrap --unshare-pid/net/uts/ipc/cgroup, --ro-bind LOWER /, --dev,
 *              --proc, caps dropped (root) -- /probe ready
 *   fork+exec  fork(), dup2, execve(probe)
 *
 * Teardown (wait, cgroup removal) is measured separately for the envelope.
 * Needs root and cc (the probe is built static into a temp dir). Run by
 * `make bench` inside a fresh network + mount namespace. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sandbox.h"

#define ROUNDS 200

static char tmpdir[] = "/tmp/mtd-bench-launch.XXXXXX";
static char lower[128], probe[192];

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

struct stats {
	double median, p95, min;
};

static struct stats stats_of(double *v, int n)
{
	qsort(v, n, sizeof(double), cmp_double);
	return (struct stats){v[n / 2], v[(int)(n * 0.95)], v[0]};
}

static int wait_ready(int rfd)
{
	char c;
	ssize_t k;

	do
		k = read(rfd, &c, 1);
	while (k < 0 && errno == EINTR);
	return k == 1 ? 0 : -EIO;
}

static int run_cmd(char *const argv[])
{
	pid_t p = fork();
	int st;

	if (p == 0) {
		execvp(argv[0], argv);
		_exit(127);
	}
	if (p < 0 || waitpid(p, &st, 0) < 0)
		return -1;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int memfd_of(const char *path)
{
	int src = open(path, O_RDONLY | O_CLOEXEC), fd;
	struct stat st;

	if (src < 0 || fstat(src, &st) < 0)
		return -1;
	fd = memfd_create("probe", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	for (off_t off = 0; fd >= 0 && off < st.st_size;)
		if (sendfile(fd, src, &off, st.st_size - off) <= 0)
			return -1;
	close(src);
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
		return -1;
	return fd;
}

/* One launch of each kind: returns ms until ready, < 0 on failure. */
static double launch_envelope(struct envelope_spec *spec, const struct cgroup_root *root, int round,
			      double *teardown_ms)
{
	int pfd[2];
	char id[32];
	struct envelope_instance *e = NULL;
	struct step_error err;
	double t0, t1;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -1;
	snprintf(id, sizeof(id), "bench-%d", round);
	spec->instance_id = id;
	spec->pass_fds = &pfd[1];
	spec->n_pass_fds = 1;
	t0 = now_ms();
	if (envelope_spawn(spec, root, &e, &err) < 0) {
		char buf[STEP_ERROR_FORMAT_MAX];
		fprintf(stderr, "bench: envelope: %s\n", step_error_format(&err, buf, sizeof(buf)));
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	close(pfd[1]);
	int r = wait_ready(pfd[0]);
	t1 = now_ms();
	close(pfd[0]);
	(void)envelope_wait(e, NULL);
	if (envelope_cleanup(e) < 0)
		r = -1;
	envelope_free(e);
	*teardown_ms = now_ms() - t1;
	return r < 0 ? -1 : t1 - t0;
}

static double launch_argv(char *const argv[])
{
	int pfd[2], st;
	double t0, t1;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -1;
	t0 = now_ms();
	pid_t p = fork();
	if (p == 0) {
		dup2(pfd[1], 3);
		execv(argv[0], argv);
		_exit(127);
	}
	close(pfd[1]);
	int r = p < 0 ? -1 : wait_ready(pfd[0]);
	t1 = now_ms();
	close(pfd[0]);
	if (p > 0)
		waitpid(p, &st, 0);
	return r < 0 ? -1 : t1 - t0;
}

int main(void)
{
	static double env[ROUNDS], nx[ROUNDS], bw[ROUNDS], fe[ROUNDS], td[ROUNDS], td_nx[ROUNDS];
	struct cgroup_root *root = NULL;
	struct seccomp_program *prog = NULL, *prog_noexec = NULL;
	char *items[] = {"@system-service"}, cgname[64], cmd[1024];
	char *no_exec[] = {"execve", "execveat"};
	char *envp[] = {"PATH=/bin", NULL};
	char *probe_argv[] = {"probe", "ready", NULL};
	int rc = 1;

	if (geteuid() != 0) {
		printf("bench_launch: skipped (needs root)\n");
		return 0;
	}
	if (access("/usr/bin/bwrap", X_OK) != 0) {
		printf("bench_launch: skipped (bwrap missing)\n");
		return 0;
	}
	if (!mkdtemp(tmpdir))
		return 1;
	chmod(tmpdir, 0755);
	snprintf(lower, sizeof(lower), "%s/lower", tmpdir);
	snprintf(probe, sizeof(probe), "%s/probe", lower);
	mkdir(lower, 0755);
	/* mount points bwrap cannot create in a read-only root */
	for (const char *const *d = (const char *const[]){"dev", "proc", "tmp", NULL}; *d; d++) {
		snprintf(cmd, sizeof(cmd), "%s/%s", lower, *d);
		mkdir(cmd, 0755);
		chmod(cmd, 0755);
	}
	snprintf(cmd, sizeof(cmd), "%s/tests/fixtures/probe.c", MTD_SOURCE_DIR);
	if (run_cmd((char *[]){"cc", "-static", "-O2", "-o", probe, cmd, NULL}) < 0) {
		fprintf(stderr, "bench: cannot build the static probe\n");
		goto out;
	}
	chmod(probe, 0755);
	if (seccomp_program_compile(items, 1, SECCOMP_DEFAULT_ERRNO, &prog, NULL) < 0 ||
	    seccomp_program_compile_violations(items, 1, no_exec, 2, SECCOMP_DEFAULT_ERRNO,
					       &prog_noexec, NULL) < 0)
		goto out;
	snprintf(cgname, sizeof(cgname), "mtd-bench-%d", (int)getpid());
	if (cgroup_root_open(cgname, &root) < 0) {
		fprintf(stderr, "bench: cgroup root\n");
		goto out;
	}

	struct envelope_spec spec;
	envelope_spec_init(&spec);
	spec.lower_fd = open(lower, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	spec.upper_size_bytes = 16 << 20;
	spec.exec_fd = memfd_of(probe);
	spec.argv = probe_argv;
	spec.envp = envp;
	spec.seccomp = prog;
	spec.limit_nofile = 1024;
	spec.limits.memory_max = 64 << 20;
	spec.limits.tasks_max = 64;
	spec.hostname = "bench";
	if (spec.exec_fd < 0)
		goto out;
	struct uid_ranges *ranges = NULL;
	if (uid_ranges_open("/", UID_RANGE_REGION_FIRST, UID_RANGE_REGION_END, &ranges) < 0 ||
	    uid_ranges_take(ranges, &spec.host_id_base) < 0 ||
	    uid_ranges_idmap_userns(ranges, spec.host_id_base, &spec.idmap_userns_fd) < 0) {
		fprintf(stderr, "bench: no host id range\n");
		goto out;
	}
	struct envelope_spec spec_noexec = spec;
	spec_noexec.seccomp = prog_noexec;

	char *bwrap_argv[] = {"/usr/bin/bwrap",
			      "--unshare-pid",
			      "--unshare-net",
			      "--unshare-uts",
			      "--unshare-ipc",
			      "--unshare-cgroup",
			      "--ro-bind",
			      lower,
			      "/",
			      "--dev",
			      "/dev",
			      "--proc",
			      "/proc",
			      "--cap-drop",
			      "ALL",
			      "--new-session",
			      "--",
			      "/probe",
			      "ready",
			      NULL};
	char *bare_argv[] = {probe, "ready", NULL};

	/* warm-up, then interleaved rounds so drift hits all three alike */
	double dummy;
	for (int i = 0; i < 5; i++)
		if (launch_envelope(&spec, root, -1 - i, &dummy) < 0 ||
		    launch_envelope(&spec_noexec, root, -100 - i, &dummy) < 0 ||
		    launch_argv(bwrap_argv) < 0 || launch_argv(bare_argv) < 0) {
			fprintf(stderr, "bench: warm-up launch failed\n");
			goto out;
		}
	for (int i = 0; i < ROUNDS; i++) {
		env[i] = launch_envelope(&spec, root, i, &td[i]);
		nx[i] = launch_envelope(&spec_noexec, root, ROUNDS + i, &td_nx[i]);
		bw[i] = launch_argv(bwrap_argv);
		fe[i] = launch_argv(bare_argv);
		if (env[i] < 0 || nx[i] < 0 || bw[i] < 0 || fe[i] < 0) {
			fprintf(stderr, "bench: launch %d failed\n", i);
			goto out;
		}
	}
	struct stats s_env = stats_of(env, ROUNDS), s_nx = stats_of(nx, ROUNDS),
		     s_bw = stats_of(bw, ROUNDS), s_fe = stats_of(fe, ROUNDS),
		     s_td = stats_of(td, ROUNDS);
	printf(
	    "cold launch until the program signals readiness over an inherited pipe after exec\n");
	printf("(%d launches each, interleaved; %s cgroups)\n\n", ROUNDS,
	       cgroup_root_is_hybrid(root) ? "hybrid" : "unified");
	printf("%-34s %10s %10s %10s\n", "launch", "median ms", "p95 ms", "min ms");
	printf("%-34s %10.3f %10.3f %10.3f\n", "envelope (all steps)", s_env.median, s_env.p95,
	       s_env.min);
	printf("%-34s %10.3f %10.3f %10.3f\n", "envelope, policy without exec", s_nx.median,
	       s_nx.p95, s_nx.min);
	printf("%-34s %10.3f %10.3f %10.3f\n", "bwrap (ns + read-only root)", s_bw.median, s_bw.p95,
	       s_bw.min);
	printf("%-34s %10.3f %10.3f %10.3f\n", "fork+exec", s_fe.median, s_fe.p95, s_fe.min);
	printf("%-34s %10.3f %10.3f %10.3f\n", "envelope teardown (wait+cgroups)", s_td.median,
	       s_td.p95, s_td.min);
	printf("\ntarget: envelope median <= 5 ms: %s\n", s_env.median <= 5.0 ? "met" : "MISSED");
	printf("target: envelope without exec median <= 5 ms: %s\n",
	       s_nx.median <= 5.0 ? "met" : "MISSED");
	rc = 0;
out:
	if (root) {
		cgroup_root_remove(root);
		cgroup_root_free(root);
	}
	seccomp_program_free(prog);
	seccomp_program_free(prog_noexec);
	if (run_cmd((char *[]){"rm", "-rf", tmpdir, NULL}) < 0)
		fprintf(stderr, "bench: could not remove %s\n", tmpdir);
	return rc;
}
