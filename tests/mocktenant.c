/*
 * mocktenant.c: a mock Cortex XDR tenant for the xdrproxy integration tests
 * and the demo.
 *
 * It is an HTTPS server on loopback (libevent evhttp over
 * bufferevent_openssl) that checks the vendor's API key authentication
 * (advanced: nonce, timestamp and a SHA-256 over key + nonce + timestamp;
 * standard: the key itself), writes one JSON object per line to a log for
 * every connection and request, and misbehaves on demand through X-Mock-*
 * request headers: delays, error statuses, dropped connections, large or
 * stalled streams, files served byte for byte, extra response headers.
 * Anything else is echoed back as JSON, except get_incidents which gets a
 * canned reply.
 *
 * mocktenant --generate N writes the first N bytes of the deterministic
 * stream pattern (see PATTERN_SEED) to stdout, so tests can compare what
 * went through the proxy with what the mock sent.
 *
 * Request headers, looked at once auth has passed (first that applies):
 *	X-Mock-Delay-Ms: N	wait N ms first (then the rest applies)
 *	X-Mock-Close: 1		drop the connection, no response
 *	X-Mock-Raw: NAME	the bytes of --files DIR/NAME, verbatim, as the
 *				whole response (status line, headers, body:
 *				nothing added or checked, no X-Mock-Conn),
 *				written straight to the connection; once they
 *				are sent the connection is closed (TLS
 *				close_notify first), whatever they say
 *	X-Mock-Status: N	status N, body X-Mock-Body or a vendor error;
 *				with X-Mock-Status-Times: K only for the
 *				first K requests for the same URI (path and
 *				query) that carried both headers, later ones
 *				are served as if there were no X-Mock-Status
 *				(a request answered 401 or 429 is not
 *				counted; one with X-Mock-Delay-Ms is, as
 *				it arrives, not when its delay is over).
 *				At most 1024 URIs are remembered; past that,
 *				500 "too many X-Mock-Status-Times URIs"
 *	X-Mock-Stream: N	N pattern bytes; X-Mock-Chunked: 1 for chunked,
 *				X-Mock-Stall-After: M to stop after M bytes
 *	X-Mock-File: NAME	bytes of --files DIR/NAME, with
 *				X-Mock-Content-Type, X-Mock-Content-Encoding
 *	(get_incidents path)	canned reply, unless X-Mock-Echo is present
 *	(GET healthcheck)	the vendor's {"status":"available"}
 *	(anything else)		JSON echo of the request
 *	X-Mock-Header: N: v	extra response header (repeatable)
 * Every response but X-Mock-Raw's carries X-Mock-Conn: K, the connection's
 * number.
 *
 * --extra-keys FILE: more advanced keys accepted, one "ID KEY" per line
 * (a reload test rotates through them).
 *
 * Options that change the tenant as a whole:
 *	--date-offset S		the tenant's clock runs S seconds (may be
 *				negative) off ours: its Date headers, and the
 *				5-minute window it checks x-xdr-timestamp in
 *	--client-ca FILE	require a client certificate issued by a CA in
 *				FILE (mutual TLS); its subject is logged
 *	--tls-max 1.2		offer TLS 1.2 at most (1.3 otherwise)
 *	--healthcheck-status N	the healthcheck answers N with the vendor's
 *				error object (for xdrproxy -t --live)
 *	--rate N		N authenticated requests a second, a token
 *				bucket checked with GCRA on CLOCK_MONOTONIC
 *				(not --date-offset's clock), in ns: one
 *				every 1000/N ms, and a burst of up to B at
 *				once after a quiet spell.  A request too
 *				early gets 429 with the vendor's error, as
 *				Cortex answers a busy tenant, and does not
 *				use up the bucket.  Unlike a sliding window,
 *				one second may hold up to B + N - 1 served
 *				requests (a full burst, then one every
 *				1000/N ms): N a second only on the long run
 *	--rate-burst B		the bucket holds B requests (default N: a
 *				burst from idle gets exactly N through)
 *	--rate-slack MS		a request up to MS ms earlier than the
 *				bucket allows is still served: GCRA's
 *				tolerance grows by MS (default 0).  A
 *				client pacing itself exactly at the
 *				tenant's rate sees a few ms of network
 *				jitter, and the real tenant's limiter is
 *				not exact to the ms either; a test gives
 *				the mock the same leeway
 *	--xql-max N		XQL queries: start_xql_query answers
 *				{"reply":"mockq-K"}, and the query runs for
 *				--xql-ms MS (default 2000): get_query_results
 *				for it says PENDING until then, SUCCESS after
 *				(an unknown id: 500). A start while N run gets
 *				the vendor's error, 500 "maximum number of
 *				concurrent queries"
 *
 * Log lines (--log), in this key order, no spaces:
 *	{"event":"connection","conn":K}		at a connection's first request
 *	    (with --client-ca: {"event":"connection","conn":K,
 *	    "client_cert":"/CN=..."})
 *	{"event":"request","conn":K,"method":..,"uri":..,"auth":..,
 *	    "auth_id":..,"nonce":..,"timestamp":..,"headers":[[..,..],..],
 *	    "body_len":N,"body_sha256":"..","at":MS}
 *	    every request read, whatever its answer: one refused with 401
 *	    or 429 gets this line too (before "rate_limited")
 *	{"event":"stream_done","uri":..,"bytes_sent":N}
 *	{"event":"raw_done","uri":..,"bytes_sent":N}	X-Mock-Raw file sent
 *	{"event":"aborted","uri":..,"bytes_sent":K}	peer left first
 *	{"event":"rate_limited","uri":..,"at":MS}	--rate: answered 429
 *	{"event":"xql_start","query_id":..,"running":N}	N counts it
 *	{"event":"xql_refused","running":N}	--xql-max reached
 * MS is when the mock had read the request, in ms since the epoch by the
 * real clock (without --date-offset), so that tests can count the
 * requests in any one-second window.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/util.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#define NONCE_LEN	64
#define TS_WINDOW_MS	300000		/* 5 minutes either way */
#define CHUNK_SIZE	(64 * 1024)	/* one generated stream chunk */
#define STREAM_HIGH	(256 * 1024)	/* most we queue on a connection */
#define MAX_BODY	(64 * 1024 * 1024)
#define MAX_HEADERS	(64 * 1024)
#define MAX_DELAY_MS	86400000ULL	/* one day */
#define MAX_STATUS_URIS	1024		/* X-Mock-Status-Times table */

/*
 * The stream pattern: xorshift64* with state seeded to PATTERN_SEED.
 * For each 8-byte word: x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
 * word = x * PATTERN_MUL; the word is emitted little-endian.  Byte i
 * of the stream is byte (i % 8) of word (i / 8), words counted from 0.
 */
#define PATTERN_SEED	0x9E3779B97F4A7C15ULL
#define PATTERN_MUL	0x2545F4914F6CDD1DULL

#define UNAUTH_BODY \
	"{\"reply\":{\"err_code\":401,\"err_msg\":" \
	"\"Public API request unauthorized\",\"err_extra\":null}}"

enum mode {
	MODE_ADVANCED,
	MODE_STANDARD
};

/* Set of nonces already accepted: open addressing, linear probing. */
struct nonceset {
	char		*slots;		/* cap slots of NONCE_LEN bytes */
	size_t		 cap;
	size_t		 len;
};

struct pattern {
	uint64_t	 state;
	unsigned char	 word[8];	/* current word, little-endian */
	unsigned int	 pos;		/* next unused byte of word */
};

/* X-Mock-Status-Times: how many requests for a URI carried it. */
struct statustimes {
	char		*st_uri;
	uint64_t	 st_n;
};

struct job;

struct mock {
	struct event_base	*base;
	struct evhttp		*http;
	SSL_CTX			*ctx;
	int			 exidx;		/* SSL ex_data slot of struct conn */
	enum mode		 mode;
	char			*key;
	size_t			 keylen;
	const char		*keyid;
	char			*extra;		/* --extra-keys: "ID KEY" lines */
	const char		*filesdir;
	FILE			*log;
	struct nonceset		 nonces;
	uint64_t		 nconn;		/* connections numbered so far */
	struct job		*jobs;		/* all live jobs */
	int			 stopping;
	int			 client_ca;	/* --client-ca: mutual TLS */
	int			 hc_status;	/* --healthcheck-status, or 0 */
	/* --rate: GCRA, in ns of CLOCK_MONOTONIC; rate_t is 0 without. */
	int64_t			 rate_t;	/* emission interval */
	int64_t			 rate_tau;	/* burst tolerance + slack */
	int64_t			 rate_tat;	/* theoretical arrival time */
	/* X-Mock-Status-Times: MAX_STATUS_URIS slots, st_n of them used. */
	struct statustimes	*st;
	size_t			 st_n;
	/* --xql-max: when each query started (index K-1 for mockq-K). */
	size_t			 xql_max;
	uint64_t		 xql_ms;
	int64_t			*xql_start;
	size_t			 xql_n, xql_size;
};

/* --date-offset, in ms: the tenant's clock minus the real one. */
static int64_t	clock_offset_ms;

/*
 * One per TLS connection, hung on the SSL object as ex_data so that it
 * lives exactly as long as the connection's bufferevent and a kept-alive
 * connection keeps its number.  The number is given, and the
 * "connection" event logged, on the connection's first request.
 */
struct conn {
	struct mock	*m;
	uint64_t	 id;		/* 0 until the first request */
	struct job	*job;		/* request being delayed or streamed */
};

enum jobphase {
	JOB_DELAY,	/* timer running before the answer */
	JOB_CLOSE,	/* connection to be dropped from the event loop */
	JOB_STREAM,	/* stream body being sent */
	JOB_FINISHING,	/* stream ended, waiting for evhttp to flush */
	JOB_RAW,	/* X-Mock-Raw bytes being written, evhttp bypassed */
	JOB_DEAD	/* connection gone; reap from the event loop */
};

/* A request answered over more than one turn of the event loop. */
struct job {
	struct mock		*m;
	struct conn		*conn;	/* NULL once the connection is gone */
	struct evhttp_request	*req;	/* NULL once evhttp frees it */
	struct event		*ev;	/* delay timer, or deferred work */
	enum jobphase		 phase;
	char			*uri;
	uint64_t		 total;	/* stream or raw file length */
	uint64_t		 limit;	/* where to stop (stall) */
	uint64_t		 sent;	/* body bytes handed to evhttp */
	struct pattern		 pat;
	struct evbuffer		*chunk;
	struct job		*prev;
	struct job		*next;
};

static void	req_act(struct mock *, struct conn *, struct evhttp_request *,
		    struct job *);

static void
usage(void)
{
	fprintf(stderr,
	    "usage: mocktenant --listen ADDR:PORT --cert CERT.pem --key KEY.pem"
	    " --key-id ID --key-file FILE\n"
	    "                  [--mode advanced|standard] [--port-file FILE]"
	    " [--log FILE] [--files DIR]\n"
	    "                  [--extra-keys FILE]\n"
	    "                  [--date-offset SECONDS] [--client-ca FILE]"
	    " [--tls-max 1.2]\n"
	    "                  [--healthcheck-status N]\n"
	    "                  [--rate N [--rate-burst B] [--rate-slack MS]]\n"
	    "                  [--xql-max N [--xql-ms MS]]\n"
	    "       mocktenant --generate N\n");
	exit(2);
}

/* A whole small text file, NUL-terminated, or NULL (said on stderr). */
static char *
file_slurp(const char *path)
{
	FILE	*f;
	char	*buf;
	size_t	 n;

	if ((f = fopen(path, "r")) == NULL) {
		fprintf(stderr, "mocktenant: %s: %s\n", path, strerror(errno));
		return NULL;
	}
	if ((buf = calloc(1, 1 << 16)) == NULL) {
		fclose(f);
		return NULL;
	}
	n = fread(buf, 1, (1 << 16) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

/* Parse a plain decimal number no larger than max. */
static int
parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t	v = 0;

	if (s == NULL || *s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		if (v > (max - (uint64_t)(*s - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return 0;
}

static void
pattern_init(struct pattern *p)
{
	p->state = PATTERN_SEED;
	p->pos = sizeof(p->word);
}

/* Next xorshift64* output word. */
static uint64_t
pattern_next(struct pattern *p)
{
	uint64_t	x = p->state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	p->state = x;
	return x * PATTERN_MUL;
}

static void
pattern_le(unsigned char *b, uint64_t w)
{
	int	i;

	for (i = 0; i < 8; i++)
		b[i] = (unsigned char)(w >> (8 * i));
}

/* Write the next n bytes of the pattern to buf. */
static void
pattern_fill(struct pattern *p, unsigned char *buf, size_t n)
{
	while (n > 0 && p->pos < sizeof(p->word)) {
		*buf++ = p->word[p->pos++];
		n--;
	}
	while (n >= 8) {
		pattern_le(buf, pattern_next(p));
		buf += 8;
		n -= 8;
	}
	if (n > 0) {
		pattern_le(p->word, pattern_next(p));
		p->pos = 0;
		while (n > 0) {
			*buf++ = p->word[p->pos++];
			n--;
		}
	}
}

static int
pattern_generate(const char *arg)
{
	static unsigned char	buf[CHUNK_SIZE];
	struct pattern		p;
	uint64_t		left;
	size_t			n;

	if (parse_u64(arg, UINT64_MAX, &left) == -1) {
		fprintf(stderr, "mocktenant: bad --generate length: %s\n",
		    arg);
		return 2;
	}
	pattern_init(&p);
	while (left > 0) {
		n = left < sizeof(buf) ? (size_t)left : sizeof(buf);
		pattern_fill(&p, buf, n);
		if (fwrite(buf, 1, n, stdout) != n) {
			perror("mocktenant: stdout");
			return 1;
		}
		left -= n;
	}
	if (fflush(stdout) == EOF) {
		perror("mocktenant: stdout");
		return 1;
	}
	return 0;
}

static uint64_t
nonce_hash(const char *s)
{
	uint64_t	h = 0xcbf29ce484222325ULL;	/* FNV-1a */
	size_t		i;

	for (i = 0; i < NONCE_LEN; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* Slot where nonce is, or the empty slot where it would go. */
static char *
nonceset_slot(char *slots, size_t cap, const char *nonce)
{
	size_t	i;
	char	*s;

	i = (size_t)nonce_hash(nonce) & (cap - 1);
	for (;;) {
		s = slots + i * NONCE_LEN;
		if (s[0] == '\0' || memcmp(s, nonce, NONCE_LEN) == 0)
			return s;
		i = (i + 1) & (cap - 1);
	}
}

static int
nonceset_has(struct nonceset *ns, const char *nonce)
{
	if (ns->cap == 0)
		return 0;
	return nonceset_slot(ns->slots, ns->cap, nonce)[0] != '\0';
}

/* Keep the table at most half full, doubling it as needed. */
static int
nonceset_grow(struct nonceset *ns)
{
	char	*slots, *old;
	size_t	 cap, i;

	cap = ns->cap == 0 ? 64 : ns->cap * 2;
	if ((slots = calloc(cap, NONCE_LEN)) == NULL)
		return -1;
	for (i = 0; i < ns->cap; i++) {
		old = ns->slots + i * NONCE_LEN;
		if (old[0] != '\0')
			memcpy(nonceset_slot(slots, cap, old), old, NONCE_LEN);
	}
	free(ns->slots);
	ns->slots = slots;
	ns->cap = cap;
	return 0;
}

static int
nonceset_add(struct nonceset *ns, const char *nonce)
{
	char	*s;

	if ((ns->len + 1) * 2 > ns->cap && nonceset_grow(ns) == -1)
		return -1;
	s = nonceset_slot(ns->slots, ns->cap, nonce);
	if (s[0] == '\0') {
		memcpy(s, nonce, NONCE_LEN);
		ns->len++;
	}
	return 0;
}

static void
nonceset_free(struct nonceset *ns)
{
	free(ns->slots);
	ns->slots = NULL;
	ns->cap = ns->len = 0;
}

static void
hex_encode(const unsigned char *in, size_t n, char *out)
{
	static const char	digits[] = "0123456789abcdef";
	size_t			i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0xf];
	}
	out[2 * n] = '\0';
}

/* Lowercase hex SHA-256 of the concatenation of n pieces. */
static int
sha256_vec(const struct evbuffer_iovec *v, int n, char hex[65])
{
	EVP_MD_CTX	*ctx;
	unsigned char	 md[EVP_MAX_MD_SIZE];
	unsigned int	 mdlen = 0;
	int		 i, ok;

	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return -1;
	ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	for (i = 0; ok && i < n; i++)
		ok = EVP_DigestUpdate(ctx, v[i].iov_base, v[i].iov_len);
	if (ok)
		ok = EVP_DigestFinal_ex(ctx, md, &mdlen);
	EVP_MD_CTX_free(ctx);
	if (!ok || mdlen != 32)
		return -1;
	hex_encode(md, mdlen, hex);
	return 0;
}

static void
sha256_evbuffer(struct evbuffer *b, char hex[65])
{
	struct evbuffer_iovec	*v = NULL;
	int			 n;

	n = evbuffer_peek(b, -1, NULL, NULL, 0);
	if (n > 0 && (v = calloc((size_t)n, sizeof(*v))) == NULL)
		n = -1;
	if (n > 0)
		n = evbuffer_peek(b, -1, NULL, v, n);
	if (n < 0 || sha256_vec(v, n, hex) == -1)
		strcpy(hex, "error");
	free(v);
}

/* Append s as a JSON string; control and non-ASCII bytes as \u00XX. */
static void
json_str(struct evbuffer *b, const char *s)
{
	const unsigned char	*p, *run;

	evbuffer_add(b, "\"", 1);
	for (p = run = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\')
			continue;
		evbuffer_add(b, run, (size_t)(p - run));
		if (*p == '"')
			evbuffer_add(b, "\\\"", 2);
		else if (*p == '\\')
			evbuffer_add(b, "\\\\", 2);
		else
			evbuffer_add_printf(b, "\\u%04x", (unsigned int)*p);
		run = p + 1;
	}
	evbuffer_add(b, run, (size_t)(p - run));
	evbuffer_add(b, "\"", 1);
}

/* Append the headers as [["Name","value"],...] in received order. */
static void
json_headers(struct evbuffer *b, const struct evkeyvalq *h)
{
	const struct evkeyval	*kv;

	evbuffer_add(b, "[", 1);
	for (kv = h->tqh_first; kv != NULL; kv = kv->next.tqe_next) {
		if (kv != h->tqh_first)
			evbuffer_add(b, ",", 1);
		evbuffer_add(b, "[", 1);
		json_str(b, kv->key);
		evbuffer_add(b, ",", 1);
		json_str(b, kv->value);
		evbuffer_add(b, "]", 1);
	}
	evbuffer_add(b, "]", 1);
}

/* Write one log line and flush it, so tests can read it at once. */
static void
log_put(struct mock *m, struct evbuffer *line)
{
	size_t		 n = evbuffer_get_length(line);
	unsigned char	*p;

	if (m->log == NULL || (p = evbuffer_pullup(line, -1)) == NULL)
		return;
	if (fwrite(p, 1, n, m->log) != n || fputc('\n', m->log) == EOF ||
	    fflush(m->log) == EOF)
		perror("mocktenant: log");
}

static void
log_connection(struct mock *m, uint64_t id, SSL *ssl)
{
	struct evbuffer	*line;
	X509		*x;
	char		 subject[512];

	if (m->log == NULL || (line = evbuffer_new()) == NULL)
		return;
	evbuffer_add_printf(line, "{\"event\":\"connection\",\"conn\":%"
	    PRIu64, id);
	if (m->client_ca) {
		subject[0] = '\0';
		if (ssl != NULL &&
		    (x = SSL_get0_peer_certificate(ssl)) != NULL)
			X509_NAME_oneline(X509_get_subject_name(x), subject,
			    sizeof(subject));
		evbuffer_add(line, ",\"client_cert\":", 15);
		json_str(line, subject);
	}
	evbuffer_add(line, "}", 1);
	log_put(m, line);
	evbuffer_free(line);
}

static void
log_stream(struct mock *m, const char *event, const char *uri,
    uint64_t sent)
{
	struct evbuffer	*line;

	if (m->log == NULL || m->stopping || (line = evbuffer_new()) == NULL)
		return;
	evbuffer_add_printf(line, "{\"event\":\"%s\",\"uri\":", event);
	json_str(line, uri);
	evbuffer_add_printf(line, ",\"bytes_sent\":%" PRIu64 "}", sent);
	log_put(m, line);
	evbuffer_free(line);
}

static const char *
req_method(struct evhttp_request *req)
{
	switch (evhttp_request_get_command(req)) {
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

static void
log_request(struct mock *m, struct conn *c, struct evhttp_request *req,
    const char *auth, const char *hash, int64_t at)
{
	struct evkeyvalq	*h = evhttp_request_get_input_headers(req);
	struct evbuffer		*line;
	const char		*v;

	if (m->log == NULL || (line = evbuffer_new()) == NULL)
		return;
	evbuffer_add_printf(line, "{\"event\":\"request\",\"conn\":%" PRIu64
	    ",\"method\":\"%s\",\"uri\":", c->id, req_method(req));
	json_str(line, evhttp_request_get_uri(req));
	evbuffer_add_printf(line, ",\"auth\":\"%s\",\"auth_id\":", auth);
	v = evhttp_find_header(h, "x-xdr-auth-id");
	json_str(line, v != NULL ? v : "");
	evbuffer_add(line, ",\"nonce\":", 9);
	v = evhttp_find_header(h, "x-xdr-nonce");
	json_str(line, v != NULL ? v : "");
	evbuffer_add(line, ",\"timestamp\":", 13);
	v = evhttp_find_header(h, "x-xdr-timestamp");
	json_str(line, v != NULL ? v : "");
	evbuffer_add(line, ",\"headers\":", 11);
	json_headers(line, h);
	evbuffer_add_printf(line, ",\"body_len\":%zu,\"body_sha256\":\"%s\","
	    "\"at\":%" PRId64 "}",
	    evbuffer_get_length(evhttp_request_get_input_buffer(req)), hash,
	    at);
	log_put(m, line);
	evbuffer_free(line);
}

/* The time of clock id in ns, or 0 if it cannot be read. */
static int64_t
clock_ns(clockid_t id)
{
	struct timespec	ts;

	if (clock_gettime(id, &ts) == -1)
		return 0;
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The tenant's clock: ms since the epoch, --date-offset applied. */
static int64_t
now_ms(void)
{
	return clock_ns(CLOCK_REALTIME) / 1000000 + clock_offset_ms;
}

/*
 * --rate: may one more request be served at now (ns of CLOCK_MONOTONIC)?
 * GCRA in its virtual scheduling form: rate_tat is when the next request
 * would be due were all of them spaced exactly rate_t apart, and one may
 * come up to rate_tau before that: (burst - 1) intervals, plus the slack.
 * Only a request served moves rate_tat on, so a refused one costs
 * nothing.
 */
static int
rate_admit(struct mock *m, int64_t now)
{
	int64_t	 tat;

	if (m->rate_t == 0)
		return 1;
	tat = m->rate_tat > now ? m->rate_tat : now;
	if (now < tat - m->rate_tau)
		return 0;
	m->rate_tat = tat + m->rate_t;
	return 1;
}

static void
log_rate_limited(struct mock *m, struct evhttp_request *req, int64_t at)
{
	struct evbuffer	*line;

	if (m->log == NULL || (line = evbuffer_new()) == NULL)
		return;
	evbuffer_add_printf(line, "{\"event\":\"rate_limited\",\"uri\":");
	json_str(line, evhttp_request_get_uri(req));
	evbuffer_add_printf(line, ",\"at\":%" PRId64 "}", at);
	log_put(m, line);
	evbuffer_free(line);
}

static int
nonce_valid(const char *s)
{
	size_t	i;

	for (i = 0; s[i] != '\0'; i++) {
		if (i >= NONCE_LEN)
			return 0;
		if (!((s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '0' && s[i] <= '9')))
			return 0;
	}
	return i == NONCE_LEN;
}

/* The key of id (--key-id, or a line of --extra-keys), or NULL. */
static const char *
key_find(struct mock *m, const char *id, size_t *len)
{
	const char	*p, *sp, *nl;
	size_t		 idlen = strlen(id);

	if (strcmp(id, m->keyid) == 0) {
		*len = m->keylen;
		return m->key;
	}
	for (p = m->extra; p != NULL && *p != '\0'; p = nl + 1) {
		if ((nl = strchr(p, '\n')) == NULL)
			nl = p + strlen(p);
		sp = memchr(p, ' ', (size_t)(nl - p));
		if (sp != NULL && (size_t)(sp - p) == idlen &&
		    memcmp(p, id, idlen) == 0) {
			*len = (size_t)(nl - sp - 1);
			return sp + 1;
		}
		if (*nl == '\0')
			break;
	}
	return NULL;
}

/* Check the vendor's auth headers; returns the reason for the log. */
static const char *
auth_check(struct mock *m, struct evkeyvalq *h)
{
	const char		*id, *nonce, *ts, *auth, *key;
	size_t			 keylen;
	struct evbuffer_iovec	 v[3];
	char			 hex[65];
	uint64_t		 t;
	int64_t			 now;

	id = evhttp_find_header(h, "x-xdr-auth-id");
	auth = evhttp_find_header(h, "Authorization");
	if (m->mode == MODE_STANDARD) {
		if (id == NULL || auth == NULL)
			return "missing";
		if (strcmp(id, m->keyid) != 0)
			return "bad_id";
		if (strlen(auth) != m->keylen ||
		    CRYPTO_memcmp(auth, m->key, m->keylen) != 0)
			return "bad_hash";
		return "ok";
	}

	nonce = evhttp_find_header(h, "x-xdr-nonce");
	ts = evhttp_find_header(h, "x-xdr-timestamp");
	if (id == NULL || auth == NULL || nonce == NULL || ts == NULL)
		return "missing";
	if ((key = key_find(m, id, &keylen)) == NULL)
		return "bad_id";
	if (!nonce_valid(nonce))
		return "bad_nonce";
	now = now_ms();
	if (parse_u64(ts, INT64_MAX, &t) == -1 ||
	    (int64_t)t > now + TS_WINDOW_MS || (int64_t)t < now - TS_WINDOW_MS)
		return "stale";
	v[0].iov_base = (void *)(uintptr_t)key;
	v[0].iov_len = keylen;
	v[1].iov_base = (void *)(uintptr_t)nonce;
	v[1].iov_len = NONCE_LEN;
	v[2].iov_base = (void *)(uintptr_t)ts;
	v[2].iov_len = strlen(ts);
	if (sha256_vec(v, 3, hex) == -1)
		return "bad_hash";
	if (strlen(auth) != 64 || CRYPTO_memcmp(auth, hex, 64) != 0)
		return "bad_hash";
	if (nonceset_has(&m->nonces, nonce))
		return "replay";
	if (nonceset_add(&m->nonces, nonce) == -1)
		fprintf(stderr, "mocktenant: out of memory for nonces\n");
	return "ok";
}

static const char *
reason_phrase(int code)
{
	switch (code) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 408:
		return "Request Timeout";
	case 413:
		return "Payload Too Large";
	case 429:
		return "Too Many Requests";
	case 500:
		return "Internal Server Error";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	}
	return NULL;	/* evhttp's own */
}

/* Replace every output header called name by one with value. */
static void
header_set(struct evhttp_request *req, const char *name, const char *value)
{
	struct evkeyvalq	*out = evhttp_request_get_output_headers(req);

	while (evhttp_remove_header(out, name) == 0)
		;
	evhttp_add_header(out, name, value);
}

/*
 * Add the headers asked for with "X-Mock-Header: Name: value".  A header
 * of the same name that the mock set itself is replaced; several
 * X-Mock-Header lines with one name all go out.
 */
static void
mockhdr_apply(struct evhttp_request *req)
{
	struct evkeyvalq	*in = evhttp_request_get_input_headers(req);
	struct evkeyvalq	*out = evhttp_request_get_output_headers(req);
	struct evkeyval		*kv;
	const char		*colon, *value;
	char			*name;
	int			 pass;

	for (pass = 0; pass < 2; pass++) {
		for (kv = in->tqh_first; kv != NULL; kv = kv->next.tqe_next) {
			if (strcasecmp(kv->key, "X-Mock-Header") != 0)
				continue;
			colon = strchr(kv->value, ':');
			if (colon == NULL || colon == kv->value)
				continue;
			name = strndup(kv->value, (size_t)(colon - kv->value));
			if (name == NULL)
				continue;
			value = colon + 1;
			while (*value == ' ' || *value == '\t')
				value++;
			if (pass == 0) {
				while (evhttp_remove_header(out, name) == 0)
					;
			} else
				evhttp_add_header(out, name, value);
			free(name);
		}
	}
}

/*
 * Send a complete reply.  evhttp 2.1 writes the body even for HEAD, 204
 * and 304, so drop it here; HEAD keeps the Content-Length it would have.
 */
static void
reply_send(struct evhttp_request *req, int code, const char *ctype,
    struct evbuffer *body, int mockhdrs)
{
	struct evkeyvalq	*out = evhttp_request_get_output_headers(req);
	char			 len[32];
	int			 head;

	if (ctype != NULL)
		header_set(req, "Content-Type", ctype);
	if (mockhdrs)
		mockhdr_apply(req);
	head = evhttp_request_get_command(req) == EVHTTP_REQ_HEAD;
	if (head && code >= 200 && code != 204 && code != 304 &&
	    evhttp_find_header(out, "Content-Length") == NULL &&
	    evhttp_find_header(out, "Transfer-Encoding") == NULL) {
		snprintf(len, sizeof(len), "%zu", evbuffer_get_length(body));
		evhttp_add_header(out, "Content-Length", len);
	}
	if (head || code < 200 || code == 204 || code == 304)
		evbuffer_drain(body, evbuffer_get_length(body));
	evhttp_send_reply(req, code, reason_phrase(code), body);
}

/* Reply with the vendor's error object. */
static void
reply_error(struct evhttp_request *req, int code, const char *msg,
    int mockhdrs)
{
	struct evbuffer	*b;

	if ((b = evbuffer_new()) == NULL) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	evbuffer_add_printf(b, "{\"reply\":{\"err_code\":%d,\"err_msg\":", code);
	json_str(b, msg);
	evbuffer_add(b, ",\"err_extra\":null}}", 19);
	reply_send(req, code, "application/json", b, mockhdrs);
	evbuffer_free(b);
}

static void
reply_text(struct evhttp_request *req, int code, const char *ctype,
    const char *text)
{
	struct evbuffer	*b;

	if ((b = evbuffer_new()) == NULL) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	evbuffer_add(b, text, strlen(text));
	reply_send(req, code, ctype, b, 1);
	evbuffer_free(b);
}

/* The vendor's 401, byte for byte. */
static void
reply_unauthorized(struct evhttp_request *req)
{
	struct evbuffer	*b;

	if ((b = evbuffer_new()) == NULL) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	evbuffer_add(b, UNAUTH_BODY, sizeof(UNAUTH_BODY) - 1);
	reply_send(req, 401, "application/json", b, 0);
	evbuffer_free(b);
}

static void
reply_echo(struct evhttp_request *req)
{
	struct evbuffer	*b, *body = evhttp_request_get_input_buffer(req);
	char		 hash[65];

	if ((b = evbuffer_new()) == NULL) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	sha256_evbuffer(body, hash);
	evbuffer_add_printf(b, "{\"reply\":{\"method\":\"%s\",\"uri\":",
	    req_method(req));
	json_str(b, evhttp_request_get_uri(req));
	evbuffer_add(b, ",\"headers\":", 11);
	json_headers(b, evhttp_request_get_input_headers(req));
	evbuffer_add_printf(b, ",\"body_len\":%zu,\"body_sha256\":\"%s\"}}",
	    evbuffer_get_length(body), hash);
	reply_send(req, 200, "application/json", b, 1);
	evbuffer_free(b);
}

static const char incidents_reply[] =
    "{\"reply\":{\"total_count\":2,\"result_count\":2,\"incidents\":["
    "{\"incident_id\":\"413\",\"incident_name\":null,"
    "\"rule_based_score\":null,\"manual_score\":null,"
    "\"creation_time\":1716393600000,\"modification_time\":1716394212000,"
    "\"detection_time\":null,\"status\":\"new\",\"severity\":\"high\","
    "\"description\":\"'Suspicious process' generated by XDR Agent "
    "detected on host demo-01\","
    "\"assigned_user_mail\":null,\"assigned_user_pretty_name\":null,"
    "\"alert_count\":3,\"low_severity_alert_count\":0,"
    "\"med_severity_alert_count\":1,\"high_severity_alert_count\":2,"
    "\"user_count\":1,\"host_count\":1,\"notes\":null,"
    "\"resolve_comment\":null,\"manual_severity\":null,"
    "\"manual_description\":null,\"starred\":false,"
    "\"xdr_url\":\"https://acme.xdr.test/incident-view?caseId=413\","
    "\"hosts\":[\"demo-01:3f1c9a7e5b2d4c60a8e1f0b2c3d4e5f6\"],"
    "\"users\":[\"ACME\\\\jdoe\"],"
    "\"incident_sources\":[\"XDR Agent\"]},"
    "{\"incident_id\":\"412\",\"incident_name\":null,"
    "\"rule_based_score\":null,\"manual_score\":null,"
    "\"creation_time\":1716380100000,\"modification_time\":1716391540000,"
    "\"detection_time\":null,\"status\":\"under_investigation\","
    "\"severity\":\"medium\","
    "\"description\":\"'Port scan' generated by XDR Analytics "
    "detected on 2 hosts\","
    "\"assigned_user_mail\":\"soc.analyst@acme.example\","
    "\"assigned_user_pretty_name\":\"SOC Analyst\","
    "\"alert_count\":5,\"low_severity_alert_count\":2,"
    "\"med_severity_alert_count\":3,\"high_severity_alert_count\":0,"
    "\"user_count\":0,\"host_count\":2,\"notes\":null,"
    "\"resolve_comment\":null,\"manual_severity\":null,"
    "\"manual_description\":null,\"starred\":true,"
    "\"xdr_url\":\"https://acme.xdr.test/incident-view?caseId=412\","
    "\"hosts\":[\"demo-02:9b8a7c6d5e4f40312a1b0c9d8e7f6a5b\","
    "\"demo-03:0a1b2c3d4e5f46a7b8c9d0e1f2a3b4c5\"],"
    "\"users\":[],"
    "\"incident_sources\":[\"XDR Analytics\",\"Firewall\"]}"
    "]}}";

static int
uri_is_healthcheck(struct evhttp_request *req)
{
	const struct evhttp_uri	*u = evhttp_request_get_evhttp_uri(req);
	const char		*path;

	if (u == NULL || (path = evhttp_uri_get_path(u)) == NULL ||
	    evhttp_request_get_command(req) != EVHTTP_REQ_GET)
		return 0;
	return strcmp(path, "/public_api/v1/healthcheck") == 0 ||
	    strcmp(path, "/public_api/v1/healthcheck/") == 0;
}

/* One log line of our own making (no client bytes in it). */
static void __attribute__((format(printf, 2, 3)))
log_event(struct mock *m, const char *fmt, ...)
{
	struct evbuffer	*line;
	va_list		 ap;

	if (m->log == NULL || (line = evbuffer_new()) == NULL)
		return;
	va_start(ap, fmt);
	evbuffer_add_vprintf(line, fmt, ap);
	va_end(ap);
	log_put(m, line);
	evbuffer_free(line);
}

/* The path is /public_api/v1/xql/CALL or CALL/. */
static int
uri_is_xql(struct evhttp_request *req, const char *call)
{
	const struct evhttp_uri	*u = evhttp_request_get_evhttp_uri(req);
	const char		*path;
	size_t			 n = strlen("/public_api/v1/xql/");

	if (u == NULL || (path = evhttp_uri_get_path(u)) == NULL ||
	    strncmp(path, "/public_api/v1/xql/", n) != 0 ||
	    strncmp(path + n, call, strlen(call)) != 0)
		return 0;
	path += n + strlen(call);
	return *path == '\0' || strcmp(path, "/") == 0;
}

/* Queries started less than --xql-ms ago. */
static size_t
xql_running(struct mock *m, int64_t now)
{
	size_t	 i, n = 0;

	for (i = 0; i < m->xql_n; i++)
		if (now - m->xql_start[i] < (int64_t)m->xql_ms)
			n++;
	return n;
}

static void
reply_xql_start(struct mock *m, struct evhttp_request *req)
{
	int64_t		 now = now_ms(), *v;
	size_t		 running = xql_running(m, now);
	char		 body[64];

	if (running >= m->xql_max) {
		log_event(m, "{\"event\":\"xql_refused\",\"running\":%zu}",
		    running);
		reply_error(req, 500, "The maximum number of concurrent "
		    "queries has been reached", 1);
		return;
	}
	if (m->xql_n == m->xql_size) {
		if ((v = reallocarray(m->xql_start, m->xql_size * 2 + 16,
		    sizeof(*v))) == NULL) {
			reply_error(req, 500, "out of memory", 0);
			return;
		}
		m->xql_start = v;
		m->xql_size = m->xql_size * 2 + 16;
	}
	m->xql_start[m->xql_n++] = now;
	log_event(m, "{\"event\":\"xql_start\",\"query_id\":\"mockq-%zu\","
	    "\"running\":%zu}", m->xql_n, running + 1);
	snprintf(body, sizeof(body), "{\"reply\":\"mockq-%zu\"}", m->xql_n);
	reply_text(req, 200, "application/json", body);
}

static void
reply_xql_results(struct mock *m, struct evhttp_request *req)
{
	struct evbuffer	*in = evhttp_request_get_input_buffer(req);
	size_t		 len = evbuffer_get_length(in), k = 0;
	const char	*body, *p;
	char		*copy;
	int		 done;

	body = (const char *)evbuffer_pullup(in, -1);
	if ((copy = strndup(body != NULL ? body : "", len)) == NULL) {
		reply_error(req, 500, "out of memory", 0);
		return;
	}
	if ((p = strstr(copy, "\"query_id\"")) != NULL &&
	    (p = strstr(p, "\"mockq-")) != NULL)
		k = (size_t)strtoul(p + 7, NULL, 10);
	free(copy);
	if (k == 0 || k > m->xql_n) {
		reply_error(req, 500, "unknown query_id", 1);
		return;
	}
	done = now_ms() - m->xql_start[k - 1] >= (int64_t)m->xql_ms;
	reply_text(req, 200, "application/json", done ?
	    "{\"reply\":{\"status\":\"SUCCESS\",\"number_of_results\":1,"
	    "\"query_cost\":{},\"remaining_quota\":1000.0,"
	    "\"results\":{\"data\":[{\"_time\":1716393600000}]}}}" :
	    "{\"reply\":{\"status\":\"PENDING\",\"number_of_results\":0,"
	    "\"query_cost\":{},\"remaining_quota\":1000.0,"
	    "\"results\":{\"data\":[]}}}");
}

static int
uri_is_incidents(struct evhttp_request *req)
{
	const struct evhttp_uri	*u = evhttp_request_get_evhttp_uri(req);
	const char		*path;

	if (u == NULL || (path = evhttp_uri_get_path(u)) == NULL)
		return 0;
	return strcmp(path, "/public_api/v1/incidents/get_incidents/") == 0 ||
	    strcmp(path, "/public_api/v1/incidents/get_incidents") == 0;
}

/* Read the whole regular file at path into b. */
static int
file_load(const char *path, struct evbuffer *b)
{
	struct evbuffer_iovec	v;
	struct stat		st;
	ssize_t			n;
	int			fd, saved;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	if (fstat(fd, &st) == -1) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		errno = ENOENT;
		return -1;
	}
	for (;;) {
		if (evbuffer_reserve_space(b, CHUNK_SIZE, &v, 1) < 1) {
			close(fd);
			errno = ENOMEM;
			return -1;
		}
		n = read(fd, v.iov_base, CHUNK_SIZE);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		v.iov_len = (size_t)n;
		if (evbuffer_commit_space(b, &v, 1) == -1) {
			close(fd);
			errno = ENOMEM;
			return -1;
		}
	}
	saved = errno;
	close(fd);
	if (n == -1) {
		errno = saved;
		return -1;
	}
	return 0;
}

static void
reply_file(struct mock *m, struct evhttp_request *req, const char *name)
{
	struct evkeyvalq	*in = evhttp_request_get_input_headers(req);
	struct evbuffer		*b;
	const char		*ctype, *enc;
	char			*path;
	size_t			 len;

	if (name[0] == '\0' || name[0] == '.' || strchr(name, '/') != NULL) {
		reply_error(req, 400, "bad X-Mock-File name", 1);
		return;
	}
	if (m->filesdir == NULL) {
		reply_error(req, 404, "no --files directory", 1);
		return;
	}
	len = strlen(m->filesdir) + strlen(name) + 2;
	if ((path = malloc(len)) == NULL || (b = evbuffer_new()) == NULL) {
		free(path);
		evhttp_send_error(req, 500, NULL);
		return;
	}
	snprintf(path, len, "%s/%s", m->filesdir, name);
	if (file_load(path, b) == -1) {
		if (errno == ENOENT || errno == ENOTDIR)
			reply_error(req, 404, "no such mock file", 1);
		else
			reply_error(req, 500, strerror(errno), 1);
	} else {
		ctype = evhttp_find_header(in, "X-Mock-Content-Type");
		if (ctype == NULL)
			ctype = "application/octet-stream";
		enc = evhttp_find_header(in, "X-Mock-Content-Encoding");
		if (enc != NULL)
			header_set(req, "Content-Encoding", enc);
		reply_send(req, 200, ctype, b, 1);
	}
	evbuffer_free(b);
	free(path);
}

static void	job_cb(evutil_socket_t, short, void *);

static struct job *
job_new(struct mock *m, struct conn *c, struct evhttp_request *req,
    enum jobphase phase)
{
	struct job	*job;

	if ((job = calloc(1, sizeof(*job))) == NULL)
		return NULL;
	job->m = m;
	job->conn = c;
	job->req = req;
	job->phase = phase;
	job->uri = strdup(evhttp_request_get_uri(req));
	job->ev = evtimer_new(m->base, job_cb, job);
	job->chunk = evbuffer_new();
	if (job->uri == NULL || job->ev == NULL || job->chunk == NULL) {
		if (job->ev != NULL)
			event_free(job->ev);
		if (job->chunk != NULL)
			evbuffer_free(job->chunk);
		free(job->uri);
		free(job);
		return NULL;
	}
	job->next = m->jobs;
	if (m->jobs != NULL)
		m->jobs->prev = job;
	m->jobs = job;
	c->job = job;
	return job;
}

static void
job_free(struct job *job)
{
	struct mock	*m = job->m;

	if (job->prev != NULL)
		job->prev->next = job->next;
	else
		m->jobs = job->next;
	if (job->next != NULL)
		job->next->prev = job->prev;
	if (job->conn != NULL && job->conn->job == job)
		job->conn->job = NULL;
	event_free(job->ev);
	evbuffer_free(job->chunk);
	free(job->uri);
	free(job);
}

/*
 * Called by evhttp before it frees a connection: when the peer closed it
 * (EOF or error), when X-Mock-Close drops it, or at exit.  If a job was
 * still running, evhttp has either detached its request (peer closed
 * before the reply was complete: the request is ours to end) or will free
 * it right after this returns.  The job is reaped from the event loop.
 */
static void
conn_closecb(struct evhttp_connection *evcon, void *arg)
{
	struct conn	*c = arg;
	struct mock	*m = c->m;
	struct job	*job = c->job;

	(void)evcon;
	if (job == NULL)
		return;
	c->job = NULL;
	job->conn = NULL;
	if (job->req != NULL && evhttp_request_get_connection(job->req) != NULL)
		job->req = NULL;
	log_stream(m, "aborted", job->uri, job->sent);
	event_del(job->ev);
	job->phase = JOB_DEAD;
	if (!m->stopping)
		event_active(job->ev, EV_TIMEOUT, 0);
}

/* ex_data destructor: the connection's SSL object is being freed. */
static void
conn_exfree(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
    void *argp)
{
	struct conn	*c = ptr;

	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	if (c == NULL)
		return;
	if (c->job != NULL)
		c->job->conn = NULL;
	free(c);
}

static struct conn *
conn_get(struct mock *m, struct evhttp_connection *evcon)
{
	struct bufferevent	*bev;
	SSL			*ssl;

	if (evcon == NULL ||
	    (bev = evhttp_connection_get_bufferevent(evcon)) == NULL ||
	    (ssl = bufferevent_openssl_get_ssl(bev)) == NULL)
		return NULL;
	return SSL_get_ex_data(ssl, m->exidx);
}

/*
 * evhttp stops reading while the user handles a request, so it would not
 * see the peer go away during a delay.  Read again, without a read
 * callback (evhttp_read_cb aborts in this state), so that EOF reaches
 * evhttp's event callback, which frees the connection and calls
 * conn_closecb.
 */
static void
conn_watch_close(struct evhttp_connection *evcon)
{
	struct bufferevent	*bev = evhttp_connection_get_bufferevent(evcon);
	bufferevent_data_cb	 wcb;
	bufferevent_event_cb	 ecb;
	void			*arg;

	bufferevent_getcb(bev, NULL, &wcb, &ecb, &arg);
	bufferevent_setcb(bev, NULL, wcb, ecb, arg);
	bufferevent_enable(bev, EV_READ);
}

static void	stream_pump(struct job *);

/* evhttp's write callback during a stream: the output buffer drained. */
static void
stream_writecb(struct evhttp_connection *evcon, void *arg)
{
	struct job	*job = arg;

	(void)evcon;
	if (job->phase == JOB_STREAM)
		stream_pump(job);
}

/* evhttp finished sending the whole stream. */
static void
stream_complete(struct evhttp_request *req, void *arg)
{
	struct job	*job = arg;

	(void)req;
	log_stream(job->m, "stream_done", job->uri, job->sent);
	job->req = NULL;
	job_free(job);
}

/*
 * Queue pattern bytes until about STREAM_HIGH bytes wait in the
 * connection's output buffer, the stall point or the end; at the end,
 * finish the reply (stream_complete runs once evhttp has flushed it).
 */
static void
stream_pump(struct job *job)
{
	struct evhttp_connection	*evcon;
	struct evbuffer			*out;
	struct evbuffer_iovec		 v;
	size_t				 n;

	if ((evcon = evhttp_request_get_connection(job->req)) == NULL)
		return;
	out = bufferevent_get_output(evhttp_connection_get_bufferevent(evcon));
	while (job->sent < job->limit &&
	    evbuffer_get_length(out) < STREAM_HIGH) {
		n = job->limit - job->sent < CHUNK_SIZE ?
		    (size_t)(job->limit - job->sent) : CHUNK_SIZE;
		if (evbuffer_reserve_space(job->chunk, (ev_ssize_t)n, &v, 1) < 1)
			return;
		pattern_fill(&job->pat, v.iov_base, n);
		v.iov_len = n;
		if (evbuffer_commit_space(job->chunk, &v, 1) == -1)
			return;
		evhttp_send_reply_chunk_with_cb(job->req, job->chunk,
		    stream_writecb, job);
		job->sent += n;
	}
	if (job->sent == job->total) {
		job->phase = JOB_FINISHING;
		/* may call stream_complete, which frees job */
		evhttp_send_reply_end(job->req);
	}
}

/* Start X-Mock-Stream; job is the delay job if there was one. */
static void
stream_start(struct mock *m, struct conn *c, struct evhttp_request *req,
    struct job *job)
{
	struct evkeyvalq	*in = evhttp_request_get_input_headers(req);
	const char		*v;
	uint64_t		 total, stall = UINT64_MAX;
	char			 len[32];
	int			 chunked;

	if (parse_u64(evhttp_find_header(in, "X-Mock-Stream"), INT64_MAX,
	    &total) == -1 ||
	    ((v = evhttp_find_header(in, "X-Mock-Stall-After")) != NULL &&
	    parse_u64(v, INT64_MAX, &stall) == -1)) {
		if (job != NULL)
			job_free(job);
		reply_error(req, 400, "bad X-Mock-Stream or X-Mock-Stall-After",
		    1);
		return;
	}
	v = evhttp_find_header(in, "X-Mock-Chunked");
	chunked = v != NULL && strcmp(v, "1") == 0;
	if (chunked)
		evhttp_remove_header(evhttp_request_get_output_headers(req),
		    "Content-Length");
	else {
		snprintf(len, sizeof(len), "%" PRIu64, total);
		header_set(req, "Content-Length", len);
	}
	header_set(req, "Content-Type", "application/octet-stream");
	mockhdr_apply(req);

	if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
		struct evbuffer	*b;

		if (job != NULL)
			job_free(job);
		if (chunked)
			evhttp_add_header(evhttp_request_get_output_headers(req),
			    "Transfer-Encoding", "chunked");
		if ((b = evbuffer_new()) == NULL) {
			evhttp_send_error(req, 500, NULL);
			return;
		}
		reply_send(req, 200, NULL, b, 0);
		evbuffer_free(b);
		return;
	}

	if (job == NULL && (job = job_new(m, c, req, JOB_STREAM)) == NULL) {
		reply_error(req, 500, "out of memory", 0);
		return;
	}
	job->phase = JOB_STREAM;
	job->total = total;
	job->limit = stall < total ? stall : total;
	job->sent = 0;
	pattern_init(&job->pat);
	evhttp_request_set_on_complete_cb(req, stream_complete, job);
	evhttp_send_reply_start(req, 200, "OK");
	stream_pump(job);
}

/*
 * X-Mock-Raw is over: the bytes went out (close_notify, then close) or the
 * peer left first (close).  evhttp's callbacks are gone from the
 * bufferevent, so the connection is dropped from the event loop as
 * X-Mock-Close drops it.
 */
static void
raw_finish(struct job *job, int aborted)
{
	struct evhttp_connection	*evcon;
	struct bufferevent		*bev;
	SSL				*ssl;
	size_t				 left;

	if (job->phase != JOB_RAW ||
	    (evcon = evhttp_request_get_connection(job->req)) == NULL)
		return;
	bev = evhttp_connection_get_bufferevent(evcon);
	left = evbuffer_get_length(bufferevent_get_output(bev));
	bufferevent_disable(bev, EV_READ | EV_WRITE);
	bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
	if (left > 0)
		aborted = 1;
	log_stream(job->m, aborted ? "aborted" : "raw_done", job->uri,
	    job->total - left);
	if (!aborted && (ssl = bufferevent_openssl_get_ssl(bev)) != NULL) {
		/* one alert record; the socket has room, the output is empty */
		(void)SSL_shutdown(ssl);
		ERR_clear_error();
	}
	job->phase = JOB_CLOSE;
	event_active(job->ev, EV_TIMEOUT, 0);
}

/* The raw bytes drained from the output buffer (into the kernel). */
static void
raw_writecb(struct bufferevent *bev, void *arg)
{
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		raw_finish(arg, 0);
}

/* EOF, error or timeout before the bytes went out. */
static void
raw_eventcb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	raw_finish(arg, 1);
}

/*
 * Start X-Mock-Raw: load the file and hand it to the connection's
 * bufferevent, taking the bufferevent's callbacks from evhttp so that it
 * neither writes a reply of its own nor reads the next request.  job is
 * the delay job if there was one.
 */
static void
raw_start(struct mock *m, struct conn *c, struct evhttp_request *req,
    struct job *job, const char *name)
{
	struct evhttp_connection	*evcon;
	struct bufferevent		*bev;
	char				*path;
	size_t				 len;

	if (name[0] == '\0' || name[0] == '.' || strchr(name, '/') != NULL ||
	    m->filesdir == NULL) {
		if (job != NULL)
			job_free(job);
		if (m->filesdir == NULL)
			reply_error(req, 404, "no --files directory", 1);
		else
			reply_error(req, 400, "bad X-Mock-Raw name", 1);
		return;
	}
	if (job == NULL && (job = job_new(m, c, req, JOB_RAW)) == NULL) {
		reply_error(req, 500, "out of memory", 0);
		return;
	}
	job->phase = JOB_RAW;
	len = strlen(m->filesdir) + strlen(name) + 2;
	if ((path = malloc(len)) == NULL) {
		job_free(job);
		reply_error(req, 500, "out of memory", 0);
		return;
	}
	snprintf(path, len, "%s/%s", m->filesdir, name);
	evbuffer_drain(job->chunk, evbuffer_get_length(job->chunk));
	if (file_load(path, job->chunk) == -1) {
		job_free(job);
		if (errno == ENOENT || errno == ENOTDIR)
			reply_error(req, 404, "no such mock file", 1);
		else
			reply_error(req, 500, strerror(errno), 1);
		free(path);
		return;
	}
	free(path);
	job->total = evbuffer_get_length(job->chunk);
	evcon = evhttp_request_get_connection(req);
	bev = evhttp_connection_get_bufferevent(evcon);
	bufferevent_setcb(bev, NULL, raw_writecb, raw_eventcb, job);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	if (job->total == 0) {
		raw_finish(job, 0);
		return;
	}
	evbuffer_add_buffer(bufferevent_get_output(bev), job->chunk);
}

/* A job's timer or deferred work. */
static void
job_cb(evutil_socket_t fd, short what, void *arg)
{
	struct job			*job = arg;
	struct evhttp_connection	*evcon;

	(void)fd;
	(void)what;
	switch (job->phase) {
	case JOB_DELAY:
		req_act(job->m, job->conn, job->req, job);
		break;
	case JOB_CLOSE:
		evcon = evhttp_request_get_connection(job->req);
		job->req = NULL;
		job_free(job);
		/* evhttp frees the request along with the connection */
		if (evcon != NULL)
			evhttp_connection_free(evcon);
		break;
	case JOB_DEAD:
		/* a detached request is freed by ending it */
		if (job->req != NULL)
			evhttp_send_reply_end(job->req);
		job->req = NULL;
		job_free(job);
		break;
	case JOB_STREAM:
	case JOB_FINISHING:
	case JOB_RAW:
		break;
	}
}

/*
 * Answer an authenticated request as its X-Mock-* headers ask, once any
 * delay is over.  job is the delay job, if any: reused for a stream, a
 * raw answer or a close, freed otherwise.
 */
static void
req_act(struct mock *m, struct conn *c, struct evhttp_request *req,
    struct job *job)
{
	struct evkeyvalq	*in = evhttp_request_get_input_headers(req);
	struct evbuffer		*b;
	const char		*v, *body;
	uint64_t		 code;

	v = evhttp_find_header(in, "X-Mock-Close");
	if (v != NULL && strcmp(v, "1") == 0) {
		/* drop it from the event loop, outside evhttp's callback */
		if (job == NULL && (job = job_new(m, c, req, JOB_CLOSE)) == NULL) {
			evhttp_send_error(req, 500, NULL);
			return;
		}
		job->phase = JOB_CLOSE;
		event_active(job->ev, EV_TIMEOUT, 0);
		return;
	}
	if ((v = evhttp_find_header(in, "X-Mock-Raw")) != NULL) {
		raw_start(m, c, req, job, v);
		return;
	}
	if ((v = evhttp_find_header(in, "X-Mock-Stream")) != NULL &&
	    evhttp_find_header(in, "X-Mock-Status") == NULL) {
		stream_start(m, c, req, job);
		return;
	}
	if (job != NULL)
		job_free(job);

	if ((v = evhttp_find_header(in, "X-Mock-Status")) != NULL) {
		if (parse_u64(v, 599, &code) == -1 || code <= 100) {
			reply_error(req, 400, "bad X-Mock-Status", 1);
			return;
		}
		if ((body = evhttp_find_header(in, "X-Mock-Body")) == NULL) {
			reply_error(req, (int)code, "mock error", 1);
			return;
		}
		if ((b = evbuffer_new()) == NULL) {
			evhttp_send_error(req, 500, NULL);
			return;
		}
		evbuffer_add(b, body, strlen(body));
		reply_send(req, (int)code, "application/json", b, 1);
		evbuffer_free(b);
		return;
	}
	if ((v = evhttp_find_header(in, "X-Mock-File")) != NULL) {
		reply_file(m, req, v);
		return;
	}
	if (m->xql_max > 0 && uri_is_xql(req, "start_xql_query")) {
		reply_xql_start(m, req);
		return;
	}
	if (m->xql_max > 0 && uri_is_xql(req, "get_query_results")) {
		reply_xql_results(m, req);
		return;
	}
	if (uri_is_incidents(req) &&
	    evhttp_find_header(in, "X-Mock-Echo") == NULL) {
		reply_text(req, 200, "application/json", incidents_reply);
		return;
	}
	if (uri_is_healthcheck(req) &&
	    evhttp_find_header(in, "X-Mock-Echo") == NULL) {
		if (m->hc_status != 0) {
			reply_error(req, m->hc_status, "mock healthcheck error",
			    1);
			return;
		}
		reply_text(req, 200, "application/json",
		    "{\"status\":\"available\"}");
		return;
	}
	reply_echo(req);
}

/*
 * X-Mock-Status-Times: K: count the request against its URI and, once
 * more than K have carried it there, drop X-Mock-Status from the request
 * so that it is served as if it had never had one.  Returns -1 if the
 * request has been answered with an error (a bad K, a full table).
 */
static int
status_times(struct mock *m, struct evhttp_request *req)
{
	struct evkeyvalq	*in = evhttp_request_get_input_headers(req);
	struct statustimes	*st;
	const char		*v, *uri = evhttp_request_get_uri(req);
	uint64_t		 k;
	size_t			 i;

	if ((v = evhttp_find_header(in, "X-Mock-Status-Times")) == NULL ||
	    evhttp_find_header(in, "X-Mock-Status") == NULL)
		return 0;
	if (parse_u64(v, UINT32_MAX, &k) == -1) {
		reply_error(req, 400, "bad X-Mock-Status-Times", 1);
		return -1;
	}
	for (i = 0; i < m->st_n; i++)
		if (strcmp(m->st[i].st_uri, uri) == 0)
			break;
	if (i == m->st_n) {
		if (m->st == NULL &&
		    (m->st = calloc(MAX_STATUS_URIS, sizeof(*m->st))) == NULL) {
			reply_error(req, 500, "out of memory", 0);
			return -1;
		}
		if (m->st_n == MAX_STATUS_URIS) {
			reply_error(req, 500, "too many X-Mock-Status-Times URIs",
			    1);
			return -1;
		}
		if ((m->st[i].st_uri = strdup(uri)) == NULL) {
			reply_error(req, 500, "out of memory", 0);
			return -1;
		}
		m->st[i].st_n = 0;
		m->st_n++;
	}
	st = &m->st[i];
	if (st->st_n < UINT64_MAX)
		st->st_n++;
	if (st->st_n > k)
		while (evhttp_remove_header(in, "X-Mock-Status") == 0)
			;
	return 0;
}

static void
status_times_free(struct mock *m)
{
	size_t	i;

	for (i = 0; i < m->st_n; i++)
		free(m->st[i].st_uri);
	free(m->st);
	m->st = NULL;
	m->st_n = 0;
}

/* evhttp's callback for every request that was read completely. */
static void
req_cb(struct evhttp_request *req, void *arg)
{
	struct mock			*m = arg;
	struct evhttp_connection	*evcon;
	struct evkeyvalq		*in;
	struct conn			*c;
	struct job			*job;
	struct timeval			 tv;
	const char			*auth, *v;
	char				 hash[65], id[32];
	uint64_t			 delay = 0;
	int64_t				 at, mono;

	/* when it was read: for the log, and for --rate */
	at = clock_ns(CLOCK_REALTIME) / 1000000;
	mono = clock_ns(CLOCK_MONOTONIC);
	evcon = evhttp_request_get_connection(req);
	if ((c = conn_get(m, evcon)) == NULL) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	if (c->id == 0) {
		c->id = ++m->nconn;
		evhttp_connection_set_closecb(evcon, conn_closecb, c);
		log_connection(m, c->id, bufferevent_openssl_get_ssl(
		    evhttp_connection_get_bufferevent(evcon)));
	}
	snprintf(id, sizeof(id), "%" PRIu64, c->id);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "X-Mock-Conn", id);
	/* evhttp's own Date is the real clock's. */
	if (clock_offset_ms != 0) {
		time_t		 t = (time_t)(now_ms() / 1000);
		struct tm	 tm;
		char		 date[64];

		if (gmtime_r(&t, &tm) != NULL && strftime(date, sizeof(date),
		    "%a, %d %b %Y %H:%M:%S GMT", &tm) > 0)
			evhttp_add_header(evhttp_request_get_output_headers(
			    req), "Date", date);
	}

	in = evhttp_request_get_input_headers(req);
	auth = auth_check(m, in);
	hash[0] = '\0';
	if (m->log != NULL)
		sha256_evbuffer(evhttp_request_get_input_buffer(req), hash);
	log_request(m, c, req, auth, hash, at);
	if (strcmp(auth, "ok") != 0) {
		reply_unauthorized(req);
		return;
	}
	if (!rate_admit(m, mono)) {
		log_rate_limited(m, req, at);
		reply_error(req, 429, "Too many requests", 1);
		return;
	}
	if (status_times(m, req) == -1)
		return;

	if ((v = evhttp_find_header(in, "X-Mock-Delay-Ms")) != NULL &&
	    parse_u64(v, MAX_DELAY_MS, &delay) == -1) {
		reply_error(req, 400, "bad X-Mock-Delay-Ms", 1);
		return;
	}
	if (delay == 0) {
		req_act(m, c, req, NULL);
		return;
	}
	if ((job = job_new(m, c, req, JOB_DELAY)) == NULL) {
		reply_error(req, 500, "out of memory", 0);
		return;
	}
	tv.tv_sec = (time_t)(delay / 1000);
	tv.tv_usec = (suseconds_t)(delay % 1000) * 1000;
	evtimer_add(job->ev, &tv);
	conn_watch_close(evcon);
}

/* evhttp's bufferevent factory: a fresh server-side SSL per connection. */
static struct bufferevent *
conn_bevcb(struct event_base *base, void *arg)
{
	struct mock		*m = arg;
	struct bufferevent	*bev;
	struct conn		*c;
	SSL			*ssl;

	if ((ssl = SSL_new(m->ctx)) == NULL) {
		fprintf(stderr, "mocktenant: SSL_new failed\n");
		return NULL;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    SSL_set_ex_data(ssl, m->exidx, c) != 1) {
		free(c);
		SSL_free(ssl);
		fprintf(stderr, "mocktenant: out of memory\n");
		return NULL;
	}
	c->m = m;
	/* frees ssl, and so c, if it fails */
	bev = bufferevent_openssl_socket_new(base, -1, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		fprintf(stderr, "mocktenant: bufferevent_openssl failed\n");
		return NULL;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

/* Pick "http/1.1" if the client offers it; evhttp speaks nothing else. */
static int
tls_alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
    const unsigned char *in, unsigned int inlen, void *arg)
{
	unsigned int	i, n;

	(void)ssl;
	(void)arg;
	for (i = 0; i < inlen; i += 1 + n) {
		n = in[i];
		if (n > inlen - i - 1)
			break;
		if (n == 8 && memcmp(in + i + 1, "http/1.1", 8) == 0) {
			*out = in + i + 1;
			*outlen = 8;
			return SSL_TLSEXT_ERR_OK;
		}
	}
	return SSL_TLSEXT_ERR_NOACK;
}

static void
tls_error(const char *what, const char *path)
{
	unsigned long	e;
	char		buf[256];

	fprintf(stderr, "mocktenant: %s%s%s\n", what, path ? ": " : "",
	    path ? path : "");
	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		fprintf(stderr, "mocktenant:   %s\n", buf);
	}
}

static SSL_CTX *
tls_init(const char *cert, const char *key, const char *client_ca,
    int tls_max_12)
{
	SSL_CTX	*ctx;

	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		tls_error("SSL_CTX_new", NULL);
		return NULL;
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
		tls_error("cannot require TLS 1.2", NULL);
		goto fail;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		tls_error("cannot load certificate chain", cert);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		tls_error("cannot load private key", key);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		tls_error("key does not match certificate", key);
		goto fail;
	}
	if (tls_max_12 && SSL_CTX_set_max_proto_version(ctx,
	    TLS1_2_VERSION) != 1) {
		tls_error("cannot cap TLS at 1.2", NULL);
		goto fail;
	}
	if (client_ca != NULL) {
		STACK_OF(X509_NAME)	*names;

		if (SSL_CTX_load_verify_locations(ctx, client_ca, NULL) != 1 ||
		    (names = SSL_load_client_CA_file(client_ca)) == NULL) {
			tls_error("cannot load the client CA", client_ca);
			goto fail;
		}
		SSL_CTX_set_client_CA_list(ctx, names);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER |
		    SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	}
	SSL_CTX_set_alpn_select_cb(ctx, tls_alpn_cb, NULL);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/* Read the API key: one line, trailing \n or \r\n stripped. */
static int
key_load(struct mock *m, const char *path)
{
	FILE	*f;
	char	 buf[4096];
	size_t	 n;

	if ((f = fopen(path, "r")) == NULL) {
		fprintf(stderr, "mocktenant: %s: %s\n", path, strerror(errno));
		return -1;
	}
	n = fread(buf, 1, sizeof(buf), f);
	if (ferror(f) || !feof(f)) {
		fprintf(stderr, "mocktenant: %s: %s\n", path,
		    ferror(f) ? strerror(errno) : "key file too long");
		fclose(f);
		return -1;
	}
	fclose(f);
	if (n > 0 && buf[n - 1] == '\n')
		n--;
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	if (n == 0 || memchr(buf, '\0', n) != NULL ||
	    memchr(buf, '\n', n) != NULL) {
		fprintf(stderr, "mocktenant: %s: not a one-line key\n", path);
		return -1;
	}
	if ((m->key = malloc(n + 1)) == NULL) {
		fprintf(stderr, "mocktenant: out of memory\n");
		return -1;
	}
	memcpy(m->key, buf, n);
	m->key[n] = '\0';
	m->keylen = n;
	OPENSSL_cleanse(buf, sizeof(buf));
	return 0;
}

/* Write "PORT\n" to path through path.tmp and a rename. */
static int
portfile_write(const char *path, unsigned int port)
{
	FILE	*f;
	char	*tmp;
	size_t	 len = strlen(path) + 5;

	if ((tmp = malloc(len)) == NULL)
		return -1;
	snprintf(tmp, len, "%s.tmp", path);
	if ((f = fopen(tmp, "w")) == NULL)
		goto fail;
	if (fprintf(f, "%u\n", port) < 0) {
		fclose(f);
		goto fail;
	}
	if (fclose(f) == EOF || rename(tmp, path) == -1)
		goto fail;
	free(tmp);
	return 0;
fail:
	fprintf(stderr, "mocktenant: %s: %s\n", tmp, strerror(errno));
	unlink(tmp);
	free(tmp);
	return -1;
}

/* Bind ADDR:PORT ([v6]:PORT too), hand it to evhttp, report the port. */
static int
listen_start(struct mock *m, const char *addr, const char *portfile)
{
	struct sockaddr_storage	 ss;
	struct evconnlistener	*lev;
	char			 host[INET6_ADDRSTRLEN], buf[256];
	ev_socklen_t		 sslen;
	size_t			 n;
	int			 len = sizeof(ss);
	unsigned int		 port;

	/* evutil_parse_sockaddr_port refuses ":0"; no port means 0 to it */
	n = strlen(addr);
	if (n >= sizeof(buf)) {
		fprintf(stderr, "mocktenant: bad --listen address: %s\n", addr);
		return -1;
	}
	memcpy(buf, addr, n + 1);
	if (n > 2 && strcmp(buf + n - 2, ":0") == 0 &&
	    (buf[n - 3] == ']' || (buf[0] != '[' && strchr(buf, ':') == buf +
	    n - 2)))
		buf[n - 2] = '\0';
	memset(&ss, 0, sizeof(ss));
	if (evutil_parse_sockaddr_port(buf, (struct sockaddr *)&ss,
	    &len) == -1) {
		fprintf(stderr, "mocktenant: bad --listen address: %s\n", addr);
		return -1;
	}
	lev = evconnlistener_new_bind(m->base, NULL, NULL,
	    LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
	    128, (struct sockaddr *)&ss, len);
	if (lev == NULL) {
		fprintf(stderr, "mocktenant: cannot listen on %s: %s\n", addr,
		    strerror(errno));
		return -1;
	}
	if (evhttp_bind_listener(m->http, lev) == NULL) {
		evconnlistener_free(lev);
		fprintf(stderr, "mocktenant: evhttp_bind_listener failed\n");
		return -1;
	}
	sslen = sizeof(ss);
	if (getsockname(evconnlistener_get_fd(lev), (struct sockaddr *)&ss,
	    &sslen) == -1) {
		fprintf(stderr, "mocktenant: getsockname: %s\n",
		    strerror(errno));
		return -1;
	}
	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)&ss;

		port = ntohs(sin6->sin6_port);
		if (evutil_inet_ntop(AF_INET6, &sin6->sin6_addr, host,
		    sizeof(host)) == NULL)
			strcpy(host, "?");
		fprintf(stderr, "mocktenant: listening on [%s]:%u\n", host,
		    port);
	} else {
		struct sockaddr_in	*sin = (struct sockaddr_in *)&ss;

		port = ntohs(sin->sin_port);
		if (evutil_inet_ntop(AF_INET, &sin->sin_addr, host,
		    sizeof(host)) == NULL)
			strcpy(host, "?");
		fprintf(stderr, "mocktenant: listening on %s:%u\n", host, port);
	}
	if (portfile != NULL && portfile_write(portfile, port) == -1)
		return -1;
	return 0;
}

static void
signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct mock	*m = arg;

	(void)sig;
	(void)what;
	event_base_loopexit(m->base, NULL);
}

/*
 * Free everything.  evhttp_free frees the connections (conn_closecb
 * detaches their jobs); the jobs left are then ended here, and
 * event_base_free runs the bufferevent finalizers, which free the SSL
 * objects and so the struct conns.
 */
static void
mock_free(struct mock *m)
{
	struct job	*job;

	m->stopping = 1;
	status_times_free(m);
	free(m->xql_start);
	m->xql_start = NULL;
	if (m->http != NULL)
		evhttp_free(m->http);
	m->http = NULL;
	while ((job = m->jobs) != NULL) {
		if (job->req != NULL)
			evhttp_send_reply_end(job->req);
		job->req = NULL;
		job_free(job);
	}
	if (m->base != NULL)
		event_base_free(m->base);
	m->base = NULL;
	if (m->ctx != NULL)
		SSL_CTX_free(m->ctx);
	m->ctx = NULL;
	nonceset_free(&m->nonces);
	free(m->extra);
	m->extra = NULL;
	if (m->key != NULL) {
		OPENSSL_cleanse(m->key, m->keylen);
		free(m->key);
		m->key = NULL;
	}
	if (m->log != NULL && fclose(m->log) == EOF)
		perror("mocktenant: log");
	m->log = NULL;
}

int
main(int argc, char *argv[])
{
	static const struct option	 opts[] = {
		{ "listen",	required_argument, NULL, 'l' },
		{ "cert",	required_argument, NULL, 'c' },
		{ "key",	required_argument, NULL, 'k' },
		{ "key-id",	required_argument, NULL, 'i' },
		{ "key-file",	required_argument, NULL, 'K' },
		{ "mode",	required_argument, NULL, 'm' },
		{ "port-file",	required_argument, NULL, 'p' },
		{ "log",	required_argument, NULL, 'L' },
		{ "files",	required_argument, NULL, 'f' },
		{ "generate",	required_argument, NULL, 'g' },
		{ "extra-keys",	required_argument, NULL, 'E' },
		{ "date-offset", required_argument, NULL, 'D' },
		{ "client-ca",	required_argument, NULL, 'C' },
		{ "tls-max",	required_argument, NULL, 'T' },
		{ "healthcheck-status", required_argument, NULL, 'H' },
		{ "rate",	required_argument, NULL, 'R' },
		{ "rate-burst",	required_argument, NULL, 'B' },
		{ "rate-slack",	required_argument, NULL, 'S' },
		{ "xql-max",	required_argument, NULL, 'X' },
		{ "xql-ms",	required_argument, NULL, 'Y' },
		{ NULL,		0,		   NULL, 0 }
	};
	struct mock			 m;
	struct event			*sigterm = NULL, *sigint = NULL;
	const char			*listenaddr = NULL, *cert = NULL;
	const char			*keypath = NULL, *keyfile = NULL;
	const char			*portfile = NULL, *logpath = NULL;
	const char			*generate = NULL, *client_ca = NULL;
	char				*end;
	long long			 offset;
	uint64_t			 hc, rate = 0, burst = 0, slack = 0;
	int				 ch, rc = 1, tls_max_12 = 0;

	memset(&m, 0, sizeof(m));
	m.mode = MODE_ADVANCED;
	m.xql_ms = 2000;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'l':
			listenaddr = optarg;
			break;
		case 'c':
			cert = optarg;
			break;
		case 'k':
			keypath = optarg;
			break;
		case 'i':
			m.keyid = optarg;
			break;
		case 'K':
			keyfile = optarg;
			break;
		case 'm':
			if (strcmp(optarg, "advanced") == 0)
				m.mode = MODE_ADVANCED;
			else if (strcmp(optarg, "standard") == 0)
				m.mode = MODE_STANDARD;
			else {
				fprintf(stderr, "mocktenant: bad --mode: %s\n",
				    optarg);
				usage();
			}
			break;
		case 'p':
			portfile = optarg;
			break;
		case 'L':
			logpath = optarg;
			break;
		case 'f':
			m.filesdir = optarg;
			break;
		case 'g':
			generate = optarg;
			break;
		case 'E':
			if ((m.extra = file_slurp(optarg)) == NULL)
				return 1;
			break;
		case 'D':
			offset = strtoll(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' ||
			    offset < -86400LL * 365 || offset > 86400LL * 365) {
				fprintf(stderr, "mocktenant: bad --date-offset: "
				    "%s\n", optarg);
				usage();
			}
			clock_offset_ms = (int64_t)offset * 1000;
			break;
		case 'C':
			client_ca = optarg;
			m.client_ca = 1;
			break;
		case 'T':
			if (strcmp(optarg, "1.2") != 0) {
				fprintf(stderr, "mocktenant: bad --tls-max: %s\n",
				    optarg);
				usage();
			}
			tls_max_12 = 1;
			break;
		case 'H':
			if (parse_u64(optarg, 599, &hc) == -1 || hc < 200) {
				fprintf(stderr, "mocktenant: bad "
				    "--healthcheck-status: %s\n", optarg);
				usage();
			}
			m.hc_status = (int)hc;
			break;
		case 'R':
			if (parse_u64(optarg, 100000, &rate) == -1 ||
			    rate == 0) {
				fprintf(stderr, "mocktenant: bad --rate: %s\n",
				    optarg);
				usage();
			}
			break;
		case 'B':
			if (parse_u64(optarg, 100000, &burst) == -1 ||
			    burst == 0) {
				fprintf(stderr, "mocktenant: bad --rate-burst: "
				    "%s\n", optarg);
				usage();
			}
			break;
		case 'S':
			if (parse_u64(optarg, 60000, &slack) == -1) {
				fprintf(stderr, "mocktenant: bad --rate-slack: "
				    "%s\n", optarg);
				usage();
			}
			break;
		case 'X':
			if (parse_u64(optarg, 1000, &hc) == -1 || hc == 0) {
				fprintf(stderr, "mocktenant: bad --xql-max: "
				    "%s\n", optarg);
				usage();
			}
			m.xql_max = (size_t)hc;
			break;
		case 'Y':
			if (parse_u64(optarg, 3600000, &m.xql_ms) == -1) {
				fprintf(stderr, "mocktenant: bad --xql-ms: "
				    "%s\n", optarg);
				usage();
			}
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	if (rate == 0 && (burst != 0 || slack != 0)) {
		fprintf(stderr, "mocktenant: --rate-burst and --rate-slack"
		    " need --rate\n");
		usage();
	}
	if (rate != 0) {
		if (burst == 0)
			burst = rate;
		/* ns: 1000/N ms is off by less than 1 ns a request */
		m.rate_t = (int64_t)(1000000000 / rate);
		m.rate_tau = (int64_t)(burst - 1) * m.rate_t +
		    (int64_t)slack * 1000000;
	}
	if (generate != NULL)
		return pattern_generate(generate);
	if (listenaddr == NULL || cert == NULL || keypath == NULL ||
	    m.keyid == NULL || keyfile == NULL) {
		fprintf(stderr, "mocktenant: --listen, --cert, --key, --key-id"
		    " and --key-file are required\n");
		usage();
	}

	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
		perror("mocktenant: signal");
		return 1;
	}
	if (key_load(&m, keyfile) == -1)
		goto done;
	if (logpath != NULL && (m.log = fopen(logpath, "a")) == NULL) {
		fprintf(stderr, "mocktenant: %s: %s\n", logpath,
		    strerror(errno));
		goto done;
	}
	m.exidx = SSL_get_ex_new_index(0, NULL, NULL, NULL, conn_exfree);
	if (m.exidx < 0) {
		tls_error("SSL_get_ex_new_index", NULL);
		goto done;
	}
	if ((m.ctx = tls_init(cert, keypath, client_ca, tls_max_12)) == NULL)
		goto done;
	if ((m.base = event_base_new()) == NULL ||
	    (m.http = evhttp_new(m.base)) == NULL) {
		fprintf(stderr, "mocktenant: cannot set up libevent\n");
		goto done;
	}
	evhttp_set_bevcb(m.http, conn_bevcb, &m);
	evhttp_set_gencb(m.http, req_cb, &m);
	evhttp_set_max_body_size(m.http, MAX_BODY);
	evhttp_set_max_headers_size(m.http, MAX_HEADERS);
	evhttp_set_default_content_type(m.http, NULL);
	evhttp_set_allowed_methods(m.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	    EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
	    EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);

	if ((sigterm = evsignal_new(m.base, SIGTERM, signal_cb, &m)) == NULL ||
	    (sigint = evsignal_new(m.base, SIGINT, signal_cb, &m)) == NULL ||
	    evsignal_add(sigterm, NULL) == -1 ||
	    evsignal_add(sigint, NULL) == -1) {
		fprintf(stderr, "mocktenant: cannot catch signals\n");
		goto done;
	}
	if (listen_start(&m, listenaddr, portfile) == -1)
		goto done;

	if (event_base_dispatch(m.base) == -1)
		fprintf(stderr, "mocktenant: event loop failed\n");
	else
		rc = 0;
done:
	if (sigterm != NULL)
		event_free(sigterm);
	if (sigint != NULL)
		event_free(sigint);
	mock_free(&m);
	libevent_global_shutdown();
	return rc;
}
