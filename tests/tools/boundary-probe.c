/* SPDX-License-Identifier: MIT */
/* boundary-probe: how soon after its boundary a service's new public port
 * accepts, seen from a client that follows the schedule.
 *
 *   boundary-probe HOST KEYFILE SERVICE FIRST-LAST INTERVAL_SEC BOUNDARIES
 *
 * For each of BOUNDARIES boundaries whose port differs from the one before,
 * it computes the new port (first candidate of the epoch: nothing is bound
 * in the range on the server), waits until 2 ms before the boundary, then
 * connects again and again (each refusal comes back at once) until one
 * completes (50 us apart). Prints one line per boundary ("open_us N": from the boundary to
 * the accepted connect; negative if it was open early) and a summary line
 * with the median, p99 and worst. A port that does not accept within
 * 500 ms counts as failed. Exit 0 unless an argument or the key is wrong. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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

#define EARLY_USEC 2000
#define GIVE_UP_USEC 500000

static void sleep_until_usec(uint64_t when)
{
	struct timespec ts = {.tv_sec = (time_t)(when / 1000000),
			      .tv_nsec = (long)(when % 1000000) * 1000};

	while (clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

/* 1: the handshake completed; 0: refused or no answer within 5 ms. */
static int try_connect(const struct addrinfo *ai, uint16_t port)
{
	struct sockaddr_storage addr;
	struct pollfd pfd;
	int fd, err = 0, r = 0;
	socklen_t len = sizeof(err);

	memcpy(&addr, ai->ai_addr, ai->ai_addrlen);
	if (addr.ss_family == AF_INET)
		((struct sockaddr_in *)&addr)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)&addr)->sin6_port = htons(port);
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return 0;
	if (connect(fd, (struct sockaddr *)&addr, ai->ai_addrlen) == 0)
		r = 1;
	else if (errno == EINPROGRESS) {
		pfd = (struct pollfd){.fd = fd, .events = POLLOUT};
		if (poll(&pfd, 1, 5) == 1 &&
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0)
			r = 1;
	}
	close(fd);
	return r;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	struct schedule_params p = {0};
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
	uint8_t *key = NULL;
	char *error = NULL;
	unsigned first, last;
	int boundaries, measured = 0, failed = 0;
	int64_t *open_us;

	if (argc != 7 || sscanf(argv[4], "%u-%u", &first, &last) != 2 || first > last ||
	    last > 65535 || atoi(argv[5]) <= 0 || (boundaries = atoi(argv[6])) <= 0) {
		fprintf(stderr, "usage: boundary-probe HOST KEYFILE SERVICE FIRST-LAST "
				"INTERVAL_SEC BOUNDARIES\n");
		return 2;
	}
	if (policy_read_key_file(argv[2], &key, &p.key_len, &error) < 0) {
		fprintf(stderr, "boundary-probe: %s\n", error ? error : argv[2]);
		return 2;
	}
	if (getaddrinfo(argv[1], NULL, &hints, &ai) != 0) {
		fprintf(stderr, "boundary-probe: cannot resolve %s\n", argv[1]);
		return 2;
	}
	p.key = key;
	p.service = argv[3];
	p.first = (uint16_t)first;
	p.last = (uint16_t)last;
	p.interval_sec = (uint64_t)atoi(argv[5]);
	open_us = calloc((size_t)boundaries, sizeof(*open_us));
	if (!open_us)
		return 1;
	while (measured + failed < boundaries) {
		uint64_t boundary, epoch, start;
		uint16_t port, before;

		if (schedule_next_boundary_usec(now(CLOCK_REALTIME) + EARLY_USEC, p.interval_sec,
						&boundary) < 0)
			return 1;
		epoch = boundary / 1000000 / p.interval_sec;
		if (schedule_port(&p, epoch, &port) < 0 ||
		    schedule_port(&p, epoch - 1, &before) < 0)
			return 1;
		if (port == before) {
			sleep_until_usec(boundary);
			continue;
		}
		sleep_until_usec(boundary - EARLY_USEC);
		start = now(CLOCK_REALTIME);
		for (;;) {
			uint64_t now_usec;

			if (try_connect(ai, port)) {
				now_usec = now(CLOCK_REALTIME);
				open_us[measured] = (int64_t)now_usec - (int64_t)boundary;
				printf("open_us %lld port %u\n", (long long)open_us[measured++],
				       port);
				break;
			}
			/* a client retrying at once, without taking a core from the agent */
			nanosleep(&(struct timespec){.tv_nsec = 50000}, NULL);
			now_usec = now(CLOCK_REALTIME);
			if (now_usec > boundary + GIVE_UP_USEC || now_usec < start) {
				printf("failed port %u: not open %llu ms after its boundary\n",
				       port, (unsigned long long)(GIVE_UP_USEC / 1000));
				failed++;
				break;
			}
		}
		fflush(stdout);
	}
	qsort(open_us, (size_t)measured, sizeof(*open_us), cmp_i64);
	if (measured > 0)
		printf("summary: boundaries %d failed %d median_us %lld p99_us %lld max_us %lld\n",
		       measured, failed, (long long)open_us[measured / 2],
		       (long long)open_us[(measured * 99 + 99) / 100 - 1],
		       (long long)open_us[measured - 1]);
	else
		printf("summary: boundaries 0 failed %d\n", failed);
	freeaddrinfo(ai);
	free(open_us);
	free(key);
	return 0;
}
