/* SPDX-License-Identifier: MIT */
/* A copy of every audit record for the journal, so that it leaves the host
 * (systemd-journal-upload to a systemd-journal-remote elsewhere) and can be
 * verified there, and compared with the local log, by `mtdctl audit verify
 * --journal`. Sent with journald's native protocol on a non-blocking
 * datagram socket: the log on disk stays the record of truth and nothing in
 * the agent's loop waits for journald; a copy journald cannot take now is
 * counted as dropped, and shows as a gap in the shipped sequence. See
 * docs/audit-log.md "Off the host". */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "audit_internal.h"
#include "log.h"
#include "macro.h"

int audit_journal_open(struct audit_journal *j, const char *socket_path)
{
	size_t len = strlen(socket_path);
	int sndbuf = 8 << 20;

	*j = (struct audit_journal){.fd = -1};
	if (len == 0 || len >= sizeof(j->addr.sun_path))
		return -ENAMETOOLONG;
	j->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (j->fd < 0)
		return -errno;
	/* Room for a burst of records while journald is busy; best effort
	 * (the kernel caps it at wmem_max). */
	(void)setsockopt(j->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	j->addr.sun_family = AF_UNIX;
	memcpy(j->addr.sun_path, socket_path, len + 1);
	j->addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
	return 0;
}

void audit_journal_close(struct audit_journal *j)
{
	if (j->fd >= 0)
		close(j->fd);
	j->fd = -1;
}

/* "NAME=value\n" into buf at *at; false when it does not fit. The values are
 * single-line: a record line holds only bytes 0x20-0x7e (the JSON escapes
 * the rest), a type [a-z0-9._-]; a service or instance name that holds a
 * newline is left out rather than break the datagram's framing. */
static bool put_field(char *buf, size_t size, size_t *at, const char *name, const char *value)
{
	int n;

	if (!value || strchr(value, '\n'))
		return true;
	n = snprintf(buf + *at, size - *at, "%s=%s\n", name, value);
	if (n < 0 || (size_t)n >= size - *at)
		return false;
	*at += (size_t)n;
	return true;
}

/* One datagram of journald's native protocol: the fields (docs/audit-log.md
 * "Off the host"), the whole record last as MTD_RECORD=. */
void audit_journal_send(struct audit_journal *j, uint64_t seq, uint64_t epoch, const char *type,
			json_t *fields, const char *mac, const char *line, size_t len)
{
	const char *service = NULL, *instance = NULL;
	char head[1024], message[300], number[24], epoch_text[24];
	struct iovec iov[3];
	struct msghdr msg = {.msg_iov = iov, .msg_iovlen = ELEMENTSOF(iov)};
	size_t at = 0;

	if (j->fd < 0)
		return;
	if (json_is_object(fields)) {
		service = json_string_value(json_object_get(fields, "service"));
		instance = json_string_value(json_object_get(fields, "instance"));
	}
	snprintf(message, sizeof(message), "audit #%" PRIu64 ": %s%s%.64s%s", seq, type,
		 service ? " (service " : "", service ? service : "", service ? ")" : "");
	snprintf(number, sizeof(number), "%" PRIu64, seq);
	snprintf(epoch_text, sizeof(epoch_text), "%" PRIu64, epoch);
	if (!put_field(head, sizeof(head), &at, "MESSAGE", message) ||
	    !put_field(head, sizeof(head), &at, "MESSAGE_ID", log_message_id(type)) ||
	    !put_field(head, sizeof(head), &at, "PRIORITY", "5") ||
	    !put_field(head, sizeof(head), &at, "SYSLOG_IDENTIFIER", "mtd-agent") ||
	    !put_field(head, sizeof(head), &at, "MTD_EVENT", type) ||
	    !put_field(head, sizeof(head), &at, "MTD_SEQ", number) ||
	    !put_field(head, sizeof(head), &at, "MTD_EPOCH", epoch_text) ||
	    !put_field(head, sizeof(head), &at, "MTD_MAC", mac) ||
	    (service && strlen(service) < 256 &&
	     !put_field(head, sizeof(head), &at, "MTD_SERVICE", service)) ||
	    (instance && strlen(instance) < 256 &&
	     !put_field(head, sizeof(head), &at, "MTD_INSTANCE", instance)) ||
	    sizeof(head) - at <= strlen("MTD_RECORD=")) {
		j->dropped++;
		j->last_error = -EMSGSIZE;
		return;
	}
	memcpy(head + at, "MTD_RECORD=", strlen("MTD_RECORD="));
	at += strlen("MTD_RECORD=");
	iov[0] = (struct iovec){.iov_base = head, .iov_len = at};
	iov[1] = (struct iovec){.iov_base = (void *)line, .iov_len = len};
	iov[2] = (struct iovec){.iov_base = (void *)"\n", .iov_len = 1};
	msg.msg_name = &j->addr;
	msg.msg_namelen = j->addr_len;
	if (sendmsg(j->fd, &msg, MSG_NOSIGNAL) < 0) {
		j->dropped++;
		j->last_error = -errno;
		return;
	}
	j->sent++;
	j->last_error = 0;
}
