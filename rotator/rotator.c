/* SPDX-License-Identifier: MIT */
/* The rotator's public API (rotator.h): plan validation, adoption, apply. */
#include <errno.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>

#include "rotator_internal.h"
#include "macro.h"
#include "rotator.h"

#define MAX_RESTARTS 5

/* A plan's services or instances as bytes: every field that decides an
 * element, in a fixed order, so two equal codes mean equal elements. */
struct plan_code {
	uint8_t *bytes;
	size_t n, cap;
};

struct rotator {
	struct nft_sock *sock;
	struct rotator_config config;
	bool try_persist;
	unsigned flags;
	/* The elements the kernel has: what the last committed transaction left.
	 * Unknown (cur_valid false) after a transaction with no clear verdict or
	 * one the kernel refused because an element was (not) there: the next
	 * apply then flushes and re-adds everything. */
	struct rs_state cur;
	bool cur_valid;
	struct rs_state next, empty; /* the plan being applied; nothing */
	struct rs_state switched;    /* the active sets after a switch of banks */
	struct rs_delta delta;
	struct rotator_stats stats;
	unsigned live_bank; /* 0 or 1 (docs/nftables.md, "Two banks") */
	/* What the banks and the instance sets hold, as plan_code() writes
	 * it: a plan whose services are what the idle bank holds is a switch
	 * of banks, found without building its element state. Valid with
	 * cur_valid and codes_valid. */
	struct plan_code code_live, code_idle, code_instances, code_scratch;
	bool codes_valid;
	/* Sources the table being adopted held blocked: the adopting
	 * transaction re-creates the table and adds them back. */
	struct rotator_blocked *carried;
	size_t n_carried;
	/* rotator_block_ranges(): the ranges in force and their segments */
	struct rotator_range_state ranges;
};

int rotator_new(const struct rotator_config *config, struct rotator **ret)
{
	struct rotator *r;
	int k;

	if (!config || !ret ||
	    (config->instance_envelope && config->egress_nflog_group == config->nflog_group) ||
	    (config->knock_nflog_group &&
	     (config->knock_nflog_group == config->nflog_group ||
	      (config->instance_envelope &&
	       config->knock_nflog_group == config->egress_nflog_group))))
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	k = nft_sock_open(&r->sock);
	if (k < 0) {
		free(r);
		return k;
	}
	r->config = *config;
	r->try_persist = true;
	r->cur_valid = true;
	*ret = r;
	return 0;
}

void rotator_free(struct rotator *r)
{
	if (!r)
		return;
	nft_sock_close(r->sock); /* without persist, the kernel drops the table now */
	delta_state_free(&r->cur);
	delta_state_free(&r->next);
	delta_state_free(&r->switched);
	delta_free(&r->delta);
	free(r->code_live.bytes);
	free(r->code_idle.bytes);
	free(r->code_instances.bytes);
	free(r->code_scratch.bytes);
	free(r->carried);
	rotator_ranges_state_free(&r->ranges);
	free(r);
}

unsigned rotator_flags(const struct rotator *r)
{
	return r->flags;
}

static bool addr_valid(const struct rotator_addr *a)
{
	return a->family == AF_INET || a->family == AF_INET6;
}

#define BIT(set, proto, port)                                                                      \
	((set)[((proto) == IPPROTO_UDP) * 1024 + (port) / 64] & (1ULL << ((port) % 64)))
#define SETBIT(set, proto, port)                                                                   \
	((set)[((proto) == IPPROTO_UDP) * 1024 + (port) / 64] |= (1ULL << ((port) % 64)))

static int service_error(struct step_error *err, int e, const struct rotator_service *s,
			 const char *fmt, ...) _printf_(4, 5);
static int service_error(struct step_error *err, int e, const struct rotator_service *s,
			 const char *fmt, ...)
{
	char object[ROTATOR_MAX_NAME + 16], message[128];
	va_list ap;

	snprintf(object, sizeof(object), "service %.*s", ROTATOR_MAX_NAME,
		 s->name ? s->name : "(null)");
	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	return step_error_set(err, object, e, "%s", message);
}

static int instance_error(struct step_error *err, int e, const struct rotator_instance *in,
			  const char *message)
{
	char object[ROTATOR_MAX_NAME + 16];

	snprintf(object, sizeof(object), "instance %.*s", ROTATOR_MAX_NAME,
		 in->name ? in->name : "(null)");
	return step_error_set(err, object, e, "%s", message);
}

static int instances_check(const struct rotator_plan *plan, bool envelope, struct step_error *err)
{
	if (plan->n_instances && !plan->instances)
		return step_error_set(err, "plan", -EINVAL, "missing instances");
	if (plan->n_instances && !envelope)
		return step_error_set(err, "plan", -EINVAL,
				      "instances need rotator_config.instance_envelope");
	if (plan->n_instances > UINT32_MAX / 4 - plan->n_services)
		return step_error_set(err, "plan", -E2BIG, "too many instances");
	for (size_t i = 0; i < plan->n_instances; i++) {
		const struct rotator_instance *in = &plan->instances[i];

		if (!in->name || !*in->name ||
		    strnlen(in->name, ROTATOR_MAX_NAME) >= ROTATOR_MAX_NAME)
			return instance_error(err, -EINVAL, in, "bad name");
		for (size_t j = 0; j < i; j++)
			if (strcmp(plan->instances[j].name, in->name) == 0)
				return instance_error(err, -EEXIST, in, "name used twice");
		if (!in->n_addresses || in->n_addresses > 2 || !in->addresses)
			return instance_error(err, -EINVAL, in, "needs one or two addresses");
		for (size_t a = 0; a < in->n_addresses; a++)
			if (!addr_valid(&in->addresses[a]))
				return instance_error(err, -EAFNOSUPPORT, in, "bad address family");
		if (in->port && in->proto != IPPROTO_TCP && in->proto != IPPROTO_UDP)
			return instance_error(err, -EPROTONOSUPPORT, in,
					      "protocol must be tcp or udp");
		if (in->n_egress > ROTATOR_MAX_EGRESS || (in->n_egress && !in->egress))
			return instance_error(err, -EINVAL, in, "too many egress rules");
		for (size_t e = 0; e < in->n_egress; e++) {
			const struct rotator_egress *g = &in->egress[e];

			if (g->proto != IPPROTO_TCP && g->proto != IPPROTO_UDP)
				return instance_error(err, -EPROTONOSUPPORT, in,
						      "egress protocol must be tcp or udp");
			if (!g->port_first || g->port_first > g->port_last)
				return instance_error(err, -EINVAL, in, "bad egress port range");
			if (g->has_destination &&
			    (!addr_valid(&g->destination) ||
			     g->prefix_len > (g->destination.family == AF_INET ? 32u : 128u)))
				return instance_error(err, -EINVAL, in, "bad egress destination");
		}
	}
	return 0;
}

/* The services of one bank: each valid, decoys not on a public port. */
static int services_check(const struct rotator_service *svcs, size_t n, uint16_t hp,
			  struct step_error *err)
{
	_cleanup_free_ uint64_t *public = NULL; /* tcp then udp, one bit per port */

	if (n && !svcs)
		return step_error_set(err, "plan", -EINVAL, "missing services");
	if (n > UINT32_MAX / 8)
		return step_error_set(err, "plan", -E2BIG, "too many services");
	public = calloc(2 * 1024, sizeof(uint64_t));
	if (!public)
		return step_error_set(err, "plan", -ENOMEM, "%s", "");

	for (size_t i = 0; i < n; i++) {
		const struct rotator_service *s = &svcs[i];

		if (!s->name || !*s->name || strnlen(s->name, ROTATOR_MAX_NAME) >= ROTATOR_MAX_NAME)
			return service_error(err, -EINVAL, s, "bad name");
		if (s->proto != IPPROTO_TCP && s->proto != IPPROTO_UDP)
			return service_error(err, -EPROTONOSUPPORT, s,
					     "protocol must be tcp or udp");
		if (s->port == 0 || s->backend_port == 0 || !addr_valid(&s->backend))
			return service_error(err, -EINVAL, s,
					     "needs a public port and a backend address and port");
		if (hp && s->proto == IPPROTO_TCP && s->backend_port == hp)
			return service_error(err, -EADDRINUSE, s,
					     "backend port %u is the honeypot port", hp);
		if (s->n_decoys > ROTATOR_MAX_DECOYS || (s->n_decoys && !s->decoys))
			return service_error(err, -EINVAL, s, "too many decoys");
		if (s->n_client_ports > ROTATOR_MAX_CLIENT_PORTS ||
		    (s->n_client_ports && !s->client_ports) ||
		    s->n_knock_ports > ROTATOR_MAX_CLIENT_PORTS ||
		    (s->n_knock_ports && !s->knock_ports))
			return service_error(err, -EINVAL, s, "too many client or knock ports");
		SETBIT(public, s->proto, s->port);
		if (s->grace_port)
			SETBIT(public, s->proto, s->grace_port);
		for (size_t j = 0; j < s->n_client_ports; j++) {
			if (!s->client_ports[j])
				return service_error(err, -EINVAL, s, "client port 0");
			SETBIT(public, s->proto, s->client_ports[j]);
		}
		for (size_t j = 0; j < s->n_knock_ports; j++)
			if (!s->knock_ports[j])
				return service_error(err, -EINVAL, s, "knock port 0");
	}
	for (size_t i = 0; i < n; i++) {
		const struct rotator_service *s = &svcs[i];

		for (size_t j = 0; j < s->n_decoys; j++)
			if (!s->decoys[j] || BIT(public, s->proto, s->decoys[j]))
				return service_error(err, -EADDRINUSE, s,
						     "decoy port %u is 0 or a public port",
						     s->decoys[j]);
	}
	return 0;
}

static int plan_check(const struct rotator_plan *plan, uint16_t hp, bool envelope,
		      struct step_error *err)
{
	int k;

	if (!plan || (plan->n_unblock && !plan->unblock))
		return step_error_set(err, "plan", -EINVAL, "missing services or addresses");
	k = services_check(plan->services, plan->n_services, hp, err);
	if (k >= 0)
		k = services_check(plan->next, plan->n_next, hp, err);
	if (k < 0)
		return k;
	for (size_t i = 0; i < plan->n_unblock; i++)
		if (!addr_valid(&plan->unblock[i]))
			return step_error_set(err, "unblock", -EAFNOSUPPORT, "bad address family");
	return instances_check(plan, envelope, err);
}

/* --- plan codes ----------------------------------------------------------------- */

static int code_put(struct plan_code *c, const void *data, size_t len)
{
	if (c->n + len > c->cap) {
		size_t cap = c->cap ? c->cap : 4096;
		uint8_t *b;

		while (cap < c->n + len)
			cap *= 2;
		b = realloc(c->bytes, cap);
		if (!b)
			return -ENOMEM;
		c->bytes = b;
		c->cap = cap;
	}
	memcpy(c->bytes + c->n, data, len);
	c->n += len;
	return 0;
}

static int code_addr(struct plan_code *c, const struct rotator_addr *a)
{
	uint8_t family = (uint8_t)a->family;
	int k = code_put(c, &family, 1);

	if (k >= 0)
		k = a->family == AF_INET ? code_put(c, &a->in, 4) : code_put(c, &a->in6, 16);
	return k;
}

static int code_services(struct plan_code *c, const struct rotator_service *svcs, size_t n)
{
	int k = 0;

	c->n = 0;
	for (size_t i = 0; k >= 0 && i < n; i++) {
		const struct rotator_service *s = &svcs[i];
		uint16_t fixed[4] = {s->proto, s->port, s->grace_port, s->backend_port};
		uint8_t flags[3] = {s->local_access, (uint8_t)s->n_decoys, s->gated};
		uint32_t counts[2] = {(uint32_t)s->n_client_ports, (uint32_t)s->n_knock_ports};

		k = code_put(c, s->name, strlen(s->name) + 1);
		if (k >= 0)
			k = code_put(c, fixed, sizeof(fixed));
		if (k >= 0)
			k = code_put(c, flags, sizeof(flags));
		if (k >= 0)
			k = code_put(c, s->decoys, s->n_decoys * sizeof(*s->decoys));
		if (k >= 0)
			k = code_put(c, counts, sizeof(counts));
		if (k >= 0 && s->n_client_ports)
			k = code_put(c, s->client_ports, s->n_client_ports * sizeof(uint16_t));
		if (k >= 0 && s->n_knock_ports)
			k = code_put(c, s->knock_ports, s->n_knock_ports * sizeof(uint16_t));
		if (k >= 0)
			k = code_addr(c, &s->backend);
	}
	return k;
}

static int code_instances(struct plan_code *c, const struct rotator_plan *plan)
{
	int k = 0;

	c->n = 0;
	for (size_t i = 0; k >= 0 && i < plan->n_instances; i++) {
		const struct rotator_instance *in = &plan->instances[i];
		uint16_t fixed[6] = {
		    in->proto, in->port, (uint16_t)in->n_addresses, (uint16_t)in->n_egress,
		    in->cut,   in->dead};

		k = code_put(c, in->name, strlen(in->name) + 1);
		if (k >= 0)
			k = code_put(c, fixed, sizeof(fixed));
		for (size_t a = 0; k >= 0 && a < in->n_addresses; a++)
			k = code_addr(c, &in->addresses[a]);
		for (size_t e = 0; k >= 0 && e < in->n_egress; e++) {
			const struct rotator_egress *g = &in->egress[e];
			uint16_t rule[5] = {g->proto, g->port_first, g->port_last,
					    g->has_destination, (uint16_t)g->prefix_len};

			k = code_put(c, rule, sizeof(rule));
			if (k >= 0 && g->has_destination)
				k = code_addr(c, &g->destination);
		}
	}
	return k;
}

static bool code_equal(const struct plan_code *a, const struct plan_code *b)
{
	return a->n == b->n && (a->n == 0 || memcmp(a->bytes, b->bytes, a->n) == 0);
}

const char *rotator_instance_owner(const struct rotator *r, const struct rotator_addr *addr)
{
	const struct rs_elem *e;

	if (!addr || !addr_valid(addr))
		return NULL;
	if (addr->family == AF_INET)
		e = delta_state_find(&r->cur, RS_SET_INSTANCES4, (const uint8_t *)&addr->in, 4);
	else
		e = delta_state_find(&r->cur, RS_SET_INSTANCES6, addr->in6.s6_addr, 16);
	return e ? delta_state_owner(&r->cur, e) : NULL;
}

const char *rotator_decoy_owner(const struct rotator *r, uint8_t proto, uint16_t port)
{
	const struct rs_elem *e;
	uint8_t key[8];

	delta_key_proto_port(key, proto, port);
	/* the live bank's first: a hit just before a switch is the idle one's */
	e = delta_state_find(&r->cur, rs_bank_set(RS_SET_DECOYS, r->live_bank), key, sizeof(key));
	if (!e)
		e = delta_state_find(&r->cur, rs_bank_set(RS_SET_DECOYS, !r->live_bank), key,
				     sizeof(key));
	return e ? delta_state_owner(&r->cur, e) : NULL;
}

void rotator_last_stats(const struct rotator *r, struct rotator_stats *ret)
{
	*ret = r->stats;
}

/* Commit t (the caller frees it). Afterwards the kernel holds *applied, or, if the
 * outcome is unclear or the kernel disagreed about an element, the
 * remembered state is marked unknown (the next apply resynchronises). */
static int commit(struct rotator *r, struct nft_txn *t, struct elements_ctx *ctx,
		  struct step_error *err)
{
	enum nft_outcome outcome;
	int k;

	nft_txn_set_describe(t, elements_describe, ctx);
	k = nft_txn_commit(r->sock, t, MAX_RESTARTS, err);
	outcome = nft_txn_outcome(t);
	if (k < 0) {
		r->codes_valid = false;
		if (outcome != NFT_TXN_REFUSED || k == -ENOENT || k == -EEXIST)
			r->cur_valid = false;
	}
	return k;
}

struct blocked_reader {
	int family;
	struct rotator_blocked *list;
	size_t n, cap;
};

static int read_one_blocked(const struct nft_elem_info *elem, void *userdata)
{
	struct blocked_reader *reader = userdata;
	bool v4 = reader->family == AF_INET;
	struct rotator_blocked *b;

	if (elem->key_len != (v4 ? 4 : 16))
		return 0; /* a table of another layout: not a source address */
	if (elem->timeout_ms && !elem->expires_in_ms)
		return 0; /* expiring as we read it */
	if (reader->n == reader->cap) {
		size_t cap = reader->cap ? 2 * reader->cap : 16;
		struct rotator_blocked *grown = realloc(reader->list, cap * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		reader->list = grown;
		reader->cap = cap;
	}
	b = &reader->list[reader->n++];
	*b = (struct rotator_blocked){.source.family = reader->family,
				      .expires_in_ms = elem->timeout_ms ? elem->expires_in_ms : 0};
	memcpy(v4 ? (void *)&b->source.in : (void *)&b->source.in6, elem->key, elem->key_len);
	return 0;
}

/* Both blocked sets of the table the kernel has now; none without a table. */
static int read_blocked(struct rotator *r, struct rotator_blocked **ret, size_t *ret_n,
			struct step_error *err)
{
	static const struct {
		int family;
		const char *set;
	} sets[] = {{AF_INET, RS_BLOCKED4}, {AF_INET6, RS_BLOCKED6}};
	struct blocked_reader reader = {0};

	for (size_t i = 0; i < ELEMENTSOF(sets); i++) {
		int k;

		reader.family = sets[i].family;
		k = nft_dump_set_elems(r->sock, NFPROTO_INET, ROTATOR_TABLE, sets[i].set,
				       read_one_blocked, &reader);
		if (k == -ENOENT)
			continue;
		if (k < 0) {
			free(reader.list);
			return step_error_set(err, sets[i].set, k, "reading the blocked sources");
		}
	}
	*ret = reader.list;
	*ret_n = reader.n;
	return 0;
}

int rotator_blocked_list(struct rotator *r, struct rotator_blocked **ret, size_t *ret_n,
			 struct step_error *err)
{
	if (err)
		step_error_clear(err);
	if (!r || !ret || !ret_n)
		return step_error_set(err, "rotator", -EINVAL, "%s", "");
	return read_blocked(r, ret, ret_n, err);
}

int rotator_block(struct rotator *r, const struct rotator_blocked *sources, size_t n,
		  struct step_error *err)
{
	_cleanup_(nft_txn_freep) struct nft_txn *t = NULL;
	_cleanup_free_ struct rotator_blocked *list = NULL;
	struct elements_ctx ctx = {0};
	size_t n_list = 0;
	int k;

	if (err)
		step_error_clear(err);
	if (!r || (n && !sources))
		return step_error_set(err, "block", -EINVAL, "%s", "");
	if (n == 0)
		return 0;
	if (n > ROTATOR_MAX_BLOCK)
		return step_error_set(err, "block", -E2BIG, "%zu sources, at most %d a call", n,
				      ROTATOR_MAX_BLOCK);
	for (size_t i = 0; i < n; i++)
		if (!addr_valid(&sources[i].source))
			return step_error_set(err, "block", -EINVAL,
					      "source #%zu: address family %d is not IPv4 or IPv6",
					      i, sources[i].source.family);
	k = elements_block_list(sources, n, &list, &n_list);
	if (k >= 0)
		k = nft_txn_new(r->sock, &t);
	ctx.block = list;
	ctx.n_block = n_list;
	if (k >= 0)
		k = elements_add_block(t, &ctx);
	if (k < 0)
		return step_error_set(err, "transaction", k, "building the batch");
	nft_txn_set_describe(t, elements_describe, &ctx);
	return nft_txn_commit(r->sock, t, MAX_RESTARTS, err);
}

/* Each admission names an IPv4 or IPv6 source, tcp or udp and a door; an
 * added one has a timeout. */
static int admissions_check(const struct rotator_admission *a, size_t n, bool remove,
			    const char *what, struct step_error *err)
{
	for (size_t i = 0; i < n; i++) {
		if (!addr_valid(&a[i].source))
			return step_error_set(err, what, -EINVAL,
					      "admission #%zu: address family %d is not IPv4 or "
					      "IPv6",
					      i, a[i].source.family);
		if ((a[i].proto != IPPROTO_TCP && a[i].proto != IPPROTO_UDP) || !a[i].port)
			return step_error_set(err, what, -EINVAL,
					      "admission #%zu: needs tcp or udp and a port", i);
		if (!remove && !a[i].expires_in_ms)
			return step_error_set(err, what, -EINVAL,
					      "admission #%zu: no timeout (expires_in_ms 0)", i);
	}
	return 0;
}

static int admissions(struct rotator *r, const struct rotator_admission *a, size_t n, bool remove,
		      struct step_error *err)
{
	_cleanup_(nft_txn_freep) struct nft_txn *t = NULL;
	_cleanup_free_ struct rotator_admission *list = NULL;
	const char *what = remove ? "unadmit" : "admit";
	struct elements_ctx ctx = {0};
	size_t n_list = 0;
	int k;

	if (err)
		step_error_clear(err);
	if (!r || (n && !a))
		return step_error_set(err, what, -EINVAL, "%s", "");
	if (n == 0)
		return 0;
	if (n > ROTATOR_MAX_ADMIT)
		return step_error_set(err, what, -E2BIG, "%zu admissions, at most %d a call", n,
				      ROTATOR_MAX_ADMIT);
	k = admissions_check(a, n, remove, what, err);
	if (k < 0)
		return k;
	k = elements_admit_list(a, n, &list, &n_list);
	if (k >= 0)
		k = nft_txn_new(r->sock, &t);
	ctx.admit = list;
	ctx.n_admit = n_list;
	if (k >= 0)
		k = elements_add_admit(t, &ctx, remove);
	if (k < 0)
		return step_error_set(err, "transaction", k, "building the batch");
	nft_txn_set_describe(t, elements_describe, &ctx);
	return nft_txn_commit(r->sock, t, MAX_RESTARTS, err);
}

struct admitted_reader {
	int family;
	uint8_t proto;
	const uint64_t *ports; /* bitmap */
	struct rotator_admission *list;
	size_t n, cap;
};

static int read_one_admitted(const struct nft_elem_info *elem, void *userdata)
{
	struct admitted_reader *reader = userdata;
	size_t al = reader->family == AF_INET ? 4 : 16;
	const uint8_t *k = elem->key;
	struct rotator_admission *a;
	uint16_t port;

	if (elem->key_len != al + 8 || k[al] != reader->proto)
		return 0;
	port = (uint16_t)(k[al + 4] << 8 | k[al + 5]);
	if (!(reader->ports[port / 64] & (1ull << (port % 64))))
		return 0;
	if (reader->n == reader->cap) {
		size_t cap = reader->cap ? 2 * reader->cap : 16;
		struct rotator_admission *grown = realloc(reader->list, cap * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		reader->list = grown;
		reader->cap = cap;
	}
	a = &reader->list[reader->n++];
	*a = (struct rotator_admission){
	    .source.family = reader->family, .proto = reader->proto, .port = port};
	memcpy(&a->source.in6, k, al); /* in: same start */
	return 0;
}

int rotator_unadmit_ports(struct rotator *r, uint8_t proto, const uint16_t *ports, size_t n_ports,
			  size_t *ret_n, struct step_error *err)
{
	static const struct {
		int family;
		const char *set;
	} sets[] = {{AF_INET, RS_ADMITTED4}, {AF_INET6, RS_ADMITTED6}};
	_cleanup_free_ uint64_t *bitmap = calloc(65536 / 64, sizeof(uint64_t));
	struct admitted_reader reader = {.proto = proto};
	int k = 0;

	if (err)
		step_error_clear(err);
	if (!r || !bitmap)
		return step_error_set(err, "unadmit", r ? -ENOMEM : -EINVAL, "%s", "");
	for (size_t i = 0; i < n_ports; i++)
		bitmap[ports[i] / 64] |= 1ull << (ports[i] % 64);
	reader.ports = bitmap;
	for (size_t i = 0; i < ELEMENTSOF(sets); i++) {
		reader.family = sets[i].family;
		k = nft_dump_set_elems(r->sock, NFPROTO_INET, ROTATOR_TABLE, sets[i].set,
				       read_one_admitted, &reader);
		if (k == -ENOENT)
			k = 0;
		if (k < 0) {
			free(reader.list);
			return step_error_set(err, sets[i].set, k, "reading the admissions");
		}
	}
	/* in chunks of what one call takes */
	for (size_t off = 0; k >= 0 && off < reader.n; off += ROTATOR_MAX_ADMIT)
		k = admissions(r, reader.list + off,
			       reader.n - off < ROTATOR_MAX_ADMIT ? reader.n - off
								  : ROTATOR_MAX_ADMIT,
			       true, err);
	free(reader.list);
	if (k < 0)
		return k;
	*ret_n = reader.n;
	return 0;
}

int rotator_admit(struct rotator *r, const struct rotator_admission *a, size_t n,
		  struct step_error *err)
{
	return admissions(r, a, n, false, err);
}

int rotator_unadmit(struct rotator *r, const struct rotator_admission *a, size_t n,
		    struct step_error *err)
{
	return admissions(r, a, n, true, err);
}

#define KEEP_STATE_MAX 16384 /* elements */

/* Build and commit one transaction from r->next (built from plan).
 * *adopted is set when an old table is replaced by it. */
static int apply_once(struct rotator *r, const struct rotator_plan *plan, bool *adopted,
		      struct step_error *err)
{
	_cleanup_(nft_txn_freep) struct nft_txn *t = NULL;
	_cleanup_free_ struct rotator_admission *unadmit = NULL;
	const struct rs_state *old;
	struct elements_ctx ctx;
	struct rotator_stats stats;
	bool flush;
	int k;

	k = nft_txn_new(r->sock, &t);
	if (k < 0)
		return step_error_set(err, "transaction", k, "%s", "");
	*adopted = false;
	if (!(r->flags & ROTATOR_F_PROGRAMMED)) {
		uint32_t table_flags = NFT_TABLE_F_OWNER;
		bool exists = false;
		uint32_t owner = 0, flags = 0;

		k = nft_get_table(r->sock, NFPROTO_INET, ROTATOR_TABLE, &exists, &flags, &owner);
		if (k < 0)
			return step_error_set(err, RS_TABLE_DESC, k, "looking it up");
		if (exists && (flags & NFT_TABLE_F_OWNER) && owner != nft_sock_portid(r->sock))
			return step_error_set(err, RS_TABLE_DESC, -EBUSY,
					      "owned by a live process (netlink port %u): "
					      "another mtd-agent is running",
					      owner);
		if (exists) {
			/* The table is rebuilt from scratch; the sources it
			 * blocks stay blocked for the time they have left. A hit
			 * between this read and the commit is lost: the kernel's
			 * own additions do not change the generation id. */
			free(r->carried);
			r->carried = NULL;
			r->n_carried = 0;
			k = read_blocked(r, &r->carried, &r->n_carried, err);
			if (k < 0)
				return k;
			k = rotator_ranges_read(r->sock, &r->ranges, err);
			if (k < 0)
				return k;
			k = ruleset_delete_table(t);
			*adopted = true;
		}
		if (r->try_persist)
			table_flags |= NFT_TABLE_F_PERSIST;
		if (k >= 0)
			k = ruleset_add_layout(t, table_flags, &r->config);
		if (!exists)
			rotator_ranges_state_free(&r->ranges);
		else if (k >= 0) /* the blocked ranges stay, with their time left */
			k = rotator_ranges_add_elems(t, NULL, 0, r->ranges.programmed,
						     r->ranges.n_programmed, false,
						     rotator_ranges_now_ms());
	}
	/* the delta against what the kernel has: everything when the table is
	 * new (or adopted: rebuilt from scratch) or its contents are unknown */
	old = (r->flags & ROTATOR_F_PROGRAMMED) && r->cur_valid ? &r->cur : &r->empty;
	flush = (r->flags & ROTATOR_F_PROGRAMMED) && !r->cur_valid;
	ctx = (struct elements_ctx){.old = old,
				    .new_state = &r->next,
				    .delta = &r->delta,
				    .plan = plan,
				    .envelope = r->config.instance_envelope};
	if (*adopted) {
		ctx.carried = r->carried;
		ctx.n_carried = r->n_carried;
	}
	if (k >= 0)
		k = delta_compute(old, &r->next, &r->delta);
	if (k >= 0)
		k = elements_add_delta(t, &ctx, flush);
	if (k >= 0)
		k = elements_add_carried(t, &ctx);
	if (k >= 0)
		k = elements_add_unblock(t, &ctx);
	if (k < 0)
		return step_error_set(err, "transaction", k, "building the batch");
	if (plan->n_unadmit) {
		k = admissions_check(plan->unadmit, plan->n_unadmit, true, "unadmit", err);
		if (k < 0)
			return k;
		k = elements_admit_list(plan->unadmit, plan->n_unadmit, &unadmit, &ctx.n_admit);
		ctx.admit = unadmit;
		if (k >= 0)
			k = elements_add_admit(t, &ctx, true);
		if (k < 0)
			return step_error_set(err, "transaction", k, "building the batch");
	}
	stats = (struct rotator_stats){
	    .elements_deleted = delta_count_del(&r->delta),
	    .elements_added = delta_count_add(&r->delta),
	    .messages = nft_txn_n_msgs(t) - 1,
	    .bytes = nft_txn_size(t),
	    .full = old == &r->empty,
	};
	if (stats.messages > 0) /* none: nothing changes, no transaction */
		k = commit(r, t, &ctx, err);
	if (k >= 0) {
		struct rs_state tmp = r->cur;

		if (!(r->flags & ROTATOR_F_PROGRAMMED))
			r->ranges.valid = true; /* a new table: its ranges as read */
		r->cur = r->next;		/* the kernel has the new plan now */
		r->next = tmp;
		r->cur_valid = true;
		r->stats = stats;
	}
	/* A large state's memory is not kept for the next apply (with 64,000
	 * client doors a state is tens of MB; building it again costs less
	 * than holding it) */
	if (delta_state_count(&r->next) > KEEP_STATE_MAX) {
		delta_state_free(&r->next);
		delta_free(&r->delta);
	}
	return k;
}

/* The plan's services are what the idle bank holds: one transaction that
 * moves ipv4 and ipv6 from the live bank's active set to the idle one's
 * (and unblocks the plan's sources), whatever the number of services. */
static int apply_switch(struct rotator *r, const struct rotator_plan *plan, struct step_error *err)
{
	unsigned bank = !r->live_bank;
	_cleanup_(nft_txn_freep) struct nft_txn *t = NULL;
	struct elements_ctx ctx = {.old = &r->cur,
				   .new_state = &r->switched,
				   .delta = &r->delta,
				   .plan = plan,
				   .envelope = r->config.instance_envelope};
	struct rotator_stats stats;
	struct plan_code tmp;
	int k;

	delta_state_clear(&r->switched);
	k = delta_state_switch(&r->switched, bank);
	if (k >= 0)
		k = delta_switch(&r->cur, &r->switched, &r->delta);
	if (k >= 0)
		k = nft_txn_new(r->sock, &t);
	if (k >= 0)
		k = elements_add_delta(t, &ctx, false);
	if (k >= 0)
		k = elements_add_unblock(t, &ctx);
	if (k < 0)
		return step_error_set(err, "transaction", k, "building the batch");
	stats = (struct rotator_stats){
	    .elements_deleted = delta_count_del(&r->delta),
	    .elements_added = delta_count_add(&r->delta),
	    .messages = nft_txn_n_msgs(t) - 1,
	    .bytes = nft_txn_size(t),
	    .switched = true,
	};
	k = commit(r, t, &ctx, err);
	if (k < 0)
		return k;
	r->stats = stats;
	k = delta_state_switch(&r->cur, bank);
	if (k < 0) { /* the kernel switched, our model could not follow */
		r->cur_valid = r->codes_valid = false;
		return step_error_set(err, "rotator", k, "element state");
	}
	r->live_bank = bank;
	tmp = r->code_live;
	r->code_live = r->code_idle;
	r->code_idle = tmp;
	return 0;
}

/* Whether plan needs a full apply (0), is a switch of banks (1), or
 * changes nothing (2); from the codes of what the banks hold. */
static int classify(struct rotator *r, const struct rotator_plan *plan)
{
	bool instances_same;

	if (!(r->flags & ROTATOR_F_PROGRAMMED) || !r->cur_valid || !r->codes_valid ||
	    plan->n_unadmit)
		return 0;
	if (code_instances(&r->code_scratch, plan) < 0)
		return 0;
	instances_same = code_equal(&r->code_scratch, &r->code_instances);
	if (!instances_same ||
	    code_services(&r->code_scratch, plan->services, plan->n_services) < 0)
		return 0;
	if (code_equal(&r->code_scratch, &r->code_live)) {
		if (plan->n_unblock || plan->n_unadmit ||
		    code_services(&r->code_scratch, plan->next, plan->n_next) < 0)
			return 0;
		return code_equal(&r->code_scratch, &r->code_idle) ? 2 : 0;
	}
	return code_equal(&r->code_scratch, &r->code_idle) ? 1 : 0;
}

int rotator_apply(struct rotator *r, const struct rotator_plan *plan, struct step_error *err)
{
	bool adopted = false;
	int k;

	if (err)
		step_error_clear(err);
	if (!r)
		return step_error_set(err, "rotator", -EINVAL, "%s", "");
	k = plan_check(plan, r->config.honeypot_port, r->config.instance_envelope, err);
	if (k < 0)
		return k;
	switch (classify(r, plan)) {
	case 1:
		return apply_switch(r, plan, err);
	case 2:
		r->stats = (struct rotator_stats){};
		return 0;
	default:
		break;
	}
	k = delta_state_build(&r->next, plan, r->live_bank, err);
	if (k < 0)
		return k;
	k = apply_once(r, plan, &adopted, err);
	if (k == -EOPNOTSUPP && r->try_persist && !(r->flags & ROTATOR_F_PROGRAMMED) && err &&
	    strncmp(err->step, RS_TABLE_DESC " (", strlen(RS_TABLE_DESC " (")) == 0) {
		/* kernel before 6.9: no persist flag; the table dies with our socket */
		r->try_persist = false;
		step_error_clear(err);
		k = apply_once(r, plan, &adopted, err);
	}
	if (k < 0)
		return k;
	if (!(r->flags & ROTATOR_F_PROGRAMMED)) {
		r->flags |= ROTATOR_F_PROGRAMMED;
		if (r->try_persist)
			r->flags |= ROTATOR_F_PERSIST;
		if (adopted)
			r->flags |= ROTATOR_F_ADOPTED;
	}
	/* what the banks hold now, for recognising the next switch */
	r->codes_valid = code_services(&r->code_live, plan->services, plan->n_services) >= 0 &&
			 code_services(&r->code_idle, plan->next, plan->n_next) >= 0 &&
			 code_instances(&r->code_instances, plan) >= 0;
	return 0;
}

int rotator_switch(struct rotator *r, struct step_error *err)
{
	static const struct rotator_plan nothing_else;

	if (err)
		step_error_clear(err);
	if (!r)
		return step_error_set(err, "rotator", -EINVAL, "%s", "");
	if (!(r->flags & ROTATOR_F_PROGRAMMED) || !r->cur_valid || !r->codes_valid)
		return step_error_set(err, "rotator", -ESTALE, "the idle bank is not known");
	return apply_switch(r, &nothing_else, err);
}

int rotator_remove(struct rotator *r, struct step_error *err)
{
	_cleanup_(nft_txn_freep) struct nft_txn *t = NULL;
	bool exists = false;
	int k;

	if (err)
		step_error_clear(err);
	k = nft_get_table(r->sock, NFPROTO_INET, ROTATOR_TABLE, &exists, NULL, NULL);
	if (k < 0)
		return step_error_set(err, RS_TABLE_DESC, k, "looking it up");
	r->codes_valid = false;
	if (!exists) {
		r->flags &= ~ROTATOR_F_PROGRAMMED;
		delta_state_clear(&r->cur);
		rotator_ranges_state_free(&r->ranges);
		return 0;
	}
	k = nft_txn_new(r->sock, &t);
	if (k >= 0)
		k = ruleset_delete_table(t);
	if (k < 0)
		return step_error_set(err, "transaction", k, "%s", "");
	k = nft_txn_commit(r->sock, t, MAX_RESTARTS, err);
	if (k >= 0) {
		r->flags &= ~ROTATOR_F_PROGRAMMED;
		delta_state_clear(&r->cur);
		rotator_ranges_state_free(&r->ranges);
		r->cur_valid = true;
	}
	return k;
}

int rotator_block_ranges(struct rotator *r, const struct rotator_range *bans, size_t n_bans,
			 const struct rotator_range *unbans, size_t n_unbans,
			 const struct rotator_range *never, size_t n_never, struct step_error *err)
{
	if (err)
		step_error_clear(err);
	if (!r || (n_bans && !bans) || (n_unbans && !unbans) || (n_never && !never))
		return step_error_set(err, "ranges", -EINVAL, "%s", "");
	return rotator_ranges_block(r->sock, &r->ranges, bans, n_bans, unbans, n_unbans, never,
				    n_never, err);
}

void rotator_ranges_count(const struct rotator *r, size_t *ret_ranges, size_t *ret_segments)
{
	*ret_ranges = r->ranges.map.n;
	*ret_segments = r->ranges.n_programmed;
}
