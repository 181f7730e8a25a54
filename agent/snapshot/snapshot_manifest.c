/* SPDX-License-Identifier: MIT */
/* The snapshot manifest: its model, canonical text form and strict parser
 * (docs/snapshot.md). The manifest is outside input until its signature has
 * been checked, and the parser is fuzzed (tests/fuzz/fuzz_manifest.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "snapshot_internal.h"

static const char hex_digits[] = "0123456789abcdef";

static bool byte_is_literal(unsigned char c)
{
	return c >= 0x21 && c <= 0x7e && c != '\\';
}

size_t snapshot_escape(const char *raw, char *buffer, size_t size)
{
	size_t n = 0;

	for (const unsigned char *p = (const unsigned char *)raw; *p; p++) {
		if (byte_is_literal(*p)) {
			if (n + 1 < size)
				buffer[n] = (char)*p;
			n++;
		} else {
			if (n + 4 < size) {
				buffer[n] = '\\';
				buffer[n + 1] = 'x';
				buffer[n + 2] = hex_digits[*p >> 4];
				buffer[n + 3] = hex_digits[*p & 15];
			}
			n += 4;
		}
	}
	if (size)
		buffer[n < size ? n : size - 1] = '\0';
	return n;
}

void snapshot_error_set(struct snapshot_error *e, const char *path, const char *fmt, ...)
{
	va_list ap;

	if (!e)
		return;
	snprintf(e->path, sizeof(e->path), "%s", path);
	va_start(ap, fmt);
	vsnprintf(e->reason, sizeof(e->reason), fmt, ap);
	va_end(ap);
}

void snapshot_error_set_entry(struct snapshot_error *e, const char *raw_path, const char *fmt, ...)
{
	va_list ap;

	if (!e)
		return;
	memcpy(e->path, "root", 5);
	if (!streq(raw_path, "/"))
		snapshot_escape(raw_path, e->path + 4, sizeof(e->path) - 4);
	va_start(ap, fmt);
	vsnprintf(e->reason, sizeof(e->reason), fmt, ap);
	va_end(ap);
}

char snapshot_type_of(mode_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFDIR:
		return SNAPSHOT_DIR;
	case S_IFREG:
		return SNAPSHOT_FILE;
	case S_IFLNK:
		return SNAPSHOT_SYMLINK;
	case S_IFCHR:
		return SNAPSHOT_CHAR;
	case S_IFBLK:
		return SNAPSHOT_BLOCK;
	case S_IFIFO:
		return SNAPSHOT_FIFO;
	default:
		return SNAPSHOT_SOCKET;
	}
}

const char *snapshot_type_name(char type)
{
	switch (type) {
	case SNAPSHOT_DIR:
		return "directory";
	case SNAPSHOT_FILE:
		return "regular file";
	case SNAPSHOT_SYMLINK:
		return "symlink";
	case SNAPSHOT_CHAR:
		return "character device";
	case SNAPSHOT_BLOCK:
		return "block device";
	case SNAPSHOT_FIFO:
		return "fifo";
	default:
		return "socket";
	}
}

const char *snapshot_entry_refused(const struct snapshot_entry *e,
				   const struct snapshot_options *opts)
{
	bool devices = opts && opts->allow_devices, setuid = opts && opts->allow_setuid;

	switch (e->type) {
	case SNAPSHOT_SOCKET:
		return "socket not allowed in a snapshot";
	case SNAPSHOT_CHAR:
	case SNAPSHOT_BLOCK:
		if (!devices)
			return "device node not allowed (SnapshotAllowDevices=)";
		break;
	case SNAPSHOT_FIFO:
		if (!devices)
			return "fifo not allowed (SnapshotAllowDevices=)";
		break;
	default:
		break;
	}
	if (e->type != SNAPSHOT_DIR && (e->mode & (S_ISUID | S_ISGID)) && !setuid)
		return "setuid/setgid file not allowed (SnapshotAllowSetuid=)";
	return NULL;
}

const char *snapshot_entry_unsafe(const struct snapshot_entry *e, uid_t euid, char *reason,
				  size_t size)
{
	if (e->uid != 0 && e->uid != euid) {
		snprintf(reason, size, "owned by uid %u (a snapshot tree is root's)", e->uid);
		return reason;
	}
	/* A symlink's own mode means nothing (and is always 0777). A write bit
	 * anywhere else lets someone other than root change what instances
	 * run, after verification. */
	if (e->type != SNAPSHOT_SYMLINK && (e->mode & (S_IWGRP | S_IWOTH))) {
		snprintf(reason, size, "writable by %s (%04o; a snapshot tree is root's)",
			 (e->mode & S_IWGRP) && (e->mode & S_IWOTH) ? "group and others"
			 : (e->mode & S_IWGRP)			    ? "group"
								    : "others",
			 e->mode);
		return reason;
	}
	return NULL;
}

struct snapshot_entry *snapshot_manifest_add(struct snapshot_manifest *m)
{
	if (m->count == m->allocated) {
		size_t n = m->allocated ? m->allocated * 2 : 64;
		struct snapshot_entry *p = reallocarray(m->entries, n, sizeof(*p));

		if (!p)
			return NULL;
		m->entries = p;
		m->allocated = n;
	}
	memset(&m->entries[m->count], 0, sizeof(m->entries[0]));
	return &m->entries[m->count++];
}

static int entry_compare(const void *a, const void *b)
{
	return strcmp(((const struct snapshot_entry *)a)->path,
		      ((const struct snapshot_entry *)b)->path);
}

/* strcmp orders as unsigned char: exactly the manifest's byte order. */
void snapshot_manifest_sort(struct snapshot_manifest *m)
{
	if (m->count > 1)
		qsort(m->entries, m->count, sizeof(m->entries[0]), entry_compare);
}

void snapshot_manifest_clear(struct snapshot_manifest *m)
{
	for (size_t i = 0; i < m->count; i++) {
		free(m->entries[i].path);
		free(m->entries[i].target);
	}
	free(m->entries);
	*m = (struct snapshot_manifest){0};
}

const struct snapshot_entry *snapshot_manifest_find(const struct snapshot_manifest *m,
						    const char *path)
{
	struct snapshot_entry key = {.path = (char *)path};

	if (m->count == 0)
		return NULL;
	return bsearch(&key, m->entries, m->count, sizeof(key), entry_compare);
}

/* --- formatting ---------------------------------------------------------- */

struct text {
	char *data;
	size_t size, allocated;
};

static int text_reserve(struct text *t, size_t more)
{
	if (t->size + more + 1 > t->allocated) {
		size_t n = (t->allocated ? t->allocated : 4096);
		char *p;

		while (n < t->size + more + 1)
			n *= 2;
		p = realloc(t->data, n);
		if (!p)
			return -ENOMEM;
		t->data = p;
		t->allocated = n;
	}
	return 0;
}

static int text_printf(struct text *t, const char *fmt, ...) _printf_(2, 3);
static int text_printf(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || text_reserve(t, (size_t)n) < 0)
		return -ENOMEM;
	va_start(ap, fmt);
	vsnprintf(t->data + t->size, (size_t)n + 1, fmt, ap);
	va_end(ap);
	t->size += (size_t)n;
	return 0;
}

static int text_escaped(struct text *t, const char *raw)
{
	size_t n = snapshot_escape(raw, NULL, 0);

	if (text_reserve(t, n) < 0)
		return -ENOMEM;
	snapshot_escape(raw, t->data + t->size, n + 1);
	t->size += n;
	return 0;
}

int snapshot_manifest_format(const struct snapshot_manifest *m, char **ret_text, size_t *ret_size)
{
	struct text t = {0};
	int r = text_printf(&t, "%s", SNAPSHOT_MANIFEST_HEADER);

	for (size_t i = 0; r == 0 && i < m->count; i++) {
		const struct snapshot_entry *e = &m->entries[i];
		char sha[2 * SNAPSHOT_SHA256_SIZE + 1];

		r = text_escaped(&t, e->path);
		if (r == 0)
			r = text_printf(&t, " %c %04o %u %u", e->type, e->mode, e->uid, e->gid);
		if (r < 0)
			break;
		switch (e->type) {
		case SNAPSHOT_FILE:
			for (size_t k = 0; k < SNAPSHOT_SHA256_SIZE; k++) {
				sha[2 * k] = hex_digits[e->sha256[k] >> 4];
				sha[2 * k + 1] = hex_digits[e->sha256[k] & 15];
			}
			sha[sizeof(sha) - 1] = '\0';
			r = text_printf(&t, " %llu %s", (unsigned long long)e->size, sha);
			break;
		case SNAPSHOT_SYMLINK:
			r = text_printf(&t, " ");
			if (r == 0)
				r = text_escaped(&t, e->target);
			break;
		case SNAPSHOT_CHAR:
		case SNAPSHOT_BLOCK:
			r = text_printf(&t, " %u %u", e->major, e->minor);
			break;
		case SNAPSHOT_DIR:
		case SNAPSHOT_FIFO:
			break;
		default:
			r = -EINVAL;
		}
		if (r == 0)
			r = text_printf(&t, "\n");
	}
	if (r < 0) {
		free(t.data);
		return r;
	}
	*ret_text = t.data;
	*ret_size = t.size;
	return 0;
}

/* --- parsing ------------------------------------------------------------- */

struct parser {
	const char *p, *end; /* the current line, without its '\n' */
	unsigned line;
	struct snapshot_error *error;
};

static int parse_fail(struct parser *ps, const char *fmt, ...) _printf_(2, 3);
static int parse_fail(struct parser *ps, const char *fmt, ...)
{
	char reason[900];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	snapshot_error_set(ps->error, "manifest", "line %u: %s", ps->line, reason);
	return -EBADMSG;
}

/* The next space-separated field; at the end of the line when last. */
static int next_field(struct parser *ps, const char *what, bool last, const char **ret_start,
		      size_t *ret_len)
{
	const char *start = ps->p, *q = start;

	while (q < ps->end && *q != ' ')
		q++;
	if (q == start)
		return parse_fail(ps, "%s: missing or empty", what);
	if (last && q != ps->end)
		return parse_fail(ps, "unexpected text after %s", what);
	if (!last) {
		if (q == ps->end)
			return parse_fail(ps, "line ends before the field after %s", what);
		ps->p = q + 1;
	} else
		ps->p = q;
	*ret_start = start;
	*ret_len = (size_t)(q - start);
	return 0;
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Unescape a field into a fresh NUL-terminated string; only the canonical
 * escaping is accepted, so every byte string has exactly one spelling. */
static int unescape(struct parser *ps, const char *what, const char *s, size_t len, char **ret)
{
	_cleanup_free_ char *out = malloc(len + 1);
	size_t n = 0;

	if (!out)
		return -ENOMEM;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		int hi, lo;

		if (c != '\\') {
			if (!byte_is_literal(c))
				return parse_fail(ps, "%s: byte 0x%02x must be escaped", what, c);
			out[n++] = (char)c;
			continue;
		}
		if (i + 3 >= len)
			return parse_fail(ps, "%s: truncated escape", what);
		if (s[i + 1] != 'x' || (hi = hex_value(s[i + 2])) < 0 ||
		    (lo = hex_value(s[i + 3])) < 0)
			return parse_fail(ps, "%s: bad escape (want \\xHH, lowercase hex)", what);
		c = (unsigned char)(hi << 4 | lo);
		if (c == 0)
			return parse_fail(ps, "%s: NUL byte", what);
		if (byte_is_literal(c))
			return parse_fail(ps, "%s: byte '%c' must not be escaped", what, c);
		out[n++] = (char)c;
		i += 3;
	}
	if (n > SNAPSHOT_PATH_MAX)
		return parse_fail(ps, "%s: longer than %d bytes", what, SNAPSHOT_PATH_MAX);
	out[n] = '\0';
	*ret = TAKE_PTR(out);
	return 0;
}

static int check_path(struct parser *ps, const char *path)
{
	const char *c;

	if (path[0] != '/')
		return parse_fail(ps, "path does not start with '/'");
	if (streq(path, "/"))
		return 0;
	for (c = path; *c;) {
		const char *next = strchr(c + 1, '/');
		size_t n = next ? (size_t)(next - c - 1) : strlen(c + 1);

		if (n == 0)
			return parse_fail(ps, "path has an empty component");
		if ((n == 1 && c[1] == '.') || (n == 2 && c[1] == '.' && c[2] == '.'))
			return parse_fail(ps, "path has a '.' or '..' component");
		if (!next)
			break;
		c = next;
	}
	return 0;
}

static int parse_number(struct parser *ps, const char *what, uint64_t max, bool last, uint64_t *ret)
{
	const char *s;
	size_t len;
	uint64_t v = 0;
	int r = next_field(ps, what, last, &s, &len);

	if (r < 0)
		return r;
	if (len > 1 && s[0] == '0')
		return parse_fail(ps, "%s: leading zero", what);
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return parse_fail(ps, "%s: not a decimal number", what);
		if (v > (max - (uint64_t)(s[i] - '0')) / 10)
			return parse_fail(ps, "%s: larger than %llu", what,
					  (unsigned long long)max);
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*ret = v;
	return 0;
}

static int parse_entry(struct parser *ps, struct snapshot_entry *e)
{
	const char *s;
	size_t len;
	uint64_t v;
	int r;

	r = next_field(ps, "path", false, &s, &len);
	if (r < 0)
		return r;
	r = unescape(ps, "path", s, len, &e->path);
	if (r < 0)
		return r;
	r = check_path(ps, e->path);
	if (r < 0)
		return r;

	r = next_field(ps, "type", false, &s, &len);
	if (r < 0)
		return r;
	if (len != 1 || !s[0] || !strchr("dflcbp", s[0]))
		return parse_fail(ps, "type: want one of d f l c b p");
	e->type = s[0];

	r = next_field(ps, "mode", false, &s, &len);
	if (r < 0)
		return r;
	if (len != 4)
		return parse_fail(ps, "mode: want 4 octal digits");
	e->mode = 0;
	for (size_t i = 0; i < 4; i++) {
		if (s[i] < '0' || s[i] > '7')
			return parse_fail(ps, "mode: want 4 octal digits");
		e->mode = e->mode << 3 | (uint32_t)(s[i] - '0');
	}
	if (e->type == SNAPSHOT_SYMLINK && e->mode != 0777)
		return parse_fail(ps, "mode: a symlink's mode is 0777");

	bool last = e->type == SNAPSHOT_DIR || e->type == SNAPSHOT_FIFO;
	r = parse_number(ps, "uid", UINT32_MAX - 1, false, &v);
	if (r < 0)
		return r;
	e->uid = (uint32_t)v;
	r = parse_number(ps, "gid", UINT32_MAX - 1, last, &v);
	if (r < 0)
		return r;
	e->gid = (uint32_t)v;

	switch (e->type) {
	case SNAPSHOT_FILE:
		r = parse_number(ps, "size", INT64_MAX, false, &e->size);
		if (r < 0)
			return r;
		r = next_field(ps, "sha256", true, &s, &len);
		if (r < 0)
			return r;
		if (len != 2 * SNAPSHOT_SHA256_SIZE)
			return parse_fail(ps, "sha256: want 64 lowercase hex digits");
		for (size_t i = 0; i < SNAPSHOT_SHA256_SIZE; i++) {
			int hi = hex_value(s[2 * i]), lo = hex_value(s[2 * i + 1]);
			if (hi < 0 || lo < 0)
				return parse_fail(ps, "sha256: want 64 lowercase hex digits");
			e->sha256[i] = (uint8_t)(hi << 4 | lo);
		}
		break;
	case SNAPSHOT_SYMLINK:
		r = next_field(ps, "target", true, &s, &len);
		if (r < 0)
			return r;
		r = unescape(ps, "target", s, len, &e->target);
		if (r < 0)
			return r;
		break;
	case SNAPSHOT_CHAR:
	case SNAPSHOT_BLOCK:
		r = parse_number(ps, "major", UINT32_MAX, false, &v);
		if (r < 0)
			return r;
		e->major = (uint32_t)v;
		r = parse_number(ps, "minor", UINT32_MAX, true, &v);
		if (r < 0)
			return r;
		e->minor = (uint32_t)v;
		break;
	default:
		break;
	}
	return 0;
}

/* The parent of a validated path ("/a/b" -> "/a", "/a" -> "/"), in buffer. */
static void parent_path(const char *path, char *buffer)
{
	const char *slash = strrchr(path, '/');
	size_t n = slash == path ? 1 : (size_t)(slash - path);

	memcpy(buffer, path, n);
	buffer[n] = '\0';
}

int snapshot_manifest_parse(const char *data, size_t size, struct snapshot_manifest *ret_manifest,
			    struct snapshot_error *ret_error)
{
	struct snapshot_manifest m = {0};
	struct parser ps = {.line = 1, .error = ret_error};
	size_t header = strlen(SNAPSHOT_MANIFEST_HEADER);
	const char *p = data, *end = data + size;
	char parent[SNAPSHOT_PATH_MAX + 1];
	int r = 0;

	if (size > SNAPSHOT_MANIFEST_MAX)
		return parse_fail(&ps, "manifest larger than %u bytes", SNAPSHOT_MANIFEST_MAX);
	if (size < header || memcmp(data, SNAPSHOT_MANIFEST_HEADER, header) != 0)
		return parse_fail(&ps, "not an mtd snapshot manifest (want \"%.*s\")",
				  (int)header - 1, SNAPSHOT_MANIFEST_HEADER);
	p += header;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		struct snapshot_entry *e;

		ps.line++;
		if (!nl) {
			r = parse_fail(&ps, "last line does not end with a newline");
			break;
		}
		ps.p = p;
		ps.end = nl;
		e = snapshot_manifest_add(&m);
		if (!e) {
			r = -ENOMEM;
			break;
		}
		r = parse_entry(&ps, e);
		if (r < 0)
			break;
		if (m.count == 1) {
			if (!streq(e->path, "/") || e->type != SNAPSHOT_DIR) {
				r = parse_fail(&ps,
					       "the first entry must be the root directory \"/\"");
				break;
			}
		} else {
			const struct snapshot_entry *up;

			if (strcmp(m.entries[m.count - 2].path, e->path) >= 0) {
				r = parse_fail(&ps, "entries out of order or duplicated (sorted by "
						    "path bytes)");
				break;
			}
			/* The parent sorts before its children, so it is already here. */
			parent_path(e->path, parent);
			m.count--;
			up = snapshot_manifest_find(&m, parent);
			m.count++;
			if (!up || up->type != SNAPSHOT_DIR) {
				r = parse_fail(&ps, "parent directory is not in the manifest");
				break;
			}
		}
		p = nl + 1;
	}
	if (r == 0 && m.count == 0)
		r = parse_fail(&ps, "no entries (the root directory \"/\" is required)");
	if (r < 0) {
		snapshot_manifest_clear(&m);
		return r;
	}
	*ret_manifest = m;
	return 0;
}
