/* SPDX-License-Identifier: MIT */
/*
 * Rotation benchmark: the time of the rotator's one transaction that moves
 * the public ports of N services (N = 64, 1024) at an epoch boundary, and of
 * the apply at the end of the grace period, against `nft -f` applying the
 * same element changes (element statements with the same timeouts, computed
 * here from the plans by a model of expiry of its own, checked equal to the
 * rotator's counts) to a table with the same sets, in the same run.
 * Elements expire (rotator_service.*_ttl_ms), so both sides run on a real,
 * compressed clock: epochs of EPOCH_MS with GRACE_MS of grace.
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
#define DECOYS 8 /* per service, at most */
#define RANGE 50 /* ports per service, disjoint ranges from 10000 */

/* One configuration of the run (main() runs several). */
static unsigned decoys_per_service = DECOYS;
static bool expiry; /* elements carry timeouts (rotator_service.*_ttl_ms) */
#define BENCH_TABLE "mtdbench"
#define EPOCH_MS 400 /* the compressed epoch both sides are paced on */
#define GRACE_MS 100
#define MARGIN_MS ROTATOR_EXPIRY_MARGIN_MS
#define LINGER_MS (2 * MARGIN_MS)
#define TOLERANCE_MS (MARGIN_MS / 2)

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void sleep_until_ns(uint64_t t)
{
	struct timespec ts = { .tv_sec = (time_t)(t / 1000000000ULL),
			       .tv_nsec = (long)(t % 1000000000ULL) };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

/* Step i's time on the compressed clock: 0 = epoch 0 after grace, then
 * boundary and grace end of epochs 1..RUNS. */
static uint64_t step_ms(size_t i)
{
	return i == 0 ? GRACE_MS : (i + 1) / 2 * EPOCH_MS + (i % 2 ? 0 : GRACE_MS);
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
 * schedule: 5 s is inside grace (current + previous port), 20 s after it.
 * The ports come from a 60 s schedule; the lives (TTLs) from the compressed
 * clock: at a boundary, or at the end of grace. */
static int make_plan(size_t n, uint64_t epoch, unsigned at, struct epoch_plan *p)
{
	bool boundary = at < 15;
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
			.interval_sec = 60, .grace_sec = 15, .n_decoys = decoys_per_service,
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
		if (expiry) {
			s->port_ttl_ms = boundary ? EPOCH_MS + GRACE_MS : EPOCH_MS;
			s->grace_ttl_ms = s->grace_port ? GRACE_MS : 0;
			s->decoys_ttl_ms = boundary ? EPOCH_MS : EPOCH_MS - GRACE_MS;
		}
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
	uint32_t ttl; /* ms, margin included */
	uint64_t expires; /* on the compressed clock */
};

static int cmp_key(const struct line *x, const struct line *y)
{
	int c = strcmp(x->set, y->set);

	return c ? c : strcmp(x->key, y->key);
}

static int cmp_line(const void *a, const void *b)
{
	const struct line *x = a, *y = b;
	int c = cmp_key(x, y);

	return c ? c : strcmp(x->val, y->val);
}

static uint32_t with_margin(uint32_t ttl)
{
	return ttl ? ttl + MARGIN_MS : 0;
}

/* Every element of the plan (IPv4 backends: svc4, local4, backends4, decoys),
 * sorted and without duplicates. */
static struct line *plan_lines(const struct rotator_plan *plan, size_t *ret_n)
{
	size_t cap = plan->n_services * (5 + decoys_per_service), n = 0;
	struct line *l = calloc(cap + 1, sizeof(*l));

	if (!l)
		return NULL;
	for (size_t i = 0; i < plan->n_services; i++) {
		const struct rotator_service *s = &plan->services[i];
		uint16_t ports[2] = { s->port, s->grace_port };
		uint32_t ttls[2] = { with_margin(s->port_ttl_ms), with_margin(s->grace_ttl_ms) };
		char a[INET_ADDRSTRLEN];

		inet_ntop(AF_INET, &s->backend.in, a, sizeof(a));
		for (size_t p = 0; p < 2; p++) {
			if (!ports[p] || (p && ports[p] == s->port))
				continue;
			for (size_t local = 0; local <= s->local_access; local++) {
				l[n].set = local ? "local4" : "svc4";
				snprintf(l[n].key, sizeof(l[n].key), "tcp . %u", ports[p]);
				snprintf(l[n].val, sizeof(l[n].val), "%s . %u", a, s->backend_port);
				l[n].ttl = ttls[p];
				n++;
			}
		}
		l[n].set = "backends4";
		snprintf(l[n].key, sizeof(l[n].key), "tcp . %s . %u", a, s->backend_port);
		n++;
		for (size_t j = 0; j < s->n_decoys; j++) {
			l[n].set = "decoys";
			snprintf(l[n].key, sizeof(l[n].key), "tcp . %u", s->decoys[j]);
			l[n].ttl = with_margin(s->decoys_ttl_ms);
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

	for (size_t i = 0; i < n; i++) {
		if (!streq(l[i].set, set))
			continue;
		fprintf(f, "%s%s", cnt++ ? ", " : "", l[i].key);
		if (with_val && l[i].ttl)
			fprintf(f, " timeout %ums", l[i].ttl);
		if (with_val && l[i].val[0])
			fprintf(f, " : %s", l[i].val);
	}
}

/* What the table holds on the nft side: its elements (sorted) with expiry. */
struct model {
	struct line *l;
	size_t n;
};

/* The nft script taking the table (as *m holds it) to plan `to` at time now
 * on the compressed clock, by the rules of expiry: an element the plan keeps
 * is re-added only when its expiry moves by more than TOLERANCE_MS; one the
 * plan drops is left to expire if it does within LINGER_MS, else deleted; an
 * expired one is gone. Deletions, then additions, like the rotator's
 * transaction. Counts in ret_del/ret_add; *m becomes the new contents. */
static int write_delta_script(const char *path, struct model *m, const struct rotator_plan *to,
			      uint64_t now, size_t *ret_del, size_t *ret_add)
{
	static const char *const order[] = { "svc4", "local4", "backends4", "decoys" };
	_cleanup_fclose_ FILE *f = fopen(path, "we");
	_cleanup_free_ struct line *b = NULL, *del = NULL, *add = NULL, *next = NULL;
	size_t nb = 0, nd = 0, nadd = 0, nn = 0, i = 0, j = 0;

	if (!f)
		return -errno;
	b = plan_lines(to, &nb);
	del = calloc(m->n + 1, sizeof(*del));
	add = calloc(nb + 1, sizeof(*add));
	next = calloc(m->n + nb + 1, sizeof(*next));
	if (!b || !del || !add || !next)
		return -ENOMEM;
	while (i < m->n || j < nb) {
		int c = i == m->n ? 1 : j == nb ? -1 : cmp_key(&m->l[i], &b[j]);
		struct line *o = i < m->n ? &m->l[i] : NULL;

		if (o && c <= 0 && o->ttl && o->expires <= now) { /* expired: gone */
			i++;
			continue;
		}
		if (c < 0) { /* dropped by the plan */
			if (!o->ttl || o->expires > now + LINGER_MS)
				del[nd++] = *o;
			else
				next[nn++] = *o; /* left to expire */
			i++;
			continue;
		}
		b[j].expires = b[j].ttl ? now + b[j].ttl : 0;
		if (c == 0 && streq(o->val, b[j].val) &&
		    (!b[j].ttl || (o->expires + TOLERANCE_MS >= b[j].expires &&
				   o->expires <= b[j].expires + TOLERANCE_MS)))
			b[j].expires = o->expires; /* kept, not touched */
		else {
			if (c == 0 && !streq(o->val, b[j].val))
				del[nd++] = *o;
			add[nadd++] = b[j];
		}
		next[nn++] = b[j];
		i += c == 0;
		j++;
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
	free(m->l);
	m->l = TAKE_PTR(next);
	m->n = nn;
	*ret_del = nd;
	*ret_add = nadd;
	return 0;
}

static const char bench_table[] =
	"table inet " BENCH_TABLE " {\n"
	" map svc4 { type inet_proto . inet_service : ipv4_addr . inet_service; flags timeout; }\n"
	" map svc6 { type inet_proto . inet_service : ipv6_addr . inet_service; flags timeout; }\n"
	" map local4 { type inet_proto . inet_service : ipv4_addr . inet_service; flags timeout; }\n"
	" map local6 { type inet_proto . inet_service : ipv6_addr . inet_service; flags timeout; }\n"
	" set backends4 { type inet_proto . ipv4_addr . inet_service; }\n"
	" set backends6 { type inet_proto . ipv6_addr . inet_service; }\n"
	" set decoys { type inet_proto . inet_service; flags timeout; }\n"
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
	uint64_t ours, theirs; /* medians, ns; theirs 0: nothing to apply */
	size_t del, add;       /* element changes of one transaction (the last run) */
	size_t expiring;       /* left to expire by the rotator (the last run) */
};

/* RUNS epochs of n services on the compressed clock: at each, the boundary
 * transaction (new current port added, previous one kept as grace port, new
 * decoys added; the old ones expire) and the apply at the end of grace (the
 * grace port expires by itself), both sides applying the same changes. */
static int bench(size_t n, const char *dir, struct result res[N_KINDS])
{
	struct rotator_config cfg = { .nflog_group = 7, .block_timeout_sec = 600 };
	struct rotator_error err = {};
	struct rotator *rot = NULL;
	/* plans[0] = epoch 0 after grace; then boundary and grace end of 1..RUNS */
	struct epoch_plan plans[2 * RUNS + 1] = {};
	uint64_t ours[N_KINDS][RUNS], theirs[N_KINDS][RUNS], t0;
	char path[2 * RUNS + 1][256], table_path[256];
	size_t del[2 * RUNS + 1] = {}, add[2 * RUNS + 1] = {};
	struct model model = {};
	int r;

	r = make_plan(n, 29000000, 20, &plans[0]);
	for (size_t e = 1; r >= 0 && e <= RUNS; e++) {
		r = make_plan(n, 29000000 + e, 5, &plans[2 * e - 1]);
		if (r >= 0)
			r = make_plan(n, 29000000 + e, 20, &plans[2 * e]);
	}
	for (size_t i = 0; r >= 0 && i <= 2 * RUNS; i++) {
		snprintf(path[i], sizeof(path[i]), "%s/step-%zu-%zu.nft", dir, n, i);
		r = write_delta_script(path[i], &model, &plans[i].plan, step_ms(i), &del[i],
				       &add[i]);
	}
	free(model.l);
	if (r < 0) {
		fprintf(stderr, "bench: building plans: %s\n", strerror(-r));
		goto out;
	}

	/* ours: the table and its elements created by the first apply, untimed */
	r = rotator_new(&cfg, &rot);
	t0 = now_ns() + 50000000ULL;
	for (size_t i = 0; r >= 0 && i <= 2 * RUNS; i++) {
		struct rotator_stats st;
		uint64_t start;

		sleep_until_ns(t0 + step_ms(i) * 1000000ULL);
		start = now_ns();
		r = rotator_apply(rot, &plans[i].plan, &err);
		if (i)
			ours[(i - 1) % 2][(i - 1) / 2] = now_ns() - start;
		if (r < 0)
			break;
		rotator_last_stats(rot, &st);
		if (i && (st.elements_deleted != del[i] || st.elements_added != add[i] || st.full)) {
			fprintf(stderr,
				"bench: step %zu: rotator sent -%zu +%zu elements%s, nft script "
				"-%zu +%zu: not the same change\n",
				i, st.elements_deleted, st.elements_added, st.full ? " (full)" : "",
				del[i], add[i]);
			r = -EPROTO;
			goto out;
		}
		if (i >= 2 * RUNS - 1)
			res[(i - 1) % 2].expiring = st.elements_expiring;
	}
	if (r < 0) {
		fprintf(stderr, "bench: rotator_apply: %s (%s: %s)\n", strerror(-r), err.object,
			err.message);
		goto out;
	}

	/* theirs: the same sets in a plain table, the same changes via nft -f,
	 * on the same clock */
	snprintf(table_path, sizeof(table_path), "%s/table.nft", dir);
	{
		_cleanup_fclose_ FILE *f = fopen(table_path, "we");

		if (!f || fputs(bench_table, f) < 0 || fflush(f) != 0) {
			r = -EIO;
			goto out;
		}
	}
	if (run_nft(table_path) < 0) {
		fprintf(stderr, "bench: nft -f failed (is nft installed?)\n");
		r = -EIO;
		goto out;
	}
	t0 = now_ns() + 50000000ULL;
	for (size_t i = 0; i <= 2 * RUNS; i++) {
		int64_t t = 0;

		sleep_until_ns(t0 + step_ms(i) * 1000000ULL);
		if (del[i] + add[i] || i == 0)
			t = run_nft(path[i]);
		if (t < 0) {
			fprintf(stderr, "bench: nft -f %s: %s\n", path[i], strerror((int)-t));
			r = (int)t;
			goto out;
		}
		if (i)
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

static const struct {
	const char *what;
	unsigned decoys;
	bool expiry;
	bool agent; /* the configuration mtd-agent uses */
} configs[] = {
	{"the agent's transaction: ports move, 8 decoys per service replaced", 8, false, true},
	{"ports only (Decoys=0): the public ports move, nothing else", 0, false, false},
	{"optional mode: elements expire by timeout (8 decoys), nothing deleted", 8, true, false},
};

int main(void)
{
	static const size_t sizes[] = { 64, 1024 };
	static const double targets[] = { 30, 10 };
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
	printf("rotation: one transaction that moves the public ports of N services (half with "
	       "local access), against `nft -f` applying the same element changes\n");
	printf("boundary = the new current port added (the previous one stays as grace port) and "
	       "the epoch's decoys replaced; grace end = the grace port goes\n");
	printf("both sides apply the same element changes (the rotator's own counts are checked "
	       "equal); epochs of %d ms with %d ms of grace on a real clock; medians of %d "
	       "epochs; rotator = rotator_apply() incl. plan diff and genid round trip; nft = "
	       "fork/exec `nft -f` (nothing when nothing changes)\n",
	       EPOCH_MS, GRACE_MS, RUNS);
	for (size_t c = 0; c < ELEMENTSOF(configs); c++) {
		bool ok = true;

		decoys_per_service = configs[c].decoys;
		expiry = configs[c].expiry;
		printf("\n%s\n\n", configs[c].what);
		printf("| services | transaction | deleted | added | expiring | rotator (ms) | "
		       "nft -f (ms) |  ratio |\n");
		printf("|----------|-------------|---------|-------|----------|--------------|"
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

				if (!res[k].theirs)
					printf("| %8zu | %-11s | %7zu | %5zu | %8zu | %12.3f | %11s | "
					       "%6s |\n",
					       sizes[i], kind_name[k], res[k].del, res[k].add,
					       res[k].expiring, (double)res[k].ours / 1e6, "(nothing)",
					       "-");
				else
					printf("| %8zu | %-11s | %7zu | %5zu | %8zu | %12.3f | %11.3f "
					       "| %5.1fx |\n",
					       sizes[i], kind_name[k], res[k].del, res[k].add,
					       res[k].expiring, (double)res[k].ours / 1e6,
					       (double)res[k].theirs / 1e6, ratio);
				if (k == BOUNDARY && (!res[k].theirs || ratio < targets[i]))
					ok = false;
			}
		}
		printf("\ntargets (boundary transaction): >= 30x for 64 services, >= 10x for 1024: "
		       "%s\n",
		       ok ? "met" : "NOT met");
	}
	rmdir(dir);
	return 0;
}
