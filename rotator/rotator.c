/* SPDX-License-Identifier: MIT */
/* The rotator's public API (rotator.h): plan validation, adoption, apply. */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>

#include "macro.h"
#include "nft.h"
#include "rotator.h"
#include "ruleset.h"

#define MAX_RESTARTS 5

struct decoy_owner {
	uint8_t proto;
	uint16_t port;
	char name[ROTATOR_MAX_NAME];
};

struct rotator {
	struct nft_sock *sock;
	struct rotator_config config;
	bool try_persist;
	unsigned flags;
	struct decoy_owner *owners;
	size_t n_owners;
};

int rotator_new(const struct rotator_config *config, struct rotator **ret)
{
	struct rotator *r;
	int k;

	if (!config || config->block_timeout_sec == 0 || !ret)
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
	*ret = r;
	return 0;
}

void rotator_free(struct rotator *r)
{
	if (!r)
		return;
	nft_sock_close(r->sock); /* without persist, the kernel drops the table now */
	free(r->owners);
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

static int plan_check(const struct rotator_plan *plan, struct rotator_error *err)
{
	_cleanup_free_ uint64_t *public = NULL; /* tcp then udp, one bit per port */

	if (!plan || (plan->n_services && !plan->services) || (plan->n_unblock && !plan->unblock))
		return rotator_error_set(err, -EINVAL, "plan", "missing services or addresses");
	public = calloc(2 * 1024, sizeof(uint64_t));
	if (!public)
		return rotator_error_set(err, -ENOMEM, "plan", NULL);

	for (size_t i = 0; i < plan->n_services; i++) {
		const struct rotator_service *s = &plan->services[i];
		char object[ROTATOR_MAX_NAME + 16];

		snprintf(object, sizeof(object), "service %s", s->name ? s->name : "(null)");
		if (!s->name || !*s->name || strlen(s->name) >= ROTATOR_MAX_NAME)
			return rotator_error_set(err, -EINVAL, object, "bad name");
		if (s->proto != IPPROTO_TCP && s->proto != IPPROTO_UDP)
			return rotator_error_set(err, -EPROTONOSUPPORT, object,
						 "protocol must be tcp or udp");
		if (s->port == 0 || s->backend_port == 0 || !addr_valid(&s->backend))
			return rotator_error_set(err, -EINVAL, object,
						 "needs a public port and a backend address and port");
		if (s->n_decoys > ROTATOR_MAX_DECOYS || (s->n_decoys && !s->decoys))
			return rotator_error_set(err, -EINVAL, object, "too many decoys");
		SETBIT(public, s->proto, s->port);
		if (s->grace_port)
			SETBIT(public, s->proto, s->grace_port);
	}
	for (size_t i = 0; i < plan->n_services; i++) {
		const struct rotator_service *s = &plan->services[i];

		for (size_t j = 0; j < s->n_decoys; j++) {
			char object[ROTATOR_MAX_NAME + 16];

			if (s->decoys[j] && !BIT(public, s->proto, s->decoys[j]))
				continue;
			snprintf(object, sizeof(object), "service %s", s->name);
			return rotator_error_set(err, -EADDRINUSE, object,
						 "decoy port %u is 0 or a public port",
						 s->decoys[j]);
		}
	}
	for (size_t i = 0; i < plan->n_unblock; i++)
		if (!addr_valid(&plan->unblock[i]))
			return rotator_error_set(err, -EAFNOSUPPORT, "unblock", "bad address family");
	return 0;
}

static int remember_decoys(struct rotator *r, const struct rotator_plan *plan)
{
	struct decoy_owner *o;
	size_t n = 0;

	for (size_t i = 0; i < plan->n_services; i++)
		n += plan->services[i].n_decoys;
	o = calloc(n ? n : 1, sizeof(*o));
	if (!o)
		return -ENOMEM;
	n = 0;
	for (size_t i = 0; i < plan->n_services; i++) {
		const struct rotator_service *s = &plan->services[i];

		for (size_t j = 0; j < s->n_decoys; j++, n++) {
			o[n].proto = s->proto;
			o[n].port = s->decoys[j];
			snprintf(o[n].name, sizeof(o[n].name), "%s", s->name);
		}
	}
	free(r->owners);
	r->owners = o;
	r->n_owners = n;
	return 0;
}

const char *rotator_decoy_owner(const struct rotator *r, uint8_t proto, uint16_t port)
{
	for (size_t i = 0; i < r->n_owners; i++)
		if (r->owners[i].proto == proto && r->owners[i].port == port)
			return r->owners[i].name;
	return NULL;
}

/* Build and commit one transaction. *adopted is set when an old table is
 * replaced by it. */
static int apply_once(struct rotator *r, const struct rotator_plan *plan, bool *adopted,
		      struct rotator_error *err)
{
	struct nft_txn *t = NULL;
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
	if (k >= 0)
		k = ruleset_add_elements(t, plan);
	if (k < 0) {
		nft_txn_free(t);
		return rotator_error_set(err, k, "transaction", "building the batch");
	}
	k = nft_txn_commit(r->sock, t, MAX_RESTARTS, err);
	nft_txn_free(t);
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
	k = plan_check(plan, err);
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
	k = remember_decoys(r, plan);
	if (k < 0)
		return rotator_error_set(err, k, "rotator", "remembering decoy owners");
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
	if (k >= 0)
		r->flags &= ~ROTATOR_F_PROGRAMMED;
	return k;
}
