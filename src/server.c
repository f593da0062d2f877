/*
 * server.c: the client side. One evhttp per listening address, so a
 * request knows its tenant and the Host names its listener answers to;
 * libevent's HTTP server limits and timeouts are set here.
 */
#include "config.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <event2/bufferevent.h>
#include <event2/listener.h>

#include "xdrproxy.h"

#define SERVER_BACKLOG	511

/* Names every listener answers to, besides its address and server_name. */
static const char *const server_local_names[] = {
	"localhost", "127.0.0.1", "::1"
};

/* Numeric host of a socket address; v4-mapped v6 shown as v4. */
static int
server_numeric_host(const struct sockaddr *sa, socklen_t len, char *buf,
    size_t size, int *port)
{
	char	 serv[NI_MAXSERV];

	if (getnameinfo(sa, len, buf, (socklen_t)size, serv, sizeof(serv),
	    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		return -1;
	if (strncmp(buf, "::ffff:", 7) == 0 && strchr(buf + 7, ':') == NULL)
		memmove(buf, buf + 7, strlen(buf + 7) + 1);
	if (port != NULL)
		*port = atoi(serv);
	return 0;
}

static int
server_is_loopback(const struct sockaddr_storage *ss)
{
	const struct sockaddr_in	*sin = (const struct sockaddr_in *)ss;
	const struct sockaddr_in6	*sin6 = (const struct sockaddr_in6 *)ss;

	if (ss->ss_family == AF_INET)
		return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
	if (ss->ss_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr);
	return 1;
}

/* A listening unix socket at path, replacing a stale one. */
static int
server_unix_socket(const struct listen_addr *la, char **cause)
{
	struct sockaddr_un	 sun;
	struct stat		 st;
	mode_t			 old;
	int			 fd, probe;

	if (lstat(la->la_path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			if (asprintf(cause, "%s exists and is not a socket",
			    la->la_path) == -1)
				*cause = NULL;
			return -1;
		}
		/* Another process still answering on it? */
		memcpy(&sun, &la->la_ss, sizeof(sun));
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe != -1 && connect(probe, (struct sockaddr *)&sun,
		    sizeof(sun)) == 0) {
			close(probe);
			if (asprintf(cause, "%s: in use by another process",
			    la->la_path) == -1)
				*cause = NULL;
			return -1;
		}
		if (probe != -1)
			close(probe);
		unlink(la->la_path);
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0)) == -1)
		goto fail;
	/* Owner and group may connect: access is the socket's mode 0660. */
	old = umask(0117);
	if (bind(fd, (struct sockaddr *)&la->la_ss, la->la_sslen) == -1) {
		umask(old);
		goto fail;
	}
	umask(old);
	if (listen(fd, SERVER_BACKLOG) == -1)
		goto fail;
	return fd;
fail:
	if (asprintf(cause, "%s: %s", la->la_path, strerror(errno)) == -1)
		*cause = NULL;
	if (fd != -1)
		close(fd);
	return -1;
}

/* A TCP socket bound to ss, listening when backlog > 0. */
static int
server_tcp_bind(const struct sockaddr_storage *ss, socklen_t len, int reuseport,
    int backlog)
{
	int	 fd, on = 1, saved;

	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0);
	if (fd == -1)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1 ||
	    (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on,
	    sizeof(on)) == -1) ||
	    (ss->ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6,
	    IPV6_V6ONLY, &on, sizeof(on)) == -1) ||
	    /*
	     * Responses go out in pieces as they arrive: without TCP_NODELAY,
	     * Nagle's algorithm and the client's delayed ACK stall each one by
	     * tens of ms. Accepted sockets inherit it from the listener.
	     */
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) == -1 ||
	    bind(fd, (const struct sockaddr *)ss, len) == -1 ||
	    (backlog > 0 && listen(fd, backlog) == -1)) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

/*
 * The listening socket of one worker. With several workers each has its
 * own, joined by SO_REUSEPORT so the kernel spreads connections; the first
 * one probes the address without SO_REUSEPORT first, so that an address in
 * use (even by another xdrproxy) is an error rather than a shared port,
 * and fixes the port when the configuration says 0.
 */
static int
server_tcp_socket(struct worker *w, struct listen_addr *la, char **cause)
{
	struct sockaddr_storage	 ss = la->la_ss;
	socklen_t		 sslen = sizeof(ss);
	int			 fd, reuseport = w->w_conf->cf_workers > 1;

	if (reuseport && w->w_index == 0) {
		if ((fd = server_tcp_bind(&la->la_ss, la->la_sslen, 0, 0)) ==
		    -1)
			goto fail;
		if (getsockname(fd, (struct sockaddr *)&ss, &sslen) == -1) {
			close(fd);
			goto fail;
		}
		close(fd);
		la->la_bound = ss;
	} else if (reuseport)
		ss = la->la_bound;
	if ((fd = server_tcp_bind(&ss, la->la_sslen, reuseport,
	    SERVER_BACKLOG)) == -1)
		goto fail;
	return fd;
fail:
	if (asprintf(cause, "%s: %s", la->la_text, strerror(errno)) == -1)
		*cause = NULL;
	return -1;
}

/* The Host names a listener answers to. */
static int
server_names(struct listener *ln)
{
	struct tenant	*tn = ln->ln_tenant;
	size_t		 n = 0, i;

	ln->ln_names = calloc(4 + tn->tn_server_names.sl_n,
	    sizeof(*ln->ln_names));
	if (ln->ln_names == NULL)
		return -1;
	for (i = 0; i < 3; i++)
		ln->ln_names[n++] = server_local_names[i];
	if (!ln->ln_addr->la_unix && !ln->ln_wildcard)
		ln->ln_names[n++] = ln->ln_bound_name;
	for (i = 0; i < tn->tn_server_names.sl_n; i++)
		ln->ln_names[n++] = tn->tn_server_names.sl_v[i];
	ln->ln_nnames = n;
	return 0;
}

static struct evhttp *
server_http_new(struct worker *w, struct listener *ln)
{
	struct config	*cf = w->w_conf;
	struct evhttp	*http;
	struct timeval	 tv;

	if ((http = evhttp_new(w->w_base)) == NULL)
		return NULL;
	evhttp_set_max_headers_size(http, (ev_ssize_t)cf->cf_max_headers);
	evhttp_set_max_body_size(http, (ev_ssize_t)cf->cf_max_body);
	evhttp_set_default_content_type(http, NULL);
	/* Let every method through: the handler answers 405 itself. */
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	    EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
	    EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT |
	    EVHTTP_REQ_PATCH);
	tv = ms_timeval(cf->cf_client_timeout);
	evhttp_set_timeout_tv(http, &tv);
	evhttp_set_gencb(http, proxy_handle, ln);
	return http;
}

static int
server_listen(struct worker *w, struct tenant *tn, struct listen_addr *la,
    char **cause)
{
	struct listener		*ln;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen = sizeof(ss);
	char			 host[64];
	int			 fd = -1, port = 0;

	if ((ln = calloc(1, sizeof(*ln))) == NULL)
		goto nomem;
	ln->ln_worker = w;
	ln->ln_tenant = tn;
	ln->ln_addr = la;
	TAILQ_INSERT_TAIL(&w->w_listeners, ln, ln_entry);
	if (la->la_unix) {
		if ((fd = server_unix_socket(la, cause)) == -1)
			return -1;
	} else if ((fd = server_tcp_socket(w, la, cause)) == -1)
		return -1;
	if (!la->la_unix) {
		if (getsockname(fd, (struct sockaddr *)&ss, &sslen) == -1 ||
		    server_numeric_host((struct sockaddr *)&ss, sslen, host,
		    sizeof(host), &port) == -1) {
			if (asprintf(cause, "%s: getsockname: %s", la->la_text,
			    strerror(errno)) == -1)
				*cause = NULL;
			close(fd);
			return -1;
		}
		snprintf(ln->ln_bound_name, sizeof(ln->ln_bound_name), "%s",
		    host);
		ln->ln_wildcard = strcmp(host, "0.0.0.0") == 0 ||
		    strcmp(host, "::") == 0;
	}
	if (server_names(ln) == -1 ||
	    (ln->ln_http = server_http_new(w, ln)) == NULL) {
		close(fd);
		goto nomem;
	}
	if ((ln->ln_bound = evhttp_accept_socket_with_handle(ln->ln_http,
	    fd)) == NULL) {
		close(fd);
		goto nomem;
	}
	if (w->w_index > 0)
		return 0;
	if (la->la_unix)
		log_info("tenant %s: listening on unix:%s", tn->tn_name,
		    la->la_path);
	else if (ss.ss_family == AF_INET6)
		log_info("tenant %s: listening on [%s]:%d", tn->tn_name, host,
		    port);
	else
		log_info("tenant %s: listening on %s:%d", tn->tn_name, host,
		    port);
	if (!la->la_unix && !server_is_loopback(&ss))
		log_warnx("tenant %s: %s is reachable from other hosts: "
		    "anyone who can connect to it can call the tenant with "
		    "this key", tn->tn_name, la->la_text);
	return 0;
nomem:
	if (asprintf(cause, "%s: out of memory", la->la_text) == -1)
		*cause = NULL;
	return -1;
}

/* Open every tenant's listeners on w's event base. */
int
server_start(struct worker *w, struct config *cf, char **cause)
{
	struct tenant		*tn;
	struct listen_addr	*la;
	char			*why = NULL;

	*cause = NULL;
	TAILQ_FOREACH(tn, &cf->cf_tenants, tn_entry) {
		TAILQ_FOREACH(la, &tn->tn_listens, la_entry) {
			/*
			 * A unix socket is served by the first worker only:
			 * sharing one descriptor between event loops (dup) is
			 * what libevent's epoll changelist cannot handle.
			 */
			if (la->la_unix && w->w_index > 0)
				continue;
			if (server_listen(w, tn, la, &why) == -1) {
				if (asprintf(cause, "%s:%d: listen %s", cf->cf_file,
				    la->la_line, why != NULL ? why :
				    "out of memory") == -1)
					*cause = NULL;
				free(why);
				return -1;
			}
		}
	}
	return 0;
}

/* Close the listening sockets; open client connections carry on. */
void
server_stop_accepting(struct worker *w)
{
	struct listener	*ln;

	TAILQ_FOREACH(ln, &w->w_listeners, ln_entry) {
		if (ln->ln_bound == NULL)
			continue;
		evhttp_del_accept_socket(ln->ln_http, ln->ln_bound);
		ln->ln_bound = NULL;
		if (ln->ln_addr->la_unix)
			unlink(ln->ln_addr->la_path);
	}
}

/* Close everything, client connections included; no request is live. */
void
server_free(struct worker *w)
{
	struct listener	*ln;

	server_stop_accepting(w);
	while ((ln = TAILQ_FIRST(&w->w_listeners)) != NULL) {
		TAILQ_REMOVE(&w->w_listeners, ln, ln_entry);
		if (ln->ln_http != NULL)
			evhttp_free(ln->ln_http);
		free(ln->ln_names);
		free(ln);
	}
}

/* The local address a client connected to (for wildcard listeners). */
int
server_local_name(struct evhttp_connection *conn, char *buf, size_t size)
{
	struct sockaddr_storage	 ss;
	socklen_t		 len = sizeof(ss);
	evutil_socket_t		 fd;

	fd = bufferevent_getfd(evhttp_connection_get_bufferevent(conn));
	if (fd == -1 || getsockname(fd, (struct sockaddr *)&ss, &len) == -1)
		return -1;
	return server_numeric_host((struct sockaddr *)&ss, len, buf, size,
	    NULL);
}
