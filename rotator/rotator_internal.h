/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <linux/netlink.h>
#include <stdbool.h>
#include <stdint.h>

#include "macro.h"
#include "rotator.h"

/* Framing check before libmnl's mnl_cb_run(), for the rotator's netlink
 * parse steps (nflog.c, conntrack.c). Not for use outside rotator/. */

/*
 * The length of buf's leading run of whole netlink messages: each at least a
 * header and no longer than what is left. libmnl (1.0.4) compares nlmsg_len
 * as an int, so a message claiming 2^31 bytes or more passes its
 * mnl_nlmsg_ok(); mnl_cb_run() then steps nlmsg_len bytes on, and for a
 * length near 2^32 its count of what is left wraps back to positive: it reads
 * 4 GiB past the buffer (SEGV; found by tests/fuzz/fuzz_conntrack.c). Handing
 * mnl_cb_run() only this prefix changes nothing else: it stops at the first
 * message that does not fit anyway. buf is aligned like struct nlmsghdr.
 */
static inline size_t rotator_nlmsg_whole(const void *buf, size_t len)
{
	size_t off = 0;

	while (len - off >= sizeof(struct nlmsghdr)) {
		const struct nlmsghdr *nlh = (const struct nlmsghdr *)((const char *)buf + off);

		if (nlh->nlmsg_len < sizeof(*nlh) || nlh->nlmsg_len > len - off)
			break;
		off += NLMSG_ALIGN(nlh->nlmsg_len);
		if (off >= len)
			return len;
	}
	return off;
}

/*
 * The netlink transaction layer: one long-lived non-blocking
 * NETLINK_NETFILTER socket, batches paged in memory and sent as ONE
 * transaction (one sendmsg with an iovec of all pages), guarded by the
 * ruleset generation id, with a bounded retry on ERESTART. Every message gets
 * its own sequence number and a description, so a kernel error is reported
 * against the object that caused it, with the extended-ack text.
 */

struct nlmsghdr;
struct nft_sock;
struct nft_txn;

int nft_sock_open(struct nft_sock **ret);
void nft_sock_close(struct nft_sock *s);
uint32_t nft_sock_portid(const struct nft_sock *s);

/* Current ruleset generation id (NFT_MSG_GETGEN). */
int nft_get_genid(struct nft_sock *s, uint32_t *ret_genid);

/* Whether table FAMILY NAME exists; its flags and owner portid (0 if none). */
int nft_get_table(struct nft_sock *s, uint16_t family, const char *name, bool *ret_exists,
		  uint32_t *ret_flags, uint32_t *ret_owner);

/* One element of a set, as a dump reports it: its key and, for an element
 * with a timeout (timeout_ms != 0), the milliseconds it has left. */
struct nft_elem_info {
	const void *key;
	uint32_t key_len;
	uint64_t timeout_ms;
	uint64_t expires_in_ms;
	uint32_t flags; /* NFT_SET_ELEM_INTERVAL_END, ... */
};
typedef int (*nft_elem_fn)(const struct nft_elem_info *elem, void *userdata);

/* Calls fn for every element of set SET of table FAMILY TABLE (a dump; a
 * negative return of fn stops it and is returned). -ENOENT: no such table
 * or set. */
int nft_dump_set_elems(struct nft_sock *s, uint16_t family, const char *table, const char *set,
		       nft_elem_fn fn, void *userdata);

int nft_txn_new(struct nft_sock *s, struct nft_txn **ret);
/* Frees the transaction; its pages go back to the socket for the next one. */
void nft_txn_free(struct nft_txn *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nft_txn *, nft_txn_free)

/*
 * What a message is about, for error reports only: nothing is formatted
 * unless the kernel refuses the message. kind 0: the text "what name" (both
 * static strings, name may be NULL); any other kind is formatted by the
 * transaction's describe callback.
 */
struct nft_ref {
	uint16_t kind;
	uint16_t sub;
	uint32_t index;
	const char *what;
	const char *name;
};

/*
 * Formats the object of a refused message into buf: ref as given to
 * nft_txn_msg, the message as sent, and the offset in it of the attribute
 * the kernel blamed (extended ack NLMSGERR_ATTR_OFFS), or 0 if none.
 */
typedef void (*nft_describe_fn)(void *userdata, const struct nft_ref *ref,
				const struct nlmsghdr *msg, uint32_t bad_offset, char *buf,
				size_t len);
void nft_txn_set_describe(struct nft_txn *t, nft_describe_fn fn, void *userdata);

/*
 * Start the next message of the transaction: returns its header (type is an
 * NFT_MSG_* command, built with nftnl_nlmsg_build_hdr) for the caller to fill
 * the payload with nftnl_*_nlmsg_build_payload() or mnl_attr_put*(), then
 * call nft_txn_msg_end(). NULL on ENOMEM. A message must stay below
 * NFT_TXN_MSG_MAX bytes.
 */
#define NFT_TXN_MSG_MAX (64 * 1024)
struct nlmsghdr *nft_txn_msg(struct nft_txn *t, uint16_t cmd, uint16_t family, uint16_t flags,
			     const struct nft_ref *ref);
int nft_txn_msg_end(struct nft_txn *t, struct nlmsghdr *nlh);

/*
 * A run of set-element messages to one set (elements.c): elements_batch_msg()
 * gives the message to put the next element in, starting one (its ref: the
 * position of its first element) when none is open; elements_batch_next()
 * after each element closes a message that is nearly full;
 * elements_batch_end() closes the last one.
 */
struct elements_batch {
	struct nft_txn *t;
	uint16_t cmd, flags; /* NFT_MSG_NEWSETELEM etc., NLM_F_* */
	const char *set;
	struct nlmsghdr *nlh; /* the open message, NULL between messages */
	struct nlattr *list;
};
struct nlmsghdr *elements_batch_msg(struct elements_batch *b, const struct nft_ref *ref);
int elements_batch_next(struct elements_batch *b);
int elements_batch_end(struct elements_batch *b);
/* A value nest (NFTA_DATA_VALUE) of type: a set element's key or data. */
void elements_put_value(struct nlmsghdr *nlh, uint16_t type, const void *v, size_t len);

size_t nft_txn_n_msgs(const struct nft_txn *t);
size_t nft_txn_size(const struct nft_txn *t);

enum nft_outcome {
	NFT_TXN_PENDING,   /* not committed yet */
	NFT_TXN_COMMITTED, /* the kernel applied it */
	NFT_TXN_REFUSED,   /* the kernel refused it: nothing changed */
	NFT_TXN_UNKNOWN,   /* no clear verdict (send/receive failure): may have applied */
};
enum nft_outcome nft_txn_outcome(const struct nft_txn *t);

/*
 * Send the transaction (genid-guarded) and collect the verdict. Retries up to
 * max_restarts times on ERESTART. 0 on commit; negative errno otherwise with
 * err (may be NULL) naming the failing object.
 */
int nft_txn_commit(struct nft_sock *s, struct nft_txn *t, unsigned max_restarts,
		   struct step_error *err);

/* Fill err (if not NULL) with a library-side reason. Returns e. */
int step_error_set(struct step_error *err, const char *object, int e, const char *fmt, ...)
    _printf_(4, 5);

/*
 * Pure builders for the rules of `inet mtd`: no socket, no kernel. Each
 * recipe returns a complete struct nftnl_rule (family inet, table mtd) or
 * NULL on ENOMEM; tests/unit/test_rotator_expr.c pins their bytecode.
 */

struct nftnl_rule;

/* iif "lo" accept */
struct nftnl_rule *nft_rule_loopback_accept(const char *chain, const char *comment);

/* meta nfproto ipvX ip[6] saddr @set counter drop */
struct nftnl_rule *nft_rule_blocked_drop(const char *chain, uint8_t nfproto, const char *set,
					 const char *comment);

/* fib daddr type local meta l4proto . th dport @decoys
 * ct state ! established,related log prefix P group G counter drop
 * (IPv4 and IPv6 alike; the source is reported, never blocked here) */
struct nftnl_rule *nft_rule_decoy_hit(const char *chain, const char *decoy_set,
				      uint16_t log_group_id, const char *log_prefix,
				      const char *comment);

/* The same without the drop: the packet goes on (to the honeypot redirect). */
struct nftnl_rule *nft_rule_decoy_report(const char *chain, const char *decoy_set,
					 uint16_t log_group_id, const char *log_prefix,
					 const char *comment);

/* fib daddr type local meta l4proto . th dport @decoys meta l4proto tcp
 * redirect to :port (nat chains only) */
struct nftnl_rule *nft_rule_decoy_redirect(const char *chain, const char *decoy_set, uint16_t port,
					   const char *comment);

/* fib daddr type local meta l4proto . th dport @decoys meta l4proto != tcp drop */
struct nftnl_rule *nft_rule_decoy_drop_non_tcp(const char *chain, const char *decoy_set,
					       const char *comment);

/* ct status & dnat == dnat meta l4proto tcp ct reply proto-src port accept:
 * a connection already redirected to the honeypot completes its handshake
 * (and closes) even once the caller has blocked its source */
struct nftnl_rule *nft_rule_honeypot_flow_accept(const char *chain, uint16_t port,
						 const char *comment);

/* iif != "lo" ct status & dnat != dnat meta l4proto tcp th dport port counter drop */
struct nftnl_rule *nft_rule_honeypot_guard(const char *chain, uint16_t port, const char *comment);

/* fib daddr type local dnat ip[6] to meta l4proto . th dport map @map */
struct nftnl_rule *nft_rule_dnat(const char *chain, uint8_t nfproto, const char *map,
				 const char *comment);

/* meta nfproto ipvX meta l4proto . th dport @gated
 * ip[6] saddr . meta l4proto . th dport != @admitted return: a new connection
 * to a knock-gated door from a source not admitted to it leaves the bank's
 * nat chain before its DNAT (the host answers as a closed port) */
struct nftnl_rule *nft_rule_gate(const char *chain, uint8_t nfproto, const char *gated_set,
				 const char *admitted_set, const char *comment);

/* iif != "lo" ct status & dnat != dnat meta nfproto ipvX
 * meta l4proto . ip[6] daddr . th dport @set counter drop */
struct nftnl_rule *nft_rule_backend_guard(const char *chain, uint8_t nfproto, const char *set,
					  const char *comment);

/* meta nfproto @active_set jump target: the dispatch to a bank's chain,
 * taken while the bank is live (its active set holds ipv4 and ipv6) */
struct nftnl_rule *nft_rule_bank_jump(const char *chain, const char *active_set, const char *target,
				      const char *comment);

/* Attach a comment (nft shows `comment "..."`). 0 or -ENOMEM/-EINVAL. */
int nft_rule_set_comment(struct nftnl_rule *r, const char *comment);

/* --- the instance envelope (prefix: ROTATOR_INSTANCE_IFPREFIX) --------------- */

/* iifname "PREFIX*" jump target, or oifname with outgoing */
struct nftnl_rule *nft_rule_ifname_jump(const char *chain, bool outgoing, const char *prefix,
					const char *target, const char *comment);

/* iifname "PREFIX*" meta nfproto ipv6 meta l4proto ipv6-icmp icmpv6 type @set accept */
struct nftnl_rule *nft_rule_icmpv6_link_accept(const char *chain, const char *prefix,
					       const char *set, const char *comment);

/* fib saddr . iif oif missing log prefix P group G counter drop: a source
 * address not routed back through the link it came from */
struct nftnl_rule *nft_rule_antispoof_drop(const char *chain, uint16_t log_group_id,
					   const char *log_prefix, const char *comment);

/* iifname "PREFIX*" return: what came in on an instance link leaves the
 * chain (its instance_egress decides) */
struct nftnl_rule *nft_rule_ifname_return(const char *chain, const char *prefix,
					  const char *comment);

/* ct state established,related ip[6] saddr|daddr @set return */
struct nftnl_rule *nft_rule_ct_live_return(const char *chain, uint8_t nfproto, bool source,
					   const char *set, const char *comment);

/* ct status & dnat == dnat meta nfproto ipvX
 * ip[6] daddr . meta l4proto . th dport @set return */
struct nftnl_rule *nft_rule_ingress_return(const char *chain, uint8_t nfproto, const char *set,
					   const char *comment);

/* meta nfproto ipvX ip[6] saddr @live_set
 * ip[6] saddr . meta l4proto . ip[6] daddr . th dport @set return
 * (a cut-off instance, out of live_set, loses its Egress= at once, while its
 * elements in set may go later) */
struct nftnl_rule *nft_rule_egress_return(const char *chain, uint8_t nfproto, const char *live_set,
					  const char *set, const char *comment);

/* [log prefix P group G] counter drop (no log when log_prefix is NULL) */
/* meta nfproto NFPROTO iifname != "PREFIX*" oifname != "PREFIX*"
 * ct status & dnat == 0 counter drop: forwarding that neither reaches nor
 * leaves an instance link and was not DNATed here. */
struct nftnl_rule *nft_rule_forward_guard(const char *chain, uint8_t nfproto, const char *prefix,
					  const char *comment);

struct nftnl_rule *nft_rule_drop(const char *chain, uint16_t log_group_id, const char *log_prefix,
				 const char *comment);

/* A packet of a flow that still leads to a killed instance (its address in
 * set), one lookup a packet: "meta nfproto ipvX ct reply ip[6] saddr @set
 * jump TARGET". */
struct nftnl_rule *nft_rule_dead_jump(const char *chain, uint8_t nfproto, const char *set,
				      const char *target, const char *comment);
/* "ct state established meta nfproto ipvX ip[6] saddr @set meta l4proto
 * tcp tcp flags & rst != 0 counter return": a killed or cut instance's
 * kernel ending a tracked flow with a reset (the agent's SOCK_DESTROY of its
 * sockets) gets out to the peer; nothing else of it does. */
struct nftnl_rule *nft_rule_dead_reset_return(const char *chain, uint8_t nfproto, const char *set,
					      const char *comment);
/* tcp: "meta l4proto tcp counter reject with tcp reset"; else "counter
 * reject with icmpx admin-prohibited". */
struct nftnl_rule *nft_rule_reject(const char *chain, bool tcp, const char *comment);

/*
 * The layout of `inet mtd` (docs/nftables.md): table, named sets and maps,
 * base chains and their static rules, and the element messages of a plan.
 * Everything is appended to a transaction; nothing is sent here.
 */

struct nft_txn;

#ifndef NFT_TABLE_F_PERSIST
#define NFT_TABLE_F_PERSIST 0x4 /* Linux 6.9 */
#endif

/* The per-epoch maps and decoy sets exist once per bank: "svc4_0", "svc4_1" */
#define RS_SVC4 "svc4"
#define RS_SVC6 "svc6"
#define RS_LOCAL4 "local4"
#define RS_LOCAL6 "local6"
#define RS_DECOYS "decoys"
#define RS_GATED "gated"
#define RS_KNOCK "knock"
#define RS_ADMITTED4 "admitted4"
#define RS_ADMITTED6 "admitted6"
#define RS_BANK_NAME(name, bank) name "_" #bank
/* ipv4 and ipv6 while its bank is live: what a switch of banks changes */
#define RS_ACTIVE0 "active0"
#define RS_ACTIVE1 "active1"
#define RS_BACKENDS4 "backends4"
#define RS_BACKENDS6 "backends6"
#define RS_BLOCKED4 "blocked4"
#define RS_BLOCKED6 "blocked6"
#define RS_RANGES4 "ranges4"
#define RS_RANGES6 "ranges6"
#define RS_INSTANCES4 "instances4"
#define RS_INSTANCES6 "instances6"
#define RS_INGRESS4 "inst_ingress4"
#define RS_INGRESS6 "inst_ingress6"
#define RS_EGRESS4 "inst_egress4"
#define RS_EGRESS6 "inst_egress6"
#define RS_ICMPV6_LINK "icmpv6_link"
#define RS_DEAD4 "dead4"
#define RS_DEAD6 "dead6"
#define RS_LOG_PREFIX "mtd-decoy "
#define RS_EGRESS_LOG_PREFIX "mtd-egress "
#define RS_SPOOF_LOG_PREFIX "mtd-spoof "
#define RS_KNOCK_LOG_PREFIX "mtd-knock "
#define RS_CONNECT_LOG_PREFIX "mtd-connect "
#define RS_TABLE_DESC "table inet " ROTATOR_TABLE

/* Table (with NFT_TABLE_F_* flags), sets, maps, chains and rules. */
int ruleset_add_layout(struct nft_txn *t, uint32_t table_flags,
		       const struct rotator_config *config);

/* --- shared by ruleset.c and ruleset_instance.c -------------------------- */

/* nft's datatype ids, concatenations are (a << 6) | b */
enum {
	RS_TYPE_NFPROTO = 2,
	RS_TYPE_IPADDR = 7,
	RS_TYPE_IP6ADDR = 8,
	RS_TYPE_INET_PROTOCOL = 12,
	RS_TYPE_INET_SERVICE = 13,
	RS_TYPE_ICMP6_TYPE = 29,
};
#define RS_CONCAT2(a, b) (((a) << 6) | (b))
#define RS_CONCAT3(a, b, c) (((((a) << 6) | (b)) << 6) | (c))
#define RS_CONCAT4(a, b, c, d) ((RS_CONCAT3(a, b, c) << 6) | (d))

struct set_def {
	const char *name;
	uint32_t key_type, key_len;
	uint32_t data_type, data_len; /* 0: plain set */
	uint32_t flags;
	uint32_t size;
	const char *comment;
	const uint8_t *field_len; /* concatenated intervals: field lengths, 0-terminated */
};

/* Regular chain when type is NULL. */
struct chain_def {
	const char *name;
	const char *type;
	uint32_t hook;
	int32_t prio;
	const char *comment;
};

/* ruleset_objects.c: one message per object, below ruleset.c and
 * ruleset_instance.c (which never call each other). */
struct nftnl_rule;
/* Delete the existing table (adoption: it is rebuilt in the same transaction). */
int ruleset_delete_table(struct nft_txn *t);
int ruleset_add_table(struct nft_txn *t, uint32_t flags);
int ruleset_add_set(struct nft_txn *t, const struct set_def *d, uint32_t id);
int ruleset_add_chain(struct nft_txn *t, const struct chain_def *d);
/* Takes ownership of rule (NULL: -ENOMEM). */
int ruleset_add_rule(struct nft_txn *t, struct nftnl_rule *rule, const char *what);

struct ruleset_rule {
	struct nftnl_rule *rule; /* NULL: out of memory, or not wanted */
	const char *what;
	bool unwanted; /* not in this configuration (no honeypot) */
};
/* Adds the wanted rules in order (each is taken); frees the rest. */
int ruleset_add_rules(struct nft_txn *t, struct ruleset_rule *rules, size_t n);

/* The envelope's sets and chains (after the base ones: set ids from
 * first_set_id), then, once the base chains' own rules are in, its rules. */
int ruleset_add_instance_objects(struct nft_txn *t, uint32_t first_set_id);
int ruleset_add_instance_rules(struct nft_txn *t, const struct rotator_config *config);
#define RS_CH_PREROUTING_FILTER "prerouting_filter"
#define RS_CH_INPUT_FILTER "input_filter"
#define RS_CH_FORWARD_FILTER "forward_filter"

/*
 * An instance's Egress= rules as the disjoint boxes the inst_egress sets hold.
 * Pure (tests/unit/test_rotator_delta.c).
 *
 * The sets are concatenated intervals (pipapo): the kernel refuses an
 * element whose start or end lies inside another one (ENOTEMPTY), so
 * overlapping rules ("udp/53" and "udp/53 192.0.2.53", "tcp/1-1024" and
 * "tcp/80 10.0.0.0/8") cannot be sent as they are. Per family and protocol,
 * the destination axis is cut at every rule boundary; each piece gets the
 * union of the port ranges of the rules covering it; neighbouring pieces with
 * the same ports are merged. The result covers exactly the union of the rules
 * with boxes that do not overlap.
 */

struct egress_box {
	uint8_t proto;
	uint8_t addr_first[16], addr_last[16]; /* network order; 4 bytes for IPv4 */
	uint16_t port_first, port_last;	       /* host order */
};

#define EGRESS_MAX_BOXES 1024 /* per instance and family */

/* The boxes of rules for family (AF_INET, AF_INET6): rules with a
 * destination of the other family are skipped. Up to max into boxes, count
 * in *ret_n. -E2BIG if more are needed, -EINVAL for a bad rule. */
int egress_boxes(const struct rotator_egress *rules, size_t n_rules, int family,
		 struct egress_box *boxes, size_t max, size_t *ret_n);

/*
 * The element state of `inet mtd` and the delta between two states. Pure:
 * no socket, no kernel (tests/unit/test_rotator_delta.c).
 *
 * A state holds, per per-epoch set or map, the elements exactly as the kernel
 * stores them (key and data bytes, register-padded) with the index of the
 * service that owns each. The rotator keeps the state it last committed; an
 * apply builds the state of the new plan and sends only the delta: the
 * elements to delete (in the old state, not in the new one, or with other
 * data) and to add (in the new state, not in the old one, or with other data).
 * An element in both with the same data is not touched.
 *
 * The per-epoch maps and decoy sets exist once per bank (docs/nftables.md,
 * "Two banks"): a state is built with the plan's services in the live bank,
 * its next services in the other, and ipv4 and ipv6 in the live bank's
 * active set.
 */

enum rs_set {
	/* bank 0 */
	RS_SET_SVC4,
	RS_SET_SVC6,
	RS_SET_LOCAL4,
	RS_SET_LOCAL6,
	RS_SET_DECOYS,
	RS_SET_GATED, /* proto . port of knock-gated doors */
	RS_SET_KNOCK, /* proto . port of knock ports */
	/* bank 1: the same, RS_BANK_SETS on (rs_bank_set()) */
	RS_SET_SVC4_1,
	RS_SET_SVC6_1,
	RS_SET_LOCAL4_1,
	RS_SET_LOCAL6_1,
	RS_SET_DECOYS_1,
	RS_SET_GATED_1,
	RS_SET_KNOCK_1,
	RS_SET_ACTIVE0, /* key: the nfproto (ipv4, ipv6) while bank 0 is live */
	RS_SET_ACTIVE1,
	RS_SET_BACKENDS4,
	RS_SET_BACKENDS6,
	/* the instance envelope (rotator_config.instance_envelope) */
	RS_SET_INSTANCES4,
	RS_SET_INSTANCES6,
	RS_SET_INGRESS4,
	RS_SET_INGRESS6,
	RS_SET_EGRESS4, /* intervals: data holds the key's end */
	RS_SET_EGRESS6,
	RS_SET_DEAD4, /* killed instances' addresses: their flows get a reset */
	RS_SET_DEAD6,
	RS_N_SETS,
};
#define RS_FIRST_INSTANCE_SET RS_SET_INSTANCES4
#define RS_BANK_SETS 7

/* A bank-0 set's counterpart in bank (0 or 1). */
static inline enum rs_set rs_bank_set(enum rs_set bank0_set, unsigned bank)
{
	return (enum rs_set)(bank0_set + bank * RS_BANK_SETS);
}

#define RS_KEY_MAX 40  /* inst_egress6: saddr . proto . daddr . port */
#define RS_DATA_MAX 40 /* map data, or an interval's end key */

/* One element as a table stores it: its key and data take only the room
 * their set needs (key_cap, data_cap bytes: 8 + 8 for a door of an IPv4
 * service), not RS_KEY_MAX + RS_DATA_MAX (64,000 client doors and knock
 * ports in two banks are hundreds of thousands of elements). */
struct rs_elem {
	uint32_t owner; /* index of the owning service or instance (rs_state.names) */
	uint8_t key_len, data_len;
	uint8_t key_cap; /* bytes[0, key_cap): the key, zero beyond key_len */
	uint8_t
	    data_cap; /* then the data (maps; interval sets: the end key), zero beyond data_len */
	uint8_t bytes[];
};

static inline const uint8_t *rs_elem_key(const struct rs_elem *e)
{
	return e->bytes;
}

static inline const uint8_t *rs_elem_data(const struct rs_elem *e)
{
	return e->bytes + e->key_cap;
}

struct rs_table {
	uint8_t *elems; /* n records of stride bytes (struct rs_elem) */
	size_t n, cap;
	size_t stride;		   /* 0 until the table is first reserved */
	uint8_t key_cap, data_cap; /* of its set (delta.c) */
	uint32_t *slots;	   /* open addressing: element index + 1, 0 = free */
	size_t n_slots;		   /* power of two, at least twice n */
};

/* Element i of table t. */
static inline const struct rs_elem *rs_table_elem(const struct rs_table *t, size_t i)
{
	return (const struct rs_elem *)(const void *)(t->elems + i * t->stride);
}

struct rs_state {
	struct rs_table sets[RS_N_SETS];
	/* the plan's services, its next services, then its instances */
	char (*names)[ROTATOR_MAX_NAME];
	size_t n_names, cap_names;
};

/* What to send: indices into the old state's elements (del) and the new
 * state's (add, NLM_F_EXCL), per set. An element whose data changes is
 * deleted and added. */
struct rs_delta {
	uint32_t *del[RS_N_SETS];
	size_t n_del[RS_N_SETS];
	uint32_t *add[RS_N_SETS];
	size_t n_add[RS_N_SETS];
	size_t cap[RS_N_SETS]; /* of each list */
};

/* Set and map names in the table (RS_SVC4, ...), whether it is a map, an
 * interval set (elements carry an end key in data), an instance's. */
const char *delta_set_name(enum rs_set set);
bool delta_set_is_map(enum rs_set set);
bool delta_set_is_interval(enum rs_set set);
bool delta_set_is_instance(enum rs_set set);

/* Replace *state (its memory is reused) with the elements of a validated
 * plan, its services in live_bank (0 or 1), its next services in the other.
 * The same public port twice in one map is -EEXIST with err naming both
 * services; the state is then empty. Sets (backends, decoys) take
 * duplicates once, owned by the first service. An instance address used by
 * two instances is -EEXIST naming both. */
int delta_state_build(struct rs_state *state, const struct rotator_plan *plan, unsigned live_bank,
		      struct step_error *err);
/* Make live_bank's active set the one that holds ipv4 and ipv6 (what a
 * switch of banks does to the kernel's table). */
int delta_state_switch(struct rs_state *state, unsigned live_bank);
/* ipv4 / ipv6 keys of the active sets */
size_t delta_key_nfproto(uint8_t *b, uint8_t nfproto);
void delta_state_clear(struct rs_state *state); /* empty, memory kept */
void delta_state_free(struct rs_state *state);	/* empty, memory released */
size_t delta_state_count(const struct rs_state *state);

/* The element with this key, or NULL. */
const struct rs_elem *delta_state_find(const struct rs_state *state, enum rs_set set,
				       const uint8_t *key, size_t key_len);
const char *delta_state_owner(const struct rs_state *state, const struct rs_elem *e);

/* The delta from old to new_state into *delta (memory reused). 0 or -ENOMEM. */
int delta_compute(const struct rs_state *old, const struct rs_state *new_state,
		  struct rs_delta *delta);
/* The same for the active sets alone (a switch of banks), the rest untouched. */
int delta_switch(const struct rs_state *old, const struct rs_state *new_state,
		 struct rs_delta *delta);
void delta_free(struct rs_delta *delta);
size_t delta_count_del(const struct rs_delta *delta);
size_t delta_count_add(const struct rs_delta *delta);

/* Element encodings (the kernel's register layout). */
size_t delta_key_proto_port(uint8_t *b, uint8_t proto, uint16_t port);
/* "tcp . 24847 : 10.0.0.1 . 8080" style text of an element, for errors. */
void delta_elem_text(enum rs_set set, const struct rs_elem *e, char *buf, size_t len);

/*
 * The element messages of a transaction: a delta between two element states
 * (rotator_internal.h) as NFT_MSG_DELSETELEM / NFT_MSG_NEWSETELEM messages, many
 * elements per message, built straight into the transaction's pages with
 * libmnl; and the removal of unblocked sources. Nothing is formatted unless
 * the kernel refuses a message: then elements_describe() names the element
 * the kernel blamed and the service that owns it.
 */

struct elements_ctx {
	const struct rs_state *old;	  /* deletions index into it */
	const struct rs_state *new_state; /* additions index into it */
	const struct rs_delta *delta;
	const struct rotator_plan *plan; /* unblocked addresses */
	bool envelope; /* the instance sets exist (rotator_config.instance_envelope) */
	const struct rotator_blocked *carried; /* blocked sources of an adopted table */
	size_t n_carried;
	const struct rotator_blocked *block; /* rotator_block(): valid, one entry per source */
	size_t n_block;
	/* rotator_admit()/rotator_unadmit(): valid, one entry per key */
	const struct rotator_admission *admit;
	size_t n_admit;
};

/* With flush, every per-epoch set is flushed first (the kernel's contents
 * are not known: resynchronisation) and the delta must be against an empty
 * old state. Then all deletions, then all additions (so a key whose data
 * changes is deleted before it is added again). */
int elements_add_delta(struct nft_txn *t, const struct elements_ctx *ctx, bool flush);

/* Add the carried blocked sources back, each with the time it had left. */
int elements_add_carried(struct nft_txn *t, const struct elements_ctx *ctx);

/* rotator_block()'s sources (valid families, n > 0) as a malloc'ed list
 * with one entry per source, the last one given for it, ordered by family
 * and address. 0 or -ENOMEM. */
int elements_block_list(const struct rotator_blocked *sources, size_t n,
			struct rotator_blocked **ret, size_t *ret_n);

/* Block ctx->block's sources, each with its timeout; one already blocked
 * takes the new one (destroyed and added again in the transaction). */
int elements_add_block(struct nft_txn *t, const struct elements_ctx *ctx);

/* rotator_admit()'s list (valid) with one entry per source . proto . port,
 * the last one given for it. 0 or -ENOMEM. */
int elements_admit_list(const struct rotator_admission *a, size_t n, struct rotator_admission **ret,
			size_t *ret_n);
/* Admit ctx->admit (each with its timeout; one there takes the new one), or
 * with remove, take them out (no error if absent). */
int elements_add_admit(struct nft_txn *t, const struct elements_ctx *ctx, bool remove);

/* Remove the plan's unblocked sources (no error if one already expired). */
int elements_add_unblock(struct nft_txn *t, const struct elements_ctx *ctx);

/* nft_describe_fn for the messages above; userdata is the elements_ctx. */
void elements_describe(void *userdata, const struct nft_ref *ref, const struct nlmsghdr *msg,
		       uint32_t bad_offset, char *buf, size_t len);

/* The parse step of conntrack.c without the socket: one datagram of a
 * ctnetlink dump reply. Its flows carry addresses and ports remote peers
 * chose. Not for use outside conntrack.c, its unit test and the fuzzer
 * (tests/fuzz/fuzz_conntrack.c). */

struct rotator_conntrack_dump {
	const struct rotator_addr *source; /* the original source asked about */
	struct rotator_addr *found;	   /* distinct reply sources, n of max */
	size_t max, n;
	/* Counting instead (rotator_conntrack_count_to): the open flows that
	 * reached this address through a DNAT, in count. */
	const struct rotator_addr *to;
	size_t count;
	/* With to: each counted flow's original tuple (the CTA_TUPLE_ORIG
	 * attribute, whole) when end is set, to delete it
	 * (rotator_conntrack_end_to). */
	bool end;
	struct rotator_ct_tuple *tuples;
	size_t n_tuples, cap_tuples;
};

#define ROTATOR_CT_TUPLE_MAX 128 /* an IPv6 TCP tuple is 72 bytes */
struct rotator_ct_tuple {
	uint8_t bytes[ROTATOR_CT_TUPLE_MAX];
	uint16_t len;
};

/* The messages of one datagram answering dump request seq of portid (0
 * accepts any): each flow whose original source is d->source adds its reply
 * source to d->found; with d->to set, each open DNATed flow whose reply
 * source is d->to adds one to d->count. 1: more datagrams to come; 0: the
 * dump is done; -errno on a malformed message or an NLMSG_ERROR. */
int rotator_conntrack_parse(const void *buf, size_t len, uint32_t seq, uint32_t portid,
			    struct rotator_conntrack_dump *d);

/* The parse step of nflog.c without the socket: what the kernel's NFLOG
 * messages (built from a remote sender's packet) turn into. Not for use
 * outside nflog.c, its unit test and the fuzzer (tests/fuzz/fuzz_nflog.c). */

/* Where parsed packets go: decoy hits (hits set), egress drops (drops set) or
 * knocks (knocks set), exactly one of them; n of max filled. */
struct rotator_nflog_batch {
	struct rotator_hit *hits;
	struct rotator_egress_drop *drops;
	struct rotator_knock *knocks;
	size_t n, max;
	const char *end; /* of the datagram (set by rotator_nflog_parse) */
};

/* One datagram as read from the NFLOG socket (netlink messages, unsolicited:
 * portid and seq 0). Appends the decoy hits or egress drops it logs to batch
 * until it holds max; skips every other message and packet. 0, or -errno: an
 * NLMSG_ERROR's error (-ENOBUFS: the kernel dropped log messages), -EBADMSG
 * for a malformed one. */
int rotator_nflog_parse(const void *buf, size_t len, struct rotator_nflog_batch *batch);

/* --- ranges.c: blocked ranges as disjoint intervals ----------------------
 *
 * rotator_block_ranges() keeps the ranges the caller blocked (its decisions,
 * each with its own end) and programs ranges4/ranges6, interval sets with
 * timeouts, which the kernel refuses to hold overlapping: so what is
 * programmed is the decisions' union cut into disjoint segments, each with
 * the latest end of the decisions covering it (the kernel expires each on
 * its own), minus the addresses that are never blocked. An address is a
 * number (IPv4 in the low 32 bits); ranges are inclusive. Pure: the unit test
 * (tests/unit/test_rotator_ranges.c) drives it alone. */

__extension__ typedef unsigned __int128 range_u128;

/* a range decided again with an end this close to its old one keeps the old
 * one (a resync resends the same decisions with their remaining time) */
#define ROTATOR_RANGE_SAME_MS 2000

struct rotator_range_decision {
	int family;
	range_u128 start, end;
	uint64_t until_ms; /* CLOCK_MONOTONIC, ms */
	/* a segment carried over from an adopted table: its decisions are
	 * unknown, an unban of any range takes the part it covers */
	bool adopted;
};

struct rotator_range_map {
	struct rotator_range_decision *d;
	size_t n, cap;
};

struct rotator_range_segment {
	int family;
	range_u128 start, end;
	uint64_t until_ms;
};

/* addresses never blocked (NeverBlock=) */
struct rotator_range_hole {
	int family;
	range_u128 start, end;
};

/* one element of an interval set as the kernel dumps it */
struct rotator_range_elem {
	range_u128 value;
	bool end; /* NFT_SET_ELEM_INTERVAL_END: the address after an interval */
	uint64_t expires_in_ms;
};

range_u128 rotator_range_value(const struct rotator_addr *addr);
/* the value as the set's key: 4 or 16 bytes, network order */
void rotator_range_key(int family, range_u128 value, uint8_t out[16]);
/* -EINVAL for a bad family or prefix length; host bits are ignored */
int rotator_range_from_prefix(const struct rotator_addr *addr, unsigned prefix_len,
			      range_u128 *ret_start, range_u128 *ret_end);
void rotator_range_map_free(struct rotator_range_map *m);
int rotator_range_map_copy(const struct rotator_range_map *m, struct rotator_range_map *ret);
/* a decision; the same range again takes the new end (see ROTATOR_RANGE_SAME_MS);
 * -E2BIG beyond ROTATOR_MAX_RANGES decisions */
int rotator_range_ban(struct rotator_range_map *m, int family, range_u128 start, range_u128 end,
		      uint64_t until_ms);
/* the decision of exactly this range is removed (and the part of adopted
 * segments inside it); other decisions keep what they cover */
int rotator_range_unban(struct rotator_range_map *m, int family, range_u128 start, range_u128 end);
/* decisions whose end has passed are dropped */
void rotator_range_expire(struct rotator_range_map *m, uint64_t now_ms);
/* the disjoint segments to program, IPv4 ones first, each family sorted
 * (malloc'ed) */
int rotator_range_segments(const struct rotator_range_map *m,
			   const struct rotator_range_hole *holes, size_t n_holes, uint64_t now_ms,
			   struct rotator_range_segment **ret, size_t *ret_n);
/* what to delete (in old, not in new) and to add (in new, not in old) */
int rotator_range_diff(const struct rotator_range_segment *old, size_t n_old,
		       const struct rotator_range_segment *new_list, size_t n_new,
		       struct rotator_range_segment **ret_del, size_t *ret_n_del,
		       struct rotator_range_segment **ret_add, size_t *ret_n_add);
/* a dumped set's elements (reordered) as adopted decisions added to m */
int rotator_range_from_elems(int family, struct rotator_range_elem *elems, size_t n,
			     uint64_t now_ms, struct rotator_range_map *m);

/* --- block_ranges.c: ranges4/ranges6 in the kernel ------------------------ */

/* The decisions in force and the segments the kernel holds for them. */
struct rotator_range_state {
	struct rotator_range_map map;
	struct rotator_range_segment *programmed;
	size_t n_programmed;
	/* programmed is what the kernel has (else the next commit flushes the
	 * sets and adds every segment) */
	bool valid;
};

uint64_t rotator_ranges_now_ms(void);
/* "first-last" of a range, for errors */
void rotator_range_text(int family, range_u128 start, range_u128 end, char *buf, size_t len);
/* Element messages: del's segments destroyed (or, with flush, both sets
 * flushed), then add's added with their timeouts, per family. */
int rotator_ranges_add_elems(struct nft_txn *t, const struct rotator_range_segment *del,
			     size_t n_del, const struct rotator_range_segment *add, size_t n_add,
			     bool flush, uint64_t now_ms);
/* One transaction that makes the kernel's segments those of *map (minus the
 * holes); on success *map becomes st's (and *map is emptied), on failure
 * both stay as they were, st marked unknown (the next commit flushes). */
int rotator_ranges_commit(struct nft_sock *sock, struct rotator_range_state *st,
			  struct rotator_range_map *map, const struct rotator_range_hole *holes,
			  size_t n_holes, struct step_error *err);
/* The segments of the table being adopted, as adopted decisions (their time
 * left), into st (its old contents freed), st->programmed what the adopting
 * transaction adds back; st->valid false until it commits. */
int rotator_ranges_read(struct nft_sock *sock, struct rotator_range_state *st,
			struct step_error *err);
void rotator_ranges_state_free(struct rotator_range_state *st);
/* rotator_block_ranges() on st (arguments as there) */
int rotator_ranges_block(struct nft_sock *sock, struct rotator_range_state *st,
			 const struct rotator_range *bans, size_t n_bans,
			 const struct rotator_range *unbans, size_t n_unbans,
			 const struct rotator_range *never, size_t n_never, struct step_error *err);
