/*
 * fuzz_filter.c: libFuzzer target for the request checks of filter.c:
 * filter_request() (request target, Host, header names and values,
 * framing, browser marks), and filter_host_name(), filter_uri() and
 * filter_header() on their own. The input is
 *	METHOD VERSION FLAGS URI '\n' (NAME ':' VALUE '\n')*
 * one byte each for the first three (see fuzz_method, fuzz_version and
 * fuzz_flags); header lists are built by hand, so that bytes evhttp would
 * refuse still reach the filter.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/keyvalq_struct.h>

#include "xdrproxy.h"

int	 LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define FUZZ_PREFIX	"/public_api/"
#define FUZZ_LOCAL	"192.0.2.7"

static const char *const fuzz_names[] = { "localhost", "127.0.0.1", "::1" };
static char		 fuzz_prefix[] = FUZZ_PREFIX;
static char		*fuzz_allow_v[] = { fuzz_prefix };
static const struct strlist fuzz_allow = { fuzz_allow_v, 1 };
static const struct strlist fuzz_allow_none = { NULL, 0 };

#define FUZZ_CHECK(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "fuzz_filter: %s:%d: %s\n", __FILE__,	\
		    __LINE__, #cond);					\
		abort();						\
	}								\
} while (0)

/* 'G'ET 'P'OST 'H'EAD p'U't 'D'ELETE 'O'PTIONS 'T'RACE 'C'ONNECT p'A'TCH */
static enum evhttp_cmd_type
fuzz_method(uint8_t b)
{
	static const char		 letters[] = "GPHUDOTCA";
	static const enum evhttp_cmd_type cmds[] = {
		EVHTTP_REQ_GET, EVHTTP_REQ_POST, EVHTTP_REQ_HEAD,
		EVHTTP_REQ_PUT, EVHTTP_REQ_DELETE, EVHTTP_REQ_OPTIONS,
		EVHTTP_REQ_TRACE, EVHTTP_REQ_CONNECT, EVHTTP_REQ_PATCH
	};
	const char			*p;

	if (b != '\0' && (p = strchr(letters, b)) != NULL)
		return cmds[p - letters];
	return cmds[b % (sizeof(cmds) / sizeof(cmds[0]))];
}

/* '0' HTTP/1.0, '1' HTTP/1.1, '2' HTTP/2.0, '9' HTTP/0.9, else nibbles. */
static void
fuzz_version(uint8_t b, int *major, int *minor)
{
	switch (b) {
	case '0':
	case '1':
		*major = 1;
		*minor = b - '0';
		break;
	case '2':
		*major = 2;
		*minor = 0;
		break;
	case '9':
		*major = 0;
		*minor = 9;
		break;
	default:
		*major = b >> 4;
		*minor = b & 0x0f;
	}
}

/* '!' raw control byte seen, 'W' wildcard listener, '1'-'9' header limit. */
static void
fuzz_flags(uint8_t b, struct filter_req *fq)
{
	fq->fq_head_bad = b == '!';
	fq->fq_local = b == 'W' ? FUZZ_LOCAL : NULL;
	fq->fq_max_count = b >= '1' && b <= '9' ? (size_t)(b - '0') : 0;
}

static char *
fuzz_strndup(const uint8_t *p, size_t len)
{
	char	*s;

	if ((s = malloc(len + 1)) == NULL)
		abort();
	memcpy(s, p, len);
	s[len] = '\0';	/* an embedded NUL ends it early, as in evhttp */
	return s;
}

/* "NAME:VALUE" (optional blanks after the colon), or a NAME alone. */
static void
fuzz_add_header(struct evkeyvalq *h, const uint8_t *p, size_t len)
{
	struct evkeyval	*kv;
	const uint8_t	*colon;
	size_t		 nlen;

	if ((kv = calloc(1, sizeof(*kv))) == NULL)
		abort();
	if ((colon = memchr(p, ':', len)) == NULL) {
		kv->key = fuzz_strndup(p, len);
		kv->value = fuzz_strndup(p, 0);
	} else {
		nlen = (size_t)(colon - p);
		kv->key = fuzz_strndup(p, nlen);
		p += nlen + 1;
		len -= nlen + 1;
		while (len > 0 && (*p == ' ' || *p == '\t')) {
			p++;
			len--;
		}
		kv->value = fuzz_strndup(p, len);
	}
	TAILQ_INSERT_TAIL(h, kv, next);
}

static void
fuzz_free_headers(struct evkeyvalq *h)
{
	struct evkeyval	*kv;

	while ((kv = TAILQ_FIRST(h)) != NULL) {
		TAILQ_REMOVE(h, kv, next);
		free(kv->key);
		free(kv->value);
		free(kv);
	}
}

/* A path that got by has no "." or ".." segment spelled out. */
static int
fuzz_has_dot_segment(const char *uri)
{
	size_t	 pathlen = strcspn(uri, "?"), i, len;

	for (i = 0; i < pathlen; i += len + 1) {
		len = strcspn(uri + i, "/?");
		if ((len == 1 && uri[i] == '.') ||
		    (len == 2 && uri[i] == '.' && uri[i + 1] == '.'))
			return 1;
	}
	return 0;
}

static void
fuzz_host_name(const char *host, size_t size)
{
	char	*out;
	size_t	 len = strlen(host);

	/* Exactly size bytes, so that ASan sees one written past them. */
	if ((out = malloc(size)) == NULL)
		abort();
	if (filter_host_name(host, out, size) == 0) {
		FUZZ_CHECK(strlen(out) < size);
		FUZZ_CHECK(strlen(out) > 0 && strlen(out) <= len);
		FUZZ_CHECK(strchr(out, ']') == NULL);
	}
	free(out);
}

static void
fuzz_uri(const char *uri)
{
	const char	*why = NULL;
	const unsigned char *p;
	int		 status = 0;

	if (filter_uri(uri, &fuzz_allow, &status, &why) == 0) {
		FUZZ_CHECK(strncmp(uri, FUZZ_PREFIX, strlen(FUZZ_PREFIX)) ==
		    0);
		FUZZ_CHECK(!fuzz_has_dot_segment(uri));
		for (p = (const unsigned char *)uri; *p != '\0'; p++)
			FUZZ_CHECK(*p > 0x20 && *p < 0x7f && *p != '#');
	} else
		FUZZ_CHECK((status == 400 || status == 403) && why != NULL);
	/* Nothing is allowed without a prefix. */
	FUZZ_CHECK(filter_uri(uri, &fuzz_allow_none, &status, &why) == -1);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct evkeyvalq	 headers;
	struct filter_req	 fq;
	struct filter_res	 fs;
	struct evkeyval		*kv;
	const uint8_t		*p, *end, *nl;
	char			*uri;
	size_t			 nhost = 0;
	int			 rc;

	if (size < 3)
		return 0;
	memset(&fq, 0, sizeof(fq));
	fq.fq_cmd = fuzz_method(data[0]);
	fuzz_version(data[1], &fq.fq_major, &fq.fq_minor);
	fuzz_flags(data[2], &fq);
	p = data + 3;
	end = data + size;
	if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
		nl = end;
	uri = fuzz_strndup(p, (size_t)(nl - p));
	TAILQ_INIT(&headers);
	for (p = nl + 1; p < end; p = nl + 1) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		fuzz_add_header(&headers, p, (size_t)(nl - p));
	}
	fq.fq_headers = &headers;
	fq.fq_uri = uri;
	fq.fq_allow = &fuzz_allow;
	fq.fq_names = fuzz_names;
	fq.fq_nnames = sizeof(fuzz_names) / sizeof(fuzz_names[0]);

	rc = filter_request(&fq, &fs);
	if (rc == 0) {
		/* What gets by: a clean target under the prefix, one Host. */
		FUZZ_CHECK(!fq.fq_head_bad);
		FUZZ_CHECK(fq.fq_cmd != EVHTTP_REQ_CONNECT &&
		    fq.fq_cmd != EVHTTP_REQ_TRACE);
		FUZZ_CHECK(strncmp(uri, FUZZ_PREFIX, strlen(FUZZ_PREFIX)) ==
		    0);
		FUZZ_CHECK(!fuzz_has_dot_segment(uri));
		TAILQ_FOREACH(kv, &headers, next) {
			FUZZ_CHECK(kv->key[0] != '\0');
			FUZZ_CHECK(strpbrk(kv->key, " \t\r:") == NULL);
			FUZZ_CHECK(strpbrk(kv->value, "\r\n") == NULL);
			if (strcasecmp(kv->key, "Host") == 0)
				nhost++;
			FUZZ_CHECK(strcasecmp(kv->key, "Origin") != 0);
		}
		FUZZ_CHECK(nhost <= 1);
	} else {
		FUZZ_CHECK(rc == -1);
		FUZZ_CHECK(fs.fs_status >= 400 && fs.fs_status <= 499);
		FUZZ_CHECK(fs.fs_code != NULL && fs.fs_why != NULL);
	}

	/* The pieces on their own. */
	fuzz_uri(uri);
	TAILQ_FOREACH(kv, &headers, next) {
		fuzz_host_name(kv->value, 1 + (strlen(kv->key) % 64));
		fuzz_host_name(kv->value, 256);
		(void)filter_header(FILTER_TO_TENANT, kv->key, &headers);
		(void)filter_header(FILTER_TO_CLIENT, kv->key, NULL);
		(void)filter_header_value_ok(kv->value);
	}
	fuzz_free_headers(&headers);
	free(uri);
	return 0;
}
