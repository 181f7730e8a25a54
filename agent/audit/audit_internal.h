/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <sys/un.h>

#include "audit.h"

/* Internals shared by the audit log writer (audit.c), the key files
 * (audit_key.c), the verifier (audit_verify.c) and the record format
 * (audit_record.c). Not for use outside those files, the unit test and the
 * fuzzer. */

#define AUDIT_LINE_MAX (64 * 1024) /* bytes per record line, without the newline */
#define AUDIT_MAC_HEX_LEN (2 * AUDIT_MAC_SIZE)
#define AUDIT_KEY_HEX_LEN (2 * AUDIT_KEY_SIZE)
#define AUDIT_EPOCH_MAX (UINT64_C(1) << 20) /* bounds the key evolutions a verifier does */
#define AUDIT_SEQ_MAX (UINT64_C(1) << 53)   /* exact in any JSON reader */
#define AUDIT_TYPE_MAX 64
#define AUDIT_KEY_FILE "audit.key"
#define AUDIT_VERIFY_KEY_FILE "audit-verify.key"
#define AUDIT_EVOLVE_LABEL "mtd-audit-key-evolve"
#define AUDIT_MAC_SEPARATOR ",\"mac\":\""
#define AUDIT_ZERO_MAC "0000000000000000000000000000000000000000000000000000000000000000"

/* Writer-only record types; audit_log_append() refuses them. */
#define AUDIT_TYPE_SEAL "seal"
#define AUDIT_TYPE_ROTATED "log-rotated"
#define AUDIT_TYPE_UNCLEAN "unclean-restart"
#define AUDIT_TYPE_TORN "torn-record"
#define AUDIT_TYPE_LOST "audit-records-lost"
#define AUDIT_TYPE_REOPENED "audit-log-reopened"
#define AUDIT_TYPE_START "agent-start"
#define AUDIT_TYPE_STOP "agent-stop"

/* --- crypto and hex (audit_record.c) ------------------------------------- */

int audit_hmac(const uint8_t key[AUDIT_KEY_SIZE], const void *data, size_t len,
	       uint8_t ret_mac[AUDIT_MAC_SIZE]);
int audit_mac_hex(const uint8_t key[AUDIT_KEY_SIZE], const char *data, size_t len,
		  char ret_hex[AUDIT_MAC_HEX_LEN + 1]);
void audit_hex(const uint8_t *in, size_t n, char *out); /* out: 2n+1 bytes, lowercase */
int audit_unhex(const char *in, size_t hex_len, uint8_t *out);
bool audit_is_mac_hex(const char *s, size_t len);
/* Constant-time comparison of two 64-digit hex MACs. */
bool audit_mac_hex_equal(const char *a, const char *b);

/* --- record format (audit_record.c) --------------------------------------- */

struct audit_record_head {
	uint64_t seq;
	uint64_t realtime_usec;
	uint64_t monotonic_usec;
	uint64_t epoch;
	const char *boot_id;
	const char *type;
	json_t *fields;	  /* object, or NULL for {} */
	const char *prev; /* 64 hex digits */
};

/* Builds the MACed body: the record's JSON text without the mac member and
 * without the closing brace. */
int audit_record_body(const struct audit_record_head *head, char **ret_body, size_t *ret_len);
/* Builds the whole line (without newline): body + ,"mac":"HEX"} */
int audit_record_line(const uint8_t key[AUDIT_KEY_SIZE], const struct audit_record_head *head,
		      char **ret_line, size_t *ret_len, char ret_mac[AUDIT_MAC_HEX_LEN + 1]);
/* Splits a line (without newline) at the last ,"mac":" : the body is
 * line[0..*ret_body_len), the MAC hex is copied out. -EBADMSG when the line
 * does not end in exactly ,"mac":"<64 lowercase hex>"} */
int audit_line_split(const char *line, size_t len, size_t *ret_body_len,
		     char ret_mac[AUDIT_MAC_HEX_LEN + 1]);
/* audit_record_parse() with a human reason on failure (-EBADMSG, -E2BIG). */
int audit_record_parse_reason(const char *line, size_t len, struct audit_record *ret_record,
			      char *reason, size_t reason_size);
bool audit_type_valid(const char *type);

/* --- key state (audit_key.c) ----------------------------------------------- */

/* Contents of STATE_DIR/audit.key: the current epoch and key, and where the
 * last seal is (seq and MAC; 0 and zeros before the first seal), so that a
 * restarted writer can check a log that ends in a seal made with the erased
 * key, and can continue the chain if the log itself has vanished. */
struct audit_key_state {
	uint64_t epoch;
	uint8_t key[AUDIT_KEY_SIZE];
	uint64_t seal_seq;
	char seal_mac[AUDIT_MAC_HEX_LEN + 1];
};

#define AUDIT_KEY_TEMP_PREFIX "." AUDIT_KEY_FILE "."
#define AUDIT_KEY_TEMP_NAME_MAX 64

/* audit_key_evolve() that reports failure instead of aborting. */
int audit_key_next(const uint8_t key[AUDIT_KEY_SIZE], uint8_t ret_next[AUDIT_KEY_SIZE]);
int audit_key_state_load(int dir_fd, struct audit_key_state *ret_state);
/* Atomic replace (temp file, fsync, rename, fsync dir). With no_replace,
 * fails -EEXIST instead of replacing. */
int audit_key_state_store(int dir_fd, const struct audit_key_state *state, bool no_replace);
/* The two halves of audit_key_state_store: the temp file written and
 * fsynced (its name in ret_name), then renamed over audit.key (no fsync of
 * the directory: the caller does it). The seal writes the next key's temp
 * file before the seal record, so that a full disk fails the seal before
 * anything is written rather than between the seal and the key. */
int audit_key_state_write_temp(int dir_fd, const struct audit_key_state *state,
			       char ret_name[AUDIT_KEY_TEMP_NAME_MAX]);
int audit_key_state_rename(int dir_fd, const char *temp_name, bool no_replace);
/* Removes temp key files a crash or a failed seal left (they may hold a key
 * of a later epoch than audit.key, or, older, one that should be erased). */
int audit_key_temp_sweep(int dir_fd);
void audit_key_state_cleanse(struct audit_key_state *state);
/* An O_DIRECTORY fd of the directory holding path (".", "/" included). */
int audit_open_parent_dir(const char *path);

/* --- verifier (audit_verify.c) --------------------------------------------- */

/* Flags of audit_verify_buffer (audit.h) besides AUDIT_VERIFY_GAPS. */
#define AUDIT_VERIFY_NO_MAC (1u << 0) /* fuzzing only: skip the MAC comparison */

/* --- the queue of records waiting for a writable log (audit_queue.c) ------- */

struct audit_loss {
	uint64_t count;
	uint64_t first_realtime_usec, last_realtime_usec;
	uint64_t last_monotonic_usec;
	int error;     /* why the log could not be written then */
	json_t *types; /* {"type": count}, at most AUDIT_LOSS_TYPES_MAX names, then "other" */
};

#define AUDIT_LOSS_TYPES_MAX 32

/* A record that could not be written when it happened: its seq and MAC are
 * given when it reaches the log, its times are when it happened. Or a loss
 * marker (type NULL): records that did not fit in the queue at this point of
 * the order, written as one audit-records-lost record. */
struct audit_pending {
	char *type;
	json_t *fields;
	uint64_t realtime_usec;
	uint64_t monotonic_usec;
	size_t bytes;
	struct audit_loss loss; /* markers only */
};

struct audit_queue {
	struct audit_pending *items; /* ring of max_records entries */
	size_t head, count, max_records;
	size_t bytes, max_bytes;
	uint64_t queued_total, lost_total;
	struct audit_loss gap; /* records lost after the last entry (no room for a marker yet) */
};

int audit_queue_init(struct audit_queue *q, size_t max_records, size_t max_bytes);
void audit_queue_done(struct audit_queue *q);
/* Queues a copy of the record: 0; -ENOBUFS when it did not fit (counted as
 * lost at this point of the order; error says why the log could not take
 * it); -ENOMEM. */
int audit_queue_push(struct audit_queue *q, const char *type, json_t *fields,
		     uint64_t realtime_usec, uint64_t monotonic_usec, int error);
/* The oldest entry, or NULL. */
struct audit_pending *audit_queue_head(struct audit_queue *q);
void audit_queue_pop(struct audit_queue *q);
/* Takes the loss after the last entry (count 0 if none). */
void audit_queue_take_gap(struct audit_queue *q, struct audit_loss *ret_loss);
void audit_loss_done(struct audit_loss *loss);
/* The fields of the audit-records-lost record of loss. */
json_t *audit_loss_fields(const struct audit_loss *loss, const struct audit_queue *q);
bool audit_queue_empty(const struct audit_queue *q);
/* Records lost and not yet written as audit-records-lost. */
uint64_t audit_queue_lost_pending(const struct audit_queue *q);

/* --- the writer's state ----------------------------------------------------
 * The files of agent/audit/ call one way only, each the files below it:
 *   audit_timer.c    the seal timer
 *   audit.c          the writer's public calls (open, append, flush, seal)
 *   audit_recover.c  picking the chain up from disk (open, reopen)
 *   audit_seal.c     the seal record and the next epoch's key
 *   audit_write.c    the line writer (build, write, sync, rotate)
 *   audit_queue.c    records waiting while the log cannot be written
 *   audit_key.c      key files and key evolution
 *   audit_record.c   the record format and its MAC
 * audit_verify.c and audit_seek.c read logs with the key and record files.
 */

/* A record written since the last successful fdatasync: kept so that after
 * a failed fdatasync the writer can put back byte for byte whatever did not
 * reach the disk. */
struct audit_unsynced {
	uint64_t seq;
	char mac[AUDIT_MAC_HEX_LEN + 1];
	char *line; /* without newline */
	size_t len;
};

#define AUDIT_UNSYNCED_MAX 64 /* more unsynced records than this forces an fdatasync */

/* The journal copy of every record (audit_journal.c). */
struct audit_journal {
	int fd; /* -1: no copies */
	struct sockaddr_un addr;
	socklen_t addr_len;
	uint64_t sent, dropped;
	int last_error; /* of the last copy: 0 when it was taken */
};
int audit_journal_open(struct audit_journal *j, const char *socket_path);
void audit_journal_close(struct audit_journal *j);
void audit_journal_send(struct audit_journal *j, uint64_t seq, uint64_t epoch, const char *type,
			json_t *fields, const char *mac, const char *line, size_t len);

struct audit_log {
	int fd;		  /* the log, O_RDWR|O_APPEND; -1 between a rotation and the new file */
	int state_dir_fd; /* STATE_DIR, flock()ed while the log is open */
	int log_dir_fd;	  /* the directory holding the log */
	char *path;
	char *base; /* basename of path */
	struct audit_options options;
	struct audit_key_state key;
	uint64_t last_seq;
	char prev[AUDIT_MAC_HEX_LEN + 1];
	char boot_id[40];
	uint64_t size;
	uint64_t file_first_seq; /* seq of the current file's first record, 0 if none yet */

	/* The last record known to be on disk (fdatasync succeeded after it),
	 * and the ones written since. */
	uint64_t synced_seq;
	char synced_mac[AUDIT_MAC_HEX_LEN + 1];
	struct audit_unsynced unsynced[AUDIT_UNSYNCED_MAX];
	size_t n_unsynced;

	/* Work left by a failure, done (in this order) before any other record:
	 * a reopen after a failed fdatasync (or a failed truncation of a short
	 * write), the new file of a rotation whose log-rotated record is not
	 * written yet, the next key of a written seal not yet in audit.key. */
	bool need_reopen;
	int reopen_error;
	bool reopen_note; /* the audit-log-reopened record is still to write */
	size_t reopen_torn, reopen_rewritten;
	char *pending_rotated; /* "previous" of the log-rotated record still to write */
	uint64_t rotated_realtime_usec, rotated_monotonic_usec; /* its time */
	uint64_t last_realtime_usec, last_monotonic_usec;	/* of the last record written */
	bool key_pending;
	bool key_renamed; /* the temp file is audit.key; the directory is not yet fsynced */
	struct audit_key_state next_key;
	char next_key_temp[AUDIT_KEY_TEMP_NAME_MAX];

	int error;  /* the last write error, 0 once records are written again */
	int broken; /* negative errno once the file's state is unknown for good */
	uint64_t written_from_queue;

	struct audit_queue queue;
	struct audit_journal journal;
	audit_written_fn written_cb;
	void *written_userdata;
};

/* What the previous run left at the end of the log. */
struct audit_tail {
	char *last; /* the last complete line, without newline, or NULL */
	size_t last_len;
	char *before; /* the line before it, or NULL */
	size_t before_len;
	uint64_t size; /* file size */
	char *torn;    /* bytes after the last newline */
	size_t torn_len;
};

void audit_tail_done(struct audit_tail *t);
int audit_read_tail(int fd, struct audit_tail *ret);

struct audit_emit {
	const char *type;
	json_t *fields;
	uint64_t realtime_usec, monotonic_usec; /* 0: now */
	bool sync;
	bool may_rotate;
};

/* Appends one record of any type. On failure ret_chained says whether the
 * record is nevertheless part of the chain (written, but its fdatasync
 * failed: the log is reopened and checked before the next record). */
int audit_emit(struct audit_log *log, const struct audit_emit *e, uint64_t *ret_seq,
	       char **ret_line, bool *ret_chained);
/* audit_emit in two steps, for the seal (which needs the MAC between):
 * the line built (rotating first if it needs to and may: ret_times are its
 * realtime and monotonic), then written and made the end of the chain. */
int audit_build_line(struct audit_log *log, const struct audit_emit *e, uint64_t *ret_seq,
		     uint64_t ret_times[2], char **ret_line, size_t *ret_len,
		     char ret_mac[AUDIT_MAC_HEX_LEN + 1]);
int audit_put_line(struct audit_log *log, const struct audit_emit *e, uint64_t seq,
		   uint64_t realtime_usec, uint64_t monotonic_usec, const char *line, size_t len,
		   const char *mac, bool sync, bool *ret_chained);
/* Writes lines again after a reopen, without rotation or MAC. */
int audit_write_raw(struct audit_log *log, const char *line, size_t len);
int audit_sync(struct audit_log *log);
int audit_rotated_name(const struct audit_log *log, unsigned i, char **ret);
void audit_unsynced_clear(struct audit_log *log);
/* The new audit.log of a rotation and its log-rotated record; retried by
 * audit_log_flush() while log->pending_rotated is set. */
int audit_finish_rotation(struct audit_log *log);

/* --- the seal (audit_seal.c), above the line writer ------------------------ */

/* The seal record and the next key, once the queue is flushed
 * (audit_log_seal()). */
int audit_seal_write(struct audit_log *log);
/* The seal's next key into audit.key: rename, fsync the directory, erase the
 * old key. */
int audit_commit_key(struct audit_log *log);
/* Moves the in-memory and on-disk key to the next epoch after the seal
 * (seq, mac) of the current one, and erases the old key. */
int audit_evolve_after_seal(struct audit_log *log, uint64_t seal_seq, const char *seal_mac);

/* --- open-time recovery (audit_recover.c), above the seal ------------------ */
int audit_recover(struct audit_log *log, struct audit_open_report *report);
/* After a failed fdatasync: a fresh fd, the tail checked against what was
 * written, anything missing written again. */
int audit_reopen(struct audit_log *log);
