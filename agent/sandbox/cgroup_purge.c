/* SPDX-License-Identifier: MIT */
/* Leftover instance cgroups: a killed agent leaves its instances running in
 * AGENT/name/ID. The next start kills each tree (cgroup.kill), waits until it
 * is empty and removes its directories in every hierarchy. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sandbox.h"
#include "macro.h"
#include "clock.h"

static bool populated(int dir_fd)
{
	char buffer[256];
	_cleanup_close_ int fd = openat(dir_fd, "cgroup.events", O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return false;
	n = read(fd, buffer, sizeof(buffer) - 1);
	if (n <= 0)
		return false;
	buffer[n] = '\0';
	return strstr(buffer, "populated 1") != NULL;
}

static int kill_and_wait(int dir_fd, uint64_t timeout_usec)
{
	_cleanup_close_ int fd = openat(dir_fd, "cgroup.kill", O_WRONLY | O_CLOEXEC);
	uint64_t deadline = now(CLOCK_MONOTONIC) + timeout_usec;

	if (fd >= 0 && write(fd, "1", 1) < 0)
		return -errno;
	while (populated(dir_fd)) {
		if (now(CLOCK_MONOTONIC) > deadline)
			return -ETIMEDOUT;
		usleep(2000);
	}
	return 0;
}

int cgroup_root_purge(const struct cgroup_root *r, uint64_t timeout_usec)
{
	const char *unified = cgroup_root_path(r);
	_cleanup_close_ int root_fd = -1;
	DIR *dir;
	struct dirent *de;
	int removed = 0, ret = 0;

	if (!unified)
		return 0;
	root_fd = open(unified, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (root_fd < 0)
		return errno == ENOENT ? 0 : -errno;
	dir = fdopendir(dup(root_fd));
	if (!dir)
		return -errno;
	while ((de = readdir(dir))) {
		_cleanup_close_ int fd = -1;
		int e;

		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		fd = openat(root_fd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			continue;
		e = kill_and_wait(fd, timeout_usec);
		if (e == 0 && unlinkat(root_fd, de->d_name, AT_REMOVEDIR) < 0)
			e = -errno;
		for (int c = 0; c < _CGROUP_CONTROLLER_MAX; c++) {
			const char *v1 = cgroup_root_v1_path(r, c);
			_cleanup_free_ char *path = NULL;

			if (!v1 || asprintf(&path, "%s/%s", v1, de->d_name) < 0)
				continue;
			/* cpu and cpuacct may share a hierarchy: ENOENT the second time. */
			if (rmdir(path) < 0 && errno != ENOENT && e == 0)
				e = -errno;
		}
		if (e < 0)
			ret = e;
		else
			removed++;
	}
	closedir(dir);
	return ret < 0 ? ret : removed;
}
