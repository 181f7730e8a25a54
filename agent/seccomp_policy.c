/* SPDX-License-Identifier: MIT */
/* SystemCalls= compiled into a reusable BPF program (libseccomp), see
 * seccomp_policy.h. */
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
#include "seccomp_policy.h"
#include "syscall_groups.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(scmp_filter_ctx, seccomp_release)

static void syscall_names_freep(char ***p)
{
	syscall_names_free(*p);
}

void seccomp_program_free(struct seccomp_program *p)
{
	if (!p)
		return;
	free(p->insns);
	free(p);
}

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

int seccomp_program_compile_names(char *const *names, size_t n_names, enum seccomp_default def,
				  struct seccomp_program **ret)
{
	uint32_t def_action =
	    def == SECCOMP_DEFAULT_KILL ? SCMP_ACT_KILL_PROCESS : SCMP_ACT_ERRNO(EPERM);
	_cleanup_(seccomp_releasep) scmp_filter_ctx ctx = seccomp_init(def_action);
	_cleanup_free_ struct seccomp_program *p = NULL;
	bool has_execveat = false;
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
	for (size_t i = 0; i < n_names; i++) {
		int nr = seccomp_syscall_resolve_name(names[i]);
		if (nr == __NR_SCMP_ERROR)
			return -EINVAL;
		if (nr < 0)
			continue; /* a pseudo syscall of another architecture */
		if (streq(names[i], "clone3"))
			continue; /* answered with ENOSYS below */
		if (streq(names[i], "execveat"))
			has_execveat = true;
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
		if (r < 0)
			return r;
	}
	r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	if (r < 0)
		return r;
	if (!has_execveat) {
		/* Spelled out: the SCMP_A0() macros leave datum_b to the compiler,
		 * which clang's -Wmissing-field-initializers refuses. */
		const struct scmp_arg_cmp exec_fd = {.arg = 0, .op = SCMP_CMP_EQ,
						     .datum_a = SECCOMP_POLICY_EXEC_FD};
		const struct scmp_arg_cmp empty_path = {.arg = 4, .op = SCMP_CMP_EQ,
							.datum_a = AT_EMPTY_PATH};

		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(execveat), 2, exec_fd,
				     empty_path);
		if (r < 0)
			return r;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	r = export_program(ctx, &p->insns, &p->count);
	if (r < 0)
		return r;
	p->default_action = def;
	p->n_allowed = n_names;
	*ret = TAKE_PTR(p);
	return 0;
}

int seccomp_program_compile(char *const *items, size_t n_items, enum seccomp_default def,
			    struct seccomp_program **ret, const char **ret_bad_item)
{
	_cleanup_(syscall_names_freep) char **names = NULL;
	size_t n = 0;
	int r;

	r = syscall_list_expand(items, n_items, &names, &n);
	if (r == -EINVAL && ret_bad_item) {
		/* find the item that does not expand on its own */
		for (size_t i = 0; i < n_items; i++) {
			char **one = NULL;
			size_t k;
			if (syscall_list_expand(&items[i], 1, &one, &k) == -EINVAL) {
				*ret_bad_item = items[i];
				break;
			}
			syscall_names_free(one);
		}
	}
	if (r < 0)
		return r;
	return seccomp_program_compile_names(names, n, def, ret);
}

int seccomp_program_load(const struct seccomp_program *p)
{
	struct sock_fprog prog = {
	    .len = (unsigned short)p->count,
	    .filter = p->insns,
	};

	if (!p->insns || p->count == 0 || p->count > BPF_MAXINSNS)
		return -EINVAL;
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
		return -errno;
	return 0;
}
