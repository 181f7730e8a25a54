/* SPDX-License-Identifier: MIT */
/* netprobe: the TCP ends of the network tests (and a bound UDP socket), so
 * they need no netcat flavour or interpreter.
 *
 *   netprobe echo-server ADDR PORT      echo every connection (forks), until killed
 *   netprobe ping HOST PORT [MS]        connect, send a line, expect it back; exit 0/1
 *   netprobe connect HOST PORT [MS]     does the port complete a TCP handshake? exit 0/1
 *   netprobe scan HOST FIRST LAST       a naive TCP connect scan in port order: prints
 *                                       open ports, counts refused ones, stops after
 *                                       10 silent ports in a row (blocked)
 *   netprobe stream HOST PORT SECONDS   one connection: write a counting pattern,
 *                                       read it back, fail on any lost or wrong byte
 *   netprobe slow-get HOST PORT PATH RATE OUT
 *                                       HTTP/1.0 GET of PATH, read at RATE bytes/s
 *                                       through a 16 KiB receive buffer (so the sender
 *                                       cannot push it all into the client's kernel),
 *                                       the body into OUT; exit 0 only when the whole
 *                                       Content-Length arrived; 1 after 4 s without a
 *                                       byte, a reset or a short body
 *   netprobe udp-bound ADDR PORT [PEER-PORT]
 *                                       a UDP socket bound to ADDR:PORT (connected to
 *                                       ADDR:PEER-PORT if given), held until killed
 *
 * NETPROBE_SOURCE=ADDR: connections leave from ADDR (one of this host's).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int resolve(const char *host, const char *port, int flags, struct addrinfo **ret)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = flags};
	int r = getaddrinfo(host, port, &hints, ret);

	if (r != 0) {
		fprintf(stderr, "netprobe: %s:%s: %s\n", host, port, gai_strerror(r));
		return -1;
	}
	return 0;
}

/* NETPROBE_SOURCE: the source address a test gives a connection. */
static int bind_source(int fd, int family)
{
	const char *source = getenv("NETPROBE_SOURCE");
	struct sockaddr_storage ss = {0};
	struct sockaddr_in *in = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

	if (!source || !source[0])
		return 0;
	if (family == AF_INET && inet_pton(AF_INET, source, &in->sin_addr) == 1)
		in->sin_family = AF_INET;
	else if (family == AF_INET6 && inet_pton(AF_INET6, source, &in6->sin6_addr) == 1)
		in6->sin6_family = AF_INET6;
	else {
		errno = EAFNOSUPPORT;
		return -1;
	}
	return bind(fd, (struct sockaddr *)&ss, sizeof(ss));
}

static int connect_timeout(const char *host, const char *port, int timeout_ms)
{
	struct addrinfo *ai;
	int fd = -1;

	if (resolve(host, port, 0, &ai) < 0)
		return -1;
	for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
		struct pollfd pfd;
		int err = 0;
		socklen_t len = sizeof(err);

		fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0)
			continue;
		if (bind_source(fd, a->ai_family) < 0)
			goto next;
		if (connect(fd, a->ai_addr, a->ai_addrlen) < 0 && errno != EINPROGRESS)
			goto next;
		pfd = (struct pollfd){.fd = fd, .events = POLLOUT};
		if (poll(&pfd, 1, timeout_ms) <= 0) {
			errno = ETIMEDOUT;
			goto next;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
			errno = err;
			goto next;
		}
		fcntl(fd, F_SETFL, 0);
		break;
	next:
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

/* The honeypot behind a decoy completes the handshake and resets at once; on a
 * busy machine the reset can arrive before this process reads the outcome.
 * A reset (not a refusal, which is ECONNREFUSED) means the handshake completed. */
static bool handshake_completed(int fd)
{
	return fd >= 0 || errno == ECONNRESET;
}

static int echo_server(const char *addr, const char *port)
{
	struct addrinfo *ai;
	int fd, one = 1;

	if (resolve(addr, port, AI_PASSIVE, &ai) < 0)
		return 2;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 128) < 0) {
		fprintf(stderr, "netprobe: listen %s:%s: %s\n", addr, port, strerror(errno));
		return 2;
	}
	freeaddrinfo(ai);
	signal(SIGCHLD, SIG_IGN);
	for (;;) {
		int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
		char buffer[65536];
		ssize_t n;

		if (c < 0)
			continue;
		if (fork() == 0) {
			close(fd);
			while ((n = read(c, buffer, sizeof(buffer))) > 0)
				if (write(c, buffer, (size_t)n) != n)
					break;
			_exit(0);
		}
		close(c);
	}
}

static int ping(const char *host, const char *port, int timeout_ms)
{
	static const char line[] = "mtd-ping\n";
	char buffer[sizeof(line)];
	size_t got = 0;
	int fd = connect_timeout(host, port, timeout_ms);
	struct pollfd pfd;

	if (fd < 0) {
		fprintf(stderr, "netprobe: connect %s:%s: %s\n", host, port, strerror(errno));
		return 1;
	}
	if (write(fd, line, sizeof(line) - 1) != (ssize_t)(sizeof(line) - 1))
		return 1;
	pfd = (struct pollfd){.fd = fd, .events = POLLIN};
	while (got < sizeof(line) - 1) {
		ssize_t n;

		if (poll(&pfd, 1, timeout_ms) <= 0) {
			fprintf(stderr, "netprobe: %s:%s: no echo\n", host, port);
			return 1;
		}
		n = read(fd, buffer + got, sizeof(line) - 1 - got);
		if (n <= 0) {
			fprintf(stderr, "netprobe: %s:%s: closed before the echo\n", host, port);
			return 1;
		}
		got += (size_t)n;
	}
	close(fd);
	return memcmp(buffer, line, sizeof(line) - 1) == 0 ? 0 : 1;
}

static uint8_t pattern_byte(uint64_t offset)
{
	return (uint8_t)(offset * 131 + (offset >> 8));
}

/* Writes and reads back a pattern for SECONDS; every byte must come back in order. */
static int stream(const char *host, const char *port, int seconds)
{
	int fd = connect_timeout(host, port, 3000);
	uint64_t written = 0, read_back = 0;
	time_t end = time(NULL) + seconds;
	uint8_t out[4096], in[65536];

	if (fd < 0) {
		fprintf(stderr, "netprobe: connect %s:%s: %s\n", host, port, strerror(errno));
		return 1;
	}
	while (time(NULL) < end || read_back < written) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (time(NULL) < end && written - read_back < 1u << 20) {
			for (size_t i = 0; i < sizeof(out); i++)
				out[i] = pattern_byte(written + i);
			if (write(fd, out, sizeof(out)) != (ssize_t)sizeof(out)) {
				fprintf(stderr,
					"netprobe: stream write failed after %llu bytes: %s\n",
					(unsigned long long)written, strerror(errno));
				return 1;
			}
			written += sizeof(out);
		}
		if (poll(&pfd, 1, time(NULL) < end ? 10 : 5000) == 0 && time(NULL) >= end) {
			fprintf(stderr, "netprobe: stream stalled: %llu of %llu bytes back\n",
				(unsigned long long)read_back, (unsigned long long)written);
			return 1;
		}
		if (!(pfd.revents & POLLIN))
			continue;
		n = read(fd, in, sizeof(in));
		if (n <= 0) {
			fprintf(stderr, "netprobe: stream closed after %llu bytes back\n",
				(unsigned long long)read_back);
			return 1;
		}
		for (ssize_t i = 0; i < n; i++)
			if (in[i] != pattern_byte(read_back + (uint64_t)i)) {
				fprintf(stderr, "netprobe: stream byte %llu wrong\n",
					(unsigned long long)(read_back + (uint64_t)i));
				return 1;
			}
		read_back += (uint64_t)n;
		/* Pace the writer so the connection lives through the whole run. */
		usleep(2000);
	}
	printf("stream: %llu bytes written and read back intact over %d s\n",
	       (unsigned long long)written, seconds);
	close(fd);
	return 0;
}

static int scan(const char *host, unsigned first, unsigned last)
{
	unsigned refused = 0, silent_in_a_row = 0, open = 0;

	for (unsigned port = first; port <= last; port++) {
		char text[8];
		int fd;

		snprintf(text, sizeof(text), "%u", port);
		errno = 0;
		fd = connect_timeout(host, text, 100);
		if (handshake_completed(fd)) {
			printf("scan: %u open\n", port);
			if (fd >= 0)
				close(fd);
			open++;
			silent_in_a_row = 0;
		} else if (errno == ECONNREFUSED) {
			refused++;
			silent_in_a_row = 0;
		} else if (++silent_in_a_row >= 10) {
			printf("scan: from port %u on, no answer at all: this source is blocked\n",
			       port - 9);
			break;
		}
	}
	printf("scan: %u open, %u refused\n", open, refused);
	return 0;
}

static int slow_get(const char *host, const char *port, const char *path, long rate,
		    const char *out)
{
	struct timeval stall = {.tv_sec = 4};
	struct addrinfo *ai;
	char head[8192], buf[4096], request[512];
	size_t n_head = 0;
	long long length = -1, body = 0;
	int rcvbuf = 16384, fd;
	FILE *f;
	char *end;
	ssize_t n;

	if (rate <= 0 || resolve(host, port, 0, &ai) < 0)
		return 2;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &stall, sizeof(stall)) < 0 ||
	    connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		perror("netprobe: slow-get: connect");
		return 1;
	}
	freeaddrinfo(ai);
	snprintf(request, sizeof(request), "GET %s HTTP/1.0\r\n\r\n", path);
	if (write(fd, request, strlen(request)) != (ssize_t)strlen(request))
		return 1;
	f = fopen(out, "we");
	if (!f)
		return 2;
	/* the header, up to the blank line */
	while (!(end = memmem(head, n_head, "\r\n\r\n", 4))) {
		if (n_head == sizeof(head) ||
		    (n = read(fd, head + n_head, sizeof(head) - n_head)) <= 0) {
			fprintf(stderr, "netprobe: slow-get: no header\n");
			return 1;
		}
		n_head += (size_t)n;
	}
	for (char *p = head; p < end; p++)
		if (strncasecmp(p, "\nContent-Length:", 16) == 0)
			length = strtoll(p + 16, NULL, 10);
	end += 4;
	fwrite(end, 1, n_head - (size_t)(end - head), f);
	body = (long long)(n_head - (size_t)(end - head));
	/* the body, rate bytes a second in 4 KiB reads */
	for (;;) {
		struct timespec pause = {.tv_nsec = (long)(sizeof(buf) * 1000000000ll / rate)};

		n = read(fd, buf, sizeof(buf));
		if (n == 0)
			break;
		if (n < 0) {
			fprintf(stderr, "netprobe: slow-get: after %lld bytes: %s\n", body,
				errno == EAGAIN ? "stalled for 4 s" : strerror(errno));
			fclose(f);
			return 1;
		}
		fwrite(buf, 1, (size_t)n, f);
		body += n;
		while (pause.tv_nsec >= 1000000000l) {
			pause.tv_sec++;
			pause.tv_nsec -= 1000000000l;
		}
		nanosleep(&pause, NULL);
	}
	close(fd);
	if (fclose(f) != 0 || length < 0 || body != length) {
		fprintf(stderr, "netprobe: slow-get: %lld of %lld bytes\n", body, length);
		return 1;
	}
	return 0;
}

static int udp_bound(const char *addr, const char *port, const char *peer_port)
{
	struct addrinfo hints = {.ai_socktype = SOCK_DGRAM, .ai_flags = AI_NUMERICHOST};
	struct addrinfo *local, *peer = NULL;
	int fd, r;

	r = getaddrinfo(addr, port, &hints, &local);
	if (r == 0 && peer_port)
		r = getaddrinfo(addr, peer_port, &hints, &peer);
	if (r != 0) {
		fprintf(stderr, "netprobe: udp %s:%s: %s\n", addr, port, gai_strerror(r));
		return 1;
	}
	fd = socket(local->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, local->ai_addr, local->ai_addrlen) < 0 ||
	    (peer && connect(fd, peer->ai_addr, peer->ai_addrlen) < 0)) {
		fprintf(stderr, "netprobe: udp %s:%s: %s\n", addr, port, strerror(errno));
		return 1;
	}
	freeaddrinfo(local);
	if (peer)
		freeaddrinfo(peer);
	for (;;)
		pause();
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc == 4 && strcmp(argv[1], "echo-server") == 0)
		return echo_server(argv[2], argv[3]);
	if ((argc == 4 || argc == 5) && strcmp(argv[1], "ping") == 0)
		return ping(argv[2], argv[3], argc == 5 ? atoi(argv[4]) : 2000);
	if ((argc == 4 || argc == 5) && strcmp(argv[1], "connect") == 0) {
		int fd = connect_timeout(argv[2], argv[3], argc == 5 ? atoi(argv[4]) : 2000);
		if (!handshake_completed(fd))
			return 1;
		if (fd >= 0)
			close(fd);
		return 0;
	}
	if (argc == 5 && strcmp(argv[1], "scan") == 0)
		return scan(argv[2], (unsigned)atoi(argv[3]), (unsigned)atoi(argv[4]));
	if (argc == 5 && strcmp(argv[1], "stream") == 0)
		return stream(argv[2], argv[3], atoi(argv[4]));
	if (argc == 7 && strcmp(argv[1], "slow-get") == 0)
		return slow_get(argv[2], argv[3], argv[4], atol(argv[5]), argv[6]);
	if ((argc == 4 || argc == 5) && strcmp(argv[1], "udp-bound") == 0)
		return udp_bound(argv[2], argv[3], argc == 5 ? argv[4] : NULL);
	fprintf(stderr,
		"usage: netprobe echo-server ADDR PORT | ping HOST PORT [MS] | connect HOST PORT "
		"[MS] | scan HOST FIRST LAST | stream HOST PORT SECONDS | slow-get HOST PORT PATH "
		"RATE OUT | udp-bound ADDR PORT "
		"[PEER-PORT]\n");
	return 2;
}
