/* SPDX-License-Identifier: MIT */
/* Files that hold secrets (KeyFile=, audit.key, snapshot signing keys): who
 * may own them and who may read them. */
#pragma once

#include <stdio.h>
#include <sys/stat.h>

/* Why a file with this status may not hold a secret, or NULL if it may. A
 * secret is a regular file owned by root or by the reading process's
 * effective uid, with no permission bits for group or others. Callers check
 * the status of the descriptor they read from (fstat), so a file swapped in
 * after the check is never the one read. */
const char *secret_file_refusal(const struct stat *st);

/* "owner uid 1000, mode 0644": the facts behind a refusal, for the one-line
 * error the caller prints. */
void secret_file_describe(const struct stat *st, char *buffer, size_t size);
