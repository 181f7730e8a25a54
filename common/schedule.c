/* SPDX-License-Identifier: MIT */
/*
 * Keyed port schedule (see docs/schedule.md for the normative description):
 *
 *   base    = "mtd-port-v1" 0x00 service 0x00 epoch(8 bytes, big endian)
 *   block_i = HMAC-SHA256(key, base || i(4 bytes, big endian)), i = 0, 1, ...
 *   words   = each block split into eight 32-bit big-endian words, in order
 *   R       = last - first + 1; limit = 2^32 - (2^32 mod R)
 *   a word w < limit yields first + (w mod R); others are rejected;
 *   a port already yielded is skipped, so candidates are distinct.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "macro.h"
#include "schedule.h"

#define BLOCK_SIZE 32
/* The longest base: a client stream's label, service, client, host id (each
 * with its NUL) and epoch. */
#define STREAM_MAX_BASE                                                                            \
	(sizeof(SCHEDULE_CLIENT_PORT_LABEL) + SCHEDULE_MAX_SERVICE_NAME + 1 +                      \
	 SCHEDULE_MAX_CLIENT_NAME + 1 + SCHEDULE_MAX_HOST_ID + 1 + 8)

struct stream {
	EVP_MAC *mac;
	EVP_MAC_CTX *ctx;
	uint8_t msg[STREAM_MAX_BASE + 4];
	size_t base_len;
	uint32_t counter;
	bool counter_wrapped;
	uint8_t block[BLOCK_SIZE];
	unsigned word; /* next word of block; 8 = block used up */
	uint32_t first;
	uint32_t range;
	uint64_t limit;
	uint32_t n_yielded;
	uint64_t seen[65536 / 64];
};

static void stream_done(struct stream *s)
{
	EVP_MAC_CTX_free(s->ctx);
	EVP_MAC_free(s->mac);
	s->ctx = NULL;
	s->mac = NULL;
}

static bool service_valid(const char *service)
{
	size_t len;

	if (!service)
		return false;
	len = strlen(service);
	return len > 0 && len <= SCHEDULE_MAX_SERVICE_NAME;
}

/* Starts the stream of HMAC(key, base || counter) words; base is the
 * label-specific message (docs/schedule.md). */
static int stream_init_base(struct stream *s, const uint8_t *key, size_t key_len,
			    const uint8_t *base, size_t base_len, uint16_t first, uint16_t last)
{
	OSSL_PARAM params[2];

	if (!key || key_len == 0 || first == 0 || first > last || base_len > sizeof(s->msg) - 4)
		return -EINVAL;

	memset(s, 0, sizeof(*s));
	memcpy(s->msg, base, base_len);
	s->base_len = base_len;
	s->word = BLOCK_SIZE / 4;
	s->first = first;
	s->range = (uint32_t)last - first + 1;
	s->limit = (1ULL << 32) - ((1ULL << 32) % s->range);

	s->mac = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);
	if (!s->mac)
		return -ENOMEM;
	s->ctx = EVP_MAC_CTX_new(s->mac);
	if (!s->ctx) {
		stream_done(s);
		return -ENOMEM;
	}
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (EVP_MAC_init(s->ctx, key, key_len, params) != 1) {
		stream_done(s);
		return -EIO;
	}
	return 0;
}

/* Appends a NUL-terminated field (its terminator included) to a base. */
static size_t base_put_string(uint8_t *base, size_t off, const char *s)
{
	size_t len = strlen(s) + 1;

	memcpy(base + off, s, len);
	return off + len;
}

static size_t base_put_epoch(uint8_t *base, size_t off, uint64_t epoch)
{
	for (int i = 7; i >= 0; i--)
		base[off++] = (uint8_t)(epoch >> (8 * i));
	return off;
}

static int stream_init(struct stream *s, const uint8_t *key, size_t key_len, const char *service,
		       uint64_t epoch, uint16_t first, uint16_t last)
{
	uint8_t base[STREAM_MAX_BASE];
	size_t off;

	if (!service_valid(service))
		return -EINVAL;
	off = base_put_string(base, 0, SCHEDULE_LABEL);
	off = base_put_string(base, off, service);
	off = base_put_epoch(base, off, epoch);
	return stream_init_base(s, key, key_len, base, off, first, last);
}

static int stream_refill(struct stream *s)
{
	size_t off = s->base_len, out_len = 0;

	if (s->counter_wrapped)
		return -ERANGE;
	for (int i = 3; i >= 0; i--)
		s->msg[off++] = (uint8_t)(s->counter >> (8 * i));
	if (EVP_MAC_init(s->ctx, NULL, 0, NULL) != 1 || EVP_MAC_update(s->ctx, s->msg, off) != 1 ||
	    EVP_MAC_final(s->ctx, s->block, &out_len, sizeof(s->block)) != 1 ||
	    out_len != BLOCK_SIZE)
		return -EIO;
	if (++s->counter == 0)
		s->counter_wrapped = true;
	s->word = 0;
	return 0;
}

/* Next distinct candidate; -ENOSPC once every port of the range was yielded. */
static int stream_next(struct stream *s, uint16_t *ret_port)
{
	for (;;) {
		const uint8_t *b;
		uint32_t w, port;
		int r;

		if (s->n_yielded >= s->range)
			return -ENOSPC;
		if (s->word >= BLOCK_SIZE / 4) {
			r = stream_refill(s);
			if (r < 0)
				return r;
		}
		b = s->block + 4 * s->word++;
		w = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
		if (w >= s->limit)
			continue;
		port = s->first + w % s->range;
		if (s->seen[port / 64] & (1ULL << (port % 64)))
			continue;
		s->seen[port / 64] |= 1ULL << (port % 64);
		s->n_yielded++;
		*ret_port = (uint16_t)port;
		return 0;
	}
}

int schedule_epoch(uint64_t unix_time, uint64_t interval_seconds, uint64_t *ret_epoch)
{
	if (interval_seconds == 0)
		return -EINVAL;
	*ret_epoch = unix_time / interval_seconds;
	return 0;
}

int schedule_candidates(const uint8_t *key, size_t key_len, const char *service, uint64_t epoch,
			uint16_t first, uint16_t last, uint16_t *ret_ports, size_t n)
{
	_cleanup_free_ struct stream *s = NULL;
	_cleanup_free_ uint16_t *ports = NULL;
	int r;

	if (!ret_ports || first == 0 || first > last || n > (size_t)last - first + 1)
		return -EINVAL;
	s = malloc(sizeof(*s));
	ports = calloc(n ? n : 1, sizeof(*ports));
	if (!s || !ports)
		return -ENOMEM;
	r = stream_init(s, key, key_len, service, epoch, first, last);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		r = stream_next(s, &ports[i]);
		if (r < 0) {
			stream_done(s);
			return r;
		}
	}
	stream_done(s);
	memcpy(ret_ports, ports, n * sizeof(*ports));
	return 0;
}

static bool params_valid(const struct schedule_params *p)
{
	return p && p->key && p->key_len > 0 && service_valid(p->service) && p->first > 0 &&
	       p->first <= p->last && p->interval_sec > 0 && p->grace_sec < p->interval_sec &&
	       p->n_decoys <= SCHEDULE_MAX_DECOYS;
}

static bool excluded(const struct schedule_params *p, uint16_t port)
{
	return p->exclude && p->exclude(port, p->userdata);
}

/* Advance s to the first candidate that is not excluded. */
static int stream_pick(struct stream *s, const struct schedule_params *p, uint16_t *ret_port)
{
	for (;;) {
		uint16_t port;
		int r = stream_next(s, &port);

		if (r == -ENOSPC)
			return -EADDRINUSE;
		if (r < 0)
			return r;
		if (!excluded(p, port)) {
			*ret_port = port;
			return 0;
		}
	}
}

int schedule_port(const struct schedule_params *p, uint64_t epoch, uint16_t *ret_port)
{
	_cleanup_free_ struct stream *s = NULL;
	uint16_t port = 0;
	int r;

	if (!params_valid(p) || !ret_port)
		return -EINVAL;
	s = malloc(sizeof(*s));
	if (!s)
		return -ENOMEM;
	r = stream_init(s, p->key, p->key_len, p->service, epoch, p->first, p->last);
	if (r < 0)
		return r;
	r = stream_pick(s, p, &port);
	stream_done(s);
	if (r < 0)
		return r;
	*ret_port = port;
	return 0;
}

/* The client windows (first SCHEDULE_CLIENT_CANDIDATES candidates) of the
 * epochs before and after. */
struct window {
	uint16_t ports[2 * SCHEDULE_CLIENT_CANDIDATES];
	size_t n;
};

static int client_windows(const struct schedule_params *p, uint64_t epoch, struct window *ret)
{
	size_t range = (size_t)p->last - p->first + 1;
	size_t n = range < SCHEDULE_CLIENT_CANDIDATES ? range : SCHEDULE_CLIENT_CANDIDATES;
	int r;

	ret->n = 0;
	if (epoch > 0) {
		r = schedule_candidates(p->key, p->key_len, p->service, epoch - 1, p->first,
					p->last, ret->ports, n);
		if (r < 0)
			return r;
		ret->n = n;
	}
	r = schedule_candidates(p->key, p->key_len, p->service, epoch + 1, p->first, p->last,
				ret->ports + ret->n, n);
	if (r < 0)
		return r;
	ret->n += n;
	return 0;
}

static bool in_window(const struct window *w, uint16_t port)
{
	for (size_t i = 0; i < w->n; i++)
		if (w->ports[i] == port)
			return true;
	return false;
}

int schedule_compute(const struct schedule_params *p, uint64_t now_usec,
		     struct schedule_result *ret)
{
	_cleanup_free_ struct stream *s = NULL;
	struct schedule_result res = {};
	struct window neighbours = {0};
	uint64_t now_sec = now_usec / 1000000;
	int r;

	if (!params_valid(p) || !ret)
		return -EINVAL;
	if (p->interval_sec > UINT64_MAX / 1000000)
		return -ERANGE;
	r = schedule_epoch(now_sec, p->interval_sec, &res.epoch);
	if (r < 0)
		return r;
	if (res.epoch == UINT64_MAX)
		return -ERANGE;
	r = schedule_next_boundary_usec(now_usec, p->interval_sec, &res.next_boundary_usec);
	if (r < 0)
		return r;
	res.boundary_usec = res.next_boundary_usec - p->interval_sec * 1000000;

	if (res.epoch > 0) {
		r = schedule_port(p, res.epoch - 1, &res.prev_port);
		if (r < 0)
			return r;
	}
	r = schedule_port(p, res.epoch + 1, &res.next_port);
	if (r < 0)
		return r;

	/* A client whose clock is an epoch off the agent's tries the neighbours'
	 * windows: those are never decoys either. */
	r = client_windows(p, res.epoch, &neighbours);
	if (r < 0)
		return r;

	s = malloc(sizeof(*s));
	if (!s)
		return -ENOMEM;
	r = stream_init(s, p->key, p->key_len, p->service, res.epoch, p->first, p->last);
	if (r < 0)
		return r;
	r = stream_pick(s, p, &res.port);
	/* The first candidates are the ones a client may try in order; none of
	 * them is ever a decoy, so trying them cannot get a client blocked. */
	while (r >= 0 && s->n_yielded < SCHEDULE_CLIENT_CANDIDATES) {
		uint16_t skipped;

		r = stream_next(s, &skipped);
		if (r == -ENOSPC)
			r = 0;
		if (r == 0 && s->n_yielded >= s->range)
			break;
	}
	while (r >= 0 && res.n_decoys < p->n_decoys) {
		uint16_t d;

		r = stream_pick(s, p, &d);
		if (r == -EADDRINUSE) {
			r = 0; /* range exhausted: fewer decoys */
			break;
		}
		if (r >= 0 && d != res.prev_port && d != res.next_port &&
		    !in_window(&neighbours, d))
			res.decoys[res.n_decoys++] = d;
	}
	stream_done(s);
	if (r < 0)
		return r;

	if (res.prev_port != res.port && schedule_in_grace(now_usec, p->interval_sec, p->grace_sec))
		res.grace_port = res.prev_port;
	*ret = res;
	return 0;
}

int schedule_next_boundary_usec(uint64_t now_usec, uint64_t interval_sec, uint64_t *ret_usec)
{
	uint64_t interval_usec, epoch;

	if (interval_sec == 0)
		return -EINVAL;
	if (interval_sec > UINT64_MAX / 1000000)
		return -ERANGE;
	interval_usec = interval_sec * 1000000;
	epoch = now_usec / interval_usec;
	if (epoch + 1 > UINT64_MAX / interval_usec)
		return -ERANGE;
	*ret_usec = (epoch + 1) * interval_usec;
	return 0;
}

bool schedule_in_grace(uint64_t now_usec, uint64_t interval_sec, uint64_t grace_sec)
{
	if (interval_sec == 0 || interval_sec > UINT64_MAX / 1000000 || grace_sec >= interval_sec)
		return false;
	return now_usec % (interval_sec * 1000000) < grace_sec * 1000000;
}

bool schedule_client_name_valid(const char *name)
{
	size_t len;

	if (!name)
		return false;
	len = strlen(name);
	if (len == 0 || len > SCHEDULE_MAX_CLIENT_NAME || name[0] == '.' || name[0] == '-')
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = name[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-'))
			return false;
	}
	return true;
}

bool schedule_host_id_valid(const char *host_id)
{
	size_t len;

	if (!host_id)
		return false;
	len = strlen(host_id);
	if (len == 0 || len > SCHEDULE_MAX_HOST_ID)
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = host_id[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == ':' || ch == '-'))
			return false;
	}
	return true;
}

static int client_stream_init(struct stream *s, const struct schedule_client *c, const char *label,
			      uint64_t epoch)
{
	uint8_t base[STREAM_MAX_BASE];
	size_t off;

	if (!c || !service_valid(c->service) || !schedule_client_name_valid(c->client) ||
	    !schedule_host_id_valid(c->host_id))
		return -EINVAL;
	off = base_put_string(base, 0, label);
	off = base_put_string(base, off, c->service);
	off = base_put_string(base, off, c->client);
	off = base_put_string(base, off, c->host_id);
	off = base_put_epoch(base, off, epoch);
	return stream_init_base(s, c->key, c->key_len, base, off, c->first, c->last);
}

int schedule_client_candidates(const struct schedule_client *c, uint64_t epoch, uint16_t *ret_ports,
			       size_t n)
{
	_cleanup_free_ struct stream *s = NULL;
	int r = 0;

	if (!c || !ret_ports || c->first == 0 || c->first > c->last ||
	    n > (size_t)c->last - c->first + 1)
		return -EINVAL;
	s = malloc(sizeof(*s));
	if (!s)
		return -ENOMEM;
	r = client_stream_init(s, c, SCHEDULE_CLIENT_PORT_LABEL, epoch);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n && r >= 0; i++)
		r = stream_next(s, &ret_ports[i]);
	stream_done(s);
	return r < 0 ? r : 0;
}

int schedule_client_port(const struct schedule_client *c, uint64_t epoch,
			 schedule_exclude_fn exclude, void *userdata, uint16_t *ret_port)
{
	_cleanup_free_ struct stream *s = NULL;
	uint16_t port = 0;
	int r;

	if (!ret_port)
		return -EINVAL;
	s = malloc(sizeof(*s));
	if (!s)
		return -ENOMEM;
	r = client_stream_init(s, c, SCHEDULE_CLIENT_PORT_LABEL, epoch);
	if (r < 0)
		return r;
	for (;;) {
		r = stream_next(s, &port);
		if (r == -ENOSPC)
			r = -EADDRINUSE;
		if (r < 0 || !exclude || !exclude(port, userdata))
			break;
	}
	stream_done(s);
	if (r < 0)
		return r;
	*ret_port = port;
	return 0;
}

int schedule_client_knock_port(const struct schedule_client *c, uint64_t epoch, uint16_t *ret_port)
{
	_cleanup_free_ struct stream *s = NULL;
	int r;

	if (!ret_port)
		return -EINVAL;
	s = malloc(sizeof(*s));
	if (!s)
		return -ENOMEM;
	r = client_stream_init(s, c, SCHEDULE_CLIENT_KNOCK_LABEL, epoch);
	if (r < 0)
		return r;
	r = stream_next(s, ret_port);
	stream_done(s);
	return r;
}

/* --- many clients, one keyed MAC ------------------------------------------------ */

struct schedule_mac {
	EVP_MAC *mac;
	EVP_MAC_CTX *ctx;
};

int schedule_mac_new(struct schedule_mac **ret)
{
	struct schedule_mac *m = calloc(1, sizeof(*m));

	if (!m)
		return -ENOMEM;
	m->mac = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);
	if (m->mac)
		m->ctx = EVP_MAC_CTX_new(m->mac);
	if (!m->ctx) {
		schedule_mac_free(m);
		return -ENOMEM;
	}
	*ret = m;
	return 0;
}

void schedule_mac_free(struct schedule_mac *m)
{
	if (!m)
		return;
	EVP_MAC_CTX_free(m->ctx);
	EVP_MAC_free(m->mac);
	free(m);
}

/* The first candidate of the keyed stream over base that exclude lets
 * through, looking at the first FAST_BLOCKS blocks only: a repeated candidate
 * is never the answer (it was excluded the first time), so no record of the
 * ones seen is needed. -EAGAIN: not found there (the exact path decides). */
#define FAST_BLOCKS 8
static int fast_first(EVP_MAC_CTX *ctx, const uint8_t *base, size_t base_len, uint16_t first,
		      uint16_t last, schedule_exclude_fn exclude, void *userdata,
		      uint16_t *ret_port)
{
	uint8_t msg[STREAM_MAX_BASE + 4], block[BLOCK_SIZE];
	uint32_t range = (uint32_t)last - first + 1;
	uint64_t limit = (1ULL << 32) - ((1ULL << 32) % range);

	memcpy(msg, base, base_len);
	for (uint32_t counter = 0; counter < FAST_BLOCKS; counter++) {
		size_t out_len = 0;

		msg[base_len] = (uint8_t)(counter >> 24);
		msg[base_len + 1] = (uint8_t)(counter >> 16);
		msg[base_len + 2] = (uint8_t)(counter >> 8);
		msg[base_len + 3] = (uint8_t)counter;
		if (EVP_MAC_init(ctx, NULL, 0, NULL) != 1 ||
		    EVP_MAC_update(ctx, msg, base_len + 4) != 1 ||
		    EVP_MAC_final(ctx, block, &out_len, sizeof(block)) != 1 ||
		    out_len != BLOCK_SIZE)
			return -EIO;
		for (unsigned i = 0; i < BLOCK_SIZE / 4; i++) {
			const uint8_t *b = block + 4 * i;
			uint32_t w = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
				     (uint32_t)b[2] << 8 | b[3];
			uint16_t port;

			if (w >= limit)
				continue;
			port = (uint16_t)(first + w % range);
			if (!exclude || !exclude(port, userdata)) {
				*ret_port = port;
				return 0;
			}
		}
	}
	return -EAGAIN;
}

int schedule_client_ports_fast(struct schedule_mac *m, const struct schedule_client *c,
			       const uint64_t *epochs, size_t n, schedule_exclude_fn exclude,
			       void *userdata, uint16_t *ret_doors, uint16_t *ret_knocks)
{
	static const char *const labels[2] = {SCHEDULE_CLIENT_PORT_LABEL,
					      SCHEDULE_CLIENT_KNOCK_LABEL};
	OSSL_PARAM params[2];
	uint8_t base[STREAM_MAX_BASE];
	size_t off;
	int r;

	if (!m || !c || !c->key || c->key_len == 0 || !service_valid(c->service) ||
	    !schedule_client_name_valid(c->client) || !schedule_host_id_valid(c->host_id) ||
	    c->first == 0 || c->first > c->last || (n && !epochs))
		return -EINVAL;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (EVP_MAC_init(m->ctx, c->key, c->key_len, params) != 1)
		return -EIO;
	for (unsigned l = 0; l < 2; l++) {
		uint16_t *out = l == 0 ? ret_doors : ret_knocks;

		if (!out)
			continue;
		for (size_t i = 0; i < n; i++) {
			off = base_put_string(base, 0, labels[l]);
			off = base_put_string(base, off, c->service);
			off = base_put_string(base, off, c->client);
			off = base_put_string(base, off, c->host_id);
			off = base_put_epoch(base, off, epochs[i]);
			r = fast_first(m->ctx, base, off, c->first, c->last,
				       l == 0 ? exclude : NULL, userdata, &out[i]);
			if (r == -EAGAIN)
				r = l == 0 ? schedule_client_port(c, epochs[i], exclude, userdata,
								  &out[i])
					   : schedule_client_knock_port(c, epochs[i], &out[i]);
			if (r < 0)
				return r;
		}
	}
	return 0;
}
