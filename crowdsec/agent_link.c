/* SPDX-License-Identifier: MIT */
/* The bridge's two connections to the agent's control socket: requests
 * (status, shared-blocks) and the followed audit log. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "crowdsec.h"
#include "macro.h"

struct crowdsec_agent {
	char path[108];
	int fd;	       /* requests */
	int follow_fd; /* audit-show follow, -1 until followed */
	char *buffer;  /* one message (CONTROL_REPLY_MAX) */
};

static int connect_socket(const char *path, char reason[CROWDSEC_REASON_MAX])
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof(addr.sun_path)) {
		snprintf(reason, CROWDSEC_REASON_MAX, "%s: socket path too long", path);
		return -ENAMETOOLONG;
	}
	memcpy(addr.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		int r = -errno;

		snprintf(reason, CROWDSEC_REASON_MAX, "%s: %s", path, strerror(-r));
		close(fd);
		return r;
	}
	return fd;
}

int crowdsec_agent_connect(const char *socket_path, struct crowdsec_agent **ret,
			   char reason[CROWDSEC_REASON_MAX])
{
	struct crowdsec_agent *agent = calloc(1, sizeof(*agent));
	int fd;

	if (!agent)
		return -ENOMEM;
	agent->follow_fd = -1;
	agent->buffer = malloc(CONTROL_REPLY_MAX + 1);
	snprintf(agent->path, sizeof(agent->path), "%s", socket_path);
	fd = agent->buffer ? connect_socket(socket_path, reason) : -ENOMEM;
	if (fd < 0) {
		free(agent->buffer);
		free(agent);
		return fd;
	}
	agent->fd = fd;
	*ret = agent;
	return 0;
}

void crowdsec_agent_free(struct crowdsec_agent *agent)
{
	if (!agent)
		return;
	close(agent->fd);
	if (agent->follow_fd >= 0)
		close(agent->follow_fd);
	free(agent->buffer);
	free(agent);
}

/* One message within timeout_ms, parsed. */
static int receive(struct crowdsec_agent *agent, int fd, int timeout_ms, json_t **ret,
		   char reason[CROWDSEC_REASON_MAX])
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	json_error_t error;
	ssize_t n;
	int r;

	r = poll(&p, 1, timeout_ms);
	if (r < 0)
		return -errno;
	if (r == 0) {
		snprintf(reason, CROWDSEC_REASON_MAX, "the agent did not answer within %d ms",
			 timeout_ms);
		return -ETIMEDOUT;
	}
	n = recv(fd, agent->buffer, CONTROL_REPLY_MAX, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0) {
		snprintf(reason, CROWDSEC_REASON_MAX, "the agent closed the connection");
		return -ECONNRESET;
	}
	agent->buffer[n] = '\0';
	*ret = json_loadb(agent->buffer, (size_t)n, 0, &error);
	if (!*ret) {
		snprintf(reason, CROWDSEC_REASON_MAX, "the agent's message is not JSON: %s",
			 error.text);
		return -EBADMSG;
	}
	return 1;
}

int crowdsec_agent_request(struct crowdsec_agent *agent, const struct control_request *request,
			   int timeout_ms, json_t **ret_result, char reason[CROWDSEC_REASON_MAX])
{
	_cleanup_free_ char *text = control_request_encode(request);
	_cleanup_(json_decrefp) json_t *reply = NULL;
	const char *error;
	int r;

	if (!text)
		return -ENOMEM;
	if (send(agent->fd, text, strlen(text), MSG_NOSIGNAL) < 0) {
		r = -errno;
		snprintf(reason, CROWDSEC_REASON_MAX, "sending to the agent: %s", strerror(-r));
		return r;
	}
	do
		r = receive(agent, agent->fd, timeout_ms, &reply, reason);
	while (r == 0);
	if (r < 0)
		return r;
	if (!json_is_true(json_object_get(reply, "ok"))) {
		error = json_string_value(json_object_get(reply, "error"));
		snprintf(reason, CROWDSEC_REASON_MAX, "the agent refused %s: %s",
			 control_command_name(request->command), error ? error : "?");
		return -EIO;
	}
	if (ret_result) {
		*ret_result = json_incref(json_object_get(reply, "result"));
		if (!*ret_result)
			*ret_result = json_null();
	}
	return 0;
}

int crowdsec_agent_follow(struct crowdsec_agent *agent, uint64_t since,
			  char reason[CROWDSEC_REASON_MAX])
{
	struct control_request request = {
	    .command = CONTROL_AUDIT_SHOW, .since = since, .follow = true};
	_cleanup_free_ char *text = control_request_encode(&request);
	int fd;

	if (!text)
		return -ENOMEM;
	if (agent->follow_fd >= 0) {
		close(agent->follow_fd);
		agent->follow_fd = -1;
	}
	fd = connect_socket(agent->path, reason);
	if (fd < 0)
		return fd;
	if (send(fd, text, strlen(text), MSG_NOSIGNAL) < 0) {
		int r = -errno;

		snprintf(reason, CROWDSEC_REASON_MAX, "sending to the agent: %s", strerror(-r));
		close(fd);
		return r;
	}
	agent->follow_fd = fd;
	return 0;
}

int crowdsec_agent_follow_fd(const struct crowdsec_agent *agent)
{
	return agent->follow_fd;
}

int crowdsec_agent_read_follow(struct crowdsec_agent *agent, json_t **ret_message,
			       char reason[CROWDSEC_REASON_MAX])
{
	json_t *message = NULL;
	const char *error;
	int r;

	if (agent->follow_fd < 0)
		return -ECONNRESET;
	r = receive(agent, agent->follow_fd, 0, &message, reason);
	if (r == -ETIMEDOUT)
		return 0;
	if (r <= 0)
		return r;
	if (!json_is_true(json_object_get(message, "ok"))) {
		error = json_string_value(json_object_get(message, "error"));
		snprintf(reason, CROWDSEC_REASON_MAX, "the agent refused audit-show: %s",
			 error ? error : "?");
		json_decref(message);
		return -EIO;
	}
	*ret_message = message;
	return 1;
}
