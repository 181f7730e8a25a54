/* SPDX-License-Identifier: MIT */
/* Finding a record in the audit log files without reading them through:
 * records are lines in seq order and every line starts right after a newline
 * (a record never holds one), so the first record after a seq is found by a
 * binary search over byte offsets, a few small reads per file. A reader then
 * costs what it returns, not the size of the log. */
#pragma once

#include <stdint.h>

/* Where the first record with seq > since is, in log_path (file 0) and its
 * rotated files log_path.1 … log_path.keep (file i): *ret_file and
 * *ret_offset. When since is older than every kept record, the start of the
 * oldest kept file; when no record is newer, the end of file 0. Returns 0, or
 * a negative errno when file 0 cannot be read. */
int audit_seek(const char *log_path, unsigned keep, uint64_t since, unsigned *ret_file,
	       uint64_t *ret_offset);

/* The name of file i (0: log_path itself); caller frees. NULL on ENOMEM. */
char *audit_file_name(const char *log_path, unsigned file);
