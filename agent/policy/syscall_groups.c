/* SPDX-License-Identifier: MIT */
/* Built-in system call groups and their expansion. The lists are our own,
 * modelled on systemd's seccomp-util.c groups but deliberately narrower:
 * io_uring, userfaultfd, personality, kcmp, setns, unshare, ptrace,
 * process_vm_* and the module/mount/kexec families are in no group. */
#include <errno.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "policy.h"

#define MEMBERS(...) ((const char *const[]){__VA_ARGS__, NULL})

static const struct syscall_group groups[] = {
    {
	"@default",
	"calls every process needs to start, run and exit",
	MEMBERS("arch_prctl", "brk", "cacheflush", "clock_getres", "clock_getres_time64",
		"clock_gettime", "clock_gettime64", "clock_nanosleep", "clock_nanosleep_time64",
		"execve", "exit", "exit_group", "futex", "futex_time64", "get_robust_list",
		"get_thread_area", "getegid", "getegid32", "geteuid", "geteuid32", "getgid",
		"getgid32", "getgroups", "getgroups32", "getpgid", "getpgrp", "getpid", "getppid",
		"getrandom", "getresgid", "getresgid32", "getresuid", "getresuid32", "getrlimit",
		"getsid", "gettid", "gettimeofday", "getuid", "getuid32", "membarrier", "mmap",
		"mmap2", "mprotect", "munmap", "nanosleep", "pause", "prlimit64", "restart_syscall",
		"rseq", "rt_sigreturn", "sched_getaffinity", "sched_yield", "set_robust_list",
		"set_thread_area", "set_tid_address", "set_tls", "sigreturn", "time", "ugetrlimit"),
    },
    {
	"@basic-io",
	"read, write, seek and close file descriptors",
	MEMBERS("_llseek", "close", "close_range", "dup", "dup2", "dup3", "lseek", "pread64",
		"preadv", "preadv2", "pwrite64", "pwritev", "pwritev2", "read", "readv", "write",
		"writev"),
    },
    {
	"@file-system",
	"open, stat, create, rename and remove files and directories",
	MEMBERS("access", "chdir", "chmod", "close", "creat", "faccessat", "faccessat2",
		"fallocate", "fchdir", "fchmod", "fchmodat", "fcntl", "fcntl64", "fgetxattr",
		"flistxattr", "fremovexattr", "fsetxattr", "fstat", "fstat64", "fstatat64",
		"fstatfs", "fstatfs64", "ftruncate", "ftruncate64", "futimesat", "getcwd",
		"getdents", "getdents64", "getxattr", "inotify_add_watch", "inotify_init",
		"inotify_init1", "inotify_rm_watch", "lgetxattr", "link", "linkat", "listxattr",
		"llistxattr", "lremovexattr", "lsetxattr", "lstat", "lstat64", "mkdir", "mkdirat",
		"mknod", "mknodat", "mmap", "mmap2", "munmap", "newfstatat", "oldfstat", "oldlstat",
		"oldstat", "open", "openat", "openat2", "readlink", "readlinkat", "removexattr",
		"rename", "renameat", "renameat2", "rmdir", "setxattr", "stat", "stat64", "statfs",
		"statfs64", "statx", "symlink", "symlinkat", "truncate", "truncate64", "unlink",
		"unlinkat", "utime", "utimensat", "utimensat_time64", "utimes"),
    },
    {
	"@io-event",
	"wait for events on file descriptors (poll, select, epoll, eventfd)",
	MEMBERS("_newselect", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old",
		"epoll_pwait", "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd",
		"eventfd2", "poll", "ppoll", "ppoll_time64", "pselect6", "pselect6_time64",
		"select"),
    },
    {
	"@network-io",
	"sockets: create, connect, listen, send and receive",
	MEMBERS("accept", "accept4", "bind", "connect", "getpeername", "getsockname", "getsockopt",
		"listen", "recv", "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg", "send",
		"sendmmsg", "sendmsg", "sendto", "setsockopt", "shutdown", "socket", "socketcall",
		"socketpair"),
    },
    {
	"@ipc",
	"pipes, SysV and POSIX message queues, semaphores, shared memory",
	MEMBERS("ipc", "memfd_create", "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive",
		"mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64", "mq_unlink",
		"msgctl", "msgget", "msgrcv", "msgsnd", "pipe", "pipe2", "semctl", "semget",
		"semop", "semtimedop", "semtimedop_time64", "shmat", "shmctl", "shmdt", "shmget"),
    },
    {
	"@memory",
	"map, protect, advise and lock memory",
	MEMBERS("brk", "madvise", "mincore", "mlock", "mlock2", "mlockall", "mmap", "mmap2",
		"mprotect", "mremap", "msync", "munlock", "munlockall", "munmap", "pkey_alloc",
		"pkey_free", "pkey_mprotect"),
    },
    {
	"@process",
	"create, wait for and signal processes and threads",
	MEMBERS("capget", "clone", "clone3", "execveat", "fork", "getrusage", "kill", "pidfd_open",
		"pidfd_send_signal", "prctl", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "swapcontext",
		"tgkill", "times", "tkill", "vfork", "wait4", "waitid", "waitpid"),
    },
    {
	"@signal",
	"signal handlers, masks and signalfd",
	MEMBERS("rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigsuspend",
		"rt_sigtimedwait", "rt_sigtimedwait_time64", "sigaction", "sigaltstack", "signal",
		"signalfd", "signalfd4", "sigpending", "sigprocmask", "sigsuspend"),
    },
    {
	"@timer",
	"interval timers, POSIX timers and timerfd",
	MEMBERS("alarm", "getitimer", "setitimer", "timer_create", "timer_delete",
		"timer_getoverrun", "timer_gettime", "timer_gettime64", "timer_settime",
		"timer_settime64", "timerfd_create", "timerfd_gettime", "timerfd_gettime64",
		"timerfd_settime", "timerfd_settime64", "times"),
    },
    {
	"@sync",
	"flush file data to storage",
	MEMBERS("fdatasync", "fsync", "msync", "sync", "sync_file_range", "sync_file_range2",
		"syncfs"),
    },
    {
	"@aio",
	"Linux native asynchronous I/O (io_uring is deliberately not included)",
	MEMBERS("io_cancel", "io_destroy", "io_getevents", "io_pgetevents", "io_pgetevents_time64",
		"io_setup", "io_submit"),
    },
    {
	"@chown",
	"change file owner and group",
	MEMBERS("chown", "chown32", "fchown", "fchown32", "fchownat", "lchown", "lchown32"),
    },
    {
	"@setuid",
	"change user and group ids",
	MEMBERS("setfsgid", "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32",
		"setgroups", "setgroups32", "setregid", "setregid32", "setresgid", "setresgid32",
		"setresuid", "setresuid32", "setreuid", "setreuid32", "setuid", "setuid32"),
    },
    {
	"@system-service",
	"what a typical network daemon needs; a sensible starting point",
	MEMBERS("@default", "@basic-io", "@file-system", "@io-event", "@network-io", "@ipc",
		"@memory", "@process", "@signal", "@timer", "@sync", "@aio", "@chown", "@setuid",
		"capset", "copy_file_range", "fadvise64", "fadvise64_64", "flock", "getcpu",
		"getpriority", "ioctl", "ioprio_get", "readahead", "sched_get_priority_max",
		"sched_get_priority_min", "sched_getattr", "sched_getparam", "sched_getscheduler",
		"sched_rr_get_interval", "sendfile", "sendfile64", "setpgid", "setrlimit", "setsid",
		"splice", "sysinfo", "tee", "umask", "uname", "vmsplice"),
    },
};

const struct syscall_group *syscall_group_lookup(const char *name)
{
	for (size_t i = 0; i < ELEMENTSOF(groups); i++)
		if (streq(groups[i].name, name))
			return &groups[i];
	return NULL;
}

const struct syscall_group *syscall_groups_all(size_t *ret_count)
{
	*ret_count = ELEMENTSOF(groups);
	return groups;
}

void syscall_group_names_free(char **names)
{
	if (!names)
		return;
	for (char **p = names; *p; p++)
		free(*p);
	free(names);
}

struct name_set {
	char **items;
	size_t count, cap;
};

static int name_set_add(struct name_set *set, const char *name)
{
	for (size_t i = 0; i < set->count; i++)
		if (streq(set->items[i], name))
			return 0;
	if (set->count + 2 > set->cap) {
		size_t cap = set->cap ? set->cap * 2 : 64;
		char **n = realloc(set->items, cap * sizeof(char *));
		if (!n)
			return -ENOMEM;
		set->items = n;
		set->cap = cap;
	}
	set->items[set->count] = strdup(name);
	if (!set->items[set->count])
		return -ENOMEM;
	set->items[++set->count] = NULL;
	return 0;
}

/* depth bounds recursion; groups nest at most two levels today. */
static int expand_one(struct name_set *set, const char *item, bool from_group, unsigned depth)
{
	if (item[0] == '@') {
		const struct syscall_group *g = syscall_group_lookup(item);
		if (!g || depth > 8)
			return -EINVAL;
		for (const char *const *m = g->members; *m; m++) {
			int r = expand_one(set, *m, true, depth + 1);
			if (r < 0)
				return r;
		}
		return 0;
	}
	if (seccomp_syscall_resolve_name(item) < 0) {
		/* Unknown natively: a pseudo-syscall (negative) or not in the table. */
		if (from_group)
			return 0;
		if (seccomp_syscall_resolve_name(item) == __NR_SCMP_ERROR)
			return -EINVAL;
		return 0;
	}
	return name_set_add(set, item);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int syscall_group_expand(char *const *items, size_t n_items, char ***ret_names, size_t *ret_count)
{
	struct name_set set = {0};
	int r;

	for (size_t i = 0; i < n_items; i++) {
		r = expand_one(&set, items[i], false, 0);
		if (r < 0) {
			for (size_t j = 0; j < set.count; j++)
				free(set.items[j]);
			free(set.items);
			return r;
		}
	}
	if (!set.items) {
		set.items = calloc(1, sizeof(char *));
		if (!set.items)
			return -ENOMEM;
	}
	qsort(set.items, set.count, sizeof(char *), cmp_names);
	*ret_names = set.items;
	*ret_count = set.count;
	return 0;
}
