/*
 * upstream.c: requests to the tenant over HTTPS with libcurl's multi_socket
 * API driven by libevent (the pattern of curl's hiperfifo.c). One multi
 * handle per event loop holds the connection pool; a share handle keeps
 * DNS answers and TLS sessions; easy handles are recycled.
 *
 * libcurl must not be re-entered from its own callbacks: the socket and
 * timer callbacks only (re)arm libevent events, finished transfers are
 * collected after curl_multi_socket_action() returns, and handles are
 * removed later by request_end() through upstream_detach().
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event_struct.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>

#include "xdrproxy.h"

/* libcurl's read buffer per transfer; the default 16 KiB is slow. */
#define UPSTREAM_BUFFERSIZE	(64 * 1024)

/* libcurl 7.x sends Expect: 100-continue for bodies larger than this. */
#define UPSTREAM_EXPECT_THRESHOLD	(1024 * 1024)

/* One socket libcurl asked us to watch. */
struct upstream_sock {
	struct event	 us_ev;
	struct worker	*us_worker;
	short		 us_kind;	/* EV_READ|EV_WRITE now watched */
};

static void
upstream_check_done(struct worker *w)
{
	struct request	*req;
	CURLMsg		*msg;
	int		 left;

	while ((msg = curl_multi_info_read(w->w_multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		req = NULL;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &req);
		if (req != NULL) {
			req->req_xfer.ux_done = 1;
			req->req_xfer.ux_cbs->uc_done(req, msg->data.result);
		}
	}
}

static void
upstream_event(evutil_socket_t fd, short what, void *arg)
{
	struct upstream_sock	*us = arg;
	struct worker		*w = us->us_worker;
	int			 action = 0, running;

	if (what & EV_READ)
		action |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		action |= CURL_CSELECT_OUT;
	curl_multi_socket_action(w->w_multi, fd, action, &running);
	upstream_check_done(w);
}

static void
upstream_timer_fired(evutil_socket_t fd, short what, void *arg)
{
	struct worker	*w = arg;
	int		 running;

	curl_multi_socket_action(w->w_multi, CURL_SOCKET_TIMEOUT, 0, &running);
	upstream_check_done(w);
}

/* CURLMOPT_TIMERFUNCTION: only arms the one-shot timer, even for 0 ms. */
static int
upstream_timer_cb(CURLM *multi, long ms, void *arg)
{
	struct worker	*w = arg;
	struct timeval	 tv;

	if (ms < 0) {
		evtimer_del(w->w_curl_timer);
		return 0;
	}
	tv = ms_timeval((unsigned int)ms);
	evtimer_add(w->w_curl_timer, &tv);
	return 0;
}

/* CURLMOPT_SOCKETFUNCTION: watch, rewatch or forget a socket. */
static int
upstream_socket_cb(CURL *easy, curl_socket_t fd, int what, void *arg,
    void *sockarg)
{
	struct worker		*w = arg;
	struct upstream_sock	*us = sockarg;
	short			 kind;

	if (what == CURL_POLL_REMOVE) {
		if (us != NULL) {
			event_del(&us->us_ev);
			free(us);
			curl_multi_assign(w->w_multi, fd, NULL);
		}
		return 0;
	}
	kind = 0;
	if (what & CURL_POLL_IN)
		kind |= EV_READ;
	if (what & CURL_POLL_OUT)
		kind |= EV_WRITE;
	if (us == NULL) {
		if ((us = calloc(1, sizeof(*us))) == NULL)
			return -1;
		us->us_worker = w;
		curl_multi_assign(w->w_multi, fd, us);
	} else {
		if (us->us_kind == kind)
			return 0;	/* no change: spare a system call */
		event_del(&us->us_ev);
	}
	us->us_kind = kind;
	event_assign(&us->us_ev, w->w_base, fd, kind | EV_PERSIST,
	    upstream_event, us);
	event_add(&us->us_ev, NULL);
	return 0;
}

/*
 * Connections libcurl keeps (busy or idle): enough that none is closed
 * for want of room while every tenant uses max_connections, so steady
 * load opens no new connections and pays no new TLS handshakes.
 */
static long
upstream_pool_size(const struct config *cf)
{
	struct tenant	*tn;
	long		 n = 0;

	if (cf->cf_idle_connections > 0)
		return cf->cf_idle_connections;
	if (cf->cf_max_connections == 0)
		return 1024;
	TAILQ_FOREACH(tn, &cf->cf_tenants, tn_entry)
		n += cf->cf_max_connections;
	return n;
}

int
upstream_init(struct worker *w, struct config *cf, char **cause)
{
	*cause = NULL;
	if ((w->w_multi = curl_multi_init()) == NULL ||
	    (w->w_share = curl_share_init()) == NULL ||
	    (w->w_curl_timer = evtimer_new(w->w_base, upstream_timer_fired,
	    w)) == NULL) {
		*cause = strdup("libcurl: out of memory");
		return -1;
	}
	curl_multi_setopt(w->w_multi, CURLMOPT_SOCKETFUNCTION,
	    upstream_socket_cb);
	curl_multi_setopt(w->w_multi, CURLMOPT_SOCKETDATA, w);
	curl_multi_setopt(w->w_multi, CURLMOPT_TIMERFUNCTION, upstream_timer_cb);
	curl_multi_setopt(w->w_multi, CURLMOPT_TIMERDATA, w);
	upstream_configure(w, cf);
	curl_multi_setopt(w->w_multi, CURLMOPT_PIPELINING,
	    (long)CURLPIPE_MULTIPLEX);
	curl_share_setopt(w->w_share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(w->w_share, CURLSHOPT_SHARE,
	    CURL_LOCK_DATA_SSL_SESSION);
	return 0;
}

/* The connection limits of cf: at start, and when a reload puts it in force. */
void
upstream_configure(struct worker *w, const struct config *cf)
{
	/* A fixed pool: the default shrinks when load dips. */
	curl_multi_setopt(w->w_multi, CURLMOPT_MAXCONNECTS,
	    upstream_pool_size(cf));
	curl_multi_setopt(w->w_multi, CURLMOPT_MAX_HOST_CONNECTIONS,
	    cf->cf_max_connections);
}

void
upstream_free(struct worker *w)
{
	size_t	 i;

	for (i = 0; i < w->w_easy_npool; i++)
		curl_easy_cleanup(w->w_easy_pool[i]);
	w->w_easy_npool = 0;
	if (w->w_multi != NULL)
		curl_multi_cleanup(w->w_multi);
	if (w->w_share != NULL)
		curl_share_cleanup(w->w_share);
	if (w->w_curl_timer != NULL)
		event_free(w->w_curl_timer);
	w->w_multi = NULL;
	w->w_share = NULL;
	w->w_curl_timer = NULL;
}

static size_t
upstream_header_cb(char *line, size_t size, size_t n, void *arg)
{
	struct request	*req = arg;

	return req->req_xfer.ux_cbs->uc_header(req, line, size * n);
}

static size_t
upstream_write_cb(char *data, size_t size, size_t n, void *arg)
{
	struct request	*req = arg;

	return req->req_xfer.ux_cbs->uc_data(req, data, size * n);
}

/*
 * The header list for one request, built in a single allocation: libcurl
 * takes any struct curl_slist chain and copies what it sends, so one block
 * holds the nodes and the text (no allocation and no printf per header).
 */
struct upstream_hlist {
	struct curl_slist	*hl_nodes;
	size_t			 hl_n, hl_max;
	char			*hl_text;
	size_t			 hl_used, hl_size;
};

static int
upstream_hlist_init(struct upstream_hlist *hl, size_t nodes, size_t text)
{
	hl->hl_n = 0;
	hl->hl_max = nodes;
	hl->hl_used = 0;
	hl->hl_size = text;
	hl->hl_nodes = malloc(nodes * sizeof(*hl->hl_nodes) + text);
	if (hl->hl_nodes == NULL)
		return -1;
	hl->hl_text = (char *)(hl->hl_nodes + nodes);
	return 0;
}

/* Append "name: value", "name;" (empty value) or "name:" (value NULL). */
static void
upstream_hlist_add(struct upstream_hlist *hl, const char *name,
    const char *value)
{
	size_t	 nlen = strlen(name), vlen = value != NULL ? strlen(value) : 0;
	char	*p = hl->hl_text + hl->hl_used;

	/* Sized by upstream_headers(); a miss would be a bug there. */
	if (hl->hl_n == hl->hl_max || hl->hl_used + nlen + vlen + 3 >
	    hl->hl_size)
		abort();
	memcpy(p, name, nlen);
	if (value == NULL)
		p[nlen++] = ':';
	else if (vlen == 0)
		p[nlen++] = ';';
	else {
		p[nlen++] = ':';
		p[nlen++] = ' ';
		memcpy(p + nlen, value, vlen);
		nlen += vlen;
	}
	p[nlen] = '\0';
	hl->hl_nodes[hl->hl_n].data = p;
	hl->hl_nodes[hl->hl_n].next = NULL;
	if (hl->hl_n > 0)
		hl->hl_nodes[hl->hl_n - 1].next = &hl->hl_nodes[hl->hl_n];
	hl->hl_n++;
	hl->hl_used += nlen + 1;
}

/* Wipe and free a header list: it holds the Authorization value. */
static void
upstream_headers_free(struct curl_slist *list)
{
	struct curl_slist	*sl;

	for (sl = list; sl != NULL; sl = sl->next)
		if (strncasecmp(sl->data, "Authorization", 13) == 0)
			OPENSSL_cleanse(sl->data, strlen(sl->data));
	free(list);
}

/* Room for the fixed headers upstream_headers() adds: names and values. */
#define UPSTREAM_FIXED_HEADERS	8
#define UPSTREAM_FIXED_TEXT	(256 + SIGN_NONCE_LEN + SIGN_TS_MAX + \
				 SIGN_HASH_HEX_LEN)

/*
 * The header list sent to the tenant: the client's headers minus
 * credentials and hop-by-hop ones, then fresh auth headers. Empty
 * "Accept:", "Content-Type:" and "Expect:" stop libcurl adding its own.
 */
static int
upstream_headers(struct request *req, int body_mode, struct curl_slist **out,
    char **cause)
{
	struct worker		*w = req->req_worker;
	struct tenant		*tn = req->req_tenant;
	struct evkeyvalq	*in;
	struct evkeyval		*kv;
	struct upstream_hlist	 hl;
	struct sign_headers	 sh;
	const struct evkeyvalq	*msg = NULL;
	size_t			 n = 0, text = UPSTREAM_FIXED_TEXT;
	int			 has_accept = 0, has_ctype = 0;

	in = evhttp_request_get_input_headers(req->req_http);
	TAILQ_FOREACH(kv, in, next) {
		n++;
		text += strlen(kv->key) + strlen(kv->value) + 3;
		if (strcasecmp(kv->key, "Connection") == 0)
			msg = in;	/* its tokens name hop-by-hop headers */
	}
	if (tn->tn_key_type == KEY_STANDARD)
		text += tn->tn_key->k_len;
	text += strlen(tn->tn_key_id);
	if (upstream_hlist_init(&hl, n + UPSTREAM_FIXED_HEADERS, text) == -1)
		return -1;
	TAILQ_FOREACH(kv, in, next) {
		if (filter_header(FILTER_TO_TENANT, kv->key, msg) ==
		    FILTER_DROP)
			continue;
		if (strcasecmp(kv->key, "Accept") == 0)
			has_accept = 1;
		else if (strcasecmp(kv->key, "Content-Type") == 0)
			has_ctype = 1;
		upstream_hlist_add(&hl, kv->key, kv->value);
	}
	if (!has_accept)
		upstream_hlist_add(&hl, "Accept", NULL);
	if (body_mode && !has_ctype)
		upstream_hlist_add(&hl, "Content-Type", NULL);
	/* libcurl would add Expect: 100-continue (and wait) above 1 MiB. */
	if (body_mode && evbuffer_get_length(evhttp_request_get_input_buffer(
	    req->req_http)) > UPSTREAM_EXPECT_THRESHOLD)
		upstream_hlist_add(&hl, "Expect", NULL);
	upstream_hlist_add(&hl, "x-xdr-auth-id", tn->tn_key_id);
	if (tn->tn_key_type == KEY_STANDARD)
		upstream_hlist_add(&hl, "Authorization", tn->tn_key->k_data);
	else {
		/* Signed as it goes: a queued or retried one too. */
		if (sign_advanced(&w->w_signer, tn->tn_key,
		    request_wall_ms(), &sh) == -1) {
			upstream_headers_free(hl.hl_nodes);
			if (tn->tn_key->k_p11 != NULL)
				*cause = strdup("the PKCS#11 token did not "
				    "sign the request");
			return -1;
		}
		upstream_hlist_add(&hl, "x-xdr-nonce", sh.sh_nonce);
		upstream_hlist_add(&hl, "x-xdr-timestamp", sh.sh_timestamp);
		upstream_hlist_add(&hl, "Authorization", sh.sh_hash);
		OPENSSL_cleanse(&sh, sizeof(sh));
	}
	*out = hl.hl_nodes;
	return 0;
}

static CURL *
upstream_easy_get(struct worker *w)
{
	if (w->w_easy_npool > 0)
		return w->w_easy_pool[--w->w_easy_npool];
	return curl_easy_init();
}

static void
upstream_easy_put(struct worker *w, CURL *easy)
{
	size_t	 max = sizeof(w->w_easy_pool) / sizeof(w->w_easy_pool[0]);

	if (w->w_easy_npool == max) {
		curl_easy_cleanup(easy);
		return;
	}
	/* Keeps the handle's caches; every option goes back to default. */
	curl_easy_reset(easy);
	w->w_easy_pool[w->w_easy_npool++] = easy;
}

/*
 * Every libcurl option that says how to reach a tenant and what to trust:
 * TLS, certificates, pinning, the egress proxy, connect_to, HTTP version,
 * timeouts. The one place they are set, for transfers (upstream_start) and
 * for xdrproxy -t --live (live.c). Returns CURLE_OK, or libcurl's refusal
 * with *what naming the setting.
 */
CURLcode
upstream_tenant_setopt(CURL *easy, const struct tenant *tn,
    const struct config *cf, const char **what)
{
	CURLcode	 rc;

#define SETOPT(name, opt, val) do {					\
	if ((rc = curl_easy_setopt(easy, opt, val)) != CURLE_OK) {	\
		*what = name;						\
		return rc;						\
	}								\
} while (0)
	SETOPT("NOSIGNAL", CURLOPT_NOSIGNAL, 1L);
	/* The path goes out byte for byte, dot segments and all. */
	SETOPT("PATH_AS_IS", CURLOPT_PATH_AS_IS, 1L);
	SETOPT("https only", CURLOPT_PROTOCOLS_STR, "https");
	SETOPT("no redirects", CURLOPT_FOLLOWLOCATION, 0L);
	/* Bodies pass through as the tenant sent them (gzip, zip, ...). */
	SETOPT("HTTP_CONTENT_DECODING", CURLOPT_HTTP_CONTENT_DECODING, 0L);
	SETOPT("SSL_VERIFYPEER", CURLOPT_SSL_VERIFYPEER, 1L);
	SETOPT("SSL_VERIFYHOST", CURLOPT_SSL_VERIFYHOST, 2L);
	SETOPT("tls_min_version", CURLOPT_SSLVERSION,
	    tn->tn_tls_min == TLS_MIN_1_3 ? (long)CURL_SSLVERSION_TLSv1_3 :
	    (long)CURL_SSLVERSION_TLSv1_2);
	/*
	 * ca_file is the whole of what is trusted: without CAPATH cleared,
	 * libcurl would still trust its built-in CA directory.
	 */
	if (tn->tn_ca_file != NULL) {
		SETOPT("ca_file", CURLOPT_CAINFO, tn->tn_ca_file);
		SETOPT("ca_file", CURLOPT_CAPATH, NULL);
	}
	if (tn->tn_pinned_pubkey != NULL)
		SETOPT("pinned_pubkey", CURLOPT_PINNEDPUBLICKEY,
		    tn->tn_pinned_pubkey);
	if (tn->tn_client_cert != NULL) {
		SETOPT("client_cert", CURLOPT_SSLCERT, tn->tn_client_cert);
		SETOPT("client_cert", CURLOPT_SSLCERTTYPE, "PEM");
		SETOPT("client_key", CURLOPT_SSLKEY, tn->tn_client_key);
		SETOPT("client_key", CURLOPT_SSLKEYTYPE, "PEM");
	}
	if (tn->tn_curl_connect_to != NULL)
		SETOPT("connect_to", CURLOPT_CONNECT_TO,
		    tn->tn_curl_connect_to);
	/*
	 * The egress proxy is configured, never inherited: CURLOPT_PROXY and
	 * CURLOPT_NOPROXY are always set ("" when not configured), so that
	 * https_proxy, all_proxy or no_proxy in the environment never apply.
	 * TLS to the tenant runs inside the proxy's CONNECT tunnel.
	 */
	SETOPT("egress_proxy", CURLOPT_PROXY, tn->tn_egress_proxy != NULL ?
	    tn->tn_egress_proxy : "");
	SETOPT("no_proxy", CURLOPT_NOPROXY, tn->tn_no_proxy != NULL ?
	    tn->tn_no_proxy : "");
	if (tn->tn_egress_proxy != NULL) {
		SETOPT("egress_proxy", CURLOPT_PROXYTYPE, (long)CURLPROXY_HTTP);
		SETOPT("egress_proxy", CURLOPT_HTTPPROXYTUNNEL, 1L);
		/*
		 * The proxy's answer to the CONNECT is not the tenant's: by
		 * default libcurl hands it to the header callback too, which
		 * would start the client's reply with it.
		 */
		SETOPT("egress_proxy", CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
	}
	SETOPT("http2", CURLOPT_HTTP_VERSION, tn->tn_http2 ?
	    (long)CURL_HTTP_VERSION_2TLS : (long)CURL_HTTP_VERSION_1_1);
	SETOPT("connect_timeout", CURLOPT_CONNECTTIMEOUT_MS,
	    (long)cf->cf_connect_timeout);
	SETOPT("TCP_KEEPALIVE", CURLOPT_TCP_KEEPALIVE, 1L);
#undef SETOPT
	return CURLE_OK;
}

/*
 * What a failed transfer means for the client: status, error code and a
 * message, from libcurl's result and, through an egress proxy, from what
 * the proxy answered to the CONNECT.
 */
void
upstream_classify(CURL *easy, const struct tenant *tn, CURLcode rc,
    const char *errbuf, struct upstream_failure *uf)
{
	const char	*detail = errbuf != NULL && errbuf[0] != '\0' ? errbuf :
			    curl_easy_strerror(rc);
	long		 connect_code = 0, connects, status;

	uf->uf_status = 502;
	if (tn->tn_egress_used)
		curl_easy_getinfo(easy, CURLINFO_HTTP_CONNECTCODE, &connect_code);
	if (tn->tn_egress_used && connect_code >= 300) {
		uf->uf_code = "upstream_proxy_refused";
		snprintf(uf->uf_message, sizeof(uf->uf_message), "the egress "
		    "proxy %s answered the CONNECT to the tenant with %ld%s",
		    tn->tn_egress_proxy, connect_code, connect_code == 407 ?
		    " (it wants credentials, which xdrproxy does not send)" :
		    connect_code == 403 ? " (not allowed by its rules)" :
		    connect_code >= 500 ? " (it could not reach the tenant)" :
		    "");
		return;
	}
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_PROXY:
		uf->uf_code = "upstream_proxy_unreachable";
		break;
	case CURLE_COULDNT_CONNECT:
		/* Through a proxy, the proxy is all xdrproxy connects to. */
		uf->uf_code = tn->tn_egress_used ?
		    "upstream_proxy_unreachable" : "upstream_unreachable";
		break;
	case CURLE_COULDNT_RESOLVE_HOST:
		uf->uf_code = "upstream_unreachable";
		break;
	case CURLE_OPERATION_TIMEDOUT:
		uf->uf_status = 504;
		uf->uf_code = "upstream_timeout";
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
		uf->uf_code = "upstream_tls";
		break;
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
		/*
		 * Under TLS 1.3 a server refuses a client certificate (or its
		 * absence) after the client's side of the handshake is done:
		 * the alert, or only the reset that follows it, comes with the
		 * first write or read. An error there on a connection this
		 * transfer opened, before any answer, is a TLS refusal.
		 */
		connects = 0;
		status = 0;
		curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &connects);
		curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
		if (strstr(detail, "alert") != NULL && strstr(detail, "SSL") !=
		    NULL) {
			uf->uf_code = "upstream_tls";
			break;
		}
		if (connects > 0 && status == 0) {
			uf->uf_code = "upstream_tls";
			snprintf(uf->uf_message, sizeof(uf->uf_message), "%s: "
			    "the tenant ended the connection right after the "
			    "TLS handshake, as one does that refuses the client "
			    "certificate%s", detail, tn->tn_client_cert == NULL ?
			    " (none is set: client_cert, client_key)" : "");
			return;
		}
		uf->uf_code = "upstream_error";
		break;
	default:
		uf->uf_code = "upstream_error";
		break;
	}
	if (strcmp(uf->uf_code, "upstream_proxy_unreachable") == 0)
		snprintf(uf->uf_message, sizeof(uf->uf_message), "egress proxy "
		    "%s: %s", tn->tn_egress_proxy, detail);
	else if (strcmp(uf->uf_code, "upstream_tls") == 0 &&
	    strstr(detail, "certificate required") != NULL &&
	    tn->tn_client_cert == NULL)
		snprintf(uf->uf_message, sizeof(uf->uf_message), "%s (the "
		    "tenant wants a client certificate: client_cert, "
		    "client_key)", detail);
	else
		snprintf(uf->uf_message, sizeof(uf->uf_message), "%s", detail);
}

/*
 * Start the request to the tenant. has_body says whether the client framed
 * a body (Content-Length or chunked); evhttp has read it whole. The
 * transfer reports through cbs, with req as their argument.
 */
int
upstream_start(struct request *req, int has_body,
    const struct upstream_cbs *cbs, char **cause)
{
	struct worker		*w = req->req_worker;
	struct tenant		*tn = req->req_tenant;
	struct config		*cf = req->req_conf;
	struct evbuffer		*body, *tmp = w->w_scratch;
	enum evhttp_cmd_type	 cmd;
	CURL			*easy;
	CURLcode		 rc;
	const char		*what;
	size_t			 len;
	int			 body_mode;

	*cause = NULL;
	/* A new attempt: nothing of the last one's end carries over. */
	req->req_xfer.ux_done = 0;
	req->req_xfer.ux_sent = 0;
	req->req_paused = 0;
	cmd = evhttp_request_get_command(req->req_http);
	body = evhttp_request_get_input_buffer(req->req_http);
	/* POST always carries a body to the tenant, if only an empty one. */
	body_mode = (has_body || cmd == EVHTTP_REQ_POST) &&
	    cmd != EVHTTP_REQ_HEAD;
	if ((easy = upstream_easy_get(w)) == NULL)
		return -1;
	req->req_xfer.ux_easy = easy;
	req->req_xfer.ux_cbs = cbs;
	if (upstream_headers(req, body_mode, &req->req_xfer.ux_headers,
	    cause) == -1)
		return -1;

	evbuffer_drain(tmp, evbuffer_get_length(tmp));
	evbuffer_add(tmp, tn->tn_base_url, strlen(tn->tn_base_url));
	evbuffer_add(tmp, req->req_uri, strlen(req->req_uri) + 1);
	len = evbuffer_get_length(tmp);
	curl_easy_setopt(easy, CURLOPT_URL, evbuffer_pullup(tmp, -1));
	evbuffer_drain(tmp, len);

	curl_easy_setopt(easy, CURLOPT_PRIVATE, req);
	curl_easy_setopt(easy, CURLOPT_SHARE, w->w_share);
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, req->req_xfer.ux_headers);
	curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, upstream_header_cb);
	curl_easy_setopt(easy, CURLOPT_HEADERDATA, req);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, upstream_write_cb);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, req);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, req->req_curl_error);
	if ((rc = upstream_tenant_setopt(easy, tn, cf, &what)) != CURLE_OK) {
		if (asprintf(cause, "libcurl refused %s: %s", what,
		    curl_easy_strerror(rc)) == -1)
			*cause = NULL;
		return -1;
	}
	curl_easy_setopt(easy, CURLOPT_PIPEWAIT, 1L);
	curl_easy_setopt(easy, CURLOPT_BUFFERSIZE, (long)UPSTREAM_BUFFERSIZE);

	if (body_mode) {
		len = evbuffer_get_length(body);
		curl_easy_setopt(easy, CURLOPT_POST, 1L);
		if (cmd != EVHTTP_REQ_POST)
			curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST,
			    req->req_method);
		/* The body lives as long as the request: send it in place. */
		curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)len);
		curl_easy_setopt(easy, CURLOPT_POSTFIELDS, len > 0 ?
		    (char *)evbuffer_pullup(body, -1) : "");
	} else if (cmd == EVHTTP_REQ_HEAD)
		curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
	else if (cmd == EVHTTP_REQ_GET)
		curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
	else
		curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, req->req_method);
	if (curl_multi_add_handle(w->w_multi, easy) != CURLM_OK) {
		*cause = strdup("libcurl refused the transfer");
		return -1;
	}
	req->req_xfer.ux_in_multi = 1;
	return 0;
}

/* Take the request out of libcurl (cancelling it if still running). */
void
upstream_detach(struct request *req)
{
	struct worker		*w = req->req_worker;
	struct upstream_xfer	*ux = &req->req_xfer;
	long			 sent;

	if (ux->ux_in_multi) {
		/* Did the request go out (governor.c's XQL slots ask)? */
		sent = 0;
		curl_easy_getinfo(ux->ux_easy, CURLINFO_REQUEST_SIZE, &sent);
		ux->ux_sent = sent > 0;
		curl_multi_remove_handle(w->w_multi, ux->ux_easy);
		ux->ux_in_multi = 0;
		/* Time to first byte, connections: before the reset. */
		metrics_upstream_done(req, ux->ux_easy);
	}
	if (ux->ux_easy != NULL) {
		upstream_easy_put(w, ux->ux_easy);
		ux->ux_easy = NULL;
	}
	upstream_headers_free(ux->ux_headers);
	ux->ux_headers = NULL;
}

/* Unpause after a slow client caught up; may call the write callback. */
void
upstream_resume(struct request *req)
{
	if (req->req_xfer.ux_in_multi && !req->req_xfer.ux_done)
		curl_easy_pause(req->req_xfer.ux_easy, CURLPAUSE_CONT);
}
