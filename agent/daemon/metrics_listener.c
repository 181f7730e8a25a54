/* SPDX-License-Identifier: MIT */
/* --metrics-listen: a minimal HTTP/1.x server in the agent's loop answering
 * GET /metrics (docs/metrics.md). Off by default; a unix socket or a
 * loopback TCP port only. Every client is a stranger: a bounded number of
 * connections (more are closed at once), a bounded request (a longer one
 * is answered 431 and closed), a deadline for the whole exchange (a client
 * that sends nothing, or does not read, is closed when it passes), and
 * non-blocking sockets throughout, so no client can hold the loop. */
#include "agent_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "macro.h"

#define LISTENER_CONNECTIONS_MAX 16
#define LISTENER_REQUEST_MAX 4096 /* bytes of request line and headers */
#define LISTENER_DEADLINE_USEC (5 * USEC_PER_SEC)

struct connection {
	struct metrics_listener *listener;
	int fd;
	sd_event_source *io, *deadline;
	char request[LISTENER_REQUEST_MAX];
	size_t request_len;
	char *reply;
	size_t reply_len, sent;
};

struct metrics_listener {
	sd_event *event;
	int fd;
	sd_event_source *source;
	sd_event_source *resume; /* accepting again after the process ran out of fds */
	char *unix_path;	 /* removed when the listener goes */
	metrics_render_fn render;
	void *userdata;
	struct connection *connections[LISTENER_CONNECTIONS_MAX];
};

static bool parse_port(const char *text, uint16_t *ret)
{
	char *end;
	unsigned long v;

	if (!*text || *text == '+' || *text == '-' || *text == ' ')
		return false;
	errno = 0;
	v = strtoul(text, &end, 10);
	if (errno || *end || v == 0 || v > 65535)
		return false;
	*ret = (uint16_t)v;
	return true;
}

int metrics_address_parse(const char *text, struct metrics_address *ret, char *reason,
			  size_t reason_size)
{
	struct metrics_address a = {0};
	char host[64];
	const char *colon;
	uint16_t port;

	snprintf(a.text, sizeof(a.text), "%s", text);
	if (strncmp(text, "unix:", 5) == 0) {
		struct sockaddr_un *un = (struct sockaddr_un *)&a.addr;
		const char *path = text + 5;

		if (path[0] != '/') {
			snprintf(reason, reason_size, "unix:PATH needs an absolute path");
			return -EINVAL;
		}
		if (strlen(path) >= sizeof(un->sun_path)) {
			snprintf(reason, reason_size, "the socket path is longer than %zu bytes",
				 sizeof(un->sun_path) - 1);
			return -EINVAL;
		}
		un->sun_family = AF_UNIX;
		memcpy(un->sun_path, path, strlen(path) + 1);
		a.len = sizeof(*un);
		*ret = a;
		return 0;
	}
	if (text[0] == '[') {
		const char *close = strchr(text, ']');

		if (!close || close[1] != ':' || (size_t)(close - text - 1) >= sizeof(host)) {
			snprintf(reason, reason_size, "expected [ADDRESS]:PORT");
			return -EINVAL;
		}
		memcpy(host, text + 1, close - text - 1);
		host[close - text - 1] = 0;
		colon = close + 1;
	} else {
		colon = strrchr(text, ':');
		if (!colon || (size_t)(colon - text) >= sizeof(host)) {
			snprintf(reason, reason_size,
				 "expected unix:PATH, 127.0.0.1:PORT or [::1]:PORT");
			return -EINVAL;
		}
		memcpy(host, text, colon - text);
		host[colon - text] = 0;
	}
	if (!parse_port(colon + 1, &port)) {
		snprintf(reason, reason_size, "'%s' is not a port (1-65535)", colon + 1);
		return -EINVAL;
	}
	{
		struct sockaddr_in *in = (struct sockaddr_in *)&a.addr;
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a.addr;

		if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
			if ((ntohl(in->sin_addr.s_addr) >> 24) != 127) {
				snprintf(reason, reason_size,
					 "%s is not a loopback address: the listener serves this "
					 "host only",
					 host);
				return -EINVAL;
			}
			in->sin_family = AF_INET;
			in->sin_port = htons(port);
			a.len = sizeof(*in);
		} else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
			if (!IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr)) {
				snprintf(reason, reason_size,
					 "%s is not a loopback address: the listener serves this "
					 "host only",
					 host);
				return -EINVAL;
			}
			in6->sin6_family = AF_INET6;
			in6->sin6_port = htons(port);
			a.len = sizeof(*in6);
		} else {
			snprintf(
			    reason, reason_size,
			    "'%s' is not a numeric IPv4 or IPv6 address (names are not resolved)",
			    host);
			return -EINVAL;
		}
	}
	*ret = a;
	return 0;
}

static void connection_free(struct connection *c)
{
	struct metrics_listener *l;

	if (!c)
		return;
	l = c->listener;
	for (size_t i = 0; i < LISTENER_CONNECTIONS_MAX; i++)
		if (l->connections[i] == c)
			l->connections[i] = NULL;
	sd_event_source_disable_unref(c->io);
	sd_event_source_disable_unref(c->deadline);
	if (c->fd >= 0)
		close(c->fd);
	free(c->reply);
	free(c);
}

static int on_deadline(sd_event_source *source, uint64_t usec, void *userdata)
{
	connection_free(userdata);
	return 0;
}

static void set_reply(struct connection *c, const char *status, const char *body, size_t body_len)
{
	FILE *f;
	int r;

	free(c->reply);
	c->reply = NULL;
	f = open_memstream(&c->reply, &c->reply_len);
	if (!f)
		return;
	fprintf(f,
		"HTTP/1.0 %s\r\n"
		"Content-Type: %s\r\n"
		"Content-Length: %zu\r\n"
		"Connection: close\r\n\r\n",
		status,
		streq(status, "200 OK") ? "text/plain; version=0.0.4; charset=utf-8"
					: "text/plain; charset=utf-8",
		body_len);
	fwrite(body, 1, body_len, f);
	r = fclose(f);
	if (r != 0) {
		free(c->reply);
		c->reply = NULL;
	}
	c->sent = 0;
}

static void set_error(struct connection *c, const char *status)
{
	char body[128];

	snprintf(body, sizeof(body), "%s\n", status);
	set_reply(c, status, body, strlen(body));
}

/* The request line of a complete request: GET /metrics (a query string
 * allowed), HTTP/1.0 or 1.1. */
static void answer(struct connection *c)
{
	struct metrics_listener *l = c->listener;
	char *line_end = memchr(c->request, '\n', c->request_len);
	char line[256], *save = NULL, *method, *target, *version;
	size_t n = line_end ? (size_t)(line_end - c->request) : 0;

	if (n && c->request[n - 1] == '\r')
		n--;
	if (n == 0 || n >= sizeof(line)) {
		set_error(c, "400 Bad Request");
		return;
	}
	memcpy(line, c->request, n);
	line[n] = 0;
	method = strtok_r(line, " ", &save);
	target = strtok_r(NULL, " ", &save);
	version = strtok_r(NULL, " ", &save);
	if (!method || !target || !version || strtok_r(NULL, " ", &save) ||
	    (!streq(version, "HTTP/1.0") && !streq(version, "HTTP/1.1"))) {
		set_error(c, "400 Bad Request");
		return;
	}
	if (!streq(method, "GET")) {
		set_error(c, "405 Method Not Allowed");
		return;
	}
	if (!streq(target, "/metrics") && strncmp(target, "/metrics?", 9) != 0) {
		set_error(c, "404 Not Found");
		return;
	}
	{
		size_t len = 0;
		char *text = l->render(l->userdata, &len);

		if (!text) {
			set_error(c, "500 Internal Server Error");
			return;
		}
		set_reply(c, "200 OK", text, len);
		free(text);
	}
}

static bool request_complete(const struct connection *c)
{
	return memmem(c->request, c->request_len, "\r\n\r\n", 4) ||
	       memmem(c->request, c->request_len, "\n\n", 2);
}

static int on_io(sd_event_source *source, int fd, uint32_t revents, void *userdata)
{
	struct connection *c = userdata;

	if (!c->reply) {
		ssize_t n =
		    recv(fd, c->request + c->request_len, sizeof(c->request) - c->request_len, 0);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		if (n <= 0) {
			connection_free(c);
			return 0;
		}
		c->request_len += (size_t)n;
		if (request_complete(c))
			answer(c);
		else if (c->request_len == sizeof(c->request))
			set_error(c, "431 Request Header Fields Too Large");
		else
			return 0;
		if (!c->reply || sd_event_source_set_io_events(source, EPOLLOUT) < 0) {
			connection_free(c);
			return 0;
		}
	}
	while (c->sent < c->reply_len) {
		ssize_t n = send(fd, c->reply + c->sent, c->reply_len - c->sent,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		if (n <= 0)
			break;
		c->sent += (size_t)n;
	}
	/* Sent (or the peer went): done; what it sent beyond the request is
	 * not read. */
	(void)shutdown(fd, SHUT_WR);
	connection_free(c);
	return 0;
}

static int accept_one(struct metrics_listener *l)
{
	struct connection *c;
	size_t slot = LISTENER_CONNECTIONS_MAX;
	int fd, r;

	fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (size_t i = 0; i < LISTENER_CONNECTIONS_MAX; i++)
		if (!l->connections[i]) {
			slot = i;
			break;
		}
	if (slot == LISTENER_CONNECTIONS_MAX) {
		/* Full: the newcomer is closed, those waiting keep their turn. */
		close(fd);
		return 0;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return -ENOMEM;
	}
	c->listener = l;
	c->fd = fd;
	l->connections[slot] = c;
	r = sd_event_add_io(l->event, &c->io, fd, EPOLLIN, on_io, c);
	if (r >= 0)
		r = sd_event_add_time_relative(l->event, &c->deadline, CLOCK_MONOTONIC,
					       LISTENER_DEADLINE_USEC, 0, on_deadline, c);
	if (r < 0) {
		connection_free(c);
		return r;
	}
	return 0;
}

static int on_resume(sd_event_source *source, uint64_t usec, void *userdata)
{
	struct metrics_listener *l = userdata;

	(void)sd_event_source_set_enabled(l->source, SD_EVENT_ON);
	return 0;
}

/* The process is out of fds (or memory): the connection waits in the
 * backlog, and polling for it now would spin the loop. Accept again in a
 * second. */
static void pause_accepting(struct metrics_listener *l)
{
	int r;

	if (l->resume) {
		r = sd_event_source_set_time_relative(l->resume, USEC_PER_SEC);
		if (r >= 0)
			r = sd_event_source_set_enabled(l->resume, SD_EVENT_ONESHOT);
	} else
		r = sd_event_add_time_relative(l->event, &l->resume, CLOCK_MONOTONIC, USEC_PER_SEC,
					       0, on_resume, l);
	if (r >= 0)
		(void)sd_event_source_set_enabled(l->source, SD_EVENT_OFF);
}

static int on_accept(sd_event_source *source, int fd, uint32_t revents, void *userdata)
{
	struct metrics_listener *l = userdata;

	/* A bounded number per turn: the loop's other sources get theirs. */
	for (int i = 0; i < LISTENER_CONNECTIONS_MAX; i++) {
		int r = accept_one(l);

		if (r == -EAGAIN)
			break;
		if (r == -EMFILE || r == -ENFILE || r == -ENOBUFS || r == -ENOMEM) {
			pause_accepting(l);
			break;
		}
	}
	return 0;
}

/* A stale socket of a previous run is replaced; anything else at the path
 * is left alone (bind then fails with EADDRINUSE). */
static void remove_stale_socket(const char *path)
{
	struct stat st;

	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		(void)unlink(path);
}

int metrics_listener_new(sd_event *event, const struct metrics_address *address, gid_t gid,
			 metrics_render_fn render, void *userdata, struct metrics_listener **ret)
{
	struct metrics_listener *l;
	int family = address->addr.ss_family, one = 1, r;

	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->event = sd_event_ref(event);
	l->render = render;
	l->userdata = userdata;
	l->fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l->fd < 0) {
		r = -errno;
		goto fail;
	}
	if (family == AF_UNIX) {
		const char *path = ((const struct sockaddr_un *)&address->addr)->sun_path;

		remove_stale_socket(path);
		l->unix_path = strdup(path);
		if (!l->unix_path) {
			r = -ENOMEM;
			goto fail;
		}
	} else
		(void)setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(l->fd, (const struct sockaddr *)&address->addr, address->len) < 0) {
		r = -errno;
		free(l->unix_path);
		l->unix_path = NULL;
		goto fail;
	}
	if (l->unix_path) {
		/* root and the read group (--read-group), as `mtdctl metrics` */
		if (chmod(l->unix_path, gid == (gid_t)-1 ? 0600 : 0660) < 0 ||
		    (gid != (gid_t)-1 && chown(l->unix_path, (uid_t)-1, gid) < 0)) {
			r = -errno;
			goto fail;
		}
	}
	if (listen(l->fd, LISTENER_CONNECTIONS_MAX) < 0) {
		r = -errno;
		goto fail;
	}
	r = sd_event_add_io(event, &l->source, l->fd, EPOLLIN, on_accept, l);
	if (r < 0)
		goto fail;
	*ret = l;
	return 0;
fail:
	metrics_listener_free(l);
	return r;
}

void metrics_listener_free(struct metrics_listener *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < LISTENER_CONNECTIONS_MAX; i++)
		connection_free(l->connections[i]);
	sd_event_source_disable_unref(l->source);
	sd_event_source_disable_unref(l->resume);
	if (l->fd >= 0)
		close(l->fd);
	if (l->unix_path) {
		(void)unlink(l->unix_path);
		free(l->unix_path);
	}
	sd_event_unref(l->event);
	free(l);
}
