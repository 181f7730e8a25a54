/* SPDX-License-Identifier: MIT */
/* The line writer of the audit log: builds a record's MACed, chained line,
 * writes it (cutting a short write away again), remembers it until the next
 * fdatasync, and rotates the file by size. Below the seal, recovery and the
 * writer's public calls (audit.c); it uses only the key and the records. See
 * docs/audit-log.md. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit_internal.h"
#include "macro.h"
#include "clock.h"

#define ROTATE_SWEEP_MAX 1000 /* stale audit.log.N beyond keep removed per rotation */

void audit_unsynced_clear(struct audit_log *log)
{
	for (size_t i = 0; i < log->n_unsynced; i++) {
		free(log->unsynced[i].line);
		log->unsynced[i] = (struct audit_unsynced){};
	}
	log->n_unsynced = 0;
}

/* fdatasync; on success everything written is on disk. On failure the log
 * must be reopened and checked before anything else is written. */
int audit_sync(struct audit_log *log)
{
	if (fdatasync(log->fd) < 0) {
		log->need_reopen = true;
		log->reopen_error = -errno;
		return -errno;
	}
	log->synced_seq = log->last_seq;
	memcpy(log->synced_mac, log->prev, sizeof(log->synced_mac));
	audit_unsynced_clear(log);
	return 0;
}

/* One write() of the line and its newline. A short write is cut away again;
 * if even that fails the file's end is unknown: reopen. */
static int write_line(struct audit_log *log, const char *line, size_t len)
{
	_cleanup_free_ char *buf = malloc(len + 1);
	ssize_t n;

	if (!buf)
		return -ENOMEM;
	if (log->fd < 0)
		return -EBADF;
	memcpy(buf, line, len);
	buf[len] = '\n';
	do
		n = write(log->fd, buf, len + 1);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)(len + 1)) {
		int r = n < 0 ? -errno : -ENOSPC; /* a short write: the file system is full */

		/* Never leave a partial line for the next record to follow. */
		if (n > 0 && ftruncate(log->fd, (off_t)log->size) < 0) {
			log->need_reopen = true;
			log->reopen_error = -errno;
		}
		return r;
	}
	log->size += len + 1;
	return 0;
}

int audit_write_raw(struct audit_log *log, const char *line, size_t len)
{
	return write_line(log, line, len);
}

static int remember_unsynced(struct audit_log *log, uint64_t seq, const char *mac, const char *line,
			     size_t len)
{
	struct audit_unsynced *u;

	if (log->n_unsynced >= AUDIT_UNSYNCED_MAX)
		return -ENOBUFS;
	u = &log->unsynced[log->n_unsynced];
	u->line = strndup(line, len);
	if (!u->line)
		return -ENOMEM;
	u->seq = seq;
	u->len = len;
	memcpy(u->mac, mac, sizeof(u->mac));
	log->n_unsynced++;
	return 0;
}

int audit_rotated_name(const struct audit_log *log, unsigned i, char **ret)
{
	if (asprintf(ret, "%s.%u", log->base, i) < 0)
		return -ENOMEM;
	return 0;
}

static int rotate(struct audit_log *log, uint64_t realtime_usec, uint64_t monotonic_usec);

/* The record's line (rotating first when it would not fit in the file). */
int audit_build_line(struct audit_log *log, const struct audit_emit *e, uint64_t *ret_seq,
		     uint64_t ret_times[2], char **ret_line, size_t *ret_len,
		     char ret_mac[AUDIT_MAC_HEX_LEN + 1])
{
	_cleanup_free_ char *line = NULL;
	struct audit_record_head head;
	size_t len;
	int r;

	uint64_t realtime = e->realtime_usec ? e->realtime_usec : now(CLOCK_REALTIME);
	uint64_t monotonic = e->monotonic_usec ? e->monotonic_usec : now(CLOCK_MONOTONIC);

	for (int pass = 0;; pass++) {
		head = (struct audit_record_head){
		    .seq = log->last_seq + 1,
		    .realtime_usec = realtime,
		    .monotonic_usec = monotonic,
		    .epoch = log->key.epoch,
		    .boot_id = log->boot_id,
		    .type = e->type,
		    .fields = e->fields,
		    .prev = log->prev,
		};
		free(line);
		line = NULL;
		r = audit_record_line(log->key.key, &head, &line, &len, ret_mac);
		if (r < 0)
			return r;
		if (pass > 0 || !e->may_rotate || log->options.max_bytes == 0 || log->size == 0 ||
		    log->size + len + 1 <= log->options.max_bytes)
			break;
		r = rotate(log, realtime, monotonic);
		if (r < 0)
			return r;
	}
	*ret_seq = head.seq;
	ret_times[0] = realtime;
	ret_times[1] = monotonic;
	*ret_len = len;
	*ret_line = TAKE_PTR(line);
	return 0;
}

/* Writes a built line and makes it the end of the chain. */
int audit_put_line(struct audit_log *log, const struct audit_emit *e, uint64_t seq,
		   uint64_t realtime_usec, uint64_t monotonic_usec, const char *line, size_t len,
		   const char *mac, bool sync, bool *ret_chained)
{
	int r;

	*ret_chained = false;
	if (log->fd < 0)
		return -EBADF;
	/* Every unsynced record is remembered until the next fdatasync. */
	sync = sync || log->n_unsynced + 1 >= AUDIT_UNSYNCED_MAX;
	r = write_line(log, line, len);
	if (r < 0)
		return r;
	r = remember_unsynced(log, seq, mac, line, len);
	log->last_seq = seq;
	memcpy(log->prev, mac, AUDIT_MAC_HEX_LEN + 1);
	log->last_realtime_usec = realtime_usec;
	log->last_monotonic_usec = monotonic_usec;
	if (log->file_first_seq == 0)
		log->file_first_seq = seq;
	*ret_chained = true;
	/* The copy leaves when the record is in the file: a record rewritten
	 * after a failed fdatasync is the same line, already sent. */
	audit_journal_send(&log->journal, seq, log->key.epoch, e->type, e->fields, mac, line, len);
	if (r < 0) {
		/* Nothing to put it back with after a failed fdatasync. */
		if (fdatasync(log->fd) < 0)
			log->broken = -errno;
		else {
			log->synced_seq = log->last_seq;
			memcpy(log->synced_mac, log->prev, sizeof(log->synced_mac));
			audit_unsynced_clear(log);
		}
		return log->broken;
	}
	return sync ? audit_sync(log) : 0;
}

int audit_emit(struct audit_log *log, const struct audit_emit *e, uint64_t *ret_seq,
	       char **ret_line, bool *ret_chained)
{
	_cleanup_free_ char *line = NULL;
	char mac[AUDIT_MAC_HEX_LEN + 1];
	bool chained = false;
	uint64_t seq, times[2];
	size_t len;
	int r;

	if (ret_chained)
		*ret_chained = false;
	if (log->broken)
		return log->broken;
	r = audit_build_line(log, e, &seq, times, &line, &len, mac);
	if (r >= 0)
		r = audit_put_line(log, e, seq, times[0], times[1], line, len, mac, e->sync,
				   &chained);
	if (ret_chained)
		*ret_chained = chained;
	if (chained) {
		if (ret_seq)
			*ret_seq = seq;
		if (ret_line)
			*ret_line = TAKE_PTR(line);
	}
	return r;
}

/* audit.log.(N-1) -> N ... audit.log -> audit.log.1. The fresh audit.log
 * and its log-rotated record follow in audit_finish_rotation(). */
static int rotate_files(struct audit_log *log, char **ret_previous)
{
	_cleanup_free_ char *previous = NULL;
	int r;

	r = audit_sync(log);
	if (r < 0)
		return r;
	for (unsigned i = log->options.keep + 1; i <= log->options.keep + ROTATE_SWEEP_MAX; i++) {
		_cleanup_free_ char *name = NULL;

		r = audit_rotated_name(log, i, &name);
		if (r < 0)
			return r;
		if (unlinkat(log->log_dir_fd, name, 0) < 0) {
			if (errno == ENOENT)
				break;
			return -errno;
		}
	}
	for (unsigned i = log->options.keep; i > 1; i--) {
		_cleanup_free_ char *from = NULL, *to = NULL;

		if (audit_rotated_name(log, i - 1, &from) < 0 ||
		    audit_rotated_name(log, i, &to) < 0)
			return -ENOMEM;
		if (renameat(log->log_dir_fd, from, log->log_dir_fd, to) < 0 && errno != ENOENT)
			return -errno;
	}
	if (log->options.keep == 0) {
		previous = strdup(log->base); /* nothing kept: the old file is gone */
		if (!previous)
			return -ENOMEM;
		if (unlinkat(log->log_dir_fd, log->base, 0) < 0)
			return -errno;
	} else {
		r = audit_rotated_name(log, 1, &previous);
		if (r < 0)
			return r;
		if (renameat(log->log_dir_fd, log->base, log->log_dir_fd, previous) < 0)
			return -errno;
	}
	close(log->fd);
	log->fd = -1;
	log->size = 0;
	log->file_first_seq = 0;
	*ret_previous = TAKE_PTR(previous);
	return 0;
}

/* The new audit.log and its first record, log-rotated, which continues the
 * chain. Retried by audit_log_flush() when it fails (a full disk). */
int audit_finish_rotation(struct audit_log *log)
{
	_cleanup_(json_decrefp) json_t *fields = NULL;
	bool chained = false;
	int fd, r;

	if (log->fd < 0) {
		fd = openat(
		    log->log_dir_fd, log->base,
		    O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0640);
		if (fd < 0)
			return -errno;
		log->fd = fd;
		log->size = 0;
		if (fsync(log->log_dir_fd) < 0) {
			log->need_reopen = true;
			log->reopen_error = -errno;
			return -errno;
		}
	}
	fields = json_pack("{s:s}", "previous", log->pending_rotated);
	if (!fields)
		return -ENOMEM;
	/* The time of the record that made the file full: it comes next, and
	 * a queued one carries the time it happened at. */
	{
		struct audit_emit e = {.type = AUDIT_TYPE_ROTATED,
				       .fields = fields,
				       .realtime_usec = log->rotated_realtime_usec,
				       .monotonic_usec = log->rotated_monotonic_usec,
				       .sync = true};

		r = audit_emit(log, &e, NULL, NULL, &chained);
	}
	if (chained) {
		free(log->pending_rotated);
		log->pending_rotated = NULL;
	}
	return r;
}

static int rotate(struct audit_log *log, uint64_t realtime_usec, uint64_t monotonic_usec)
{
	_cleanup_free_ char *previous = NULL;
	int r;

	r = rotate_files(log, &previous);
	if (r < 0) {
		/* A failed fdatasync of the old file is a reopen; a rename
		 * that failed half way leaves names pointing who knows where:
		 * stop writing, the next open sorts it out from the disk. */
		if (!log->need_reopen)
			log->broken = r;
		return r;
	}
	log->pending_rotated = TAKE_PTR(previous);
	log->rotated_realtime_usec = realtime_usec;
	log->rotated_monotonic_usec = monotonic_usec;
	return audit_finish_rotation(log);
}
