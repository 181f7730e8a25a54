/* SPDX-License-Identifier: MIT */
/* The seccomp violation signal: read and answer the user notifications of an
 * instance's notify filter (seccomp_policy.h), one at a time, from the agent's
 * event loop. Every notification is answered with EPERM before
 * seccomp_notify_handle() returns: the system call never runs, and the
 * caller in the instance goes on with errno = EPERM. The one exception is
 * seccomp_notify_continue_exec(), the spawner's answer to the envelope's own
 * exec, before the instance has run any code of its own. What the agent does next
 * (OnSyscallViolation=) is its own business. See docs/seccomp.md.
 *
 * In an sd-event loop: an io source on envelope_notify_fd() for EPOLLIN; on
 * each wake-up call seccomp_notify_handle() until -EAGAIN; on -EPIPE (or
 * EPOLLHUP in revents) the instance is gone: disable the source (the fd stays
 * owned by the envelope instance). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#define SECCOMP_VIOLATION_NAME_MAX 32

struct seccomp_notif;

struct seccomp_violation {
	uint64_t id;   /* the kernel's notification cookie */
	pid_t pid;     /* of the caller, in the reader's pid namespace (0 if none) */
	int nr;	       /* system call number */
	uint32_t arch; /* AUDIT_ARCH_* */
	char name[SECCOMP_VIOLATION_NAME_MAX]; /* "ptrace"; "syscall-NR" if unknown */
	uint64_t args[6];
	uint64_t instruction_pointer;
	/* execveat: what its fd (args[0]) pointed to in the caller, read from
	 * /proc/PID/fd while it waited; "" when unknown (seccomp_notify_handle
	 * only) */
	char exec_fd_target[128];
	/* false: the caller was gone (killed) before the answer; the violation
	 * still happened */
	bool answered;
};

/* Receive one pending notification, answer it with EPERM, describe it in
 * *ret. Never blocks. 0: *ret filled; -EAGAIN: nothing pending; -EPIPE: the
 * listener hung up (no process uses the filter any more); other -errno:
 * failure (*ret untouched). */
int seccomp_notify_handle(int listener_fd, struct seccomp_violation *ret);

/* seccomp_notify_handle() in two steps, for a caller that acts between them
 * (the agent freezes the instance first: the caller then never runs again
 * after its violation). receive: one pending notification, unanswered (its
 * caller waits in the kernel; v->answered: whether it still does), same
 * returns as seccomp_notify_handle(); refuse: answer it EPERM,
 * v->answered says whether anyone still waited.
 * Every received notification must be refused. */
int seccomp_violation_receive(int listener_fd, struct seccomp_violation *ret);
int seccomp_violation_refuse(int listener_fd, struct seccomp_violation *v);

/* The envelope's own exec, for the spawner (envelope.c) of a program whose
 * execveat is notified (seccomp_policy.h: exec_notified): receive one pending
 * notification; when it is execveat(SECCOMP_POLICY_EXEC_FD, "", ...,
 * AT_EMPTY_PATH) from pid (the child, single-threaded, before any service
 * code) answer SECCOMP_USER_NOTIF_FLAG_CONTINUE and return 0; anything else
 * is answered EPERM and returns -EPERM (*ret says what it was). -EAGAIN:
 * nothing pending; -EPIPE: hung up; -ESRCH: the caller was gone. The caller
 * uses this once per instance: every later notification goes to
 * seccomp_notify_handle(). */
int seccomp_notify_continue_exec(int listener_fd, pid_t pid, struct seccomp_violation *ret);

/* "pid=N syscall=NAME nr=N args=0x..,0x..,0x..,0x..,0x..,0x.. ip=0x.." into
 * buf (for log lines and audit records); returns buf. */
const char *seccomp_violation_format(const struct seccomp_violation *v, char *buf, size_t size);

/* The pure step of seccomp_notify_handle(): what a received notification
 * (every field chosen by the confined program: number, arch, arguments,
 * instruction pointer) says, with the system call's name resolved; answered
 * is false. Used by the fuzzer (tests/fuzz/fuzz_seccomp_notify.c). */
void seccomp_violation_from_notif(const struct seccomp_notif *req, struct seccomp_violation *ret);

/* The evidence of a violation for its audit record and signal:
 * {"syscall": NAME, "nr": N, "pid": N, "args": ["0x..", x6], "answered": B},
 * for execveat also "exec_fd": N and, when known, "exec_fd_target": "...".
 * NULL if out of memory. */
json_t *seccomp_violation_evidence(const struct seccomp_violation *v);
