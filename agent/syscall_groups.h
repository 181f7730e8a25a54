/* SPDX-License-Identifier: MIT */
/* Built-in system call groups for SystemCalls= ("@system-service", ...),
 * modelled on systemd's but with our own, narrower lists. A group lists
 * system call names and other "@groups". Names are those of libseccomp's
 * table: every name is known to libseccomp on x86_64, but may not exist on
 * the running architecture (e.g. mmap2, socketcall); such names are skipped
 * silently when a list is expanded. See policies/syscall-groups.md. */
#pragma once

#include <stddef.h>

struct syscall_group {
	const char *name;	    /* "@basic-io" */
	const char *help;	    /* one line */
	const char *const *members; /* NULL-terminated; names and "@groups" */
};

/* The group named name ("@..."), or NULL. */
const struct syscall_group *syscall_group_lookup(const char *name);

/* All groups, in documentation order. */
const struct syscall_group *syscall_groups_all(size_t *ret_count);

/* Expand names and @groups (recursively) into a sorted, duplicate-free,
 * NULL-terminated vector of system call names that exist on the native
 * architecture. Unknown groups or names given directly are -EINVAL; names
 * that come from a group and do not exist natively are skipped. Free the
 * result with syscall_names_free(). */
int syscall_list_expand(char *const *items, size_t n_items, char ***ret_names, size_t *ret_count);
void syscall_names_free(char **names);
