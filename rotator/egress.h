/* SPDX-License-Identifier: MIT */
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
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "rotator.h"

struct egress_box {
	uint8_t proto;
	uint8_t addr_first[16], addr_last[16]; /* network order; 4 bytes for IPv4 */
	uint16_t port_first, port_last;        /* host order */
};

#define EGRESS_MAX_BOXES 1024 /* per instance and family */

/* The boxes of rules for family (AF_INET, AF_INET6): rules with a
 * destination of the other family are skipped. Up to max into boxes, count
 * in *ret_n. -E2BIG if more are needed, -EINVAL for a bad rule. */
int egress_boxes(const struct rotator_egress *rules, size_t n_rules, int family,
		 struct egress_box *boxes, size_t max, size_t *ret_n);
