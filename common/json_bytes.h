/* SPDX-License-Identifier: MIT */
/* Bytes an instance controls (file names, process arguments, comm) as JSON
 * strings, whatever they hold. JSON strings are UTF-8, and jansson refuses
 * (or, for unchecked strings, fails to dump) anything else, which lost
 * evidence: a quarantine that could not be saved, a drift record without its
 * path. Here every well-formed UTF-8 sequence is kept as it is, a backslash
 * becomes "\\", and any other byte (a stray 0xff, a NUL, a truncated or
 * overlong sequence, a surrogate) becomes "\xHH": nothing is dropped, and the
 * original bytes can be recovered exactly. */
#pragma once

#include <jansson.h>
#include <stddef.h>

/* A new JSON string for len bytes of data; NULL only when out of memory. */
json_t *json_bytes(const void *data, size_t len);

/* The same for a NUL-terminated string; NULL stays NULL (JSON null in
 * json_pack's "o?"). */
json_t *json_bytes_str(const char *s);
