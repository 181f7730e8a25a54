// SPDX-License-Identifier: MIT
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "step_error.h"

static void copy_bounded(char *dst, size_t size, const char *src)
{
	size_t n = strnlen(src, size - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

int step_error_set(struct step_error *e, const char *step, int err, const char *detail_format, ...)
{
	int positive = err < 0 ? -err : err;

	if (e) {
		va_list ap;

		copy_bounded(e->step, sizeof(e->step), step ? step : "");
		e->err = positive;
		va_start(ap, detail_format);
		vsnprintf(e->detail, sizeof(e->detail), detail_format, ap);
		va_end(ap);
	}
	return -positive;
}

void step_error_prefix(struct step_error *e, const char *format, ...)
{
	char prefix[STEP_ERROR_DETAIL_MAX];
	size_t n, kept;
	va_list ap;

	if (!e)
		return;
	va_start(ap, format);
	vsnprintf(prefix, sizeof(prefix), format, ap);
	va_end(ap);
	n = strlen(prefix);
	kept = strnlen(e->detail, sizeof(e->detail) - 1);
	if (n + kept > sizeof(e->detail) - 1)
		kept = sizeof(e->detail) - 1 - n; /* the tail of the old detail goes */
	memmove(e->detail + n, e->detail, kept);
	memcpy(e->detail, prefix, n);
	e->detail[n + kept] = '\0';
}

const char *step_error_reason(const struct step_error *e, int r, char *buf, size_t size)
{
	if (e && step_error_failed(e))
		return step_error_format(e, buf, size);
	snprintf(buf, size, "%s", strerror(r < 0 ? -r : r));
	return buf;
}

const char *step_error_format(const struct step_error *e, char *buf, size_t size)
{
	const char *reason = e->err ? strerror(e->err) : "";
	const char *sep1 = e->step[0] && (e->detail[0] || reason[0]) ? ": " : "";
	const char *sep2 = e->detail[0] && reason[0] ? ": " : "";

	snprintf(buf, size, "%s%s%s%s%s", e->step, sep1, e->detail, sep2, reason);
	return buf;
}
