/*
 * fuzz_auditline.c: libFuzzer target for the audit verifier. The first
 * byte picks the options (bit 0: HMAC, bit 1: a checkpoint); the rest is
 * cut at '\n' into lines: each is parsed alone with averify_parse(), and
 * all of them are fed in order to one verifier (the last one torn when the
 * input does not end in '\n'), which must give a verdict, never crash.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "xdrproxy.h"

int	 LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
check_parse(const char *line, size_t len)
{
	struct arecord	 ar;
	char		 why[256];
	size_t		 i;

	memset(why, 0, sizeof(why));
	if (averify_parse(line, len, &ar, why, sizeof(why)) == 0) {
		/* A record: a positive seq, and nothing said against it. */
		if (ar.ar_seq == 0 || ar.ar_seq >= INT64_MAX || why[0] != '\0' ||
		    (ar.ar_start != 0 && ar.ar_start != 1))
			abort();
		return;
	}
	/* A reason, NUL-terminated, without the line's bytes in it. */
	for (i = 0; i < sizeof(why) && why[i] != '\0'; i++)
		;
	if (i == 0 || i == sizeof(why))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct averify		*v;
	const char		*p = (const char *)data, *nl, *err;
	unsigned char		 cp[AVERIFY_HASH_LEN];
	size_t			 n = size, len;
	int			 rc = 0;

	/* The first byte picks HMAC or SHA-256 and a checkpoint seq. */
	if (n == 0)
		return 0;
	if (p[0] & 1)
		v = averify_new((const unsigned char *)"k", 1);
	else
		v = averify_new(NULL, 0);
	if (v == NULL)
		abort();
	if (p[0] & 2) {
		memset(cp, 0, sizeof(cp));
		averify_checkpoint(v, (uint64_t)((unsigned char)p[0] >> 2) + 1,
		    cp);
	}
	p++;
	n--;
	averify_file(v, "fuzz");
	while (n > 0 && rc == 0) {
		nl = memchr(p, '\n', n);
		len = nl != NULL ? (size_t)(nl - p) : n;
		check_parse(p, len);
		rc = averify_line(v, p, len, nl != NULL);
		if (nl == NULL)
			break;
		p = nl + 1;
		n -= len + 1;
	}
	if (rc == 0)
		rc = averify_end(v);
	err = averify_error(v);
	/* -1 always names the problem; 0 never does. */
	if ((rc == -1) != (err != NULL) || (err != NULL && err[0] == '\0'))
		abort();
	averify_free(v);
	return 0;
}
