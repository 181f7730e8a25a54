/* SPDX-License-Identifier: MIT */
/*
 * Host-port scan benchmark: what one rotation boundary pays to learn the
 * ports bound on the host (host_ports_scan: TCP listeners and bound UDP
 * sockets, IPv4 and IPv6), over NETLINK_SOCK_DIAG (the agent's path) and
 * from /proc/net alone (its fallback), measured in the same run, alternating
 * scan by scan, with 0 and with 50,000 established TCP connections in the
 * namespace (loopback: 50,000 connected sockets and their 50,000 accepted
 * peers). Target (issue 14): with sock_diag the cost does not grow with the
 * connections.
 * Must run in a fresh network namespace (tests/run-bench uses unshare -n);
 * it refuses to run in the host's. The connections are held by worker
 * processes (RLIMIT_NOFILE's hard limit bounds each one; raising it needs
 * CAP_SYS_RESOURCE, which a container may lack), killed at exit and by
 * PR_SET_PDEATHSIG if this process dies first: their sockets go with them,
 * and the namespace with the last of them.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "macro.h"
#include "rotation_internal.h"

#define CONNECTIONS 50000
#define LISTENERS 4 /* 12,500 connections each: ephemeral ports to spare */
#define FIRST_LISTENER_PORT 7001
/* scans per path: with 50,000 connections a /proc/net scan takes about half
 * a second here, so fewer (p99 of 51 is their worst) */
static const int runs[] = {201, 51};
#define MAX_RUNS 201

/* ns: a scan over sock_diag takes tens of microseconds */
static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* A fresh network namespace: not PID 1's (when that is readable) and with no
 * interface but lo. The host's namespace always has more. */
static int in_private_netns(void)
{
	char self[64] = "", init[64] = "";
	struct if_nameindex *ifs;
	bool only_lo = true;

	if (readlink("/proc/self/ns/net", self, sizeof(self) - 1) < 0)
		return -errno;
	if (readlink("/proc/1/ns/net", init, sizeof(init) - 1) >= 0 && streq(self, init))
		return 0;
	ifs = if_nameindex();
	if (!ifs)
		return -errno;
	for (struct if_nameindex *i = ifs; i->if_index; i++)
		if (!streq(i->if_name, "lo"))
			only_lo = false;
	if_freenameindex(ifs);
	return only_lo;
}

static struct sockaddr_in loopback(uint16_t port)
{
	return (struct sockaddr_in){
	    .sin_family = AF_INET,
	    .sin_port = htons(port),
	    .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
}

static int open_listeners(int fds[LISTENERS])
{
	for (int i = 0; i < LISTENERS; i++) {
		struct sockaddr_in sa = loopback((uint16_t)(FIRST_LISTENER_PORT + i));
		int one = 1;

		fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fds[i] < 0 ||
		    setsockopt(fds[i], SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
		    bind(fds[i], (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
		    listen(fds[i], 128) < 0) {
			fprintf(stderr, "bench_host_ports: listener on 127.0.0.1:%d: %s\n",
				FIRST_LISTENER_PORT + i, strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* n established connections over loopback, spread over the listeners: each
 * connect completes in the kernel, then its peer is accepted at once, so no
 * backlog fills. The descriptors stay open until the process exits. */
static int open_connections(const int listeners[LISTENERS], int first, int n)
{
	for (int i = first; i < first + n; i++) {
		struct sockaddr_in sa = loopback((uint16_t)(FIRST_LISTENER_PORT + i % LISTENERS));
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
		    accept4(listeners[i % LISTENERS], NULL, NULL, SOCK_CLOEXEC) < 0) {
			fprintf(stderr, "bench_host_ports: connection %d: %s\n", i + 1,
				strerror(errno));
			return -1;
		}
	}
	return 0;
}

static pid_t workers[64];
static size_t n_workers;

static void stop_workers(void)
{
	for (size_t i = 0; i < n_workers; i++) {
		kill(workers[i], SIGKILL);
		waitpid(workers[i], NULL, 0);
	}
	n_workers = 0;
}

/* A worker that opens connections first..first+n-1 and holds them until it
 * is killed; returns once they are open. One at a time: they accept on the
 * same listeners. */
static int spawn_worker(const int listeners[LISTENERS], int first, int n)
{
	pid_t parent = getpid(), pid;
	int ready[2];
	char byte = 0;
	ssize_t got;

	if (n_workers == ELEMENTSOF(workers) || pipe2(ready, O_CLOEXEC) < 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		struct rlimit nofile;

		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
			_exit(1);
		close(ready[0]);
		if (getrlimit(RLIMIT_NOFILE, &nofile) < 0)
			_exit(1);
		nofile.rlim_cur = nofile.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &nofile) < 0 ||
		    open_connections(listeners, first, n) < 0)
			_exit(1);
		if (write(ready[1], &byte, 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	workers[n_workers++] = pid;
	close(ready[1]);
	got = read(ready[0], &byte, 1); /* 0: the worker died */
	close(ready[0]);
	return got == 1 ? 0 : -1;
}

/* n connections, held by as many workers as RLIMIT_NOFILE's hard limit
 * needs (two descriptors per connection). */
static int hold_connections(const int listeners[LISTENERS], int n)
{
	struct rlimit nofile;
	int per_worker;

	if (getrlimit(RLIMIT_NOFILE, &nofile) < 0)
		return -1;
	per_worker = nofile.rlim_max > 2 * (rlim_t)n + 64 ? n : (int)((nofile.rlim_max - 64) / 2);
	if (per_worker < 1000) {
		fprintf(stderr, "bench_host_ports: RLIMIT_NOFILE's hard limit %ld is too low\n",
			(long)nofile.rlim_max);
		return -1;
	}
	for (int first = 0; first < n; first += per_worker)
		if (spawn_worker(listeners, first,
				 n - first < per_worker ? n - first : per_worker) < 0) {
			fprintf(stderr,
				"bench_host_ports: a worker failed to open its connections\n");
			return -1;
		}
	return 0;
}

/* The established TCP sockets of this namespace, counted over /proc/net/tcp
 * (state 01): the figures' condition, checked rather than assumed. */
static long count_established(void)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/net/tcp", "re");
	char line[256];
	long n = 0;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		/* "  sl  local rem st ...": the state is the fourth field */
		const char *field = line;

		for (int i = 0; i < 3 && field; i++) {
			field += strspn(field, " ");
			field = strchr(field, ' ');
		}
		if (field && strncmp(field + strspn(field, " "), "01 ", 3) == 0)
			n++;
	}
	return n;
}

struct figures {
	uint64_t median_ns, p99_ns;
};

/* n_runs scans by each source, alternating; each scan must find the listeners. */
static int measure(int n_runs, struct figures ret[2])
{
	static const enum host_ports_source sources[2] = {HOST_PORTS_SOCK_DIAG, HOST_PORTS_PROC};
	static uint64_t samples[2][MAX_RUNS];

	for (int run = 0; run < n_runs; run++)
		for (int s = 0; s < 2; s++) {
			struct host_ports *ports = NULL;
			uint64_t t0 = now_ns();
			int r = host_ports_scan_from(sources[s], &ports);

			samples[s][run] = now_ns() - t0;
			if (r < 0) {
				fprintf(stderr, "bench_host_ports: scan: %s\n", strerror(-r));
				return r;
			}
			for (int i = 0; i < LISTENERS; i++)
				if (!host_ports_is_bound(ports, POLICY_PROTO_TCP,
							 (uint16_t)(FIRST_LISTENER_PORT + i))) {
					fprintf(stderr,
						"bench_host_ports: the %s scan missed "
						"listener 127.0.0.1:%d\n",
						s ? "/proc/net" : "sock_diag",
						FIRST_LISTENER_PORT + i);
					host_ports_free(ports);
					return -EIO;
				}
			if (host_ports_from_proc(ports) != (sources[s] == HOST_PORTS_PROC)) {
				fprintf(stderr, "bench_host_ports: the sock_diag scan fell back to "
						"/proc/net\n");
				host_ports_free(ports);
				return -EIO;
			}
			host_ports_free(ports);
		}
	for (int s = 0; s < 2; s++) {
		qsort(samples[s], (size_t)n_runs, sizeof(samples[s][0]), cmp_u64);
		ret[s].median_ns = samples[s][n_runs / 2];
		ret[s].p99_ns = samples[s][(n_runs * 99 + 99) / 100 - 1];
	}
	return 0;
}

int main(void)
{
	static const int counts[] = {0, CONNECTIONS};
	struct figures figures[2][2];
	int listeners[LISTENERS];
	int r;

	r = in_private_netns();
	if (r <= 0) {
		fprintf(stderr, "bench_host_ports: refusing to run outside a private network "
				"namespace (run it under unshare -n)\n");
		return 77;
	}
	if (atexit(stop_workers) != 0)
		return 1;
	if (open_listeners(listeners) < 0)
		return 1;
	printf("host ports: one boundary's scan (TCP listeners + bound UDP, IPv4 + IPv6), "
	       "sock_diag and /proc/net alternating\n");
	for (size_t c = 0; c < ELEMENTSOF(counts); c++) {
		long established;

		if (counts[c] && hold_connections(listeners, counts[c]) < 0)
			return 1;
		established = count_established();
		if (established < 2L * counts[c]) {
			fprintf(stderr, "bench_host_ports: %ld established sockets, %d expected\n",
				established, 2 * counts[c]);
			return 1;
		}
		if (measure(runs[c], figures[c]) < 0)
			return 1;
		printf("  %6d connections (%ld established sockets, %d scans each): sock_diag "
		       "median %7.1f us, p99 %7.1f us | /proc/net median %8.1f us, p99 %8.1f us\n",
		       counts[c], established, runs[c], figures[c][0].median_ns / 1e3,
		       figures[c][0].p99_ns / 1e3, figures[c][1].median_ns / 1e3,
		       figures[c][1].p99_ns / 1e3);
	}
	printf("  with %d connections: sock_diag median x%.2f of its cost with none, /proc/net "
	       "x%.2f; sock_diag %.1fx faster than /proc/net\n",
	       CONNECTIONS, (double)figures[1][0].median_ns / (double)figures[0][0].median_ns,
	       (double)figures[1][1].median_ns / (double)figures[0][1].median_ns,
	       (double)figures[1][1].median_ns / (double)figures[1][0].median_ns);
	return 0;
}
