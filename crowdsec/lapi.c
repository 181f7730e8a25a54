/* SPDX-License-Identifier: MIT */
/* The CrowdSec local API over HTTP with libcurl: the decision stream (bouncer
 * key) and alerts (machine login -> JWT). Every call is bounded by the
 * timeout; the bridge, not the agent, waits for it. */
#include <curl/curl.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crowdsec.h"
#include "macro.h"

/* An answer larger than this is refused (a resync of a big fleet's
 * decisions fits many times over). */
#define LAPI_BODY_MAX (64u * 1024 * 1024)

struct lapi {
	CURL *curl;
	char *url; /* without a trailing slash */
	char key[256];
	struct crowdsec_machine machine;
	char *token; /* the machine's JWT, NULL until logged in */
	long timeout_ms;
};

struct body {
	char *data;
	size_t len;
	bool too_large;
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct body *b = userdata;
	size_t n = size * nmemb;
	char *grown;

	if (b->len + n > LAPI_BODY_MAX) {
		b->too_large = true;
		return 0;
	}
	grown = realloc(b->data, b->len + n + 1);
	if (!grown)
		return 0;
	memcpy(grown + b->len, ptr, n);
	b->len += n;
	grown[b->len] = '\0';
	b->data = grown;
	return n;
}

int lapi_new(const char *url, const char *bouncer_key, const struct crowdsec_machine *machine,
	     long timeout_ms, struct lapi **ret)
{
	struct lapi *lapi;
	size_t len = strlen(url);

	if (strlen(bouncer_key) >= sizeof(lapi->key))
		return -EINVAL;
	lapi = calloc(1, sizeof(*lapi));
	if (!lapi)
		return -ENOMEM;
	while (len > 0 && url[len - 1] == '/')
		len--;
	lapi->url = strndup(url, len);
	lapi->curl = curl_easy_init();
	if (!lapi->url || !lapi->curl) {
		lapi_free(lapi);
		return -ENOMEM;
	}
	snprintf(lapi->key, sizeof(lapi->key), "%s", bouncer_key);
	if (machine)
		lapi->machine = *machine;
	lapi->timeout_ms = timeout_ms;
	*ret = lapi;
	return 0;
}

void lapi_free(struct lapi *lapi)
{
	if (!lapi)
		return;
	if (lapi->curl)
		curl_easy_cleanup(lapi->curl);
	free(lapi->url);
	free(lapi->token);
	explicit_bzero(&lapi->machine, sizeof(lapi->machine));
	free(lapi);
}

/* One request: method GET (body NULL) or POST (JSON body); header one extra
 * header line (X-Api-Key or Authorization). Returns the HTTP status with the
 * parsed JSON body, or a negative errno with the reason. */
static int call(struct lapi *lapi, const char *path, const char *header, const char *post,
		json_t **ret_json, char reason[CROWDSEC_REASON_MAX])
{
	_cleanup_free_ char *url = NULL;
	struct curl_slist *headers = NULL;
	struct body body = {0};
	char error[CURL_ERROR_SIZE] = "";
	json_error_t json_error;
	CURLcode code;
	long status = 0;

	if (asprintf(&url, "%s%s", lapi->url, path) < 0)
		return -ENOMEM;
	headers = curl_slist_append(headers, "Content-Type: application/json");
	headers = curl_slist_append(headers, "User-Agent: mtd-crowdsec/" MTD_VERSION);
	if (header)
		headers = curl_slist_append(headers, header);
	curl_easy_reset(lapi->curl);
	curl_easy_setopt(lapi->curl, CURLOPT_URL, url);
	curl_easy_setopt(lapi->curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(lapi->curl, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(lapi->curl, CURLOPT_WRITEDATA, &body);
	curl_easy_setopt(lapi->curl, CURLOPT_ERRORBUFFER, error);
	curl_easy_setopt(lapi->curl, CURLOPT_TIMEOUT_MS, lapi->timeout_ms);
	curl_easy_setopt(lapi->curl, CURLOPT_CONNECTTIMEOUT_MS, lapi->timeout_ms);
	curl_easy_setopt(lapi->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(lapi->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	if (post)
		curl_easy_setopt(lapi->curl, CURLOPT_POSTFIELDS, post);
	code = curl_easy_perform(lapi->curl);
	curl_slist_free_all(headers);
	if (code != CURLE_OK) {
		snprintf(reason, CROWDSEC_REASON_MAX, "%s %s: %.200s", post ? "POST" : "GET", path,
			 body.too_large ? "answer too large"
			 : error[0]	? error
					: curl_easy_strerror(code));
		free(body.data);
		return -EIO;
	}
	curl_easy_getinfo(lapi->curl, CURLINFO_RESPONSE_CODE, &status);
	*ret_json = body.data ? json_loads(body.data, 0, &json_error) : json_null();
	if (!*ret_json) {
		snprintf(reason, CROWDSEC_REASON_MAX, "%s %s: HTTP %ld, not JSON: %s",
			 post ? "POST" : "GET", path, status, json_error.text);
		free(body.data);
		return -EIO;
	}
	free(body.data);
	return (int)status;
}

static void http_failure(const char *what, int status, json_t *answer,
			 char reason[CROWDSEC_REASON_MAX])
{
	const char *message = json_string_value(json_object_get(answer, "message"));

	snprintf(reason, CROWDSEC_REASON_MAX, "%s: HTTP %d%s%s", what, status, message ? ": " : "",
		 message ? message : "");
}

int lapi_pull(struct lapi *lapi, bool startup, json_t **ret, char reason[CROWDSEC_REASON_MAX])
{
	_cleanup_free_ char *header = NULL;
	json_t *answer = NULL;
	int status;

	if (asprintf(&header, "X-Api-Key: %s", lapi->key) < 0)
		return -ENOMEM;
	status = call(lapi, startup ? "/v1/decisions/stream?startup=true" : "/v1/decisions/stream",
		      header, NULL, &answer, reason);
	explicit_bzero(header, strlen(header));
	if (status < 0)
		return status;
	if (status != 200) {
		http_failure("GET /v1/decisions/stream", status, answer, reason);
		json_decref(answer);
		return status == 403 || status == 401 ? -EACCES : -EIO;
	}
	*ret = answer;
	return 0;
}

static int login(struct lapi *lapi, char reason[CROWDSEC_REASON_MAX])
{
	_cleanup_(json_decrefp) json_t *request =
	    json_pack("{s:s, s:s, s:[s]}", "machine_id", lapi->machine.login, "password",
		      lapi->machine.password, "scenarios", CROWDSEC_SCENARIO);
	_cleanup_(json_decrefp) json_t *answer = NULL;
	_cleanup_free_ char *text = request ? json_dumps(request, JSON_COMPACT) : NULL;
	const char *token;
	int status;

	if (!text)
		return -ENOMEM;
	if (!lapi->machine.login[0]) {
		snprintf(reason, CROWDSEC_REASON_MAX, "no machine credentials (--machine-file)");
		return -EACCES;
	}
	status = call(lapi, "/v1/watchers/login", NULL, text, &answer, reason);
	explicit_bzero(text, strlen(text));
	if (status < 0)
		return status;
	token = json_string_value(json_object_get(answer, "token"));
	if (status != 200 || !token) {
		http_failure("POST /v1/watchers/login", status, answer, reason);
		return status == 403 || status == 401 ? -EACCES : -EIO;
	}
	free(lapi->token);
	lapi->token = strdup(token);
	return lapi->token ? 0 : -ENOMEM;
}

int lapi_post_alerts(struct lapi *lapi, json_t *alerts, char reason[CROWDSEC_REASON_MAX])
{
	_cleanup_free_ char *text = json_dumps(alerts, JSON_COMPACT);

	if (!text)
		return -ENOMEM;
	/* a token the LAPI refuses (expired, or the LAPI restarted with a new
	 * secret) is replaced once */
	for (int attempt = 0; attempt < 2; attempt++) {
		_cleanup_(json_decrefp) json_t *answer = NULL;
		_cleanup_free_ char *header = NULL;
		int status, r;

		if (!lapi->token) {
			r = login(lapi, reason);
			if (r < 0)
				return r;
		}
		if (asprintf(&header, "Authorization: Bearer %s", lapi->token) < 0)
			return -ENOMEM;
		status = call(lapi, "/v1/alerts", header, text, &answer, reason);
		if (status < 0)
			return status;
		if (status == 200 || status == 201)
			return 0;
		http_failure("POST /v1/alerts", status, answer, reason);
		if (status != 401 && status != 403)
			return -EIO;
		free(lapi->token);
		lapi->token = NULL;
	}
	return -EACCES;
}
