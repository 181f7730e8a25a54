/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* Signed, integrity-verified snapshots (docs/snapshot.md): a directory tree
 * DIR/root, its canonical manifest DIR/manifest and an Ed25519 signature of the
 * manifest DIR/manifest.sig. The agent verifies a snapshot before first use and
 * on every policy load, then executes the service binary through a sealed
 * memfd whose content it hashed. */

/* What a snapshot may contain beyond directories, regular files and symlinks. */
struct snapshot_options {
	bool allow_devices; /* character/block devices and fifos (SnapshotAllowDevices=) */
	bool allow_setuid;  /* setuid/setgid non-directories (SnapshotAllowSetuid=) */
};

/* The first problem found, for a one-line message "PATH: REASON". PATH is
 * relative to the snapshot directory ("root/bin/sh", "manifest",
 * "manifest.sig"), or a file named by the caller (a key, a source path);
 * bytes outside printable ASCII are escaped as in the manifest. */
struct snapshot_error {
	char path[1024];
	char reason[1024];
};

struct snapshot_stats {
	uint64_t entries; /* manifest lines, the root directory included */
	uint64_t files;	  /* regular files */
	uint64_t bytes;	  /* bytes of regular files (all hashed) */
};

struct snapshot;

/* Verify DIR against the Ed25519 public key (PEM) in pubkey_path: the
 * signature, then every path, type, mode, owner, size, content, symlink
 * target and device number of DIR/root, with no extra and no missing entry,
 * and every entry owned by root (or the caller's euid) and not writable by
 * group or others (symlinks aside).
 * opts may be NULL (nothing special allowed). On success *ret_snapshot keeps
 * the parsed manifest and a handle on DIR/root. On failure returns a negative
 * errno (-EBADMSG for a mismatch or a bad signature) and fills *ret_error
 * (if not NULL) with the first mismatch in manifest order. */
int snapshot_verify(const char *dir, const char *pubkey_path, const struct snapshot_options *opts,
		    struct snapshot **ret_snapshot, struct snapshot_error *ret_error);

/* Open the regular file at path_inside_root (absolute or relative to the
 * snapshot root; symlinks are resolved through the verified manifest and stay
 * inside the root), copy it into a memfd while hashing it, compare the hash
 * with the manifest and seal the memfd (F_SEAL_WRITE|F_SEAL_SHRINK|F_SEAL_GROW|
 * F_SEAL_SEAL). The returned fd (O_CLOEXEC) is ready for
 * execveat(fd, "", argv, envp, AT_EMPTY_PATH). -EBADMSG when the file changed
 * since verification. */
int snapshot_open_exec(const struct snapshot *s, const char *path_inside_root, int *ret_fd,
		       struct snapshot_error *ret_error);

/* Like snapshot_open_exec for a file the agent reads itself (passwd,
 * group): the verified bytes in a sealed, non-executable memfd (O_CLOEXEC,
 * at offset 0). -ENOENT when the path is not in the manifest. */
int snapshot_open_file(const struct snapshot *s, const char *path_inside_root, int *ret_fd,
		       struct snapshot_error *ret_error);

/* Before each start: is the tree still the one verified? A stat walk through
 * the verified root fd against what verification recorded of each entry
 * (inode, ctime, mtime, mode, owner, links, size). 0: unchanged. When
 * something moved, the whole tree is verified again against the signed
 * manifest (hashing every file): 1 when it still matches (the new stamps are
 * kept), -EBADMSG and the first difference when not; the snapshot then stays
 * refused (same error, no more hashing) until it is verified anew. */
int snapshot_recheck(struct snapshot *s, struct snapshot_error *ret_error);

void snapshot_free(struct snapshot *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct snapshot *, snapshot_free)

/* DIR/root as it was named at verification (messages, tools); never open
 * it again by this name: use snapshot_root_fd(). */
const char *snapshot_root(const struct snapshot *s);
/* The verified DIR/root (O_RDONLY|O_DIRECTORY), owned by the snapshot: the
 * directory an instance's read-only lower layer is cloned from. */
int snapshot_root_fd(const struct snapshot *s);
void snapshot_get_stats(const struct snapshot *s, struct snapshot_stats *ret_stats);

/* Write a new Ed25519 key pair: PREFIX.key (PEM PKCS#8, 0600) and PREFIX.pub
 * (PEM SubjectPublicKeyInfo, 0644). Refuses (-EEXIST) to overwrite either. */
int snapshot_keygen(const char *prefix, struct snapshot_error *ret_error);

/* Copy the tree SRC into DEST/root (modes, owners, symlinks, devices as they
 * are; hard links become separate files), write and sign the manifest with
 * the private key in privkey_path. DEST must not exist or be an empty
 * directory; the snapshot is built in DEST.tmp-XXXXXX and renamed into place,
 * so DEST is either complete or untouched. */
int snapshot_create(const char *src, const char *dest, const char *privkey_path,
		    const struct snapshot_options *opts, struct snapshot_error *ret_error);

/* Like snapshot_create, from host executables and their shared-library
 * closure (ELF PT_INTERP and `INTERP --list BINARY`; the binaries themselves
 * never run). Each file keeps its host path, symlinks on the way included;
 * /dev, /proc and /tmp are created empty. */
int snapshot_create_from_binaries(const char *const *binaries, size_t n_binaries, const char *dest,
				  const char *privkey_path, struct snapshot_error *ret_error);
