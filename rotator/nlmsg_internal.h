/* SPDX-License-Identifier: MIT */
/* Framing check before libmnl's mnl_cb_run(), for the rotator's netlink
 * parse steps (nflog.c, conntrack.c). Not for use outside rotator/. */
#pragma once

#include <stddef.h>

#include <linux/netlink.h>

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
