/* SPDX-License-Identifier: MIT */
/* Cutting flows that came in through public ports (revoked client doors):
 * a ctnetlink dump of each family's table, then a delete of every flow the
 * agent's DNAT made whose original destination port is one of them. */
#include "rotator.h"

#include <errno.h>
#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rotator_internal.h"
#include "macro.h"

struct cut {
	uint8_t proto;
	const uint64_t *ports; /* bitmap; NULL: by pairs */
	/* or: flows from these sources to these doors (a client's admissions) */
	const struct rotator_admission *pairs;
	size_t n_pairs;
	/* the original tuples of the flows to delete, each an attribute as the
	 * dump gave it (CTA_TUPLE_ORIG) */
	uint8_t **tuples;
	uint16_t *tuple_len;
	size_t n, cap;
	int error;
};

/* The protocol and destination port of a tuple. */
static bool tuple_proto_port(const struct nlattr *tuple, uint8_t *ret_proto, uint16_t *ret_port)
{
	const struct nlattr *a, *p = NULL;
	bool has_proto = false, has_port = false;

	mnl_attr_for_each_nested(a, tuple) if (mnl_attr_get_type(a) == CTA_TUPLE_PROTO) p = a;
	if (!p)
		return false;
	mnl_attr_for_each_nested(a, p)
	{
		if (mnl_attr_get_type(a) == CTA_PROTO_NUM && mnl_attr_get_payload_len(a) >= 1) {
			*ret_proto = mnl_attr_get_u8(a);
			has_proto = true;
		} else if (mnl_attr_get_type(a) == CTA_PROTO_DST_PORT &&
			   mnl_attr_get_payload_len(a) >= 2) {
			*ret_port = ntohs(mnl_attr_get_u16(a));
			has_port = true;
		}
	}
	return has_proto && has_port;
}

/* The source address of a tuple (family AF_INET or AF_INET6), 0 if none. */
static int tuple_source(const struct nlattr *tuple, struct rotator_addr *ret)
{
	const struct nlattr *a, *ip = NULL;

	mnl_attr_for_each_nested(a, tuple) if (mnl_attr_get_type(a) == CTA_TUPLE_IP) ip = a;
	if (!ip)
		return 0;
	mnl_attr_for_each_nested(a, ip)
	{
		if (mnl_attr_get_type(a) == CTA_IP_V4_SRC && mnl_attr_get_payload_len(a) == 4) {
			ret->family = AF_INET;
			memcpy(&ret->in, mnl_attr_get_payload(a), 4);
			return AF_INET;
		}
		if (mnl_attr_get_type(a) == CTA_IP_V6_SRC && mnl_attr_get_payload_len(a) == 16) {
			ret->family = AF_INET6;
			memcpy(&ret->in6, mnl_attr_get_payload(a), 16);
			return AF_INET6;
		}
	}
	return 0;
}

/* Whether a flow (its original tuple, of protocol proto to port) is one
 * the cut asks for. */
static bool flow_wanted(const struct cut *c, const struct nlattr *orig, uint8_t proto,
			uint16_t port)
{
	struct rotator_addr source = {0};

	if (c->ports)
		return proto == c->proto && (c->ports[port / 64] & (1ull << (port % 64)));
	if (!tuple_source(orig, &source))
		return false;
	for (size_t i = 0; i < c->n_pairs; i++) {
		const struct rotator_admission *p = &c->pairs[i];

		if (p->proto == proto && p->port == port && p->source.family == source.family &&
		    memcmp(source.family == AF_INET ? (const void *)&p->source.in
						    : (const void *)&p->source.in6,
			   source.family == AF_INET ? (const void *)&source.in
						    : (const void *)&source.in6,
			   source.family == AF_INET ? 4 : 16) == 0)
			return true;
	}
	return false;
}

static int on_flow(const struct nlmsghdr *nlh, void *userdata)
{
	struct cut *c = userdata;
	const struct nlattr *a, *orig = NULL, *status = NULL;
	uint8_t proto = 0;
	uint16_t port = 0, len;
	uint8_t *copy;

	mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg))
	{
		if (mnl_attr_get_type(a) == CTA_TUPLE_ORIG)
			orig = a;
		else if (mnl_attr_get_type(a) == CTA_STATUS)
			status = a;
	}
	if (!orig || !status || mnl_attr_get_payload_len(status) < 4 ||
	    !(ntohl(mnl_attr_get_u32(status)) & IPS_DST_NAT) ||
	    !tuple_proto_port(orig, &proto, &port) || !flow_wanted(c, orig, proto, port))
		return MNL_CB_OK;
	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 64;
		uint8_t **t = realloc(c->tuples, cap * sizeof(*t));
		uint16_t *l;

		if (!t) {
			c->error = -ENOMEM;
			return MNL_CB_ERROR;
		}
		c->tuples = t;
		l = realloc(c->tuple_len, cap * sizeof(*l));
		if (!l) {
			c->error = -ENOMEM;
			return MNL_CB_ERROR;
		}
		c->tuple_len = l;
		c->cap = cap;
	}
	len = mnl_attr_get_payload_len(orig);
	copy = malloc(len ? len : 1);
	if (!copy) {
		c->error = -ENOMEM;
		return MNL_CB_ERROR;
	}
	memcpy(copy, mnl_attr_get_payload(orig), len);
	c->tuples[c->n] = copy;
	c->tuple_len[c->n++] = len;
	return MNL_CB_OK;
}

static void socket_closep(struct mnl_socket **s)
{
	if (*s)
		mnl_socket_close(*s);
}

/* One request (a dump, or a delete with an ack) and its answers through cb. */
static int request(struct mnl_socket *nl, int family, uint8_t type, uint16_t flags,
		   const uint8_t *tuple, uint16_t tuple_len, struct cut *c)
{
	_cleanup_free_ char *buf = malloc(MNL_SOCKET_BUFFER_SIZE);
	struct nlmsghdr *nlh;
	struct nfgenmsg *nfg;
	uint32_t seq = (uint32_t)time(NULL) ^ (uint32_t)random(),
		 portid = mnl_socket_get_portid(nl);
	int r;

	if (!buf)
		return -ENOMEM;
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | type;
	nlh->nlmsg_flags = NLM_F_REQUEST | flags;
	nlh->nlmsg_seq = seq;
	nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	nfg->nfgen_family = (uint8_t)family;
	nfg->version = NFNETLINK_V0;
	if (tuple)
		mnl_attr_put(nlh, CTA_TUPLE_ORIG | NLA_F_NESTED, tuple_len, tuple);
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	for (;;) {
		ssize_t n = mnl_socket_recvfrom(nl, buf, MNL_SOCKET_BUFFER_SIZE);

		if (n < 0)
			return -errno;
		r = mnl_cb_run(buf, rotator_nlmsg_whole(buf, (size_t)n), seq, portid,
			       tuple ? NULL : on_flow, c);
		if (r < 0)
			return c->error ? c->error : -errno;
		if (r == MNL_CB_STOP || tuple)
			return 0;
	}
}

/* Dump each family's table and delete every flow c asks for. */
static int cut_flows(struct cut *c, size_t *ret_cut)
{
	static const int families[] = {AF_INET, AF_INET6};
	_cleanup_(socket_closep) struct mnl_socket *nl = NULL;
	size_t cut = 0;
	int r = 0;

	nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
	if (!nl)
		return -errno;
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0)
		return -errno;
	for (size_t f = 0; r >= 0 && f < ELEMENTSOF(families); f++) {
		c->n = 0;
		r = request(nl, families[f], IPCTNL_MSG_CT_GET, NLM_F_DUMP, NULL, 0, c);
		for (size_t i = 0; i < c->n; i++) {
			/* gone meanwhile (ENOENT) is as good as cut */
			int k = r < 0 ? 0
				      : request(nl, families[f], IPCTNL_MSG_CT_DELETE, NLM_F_ACK,
						c->tuples[i], c->tuple_len[i], c);
			if (k == 0)
				cut++;
			else if (k != -ENOENT && r >= 0)
				r = k;
			free(c->tuples[i]);
		}
	}
	free(c->tuples);
	free(c->tuple_len);
	if (r < 0)
		return r;
	*ret_cut = cut;
	return 0;
}

int rotator_conntrack_cut(uint8_t proto, const uint16_t *ports, size_t n_ports, size_t *ret_cut)
{
	_cleanup_free_ uint64_t *bitmap = calloc(65536 / 64, sizeof(uint64_t));
	struct cut c = {.proto = proto};

	if (!bitmap)
		return -ENOMEM;
	for (size_t i = 0; i < n_ports; i++)
		bitmap[ports[i] / 64] |= 1ull << (ports[i] % 64);
	c.ports = bitmap;
	return cut_flows(&c, ret_cut);
}

int rotator_conntrack_cut_admitted(const struct rotator_admission *a, size_t n, size_t *ret_cut)
{
	struct cut c = {.pairs = a, .n_pairs = n};

	if (n == 0) {
		*ret_cut = 0;
		return 0;
	}
	return cut_flows(&c, ret_cut);
}
