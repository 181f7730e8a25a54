/* SPDX-License-Identifier: MIT */
/*
 * Rotation benchmark: the time of the rotator's one transaction that moves
 * the public ports of N services (N = 64, 1024), against `nft -f` applying
 * the same element changes to a table with the same sets, in the same run.
 * Must run in a fresh network namespace (tests/run-bench uses unshare -n);
 * it refuses to run in the host's.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"
#include "rotator.h"
#include "schedule.h"

#define RUNS 21
#ifndef DECOYS
#define DECOYS 8
#endif
#define RANGE 50 /* ports per service, disjoint ranges from 10000 */
#define BENCH_TABLE "mtdbench"

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t median(uint64_t *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_u64);
	return v[n / 2];
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

struct epoch_plan {
	struct rotator_service *svcs;
	uint16_t (*decoys)[DECOYS];
	char (*names)[24];
	struct rotator_plan plan;
};

static const uint8_t key[32] = "bench-key-bench-key-bench-key-01";

/* The plan of `epoch` for n services, from the real keyed schedule. */
static int make_plan(size_t n, uint64_t epoch, struct epoch_plan *p)
{
	p->svcs = calloc(n, sizeof(*p->svcs));
	p->decoys = calloc(n, sizeof(*p->decoys));
	p->names = calloc(n, sizeof(*p->names));
	if (!p->svcs || !p->decoys || !p->names)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct rotator_service *s = &p->svcs[i];
		struct schedule_params sp = {
			.key = key, .key_len = sizeof(key), .service = p->names[i],
			.first = (uint16_t)(10000 + i * RANGE),
			.last = (uint16_t)(10000 + i * RANGE + RANGE - 1),
			.interval_sec = 60, .grace_sec = 15, .n_decoys = DECOYS,
		};
		struct schedule_result res;
		int r;

		snprintf(p->names[i], sizeof(p->names[i]), "svc%zu", i);
		/* 5 s into the epoch: inside grace, so current + previous port */
		r = schedule_compute(&sp, (epoch * 60 + 5) * 1000000ULL, &res);
		if (r < 0)
			return r;
		s->name = p->names[i];
		s->proto = IPPROTO_TCP;
		s->port = res.port;
		s->grace_port = res.grace_port;
		memcpy(p->decoys[i], res.decoys, sizeof(p->decoys[i]));
		s->decoys = p->decoys[i];
		s->n_decoys = res.n_decoys;
		s->backend.family = AF_INET;
		s->backend.in.s_addr = htonl(0x0a000000u | (uint32_t)(i + 1));
		s->backend_port = 8000;
		s->local_access = i % 2 == 0;
	}
	p->plan = (struct rotator_plan){ .services = p->svcs, .n_services = n };
	return 0;
}

static void free_plan(struct epoch_plan *p)
{
	free(p->svcs);
	free(p->decoys);
	free(p->names);
}

static void addr_text(const struct rotator_service *s, char *buf, size_t len)
{
	inet_ntop(AF_INET, &s->backend.in, buf, (socklen_t)len);
}

/* The same element changes as the rotator's transaction, as an nft script. */
static int write_nft_script(const char *path, const struct rotator_plan *plan)
{
	_cleanup_fclose_ FILE *f = fopen(path, "we");
	const char *sep;
	char a[INET_ADDRSTRLEN];

	if (!f)
		return -errno;
	fprintf(f, "flush map inet " BENCH_TABLE " svc4\nflush map inet " BENCH_TABLE
		   " local4\nflush set inet " BENCH_TABLE " backends4\nflush set inet " BENCH_TABLE
		   " decoys\n");
	fprintf(f, "add element inet " BENCH_TABLE " svc4 {");
	sep = " ";
	for (size_t i = 0; i < plan->n_services; i++) {
		const struct rotator_service *s = &plan->services[i];

		addr_text(s, a, sizeof(a));
		fprintf(f, "%stcp . %u : %s . %u", sep, s->port, a, s->backend_port);
		sep = ", ";
		if (s->grace_port)
			fprintf(f, "%stcp . %u : %s . %u", sep, s->grace_port, a, s->backend_port);
	}
	fprintf(f, " }\nadd element inet " BENCH_TABLE " local4 {");
	sep = " ";
	for (size_t i = 0; i < plan->n_services; i++) {
		const struct rotator_service *s = &plan->services[i];

		if (!s->local_access)
			continue;
		addr_text(s, a, sizeof(a));
		fprintf(f, "%stcp . %u : %s . %u", sep, s->port, a, s->backend_port);
		sep = ", ";
		if (s->grace_port)
			fprintf(f, "%stcp . %u : %s . %u", sep, s->grace_port, a, s->backend_port);
	}
	fprintf(f, " }\nadd element inet " BENCH_TABLE " backends4 {");
	sep = " ";
	for (size_t i = 0; i < plan->n_services; i++) {
		addr_text(&plan->services[i], a, sizeof(a));
		fprintf(f, "%stcp . %s . %u", sep, a, plan->services[i].backend_port);
		sep = ", ";
	}
	fprintf(f, " }\n");
	sep = "add element inet " BENCH_TABLE " decoys { ";
	for (size_t i = 0; i < plan->n_services; i++)
		for (size_t j = 0; j < plan->services[i].n_decoys; j++) {
			fprintf(f, "%stcp . %u", sep, plan->services[i].decoys[j]);
			sep = ", ";
		}
	if (sep[0] == ',')
		fprintf(f, " }\n");
	if (fflush(f) != 0)
		return -errno;
	return 0;
}

static const char bench_table[] =
	"table inet " BENCH_TABLE " {\n"
	" map svc4 { type inet_proto . inet_service : ipv4_addr . inet_service; }\n"
	" map svc6 { type inet_proto . inet_service : ipv6_addr . inet_service; }\n"
	" map local4 { type inet_proto . inet_service : ipv4_addr . inet_service; }\n"
	" map local6 { type inet_proto . inet_service : ipv6_addr . inet_service; }\n"
	" set backends4 { type inet_proto . ipv4_addr . inet_service; }\n"
	" set backends6 { type inet_proto . ipv6_addr . inet_service; }\n"
	" set decoys { type inet_proto . inet_service; }\n"
	"}\n";

/* fork/exec nft -f path; its wall time in ns, or negative errno. */
static int64_t run_nft(const char *path)
{
	uint64_t start = now_ns();
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY | O_CLOEXEC);

		if (null >= 0)
			dup2(null, STDOUT_FILENO);
		execlp("nft", "nft", "-f", path, (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -errno;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return -EIO;
	return (int64_t)(now_ns() - start);
}

static int bench(size_t n, const char *dir, double *ret_ratio)
{
	struct rotator_config cfg = { .nflog_group = 7, .block_timeout_sec = 600 };
	struct rotator_error err;
	struct rotator *rot = NULL;
	struct epoch_plan plans[RUNS + 1] = {};
	uint64_t ours[RUNS], theirs[RUNS];
	char path[RUNS + 1][256], table_path[256];
	size_t msgs_elems = 0;
	int r = 0;

	for (size_t e = 0; e <= RUNS && r >= 0; e++) {
		r = make_plan(n, 29000000 + e, &plans[e]);
		snprintf(path[e], sizeof(path[e]), "%s/epoch-%zu-%zu.nft", dir, n, e);
		if (r >= 0)
			r = write_nft_script(path[e], &plans[e].plan);
	}
	if (r < 0) {
		fprintf(stderr, "bench: building plans: %s\n", strerror(-r));
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		msgs_elems += 2 + 2 * plans[1].svcs[i].local_access + 1 + plans[1].svcs[i].n_decoys;

	/* ours: table created by the first apply, then one transaction per epoch */
	r = rotator_new(&cfg, &rot);
	if (r >= 0)
		r = rotator_apply(rot, &plans[0].plan, &err);
	for (size_t e = 1; r >= 0 && e <= RUNS; e++) {
		uint64_t t0 = now_ns();

		r = rotator_apply(rot, &plans[e].plan, &err);
		ours[e - 1] = now_ns() - t0;
	}
	if (r < 0) {
		fprintf(stderr, "bench: rotator_apply: %s (%s: %s)\n", strerror(-r), err.object,
			err.message);
		goto out;
	}

	/* theirs: the same sets in a plain table, the same changes via nft -f */
	snprintf(table_path, sizeof(table_path), "%s/table.nft", dir);
	{
		_cleanup_fclose_ FILE *f = fopen(table_path, "we");

		if (!f || fputs(bench_table, f) < 0 || fflush(f) != 0) {
			r = -EIO;
			goto out;
		}
	}
	if (run_nft(table_path) < 0 || run_nft(path[0]) < 0) {
		fprintf(stderr, "bench: nft -f failed (is nft installed?)\n");
		r = -EIO;
		goto out;
	}
	for (size_t e = 1; e <= RUNS; e++) {
		int64_t t = run_nft(path[e]);

		if (t < 0) {
			fprintf(stderr, "bench: nft -f %s: %s\n", path[e], strerror((int)-t));
			r = (int)t;
			goto out;
		}
		theirs[e - 1] = (uint64_t)t;
	}

	{
		uint64_t mo = median(ours, RUNS), mt = median(theirs, RUNS);

		*ret_ratio = (double)mt / (double)mo;
		printf("| %8zu | %8zu | %12.3f | %12.3f | %8.1fx |\n", n, msgs_elems,
		       (double)mo / 1e6, (double)mt / 1e6, *ret_ratio);
	}
out:
	rotator_free(rot);
	for (size_t e = 0; e <= RUNS; e++) {
		free_plan(&plans[e]);
		unlink(path[e]);
	}
	unlink(table_path);
	return r;
}

int main(void)
{
	static const size_t sizes[] = { 64, 1024 };
	static const double targets[] = { 30, 10 };
	char dir[] = "/tmp/bench-rotation-XXXXXX";
	bool ok = true;
	int r;

	r = in_private_netns();
	if (r <= 0) {
		fprintf(stderr, "bench_rotation: refusing to run outside a private network "
				"namespace (run it under unshare -n)\n");
		return 77;
	}
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	printf("rotation: one transaction moving the public ports of N services "
	       "(each with grace port, %d decoys, half with local access)\n", DECOYS);
	printf("medians of %d epochs; rotator = rotator_apply() incl. genid round trip; "
	       "nft = fork/exec `nft -f` of the same element changes\n\n", RUNS);
	printf("| services | elements | rotator (ms) |  nft -f (ms) |    ratio |\n");
	printf("|----------|----------|--------------|--------------|----------|\n");
	for (size_t i = 0; i < ELEMENTSOF(sizes); i++) {
		double ratio = 0;

		r = bench(sizes[i], dir, &ratio);
		if (r < 0) {
			rmdir(dir);
			return 1;
		}
		if (ratio < targets[i])
			ok = false;
	}
	rmdir(dir);
	printf("\ntargets: >= 30x for 64 services, >= 10x for 1024: %s\n", ok ? "met" : "NOT met");
	return 0;
}
