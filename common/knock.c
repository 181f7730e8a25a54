/* SPDX-License-Identifier: MIT */
/* The knock packet: see knock.h and docs/schedule.md. */
#include <errno.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "knock.h"

static int put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--)
		*p++ = (uint8_t)(v >> (8 * i));
	return 8;
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static size_t admit_size(enum knock_admit admit)
{
	switch (admit) {
	case KNOCK_ADMIT_SOURCE:
		return 0;
	case KNOCK_ADMIT_IPV4:
		return 4;
	case KNOCK_ADMIT_IPV6:
		return 16;
	}
	return SIZE_MAX;
}

static bool key_valid(const struct knock_key *key)
{
	return key && key->key && key->key_len > 0 && key->service && key->service[0] &&
	       strlen(key->service) <= SCHEDULE_MAX_SERVICE_NAME &&
	       schedule_host_id_valid(key->host_id);
}

/* HMAC-SHA256(key, label 0x00 service 0x00 host_id 0x00 || body) */
static int knock_mac(const struct knock_key *key, const uint8_t *body, size_t body_len,
		     uint8_t mac[KNOCK_MAC_SIZE])
{
	OSSL_PARAM params[2];
	EVP_MAC *hmac;
	EVP_MAC_CTX *ctx = NULL;
	size_t out_len = 0;
	int r = -EIO;

	hmac = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);
	if (!hmac)
		return -ENOMEM;
	ctx = EVP_MAC_CTX_new(hmac);
	if (!ctx)
		goto out;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (EVP_MAC_init(ctx, key->key, key->key_len, params) == 1 &&
	    EVP_MAC_update(ctx, (const uint8_t *)KNOCK_MAC_LABEL, sizeof(KNOCK_MAC_LABEL)) == 1 &&
	    EVP_MAC_update(ctx, (const uint8_t *)key->service, strlen(key->service) + 1) == 1 &&
	    EVP_MAC_update(ctx, (const uint8_t *)key->host_id, strlen(key->host_id) + 1) == 1 &&
	    EVP_MAC_update(ctx, body, body_len) == 1 &&
	    EVP_MAC_final(ctx, mac, &out_len, KNOCK_MAC_SIZE) == 1 && out_len == KNOCK_MAC_SIZE)
		r = 0;
out:
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(hmac);
	return r;
}

int knock_encode(const struct knock *k, const struct knock_key *key, uint8_t *buffer, size_t size)
{
	size_t name_len, addr_len, off = 0;
	int r;

	if (!k || !buffer || !key_valid(key) || !schedule_client_name_valid(k->client))
		return -EINVAL;
	addr_len = admit_size(k->admit);
	if (addr_len == SIZE_MAX)
		return -EINVAL;
	name_len = strlen(k->client);
	if (size < 4 + 1 + 1 + name_len + 8 + KNOCK_NONCE_SIZE + 1 + addr_len + KNOCK_MAC_SIZE)
		return -ENOBUFS;

	memcpy(buffer, KNOCK_MAGIC, 4);
	off = 4;
	buffer[off++] = KNOCK_VERSION;
	buffer[off++] = (uint8_t)name_len;
	memcpy(buffer + off, k->client, name_len);
	off += name_len;
	off += put_u64(buffer + off, k->time_sec);
	memcpy(buffer + off, k->nonce, KNOCK_NONCE_SIZE);
	off += KNOCK_NONCE_SIZE;
	buffer[off++] = (uint8_t)k->admit;
	memcpy(buffer + off, k->admit_addr, addr_len);
	off += addr_len;
	r = knock_mac(key, buffer, off, buffer + off);
	if (r < 0)
		return r;
	return (int)(off + KNOCK_MAC_SIZE);
}

/* Length of the packet's body (everything before the MAC) once parsed. */
static int parse_body(const uint8_t *p, size_t len, struct knock *ret, const char **ret_reason,
		      size_t *ret_body_len)
{
	struct knock k = {};
	size_t name_len, addr_len, off;

#define REFUSE(why)                                                                                \
	do {                                                                                       \
		*ret_reason = why;                                                                 \
		return -EBADMSG;                                                                   \
	} while (0)

	if (len < KNOCK_MIN_SIZE)
		REFUSE("too short");
	if (len > KNOCK_MAX_SIZE)
		REFUSE("too long");
	if (memcmp(p, KNOCK_MAGIC, 4) != 0)
		REFUSE("bad magic");
	if (p[4] != KNOCK_VERSION)
		REFUSE("unknown version");
	name_len = p[5];
	if (name_len == 0 || name_len > SCHEDULE_MAX_CLIENT_NAME)
		REFUSE("bad client name length");
	off = 6;
	if (len < off + name_len + 8 + KNOCK_NONCE_SIZE + 1 + KNOCK_MAC_SIZE)
		REFUSE("too short");
	memcpy(k.client, p + off, name_len);
	if (memchr(k.client, 0, name_len) || !schedule_client_name_valid(k.client))
		REFUSE("bad client name");
	off += name_len;
	k.time_sec = get_u64(p + off);
	off += 8;
	memcpy(k.nonce, p + off, KNOCK_NONCE_SIZE);
	off += KNOCK_NONCE_SIZE;
	k.admit = (enum knock_admit)p[off++];
	addr_len = admit_size(k.admit);
	if (addr_len == SIZE_MAX)
		REFUSE("bad admit field");
	if (len != off + addr_len + KNOCK_MAC_SIZE)
		REFUSE("length does not match its fields");
	memcpy(k.admit_addr, p + off, addr_len);
	off += addr_len;
#undef REFUSE
	*ret = k;
	*ret_body_len = off;
	return 0;
}

int knock_parse(const uint8_t *packet, size_t len, struct knock *ret, const char **ret_reason)
{
	const char *reason = NULL;
	size_t body_len;
	int r;

	if (!packet || !ret)
		return -EINVAL;
	r = parse_body(packet, len, ret, &reason, &body_len);
	if (ret_reason)
		*ret_reason = reason;
	return r;
}

int knock_verify(const uint8_t *packet, size_t len, const struct knock_key *key)
{
	uint8_t mac[KNOCK_MAC_SIZE];
	struct knock k;
	const char *reason;
	size_t body_len;
	int r;

	if (!packet || !key_valid(key))
		return -EINVAL;
	r = parse_body(packet, len, &k, &reason, &body_len);
	if (r < 0)
		return r;
	r = knock_mac(key, packet, body_len, mac);
	if (r < 0)
		return r;
	return CRYPTO_memcmp(mac, packet + body_len, KNOCK_MAC_SIZE) == 0 ? 0 : -EBADMSG;
}
