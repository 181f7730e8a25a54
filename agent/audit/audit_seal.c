/* SPDX-License-Identifier: MIT */
/* The end of an audit epoch: the seal record, the next key in audit.key, the
 * old key erased. The next key's file is written before the seal so that a
 * full disk fails the seal with nothing changed; a seal whose fdatasync
 * failed moves the key on only once the reopened log shows it on disk. See
 * docs/audit-log.md. audit_log_seal() (audit.c) flushes the queue, then calls
 * audit_seal_write(); this file uses the line writer (audit_write.c) and the
 * key below it, never the writer's public calls. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "audit_internal.h"
#include "macro.h"

int audit_evolve_after_seal(struct audit_log *log, uint64_t seal_seq, const char *seal_mac)
{
	struct audit_key_state next = {};
	int r;

	next.epoch = log->key.epoch + 1;
	next.seal_seq = seal_seq;
	memcpy(next.seal_mac, seal_mac, sizeof(next.seal_mac));
	r = audit_key_next(log->key.key, next.key);
	if (r >= 0)
		r = audit_key_state_store(log->state_dir_fd, &next, false);
	if (r >= 0) {
		audit_key_state_cleanse(&log->key);
		log->key = next;
	}
	audit_key_state_cleanse(&next);
	return r;
}

/* The seal's next key into audit.key: rename the temp file written before
 * the seal, fsync the directory, then erase the old key from memory. */
int audit_commit_key(struct audit_log *log)
{
	int r;

	if (!log->key_renamed) {
		r = audit_key_state_rename(log->state_dir_fd, log->next_key_temp, false);
		if (r < 0)
			return r;
		log->key_renamed = true;
	}
	if (fsync(log->state_dir_fd) < 0)
		return -errno;
	audit_key_state_cleanse(&log->key);
	log->key = log->next_key;
	audit_key_state_cleanse(&log->next_key);
	explicit_bzero(log->next_key_temp, sizeof(log->next_key_temp));
	log->key_pending = false;
	log->key_renamed = false;
	return 0;
}

/* The seal line built, the next key's temp file written, then the line
 * written. *ret_chained says whether the seal is in the chain (written; its
 * fdatasync may have failed); when it is not, the temp file is gone. */
static int put_seal(struct audit_log *log, json_t *fields, bool *ret_chained)
{
	_cleanup_free_ char *line = NULL;
	char mac[AUDIT_MAC_HEX_LEN + 1];
	struct audit_emit e = {.type = AUDIT_TYPE_SEAL, .fields = fields};
	uint64_t seq, times[2];
	size_t len;
	int r;

	/* A seal never starts a new file (it may overshoot max_bytes by its
	 * own size): "agent-stop" then "seal" stay adjacent, which is how the
	 * next open recognises a clean stop. */
	r = audit_build_line(log, &e, &seq, times, &line, &len, mac);
	if (r < 0)
		return r;

	/* The next key's file before the seal: a full disk fails the seal
	 * here, with nothing written, rather than between seal and key. */
	log->next_key = (struct audit_key_state){.epoch = log->key.epoch + 1, .seal_seq = seq};
	memcpy(log->next_key.seal_mac, mac, sizeof(log->next_key.seal_mac));
	r = audit_key_next(log->key.key, log->next_key.key);
	if (r >= 0)
		r = audit_key_state_write_temp(log->state_dir_fd, &log->next_key,
					       log->next_key_temp);
	if (r < 0)
		return r;

	r = audit_put_line(log, &e, seq, times[0], times[1], line, len, mac, true, ret_chained);
	if (!*ret_chained)
		unlinkat(log->state_dir_fd, log->next_key_temp, 0);
	return r;
}

int audit_seal_write(struct audit_log *log)
{
	_cleanup_(json_decrefp) json_t *fields = NULL;
	bool chained = false;
	int r;

	/* Records of this epoch before the seal: the epoch began right after
	 * the previous seal (seq 0 before the first one). */
	fields = json_pack("{s:I,s:I}", "epoch", (json_int_t)log->key.epoch, "records",
			   (json_int_t)(log->last_seq - log->key.seal_seq));
	if (!fields)
		return -ENOMEM;
	r = put_seal(log, fields, &chained);
	if (!chained) {
		/* No seal: the next key is forgotten, the epoch goes on. */
		audit_key_state_cleanse(&log->next_key);
		explicit_bzero(log->next_key_temp, sizeof(log->next_key_temp));
		log->error = r;
		return r;
	}
	/* The seal is in the chain: nothing more in this epoch. If its
	 * fdatasync failed, the reopen checks it is on disk before the key
	 * moves on (resume: reopen, then the key). */
	log->key_pending = true;
	if (r >= 0)
		r = audit_commit_key(log);
	log->error = r;
	return r;
}
