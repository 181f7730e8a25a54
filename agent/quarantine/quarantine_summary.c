/* SPDX-License-Identifier: MIT */
/* ID/SUMMARY.json: the totals quarantine_save() computed for an entry (the
 * MANIFEST's hash, entries, files, bytes), kept beside MANIFEST so that
 * `inspect` serves them without reading the evidence again — a request costs
 * the few small files it returns, not QuarantineMax= of hashing. Like
 * MANIFEST it is not listed in MANIFEST; its hash is also in the
 * instance-quarantined audit record. quarantine_inspect() still checks
 * every file on demand. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "macro.h"
#include "quarantine.h"
#include "quarantine_internal.h"

#define SUMMARY_FILE "SUMMARY.json"

/* A manifest line: "TYPE MODE UID GID SIZE SHA256 FLAGS PATH\n". */
static uint64_t line_size(const char *text)
{
	const char *p = text;

	for (int field = 0; field < 4 && p; field++) {
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	return p ? strtoull(p, NULL, 10) : 0;
}

int quarantine_summary_write(const struct quarantine_copy *c, int entry, const char sha256[65])
{
	_cleanup_(json_decrefp) json_t *o = NULL;
	_cleanup_free_ char *text = NULL;
	_cleanup_close_ int fd = -1;
	uint64_t files = 0, bytes = 0;
	size_t len, done = 0;

	for (size_t i = 0; i < c->n_lines; i++)
		if (c->lines[i].text[0] == 'f') {
			files++;
			bytes += line_size(c->lines[i].text);
		}
	o = json_pack("{s:i, s:{s:s, s:I, s:I, s:I}}", "format", 1, "manifest", "sha256", sha256,
		      "entries", (json_int_t)c->n_lines, "files", (json_int_t)files, "bytes",
		      (json_int_t)bytes);
	text = o ? json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
	if (!text)
		return -ENOMEM;
	fd =
	    openat(entry, SUMMARY_FILE, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400);
	if (fd < 0)
		return -errno;
	len = strlen(text);
	while (done < len) {
		ssize_t n = write(fd, text + done, len - done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		done += (size_t)n;
	}
	return 0;
}

int quarantine_summary(const char *state_dir, const char *id, json_t **ret)
{
	_cleanup_close_ int store = -1, entry = -1;
	json_t *meta = NULL, *procs = NULL, *summary = NULL, *problems = json_array(), *manifest,
	       *o;

	if (!problems)
		return -ENOMEM;
	if (!quarantine_id_valid(id)) {
		json_decref(problems);
		return -EINVAL;
	}
	store = quarantine_open_store(state_dir, false);
	if (store >= 0)
		entry = openat(store, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (store < 0 || entry < 0) {
		json_decref(problems);
		return store < 0 ? store : -errno;
	}
	if (quarantine_load_json_at(entry, "metadata.json", &meta) < 0)
		json_array_append_new(problems, json_string("metadata.json: unreadable"));
	if (quarantine_load_json_at(entry, "processes.json", &procs) < 0)
		json_array_append_new(problems, json_string("processes.json: unreadable"));
	if (quarantine_load_json_at(entry, SUMMARY_FILE, &summary) < 0 ||
	    !json_is_object(json_object_get(summary, "manifest")))
		json_array_append_new(problems, json_string(SUMMARY_FILE
							    ": missing or unreadable (an entry of "
							    "an older agent?): inspect --verify "
							    "checks the evidence"));
	manifest = json_object_get(summary, "manifest");
	o = json_pack("{s:s, s:o, s:o, s:O, s:s, s:o}", "id", id, "metadata",
		      meta ? meta : json_null(), "processes", procs ? procs : json_null(),
		      "manifest", json_is_object(manifest) ? manifest : json_null(), "checked",
		      "when quarantined (inspect --verify checks every file now)", "problems",
		      problems);
	json_decref(summary);
	if (!o)
		return -ENOMEM;
	*ret = o;
	return 0;
}
