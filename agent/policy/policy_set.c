/* SPDX-License-Identifier: MIT */
/* A policy set: every *.policy file of some directories (or files given
 * directly), parsed in name order and then checked as a whole. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy_internal.h"

struct file_list {
	char **paths;
	size_t count;
};

static void file_list_clear(struct file_list *l)
{
	for (size_t i = 0; i < l->count; i++)
		free(l->paths[i]);
	free(l->paths);
}

static int file_list_add(struct file_list *l, char *path)
{
	char **n = realloc(l->paths, (l->count + 1) * sizeof(char *));
	if (!n) {
		free(path);
		return -ENOMEM;
	}
	l->paths = n;
	n[l->count++] = path;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_policy_name(const char *name)
{
	size_t n = strlen(name);
	return name[0] != '.' && n > 7 && streq(name + n - 7, ".policy");
}

/* Adds dir's *.policy entries, sorted by name. */
static int list_dir(const char *dir, struct file_list *l, struct policy_errors *errors)
{
	DIR *d;
	int fd, r = 0;
	size_t first = l->count, dlen = strlen(dir);
	const char *sep = dlen > 0 && dir[dlen - 1] == '/' ? "" : "/";

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return policy_errors_add(errors, dir, 0, NULL, NULL, "cannot open directory: %s",
					 strerror(errno));
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -ENOMEM;
	}
	for (;;) {
		struct dirent *de;
		char *path;

		errno = 0;
		de = readdir(d);
		if (!de) {
			if (errno)
				r = policy_errors_add(errors, dir, 0, NULL, NULL,
						      "cannot read directory: %s", strerror(errno));
			break;
		}
		if (!is_policy_name(de->d_name))
			continue;
		if (asprintf(&path, "%s%s%s", dir, sep, de->d_name) < 0) {
			r = -ENOMEM;
			break;
		}
		r = file_list_add(l, path);
		if (r < 0)
			break;
	}
	closedir(d);
	if (l->count > first)
		qsort(l->paths + first, l->count - first, sizeof(char *), cmp_str);
	return r;
}

static bool ranges_overlap(const struct port_range *a, const struct port_range *b)
{
	return a->first <= b->last && b->first <= a->last;
}

/* Set-wide checks; errors go on the later file (load order). */
static int check_set(struct policy **ps, size_t n, struct policy_errors *errors)
{
	for (size_t i = 0; i < n; i++) {
		struct policy *b = ps[i];
		for (size_t j = 0; j < i; j++) {
			const struct policy *a = ps[j];
			int r = 0;

			if (streq(a->name, b->name))
				r = policy_errors_add(
				    errors, b->path, policy_key_line(b, "Service", "Name"),
				    "Service", "Name",
				    "duplicate service name \"%s\" (also in %s:%u)", b->name,
				    a->path, policy_key_line(a, "Service", "Name"));
			else if (a->has_public_ports && b->has_public_ports &&
				 ranges_overlap(&a->public_ports, &b->public_ports))
				r = policy_errors_add(
				    errors, b->path, policy_key_line(b, "Rotation", "PublicPorts"),
				    "Rotation", "PublicPorts",
				    "%u-%u of service \"%s\" overlaps PublicPorts=%u-%u of "
				    "service \"%s\" (%s:%u)",
				    b->public_ports.first, b->public_ports.last, b->name,
				    a->public_ports.first, a->public_ports.last, a->name, a->path,
				    policy_key_line(a, "Rotation", "PublicPorts"));
			if (r < 0)
				return r;
			if (streq(a->name, b->name))
				continue;
			for (size_t x = 0; x < b->address_pool_count; x++)
				for (size_t y = 0; y < a->address_pool_count; y++) {
					char cb[POLICY_CIDR_MAX], ca[POLICY_CIDR_MAX];
					if (!policy_cidr_overlap(&b->address_pools[x],
								 &a->address_pools[y]))
						continue;
					r = policy_errors_add(
					    errors, b->path,
					    policy_key_line(b, "Rotation", "AddressPool"),
					    "Rotation", "AddressPool",
					    "%s of service \"%s\" overlaps AddressPool=%s of "
					    "service \"%s\" (%s:%u)",
					    policy_format_cidr(cb, sizeof(cb),
							       &b->address_pools[x]),
					    b->name,
					    policy_format_cidr(ca, sizeof(ca),
							       &a->address_pools[y]),
					    a->name, a->path,
					    policy_key_line(a, "Rotation", "AddressPool"));
					if (r < 0)
						return r;
				}
		}
	}
	return 0;
}

static int cmp_policy_name(const void *a, const void *b)
{
	return strcmp((*(struct policy *const *)a)->name, (*(struct policy *const *)b)->name);
}

static void free_policies(struct policy **ps, size_t n)
{
	for (size_t i = 0; i < n; i++)
		policy_free(ps[i]);
	free(ps);
}

int policy_set_load(const char *const *paths, size_t n_paths, struct policy_set **ret_set,
		    struct policy_errors *ret_errors)
{
	struct policy_errors errors = {0};
	struct file_list files = {0};
	struct policy **ps = NULL;
	struct policy_set *set;
	size_t n = 0;
	int r = 0;

	for (size_t i = 0; i < n_paths && r >= 0; i++) {
		struct stat st;
		char *copy;

		if (stat(paths[i], &st) < 0)
			r = policy_errors_add(&errors, paths[i], 0, NULL, NULL, "cannot access: %s",
					      strerror(errno));
		else if (S_ISDIR(st.st_mode))
			r = list_dir(paths[i], &files, &errors);
		else if (!(copy = strdup(paths[i])))
			r = -ENOMEM;
		else
			r = file_list_add(&files, copy);
	}
	if (r >= 0 && files.count) {
		ps = calloc(files.count, sizeof(*ps));
		if (!ps)
			r = -ENOMEM;
	}
	for (size_t i = 0; i < files.count && r >= 0; i++) {
		_cleanup_free_ char *text = NULL;
		size_t len = 0;

		r = policy_read_file(files.paths[i], false, &text, &len, &errors);
		if (r < 0 || !text)
			continue;
		r = policy_parse_buffer(files.paths[i], text, len, &ps[n], &errors);
		if (r == 0)
			n++;
		else if (r == -EINVAL)
			r = 0;
	}
	file_list_clear(&files);
	if (r >= 0)
		r = check_set(ps, n, &errors);
	if (r >= 0 && errors.count)
		r = -EINVAL;
	if (r < 0) {
		free_policies(ps, n);
		*ret_errors = errors;
		return r;
	}

	set = calloc(1, sizeof(*set));
	if (!set) {
		free_policies(ps, n);
		*ret_errors = errors;
		return -ENOMEM;
	}
	if (n)
		qsort(ps, n, sizeof(*ps), cmp_policy_name);
	set->policies = ps;
	set->count = n;
	*ret_set = set;
	*ret_errors = errors;
	return 0;
}

const struct policy *policy_set_find(const struct policy_set *set, const char *name)
{
	size_t lo = 0, hi = set ? set->count : 0;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, set->policies[mid]->name);
		if (c == 0)
			return set->policies[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

void policy_set_free(struct policy_set *set)
{
	if (!set)
		return;
	free_policies(set->policies, set->count);
	free(set);
}
