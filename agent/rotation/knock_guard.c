/* SPDX-License-Identifier: MIT */
/* What a knock must pass besides its MAC (rotation_internal.h): a rate per
 * source, the window, the replay cache, the knock port, the admit field. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/param.h>

#include "clock.h"
#include "macro.h"
#include "rotation_internal.h"
#include "rotator.h"

/* Refusals of one reason are summarised at most this often. */
#define SUMMARY_INTERVAL_USEC USEC_PER_SEC

struct rate_entry {
	bool used;
	int family;
	uint8_t key[8];	 /* IPv4: the address; IPv6: its /64 */
	uint64_t credit; /* token-microseconds: a knock costs rate_span_usec */
	uint64_t last_usec;
};

struct held_nonce {
	uint8_t nonce[KNOCK_NONCE_SIZE];
	uint64_t expires_usec; /* the knock's time plus the window; 0: free */
};

struct client_nonces {
	char name[SCHEDULE_MAX_CLIENT_NAME + 1];
	struct held_nonce held[KNOCK_GUARD_NONCES_PER_CLIENT];
};

struct reason_tally {
	uint64_t counted, held;
	uint64_t summarised_usec;
	bool summarised;
};

struct knock_guard {
	struct knock_guard_limits limits;
	struct rate_entry *rates; /* SETS x WAYS, allocated at the first knock */
	size_t n_sources;
	struct client_nonces **clients; /* sorted by name */
	size_t n_clients;
	uint64_t high_water_usec; /* the highest realtime seen */
	struct reason_tally tally[KNOCK_GUARD_N_REASONS];
};

int knock_guard_new(const struct knock_guard_limits *limits, struct knock_guard **ret)
{
	struct knock_guard *guard = calloc(1, sizeof(*guard));

	if (!guard)
		return -ENOMEM;
	guard->limits = *limits;
	*ret = guard;
	return 0;
}

void knock_guard_free(struct knock_guard *guard)
{
	if (!guard)
		return;
	for (size_t i = 0; i < guard->n_clients; i++)
		free(guard->clients[i]);
	free(guard->clients);
	free(guard->rates);
	free(guard);
}

void knock_guard_set_limits(struct knock_guard *guard, const struct knock_guard_limits *limits)
{
	guard->limits = *limits;
}

/* --- rate per source --------------------------------------------------------- */

/* An IPv6 host owns its /64: one bucket for all of it, or a host would have
 * 2^64 buckets. */
static void rate_key(const struct rotator_addr *source, uint8_t key[8])
{
	memset(key, 0, 8);
	if (source->family == AF_INET)
		memcpy(key, &source->in, 4);
	else
		memcpy(key, &source->in6, 8);
}

static size_t rate_set(int family, const uint8_t key[8])
{
	uint64_t h;

	memcpy(&h, key, 8);
	h ^= (uint64_t)family;
	h ^= h >> 33;
	h *= UINT64_C(0xff51afd7ed558ccd);
	h ^= h >> 33;
	h *= UINT64_C(0xc4ceb9fe1a85ec53);
	h ^= h >> 33;
	return (size_t)(h % KNOCK_GUARD_RATE_SETS);
}

static uint64_t rate_capacity(const struct knock_guard_limits *limits)
{
	if (limits->rate_span_usec && limits->rate > UINT64_MAX / limits->rate_span_usec)
		return UINT64_MAX;
	return (uint64_t)limits->rate * limits->rate_span_usec;
}

/* The entry's credit now, refilled at rate tokens per span, capped at rate. */
static uint64_t rate_credit(const struct knock_guard_limits *limits, const struct rate_entry *e,
			    uint64_t mono_usec)
{
	uint64_t cap = rate_capacity(limits), elapsed, refill;

	if (!e->used)
		return cap;
	elapsed = mono_usec > e->last_usec ? mono_usec - e->last_usec : 0;
	if (limits->rate && elapsed > UINT64_MAX / limits->rate)
		return cap;
	refill = elapsed * limits->rate;
	if (refill >= cap || e->credit >= cap - refill)
		return cap;
	return e->credit + refill;
}

enum knock_guard_reason knock_guard_rate(struct knock_guard *guard,
					 const struct rotator_addr *source, uint64_t mono_usec)
{
	uint8_t key[8];
	struct rate_entry *set, *e = NULL, *victim = NULL;
	uint64_t credit, victim_credit = 0;

	if (guard->limits.rate == 0)
		return KNOCK_GUARD_RATE;
	if (!guard->rates) {
		guard->rates =
		    calloc(KNOCK_GUARD_RATE_SETS * KNOCK_GUARD_RATE_WAYS, sizeof(*guard->rates));
		if (!guard->rates)
			return KNOCK_GUARD_RATE; /* fail closed: no MAC work unbounded */
	}
	rate_key(source, key);
	set = &guard->rates[rate_set(source->family, key) * KNOCK_GUARD_RATE_WAYS];
	for (size_t w = 0; w < KNOCK_GUARD_RATE_WAYS; w++)
		if (set[w].used && set[w].family == source->family &&
		    memcmp(set[w].key, key, sizeof(key)) == 0) {
			e = &set[w];
			break;
		}
	if (!e) {
		/* the way with the most credit, the least recently seen among equals */
		for (size_t w = 0; w < KNOCK_GUARD_RATE_WAYS; w++) {
			uint64_t c = rate_credit(&guard->limits, &set[w], mono_usec);

			if (!victim || c > victim_credit ||
			    (c == victim_credit && set[w].last_usec < victim->last_usec)) {
				victim = &set[w];
				victim_credit = c;
			}
		}
		e = victim;
		if (!e->used)
			guard->n_sources++;
		*e = (struct rate_entry){.used = false, .family = source->family};
		memcpy(e->key, key, sizeof(key));
	}
	credit = rate_credit(&guard->limits, e, mono_usec);
	e->used = true;
	e->last_usec = mono_usec;
	if (credit < guard->limits.rate_span_usec) {
		e->credit = credit;
		return KNOCK_GUARD_RATE;
	}
	e->credit = credit - guard->limits.rate_span_usec;
	return KNOCK_GUARD_ADMIT;
}

/* --- replay cache ------------------------------------------------------------ */

static int client_cmp(const void *key, const void *element)
{
	return strcmp(key, (*(struct client_nonces *const *)element)->name);
}

static struct client_nonces *client_find(const struct knock_guard *guard, const char *name)
{
	struct client_nonces **c;

	if (!guard->clients)
		return NULL;
	c = bsearch(name, guard->clients, guard->n_clients, sizeof(*guard->clients), client_cmp);
	return c ? *c : NULL;
}

static bool held_live(const struct knock_guard *guard, const struct held_nonce *h)
{
	return h->expires_usec != 0 && h->expires_usec >= guard->high_water_usec;
}

/* Clients none of whose nonces can matter any more are dropped, so the
 * table holds only clients that knocked within the window. */
static void clients_sweep(struct knock_guard *guard)
{
	size_t kept = 0;

	for (size_t i = 0; i < guard->n_clients; i++) {
		struct client_nonces *c = guard->clients[i];
		bool live = false;

		for (size_t j = 0; j < KNOCK_GUARD_NONCES_PER_CLIENT && !live; j++)
			live = held_live(guard, &c->held[j]);
		if (live)
			guard->clients[kept++] = c;
		else
			free(c);
	}
	guard->n_clients = kept;
}

static struct client_nonces *client_add(struct knock_guard *guard, const char *name)
{
	struct client_nonces *c, **grown;
	size_t at = 0;

	clients_sweep(guard);
	grown = reallocarray(guard->clients, guard->n_clients + 1, sizeof(*grown));
	if (!grown)
		return NULL;
	guard->clients = grown;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	snprintf(c->name, sizeof(c->name), "%s", name);
	while (at < guard->n_clients && strcmp(guard->clients[at]->name, name) < 0)
		at++;
	memmove(&guard->clients[at + 1], &guard->clients[at],
		(guard->n_clients - at) * sizeof(*guard->clients));
	guard->clients[at] = c;
	guard->n_clients++;
	return c;
}

static bool nonce_seen(const struct knock_guard *guard, const struct client_nonces *c,
		       const uint8_t nonce[KNOCK_NONCE_SIZE])
{
	if (!c)
		return false;
	for (size_t i = 0; i < KNOCK_GUARD_NONCES_PER_CLIENT; i++)
		if (held_live(guard, &c->held[i]) &&
		    memcmp(c->held[i].nonce, nonce, KNOCK_NONCE_SIZE) == 0)
			return true;
	return false;
}

/* Remembers the nonce until expires_usec; false when every slot of the
 * client holds a nonce still inside the window (or no memory). */
static bool nonce_hold(struct knock_guard *guard, const char *client,
		       const uint8_t nonce[KNOCK_NONCE_SIZE], uint64_t expires_usec)
{
	struct client_nonces *c = client_find(guard, client);

	if (!c) {
		c = client_add(guard, client);
		if (!c)
			return false;
	}
	for (size_t i = 0; i < KNOCK_GUARD_NONCES_PER_CLIENT; i++)
		if (!held_live(guard, &c->held[i])) {
			memcpy(c->held[i].nonce, nonce, KNOCK_NONCE_SIZE);
			c->held[i].expires_usec = expires_usec;
			return true;
		}
	return false;
}

/* --- the decision ------------------------------------------------------------ */

static bool admit_matches(const struct knock *knock, const struct rotator_addr *source)
{
	switch (knock->admit) {
	case KNOCK_ADMIT_SOURCE:
		return true;
	case KNOCK_ADMIT_IPV4:
		return source->family == AF_INET &&
		       memcmp(knock->admit_addr, &source->in, sizeof(source->in)) == 0;
	case KNOCK_ADMIT_IPV6:
		return source->family == AF_INET6 &&
		       memcmp(knock->admit_addr, &source->in6, sizeof(source->in6)) == 0;
	}
	return false;
}

enum knock_guard_reason knock_guard_decide(struct knock_guard *guard, const struct knock *knock,
					   const struct rotator_addr *source, uint16_t port,
					   const struct knock_guard_epoch *epochs, size_t n_epochs,
					   uint64_t now_usec, struct knock_guard_admission *ret)
{
	uint64_t window = guard->limits.window_usec, t;
	const struct knock_guard_epoch *e = NULL;

	guard->high_water_usec = MAX(guard->high_water_usec, now_usec);
	if (knock->time_sec > (UINT64_MAX - window) / USEC_PER_SEC)
		return KNOCK_GUARD_TIME;
	t = knock->time_sec * USEC_PER_SEC;
	/* |t - now| <= window, and its window not over before the highest
	 * clock seen (whose nonces may have been forgotten) */
	if (t + window < now_usec || (now_usec <= UINT64_MAX - window && t > now_usec + window) ||
	    t + window < guard->high_water_usec)
		return KNOCK_GUARD_TIME;
	if (nonce_seen(guard, client_find(guard, knock->client), knock->nonce))
		return KNOCK_GUARD_REPLAY;
	for (size_t i = 0; i < n_epochs && !e; i++)
		if (epochs[i].knock_port == port && epochs[i].until_usec > now_usec)
			e = &epochs[i];
	if (!e)
		return KNOCK_GUARD_WRONG_PORT;
	if (!admit_matches(knock, source))
		return KNOCK_GUARD_WRONG_SOURCE;
	if (!nonce_hold(guard, knock->client, knock->nonce, t + window))
		return KNOCK_GUARD_REPLAY_FULL;
	*ret = (struct knock_guard_admission){
	    .epoch = e->epoch, .door = e->door, .until_usec = e->until_usec};
	return KNOCK_GUARD_ADMIT;
}

/* --- counts and summaries ---------------------------------------------------- */

static uint64_t take_if_due(struct reason_tally *t, uint64_t mono_usec)
{
	uint64_t n;

	if (t->held == 0 ||
	    (t->summarised && mono_usec < t->summarised_usec + SUMMARY_INTERVAL_USEC))
		return 0;
	n = t->held;
	t->held = 0;
	t->summarised = true;
	t->summarised_usec = mono_usec;
	return n;
}

uint64_t knock_guard_count(struct knock_guard *guard, enum knock_guard_reason reason,
			   uint64_t mono_usec)
{
	struct reason_tally *t;

	if ((size_t)reason >= KNOCK_GUARD_N_REASONS)
		return 0;
	t = &guard->tally[reason];
	t->counted++;
	if (reason == KNOCK_GUARD_ADMIT)
		return 0;
	t->held++;
	return take_if_due(t, mono_usec);
}

uint64_t knock_guard_flush(struct knock_guard *guard, enum knock_guard_reason reason,
			   uint64_t mono_usec, uint64_t *ret_next_usec)
{
	uint64_t n = 0, next = 0;

	if ((size_t)reason < KNOCK_GUARD_N_REASONS && reason != KNOCK_GUARD_ADMIT)
		n = take_if_due(&guard->tally[reason], mono_usec);
	for (size_t i = KNOCK_GUARD_ADMIT + 1; i < KNOCK_GUARD_N_REASONS; i++) {
		const struct reason_tally *t = &guard->tally[i];
		uint64_t due = t->summarised_usec + SUMMARY_INTERVAL_USEC;

		if (t->held && (next == 0 || due < next))
			next = due;
	}
	*ret_next_usec = next;
	return n;
}

uint64_t knock_guard_counted(const struct knock_guard *guard, enum knock_guard_reason reason)
{
	return (size_t)reason < KNOCK_GUARD_N_REASONS ? guard->tally[reason].counted : 0;
}

const char *knock_guard_reason_name(enum knock_guard_reason reason)
{
	static const char *const names[] = {
	    [KNOCK_GUARD_ADMIT] = "admitted",
	    [KNOCK_GUARD_RATE] = "rate-limited",
	    [KNOCK_GUARD_MALFORMED] = "malformed",
	    [KNOCK_GUARD_UNKNOWN_CLIENT] = "unknown-client",
	    [KNOCK_GUARD_BAD_MAC] = "bad-mac",
	    [KNOCK_GUARD_TIME] = "outside-window",
	    [KNOCK_GUARD_REPLAY] = "replayed",
	    [KNOCK_GUARD_WRONG_PORT] = "wrong-port",
	    [KNOCK_GUARD_WRONG_SOURCE] = "wrong-source",
	    [KNOCK_GUARD_REPLAY_FULL] = "replay-cache-full",
	    [KNOCK_GUARD_FAILED] = "admission-failed",
	};

	return (size_t)reason < ELEMENTSOF(names) ? names[reason] : "?";
}

json_t *knock_guard_status(const struct knock_guard *guard)
{
	json_t *refused = json_object();
	size_t nonces = 0;

	if (!refused)
		return NULL;
	for (size_t i = KNOCK_GUARD_ADMIT + 1; i < KNOCK_GUARD_N_REASONS; i++)
		if (json_object_set_new(refused, knock_guard_reason_name(i),
					json_integer((json_int_t)guard->tally[i].counted)) < 0) {
			json_decref(refused);
			return NULL;
		}
	for (size_t i = 0; i < guard->n_clients; i++)
		for (size_t j = 0; j < KNOCK_GUARD_NONCES_PER_CLIENT; j++)
			nonces += held_live(guard, &guard->clients[i]->held[j]);
	return json_pack("{s:I, s:o, s:I, s:I, s:I}", "admitted",
			 (json_int_t)guard->tally[KNOCK_GUARD_ADMIT].counted, "refused", refused,
			 "sources", (json_int_t)guard->n_sources, "clients",
			 (json_int_t)guard->n_clients, "nonces", (json_int_t)nonces);
}
