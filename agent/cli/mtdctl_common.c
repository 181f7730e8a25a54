/* SPDX-License-Identifier: MIT */
/* The bottom of mtdctl: messages and exit codes, and the time format every
 * command file shares. It calls no other file of agent/cli/. */
#include "mtdctl.h"

#include <stdarg.h>
#include <stdlib.h>

int mtdctl_fail(const char *fmt, ...)
{
	va_list ap;

	fputs("mtdctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_FAILURE;
}

int mtdctl_usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("mtdctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see mtdctl --help)\n", stderr);
	return EXIT_USAGE;
}

void mtdctl_format_usec(uint64_t usec, char *buffer, size_t size)
{
	static const struct {
		const char *suffix;
		uint64_t usec;
	} units[] = {
	    {"d", 86400000000ull}, {"h", 3600000000ull}, {"min", 60000000ull},
	    {"s", 1000000ull},	   {"ms", 1000ull},
	};
	size_t used = 0;

	buffer[0] = '\0';
	for (size_t i = 0; i < ELEMENTSOF(units) && used < size; i++) {
		uint64_t n = usec / units[i].usec;
		if (n == 0)
			continue;
		used += (size_t)snprintf(buffer + used, size - used, "%s%llu%s", used ? " " : "",
					 (unsigned long long)n, units[i].suffix);
		usec %= units[i].usec;
		/* Seconds are precise enough once there are minutes. */
		if (units[i].usec >= 60000000ull && usec < 60000000ull) {
			n = usec / 1000000ull;
			if (n && used < size)
				used += (size_t)snprintf(buffer + used, size - used, " %llus",
							 (unsigned long long)n);
			return;
		}
	}
	if (!buffer[0])
		snprintf(buffer, size, "0");
}
