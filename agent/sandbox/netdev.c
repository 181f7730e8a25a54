/* SPDX-License-Identifier: MIT */
#include "sandbox.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"

struct rtnl {
	struct mnl_socket *nl;
	uint32_t seq;
	uint32_t portid;
};

static void rtnl_close(struct rtnl *r)
{
	if (r->nl)
		mnl_socket_close(r->nl);
	r->nl = NULL;
}

static int rtnl_open(struct rtnl *r)
{
	r->nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
	if (!r->nl)
		return -errno;
	if (mnl_socket_bind(r->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		int e = -errno;
		rtnl_close(r);
		return e;
	}
	r->portid = mnl_socket_get_portid(r->nl);
	r->seq = (uint32_t)time(NULL);
	return 0;
}

/* An rtnetlink socket inside another network namespace: sockets keep the
 * namespace they were created in, so enter it, open, and come back. */
static int rtnl_open_in(struct rtnl *r, int netns_fd)
{
	_cleanup_close_ int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	int e;

	if (self < 0)
		return -errno;
	if (setns(netns_fd, CLONE_NEWNET) < 0)
		return -errno;
	e = rtnl_open(r);
	if (setns(self, CLONE_NEWNET) < 0)
		abort(); /* the agent would be stranded in an instance's namespace */
	return e;
}

static struct nlmsghdr *rtnl_msg(struct rtnl *r, char *buf, uint16_t type, uint16_t flags)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
	nlh->nlmsg_seq = ++r->seq;
	return nlh;
}

static int rtnl_talk(struct rtnl *r, struct nlmsghdr *nlh)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	ssize_t n;

	if (mnl_socket_sendto(r->nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	n = mnl_socket_recvfrom(r->nl, buf, sizeof(buf));
	if (n < 0)
		return -errno;
	if (mnl_cb_run(buf, (size_t)n, nlh->nlmsg_seq, r->portid, NULL, NULL) < 0)
		return -errno;
	return 0;
}

static int link_create_veth(struct rtnl *r, const char *host, const char *inner, int netns_fd)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh;
	struct ifinfomsg *ifi, *peer;
	struct nlattr *linkinfo, *data, *peer_attr;

	memset(buf, 0, sizeof(buf));
	nlh = rtnl_msg(r, buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, host);
	linkinfo = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
	mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "veth");
	data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
	peer_attr = mnl_attr_nest_start(nlh, VETH_INFO_PEER);
	peer = mnl_nlmsg_put_extra_header(nlh, sizeof(*peer));
	peer->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, inner);
	mnl_attr_put_u32(nlh, IFLA_NET_NS_FD, (uint32_t)netns_fd);
	mnl_attr_nest_end(nlh, peer_attr);
	mnl_attr_nest_end(nlh, data);
	mnl_attr_nest_end(nlh, linkinfo);
	return rtnl_talk(r, nlh);
}

/* RTM_NEWLINK (set flags) or RTM_DELLINK on an existing link. */
static int link_request(struct rtnl *r, uint16_t type, int ifindex, unsigned flags)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh;
	struct ifinfomsg *ifi;

	memset(buf, 0, sizeof(buf));
	nlh = rtnl_msg(r, buf, type, 0);
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = ifindex;
	ifi->ifi_flags = flags;
	ifi->ifi_change = flags;
	return rtnl_talk(r, nlh);
}

static int link_set_up(struct rtnl *r, int ifindex)
{
	return link_request(r, RTM_NEWLINK, ifindex, IFF_UP);
}

static int link_delete(struct rtnl *r, int ifindex)
{
	return link_request(r, RTM_DELLINK, ifindex, 0);
}

static size_t address_size(int family)
{
	return family == AF_INET ? sizeof(struct in_addr) : sizeof(struct in6_addr);
}

static int address_add(struct rtnl *r, int ifindex, int family, const void *addr,
		       unsigned prefix_len)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh;
	struct ifaddrmsg *ifa;

	memset(buf, 0, sizeof(buf));
	nlh = rtnl_msg(r, buf, RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE);
	ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = (uint8_t)family;
	ifa->ifa_prefixlen = (uint8_t)prefix_len;
	ifa->ifa_index = (uint32_t)ifindex;
	ifa->ifa_scope = RT_SCOPE_UNIVERSE;
	/* No duplicate address detection: the link has exactly two ends. */
	ifa->ifa_flags = family == AF_INET6 ? IFA_F_NODAD : 0;
	mnl_attr_put(nlh, IFA_LOCAL, address_size(family), addr);
	mnl_attr_put(nlh, IFA_ADDRESS, address_size(family), addr);
	return rtnl_talk(r, nlh);
}

/* dst/prefix via gateway (onlink) or directly on the link when gateway is NULL. */
static int route_add(struct rtnl *r, int ifindex, int family, const void *dst, unsigned prefix_len,
		     const void *gateway)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh;
	struct rtmsg *rtm;

	memset(buf, 0, sizeof(buf));
	nlh = rtnl_msg(r, buf, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE);
	rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	rtm->rtm_family = (uint8_t)family;
	rtm->rtm_dst_len = (uint8_t)prefix_len;
	rtm->rtm_table = RT_TABLE_MAIN;
	rtm->rtm_protocol = RTPROT_STATIC;
	rtm->rtm_type = RTN_UNICAST;
	rtm->rtm_scope = gateway ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
	if (gateway)
		rtm->rtm_flags = RTNH_F_ONLINK;
	if (prefix_len)
		mnl_attr_put(nlh, RTA_DST, address_size(family), dst);
	if (gateway)
		mnl_attr_put(nlh, RTA_GATEWAY, address_size(family), gateway);
	mnl_attr_put_u32(nlh, RTA_OIF, (uint32_t)ifindex);
	return rtnl_talk(r, nlh);
}

int netdev_ifindex(const char *ifname)
{
	unsigned index = if_nametoindex(ifname);

	return index ? (int)index : -errno;
}

/* if_nametoindex works in the caller's namespace only; inside the instance
 * the inner link and lo have fixed names, so ask there. */
static int ifindex_in(int netns_fd, const char *ifname)
{
	_cleanup_close_ int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	int index;

	if (self < 0)
		return -errno;
	if (setns(netns_fd, CLONE_NEWNET) < 0)
		return -errno;
	index = netdev_ifindex(ifname);
	if (setns(self, CLONE_NEWNET) < 0)
		abort();
	return index;
}

/* The step names itself; the kernel's errno says why. */
#define STEP(what)                                                                                 \
	do {                                                                                       \
		if (r < 0) {                                                                       \
			step_error_set(ret_error, what, r, "%s", "");                              \
			goto fail;                                                                 \
		}                                                                                  \
	} while (0)

static void gateway_of(int family, struct netdev_address *ret)
{
	ret->family = family;
	if (family == AF_INET)
		inet_pton(AF_INET, NETDEV_GATEWAY4, &ret->v4);
	else
		inet_pton(AF_INET6, NETDEV_GATEWAY6, &ret->v6);
}

int netdev_create_instance_link(const struct netdev_link_spec *spec, struct step_error *ret_error)
{
	struct rtnl host = {0}, inner = {0};
	int host_index = -1, inner_index, lo_index, r;
	static const struct in6_addr any = IN6ADDR_ANY_INIT; /* also 0.0.0.0 */

	if (spec->n_addresses == 0 || spec->n_addresses > ELEMENTSOF(spec->addresses))
		return step_error_set(ret_error, "spec", EINVAL,
				      "an instance link needs one or two addresses");
	r = rtnl_open(&host);
	STEP("rtnetlink");
	r = link_create_veth(&host, spec->host_ifname, NETDEV_INNER_IFNAME, spec->netns_fd);
	STEP("create veth");
	host_index = r = netdev_ifindex(spec->host_ifname);
	STEP("host link");
	r = link_set_up(&host, host_index);
	STEP("host link up");

	r = rtnl_open_in(&inner, spec->netns_fd);
	STEP("rtnetlink in the instance");
	lo_index = r = ifindex_in(spec->netns_fd, "lo");
	STEP("instance lo");
	r = link_set_up(&inner, lo_index);
	STEP("instance lo up");
	inner_index = r = ifindex_in(spec->netns_fd, NETDEV_INNER_IFNAME);
	STEP("instance link");
	r = link_set_up(&inner, inner_index);
	STEP("instance link up");

	for (size_t i = 0; i < spec->n_addresses; i++) {
		const struct netdev_address *a = &spec->addresses[i];
		unsigned host_len = a->family == AF_INET ? 32 : 128;
		struct netdev_address gateway;

		gateway_of(a->family, &gateway);
		r = address_add(&host, host_index, a->family, &gateway.v4, host_len);
		STEP("host gateway address");
		r = route_add(&host, host_index, a->family, &a->v4, host_len, NULL);
		STEP("route to the instance");
		r = address_add(&inner, inner_index, a->family, &a->v4, host_len);
		STEP("instance address");
		r = route_add(&inner, inner_index, a->family, &any, 0, &gateway.v4);
		STEP("instance default route");
	}

	rtnl_close(&inner);
	rtnl_close(&host);
	return 0;
fail:
	if (host_index > 0 && host.nl)
		(void)link_delete(&host, host_index);
	rtnl_close(&inner);
	rtnl_close(&host);
	return r;
}

int netdev_delete_link(const char *ifname)
{
	struct rtnl r = {0};
	int index = netdev_ifindex(ifname), e;

	if (index < 0)
		return -ENODEV;
	e = rtnl_open(&r);
	if (e < 0)
		return e;
	e = link_delete(&r, index);
	rtnl_close(&r);
	return e;
}
