/* SPDX-License-Identifier: MIT */
#include "fleet_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "macro.h"

/* How many candidates are probed after the random start before giving up;
 * pools are far larger than the number of live instances of a service. */
#define PROBES_MAX 4096

static bool address_equal(const struct netdev_address *a, const struct netdev_address *b)
{
	if (a->family != b->family)
		return false;
	return a->family == AF_INET ? a->v4.s_addr == b->v4.s_addr
				    : memcmp(&a->v6, &b->v6, sizeof(a->v6)) == 0;
}

static bool is_in_use(const struct netdev_address *a, const struct netdev_address *in_use, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (address_equal(a, &in_use[i]))
			return true;
	return false;
}

/* The host part of the n-th usable address of the pool. IPv4 pools skip the
 * network and broadcast addresses (prefix <= 30); IPv6 pools skip the
 * subnet-router anycast address (host part 0). */
static void nth_address(const struct cidr *pool, uint64_t n, struct netdev_address *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->family = pool->family;
	if (pool->family == AF_INET) {
		uint32_t base = ntohl(pool->addr.v4.s_addr);
		ret->v4.s_addr = htonl(base + 1 + (uint32_t)n);
	} else {
		ret->v6 = pool->addr.v6;
		n += 1;
		for (int i = 15; i >= 8 && n; i--) {
			unsigned sum = ret->v6.s6_addr[i] + (unsigned)(n & 0xff);
			ret->v6.s6_addr[i] = (uint8_t)sum;
			n = (n >> 8) + (sum >> 8);
		}
	}
}

static uint64_t usable_addresses(const struct cidr *pool)
{
	unsigned host_bits = (pool->family == AF_INET ? 32 : 128) - pool->prefix_len;

	if (pool->family == AF_INET)
		return (1ull << host_bits) - 2; /* prefixes are /8../30: network, broadcast */
	/* Only the low 64 bits vary: plenty for instances. */
	return host_bits >= 64 ? UINT64_MAX : (1ull << host_bits) - 1;
}

int address_pool_pick_from(const struct cidr *pool, const struct netdev_address *in_use,
			   size_t n_in_use, uint64_t random, struct netdev_address *ret_address)
{
	uint64_t n = usable_addresses(pool);
	uint64_t start = random % n;

	for (uint64_t i = 0; i < n && i < PROBES_MAX; i++) {
		struct netdev_address candidate;

		nth_address(pool, (start + i) % n, &candidate);
		if (!is_in_use(&candidate, in_use, n_in_use)) {
			*ret_address = candidate;
			return 0;
		}
	}
	return -EADDRNOTAVAIL;
}

int address_pool_pick(const struct cidr *pool, const struct netdev_address *in_use, size_t n_in_use,
		      struct netdev_address *ret_address)
{
	uint64_t random;

	if (getrandom(&random, sizeof(random), 0) != sizeof(random))
		return -EIO;
	return address_pool_pick_from(pool, in_use, n_in_use, random, ret_address);
}
