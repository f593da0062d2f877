/*
 * test_govconf.c: the governor's settings (rates, limit lines, the rate
 * backend's address, what a tenant takes from [proxy]), the retry
 * arithmetic (backoff, Retry-After) and which XQL call a path is.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

#include "xdrproxy.h"
#include "unit.h"

static void
test_rate(void)
{
	struct gov_rate	 gr;

	CHECK(gov_parse_rate("10/s", &gr) == 0);
	CHECK(gr.gr_interval_us == 100000);
	CHECK_STR(gr.gr_text, "10/s");
	CHECK(gov_parse_rate("10/min", &gr) == 0);
	CHECK(gr.gr_interval_us == 6000000);
	CHECK_STR(gr.gr_text, "10/min");
	CHECK(gov_parse_rate("600/minute", &gr) == 0);
	CHECK(gr.gr_interval_us == 100000);
	CHECK(gov_parse_rate("1/h", &gr) == 0);
	CHECK(gr.gr_interval_us == 3600000000ULL);
	CHECK(gov_parse_rate("3/sec", &gr) == 0);
	CHECK(gr.gr_interval_us == 333333);
	CHECK(gov_parse_rate("1000000/s", &gr) == 0);
	CHECK(gr.gr_interval_us == 1);
	CHECK(gov_parse_rate("0", &gr) == 0);
	CHECK(gr.gr_interval_us == 0);
	CHECK(gov_parse_rate("", &gr) == -1);
	CHECK(gov_parse_rate("10", &gr) == -1);
	CHECK(gov_parse_rate("0/s", &gr) == -1);
	CHECK(gov_parse_rate("10/d", &gr) == -1);
	CHECK(gov_parse_rate("-1/s", &gr) == -1);
	CHECK(gov_parse_rate("1.5/s", &gr) == -1);
	CHECK(gov_parse_rate("10/s ", &gr) == -1);
	CHECK(gov_parse_rate("1000001/s", &gr) == -1);
	CHECK(gov_parse_rate("99999999999999999999/s", &gr) == -1);
}

static void
test_limits(void)
{
	struct gov_conf			 px, tn;
	const struct gov_limit_conf	*l;
	const char			*p;
	char				*why;

	gov_conf_defaults(&px);
	CHECK(gov_limit_add(&px, "/public_api/v1/x/a* 2/s burst=3", "f", 7,
	    &why) == 0);
	CHECK(gov_limit_add(&px, "/public_api/v1/x/b*  5/min", "f", 8,
	    &why) == 0);
	CHECK(gov_limit_add(&px, "x 1/s", "f", 9, &why) == -1 && why != NULL);
	free(why);
	CHECK(gov_limit_add(&px, "/x", "f", 9, &why) == -1 && why != NULL);
	free(why);
	CHECK(gov_limit_add(&px, "/x 1/fortnight", "f", 9, &why) == -1 &&
	    why != NULL);
	free(why);
	CHECK(gov_limit_add(&px, "/x 1/s burst=0", "f", 9, &why) == -1 &&
	    why != NULL);
	free(why);
	CHECK(gov_limit_add(&px, "/x 1/s burst=2 more", "f", 9, &why) == -1 &&
	    why != NULL);
	free(why);
	CHECK(gov_limit_add(&px, "/x 1/s bursty=2", "f", 9, &why) == -1 &&
	    why != NULL);
	free(why);
	CHECK(gov_limit_add(&px, "/x%zz 1/s", "f", 9, &why) == -1 &&
	    why != NULL);
	free(why);
	CHECK(px.gc_nlimits == 2);
	CHECK(px.gc_limits[0].glc_burst == 3);
	CHECK(px.gc_limits[1].glc_burst == 1);	/* per-call: burst 1 */
	CHECK(gov_conf_finish(&px) == 0);
	/* The built-in limit comes after [proxy]'s own lines. */
	CHECK(px.gc_nlimits == 3);
	CHECK(px.gc_limits[2].glc_line == 0);
	CHECK(px.gc_retry_paths.sl_n == 2);

	gov_conf_unset(&tn);
	CHECK(gov_limit_add(&tn, "/public_api/v1/x/a* 0", "f", 20, &why) ==
	    0);
	CHECK(gov_parse_rate("4/s", &tn.gc_rate) == 0);
	CHECK(gov_conf_inherit(&tn, &px) == 0);
	CHECK(tn.gc_rate.gr_interval_us == 250000);	/* its own */
	CHECK(tn.gc_burst == 10);			/* [proxy]'s */
	CHECK(tn.gc_queue_max == 1000);
	CHECK(tn.gc_queue_timeout == 30000);
	CHECK(tn.gc_xql_max == 4);
	CHECK(tn.gc_retry_max == 3);
	CHECK(tn.gc_retry_base == 500);
	CHECK(tn.gc_retry_cap == 10000);
	CHECK(tn.gc_nlimits == 4);
	/* The tenant's own line wins: rate 0, no limit for /x/a. */
	p = "/public_api/v1/x/a/";
	l = gov_limit_find(&tn, p, strlen(p));
	CHECK(l != NULL && l->glc_rate.gr_interval_us == 0);
	p = "/public_api/v1/x/b";
	l = gov_limit_find(&tn, p, strlen(p));
	CHECK(l != NULL && l->glc_rate.gr_interval_us == 12000000);
	p = "/public_api/v1/incidents/get_incident_extra_data/";
	l = gov_limit_find(&tn, p, strlen(p));
	CHECK(l != NULL && l->glc_rate.gr_interval_us == 6000000 &&
	    l->glc_burst == 1);
	p = "/PUBLIC_API/v1/incidents/GET_INCIDENT_EXTRA_DATA";
	l = gov_limit_find(&tn, p, strlen(p));
	CHECK(l != NULL && l->glc_line == 0);
	p = "/public_api/v1/incidents/get_incidents/";
	CHECK(gov_limit_find(&tn, p, strlen(p)) == NULL);

	/* retry_paths: the defaults, a trailing '/' not significant. */
	p = "/public_api/v1/incidents/get_incidents/";
	CHECK(gov_retry_path(&tn, p, strlen(p)));
	p = "/public_api/v1/healthcheck/";
	CHECK(gov_retry_path(&tn, p, strlen(p)));
	p = "/public_api/v1/healthcheck";
	CHECK(gov_retry_path(&tn, p, strlen(p)));
	p = "/public_api/v1/incidents/update_incident/";
	CHECK(!gov_retry_path(&tn, p, strlen(p)));
	p = "/public_api/v1/xql/start_xql_query/";
	CHECK(!gov_retry_path(&tn, p, strlen(p)));
	gov_conf_free(&tn);
	gov_conf_free(&px);
	CHECK(gov_retry_path_check("*/get_*", &p) == 0);
	CHECK(gov_retry_path_check("get_*", &p) == -1);
	CHECK(gov_retry_path_check("/a%zz", &p) == -1);
}

static void
test_backend(void)
{
	struct gov_backend	 gb;
	const char		*why;

	CHECK(gov_backend_parse("redis://127.0.0.1:6379", &gb, &why) == 0);
	CHECK(gb.gb_kind == GOV_BACKEND_REDIS && gb.gb_port == 6379 &&
	    gb.gb_db == 0);
	CHECK_STR(gb.gb_host, "127.0.0.1");
	CHECK(gov_backend_parse("redis://redis.example:6380/3", &gb, &why) ==
	    0);
	CHECK(gb.gb_db == 3 && gb.gb_port == 6380);
	CHECK_STR(gb.gb_host, "redis.example");
	/* Debian 12's hiredis has no TLS: said so, not silently plain. */
	CHECK(gov_backend_parse("rediss://redis.example:6380", &gb, &why) ==
	    -1);
	CHECK(strstr(why, "TLS") != NULL);
	CHECK(gov_backend_parse("redis://[::1]:6379/", &gb, &why) == 0);
	CHECK_STR(gb.gb_host, "::1");
	CHECK(gov_backend_parse("unix:/run/redis.sock?db=2", &gb, &why) == 0);
	CHECK(gb.gb_kind == GOV_BACKEND_UNIX && gb.gb_db == 2);
	CHECK_STR(gb.gb_host, "/run/redis.sock");
	CHECK(gov_backend_parse("local", &gb, &why) == 0);
	CHECK(gb.gb_kind == GOV_BACKEND_LOCAL);
	CHECK(gov_backend_parse("redis://127.0.0.1", &gb, &why) == -1);
	CHECK(gov_backend_parse("redis://:6379", &gb, &why) == -1);
	CHECK(gov_backend_parse("redis://h:0", &gb, &why) == -1);
	CHECK(gov_backend_parse("redis://h:65536", &gb, &why) == -1);
	CHECK(gov_backend_parse("redis://h:6379/x", &gb, &why) == -1);
	CHECK(gov_backend_parse("redis://user:pw@h:6379", &gb, &why) == -1);
	CHECK(strstr(why, "redis_password_file") != NULL);
	CHECK(gov_backend_parse("unix:run/redis.sock", &gb, &why) == -1);
	CHECK(gov_backend_parse("unix:/r?db=x", &gb, &why) == -1);
	CHECK(gov_backend_parse("memcached://h:1", &gb, &why) == -1);
}

static void
test_retry(void)
{
	struct gov_conf	 gc;
	unsigned int	 d, i;

	gov_conf_defaults(&gc);
	/* Full jitter: up to base * 2^(attempt-1), capped. */
	CHECK(retry_delay_ms(&gc, 1, 0, 0) == 0);
	CHECK(retry_delay_ms(&gc, 1, 0, 500) == 500);
	CHECK(retry_delay_ms(&gc, 1, 0, 501) == 0);
	CHECK(retry_delay_ms(&gc, 2, 0, 1000) == 1000);
	CHECK(retry_delay_ms(&gc, 3, 0, 2000) == 2000);
	for (i = 0; i < 1000; i++) {
		d = retry_delay_ms(&gc, 10, 0, i * 7919u * 104729u);
		CHECK(d <= 10000);
	}
	CHECK(retry_delay_ms(&gc, 30, 0, 10000) == 10000);
	/* Never shorter than the tenant's Retry-After. */
	CHECK(retry_delay_ms(&gc, 1, 3000, 7) == 3000);
	CHECK(retry_after_ms("2") == 2000);
	CHECK(retry_after_ms("0") == 0);
	CHECK(retry_after_ms("x") == 0);
	CHECK(retry_after_ms("2s") == 0);
	CHECK(retry_after_ms("99999999") == 86400 * 1000);
	CHECK(retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT") == 0);
	gov_conf_free(&gc);
}

#define XK(s)	xql_kind((s), strlen(s))
#define XID(s)	xql_request_id((s), strlen(s))

static void
test_xql(void)
{
	char	*id;

	CHECK(XK("/public_api/v1/xql/start_xql_query/") ==
	    XQL_START);
	CHECK(XK("/public_api/v1/xql/start_xql_query") == XQL_START);
	CHECK(XK("/public_api/v1/xql/get_query_results/") ==
	    XQL_RESULTS);
	CHECK(XK("/public_api/v1/xql/get_query_results_stream/") ==
	    XQL_NONE);
	CHECK(XK("/public_api/v1/incidents/get_incidents/") ==
	    XQL_NONE);
	CHECK(XK("") == XQL_NONE);
	id = XID("{\"request_data\":{\"query_id\":\"q-1\","
	    "\"pending_flag\":true}}");
	CHECK_STR(id, "q-1");
	free(id);
	CHECK(XID("{\"request_data\":{\"query_id\":7}}") ==
	    NULL);
	CHECK(XID("{\"request_data\":") == NULL);
	CHECK(XID("") == NULL);
	CHECK(XID("[1,2]") == NULL);
}

int
main(void)
{
	test_rate();
	test_limits();
	test_backend();
	test_retry();
	test_xql();
	return unit_exit("test_govconf");
}
