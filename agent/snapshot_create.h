/* SPDX-License-Identifier: MIT */
/* Staging a snapshot: shared by snapshot_create.c (tree copy) and
 * snapshot_closure.c (a binary's closure). */
#pragma once

#include <sys/stat.h>

#include "snapshot_internal.h"

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
