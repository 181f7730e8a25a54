/* SPDX-License-Identifier: MIT */
#include "rotation.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "macro.h"

#define SAVED_FILE "forwarding.saved"
#define IPV4_FORWARD "/proc/sys/net/ipv4/ip_forward"
#define IPV6_FORWARD "/proc/sys/net/ipv6/conf/all/forwarding"
#define IPV6_CONF "/proc/sys/net/ipv6/conf"
/* Interfaces whose accept_ra the agent moved from 1 to 2 ("default" included). */
#define ACCEPT_RA_MAX 256

static inline void closedirp(DIR **d)
{
	if (*d)
		closedir(*d);
}

struct forwarding {
	char *state_dir;
	int ipv4;			  /* ip_forward before the agent */
	int ipv6;			  /* all.forwarding before the agent; -1: no IPv6 here */
	bool enabled;			  /* forwarding_enable() changed things */
	char ra[ACCEPT_RA_MAX][IFNAMSIZ]; /* accept_ra 1 -> 2 */
	size_t n_ra;
};

DEFINE_TRIVIAL_CLEANUP_FUNC(struct forwarding *, forwarding_free)

static int read_sysctl_int(const char *path, int *ret)
{
	char buf[32];
	ssize_t n;
	char *end;
	long v;
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	errno = 0;
	v = strtol(buf, &end, 10);
	if (errno || end == buf || (*end && *end != '\n'))
		return -EBADMSG;
	*ret = (int)v;
	return 0;
}

static int write_sysctl_int(const char *path, int value)
{
	char buf[16];
	int len = snprintf(buf, sizeof(buf), "%d", value);
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (write(fd, buf, (size_t)len) < 0)
		return -errno;
	return 0;
}

static void accept_ra_path(const char *ifname, char *path, size_t size)
{
	snprintf(path, size, IPV6_CONF "/%s/accept_ra", ifname);
}

static bool valid_ifname(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len >= IFNAMSIZ || streq(name, ".") || streq(name, ".."))
		return false;
	return !strchr(name, '/') && !strchr(name, ' ') && !strchr(name, '\n');
}

/* The saved file, strictly: "ipv4 N", "ipv6 N", then "accept_ra IFNAME" lines. */
static int parse_saved(struct forwarding *f, FILE *in)
{
	char line[64], name[IFNAMSIZ + 1];
	bool have4 = false, have6 = false;
	int v;

	while (fgets(line, sizeof(line), in)) {
		if (sscanf(line, "ipv4 %d", &v) == 1 && !have4 && v >= 0) {
			f->ipv4 = v;
			have4 = true;
		} else if (sscanf(line, "ipv6 %d", &v) == 1 && !have6 && v >= -1) {
			f->ipv6 = v;
			have6 = true;
		} else if (sscanf(line, "accept_ra %16s", name) == 1 && valid_ifname(name) &&
			   f->n_ra < ACCEPT_RA_MAX) {
			memcpy(f->ra[f->n_ra++], name, strlen(name) + 1);
		} else {
			return -EBADMSG;
		}
	}
	return have4 && have6 ? 0 : -EBADMSG;
}

int forwarding_load(const char *state_dir, struct forwarding **ret_forwarding)
{
	_cleanup_(forwarding_freep) struct forwarding *f = calloc(1, sizeof(*f));
	_cleanup_free_ char *path = NULL;
	_cleanup_fclose_ FILE *in = NULL;
	int r;

	if (!f)
		return -ENOMEM;
	f->state_dir = strdup(state_dir);
	if (!f->state_dir || asprintf(&path, "%s/" SAVED_FILE, state_dir) < 0)
		return -ENOMEM;
	in = fopen(path, "re");
	if (in) {
		/* A previous run changed the settings and never put them back:
		 * what it found is what the host had. */
		r = parse_saved(f, in);
		if (r < 0)
			return r;
		f->enabled = true;
	} else if (errno != ENOENT) {
		return -errno;
	} else {
		r = read_sysctl_int(IPV4_FORWARD, &f->ipv4);
		if (r < 0)
			return r;
		if (read_sysctl_int(IPV6_FORWARD, &f->ipv6) < 0)
			f->ipv6 = -1;
	}
	*ret_forwarding = TAKE_PTR(f);
	return 0;
}

bool forwarding_was_on(const struct forwarding *forwarding, int family)
{
	return family == AF_INET ? forwarding->ipv4 > 0 : forwarding->ipv6 > 0;
}

/* Every interface at accept_ra=1, "default" included ("all" holds no
 * per-interface value). Only on the first enable: a saved list is kept. */
static int collect_accept_ra(struct forwarding *f)
{
	_cleanup_(closedirp) DIR *d = opendir(IPV6_CONF);
	struct dirent *de;

	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		char path[sizeof(IPV6_CONF) + 256 + 16];
		int v;

		if (!valid_ifname(de->d_name) || streq(de->d_name, "all"))
			continue;
		accept_ra_path(de->d_name, path, sizeof(path));
		if (read_sysctl_int(path, &v) < 0 || v != 1)
			continue;
		if (f->n_ra == ACCEPT_RA_MAX)
			return -E2BIG;
		memcpy(f->ra[f->n_ra++], de->d_name, strlen(de->d_name) + 1);
	}
	return 0;
}

static int save(const struct forwarding *f)
{
	_cleanup_free_ char *path = NULL, *tmp = NULL;
	_cleanup_fclose_ FILE *out = NULL;
	int r = 0;

	if (asprintf(&path, "%s/" SAVED_FILE, f->state_dir) < 0 ||
	    asprintf(&tmp, "%s/." SAVED_FILE ".tmp", f->state_dir) < 0)
		return -ENOMEM;
	out = fopen(tmp, "we");
	if (!out)
		return -errno;
	fprintf(out, "ipv4 %d\nipv6 %d\n", f->ipv4, f->ipv6);
	for (size_t i = 0; i < f->n_ra; i++)
		fprintf(out, "accept_ra %s\n", f->ra[i]);
	if (fflush(out) != 0 || fsync(fileno(out)) < 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		(void)unlink(tmp);
	return r;
}

int forwarding_enable(struct forwarding *forwarding)
{
	struct forwarding *f = forwarding;
	int r;

	if (!f->enabled) {
		r = collect_accept_ra(f);
		if (r < 0)
			return r;
		r = save(f);
		if (r < 0)
			return r;
		f->enabled = true;
	}
	/* RAs stay accepted before the interfaces start forwarding. */
	for (size_t i = 0; i < f->n_ra; i++) {
		char path[sizeof(IPV6_CONF) + 256 + 16];

		accept_ra_path(f->ra[i], path, sizeof(path));
		r = write_sysctl_int(path, 2);
		if (r < 0 && r != -ENOENT)
			return r;
	}
	r = write_sysctl_int(IPV4_FORWARD, 1);
	if (r < 0)
		return r;
	if (f->ipv6 >= 0)
		r = write_sysctl_int(IPV6_FORWARD, 1);
	return r;
}

int forwarding_restore(struct forwarding *forwarding)
{
	struct forwarding *f = forwarding;
	_cleanup_free_ char *path = NULL;
	int r = 0, k;

	if (!f || !f->enabled)
		return 0;
	/* Forwarding first, so no interface ignores an RA in between. */
	k = write_sysctl_int(IPV4_FORWARD, f->ipv4);
	if (k < 0 && r == 0)
		r = k;
	if (f->ipv6 >= 0) {
		k = write_sysctl_int(IPV6_FORWARD, f->ipv6);
		if (k < 0 && r == 0)
			r = k;
	}
	for (size_t i = 0; i < f->n_ra; i++) {
		char ra_path[sizeof(IPV6_CONF) + 256 + 16];

		accept_ra_path(f->ra[i], ra_path, sizeof(ra_path));
		k = write_sysctl_int(ra_path, 1);
		if (k < 0 && k != -ENOENT && r == 0)
			r = k;
	}
	if (r < 0)
		return r; /* the saved file stays: the next start tries again */
	if (asprintf(&path, "%s/" SAVED_FILE, f->state_dir) < 0)
		return -ENOMEM;
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	f->enabled = false;
	return 0;
}

void forwarding_free(struct forwarding *forwarding)
{
	if (!forwarding)
		return;
	free(forwarding->state_dir);
	free(forwarding);
}
