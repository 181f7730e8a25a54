/* SPDX-License-Identifier: MIT */
#pragma once

#include <openssl/evp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>
#include <sys/stat.h>

#include "snapshot.h"

/* Internals shared by the snapshot files, their unit tests and the fuzz
 * target: the manifest model and format (snapshot_manifest.c), keys and
 * signatures (snapshot_sign.c), tree walking and hashing (snapshot_walk.c). */

#define SNAPSHOT_MANIFEST_HEADER "mtd-snapshot-manifest 1\n"
#define SNAPSHOT_MANIFEST_MAX (512u << 20) /* bytes */
#define SNAPSHOT_PATH_MAX 4095		   /* raw bytes of a path or target */
#define SNAPSHOT_DEPTH_MAX 256		   /* directory levels */
#define SNAPSHOT_SIG_SIZE 64
#define SNAPSHOT_SHA256_SIZE 32

enum snapshot_type {
	SNAPSHOT_DIR = 'd',
	SNAPSHOT_FILE = 'f',
	SNAPSHOT_SYMLINK = 'l',
	SNAPSHOT_CHAR = 'c',
	SNAPSHOT_BLOCK = 'b',
	SNAPSHOT_FIFO = 'p',
	SNAPSHOT_SOCKET = 's', /* only ever seen on disk, never in a manifest */
};

struct snapshot_entry {
	char *path;    /* raw bytes, "/" or "/a/b", NUL-terminated */
	char *target;  /* symlinks: raw target; NULL otherwise */
	char type;     /* enum snapshot_type */
	uint32_t mode; /* permission bits (07777) */
	uint32_t uid, gid;
	uint64_t size;			      /* regular files */
	uint32_t major, minor;		      /* devices */
	uint8_t sha256[SNAPSHOT_SHA256_SIZE]; /* regular files */
	/* Only for entries found on disk: */
	uint64_t nlink;
	dev_t dev;
	ino_t ino;
	struct timespec ctime, mtime;
};

struct snapshot_manifest {
	struct snapshot_entry *entries;
	size_t count, allocated;
};

/* --- errors (snapshot_manifest.c) --- */
_printf_(3, 4) void snapshot_error_set(struct snapshot_error *e, const char *path, const char *fmt,
				       ...);
/* "root" + escaped path ("/" alone gives "root") */
void snapshot_error_set_entry(struct snapshot_error *e, const char *raw_path, const char *fmt, ...)
    _printf_(3, 4);

/* --- the manifest (snapshot_manifest.c) --- */
/* Escape raw bytes into buffer as the manifest does; returns the length it
 * needed (like snprintf). */
size_t snapshot_escape(const char *raw, char *buffer, size_t size);
struct snapshot_entry *snapshot_manifest_add(struct snapshot_manifest *m);
void snapshot_manifest_sort(struct snapshot_manifest *m);
void snapshot_manifest_clear(struct snapshot_manifest *m);
const struct snapshot_entry *snapshot_manifest_find(const struct snapshot_manifest *m,
						    const char *path);
/* Parse and validate a manifest; error path is "manifest", reason "line N: ...". */
int snapshot_manifest_parse(const char *data, size_t size, struct snapshot_manifest *ret_manifest,
			    struct snapshot_error *ret_error);
/* The canonical text of a sorted manifest (malloc'd). */
int snapshot_manifest_format(const struct snapshot_manifest *m, char **ret_text, size_t *ret_size);
/* NULL when allowed, else the reason an entry is refused by the options. */
const char *snapshot_entry_refused(const struct snapshot_entry *e,
				   const struct snapshot_options *opts);
/* NULL when the entry's owner and mode keep the tree in root's hands, else
 * the reason (docs/snapshot.md "Ownership"): owned by root (or by the
 * verifying user, euid, who could change the tree anyway; the agent is
 * root), and, symlinks aside, no write bit for group or others. reason is a
 * buffer of at least 96 bytes. */
const char *snapshot_entry_unsafe(const struct snapshot_entry *e, uid_t euid, char *reason,
				  size_t size);
char snapshot_type_of(mode_t mode);
const char *snapshot_type_name(char type);

/* --- keys and signatures (snapshot_sign.c) --- */
int snapshot_load_private_key(const char *path, EVP_PKEY **ret_key,
			      struct snapshot_error *ret_error);
int snapshot_load_public_key(const char *path, EVP_PKEY **ret_key,
			     struct snapshot_error *ret_error);
int snapshot_sign(EVP_PKEY *key, const void *data, size_t size, uint8_t ret_sig[SNAPSHOT_SIG_SIZE]);
/* 0 when the signature holds, -EBADMSG when not. */
int snapshot_signature_check(EVP_PKEY *key, const void *data, size_t size,
			     const uint8_t sig[SNAPSHOT_SIG_SIZE]);
/* Read a whole regular file (no symlink followed at the last component) of at most max bytes. */
int snapshot_read_file_at(int dirfd, const char *name, size_t max, char **ret_data,
			  size_t *ret_size);

/* --- walking and hashing (snapshot_walk.c) --- */
struct snapshot_hasher {
	EVP_MD *md;
	EVP_MD_CTX *ctx;
	uint8_t *buffer;
	size_t buffer_size;
};
int snapshot_hasher_init(struct snapshot_hasher *h);
void snapshot_hasher_done(struct snapshot_hasher *h);
/* Hash the regular file open on fd from its start; *ret_size is the byte count. */
int snapshot_hash_fd(struct snapshot_hasher *h, int fd, uint8_t ret_sha256[SNAPSHOT_SHA256_SIZE],
		     uint64_t *ret_size);
/* Every entry under the directory root_fd (root included as "/"), lstat
 * only, symlinks read, never followed; unsorted. Sockets are listed (type
 * 's') for the caller to refuse. */
int snapshot_walk(int root_fd, struct snapshot_manifest *ret_list,
		  struct snapshot_error *ret_error);
/* --- stamps: the tree as verified, re-checked at every start (snapshot_stamp.c) --- */
struct snapshot_stamp {
	const char *path; /* the manifest entry's (not owned) */
	dev_t dev;
	ino_t ino;
	mode_t mode; /* type and permission bits */
	uid_t uid;
	gid_t gid;
	uint64_t nlink;
	uint64_t size;
	struct timespec ctime, mtime;
};
/* Stamps of the entries a verification walked (found[i] matched manifest
 * entry i, the paths of m are kept), in tree order: a directory's whole
 * subtree right after it ("/" sorts below every other byte). */
int snapshot_stamps_make(const struct snapshot_manifest *m, const struct snapshot_manifest *found,
			 struct snapshot_stamp **ret_stamps);
/* 0 when every entry below root_fd still has its stamp (one fstatat per
 * entry, one O_PATH open per directory, nothing followed); -EBADMSG and the
 * first changed path otherwise. */
int snapshot_stamps_check(int root_fd, const struct snapshot_stamp *stamps, size_t n,
			  struct snapshot_error *ret_error);
/* tree order of two raw paths */
int snapshot_tree_order(const char *a, const char *b);

/* Open a regular file by its manifest path below root_fd, refusing any
 * symlink or escape on the way (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS). */
int snapshot_open_beneath(int root_fd, const char *path, int flags);

/* Staging a snapshot: shared by snapshot_create.c (tree copy) and
 * snapshot_closure.c (a binary's closure). */

struct snapshot_stage {
	char *dest;
	char *tmp_path; /* DEST.tmp-XXXXXX */
	int dir_fd;	/* tmp_path */
	int root_fd;	/* tmp_path/root */
};

/* DEST must not exist or be empty; creates DEST.tmp-XXXXXX/root. */
int snapshot_stage_begin(const char *dest, struct snapshot_stage *ret_stage,
			 struct snapshot_error *error);
/* Manifest of the staged root, signed, synced, renamed to DEST. On failure
 * the stage is left for snapshot_stage_abort(). */
int snapshot_stage_commit(struct snapshot_stage *st, const char *privkey_path,
			  struct snapshot_error *error);
/* Remove the staging directory (if any) and free. */
void snapshot_stage_abort(struct snapshot_stage *st);

int snapshot_remove_tree(const char *path);
int snapshot_copy_file(int src_fd, int dst_fd);
int snapshot_apply_meta(int dirfd, const char *name, int fd, const struct stat *st);
int snapshot_copy_inode(int src_dir, int dst_dir, const char *name, const struct stat *st);
