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

void log_audit_event(const char *type, uint64_t seq, json_t *fields, const char *record_line)
{
	const char *service = NULL, *instance = NULL;
	_cleanup_free_ char *message = NULL, *id = NULL, *event = NULL, *seq_field = NULL,
			    *service_field = NULL, *instance_field = NULL, *record = NULL;
	struct iovec iov[9];
	size_t n = 0;

	if (json_is_object(fields)) {
		service = json_string_value(json_object_get(fields, "service"));
		instance = json_string_value(json_object_get(fields, "instance"));
	}
	if (asprintf(&message, "MESSAGE=audit #%llu: %s%s%s%s", (unsigned long long)seq, type,
		     service ? " (service " : "", service ? service : "", service ? ")" : "") < 0)
		return;
	if (asprintf(&id, "MESSAGE_ID=%s", log_message_id(type)) < 0 ||
	    asprintf(&event, "MTD_EVENT=%s", type) < 0 ||
	    asprintf(&seq_field, "MTD_SEQ=%llu", (unsigned long long)seq) < 0 ||
	    asprintf(&record, "MTD_RECORD=%s", record_line ? record_line : "") < 0)
		return;
	if (service && asprintf(&service_field, "MTD_SERVICE=%s", service) < 0)
		return;
	if (instance && asprintf(&instance_field, "MTD_INSTANCE=%s", instance) < 0)
		return;

#define IOV_STRING(s) ((struct iovec){.iov_base = (s), .iov_len = strlen(s)})
	iov[n++] = IOV_STRING(message);
	iov[n++] = IOV_STRING(id);
	iov[n++] = IOV_STRING((char *)"PRIORITY=5");
	iov[n++] = IOV_STRING((char *)"SYSLOG_IDENTIFIER=mtd-agent");
	iov[n++] = IOV_STRING(event);
	iov[n++] = IOV_STRING(seq_field);
	iov[n++] = IOV_STRING(record);
	if (service_field)
		iov[n++] = IOV_STRING(service_field);
	if (instance_field)
		iov[n++] = IOV_STRING(instance_field);
#undef IOV_STRING
	sd_journal_sendv(iov, (int)n);
	if (!log_stderr_is_journal())
		fprintf(stderr, "mtd-agent: %s\n", message + strlen("MESSAGE="));
}
