/* SPDX-License-Identifier: MIT */
#include "rotator.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_conntrack_tcp.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rotator_internal.h"
#include "macro.h"

/* The address of one side of a tuple: CTA_TUPLE_IP / CTA_IP_V4_SRC etc. */
static bool tuple_address(const struct nlattr *tuple, uint16_t v4, uint16_t v6,
			  struct rotator_addr *ret)
{
	const struct nlattr *a, *ip = NULL;

	mnl_attr_for_each_nested(a, tuple) if (mnl_attr_get_type(a) == CTA_TUPLE_IP) ip = a;
	if (!ip)
		return false;
	mnl_attr_for_each_nested(a, ip)
	{
		if (mnl_attr_get_type(a) == v4 && mnl_attr_get_payload_len(a) == 4) {
			memset(ret, 0, sizeof(*ret));
			ret->family = AF_INET;
			memcpy(&ret->in, mnl_attr_get_payload(a), 4);
			return true;
		}
		if (mnl_attr_get_type(a) == v6 && mnl_attr_get_payload_len(a) == 16) {
			memset(ret, 0, sizeof(*ret));
			ret->family = AF_INET6;
			memcpy(&ret->in6, mnl_attr_get_payload(a), 16);
			return true;
		}
	}
	return false;
}

static bool same_address(const struct rotator_addr *a, const struct rotator_addr *b)
{
	return a->family == b->family &&
	       memcmp(&a->in6, &b->in6, a->family == AF_INET ? 4 : 16) == 0;
}

/* A TCP flow past its end (TIME_WAIT, CLOSE): conntrack keeps it for
 * minutes, but nothing flows any more. Other protocols: open while listed. */
static bool flow_over(const struct nlattr *protoinfo)
{
	const struct nlattr *a, *tcp = NULL;

	if (!protoinfo)
		return false;
	mnl_attr_for_each_nested(a, protoinfo) if (mnl_attr_get_type(a) == CTA_PROTOINFO_TCP) tcp =
	    a;
	if (!tcp)
		return false;
	mnl_attr_for_each_nested(a, tcp)
	{
		if (mnl_attr_get_type(a) == CTA_PROTOINFO_TCP_STATE &&
		    mnl_attr_get_payload_len(a) >= 1) {
			uint8_t state = *(const uint8_t *)mnl_attr_get_payload(a);

			return state == TCP_CONNTRACK_TIME_WAIT || state == TCP_CONNTRACK_CLOSE;
		}
	}
	return false;
}

/* Keep the flow's original tuple (to delete it later); a tuple that does
 * not fit is not kept (it is counted all the same). */
static void keep_tuple(struct rotator_conntrack_dump *d, const struct nlattr *orig)
{
	struct rotator_ct_tuple *t;
	uint16_t len = orig ? (uint16_t)MNL_ALIGN(orig->nla_len) : 0;

	if (!orig || len > ROTATOR_CT_TUPLE_MAX)
		return;
	if (d->n_tuples == d->cap_tuples) {
		size_t cap = d->cap_tuples ? 2 * d->cap_tuples : 16;
		struct rotator_ct_tuple *grown = realloc(d->tuples, cap * sizeof(*grown));

		if (!grown)
			return;
		d->tuples = grown;
		d->cap_tuples = cap;
	}
	t = &d->tuples[d->n_tuples++];
	memcpy(t->bytes, orig, orig->nla_len);
	t->len = orig->nla_len;
}

/* Counting: an open flow that a DNAT sent to d->to. */
static void count_flow(struct rotator_conntrack_dump *d, const struct nlattr *orig,
		       const struct nlattr *reply, const struct nlattr *status,
		       const struct nlattr *protoinfo, bool keep)
{
	struct rotator_addr dst;

	if (!reply || !status || mnl_attr_get_payload_len(status) < 4 ||
	    !(ntohl(mnl_attr_get_u32(status)) & IPS_DST_NAT) ||
	    !tuple_address(reply, CTA_IP_V4_SRC, CTA_IP_V6_SRC, &dst) ||
	    !same_address(&dst, d->to) || flow_over(protoinfo))
		return;
	d->count++;
	if (keep)
		keep_tuple(d, orig);
}

/* For each flow whose original source is the one asked about, the reply's
 * source: where the flow really went (after the DNAT). */
static int on_flow(const struct nlmsghdr *nlh, void *userdata)
{
	struct rotator_conntrack_dump *d = userdata;
	const struct nlattr *a, *orig = NULL, *reply = NULL, *status = NULL, *protoinfo = NULL;
	struct rotator_addr src, dst;

	mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg))
	{
		if (mnl_attr_get_type(a) == CTA_TUPLE_ORIG)
			orig = a;
		else if (mnl_attr_get_type(a) == CTA_TUPLE_REPLY)
			reply = a;
		else if (mnl_attr_get_type(a) == CTA_STATUS)
			status = a;
		else if (mnl_attr_get_type(a) == CTA_PROTOINFO)
			protoinfo = a;
	}
	if (d->to) {
		count_flow(d, orig, reply, status, protoinfo, d->end);
		return MNL_CB_OK;
	}
	if (!orig || !reply || !tuple_address(orig, CTA_IP_V4_SRC, CTA_IP_V6_SRC, &src) ||
	    !same_address(&src, d->source) ||
	    !tuple_address(reply, CTA_IP_V4_SRC, CTA_IP_V6_SRC, &dst))
		return MNL_CB_OK;
	for (size_t i = 0; i < d->n; i++)
		if (same_address(&d->found[i], &dst))
			return MNL_CB_OK;
	if (d->n < d->max)
		d->found[d->n++] = dst;
	return MNL_CB_OK;
}

int rotator_conntrack_parse(const void *buf, size_t len, uint32_t seq, uint32_t portid,
			    struct rotator_conntrack_dump *d)
{
	int r = mnl_cb_run(buf, rotator_nlmsg_whole(buf, len), seq, portid, on_flow, d);

	if (r > MNL_CB_STOP)
		return 1;
	return r < 0 ? -errno : 0;
}

/* The kernel's flag for "the reply tuple's source address" in CTA_FILTER
 * (net/netfilter/nf_conntrack_netlink.c, CTA_FILTER_F_CTA_IP_SRC). */
#define CT_FILTER_IP_SRC (1u << 0)

/* Ask the kernel to send only the flows whose reply source is d->to: the
 * table is walked there all the same, but not copied out and parsed here
 * (a busy host's table holds tens of thousands of flows). */
static void put_reply_source_filter(struct nlmsghdr *nlh, const struct rotator_addr *to)
{
	struct nlattr *tuple, *ip, *filter;

	tuple = mnl_attr_nest_start(nlh, CTA_TUPLE_REPLY);
	ip = mnl_attr_nest_start(nlh, CTA_TUPLE_IP);
	if (to->family == AF_INET)
		mnl_attr_put(nlh, CTA_IP_V4_SRC, 4, &to->in);
	else
		mnl_attr_put(nlh, CTA_IP_V6_SRC, 16, &to->in6);
	mnl_attr_nest_end(nlh, ip);
	mnl_attr_nest_end(nlh, tuple);
	filter = mnl_attr_nest_start(nlh, CTA_FILTER);
	mnl_attr_put_u32(nlh, CTA_FILTER_ORIG_FLAGS, 0);
	mnl_attr_put_u32(nlh, CTA_FILTER_REPLY_FLAGS, CT_FILTER_IP_SRC);
	mnl_attr_nest_end(nlh, filter);
}

/* One dump of the family's table through d; with filter (d->to set), only
 * the flows to d->to (the kernel filters: a kernel that refuses the filter
 * gets the unfiltered dump, filtered here as before). */
static int dump_once(int family, struct rotator_conntrack_dump *d, bool filter);

static int dump(int family, struct rotator_conntrack_dump *d)
{
	int r;

	if (!d->to)
		return dump_once(family, d, false);
	r = dump_once(family, d, true);
	if (r == -EINVAL || r == -EOPNOTSUPP) {
		d->count = 0;
		d->n_tuples = 0;
		r = dump_once(family, d, false);
	}
	return r;
}

static int dump_once(int family, struct rotator_conntrack_dump *d, bool filter)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct mnl_socket *nl;
	struct nlmsghdr *nlh;
	struct nfgenmsg *nfg;
	uint32_t seq = (uint32_t)time(NULL), portid;
	ssize_t n;
	int r = 0;

	nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
	if (!nl)
		return -errno;
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		r = -errno;
		goto out;
	}
	portid = mnl_socket_get_portid(nl);
	memset(buf, 0, sizeof(buf));
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	nlh->nlmsg_seq = seq;
	nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	nfg->nfgen_family = (uint8_t)family;
	nfg->version = NFNETLINK_V0;
	if (filter)
		put_reply_source_filter(nlh, d->to);
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
		r = -errno;
		goto out;
	}
	for (;;) {
		n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
		if (n < 0) {
			r = -errno;
			break;
		}
		r = rotator_conntrack_parse(buf, (size_t)n, seq, portid, d);
		if (r <= 0)
			break;
	}
out:
	mnl_socket_close(nl);
	return r < 0 ? r : 0;
}

int rotator_conntrack_reached(const struct rotator_addr *source, struct rotator_addr *ret_found,
			      size_t max, size_t *ret_n)
{
	struct rotator_conntrack_dump d = {.source = source, .found = ret_found, .max = max};
	int r = dump(source->family, &d);

	if (r < 0)
		return r;
	*ret_n = d.n;
	return 0;
}

int rotator_conntrack_count_to(const struct rotator_addr *addr, size_t *ret_count)
{
	struct rotator_conntrack_dump d = {.to = addr};
	int r = dump(addr->family, &d);

	if (r < 0)
		return r;
	*ret_count = d.count;
	return 0;
}

/* Delete one flow by its original tuple: 0, also when it is gone already. */
static int delete_flow(struct mnl_socket *nl, int family, const struct rotator_ct_tuple *tuple,
		       uint32_t seq)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct nfgenmsg *nfg;
	ssize_t n;
	int r;

	nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	nlh->nlmsg_seq = seq;
	nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	nfg->nfgen_family = (uint8_t)family;
	nfg->version = NFNETLINK_V0;
	memcpy(mnl_nlmsg_get_payload_tail(nlh), tuple->bytes, tuple->len);
	nlh->nlmsg_len += MNL_ALIGN(tuple->len);
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
	if (n < 0)
		return -errno;
	r = mnl_cb_run(buf, (size_t)n, seq, mnl_socket_get_portid(nl), NULL, NULL);
	return r < 0 && errno != ENOENT ? -errno : 0;
}

int rotator_conntrack_end_to(const struct rotator_addr *addr, size_t *ret_ended)
{
	struct rotator_conntrack_dump d = {.to = addr, .end = true};
	struct mnl_socket *nl;
	size_t ended = 0;
	int r = dump(addr->family, &d);

	if (r < 0)
		goto out;
	nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
	if (!nl) {
		r = -errno;
		goto out;
	}
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0)
		r = -errno;
	for (size_t i = 0; r >= 0 && i < d.n_tuples; i++) {
		r = delete_flow(nl, addr->family, &d.tuples[i], (uint32_t)time(NULL) + (uint32_t)i);
		if (r >= 0)
			ended++;
	}
	mnl_socket_close(nl);
out:
	free(d.tuples);
	if (r < 0)
		return r;
	*ret_ended = ended;
	return 0;
}
