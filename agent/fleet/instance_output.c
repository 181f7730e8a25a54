/* SPDX-License-Identifier: MIT */
#include "fleet_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include <systemd/sd-journal.h>

#include "log.h"
#include "macro.h"
#include "policy.h"
#include "clock.h"

/* At most this much is read per wakeup, so a chatty instance shares the loop
 * with everything else; the pipe holds the rest (and then blocks the writer). */
#define READ_BUDGET (16u * 1024)

struct instance_output {
	sd_event_source *io;
	char identifier[POLICY_NAME_MAX + 8]; /* "mtd-" SERVICE */
	char service[POLICY_NAME_MAX + 1];
	char instance[64];
	char line[INSTANCE_OUTPUT_LINE_MAX];
	size_t line_len;
	bool line_cut; /* the line being read was longer than line[] */
	double tokens; /* lines it may still log now */
	uint64_t refilled_usec;
	uint64_t lines, suppressed, suppressed_reported;
};

size_t instance_output_escape(const char *line, size_t len, char *buffer, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];

		if (c >= 0x20 && c < 0x7f && c != '\\') {
			if (n + 1 >= size)
				break;
			buffer[n++] = (char)c;
		} else {
			if (n + 4 >= size)
				break;
			buffer[n++] = '\\';
			buffer[n++] = 'x';
			buffer[n++] = hex[c >> 4];
			buffer[n++] = hex[c & 15];
		}
	}
	buffer[n] = '\0';
	return n;
}

static void emit(struct instance_output *o, int priority, const char *text)
{
	sd_journal_send("MESSAGE=%s", text, "PRIORITY=%d", priority, "SYSLOG_IDENTIFIER=%s",
			o->identifier, "MTD_SERVICE=%s", o->service, "MTD_INSTANCE=%s", o->instance,
			NULL);
	/* Outside systemd (a terminal, a test) the agent's stderr shows it,
	 * prefixed, so no line of an instance passes for one of the agent's. */
	if (!log_stderr_is_journal())
		fprintf(stderr, "%s[%s]: %s\n", o->identifier, o->instance, text);
}

static bool take_token(struct instance_output *o)
{
	uint64_t now_usec = now(CLOCK_MONOTONIC);

	o->tokens += (double)(now_usec - o->refilled_usec) * INSTANCE_OUTPUT_LINES_PER_SEC / 1e6;
	if (o->tokens > INSTANCE_OUTPUT_BURST)
		o->tokens = INSTANCE_OUTPUT_BURST;
	o->refilled_usec = now_usec;
	if (o->tokens < 1)
		return false;
	o->tokens -= 1;
	return true;
}

static void report_suppressed(struct instance_output *o)
{
	char text[96];

	if (o->suppressed == o->suppressed_reported)
		return;
	snprintf(text, sizeof(text), "%llu line(s) of output suppressed (more than %u a second)",
		 (unsigned long long)(o->suppressed - o->suppressed_reported),
		 INSTANCE_OUTPUT_LINES_PER_SEC);
	o->suppressed_reported = o->suppressed;
	emit(o, LOG_WARNING, text);
}

static void flush_line(struct instance_output *o)
{
	char text[INSTANCE_OUTPUT_LINE_MAX * 4 + 16];
	size_t n;

	if (!take_token(o)) {
		o->suppressed++;
	} else {
		/* The report of what was dropped takes no token of its own. */
		report_suppressed(o);
		n = instance_output_escape(o->line, o->line_len, text, sizeof(text) - 8);
		if (o->line_cut)
			memcpy(text + n, " [cut]", 7);
		o->lines++;
		emit(o, LOG_INFO, text);
	}
	o->line_len = 0;
	o->line_cut = false;
}

static void take_bytes(struct instance_output *o, const char *data, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (data[i] == '\n') {
			flush_line(o);
		} else if (o->line_len < sizeof(o->line)) {
			o->line[o->line_len++] = data[i];
		} else {
			o->line_cut = true;
		}
	}
}

static int on_output(sd_event_source *source, int fd, uint32_t revents, void *userdata)
{
	struct instance_output *o = userdata;
	char buffer[4096];
	size_t budget = READ_BUDGET;

	while (budget > 0) {
		ssize_t n = read(fd, buffer, sizeof(buffer) < budget ? sizeof(buffer) : budget);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n <= 0) {
			/* Every writer is gone: the instance and its children. */
			if (o->line_len > 0)
				flush_line(o);
			report_suppressed(o);
			return sd_event_source_set_enabled(source, SD_EVENT_OFF);
		}
		take_bytes(o, buffer, (size_t)n);
		budget -= (size_t)n;
	}
	return 0;
}

int instance_output_new(sd_event *event, const char *service, const char *instance_id,
			int *ret_write_fd, struct instance_output **ret_output)
{
	_cleanup_free_ struct instance_output *o = calloc(1, sizeof(*o));
	int fds[2], r;

	if (!o)
		return -ENOMEM;
	snprintf(o->identifier, sizeof(o->identifier), "mtd-%s", service);
	snprintf(o->service, sizeof(o->service), "%s", service);
	snprintf(o->instance, sizeof(o->instance), "%s", instance_id);
	o->tokens = INSTANCE_OUTPUT_BURST;
	o->refilled_usec = now(CLOCK_MONOTONIC);
	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	if (fcntl(fds[0], F_SETFL, O_NONBLOCK) < 0) {
		r = -errno;
		close(fds[0]);
		close(fds[1]);
		return r;
	}
	r = sd_event_add_io(event, &o->io, fds[0], EPOLLIN, on_output, o);
	if (r < 0) {
		close(fds[0]);
		close(fds[1]);
		return r;
	}
	(void)sd_event_source_set_io_fd_own(o->io, true);
	/* Below the control socket, the rotation timers and the signals. */
	(void)sd_event_source_set_priority(o->io, SD_EVENT_PRIORITY_IDLE);
	(void)sd_event_source_set_description(o->io, "instance-output");
	*ret_write_fd = fds[1];
	*ret_output = TAKE_PTR(o);
	return 0;
}

void instance_output_free(struct instance_output *output)
{
	if (!output)
		return;
	/* What the instance wrote before it died, within one budget. */
	if (sd_event_source_get_enabled(output->io, NULL) > 0)
		(void)on_output(output->io, sd_event_source_get_io_fd(output->io), EPOLLIN, output);
	if (output->line_len > 0)
		flush_line(output);
	report_suppressed(output);
	sd_event_source_disable_unref(output->io);
	free(output);
}

void instance_output_counts(const struct instance_output *output, uint64_t *ret_lines,
			    uint64_t *ret_suppressed)
{
	*ret_lines = output->lines;
	*ret_suppressed = output->suppressed;
}
