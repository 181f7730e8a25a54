/* SPDX-License-Identifier: MIT */
/* Host uid/gid ranges for the instances' user namespaces (docs/userns.md).
 *
 * Every instance runs in a user namespace of its own that maps its ids
 * 0..65535 onto a range of 65,536 host ids that nothing else uses, so no
 * instance process is ever host uid 0 (or any other host user): its root is
 * nobody on the host. Ranges are slots of UID_RANGE_SIZE ids in a region
 * above systemd-nspawn's --private-users=pick area (0x00080000..0x6FFFFFFF)
 * and below systemd's foreign-image range (0x7FFE0000..):
 * UID_RANGE_REGION_FIRST..UID_RANGE_REGION_END, 4,094 slots.
 *
 * A slot is never handed out while it is in use:
 *   - at open, slots that overlap a uid or gid of the host's /etc/passwd and
 *     /etc/group, or a range of /etc/subuid and /etc/subgid, are excluded for
 *     the life of the allocator, and slots in which some process already runs
 *     (any Uid:/Gid: of /proc/PID/status: a previous agent's instance that
 *     survived the purge, another container manager) are busy;
 *   - the agent takes a slot per instance and gives it back only once the
 *     instance's cgroup is empty (every process of the range is gone).
 * Across restarts the agent purges what a killed agent left running, and
 * the /proc scan covers whatever is left after that.
 *
 * A slot also holds a user namespace with the slot's mapping, made on first
 * use and kept: the instance's read-only snapshot is mounted idmapped
 * through it (nothing ever runs in that namespace, so nothing an instance
 * does is kept in it; each instance enters a fresh namespace of its own). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define UID_RANGE_SIZE 65536u
#define UID_RANGE_REGION_FIRST 0x70000000u
#define UID_RANGE_REGION_END 0x7FFE0000u /* exclusive */

struct uid_ranges;

/* root: "/" on the host; a test passes a directory holding etc/ and proc/.
 * first..end: the region (multiples of UID_RANGE_SIZE, first > 0). */
int uid_ranges_open(const char *root, uint32_t first, uint32_t end, struct uid_ranges **ret);

/* A free slot (the lowest, so that slots and their namespaces are reused)
 * marked in use: its first host id. -ENOSPC when every slot is in use or
 * excluded. */
int uid_ranges_take(struct uid_ranges *ranges, uid_t *ret_base);
/* The mapping namespace of a taken slot (made on first use; borrowed,
 * valid until uid_ranges_free()). */
int uid_ranges_idmap_userns(struct uid_ranges *ranges, uid_t base, int *ret_fd);
/* The instance of that range is gone, every process of it. */
void uid_ranges_release(struct uid_ranges *ranges, uid_t base);
/* Slots excluded at open (host users, subuid/subgid) and in use now. */
void uid_ranges_counts(const struct uid_ranges *ranges, unsigned *ret_excluded,
		       unsigned *ret_in_use);
void uid_ranges_free(struct uid_ranges *ranges);

/* A new user namespace mapping ids 0..UID_RANGE_SIZE-1 onto base.. (uids and
 * gids), for an idmapped mount; nothing runs in it. Made by a short-lived
 * helper task (clone with CLONE_NEWUSER); the caller must be single-threaded
 * or not mind a task that shares its memory for a few microseconds. */
int uid_range_userns_new(uid_t base, int *ret_fd);
