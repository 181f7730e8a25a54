/* SPDX-License-Identifier: MIT */
/* Where a source's flows went: a dump of the connection tracking table
 * (ctnetlink over libmnl), keeping the flows whose original source is the
 * given address and reporting each one's reply source — the address the flow
 * really reached after the agent's DNAT (e.g. an instance). Used to link a
 * decoy hit to the instances that source reached before. */
#pragma once

#include <stddef.h>

#include "rotator.h"

/* Up to max distinct addresses into ret_found, count in *ret_n. */
int rotator_conntrack_reached(const struct rotator_addr *source, struct rotator_addr *ret_found,
			      size_t max, size_t *ret_n);
