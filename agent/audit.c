/* SPDX-License-Identifier: MIT */
/* The audit log writer: appends MACed, chained JSON lines, seals epochs
 * (evolving and erasing the key), rotates by size, and on open picks the
 * chain up where the last run left it, recording an unclean restart and any
 * torn last record. See docs/audit-log.md. */
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
#include <openssl/evp.h>

#include "audit_internal.h"
#include "macro.h"

#define TORN_CHUNK (24 * 1024) /* torn bytes kept per record (base64: 32 KiB) */
#define ROTATE_SWEEP_MAX 1000  /* stale audit.log.N beyond keep removed per rotation */

struct audit_log {
	int fd;		  /* the log, O_RDWR|O_APPEND */
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
	int broken; /* negative errno once the file's state is unknown */
};

/* What the previous run left at the end of the log. */
struct tail {
	char *last; /* the last complete line, without newline, or NULL */
	size_t last_len;
	char *before; /* the line before it, or NULL */
	size_t before_len;
	uint64_t size; /* file size */
	char *torn;    /* bytes after the last newline */
	size_t torn_len;
};

static void tail_done(struct tail *t)
{
	free(t->last);
	free(t->before);
	free(t->torn);
	*t = (struct tail){};
}

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

static uint64_t clock_usec(clockid_t id)
{
	struct timespec ts;

	if (clock_gettime(id, &ts) < 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
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
static int read_tail(int fd, struct tail *ret)
{
	const size_t window = 3 * ((size_t)AUDIT_LINE_MAX + 1);
	_cleanup_free_ char *buf = NULL;
	struct tail t = {};
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
			tail_done(&t);
			return r;
		}
	}
	*ret = t;
	return 0;
}

static int write_line(struct audit_log *log, const char *line, size_t len, bool sync)
{
	_cleanup_free_ char *buf = malloc(len + 1);
	ssize_t n;

	if (!buf)
		return -ENOMEM;
	memcpy(buf, line, len);
	buf[len] = '\n';
	do
		n = write(log->fd, buf, len + 1);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)(len + 1)) {
		int r = n < 0 ? -errno : -EIO;

		/* Never leave a partial line for the next record to follow. */
		if (n > 0 && ftruncate(log->fd, (off_t)log->size) < 0)
			log->broken = -EIO;
		return r;
	}
	log->size += len + 1;
	if (sync && fdatasync(log->fd) < 0) {
		/* The record may or may not reach the disk; do not guess. */
		log->broken = -errno;
		return log->broken;
	}
	return 0;
}

static int rotate(struct audit_log *log);

/* Appends one record of any type (the public entry points restrict types). */
static int emit(struct audit_log *log, const char *type, json_t *fields, bool sync, bool may_rotate,
		uint64_t *ret_seq, char **ret_line)
{
	_cleanup_free_ char *line = NULL;
	char mac[AUDIT_MAC_HEX_LEN + 1];
	struct audit_record_head head;
	size_t len;
	int r;

	if (log->broken)
		return log->broken;
	for (int pass = 0;; pass++) {
		head = (struct audit_record_head){
		    .seq = log->last_seq + 1,
		    .realtime_usec = clock_usec(CLOCK_REALTIME),
		    .monotonic_usec = clock_usec(CLOCK_MONOTONIC),
		    .epoch = log->key.epoch,
		    .boot_id = log->boot_id,
		    .type = type,
		    .fields = fields,
		    .prev = log->prev,
		};
		free(line);
		line = NULL;
		r = audit_record_line(log->key.key, &head, &line, &len, mac);
		if (r < 0)
			return r;
		if (pass > 0 || !may_rotate || log->options.max_bytes == 0 || log->size == 0 ||
		    log->size + len + 1 <= log->options.max_bytes)
			break;
		r = rotate(log);
		if (r < 0)
			return r;
	}
	r = write_line(log, line, len, sync);
	if (r < 0)
		return r;
	log->last_seq = head.seq;
	memcpy(log->prev, mac, sizeof(log->prev));
	if (ret_seq)
		*ret_seq = head.seq;
	if (ret_line)
		*ret_line = TAKE_PTR(line);
	return 0;
}

static int rotated_name(const struct audit_log *log, unsigned i, char **ret)
{
	if (asprintf(ret, "%s.%u", log->base, i) < 0)
		return -ENOMEM;
	return 0;
}

/* audit.log.(N-1) -> N ... audit.log -> audit.log.1, then a fresh audit.log
 * whose first record, "log-rotated", continues the chain. */
static int rotate_files(struct audit_log *log, char **ret_previous)
{
	_cleanup_free_ char *previous = NULL;
	int fd, r;

	if (fdatasync(log->fd) < 0)
		return -errno;
	for (unsigned i = log->options.keep + 1; i <= log->options.keep + ROTATE_SWEEP_MAX; i++) {
		_cleanup_free_ char *name = NULL;

		r = rotated_name(log, i, &name);
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

		if (rotated_name(log, i - 1, &from) < 0 || rotated_name(log, i, &to) < 0)
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
		r = rotated_name(log, 1, &previous);
		if (r < 0)
			return r;
		if (renameat(log->log_dir_fd, log->base, log->log_dir_fd, previous) < 0)
			return -errno;
	}
	fd = openat(log->log_dir_fd, log->base,
		    O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0640);
	if (fd < 0)
		return -errno;
	close(log->fd);
	log->fd = fd;
	log->size = 0;
	if (fsync(log->log_dir_fd) < 0)
		return -errno;
	*ret_previous = TAKE_PTR(previous);
	return 0;
}

static int rotate(struct audit_log *log)
{
	_cleanup_(json_decrefp) json_t *fields = NULL;
	_cleanup_free_ char *previous = NULL;
	int r;

	r = rotate_files(log, &previous);
	if (r < 0) {
		/* Which names point where is now uncertain: stop writing. The
		 * next open sorts it out from what is on disk. */
		log->broken = r;
		return r;
	}
	fields = json_pack("{s:s}", "previous", previous);
	if (!fields)
		return -ENOMEM;
	return emit(log, AUDIT_TYPE_ROTATED, fields, true, false, NULL, NULL);
}

static bool type_reserved(const char *type)
{
	return streq(type, AUDIT_TYPE_SEAL) || streq(type, AUDIT_TYPE_ROTATED) ||
	       streq(type, AUDIT_TYPE_UNCLEAN) || streq(type, "torn-record");
}

int audit_log_append(struct audit_log *log, const char *type, json_t *fields, bool sync,
		     uint64_t *ret_seq, char **ret_line)
{
	if (!log || !audit_type_valid(type) || type_reserved(type))
		return -EINVAL;
	if (fields && !json_is_object(fields))
		return -EINVAL;
	return emit(log, type, fields, sync, true, ret_seq, ret_line);
}

/* Moves the in-memory and on-disk key to the next epoch after the seal
 * (seq, mac) of the current one, and erases the old key. */
static int evolve_after_seal(struct audit_log *log, uint64_t seal_seq, const char *seal_mac)
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

int audit_log_seal(struct audit_log *log)
{
	_cleanup_(json_decrefp) json_t *fields = NULL;
	uint64_t seq;
	int r;

	if (!log)
		return -EINVAL;
	if (log->broken)
		return log->broken;
	/* Records of this epoch before the seal: the epoch began right after
	 * the previous seal (seq 0 before the first one). */
	fields = json_pack("{s:I,s:I}", "epoch", (json_int_t)log->key.epoch, "records",
			   (json_int_t)(log->last_seq - log->key.seal_seq));
	if (!fields)
		return -ENOMEM;
	/* A seal never starts a new file (it may overshoot max_bytes by its
	 * own size): "agent-stop" then "seal" stay adjacent, which is how the
	 * next open recognises a clean stop. */
	r = emit(log, AUDIT_TYPE_SEAL, fields, true, false, &seq, NULL);
	if (r < 0)
		return r;
	r = evolve_after_seal(log, seq, log->prev);
	if (r < 0) {
		/* The seal is on disk, the old key is still in audit.key: the
		 * next open finishes the evolution. Write nothing more now. */
		log->broken = r;
		return r;
	}
	return 0;
}

/* Checks the last record of the previous run against the key state. */
static int check_last(struct audit_log *log, const struct tail *t, struct audit_record *ret_rec,
		      char **ret_before_type)
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
			const struct tail *t)
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
			r = emit(log, AUDIT_TYPE_UNCLEAN, fields, true, true, NULL, NULL);
		} else {
			_cleanup_(json_decrefp) json_t *part =
			    json_pack("{s:I,s:s}", "offset", (json_int_t)done, "torn_base64", b64);

			if (!part)
				return -ENOMEM;
			r = emit(log, "torn-record", part, true, true, NULL, NULL);
		}
		if (r < 0)
			return r;
		done += n;
	}
	if (t->torn_len == 0)
		return emit(log, AUDIT_TYPE_UNCLEAN, fields, true, true, NULL, NULL);
	return 0;
}

/* Picks up the chain from what the previous run left, repairs a torn tail
 * and records an unclean restart. */
static int recover(struct audit_log *log, struct audit_open_report *report)
{
	_cleanup_(audit_record_done) struct audit_record last = {};
	_cleanup_free_ char *rotated = NULL, *before_type = NULL;
	struct tail t = {}, rt = {};
	const struct tail *src = &t;
	const char *reason = NULL;
	int r;

	r = read_tail(log->fd, &t);
	if (r < 0)
		return r;
	log->size = t.size;
	if (t.torn_len > 0) {
		if (ftruncate(log->fd, (off_t)(t.size - t.torn_len)) < 0 || fsync(log->fd) < 0) {
			r = -errno;
			goto out;
		}
		log->size = t.size - t.torn_len;
		report->torn_bytes = t.torn_len;
		reason = "torn-record";
	}
	if (!t.last) {
		/* An empty log next to audit.log.1: a rotation was cut short. */
		_cleanup_close_ int fd1 = -1;

		r = rotated_name(log, 1, &rotated);
		if (r < 0)
			goto out;
		fd1 =
		    openat(log->log_dir_fd, rotated, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
		if (fd1 >= 0) {
			r = read_tail(fd1, &rt);
			if (r < 0)
				goto out;
			if (rt.torn_len > 0) {
				r = -EBADMSG;
				goto out;
			}
			if (rt.last)
				src = &rt;
		}
	}

	if (src->last) {
		r = check_last(log, src, &last, &before_type);
		if (r < 0)
			goto out;
		log->last_seq = last.seq;
		memcpy(log->prev, last.mac, sizeof(log->prev));
		if (!reason && !streq(last.type, AUDIT_TYPE_STOP) &&
		    !(streq(last.type, AUDIT_TYPE_SEAL) && before_type &&
		      streq(before_type, AUDIT_TYPE_STOP)))
			reason = "no-agent-stop";
		if (streq(last.type, AUDIT_TYPE_SEAL) && last.epoch == log->key.epoch) {
			/* Crashed between writing a seal and saving the next key. */
			r = evolve_after_seal(log, last.seq, last.mac);
			if (r < 0)
				goto out;
		}
	} else {
		/* No record at all: continue from the last seal audit.key knows
		 * of (the chain start for a fresh key). */
		log->last_seq = log->key.seal_seq;
		memcpy(log->prev, log->key.seal_mac, sizeof(log->prev));
		if (!reason && (log->key.seal_seq > 0 || log->key.epoch > 0))
			reason = "log-missing";
	}

	if (src == &rt) {
		_cleanup_(json_decrefp) json_t *fields = json_pack("{s:s}", "previous", rotated);

		r = fields ? emit(log, AUDIT_TYPE_ROTATED, fields, true, false, NULL, NULL)
			   : -ENOMEM;
		if (r < 0)
			goto out;
	}
	if (reason) {
		r = emit_unclean(log, reason, src->last ? last.type : NULL, &t);
		if (r < 0)
			goto out;
		report->unclean_restart = true;
	}
	r = 0;
out:
	tail_done(&t);
	tail_done(&rt);
	return r;
}

static bool file_has_data(int dir_fd, const char *name)
{
	struct stat st;

	return fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_size > 0;
}

int audit_log_open(const char *log_path, const char *state_dir, const struct audit_options *options,
		   struct audit_log **ret_log, struct audit_open_report *ret_report)
{
	struct audit_open_report report = {};
	struct audit_log *log;
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
	log->fd = log->state_dir_fd = log->log_dir_fd = -1;
	if (options)
		log->options = *options;
	log->path = strdup(log_path);
	log->base = strdup(slash ? slash + 1 : log_path);
	if (!log->path || !log->base) {
		r = -ENOMEM;
		goto fail;
	}
	read_boot_id(log->boot_id, sizeof(log->boot_id));

	log->state_dir_fd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (log->state_dir_fd < 0) {
		r = -errno;
		goto fail;
	}
	if (flock(log->state_dir_fd, LOCK_EX | LOCK_NB) < 0) {
		r = errno == EWOULDBLOCK ? -EBUSY : -errno;
		goto fail;
	}
	log->log_dir_fd = audit_open_parent_dir(log_path);
	if (log->log_dir_fd < 0) {
		r = log->log_dir_fd;
		goto fail;
	}

	r = audit_key_state_load(log->state_dir_fd, &log->key);
	if (r == -ENOENT) {
		_cleanup_free_ char *rotated = NULL;

		/* Records without their key can never be continued. */
		r = rotated_name(log, 1, &rotated);
		if (r < 0)
			goto fail;
		if (file_has_data(log->log_dir_fd, log->base) ||
		    file_has_data(log->log_dir_fd, rotated)) {
			r = -ENOKEY;
			goto fail;
		}
		if (asprintf(&report.verify_key_path, "%s/%s", state_dir, AUDIT_VERIFY_KEY_FILE) <
		    0) {
			report.verify_key_path = NULL;
			r = -ENOMEM;
			goto fail;
		}
		r = audit_key_init(state_dir, report.verify_key_path);
		if (r < 0)
			goto fail;
		report.created_key = true;
		r = audit_key_state_load(log->state_dir_fd, &log->key);
	}
	if (r < 0)
		goto fail;

	log->fd = openat(log->log_dir_fd, log->base,
			 O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0640);
	if (log->fd < 0) {
		r = -errno;
		goto fail;
	}
	r = recover(log, &report);
	if (r < 0)
		goto fail;

	*ret_log = log;
	if (ret_report)
		*ret_report = report;
	else
		audit_open_report_done(&report);
	return 0;
fail:
	audit_open_report_done(&report);
	audit_log_close(log);
	return r;
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
