/* SPDX-License-Identifier: MIT */
/*
 * An instance's TCP connections ended from the kernel's side, as `ss -K`
 * does: sock_diag lists the connection sockets of the instance's network
 * namespace, and SOCK_DESTROY aborts each one (tcp_abort: a reset to the
 * peer, the socket closed with ECONNABORTED for its owner). A frozen
 * instance's clients that wait for an answer send nothing the table could
 * answer with a reset (docs/nftables.md, "Killed instances"); the kernel
 * of the instance knows the sequence numbers, the agent does not.
 *
 * The netlink socket is made inside the instance's namespace (sockets keep
 * the namespace they were created in: enter, open, come back, as netdev.c
 * does), so only that namespace's sockets are ever listed or destroyed,
 * never the host's. The work is bounded: at most SOCK_RESET_MAX sockets a
 * call, a receive timeout on the socket.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>

#include "macro.h"
#include "sandbox.h"

/* the states whose sockets have a peer to reset (tcp_need_reset() in the
 * kernel): neither listeners nor TIME_WAIT */
#define TCP_ESTABLISHED_ 1
#define TCP_SYN_RECV_ 3
#define TCP_FIN_WAIT1_ 4
#define TCP_FIN_WAIT2_ 5
#define TCP_CLOSE_WAIT_ 8
#define SOCK_RESET_STATES                                                                          \
	((1u << TCP_ESTABLISHED_) | (1u << TCP_SYN_RECV_) | (1u << TCP_FIN_WAIT1_) |               \
	 (1u << TCP_FIN_WAIT2_) | (1u << TCP_CLOSE_WAIT_))

/* a netlink reply, at most this long a wait */
#define SOCK_RESET_TIMEOUT_USEC 200000

/* A peer on the loopback (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104) is inside
 * the instance itself: nobody outside waits on that connection. */
static bool peer_is_loopback(uint8_t family, const struct inet_diag_sockid *id)
{
	const uint8_t *d = (const uint8_t *)id->idiag_dst;
	static const uint8_t v6_loopback[16] = {[15] = 1};
	static const uint8_t v4_mapped[12] = {[10] = 0xff, [11] = 0xff};

	if (family == AF_INET)
		return d[0] == 127;
	return memcmp(d, v6_loopback, 16) == 0 || (memcmp(d, v4_mapped, 12) == 0 && d[12] == 127);
}

int sock_reset_parse_dump(const void *buffer, size_t size, uint32_t seq, uint8_t family,
			  struct sock_reset_entry *entries, size_t max, size_t *n_entries,
			  bool *ret_truncated)
{
	const uint8_t *p = buffer;

	while (size > 0) {
		const struct nlmsghdr *h = (const struct nlmsghdr *)p;
		const struct inet_diag_msg *m;
		size_t step;

		if (size < sizeof(*h) || h->nlmsg_len < sizeof(*h) || h->nlmsg_len > size)
			return -EBADMSG;
		if (h->nlmsg_seq != seq)
			return -EBADMSG; /* not the answer to this request */
		if (h->nlmsg_type == NLMSG_DONE)
			return 1;
		if (h->nlmsg_type == NLMSG_ERROR) {
			const struct nlmsgerr *e = NLMSG_DATA(h);

			if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*e)))
				return -EBADMSG;
			return e->error < 0 && e->error > -4096 ? e->error : -EIO;
		}
		if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
		    h->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
			return -EBADMSG;
		m = NLMSG_DATA(h);
		if (m->idiag_family != family)
			return -EBADMSG;
		if (peer_is_loopback(family, &m->id))
			; /* both ends are the instance's */
		else if (*n_entries < max) {
			entries[*n_entries].family = family;
			entries[*n_entries].id = m->id;
			(*n_entries)++;
		} else
			*ret_truncated = true;
		step = NLMSG_ALIGN(h->nlmsg_len);
		if (step >= size)
			break;
		p += step;
		size -= step;
	}
	return 0;
}

int sock_reset_parse_ack(const void *buffer, size_t size, uint32_t seq)
{
	const struct nlmsghdr *h = buffer;
	const struct nlmsgerr *e;

	if (size < sizeof(*h) || h->nlmsg_len < sizeof(*h) || h->nlmsg_len > size)
		return -EBADMSG;
	if (h->nlmsg_seq != seq || h->nlmsg_type != NLMSG_ERROR ||
	    h->nlmsg_len < NLMSG_LENGTH(sizeof(*e)))
		return -EBADMSG;
	e = NLMSG_DATA(h);
	if (e->error > 0 || e->error <= -4096)
		return -EBADMSG;
	return e->error;
}

/* A NETLINK_SOCK_DIAG socket of the namespace netns_fd refers to (a
 * namespace file or a pidfd); the caller's namespace is entered again
 * before this returns. */
static int open_in(int netns_fd)
{
	_cleanup_close_ int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	struct timeval timeout = {.tv_usec = SOCK_RESET_TIMEOUT_USEC};
	int fd, e = 0;

	if (self < 0)
		return -errno;
	if (setns(netns_fd, CLONE_NEWNET) < 0)
		return -errno;
	fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (fd < 0)
		e = -errno;
	if (setns(self, CLONE_NEWNET) < 0)
		abort(); /* the agent would be stranded in an instance's namespace */
	if (fd < 0)
		return e;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)) < 0) {
		e = -errno;
		close(fd);
		return e;
	}
	return fd;
}

/* One datagram from the kernel into buffer: its length, or -errno
 * (-EAGAIN: nothing within the timeout). */
static ssize_t receive(int fd, void *buffer, size_t size)
{
	for (;;) {
		struct sockaddr_nl from;
		socklen_t from_len = sizeof(from);
		ssize_t n =
		    recvfrom(fd, buffer, size, MSG_TRUNC, (struct sockaddr *)&from, &from_len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
		}
		if (n == 0)
			return -EBADMSG;
		if ((size_t)n > size)
			return -EMSGSIZE;
		if (from.nl_pid != 0)
			continue; /* not the kernel's */
		return n;
	}
}

static int send_request(int fd, uint16_t type, uint16_t flags, uint32_t seq,
			const struct inet_diag_req_v2 *req)
{
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 req;
	} request = {
	    .nlh = {.nlmsg_len = sizeof(request),
		    .nlmsg_type = type,
		    .nlmsg_flags = NLM_F_REQUEST | flags,
		    .nlmsg_seq = seq},
	    .req = *req,
	};
	struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};

	if (sendto(fd, &request, sizeof(request), 0, (struct sockaddr *)&kernel, sizeof(kernel)) <
	    0)
		return -errno;
	return 0;
}

/* The connection sockets of one family, appended to entries. */
static int dump(int fd, uint8_t family, uint32_t seq, struct sock_reset_entry *entries, size_t max,
		size_t *n_entries, bool *ret_truncated)
{
	const struct inet_diag_req_v2 req = {
	    .sdiag_family = family,
	    .sdiag_protocol = IPPROTO_TCP,
	    .idiag_states = SOCK_RESET_STATES,
	};
	/* aligned like nlmsghdr; 32 KiB is the most a dump puts in one datagram */
	long buffer[32768 / sizeof(long)];
	int r;

	r = send_request(fd, SOCK_DIAG_BY_FAMILY, NLM_F_DUMP, seq, &req);
	if (r < 0)
		return r;
	for (;;) {
		ssize_t n = receive(fd, buffer, sizeof(buffer));

		if (n < 0)
			return (int)n;
		r = sock_reset_parse_dump(buffer, (size_t)n, seq, family, entries, max, n_entries,
					  ret_truncated);
		if (r != 0)
			return r < 0 ? r : 0;
	}
}

/* SOCK_DESTROY of one socket: 0, or -errno (-ENOENT: it was gone already). */
static int destroy(int fd, const struct sock_reset_entry *entry, uint32_t seq)
{
	const struct inet_diag_req_v2 req = {
	    .sdiag_family = entry->family,
	    .sdiag_protocol = IPPROTO_TCP,
	    .idiag_states = ~0u,
	    .id = entry->id, /* with its cookie: a socket that reused the tuple is not it */
	};
	long buffer[1024 / sizeof(long)];
	ssize_t n;
	int r;

	r = send_request(fd, SOCK_DESTROY, NLM_F_ACK, seq, &req);
	if (r < 0)
		return r;
	n = receive(fd, buffer, sizeof(buffer));
	if (n < 0)
		return (int)n;
	return sock_reset_parse_ack(buffer, (size_t)n, seq);
}

int sock_reset_netns(int netns_fd, struct sock_reset_result *ret)
{
	static const uint8_t families[] = {AF_INET, AF_INET6};
	_cleanup_free_ struct sock_reset_entry *entries = NULL;
	_cleanup_close_ int fd = -1;
	size_t n = 0;
	uint32_t seq = 1;
	int r;

	*ret = (struct sock_reset_result){0};
	entries = calloc(SOCK_RESET_MAX, sizeof(*entries));
	if (!entries)
		return -ENOMEM;
	fd = open_in(netns_fd);
	if (fd < 0)
		return fd;
	/* First the list, then the destruction: a dump is not disturbed by
	 * sockets leaving the table it walks. */
	for (size_t i = 0; i < ELEMENTSOF(families); i++) {
		r = dump(fd, families[i], seq++, entries, SOCK_RESET_MAX, &n, &ret->truncated);
		if (r < 0)
			return r;
	}
	ret->found = (unsigned)n;
	for (size_t i = 0; i < n; i++) {
		r = destroy(fd, &entries[i], seq++);
		if (r == 0)
			ret->reset++;
		else if (r == -ENOENT)
			ret->gone++;
		else {
			ret->failed++;
			if (!ret->first_error)
				ret->first_error = r;
			/* the kernel cannot destroy sockets at all: no point
			 * asking for the others; a timeout: bound the wait */
			if (r == -EOPNOTSUPP || r == -EAGAIN || r == -EPERM) {
				ret->failed = (unsigned)(n - ret->reset - ret->gone);
				break;
			}
		}
	}
	return ret->failed && !ret->reset ? ret->first_error : 0;
}
