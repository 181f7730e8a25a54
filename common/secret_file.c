/* SPDX-License-Identifier: MIT */
#include "secret_file.h"

#include <unistd.h>

const char *secret_file_refusal(const struct stat *st)
{
	if (!S_ISREG(st->st_mode))
		return "not a regular file";
	if (st->st_uid != 0 && st->st_uid != geteuid())
		return "a secret must be owned by root or by the user reading it";
	if (st->st_mode & (S_IRWXG | S_IRWXO))
		return "a secret must not be accessible to group or others (chmod 0600)";
	return NULL;
}

void secret_file_describe(const struct stat *st, char *buffer, size_t size)
{
	snprintf(buffer, size, "owner uid %u, mode %04o", (unsigned)st->st_uid,
		 (unsigned)(st->st_mode & 07777));
}
