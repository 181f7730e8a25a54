/* SPDX-License-Identifier: MIT */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Private to agent/quarantine/. Its files call one way only, each the files
 * below it:
 *   quarantine_job.c       a save in a child process, for the daemon
 *   quarantine.c           save, cap, list, remove
 *   quarantine_summary.c   SUMMARY.json
 *   quarantine_manifest.c  the upper copy, MANIFEST, verification, inspect
 *   quarantine_store.c     the store directory, ids, bounded file helpers */

#define QUARANTINE_MAX_DEPTH 256	/* directories below upper/ */
#define QUARANTINE_JSON_MAX (64u << 20) /* metadata.json, processes.json read back */
#define QUARANTINE_CMDLINE_MAX 65536
#define QUARANTINE_MANIFEST_MAX (256u << 20)
/* A manifest line without its path: "f 0755 4294967295 4294967295
 * 18446744073709551615 <64 hex> truncated=18446744073709551615 \n" */
#define QUARANTINE_LINE_FIXED 160

struct quarantine_line {
	char *text;	  /* the whole line with '\n' */
	const char *path; /* inside text: the escaped path */
};

/* The upper copy in progress and the manifest lines gathered. */
struct quarantine_copy {
	uint64_t budget; /* bytes the upper copy may use (content + manifest lines) */
	uint64_t used;
	uint64_t saved;	  /* content bytes copied */
	uint64_t found;	  /* content bytes of the instance's regular files seen */
	uint64_t entries; /* manifest entries under upper/ */
	uint64_t files;
	bool truncated;
	struct quarantine_line *lines;
	size_t n_lines;
	char error_path[256];
};

/* --- quarantine_store.c ------------------------------------------------------ */

/* STATE_DIR/quarantine, created (0700) when missing. */
int quarantine_open_store(const char *state_dir, bool create);
int quarantine_rm_rf_at(int at, const char *name, unsigned depth);
/* A regular file below at (O_NOFOLLOW), at most max bytes, NUL-terminated. */
int quarantine_read_at(int at, const char *name, size_t max, char **ret, size_t *ret_size);
int quarantine_load_json_at(int at, const char *name, json_t **ret);
/* Sum of the sizes of the regular files below the directory fd. */
int quarantine_tree_bytes(int fd, uint64_t *ret);

/* --- quarantine_manifest.c --------------------------------------------------- */

int quarantine_manifest_begin(struct quarantine_copy *c);
/* upper/ of the writable layer into entry/upper, within c->budget. */
int quarantine_copy_upper(struct quarantine_copy *c, int upper_fd, int entry);
/* entry/name (0600) with text, and its manifest line. */
int quarantine_write_file(struct quarantine_copy *c, int entry, const char *name, const char *text);
/* entry/MANIFEST (sorted lines), its SHA-256 in hex. */
int quarantine_manifest_finish(struct quarantine_copy *c, int entry, char ret_sha256[65]);
void quarantine_copy_done(struct quarantine_copy *c);
/* entry/SUMMARY.json (0400): the manifest's hash and totals (quarantine_summary.c). */
int quarantine_summary_write(const struct quarantine_copy *c, int entry, const char sha256[65]);
#define QUARANTINE_SUMMARY_MAX 512 /* bytes SUMMARY.json takes at most */
