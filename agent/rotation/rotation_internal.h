/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy.h"

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
