/*
 * test_filter.c: framing, browser and Host checks, request targets and
 * which headers pass in each direction.
 */
#include "config.h"

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
	CHECK(framing(&b, "Authorization ", "x", NULL) == -1);
	CHECK(framing(&b, "Transfer Encoding", "x", NULL) == -1);
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
	headers(&h, "sec-fetch-mode", "no-cors", NULL);
	CHECK(filter_browser(&h, &which) == -1);
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
	CHECK(filter_request_header("Content-Type", NULL) == FILTER_PASS);
	CHECK(filter_request_header("Accept-Encoding", NULL) == FILTER_PASS);
	CHECK(filter_request_header("User-Agent", NULL) == FILTER_PASS);
	CHECK(filter_request_header("X-Custom", NULL) == FILTER_PASS);
	CHECK(filter_request_header("Authorization", NULL) == FILTER_DROP);
	CHECK(filter_request_header("authorization", NULL) == FILTER_DROP);
	CHECK(filter_request_header("Proxy-Authorization", NULL) ==
	    FILTER_DROP);
	CHECK(filter_request_header("x-xdr-auth-id", NULL) == FILTER_DROP);
	CHECK(filter_request_header("X-XDR-Nonce", NULL) == FILTER_DROP);
	CHECK(filter_request_header("x-xdr-timestamp", NULL) == FILTER_DROP);
	CHECK(filter_request_header("X-Xdr-Anything", NULL) == FILTER_DROP);
	CHECK(filter_request_header("x-xdrproxy", NULL) == FILTER_PASS);
	CHECK(filter_request_header("Connection", NULL) == FILTER_DROP);
	CHECK(filter_request_header("Keep-Alive", NULL) == FILTER_DROP);
	CHECK(filter_request_header("TE", NULL) == FILTER_DROP);
	CHECK(filter_request_header("Trailer", NULL) == FILTER_DROP);
	CHECK(filter_request_header("Upgrade", NULL) == FILTER_DROP);
	CHECK(filter_request_header("Proxy-Connection", NULL) == FILTER_DROP);
	CHECK(filter_request_header("Transfer-Encoding", NULL) == FILTER_DROP);
	CHECK(filter_request_header("Content-Length", NULL) == FILTER_DROP);
	CHECK(filter_request_header("Host", NULL) == FILTER_DROP);
	CHECK(filter_request_header("X-Foo", "keep-alive, X-Foo") ==
	    FILTER_DROP);
	CHECK(filter_request_header("X-Foo", ",close,x-foo") == FILTER_DROP);
	CHECK(filter_request_header("X-Foobar", "X-Foo") == FILTER_PASS);
	CHECK(filter_response_header("Content-Type", NULL) == FILTER_PASS);
	CHECK(filter_response_header("Content-Length", NULL) == FILTER_PASS);
	CHECK(filter_response_header("Content-Encoding", NULL) == FILTER_PASS);
	CHECK(filter_response_header("Set-Cookie", NULL) == FILTER_PASS);
	CHECK(filter_response_header("Transfer-Encoding", NULL) ==
	    FILTER_DROP);
	CHECK(filter_response_header("Connection", NULL) == FILTER_DROP);
	CHECK(filter_response_header("keep-alive", NULL) == FILTER_DROP);
	CHECK(filter_response_header("X-Hop", "X-Hop") == FILTER_DROP);
	CHECK(filter_token_listed("a, b ,c", "b"));
	CHECK(!filter_token_listed("a, bb", "b"));
	CHECK(!filter_token_listed(NULL, "b"));
	CHECK(!filter_token_listed("", "b"));
}

int
main(void)
{
	test_framing();
	test_browser();
	test_host();
	test_uri();
	test_headers();
	return unit_exit("test_filter");
}
