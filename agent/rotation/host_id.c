/* SPDX-License-Identifier: MIT */
/* The host's public address, the default HostId= of per-client schedules
 * (docs/mtd.policy.5, [Agent]): the interface of the default route, then its
 * first global address, over rtnetlink dumps (libmnl). Read once at start. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libmnl/libmnl.h>
#include <linux/rtnetlink.h>

#include "macro.h"
#include "rotation_internal.h"

struct dump {
	int family;
	/* routes: the default route's interface */
	int oif;
	/* addresses: the first global one on oif */
	bool found;
	uint8_t addr[16];
};

static int route_attr(const struct nlattr *attr, void *data)
{
	const struct nlattr **tb = data;
	int type = mnl_attr_get_type(attr);

	if (mnl_attr_type_valid(attr, RTA_MAX) < 0)
		return MNL_CB_OK;
	tb[type] = attr;
	return MNL_CB_OK;
}

static int on_route(const struct nlmsghdr *nlh, void *data)
{
	struct dump *d = data;
	const struct rtmsg *rt = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *tb[RTA_MAX + 1] = {};

	if (nlh->nlmsg_type != RTM_NEWROUTE || rt->rtm_family != d->family ||
	    rt->rtm_dst_len != 0 || rt->rtm_type != RTN_UNICAST || d->oif)
		return MNL_CB_OK;
	mnl_attr_parse(nlh, sizeof(*rt), route_attr, tb);
	if (tb[RTA_TABLE] && mnl_attr_get_u32(tb[RTA_TABLE]) != RT_TABLE_MAIN)
		return MNL_CB_OK;
	if (!tb[RTA_TABLE] && rt->rtm_table != RT_TABLE_MAIN)
		return MNL_CB_OK;
	if (tb[RTA_OIF])
		d->oif = (int)mnl_attr_get_u32(tb[RTA_OIF]);
	return MNL_CB_OK;
}

static int addr_attr(const struct nlattr *attr, void *data)
{
	const struct nlattr **tb = data;

	if (mnl_attr_type_valid(attr, IFA_MAX) < 0)
		return MNL_CB_OK;
	tb[mnl_attr_get_type(attr)] = attr;
	return MNL_CB_OK;
}

static int on_addr(const struct nlmsghdr *nlh, void *data)
{
	struct dump *d = data;
	const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *tb[IFA_MAX + 1] = {};
	const struct nlattr *a;
	size_t len = d->family == AF_INET ? 4 : 16;

	if (nlh->nlmsg_type != RTM_NEWADDR || ifa->ifa_family != d->family || d->found ||
	    (int)ifa->ifa_index != d->oif || ifa->ifa_scope != RT_SCOPE_UNIVERSE)
		return MNL_CB_OK;
	mnl_attr_parse(nlh, sizeof(*ifa), addr_attr, tb);
	a = tb[IFA_LOCAL] ? tb[IFA_LOCAL] : tb[IFA_ADDRESS];
	if (!a || mnl_attr_get_payload_len(a) != len)
		return MNL_CB_OK;
	memcpy(d->addr, mnl_attr_get_payload(a), len);
	d->found = true;
	return MNL_CB_OK;
}

static void socket_closep(struct mnl_socket **s)
{
	if (*s)
		mnl_socket_close(*s);
}

static int dump(int type, struct dump *d, mnl_cb_t cb)
{
	_cleanup_(socket_closep) struct mnl_socket *nl =
	    mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
	_cleanup_free_ char *buf = malloc(MNL_SOCKET_BUFFER_SIZE);
	struct nlmsghdr *nlh;
	uint32_t seq = (uint32_t)time(NULL), portid;
	int r;

	if (!nl || !buf)
		return -ENOMEM;
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0)
		return -errno;
	portid = mnl_socket_get_portid(nl);
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = (uint16_t)type;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	nlh->nlmsg_seq = seq;
	if (type == RTM_GETROUTE) {
		struct rtmsg *rt = mnl_nlmsg_put_extra_header(nlh, sizeof(*rt));
		rt->rtm_family = (uint8_t)d->family;
	} else {
		struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
		ifa->ifa_family = (uint8_t)d->family;
	}
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	for (;;) {
		ssize_t n = mnl_socket_recvfrom(nl, buf, MNL_SOCKET_BUFFER_SIZE);

		if (n < 0)
			return -errno;
		r = mnl_cb_run(buf, (size_t)n, seq, portid, cb, d);
		if (r < 0)
			return -errno;
		if (r == MNL_CB_STOP)
			return 0;
	}
}

int rotation_default_host_id(char *buf, size_t size)
{
	static const int families[] = {AF_INET, AF_INET6};

	for (size_t i = 0; i < ELEMENTSOF(families); i++) {
		struct dump d = {.family = families[i]};

		if (dump(RTM_GETROUTE, &d, on_route) < 0 || !d.oif)
			continue;
		if (dump(RTM_GETADDR, &d, on_addr) < 0 || !d.found)
			continue;
		if (!inet_ntop(d.family, d.addr, buf, (socklen_t)size))
			return -ENOSPC;
		return 0;
	}
	return -EADDRNOTAVAIL;
}
