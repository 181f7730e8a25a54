/* SPDX-License-Identifier: MIT */
/* Private to agent/policy.c (reader, inih glue) and agent/policy_keys.c
 * (schema table and value handlers). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "policy_internal.h"

enum section_id { SEC_SERVICE, SEC_ROTATION, SEC_ENVELOPE, _SEC_MAX, SEC_INVALID = -1 };
extern const char *const policy_section_names[_SEC_MAX];

#define F_REPEAT 1u  /* repeated assignments append */
#define F_MANAGED 2u /* only for managed services (Snapshot=) */
#define F_SHELL 4u   /* the value handles its own # comments (Exec=) */

struct parse_state;
struct schema_entry;
typedef int (*parse_fn)(struct parse_state *st, const struct schema_entry *e, const char *value,
			const char **reason);

struct schema_entry {
	enum section_id section;
	const char *key;
	parse_fn parse;
	size_t offset;
	uint64_t min, max;
	const char *const *names; /* enum values, index = enum value */
	unsigned flags;
};

#define SCHEMA_MAX 64

struct policy_source {
	unsigned section_line[_SEC_MAX];
	unsigned key_line[SCHEMA_MAX];
};

struct parse_state {
	const char *file;
	struct policy *p;
	struct policy_errors *errors;
	int oom;
	/* reader */
	const char *text;
	size_t len, pos;
	unsigned line;
	enum section_id section;
	bool seen_section;
};

#define FIELD(st, e, type) ((type *)((char *)(st)->p + (e)->offset))
/* "VALUE" for messages: at most 60 bytes, quotes escaped, non-printables as
 * \xHH. */
const char *policy_quote(char *buf, size_t size, const char *v);

/* An error at the current line; on allocation failure sets st->oom. */
void policy_parse_error(struct parse_state *st, const char *section, const char *key,
			const char *fmt, ...) _printf_(4, 5);

/* Index of Section.Key in the schema, or -1; the entry itself. */
int policy_schema_find(enum section_id section, const char *key);
const struct schema_entry *policy_schema_entry(int index);
/* The key of section spelled like name but for case, or NULL. */
const char *policy_schema_hint(enum section_id section, const char *name);
enum section_id policy_section_find(const char *name);

/* Reports keys of a managed service given in a host service (Backend=). */
void policy_check_host_keys(struct parse_state *st);
