/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "macro.h"

/* mtdctl: shared bits of the CLI's files. They call one way only:
 *   mtdctl.c           the command table, dispatch, usage, main
 *   mtdctl_agent.c     commands that ask the agent (control socket)
 *   mtdctl_offline.c   policy check, audit init, audit verify
 *   mtdctl_plan.c      policy check --plan: what a policy set would do
 *   mtdctl_schedule.c  port, connect
 *   mtdctl_snapshot.c  keygen, snapshot create/verify
 *   mtdctl_client.c    client add/list/revoke (ClientKeys= and profiles)
 *   mtdctl_common.c    messages, exit codes, time parsing and formats */

/* Exit codes: 0 ok, 1 the operation failed, 2 usage. */
#define EXIT_USAGE 2

struct mtdctl {
	const char *socket_path;
	bool json;
};

/* --- mtdctl_common.c --------------------------------------------------------- */

/* Print "mtdctl: ..." on stderr; returns EXIT_FAILURE for `return fail(...)`. */
_printf_(1, 2) int mtdctl_fail(const char *fmt, ...);
_printf_(1, 2) int mtdctl_usage_error(const char *fmt, ...);

/* "1h 2min 3s", "250ms" */
void mtdctl_format_usec(uint64_t usec, char *buffer, size_t size);

/* --at TIME: "@UNIX", "UNIX" (seconds), or "YYYY-MM-DD[T ]HH:MM:SS[Z]" in
 * UTC; -EINVAL otherwise. */
int mtdctl_parse_time(const char *s, uint64_t *ret_usec);

/* "2026-12-07 14:48:11 UTC" ("?" if it cannot be rendered). */
void mtdctl_format_utc(uint64_t usec, char *buffer, size_t size);

/* --- the commands, each a row of mtdctl.c's table: argv[0] is the command's
 * last word ("show" of "policy show"), its arguments follow ---------------- */

/* mtdctl_agent.c */
int mtdctl_status(const struct mtdctl *ctl, int argc, char **argv);
int mtdctl_metrics(const struct mtdctl *ctl, int argc, char **argv);
int mtdctl_reload(const struct mtdctl *ctl, int argc, char **argv);
int mtdctl_instances(const struct mtdctl *ctl, int argc, char **argv);
int mtdctl_policy_list(const struct mtdctl *ctl, int argc, char **argv);
int mtdctl_policy_show(const struct mtdctl *ctl, int argc, char **argv);
int mtdctl_unblock(const struct mtdctl *ctl, int argc, char **argv);
int mtdctl_quarantine(const struct mtdctl *ctl, int argc, char **argv);
int mtdctl_replace(const struct mtdctl *ctl, int argc, char **argv);
int mtdctl_release(const struct mtdctl *ctl, int argc, char **argv);
int mtdctl_inspect(const struct mtdctl *ctl, int argc, char **argv);
int mtdctl_audit_show(const struct mtdctl *ctl, int argc, char **argv);

/* mtdctl_offline.c */
int mtdctl_policy_check(const struct mtdctl *ctl, int argc, char **argv);
int mtdctl_audit_init(const struct mtdctl *ctl, int argc, char **argv);
int mtdctl_audit_verify(const struct mtdctl *ctl, int argc, char **argv);
/* audit verify --journal (mtdctl_audit_shipped.c) */
int mtdctl_audit_verify_journal(const struct mtdctl *ctl, const uint8_t key[32],
				const char *journal, const char *machine, const char *const *logs,
				size_t n_logs);

/* mtdctl_plan.c: called by mtdctl_policy_check() with a set and a global file
 * that loaded; prints each service's ports now and at its next boundary at
 * at_usec, its decoys and the sources they never block, envelope and limits.
 * Returns an exit code. */
struct policy_set;
struct policy_globals;
int mtdctl_policy_plan(const struct mtdctl *ctl, const struct policy_set *set,
		       const struct policy_globals *globals, uint64_t at_usec);

/* mtdctl_schedule.c */
int mtdctl_port(const struct mtdctl *ctl, int argc, char **argv);
int mtdctl_connect(const struct mtdctl *ctl, int argc, char **argv);

/* mtdctl_client.c */
int mtdctl_client_add(const struct mtdctl *ctl, int argc, char **argv);
int mtdctl_client_list(const struct mtdctl *ctl, int argc, char **argv);
int mtdctl_client_revoke(const struct mtdctl *ctl, int argc, char **argv);

/* mtdctl_snapshot.c */
int mtdctl_keygen(const struct mtdctl *ctl, int argc, char **argv);
int mtdctl_snapshot_create(const struct mtdctl *ctl, int argc, char **argv);
int mtdctl_snapshot_verify(const struct mtdctl *ctl, int argc, char **argv);
