/* SPDX-License-Identifier: MIT */
/* A snapshot from host executables and their shared-library closure. The
 * ELF program headers name the interpreter (PT_INTERP); that interpreter,
 * run as `INTERP --list BINARY` with an empty environment, names the
 * libraries. The binaries themselves never run. Every file keeps its host
 * path; symlinks on the way (/bin -> usr/bin, /lib64/ld-linux... -> ...) are
 * recreated so the same paths resolve inside the snapshot. */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "snapshot_internal.h"

#define LIST_OUTPUT_MAX (1u << 20)
#define IMPORT_LINKS_MAX 40

struct importer {
	int root_fd;
	bool as_root;
	unsigned links;
	struct snapshot_error *error;
};

/* The program header table's place in the ELF header; false if unreadable
 * or not the size this class has. */
static bool read_ehdr(int fd, bool is64, uint64_t *phoff, uint64_t *phnum, uint64_t *phentsize)
{
	if (is64) {
		Elf64_Ehdr eh;
		if (pread(fd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh))
			return false;
		*phoff = eh.e_phoff, *phnum = eh.e_phnum, *phentsize = eh.e_phentsize;
		return *phentsize == sizeof(Elf64_Phdr);
	}
	Elf32_Ehdr eh;
	if (pread(fd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh))
		return false;
	*phoff = eh.e_phoff, *phnum = eh.e_phnum, *phentsize = eh.e_phentsize;
	return *phentsize == sizeof(Elf32_Phdr);
}

/* One program header at offset at; false if unreadable. */
static bool read_phdr(int fd, bool is64, off_t at, uint64_t *type, uint64_t *offset,
		      uint64_t *filesz)
{
	if (is64) {
		Elf64_Phdr ph;
		if (pread(fd, &ph, sizeof(ph), at) != (ssize_t)sizeof(ph))
			return false;
		*type = ph.p_type, *offset = ph.p_offset, *filesz = ph.p_filesz;
		return true;
	}
	Elf32_Phdr ph;
	if (pread(fd, &ph, sizeof(ph), at) != (ssize_t)sizeof(ph))
		return false;
	*type = ph.p_type, *offset = ph.p_offset, *filesz = ph.p_filesz;
	return true;
}

/* The PT_INTERP named by fd's program headers into interp, untouched for a
 * static file; false if the headers are malformed. */
static bool read_interp(int fd, bool is64, char *interp, size_t size)
{
	uint64_t phoff, phnum, phentsize;

	if (!read_ehdr(fd, is64, &phoff, &phnum, &phentsize))
		return false;
	for (uint64_t i = 0; i < phnum; i++) {
		uint64_t type, offset, filesz;

		if (!read_phdr(fd, is64, (off_t)(phoff + i * phentsize), &type, &offset, &filesz))
			return false;
		if (type != PT_INTERP)
			continue;
		return filesz >= 2 && filesz <= size &&
		       pread(fd, interp, filesz, (off_t)offset) == (ssize_t)filesz &&
		       interp[filesz - 1] == '\0' && strlen(interp) == filesz - 1 &&
		       interp[0] == '/';
	}
	return true;
}

/* The PT_INTERP of an ELF file, or "" for a static one. */
static int elf_interpreter(const char *path, char *interp, size_t size,
			   struct snapshot_error *error)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	unsigned char ident[EI_NIDENT];

	interp[0] = '\0';
	if (fd < 0) {
		snapshot_error_set(error, path, "cannot open: %s", strerror(errno));
		return -errno;
	}
	if (pread(fd, ident, sizeof(ident), 0) != (ssize_t)sizeof(ident) ||
	    memcmp(ident, ELFMAG, SELFMAG) != 0 || ident[EI_DATA] != ELFDATA2LSB ||
	    (ident[EI_CLASS] != ELFCLASS64 && ident[EI_CLASS] != ELFCLASS32)) {
		snapshot_error_set(error, path, "not a little-endian ELF executable");
		return -ENOEXEC;
	}
	if (!read_interp(fd, ident[EI_CLASS] == ELFCLASS64, interp, size)) {
		interp[0] = '\0';
		snapshot_error_set(error, path, "malformed ELF program headers");
		return -ENOEXEC;
	}
	return 0;
}

/* Run INTERP --list BINARY with an empty environment; its stdout in *ret. */
static int list_libraries(const char *interp, const char *binary, char **ret,
			  struct snapshot_error *error)
{
	char *argv[] = {(char *)interp, (char *)"--list", (char *)binary, NULL};
	char *envp[] = {NULL};
	posix_spawn_file_actions_t fa;
	_cleanup_free_ char *out = malloc(LIST_OUTPUT_MAX + 1);
	int pipefd[2], status, r;
	size_t n = 0;
	struct stat st;
	pid_t pid;

	/* Only a loader the administrator controls is run. */
	if (stat(interp, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != 0 || (st.st_mode & 022)) {
		snapshot_error_set(error, interp,
				   "ELF interpreter of %s is not a root-owned, non-writable file",
				   binary);
		return -EPERM;
	}
	if (!out)
		return -ENOMEM;
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return -errno;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDOUT_FILENO);
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
	r = posix_spawn(&pid, interp, &fa, NULL, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	close(pipefd[1]);
	if (r != 0) {
		close(pipefd[0]);
		snapshot_error_set(error, interp, "cannot run: %s", strerror(r));
		return -r;
	}
	for (;;) {
		ssize_t k = read(pipefd[0], out + n, LIST_OUTPUT_MAX - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		n += (size_t)k;
		if (n == LIST_OUTPUT_MAX)
			break;
	}
	close(pipefd[0]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || n == LIST_OUTPUT_MAX) {
		snapshot_error_set(error, binary, "%s --list failed (status 0x%x)", interp, status);
		return -EIO;
	}
	out[n] = '\0';
	*ret = TAKE_PTR(out);
	return 0;
}

static int open_stage_dir(struct importer *im, const char *path)
{
	return snapshot_open_beneath(im->root_fd, path, O_RDONLY | O_DIRECTORY);
}

/* Create (dir or file or symlink) name in the stage directory for host
 * path parent/name, unless it is already there. */
static int import_inode(struct importer *im, const char *parent, const char *name)
{
	_cleanup_close_ int host =
	    open(parent[0] ? parent : "/", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	_cleanup_close_ int stage = open_stage_dir(im, parent[0] ? parent : "/");
	struct stat st, existing;
	int r;

	if (host < 0 || stage < 0)
		return host < 0 ? -errno : stage;
	if (fstatat(host, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (fstatat(stage, name, &existing, AT_SYMLINK_NOFOLLOW) == 0)
		return (existing.st_mode & S_IFMT) == (st.st_mode & S_IFMT) ? 0 : -EEXIST;
	if (!im->as_root) {
		st.st_uid = geteuid();
		st.st_gid = getegid();
	} else
		st.st_uid = 0; /* the copy is root's, whoever owns the host file */
	/* a copy is never setuid, nor writable by group or others (the
	 * verifier refuses a tree that is not root's alone) */
	st.st_mode &= ~(mode_t)(S_ISUID | S_ISGID | S_IWGRP | S_IWOTH);
	if (S_ISDIR(st.st_mode)) {
		_cleanup_close_ int fd = -1;

		if (mkdirat(stage, name, 0700) < 0)
			return -errno;
		fd = openat(stage, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		return snapshot_apply_meta(-1, NULL, fd, &st);
	}
	if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode))
		return -EOPNOTSUPP;
	r = snapshot_copy_inode(host, stage, name, &st);
	return r;
}

/* Bring the host path (absolute) into the stage, following its symlinks. */
static int import_path(struct importer *im, const char *path)
{
	char cur[PATH_MAX] = "", rest[2 * PATH_MAX];
	const char *p = path;
	int r;

	while (*p) {
		const char *comp;
		size_t clen, cur_len = strlen(cur);
		struct stat st;
		char next[PATH_MAX];

		while (*p == '/')
			p++;
		if (!*p)
			break;
		comp = p;
		while (*p && *p != '/')
			p++;
		clen = (size_t)(p - comp);
		if (clen == 1 && comp[0] == '.')
			continue;
		if (clen == 2 && comp[0] == '.' && comp[1] == '.') {
			char *slash = strrchr(cur, '/');
			if (slash)
				*slash = '\0';
			continue;
		}
		if (cur_len + 1 + clen >= sizeof(next) || clen > NAME_MAX)
			return -ENAMETOOLONG;
		memcpy(next, cur, cur_len);
		next[cur_len] = '/';
		memcpy(next + cur_len + 1, comp, clen);
		next[cur_len + 1 + clen] = '\0';
		if (lstat(next, &st) < 0) {
			snapshot_error_set(im->error, next, "cannot stat: %s", strerror(errno));
			return -errno;
		}
		{
			char name[NAME_MAX + 1];
			memcpy(name, comp, clen);
			name[clen] = '\0';
			r = import_inode(im, cur, name);
		}
		if (r < 0) {
			snapshot_error_set(im->error, next, "cannot copy into the snapshot: %s",
					   strerror(-r));
			return r;
		}
		if (S_ISLNK(st.st_mode)) {
			char target[PATH_MAX];
			ssize_t n = readlink(next, target, sizeof(target) - 1);

			if (n < 0)
				return -errno;
			target[n] = '\0';
			if (++im->links > IMPORT_LINKS_MAX) {
				snapshot_error_set(im->error, path, "too many levels of symlinks");
				return -ELOOP;
			}
			if ((size_t)snprintf(
				rest, sizeof(rest), "%s%s%s%s", target[0] == '/' ? "" : cur,
				target[0] == '/' ? "" : "/", target, p) >= sizeof(rest))
				return -ENAMETOOLONG;
			return import_path(im, rest);
		}
		if (!S_ISDIR(st.st_mode) && *p) {
			snapshot_error_set(im->error, next, "not a directory");
			return -ENOTDIR;
		}
		if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) {
			snapshot_error_set(im->error, next, "not a regular file");
			return -EOPNOTSUPP;
		}
		memcpy(cur, next, strlen(next) + 1);
	}
	return 0;
}

/* Each "... => /path (0x...)" or "/path (0x...)" line; vdso lines have no path. */
static int import_list(struct importer *im, const char *binary, char *out)
{
	char *save = NULL;

	for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *arrow = strstr(line, " => "), *path, *paren;
		int r;

		if (strstr(line, "not found")) {
			snapshot_error_set(im->error, binary, "library not found: %s",
					   line + strspn(line, " \t"));
			return -ENOENT;
		}
		path = arrow ? arrow + 4 : line + strspn(line, " \t");
		if (path[0] != '/')
			continue; /* linux-vdso.so.1 */
		paren = strstr(path, " (0x");
		if (paren)
			*paren = '\0';
		im->links = 0;
		r = import_path(im, path);
		if (r < 0)
			return r;
	}
	return 0;
}

static int make_dir(int root_fd, const char *name, mode_t mode, bool as_root)
{
	_cleanup_close_ int fd = -1;

	if (mkdirat(root_fd, name, 0700) < 0)
		return errno == EEXIST ? 0 : -errno;
	fd = openat(root_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (as_root && fchown(fd, 0, 0) < 0)
		return -errno;
	return fchmod(fd, mode) < 0 ? -errno : 0;
}

int snapshot_create_from_binaries(const char *const *binaries, size_t n_binaries, const char *dest,
				  const char *privkey_path, struct snapshot_error *ret_error)
{
	struct snapshot_stage st;
	struct importer im = {.as_root = geteuid() == 0, .error = ret_error};
	int r = 0;

	if (n_binaries == 0) {
		snapshot_error_set(ret_error, dest, "no binary given");
		return -EINVAL;
	}
	for (size_t i = 0; i < n_binaries; i++)
		if (binaries[i][0] != '/') {
			snapshot_error_set(ret_error, binaries[i], "must be an absolute path");
			return -EINVAL;
		}
	r = snapshot_stage_begin(dest, &st, ret_error);
	if (r < 0)
		return r;
	im.root_fd = st.root_fd;
	if ((im.as_root && fchown(st.root_fd, 0, 0) < 0) || fchmod(st.root_fd, 0755) < 0) {
		r = -errno;
		snapshot_error_set(ret_error, st.tmp_path, "cannot set owner/mode: %s",
				   strerror(-r));
	}
	for (size_t i = 0; r == 0 && i < n_binaries; i++) {
		char interp[PATH_MAX];
		_cleanup_free_ char *out = NULL;

		r = elf_interpreter(binaries[i], interp, sizeof(interp), ret_error);
		if (r < 0)
			break;
		im.links = 0;
		r = import_path(&im, binaries[i]);
		if (r < 0 || !interp[0])
			continue; /* static: nothing else to bring */
		im.links = 0;
		r = import_path(&im, interp);
		if (r == 0)
			r = list_libraries(interp, binaries[i], &out, ret_error);
		if (r == 0)
			r = import_list(&im, binaries[i], out);
	}
	/* No /tmp: a world-writable directory in the tree would let anyone
	 * change it; the envelope makes each instance's /tmp (1777) in its
	 * writable layer. */
	if (r == 0 && ((r = make_dir(st.root_fd, "dev", 0755, im.as_root)) < 0 ||
		       (r = make_dir(st.root_fd, "proc", 0555, im.as_root)) < 0))
		snapshot_error_set(ret_error, st.tmp_path, "cannot create /dev, /proc: %s",
				   strerror(-r));
	if (r == 0)
		r = snapshot_stage_commit(&st, privkey_path, ret_error);
	if (r < 0)
		snapshot_stage_abort(&st);
	return r;
}
