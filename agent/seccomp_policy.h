/* SPDX-License-Identifier: MIT */
/* A policy's SystemCalls= allow-list compiled once (per policy load) into a
 * classic BPF program that every launch of the policy's instances loads with
 * seccomp(SECCOMP_SET_MODE_FILTER) in the child, without allocating.
 *
 * The filter: native architecture only (any other architecture, x32
 * included, kills the process); every listed system call allowed; clone3
 * answered with ENOSYS whatever the list says (glibc then falls back to
 * clone, whose flags the kernel checks as usual); execveat allowed only as
 * the envelope's own exec (fd SECCOMP_POLICY_EXEC_FD with AT_EMPTY_PATH) when
 * the list does not allow it anyway; everything else gets the default action:
 * EPERM or killing the whole process (SIGSYS). */
#pragma once

#include <linux/filter.h>
#include <stddef.h>
#include <stdint.h>

/* The descriptor number the envelope moves the service binary to before it
 * loads the filter and calls execveat(SECCOMP_POLICY_EXEC_FD, "", ...,
 * AT_EMPTY_PATH). The exec closes it (close-on-exec). */
#define SECCOMP_POLICY_EXEC_FD 100

enum seccomp_default {
	SECCOMP_DEFAULT_ERRNO, /* EPERM */
	SECCOMP_DEFAULT_KILL,  /* kill the process: SIGSYS, seen as killed or dumped */
};

struct seccomp_program {
	struct sock_filter *insns;
	size_t count; /* instructions */
	enum seccomp_default default_action;
	size_t n_allowed; /* system calls allowed (after expansion) */
};

/* Expand names and @groups (syscall_groups.h) and compile. -EINVAL for an
 * unknown name or group; ret_bad_item (may be NULL) then points into items. */
int seccomp_program_compile(char *const *items, size_t n_items, enum seccomp_default def,
			    struct seccomp_program **ret, const char **ret_bad_item);

/* Same from an already expanded list of system call names. */
int seccomp_program_compile_names(char *const *names, size_t n_names, enum seccomp_default def,
				  struct seccomp_program **ret);

/* Load into the calling thread (async-signal-safe: no allocation). The caller
 * must have set no_new_privs or hold CAP_SYS_ADMIN. */
int seccomp_program_load(const struct seccomp_program *p);

void seccomp_program_free(struct seccomp_program *p);
