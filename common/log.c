/* SPDX-License-Identifier: MIT */
#include "log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>

/* Stable ids so `journalctl MESSAGE_ID=...` finds one kind of event across
 * versions. Random 128-bit ids, made once; never change them. */
static const struct {
	const char *type;
	const char *id;
} message_ids[] = {
    {"agent-start", "b2a579350e7e425a8546d672a951823b"},
    {"agent-stop", "b629229494f6495da9a2003c15d8548d"},
    {"unclean-restart", "683e132f1e364c468bab39df1466ded5"},
    {"seal", "d14d1fbc6e0f4a90bd9855c21c811ffa"},
    {"log-rotated", "f491efe3577f4ae38127de7c7049fefd"},
    {"policy-reload", "0ffe0f966e9345dca773029035739ad5"},
    {"policy-reload-failed", "b140a89e45104afbbb4e61e886df844f"},
    {"control-request", "c3251ca5c7b34ed4a9237939d59009d8"},
    {"control-denied", "fd3a29466f8f424e9338d975269efd9e"},
};

static const char fallback_message_id[] = "bef2896bc7ed4590a246fb3c9ac62b6c";

const char *log_message_id(const char *type)
{
	for (size_t i = 0; i < ELEMENTSOF(message_ids); i++)
		if (streq(message_ids[i].type, type))
			return message_ids[i].id;
	return fallback_message_id;
}

/* systemd sets JOURNAL_STREAM when stderr is connected to the journal; then
 * printing would log everything twice. */
bool log_stderr_is_journal(void)
{
	return getenv("JOURNAL_STREAM") != NULL;
}

void log_message(int priority, const char *fmt, ...)
{
	char text[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);

	sd_journal_send("MESSAGE=%s", text, "PRIORITY=%d", priority, "SYSLOG_IDENTIFIER=mtd-agent",
			NULL);
	if (!log_stderr_is_journal())
		fprintf(stderr, "mtd-agent: %s\n", text);
}

/* The journal gets its copy of the record from the audit log itself
 * (agent/audit/audit_journal.c, with every field a collector verifies);
 * here only the line for a terminal. */
void log_audit_event(const char *type, uint64_t seq, json_t *fields)
{
	const char *service = NULL;

	if (log_stderr_is_journal())
		return;
	if (json_is_object(fields))
		service = json_string_value(json_object_get(fields, "service"));
	fprintf(stderr, "mtd-agent: audit #%llu: %s%s%s%s\n", (unsigned long long)seq, type,
		service ? " (service " : "", service ? service : "", service ? ")" : "");
}
