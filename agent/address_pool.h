/* SPDX-License-Identifier: MIT */
/* Instance addresses: a random free address of a service's AddressPool=,
 * never the one its previous instance had, so an instance's address moves
 * with every replacement. */
#pragma once

#include <stddef.h>

#include "netdev.h"
#include "policy.h"

/* Pick an address of pool that is none of in_use[] (the service's live
 * instances, and the previous one). -EADDRNOTAVAIL when the pool is full. */
int address_pool_pick(const struct cidr *pool, const struct netdev_address *in_use, size_t n_in_use,
		      struct netdev_address *ret_address);

/* The same with an explicit random value (unit tests). */
int address_pool_pick_from(const struct cidr *pool, const struct netdev_address *in_use,
			   size_t n_in_use, uint64_t random, struct netdev_address *ret_address);
