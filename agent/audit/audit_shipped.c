/* SPDX-License-Identifier: MIT */
/* The copy of the audit log that left the host through the journal
 * (audit_journal.c sends it; systemd-journal-upload carries it to a
 * systemd-journal-remote): read back from journal files, verified with gaps
 * allowed, and compared with the host's own log, whose tail an intruder with
 * root (and so the current epoch's key) could have cut or rewritten. See
 * docs/audit-log.md "Off the host". */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <systemd/sd-journal.h>

#include "audit_internal.h"
#include "macro.h"

#define FIELD_RECORD "MTD_RECORD="
#define FIELD_MACHINE "_MACHINE_ID="

_printf_(3, 4) static int say(char *err, size_t err_size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, err_size, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int record_seq(const char *line, size_t len, uint64_t *ret_seq)
{
	_cleanup_(audit_record_done) struct audit_record rec = {};
	int r = audit_record_parse(line, len, &rec);

	if (r < 0)
		return r;
	*ret_seq = rec.seq;
	return 0;
}

static int append(struct audit_lines *lines, uint64_t seq, const char *line, size_t len)
{
	struct audit_line *a;
	char *copy;

	if (lines->n == lines->allocated) {
		size_t want = lines->allocated ? lines->allocated * 2 : 256;

		a = reallocarray(lines->lines, want, sizeof(*a));
		if (!a)
			return -ENOMEM;
		lines->lines = a;
		lines->allocated = want;
	}
	copy = strndup(line, len);
	if (!copy)
		return -ENOMEM;
	lines->lines[lines->n++] = (struct audit_line){.seq = seq, .line = copy, .len = len};
	return 0;
}

static int by_seq(const void *a, const void *b)
{
	const struct audit_line *x = a, *y = b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Sorted by seq; identical copies (an upload repeated) kept once, two
 * different records with one seq refused. */
static int sort_unique(struct audit_lines *lines, char *err, size_t err_size)
{
	size_t out = 0;

	qsort(lines->lines, lines->n, sizeof(*lines->lines), by_seq);
	for (size_t i = 0; i < lines->n; i++) {
		struct audit_line *l = &lines->lines[i];

		if (out > 0 && lines->lines[out - 1].seq == l->seq) {
			struct audit_line *kept = &lines->lines[out - 1];

			if (kept->len != l->len || memcmp(kept->line, l->line, l->len) != 0)
				return say(err, err_size,
					   "seq %" PRIu64 " is there twice with different records",
					   l->seq);
			free(l->line);
			lines->duplicates++;
			continue;
		}
		lines->lines[out++] = *l;
	}
	lines->n = out;
	return 0;
}

static int open_journal(sd_journal **ret, const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return -errno;
	if (S_ISDIR(st.st_mode))
		return sd_journal_open_directory(ret, path, 0);
	return sd_journal_open_files(ret, (const char *[]){path, NULL}, 0);
}

static int read_journal(const char *path, const char *machine, struct audit_lines *ret, char *err,
			size_t err_size)
{
	_cleanup_(sd_journal_closep) sd_journal *j = NULL;
	char first_machine[33] = "", match[64];
	bool several = false;
	uint64_t entry = 0;
	int r;

	*ret = (struct audit_lines){};
	r = open_journal(&j, path);
	if (r < 0)
		return say(err, err_size, "%s: cannot open as a journal: %s", path, strerror(-r));
	/* A record is at most 64 KiB; sd-journal cuts fields at 64 KiB unless told. */
	(void)sd_journal_set_data_threshold(j, 0);
	/* _UID is journald's (from the sender's credentials): an unprivileged
	 * user's entries that imitate the agent's are never read. */
	r = sd_journal_add_match(j, "SYSLOG_IDENTIFIER=mtd-agent", 0);
	if (r >= 0)
		r = sd_journal_add_match(j, "_UID=0", 0);
	if (r >= 0 && machine) {
		if (strlen(machine) != 32 || strspn(machine, "0123456789abcdef") != 32) {
			return say(err, err_size,
				   "--machine: '%s' is not a machine id (32 hex digits)", machine);
		}
		snprintf(match, sizeof(match), FIELD_MACHINE "%s", machine);
		r = sd_journal_add_match(j, match, 0);
	}
	if (r < 0) {
		say(err, err_size, "%s: %s", path, strerror(-r));
		return r;
	}
	SD_JOURNAL_FOREACH(j)
	{
		const void *data;
		size_t len;
		uint64_t seq;

		entry++;
		r = sd_journal_get_data(j, "MTD_RECORD", &data, &len);
		if (r == -ENOENT)
			continue; /* the agent's log lines */
		if (r < 0) {
			say(err, err_size, "%s: entry %" PRIu64 ": %s", path, entry, strerror(-r));
			return r;
		}
		data = (const char *)data + strlen(FIELD_RECORD);
		len -= strlen(FIELD_RECORD);
		if (record_seq(data, len, &seq) < 0) {
			return say(err, err_size,
				   "%s: entry %" PRIu64 " holds a malformed audit record", path,
				   entry);
		}
		r = append(ret, seq, data, len);
		if (r < 0)
			return r;
		/* (the record is copied: the next get_data reuses the buffer) */
		r = sd_journal_get_data(j, "_MACHINE_ID", &data, &len);
		if (r >= 0 && len == strlen(FIELD_MACHINE) + 32) {
			const char *id = (const char *)data + strlen(FIELD_MACHINE);

			if (!first_machine[0])
				memcpy(first_machine, id, 32);
			else if (memcmp(first_machine, id, 32) != 0)
				several = true;
		}
	}
	if (several) {
		return say(err, err_size,
			   "%s: audit records of more than one machine (%s and others): choose one "
			   "with --machine",
			   path, first_machine);
	}
	memcpy(ret->machine, first_machine, sizeof(ret->machine));
	return sort_unique(ret, err, err_size);
}

static int read_files(const char *const *paths, size_t n_paths, struct audit_lines *ret, char *err,
		      size_t err_size)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	int c, r = 0;

	*ret = (struct audit_lines){};
	buf = malloc(AUDIT_LINE_MAX);
	if (!buf)
		return -ENOMEM;
	for (size_t i = 0; i < n_paths; i++) {
		_cleanup_fclose_ FILE *f = fopen(paths[i], "re");
		unsigned line_no = 1;

		if (!f) {
			return say(err, err_size, "%s: %s", paths[i], strerror(errno));
		}
		len = 0;
		while ((c = getc_unlocked(f)) != EOF) {
			uint64_t seq;

			if (c != '\n') {
				if (len == AUDIT_LINE_MAX) {
					return say(err, err_size,
						   "%s:%u: record longer than %d bytes", paths[i],
						   line_no, AUDIT_LINE_MAX);
				}
				buf[len++] = (char)c;
				continue;
			}
			if (record_seq(buf, len, &seq) < 0) {
				return say(err, err_size, "%s:%u: malformed record", paths[i],
					   line_no);
			}
			r = append(ret, seq, buf, len);
			if (r < 0)
				return r;
			len = 0;
			line_no++;
		}
		/* A torn last record is the verifier's to report, not a record. */
	}
	return sort_unique(ret, err, err_size);
}

int audit_lines_join(const struct audit_lines *lines, char **ret_buf, size_t *ret_len)
{
	size_t total = 0, at = 0;
	char *buf;

	for (size_t i = 0; i < lines->n; i++)
		total += lines->lines[i].len + 1;
	buf = malloc(total + 1);
	if (!buf)
		return -ENOMEM;
	for (size_t i = 0; i < lines->n; i++) {
		memcpy(buf + at, lines->lines[i].line, lines->lines[i].len);
		at += lines->lines[i].len;
		buf[at++] = '\n';
	}
	buf[at] = '\0';
	*ret_buf = buf;
	*ret_len = at;
	return 0;
}

void audit_compare(const struct audit_lines *local, const struct audit_lines *shipped,
		   struct audit_comparison *ret)
{
	size_t i = 0, k = 0;

	*ret = (struct audit_comparison){};
	if (local->n > 0) {
		ret->local_first = local->lines[0].seq;
		ret->local_last = local->lines[local->n - 1].seq;
	}
	while (i < local->n && k < shipped->n) {
		const struct audit_line *l = &local->lines[i], *s = &shipped->lines[k];

		if (l->seq < s->seq) {
			i++;
			continue;
		}
		if (s->seq < l->seq) {
			k++;
			continue;
		}
		if (l->len != s->len || memcmp(l->line, s->line, l->len) != 0) {
			if (ret->differ == 0)
				ret->first_differing = l->seq;
			ret->differ++;
		} else
			ret->same++;
		i++;
		k++;
	}
	for (size_t m = 0; m < shipped->n; m++) {
		uint64_t seq = shipped->lines[m].seq;

		if (local->n > 0 && seq < ret->local_first)
			ret->shipped_before_local++; /* rotated away here: nothing to compare */
		else if (local->n == 0 || seq > ret->local_last) {
			if (ret->missing_locally == 0)
				ret->first_missing_locally = seq;
			ret->missing_locally++;
			ret->last_missing_locally = seq;
		}
	}
	if (shipped->n > 0 && local->n > 0 && ret->local_last > shipped->lines[shipped->n - 1].seq)
		ret->not_shipped = ret->local_last - shipped->lines[shipped->n - 1].seq;
}

int audit_lines_read_journal(const char *path, const char *machine, struct audit_lines *ret,
			     char *err, size_t err_size)
{
	int r = read_journal(path, machine, ret, err, err_size);

	if (r < 0)
		audit_lines_done(ret);
	return r;
}

int audit_lines_read_files(const char *const *paths, size_t n_paths, struct audit_lines *ret,
			   char *err, size_t err_size)
{
	int r = read_files(paths, n_paths, ret, err, err_size);

	if (r < 0)
		audit_lines_done(ret);
	return r;
}

void audit_lines_done(struct audit_lines *lines)
{
	for (size_t i = 0; i < lines->n; i++)
		free(lines->lines[i].line);
	free(lines->lines);
	*lines = (struct audit_lines){};
}
