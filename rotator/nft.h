/* SPDX-License-Identifier: MIT */
/*
 * The netlink transaction layer: one long-lived non-blocking
 * NETLINK_NETFILTER socket, batches paged in memory and sent as ONE
 * transaction (one sendmsg with an iovec of all pages), guarded by the
 * ruleset generation id, with a bounded retry on ERESTART. Every message gets
 * its own sequence number and a description, so a kernel error is reported
 * against the object that caused it, with the extended-ack text.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"
#include "rotator.h"

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
		   struct rotator_error *err);

/* Fill err (if not NULL) with a library-side reason. Returns e. */
int rotator_error_set(struct rotator_error *err, int e, const char *object, const char *fmt, ...)
	_printf_(4, 5);
