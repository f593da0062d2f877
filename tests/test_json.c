/* test_json.c: JSON string literals stay valid whatever the bytes; ids. */
#include "config.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "xdrproxy.h"
#include "unit.h"

static char *
quote(const char *s, size_t len)
{
	struct evbuffer	*b = evbuffer_new();
	char		*out;
	size_t		 n;

	json_add_string(b, s, len);
	n = evbuffer_get_length(b);
	out = calloc(1, n + 1);
	evbuffer_remove(b, out, n);
	evbuffer_free(b);
	return out;
}

#define QUOTED(in, want) do {						\
	char *q = quote(in, sizeof(in) - 1);				\
	CHECK_STR(q, want);						\
	free(q);							\
} while (0)

/* json_add_id(v) gives want. */
#define ID(v, want) do {						\
	struct evbuffer *ib = evbuffer_new();				\
	char io[32];							\
	memset(io, 0, sizeof(io));					\
	json_add_id(ib, (v));						\
	evbuffer_remove(ib, io, sizeof(io) - 1);			\
	CHECK_STR(io, want);						\
	evbuffer_free(ib);						\
} while (0)

int
main(void)
{
	struct evbuffer	*b;
	char		 out[16];

	QUOTED("", "\"\"");
	QUOTED("/public_api/v1/x", "\"/public_api/v1/x\"");
	QUOTED("a\"b\\c", "\"a\\\"b\\\\c\"");
	QUOTED("a\nb\tc\x01", "\"a\\u000ab\\u0009c\\u0001\"");
	QUOTED("\x7f\xc3\xa9", "\"\\u007f\\u00c3\\u00a9\"");
	QUOTED("a\0b", "\"a\\u0000b\"");
	b = evbuffer_new();
	json_add_cstring(b, NULL);
	memset(out, 0, sizeof(out));
	evbuffer_remove(b, out, sizeof(out) - 1);
	CHECK_STR(out, "null");
	evbuffer_free(b);
	ID(0, "0");
	ID(4242, "4242");
	ID(-1, "null");
	ID(2147483647L, "2147483647");
	ID(LONG_MAX, LONG_MAX == 9223372036854775807L ?
	    "9223372036854775807" : "2147483647");
	return unit_exit("test_json");
}
