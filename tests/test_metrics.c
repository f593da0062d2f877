/*
 * test_metrics.c: the counters and their text exposition: label escaping,
 * cumulative histogram buckets, (code, outcome) pairs and their overflow,
 * in-flight requests, sums over workers, and totals that survive a
 * worker's removal and a tenant named again.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "xdrproxy.h"
#include "unit.h"

/* The exposition as a string (freed by the caller). */
static char *
render(void)
{
	struct evbuffer	*b = evbuffer_new();
	size_t		 len;
	char		*s;

	metrics_render(b, NULL);
	len = evbuffer_get_length(b);
	s = malloc(len + 1);
	evbuffer_remove(b, s, len);
	s[len] = '\0';
	evbuffer_free(b);
	return s;
}

/* The text has this whole line. */
static int
has_line(const char *text, const char *line)
{
	const char	*p = text;
	size_t		 n = strlen(line);

	while ((p = strstr(p, line)) != NULL) {
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return 1;
		p += n;
	}
	return 0;
}

#define CHECK_LINE(text, line) do {					\
	CHECK(has_line((text), (line)));				\
	if (!has_line((text), (line)))					\
		fprintf(stderr, "  missing line: %s\n", (line));	\
} while (0)

static void
test_escape(void)
{
	struct evbuffer	*b = evbuffer_new();
	char		 out[64];
	size_t		 len;

	metrics_label_value(b, "a\\b\"c\nd");
	len = evbuffer_get_length(b);
	evbuffer_remove(b, out, len);
	out[len] = '\0';
	CHECK_STR(out, "a\\\\b\\\"c\\nd");
	metrics_label_value(b, "plain-name_1.x");
	len = evbuffer_get_length(b);
	evbuffer_remove(b, out, len);
	out[len] = '\0';
	CHECK_STR(out, "plain-name_1.x");
	evbuffer_free(b);
}

/* One request of tenant tn on worker w, over: status, outcome, us. */
static void
request(struct worker *w, struct tenant *tn, int status, enum outcome o,
    uint64_t us, int end)
{
	struct request	 req;

	memset(&req, 0, sizeof(req));
	req.req_worker = w;
	req.req_tenant = tn;
	req.req_status = status;
	req.req_outcome = o;
	req.req_start_mono_us = 1000000;
	req.req_end_mono_us = 1000000 + us;
	req.req_bytes_in = 10;
	req.req_bytes_out = 100;
	metrics_request_start(&req);
	if (end)
		metrics_request_done(&req);
}

static void
test_render(void)
{
	struct worker	 w1, w2;
	struct tenant	 acme, odd;
	char		*text, line[256];
	int		 i;

	memset(&w1, 0, sizeof(w1));
	memset(&w2, 0, sizeof(w2));
	memset(&acme, 0, sizeof(acme));
	memset(&odd, 0, sizeof(odd));
	acme.tn_name = "acme";
	odd.tn_name = "we\"ird\\";
	acme.tn_metrics_slot = metrics_tenant_slot("acme");
	odd.tn_metrics_slot = metrics_tenant_slot(odd.tn_name);
	CHECK(acme.tn_metrics_slot == 0 && odd.tn_metrics_slot == 1);
	CHECK(metrics_tenant_slot("acme") == 0);
	CHECK(metrics_worker_add(&w1) == 0 && metrics_worker_add(&w2) == 0);

	/* Worker 1: two 200s (1.5 ms, 3 ms), a 404; worker 2: a 200, a 403. */
	request(&w1, &acme, 200, OUTCOME_OK, 1500, 1);
	request(&w1, &acme, 200, OUTCOME_OK, 3000, 1);
	request(&w1, &acme, 404, OUTCOME_OK, 200000, 1);
	request(&w2, &acme, 200, OUTCOME_OK, 1000, 1);
	request(&w2, &acme, 403, OUTCOME_PROXY_ERROR, 50, 1);
	request(&w2, &acme, 0, OUTCOME_OK, 0, 0);	/* still running */
	request(&w2, &acme, 499, OUTCOME_CLIENT_ABORTED, 7000000, 1);
	metrics_add(&w1.w_header_timeouts, 2);
	metrics_add(&w2.w_header_timeouts, 1);
	metrics_add(&w2.w_libevent_answers, 5);

	text = render();
	CHECK_LINE(text, "# TYPE xdrproxy_requests_total counter");
	CHECK_LINE(text, "xdrproxy_requests_total{tenant=\"acme\",code=\"200\","
	    "outcome=\"ok\"} 3");
	CHECK_LINE(text, "xdrproxy_requests_total{tenant=\"acme\",code=\"404\","
	    "outcome=\"ok\"} 1");
	CHECK_LINE(text, "xdrproxy_requests_total{tenant=\"acme\",code=\"403\","
	    "outcome=\"proxy_error\"} 1");
	CHECK_LINE(text, "xdrproxy_requests_total{tenant=\"acme\",code=\"499\","
	    "outcome=\"client_aborted\"} 1");
	CHECK(strstr(text, "code=\"0\"") == NULL);
	CHECK_LINE(text, "# TYPE xdrproxy_request_duration_seconds histogram");
	/* 50 us, 1 ms: le 0.001; 1.5 ms: 0.0025; 3 ms: 0.005; ... */
	CHECK_LINE(text, "xdrproxy_request_duration_seconds_bucket{tenant="
	    "\"acme\",le=\"0.001\"} 2");
	CHECK_LINE(text, "xdrproxy_request_duration_seconds_bucket{tenant="
	    "\"acme\",le=\"0.0025\"} 3");
	CHECK_LINE(text, "xdrproxy_request_duration_seconds_bucket{tenant="
	    "\"acme\",le=\"0.005\"} 4");
	CHECK_LINE(text, "xdrproxy_request_duration_seconds_bucket{tenant="
	    "\"acme\",le=\"0.25\"} 5");
	CHECK_LINE(text, "xdrproxy_request_duration_seconds_bucket{tenant="
	    "\"acme\",le=\"5\"} 5");
	CHECK_LINE(text, "xdrproxy_request_duration_seconds_bucket{tenant="
	    "\"acme\",le=\"10\"} 6");
	CHECK_LINE(text, "xdrproxy_request_duration_seconds_bucket{tenant="
	    "\"acme\",le=\"+Inf\"} 6");
	CHECK_LINE(text, "xdrproxy_request_duration_seconds_count{tenant="
	    "\"acme\"} 6");
	CHECK_LINE(text, "xdrproxy_request_duration_seconds_sum{tenant="
	    "\"acme\"} 7.205550");
	CHECK_LINE(text, "xdrproxy_requests_in_flight{tenant=\"acme\"} 1");
	CHECK_LINE(text, "xdrproxy_bytes_received_total{tenant=\"acme\"} 60");
	CHECK_LINE(text, "xdrproxy_bytes_sent_total{tenant=\"acme\"} 600");
	/* A tenant with no request yet: its series, at 0. */
	CHECK_LINE(text, "xdrproxy_requests_in_flight{tenant=\"we\\\"ird\\\\\"}"
	    " 0");
	CHECK_LINE(text, "xdrproxy_request_duration_seconds_count{tenant="
	    "\"we\\\"ird\\\\\"} 0");
	CHECK_LINE(text, "xdrproxy_upstream_duration_seconds_count{tenant="
	    "\"acme\"} 0");
	CHECK_LINE(text, "xdrproxy_client_header_timeouts_total 3");
	CHECK_LINE(text, "xdrproxy_malformed_requests_total 5");
	CHECK_LINE(text, "xdrproxy_config_reloads_total{result=\"success\"} 0");
	CHECK_LINE(text, "# TYPE xdrproxy_tenant_clock_skew_seconds gauge");
	CHECK(strstr(text, "xdrproxy_tenant_clock_skew_seconds{") == NULL);
	CHECK(strstr(text, "xdrproxy_build_info{version=\"" PACKAGE_VERSION
	    "\",libcurl=\"") != NULL);
	free(text);

	/* Worker 2 goes away: its counts stay in the totals. */
	metrics_worker_remove(&w2);
	CHECK(w2.w_metrics == NULL);
	text = render();
	CHECK_LINE(text, "xdrproxy_requests_total{tenant=\"acme\",code=\"200\","
	    "outcome=\"ok\"} 3");
	CHECK_LINE(text, "xdrproxy_request_duration_seconds_count{tenant="
	    "\"acme\"} 6");
	CHECK_LINE(text, "xdrproxy_client_header_timeouts_total 3");
	CHECK_LINE(text, "xdrproxy_requests_in_flight{tenant=\"acme\"} 1");
	free(text);

	/* More (code, outcome) pairs than a table holds: code="other". */
	for (i = 0; i < 60; i++)
		request(&w1, &odd, 500 + i, OUTCOME_UPSTREAM_ERROR, 10, 1);
	text = render();
	CHECK_LINE(text, "xdrproxy_requests_total{tenant=\"we\\\"ird\\\\\","
	    "code=\"500\",outcome=\"upstream_error\"} 1");
	CHECK_LINE(text, "xdrproxy_requests_total{tenant=\"we\\\"ird\\\\\","
	    "code=\"543\",outcome=\"upstream_error\"} 1");
	CHECK(strstr(text, "code=\"544\"") == NULL);
	CHECK_LINE(text, "xdrproxy_requests_total{tenant=\"we\\\"ird\\\\\","
	    "code=\"other\",outcome=\"upstream_error\"} 16");
	snprintf(line, sizeof(line), "xdrproxy_request_duration_seconds_count"
	    "{tenant=\"we\\\"ird\\\\\"} 60");
	CHECK_LINE(text, line);
	free(text);

	/* A tenant named again (a reload) finds its slot and counts. */
	CHECK(metrics_tenant_slot("beta") == 2);
	CHECK(metrics_tenant_slot(odd.tn_name) == 1);
	metrics_reload_result(1);
	metrics_reload_result(0);
	metrics_reload_result(0);
	text = render();
	CHECK_LINE(text, "xdrproxy_config_reloads_total{result=\"success\"} 1");
	CHECK_LINE(text, "xdrproxy_config_reloads_total{result=\"failure\"} 2");
	CHECK_LINE(text, "xdrproxy_requests_in_flight{tenant=\"beta\"} 0");
	free(text);

	metrics_worker_remove(&w1);
	metrics_free();
}

int
main(void)
{
	test_escape();
	test_render();
	return unit_exit("test_metrics");
}
