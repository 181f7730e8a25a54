/* SPDX-License-Identifier: MIT */
/* The knock group's listener (rotation_internal.h): NFLOG in, admissions,
 * summaries of refusals, first connections named, clients seen. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "macro.h"
#include "rotation.h"
#include "rotation_internal.h"
#include "rotator.h"

#define ADMISSION_WAYS 4
#define ADMISSION_SETS (KNOCK_LISTENER_ADMISSIONS / ADMISSION_WAYS)

struct gated_service {
	char *name;
	struct knock_guard *guard;
};

/* A client that was admitted at least once: a line of the status. */
struct seen_client {
	char *service;
	char client[SCHEDULE_MAX_CLIENT_NAME + 1];
	uint64_t admitted;
	uint64_t last_admitted_usec, last_connected_usec;
	char last_admitted_source[INET6_ADDRSTRLEN], last_connected_source[INET6_ADDRSTRLEN];
	uint16_t last_door;
};

struct admission_entry {
	struct seen_client *client; /* NULL: free */
	struct rotator_addr source;
	uint8_t proto;
	uint16_t door;
	uint64_t epoch;
	uint64_t until_usec;
	bool reported; /* its first connection was reported */
};

struct knock_listener {
	struct knock_receiver_ops ops;
	struct knock_listener_hooks hooks;
	struct rotator_nflog *nflog;
	sd_event_source *io, *timer;
	struct gated_service *services;
	size_t n_services;
	struct seen_client **clients; /* sorted by (service, client) */
	size_t n_clients;
	struct admission_entry *admissions; /* ADMISSION_SETS x WAYS, at the first admission */
	uint64_t unclaimed;		    /* knocks at a port no gated service has */
	uint64_t unattributed;		    /* connections whose admission is not remembered */
};

static void address_text(const struct rotator_addr *a, char *buf, size_t size)
{
	if (!inet_ntop(a->family, a->family == AF_INET ? (const void *)&a->in : &a->in6, buf,
		       (socklen_t)size))
		snprintf(buf, size, "?");
}

/* --- services ---------------------------------------------------------------- */

static struct gated_service *service_find(const struct knock_listener *l, const char *name)
{
	for (size_t i = 0; i < l->n_services; i++)
		if (streq(l->services[i].name, name))
			return &l->services[i];
	return NULL;
}

struct knock_guard *knock_listener_service(struct knock_listener *l, const char *service,
					   const struct knock_guard_limits *limits)
{
	struct gated_service *s = service_find(l, service), *grown;
	struct knock_guard *guard = NULL;
	char *name;

	if (s) {
		knock_guard_set_limits(s->guard, limits);
		return s->guard;
	}
	grown = reallocarray(l->services, l->n_services + 1, sizeof(*grown));
	if (!grown)
		return NULL;
	l->services = grown;
	name = strdup(service);
	if (!name || knock_guard_new(limits, &guard) < 0) {
		free(name);
		return NULL;
	}
	l->services[l->n_services++] = (struct gated_service){.name = name, .guard = guard};
	return guard;
}

/* --- clients seen ------------------------------------------------------------- */

static int client_order(const char *service, const char *client, const struct seen_client *c)
{
	int r = strcmp(service, c->service);

	return r ? r : strcmp(client, c->client);
}

/* Where (service, client) is or would go. */
static size_t client_index(const struct knock_listener *l, const char *service, const char *client,
			   bool *ret_found)
{
	size_t lo = 0, hi = l->n_clients;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int r = client_order(service, client, l->clients[mid]);

		if (r == 0) {
			*ret_found = true;
			return mid;
		}
		if (r < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	*ret_found = false;
	return lo;
}

static struct seen_client *client_get(struct knock_listener *l, const char *service,
				      const char *client)
{
	bool found;
	size_t at = client_index(l, service, client, &found);
	struct seen_client *c, **grown;

	if (found)
		return l->clients[at];
	grown = reallocarray(l->clients, l->n_clients + 1, sizeof(*grown));
	if (!grown)
		return NULL;
	l->clients = grown;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->service = strdup(service);
	if (!c->service) {
		free(c);
		return NULL;
	}
	snprintf(c->client, sizeof(c->client), "%s", client);
	memmove(&l->clients[at + 1], &l->clients[at], (l->n_clients - at) * sizeof(*l->clients));
	l->clients[at] = c;
	l->n_clients++;
	return c;
}

/* Forgets the client at index at, and every admission naming it. */
static void client_remove(struct knock_listener *l, size_t at)
{
	struct seen_client *c = l->clients[at];

	if (l->admissions)
		for (size_t i = 0; i < ADMISSION_SETS * ADMISSION_WAYS; i++)
			if (l->admissions[i].client == c)
				l->admissions[i].client = NULL;
	free(c->service);
	free(c);
	memmove(&l->clients[at], &l->clients[at + 1],
		(l->n_clients - at - 1) * sizeof(*l->clients));
	l->n_clients--;
}

void knock_listener_drop_client(struct knock_listener *l, const char *service, const char *client)
{
	bool found;
	size_t at = client_index(l, service, client, &found);

	if (found)
		client_remove(l, at);
}

void knock_listener_drop_service(struct knock_listener *l, const char *service)
{
	struct gated_service *s = service_find(l, service);

	for (size_t i = l->n_clients; i-- > 0;)
		if (streq(l->clients[i]->service, service))
			client_remove(l, i);
	if (!s)
		return;
	knock_guard_free(s->guard);
	free(s->name);
	*s = l->services[--l->n_services];
}

void knock_listener_retain(
    struct knock_listener *l, bool (*keep_service)(const char *service, void *userdata),
    bool (*keep_client)(const char *service, const char *client, void *userdata), void *userdata)
{
	for (size_t i = l->n_clients; i-- > 0;)
		if (!keep_client(l->clients[i]->service, l->clients[i]->client, userdata))
			client_remove(l, i);
	for (size_t i = l->n_services; i-- > 0;)
		if (!keep_service(l->services[i].name, userdata)) {
			knock_guard_free(l->services[i].guard);
			free(l->services[i].name);
			l->services[i] = l->services[--l->n_services];
		}
}

/* --- admissions, to name the client of a first connection --------------------- */

static bool same_address(const struct rotator_addr *a, const struct rotator_addr *b)
{
	return a->family == b->family &&
	       (a->family == AF_INET ? a->in.s_addr == b->in.s_addr
				     : memcmp(&a->in6, &b->in6, sizeof(a->in6)) == 0);
}

static struct admission_entry *admission_set(const struct knock_listener *l,
					     const struct rotator_addr *source, uint16_t door)
{
	uint64_t h = door;
	const uint8_t *p = (const uint8_t *)&source->in6;
	size_t n = source->family == AF_INET ? 4 : 16;

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * UINT64_C(0x100000001b3);
	h ^= h >> 29;
	return &l->admissions[(h % ADMISSION_SETS) * ADMISSION_WAYS];
}

static void admission_record(struct knock_listener *l, struct seen_client *client,
			     const struct rotator_addr *source, uint8_t proto, uint16_t door,
			     uint64_t epoch, uint64_t until_usec, uint64_t real_usec)
{
	struct admission_entry *set, *victim = NULL;
	bool reported = false;

	if (!l->admissions) {
		l->admissions = calloc(ADMISSION_SETS * ADMISSION_WAYS, sizeof(*l->admissions));
		if (!l->admissions)
			return; /* its connections will be reported without a name */
	}
	set = admission_set(l, source, door);
	for (size_t w = 0; w < ADMISSION_WAYS && !victim; w++)
		if (set[w].client && set[w].proto == proto && set[w].door == door &&
		    same_address(&set[w].source, source))
			victim = &set[w];
	for (size_t w = 0; w < ADMISSION_WAYS && !victim; w++)
		if (!set[w].client || set[w].until_usec <= real_usec)
			victim = &set[w];
	/* all live: the one that expires soonest */
	if (!victim) {
		victim = &set[0];
		for (size_t w = 1; w < ADMISSION_WAYS; w++)
			if (set[w].until_usec < victim->until_usec)
				victim = &set[w];
	}
	/* a knock again within the epoch: its connection was already told */
	if (victim->client == client && victim->proto == proto && victim->door == door &&
	    victim->epoch == epoch && same_address(&victim->source, source))
		reported = victim->reported;
	*victim = (struct admission_entry){.client = client,
					   .reported = reported,
					   .source = *source,
					   .proto = proto,
					   .door = door,
					   .epoch = epoch,
					   .until_usec = until_usec};
}

static struct admission_entry *admission_find(const struct knock_listener *l,
					      const struct rotator_addr *source, uint8_t proto,
					      uint16_t door)
{
	struct admission_entry *set;

	if (!l->admissions)
		return NULL;
	set = admission_set(l, source, door);
	for (size_t w = 0; w < ADMISSION_WAYS; w++)
		if (set[w].client && set[w].proto == proto && set[w].door == door &&
		    same_address(&set[w].source, source))
			return &set[w];
	return NULL;
}

size_t knock_listener_admissions(const struct knock_listener *l, const char *service,
				 const char *client, uint64_t real_usec,
				 struct rotator_admission *ret, size_t max)
{
	size_t n = 0;

	if (!l->admissions)
		return 0;
	for (size_t i = 0; i < ADMISSION_SETS * ADMISSION_WAYS && n < max; i++) {
		const struct admission_entry *a = &l->admissions[i];

		if (!a->client || a->until_usec <= real_usec ||
		    !streq(a->client->service, service) || !streq(a->client->client, client))
			continue;
		ret[n++] = (struct rotator_admission){.source = a->source,
						      .proto = a->proto,
						      .port = a->door,
						      .expires_in_ms =
							  (a->until_usec - real_usec + 999) / 1000};
	}
	return n;
}

/* --- summaries ----------------------------------------------------------------- */

static void arm_timer(struct knock_listener *l, uint64_t due_usec)
{
	uint64_t current = 0;
	int enabled = SD_EVENT_OFF;

	if (!l->timer || due_usec == 0)
		return;
	(void)sd_event_source_get_enabled(l->timer, &enabled);
	if (enabled != SD_EVENT_OFF && sd_event_source_get_time(l->timer, &current) >= 0 &&
	    current <= due_usec)
		return;
	(void)sd_event_source_set_time(l->timer, due_usec);
	(void)sd_event_source_set_enabled(l->timer, SD_EVENT_ONESHOT);
}

void knock_listener_flush(struct knock_listener *l, uint64_t mono_usec)
{
	uint64_t earliest = 0;

	for (size_t i = 0; i < l->n_services; i++) {
		struct gated_service *s = &l->services[i];
		uint64_t next = 0;

		for (int r = KNOCK_GUARD_ADMIT + 1; r < KNOCK_GUARD_N_REASONS; r++) {
			uint64_t n = knock_guard_flush(s->guard, r, mono_usec, &next);

			if (n && l->hooks.on_refused)
				l->hooks.on_refused(s->name, knock_guard_reason_name(r), n,
						    l->hooks.userdata);
		}
		if (next && (earliest == 0 || next < earliest))
			earliest = next;
	}
	arm_timer(l, earliest);
}

static int on_timer(sd_event_source *source, uint64_t usec, void *userdata)
{
	knock_listener_flush(userdata, now(CLOCK_MONOTONIC));
	return 0;
}

/* --- records --------------------------------------------------------------------- */

static void knocked(struct knock_listener *l, const struct rotator_knock *k, uint64_t real_usec,
		    uint64_t mono_usec)
{
	struct knock_datagram d = {
	    .source = k->source, .port = k->port, .payload = k->payload, .len = k->len};
	struct knock_outcome out;
	char source[INET6_ADDRSTRLEN], error[STEP_ERROR_FORMAT_MAX];
	struct rotation_client_event e;
	struct seen_client *c;
	uint64_t next = 0;

	if (k->truncated)
		d.len = KNOCK_MAX_SIZE + 1; /* longer than any knock: malformed */
	knock_receiver_handle(&l->ops, &d, real_usec, mono_usec, &out);
	if (!out.service) {
		l->unclaimed++;
		return;
	}
	if (out.summarise && l->hooks.on_refused)
		l->hooks.on_refused(out.service->name, knock_guard_reason_name(out.reason),
				    out.summarise, l->hooks.userdata);
	if (out.reason != KNOCK_GUARD_ADMIT && out.reason != KNOCK_GUARD_FAILED) {
		(void)knock_guard_flush(out.service->guard, KNOCK_GUARD_N_REASONS, mono_usec,
					&next);
		arm_timer(l, next);
		return;
	}
	address_text(&k->source, source, sizeof(source));
	e = (struct rotation_client_event){.service = out.service->name,
					   .client = out.client,
					   .source = source,
					   .door = out.admission.door,
					   .epoch = out.admission.epoch,
					   .until_usec = out.admission.until_usec};
	if (out.reason == KNOCK_GUARD_FAILED) {
		e.error = step_error_format(&out.error, error, sizeof(error));
	} else {
		c = client_get(l, out.service->name, out.client);
		if (c) {
			c->admitted++;
			c->last_admitted_usec = real_usec;
			snprintf(c->last_admitted_source, sizeof(c->last_admitted_source), "%s",
				 source);
			admission_record(l, c, &k->source, out.service->proto, out.admission.door,
					 out.admission.epoch, out.admission.until_usec, real_usec);
		}
	}
	if (l->hooks.on_admitted)
		l->hooks.on_admitted(&e, l->hooks.userdata);
}

/* The kernel reports every new flow of an admitted source to a gated door;
 * the first of each admission (one per epoch) is told. A flow whose
 * admission is not remembered (replaced in the table, or made before the
 * agent restarted) is only counted. */
static void connected(struct knock_listener *l, const struct rotator_knock *k, uint64_t real_usec)
{
	struct admission_entry *a = admission_find(l, &k->source, k->proto, k->port);
	char source[INET6_ADDRSTRLEN];
	struct rotation_client_event e;

	if (!a) {
		l->unattributed++;
		return;
	}
	address_text(&k->source, source, sizeof(source));
	a->client->last_connected_usec = real_usec;
	a->client->last_door = k->port;
	snprintf(a->client->last_connected_source, sizeof(a->client->last_connected_source), "%s",
		 source);
	if (a->reported)
		return;
	a->reported = true;
	e = (struct rotation_client_event){.service = a->client->service,
					   .client = a->client->client,
					   .source = source,
					   .door = k->port,
					   .epoch = a->epoch,
					   .until_usec = a->until_usec};
	if (l->hooks.on_connected)
		l->hooks.on_connected(&e, l->hooks.userdata);
}

void knock_listener_handle(struct knock_listener *l, const struct rotator_knock *k,
			   uint64_t real_usec, uint64_t mono_usec)
{
	if (k->kind == ROTATOR_KNOCK_CONNECTION)
		connected(l, k, real_usec);
	else
		knocked(l, k, real_usec, mono_usec);
}

static int on_nflog(sd_event_source *source, int fd, uint32_t revents, void *userdata)
{
	struct knock_listener *l = userdata;
	struct rotator_knock knocks[32];
	size_t n = 0;
	unsigned batches = 0;

	/* At most 8 batches a wakeup: a flood shares the loop; the rest waits
	 * in the socket (and overflows it: the kernel drops, nobody is admitted
	 * for it). */
	do {
		int r = rotator_nflog_read_knocks(l->nflog, knocks, ELEMENTSOF(knocks), &n);

		if (r < 0 && r != -ENOBUFS)
			return 0;
		for (size_t i = 0; i < n; i++)
			knock_listener_handle(l, &knocks[i], now(CLOCK_REALTIME),
					      now(CLOCK_MONOTONIC));
	} while (n == ELEMENTSOF(knocks) && ++batches < 8);
	return 0;
}

/* --- life -------------------------------------------------------------------------- */

int knock_listener_new(sd_event *event, uint16_t group, const struct knock_receiver_ops *ops,
		       const struct knock_listener_hooks *hooks, struct knock_listener **ret)
{
	struct knock_listener *l = calloc(1, sizeof(*l));
	int r;

	if (!l)
		return -ENOMEM;
	l->ops = *ops;
	l->hooks = *hooks;
	if (group) {
		r = rotator_nflog_open_payload(group, &l->nflog);
		if (r >= 0)
			r = sd_event_add_io(event, &l->io, rotator_nflog_fd(l->nflog), EPOLLIN,
					    on_nflog, l);
		if (r >= 0)
			r = sd_event_add_time(event, &l->timer, CLOCK_MONOTONIC, UINT64_MAX, 0,
					      on_timer, l);
		if (r >= 0)
			r = sd_event_source_set_enabled(l->timer, SD_EVENT_OFF);
		if (r < 0) {
			knock_listener_free(l);
			return r;
		}
	}
	*ret = l;
	return 0;
}

void knock_listener_free(struct knock_listener *l)
{
	if (!l)
		return;
	sd_event_source_disable_unref(l->io);
	sd_event_source_disable_unref(l->timer);
	rotator_nflog_free(l->nflog);
	for (size_t i = 0; i < l->n_services; i++) {
		knock_guard_free(l->services[i].guard);
		free(l->services[i].name);
	}
	free(l->services);
	for (size_t i = 0; i < l->n_clients; i++) {
		free(l->clients[i]->service);
		free(l->clients[i]);
	}
	free(l->clients);
	free(l->admissions);
	free(l);
}

json_t *knock_listener_status(const struct knock_listener *l)
{
	json_t *services = json_array(), *clients = json_array();

	if (!services || !clients)
		goto fail;
	for (size_t i = 0; i < l->n_services; i++) {
		json_t *s = knock_guard_status(l->services[i].guard);

		if (!s || json_object_set_new(s, "service", json_string(l->services[i].name)) < 0 ||
		    json_array_append_new(services, s) < 0)
			goto fail;
	}
	for (size_t i = 0; i < l->n_clients; i++) {
		const struct seen_client *c = l->clients[i];
		json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:s, s:I, s:s?, s:i}", "service",
				      c->service, "client", c->client, "admitted",
				      (json_int_t)c->admitted, "last_admitted_usec",
				      (json_int_t)c->last_admitted_usec, "last_admitted_source",
				      c->last_admitted_source, "last_connected_usec",
				      (json_int_t)c->last_connected_usec, "last_connected_source",
				      c->last_connected_usec ? c->last_connected_source : NULL,
				      "last_door", (int)c->last_door);

		if (!o || json_array_append_new(clients, o) < 0)
			goto fail;
	}
	return json_pack("{s:o, s:o, s:I, s:I}", "services", services, "clients", clients,
			 "unclaimed_knocks", (json_int_t)l->unclaimed, "unattributed_connections",
			 (json_int_t)l->unattributed);
fail:
	json_decref(services);
	json_decref(clients);
	return NULL;
}
