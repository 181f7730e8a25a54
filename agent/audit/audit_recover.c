/* SPDX-License-Identifier: MIT */
/* Picking the audit chain up from what is on disk: at open, after the
 * previous run (torn tail, unclean restart, a seal whose key was not saved,
 * a cut rotation, a missing log); and in a running writer after a failed
 * fdatasync, when the file is reopened and its tail checked against what was
 * written since the last successful fdatasync. See docs/audit-log.md. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "audit_internal.h"
#include "macro.h"

#define TORN_CHUNK (24 * 1024) /* torn bytes kept per record (base64: 32 KiB) */

void audit_tail_done(struct audit_tail *t)
{
	free(t->last);
	free(t->before);
	free(t->torn);
	*t = (struct audit_tail){};
}

static int pread_all(int fd, char *buf, size_t len, off_t off)
{
	while (len > 0) {
		ssize_t n = pread(fd, buf, len, off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO; /* shrank under us */
		buf += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

/* Finds the last two complete lines and the torn bytes after them. Reads
 * only the end of the file: lines are at most AUDIT_LINE_MAX bytes, and so is
 * a torn record the writer could have left; anything longer is not the
 * writer's doing and fails -EBADMSG. */
int audit_read_tail(int fd, struct audit_tail *ret)
{
	const size_t window = 3 * ((size_t)AUDIT_LINE_MAX + 1);
	_cleanup_free_ char *buf = NULL;
	struct audit_tail t = {};
	struct stat st;
	size_t w, end, start;
	char *nl;
	off_t off;
	int r;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EBADMSG;
	t.size = (uint64_t)st.st_size;
	if (t.size == 0) {
		*ret = t;
		return 0;
	}
	w = t.size < window ? (size_t)t.size : window;
	off = (off_t)(t.size - w);
	buf = malloc(w);
	if (!buf)
		return -ENOMEM;
	r = pread_all(fd, buf, w, off);
	if (r < 0)
		return r;

	end = w;
	if (buf[w - 1] != '\n') {
		nl = memrchr(buf, '\n', w);
		if (!nl && off > 0)
			return -EBADMSG;
		end = nl ? (size_t)(nl - buf) + 1 : 0;
		t.torn_len = w - end;
		if (t.torn_len > AUDIT_LINE_MAX)
			return -EBADMSG;
		t.torn = malloc(t.torn_len);
		if (!t.torn)
			return -ENOMEM;
		memcpy(t.torn, buf + end, t.torn_len);
	}
	if (end > 0) {
		nl = end > 1 ? memrchr(buf, '\n', end - 1) : NULL;
		if (!nl && off > 0)
			r = -EBADMSG; /* the last line is longer than any record */
		start = nl ? (size_t)(nl - buf) + 1 : 0;
		t.last_len = end - 1 - start;
		t.last = r < 0 ? NULL : strndup(buf + start, t.last_len);
		if (r >= 0 && !t.last)
			r = -ENOMEM;
		if (r >= 0 && start > 0) {
			nl = start > 1 ? memrchr(buf, '\n', start - 1) : NULL;
			if (nl || off == 0) {
				size_t s2 = nl ? (size_t)(nl - buf) + 1 : 0;

				t.before_len = start - 1 - s2;
				t.before = strndup(buf + s2, t.before_len);
				if (!t.before)
					r = -ENOMEM;
			}
		}
		if (r < 0) {
			audit_tail_done(&t);
			return r;
		}
	}
	*ret = t;
	return 0;
}

/* A record written and fdatasynced now (open-time records). */
static int emit_now(struct audit_log *log, const char *type, json_t *fields, bool may_rotate)
{
	struct audit_emit e = {
	    .type = type, .fields = fields, .sync = true, .may_rotate = may_rotate};

	return audit_emit(log, &e, NULL, NULL, NULL);
}

/* Checks the last record of the previous run against the key state. */
static int check_last(struct audit_log *log, const struct audit_tail *t,
		      struct audit_record *ret_rec, char **ret_before_type)
{
	_cleanup_free_ char *before_type = NULL;
	_cleanup_(audit_record_done) struct audit_record rec = {}, before = {};
	char mac[AUDIT_MAC_HEX_LEN + 1];
	size_t body_len;
	bool ok = false;
	int r;

	r = audit_record_parse(t->last, t->last_len, &rec);
	if (r == -ENOMEM)
		return r;
	if (r < 0 || audit_line_split(t->last, t->last_len, &body_len, mac) < 0)
		return -EBADMSG;
	if (rec.epoch == log->key.epoch) {
		char want[AUDIT_MAC_HEX_LEN + 1];

		r = audit_mac_hex(log->key.key, t->last, body_len, want);
		if (r < 0)
			return r;
		ok = audit_mac_hex_equal(want, mac);
	} else if (rec.epoch + 1 == log->key.epoch && streq(rec.type, AUDIT_TYPE_SEAL)) {
		/* Sealed with the key that is now erased: audit.key remembers it. */
		ok = rec.seq == log->key.seal_seq && audit_mac_hex_equal(mac, log->key.seal_mac);
	}
	if (!ok)
		return -EBADMSG;
	if (t->before) {
		r = audit_record_parse(t->before, t->before_len, &before);
		if (r == -ENOMEM)
			return r;
		if (r < 0 || !audit_mac_hex_equal(before.mac, rec.prev))
			return -EBADMSG;
		before_type = TAKE_PTR(before.type);
	}
	*ret_before_type = TAKE_PTR(before_type);
	*ret_rec = rec;
	rec = (struct audit_record){};
	return 0;
}

static int emit_unclean(struct audit_log *log, const char *reason, const char *last_type,
			const struct audit_tail *t)
{
	_cleanup_(json_decrefp) json_t *fields = NULL;
	size_t done = 0;
	int r;

	fields = json_pack("{s:s,s:I}", "reason", reason, "last_seq", (json_int_t)log->last_seq);
	if (!fields)
		return -ENOMEM;
	if (last_type && json_object_set_new(fields, "last_type", json_string(last_type)) < 0)
		return -ENOMEM;
	/* The torn bytes, base64, in this record and "torn-record" records
	 * after it when they do not fit in one. */
	while (t->torn_len > 0 && done < t->torn_len) {
		size_t n = t->torn_len - done < TORN_CHUNK ? t->torn_len - done : TORN_CHUNK;
		_cleanup_free_ char *b64 = malloc(4 * ((n + 2) / 3) + 1);

		if (!b64)
			return -ENOMEM;
		EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)t->torn + done,
				(int)n);
		if (done == 0) {
			if (json_object_set_new(fields, "torn_bytes",
						json_integer((json_int_t)t->torn_len)) < 0 ||
			    json_object_set_new(fields, "torn_base64", json_string(b64)) < 0)
				return -ENOMEM;
			r = emit_now(log, AUDIT_TYPE_UNCLEAN, fields, true);
		} else {
			_cleanup_(json_decrefp) json_t *part =
			    json_pack("{s:I,s:s}", "offset", (json_int_t)done, "torn_base64", b64);

			if (!part)
				return -ENOMEM;
			r = emit_now(log, AUDIT_TYPE_TORN, part, true);
		}
		if (r < 0)
			return r;
		done += n;
	}
	if (t->torn_len == 0)
		return emit_now(log, AUDIT_TYPE_UNCLEAN, fields, true);
	return 0;
}

/* Picks up the chain from what the previous run left, repairs a torn tail
 * and records an unclean restart. */
int audit_recover(struct audit_log *log, struct audit_open_report *report)
{
	_cleanup_(audit_record_done) struct audit_record last = {};
	_cleanup_free_ char *rotated = NULL, *before_type = NULL;
	_cleanup_(audit_tail_done) struct audit_tail t = {}, rt = {};
	const struct audit_tail *src = &t;
	const char *reason = NULL;
	int r;

	r = audit_read_tail(log->fd, &t);
	if (r < 0)
		return r;
	log->size = t.size;
	if (t.torn_len > 0) {
		if (ftruncate(log->fd, (off_t)(t.size - t.torn_len)) < 0 || fsync(log->fd) < 0)
			return -errno;
		log->size = t.size - t.torn_len;
		report->torn_bytes = t.torn_len;
		reason = "torn-record";
	}
	if (!t.last) {
		/* An empty log next to audit.log.1: a rotation was cut short. */
		_cleanup_close_ int fd1 = -1;

		r = audit_rotated_name(log, 1, &rotated);
		if (r < 0)
			return r;
		fd1 =
		    openat(log->log_dir_fd, rotated, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
		if (fd1 >= 0) {
			r = audit_read_tail(fd1, &rt);
			if (r < 0)
				return r;
			if (rt.torn_len > 0)
				return -EBADMSG;
			if (rt.last)
				src = &rt;
		}
	}

	if (src->last) {
		r = check_last(log, src, &last, &before_type);
		if (r < 0)
			return r;
		log->last_seq = last.seq;
		memcpy(log->prev, last.mac, sizeof(log->prev));
		if (!reason && !streq(last.type, AUDIT_TYPE_STOP) &&
		    !(streq(last.type, AUDIT_TYPE_SEAL) && before_type &&
		      streq(before_type, AUDIT_TYPE_STOP)))
			reason = "no-agent-stop";
		if (streq(last.type, AUDIT_TYPE_SEAL) && last.epoch == log->key.epoch) {
			/* Crashed between writing a seal and saving the next key. */
			r = audit_evolve_after_seal(log, last.seq, last.mac);
			if (r < 0)
				return r;
		}
	} else {
		/* No record at all: continue from the last seal audit.key knows
		 * of (the chain start for a fresh key). */
		log->last_seq = log->key.seal_seq;
		memcpy(log->prev, log->key.seal_mac, sizeof(log->prev));
		if (!reason && (log->key.seal_seq > 0 || log->key.epoch > 0))
			reason = "log-missing";
	}

	/* What is on disk now is the synced state a reopen compares with. */
	log->synced_seq = log->last_seq;
	memcpy(log->synced_mac, log->prev, sizeof(log->synced_mac));
	log->file_first_seq = t.last ? 1 : 0;

	if (src == &rt) {
		_cleanup_(json_decrefp) json_t *fields = json_pack("{s:s}", "previous", rotated);

		r = fields ? emit_now(log, AUDIT_TYPE_ROTATED, fields, false) : -ENOMEM;
		if (r < 0)
			return r;
	}
	if (reason) {
		r = emit_unclean(log, reason, src->last ? last.type : NULL, &t);
		if (r < 0)
			return r;
		report->unclean_restart = true;
	}
	return 0;
}

/* The position of the record with this seq and MAC among what the writer
 * knows: 0 for the last synced record, i + 1 for unsynced[i], -1 when the
 * record is not one the writer wrote since the last fdatasync. */
static int known_position(const struct audit_log *log, uint64_t seq, const char *mac)
{
	if (seq == log->synced_seq && audit_mac_hex_equal(mac, log->synced_mac))
		return 0;
	for (size_t i = 0; i < log->n_unsynced; i++)
		if (log->unsynced[i].seq == seq && audit_mac_hex_equal(mac, log->unsynced[i].mac))
			return (int)i + 1;
	return -1;
}

/* Where the rewrite starts: the index in log->unsynced of the first record
 * the reopened file lacks. -EBADMSG when its tail is not what this writer
 * left. */
static int rewrite_start(const struct audit_log *log, const struct audit_tail *t, size_t *ret_from)
{
	_cleanup_(audit_record_done) struct audit_record last = {};
	char mac[AUDIT_MAC_HEX_LEN + 1];
	size_t body_len, from;
	int r, pos;

	if (t->last) {
		r = audit_record_parse(t->last, t->last_len, &last);
		if (r == -ENOMEM)
			return r;
		if (r < 0 || audit_line_split(t->last, t->last_len, &body_len, mac) < 0)
			return -EBADMSG;
		pos = known_position(log, last.seq, mac);
		if (pos < 0)
			return -EBADMSG;
		*ret_from = (size_t)pos;
		return 0;
	}
	/* An empty file: right only if none of its records was synced. */
	if (log->file_first_seq != 0 && log->file_first_seq <= log->synced_seq)
		return -EBADMSG;
	from = 0;
	while (from < log->n_unsynced && log->unsynced[from].seq < log->file_first_seq)
		from++;
	if (log->file_first_seq == 0)
		from = log->n_unsynced;
	*ret_from = from;
	return 0;
}

/* After fdatasync failed, the page cache is not to be trusted: on Linux the
 * pages whose writeback failed may have been marked clean (and later
 * dropped), and the error is reported once, so a second fdatasync on the
 * same or a new fd can succeed without the data being on disk. So: a new
 * fd; fdatasync it (anything still dirty goes out, and an error now is a new
 * one); drop the file's cached pages (POSIX_FADV_DONTNEED drops clean pages,
 * so the tail is read back from the disk, not from the cache); cut torn
 * bytes; find the last complete record among the records written since the
 * last successful fdatasync; write the ones after it again, byte for byte
 * (same seq, same MAC: the chain is what it would have been); fdatasync.
 * A tail that is none of those records means the file is not what this
 * writer left: the log is broken for good (the next start checks it). */
int audit_reopen(struct audit_log *log)
{
	_cleanup_(audit_tail_done) struct audit_tail t = {};
	size_t from, rewritten = 0;
	int fd, r;

	if (log->fd >= 0) {
		close(log->fd); /* it has reported its error; it can tell nothing more */
		log->fd = -1;
	}
	fd = openat(log->log_dir_fd, log->base,
		    O_RDWR | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (fd < 0)
		return -errno;
	log->fd = fd;
	if (fdatasync(fd) < 0)
		return -errno;
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);

	r = audit_read_tail(fd, &t);
	if (r < 0)
		return r;
	if (t.torn_len > 0) {
		/* A write cut short, or bytes whose pages were lost: every
		 * complete record after the last good one is written again. */
		if (ftruncate(fd, (off_t)(t.size - t.torn_len)) < 0 || fdatasync(fd) < 0)
			return -errno;
		t.size -= t.torn_len;
	}
	log->size = t.size;

	r = rewrite_start(log, &t, &from);
	if (r < 0)
		return r;
	for (size_t i = from; i < log->n_unsynced; i++, rewritten++) {
		r = audit_write_raw(log, log->unsynced[i].line, log->unsynced[i].len);
		if (r < 0)
			return r;
	}
	r = audit_sync(log);
	if (r < 0)
		return r;
	log->need_reopen = false;

	/* Said in the log once the rest of the pending work is done (a seal's
	 * key first: the note belongs to the epoch after it). */
	log->reopen_note = true;
	log->reopen_torn = t.torn_len;
	log->reopen_rewritten = rewritten;
	return 0;
}
