/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <systemd/sd-event.h>

#include "knock.h"
#include "policy.h"
#include "rotator.h"
#include "step_error.h"

/* Which ports are already bound in the agent's network namespace (TCP
 * listeners; UDP sockets with a local port, connected or not: see
 * host_ports.c), over NETLINK_SOCK_DIAG, else from /proc/net: the schedule
 * skips them so a public port never shadows a program that listens on the
 * host. */

struct host_ports;

int host_ports_scan(struct host_ports **ret_ports);
bool host_ports_is_bound(const struct host_ports *ports, enum policy_proto proto, uint16_t port);
void host_ports_free(struct host_ports *ports);

/* Where host_ports_scan_from() reads: sock_diag with /proc/net as the
 * fallback (what host_ports_scan does), or /proc/net alone (benches). */
enum host_ports_source {
	HOST_PORTS_SOCK_DIAG,
	HOST_PORTS_PROC,
};
int host_ports_scan_from(enum host_ports_source source, struct host_ports **ret_ports);
/* Whether the scan read a /proc/net table (slow: /proc/net/tcp walks the
 * whole established hash), because sock_diag did not answer or was not
 * asked. */
bool host_ports_from_proc(const struct host_ports *ports);

/* Exposed for unit tests. */
int host_ports_new(struct host_ports **ret_ports);
/* Parse one /proc/net/{tcp,tcp6,udp,udp6} table. */
int host_ports_parse_table(struct host_ports *ports, enum policy_proto proto, const char *text);
/* Parse one datagram of a sock_diag dump (buffer aligned like struct
 * nlmsghdr): 1 at its NLMSG_DONE, 0 when more is to come, else a negative
 * errno (the kernel's NLMSG_ERROR, or -EBADMSG for a malformed message). */
int host_ports_parse_diag(struct host_ports *ports, enum policy_proto proto, const void *buffer,
			  size_t size);

/* Whom a decoy hit may block, and for how long (docs/nftables.md, "Who a
 * decoy blocks"). The kernel only reports hits; every block is decided here:
 * never a NeverBlock= source, a TCP source only once it completed a
 * handshake (it owns its address), UDP sources (which cannot prove theirs) at
 * most udp_limit per interval, and a source blocked again within its
 * service's window for longer each time. */

struct rotator_addr;

/* One service's rules (its [Rotation] keys). */
struct decoy_rules {
	const struct cidr *never_block;
	size_t n_never_block;
	uint64_t block_usec;  /* DecoyBlock=; 0 records hits without blocking */
	unsigned factor;      /* DecoyBlockFactor= */
	uint64_t max_usec;    /* DecoyBlockMax= */
	uint64_t window_usec; /* DecoyRepeatWindow= */
};

/* The host's (the global file's [Decoys], and the agent's options). */
struct decoy_limits {
	const struct cidr *never_block;
	size_t n_never_block;
	unsigned udp_limit;	    /* UDP hits block at most this many sources ... */
	uint64_t udp_interval_usec; /* ... per this long */
	bool handshake_possible;    /* a honeypot completes TCP handshakes */
	bool monitor;		    /* decide and record, block nothing */
};

enum decoy_evidence {
	DECOY_EVIDENCE_UDP,	      /* a datagram: its source may be forged */
	DECOY_EVIDENCE_TCP_SYN,	      /* a SYN: its source may be forged */
	DECOY_EVIDENCE_TCP_HANDSHAKE, /* the honeypot accepted it: the source is real */
};

enum decoy_verdict {
	DECOY_BLOCK,
	DECOY_AWAIT_HANDSHAKE, /* TCP: blocked once the honeypot accepts it */
	DECOY_NO_HANDSHAKE,    /* TCP without a honeypot: can never prove its source */
	DECOY_NEVER_BLOCK,     /* NeverBlock= of the service or the host */
	DECOY_RECORD_ONLY,     /* DecoyBlock=0 */
	DECOY_UDP_LIMIT,       /* UDP hits blocked udp_limit sources this interval */
	DECOY_MONITOR,	       /* would block (block_usec, strike), monitor mode */
};

struct decoy_decision {
	enum decoy_verdict verdict;
	uint64_t block_usec; /* DECOY_BLOCK, DECOY_MONITOR */
	unsigned strike;     /* 1: first block; n: the nth within each other's window */
};

struct decoy_blocks;

int decoy_blocks_new(struct decoy_blocks **ret);
void decoy_blocks_free(struct decoy_blocks *blocks);
/* The limits are copied, the never_block list is borrowed (it lives with the
 * policy set's globals). Counts of the UDP interval carry over. */
int decoy_blocks_set_limits(struct decoy_blocks *blocks, const struct decoy_limits *limits);
struct decoy_decision decoy_blocks_decide(const struct decoy_blocks *blocks,
					  const struct decoy_rules *rules,
					  const struct rotator_addr *source,
					  enum decoy_evidence evidence, uint64_t now_usec);
/* A block was made (or, in monitor mode, would have been): the source's
 * strike, and for UDP evidence a place in the interval's count. */
void decoy_blocks_record(struct decoy_blocks *blocks, const struct rotator_addr *source,
			 const struct decoy_rules *rules, const struct decoy_decision *decision,
			 enum decoy_evidence evidence, uint64_t now_usec);
/* The global file's NeverBlock= covers this source (shared decisions, which
 * no service owns, answer to it alone). */
bool decoy_blocks_never_blocks(const struct decoy_blocks *blocks,
			       const struct rotator_addr *source);
/* The global file's NeverBlock= list (borrowed), for ranges cut around it. */
const struct cidr *decoy_blocks_never_block_list(const struct decoy_blocks *blocks, size_t *ret_n);
/* An operator unblocked it: its next block is a first one again. */
void decoy_blocks_forget(struct decoy_blocks *blocks, const struct rotator_addr *source);
/* The action as audit records and status name it. */
const char *decoy_blocks_verdict_name(enum decoy_verdict verdict);
const char *decoy_blocks_evidence_name(enum decoy_evidence evidence);
/* {"udp_limit", "udp_interval_usec", "udp_blocked_in_interval", "offenders", "monitor"} */
json_t *decoy_blocks_status(const struct decoy_blocks *blocks, uint64_t now_usec);

/* What the agent checks of a knock (docs/schedule.md, "Knock packets")
 * besides its MAC, which knock.c verifies with the client's key: a rate per
 * source address (before any MAC work), the time within the window, the nonce
 * not seen within the window, the destination the client's knock port of the
 * epoch (or of the previous one while it is in grace), the admit field the
 * packet's source. Pure: no I/O, times are passed in. */

/* Sources whose rate is followed: a set-associative table (sets x ways). A
 * new source takes the way of its set whose bucket holds the most tokens (a
 * full bucket says nothing a fresh one would not), else the least recently
 * seen: so a source is never refused for want of room, and a flood from many
 * (spoofable) addresses only gives each its own KnockRate=, as it would with
 * an unbounded table. */
#define KNOCK_GUARD_RATE_SETS 512
#define KNOCK_GUARD_RATE_WAYS 4
/* Nonces remembered per client: each until its knock's time plus the window
 * (after that the time check refuses the packet anyway). A client whose
 * nonces of the window are all held is refused (KNOCK_GUARD_REPLAY_FULL)
 * rather than a nonce forgotten: fail closed, and one client's knocks never
 * take room from another's. */
#define KNOCK_GUARD_NONCES_PER_CLIENT 16

struct knock_guard_limits {
	unsigned rate;		 /* KnockRate= N ... */
	uint64_t rate_span_usec; /* ... per SPAN, per source address */
	uint64_t window_usec;	 /* KnockWindow=: allowed |knock time - agent time| */
};

/* Why a knock was refused, in the order they are checked. */
enum knock_guard_reason {
	KNOCK_GUARD_ADMIT,
	KNOCK_GUARD_RATE,	    /* the source sent more than KnockRate= */
	KNOCK_GUARD_MALFORMED,	    /* does not parse (knock.c) */
	KNOCK_GUARD_UNKNOWN_CLIENT, /* no key for its client name (knock.c) */
	KNOCK_GUARD_BAD_MAC,	    /* the MAC is not the client's (knock.c) */
	KNOCK_GUARD_TIME,	    /* more than KnockWindow= from the agent's clock */
	KNOCK_GUARD_REPLAY,	    /* its nonce was seen within the window */
	KNOCK_GUARD_WRONG_PORT,	    /* not the client's knock port of the epoch or grace */
	KNOCK_GUARD_WRONG_SOURCE,   /* its admit address is not the packet's source */
	KNOCK_GUARD_REPLAY_FULL,    /* the client's nonces of the window are all held */
	KNOCK_GUARD_FAILED,	    /* the admission's transaction failed (knock.c) */
	KNOCK_GUARD_N_REASONS,
};

/* A client's knock port and door of one epoch. */
struct knock_guard_epoch {
	uint64_t epoch;
	uint16_t knock_port;
	uint16_t door;
	uint64_t until_usec; /* realtime the admission ends: the epoch's end plus Grace= */
};

struct knock_guard_admission {
	uint64_t epoch;
	uint16_t door;
	uint64_t until_usec;
};

struct knock_guard;

int knock_guard_new(const struct knock_guard_limits *limits, struct knock_guard **ret);
void knock_guard_free(struct knock_guard *guard);
/* A reload: the new limits; sources' buckets and nonces carry over. */
void knock_guard_set_limits(struct knock_guard *guard, const struct knock_guard_limits *limits);

/* Takes a token of source's bucket: KNOCK_GUARD_ADMIT, or KNOCK_GUARD_RATE
 * when it has none. mono_usec: CLOCK_MONOTONIC. */
enum knock_guard_reason knock_guard_rate(struct knock_guard *guard,
					 const struct rotator_addr *source, uint64_t mono_usec);

/* The decision for a parsed knock whose MAC was verified, sent from source
 * to port; epochs: the client's current epoch, then the previous one while
 * its grace lasts. now_usec: CLOCK_REALTIME. On KNOCK_GUARD_ADMIT the nonce
 * is remembered and ret says which door of which epoch, until when. The
 * highest clock seen is kept: a knock whose window ended before it is
 * refused, so a nonce forgotten is never valid again after the clock is set
 * back. */
enum knock_guard_reason knock_guard_decide(struct knock_guard *guard, const struct knock *knock,
					   const struct rotator_addr *source, uint16_t port,
					   const struct knock_guard_epoch *epochs, size_t n_epochs,
					   uint64_t now_usec, struct knock_guard_admission *ret);

/* Counts a decision. For a refusal: the number of refusals of that reason to
 * summarise now (this one and those held since the last summary), at most
 * once per second per reason; 0 means held for later (knock_guard_flush). */
uint64_t knock_guard_count(struct knock_guard *guard, enum knock_guard_reason reason,
			   uint64_t mono_usec);
/* The refusals held for reason whose summary is due (a second after the
 * last one), taken; 0 if none. *ret_next_usec: the earliest monotonic time
 * another is due (0: nothing held). */
uint64_t knock_guard_flush(struct knock_guard *guard, enum knock_guard_reason reason,
			   uint64_t mono_usec, uint64_t *ret_next_usec);
uint64_t knock_guard_counted(const struct knock_guard *guard, enum knock_guard_reason reason);
/* "admitted", "rate-limited", "malformed", ... as audit records, status and
 * metrics name them. */
const char *knock_guard_reason_name(enum knock_guard_reason reason);
/* {"admitted", "refused": {reason: n}, "sources", "clients", "nonces"} */
json_t *knock_guard_status(const struct knock_guard *guard);

/* A knock as the receiver handles it (knock.c): a datagram logged by the
 * knock rule, checked against the services whose knock port it reached. The
 * rotation provides what it knows through these operations, so the receiver
 * needs neither its tables nor the kernel. */

/* A service that gates its doors with knocks. */
struct knock_service {
	const char *name;
	const char *host_id;
	uint8_t proto;		   /* its doors' protocol */
	struct knock_guard *guard; /* its KnockRate=, KnockWindow=, nonces, counts */
};

/* One client of a service: its key, and its knock port and door of the
 * current epoch, then of the previous one while in grace. */
struct knock_client {
	const uint8_t *key;
	size_t key_len;
	struct knock_guard_epoch epochs[2];
	size_t n_epochs;
};

struct knock_receiver_ops {
	/* The services some client of which has port as its knock port now
	 * (or in grace): up to max into ret, returns how many. */
	size_t (*services_at)(void *userdata, uint16_t port, const struct knock_service **ret,
			      size_t max);
	/* The client of that name of service: 0, or -ENOENT. */
	int (*client)(void *userdata, const struct knock_service *service, const char *client,
		      struct knock_client *ret);
	/* Admit source to door until until_usec (realtime), one transaction. */
	int (*admit)(void *userdata, const struct knock_service *service, const char *client,
		     const struct rotator_addr *source, uint16_t door, uint64_t until_usec,
		     struct step_error *ret_error);
	void *userdata;
};

struct knock_datagram {
	struct rotator_addr source;
	uint16_t port; /* its destination: a knock port */
	const uint8_t *payload;
	size_t len;
};

/* The services a knock is checked against when several have the port as a
 * knock port at the moment (their ranges overlap): the first this many in
 * the set's order; a client of a further one cannot knock on that port
 * this epoch (refused, unknown-client). */
#define KNOCK_RECEIVER_MAX_SERVICES 64

struct knock_outcome {
	enum knock_guard_reason reason;
	/* the service it was checked for; NULL: no service has this knock port */
	const struct knock_service *service;
	char client[SCHEDULE_MAX_CLIENT_NAME + 1]; /* "" until it parsed */
	struct knock_guard_admission admission;	   /* KNOCK_GUARD_ADMIT */
	/* refusals of reason to summarise now (knock_guard_count) */
	uint64_t summarise;
	struct step_error error; /* KNOCK_GUARD_FAILED: why the admission failed */
};

/* Checks the datagram in the order of docs/schedule.md: the rate of its
 * source (before any parsing or MAC work), the packet, the client's key and
 * MAC (constant time), then knock_guard_decide(); admits on success; counts
 * the outcome in the service's guard. Never answers the sender. */
void knock_receiver_handle(const struct knock_receiver_ops *ops, const struct knock_datagram *d,
			   uint64_t real_usec, uint64_t mono_usec, struct knock_outcome *ret);

/* The knock group's listener (knock_listener.c): reads knocks and first
 * connections from NFLOG, keeps a guard per gated service, hands knocks to
 * knock_receiver_handle(), summarises refusals at most once a second per
 * service and reason, tells which client a first connection to a door belongs
 * to, and remembers the clients seen for the status. The rotation's hooks
 * (rotation.h) are called with these events. */

struct rotation_client_event;
struct knock_listener_hooks {
	void (*on_admitted)(const struct rotation_client_event *event, void *userdata);
	/* count refusals of reason ("bad-mac", ...) since the last summary */
	void (*on_refused)(const char *service, const char *reason, uint64_t count, void *userdata);
	void (*on_connected)(const struct rotation_client_event *event, void *userdata);
	void *userdata;
};

/* Admissions remembered to name the client of a first connection:
 * KNOCK_LISTENER_ADMISSIONS, the expired and then the soonest to expire
 * replaced first (a connection whose admission was replaced is reported
 * without its client). */
#define KNOCK_LISTENER_ADMISSIONS 65536

struct knock_listener;

/* group 0: no socket (knock_listener_handle() only, for tests and benches). */
int knock_listener_new(sd_event *event, uint16_t group, const struct knock_receiver_ops *ops,
		       const struct knock_listener_hooks *hooks, struct knock_listener **ret);
void knock_listener_free(struct knock_listener *listener);
/* The guard of a gated service, made or given the new limits (a reload
 * keeps its sources, nonces and counts). NULL without memory. */
struct knock_guard *knock_listener_service(struct knock_listener *listener, const char *service,
					   const struct knock_guard_limits *limits);
/* The service is gone, or no longer gated: its guard, admissions and clients
 * are forgotten. */
void knock_listener_drop_service(struct knock_listener *listener, const char *service);
/* A client was revoked: its admissions and its line in the status go. */
void knock_listener_drop_client(struct knock_listener *listener, const char *service,
				const char *client);
/* After a reload: the services keep_service refuses and the clients
 * keep_client refuses are forgotten (their guards, admissions, lines). */
void knock_listener_retain(
    struct knock_listener *listener, bool (*keep_service)(const char *service, void *userdata),
    bool (*keep_client)(const char *service, const char *client, void *userdata), void *userdata);
/* The live admissions the listener made for a client (for a revocation:
 * rotator_unadmit() them, cut their flows), up to max into ret; how many. An
 * admission whose place in the table was taken is not among them (it
 * expires with its epoch's grace). */
size_t knock_listener_admissions(const struct knock_listener *listener, const char *service,
				 const char *client, uint64_t real_usec,
				 struct rotator_admission *ret, size_t max);
/* One record as read from the group. */
void knock_listener_handle(struct knock_listener *listener, const struct rotator_knock *knock,
			   uint64_t real_usec, uint64_t mono_usec);
/* Summaries due now (also run by the listener's timer). */
void knock_listener_flush(struct knock_listener *listener, uint64_t mono_usec);
/* {"services": [{"service", "admitted", "refused": {...}, ...}], "clients":
 * [{"service", "client", "admitted", "last_admitted_usec", "last_admitted_source",
 * "last_connected_usec", "last_connected_source", "last_door"}]} */
json_t *knock_listener_status(const struct knock_listener *listener);
/* Per-client services (clients.c; docs/mtd.policy.5, ClientKeys=). */
#include "schedule.h"
#include "step_error.h"

#define ROTATION_CLIENT_CACHE 4 /* epochs of doors kept per client */

struct rotation_client {
	char *name;
	uint8_t *key;
	size_t key_len;
	/* doors and knock ports of the last epochs computed */
	uint64_t cache_epoch[ROTATION_CLIENT_CACHE];
	uint16_t cache_door[ROTATION_CLIENT_CACHE], cache_knock[ROTATION_CLIENT_CACHE];
	uint8_t cache_valid; /* bit per slot */
};

struct service_clients {
	struct rotation_client *clients; /* sorted by name */
	size_t n;
	uint8_t decoy_key[32];	  /* random, this run only: the decoys' stream */
	struct schedule_mac *mac; /* borrowed from the rotation */
	char host_id[SCHEDULE_MAX_HOST_ID + 1];
};

/* What the rotator programs for a per-client service at one moment. */
struct client_ports {
	uint16_t *doors; /* every client's door, and its previous one in grace; unique */
	size_t n_doors;
	uint16_t *knocks; /* knock ports, the same way */
	size_t n_knocks;
	bool grace;
	uint64_t epoch;
};

/* The clients of p's ClientKeys= with host_id (NULL: none known, an error
 * saying to set HostId=). */
int rotation_clients_load(const struct policy *p, const char *host_id, struct service_clients **ret,
			  struct step_error *ret_error);
void rotation_clients_free(struct service_clients *sc);
const struct rotation_client *rotation_clients_find(const struct service_clients *sc,
						    const char *name);
/* Client c's doors and knock ports for up to ROTATION_CLIENT_CACHE epochs,
 * from its cache or computed (doors skip what exclude excludes). */
int rotation_client_ports_at(struct service_clients *sc, const struct policy *p,
			     struct schedule_mac *mac, struct rotation_client *c,
			     const uint64_t *epochs, size_t n, schedule_exclude_fn exclude,
			     void *userdata, uint16_t *ret_doors, uint16_t *ret_knocks);
/* The service at now_usec: the doors and knock ports into ret_ports (its
 * memory reused), and a schedule result whose port is a door and whose
 * decoys are none of any client's doors or knock ports (previous, current,
 * next epoch) nor excluded. */
int rotation_clients_compute(struct service_clients *sc, const struct policy *p, uint64_t now_usec,
			     schedule_exclude_fn exclude, void *userdata,
			     struct client_ports *ret_ports, struct schedule_result *ret_result);
void rotation_client_ports_free(struct client_ports *ports);

/* host_id.c: the textual form of the host's public address: the first global
 * IPv4 address of the interface of the IPv4 default route, else the first
 * global IPv6 address of the interface of the IPv6 default route (rtnetlink).
 * -EADDRNOTAVAIL when there is none. */
int rotation_default_host_id(char *buf, size_t size);
