/* SPDX-License-Identifier: MIT */
/* The knock receiver (rotation_internal.h): one logged datagram, checked in
 * the order of docs/schedule.md, "Knock packets", and admitted. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "knock.h"
#include "macro.h"
#include "rotation_internal.h"
#include "rotator.h"

/* Which candidate service has the client and accepts its MAC: the MAC binds
 * the service and host id, so at most one does unless two services share
 * both a name and a key with the client. */
static enum knock_guard_reason find_sender(const struct knock_receiver_ops *ops,
					   const struct knock_service *const *services, size_t n,
					   const struct knock_datagram *d, const char *client,
					   const struct knock_service **ret_service,
					   struct knock_client *ret_client)
{
	enum knock_guard_reason reason = KNOCK_GUARD_UNKNOWN_CLIENT;

	for (size_t i = 0; i < n; i++) {
		struct knock_client c = {0};
		struct knock_key key;

		if (ops->client(ops->userdata, services[i], client, &c) < 0)
			continue;
		key = (struct knock_key){.key = c.key,
					 .key_len = c.key_len,
					 .service = services[i]->name,
					 .host_id = services[i]->host_id};
		if (knock_verify(d->payload, d->len, &key) == 0) {
			*ret_service = services[i];
			*ret_client = c;
			return KNOCK_GUARD_ADMIT;
		}
		reason = KNOCK_GUARD_BAD_MAC;
		*ret_service = services[i];
	}
	return reason;
}

static enum knock_guard_reason check(const struct knock_receiver_ops *ops,
				     const struct knock_datagram *d, uint64_t real_usec,
				     uint64_t mono_usec, struct knock_outcome *out)
{
	const struct knock_service *services[KNOCK_RECEIVER_MAX_SERVICES];
	const struct knock_service *sender = NULL;
	struct knock_client client = {0};
	enum knock_guard_reason reason = KNOCK_GUARD_ADMIT;
	const char *why = NULL;
	struct knock k;
	size_t n;
	int r;

	n = ops->services_at(ops->userdata, d->port, services, ELEMENTSOF(services));
	if (n == 0)
		return KNOCK_GUARD_WRONG_PORT;
	out->service = services[0];
	/* every service at the port charges the source: no MAC work beyond
	 * any of their rates */
	for (size_t i = 0; i < n; i++)
		if (knock_guard_rate(services[i]->guard, &d->source, mono_usec) !=
		    KNOCK_GUARD_ADMIT) {
			out->service = services[i];
			reason = KNOCK_GUARD_RATE;
		}
	if (reason != KNOCK_GUARD_ADMIT)
		return reason;
	if (knock_parse(d->payload, d->len, &k, &why) < 0)
		return KNOCK_GUARD_MALFORMED;
	snprintf(out->client, sizeof(out->client), "%s", k.client);
	reason = find_sender(ops, services, n, d, k.client, &sender, &client);
	if (sender)
		out->service = sender;
	if (reason != KNOCK_GUARD_ADMIT)
		return reason;
	reason = knock_guard_decide(sender->guard, &k, &d->source, d->port, client.epochs,
				    client.n_epochs, real_usec, &out->admission);
	if (reason != KNOCK_GUARD_ADMIT)
		return reason;
	r = ops->admit(ops->userdata, sender, k.client, &d->source, out->admission.door,
		       out->admission.until_usec, &out->error);
	if (r < 0) {
		if (!step_error_failed(&out->error))
			step_error_set(&out->error, "admit", -r, "%s", k.client);
		return KNOCK_GUARD_FAILED;
	}
	return KNOCK_GUARD_ADMIT;
}

void knock_receiver_handle(const struct knock_receiver_ops *ops, const struct knock_datagram *d,
			   uint64_t real_usec, uint64_t mono_usec, struct knock_outcome *ret)
{
	memset(ret, 0, sizeof(*ret));
	step_error_clear(&ret->error);
	ret->reason = check(ops, d, real_usec, mono_usec, ret);
	if (ret->service)
		ret->summarise = knock_guard_count(ret->service->guard, ret->reason, mono_usec);
}
