/* SPDX-License-Identifier: MIT */
/* audit-show as a control job (control.h). */
#include "control.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>

#include "audit.h"
#include "macro.h"

struct audit_show {
	char *log_path;
	unsigned keep;
	unsigned file;	   /* 0: the log, i: log.i ... */
	dev_t dev;	   /* ...the file it was when we were last there: a rotation */
	ino_t ino;	   /*    renames it, so it is found again by its inode */
	uint64_t offset;   /* in that file: the next line to read */
	uint64_t last_seq; /* the last record sent (or since) */
	size_t sent;
	bool follow;
	struct audit_show_stats *stats;
};

static void audit_show_free(void *data)
{
	struct audit_show *show = data;

	if (!show)
		return;
	free(show->log_path);
	free(show);
}

static int send_records(struct control_client *client, json_t *records, bool more,
			uint64_t next_since, bool truncated)
{
	_cleanup_(json_decrefp) json_t *message =
	    json_pack("{s:b, s:O, s:b, s:I, s:b}", "ok", 1, "records", records, "more", more,
		      "next_since", (json_int_t)next_since, "truncated", truncated);
	_cleanup_free_ char *text = message ? json_dumps(message, JSON_COMPACT) : NULL;

	if (!text)
		return -ENOMEM;
	return control_client_send(client, text);
}

/* The identity of file i; false when there is none. */
static bool file_id(const struct audit_show *show, unsigned i, dev_t *ret_dev, ino_t *ret_ino)
{
	_cleanup_free_ char *path = audit_file_name(show->log_path, i);
	struct stat st;

	if (!path || stat(path, &st) < 0)
		return false;
	*ret_dev = st.st_dev;
	*ret_ino = st.st_ino;
	return true;
}

static void remember_file(struct audit_show *show)
{
	if (!file_id(show, show->file, &show->dev, &show->ino))
		show->dev = show->ino = 0;
}

/* The log rotated since the last step: our file is now log.(i+k), found by
 * its inode among the kept files. When it is gone (rotated past what is
 * kept), go on from the start of the oldest kept file: the records in between
 * are lost to this reader, the seqs show the gap. */
static void follow_rotations(struct audit_show *show)
{
	unsigned oldest = 0;
	dev_t dev;
	ino_t ino;

	if (file_id(show, show->file, &dev, &ino) && dev == show->dev && ino == show->ino)
		return;
	for (unsigned i = 0; i <= show->keep; i++) {
		if (!file_id(show, i, &dev, &ino))
			break;
		oldest = i;
		if (dev == show->dev && ino == show->ino) {
			show->file = i;
			return;
		}
	}
	show->file = oldest;
	show->offset = 0;
	remember_file(show);
}

/* Reads lines of the current file from the offset into batch until the batch
 * is full or the file ends. Returns 1 at the end of the file. */
static int read_some(struct audit_show *show, json_t *batch, size_t *batch_bytes,
		     bool *ret_truncated)
{
	_cleanup_free_ char *path = audit_file_name(show->log_path, show->file);
	_cleanup_fclose_ FILE *f = NULL;
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;
	ssize_t len;

	if (!path)
		return -ENOMEM;
	f = fopen(path, "re");
	if (!f)
		return 1; /* rotated away or never there */
	if (fseeko(f, (off_t)show->offset, SEEK_SET) < 0)
		return 1;
	while (*batch_bytes < AUDIT_SHOW_BATCH_BYTES) {
		struct audit_record record;

		len = getline(&line, &cap, f);
		if (len <= 0 || line[len - 1] != '\n')
			return 1; /* the end, or a line still being written */
		show->offset += (uint64_t)len;
		show->stats->lines_read++;
		if (audit_record_parse(line, (size_t)len - 1, &record) < 0)
			continue;
		if (record.seq > show->last_seq) {
			json_array_append(batch, record.object);
			*batch_bytes += (size_t)len;
			show->last_seq = record.seq;
			show->sent++;
			show->stats->records_sent++;
		}
		audit_record_done(&record);
		if (show->sent >= AUDIT_SHOW_RECORDS_MAX) {
			*ret_truncated = true;
			return 0;
		}
	}
	return 0;
}

/* One batch per call: 0 for more, 1 when the last message is out. */
static int audit_show_step(struct control_client *client, void *data)
{
	struct audit_show *show = data;
	_cleanup_(json_decrefp) json_t *batch = json_array();
	size_t batch_bytes = 0;
	bool truncated = false;
	int r;

	if (!batch)
		return -ENOMEM;
	follow_rotations(show);
	for (;;) {
		r = read_some(show, batch, &batch_bytes, &truncated);
		if (r < 0)
			return r;
		if (truncated || r == 0)
			break;
		if (show->file == 0)
			break; /* the end of the log */
		show->file--;
		show->offset = 0;
		remember_file(show);
	}
	if (!truncated && (r == 0 || batch_bytes >= AUDIT_SHOW_BATCH_BYTES)) {
		r = send_records(client, batch, true, show->last_seq, false);
		return r < 0 ? r : 0;
	}
	/* Done: the end of the log (nothing is appended while this runs, so a
	 * follower misses nothing), or the cap. */
	r = send_records(client, batch, show->follow && !truncated, show->last_seq, truncated);
	if (r < 0)
		return r;
	if (show->follow && !truncated)
		control_client_follow(client);
	return 1;
}

int audit_show_start(struct control_client *client, const struct audit_log *log,
		     const char *log_path, unsigned keep, uint64_t since, bool follow,
		     struct audit_show_stats *stats)
{
	struct audit_show *show;
	int r;

	stats->requests++;
	/* Nothing newer: no file is touched. */
	if (since >= audit_log_last_seq(log)) {
		_cleanup_(json_decrefp) json_t *empty = json_array();

		if (!empty)
			return -ENOMEM;
		r = send_records(client, empty, follow, since, false);
		if (r < 0)
			return r;
		if (follow)
			control_client_follow(client);
		return 0;
	}
	show = calloc(1, sizeof(*show));
	if (!show)
		return -ENOMEM;
	*show = (struct audit_show){
	    .log_path = strdup(log_path),
	    .keep = keep,
	    .last_seq = since,
	    .follow = follow,
	    .stats = stats,
	};
	if (!show->log_path) {
		audit_show_free(show);
		return -ENOMEM;
	}
	r = audit_seek(log_path, keep, since, &show->file, &show->offset);
	if (r < 0) {
		audit_show_free(show);
		return r;
	}
	remember_file(show);
	return control_client_start_job(client, audit_show_step, audit_show_free, show);
}
