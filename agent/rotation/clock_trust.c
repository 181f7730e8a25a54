/* SPDX-License-Identifier: MIT */
/* Whether the wall clock can be trusted: the kernel's synchronisation state
 * (adjtimex(2), a read with modes 0) against a bound on its estimated error.
 * Every port is computed from the wall clock, so an agent whose clock is off
 * by d serves each epoch d early or late (docs/schedule.md, "Clock drift");
 * the agent cannot correct it, but it says so: audited when the state
 * changes, shown in `mtdctl status`. */
#include "rotation.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timex.h>
#include <unistd.h>

#include "clock.h"
#include "macro.h"

#define STATE_FILE_MAX 256

const char *clock_trust_state_name(enum clock_trust_state state)
{
	switch (state) {
	case CLOCK_TRUSTED:
		return "trusted";
	case CLOCK_UNSYNCHRONISED:
		return "unsynchronised";
	case CLOCK_ERROR_ABOVE_BOUND:
		return "error-above-bound";
	case CLOCK_STATE_UNREADABLE:
		return "unreadable";
	}
	return "?";
}

static uint64_t nonnegative(int64_t v)
{
	return v < 0 ? 0 : (uint64_t)v;
}

enum clock_trust_state clock_trust_classify(const struct clock_sync *sync, uint64_t max_error_usec,
					    char *reason, size_t size)
{
	char est[POLICY_TIMESPAN_MAX], max[POLICY_TIMESPAN_MAX], bound[POLICY_TIMESPAN_MAX];

	policy_format_timespan(est, sizeof(est), nonnegative(sync->esterror_usec));
	policy_format_timespan(max, sizeof(max), nonnegative(sync->maxerror_usec));
	policy_format_timespan(bound, sizeof(bound), max_error_usec);
	if (sync->time_error || (sync->status & STA_UNSYNC)) {
		snprintf(reason, size,
			 "the kernel's clock is not synchronised (%s; maximum error %s)",
			 (sync->status & STA_UNSYNC) ? "STA_UNSYNC" : "TIME_ERROR", max);
		return CLOCK_UNSYNCHRONISED;
	}
	if (nonnegative(sync->esterror_usec) > max_error_usec) {
		snprintf(reason, size, "estimated error %s above the bound of %s", est, bound);
		return CLOCK_ERROR_ABOVE_BOUND;
	}
	snprintf(reason, size, "synchronised, estimated error %s within the bound of %s", est,
		 bound);
	return CLOCK_TRUSTED;
}

/* One integer of the state file, then white space or the end. */
static int parse_field(const char **p, int64_t min, int64_t max, int64_t *ret)
{
	char *end;
	long long v;

	while (**p == ' ' || **p == '\t')
		(*p)++;
	if (!(**p >= '0' && **p <= '9') && **p != '-')
		return -EINVAL;
	errno = 0;
	v = strtoll(*p, &end, 10);
	if (errno || end == *p || v < min || v > max)
		return -EINVAL;
	if (*end && *end != ' ' && *end != '\t' && *end != '\n')
		return -EINVAL;
	*p = end;
	*ret = v;
	return 0;
}

static int read_state_file(const char *path, struct clock_sync *ret_sync,
			   struct step_error *ret_error)
{
	_cleanup_close_ int fd = -1;
	char text[STATE_FILE_MAX + 1];
	const char *p = text;
	int64_t status, est, max;
	ssize_t n;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return step_error_set(ret_error, "clock state file", errno, "%s", path);
	n = read(fd, text, STATE_FILE_MAX + 1);
	if (n < 0)
		return step_error_set(ret_error, "clock state file", errno, "%s", path);
	if (n > STATE_FILE_MAX)
		return step_error_set(ret_error, "clock state file", EFBIG,
				      "%s: more than %d bytes", path, STATE_FILE_MAX);
	text[n] = 0;
	if (parse_field(&p, INT32_MIN, INT32_MAX, &status) < 0 ||
	    parse_field(&p, 0, INT64_MAX, &est) < 0 || parse_field(&p, 0, INT64_MAX, &max) < 0)
		return step_error_set(ret_error, "clock state file", EINVAL,
				      "%s: not one line 'STATUS ESTERROR MAXERROR' (integers, "
				      "errors in microseconds)",
				      path);
	while (*p == ' ' || *p == '\t' || *p == '\n')
		p++;
	if (*p)
		return step_error_set(ret_error, "clock state file", EINVAL,
				      "%s: more than 'STATUS ESTERROR MAXERROR'", path);
	*ret_sync = (struct clock_sync){
	    .status = (int)status,
	    .esterror_usec = est,
	    .maxerror_usec = max,
	};
	return 0;
}

int clock_trust_read(const char *state_file, struct clock_sync *ret_sync,
		     struct step_error *ret_error)
{
	struct timex tx = {0};
	int r;

	if (state_file)
		return read_state_file(state_file, ret_sync, ret_error);
	r = adjtimex(&tx);
	if (r < 0)
		return step_error_set(ret_error, "adjtimex", errno, "reading the clock's state");
	*ret_sync = (struct clock_sync){
	    .status = tx.status,
	    .time_error = r == TIME_ERROR,
	    .esterror_usec = tx.esterror,
	    .maxerror_usec = tx.maxerror,
	};
	return 0;
}

void clock_trust_init(struct clock_trust *trust, uint64_t max_error_usec, const char *state_file)
{
	*trust = (struct clock_trust){
	    .max_error_usec = max_error_usec,
	    .state_file = state_file,
	    .state = CLOCK_TRUSTED,
	};
}

bool clock_trust_check(struct clock_trust *trust)
{
	struct step_error error = {0};
	enum clock_trust_state state;
	struct clock_sync sync = {0};
	int r;

	r = clock_trust_read(trust->state_file, &sync, &error);
	trust->checked_usec = now(CLOCK_REALTIME);
	trust->checks++;
	if (r < 0) {
		char text[STEP_ERROR_FORMAT_MAX];

		state = CLOCK_STATE_UNREADABLE;
		step_error_reason(&error, r, text, sizeof(text));
		snprintf(trust->reason, sizeof(trust->reason), "cannot read the clock's state: %s",
			 text);
	} else
		state = clock_trust_classify(&sync, trust->max_error_usec, trust->reason,
					     sizeof(trust->reason));
	trust->sync = sync;
	if (state == trust->state)
		return false;
	trust->state = state;
	trust->since_usec = trust->checked_usec;
	trust->changes++;
	return true;
}

json_t *clock_trust_fields(const struct clock_trust *trust)
{
	return json_pack("{s:s, s:b, s:s, s:i, s:I, s:I, s:I, s:s}", "state",
			 clock_trust_state_name(trust->state), "trusted",
			 trust->state == CLOCK_TRUSTED, "reason", trust->reason, "status",
			 trust->sync.status, "esterror_usec", (json_int_t)trust->sync.esterror_usec,
			 "maxerror_usec", (json_int_t)trust->sync.maxerror_usec, "max_error_usec",
			 (json_int_t)trust->max_error_usec, "source",
			 trust->state_file ? "file" : "adjtimex");
}

json_t *clock_trust_status(const struct clock_trust *trust)
{
	json_t *o = clock_trust_fields(trust);

	if (!o)
		return NULL;
	if (json_object_set_new(o, "checked_usec", json_integer((json_int_t)trust->checked_usec)) <
		0 ||
	    json_object_set_new(o, "since_usec", json_integer((json_int_t)trust->since_usec)) < 0 ||
	    json_object_set_new(o, "checks", json_integer((json_int_t)trust->checks)) < 0 ||
	    json_object_set_new(o, "changes", json_integer((json_int_t)trust->changes)) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}
