/* SPDX-License-Identifier: MIT */
/* drift-probe: one enveloped instance watched for drift, then frozen and
 * quarantined, as the agent's response loop does it. For
 * tests/integration/quarantine_drift.sh (root).
 *
 *   drift-probe --lower DIR --state DIR --id ID [--cgroup-name NAME]
 *               [--writable PATH]... [--cap BYTES] -- SCRIPT
 *
 * Runs /bin/busybox sh -c SCRIPT from the lower directory in an envelope. The
 * script starts after the drift watch is in place: it should begin with
 * "read go <&3" and finish its writes by creating /run/ready. Prints
 *
 *   pid=HOSTPID                          pid 1 of the instance
 *   drift KIND PATH                      each report of the inotify watch
 *   scan KIND PATH                       each report of drift_scan
 *   saved bytes=N truncated=0|1 over_cap=0|1 manifest=SHA256
 *   evicted=ID                           per evicted entry
 *   inspect verified=0|1
 *
 * then kills the instance and removes its cgroups whatever happened; exits 0
 * when every step worked. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sandbox.h"
#include "fleet_internal.h"
#include "macro.h"
#include "quarantine.h"

#define MAX_WRITABLE 16

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int print_scan(const struct drift_event *ev, void *userdata)
{
	printf("scan %s %s\n", drift_kind_name(ev->kind), ev->path);
	return 0;
}

/* Drift reports until the script says it is done (upper/run/ready) or 10 s. */
static int watch(struct drift_watch *w, int upper_fd, const char **ret_first)
{
	static char first[DRIFT_PATH_MAX + 32];
	struct drift_event *ev = calloc(16, sizeof(*ev));
	uint64_t end = now_ms() + 10000, settle = 0;
	struct stat st;

	if (!ev)
		return -ENOMEM;
	while (now_ms() < end && (!settle || now_ms() < settle)) {
		struct pollfd p = {.fd = drift_watch_fd(w), .events = POLLIN};
		size_t n;
		int r;

		(void)poll(&p, 1, 50);
		do {
			r = drift_watch_read(w, ev, 16, &n);
			if (r < 0) {
				free(ev);
				return r;
			}
			for (size_t i = 0; i < n; i++) {
				printf("drift %s %s\n", drift_kind_name(ev[i].kind), ev[i].path);
				if (!first[0])
					snprintf(first, sizeof(first), "%s %s",
						 drift_kind_name(ev[i].kind), ev[i].path);
			}
		} while (n == 16);
		if (!settle && fstatat(upper_fd, "upper/run/ready", &st, AT_SYMLINK_NOFOLLOW) == 0)
			settle = now_ms() + 300;
	}
	free(ev);
	fflush(stdout);
	*ret_first = first;
	return settle ? 0 : -ETIMEDOUT;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"lower", 1, 0, 'l'},
	    {"state", 1, 0, 's'},
	    {"id", 1, 0, 'i'},
	    {"cgroup-name", 1, 0, 'C'},
	    {"writable", 1, 0, 'w'},
	    {"cap", 1, 0, 'c'},
	    {0, 0, 0, 0},
	};
	char *writable[MAX_WRITABLE], cgname[64], busybox[4096];
	const char *lower = NULL, *state = NULL, *id = NULL, *first = "";
	size_t n_writable = 0;
	uint64_t cap = 0;
	char *envp[] = {"PATH=/bin", NULL};
	int pipefd[2] = {-1, -1}, o, r, rc = 1;
	struct envelope_spec spec;
	struct cgroup_root *root = NULL;
	struct envelope_instance *e = NULL;
	struct step_error err;
	struct drift_watch *w = NULL;

	snprintf(cgname, sizeof(cgname), "mtd-qtest-%d", (int)getpid());
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'l':
			lower = optarg;
			break;
		case 's':
			state = optarg;
			break;
		case 'i':
			id = optarg;
			break;
		case 'C':
			snprintf(cgname, sizeof(cgname), "%s", optarg);
			break;
		case 'w':
			if (n_writable < MAX_WRITABLE)
				writable[n_writable++] = optarg;
			break;
		case 'c': {
			char *end;
			errno = 0;
			cap = strtoull(optarg, &end, 10);
			if (errno || *end) {
				fprintf(stderr, "drift-probe: --cap %s\n", optarg);
				return 1;
			}
			break;
		}
		default:
			return 1;
		}
	}
	if (!lower || !state || !quarantine_id_valid(id) || optind + 1 != argc) {
		fprintf(stderr,
			"usage: drift-probe --lower DIR --state DIR --id ID [--writable P]... "
			"[--cap BYTES] -- SCRIPT\n");
		return 1;
	}
	char *args[] = {"sh", "-c", argv[optind], NULL};

	envelope_spec_init(&spec);
	spec.instance_id = id;
	spec.lower_fd = open(lower, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (spec.lower_fd < 0) {
		perror(lower);
		return 1;
	}
	spec.upper_size_bytes = 16 << 20;
	spec.argv = args;
	spec.envp = envp;
	spec.stdio_fds[1] = 2;
	spec.stdio_fds[2] = 2;
	snprintf(busybox, sizeof(busybox), "%s/bin/busybox", lower);
	spec.exec_fd = open(busybox, O_RDONLY | O_CLOEXEC);
	if (spec.exec_fd < 0 || pipe2(pipefd, O_CLOEXEC) < 0) {
		perror("drift-probe: busybox or pipe");
		return 1;
	}
	spec.pass_fds = &pipefd[0];
	spec.n_pass_fds = 1;

	r = cgroup_root_open(cgname, &root);
	if (r < 0) {
		fprintf(stderr, "drift-probe: cgroup %s: %s\n", cgname, strerror(-r));
		return 1;
	}
	struct uid_ranges *ranges = NULL;
	r = uid_ranges_open("/", UID_RANGE_REGION_FIRST, UID_RANGE_REGION_END, &ranges);
	if (r == 0)
		r = uid_ranges_take(ranges, &spec.host_id_base);
	if (r == 0)
		r = uid_ranges_idmap_userns(ranges, spec.host_id_base, &spec.idmap_userns_fd);
	if (r < 0) {
		fprintf(stderr, "drift-probe: host ids: %s\n", strerror(-r));
		return 1;
	}
	r = envelope_spawn(&spec, root, &e, &err);
	if (r < 0) {
		char buf[STEP_ERROR_FORMAT_MAX];
		fprintf(stderr, "drift-probe: %s\n", step_error_format(&err, buf, sizeof(buf)));
		goto out;
	}
	close(pipefd[0]);
	pipefd[0] = -1;
	printf("pid=%d\n", (int)envelope_pid(e));
	fflush(stdout);

	/* 1. the watch in place, then the instance writes */
	r = drift_watch_new(envelope_upper_fd(e), writable, n_writable, &w);
	if (r < 0) {
		fprintf(stderr, "drift-probe: drift_watch_new: %s\n", strerror(-r));
		goto out;
	}
	if (write(pipefd[1], "go\n", 3) != 3) {
		perror("drift-probe: go");
		goto out;
	}
	r = watch(w, envelope_upper_fd(e), &first);
	if (r < 0) {
		fprintf(stderr, "drift-probe: the script did not finish: %s\n", strerror(-r));
		goto out;
	}
	r = drift_scan(envelope_upper_fd(e), writable, n_writable, print_scan, NULL);
	if (r < 0) {
		fprintf(stderr, "drift-probe: drift_scan: %s\n", strerror(-r));
		goto out;
	}

	/* 2. freeze, then keep the evidence */
	r = envelope_freeze(e, true);
	if (r < 0) {
		fprintf(stderr, "drift-probe: freeze: %s\n", strerror(-r));
		goto out;
	}
	{
		json_t *evidence = json_pack("{s:s}", "first_report", first);
		struct quarantine_record rec = {
		    .id = id,
		    .service = "web",
		    .reason = "drift",
		    .evidence = evidence,
		    .pid = envelope_pid(e),
		};
		struct quarantine_result res = {0};
		json_t *inspect = NULL;
		char *error = NULL;

		r = quarantine_save(state, &rec, envelope_upper_fd(e), envelope_cgroup_path(e), cap,
				    &res, &error);
		json_decref(evidence);
		if (r < 0) {
			fprintf(stderr, "drift-probe: quarantine_save: %s\n", error);
			free(error);
			goto out;
		}
		printf("saved bytes=%llu truncated=%d over_cap=%d manifest=%s\n",
		       (unsigned long long)res.bytes, res.truncated, res.over_cap,
		       res.manifest_sha256);
		for (size_t i = 0; i < res.n_evicted; i++)
			printf("evicted=%s\n", res.evicted[i]);
		quarantine_result_done(&res);
		r = quarantine_inspect(state, id, &inspect);
		if (r < 0) {
			fprintf(stderr, "drift-probe: inspect: %s\n", strerror(-r));
			goto out;
		}
		printf("inspect verified=%d\n", json_is_true(json_object_get(inspect, "verified")));
		json_decref(inspect);
	}
	rc = 0;
out:
	fflush(stdout);
	drift_watch_free(w);
	if (pipefd[1] >= 0)
		close(pipefd[1]);
	if (pipefd[0] >= 0)
		close(pipefd[0]);
	if (e) {
		siginfo_t si;

		(void)envelope_kill(e);
		(void)envelope_freeze(e, false); /* a frozen task dies once thawed */
		if (envelope_wait(e, &si) < 0)
			rc = 1;
		if (envelope_cleanup(e) < 0) {
			fprintf(stderr, "drift-probe: cleanup failed\n");
			rc = 1;
		}
		envelope_free(e);
	}
	if (root) {
		if (cgroup_root_remove(root) < 0)
			rc = 1;
		cgroup_root_free(root);
	}
	return rc;
}
