/* SPDX-License-Identifier: MIT */
/* Per-client services (ClientKeys=, docs/mtd.policy.5): each client's door
 * and knock port per epoch (common/schedule.c, mtd-client-port-v1 and
 * mtd-client-knock-v1 over service, client and the host's id), the doors and
 * knock ports the rotator programs at a moment (grace doors included), and
 * decoys that are none of them: drawn from a stream under a key of the
 * agent's own (random per service, never written), skipping every client's
 * doors and knock ports of the previous, current and next epoch. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "clock.h"
#include "macro.h"
#include "rotation_internal.h"

void rotation_clients_free(struct service_clients *sc)
{
	if (!sc)
		return;
	for (size_t i = 0; i < sc->n; i++) {
		free(sc->clients[i].name);
		if (sc->clients[i].key) {
			explicit_bzero(sc->clients[i].key, sc->clients[i].key_len);
			free(sc->clients[i].key);
		}
	}
	free(sc->clients);
	explicit_bzero(sc->decoy_key, sizeof(sc->decoy_key));
	free(sc);
}

static void clients_freep(struct service_clients **sc)
{
	rotation_clients_free(*sc);
}

int rotation_clients_load(const struct policy *p, const char *host_id, struct service_clients **ret,
			  struct step_error *ret_error)
{
	_cleanup_(clients_freep) struct service_clients *sc = calloc(1, sizeof(*sc));
	struct policy_client_keys keys = {0};
	_cleanup_free_ char *error = NULL;
	int r;

	if (!sc)
		return -ENOMEM;
	if (!host_id) {
		step_error_set(ret_error, p->name, 0,
			       "ClientKeys= needs this host's id, and the host has no global "
			       "address on the interface of its default route: set HostId= in "
			       "[Agent] of the global file (/etc/mtd/mtd.conf)");
		return -EADDRNOTAVAIL;
	}
	snprintf(sc->host_id, sizeof(sc->host_id), "%s", host_id);
	r = policy_client_keys_load(p->client_keys, &keys, &error);
	if (r < 0) {
		step_error_set(ret_error, p->name, 0, "ClientKeys %s",
			       error ? error : strerror(-r));
		return r;
	}
	sc->clients = calloc(keys.count, sizeof(*sc->clients));
	if (!sc->clients) {
		policy_client_keys_free(&keys);
		return -ENOMEM;
	}
	for (size_t i = 0; i < keys.count; i++) {
		struct rotation_client *c = &sc->clients[i];

		/* taken over: the keys' list is left with nothing to wipe */
		c->name = TAKE_PTR(keys.items[i].name);
		c->key = TAKE_PTR(keys.items[i].key);
		c->key_len = keys.items[i].key_len;
		sc->n++;
	}
	policy_client_keys_free(&keys);
	if (getrandom(sc->decoy_key, sizeof(sc->decoy_key), 0) != (ssize_t)sizeof(sc->decoy_key))
		return -errno;
	*ret = TAKE_PTR(sc);
	return 0;
}

const struct rotation_client *rotation_clients_find(const struct service_clients *sc,
						    const char *name)
{
	size_t lo = 0, hi = sc ? sc->n : 0;

	while (lo < hi) { /* sorted by name (policy_client_keys_load) */
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(sc->clients[mid].name, name);

		if (c == 0)
			return &sc->clients[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* The cache slot of epoch, or -1. */
static int cached(const struct rotation_client *c, uint64_t epoch)
{
	for (int i = 0; i < ROTATION_CLIENT_CACHE; i++)
		if ((c->cache_valid & (1u << i)) && c->cache_epoch[i] == epoch)
			return i;
	return -1;
}

int rotation_client_ports_at(struct service_clients *sc, const struct policy *p,
			     struct schedule_mac *mac, struct rotation_client *c,
			     const uint64_t *epochs, size_t n, schedule_exclude_fn exclude,
			     void *userdata, uint16_t *ret_doors, uint16_t *ret_knocks)
{
	struct schedule_client sched = {
	    .key = c->key,
	    .key_len = c->key_len,
	    .service = p->name,
	    .client = c->name,
	    .host_id = sc->host_id,
	    .first = p->public_ports.first,
	    .last = p->public_ports.last,
	};
	uint64_t missing[ROTATION_CLIENT_CACHE];
	uint16_t doors[ROTATION_CLIENT_CACHE], knocks[ROTATION_CLIENT_CACHE];
	size_t n_missing = 0;
	int r;

	if (n > ROTATION_CLIENT_CACHE)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (cached(c, epochs[i]) < 0)
			missing[n_missing++] = epochs[i];
	if (n_missing) {
		r = schedule_client_ports_fast(mac, &sched, missing, n_missing, exclude, userdata,
					       doors, knocks);
		if (r < 0)
			return r;
		for (size_t i = 0; i < n_missing; i++) {
			/* replace the oldest epoch kept */
			int slot = 0;

			for (int j = 0; j < ROTATION_CLIENT_CACHE; j++) {
				if (!(c->cache_valid & (1u << j))) {
					slot = j;
					break;
				}
				if (c->cache_epoch[j] < c->cache_epoch[slot])
					slot = j;
			}
			c->cache_epoch[slot] = missing[i];
			c->cache_door[slot] = doors[i];
			c->cache_knock[slot] = knocks[i];
			c->cache_valid |= (uint8_t)(1u << slot);
		}
	}
	for (size_t i = 0; i < n; i++) {
		int slot = cached(c, epochs[i]);

		if (slot < 0)
			return -ENOENT; /* more epochs asked than the cache holds */
		if (ret_doors)
			ret_doors[i] = c->cache_door[slot];
		if (ret_knocks)
			ret_knocks[i] = c->cache_knock[slot];
	}
	return 0;
}

struct decoy_exclusion {
	schedule_exclude_fn host; /* ports bound on the host */
	void *host_userdata;
	const uint64_t *taken; /* bitmap: doors and knock ports */
};

static bool exclude_taken(uint16_t port, void *userdata)
{
	const struct decoy_exclusion *x = userdata;

	if (x->taken[port / 64] & (1ull << (port % 64)))
		return true;
	return x->host && x->host(port, x->host_userdata);
}

/* Sorted, duplicates dropped; returns the new count. */
static int cmp_port(const void *a, const void *b)
{
	return (int)*(const uint16_t *)a - (int)*(const uint16_t *)b;
}

static size_t unique_ports(uint16_t *ports, size_t n)
{
	size_t m = 0;

	qsort(ports, n, sizeof(*ports), cmp_port);
	for (size_t i = 0; i < n; i++)
		if (m == 0 || ports[m - 1] != ports[i])
			ports[m++] = ports[i];
	return m;
}

int rotation_clients_compute(struct service_clients *sc, const struct policy *p, uint64_t now_usec,
			     schedule_exclude_fn exclude, void *userdata,
			     struct client_ports *ret_ports, struct schedule_result *ret_result)
{
	uint64_t interval_sec = p->interval_usec / USEC_PER_SEC, epoch;
	_cleanup_free_ uint64_t *taken = calloc(65536 / 64, sizeof(uint64_t));
	struct decoy_exclusion x = {.host = exclude, .host_userdata = userdata};
	struct schedule_params params = {
	    .key = sc->decoy_key,
	    .key_len = sizeof(sc->decoy_key),
	    .service = p->name,
	    .first = p->public_ports.first,
	    .last = p->public_ports.last,
	    .interval_sec = interval_sec,
	    .grace_sec = 0,
	    .n_decoys = p->decoys,
	    .exclude = exclude_taken,
	    .userdata = &x,
	};
	struct schedule_result res;
	uint16_t *doors, *knocks;
	size_t n_doors = 0, n_knocks = 0;
	bool grace;
	int r;

	if (!taken)
		return -ENOMEM;
	if (interval_sec == 0 || now_usec / USEC_PER_SEC / interval_sec == 0)
		return -ERANGE;
	epoch = now_usec / USEC_PER_SEC / interval_sec;
	grace = now_usec - epoch * interval_sec * USEC_PER_SEC < p->grace_usec;
	doors = realloc(ret_ports->doors, 2 * sc->n * sizeof(*doors));
	if (!doors)
		return -ENOMEM;
	ret_ports->doors = doors;
	knocks = realloc(ret_ports->knocks, 2 * sc->n * sizeof(*knocks));
	if (!knocks)
		return -ENOMEM;
	ret_ports->knocks = knocks;

	for (size_t i = 0; i < sc->n; i++) {
		uint64_t epochs[3] = {epoch - 1, epoch, epoch + 1};
		uint16_t d[3], k[3];

		r = rotation_client_ports_at(sc, p, sc->mac, &sc->clients[i], epochs, 3, exclude,
					     userdata, d, k);
		if (r < 0)
			return r;
		for (int j = 0; j < 3; j++) {
			taken[d[j] / 64] |= 1ull << (d[j] % 64);
			taken[k[j] / 64] |= 1ull << (k[j] % 64);
		}
		doors[n_doors++] = d[1];
		knocks[n_knocks++] = k[1];
		if (grace) {
			doors[n_doors++] = d[0];
			knocks[n_knocks++] = k[0];
		}
	}
	x.taken = taken;
	r = schedule_compute(&params, now_usec, &res);
	if (r == -EADDRINUSE) {
		/* every port is some client's door or knock port (1,000 clients
		 * in 1,000 ports): no room for a decoy */
		uint64_t next;

		params.n_decoys = 0;
		params.exclude = NULL;
		r = schedule_next_boundary_usec(now_usec, interval_sec, &next);
		if (r < 0)
			return r;
		res = (struct schedule_result){
		    .epoch = epoch,
		    .boundary_usec = next - interval_sec * USEC_PER_SEC,
		    .next_boundary_usec = next,
		};
	} else if (r < 0)
		return r;
	/* the stream's own port is no door: the rotator's port is a door */
	res.port = sc->n ? doors[0] : res.port;
	res.prev_port = res.next_port = res.grace_port = 0;
	ret_ports->n_doors = unique_ports(doors, n_doors);
	ret_ports->n_knocks = unique_ports(knocks, n_knocks);
	ret_ports->grace = grace;
	ret_ports->epoch = epoch;
	*ret_result = res;
	return 0;
}

void rotation_client_ports_free(struct client_ports *ports)
{
	free(ports->doors);
	free(ports->knocks);
	*ports = (struct client_ports){0};
}
