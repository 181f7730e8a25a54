/* SPDX-License-Identifier: MIT */
/*
 * Rotation benchmark: the rotator's transactions at each change time of N
 * services (N = 64, 1024), against `nft -f` applying the same element
 * changes to a table with the same sets, in the same run.
 * The per-epoch maps and decoy sets come in two banks (rotator.h): at a
 * change time (an epoch boundary, the end of a grace) the agent applies a
 * plan twice: the first transaction switches banks (moves ipv4, ipv6 from
 * one active set to the other: this moves the ports), the second loads the
 * period after into the now idle bank ("staging"). The nft side's scripts
 * come from a model of both banks of its own, checked against the counts
 * the rotator reports.
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"
#include "rotator.h"

#define RUNS 21
#define DECOYS 8 /* per service, at most */
#define RANGE 50 /* ports per service, disjoint ranges from 10000 */
/* period 0 = epoch FIRST_EPOCH after grace; then the boundary and the grace
 * end of RUNS epochs; and one more, the `next` of the last plan applied */
#define N_PERIODS (2 * RUNS + 2)
#define FIRST_EPOCH 29000000
#define BENCH_TABLE "mtdbench"

/* One configuration of the run (main() runs several). */
static unsigned decoys_per_service = DECOYS;

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

/* The services of n during one period (between two change times). */
struct period {
	struct rotator_service *svcs;
	uint16_t (*decoys)[DECOYS];
	char (*names)[24];
	size_t n;
};

static const uint8_t key[32] = "bench-key-bench-key-bench-key-01";

/* Period idx of n services, from the real keyed schedule (60 s epochs, 15 s
 * of grace): idx odd is the grace of epoch FIRST_EPOCH + (idx + 1) / 2 (5 s
 * in: current + previous port), idx even the rest of it (20 s in: current
 * only). On failure the caller frees what *p holds. */
static int make_period(size_t n, size_t idx, struct period *p)
{
	uint64_t epoch = FIRST_EPOCH + (idx + 1) / 2;
	unsigned at = idx % 2 ? 5 : 20;

	p->n = n;
	p->svcs = calloc(n, sizeof(*p->svcs));
	p->decoys = calloc(n, sizeof(*p->decoys));
	p->names = calloc(n, sizeof(*p->names));
	if (!p->svcs || !p->decoys || !p->names)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct rotator_service *s = &p->svcs[i];
		struct schedule_params sp = {
		    .key = key,
		    .key_len = sizeof(key),
		    .service = p->names[i],
		    .first = (uint16_t)(10000 + i * RANGE),
		    .last = (uint16_t)(10000 + i * RANGE + RANGE - 1),
		    .interval_sec = 60,
		    .grace_sec = 15,
		    .n_decoys = decoys_per_service,
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
	return 0;
}

/* What the agent applies at the start of period i: services valid now, the
 * idle bank loaded with what is valid after the next change time. */
static struct rotator_plan plan_of(const struct period *periods, size_t i)
{
	return (struct rotator_plan){.services = periods[i].svcs,
				     .n_services = periods[i].n,
				     .next = periods[i + 1].svcs,
				     .n_next = periods[i + 1].n};
}

/* --- the nft side: both banks modelled here, the changes as nft text ------------
 * Computed independently of the rotator (a diff of the elements' text), then
 * checked against the counts the rotator reports for its transactions. */

/* The per-bank sets the bench fills (all backends are IPv4: svc6, local6
 * stay empty) and, last, the shared union of both banks' backends. */
static const char *const bank_sets[2][4] = {
    {"svc4_0", "local4_0", "decoys_0", "backends4"},
    {"svc4_1", "local4_1", "decoys_1", "backends4"},
};

struct line {
	const char *set; /* one of bank_sets */
	char key[40];
	char val[40]; /* maps: "addr . port", sets: "" */
};

static int cmp_key(const void *a, const void *b)
{
	const struct line *x = a, *y = b;
	int c = strcmp(x->set, y->set);

	return c ? c : strcmp(x->key, y->key);
}

static int cmp_line(const void *a, const void *b)
{
	const struct line *x = a, *y = b;
	int c = cmp_key(x, y);

	return c ? c : strcmp(x->val, y->val);
}

/* Every element a period puts into `bank` (its maps, decoys and backends),
 * sorted and without duplicates. */
static struct line *period_lines(const struct period *p, unsigned bank, size_t *ret_n)
{
	const char *const *set = bank_sets[bank];
	size_t cap = p->n * (5 + decoys_per_service), n = 0;
	struct line *l = calloc(cap + 1, sizeof(*l));

	if (!l)
		return NULL;
	for (size_t i = 0; i < p->n; i++) {
		const struct rotator_service *s = &p->svcs[i];
		uint16_t ports[2] = {s->port, s->grace_port};
		char a[INET_ADDRSTRLEN];

		inet_ntop(AF_INET, &s->backend.in, a, sizeof(a));
		for (size_t k = 0; k < 2; k++) {
			if (!ports[k] || (k && ports[k] == s->port))
				continue;
			for (size_t local = 0; local <= s->local_access; local++) {
				l[n].set = set[local ? 1 : 0];
				snprintf(l[n].key, sizeof(l[n].key), "tcp . %u", ports[k]);
				snprintf(l[n].val, sizeof(l[n].val), "%s . %u", a, s->backend_port);
				n++;
			}
		}
		l[n].set = set[3];
		snprintf(l[n].key, sizeof(l[n].key), "tcp . %s . %u", a, s->backend_port);
		n++;
		for (size_t j = 0; j < s->n_decoys; j++) {
			l[n].set = set[2];
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

/* The element of l (sorted) with x's set and key, or NULL. */
static const struct line *find(const struct line *l, size_t n, const struct line *x)
{
	return bsearch(x, l, n, sizeof(*l), cmp_key);
}

/* `verb element` for the elements of l that are in set, if there are any. */
static void put_elements(FILE *f, const char *verb, const char *set, const struct line *l, size_t n)
{
	size_t cnt = 0;

	for (size_t i = 0; i < n; i++) {
		if (!streq(l[i].set, set))
			continue;
		if (!cnt++)
			fprintf(f, "%s element inet " BENCH_TABLE " %s { ", verb, set);
		else
			fputs(", ", f);
		fputs(l[i].key, f);
		if (streq(verb, "add") && l[i].val[0])
			fprintf(f, " : %s", l[i].val);
	}
	if (cnt)
		fputs(" }\n", f);
}

/* What the nft side's table holds: each bank's elements (sorted; both
 * include their backends, the table holds their union) and the live bank. */
struct model {
	struct line *l[2];
	size_t n[2];
	unsigned live;
};

/* The table with the rotator's sets (both banks, active0/1, backends), as
 * the rotator's first apply leaves it: period 0 live in bank 0, period 1 in
 * bank 1. Replaces a table of an earlier size. */
static int write_initial_script(const char *path, struct model *m, const struct period *p)
{
	_cleanup_fclose_ FILE *f = fopen(path, "we");

	if (!f)
		return -errno;
	for (unsigned b = 0; b < 2; b++) {
		m->l[b] = period_lines(&p[b], b, &m->n[b]);
		if (!m->l[b])
			return -ENOMEM;
	}
	m->live = 0;
	/* `table` then `delete table`: works whether it exists or not */
	fputs("table inet " BENCH_TABLE "\ndelete table inet " BENCH_TABLE "\n", f);
	fputs("table inet " BENCH_TABLE " {\n", f);
	for (unsigned b = 0; b < 2; b++)
		fprintf(
		    f,
		    " map svc4_%u { type inet_proto . inet_service : ipv4_addr . inet_service; }\n"
		    " map svc6_%u { type inet_proto . inet_service : ipv6_addr . inet_service; }\n"
		    " map local4_%u { type inet_proto . inet_service : ipv4_addr . inet_service; "
		    "}\n"
		    " map local6_%u { type inet_proto . inet_service : ipv6_addr . inet_service; "
		    "}\n"
		    " set decoys_%u { type inet_proto . inet_service; }\n",
		    b, b, b, b, b);
	fputs(" set active0 { type nf_proto; }\n"
	      " set active1 { type nf_proto; }\n"
	      " set backends4 { type inet_proto . ipv4_addr . inet_service; }\n"
	      " set backends6 { type inet_proto . ipv6_addr . inet_service; }\n"
	      "}\n"
	      "add element inet " BENCH_TABLE " active0 { ipv4, ipv6 }\n",
	      f);
	/* a backend in both banks is added twice: `add` of an existing element
	 * is no error, the set holds the union */
	for (unsigned b = 0; b < 2; b++)
		for (size_t s = 0; s < ELEMENTSOF(bank_sets[b]); s++)
			put_elements(f, "add", bank_sets[b][s], m->l[b], m->n[b]);
	return fflush(f) != 0 ? -errno : 0;
}

/* The two transactions at a change time, as the rotator sends them. The
 * switch: the idle bank becomes live. The staging: the new idle bank from
 * what it holds to period `to`, and the backends from the union of the old
 * banks to that of the new; deletions, then additions. The staging's counts
 * in ret_del/ret_add; *m becomes the new contents. */
static int write_change_scripts(char path[2][256], struct model *m, const struct period *to,
				size_t *ret_del, size_t *ret_add)
{
	_cleanup_fclose_ FILE *sw = fopen(path[0], "we"), *f = fopen(path[1], "we");
	_cleanup_free_ struct line *b = NULL, *del = NULL, *add = NULL;
	unsigned idle = m->live; /* after the switch */
	const struct line *o = m->l[idle], *live = m->l[!idle];
	size_t no = m->n[idle], nlive = m->n[!idle], nb = 0, nd = 0, na = 0;

	if (!sw || !f)
		return -errno;
	fprintf(sw,
		"delete element inet " BENCH_TABLE " active%u { ipv4, ipv6 }\n"
		"add element inet " BENCH_TABLE " active%u { ipv4, ipv6 }\n",
		idle, !idle);
	if (fflush(sw) != 0)
		return -errno;
	b = period_lines(to, idle, &nb);
	del = calloc(no + 1, sizeof(*del));
	add = calloc(nb + 1, sizeof(*add));
	if (!b || !del || !add)
		return -ENOMEM;
	/* An element only one side has goes or comes, unless the live bank
	 * has it: a backend stays in the union then (the live bank's other
	 * sets have other names, never match). One both have with another
	 * value (a map's) is replaced. */
	for (size_t i = 0; i < no; i++) {
		const struct line *x = find(b, nb, &o[i]);

		if (x ? !streq(x->val, o[i].val) : !find(live, nlive, &o[i]))
			del[nd++] = o[i];
	}
	for (size_t j = 0; j < nb; j++) {
		const struct line *x = find(o, no, &b[j]);

		if (x ? !streq(x->val, b[j].val) : !find(live, nlive, &b[j]))
			add[na++] = b[j];
	}
	for (size_t s = 0; s < ELEMENTSOF(bank_sets[idle]); s++)
		put_elements(f, "delete", bank_sets[idle][s], del, nd);
	for (size_t s = 0; s < ELEMENTSOF(bank_sets[idle]); s++)
		put_elements(f, "add", bank_sets[idle][s], add, na);
	if (fflush(f) != 0)
		return -errno;
	free(m->l[idle]);
	m->l[idle] = TAKE_PTR(b);
	m->n[idle] = nb;
	m->live = !idle;
	*ret_del = nd;
	*ret_add = na;
	return 0;
}

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

/* The four transactions of a run, in the order of the table's rows:
 * kind = (period is a grace end) * 2 + (staging). */
enum { SWITCH_BOUNDARY, STAGING_BOUNDARY, SWITCH_GRACE_END, STAGING_GRACE_END, N_KINDS };
static const char *const kind_name[N_KINDS] = {"boundary: switch", "boundary: staging",
					       "grace end: switch", "grace end: staging"};
#define KIND(period, staging) (((period) % 2 ? 0 : 2) + (staging))

struct result {
	uint64_t ours, theirs; /* medians, ns */
	size_t del, add;       /* element changes of one transaction (the last run) */
};

/* RUNS epochs of n services: at each change time (boundary, grace end) the
 * switch and the staging transactions, both sides applying the same changes:
 * first all of the rotator's, then all of nft's. */
static int bench(size_t n, const char *dir, struct result res[N_KINDS])
{
	struct rotator_config cfg = {.nflog_group = 7};
	struct step_error err = {};
	struct rotator *rot = NULL;
	struct period periods[N_PERIODS] = {};
	uint64_t ours[N_KINDS][RUNS], theirs[N_KINDS][RUNS];
	/* scripts of period i >= 1: [i][0] switch, [i][1] staging; [0][0] initial */
	char path[N_PERIODS - 1][2][256] = {};
	size_t del[N_PERIODS - 1] = {}, add[N_PERIODS - 1] = {};
	struct model model = {};
	int r = 0;

	for (size_t i = 0; r >= 0 && i < N_PERIODS; i++)
		r = make_period(n, i, &periods[i]);
	for (size_t i = 0; i < N_PERIODS - 1; i++)
		for (size_t k = 0; k < 2; k++)
			snprintf(path[i][k], sizeof(path[i][k]), "%s/%zu-%zu-%zu.nft", dir, n, i,
				 k);
	if (r >= 0)
		r = write_initial_script(path[0][0], &model, periods);
	for (size_t i = 1; r >= 0 && i < N_PERIODS - 1; i++)
		r = write_change_scripts(path[i], &model, &periods[i + 1], &del[i], &add[i]);
	free(model.l[0]);
	free(model.l[1]);
	if (r < 0) {
		fprintf(stderr, "bench: building plans and scripts: %s\n", strerror(-r));
		goto out;
	}

	/* ours: the table and both banks created by the first apply, untimed */
	r = rotator_new(&cfg, &rot);
	if (r >= 0) {
		struct rotator_plan plan = plan_of(periods, 0);

		r = rotator_apply(rot, &plan, &err);
	}
	for (size_t i = 1; r >= 0 && i < N_PERIODS - 1; i++) {
		struct rotator_plan plan = plan_of(periods, i);

		for (size_t staging = 0; staging < 2; staging++) {
			size_t k = KIND(i, staging), want_del, want_add;
			struct rotator_stats st;
			uint64_t start = now_ns();

			r = rotator_apply(rot, &plan, &err);
			ours[k][(i - 1) / 2] = now_ns() - start;
			if (r < 0)
				break;
			rotator_last_stats(rot, &st);
			/* the switch: the four elements of the active sets, whatever n */
			want_del = staging ? del[i] : 2;
			want_add = staging ? add[i] : 2;
			if (st.switched == (bool)staging || st.full ||
			    st.elements_deleted != want_del || st.elements_added != want_add) {
				fprintf(
				    stderr,
				    "bench: period %zu, %s: the rotator sent -%zu +%zu elements "
				    "(switched %d, full %d), want -%zu +%zu (switched %d)\n",
				    i, kind_name[k], st.elements_deleted, st.elements_added,
				    st.switched, st.full, want_del, want_add, !staging);
				r = -EPROTO;
				goto out;
			}
			res[k].del = st.elements_deleted;
			res[k].add = st.elements_added;
		}
	}
	if (r < 0) {
		fprintf(stderr, "bench: rotator: %s (%s: %s)\n", strerror(-r), err.step,
			err.detail);
		goto out;
	}

	/* theirs: the same sets in a plain table, the same changes via nft -f */
	if (run_nft(path[0][0]) < 0) {
		fprintf(stderr, "bench: nft -f %s failed (is nft installed?)\n", path[0][0]);
		r = -EIO;
		goto out;
	}
	for (size_t i = 1; i < N_PERIODS - 1; i++)
		for (size_t staging = 0; staging < 2; staging++) {
			int64_t t = run_nft(path[i][staging]);

			if (t < 0) {
				fprintf(stderr, "bench: nft -f %s: %s\n", path[i][staging],
					strerror((int)-t));
				r = (int)t;
				goto out;
			}
			theirs[KIND(i, staging)][(i - 1) / 2] = (uint64_t)t;
		}
	for (size_t k = 0; k < N_KINDS; k++) {
		res[k].ours = median(ours[k], RUNS);
		res[k].theirs = median(theirs[k], RUNS);
	}
out:
	if (rot && rotator_remove(rot, &err) < 0 && r >= 0) {
		fprintf(stderr, "bench: removing the table: %s\n", err.detail);
		r = -EIO;
	}
	rotator_free(rot);
	for (size_t i = 0; i < N_PERIODS; i++) {
		free(periods[i].svcs);
		free(periods[i].decoys);
		free(periods[i].names);
	}
	for (size_t i = 0; i < N_PERIODS - 1; i++)
		for (size_t k = 0; k < 2; k++)
			unlink(path[i][k]); /* [0][1] was never written */
	return r;
}

static const struct {
	const char *what;
	unsigned decoys;
} configs[] = {
    {"the agent's: ports move, 8 decoys per service", DECOYS},
    {"ports only (Decoys=0)", 0},
};

int main(void)
{
	static const size_t sizes[] = {64, 1024};
	static const double targets[] = {30, 10};
	char dir[] = "/tmp/bench-rotation-XXXXXX";
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
	printf("rotation: the transactions at a change time of N services (half with local "
	       "access), against `nft -f` applying the same element changes to a table with "
	       "the same sets\n");
	printf("the per-epoch maps and decoy sets come in two banks. boundary = the "
	       "transaction that moves the ports: a switch of banks (ipv4, ipv6 move from one "
	       "active set to the other); staging = loading the next period into the idle bank, "
	       "done right after, off the boundary. Both at the epoch boundary (new port, old "
	       "one as grace port, new decoys) and at the end of grace (the grace port goes)\n");
	printf("both sides apply the same element changes (the rotator's own counts are checked "
	       "equal); medians of %d epochs; rotator = rotator_apply() incl. plan diff and "
	       "genid round trip; nft = fork/exec `nft -f`\n",
	       RUNS);
	for (size_t c = 0; c < ELEMENTSOF(configs); c++) {
		double staging_ratio[ELEMENTSOF(sizes)];
		bool ok = true;

		decoys_per_service = configs[c].decoys;
		printf("\n%s\n\n", configs[c].what);
		printf("| services | transaction         | deleted | added | rotator (ms) | "
		       "nft -f (ms) |  ratio |\n");
		printf("|----------|---------------------|---------|-------|--------------|"
		       "-------------|--------|\n");
		for (size_t i = 0; i < ELEMENTSOF(sizes); i++) {
			struct result res[N_KINDS] = {};

			r = bench(sizes[i], dir, res);
			if (r < 0) {
				rmdir(dir);
				return 1;
			}
			for (size_t k = 0; k < N_KINDS; k++) {
				double ratio = (double)res[k].theirs / (double)res[k].ours;

				printf(
				    "| %8zu | %-19s | %7zu | %5zu | %12.3f | %11.3f | %5.1fx |\n",
				    sizes[i], kind_name[k], res[k].del, res[k].add,
				    (double)res[k].ours / 1e6, (double)res[k].theirs / 1e6, ratio);
				if (k == SWITCH_BOUNDARY && ratio < targets[i])
					ok = false;
				if (k == STAGING_BOUNDARY)
					staging_ratio[i] = ratio;
			}
		}
		printf(
		    "\ntargets (the transaction that moves the ports at a boundary): >= 30x for 64 "
		    "services, >= 10x for 1024: %s\n",
		    ok ? "met" : "NOT met");
		printf("staging after a boundary (off the boundary, no target): %.1fx for 64 "
		       "services, %.1fx for 1024\n",
		       staging_ratio[0], staging_ratio[1]);
	}
	rmdir(dir);
	return 0;
}
