/* SPDX-License-Identifier: MIT */
/* The reader of one policy file: the libinih-driven parse into struct policy,
 * through the schema of policy_keys.c, then the cross-key checks of
 * policy_validate.c. policy_set.c reads sets of files with it, and
 * policy_globals.c the global file with its line reader (policy_read_ini) and
 * file reader (policy_read_file).
 *
 * libinih (Debian's build) has no line numbers in its handler, so we feed it
 * through our own line reader (ini_parse_stream), which counts lines, rejects
 * what inih would silently accept or mangle (text after "]", continuation
 * lines, NUL bytes, overlong lines, keys before any section) and hands inih
 * only lines it will parse as we expect. inih's tunables are process-wide
 * globals; we set them before each parse (no other code in the agent uses
 * inih, and policy parsing is single-threaded). */
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy_internal.h"

/* --- the line reader and the inih handler ------------------------------------- */

static int handler(void *user, const char *section, const char *name, const char *value)
{
	struct parse_state *st = user;
	struct policy_source *src = st->source;
	const struct schema_entry *e;
	_cleanup_free_ char *stripped = NULL;
	const char *reason = NULL;
	char q[256];
	int i, r;

	if (st->section == SEC_INVALID)
		return 1; /* the section was reported already */
	i = policy_schema_find(st->section, name);
	if (i < 0) {
		const char *hint = policy_schema_hint(st->section, name);
		if (hint)
			policy_parse_error(st, policy_section_names[st->section], name,
					   "unknown key (did you mean %s=?)", hint);
		else
			policy_parse_error(st, policy_section_names[st->section], name,
					   "unknown key");
		return 1;
	}
	e = policy_schema_entry(i);
	if (src->key_line[i] && !(e->flags & F_REPEAT)) {
		policy_parse_error(st, policy_section_names[e->section], e->key,
				   "given twice (first at line %u); this key does not repeat",
				   src->key_line[i]);
		return 1;
	}
	if (!src->key_line[i])
		src->key_line[i] = st->line;
	if (!(e->flags & F_SHELL)) {
		/* "Key=value   # comment": white space then '#' ends the value.
		 * Exec= does this itself, but honours quotes. */
		for (const char *c = value; *c; c++)
			if (*c == '#' && (c == value || c[-1] == ' ' || c[-1] == '\t')) {
				size_t n = (size_t)(c - value);
				while (n > 0 && (value[n - 1] == ' ' || value[n - 1] == '\t'))
					n--;
				stripped = strndup(value, n);
				if (!stripped) {
					st->oom = -ENOMEM;
					return 1;
				}
				value = stripped;
				break;
			}
	}
	if (!*value) {
		policy_parse_error(st, policy_section_names[e->section], e->key, "empty value");
		return 1;
	}
	r = e->parse(st, e, value, &reason);
	if (r == -ENOMEM)
		st->oom = r;
	else if (r < 0 && reason)
		policy_parse_error(st, policy_section_names[e->section], e->key, "%s: %s",
				   policy_quote(q, sizeof(q), value), reason);
	return 1;
}

/* Hands inih one line at a time (see the top of the file). Returns "\n" for
 * lines we reported ourselves so that inih skips them. */
static char *reader(char *str, int num, void *stream)
{
	struct parse_state *st = stream;
	const char *line, *end, *nl;
	size_t n, max;

	if (st->pos >= st->len || num < 4)
		return NULL;
	line = st->text + st->pos;
	nl = memchr(line, '\n', st->len - st->pos);
	end = nl ? nl : st->text + st->len;
	st->pos = (size_t)(end - st->text) + (nl ? 1 : 0);
	st->line++;
	strcpy(str, "\n");

	if (st->line == 1 && end - line >= 3 && memcmp(line, "\xef\xbb\xbf", 3) == 0)
		line += 3;
	if (end > line && end[-1] == '\r')
		end--;
	while (line < end && (*line == ' ' || *line == '\t'))
		line++;
	while (end > line && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	n = (size_t)(end - line);
	max = (size_t)num - 2 < POLICY_LINE_MAX ? (size_t)num - 2 : POLICY_LINE_MAX;

	if (memchr(line, 0, n)) {
		policy_parse_error(st, NULL, NULL, "NUL byte in line");
		return str;
	}
	if (n > max) {
		policy_parse_error(st, NULL, NULL, "line longer than %zu bytes", max);
		return str;
	}
	if (n == 0 || line[0] == '#' || line[0] == ';')
		return str;
	if (line[0] == '[') {
		const char *close = memchr(line, ']', n);
		char name[64];
		size_t len;

		st->section = SEC_INVALID;
		st->seen_section = true;
		if (!close || close != end - 1 || close == line + 1 ||
		    memchr(line + 1, '[', n - 1)) {
			policy_parse_error(st, NULL, NULL,
					   "malformed section header (expected [Section])");
			return str;
		}
		len = (size_t)(close - line - 1);
		if (len >= sizeof(name)) {
			policy_parse_error(st, NULL, NULL, "unknown section");
			return str;
		}
		memcpy(name, line + 1, len);
		name[len] = 0;
		st->section = policy_section_find(name);
		if (st->section != SEC_INVALID && !(st->sections & (1u << st->section)))
			st->section = SEC_INVALID;
		if (st->section == SEC_INVALID) {
			char q[256];
			policy_parse_error(st, NULL, NULL, "unknown section %s (expected %s)",
					   policy_quote(q, sizeof(q), name), st->sections_hint);
			return str;
		}
		if (!st->source->section_line[st->section])
			st->source->section_line[st->section] = st->line;
		memcpy(str, line, n);
		memcpy(str + n, "\n", 2);
		return str;
	}
	{
		const char *eq = memchr(line, '=', n), *colon = memchr(line, ':', n);
		if (!eq || eq == line || (colon && colon < eq)) {
			policy_parse_error(st, NULL, NULL,
					   "expected Key=Value, [Section] or a # comment");
			return str;
		}
	}
	if (!st->seen_section) {
		policy_parse_error(st, NULL, NULL, "Key=Value before any [Section]");
		return str;
	}
	memcpy(str, line, n);
	memcpy(str + n, "\n", 2);
	return str;
}

int policy_read_file(const char *path, bool missing_ok, char **ret_text, size_t *ret_len,
		     struct policy_errors *errors)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *buf = NULL;
	struct stat st;
	size_t got = 0;

	/* Look before opening: opening some devices has side effects. */
	if (stat(path, &st) < 0) {
		if (errno == ENOENT && missing_ok)
			return -ENOENT;
		return policy_errors_add(errors, path, 0, NULL, NULL, "cannot read: %s",
					 strerror(errno));
	}
	if (!S_ISREG(st.st_mode))
		return policy_errors_add(errors, path, 0, NULL, NULL,
					 "cannot read: not a regular file");
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0 || fstat(fd, &st) < 0)
		return policy_errors_add(errors, path, 0, NULL, NULL, "cannot read: %s",
					 strerror(errno));
	if (!S_ISREG(st.st_mode))
		return policy_errors_add(errors, path, 0, NULL, NULL,
					 "cannot read: not a regular file");
	buf = malloc(POLICY_FILE_SIZE_MAX + 1);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t k = read(fd, buf + got, POLICY_FILE_SIZE_MAX + 1 - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return policy_errors_add(errors, path, 0, NULL, NULL, "cannot read: %s",
						 strerror(errno));
		if (k == 0)
			break;
		got += (size_t)k;
		if (got > POLICY_FILE_SIZE_MAX)
			return policy_errors_add(errors, path, 0, NULL, NULL,
						 "file larger than %d bytes", POLICY_FILE_SIZE_MAX);
	}
	buf[got] = 0;
	*ret_text = TAKE_PTR(buf);
	*ret_len = got;
	return 0;
}

static struct policy *policy_new(void)
{
	struct policy *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->source = calloc(1, sizeof(*p->source));
	if (!p->source) {
		free(p);
		return NULL;
	}
	/* Defaults (documented in docs/mtd.policy.5). Health check and Grace
	 * depend on other keys and are settled in policy_validate(). */
	p->health_interval_usec = 5 * USEC_PER_SEC;
	p->health_timeout_usec = 1 * USEC_PER_SEC;
	p->health_failures = 3;
	p->on_compromise = COMPROMISE_QUARANTINE;
	p->on_unhealthy = COMPROMISE_KILL; /* failing health is no sign of compromise */
	p->quarantine_max_bytes = UINT64_C(256) << 20;
	p->replace_burst = 5;
	p->replace_interval_usec = USEC_PER_MINUTE;
	p->interval_usec = 60 * USEC_PER_SEC;
	p->decoys = 0;
	p->decoy_block_usec = 10 * USEC_PER_MINUTE;
	p->decoy_block_factor = 2;
	p->decoy_block_max_usec = USEC_PER_DAY; /* or DecoyBlock= if longer: policy_validate() */
	p->decoy_repeat_window_usec = USEC_PER_DAY;
	p->local_access = false;
	p->syscall_default = SYSCALL_DEFAULT_ERRNO;
	p->on_syscall_violation = SYSCALL_VIOLATION_QUARANTINE;
	p->egress_alert_threshold = 10;
	p->memory_max_bytes = UINT64_C(512) << 20;
	p->tasks_max = 512;
	p->cpu_quota_percent = 0;
	p->writable_size_bytes = UINT64_C(64) << 20;
	p->limit_nofile = 1024;
	p->private_users = false;
	return p;
}

static void strv_clear(struct string_list *l)
{
	for (size_t i = 0; i < l->count; i++)
		free(l->items[i]);
	free(l->items);
}

void policy_free(struct policy *p)
{
	if (!p)
		return;
	free(p->path);
	free(p->name);
	free(p->snapshot);
	free(p->snapshot_key);
	strv_clear(&p->exec_argv);
	free(p->user);
	free(p->group);
	free(p->key_file);
	free(p->client_keys);
	free(p->address_pools);
	free(p->never_block);
	strv_clear(&p->system_calls);
	strv_clear(&p->violation_system_calls);
	strv_clear(&p->writable);
	free(p->egress);
	policy_hooks_free(p->hooks, p->hook_count);
	free(p->source);
	free(p);
}

static void policy_freep(struct policy **p)
{
	policy_free(*p);
}

/* Errors of one file in line order (stable; whole-file errors, line 0, last). */
void policy_sort_errors(struct policy_errors *errors, size_t before)
{
	struct policy_error *items;
	size_t n;

	if (errors->count <= before)
		return; /* items may be NULL, and NULL + 0 is undefined */
	items = errors->items + before;
	n = errors->count - before;
	for (size_t i = 1; i < n; i++) {
		struct policy_error e = items[i];
		unsigned key = e.line ? e.line : UINT_MAX;
		size_t j = i;
		for (; j > 0 && (items[j - 1].line ? items[j - 1].line : UINT_MAX) > key; j--)
			items[j] = items[j - 1];
		items[j] = e;
	}
}

int policy_parse_buffer(const char *file_name, const char *text, size_t len,
			struct policy **ret_policy, struct policy_errors *errors)
{
	_cleanup_(policy_freep) struct policy *p = NULL;
	struct parse_state st = {
	    .file = file_name,
	    .errors = errors,
	    .text = text,
	    .len = len,
	    .sections = SECTIONS_POLICY,
	    .sections_hint = "[Service], [Rotation] or [Envelope]",
	};
	size_t before = errors->count;
	int r;

	p = policy_new();
	if (!p)
		return -ENOMEM;
	p->path = strdup(file_name);
	if (!p->path)
		return -ENOMEM;
	st.p = p;
	st.target = p;
	st.source = p->source;

	r = policy_read_ini(&st);
	if (r < 0)
		return r;

	if (p->source->key_line[policy_schema_find(SEC_SERVICE, "Backend")] &&
	    !p->source->key_line[policy_schema_find(SEC_SERVICE, "Snapshot")])
		policy_check_host_keys(&st);
	if (st.oom)
		return -ENOMEM;

	r = policy_validate(p, errors);
	if (r < 0)
		return r;
	if (errors->count > before) {
		policy_sort_errors(errors, before);
		return -EINVAL;
	}
	*ret_policy = TAKE_PTR(p);
	return 0;
}

int policy_read_ini(struct parse_state *st)
{
	size_t before = st->errors->count;
	int r;

	st->section = SEC_INVALID;
	ini_allow_multiline = false;
	ini_allow_inline_comments = false;
	ini_allow_no_value = false;
	ini_stop_on_first_error = false;
	ini_allow_bom = false;
	ini_use_stack = false;
	ini_allow_realloc = false;
	ini_max_line = POLICY_LINE_MAX + 3;
	ini_initial_alloc = POLICY_LINE_MAX + 3;

	r = ini_parse_stream(reader, st, handler, st);
	if (r == -2 || st->oom)
		return -ENOMEM;
	if (r > 0 && st->errors->count == before) {
		st->line = (unsigned)r;
		policy_parse_error(st, NULL, NULL, "syntax error");
	}
	return st->oom ? -ENOMEM : 0;
}
