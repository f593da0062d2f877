/*
 * proxy.c: the stages of one request, in order. proxy_handle() admits
 * what evhttp read (filter.c), then starts the transfer (upstream.c);
 * upstream.c reports the tenant's answer through proxy_upstream_cbs, and
 * the answer streams back to the client with backpressure. Every end
 * goes through request.c (request_fail, request_finish), which owns the
 * lifecycle and is the only place a request is freed.
 */
#include "config.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
/* The request's HTTP version: libevent 2.1 has no accessor for it. */
#include <event2/http_struct.h>

#include "xdrproxy.h"

/*
 * Pause the upstream once this much is waiting to go to the client, and
 * resume once it is down to PROXY_CLIENT_LWM, before it runs dry.
 */
#define PROXY_CLIENT_HWM	(256 * 1024)
#define PROXY_CLIENT_LWM	(64 * 1024)

/* req_up_clen when the tenant sent no Content-Length, or conflicting ones. */
#define PROXY_CLEN_NONE		(-1)
#define PROXY_CLEN_CONFLICT	(-2)

/* The most of a retried attempt's answer read and dropped. */
#define PROXY_RETRY_DISCARD_MAX	(1024 * 1024)

static void	proxy_idle_timeout(evutil_socket_t, short, void *);
static void	proxy_xql_begin(struct request *);
static void	proxy_admit(struct request *);
static void	proxy_forward(struct request *);
static void	proxy_retry_fire(struct request *);
static void	proxy_xql_keep(struct request *, const char *, size_t);
static void	proxy_xql_end(struct request *);
static const struct upstream_cbs proxy_upstream_cbs;

/*
 * evhttp stops reading a connection while its request is handled, so a
 * client that hangs up would go unnoticed until the first write. Keep
 * reading, with no read callback (evhttp's would reject the state): EOF
 * then reaches evhttp's error callback, which detaches the request and
 * calls proxy_client_closed(). Reading bytes the client sends meanwhile
 * is bounded by a watermark. The read timeout is off while the tenant
 * works; the write timeout catches a client that stops reading. The write
 * low watermark makes proxy_client_drained() run as the output falls to
 * PROXY_CLIENT_LWM rather than to empty, so a paused transfer resumes
 * while the socket still has data to send.
 */
static void
proxy_watch_client(struct request *req)
{
	struct bufferevent	*bev;
	bufferevent_data_cb	 wcb;
	bufferevent_event_cb	 ecb;
	void			*cbarg;
	struct timeval		 tv;

	tv = ms_timeval(req->req_conf->cf_client_timeout);
	bev = evhttp_connection_get_bufferevent(req->req_conn);
	bufferevent_getcb(bev, NULL, &wcb, &ecb, &cbarg);
	bufferevent_setcb(bev, NULL, wcb, ecb, cbarg);
	bufferevent_set_timeouts(bev, NULL, &tv);
	bufferevent_setwatermark(bev, EV_READ, 0,
	    req->req_conf->cf_max_headers + 64 * 1024);
	bufferevent_setwatermark(bev, EV_WRITE, PROXY_CLIENT_LWM, 0);
	bufferevent_enable(bev, EV_READ);
	server_watch_eof(req->req_conn);
}

/*
 * evhttp's callback for every request on a listener: check it, then start
 * the upstream transfer. Refusals are answered by request_end().
 */
void
proxy_handle(struct evhttp_request *http, void *arg)
{
	struct listener		*ln = arg;
	struct worker		*w = ln->ln_worker;
	struct request		*req;
	struct filter_req	 fq;
	struct filter_res	 fs;
	char			 local[64], why[256];

	if ((req = request_new(ln, http)) == NULL ||
	    (req->req_timer = evtimer_new(w->w_base, proxy_idle_timeout,
	    req)) == NULL) {
		if (req != NULL) {
			request_fail(req, 500, "internal_error",
			    "out of memory");
			return;
		}
		log_warnx("tenant %s: out of memory for a request",
		    ln->ln_tenant->tn_name);
		evhttp_send_error(http, 503, NULL);
		return;
	}
	if (w->w_draining) {
		req->req_close = 1;
		request_fail(req, 503, "shutting_down",
		    "xdrproxy is shutting down");
		return;
	}
	memset(&fq, 0, sizeof(fq));
	fq.fq_cmd = evhttp_request_get_command(http);
	fq.fq_major = http->major;
	fq.fq_minor = http->minor;
	fq.fq_headers = evhttp_request_get_input_headers(http);
	fq.fq_uri = req->req_uri;
	fq.fq_head_bad = server_head_bad(req->req_conn);
	fq.fq_max_count = req->req_conf->cf_max_header_count;
	fq.fq_allow = &req->req_tenant->tn_allow_paths;
	fq.fq_names = ln->ln_names;
	fq.fq_nnames = ln->ln_nnames;
	if (ln->ln_wildcard && server_local_name(req->req_conn, local,
	    sizeof(local)) == 0)
		fq.fq_local = local;
	if (filter_request(&fq, &fs) == -1) {
		req->req_close = fs.fs_close;
		if (fs.fs_which != NULL)
			request_fail(req, fs.fs_status, fs.fs_code, "%s (%s)",
			    fs.fs_why, fs.fs_which);
		else
			request_fail(req, fs.fs_status, fs.fs_code, "%s",
			    fs.fs_why);
		return;
	}
	/* Who may call what: on the bytes that will be sent (policy.c). */
	if (policy_check(req) == -1)
		return;
	if (expiry_refused(req, why, sizeof(why)) == -1) {
		request_fail(req, 503, "key_expired", "%s", why);
		return;
	}
	req->req_has_body = fs.fs_has_body;
	request_canon(req);
	proxy_xql_begin(req);
	/* From here on a client that leaves is noticed, queued or not. */
	proxy_watch_client(req);
	proxy_admit(req);
}

/*
 * An XQL call whose answer the governor must read (xql.c): which one,
 * and for get_query_results the query it asks about.
 */
static void
proxy_xql_begin(struct request *req)
{
	struct evbuffer	*body;

	if (req->req_tenant->tn_gov.gc_xql_max == 0 || req->req_canon == NULL)
		return;
	req->req_xql = xql_kind(req->req_canon, req->req_canon_len);
	if (req->req_xql != XQL_RESULTS)
		return;
	body = evhttp_request_get_input_buffer(req->req_http);
	req->req_xql_id = xql_request_id((const char *)evbuffer_pullup(body,
	    -1), evbuffer_get_length(body));
}

/*
 * Through the governor: send now, wait for proxy_granted() (with
 * queue_timeout on the request's timer), or 429 when the queue is full.
 */
static void
proxy_admit(struct request *req)
{
	char	 why[192];

	switch (governor_admit(req, why, sizeof(why))) {
	case GOV_GO:
		proxy_forward(req);
		return;
	case GOV_QUEUED:
		req->req_state = REQ_WAITING;
		timer_add_ms(req->req_timer,
		    req->req_tenant->tn_gov.gc_queue_timeout);
		return;
	case GOV_FULL:
		request_fail(req, 429, "rate_limited", "%s", why);
		return;
	}
}

/* The governor granted a queued request (governor_take()): send it. */
void
proxy_granted(struct request *req)
{
	if (req->req_state != REQ_WAITING)
		return;
	evtimer_del(req->req_timer);
	proxy_forward(req);
}

/*
 * One attempt: the request record before the first, then a transfer
 * signed now (a retry gets a fresh nonce and timestamp).
 */
static void
proxy_forward(struct request *req)
{
	char	*cause = NULL;

	/* Once, before the first attempt. */
	if (req->req_attempts == 0) {
		if (audit_write(req, AUDIT_REQUEST) == -1) {
			if (req->req_conf->cf_audit_fail == AUDIT_FAIL_CLOSED) {
				audit_count_unavailable();
				request_fail(req, 503, "audit_unavailable",
				    "the audit record could not be written: %s",
				    strerror(errno));
				return;
			}
			log_warn("request %s: audit record not written; "
			    "forwarded (audit_fail = open)", req->req_id);
		}
	}
	req->req_up_clen = PROXY_CLEN_NONE;
	req->req_up_te = 0;
	req->req_upstream_status = 0;
	req->req_reason[0] = '\0';
	req->req_curl_error[0] = '\0';
	req->req_retry = 0;
	req->req_retry_discarded = 0;
	req->req_retry_wait_ms = 0;
	req->req_xql_gzip = 0;
	req->req_xql_big = 0;
	if (req->req_xql_body != NULL)
		evbuffer_drain(req->req_xql_body,
		    evbuffer_get_length(req->req_xql_body));
	req->req_state = REQ_FORWARDING;
	req->req_attempts++;
	if (upstream_start(req, req->req_has_body, &proxy_upstream_cbs,
	    &cause) == -1) {
		request_fail(req, 500, "internal_error", "%s", cause != NULL ?
		    cause : "out of memory");
		free(cause);
		return;
	}
	req->req_last_activity_us = request_clock_us(CLOCK_MONOTONIC_COARSE);
	timer_add_ms(req->req_timer, req->req_conf->cf_upstream_timeout);
}

/*
 * This attempt is to be sent again (retry.c decided): wait the backoff
 * on the request's timer, then proxy_retry_fire(). Called once libcurl
 * reported the end of the transfer, which stays in libcurl until then.
 */
static void
proxy_retry(struct request *req)
{
	const struct gov_conf	*gc = &req->req_tenant->tn_gov;
	uint32_t		 r = 0;
	unsigned int		 ms;
	char			 path[256];

	(void)sign_random(&req->req_worker->w_signer, &r, sizeof(r));
	ms = retry_delay_ms(gc, req->req_attempts, req->req_retry_wait_ms, r);
	log_escape(path, sizeof(path), req->req_uri, req->req_path_len);
	if (req->req_upstream_status != 0)
		log_info("request %s: tenant %s: %s %s: %d from the tenant; "
		    "attempt %u of %d in %u ms, signed anew", req->req_id,
		    req->req_tenant->tn_name, req->req_method, path,
		    req->req_upstream_status, req->req_attempts + 1,
		    gc->gc_retry_max + 1, ms);
	else
		log_info("request %s: tenant %s: %s %s: %s; attempt %u of %d "
		    "in %u ms, signed anew", req->req_id,
		    req->req_tenant->tn_name, req->req_method, path,
		    req->req_curl_error[0] != '\0' ? req->req_curl_error :
		    "no answer", req->req_attempts + 1, gc->gc_retry_max + 1,
		    ms);
	req->req_retry = 1;
	req->req_state = REQ_WAITING;
	/* Backing off, it holds no place (max_concurrent, XQL slot). */
	governor_done(req);
	timer_add_ms(req->req_timer, ms);
}

/*
 * The backoff is over: out of libcurl, back through the governor
 * (proxy_retry() gave back what the last attempt held).
 */
static void
proxy_retry_fire(struct request *req)
{
	upstream_detach(req);
	req->req_retry = 0;
	evhttp_clear_headers(evhttp_request_get_output_headers(req->req_http));
	proxy_admit(req);
}

/*
 * No byte from the tenant for upstream_timeout: 504 if nothing was sent
 * yet, else the response is cut off. A transfer paused for a slow client
 * is not the tenant's fault; the client's write timeout covers that.
 */
static void
proxy_idle_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct request	*req = arg;
	unsigned int	 limit = req->req_conf->cf_upstream_timeout;
	uint64_t	 idle, now = request_clock_us(CLOCK_MONOTONIC_COARSE);

	if (req->req_state == REQ_WAITING) {
		if (req->req_retry) {
			proxy_retry_fire(req);
			return;
		}
		/* queue_timeout; unless granted meanwhile (then it goes). */
		if (governor_cancel(req) == 0)
			request_fail(req, 429, "rate_limited", "waited %u ms for "
			    "the tenant's budget (queue_timeout)",
			    req->req_tenant->tn_gov.gc_queue_timeout);
		return;
	}
	if (req->req_state >= REQ_ENDING || req->req_xfer.ux_done)
		return;
	idle = (now - req->req_last_activity_us) / 1000;
	if (req->req_paused) {
		timer_add_ms(req->req_timer, limit);
		return;
	}
	if (idle < limit) {
		timer_add_ms(req->req_timer, limit - (unsigned int)idle);
		return;
	}
	request_fail(req, 504, "upstream_timeout", "no data from the tenant for "
	    "%u ms", limit);
}

/* The client's output buffer drained: resume a paused transfer. */
static void
proxy_client_drained(struct evhttp_connection *conn, void *arg)
{
	struct request	*req = arg;

	if (!req->req_paused || req->req_state >= REQ_ENDING)
		return;
	req->req_paused = 0;
	req->req_last_activity_us = request_clock_us(CLOCK_MONOTONIC_COARSE);
	upstream_resume(req);
}

/*
 * The final header block is complete: drop what is hop-by-hop, decide the
 * framing towards the client, send the status line and headers. The
 * client is told a Content-Length only when the tenant gave exactly one
 * and no Transfer-Encoding: then libcurl delivers exactly that many bytes
 * (or fails, and the client's connection is cut). Otherwise evhttp frames
 * the body itself (chunked, or the end of the connection for HTTP/1.0).
 */
static int
proxy_start_reply(struct request *req)
{
	struct evkeyvalq	*out, *in;
	struct evkeyval		*kv, *next;
	const struct evkeyvalq	*msg;
	const char		*conn;
	char			 clen[24];

	if (req->req_up_clen == PROXY_CLEN_CONFLICT) {
		request_fail(req, 502, "upstream_error", "the tenant sent "
		    "conflicting Content-Length values");
		return -1;
	}
	out = evhttp_request_get_output_headers(req->req_http);
	msg = evhttp_find_header(out, "Connection") != NULL ? out : NULL;
	/* Connection headers go last: they name the others. */
	for (kv = TAILQ_FIRST(out); kv != NULL; kv = next) {
		next = TAILQ_NEXT(kv, next);
		if (strcasecmp(kv->key, "Connection") != 0 &&
		    filter_header(FILTER_TO_CLIENT, kv->key, msg) ==
		    FILTER_DROP)
			evhttp_remove_header(out, kv->key);
	}
	while (evhttp_remove_header(out, "Connection") == 0)
		;
	if (req->req_up_clen >= 0 && !req->req_up_te) {
		snprintf(clen, sizeof(clen), "%lld", req->req_up_clen);
		evhttp_add_header(out, "Content-Length", clen);
	} else {
		/*
		 * Without a length, a keep-alive HTTP/1.0 client cannot find
		 * the end of the body (evhttp would announce Content-Length:
		 * 0): forget its keep-alive so the end of the body is the end
		 * of the connection. HTTP/1.1 clients get chunked encoding.
		 */
		in = evhttp_request_get_input_headers(req->req_http);
		conn = evhttp_find_header(in, "Connection");
		if (conn != NULL && strncasecmp(conn, "keep-alive", 10) == 0)
			evhttp_remove_header(in, "Connection");
	}
	evhttp_add_header(out, "x-xdrproxy-request-id", req->req_id);
	if (server_half_closed(req->req_conn))
		evhttp_add_header(out, "Connection", "close");
	req->req_status = req->req_upstream_status;
	req->req_state = REQ_REPLYING;
	req->req_reply_us = request_clock_us(CLOCK_MONOTONIC);
	evhttp_send_reply_start(req->req_http, req->req_upstream_status,
	    req->req_reason[0] != '\0' ? req->req_reason : NULL);
	server_watch_eof(req->req_conn);
	return 0;
}

/* The tenant's Content-Length: one value, or the same value repeated. */
static void
proxy_upstream_length(struct request *req, const char *value)
{
	const char	*p = value;
	long long	 n = 0;

	/* A list ("10, 10") is the same as repeated headers. */
	do {
		p += strspn(p, " \t");
		if (*p < '0' || *p > '9') {
			req->req_up_clen = PROXY_CLEN_CONFLICT;
			return;
		}
		for (n = 0; *p >= '0' && *p <= '9'; p++) {
			if (n > (LLONG_MAX - 9) / 10) {
				req->req_up_clen = PROXY_CLEN_CONFLICT;
				return;
			}
			n = n * 10 + (*p - '0');
		}
		p += strspn(p, " \t");
		if (req->req_up_clen == PROXY_CLEN_NONE)
			req->req_up_clen = n;
		else if (req->req_up_clen != n) {
			req->req_up_clen = PROXY_CLEN_CONFLICT;
			return;
		}
	} while (*p++ == ',');
	if (p[-1] != '\0')
		req->req_up_clen = PROXY_CLEN_CONFLICT;
}

/* "HTTP/1.1 200 OK" -> status and reason; returns -1 if malformed. */
static int
proxy_status_line(struct request *req, const char *line, size_t len)
{
	const char	*sp, *end = line + len;
	int		 code = 0, i;
	size_t		 rlen;

	if ((sp = memchr(line, ' ', len)) == NULL || end - sp < 4)
		return -1;
	for (i = 1; i <= 3; i++) {
		if (sp[i] < '0' || sp[i] > '9')
			return -1;
		code = code * 10 + (sp[i] - '0');
	}
	if (code < 100 || (sp + 4 < end && sp[4] != ' '))
		return -1;
	req->req_upstream_status = code;
	req->req_reason[0] = '\0';
	if (sp + 5 < end) {
		rlen = (size_t)(end - (sp + 5));
		if (rlen >= sizeof(req->req_reason))
			rlen = sizeof(req->req_reason) - 1;
		memcpy(req->req_reason, sp + 5, rlen);
		req->req_reason[rlen] = '\0';
		/* Not passed on with control bytes: evhttp's own phrase then. */
		for (i = 0; req->req_reason[i] != '\0'; i++) {
			if ((unsigned char)req->req_reason[i] < 0x20 ||
			    req->req_reason[i] == 0x7f) {
				req->req_reason[0] = '\0';
				break;
			}
		}
	}
	return 0;
}

/*
 * The tenant's Date: its clock against ours (clock.c), on every answer;
 * a warning when it is more than a minute off, once per tenant per 10
 * minutes.
 */
static void
proxy_upstream_date(struct request *req, const char *value)
{
	struct tenant	*tn = req->req_tenant;
	int64_t		 skew;
	char		 s[32];

	if (clock_observe(tn, value, &skew) != 1)
		return;
	clock_format(s, sizeof(s), skew);
	log_warnx("tenant %s: the tenant's clock differs from ours by %s; it "
	    "rejects requests more than about 5 minutes off", tn->tn_name, s);
}

/*
 * libcurl's header callback: one line of the tenant's response at a time.
 * Interim (1xx) blocks are skipped; the final block's headers are copied to
 * the client's response minus hop-by-hop ones; the blank line ends it.
 */
static size_t
proxy_upstream_header(void *arg, const char *line, size_t n)
{
	struct request		*req = arg;
	struct evkeyvalq	*out;
	char			 buf[8192], *name, *value, *colon, *big = NULL;
	size_t			 len = n, vlen;

	if (req->req_conn == NULL || req->req_state >= REQ_ENDING)
		return 0;
	req->req_last_activity_us = request_clock_us(CLOCK_MONOTONIC_COARSE);
	if (req->req_state == REQ_REPLYING || req->req_retry)
		return n;	/* trailers, or an answer to be dropped */
	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	out = evhttp_request_get_output_headers(req->req_http);
	if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) {
		evhttp_clear_headers(out);
		req->req_up_clen = PROXY_CLEN_NONE;
		req->req_up_te = 0;
		if (proxy_status_line(req, line, len) == -1)
			return 0;
		return n;
	}
	if (len == 0) {
		if (req->req_upstream_status == 0)
			return 0;
		if (req->req_upstream_status < 200) {
			evhttp_clear_headers(out);
			req->req_upstream_status = 0;
			return n;
		}
		governor_observe(req, req->req_upstream_status);
		/* A 429 or 5xx sent again: its body is dropped (retry.c). */
		if (retry_status(req)) {
			req->req_retry = 1;
			return n;
		}
		return proxy_start_reply(req) == 0 ? n : 0;
	}
	if (line[0] == ' ' || line[0] == '\t')
		return n;	/* obsolete line folding: dropped */
	name = buf;
	if (len >= sizeof(buf) && (name = big = malloc(len + 1)) == NULL)
		return 0;
	memcpy(name, line, len);
	name[len] = '\0';
	if ((colon = strchr(name, ':')) == NULL || colon == name) {
		free(big);
		return n;
	}
	*colon = '\0';
	value = colon + 1;
	value += strspn(value, " \t");
	vlen = strlen(value);
	while (vlen > 0 && (value[vlen - 1] == ' ' || value[vlen - 1] == '\t'))
		value[--vlen] = '\0';
	/* Kept to the end of the block, where proxy_start_reply() decides. */
	if (strcasecmp(name, "Content-Length") == 0)
		proxy_upstream_length(req, value);
	else if (strcasecmp(name, "Transfer-Encoding") == 0)
		req->req_up_te = 1;
	else if (strcasecmp(name, "Date") == 0 &&
	    req->req_upstream_status >= 200)
		proxy_upstream_date(req, value);
	else if (strcasecmp(name, "Retry-After") == 0)
		req->req_retry_wait_ms = retry_after_ms(value);
	else if (strcasecmp(name, "Content-Encoding") == 0)
		req->req_xql_gzip = strcasecmp(value, "identity") != 0;
	/* evhttp refuses values with CR or LF; control bytes do not pass. */
	if (filter_header_value_ok(value))
		evhttp_add_header(out, name, value);
	free(big);
	return n;
}

/*
 * libcurl's write callback: body bytes from the tenant. They go straight
 * to the client's connection; once more than PROXY_CLIENT_HWM is waiting
 * there the transfer pauses (the bytes stay with libcurl) until
 * proxy_client_drained() resumes it.
 */
static size_t
proxy_upstream_data(void *arg, const char *data, size_t n)
{
	struct request	*req = arg;
	struct evbuffer	*scratch = req->req_worker->w_scratch;
	struct evbuffer	*out;

	/* The answer of an attempt to be sent again: a small one is read
	   to its end so the connection can be used again. */
	if (req->req_retry && req->req_state == REQ_FORWARDING) {
		req->req_last_activity_us =
		    request_clock_us(CLOCK_MONOTONIC_COARSE);
		req->req_retry_discarded += n;
		return req->req_retry_discarded > PROXY_RETRY_DISCARD_MAX ? 0 :
		    n;
	}
	if (req->req_conn == NULL || req->req_state != REQ_REPLYING)
		return 0;
	req->req_last_activity_us = request_clock_us(CLOCK_MONOTONIC_COARSE);
	out = bufferevent_get_output(evhttp_connection_get_bufferevent(
	    req->req_conn));
	/* Pause only once a chunk has set proxy_client_drained to resume. */
	if (evbuffer_get_length(out) >= PROXY_CLIENT_HWM &&
	    req->req_bytes_out > 0) {
		req->req_paused = 1;
		return CURL_WRITEFUNC_PAUSE;
	}
	/* A paused chunk comes again: kept only once it is taken. */
	if (req->req_xql != XQL_NONE)
		proxy_xql_keep(req, data, n);
	if (evbuffer_add(scratch, data, n) == -1)
		return 0;
	evhttp_send_reply_chunk_with_cb(req->req_http, scratch,
	    proxy_client_drained, req);
	server_watch_eof(req->req_conn);
	/* Left over if evhttp sends no body (HEAD, 204, 304). */
	evbuffer_drain(scratch, evbuffer_get_length(scratch));
	req->req_bytes_out += n;
	return n;
}

/* A copy of an XQL answer (status 200) for xql.c, while it is small. */
static void
proxy_xql_keep(struct request *req, const char *data, size_t n)
{
	if (req->req_upstream_status != 200 || req->req_xql_big)
		return;
	if (req->req_xql_body == NULL &&
	    (req->req_xql_body = evbuffer_new()) == NULL)
		return;
	if (evbuffer_get_length(req->req_xql_body) + n > XQL_CAPTURE_MAX) {
		req->req_xql_big = 1;
		evbuffer_drain(req->req_xql_body,
		    evbuffer_get_length(req->req_xql_body));
		return;
	}
	evbuffer_add(req->req_xql_body, data, n);
}

/*
 * The XQL answer is whole: start_xql_query's names its query; a final
 * get_query_results frees that query's slot. An answer too big to keep
 * is results, so the query is over.
 */
static void
proxy_xql_end(struct request *req)
{
	struct evbuffer	*b = req->req_xql_body;

	if (req->req_upstream_status != 200)
		return;
	if (req->req_xql_big) {
		if (req->req_xql == XQL_RESULTS && req->req_xql_id != NULL)
			governor_xql_final(req, req->req_xql_id,
			    strlen(req->req_xql_id));
		return;
	}
	if (b == NULL)
		return;
	xql_answer(req, req->req_xql, req->req_xql_id, evbuffer_pullup(b, -1),
	    evbuffer_get_length(b), req->req_xql_gzip);
}

/* How libcurl errors look to the client (upstream_classify decides). */
static void
proxy_upstream_error(struct request *req, CURLcode rc)
{
	struct upstream_failure	 uf;

	upstream_classify(req->req_xfer.ux_easy, req->req_tenant, rc,
	    req->req_curl_error, &uf);
	request_fail(req, uf.uf_status, uf.uf_code, "%s", uf.uf_message);
}

/*
 * libcurl is done with the transfer (called outside libcurl callbacks):
 * end the request, or send it again (retry.c).
 */
static void
proxy_upstream_done(void *arg, CURLcode rc)
{
	struct request	*req = arg;

	if (req->req_state != REQ_FORWARDING && req->req_state !=
	    REQ_REPLYING)
		return;
	if (req->req_conn != NULL && (req->req_retry || (rc != CURLE_OK &&
	    req->req_reply_us == 0 && retry_error(req, req->req_xfer.ux_easy,
	    rc)))) {
		proxy_retry(req);
		return;
	}
	if (rc == CURLE_OK && req->req_xql != XQL_NONE)
		proxy_xql_end(req);
	if (rc == CURLE_OK || req->req_conn == NULL)
		request_finish(req);
	else
		proxy_upstream_error(req, rc);
}

static const struct upstream_cbs proxy_upstream_cbs = {
	proxy_upstream_header,
	proxy_upstream_data,
	proxy_upstream_done
};
