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

#include "delta.h"
#include "elements.h"
#include "macro.h"
#include "nft.h"
#include "rotator.h"
#include "ruleset.h"

#define MAX_RESTARTS 5

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
	struct rs_delta delta;
	struct rotator_stats stats;
};

int rotator_new(const struct rotator_config *config, struct rotator **ret)
{
	struct rotator *r;
	int k;

	if (!config || config->block_timeout_sec == 0 || !ret ||
	    (config->instance_envelope && config->egress_nflog_group == config->nflog_group))
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
	rs_state_free(&r->cur);
	rs_state_free(&r->next);
	rs_delta_free(&r->delta);
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

static int service_error(struct rotator_error *err, int e, const struct rotator_service *s,
			 const char *fmt, ...) _printf_(4, 5);
static int service_error(struct rotator_error *err, int e, const struct rotator_service *s,
			 const char *fmt, ...)
{
	char object[ROTATOR_MAX_NAME + 16], message[128];
	va_list ap;

	snprintf(object, sizeof(object), "service %.*s", ROTATOR_MAX_NAME,
		 s->name ? s->name : "(null)");
	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	return rotator_error_set(err, e, object, "%s", message);
}

static int instance_error(struct rotator_error *err, int e, const struct rotator_instance *in,
			  const char *message)
{
	char object[ROTATOR_MAX_NAME + 16];

	snprintf(object, sizeof(object), "instance %.*s", ROTATOR_MAX_NAME,
		 in->name ? in->name : "(null)");
	return rotator_error_set(err, e, object, "%s", message);
}

static int instances_check(const struct rotator_plan *plan, bool envelope,
			   struct rotator_error *err)
{
	if (plan->n_instances && !plan->instances)
		return rotator_error_set(err, -EINVAL, "plan", "missing instances");
	if (plan->n_instances && !envelope)
		return rotator_error_set(err, -EINVAL, "plan",
					 "instances need rotator_config.instance_envelope");
	if (plan->n_instances > UINT32_MAX / 4 - plan->n_services)
		return rotator_error_set(err, -E2BIG, "plan", "too many instances");
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

static int plan_check(const struct rotator_plan *plan, uint16_t hp, bool envelope,
		      struct rotator_error *err)
{
	_cleanup_free_ uint64_t *public = NULL; /* tcp then udp, one bit per port */

	if (!plan || (plan->n_services && !plan->services) || (plan->n_unblock && !plan->unblock))
		return rotator_error_set(err, -EINVAL, "plan", "missing services or addresses");
	if (plan->n_services > UINT32_MAX / 4)
		return rotator_error_set(err, -E2BIG, "plan", "too many services");
	public = calloc(2 * 1024, sizeof(uint64_t));
	if (!public)
		return rotator_error_set(err, -ENOMEM, "plan", NULL);

	for (size_t i = 0; i < plan->n_services; i++) {
		const struct rotator_service *s = &plan->services[i];

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
		SETBIT(public, s->proto, s->port);
		if (s->grace_port)
			SETBIT(public, s->proto, s->grace_port);
	}
	for (size_t i = 0; i < plan->n_services; i++) {
		const struct rotator_service *s = &plan->services[i];

		for (size_t j = 0; j < s->n_decoys; j++)
			if (!s->decoys[j] || BIT(public, s->proto, s->decoys[j]))
				return service_error(err, -EADDRINUSE, s,
						     "decoy port %u is 0 or a public port",
						     s->decoys[j]);
	}
	for (size_t i = 0; i < plan->n_unblock; i++)
		if (!addr_valid(&plan->unblock[i]))
			return rotator_error_set(err, -EAFNOSUPPORT, "unblock", "bad address family");
	return instances_check(plan, envelope, err);
}

const char *rotator_instance_owner(const struct rotator *r, const struct rotator_addr *addr)
{
	const struct rs_elem *e;

	if (!addr || !addr_valid(addr))
		return NULL;
	if (addr->family == AF_INET)
		e = rs_state_find(&r->cur, RS_SET_INSTANCES4, (const uint8_t *)&addr->in, 4);
	else
		e = rs_state_find(&r->cur, RS_SET_INSTANCES6, addr->in6.s6_addr, 16);
	return e ? rs_state_owner(&r->cur, e) : NULL;
}

const char *rotator_decoy_owner(const struct rotator *r, uint8_t proto, uint16_t port)
{
	const struct rs_elem *e;
	uint8_t key[8];

	rs_key_proto_port(key, proto, port);
	e = rs_state_find(&r->cur, RS_SET_DECOYS, key, sizeof(key));
	return e ? rs_state_owner(&r->cur, e) : NULL;
}

void rotator_last_stats(const struct rotator *r, struct rotator_stats *ret)
{
	*ret = r->stats;
}

static uint64_t monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts); /* the kernel's clock for set timeouts */
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Build and commit one transaction. *adopted is set when an old table is
 * replaced by it. */
static int apply_once(struct rotator *r, const struct rotator_plan *plan, bool *adopted,
		      struct rotator_error *err)
{
	struct nft_txn *t = NULL;
	const struct rs_state *old;
	struct elements_ctx ctx;
	struct rotator_stats stats;
	enum nft_outcome outcome;
	bool flush;
	int k;

	k = nft_txn_new(r->sock, &t);
	if (k < 0)
		return rotator_error_set(err, k, "transaction", NULL);
	*adopted = false;
	if (!(r->flags & ROTATOR_F_PROGRAMMED)) {
		uint32_t table_flags = NFT_TABLE_F_OWNER;
		bool exists = false;
		uint32_t owner = 0, flags = 0;

		k = nft_get_table(r->sock, NFPROTO_INET, ROTATOR_TABLE, &exists, &flags, &owner);
		if (k < 0) {
			nft_txn_free(t);
			return rotator_error_set(err, k, RS_TABLE_DESC, "looking it up");
		}
		if (exists && (flags & NFT_TABLE_F_OWNER) && owner != nft_sock_portid(r->sock)) {
			nft_txn_free(t);
			return rotator_error_set(err, -EBUSY, RS_TABLE_DESC,
						 "owned by a live process (netlink port %u): "
						 "another mtd-agent is running",
						 owner);
		}
		if (exists) {
			k = ruleset_delete_table(t);
			*adopted = true;
		}
		if (r->try_persist)
			table_flags |= NFT_TABLE_F_PERSIST;
		if (k >= 0)
			k = ruleset_add_layout(t, table_flags, &r->config);
	}
	/* the delta against what the kernel has: everything when the table is
	 * new (or adopted: rebuilt from scratch) or its contents are unknown */
	old = (r->flags & ROTATOR_F_PROGRAMMED) && r->cur_valid ? &r->cur : &r->empty;
	flush = (r->flags & ROTATOR_F_PROGRAMMED) && !r->cur_valid;
	ctx = (struct elements_ctx){ .old = old, .new_state = &r->next, .delta = &r->delta,
				     .plan = plan, .envelope = r->config.instance_envelope };
	if (k >= 0)
		k = rs_delta_compute(old, &r->next, monotonic_ms(), &r->delta);
	if (k >= 0)
		k = elements_add_delta(t, &ctx, flush);
	if (k >= 0)
		k = elements_add_unblock(t, &ctx);
	if (k < 0) {
		nft_txn_free(t);
		return rotator_error_set(err, k, "transaction", "building the batch");
	}
	stats = (struct rotator_stats){
		.elements_deleted = rs_delta_count_del(&r->delta),
		.elements_added = rs_delta_count_add(&r->delta),
		.elements_expiring = r->delta.n_expiring,
		.messages = nft_txn_n_msgs(t) - 1,
		.bytes = nft_txn_size(t),
		.full = old == &r->empty,
	};
	if (stats.messages == 0) { /* nothing changes: no transaction */
		struct rs_state tmp = r->cur;

		nft_txn_free(t);
		/* the same elements, minus those that expired */
		r->cur = r->next;
		r->next = tmp;
		r->stats = stats;
		return 0;
	}
	nft_txn_set_describe(t, elements_describe, &ctx);
	k = nft_txn_commit(r->sock, t, MAX_RESTARTS, err);
	outcome = nft_txn_outcome(t);
	nft_txn_free(t);
	if (k >= 0) {
		struct rs_state tmp = r->cur;

		r->cur = r->next; /* the kernel has the new plan now */
		r->next = tmp;
		r->cur_valid = true;
		r->stats = stats;
	} else if (outcome != NFT_TXN_REFUSED || k == -ENOENT || k == -EEXIST) {
		/* no verdict (may have been applied), or the kernel's elements
		 * are not what we remembered: resynchronise on the next apply */
		r->cur_valid = false;
	}
	return k;
}

int rotator_apply(struct rotator *r, const struct rotator_plan *plan, struct rotator_error *err)
{
	bool adopted = false;
	int k;

	if (err)
		*err = (struct rotator_error){};
	if (!r)
		return rotator_error_set(err, -EINVAL, "rotator", NULL);
	k = plan_check(plan, r->config.honeypot_port, r->config.instance_envelope, err);
	if (k >= 0)
		k = rs_state_build(&r->next, plan, err);
	if (k < 0)
		return k;
	k = apply_once(r, plan, &adopted, err);
	if (k == -EOPNOTSUPP && r->try_persist && !(r->flags & ROTATOR_F_PROGRAMMED) && err &&
	    strncmp(err->object, RS_TABLE_DESC " (", strlen(RS_TABLE_DESC " (")) == 0) {
		/* kernel before 6.9: no persist flag; the table dies with our socket */
		r->try_persist = false;
		*err = (struct rotator_error){};
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
	return 0;
}

int rotator_remove(struct rotator *r, struct rotator_error *err)
{
	struct nft_txn *t = NULL;
	bool exists = false;
	int k;

	if (err)
		*err = (struct rotator_error){};
	k = nft_get_table(r->sock, NFPROTO_INET, ROTATOR_TABLE, &exists, NULL, NULL);
	if (k < 0)
		return rotator_error_set(err, k, RS_TABLE_DESC, "looking it up");
	if (!exists) {
		r->flags &= ~ROTATOR_F_PROGRAMMED;
		rs_state_clear(&r->cur);
		return 0;
	}
	k = nft_txn_new(r->sock, &t);
	if (k >= 0)
		k = ruleset_delete_table(t);
	if (k < 0) {
		nft_txn_free(t);
		return rotator_error_set(err, k, "transaction", NULL);
	}
	k = nft_txn_commit(r->sock, t, MAX_RESTARTS, err);
	nft_txn_free(t);
	if (k >= 0) {
		r->flags &= ~ROTATOR_F_PROGRAMMED;
		rs_state_clear(&r->cur);
		r->cur_valid = true;
	}
	return k;
}
