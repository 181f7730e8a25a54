/* SPDX-License-Identifier: MIT */
/* The audit log verifier: walks one or more log files in order (oldest
 * first) from the initial key, recomputing every MAC and checking the chain
 * (seq, prev, epoch, seals). Stops at the first problem and says where and
 * why. The rules are in docs/audit-log.md. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "audit_internal.h"
#include "macro.h"

struct verifier {
	uint8_t key0[AUDIT_KEY_SIZE];
	uint8_t key[AUDIT_KEY_SIZE]; /* the key of key_epoch */
	uint64_t key_epoch;
	unsigned flags;

	bool started;	 /* a record has been verified */
	bool resync;	 /* AUDIT_VERIFY_GAPS: this record follows a gap */
	bool after_seal; /* the last verified record is a seal */
	uint64_t last_seq;
	char last_mac[AUDIT_MAC_HEX_LEN + 1];
	bool epoch_start_known; /* the first seq of the current epoch is known */
	uint64_t epoch_start_seq;
	uint64_t epoch_first_seen; /* first seq verified in the current epoch */

	const char *file;      /* current file */
	const char *prev_file; /* the file before it, NULL for the first */
	unsigned line;
	bool file_has_records;

	bool failed;
	struct audit_verify_result res;
};

_printf_(3, 4) static int fail(struct verifier *v, uint64_t bad_seq, const char *fmt, ...)
{
	va_list ap;
	int n;

	v->failed = true;
	v->res.ok = false;
	v->res.bad_seq = bad_seq;
	v->res.bad_line = v->line;
	v->res.bad_file = strdup(v->file);
	va_start(ap, fmt);
	n = vasprintf(&v->res.reason, fmt, ap);
	va_end(ap);
	if (n < 0)
		v->res.reason = NULL;
	if (!v->res.bad_file || !v->res.reason)
		return -ENOMEM;
	return 0;
}

static uint64_t next_seq(const struct verifier *v)
{
	return v->started ? v->last_seq + 1 : 0;
}

static int evolve(struct verifier *v)
{
	uint8_t next[AUDIT_KEY_SIZE];
	int r;

	r = audit_key_next(v->key, next);
	if (r < 0)
		return r;
	memcpy(v->key, next, sizeof(next));
	OPENSSL_cleanse(next, sizeof(next));
	v->key_epoch++;
	return 0;
}

/* Brings the key to the record's epoch, or says why the epoch is wrong. */
static int check_epoch(struct verifier *v, const struct audit_record *rec)
{
	int r;

	if (!v->started) {
		/* Anchor: a later file verified alone starts in a later epoch. */
		if (rec->epoch > AUDIT_EPOCH_MAX)
			return fail(v, rec->seq,
				    "epoch %" PRIu64 " is implausibly large (max %" PRIu64 ")",
				    rec->epoch, AUDIT_EPOCH_MAX);
		memcpy(v->key, v->key0, sizeof(v->key));
		v->key_epoch = 0;
		while (v->key_epoch < rec->epoch) {
			r = evolve(v);
			if (r < 0)
				return r;
		}
		return 1;
	}
	if (v->resync) {
		/* Across a gap: seals may be missing too, but epochs never go back. */
		uint64_t lowest = v->after_seal ? v->key_epoch + 1 : v->key_epoch;

		if (rec->epoch < lowest || rec->epoch > AUDIT_EPOCH_MAX)
			return fail(v, rec->seq,
				    "seq %" PRIu64 " is in epoch %" PRIu64
				    " after the gap, before it epoch %" PRIu64 "%s",
				    rec->seq, rec->epoch, v->key_epoch,
				    v->after_seal ? " was sealed" : "");
		while (v->key_epoch < rec->epoch) {
			r = evolve(v);
			if (r < 0)
				return r;
		}
		return 1;
	}
	if (v->after_seal) {
		if (rec->epoch != v->key_epoch + 1)
			return fail(v, rec->seq,
				    "seq %" PRIu64 " is in epoch %" PRIu64
				    " but follows the seal of epoch %" PRIu64
				    " (expected epoch %" PRIu64 ")",
				    rec->seq, rec->epoch, v->key_epoch, v->key_epoch + 1);
		r = evolve(v);
		if (r < 0)
			return r;
		return 1;
	}
	if (rec->epoch != v->key_epoch)
		return fail(v, rec->seq,
			    "seq %" PRIu64 " is in epoch %" PRIu64
			    " without a seal before it (expected epoch %" PRIu64 ")",
			    rec->seq, rec->epoch, v->key_epoch);
	return 1;
}

static int check_mac(struct verifier *v, const struct audit_record *rec, const char *line,
		     size_t body_len, const char *mac)
{
	char want[AUDIT_MAC_HEX_LEN + 1];
	int r;

	r = audit_mac_hex(v->key, line, body_len, want);
	if (r < 0)
		return r;
	if (!(v->flags & AUDIT_VERIFY_NO_MAC) && !audit_mac_hex_equal(want, mac)) {
		if (!v->started)
			return fail(v, rec->seq,
				    "MAC mismatch at seq %" PRIu64
				    " (the first record): wrong verification key, or the record "
				    "was modified",
				    rec->seq);
		return fail(v, rec->seq, "MAC mismatch at seq %" PRIu64 ": the record was modified",
			    rec->seq);
	}
	return 1;
}

static int check_chain(struct verifier *v, const struct audit_record *rec)
{
	bool cross = v->prev_file && !v->file_has_records;

	if (!v->started) {
		if (rec->seq == 1 && rec->epoch != 0)
			return fail(v, 1, "seq 1 starts the chain but is in epoch %" PRIu64,
				    rec->epoch);
		if (rec->seq == 1 && !streq(rec->prev, AUDIT_ZERO_MAC))
			return fail(v, 1, "seq 1 starts the chain but its prev is not all zeros");
		if (rec->seq != 1 && streq(rec->prev, AUDIT_ZERO_MAC))
			return fail(v, rec->seq,
				    "seq %" PRIu64 " has the chain-start prev of zeros", rec->seq);
		return 1;
	}
	if (v->resync)
		return 1; /* the link over the gap is lost with the gap */
	if (rec->seq != v->last_seq + 1) {
		if (rec->seq > v->last_seq + 1)
			return fail(v, v->last_seq + 1,
				    "seq %" PRIu64 " follows seq %" PRIu64 ": %" PRIu64
				    " record(s) missing or out of order%s%s%s",
				    rec->seq, v->last_seq, rec->seq - v->last_seq - 1,
				    cross ? " between " : "", cross ? v->prev_file : "",
				    cross ? " and this file" : "");
		return fail(v, v->last_seq + 1,
			    "seq %" PRIu64 " follows seq %" PRIu64
			    ": records reordered or duplicated%s%s%s",
			    rec->seq, v->last_seq, cross ? " (between " : "",
			    cross ? v->prev_file : "", cross ? " and this file)" : "");
	}
	if (!audit_mac_hex_equal(rec->prev, v->last_mac))
		return fail(v, rec->seq,
			    "seq %" PRIu64 ": prev does not match the MAC of seq %" PRIu64
			    ": chain broken%s%s%s",
			    rec->seq, v->last_seq, cross ? " between " : "",
			    cross ? v->prev_file : "", cross ? " and this file" : "");
	return 1;
}

static int check_type(struct verifier *v, const struct audit_record *rec)
{
	json_t *e, *n;
	uint64_t count, want;

	if (streq(rec->type, AUDIT_TYPE_ROTATED)) {
		if (v->line != 1)
			return fail(v, rec->seq,
				    "seq %" PRIu64
				    ": log-rotated record is not the first of its file",
				    rec->seq);
		if (!json_is_string(json_object_get(rec->fields, "previous")))
			return fail(v, rec->seq,
				    "seq %" PRIu64 ": log-rotated record without \"previous\"",
				    rec->seq);
		return 1;
	}
	if (!streq(rec->type, AUDIT_TYPE_SEAL))
		return 1;

	e = json_object_get(rec->fields, "epoch");
	n = json_object_get(rec->fields, "records");
	if (!json_is_integer(e) || !json_is_integer(n) || json_integer_value(n) < 0 ||
	    json_integer_value(e) < 0 || (uint64_t)json_integer_value(e) != rec->epoch)
		return fail(v, rec->seq,
			    "seq %" PRIu64
			    ": seal record without a matching epoch and records count",
			    rec->seq);
	count = (uint64_t)json_integer_value(n);
	if (v->epoch_start_known) {
		want = rec->seq - v->epoch_start_seq;
		if (count != want)
			return fail(v, rec->seq,
				    "seq %" PRIu64 ": seal of epoch %" PRIu64 " counts %" PRIu64
				    " records, the log has %" PRIu64,
				    rec->seq, rec->epoch, count, want);
	} else {
		want = rec->seq - v->epoch_first_seen;
		if (count < want)
			return fail(v, rec->seq,
				    "seq %" PRIu64 ": seal of epoch %" PRIu64 " counts %" PRIu64
				    " records, the log has at least %" PRIu64,
				    rec->seq, rec->epoch, count, want);
	}
	return 1;
}

static int add_gap(struct verifier *v, uint64_t first, uint64_t last)
{
	struct audit_gap *gaps = reallocarray(v->res.gaps, v->res.n_gaps + 1, sizeof(*gaps));

	if (!gaps)
		return -ENOMEM;
	gaps[v->res.n_gaps++] = (struct audit_gap){.first = first, .last = last};
	v->res.gaps = gaps;
	return 0;
}

/* Returns 1 when the record is good, 0 when verification failed (the
 * result says why), negative errno on an internal error. */
static int check_line(struct verifier *v, const char *line, size_t len)
{
	_cleanup_(audit_record_done) struct audit_record rec = {};
	char reason[160], mac[AUDIT_MAC_HEX_LEN + 1];
	uint64_t epoch_expected;
	size_t body_len;
	int r;

	r = audit_record_parse_reason(line, len, &rec, reason, sizeof(reason));
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return fail(v, next_seq(v), "malformed record: %s", reason);
	if (audit_line_split(line, len, &body_len, mac) < 0 || !streq(mac, rec.mac))
		return fail(v, rec.seq, "malformed record: the mac member is not last");

	epoch_expected = v->after_seal ? v->key_epoch + 1 : v->key_epoch;
	v->resync = false;
	if ((v->flags & AUDIT_VERIFY_GAPS) && v->started && rec.seq > v->last_seq + 1) {
		r = add_gap(v, v->last_seq + 1, rec.seq - 1);
		if (r < 0)
			return r;
		v->resync = true;
	}
	r = check_epoch(v, &rec);
	if (r <= 0)
		return r;
	r = check_mac(v, &rec, line, body_len, mac);
	if (r <= 0)
		return r;
	r = check_chain(v, &rec);
	if (r <= 0)
		return r;
	if (v->resync && rec.epoch != epoch_expected)
		v->epoch_start_known = false; /* its seal and first records are in the gap */
	if (!v->started || v->after_seal || (v->resync && !v->epoch_start_known))
		v->epoch_first_seen = rec.seq;
	if (!v->started && rec.seq == 1) {
		v->epoch_start_known = true;
		v->epoch_start_seq = 1;
	}
	r = check_type(v, &rec);
	if (r <= 0)
		return r;

	if (!v->started)
		v->res.first_seq = rec.seq;
	v->started = true;
	v->file_has_records = true;
	v->last_seq = rec.seq;
	memcpy(v->last_mac, rec.mac, sizeof(v->last_mac));
	v->after_seal = streq(rec.type, AUDIT_TYPE_SEAL);
	if (v->after_seal) {
		v->epoch_start_known = true;
		v->epoch_start_seq = rec.seq + 1;
	}
	v->res.records++;
	v->res.last_seq = rec.seq;
	return 1;
}

static int verify_stream(struct verifier *v, FILE *f, bool last_file, char *buf)
{
	size_t len = 0;
	int c, r;

	v->line = 1;
	v->file_has_records = false;
	for (;;) {
		c = getc_unlocked(f);
		if (c == EOF)
			break;
		if (c != '\n') {
			if (len == AUDIT_LINE_MAX)
				return fail(v, next_seq(v), "record longer than %d bytes",
					    AUDIT_LINE_MAX);
			buf[len++] = (char)c;
			continue;
		}
		r = check_line(v, buf, len);
		if (r <= 0)
			return r;
		len = 0;
		v->line++;
	}
	if (ferror(f))
		return -EIO;
	if (len == 0)
		return 1;

	/* Bytes after the last newline: a record whose write was cut short. */
	if (!last_file)
		return fail(
		    v, next_seq(v),
		    "torn record at the end of a file that is not the last, after seq %" PRIu64,
		    v->last_seq);
	v->res.torn_tail = true;
	if (!v->started)
		return fail(v, 0, "torn last record, no complete record before it");
	return fail(v, v->last_seq + 1, "torn last record after seq %" PRIu64, v->last_seq);
}

static void verifier_finish(struct verifier *v, struct audit_verify_result *ret_result)
{
	if (!v->failed)
		v->res.ok = true;
	v->res.unsealed_tail = v->started && !v->after_seal;
	*ret_result = v->res;
	v->res = (struct audit_verify_result){};
}

/* Also the cleanup of a verifier: erases the keys whatever the way out. */
static void verifier_done(struct verifier *v)
{
	audit_verify_result_done(&v->res);
	OPENSSL_cleanse(v, sizeof(*v));
}

int audit_verify_files(const uint8_t key0[AUDIT_KEY_SIZE], const char *const *paths, size_t n_paths,
		       struct audit_verify_result *ret_result)
{
	_cleanup_free_ char *buf = NULL;
	_cleanup_(verifier_done) struct verifier v = {};
	int r;

	if (!key0 || (!paths && n_paths > 0) || !ret_result)
		return -EINVAL;
	buf = malloc(AUDIT_LINE_MAX);
	if (!buf)
		return -ENOMEM;
	memcpy(v.key0, key0, AUDIT_KEY_SIZE);

	for (size_t i = 0; i < n_paths && !v.failed; i++) {
		_cleanup_fclose_ FILE *f = fopen(paths[i], "re");

		if (!f)
			return -errno;
		v.prev_file = i > 0 ? paths[i - 1] : NULL;
		v.file = paths[i];
		r = verify_stream(&v, f, i + 1 == n_paths, buf);
		if (r < 0)
			return r;
	}
	verifier_finish(&v, ret_result);
	return 0;
}

int audit_verify_buffer(const uint8_t key0[AUDIT_KEY_SIZE], const char *name, const void *data,
			size_t len, unsigned flags, struct audit_verify_result *ret_result)
{
	_cleanup_free_ char *buf = NULL;
	_cleanup_fclose_ FILE *f = NULL;
	_cleanup_(verifier_done) struct verifier v = {};
	int r;

	if (!key0 || !name || (!data && len > 0) || !ret_result)
		return -EINVAL;
	buf = malloc(AUDIT_LINE_MAX);
	if (!buf)
		return -ENOMEM;
	memcpy(v.key0, key0, AUDIT_KEY_SIZE);
	v.flags = flags;
	v.file = name;
	if (len > 0) {
		f = fmemopen((void *)data, len, "r");
		if (!f)
			return -errno;
		r = verify_stream(&v, f, true, buf);
		if (r < 0)
			return r;
	}
	verifier_finish(&v, ret_result);
	return 0;
}

void audit_verify_result_done(struct audit_verify_result *result)
{
	if (!result)
		return;
	free(result->bad_file);
	free(result->reason);
	free(result->gaps);
	*result = (struct audit_verify_result){};
}
