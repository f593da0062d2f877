/*
 * server.c: the client side. One evhttp per listening address, so a
 * request knows its tenant and the Host names its listener answers to;
 * libevent's HTTP server limits and timeouts are set here. Each client
 * connection has a struct conn, from accept to close: it counts open
 * connections against max_clients, times the request head (slowloris),
 * looks at the raw bytes of the head before evhttp parses them (a NUL
 * would cut a header short unseen), and turns a client's half-close into
 * "answer, then close" rather than an abort.
 */
#include "config.h"

#include <sys/stat.h>

#include <ctype.h>
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

#include <stdatomic.h>
#include <sys/resource.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/http_struct.h>
#include <event2/listener.h>

#include "xdrproxy.h"

#define SERVER_BACKLOG	511

/* Sent to an HTTP/1.1 client that half-closed, to learn if it is gone. */
#define SERVER_PROBE	"HTTP/1.1 100 Continue\r\n\r\n"
#define SERVER_PROBE_AFTER	250	/* ms */

enum conn_state {
	CONN_NEW,	/* accepted; conn_setup() has not run yet */
	CONN_IDLE,	/* waiting for a request */
	CONN_HEAD,	/* reading a request line and headers */
	CONN_BODY,	/* evhttp reads the body */
	CONN_BUSY,	/* proxy.c has the request */
	CONN_CLOSING	/* to be closed on the next turn */
};

/* Where conn_chunk_scan() is in a chunked body. */
enum conn_chunk {
	CK_SIZE,	/* hex digits */
	CK_EXT,		/* ;extension up to CR */
	CK_SIZE_LF,
	CK_DATA,
	CK_DATA_CR,
	CK_DATA_LF,
	CK_TRAILER,	/* trailer lines up to a blank one */
	CK_TRAILER_LINE,
	CK_TRAILER_LF,
	CK_DONE
};

/* One client connection, owned by its worker's thread. */
struct conn {
	struct listener		*c_listener;
	struct bufferevent	*c_bev;
	struct evhttp_connection *c_evcon;
	struct evbuffer_cb_entry *c_incb;	/* watches the input */
	struct event		*c_timer;	/* setup, then the head's deadline */
	enum conn_state		 c_state;
	int			 c_fd;
	size_t			 c_head_len;
	int			 c_eol;		/* end-of-head matcher state */
	int			 c_head_bad;	/* NUL or control byte in it */
	size_t			 c_te_match;	/* of "transfer-encoding:" */
	int			 c_chunked;	/* the head named one */
	enum conn_chunk		 c_ck;		/* chunked body checker */
	uint64_t		 c_ck_left;	/* of a chunk's data */
	int			 c_ck_digits;
	int			 c_chunk_bad;	/* malformed chunked framing */
	struct event		*c_fix;		/* rewrites libevent's answers */
	int			 c_fixed;	/* once per connection */
	int			 c_refuse_now;	/* conn_refuse_chunked() */
	struct evbuffer_cb_entry *c_outcb;
	int			 c_half_closed;
	int			 c_served;	/* a request was answered */
	int			 c_refuse;	/* past max_clients at accept */
	int			 c_close_after;	/* close once the reply is out */
	TAILQ_ENTRY(conn)	 c_entry;	/* the worker's connections */
	unsigned int		 c_probe_ms;	/* next look for a reset */
	struct evhttp_request	*c_http;	/* while CONN_BUSY */
	void			(*c_closecb)(struct evhttp_connection *,
				    void *);	/* the request's */
	void			*c_closearg;
	bufferevent_data_cb	 c_wcb;		/* evhttp's callbacks */
	bufferevent_event_cb	 c_ecb;
	void			*c_cbarg;
	struct caller		*c_caller;	/* resolved at the setup */
};

/*
 * Connections by descriptor, for every worker (a descriptor is one
 * thread's at a time), and their count against max_clients.
 */
static struct conn	**server_conns;
static size_t		  server_nconns;
static atomic_long	  server_nclients;
static int		  server_nworkers = 1;

/* Listening sockets passed by systemd (LISTEN_FDS), until taken. */
struct server_act {
	int			 sa_fd;		/* -1 once taken */
	struct sockaddr_storage	 sa_ss;
};
static struct server_act	*server_act;
static size_t			 server_nact;

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
	/*
	 * Bound owner-only, then given its mode= (0660 unless set) and
	 * group= (the daemon's unless set): never more open than asked.
	 */
	old = umask(0177);
	if (bind(fd, (struct sockaddr *)&la->la_ss, la->la_sslen) == -1) {
		umask(old);
		goto fail;
	}
	umask(old);
	if ((la->la_gid != (gid_t)-1 && chown(la->la_path, (uid_t)-1,
	    la->la_gid) == -1) || chmod(la->la_path, la->la_mode) == -1)
		goto fail;
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
 * The listening sockets of a TCP address, one per worker. With several
 * workers each has its own, joined by SO_REUSEPORT so the kernel spreads
 * connections; the address is first probed without SO_REUSEPORT, so that
 * an address in use (even by another xdrproxy) is an error rather than a
 * shared port, and the port is fixed when the configuration says 0.
 */
static int
server_tcp_open(struct listen_addr *la, char **cause)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sslen = sizeof(ss);
	int			 fd, i, reuseport = server_nworkers > 1;

	if (reuseport) {
		if ((fd = server_tcp_bind(&la->la_ss, la->la_sslen, 0, 0)) ==
		    -1)
			goto fail;
		if (getsockname(fd, (struct sockaddr *)&ss, &sslen) == -1) {
			close(fd);
			goto fail;
		}
		close(fd);
		la->la_bound = ss;
	} else
		la->la_bound = la->la_ss;
	for (i = 0; i < server_nworkers; i++) {
		if ((fd = server_tcp_bind(&la->la_bound, la->la_sslen,
		    reuseport, SERVER_BACKLOG)) == -1)
			goto fail;
		la->la_fds[i] = fd;
		if (!reuseport && getsockname(fd,
		    (struct sockaddr *)&la->la_bound, &sslen) == -1)
			goto fail;
	}
	return 0;
fail:
	if (asprintf(cause, "%s: %s", la->la_text, strerror(errno)) == -1)
		*cause = NULL;
	return -1;
}

/*
 * Two listen lines for the same socket: the same path, or the same address
 * and port (port 0 included: the one chosen at start is kept).
 */
static int
server_same_listen(const struct listen_addr *a, const struct listen_addr *b)
{
	const struct sockaddr_in	*a4, *b4;
	const struct sockaddr_in6	*a6, *b6;

	if (a->la_unix || b->la_unix)
		return a->la_unix && b->la_unix &&
		    strcmp(a->la_path, b->la_path) == 0;
	if (a->la_ss.ss_family != b->la_ss.ss_family)
		return 0;
	if (a->la_ss.ss_family == AF_INET) {
		a4 = (const struct sockaddr_in *)&a->la_ss;
		b4 = (const struct sockaddr_in *)&b->la_ss;
		return a4->sin_port == b4->sin_port &&
		    a4->sin_addr.s_addr == b4->sin_addr.s_addr;
	}
	a6 = (const struct sockaddr_in6 *)&a->la_ss;
	b6 = (const struct sockaddr_in6 *)&b->la_ss;
	return a6->sin6_port == b6->sin6_port &&
	    memcmp(&a6->sin6_addr, &b6->sin6_addr, sizeof(a6->sin6_addr)) == 0;
}

/* The listen line of cf for the same socket as la, and its tenant. */
static struct listen_addr *
server_find(const struct config *cf, const struct listen_addr *la,
    struct tenant **tnp)
{
	struct tenant		*tn;
	struct listen_addr	*la2;

	TAILQ_FOREACH(tn, &cf->cf_tenants, tn_entry) {
		TAILQ_FOREACH(la2, &tn->tn_listens, la_entry) {
			if (server_same_listen(la, la2)) {
				if (tnp != NULL)
					*tnp = tn;
				return la2;
			}
		}
	}
	return NULL;
}

/* A socket systemd passed for la's address, or -1; it is taken. */
static int
server_take_activated(const struct listen_addr *la)
{
	struct listen_addr	 got;
	size_t			 i;
	int			 fd;

	for (i = 0; i < server_nact; i++) {
		if (server_act[i].sa_fd == -1)
			continue;
		memset(&got, 0, sizeof(got));
		got.la_unix = server_act[i].sa_ss.ss_family == AF_UNIX;
		got.la_ss = server_act[i].sa_ss;
		if (got.la_unix)
			snprintf(got.la_path, sizeof(got.la_path), "%s",
			    ((struct sockaddr_un *)&got.la_ss)->sun_path);
		if (server_same_listen(la, &got)) {
			fd = server_act[i].sa_fd;
			server_act[i].sa_fd = -1;
			return fd;
		}
	}
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

/* Open client connections, all workers (metrics.c). */
long
server_clients(void)
{
	return atomic_load_explicit(&server_nclients, memory_order_relaxed);
}

/*
 * A listening socket for another server (admin.c) on la: TCP without
 * SO_REUSEPORT, or a unix socket as the tenants' are. Returns the
 * descriptor, with the numeric host and port it is bound to, or -1 with
 * *cause set.
 */
int
server_socket(const struct listen_addr *la, char *host, size_t size,
    int *port, char **cause)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sslen = sizeof(ss);
	int			 fd;

	*cause = NULL;
	*port = 0;
	host[0] = '\0';
	if (la->la_unix)
		return server_unix_socket(la, cause);
	if ((fd = server_tcp_bind(&la->la_ss, la->la_sslen, 0,
	    SERVER_BACKLOG)) == -1 || getsockname(fd, (struct sockaddr *)&ss,
	    &sslen) == -1 || server_numeric_host((struct sockaddr *)&ss, sslen,
	    host, size, port) == -1) {
		if (asprintf(cause, "%s: %s", la->la_text, strerror(errno)) ==
		    -1)
			*cause = NULL;
		if (fd != -1)
			close(fd);
		return -1;
	}
	return fd;
}

/*
 * Once, at start: the connection table, sized by the descriptor limit,
 * and the number of workers every TCP address gets a socket for.
 */
int
server_init(int nworkers)
{
	struct rlimit	 rl;

	server_nworkers = nworkers;
	if (getrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur > (1 << 20))
		rl.rlim_cur = 1 << 20;
	server_nconns = (size_t)rl.rlim_cur;
	if ((server_conns = calloc(server_nconns, sizeof(*server_conns))) ==
	    NULL)
		return -1;
	return 0;
}

/*
 * Socket activation: the listening sockets systemd passed, if it passed
 * them to this process (LISTEN_PID, LISTEN_FDS: descriptors 3 onwards).
 * server_open() matches them to listen lines by address; the variables are
 * removed so that nothing started later takes them for its own.
 */
int
server_activated(char **cause)
{
	const char	*pid, *fds;
	struct sockaddr_storage ss;
	socklen_t	 len;
	socklen_t	 tlen;
	long		 n, i;
	char		*end;
	int		 fd, type;

	*cause = NULL;
	pid = getenv("LISTEN_PID");
	fds = getenv("LISTEN_FDS");
	if (pid == NULL || fds == NULL)
		return 0;
	n = strtol(pid, &end, 10);
	if (*pid == '\0' || *end != '\0' || n != (long)getpid())
		goto done;
	n = strtol(fds, &end, 10);
	if (*fds == '\0' || *end != '\0' || n < 0 || n > 1024) {
		if (asprintf(cause, "LISTEN_FDS=%s: not a number of "
		    "descriptors", fds) == -1)
			*cause = NULL;
		return -1;
	}
	if (n > 0 && (server_act = calloc((size_t)n, sizeof(*server_act))) ==
	    NULL) {
		*cause = strdup("out of memory");
		return -1;
	}
	for (i = 0; i < n; i++) {
		fd = 3 + (int)i;
		len = sizeof(ss);
		memset(&ss, 0, sizeof(ss));
		type = 0;
		tlen = sizeof(type);
		if (getsockname(fd, (struct sockaddr *)&ss, &len) == -1 ||
		    getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) == -1 ||
		    type != SOCK_STREAM || (ss.ss_family != AF_INET &&
		    ss.ss_family != AF_INET6 && ss.ss_family != AF_UNIX)) {
			if (asprintf(cause, "socket activation: descriptor %d "
			    "is not a stream socket", fd) == -1)
				*cause = NULL;
			return -1;
		}
		(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
		(void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
		server_act[server_nact].sa_fd = fd;
		server_act[server_nact].sa_ss = ss;
		server_nact++;
	}
done:
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	return (int)server_nact;
}

/* Sockets systemd passed that no listen line named: closed, with a word. */
void
server_activated_done(void)
{
	char		 host[sizeof(((struct sockaddr_un *)0)->sun_path) + 8];
	size_t		 i;
	int		 port = 0;

	for (i = 0; i < server_nact; i++) {
		if (server_act[i].sa_fd == -1)
			continue;
		if (server_act[i].sa_ss.ss_family == AF_UNIX)
			snprintf(host, sizeof(host), "unix:%s",
			    ((struct sockaddr_un *)&server_act[i].sa_ss)->
			    sun_path);
		else if (server_numeric_host((struct sockaddr *)
		    &server_act[i].sa_ss, sizeof(server_act[i].sa_ss), host,
		    sizeof(host), &port) == -1)
			snprintf(host, sizeof(host), "?");
		log_warnx("socket activation: descriptor %d (%s%s%d) matches "
		    "no listen line: closed", server_act[i].sa_fd, host,
		    port != 0 ? ":" : "", port);
		close(server_act[i].sa_fd);
		server_act[i].sa_fd = -1;
	}
	free(server_act);
	server_act = NULL;
	server_nact = 0;
}

/*
 * Open the listening sockets cf needs and old (the configuration in force;
 * NULL at start) does not have: one per worker for a TCP address, one for
 * a unix socket or a socket systemd passed (served by the first worker).
 * The workers adopt them in server_start() or server_reconfigure(); those
 * in both configurations are handed over there, never reopened. On error
 * nothing changed: what was opened is closed with cf.
 */
int
server_open(struct config *cf, const struct config *old, char **cause)
{
	struct tenant		*tn;
	struct listen_addr	*la, *prev;
	char			*why = NULL;
	int			 i;

	*cause = NULL;
	TAILQ_FOREACH(tn, &cf->cf_tenants, tn_entry) {
		TAILQ_FOREACH(la, &tn->tn_listens, la_entry) {
			if (old != NULL && (prev = server_find(old, la,
			    NULL)) != NULL) {
				la->la_bound = prev->la_bound;
				continue;
			}
			if ((la->la_fds = calloc((size_t)server_nworkers,
			    sizeof(*la->la_fds))) == NULL) {
				why = strdup("out of memory");
				goto fail;
			}
			la->la_nfds = server_nworkers;
			for (i = 0; i < server_nworkers; i++)
				la->la_fds[i] = -1;
			/*
			 * A unix socket is served by the first worker only:
			 * sharing one descriptor between event loops (dup) is
			 * what libevent's epoll changelist cannot handle. So
			 * is a socket systemd passed.
			 */
			if ((la->la_fds[0] = server_take_activated(la)) != -1) {
				la->la_activated = 1;
				la->la_bound = la->la_ss;
				continue;
			}
			if (la->la_unix) {
				if ((la->la_fds[0] = server_unix_socket(la,
				    &why)) == -1)
					goto fail;
			} else if (server_tcp_open(la, &why) == -1)
				goto fail;
		}
	}
	return 0;
fail:
	if (asprintf(cause, "%s:%d: listen %s", cf->cf_file, la->la_line,
	    why != NULL ? why : "out of memory") == -1)
		*cause = NULL;
	free(why);
	return -1;
}

static struct conn *
server_conn(struct evhttp_connection *evcon)
{
	evutil_socket_t	 fd;

	fd = bufferevent_getfd(evhttp_connection_get_bufferevent(evcon));
	if (fd < 0 || (size_t)fd >= server_nconns)
		return NULL;
	return server_conns[fd];
}

static void
conn_set_read_timeout(struct conn *c, unsigned int ms)
{
	struct config	*cf = c->c_listener->ln_conf;
	struct timeval	 rtv = ms_timeval(ms), wtv;

	wtv = ms_timeval(cf->cf_client_timeout);
	bufferevent_set_timeouts(c->c_bev, &rtv, &wtv);
}

/*
 * Check a chunked body's framing as it arrives (RFC 9112 section 7.1):
 * libevent 2.1 accepts some malformed chunk sizes ("0x10", " 5") and
 * answers others with 413 as if the body were too large. A body found
 * malformed here is refused with 400 (server_head_bad()), or evhttp's
 * 413 becomes a 400 (conn_fix()).
 */
static void
conn_chunk_scan(struct conn *c, const unsigned char *p, size_t n)
{
	size_t	 i, take;

	for (i = 0; i < n && !c->c_chunk_bad && c->c_ck != CK_DONE; i++) {
		switch (c->c_ck) {
		case CK_SIZE:
			if (isxdigit(p[i]) && c->c_ck_digits < 15) {
				c->c_ck_left = c->c_ck_left * 16 + (uint64_t)
				    (isdigit(p[i]) ? p[i] - '0' :
				    (tolower(p[i]) - 'a' + 10));
				c->c_ck_digits++;
			} else if (c->c_ck_digits > 0 && p[i] == ';')
				c->c_ck = CK_EXT;
			else if (c->c_ck_digits > 0 && p[i] == '\r')
				c->c_ck = CK_SIZE_LF;
			else
				c->c_chunk_bad = 1;
			break;
		case CK_EXT:
			/* Allowed by RFC 9112, but libevent 2.1 refuses them. */
			c->c_chunk_bad = 1;
			break;
		case CK_SIZE_LF:
			if (p[i] != '\n')
				c->c_chunk_bad = 1;
			else
				c->c_ck = c->c_ck_left > 0 ? CK_DATA :
				    CK_TRAILER;
			break;
		case CK_DATA:
			take = n - i;
			if (take > c->c_ck_left)
				take = (size_t)c->c_ck_left;
			c->c_ck_left -= take;
			i += take - 1;
			if (c->c_ck_left == 0)
				c->c_ck = CK_DATA_CR;
			break;
		case CK_DATA_CR:
			c->c_chunk_bad = p[i] != '\r';
			c->c_ck = CK_DATA_LF;
			break;
		case CK_DATA_LF:
			c->c_chunk_bad = p[i] != '\n';
			c->c_ck = CK_SIZE;
			c->c_ck_digits = 0;
			break;
		case CK_TRAILER:
			c->c_ck = p[i] == '\r' ? CK_TRAILER_LF :
			    CK_TRAILER_LINE;
			break;
		case CK_TRAILER_LINE:
			if (p[i] == '\n')
				c->c_ck = CK_TRAILER;
			break;
		case CK_TRAILER_LF:
			if (p[i] != '\n')
				c->c_chunk_bad = 1;
			c->c_ck = CK_DONE;
			break;
		case CK_DONE:
			break;
		}
	}
}

/*
 * Look at bytes of a request head as they arrive: note a NUL or control
 * byte (evhttp would cut a header at a NUL unseen), whether a line names
 * Transfer-Encoding (its body's framing is then checked too), and find
 * the blank line that ends the head, after which evhttp reads the body.
 */
static void
conn_scan(struct conn *c, const unsigned char *p, size_t n)
{
	static const char	 te[] = "transfer-encoding:";
	struct config		*cf = c->c_listener->ln_conf;
	size_t			 i;

	for (i = 0; i < n && c->c_state == CONN_HEAD; i++) {
		if (c->c_te_match < sizeof(te) - 1) {
			if (tolower(p[i]) == te[c->c_te_match])
				c->c_te_match++;
			else
				c->c_te_match = sizeof(te);
			if (c->c_te_match == sizeof(te) - 1)
				c->c_chunked = 1;
		}
		if (p[i] == '\n') {
			c->c_te_match = 0;	/* a new line */
			if (c->c_eol > 0) {
				c->c_state = CONN_BODY;
				evtimer_del(c->c_timer);
				conn_set_read_timeout(c,
				    cf->cf_client_body_timeout);
				i++;
				break;
			}
			c->c_eol = 1;
		} else if (p[i] == '\r' && c->c_eol == 1)
			c->c_eol = 2;
		else {
			c->c_eol = 0;
			if ((p[i] < 0x20 && p[i] != '\t' && p[i] != '\r') ||
			    p[i] == 0x7f)
				c->c_head_bad = 1;
		}
	}
	c->c_head_len += i;
	if (c->c_state == CONN_BODY && c->c_chunked && i < n)
		conn_chunk_scan(c, p + i, n - i);
}

/*
 * A new head starts. Its deadline runs from now; for a connection's first
 * request it already runs from the accept (arm 0).
 */
static void
conn_head_start(struct conn *c, int arm)
{
	struct config	*cf = c->c_listener->ln_conf;

	c->c_state = CONN_HEAD;
	c->c_head_len = 0;
	c->c_eol = 0;
	c->c_head_bad = 0;
	c->c_te_match = 0;
	c->c_chunked = 0;
	c->c_ck = CK_SIZE;
	c->c_ck_left = 0;
	c->c_ck_digits = 0;
	c->c_chunk_bad = 0;
	if (arm)
		timer_add_ms(c->c_timer, cf->cf_client_header_timeout);
	conn_set_read_timeout(c, cf->cf_client_header_timeout);
}

/* Are arriving bytes still to be looked at? */
static int
conn_scanning(const struct conn *c)
{
	return c->c_state == CONN_HEAD || (c->c_state == CONN_BODY &&
	    c->c_chunked && !c->c_chunk_bad && c->c_ck != CK_DONE);
}

/* Scan from byte off of the input buffer to its end. */
static void
conn_scan_input(struct conn *c, struct evbuffer *in, size_t off)
{
	struct evbuffer_ptr	 ptr;
	struct evbuffer_iovec	 v[8];
	int			 i, nv;

	while (conn_scanning(c) && off < evbuffer_get_length(in)) {
		if (evbuffer_ptr_set(in, &ptr, off, EVBUFFER_PTR_SET) == -1)
			return;
		nv = evbuffer_peek(in, -1, &ptr, v, 8);
		if (nv > 8)
			nv = 8;
		for (i = 0; i < nv && conn_scanning(c); i++) {
			if (c->c_state == CONN_HEAD)
				conn_scan(c, v[i].iov_base, v[i].iov_len);
			else
				conn_chunk_scan(c, v[i].iov_base,
				    v[i].iov_len);
			off += v[i].iov_len;
		}
	}
}

/* The input buffer changed: bytes arrived (or evhttp took some). */
static void
conn_input(struct evbuffer *in, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct conn	*c = arg;

	if (info->n_added == 0)
		return;
	if (c->c_state == CONN_IDLE)
		conn_head_start(c, c->c_served);
	if (conn_scanning(c))
		conn_scan_input(c, in, info->orig_size - info->n_deleted);
	/* evhttp reads on from here: decide on the next turn. */
	if (c->c_chunk_bad && c->c_state == CONN_BODY && !c->c_fixed) {
		c->c_fixed = 1;
		c->c_refuse_now = 1;
		event_active(c->c_fix, EV_TIMEOUT, 0);
	}
}

/*
 * A malformed chunked body that evhttp would wait on for more (a chunk
 * size ended by a bare LF, say): answer 400 now and close, rather than
 * leave the client to client_body_timeout. Only while evhttp still
 * reads: once the request is proxy.c's, filter_request() refuses it.
 */
static void
conn_refuse_chunked(struct conn *c)
{
	struct worker	*w = c->c_listener->ln_worker;
	char		 id[REQUEST_ID_LEN + 1], buf[512];
	int		 n;

	if (c->c_state != CONN_BODY)
		return;
	request_id_new(w, id);
	n = snprintf(buf, sizeof(buf), "HTTP/1.1 400 Bad Request\r\n"
	    "Content-Type: application/json\r\nx-xdrproxy-error: bad_request"
	    "\r\nx-xdrproxy-request-id: %s\r\nContent-Length: %zu\r\n"
	    "Connection: close\r\n\r\n{\"error\":\"bad_request\","
	    "\"message\":\"malformed chunked body\",\"request_id\":\"%s\"}",
	    id, strlen("{\"error\":\"bad_request\",\"message\":\"malformed "
	    "chunked body\",\"request_id\":\"\"}") + REQUEST_ID_LEN, id);
	metrics_add(&w->w_libevent_answers, 1);
	log_warnx("request %s: connection %d: 400 bad_request: malformed "
	    "chunked body", id, c->c_fd);
	/* libevent's own answer may be queued: ours goes instead. */
	evbuffer_drain(bufferevent_get_output(c->c_bev),
	    evbuffer_get_length(bufferevent_get_output(c->c_bev)));
	/* A fresh connection's socket buffer takes it whole. */
	(void)send(c->c_fd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
	evhttp_connection_free(c->c_evcon);
}

/*
 * libevent answers some malformed requests itself, before any callback of
 * ours, with an HTML page (see README, Limits). conn_output() notices it
 * writing while no request is ours; conn_fix() runs before the socket is
 * written to and puts xdrproxy's JSON error in place of the page, with
 * the status that fits what the scanner saw. The connection closes after,
 * as libevent intends.
 */
static void
conn_fix(evutil_socket_t fd, short what, void *arg)
{
	struct conn	*c = arg;
	struct worker	*w = c->c_listener->ln_worker;
	struct evbuffer	*out = bufferevent_get_output(c->c_bev);
	const char	*code = "bad_request", *msg, *reason;
	char		 line[16], id[REQUEST_ID_LEN + 1], body[256];
	int		 status, theirs;

	if (c->c_refuse_now) {
		conn_refuse_chunked(c);
		return;
	}
	if (evbuffer_copyout(out, line, sizeof(line) - 1) < 13)
		return;
	line[sizeof(line) - 1] = '\0';
	/* Not 100 Continue, nor a 503 of ours sent through evhttp. */
	if (strncmp(line, "HTTP/1.", 7) != 0 || (theirs = atoi(line + 9)) <
	    400 || (theirs >= 500 && theirs != 501))
		return;
	/* libevent closes the connection after its own answers. */
	c->c_fixed = 1;
	status = 400;
	reason = "Bad Request";
	msg = "the request could not be parsed";
	if (c->c_head_len > c->c_listener->ln_conf->cf_max_headers) {
		status = 431;
		code = "headers_too_large";
		reason = "Request Header Fields Too Large";
		msg = "request line and headers over max_headers";
	} else if (theirs == 413 && c->c_chunk_bad)
		msg = "malformed chunked body (chunk extensions are not "
		    "supported)";
	else if (theirs == 413) {
		status = 413;
		code = "body_too_large";
		reason = "Payload Too Large";
		msg = "request body over max_body";
	} else if (theirs == 501) {
		status = 501;
		code = "method_not_implemented";
		reason = "Not Implemented";
		msg = "unknown method";
	} else if (theirs == 417) {
		status = 417;
		code = "expectation_failed";
		reason = "Expectation Failed";
		msg = "Expect other than 100-continue";
	}
	request_id_new(w, id);
	snprintf(body, sizeof(body), "{\"error\":\"%s\",\"message\":\"%s\","
	    "\"request_id\":\"%s\"}", code, msg, id);
	metrics_add(&w->w_libevent_answers, 1);
	log_warnx("request %s: connection %d: %d %s: %s (libevent answered "
	    "%d)", id, c->c_fd, status, code, msg, theirs);
	evbuffer_drain(out, evbuffer_get_length(out));
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nContent-Type: "
	    "application/json\r\nx-xdrproxy-error: %s\r\n"
	    "x-xdrproxy-request-id: %s\r\nContent-Length: %zu\r\n"
	    "Connection: close\r\n\r\n%s", status, reason, code, id,
	    strlen(body), body);
}

/* Bytes for the client: is libevent answering on its own? */
static void
conn_output(struct evbuffer *out, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct conn	*c = arg;

	if (info->n_added > 0 && info->orig_size == 0 && !c->c_fixed &&
	    (c->c_state == CONN_HEAD || c->c_state == CONN_BODY))
		event_active(c->c_fix, EV_TIMEOUT, 0);
}

/* Forget a connection: ours only, the bufferevent is evhttp's. */
static void
conn_free(struct conn *c)
{
	struct worker	*w = c->c_listener->ln_worker;

	evbuffer_remove_cb_entry(bufferevent_get_input(c->c_bev), c->c_incb);
	evbuffer_remove_cb_entry(bufferevent_get_output(c->c_bev),
	    c->c_outcb);
	if (c->c_fd >= 0 && (size_t)c->c_fd < server_nconns &&
	    server_conns[c->c_fd] == c)
		server_conns[c->c_fd] = NULL;
	TAILQ_REMOVE(&w->w_conns, c, c_entry);
	/* The last connection of a retired listener: it can go. */
	if (--c->c_listener->ln_nconns == 0 && c->c_listener->ln_retired)
		event_active(w->w_sweep, EV_TIMEOUT, 0);
	event_free(c->c_fix);
	event_free(c->c_timer);
	atomic_fetch_sub(&server_nclients, 1);
	caller_unref(c->c_caller);
	free(c);
}

/* The connection is going away (evhttp's close callback). */
static void
conn_closed(struct evhttp_connection *evcon, void *arg)
{
	struct conn	*c = arg;

	if (c->c_closecb != NULL)
		c->c_closecb(evcon, c->c_closearg);
	conn_free(c);
}

/*
 * After a half-close, has the client gone altogether? A socket that was
 * closed answers the probe conn_event() sent with a reset: SO_ERROR then
 * says so. The probe goes SERVER_PROBE_AFTER after the half-close (a quick
 * answer needs none: a health check reading the first status line sees
 * the real one), then the socket is looked at after 50 ms, less and less
 * often, up to once a second, until the request ends. From the
 * connection's timer only.
 */
static void
conn_probe_check(struct conn *c)
{
	socklen_t	 len = sizeof(int);
	int		 err = 0;

	/* Sent only to a request still waiting, before its reply starts. */
	if (c->c_probe_ms == 0) {
		if (evhttp_request_get_response_code(c->c_http) != 0 ||
		    evbuffer_get_length(bufferevent_get_output(c->c_bev)) !=
		    0 || send(c->c_fd, SERVER_PROBE, sizeof(SERVER_PROBE) - 1,
		    MSG_NOSIGNAL | MSG_DONTWAIT) != sizeof(SERVER_PROBE) - 1)
			return;
		c->c_probe_ms = 25;
	}
	if (getsockopt(c->c_fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		err = errno;
	if (err != 0) {
		log_debug("connection %d: reset by the client after a "
		    "half-close: %s", c->c_fd, strerror(err));
		/* As if the bufferevent had seen it: evhttp ends it all. */
		c->c_ecb(c->c_bev, BEV_EVENT_READING | BEV_EVENT_ERROR,
		    c->c_cbarg);
		return;
	}
	if (c->c_probe_ms < 1000)
		c->c_probe_ms *= 2;
	timer_add_ms(c->c_timer, c->c_probe_ms);
}

/*
 * The connection's timer. First, on the turn after the accept: evhttp
 * has made its connection object, so take over its close callback, or
 * close at once past max_clients. After that: the head's deadline
 * (client_header_timeout) passed.
 */
static void
conn_timer(evutil_socket_t fd, short what, void *arg)
{
	struct conn	*c = arg;
	struct worker	*w = c->c_listener->ln_worker;
	struct bufferevent *bev;
	bufferevent_data_cb rcb;
	void		*cbarg = NULL;
	uint64_t	 refused;

	if (c->c_state == CONN_BUSY) {
		conn_probe_check(c);
		return;
	}
	if (c->c_state == CONN_CLOSING) {
		evhttp_connection_free(c->c_evcon);
		return;
	}
	if (c->c_state != CONN_NEW) {
		metrics_add(&w->w_header_timeouts, 1);
		log_debug("connection %d: request head not complete after "
		    "%u ms: closed", c->c_fd, c->c_listener->ln_conf->cf_client_header_timeout);
		evhttp_connection_free(c->c_evcon);
		return;
	}
	/* Our reference kept the bufferevent; is it still evhttp's? */
	bufferevent_getcb(c->c_bev, &rcb, NULL, NULL, &cbarg);
	c->c_fd = bufferevent_getfd(c->c_bev);
	if (cbarg == NULL || c->c_fd < 0 || (size_t)c->c_fd >= server_nconns) {
		bev = c->c_bev;
		conn_free(c);
		bufferevent_decref(bev);
		return;
	}
	c->c_evcon = cbarg;
	server_conns[c->c_fd] = c;
	evhttp_connection_set_closecb(c->c_evcon, conn_closed, c);
	bufferevent_decref(c->c_bev);
	if (c->c_refuse) {
		metrics_add(&w->w_clients_refused, 1);
		refused = metrics_get(&w->w_clients_refused);
		if (refused == 1 || refused % 1000 == 0)
			log_warnx("max_clients (%ld) reached: new connections "
			    "are closed (%llu so far in worker %d)",
			    c->c_listener->ln_conf->cf_max_clients,
			    (unsigned long long)refused, w->w_index);
		evhttp_connection_free(c->c_evcon);
		return;
	}
	/* Accepted as its listener retired (a reload): not served. */
	if (c->c_listener->ln_retired) {
		evhttp_connection_free(c->c_evcon);
		return;
	}
	/* Who called: once per served connection, never per request. */
	c->c_caller = caller_new(c->c_fd);
	/* The first head's deadline runs from the accept. */
	c->c_state = CONN_IDLE;
	if (evbuffer_get_length(bufferevent_get_input(c->c_bev)) > 0) {
		conn_head_start(c, 1);
		conn_scan_input(c, bufferevent_get_input(c->c_bev), 0);
	} else {
		timer_add_ms(c->c_timer, c->c_listener->ln_conf->cf_client_header_timeout);
		conn_set_read_timeout(c, c->c_listener->ln_conf->cf_client_header_timeout);
	}
}

/*
 * evhttp's bufferevent callback, at each accept: our bufferevent, with a
 * struct conn. evhttp has no connection object yet; conn_timer() finishes
 * the setup on the next turn, holding a reference until then.
 */
static struct bufferevent *
conn_new(struct event_base *base, void *arg)
{
	struct listener		*ln = arg;
	struct bufferevent	*bev;
	struct conn		*c;

	if ((bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE)) ==
	    NULL)
		return NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->c_timer = evtimer_new(base, conn_timer, c)) == NULL ||
	    (c->c_fix = event_new(base, -1, 0, conn_fix, c)) == NULL ||
	    (c->c_incb = evbuffer_add_cb(bufferevent_get_input(bev),
	    conn_input, c)) == NULL ||
	    (c->c_outcb = evbuffer_add_cb(bufferevent_get_output(bev),
	    conn_output, c)) == NULL) {
		if (c != NULL && c->c_incb != NULL)
			evbuffer_remove_cb_entry(bufferevent_get_input(bev),
			    c->c_incb);
		if (c != NULL && c->c_fix != NULL)
			event_free(c->c_fix);
		if (c != NULL && c->c_timer != NULL)
			event_free(c->c_timer);
		free(c);
		/* evhttp goes on with it; only our bookkeeping is missing. */
		return bev;
	}
	c->c_listener = ln;
	c->c_bev = bev;
	ln->ln_nconns++;
	TAILQ_INSERT_TAIL(&ln->ln_worker->w_conns, c, c_entry);
	c->c_fd = -1;
	c->c_state = CONN_NEW;
	/* Decided in the order of accepts: the newest are the ones refused. */
	c->c_refuse = atomic_fetch_add(&server_nclients, 1) + 1 >
	    ln->ln_conf->cf_max_clients;
	bufferevent_incref(bev);
	event_active(c->c_timer, EV_TIMEOUT, 0);
	return bev;
}

/* The request's own close callback (NULL: none), called before ours. */
void
server_watch(struct evhttp_connection *evcon,
    void (*cb)(struct evhttp_connection *, void *), void *arg)
{
	struct conn	*c = server_conn(evcon);

	if (c == NULL) {
		evhttp_connection_set_closecb(evcon, cb, arg);
		return;
	}
	c->c_closecb = cb;
	c->c_closearg = arg;
}

/* proxy.c has the whole request: no more head deadline. */
void
server_request_taken(struct evhttp_request *http)
{
	struct conn	*c = server_conn(evhttp_request_get_connection(http));

	if (c == NULL)
		return;
	c->c_state = CONN_BUSY;
	c->c_http = http;
	evtimer_del(c->c_timer);
}

/* The reply was written: wait for the next request, keepalive_timeout. */
void
server_request_done(struct evhttp_connection *evcon)
{
	struct conn	*c = server_conn(evcon);
	struct evbuffer	*in;

	if (c == NULL)
		return;
	c->c_closecb = NULL;
	c->c_http = NULL;
	c->c_served = 1;
	evtimer_del(c->c_timer);
	/* evhttp keeps a connection after CONNECT, whatever it is told. */
	if (c->c_close_after) {
		c->c_state = CONN_CLOSING;
		event_active(c->c_timer, EV_TIMEOUT, 0);
		return;
	}
	c->c_state = CONN_IDLE;
	in = bufferevent_get_input(c->c_bev);
	/* Pipelined bytes already read belong to the next request. */
	if (evbuffer_get_length(in) > 0 && !c->c_half_closed) {
		conn_head_start(c, 1);
		conn_scan_input(c, in, 0);
	} else
		conn_set_read_timeout(c,
		    c->c_listener->ln_conf->cf_keepalive_timeout);
}

/* Close the connection once the reply now being sent is written. */
void
server_close_after(struct evhttp_connection *evcon)
{
	struct conn	*c = server_conn(evcon);

	if (c != NULL)
		c->c_close_after = 1;
}

/* A reference to the connection's caller, as resolved at its setup. */
struct caller *
server_caller(struct evhttp_connection *evcon)
{
	struct conn	*c = evcon != NULL ? server_conn(evcon) : NULL;

	if (c == NULL || c->c_caller == NULL)
		return &caller_untracked;
	return caller_ref(c->c_caller);
}

int
server_head_bad(struct evhttp_connection *evcon)
{
	struct conn	*c = server_conn(evcon);

	/* Untracked (out of memory at the accept): unchecked, refused. */
	if (c == NULL)
		return 3;
	return c->c_head_bad ? 1 : c->c_chunk_bad ? 2 : 0;
}

int
server_half_closed(struct evhttp_connection *evcon)
{
	struct conn	*c = server_conn(evcon);

	return c != NULL && c->c_half_closed;
}

/*
 * Events on a connection whose request proxy.c holds. End of input is a
 * half-close (shutdown(SHUT_WR), nc -q, HTTP/1.0 tools): the request is
 * answered and the connection closed after, as nginx and HAProxy do. A
 * client that closed altogether is noticed when the answer is written.
 * Reading stops for good: one byte the watermark holds in the input
 * keeps evhttp from reading again (it re-enables reading as it writes).
 * Without it, the next end of input would reach evhttp as an abort.
 */
static void
conn_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn		*c = arg;
	struct evkeyvalq	*in;

	if (c->c_state != CONN_BUSY || c->c_half_closed ||
	    what != (BEV_EVENT_READING | BEV_EVENT_EOF)) {
		if (c->c_ecb != NULL)
			c->c_ecb(bev, what, c->c_cbarg);
		return;
	}
	c->c_half_closed = 1;
	/* The input's end is the bufferevent's to add to: prepend. */
	bufferevent_setwatermark(bev, EV_READ, 0, 1);
	if (evbuffer_prepend(bufferevent_get_input(bev), "", 1) == -1) {
		c->c_ecb(bev, what, c->c_cbarg);
		return;
	}
	/* evhttp closes after a request that asked it to. */
	in = evhttp_request_get_input_headers(c->c_http);
	evhttp_remove_header(in, "Connection");
	evhttp_add_header(in, "Connection", "close");
	/*
	 * A client that closed altogether looks the same until something is
	 * sent to it: its kernel then answers with a reset. HTTP/1.1 clients
	 * must accept an interim response at any time (RFC 9110 section
	 * 15.2), so one probes without harm while the tenant works; HTTP/1.0
	 * clients get none, and are noticed when the answer is written.
	 * conn_probe_check() looks for the reset from a timer: it may end
	 * the connection, which cannot be done from here.
	 */
	if (c->c_http->major == 1 && c->c_http->minor >= 1) {
		c->c_probe_ms = 0;	/* not sent yet */
		timer_add_ms(c->c_timer, SERVER_PROBE_AFTER);
	}
}

/* The bufferevent has one argument for its callbacks: evhttp's is kept. */
static void
conn_write(struct bufferevent *bev, void *arg)
{
	struct conn	*c = arg;

	if (c->c_wcb != NULL)
		c->c_wcb(bev, c->c_cbarg);
}

/*
 * Route the connection's events through conn_event(). evhttp sets its own
 * callbacks whenever it writes: call again after each write.
 */
void
server_watch_eof(struct evhttp_connection *evcon)
{
	struct conn		*c = server_conn(evcon);
	bufferevent_data_cb	 rcb, wcb;
	bufferevent_event_cb	 ecb;
	void			*cbarg;

	if (c == NULL)
		return;
	bufferevent_getcb(c->c_bev, &rcb, &wcb, &ecb, &cbarg);
	/* While evhttp writes, it reads for close detection only. */
	if (ecb == conn_event || rcb != NULL)
		return;
	c->c_wcb = wcb;
	c->c_ecb = ecb;
	c->c_cbarg = cbarg;
	bufferevent_setcb(c->c_bev, NULL, wcb != NULL ? conn_write : NULL,
	    conn_event, c);
}

/* The limits of cf on a listener's evhttp, new or handed over. */
static void
server_http_setup(struct evhttp *http, const struct config *cf)
{
	struct timeval	 tv;

	evhttp_set_max_headers_size(http, (ev_ssize_t)cf->cf_max_headers);
	evhttp_set_max_body_size(http, (ev_ssize_t)cf->cf_max_body);
	tv = ms_timeval(cf->cf_client_timeout);
	evhttp_set_timeout_tv(http, &tv);
}

static struct evhttp *
server_http_new(struct worker *w, struct listener *ln)
{
	struct evhttp	*http;

	if ((http = evhttp_new(w->w_base)) == NULL)
		return NULL;
	server_http_setup(http, ln->ln_conf);
	evhttp_set_default_content_type(http, NULL);
	/* Let every method through: the handler answers 405 itself. */
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	    EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
	    EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT |
	    EVHTTP_REQ_PATCH);
	evhttp_set_gencb(http, proxy_handle, ln);
	evhttp_set_bevcb(http, conn_new, ln);
	return http;
}

/* Point a listener at tenant tn of generation cf, on listen line la. */
static int
server_assign(struct listener *ln, struct config *cf, struct tenant *tn,
    struct listen_addr *la)
{
	const char	**names = ln->ln_names;
	size_t		  nnames = ln->ln_nnames;

	ln->ln_conf = cf;
	ln->ln_tenant = tn;
	ln->ln_addr = la;
	if (server_names(ln) == -1) {
		/* Out of memory: the old names stay (the caller retires it). */
		ln->ln_names = names;
		ln->ln_nnames = nnames;
		return -1;
	}
	free(names);
	return 0;
}

/* A listener for line la of tenant tn on socket fd (now evhttp's). */
static int
server_listen(struct worker *w, struct config *cf, struct tenant *tn,
    struct listen_addr *la, int fd, char **cause)
{
	struct listener		*ln;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen = sizeof(ss);
	char			 host[64];
	int			 port = 0;

	if ((ln = calloc(1, sizeof(*ln))) == NULL) {
		close(fd);
		goto nomem;
	}
	ln->ln_worker = w;
	ln->ln_activated = la->la_activated;
	if (!la->la_unix) {
		if (getsockname(fd, (struct sockaddr *)&ss, &sslen) == -1 ||
		    server_numeric_host((struct sockaddr *)&ss, sslen, host,
		    sizeof(host), &port) == -1) {
			if (asprintf(cause, "%s: getsockname: %s", la->la_text,
			    strerror(errno)) == -1)
				*cause = NULL;
			close(fd);
			goto fail;
		}
		snprintf(ln->ln_bound_name, sizeof(ln->ln_bound_name), "%s",
		    host);
		ln->ln_wildcard = strcmp(host, "0.0.0.0") == 0 ||
		    strcmp(host, "::") == 0;
	}
	if (server_assign(ln, cf, tn, la) == -1 ||
	    (ln->ln_http = server_http_new(w, ln)) == NULL) {
		close(fd);
		goto nomem;
	}
	if ((ln->ln_bound = evhttp_accept_socket_with_handle(ln->ln_http,
	    fd)) == NULL) {
		close(fd);
		goto nomem;
	}
	/* Only a whole listener is on the list (a reload walks it). */
	TAILQ_INSERT_TAIL(&w->w_listeners, ln, ln_entry);
	if (w->w_index > 0)
		return 0;
	if (la->la_unix)
		log_info("tenant %s: listening on unix:%s%s", tn->tn_name,
		    la->la_path, la->la_activated ? " (from systemd)" : "");
	else if (ss.ss_family == AF_INET6)
		log_info("tenant %s: listening on [%s]:%d%s", tn->tn_name,
		    host, port, la->la_activated ? " (from systemd)" : "");
	else
		log_info("tenant %s: listening on %s:%d%s", tn->tn_name, host,
		    port, la->la_activated ? " (from systemd)" : "");
	if (!la->la_unix && !server_is_loopback(&ss))
		log_warnx("tenant %s: %s is reachable from other hosts: "
		    "anyone who can connect to it can call the tenant with "
		    "this key", tn->tn_name, la->la_text);
	return 0;
nomem:
	if (asprintf(cause, "%s: out of memory", la->la_text) == -1)
		*cause = NULL;
fail:
	if (ln != NULL) {
		if (ln->ln_http != NULL)
			evhttp_free(ln->ln_http);
		free(ln->ln_names);
		free(ln);
	}
	return -1;
}

/* Listeners for the sockets server_open() opened for this worker. */
static int
server_adopt(struct worker *w, struct config *cf, char **cause)
{
	struct tenant		*tn;
	struct listen_addr	*la;
	char			*why = NULL;
	int			 fd, failed = 0;

	*cause = NULL;
	TAILQ_FOREACH(tn, &cf->cf_tenants, tn_entry) {
		TAILQ_FOREACH(la, &tn->tn_listens, la_entry) {
			if (la->la_fds == NULL || w->w_index >= la->la_nfds ||
			    (fd = la->la_fds[w->w_index]) == -1)
				continue;
			la->la_fds[w->w_index] = -1;
			/* On failure, go on: no socket is left unserved. */
			if (server_listen(w, cf, tn, la, fd, &why) == -1) {
				if (*cause == NULL && asprintf(cause,
				    "%s:%d: listen %s", cf->cf_file,
				    la->la_line, why != NULL ? why :
				    "out of memory") == -1)
					*cause = NULL;
				free(why);
				why = NULL;
				failed = 1;
			}
		}
	}
	return failed ? -1 : 0;
}

/* Open every tenant's listeners on w's event base (main thread, at start). */
int
server_start(struct worker *w, struct config *cf, char **cause)
{
	return server_adopt(w, cf, cause);
}

/* Stop a listener from accepting; its connections carry on. */
static void
server_unlisten(struct listener *ln)
{
	if (ln->ln_bound == NULL)
		return;
	evhttp_del_accept_socket(ln->ln_http, ln->ln_bound);
	ln->ln_bound = NULL;
	if (ln->ln_addr->la_unix && !ln->ln_activated)
		unlink(ln->ln_addr->la_path);
}

/*
 * A listener the new configuration does not have: it accepts no more, its
 * idle connections close now and busy ones once their reply is out, and
 * server_sweep() frees it when the last is gone. Until then it keeps its
 * generation (worker_release()), so a request it still reads is served
 * as the configuration it was accepted under says.
 */
static void
server_retire(struct worker *w, struct listener *ln)
{
	struct conn	*c;

	if (w->w_index == 0)
		log_info("tenant %s: no longer listening on %s",
		    ln->ln_tenant->tn_name, ln->ln_addr->la_text);
	server_unlisten(ln);
	ln->ln_retired = 1;
	TAILQ_FOREACH(c, &w->w_conns, c_entry) {
		if (c->c_listener != ln)
			continue;
		c->c_close_after = 1;
		if (c->c_state == CONN_IDLE) {
			c->c_state = CONN_CLOSING;
			event_active(c->c_timer, EV_TIMEOUT, 0);
		}
	}
	if (ln->ln_nconns == 0)
		event_active(w->w_sweep, EV_TIMEOUT, 0);
}

/*
 * In the worker's thread: put generation cf in force. Listeners for a
 * socket cf also has are handed over (same socket, same evhttp, no accept
 * gap) and serve cf's tenant from the next request on; the others retire;
 * the sockets server_open() opened for cf get listeners.
 */
int
server_reconfigure(struct worker *w, struct config *cf, char **cause)
{
	struct listener		*ln;
	struct listen_addr	*la;
	struct tenant		*tn;

	*cause = NULL;
	TAILQ_FOREACH(ln, &w->w_listeners, ln_entry) {
		if (ln->ln_retired)
			continue;
		if ((la = server_find(cf, ln->ln_addr, &tn)) == NULL) {
			server_retire(w, ln);
			continue;
		}
		if (server_assign(ln, cf, tn, la) == -1) {
			*cause = strdup("out of memory");
			server_retire(w, ln);
			continue;
		}
		server_http_setup(ln->ln_http, cf);
	}
	if (*cause != NULL) {
		/* The new sockets are taken all the same, never left unserved. */
		free(*cause);
		*cause = NULL;
		(void)server_adopt(w, cf, cause);
		free(*cause);
		*cause = strdup("out of memory");
		return -1;
	}
	return server_adopt(w, cf, cause);
}

static void
server_listener_free(struct worker *w, struct listener *ln)
{
	TAILQ_REMOVE(&w->w_listeners, ln, ln_entry);
	if (ln->ln_http != NULL)
		evhttp_free(ln->ln_http);
	free(ln->ln_names);
	if (ln->ln_conf != NULL)
		worker_release(w, ln->ln_conf);
	free(ln);
}

/* The worker's event: free retired listeners with no connection left. */
void
server_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct worker	*w = arg;
	struct listener	*ln, *next;

	for (ln = TAILQ_FIRST(&w->w_listeners); ln != NULL; ln = next) {
		next = TAILQ_NEXT(ln, ln_entry);
		if (ln->ln_retired && ln->ln_nconns == 0)
			server_listener_free(w, ln);
	}
}

/* Close the listening sockets; open client connections carry on. */
void
server_stop_accepting(struct worker *w)
{
	struct listener	*ln;

	TAILQ_FOREACH(ln, &w->w_listeners, ln_entry)
		server_unlisten(ln);
}

/* Close everything, client connections included; no request is live. */
void
server_free(struct worker *w)
{
	struct listener		*ln;
	struct conn		*c;
	struct bufferevent	*bev;

	server_stop_accepting(w);
	/* Each connection evhttp frees comes to conn_closed(). */
	TAILQ_FOREACH(ln, &w->w_listeners, ln_entry) {
		if (ln->ln_http != NULL)
			evhttp_free(ln->ln_http);
		ln->ln_http = NULL;
	}
	/* Those accepted on the loop's last turn were never set up. */
	while ((c = TAILQ_FIRST(&w->w_conns)) != NULL) {
		bev = c->c_bev;
		conn_free(c);
		bufferevent_decref(bev);
	}
	while ((ln = TAILQ_FIRST(&w->w_listeners)) != NULL)
		server_listener_free(w, ln);
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
