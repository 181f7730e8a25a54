/* SPDX-License-Identifier: MIT */
/* An instance's stdout and stderr: a pipe the agent reads on its loop and
 * hands to the journal line by line, under the instance's own identifier
 * (mtd-SERVICE) with MTD_SERVICE= and MTD_INSTANCE=, escaped and
 * rate-limited. The instance never writes to the agent's terminal or to the
 * agent's own journal stream. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

struct instance_output;

/* Lines per second an instance may log once its burst is spent; the rest are
 * counted and reported as one "N lines suppressed" line. */
#define INSTANCE_OUTPUT_LINES_PER_SEC 20
#define INSTANCE_OUTPUT_BURST 200
/* Longer lines are cut there (and marked). */
#define INSTANCE_OUTPUT_LINE_MAX 1024

/* Creates the pipe and watches its reading end. *ret_write_fd (close-on-exec)
 * is what the child gets as fds 1 and 2; the caller closes it once the child
 * has its copy. */
int instance_output_new(sd_event *event, const char *service, const char *instance_id,
			int *ret_write_fd, struct instance_output **ret_output);
void instance_output_free(struct instance_output *output);

/* Lines handed on and lines suppressed so far. */
void instance_output_counts(const struct instance_output *output, uint64_t *ret_lines,
			    uint64_t *ret_suppressed);

/* Escapes one line for a terminal and the journal: bytes outside 0x20..0x7e
 * and the backslash become \xHH. Returns the length written (< size). */
size_t instance_output_escape(const char *line, size_t len, char *buffer, size_t size);
