/* SPDX-License-Identifier: MIT */
/* Some last closes are expensive, and an attacker decides how expensive: the
 * last close of an instance's detached tmpfs unmounts it and frees every
 * inode in it (hundreds of milliseconds for 16,000 directories), the close
 * of an inotify instance removes every watch. Done on the agent's loop, that
 * stalls the control socket and the rotation timers. A helper process forked
 * at start ("mtd-closer") takes such descriptors over SCM_RIGHTS and makes
 * the last close, off the loop. Without the helper (tests, tools, or when it
 * is gone) the close happens in place, as before. */
#pragma once

/* Fork the helper; call before any descriptor worth keeping from it is
 * open (it closes all it inherited but its socket). */
int fd_graveyard_start(void);

/* Hand fd over for its last close (or close it here); fd is gone either way. */
void fd_graveyard_close(int fd);

/* Let the helper go (it exits once it has closed what it holds). */
void fd_graveyard_stop(void);
