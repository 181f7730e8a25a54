/* SPDX-License-Identifier: MIT */
/* The error collection of policy files (struct policy_errors): appending,
 * freeing, and the two helpers every layer above reports through (a value
 * quoted for a message, an error at the reader's current line). The bottom of
 * agent/policy/: it calls no other file of the folder. */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy_internal.h"

/* The array has room for the smallest power of two >= count (at least 8):
 * it doubles instead of growing by one, so a file with n errors costs O(n)
 * copying, not O(n^2) (a realloc that moves every time, as under ASan, made
 * an 8 KiB file of bad lines take 0.7 s in fuzz_policy). Only
 * policy_errors_add() appends, policy_errors_free() empties. */
static struct policy_error *errors_grow(struct policy_errors *errors)
{
	size_t n = errors->count;

	if (n > 0 && (n < 8 || (n & (n - 1)) != 0))
		return errors->items; /* room left */
	if (n > SIZE_MAX / 2 / sizeof(*errors->items))
		return NULL;
	return realloc(errors->items, (n ? 2 * n : 8) * sizeof(*errors->items));
}

int policy_errors_add(struct policy_errors *errors, const char *file, unsigned line,
		      const char *section, const char *key, const char *fmt, ...)
{
	struct policy_error e = {.line = line}, *n;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&e.reason, fmt, ap);
	va_end(ap);
	if (r < 0)
		return -ENOMEM;
	e.file = strdup(file ? file : "");
	e.section = section ? strdup(section) : NULL;
	e.key = key ? strdup(key) : NULL;
	n = errors_grow(errors);
	if (!e.file || (section && !e.section) || (key && !e.key) || !n) {
		if (n)
			errors->items = n;
		free(e.reason);
		free(e.file);
		free(e.section);
		free(e.key);
		return -ENOMEM;
	}
	errors->items = n;
	n[errors->count++] = e;
	return 0;
}

void policy_errors_free(struct policy_errors *errors)
{
	if (!errors)
		return;
	for (size_t i = 0; i < errors->count; i++) {
		free(errors->items[i].file);
		free(errors->items[i].section);
		free(errors->items[i].key);
		free(errors->items[i].reason);
	}
	free(errors->items);
	errors->items = NULL;
	errors->count = 0;
}

char *policy_error_format(const struct policy_error *e)
{
	char lbuf[16] = "", *s = NULL;
	_cleanup_free_ char *where = NULL;
	int r;

	if (e->line)
		snprintf(lbuf, sizeof(lbuf), ":%u", e->line);
	if (e->section && e->key)
		r = asprintf(&where, "%s.%s: ", e->section, e->key);
	else if (e->section)
		r = asprintf(&where, "[%s]: ", e->section);
	else
		r = asprintf(&where, "%s", "");
	if (r < 0)
		return NULL;
	if (asprintf(&s, "%s%s: %s%s", e->file ? e->file : "", lbuf, where,
		     e->reason ? e->reason : "") < 0)
		return NULL;
	return s;
}

const char *policy_quote(char *buf, size_t size, const char *v)
{
	size_t o = 0, n = 0;

	buf[o++] = '"';
	for (; *v && o + 8 < size; v++, n++) {
		unsigned char c = (unsigned char)*v;
		if (n >= 60) {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		if (c == '"' || c == '\\') {
			buf[o++] = '\\';
			buf[o++] = (char)c;
		} else if (c < 0x20 || c == 0x7f)
			o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
		else
			buf[o++] = (char)c;
	}
	buf[o++] = '"';
	buf[o] = 0;
	return buf;
}

void policy_parse_error(struct parse_state *st, const char *section, const char *key,
			const char *fmt, ...)
{
	_cleanup_free_ char *msg = NULL;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (r < 0) {
		msg = NULL;
		st->oom = -ENOMEM;
		return;
	}
	if (policy_errors_add(st->errors, st->file, st->line, section, key, "%s", msg) < 0)
		st->oom = -ENOMEM;
}
