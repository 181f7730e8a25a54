/* SPDX-License-Identifier: MIT */
/* The envelope recipe, top to bottom as sandbox.h lists it: the parent's
 * preparation, then the child's steps, one function each, each failing
 * closed. The child never allocates and never returns. */
#include <errno.h>
#include <grp.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox.h"
#include "macro.h"

#define ERR_FD (SECCOMP_POLICY_EXEC_FD + 1) /* the report socket after the fds step */
#define HIGH_FD_BASE 200		    /* scratch range while fds are shuffled */
#define SPAWN_TIMEOUT_MS 10000
#define CLEANUP_TIMEOUT_USEC (5 * 1000000ULL)

struct envelope_instance {
	pid_t pid;
	int pidfd;
	int upper_fd;
	int notify_fd; /* seccomp listener, -1 without violations */
	bool reaped, cleaned;
	struct cgroup_instance *cgroup;
};

/* What the child needs, prepared by the parent (the child gets a copy). */
struct child_ctx {
	const struct envelope_spec *spec;
	const struct cgroup_instance *cgroup;
	int sock;     /* report/go socket, child end */
	int upper_fd; /* detached tmpfs mount */
	int lower_fd; /* detached idmapped read-only clone of the verified snapshot root */
	int last_cap;
};

/* What the child sends over the report socket is a struct step_error:
 * err > 0, the step failed; err == 0, the seccomp listener rides along as
 * SCM_RIGHTS (step "listener"). */

void envelope_spec_init(struct envelope_spec *spec)
{
	*spec = (struct envelope_spec){
	    .lower_fd = -1, .exec_fd = -1, .stdio_fds = {-1, -1, -1}, .idmap_userns_fd = -1};
}

/* --- async-signal-safe helpers for the child ------------------------------------ */

static void copy_str(char *dst, size_t size, const char *src)
{
	size_t i = 0;

	for (; src && src[i] && i + 1 < size; i++)
		dst[i] = src[i];
	dst[i] = '\0';
}

/* Append src (and a number when num >= 0) to dst of size; returns dst. */
static char *append(char *dst, size_t size, const char *src, long num)
{
	size_t n = strlen(dst);

	for (; src && *src && n + 1 < size; src++)
		dst[n++] = *src;
	if (num >= 0) {
		char digits[24];
		int k = 0;
		do
			digits[k++] = (char)('0' + num % 10);
		while ((num /= 10) > 0);
		while (k > 0 && n + 1 < size)
			dst[n++] = digits[--k];
	}
	dst[n] = '\0';
	return dst;
}

static int child_sock = -1;
/* /proc/sys of the instance's proc before it is made read-only (O_PATH):
 * the way to set limits of its user namespace once it is in it */
static int child_proc_sys = -1;

/* Filled by hand, not with step_error_set(): its printf machinery is not
 * async-signal-safe, and the child never allocates. */
_Noreturn static void child_fail(const char *step, int err, const char *detail)
{
	struct step_error rep;

	memset(&rep, 0, sizeof(rep));
	copy_str(rep.step, sizeof(rep.step), step);
	rep.err = err > 0 ? err : EIO;
	copy_str(rep.detail, sizeof(rep.detail), detail);
	if (child_sock >= 0)
		(void)send(child_sock, &rep, sizeof(rep), MSG_NOSIGNAL);
	_exit(127);
}

/* Fail the step with errno when the call returned < 0. */
#define CHECK(call, step, detail)                                                                  \
	do {                                                                                       \
		if ((call) < 0)                                                                    \
			child_fail(step, errno, detail);                                           \
	} while (0)

/* --- the child's steps ----------------------------------------------------------- */

/* "go" comes with the instance's user namespace (SCM_RIGHTS): its fd. */
static int child_wait_for_go(const struct child_ctx *ctx)
{
	char go = 0;
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control;
	struct iovec iov = {.iov_base = &go, .iov_len = 1};
	struct msghdr mh = {
	    .msg_iov = &iov,
	    .msg_iovlen = 1,
	    .msg_control = control.buf,
	    .msg_controllen = sizeof(control.buf),
	};
	struct cmsghdr *c;
	int fd = -1;
	ssize_t k;

	do
		k = recvmsg(ctx->sock, &mh, MSG_CMSG_CLOEXEC);
	while (k < 0 && errno == EINTR);
	if (k != 1 || go != 'g')
		_exit(127); /* the parent gave up (or died): nothing to report to */
	c = CMSG_FIRSTHDR(&mh);
	if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
	    c->cmsg_len == CMSG_LEN(sizeof(int)))
		memcpy(&fd, CMSG_DATA(c), sizeof(int));
	if (fd < 0 || (mh.msg_flags & MSG_CTRUNC))
		child_fail("user namespace", EPROTO, "no namespace with go");
	return fd;
}

/* Before anything that allocates: the v1 limits hold from here on. */
static void child_join_cgroups(const struct child_ctx *ctx)
{
	int r = cgroup_instance_join_v1_self(ctx->cgroup);

	if (r < 0)
		child_fail("cgroup attach", -r, "v1 tasks");
}

/* true: made here (false: the snapshot's own, not copied up) */
static bool mkdir_in_root(const char *path, mode_t mode, const char *step)
{
	if (mkdir(path, mode) < 0) {
		if (errno != EEXIST)
			child_fail(step, errno, path);
		return false;
	}
	CHECK(chmod(path, mode), step, path); /* the umask may have cut it */
	return true;
}

static void bind_dev_node(const char *name)
{
	char src[32] = "", dst[32] = "";
	int fd;

	append(src, sizeof(src), "/dev/", -1);
	append(src, sizeof(src), name, -1);
	append(dst, sizeof(dst), "dev/", -1);
	append(dst, sizeof(dst), name, -1);
	fd = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0666);
	CHECK(fd, "mount dev", dst);
	close(fd);
	CHECK(mount(src, dst, NULL, MS_BIND, NULL), "mount dev", src);
}

static void child_mount_dev(void)
{
	static const char *const nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};
	static const char *const links[][2] = {
	    {"/proc/self/fd", "dev/fd"},       {"/proc/self/fd/0", "dev/stdin"},
	    {"/proc/self/fd/1", "dev/stdout"}, {"/proc/self/fd/2", "dev/stderr"},
	    {"pts/ptmx", "dev/ptmx"},
	};

	mkdir_in_root("dev", 0755, "mount dev");
	CHECK(mount("tmpfs", "dev", "tmpfs", MS_NOSUID | MS_NOEXEC,
		    "mode=0755,size=64k,nr_inodes=64"),
	      "mount dev", "tmpfs on /dev");
	for (size_t i = 0; i < ELEMENTSOF(nodes); i++)
		bind_dev_node(nodes[i]);
	for (size_t i = 0; i < ELEMENTSOF(links); i++)
		CHECK(symlink(links[i][0], links[i][1]), "mount dev", links[i][1]);
	CHECK(mkdir("dev/pts", 0755), "mount dev", "dev/pts");
	CHECK(mount("devpts", "dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
		    "newinstance,ptmxmode=0666,mode=0620"),
	      "mount dev", "devpts");
	CHECK(mkdir("dev/shm", 01777), "mount dev", "dev/shm");
	CHECK(mount("tmpfs", "dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=01777,size=16m"),
	      "mount dev", "tmpfs on /dev/shm");
}

/* A policy without exec (sandbox.h): no memfd of the instance can
 * ever be executed. vm.memfd_noexec=2 in the instance's own pid namespace
 * (kernel 6.3+; the value is per pid namespace and never below the parent's):
 * memfd_create(MFD_EXEC) fails, a memfd made without flags is sealed
 * non-executable (6.6+; on 6.3-6.5, 2 refuses such a memfd). Before /proc/sys
 * becomes read-only; a kernel without the knob (ENOENT) relies on the seccomp
 * filter alone (docs/seccomp.md). */
static bool child_no_exec;

static void child_memfd_noexec(void)
{
	int fd;

	if (!child_no_exec)
		return;
	fd = open("proc/sys/vm/memfd_noexec", O_WRONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return;
	CHECK(fd, "mount proc", "vm.memfd_noexec");
	if (write(fd, "2", 1) != 1)
		child_fail("mount proc", errno, "vm.memfd_noexec=2");
	close(fd);
}

/* The network namespace belongs to the host's user namespace, not to the
 * instance's: CAP_NET_BIND_SERVICE inside cannot bind ports below 1024 there.
 * A policy that keeps it gets the same through the namespace's own sysctl
 * (every process of the instance may then bind them: the namespace holds
 * the instance alone, and its firewall passes ListenPort= only). */
static void child_bind_low_ports(const struct child_ctx *ctx)
{
	static const char path[] = "proc/sys/net/ipv4/ip_unprivileged_port_start";
	int fd;

	if (!(ctx->spec->capabilities & (1ULL << CAP_NET_BIND_SERVICE)))
		return;
	fd = open(path, O_WRONLY | O_CLOEXEC);
	CHECK(fd, "mount proc", path);
	if (write(fd, "0", 1) != 1)
		child_fail("mount proc", errno, path);
	close(fd);
}

static void child_mount_proc(const struct child_ctx *ctx)
{
	static const char *const ro[] = {"proc/sys", "proc/sysrq-trigger"};

	mkdir_in_root("proc", 0555, "mount proc");
	CHECK(mount("proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL), "mount proc",
	      "proc");
	child_memfd_noexec();
	child_bind_low_ports(ctx);
	child_proc_sys = open("proc/sys", O_PATH | O_DIRECTORY | O_CLOEXEC);
	CHECK(child_proc_sys, "mount proc", "proc/sys");
	for (size_t i = 0; i < ELEMENTSOF(ro); i++) {
		if (mount(ro[i], ro[i], NULL, MS_BIND | MS_REC, NULL) < 0) {
			if (errno == ENOENT)
				continue; /* not built into this kernel */
			child_fail("mount proc", errno, ro[i]);
		}
		CHECK(mount(NULL, ro[i], NULL,
			    MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
			    NULL),
		      "mount proc", ro[i]);
	}
}

/* The root: overlay of the snapshot (read-only lower) and the tmpfs (upper,
 * work) at <tmpfs>/root; /dev and /proc inside it; then pivot_root. */
static void child_mount(const struct child_ctx *ctx)
{
	char fdpath[40] = "", opts[256] = "";

	/* nothing mounted from here on propagates back to the host */
	CHECK(mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL), "mount propagation", "/");
	/* attach the agent's tmpfs in this namespace (overlayfs takes its upper
	 * from a mount of the caller's namespace); /tmp is only a place to hang
	 * it, reached through the fd from here on */
	CHECK(syscall(SYS_move_mount, ctx->upper_fd, "", AT_FDCWD, "/tmp", MOVE_MOUNT_F_EMPTY_PATH),
	      "mount tmpfs", "attach the writable layer");
	/* the idmapped snapshot too, at <tmpfs>/lower (kernels before 6.15 take
	 * no detached mount as a layer) */
	CHECK(syscall(SYS_move_mount, ctx->lower_fd, "", ctx->upper_fd, "lower",
		      MOVE_MOUNT_F_EMPTY_PATH),
	      "mount overlay", "attach the snapshot (idmapped)");
	append(fdpath, sizeof(fdpath), "/proc/self/fd/", ctx->upper_fd);
	append(append(opts, sizeof(opts), "lowerdir=", -1), sizeof(opts), fdpath, -1);
	append(opts, sizeof(opts), "/lower", -1);
	append(opts, sizeof(opts), ",upperdir=", -1);
	append(append(opts, sizeof(opts), fdpath, -1), sizeof(opts), "/upper,workdir=", -1);
	append(append(opts, sizeof(opts), fdpath, -1), sizeof(opts), "/work", -1);
	CHECK(fchdir(ctx->upper_fd), "mount overlay", "tmpfs");
	CHECK(mount("overlay", "root", "overlay", MS_NOSUID | MS_NODEV, opts), "mount overlay",
	      "overlay");
	CHECK(chdir("root"), "mount overlay", "root");

	child_mount_dev();
	child_mount_proc(ctx);
	/* /tmp belongs to the instance's root, as a snapshot's own would */
	if (mkdir_in_root("tmp", 01777, "mount overlay"))
		CHECK(chown("tmp", ctx->spec->host_id_base, ctx->spec->host_id_base),
		      "mount overlay", "chown /tmp");

	/* pivot_root(".", "."): the old root ends up on top, detach it */
	CHECK(syscall(SYS_pivot_root, ".", "."), "pivot_root", "new root");
	CHECK(umount2(".", MNT_DETACH), "pivot_root", "detach old root");
	CHECK(chdir("/"), "pivot_root", "chdir /");
}

static void child_hostname(const struct child_ctx *ctx)
{
	const char *h = ctx->spec->hostname ? ctx->spec->hostname : ctx->spec->instance_id;

	CHECK(sethostname(h, strlen(h)), "hostname", h);
}

/* Into a user namespace of its own, after everything that needs the host's
 * privilege (mounts, hostname, the low-port sysctl) and before the
 * credentials: a fresh one the parent made while we mounted, its ids
 * 0..65535 mapped onto the instance's host range, handed over with go.
 * Every other namespace stays the host user namespace's, so nothing in the
 * instance, root or not, with whatever capability, has any privilege over
 * its mounts, network, hostname, ipc, cgroup or pid namespaces
 * (docs/userns.md). The bounding set comes after this: entering a user
 * namespace gives a full one. */
static void child_user_namespace(const struct child_ctx *ctx, int userns)
{
	/* the kinds this kernel has; a missing one it cannot make either */
	static const char *const limits[] = {
	    "user/max_user_namespaces",	  "user/max_net_namespaces",  "user/max_mnt_namespaces",
	    "user/max_pid_namespaces",	  "user/max_uts_namespaces",  "user/max_ipc_namespaces",
	    "user/max_cgroup_namespaces", "user/max_time_namespaces",
	};
	/* the others need CAP_SYS_ADMIN in the user namespace; each write costs
	 * ~15 us on the launch path */
	size_t n = ctx->spec->capabilities & (1ULL << CAP_SYS_ADMIN) ? ELEMENTSOF(limits) : 1;

	CHECK(setns(userns, CLONE_NEWUSER), "user namespace", "setns");
	close(userns);
	/* No namespace below this one: under the agent's unit (which has to
	 * allow user namespaces for the agent) an instance could otherwise
	 * clone a user namespace with a network namespace of its own and all
	 * capabilities over it; and one given CAP_SYS_ADMIN could make mount or
	 * network namespaces its own user namespace owns. The limits are the
	 * namespace's own sysctls (a lookup from inside it), written through
	 * the proc mount that is still writable. */
	for (size_t i = 0; i < n; i++) {
		int fd = openat(child_proc_sys, limits[i], O_WRONLY | O_CLOEXEC);

		if (fd < 0 && errno == ENOENT && i > 0)
			continue;
		CHECK(fd, "user namespace", limits[i]);
		if (write(fd, "0", 1) != 1)
			child_fail("user namespace", errno, limits[i]);
		close(fd);
	}
	close(child_proc_sys);
	child_proc_sys = -1;
}

static void child_bounding_set(const struct child_ctx *ctx)
{
	for (int c = 0; c <= ctx->last_cap; c++)
		if (!(ctx->spec->capabilities & (1ULL << c)))
			CHECK(prctl(PR_CAPBSET_DROP, c, 0, 0, 0), "capability bounding set",
			      "PR_CAPBSET_DROP");
}

static void child_credentials(const struct child_ctx *ctx)
{
	const struct envelope_spec *s = ctx->spec;

	/* keep the permitted set across the uid change; the next step trims it */
	CHECK(prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0), "credentials", "PR_SET_KEEPCAPS");
	CHECK(setgroups(0, NULL), "credentials", "setgroups");
	CHECK(setresgid(s->gid, s->gid, s->gid), "credentials", "setresgid");
	CHECK(setresuid(s->uid, s->uid, s->uid), "credentials", "setresuid");
}

static void child_capabilities(const struct child_ctx *ctx)
{
	uint64_t m = ctx->spec->capabilities;
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	struct __user_cap_data_struct d[2] = {
	    {(uint32_t)m, (uint32_t)m, (uint32_t)m},
	    {(uint32_t)(m >> 32), (uint32_t)(m >> 32), (uint32_t)(m >> 32)},
	};

	CHECK(syscall(SYS_capset, &h, d), "capabilities", "capset");
	/* a non-root service keeps them across exec only as ambient caps; root
	 * gets its bounding set (= the kept set) anyway */
	if (ctx->spec->uid != 0)
		for (int c = 0; c <= ctx->last_cap; c++)
			if (m & (1ULL << c))
				CHECK(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0),
				      "capabilities", "PR_CAP_AMBIENT_RAISE");
	CHECK(prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0), "capabilities", "PR_SET_KEEPCAPS");
}

static void child_no_new_privs(void)
{
	CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs", "PR_SET_NO_NEW_PRIVS");
}

/* stdio, pass_fds at 3.., the binary at SECCOMP_POLICY_EXEC_FD and the report
 * socket at ERR_FD (both close-on-exec); everything else closed. */
static void child_fds(const struct child_ctx *ctx)
{
	const struct envelope_spec *s = ctx->spec;
	int hi_std[3], hi_pass[ENVELOPE_MAX_PASS_FDS], hi_exec, hi_sock;

	for (int i = 0; i < 3; i++) {
		int src = s->stdio_fds[i];
		if (src < 0) {
			src = open("/dev/null", i == 0 ? O_RDONLY : O_WRONLY);
			CHECK(src, "fds", "/dev/null");
		}
		hi_std[i] = fcntl(src, F_DUPFD_CLOEXEC, HIGH_FD_BASE);
		CHECK(hi_std[i], "fds", "stdio");
	}
	for (size_t i = 0; i < s->n_pass_fds; i++) {
		hi_pass[i] = fcntl(s->pass_fds[i], F_DUPFD_CLOEXEC, HIGH_FD_BASE);
		CHECK(hi_pass[i], "fds", "pass_fds");
	}
	hi_exec = fcntl(s->exec_fd, F_DUPFD_CLOEXEC, HIGH_FD_BASE);
	CHECK(hi_exec, "fds", "exec fd");
	hi_sock = fcntl(ctx->sock, F_DUPFD_CLOEXEC, HIGH_FD_BASE);
	CHECK(hi_sock, "fds", "report socket");

	CHECK(dup3(hi_sock, ERR_FD, O_CLOEXEC), "fds", "report socket");
	child_sock = ERR_FD;
	for (int i = 0; i < 3; i++)
		CHECK(dup2(hi_std[i], i), "fds", "stdio");
	for (size_t i = 0; i < s->n_pass_fds; i++)
		CHECK(dup2(hi_pass[i], 3 + (int)i), "fds", "pass_fds");
	CHECK(dup3(hi_exec, SECCOMP_POLICY_EXEC_FD, O_CLOEXEC), "fds", "exec fd");
	CHECK(syscall(SYS_close_range, 3 + s->n_pass_fds, SECCOMP_POLICY_EXEC_FD - 1, 0), "fds",
	      "close_range");
	CHECK(syscall(SYS_close_range, ERR_FD + 1, ~0U, 0), "fds", "close_range");
}

static void child_rlimits(const struct child_ctx *ctx)
{
	struct rlimit core = {0, 0};

	if (ctx->spec->limit_nofile > 0) {
		struct rlimit nofile = {ctx->spec->limit_nofile, ctx->spec->limit_nofile};
		CHECK(setrlimit(RLIMIT_NOFILE, &nofile), "rlimits", "RLIMIT_NOFILE");
	}
	CHECK(setrlimit(RLIMIT_CORE, &core), "rlimits", "RLIMIT_CORE");
}

/* One message with one descriptor riding along (SCM_RIGHTS): the listener
 * to the parent, "go" to the child. 0 or -errno. */
static int send_with_fd(int sock, const void *data, size_t len, int fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control;
	struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
	struct msghdr mh = {
	    .msg_iov = &iov,
	    .msg_iovlen = 1,
	    .msg_control = control.buf,
	    .msg_controllen = sizeof(control.buf),
	};
	struct cmsghdr *c;

	memset(&control, 0, sizeof(control));
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	return sendmsg(sock, &mh, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -errno;
}

/* The listener to the parent over the report socket. Runs under the notify
 * filter, which cannot list sendmsg (sandbox.h). */
static void child_send_listener(int listener)
{
	struct step_error rep;
	int r;

	memset(&rep, 0, sizeof(rep));
	copy_str(rep.step, sizeof(rep.step), "listener");
	r = send_with_fd(child_sock, &rep, sizeof(rep), listener);
	if (r < 0)
		child_fail("seccomp", -r, "hand over the listener");
}

/* With violations, two filters: the notify filter (its listener goes to the
 * parent at once, before anything else can be filtered), then the main
 * filter. The listener is close-on-exec: the service never holds it. */
static void child_seccomp(const struct child_ctx *ctx)
{
	int r, listener = -1;

	if (!ctx->spec->seccomp)
		return;
	r = seccomp_program_load_notify(ctx->spec->seccomp, &listener);
	if (r < 0)
		child_fail("seccomp", -r, "SECCOMP_FILTER_FLAG_NEW_LISTENER");
	if (listener >= 0)
		child_send_listener(listener);
	r = seccomp_program_load(ctx->spec->seccomp);
	if (r < 0)
		child_fail("seccomp", -r, "SECCOMP_SET_MODE_FILTER");
}

_Noreturn static void child_exec(const struct child_ctx *ctx)
{
	syscall(SYS_execveat, SECCOMP_POLICY_EXEC_FD, "", ctx->spec->argv, ctx->spec->envp,
		AT_EMPTY_PATH);
	/* the report may itself be refused by the filter: the parent then sees
	 * success and the exit status 127 right after */
	child_fail("exec", errno, ctx->spec->argv[0]);
}

/* A session of its own, so the instance has no controlling terminal: the
 * agent's (a shell that started it, `make demo`) can never be pushed
 * keystrokes (TIOCSTI) or read, and /dev/tty opens nothing. */
static void child_session(void)
{
	CHECK(setsid(), "session", "setsid");
}

_Noreturn static void child_main(const struct child_ctx *ctx)
{
	child_sock = ctx->sock;
	child_no_exec = ctx->spec->seccomp && !ctx->spec->seccomp->exec_allowed;
	umask(0022);
	child_session();
	child_join_cgroups(ctx);
	child_mount(ctx);
	child_hostname(ctx);
	/* The mounts above ran while the parent built the link and our user
	 * namespace; what follows changes credentials, and the parent must
	 * have opened our network namespace through /proc/PID before we stop
	 * being its to open. */
	child_user_namespace(ctx, child_wait_for_go(ctx));
	child_bounding_set(ctx);
	child_credentials(ctx);
	child_capabilities(ctx);
	child_no_new_privs();
	child_fds(ctx);
	child_rlimits(ctx);
	child_seccomp(ctx);
	child_exec(ctx);
}

/* --- the parent ----------------------------------------------------------------- */

static int read_last_cap(void)
{
	char buf[16] = "";
	_cleanup_close_ int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);

	if (fd < 0 || read(fd, buf, sizeof(buf) - 1) <= 0)
		return CAP_LAST_CAP;
	int v = atoi(buf);
	return v > 0 && v < 64 ? v : CAP_LAST_CAP;
}

/* The writable layer: a detached tmpfs of the given size with upper/, work/,
 * root/ (the overlay's mount point) and lower/ (where the child attaches the
 * snapshot). Never visible in the host's mount
 * table; gone when the last fd and the instance are. */
#define STEP_TMPFS "mount tmpfs"

static int make_upper(uint64_t size, uid_t owner, int *ret_fd, struct step_error *e)
{
	_cleanup_close_ int fs = -1, mnt = -1;
	char sz[32];
	static const char *const dirs[] = {"upper", "work", "root", "lower"};

	fs = syscall(SYS_fsopen, "tmpfs", FSOPEN_CLOEXEC);
	if (fs < 0)
		return step_error_set(e, STEP_TMPFS, errno, "fsopen tmpfs");
	snprintf(sz, sizeof(sz), "%llu", (unsigned long long)size);
	if (syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "size", sz, 0) < 0)
		return step_error_set(e, STEP_TMPFS, errno, "tmpfs size");
	if (syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "mode", "0755", 0) < 0)
		return step_error_set(e, STEP_TMPFS, errno, "tmpfs mode");
	if (syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
		return step_error_set(e, STEP_TMPFS, errno, "tmpfs create");
	mnt = syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
	if (mnt < 0)
		return step_error_set(e, STEP_TMPFS, errno, "fsmount");
	for (size_t i = 0; i < ELEMENTSOF(dirs); i++)
		/* explicit modes: the agent runs with UMask=0077 */
		if (mkdirat(mnt, dirs[i], 0755) < 0 || fchmodat(mnt, dirs[i], 0755, 0) < 0)
			return step_error_set(e, STEP_TMPFS, errno, "%s", dirs[i]);
	/* the overlay's root directory is upper/'s: the instance's root owns it */
	if (fchownat(mnt, "upper", owner, owner, AT_SYMLINK_NOFOLLOW) < 0)
		return step_error_set(e, STEP_TMPFS, errno, "chown upper");
	*ret_fd = TAKE_FD(mnt);
	return 0;
}

/* The read-only lower layer: a detached clone of the verified directory
 * (its fd, not its name), submounts included as the verification walk saw
 * them; read-only, nosuid, nodev, and idmapped through the instance's range,
 * so that what the snapshot's root (or User=) owns, the instance's root (or
 * User=) owns inside. The layer itself is never written: writes go to the
 * upper. */
static int make_lower(const struct envelope_spec *s, int *ret_fd, struct step_error *e)
{
	struct mount_attr attr = {
	    .attr_set = MOUNT_ATTR_IDMAP | MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
	    .userns_fd = (uint64_t)s->idmap_userns_fd,
	};
	_cleanup_close_ int mnt = -1;

	mnt = syscall(SYS_open_tree, s->lower_fd, "",
		      OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);
	if (mnt < 0)
		return step_error_set(e, "mount overlay", errno, "open_tree of the snapshot");
	if (syscall(SYS_mount_setattr, mnt, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) <
	    0)
		return step_error_set(e, "mount overlay", errno,
				      "mount_setattr read-only, idmapped");
	*ret_fd = TAKE_FD(mnt);
	return 0;
}

static int validate_spec(const struct envelope_spec *s, struct step_error *e)
{
	if (!s->instance_id || !s->instance_id[0])
		return step_error_set(e, "spec", EINVAL, "instance_id");
	if (s->lower_fd < 0)
		return step_error_set(e, "spec", EINVAL, "lower_fd");
	if (s->upper_size_bytes == 0)
		return step_error_set(e, "spec", EINVAL, "upper_size_bytes");
	if (s->exec_fd < 0 || !s->argv || !s->argv[0] || !s->envp)
		return step_error_set(e, "spec", EINVAL, "exec_fd/argv/envp");
	if (s->n_pass_fds > ENVELOPE_MAX_PASS_FDS || (s->n_pass_fds && !s->pass_fds))
		return step_error_set(e, "spec", EINVAL, "pass_fds");
	if (s->capabilities >> (read_last_cap() + 1))
		return step_error_set(e, "spec", EINVAL, "capability beyond the kernel's last");
	/* never host ids 0..65535 (host root and system users); never unmapped */
	if (s->host_id_base < UID_RANGE_SIZE || s->host_id_base > UINT32_MAX - UID_RANGE_SIZE + 1 ||
	    s->idmap_userns_fd < 0)
		return step_error_set(e, "spec", EINVAL, "host id range");
	if (s->uid >= UID_RANGE_SIZE || s->gid >= UID_RANGE_SIZE)
		return step_error_set(e, "spec", EINVAL, "uid/gid beyond the instance's range");
	return 0;
}

static void kill_and_reap(struct envelope_instance *e)
{
	siginfo_t si;

	(void)syscall(SYS_pidfd_send_signal, e->pidfd, SIGKILL, NULL, 0);
	while (waitid(P_PIDFD, e->pidfd, &si, WEXITED) < 0 && errno == EINTR)
		;
	e->reaped = true;
}

/* One message from the child: 0 = EOF, 1 = a record (and *ret_fd = an fd
 * that came with it, else -1). */
static int recv_report(int sock, struct step_error *rep, int *ret_fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control;
	struct iovec iov = {.iov_base = rep, .iov_len = sizeof(*rep)};
	struct msghdr mh = {
	    .msg_iov = &iov,
	    .msg_iovlen = 1,
	    .msg_control = control.buf,
	    .msg_controllen = sizeof(control.buf),
	};
	bool reset_seen = false;
	int fd = -1;
	ssize_t k;

	/* A child that failed before reading "go" closed its end with "go"
	 * unread: the socket reports ECONNRESET once, ahead of the report the
	 * child queued before it went. */
	for (;;) {
		k = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
		if (k >= 0 || (errno != EINTR && (errno != ECONNRESET || reset_seen)))
			break;
		reset_seen |= errno == ECONNRESET;
	}
	if (k < 0)
		return -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
		    c->cmsg_len == CMSG_LEN(sizeof(int)) && fd < 0)
			memcpy(&fd, CMSG_DATA(c), sizeof(int));
	if (k == 0 && fd < 0)
		return 0;
	if (k != sizeof(*rep) || (mh.msg_flags & (MSG_CTRUNC | MSG_TRUNC))) {
		closep(&fd);
		return -EBADMSG;
	}
	rep->step[sizeof(rep->step) - 1] = '\0';
	rep->detail[sizeof(rep->detail) - 1] = '\0';
	*ret_fd = fd;
	return 1;
}

/* The envelope's own exec when the program notifies execveat
 * (sandbox.h): answered CONTINUE here, once, before any service code
 * runs; every later exec is the agent's violation. 0 = continued, -EAGAIN =
 * not yet, else the spawn fails (an unexpected notification is refused). */
static int continue_exec(int listener, pid_t pid, struct step_error *rep)
{
	struct seccomp_violation v = {0};
	int r = seccomp_notify_continue_exec(listener, pid, &v);

	if (r == -EPERM)
		step_error_set(rep, "seccomp", EPERM, "a notification before the exec: %s", v.name);
	return r;
}

/* "go", with the instance's user namespace riding along. */
static int send_go(int sock, int userns)
{
	return send_with_fd(sock, (char[]){'g'}, 1, userns);
}

/* After go: EOF = exec happened, a failure record = a step failed (1). The
 * seccomp listener, when the child sends one, comes before either and goes to
 * *ret_listener (the caller closes it on failure); with exec_notified, the
 * child's execveat then comes as a notification, answered CONTINUE once. */
static int await_exec(int sock, pid_t pid, bool exec_notified, struct step_error *rep,
		      int *ret_listener)
{
	bool hung_up = false;

	for (;;) {
		bool exec_pending = exec_notified && *ret_listener >= 0 && !hung_up;
		struct pollfd p[2] = {{.fd = sock, .events = POLLIN},
				      {.fd = exec_pending ? *ret_listener : -1, .events = POLLIN}};
		int r, fd = -1;

		do
			r = poll(p, 2, SPAWN_TIMEOUT_MS);
		while (r < 0 && errno == EINTR);
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ETIMEDOUT;
		if (p[1].revents & POLLIN) {
			r = continue_exec(*ret_listener, pid, rep);
			if (r == 0)
				exec_notified = false; /* once: from here on, violations */
			else if (r == -EPERM)
				return 1;
			else if (r != -EAGAIN)
				return r;
			continue;
		}
		if (p[1].revents)
			hung_up = true; /* the child is gone: its report or EOF follows */
		if (!p[0].revents)
			continue;
		r = recv_report(sock, rep, &fd);
		if (r == 0 && exec_notified)
			return -ECHILD; /* gone before its exec was even asked for */
		if (r <= 0)
			return r;
		if (rep->err > 0) {
			closep(&fd);
			return 1;
		}
		if (fd < 0 || *ret_listener >= 0 || !streq(rep->step, "listener")) {
			closep(&fd);
			return -EBADMSG;
		}
		*ret_listener = fd;
	}
}

/* A spawn that failed part way (the cleanup of envelope_spawn's instance):
 * the child killed and reaped, its cgroup and writable layer gone. */
static void spawn_abortp(struct envelope_instance **p)
{
	struct envelope_instance *e = *p;

	if (!e)
		return;
	if (e->pidfd >= 0)
		kill_and_reap(e);
	(void)envelope_cleanup(e);
	envelope_free(e);
}

/* The parent's preparation: cgroup, writable layer, read-only lower. */
static int spawn_prepare(const struct envelope_spec *spec, const struct cgroup_root *cgroups,
			 struct envelope_instance *e, int *ret_lower_fd, struct step_error *err)
{
	int r;

	r = cgroup_instance_create(cgroups, spec->instance_id, &spec->limits, &e->cgroup, err);
	if (r < 0)
		return r;
	r = make_upper(spec->upper_size_bytes, spec->host_id_base, &e->upper_fd, err);
	if (r < 0)
		return r;
	return make_lower(spec, ret_lower_fd, err);
}

/* clone3 into the namespaces and the cgroup; the child runs child_main() and
 * never returns here (nor runs the cleanups). *ret_sock: the parent's end of
 * the report socket. */
static int spawn_child(const struct envelope_spec *spec, struct envelope_instance *e, int lower_fd,
		       int *ret_sock, struct step_error *err)
{
	_cleanup_close_ int parent_end = -1, child_end = -1;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return step_error_set(err, "clone", errno, "socketpair");
	parent_end = sv[0];
	child_end = sv[1];

	struct child_ctx ctx = {
	    .spec = spec,
	    .cgroup = e->cgroup,
	    .sock = child_end,
	    .upper_fd = e->upper_fd,
	    .lower_fd = lower_fd,
	    .last_cap = read_last_cap(),
	};
	struct clone_args args = {
	    .flags = CLONE_PIDFD | CLONE_INTO_CGROUP | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET |
		     CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWCGROUP,
	    .pidfd = (uint64_t)(uintptr_t)&e->pidfd,
	    .exit_signal = SIGCHLD,
	    .cgroup = (uint64_t)cgroup_instance_fd(e->cgroup),
	};
	long pid = syscall(SYS_clone3, &args, sizeof(args));
	if (pid < 0)
		return step_error_set(err, "clone", errno, "clone3");
	if (pid == 0) {
		close(parent_end);
		child_main(&ctx);
	}
	e->pid = (pid_t)pid;
	*ret_sock = TAKE_FD(parent_end);
	return 0;
}

/* From here on the child waits for go: the link, its user namespace, go,
 * then its exec or the step it failed. */
static int spawn_go(const struct envelope_spec *spec, struct envelope_instance *e, int sock,
		    struct step_error *err)
{
	_cleanup_close_ int userns = -1;
	struct step_error rep;
	int r, go_errno;

	if (spec->setup_in_parent) {
		r = spec->setup_in_parent(e->pid, e->pidfd, spec->userdata);
		if (r != 0)
			return step_error_set(err, "setup in parent", r < 0 ? r : -EIO, "%s", "");
	}
	/* A fresh user namespace for this instance alone (nothing of an
	 * earlier instance's, such as its user keyrings, can be in it), made
	 * while the child mounts. */
	r = uid_range_userns_new(spec->host_id_base, &userns);
	if (r < 0)
		return step_error_set(err, "user namespace", r,
				      "new namespace mapping the host range");
	/* A child that failed a step before "go" has reported and gone: the
	 * send fails, the report is still to be read. */
	go_errno = -send_go(sock, userns);
	close(TAKE_FD(userns));
	r = await_exec(sock, e->pid, spec->seccomp && spec->seccomp->exec_notified, &rep,
		       &e->notify_fd);
	if (r < 0)
		return step_error_set(err, "exec", r, "waiting for the child");
	if (r > 0)
		return step_error_set(err, rep.step, rep.err, "%s", rep.detail);
	if (go_errno)
		return step_error_set(err, "clone", go_errno, "child gone before go");
	/* fail closed: violations that nobody would hear of */
	if (spec->seccomp && spec->seccomp->notify_insns && e->notify_fd < 0)
		return step_error_set(err, "seccomp", EPROTO, "no listener from the child");
	return 0;
}

int envelope_spawn(const struct envelope_spec *spec, const struct cgroup_root *cgroups,
		   struct envelope_instance **ret, struct step_error *ret_error)
{
	/* declared first, cleaned up last: the sockets are closed before the
	 * child of a failed spawn is killed */
	_cleanup_(spawn_abortp) struct envelope_instance *e = NULL;
	_cleanup_close_ int lower_fd = -1, sock = -1; /* the child's copies count */
	int r;

	r = validate_spec(spec, ret_error);
	if (r < 0)
		return r;
	e = calloc(1, sizeof(*e));
	if (!e)
		return step_error_set(ret_error, "spec", ENOMEM, "%s", "");
	e->pidfd = e->upper_fd = e->notify_fd = -1;

	r = spawn_prepare(spec, cgroups, e, &lower_fd, ret_error);
	if (r < 0)
		return r;
	r = spawn_child(spec, e, lower_fd, &sock, ret_error);
	if (r < 0)
		return r;
	close(TAKE_FD(lower_fd)); /* the child has its copy */
	r = spawn_go(spec, e, sock, ret_error);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(e);
	return 0;
}

pid_t envelope_pid(const struct envelope_instance *e)
{
	return e->pid;
}

int envelope_pidfd(const struct envelope_instance *e)
{
	return e->pidfd;
}

int envelope_notify_fd(const struct envelope_instance *e)
{
	return e->notify_fd;
}

int envelope_upper_fd(const struct envelope_instance *e)
{
	return e->upper_fd;
}

const char *envelope_cgroup_path(const struct envelope_instance *e)
{
	return e->cgroup ? cgroup_instance_path(e->cgroup) : NULL;
}

int envelope_freeze(struct envelope_instance *e, bool freeze)
{
	if (!e->cgroup)
		return -ESRCH;
	return cgroup_instance_freeze(e->cgroup, freeze, CLEANUP_TIMEOUT_USEC);
}

int envelope_freeze_request(struct envelope_instance *e)
{
	int r;

	if (!e->cgroup)
		return -ESRCH;
	r = cgroup_instance_freeze(e->cgroup, true, 0);
	return r == -ETIMEDOUT ? 0 : r; /* written; not frozen yet is fine */
}

int envelope_kill(struct envelope_instance *e)
{
	if (!e->cgroup)
		return -ESRCH;
	return cgroup_instance_kill(e->cgroup);
}

int envelope_wait(struct envelope_instance *e, siginfo_t *ret_info)
{
	siginfo_t si = {0};

	if (e->reaped)
		return -ECHILD;
	while (waitid(P_PIDFD, e->pidfd, &si, WEXITED) < 0)
		if (errno != EINTR)
			return -errno;
	e->reaped = true;
	if (ret_info)
		*ret_info = si;
	return 0;
}

int envelope_cleanup(struct envelope_instance *e)
{
	int r;

	if (e->cleaned)
		return 0;
	if (e->cgroup) {
		r = cgroup_instance_remove(e->cgroup, CLEANUP_TIMEOUT_USEC);
		if (r < 0)
			return r;
		cgroup_instance_free(e->cgroup);
		e->cgroup = NULL;
	}
	/* The last close unmounts the layer and frees all the instance made in
	 * it: off the agent's loop (sandbox.h). */
	fd_graveyard_close(e->upper_fd);
	e->upper_fd = -1;
	e->cleaned = true;
	return 0;
}

void envelope_free(struct envelope_instance *e)
{
	if (!e)
		return;
	(void)envelope_cleanup(e);
	cgroup_instance_free(e->cgroup);
	closep(&e->upper_fd);
	closep(&e->notify_fd);
	closep(&e->pidfd);
	free(e);
}
