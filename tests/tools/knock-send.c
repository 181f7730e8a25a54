/* SPDX-License-Identifier: MIT */
/* knock-send: a client's knocks for the tests (common/knock.h), and the
 * attacker's variants: a replay of a saved packet, an old timestamp, a wrong
 * key, another client's knock port, a flood.
 *
 *   knock-send ports KEYFILE SERVICE CLIENT HOSTID FIRST LAST INTERVAL [UNIXTIME]
 *       prints "epoch=E knock=K door=D prev_knock=K' prev_door=D'" for the
 *       epoch of UNIXTIME (default now); the door as if nothing were excluded
 *   knock-send send [--skew SEC] [--admit ADDR] [--save FILE] [--count N]
 *                   [--from ADDR] KEYFILE SERVICE CLIENT HOSTID ADDR PORT
 *       sends N (default 1, at most 100000) knocks, each with a fresh random
 *       nonce, timed now + SEC (may be negative), to ADDR PORT (UDP); --save
 *       writes the last packet to FILE
 *   knock-send replay [--from ADDR] [--probe] FILE ADDR PORT
 *       sends FILE's bytes as one datagram; with --probe from a connected
 *       socket, then prints what came back within 1 s: "unreachable" (ICMP
 *       port unreachable), "silent" or "answered"
 *   knock-send latency N KEYDIR SERVICE HOSTID FIRST LAST INTERVAL ADDR SOURCE
 *       N clients c0 .. c(N-1) (keys KEYDIR/cI.key), each once, from the IPv4
 *       source SOURCE + i (addresses of this host): a knock to its knock port
 *       of the epoch, then TCP connects from the same source to its door
 *       (computed as if nothing were excluded), again at once on each
 *       refusal (20 us apart), until one is accepted (at most 1 s); prints the median and
 *       p99 of knock sent to connection accepted, and of a connect to the
 *       open door from the admitted source, in microseconds
 *
 * KEYFILE holds the client's raw key (16..4096 bytes). Exit 0 when every
 * datagram was handed to the kernel, 1 on failure, 2 on bad usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "knock.h"
#include "schedule.h"

#define MAX_KEY 4096
#define MAX_COUNT 100000

static int usage(const char *why, const char *arg)
{
	fprintf(stderr, "knock-send: %s%s%s\n", why, arg ? ": " : "", arg ? arg : "");
	fprintf(stderr,
		"usage: knock-send ports KEYFILE SERVICE CLIENT HOSTID FIRST LAST INTERVAL "
		"[UNIXTIME]\n"
		"       knock-send send [--skew SEC] [--admit ADDR] [--save FILE] [--count N] "
		"[--from ADDR] KEYFILE SERVICE CLIENT HOSTID ADDR PORT\n"
		"       knock-send replay [--from ADDR] FILE ADDR PORT\n");
	return 2;
}

static bool parse_int(const char *s, long long min, long long max, long long *ret)
{
	char *end = NULL;
	long long v;

	if (!*s)
		return false;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || !end || *end || v < min || v > max)
		return false;
	*ret = v;
	return true;
}

struct address {
	struct sockaddr_storage ss;
	socklen_t len;
};

static bool parse_address(const char *s, uint16_t port, struct address *ret)
{
	struct sockaddr_in *in = (struct sockaddr_in *)&ret->ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ret->ss;

	memset(ret, 0, sizeof(*ret));
	if (inet_pton(AF_INET, s, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons(port);
		ret->len = sizeof(*in);
		return true;
	}
	if (inet_pton(AF_INET6, s, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		ret->len = sizeof(*in6);
		return true;
	}
	return false;
}

static int read_file(const char *path, uint8_t *buf, size_t size, size_t *ret_len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0) {
		fprintf(stderr, "knock-send: %s: %s\n", path, strerror(errno));
		return -1;
	}
	n = read(fd, buf, size);
	close(fd);
	if (n < 0 || (size_t)n == size) {
		fprintf(stderr, "knock-send: %s: %s\n", path, n < 0 ? strerror(errno) : "too long");
		return -1;
	}
	*ret_len = (size_t)n;
	return 0;
}

static int read_key(const char *path, uint8_t *key, size_t *ret_len)
{
	if (read_file(path, key, MAX_KEY + 1, ret_len) < 0)
		return -1;
	if (*ret_len < 16) {
		fprintf(stderr, "knock-send: %s: a key has at least 16 bytes\n", path);
		return -1;
	}
	return 0;
}

static int cmd_ports(int argc, char **argv)
{
	uint8_t key[MAX_KEY + 1];
	size_t key_len;
	long long first, last, interval, t = (long long)time(NULL);
	uint64_t epoch;
	uint16_t knock, door, prev_knock = 0, prev_door = 0;
	struct schedule_client c;

	if (argc != 8 && argc != 9)
		return usage("ports takes 7 or 8 arguments", NULL);
	if (!parse_int(argv[5], 1, 65535, &first) || !parse_int(argv[6], first, 65535, &last))
		return usage("bad port range", argv[5]);
	if (!parse_int(argv[7], 1, 86400 * 365, &interval))
		return usage("bad interval", argv[7]);
	if (argc == 9 && !parse_int(argv[8], 0, INT64_MAX, &t))
		return usage("bad time", argv[8]);
	if (read_key(argv[1], key, &key_len) < 0)
		return 1;
	c = (struct schedule_client){.key = key,
				     .key_len = key_len,
				     .service = argv[2],
				     .client = argv[3],
				     .host_id = argv[4],
				     .first = (uint16_t)first,
				     .last = (uint16_t)last};
	if (schedule_epoch((uint64_t)t, (uint64_t)interval, &epoch) < 0 ||
	    schedule_client_knock_port(&c, epoch, &knock) < 0 ||
	    schedule_client_port(&c, epoch, NULL, NULL, &door) < 0 ||
	    (epoch > 0 && (schedule_client_knock_port(&c, epoch - 1, &prev_knock) < 0 ||
			   schedule_client_port(&c, epoch - 1, NULL, NULL, &prev_door) < 0))) {
		fprintf(stderr, "knock-send: no schedule for %s/%s at %s\n", argv[2], argv[3],
			argv[4]);
		return 1;
	}
	printf("epoch=%llu knock=%u door=%u prev_knock=%u prev_door=%u\n",
	       (unsigned long long)epoch, knock, door, prev_knock, prev_door);
	return 0;
}

static int open_socket(const struct address *to, const char *from)
{
	struct address local;
	int fd = socket(to->ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		fprintf(stderr, "knock-send: socket: %s\n", strerror(errno));
		return -1;
	}
	if (from) {
		if (!parse_address(from, 0, &local) || local.ss.ss_family != to->ss.ss_family) {
			fprintf(stderr,
				"knock-send: --from %s: not an address of the family of "
				"the destination\n",
				from);
			close(fd);
			return -1;
		}
		if (bind(fd, (struct sockaddr *)&local.ss, local.len) < 0) {
			fprintf(stderr, "knock-send: bind %s: %s\n", from, strerror(errno));
			close(fd);
			return -1;
		}
	}
	return fd;
}

static int send_datagram(int fd, const struct address *to, const uint8_t *buf, size_t len)
{
	if (sendto(fd, buf, len, 0, (const struct sockaddr *)&to->ss, to->len) != (ssize_t)len) {
		fprintf(stderr, "knock-send: sendto: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

static int cmd_send(int argc, char **argv)
{
	long long skew = 0, count = 1, port;
	const char *save = NULL, *from = NULL, *admit = NULL;
	uint8_t key[MAX_KEY + 1], packet[KNOCK_MAX_SIZE];
	size_t key_len;
	struct knock k = {.admit = KNOCK_ADMIT_SOURCE};
	struct knock_key kk;
	struct address to;
	int i = 1, fd, len = 0;

	for (; i < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
		if (i + 1 >= argc)
			return usage("option without value", argv[i]);
		if (strcmp(argv[i], "--skew") == 0) {
			if (!parse_int(argv[i + 1], -86400LL * 365 * 100, 86400LL * 365 * 100,
				       &skew))
				return usage("bad --skew", argv[i + 1]);
		} else if (strcmp(argv[i], "--count") == 0) {
			if (!parse_int(argv[i + 1], 1, MAX_COUNT, &count))
				return usage("bad --count", argv[i + 1]);
		} else if (strcmp(argv[i], "--save") == 0)
			save = argv[i + 1];
		else if (strcmp(argv[i], "--from") == 0)
			from = argv[i + 1];
		else if (strcmp(argv[i], "--admit") == 0)
			admit = argv[i + 1];
		else
			return usage("unknown option", argv[i]);
	}
	if (argc - i != 6)
		return usage("send takes KEYFILE SERVICE CLIENT HOSTID ADDR PORT", NULL);
	if (!parse_int(argv[i + 5], 1, 65535, &port))
		return usage("bad port", argv[i + 5]);
	if (!parse_address(argv[i + 4], (uint16_t)port, &to))
		return usage("bad address", argv[i + 4]);
	if (admit) {
		if (inet_pton(AF_INET, admit, k.admit_addr) == 1)
			k.admit = KNOCK_ADMIT_IPV4;
		else if (inet_pton(AF_INET6, admit, k.admit_addr) == 1)
			k.admit = KNOCK_ADMIT_IPV6;
		else
			return usage("bad --admit", admit);
	}
	if (!schedule_client_name_valid(argv[i + 2]))
		return usage("bad client name", argv[i + 2]);
	if (read_key(argv[i], key, &key_len) < 0)
		return 1;
	snprintf(k.client, sizeof(k.client), "%s", argv[i + 2]);
	kk = (struct knock_key){
	    .key = key, .key_len = key_len, .service = argv[i + 1], .host_id = argv[i + 3]};
	fd = open_socket(&to, from);
	if (fd < 0)
		return 1;
	for (long long n = 0; n < count; n++) {
		k.time_sec = (uint64_t)((long long)time(NULL) + skew);
		if (getrandom(k.nonce, sizeof(k.nonce), 0) != (ssize_t)sizeof(k.nonce)) {
			fprintf(stderr, "knock-send: getrandom: %s\n", strerror(errno));
			close(fd);
			return 1;
		}
		len = knock_encode(&k, &kk, packet, sizeof(packet));
		if (len < 0) {
			fprintf(stderr, "knock-send: knock_encode: %s\n", strerror(-len));
			close(fd);
			return 1;
		}
		if (send_datagram(fd, &to, packet, (size_t)len) < 0) {
			close(fd);
			return 1;
		}
	}
	close(fd);
	if (save) {
		FILE *f = fopen(save, "we");

		if (!f || fwrite(packet, 1, (size_t)len, f) != (size_t)len || fclose(f) != 0) {
			fprintf(stderr, "knock-send: %s: %s\n", save, strerror(errno));
			return 1;
		}
	}
	return 0;
}

/* After a datagram from a connected socket: what came back within 1 s. */
static const char *probe_answer(int fd)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	uint8_t buf[64];

	if (poll(&pfd, 1, 1000) <= 0)
		return "silent";
	if (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) < 0 && errno == ECONNREFUSED)
		return "unreachable";
	return "answered";
}

static int cmd_replay(int argc, char **argv)
{
	bool probe = false;
	const char *from = NULL;
	uint8_t packet[65536];
	size_t len;
	long long port;
	struct address to;
	int i = 1, fd, r;

	for (;;) {
		if (i + 1 < argc && strcmp(argv[i], "--from") == 0) {
			from = argv[i + 1];
			i += 2;
		} else if (i < argc && strcmp(argv[i], "--probe") == 0) {
			probe = true;
			i++;
		} else
			break;
	}
	if (argc - i != 3)
		return usage("replay takes FILE ADDR PORT", NULL);
	if (!parse_int(argv[i + 2], 1, 65535, &port))
		return usage("bad port", argv[i + 2]);
	if (!parse_address(argv[i + 1], (uint16_t)port, &to))
		return usage("bad address", argv[i + 1]);
	if (read_file(argv[i], packet, sizeof(packet), &len) < 0)
		return 1;
	fd = open_socket(&to, from);
	if (fd < 0)
		return 1;
	if (probe && connect(fd, (struct sockaddr *)&to.ss, to.len) < 0) {
		fprintf(stderr, "knock-send: connect: %s\n", strerror(errno));
		close(fd);
		return 1;
	}
	r = send_datagram(fd, &to, packet, len);
	if (r == 0 && probe)
		printf("%s\n", probe_answer(fd));
	close(fd);
	return r < 0 ? 1 : 0;
}

/* A TCP connect from source to door: 1 accepted, 0 refused, -1 error. */
static int try_connect(const struct address *source, const struct address *door)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), r;

	if (fd < 0)
		return -1;
	if (bind(fd, (const struct sockaddr *)&source->ss, source->len) < 0) {
		fprintf(stderr, "knock-send: bind: %s\n", strerror(errno));
		close(fd);
		return -1;
	}
	r = connect(fd, (const struct sockaddr *)&door->ss, door->len);
	if (r < 0 && errno != ECONNREFUSED)
		fprintf(stderr, "knock-send: connect: %s\n", strerror(errno));
	r = r == 0 ? 1 : errno == ECONNREFUSED ? 0 : -1;
	close(fd);
	return r;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void print_figures(const char *what, uint64_t *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_u64);
	printf("%s: n=%zu median=%llu us p99=%llu us max=%llu us\n", what, n,
	       (unsigned long long)v[n / 2], (unsigned long long)v[(n * 99) / 100],
	       (unsigned long long)v[n - 1]);
}

static int cmd_latency(int argc, char **argv)
{
	long long n, first, last, interval;
	uint8_t key[MAX_KEY + 1], packet[KNOCK_MAX_SIZE];
	size_t key_len;
	struct knock k = {.admit = KNOCK_ADMIT_SOURCE};
	struct address to, door, source;
	struct in_addr base;
	uint64_t *knocked = NULL, *open = NULL, epoch;
	int rc = 1;

	if (argc != 10)
		return usage("latency takes 9 arguments", NULL);
	if (!parse_int(argv[1], 1, MAX_COUNT, &n))
		return usage("bad count", argv[1]);
	if (!parse_int(argv[5], 1, 65535, &first) || !parse_int(argv[6], first, 65535, &last))
		return usage("bad port range", argv[5]);
	if (!parse_int(argv[7], 1, 86400 * 365, &interval))
		return usage("bad interval", argv[7]);
	if (!parse_address(argv[8], 1, &to) || to.ss.ss_family != AF_INET)
		return usage("not an IPv4 address", argv[8]);
	if (inet_pton(AF_INET, argv[9], &base) != 1)
		return usage("bad source", argv[9]);
	knocked = calloc((size_t)n, sizeof(*knocked));
	open = calloc((size_t)n, sizeof(*open));
	if (!knocked || !open)
		goto out;
	(void)prctl(PR_SET_TIMERSLACK, 1UL); /* the 20 us sleeps below are 20 us */
	for (long long i = 0; i < n; i++) {
		struct in_addr a = {.s_addr = htonl(ntohl(base.s_addr) + (uint32_t)i)};
		char text[INET_ADDRSTRLEN], path[4096], name[32];
		struct schedule_client c;
		struct knock_key kk;
		uint16_t knock_port, door_port;
		uint64_t start, deadline;
		int len, fd, r = 0;

		snprintf(name, sizeof(name), "c%lld", i);
		snprintf(path, sizeof(path), "%s/%s.key", argv[2], name);
		if (read_key(path, key, &key_len) < 0)
			goto out;
		c = (struct schedule_client){.key = key,
					     .key_len = key_len,
					     .service = argv[3],
					     .client = name,
					     .host_id = argv[4],
					     .first = (uint16_t)first,
					     .last = (uint16_t)last};
		if (schedule_epoch((uint64_t)time(NULL), (uint64_t)interval, &epoch) < 0 ||
		    schedule_client_knock_port(&c, epoch, &knock_port) < 0 ||
		    schedule_client_port(&c, epoch, NULL, NULL, &door_port) < 0)
			goto out;
		parse_address(argv[8], knock_port, &to);
		parse_address(argv[8], door_port, &door);
		inet_ntop(AF_INET, &a, text, sizeof(text));
		parse_address(text, 0, &source);
		snprintf(k.client, sizeof(k.client), "%s", name);
		kk = (struct knock_key){
		    .key = key, .key_len = key_len, .service = argv[3], .host_id = argv[4]};
		k.time_sec = (uint64_t)time(NULL);
		if (getrandom(k.nonce, sizeof(k.nonce), 0) != (ssize_t)sizeof(k.nonce))
			goto out;
		len = knock_encode(&k, &kk, packet, sizeof(packet));
		fd = open_socket(&to, text);
		if (len < 0 || fd < 0)
			goto out;
		start = now(CLOCK_MONOTONIC);
		deadline = start + USEC_PER_SEC;
		r = send_datagram(fd, &to, packet, (size_t)len);
		close(fd);
		/* 20 us between tries: a client spinning on connect() would take
		 * the core the agent needs (2 cores, shared) */
		while (r == 0 && now(CLOCK_MONOTONIC) < deadline) {
			r = try_connect(&source, &door);
			if (r == 0)
				nanosleep(&(struct timespec){.tv_nsec = 20000}, NULL);
		}
		if (r != 1) {
			fprintf(stderr, "knock-send: %s (%s) was not admitted to %u within 1 s\n",
				text, name, door_port);
			goto out;
		}
		knocked[i] = now(CLOCK_MONOTONIC) - start;
		/* the same source, admitted: a connect alone, for comparison */
		start = now(CLOCK_MONOTONIC);
		if (try_connect(&source, &door) != 1) {
			fprintf(stderr, "knock-send: %s admitted, then refused\n", text);
			goto out;
		}
		open[i] = now(CLOCK_MONOTONIC) - start;
	}
	print_figures("knock to admitted (knock sent to connection accepted)", knocked, (size_t)n);
	print_figures("connect to the open door, same sources (comparison)", open, (size_t)n);
	rc = 0;
out:
	free(knocked);
	free(open);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage("no command", NULL);
	if (strcmp(argv[1], "ports") == 0)
		return cmd_ports(argc - 1, argv + 1);
	if (strcmp(argv[1], "send") == 0)
		return cmd_send(argc - 1, argv + 1);
	if (strcmp(argv[1], "replay") == 0)
		return cmd_replay(argc - 1, argv + 1);
	if (strcmp(argv[1], "latency") == 0)
		return cmd_latency(argc - 1, argv + 1);
	return usage("unknown command", argv[1]);
}
