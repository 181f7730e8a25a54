/* SPDX-License-Identifier: MIT */
#include "control.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "control_internal.h"
#include "macro.h"
#include "clock.h"

/* At most this many requests of one client per wakeup; a client with more
 * waiting is served again on a later loop iteration, after every other
 * pending source (epoll is level-triggered and sd-event dispatches one source
 * per iteration, oldest pending first): clients are served round robin and
 * timers are never held up by a client's backlog. */
#define CONTROL_READ_BATCH 4
#define CONTROL_ACCEPT_BATCH 16
#define CONTROL_BACKLOG 128
/* Timers, signals and the rotation (SD_EVENT_PRIORITY_NORMAL) first; then
 * root's connections and the listening socket; then the signal sources of
 * instances (NORMAL + 10, instance.c); then everyone else's connections, so
 * that a read-group member who keeps its socket full delays neither root nor
 * detection. The listening socket drops to the users' priority while a
 * wakeup finds more connections waiting than it takes (a connect flood could
 * otherwise keep it pending above the instances' signals), and comes back
 * up once it drains the backlog. */
#define CONTROL_PRIORITY_ROOT (SD_EVENT_PRIORITY_NORMAL + 1)
#define CONTROL_PRIORITY_USER (SD_EVENT_PRIORITY_NORMAL + 20)
/* A client that stops reading (a stalled `audit show --follow`) is dropped
 * once this much is waiting for it, so it cannot make the agent hoard memory. */
#define CONTROL_QUEUE_MAX (4u * 1024 * 1024)
#define CONTROL_SNDBUF                                                                             \
	(4 * 1024 * 1024) /* a reply is one message: status of thousands of services */

struct queued_message {
	struct queued_message *next;
	size_t len;
	char data[];
};

struct control_client {
	struct control_server *server;
	struct control_client *next;
	int fd;
	sd_event_source *io;
	struct control_peer peer;
	struct queued_message *head, *tail;
	size_t queued_bytes;
	control_job_step_t job_step;
	void (*job_free)(void *data);
	void *job_data;
	bool follow;
	bool dead; /* freed by the reaper, never inside a callback that may still use it */
};

struct control_server {
	sd_event *event;
	int fd;
	sd_event_source *io;
	sd_event_source *reaper;
	char *path;
	gid_t read_group;
	gid_t block_group;
	control_request_handler_t on_request;
	control_refusal_handler_t on_refusal;
	void *userdata;
	struct control_client *clients;
	unsigned n_clients;
	struct control_limits *limits;
	uint64_t refused[_CONTROL_REFUSED_MAX];
	uint64_t callbacks;		/* of the listening socket and the clients */
	uint64_t max_callback_usec;	/* the longest of them, wall clock (preemption included) */
	uint64_t max_callback_cpu_usec; /* the most CPU time one of them used: the work */
};

static const char *const refusal_names[_CONTROL_REFUSED_MAX] = {
    [CONTROL_REFUSED_MALFORMED] = "malformed",
    [CONTROL_REFUSED_PERMISSION] = "permission",
    [CONTROL_REFUSED_RATE] = "rate",
    [CONTROL_REFUSED_CONNECTIONS] = "connections",
};

const char *control_refusal_name(enum control_refusal kind)
{
	return (unsigned)kind < _CONTROL_REFUSED_MAX ? refusal_names[kind] : "?";
}

struct callback_clock {
	uint64_t wall, cpu;
};

static struct callback_clock callback_start(void)
{
	return (struct callback_clock){now(CLOCK_MONOTONIC), now(CLOCK_THREAD_CPUTIME_ID)};
}

static void client_free(struct control_client *client)
{
	struct queued_message *m = client->head;

	while (m) {
		struct queued_message *next = m->next;
		free(m);
		m = next;
	}
	if (client->job_free)
		client->job_free(client->job_data);
	sd_event_source_disable_unref(client->io);
	if (client->fd >= 0)
		close(client->fd);
	free(client);
}

static void client_kill(struct control_client *client)
{
	if (client->dead)
		return;
	client->dead = true;
	sd_event_source_set_enabled(client->io, SD_EVENT_OFF);
	sd_event_source_set_enabled(client->server->reaper, SD_EVENT_ONESHOT);
}

static int reap_dead_clients(sd_event_source *source, void *userdata)
{
	struct control_server *server = userdata;
	struct control_client **link = &server->clients;

	while (*link) {
		struct control_client *client = *link;
		if (client->dead) {
			*link = client->next;
			server->n_clients--;
			control_limits_disconnect(server->limits, client->peer.uid);
			client_free(client);
		} else {
			link = &client->next;
		}
	}
	return 0;
}

/* While a job runs, the client's next requests wait in its socket. */
static int client_update_events(struct control_client *client)
{
	uint32_t events = client->job_step ? EPOLLOUT : EPOLLIN | (client->head ? EPOLLOUT : 0);

	return sd_event_source_set_io_events(client->io, events);
}

/* Write as much of the queue as the socket takes now. */
static int client_flush(struct control_client *client)
{
	while (client->head) {
		struct queued_message *m = client->head;
		ssize_t n = send(client->fd, m->data, m->len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			return -errno;
		}
		client->head = m->next;
		if (!client->head)
			client->tail = NULL;
		client->queued_bytes -= m->len;
		free(m);
	}
	return client_update_events(client);
}

int control_client_send(struct control_client *client, const char *message)
{
	size_t len;
	struct queued_message *m;

	if (client->dead)
		return -ECONNRESET;
	if (!message) {
		client_kill(client);
		return -ENOMEM;
	}
	len = strlen(message);
	if (client->queued_bytes + len > CONTROL_QUEUE_MAX) {
		client_kill(client);
		return -ENOBUFS;
	}
	m = malloc(sizeof(*m) + len);
	if (!m) {
		client_kill(client);
		return -ENOMEM;
	}
	m->next = NULL;
	m->len = len;
	memcpy(m->data, message, len);
	if (client->tail)
		client->tail->next = m;
	else
		client->head = m;
	client->tail = m;
	client->queued_bytes += len;

	if (client_flush(client) < 0) {
		client_kill(client);
		return -ECONNRESET;
	}
	return 0;
}

static void client_end_job(struct control_client *client)
{
	if (client->job_free)
		client->job_free(client->job_data);
	client->job_step = NULL;
	client->job_free = NULL;
	client->job_data = NULL;
}

int control_client_start_job(struct control_client *client, control_job_step_t step,
			     void (*free_data)(void *data), void *data)
{
	if (client->dead || client->job_step) {
		if (free_data)
			free_data(data);
		return client->dead ? -ECONNRESET : -EBUSY;
	}
	client->job_step = step;
	client->job_free = free_data;
	client->job_data = data;
	if (client_update_events(client) < 0) {
		client_kill(client);
		return -ECONNRESET;
	}
	return 0;
}

/* One step of the client's job, when its queue has gone out. */
static void client_step_job(struct control_client *client)
{
	int r;

	if (client->dead || !client->job_step || client->head)
		return;
	r = client->job_step(client, client->job_data);
	if (client->dead)
		return;
	if (r < 0) {
		client_kill(client);
		return;
	}
	if (r > 0) {
		client_end_job(client);
		if (client_update_events(client) < 0)
			client_kill(client);
	}
}

void control_client_follow(struct control_client *client)
{
	client->follow = true;
}

void control_server_broadcast(struct control_server *server, const char *message)
{
	for (struct control_client *c = server->clients; c; c = c->next)
		if (c->follow && !c->dead)
			(void)control_client_send(c, message);
}

bool control_peer_may(const struct control_peer *peer, const struct control_request *request,
		      char reason[CONTROL_REASON_MAX])
{
	enum control_command command = request->command;

	if (peer->uid == 0)
		return true;
	if (command == CONTROL_SHARED_BLOCKS) {
		if (peer->in_block_group)
			return true;
		snprintf(reason, CONTROL_REASON_MAX,
			 "permission denied: shared-blocks requires root or the block group");
		return false;
	}
	if (control_request_needs_root(request)) {
		snprintf(reason, CONTROL_REASON_MAX, "permission denied: %s%s requires root",
			 control_command_name(command),
			 command == CONTROL_INSPECT ? " --verify" : "");
		return false;
	}
	if (!peer->in_read_group) {
		snprintf(reason, CONTROL_REASON_MAX,
			 "permission denied: %s requires root or group mtd",
			 control_command_name(command));
		return false;
	}
	return true;
}

static void note_refusal(struct control_server *server, const struct control_peer *peer,
			 enum control_refusal kind, const char *command, const char *reason)
{
	server->refused[kind]++;
	if (server->on_refusal)
		server->on_refusal(peer, kind, command, reason, server->userdata);
}

static void refuse(struct control_client *client, enum control_refusal kind, const char *command,
		   const char *reason)
{
	_cleanup_free_ char *reply = control_reply_error(reason);

	note_refusal(client->server, &client->peer, kind, command, reason);
	(void)control_client_send(client, reply);
}

/* At most CONTROL_READ_BATCH requests, then back to the loop. */
static int client_read(struct control_client *client)
{
	struct control_server *server = client->server;
	char buffer[CONTROL_REQUEST_MAX + 1];

	for (unsigned i = 0; i < CONTROL_READ_BATCH && !client->dead && !client->job_step; i++) {
		struct control_request request;
		char reason[CONTROL_REASON_MAX];
		/* MSG_TRUNC makes recv return the message's real length, so an
		 * oversized request is refused instead of read in pieces. */
		ssize_t n = recv(client->fd, buffer, sizeof(buffer), MSG_DONTWAIT | MSG_TRUNC);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return 0;
			return -errno;
		}
		if (n == 0)
			return -ECONNRESET; /* the peer closed */

		/* The rate is checked first: a flood costs a recv and a short
		 * reply, never a parse. */
		if (control_limits_request(server->limits, client->peer.uid, now(CLOCK_MONOTONIC),
					   reason) < 0) {
			refuse(client, CONTROL_REFUSED_RATE, NULL, reason);
			continue;
		}
		if (control_request_decode(buffer, (size_t)n, &request, reason) < 0) {
			refuse(client, CONTROL_REFUSED_MALFORMED, NULL, reason);
			continue;
		}
		if (!control_peer_may(&client->peer, &request, reason)) {
			refuse(client, CONTROL_REFUSED_PERMISSION,
			       control_command_name(request.command), reason);
			continue;
		}
		server->on_request(client, &client->peer, &request, server->userdata);
	}
	return 0;
}

static void note_callback(struct control_server *server, struct callback_clock start)
{
	uint64_t wall = now(CLOCK_MONOTONIC) - start.wall;
	uint64_t cpu = now(CLOCK_THREAD_CPUTIME_ID) - start.cpu;

	server->callbacks++;
	if (wall > server->max_callback_usec)
		server->max_callback_usec = wall;
	if (cpu > server->max_callback_cpu_usec)
		server->max_callback_cpu_usec = cpu;
}

static void client_io(struct control_client *client, uint32_t revents)
{
	if (revents & EPOLLOUT) {
		if (client_flush(client) < 0) {
			client_kill(client);
			return;
		}
	}
	if (client->job_step) {
		if (revents & (EPOLLHUP | EPOLLERR))
			client_kill(client);
		else if (revents & EPOLLOUT)
			client_step_job(client);
		return;
	}
	if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		if (client_read(client) < 0)
			client_kill(client);
	}
}

static int on_client_io(sd_event_source *source, int fd, uint32_t revents, void *userdata)
{
	struct control_client *client = userdata;
	struct control_server *server = client->server;
	struct callback_clock start = callback_start();

	client_io(client, revents); /* may kill the client; it is freed later */
	note_callback(server, start);
	return 0;
}

static bool peer_in_group(int fd, gid_t primary, gid_t group)
{
	gid_t groups[256];
	socklen_t len = sizeof(groups);

	if (group == (gid_t)-1)
		return false;
	if (primary == group)
		return true;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
		return false; /* fail closed: too many groups or no support */
	for (size_t i = 0; i < len / sizeof(gid_t); i++)
		if (groups[i] == group)
			return true;
	return false;
}

/* A connection over its uid's limits gets the reason as its only message. */
static void turn_away(struct control_server *server, int fd, const struct control_peer *peer,
		      const char *reason)
{
	_cleanup_free_ char *reply = control_reply_error(reason);

	if (reply)
		(void)send(fd, reply, strlen(reply), MSG_NOSIGNAL | MSG_DONTWAIT);
	note_refusal(server, peer, CONTROL_REFUSED_CONNECTIONS, NULL, reason);
}

/* At most CONTROL_ACCEPT_BATCH connections per wakeup. Returns true when the
 * backlog was drained. */
static bool accept_some(struct control_server *server, int fd)
{
	for (unsigned i = 0; i < CONTROL_ACCEPT_BATCH; i++) {
		_cleanup_close_ int client_fd =
		    accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		struct control_peer peer = {0};
		struct ucred cred;
		socklen_t len = sizeof(cred);
		struct control_client *client;
		char reason[CONTROL_LIMITS_REASON_MAX];
		int sndbuf = CONTROL_SNDBUF;

		if (client_fd < 0)
			return true; /* EAGAIN, or a peer gone before accept */
		if (getsockopt(client_fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
			continue;
		peer.pid = cred.pid;
		peer.uid = cred.uid;
		peer.gid = cred.gid;
		if (control_limits_connect(server->limits, cred.uid, reason) < 0) {
			turn_away(server, client_fd, &peer, reason);
			continue; /* closed by cleanup */
		}
		/* past net.core.wmem_max (root only); else as far as it allows */
		if (setsockopt(client_fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf)) < 0)
			(void)setsockopt(client_fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));

		client = calloc(1, sizeof(*client));
		if (!client) {
			control_limits_disconnect(server->limits, cred.uid);
			continue;
		}
		client->server = server;
		client->peer = peer;
		client->peer.in_read_group = peer_in_group(client_fd, cred.gid, server->read_group);
		client->peer.in_block_group =
		    peer_in_group(client_fd, cred.gid, server->block_group);
		client->fd = TAKE_FD(client_fd);
		if (sd_event_add_io(server->event, &client->io, client->fd, EPOLLIN, on_client_io,
				    client) < 0 ||
		    sd_event_source_set_priority(client->io, cred.uid == 0
								 ? CONTROL_PRIORITY_ROOT
								 : CONTROL_PRIORITY_USER) < 0) {
			control_limits_disconnect(server->limits, cred.uid);
			client_free(client);
			continue;
		}
		client->next = server->clients;
		server->clients = client;
		server->n_clients++;
	}
	return false;
}

static int on_accept(sd_event_source *source, int fd, uint32_t revents, void *userdata)
{
	struct control_server *server = userdata;
	struct callback_clock start = callback_start();
	bool drained = accept_some(server, fd);

	(void)sd_event_source_set_priority(source,
					   drained ? CONTROL_PRIORITY_ROOT : CONTROL_PRIORITY_USER);
	note_callback(server, start);
	return 0;
}

json_t *control_server_stats(const struct control_server *server)
{
	json_t *refused = json_object();

	for (unsigned i = 0; refused && i < _CONTROL_REFUSED_MAX; i++)
		json_object_set_new(refused, refusal_names[i],
				    json_integer((json_int_t)server->refused[i]));
	return json_pack("{s:i, s:o, s:I, s:I, s:I}", "clients", (int)server->n_clients, "refused",
			 refused, "callbacks", (json_int_t)server->callbacks, "max_callback_usec",
			 (json_int_t)server->max_callback_usec, "max_callback_cpu_usec",
			 (json_int_t)server->max_callback_cpu_usec);
}

static int bind_socket(const char *path, gid_t read_group, int *ret_fd)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	_cleanup_close_ int fd = -1;

	if (strlen(path) >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	memcpy(addr.sun_path, path, strlen(path) + 1);

	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	/* A socket file left by a killed agent would make bind fail. */
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		return -errno;
	if (read_group != (gid_t)-1 && chown(path, (uid_t)-1, read_group) < 0)
		return -errno;
	if (chmod(path, read_group != (gid_t)-1 ? 0660 : 0600) < 0)
		return -errno;
	if (listen(fd, CONTROL_BACKLOG) < 0)
		return -errno;
	*ret_fd = TAKE_FD(fd);
	return 0;
}

void control_server_set_block_group(struct control_server *server, gid_t block_group)
{
	server->block_group = block_group;
}

int control_server_new(sd_event *event, const char *socket_path, gid_t read_group,
		       control_request_handler_t on_request, control_refusal_handler_t on_refusal,
		       void *userdata, struct control_server **ret_server)
{
	struct control_server *server;
	int r;

	server = calloc(1, sizeof(*server));
	if (!server)
		return -ENOMEM;
	server->fd = -1;
	server->event = sd_event_ref(event);
	server->read_group = read_group;
	server->block_group = (gid_t)-1;
	server->on_request = on_request;
	server->on_refusal = on_refusal;
	server->userdata = userdata;
	server->path = strdup(socket_path);
	if (!server->path) {
		r = -ENOMEM;
		goto fail;
	}
	r = bind_socket(socket_path, read_group, &server->fd);
	if (r < 0)
		goto fail;
	r = control_limits_new(&server->limits);
	if (r < 0)
		goto fail;
	r = sd_event_add_io(event, &server->io, server->fd, EPOLLIN, on_accept, server);
	if (r < 0)
		goto fail;
	r = sd_event_source_set_priority(server->io, CONTROL_PRIORITY_ROOT);
	if (r < 0)
		goto fail;
	r = sd_event_add_defer(event, &server->reaper, reap_dead_clients, server);
	if (r < 0)
		goto fail;
	sd_event_source_set_enabled(server->reaper, SD_EVENT_OFF);

	*ret_server = server;
	return 0;
fail:
	control_server_free(server);
	return r;
}

void control_server_free(struct control_server *server)
{
	if (!server)
		return;
	while (server->clients) {
		struct control_client *next = server->clients->next;
		client_free(server->clients);
		server->clients = next;
	}
	sd_event_source_disable_unref(server->io);
	sd_event_source_disable_unref(server->reaper);
	if (server->fd >= 0) {
		close(server->fd);
		unlink(server->path);
	}
	free(server->path);
	control_limits_free(server->limits);
	sd_event_unref(server->event);
	free(server);
}
