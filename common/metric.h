/* SPDX-License-Identifier: MIT */
/* Figures for Prometheus (docs/metrics.md): a histogram of durations with
 * fixed buckets, counts under up to two label values, and the text
 * exposition format 0.0.4 they are written in. Pure: no clock, no I/O but
 * the memory stream the text is built in. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define METRIC_BOUNDS_MAX 16

/* Durations in microseconds, counted per bucket; bounds ascending, the
 * last bucket (+Inf) implied. Written cumulative, in seconds. */
struct metric_histogram {
	uint64_t bounds_usec[METRIC_BOUNDS_MAX];
	size_t n_bounds;
	uint64_t counts[METRIC_BOUNDS_MAX + 1]; /* counts[n_bounds]: above the last bound */
	uint64_t count;
	uint64_t sum_usec;
};

/* bounds ascending, at most METRIC_BOUNDS_MAX (more are ignored). */
void metric_histogram_init(struct metric_histogram *h, const uint64_t *bounds_usec, size_t n);
void metric_histogram_observe(struct metric_histogram *h, uint64_t usec);

/* Counts keyed by one or two label values ("" when a series has one). A
 * bounded number of series: past METRIC_SERIES_MAX new keys are not
 * counted but their events are (dropped), so the figures never grow with
 * what an adversary sends. */
#define METRIC_SERIES_MAX 512
#define METRIC_LABEL_MAX 64

struct metric_series {
	char label[2][METRIC_LABEL_MAX];
	uint64_t value;
};

struct metric_counts {
	struct metric_series *items;
	size_t n;
	uint64_t dropped; /* events of keys that found no room */
};

/* b may be NULL. A value longer than METRIC_LABEL_MAX - 1 is cut. */
void metric_counts_add(struct metric_counts *c, const char *a, const char *b, uint64_t by);
/* Sets (a gauge's series); -ENOSPC past METRIC_SERIES_MAX. */
int metric_counts_set(struct metric_counts *c, const char *a, const char *b, uint64_t value);
void metric_counts_done(struct metric_counts *c);

/* The text exposition format, built in memory. */
struct metric_text {
	FILE *f;
	char *buf;
	size_t len;
};

int metric_text_open(struct metric_text *t);
/* # HELP and # TYPE lines of a family; type "counter", "gauge" or "histogram". */
void metric_text_family(struct metric_text *t, const char *name, const char *type,
			const char *help);
/* One sample; label names and values n of each (values escaped). */
void metric_text_u64(struct metric_text *t, const char *name, const char *const *label_names,
		     const char *const *label_values, size_t n_labels, uint64_t value);
/* Microseconds written as seconds, exactly ("1796688000.25", "0.000125"). */
void metric_text_usec(struct metric_text *t, const char *name, const char *const *label_names,
		      const char *const *label_values, size_t n_labels, uint64_t usec);
/* A family of counts (HELP, TYPE and a sample per series), one or two labels. */
void metric_text_counts(struct metric_text *t, const char *name, const char *type, const char *help,
			const char *const *label_names, size_t n_labels,
			const struct metric_counts *c);
/* NAME_bucket{le=...} cumulative, +Inf, NAME_sum (seconds) and NAME_count,
 * with HELP and TYPE. */
void metric_text_histogram(struct metric_text *t, const char *name, const char *help,
			   const struct metric_histogram *h);
/* The text (NUL-terminated), or NULL when memory ran out; the writer is done. */
char *metric_text_finish(struct metric_text *t, size_t *ret_len);
void metric_text_done(struct metric_text *t);

/* A label value escaped as the format asks (\\, \", \n) into out; false
 * when it does not fit. */
bool metric_escape_label(const char *value, char *out, size_t size);
