/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "macro.h"

/* mtdctl: shared bits of the CLI's files (mtdctl.c talks to the agent,
 * mtdctl_offline.c works on files without it). */



/* Exit codes: 0 ok, 1 the operation failed, 2 usage. */
#define EXIT_USAGE 2

struct mtdctl {
	const char *socket_path;
	bool json;
};

/* Print "mtdctl: ..." on stderr; returns EXIT_FAILURE for `return fail(...)`. */
_printf_(1, 2) int mtdctl_fail(const char *fmt, ...);
_printf_(1, 2) int mtdctl_usage_error(const char *fmt, ...);

/* "1h 2min 3s", "250ms" */
void mtdctl_format_usec(uint64_t usec, char *buffer, size_t size);

int mtdctl_policy_check(const struct mtdctl *ctl, int argc, char **argv);
int mtdctl_audit_init(const struct mtdctl *ctl, int argc, char **argv);
int mtdctl_audit_verify(const struct mtdctl *ctl, int argc, char **argv);
int mtdctl_port(const struct mtdctl *ctl, int argc, char **argv);
int mtdctl_connect(const struct mtdctl *ctl, int argc, char **argv);
int mtdctl_keygen(const struct mtdctl *ctl, int argc, char **argv);
int mtdctl_snapshot(const struct mtdctl *ctl, int argc, char **argv);
