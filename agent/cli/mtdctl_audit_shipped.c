/* SPDX-License-Identifier: MIT */
/* mtdctl audit verify --journal: the audit records a host shipped through
 * the journal (to a systemd-journal-remote), verified on the collecting
 * host, gaps in the shipped sequence reported, and, given the host's own
 * log files, the two compared: a local tail cut or rewritten after it was
 * shipped shows. docs/audit-log.md "Off the host". */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "mtdctl.h"

struct shipped_report {
	struct audit_verify_result shipped, local;
	struct audit_comparison cmp;
	uint64_t shipped_records;
	bool have_local;
};

static int verify_lines(const uint8_t key[AUDIT_KEY_SIZE], const char *name,
			const struct audit_lines *lines, unsigned flags,
			struct audit_verify_result *ret)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int r;

	r = audit_lines_join(lines, &buf, &len);
	if (r < 0)
		return r;
	return audit_verify_buffer(key, name, buf, len, flags, ret);
}

static uint64_t gap_records(const struct audit_verify_result *res)
{
	uint64_t n = 0;

	for (size_t i = 0; i < res->n_gaps; i++)
		n += res->gaps[i].last - res->gaps[i].first + 1;
	return n;
}

static bool report_ok(const struct shipped_report *rep)
{
	return rep->shipped.ok && rep->shipped.n_gaps == 0 &&
	       (!rep->have_local ||
		(rep->local.ok && rep->cmp.differ == 0 && rep->cmp.missing_locally == 0));
}

static void print_text(const struct shipped_report *rep, const char *journal, const char *machine)
{
	const struct audit_verify_result *s = &rep->shipped, *l = &rep->local;
	const struct audit_comparison *c = &rep->cmp;

	if (s->ok)
		printf("shipped: %llu records (seq %llu..%llu) from machine %s in %s: verified\n",
		       (unsigned long long)s->records, (unsigned long long)s->first_seq,
		       (unsigned long long)s->last_seq, machine[0] ? machine : "?", journal);
	else
		printf("shipped: FAILED at record %u, seq %llu: %s\n", s->bad_line,
		       (unsigned long long)s->bad_seq, s->reason ? s->reason : "?");
	for (size_t i = 0; i < s->n_gaps; i++)
		printf("shipped: GAP: seq %llu..%llu missing (%llu record(s) never arrived)\n",
		       (unsigned long long)s->gaps[i].first, (unsigned long long)s->gaps[i].last,
		       (unsigned long long)(s->gaps[i].last - s->gaps[i].first + 1));
	if (!rep->have_local)
		return;
	if (l->ok)
		printf("local:   %llu records (seq %llu..%llu): verified\n",
		       (unsigned long long)l->records, (unsigned long long)l->first_seq,
		       (unsigned long long)l->last_seq);
	else
		printf("local:   FAILED: %s:%u: seq %llu: %s\n", l->bad_file ? l->bad_file : "?",
		       l->bad_line, (unsigned long long)l->bad_seq, l->reason ? l->reason : "?");
	printf("compare: %llu record(s) the same in both\n", (unsigned long long)c->same);
	if (c->differ)
		printf("compare: DIFFERENT: %llu record(s) differ from the shipped copy, the first "
		       "seq %llu: the local log was rewritten after shipping\n",
		       (unsigned long long)c->differ, (unsigned long long)c->first_differing);
	if (c->missing_locally)
		printf(
		    "compare: MISSING: the local log ends at seq %llu but %llu shipped record(s) "
		    "come after it (seq %llu..%llu): the local log's tail was deleted\n",
		    (unsigned long long)c->local_last, (unsigned long long)c->missing_locally,
		    (unsigned long long)c->first_missing_locally,
		    (unsigned long long)c->last_missing_locally);
	if (c->not_shipped)
		printf("compare: %llu local record(s) after the shipped copy's last (not shipped "
		       "yet)\n",
		       (unsigned long long)c->not_shipped);
	if (c->shipped_before_local)
		printf("compare: %llu shipped record(s) older than the local files (rotated away "
		       "here)\n",
		       (unsigned long long)c->shipped_before_local);
}

static json_t *result_json(const struct audit_verify_result *res)
{
	json_t *o = json_pack("{s:b, s:I, s:I, s:I}", "ok", res->ok, "records",
			      (json_int_t)res->records, "first_seq", (json_int_t)res->first_seq,
			      "last_seq", (json_int_t)res->last_seq);

	if (o && !res->ok) {
		json_object_set_new(o, "bad_seq", json_integer((json_int_t)res->bad_seq));
		json_object_set_new(o, "reason", json_string(res->reason ? res->reason : ""));
	}
	return o;
}

static void print_json(const struct shipped_report *rep, const char *machine)
{
	_cleanup_(json_decrefp) json_t *o = json_object();
	json_t *shipped = result_json(&rep->shipped), *gaps = json_array();

	if (!o || !shipped || !gaps)
		return;
	for (size_t i = 0; i < rep->shipped.n_gaps; i++)
		json_array_append_new(
		    gaps, json_pack("{s:I, s:I}", "first", (json_int_t)rep->shipped.gaps[i].first,
				    "last", (json_int_t)rep->shipped.gaps[i].last));
	json_object_set_new(shipped, "gaps", gaps);
	json_object_set_new(shipped, "missing",
			    json_integer((json_int_t)gap_records(&rep->shipped)));
	json_object_set_new(shipped, "machine", json_string(machine));
	json_object_set_new(o, "ok", json_boolean(report_ok(rep)));
	json_object_set_new(o, "shipped", shipped);
	if (rep->have_local) {
		const struct audit_comparison *c = &rep->cmp;

		json_object_set_new(o, "local", result_json(&rep->local));
		json_object_set_new(o, "compare",
				    json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "same",
					      (json_int_t)c->same, "differ", (json_int_t)c->differ,
					      "first_differing", (json_int_t)c->first_differing,
					      "missing_locally", (json_int_t)c->missing_locally,
					      "not_shipped", (json_int_t)c->not_shipped,
					      "shipped_before_local",
					      (json_int_t)c->shipped_before_local));
	}
	_cleanup_free_ char *text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (text)
		puts(text);
}

int mtdctl_audit_verify_journal(const struct mtdctl *ctl, const uint8_t key[AUDIT_KEY_SIZE],
				const char *journal, const char *machine, const char *const *logs,
				size_t n_logs)
{
	struct audit_lines shipped = {}, local = {};
	struct shipped_report rep = {.have_local = n_logs > 0};
	char err[512] = "";
	int r, exit_code;

	r = audit_lines_read_journal(journal, machine, &shipped, err, sizeof(err));
	if (r == -ENOMEM)
		return mtdctl_fail("out of memory");
	if (r < 0)
		return mtdctl_fail("audit verify: %s", err);
	if (shipped.n == 0) {
		audit_lines_done(&shipped);
		return mtdctl_fail(
		    "audit verify: %s: no audit records (SYSLOG_IDENTIFIER=mtd-agent "
		    "_UID=0 MTD_RECORD=)%s%s",
		    journal, machine ? " of machine " : "", machine ? machine : "");
	}
	r = verify_lines(key, journal, &shipped, AUDIT_VERIFY_GAPS, &rep.shipped);
	if (r >= 0 && n_logs > 0) {
		r = audit_lines_read_files(logs, n_logs, &local, err, sizeof(err));
		if (r < 0 && r != -ENOMEM && err[0]) {
			audit_lines_done(&shipped);
			audit_verify_result_done(&rep.shipped);
			return mtdctl_fail("audit verify: %s", err);
		}
		if (r >= 0)
			r = audit_verify_files(key, logs, n_logs, &rep.local);
		if (r >= 0)
			audit_compare(&local, &shipped, &rep.cmp);
	}
	if (r < 0)
		exit_code = mtdctl_fail("audit verify: %s", strerror(-r));
	else {
		if (ctl->json)
			print_json(&rep, shipped.machine);
		else
			print_text(&rep, journal, shipped.machine);
		exit_code = report_ok(&rep) ? 0 : EXIT_FAILURE;
	}
	audit_lines_done(&shipped);
	audit_lines_done(&local);
	audit_verify_result_done(&rep.shipped);
	audit_verify_result_done(&rep.local);
	return exit_code;
}
