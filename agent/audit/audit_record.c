/* SPDX-License-Identifier: MIT */
/* The audit record format, shared by the writer and the verifier: building
 * the MACed body of a record, splitting a line into body and MAC, and
 * parsing a line into a struct audit_record. See docs/audit-log.md. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "audit_internal.h"
#include "macro.h"

int audit_hmac(const uint8_t key[AUDIT_KEY_SIZE], const void *data, size_t len,
	       uint8_t ret_mac[AUDIT_MAC_SIZE])
{
	OSSL_PARAM params[] = {
	    OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
	    OSSL_PARAM_construct_end(),
	};
	uint8_t out[AUDIT_MAC_SIZE];
	size_t out_len = 0;
	EVP_MAC_CTX *ctx = NULL;
	EVP_MAC *mac;
	int r = -EIO;

	mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (!mac)
		return -EIO;
	ctx = EVP_MAC_CTX_new(mac);
	if (!ctx)
		goto out;
	if (EVP_MAC_init(ctx, key, AUDIT_KEY_SIZE, params) != 1 ||
	    EVP_MAC_update(ctx, data, len) != 1 ||
	    EVP_MAC_final(ctx, out, &out_len, sizeof(out)) != 1 || out_len != sizeof(out))
		goto out;
	memcpy(ret_mac, out, sizeof(out));
	r = 0;
out:
	OPENSSL_cleanse(out, sizeof(out));
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	return r;
}

void audit_hex(const uint8_t *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0xf];
	}
	out[2 * n] = '\0';
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Lowercase only: the writer emits lowercase, and one spelling per value
 * keeps the format canonical. */
int audit_unhex(const char *in, size_t hex_len, uint8_t *out)
{
	if (hex_len % 2)
		return -EINVAL;
	for (size_t i = 0; i < hex_len; i += 2) {
		int hi = hex_digit(in[i]), lo = hex_digit(in[i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i / 2] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

bool audit_is_mac_hex(const char *s, size_t len)
{
	if (len != AUDIT_MAC_HEX_LEN)
		return false;
	for (size_t i = 0; i < len; i++)
		if (hex_digit(s[i]) < 0)
			return false;
	return true;
}

bool audit_mac_hex_equal(const char *a, const char *b)
{
	return CRYPTO_memcmp(a, b, AUDIT_MAC_HEX_LEN) == 0;
}

int audit_mac_hex(const uint8_t key[AUDIT_KEY_SIZE], const char *data, size_t len,
		  char ret_hex[AUDIT_MAC_HEX_LEN + 1])
{
	uint8_t mac[AUDIT_MAC_SIZE];
	int r;

	r = audit_hmac(key, data, len, mac);
	if (r < 0)
		return r;
	audit_hex(mac, sizeof(mac), ret_hex);
	return 0;
}

bool audit_type_valid(const char *type)
{
	size_t n;

	if (!type)
		return false;
	n = strlen(type);
	if (n == 0 || n > AUDIT_TYPE_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = type[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		      c == '.'))
			return false;
	}
	return true;
}

static bool boot_id_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') || s[i] == '-'))
			return false;
	return true;
}

static int format_realtime(uint64_t usec, char *buf, size_t size)
{
	time_t sec = (time_t)(usec / 1000000);
	struct tm tm;
	size_t n;

	if (!gmtime_r(&sec, &tm))
		return -ERANGE;
	n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
	if (n == 0)
		return -ERANGE;
	if ((size_t)snprintf(buf + n, size - n, ".%06" PRIu64 "Z", usec % 1000000) >= size - n)
		return -ERANGE;
	return 0;
}

int audit_record_body(const struct audit_record_head *head, char **ret_body, size_t *ret_len)
{
	_cleanup_(json_decrefp) json_t *type_json = NULL, *empty = NULL;
	_cleanup_free_ char *type_text = NULL, *fields_text = NULL, *body = NULL;
	char realtime[64];
	json_t *fields = head->fields;
	int n, r;

	if (!audit_type_valid(head->type) || !boot_id_valid(head->boot_id) ||
	    !audit_is_mac_hex(head->prev, strlen(head->prev)) || head->seq == 0 ||
	    head->seq > AUDIT_SEQ_MAX || head->epoch > AUDIT_SEQ_MAX ||
	    head->realtime_usec > AUDIT_SEQ_MAX || head->monotonic_usec > AUDIT_SEQ_MAX)
		return -EINVAL;
	if (fields && !json_is_object(fields))
		return -EINVAL;
	if (!fields) {
		empty = json_object();
		if (!empty)
			return -ENOMEM;
		fields = empty;
	}
	r = format_realtime(head->realtime_usec, realtime, sizeof(realtime));
	if (r < 0)
		return r;
	type_json = json_string(head->type);
	if (!type_json)
		return -ENOMEM;
	type_text = json_dumps(type_json, JSON_ENCODE_ANY | JSON_COMPACT | JSON_ENSURE_ASCII);
	fields_text = json_dumps(fields, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER);
	if (!type_text || !fields_text)
		return -ENOMEM;
	if (strlen(fields_text) > AUDIT_LINE_MAX)
		return -E2BIG;

	n = asprintf(&body,
		     "{\"seq\":%" PRIu64 ",\"realtime\":\"%s\",\"realtime_usec\":%" PRIu64
		     ",\"monotonic_usec\":%" PRIu64 ",\"boot_id\":\"%s\",\"epoch\":%" PRIu64
		     ",\"type\":%s,\"fields\":%s,\"prev\":\"%s\"",
		     head->seq, realtime, head->realtime_usec, head->monotonic_usec, head->boot_id,
		     head->epoch, type_text, fields_text, head->prev);
	if (n < 0) {
		body = NULL;
		return -ENOMEM;
	}
	*ret_len = (size_t)n;
	*ret_body = TAKE_PTR(body);
	return 0;
}

int audit_record_line(const uint8_t key[AUDIT_KEY_SIZE], const struct audit_record_head *head,
		      char **ret_line, size_t *ret_len, char ret_mac[AUDIT_MAC_HEX_LEN + 1])
{
	static const char sep[] = AUDIT_MAC_SEPARATOR;
	_cleanup_free_ char *body = NULL;
	char mac[AUDIT_MAC_HEX_LEN + 1];
	size_t body_len, len;
	char *line;
	int r;

	r = audit_record_body(head, &body, &body_len);
	if (r < 0)
		return r;
	len = body_len + strlen(sep) + AUDIT_MAC_HEX_LEN + 2;
	if (len > AUDIT_LINE_MAX)
		return -E2BIG;
	r = audit_mac_hex(key, body, body_len, mac);
	if (r < 0)
		return r;
	line = realloc(body, len + 1);
	if (!line)
		return -ENOMEM;
	body = NULL;
	memcpy(line + body_len, sep, strlen(sep));
	memcpy(line + body_len + strlen(sep), mac, AUDIT_MAC_HEX_LEN);
	memcpy(line + len - 2, "\"}", 3);
	*ret_len = len;
	memcpy(ret_mac, mac, sizeof(mac));
	*ret_line = line;
	return 0;
}

int audit_line_split(const char *line, size_t len, size_t *ret_body_len,
		     char ret_mac[AUDIT_MAC_HEX_LEN + 1])
{
	static const char sep[] = AUDIT_MAC_SEPARATOR;
	const size_t sep_len = sizeof(sep) - 1;
	const size_t tail_len = sep_len + AUDIT_MAC_HEX_LEN + 2;
	const char *tail;

	/* The record's own mac is always the last member and has a fixed
	 * length, so the last ,"mac":" is at a fixed distance from the end
	 * (a "mac" key inside fields comes earlier). */
	if (len < tail_len + 1 || line[0] != '{')
		return -EBADMSG;
	tail = line + len - tail_len;
	if (memcmp(tail, sep, sep_len) != 0 || memcmp(line + len - 2, "\"}", 2) != 0 ||
	    !audit_is_mac_hex(tail + sep_len, AUDIT_MAC_HEX_LEN))
		return -EBADMSG;
	memcpy(ret_mac, tail + sep_len, AUDIT_MAC_HEX_LEN);
	ret_mac[AUDIT_MAC_HEX_LEN] = '\0';
	*ret_body_len = len - tail_len;
	return 0;
}

_printf_(3, 4) static int reason_set(char *reason, size_t size, const char *fmt, ...)
{
	va_list ap;

	if (reason && size > 0) {
		va_start(ap, fmt);
		vsnprintf(reason, size, fmt, ap);
		va_end(ap);
	}
	return -EBADMSG;
}

static int get_uint(json_t *obj, const char *key, uint64_t max, uint64_t *ret, char *reason,
		    size_t reason_size)
{
	json_t *v = json_object_get(obj, key);
	json_int_t i;

	if (!v)
		return reason_set(reason, reason_size, "missing member \"%s\"", key);
	if (!json_is_integer(v))
		return reason_set(reason, reason_size, "member \"%s\" is not an integer", key);
	i = json_integer_value(v);
	if (i < 0 || (uint64_t)i > max)
		return reason_set(reason, reason_size, "member \"%s\" out of range", key);
	*ret = (uint64_t)i;
	return 0;
}

static int get_string(json_t *obj, const char *key, const char **ret, char *reason,
		      size_t reason_size)
{
	json_t *v = json_object_get(obj, key);

	if (!v)
		return reason_set(reason, reason_size, "missing member \"%s\"", key);
	if (!json_is_string(v))
		return reason_set(reason, reason_size, "member \"%s\" is not a string", key);
	*ret = json_string_value(v);
	return 0;
}

int audit_record_parse_reason(const char *line, size_t len, struct audit_record *ret_record,
			      char *reason, size_t reason_size)
{
	static const char *const members[] = {
	    "seq",   "realtime", "realtime_usec", "monotonic_usec", "boot_id",
	    "epoch", "type",	 "fields",	  "prev",	    "mac"};
	_cleanup_(json_decrefp) json_t *obj = NULL;
	struct audit_record rec = {};
	const char *key;
	json_error_t error;
	json_t *value;
	int r;

	if (!line)
		return -EINVAL;
	if (len > 0 && line[len - 1] == '\n')
		len--;
	if (len > AUDIT_LINE_MAX) {
		reason_set(reason, reason_size, "record longer than %d bytes", AUDIT_LINE_MAX);
		return -E2BIG;
	}
	if (len == 0)
		return reason_set(reason, reason_size, "empty line");
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];

		if (c < 0x20 || c >= 0x7f)
			return reason_set(reason, reason_size,
					  "control or non-ASCII byte 0x%02x at column %zu", c,
					  i + 1);
	}

	obj = json_loadb(line, len, JSON_REJECT_DUPLICATES, &error);
	if (!obj)
		return reason_set(reason, reason_size, "malformed JSON at column %d: %s",
				  error.column, error.text);
	if (!json_is_object(obj))
		return reason_set(reason, reason_size, "record is not a JSON object");
	json_object_foreach(obj, key, value)
	{
		bool known = false;

		for (size_t i = 0; i < ELEMENTSOF(members); i++)
			if (streq(key, members[i]))
				known = true;
		if (!known)
			return reason_set(reason, reason_size, "unexpected member \"%.40s\"", key);
	}

	r = get_uint(obj, "seq", AUDIT_SEQ_MAX, &rec.seq, reason, reason_size);
	if (r < 0)
		return r;
	if (rec.seq == 0)
		return reason_set(reason, reason_size, "seq 0 (sequence numbers start at 1)");
	r = get_uint(obj, "epoch", AUDIT_SEQ_MAX, &rec.epoch, reason, reason_size);
	if (r < 0)
		return r;
	r = get_uint(obj, "realtime_usec", AUDIT_SEQ_MAX, &rec.realtime_usec, reason, reason_size);
	if (r < 0)
		return r;
	r = get_uint(obj, "monotonic_usec", AUDIT_SEQ_MAX, &rec.monotonic_usec, reason,
		     reason_size);
	if (r < 0)
		return r;
	r = get_string(obj, "realtime", &rec.realtime, reason, reason_size);
	if (r < 0)
		return r;
	r = get_string(obj, "boot_id", &rec.boot_id, reason, reason_size);
	if (r < 0)
		return r;
	r = get_string(obj, "type", (const char **)&rec.type, reason, reason_size);
	if (r < 0)
		return r;
	if (!audit_type_valid(rec.type))
		return reason_set(reason, reason_size, "invalid record type");
	r = get_string(obj, "prev", &rec.prev, reason, reason_size);
	if (r < 0)
		return r;
	if (!audit_is_mac_hex(rec.prev, strlen(rec.prev)))
		return reason_set(reason, reason_size, "member \"prev\" is not 64 hex digits");
	r = get_string(obj, "mac", &rec.mac, reason, reason_size);
	if (r < 0)
		return r;
	if (!audit_is_mac_hex(rec.mac, strlen(rec.mac)))
		return reason_set(reason, reason_size, "member \"mac\" is not 64 hex digits");
	rec.fields = json_object_get(obj, "fields");
	if (!rec.fields)
		return reason_set(reason, reason_size, "missing member \"fields\"");
	if (!json_is_object(rec.fields))
		return reason_set(reason, reason_size, "member \"fields\" is not an object");

	rec.type = strdup(rec.type);
	if (!rec.type)
		return -ENOMEM;
	rec.object = TAKE_PTR(obj);
	*ret_record = rec;
	return 0;
}

int audit_record_parse(const char *line, size_t len, struct audit_record *ret_record)
{
	return audit_record_parse_reason(line, len, ret_record, NULL, 0);
}

void audit_record_done(struct audit_record *record)
{
	if (!record)
		return;
	free(record->type);
	json_decref(record->object);
	*record = (struct audit_record){};
}
