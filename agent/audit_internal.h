/* SPDX-License-Identifier: MIT */
/* Internals shared by the audit log writer (audit.c), the key files
 * (audit_key.c), the verifier (audit_verify.c) and the record format
 * (audit_record.c). Not for use outside those files, the unit test and the
 * fuzzer. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "audit.h"

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

/* audit_key_evolve() that reports failure instead of aborting. */
int audit_key_next(const uint8_t key[AUDIT_KEY_SIZE], uint8_t ret_next[AUDIT_KEY_SIZE]);
int audit_key_state_load(int dir_fd, struct audit_key_state *ret_state);
/* Atomic replace (temp file, fsync, rename, fsync dir). With no_replace,
 * fails -EEXIST instead of replacing. */
int audit_key_state_store(int dir_fd, const struct audit_key_state *state, bool no_replace);
void audit_key_state_cleanse(struct audit_key_state *state);
/* An O_DIRECTORY fd of the directory holding path (".", "/" included). */
int audit_open_parent_dir(const char *path);

/* --- verifier (audit_verify.c) --------------------------------------------- */

#define AUDIT_VERIFY_NO_MAC (1u << 0) /* fuzzing only: skip the MAC comparison */

/* Verify one in-memory file image (for the fuzzer and tests). */
int audit_verify_buffer(const uint8_t key0[AUDIT_KEY_SIZE], const char *name, const void *buf,
			size_t len, unsigned flags, struct audit_verify_result *ret_result);
