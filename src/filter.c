/*
 * filter.c: what may pass between a local client and the tenant. Pure
 * checks over parsed requests: message framing, requests a browser could
 * make on a visitor's behalf, the Host name, the request target, and which
 * headers are forwarded in each direction.
 */
#include "config.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include <event2/keyvalq_struct.h>

#include "xdrproxy.h"

/*
 * Headers that never cross xdrproxy, in either direction: hop-by-hop ones
 * (RFC 9110 section 7.6.1) and framing, which xdrproxy decides itself from
 * what it will send (RFC 9112 section 6.3). Towards the tenant, also the
 * client's credentials, Host and Expect: xdrproxy sends its own.
 */
static const char *const filter_hop_by_hop[] = {
	"Connection", "Keep-Alive", "TE", "Trailer", "Transfer-Encoding",
	"Upgrade", "Proxy-Connection", "Content-Length"
};
static const char *const filter_to_tenant_drop[] = {
	"Authorization", "Proxy-Authorization", "Host", "Expect"
};

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))

static int
filter_in(const char *name, const char *const *list, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if (strcasecmp(name, list[i]) == 0)
			return 1;
	return 0;
}

static int
filter_is_digits(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

/* Is s an RFC 9110 token (a valid header name)? */
static int
filter_is_token(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) &&
		    strchr("!#$%&'*+-.^_`|~", *s) == NULL)
			return 0;
	return 1;
}

/*
 * Reject ambiguous request framing (a request smuggling vector): both
 * Content-Length and Transfer-Encoding, Content-Length repeated or not a
 * plain number, or a Transfer-Encoding other than "chunked". Returns 0, or
 * -1 with *why set; such a request is answered 400 and the connection closed.
 */
int
filter_framing(const struct evkeyvalq *h, int *has_body, const char **why)
{
	const struct evkeyval	*kv;
	int			 ncl = 0, nte = 0;

	*has_body = 0;
	TAILQ_FOREACH(kv, h, next) {
		if (strcasecmp(kv->key, "Content-Length") == 0) {
			if (++ncl > 1) {
				*why = "repeated Content-Length";
				return -1;
			}
			if (!filter_is_digits(kv->value) ||
			    strlen(kv->value) > 18) {
				*why = "malformed Content-Length";
				return -1;
			}
		} else if (strcasecmp(kv->key, "Transfer-Encoding") == 0) {
			if (++nte > 1) {
				*why = "repeated Transfer-Encoding";
				return -1;
			}
			if (strcasecmp(kv->value, "chunked") != 0) {
				*why = "Transfer-Encoding other than chunked";
				return -1;
			}
		}
	}
	if (ncl && nte) {
		*why = "both Content-Length and Transfer-Encoding";
		return -1;
	}
	*has_body = ncl || nte;
	return 0;
}

/*
 * A web page can make a visitor's browser POST to 127.0.0.1 without any
 * preflight. Browsers mark such requests with Origin or Sec-Fetch-Site,
 * -Dest or -User, which a page cannot remove. Sec-Fetch-Mode alone is not
 * a browser's mark: Node's fetch (undici) sends it on every request.
 * Returns 0, or -1 with *which set.
 */
static const char *const filter_browser_marks[] = {
	"Origin", "Sec-Fetch-Site", "Sec-Fetch-Dest", "Sec-Fetch-User"
};

int
filter_browser(const struct evkeyvalq *h, const char **which)
{
	const struct evkeyval	*kv;
	size_t			 i;

	TAILQ_FOREACH(kv, h, next) {
		for (i = 0; i < nitems(filter_browser_marks); i++) {
			if (strcasecmp(kv->key, filter_browser_marks[i]) == 0) {
				*which = filter_browser_marks[i];
				return -1;
			}
		}
	}
	return 0;
}

/*
 * RFC 9110 section 5.5: a field value holds no control bytes but HTAB.
 * (A NUL never gets here: evhttp's strings end at one, so the raw bytes
 * are checked as they arrive, see server.c.)
 */
int
filter_header_value_ok(const char *v)
{
	for (; *v != '\0'; v++)
		if (((unsigned char)*v < 0x20 && *v != '\t') || *v == 0x7f)
			return 0;
	return 1;
}

/*
 * The host name of a Host header value, without port or IPv6 brackets and
 * without one trailing dot: "[::1]:8080" -> "::1". Returns 0 or -1.
 */
int
filter_host_name(const char *host, char *out, size_t size)
{
	const char	*end, *p;
	size_t		 len;

	if (*host == '[') {
		host++;
		if ((end = strchr(host, ']')) == NULL)
			return -1;
		p = end + 1;
	} else {
		end = host + strcspn(host, ":");
		p = end;
	}
	if (*p == ':') {
		if (!filter_is_digits(p + 1) || strlen(p + 1) > 5)
			return -1;
	} else if (*p != '\0')
		return -1;
	len = (size_t)(end - host);
	if (len > 0 && host[len - 1] == '.')
		len--;
	if (len == 0 || len >= size)
		return -1;
	for (p = host; p < host + len; p++)
		if (!isalnum((unsigned char)*p) && strchr(".-_:%", *p) == NULL)
			return -1;
	memcpy(out, host, len);
	out[len] = '\0';
	return 0;
}

int
filter_host_allowed(const char *name, const char *const *names, size_t n)
{
	return filter_in(name, names, n);
}

/*
 * Is this path segment (len bytes) ".", "..", or one spelled with %2e?
 * Path parameters do not count: some servers read "..;x" as "..".
 */
static int
filter_dot_segment(const char *s, size_t len)
{
	size_t	 dots = 0;

	while (len > 0 && *s != ';') {
		if (*s == '.') {
			s++;
			len--;
		} else if (len >= 3 && s[0] == '%' && s[1] == '2' &&
		    (s[2] == 'e' || s[2] == 'E')) {
			s += 3;
			len -= 3;
		} else
			return 0;
		dots++;
	}
	return dots == 1 || dots == 2;
}

/*
 * Check a request target. It must be origin-form ("/path?query") of
 * visible ASCII, without dot segments or encoded slashes (which a server
 * could resolve to a path outside the allowed prefixes), and its path must
 * start with one of the allowed prefixes. Returns 0, or -1 with *status
 * (400 or 403) and *why set.
 */
int
filter_uri(const char *uri, const struct strlist *allow, int *status,
    const char **why)
{
	const char	*p, *seg;
	size_t		 pathlen, i;

	*status = 400;
	if (uri[0] != '/') {
		*why = "request target must be a path (origin-form)";
		return -1;
	}
	for (p = uri; *p != '\0'; p++) {
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f ||
		    *p == '#') {
			*why = "request target has bytes that must be "
			    "percent-encoded";
			return -1;
		}
	}
	pathlen = strcspn(uri, "?");
	for (p = uri; p < uri + pathlen; p++) {
		if (*p == '\\' || (p[0] == '%' && p[1] == '2' &&
		    (p[2] == 'f' || p[2] == 'F')) || (p[0] == '%' &&
		    p[1] == '5' && (p[2] == 'c' || p[2] == 'C'))) {
			*why = "path has an encoded slash or a backslash";
			return -1;
		}
	}
	for (seg = uri + 1; seg <= uri + pathlen; seg = p + 1) {
		p = memchr(seg, '/', (size_t)(uri + pathlen - seg));
		if (p == NULL)
			p = uri + pathlen;
		if (filter_dot_segment(seg, (size_t)(p - seg))) {
			*why = "path has a dot segment";
			return -1;
		}
	}
	for (i = 0; i < allow->sl_n; i++) {
		if (strncmp(uri, allow->sl_v[i], strlen(allow->sl_v[i])) == 0 &&
		    strlen(allow->sl_v[i]) <= pathlen)
			return 0;
	}
	*status = 403;
	*why = "path is not under an allowed prefix (allow_path)";
	return -1;
}

/* Is name one of the comma-separated tokens of a Connection value? */
int
filter_token_listed(const char *list, const char *name)
{
	const char	*p = list;
	size_t		 len, namelen = strlen(name);

	if (list == NULL)
		return 0;
	while (*p != '\0') {
		p += strspn(p, " \t,");
		len = strcspn(p, " \t,");
		if (len == namelen && strncasecmp(p, name, len) == 0)
			return 1;
		p += len;
	}
	return 0;
}

/* Is name listed in any Connection header of h (NULL: none)? */
static int
filter_connection_lists(const struct evkeyvalq *h, const char *name)
{
	const struct evkeyval	*kv;

	if (h == NULL)
		return 0;
	TAILQ_FOREACH(kv, h, next)
		if (strcasecmp(kv->key, "Connection") == 0 &&
		    filter_token_listed(kv->value, name))
			return 1;
	return 0;
}

/*
 * Does header name of a message cross xdrproxy in direction dir? msg is
 * the message's header list when it has a Connection header (the headers
 * it names are hop-by-hop too), else NULL.
 */
enum filter_verdict
filter_header(enum filter_dir dir, const char *name,
    const struct evkeyvalq *msg)
{
	if (filter_in(name, filter_hop_by_hop, nitems(filter_hop_by_hop)) ||
	    filter_connection_lists(msg, name))
		return FILTER_DROP;
	if (dir == FILTER_TO_TENANT && (strncasecmp(name, "x-xdr-", 6) == 0 ||
	    filter_in(name, filter_to_tenant_drop,
	    nitems(filter_to_tenant_drop))))
		return FILTER_DROP;
	/*
	 * From the tenant: names the client could misread ("Content-Length
	 * :"), and xdrproxy's own, which the tenant must not pose as.
	 */
	if (dir == FILTER_TO_CLIENT && (!filter_is_token(name) ||
	    strncasecmp(name, "x-xdrproxy-", 11) == 0))
		return FILTER_DROP;
	return FILTER_PASS;
}

/*
 * Whether a request parsed by evhttp may go to the tenant at all: every
 * admission rule, in the order that gives the most useful answer. Returns
 * 0 (with fs_has_body set), or -1 with fs_status, fs_code and fs_why set;
 * fs_close asks for the connection to be closed after the answer, when
 * what follows the request on it cannot be trusted.
 */
int
filter_request(const struct filter_req *fq, struct filter_res *fs)
{
	const struct evkeyval	*kv;
	const char		*host = NULL, *why;
	char			 name[256];
	size_t			 nhost = 0, count = 0;
	int			 has_body, status;

	memset(fs, 0, sizeof(*fs));
	fs->fs_status = 400;
	fs->fs_code = "bad_request";
	fs->fs_close = 1;
	if (fq->fq_head_bad) {
		fs->fs_why = fq->fq_head_bad == 1 ? "request line or header "
		    "with a NUL or control byte" : fq->fq_head_bad == 2 ?
		    "malformed chunked body (chunk extensions are not "
		    "supported)" : "out of memory to check the request";
		return -1;
	}
	TAILQ_FOREACH(kv, fq->fq_headers, next) {
		count++;
		if (!filter_is_token(kv->key)) {
			fs->fs_why = "malformed header name";
			return -1;
		}
		if (!filter_header_value_ok(kv->value)) {
			fs->fs_why = "header value with a control byte";
			fs->fs_which = kv->key;
			return -1;
		}
		if (strcasecmp(kv->key, "Host") == 0) {
			host = kv->value;
			nhost++;
		}
	}
	if (fq->fq_max_count > 0 && count > fq->fq_max_count) {
		fs->fs_status = 431;
		fs->fs_code = "headers_too_large";
		fs->fs_why = "more header lines than max_header_count";
		return -1;
	}
	if (filter_framing(fq->fq_headers, &has_body, &why) == -1) {
		fs->fs_why = why;
		return -1;
	}
	fs->fs_has_body = has_body;
	/* RFC 9112 section 3.2: one Host, and HTTP/1.1 must send it. */
	if (nhost > 1) {
		fs->fs_why = "more than one Host header";
		return -1;
	}
	if (nhost == 0 && (fq->fq_major > 1 || (fq->fq_major == 1 &&
	    fq->fq_minor >= 1))) {
		fs->fs_why = "HTTP/1.1 request without a Host header";
		return -1;
	}
	/*
	 * evhttp reads no body for these: it would be taken for a request.
	 * After CONNECT, evhttp expects a tunnel: close.
	 */
	fs->fs_close = has_body || fq->fq_cmd == EVHTTP_REQ_CONNECT;
	if (fq->fq_cmd == EVHTTP_REQ_CONNECT || fq->fq_cmd == EVHTTP_REQ_TRACE) {
		fs->fs_status = 405;
		fs->fs_code = "method_not_allowed";
		fs->fs_why = fq->fq_cmd == EVHTTP_REQ_CONNECT ?
		    "CONNECT is not forwarded" : "TRACE is not forwarded";
		return -1;
	}
	if (has_body && fq->fq_cmd == EVHTTP_REQ_HEAD) {
		fs->fs_why = "HEAD with a body";
		return -1;
	}
	fs->fs_close = 0;
	if (filter_browser(fq->fq_headers, &fs->fs_which) == -1) {
		fs->fs_status = 403;
		fs->fs_code = "browser_request_refused";
		fs->fs_why = "the request carries a web browser's mark; refused";
		return -1;
	}
	if (host != NULL) {
		if (filter_host_name(host, name, sizeof(name)) == -1) {
			fs->fs_why = "malformed Host header";
			return -1;
		}
		if (!filter_host_allowed(name, fq->fq_names, fq->fq_nnames) &&
		    (fq->fq_local == NULL || strcasecmp(name,
		    fq->fq_local) != 0)) {
			fs->fs_status = 421;
			fs->fs_code = "misdirected_host";
			fs->fs_why = "Host is not a name of this proxy (add it "
			    "with server_name if it is)";
			return -1;
		}
	}
	if (filter_uri(fq->fq_uri, fq->fq_allow, &status, &why) == -1) {
		fs->fs_status = status;
		fs->fs_code = status == 403 ? "path_not_allowed" :
		    "bad_request";
		fs->fs_why = why;
		return -1;
	}
	return 0;
}
