/*
 * test_filter.c: framing, browser and Host checks, request targets and
 * which headers pass in each direction.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "xdrproxy.h"
#include "unit.h"

/* Build a header list from "Name", "value", ..., NULL. */
static void
headers(struct evkeyvalq *h, ...)
{
	va_list		 ap;
	const char	*k, *v;

	TAILQ_INIT(h);
	va_start(ap, h);
	while ((k = va_arg(ap, const char *)) != NULL) {
		v = va_arg(ap, const char *);
		evhttp_add_header(h, k, v);
	}
	va_end(ap);
}

static int
framing(int *has_body, ...)
{
	struct evkeyvalq	 h;
	const char		*why = NULL, *k, *v;
	va_list			 ap;
	int			 rc;

	TAILQ_INIT(&h);
	va_start(ap, has_body);
	while ((k = va_arg(ap, const char *)) != NULL) {
		v = va_arg(ap, const char *);
		evhttp_add_header(&h, k, v);
	}
	va_end(ap);
	rc = filter_framing(&h, has_body, &why);
	CHECK(rc == 0 || why != NULL);
	evhttp_clear_headers(&h);
	return rc;
}

static void
test_framing(void)
{
	int	 b;

	CHECK(framing(&b, "Host", "x", NULL) == 0 && b == 0);
	CHECK(framing(&b, "Content-Length", "12", NULL) == 0 && b == 1);
	CHECK(framing(&b, "Content-Length", "0", NULL) == 0 && b == 1);
	CHECK(framing(&b, "Transfer-Encoding", "chunked", NULL) == 0 && b);
	CHECK(framing(&b, "transfer-encoding", "Chunked", NULL) == 0 && b);
	CHECK(framing(&b, "Content-Length", "5", "Transfer-Encoding",
	    "chunked", NULL) == -1);
	CHECK(framing(&b, "Content-Length", "5", "Content-Length", "5",
	    NULL) == -1);
	CHECK(framing(&b, "Content-Length", "5", "content-length", "6",
	    NULL) == -1);
	CHECK(framing(&b, "Content-Length", "+5", NULL) == -1);
	CHECK(framing(&b, "Content-Length", "5 ", NULL) == -1);
	CHECK(framing(&b, "Content-Length", "", NULL) == -1);
	CHECK(framing(&b, "Content-Length", "-1", NULL) == -1);
	CHECK(framing(&b, "Content-Length", "0x10", NULL) == -1);
	CHECK(framing(&b, "Content-Length", "99999999999999999999",
	    NULL) == -1);
	CHECK(framing(&b, "Transfer-Encoding", "gzip", NULL) == -1);
	CHECK(framing(&b, "Transfer-Encoding", "gzip, chunked", NULL) == -1);
	CHECK(framing(&b, "Transfer-Encoding", "chunked", "Transfer-Encoding",
	    "chunked", NULL) == -1);
	CHECK(framing(&b, "X-Ok_1.2~", "x", NULL) == 0);
}

static void
test_browser(void)
{
	struct evkeyvalq	 h;
	const char		*which = NULL;

	headers(&h, "Host", "localhost", "User-Agent", "curl/7.88.1", NULL);
	CHECK(filter_browser(&h, &which) == 0);
	evhttp_clear_headers(&h);
	headers(&h, "Origin", "https://evil.example", NULL);
	CHECK(filter_browser(&h, &which) == -1);
	CHECK_STR(which, "Origin");
	evhttp_clear_headers(&h);
	headers(&h, "origin", "null", NULL);
	CHECK(filter_browser(&h, &which) == -1);
	evhttp_clear_headers(&h);
	headers(&h, "Sec-Fetch-Site", "cross-site", NULL);
	CHECK(filter_browser(&h, &which) == -1);
	CHECK_STR(which, "Sec-Fetch-Site");
	evhttp_clear_headers(&h);
	headers(&h, "Sec-Fetch-Dest", "empty", NULL);
	CHECK(filter_browser(&h, &which) == -1);
	CHECK_STR(which, "Sec-Fetch-Dest");
	evhttp_clear_headers(&h);
	headers(&h, "sec-fetch-user", "?1", NULL);
	CHECK(filter_browser(&h, &which) == -1);
	CHECK_STR(which, "Sec-Fetch-User");
	evhttp_clear_headers(&h);
	/* Node's fetch (undici) sends Sec-Fetch-Mode alone: not a browser. */
	headers(&h, "sec-fetch-mode", "cors", "Accept", "*/*", NULL);
	CHECK(filter_browser(&h, &which) == 0);
	evhttp_clear_headers(&h);
}

static void
test_host(void)
{
	static const char *const names[] = { "localhost", "127.0.0.1", "::1",
	    "proxy.internal" };
	char	 n[256];

	CHECK(filter_host_name("localhost:8080", n, sizeof(n)) == 0);
	CHECK_STR(n, "localhost");
	CHECK(filter_host_name("127.0.0.1", n, sizeof(n)) == 0);
	CHECK_STR(n, "127.0.0.1");
	CHECK(filter_host_name("[::1]:8080", n, sizeof(n)) == 0);
	CHECK_STR(n, "::1");
	CHECK(filter_host_name("[::1]", n, sizeof(n)) == 0);
	CHECK_STR(n, "::1");
	CHECK(filter_host_name("LocalHost.:80", n, sizeof(n)) == 0);
	CHECK_STR(n, "LocalHost");
	CHECK(filter_host_name("", n, sizeof(n)) == -1);
	CHECK(filter_host_name("[::1", n, sizeof(n)) == -1);
	CHECK(filter_host_name("a:b", n, sizeof(n)) == -1);
	CHECK(filter_host_name("x y", n, sizeof(n)) == -1);
	CHECK(filter_host_name("localhost:123456", n, sizeof(n)) == -1);
	CHECK(filter_host_allowed("LOCALHOST", names, 4));
	CHECK(filter_host_allowed("::1", names, 4));
	CHECK(filter_host_allowed("proxy.internal", names, 4));
	CHECK(!filter_host_allowed("evil.example", names, 4));
	CHECK(!filter_host_allowed("localhost.evil.example", names, 4));
	CHECK(!filter_host_allowed("127.0.0.2", names, 4));
}

static void
test_uri(void)
{
	char		*v[] = { "/public_api/" };
	struct strlist	 allow = { v, 1 };
	const char	*why;
	int		 st;

	CHECK(filter_uri("/public_api/v1/incidents/get_incidents/", &allow,
	    &st, &why) == 0);
	CHECK(filter_uri("/public_api/v1/incidents/get_incidents", &allow,
	    &st, &why) == 0);
	CHECK(filter_uri("/public_api/v2/alerts/get_alerts_multi_events/"
	    "?a=1&b=%20x", &allow, &st, &why) == 0);
	CHECK(filter_uri("/public_api/v1/x/..y/", &allow, &st, &why) == 0);
	CHECK(filter_uri("/other/path", &allow, &st, &why) == -1 && st == 403);
	CHECK(filter_uri("/public_api", &allow, &st, &why) == -1 && st == 403);
	CHECK(filter_uri("/", &allow, &st, &why) == -1 && st == 403);
	CHECK(filter_uri("/?/public_api/", &allow, &st, &why) == -1 &&
	    st == 403);
	CHECK(filter_uri("http://x/public_api/", &allow, &st, &why) == -1 &&
	    st == 400);
	CHECK(filter_uri("/public_api/../admin", &allow, &st, &why) == -1 &&
	    st == 400);
	CHECK(filter_uri("/public_api/%2e%2E/admin", &allow, &st, &why) ==
	    -1 && st == 400);
	CHECK(filter_uri("/public_api/.%2e/admin", &allow, &st, &why) == -1);
	CHECK(filter_uri("/public_api/./x", &allow, &st, &why) == -1);
	CHECK(filter_uri("/public_api/v1/..", &allow, &st, &why) == -1);
	CHECK(filter_uri("/public_api/..%2fadmin", &allow, &st, &why) == -1);
	CHECK(filter_uri("/public_api/..%5Cadmin", &allow, &st, &why) == -1);
	CHECK(filter_uri("/public_api/..;x=1/admin", &allow, &st, &why) == -1);
	CHECK(filter_uri("/public_api/.;/x", &allow, &st, &why) == -1);
	CHECK(filter_uri("/public_api/v1/a;b=1/", &allow, &st, &why) == 0);
	CHECK(filter_uri("/public_api/a\\b", &allow, &st, &why) == -1);
	CHECK(filter_uri("/public_api/a b", &allow, &st, &why) == -1 &&
	    st == 400);
	CHECK(filter_uri("/public_api/a#b", &allow, &st, &why) == -1);
	CHECK(filter_uri("/public_api/\x01", &allow, &st, &why) == -1);
	CHECK(filter_uri("/public_api/\xc3\xa9", &allow, &st, &why) == -1);
	/* Dots and encoded slashes in the query are the tenant's business. */
	CHECK(filter_uri("/public_api/v1/x?p=../%2f", &allow, &st, &why) == 0);
}

static void
test_headers(void)
{
	struct evkeyvalq	 h;
	enum filter_dir		 t = FILTER_TO_TENANT, c = FILTER_TO_CLIENT;

	CHECK(filter_header(t, "Content-Type", NULL) == FILTER_PASS);
	CHECK(filter_header(t, "Accept-Encoding", NULL) == FILTER_PASS);
	CHECK(filter_header(t, "User-Agent", NULL) == FILTER_PASS);
	CHECK(filter_header(t, "X-Custom", NULL) == FILTER_PASS);
	CHECK(filter_header(t, "Authorization", NULL) == FILTER_DROP);
	CHECK(filter_header(t, "authorization", NULL) == FILTER_DROP);
	CHECK(filter_header(t, "Proxy-Authorization", NULL) == FILTER_DROP);
	CHECK(filter_header(t, "x-xdr-auth-id", NULL) == FILTER_DROP);
	CHECK(filter_header(t, "X-XDR-Nonce", NULL) == FILTER_DROP);
	CHECK(filter_header(t, "x-xdr-timestamp", NULL) == FILTER_DROP);
	CHECK(filter_header(t, "X-Xdr-Anything", NULL) == FILTER_DROP);
	CHECK(filter_header(t, "x-xdrproxy", NULL) == FILTER_PASS);
	CHECK(filter_header(t, "Expect", NULL) == FILTER_DROP);
	CHECK(filter_header(t, "Host", NULL) == FILTER_DROP);
	CHECK(filter_header(c, "Content-Type", NULL) == FILTER_PASS);
	CHECK(filter_header(c, "Content-Encoding", NULL) == FILTER_PASS);
	CHECK(filter_header(c, "Set-Cookie", NULL) == FILTER_PASS);
	/* Not the client's credentials: the tenant's answer keeps them. */
	CHECK(filter_header(c, "Authorization", NULL) == FILTER_PASS);
	CHECK(filter_header(c, "x-xdr-anything", NULL) == FILTER_PASS);
	CHECK(filter_header(c, "Content-Length ", NULL) == FILTER_DROP);
	CHECK(filter_header(c, "X-Xdrproxy-Error", NULL) == FILTER_DROP);
	CHECK(filter_header(c, "x-xdrproxy-request-id", NULL) == FILTER_DROP);
	/* Hop-by-hop and framing, both ways. */
	for (t = FILTER_TO_TENANT; ; t = FILTER_TO_CLIENT) {
		CHECK(filter_header(t, "Connection", NULL) == FILTER_DROP);
		CHECK(filter_header(t, "Keep-Alive", NULL) == FILTER_DROP);
		CHECK(filter_header(t, "keep-alive", NULL) == FILTER_DROP);
		CHECK(filter_header(t, "TE", NULL) == FILTER_DROP);
		CHECK(filter_header(t, "Trailer", NULL) == FILTER_DROP);
		CHECK(filter_header(t, "Upgrade", NULL) == FILTER_DROP);
		CHECK(filter_header(t, "Proxy-Connection", NULL) ==
		    FILTER_DROP);
		CHECK(filter_header(t, "Transfer-Encoding", NULL) ==
		    FILTER_DROP);
		CHECK(filter_header(t, "Content-Length", NULL) == FILTER_DROP);
		headers(&h, "Connection", "keep-alive, X-Foo", "Connection",
		    ",close,x-bar", NULL);
		CHECK(filter_header(t, "X-Foo", &h) == FILTER_DROP);
		CHECK(filter_header(t, "x-bar", &h) == FILTER_DROP);
		CHECK(filter_header(t, "X-Foobar", &h) == FILTER_PASS);
		CHECK(filter_header(t, "X-Fo", &h) == FILTER_PASS);
		evhttp_clear_headers(&h);
		if (t == FILTER_TO_CLIENT)
			break;
	}
	CHECK(filter_token_listed("a, b ,c", "b"));
	CHECK(!filter_token_listed("a, bb", "b"));
	CHECK(!filter_token_listed(NULL, "b"));
	CHECK(!filter_token_listed("", "b"));
}

/*
 * Every admission rule through filter_request(): a request of method cmd
 * and HTTP/1.minor with the given headers ("Name", "value", ..., NULL).
 */
static const char *const req_names[] = { "localhost", "127.0.0.1", "::1" };
static struct filter_res res;
static char which[64];

static int
admit(enum evhttp_cmd_type cmd, int minor, const char *uri, int head_bad,
    ...)
{
	static char		*allow_v[] = { "/public_api/" };
	static struct strlist	 allow = { allow_v, 1 };
	struct filter_req	 fq;
	struct evkeyvalq	 h;
	struct evkeyval		*kv;
	const char		*k, *v;
	va_list			 ap;
	int			 rc;

	/* Nodes by hand: evhttp_add_header() refuses some of these bytes. */
	TAILQ_INIT(&h);
	va_start(ap, head_bad);
	while ((k = va_arg(ap, const char *)) != NULL) {
		v = va_arg(ap, const char *);
		kv = calloc(1, sizeof(*kv));
		kv->key = strdup(k);
		kv->value = strdup(v);
		TAILQ_INSERT_TAIL(&h, kv, next);
	}
	va_end(ap);
	memset(&fq, 0, sizeof(fq));
	fq.fq_cmd = cmd;
	fq.fq_major = 1;
	fq.fq_minor = minor;
	fq.fq_headers = &h;
	fq.fq_uri = uri;
	fq.fq_head_bad = head_bad;
	fq.fq_max_count = 8;
	fq.fq_allow = &allow;
	fq.fq_names = req_names;
	fq.fq_nnames = 3;
	fq.fq_local = "192.0.2.1";
	rc = filter_request(&fq, &res);
	CHECK(rc == 0 || (res.fs_code != NULL && res.fs_why != NULL));
	/* fs_which may point into the headers: keep a copy. */
	if (res.fs_which != NULL) {
		snprintf(which, sizeof(which), "%s", res.fs_which);
		res.fs_which = which;
	}
	evhttp_clear_headers(&h);
	return rc;
}

#define P	"/public_api/v1/x/"

static void
test_request(void)
{
	enum evhttp_cmd_type	 get = EVHTTP_REQ_GET, post = EVHTTP_REQ_POST;

	CHECK(admit(get, 1, P, 0, "Host", "localhost", NULL) == 0);
	CHECK(res.fs_has_body == 0);
	CHECK(admit(post, 1, P, 0, "Host", "localhost:8080",
	    "Content-Length", "2", NULL) == 0);
	CHECK(res.fs_has_body == 1);
	CHECK(admit(get, 1, P, 0, "Host", "192.0.2.1", NULL) == 0);
	/* HTTP/1.0 may leave Host out; HTTP/1.1 may not (RFC 9112 3.2). */
	CHECK(admit(get, 0, P, 0, NULL) == 0);
	CHECK(admit(get, 1, P, 0, NULL) == -1);
	CHECK(res.fs_status == 400 && res.fs_close);
	CHECK(admit(get, 1, P, 0, "Host", "localhost", "Host", "evil.example",
	    NULL) == -1);
	CHECK(res.fs_status == 400 && res.fs_close);
	CHECK(admit(get, 0, P, 0, "Host", "localhost", "host", "localhost",
	    NULL) == -1);
	/* Raw NUL or control byte in the head, control bytes in a value. */
	CHECK(admit(get, 1, P, 1, "Host", "localhost", NULL) == -1);
	CHECK(res.fs_status == 400 && res.fs_close);
	CHECK(admit(get, 1, P, 0, "Host", "localhost", "X-A", "a\001b",
	    NULL) == -1);
	CHECK(res.fs_status == 400);
	CHECK_STR(res.fs_which, "X-A");
	CHECK(admit(get, 1, P, 0, "Host", "localhost", "X-A", "a\177", NULL) ==
	    -1);
	CHECK(admit(get, 1, P, 0, "Host", "localhost", "X-A", "a\tb \xe9",
	    NULL) == 0);
	CHECK(admit(get, 1, P, 0, "Host", "localhost", "Authorization ", "x",
	    NULL) == -1);
	CHECK(admit(get, 1, P, 0, "Host", "localhost", "Transfer Encoding",
	    "x", NULL) == -1);
	CHECK(admit(get, 1, P, 0, "Host", "localhost", "", "x", NULL) == -1);
	/* Header count: 8 here. */
	CHECK(admit(get, 1, P, 0, "Host", "localhost", "a", "1", "b", "2", "c",
	    "3", "d", "4", "e", "5", "f", "6", "g", "7", NULL) == 0);
	CHECK(admit(get, 1, P, 0, "Host", "localhost", "a", "1", "b", "2", "c",
	    "3", "d", "4", "e", "5", "f", "6", "g", "7", "h", "8", NULL) == -1);
	CHECK(res.fs_status == 431);
	/* Framing. */
	CHECK(admit(post, 1, P, 0, "Host", "localhost", "Content-Length", "1",
	    "Transfer-Encoding", "chunked", NULL) == -1);
	CHECK(res.fs_status == 400 && res.fs_close);
	/* CONNECT and TRACE: 405 whatever their Host. */
	CHECK(admit(EVHTTP_REQ_CONNECT, 1, "evil.example:443", 0, "Host",
	    "evil.example:443", NULL) == -1);
	CHECK(res.fs_status == 405);
	CHECK_STR(res.fs_code, "method_not_allowed");
	CHECK(res.fs_close);
	CHECK(admit(EVHTTP_REQ_TRACE, 1, P, 0, "Host", "localhost", NULL) ==
	    -1);
	CHECK(res.fs_status == 405);
	CHECK(admit(EVHTTP_REQ_TRACE, 1, P, 0, "Host", "localhost",
	    "Content-Length", "3", NULL) == -1);
	CHECK(res.fs_status == 405 && res.fs_close);
	CHECK(admit(EVHTTP_REQ_HEAD, 1, P, 0, "Host", "localhost",
	    "Content-Length", "3", NULL) == -1);
	CHECK(res.fs_status == 400 && res.fs_close);
	/* Browsers. */
	CHECK(admit(post, 1, P, 0, "Host", "localhost", "Origin", "null",
	    NULL) == -1);
	CHECK(res.fs_status == 403 && !res.fs_close);
	CHECK_STR(res.fs_code, "browser_request_refused");
	CHECK(admit(post, 1, P, 0, "Host", "localhost", "Sec-Fetch-Mode",
	    "cors", NULL) == 0);
	/* Host names. */
	CHECK(admit(get, 1, P, 0, "Host", "evil.example", NULL) == -1);
	CHECK(res.fs_status == 421 && !res.fs_close);
	CHECK_STR(res.fs_code, "misdirected_host");
	CHECK(admit(get, 1, P, 0, "Host", "a b", NULL) == -1);
	CHECK(res.fs_status == 400);
	CHECK(admit(get, 1, P, 0, "Host", "", NULL) == -1);
	CHECK(res.fs_status == 400);
	/* Targets. */
	CHECK(admit(get, 1, "/admin/", 0, "Host", "localhost", NULL) == -1);
	CHECK(res.fs_status == 403);
	CHECK_STR(res.fs_code, "path_not_allowed");
	CHECK(admit(get, 1, "/public_api/../x", 0, "Host", "localhost",
	    NULL) == -1);
	CHECK(res.fs_status == 400);
	CHECK(admit(get, 1, "http://evil.example/public_api/", 0, "Host",
	    "localhost", NULL) == -1);
	CHECK(res.fs_status == 400);
}

int
main(void)
{
	test_framing();
	test_browser();
	test_host();
	test_uri();
	test_headers();
	test_request();
	return unit_exit("test_filter");
}
