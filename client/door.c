/* SPDX-License-Identifier: MIT */
/* The client's schedule on one host: the doors of an epoch, the window of
 * candidates after the door, the knock port, and the knock itself. */
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include "client.h"
#include "clock.h"
#include "knock.h"
#include "macro.h"

void client_log(const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "mtd-client: %s\n", line);
}

int client_epoch_at(const struct profile *p, const struct profile_host *host, uint64_t at_usec,
		    struct client_epoch *ret)
{
	struct schedule_client c = profile_schedule(p, host);
	struct client_epoch e = {0};
	size_t range = (size_t)p->last - p->first + 1;
	int r;

	r = schedule_epoch(at_usec / USEC_PER_SEC, p->interval_sec, &e.epoch);
	if (r < 0)
		return r;
	e.start_usec = e.epoch * p->interval_sec * USEC_PER_SEC;
	e.end_usec = e.start_usec + p->interval_sec * USEC_PER_SEC;
	e.n_window = range < SCHEDULE_CLIENT_CANDIDATES ? range : SCHEDULE_CLIENT_CANDIDATES;
	r = schedule_client_candidates(&c, e.epoch, e.window, e.n_window);
	if (r < 0)
		return r;
	r = schedule_client_knock_port(&c, e.epoch, &e.knock_port);
	if (r < 0)
		return r;
	if (e.epoch > 0) {
		r = schedule_client_port(&c, e.epoch - 1, NULL, NULL, &e.prev_door);
		if (r < 0)
			return r;
	}
	r = schedule_client_port(&c, e.epoch + 1, NULL, NULL, &e.next_door);
	if (r < 0)
		return r;
	*ret = e;
	return 0;
}

static size_t add_port(uint16_t *ports, size_t n, uint16_t port)
{
	if (port == 0)
		return n;
	for (size_t i = 0; i < n; i++)
		if (ports[i] == port)
			return n;
	ports[n] = port;
	return n + 1;
}

size_t client_door_order(const struct client_epoch *e, uint16_t ret[CLIENT_MAX_ORDER])
{
	size_t n = 0;

	n = add_port(ret, n, e->window[0]);
	n = add_port(ret, n, e->prev_door);
	n = add_port(ret, n, e->next_door);
	return n;
}

int client_resolve(const struct profile_host *host, struct sockaddr_storage *ret,
		   const char **ret_reason)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG}, *ai = NULL;
	int r;

	r = getaddrinfo(host->address, NULL, &hints, &ai);
	if (r != 0) {
		*ret_reason = gai_strerror(r);
		return -EHOSTUNREACH;
	}
	if (ai->ai_addrlen > sizeof(*ret)) {
		freeaddrinfo(ai);
		*ret_reason = "address too long";
		return -EHOSTUNREACH;
	}
	memset(ret, 0, sizeof(*ret));
	memcpy(ret, ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(ai);
	return 0;
}

static void set_port(struct sockaddr_storage *a, uint16_t port)
{
	if (a->ss_family == AF_INET)
		((struct sockaddr_in *)a)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)a)->sin6_port = htons(port);
}

int client_knock(const struct profile *p, const struct profile_host *host,
		 const struct client_epoch *e, uint64_t at_usec)
{
	struct knock k = {.time_sec = at_usec / USEC_PER_SEC, .admit = KNOCK_ADMIT_SOURCE};
	struct knock_key key = {
	    .key = p->key, .key_len = p->key_len, .service = p->service, .host_id = host->host_id};
	uint8_t packet[KNOCK_MAX_SIZE];
	struct sockaddr_storage to;
	const char *reason = NULL;
	_cleanup_close_ int fd = -1;
	ssize_t sent;
	int len, r;

	snprintf(k.client, sizeof(k.client), "%s", p->client);
	if (getrandom(k.nonce, sizeof(k.nonce), 0) != (ssize_t)sizeof(k.nonce))
		return -EIO;
	len = knock_encode(&k, &key, packet, sizeof(packet));
	if (len < 0)
		return len;
	r = client_resolve(host, &to, &reason);
	if (r < 0)
		return r;
	set_port(&to, e->knock_port);
	fd = socket(to.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	sent = sendto(fd, packet, (size_t)len, 0, (struct sockaddr *)&to,
		      to.ss_family == AF_INET ? sizeof(struct sockaddr_in)
					      : sizeof(struct sockaddr_in6));
	if (sent < 0)
		return -errno;
	return e->knock_port;
}
