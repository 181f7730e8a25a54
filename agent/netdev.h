/* SPDX-License-Identifier: MIT */
/* An instance's link to the host: a veth pair whose inner end is created
 * directly in the instance's network namespace, the instance's address (a
 * /32 or /128 from the service's pool) inside, and a host route to it. The
 * host end carries only the link-local gateway (169.254.0.1, fe80::1), the
 * same on every instance link, so no pool address is spent on the host.
 * rtnetlink through libmnl. */
#pragma once

#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>

#define NETDEV_GATEWAY4 "169.254.0.1"
#define NETDEV_GATEWAY6 "fe80::1"
#define NETDEV_INNER_IFNAME "eth0"

struct netdev_address {
	int family; /* AF_INET or AF_INET6 */
	union {
		struct in_addr v4;
		struct in6_addr v6;
	};
};

struct netdev_link_spec {
	char host_ifname[IFNAMSIZ];
	int netns_fd; /* the instance's network namespace */
	struct netdev_address addresses[2]; /* at most one IPv4 and one IPv6 */
	size_t n_addresses;
};

/* Create and configure the pair. On failure nothing is left behind and
 * ret_error says which step failed. */
int netdev_create_instance_link(const struct netdev_link_spec *spec, char ret_error[256]);

/* Delete a link by name (its veth peer goes with it). -ENODEV if absent. */
int netdev_delete_link(const char *ifname);

/* ifindex of a host link, or negative errno. */
int netdev_ifindex(const char *ifname);

