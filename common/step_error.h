/* SPDX-License-Identifier: MIT */
/* One error type for every module that reports which step failed and why:
 * the launch steps of an envelope, an instance link, a rotator transaction, a
 * service that cannot run. Bounded (it lives in structs and crosses from the
 * child to the agent over a socket), filled only through step_error_set(), so
 * no caller sizes a buffer. */
#pragma once

#include <stddef.h>

/* Room for a rotator object: "service NAME: public ports in map svc4_0" with
 * a name of ROTATOR_MAX_NAME (64) and the element the kernel refused. */
#define STEP_ERROR_STEP_MAX 160
#define STEP_ERROR_DETAIL_MAX 320
/* "step: detail: strerror" fits */
#define STEP_ERROR_FORMAT_MAX (STEP_ERROR_STEP_MAX + STEP_ERROR_DETAIL_MAX + 96)

struct step_error {
	char step[STEP_ERROR_STEP_MAX];	    /* what was being done: "mount overlay", "map svc4" */
	int err;			    /* positive errno, 0 when none */
	char detail[STEP_ERROR_DETAIL_MAX]; /* on what, or why: a path, the kernel's ack */
};

/* Fills e (when not NULL) and returns -err, so a failing step reads
 * `return step_error_set(e, "pivot_root", errno, "%s", path);`. err may be
 * given positive or negative. Truncates, never overflows. */
int step_error_set(struct step_error *e, const char *step, int err, const char *detail_format, ...)
    __attribute__((format(printf, 4, 5)));

/* Adds context in front of the detail ("service web: " + detail). */
void step_error_prefix(struct step_error *e, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

static inline void step_error_clear(struct step_error *e)
{
	if (e) {
		e->step[0] = '\0';
		e->err = 0;
		e->detail[0] = '\0';
	}
}

static inline int step_error_failed(const struct step_error *e)
{
	return e->step[0] != '\0' || e->err != 0;
}

/* "step: detail: strerror(err)" (parts that are empty left out) into buf of
 * STEP_ERROR_FORMAT_MAX or any size; returns buf. */
const char *step_error_format(const struct step_error *e, char *buf, size_t size);

/* The failure as one line: e formatted when a step was set, else r's errno
 * text (a call that failed before any step, e.g. -ENOMEM; e may be NULL). */
const char *step_error_reason(const struct step_error *e, int r, char *buf, size_t size);
