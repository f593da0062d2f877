/*
 * test_auditverify.c: the audit chain verifier names each kind of tamper
 * (edited, deleted, inserted, reordered, files out of order, restarted,
 * torn, truncated past a checkpoint) by file and line, with SHA-256 and
 * HMAC chains, and reads .gz files. The chains are built here with
 * OpenSSL's one-shot calls, independently of the verifier's own hashing.
 */
#include "config.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <zlib.h>

#include "xdrproxy.h"
#include "unit.h"

#define NLINES	12
#define LINELEN	256

static const char	*hmac_key;

/* lines[i] holds seq first + i, chained; the first one a start if first == 1. */
struct chain {
	char	 line[NLINES][LINELEN];
	size_t	 n;
};

static void
tohex(const unsigned char *h, char *out)
{
	size_t	i;

	for (i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", h[i]);
}

static void
line_hash(const char *line, char *hex)
{
	unsigned char	 h[32];
	unsigned int	 len = 32;

	if (hmac_key != NULL)
		HMAC(EVP_sha256(), hmac_key, (int)strlen(hmac_key),
		    (const unsigned char *)line, strlen(line), h, &len);
	else
		SHA256((const unsigned char *)line, strlen(line), h);
	tohex(h, hex);
}

/* A chain of n records from seq first, after prev (NULL: zeros). */
static void
chain_make(struct chain *c, uint64_t first, size_t n, const char *prev)
{
	char	 hex[65];
	size_t	 i;

	memset(c, 0, sizeof(*c));
	if (prev != NULL)
		snprintf(hex, sizeof(hex), "%s", prev);
	else
		memset(hex, '0', 64);
	hex[64] = '\0';
	for (i = 0; i < n; i++) {
		snprintf(c->line[i], LINELEN, "{\"type\":\"request\",\"seq\":%"
		    PRIu64 ",\"prev\":\"%s\"%s,\"ts\":\"2026-12-02T16:00:00Z\","
		    "\"path\":\"/public_api/v1/x/%zu\"}", first + i, hex,
		    first + i == 1 ? ",\"chain\":\"start\"" : "", i);
		line_hash(c->line[i], hex);
	}
	c->n = n;
}

/* The hash of the last line of c, to chain a next file on. */
static void
chain_tail(const struct chain *c, char *hex)
{
	line_hash(c->line[c->n - 1], hex);
}

static struct averify *
verifier(void)
{
	return averify_new((const unsigned char *)hmac_key,
	    hmac_key != NULL ? strlen(hmac_key) : 0);
}

/* Feed the lines order[] (indexes into c, -1 ends) as file name. */
static int
feed(struct averify *v, const char *name, const struct chain *c,
    const int *order)
{
	size_t	 i;

	averify_file(v, name);
	if (order == NULL) {
		for (i = 0; i < c->n; i++)
			if (averify_line(v, c->line[i], strlen(c->line[i]),
			    1) == -1)
				return -1;
		return 0;
	}
	for (i = 0; order[i] != -1; i++)
		if (averify_line(v, c->line[order[i]],
		    strlen(c->line[order[i]]), 1) == -1)
			return -1;
	return 0;
}

/* One file, lines in order (NULL = all), then the end: the error or NULL. */
static char *
run(const struct chain *c, const int *order)
{
	struct averify	*v = verifier();
	char		*out = NULL;

	if (feed(v, "f", c, order) == -1 || averify_end(v) == -1)
		out = strdup(averify_error(v));
	averify_free(v);
	return out;
}

#define EXPECT_OK(c, order) do {					\
	char *e = run(c, order);					\
	CHECK_STR(e == NULL ? "OK" : e, "OK");				\
	free(e);							\
} while (0)

#define EXPECT_ERR(c, order, want) do {					\
	char *e = run(c, order);					\
	CHECK_STR(e, want);						\
	free(e);							\
} while (0)

static void
test_kinds(void)
{
	struct chain	 c, bad;
	struct averify	*v;
	uint64_t	 n, first, last;
	const int	 del1[] = { 0, 1, 3, 4, -1 };
	const int	 del2[] = { 0, 1, 4, 5, -1 };
	const int	 swap[] = { 0, 1, 3, 2, 4, -1 };
	const int	 swapfar[] = { 0, 4, 2, 3, 1, 5, -1 };
	const int	 dup[] = { 0, 1, 1, 2, -1 };
	const int	 copy[] = { 0, 1, 2, 1, 3, -1 };
	const int	 dellast[] = { 0, 1, 2, 4, -1 };

	chain_make(&c, 1, 6, NULL);
	EXPECT_OK(&c, NULL);
	v = verifier();
	CHECK(feed(v, "f", &c, NULL) == 0 && averify_end(v) == 0);
	averify_range(v, &n, &first, &last);
	CHECK(n == 6 && first == 1 && last == 6);
	CHECK(averify_note(v, 0) == NULL);
	CHECK(averify_error(v) == NULL);
	averify_free(v);

	/* A byte changed in record 3: record 4's prev no longer matches. */
	bad = c;
	bad.line[2][strlen(bad.line[2]) - 3] ^= 1;
	EXPECT_ERR(&bad, NULL, "f:4: edited: prev does not match the hash of "
	    "f:3 (seq 3): that record was edited, or this record's prev was");
	/* The first link fails: the hint about the key. */
	bad = c;
	bad.line[0][strlen(bad.line[0]) - 3] ^= 1;
	EXPECT_ERR(&bad, NULL, "f:2: edited: prev does not match the hash of "
	    "f:1 (seq 1): that record was edited, or this record's prev was "
	    "(or the log was written with audit_hmac_key_file: give it with "
	    "--hmac-key-file)");

	EXPECT_ERR(&c, del1, "f:3: deleted: record seq 3 is missing between "
	    "f:2 and this record (seq 4)");
	EXPECT_ERR(&c, del2, "f:3: deleted: records seq 3..4 are missing "
	    "between f:2 and this record (seq 5)");
	/* The last but one removed: no next record to look at. */
	EXPECT_ERR(&c, dellast, "f:4: deleted: record seq 4 is missing "
	    "between f:3 and this record (seq 5)");
	EXPECT_ERR(&c, swap, "f:3: reordered: seq 4 comes before seq 3 "
	    "(f:4)");
	EXPECT_ERR(&c, swapfar, "f:2: reordered: seq 5 comes before seq 3 "
	    "(f:3)");
	EXPECT_ERR(&c, dup, "f:3: inserted: seq 2 repeats the record before "
	    "it (f:2)");
	EXPECT_ERR(&c, copy, "f:4: inserted: seq 2 does not fit after seq 3 "
	    "(f:3)");

	/* A chain restarted in the middle. */
	bad = c;
	chain_make(&bad, 1, 3, NULL);
	memcpy(bad.line[3], bad.line[0], LINELEN);
	bad.n = 4;
	EXPECT_ERR(&bad, NULL, "f:4: chain restarted (\"chain\":\"start\" "
	    "after seq 3, f:3): earlier records may have been removed");

	/* An anchor: the first record given is not a chain start. */
	chain_make(&bad, 7, 3, "ab" "00000000000000000000000000000000000000"
	    "000000000000000000000000");
	v = verifier();
	CHECK(feed(v, "f", &bad, NULL) == 0 && averify_end(v) == 0);
	CHECK_STR(averify_note(v, 0), "f:1: seq 7 is not a chain start: its "
	    "prev cannot be checked (the records before it are not in the "
	    "files given)");
	averify_range(v, &n, &first, &last);
	CHECK(n == 3 && first == 7 && last == 9);
	averify_free(v);

	/* A chain start with the wrong seq or prev. */
	bad = c;
	snprintf(bad.line[0], LINELEN, "{\"seq\":2,\"prev\":\"%064d\","
	    "\"chain\":\"start\"}", 0);
	bad.n = 1;
	EXPECT_ERR(&bad, NULL, "f:1: chain start at seq 2, not 1");
	snprintf(bad.line[0], LINELEN, "{\"seq\":1,\"prev\":\"1%063d\","
	    "\"chain\":\"start\"}", 0);
	EXPECT_ERR(&bad, NULL, "f:1: chain start whose prev is not 64 zeros");

	/* Torn: a line without its newline, wherever it is. */
	v = verifier();
	averify_file(v, "f");
	CHECK(averify_line(v, c.line[0], strlen(c.line[0]), 1) == 0);
	CHECK(averify_line(v, c.line[1], strlen(c.line[1]) - 4, 0) == -1);
	CHECK_STR(averify_error(v), "f:2: torn line: no newline at its end "
	    "(a write was cut short)");
	/* Sticky: later lines fail too and the first problem stays. */
	CHECK(averify_line(v, c.line[2], strlen(c.line[2]), 1) == -1);
	CHECK(averify_end(v) == -1);
	CHECK_STR(averify_error(v), "f:2: torn line: no newline at its end "
	    "(a write was cut short)");
	averify_free(v);

	v = verifier();
	CHECK(averify_end(v) == -1);
	CHECK_STR(averify_error(v), "no records in the files given");
	averify_free(v);
}

static void
test_files(void)
{
	struct chain	 a, b, c2;
	struct averify	*v;
	char		 hex[65];
	uint64_t	 n, first, last;

	chain_make(&a, 1, 4, NULL);
	chain_tail(&a, hex);
	chain_make(&b, 5, 4, hex);
	chain_tail(&b, hex);
	chain_make(&c2, 9, 4, hex);

	v = verifier();
	CHECK(feed(v, "a", &a, NULL) == 0 && feed(v, "b", &b, NULL) == 0 &&
	    feed(v, "c", &c2, NULL) == 0 && averify_end(v) == 0);
	averify_range(v, &n, &first, &last);
	CHECK(n == 12 && first == 1 && last == 12);
	averify_free(v);

	/* Newest first. */
	v = verifier();
	CHECK(feed(v, "b", &b, NULL) == 0 && feed(v, "a", &a, NULL) == -1);
	CHECK_STR(averify_error(v), "a:1: files out of order: a starts at seq "
	    "1, lower than the last record of the file before it (seq 8, b:4)");
	averify_free(v);

	/* a c b: the gap at c:1 turns out to be files out of order. */
	v = verifier();
	CHECK(feed(v, "a", &a, NULL) == 0 && feed(v, "c", &c2, NULL) == 0 &&
	    feed(v, "b", &b, NULL) == -1);
	CHECK_STR(averify_error(v), "b:1: files out of order: b starts at seq "
	    "5, lower than the last record of the file before it (seq 12, "
	    "c:4)");
	averify_free(v);

	/* a c: the file between them is missing. */
	v = verifier();
	CHECK(feed(v, "a", &a, NULL) == 0 && feed(v, "c", &c2, NULL) == 0 &&
	    averify_end(v) == -1);
	CHECK_STR(averify_error(v), "c:1: deleted: records seq 5..8 are "
	    "missing between a:4 and this record (seq 9)");
	averify_free(v);

	/* A gap that opens a file, then a problem later in it: the gap. */
	c2.line[2][10] ^= 1;
	v = verifier();
	CHECK(feed(v, "a", &a, NULL) == 0 && feed(v, "c", &c2, NULL) == -1);
	CHECK_STR(averify_error(v), "c:1: deleted: records seq 5..8 are "
	    "missing between a:4 and this record (seq 9)");
	averify_free(v);

	/* Lines are numbered per file. */
	b.line[1][strlen(b.line[1]) - 3] ^= 1;
	v = verifier();
	CHECK(feed(v, "a", &a, NULL) == 0 && feed(v, "b", &b, NULL) == -1);
	CHECK_STR(averify_error(v), "b:3: edited: prev does not match the hash "
	    "of b:2 (seq 6): that record was edited, or this record's prev "
	    "was");
	averify_free(v);
}

static void
test_hmac(void)
{
	struct chain	 c;
	struct averify	*v;

	hmac_key = "audit-hmac-key\nwith a newline inside";
	chain_make(&c, 1, 5, NULL);
	EXPECT_OK(&c, NULL);
	/* Without the key, or with another. */
	v = averify_new(NULL, 0);
	CHECK(feed(v, "f", &c, NULL) == -1);
	CHECK_STR(averify_error(v), "f:2: edited: prev does not match the hash "
	    "of f:1 (seq 1): that record was edited, or this record's prev was "
	    "(or the log was written with audit_hmac_key_file: give it with "
	    "--hmac-key-file)");
	averify_free(v);
	v = averify_new((const unsigned char *)"audit-hmac-kez", 14);
	CHECK(feed(v, "f", &c, NULL) == -1);
	CHECK_STR(averify_error(v), "f:2: edited: prev does not match the hash "
	    "of f:1 (seq 1): that record was edited, or this record's prev was "
	    "(or the log was not written with this HMAC key)");
	averify_free(v);
	/* An edit under HMAC: found, without the hint once links held. */
	c.line[3][strlen(c.line[3]) - 3] ^= 1;
	EXPECT_ERR(&c, NULL, "f:5: edited: prev does not match the hash of "
	    "f:4 (seq 4): that record was edited, or this record's prev was");
	hmac_key = NULL;
}

static void
test_checkpoint(void)
{
	struct chain	 c;
	struct averify	*v;
	unsigned char	 h[32];
	char		 hex[65];
	const int	 cut[] = { 0, 1, 2, 3, -1 };

	chain_make(&c, 1, 6, NULL);
	line_hash(c.line[5], hex);
	CHECK(averify_hex(hex, 64, h) == 0);

	v = verifier();
	averify_checkpoint(v, 6, h);
	CHECK(feed(v, "f", &c, NULL) == 0 && averify_end(v) == 0);
	CHECK_STR(averify_note(v, 0), "checkpoint seq 6 matches f:6");
	averify_free(v);

	/* The tail cut: only a checkpoint can tell. */
	v = verifier();
	averify_checkpoint(v, 6, h);
	CHECK(feed(v, "f", &c, cut) == 0 && averify_end(v) == -1);
	CHECK_STR(averify_error(v), "f:4: truncated: the last record is seq 4, "
	    "but the checkpoint names seq 6: records seq 5..6 were removed "
	    "from the end");
	averify_free(v);

	/* The last record edited: nothing after it, but the checkpoint. */
	c.line[5][strlen(c.line[5]) - 3] ^= 1;
	v = verifier();
	averify_checkpoint(v, 6, h);
	CHECK(feed(v, "f", &c, NULL) == -1);
	line_hash(c.line[5], hex);
	{
		char	want[512];

		snprintf(want, sizeof(want), "f:6: edited: seq 6 hashes to %s,"
		    " but the checkpoint says ", hex);
		CHECK(strncmp(averify_error(v), want, strlen(want)) == 0);
	}
	averify_free(v);

	/* A checkpoint older than the files given. */
	chain_make(&c, 10, 3, "00000000000000000000000000000000000000000000"
	    "000000000000000000ff");
	v = verifier();
	averify_checkpoint(v, 4, h);
	CHECK(feed(v, "f", &c, NULL) == 0 && averify_end(v) == -1);
	CHECK_STR(averify_error(v), "checkpoint seq 4 is before the first "
	    "record given (seq 10): give the older files too");
	averify_free(v);
}

static void
test_parse(void)
{
	struct arecord	 ar;
	char		 why[256];
	static const char zeros[] =
	    "0000000000000000000000000000000000000000000000000000000000000000";
	char		 line[512];
	size_t		 i;
	static const struct {
		const char	*in;
		const char	*why;
	} bad[] = {
		{ "", "empty line" },
		{ "not json", "not JSON: " },
		{ "[1,2]", "not a JSON object" },
		{ "{\"seq\":1", "not JSON: the line ends inside a value" },
		{ "{\"seq\":1,\"prev\":\"Z\"} x", "not JSON: " },
		{ "{\"prev\":\"P\"}", "no \"seq\"" },
		{ "{\"seq\":0,\"prev\":\"P\"}", "\"seq\" is not a positive "
		    "integer" },
		{ "{\"seq\":-3,\"prev\":\"P\"}", "\"seq\" is not a positive "
		    "integer" },
		{ "{\"seq\":1.5,\"prev\":\"P\"}", "\"seq\" is not a positive "
		    "integer" },
		{ "{\"seq\":\"1\",\"prev\":\"P\"}", "\"seq\" is not a positive "
		    "integer" },
		{ "{\"seq\":99999999999999999999999,\"prev\":\"P\"}",
		    "\"seq\" is not a positive integer" },
		{ "{\"seq\":1}", "no \"prev\"" },
		{ "{\"seq\":1,\"prev\":7}", "\"prev\" is not 64 lowercase hex "
		    "digits" },
		{ "{\"seq\":1,\"prev\":\"abc\"}", "\"prev\" is not 64 lowercase "
		    "hex digits" },
		{ "{\"seq\":1,\"prev\":\"P\",\"chain\":\"stop\"}", "\"chain\" is "
		    "not \"start\"" },
		{ "{\"seq\":1,\"prev\":\"P\",\"chain\":1}", "\"chain\" is not "
		    "\"start\"" },
	};

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char	*p = strstr(bad[i].in, "\"P\"");

		if (p != NULL)
			snprintf(line, sizeof(line), "%.*s\"%s\"%s",
			    (int)(p - bad[i].in), bad[i].in, zeros, p + 3);
		else
			snprintf(line, sizeof(line), "%s", bad[i].in);
		CHECK(averify_parse(line, strlen(line), &ar, why,
		    sizeof(why)) == -1);
		if (strncmp(why, bad[i].why, strlen(bad[i].why)) != 0)
			fprintf(stderr, "input %zu: %s\n", i, why);
		CHECK(strncmp(why, bad[i].why, strlen(bad[i].why)) == 0);
	}
	/* Uppercase hex is not what xdrproxy writes. */
	snprintf(line, sizeof(line), "{\"seq\":1,\"prev\":\"%.63sA\"}", zeros);
	CHECK(averify_parse(line, strlen(line), &ar, why, sizeof(why)) == -1);
	CHECK_STR(why, "\"prev\" is not 64 lowercase hex digits");
	/* A NUL inside. */
	snprintf(line, sizeof(line), "{\"seq\":1,\"prev\":\"%s\"}", zeros);
	CHECK(averify_parse(line, strlen(line) + 1, &ar, why,
	    sizeof(why)) == -1);
	CHECK_STR(why, "not JSON: a NUL byte");
	/* Invalid UTF-8 in a string. */
	snprintf(line, sizeof(line), "{\"seq\":1,\"prev\":\"%s\",\"x\":\"\xff"
	    "\"}", zeros);
	CHECK(averify_parse(line, strlen(line), &ar, why, sizeof(why)) == -1);
	CHECK(strncmp(why, "not JSON: ", 10) == 0);
	/* Good ones; field order does not matter to the parser. */
	snprintf(line, sizeof(line), "{\"type\":\"response\",\"seq\":42,"
	    "\"prev\":\"%.62s9f\",\"chain\":\"start\",\"caller\":{\"uid\":1}}",
	    zeros);
	CHECK(averify_parse(line, strlen(line), &ar, why, sizeof(why)) == 0);
	CHECK(ar.ar_seq == 42 && ar.ar_start == 1 && ar.ar_prev[31] == 0x9f &&
	    ar.ar_prev[0] == 0);
	snprintf(line, sizeof(line), "{\"prev\":\"%s\",\"seq\":9007199254740993"
	    "}", zeros);
	CHECK(averify_parse(line, strlen(line), &ar, why, sizeof(why)) == 0);
	CHECK(ar.ar_seq == 9007199254740993ULL && ar.ar_start == 0);
	CHECK(averify_hex(zeros, 63, ar.ar_prev) == -1);
}

static char	 tmpdir[] = "/tmp/test_auditverify.XXXXXX";

static void
write_file(const char *path, const struct chain *c, int gz, size_t cut)
{
	gzFile	 g;
	FILE	*f;
	char	 all[NLINES * LINELEN];
	size_t	 i, len = 0;

	for (i = 0; i < c->n; i++)
		len += (size_t)sprintf(all + len, "%s\n", c->line[i]);
	len -= cut;
	if (gz) {
		g = gzopen(path, "wb");
		CHECK(g != NULL && gzwrite(g, all, (unsigned)len) == (int)len);
		gzclose(g);
		return;
	}
	f = fopen(path, "w");
	CHECK(f != NULL && fwrite(all, 1, len, f) == len);
	fclose(f);
}

static void
test_gz(void)
{
	struct chain	 a, b;
	struct averify	*v;
	char		 pa[128], pb[128], hex[65], *big;
	uint64_t	 n, first, last;
	FILE		*f;
	int		 fd;
	struct stat	 st;

	CHECK(mkdtemp(tmpdir) != NULL);
	snprintf(pa, sizeof(pa), "%s/audit.jsonl.1.gz", tmpdir);
	snprintf(pb, sizeof(pb), "%s/audit.jsonl", tmpdir);
	chain_make(&a, 1, 5, NULL);
	chain_tail(&a, hex);
	chain_make(&b, 6, 5, hex);
	write_file(pa, &a, 1, 0);
	write_file(pb, &b, 0, 0);
	v = verifier();
	CHECK(averify_path(v, pa) == 0 && averify_path(v, pb) == 0 &&
	    averify_end(v) == 0);
	averify_range(v, &n, &first, &last);
	CHECK(n == 10 && first == 1 && last == 10);
	averify_free(v);

	/* A torn last line, plain and compressed. */
	write_file(pb, &b, 0, 1);
	v = verifier();
	CHECK(averify_path(v, pa) == 0 && averify_path(v, pb) == -1);
	CHECK(strstr(averify_error(v), "audit.jsonl:5: torn line: no newline "
	    "at its end (a write was cut short)") != NULL);
	averify_free(v);
	write_file(pa, &a, 1, 10);
	v = verifier();
	CHECK(averify_path(v, pa) == -1);
	CHECK(strstr(averify_error(v), "audit.jsonl.1.gz:5: torn line") !=
	    NULL);
	averify_free(v);

	/* A gzip stream cut short: zlib's error, by file. */
	write_file(pa, &a, 1, 0);
	CHECK(stat(pa, &st) == 0);
	CHECK(truncate(pa, st.st_size - 12) == 0);
	v = verifier();
	CHECK(averify_path(v, pa) == -1);
	CHECK(strstr(averify_error(v), "audit.jsonl.1.gz: unexpected end of "
	    "file") != NULL);
	averify_free(v);

	/* No such file; a directory. */
	v = verifier();
	CHECK(averify_path(v, "/nonexistent/audit") == -1);
	CHECK_STR(averify_error(v), "/nonexistent/audit: No such file or "
	    "directory");
	averify_free(v);
	v = verifier();
	CHECK(averify_path(v, tmpdir) == -1);
	CHECK(strstr(averify_error(v), ": a directory") != NULL);
	averify_free(v);

	/* A line over the limit, then a good one: the long one is named. */
	big = malloc(AVERIFY_LINE_MAX + 2);
	memset(big, 'x', AVERIFY_LINE_MAX + 1);
	big[AVERIFY_LINE_MAX + 1] = '\n';
	f = fopen(pb, "w");
	CHECK(f != NULL);
	fprintf(f, "%s\n", a.line[0]);
	CHECK(fwrite(big, 1, AVERIFY_LINE_MAX + 2, f) ==
	    AVERIFY_LINE_MAX + 2);
	fprintf(f, "%s\n", a.line[1]);
	fclose(f);
	v = verifier();
	CHECK(averify_path(v, pb) == -1);
	CHECK(strstr(averify_error(v), "audit.jsonl:2: line longer than "
	    "1048576 bytes") != NULL);
	averify_free(v);
	/* Exactly the limit is a line (not JSON here), not too long. */
	fd = open(pb, O_WRONLY | O_TRUNC);
	CHECK(fd != -1);
	CHECK(write(fd, big + 1, AVERIFY_LINE_MAX + 1) ==
	    AVERIFY_LINE_MAX + 1);
	close(fd);
	v = verifier();
	CHECK(averify_path(v, pb) == -1);
	CHECK(strstr(averify_error(v), "audit.jsonl:1: not JSON") != NULL);
	averify_free(v);
	free(big);

	/* An empty file: no records, but not an error by itself. */
	fd = open(pb, O_WRONLY | O_TRUNC);
	close(fd);
	v = verifier();
	CHECK(averify_path(v, pb) == 0 && averify_end(v) == -1);
	CHECK_STR(averify_error(v), "no records in the files given");
	averify_free(v);

	unlink(pa);
	unlink(pb);
	rmdir(tmpdir);
}

int
main(void)
{
	test_parse();
	test_kinds();
	test_files();
	test_hmac();
	test_checkpoint();
	test_gz();
	return unit_exit("test_auditverify");
}
