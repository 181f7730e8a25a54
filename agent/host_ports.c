/* SPDX-License-Identifier: MIT */
#include "host_ports.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"

#define TCP_LISTEN 0x0A

struct host_ports {
	uint8_t tcp[65536 / 8];
	uint8_t udp[65536 / 8];
};

int host_ports_new(struct host_ports **ret_ports)
{
	struct host_ports *ports = calloc(1, sizeof(*ports));

	if (!ports)
		return -ENOMEM;
	*ret_ports = ports;
	return 0;
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

int host_ports_scan(struct host_ports **ret_ports)
{
	static const struct {
		const char *path;
		enum policy_proto proto;
	} tables[] = {
		{"/proc/net/tcp", POLICY_PROTO_TCP},
		{"/proc/net/tcp6", POLICY_PROTO_TCP},
		{"/proc/net/udp", POLICY_PROTO_UDP},
		{"/proc/net/udp6", POLICY_PROTO_UDP},
	};
	struct host_ports *ports;
	int r;

	r = host_ports_new(&ports);
	if (r < 0)
		return r;
	for (size_t i = 0; i < ELEMENTSOF(tables); i++) {
		r = scan_file(ports, tables[i].proto, tables[i].path);
		if (r < 0) {
			host_ports_free(ports);
			return r;
		}
	}
	*ret_ports = ports;
	return 0;
}
