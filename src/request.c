/*
 * request.c: a request's lifecycle, and who owns what when. A request is
 * in exactly one state (enum request_state); every way it ends goes
 * through request_finish(), which queues it for request_end() on a later
 * turn of the loop, so nothing is freed inside a libcurl or evhttp
 * callback; request_free() is the only place a request is freed.
 *
 *   NEW         checked by proxy.c; evhttp's request is ours to answer
 *   FORWARDING  upstream.c's transfer runs; no reply sent yet
 *   REPLYING    the tenant's status line went to the client; streaming
 *   ENDING      queued: request_end() settles it and hands it back
 *   FLUSHING    evhttp writes the rest of the reply; on its completion
 *               (request_flushed) or the client leaving (request_unsent)
 *   CLOSING     queued: audited, logged, freed
 *
 * Ownership of evhttp's request: ours from proxy_handle() until
 * request_end() hands it back (evhttp_send_reply, _send_reply_end, or
 * freeing the connection); evhttp's after that. When the client leaves
 * first, evhttp detaches the request from the connection but still
 * expects it to be ended (evhttp_send_reply_end frees it). When evhttp
 * itself frees the connections (evhttp_free at exit) it frees their
 * requests too, so request_abandon_all() ends ours before that.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "xdrproxy.h"

static void	request_end(struct request *);

/*
 * A monotonic clock in us. Durations use CLOCK_MONOTONIC; idle timeouts,
 * checked on every data callback, CLOCK_MONOTONIC_COARSE (a few ms is
 * plenty, and cheaper). libevent's cached time follows the wall clock,
 * which can step.
 */
uint64_t
request_clock_us(clockid_t id)
{
	struct timespec	 ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

uint64_t
request_wall_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static const char *
request_method_name(enum evhttp_cmd_type cmd)
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

/* The next request id of worker w: its random prefix and a counter. */
void
request_id_new(struct worker *w, char id[REQUEST_ID_LEN + 1])
{
	snprintf(id, REQUEST_ID_LEN + 1, "%08" PRIx32 "%08" PRIx32,
	    w->w_id_prefix, (uint32_t)++w->w_id_counter);
}

/*
 * evhttp calls this when the client connection goes away. The request is
 * detached from it but still ours to end; the upstream transfer is
 * cancelled by request_end() on this same turn of the loop.
 */
static void
request_client_closed(struct evhttp_connection *conn, void *arg)
{
	struct request	*req = arg;

	req->req_conn = NULL;
	request_finish(req);
}

/*
 * The path as limit and retry globs see it (policy_canon), worked out
 * once: the request line's own bytes when nothing is percent-encoded,
 * else a copy; NULL for a spelling policy_canon refuses (or no memory).
 * Valid until request_end() hands evhttp's request back.
 */
void
request_canon(struct request *req)
{
	const char	*why;

	req->req_canon = req->req_uri;
	req->req_canon_len = req->req_path_len;
	if (memchr(req->req_uri, '%', req->req_path_len) == NULL)
		return;
	req->req_canon = NULL;
	if ((req->req_canon_copy = malloc(req->req_path_len + 1)) == NULL ||
	    policy_canon(req->req_uri, req->req_path_len,
	    req->req_canon_copy, &why) == -1)
		return;
	req->req_canon = req->req_canon_copy;
	req->req_canon_len = strlen(req->req_canon_copy);
}

/* A request evhttp read whole, on listener ln; NULL if out of memory. */
struct request *
request_new(struct listener *ln, struct evhttp_request *http)
{
	struct worker	*w = ln->ln_worker;
	struct request	*req;
	char		*addr = NULL;
	ev_uint16_t	 port = 0;

	if ((req = calloc(1, sizeof(*req))) == NULL)
		return NULL;
	req->req_state = REQ_NEW;
	req->req_worker = w;
	req->req_conf = ln->ln_conf;
	req->req_tenant = ln->ln_tenant;
	req->req_http = http;
	req->req_conn = evhttp_request_get_connection(http);
	req->req_method = request_method_name(evhttp_request_get_command(
	    http));
	req->req_uri = evhttp_request_get_uri(http);
	if (req->req_uri == NULL)
		req->req_uri = "";
	req->req_path_len = strcspn(req->req_uri, "?");
	req->req_start_wall_ms = request_wall_ms();
	req->req_start_mono_us = request_clock_us(CLOCK_MONOTONIC);
	req->req_bytes_in = evbuffer_get_length(
	    evhttp_request_get_input_buffer(http));
	request_id_new(w, req->req_id);
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
	req->req_caller = server_caller(req->req_conn);
	server_request_taken(http);
	server_watch(req->req_conn, request_client_closed, req);
	TAILQ_INSERT_TAIL(&w->w_live, req, req_entry);
	w->w_nlive++;
	metrics_request_start(req);
	return req;
}

/*
 * Exactly one per request: it is off the done queue, out of libcurl, and
 * no evhttp callback refers to it any more.
 */
static void
request_free(struct request *req)
{
	struct worker	*w = req->req_worker;

	TAILQ_REMOVE(&w->w_live, req, req_entry);
	w->w_nlive--;
	/* Started before a reload: its configuration may go with it. */
	if (req->req_conf != w->w_conf)
		worker_release(w, req->req_conf);
	if (req->req_timer != NULL)
		event_free(req->req_timer);
	free(req->req_uri_copy);
	free(req->req_canon_copy);
	free(req->req_xql_id);
	if (req->req_xql_body != NULL)
		evbuffer_free(req->req_xql_body);
	caller_unref(req->req_caller);
	free(req);
	/* A drain ends when the last request does. */
	if (w->w_draining && w->w_nlive == 0)
		event_base_loopbreak(w->w_base);
}

/*
 * Queue req for request_end(); safe from any callback, idempotent. A
 * request being flushed comes back here once evhttp is done with it.
 */
void
request_finish(struct request *req)
{
	struct worker	*w = req->req_worker;

	switch (req->req_state) {
	case REQ_ENDING:
	case REQ_CLOSING:
		return;
	case REQ_FLUSHING:
		req->req_state = REQ_CLOSING;
		break;
	default:
		req->req_state = REQ_ENDING;
		break;
	}
	TAILQ_INSERT_TAIL(&w->w_done, req, req_done_entry);
	event_active(w->w_reaper, EV_TIMEOUT, 0);
}

/* The reaper: end the requests request_finish() queued. */
void
request_reap(evutil_socket_t fd, short what, void *arg)
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
request_fail(struct request *req, int status, const char *code,
    const char *fmt, ...)
{
	va_list	 ap;

	/* Already settled (ending, or written): nothing to fail. */
	if (req->req_state >= REQ_ENDING)
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
	request_finish(req);
}

/* End every live request now (shutdown deadline). */
void
request_end_all(struct worker *w, int status, const char *code)
{
	struct request	*req;

	TAILQ_FOREACH(req, &w->w_live, req_entry)
		request_fail(req, status, code, "xdrproxy is shutting down");
}

/*
 * Back to evhttp's timeouts for the next request on this connection, and
 * to a write low watermark of 0: evhttp ends a reply when its output is
 * empty, not merely low.
 */
static void
request_unwatch_client(struct request *req)
{
	struct timeval	 tv;

	tv = ms_timeval(req->req_conf->cf_client_timeout);
	bufferevent_setwatermark(evhttp_connection_get_bufferevent(
	    req->req_conn), EV_WRITE, 0, 0);
	evhttp_connection_set_timeout_tv(req->req_conn, &tv);
}

/* The JSON error body, in the worker's scratch buffer. */
static void
request_error_body(struct request *req)
{
	struct evbuffer	*body = req->req_worker->w_scratch;

	evbuffer_drain(body, evbuffer_get_length(body));
	evbuffer_add_printf(body, "{\"error\":\"%s\",\"message\":",
	    req->req_error);
	json_add_cstring(body, req->req_message);
	evbuffer_add_printf(body, ",\"request_id\":\"%s\"}", req->req_id);
	req->req_bytes_out = evbuffer_get_length(body);
}

/* Answer with the error body built by request_error_body(). */
static void
request_send_error(struct request *req)
{
	struct evbuffer		*body = req->req_worker->w_scratch;
	struct evkeyvalq	*out;
	char			 len[24];
	enum evhttp_cmd_type	 cmd;

	cmd = evhttp_request_get_command(req->req_http);
	out = evhttp_request_get_output_headers(req->req_http);
	evhttp_clear_headers(out);
	evhttp_add_header(out, "Content-Type", "application/json");
	evhttp_add_header(out, "x-xdrproxy-error", req->req_error);
	evhttp_add_header(out, "x-xdrproxy-request-id", req->req_id);
	if (req->req_retry_after > 0) {
		snprintf(len, sizeof(len), "%u", req->req_retry_after);
		evhttp_add_header(out, "Retry-After", len);
	}
	/* evhttp gives no length to a CONNECT answer, and a body to HEAD. */
	snprintf(len, sizeof(len), "%zu", evbuffer_get_length(body));
	evhttp_add_header(out, "Content-Length", len);
	if (cmd == EVHTTP_REQ_HEAD)
		evbuffer_drain(body, evbuffer_get_length(body));
	if (req->req_close || server_half_closed(req->req_conn)) {
		evhttp_add_header(out, "Connection", "close");
		server_close_after(req->req_conn);
	}
	evhttp_send_reply(req->req_http, req->req_status, NULL, body);
	evbuffer_drain(body, evbuffer_get_length(body));
}

/* A warning for a request that did not end well (-v: all); bytes escaped. */
static void
request_log_end(const struct request *req)
{
	char	 path[256], msg[512], s[32];
	int64_t	 skew;

	log_escape(path, sizeof(path), req->req_uri, req->req_path_len);
	/* The tenant's 401 while its clock is far off ours: say why. */
	if (req->req_outcome == OUTCOME_OK && req->req_status == 401 &&
	    clock_skew_get(req->req_tenant, &skew) == 0 &&
	    (skew > CLOCK_SKEW_WARN_MS || skew < -CLOCK_SKEW_WARN_MS)) {
		clock_format(s, sizeof(s), skew);
		log_warnx("request %s: tenant %s: %s %s from %s: 401 from the "
		    "tenant, whose clock differs from ours by %s: the clock is "
		    "the likely cause (the tenant rejects timestamps about 5 "
		    "minutes off)", req->req_id, req->req_tenant->tn_name,
		    req->req_method, path, req->req_client, s);
		return;
	}
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
	req->req_end_mono_us = request_clock_us(CLOCK_MONOTONIC);
	/* Counted before the record: whoever sees the record sees it counted. */
	metrics_request_done(req);
	if (audit_write(req, AUDIT_RESPONSE) == -1)
		log_warn("request %s: audit record not written", req->req_id);
	request_log_end(req);
	request_free(req);
}

/*
 * evhttp wrote the whole reply (its on-complete callback). Queue the
 * request to be audited; the connection carries on.
 */
static void
request_flushed(struct evhttp_request *http, void *arg)
{
	struct request	*req = arg;

	server_request_done(evhttp_request_get_connection(http));
	req->req_http = NULL;
	req->req_conn = NULL;
	request_finish(req);
}

/*
 * The client went away before the reply was written: evhttp frees the
 * request with the connection; audit it as aborted.
 */
static void
request_unsent(struct evhttp_connection *conn, void *arg)
{
	struct request	*req = arg;

	req->req_outcome = OUTCOME_CLIENT_ABORTED;
	req->req_error = "client_closed";
	snprintf(req->req_message, sizeof(req->req_message),
	    "the client closed the connection before the reply was written");
	req->req_http = NULL;
	req->req_conn = NULL;
	request_finish(req);
}

/* The client left: what the record says. */
static void
request_client_gone(struct request *req)
{
	req->req_outcome = OUTCOME_CLIENT_ABORTED;
	if (req->req_reply_us == 0)
		req->req_status = 499;
	req->req_error = "client_closed";
	snprintf(req->req_message, sizeof(req->req_message),
	    "the client closed the connection");
}

/*
 * Settle a request in state ENDING and hand it back to evhttp, one of
 * four ways: the client is gone (end the detached request), the reply was
 * cut short (close the connection: the client must not take a truncated
 * body for a whole one), an error to send, or the end of a reply. The
 * last two leave it FLUSHING until evhttp has written it. A CLOSING
 * request is audited and freed. The request line is copied before the
 * hand-back: evhttp frees its own with the request.
 */
static void
request_end(struct request *req)
{
	struct evhttp_request	*http = req->req_http;
	struct evhttp_connection *conn = req->req_conn;

	if (req->req_state == REQ_CLOSING) {
		request_close(req);
		return;
	}
	upstream_detach(req);
	governor_done(req);
	if (req->req_timer != NULL)
		evtimer_del(req->req_timer);

	if (conn == NULL) {
		request_client_gone(req);
		/* The record reads the request line: before evhttp frees it. */
		request_close(req);
		evhttp_send_reply_end(http);
		return;
	}
	if (req->req_error != NULL && req->req_reply_us != 0) {
		req->req_status = req->req_upstream_status;
		server_watch(conn, NULL, NULL);
		request_close(req);
		evhttp_connection_free(conn);
		return;
	}
	if (req->req_error == NULL && req->req_reply_us == 0) {
		/* libcurl finished without a header block: cannot happen. */
		req->req_error = "upstream_error";
		req->req_status = 502;
		req->req_outcome = OUTCOME_UPSTREAM_ERROR;
		snprintf(req->req_message, sizeof(req->req_message),
		    "the tenant sent no response");
	}
	if ((req->req_uri = req->req_uri_copy = strdup(req->req_uri)) ==
	    NULL) {
		req->req_uri = "";
		req->req_path_len = 0;
	}
	request_unwatch_client(req);
	server_watch(conn, request_unsent, req);
	evhttp_request_set_on_complete_cb(http, request_flushed, req);
	req->req_state = REQ_FLUSHING;
	/* Either may run the callbacks above at once. */
	if (req->req_error != NULL) {
		request_error_body(req);
		request_send_error(req);
	} else {
		req->req_outcome = OUTCOME_OK;
		evhttp_send_reply_end(http);
	}
	/* Still being written: a half-close meanwhile is no abort. */
	if (req->req_state == REQ_FLUSHING)
		server_watch_eof(conn);
}

/*
 * The worker is being torn down with its loop stopped (exit): end every
 * request before evhttp_free() frees the connections and, with them,
 * evhttp's requests. No callback of evhttp's may refer to ours after.
 */
void
request_abandon_all(struct worker *w)
{
	struct request		*req;
	struct evhttp_request	*detached;

	while ((req = TAILQ_FIRST(&w->w_live)) != NULL) {
		if (req->req_state == REQ_ENDING || req->req_state ==
		    REQ_CLOSING)
			TAILQ_REMOVE(&w->w_done, req, req_done_entry);
		upstream_detach(req);
		governor_done(req);
		detached = NULL;
		if (req->req_conn != NULL)
			server_watch(req->req_conn, NULL, NULL);
		if (req->req_state == REQ_FLUSHING) {
			evhttp_request_set_on_complete_cb(req->req_http, NULL,
			    NULL);
			if (req->req_outcome == OUTCOME_OK) {
				req->req_outcome = OUTCOME_CLIENT_ABORTED;
				req->req_error = "client_closed";
				snprintf(req->req_message,
				    sizeof(req->req_message), "xdrproxy "
				    "stopped before the reply was written");
			}
		} else if (req->req_state != REQ_CLOSING) {
			if (req->req_conn == NULL) {
				request_client_gone(req);
				detached = req->req_http;
			} else if (req->req_error == NULL) {
				req->req_error = "shutting_down";
				req->req_status = req->req_reply_us != 0 ?
				    req->req_upstream_status : 503;
				req->req_outcome = OUTCOME_PROXY_ERROR;
				snprintf(req->req_message,
				    sizeof(req->req_message),
				    "xdrproxy is shutting down");
			}
		}
		request_close(req);
		/* Off every connection: evhttp_free() would not free it. */
		if (detached != NULL)
			evhttp_send_reply_end(detached);
	}
}
