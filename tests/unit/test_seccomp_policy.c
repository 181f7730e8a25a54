/* SPDX-License-Identifier: MIT */
/* SystemCalls= compiled to BPF: loaded in a forked child (no privileges: the
 * child sets no_new_privs), the filter allows exactly the listed calls. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "seccomp_policy.h"

/* What the child reports: the errno of each probe (0 = allowed), or 255
 * when the child died. */
enum probe {
	PROBE_GETPID,	/* listed */
	PROBE_GETPPID,	/* not listed */
	PROBE_UNAME,	/* not listed */
	PROBE_CLONE3,	/* always ENOSYS */
	PROBE_EXECVEAT, /* only as the envelope's exec */
	PROBE_EXECVEAT_ENVELOPE_FD,
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

/* Enough for the child to write its answer and exit. */
static char *base[] = {"getpid", "write", "exit_group", "exit", "read", "close"};

static struct seccomp_program *compile(enum seccomp_default def)
{
	struct seccomp_program *p = NULL;

	assert_int_equal(seccomp_program_compile(base, 6, def, &p, NULL), 0);
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
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
