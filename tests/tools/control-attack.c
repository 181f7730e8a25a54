/* SPDX-License-Identifier: MIT */
/* control-attack: a hostile (or merely busy) local client of the control
 * socket, for the tests and the benchmark. Run it as the user to attack as.
 *
 *   control-attack hold SOCKET N SECONDS
 *       open N connections and keep them idle for SECONDS; prints
 *       "held H refused R" (a refused connection gets one error message)
 *   control-attack flood SOCKET JSON COUNT [CONNECTIONS [SECONDS]]
 *       send COUNT copies of the request JSON as fast as the socket takes them,
 *       round robin over CONNECTIONS connections, reading replies meanwhile,
 *       for at most SECONDS (60);
 *       prints "sent S replies N ok K refused F rate R permission P"
 *       (a streamed reply counts once, at its last message)
 *   control-attack probe SOCKET N INTERVAL_MS
 *       N status requests, each on a new connection like mtdctl's, one every
 *       INTERVAL_MS; prints "median_ms M p99_ms P max_ms X failed F"
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define REPLY_MAX (256 * 1024)

static char reply[REPLY_MAX];

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int connect_socket(const char *path)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof(addr.sun_path))
		return -1;
	strcpy(addr.sun_path, path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int cmd_hold(const char *path, int n, int seconds)
{
	int *fds = calloc((size_t)n, sizeof(int));
	int held = 0, refused = 0;

	if (!fds)
		return 1;
	for (int i = 0; i < n; i++) {
		struct pollfd p;

		fds[i] = connect_socket(path);
		if (fds[i] < 0) {
			refused++;
			continue;
		}
		/* A connection over the limits gets its reason and EOF at once. */
		p = (struct pollfd){.fd = fds[i], .events = POLLIN};
		if (poll(&p, 1, 100) > 0) {
			ssize_t len = recv(fds[i], reply, sizeof(reply) - 1, 0);

			if (len > 0) {
				reply[len] = '\0';
				if (refused == 0)
					fprintf(stderr, "control-attack: refused: %s\n", reply);
			}
			close(fds[i]);
			fds[i] = -1;
			refused++;
			continue;
		}
		held++;
	}
	printf("held %d refused %d\n", held, refused);
	fflush(stdout);
	sleep((unsigned)seconds);
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(fds);
	return 0;
}

struct counts {
	long replies, ok, refused, rate, permission;
};

static void count_reply(const char *text, struct counts *c)
{
	if (strstr(text, "\"more\":true"))
		return;
	c->replies++;
	if (strstr(text, "\"ok\":true")) {
		c->ok++;
		return;
	}
	c->refused++;
	if (strstr(text, "rate limit"))
		c->rate++;
	else if (strstr(text, "permission denied"))
		c->permission++;
}

static int cmd_flood(const char *path, const char *json, long count, int n_conns, int seconds)
{
	struct pollfd *p = calloc((size_t)n_conns, sizeof(*p));
	long sent = 0, next = 0;
	struct counts c = {0};
	size_t len = strlen(json);
	double deadline;

	if (!p)
		return 1;
	for (int i = 0; i < n_conns; i++) {
		p[i].fd = connect_socket(path);
		if (p[i].fd < 0) {
			perror("control-attack: connect");
			return 1;
		}
		p[i].events = POLLIN | POLLOUT;
	}
	deadline = now_ms() + 1000.0 * seconds;
	while (c.replies < count && now_ms() < deadline) {
		int alive = 0;

		if (poll(p, (nfds_t)n_conns, 100) < 0 && errno != EINTR)
			break;
		for (int i = 0; i < n_conns; i++) {
			if (p[i].fd < 0)
				continue;
			alive++;
			if (p[i].revents & POLLIN) {
				ssize_t r = recv(p[i].fd, reply, sizeof(reply) - 1, MSG_DONTWAIT);

				if (r > 0) {
					reply[r] = '\0';
					count_reply(reply, &c);
				} else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
					close(p[i].fd);
					p[i].fd = -1;
					continue;
				}
			}
			if ((p[i].revents & POLLOUT) && sent < count && next % n_conns == i) {
				if (send(p[i].fd, json, len, MSG_DONTWAIT | MSG_NOSIGNAL) ==
				    (ssize_t)len) {
					sent++;
					next++;
				}
			}
			if (p[i].revents & (POLLHUP | POLLERR)) {
				close(p[i].fd);
				p[i].fd = -1;
			}
			p[i].events = POLLIN | (sent < count ? POLLOUT : 0);
		}
		if (alive == 0)
			break;
	}
	printf("sent %ld replies %ld ok %ld refused %ld rate %ld permission %ld\n", sent, c.replies,
	       c.ok, c.refused, c.rate, c.permission);
	for (int i = 0; i < n_conns; i++)
		if (p[i].fd >= 0)
			close(p[i].fd);
	free(p);
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int cmd_probe(const char *path, int n, int interval_ms)
{
	static const char request[] = "{\"command\":\"status\"}";
	double *lat = calloc((size_t)n, sizeof(double));
	int got = 0, failed = 0;

	if (!lat)
		return 1;
	for (int i = 0; i < n; i++) {
		double t0 = now_ms();
		int fd = connect_socket(path);
		ssize_t r = -1;

		if (fd >= 0 && send(fd, request, sizeof(request) - 1, MSG_NOSIGNAL) > 0)
			r = recv(fd, reply, sizeof(reply) - 1, 0);
		if (fd >= 0)
			close(fd);
		if (r > 0) {
			reply[r] = '\0';
			if (strstr(reply, "\"ok\":true")) {
				lat[got++] = now_ms() - t0;
			} else {
				if (failed == 0)
					fprintf(stderr, "control-attack: status refused: %s\n",
						reply);
				failed++;
			}
		} else {
			if (failed == 0)
				fprintf(stderr, "control-attack: status failed: %s\n",
					fd < 0 ? "cannot connect"
					       : strerror(r < 0 ? errno : EPIPE));
			failed++;
		}
		if (interval_ms > 0)
			usleep((useconds_t)interval_ms * 1000);
	}
	qsort(lat, (size_t)got, sizeof(double), cmp_double);
	if (got == 0)
		printf("median_ms - p99_ms - max_ms - failed %d\n", failed);
	else {
		size_t p99 = (size_t)(0.99 * (double)got);

		if (p99 >= (size_t)got)
			p99 = (size_t)got - 1;
		printf("median_ms %.2f p99_ms %.2f max_ms %.2f failed %d\n", lat[got / 2], lat[p99],
		       lat[got - 1], failed);
	}
	free(lat);
	return failed > 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc >= 5 && strcmp(argv[1], "hold") == 0)
		return cmd_hold(argv[2], atoi(argv[3]), atoi(argv[4]));
	if (argc >= 5 && strcmp(argv[1], "flood") == 0)
		return cmd_flood(argv[2], argv[3], atol(argv[4]), argc >= 6 ? atoi(argv[5]) : 1,
				 argc >= 7 ? atoi(argv[6]) : 60);
	if (argc >= 5 && strcmp(argv[1], "probe") == 0)
		return cmd_probe(argv[2], atoi(argv[3]), atoi(argv[4]));
	fprintf(stderr, "usage: control-attack hold SOCKET N SECONDS | flood SOCKET JSON COUNT "
			"[CONNECTIONS [SECONDS]] | probe SOCKET N INTERVAL_MS\n");
	return 2;
}
