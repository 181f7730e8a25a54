/* SPDX-License-Identifier: MIT */
/* mtd-client connect: the door of the moment, then stdin/stdout (ssh's
 * ProxyCommand), like `mtdctl connect` but from a profile, with a knock. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>

#include "client.h"
#include "clock.h"
#include "macro.h"

#define CONNECT_TIMEOUT_MS 3000

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Blocking connect bounded by a timeout; returns a connected fd. */
static int connect_port(const struct sockaddr_storage *host, uint16_t port)
{
	struct sockaddr_storage addr = *host;
	_cleanup_close_ int fd = -1;
	struct pollfd pfd;
	socklen_t len = sizeof(int), addr_len;
	int err = 0;

	if (addr.ss_family == AF_INET) {
		((struct sockaddr_in *)&addr)->sin_port = htons(port);
		addr_len = sizeof(struct sockaddr_in);
	} else {
		((struct sockaddr_in6 *)&addr)->sin6_port = htons(port);
		addr_len = sizeof(struct sockaddr_in6);
	}
	fd = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&addr, addr_len) < 0 && errno != EINPROGRESS)
		return -errno;
	pfd = (struct pollfd){.fd = fd, .events = POLLOUT};
	if (poll(&pfd, 1, CONNECT_TIMEOUT_MS) <= 0)
		return -ETIMEDOUT;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return -errno;
	if (err)
		return -err;
	if (fcntl(fd, F_SETFL, 0) < 0)
		return -errno;
	return TAKE_FD(fd);
}

int client_connect_door(const struct profile *p, const struct profile_host *host)
{
	static const unsigned settle_ms[CLIENT_PASSES] = CLIENT_SETTLE_MSEC;
	struct sockaddr_storage addr;
	const char *reason = NULL;
	int r, fd = -ECONNREFUSED;

	r = client_resolve(host, &addr, &reason);
	if (r < 0) {
		client_log("%s: %s", host->address, reason);
		return r;
	}
	/* Each pass knocks again and takes new source ports. */
	for (int pass = 0; pass < CLIENT_PASSES && fd < 0; pass++) {
		uint64_t at = now(CLOCK_REALTIME);
		uint16_t order[CLIENT_MAX_ORDER];
		struct client_epoch e;
		size_t n;

		r = client_epoch_at(p, host, at, &e);
		if (r < 0)
			return r;
		if (p->auth == PROFILE_AUTH_KNOCK) {
			r = client_knock(p, host, &e, at);
			if (r < 0) {
				client_log("%s: cannot send the knock: %s", host->address,
					   strerror(-r));
				return r;
			}
			sleep_ms(settle_ms[pass]);
		}
		n = client_door_order(&e, order);
		for (size_t i = 0; i < n && fd < 0; i++)
			fd = connect_port(&addr, order[i]);
	}
	return fd;
}

static int write_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, data, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/* stdio <-> socket until the service closes (stdin's end is passed on as a
 * half close). */
static int proxy(int sock)
{
	struct pollfd fds[2] = {{.fd = STDIN_FILENO, .events = POLLIN},
				{.fd = sock, .events = POLLIN}};
	char buffer[65536];

	for (;;) {
		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (fds[0].fd >= 0 && fds[0].revents) {
			ssize_t n = read(STDIN_FILENO, buffer, sizeof(buffer));

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				fds[0].fd = -1;
				shutdown(sock, SHUT_WR);
			} else if (write_all(sock, buffer, (size_t)n) < 0)
				return -EPIPE;
		}
		if (fds[1].revents) {
			ssize_t n = read(sock, buffer, sizeof(buffer));

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return errno == ECONNRESET ? 0 : -errno;
			if (n == 0)
				return 0;
			if (write_all(STDOUT_FILENO, buffer, (size_t)n) < 0)
				return -EPIPE;
		}
	}
}

int client_connect_command(const struct profile *p, const char *host)
{
	const struct profile_host *one = NULL;
	int fd = -ECONNREFUSED, r;

	if (p->protocol != PROFILE_PROTOCOL_TCP) {
		client_log("connect: service %s is %s; connect relays TCP only", p->service,
			   profile_protocol_name(p->protocol));
		return 1;
	}
	if (host) {
		one = profile_find_host(p, host);
		if (!one) {
			client_log("connect: no Host= %s in the profile", host);
			return 2;
		}
	}
	for (size_t i = 0; i < p->n_hosts && fd < 0; i++) {
		const struct profile_host *h = one ? one : &p->hosts[i];

		fd = client_connect_door(p, h);
		if (fd < 0)
			client_log("connect: %s service %s: no door answered (%s)", h->address,
				   p->service, strerror(-fd));
		if (one)
			break;
	}
	if (fd < 0)
		return 1;
	r = proxy(fd);
	close(fd);
	if (r < 0) {
		client_log("connect: %s", strerror(-r));
		return 1;
	}
	return 0;
}
