/*
 * xql.c: what the governor needs to know of XQL calls to hold the
 * tenant's 4 running queries: start_xql_query takes a slot, and its
 * answer names the query; get_query_results frees the slot once it
 * reports a final status. The answers are small JSON documents, read with
 * json-c from a copy of the bytes as they stream by (gzip inflated with
 * zlib): what the client receives is never changed.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <json-c/json.h>
#include <zlib.h>

#include "xdrproxy.h"

/* An inflated answer longer than this is not read. */
#define XQL_INFLATE_MAX		(1024 * 1024)

/* Which XQL call a canonical path is (a trailing '/' or not). */
enum xql_kind
xql_kind(const char *path, size_t len)
{
	static const char	 start[] = "/xql/start_xql_query";
	static const char	 results[] = "/xql/get_query_results";

	if (len > 0 && path[len - 1] == '/')
		len--;
	if (len >= sizeof(start) - 1 && strncasecmp(path + len -
	    (sizeof(start) - 1), start, sizeof(start) - 1) == 0)
		return XQL_START;
	if (len >= sizeof(results) - 1 && strncasecmp(path + len -
	    (sizeof(results) - 1), results, sizeof(results) - 1) == 0)
		return XQL_RESULTS;
	return XQL_NONE;
}

/* A JSON object's member path (NULL-terminated names) as a string. */
static const char *
xql_string_at(json_object *o, const char *const *names, size_t *len)
{
	json_object	*v = o;

	for (; *names != NULL; names++)
		if (!json_object_is_type(v, json_type_object) ||
		    !json_object_object_get_ex(v, *names, &v))
			return NULL;
	if (!json_object_is_type(v, json_type_string))
		return NULL;
	*len = (size_t)json_object_get_string_len(v);
	return json_object_get_string(v);
}

/* The query id a get_query_results request asks about; NULL if none. */
char *
xql_request_id(const char *body, size_t len)
{
	static const char *const	 path[] = { "request_data", "query_id",
					    NULL };
	json_tokener			*tok;
	json_object			*o;
	const char			*id;
	char				*copy = NULL;
	size_t				 idlen;

	if (len == 0 || len > XQL_CAPTURE_MAX ||
	    (tok = json_tokener_new()) == NULL)
		return NULL;
	o = json_tokener_parse_ex(tok, body, (int)len);
	if (o != NULL && (id = xql_string_at(o, path, &idlen)) != NULL &&
	    idlen > 0 && idlen < 128 && memchr(id, '\0', idlen) == NULL)
		copy = strndup(id, idlen);
	json_object_put(o);
	json_tokener_free(tok);
	return copy;
}

/* gzip or zlib bytes inflated into out (at most XQL_INFLATE_MAX); 0/-1. */
static int
xql_inflate(const unsigned char *in, size_t len, struct evbuffer *out)
{
	z_stream	 zs;
	unsigned char	 buf[16384];
	int		 rc;

	memset(&zs, 0, sizeof(zs));
	/* 15 + 32: a gzip or zlib header, whichever it has. */
	if (inflateInit2(&zs, 15 + 32) != Z_OK)
		return -1;
	zs.next_in = (unsigned char *)(uintptr_t)in;
	zs.avail_in = (uInt)len;
	do {
		zs.next_out = buf;
		zs.avail_out = sizeof(buf);
		rc = inflate(&zs, Z_NO_FLUSH);
		if (rc != Z_OK && rc != Z_STREAM_END)
			break;
		evbuffer_add(out, buf, sizeof(buf) - zs.avail_out);
		if (evbuffer_get_length(out) > XQL_INFLATE_MAX)
			break;
	} while (rc != Z_STREAM_END && zs.avail_out == 0);
	inflateEnd(&zs);
	return rc == Z_STREAM_END ? 0 : -1;
}

/*
 * The answer the tenant gave (status 200), whole: start_xql_query's
 * {"reply":"<id>"} gives its slot that query; get_query_results's
 * {"reply":{"status":S,...}} with S other than PENDING frees the query's
 * slot. gzip says the bytes are gzip (Content-Encoding). Worker thread.
 */
void
xql_answer(struct request *req, enum xql_kind kind, const char *id,
    const unsigned char *body, size_t len, int gzip)
{
	static const char *const	 status[] = { "reply", "status", NULL };
	static const char *const	 reply[] = { "reply", NULL };
	struct evbuffer			*plain = NULL;
	json_tokener			*tok;
	json_object			*o = NULL;
	const char			*s;
	size_t				 slen;

	if (gzip) {
		if ((plain = evbuffer_new()) == NULL ||
		    xql_inflate(body, len, plain) == -1)
			goto done;
		len = evbuffer_get_length(plain);
		body = evbuffer_pullup(plain, -1);
	}
	if (len == 0 || body == NULL || (tok = json_tokener_new()) == NULL)
		goto done;
	o = json_tokener_parse_ex(tok, (const char *)body, (int)len);
	json_tokener_free(tok);
	if (o == NULL)
		goto done;
	if (kind == XQL_START) {
		if ((s = xql_string_at(o, reply, &slen)) != NULL && slen > 0 &&
		    memchr(s, '\0', slen) == NULL)
			governor_xql_started(req, s, slen);
	} else if (kind == XQL_RESULTS && id != NULL) {
		if ((s = xql_string_at(o, status, &slen)) != NULL &&
		    !(slen == 7 && memcmp(s, "PENDING", 7) == 0))
			governor_xql_final(req, id, strlen(id));
	}
done:
	json_object_put(o);
	if (plain != NULL)
		evbuffer_free(plain);
}
