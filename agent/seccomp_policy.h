/* SPDX-License-Identifier: MIT */
/* A policy's SystemCalls= allow-list and ViolationSystemCalls= list compiled
 * once (per policy load) into classic BPF programs that every launch of the
 * policy's instances loads with seccomp() in the child, without allocating.
 * docs/seccomp.md has the whole story.
 *
 * The main filter: native architecture only (any other architecture, x32
 * included, kills the process); every listed system call allowed; clone3
 * answered with ENOSYS whatever the list says (glibc then falls back to
 * clone, whose flags the kernel checks as usual); execveat allowed only as
 * the envelope's own exec (fd SECCOMP_POLICY_EXEC_FD with AT_EMPTY_PATH) when
 * the list does not allow it anyway and it is not notified; everything else
 * gets the default action: EPERM or killing the whole process (SIGSYS).
 *
 * Violations: each system call of the violation list goes to the agent as a
 * user notification (SECCOMP_RET_USER_NOTIF), which answers it with EPERM
 * (seccomp_notify.h). That takes a second, small filter, the notify filter,
 * loaded FIRST with SECCOMP_FILTER_FLAG_NEW_LISTENER: it notifies the
 * violations and allows everything else; the main filter, loaded after the
 * envelope has handed the listener to the agent, then allows the violations
 * (the kernel takes the strictest verdict of all filters, and ERRNO or KILL
 * would beat USER_NOTIF). So a name that is both allowed and a violation is a
 * violation, clone3 included. The envelope needs sendmsg, sendto, seccomp and
 * exit_group between the two loads: those cannot be violations (-EINVAL,
 * named in ret_bad_item).
 *
 * Exec: a policy allows exec when execve or execveat is allowed and not a
 * violation. A policy without exec notifies execve and execveat in every form
 * whatever its violation list says (so it always has a notify filter), and so
 * does a policy that lists execveat as a violation: the envelope's own
 * execveat is then a notification too, which the spawner answers with
 * SECCOMP_USER_NOTIF_FLAG_CONTINUE, once, before any service code has run
 * (seccomp_notify_continue_exec()); every later exec is a violation. */
#pragma once

#include <linux/filter.h>
#include <stdbool.h>
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
	struct sock_filter *insns;	  /* the main filter */
	size_t count;			  /* instructions */
	struct sock_filter *notify_insns; /* the notify filter; NULL without violations */
	size_t notify_count;
	enum seccomp_default default_action;
	size_t n_allowed;    /* system calls allowed (after expansion) */
	size_t n_violations; /* system calls of the violation list (after expansion) */
	bool exec_allowed;   /* execve or execveat allowed and not a violation */
	/* execveat is notified in every form: the envelope's own exec comes to
	 * the spawner as the first notification, to be answered CONTINUE once */
	bool exec_notified;
};

/* Expand names and @groups (syscall_groups.h) and compile. -EINVAL for an
 * unknown name or group; ret_bad_item (may be NULL) then points into items.
 * No violations: the same as seccomp_program_compile_violations(..., NULL, 0,
 * ...). */
int seccomp_program_compile(char *const *items, size_t n_items, enum seccomp_default def,
			    struct seccomp_program **ret, const char **ret_bad_item);

/* The same with a violation list (names and @groups). -EINVAL for an unknown
 * name or group in either list, or a violation the envelope itself needs
 * (sendmsg, sendto, seccomp, exit_group); ret_bad_item points into items or
 * violations. */
int seccomp_program_compile_violations(char *const *items, size_t n_items, char *const *violations,
				       size_t n_violations, enum seccomp_default def,
				       struct seccomp_program **ret, const char **ret_bad_item);

/* Only the checks of the violation list (for policy validation, without
 * compiling): 0, or -EINVAL for an unknown name or group or a call the
 * envelope needs, with ret_bad_item (may be NULL) pointing into items. */
int seccomp_violations_check(char *const *items, size_t n_items, const char **ret_bad_item);

/* Same from already expanded lists of system call names. */
int seccomp_program_compile_names(char *const *names, size_t n_names, enum seccomp_default def,
				  struct seccomp_program **ret);
int seccomp_program_compile_names_violations(char *const *names, size_t n_names,
					     char *const *violations, size_t n_violations,
					     enum seccomp_default def,
					     struct seccomp_program **ret);

/* Step 1 of 2, only for a program with a notify filter (violations, or no
 * exec; else *ret_listener_fd = -1 and nothing is loaded): load the notify filter with
 * SECCOMP_FILTER_FLAG_NEW_LISTENER; *ret_listener_fd is the listener
 * (close-on-exec), to be handed to the supervisor before step 2. Step 2
 * without step 1 would make the violations plain allowed calls: a programming
 * error. */
int seccomp_program_load_notify(const struct seccomp_program *p, int *ret_listener_fd);

/* Step 2: load the main filter into the calling thread. Both steps are
 * async-signal-safe (no allocation); the caller must have set no_new_privs or
 * hold CAP_SYS_ADMIN. */
int seccomp_program_load(const struct seccomp_program *p);

void seccomp_program_free(struct seccomp_program *p);
