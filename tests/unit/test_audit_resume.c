/* SPDX-License-Identifier: MIT */
/* Unit tests for an audit log that cannot be written for a while: a full
 * disk (simulated with RLIMIT_FSIZE, which fails writes past a size like a
 * full file system, without privileges), the bounded queue and its loss
 * records, a failed fdatasync (fdatasync is replaced in this binary), and
 * seals that fail and are retried. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>

#include "audit.h"
#include "audit_internal.h"
#include "macro.h"

/* --- fault injection -------------------------------------------------------- */

/* The writer's fdatasync: the next n calls fail with EIO; optionally the
 * file loses its unsynced end, as when the kernel dropped the pages whose
 * writeback failed. */
static int fdatasync_failures;

int fdatasync(int fd)
{
	if (fdatasync_failures > 0) {
		fdatasync_failures--;
		errno = EIO;
		return -1;
	}
	return (int)syscall(SYS_fdatasync, fd);
}

/* Writes past the log's current size fail (EFBIG, or a short write), as on a
 * full disk. Restored before any assertion, since cmocka's own output may be
 * a file. */
static void disk_full_at(off_t size)
{
	struct rlimit rl = {.rlim_cur = (rlim_t)size, .rlim_max = RLIM_INFINITY};

	assert_int_equal(setrlimit(RLIMIT_FSIZE, &rl), 0);
}

static void disk_free(void)
{
	struct rlimit rl = {.rlim_cur = RLIM_INFINITY, .rlim_max = RLIM_INFINITY};

	assert_int_equal(setrlimit(RLIMIT_FSIZE, &rl), 0);
}

/* --- fixture ------------------------------------------------------------------ */

struct fx {
	char dir[64];
	char state[128];
	char log[128];
	char kpath[160];
	uint8_t key0[AUDIT_KEY_SIZE];
	struct audit_log *log_handle;
	char *written[64]; /* types reported by the written callback */
	size_t n_written;
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
	strcpy(f->dir, "/tmp/test-audit-resume-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->state, sizeof(f->state), "%s/state", f->dir);
	snprintf(f->log, sizeof(f->log), "%s/audit.log", f->dir);
	snprintf(f->kpath, sizeof(f->kpath), "%s/audit.key", f->state);
	assert_int_equal(mkdir(f->state, 0700), 0);
	fdatasync_failures = 0;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	disk_free();
	fdatasync_failures = 0;
	audit_log_close(f->log_handle);
	for (size_t i = 0; i < f->n_written; i++)
		free(f->written[i]);
	nftw(f->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static void on_written(uint64_t seq, const char *type, json_t *fields, const char *line,
		       void *userdata)
{
	struct fx *f = userdata;
	struct audit_record rec;

	/* the line given is the record with that seq */
	if (audit_record_parse(line, strlen(line), &rec) == 0) {
		if (rec.seq != seq)
			fprintf(stderr, "written callback: seq %llu, line of %llu\n",
				(unsigned long long)seq, (unsigned long long)rec.seq);
		audit_record_done(&rec);
	}
	if (f->n_written < ELEMENTSOF(f->written))
		f->written[f->n_written++] = strdup(type);
}

static struct audit_log *open_log_opts(struct fx *f, const struct audit_options *o)
{
	char vpath[160];

	assert_int_equal(audit_log_open(f->log, f->state, o, &f->log_handle, NULL), 0);
	snprintf(vpath, sizeof(vpath), "%s/audit-verify.key", f->state);
	assert_int_equal(audit_key_read(vpath, f->key0), 0);
	audit_log_set_written_callback(f->log_handle, on_written, f);
	return f->log_handle;
}

static struct audit_log *open_log(struct fx *f, size_t queue_records)
{
	struct audit_options o = {.queue_records = queue_records};
	char vpath[160];

	assert_int_equal(audit_log_open(f->log, f->state, &o, &f->log_handle, NULL), 0);
	snprintf(vpath, sizeof(vpath), "%s/audit-verify.key", f->state);
	assert_int_equal(audit_key_read(vpath, f->key0), 0);
	audit_log_set_written_callback(f->log_handle, on_written, f);
	return f->log_handle;
}

static off_t file_size(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_size;
}

static json_t *event_fields(int i)
{
	return json_pack("{s:i, s:s}", "i", i, "what", "something happened");
}

static int submit(struct audit_log *log, const char *type, int i)
{
	_cleanup_(json_decrefp) json_t *fields = event_fields(i);

	return audit_log_submit(log, type, fields, true, NULL, NULL);
}

struct rec_list {
	struct audit_record v[256];
	size_t n;
};

static void read_records(const char *path, struct rec_list *l)
{
	FILE *fp = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;

	assert_non_null(fp);
	l->n = 0;
	while ((len = getline(&line, &cap, fp)) > 0) {
		assert_true(l->n < ELEMENTSOF(l->v));
		assert_int_equal(line[len - 1], '\n');
		assert_int_equal(audit_record_parse(line, (size_t)len - 1, &l->v[l->n]), 0);
		l->n++;
	}
	free(line);
	fclose(fp);
}

static void records_done(struct rec_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		audit_record_done(&l->v[i]);
	l->n = 0;
}

static void assert_verifies(struct fx *f, uint64_t records)
{
	struct audit_verify_result res = {};
	const char *paths[] = {f->log};

	assert_int_equal(audit_verify_files(f->key0, paths, 1, &res), 0);
	if (!res.ok)
		fail_msg("verify: seq %llu: %s", (unsigned long long)res.bad_seq, res.reason);
	assert_int_equal(res.records, records);
	audit_verify_result_done(&res);
}

static int count_temp_keys(struct fx *f)
{
	DIR *d = opendir(f->state);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (strncmp(de->d_name, AUDIT_KEY_TEMP_PREFIX, strlen(AUDIT_KEY_TEMP_PREFIX)) == 0)
			n++;
	closedir(d);
	return n;
}

static uint64_t key_file_epoch(struct fx *f)
{
	struct audit_key_state ks = {};
	int fd = open(f->state, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(audit_key_state_load(fd, &ks), 0);
	uint64_t epoch;

	close(fd);
	epoch = ks.epoch;
	audit_key_state_cleanse(&ks);
	return epoch;
}

/* --- a full disk ---------------------------------------------------------------- */

static void test_full_disk_queues_then_writes_in_order(void **state)
{
	struct fx *f = *state;
	struct audit_log *log = open_log(f, 0);
	struct audit_log_status st;
	struct rec_list l;
	int r[6], flush_full, flush_free, append_full;

	assert_int_equal(submit(log, "agent-start", 0), 0);
	disk_full_at(file_size(f->log));
	for (int i = 0; i < 5; i++)
		r[i] = submit(log, "event", i + 1);
	flush_full = audit_log_flush(log);
	/* a record an effect waits for is refused, never queued */
	{
		_cleanup_(json_decrefp) json_t *fields = event_fields(99);

		append_full = audit_log_append(log, "control-request", fields, true, NULL, NULL);
	}
	disk_free();

	for (int i = 0; i < 5; i++)
		assert_int_equal(r[i], AUDIT_QUEUED);
	assert_true(flush_full == -EFBIG || flush_full == -ENOSPC);
	assert_true(append_full == -EFBIG || append_full == -ENOSPC);
	audit_log_get_status(log, &st);
	assert_true(st.pending);
	assert_int_equal(st.queued, 5);
	assert_int_equal(st.lost_total, 0);
	assert_int_equal(audit_log_last_seq(log), 1);

	/* space returns: a new record waits its turn behind the queue */
	r[5] = submit(log, "event", 6);
	assert_int_equal(r[5], AUDIT_QUEUED);
	flush_free = audit_log_flush(log);
	assert_int_equal(flush_free, 0);
	audit_log_get_status(log, &st);
	assert_false(st.pending);
	assert_int_equal(st.queued, 0);
	assert_int_equal(st.queued_total, 6);
	assert_int_equal(f->n_written, 6);

	read_records(f->log, &l);
	assert_int_equal(l.n, 7);
	for (size_t i = 1; i < l.n; i++) {
		assert_string_equal(l.v[i].type, "event");
		assert_int_equal(json_integer_value(json_object_get(l.v[i].fields, "i")),
				 (json_int_t)i);
		assert_int_equal(l.v[i].seq, i + 1);
		/* the time it happened, in order */
		assert_true(l.v[i].realtime_usec >= l.v[i - 1].realtime_usec);
	}
	records_done(&l);
	assert_int_equal(submit(log, "event", 7), 0);
	assert_verifies(f, 8);
}

static json_int_t field_int(const struct audit_record *rec, const char *a, const char *b)
{
	json_t *v = json_object_get(rec->fields, a);

	return json_integer_value(b ? json_object_get(v, b) : v);
}

static void test_queue_overflow_is_recorded_where_it_happened(void **state)
{
	struct fx *f = *state;
	struct audit_log *log = open_log(f, 4);
	struct audit_log_status st;
	struct rec_list l;
	int r[12], flush_partial;
	off_t size, event_len;

	assert_int_equal(submit(log, "agent-start", 0), 0);
	size = file_size(f->log);
	/* an "event" line is as long as the "agent-start" line, less 6 */
	event_len = size - 6;

	disk_full_at(size);
	for (int i = 0; i < 7; i++) /* 1-4 queued; 5, 6 (decoy-hit) and 7 lost */
		r[i] = submit(log, i == 4 || i == 5 ? "decoy-hit" : "event", i + 1);
	disk_full_at(size + 2 * event_len); /* room for two: 1 and 2 drain */
	flush_partial = audit_log_flush(log);
	disk_full_at(file_size(f->log));
	for (int i = 7; i < 12; i++) /* the loss of 5-7 takes a slot, 8 queued, 9-12 lost */
		r[i] = submit(log, "event", i + 1);
	disk_free();

	for (int i = 0; i < 4; i++)
		assert_int_equal(r[i], AUDIT_QUEUED);
	for (int i = 4; i < 7; i++)
		assert_int_equal(r[i], -ENOBUFS);
	assert_true(flush_partial == -EFBIG || flush_partial == -ENOSPC);
	assert_int_equal(r[7], AUDIT_QUEUED);
	for (int i = 8; i < 12; i++)
		assert_int_equal(r[i], -ENOBUFS);
	audit_log_get_status(log, &st);
	assert_int_equal(st.queued, 4); /* 3, 4, the loss marker, 8 */
	assert_int_equal(st.lost_total, 7);
	assert_int_equal(st.lost_pending, 7);

	assert_int_equal(audit_log_flush(log), 0);
	audit_log_get_status(log, &st);
	assert_int_equal(st.queued, 0);
	assert_int_equal(st.lost_pending, 0);
	assert_false(st.pending);

	read_records(f->log, &l);
	assert_int_equal(l.n, 8);
	for (int i = 1; i <= 4; i++) {
		assert_string_equal(l.v[i].type, "event");
		assert_int_equal(field_int(&l.v[i], "i", NULL), i);
	}
	assert_string_equal(l.v[5].type, AUDIT_TYPE_LOST);
	assert_int_equal(field_int(&l.v[5], "count", NULL), 3);
	assert_int_equal(field_int(&l.v[5], "types", "decoy-hit"), 2);
	assert_int_equal(field_int(&l.v[5], "types", "event"), 1);
	assert_true(field_int(&l.v[5], "first_realtime_usec", NULL) <=
		    field_int(&l.v[5], "last_realtime_usec", NULL));
	assert_int_equal(field_int(&l.v[5], "queue_records", NULL), 4);
	assert_string_equal(l.v[6].type, "event");
	assert_int_equal(field_int(&l.v[6], "i", NULL), 8);
	assert_string_equal(l.v[7].type, AUDIT_TYPE_LOST);
	assert_int_equal(field_int(&l.v[7], "count", NULL), 4);
	assert_int_equal(field_int(&l.v[7], "types", "event"), 4);
	for (size_t i = 1; i < l.n; i++)
		assert_true(l.v[i].realtime_usec >= l.v[i - 1].realtime_usec);
	records_done(&l);
	/* written later than submitted: each one reported with its seq */
	assert_int_equal(f->n_written, 7);
	assert_string_equal(f->written[4], AUDIT_TYPE_LOST);
	assert_verifies(f, 8);
}

static void test_queue_is_bounded_in_bytes_too(void **state)
{
	struct fx *f = *state;
	/* a record of these weighs its fields and type plus 320 bytes: two fit */
	struct audit_options o = {.queue_records = 100, .queue_bytes = 1000};
	struct audit_log *log = open_log_opts(f, &o);
	struct audit_log_status st;
	int r[3];

	assert_int_equal(submit(log, "agent-start", 0), 0);
	disk_full_at(file_size(f->log));
	for (int i = 0; i < 3; i++)
		r[i] = submit(log, "event", i + 1);
	disk_free();
	assert_int_equal(r[0], AUDIT_QUEUED);
	assert_int_equal(r[1], AUDIT_QUEUED);
	assert_int_equal(r[2], -ENOBUFS);
	audit_log_get_status(log, &st);
	assert_int_equal(st.queued, 2);
	assert_int_equal(st.lost_total, 1);
	assert_int_equal(audit_log_flush(log), 0);
	assert_verifies(f, 4);
}

/* --- rotation on a full disk ------------------------------------------------------ */

static void test_rotation_on_full_disk_keeps_log_rotated_first(void **state)
{
	struct fx *f = *state;
	struct audit_options o = {.max_bytes = 2000, .keep = 5};
	struct audit_log *log = open_log_opts(f, &o);
	struct audit_verify_result res = {};
	struct audit_log_status st;
	char names[6][160];
	const char *paths[6];
	size_t n_paths = 0;
	struct rec_list l;
	int r[3], flush_full, i, next_i;
	uint64_t last_realtime = 0;
	off_t size_before;

	assert_int_equal(submit(log, "agent-start", 0), 0);
	for (i = 1; file_size(f->log) + 600 <= 2000; i++)
		assert_int_equal(submit(log, "event", i), 0);
	size_before = file_size(f->log);
	/* nothing can be written anywhere: a record soon rotates, the new file
	 * is created, its log-rotated record cannot be written */
	disk_full_at(0);
	for (int k = 0; k < 3; k++)
		r[k] = submit(log, "event", i + k);
	flush_full = audit_log_flush(log);
	disk_free();
	for (int k = 0; k < 3; k++)
		assert_int_equal(r[k], AUDIT_QUEUED);
	assert_true(flush_full == -EFBIG || flush_full == -ENOSPC);
	audit_log_get_status(log, &st);
	assert_true(st.pending);
	assert_int_equal(st.queued, 3);
	/* either the old file is still current (it had room for none) or a
	 * fresh one with nothing in it yet */
	assert_true(file_size(f->log) == 0 || file_size(f->log) == size_before);

	assert_int_equal(audit_log_flush(log), 0);

	/* oldest first: audit.log.N .. audit.log.1, audit.log */
	for (int k = 5; k >= 1; k--) {
		struct stat sb;

		snprintf(names[n_paths], sizeof(names[n_paths]), "%s.%d", f->log, k);
		if (stat(names[n_paths], &sb) == 0)
			paths[n_paths] = names[n_paths], n_paths++;
	}
	snprintf(names[n_paths], sizeof(names[n_paths]), "%s", f->log);
	paths[n_paths] = names[n_paths], n_paths++;
	assert_true(n_paths >= 2);
	next_i = 1;
	for (size_t p = 0; p < n_paths; p++) {
		read_records(paths[p], &l);
		/* every file after the first starts with log-rotated */
		if (p > 0)
			assert_string_equal(l.v[0].type, AUDIT_TYPE_ROTATED);
		for (size_t k = 0; k < l.n; k++) {
			assert_true(l.v[k].realtime_usec >= last_realtime);
			last_realtime = l.v[k].realtime_usec;
			if (streq(l.v[k].type, "event"))
				assert_int_equal(
				    json_integer_value(json_object_get(l.v[k].fields, "i")),
				    next_i++);
		}
		records_done(&l);
	}
	assert_int_equal(next_i, i + 3); /* every queued event, in order */
	assert_int_equal(audit_verify_files(f->key0, paths, n_paths, &res), 0);
	if (!res.ok)
		fail_msg("verify: seq %llu: %s", (unsigned long long)res.bad_seq, res.reason);
	audit_verify_result_done(&res);
}

/* --- a failed fdatasync --------------------------------------------------------- */

static void test_failed_fdatasync_reopens_and_puts_back_lost_records(void **state)
{
	struct fx *f = *state;
	struct audit_log *log = open_log(f, 0);
	struct audit_log_status st;
	struct rec_list l;
	off_t synced;
	int r;

	assert_int_equal(submit(log, "agent-start", 0), 0);
	synced = file_size(f->log);
	/* two records without fdatasync, then one whose fdatasync fails */
	{
		_cleanup_(json_decrefp) json_t *a = event_fields(1), *b = event_fields(2);

		assert_int_equal(audit_log_append(log, "event", a, false, NULL, NULL), 0);
		assert_int_equal(audit_log_append(log, "event", b, false, NULL, NULL), 0);
	}
	fdatasync_failures = 1;
	r = submit(log, "event", 3);
	assert_int_equal(r, 0); /* in the chain; whether on disk is checked next */
	audit_log_get_status(log, &st);
	assert_true(st.pending);
	/* later events wait until the log is checked */
	assert_int_equal(submit(log, "event", 4), AUDIT_QUEUED);

	/* the kernel dropped the pages that failed: the file ends mid-record 2 */
	assert_int_equal(truncate(f->log, synced + 100), 0);

	assert_int_equal(audit_log_flush(log), 0);
	audit_log_get_status(log, &st);
	assert_false(st.pending);

	read_records(f->log, &l);
	assert_int_equal(l.n, 6);
	for (int i = 1; i <= 3; i++) {
		assert_string_equal(l.v[i].type, "event");
		assert_int_equal(json_integer_value(json_object_get(l.v[i].fields, "i")), i);
	}
	assert_string_equal(l.v[4].type, AUDIT_TYPE_REOPENED);
	assert_int_equal(json_integer_value(json_object_get(l.v[4].fields, "rewritten")), 3);
	assert_int_equal(json_integer_value(json_object_get(l.v[4].fields, "torn_bytes")), 100);
	assert_string_equal(json_string_value(json_object_get(l.v[4].fields, "error")),
			    strerror(EIO));
	assert_int_equal(json_integer_value(json_object_get(l.v[5].fields, "i")), 4);
	/* times keep their order; when the check happened is a field */
	for (size_t i = 1; i < l.n; i++)
		assert_true(l.v[i].realtime_usec >= l.v[i - 1].realtime_usec);
	assert_true(json_integer_value(json_object_get(l.v[4].fields, "checked_realtime_usec")) >=
		    (json_int_t)l.v[4].realtime_usec);
	records_done(&l);
	assert_verifies(f, 6);
}

static void test_failed_fdatasync_with_data_intact_rewrites_nothing(void **state)
{
	struct fx *f = *state;
	struct audit_log *log = open_log(f, 0);
	struct rec_list l;
	int r;

	assert_int_equal(submit(log, "agent-start", 0), 0);
	fdatasync_failures = 1;
	r = submit(log, "event", 1);
	assert_int_equal(r, 0);
	/* a record an effect waits for is refused until the log is checked */
	{
		_cleanup_(json_decrefp) json_t *fields = event_fields(2);

		fdatasync_failures = 1; /* the check's own fdatasync fails too */
		assert_int_equal(audit_log_append(log, "control-request", fields, true, NULL, NULL),
				 -EIO);
		assert_int_equal(audit_log_append(log, "control-request", fields, true, NULL, NULL),
				 0);
	}
	read_records(f->log, &l);
	assert_int_equal(l.n, 4);
	assert_string_equal(l.v[1].type, "event");
	assert_string_equal(l.v[2].type, AUDIT_TYPE_REOPENED);
	assert_int_equal(json_integer_value(json_object_get(l.v[2].fields, "rewritten")), 0);
	assert_string_equal(l.v[3].type, "control-request");
	records_done(&l);
	assert_verifies(f, 4);
}

static void test_reopen_refuses_a_file_that_is_not_ours(void **state)
{
	struct fx *f = *state;
	struct audit_log *log = open_log(f, 0);
	struct audit_log_status st;
	FILE *fp;

	assert_int_equal(submit(log, "agent-start", 0), 0);
	fdatasync_failures = 1;
	assert_int_equal(submit(log, "event", 1), 0);
	/* someone replaced the log meanwhile */
	fp = fopen(f->log, "we");
	assert_non_null(fp);
	fputs("{\"not\":\"a record\"}\n", fp);
	fclose(fp);
	assert_int_equal(audit_log_flush(log), -EBADMSG);
	audit_log_get_status(log, &st);
	assert_true(st.broken);
	assert_int_equal(submit(log, "event", 2), AUDIT_QUEUED);
	assert_int_equal(audit_log_flush(log), -EBADMSG);
}

/* --- seals ---------------------------------------------------------------------- */

static void test_seal_on_full_disk_writes_nothing_and_is_retried(void **state)
{
	struct fx *f = *state;
	struct audit_log *log = open_log(f, 0);
	struct rec_list l;
	off_t size;
	int r1, r2;

	assert_int_equal(submit(log, "agent-start", 0), 0);
	size = file_size(f->log);
	disk_full_at(size);
	r1 = audit_log_seal(log);
	r2 = audit_log_seal(log);
	disk_free();
	assert_true(r1 == -EFBIG || r1 == -ENOSPC);
	assert_true(r2 == -EFBIG || r2 == -ENOSPC);
	assert_int_equal(file_size(f->log), size);
	assert_int_equal(audit_log_epoch(log), 0);
	assert_int_equal(key_file_epoch(f), 0);
	assert_int_equal(count_temp_keys(f), 0);

	assert_int_equal(audit_log_seal(log), 0);
	assert_int_equal(audit_log_epoch(log), 1);
	assert_int_equal(key_file_epoch(f), 1);
	assert_int_equal(count_temp_keys(f), 0);
	read_records(f->log, &l);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.v[1].type, "seal");
	records_done(&l);
	assert_verifies(f, 2);
}

static void test_seal_with_failed_fdatasync_moves_the_key_after_the_check(void **state)
{
	struct fx *f = *state;
	struct audit_log *log = open_log(f, 0);
	struct rec_list l;
	off_t before;
	int r;

	assert_int_equal(submit(log, "agent-start", 0), 0);
	before = file_size(f->log);
	fdatasync_failures = 1;
	r = audit_log_seal(log);
	assert_int_equal(r, -EIO);
	/* the seal is in the chain but not known to be on disk: the key stays */
	assert_int_equal(key_file_epoch(f), 0);
	assert_int_equal(count_temp_keys(f), 1);
	assert_int_equal(submit(log, "event", 1), AUDIT_QUEUED);
	/* and the seal was lost with the page */
	assert_int_equal(truncate(f->log, before), 0);

	assert_int_equal(audit_log_flush(log), 0);
	assert_int_equal(key_file_epoch(f), 1);
	assert_int_equal(audit_log_epoch(log), 1);
	assert_int_equal(count_temp_keys(f), 0);
	read_records(f->log, &l);
	assert_int_equal(l.n, 4);
	assert_string_equal(l.v[1].type, "seal");
	assert_int_equal(l.v[1].epoch, 0);
	/* the reopen's record comes after the seal: the first of epoch 1 */
	assert_string_equal(l.v[2].type, AUDIT_TYPE_REOPENED);
	assert_string_equal(l.v[3].type, "event");
	assert_int_equal(l.v[3].epoch, 1);
	records_done(&l);
	assert_verifies(f, 4);
}

static void test_stale_temp_key_files_are_removed_at_open(void **state)
{
	struct fx *f = *state;
	struct audit_log *log = open_log(f, 0);
	char stale[200];
	FILE *fp;

	assert_int_equal(submit(log, "agent-start", 0), 0);
	audit_log_close(log);
	f->log_handle = NULL;
	snprintf(stale, sizeof(stale), "%s/%s0123456789abcdef", f->state, AUDIT_KEY_TEMP_PREFIX);
	fp = fopen(stale, "we");
	assert_non_null(fp);
	fputs("a key of a later epoch\n", fp);
	fclose(fp);
	assert_int_equal(count_temp_keys(f), 1);
	open_log(f, 0);
	assert_int_equal(count_temp_keys(f), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	    T(test_full_disk_queues_then_writes_in_order),
	    T(test_queue_overflow_is_recorded_where_it_happened),
	    T(test_queue_is_bounded_in_bytes_too),
	    T(test_rotation_on_full_disk_keeps_log_rotated_first),
	    T(test_failed_fdatasync_reopens_and_puts_back_lost_records),
	    T(test_failed_fdatasync_with_data_intact_rewrites_nothing),
	    T(test_reopen_refuses_a_file_that_is_not_ours),
	    T(test_seal_on_full_disk_writes_nothing_and_is_retried),
	    T(test_seal_with_failed_fdatasync_moves_the_key_after_the_check),
	    T(test_stale_temp_key_files_are_removed_at_open),
#undef T
	};

	signal(SIGXFSZ, SIG_IGN); /* a write past RLIMIT_FSIZE fails with EFBIG instead */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
