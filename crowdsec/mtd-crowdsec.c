/* SPDX-License-Identifier: MIT */
/* mtd-crowdsec: one agent's bridge to a CrowdSec local API (docs/fleet.md).
 * One loop: the agent's audit records it follows (poll), a post of the
 * alerts they make, a pull of the decision stream every --interval, each
 * bounded by --timeout; while the LAPI fails, both wait a back-off (1 s
 * doubling to 60 s) and the alerts wait in a bounded queue. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/param.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "clock.h"
#include "crowdsec.h"
#include "macro.h"

#define ALERTS_QUEUE_MAX 1000 /* then the oldest is dropped (counted failed) */
#define ALERTS_PER_POST 50
#define BACKOFF_MIN_USEC (1 * USEC_PER_SEC)
#define BACKOFF_MAX_USEC (60 * USEC_PER_SEC)
#define AGENT_TIMEOUT_MS 5000
/* Requests to the agent are paced under its limit for a non-root uid
 * (agent/control: 20 a second after a burst of 40), so that a resync of
 * thousands of decisions is slowed, never refused. */
#define AGENT_RATE 15
#define AGENT_BURST 30

struct options {
	const char *socket_path;
	const char *lapi_url;
	const char *machine_file;
	const char *bouncer_key_file;
	const char *state_file;
	uint64_t interval_usec;
	uint64_t resync_usec; /* 0: never */
	long timeout_ms;
};

struct bridge {
	struct options options;
	struct lapi *lapi;
	bool sensor, bouncer;
	struct crowdsec_agent *agent;
	uint64_t since; /* the last audit seq seen */
	uint64_t saved_since;
	json_t *queue; /* alerts waiting for the LAPI */
	bool startup;  /* the next pull asks for every decision in force */
	uint64_t next_pull_usec, retry_usec, backoff_usec;
	uint64_t next_resync_usec;
	struct control_bridge_report report;
	bool report_dirty, report_urgent; /* urgent: the LAPI's state changed */
	uint64_t pace_tokens, pace_usec;  /* requests to the agent, in 1/USEC_PER_SEC */
	uint64_t report_sent_usec;
};

static volatile sig_atomic_t stop_requested;

_printf_(1, 2) static void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("mtd-crowdsec: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static void on_signal(int sig)
{
	stop_requested = 1;
}

static void set_lapi_state(struct bridge *b, const char *state, const char *error)
{
	if (!streq(b->report.lapi, state)) {
		say("LAPI %s%s%s", state, error && error[0] ? ": " : "", error ? error : "");
		snprintf(b->report.lapi, sizeof(b->report.lapi), "%s", state);
		b->report.since_usec = now(CLOCK_REALTIME);
		b->report_urgent = true;
	}
	snprintf(b->report.error, sizeof(b->report.error), "%s", error ? error : "");
	/* printable ASCII only (control.h) */
	for (char *p = b->report.error; *p; p++)
		if (*p < 0x20 || *p > 0x7e)
			*p = '?';
	b->report_dirty = true;
}

static void lapi_ok(struct bridge *b)
{
	b->backoff_usec = 0;
	b->retry_usec = 0;
	set_lapi_state(b, "up", NULL);
}

static void lapi_failed(struct bridge *b, const char *reason)
{
	b->backoff_usec =
	    b->backoff_usec ? MIN(b->backoff_usec * 2, BACKOFF_MAX_USEC) : BACKOFF_MIN_USEC;
	b->retry_usec = now(CLOCK_MONOTONIC) + b->backoff_usec;
	set_lapi_state(b, "down", reason);
}

static int read_state(const char *path, uint64_t *ret)
{
	char buf[32] = "";
	char *end;
	FILE *f = fopen(path, "re");
	unsigned long long value;

	if (!f)
		return -errno;
	if (!fgets(buf, sizeof(buf), f)) {
		fclose(f);
		return -EINVAL;
	}
	fclose(f);
	errno = 0;
	value = strtoull(buf, &end, 10);
	if (errno || end == buf || (*end && *end != '\n'))
		return -EINVAL;
	*ret = value;
	return 0;
}

/* The last seq handled, replaced atomically: a restart resumes after it. */
static void save_state(struct bridge *b)
{
	_cleanup_free_ char *tmp = NULL;
	FILE *f;

	if (!b->options.state_file || b->saved_since == b->since)
		return;
	if (asprintf(&tmp, "%s.tmp", b->options.state_file) < 0)
		return;
	f = fopen(tmp, "we");
	if (!f) {
		say("%s: %s", tmp, strerror(errno));
		return;
	}
	fprintf(f, "%llu\n", (unsigned long long)b->since);
	if (fflush(f) != 0 || fsync(fileno(f)) < 0 || fclose(f) != 0 ||
	    rename(tmp, b->options.state_file) < 0) {
		say("%s: %s", b->options.state_file, strerror(errno));
		return;
	}
	b->saved_since = b->since;
}

static void agent_gone(struct bridge *b, const char *reason)
{
	say("agent: %s; reconnecting", reason);
	crowdsec_agent_free(b->agent);
	b->agent = NULL;
}

/* Connected, and following after b->since (the first time: after the log's
 * last record, unless the state file says where we were). */
static int ensure_agent(struct bridge *b)
{
	char reason[CROWDSEC_REASON_MAX] = "";
	int r;

	if (b->agent)
		return 0;
	r = crowdsec_agent_connect(b->options.socket_path, &b->agent, reason);
	if (r < 0)
		return r;
	if (b->since == 0) {
		struct control_request status = {.command = CONTROL_STATUS};
		_cleanup_(json_decrefp) json_t *result = NULL;

		r = crowdsec_agent_request(b->agent, &status, AGENT_TIMEOUT_MS, &result, reason);
		if (r < 0) {
			agent_gone(b, reason);
			return r;
		}
		b->since = (uint64_t)json_integer_value(
		    json_object_get(json_object_get(result, "audit"), "last_seq"));
		b->saved_since = 0;
		save_state(b);
	}
	r = crowdsec_agent_follow(b->agent, b->since, reason);
	if (r < 0) {
		agent_gone(b, reason);
		return r;
	}
	say("agent: following its audit log after record %llu", (unsigned long long)b->since);
	b->report_dirty = true;
	return 0;
}

static void now_text(char out[32])
{
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void queue_alert(struct bridge *b, json_t *alert)
{
	if (json_array_size(b->queue) >= ALERTS_QUEUE_MAX) {
		json_array_remove(b->queue, 0);
		b->report.alerts_failed++;
	}
	json_array_append_new(b->queue, alert);
	b->report.alerts_queued = json_array_size(b->queue);
	b->report_dirty = true;
}

static void read_records(struct bridge *b)
{
	char reason[CROWDSEC_REASON_MAX] = "";
	char now_buf[32];

	now_text(now_buf);
	for (;;) {
		_cleanup_(json_decrefp) json_t *message = NULL;
		json_t *record;
		size_t i;
		int r = crowdsec_agent_read_follow(b->agent, &message, reason);

		if (r == 0)
			break;
		if (r < 0) {
			agent_gone(b, reason);
			return;
		}
		json_array_foreach(json_object_get(message, "records"), i, record)
		{
			uint64_t seq = (uint64_t)json_integer_value(json_object_get(record, "seq"));
			json_t *alert;

			if (seq <= b->since)
				continue;
			b->since = seq;
			if (!b->sensor)
				continue;
			alert = crowdsec_alert_from_record(record, now_buf);
			if (alert)
				queue_alert(b, alert);
		}
		/* a reply that stopped (truncated catch-up): ask again from here */
		if (!json_is_true(json_object_get(message, "more"))) {
			r = crowdsec_agent_follow(b->agent, b->since, reason);
			if (r < 0) {
				agent_gone(b, reason);
				return;
			}
		}
	}
}

static void post_alerts(struct bridge *b)
{
	char reason[CROWDSEC_REASON_MAX] = "";

	while (json_array_size(b->queue) > 0) {
		size_t n = MIN(json_array_size(b->queue), (size_t)ALERTS_PER_POST);
		_cleanup_(json_decrefp) json_t *batch = json_array();
		int r;

		for (size_t i = 0; batch && i < n; i++)
			json_array_append(batch, json_array_get(b->queue, i));
		if (!batch)
			return;
		r = lapi_post_alerts(b->lapi, batch, reason);
		if (r < 0) {
			lapi_failed(b, reason);
			return;
		}
		for (size_t i = 0; i < n; i++)
			json_array_remove(b->queue, 0);
		b->report.alerts_sent += n;
		b->report.alerts_queued = json_array_size(b->queue);
		lapi_ok(b);
	}
}

static void pace(struct bridge *b)
{
	const uint64_t full = (uint64_t)AGENT_BURST * USEC_PER_SEC;
	uint64_t t = now(CLOCK_MONOTONIC);

	if (b->pace_usec == 0)
		b->pace_tokens = full;
	else
		b->pace_tokens = MIN(full, b->pace_tokens + (t - b->pace_usec) * AGENT_RATE);
	b->pace_usec = t;
	if (b->pace_tokens < USEC_PER_SEC) {
		uint64_t wait_usec = (USEC_PER_SEC - b->pace_tokens + AGENT_RATE - 1) / AGENT_RATE;
		struct timespec ts = {.tv_sec = (time_t)(wait_usec / USEC_PER_SEC),
				      .tv_nsec = (long)(wait_usec % USEC_PER_SEC) * 1000};

		(void)nanosleep(&ts, NULL);
		b->pace_tokens = USEC_PER_SEC;
		b->pace_usec = now(CLOCK_MONOTONIC);
	}
	b->pace_tokens -= USEC_PER_SEC;
}

static int send_to_agent(struct bridge *b, struct control_request *request)
{
	char reason[CROWDSEC_REASON_MAX] = "";
	int r;

	request->command = CONTROL_SHARED_BLOCKS;
	request->bridge = b->report;
	request->bridge.present = true;
	pace(b);
	r = crowdsec_agent_request(b->agent, request, AGENT_TIMEOUT_MS, NULL, reason);
	if (r == -EIO) {
		/* the agent refused (no table yet, NeverBlock= is no refusal):
		 * the decisions come again at the next startup pull */
		say("agent: %s", reason);
		b->startup = true;
		return 0;
	}
	if (r < 0) {
		agent_gone(b, reason);
		return r;
	}
	b->report_dirty = false;
	b->report_urgent = false;
	b->report_sent_usec = now(CLOCK_MONOTONIC);
	return 0;
}

/* An address an expired or deleted decision and a decision in force both
 * name (a full set lists both): it stays blocked, not unblocked between
 * the two transactions. */
static bool banned_too(const struct crowdsec_stream *s, const char *address)
{
	for (size_t i = 0; i < s->n_bans; i++)
		if (streq(s->bans[i].address, address))
			return true;
	return false;
}

/* Unbans first, then bans: a source deleted and banned again in one pull
 * ends blocked. Batches of CONTROL_SHARED_MAX. */
static int hand_over(struct bridge *b, const struct crowdsec_stream *s)
{
	struct control_request request = {0};
	int r;

	for (size_t i = 0; i < s->n_unbans; i++) {
		if (!banned_too(s, s->unbans[i].address))
			snprintf(request.unbans[request.n_unbans++], sizeof(request.unbans[0]),
				 "%s", s->unbans[i].address);
		if (request.n_unbans > 0 &&
		    (request.n_unbans == CONTROL_SHARED_MAX || i + 1 == s->n_unbans)) {
			r = send_to_agent(b, &request);
			if (r < 0)
				return r;
			request = (struct control_request){0};
		}
	}
	for (size_t i = 0; i < s->n_bans; i++) {
		struct control_shared_ban *ban = &request.bans[request.n_bans++];
		uint64_t seconds = (uint64_t)(s->bans[i].remaining_usec / (int64_t)USEC_PER_SEC);

		snprintf(ban->address, sizeof(ban->address), "%s", s->bans[i].address);
		ban->seconds = (uint32_t)MIN(MAX(seconds, 1u), CONTROL_SHARED_SECONDS_MAX);
		if (request.n_bans == CONTROL_SHARED_MAX || i + 1 == s->n_bans) {
			r = send_to_agent(b, &request);
			if (r < 0)
				return r;
			request = (struct control_request){0};
		}
	}
	return 0;
}

static void pull(struct bridge *b)
{
	char reason[CROWDSEC_REASON_MAX] = "";
	_cleanup_(json_decrefp) json_t *body = NULL;
	struct crowdsec_stream stream = {0};
	uint64_t t = now(CLOCK_MONOTONIC);
	bool startup;
	int r;

	/* The stream hands out what changed since the bouncer's last pull, and
	 * a decision written while a pull runs can fall between two pulls
	 * (seen with 1.4.6 and cscli decisions import: 50 of 1500): now and
	 * then the whole set again. */
	if (b->options.resync_usec && t >= b->next_resync_usec)
		b->startup = true;
	startup = b->startup;
	b->next_pull_usec = t + b->options.interval_usec;
	r = lapi_pull(b->lapi, startup, &body, reason);
	if (r < 0) {
		lapi_failed(b, reason);
		return;
	}
	lapi_ok(b);
	r = crowdsec_parse_stream(body, &stream, reason);
	if (r < 0) {
		say("LAPI: %s", reason);
		return;
	}
	b->startup = false;
	if (startup)
		b->next_resync_usec = t + b->options.resync_usec;
	b->report.decisions_new += stream.n_bans;
	b->report.decisions_deleted += stream.n_unbans;
	b->report.decisions_skipped += stream.skipped;
	if (hand_over(b, &stream) < 0)
		b->startup = true; /* the agent went: all again once it is back */
	crowdsec_stream_done(&stream);
}

/* The bridge's state to the agent (status): at a change of the LAPI's
 * state at once, else at most once a second. */
static void report(struct bridge *b)
{
	struct control_request request = {0};

	if (!b->report_dirty || !b->agent)
		return;
	if (!b->report_urgent && now(CLOCK_MONOTONIC) < b->report_sent_usec + USEC_PER_SEC)
		return;
	(void)send_to_agent(b, &request);
}

static int run(struct bridge *b)
{
	while (!stop_requested) {
		uint64_t t = now(CLOCK_MONOTONIC), wake = t + USEC_PER_SEC, lapi_wake;
		struct pollfd p = {.fd = -1, .events = POLLIN};
		bool lapi_ready;

		if (ensure_agent(b) < 0) {
			/* the agent is not there (yet, or restarting) */
			(void)poll(NULL, 0, 1000);
			continue;
		}
		p.fd = crowdsec_agent_follow_fd(b->agent);
		/* the LAPI's next turn: a pull, or at once for queued alerts, but
		 * not before the back-off ends */
		lapi_wake = json_array_size(b->queue) > 0 ? t
			    : b->bouncer		  ? b->next_pull_usec
							  : UINT64_MAX;
		if (b->retry_usec)
			lapi_wake = MAX(lapi_wake, b->retry_usec);
		wake = MIN(wake, lapi_wake);
		(void)poll(&p, 1, wake > t ? (int)((wake - t + 999) / 1000) : 0);
		if (stop_requested)
			break;
		if (p.revents)
			read_records(b);
		if (!b->agent)
			continue;
		t = now(CLOCK_MONOTONIC);
		lapi_ready = !b->retry_usec || t >= b->retry_usec;
		if (lapi_ready && json_array_size(b->queue) > 0)
			post_alerts(b);
		lapi_ready = !b->retry_usec || t >= b->retry_usec;
		if (b->bouncer && lapi_ready && t >= b->next_pull_usec)
			pull(b);
		if (b->agent)
			report(b);
		save_state(b);
	}
	save_state(b);
	return 0;
}

static void usage(FILE *f)
{
	fputs(
	    "usage: mtd-crowdsec [OPTIONS]\n"
	    "Bridge between mtd-agent and a CrowdSec local API (docs/fleet.md).\n"
	    "  --socket PATH           the agent's control socket [/run/mtd/control.sock]\n"
	    "  --lapi-url URL          the LAPI [the url of --machine-file]\n"
	    "  --machine-file FILE     machine credentials (cscli machines add -f): sensor\n"
	    "  --bouncer-key-file FILE bouncer API key (cscli bouncers add -o raw): bouncer\n"
	    "  --state-file FILE       the last audit record handled, kept across restarts\n"
	    "  --interval SECONDS      pull the decision stream this often [10]\n"
	    "  --resync SECONDS        ask for every decision in force this often, 0 never [300]\n"
	    "  --timeout MS            bound of one HTTP call [5000]\n"
	    "  --help\n",
	    f);
}

static int parse_u64(const char *option, const char *text, uint64_t min, uint64_t max,
		     uint64_t *ret)
{
	char *end;
	unsigned long long value;

	errno = 0;
	value = strtoull(text, &end, 10);
	if (errno || end == text || *end || text[0] == '-' || value < min || value > max) {
		say("--%s: '%s' is not an integer from %llu to %llu", option, text,
		    (unsigned long long)min, (unsigned long long)max);
		return -EINVAL;
	}
	*ret = value;
	return 0;
}

static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option long_options[] = {
	    {"socket", required_argument, NULL, 's'},
	    {"lapi-url", required_argument, NULL, 'u'},
	    {"machine-file", required_argument, NULL, 'm'},
	    {"bouncer-key-file", required_argument, NULL, 'k'},
	    {"state-file", required_argument, NULL, 'f'},
	    {"interval", required_argument, NULL, 'i'},
	    {"resync", required_argument, NULL, 'r'},
	    {"timeout", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	uint64_t value;
	int c;

	while ((c = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
		switch (c) {
		case 's':
			o->socket_path = optarg;
			break;
		case 'u':
			o->lapi_url = optarg;
			break;
		case 'm':
			o->machine_file = optarg;
			break;
		case 'k':
			o->bouncer_key_file = optarg;
			break;
		case 'f':
			o->state_file = optarg;
			break;
		case 'i':
			if (parse_u64("interval", optarg, 1, 3600, &value) < 0)
				return 2;
			o->interval_usec = value * USEC_PER_SEC;
			break;
		case 'r':
			if (parse_u64("resync", optarg, 0, 86400, &value) < 0)
				return 2;
			o->resync_usec = value * USEC_PER_SEC;
			break;
		case 't':
			if (parse_u64("timeout", optarg, 100, 600000, &value) < 0)
				return 2;
			o->timeout_ms = (long)value;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		say("unexpected argument '%s'", argv[optind]);
		return 2;
	}
	if (!o->machine_file && !o->bouncer_key_file) {
		say("nothing to do: give --machine-file (sensor), --bouncer-key-file (bouncer) or "
		    "both");
		return 2;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct bridge b = {
	    .options =
		{
		    .socket_path = "/run/mtd/control.sock",
		    .interval_usec = 10 * USEC_PER_SEC,
		    .resync_usec = 300 * USEC_PER_SEC,
		    .timeout_ms = 5000,
		},
	    .startup = true,
	    .report = {.present = true, .engine = "crowdsec", .lapi = "connecting"},
	    .report_dirty = true,
	};
	struct crowdsec_machine machine = {0};
	char key[256] = "", reason[CROWDSEC_REASON_MAX] = "";
	struct sigaction sa = {.sa_handler = on_signal};
	const char *url;
	int r;

	r = parse_options(argc, argv, &b.options);
	if (r)
		return r;
	if (b.options.machine_file) {
		if (crowdsec_read_machine_file(b.options.machine_file, &machine, reason) < 0) {
			say("%s", reason);
			return 1;
		}
		b.sensor = true;
	}
	if (b.options.bouncer_key_file) {
		if (crowdsec_read_key_file(b.options.bouncer_key_file, key, sizeof(key), reason) <
		    0) {
			say("%s", reason);
			return 1;
		}
		b.bouncer = true;
	}
	url = b.options.lapi_url ? b.options.lapi_url : machine.url;
	if (!url[0] || (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)) {
		say("the LAPI's URL must be http:// or https:// (--lapi-url, or url: in the "
		    "machine "
		    "file)");
		return 2;
	}
	if (b.options.state_file) {
		r = read_state(b.options.state_file, &b.since);
		if (r < 0 && r != -ENOENT) {
			say("%s: not a record number (%s)", b.options.state_file,
			    r == -EINVAL ? "malformed" : strerror(-r));
			return 1;
		}
		b.saved_since = b.since;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
		say("libcurl failed to initialise");
		return 1;
	}
	b.queue = json_array();
	r = b.queue ? lapi_new(url, key, &machine, b.options.timeout_ms, &b.lapi) : -ENOMEM;
	explicit_bzero(&machine, sizeof(machine));
	explicit_bzero(key, sizeof(key));
	if (r < 0) {
		say("cannot start: %s", strerror(-r));
		return 1;
	}
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	say("LAPI %s;%s%s", url, b.sensor ? " sensor" : "", b.bouncer ? " bouncer" : "");
	r = run(&b);
	lapi_free(b.lapi);
	crowdsec_agent_free(b.agent);
	json_decref(b.queue);
	curl_global_cleanup();
	return r < 0 ? 1 : 0;
}
