/* SPDX-License-Identifier: MIT */
/* The audit log writer: open, append, submit, flush, seal, close. When the
 * log cannot be written (disk full, a failed write or fdatasync) records wait
 * in a bounded queue and are written in order when it can; the work a failure
 * left (reopen and check, a rotation's new file, a seal's key) is finished
 * first. The top of agent/audit/: it uses open-time recovery
 * (audit_recover.c), the seal (audit_seal.c), the line writer
 * (audit_write.c) and the queue, and none of them calls back into it. See
 * docs/audit-log.md. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "audit_internal.h"
#include "macro.h"
#include "clock.h"

static void read_boot_id(char *buf, size_t size)
{
	_cleanup_close_ int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	ssize_t n = -1;

	if (fd >= 0)
		n = read(fd, buf, size - 1);
	if (n > 0 && buf[n - 1] == '\n')
		n--;
	for (ssize_t i = 0; i < n; i++)
		if (!((buf[i] >= '0' && buf[i] <= '9') || (buf[i] >= 'a' && buf[i] <= 'f') ||
		      buf[i] == '-'))
			n = -1;
	if (n <= 0) {
		snprintf(buf, size, "unknown");
		return;
	}
	buf[n] = '\0';
}

static bool type_reserved(const char *type)
{
	return streq(type, AUDIT_TYPE_SEAL) || streq(type, AUDIT_TYPE_ROTATED) ||
	       streq(type, AUDIT_TYPE_UNCLEAN) || streq(type, AUDIT_TYPE_TORN) ||
	       streq(type, AUDIT_TYPE_LOST) || streq(type, AUDIT_TYPE_REOPENED);
}

/* After a reopen: what was found and done. */
static int write_reopen_note(struct audit_log *log)
{
	_cleanup_(json_decrefp) json_t *fields = NULL;
	_cleanup_free_ char *line = NULL;
	/* Its time is that of the last record before it (the one whose
	 * fdatasync failed, or later), so times keep their order with the
	 * queued records after it; when the check succeeded is a field. */
	struct audit_emit e = {.type = AUDIT_TYPE_REOPENED,
			       .realtime_usec = log->last_realtime_usec,
			       .monotonic_usec = log->last_monotonic_usec,
			       .sync = true};
	bool chained = false;
	uint64_t seq;
	int r;

	fields =
	    json_pack("{s:s, s:I, s:I, s:I}", "error",
		      strerror(log->reopen_error < 0 ? -log->reopen_error : EIO), "torn_bytes",
		      (json_int_t)log->reopen_torn, "rewritten", (json_int_t)log->reopen_rewritten,
		      "checked_realtime_usec", (json_int_t)now(CLOCK_REALTIME));
	if (!fields)
		return -ENOMEM;
	e.fields = fields;
	r = audit_emit(log, &e, &seq, &line, &chained);
	if (chained) {
		log->reopen_note = false;
		if (log->written_cb)
			log->written_cb(seq, AUDIT_TYPE_REOPENED, fields, line,
					log->written_userdata);
	}
	return r;
}

/* Finishes the work a failure left, in order. */
static int resume(struct audit_log *log)
{
	int r;

	if (log->broken)
		return log->broken;
	if (log->need_reopen) {
		r = audit_reopen(log);
		if (r < 0) {
			if (r == -EBADMSG)
				log->broken = r;
			return r;
		}
	}
	if (log->pending_rotated) {
		r = audit_finish_rotation(log);
		if (r < 0)
			return r;
	}
	if (log->key_pending) {
		r = audit_commit_key(log);
		if (r < 0)
			return r;
	}
	if (log->reopen_note) {
		r = write_reopen_note(log);
		if (r < 0)
			return r;
	}
	return 0;
}

static bool work_pending(const struct audit_log *log)
{
	return log->need_reopen || log->pending_rotated || log->key_pending || log->reopen_note ||
	       log->fd < 0;
}

static void written(struct audit_log *log, uint64_t seq, const char *type, json_t *fields,
		    const char *line)
{
	log->written_from_queue++;
	if (log->written_cb)
		log->written_cb(seq, type, fields, line, log->written_userdata);
}

static int write_loss(struct audit_log *log, const struct audit_loss *loss, uint64_t realtime_usec,
		      uint64_t monotonic_usec, bool *ret_chained)
{
	_cleanup_(json_decrefp) json_t *fields = audit_loss_fields(loss, &log->queue);
	_cleanup_free_ char *line = NULL;
	struct audit_emit e = {.type = AUDIT_TYPE_LOST,
			       .realtime_usec = realtime_usec,
			       .monotonic_usec = monotonic_usec,
			       .may_rotate = true};
	uint64_t seq;
	int r;

	if (!fields)
		return -ENOMEM;
	e.fields = fields;
	r = audit_emit(log, &e, &seq, &line, ret_chained);
	if (*ret_chained)
		written(log, seq, AUDIT_TYPE_LOST, fields, line);
	return r;
}

/* One queued record into the log; *ret_chained says whether it is in the
 * chain (then it leaves the queue, even if its fdatasync failed). */
static int write_queued(struct audit_log *log, const struct audit_pending *p, bool *ret_chained)
{
	_cleanup_free_ char *line = NULL;
	struct audit_emit e = {.type = p->type,
			       .fields = p->fields,
			       .realtime_usec = p->realtime_usec,
			       .monotonic_usec = p->monotonic_usec,
			       .may_rotate = true};
	uint64_t seq;
	int r;

	if (!p->type)
		return write_loss(log, &p->loss, p->realtime_usec, p->monotonic_usec, ret_chained);
	r = audit_emit(log, &e, &seq, &line, ret_chained);
	if (*ret_chained)
		written(log, seq, p->type, p->fields, line);
	return r;
}

/* The left work, then the queue in order, then the loss after its last
 * entry, then an fdatasync if anything was written unsynced. */
static int flush(struct audit_log *log)
{
	struct audit_pending *p;
	bool any = false;
	int r;

	r = resume(log);
	if (r < 0)
		return r;
	while ((p = audit_queue_head(&log->queue))) {
		bool chained = false;

		r = write_queued(log, p, &chained);
		if (chained) {
			audit_queue_pop(&log->queue);
			any = true;
		}
		if (r < 0)
			return r;
	}
	if (log->queue.gap.count > 0) {
		struct audit_loss loss;
		bool chained = false;

		/* Its time: the last record it stands for (so times keep
		 * their order with the records after it). */
		r = write_loss(log, &log->queue.gap, log->queue.gap.last_realtime_usec,
			       log->queue.gap.last_monotonic_usec, &chained);
		if (chained) {
			audit_queue_take_gap(&log->queue, &loss);
			audit_loss_done(&loss);
			any = true;
		}
		if (r < 0)
			return r;
	}
	if (any || log->n_unsynced > 0) {
		r = audit_sync(log);
		if (r < 0)
			return r;
	}
	return 0;
}

int audit_log_flush(struct audit_log *log)
{
	int r;

	if (!log)
		return -EINVAL;
	r = flush(log);
	log->error = r;
	return r;
}

/* The epoch's records, queued ones included, come before its seal. */
int audit_log_seal(struct audit_log *log)
{
	int r;

	if (!log)
		return -EINVAL;
	r = audit_log_flush(log);
	if (r < 0)
		return r;
	return audit_seal_write(log);
}

static bool may_write_now(const struct audit_log *log)
{
	return !log->broken && !work_pending(log) && audit_queue_empty(&log->queue);
}

int audit_log_append(struct audit_log *log, const char *type, json_t *fields, bool sync,
		     uint64_t *ret_seq, char **ret_line)
{
	struct audit_emit e = {.type = type, .fields = fields, .sync = sync, .may_rotate = true};
	int r;

	if (!log || !audit_type_valid(type) || type_reserved(type))
		return -EINVAL;
	if (fields && !json_is_object(fields))
		return -EINVAL;
	if (!may_write_now(log)) {
		/* Nothing may overtake what waits. */
		r = audit_log_flush(log);
		if (r < 0)
			return r;
	}
	r = audit_emit(log, &e, ret_seq, ret_line, NULL);
	log->error = r < 0 ? r : 0;
	return r;
}

int audit_log_submit(struct audit_log *log, const char *type, json_t *fields, bool sync,
		     uint64_t *ret_seq, char **ret_line)
{
	struct audit_emit e = {.type = type, .fields = fields, .sync = sync, .may_rotate = true};
	uint64_t realtime = now(CLOCK_REALTIME), monotonic = now(CLOCK_MONOTONIC);
	bool chained = false;
	int r;

	if (!log || !audit_type_valid(type) || type_reserved(type))
		return -EINVAL;
	if (fields && !json_is_object(fields))
		return -EINVAL;
	e.realtime_usec = realtime;
	e.monotonic_usec = monotonic;
	if (may_write_now(log)) {
		r = audit_emit(log, &e, ret_seq, ret_line, &chained);
		if (r >= 0 || chained) {
			/* Written (a failed fdatasync is checked at the reopen). */
			log->error = r < 0 ? r : 0;
			return 0;
		}
		log->error = r;
	} else
		r = log->error ? log->error : -EAGAIN;
	r = audit_queue_push(&log->queue, type, fields, realtime, monotonic, r);
	return r < 0 ? r : AUDIT_QUEUED;
}

void audit_log_set_written_callback(struct audit_log *log, audit_written_fn fn, void *userdata)
{
	log->written_cb = fn;
	log->written_userdata = userdata;
}

void audit_log_get_status(const struct audit_log *log, struct audit_log_status *ret_status)
{
	*ret_status = (struct audit_log_status){
	    .error = log->error ? log->error : log->broken,
	    .broken = log->broken != 0,
	    .pending = work_pending(log) || !audit_queue_empty(&log->queue) || log->error,
	    .queued = log->queue.count,
	    .queued_total = log->queue.queued_total,
	    .lost_total = log->queue.lost_total,
	    .lost_pending = audit_queue_lost_pending(&log->queue),
	    .journal = log->journal.fd >= 0,
	    .journal_sent = log->journal.sent,
	    .journal_dropped = log->journal.dropped,
	    .journal_error = log->journal.last_error,
	};
}

static bool file_has_data(int dir_fd, const char *name)
{
	struct stat st;

	return fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_size > 0;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct audit_log *, audit_log_close)

/* No audit.key: a new key and its verification key file, unless a log is
 * there that only the missing key could continue. */
static int create_key(struct audit_log *log, const char *state_dir,
		      struct audit_open_report *report)
{
	_cleanup_free_ char *rotated = NULL;
	int r;

	/* Records without their key can never be continued. */
	r = audit_rotated_name(log, 1, &rotated);
	if (r < 0)
		return r;
	if (file_has_data(log->log_dir_fd, log->base) || file_has_data(log->log_dir_fd, rotated))
		return -ENOKEY;
	if (asprintf(&report->verify_key_path, "%s/%s", state_dir, AUDIT_VERIFY_KEY_FILE) < 0) {
		report->verify_key_path = NULL;
		return -ENOMEM;
	}
	r = audit_key_init(state_dir, report->verify_key_path);
	if (r < 0)
		return r;
	report->created_key = true;
	return audit_key_state_load(log->state_dir_fd, &log->key);
}

int audit_log_open(const char *log_path, const char *state_dir, const struct audit_options *options,
		   struct audit_log **ret_log, struct audit_open_report *ret_report)
{
	/* On failure the report goes first, then the log (its close releases
	 * the lock on STATE_DIR). */
	_cleanup_(audit_log_closep) struct audit_log *log = NULL;
	_cleanup_(audit_open_report_done) struct audit_open_report report = {};
	const char *slash;
	int r;

	if (!log_path || !state_dir || !ret_log)
		return -EINVAL;
	slash = strrchr(log_path, '/');
	if (!*(slash ? slash + 1 : log_path))
		return -EINVAL;

	log = calloc(1, sizeof(*log));
	if (!log)
		return -ENOMEM;
	log->fd = log->state_dir_fd = log->log_dir_fd = log->journal.fd = -1;
	if (options)
		log->options = *options;
	if (log->options.journal_socket) {
		r = audit_journal_open(&log->journal, log->options.journal_socket);
		if (r < 0)
			return r;
	}
	log->options.journal_socket = NULL; /* borrowed for the open only */
	if (!log->options.queue_records)
		log->options.queue_records = AUDIT_QUEUE_RECORDS_DEFAULT;
	if (!log->options.queue_bytes)
		log->options.queue_bytes =
		    log->options.queue_records * AUDIT_QUEUE_BYTES_PER_RECORD;
	r = audit_queue_init(&log->queue, log->options.queue_records, log->options.queue_bytes);
	if (r < 0)
		return r;
	log->path = strdup(log_path);
	log->base = strdup(slash ? slash + 1 : log_path);
	if (!log->path || !log->base)
		return -ENOMEM;
	read_boot_id(log->boot_id, sizeof(log->boot_id));

	log->state_dir_fd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (log->state_dir_fd < 0)
		return -errno;
	if (flock(log->state_dir_fd, LOCK_EX | LOCK_NB) < 0)
		return errno == EWOULDBLOCK ? -EBUSY : -errno;
	log->log_dir_fd = audit_open_parent_dir(log_path);
	if (log->log_dir_fd < 0)
		return log->log_dir_fd;

	/* Temp key files of a crash or a failed seal: a key of a later epoch,
	 * or an older one that must not outlive its epoch. */
	(void)audit_key_temp_sweep(log->state_dir_fd);

	r = audit_key_state_load(log->state_dir_fd, &log->key);
	if (r == -ENOENT)
		r = create_key(log, state_dir, &report);
	if (r < 0)
		return r;

	log->fd = openat(log->log_dir_fd, log->base,
			 O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0640);
	if (log->fd < 0)
		return -errno;
	r = audit_recover(log, &report);
	if (r < 0)
		return r;

	*ret_log = TAKE_PTR(log);
	if (ret_report) {
		*ret_report = report;
		report = (struct audit_open_report){}; /* handed on */
	}
	return 0;
}

uint64_t audit_log_last_seq(const struct audit_log *log)
{
	return log ? log->last_seq : 0;
}

uint64_t audit_log_epoch(const struct audit_log *log)
{
	return log ? log->key.epoch : 0;
}

const char *audit_log_path(const struct audit_log *log)
{
	return log ? log->path : NULL;
}

void audit_log_close(struct audit_log *log)
{
	if (!log)
		return;
	if (log->fd >= 0)
		close(log->fd);
	if (log->log_dir_fd >= 0)
		close(log->log_dir_fd);
	if (log->state_dir_fd >= 0)
		close(log->state_dir_fd); /* releases the lock */
	audit_journal_close(&log->journal);
	audit_unsynced_clear(log);
	audit_queue_done(&log->queue);
	free(log->pending_rotated);
	free(log->path);
	free(log->base);
	OPENSSL_cleanse(log, sizeof(*log));
	free(log);
}

void audit_open_report_done(struct audit_open_report *report)
{
	if (!report)
		return;
	free(report->verify_key_path);
	*report = (struct audit_open_report){};
}
