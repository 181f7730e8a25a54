/* SPDX-License-Identifier: MIT */
#include "fleet_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "macro.h"

struct health_probe {
	int fd;
	sd_event_source *io;
	sd_event_source *timeout;
	health_probe_done_t done;
	void *userdata;
};

static void probe_free(struct health_probe *probe)
{
	sd_event_source_disable_unref(probe->io);
	sd_event_source_disable_unref(probe->timeout);
	if (probe->fd >= 0)
		close(probe->fd);
	free(probe);
}

void health_probe_cancel(struct health_probe *probe)
{
	if (probe)
		probe_free(probe);
}

static void finish(struct health_probe *probe, bool healthy, const char *reason)
{
	health_probe_done_t done = probe->done;
	void *userdata = probe->userdata;

	probe_free(probe);
	done(healthy, reason, userdata);
}

static int on_connected(sd_event_source *source, int fd, uint32_t revents, void *userdata)
{
	struct health_probe *probe = userdata;
	int error = 0;
	socklen_t len = sizeof(error);
	char reason[128];

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) < 0)
		error = errno;
	if (error) {
		snprintf(reason, sizeof(reason), "connect: %s", strerror(error));
		finish(probe, false, reason);
	} else {
		finish(probe, true, "connected");
	}
	return 0;
}

static int on_timeout(sd_event_source *source, uint64_t usec, void *userdata)
{
	finish(userdata, false, "no answer within HealthTimeout=");
	return 0;
}

int health_probe_start(sd_event *event, const struct netdev_address *address, uint16_t port,
		       uint64_t timeout_usec, health_probe_done_t done, void *userdata,
		       struct health_probe **ret_probe)
{
	struct sockaddr_storage sa = {0};
	socklen_t sa_len;
	struct health_probe *probe;
	int r;

	if (address->family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&sa;
		in->sin_family = AF_INET;
		in->sin_port = htons(port);
		in->sin_addr = address->v4;
		sa_len = sizeof(*in);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&sa;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		in6->sin6_addr = address->v6;
		sa_len = sizeof(*in6);
	}

	probe = calloc(1, sizeof(*probe));
	if (!probe)
		return -ENOMEM;
	probe->done = done;
	probe->userdata = userdata;
	probe->fd = socket(address->family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (probe->fd < 0) {
		r = -errno;
		goto fail;
	}
	if (connect(probe->fd, (struct sockaddr *)&sa, sa_len) < 0 && errno != EINPROGRESS) {
		r = -errno;
		goto fail;
	}
	r = sd_event_add_io(event, &probe->io, probe->fd, EPOLLOUT, on_connected, probe);
	if (r < 0)
		goto fail;
	/* 1 ms accuracy: with sd-event's default slack (250 ms) a probe whose
	 * SYN was dropped held a starting replacement back for up to
	 * HealthTimeout= + 250 ms before the next probe. */
	r = sd_event_add_time_relative(event, &probe->timeout, CLOCK_MONOTONIC, timeout_usec, 1000,
				       on_timeout, probe);
	if (r < 0)
		goto fail;
	*ret_probe = probe;
	return 0;
fail:
	probe_free(probe);
	return r;
}
