/* SPDX-License-Identifier: MIT */
/* Cold launch of a whole instance as the agent starts it, until the service
 * accepts a TCP connection, beside bwrap and a bare fork+exec of the same
 * service, in the same run (100 launches each, interleaved).
 *
 *   instance   instance_start() with the sealed memfd of the verified binary
 *              (made once per policy load, as the agent does), the envelope (cgroup +
 *              limits, tmpfs, clone3 into 6 namespaces, overlay root,
 *              pivot_root, User=, caps, no_new_privs, rlimits, seccomp,
 *              execveat) and the network link (veth pair, addresses, routes)
 *              — until busybox httpd inside accepts on instance-address:8080
 *   bwrap      bwrap --unshare-pid/uts/ipc/cgroup, the snapshot root
 *              read-only, --dev --proc, caps dropped — until the same httpd
 *              accepts on 127.0.0.1 (bwrap here shares the network: no link)
 *   fork+exec  fork + execve of busybox httpd, until it accepts on 127.0.0.1
 *
 * A second instance row launches without memory/pids limits. On a hybrid
 * cgroup host those limits live in cgroup v1 and the child has to be moved
 * there; two more rows time that move alone, both ways, in the same run: the
 * parent writing the child's pid to cgroup.procs (write-locks the kernel's
 * global threadgroup rwsem: an RCU grace period) and the child writing "0" to
 * tasks itself (no global lock), which is what the envelope does.
 *
 * Snapshot verification is done once, as the agent does per policy load; the
 * stamp check every start makes (snapshot_recheck) is timed alone, on this
 * snapshot and on one of 2,000 small files in 50 directories; verification
 * throughput has its own benchmark (bench_snapshot.sh). Needs root and
 * /bin/busybox; run by `make bench` in a fresh network namespace. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sandbox.h"
#include "fleet_internal.h"
#include "macro.h"
#include "snapshot.h"

#define ROUNDS 100
#define HTTPD_PORT 8080
#define MOVES 30
#define RECHECKS 200

static char work[] = "/tmp/mtd-bench-instance.XXXXXX";

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

/* Connect until the port accepts (5 s at most). */
static int wait_accepting(int family, const void *address, uint16_t port)
{
	double deadline = now_ms() + 5000;

	while (now_ms() < deadline) {
		struct sockaddr_storage sa = {0};
		socklen_t len;
		int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0), r;

		if (fd < 0)
			return -errno;
		if (family == AF_INET) {
			struct sockaddr_in *in = (struct sockaddr_in *)&sa;
			in->sin_family = AF_INET;
			in->sin_port = htons(port);
			memcpy(&in->sin_addr, address, sizeof(in->sin_addr));
			len = sizeof(*in);
		} else {
			return -EAFNOSUPPORT;
		}
		r = connect(fd, (struct sockaddr *)&sa, len);
		close(fd);
		if (r == 0)
			return 0;
		usleep(100);
	}
	return -ETIMEDOUT;
}

static int write_file(const char *path, const char *text)
{
	_cleanup_fclose_ FILE *f = fopen(path, "we");

	if (!f || fputs(text, f) < 0)
		return -EIO;
	return 0;
}

static int make_snapshot(char *dir, size_t size, struct snapshot **ret)
{
	char tree[256], path[512], key[256];
	struct snapshot_error error = {0};
	const char *dirs[] = {"bin", "www", "etc", "tmp", "dev", "proc"};
	int r;

	snprintf(tree, sizeof(tree), "%s/tree", work);
	mkdir(tree, 0755);
	for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
		snprintf(path, sizeof(path), "%s/%s", tree, dirs[i]);
		mkdir(path, 0755);
	}
	snprintf(path, sizeof(path), "cp /bin/busybox %s/bin/busybox", tree);
	if (system(path) != 0)
		return -EIO;
	snprintf(path, sizeof(path), "%s/www/index.html", tree);
	r = write_file(path, "<h1>bench</h1>\n");
	snprintf(path, sizeof(path), "%s/etc/passwd", tree);
	if (r >= 0)
		r = write_file(path, "root:x:0:0::/:/bin/sh\nwww:x:1000:1000::/www:/bin/sh\n");
	if (r < 0)
		return r;
	snprintf(key, sizeof(key), "%s/snap", work);
	snprintf(dir, size, "%s/snapshot", work);
	if (snapshot_keygen(key, &error) < 0)
		return -EIO;
	snprintf(key, sizeof(key), "%s/snap.key", work);
	if (snapshot_create(tree, dir, key, NULL, &error) < 0) {
		fprintf(stderr, "bench: snapshot create: %s: %s\n", error.path, error.reason);
		return -EIO;
	}
	snprintf(key, sizeof(key), "%s/snap.pub", work);
	if (snapshot_verify(dir, key, NULL, ret, &error) < 0) {
		fprintf(stderr, "bench: snapshot verify: %s: %s\n", error.path, error.reason);
		return -EIO;
	}
	return 0;
}

/* A snapshot of n_dirs directories of per_dir small files (the shape of a
 * library closure or a small rootfs), for the cost of the check at start. */
static int make_wide_snapshot(const char *name, int n_dirs, int per_dir, struct snapshot **ret)
{
	char tree[256], dir[256], path[512], key[256];
	struct snapshot_error error = {0};

	snprintf(tree, sizeof(tree), "%s/%s-tree", work, name);
	if (mkdir(tree, 0755) < 0)
		return -errno;
	for (int d = 0; d < n_dirs; d++) {
		snprintf(path, sizeof(path), "%s/d%03d", tree, d);
		if (mkdir(path, 0755) < 0)
			return -errno;
		for (int f = 0; f < per_dir; f++) {
			snprintf(path, sizeof(path), "%s/d%03d/f%03d", tree, d, f);
			if (write_file(path, "x\n") < 0)
				return -EIO;
		}
	}
	snprintf(dir, sizeof(dir), "%s/%s", work, name);
	snprintf(key, sizeof(key), "%s/snap.key", work);
	if (snapshot_create(tree, dir, key, NULL, &error) < 0)
		return -EIO;
	snprintf(key, sizeof(key), "%s/snap.pub", work);
	return snapshot_verify(dir, key, NULL, ret, &error) < 0 ? -EIO : 0;
}

/* snapshot_recheck() alone, as every instance_start() runs it (ms). */
static int time_recheck(struct snapshot *s, double *v, int n)
{
	for (int i = 0; i < n; i++) {
		double t = now_ms();

		if (snapshot_recheck(s, NULL) != 0)
			return -EIO;
		v[i] = now_ms() - t;
	}
	return 0;
}

static void on_healthy(struct instance *i, void *u)
{
}

/* One launch of the whole instance; its time until accepting, or < 0. */
static double launch_one_instance(sd_event *event, const struct instance_spec *base, unsigned n)
{
	struct instance_spec spec = *base;
	struct instance_hooks hooks = {.on_healthy = on_healthy};
	struct instance *instance = NULL;
	char id[32], ifname[16];
	struct step_error error = {0};
	double start, t;
	int r;

	snprintf(id, sizeof(id), "bench-%u", n);
	snprintf(ifname, sizeof(ifname), "mtdb%u", n);
	spec.id = id;
	spec.host_ifname = ifname;
	spec.addresses[0].family = AF_INET;
	spec.addresses[0].v4.s_addr = htonl(0x0ad60000u | (1 + n % 250)); /* 10.214.0.x */
	spec.n_addresses = 1;

	start = now_ms();
	r = instance_start(event, &spec, &hooks, &instance, &error);
	if (r < 0) {
		fprintf(stderr, "bench: instance_start: %s: %s\n", error.step, error.detail);
		return -1;
	}
	if (getenv("BENCH_SPLIT"))
		fprintf(stderr, "start %.2f ms", now_ms() - start);
	r = wait_accepting(AF_INET, &spec.addresses[0].v4, HTTPD_PORT);
	t = now_ms() - start;
	if (getenv("BENCH_SPLIT"))
		fprintf(stderr, ", accepting at %.2f ms\n", t);
	instance_destroy(instance);
	return r < 0 ? -1 : t;
}

static double launch_process(char *const argv[], uint16_t port)
{
	struct in_addr loopback = {htonl(INADDR_LOOPBACK)};
	double start = now_ms(), t;
	pid_t pid = fork();
	int r;

	if (pid < 0)
		return -1;
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	r = wait_accepting(AF_INET, &loopback, port);
	t = now_ms() - start;
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return r < 0 ? -1 : t;
}

/* The v1 memory hierarchy's mount point, or NULL (unified host). */
static char *v1_memory_mount(void)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[1024];

	while (f && fgets(line, sizeof(line), f)) {
		char mnt[512], fstype[64], super[256];
		const char *dash = strstr(line, " - ");

		if (!dash || sscanf(line, "%*s %*s %*s %*s %511s", mnt) != 1 ||
		    sscanf(dash + 3, "%63s %*s %255s", fstype, super) != 2)
			continue;
		if (streq(fstype, "cgroup") && strstr(super, "memory"))
			return strdup(mnt);
	}
	return NULL;
}

/* Moves a fresh child into dir (a v1 cgroup), n times each way; the child
 * then exits. by_pid: the parent writes the pid to cgroup.procs; otherwise
 * the child writes "0" to tasks and reports its time through a pipe. */
static int time_v1_moves(const char *dir, bool by_pid, double *v, int n)
{
	char procs[600], tasks[600];

	snprintf(procs, sizeof(procs), "%s/cgroup.procs", dir);
	snprintf(tasks, sizeof(tasks), "%s/tasks", dir);
	for (int i = 0; i < n; i++) {
		int go[2], result[2];

		if (pipe2(go, O_CLOEXEC) < 0 || pipe2(result, O_CLOEXEC) < 0)
			return -errno;
		pid_t pid = fork();
		if (pid < 0)
			return -errno;
		if (pid == 0) {
			char c;
			double t = 0;
			if (read(go[0], &c, 1) != 1)
				_exit(1);
			if (!by_pid) {
				int fd = open(tasks, O_WRONLY | O_CLOEXEC);
				double t0 = now_ms();
				if (fd < 0 || write(fd, "0", 1) != 1)
					_exit(1);
				t = now_ms() - t0;
			}
			_exit(write(result[1], &t, sizeof(t)) == sizeof(t) ? 0 : 1);
		}
		close(go[0]);
		close(result[1]);
		if (by_pid) {
			char text[32];
			int fd = open(procs, O_WRONLY | O_CLOEXEC),
			    k = snprintf(text, sizeof(text), "%d", (int)pid);
			double t0 = now_ms();
			if (fd < 0 || write(fd, text, (size_t)k) != k) {
				close(fd);
				return -EIO;
			}
			v[i] = now_ms() - t0;
			close(fd);
		}
		double t = -1;
		int status = 1;
		if (write(go[1], "g", 1) != 1 || read(result[0], &t, sizeof(t)) != sizeof(t))
			t = -1;
		close(go[1]);
		close(result[0]);
		waitpid(pid, &status, 0);
		if (t < 0 || status != 0)
			return -EIO;
		if (!by_pid)
			v[i] = t;
		usleep(
		    20000); /* let the kernel's RCU sync state go idle again, as between launches */
	}
	return 0;
}

static void print_row(const char *what, double *v, int n)
{
	qsort(v, (size_t)n, sizeof(double), cmp_double);
	printf("| %-44s | %8.2f | %8.2f | %8.2f |\n", what, v[n / 2], v[(int)(n * 0.95)], v[0]);
}

int main(void)
{
	static double inst[ROUNDS], inst_nolimits[ROUNDS], bw[ROUNDS], bare[ROUNDS];
	char snapshot_dir[256], lower[300], port_text[8];
	struct snapshot *snapshot = NULL;
	struct seccomp_program *seccomp = NULL;
	struct cgroup_root *cgroups = NULL;
	struct policy policy = {0};
	char *argv[] = {"/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www", NULL};
	char *syscalls[] = {"@system-service", "@network-io"};
	char cgroup_name[64];
	sd_event *event = NULL;
	int status = 1;

	if (access("/bin/busybox", X_OK) != 0 || access("/usr/bin/bwrap", X_OK) != 0) {
		printf("bench_instance: skipped (needs /bin/busybox and bwrap)\n");
		return 0;
	}
	if (!mkdtemp(work)) {
		perror("mkdtemp");
		return 1;
	}
	{
		/* instances are supervised by pidfd through sd-event, as in the agent */
		sigset_t mask;

		sigemptyset(&mask);
		sigaddset(&mask, SIGCHLD);
		sigprocmask(SIG_BLOCK, &mask, NULL);
	}
	snprintf(cgroup_name, sizeof(cgroup_name), "mtd-bench-instance-%d", (int)getpid());
	if (make_snapshot(snapshot_dir, sizeof(snapshot_dir), &snapshot) < 0)
		goto out;
	if (seccomp_program_compile(syscalls, 2, SECCOMP_DEFAULT_ERRNO, &seccomp, NULL) < 0 ||
	    cgroup_root_open(cgroup_name, &cgroups) < 0 || sd_event_new(&event) < 0) {
		fprintf(stderr, "bench: seccomp, cgroups or event loop unavailable\n");
		goto out;
	}
	policy.name = (char *)"bench";
	policy.exec_argv.items = argv;
	policy.exec_argv.count = 7;
	policy.has_listen_port = true;
	policy.listen_port = HTTPD_PORT;
	policy.health_check = HEALTH_CHECK_NONE;
	policy.writable_size_bytes = 16u << 20;
	policy.memory_max_bytes = 64u << 20;
	policy.tasks_max = 64;
	policy.limit_nofile = 1024;

	{
		struct instance_spec spec = {
		    .policy = &policy,
		    .snapshot = snapshot,
		    .seccomp = seccomp,
		    .cgroups = cgroups,
		    .uid = 1000,
		    .gid = 1000,
		};
		char *bwrap_argv[] = {"/usr/bin/bwrap",
				      "--unshare-pid",
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
				      "--tmpfs",
				      "/tmp",
				      "--cap-drop",
				      "ALL",
				      "--die-with-parent",
				      "/bin/busybox",
				      "httpd",
				      "-f",
				      "-p",
				      port_text,
				      "-h",
				      "/www",
				      NULL};
		char *bare_argv[] = {"/bin/busybox", "httpd", "-f",	    "-p",
				     port_text,	     "-h",    snapshot_dir, NULL};

		struct snapshot_error error;

		if (snapshot_open_exec(snapshot, "/bin/busybox", &spec.exec_fd, &error) < 0) {
			fprintf(stderr, "bench: %s: %s\n", error.path, error.reason);
			goto out;
		}
		snprintf(lower, sizeof(lower), "%s", snapshot_root(snapshot));
		for (int i = 0; i < ROUNDS; i++) {
			/* a fresh port each round: no TIME_WAIT in the way */
			snprintf(port_text, sizeof(port_text), "%d", 30000 + i);
			inst[i] = launch_one_instance(event, &spec, (unsigned)i);
			policy.memory_max_bytes = 0;
			policy.tasks_max = 0;
			inst_nolimits[i] = launch_one_instance(event, &spec, (unsigned)(1000 + i));
			policy.memory_max_bytes = 64u << 20;
			policy.tasks_max = 64;
			bw[i] = launch_process(bwrap_argv, (uint16_t)(30000 + i));
			snprintf(port_text, sizeof(port_text), "%d", 31000 + i);
			bare[i] = launch_process(bare_argv, (uint16_t)(31000 + i));
			if (inst[i] < 0 || inst_nolimits[i] < 0 || bw[i] < 0 || bare[i] < 0) {
				fprintf(stderr, "bench: launch %d failed\n", i);
				goto out;
			}
		}
	}
	printf("cold launch until the service (busybox httpd) accepts a TCP connection, %d "
	       "launches each, interleaved\n\n",
	       ROUNDS);
	printf("| %-44s | %8s | %8s | %8s |\n", "launch", "median", "p95", "min");
	printf(
	    "|----------------------------------------------|----------|----------|----------|\n");
	print_row("instance (envelope, limits, link)", inst, ROUNDS);
	print_row("instance without memory/pids limits", inst_nolimits, ROUNDS);
	print_row("bwrap (namespaces, read-only root, no link)", bw, ROUNDS);
	print_row("fork+exec", bare, ROUNDS);
	{
		static double v[RECHECKS];
		struct snapshot_stats st;
		struct snapshot *wide = NULL;
		char what[64];

		snapshot_get_stats(snapshot, &st);
		snprintf(what, sizeof(what), "in it: snapshot recheck (%llu entries)",
			 (unsigned long long)st.entries);
		if (time_recheck(snapshot, v, RECHECKS) < 0)
			goto out;
		print_row(what, v, RECHECKS);
		if (make_wide_snapshot("wide", 50, 40, &wide) < 0 ||
		    time_recheck(wide, v, RECHECKS) < 0) {
			fprintf(stderr, "bench: the wide snapshot failed\n");
			snapshot_free(wide);
			goto out;
		}
		snapshot_get_stats(wide, &st);
		snprintf(what, sizeof(what), "snapshot recheck (%llu entries)",
			 (unsigned long long)st.entries);
		print_row(what, v, RECHECKS);
		snapshot_free(wide);
	}
	if (cgroup_root_is_hybrid(cgroups)) {
		static double by_pid[MOVES], by_self[MOVES];
		_cleanup_free_ char *mount = v1_memory_mount();
		char dir[600];

		snprintf(dir, sizeof(dir), "%s/mtd-bench-move", mount ? mount : "/nonexistent");
		if (!mount || (mkdir(dir, 0755) < 0 && errno != EEXIST) ||
		    time_v1_moves(dir, true, by_pid, MOVES) < 0 ||
		    time_v1_moves(dir, false, by_self, MOVES) < 0) {
			fprintf(stderr, "bench: timing v1 moves in %s failed\n", dir);
			(void)rmdir(dir);
			goto out;
		}
		(void)rmdir(dir);
		print_row("v1 move: parent writes pid to cgroup.procs", by_pid, MOVES);
		print_row("v1 move: child writes 0 to tasks (agent)", by_self, MOVES);
		printf(
		    "\nthis host is hybrid: the memory and pids limits live in cgroup v1 and the "
		    "child moves itself there (last row); moving it by pid write-locks the "
		    "kernel's global threadgroup rwsem and waits for an RCU grace period (the row "
		    "above it) unless favordynmods was ever set on this boot\n");
	} else {
		printf("\nthis host is unified: the child is cloned straight into its cgroup "
		       "(CLONE_INTO_CGROUP), limits included\n");
	}
	printf("target: instance median <= 5 ms: %s (%.2f ms with limits, %.2f ms without)\n",
	       inst[ROUNDS / 2] <= 5.0 ? "met" : "NOT met", inst[ROUNDS / 2],
	       inst_nolimits[ROUNDS / 2]);
	status = 0;
out:
	if (cgroups) {
		(void)cgroup_root_remove(cgroups);
		cgroup_root_free(cgroups);
	}
	seccomp_program_free(seccomp);
	snapshot_free(snapshot);
	sd_event_unref(event);
	{
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", work);
		if (system(cmd) != 0)
			status = 1;
	}
	return status;
}
