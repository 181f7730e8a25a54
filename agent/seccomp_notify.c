/* SPDX-License-Identifier: MIT */
/* Reading and answering seccomp user notifications, see seccomp_notify.h. */
#include <errno.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "macro.h"
#include "seccomp_notify.h"

/* The kernel's structures may be larger than this build's headers: size the
 * buffers by what it says (SECCOMP_GET_NOTIF_SIZES). */
static int notif_sizes(size_t *ret_notif, size_t *ret_resp)
{
	struct seccomp_notif_sizes sizes = {0};

	if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes) < 0)
		return -errno;
	*ret_notif = sizes.seccomp_notif > sizeof(struct seccomp_notif)
			 ? sizes.seccomp_notif
			 : sizeof(struct seccomp_notif);
	*ret_resp = sizes.seccomp_notif_resp > sizeof(struct seccomp_notif_resp)
			? sizes.seccomp_notif_resp
			: sizeof(struct seccomp_notif_resp);
	return 0;
}

/* 0: a notification is pending; -EAGAIN: none; -EPIPE: hung up. */
static int pending(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	int r;

	do
		r = poll(&p, 1, 0);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	if (p.revents & POLLNVAL)
		return -EBADF;
	if (p.revents & POLLIN)
		return 0;
	if (p.revents & (POLLHUP | POLLERR))
		return -EPIPE;
	return -EAGAIN;
}

static void resolve_name(uint32_t arch, int nr, char *buf, size_t size)
{
	char *name = seccomp_syscall_resolve_num_arch(arch, nr);

	if (!name)
		name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
	if (name)
		snprintf(buf, size, "%s", name);
	else
		snprintf(buf, size, "syscall-%d", nr);
	free(name);
}

void seccomp_violation_from_notif(const struct seccomp_notif *req, struct seccomp_violation *ret)
{
	struct seccomp_violation v = {0};

	v.id = req->id;
	v.pid = (pid_t)req->pid;
	v.nr = req->data.nr;
	v.arch = req->data.arch;
	memcpy(v.args, req->data.args, sizeof(v.args));
	v.instruction_pointer = req->data.instruction_pointer;
	resolve_name(v.arch, v.nr, v.name, sizeof(v.name));
	*ret = v;
}

/* EPERM for notification id; false when the caller is gone. */
static int answer_eperm(int fd, uint64_t id, size_t resp_size, bool *ret_answered)
{
	_cleanup_free_ struct seccomp_notif_resp *resp = calloc(1, resp_size);

	if (!resp)
		return -ENOMEM;
	resp->id = id;
	resp->val = 0;
	resp->error = -EPERM;
	resp->flags = 0; /* never SECCOMP_USER_NOTIF_FLAG_CONTINUE */
	for (;;) {
		if (ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, resp) == 0) {
			*ret_answered = true;
			return 0;
		}
		if (errno == EINTR)
			continue;
		if (errno == ENOENT) { /* the caller died (or its wait was interrupted) */
			*ret_answered = false;
			return 0;
		}
		return -errno;
	}
}

int seccomp_notify_handle(int listener_fd, struct seccomp_violation *ret)
{
	_cleanup_free_ struct seccomp_notif *req = NULL;
	struct seccomp_violation v = {0};
	size_t notif_size = 0, resp_size = 0;
	uint64_t id;
	int r;

	r = pending(listener_fd);
	if (r < 0)
		return r;
	r = notif_sizes(&notif_size, &resp_size);
	if (r < 0)
		return r;
	req = calloc(1, notif_size); /* the kernel insists on a zeroed buffer */
	if (!req)
		return -ENOMEM;
	while (ioctl(listener_fd, SECCOMP_IOCTL_NOTIF_RECV, req) < 0) {
		if (errno == EINTR)
			continue;
		/* ENOENT: the caller was killed between the poll and the receive */
		return errno == ENOENT ? -EAGAIN : -errno;
	}
	seccomp_violation_from_notif(req, &v);

	/* nothing of the caller's memory is read, so the id check only tells
	 * whether anyone still waits for the answer */
	id = v.id;
	if (ioctl(listener_fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) < 0) {
		if (errno != ENOENT)
			return -errno;
		v.answered = false;
	} else {
		r = answer_eperm(listener_fd, v.id, resp_size, &v.answered);
		if (r < 0)
			return r;
	}
	*ret = v;
	return 0;
}

const char *seccomp_violation_format(const struct seccomp_violation *v, char *buf, size_t size)
{
	snprintf(buf, size,
		 "pid=%d syscall=%s nr=%d args=0x%llx,0x%llx,0x%llx,0x%llx,0x%llx,0x%llx "
		 "ip=0x%llx",
		 (int)v->pid, v->name, v->nr, (unsigned long long)v->args[0],
		 (unsigned long long)v->args[1], (unsigned long long)v->args[2],
		 (unsigned long long)v->args[3], (unsigned long long)v->args[4],
		 (unsigned long long)v->args[5], (unsigned long long)v->instruction_pointer);
	return buf;
}

json_t *seccomp_violation_evidence(const struct seccomp_violation *v)
{
	json_t *args = json_array();

	for (size_t i = 0; args && i < ELEMENTSOF(v->args); i++)
		json_array_append_new(args, json_sprintf("0x%llx", (unsigned long long)v->args[i]));
	return json_pack("{s:s, s:i, s:i, s:o, s:b}", "syscall", v->name, "nr", v->nr, "pid",
			 (int)v->pid, "args", args, "answered", v->answered);
}
