/*
 * json.c: JSON string literals for audit records and error bodies. Bytes
 * that are not printable ASCII are written as \u00XX so every line stays
 * valid JSON and valid UTF-8 whatever a client sent.
 */
#include "config.h"

#include <string.h>

#include <event2/buffer.h>

#include "xdrproxy.h"

void
json_add_string(struct evbuffer *b, const char *s, size_t len)
{
	static const char	 hex[] = "0123456789abcdef";
	char			 esc[6] = { '\\', 'u', '0', '0', 0, 0 };
	size_t			 i, run = 0;
	unsigned char		 c;

	evbuffer_add(b, "\"", 1);
	for (i = 0; i < len; i++) {
		c = (unsigned char)s[i];
		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
			continue;
		/* Flush the run of plain bytes before this one. */
		if (i > run)
			evbuffer_add(b, s + run, i - run);
		run = i + 1;
		if (c == '"')
			evbuffer_add(b, "\\\"", 2);
		else if (c == '\\')
			evbuffer_add(b, "\\\\", 2);
		else {
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 0xf];
			evbuffer_add(b, esc, sizeof(esc));
		}
	}
	if (len > run)
		evbuffer_add(b, s + run, len - run);
	evbuffer_add(b, "\"", 1);
}

void
json_add_cstring(struct evbuffer *b, const char *s)
{
	if (s == NULL)
		evbuffer_add(b, "null", 4);
	else
		json_add_string(b, s, strlen(s));
}

/* v in decimal, or null when it is negative (unknown). */
void
json_add_id(struct evbuffer *b, long v)
{
	char		 buf[24], *p = buf + sizeof(buf);
	unsigned long	 u = (unsigned long)v;

	if (v < 0) {
		evbuffer_add(b, "null", 4);
		return;
	}
	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	evbuffer_add(b, p, (size_t)(buf + sizeof(buf) - p));
}
