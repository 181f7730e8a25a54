/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <systemd/sd-event.h>

/* Tamper-evident audit log: append-only JSON lines, each MACed with
 * HMAC-SHA256 over the record body, which carries its seq and the previous
 * record's MAC. The MAC key evolves one way at every seal (end of an audit
 * epoch) and the old key is erased, so a key stolen today cannot forge
 * yesterday's records. The record format and verification rules are in
 * docs/audit-log.md. */

#define AUDIT_KEY_SIZE 32
#define AUDIT_MAC_SIZE 32

struct audit_log;

#define AUDIT_QUEUE_RECORDS_DEFAULT 1024
#define AUDIT_QUEUE_BYTES_PER_RECORD 4096 /* default byte bound: 4 KiB per record */

struct audit_options {
	uint64_t max_bytes;	    /* rotate when the file would exceed this; 0 = never */
	unsigned keep;		    /* rotated files kept: audit.log.1 .. audit.log.N */
	size_t queue_records;	    /* records held in memory while the log cannot be written
				       (0: AUDIT_QUEUE_RECORDS_DEFAULT) */
	size_t queue_bytes;	    /* and their size bound (0: queue_records * 4 KiB) */
	const char *journal_socket; /* journald's native socket: a copy of every record
				       goes there (NULL: none); see audit_journal.c */
};

#define AUDIT_JOURNAL_SOCKET "/run/systemd/journal/socket"

/* Called for each record that reaches the log later than it was submitted:
 * records from the queue, audit-records-lost, audit-log-reopened. fields and
 * line are borrowed. */
typedef void (*audit_written_fn)(uint64_t seq, const char *type, json_t *fields, const char *line,
				 void *userdata);

/* What audit_log_open found and did about the previous run. */
struct audit_open_report {
	bool created_key;      /* no key existed: a fresh initial key was made */
	char *verify_key_path; /* where the initial (verification) key was written, or NULL */
	bool unclean_restart;  /* the previous run did not stop cleanly */
	size_t torn_bytes;     /* a torn last record of that many bytes was cut off (kept in the
				  unclean-restart record) */
};

/* Open (or create) the log at log_path, with the evolving key kept in
 * STATE_DIR/audit.key. If no key exists yet, creates the initial key and
 * writes a copy to STATE_DIR/audit-verify.key for the operator to take
 * off-host. Continues the chain from the last record; if the previous run
 * ended uncleanly (no agent-stop record, or a torn last line), appends an
 * "unclean-restart" record (torn bytes preserved in it). */
int audit_log_open(const char *log_path, const char *state_dir, const struct audit_options *options,
		   struct audit_log **ret_log, struct audit_open_report *ret_report);

/* Append one record. fields is a JSON object (borrowed; may be NULL). When
 * sync is true the record is on disk (fdatasync) when this returns. ret_seq
 * may be NULL. Returns the written line (without newline) in *ret_line if
 * ret_line is not NULL (caller frees). */
int audit_log_append(struct audit_log *log, const char *type, json_t *fields, bool sync,
		     uint64_t *ret_seq, char **ret_line);

/* Like audit_log_append, but when the log cannot take the record now (disk
 * full, a failed write or fdatasync, records already waiting) the record is
 * queued in memory and written, in order and chained, by a later
 * audit_log_flush(). Returns 0 when written (ret_seq, ret_line set),
 * AUDIT_QUEUED when queued, -ENOBUFS when the queue was full (the record is
 * lost and counted: an audit-records-lost record takes its place). */
#define AUDIT_QUEUED 1
int audit_log_submit(struct audit_log *log, const char *type, json_t *fields, bool sync,
		     uint64_t *ret_seq, char **ret_line);

/* Finishes what a failure left (reopen and check after a failed fdatasync,
 * a rotation's new file, a seal's key) and writes the queue. 0 when nothing
 * is left; -errno when the log still cannot be written (retry later). */
int audit_log_flush(struct audit_log *log);

void audit_log_set_written_callback(struct audit_log *log, audit_written_fn fn, void *userdata);

struct audit_log_status {
	int error;		  /* the last write error; 0 when the log is written normally */
	bool broken;		  /* the log cannot be continued by this process (see docs) */
	bool pending;		  /* records or work wait for audit_log_flush(), or the last
				     write failed */
	size_t queued;		  /* records in the queue now */
	uint64_t queued_total;	  /* records ever queued */
	uint64_t lost_total;	  /* records ever lost (queue full) */
	uint64_t lost_pending;	  /* of those, not yet recorded in the log */
	bool journal;		  /* copies go to the journal */
	uint64_t journal_sent;	  /* copies the journal took */
	uint64_t journal_dropped; /* copies it could not take (full, not running) */
	int journal_error;	  /* why the last copy was dropped; 0 if it was taken */
};
void audit_log_get_status(const struct audit_log *log, struct audit_log_status *ret_status);

/* End the current audit epoch: append a "seal" record, evolve the key, persist
 * it (write temp, fsync, rename, fsync dir) and erase the old key from memory.
 * Writes whatever is queued first. On failure nothing is sealed and the
 * caller retries (a seal whose fdatasync failed is finished by the next
 * audit_log_flush: reopen, check, then the key). */
int audit_log_seal(struct audit_log *log);

uint64_t audit_log_last_seq(const struct audit_log *log);
uint64_t audit_log_epoch(const struct audit_log *log);
const char *audit_log_path(const struct audit_log *log);

/* Closes without writing anything; the caller appends "agent-stop" and seals
 * first for a clean stop. */
void audit_log_close(struct audit_log *log);
void audit_open_report_done(struct audit_open_report *report);

/* Create the initial key: writes it to key_out (created, 0600, never
 * overwritten) and starts STATE_DIR/audit.key from it. Fails with -EEXIST if
 * either exists. */
int audit_key_init(const char *state_dir, const char *key_out);

/* Read a verification key file (64 hex digits and a newline). */
int audit_key_read(const char *path, uint8_t ret_key[AUDIT_KEY_SIZE]);

/* The one-way key evolution: next = HMAC-SHA256(key, "mtd-audit-key-evolve"). */
void audit_key_evolve(const uint8_t key[AUDIT_KEY_SIZE], uint8_t ret_next[AUDIT_KEY_SIZE]);

struct audit_gap {
	uint64_t first, last; /* seqs missing, inclusive */
};

struct audit_verify_result {
	bool ok;
	uint64_t records;   /* records verified */
	uint64_t first_seq; /* seq of the first record seen */
	uint64_t last_seq;  /* seq of the last good record */
	uint64_t bad_seq;   /* when !ok: the first bad seq (or the seq expected there) */
	char *bad_file;	    /* when !ok: the file and line of the problem */
	unsigned bad_line;
	char *reason;		/* when !ok: why */
	bool torn_tail;		/* the last line is an incomplete record */
	bool unsealed_tail;	/* records after the last seal (a running agent, or a cut) */
	struct audit_gap *gaps; /* AUDIT_VERIFY_GAPS: the seqs missing, in order */
	size_t n_gaps;
};

/* Verify files in order (oldest first) with the initial key. Detects a
 * modified, inserted, deleted or reordered record, a broken chain between
 * files, and a torn last record. Returns 0 when the verification ran (see
 * result->ok), negative errno when a file could not be read. */
int audit_verify_files(const uint8_t key0[AUDIT_KEY_SIZE], const char *const *paths, size_t n_paths,
		       struct audit_verify_result *ret_result);
void audit_verify_result_done(struct audit_verify_result *result);

/* Verify a buffer of record lines (one file's image). flags:
 * AUDIT_VERIFY_GAPS for a copy shipped off the host, which may miss records
 * (dropped on the way): a jump in seq is listed in result->gaps and
 * verification goes on from the record after it (its MAC checked under its
 * epoch's key; the chain link over the gap cannot be). Without it a jump
 * fails verification. */
#define AUDIT_VERIFY_GAPS (1u << 1)
int audit_verify_buffer(const uint8_t key0[AUDIT_KEY_SIZE], const char *name, const void *data,
			size_t len, unsigned flags, struct audit_verify_result *ret_result);

/* Records as lines by seq: the copy shipped through the journal, or the
 * host's own files, for audit_compare (audit_shipped.c). */
struct audit_line {
	uint64_t seq;
	char *line; /* without the newline */
	size_t len;
};
struct audit_lines {
	struct audit_line *lines; /* sorted by seq, one per seq */
	size_t n, allocated;
	size_t duplicates; /* identical copies seen more than once (kept once) */
	char machine[33];  /* journal: the _MACHINE_ID they came from ("" if none) */
};
/* The records sent by audit_journal.c (SYSLOG_IDENTIFIER=mtd-agent entries
 * from root, _UID=0, with MTD_RECORD=) in the journal file or directory at
 * path; machine (32 hex digits) picks one
 * host's when the journal holds several (refused otherwise). On failure err
 * says where and why. */
int audit_lines_read_journal(const char *path, const char *machine, struct audit_lines *ret,
			     char *err, size_t err_size);
/* The complete records of local log files (a torn last line is skipped). */
int audit_lines_read_files(const char *const *paths, size_t n_paths, struct audit_lines *ret,
			   char *err, size_t err_size);
/* The lines joined with newlines, for audit_verify_buffer. */
int audit_lines_join(const struct audit_lines *lines, char **ret_buf, size_t *ret_len);
void audit_lines_done(struct audit_lines *lines);

/* The host's log against the shipped copy, seq by seq. */
struct audit_comparison {
	uint64_t local_first, local_last; /* seqs of the local records (0 if none) */
	uint64_t same;			  /* records in both, byte for byte equal */
	uint64_t differ;		  /* records in both that are not the same */
	uint64_t first_differing;
	uint64_t missing_locally; /* shipped records after the local log's last one */
	uint64_t first_missing_locally, last_missing_locally;
	uint64_t shipped_before_local; /* shipped records older than the local files */
	uint64_t not_shipped;	       /* local records after the shipped copy's last one */
};
void audit_compare(const struct audit_lines *local, const struct audit_lines *shipped,
		   struct audit_comparison *ret);

/* Parsed view of one record line, for readers (mtdctl audit show, the
 * control socket, the fuzzer). Does not check the MAC. */
struct audit_record {
	uint64_t seq;
	uint64_t epoch;
	char *type;
	json_t *object; /* the whole record as parsed */
	/* Borrowed from object (valid until audit_record_done): */
	uint64_t realtime_usec;
	uint64_t monotonic_usec;
	const char *realtime; /* "2026-11-22T02:30:00.123456Z" */
	const char *boot_id;
	const char *prev; /* 64 hex digits */
	const char *mac;  /* 64 hex digits */
	json_t *fields;	  /* object */
};

int audit_record_parse(const char *line, size_t len, struct audit_record *ret_record);
void audit_record_done(struct audit_record *record);

/* Finding a record in the audit log files without reading them through:
 * records are lines in seq order and every line starts right after a newline
 * (a record never holds one), so the first record after a seq is found by a
 * binary search over byte offsets, a few small reads per file. A reader then
 * costs what it returns, not the size of the log. */

/* Where the first record with seq > since is, in log_path (file 0) and its
 * rotated files log_path.1 … log_path.keep (file i): *ret_file and
 * *ret_offset. When since is older than every kept record, the start of the
 * oldest kept file; when no record is newer, the end of file 0. Returns 0, or
 * a negative errno when file 0 cannot be read. */
int audit_seek(const char *log_path, unsigned keep, uint64_t since, unsigned *ret_file,
	       uint64_t *ret_offset);

/* The name of file i (0: log_path itself); caller frees. NULL on ENOMEM. */
char *audit_file_name(const char *log_path, unsigned file);

/* The agent's clock on the audit log: one seal per audit epoch for as long as
 * the agent runs (each seal evolves the key and erases the old one), a failed
 * seal retried with back-off until it succeeds (never skipped), and records
 * that wait in the log's queue (disk full, failed write or fdatasync) retried
 * with back-off until they are written. */

struct audit_log;
struct audit_timer;

struct audit_timer_stats {
	uint64_t seals;		/* seals written by the timer */
	uint64_t seal_failures; /* attempts that failed (each retried) */
	uint64_t seal_due_usec; /* CLOCK_MONOTONIC of the next attempt */
};

/* Seals every epoch_usec (CLOCK_MONOTONIC) from now. */
int audit_timer_new(sd_event *event, struct audit_log *log, uint64_t epoch_usec,
		    struct audit_timer **ret_timer);
/* The log has records or work waiting: flush soon, then with back-off. */
void audit_timer_kick(struct audit_timer *timer);
void audit_timer_get_stats(const struct audit_timer *timer, struct audit_timer_stats *ret_stats);
void audit_timer_free(struct audit_timer *timer);
