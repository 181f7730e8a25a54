/* SPDX-License-Identifier: MIT */
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
#pragma once

#include <systemd/sd-event.h>

#include "quarantine.h"

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
