/* SPDX-License-Identifier: MIT */
/*
 * The rotator's element state and delta (rotator/delta.c) without a kernel:
 * old state + new plan -> the deletions and additions of the transaction.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rotator_internal.h"

#define ELEMENTSOF_T(x) (sizeof(x) / sizeof((x)[0]))

static struct rotator_service svc(const char *name, uint16_t port, uint16_t grace,
				  const char *backend, const uint16_t *decoys, size_t n_decoys)
{
	struct rotator_service s = {.name = name,
				    .proto = IPPROTO_TCP,
				    .port = port,
				    .grace_port = grace,
				    .decoys = decoys,
				    .n_decoys = n_decoys,
				    .backend_port = 8080};

	if (inet_pton(AF_INET, backend, &s.backend.in) == 1)
		s.backend.family = AF_INET;
	else {
		assert_int_equal(inet_pton(AF_INET6, backend, &s.backend.in6), 1);
		s.backend.family = AF_INET6;
	}
	return s;
}

static int build(struct rs_state *st, const struct rotator_service *s, size_t n)
{
	struct rotator_plan plan = {.services = s, .n_services = n};
	struct step_error err = {};

	return delta_state_build(st, &plan, 0, &err);
}

/* The text of every deletion (-) and addition (+) of set `set`, sorted. */
static void delta_text(const struct rs_state *old, const struct rs_state *new_state,
		       const struct rs_delta *d, enum rs_set set, char *buf, size_t len)
{
	char items[256][96];
	size_t n = 0, off = 0;

	for (size_t i = 0; i < d->n_del[set]; i++, n++) {
		items[n][0] = '-';
		delta_elem_text(set, rs_table_elem(&old->sets[set], d->del[set][i]), items[n] + 1,
				95);
	}
	for (size_t i = 0; i < d->n_add[set]; i++, n++) {
		items[n][0] = '+';
		delta_elem_text(set, rs_table_elem(&new_state->sets[set], d->add[set][i]),
				items[n] + 1, 95);
	}
	qsort(items, n, sizeof(items[0]), (int (*)(const void *, const void *))strcmp);
	buf[0] = 0;
	for (size_t i = 0; i < n; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? ", " : "", items[i]);
}

static void test_delta_first_apply_adds_everything(void **state)
{
	static const uint16_t decoys[] = {27447, 27448};
	struct rotator_service s[] = {svc("web", 24847, 0, "10.0.0.1", decoys, 2),
				      svc("web", 24847, 0, "fd00::1", decoys, 2)};
	struct rs_state empty = {}, st = {};
	struct rs_delta d = {};
	char text[1024];

	assert_int_equal(build(&st, s, 2), 0);
	assert_int_equal(delta_compute(&empty, &st, &d), 0);
	assert_int_equal(delta_count_del(&d), 0);
	/* svc4, svc6, backends4, backends6, 2 decoys shared by both entries,
	 * ipv4 and ipv6 in the live bank's active set */
	assert_int_equal(delta_count_add(&d), 8);
	delta_text(&empty, &st, &d, RS_SET_ACTIVE0, text, sizeof(text));
	assert_string_equal(text, "+ipv4, +ipv6");
	delta_text(&empty, &st, &d, RS_SET_SVC4, text, sizeof(text));
	assert_string_equal(text, "+tcp . 24847 : 10.0.0.1 . 8080");
	delta_text(&empty, &st, &d, RS_SET_SVC6, text, sizeof(text));
	assert_string_equal(text, "+tcp . 24847 : fd00::1 . 8080");
	delta_text(&empty, &st, &d, RS_SET_BACKENDS4, text, sizeof(text));
	assert_string_equal(text, "+tcp . 10.0.0.1 . 8080");
	delta_text(&empty, &st, &d, RS_SET_DECOYS, text, sizeof(text));
	assert_string_equal(text, "+tcp . 27447, +tcp . 27448");
	delta_state_free(&st);
	delta_free(&d);
}

static void test_delta_boundary_keeps_grace_and_replaces_decoys(void **state)
{
	static const uint16_t d0[] = {30001, 30002, 30003}, d1[] = {30003, 30004, 30005};
	struct rotator_service before[] = {svc("a", 20000, 0, "10.0.0.1", d0, 3),
					   svc("b", 21000, 0, "10.0.0.2", NULL, 0)};
	struct rotator_service after[] = {svc("a", 20001, 20000, "10.0.0.1", d1, 3),
					  svc("b", 21000, 0, "10.0.0.2", NULL, 0)};
	struct rs_state old = {}, st = {};
	struct rs_delta d = {};
	char text[1024];

	before[0].local_access = after[0].local_access = true;
	assert_int_equal(build(&old, before, 2), 0);
	assert_int_equal(build(&st, after, 2), 0);
	assert_int_equal(delta_compute(&old, &st, &d), 0);
	/* the previous port stays (now grace), b is not touched at all */
	delta_text(&old, &st, &d, RS_SET_SVC4, text, sizeof(text));
	assert_string_equal(text, "+tcp . 20001 : 10.0.0.1 . 8080");
	delta_text(&old, &st, &d, RS_SET_LOCAL4, text, sizeof(text));
	assert_string_equal(text, "+tcp . 20001 : 10.0.0.1 . 8080");
	delta_text(&old, &st, &d, RS_SET_BACKENDS4, text, sizeof(text));
	assert_string_equal(text, "");
	/* a decoy kept across the boundary (30003) is not touched */
	delta_text(&old, &st, &d, RS_SET_DECOYS, text, sizeof(text));
	assert_string_equal(text, "+tcp . 30004, +tcp . 30005, -tcp . 30001, -tcp . 30002");
	assert_int_equal(delta_count_del(&d), 2);
	assert_int_equal(delta_count_add(&d), 4);
	delta_state_free(&old);
	delta_state_free(&st);
	delta_free(&d);
}

static void test_delta_grace_end_deletes_only_the_grace_port(void **state)
{
	struct rotator_service in_grace[] = {svc("a", 20001, 20000, "10.0.0.1", NULL, 0)};
	struct rotator_service after[] = {svc("a", 20001, 0, "10.0.0.1", NULL, 0)};
	struct rs_state old = {}, st = {};
	struct rs_delta d = {};
	char text[1024];

	assert_int_equal(build(&old, in_grace, 1), 0);
	assert_int_equal(build(&st, after, 1), 0);
	assert_int_equal(delta_compute(&old, &st, &d), 0);
	delta_text(&old, &st, &d, RS_SET_SVC4, text, sizeof(text));
	assert_string_equal(text, "-tcp . 20000 : 10.0.0.1 . 8080");
	assert_int_equal(delta_count_del(&d), 1);
	assert_int_equal(delta_count_add(&d), 0);
	delta_state_free(&old);
	delta_state_free(&st);
	delta_free(&d);
}

static void test_delta_unchanged_plan_is_empty(void **state)
{
	static const uint16_t decoys[] = {30001};
	struct rotator_service s[] = {svc("a", 20001, 20000, "10.0.0.1", decoys, 1)};
	struct rs_state old = {}, st = {};
	struct rs_delta d = {};

	assert_int_equal(build(&old, s, 1), 0);
	assert_int_equal(build(&st, s, 1), 0);
	assert_int_equal(delta_compute(&old, &st, &d), 0);
	assert_int_equal(delta_count_del(&d) + delta_count_add(&d), 0);
	delta_state_free(&old);
	delta_state_free(&st);
	delta_free(&d);
}

static void test_delta_backend_change_replaces_the_map_value(void **state)
{
	struct rotator_service before[] = {svc("a", 20001, 0, "10.0.0.1", NULL, 0)};
	struct rotator_service after[] = {svc("a", 20001, 0, "10.0.0.9", NULL, 0)};
	struct rs_state old = {}, st = {};
	struct rs_delta d = {};
	char text[1024];

	assert_int_equal(build(&old, before, 1), 0);
	assert_int_equal(build(&st, after, 1), 0);
	assert_int_equal(delta_compute(&old, &st, &d), 0);
	/* same key, other data: delete then add (deletions are sent first) */
	delta_text(&old, &st, &d, RS_SET_SVC4, text, sizeof(text));
	assert_string_equal(text, "+tcp . 20001 : 10.0.0.9 . 8080, -tcp . 20001 : 10.0.0.1 . 8080");
	delta_text(&old, &st, &d, RS_SET_BACKENDS4, text, sizeof(text));
	assert_string_equal(text, "+tcp . 10.0.0.9 . 8080, -tcp . 10.0.0.1 . 8080");
	delta_state_free(&old);
	delta_state_free(&st);
	delta_free(&d);
}

static void test_state_rejects_public_port_twice_naming_both(void **state)
{
	struct rotator_service s[] = {svc("a", 26000, 0, "10.0.0.1", NULL, 0),
				      svc("b", 26000, 0, "10.0.0.2", NULL, 0)};
	struct rotator_plan plan = {.services = s, .n_services = 2};
	struct step_error err = {};
	struct rs_state st = {};

	assert_int_equal(delta_state_build(&st, &plan, 0, &err), -EEXIST);
	assert_string_equal(err.step, "service b: public ports in map svc4_0");
	assert_string_equal(err.detail, "port tcp/26000 is also used by service a");
	assert_int_equal(delta_state_count(&st), 0);
	delta_state_free(&st);
}

static void test_state_shares_backends_and_finds_decoy_owner(void **state)
{
	static const uint16_t da[] = {30001}, db[] = {30002};
	struct rotator_service s[] = {svc("a", 20000, 0, "10.0.0.1", da, 1),
				      svc("b", 21000, 0, "10.0.0.1", db, 1)};
	struct rs_state st = {};
	const struct rs_elem *e;
	uint8_t key[8];

	assert_int_equal(build(&st, s, 2), 0);
	assert_int_equal(st.sets[RS_SET_BACKENDS4].n, 1); /* same backend once */
	delta_key_proto_port(key, IPPROTO_TCP, 30002);
	e = delta_state_find(&st, RS_SET_DECOYS, key, sizeof(key));
	assert_non_null(e);
	assert_string_equal(delta_state_owner(&st, e), "b");
	delta_key_proto_port(key, IPPROTO_UDP, 30002);
	assert_null(delta_state_find(&st, RS_SET_DECOYS, key, sizeof(key)));
	delta_state_free(&st);
}

/* Many services and memory reuse across builds: the delta of two unrelated
 * plans deletes all of the old and adds all of the new. */
static void test_delta_large_plans_reuse_memory(void **state)
{
	enum { N = 2000 };
	static struct rotator_service a[N], b[N];
	static char names[N][16];
	static uint16_t decoys[N][4];
	struct rs_state old = {}, st = {};
	struct rs_delta d = {};

	for (size_t i = 0; i < N; i++) {
		snprintf(names[i], sizeof(names[i]), "s%zu", i);
		for (size_t j = 0; j < 4; j++)
			decoys[i][j] = (uint16_t)(40000 + i * 4 + j);
		a[i] = svc(names[i], (uint16_t)(1000 + i), 0, "10.0.0.1", decoys[i], 4);
		b[i] =
		    svc(names[i], (uint16_t)(5000 + i), (uint16_t)(1000 + i), "10.0.0.1", NULL, 0);
	}
	for (int round = 0; round < 3; round++) {
		assert_int_equal(build(&old, a, N), 0);
		assert_int_equal(build(&st, b, N), 0);
		assert_int_equal(delta_compute(&old, &st, &d), 0);
		assert_int_equal(d.n_add[RS_SET_SVC4], N);	 /* the new ports */
		assert_int_equal(d.n_del[RS_SET_SVC4], 0);	 /* old ports stay as grace */
		assert_int_equal(d.n_del[RS_SET_DECOYS], 4 * N); /* every decoy goes */
		assert_int_equal(d.n_add[RS_SET_BACKENDS4] + d.n_del[RS_SET_BACKENDS4], 0);
	}
	delta_state_free(&old);
	delta_state_free(&st);
	delta_free(&d);
}

/* Two banks: the services in the live one, the next services in the idle
 * one, backends of both; nothing of either in the wrong bank. */
static void test_state_banks_hold_services_and_next(void **state)
{
	static const uint16_t d0[] = {30001}, d1[] = {30002};
	struct rotator_service now[] = {svc("a", 20000, 0, "10.0.0.1", d0, 1)};
	struct rotator_service next[] = {svc("a", 20001, 20000, "10.0.0.2", d1, 1)};
	struct rotator_plan plan = {.services = now, .n_services = 1, .next = next, .n_next = 1};
	struct step_error err = {};
	struct rs_state empty = {}, st = {};
	struct rs_delta d = {};
	char text[1024];

	assert_int_equal(delta_state_build(&st, &plan, 1, &err), 0);
	assert_int_equal(delta_compute(&empty, &st, &d), 0);
	delta_text(&empty, &st, &d, RS_SET_SVC4_1, text, sizeof(text));
	assert_string_equal(text, "+tcp . 20000 : 10.0.0.1 . 8080");
	delta_text(&empty, &st, &d, RS_SET_DECOYS_1, text, sizeof(text));
	assert_string_equal(text, "+tcp . 30001");
	delta_text(&empty, &st, &d, RS_SET_SVC4, text, sizeof(text));
	assert_string_equal(text, "+tcp . 20000 : 10.0.0.2 . 8080, +tcp . 20001 : 10.0.0.2 . 8080");
	delta_text(&empty, &st, &d, RS_SET_DECOYS, text, sizeof(text));
	assert_string_equal(text, "+tcp . 30002");
	delta_text(&empty, &st, &d, RS_SET_BACKENDS4, text, sizeof(text));
	assert_string_equal(text, "+tcp . 10.0.0.1 . 8080, +tcp . 10.0.0.2 . 8080");
	delta_text(&empty, &st, &d, RS_SET_ACTIVE1, text, sizeof(text));
	assert_string_equal(text, "+ipv4, +ipv6");
	assert_int_equal(st.sets[RS_SET_ACTIVE0].n, 0);
	/* the same port twice in the next services is refused, naming the bank */
	next[0].grace_port = 0;
	plan.n_next = 1;
	{
		struct rotator_service twice[] = {next[0], svc("b", 20001, 0, "10.0.0.3", NULL, 0)};

		plan.next = twice;
		plan.n_next = 2;
		assert_int_equal(delta_state_build(&st, &plan, 1, &err), -EEXIST);
		assert_string_equal(err.step, "service b: public ports in map svc4_0");
	}
	delta_state_free(&st);
	delta_free(&d);
}

/* A switch of banks changes the active sets and nothing else; the staging
 * that follows changes only the now idle bank (and the backends' union). */
static void test_delta_switch_then_staging(void **state)
{
	static const uint16_t d0[] = {30001, 30002}, d1[] = {30003}, d2[] = {30004};
	struct rotator_service p0[] = {svc("a", 20000, 0, "10.0.0.1", d0, 2)};
	struct rotator_service p1[] = {svc("a", 20001, 20000, "10.0.0.1", d1, 1)};
	struct rotator_service p2[] = {svc("a", 20001, 0, "10.0.0.1", d1, 1)};
	struct rotator_service p3[] = {svc("a", 20002, 20001, "10.0.0.1", d2, 1)};
	struct rotator_plan before = {.services = p0, .n_services = 1, .next = p1, .n_next = 1};
	struct rotator_plan after = {.services = p1, .n_services = 1, .next = p2, .n_next = 1};
	struct rotator_plan later = {.services = p2, .n_services = 1, .next = p3, .n_next = 1};
	struct step_error err = {};
	struct rs_state old = {}, switched = {}, st = {};
	struct rs_delta d = {};
	char text[1024];

	assert_int_equal(delta_state_build(&old, &before, 0, &err), 0);
	assert_int_equal(delta_state_switch(&switched, 1), 0);
	assert_int_equal(delta_switch(&old, &switched, &d), 0);
	assert_int_equal(delta_count_del(&d), 2);
	assert_int_equal(delta_count_add(&d), 2);
	delta_text(&old, &switched, &d, RS_SET_ACTIVE0, text, sizeof(text));
	assert_string_equal(text, "-ipv4, -ipv6");
	delta_text(&old, &switched, &d, RS_SET_ACTIVE1, text, sizeof(text));
	assert_string_equal(text, "+ipv4, +ipv6");

	/* what the kernel has after the switch */
	assert_int_equal(delta_state_switch(&old, 1), 0);
	assert_int_equal(delta_state_build(&st, &after, 1, &err), 0);
	assert_int_equal(delta_compute(&old, &st, &d), 0);
	for (enum rs_set s = RS_SET_SVC4_1; s <= RS_SET_ACTIVE1; s++)
		assert_int_equal(d.n_del[s] + d.n_add[s], 0); /* the live bank: untouched */
	delta_text(&old, &st, &d, RS_SET_SVC4, text, sizeof(text));
	assert_string_equal(text, "+tcp . 20001 : 10.0.0.1 . 8080, -tcp . 20000 : 10.0.0.1 . 8080");
	delta_text(&old, &st, &d, RS_SET_DECOYS, text, sizeof(text));
	assert_string_equal(text, "+tcp . 30003, -tcp . 30001, -tcp . 30002");

	/* the grace end: another switch, back to bank 0 */
	delta_state_free(&old);
	old = st;
	st = (struct rs_state){};
	assert_int_equal(delta_state_build(&st, &later, 0, &err), 0);
	assert_int_equal(delta_switch(&old, &st, &d), 0);
	assert_int_equal(delta_count_del(&d) + delta_count_add(&d), 4);
	delta_state_free(&old);
	delta_state_free(&switched);
	delta_state_free(&st);
	delta_free(&d);
}

static struct rotator_addr addr(const char *text)
{
	struct rotator_addr a = {};

	if (inet_pton(AF_INET, text, &a.in) == 1)
		a.family = AF_INET;
	else {
		assert_int_equal(inet_pton(AF_INET6, text, &a.in6), 1);
		a.family = AF_INET6;
	}
	return a;
}

static struct rotator_egress egress(uint8_t proto, uint16_t first, uint16_t last, const char *dest,
				    unsigned prefix_len)
{
	struct rotator_egress e = {.proto = proto, .port_first = first, .port_last = last};

	if (dest) {
		e.has_destination = true;
		e.destination = addr(dest);
		e.prefix_len = prefix_len;
	}
	return e;
}

static int build_plan(struct rs_state *st, const struct rotator_service *s, size_t n,
		      const struct rotator_instance *in, size_t n_in, struct step_error *err)
{
	struct rotator_plan plan = {
	    .services = s, .n_services = n, .instances = in, .n_instances = n_in};

	return delta_state_build(st, &plan, 0, err);
}

/* Quarantine/replacement: the route moves to the new instance and the old
 * one's elements go, in the same delta; the service's other elements stay. */
static void test_delta_instance_swap_moves_route_and_removes_old_elements(void **state)
{
	struct rotator_addr a1[] = {addr("10.214.0.5"), addr("fd00:214::5")};
	struct rotator_addr a2[] = {addr("10.214.0.6")};
	struct rotator_egress eg[] = {egress(IPPROTO_UDP, 53, 53, "192.0.2.53", 32),
				      egress(IPPROTO_TCP, 443, 443, NULL, 0)};
	struct rotator_instance before[] = {{.name = "web-1",
					     .addresses = a1,
					     .n_addresses = 2,
					     .proto = IPPROTO_TCP,
					     .port = 8080,
					     .egress = eg,
					     .n_egress = 2}};
	struct rotator_instance after[] = {{.name = "web-2",
					    .addresses = a2,
					    .n_addresses = 1,
					    .proto = IPPROTO_TCP,
					    .port = 8080,
					    .egress = eg,
					    .n_egress = 1}};
	struct rotator_service s1[] = {svc("web", 20000, 0, "10.214.0.5", NULL, 0)};
	struct rotator_service s2[] = {svc("web", 20000, 0, "10.214.0.6", NULL, 0)};
	struct rs_state old = {}, st = {}, empty = {};
	struct rs_delta d = {};
	struct step_error err = {};
	char text[1024];

	assert_int_equal(build_plan(&old, s1, 1, before, 1, &err), 0);
	assert_int_equal(delta_compute(&empty, &old, &d), 0);
	delta_text(&empty, &old, &d, RS_SET_INSTANCES6, text, sizeof(text));
	assert_string_equal(text, "+fd00:214::5");
	delta_text(&empty, &old, &d, RS_SET_INGRESS4, text, sizeof(text));
	assert_string_equal(text, "+10.214.0.5 . tcp . 8080");
	/* no destination: every address of the family; udp only to its /32 */
	delta_text(&empty, &old, &d, RS_SET_EGRESS4, text, sizeof(text));
	assert_string_equal(text, "+10.214.0.5 . tcp . 0.0.0.0-255.255.255.255 . 443-443, "
				  "+10.214.0.5 . udp . 192.0.2.53-192.0.2.53 . 53-53");
	delta_text(&empty, &old, &d, RS_SET_EGRESS6, text, sizeof(text));
	assert_string_equal(
	    text, "+fd00:214::5 . tcp . ::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff . 443-443");

	assert_int_equal(build_plan(&st, s2, 1, after, 1, &err), 0);
	assert_int_equal(delta_compute(&old, &st, &d), 0);
	delta_text(&old, &st, &d, RS_SET_SVC4, text, sizeof(text));
	assert_string_equal(text,
			    "+tcp . 20000 : 10.214.0.6 . 8080, -tcp . 20000 : 10.214.0.5 . 8080");
	delta_text(&old, &st, &d, RS_SET_INSTANCES4, text, sizeof(text));
	assert_string_equal(text, "+10.214.0.6, -10.214.0.5");
	delta_text(&old, &st, &d, RS_SET_INSTANCES6, text, sizeof(text));
	assert_string_equal(text, "-fd00:214::5");
	delta_text(&old, &st, &d, RS_SET_INGRESS6, text, sizeof(text));
	assert_string_equal(text, "-fd00:214::5 . tcp . 8080");
	delta_text(&old, &st, &d, RS_SET_EGRESS4, text, sizeof(text));
	assert_string_equal(text, "+10.214.0.6 . udp . 192.0.2.53-192.0.2.53 . 53-53, "
				  "-10.214.0.5 . tcp . 0.0.0.0-255.255.255.255 . 443-443, "
				  "-10.214.0.5 . udp . 192.0.2.53-192.0.2.53 . 53-53");
	assert_string_equal(delta_state_owner(&st, rs_table_elem(&st.sets[RS_SET_INSTANCES4], 0)),
			    "web-2");

	/* the same plan again: nothing to send */
	assert_int_equal(build_plan(&old, s2, 1, after, 1, &err), 0);
	assert_int_equal(delta_compute(&st, &old, &d), 0);
	assert_int_equal(delta_count_del(&d) + delta_count_add(&d), 0);
	delta_state_free(&old);
	delta_state_free(&st);
	delta_free(&d);
}

static void test_state_rejects_instance_address_twice_naming_both(void **state)
{
	struct rotator_addr a[] = {addr("10.214.0.5")};
	struct rotator_instance in[] = {
	    {.name = "a", .addresses = a, .n_addresses = 1, .proto = IPPROTO_TCP, .port = 80},
	    {.name = "b", .addresses = a, .n_addresses = 1, .proto = IPPROTO_TCP, .port = 80},
	};
	struct step_error err = {};
	struct rs_state st = {};

	assert_int_equal(build_plan(&st, NULL, 0, in, 2, &err), -EEXIST);
	assert_string_equal(err.step, "instance b");
	assert_string_equal(err.detail, "address also used by instance a");
	assert_int_equal(delta_state_count(&st), 0);
	delta_state_free(&st);
}

/* A killed instance keeps only its addresses, in dead4/dead6 (its flows are
 * reset); a cut one is there too; an address a live instance has now is
 * the live one's, never in the dead sets. */
static void test_dead_instance_only_in_the_dead_sets(void **state)
{
	struct rotator_addr a1[] = {addr("10.214.0.5"), addr("fd00:214::5")};
	struct rotator_addr a2[] = {addr("10.214.0.6")};
	struct rotator_egress eg[] = {egress(IPPROTO_TCP, 443, 443, NULL, 0)};
	struct rotator_instance live[] = {{.name = "web-1",
					   .addresses = a1,
					   .n_addresses = 2,
					   .proto = IPPROTO_TCP,
					   .port = 8080,
					   .egress = eg,
					   .n_egress = 1},
					  {.name = "web-2",
					   .addresses = a2,
					   .n_addresses = 1,
					   .proto = IPPROTO_TCP,
					   .port = 8080}};
	struct rotator_instance killed[] = {{.name = "web-1",
					     .addresses = a1,
					     .n_addresses = 2,
					     .proto = IPPROTO_TCP,
					     .port = 8080,
					     .egress = eg,
					     .n_egress = 1,
					     .dead = true},
					    {.name = "web-2",
					     .addresses = a2,
					     .n_addresses = 1,
					     .proto = IPPROTO_TCP,
					     .port = 8080,
					     .cut = true}};
	/* web-3 took web-1's IPv4 address while web-1 is dead */
	struct rotator_instance reused[] = {killed[0],
					    {.name = "web-3",
					     .addresses = a1,
					     .n_addresses = 1,
					     .proto = IPPROTO_TCP,
					     .port = 8080}};
	struct rs_state old = {}, st = {};
	struct rs_delta d = {};
	struct step_error err = {};
	char text[1024];

	assert_int_equal(build_plan(&old, NULL, 0, live, 2, &err), 0);
	assert_int_equal(build_plan(&st, NULL, 0, killed, 2, &err), 0);
	assert_int_equal(delta_compute(&old, &st, &d), 0);
	delta_text(&old, &st, &d, RS_SET_DEAD4, text, sizeof(text));
	assert_string_equal(text, "+10.214.0.5, +10.214.0.6");
	delta_text(&old, &st, &d, RS_SET_DEAD6, text, sizeof(text));
	assert_string_equal(text, "+fd00:214::5");
	delta_text(&old, &st, &d, RS_SET_INSTANCES4, text, sizeof(text));
	assert_string_equal(text, "-10.214.0.5, -10.214.0.6");
	delta_text(&old, &st, &d, RS_SET_INGRESS4, text, sizeof(text));
	assert_string_equal(text, "-10.214.0.5 . tcp . 8080, -10.214.0.6 . tcp . 8080");
	/* the dead one's egress goes; the cut one had none */
	delta_text(&old, &st, &d, RS_SET_EGRESS4, text, sizeof(text));
	assert_string_equal(text, "-10.214.0.5 . tcp . 0.0.0.0-255.255.255.255 . 443-443");

	assert_int_equal(build_plan(&old, NULL, 0, reused, 2, &err), 0);
	assert_int_equal(delta_compute(&st, &old, &d), 0);
	delta_text(&st, &old, &d, RS_SET_DEAD4, text, sizeof(text));
	assert_string_equal(text, "-10.214.0.5, -10.214.0.6");
	delta_text(&st, &old, &d, RS_SET_DEAD6, text, sizeof(text));
	assert_string_equal(text, "");
	delta_text(&st, &old, &d, RS_SET_INSTANCES4, text, sizeof(text));
	assert_string_equal(text, "+10.214.0.5");
	delta_state_free(&old);
	delta_state_free(&st);
	delta_free(&d);
}

static void box_text(const struct egress_box *b, int family, char *buf, size_t len)
{
	char x[INET6_ADDRSTRLEN], y[INET6_ADDRSTRLEN];

	inet_ntop(family, b->addr_first, x, sizeof(x));
	inet_ntop(family, b->addr_last, y, sizeof(y));
	snprintf(buf, len, "%s %s-%s %u-%u", b->proto == IPPROTO_TCP ? "tcp" : "udp", x, y,
		 b->port_first, b->port_last);
}

/* pipapo refuses an element with an end inside another: overlapping rules
 * become disjoint boxes covering exactly their union */
static void test_egress_overlapping_rules_become_disjoint_boxes(void **state)
{
	struct rotator_egress rules[] = {
	    egress(IPPROTO_TCP, 5353, 5353, "10.88.0.0", 24),
	    egress(IPPROTO_TCP, 5300, 5353, "10.88.0.2", 32),
	    egress(IPPROTO_TCP, 5353, 5353, "10.88.0.77", 24), /* host bits ignored, same /24 */
	    egress(IPPROTO_UDP, 53, 53, NULL, 0),
	    egress(IPPROTO_UDP, 53, 53, "192.0.2.53", 32), /* inside the one above */
	    egress(IPPROTO_TCP, 80, 80, "fd00::", 8),	   /* other family: skipped */
	};
	struct egress_box boxes[16];
	char text[4][160];
	size_t n = 0;

	assert_int_equal(egress_boxes(rules, ELEMENTSOF_T(rules), AF_INET, boxes, 16, &n), 0);
	assert_int_equal(n, 4);
	for (size_t i = 0; i < n; i++)
		box_text(&boxes[i], AF_INET, text[i], sizeof(text[i]));
	assert_string_equal(text[0], "tcp 10.88.0.0-10.88.0.1 5353-5353");
	assert_string_equal(text[1], "tcp 10.88.0.2-10.88.0.2 5300-5353");
	assert_string_equal(text[2], "tcp 10.88.0.3-10.88.0.255 5353-5353");
	assert_string_equal(text[3], "udp 0.0.0.0-255.255.255.255 53-53");

	/* adjacent and overlapping port ranges merge; too many boxes is E2BIG */
	struct rotator_egress ports[] = {egress(IPPROTO_TCP, 1, 100, NULL, 0),
					 egress(IPPROTO_TCP, 101, 200, NULL, 0),
					 egress(IPPROTO_TCP, 150, 300, NULL, 0),
					 egress(IPPROTO_TCP, 1000, 1000, "fd00::1", 128)};
	assert_int_equal(egress_boxes(ports, 4, AF_INET6, boxes, 16, &n), 0);
	assert_int_equal(n, 4);
	box_text(&boxes[1], AF_INET6, text[0], sizeof(text[0]));
	assert_string_equal(text[0], "tcp fd00::1-fd00::1 1-300");
	assert_int_equal(egress_boxes(ports, 4, AF_INET6, boxes, 2, &n), -E2BIG);
	ports[0].port_first = 0;
	assert_int_equal(egress_boxes(ports, 4, AF_INET6, boxes, 16, &n), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_delta_first_apply_adds_everything),
	    cmocka_unit_test(test_delta_boundary_keeps_grace_and_replaces_decoys),
	    cmocka_unit_test(test_delta_grace_end_deletes_only_the_grace_port),
	    cmocka_unit_test(test_delta_unchanged_plan_is_empty),
	    cmocka_unit_test(test_delta_backend_change_replaces_the_map_value),
	    cmocka_unit_test(test_state_rejects_public_port_twice_naming_both),
	    cmocka_unit_test(test_state_shares_backends_and_finds_decoy_owner),
	    cmocka_unit_test(test_delta_large_plans_reuse_memory),
	    cmocka_unit_test(test_state_banks_hold_services_and_next),
	    cmocka_unit_test(test_delta_switch_then_staging),
	    cmocka_unit_test(test_delta_instance_swap_moves_route_and_removes_old_elements),
	    cmocka_unit_test(test_state_rejects_instance_address_twice_naming_both),
	    cmocka_unit_test(test_dead_instance_only_in_the_dead_sets),
	    cmocka_unit_test(test_egress_overlapping_rules_become_disjoint_boxes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
