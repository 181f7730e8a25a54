/* SPDX-License-Identifier: MIT */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "metric.h"
#include "policy.h"
#include "step_error.h"

/* Port rotation as the agent runs it: the keyed schedule of every service,
 * one nftables transaction per boundary (rotator/), timers on CLOCK_REALTIME
 * re-armed after clock jumps, and decoy hits read from NFLOG. */

/* Whether the wall clock can be trusted (docs/schedule.md, "Clock drift").
 * Every port is a function of the wall clock: the kernel's synchronisation
 * state (adjtimex(2)) is read at start and at every boundary and held
 * against a bound on its estimated error. */

/* What adjtimex(2) says, with modes 0 (a read; nothing is changed). */
struct clock_sync {
	int status;	       /* the STA_* bits of struct timex */
	bool time_error;       /* adjtimex returned TIME_ERROR */
	int64_t esterror_usec; /* estimated error */
	int64_t maxerror_usec; /* maximum error */
};

enum clock_trust_state {
	CLOCK_TRUSTED,		 /* synchronised, estimated error within the bound */
	CLOCK_UNSYNCHRONISED,	 /* TIME_ERROR or STA_UNSYNC */
	CLOCK_ERROR_ABOVE_BOUND, /* synchronised, but the estimated error exceeds the bound */
	CLOCK_STATE_UNREADABLE,	 /* adjtimex (or the injected file) failed */
};

#define CLOCK_TRUST_REASON_MAX (STEP_ERROR_FORMAT_MAX + 64)

struct clock_trust {
	uint64_t max_error_usec;
	const char *state_file; /* tests: read "STATUS ESTERROR MAXERROR" here instead */
	enum clock_trust_state state;
	struct clock_sync sync;
	char reason[CLOCK_TRUST_REASON_MAX];
	uint64_t checked_usec; /* realtime of the last check */
	uint64_t since_usec;   /* realtime of the last change of state (0: none yet) */
	uint64_t checks, changes;
};

/* Pure: the state of these values against the bound, and one line saying
 * why into reason. */
enum clock_trust_state clock_trust_classify(const struct clock_sync *sync, uint64_t max_error_usec,
					    char *reason, size_t size);
const char *clock_trust_state_name(enum clock_trust_state state);

/* The kernel's state now: adjtimex(2), or with state_file (tests) that file,
 * one line of three integers "STATUS ESTERROR MAXERROR" (struct timex's
 * status word, esterror and maxerror in microseconds). The one place the two
 * differ. On failure ret_error says where and why. */
int clock_trust_read(const char *state_file, struct clock_sync *ret_sync,
		     struct step_error *ret_error);

/* Starts trusted (so only an untrusted first check is a change). */
void clock_trust_init(struct clock_trust *trust, uint64_t max_error_usec, const char *state_file);
/* Read and classify; true when the state differs from the last one. */
bool clock_trust_check(struct clock_trust *trust);
/* The values of the last check, for an audit record. */
json_t *clock_trust_fields(const struct clock_trust *trust);
/* The fields above and the counts, for the agent's status. */
json_t *clock_trust_status(const struct clock_trust *trust);

struct rotation;

/* A decoy was touched (on_decoy_hit), or a source was blocked for it
 * (on_decoy_block; docs/nftables.md, "Who a decoy blocks"). */
struct rotation_decoy_event {
	const char *service; /* NULL: a decoy no service owns any more */
	const char *source;
	const char *proto; /* "tcp", "udp" */
	uint16_t port;
	const char *evidence; /* "udp", "tcp-syn" (may be forged), "tcp-handshake" */
	/* "blocked", "blocked-once-handshake-completes", "not-blocked-..." */
	const char *action;
	uint64_t block_usec; /* blocked (or, simulated, would be) this long */
	unsigned strike;     /* the source's nth block within its window */
	bool simulated;	     /* monitor mode: decided, not done */
	const char *error;   /* on_decoy_block: the block failed, this is why */
};

/* A client was admitted by its knock (on_client_admitted), or made its first
 * connection of the epoch to its door (on_client_connected); docs/schedule.md,
 * "Knock packets". */
struct rotation_client_event {
	const char *service;
	const char *client;
	const char *source;
	uint16_t door;
	uint64_t epoch;
	uint64_t until_usec; /* the admission ends (realtime) */
	const char *error;   /* on_client_admitted: the admission failed, this is why */
};

struct rotation_hooks {
	/* A packet reached a decoy port (its source may be forged).
	 * reached_instances: instances it has flows to (conntrack). Called from
	 * the event loop. */
	void (*on_decoy_hit)(const struct rotation_decoy_event *hit,
			     const char *const *reached_instances, size_t n_reached,
			     void *userdata);
	/* A source was blocked (a UDP hit within the bound, or a completed TCP
	 * handshake), or would have been (simulated), or the block failed. */
	void (*on_decoy_block)(const struct rotation_decoy_event *block, void *userdata);
	/* The realtime clock was set; every boundary has been recomputed. */
	void (*on_clock_set)(void *userdata);
	/* A timed change (a boundary or the end of a grace) was switched to;
	 * called after the switch, so what it does never delays the ports. */
	void (*on_boundary)(void *userdata);
	/* An instance's envelope dropped a packet it sent. link is the host
	 * end of the link the packet came in on (NULL when unknown): that is
	 * who sent it, whatever its source address says (spoofed: the source
	 * was not the sender's own address, perhaps a neighbour's). */
	void (*on_egress_drop)(const char *link, const char *source, const char *destination,
			       uint8_t proto, uint16_t port, bool spoofed, void *userdata);
	/* A reload revoked a client (its key gone, or its service): its doors
	 * and admissions are gone, cut_flows of its established flows cut (0
	 * with keep_connections). */
	void (*on_client_revoked)(const char *service, const char *client, size_t cut_flows,
				  bool kept_connections, void *userdata);
	/* The transaction of a boundary failed; the previous epoch's ports stay. */
	void (*on_apply_failed)(const char *reason, void *userdata);
	/* Knocks: an admission (or its failure), count refusals of a reason
	 * since the last summary (at most one a second per service and reason),
	 * a client's first connection of the epoch. */
	void (*on_client_admitted)(const struct rotation_client_event *event, void *userdata);
	void (*on_knocks_refused)(const char *service, const char *reason, uint64_t count,
				  void *userdata);
	void (*on_client_connected)(const struct rotation_client_event *event, void *userdata);
	void *userdata;
};

struct rotation_options {
	uint16_t nflog_group;
	uint16_t egress_nflog_group; /* drops of the instance envelopes */
	uint16_t honeypot_port;	     /* TCP decoys redirect here so they look open; 0 = drop */
	bool remove_on_stop;	     /* delete `inet mtd` on a clean stop */
	bool monitor;		     /* decoys block nobody; what they would do is reported */
	/* forwarding of the family was off before the agent (rotation.h) */
	bool forward_guard4, forward_guard6;
	/* NFLOG group of packets to knock ports and of first connections to
	 * gated doors (rotator_config); 0: none */
	uint16_t knock_nflog_group;
};

int rotation_new(sd_event *event, const struct rotation_options *options,
		 const struct rotation_hooks *hooks, struct rotation **ret_rotation);

/* Prepare the policy set's services (keys read, schedule computed) and
 * program them in one transaction; the global file's [Decoys] bound whom
 * decoys block. On failure nothing changed, in memory or in the kernel, and
 * ret_error says why in one line. The set and globals must outlive their use
 * (the caller swaps them only after this succeeds). */
int rotation_apply_policies(struct rotation *rotation, const struct policy_set *set,
			    const struct policy_globals *globals, struct step_error *ret_error);

/* The same for a reload: clients of the set in force whose keys are gone
 * (or whose service is) lose their doors in the reload's transaction, then
 * their admissions (a second transaction) and, unless keep_connections,
 * their established flows (conntrack): flows to their recent doors (this
 * epoch's and the previous one's) that are no live client's door.
 * on_client_revoked reports each. */
int rotation_reload_policies(struct rotation *rotation, const struct policy_set *set,
			     const struct policy_globals *globals, bool keep_connections,
			     struct step_error *ret_error);

/* A managed service's traffic goes to its healthy instance: one transaction
 * moves the public (and grace) port to these addresses (one per family).
 * On failure the previous route stays. */
struct rotator_addr;
int rotation_set_instance_backend(struct rotation *rotation, const char *service,
				  const struct rotator_addr *addresses, size_t n_addresses,
				  uint16_t port, const char *cut_instance,
				  struct step_error *ret_error);

/* An instance's envelope in the table (default-deny both ways but its
 * ListenPort through the DNAT and its Egress= rules): one transaction; on
 * failure the instance must not start. Remove takes it out again (its flows
 * are cut); cut_instance above does the same within the route change. A
 * removed instance that conntrack still has open flows to stays dead: its
 * addresses in dead4/dead6, so each such flow's next packet is answered with
 * a reset, until none is left (polled every second) or 120 s passed (then
 * its flows are deleted from conntrack); a cut one is in the dead sets too
 * (docs/nftables.md, "Killed instances"). */
struct egress_rule;
int rotation_add_instance(struct rotation *rotation, const char *name,
			  const struct rotator_addr *addresses, size_t n_addresses, uint8_t proto,
			  uint16_t port, const struct egress_rule *egress, size_t n_egress,
			  struct step_error *ret_error);
int rotation_remove_instance(struct rotation *rotation, const char *name,
			     struct step_error *ret_error);
/* Cut an instance off at once, cheaper than removing it: out of the live and
 * ingress sets (nothing passes to or from its link, established flows
 * included, and its Egress= no longer applies: the rule asks for a live
 * source), its other elements left for rotation_remove_instance(). One
 * transaction; -ENOENT if it has no envelope. */
int rotation_cut_instance(struct rotation *rotation, const char *name,
			  struct step_error *ret_error);
/* No instance serves: the service's public port leads nowhere (dropped). */
int rotation_clear_instance_backend(struct rotation *rotation, const char *service,
				    struct step_error *ret_error);

/* {"services":[{name, port, grace_port, epoch, next_boundary_usec, decoys, decoy_hits,
 *   backend, ...}], "table": {...}} */
json_t *rotation_status(const struct rotation *rotation);

/* The figures of docs/metrics.md; the histograms are the rotation's own
 * (valid until the next call into it). */
struct rotation_metrics {
	uint64_t transactions, switches, failures;
	uint64_t timed_changes; /* boundaries and grace ends switched to */
	uint64_t blocked_now;	/* sources blocked by decoys, not yet expired */
	/* the transaction moving the ports at a timed change; the one loading
	 * the change after into the idle bank */
	const struct metric_histogram *switch_durations, *staging_durations;
};
void rotation_get_metrics(const struct rotation *rotation, struct rotation_metrics *ret);

/* Remove a source from the blocked sets and forget its strikes (an
 * operator's word that it was no scanner). -EINVAL for an address that does
 * not parse (ret_error says so). */
int rotation_unblock(struct rotation *rotation, const char *address, struct step_error *ret_error);

/* Per-client services (ClientKeys=): what the knock receiver and the
 * control socket ask. -ENOENT: no such per-client service or client. */

/* The client's key (valid until the next rotation_apply_policies()). */
int rotation_client_key(const struct rotation *rotation, const char *service, const char *client,
			const uint8_t **ret_key, size_t *ret_len);
/* Its door and its knock port of an epoch: the service's current epoch, the
 * one before and the one after (-ERANGE for another). */
int rotation_client_door(const struct rotation *rotation, const char *service, const char *client,
			 uint64_t epoch, uint16_t *ret_door);
int rotation_client_knock_port(const struct rotation *rotation, const char *service,
			       const char *client, uint64_t epoch, uint16_t *ret_port);
/* A per-client service's settings and moment. */
struct rotation_client_service {
	const char *host_id;
	bool knock; /* ClientAuth=knock */
	uint64_t knock_window_usec;
	unsigned knock_rate_limit; /* KnockRate=N/SPAN per source */
	uint64_t knock_rate_interval_usec;
	uint64_t interval_usec, grace_usec;
	uint8_t proto;	/* of its doors: IPPROTO_TCP or IPPROTO_UDP */
	uint64_t epoch; /* the one in force */
	bool in_grace;	/* the previous epoch's doors are still open */
	size_t n_clients;
};
int rotation_client_service(const struct rotation *rotation, const char *service,
			    struct rotation_client_service *ret);
/* The host id in force (HostId=, else the host's public address), NULL if none. */
const char *rotation_host_id(const struct rotation *rotation);
/* Decisions of a fleet's engine (CrowdSec, docs/fleet.md): sources to block
 * for their remaining time, in one transaction, and sources to unblock, in
 * another. The global file's NeverBlock= wins (the source is left alone and
 * counted); in monitor mode nothing is blocked (counted as simulated). An
 * unban leaves a source the agent's own decoys blocked and whose block runs
 * on: the agent keeps its own blocks. An address that does not parse is
 * counted as invalid, never blocked. On failure nothing of that transaction
 * changed and ret_error says why.
 *
 * An address may be a range, ADDRESS/LENGTH shorter than the family's (a
 * /32 or /128 is the single address): ranges go to the rotator's interval
 * sets (rotator_block_ranges(): overlapping ranges are kept apart, an unban
 * removes that range's decision only), bans and unbans of ranges in one more
 * transaction. NeverBlock= addresses inside a range are cut out of it (the
 * range counts as never_block and as ranges_blocked); a range wholly inside
 * NeverBlock= is not blocked at all (never_block). */
struct rotation_shared_ban {
	const char *address; /* "ADDRESS" or "ADDRESS/LENGTH" */
	uint64_t block_usec;
};
struct rotation_shared_result {
	unsigned blocked, unblocked, never_block, kept_own, simulated, invalid;
	unsigned ranges_blocked, ranges_unblocked; /* decisions of ranges (ADDRESS/LENGTH) */
};
int rotation_shared_blocks(struct rotation *rotation, const struct rotation_shared_ban *bans,
			   size_t n_bans, const char *const *unbans, size_t n_unbans,
			   struct rotation_shared_result *ret_result, struct step_error *ret_error);

/* Ranges of shared decisions in force, and the disjoint intervals programmed
 * for them. */
void rotation_shared_ranges(const struct rotation *rotation, size_t *ret_ranges,
			    size_t *ret_segments);

/* Leaves the table in place (so ports stay closed) unless remove_on_stop. */
void rotation_free(struct rotation *rotation);

/* IP forwarding for the instances' links, and nothing more.
 *
 * DNAT to an instance is forwarding, and the kernel decides it on the
 * interface a client's packet arrives on, which can be any: so the switch is
 * the namespace-wide one (net.ipv4.ip_forward, net.ipv6.conf.all.forwarding).
 * What that would change beyond the instances is undone around it:
 *  - routing between the host's other interfaces: when a family's forwarding
 *    was off, the rotator's forward guard (rotator_config.forward_guard4/6)
 *    drops every forwarded packet that neither arrives on nor leaves by an
 *    instance link and was not DNATed by the agent;
 *  - IPv6 router advertisements: an interface that forwards ignores them at
 *    accept_ra=1, so every interface (and "default", for interfaces created
 *    later) at 1 is set to 2, which accepts them while forwarding.
 * The settings found are saved (STATE_DIR/forwarding.saved) before anything
 * changes and put back on a clean stop; an agent that was killed finds them
 * there at its next start. */

struct forwarding;

/* What the host had: the saved file of a previous run that did not stop
 * cleanly, else the settings now. Changes nothing. */
int forwarding_load(const char *state_dir, struct forwarding **ret_forwarding);

/* Whether the host forwarded this family (AF_INET, AF_INET6) before the agent. */
bool forwarding_was_on(const struct forwarding *forwarding, int family);

/* Save what the host had (fsync'd), then switch forwarding on as above. */
int forwarding_enable(struct forwarding *forwarding);

/* Put back what forwarding_enable changed and remove the saved file. An
 * interface gone meanwhile is skipped; the first other error is returned
 * after everything else was tried. */
int forwarding_restore(struct forwarding *forwarding);

void forwarding_free(struct forwarding *forwarding);
