/* SPDX-License-Identifier: MIT */
/* The bounded queue of audit records that happened while the log could not
 * be written (disk full, a failed write or fdatasync). Records keep their
 * order and the time they happened; those that do not fit are counted, by
 * type and time range, and become one audit-records-lost record at the point
 * of the order where they were lost. See docs/audit-log.md. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "audit_internal.h"
#include "macro.h"

/* A record's weight against max_bytes: its fields as they will be written
 * plus what every record carries. */
#define RECORD_OVERHEAD 320

int audit_queue_init(struct audit_queue *q, size_t max_records, size_t max_bytes)
{
	*q = (struct audit_queue){};
	if (max_records < 2)
		max_records = 2; /* room for a loss marker and a record */
	q->items = calloc(max_records, sizeof(*q->items));
	if (!q->items)
		return -ENOMEM;
	q->max_records = max_records;
	q->max_bytes = max_bytes;
	return 0;
}

void audit_loss_done(struct audit_loss *loss)
{
	json_decref(loss->types);
	*loss = (struct audit_loss){};
}

static void pending_done(struct audit_pending *p)
{
	free(p->type);
	json_decref(p->fields);
	audit_loss_done(&p->loss);
	*p = (struct audit_pending){};
}

void audit_queue_done(struct audit_queue *q)
{
	while (q->count > 0)
		audit_queue_pop(q);
	audit_loss_done(&q->gap);
	free(q->items);
	*q = (struct audit_queue){};
}

static int loss_add(struct audit_loss *loss, const char *type, uint64_t realtime_usec,
		    uint64_t monotonic_usec, int error)
{
	json_t *n;

	if (!loss->types) {
		loss->types = json_object();
		if (!loss->types)
			return -ENOMEM;
	}
	if (!json_object_get(loss->types, type) &&
	    json_object_size(loss->types) >= AUDIT_LOSS_TYPES_MAX)
		type = "other";
	n = json_object_get(loss->types, type);
	if (json_object_set_new(loss->types, type,
				json_integer(n ? json_integer_value(n) + 1 : 1)) < 0)
		return -ENOMEM;
	if (loss->count == 0)
		loss->first_realtime_usec = realtime_usec;
	loss->count++;
	loss->last_realtime_usec = realtime_usec;
	loss->last_monotonic_usec = monotonic_usec;
	loss->error = error;
	return 0;
}

static struct audit_pending *slot(struct audit_queue *q, size_t i)
{
	return &q->items[(q->head + i) % q->max_records];
}

int audit_queue_push(struct audit_queue *q, const char *type, json_t *fields,
		     uint64_t realtime_usec, uint64_t monotonic_usec, int error)
{
	struct audit_pending p = {};
	size_t need = q->gap.count > 0 ? 2 : 1, text;
	int r;

	text = fields ? json_dumpb(fields, NULL, 0, JSON_COMPACT | JSON_ENSURE_ASCII) : 2;
	p.bytes = strlen(type) + text + RECORD_OVERHEAD;
	if (q->count + need > q->max_records || q->bytes + p.bytes > q->max_bytes) {
		q->lost_total++;
		r = loss_add(&q->gap, type, realtime_usec, monotonic_usec, error);
		return r < 0 ? r : -ENOBUFS;
	}
	p.type = strdup(type);
	p.fields = fields ? json_deep_copy(fields) : json_object();
	if (!p.type || !p.fields) {
		pending_done(&p);
		return -ENOMEM;
	}
	p.realtime_usec = realtime_usec;
	p.monotonic_usec = monotonic_usec;
	if (q->gap.count > 0) {
		/* The records lost before this one get their place in the order. */
		struct audit_pending *m = slot(q, q->count++);

		*m = (struct audit_pending){
		    .realtime_usec = q->gap.last_realtime_usec,
		    .monotonic_usec = q->gap.last_monotonic_usec,
		    .loss = q->gap,
		};
		q->gap = (struct audit_loss){};
	}
	q->bytes += p.bytes;
	q->queued_total++;
	*slot(q, q->count++) = p;
	return 0;
}

struct audit_pending *audit_queue_head(struct audit_queue *q)
{
	return q->count > 0 ? slot(q, 0) : NULL;
}

void audit_queue_pop(struct audit_queue *q)
{
	struct audit_pending *p = audit_queue_head(q);

	if (!p)
		return;
	q->bytes -= p->bytes;
	pending_done(p);
	q->head = (q->head + 1) % q->max_records;
	q->count--;
}

void audit_queue_take_gap(struct audit_queue *q, struct audit_loss *ret_loss)
{
	*ret_loss = q->gap;
	q->gap = (struct audit_loss){};
}

bool audit_queue_empty(const struct audit_queue *q)
{
	return q->count == 0 && q->gap.count == 0;
}

uint64_t audit_queue_lost_pending(const struct audit_queue *q)
{
	uint64_t n = q->gap.count;

	for (size_t i = 0; i < q->count; i++) {
		const struct audit_pending *p = &q->items[(q->head + i) % q->max_records];

		if (!p->type)
			n += p->loss.count;
	}
	return n;
}

json_t *audit_loss_fields(const struct audit_loss *loss, const struct audit_queue *q)
{
	return json_pack("{s:I, s:I, s:I, s:o, s:s, s:I, s:I}", "count", (json_int_t)loss->count,
			 "first_realtime_usec", (json_int_t)loss->first_realtime_usec,
			 "last_realtime_usec", (json_int_t)loss->last_realtime_usec, "types",
			 loss->types ? json_incref(loss->types) : json_object(), "error",
			 strerror(loss->error > 0 ? loss->error : -loss->error), "queue_records",
			 (json_int_t)q->max_records, "queue_bytes", (json_int_t)q->max_bytes);
}
