/*
 * sink.c: the syslog audit sinks (audit_syslog = unix:PATH | udp:HOST:PORT
 * | tcp:HOST:PORT). Every audit record and checkpoint becomes an RFC 5424
 * message. sink_send() never blocks: it copies the message into a bounded
 * queue per sink and wakes the sink thread, which alone owns the sockets
 * (its own event_base, non-blocking I/O, TCP reconnects with backoff).
 * What a full queue refuses is dropped, counted and logged once per outage.
 */
#include "config.h"

#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "xdrproxy.h"

/* At exit, how long queued messages may take to go out. */
#define SINK_FLUSH_MS	2000

#define SINK_BACKOFF_MIN_MS	500
#define SINK_BACKOFF_MAX_MS	30000
#define SINK_UDP_MAX		65507	/* an IPv4 datagram's payload */

static const char *const sink_facilities[] = {
	"kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news",
	"uucp", "cron", "authpriv", "ftp", "ntp", "audit", "alert", "clock",
	"local0", "local1", "local2", "local3", "local4", "local5", "local6",
	"local7", NULL
};

struct sink_msg {
	TAILQ_ENTRY(sink_msg)	 sm_entry;
	size_t			 sm_len;
	char			 sm_data[];
};
TAILQ_HEAD(sink_msgs, sink_msg);

struct sink {
	struct sink_addr	 s_addr;
	/* Under sink_mtx: the queue, the counters, s_up. */
	struct sink_msgs	 s_queue;
	size_t			 s_n;
	size_t			 s_max;
	uint64_t		 s_dropped;	/* since the start */
	uint64_t		 s_outage;	/* since the last recovery */
	int			 s_up;
	int			 s_dead;	/* removed by a reload */
	/* The sink thread's alone. */
	int			 s_fd;
	int			 s_stream;	/* octet-counted framing */
	int			 s_connecting;
	int			 s_started;
	int			 s_logged_down;
	int			 s_logged_drop;
	unsigned int		 s_backoff_ms;
	size_t			 s_off;		/* of prefix + head, sent */
	char			 s_prefix[24];
	size_t			 s_prefix_len;
	struct event		*s_ev;		/* I/O */
	struct event		*s_timer;	/* reconnect */
};

static pthread_mutex_t	 sink_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct sink	**sink_v;		/* under sink_mtx */
static size_t		 sink_n;
static struct sink	**sink_graveyard;	/* to free, by the thread */
static size_t		 sink_ngrave;
static int		 sink_facility = 10;	/* authpriv */
static int		 sink_woken;
static int		 sink_stopping;
static struct event_base *sink_base;
static struct event	*sink_wake_ev;
static int		 sink_wake[2] = { -1, -1 };
static pthread_t	 sink_thread;
static int		 sink_running;
static char		 sink_hostname[256] = "-";

/* A facility's code for its name, -1 if none. */
int
sink_facility_code(const char *name)
{
	int	 i;

	for (i = 0; sink_facilities[i] != NULL; i++)
		if (strcmp(sink_facilities[i], name) == 0)
			return i;
	return -1;
}

static int
sink_valid_host(const char *s)
{
	size_t	 i, len = strlen(s);

	if (len == 0 || len > 253 || s[0] == '-' || s[0] == '.')
		return 0;
	for (i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '.' &&
		    s[i] != '-')
			return 0;
	return 1;
}

/*
 * Parse an audit_syslog value into sa; -1 with a static *why. Pure: names
 * are resolved when the sink connects.
 */
int
sink_parse(const char *spec, struct sink_addr *sa, const char **why)
{
	const char	*rest, *colon;
	struct in6_addr	 in6;
	size_t		 hlen, i;
	char		*end;
	long		 port;

	memset(sa, 0, sizeof(*sa));
	if (strlen(spec) >= sizeof(sa->sa_spec)) {
		*why = "too long";
		return -1;
	}
	snprintf(sa->sa_spec, sizeof(sa->sa_spec), "%s", spec);
	if (strncmp(spec, "unix:", 5) == 0) {
		sa->sa_kind = SINK_UNIX;
		rest = spec + 5;
		if (rest[0] != '/') {
			*why = "unix: needs an absolute path (unix:/dev/log)";
			return -1;
		}
		if (strlen(rest) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
			*why = "unix socket path too long";
			return -1;
		}
		for (i = 0; rest[i] != '\0'; i++) {
			if ((unsigned char)rest[i] <= 0x20 ||
			    (unsigned char)rest[i] >= 0x7f || rest[i] == '"' ||
			    rest[i] == '\\') {
				*why = "bad character in the unix socket path";
				return -1;
			}
		}
		snprintf(sa->sa_host, sizeof(sa->sa_host), "%s", rest);
		return 0;
	}
	if (strncmp(spec, "udp:", 4) == 0)
		sa->sa_kind = SINK_UDP;
	else if (strncmp(spec, "tcp:", 4) == 0)
		sa->sa_kind = SINK_TCP;
	else {
		*why = "expected unix:/PATH, udp:HOST:PORT or tcp:HOST:PORT";
		return -1;
	}
	rest = spec + 4;
	if (rest[0] == '[') {
		if ((colon = strchr(rest, ']')) == NULL || colon[1] != ':') {
			*why = "expected [IPv6]:PORT";
			return -1;
		}
		hlen = (size_t)(colon - rest - 1);
		if (hlen == 0 || hlen >= sizeof(sa->sa_host)) {
			*why = "bad IPv6 address";
			return -1;
		}
		memcpy(sa->sa_host, rest + 1, hlen);
		sa->sa_host[hlen] = '\0';
		if (inet_pton(AF_INET6, sa->sa_host, &in6) != 1) {
			*why = "bad IPv6 address";
			return -1;
		}
		colon++;
	} else {
		if ((colon = strrchr(rest, ':')) == NULL) {
			*why = "expected HOST:PORT";
			return -1;
		}
		hlen = (size_t)(colon - rest);
		if (hlen == 0 || hlen >= sizeof(sa->sa_host)) {
			*why = "bad host name";
			return -1;
		}
		memcpy(sa->sa_host, rest, hlen);
		sa->sa_host[hlen] = '\0';
		if (strchr(sa->sa_host, ':') != NULL) {
			*why = "an IPv6 address goes in brackets: [::1]:514";
			return -1;
		}
		if (!sink_valid_host(sa->sa_host)) {
			*why = "bad host name";
			return -1;
		}
	}
	/* colon points at the ':' before the port. */
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (!isdigit((unsigned char)colon[1]) || *end != '\0' || errno != 0 ||
	    port < 1 || port > 65535) {
		*why = "bad port (1 to 65535)";
		return -1;
	}
	sa->sa_port = (int)port;
	return 0;
}

/*
 * The RFC 5424 header for one message, in buf: "<PRI>1 TIMESTAMP HOSTNAME
 * xdrproxy PROCID MSGID - " (the MSG follows). Returns its length, or 0 if
 * it does not fit. Pure.
 */
size_t
sink_format_header(char *buf, size_t size, int facility, uint64_t ms,
    const char *host, long pid, const char *msgid)
{
	struct tm	 tm;
	time_t		 sec = (time_t)(ms / 1000);
	int		 n;

	if (gmtime_r(&sec, &tm) == NULL)
		return 0;
	n = snprintf(buf, size, "<%d>1 %04d-%02d-%02dT%02d:%02d:%02d.%03uZ "
	    "%s xdrproxy %ld %s - ", facility * 8 + 6, tm.tm_year + 1900,
	    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	    (unsigned int)(ms % 1000), host[0] != '\0' ? host : "-", pid,
	    msgid);
	if (n < 0 || (size_t)n >= size)
		return 0;
	return (size_t)n;
}

/* RFC 5424 HOSTNAME: printable US-ASCII, at most 255; else "-". */
static void
sink_init_hostname(void)
{
	char	 h[256];
	size_t	 i;

	if (gethostname(h, sizeof(h)) == -1)
		return;
	h[sizeof(h) - 1] = '\0';
	for (i = 0; h[i] != '\0'; i++)
		if ((unsigned char)h[i] <= 0x20 || (unsigned char)h[i] >= 0x7f)
			return;
	if (i > 0)
		snprintf(sink_hostname, sizeof(sink_hostname), "%s", h);
}

int
sink_count(void)
{
	int	 n;

	pthread_mutex_lock(&sink_mtx);
	n = (int)sink_n;
	pthread_mutex_unlock(&sink_mtx);
	return n;
}

/* Under sink_mtx. */
static void
sink_kick(void)
{
	char	 c = 0;

	if (sink_woken || sink_wake[1] == -1)
		return;
	sink_woken = 1;
	(void)write(sink_wake[1], &c, 1);
}

/*
 * Queue one message (line: len bytes, no '\n') for every sink; any thread.
 * 0 if a sink that is up took it, -1 if none did (full, down or none).
 */
int
sink_send(const char *msgid, const struct iovec *iov, int iovcnt,
    int need_up)
{
	struct sink_msg	*m;
	struct sink	*s;
	struct timespec	 ts;
	char		 head[512];
	size_t		 hlen, i, len = 0, off;
	int		 k;
	int		 rc = -1;

	for (k = 0; k < iovcnt; k++)
		len += iov[k].iov_len;
	clock_gettime(CLOCK_REALTIME, &ts);
	pthread_mutex_lock(&sink_mtx);
	hlen = sink_format_header(head, sizeof(head), sink_facility,
	    (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000,
	    sink_hostname, (long)getpid(), msgid);
	/*
	 * The only sink of record (audit_log = off): queue nothing unless a
	 * sink that is up takes it, or a record refused here (its seq not
	 * used) would still reach a receiver later.
	 */
	if (need_up) {
		for (i = 0; i < sink_n; i++)
			if (sink_v[i]->s_up && sink_v[i]->s_n < sink_v[i]->s_max)
				break;
		if (i == sink_n) {
			pthread_mutex_unlock(&sink_mtx);
			return -1;
		}
	}
	for (i = 0; i < sink_n; i++) {
		s = sink_v[i];
		if (s->s_n >= s->s_max || hlen == 0 ||
		    (m = malloc(sizeof(*m) + hlen + len)) == NULL) {
			s->s_dropped++;
			s->s_outage++;
			continue;
		}
		memcpy(m->sm_data, head, hlen);
		for (k = 0, off = hlen; k < iovcnt; off += iov[k].iov_len, k++)
			memcpy(m->sm_data + off, iov[k].iov_base,
			    iov[k].iov_len);
		m->sm_len = hlen + len;
		TAILQ_INSERT_TAIL(&s->s_queue, m, sm_entry);
		s->s_n++;
		if (s->s_up)
			rc = 0;
	}
	if (sink_n > 0)
		sink_kick();
	pthread_mutex_unlock(&sink_mtx);
	return rc;
}

/* One sink's numbers for /metrics: -1 past the last one. */
int
sink_stat(size_t i, struct sink_stat *st)
{
	int	 rc = -1;

	pthread_mutex_lock(&sink_mtx);
	if (i < sink_n) {
		snprintf(st->ss_spec, sizeof(st->ss_spec), "%s",
		    sink_v[i]->s_addr.sa_spec);
		st->ss_dropped = sink_v[i]->s_dropped;
		st->ss_queued = sink_v[i]->s_n;
		st->ss_up = sink_v[i]->s_up;
		rc = 0;
	}
	pthread_mutex_unlock(&sink_mtx);
	return rc;
}

static void	sink_connect(struct sink *);
static void	sink_flush(struct sink *);

static void
sink_set_up(struct sink *s, int up)
{
	pthread_mutex_lock(&sink_mtx);
	s->s_up = up;
	pthread_mutex_unlock(&sink_mtx);
}

static void
sink_close(struct sink *s)
{
	if (s->s_ev != NULL)
		event_free(s->s_ev);
	s->s_ev = NULL;
	if (s->s_fd != -1)
		close(s->s_fd);
	s->s_fd = -1;
	s->s_connecting = 0;
	s->s_off = 0;
}

/* Lost or could not connect: try again later; the queue stays. */
static void
sink_down(struct sink *s, const char *what, int e)
{
	struct timeval	 tv;

	sink_close(s);
	sink_set_up(s, 0);
	if (!s->s_logged_down) {
		log_warnx("audit_syslog %s: %s: %s; retrying", s->s_addr.sa_spec,
		    what, strerror(e));
		s->s_logged_down = 1;
	}
	tv.tv_sec = s->s_backoff_ms / 1000;
	tv.tv_usec = (s->s_backoff_ms % 1000) * 1000;
	evtimer_add(s->s_timer, &tv);
	s->s_backoff_ms *= 2;
	if (s->s_backoff_ms > SINK_BACKOFF_MAX_MS)
		s->s_backoff_ms = SINK_BACKOFF_MAX_MS;
}

static void
sink_connected(struct sink *s)
{
	s->s_connecting = 0;
	s->s_backoff_ms = SINK_BACKOFF_MIN_MS;
	sink_set_up(s, 1);
	if (s->s_logged_down) {
		log_info("audit_syslog %s: connected", s->s_addr.sa_spec);
		s->s_logged_down = 0;
	}
}

static void
sink_io(evutil_socket_t fd, short what, void *arg)
{
	struct sink	*s = arg;
	char		 buf[512];
	socklen_t	 sl = sizeof(int);
	ssize_t		 n;
	int		 e = 0;

	if (s->s_connecting) {
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &sl) == -1)
			e = errno;
		if (e != 0) {
			sink_down(s, "connect", e);
			return;
		}
		sink_connected(s);
	}
	if ((what & EV_READ) && s->s_stream) {
		/* A syslog server says nothing: data or EOF means it left. */
		n = read(fd, buf, sizeof(buf));
		if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR)) {
			sink_down(s, "connection lost", n == 0 ? EPIPE : errno);
			return;
		}
	}
	sink_flush(s);
}

/* (Re)arm the I/O event: read for EOF, write while output is pending. */
static void
sink_arm(struct sink *s, int want_write)
{
	short	 what = EV_PERSIST;

	if (s->s_stream)
		what |= EV_READ;
	if (want_write)
		what |= EV_WRITE;
	if (s->s_ev != NULL)
		event_free(s->s_ev);
	s->s_ev = NULL;
	if (what == EV_PERSIST)
		return;
	if ((s->s_ev = event_new(sink_base, s->s_fd, what, sink_io, s)) ==
	    NULL || event_add(s->s_ev, NULL) == -1)
		log_warnx("audit_syslog %s: out of memory", s->s_addr.sa_spec);
}

/* Send what is queued until the socket would block. Sink thread. */
static void
sink_flush(struct sink *s)
{
	struct sink_msg	*m;
	struct iovec	 iov[2];
	ssize_t		 n;
	size_t		 total, done;
	int		 e;

	if (s->s_fd == -1 || s->s_connecting)
		return;
	for (;;) {
		pthread_mutex_lock(&sink_mtx);
		m = TAILQ_FIRST(&s->s_queue);
		pthread_mutex_unlock(&sink_mtx);
		if (m == NULL)
			break;
		/* Only this thread removes from the queue: m stays. */
		if (!s->s_stream) {
			if (s->s_addr.sa_kind == SINK_UDP &&
			    m->sm_len > SINK_UDP_MAX)
				n = -1, errno = EMSGSIZE;
			else
				n = send(s->s_fd, m->sm_data, m->sm_len,
				    MSG_DONTWAIT | MSG_NOSIGNAL);
			done = 1;
		} else {
			if (s->s_off == 0)
				s->s_prefix_len = (size_t)snprintf(s->s_prefix,
				    sizeof(s->s_prefix), "%zu ", m->sm_len);
			total = s->s_prefix_len + m->sm_len;
			if (s->s_off < s->s_prefix_len) {
				iov[0].iov_base = s->s_prefix + s->s_off;
				iov[0].iov_len = s->s_prefix_len - s->s_off;
				iov[1].iov_base = m->sm_data;
				iov[1].iov_len = m->sm_len;
			} else {
				iov[0].iov_base = m->sm_data + (s->s_off -
				    s->s_prefix_len);
				iov[0].iov_len = total - s->s_off;
				iov[1].iov_base = NULL;
				iov[1].iov_len = 0;
			}
			n = writev(s->s_fd, iov, iov[1].iov_len > 0 ? 2 : 1);
			if (n > 0)
				s->s_off += (size_t)n;
			done = n > 0 && s->s_off == total;
		}
		if (n == -1) {
			e = errno;
			if (e == EINTR)
				continue;
			if (e == EAGAIN || e == EWOULDBLOCK) {
				sink_arm(s, 1);
				return;
			}
			if (e != EMSGSIZE) {
				sink_down(s, "send", e);
				return;
			}
			/* Too big for a datagram: dropped, counted. */
			pthread_mutex_lock(&sink_mtx);
			s->s_dropped++;
			s->s_outage++;
			pthread_mutex_unlock(&sink_mtx);
			done = 1;
		}
		if (!done)
			continue;
		s->s_off = 0;
		pthread_mutex_lock(&sink_mtx);
		TAILQ_REMOVE(&s->s_queue, m, sm_entry);
		s->s_n--;
		pthread_mutex_unlock(&sink_mtx);
		free(m);
	}
	sink_arm(s, 0);
}

static int
sink_socket(int family, int type)
{
	return socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}

/* Open and connect s's socket; on failure, retry after the backoff. */
static void
sink_connect(struct sink *s)
{
	struct sockaddr_un	 sun;
	struct addrinfo		 hints, *res = NULL;
	char			 port[8];
	int			 e, rc;

	sink_close(s);
	if (s->s_addr.sa_kind == SINK_UNIX) {
		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		/* Length checked by sink_parse(). */
		memcpy(sun.sun_path, s->s_addr.sa_host,
		    strlen(s->s_addr.sa_host) + 1);
		s->s_stream = 0;
		if ((s->s_fd = sink_socket(AF_UNIX, SOCK_DGRAM)) == -1)
			goto fail;
		rc = connect(s->s_fd, (struct sockaddr *)&sun, sizeof(sun));
		if (rc == -1 && errno == EPROTOTYPE) {
			/* A stream socket at the path (some syslog daemons). */
			close(s->s_fd);
			s->s_stream = 1;
			if ((s->s_fd = sink_socket(AF_UNIX, SOCK_STREAM)) == -1)
				goto fail;
			rc = connect(s->s_fd, (struct sockaddr *)&sun,
			    sizeof(sun));
		}
	} else {
		memset(&hints, 0, sizeof(hints));
		hints.ai_family = AF_UNSPEC;
		s->s_stream = s->s_addr.sa_kind == SINK_TCP;
		hints.ai_socktype = s->s_stream ? SOCK_STREAM : SOCK_DGRAM;
		snprintf(port, sizeof(port), "%d", s->s_addr.sa_port);
		/* In the sink thread: a slow resolver delays only the sinks. */
		if ((e = getaddrinfo(s->s_addr.sa_host, port, &hints, &res)) !=
		    0) {
			if (!s->s_logged_down)
				log_warnx("audit_syslog %s: %s",
				    s->s_addr.sa_spec, gai_strerror(e));
			errno = EHOSTUNREACH;
			goto fail;
		}
		if ((s->s_fd = sink_socket(res->ai_family, res->ai_socktype)) ==
		    -1) {
			freeaddrinfo(res);
			goto fail;
		}
		rc = connect(s->s_fd, res->ai_addr, res->ai_addrlen);
		freeaddrinfo(res);
	}
	if (rc == -1 && errno == EINPROGRESS) {
		s->s_connecting = 1;
		sink_arm(s, 1);
		return;
	}
	if (rc == -1)
		goto fail;
	sink_connected(s);
	sink_flush(s);
	return;
fail:
	sink_down(s, "connect", errno);
}

static void
sink_retry(evutil_socket_t fd, short what, void *arg)
{
	sink_connect(arg);
}

static void
sink_free(struct sink *s)
{
	struct sink_msg	*m;

	sink_close(s);
	if (s->s_timer != NULL)
		event_free(s->s_timer);
	while ((m = TAILQ_FIRST(&s->s_queue)) != NULL) {
		TAILQ_REMOVE(&s->s_queue, m, sm_entry);
		free(m);
	}
	free(s);
}

/* Drops logged once per outage, and their count at the recovery. */
static void
sink_log_drops(struct sink *s)
{
	uint64_t	 outage;
	int		 up;

	pthread_mutex_lock(&sink_mtx);
	outage = s->s_outage;
	up = s->s_up && s->s_n < s->s_max;
	if (up && outage > 0 && s->s_logged_drop)
		s->s_outage = 0;
	pthread_mutex_unlock(&sink_mtx);
	if (outage > 0 && !s->s_logged_drop) {
		log_warnx("audit_syslog %s: queue full, dropping records",
		    s->s_addr.sa_spec);
		s->s_logged_drop = 1;
	} else if (up && s->s_logged_drop) {
		log_warnx("audit_syslog %s: %" PRIu64 " record%s dropped",
		    s->s_addr.sa_spec, outage, outage == 1 ? "" : "s");
		s->s_logged_drop = 0;
	}
}

/* Woken by sink_send(), sink_configure() or sink_stop(). */
static void
sink_wakeup(evutil_socket_t fd, short what, void *arg)
{
	struct sink	**v, **grave;
	char		  buf[64];
	size_t		  n, ngrave, i;
	int		  stopping;

	while (read(fd, buf, sizeof(buf)) > 0)
		;
	pthread_mutex_lock(&sink_mtx);
	sink_woken = 0;
	stopping = sink_stopping;
	grave = sink_graveyard;
	ngrave = sink_ngrave;
	sink_graveyard = NULL;
	sink_ngrave = 0;
	n = sink_n;
	v = n > 0 ? calloc(n, sizeof(*v)) : NULL;
	if (v != NULL)
		memcpy(v, sink_v, n * sizeof(*v));
	else
		n = 0;
	pthread_mutex_unlock(&sink_mtx);
	for (i = 0; i < ngrave; i++)
		sink_free(grave[i]);
	free(grave);
	if (stopping) {
		free(v);
		event_base_loopbreak(sink_base);
		return;
	}
	for (i = 0; i < n; i++) {
		if (!v[i]->s_started) {
			v[i]->s_started = 1;
			if ((v[i]->s_timer = evtimer_new(sink_base, sink_retry,
			    v[i])) == NULL) {
				log_warnx("audit_syslog: out of memory");
				continue;
			}
			sink_connect(v[i]);
		} else
			sink_flush(v[i]);
		sink_log_drops(v[i]);
	}
	free(v);
}

static void *
sink_main(void *arg)
{
	event_base_dispatch(sink_base);
	return NULL;
}

/*
 * Put cf's audit_syslog list in force (start-up and reload; main thread).
 * A sink whose spec is kept keeps its queue and connection; the others
 * go, their unsent messages with them. 0, or -1 with *cause.
 */
int
sink_configure(const struct config *cf, char **cause)
{
	struct sink	**v = NULL, **grave = NULL, *s;
	size_t		  n = cf->cf_audit_syslog.sl_n, i, j, ng = 0;
	const char	 *why;
	int		  fac = 10;

	*cause = NULL;
	if (cf->cf_audit_syslog_facility != NULL &&
	    (fac = sink_facility_code(cf->cf_audit_syslog_facility)) == -1)
		fac = 10;
	if (n > 0 && sink_base == NULL) {
		sink_init_hostname();
		if (pipe2(sink_wake, O_CLOEXEC | O_NONBLOCK) == -1 ||
		    (sink_base = event_base_new()) == NULL ||
		    (sink_wake_ev = event_new(sink_base, sink_wake[0],
		    EV_READ | EV_PERSIST, sink_wakeup, NULL)) == NULL ||
		    event_add(sink_wake_ev, NULL) == -1)
			goto nomem;
		if (pthread_create(&sink_thread, NULL, sink_main, NULL) != 0)
			goto nomem;
		sink_running = 1;
	}
	/* Everything that can fail first; sink_n changes only here. */
	if (n > 0 && (v = calloc(n, sizeof(*v))) == NULL)
		goto nomem;
	if ((grave = calloc(sink_n + sink_ngrave + 1, sizeof(*grave))) ==
	    NULL)
		goto nomem;
	for (i = 0; i < n; i++) {
		if ((s = calloc(1, sizeof(*s))) == NULL)
			goto nomem;
		v[i] = s;
		/* Parsed at load already. */
		(void)sink_parse(cf->cf_audit_syslog.sl_v[i], &s->s_addr, &why);
		TAILQ_INIT(&s->s_queue);
		s->s_fd = -1;
		s->s_backoff_ms = SINK_BACKOFF_MIN_MS;
	}
	pthread_mutex_lock(&sink_mtx);
	for (i = 0; i < n; i++) {
		for (j = 0; j < sink_n; j++) {
			if (sink_v[j] != NULL && strcmp(sink_v[j]->s_addr.sa_spec,
			    v[i]->s_addr.sa_spec) == 0) {
				free(v[i]);
				v[i] = sink_v[j];
				sink_v[j] = NULL;
				break;
			}
		}
		v[i]->s_max = cf->cf_audit_syslog_queue;
	}
	for (j = 0; j < sink_n; j++)
		if (sink_v[j] != NULL)
			grave[ng++] = sink_v[j];
	for (j = 0; j < sink_ngrave; j++)
		grave[ng++] = sink_graveyard[j];
	free(sink_graveyard);
	sink_graveyard = grave;
	sink_ngrave = ng;
	free(sink_v);
	sink_v = v;
	sink_n = n;
	sink_facility = fac;
	if (sink_base != NULL) {
		sink_woken = 0;
		sink_kick();
	}
	pthread_mutex_unlock(&sink_mtx);
	return 0;
nomem:
	for (i = 0; v != NULL && i < n; i++)
		free(v[i]);
	free(v);
	free(grave);
	*cause = strdup("audit_syslog: out of memory");
	return -1;
}

/*
 * At exit: give the sinks that are up up to ms to send what is queued (the
 * last records and the final checkpoint), polling their queues.
 */
static void
sink_drain_wait(unsigned int ms)
{
	struct timespec	 tick = { 0, 10 * 1000 * 1000 };
	size_t		 i, left;
	unsigned int	 waited;

	for (waited = 0; waited < ms; waited += 10) {
		left = 0;
		pthread_mutex_lock(&sink_mtx);
		for (i = 0; i < sink_n; i++)
			if (sink_v[i]->s_up)
				left += sink_v[i]->s_n;
		pthread_mutex_unlock(&sink_mtx);
		if (left == 0)
			return;
		nanosleep(&tick, NULL);
	}
}

/* Stop the sink thread; what is still queued is lost (and logged). */
void
sink_stop(void)
{
	struct sink	*s;
	size_t		 i;

	if (!sink_running)
		return;
	sink_drain_wait(SINK_FLUSH_MS);
	pthread_mutex_lock(&sink_mtx);
	sink_stopping = 1;
	sink_woken = 0;
	sink_kick();
	pthread_mutex_unlock(&sink_mtx);
	pthread_join(sink_thread, NULL);
	sink_running = 0;
	for (i = 0; i < sink_n; i++) {
		s = sink_v[i];
		if (s->s_n > 0)
			log_warnx("audit_syslog %s: %zu record%s not sent at "
			    "exit", s->s_addr.sa_spec, s->s_n,
			    s->s_n == 1 ? "" : "s");
		sink_free(s);
	}
	for (i = 0; i < sink_ngrave; i++)
		sink_free(sink_graveyard[i]);
	free(sink_graveyard);
	free(sink_v);
	sink_graveyard = NULL;
	sink_ngrave = 0;
	sink_v = NULL;
	sink_n = 0;
	event_free(sink_wake_ev);
	event_base_free(sink_base);
	sink_base = NULL;
	close(sink_wake[0]);
	close(sink_wake[1]);
	sink_wake[0] = sink_wake[1] = -1;
}
