/*
 * admin.c: the admin listener ([proxy] admin_listen): GET /metrics (the
 * Prometheus text exposition, metrics.c), /healthz (alive) and /readyz
 * (able to serve), over plain HTTP. Served by its own evhttp on the main
 * thread's event base, never on a worker's loop: a scrape reads the
 * workers' counters and cannot delay a request.
 *
 * The admin port refuses what a web page could send through a visitor's
 * browser, as the proxy's listeners do: requests with a browser's marks
 * (403) and Host names that are not this machine's (421, against DNS
 * rebinding), so a page cannot read the metrics.
 *
 * admin_reconfigure() takes a new configuration: sockets for addresses in
 * both are kept (no refused scrape), new ones opened, removed ones closed;
 * if one cannot be opened, nothing changes.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <netinet/in.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "xdrproxy.h"

#define ADMIN_MAX_HEADERS	(16 * 1024)
#define ADMIN_MAX_BODY		(16 * 1024)
#define ADMIN_TIMEOUT		10	/* s, to read a request, to write */

#define ADMIN_METRICS_TYPE	"text/plain; version=0.0.4; charset=utf-8"

struct admin_listener {
	TAILQ_ENTRY(admin_listener) al_entry;
	struct listen_addr	 al_addr;	/* a copy: configs go */
	struct evhttp		*al_http;
	char			 al_host[64];	/* numeric, as bound */
	int			 al_port;
	int			 al_wildcard;
	int			 al_new;	/* opened by this reconfig */
};
TAILQ_HEAD(admin_listeners, admin_listener);

static struct event_base	*admin_base;
static struct config		*admin_conf;
static struct admin_listeners	 admin_list =
				    TAILQ_HEAD_INITIALIZER(admin_list);
static int			 admin_is_draining;

/* Headers common to every answer; the body is dropped for HEAD. */
static void
admin_reply(struct evhttp_request *req, int status, const char *type,
    struct evbuffer *body)
{
	struct evkeyvalq	*out = evhttp_request_get_output_headers(req);
	char			 len[24];

	evhttp_add_header(out, "Content-Type", type);
	evhttp_add_header(out, "Cache-Control", "no-store");
	snprintf(len, sizeof(len), "%zu", evbuffer_get_length(body));
	evhttp_add_header(out, "Content-Length", len);
	if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD)
		evbuffer_drain(body, evbuffer_get_length(body));
	evhttp_send_reply(req, status, NULL, body);
}

/* An error in the proxy's shape: JSON and x-xdrproxy-error. */
static void
admin_error(struct evhttp_request *req, int status, const char *code,
    const char *message)
{
	struct evbuffer	*body;

	if ((body = evbuffer_new()) == NULL) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	evbuffer_add_printf(body, "{\"error\":\"%s\",\"message\":", code);
	json_add_cstring(body, message);
	evbuffer_add(body, "}", 1);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "x-xdrproxy-error", code);
	if (status == 405)
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Allow", "GET, HEAD");
	admin_reply(req, status, "application/json", body);
	evbuffer_free(body);
}

/*
 * Is every Host header one of this machine's names: localhost, the
 * loopback addresses, the address the listener is bound to, or for a
 * wildcard listener the one the client connected to? No Host (HTTP/1.0)
 * is no browser's.
 */
static int
admin_host_ok(struct admin_listener *al, struct evhttp_request *req)
{
	const struct evkeyval	*kv;
	const char		*names[4] = { "localhost", "127.0.0.1", "::1",
				    al->al_host };
	char			 name[256], local[64];
	size_t			 n = al->al_addr.la_unix ? 3 : 4;

	if (al->al_wildcard) {
		if (server_local_name(evhttp_request_get_connection(req), local,
		    sizeof(local)) == -1)
			local[0] = '\0';
		names[3] = local;
	}
	TAILQ_FOREACH(kv, evhttp_request_get_input_headers(req), next) {
		if (strcasecmp(kv->key, "Host") != 0)
			continue;
		if (filter_host_name(kv->value, name, sizeof(name)) == -1 ||
		    !filter_host_allowed(name, names, n))
			return 0;
	}
	return 1;
}

static void
admin_metrics(struct evhttp_request *req)
{
	struct evbuffer	*body;

	if ((body = evbuffer_new()) == NULL) {
		admin_error(req, 500, "internal_error", "out of memory");
		return;
	}
	metrics_render(body, admin_conf);
	admin_reply(req, 200, ADMIN_METRICS_TYPE, body);
	evbuffer_free(body);
}

/* What a tenant needs to serve: its key, loaded and not empty. */
static const char *
admin_tenant_state(const struct tenant *tn)
{
	const struct key	*k = tn->tn_key;

	/* A key on a token has no bytes here; the token was checked at load. */
	if (k == NULL || (k->k_p11 == NULL && k->k_data == NULL))
		return "key not loaded";
	if (k->k_p11 == NULL && k->k_len == 0)
		return "key empty";
	if (expiry_expired(tn, (int64_t)time(NULL)))
		return "key expired";
	return NULL;
}

/*
 * Ready: listening (not draining), a configuration in force, the audit
 * log writable and every tenant's key usable. The body names each check
 * and its state, "ok" or why not, whatever the answer.
 */
static void
admin_readyz(struct evhttp_request *req)
{
	struct evbuffer		*body;
	const struct tenant	*tn;
	const char		*why;
	char			 audit[256];
	int			 ready = 1, first = 1;

	if ((body = evbuffer_new()) == NULL) {
		admin_error(req, 500, "internal_error", "out of memory");
		return;
	}
	if (admin_is_draining || admin_conf == NULL)
		ready = 0;
	if (audit_ready(audit, sizeof(audit)) == -1)
		ready = 0;
	else
		snprintf(audit, sizeof(audit), "ok");
	if (admin_conf != NULL)
		TAILQ_FOREACH(tn, &admin_conf->cf_tenants, tn_entry)
			if (admin_tenant_state(tn) != NULL)
				ready = 0;
	evbuffer_add_printf(body, "{\"status\":\"%s\",\"checks\":{"
	    "\"listening\":\"%s\",\"config\":\"%s\",\"audit\":",
	    ready ? "ready" : "not_ready", admin_is_draining ? "draining" :
	    "ok", admin_conf != NULL ? "ok" : "not loaded");
	json_add_cstring(body, audit);
	evbuffer_add_printf(body, ",\"tenants\":{");
	if (admin_conf != NULL) {
		TAILQ_FOREACH(tn, &admin_conf->cf_tenants, tn_entry) {
			why = admin_tenant_state(tn);
			if (!first)
				evbuffer_add(body, ",", 1);
			first = 0;
			json_add_cstring(body, tn->tn_name);
			evbuffer_add(body, ":", 1);
			json_add_cstring(body, why != NULL ? why : "ok");
		}
	}
	evbuffer_add_printf(body, "}}}");
	admin_reply(req, ready ? 200 : 503, "application/json", body);
	evbuffer_free(body);
}

/* evhttp's callback for every request on an admin listener. */
static void
admin_handle(struct evhttp_request *req, void *arg)
{
	struct admin_listener	*al = arg;
	const struct evhttp_uri	*uri;
	enum evhttp_cmd_type	 cmd = evhttp_request_get_command(req);
	const char		*path = NULL, *which;
	struct evbuffer		*body;
	char			 msg[128];

	if (filter_browser(evhttp_request_get_input_headers(req), &which) ==
	    -1) {
		snprintf(msg, sizeof(msg), "requests from a web browser are "
		    "refused (%s)", which);
		admin_error(req, 403, "browser_request_refused", msg);
		return;
	}
	if (!admin_host_ok(al, req)) {
		admin_error(req, 421, "misdirected_host", "the Host header "
		    "names no address of this admin listener");
		return;
	}
	if ((uri = evhttp_request_get_evhttp_uri(req)) != NULL)
		path = evhttp_uri_get_path(uri);
	if (path == NULL || (strcmp(path, "/metrics") != 0 &&
	    strcmp(path, "/healthz") != 0 && strcmp(path, "/readyz") != 0)) {
		admin_error(req, 404, "not_found", "no such path: the admin "
		    "listener serves /metrics, /healthz and /readyz");
		return;
	}
	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		admin_error(req, 405, "method_not_allowed", "the admin "
		    "listener answers GET and HEAD only");
		return;
	}
	if (strcmp(path, "/metrics") == 0)
		admin_metrics(req);
	else if (strcmp(path, "/readyz") == 0)
		admin_readyz(req);
	else if ((body = evbuffer_new()) == NULL)
		admin_error(req, 500, "internal_error", "out of memory");
	else {
		/* Alive: the main thread's loop answered. */
		evbuffer_add_printf(body, "{\"status\":\"ok\"}");
		admin_reply(req, 200, "application/json", body);
		evbuffer_free(body);
	}
}

/* Same address as configured (port 0 included), or same socket path. */
static int
admin_same_addr(const struct listen_addr *a, const struct listen_addr *b)
{
	if (a->la_unix || b->la_unix)
		return a->la_unix && b->la_unix &&
		    strcmp(a->la_path, b->la_path) == 0;
	return a->la_sslen == b->la_sslen &&
	    memcmp(&a->la_ss, &b->la_ss, a->la_sslen) == 0;
}

static void
admin_close(struct admin_listener *al)
{
	/* Closes the socket and the connections on it. */
	evhttp_free(al->al_http);
	if (al->al_addr.la_unix)
		unlink(al->al_addr.la_path);
	free(al);
}

static void
admin_log_listening(const struct admin_listener *al)
{
	if (al->al_addr.la_unix) {
		log_info("admin: listening on unix:%s (metrics, health)",
		    al->al_addr.la_path);
		return;
	}
	log_info(strchr(al->al_host, ':') != NULL ? "admin: listening on "
	    "[%s]:%d (metrics, health)" : "admin: listening on %s:%d "
	    "(metrics, health)", al->al_host, al->al_port);
	if (strncmp(al->al_host, "127.", 4) != 0 &&
	    strcmp(al->al_host, "::1") != 0)
		log_warnx("admin: %s is reachable from other hosts: anyone "
		    "who can connect to it can read the metrics",
		    al->al_addr.la_text);
}

/* A listener for la, open; NULL with *cause ("FILE:LINE: ...") if not. */
static struct admin_listener *
admin_open(const struct config *cf, const struct listen_addr *la,
    char **cause)
{
	struct admin_listener	*al;
	struct timeval		 tv = { ADMIN_TIMEOUT, 0 };
	char			*why = NULL;
	int			 fd = -1;

	*cause = NULL;
	if ((al = calloc(1, sizeof(*al))) == NULL)
		goto fail;
	al->al_addr = *la;
	if ((fd = server_socket(la, al->al_host, sizeof(al->al_host),
	    &al->al_port, &why)) == -1)
		goto fail;
	al->al_wildcard = strcmp(al->al_host, "0.0.0.0") == 0 ||
	    strcmp(al->al_host, "::") == 0;
	if ((al->al_http = evhttp_new(admin_base)) == NULL)
		goto fail;
	evhttp_set_max_headers_size(al->al_http, ADMIN_MAX_HEADERS);
	evhttp_set_max_body_size(al->al_http, ADMIN_MAX_BODY);
	evhttp_set_default_content_type(al->al_http, NULL);
	/* Every method reaches admin_handle(), which answers 405 itself. */
	evhttp_set_allowed_methods(al->al_http, EVHTTP_REQ_GET |
	    EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
	    EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
	    EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	evhttp_set_timeout_tv(al->al_http, &tv);
	evhttp_set_gencb(al->al_http, admin_handle, al);
	if (evhttp_accept_socket_with_handle(al->al_http, fd) == NULL)
		goto fail;
	al->al_new = 1;
	return al;
fail:
	if (asprintf(cause, "%s:%d: admin_listen %s", cf->cf_file, la->la_line,
	    why != NULL ? why : "out of memory") == -1)
		*cause = NULL;
	free(why);
	/* Not evhttp's yet: a socket is only its own once accepted on. */
	if (al != NULL && al->al_http != NULL)
		evhttp_free(al->al_http);
	if (fd != -1) {
		close(fd);
		if (la->la_unix)
			unlink(la->la_path);
	}
	free(al);
	return NULL;
}

/*
 * Serve the admin addresses of cf from now on (main thread). Sockets on
 * addresses the previous configuration had too are kept, new ones are
 * opened, the others closed. If one cannot be opened nothing changes:
 * -1 with *cause ("FILE:LINE: admin_listen ..."). On success cf is the
 * configuration /readyz and /metrics look at: it must live until the
 * next admin_reconfigure() or admin_free() (with reference-counted
 * generations, the caller keeps a reference for admin.c until then).
 */
int
admin_reconfigure(struct config *cf, char **cause)
{
	struct admin_listeners	 next = TAILQ_HEAD_INITIALIZER(next);
	struct admin_listener	*al;
	struct listen_addr	*la;

	*cause = NULL;
	TAILQ_FOREACH(la, &cf->cf_admin_listens, la_entry) {
		TAILQ_FOREACH(al, &admin_list, al_entry)
			if (admin_same_addr(&al->al_addr, la))
				break;
		if (al != NULL) {
			TAILQ_REMOVE(&admin_list, al, al_entry);
			al->al_addr.la_line = la->la_line;
		} else if ((al = admin_open(cf, la, cause)) == NULL)
			goto fail;
		TAILQ_INSERT_TAIL(&next, al, al_entry);
	}
	/* Committed: what is left was removed. */
	while ((al = TAILQ_FIRST(&admin_list)) != NULL) {
		TAILQ_REMOVE(&admin_list, al, al_entry);
		log_info("admin: no longer listening on %s",
		    al->al_addr.la_text);
		admin_close(al);
	}
	while ((al = TAILQ_FIRST(&next)) != NULL) {
		TAILQ_REMOVE(&next, al, al_entry);
		if (al->al_new)
			admin_log_listening(al);
		al->al_new = 0;
		TAILQ_INSERT_TAIL(&admin_list, al, al_entry);
	}
	admin_conf = cf;
	return 0;
fail:
	/* Back as it was: kept sockets return, new ones close. */
	while ((al = TAILQ_FIRST(&next)) != NULL) {
		TAILQ_REMOVE(&next, al, al_entry);
		if (al->al_new)
			admin_close(al);
		else
			TAILQ_INSERT_TAIL(&admin_list, al, al_entry);
	}
	return -1;
}

/* Start serving cf's admin addresses on base (the main thread's loop). */
int
admin_start(struct event_base *base, struct config *cf, char **cause)
{
	admin_base = base;
	return admin_reconfigure(cf, cause);
}

/* The proxy is draining (SIGTERM): /readyz says so; /healthz stays 200. */
void
admin_draining(void)
{
	admin_is_draining = 1;
}

/* Close every admin socket; before the main event base is freed. */
void
admin_free(void)
{
	struct admin_listener	*al;

	while ((al = TAILQ_FIRST(&admin_list)) != NULL) {
		TAILQ_REMOVE(&admin_list, al, al_entry);
		admin_close(al);
	}
	admin_conf = NULL;
	admin_base = NULL;
}
