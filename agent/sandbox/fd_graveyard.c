/* SPDX-License-Identifier: MIT */
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define FDS_PER_MESSAGE 16

static int graveyard = -1; /* the agent's end, non-blocking */

_Noreturn static void closer_main(int sock)
{
	char control[CMSG_SPACE(FDS_PER_MESSAGE * sizeof(int))];

	(void)prctl(PR_SET_NAME, "mtd-closer", 0, 0, 0);
	(void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	if (getppid() == 1)
		_exit(0);
	for (;;) {
		char byte;
		struct iovec iov = {.iov_base = &byte, .iov_len = 1};
		struct msghdr msg = {.msg_iov = &iov,
				     .msg_iovlen = 1,
				     .msg_control = control,
				     .msg_controllen = sizeof(control)};
		ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(0);
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
			size_t count;
			int fds[FDS_PER_MESSAGE];

			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
				continue;
			count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			if (count > FDS_PER_MESSAGE)
				count = FDS_PER_MESSAGE;
			memcpy(fds, CMSG_DATA(c), count * sizeof(int));
			for (size_t i = 0; i < count; i++)
				close(fds[i]);
		}
	}
}

int fd_graveyard_start(void)
{
	int pair[2];
	pid_t pid;

	if (graveyard >= 0)
		return 0;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		int r = -errno;

		close(pair[0]);
		close(pair[1]);
		return r;
	}
	if (pid == 0) {
		/* Nothing of the agent's but the socket: keep no file alive. */
		if (dup2(pair[1], 3) < 0)
			_exit(1);
		(void)syscall(SYS_close_range, 4, ~0U, 0);
		closer_main(3);
	}
	close(pair[1]);
	if (fcntl(pair[0], F_SETFL, O_NONBLOCK) < 0) {
		int r = -errno;

		close(pair[0]);
		return r;
	}
	graveyard = pair[0];
	return 0;
}

void fd_graveyard_close(int fd)
{
	char control[CMSG_SPACE(sizeof(int))] = {0}, byte = 0;
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = control,
			     .msg_controllen = sizeof(control)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);

	if (fd < 0)
		return;
	if (graveyard >= 0) {
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
		/* In flight the socket holds the file: this close is not the last. */
		if (sendmsg(graveyard, &msg, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 && errno != EAGAIN) {
			close(graveyard);
			graveyard = -1; /* the helper is gone: close in place from now */
		}
	}
	close(fd);
}

void fd_graveyard_stop(void)
{
	if (graveyard >= 0)
		close(graveyard);
	graveyard = -1;
}
