/* SPDX-License-Identifier: MIT */
/* The bottom of mtdctl: messages and exit codes, and the time format every
 * command file shares. It calls no other file of agent/cli/. */
#include "mtdctl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"

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

/* --at: "@UNIX", "UNIX" (seconds), or "YYYY-MM-DD[T ]HH:MM:SS[Z]" in UTC. */
int mtdctl_parse_time(const char *s, uint64_t *ret_usec)
{
	struct tm tm = {0};
	const char *end;
	char *num_end;
	unsigned long long v;
	time_t t;

	if (s[0] == '@')
		s++;
	if (s[0] >= '0' && s[0] <= '9' && !strchr(s, '-')) {
		errno = 0;
		v = strtoull(s, &num_end, 10);
		if (errno || *num_end || v > UINT64_MAX / USEC_PER_SEC)
			return -EINVAL;
		*ret_usec = v * USEC_PER_SEC;
		return 0;
	}
	end = strptime(s, "%Y-%m-%d", &tm);
	if (!end || (*end != 'T' && *end != ' '))
		return -EINVAL;
	end = strptime(end + 1, "%H:%M:%S", &tm);
	if (!end || (*end && !(end[0] == 'Z' && end[1] == '\0')))
		return -EINVAL;
	t = timegm(&tm);
	if (t < 0)
		return -EINVAL;
	*ret_usec = (uint64_t)t * USEC_PER_SEC;
	return 0;
}

void mtdctl_format_utc(uint64_t usec, char *buffer, size_t size)
{
	time_t t = (time_t)(usec / USEC_PER_SEC);
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(buffer, size, "%Y-%m-%d %H:%M:%S UTC", &tm))
		snprintf(buffer, size, "?");
}
