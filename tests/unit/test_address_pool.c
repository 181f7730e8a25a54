/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "fleet_internal.h"

static struct cidr cidr(const char *text, unsigned prefix)
{
	struct cidr c = {.prefix_len = prefix};

	c.family = strchr(text, ':') ? AF_INET6 : AF_INET;
	assert_int_equal(inet_pton(c.family, text, &c.addr), 1);
	return c;
}

static const char *text(const struct netdev_address *a, char *buffer)
{
	return inet_ntop(a->family, &a->v4, buffer, INET6_ADDRSTRLEN);
}

static void test_ipv4_pool_skips_network_and_broadcast(void **state)
{
	struct cidr pool = cidr("10.213.0.0", 30); /* usable: .1 and .2 */
	struct netdev_address a, used[2];
	char buffer[INET6_ADDRSTRLEN];

	assert_int_equal(address_pool_pick_from(&pool, NULL, 0, 0, &a), 0);
	assert_string_equal(text(&a, buffer), "10.213.0.1");
	assert_int_equal(address_pool_pick_from(&pool, NULL, 0, 1, &a), 0);
	assert_string_equal(text(&a, buffer), "10.213.0.2");
	assert_int_equal(address_pool_pick_from(&pool, NULL, 0, 2, &a), 0);
	assert_string_equal(text(&a, buffer), "10.213.0.1"); /* wraps, never .0 or .3 */

	used[0] = a;
	assert_int_equal(address_pool_pick_from(&pool, used, 1, 0, &a), 0);
	assert_string_equal(text(&a, buffer), "10.213.0.2");
	used[1] = a;
	assert_int_equal(address_pool_pick_from(&pool, used, 2, 0, &a), -EADDRNOTAVAIL);
}

static void test_pick_never_repeats_the_previous_address(void **state)
{
	struct cidr pool = cidr("10.213.0.0", 24);
	struct netdev_address previous, next;

	for (unsigned i = 0; i < 200; i++) {
		assert_int_equal(address_pool_pick(&pool, NULL, 0, &previous), 0);
		assert_int_equal(address_pool_pick(&pool, &previous, 1, &next), 0);
		assert_int_not_equal(previous.v4.s_addr, next.v4.s_addr);
		assert_true((ntohl(next.v4.s_addr) & 0xff) != 0 &&
			    (ntohl(next.v4.s_addr) & 0xff) != 255);
	}
}

static void test_ipv6_pool_stays_inside_the_prefix(void **state)
{
	struct cidr pool = cidr("fd00:213::", 120);
	struct netdev_address a;
	char buffer[INET6_ADDRSTRLEN];

	assert_int_equal(address_pool_pick_from(&pool, NULL, 0, 0, &a), 0);
	assert_string_equal(text(&a, buffer), "fd00:213::1");
	assert_int_equal(address_pool_pick_from(&pool, NULL, 0, 254, &a), 0);
	assert_string_equal(text(&a, buffer), "fd00:213::ff");
	assert_int_equal(address_pool_pick_from(&pool, NULL, 0, 255, &a), 0);
	assert_string_equal(text(&a, buffer), "fd00:213::1");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ipv4_pool_skips_network_and_broadcast),
	    cmocka_unit_test(test_pick_never_repeats_the_previous_address),
	    cmocka_unit_test(test_ipv6_pool_stays_inside_the_prefix),
	};
	return cmocka_run_group_tests_name("address_pool", tests, NULL, NULL);
}
