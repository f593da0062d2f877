/*
 * auditverify.c: checks an audit trail's hash chain for xdrproxy-audit(1).
 * Lines are fed in order (averify_line, or averify_path for a whole file,
 * gzip or plain); each is parsed with json-c for "seq", "prev" and
 * "chain", and hashed as raw bytes (SHA-256, or HMAC-SHA-256 under the
 * audit HMAC key). Only the previous record's hash and position are kept,
 * so memory stays bounded whatever the size of the trail. The first
 * problem is kept as "FILE:LINE: kind: ..." and every later call fails.
 */
#include "config.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <zlib.h>

#include "xdrproxy.h"

#define AVERIFY_NOTES		4
#define AVERIFY_NOTE_LEN	512
#define AVERIFY_ERR_LEN		(2 * 4096 + 512)
#define AVERIFY_READ_LEN	(64 * 1024)

struct averify {
	EVP_MD		*av_md;
	EVP_MD_CTX	*av_mdctx;
	EVP_MAC		*av_mac;
	EVP_MAC_CTX	*av_mactmpl;	/* keyed once; duplicated per line */

	const char	*av_file;	/* the file being read (caller's) */
	unsigned long	 av_line;	/* its current line number */
	uint64_t	 av_file_recs;	/* records read from it */

	uint64_t	 av_nrec;
	uint64_t	 av_first;
	uint64_t	 av_last;	/* seq of the previous record */
	unsigned char	 av_hash[AVERIFY_HASH_LEN];	/* and its hash */
	const char	*av_last_file;
	unsigned long	 av_last_line;
	uint64_t	 av_links;	/* prev values checked and found good */

	int		 av_cp;		/* a checkpoint was given */
	int		 av_cp_seen;
	uint64_t	 av_cp_seq;
	unsigned char	 av_cp_hash[AVERIFY_HASH_LEN];

	/*
	 * A seq gap seen at av_gap_file:av_gap_line is not reported at once:
	 * if the next record is lower, records were swapped, not deleted; if
	 * the gap opens a file, the next file may show files out of order.
	 */
	int		 av_gap;
	int		 av_gap_hold;	/* it opened a file: held to its end */
	uint64_t	 av_gap_from;	/* the missing seqs */
	uint64_t	 av_gap_seq;	/* the record after them */
	const char	*av_gap_file;
	unsigned long	 av_gap_line;
	const char	*av_gap_pfile;	/* the record before them */
	unsigned long	 av_gap_pline;

	char		*av_buf;	/* averify_path's line, allocated once */
	char		 av_notes[AVERIFY_NOTES][AVERIFY_NOTE_LEN];
	size_t		 av_nnotes;
	int		 av_failed;
	char		 av_err[AVERIFY_ERR_LEN];
};

static __attribute__((format(printf, 2, 3))) int
averify_fail(struct averify *v, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(v->av_err, sizeof(v->av_err), fmt, ap);
	va_end(ap);
	v->av_failed = 1;
	return -1;
}

static __attribute__((format(printf, 2, 3))) void
averify_add_note(struct averify *v, const char *fmt, ...)
{
	va_list	ap;

	if (v->av_nnotes == AVERIFY_NOTES)
		return;
	va_start(ap, fmt);
	vsnprintf(v->av_notes[v->av_nnotes++], AVERIFY_NOTE_LEN, fmt, ap);
	va_end(ap);
}

/* 64 lowercase hex digits to 32 bytes: 0, or -1. */
int
averify_hex(const char *s, size_t len, unsigned char *out)
{
	size_t	 i;
	int	 hi, lo;

	if (len != 2 * AVERIFY_HASH_LEN)
		return -1;
	for (i = 0; i < len; i += 2) {
		hi = s[i] >= '0' && s[i] <= '9' ? s[i] - '0' :
		    s[i] >= 'a' && s[i] <= 'f' ? s[i] - 'a' + 10 : -1;
		lo = s[i + 1] >= '0' && s[i + 1] <= '9' ? s[i + 1] - '0' :
		    s[i + 1] >= 'a' && s[i + 1] <= 'f' ?
		    s[i + 1] - 'a' + 10 : -1;
		if (hi == -1 || lo == -1)
			return -1;
		out[i / 2] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

static void
averify_tohex(const unsigned char *h, char *out)
{
	static const char	 digits[] = "0123456789abcdef";
	size_t			 i;

	for (i = 0; i < AVERIFY_HASH_LEN; i++) {
		out[2 * i] = digits[h[i] >> 4];
		out[2 * i + 1] = digits[h[i] & 0xf];
	}
	out[2 * AVERIFY_HASH_LEN] = '\0';
}

/*
 * One audit line (without its '\n') to its chain fields. The line is
 * untrusted: any bytes, any length. 0, or -1 with why filled in.
 */
int
averify_parse(const char *buf, size_t len, struct arecord *ar, char *why,
    size_t whylen)
{
	struct json_tokener	*tok;
	struct json_object	*obj = NULL, *v;
	enum json_tokener_error	 jerr;
	int64_t			 seq;
	int			 rc = -1;

	memset(ar, 0, sizeof(*ar));
	if (len == 0) {
		snprintf(why, whylen, "empty line");
		return -1;
	}
	if (len > AVERIFY_LINE_MAX) {
		snprintf(why, whylen, "line longer than %d bytes",
		    AVERIFY_LINE_MAX);
		return -1;
	}
	/* json-c would stop at a NUL and call the rest trailing bytes. */
	if (memchr(buf, '\0', len) != NULL) {
		snprintf(why, whylen, "not JSON: a NUL byte");
		return -1;
	}
	if ((tok = json_tokener_new()) == NULL) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
	    JSON_TOKENER_VALIDATE_UTF8);
	obj = json_tokener_parse_ex(tok, buf, (int)len);
	jerr = json_tokener_get_error(tok);
	if (obj == NULL) {
		snprintf(why, whylen, "not JSON: %s", jerr ==
		    json_tokener_continue ? "the line ends inside a value" :
		    json_tokener_error_desc(jerr));
		goto done;
	}
	if (json_tokener_get_parse_end(tok) != len) {
		snprintf(why, whylen, "not JSON: bytes after the object");
		goto done;
	}
	if (!json_object_is_type(obj, json_type_object)) {
		snprintf(why, whylen, "not a JSON object");
		goto done;
	}
	if (!json_object_object_get_ex(obj, "seq", &v)) {
		snprintf(why, whylen, "no \"seq\"");
		goto done;
	}
	/* json-c saturates at INT64_MAX: treat that as out of range. */
	if (!json_object_is_type(v, json_type_int) ||
	    (seq = json_object_get_int64(v)) <= 0 || seq == INT64_MAX) {
		snprintf(why, whylen, "\"seq\" is not a positive integer");
		goto done;
	}
	ar->ar_seq = (uint64_t)seq;
	if (!json_object_object_get_ex(obj, "prev", &v)) {
		snprintf(why, whylen, "no \"prev\"");
		goto done;
	}
	if (!json_object_is_type(v, json_type_string) ||
	    averify_hex(json_object_get_string(v),
	    (size_t)json_object_get_string_len(v), ar->ar_prev) == -1) {
		snprintf(why, whylen, "\"prev\" is not 64 lowercase hex digits");
		goto done;
	}
	if (json_object_object_get_ex(obj, "chain", &v)) {
		if (!json_object_is_type(v, json_type_string) ||
		    strcmp(json_object_get_string(v), "start") != 0 ||
		    json_object_get_string_len(v) != 5) {
			snprintf(why, whylen, "\"chain\" is not \"start\"");
			goto done;
		}
		ar->ar_start = 1;
	}
	rc = 0;
done:
	json_object_put(obj);
	json_tokener_free(tok);
	return rc;
}

/*
 * A verifier; with key (keylen bytes), prev is HMAC-SHA-256 under it,
 * else SHA-256. OpenSSL keeps its own copy of the key (wiped when the
 * context is freed): the caller wipes key once this returns.
 */
struct averify *
averify_new(const unsigned char *key, size_t keylen)
{
	struct averify	*v;
	OSSL_PARAM	 params[2];
	char		 digest[] = "SHA256";

	if ((v = calloc(1, sizeof(*v))) == NULL)
		return NULL;
	if (key != NULL) {
		params[0] = OSSL_PARAM_construct_utf8_string(
		    OSSL_MAC_PARAM_DIGEST, digest, 0);
		params[1] = OSSL_PARAM_construct_end();
		if ((v->av_mac = EVP_MAC_fetch(NULL, "HMAC", NULL)) == NULL ||
		    (v->av_mactmpl = EVP_MAC_CTX_new(v->av_mac)) == NULL ||
		    EVP_MAC_init(v->av_mactmpl, key, keylen, params) != 1)
			goto fail;
	} else {
		if ((v->av_md = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL ||
		    (v->av_mdctx = EVP_MD_CTX_new()) == NULL)
			goto fail;
	}
	return v;
fail:
	averify_free(v);
	return NULL;
}

void
averify_free(struct averify *v)
{
	if (v == NULL)
		return;
	EVP_MAC_CTX_free(v->av_mactmpl);
	EVP_MAC_free(v->av_mac);
	EVP_MD_CTX_free(v->av_mdctx);
	EVP_MD_free(v->av_md);
	free(v->av_buf);
	free(v);
}

/* The record with seq must exist and hash to hash (32 bytes). */
void
averify_checkpoint(struct averify *v, uint64_t seq, const unsigned char *hash)
{
	v->av_cp = 1;
	v->av_cp_seq = seq;
	memcpy(v->av_cp_hash, hash, AVERIFY_HASH_LEN);
}

/* The next lines come from the file name (kept, not copied). */
void
averify_file(struct averify *v, const char *name)
{
	v->av_file = name;
	v->av_line = 0;
	v->av_file_recs = 0;
}

static int
averify_hash(struct averify *v, const char *buf, size_t len,
    unsigned char *out)
{
	EVP_MAC_CTX	*c;
	unsigned int	 mdlen;
	size_t		 outlen;
	int		 ok;

	if (v->av_mactmpl != NULL) {
		if ((c = EVP_MAC_CTX_dup(v->av_mactmpl)) == NULL)
			return -1;
		ok = EVP_MAC_update(c, (const unsigned char *)buf, len) == 1 &&
		    EVP_MAC_final(c, out, &outlen, AVERIFY_HASH_LEN) == 1 &&
		    outlen == AVERIFY_HASH_LEN;
		EVP_MAC_CTX_free(c);
		return ok ? 0 : -1;
	}
	if (EVP_DigestInit_ex2(v->av_mdctx, v->av_md, NULL) != 1 ||
	    EVP_DigestUpdate(v->av_mdctx, buf, len) != 1 ||
	    EVP_DigestFinal_ex(v->av_mdctx, out, &mdlen) != 1 ||
	    mdlen != AVERIFY_HASH_LEN)
		return -1;
	return 0;
}

/* The held seq gap, reported as deleted records. */
static int
averify_fail_gap(struct averify *v)
{
	if (v->av_gap_from == v->av_gap_seq - 1)
		return averify_fail(v, "%s:%lu: deleted: record seq %" PRIu64
		    " is missing between %s:%lu and this record (seq %" PRIu64
		    ")", v->av_gap_file, v->av_gap_line, v->av_gap_from,
		    v->av_gap_pfile, v->av_gap_pline, v->av_gap_seq);
	return averify_fail(v, "%s:%lu: deleted: records seq %" PRIu64
	    "..%" PRIu64 " are missing between %s:%lu and this record (seq %"
	    PRIu64 ")", v->av_gap_file, v->av_gap_line, v->av_gap_from,
	    v->av_gap_seq - 1, v->av_gap_pfile, v->av_gap_pline,
	    v->av_gap_seq);
}

/* A problem at the current line; a held gap came first, so it wins. */
static __attribute__((format(printf, 2, 3))) int
averify_problem(struct averify *v, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;

	if (v->av_gap)
		return averify_fail_gap(v);
	n = snprintf(v->av_err, sizeof(v->av_err), "%s:%lu: ", v->av_file,
	    v->av_line);
	if (n < 0 || (size_t)n >= sizeof(v->av_err))
		n = 0;
	va_start(ap, fmt);
	vsnprintf(v->av_err + n, sizeof(v->av_err) - (size_t)n, fmt, ap);
	va_end(ap);
	v->av_failed = 1;
	return -1;
}

/* The first record given: a chain start, or an anchor taken on trust. */
static int
averify_first(struct averify *v, const struct arecord *ar)
{
	static const unsigned char	 zero[AVERIFY_HASH_LEN];

	if (ar->ar_start) {
		if (memcmp(ar->ar_prev, zero, sizeof(zero)) != 0)
			return averify_problem(v, "chain start whose prev is "
			    "not 64 zeros");
		if (ar->ar_seq != 1)
			return averify_problem(v, "chain start at seq %" PRIu64
			    ", not 1", ar->ar_seq);
		return 0;
	}
	averify_add_note(v, "%s:%lu: seq %" PRIu64 " is not a chain start: "
	    "its prev cannot be checked (the records before it are not in "
	    "the files given)", v->av_file, v->av_line, ar->ar_seq);
	return 0;
}

/* Where this record stands against the one before it. */
static int
averify_link(struct averify *v, const struct arecord *ar)
{
	uint64_t	 seq = ar->ar_seq;
	const char	*hint = "";

	if (v->av_gap) {
		/* The record right after the gap is lower: a swap. */
		if (seq < v->av_last && v->av_file_recs > 0 &&
		    v->av_gap_seq == v->av_last &&
		    v->av_gap_file == v->av_file &&
		    v->av_gap_line + 1 == v->av_line)
			return averify_fail(v, "%s:%lu: reordered: seq %"
			    PRIu64 " comes before seq %" PRIu64 " (%s:%lu)",
			    v->av_gap_file, v->av_gap_line, v->av_gap_seq,
			    seq, v->av_file, v->av_line);
		if (seq < v->av_last && v->av_file_recs == 0) {
			v->av_gap = 0;
			return averify_problem(v, "files out of order: %s "
			    "starts at seq %" PRIu64 ", lower than the last "
			    "record of the file before it (seq %" PRIu64 ", "
			    "%s:%lu)", v->av_file, seq, v->av_last,
			    v->av_last_file, v->av_last_line);
		}
		if (!v->av_gap_hold || v->av_file_recs == 0)
			return averify_fail_gap(v);
	}
	if (v->av_file_recs == 0 && seq < v->av_last)
		return averify_problem(v, "files out of order: %s starts at "
		    "seq %" PRIu64 ", lower than the last record of the file "
		    "before it (seq %" PRIu64 ", %s:%lu)", v->av_file, seq,
		    v->av_last, v->av_last_file, v->av_last_line);
	if (ar->ar_start)
		return averify_problem(v, "chain restarted (\"chain\":\"start\" "
		    "after seq %" PRIu64 ", %s:%lu): earlier records may have "
		    "been removed", v->av_last, v->av_last_file,
		    v->av_last_line);
	if (seq == v->av_last + 1) {
		if (memcmp(ar->ar_prev, v->av_hash, AVERIFY_HASH_LEN) == 0) {
			v->av_links++;
			return 0;
		}
		/* Not one link holds: perhaps the wrong key, or none. */
		if (v->av_links == 0)
			hint = v->av_mactmpl != NULL ? " (or the log was not "
			    "written with this HMAC key)" : " (or the log was "
			    "written with audit_hmac_key_file: give it with "
			    "--hmac-key-file)";
		return averify_problem(v, "edited: prev does not match the "
		    "hash of %s:%lu (seq %" PRIu64 "): that record was edited, "
		    "or this record's prev was%s", v->av_last_file,
		    v->av_last_line, v->av_last, hint);
	}
	if (seq > v->av_last + 1) {
		if (v->av_gap)
			return averify_fail_gap(v);
		v->av_gap = 1;
		v->av_gap_hold = v->av_file_recs == 0;
		v->av_gap_from = v->av_last + 1;
		v->av_gap_seq = seq;
		v->av_gap_file = v->av_file;
		v->av_gap_line = v->av_line;
		v->av_gap_pfile = v->av_last_file;
		v->av_gap_pline = v->av_last_line;
		return 0;
	}
	if (seq == v->av_last)
		return averify_problem(v, "inserted: seq %" PRIu64 " repeats "
		    "the record before it (%s:%lu)", seq, v->av_last_file,
		    v->av_last_line);
	return averify_problem(v, "inserted: seq %" PRIu64 " does not fit "
	    "after seq %" PRIu64 " (%s:%lu)", seq, v->av_last,
	    v->av_last_file, v->av_last_line);
}

/*
 * One line of the current file, newline saying whether it ended in '\n'.
 * len > AVERIFY_LINE_MAX reports a line too long (buf is not read).
 * 0, or -1 and averify_error() names the problem.
 */
int
averify_line(struct averify *v, const char *buf, size_t len, int newline)
{
	struct arecord	 ar;
	unsigned char	 h[AVERIFY_HASH_LEN];
	char		 why[256], hex[2 * AVERIFY_HASH_LEN + 1];
	char		 want[2 * AVERIFY_HASH_LEN + 1];

	if (v->av_failed)
		return -1;
	v->av_line++;
	if (len > AVERIFY_LINE_MAX)
		return averify_problem(v, "line longer than %d bytes",
		    AVERIFY_LINE_MAX);
	if (!newline)
		return averify_problem(v, "torn line: no newline at its end "
		    "(a write was cut short)");
	if (averify_parse(buf, len, &ar, why, sizeof(why)) == -1)
		return averify_problem(v, "%s", why);
	if (averify_hash(v, buf, len, h) == -1)
		return averify_problem(v, "cannot compute the hash (OpenSSL)");
	if (v->av_nrec == 0) {
		if (averify_first(v, &ar) == -1)
			return -1;
		v->av_first = ar.ar_seq;
	} else if (averify_link(v, &ar) == -1)
		return -1;
	if (v->av_cp && ar.ar_seq == v->av_cp_seq) {
		if (memcmp(h, v->av_cp_hash, AVERIFY_HASH_LEN) != 0) {
			averify_tohex(h, hex);
			averify_tohex(v->av_cp_hash, want);
			return averify_problem(v, "edited: seq %" PRIu64
			    " hashes to %s, but the checkpoint says %s",
			    ar.ar_seq, hex, want);
		}
		v->av_cp_seen = 1;
		averify_add_note(v, "checkpoint seq %" PRIu64 " matches %s:%lu",
		    ar.ar_seq, v->av_file, v->av_line);
	}
	/* A held gap ends with the file it opened: decided at the next. */
	v->av_nrec++;
	v->av_file_recs++;
	v->av_last = ar.ar_seq;
	memcpy(v->av_hash, h, sizeof(h));
	v->av_last_file = v->av_file;
	v->av_last_line = v->av_line;
	return 0;
}

/* zlib's error text, without the "<fd:N>: " it puts first for gzdopen. */
static const char *
averify_gzerror(gzFile gz)
{
	const char	*msg, *p;
	int		 zerr;

	msg = gzerror(gz, &zerr);
	if (zerr == Z_ERRNO)
		return strerror(errno);
	if (strncmp(msg, "<fd:", 4) == 0 && (p = strstr(msg, ": ")) != NULL)
		msg = p + 2;
	return msg;
}

/*
 * Every line of the file at path, read through zlib so that a .gz file
 * (or a plain one) reads the same. 0, or -1 and averify_error().
 */
int
averify_path(struct averify *v, const char *path)
{
	struct stat	 st;
	gzFile		 gz;
	char		 chunk[AVERIFY_READ_LEN];
	const char	*p, *nl;
	size_t		 len = 0, n, take;
	int		 fd, got, zerr, toolong = 0, rc = -1;

	if (v->av_failed)
		return -1;
	if (v->av_buf == NULL &&
	    (v->av_buf = malloc(AVERIFY_LINE_MAX)) == NULL)
		return averify_fail(v, "%s: out of memory", path);
	averify_file(v, path);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1)
		return averify_fail(v, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) == -1 || S_ISDIR(st.st_mode)) {
		averify_fail(v, "%s: %s", path, S_ISDIR(st.st_mode) ?
		    "a directory" : strerror(errno));
		close(fd);
		return -1;
	}
	if ((gz = gzdopen(fd, "rb")) == NULL) {
		close(fd);
		return averify_fail(v, "%s: out of memory", path);
	}
	(void)gzbuffer(gz, 128 * 1024);
	for (;;) {
		if ((got = gzread(gz, chunk, sizeof(chunk))) < 0) {
			averify_fail(v, "%s: %s", path, averify_gzerror(gz));
			goto done;
		}
		if (got == 0) {
			/* zlib keeps a cut stream's Z_BUF_ERROR for the end. */
			(void)gzerror(gz, &zerr);
			if (zerr != Z_OK) {
				averify_fail(v, "%s: %s", path,
				    averify_gzerror(gz));
				goto done;
			}
			break;
		}
		p = chunk;
		n = (size_t)got;
		while (n > 0) {
			nl = memchr(p, '\n', n);
			take = nl != NULL ? (size_t)(nl - p) : n;
			if (!toolong && len + take > AVERIFY_LINE_MAX)
				toolong = 1;
			if (!toolong) {
				memcpy(v->av_buf + len, p, take);
				len += take;
			}
			if (nl == NULL)
				break;
			if (averify_line(v, v->av_buf, toolong ?
			    AVERIFY_LINE_MAX + 1 : len, 1) == -1)
				goto done;
			len = 0;
			toolong = 0;
			p = nl + 1;
			n -= take + 1;
		}
	}
	if ((toolong || len > 0) && averify_line(v, v->av_buf, toolong ?
	    AVERIFY_LINE_MAX + 1 : len, 0) == -1)
		goto done;
	rc = 0;
done:
	gzclose_r(gz);
	return rc;
}

/* All lines are in: what can only be judged at the end. 0 or -1. */
int
averify_end(struct averify *v)
{
	if (v->av_failed)
		return -1;
	if (v->av_gap)
		return averify_fail_gap(v);
	if (v->av_nrec == 0)
		return averify_fail(v, "no records in the files given");
	if (v->av_cp && !v->av_cp_seen) {
		if (v->av_last < v->av_cp_seq)
			return averify_fail(v, "%s:%lu: truncated: the last "
			    "record is seq %" PRIu64 ", but the checkpoint "
			    "names seq %" PRIu64 ": records seq %" PRIu64
			    "..%" PRIu64 " were removed from the end",
			    v->av_last_file, v->av_last_line, v->av_last,
			    v->av_cp_seq, v->av_last + 1, v->av_cp_seq);
		return averify_fail(v, "checkpoint seq %" PRIu64 " is before "
		    "the first record given (seq %" PRIu64 "): give the "
		    "older files too", v->av_cp_seq, v->av_first);
	}
	return 0;
}

const char *
averify_error(const struct averify *v)
{
	return v->av_failed ? v->av_err : NULL;
}

/* The i-th note (things an auditor should know), or NULL. */
const char *
averify_note(const struct averify *v, size_t i)
{
	return i < v->av_nnotes ? v->av_notes[i] : NULL;
}

/* Records seen, first and last seq. */
void
averify_range(const struct averify *v, uint64_t *n, uint64_t *first,
    uint64_t *last)
{
	*n = v->av_nrec;
	*first = v->av_first;
	*last = v->av_last;
}
