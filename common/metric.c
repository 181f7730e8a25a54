/* SPDX-License-Identifier: MIT */
#include "metric.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "macro.h"

void metric_histogram_init(struct metric_histogram *h, const uint64_t *bounds_usec, size_t n)
{
	*h = (struct metric_histogram){0};
	h->n_bounds = n < METRIC_BOUNDS_MAX ? n : METRIC_BOUNDS_MAX;
	memcpy(h->bounds_usec, bounds_usec, h->n_bounds * sizeof(*bounds_usec));
}

void metric_histogram_observe(struct metric_histogram *h, uint64_t usec)
{
	size_t i = 0;

	while (i < h->n_bounds && usec > h->bounds_usec[i])
		i++;
	h->counts[i]++;
	h->count++;
	h->sum_usec += usec;
}

static void copy_label(char out[METRIC_LABEL_MAX], const char *value)
{
	snprintf(out, METRIC_LABEL_MAX, "%s", value ? value : "");
}

static struct metric_series *series_of(struct metric_counts *c, const char *a, const char *b)
{
	char ka[METRIC_LABEL_MAX], kb[METRIC_LABEL_MAX];
	struct metric_series *grown;

	copy_label(ka, a);
	copy_label(kb, b);
	for (size_t i = 0; i < c->n; i++)
		if (streq(c->items[i].label[0], ka) && streq(c->items[i].label[1], kb))
			return &c->items[i];
	if (c->n >= METRIC_SERIES_MAX)
		return NULL;
	grown = realloc(c->items, (c->n + 1) * sizeof(*grown));
	if (!grown)
		return NULL;
	c->items = grown;
	grown = &c->items[c->n++];
	*grown = (struct metric_series){0};
	memcpy(grown->label[0], ka, sizeof(ka));
	memcpy(grown->label[1], kb, sizeof(kb));
	return grown;
}

void metric_counts_add(struct metric_counts *c, const char *a, const char *b, uint64_t by)
{
	struct metric_series *s = series_of(c, a, b);

	if (s)
		s->value += by;
	else
		c->dropped += by;
}

int metric_counts_set(struct metric_counts *c, const char *a, const char *b, uint64_t value)
{
	struct metric_series *s = series_of(c, a, b);

	if (!s)
		return -ENOSPC;
	s->value = value;
	return 0;
}

void metric_counts_done(struct metric_counts *c)
{
	free(c->items);
	*c = (struct metric_counts){0};
}

int metric_text_open(struct metric_text *t)
{
	*t = (struct metric_text){0};
	t->f = open_memstream(&t->buf, &t->len);
	return t->f ? 0 : -errno;
}

bool metric_escape_label(const char *value, char *out, size_t size)
{
	size_t j = 0;

	for (const char *p = value; *p; p++) {
		const char *e = NULL;
		char one[2] = {*p, 0};

		if (*p == '\\')
			e = "\\\\";
		else if (*p == '"')
			e = "\\\"";
		else if (*p == '\n')
			e = "\\n";
		else
			e = one;
		if (j + strlen(e) >= size)
			return false;
		memcpy(out + j, e, strlen(e));
		j += strlen(e);
	}
	if (j >= size)
		return false;
	out[j] = 0;
	return true;
}

/* HELP text: backslash and line feed escaped. */
static void write_help(FILE *f, const char *help)
{
	for (const char *p = help; *p; p++) {
		if (*p == '\\')
			fputs("\\\\", f);
		else if (*p == '\n')
			fputs("\\n", f);
		else
			fputc(*p, f);
	}
}

void metric_text_family(struct metric_text *t, const char *name, const char *type, const char *help)
{
	fprintf(t->f, "# HELP %s ", name);
	write_help(t->f, help);
	fprintf(t->f, "\n# TYPE %s %s\n", name, type);
}

static void write_labels(FILE *f, const char *const *names, const char *const *values, size_t n)
{
	char escaped[METRIC_LABEL_MAX * 2 + 1];

	if (n == 0)
		return;
	fputc('{', f);
	for (size_t i = 0; i < n; i++) {
		if (!metric_escape_label(values[i], escaped, sizeof(escaped)))
			escaped[0] = 0; /* cannot happen for a METRIC_LABEL_MAX value */
		fprintf(f, "%s%s=\"%s\"", i ? "," : "", names[i], escaped);
	}
	fputc('}', f);
}

/* Microseconds as seconds, exactly: "0.00025", "1", "2.5". */
static void usec_as_seconds(uint64_t usec, char *out, size_t size)
{
	int n =
	    snprintf(out, size, "%" PRIu64 ".%06" PRIu64, usec / USEC_PER_SEC, usec % USEC_PER_SEC);

	while (n > 0 && out[n - 1] == '0')
		out[--n] = 0;
	if (n > 0 && out[n - 1] == '.')
		out[--n] = 0;
}

void metric_text_u64(struct metric_text *t, const char *name, const char *const *label_names,
		     const char *const *label_values, size_t n_labels, uint64_t value)
{
	fputs(name, t->f);
	write_labels(t->f, label_names, label_values, n_labels);
	fprintf(t->f, " %" PRIu64 "\n", value);
}

void metric_text_usec(struct metric_text *t, const char *name, const char *const *label_names,
		      const char *const *label_values, size_t n_labels, uint64_t usec)
{
	char seconds[32];

	usec_as_seconds(usec, seconds, sizeof(seconds));
	fputs(name, t->f);
	write_labels(t->f, label_names, label_values, n_labels);
	fprintf(t->f, " %s\n", seconds);
}

void metric_text_counts(struct metric_text *t, const char *name, const char *type, const char *help,
			const char *const *label_names, size_t n_labels,
			const struct metric_counts *c)
{
	metric_text_family(t, name, type, help);
	for (size_t i = 0; i < c->n; i++) {
		const char *values[2] = {c->items[i].label[0], c->items[i].label[1]};

		metric_text_u64(t, name, label_names, values, n_labels < 2 ? n_labels : 2,
				c->items[i].value);
	}
}

void metric_text_histogram(struct metric_text *t, const char *name, const char *help,
			   const struct metric_histogram *h)
{
	char le[32], series[128];
	uint64_t cumulative = 0;
	const char *le_name[] = {"le"};
	const char *le_value[] = {le};

	metric_text_family(t, name, "histogram", help);
	snprintf(series, sizeof(series), "%s_bucket", name);
	for (size_t i = 0; i < h->n_bounds; i++) {
		cumulative += h->counts[i];
		usec_as_seconds(h->bounds_usec[i], le, sizeof(le));
		metric_text_u64(t, series, le_name, le_value, 1, cumulative);
	}
	snprintf(le, sizeof(le), "+Inf");
	metric_text_u64(t, series, le_name, le_value, 1, h->count);
	snprintf(series, sizeof(series), "%s_sum", name);
	usec_as_seconds(h->sum_usec, le, sizeof(le));
	fprintf(t->f, "%s %s\n", series, le);
	snprintf(series, sizeof(series), "%s_count", name);
	metric_text_u64(t, series, NULL, NULL, 0, h->count);
}

char *metric_text_finish(struct metric_text *t, size_t *ret_len)
{
	char *buf;
	int r;

	r = fclose(t->f);
	t->f = NULL;
	buf = TAKE_PTR(t->buf);
	if (r != 0) {
		free(buf);
		return NULL;
	}
	if (ret_len)
		*ret_len = t->len;
	return buf;
}

void metric_text_done(struct metric_text *t)
{
	if (t->f)
		fclose(t->f);
	free(t->buf);
	*t = (struct metric_text){0};
}
