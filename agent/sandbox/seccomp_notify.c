/* SPDX-License-Identifier: MIT */
/* Reading and answering seccomp user notifications, see sandbox.h. */
#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "json_bytes.h"
#include "macro.h"
#include "sandbox.h"

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

/* Answer notification id: an error (-EPERM), or, with flags =
 * SECCOMP_USER_NOTIF_FLAG_CONTINUE, let the call run. false when the caller
 * is gone. */
static int answer(int fd, uint64_t id, size_t resp_size, int error, uint32_t flags,
		  bool *ret_answered)
{
	_cleanup_free_ struct seccomp_notif_resp *resp = calloc(1, resp_size);

	if (!resp)
		return -ENOMEM;
	resp->id = id;
	resp->val = 0;
	resp->error = error;
	resp->flags = flags;
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

/* Receive one notification into a zeroed buffer of the kernel's size.
 * -EAGAIN when nothing is pending (or its caller was killed meanwhile). */
static int receive(int listener_fd, struct seccomp_violation *ret, size_t *ret_resp_size)
{
	_cleanup_free_ struct seccomp_notif *req = NULL;
	size_t notif_size = 0;
	int r;

	r = pending(listener_fd);
	if (r < 0)
		return r;
	r = notif_sizes(&notif_size, ret_resp_size);
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
	seccomp_violation_from_notif(req, ret);
	return 0;
}

/* Where an exec's descriptor points, as evidence: /proc/PID/fd/FD of the
 * caller ("/memfd:x (deleted)", a path). Best effort, read while the caller
 * waits for its answer: empty when the link cannot be read (no ptrace access
 * to the caller, the fd closed by another thread). */
static void exec_fd_target(struct seccomp_violation *v)
{
	char link[64];
	int fd = (int)v->args[0];
	ssize_t k;

	v->exec_fd_target[0] = '\0';
	if (!streq(v->name, "execveat") || v->pid <= 0 || fd < 0)
		return;
	snprintf(link, sizeof(link), "/proc/%d/fd/%d", (int)v->pid, fd);
	k = readlink(link, v->exec_fd_target, sizeof(v->exec_fd_target) - 1);
	v->exec_fd_target[k > 0 ? k : 0] = '\0';
}

int seccomp_violation_receive(int listener_fd, struct seccomp_violation *ret)
{
	struct seccomp_violation v = {0};
	size_t resp_size = 0;
	int r;

	r = receive(listener_fd, &v, &resp_size);
	if (r < 0)
		return r;
	exec_fd_target(&v);
	/* until refused: whether the caller still waits for its answer */
	v.answered = ioctl(listener_fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &v.id) == 0;
	*ret = v;
	return 0;
}

int seccomp_violation_refuse(int listener_fd, struct seccomp_violation *v)
{
	size_t notif_size = 0, resp_size = 0;
	uint64_t id = v->id;
	int r;

	/* nothing of the caller's memory is read, so the id check only tells
	 * whether anyone still waits for the answer */
	v->answered = false;
	if (ioctl(listener_fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) < 0)
		return errno == ENOENT ? 0 : -errno;
	r = notif_sizes(&notif_size, &resp_size);
	if (r < 0)
		return r;
	return answer(listener_fd, v->id, resp_size, -EPERM, 0, &v->answered);
}

int seccomp_notify_handle(int listener_fd, struct seccomp_violation *ret)
{
	struct seccomp_violation v;
	int r;

	r = seccomp_violation_receive(listener_fd, &v);
	if (r < 0)
		return r;
	r = seccomp_violation_refuse(listener_fd, &v);
	if (r < 0)
		return r;
	*ret = v;
	return 0;
}

/* The envelope's own exec form, from the child itself: execveat(
 * SECCOMP_POLICY_EXEC_FD, "", argv, envp, AT_EMPTY_PATH) on the native
 * architecture. Only register values are compared: the path ("") is read by
 * the kernel after the answer, from the memory of a process with one thread
 * that is blocked in this very call, so nothing can change it meanwhile. */
static bool is_envelope_exec(const struct seccomp_violation *v, pid_t pid)
{
	return v->pid == pid && v->arch == (uint32_t)seccomp_arch_native() &&
	       v->nr == __NR_execveat && v->args[0] == SECCOMP_POLICY_EXEC_FD &&
	       v->args[4] == AT_EMPTY_PATH;
}

int seccomp_notify_continue_exec(int listener_fd, pid_t pid, struct seccomp_violation *ret)
{
	struct seccomp_violation v = {0};
	size_t resp_size = 0;
	bool ours;
	int r;

	r = receive(listener_fd, &v, &resp_size);
	if (r < 0)
		return r;
	ours = is_envelope_exec(&v, pid);
	r = answer(listener_fd, v.id, resp_size, ours ? 0 : -EPERM,
		   ours ? SECCOMP_USER_NOTIF_FLAG_CONTINUE : 0, &v.answered);
	if (r < 0)
		return r;
	*ret = v;
	if (!ours)
		return -EPERM;
	return v.answered ? 0 : -ESRCH;
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
	json_t *o = json_pack("{s:s, s:i, s:i, s:o, s:b}", "syscall", v->name, "nr", v->nr, "pid",
			      (int)v->pid, "args", args, "answered", v->answered);

	/* an exec: the descriptor and where it pointed, when that could be read */
	if (o && streq(v->name, "execveat")) {
		json_object_set_new(o, "exec_fd", json_integer((int)v->args[0]));
		if (v->exec_fd_target[0])
			json_object_set_new(o, "exec_fd_target", json_bytes_str(v->exec_fd_target));
	}
	return o;
}
