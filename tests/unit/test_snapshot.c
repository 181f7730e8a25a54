/* SPDX-License-Identifier: MIT */
/* Unit tests for signed snapshots: create, verify (each kind of tampering
 * refused with its exact first-mismatch reason), policy options, the
 * manifest parser, and the sealed memfd of snapshot_open_exec. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "snapshot.h"
#include "snapshot_internal.h"

struct fx {
	char dir[64];
	char src[128], snap[128], key[128], pub[128], other_pub[128], prefix[128];
	char path[512];
	struct snapshot_error e;
};

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void write_file(const char *path, const char *content, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void copy_host_file(const char *from, const char *to)
{
	int in = open(from, O_RDONLY | O_CLOEXEC), out;

	assert_true(in >= 0);
	out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
	assert_true(out >= 0);
	assert_int_equal(snapshot_copy_file(in, out), 0);
	assert_int_equal(fchmod(out, 0755), 0);
	close(in);
	close(out);
}

static const char *at(struct fx *f, const char *fmt, ...) _printf_(2, 3);
static const char *at(struct fx *f, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(f->path, sizeof(f->path), "%s/", f->dir);

	va_start(ap, fmt);
	vsnprintf(f->path + n, sizeof(f->path) - (size_t)n, fmt, ap);
	va_end(ap);
	return f->path;
}

/* A source tree: a program, a symlink to it, an absolute symlink, a config
 * file, an empty directory. */
static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct snapshot_error e;

	assert_non_null(f);
	umask(022);
	strcpy(f->dir, "/tmp/test-snapshot-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->src, sizeof(f->src), "%s/src", f->dir);
	snprintf(f->snap, sizeof(f->snap), "%s/snap", f->dir);
	snprintf(f->prefix, sizeof(f->prefix), "%s/k", f->dir);
	snprintf(f->key, sizeof(f->key), "%s/k.key", f->dir);
	snprintf(f->pub, sizeof(f->pub), "%s/k.pub", f->dir);
	snprintf(f->other_pub, sizeof(f->other_pub), "%s/other.pub", f->dir);
	assert_int_equal(snapshot_keygen(f->prefix, &e), 0);
	assert_int_equal(snapshot_keygen(at(f, "other"), &e), 0);
	assert_int_equal(mkdir(f->src, 0755), 0);
	assert_int_equal(mkdir(at(f, "src/bin"), 0755), 0);
	assert_int_equal(mkdir(at(f, "src/etc"), 0755), 0);
	assert_int_equal(mkdir(at(f, "src/var"), 0700), 0);
	copy_host_file("/bin/true", at(f, "src/bin/prog"));
	assert_int_equal(symlink("prog", at(f, "src/bin/sh")), 0);
	assert_int_equal(symlink("/etc/config", at(f, "src/etc/link")), 0);
	write_file(at(f, "src/etc/config"), "listen 8080\n", 0644);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	nftw(f->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static void create_ok(struct fx *f, const struct snapshot_options *opts)
{
	int r = snapshot_create(f->src, f->snap, f->key, opts, &f->e);

	if (r < 0)
		fail_msg("create: %s: %s", f->e.path, f->e.reason);
}

static void verify_ok(struct fx *f, const struct snapshot_options *opts)
{
	struct snapshot *s = NULL;
	int r = snapshot_verify(f->snap, f->pub, opts, &s, &f->e);

	if (r < 0)
		fail_msg("verify: %s: %s", f->e.path, f->e.reason);
	assert_non_null(s);
	snapshot_free(s);
}

/* Verification fails with exactly this path and a reason starting with reason. */
static void verify_refused(struct fx *f, const char *pub, const struct snapshot_options *opts,
			   const char *path, const char *reason)
{
	struct snapshot *s = (struct snapshot *)0x1;
	int r;

	memset(&f->e, 0, sizeof(f->e));
	r = snapshot_verify(f->snap, pub, opts, &s, &f->e);
	assert_true(r < 0);
	assert_ptr_equal(s, (struct snapshot *)0x1); /* untouched on failure */
	if (!streq(f->e.path, path) || strncmp(f->e.reason, reason, strlen(reason)) != 0)
		fail_msg("want '%s: %s...', got '%s: %s'", path, reason, f->e.path, f->e.reason);
}

static void test_good_snapshot_verifies(void **state)
{
	struct fx *f = *state;
	struct snapshot *s = NULL;
	struct snapshot_stats stats;
	char want_root[256];
	struct stat st;

	create_ok(f, NULL);
	assert_int_equal(snapshot_verify(f->snap, f->pub, NULL, &s, &f->e), 0);
	snapshot_get_stats(s, &stats);
	assert_int_equal(stats.entries, 8); /* / bin prog sh etc config link var */
	assert_int_equal(stats.files, 2);
	snprintf(want_root, sizeof(want_root), "%s/root", f->snap);
	assert_string_equal(snapshot_root(s), want_root);
	snapshot_free(s);
	/* Modes and symlinks were preserved, no staging directory is left. */
	assert_int_equal(lstat(at(f, "snap/root/var"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(lstat(at(f, "snap/root/etc/link"), &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	assert_int_equal(lstat(at(f, "snap/manifest"), &st), 0);
	assert_int_equal(lstat(at(f, "snap/manifest.sig"), &st), 0);
	assert_int_equal(st.st_size, 64);
}

static void test_flipped_byte_refused(void **state)
{
	struct fx *f = *state;

	create_ok(f, NULL);
	write_file(at(f, "snap/root/etc/config"), "listen 8081\n", 0644);
	verify_refused(f, f->pub, NULL, "root/etc/config", "content differs (sha256 ");
	assert_non_null(strstr(f->e.reason, ", expected "));
}

static void test_changed_mode_refused(void **state)
{
	struct fx *f = *state;

	create_ok(f, NULL);
	assert_int_equal(chmod(at(f, "snap/root/etc/config"), 0600), 0);
	verify_refused(f, f->pub, NULL, "root/etc/config", "mode differs (0600, expected 0644)");
}

/* A tree someone other than root may change is refused, whatever was signed. */
static void test_group_or_other_writable_refused(void **state)
{
	struct fx *f = *state;

	create_ok(f, NULL);
	assert_int_equal(chmod(at(f, "snap/root/etc/config"), 0664), 0);
	verify_refused(f, f->pub, NULL, "root/etc/config", "writable by group (0664;");
	assert_int_equal(chmod(at(f, "snap/root/etc/config"), 0644), 0);
	verify_ok(f, NULL);
	assert_int_equal(chmod(at(f, "snap/root/bin"), 01777), 0);
	verify_refused(f, f->pub, NULL, "root/bin", "writable by group and others (1777;");
	assert_int_equal(chmod(at(f, "snap/root/bin"), 0755), 0);
	assert_int_equal(chmod(at(f, "snap/root"), 0757), 0);
	verify_refused(f, f->pub, NULL, "root", "writable by others (0757;");
}

static void test_non_root_owner_refused(void **state)
{
	struct fx *f = *state;

	if (geteuid() != 0)
		skip();
	create_ok(f, NULL);
	/* a symlink's owner too: the rule has no exception for owners */
	assert_int_equal(lchown(at(f, "snap/root/etc/link"), 1000, 0), 0);
	verify_refused(f, f->pub, NULL, "root/etc/link",
		       "owned by uid 1000 (a snapshot tree is root's)");
}

static void test_create_refuses_a_source_that_is_not_roots(void **state)
{
	struct fx *f = *state;

	assert_int_equal(chmod(at(f, "src/etc/config"), 0620), 0);
	assert_int_equal(snapshot_create(f->src, f->snap, f->key, NULL, &f->e), -EPERM);
	assert_string_equal(f->e.path, at(f, "src/etc/config"));
	assert_string_equal(f->e.reason, "writable by group (0620; a snapshot tree is root's)");
	assert_int_equal(access(f->snap, F_OK), -1); /* nothing left behind */
	assert_int_equal(chmod(at(f, "src/etc/config"), 0644), 0);
	if (geteuid() == 0) {
		assert_int_equal(lchown(at(f, "src/bin/prog"), 33, 33), 0);
		assert_int_equal(snapshot_create(f->src, f->snap, f->key, NULL, &f->e), -EPERM);
		assert_string_equal(f->e.path, at(f, "src/bin/prog"));
		assert_string_equal(f->e.reason, "owned by uid 33 (a snapshot tree is root's)");
	}
}

static void test_changed_owner_refused(void **state)
{
	struct fx *f = *state;
	char want[128];

	if (geteuid() != 0)
		skip();
	create_ok(f, NULL);
	assert_int_equal(lchown(at(f, "snap/root/bin/prog"), getuid(), 54321), 0);
	assert_int_equal(chmod(f->path, 0755), 0);
	snprintf(want, sizeof(want), "owner differs (%u:54321, expected %u:%u)", getuid(), getuid(),
		 getgid());
	verify_refused(f, f->pub, NULL, "root/bin/prog", want);
}

static void test_added_file_refused(void **state)
{
	struct fx *f = *state;

	create_ok(f, NULL);
	write_file(at(f, "snap/root/etc/backdoor"), "x", 0644);
	verify_refused(f, f->pub, NULL, "root/etc/backdoor", "not in the manifest (regular file)");
}

static void test_added_empty_dir_refused(void **state)
{
	struct fx *f = *state;

	create_ok(f, NULL);
	assert_int_equal(mkdir(at(f, "snap/root/var/x"), 0755), 0);
	verify_refused(f, f->pub, NULL, "root/var/x", "not in the manifest (directory)");
}

static void test_removed_file_refused(void **state)
{
	struct fx *f = *state;

	create_ok(f, NULL);
	assert_int_equal(unlink(at(f, "snap/root/etc/config")), 0);
	verify_refused(f, f->pub, NULL, "root/etc/config",
		       "missing (regular file in the manifest)");
}

static void test_swapped_symlink_target_refused(void **state)
{
	struct fx *f = *state;

	create_ok(f, NULL);
	assert_int_equal(unlink(at(f, "snap/root/bin/sh")), 0);
	assert_int_equal(symlink("/bin/evil", f->path), 0);
	verify_refused(f, f->pub, NULL, "root/bin/sh",
		       "symlink target differs (/bin/evil, expected prog)");
}

static void test_file_replaced_by_symlink_refused(void **state)
{
	struct fx *f = *state;

	create_ok(f, NULL);
	assert_int_equal(unlink(at(f, "snap/root/etc/config")), 0);
	assert_int_equal(symlink("/etc/passwd", f->path), 0);
	verify_refused(f, f->pub, NULL, "root/etc/config",
		       "type differs (symlink, expected regular file)");
}

static void test_hard_link_refused(void **state)
{
	struct fx *f = *state;

	create_ok(f, NULL);
	{
		char outside[256];
		snprintf(outside, sizeof(outside), "%s/outside", f->dir);
		assert_int_equal(link(at(f, "snap/root/etc/config"), outside), 0);
	}
	verify_refused(f, f->pub, NULL, "root/etc/config",
		       "hard link (2 links; a snapshot has none)");
}

static void test_truncated_manifest_refused(void **state)
{
	struct fx *f = *state;
	struct stat st;

	create_ok(f, NULL);
	assert_int_equal(stat(at(f, "snap/manifest"), &st), 0);
	assert_int_equal(truncate(f->path, st.st_size - 10), 0);
	verify_refused(f, f->pub, NULL, "manifest", "bad signature");
}

static void test_bad_signature_refused(void **state)
{
	struct fx *f = *state;
	uint8_t b;
	int fd;

	create_ok(f, NULL);
	fd = open(at(f, "snap/manifest.sig"), O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &b, 1, 17), 1);
	b ^= 0x01;
	assert_int_equal(pwrite(fd, &b, 1, 17), 1);
	close(fd);
	verify_refused(f, f->pub, NULL, "manifest", "bad signature");
}

static void test_wrong_public_key_refused(void **state)
{
	struct fx *f = *state;

	create_ok(f, NULL);
	verify_refused(f, f->other_pub, NULL, "manifest", "bad signature");
}

static void test_missing_signature_refused(void **state)
{
	struct fx *f = *state;

	create_ok(f, NULL);
	assert_int_equal(unlink(at(f, "snap/manifest.sig")), 0);
	verify_refused(f, f->pub, NULL, "manifest.sig", "missing (unsigned snapshot)");
}

/* A manifest signed with the right key is still parsed strictly. */
static void test_signed_malformed_manifest_names_line(void **state)
{
	struct fx *f = *state;
	static const char text[] = SNAPSHOT_MANIFEST_HEADER "/ d 0755 0 0\n/etc d 999 0 0\n";
	uint8_t sig[SNAPSHOT_SIG_SIZE];
	EVP_PKEY *key = NULL;
	int fd;

	create_ok(f, NULL);
	assert_int_equal(snapshot_load_private_key(f->key, &key, &f->e), 0);
	assert_int_equal(snapshot_sign(key, text, strlen(text), sig), 0);
	EVP_PKEY_free(key);
	write_file(at(f, "snap/manifest"), text, 0644);
	fd = open(at(f, "snap/manifest.sig"), O_WRONLY | O_TRUNC | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, sig, sizeof(sig)), (ssize_t)sizeof(sig));
	close(fd);
	verify_refused(f, f->pub, NULL, "manifest", "line 3: mode: want 4 octal digits");
}

static void test_fifo_refused_unless_allowed(void **state)
{
	struct fx *f = *state;
	struct snapshot_options allow = {.allow_devices = true};
	char want[256];

	assert_int_equal(mkfifo(at(f, "src/var/pipe"), 0600), 0);
	assert_int_equal(snapshot_create(f->src, f->snap, f->key, NULL, &f->e), -EPERM);
	snprintf(want, sizeof(want), "%s/var/pipe", f->src);
	assert_string_equal(f->e.path, want);
	assert_string_equal(f->e.reason, "fifo not allowed (SnapshotAllowDevices=)");
	assert_int_equal(access(f->snap, F_OK), -1); /* nothing left behind */
	create_ok(f, &allow);
	verify_ok(f, &allow);
	verify_refused(f, f->pub, NULL, "root/var/pipe",
		       "fifo not allowed (SnapshotAllowDevices=)");
}

static void test_setuid_refused_unless_allowed(void **state)
{
	struct fx *f = *state;
	struct snapshot_options allow = {.allow_setuid = true};

	assert_int_equal(chmod(at(f, "src/bin/prog"), 04755), 0);
	assert_int_equal(snapshot_create(f->src, f->snap, f->key, NULL, &f->e), -EPERM);
	assert_string_equal(f->e.reason, "setuid/setgid file not allowed (SnapshotAllowSetuid=)");
	create_ok(f, &allow);
	verify_ok(f, &allow);
	verify_refused(f, f->pub, NULL, "root/bin/prog",
		       "setuid/setgid file not allowed (SnapshotAllowSetuid=)");
	/* setgid too */
	assert_int_equal(chmod(at(f, "snap/root/bin/prog"), 02755), 0);
	verify_refused(f, f->pub, &allow, "root/bin/prog", "mode differs (2755, expected 4755)");
}

static void test_device_refused_unless_allowed(void **state)
{
	struct fx *f = *state;
	struct snapshot_options allow = {.allow_devices = true};

	if (mknod(at(f, "src/var/null"), S_IFCHR | 0666, makedev(1, 3)) < 0)
		skip(); /* needs CAP_MKNOD */
	assert_int_equal(snapshot_create(f->src, f->snap, f->key, NULL, &f->e), -EPERM);
	assert_string_equal(f->e.reason, "device node not allowed (SnapshotAllowDevices=)");
	create_ok(f, &allow);
	verify_ok(f, &allow);
	verify_refused(f, f->pub, NULL, "root/var/null",
		       "device node not allowed (SnapshotAllowDevices=)");
	assert_int_equal(unlink(at(f, "snap/root/var/null")), 0);
	assert_int_equal(mknod(f->path, S_IFCHR | 0644, makedev(1, 5)), 0);
	verify_refused(f, f->pub, &allow, "root/var/null",
		       "device number differs (1:5, expected 1:3)");
}

static void test_escaped_names_round_trip(void **state)
{
	struct fx *f = *state;
	_cleanup_free_ char *text = NULL;
	size_t size;

	write_file(at(f, "src/etc/a b\\c\n\xff"), "odd\n", 0644);
	assert_int_equal(symlink("../x y", at(f, "src/etc/odd link")), 0);
	create_ok(f, NULL);
	verify_ok(f, NULL);
	assert_int_equal(
	    snapshot_read_file_at(AT_FDCWD, at(f, "snap/manifest"), 1 << 20, &text, &size), 0);
	assert_non_null(strstr(text, "\n/etc/a\\x20b\\x5cc\\x0a\\xff f 0644 "));
	assert_non_null(strstr(text, "\n/etc/odd\\x20link l 0777 0 0 ../x\\x20y\n") ||
			strstr(text, "\n/etc/odd\\x20link l 0777 "));
	/* An escaped name is reported escaped. */
	assert_int_equal(unlink(at(f, "snap/root/etc/a b\\c\n\xff")), 0);
	verify_refused(f, f->pub, NULL, "root/etc/a\\x20b\\x5cc\\x0a\\xff", "missing");
}

static void test_create_refuses_nonempty_dest_and_accepts_empty(void **state)
{
	struct fx *f = *state;

	assert_int_equal(mkdir(f->snap, 0755), 0);
	write_file(at(f, "snap/keep"), "x", 0644);
	assert_int_equal(snapshot_create(f->src, f->snap, f->key, NULL, &f->e), -ENOTEMPTY);
	assert_string_equal(f->e.reason, "exists and is not empty");
	assert_int_equal(unlink(at(f, "snap/keep")), 0);
	create_ok(f, NULL);
	verify_ok(f, NULL);
}

static void test_keygen_refuses_overwrite(void **state)
{
	struct fx *f = *state;
	struct stat st;

	assert_int_equal(snapshot_keygen(f->prefix, &f->e), -EEXIST);
	assert_int_equal(stat(f->key, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(chmod(f->key, 0644), 0);
	assert_int_equal(snapshot_create(f->src, f->snap, f->key, NULL, &f->e), -EPERM);
	assert_non_null(strstr(f->e.reason, "not be accessible to group or others"));
	assert_int_equal(snapshot_create(f->src, f->snap, f->pub, NULL, &f->e),
			 -EPERM + 0 * 0 - 0 ?: -EPERM);
}

/* --- snapshot_open_exec --- */

static struct snapshot *verified(struct fx *f)
{
	struct snapshot *s = NULL;

	create_ok(f, NULL);
	if (snapshot_verify(f->snap, f->pub, NULL, &s, &f->e) < 0)
		fail_msg("verify: %s: %s", f->e.path, f->e.reason);
	return s;
}

static void assert_same_content(int fd, const char *path)
{
	_cleanup_free_ char *want = NULL;
	size_t size;
	struct stat st;
	void *map;

	assert_int_equal(snapshot_read_file_at(AT_FDCWD, path, 64 << 20, &want, &size), 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal((size_t)st.st_size, size);
	map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
	assert_true(map != MAP_FAILED);
	assert_memory_equal(map, want, size);
	munmap(map, size);
}

static void test_open_exec_returns_sealed_memfd(void **state)
{
	struct fx *f = *state;
	_cleanup_(snapshot_freep) struct snapshot *s = verified(f);
	int fd = -1;

	assert_int_equal(snapshot_open_exec(s, "/bin/prog", &fd, &f->e), 0);
	assert_same_content(fd, at(f, "src/bin/prog"));
	assert_int_equal(fcntl(fd, F_GET_SEALS),
			 F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	assert_int_equal(pwrite(fd, "x", 1, 0), -1);
	assert_int_equal(errno, EPERM);
	assert_int_equal(ftruncate(fd, 1), -1);
	close(fd);
}

static void test_open_exec_resolves_symlinks_inside_root(void **state)
{
	struct fx *f = *state;
	_cleanup_(snapshot_freep) struct snapshot *s = verified(f);
	int fd = -1;

	/* bin/sh -> prog; relative form and ".." above the root stay inside. */
	assert_int_equal(snapshot_open_exec(s, "/bin/sh", &fd, &f->e), 0);
	assert_same_content(fd, at(f, "src/bin/prog"));
	close(fd);
	assert_int_equal(snapshot_open_exec(s, "../../bin/./sh", &fd, &f->e), 0);
	close(fd);
	/* /etc/link -> /etc/config: absolute, resolved in the snapshot, not the host. */
	assert_int_equal(snapshot_open_exec(s, "/etc/link", &fd, &f->e), 0);
	assert_same_content(fd, at(f, "src/etc/config"));
	close(fd);
	assert_int_equal(snapshot_open_exec(s, "/etc", &fd, &f->e), -EACCES);
	assert_string_equal(f->e.reason, "not a regular file (directory)");
	assert_int_equal(snapshot_open_exec(s, "/bin/nope", &fd, &f->e), -ENOENT);
	assert_string_equal(f->e.path, "root/bin/nope");
	assert_string_equal(f->e.reason, "not in the manifest");
}

static void test_open_exec_refuses_file_modified_after_verify(void **state)
{
	struct fx *f = *state;
	_cleanup_(snapshot_freep) struct snapshot *s = verified(f);
	int fd = -1;
	uint8_t b;
	int w = open(at(f, "snap/root/bin/prog"), O_RDWR | O_CLOEXEC);

	/* Same size, one byte flipped, after verification. */
	assert_true(w >= 0);
	assert_int_equal(pread(w, &b, 1, 100), 1);
	b ^= 0x80;
	assert_int_equal(pwrite(w, &b, 1, 100), 1);
	close(w);
	assert_int_equal(snapshot_open_exec(s, "/bin/sh", &fd, &f->e), -EBADMSG);
	assert_int_equal(fd, -1);
	assert_string_equal(f->e.path, "root/bin/prog");
	assert_true(
	    strncmp(f->e.reason, "changed since verification: content differs (sha256 ", 52) == 0);
}

static void test_open_exec_refuses_symlink_swapped_in(void **state)
{
	struct fx *f = *state;
	_cleanup_(snapshot_freep) struct snapshot *s = verified(f);
	int fd = -1;

	char moved[256];

	snprintf(moved, sizeof(moved), "%s/prog.orig", f->dir);
	assert_int_equal(rename(at(f, "snap/root/bin/prog"), moved), 0);
	assert_int_equal(symlink("/bin/true", at(f, "snap/root/bin/prog")), 0);
	assert_int_equal(snapshot_open_exec(s, "/bin/prog", &fd, &f->e), -EBADMSG);
	assert_string_equal(f->e.path, "root/bin/prog");
	assert_true(strncmp(f->e.reason, "changed since verification: cannot open", 39) == 0);
}

/* --- snapshot_open_file, snapshot_recheck: what runs is what was verified --- */

static void test_open_file_returns_verified_bytes_not_executable(void **state)
{
	struct fx *f = *state;
	_cleanup_(snapshot_freep) struct snapshot *s = verified(f);
	int fd = -1, w;
	struct stat st;

	assert_int_equal(snapshot_open_file(s, "/etc/link", &fd, &f->e), 0);
	assert_same_content(fd, at(f, "src/etc/config"));
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_mode & 0111, 0);
	assert_true(fcntl(fd, F_GET_SEALS) & F_SEAL_WRITE);
	close(fd);
	fd = -1;
	/* same size, other bytes: the verified bytes or nothing */
	w = open(at(f, "snap/root/etc/config"), O_WRONLY | O_CLOEXEC);
	assert_true(w >= 0);
	assert_int_equal(pwrite(w, "LISTEN", 6, 0), 6);
	close(w);
	assert_int_equal(snapshot_open_file(s, "/etc/config", &fd, &f->e), -EBADMSG);
	assert_int_equal(fd, -1);
	assert_int_equal(snapshot_open_file(s, "/etc/passwd", &fd, &f->e), -ENOENT);
}

static void recheck_refused(struct fx *f, struct snapshot *s, const char *path, const char *reason)
{
	memset(&f->e, 0, sizeof(f->e));
	assert_int_equal(snapshot_recheck(s, &f->e), -EBADMSG);
	if (!streq(f->e.path, path) || strncmp(f->e.reason, reason, strlen(reason)) != 0)
		fail_msg("want '%s: %s...', got '%s: %s'", path, reason, f->e.path, f->e.reason);
}

static void test_recheck_of_an_untouched_tree_is_0(void **state)
{
	struct fx *f = *state;
	_cleanup_(snapshot_freep) struct snapshot *s = verified(f);

	assert_int_equal(snapshot_recheck(s, &f->e), 0);
	assert_int_equal(snapshot_recheck(s, &f->e), 0);
}

/* Only metadata moved (a touch): verified again, it still matches, and the
 * new stamps are kept. */
static void test_recheck_after_a_touch_verifies_again_and_passes(void **state)
{
	struct fx *f = *state;
	_cleanup_(snapshot_freep) struct snapshot *s = verified(f);

	assert_int_equal(utimensat(AT_FDCWD, at(f, "snap/root/etc/config"), NULL, 0), 0);
	assert_int_equal(snapshot_recheck(s, &f->e), 1);
	assert_int_equal(snapshot_recheck(s, &f->e), 0);
}

static void test_recheck_refuses_same_size_write_and_stays_refused(void **state)
{
	struct fx *f = *state;
	_cleanup_(snapshot_freep) struct snapshot *s = verified(f);
	int w = open(at(f, "snap/root/bin/prog"), O_RDWR | O_CLOEXEC);
	uint8_t b;

	assert_true(w >= 0);
	assert_int_equal(pread(w, &b, 1, 200), 1);
	b ^= 1;
	assert_int_equal(pwrite(w, &b, 1, 200), 1);
	recheck_refused(f, s, "root/bin/prog", "content differs (sha256 ");
	/* put back: still refused until the next verification (no hashing on every start) */
	b ^= 1;
	assert_int_equal(pwrite(w, &b, 1, 200), 1);
	close(w);
	recheck_refused(f, s, "root/bin/prog", "content differs (sha256 ");
}

static void test_recheck_refuses_a_rename_over_with_other_bytes(void **state)
{
	struct fx *f = *state;
	_cleanup_(snapshot_freep) struct snapshot *s = verified(f);

	char next[256];

	snprintf(next, sizeof(next), "%s/snap/root/etc/config.new", f->dir);
	write_file(next, "listen 6666\n", 0644);
	assert_int_equal(rename(next, at(f, "snap/root/etc/config")), 0);
	recheck_refused(f, s, "root/etc/config", "content differs (sha256 ");
}

static void test_recheck_accepts_a_rename_over_with_the_same_bytes(void **state)
{
	struct fx *f = *state;
	_cleanup_(snapshot_freep) struct snapshot *s = verified(f);

	char next[256];

	snprintf(next, sizeof(next), "%s/snap/root/etc/config.new", f->dir);
	write_file(next, "listen 8080\n", 0644);
	assert_int_equal(rename(next, at(f, "snap/root/etc/config")), 0);
	assert_int_equal(snapshot_recheck(s, &f->e), 1);
}

static void test_recheck_refuses_a_symlink_swapped_to_the_hosts_root(void **state)
{
	struct fx *f = *state;
	_cleanup_(snapshot_freep) struct snapshot *s = verified(f);

	assert_int_equal(unlink(at(f, "snap/root/etc/link")), 0);
	assert_int_equal(symlink("/", f->path), 0);
	recheck_refused(f, s, "root/etc/link", "symlink target differs (/, expected /etc/config)");
}

/* A directory replaced by a symlink to the host's /etc: refused, and the
 * check below it never follows the link. */
static void test_recheck_refuses_a_directory_swapped_for_a_symlink(void **state)
{
	struct fx *f = *state;
	_cleanup_(snapshot_freep) struct snapshot *s = verified(f);
	char moved[256];

	snprintf(moved, sizeof(moved), "%s/etc.orig", f->dir);
	assert_int_equal(rename(at(f, "snap/root/etc"), moved), 0);
	assert_int_equal(symlink("/etc", at(f, "snap/root/etc")), 0);
	recheck_refused(f, s, "root/etc", "type differs (symlink, expected directory)");
}

/* The snapshot directory renamed and another put in its place: the verified
 * tree is still the one checked and the one mounted (by fd). */
static void test_recheck_follows_the_verified_directory_not_its_name(void **state)
{
	struct fx *f = *state;
	_cleanup_(snapshot_freep) struct snapshot *s = verified(f);
	_cleanup_free_ char *data = NULL;
	char moved[256];
	size_t size;

	snprintf(moved, sizeof(moved), "%s/snap.orig", f->dir);
	assert_int_equal(rename(f->snap, moved), 0);
	write_file(at(f, "src/etc/config"), "evil 1\n", 0644);
	create_ok(f, NULL); /* a valid, signed, other tree at the old name */
	assert_int_equal(snapshot_recheck(s, &f->e), 0);
	assert_int_equal(
	    snapshot_read_file_at(snapshot_root_fd(s), "etc/config", 4096, &data, &size), 0);
	assert_int_equal(size, 12);
	assert_memory_equal(data, "listen 8080\n", 12);
}

/* Stamps are checked in tree order ("/a", "/a/b", "/a-b"), directory by
 * directory: siblings after a subtree, deep paths, a change deep down. */
static void test_recheck_walks_subtrees_in_tree_order(void **state)
{
	struct fx *f = *state;
	struct snapshot *s;

	assert_true(snapshot_tree_order("/a/b", "/a-b") < 0);
	assert_true(snapshot_tree_order("/a", "/a/b") < 0);
	assert_true(snapshot_tree_order("/", "/a") < 0);
	assert_true(snapshot_tree_order("/a-b", "/a0") < 0);
	assert_int_equal(snapshot_tree_order("/a/b", "/a/b"), 0);
	assert_int_equal(mkdir(at(f, "src/a"), 0755), 0);
	assert_int_equal(mkdir(at(f, "src/a/b"), 0755), 0);
	assert_int_equal(mkdir(at(f, "src/a-b"), 0755), 0);
	write_file(at(f, "src/a/b/deep"), "deep\n", 0644);
	write_file(at(f, "src/a-b/side"), "side\n", 0644);
	write_file(at(f, "src/a/z"), "z\n", 0644);
	s = verified(f);
	assert_int_equal(snapshot_recheck(s, &f->e), 0);
	write_file(at(f, "snap/root/a/b/deep"), "DEEP\n", 0644);
	recheck_refused(f, s, "root/a/b/deep", "content differs");
	snapshot_free(s);
}

static int run_memfd(int fd, const char *arg0, const char *arg1)
{
	char *argv[] = {(char *)arg0, (char *)arg1, NULL};
	char *envp[] = {NULL};
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		syscall(SYS_execveat, fd, "", argv, envp, AT_EMPTY_PATH);
		_exit(127);
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* execveat(fd, "", AT_EMPTY_PATH) of a sealed memfd works for a dynamic
 * binary (/bin/true) and a static one (busybox-static). */
static void test_execveat_of_sealed_memfd(void **state)
{
	struct fx *f = *state;
	_cleanup_(snapshot_freep) struct snapshot *s = NULL;
	bool have_busybox = access("/bin/busybox", X_OK) == 0;
	int fd = -1;

	if (have_busybox)
		copy_host_file("/bin/busybox", at(f, "src/bin/busybox"));
	s = verified(f);
	assert_int_equal(snapshot_open_exec(s, "/bin/sh", &fd, &f->e), 0);
	assert_int_equal(run_memfd(fd, "true", NULL), 0);
	close(fd);
	if (!have_busybox)
		return;
	assert_int_equal(snapshot_open_exec(s, "/bin/busybox", &fd, &f->e), 0);
	assert_int_equal(run_memfd(fd, "busybox", "true"), 0);
	assert_int_equal(run_memfd(fd, "false", NULL), 1);
	close(fd);
}

/* --- the manifest parser --- */

static void test_manifest_parser_rejects(void **state)
{
	static const struct {
		const char *text, *reason;
	} cases[] = {
	    {"", "line 1: not an mtd snapshot manifest"},
	    {"mtd-snapshot-manifest 2\n/ d 0755 0 0\n", "line 1: not an mtd"},
	    {SNAPSHOT_MANIFEST_HEADER, "line 1: no entries"},
	    {SNAPSHOT_MANIFEST_HEADER "/ d 0755 0 0", "line 2: last line does not end"},
	    {SNAPSHOT_MANIFEST_HEADER "/a d 0755 0 0\n", "line 2: the first entry must be"},
	    {SNAPSHOT_MANIFEST_HEADER "/ d 0755 0 0\n/b d 0755 0 0\n/a d 0755 0 0\n",
	     "line 4: entries out of order"},
	    {SNAPSHOT_MANIFEST_HEADER "/ d 0755 0 0\n/a d 0755 0 0\n/a d 0755 0 0\n",
	     "line 4: entries out of order or duplicated"},
	    {SNAPSHOT_MANIFEST_HEADER "/ d 0755 0 0\n/a/b d 0755 0 0\n",
	     "line 3: parent directory is not in the manifest"},
	    {SNAPSHOT_MANIFEST_HEADER "/ d 0755 0 0\n/a f 0644 0 0 1 00\n/a/b d 0755 0 0\n",
	     "line 3: sha256: want 64"},
	    {SNAPSHOT_MANIFEST_HEADER "/ d 0755 0 0\n/a/../b d 0755 0 0\n",
	     "line 3: path has a '.' or '..'"},
	    {SNAPSHOT_MANIFEST_HEADER "/ d 0755 0 0\n//a d 0755 0 0\n",
	     "line 3: path has an empty component"},
	    {SNAPSHOT_MANIFEST_HEADER "/ d 0755 0 0\na d 0755 0 0\n",
	     "line 3: path does not start with '/'"},
	    {SNAPSHOT_MANIFEST_HEADER "/ d 0755 0 0\n/\\x41 d 0755 0 0\n",
	     "line 3: path: byte 'A' must not be escaped"},
	    {SNAPSHOT_MANIFEST_HEADER "/ d 0755 0 0\n/\\x0A d 0755 0 0\n",
	     "line 3: path: bad escape"},
	    {SNAPSHOT_MANIFEST_HEADER "/ d 0755 0 0\n/\\x00 d 0755 0 0\n", "line 3: path: NUL"},
	    {SNAPSHOT_MANIFEST_HEADER "/ d 0755 0 0\n/\\x0 d 0755 0 0\n",
	     "line 3: path: truncated escape"},
	    {SNAPSHOT_MANIFEST_HEADER "/ d 0755 0 0\n/a\tb d 0755 0 0\n",
	     "line 3: path: byte 0x09 must be escaped"},
	    {SNAPSHOT_MANIFEST_HEADER "/ d 0755 0 0\n/a x 0755 0 0\n", "line 3: type: want"},
	    {SNAPSHOT_MANIFEST_HEADER "/ d 0755 0 0\n/a d 0755 00 0\n", "line 3: uid: leading"},
	    {SNAPSHOT_MANIFEST_HEADER "/ d 0755 0 0\n/a d 0755 0 4294967295\n",
	     "line 3: gid: larger than 4294967294"},
	    {SNAPSHOT_MANIFEST_HEADER "/ d 0755 0 0\n/a d 0755 0 0 \n",
	     "line 3: unexpected text after gid"},
	    {SNAPSHOT_MANIFEST_HEADER "/ d 0755 0 0\n/a d 0755 0  0\n",
	     "line 3: gid: missing or empty"},
	    {SNAPSHOT_MANIFEST_HEADER "/ d 0755 0 0\n/a l 0755 0 0 b\n",
	     "line 3: mode: a symlink's mode is 0777"},
	    {SNAPSHOT_MANIFEST_HEADER "/ d 0755 0 0\n/a l 0777 0 0\n",
	     "line 3: line ends before the field after gid"},
	    {SNAPSHOT_MANIFEST_HEADER "/ d 0755 0 0\n/a c 0600 0 0 1\n",
	     "line 3: line ends before the field after major"},
	    {SNAPSHOT_MANIFEST_HEADER "/ d 0755 0 0\n/a f 0644 0 0 -1 x\n",
	     "line 3: size: not a decimal"},
	    {SNAPSHOT_MANIFEST_HEADER "/ d 0755 0 0\n/a f 0644 0 0 9223372036854775808 x\n",
	     "line 3: size: larger than"},
	    {SNAPSHOT_MANIFEST_HEADER "/ d 0755 0 0\n\n", "line 3: path: missing"},
	    {SNAPSHOT_MANIFEST_HEADER
	     "/ f 0755 0 0 0 "
	     "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n",
	     "line 2: the first entry must be"},
	};
	struct snapshot_error e;

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		struct snapshot_manifest m = {0};
		int r;

		memset(&e, 0, sizeof(e));
		r = snapshot_manifest_parse(cases[i].text, strlen(cases[i].text), &m, &e);
		if (r != -EBADMSG || !streq(e.path, "manifest") ||
		    strncmp(e.reason, cases[i].reason, strlen(cases[i].reason)) != 0)
			fail_msg("case %zu: want '%s', got %d '%s'", i, cases[i].reason, r,
				 e.reason);
		assert_null(m.entries);
	}
}

static void test_manifest_parse_format_round_trip(void **state)
{
	static const char text[] = SNAPSHOT_MANIFEST_HEADER
	    "/ d 0755 0 0\n"
	    "/a-b p 0600 1 2\n"
	    "/a d 1777 0 0\n"
	    "/a/dev c 0666 0 0 1 3\n"
	    "/a/disk b 0660 0 6 8 0\n"
	    "/a/f f 4755 0 0 0 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
	    "/a/l l 0777 0 0 /abs/\\x20\\xff\n"
	    "/\\xff d 0700 4294967294 0\n";
	struct snapshot_manifest m = {0};
	struct snapshot_error e;
	_cleanup_free_ char *out = NULL;
	size_t size;

	/* "/a" is a prefix of "/a-b", so it sorts first; "/a-b" sorts before "/a/dev". */
	assert_int_equal(snapshot_manifest_parse(text, strlen(text), &m, &e), -EBADMSG);
	assert_non_null(strstr(e.reason, "line 4: entries out of order"));
	{
		static const char sorted[] = SNAPSHOT_MANIFEST_HEADER
		    "/ d 0755 0 0\n"
		    "/a d 1777 0 0\n"
		    "/a-b p 0600 1 2\n"
		    "/a/dev c 0666 0 0 1 3\n"
		    "/a/disk b 0660 0 6 8 0\n"
		    "/a/f f 4755 0 0 0 "
		    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
		    "/a/l l 0777 0 0 /abs/\\x20\\xff\n"
		    "/\\xff d 0700 4294967294 0\n";

		if (snapshot_manifest_parse(sorted, strlen(sorted), &m, &e) < 0)
			fail_msg("%s", e.reason);
		assert_int_equal(m.count, 8);
		assert_string_equal(m.entries[6].target, "/abs/ \xff");
		assert_int_equal(m.entries[3].major, 1);
		assert_int_equal(m.entries[3].minor, 3);
		assert_int_equal(m.entries[7].uid, 4294967294u);
		assert_int_equal(snapshot_manifest_format(&m, &out, &size), 0);
		assert_int_equal(size, strlen(sorted));
		assert_memory_equal(out, sorted, size);
		assert_non_null(snapshot_manifest_find(&m, "/a/disk"));
		assert_null(snapshot_manifest_find(&m, "/a/nope"));
		snapshot_manifest_clear(&m);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	    T(test_good_snapshot_verifies),
	    T(test_flipped_byte_refused),
	    T(test_changed_mode_refused),
	    T(test_changed_owner_refused),
	    T(test_group_or_other_writable_refused),
	    T(test_non_root_owner_refused),
	    T(test_create_refuses_a_source_that_is_not_roots),
	    T(test_added_file_refused),
	    T(test_added_empty_dir_refused),
	    T(test_removed_file_refused),
	    T(test_swapped_symlink_target_refused),
	    T(test_file_replaced_by_symlink_refused),
	    T(test_hard_link_refused),
	    T(test_truncated_manifest_refused),
	    T(test_bad_signature_refused),
	    T(test_wrong_public_key_refused),
	    T(test_missing_signature_refused),
	    T(test_signed_malformed_manifest_names_line),
	    T(test_fifo_refused_unless_allowed),
	    T(test_setuid_refused_unless_allowed),
	    T(test_device_refused_unless_allowed),
	    T(test_escaped_names_round_trip),
	    T(test_create_refuses_nonempty_dest_and_accepts_empty),
	    T(test_keygen_refuses_overwrite),
	    T(test_open_exec_returns_sealed_memfd),
	    T(test_open_exec_resolves_symlinks_inside_root),
	    T(test_open_exec_refuses_file_modified_after_verify),
	    T(test_open_exec_refuses_symlink_swapped_in),
	    T(test_execveat_of_sealed_memfd),
	    T(test_open_file_returns_verified_bytes_not_executable),
	    T(test_recheck_of_an_untouched_tree_is_0),
	    T(test_recheck_after_a_touch_verifies_again_and_passes),
	    T(test_recheck_refuses_same_size_write_and_stays_refused),
	    T(test_recheck_refuses_a_rename_over_with_other_bytes),
	    T(test_recheck_accepts_a_rename_over_with_the_same_bytes),
	    T(test_recheck_refuses_a_symlink_swapped_to_the_hosts_root),
	    T(test_recheck_refuses_a_directory_swapped_for_a_symlink),
	    T(test_recheck_follows_the_verified_directory_not_its_name),
	    T(test_recheck_walks_subtrees_in_tree_order),
	    cmocka_unit_test(test_manifest_parser_rejects),
	    cmocka_unit_test(test_manifest_parse_format_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
