/* SPDX-License-Identifier: MIT */
/*
 * Rotation benchmark: the time of the rotator's one transaction that moves
 * the public ports of N services (N = 64, 1024) at an epoch boundary, and of
 * the one that ends the grace period, against `nft -f` applying the same
 * element changes (delete/add element statements computed here from the two
 * plans, checked equal to the rotator's counts) to a table with the same
 * sets, in the same run.
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

/* The plan for n services at `at` seconds into `epoch`, from the real keyed
 * schedule: 5 s is inside grace (current + previous port), 20 s after it. */
static int make_plan(size_t n, uint64_t epoch, unsigned at, struct epoch_plan *p)
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
		r = schedule_compute(&sp, (epoch * 60 + at) * 1000000ULL, &res);
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

/* --- the nft side: the element changes between two plans, as nft text ----------
 * Computed here independently of the rotator (a diff of the elements' text),
 * then checked against the counts the rotator reports for its transaction. */

struct line {
	const char *set;
	char key[40];
	char val[40]; /* maps: "addr . port", sets: "" */
};

static int cmp_line(const void *a, const void *b)
{
	const struct line *x = a, *y = b;
	int c = strcmp(x->set, y->set);

	if (!c)
		c = strcmp(x->key, y->key);
	return c ? c : strcmp(x->val, y->val);
}

/* Every element of the plan (IPv4 backends: svc4, local4, backends4, decoys),
 * sorted and without duplicates. */
static struct line *plan_lines(const struct rotator_plan *plan, size_t *ret_n)
{
	size_t cap = plan->n_services * (5 + DECOYS), n = 0;
	struct line *l = calloc(cap + 1, sizeof(*l));

	if (!l)
		return NULL;
	for (size_t i = 0; i < plan->n_services; i++) {
		const struct rotator_service *s = &plan->services[i];
		uint16_t ports[2] = { s->port, s->grace_port };
		char a[INET_ADDRSTRLEN];

		inet_ntop(AF_INET, &s->backend.in, a, sizeof(a));
		for (size_t p = 0; p < 2; p++) {
			if (!ports[p] || (p && ports[p] == s->port))
				continue;
			for (size_t local = 0; local <= s->local_access; local++) {
				l[n].set = local ? "local4" : "svc4";
				snprintf(l[n].key, sizeof(l[n].key), "tcp . %u", ports[p]);
				snprintf(l[n].val, sizeof(l[n].val), "%s . %u", a, s->backend_port);
				n++;
			}
		}
		l[n].set = "backends4";
		snprintf(l[n].key, sizeof(l[n].key), "tcp . %s . %u", a, s->backend_port);
		n++;
		for (size_t j = 0; j < s->n_decoys; j++) {
			l[n].set = "decoys";
			snprintf(l[n].key, sizeof(l[n].key), "tcp . %u", s->decoys[j]);
			n++;
		}
	}
	qsort(l, n, sizeof(*l), cmp_line);
	*ret_n = 0;
	for (size_t i = 0; i < n; i++)
		if (!*ret_n || cmp_line(&l[*ret_n - 1], &l[i]))
			l[(*ret_n)++] = l[i];
	return l;
}

/* The elements of one set, as nft writes them in `{ ... }`. */
static void put_elements(FILE *f, const char *set, const struct line *l, size_t n, bool with_val)
{
	size_t cnt = 0;

	for (size_t i = 0; i < n; i++)
		if (streq(l[i].set, set))
			fprintf(f, "%s%s%s%s", cnt++ ? ", " : "", l[i].key,
				with_val && l[i].val[0] ? " : " : "", with_val ? l[i].val : "");
}

/* The nft script taking the table from plan `from` to plan `to`: deletions,
 * then additions, like the rotator's transaction. Counts in ret_del/ret_add. */
static int write_delta_script(const char *path, const struct rotator_plan *from,
			      const struct rotator_plan *to, size_t *ret_del, size_t *ret_add)
{
	static const char *const order[] = { "svc4", "local4", "backends4", "decoys" };
	_cleanup_fclose_ FILE *f = fopen(path, "we");
	_cleanup_free_ struct line *a = NULL, *b = NULL, *del = NULL, *add = NULL;
	size_t na = 0, nb = 0, nd = 0, nadd = 0, i = 0, j = 0;

	if (!f)
		return -errno;
	a = plan_lines(from, &na);
	b = plan_lines(to, &nb);
	del = calloc(na + 1, sizeof(*del));
	add = calloc(nb + 1, sizeof(*add));
	if (!a || !b || !del || !add)
		return -ENOMEM;
	/* an element whose key stays but whose value changes is both deleted
	 * and added, as in the rotator's transaction */
	while (i < na || j < nb) {
		int c = i == na ? 1 : j == nb ? -1 : cmp_line(&a[i], &b[j]);

		if (c == 0)
			i++, j++;
		else if (c < 0)
			del[nd++] = a[i++];
		else
			add[nadd++] = b[j++];
	}
	for (size_t pass = 0; pass < 2; pass++) {
		const struct line *l = pass ? add : del;
		size_t n = pass ? nadd : nd;

		for (size_t o = 0; o < ELEMENTSOF(order); o++) {
			bool any = false;

			for (size_t k = 0; k < n && !any; k++)
				any = streq(l[k].set, order[o]);
			if (!any)
				continue;
			fprintf(f, "%s element inet " BENCH_TABLE " %s { ",
				pass ? "add" : "delete", order[o]);
			put_elements(f, order[o], l, n, pass == 1);
			fprintf(f, " }\n");
		}
	}
	if (fflush(f) != 0)
		return -errno;
	*ret_del = nd;
	*ret_add = nadd;
	return 0;
}

/* The whole plan as an nft script (the initial fill). */
static int write_full_script(const char *path, const struct rotator_plan *plan)
{
	struct rotator_plan none = { 0 };
	size_t d, a;

	return write_delta_script(path, &none, plan, &d, &a);
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

enum { BOUNDARY, GRACE_END, N_KINDS };
static const char *const kind_name[N_KINDS] = { "boundary", "grace end" };

struct result {
	uint64_t ours, theirs; /* medians, ns */
	size_t del, add;       /* element changes of one transaction (the last run) */
};

/* RUNS epochs of n services: at each, the boundary transaction (new current
 * port, previous one kept as grace port, decoys replaced) and the grace-end
 * transaction (grace port removed), both sides applying the same changes. */
static int bench(size_t n, const char *dir, struct result res[N_KINDS])
{
	struct rotator_config cfg = { .nflog_group = 7, .block_timeout_sec = 600 };
	struct rotator_error err = {};
	struct rotator *rot = NULL;
	/* plans[0] = epoch 0 after grace; then boundary and grace end of 1..RUNS */
	struct epoch_plan plans[2 * RUNS + 1] = {};
	uint64_t ours[N_KINDS][RUNS], theirs[N_KINDS][RUNS];
	char path[2 * RUNS + 1][256], table_path[256];
	size_t del[2 * RUNS + 1] = {}, add[2 * RUNS + 1] = {};
	int r;

	r = make_plan(n, 29000000, 20, &plans[0]);
	for (size_t e = 1; r >= 0 && e <= RUNS; e++) {
		r = make_plan(n, 29000000 + e, 5, &plans[2 * e - 1]);
		if (r >= 0)
			r = make_plan(n, 29000000 + e, 20, &plans[2 * e]);
	}
	for (size_t i = 0; r >= 0 && i <= 2 * RUNS; i++) {
		snprintf(path[i], sizeof(path[i]), "%s/step-%zu-%zu.nft", dir, n, i);
		r = i ? write_delta_script(path[i], &plans[i - 1].plan, &plans[i].plan, &del[i],
					   &add[i]) :
			write_full_script(path[i], &plans[0].plan);
	}
	if (r < 0) {
		fprintf(stderr, "bench: building plans: %s\n", strerror(-r));
		goto out;
	}

	/* ours: the table and its elements created by the first apply, untimed */
	r = rotator_new(&cfg, &rot);
	if (r >= 0)
		r = rotator_apply(rot, &plans[0].plan, &err);
	for (size_t i = 1; r >= 0 && i <= 2 * RUNS; i++) {
		struct rotator_stats st;
		uint64_t t0 = now_ns();

		r = rotator_apply(rot, &plans[i].plan, &err);
		ours[(i - 1) % 2][(i - 1) / 2] = now_ns() - t0;
		if (r < 0)
			break;
		rotator_last_stats(rot, &st);
		if (st.elements_deleted != del[i] || st.elements_added != add[i] || st.full) {
			fprintf(stderr,
				"bench: step %zu: rotator sent -%zu +%zu elements%s, nft script "
				"-%zu +%zu: not the same change\n",
				i, st.elements_deleted, st.elements_added, st.full ? " (full)" : "",
				del[i], add[i]);
			r = -EPROTO;
			goto out;
		}
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
	for (size_t i = 1; i <= 2 * RUNS; i++) {
		int64_t t = run_nft(path[i]);

		if (t < 0) {
			fprintf(stderr, "bench: nft -f %s: %s\n", path[i], strerror((int)-t));
			r = (int)t;
			goto out;
		}
		theirs[(i - 1) % 2][(i - 1) / 2] = (uint64_t)t;
	}
	for (size_t k = 0; k < N_KINDS; k++) {
		res[k].ours = median(ours[k], RUNS);
		res[k].theirs = median(theirs[k], RUNS);
		res[k].del = del[2 * RUNS - 1 + k];
		res[k].add = add[2 * RUNS - 1 + k];
	}
out:
	rotator_free(rot);
	for (size_t i = 0; i <= 2 * RUNS; i++) {
		free_plan(&plans[i]);
		unlink(path[i]);
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
	printf("rotation: the transaction that moves the public ports of N services (each with "
	       "%d decoys, half with local access)\n", DECOYS);
	printf("boundary = new current port added, previous one kept as grace port, decoys "
	       "replaced; grace end = grace port removed\n");
	printf("both sides apply the same element changes (deleted/added counts; the rotator's "
	       "own counts are checked equal)\n");
	printf("medians of %d epochs; rotator = rotator_apply() incl. plan diff and genid round "
	       "trip; nft = fork/exec `nft -f` of a script with the same delete/add element "
	       "statements\n\n", RUNS);
	printf("| services | transaction | deleted | added | rotator (ms) | nft -f (ms) |  ratio |\n");
	printf("|----------|-------------|---------|-------|--------------|-------------|--------|\n");
	for (size_t i = 0; i < ELEMENTSOF(sizes); i++) {
		struct result res[N_KINDS] = {};

		r = bench(sizes[i], dir, res);
		if (r < 0) {
			rmdir(dir);
			return 1;
		}
		for (size_t k = 0; k < N_KINDS; k++) {
			double ratio = (double)res[k].theirs / (double)res[k].ours;

			printf("| %8zu | %-11s | %7zu | %5zu | %12.3f | %11.3f | %5.1fx |\n",
			       sizes[i], kind_name[k], res[k].del, res[k].add,
			       (double)res[k].ours / 1e6, (double)res[k].theirs / 1e6, ratio);
			if (k == BOUNDARY && ratio < targets[i])
				ok = false;
		}
	}
	rmdir(dir);
	printf("\ntargets (boundary transaction): >= 30x for 64 services, >= 10x for 1024: %s\n", ok ? "met" : "NOT met");
	return 0;
}
