/*
 * retry.c: when an attempt may be sent again, and after how long. Safe
 * to repeat is what the tenant did not act on (nothing reached it, or it
 * answered 429), or, after a 502/503/504, a call that only reads
 * (retry_paths, GET, HEAD). Backoff is exponential with full jitter,
 * never shorter than the tenant's Retry-After; retries draw on the
 * tenant's retry budget (governor.c) so they never multiply an outage.
 * Every attempt goes through the governor again and is signed anew
 * (proxy.c). Once a byte of the answer went to the client, none is made.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/http.h>

#include "xdrproxy.h"

/* Does a call only read? GET and HEAD, and the retry_paths globs. */
static int
retry_safe(const struct request *req)
{
	if (strcmp(req->req_method, "GET") == 0 ||
	    strcmp(req->req_method, "HEAD") == 0)
		return 1;
	/* A spelling globs cannot read is no known read. */
	return req->req_canon != NULL &&
	    gov_retry_path(&req->req_tenant->tn_gov, req->req_canon,
	    req->req_canon_len);
}

/* One more attempt allowed, and the tenant's wait not beyond retry_cap? */
static int
retry_allowed(struct request *req)
{
	const struct gov_conf	*gc = &req->req_tenant->tn_gov;

	if (req->req_reply_us != 0 || req->req_conn == NULL ||
	    req->req_attempts > (unsigned int)gc->gc_retry_max)
		return 0;
	if (req->req_retry_wait_ms > gc->gc_retry_cap)
		return 0;
	return governor_retry_take(req);
}

/*
 * The tenant's final status line and headers are in: retry instead of
 * answering? 1 if so (the body is then dropped), else 0.
 */
int
retry_status(struct request *req)
{
	int	 status = req->req_upstream_status;

	if (status == 429)
		return retry_allowed(req);
	if ((status == 502 || status == 503 || status == 504) &&
	    retry_safe(req))
		return retry_allowed(req);
	return 0;
}

/*
 * The transfer failed before any answer: retry? Always when nothing was
 * sent (no connection, or TLS broke before the request went out), but
 * never past a failed verification; after the request went out only for
 * calls that are safe to repeat.
 */
int
retry_error(struct request *req, CURL *easy, CURLcode rc)
{
	long	 sent = 0;

	if (req->req_upstream_status != 0)
		return 0;
	switch (rc) {
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
	case CURLE_OUT_OF_MEMORY:
	case CURLE_WRITE_ERROR:
	case CURLE_ABORTED_BY_CALLBACK:
		return 0;
	default:
		break;
	}
	/* Through an egress proxy that refused the CONNECT: no use. */
	if (req->req_tenant->tn_egress_used) {
		long	 code = 0;

		curl_easy_getinfo(easy, CURLINFO_HTTP_CONNECTCODE, &code);
		if (code >= 300 && code < 500)
			return 0;
	}
	curl_easy_getinfo(easy, CURLINFO_REQUEST_SIZE, &sent);
	if (sent == 0 || retry_safe(req))
		return retry_allowed(req);
	return 0;
}

/*
 * The tenant's Retry-After (delta-seconds or an HTTP-date), in ms; 0 if
 * absent or unreadable.
 */
unsigned int
retry_after_ms(const char *value)
{
	char		*end;
	unsigned long	 s;
	int64_t		 when;
	time_t		 now;

	if (*value >= '0' && *value <= '9') {
		errno = 0;
		s = strtoul(value, &end, 10);
		if (errno != 0 || *end != '\0')
			return 0;
		return s > 86400 ? 86400 * 1000 : (unsigned int)s * 1000;
	}
	if (clock_parse_date(value, &when) == -1)
		return 0;
	now = time(NULL);
	if (when <= (int64_t)now)
		return 0;
	return when - (int64_t)now > 86400 ? 86400 * 1000 :
	    (unsigned int)(when - (int64_t)now) * 1000;
}

/*
 * How long before the next attempt: full jitter, a random time up to
 * min(retry_cap, retry_base * 2^(attempt - 1)), but at least the
 * tenant's Retry-After. r is a random 32-bit value.
 */
unsigned int
retry_delay_ms(const struct gov_conf *gc, unsigned int attempt,
    unsigned int tenant_ms, uint32_t r)
{
	uint64_t	 ceiling = gc->gc_retry_base;
	unsigned int	 i, d;

	for (i = 1; i < attempt && ceiling < gc->gc_retry_cap; i++)
		ceiling *= 2;
	if (ceiling > gc->gc_retry_cap)
		ceiling = gc->gc_retry_cap;
	d = (unsigned int)((uint64_t)r % (ceiling + 1));
	return d > tenant_ms ? d : tenant_ms;
}
