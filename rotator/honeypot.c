/* SPDX-License-Identifier: MIT */
/* The honeypot listener behind TCP decoys (see rotator.h). */
#include <errno.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/param.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rotator.h"
#include "macro.h"

#define BACKLOG 128
#define MAX_PER_CALL 1024 /* bounded work per wake-up; the fd stays readable */

struct rotator_honeypot {
	int fd;
};

int rotator_honeypot_open(uint16_t port, struct rotator_honeypot **ret)
{
	struct sockaddr_in6 sa = {
	    .sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = IN6ADDR_ANY_INIT};
	_cleanup_close_ int fd = -1;
	struct rotator_honeypot *h;
	int zero = 0, one = 1;

	if (port == 0 || !ret)
		return -EINVAL;
	fd = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, BACKLOG) < 0)
		return -errno;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->fd = TAKE_FD(fd);
	*ret = h;
	return 0;
}

void rotator_honeypot_free(struct rotator_honeypot *h)
{
	if (!h)
		return;
	if (h->fd >= 0)
		close(h->fd);
	free(h);
}

int rotator_honeypot_fd(const struct rotator_honeypot *h)
{
	return h->fd;
}

/* The peer of an accepted connection; v4-mapped IPv6 as AF_INET. */
static void peer_addr(const struct sockaddr_storage *ss, struct rotator_addr *ret)
{
	*ret = (struct rotator_addr){.family = AF_UNSPEC};
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;

		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			ret->family = AF_INET;
			memcpy(&ret->in, &sin6->sin6_addr.s6_addr[12], sizeof(ret->in));
		} else {
			ret->family = AF_INET6;
			ret->in6 = sin6->sin6_addr;
		}
	} else if (ss->ss_family == AF_INET) {
		ret->family = AF_INET;
		ret->in = ((const struct sockaddr_in *)ss)->sin_addr;
	}
}

/* The port the connection was sent to before the redirect (conntrack's
 * original destination): which decoy it touched. 0 when unknown. The
 * constants of <linux/netfilter_ipv4.h> and <linux/netfilter_ipv6/ip6_tables.h>,
 * whose headers do not mix with <netinet/in.h>. */
#define HONEYPOT_SO_ORIGINAL_DST 80
#define HONEYPOT_IP6T_SO_ORIGINAL_DST 80

static uint16_t original_port(int fd, const struct sockaddr_storage *peer)
{
	struct sockaddr_storage ss = {0};
	socklen_t len = sizeof(ss);
	bool v6 = peer->ss_family == AF_INET6 &&
		  !IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)peer)->sin6_addr);
	int r = v6 ? getsockopt(fd, SOL_IPV6, HONEYPOT_IP6T_SO_ORIGINAL_DST, &ss, &len)
		   : getsockopt(fd, SOL_IP, HONEYPOT_SO_ORIGINAL_DST, &ss, &len);

	if (r < 0)
		return 0;
	return ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
					      : ((struct sockaddr_in *)&ss)->sin_port);
}

int rotator_honeypot_accept_all(struct rotator_honeypot *h, struct rotator_honeypot_peer *ret_peers,
				size_t max_peers, size_t *ret_n_peers)
{
	/* With room for peers, never more than fit: a connection accepted and
	 * not reported would be a source that completed a handshake unseen. */
	size_t limit = ret_peers ? MIN(max_peers, (size_t)MAX_PER_CALL) : MAX_PER_CALL;
	size_t n_peers = 0;
	int n = 0;

	if (!h || (max_peers && !ret_peers) || (ret_peers && !max_peers))
		return -EINVAL;
	while ((size_t)n < limit) {
		struct linger reset = {.l_onoff = 1, .l_linger = 0};
		struct sockaddr_storage ss = {};
		socklen_t len = sizeof(ss);
		int c = accept4(h->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			if (n > 0)
				break; /* report what was closed; the next call meets it again */
			return -errno;
		}
		if (ret_peers) {
			peer_addr(&ss, &ret_peers[n_peers].source);
			ret_peers[n_peers].decoy_port = original_port(c, &ss);
			if (ret_peers[n_peers].source.family != AF_UNSPEC)
				n_peers++;
		}
		(void)setsockopt(c, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
		close(c);
		n++;
	}
	if (ret_n_peers)
		*ret_n_peers = n_peers;
	return n;
}
