/* SPDX-License-Identifier: MIT */
#include "rotation_internal.h"

#include <errno.h>
#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "macro.h"

#define TCP_LISTEN 0x0A

struct host_ports {
	uint8_t tcp[65536 / 8];
	uint8_t udp[65536 / 8];
	bool tcp_from_proc; /* a family's TCP listeners came from /proc/net */
};

int host_ports_new(struct host_ports **ret_ports)
{
	struct host_ports *ports = calloc(1, sizeof(*ports));

	if (!ports)
		return -ENOMEM;
	*ret_ports = ports;
	return 0;
}

bool host_ports_tcp_from_proc(const struct host_ports *ports)
{
	return ports->tcp_from_proc;
}

void host_ports_free(struct host_ports *ports)
{
	free(ports);
}

static uint8_t *bitmap_of(struct host_ports *ports, enum policy_proto proto)
{
	return proto == POLICY_PROTO_UDP ? ports->udp : ports->tcp;
}

bool host_ports_is_bound(const struct host_ports *ports, enum policy_proto proto, uint16_t port)
{
	const uint8_t *bits = proto == POLICY_PROTO_UDP ? ports->udp : ports->tcp;

	return (bits[port / 8] >> (port % 8)) & 1;
}

/* "  0: 0100007F:0016 00000000:0000 0A ..." -> port 0x16, state 0x0A */
static int parse_line(const char *line, unsigned *ret_port, unsigned *ret_state)
{
	const char *local, *colon;
	char *end;
	unsigned long port, state;

	local = strchr(line, ':');
	if (!local)
		return -EINVAL;
	local++;
	while (*local == ' ')
		local++;
	colon = strchr(local, ':');
	if (!colon)
		return -EINVAL;
	errno = 0;
	port = strtoul(colon + 1, &end, 16);
	if (errno || end == colon + 1 || *end != ' ' || port > 65535)
		return -EINVAL;
	/* skip the remote address */
	while (*end == ' ')
		end++;
	end = strchr(end, ' ');
	if (!end)
		return -EINVAL;
	state = strtoul(end, &end, 16);
	if (errno || state > 0xff)
		return -EINVAL;
	*ret_port = (unsigned)port;
	*ret_state = (unsigned)state;
	return 0;
}

int host_ports_parse_table(struct host_ports *ports, enum policy_proto proto, const char *text)
{
	uint8_t *bits = bitmap_of(ports, proto);
	const char *line = strchr(text, '\n'); /* the first line is the header */

	while (line && *++line) {
		unsigned port, state;

		if (parse_line(line, &port, &state) == 0 &&
		    (proto == POLICY_PROTO_UDP || state == TCP_LISTEN))
			bits[port / 8] |= (uint8_t)(1u << (port % 8));
		line = strchr(line, '\n');
	}
	return 0;
}

static int scan_file(struct host_ports *ports, enum policy_proto proto, const char *path)
{
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	_cleanup_free_ char *text = NULL;
	size_t size = 0;
	FILE *mem;
	char buffer[8192];
	size_t n;

	if (!f)
		return errno == ENOENT ? 0 : -errno; /* no IPv6: nothing bound there */
	mem = open_memstream(&text, &size);
	if (!mem)
		return -ENOMEM;
	while ((n = fread(buffer, 1, sizeof(buffer), f)) > 0)
		fwrite(buffer, 1, n, mem);
	if (fclose(mem) != 0 || !text)
		return -ENOMEM;
	return host_ports_parse_table(ports, proto, text);
}

/* TCP listeners of one family over NETLINK_SOCK_DIAG, asking for the LISTEN
 * state only: the kernel then walks its listening hash alone. Reading
 * /proc/net/tcp walks the whole established hash, sized by the host's memory
 * whatever the namespace holds (~2.5 ms per read() on an idle 2-core host,
 * three reads per file), and this runs at every rotation boundary. */
static int diag_tcp_listeners(struct host_ports *ports, uint8_t family)
{
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 req;
	} request = {
	    .nlh = {.nlmsg_len = sizeof(request),
		    .nlmsg_type = SOCK_DIAG_BY_FAMILY,
		    .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP},
	    .req = {.sdiag_family = family,
		    .sdiag_protocol = IPPROTO_TCP,
		    .idiag_states = 1u << TCP_LISTEN},
	};
	struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
	_cleanup_close_ int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	long buffer[8192 / sizeof(long)]; /* aligned like nlmsghdr */

	if (fd < 0)
		return -errno;
	if (sendto(fd, &request, sizeof(request), 0, (struct sockaddr *)&kernel, sizeof(kernel)) <
	    0)
		return -errno;
	for (;;) {
		ssize_t received = recv(fd, buffer, sizeof(buffer), 0), n = received;
		struct nlmsghdr *h = (struct nlmsghdr *)buffer;

		if (received < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		/* NLMSG_NEXT counts n down: received keeps what came */
		for (; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
			const struct inet_diag_msg *m = NLMSG_DATA(h);
			uint16_t port;

			if (h->nlmsg_type == NLMSG_DONE)
				return 0;
			if (h->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = NLMSG_DATA(h);

				return e->error < 0 ? e->error : -EIO;
			}
			if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*m)))
				return -EBADMSG;
			port = ntohs(m->id.idiag_sport);
			ports->tcp[port / 8] |= (uint8_t)(1u << (port % 8));
		}
		if (received == 0)
			return -EBADMSG; /* ended without NLMSG_DONE */
	}
}

int host_ports_scan(struct host_ports **ret_ports)
{
	static const struct {
		const char *path;
		enum policy_proto proto;
		uint8_t family; /* TCP: asked over sock_diag first */
	} tables[] = {
	    {"/proc/net/tcp", POLICY_PROTO_TCP, AF_INET},
	    {"/proc/net/tcp6", POLICY_PROTO_TCP, AF_INET6},
	    {"/proc/net/udp", POLICY_PROTO_UDP, 0},
	    {"/proc/net/udp6", POLICY_PROTO_UDP, 0},
	};
	struct host_ports *ports;
	int r;

	r = host_ports_new(&ports);
	if (r < 0)
		return r;
	for (size_t i = 0; i < ELEMENTSOF(tables); i++) {
		if (tables[i].family) {
			struct host_ports *tcp;

			/* All or nothing per family: a half-read dump is
			 * redone from /proc (no inet_diag, say). */
			r = host_ports_new(&tcp);
			if (r < 0) {
				host_ports_free(ports);
				return r;
			}
			r = diag_tcp_listeners(tcp, tables[i].family);
			if (r == 0)
				for (size_t b = 0; b < sizeof(ports->tcp); b++)
					ports->tcp[b] |= tcp->tcp[b];
			host_ports_free(tcp);
			if (r == 0 || (r == -EAFNOSUPPORT && tables[i].family == AF_INET6))
				continue;
		}
		if (tables[i].family)
			ports->tcp_from_proc = true;
		r = scan_file(ports, tables[i].proto, tables[i].path);
		if (r < 0) {
			host_ports_free(ports);
			return r;
		}
	}
	*ret_ports = ports;
	return 0;
}
