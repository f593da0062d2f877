/*
 * proxy.c: one request's life. proxy_handle() checks what the client sent
 * and starts the upstream transfer; libcurl's callbacks stream the answer
 * back with backpressure; every way a request can end (answered, refused,
 * upstream failure, timeout, client gone) goes through proxy_finish(),
 * which queues it for request_end() on the next turn of the event loop:
 * nothing is freed inside a libcurl or evhttp callback.
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

static void	request_end(struct request *);
static void	proxy_client_closed(struct evhttp_connection *, void *);
static void	proxy_idle_timeout(evutil_socket_t, short, void *);

/*
 * A monotonic clock in us. Durations use CLOCK_MONOTONIC; idle timeouts,
 * checked on every data callback, CLOCK_MONOTONIC_COARSE (a few ms is
 * plenty, and cheaper). libevent's cached time follows the wall clock,
 * which can step.
 */
static uint64_t
proxy_clock_us(clockid_t id)
{
	struct timespec	 ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static uint64_t
proxy_wall_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static const char *
proxy_method_name(enum evhttp_cmd_type cmd)
{
	switch (cmd) {
	case EVHTTP_REQ_GET:
		return "GET";
	case EVHTTP_REQ_POST:
		return "POST";
	case EVHTTP_REQ_HEAD:
		return "HEAD";
	case EVHTTP_REQ_PUT:
		return "PUT";
	case EVHTTP_REQ_DELETE:
		return "DELETE";
	case EVHTTP_REQ_OPTIONS:
		return "OPTIONS";
	case EVHTTP_REQ_TRACE:
		return "TRACE";
	case EVHTTP_REQ_CONNECT:
		return "CONNECT";
	case EVHTTP_REQ_PATCH:
		return "PATCH";
	}
	return "UNKNOWN";
}

static struct request *
request_new(struct listener *ln, struct evhttp_request *http)
{
	struct worker	*w = ln->ln_worker;
	struct request	*req;
	char		*addr = NULL;
	ev_uint16_t	 port = 0;

	if ((req = calloc(1, sizeof(*req))) == NULL)
		return NULL;
	req->req_worker = w;
	req->req_listener = ln;
	req->req_tenant = ln->ln_tenant;
	req->req_http = http;
	req->req_conn = evhttp_request_get_connection(http);
	req->req_method = proxy_method_name(evhttp_request_get_command(http));
	req->req_uri = evhttp_request_get_uri(http);
	if (req->req_uri == NULL)
		req->req_uri = "";
	req->req_path_len = strcspn(req->req_uri, "?");
	req->req_up_clen = PROXY_CLEN_NONE;
	req->req_start_wall_ms = proxy_wall_ms();
	req->req_start_mono_us = proxy_clock_us(CLOCK_MONOTONIC);
	req->req_bytes_in = evbuffer_get_length(
	    evhttp_request_get_input_buffer(http));
	snprintf(req->req_id, sizeof(req->req_id), "%08" PRIx32 "%08" PRIx32,
	    w->w_id_prefix, (uint32_t)++w->w_id_counter);
	if (ln->ln_addr->la_unix)
		snprintf(req->req_client, sizeof(req->req_client), "unix");
	else {
		evhttp_connection_get_peer(req->req_conn, &addr, &port);
		if (addr == NULL)
			addr = "unknown";
		snprintf(req->req_client, sizeof(req->req_client),
		    strchr(addr, ':') != NULL ? "[%s]:%u" : "%s:%u", addr,
		    (unsigned)port);
	}
	req->req_timer = evtimer_new(w->w_base, proxy_idle_timeout, req);
	if (req->req_timer == NULL) {
		free(req);
		return NULL;
	}
	server_request_taken(http);
	server_watch(req->req_conn, proxy_client_closed, req);
	TAILQ_INSERT_TAIL(&w->w_live, req, req_entry);
	w->w_nlive++;
	return req;
}

/* Exactly one per request; req is off every queue and out of libcurl. */
static void
request_free(struct request *req)
{
	struct worker	*w = req->req_worker;

	TAILQ_REMOVE(&w->w_live, req, req_entry);
	w->w_nlive--;
	if (req->req_timer != NULL)
		event_free(req->req_timer);
	free(req->req_uri_copy);
	free(req);
	worker_request_done(w);
}

/* Queue req for request_end(); safe from any callback, idempotent. */
void
proxy_finish(struct request *req)
{
	struct worker	*w = req->req_worker;

	if (req->req_flags & REQ_FINISHING)
		return;
	req->req_flags |= REQ_FINISHING;
	TAILQ_INSERT_TAIL(&w->w_done, req, req_done_entry);
	event_active(w->w_reaper, EV_TIMEOUT, 0);
}

/* The reaper: end the requests proxy_finish() queued. */
void
proxy_reap(evutil_socket_t fd, short what, void *arg)
{
	struct worker	*w = arg;
	struct request	*req;

	while ((req = TAILQ_FIRST(&w->w_done)) != NULL) {
		TAILQ_REMOVE(&w->w_done, req, req_done_entry);
		request_end(req);
	}
}

/*
 * Record an error and end the request. The first error wins. Codes named
 * upstream_* are the tenant's side failing, any other the proxy refusing.
 */
void
proxy_fail(struct request *req, int status, const char *code,
    const char *fmt, ...)
{
	va_list	 ap;

	/* Already settled (a reply ending, or written): nothing to fail. */
	if (req->req_flags & (REQ_FINISHING | REQ_HANDED_BACK))
		return;
	if (req->req_error == NULL) {
		req->req_error = code;
		req->req_status = status;
		req->req_outcome = strncmp(code, "upstream_", 9) == 0 ?
		    OUTCOME_UPSTREAM_ERROR : OUTCOME_PROXY_ERROR;
		va_start(ap, fmt);
		vsnprintf(req->req_message, sizeof(req->req_message), fmt, ap);
		va_end(ap);
	}
	proxy_finish(req);
}

/* End every live request now (shutdown deadline). */
void
proxy_end_all(struct worker *w, int status, const char *code)
{
	struct request	*req;

	TAILQ_FOREACH(req, &w->w_live, req_entry)
		proxy_fail(req, status, code, "xdrproxy is shutting down");
}

/*
 * evhttp calls this when the client connection goes away. The request is
 * detached from it but still ours to end; the upstream transfer is
 * cancelled by request_end() on this same turn of the loop.
 */
static void
proxy_client_closed(struct evhttp_connection *conn, void *arg)
{
	struct request	*req = arg;

	req->req_flags |= REQ_CLIENT_GONE;
	req->req_conn = NULL;
	proxy_finish(req);
}

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

	tv = ms_timeval(req->req_worker->w_conf->cf_client_timeout);
	bev = evhttp_connection_get_bufferevent(req->req_conn);
	bufferevent_getcb(bev, NULL, &wcb, &ecb, &cbarg);
	bufferevent_setcb(bev, NULL, wcb, ecb, cbarg);
	bufferevent_set_timeouts(bev, NULL, &tv);
	bufferevent_setwatermark(bev, EV_READ, 0,
	    req->req_worker->w_conf->cf_max_headers + 64 * 1024);
	bufferevent_setwatermark(bev, EV_WRITE, PROXY_CLIENT_LWM, 0);
	bufferevent_enable(bev, EV_READ);
	server_watch_eof(req->req_conn);
}

/*
 * Back to evhttp's timeouts for the next request on this connection, and
 * to a write low watermark of 0: evhttp ends a reply when its output is
 * empty, not merely low.
 */
static void
proxy_unwatch_client(struct request *req)
{
	struct timeval	 tv;

	tv = ms_timeval(req->req_worker->w_conf->cf_client_timeout);
	bufferevent_setwatermark(evhttp_connection_get_bufferevent(
	    req->req_conn), EV_WRITE, 0, 0);
	evhttp_connection_set_timeout_tv(req->req_conn, &tv);
}

/* The JSON error body, in the worker's scratch buffer. */
static void
proxy_error_body(struct request *req)
{
	struct evbuffer	*body = req->req_worker->w_scratch;

	evbuffer_drain(body, evbuffer_get_length(body));
	evbuffer_add_printf(body, "{\"error\":\"%s\",\"message\":",
	    req->req_error);
	json_add_cstring(body, req->req_message);
	evbuffer_add_printf(body, ",\"request_id\":\"%s\"}", req->req_id);
	req->req_bytes_out = evbuffer_get_length(body);
}

/* Answer with the error body built by proxy_error_body(). */
static void
proxy_send_error(struct request *req)
{
	struct evbuffer		*body = req->req_worker->w_scratch;
	struct evkeyvalq	*out;

	out = evhttp_request_get_output_headers(req->req_http);
	evhttp_clear_headers(out);
	evhttp_add_header(out, "Content-Type", "application/json");
	evhttp_add_header(out, "x-xdrproxy-error", req->req_error);
	evhttp_add_header(out, "x-xdrproxy-request-id", req->req_id);
	if ((req->req_flags & REQ_CLOSE) || server_half_closed(req->req_conn))
		evhttp_add_header(out, "Connection", "close");
	evhttp_send_reply(req->req_http, req->req_status, NULL, body);
	evbuffer_drain(body, evbuffer_get_length(body));
}

/* A warning for a request that did not end well (-v: all); bytes escaped. */
static void
proxy_log_end(const struct request *req)
{
	char	 path[256], msg[512];

	log_escape(path, sizeof(path), req->req_uri, req->req_path_len);
	if (req->req_outcome == OUTCOME_OK) {
		log_debug("request %s: tenant %s: %s %s from %s: %d, %" PRIu64
		    " bytes", req->req_id, req->req_tenant->tn_name,
		    req->req_method, path, req->req_client, req->req_status,
		    req->req_bytes_out);
		return;
	}
	log_escape(msg, sizeof(msg), req->req_message,
	    strlen(req->req_message));
	log_warnx("request %s: tenant %s: %s %s from %s: %d %s%s%s",
	    req->req_id, req->req_tenant->tn_name, req->req_method, path,
	    req->req_client, req->req_status,
	    req->req_error != NULL ? req->req_error : "",
	    msg[0] != '\0' ? ": " : "", msg);
}

/* Audit, log and free a request whose end is settled. */
static void
request_close(struct request *req)
{
	req->req_end_mono_us = proxy_clock_us(CLOCK_MONOTONIC);
	if (audit_write(req) == -1)
		log_warn("request %s: audit record not written", req->req_id);
	proxy_log_end(req);
	request_free(req);
}

/*
 * evhttp wrote the whole reply (its on-complete callback). Queue the
 * request for request_end() to audit it; the connection carries on.
 */
static void
proxy_reply_flushed(struct evhttp_request *http, void *arg)
{
	struct request	*req = arg;

	server_request_done(evhttp_request_get_connection(http));
	req->req_http = NULL;
	req->req_conn = NULL;
	proxy_finish(req);
}

/*
 * The client went away before the reply was written: evhttp frees the
 * request with the connection; audit it as aborted.
 */
static void
proxy_flush_failed(struct evhttp_connection *conn, void *arg)
{
	struct request	*req = arg;

	req->req_outcome = OUTCOME_CLIENT_ABORTED;
	req->req_error = "client_closed";
	snprintf(req->req_message, sizeof(req->req_message),
	    "the client closed the connection before the reply was written");
	req->req_http = NULL;
	req->req_conn = NULL;
	proxy_finish(req);
}

/* How request_end() hands the request back to evhttp. */
enum request_release {
	RELEASE_DETACHED,	/* client gone: free the detached request */
	RELEASE_ERROR,		/* send the JSON error */
	RELEASE_ABORT,		/* response under way: cut the connection */
	RELEASE_END		/* response complete: end it */
};

/*
 * Settle the outcome and hand the request back to evhttp. When the client
 * is gone or cut off, audit and free at once. When a reply is still to be
 * written, the record waits until it is (proxy_reply_flushed) or the
 * client leaves first (proxy_flush_failed): both queue the request here
 * again, REQ_HANDED_BACK set, to be audited and freed. The request line
 * is copied first: evhttp frees its own with the request.
 */
static void
request_end(struct request *req)
{
	enum request_release	 how;
	struct evhttp_request	*http;
	struct evhttp_connection *conn;

	if (req->req_flags & REQ_HANDED_BACK) {
		request_close(req);
		return;
	}
	upstream_detach(req);
	evtimer_del(req->req_timer);

	if (req->req_flags & REQ_CLIENT_GONE) {
		how = RELEASE_DETACHED;
		req->req_outcome = OUTCOME_CLIENT_ABORTED;
		if (!(req->req_flags & REQ_REPLY_STARTED))
			req->req_status = 499;
		req->req_error = "client_closed";
		snprintf(req->req_message, sizeof(req->req_message),
		    "the client closed the connection");
	} else if (req->req_error != NULL) {
		if (req->req_flags & REQ_REPLY_STARTED) {
			how = RELEASE_ABORT;
			req->req_status = req->req_upstream_status;
		} else
			how = RELEASE_ERROR;
	} else if (req->req_flags & REQ_REPLY_STARTED) {
		how = RELEASE_END;
		req->req_outcome = OUTCOME_OK;
	} else {
		/* libcurl finished without a header block: cannot happen. */
		how = RELEASE_ERROR;
		req->req_error = "upstream_error";
		req->req_status = 502;
		req->req_outcome = OUTCOME_UPSTREAM_ERROR;
		snprintf(req->req_message, sizeof(req->req_message),
		    "the tenant sent no response");
	}

	http = req->req_http;
	conn = req->req_conn;
	switch (how) {
	case RELEASE_DETACHED:
		/* The record reads the request line: before evhttp frees it. */
		request_close(req);
		evhttp_send_reply_end(http);
		break;
	case RELEASE_ABORT:
		server_watch(conn, NULL, NULL);
		request_close(req);
		/* A truncated body, not a complete-looking one. */
		evhttp_connection_free(conn);
		break;
	case RELEASE_ERROR:
	case RELEASE_END:
		if ((req->req_uri = req->req_uri_copy = strdup(
		    req->req_uri)) == NULL) {
			req->req_uri = "";
			req->req_path_len = 0;
		}
		if (how == RELEASE_ERROR)
			proxy_error_body(req);
		proxy_unwatch_client(req);
		server_watch(req->req_conn, proxy_flush_failed, req);
		evhttp_request_set_on_complete_cb(req->req_http,
		    proxy_reply_flushed, req);
		req->req_flags |= REQ_HANDED_BACK;
		req->req_flags &= ~REQ_FINISHING;
		/* Either may run the callbacks above at once. */
		if (how == RELEASE_ERROR)
			proxy_send_error(req);
		else
			evhttp_send_reply_end(req->req_http);
		break;
	}
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
	char			*cause = NULL, local[64];
	int			 has_body;

	if ((req = request_new(ln, http)) == NULL) {
		log_warnx("tenant %s: out of memory for a request",
		    ln->ln_tenant->tn_name);
		evhttp_send_error(http, 503, NULL);
		return;
	}
	if (w->w_draining) {
		req->req_flags |= REQ_CLOSE;
		proxy_fail(req, 503, "shutting_down",
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
	fq.fq_max_count = w->w_conf->cf_max_header_count;
	fq.fq_allow = &req->req_tenant->tn_allow_paths;
	fq.fq_names = ln->ln_names;
	fq.fq_nnames = ln->ln_nnames;
	if (ln->ln_wildcard && server_local_name(req->req_conn, local,
	    sizeof(local)) == 0)
		fq.fq_local = local;
	if (filter_request(&fq, &fs) == -1) {
		if (fs.fs_close)
			req->req_flags |= REQ_CLOSE;
		if (fs.fs_which != NULL)
			proxy_fail(req, fs.fs_status, fs.fs_code, "%s (%s)",
			    fs.fs_why, fs.fs_which);
		else
			proxy_fail(req, fs.fs_status, fs.fs_code, "%s",
			    fs.fs_why);
		return;
	}
	has_body = fs.fs_has_body;
	proxy_watch_client(req);
	if (upstream_start(req, has_body, &cause) == -1) {
		proxy_fail(req, 500, "internal_error", "%s", cause != NULL ?
		    cause : "out of memory");
		free(cause);
		return;
	}
	req->req_last_activity_us = proxy_clock_us(CLOCK_MONOTONIC_COARSE);
	timer_add_ms(req->req_timer, w->w_conf->cf_upstream_timeout);
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
	unsigned int	 limit = req->req_worker->w_conf->cf_upstream_timeout;
	uint64_t	 idle, now = proxy_clock_us(CLOCK_MONOTONIC_COARSE);

	if (req->req_flags & (REQ_FINISHING | REQ_UPSTREAM_DONE))
		return;
	idle = (now - req->req_last_activity_us) / 1000;
	if (req->req_flags & REQ_PAUSED) {
		timer_add_ms(req->req_timer, limit);
		return;
	}
	if (idle < limit) {
		timer_add_ms(req->req_timer, limit - (unsigned int)idle);
		return;
	}
	proxy_fail(req, 504, "upstream_timeout", "no data from the tenant for "
	    "%u ms", limit);
}

/* The client's output buffer drained: resume a paused transfer. */
static void
proxy_client_drained(struct evhttp_connection *conn, void *arg)
{
	struct request	*req = arg;

	if (!(req->req_flags & REQ_PAUSED) ||
	    (req->req_flags & REQ_FINISHING))
		return;
	req->req_flags &= ~REQ_PAUSED;
	req->req_last_activity_us = proxy_clock_us(CLOCK_MONOTONIC_COARSE);
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
		proxy_fail(req, 502, "upstream_error", "the tenant sent "
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
	req->req_flags |= REQ_REPLY_STARTED | REQ_HEADERS_DONE;
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
 * libcurl's header callback: one line of the tenant's response at a time.
 * Interim (1xx) blocks are skipped; the final block's headers are copied to
 * the client's response minus hop-by-hop ones; the blank line ends it.
 */
size_t
proxy_upstream_header(struct request *req, const char *line, size_t n)
{
	struct evkeyvalq	*out;
	char			 buf[8192], *name, *value, *colon, *big = NULL;
	size_t			 len = n, vlen;

	if (req->req_flags & (REQ_CLIENT_GONE | REQ_FINISHING))
		return 0;
	req->req_last_activity_us = proxy_clock_us(CLOCK_MONOTONIC_COARSE);
	if (req->req_flags & REQ_HEADERS_DONE)
		return n;	/* trailers */
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
size_t
proxy_upstream_data(struct request *req, const char *data, size_t n)
{
	struct evbuffer	*scratch = req->req_worker->w_scratch;
	struct evbuffer	*out;

	if (req->req_flags & (REQ_CLIENT_GONE | REQ_FINISHING) ||
	    !(req->req_flags & REQ_REPLY_STARTED))
		return 0;
	req->req_last_activity_us = proxy_clock_us(CLOCK_MONOTONIC_COARSE);
	out = bufferevent_get_output(evhttp_connection_get_bufferevent(
	    req->req_conn));
	/* Pause only once a chunk has set proxy_client_drained to resume. */
	if (evbuffer_get_length(out) >= PROXY_CLIENT_HWM &&
	    (req->req_flags & REQ_BODY_STARTED)) {
		req->req_flags |= REQ_PAUSED;
		return CURL_WRITEFUNC_PAUSE;
	}
	req->req_flags |= REQ_BODY_STARTED;
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

/* How libcurl errors look to the client. */
static void
proxy_upstream_error(struct request *req, CURLcode rc)
{
	const char	*detail = req->req_curl_error[0] != '\0' ?
			    req->req_curl_error : curl_easy_strerror(rc);

	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
		proxy_fail(req, 502, "upstream_unreachable", "%s", detail);
		break;
	case CURLE_OPERATION_TIMEDOUT:
		proxy_fail(req, 504, "upstream_timeout", "%s", detail);
		break;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_USE_SSL_FAILED:
		proxy_fail(req, 502, "upstream_tls", "%s", detail);
		break;
	default:
		proxy_fail(req, 502, "upstream_error", "%s", detail);
		break;
	}
}

/* libcurl is done with the transfer (called outside libcurl callbacks). */
void
proxy_upstream_done(struct request *req, CURLcode rc)
{
	req->req_flags |= REQ_UPSTREAM_DONE;
	if (rc == CURLE_OK || (req->req_flags & REQ_CLIENT_GONE))
		proxy_finish(req);
	else
		proxy_upstream_error(req, rc);
}
