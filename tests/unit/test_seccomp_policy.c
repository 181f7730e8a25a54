/* SPDX-License-Identifier: MIT */
/* SystemCalls= and ViolationSystemCalls= compiled to BPF: loaded in a forked
 * child (no privileges: the child sets no_new_privs), the filter allows
 * exactly the listed calls; violations reach the test as user notifications
 * (sandbox.h) over the listener the child hands over with SCM_RIGHTS,
 * and the caller sees the EPERM the test answers. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "macro.h"
#include "sandbox.h"

/* What the child reports: the errno of each probe (0 = allowed), or 255
 * when the child died. */
enum probe {
	PROBE_GETPID,	/* listed */
	PROBE_GETPPID,	/* not listed */
	PROBE_UNAME,	/* not listed */
	PROBE_CLONE3,	/* always ENOSYS */
	PROBE_EXECVEAT, /* only as the envelope's exec */
	PROBE_EXECVEAT_ENVELOPE_FD,
	PROBE_GETPPID_ARGS, /* getppid with six recognisable arguments */
	PROBE_EXECVE,	    /* execve of a path that does not exist */
	PROBE_EXEC_TWICE,   /* the envelope's form twice: first errno * 1000 + second */
	_PROBE_MAX,
};

static long run_probe(enum probe p)
{
	char args[88] = {0};

	switch (p) {
	case PROBE_GETPID:
		return syscall(SYS_getpid);
	case PROBE_GETPPID:
		return syscall(SYS_getppid);
	case PROBE_GETPPID_ARGS:
		return syscall(SYS_getppid, 0x11L, 0x22L, 0x33L, 0x44L, 0x55L, -1L);
	case PROBE_UNAME: {
		char buf[512];
		return syscall(SYS_uname, buf);
	}
	case PROBE_CLONE3:
		/* CLONE_VM without a stack: EINVAL if the filter let it through */
		((uint64_t *)args)[0] = 0x100;
		return syscall(SYS_clone3, args, sizeof(args));
	case PROBE_EXECVEAT:
		/* fd 999 is not open: EBADF if allowed, EPERM if filtered */
		return syscall(SYS_execveat, 999, "", (char *[]){NULL}, (char *[]){NULL},
			       AT_EMPTY_PATH);
	case PROBE_EXECVEAT_ENVELOPE_FD:
		/* the envelope's own form: passes the filter, then EBADF (not open) */
		close(SECCOMP_POLICY_EXEC_FD);
		return syscall(SYS_execveat, SECCOMP_POLICY_EXEC_FD, "", (char *[]){NULL},
			       (char *[]){NULL}, AT_EMPTY_PATH);
	case PROBE_EXECVE:
		/* ENOENT if it reaches the kernel */
		return syscall(SYS_execve, "/nonexistent/mtd-probe", (char *[]){NULL},
			       (char *[]){NULL});
	case PROBE_EXEC_TWICE: {
		int first, second;
		close(SECCOMP_POLICY_EXEC_FD);
		first = syscall(SYS_execveat, SECCOMP_POLICY_EXEC_FD, "", (char *[]){NULL},
				(char *[]){NULL}, AT_EMPTY_PATH) < 0
			    ? errno
			    : 0;
		second = syscall(SYS_execveat, SECCOMP_POLICY_EXEC_FD, "", (char *[]){NULL},
				 (char *[]){NULL}, AT_EMPTY_PATH) < 0
			     ? errno
			     : 0;
		errno = first * 1000 + second;
		return -1;
	}
	default:
		return -1;
	}
}

/* The raw exit: sanitizers hook _exit() to scan for leaks, which the filter
 * (and the forked copy of the parent's heap) would confuse. */
#define child_exit(code) syscall(SYS_exit_group, (code))

/* Fork, load p, run probe, return the errno seen (0 = success) or -SIGNAL. */
static int in_child(const struct seccomp_program *prog, enum probe which)
{
	int pfd[2], st, err = -1;
	pid_t pid;

	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int e;
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || seccomp_program_load(prog) < 0)
			child_exit(100);
		e = run_probe(which) < 0 ? errno : 0;
		(void)!write(pfd[1], &e, sizeof(e));
		child_exit(0);
	}
	close(pfd[1]);
	if (read(pfd[0], &err, sizeof(err)) != sizeof(err))
		err = -1;
	close(pfd[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (WIFSIGNALED(st))
		return -WTERMSIG(st);
	assert_int_equal(WEXITSTATUS(st), 0);
	return err;
}

/* Enough for the child to write its answer and exit, and exec (execve): a
 * policy that allows exec. */
static char *base[] = {"getpid", "write", "exit_group", "exit", "read", "close", "execve"};
#define N_BASE ELEMENTSOF(base)
/* The same without execve: a policy without exec. */
#define N_BASE_NO_EXEC (N_BASE - 1)

static struct seccomp_program *compile(enum seccomp_default def)
{
	struct seccomp_program *p = NULL;

	assert_int_equal(seccomp_program_compile(base, N_BASE, def, &p, NULL), 0);
	assert_non_null(p);
	assert_true(p->count > 0);
	return p;
}

static void test_listed_calls_pass_others_get_eperm(void **state)
{
	struct seccomp_program *p = compile(SECCOMP_DEFAULT_ERRNO);

	assert_int_equal(in_child(p, PROBE_GETPID), 0);
	assert_int_equal(in_child(p, PROBE_GETPPID), EPERM);
	assert_int_equal(in_child(p, PROBE_UNAME), EPERM);
	seccomp_program_free(p);
}

static void test_default_kill_kills_with_sigsys(void **state)
{
	struct seccomp_program *p = compile(SECCOMP_DEFAULT_KILL);

	assert_int_equal(in_child(p, PROBE_GETPID), 0);
	assert_int_equal(in_child(p, PROBE_GETPPID), -SIGSYS);
	assert_int_equal(in_child(p, PROBE_UNAME), -SIGSYS);
	seccomp_program_free(p);
}

static void test_clone3_is_enosys_even_when_listed(void **state)
{
	char *items[] = {"getpid", "write", "exit_group", "exit", "clone3"};
	struct seccomp_program *p = NULL;

	assert_int_equal(seccomp_program_compile(items, 5, SECCOMP_DEFAULT_KILL, &p, NULL), 0);
	assert_int_equal(in_child(p, PROBE_CLONE3), ENOSYS);
	seccomp_program_free(p);
	p = compile(SECCOMP_DEFAULT_KILL);
	assert_int_equal(in_child(p, PROBE_CLONE3), ENOSYS);
	seccomp_program_free(p);
}

static void test_execveat_only_for_the_envelope_fd(void **state)
{
	struct seccomp_program *p = compile(SECCOMP_DEFAULT_ERRNO);
	char *items[] = {"getpid", "write", "exit_group", "exit", "execveat"};

	/* fd 999 != SECCOMP_POLICY_EXEC_FD: filtered */
	assert_int_equal(in_child(p, PROBE_EXECVEAT), EPERM);
	assert_int_equal(in_child(p, PROBE_EXECVEAT_ENVELOPE_FD), EBADF);
	seccomp_program_free(p);
	p = NULL;
	assert_int_equal(seccomp_program_compile(items, 5, SECCOMP_DEFAULT_ERRNO, &p, NULL), 0);
	assert_int_equal(in_child(p, PROBE_EXECVEAT), EBADF); /* listed: reaches the kernel */
	seccomp_program_free(p);
}

static void test_groups_expand(void **state)
{
	char *items[] = {"@system-service"};
	struct seccomp_program *p = NULL;

	assert_int_equal(seccomp_program_compile(items, 1, SECCOMP_DEFAULT_ERRNO, &p, NULL), 0);
	assert_true(p->n_allowed > 100);
	assert_int_equal(in_child(p, PROBE_UNAME), 0);	 /* in @system-service */
	assert_int_equal(in_child(p, PROBE_GETPPID), 0); /* in @default */
	seccomp_program_free(p);
}

static void test_unknown_name_or_group_is_refused_and_named(void **state)
{
	char *items[] = {"getpid", "no_such_call"};
	char *groups[] = {"@default", "@no-such-group"};
	struct seccomp_program *p = NULL;
	const char *bad = NULL;

	assert_int_equal(seccomp_program_compile(items, 2, SECCOMP_DEFAULT_ERRNO, &p, &bad),
			 -EINVAL);
	assert_null(p);
	assert_string_equal(bad, "no_such_call");
	bad = NULL;
	assert_int_equal(seccomp_program_compile(groups, 2, SECCOMP_DEFAULT_ERRNO, &p, &bad),
			 -EINVAL);
	assert_string_equal(bad, "@no-such-group");
}

static void test_invalid_program_is_refused_by_load(void **state)
{
	struct sock_filter insn = {0xffff, 0, 0, 0};
	struct seccomp_program bad = {.insns = &insn, .count = 1};
	struct seccomp_program empty = {0};
	int st;

	assert_int_equal(seccomp_program_load(&empty), -EINVAL);
	pid_t pid = fork();
	if (pid == 0) {
		prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
		child_exit(seccomp_program_load(&bad) == -EINVAL ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* --- violations: user notifications ------------------------------------------------- */

#define MAX_SEEN 4

struct notify_run {
	int err;	   /* errno the probe saw (0 = success), -SIGNAL if killed */
	int first_exec;	   /* with continue_first: seccomp_notify_continue_exec()'s return */
	int eagain_before; /* seccomp_notify_handle() before "go": -EAGAIN expected */
	int after_exit;	   /* seccomp_notify_handle() after the reap: -EPIPE expected */
	size_t n_seen;
	struct seccomp_violation seen[MAX_SEEN];
	pid_t pid;
};

static void send_fd(int sock, int fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control = {0};
	char byte = 'L';
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = control.buf,
			    .msg_controllen = sizeof(control.buf)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	if (sendmsg(sock, &mh, MSG_NOSIGNAL) != 1)
		child_exit(101);
}

static int recv_fd(int sock)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control = {0};
	char byte;
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = control.buf,
			    .msg_controllen = sizeof(control.buf)};
	struct cmsghdr *c;
	int fd = -1;

	if (recvmsg(sock, &mh, MSG_CMSG_CLOEXEC) != 1)
		return -1;
	c = CMSG_FIRSTHDR(&mh);
	if (c && c->cmsg_type == SCM_RIGHTS)
		memcpy(&fd, CMSG_DATA(c), sizeof(int));
	return fd;
}

/* The envelope's order in a forked child: no_new_privs, the notify filter,
 * its listener to the test (SCM_RIGHTS), the main filter; then, on "go", the
 * probe. The test answers what arrives on the listener while it waits for
 * the probe's errno. */
static void in_child_notify_as(const struct seccomp_program *prog, enum probe which,
			       bool continue_first, struct notify_run *run)
{
	int sv[2], res[2], go[2], st, listener;
	char g = 'g';

	memset(run, 0, sizeof(*run));
	run->err = -1;
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(pipe2(res, O_CLOEXEC), 0);
	assert_int_equal(pipe2(go, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int e, l = -1;
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
		    seccomp_program_load_notify(prog, &l) < 0 || l < 0)
			child_exit(100);
		send_fd(sv[1], l);
		if (seccomp_program_load(prog) < 0)
			child_exit(102);
		if (read(go[0], &e, 1) != 1)
			child_exit(103);
		e = run_probe(which) < 0 ? errno : 0;
		(void)!write(res[1], &e, sizeof(e));
		child_exit(0);
	}
	run->pid = pid;
	close(sv[1]);
	close(res[1]);
	close(go[0]);
	listener = recv_fd(sv[0]);
	close(sv[0]);
	assert_true(listener >= 0);
	run->eagain_before = seccomp_notify_handle(listener, &run->seen[0]);
	assert_int_equal(write(go[1], &g, 1), 1);
	close(go[1]);
	for (bool done = false; !done;) {
		struct pollfd p[2] = {{.fd = listener, .events = POLLIN},
				      {.fd = res[0], .events = POLLIN}};
		assert_true(poll(p, 2, 5000) > 0);
		if (p[0].revents & POLLIN) {
			struct seccomp_violation v;
			int r;
			if (continue_first) {
				/* the spawner's answer to the envelope's exec, once */
				run->first_exec = seccomp_notify_continue_exec(listener, pid, &v);
				continue_first = false;
				continue;
			}
			r = seccomp_notify_handle(listener, &v);
			if (r == 0 && run->n_seen < MAX_SEEN)
				run->seen[run->n_seen++] = v;
			else
				assert_int_equal(r, -EAGAIN);
		}
		if (p[1].revents & (POLLIN | POLLHUP)) {
			if (read(res[0], &run->err, sizeof(run->err)) != sizeof(run->err))
				run->err = -1;
			done = true;
		}
	}
	close(res[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (WIFSIGNALED(st))
		run->err = -WTERMSIG(st);
	else
		assert_int_equal(WEXITSTATUS(st), 0);
	run->after_exit = seccomp_notify_handle(listener, &run->seen[MAX_SEEN - 1]);
	close(listener);
}

static void in_child_notify(const struct seccomp_program *prog, enum probe which,
			    struct notify_run *run)
{
	in_child_notify_as(prog, which, false, run);
}

static char *violations_getppid[] = {"getppid"};

static struct seccomp_program *compile_violations(enum seccomp_default def, char **items,
						  size_t n_items, char **violations, size_t n_v)
{
	struct seccomp_program *p = NULL;

	assert_int_equal(
	    seccomp_program_compile_violations(items, n_items, violations, n_v, def, &p, NULL), 0);
	assert_non_null(p);
	assert_non_null(p->notify_insns);
	assert_int_equal(p->n_violations, n_v);
	return p;
}

static void test_violation_is_notified_with_args_and_answered_eperm(void **state)
{
	struct seccomp_program *p =
	    compile_violations(SECCOMP_DEFAULT_ERRNO, base, N_BASE, violations_getppid, 1);
	struct notify_run run;
	char want_line[128], line[256];

	in_child_notify(p, PROBE_GETPPID_ARGS, &run);
	assert_int_equal(run.eagain_before, -EAGAIN); /* nothing pending before the call */
	assert_int_equal(run.err, EPERM);	      /* the answer, not the kernel's pid */
	assert_int_equal(run.n_seen, 1);
	assert_int_equal(run.seen[0].pid, run.pid);
	assert_int_equal(run.seen[0].nr, SYS_getppid);
	assert_string_equal(run.seen[0].name, "getppid");
	assert_true(run.seen[0].answered);
	assert_true(run.seen[0].instruction_pointer != 0);
	const uint64_t want[6] = {0x11, 0x22, 0x33, 0x44, 0x55, UINT64_MAX};
	assert_memory_equal(run.seen[0].args, want, sizeof(want));
	assert_int_equal(run.after_exit, -EPIPE); /* hung up once the child is reaped */
	snprintf(
	    want_line, sizeof(want_line),
	    "pid=%d syscall=getppid nr=%d args=0x11,0x22,0x33,0x44,0x55,0xffffffffffffffff ip=0x",
	    (int)run.pid, SYS_getppid);
	seccomp_violation_format(&run.seen[0], line, sizeof(line));
	assert_true(strncmp(line, want_line, strlen(want_line)) == 0);
	seccomp_program_free(p);
}

static void test_violation_wins_over_the_allow_list(void **state)
{
	char *items[] = {"getpid", "write", "exit_group", "exit", "read", "close", "getppid"};
	struct seccomp_program *p =
	    compile_violations(SECCOMP_DEFAULT_ERRNO, items, 7, violations_getppid, 1);
	struct notify_run run;

	in_child_notify(p, PROBE_GETPPID, &run);
	assert_int_equal(run.err, EPERM);
	assert_int_equal(run.n_seen, 1);
	assert_string_equal(run.seen[0].name, "getppid");
	seccomp_program_free(p);
}

static void test_other_calls_unchanged_by_violations(void **state)
{
	struct seccomp_program *p =
	    compile_violations(SECCOMP_DEFAULT_ERRNO, base, N_BASE, violations_getppid, 1);
	struct notify_run run;

	in_child_notify(p, PROBE_GETPID, &run); /* allowed */
	assert_int_equal(run.err, 0);
	assert_int_equal(run.n_seen, 0);
	in_child_notify(p, PROBE_UNAME, &run); /* default: EPERM, not a notification */
	assert_int_equal(run.err, EPERM);
	assert_int_equal(run.n_seen, 0);
	in_child_notify(p, PROBE_CLONE3, &run); /* still ENOSYS */
	assert_int_equal(run.err, ENOSYS);
	assert_int_equal(run.n_seen, 0);
	in_child_notify(p, PROBE_EXECVEAT, &run); /* only the envelope's form */
	assert_int_equal(run.err, EPERM);
	assert_int_equal(run.n_seen, 0);
	seccomp_program_free(p);

	p = compile_violations(SECCOMP_DEFAULT_KILL, base, N_BASE, violations_getppid, 1);
	in_child_notify(p, PROBE_UNAME, &run); /* default kill still kills */
	assert_int_equal(run.err, -SIGSYS);
	assert_int_equal(run.n_seen, 0);
	in_child_notify(p, PROBE_GETPPID, &run); /* a violation is answered, not killed */
	assert_int_equal(run.err, EPERM);
	assert_int_equal(run.n_seen, 1);
	seccomp_program_free(p);
}

static void test_clone3_and_execveat_as_violations(void **state)
{
	char *v[] = {"clone3", "execveat"};
	struct seccomp_program *p = compile_violations(SECCOMP_DEFAULT_KILL, base, N_BASE, v, 2);
	struct notify_run run;

	in_child_notify(p, PROBE_CLONE3, &run);
	assert_int_equal(run.err, EPERM);
	assert_int_equal(run.n_seen, 1);
	assert_string_equal(run.seen[0].name, "clone3");
	in_child_notify(p, PROBE_EXECVEAT, &run);
	assert_int_equal(run.err, EPERM);
	assert_int_equal(run.n_seen, 1);
	assert_string_equal(run.seen[0].name, "execveat");
	assert_int_equal((int)run.seen[0].args[0], 999);
	/* execveat notified: the envelope's own form too (its spawner answers
	 * that one, see test_envelope_exec_is_continued_once) */
	assert_true(p->exec_allowed); /* execve */
	assert_true(p->exec_notified);
	in_child_notify(p, PROBE_EXECVEAT_ENVELOPE_FD, &run);
	assert_int_equal(run.err, EPERM);
	assert_int_equal(run.n_seen, 1);
	assert_int_equal((int)run.seen[0].args[0], SECCOMP_POLICY_EXEC_FD);
	seccomp_program_free(p);
}

static void test_violations_the_envelope_needs_are_refused(void **state)
{
	char *needs[][1] = {{"sendmsg"}, {"sendto"}, {"seccomp"}, {"exit_group"}, {"@network-io"}};
	char *unknown[] = {"ptrace", "no_such_call"};
	struct seccomp_program *p = NULL;
	const char *bad = NULL;

	for (size_t i = 0; i < ELEMENTSOF(needs); i++) {
		bad = NULL;
		assert_int_equal(seccomp_program_compile_violations(
				     base, N_BASE, needs[i], 1, SECCOMP_DEFAULT_ERRNO, &p, &bad),
				 -EINVAL);
		assert_null(p);
		assert_ptr_equal(bad, needs[i][0]);
		bad = NULL;
		assert_int_equal(seccomp_violations_check(needs[i], 1, &bad), -EINVAL);
		assert_ptr_equal(bad, needs[i][0]);
	}
	assert_int_equal(seccomp_violations_check(unknown, 1, &bad), 0); /* ptrace */
	assert_int_equal(seccomp_program_compile_violations(base, N_BASE, unknown, 2,
							    SECCOMP_DEFAULT_ERRNO, &p, &bad),
			 -EINVAL);
	assert_string_equal(bad, "no_such_call");
}

static void test_no_violations_no_listener(void **state)
{
	struct seccomp_program *p = compile(SECCOMP_DEFAULT_ERRNO);
	int fd = 42;

	assert_null(p->notify_insns);
	assert_int_equal(p->n_violations, 0);
	assert_int_equal(seccomp_program_load_notify(p, &fd), 0); /* loads nothing */
	assert_int_equal(fd, -1);
	seccomp_program_free(p);
}

/* --- exec: a policy without exec --------------------------------------------------- */

static void test_policy_with_exec_has_no_notify_filter(void **state)
{
	struct seccomp_program *p = compile(SECCOMP_DEFAULT_ERRNO);

	assert_true(p->exec_allowed);
	assert_false(p->exec_notified);
	assert_null(p->notify_insns);
	seccomp_program_free(p);
}

static void test_policy_without_exec_notifies_every_exec(void **state)
{
	struct seccomp_program *p = NULL;
	struct notify_run run;

	/* no violation list: the notify filter is there for exec alone */
	assert_int_equal(
	    seccomp_program_compile(base, N_BASE_NO_EXEC, SECCOMP_DEFAULT_KILL, &p, NULL), 0);
	assert_false(p->exec_allowed);
	assert_true(p->exec_notified);
	assert_non_null(p->notify_insns);
	assert_int_equal(p->n_violations, 0);
	in_child_notify(p, PROBE_EXECVE, &run); /* a violation, not SIGSYS, not ENOENT */
	assert_int_equal(run.err, EPERM);
	assert_int_equal(run.n_seen, 1);
	assert_string_equal(run.seen[0].name, "execve");
	in_child_notify(p, PROBE_EXECVEAT, &run); /* any fd */
	assert_int_equal(run.err, EPERM);
	assert_int_equal(run.n_seen, 1);
	assert_string_equal(run.seen[0].name, "execveat");
	assert_int_equal((int)run.seen[0].args[0], 999);
	in_child_notify(p, PROBE_EXECVEAT_ENVELOPE_FD, &run); /* the envelope's form too */
	assert_int_equal(run.err, EPERM);
	assert_int_equal(run.n_seen, 1);
	in_child_notify(p, PROBE_GETPID, &run); /* the rest as before */
	assert_int_equal(run.err, 0);
	assert_int_equal(run.n_seen, 0);
	seccomp_program_free(p);
}

static void test_exec_listed_as_violation_is_a_policy_without_exec(void **state)
{
	char *v[] = {"execve", "execveat"};
	struct seccomp_program *p =
	    compile_violations(SECCOMP_DEFAULT_ERRNO, base, N_BASE, v, ELEMENTSOF(v));
	struct notify_run run;

	assert_false(p->exec_allowed); /* execve allowed, but a violation */
	assert_true(p->exec_notified);
	in_child_notify(p, PROBE_EXECVE, &run);
	assert_int_equal(run.err, EPERM);
	assert_int_equal(run.n_seen, 1);
	seccomp_program_free(p);
}

/* The spawner's answer: the first execveat in the envelope's form runs
 * (CONTINUE: the kernel then says EBADF, fd 100 is closed); the second is a
 * violation like any other (EPERM, notified). */
static void test_envelope_exec_is_continued_once(void **state)
{
	struct seccomp_program *p = NULL;
	struct notify_run run;

	assert_int_equal(
	    seccomp_program_compile(base, N_BASE_NO_EXEC, SECCOMP_DEFAULT_ERRNO, &p, NULL), 0);
	in_child_notify_as(p, PROBE_EXEC_TWICE, true, &run);
	assert_int_equal(run.first_exec, 0);
	assert_int_equal(run.err, EBADF * 1000 + EPERM);
	assert_int_equal(run.n_seen, 1);
	assert_string_equal(run.seen[0].name, "execveat");
	seccomp_program_free(p);
}

/* Anything else first (another fd, execve) is refused, never continued. */
static void test_spawner_refuses_other_first_notifications(void **state)
{
	struct seccomp_program *p = NULL;
	struct notify_run run;

	assert_int_equal(
	    seccomp_program_compile(base, N_BASE_NO_EXEC, SECCOMP_DEFAULT_ERRNO, &p, NULL), 0);
	in_child_notify_as(p, PROBE_EXECVEAT, true, &run);
	assert_int_equal(run.first_exec, -EPERM);
	assert_int_equal(run.err, EPERM);
	in_child_notify_as(p, PROBE_EXECVE, true, &run);
	assert_int_equal(run.first_exec, -EPERM);
	assert_int_equal(run.err, EPERM);
	seccomp_program_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_listed_calls_pass_others_get_eperm),
	    cmocka_unit_test(test_default_kill_kills_with_sigsys),
	    cmocka_unit_test(test_clone3_is_enosys_even_when_listed),
	    cmocka_unit_test(test_execveat_only_for_the_envelope_fd),
	    cmocka_unit_test(test_groups_expand),
	    cmocka_unit_test(test_unknown_name_or_group_is_refused_and_named),
	    cmocka_unit_test(test_invalid_program_is_refused_by_load),
	    cmocka_unit_test(test_violation_is_notified_with_args_and_answered_eperm),
	    cmocka_unit_test(test_violation_wins_over_the_allow_list),
	    cmocka_unit_test(test_other_calls_unchanged_by_violations),
	    cmocka_unit_test(test_clone3_and_execveat_as_violations),
	    cmocka_unit_test(test_violations_the_envelope_needs_are_refused),
	    cmocka_unit_test(test_no_violations_no_listener),
	    cmocka_unit_test(test_policy_with_exec_has_no_notify_filter),
	    cmocka_unit_test(test_policy_without_exec_notifies_every_exec),
	    cmocka_unit_test(test_exec_listed_as_violation_is_a_policy_without_exec),
	    cmocka_unit_test(test_envelope_exec_is_continued_once),
	    cmocka_unit_test(test_spawner_refuses_other_first_notifications),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
