/* SPDX-License-Identifier: MIT */
/* The honeypot listener behind TCP decoys (see rotator.h). */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
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

int rotator_honeypot_accept_all(struct rotator_honeypot *h)
{
	int n = 0;

	while (n < MAX_PER_CALL) {
		struct linger reset = {.l_onoff = 1, .l_linger = 0};
		int c = accept4(h->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			return -errno;
		}
		(void)setsockopt(c, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
		close(c);
		n++;
	}
	return n;
}
