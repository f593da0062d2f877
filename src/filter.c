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

/* Headers never forwarded to the tenant: credentials, framing, hop-by-hop. */
static const char *const filter_request_drop[] = {
	"Authorization", "Proxy-Authorization", "Connection", "Keep-Alive",
	"TE", "Trailer", "Upgrade", "Proxy-Connection", "Transfer-Encoding",
	"Content-Length", "Host", "Expect"
};

/* Headers never passed back to the client: hop-by-hop and framing. */
static const char *const filter_response_drop[] = {
	"Connection", "Keep-Alive", "TE", "Trailer", "Transfer-Encoding",
	"Upgrade", "Proxy-Connection"
};

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
 * A header name that is not a token counts as ambiguous too.
 */
int
filter_framing(const struct evkeyvalq *h, int *has_body, const char **why)
{
	const struct evkeyval	*kv;
	int			 ncl = 0, nte = 0;

	*has_body = 0;
	TAILQ_FOREACH(kv, h, next) {
		/*
		 * "Authorization " is not "Authorization" to the filters, but
		 * a lenient server downstream could take it for one.
		 */
		if (!filter_is_token(kv->key)) {
			*why = "malformed header name";
			return -1;
		}
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
 * preflight. Browsers mark such requests with Origin or Sec-Fetch-*, which
 * scripts cannot forge away; refuse them. Returns 0, or -1 with *which set.
 */
int
filter_browser(const struct evkeyvalq *h, const char **which)
{
	const struct evkeyval	*kv;

	TAILQ_FOREACH(kv, h, next) {
		if (strcasecmp(kv->key, "Origin") == 0 ||
		    strncasecmp(kv->key, "Sec-Fetch-", 10) == 0) {
			*which = kv->key;
			return -1;
		}
	}
	return 0;
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

/*
 * Which client headers go to the tenant: conn is the client's Connection
 * value (or NULL); the headers it names are hop-by-hop too.
 */
enum filter_verdict
filter_request_header(const char *name, const char *conn)
{
	if (strncasecmp(name, "x-xdr-", 6) == 0 ||
	    filter_in(name, filter_request_drop,
	    sizeof(filter_request_drop) / sizeof(filter_request_drop[0])) ||
	    filter_token_listed(conn, name))
		return FILTER_DROP;
	return FILTER_PASS;
}

/* Which tenant headers go back to the client (framing is evhttp's job). */
enum filter_verdict
filter_response_header(const char *name, const char *conn)
{
	if (filter_in(name, filter_response_drop,
	    sizeof(filter_response_drop) / sizeof(filter_response_drop[0])) ||
	    filter_token_listed(conn, name))
		return FILTER_DROP;
	return FILTER_PASS;
}
