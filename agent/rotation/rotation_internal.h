/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "policy.h"

/* Which ports are already bound in the agent's network namespace (TCP
 * listeners over NETLINK_SOCK_DIAG, else /proc/net; bound UDP sockets from
 * /proc/net): the schedule skips them so a public port never shadows a
 * program that listens on the host. */

struct host_ports;

int host_ports_scan(struct host_ports **ret_ports);
bool host_ports_is_bound(const struct host_ports *ports, enum policy_proto proto, uint16_t port);
void host_ports_free(struct host_ports *ports);
/* Whether the scan had to read /proc/net/tcp* (slow: it walks the whole
 * established hash) because NETLINK_SOCK_DIAG did not answer. */
bool host_ports_tcp_from_proc(const struct host_ports *ports);

/* Parse one /proc/net/{tcp,tcp6,udp,udp6} table (exposed for unit tests). */
int host_ports_parse_table(struct host_ports *ports, enum policy_proto proto, const char *text);
int host_ports_new(struct host_ports **ret_ports);
