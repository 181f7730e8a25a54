/* SPDX-License-Identifier: MIT */
/* The daemon's log: the journal with structured fields (MESSAGE_ID per event
 * type, MTD_EVENT=, MTD_SERVICE=, MTD_INSTANCE=), and stderr as well when
 * stderr is not already the journal (a terminal, a test). */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <syslog.h>

#include "macro.h"

_printf_(2, 3) void log_message(int priority, const char *fmt, ...);

/* systemd's JOURNAL_STREAM: stderr is the journal already, so what goes to
 * the journal is not printed again. */
bool log_stderr_is_journal(void);

#define log_error(...) log_message(LOG_ERR, __VA_ARGS__)
#define log_warning(...) log_message(LOG_WARNING, __VA_ARGS__)
#define log_notice(...) log_message(LOG_NOTICE, __VA_ARGS__)
#define log_info(...) log_message(LOG_INFO, __VA_ARGS__)

/* "audit #SEQ: TYPE (service S)" on stderr when it is not the journal. The
 * journal's copy of each record comes from the audit log
 * (agent/audit/audit_journal.c). */
void log_audit_event(const char *type, uint64_t seq, json_t *fields);

/* The MESSAGE_ID (32 hex digits) of an audit event type. */
const char *log_message_id(const char *type);
