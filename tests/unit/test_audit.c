/* SPDX-License-Identifier: MIT */
/* Unit tests for the tamper-evident audit log: writer, key files, verifier. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "audit.h"
#include "audit_internal.h"
#include "macro.h"

struct fx {
	char dir[64];
	char state[128];
	char log[128];
	char log1[140], log2[140], log3[140];
	uint8_t key0[AUDIT_KEY_SIZE];
};

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	umask(022);
	strcpy(f->dir, "/tmp/test-audit-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->state, sizeof(f->state), "%s/state", f->dir);
	snprintf(f->log, sizeof(f->log), "%s/audit.log", f->dir);
	snprintf(f->log1, sizeof(f->log1), "%s.1", f->log);
	snprintf(f->log2, sizeof(f->log2), "%s.2", f->log);
	snprintf(f->log3, sizeof(f->log3), "%s.3", f->log);
	assert_int_equal(mkdir(f->state, 0700), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	nftw(f->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* --- helpers ---------------------------------------------------------------- */

static struct audit_log *open_log_opts(struct fx *f, uint64_t max_bytes, unsigned keep,
				       struct audit_open_report *report)
{
	struct audit_options o = {.max_bytes = max_bytes, .keep = keep};
	struct audit_open_report dummy = {};
	struct audit_log *log = NULL;
	char vpath[160];

	assert_int_equal(audit_log_open(f->log, f->state, &o, &log, report ? report : &dummy), 0);
	audit_open_report_done(&dummy);
	snprintf(vpath, sizeof(vpath), "%s/audit-verify.key", f->state);
	assert_int_equal(audit_key_read(vpath, f->key0), 0);
	return log;
}

static struct audit_log *open_log(struct fx *f)
{
	return open_log_opts(f, 0, 0, NULL);
}

static void append(struct audit_log *log, const char *type, int i)
{
	json_t *fields = json_pack("{s:i,s:s}", "i", i, "what", "event \"quoted\" \xc3\xa9");

	assert_non_null(fields);
	assert_int_equal(audit_log_append(log, type, fields, true, NULL, NULL), 0);
	json_decref(fields);
}

/* agent-start, n events: seqs 1..n+1 */
static void write_run(struct fx *f, int n, bool clean)
{
	struct audit_log *log = open_log(f);

	append(log, "agent-start", 0);
	for (int i = 1; i <= n; i++)
		append(log, "event", i);
	if (clean) {
		append(log, "agent-stop", 0);
		assert_int_equal(audit_log_seal(log), 0);
	}
	audit_log_close(log);
}

static char *slurp(const char *path, size_t *ret_len)
{
	FILE *fp = fopen(path, "re");
	char *buf;
	long n;

	assert_non_null(fp);
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	rewind(fp);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
	buf[n] = '\0';
	fclose(fp);
	if (ret_len)
		*ret_len = (size_t)n;
	return buf;
}

static void spew(const char *path, const char *data, size_t len)
{
	FILE *fp = fopen(path, "we");

	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

struct lines {
	char *v[256];
	size_t n;
};

static void lines_read(const char *path, struct lines *l)
{
	char *buf = slurp(path, NULL), *save = NULL, *p;

	l->n = 0;
	for (p = strtok_r(buf, "\n", &save); p; p = strtok_r(NULL, "\n", &save)) {
		assert_true(l->n < ELEMENTSOF(l->v));
		l->v[l->n++] = strdup(p);
	}
	free(buf);
}

static void lines_write(const char *path, struct lines *l)
{
	FILE *fp = fopen(path, "we");

	assert_non_null(fp);
	for (size_t i = 0; i < l->n; i++) {
		fputs(l->v[i], fp);
		fputc('\n', fp);
		free(l->v[i]);
	}
	assert_int_equal(fclose(fp), 0);
	l->n = 0;
}

static void verify_paths(struct fx *f, const char *const *paths, size_t n,
			 struct audit_verify_result *res)
{
	assert_int_equal(audit_verify_files(f->key0, paths, n, res), 0);
}

static void verify_log(struct fx *f, struct audit_verify_result *res)
{
	const char *paths[] = {f->log};

	verify_paths(f, paths, 1, res);
}

static void assert_bad(const struct audit_verify_result *res, uint64_t seq, unsigned line,
		       const char *reason_part)
{
	assert_false(res->ok);
	assert_non_null(res->reason);
	if (!strstr(res->reason, reason_part))
		fail_msg("reason \"%s\" lacks \"%s\"", res->reason, reason_part);
	assert_int_equal(res->bad_seq, seq);
	assert_int_equal(res->bad_line, line);
	assert_non_null(res->bad_file);
}

static struct audit_record last_record(const char *path)
{
	struct lines l;
	struct audit_record rec = {};

	lines_read(path, &l);
	assert_true(l.n > 0);
	assert_int_equal(audit_record_parse(l.v[l.n - 1], strlen(l.v[l.n - 1]), &rec), 0);
	for (size_t i = 0; i < l.n; i++)
		free(l.v[i]);
	return rec;
}

/* --- chains that verify ------------------------------------------------------- */

static void test_clean_chain_verifies(void **state)
{
	struct fx *f = *state;
	struct audit_open_report rep = {};
	struct audit_verify_result res = {};
	struct audit_log *log;
	struct stat st;
	char vpath[160], kpath[160];

	log = open_log_opts(f, 0, 0, &rep);
	assert_true(rep.created_key);
	assert_false(rep.unclean_restart);
	snprintf(vpath, sizeof(vpath), "%s/audit-verify.key", f->state);
	snprintf(kpath, sizeof(kpath), "%s/audit.key", f->state);
	assert_string_equal(rep.verify_key_path, vpath);
	audit_open_report_done(&rep);
	append(log, "agent-start", 0);
	for (int i = 1; i <= 5; i++)
		append(log, "event", i);
	append(log, "agent-stop", 0);
	assert_int_equal(audit_log_seal(log), 0);
	assert_int_equal(audit_log_last_seq(log), 8);
	assert_int_equal(audit_log_epoch(log), 1);
	audit_log_close(log);

	verify_log(f, &res);
	assert_true(res.ok);
	assert_int_equal(res.records, 8);
	assert_int_equal(res.first_seq, 1);
	assert_int_equal(res.last_seq, 8);
	assert_false(res.torn_tail);
	assert_false(res.unsealed_tail);
	assert_null(res.reason);
	audit_verify_result_done(&res);

	assert_int_equal(stat(f->log, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(stat(vpath, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(stat(kpath, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
}

static void test_record_format_is_canonical(void **state)
{
	struct fx *f = *state;
	struct audit_log *log = open_log(f);
	struct audit_record rec = {};
	json_t *fields = json_pack("{s:s,s:i}", "mac", "52:54:00:12:34:56", "n", 1);
	char *line = NULL, mac[AUDIT_MAC_HEX_LEN + 1], want[AUDIT_MAC_HEX_LEN + 1];
	size_t body_len;
	uint64_t seq = 0;

	/* A "mac" member inside fields must not confuse the split. */
	assert_int_equal(audit_log_append(log, "event", fields, false, &seq, &line), 0);
	json_decref(fields);
	assert_int_equal(seq, 1);
	assert_non_null(strstr(line, "{\"seq\":1,\"realtime\":\""));
	assert_non_null(strstr(line, "\"epoch\":0,\"type\":\"event\",\"fields\":{\"mac\":\"52:54:"
				     "00:12:34:56\",\"n\":1},\"prev\":\"" AUDIT_ZERO_MAC
				     "\",\"mac\":\""));
	assert_int_equal(audit_line_split(line, strlen(line), &body_len, mac), 0);
	assert_int_equal(audit_mac_hex(f->key0, line, body_len, want), 0);
	assert_string_equal(mac, want);
	assert_int_equal(audit_record_parse(line, strlen(line), &rec), 0);
	assert_int_equal(rec.seq, 1);
	assert_int_equal(rec.epoch, 0);
	assert_string_equal(rec.type, "event");
	assert_string_equal(rec.mac, mac);
	assert_string_equal(rec.prev, AUDIT_ZERO_MAC);
	assert_true(json_is_object(rec.fields));
	assert_int_equal(strlen(rec.realtime), strlen("2026-11-22T02:30:00.123456Z"));
	audit_record_done(&rec);
	free(line);

	assert_int_equal(audit_log_append(log, "seal", NULL, false, NULL, NULL), -EINVAL);
	assert_int_equal(audit_log_append(log, "log-rotated", NULL, false, NULL, NULL), -EINVAL);
	assert_int_equal(audit_log_append(log, "Bad Type", NULL, false, NULL, NULL), -EINVAL);
	fields = json_array();
	assert_int_equal(audit_log_append(log, "event", fields, false, NULL, NULL), -EINVAL);
	json_decref(fields);
	assert_int_equal(audit_log_last_seq(log), 1);
	audit_log_close(log);
}

static void test_unsealed_tail_is_a_warning(void **state)
{
	struct fx *f = *state;
	struct audit_verify_result res = {};

	write_run(f, 3, false);
	verify_log(f, &res);
	assert_true(res.ok);
	assert_true(res.unsealed_tail);
	assert_int_equal(res.records, 4);
	audit_verify_result_done(&res);
}

static void test_seal_evolves_key_across_epochs(void **state)
{
	struct fx *f = *state;
	struct audit_verify_result res = {};
	struct audit_key_state ks = {};
	uint8_t k1[AUDIT_KEY_SIZE], k2[AUDIT_KEY_SIZE];
	struct audit_log *log = open_log(f);
	struct audit_record rec;
	int fd;

	for (int e = 0; e < 3; e++) {
		for (int i = 0; i < 3; i++)
			append(log, "event", i);
		assert_int_equal(audit_log_seal(log), 0);
		assert_int_equal(audit_log_epoch(log), (uint64_t)e + 1);
	}
	append(log, "event", 99);
	audit_log_close(log);

	rec = last_record(f->log);
	assert_int_equal(rec.epoch, 3);
	audit_record_done(&rec);

	audit_key_evolve(f->key0, k1);
	audit_key_evolve(k1, k2);
	audit_key_evolve(k2, k1);
	fd = open(f->state, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(audit_key_state_load(fd, &ks), 0);
	close(fd);
	assert_int_equal(ks.epoch, 3);
	assert_memory_equal(ks.key, k1, AUDIT_KEY_SIZE);
	assert_int_equal(ks.seal_seq, 12);

	verify_log(f, &res);
	assert_true(res.ok);
	assert_int_equal(res.records, 13);
	assert_true(res.unsealed_tail);
	audit_verify_result_done(&res);
}

/* --- tampering ------------------------------------------------------------------- */

static void test_modified_field_is_detected(void **state)
{
	struct fx *f = *state;
	struct audit_verify_result res = {};
	struct lines l;
	char *p;

	write_run(f, 5, true);
	lines_read(f->log, &l);
	p = strstr(l.v[2], "\"i\":2");
	assert_non_null(p);
	p[4] = '7';
	lines_write(f->log, &l);
	verify_log(f, &res);
	assert_bad(&res, 3, 3, "MAC mismatch at seq 3");
	audit_verify_result_done(&res);
}

static void test_modified_mac_is_detected(void **state)
{
	struct fx *f = *state;
	struct audit_verify_result res = {};
	struct lines l;
	size_t n;

	write_run(f, 5, true);
	lines_read(f->log, &l);
	n = strlen(l.v[3]);
	l.v[3][n - 3] = l.v[3][n - 3] == '0' ? '1' : '0';
	lines_write(f->log, &l);
	verify_log(f, &res);
	assert_bad(&res, 4, 4, "MAC mismatch at seq 4");
	audit_verify_result_done(&res);
}

static void test_inserted_record_is_detected(void **state)
{
	struct fx *f = *state;
	struct audit_verify_result res = {};
	struct lines l;

	/* A copy of a genuine record inserted after it. */
	write_run(f, 5, true);
	lines_read(f->log, &l);
	memmove(&l.v[4], &l.v[3], (l.n - 3) * sizeof(char *));
	l.v[3] = strdup(l.v[2]);
	l.n++;
	lines_write(f->log, &l);
	verify_log(f, &res);
	assert_bad(&res, 4, 4, "seq 3 follows seq 3: records reordered or duplicated");
	audit_verify_result_done(&res);
}

static void test_forged_record_is_detected(void **state)
{
	struct fx *f = *state;
	struct audit_verify_result res = {};
	struct audit_record_head head = {};
	struct audit_record prev = {};
	uint8_t forger[AUDIT_KEY_SIZE];
	char mac[AUDIT_MAC_HEX_LEN + 1], *line;
	struct lines l;
	size_t len;

	write_run(f, 5, false);
	lines_read(f->log, &l);
	assert_int_equal(audit_record_parse(l.v[2], strlen(l.v[2]), &prev), 0);
	assert_int_equal(RAND_bytes(forger, sizeof(forger)), 1);
	head = (struct audit_record_head){.seq = 4,
					  .realtime_usec = 1,
					  .monotonic_usec = 1,
					  .epoch = 0,
					  .boot_id = "x",
					  .type = "event",
					  .prev = prev.mac};
	assert_int_equal(audit_record_line(forger, &head, &line, &len, mac), 0);
	audit_record_done(&prev);
	memmove(&l.v[4], &l.v[3], (l.n - 3) * sizeof(char *));
	l.v[3] = line;
	l.n++;
	lines_write(f->log, &l);
	verify_log(f, &res);
	assert_bad(&res, 4, 4, "MAC mismatch at seq 4");
	audit_verify_result_done(&res);
}

static void test_deleted_middle_record_is_detected(void **state)
{
	struct fx *f = *state;
	struct audit_verify_result res = {};
	struct lines l;

	write_run(f, 5, true);
	lines_read(f->log, &l);
	free(l.v[3]);
	memmove(&l.v[3], &l.v[4], (l.n - 4) * sizeof(char *));
	l.n--;
	lines_write(f->log, &l);
	verify_log(f, &res);
	assert_bad(&res, 4, 4, "seq 5 follows seq 3: 1 record(s) missing");
	audit_verify_result_done(&res);
}

static void test_swapped_records_are_detected(void **state)
{
	struct fx *f = *state;
	struct audit_verify_result res = {};
	struct lines l;
	char *tmp;

	write_run(f, 5, true);
	lines_read(f->log, &l);
	tmp = l.v[2];
	l.v[2] = l.v[3];
	l.v[3] = tmp;
	lines_write(f->log, &l);
	verify_log(f, &res);
	assert_bad(&res, 3, 3, "seq 4 follows seq 2: 1 record(s) missing or out of order");
	audit_verify_result_done(&res);
}

static void test_wrong_key_fails(void **state)
{
	struct fx *f = *state;
	struct audit_verify_result res = {};
	const char *paths[] = {f->log};
	uint8_t other[AUDIT_KEY_SIZE];

	write_run(f, 2, true);
	assert_int_equal(RAND_bytes(other, sizeof(other)), 1);
	assert_int_equal(audit_verify_files(other, paths, 1, &res), 0);
	assert_bad(&res, 1, 1, "wrong verification key");
	audit_verify_result_done(&res);
}

static void test_truncated_log_shows_as_unsealed_tail(void **state)
{
	struct fx *f = *state;
	struct audit_verify_result res = {};
	struct lines l;

	/* Whole trailing records cut: only visible as a missing seal. */
	write_run(f, 5, true);
	lines_read(f->log, &l);
	while (l.n > 4)
		free(l.v[--l.n]);
	lines_write(f->log, &l);
	verify_log(f, &res);
	assert_true(res.ok);
	assert_true(res.unsealed_tail);
	assert_int_equal(res.last_seq, 4);
	audit_verify_result_done(&res);
}

/* --- torn tail and unclean restarts ----------------------------------------------------- */

static const char torn[] = "{\"seq\":9,\"realtime\":\"2026-\x01\xff";

static void tear(struct fx *f)
{
	FILE *fp = fopen(f->log, "ae");

	assert_non_null(fp);
	assert_int_equal(fwrite(torn, 1, sizeof(torn) - 1, fp), sizeof(torn) - 1);
	fclose(fp);
}

static void test_torn_tail_is_detected(void **state)
{
	struct fx *f = *state;
	struct audit_verify_result res = {};

	write_run(f, 6, false);
	tear(f);
	verify_log(f, &res);
	assert_true(res.torn_tail);
	assert_bad(&res, 8, 8, "torn last record after seq 7");
	assert_true(res.unsealed_tail);
	assert_int_equal(res.last_seq, 7);
	audit_verify_result_done(&res);
}

static void test_open_after_torn_tail_records_unclean_restart(void **state)
{
	struct fx *f = *state;
	struct audit_verify_result res = {};
	struct audit_open_report rep = {};
	struct audit_log *log;
	struct audit_record rec;
	unsigned char decoded[128];
	const char *b64;
	size_t len;
	char *data;

	write_run(f, 6, false);
	tear(f);
	log = open_log_opts(f, 0, 0, &rep);
	assert_true(rep.unclean_restart);
	assert_int_equal(rep.torn_bytes, sizeof(torn) - 1);
	assert_false(rep.created_key);
	audit_open_report_done(&rep);
	assert_int_equal(audit_log_last_seq(log), 8);
	audit_log_close(log);

	data = slurp(f->log, &len);
	assert_true(len > 0 && data[len - 1] == '\n');
	free(data);
	rec = last_record(f->log);
	assert_string_equal(rec.type, "unclean-restart");
	assert_int_equal(rec.seq, 8);
	assert_string_equal(json_string_value(json_object_get(rec.fields, "reason")),
			    "torn-record");
	assert_int_equal(json_integer_value(json_object_get(rec.fields, "last_seq")), 7);
	assert_int_equal(json_integer_value(json_object_get(rec.fields, "torn_bytes")),
			 sizeof(torn) - 1);
	b64 = json_string_value(json_object_get(rec.fields, "torn_base64"));
	assert_non_null(b64);
	assert_true(EVP_DecodeBlock(decoded, (const unsigned char *)b64, (int)strlen(b64)) >=
		    (int)sizeof(torn) - 1);
	assert_memory_equal(decoded, torn, sizeof(torn) - 1);
	audit_record_done(&rec);

	verify_log(f, &res);
	assert_true(res.ok);
	assert_int_equal(res.records, 8);
	audit_verify_result_done(&res);
}

static void test_long_torn_tail_is_kept_whole(void **state)
{
	struct fx *f = *state;
	struct audit_verify_result res = {};
	struct audit_open_report rep = {};
	struct audit_log *log;
	struct lines l;
	size_t n = 60000, got = 0;
	char *junk = malloc(n);
	unsigned char *decoded = malloc(n + 64);
	FILE *fp;

	assert_non_null(junk);
	assert_non_null(decoded);
	for (size_t i = 0; i < n; i++)
		junk[i] = (char)('a' + i % 26);
	write_run(f, 1, false);
	fp = fopen(f->log, "ae");
	assert_non_null(fp);
	fwrite(junk, 1, n, fp);
	fclose(fp);
	log = open_log_opts(f, 0, 0, &rep);
	assert_int_equal(rep.torn_bytes, n);
	audit_open_report_done(&rep);
	audit_log_close(log);

	lines_read(f->log, &l);
	for (size_t i = 2; i < l.n; i++) {
		struct audit_record rec = {};
		const char *b64;
		int d;

		assert_int_equal(audit_record_parse(l.v[i], strlen(l.v[i]), &rec), 0);
		b64 = json_string_value(json_object_get(rec.fields, "torn_base64"));
		assert_non_null(b64);
		d = EVP_DecodeBlock(decoded + got, (const unsigned char *)b64, (int)strlen(b64));
		assert_true(d > 0);
		got += (size_t)d;
		if (i + 1 == l.n) /* strip base64 padding of the last part */
			got -= (size_t)(strlen(b64) > 1 && b64[strlen(b64) - 1] == '=') +
			       (size_t)(strlen(b64) > 2 && b64[strlen(b64) - 2] == '=');
		audit_record_done(&rec);
	}
	assert_true(l.n >= 4);
	assert_int_equal(got, n);
	assert_memory_equal(decoded, junk, n);
	for (size_t i = 0; i < l.n; i++)
		free(l.v[i]);
	verify_log(f, &res);
	assert_true(res.ok);
	audit_verify_result_done(&res);
	free(junk);
	free(decoded);
}

static void test_restart_without_agent_stop_is_unclean(void **state)
{
	struct fx *f = *state;
	struct audit_open_report rep = {};
	struct audit_log *log;
	struct audit_record rec;

	write_run(f, 2, false);
	log = open_log_opts(f, 0, 0, &rep);
	assert_true(rep.unclean_restart);
	assert_int_equal(rep.torn_bytes, 0);
	audit_log_close(log);
	rec = last_record(f->log);
	assert_string_equal(rec.type, "unclean-restart");
	assert_string_equal(json_string_value(json_object_get(rec.fields, "reason")),
			    "no-agent-stop");
	assert_int_equal(json_integer_value(json_object_get(rec.fields, "last_seq")), 3);
	assert_string_equal(json_string_value(json_object_get(rec.fields, "last_type")), "event");
	audit_record_done(&rec);
}

static void test_restart_after_clean_stop_is_clean(void **state)
{
	struct fx *f = *state;
	struct audit_verify_result res = {};
	struct audit_open_report rep = {};
	struct audit_log *log;

	/* agent-stop + seal */
	write_run(f, 2, true);
	log = open_log_opts(f, 0, 0, &rep);
	assert_false(rep.unclean_restart);
	assert_int_equal(audit_log_last_seq(log), 5);
	assert_int_equal(audit_log_epoch(log), 1);
	/* agent-stop without a seal */
	append(log, "agent-start", 0);
	append(log, "agent-stop", 0);
	audit_log_close(log);
	log = open_log_opts(f, 0, 0, &rep);
	assert_false(rep.unclean_restart);
	assert_int_equal(audit_log_last_seq(log), 7);
	audit_log_close(log);
	verify_log(f, &res);
	assert_true(res.ok);
	assert_int_equal(res.records, 7);
	audit_verify_result_done(&res);
}

static void test_open_refuses_tampered_last_record(void **state)
{
	struct fx *f = *state;
	struct audit_options o = {};
	struct audit_log *log = NULL;
	struct lines l;
	char *p;

	write_run(f, 3, false);
	lines_read(f->log, &l);
	p = strstr(l.v[l.n - 1], "\"i\":3");
	assert_non_null(p);
	p[4] = '4';
	lines_write(f->log, &l);
	assert_int_equal(audit_log_open(f->log, f->state, &o, &log, NULL), -EBADMSG);
	assert_null(log);
}

/* audit.key and the verification key are secrets: readable by group or
 * others, or owned by another user, they are refused (the agent does not
 * start; verify does not use them). */
static void test_keys_readable_by_others_are_refused(void **state)
{
	struct fx *f = *state;
	struct audit_options o = {};
	struct audit_log *log = open_log(f);
	uint8_t key[AUDIT_KEY_SIZE];
	char path[160], vpath[160];

	audit_log_close(log);
	log = NULL;
	snprintf(path, sizeof(path), "%s/audit.key", f->state);
	snprintf(vpath, sizeof(vpath), "%s/audit-verify.key", f->state);
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(audit_log_open(f->log, f->state, &o, &log, NULL), -EPERM);
	assert_null(log);
	assert_int_equal(chmod(path, 0600), 0);
	if (geteuid() == 0) {
		assert_int_equal(chown(path, 4242, 0), 0);
		assert_int_equal(audit_log_open(f->log, f->state, &o, &log, NULL), -EPERM);
		assert_int_equal(chown(path, 0, 0), 0);
	}
	assert_int_equal(chmod(vpath, 0640), 0);
	assert_int_equal(audit_key_read(vpath, key), -EPERM);
	assert_int_equal(chmod(vpath, 0600), 0);
	assert_int_equal(audit_key_read(vpath, key), 0);
	assert_int_equal(audit_log_open(f->log, f->state, &o, &log, NULL), 0);
	audit_log_close(log);
}

static void test_second_open_is_refused_while_open(void **state)
{
	struct fx *f = *state;
	struct audit_options o = {};
	struct audit_log *log = open_log(f), *other = NULL;

	assert_int_equal(audit_log_open(f->log, f->state, &o, &other, NULL), -EBUSY);
	audit_log_close(log);
}

static void test_open_refuses_log_without_key(void **state)
{
	struct fx *f = *state;
	struct audit_options o = {};
	struct audit_log *log = NULL;
	char kpath[160];

	write_run(f, 1, true);
	snprintf(kpath, sizeof(kpath), "%s/audit.key", f->state);
	assert_int_equal(unlink(kpath), 0);
	assert_int_equal(audit_log_open(f->log, f->state, &o, &log, NULL), -ENOKEY);
}

/* --- rotation ---------------------------------------------------------------------- */

/* Small files: about 4 records each. */
static void write_rotating(struct fx *f, int n, int seal_every)
{
	struct audit_log *log = open_log_opts(f, 1500, 3, NULL);

	for (int i = 1; i <= n; i++) {
		append(log, "event", i);
		if (seal_every && i % seal_every == 0)
			assert_int_equal(audit_log_seal(log), 0);
	}
	audit_log_close(log);
}

static void test_rotation_chain_verifies_across_files(void **state)
{
	struct fx *f = *state;
	struct audit_verify_result res = {};
	const char *all[] = {f->log3, f->log2, f->log1, f->log};
	char log4[160];
	struct audit_record rec = {};
	struct lines l;
	struct stat st;

	write_rotating(f, 30, 0);
	snprintf(log4, sizeof(log4), "%s.4", f->log);
	assert_int_equal(stat(f->log3, &st), 0);
	assert_true(st.st_size <= 1500);
	assert_int_equal(stat(log4, &st), -1); /* keep=3 */

	lines_read(f->log, &l);
	assert_int_equal(audit_record_parse(l.v[0], strlen(l.v[0]), &rec), 0);
	assert_string_equal(rec.type, "log-rotated");
	assert_string_equal(json_string_value(json_object_get(rec.fields, "previous")),
			    "audit.log.1");
	audit_record_done(&rec);
	for (size_t i = 0; i < l.n; i++)
		free(l.v[i]);

	verify_paths(f, all, 4, &res);
	assert_true(res.ok);
	assert_true(res.first_seq > 1);
	assert_true(res.last_seq > 30); /* events and log-rotated records */
	assert_true(res.records >= 8);
	assert_int_equal(res.records, res.last_seq - res.first_seq + 1);
	audit_verify_result_done(&res);

	/* Each file alone, anchored at its first record. */
	verify_log(f, &res);
	assert_true(res.ok);
	assert_true(res.first_seq > 1);
	audit_verify_result_done(&res);
	verify_paths(f, &all[1], 1, &res);
	assert_true(res.ok);
	audit_verify_result_done(&res);
}

static void test_chain_break_between_files_is_detected(void **state)
{
	struct fx *f = *state;
	struct audit_verify_result res = {};
	const char *skip[] = {f->log2, f->log};
	const char *reversed[] = {f->log, f->log1};

	write_rotating(f, 30, 0);
	verify_paths(f, skip, 2, &res);
	assert_false(res.ok);
	assert_non_null(strstr(res.reason, "record(s) missing or out of order between"));
	assert_string_equal(res.bad_file, f->log);
	assert_int_equal(res.bad_line, 1);
	audit_verify_result_done(&res);

	verify_paths(f, reversed, 2, &res);
	assert_false(res.ok);
	assert_non_null(strstr(res.reason, "reordered"));
	assert_string_equal(res.bad_file, f->log1);
	audit_verify_result_done(&res);
}

static void test_later_rotated_file_verifies_alone_in_later_epoch(void **state)
{
	struct fx *f = *state;
	struct audit_verify_result res = {};
	const char *all[] = {f->log3, f->log2, f->log1, f->log};
	struct audit_record rec;

	write_rotating(f, 40, 3);
	rec = last_record(f->log);
	assert_true(rec.epoch >= 10);
	audit_record_done(&rec);

	verify_log(f, &res);
	assert_true(res.ok);
	audit_verify_result_done(&res);
	verify_paths(f, all, 4, &res);
	assert_true(res.ok);
	audit_verify_result_done(&res);
	verify_paths(f, &all[2], 1, &res);
	assert_true(res.ok);
	audit_verify_result_done(&res);
}

static void test_clean_stops_across_rotations_stay_clean(void **state)
{
	struct fx *f = *state;
	struct audit_verify_result res = {};
	const char *all[] = {f->log3, f->log2, f->log1, f->log};

	/* Different fill levels put agent-stop and the seal at every position
	 * relative to a rotation. */
	for (int run = 0; run < 10; run++) {
		struct audit_open_report rep = {};
		struct audit_log *log = open_log_opts(f, 1500, 3, &rep);

		assert_false(rep.unclean_restart);
		audit_open_report_done(&rep);
		append(log, "agent-start", run);
		for (int i = 0; i < run % 4; i++)
			append(log, "event", i);
		append(log, "agent-stop", run);
		assert_int_equal(audit_log_seal(log), 0);
		audit_log_close(log);
	}
	verify_paths(f, all, 4, &res);
	assert_true(res.ok);
	assert_false(res.unsealed_tail);
	audit_verify_result_done(&res);
}

static void test_open_after_cut_rotation_continues_chain(void **state)
{
	struct fx *f = *state;
	struct audit_verify_result res = {};
	const char *both[] = {f->log1, f->log};
	struct audit_open_report rep = {};
	struct audit_log *log;
	struct lines l;
	struct audit_record rec = {};

	/* The crash left audit.log renamed and no new file yet. */
	write_run(f, 3, true);
	assert_int_equal(rename(f->log, f->log1), 0);
	log = open_log_opts(f, 0, 3, &rep);
	assert_false(rep.unclean_restart);
	append(log, "agent-start", 0);
	audit_log_close(log);

	lines_read(f->log, &l);
	assert_int_equal(l.n, 2);
	assert_int_equal(audit_record_parse(l.v[0], strlen(l.v[0]), &rec), 0);
	assert_string_equal(rec.type, "log-rotated");
	assert_int_equal(rec.seq, 7);
	audit_record_done(&rec);
	for (size_t i = 0; i < l.n; i++)
		free(l.v[i]);
	verify_paths(f, both, 2, &res);
	assert_true(res.ok);
	assert_int_equal(res.records, 8);
	audit_verify_result_done(&res);
}

/* --- key files -------------------------------------------------------------------- */

static bool contains(const char *hay, size_t n, const void *needle, size_t m)
{
	return memmem(hay, n, needle, m) != NULL;
}

static void test_key_file_update_is_atomic_and_private(void **state)
{
	struct fx *f = *state;
	struct audit_log *log = open_log(f);
	char kpath[160], *data;
	struct dirent *de;
	struct stat st;
	size_t len, n = 0;
	DIR *d;

	append(log, "event", 1);
	assert_int_equal(audit_log_seal(log), 0);
	assert_int_equal(audit_log_seal(log), 0);
	audit_log_close(log);

	snprintf(kpath, sizeof(kpath), "%s/audit.key", f->state);
	assert_int_equal(stat(kpath, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	data = slurp(kpath, &len);
	assert_non_null(strstr(data, "{\"version\":1,\"epoch\":2,\"key\":\""));
	assert_int_equal(data[len - 1], '\n');
	free(data);
	/* No temp file left behind. */
	d = opendir(f->state);
	assert_non_null(d);
	while ((de = readdir(d)))
		if (de->d_name[0] != '.' || (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")))
			n++;
	closedir(d);
	assert_int_equal(n, 2);
}

static void test_old_key_not_recoverable_after_seal(void **state)
{
	struct fx *f = *state;
	struct audit_log *log = open_log(f);
	uint8_t k1[AUDIT_KEY_SIZE], k2[AUDIT_KEY_SIZE];
	char hex0[AUDIT_KEY_HEX_LEN + 1], hex1[AUDIT_KEY_HEX_LEN + 1], hex2[AUDIT_KEY_HEX_LEN + 1];
	char kpath[160], *data;
	size_t len;

	snprintf(kpath, sizeof(kpath), "%s/audit.key", f->state);
	audit_key_evolve(f->key0, k1);
	audit_key_evolve(k1, k2);
	audit_hex(f->key0, AUDIT_KEY_SIZE, hex0);
	audit_hex(k1, AUDIT_KEY_SIZE, hex1);
	audit_hex(k2, AUDIT_KEY_SIZE, hex2);

	data = slurp(kpath, &len);
	assert_true(contains(data, len, hex0, AUDIT_KEY_HEX_LEN)); /* epoch 0: K0 itself */
	free(data);

	append(log, "event", 1);
	assert_int_equal(audit_log_seal(log), 0);
	data = slurp(kpath, &len);
	assert_false(contains(data, len, hex0, AUDIT_KEY_HEX_LEN));
	assert_false(contains(data, len, f->key0, AUDIT_KEY_SIZE));
	assert_true(contains(data, len, hex1, AUDIT_KEY_HEX_LEN));
	free(data);

	assert_int_equal(audit_log_seal(log), 0);
	data = slurp(kpath, &len);
	assert_false(contains(data, len, hex1, AUDIT_KEY_HEX_LEN));
	assert_false(contains(data, len, k1, AUDIT_KEY_SIZE));
	assert_true(contains(data, len, hex2, AUDIT_KEY_HEX_LEN));
	free(data);
	audit_log_close(log);
}

static void test_key_init_never_overwrites(void **state)
{
	struct fx *f = *state;
	char out[160], out2[160], *data;
	uint8_t key[AUDIT_KEY_SIZE];
	struct stat st;
	size_t len;

	snprintf(out, sizeof(out), "%s/verify.key", f->dir);
	snprintf(out2, sizeof(out2), "%s/verify2.key", f->dir);
	assert_int_equal(audit_key_init(f->state, out), 0);
	assert_int_equal(stat(out, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	data = slurp(out, &len);
	assert_int_equal(len, AUDIT_KEY_HEX_LEN + 1);
	assert_int_equal(data[AUDIT_KEY_HEX_LEN], '\n');
	free(data);
	assert_int_equal(audit_key_read(out, key), 0);

	/* audit.key exists */
	assert_int_equal(audit_key_init(f->state, out2), -EEXIST);
	assert_int_equal(stat(out2, &st), -1);
	/* key_out exists */
	assert_int_equal(mkdir(out2, 0700), 0);
	snprintf(out2, sizeof(out2), "%s/verify2.key/state", f->dir);
	assert_int_equal(mkdir(out2, 0700), 0);
	assert_int_equal(audit_key_init(out2, out), -EEXIST);
	assert_int_equal(audit_key_read(out, key), 0);
}

static void test_crash_between_seal_and_key_save_recovers(void **state)
{
	struct fx *f = *state;
	struct audit_verify_result res = {};
	struct audit_open_report rep = {};
	struct audit_log *log = open_log(f);
	char kpath[160], *saved;
	size_t len;

	snprintf(kpath, sizeof(kpath), "%s/audit.key", f->state);
	append(log, "agent-start", 0);
	append(log, "agent-stop", 0);
	saved = slurp(kpath, &len);
	assert_int_equal(audit_log_seal(log), 0);
	audit_log_close(log);
	spew(kpath, saved, len); /* as if the rename never happened */
	free(saved);

	log = open_log_opts(f, 0, 0, &rep);
	assert_false(rep.unclean_restart);
	assert_int_equal(audit_log_epoch(log), 1);
	append(log, "agent-start", 0);
	audit_log_close(log);
	verify_log(f, &res);
	assert_true(res.ok);
	assert_int_equal(res.records, 4);
	audit_verify_result_done(&res);
}

static void test_missing_log_is_recorded(void **state)
{
	struct fx *f = *state;
	struct audit_verify_result res = {};
	struct audit_open_report rep = {};
	struct audit_log *log;
	struct audit_record rec;

	write_run(f, 2, true);
	assert_int_equal(unlink(f->log), 0);
	log = open_log_opts(f, 0, 0, &rep);
	assert_true(rep.unclean_restart);
	audit_log_close(log);
	rec = last_record(f->log);
	assert_string_equal(json_string_value(json_object_get(rec.fields, "reason")),
			    "log-missing");
	assert_int_equal(rec.seq, 6);
	assert_int_equal(rec.epoch, 1);
	audit_record_done(&rec);
	verify_log(f, &res);
	assert_true(res.ok);
	audit_verify_result_done(&res);
}

/* --- hand-built chains (the verifier's rules) ---------------------------------------- */

struct chain {
	uint8_t key0[AUDIT_KEY_SIZE];
	uint8_t key[AUDIT_KEY_SIZE];
	uint64_t key_epoch;
	char prev[AUDIT_MAC_HEX_LEN + 1];
	char buf[16384];
	size_t len;
};

static void chain_init(struct chain *c)
{
	memset(c, 0, sizeof(*c));
	assert_int_equal(RAND_bytes(c->key0, sizeof(c->key0)), 1);
	memcpy(c->key, c->key0, sizeof(c->key));
	strcpy(c->prev, AUDIT_ZERO_MAC);
}

/* Adds a record MACed with the key of `epoch` (which must not be behind). */
static void chain_add(struct chain *c, uint64_t seq, uint64_t epoch, const char *type,
		      json_t *fields)
{
	struct audit_record_head head = {.seq = seq,
					 .realtime_usec = 1700000000000000,
					 .monotonic_usec = 5,
					 .epoch = epoch,
					 .boot_id = "b",
					 .type = type,
					 .fields = fields,
					 .prev = c->prev};
	char *line;
	size_t len;

	while (c->key_epoch < epoch) {
		audit_key_evolve(c->key, c->key);
		c->key_epoch++;
	}
	assert_int_equal(audit_record_line(c->key, &head, &line, &len, c->prev), 0);
	assert_true(c->len + len + 1 < sizeof(c->buf));
	memcpy(c->buf + c->len, line, len);
	c->buf[c->len + len] = '\n';
	c->len += len + 1;
	free(line);
	json_decref(fields);
}

static void chain_verify(struct chain *c, struct audit_verify_result *res)
{
	assert_int_equal(audit_verify_buffer(c->key0, "buf", c->buf, c->len, 0, res), 0);
}

static json_t *seal_fields(uint64_t epoch, uint64_t records)
{
	return json_pack("{s:I,s:I}", "epoch", (json_int_t)epoch, "records", (json_int_t)records);
}

static void test_hand_built_chain_verifies(void **state)
{
	struct audit_verify_result res = {};
	struct chain c;

	chain_init(&c);
	chain_add(&c, 1, 0, "event", NULL);
	chain_add(&c, 2, 0, "seal", seal_fields(0, 1));
	chain_add(&c, 3, 1, "event", NULL);
	chain_add(&c, 4, 1, "seal", seal_fields(1, 1));
	chain_verify(&c, &res);
	assert_true(res.ok);
	assert_false(res.unsealed_tail);
	assert_int_equal(res.records, 4);
	audit_verify_result_done(&res);
}

static void test_epoch_change_without_seal_is_rejected(void **state)
{
	struct audit_verify_result res = {};
	struct chain c;

	chain_init(&c);
	chain_add(&c, 1, 0, "event", NULL);
	chain_add(&c, 2, 1, "event", NULL);
	chain_verify(&c, &res);
	assert_bad(&res, 2, 2, "in epoch 1 without a seal before it (expected epoch 0)");
	audit_verify_result_done(&res);
}

static void test_epoch_skip_after_seal_is_rejected(void **state)
{
	struct audit_verify_result res = {};
	struct chain c;

	chain_init(&c);
	chain_add(&c, 1, 0, "seal", seal_fields(0, 0));
	chain_add(&c, 2, 2, "event", NULL);
	chain_verify(&c, &res);
	assert_bad(&res, 2, 2, "follows the seal of epoch 0 (expected epoch 1)");
	audit_verify_result_done(&res);

	/* Staying in the sealed epoch is wrong too. */
	chain_init(&c);
	chain_add(&c, 1, 0, "seal", seal_fields(0, 0));
	chain_add(&c, 2, 0, "event", NULL);
	chain_verify(&c, &res);
	assert_bad(&res, 2, 2, "expected epoch 1");
	audit_verify_result_done(&res);
}

static void test_seal_with_wrong_count_is_rejected(void **state)
{
	struct audit_verify_result res = {};
	struct chain c;

	chain_init(&c);
	chain_add(&c, 1, 0, "event", NULL);
	chain_add(&c, 2, 0, "event", NULL);
	chain_add(&c, 3, 0, "seal", seal_fields(0, 1));
	chain_verify(&c, &res);
	assert_bad(&res, 3, 3, "counts 1 records, the log has 2");
	audit_verify_result_done(&res);

	chain_init(&c);
	chain_add(&c, 1, 0, "seal", seal_fields(1, 0));
	chain_verify(&c, &res);
	assert_bad(&res, 1, 1, "seal record without a matching epoch");
	audit_verify_result_done(&res);
}

static void test_chain_start_rules(void **state)
{
	struct audit_verify_result res = {};
	struct chain c;

	/* seq 1 with a non-zero prev */
	chain_init(&c);
	memset(c.prev, 'a', AUDIT_MAC_HEX_LEN);
	chain_add(&c, 1, 0, "event", NULL);
	chain_verify(&c, &res);
	assert_bad(&res, 1, 1, "prev is not all zeros");
	audit_verify_result_done(&res);

	/* the chain start in a later epoch */
	chain_init(&c);
	chain_add(&c, 1, 2, "event", NULL);
	chain_verify(&c, &res);
	assert_bad(&res, 1, 1, "seq 1 starts the chain but is in epoch 2");
	audit_verify_result_done(&res);

	/* a later seq claiming to start the chain */
	chain_init(&c);
	chain_add(&c, 7, 0, "event", NULL);
	chain_verify(&c, &res);
	assert_bad(&res, 7, 1, "chain-start prev of zeros");
	audit_verify_result_done(&res);

	/* log-rotated in the middle of a file */
	chain_init(&c);
	chain_add(&c, 1, 0, "event", NULL);
	chain_add(&c, 2, 0, "log-rotated", json_pack("{s:s}", "previous", "audit.log.1"));
	chain_verify(&c, &res);
	assert_bad(&res, 2, 2, "not the first of its file");
	audit_verify_result_done(&res);

	/* empty input */
	assert_int_equal(audit_verify_buffer(c.key0, "empty", "", 0, 0, &res), 0);
	assert_true(res.ok);
	assert_int_equal(res.records, 0);
	audit_verify_result_done(&res);
}

static void test_malformed_lines_have_clear_reasons(void **state)
{
	static const struct {
		const char *text;
		const char *reason;
	} cases[] = {
	    {"not json\n", "malformed JSON"},
	    {"[1,2]\n", "not a JSON object"},
	    {"\n", "empty line"},
	    {"{\"seq\":1}\n", "missing member"},
	    {"{\"seq\":1,\x01}\n", "control or non-ASCII byte 0x01 at column 10"},
	    {"{\"seq\":\"1\"}\n", "\"seq\" is not an integer"},
	    {"{\"seq\":1,\"x\":2}\n", "unexpected member \"x\""},
	    {"{\"seq\":1,\"seq\":2}\n", "malformed JSON"},
	};
	struct audit_verify_result res = {};
	struct chain c;

	chain_init(&c);
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		assert_int_equal(audit_verify_buffer(c.key0, "buf", cases[i].text,
						     strlen(cases[i].text), 0, &res),
				 0);
		assert_bad(&res, 0, 1, cases[i].reason);
		audit_verify_result_done(&res);
	}

	/* A good record, then one whose mac member is not last. */
	chain_add(&c, 1, 0, "event", NULL);
	memcpy(c.buf + c.len, "{\"mac\":\"x\"}\n", 12);
	c.len += 12;
	chain_verify(&c, &res);
	assert_bad(&res, 2, 2, "malformed record");
	audit_verify_result_done(&res);
}

static void test_record_parse_limits(void **state)
{
	struct audit_verify_result res = {};
	struct audit_record rec = {};
	size_t n = AUDIT_LINE_MAX + 10;
	char *big = malloc(n);
	struct chain c;

	assert_non_null(big);
	memset(big, ' ', n);
	big[0] = '{';
	assert_int_equal(audit_record_parse(big, n, &rec), -E2BIG);
	assert_int_equal(audit_record_parse("{}", 2, &rec), -EBADMSG);
	assert_int_equal(audit_record_parse("{\"seq\":1}\0", 10, &rec), -EBADMSG);

	/* Over-long lines in a file */
	memset(big, 'x', n);
	big[n - 1] = '\n';
	chain_init(&c);
	assert_int_equal(audit_verify_buffer(c.key0, "big", big, n, 0, &res), 0);
	assert_bad(&res, 0, 1, "record longer than 65536 bytes");
	audit_verify_result_done(&res);
	free(big);

	/* A valid line with its newline parses. */
	chain_add(&c, 1, 0, "event", json_pack("{s:s}", "k", "v"));
	assert_int_equal(audit_record_parse(c.buf, c.len, &rec), 0);
	assert_string_equal(json_string_value(json_object_get(rec.fields, "k")), "v");
	audit_record_done(&rec);
}

/* The chain's lines except those whose 1-based index is in skip. */
static size_t chain_without(const struct chain *c, const int *skip, size_t n_skip, char *out)
{
	size_t at = 0, line = 1;

	for (size_t i = 0; i < c->len; line++) {
		const char *nl = memchr(c->buf + i, '\n', c->len - i);
		size_t len = (size_t)(nl - (c->buf + i)) + 1;
		bool keep = true;

		for (size_t k = 0; k < n_skip; k++)
			keep = keep && (int)line != skip[k];
		if (keep) {
			memcpy(out + at, c->buf + i, len);
			at += len;
		}
		i += len;
	}
	return at;
}

static void gapped_chain(struct chain *c)
{
	chain_init(c);
	chain_add(c, 1, 0, "event", NULL);
	chain_add(c, 2, 0, "event", NULL);
	chain_add(c, 3, 0, "event", NULL);
	chain_add(c, 4, 0, "seal", seal_fields(0, 3));
	chain_add(c, 5, 1, "event", NULL);
	chain_add(c, 6, 1, "event", NULL);
	chain_add(c, 7, 1, "seal", seal_fields(1, 2));
	chain_add(c, 8, 2, "event", NULL);
}

static void test_shipped_copy_gaps_are_listed(void **state)
{
	static char out[16384];
	struct audit_verify_result res = {};
	struct chain c;
	const int skip[] = {3, 4, 5, 8};
	size_t len;

	gapped_chain(&c);
	/* seq 3..5 (a seal among them) and the last record never arrived */
	len = chain_without(&c, skip, 3, out);
	assert_int_equal(audit_verify_buffer(c.key0, "j", out, len, AUDIT_VERIFY_GAPS, &res), 0);
	assert_true(res.ok);
	assert_int_equal(res.records, 5);
	assert_int_equal(res.n_gaps, 1);
	assert_int_equal(res.gaps[0].first, 3);
	assert_int_equal(res.gaps[0].last, 5);
	audit_verify_result_done(&res);

	/* without the flag the same copy fails */
	assert_int_equal(audit_verify_buffer(c.key0, "j", out, len, 0, &res), 0);
	assert_false(res.ok); /* seq 6 is in epoch 1 without the seal before it */
	assert_int_equal(res.bad_seq, 6);
	audit_verify_result_done(&res);

	/* two gaps */
	const int skip2[] = {2, 6};
	len = chain_without(&c, skip2, 2, out);
	assert_int_equal(audit_verify_buffer(c.key0, "j", out, len, AUDIT_VERIFY_GAPS, &res), 0);
	assert_true(res.ok);
	assert_int_equal(res.n_gaps, 2);
	assert_int_equal(res.gaps[0].first, 2);
	assert_int_equal(res.gaps[1].first, 6);
	assert_int_equal(res.gaps[1].last, 6);
	audit_verify_result_done(&res);
	(void)skip[3];
}

static void test_shipped_copy_gap_hides_no_forgery(void **state)
{
	static char out[16384];
	struct audit_verify_result res = {};
	struct chain c;
	const int skip[] = {3};
	char *p;
	size_t len;

	gapped_chain(&c);
	len = chain_without(&c, skip, 1, out);
	/* the record after the gap (seq 4, the seal) edited: its MAC fails */
	p = strstr(out, "\"records\":3");
	assert_non_null(p);
	p[strlen("\"records\":")] = '4';
	assert_int_equal(audit_verify_buffer(c.key0, "j", out, len, AUDIT_VERIFY_GAPS, &res), 0);
	assert_false(res.ok);
	assert_int_equal(res.bad_seq, 4);
	assert_non_null(strstr(res.reason, "MAC mismatch"));
	audit_verify_result_done(&res);
}

static void write_text(const char *path, const char *text, size_t len)
{
	FILE *f = fopen(path, "we");

	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void test_local_log_compared_with_shipped_copy(void **state)
{
	struct fx *t = *state;
	static char out[16384];
	struct audit_lines local = {}, shipped = {};
	struct audit_comparison cmp;
	struct chain c;
	const int cut[] = {7, 8};
	char local_path[PATH_MAX], shipped_path[PATH_MAX], err[256];
	const char *paths[1] = {local_path};
	const char *spaths[1] = {shipped_path};
	size_t len;

	gapped_chain(&c);
	snprintf(local_path, sizeof(local_path), "%s/local.log", t->dir);
	snprintf(shipped_path, sizeof(shipped_path), "%s/shipped.log", t->dir);
	write_text(shipped_path, c.buf, c.len);
	assert_int_equal(audit_lines_read_files(spaths, 1, &shipped, err, sizeof(err)), 0);
	assert_int_equal(shipped.n, 8);

	/* the same */
	write_text(local_path, c.buf, c.len);
	assert_int_equal(audit_lines_read_files(paths, 1, &local, err, sizeof(err)), 0);
	audit_compare(&local, &shipped, &cmp);
	assert_int_equal(cmp.same, 8);
	assert_int_equal(cmp.differ + cmp.missing_locally + cmp.not_shipped, 0);
	audit_lines_done(&local);

	/* the tail cut */
	len = chain_without(&c, cut, 2, out);
	write_text(local_path, out, len);
	assert_int_equal(audit_lines_read_files(paths, 1, &local, err, sizeof(err)), 0);
	audit_compare(&local, &shipped, &cmp);
	assert_int_equal(cmp.same, 6);
	assert_int_equal(cmp.missing_locally, 2);
	assert_int_equal(cmp.first_missing_locally, 7);
	assert_int_equal(cmp.last_missing_locally, 8);
	audit_lines_done(&local);

	/* a record rewritten */
	memcpy(out, c.buf, c.len);
	char *p = strstr(out, "\"records\":2");
	assert_non_null(p);
	p[strlen("\"records\":")] = '5';
	write_text(local_path, out, c.len);
	assert_int_equal(audit_lines_read_files(paths, 1, &local, err, sizeof(err)), 0);
	audit_compare(&local, &shipped, &cmp);
	assert_int_equal(cmp.differ, 1);
	assert_int_equal(cmp.first_differing, 7);
	assert_int_equal(cmp.same, 7);
	audit_lines_done(&local);

	/* a malformed local line: named, with its file and line */
	write_text(local_path, "{\"seq\":1}\n", 10);
	assert_int_equal(audit_lines_read_files(paths, 1, &local, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "local.log:1: malformed record"));
	audit_lines_done(&shipped);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	    T(test_clean_chain_verifies),
	    T(test_record_format_is_canonical),
	    T(test_unsealed_tail_is_a_warning),
	    T(test_seal_evolves_key_across_epochs),
	    T(test_modified_field_is_detected),
	    T(test_modified_mac_is_detected),
	    T(test_inserted_record_is_detected),
	    T(test_forged_record_is_detected),
	    T(test_deleted_middle_record_is_detected),
	    T(test_swapped_records_are_detected),
	    T(test_wrong_key_fails),
	    T(test_truncated_log_shows_as_unsealed_tail),
	    T(test_torn_tail_is_detected),
	    T(test_open_after_torn_tail_records_unclean_restart),
	    T(test_long_torn_tail_is_kept_whole),
	    T(test_restart_without_agent_stop_is_unclean),
	    T(test_restart_after_clean_stop_is_clean),
	    T(test_open_refuses_tampered_last_record),
	    T(test_keys_readable_by_others_are_refused),
	    T(test_second_open_is_refused_while_open),
	    T(test_open_refuses_log_without_key),
	    T(test_rotation_chain_verifies_across_files),
	    T(test_chain_break_between_files_is_detected),
	    T(test_later_rotated_file_verifies_alone_in_later_epoch),
	    T(test_clean_stops_across_rotations_stay_clean),
	    T(test_open_after_cut_rotation_continues_chain),
	    T(test_key_file_update_is_atomic_and_private),
	    T(test_old_key_not_recoverable_after_seal),
	    T(test_key_init_never_overwrites),
	    T(test_crash_between_seal_and_key_save_recovers),
	    T(test_missing_log_is_recorded),
	    T(test_hand_built_chain_verifies),
	    T(test_epoch_change_without_seal_is_rejected),
	    T(test_epoch_skip_after_seal_is_rejected),
	    T(test_seal_with_wrong_count_is_rejected),
	    T(test_chain_start_rules),
	    T(test_malformed_lines_have_clear_reasons),
	    T(test_record_parse_limits),
	    T(test_shipped_copy_gaps_are_listed),
	    T(test_shipped_copy_gap_hides_no_forgery),
	    T(test_local_log_compared_with_shipped_copy),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
