/* SPDX-License-Identifier: MIT */
#pragma once

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "schedule.h"
#include "step_error.h"

/*
 * rotator: programs the agent's private nftables table `inet mtd` from a plain
 * description (services with their current/grace public ports, backends and
 * decoys; sources to unblock). Every rotator_apply() is one atomic netlink
 * transaction. The table reports decoy hits (NFLOG) and never blocks a source
 * on its own: blocking is the caller's decision (rotator_block()). No agent types, no logging:
 * errors come back as a negative errno plus a struct step_error (common/step_error.h): its step
 * names the object the kernel refused ("service web: public ports in map svc4_0"), its detail the
 * kernel's extended-ack text or a library reason. See docs/nftables.md for the table layout.
 */

#define ROTATOR_TABLE "mtd"
#define ROTATOR_MAX_DECOYS 64
#define ROTATOR_MAX_NAME 64
/* Host ends of instance links: the envelope's static rules match every
 * interface whose name starts with this (the agent names them mtdi<N>). */
#define ROTATOR_INSTANCE_IFPREFIX "mtdi"
#define ROTATOR_MAX_EGRESS 64 /* Egress= rules per instance */
/* client_ports, knock_ports of one service at most */
#define ROTATOR_MAX_CLIENT_PORTS 65535
/* knock ports are logged with this prefix */
#define ROTATOR_KNOCK_LOG_PREFIX "mtd-knock "

struct rotator;

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
	/* Per-client doors (docs/nftables.md, "Clients"): every door of every
	 * client at this moment (grace doors included), each a public port of
	 * this service like port (same backend; duplicates, also of port and
	 * grace_port, are merged). */
	const uint16_t *client_ports;
	size_t n_client_ports; /* <= ROTATOR_MAX_CLIENT_PORTS */
	/* Knock-gated: a new connection to port, grace_port or a client port
	 * is DNATed only when its source . proto . port is admitted
	 * (rotator_admit()); otherwise it reaches the host as a closed port. */
	bool gated;
	/* UDP knock ports of this moment: a packet to one is logged to
	 * rotator_config.knock_nflog_group (prefix "mtd-knock ") and goes on
	 * (the host answers as a closed port). */
	const uint16_t *knock_ports;
	size_t n_knock_ports; /* <= ROTATOR_MAX_CLIENT_PORTS */
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
	/* Killed: its addresses are in dead4/dead6 and nothing else of it is
	 * in the table; a packet of a flow conntrack still has to them is
	 * answered at once (TCP reset, else ICMP admin-prohibited) instead of
	 * being dropped, so a client fails fast. A cut instance is in the
	 * dead sets too. An address a live instance of the plan has is left
	 * out of them. */
	bool dead;
};

/* The complete desired element state: every apply makes the contents of
 * the service maps, backend sets and decoy sets exactly this (sending only
 * the changes). Blocked sources are only ever added by rotator_block() and
 * removed by `unblock` (or their timeout). For a dual-stack service give two entries
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
	/* admissions (rotator_admit()) to remove in the same transaction: a
	 * revoked client's, at the reload that revokes it. A plan with some
	 * is never a mere switch of banks. */
	const struct rotator_admission *unadmit;
	size_t n_unadmit;
};

struct rotator_config {
	uint16_t nflog_group; /* NFLOG group decoy hits are logged to */
	/* TCP decoys look open: after logging the hit, the SYN is redirected
	 * to this local port, where the caller runs a listener
	 * (rotator_honeypot_open(), rotator.h) that completes the handshake
	 * and tells whom it accepted. The port itself is unreachable except
	 * through that redirect. 0: decoy packets are logged and dropped (they
	 * look filtered). UDP decoys are always logged and dropped. Fixed for
	 * the table's life (set on creation). */
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
	/* NFLOG group packets to a knock port are logged to (prefix
	 * ROTATOR_KNOCK_LOG_PREFIX), != nflog_group. 0: no knock rule (plans may
	 * still carry knock ports: they are then only held). Fixed for the
	 * table's life. */
	uint16_t knock_nflog_group;
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
int rotator_apply(struct rotator *r, const struct rotator_plan *plan, struct step_error *err);

/* The idle bank becomes the live one, in a transaction of four elements
 * whatever the number of services, with no plan to build or compare: for a
 * caller that knows the last successful rotator_apply()'s `next` is what must
 * be in force now. -ESTALE when the rotator cannot vouch for what its banks
 * hold (nothing programmed yet, a failed apply): apply the plan instead. */
int rotator_switch(struct rotator *r, struct step_error *err);

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
int rotator_remove(struct rotator *r, struct step_error *err);

/* Name of the instance that owns this address in the last applied plan, or
 * NULL. For attributing egress drops (rotator.h). */
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
			 struct step_error *err);

/* At most this many sources per rotator_block() call (-E2BIG beyond). */
#define ROTATOR_MAX_BLOCK 4096

/*
 * Block sources: one transaction that puts each into blocked4/blocked6 with
 * its own timeout (expires_in_ms, 0: until unblocked). A source already
 * blocked gets the new timeout, longer or shorter: it is deleted and added
 * again in the same transaction, so it is never unblocked in between. A
 * source given twice takes its last entry. n == 0 does nothing and returns 0.
 * Needs the table: -ENOENT from the kernel when there is none (apply a plan
 * first; a table a previous run left is written as it is, and its blocks
 * carry over when the first apply adopts it). -EINVAL for a family other
 * than AF_INET/AF_INET6 (nothing sent). Blocked
 * sources are dropped in prerouting before anything else of the table, except
 * loopback and the end of a honeypot handshake. On error nothing changed.
 */
int rotator_block(struct rotator *r, const struct rotator_blocked *sources, size_t n,
		  struct step_error *err);

/*
 * Blocked ranges (docs/nftables.md, "Blocked ranges"): ranges the caller
 * blocks for a time (a fleet's decisions, e.g. 192.0.2.0/24), in the
 * interval sets ranges4/ranges6, dropped in prerouting next to blocked4/6.
 * The rotator keeps every range in force with its end; overlapping ranges
 * are programmed as disjoint segments, each until the latest end of the
 * ranges covering it, so removing one range never unblocks an address
 * another still covers. `never` (NeverBlock=) is cut out of every segment:
 * an address in it is never blocked, whatever range covers it.
 *
 * One transaction per call: the unbans (exactly these ranges' decisions go;
 * one not there is no error), then the bans (a range given again takes its
 * new time, unless it is within 2 s of the old one: the same decision
 * resent). With no bans and unbans the segments are computed again (after
 * `never` changed). -EINVAL for a bad family, a prefix longer than the
 * family's, a ban without time (nothing sent); -E2BIG past
 * ROTATOR_MAX_RANGES ranges in force; -ENOENT from the kernel without a
 * table. On error nothing changed. A table adopted by the first apply keeps
 * its segments with the time they had left (an unban of a range then takes
 * the part of those it covers).
 */
struct rotator_range {
	struct rotator_addr addr; /* host bits are ignored */
	unsigned prefix_len;	  /* 0..32 or 0..128 */
	uint64_t expires_in_ms;	  /* bans: > 0 */
};
#define ROTATOR_MAX_RANGES 65536
int rotator_block_ranges(struct rotator *r, const struct rotator_range *bans, size_t n_bans,
			 const struct rotator_range *unbans, size_t n_unbans,
			 const struct rotator_range *never, size_t n_never, struct step_error *err);
/* ranges in force, and the disjoint segments programmed for them */
void rotator_ranges_count(const struct rotator *r, size_t *ret_ranges, size_t *ret_segments);

/*
 * Knock admissions (docs/nftables.md, "Clients"): a source allowed to open
 * new connections to one gated door (rotator_service.gated) for a while. The
 * sets admitted4/admitted6 hold source . proto . port with a timeout; only
 * these calls change them (a plan never does), so an apply keeps them.
 */
struct rotator_admission {
	struct rotator_addr source;
	uint8_t proto;		/* the door's protocol */
	uint16_t port;		/* the door */
	uint64_t expires_in_ms; /* > 0 */
};

/* At most this many admissions per call (-E2BIG beyond). */
#define ROTATOR_MAX_ADMIT 4096

/* Adds (or refreshes) admissions in one transaction: one already there takes
 * the new timeout (destroyed and added again in the same transaction, never
 * out in between); one given twice takes its last entry. n == 0 does
 * nothing. -EINVAL for a bad family, protocol, port 0 or timeout 0 (nothing
 * sent); -ENOENT from the kernel without a table. On error nothing changed. */
int rotator_admit(struct rotator *r, const struct rotator_admission *a, size_t n,
		  struct step_error *err);
/* Removes admissions in one transaction (revocation); ones not there (or
 * expired) are no error; expires_in_ms is ignored. */
int rotator_unadmit(struct rotator *r, const struct rotator_admission *a, size_t n,
		    struct step_error *err);

/* Name of the service that owned a decoy port in the last applied plan, or
 * NULL. For attributing decoy hits. */
const char *rotator_decoy_owner(const struct rotator *r, uint8_t proto, uint16_t port);

/* Where a source's flows went: a dump of the connection tracking table
 * (ctnetlink over libmnl), keeping the flows whose original source is the
 * given address and reporting each one's reply source — the address the flow
 * really reached after the agent's DNAT (e.g. an instance). Used to link a
 * decoy hit to the instances that source reached before. */

/* Up to max distinct addresses into ret_found, count in *ret_n. */
int rotator_conntrack_reached(const struct rotator_addr *source, struct rotator_addr *ret_found,
			      size_t max, size_t *ret_n);

/* How many flows that came through a DNAT still lead to addr (their reply
 * source): what a draining instance still serves. TCP flows in TIME_WAIT or
 * CLOSE are over and not counted; flows not DNATed (the agent's own health
 * probes) are not either. A whole dump of the table of the caller's network
 * namespace, filtered here. */
int rotator_conntrack_count_to(const struct rotator_addr *addr, size_t *ret_count);

/* The same flows deleted from conntrack (a killed instance's, whose clients
 * never came back to be reset): how many were deleted. A flow that ended
 * meanwhile (ENOENT) is not an error. */
int rotator_conntrack_end_to(const struct rotator_addr *addr, size_t *ret_ended);
/* Cut the flows that came in through a DNAT to one of these public ports
 * of protocol proto (both families): revoked client doors. *ret_cut: how
 * many were deleted (a flow that ended meanwhile counts as cut). */
int rotator_conntrack_cut(uint8_t proto, const uint16_t *ports, size_t n_ports, size_t *ret_cut);
/* Cut the DNATed flows from each admission's source to its door (a revoked
 * client's, by whom it admitted: a door it shared with others too). */
int rotator_conntrack_cut_admitted(const struct rotator_admission *a, size_t n, size_t *ret_cut);

/* Remove every admission (rotator_admit) to one of these doors, both
 * families, in one transaction; *ret_n: how many. */
int rotator_unadmit_ports(struct rotator *r, uint8_t proto, const uint16_t *ports, size_t n_ports,
			  size_t *ret_n, struct step_error *err);

/*
 * The honeypot listener that makes TCP decoys look open. With
 * rotator_config.honeypot_port set, the table logs a SYN to a TCP decoy and
 * redirects it to this listener on the same host, so the scanner gets a
 * SYN-ACK (the port looks open) instead of silence. The listener holds no
 * data and serves nothing: the caller drains it with
 * rotator_honeypot_accept_all(), which closes every connection at once and
 * says whose handshake completed: a source that answered the SYN-ACK owns its
 * address (a spoofed SYN's victim never does), so that is the source a caller
 * may block. The table drops any traffic to the port that did not come
 * through the redirect, so the listener is not a service of its own.
 */

struct rotator_honeypot;

/* A dual-stack TCP listener on [::]:port (IPV6_V6ONLY off; IPv4 clients
 * arrive as v4-mapped). Non-blocking, close-on-exec. port != 0. */
int rotator_honeypot_open(uint16_t port, struct rotator_honeypot **ret);
void rotator_honeypot_free(struct rotator_honeypot *h);

/* For the caller's event loop: readable when connections are pending. */
int rotator_honeypot_fd(const struct rotator_honeypot *h);

/* A connection the honeypot accepted: its source completed the handshake. */
struct rotator_honeypot_peer {
	struct rotator_addr source; /* v4-mapped IPv6 as AF_INET */
	uint16_t decoy_port;	    /* where it was sent before the redirect; 0: unknown */
};

/* Accept pending connections and close each at once (with a reset, so
 * nothing lingers), reporting each into ret_peers: at most max_peers a call
 * (call again while the fd is readable), so none is closed unreported. A
 * caller that only drains passes NULL, 0 (at most 1024 a call); ret_n_peers
 * may be NULL. Returns how many were closed (0 if none). An error other than
 * "nothing pending" ends the call: with connections closed before it, their
 * count is returned (the next call meets the error again); with none, the
 * negative errno, out-parameters untouched. */
int rotator_honeypot_accept_all(struct rotator_honeypot *h, struct rotator_honeypot_peer *ret_peers,
				size_t max_peers, size_t *ret_n_peers);

/*
 * Decoy hits as the agent learns of them: the decoy rule of `inet mtd` logs
 * every hit to an NFLOG group (with the prefix "mtd-decoy "); this listens on
 * that group over its own netlink socket and parses each logged packet into
 * (source address, protocol, port). Map the port to a service with
 * rotator_decoy_owner(). Nothing is blocked: the source of a single packet
 * may be forged (a spoofed SYN, any UDP datagram); block with rotator_block()
 * what the caller trusts (e.g. a peer rotator_honeypot_accept_all() returned).
 */

struct rotator_nflog;

struct rotator_hit {
	struct rotator_addr source;
	uint8_t proto; /* IPPROTO_TCP or IPPROTO_UDP */
	uint16_t port; /* the decoy port that was touched (host order) */
};

/* Bind NFLOG group (same as rotator_config.nflog_group) in this netns.
 * -EBUSY if another listener has the group. */
int rotator_nflog_open(uint16_t group, struct rotator_nflog **ret);
void rotator_nflog_free(struct rotator_nflog *l);

/* Non-blocking, close-on-exec fd for the caller's event loop. */
int rotator_nflog_fd(const struct rotator_nflog *l);

/* Wait up to timeout_ms for a hit: 1 readable, 0 timeout, negative errno. */
int rotator_nflog_wait(struct rotator_nflog *l, int timeout_ms);

/* Parse what is queued (does not block): up to n hits into hits, count in
 * *ret_n (0 if nothing was queued). Packets that are not decoy hits are
 * skipped. -ENOBUFS means the kernel dropped log messages (overrun). */
int rotator_nflog_read(struct rotator_nflog *l, struct rotator_hit *hits, size_t n, size_t *ret_n);

/*
 * Egress drops of the instance envelope: open a listener on
 * rotator_config.egress_nflog_group and read them with this instead. The
 * sender is the link it came in on (ifindex, the host end "mtdi<N>"), never
 * its source address, which an instance can write (a spoofed source, one not
 * routed via that link, is flagged).
 */
struct rotator_egress_drop {
	struct rotator_addr source, destination;
	uint8_t proto;	  /* any IP protocol (ICMP too) */
	uint16_t port;	  /* destination port for TCP/UDP/SCTP/UDP-Lite, else 0 */
	uint32_t ifindex; /* the link it came in on, 0 if not known */
	bool spoofed;	  /* logged by the anti-spoofing rule ("mtd-spoof ") */
};

/* Like rotator_nflog_read(), for a listener on the egress group. */
int rotator_nflog_read_egress(struct rotator_nflog *l, struct rotator_egress_drop *drops, size_t n,
			      size_t *ret_n);

/*
 * Knocks and first connections (rotator_config.knock_nflog_group): a UDP
 * datagram to a knock port (prefix "mtd-knock ", with its payload) or the
 * first new flow of a source to an admitted door in the epoch (prefix
 * "mtd-connect "). Open the listener with rotator_nflog_open_payload() so
 * whole knocks are copied.
 */
#define ROTATOR_KNOCK_PAYLOAD_MAX 256
enum rotator_knock_kind {
	ROTATOR_KNOCK_DATAGRAM,
	ROTATOR_KNOCK_CONNECTION,
};
struct rotator_knock {
	enum rotator_knock_kind kind;
	struct rotator_addr source;
	uint8_t proto;	/* IPPROTO_UDP for a knock, the door's for a connection */
	uint16_t port;	/* the destination: knock port, or door */
	uint16_t len;	/* payload bytes (a knock), at most ROTATOR_KNOCK_PAYLOAD_MAX */
	bool truncated; /* the datagram carried more than was copied */
	uint8_t payload[ROTATOR_KNOCK_PAYLOAD_MAX];
};
/* rotator_nflog_open() copying up to the IP header plus a UDP header plus
 * ROTATOR_KNOCK_PAYLOAD_MAX bytes of every packet, each sent on at once (the
 * kernel's default gathers up to 100 packets or a second). */
int rotator_nflog_open_payload(uint16_t group, struct rotator_nflog **ret);
/* Like rotator_nflog_read(), for a listener on the knock group. */
int rotator_nflog_read_knocks(struct rotator_nflog *l, struct rotator_knock *knocks, size_t n,
			      size_t *ret_n);
