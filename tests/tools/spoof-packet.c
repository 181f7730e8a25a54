/* SPDX-License-Identifier: MIT */
/* spoof-packet: what an attacker who forges source addresses sends, for the
 * tests that check a forged packet gets nobody blocked. Builds the whole IP
 * header itself (a raw socket: IP_HDRINCL for IPv4, IPPROTO_RAW on AF_INET6),
 * with correct IP and TCP/UDP checksums, so the packet is accepted by the
 * receiving kernel exactly as a real one would be.
 *
 *   spoof-packet tcp|udp SRC_ADDR SRC_PORT DST_ADDR DST_PORT [COUNT]
 *
 * Sends COUNT (default 1, at most 10000) TCP SYNs or UDP datagrams (payload
 * "mtd-spoof\n") from SRC_ADDR to DST_ADDR, the i-th from source port
 * SRC_PORT + i (each its own flow: its own conntrack entry, its own decoy
 * hit). Both addresses of one family, IPv4 or IPv6. Needs CAP_NET_RAW. Exit
 * 0 when every packet was handed to the kernel, 1 otherwise, 2 on bad usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PAYLOAD "mtd-spoof\n"
#define MAX_COUNT 10000

struct addr {
	int family;
	union {
		struct in_addr in;
		struct in6_addr in6;
	};
};

static int usage(const char *why, const char *arg)
{
	fprintf(stderr, "spoof-packet: %s%s%s\n", why, arg ? ": " : "", arg ? arg : "");
	fprintf(stderr,
		"usage: spoof-packet tcp|udp SRC_ADDR SRC_PORT DST_ADDR DST_PORT [COUNT]\n");
	return 2;
}

static bool parse_addr(const char *s, struct addr *ret)
{
	memset(ret, 0, sizeof(*ret));
	if (inet_pton(AF_INET, s, &ret->in) == 1)
		ret->family = AF_INET;
	else if (inet_pton(AF_INET6, s, &ret->in6) == 1)
		ret->family = AF_INET6;
	return ret->family != 0;
}

/* decimal in [min, max], nothing else */
static bool parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *ret)
{
	char *end = NULL;
	unsigned long v;

	if (!*s || *s == '-' || *s == '+')
		return false;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || !end || *end || v < min || v > max)
		return false;
	*ret = v;
	return true;
}

/* the Internet checksum's running sum over len bytes */
static uint32_t sum16(uint32_t sum, const void *data, size_t len)
{
	const uint8_t *p = data;

	for (; len > 1; p += 2, len -= 2)
		sum += (uint32_t)(p[0] << 8 | p[1]);
	if (len)
		sum += (uint32_t)(p[0] << 8);
	return sum;
}

static uint16_t fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return htons((uint16_t)~sum);
}

/* TCP/UDP checksum over the pseudo-header and the segment l4 of len bytes */
static uint16_t l4_checksum(const struct addr *src, const struct addr *dst, uint8_t proto,
			    const uint8_t *l4, size_t len)
{
	uint32_t sum = 0;
	uint8_t tail[8] = {0};
	size_t alen = src->family == AF_INET ? 4 : 16;
	uint16_t c;

	sum = sum16(sum, &src->in6, alen); /* in and in6 share their start */
	sum = sum16(sum, &dst->in6, alen);
	if (src->family == AF_INET) { /* zero, protocol, length (16 bits) */
		tail[1] = proto;
		tail[2] = (uint8_t)(len >> 8);
		tail[3] = (uint8_t)len;
		sum = sum16(sum, tail, 4);
	} else { /* length (32 bits), three zero bytes, next header */
		tail[2] = (uint8_t)(len >> 8);
		tail[3] = (uint8_t)len;
		tail[7] = proto;
		sum = sum16(sum, tail, 8);
	}
	sum = sum16(sum, l4, len);
	c = fold(sum);
	/* UDP sends a computed 0 as all ones (0 means "no checksum" in IPv4) */
	return proto == IPPROTO_UDP && c == 0 ? 0xffff : c;
}

/* The transport header (and UDP payload) into l4; its length. */
static size_t build_l4(uint8_t *l4, uint8_t proto, uint16_t sport, uint16_t dport, uint32_t seq)
{
	size_t len;

	if (proto == IPPROTO_TCP) {
		len = 20;
		memset(l4, 0, len);
		l4[0] = (uint8_t)(sport >> 8), l4[1] = (uint8_t)sport;
		l4[2] = (uint8_t)(dport >> 8), l4[3] = (uint8_t)dport;
		l4[4] = (uint8_t)(seq >> 24), l4[5] = (uint8_t)(seq >> 16);
		l4[6] = (uint8_t)(seq >> 8), l4[7] = (uint8_t)seq;
		l4[12] = 5 << 4;	      /* data offset: 5 words, no options */
		l4[13] = 0x02;		      /* SYN */
		l4[14] = 0xfa, l4[15] = 0xf0; /* window 64240 */
		return len;
	}
	len = 8 + sizeof(PAYLOAD) - 1;
	l4[0] = (uint8_t)(sport >> 8), l4[1] = (uint8_t)sport;
	l4[2] = (uint8_t)(dport >> 8), l4[3] = (uint8_t)dport;
	l4[4] = (uint8_t)(len >> 8), l4[5] = (uint8_t)len;
	l4[6] = l4[7] = 0;
	memcpy(l4 + 8, PAYLOAD, sizeof(PAYLOAD) - 1);
	return len;
}

/* The whole packet into pkt (IP header, then l4); its length. */
static size_t build_packet(uint8_t *pkt, const struct addr *src, const struct addr *dst,
			   uint8_t proto, uint16_t sport, uint16_t dport, uint32_t seq)
{
	size_t hlen = src->family == AF_INET ? 20 : 40;
	uint8_t *l4 = pkt + hlen;
	size_t len = build_l4(l4, proto, sport, dport, seq);
	uint16_t c = l4_checksum(src, dst, proto, l4, len);

	memcpy(l4 + (proto == IPPROTO_TCP ? 16 : 6), &c, 2);
	memset(pkt, 0, hlen);
	if (src->family == AF_INET) {
		uint16_t total = (uint16_t)(hlen + len), id = (uint16_t)(seq & 0xffff);

		pkt[0] = 0x45; /* version 4, 5 words */
		pkt[2] = (uint8_t)(total >> 8), pkt[3] = (uint8_t)total;
		pkt[4] = (uint8_t)(id >> 8), pkt[5] = (uint8_t)id;
		pkt[6] = 0x40; /* don't fragment */
		pkt[8] = 64;   /* TTL */
		pkt[9] = proto;
		memcpy(pkt + 12, &src->in, 4);
		memcpy(pkt + 16, &dst->in, 4);
		c = fold(sum16(0, pkt, 20));
		memcpy(pkt + 10, &c, 2);
	} else {
		pkt[0] = 0x60; /* version 6 */
		pkt[4] = (uint8_t)(len >> 8), pkt[5] = (uint8_t)len;
		pkt[6] = proto;
		pkt[7] = 64; /* hop limit */
		memcpy(pkt + 8, &src->in6, 16);
		memcpy(pkt + 24, &dst->in6, 16);
	}
	return hlen + len;
}

static int open_raw(int family)
{
	int one = 1;
	int fd = socket(family, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);

	if (fd < 0)
		return -1;
	/* IPPROTO_RAW implies it for IPv4; said anyway. AF_INET6 with
	 * IPPROTO_RAW takes the IPv6 header from the caller (Linux 4.5+). */
	if (family == AF_INET && setsockopt(fd, IPPROTO_IP, IP_HDRINCL, &one, sizeof(one)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int main(int argc, char **argv)
{
	struct addr src, dst;
	unsigned long sport, dport, count = 1;
	uint8_t proto, pkt[128];
	int fd, failed = 0;

	if (argc < 6 || argc > 7)
		return usage("wrong number of arguments", NULL);
	if (strcmp(argv[1], "tcp") == 0)
		proto = IPPROTO_TCP;
	else if (strcmp(argv[1], "udp") == 0)
		proto = IPPROTO_UDP;
	else
		return usage("protocol must be tcp or udp", argv[1]);
	if (!parse_addr(argv[2], &src))
		return usage("bad source address", argv[2]);
	if (!parse_uint(argv[3], 1, 65535, &sport))
		return usage("bad source port (1-65535)", argv[3]);
	if (!parse_addr(argv[4], &dst))
		return usage("bad destination address", argv[4]);
	if (src.family != dst.family)
		return usage("source and destination of different families", NULL);
	if (!parse_uint(argv[5], 1, 65535, &dport))
		return usage("bad destination port (1-65535)", argv[5]);
	if (argc == 7 && !parse_uint(argv[6], 1, MAX_COUNT, &count))
		return usage("bad count (1-10000)", argv[6]);
	if (sport + count - 1 > 65535)
		return usage("source ports SRC_PORT + COUNT - 1 beyond 65535", NULL);

	fd = open_raw(src.family);
	if (fd < 0) {
		fprintf(stderr, "spoof-packet: raw socket: %s\n", strerror(errno));
		return 1;
	}
	for (unsigned long i = 0; i < count; i++) {
		struct sockaddr_storage to = {0};
		socklen_t to_len;
		size_t len = build_packet(pkt, &src, &dst, proto, (uint16_t)(sport + i),
					  (uint16_t)dport, 0x6d746400u + (uint32_t)i);

		if (src.family == AF_INET) {
			struct sockaddr_in *sin = (struct sockaddr_in *)&to;

			sin->sin_family = AF_INET;
			sin->sin_addr = dst.in;
			to_len = sizeof(*sin);
		} else {
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&to;

			sin6->sin6_family = AF_INET6;
			sin6->sin6_addr = dst.in6;
			to_len = sizeof(*sin6);
		}
		if (sendto(fd, pkt, len, 0, (struct sockaddr *)&to, to_len) != (ssize_t)len) {
			fprintf(stderr, "spoof-packet: packet %lu: send: %s\n", i + 1,
				strerror(errno));
			failed = 1;
			break;
		}
	}
	close(fd);
	return failed;
}
