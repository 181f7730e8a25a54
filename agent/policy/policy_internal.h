/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy.h"
#include "macro.h"
#include "clock.h"

/*
 * The files of agent/policy/ call one way only, each the files below it:
 *
 *   policy_set.c       a set of files, checked as a whole
 *   policy_globals.c   the global file (mtd.conf), through the same reader
 *   policy_reader.c    one file: line reader, inih handler, defaults
 *   policy_validate.c  cross-key checks, KeyFile= reading
 *   policy_clients.c   ClientKeys= directories (NAME.key files)
 *   policy_keys.c      the schema: every key and its value handler
 *   policy_value.c     pure value parsers (syscall_groups.c below them)
 *   policy_errors.c    the error collection (struct policy_errors)
 *
 * policy_json.c renders a parsed policy with the value formatters.
 */

/* --- policy_value.c -----------------------------------------------------------
 * Pure value parsers for policy files. Each returns 0 or -EINVAL (-ENOMEM
 * where it allocates) and, on failure, a short static reason in *ret_reason
 * (never NULL on failure when ret_reason is given). Out-parameters are not
 * touched on failure. Nothing here logs or touches the file system. */

#define POLICY_PATH_MAX 4095 /* longest accepted absolute path */
#define POLICY_EXEC_ARGS_MAX 256
#define POLICY_KEY_MIN 32 /* bytes of key material in a KeyFile= */
#define POLICY_KEY_MAX 128

/* Unsigned decimal, full-string, no sign, no leading/trailing space; bounds
 * inclusive. */
int policy_parse_uint64(const char *s, uint64_t min, uint64_t max, uint64_t *ret,
			const char **ret_reason);
int policy_parse_unsigned(const char *s, unsigned min, unsigned max, unsigned *ret,
			  const char **ret_reason);

/* yes/no/true/false/on/off/1/0, case-insensitive. */
int policy_parse_bool(const char *s, bool *ret, const char **ret_reason);

/* "256M", "1G", "512K", "4096" (bytes); suffixes B K M G T, base 1024. */
int policy_parse_size(const char *s, uint64_t *ret_bytes, const char **ret_reason);
char *policy_format_size(char *buf, size_t size, uint64_t bytes);
#define POLICY_SIZE_MAX 32

/* "8080" or "20000-29999"; ports are 1..65535. */
int policy_parse_port(const char *s, uint16_t *ret, const char **ret_reason);
int policy_parse_port_range(const char *s, struct port_range *ret, const char **ret_reason);

/* "tcp" or "udp" (lower case). */
int policy_parse_proto(const char *s, enum policy_proto *ret, const char **ret_reason);
const char *policy_proto_to_string(enum policy_proto proto);

/* "8080/tcp", "53/udp"; a bare port means tcp. */
int policy_parse_port_proto(const char *s, uint16_t *ret_port, enum policy_proto *ret_proto,
			    const char **ret_reason);

/* "10.0.0.0/8", "fd00::/64". With allow_bare, an address without /N is a
 * host route (/32, /128). Host bits set after the prefix are an error. */
int policy_parse_cidr(const char *s, bool allow_bare, struct cidr *ret, const char **ret_reason);
char *policy_format_cidr(char *buf, size_t size, const struct cidr *cidr);
#define POLICY_CIDR_MAX 64 /* INET6_ADDRSTRLEN + "/128" */
/* True when s is a prefix with host bits set after it ("10.1.2.3/8", which
 * policy_parse_cidr rejects); *ret_network is then the prefix it would be with
 * them cleared (10.0.0.0/8), for the error message. */
bool policy_cidr_host_bits(const char *s, bool allow_bare, struct cidr *ret_network);
/* True if the two prefixes share at least one address (same family only). */
bool policy_cidr_overlap(const struct cidr *a, const struct cidr *b);

/* "127.0.0.1:22", "[::1]:22". */
int policy_parse_socket_address(const char *s, struct socket_address *ret, const char **ret_reason);
char *policy_format_socket_address(char *buf, size_t size, const struct socket_address *sa);
#define POLICY_SOCKADDR_MAX 64

/* "udp/53 192.0.2.53", "tcp/443", "tcp/8000-8100 10.0.0.0/8". */
int policy_parse_egress(const char *s, struct egress_rule *ret, const char **ret_reason);

/* "CAP_NET_BIND_SERVICE", "net_bind_service" (case-insensitive) -> number. */
int policy_parse_capability(const char *s, unsigned *ret_cap, const char **ret_reason);

/* A syscall name known to libseccomp on the native architecture, or an
 * "@group" known to policy.h. */
int policy_check_syscall(const char *s, const char **ret_reason);

/* Shell-like split: whitespace separates words; '...' is literal; "..."
 * honours \" \\ \$ \`; outside quotes a backslash escapes the next character;
 * an unquoted '#' at the start of a word starts a comment. Unbalanced quotes,
 * a trailing backslash, no words or more than POLICY_EXEC_ARGS_MAX words are
 * errors. Returns a NULL-terminated vector in ret (count in ret_count). */
int policy_split_words(const char *s, char ***ret, size_t *ret_count, const char **ret_reason);

/* [a-z0-9][a-z0-9_-]{0,31} */
int policy_check_service_name(const char *s, const char **ret_reason);
/* A user or group: a name [a-z_][a-z0-9_-]{0,31} or a decimal id < 2^32-1. */
int policy_check_user_name(const char *s, const char **ret_reason);
/* Absolute, no "." or ".." components, no control characters, at most
 * POLICY_PATH_MAX bytes. */
int policy_check_absolute_path(const char *s, const char **ret_reason);

/* Key text: hex digits (case-insensitive); blank lines and lines starting
 * with '#' are ignored, as is white space between digits. POLICY_KEY_MIN to
 * POLICY_KEY_MAX bytes. The returned buffer is malloc'd; callers should
 * explicit_bzero() it before freeing. */
int policy_parse_key_text(const char *text, size_t len, uint8_t **ret_key, size_t *ret_len,
			  const char **ret_reason);

/* "N/SPAN" (UDPBlockLimit=, HookRate=, KnockRate=): N in min..max, SPAN a time
 * span of 1s..1d. The caller's reasons name its N: format_reason when the
 * shape is wrong ("expected RUNS/SPAN (e.g. 30/1min)"), range_reason when N
 * is out of bounds ("RUNS not in 1-100000"). */
int policy_parse_rate(const char *s, unsigned min, unsigned max, const char *format_reason,
		      const char *range_reason, unsigned *ret_n, uint64_t *ret_span_usec,
		      const char **ret_reason);

void policy_strv_free(char **v);

#define POLICY_LINE_MAX 4096	       /* longest accepted line, in bytes */
#define POLICY_FILE_SIZE_MAX (1 << 20) /* largest accepted policy file */

/* --- policy_errors.c ---------------------------------------------------------- */

/* Append one error; section, key may be NULL. Returns 0 or -ENOMEM. */
int policy_errors_add(struct policy_errors *errors, const char *file, unsigned line,
		      const char *section, const char *key, const char *fmt, ...) _printf_(6, 7);

/* --- policy_keys.c (where a key was set) -------------------------------------- */

/* Line where Section.Key was (first) set in the policy's file, or 0. */
unsigned policy_key_line(const struct policy *policy, const char *section, const char *key);
/* Line of the first [Section] header, or 0. */
unsigned policy_section_line(const struct policy *policy, const char *section);

/* --- policy_hooks.c ([Hooks] of the global file) ------------------------------ */

void policy_hooks_free(struct policy_hook *hooks, size_t count);

/* --- policy_reader.c (shared with policy_globals.c) -------------------------- */

struct parse_state;
/* Runs the line reader and inih over st->text; errors go to st->errors.
 * Returns 0 or -ENOMEM. */
int policy_read_ini(struct parse_state *st);
/* Sorts errors->items[before..] by line (whole-file errors, line 0, last). */
void policy_sort_errors(struct policy_errors *errors, size_t before);
/* Reads a regular file of at most POLICY_FILE_SIZE_MAX bytes into a
 * NUL-terminated *ret_text. Errors ("cannot read: ...") are appended and 0
 * returned with *ret_text untouched; with missing_ok a missing file returns
 * -ENOENT and appends nothing. -ENOMEM on allocation failure. */
int policy_read_file(const char *path, bool missing_ok, char **ret_text, size_t *ret_len,
		     struct policy_errors *errors);

/* --- policy_validate.c ------------------------------------------------------- */

/* Checks of one parsed policy that span keys. Appends errors; returns 0 or
 * -ENOMEM. */
int policy_validate(struct policy *policy, struct policy_errors *errors);

/* --- the schema and the parse state: policy_reader.c and policy_keys.c ------- */

/* SEC_DECOYS, SEC_HOOKS and SEC_AGENT are the global file's; a file of each kind accepts its own
 * sections only (parse_state.sections). */
enum section_id {
	SEC_SERVICE,
	SEC_ROTATION,
	SEC_ENVELOPE,
	SEC_DECOYS,
	SEC_HOOKS,
	SEC_AGENT,
	_SEC_MAX,
	SEC_INVALID = -1
};
#define SECTIONS_POLICY ((1u << SEC_SERVICE) | (1u << SEC_ROTATION) | (1u << SEC_ENVELOPE))
#define SECTIONS_GLOBALS ((1u << SEC_AGENT) | (1u << SEC_DECOYS) | (1u << SEC_HOOKS))
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

#define SCHEMA_MAX 80

struct policy_source {
	unsigned section_line[_SEC_MAX];
	unsigned key_line[SCHEMA_MAX];
};

struct parse_state {
	const char *file;
	struct policy *p;	      /* the policy parsed; NULL for the global file */
	void *target;		      /* what FIELD() offsets point into: p or the globals */
	struct policy_source *source; /* line of each section and key */
	unsigned sections;	      /* SECTIONS_POLICY or SECTIONS_GLOBALS */
	const char *sections_hint;    /* "[Service], [Rotation] or [Envelope]" */
	struct policy_errors *errors;
	int oom;
	/* reader */
	const char *text;
	size_t len, pos;
	unsigned line;
	enum section_id section;
	bool seen_section;
};

#define FIELD(st, e, type) ((type *)((char *)(st)->target + (e)->offset))

/* policy_errors.c: "VALUE" for messages: at most 60 bytes, quotes escaped, non-printables as
 * \xHH. */
const char *policy_quote(char *buf, size_t size, const char *v);

/* An error at the current line; on allocation failure sets st->oom. */
void policy_parse_error(struct parse_state *st, const char *section, const char *key,
			const char *fmt, ...) _printf_(4, 5);

/* policy_keys.c: index of Section.Key in the schema, or -1; the entry itself. */
int policy_schema_find(enum section_id section, const char *key);
const struct schema_entry *policy_schema_entry(int index);
/* The key of section spelled like name but for case, or NULL. */
const char *policy_schema_hint(enum section_id section, const char *name);
enum section_id policy_section_find(const char *name);

/* policy_hooks.c: the [Hooks] keys OnEvent= and HookRate= (value handlers). */
int policy_parse_on_event(struct parse_state *st, const struct schema_entry *e, const char *value,
			  const char **reason);
int policy_parse_hook_rate(struct parse_state *st, const struct schema_entry *e, const char *value,
			   const char **reason);

/* Reports keys of a managed service given in a host service (Backend=). */
void policy_check_host_keys(struct parse_state *st);
