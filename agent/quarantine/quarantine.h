/* SPDX-License-Identifier: MIT */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

/* The forensic evidence store: STATE_DIR/quarantine/ID/ for each quarantined
 * instance (layout, manifest format and the cap: docs/quarantine.md).
 *
 *   ID/upper/         what the instance wrote: files (mode 0600 here, the
 *                     original mode in the manifest), directories, symlinks;
 *                     whiteouts and special files only in the manifest
 *   ID/processes.json every process of the instance's cgroup tree
 *   ID/metadata.json  the record: id, service, reason, evidence, times, ...
 *   ID/MANIFEST       type, mode, owner, size and SHA-256 of every entry
 *
 * An entry is built in ID.tmp and renamed to ID, so ID/ is always complete.
 * Nothing here follows a symlink of the instance's tree or of the store. The
 * instance must be frozen (cgroup.freeze) while quarantine_save() reads it. */

#define QUARANTINE_ID_MAX 48 /* [a-z0-9][a-z0-9_-]{0,47} */

struct quarantine_record {
	const char *id;		      /* instance id (quarantine_id_valid) */
	const char *service;	      /* service name (same alphabet) */
	const char *reason;	      /* "seccomp violation", "drift", "manual", ... */
	json_t *evidence;	      /* object or NULL; borrowed */
	uint64_t started_usec;	      /* CLOCK_REALTIME, 0 = unknown */
	uint64_t quarantined_usec;    /* CLOCK_REALTIME, 0 = now */
	const char *const *addresses; /* the instance's addresses, as text */
	size_t n_addresses;
	pid_t pid; /* pid 1 of the instance, in the agent's pid namespace */
};

struct quarantine_result {
	uint64_t bytes;		  /* size of the new entry (sum of its files) */
	bool truncated;		  /* the upper copy stopped at the cap */
	bool over_cap;		  /* the entry alone is larger than the cap */
	char manifest_sha256[65]; /* hex SHA-256 of ID/MANIFEST: audit it */
	char **evicted;		  /* ids removed to make room, oldest first; NULL-terminated */
	size_t n_evicted;
};

void quarantine_result_done(struct quarantine_result *r);

/* [a-z0-9][a-z0-9_-]{0,47} */
bool quarantine_id_valid(const char *id);

/* Save the evidence of one instance: its writable layer from upper_fd (the
 * tmpfs of envelope_upper_fd(), its upper/ directory), the processes of
 * cgroup_path (absolute cgroup2 directory), the record. max_bytes caps the
 * total of the service's entries (QuarantineMax=; 0 = no cap): older entries
 * of the service are evicted (reported in ret), the upper copy is truncated
 * when the new entry alone would exceed it. -EEXIST when ID is there already.
 * On failure nothing of the new entry remains and *ret_error (malloc'd) says
 * what failed. */
int quarantine_save(const char *state_dir, const struct quarantine_record *rec, int upper_fd,
		    const char *cgroup_path, uint64_t max_bytes, struct quarantine_result *ret,
		    char **ret_error);

/* [{id, service, reason, quarantined_usec, bytes, truncated}, ...] oldest first. */
int quarantine_list(const char *state_dir, json_t **ret);

/* {id, metadata, processes, manifest: {sha256, entries, files, bytes},
 *  verified, problems: ["upper/x: content differs", ...]} */
int quarantine_inspect(const char *state_dir, const char *id, json_t **ret);

/* What quarantine_save() computed, served without reading the evidence:
 * {id, metadata, processes, manifest: {sha256, entries, files, bytes},
 *  checked, problems: [...]} (problems: a file of the entry unreadable). */
int quarantine_summary(const char *state_dir, const char *id, json_t **ret);

/* Remove what saves interrupted by the agent's death left (ID.tmp/: never
 * renamed into place, so never listed); *ret_removed is the array of their
 * ids (empty when none). */
int quarantine_remove_interrupted(const char *state_dir, json_t **ret_removed);

/* Remove ID.tmp/, what a save of ID that did not finish wrote (a save
 * process killed, quarantine.h). -ENOENT when there is none. */
int quarantine_discard_partial(const char *state_dir, const char *id);

/* Remove ID/ (no symlink followed). -ENOENT when there is none. */
int quarantine_remove(const char *state_dir, const char *id);

/* quarantine_save() off the agent's loop. An instance decides how long its
 * save takes (up to QuarantineMax= of files, hundreds of thousands of
 * entries): run on the loop, one save stalls the control socket and the
 * rotation boundaries for seconds. quarantine_job_start() forks a process
 * that runs the save at idle CPU and I/O priority and reports the result
 * over a pipe; the loop learns of its end through the child's pidfd and
 * calls done. The instance stays frozen meanwhile (its upper_fd and cgroup
 * must stay valid until done or cancel).
 *
 * When the process cannot be forked, the save runs in place (as before) and
 * done is still called from the loop, never from quarantine_job_start(). */

struct quarantine_job;

/* r and error as from quarantine_save() (error NULL when r == 0); res is
 * borrowed for the call. The job is gone when done returns. */
typedef void (*quarantine_job_done_fn)(int r, const struct quarantine_result *res,
				       const char *error, void *userdata);

/* rec, upper_fd and cgroup_path are read before this returns (the child has
 * its own copy); ret_job (may be NULL) is for quarantine_job_cancel(). */
int quarantine_job_start(sd_event *event, const char *state_dir,
			 const struct quarantine_record *rec, int upper_fd, const char *cgroup_path,
			 uint64_t max_bytes, quarantine_job_done_fn done, void *userdata,
			 struct quarantine_job **ret_job);

/* Kill the save and remove its half-written entry; done is not called. */
void quarantine_job_cancel(struct quarantine_job *job);
