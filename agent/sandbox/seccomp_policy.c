/* SPDX-License-Identifier: MIT */
/* SystemCalls= and ViolationSystemCalls= compiled into reusable BPF programs
 * (libseccomp), see sandbox.h and docs/seccomp.md. */
#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "macro.h"
#include "sandbox.h"
#include "policy.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(scmp_filter_ctx, seccomp_release)

static void syscall_names_freep(char ***p)
{
	syscall_group_names_free(*p);
}

void seccomp_program_free(struct seccomp_program *p)
{
	if (!p)
		return;
	free(p->insns);
	free(p->notify_insns);
	free(p);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct seccomp_program *, seccomp_program_free)

/* seccomp_export_bpf() writes to an fd: a memfd, read back whole. */
static int export_program(scmp_filter_ctx ctx, struct sock_filter **ret, size_t *ret_count)
{
	_cleanup_close_ int fd = memfd_create("mtd-seccomp", MFD_CLOEXEC);
	_cleanup_free_ struct sock_filter *insns = NULL;
	struct stat st;
	int r;

	if (fd < 0)
		return -errno;
	r = seccomp_export_bpf(ctx, fd);
	if (r < 0)
		return r;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_size <= 0 || st.st_size % sizeof(struct sock_filter) != 0 ||
	    st.st_size / sizeof(struct sock_filter) > BPF_MAXINSNS)
		return -E2BIG;
	insns = malloc(st.st_size);
	if (!insns)
		return -ENOMEM;
	if (pread(fd, insns, st.st_size, 0) != st.st_size)
		return -EIO;
	*ret_count = st.st_size / sizeof(struct sock_filter);
	*ret = TAKE_PTR(insns);
	return 0;
}

/* System calls the envelope makes between loading the notify filter and the
 * exec (the listener handover, an error report, the main filter, _exit): a
 * notification there would wait for a supervisor that does not listen yet. */
static const char *const envelope_needs[] = {"sendmsg", "sendto", "seccomp", "exit_group"};

static bool is_envelope_need(const char *name)
{
	for (size_t i = 0; i < ELEMENTSOF(envelope_needs); i++)
		if (streq(name, envelope_needs[i]))
			return true;
	return false;
}

static bool in_list(char *const *names, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (streq(names[i], name))
			return true;
	return false;
}

static int new_filter(uint32_t def_action, scmp_filter_ctx *ret)
{
	_cleanup_(seccomp_releasep) scmp_filter_ctx ctx = seccomp_init(def_action);
	int r;

	if (!ctx)
		return -ENOMEM;
	/* native only: a foreign architecture (or x32) kills the process */
	r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	if (r < 0)
		return r;
	/* no_new_privs is the envelope's own step, not libseccomp's */
	r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
	if (r < 0)
		return r;
	/* A binary tree instead of a linear list: a syscall meets ~log2(n)
	 * comparisons, not up to n. It is cheaper for every syscall the service
	 * makes and for the kernel's action cache, which runs each syscall
	 * number through the filter when it is loaded, at every launch. */
	r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(ctx);
	return 0;
}

/* Resolve a name: the number, -ENOENT for a pseudo syscall of another
 * architecture (skipped), -EINVAL for an unknown name. */
static int resolve(const char *name)
{
	int nr = seccomp_syscall_resolve_name(name);

	if (nr == __NR_SCMP_ERROR)
		return -EINVAL;
	return nr < 0 ? -ENOENT : nr;
}

/* The envelope's own exec form: execveat(SECCOMP_POLICY_EXEC_FD, "", ...,
 * AT_EMPTY_PATH). Spelled out: the SCMP_A0() macros leave datum_b to the
 * compiler, which clang's -Wmissing-field-initializers refuses. */
static const struct scmp_arg_cmp exec_fd_eq = {
    .arg = 0, .op = SCMP_CMP_EQ, .datum_a = SECCOMP_POLICY_EXEC_FD};
static const struct scmp_arg_cmp empty_path_eq = {
    .arg = 4, .op = SCMP_CMP_EQ, .datum_a = AT_EMPTY_PATH};

/* The main filter: names allowed, notified calls allowed too (the notify
 * filter turns them into notifications), clone3 ENOSYS unless a violation,
 * execveat as the envelope's exec only unless listed or notified. */
static int compile_main(char *const *names, size_t n_names, char *const *violations,
			size_t n_violations, enum seccomp_default def, struct sock_filter **ret,
			size_t *ret_count)
{
	uint32_t def_action =
	    def == SECCOMP_DEFAULT_KILL ? SCMP_ACT_KILL_PROCESS : SCMP_ACT_ERRNO(EPERM);
	_cleanup_(seccomp_releasep) scmp_filter_ctx ctx = NULL;
	bool has_execveat = false, clone3_violation = false;
	int r;

	r = new_filter(def_action, &ctx);
	if (r < 0)
		return r;
	for (size_t k = 0; k < n_names + n_violations; k++) {
		bool violation = k >= n_names;
		const char *name = violation ? violations[k - n_names] : names[k];
		int nr = resolve(name);

		if (nr == -ENOENT)
			continue;
		if (nr < 0)
			return nr;
		if (!violation && in_list(violations, n_violations, name))
			continue; /* added once, as a violation */
		if (streq(name, "clone3")) {
			if (!violation)
				continue; /* answered with ENOSYS below */
			clone3_violation = true;
		}
		if (streq(name, "execveat"))
			has_execveat = true;
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
		if (r < 0)
			return r;
	}
	if (!clone3_violation) {
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
		if (r < 0)
			return r;
	}
	if (!has_execveat) {
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(execveat), 2, exec_fd_eq,
				     empty_path_eq);
		if (r < 0)
			return r;
	}
	return export_program(ctx, ret, ret_count);
}

/* The notify filter: each violation notifies, everything else passes on to
 * the main filter. execveat, when notified, is notified in every form, the
 * envelope's own exec included: the spawner answers that one (the first,
 * before any service code runs) with SECCOMP_USER_NOTIF_FLAG_CONTINUE, once
 * (seccomp_notify_continue_exec()). */
static int compile_notify(char *const *violations, size_t n_violations, struct sock_filter **ret,
			  size_t *ret_count)
{
	_cleanup_(seccomp_releasep) scmp_filter_ctx ctx = NULL;
	int r;

	r = new_filter(SCMP_ACT_ALLOW, &ctx);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n_violations; i++) {
		int nr = resolve(violations[i]);

		if (nr == -ENOENT)
			continue;
		if (nr < 0)
			return nr;
		if (is_envelope_need(violations[i]))
			return -EINVAL;
		r = seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, nr, 0);
		if (r < 0)
			return r;
	}
	return export_program(ctx, ret, ret_count);
}

static const char *const exec_calls[] = {"execve", "execveat"};

/* Whether the policy lets the instance start a program: execve or execveat
 * allowed and not a violation. */
static bool exec_allowed(char *const *names, size_t n_names, char *const *violations,
			 size_t n_violations)
{
	for (size_t i = 0; i < ELEMENTSOF(exec_calls); i++)
		if (in_list(names, n_names, exec_calls[i]) &&
		    !in_list(violations, n_violations, exec_calls[i]))
			return true;
	return false;
}

/* The violations plus, for a policy without exec, execve and execveat: every
 * exec attempt is then a violation, whatever the violation list says. The
 * names are borrowed (static strings or the caller's). */
static int notified_calls(char *const *names, size_t n_names, char *const *violations,
			  size_t n_violations, char ***ret, size_t *ret_n)
{
	bool add = !exec_allowed(names, n_names, violations, n_violations);
	char **list = calloc(n_violations + ELEMENTSOF(exec_calls) + 1, sizeof(char *));
	size_t n = 0;

	if (!list)
		return -ENOMEM;
	for (size_t i = 0; i < n_violations; i++)
		list[n++] = violations[i];
	for (size_t i = 0; add && i < ELEMENTSOF(exec_calls); i++)
		if (!in_list(violations, n_violations, exec_calls[i]))
			list[n++] = (char *)exec_calls[i];
	*ret = list;
	*ret_n = n;
	return 0;
}

int seccomp_program_compile_names_violations(char *const *names, size_t n_names,
					     char *const *violations, size_t n_violations,
					     enum seccomp_default def, struct seccomp_program **ret)
{
	_cleanup_(seccomp_program_freep) struct seccomp_program *p = NULL;
	_cleanup_free_ char **notified = NULL;
	size_t n_notified = 0;
	int r;

	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	r = notified_calls(names, n_names, violations, n_violations, &notified, &n_notified);
	if (r < 0)
		return r;
	if (n_notified > 0) {
		r = compile_notify(notified, n_notified, &p->notify_insns, &p->notify_count);
		if (r < 0)
			return r;
	}
	r = compile_main(names, n_names, notified, n_notified, def, &p->insns, &p->count);
	if (r < 0)
		return r;
	p->default_action = def;
	p->n_allowed = n_names;
	p->n_violations = n_violations;
	p->exec_allowed = exec_allowed(names, n_names, violations, n_violations);
	p->exec_notified = in_list(notified, n_notified, "execveat");
	*ret = TAKE_PTR(p);
	return 0;
}

int seccomp_program_compile_names(char *const *names, size_t n_names, enum seccomp_default def,
				  struct seccomp_program **ret)
{
	return seccomp_program_compile_names_violations(names, n_names, NULL, 0, def, ret);
}

/* Expand a list; on -EINVAL point ret_bad_item at the item that does not
 * expand on its own. */
static int expand(char *const *items, size_t n_items, char ***ret, size_t *ret_n,
		  const char **ret_bad_item)
{
	int r = syscall_group_expand(items, n_items, ret, ret_n);

	if (r == -EINVAL && ret_bad_item) {
		for (size_t i = 0; i < n_items; i++) {
			char **one = NULL;
			size_t k;
			if (syscall_group_expand(&items[i], 1, &one, &k) == -EINVAL) {
				*ret_bad_item = items[i];
				break;
			}
			syscall_group_names_free(one);
		}
	}
	return r;
}

/* The violation item that brings in a system call the envelope needs. */
static const char *envelope_need_item(char *const *items, size_t n_items)
{
	for (size_t i = 0; i < n_items; i++) {
		char **one = NULL;
		size_t k = 0;
		bool bad = false;

		if (syscall_group_expand(&items[i], 1, &one, &k) < 0)
			continue;
		for (size_t j = 0; j < k && !bad; j++)
			bad = is_envelope_need(one[j]);
		syscall_group_names_free(one);
		if (bad)
			return items[i];
	}
	return NULL;
}

int seccomp_violations_check(char *const *items, size_t n_items, const char **ret_bad_item)
{
	_cleanup_(syscall_names_freep) char **names = NULL;
	size_t n = 0;
	const char *bad;
	int r;

	r = expand(items, n_items, &names, &n, ret_bad_item);
	if (r < 0)
		return r;
	bad = envelope_need_item(items, n_items);
	if (bad) {
		if (ret_bad_item)
			*ret_bad_item = bad;
		return -EINVAL;
	}
	return 0;
}

int seccomp_program_compile_violations(char *const *items, size_t n_items, char *const *violations,
				       size_t n_violations, enum seccomp_default def,
				       struct seccomp_program **ret, const char **ret_bad_item)
{
	_cleanup_(syscall_names_freep) char **names = NULL;
	_cleanup_(syscall_names_freep) char **vnames = NULL;
	size_t n = 0, nv = 0;
	int r;

	r = expand(items, n_items, &names, &n, ret_bad_item);
	if (r < 0)
		return r;
	if (n_violations > 0) {
		r = seccomp_violations_check(violations, n_violations, ret_bad_item);
		if (r < 0)
			return r;
		r = expand(violations, n_violations, &vnames, &nv, ret_bad_item);
		if (r < 0)
			return r;
	}
	return seccomp_program_compile_names_violations(names, n, vnames, nv, def, ret);
}

int seccomp_program_compile(char *const *items, size_t n_items, enum seccomp_default def,
			    struct seccomp_program **ret, const char **ret_bad_item)
{
	return seccomp_program_compile_violations(items, n_items, NULL, 0, def, ret, ret_bad_item);
}

static int load_filter(const struct sock_filter *insns, size_t count, unsigned flags)
{
	struct sock_fprog prog = {
	    .len = (unsigned short)count,
	    .filter = (struct sock_filter *)insns,
	};
	long r;

	if (!insns || count == 0 || count > BPF_MAXINSNS)
		return -EINVAL;
	r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
	if (r < 0)
		return -errno;
	return (int)r;
}

int seccomp_program_load_notify(const struct seccomp_program *p, int *ret_listener_fd)
{
	int r;

	if (!p->notify_insns) {
		*ret_listener_fd = -1;
		return 0;
	}
	r = load_filter(p->notify_insns, p->notify_count, SECCOMP_FILTER_FLAG_NEW_LISTENER);
	if (r < 0)
		return r;
	*ret_listener_fd = r;
	return 0;
}

int seccomp_program_load(const struct seccomp_program *p)
{
	int r = load_filter(p->insns, p->count, 0);

	return r < 0 ? r : 0;
}
