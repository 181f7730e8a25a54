/* SPDX-License-Identifier: MIT */
/* http-prober: a client that follows a service's port schedule and counts
 * the requests that fail.
 *
 *   http-prober HOST KEYFILE SERVICE FIRST-LAST INTERVAL_SEC SECONDS [GAP_MS]
 *
 * For SECONDS, every GAP_MS (default 10) one HTTP/1.0 GET / on a new
 * connection to the port of the current epoch (the first candidate: nothing
 * else is bound in the range on the server), with a 1 s limit for the whole
 * request; refused there, it tries the previous epoch's port (in its grace),
 * as mtdctl connect does: a port that opens a little after its boundary
 * costs a fallback, not a failure. A request fails when the connection is
 * refused (on both), reset, gets no complete answer within the limit, or the
 * answer is not "HTTP/1.x 200".
 * Prints each failure ("fail KIND port P at +MS ms after its boundary") and
 * a summary line:
 *
 *   summary: probes N ok N failed N refused N reset N timeout N bad N fallbacks N
 *
 * Exit 0 unless an argument or the key is wrong. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "policy.h"
#include "rotator.h"
#include "clock.h"

#define LIMIT_USEC 1000000

enum outcome { OK, REFUSED, RESET, TIMEOUT, BAD, N_OUTCOMES };
static const char *const names[N_OUTCOMES] = {"ok", "refused", "reset", "timeout", "bad"};

static enum outcome errno_outcome(int err)
{
	if (err == ECONNREFUSED)
		return REFUSED;
	if (err == ECONNRESET || err == EPIPE)
		return RESET;
	return BAD;
}

/* Wait for events on fd until deadline (CLOCK_MONOTONIC usec): 1 ready, 0 timed out. */
static int wait_fd(int fd, short events, uint64_t deadline)
{
	struct pollfd pfd = {.fd = fd, .events = events};
	uint64_t t = now(CLOCK_MONOTONIC);

	if (t >= deadline)
		return 0;
	return poll(&pfd, 1, (int)((deadline - t + 999) / 1000)) > 0;
}

static enum outcome probe(const struct addrinfo *ai, uint16_t port)
{
	static const char request[] = "GET / HTTP/1.0\r\n\r\n";
	uint64_t deadline = now(CLOCK_MONOTONIC) + LIMIT_USEC;
	struct sockaddr_storage addr;
	char buf[4096];
	size_t got = 0;
	int fd, err = 0;
	socklen_t len = sizeof(err);
	enum outcome o = TIMEOUT;

	memcpy(&addr, ai->ai_addr, ai->ai_addrlen);
	((struct sockaddr_in *)&addr)->sin_port = htons(port);
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return BAD;
	if (connect(fd, (struct sockaddr *)&addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
		o = errno_outcome(errno);
		goto out;
	}
	if (!wait_fd(fd, POLLOUT, deadline))
		goto out;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
		o = errno_outcome(err);
		goto out;
	}
	if (send(fd, request, sizeof(request) - 1, MSG_NOSIGNAL) < 0) {
		o = errno_outcome(errno);
		goto out;
	}
	for (;;) {
		ssize_t n;

		if (!wait_fd(fd, POLLIN, deadline))
			goto out;
		n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
		if (n < 0 && errno == EAGAIN)
			continue;
		if (n < 0) {
			o = errno_outcome(errno);
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (got == sizeof(buf) - 1)
			break;
	}
	buf[got] = '\0';
	o = (strncmp(buf, "HTTP/1.1 200", 12) == 0 || strncmp(buf, "HTTP/1.0 200", 12) == 0) ? OK
											     : BAD;
out:
	close(fd);
	return o;
}

int main(int argc, char **argv)
{
	struct schedule_params p = {0};
	struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai;
	unsigned long count[N_OUTCOMES] = {0}, probes = 0, fallbacks = 0;
	uint8_t *key = NULL;
	char *error = NULL;
	unsigned first, last;
	int seconds, gap_ms = argc == 8 ? atoi(argv[7]) : 10;
	uint64_t end;

	if ((argc != 7 && argc != 8) || sscanf(argv[4], "%u-%u", &first, &last) != 2 ||
	    first > last || last > 65535 || atoi(argv[5]) <= 0 || (seconds = atoi(argv[6])) <= 0 ||
	    gap_ms < 0 || gap_ms > 999) {
		fprintf(stderr, "usage: http-prober HOST KEYFILE SERVICE FIRST-LAST INTERVAL_SEC "
				"SECONDS [GAP_MS]\n");
		return 2;
	}
	if (policy_read_key_file(argv[2], &key, &p.key_len, &error) < 0) {
		fprintf(stderr, "http-prober: %s\n", error ? error : argv[2]);
		return 2;
	}
	if (getaddrinfo(argv[1], NULL, &hints, &ai) != 0) {
		fprintf(stderr, "http-prober: cannot resolve %s as IPv4\n", argv[1]);
		return 2;
	}
	p.key = key;
	p.service = argv[3];
	p.first = (uint16_t)first;
	p.last = (uint16_t)last;
	p.interval_sec = (uint64_t)atoi(argv[5]);
	end = now(CLOCK_MONOTONIC) + (uint64_t)seconds * USEC_PER_SEC;
	while (now(CLOCK_MONOTONIC) < end) {
		uint64_t t = now(CLOCK_REALTIME), epoch = t / USEC_PER_SEC / p.interval_sec;
		enum outcome o;
		uint16_t port, previous;

		if (schedule_port(&p, epoch, &port) < 0 ||
		    schedule_port(&p, epoch - 1, &previous) < 0)
			return 1;
		o = probe(ai, port);
		/* As mtdctl connect: refused on the epoch's port, the previous
		 * epoch's (in its grace) next. */
		if (o == REFUSED && previous != port) {
			fallbacks++;
			o = probe(ai, previous);
		}
		probes++;
		count[o]++;
		if (o != OK)
			printf("fail %s port %u at +%llu ms after its boundary\n", names[o], port,
			       (unsigned long long)((t - epoch * p.interval_sec * USEC_PER_SEC) /
						    1000));
		fflush(stdout);
		if (gap_ms)
			nanosleep(&(struct timespec){.tv_nsec = (long)gap_ms * 1000000L}, NULL);
	}
	printf("summary: probes %lu ok %lu failed %lu refused %lu reset %lu timeout %lu bad %lu "
	       "fallbacks %lu\n",
	       probes, count[OK], probes - count[OK], count[REFUSED], count[RESET], count[TIMEOUT],
	       count[BAD], fallbacks);
	freeaddrinfo(ai);
	free(key);
	return 0;
}
