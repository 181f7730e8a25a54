/* SPDX-License-Identifier: MIT */
/* control-denied records on the event loop (control.h). */
#include "control.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "control_internal.h"
#include "log.h"
#include "macro.h"
#include "clock.h"

struct control_audit {
	struct control_denials *denials;
	sd_event_source *timer; /* CLOCK_MONOTONIC, at the next window end */
	control_audit_fn audit;
	void *userdata;
};

static void arm(struct control_audit *ca)
{
	uint64_t next = control_denials_next_usec(ca->denials);

	if (next == UINT64_MAX) {
		(void)sd_event_source_set_enabled(ca->timer, SD_EVENT_OFF);
		return;
	}
	(void)sd_event_source_set_time(ca->timer, next);
	(void)sd_event_source_set_enabled(ca->timer, SD_EVENT_ONESHOT);
}

/* Every window over by now_usec becomes one record. */
static void flush_due(struct control_audit *ca, uint64_t now_usec)
{
	json_t *fields = NULL;

	while (control_denials_pop_due(ca->denials, now_usec, &fields) > 0) {
		json_t *uid = json_object_get(fields, "uid");

		log_warning("control: refused %lld more request(s) of %s%lld in the last %us",
			    (long long)json_integer_value(json_object_get(fields, "count")),
			    json_is_integer(uid) ? "uid " : "other uids",
			    json_is_integer(uid) ? (long long)json_integer_value(uid) : 0LL,
			    CONTROL_DENIALS_WINDOW_USEC / 1000000u);
		ca->audit(fields, ca->userdata);
	}
}

static int on_timer(sd_event_source *source, uint64_t usec, void *userdata)
{
	struct control_audit *ca = userdata;

	flush_due(ca, now(CLOCK_MONOTONIC));
	arm(ca);
	return 0;
}

/* The first refusal of a uid in a window is audited (and logged) now; the
 * rest of the window is one record when it ends. */
void control_audit_refusal(struct control_audit *ca, const struct control_peer *peer,
			   enum control_refusal kind, const char *command, const char *reason)
{
	json_t *fields = NULL;

	if (control_denials_add(ca->denials, peer->uid, peer->pid, control_refusal_name(kind),
				command, reason, now(CLOCK_MONOTONIC), &fields) <= 0)
		return;
	log_warning("control: refused uid %u pid %d: %s (more refusals of this uid within %us "
		    "are counted in one record)",
		    (unsigned)peer->uid, (int)peer->pid, reason,
		    CONTROL_DENIALS_WINDOW_USEC / 1000000u);
	ca->audit(fields, ca->userdata);
	arm(ca);
}

int control_audit_new(sd_event *event, control_audit_fn audit, void *userdata,
		      struct control_audit **ret)
{
	struct control_audit *ca = calloc(1, sizeof(*ca));
	int r;

	if (!ca)
		return -ENOMEM;
	ca->audit = audit;
	ca->userdata = userdata;
	r = control_denials_new(CONTROL_DENIALS_WINDOW_USEC, &ca->denials);
	if (r >= 0)
		r = sd_event_add_time(event, &ca->timer, CLOCK_MONOTONIC, UINT64_MAX, 0, on_timer,
				      ca);
	if (r < 0) {
		control_audit_free(ca);
		return r;
	}
	(void)sd_event_source_set_enabled(ca->timer, SD_EVENT_OFF);
	*ret = ca;
	return 0;
}

void control_audit_flush(struct control_audit *ca)
{
	if (!ca)
		return;
	flush_due(ca, UINT64_MAX);
	(void)sd_event_source_set_enabled(ca->timer, SD_EVENT_OFF);
}

void control_audit_free(struct control_audit *ca)
{
	if (!ca)
		return;
	sd_event_source_disable_unref(ca->timer);
	control_denials_free(ca->denials);
	free(ca);
}
