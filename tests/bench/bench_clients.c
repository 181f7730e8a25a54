/* SPDX-License-Identifier: MIT */
/*
 * Per-client doors at scale (issue 15, item 8): 64 services x 1,000 clients
 * (64,000 doors and 64,000 knock ports per epoch, knock-gated, 8 decoys per
 * service). At a boundary the agent switches banks (the ports move), then
 * loads the epoch after into the idle bank ("staging"). Measured here:
 *   - computing every client's door and knock port of one epoch
 *     (schedule_client_ports_fast: one HMAC, keyed once per client);
 *   - the switch (rotator_apply recognising the loaded bank: 4 elements);
 *   - the staging (the same plan applied again: the idle bank's delta);
 * against `nft -f` applying the same element changes to a table with the
 * same sets, in the same run. Targets: switch <= 1 ms; staging >= 5x faster
 * than nft -f. Must run in a fresh network namespace (tests/run-bench).
 */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"
#include "rotator.h"
#include "schedule.h"

#define SERVICES 64
#define CLIENTS 1000
#define DECOYS 8
#define RANGE 1000
#define FIRST_PORT 1500 /* service s: FIRST_PORT + s*RANGE .. + RANGE - 1 */
#define RUNS 5
#define FIRST_EPOCH 29000000ULL
#define TABLE "mtdbench"

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

/* What the services are during one epoch. */
struct period {
	struct rotator_service svcs[SERVICES];
	uint16_t doors[SERVICES][CLIENTS];
	uint16_t knocks[SERVICES][CLIENTS];
	uint16_t decoys[SERVICES][DECOYS];
	size_t n_doors[SERVICES], n_knocks[SERVICES];
};

static char names[SERVICES][16];
static char client_names[CLIENTS][16];
static uint8_t keys[SERVICES][CLIENTS][32];
/* doors and knock ports of every client for epochs FIRST_EPOCH + i */
#define EPOCHS (RUNS + 4)
static uint16_t door_of[EPOCHS][SERVICES][CLIENTS], knock_of[EPOCHS][SERVICES][CLIENTS];

static int cmp_port(const void *a, const void *b)
{
	return (int)*(const uint16_t *)a - (int)*(const uint16_t *)b;
}

static size_t unique(uint16_t *p, size_t n)
{
	size_t m = 0;

	qsort(p, n, sizeof(*p), cmp_port);
	for (size_t i = 0; i < n; i++)
		if (!m || p[m - 1] != p[i])
			p[m++] = p[i];
	return m;
}

/* Period e (1 <= e < EPOCHS - 1): doors and knocks of e; decoys avoiding
 * every door and knock of e-1, e, e+1. */
static void make_period(size_t e, struct period *p)
{
	for (size_t s = 0; s < SERVICES; s++) {
		uint64_t taken[65536 / 64] = {0};
		uint16_t first = (uint16_t)(FIRST_PORT + s * RANGE);
		size_t n_decoys = 0;

		for (size_t c = 0; c < CLIENTS; c++) {
			p->doors[s][c] = door_of[e][s][c];
			p->knocks[s][c] = knock_of[e][s][c];
			for (size_t k = e - 1; k <= e + 1; k++) {
				taken[door_of[k][s][c] / 64] |= 1ull << (door_of[k][s][c] % 64);
				taken[knock_of[k][s][c] / 64] |= 1ull << (knock_of[k][s][c] % 64);
			}
		}
		p->n_doors[s] = unique(p->doors[s], CLIENTS);
		p->n_knocks[s] = unique(p->knocks[s], CLIENTS);
		/* a different walk each epoch through the free ports */
		for (size_t i = 0; i < RANGE && n_decoys < DECOYS; i++) {
			uint16_t port = (uint16_t)(first + (i * 37 + e * 101) % RANGE);

			if (!(taken[port / 64] & (1ull << (port % 64)))) {
				p->decoys[s][n_decoys++] = port;
				taken[port / 64] |= 1ull << (port % 64);
			}
		}
		p->svcs[s] = (struct rotator_service){
		    .name = names[s],
		    .proto = IPPROTO_TCP,
		    .port = p->doors[s][0],
		    .decoys = p->decoys[s],
		    .n_decoys = n_decoys,
		    .backend = {.family = AF_INET, .in.s_addr = htonl(0x0a000001)},
		    .backend_port = 8080,
		    .client_ports = p->doors[s],
		    .n_client_ports = p->n_doors[s],
		    .gated = true,
		    .knock_ports = p->knocks[s],
		    .n_knock_ports = p->n_knocks[s],
		};
	}
}

/* --- the nft side: a plain table with the same sets -------------------------------- */

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

/* "verb element inet TABLE SET { ... }" for the elements of a that are not in b */
static size_t put_diff(FILE *f, const char *verb, const char *set, const uint16_t *a, size_t na,
		       const uint16_t *b, size_t nb, bool map)
{
	size_t j = 0, n = 0;

	for (size_t i = 0; i < na; i++) {
		while (j < nb && b[j] < a[i])
			j++;
		if (j < nb && b[j] == a[i])
			continue;
		fprintf(f, "%s%s element inet %s %s { ", n ? "" : "", verb, TABLE, set);
		fprintf(f,
			map && !streq(verb, "delete") ? "tcp . %u : 10.0.0.1 . 8080 }\n"
						      : "tcp . %u }\n",
			a[i]);
		n++;
	}
	return n;
}

static size_t put_bank_change(FILE *f, unsigned bank, const struct period *from,
			      const struct period *to)
{
	char svc[16], gated[16], knock[16], decoys[16];
	size_t n = 0;

	snprintf(svc, sizeof(svc), "svc4_%u", bank);
	snprintf(gated, sizeof(gated), "gated_%u", bank);
	snprintf(knock, sizeof(knock), "knock_%u", bank);
	snprintf(decoys, sizeof(decoys), "decoys_%u", bank);
	for (size_t s = 0; s < SERVICES; s++) {
		uint16_t a[DECOYS], b[DECOYS];

		n += put_diff(f, "delete", svc, from->doors[s], from->n_doors[s], to->doors[s],
			      to->n_doors[s], true);
		n += put_diff(f, "delete", gated, from->doors[s], from->n_doors[s], to->doors[s],
			      to->n_doors[s], false);
		n += put_diff(f, "delete", knock, from->knocks[s], from->n_knocks[s], to->knocks[s],
			      to->n_knocks[s], false);
		memcpy(a, from->decoys[s], sizeof(a));
		memcpy(b, to->decoys[s], sizeof(b));
		qsort(a, from->svcs[s].n_decoys, sizeof(*a), cmp_port);
		qsort(b, to->svcs[s].n_decoys, sizeof(*b), cmp_port);
		n += put_diff(f, "delete", decoys, a, from->svcs[s].n_decoys, b,
			      to->svcs[s].n_decoys, false);
		n += put_diff(f, "add", svc, to->doors[s], to->n_doors[s], from->doors[s],
			      from->n_doors[s], true);
		n += put_diff(f, "add", gated, to->doors[s], to->n_doors[s], from->doors[s],
			      from->n_doors[s], false);
		n += put_diff(f, "add", knock, to->knocks[s], to->n_knocks[s], from->knocks[s],
			      from->n_knocks[s], false);
		n += put_diff(f, "add", decoys, b, to->svcs[s].n_decoys, a, from->svcs[s].n_decoys,
			      false);
	}
	return n;
}

static const struct period empty_period;

static int write_initial(const char *path, const struct period *live, const struct period *idle)
{
	FILE *f = fopen(path, "we");

	if (!f)
		return -errno;
	fprintf(f, "table inet %s {\n", TABLE);
	for (unsigned b = 0; b < 2; b++) {
		fprintf(f,
			"  map svc4_%u { type inet_proto . inet_service : ipv4_addr . "
			"inet_service; }\n",
			b);
		fprintf(f, "  set gated_%u { type inet_proto . inet_service; }\n", b);
		fprintf(f, "  set knock_%u { type inet_proto . inet_service; }\n", b);
		fprintf(f, "  set decoys_%u { type inet_proto . inet_service; }\n", b);
		fprintf(f, "  set active%u { type nf_proto; }\n", b);
	}
	fprintf(f, "}\nadd element inet %s active0 { ipv4, ipv6 }\n", TABLE);
	put_bank_change(f, 0, &empty_period, live);
	put_bank_change(f, 1, &empty_period, idle);
	return fclose(f) ? -errno : 0;
}

int main(void)
{
	static struct period periods[EPOCHS];
	struct rotator_config config = {.nflog_group = 7, .knock_nflog_group = 9};
	struct step_error err = {0};
	struct rotator *rot = NULL;
	struct schedule_mac *mac = NULL;
	char dir[] = "/tmp/bench-clients.XXXXXX", path[320];
	uint64_t hmac_ns[EPOCHS], sw[RUNS], st[RUNS], nsw[RUNS], nst[RUNS];
	size_t staged_elements = 0, nft_elements = 0;
	int r = in_private_netns();

	if (r <= 0) {
		fprintf(stderr,
			"bench_clients: run me in a fresh network namespace (make bench)\n");
		return 1;
	}
	if (!mkdtemp(dir) || schedule_mac_new(&mac) < 0)
		return 1;
	for (size_t s = 0; s < SERVICES; s++)
		snprintf(names[s], sizeof(names[s]), "svc%zu", s);
	for (size_t c = 0; c < CLIENTS; c++)
		snprintf(client_names[c], sizeof(client_names[c]), "client%zu", c);
	for (size_t s = 0; s < SERVICES; s++)
		for (size_t c = 0; c < CLIENTS; c++)
			for (size_t i = 0; i < 32; i++)
				keys[s][c][i] = (uint8_t)(s * 7 + c * 13 + i * 31);

	/* every client's door and knock port, one epoch at a time */
	for (size_t e = 0; e < EPOCHS; e++) {
		uint64_t t0 = now_ns(), epoch = FIRST_EPOCH + e;

		for (size_t s = 0; s < SERVICES; s++)
			for (size_t c = 0; c < CLIENTS; c++) {
				struct schedule_client sc = {
				    .key = keys[s][c],
				    .key_len = 32,
				    .service = names[s],
				    .client = client_names[c],
				    .host_id = "bench-host",
				    .first = (uint16_t)(FIRST_PORT + s * RANGE),
				    .last = (uint16_t)(FIRST_PORT + s * RANGE + RANGE - 1),
				};
				if (schedule_client_ports_fast(mac, &sc, &epoch, 1, NULL, NULL,
							       &door_of[e][s][c],
							       &knock_of[e][s][c]) < 0)
					return 1;
			}
		hmac_ns[e] = now_ns() - t0;
	}
	for (size_t e = 1; e + 1 < EPOCHS; e++)
		make_period(e, &periods[e]);

	/* ours: the first plan (full), then RUNS boundaries: switch, staging */
	if (rotator_new(&config, &rot) < 0)
		return 1;
	{
		struct rotator_plan plan = {.services = periods[1].svcs,
					    .n_services = SERVICES,
					    .next = periods[2].svcs,
					    .n_next = SERVICES};
		if (rotator_apply(rot, &plan, &err) < 0) {
			fprintf(stderr, "bench_clients: first apply: %s: %s\n", err.step,
				err.detail);
			return 1;
		}
	}
	for (size_t i = 0; i < RUNS; i++) {
		struct rotator_plan plan = {.services = periods[i + 2].svcs,
					    .n_services = SERVICES,
					    .next = periods[i + 3].svcs,
					    .n_next = SERVICES};
		struct rotator_stats stats;
		uint64_t t0 = now_ns();

		if (rotator_apply(rot, &plan, &err) < 0)
			return fprintf(stderr, "switch: %s: %s\n", err.step, err.detail), 1;
		sw[i] = now_ns() - t0;
		rotator_last_stats(rot, &stats);
		if (!stats.switched || stats.elements_added + stats.elements_deleted != 4) {
			fprintf(stderr, "bench_clients: the boundary was no 4-element switch\n");
			return 1;
		}
		t0 = now_ns();
		if (rotator_apply(rot, &plan, &err) < 0)
			return fprintf(stderr, "staging: %s: %s\n", err.step, err.detail), 1;
		st[i] = now_ns() - t0;
		rotator_last_stats(rot, &stats);
		staged_elements = stats.elements_added + stats.elements_deleted;
	}
	(void)rotator_remove(rot, NULL);
	rotator_free(rot);

	/* theirs: the same sets, the same changes, via nft -f */
	snprintf(path, sizeof(path), "%s/initial.nft", dir);
	if (write_initial(path, &periods[1], &periods[2]) < 0 || run_nft(path) < 0) {
		fprintf(stderr, "bench_clients: nft -f %s failed (is nft installed?)\n", path);
		return 1;
	}
	for (size_t i = 0; i < RUNS; i++) {
		unsigned live = (unsigned)(i + 1) % 2; /* bank of period i + 2 */
		char sw_path[300], st_path[300];
		FILE *f;
		int64_t t;

		snprintf(sw_path, sizeof(sw_path), "%s/switch%zu.nft", dir, i);
		snprintf(st_path, sizeof(st_path), "%s/staging%zu.nft", dir, i);
		f = fopen(sw_path, "we");
		if (!f)
			return 1;
		fprintf(f,
			"delete element inet %s active%u { ipv4, ipv6 }\n"
			"add element inet %s active%u { ipv4, ipv6 }\n",
			TABLE, !live, TABLE, live);
		fclose(f);
		f = fopen(st_path, "we");
		if (!f)
			return 1;
		/* the idle bank held period i + 1; it gets period i + 3 */
		nft_elements = put_bank_change(f, !live, &periods[i + 1], &periods[i + 3]);
		fclose(f);
		t = run_nft(sw_path);
		if (t < 0)
			return fprintf(stderr, "nft -f %s failed\n", sw_path), 1;
		nsw[i] = (uint64_t)t;
		t = run_nft(st_path);
		if (t < 0)
			return fprintf(stderr, "nft -f %s failed\n", st_path), 1;
		nst[i] = (uint64_t)t;
	}
	snprintf(path, sizeof(path), "nft delete table inet %s; rm -rf -- '%s'", TABLE, dir);
	if (system(path) != 0)
		fprintf(stderr, "bench_clients: cleaning up: %s failed\n", path);
	schedule_mac_free(mac);

	{
		uint64_t m_sw = median(sw, RUNS), m_st = median(st, RUNS);
		uint64_t m_nsw = median(nsw, RUNS), m_nst = median(nst, RUNS);
		uint64_t m_h = median(hmac_ns, EPOCHS);
		double ratio = (double)m_nst / (double)m_st;

		printf("bench_clients: %d services x %d clients (%d doors + %d knock ports per "
		       "epoch, gated), %d decoys each; medians of %d boundaries\n",
		       SERVICES, CLIENTS, SERVICES * CLIENTS, SERVICES * CLIENTS, DECOYS, RUNS);
		printf("| step | rotator (ms) | nft -f (ms) | ratio |\n");
		printf("| doors + knock ports of one epoch (%d HMAC streams) | %.1f | - | - |\n",
		       2 * SERVICES * CLIENTS, (double)m_h / 1e6);
		printf("| boundary: switch (4 elements) | %.3f | %.3f | %.1fx |\n",
		       (double)m_sw / 1e6, (double)m_nsw / 1e6, (double)m_nsw / (double)m_sw);
		printf("| boundary: staging (%zu elements; nft: %zu) | %.1f | %.1f | %.1fx |\n",
		       staged_elements, nft_elements, (double)m_st / 1e6, (double)m_nst / 1e6,
		       ratio);
		printf("targets: switch <= 1 ms: %s; staging >= 5x faster than nft -f: %s\n",
		       m_sw <= 1000000 ? "met" : "MISSED", ratio >= 5 ? "met" : "MISSED");
	}
	return 0;
}
