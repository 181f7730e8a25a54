/* SPDX-License-Identifier: MIT */
/* envelope-run: build an envelope from options, run a command in it, print
 * how it ended. For the integration tests and by hand (root).
 *
 *   envelope-run --lower DIR --exec BINARY [options] -- ARGV...
 *
 *   --id ID               instance id (default envrun-PID)
 *   --cgroup-name NAME    parent cgroup under the caller's own (default mtd-envrun-PID);
 *                         removed at the end when empty
 *   --upper-size BYTES    writable layer (default 16 MiB)
 *   --memfd               run the binary from a sealed memfd copy (as the agent does)
 *   --uid N --gid N       credentials inside
 *   --host-ids BASE       the instance's ids 0..65535 are host ids BASE.. (default: a
 *                         free range of sandbox.h); printed as "host_ids=BASE"
 *   --caps LIST           comma-separated CAP_* names kept ("" = none, default)
 *   --syscalls LIST       space- or comma-separated names and @groups (default: no filter)
 *   --syscall-default errno|kill
 *   --violations LIST     ViolationSystemCalls=: names and @groups notified to this tool
 *                         (--syscalls defaults to @system-service then); prints
 *                         "notify_fd=yes|none", then one line per violation while
 *                         the instance runs:
 *                         "violation pid=N syscall=NAME nr=N args=0x..,(6) ip=0x.. answered=yes|no"
 *                         (each answered with EPERM), and after the instance is
 *                         reaped "notify_after_exit=hangup" when the listener hung up
 *   --seccomp-invalid     load a program the kernel refuses (fail-closed test)
 *   --nofile N  --memory-max BYTES  --tasks-max N  --cpu-quota PCT  --hostname H
 *   --marker FILE         open FILE (append) and pass it as fd 3
 *   --fail-setup          setup_in_parent fails (fail-closed test)
 *   --timeout SEC         cgroup.kill after SEC seconds (default 30)
 *   --freeze-test         freeze, check, thaw before waiting
 *   --cleanup-first       envelope_cleanup() (kill, remove cgroups) before pid 1 is
 *                         reaped, as the agent may do on stop
 *
 * Prints "status=exited:N", "status=killed:SIG" or "status=dumped:SIG" on
 * success and exits 0; on a refused spawn prints
 * "spawn-failed step=STEP errno=N detail=..." and exits 2. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox.h"
#include "macro.h"

static int fail_setup(pid_t pid, int pidfd, void *userdata)
{
	return -EPERM;
}

static int parse_caps(const char *list, uint64_t *ret)
{
	_cleanup_free_ char *copy = strdup(list);
	uint64_t m = 0;

	if (!copy)
		return -ENOMEM;
	for (char *save = NULL, *t = strtok_r(copy, ",", &save); t;
	     t = strtok_r(NULL, ",", &save)) {
		cap_value_t v;
		if (cap_from_name(t, &v) < 0) {
			fprintf(stderr, "envelope-run: unknown capability %s\n", t);
			return -EINVAL;
		}
		m |= 1ULL << v;
	}
	*ret = m;
	return 0;
}

static int split_words(const char *list, char ***ret, size_t *ret_n)
{
	_cleanup_free_ char *copy = strdup(list);
	char **v = NULL;
	size_t n = 0;

	if (!copy)
		return -ENOMEM;
	for (char *save = NULL, *t = strtok_r(copy, " ,", &save); t;
	     t = strtok_r(NULL, " ,", &save)) {
		char **nv = realloc(v, (n + 2) * sizeof(char *));
		if (!nv)
			return -ENOMEM;
		v = nv;
		v[n++] = strdup(t);
		v[n] = NULL;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

static int memfd_copy(const char *path)
{
	int src = open(path, O_RDONLY | O_CLOEXEC), fd;
	struct stat st;

	if (src < 0 || fstat(src, &st) < 0)
		return -errno;
	fd = memfd_create("envelope-run", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	for (off_t off = 0; off < st.st_size;)
		if (sendfile(fd, src, &off, st.st_size - off) <= 0)
			return -errno;
	close(src);
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
		return -errno;
	return fd;
}

/* Answer and print every pending violation; false once the listener hung up. */
static bool serve_violations(int fd)
{
	struct seccomp_violation v;
	char buf[256];
	int r;

	while ((r = seccomp_notify_handle(fd, &v)) == 0) {
		printf("violation %s answered=%s\n", seccomp_violation_format(&v, buf, sizeof(buf)),
		       v.answered ? "yes" : "no");
		fflush(stdout);
	}
	if (r == -EAGAIN)
		return true;
	if (r != -EPIPE)
		fprintf(stderr, "envelope-run: seccomp notification: %s\n", strerror(-r));
	return false;
}

/* Until pid 1 exits (or the timeout): serve the listener, if any. 0 = timed out. */
static int wait_serving(struct envelope_instance *e, int timeout_ms)
{
	int nfd = envelope_notify_fd(e);

	for (;;) {
		struct pollfd p[2] = {{.fd = envelope_pidfd(e), .events = POLLIN},
				      {.fd = nfd, .events = POLLIN}};
		int r = poll(p, nfd >= 0 ? 2 : 1, timeout_ms);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r;
		if (nfd >= 0 && p[1].revents && !serve_violations(nfd))
			nfd = -1; /* hung up: only the pidfd from here on */
		if (p[0].revents)
			return 1;
	}
}

static void print_status(const siginfo_t *si)
{
	switch (si->si_code) {
	case CLD_EXITED:
		printf("status=exited:%d\n", si->si_status);
		break;
	case CLD_KILLED:
		printf("status=killed:%d\n", si->si_status);
		break;
	case CLD_DUMPED:
		printf("status=dumped:%d\n", si->si_status);
		break;
	default:
		printf("status=other:%d:%d\n", si->si_code, si->si_status);
	}
	fflush(stdout);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"id", 1, 0, 'i'},
	    {"cgroup-name", 1, 0, 'C'},
	    {"lower", 1, 0, 'l'},
	    {"upper-size", 1, 0, 'U'},
	    {"exec", 1, 0, 'e'},
	    {"memfd", 0, 0, 'M'},
	    {"uid", 1, 0, 'u'},
	    {"gid", 1, 0, 'g'},
	    {"host-ids", 1, 0, 'H'},
	    {"caps", 1, 0, 'c'},
	    {"syscalls", 1, 0, 's'},
	    {"syscall-default", 1, 0, 'd'},
	    {"violations", 1, 0, 'V'},
	    {"seccomp-invalid", 0, 0, 'I'},
	    {"nofile", 1, 0, 'n'},
	    {"memory-max", 1, 0, 'm'},
	    {"tasks-max", 1, 0, 't'},
	    {"cpu-quota", 1, 0, 'q'},
	    {"hostname", 1, 0, 'h'},
	    {"marker", 1, 0, 'k'},
	    {"fail-setup", 0, 0, 'F'},
	    {"timeout", 1, 0, 'T'},
	    {"freeze-test", 0, 0, 'Z'},
	    {"cleanup-first", 0, 0, 'X'},
	    {0, 0, 0, 0},
	};
	struct envelope_spec spec;
	char id[64], cgname[64], *exec_path = NULL, *syscalls = NULL, *violations = NULL;
	bool use_memfd = false, seccomp_invalid = false, freeze_test = false, cleanup_first = false;
	enum seccomp_default def = SECCOMP_DEFAULT_ERRNO;
	int timeout = 30, marker_fd = -1, o, r;
	struct seccomp_program *prog = NULL, bad = {0};
	struct sock_filter bad_insn = {0xffff, 0, 0, 0}; /* no such BPF opcode */
	char *envp[] = {"PATH=/bin:/usr/bin", "HOME=/", NULL};

	envelope_spec_init(&spec);
	snprintf(id, sizeof(id), "envrun-%d", (int)getpid());
	snprintf(cgname, sizeof(cgname), "mtd-envrun-%d", (int)getpid());
	spec.instance_id = id;
	spec.upper_size_bytes = 16 << 20;
	spec.envp = envp;
	spec.stdio_fds[0] = -1;
	spec.stdio_fds[1] = 1;
	spec.stdio_fds[2] = 2;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'i':
			snprintf(id, sizeof(id), "%s", optarg);
			break;
		case 'C':
			snprintf(cgname, sizeof(cgname), "%s", optarg);
			break;
		case 'l':
			/* the envelope mounts the lower layer from an fd; no
			 * O_DIRECTORY, so what it refuses is for it to say */
			spec.lower_fd = open(optarg, O_RDONLY | O_CLOEXEC);
			if (spec.lower_fd < 0) {
				perror(optarg);
				return 1;
			}
			break;
		case 'U':
			spec.upper_size_bytes = strtoull(optarg, NULL, 0);
			break;
		case 'e':
			exec_path = optarg;
			break;
		case 'M':
			use_memfd = true;
			break;
		case 'u':
			spec.uid = strtoul(optarg, NULL, 10);
			break;
		case 'H':
			spec.host_id_base = strtoul(optarg, NULL, 0);
			break;
		case 'g':
			spec.gid = strtoul(optarg, NULL, 10);
			break;
		case 'c':
			if (parse_caps(optarg, &spec.capabilities) < 0)
				return 1;
			break;
		case 's':
			syscalls = optarg;
			break;
		case 'd':
			def = strcmp(optarg, "kill") == 0 ? SECCOMP_DEFAULT_KILL
							  : SECCOMP_DEFAULT_ERRNO;
			break;
		case 'V':
			violations = optarg;
			break;
		case 'I':
			seccomp_invalid = true;
			break;
		case 'n':
			spec.limit_nofile = strtoull(optarg, NULL, 10);
			break;
		case 'm':
			spec.limits.memory_max = strtoull(optarg, NULL, 0);
			break;
		case 't':
			spec.limits.tasks_max = strtoull(optarg, NULL, 10);
			break;
		case 'q':
			spec.limits.cpu_quota_percent = strtoul(optarg, NULL, 10);
			break;
		case 'h':
			spec.hostname = optarg;
			break;
		case 'k':
			marker_fd = open(optarg, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
			if (marker_fd < 0) {
				perror("envelope-run: marker");
				return 1;
			}
			break;
		case 'F':
			spec.setup_in_parent = fail_setup;
			break;
		case 'T':
			timeout = atoi(optarg);
			break;
		case 'Z':
			freeze_test = true;
			break;
		case 'X':
			cleanup_first = true;
			break;
		default:
			return 1;
		}
	}
	if (!exec_path || spec.lower_fd < 0 || optind >= argc) {
		fprintf(stderr,
			"usage: envelope-run --lower DIR --exec BIN [options] -- ARGV...\n");
		return 1;
	}
	spec.argv = &argv[optind];
	if (marker_fd >= 0) {
		spec.pass_fds = &marker_fd;
		spec.n_pass_fds = 1;
	}
	spec.exec_fd = use_memfd ? memfd_copy(exec_path) : open(exec_path, O_RDONLY | O_CLOEXEC);
	if (spec.exec_fd < 0) {
		fprintf(stderr, "envelope-run: %s: %s\n", exec_path, strerror(errno));
		return 1;
	}
	if (seccomp_invalid) {
		bad.insns = &bad_insn;
		bad.count = 1;
		spec.seccomp = &bad;
	} else if (syscalls || violations) {
		char **items = NULL, **vitems = NULL;
		size_t n = 0, nv = 0;
		const char *bad_item = NULL;
		if (split_words(syscalls ? syscalls : "@system-service", &items, &n) < 0 ||
		    (violations && split_words(violations, &vitems, &nv) < 0))
			return 1;
		r = seccomp_program_compile_violations(items, n, vitems, nv, def, &prog, &bad_item);
		if (r < 0) {
			fprintf(stderr, "envelope-run: seccomp: %s: %s\n", bad_item ? bad_item : "",
				strerror(-r));
			return 1;
		}
		spec.seccomp = prog;
	}

	struct cgroup_root *root = NULL;
	r = cgroup_root_open(cgname, &root);
	if (r < 0) {
		printf("spawn-failed step=cgroup root errno=%d detail=%s\n", -r, cgname);
		return 2;
	}
	fprintf(stderr, "envelope-run: cgroups %s (%s)\n", cgroup_root_path(root),
		cgroup_root_is_hybrid(root) ? "hybrid" : "unified");

	struct uid_ranges *ranges = NULL;
	r = uid_ranges_open("/", UID_RANGE_REGION_FIRST, UID_RANGE_REGION_END, &ranges);
	if (r == 0 && spec.host_id_base)
		r = uid_range_userns_new(spec.host_id_base, &spec.idmap_userns_fd);
	else if (r == 0)
		r = uid_ranges_take(ranges, &spec.host_id_base);
	if (r == 0 && spec.idmap_userns_fd < 0)
		r = uid_ranges_idmap_userns(ranges, spec.host_id_base, &spec.idmap_userns_fd);
	if (r < 0) {
		printf("spawn-failed step=host ids errno=%d detail=uid_range\n", -r);
		return 2;
	}
	printf("host_ids=%u\n", (unsigned)spec.host_id_base);

	struct envelope_instance *e = NULL;
	struct step_error err;
	fflush(stdout);
	r = envelope_spawn(&spec, root, &e, &err);
	if (r < 0) {
		char buf[STEP_ERROR_FORMAT_MAX];
		fprintf(stderr, "envelope-run: %s\n", step_error_format(&err, buf, sizeof(buf)));
		printf("spawn-failed step=%s errno=%d detail=%s\n", err.step, err.err, err.detail);
		r = cgroup_root_remove(root);
		if (r < 0)
			fprintf(stderr, "envelope-run: removing cgroup root: %s\n", strerror(-r));
		cgroup_root_free(root);
		return 2;
	}
	fprintf(stderr, "envelope-run: pid %d cgroup %s\n", (int)envelope_pid(e),
		envelope_cgroup_path(e));

	int rc = 0;
	if (violations) {
		printf("notify_fd=%s\n", envelope_notify_fd(e) >= 0 ? "yes" : "none");
		fflush(stdout);
	}
	if (freeze_test) {
		r = envelope_freeze(e, true);
		printf("freeze=%s\n", r < 0 ? strerror(-r) : "frozen");
		r = envelope_freeze(e, false);
		printf("thaw=%s\n", r < 0 ? strerror(-r) : "thawed");
		fflush(stdout);
	}
	if (cleanup_first) {
		r = envelope_cleanup(e);
		printf("cleanup_first=%s\n", r < 0 ? strerror(-r) : "ok");
		fflush(stdout);
	}
	if (wait_serving(e, timeout * 1000) == 0) {
		fprintf(stderr, "envelope-run: timeout, cgroup.kill\n");
		printf("timeout=1\n");
		envelope_kill(e);
	}
	siginfo_t si;
	r = envelope_wait(e, &si);
	if (r < 0) {
		fprintf(stderr, "envelope-run: wait: %s\n", strerror(-r));
		rc = 1;
	} else
		print_status(&si);
	if (envelope_notify_fd(e) >= 0) {
		struct seccomp_violation v;
		r = seccomp_notify_handle(envelope_notify_fd(e), &v);
		printf("notify_after_exit=%s\n", r == -EPIPE ? "hangup" : strerror(-r));
	}
	r = envelope_cleanup(e);
	if (r < 0) {
		fprintf(stderr, "envelope-run: cleanup: %s\n", strerror(-r));
		rc = 1;
	}
	envelope_free(e);
	r = cgroup_root_remove(root);
	if (r < 0) {
		fprintf(stderr, "envelope-run: removing cgroup root: %s\n", strerror(-r));
		rc = 1;
	}
	cgroup_root_free(root);
	seccomp_program_free(prog);
	return rc;
}
