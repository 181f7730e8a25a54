/* SPDX-License-Identifier: MIT */
/*
 * rotator: programs the agent's private nftables table `inet mtd` from a plain
 * description (services with their current/grace public ports, backends and
 * decoys; sources to unblock). Every rotator_apply() is one atomic netlink
 * transaction. No agent types, no logging: errors come back as a negative
 * errno plus a struct rotator_error naming the object the kernel refused.
 * See docs/nftables.md for the table layout.
 */
#pragma once

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ROTATOR_TABLE "mtd"
#define ROTATOR_MAX_DECOYS 64
#define ROTATOR_MAX_NAME 64
/* Host ends of instance links: the envelope's static rules match every
 * interface whose name starts with this (the agent names them mtdi<N>). */
#define ROTATOR_INSTANCE_IFPREFIX "mtdi"
#define ROTATOR_MAX_EGRESS 64 /* Egress= rules per instance */

struct rotator;

struct rotator_error {
	int err;	   /* negative errno, 0 if none */
	char object[160];  /* what the kernel refused, e.g. "service web: map svc4" */
	char message[256]; /* extended-ack text from the kernel, or a library reason */
};

struct rotator_addr {
	int family; /* AF_INET or AF_INET6 */
	union {
		struct in_addr in;
		struct in6_addr in6;
	};
};

struct rotator_service {
	const char *name;	     /* for error messages and decoy-hit attribution */
	uint8_t proto;		     /* IPPROTO_TCP or IPPROTO_UDP */
	uint16_t port;		     /* current public port (host order, != 0) */
	uint16_t grace_port;	     /* previous public port still accepted, 0 = none */
	const uint16_t *decoys;	     /* decoy ports of this epoch */
	size_t n_decoys;	     /* <= ROTATOR_MAX_DECOYS */
	struct rotator_addr backend; /* its family decides IPv4 or IPv6 DNAT */
	uint16_t backend_port;
	bool local_access; /* also DNAT connections made from the host itself */
};

/* One Egress= rule of an instance: it may open flows of proto to ports
 * [port_first, port_last] of destination/prefix_len (any destination of the
 * instance's families without one). */
struct rotator_egress {
	uint8_t proto;			/* IPPROTO_TCP or IPPROTO_UDP */
	uint16_t port_first, port_last; /* host order, 1 <= first <= last */
	bool has_destination;
	struct rotator_addr destination; /* host bits beyond prefix_len are ignored */
	unsigned prefix_len;		 /* <= 32 / 128 */
};

/*
 * A service instance behind an "mtdi*" link, enveloped in both directions
 * (docs/nftables.md, "Instance envelope"): to it only established/related
 * flows and new flows that came through the agent's DNAT to
 * address . proto . port; from it only established/related flows and new
 * flows its egress rules allow; everything else dropped (egress drops logged
 * to rotator_config.egress_nflog_group). An instance that is not in the plan
 * (never added, or dropped: quarantine, stop) has nothing: even its
 * established flows are cut. Needs rotator_config.instance_envelope.
 */
struct rotator_instance {
	const char *name;		      /* unique, for errors and drop attribution */
	const struct rotator_addr *addresses; /* its own addresses (/32, /128), 1 or 2 */
	size_t n_addresses;
	uint8_t proto; /* ingress: IPPROTO_TCP or IPPROTO_UDP */
	uint16_t port; /* ingress port (its ListenPort); 0: no ingress at all */
	const struct rotator_egress *egress;
	size_t n_egress; /* <= ROTATOR_MAX_EGRESS */
	/* Cut off: out of the live sets and the ingress sets, so nothing passes
	 * to or from it (its Egress= elements stay, unusable, until it leaves
	 * the plan: deleting them is the slow part of a commit). */
	bool cut;
};

/* The complete desired element state: every apply makes the contents of
 * the service maps, backend sets and decoy sets exactly this (sending only
 * the changes). Blocked sources are only ever added by the kernel (decoy
 * hits) and removed by `unblock`. For a dual-stack service give two entries
 * (same name, one per family).
 *
 * The per-epoch maps and decoy sets come in two banks (docs/nftables.md,
 * "Two banks"): the live one holds `services`, the idle one `next`, what the
 * services will be after their next change (a boundary or the end of a
 * grace). When a later plan's `services` are exactly what the idle bank
 * holds, the apply only switches banks: a transaction of four elements,
 * whatever the number of services. */
struct rotator_plan {
	const struct rotator_service *services;
	size_t n_services;
	const struct rotator_service *next; /* NULL: the idle bank is emptied */
	size_t n_next;
	const struct rotator_addr *unblock; /* sources to remove from the blocked sets */
	size_t n_unblock;
	/* the enveloped instances (their elements: added, kept, removed like
	 * ports, in the same transaction as the service routes) */
	const struct rotator_instance *instances;
	size_t n_instances;
};

struct rotator_config {
	uint16_t nflog_group;	    /* NFLOG group decoy hits are logged to */
	uint32_t block_timeout_sec; /* how long a decoy toucher stays blocked (> 0) */
	/* TCP decoys look open: after blocking and logging the source, the SYN
	 * is redirected to this local port, where the caller runs a listener
	 * (rotator_honeypot_open(), honeypot.h) that completes the handshake.
	 * The port itself is unreachable except through that redirect.
	 * 0: decoy packets are dropped (they look filtered). UDP decoys are
	 * always dropped. Fixed for the table's life (set on creation). */
	uint16_t honeypot_port;
	/* The per-instance envelope (default-deny to and from every "mtdi*"
	 * link, opened by the plan's instances). Off: no envelope rules, a plan
	 * with instances is refused. Fixed for the table's life. */
	bool instance_envelope;
	/* NFLOG group of egress drops (prefix "mtd-egress "; "mtd-spoof " for
	 * a source address not routed via its link), != nflog_group */
	uint16_t egress_nflog_group;
	/* The caller switched IPv4 (IPv6) forwarding on for the instance links
	 * alone (it was off): forwarded packets of that family that neither
	 * arrive on nor leave by an instance link, and were not DNATed by this
	 * table, are dropped, so the host does not start routing between its
	 * other interfaces. Fixed for the table's life. */
	bool forward_guard4, forward_guard6;
};

enum {
	ROTATOR_F_PERSIST = 1 << 0, /* table has owner|persist: survives the agent */
	/* an existing `inet mtd` was found and replaced; the sources it held
	 * blocked were carried over, with the time they had left */
	ROTATOR_F_ADOPTED = 1 << 1,
	ROTATOR_F_PROGRAMMED = 1 << 2, /* the table has been created by this handle */
};

/* Opens the long-lived netlink socket. Nothing is programmed until the first
 * rotator_apply(), which creates (or adopts) the table and fills it in the
 * same transaction, so there is never an empty window. */
int rotator_new(const struct rotator_config *config, struct rotator **ret);
void rotator_free(struct rotator *r);

/* One transaction. On -ERESTART (ruleset changed under us) it retries a few
 * times by itself. On error nothing changed in the kernel. */
int rotator_apply(struct rotator *r, const struct rotator_plan *plan, struct rotator_error *err);

/* The idle bank becomes the live one, in a transaction of four elements
 * whatever the number of services, with no plan to build or compare: for a
 * caller that knows the last successful rotator_apply()'s `next` is what must
 * be in force now. -ESTALE when the rotator cannot vouch for what its banks
 * hold (nothing programmed yet, a failed apply): apply the plan instead. */
int rotator_switch(struct rotator *r, struct rotator_error *err);

/* ROTATOR_F_* */
unsigned rotator_flags(const struct rotator *r);

/* What the last successful rotator_apply() sent: it sends only the element
 * changes from the plan it applied before (the first apply, and one after an
 * unclear outcome, send everything). */
struct rotator_stats {
	size_t elements_deleted;
	size_t elements_added;
	size_t messages; /* in its transaction, 0: nothing changed, nothing sent */
	size_t bytes;
	bool full; /* built or resynchronised every element */
	/* The transaction only switched banks: the idle bank now holds the
	 * previous services, not the plan's `next`. Apply the same plan again
	 * (a second transaction) to load it. */
	bool switched;
};
void rotator_last_stats(const struct rotator *r, struct rotator_stats *ret);

/* Deletes the table (clean shutdown when asked to, tests). Fine if absent. */
int rotator_remove(struct rotator *r, struct rotator_error *err);

/* Name of the instance that owns this address in the last applied plan, or
 * NULL. For attributing egress drops (nflog.h). */
const char *rotator_instance_owner(const struct rotator *r, const struct rotator_addr *addr);

/* A source in the table's blocked sets, and how long it stays blocked. */
struct rotator_blocked {
	struct rotator_addr source;
	uint64_t expires_in_ms; /* 0: until unblocked */
};

/* The sources the kernel holds blocked now, IPv4 ones first. *ret is
 * malloc'ed (the caller frees it); NULL with *ret_n 0 when there are none or
 * there is no table. */
int rotator_blocked_list(struct rotator *r, struct rotator_blocked **ret, size_t *ret_n,
			 struct rotator_error *err);

/* Name of the service that owned a decoy port in the last applied plan, or
 * NULL. For attributing decoy hits. */
const char *rotator_decoy_owner(const struct rotator *r, uint8_t proto, uint16_t port);
