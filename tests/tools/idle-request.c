/* SPDX-License-Identifier: MIT */
/* idle-request HOST PORT: a keep-alive client that went quiet. Connects,
 * prints "connected", then waits for a line on stdin (the test kills the
 * instance meanwhile), sends an HTTP/1.0 GET on the idle connection and says
 * what came back, on one line:
 *
 *   reset MS      the connection was reset (ECONNRESET or EPIPE), MS after the send
 *   eof MS        the server closed it
 *   answered MS   bytes came back (the instance is alive)
 *   hang          nothing within 10 s: the connection was left hanging
 *
 * idle-request --waiting HOST PORT: a client whose request is already inside
 * the instance and who waits for the answer. Connects and sends at once the
 * start of a request the server keeps waiting for the end of (a header line
 * without the blank line that ends the headers: the server reads it and
 * answers nothing), prints "sent", then waits for the answer without sending
 * anything more; the line says what came back as above, followed by the
 * wall clock (CLOCK_REALTIME, ms) when it did ("reset MS AT").
 *
 * Exit 0 for reset, 1 for hang, 3 for eof, 4 for answered, 2 on usage or a
 * failed connect. */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HANG_MS 10000

static long long ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000LL + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

static long long realtime_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return t.tv_sec * 1000LL + t.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
	static const char request[] = "GET / HTTP/1.0\r\n\r\n";
	static const char partial[] = "GET / HTTP/1.0\r\nX-Waiting: yes\r\n";
	bool waiting = argc == 4 && strcmp(argv[1], "--waiting") == 0;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
	struct timespec t0;
	char line[64], buf[512];
	struct pollfd pfd;
	int fd, r;

	if (waiting) {
		argv++;
		argc--;
	}
	if (argc != 3) {
		fprintf(stderr, "usage: idle-request [--waiting] HOST PORT\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	r = getaddrinfo(argv[1], argv[2], &hints, &ai);
	if (r != 0) {
		fprintf(stderr, "idle-request: %s:%s: %s\n", argv[1], argv[2], gai_strerror(r));
		return 2;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		fprintf(stderr, "idle-request: connect %s:%s: %s\n", argv[1], argv[2],
			strerror(errno));
		return 2;
	}
	freeaddrinfo(ai);
	printf("connected\n");
	fflush(stdout);
	if (!waiting && !fgets(line, sizeof(line), stdin))
		return 2;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (waiting ? send(fd, partial, sizeof(partial) - 1, 0) < 0
		    : send(fd, request, sizeof(request) - 1, 0) < 0) {
		if (errno == ECONNRESET || errno == EPIPE) {
			printf("reset %lld\n", ms_since(&t0));
			return 0;
		}
		fprintf(stderr, "idle-request: send: %s\n", strerror(errno));
		return 2;
	}
	if (waiting) {
		printf("sent\n");
		fflush(stdout);
	}
	pfd = (struct pollfd){.fd = fd, .events = POLLIN};
	r = poll(&pfd, 1, HANG_MS);
	if (r == 0) {
		printf("hang\n");
		return 1;
	}
	r = (int)recv(fd, buf, sizeof(buf), 0);
	if (r < 0 && (errno == ECONNRESET || errno == EPIPE)) {
		printf("reset %lld %lld\n", ms_since(&t0), realtime_ms());
		return 0;
	}
	if (r < 0) {
		fprintf(stderr, "idle-request: recv: %s\n", strerror(errno));
		return 2;
	}
	printf("%s %lld %lld\n", r == 0 ? "eof" : "answered", ms_since(&t0), realtime_ms());
	return r == 0 ? 3 : 4;
}
