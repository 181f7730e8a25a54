/* SPDX-License-Identifier: MIT */
#include "json_bytes.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Length of the well-formed UTF-8 sequence at p (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF), 0 if there is none. */
static size_t utf8_sequence(const uint8_t *p, size_t left)
{
	uint32_t cp;
	size_t n;

	if (p[0] < 0x80)
		return p[0] != 0; /* NUL is escaped: C strings end there */
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2, cp = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3, cp = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4, cp = p[0] & 0x07;
	else
		return 0;
	if (left < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

json_t *json_bytes(const void *data, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const uint8_t *p = data;
	char *out;
	size_t n = 0;
	json_t *s;

	/* At most 4 output bytes per input byte ("\xHH"). */
	if (len > (SIZE_MAX - 1) / 4)
		return NULL;
	out = malloc(len * 4 + 1);
	if (!out)
		return NULL;
	for (size_t i = 0; i < len;) {
		size_t k = utf8_sequence(p + i, len - i);

		if (k > 0 && p[i] != '\\') {
			memcpy(out + n, p + i, k);
			n += k;
			i += k;
		} else if (p[i] == '\\') {
			out[n++] = '\\';
			out[n++] = '\\';
			i++;
		} else {
			out[n++] = '\\';
			out[n++] = 'x';
			out[n++] = hex[p[i] >> 4];
			out[n++] = hex[p[i] & 15];
			i++;
		}
	}
	s = json_stringn(out, n);
	free(out);
	return s;
}

json_t *json_bytes_str(const char *s)
{
	return s ? json_bytes(s, strlen(s)) : NULL;
}
