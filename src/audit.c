/*
 * audit.c: one JSON object per line for every request that reached the
 * proxy, whatever its outcome. Records are written with one write(2) each
 * to a file opened O_APPEND, so a crash loses nothing already answered and
 * several writers never interleave. Never the key, the Authorization value
 * or bodies. Records that could not be written are counted, and the last
 * failure is kept for readiness (/readyz, admin.c).
 */
#include "config.h"

#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/statvfs.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "xdrproxy.h"

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))

static int		 audit_fd = -1;
static char		*audit_path;
static int		 audit_regular;	/* a regular file: cut back torn writes */
/* The chain, under audit_mu; as are the key, the writes and the switches. */
static pthread_mutex_t	 audit_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t		 audit_seq;	/* of the last record; 0: a new chain */
static unsigned char	 audit_prev[AUDIT_HASH_LEN];	/* its hash */
static uint64_t		 audit_ckpt_seq;	/* last checkpointed */
static unsigned char	*audit_key;	/* HMAC key; NULL: plain SHA-256 */
static size_t		 audit_keylen;
static EVP_MAC		*audit_mac;
static EVP_MD		*audit_md;	/* fetched once: not per record */
static EVP_MD_CTX	*audit_dc;	/* reused, under audit_mu */
static _Atomic uint64_t	 audit_unavailable;	/* refused: audit_fail */
static _Atomic int	 audit_off;	/* audit_log = off: syslog only */
/* Written by any worker, read by /metrics and /readyz (admin.c). */
static _Atomic uint64_t	 audit_errors;	/* records not written */
static _Atomic int	 audit_errno;	/* the last write's, if it failed */

static const char *const audit_outcomes[] = {
	[OUTCOME_OK] = "ok",
	[OUTCOME_UPSTREAM_ERROR] = "upstream_error",
	[OUTCOME_PROXY_ERROR] = "proxy_error",
	[OUTCOME_CLIENT_ABORTED] = "client_aborted"
};

const char *
audit_outcome_name(enum outcome o)
{
	return audit_outcomes[o];
}

/* A descriptor of our own, standard output's included, so dup3() works. */
static int
audit_open_fd(const char *path, char **cause)
{
	int	 fd;

	if (strcmp(path, "-") == 0)
		fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
	else if (strcmp(path, "off") == 0)	/* syslog sinks only (sink.c) */
		fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	else
		fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC |
		    O_NOCTTY, 0640);
	if (fd == -1 && asprintf(cause, "audit_log %s: %s", path,
	    strerror(errno)) == -1)
		*cause = NULL;
	return fd;
}

static int
audit_is_regular(int fd)
{
	struct stat	 st;

	return fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

/* Lowercase hex of a hash; 64 characters, no NUL. */
static void
audit_hex(char *out, const unsigned char *h)
{
	static const char	 digits[] = "0123456789abcdef";
	size_t			 i;

	for (i = 0; i < AUDIT_HASH_LEN; i++) {
		out[2 * i] = digits[h[i] >> 4];
		out[2 * i + 1] = digits[h[i] & 0xf];
	}
}

/*
 * The chain hash of a line (without its '\n') given in pieces:
 * HMAC-SHA-256 with the key, else SHA-256. 0, or -1. Under audit_mu.
 */
static int
audit_hash(const struct iovec *iov, int iovcnt, unsigned char *out)
{
	EVP_MAC_CTX	*mc;
	EVP_MD_CTX	*dc;
	OSSL_PARAM	 params[2];
	size_t		 outl = 0;
	unsigned int	 mdlen = 0;
	int		 i, ok;

	if (audit_key != NULL) {
		params[0] = OSSL_PARAM_construct_utf8_string(
		    OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
		params[1] = OSSL_PARAM_construct_end();
		if ((mc = EVP_MAC_CTX_new(audit_mac)) == NULL)
			return -1;
		ok = EVP_MAC_init(mc, audit_key, audit_keylen, params);
		for (i = 0; ok && i < iovcnt; i++)
			ok = EVP_MAC_update(mc, iov[i].iov_base,
			    iov[i].iov_len);
		ok = ok && EVP_MAC_final(mc, out, &outl, AUDIT_HASH_LEN) &&
		    outl == AUDIT_HASH_LEN;
		EVP_MAC_CTX_free(mc);
		return ok ? 0 : -1;
	}
	if (audit_md == NULL &&
	    (audit_md = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL)
		return -1;
	if (audit_dc == NULL && (audit_dc = EVP_MD_CTX_new()) == NULL)
		return -1;
	dc = audit_dc;
	ok = EVP_DigestInit_ex(dc, audit_md, NULL);
	for (i = 0; ok && i < iovcnt; i++)
		ok = EVP_DigestUpdate(dc, iov[i].iov_base, iov[i].iov_len);
	ok = ok && EVP_DigestFinal_ex(dc, out, &mdlen) &&
	    mdlen == AUDIT_HASH_LEN;
	return ok ? 0 : -1;
}

/*
 * The seq of one of our records, read from its leading
 * {"type":"request"|"response","seq":N, and its closing '}'. 0, or -1 if
 * line is not one of ours.
 */
int
audit_line_seq(const char *line, size_t len, uint64_t *seq)
{
	static const char *const lead[] = {
		"{\"type\":\"request\",\"seq\":",
		"{\"type\":\"response\",\"seq\":"
	};
	uint64_t	 v = 0;
	size_t		 i, n = 0, k;

	for (i = 0; i < nitems(lead); i++) {
		n = strlen(lead[i]);
		if (len >= n && memcmp(line, lead[i], n) == 0)
			break;
	}
	if (i == nitems(lead) || line[len - 1] != '}')
		return -1;
	for (k = n; k < len && line[k] >= '0' && line[k] <= '9'; k++) {
		if (k - n >= 19)	/* more than fit surely */
			return -1;
		v = v * 10 + (uint64_t)(line[k] - '0');
	}
	if (k == n || k == len || line[k] != ',' || line[n] == '0')
		return -1;
	*seq = v;
	return 0;
}

/*
 * buf: the last len bytes of a file, its start included if whole. The last
 * complete line (without its '\n') is at *off, *n bytes long; *keep is the
 * length of buf up to its last '\n' (what follows is a torn tail). 0, or
 * -1 if buf holds no complete, non-empty line.
 */
int
audit_last_line(const char *buf, size_t len, int whole, size_t *off,
    size_t *n, size_t *keep)
{
	const char	*nl, *p;
	size_t		 end;

	*keep = 0;
	if (len == 0 || (nl = memrchr(buf, '\n', len)) == NULL)
		return -1;
	end = (size_t)(nl - buf);
	*keep = end + 1;
	if ((p = end > 0 ? memrchr(buf, '\n', end) : NULL) != NULL)
		*off = (size_t)(p - buf) + 1;
	else if (whole)
		*off = 0;
	else
		return -1;
	*n = end - *off;
	return *n > 0 ? 0 : -1;
}

#define AUDIT_TAIL_MAX	(1024 * 1024)	/* longer lines are not ours */

/*
 * The seq and hash of path's last record: 1, 0 if path is missing or holds
 * no complete line, -1 if its last line is not usable (why in *why). fd,
 * if not -1, writes to path: a torn last line is cut off. Under audit_mu.
 */
static int
audit_tail(const char *path, int fd, uint64_t *seq, unsigned char *hash,
    const char **why)
{
	struct stat	 st;
	struct iovec	 iov;
	char		*buf;
	size_t		 len, got = 0, off = 0, n = 0, keep;
	off_t		 start;
	ssize_t		 r;
	int		 rfd, rc;

	if ((rfd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1) {
		if (errno == ENOENT)
			return 0;
		log_warn("audit_log %s", path);
		*why = "it cannot be read";
		return -1;
	}
	if (fstat(rfd, &st) == -1 || !S_ISREG(st.st_mode)) {
		close(rfd);
		*why = "not a regular file";
		return -1;
	}
	if (st.st_size == 0) {
		close(rfd);
		return 0;
	}
	len = st.st_size > AUDIT_TAIL_MAX ? AUDIT_TAIL_MAX :
	    (size_t)st.st_size;
	start = st.st_size - (off_t)len;
	if ((buf = malloc(len)) == NULL) {
		close(rfd);
		*why = "out of memory";
		return -1;
	}
	while (got < len) {
		r = pread(rfd, buf + got, len - got, start + (off_t)got);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(rfd);
	if (got < len) {
		free(buf);
		*why = "it cannot be read";
		return -1;
	}
	rc = audit_last_line(buf, len, start == 0, &off, &n, &keep);
	if (fd != -1 && (keep > 0 || start == 0) &&
	    start + (off_t)keep < st.st_size) {
		log_warnx("audit_log %s: torn last line (%jd bytes, no "
		    "newline) cut off", path,
		    (intmax_t)(st.st_size - start - (off_t)keep));
		if (ftruncate(fd, start + (off_t)keep) == -1)
			log_warn("audit_log %s: ftruncate", path);
	}
	if (rc == -1) {
		free(buf);
		if (start == 0 && keep == 0)
			return 0;
		*why = "its last line is not an xdrproxy audit record";
		return -1;
	}
	iov.iov_base = buf + off;
	iov.iov_len = n;
	if (audit_line_seq(buf + off, n, seq) == -1) {
		*why = "its last line is not an xdrproxy audit record";
		rc = -1;
	} else if (audit_hash(&iov, 1, hash) == -1) {
		*why = "out of memory";
		rc = -1;
	} else
		rc = 1;
	free(buf);
	return rc;
}

/*
 * Continue the chain from the last record of path (written through fd), or
 * of PATH.1 if path is empty (just rotated); else a new chain starts, and
 * that is logged. Under audit_mu.
 */
static void
audit_chain_load(const char *path, int fd)
{
	unsigned char	 h[AUDIT_HASH_LEN];
	const char	*why = NULL, *from = path;
	char		*older = NULL;
	uint64_t	 seq = 0;
	int		 rc;

	if (strcmp(path, "-") == 0) {
		rc = -1;
		why = "standard output";
	} else if (strcmp(path, "off") == 0) {
		rc = -1;
		why = "audit_log = off: syslog only";
	} else if ((rc = audit_tail(path, fd, &seq, h, &why)) == 0) {
		if (asprintf(&older, "%s.1", path) == -1) {
			older = NULL;
			rc = -1;
			why = "out of memory";
		} else {
			from = older;
			if ((rc = audit_tail(older, -1, &seq, h, &why)) == 0)
				why = "no earlier record";
		}
	}
	if (rc == 1) {
		audit_seq = seq;
		memcpy(audit_prev, h, sizeof(audit_prev));
		log_info("audit chain continues from %s: seq %" PRIu64, from,
		    seq);
	} else {
		audit_seq = 0;
		memset(audit_prev, 0, sizeof(audit_prev));
		log_info("audit chain: a new chain starts (%s: %s)", from, why);
	}
	audit_ckpt_seq = audit_seq;
	free(older);
}

/*
 * The HMAC key the chain uses from now on (copied), or none (NULL): plain
 * SHA-256. 0, or -1 (out of memory, or no HMAC in libcrypto).
 */
int
audit_set_key(const unsigned char *key, size_t len)
{
	unsigned char	*copy = NULL;

	if (key != NULL) {
		if (audit_mac == NULL &&
		    (audit_mac = EVP_MAC_fetch(NULL, "HMAC", NULL)) == NULL)
			return -1;
		if ((copy = malloc(len > 0 ? len : 1)) == NULL)
			return -1;
		memcpy(copy, key, len);
	}
	pthread_mutex_lock(&audit_mu);
	if (audit_key != NULL) {
		OPENSSL_cleanse(audit_key, audit_keylen);
		free(audit_key);
	}
	audit_key = copy;
	audit_keylen = key != NULL ? len : 0;
	pthread_mutex_unlock(&audit_mu);
	return 0;
}

/* Is key (NULL: none) the one in use? */
int
audit_key_same(const unsigned char *key, size_t len)
{
	int	 same;

	pthread_mutex_lock(&audit_mu);
	if (key == NULL || audit_key == NULL)
		same = key == NULL && audit_key == NULL;
	else
		same = len == audit_keylen &&
		    CRYPTO_memcmp(key, audit_key, len) == 0;
	pthread_mutex_unlock(&audit_mu);
	return same;
}

/* Open the audit log, a path or "-" for standard output; load the chain. */
int
audit_open(const char *path, char **cause)
{
	*cause = NULL;
	pthread_mutex_lock(&audit_mu);
	if ((audit_path = strdup(path)) == NULL) {
		pthread_mutex_unlock(&audit_mu);
		*cause = strdup("out of memory");
		return -1;
	}
	if ((audit_fd = audit_open_fd(path, cause)) == -1) {
		pthread_mutex_unlock(&audit_mu);
		return -1;
	}
	audit_regular = audit_is_regular(audit_fd);
	audit_off = strcmp(path, "off") == 0;
	pthread_mutex_unlock(&audit_mu);
	return 0;
}

/*
 * Load the chain of the log audit_open() opened: before the first record,
 * and not for -t (it would cut a torn line of a log in use).
 */
void
audit_chain_init(void)
{
	pthread_mutex_lock(&audit_mu);
	if (audit_fd != -1)
		audit_chain_load(audit_path, audit_fd);
	pthread_mutex_unlock(&audit_mu);
}

/*
 * Write to path from now on (a reload that changed audit_log, or the same
 * path after log rotation); the old file stays in use on failure. dup3()
 * swaps the file under the same descriptor. The chain goes on in memory
 * whatever the path (a seq is never used twice); the caller sends a
 * checkpoint first, so the old file's last records are covered.
 */
int
audit_switch(const char *path, char **cause)
{
	char	*copy;
	int	 fd;

	*cause = NULL;
	if ((copy = strdup(path)) == NULL) {
		*cause = strdup("out of memory");
		return -1;
	}
	pthread_mutex_lock(&audit_mu);
	if ((fd = audit_open_fd(path, cause)) == -1) {
		pthread_mutex_unlock(&audit_mu);
		free(copy);
		return -1;
	}
	if (dup3(fd, audit_fd, O_CLOEXEC) == -1) {
		if (asprintf(cause, "audit_log %s: %s", path,
		    strerror(errno)) == -1)
			*cause = NULL;
		pthread_mutex_unlock(&audit_mu);
		close(fd);
		free(copy);
		return -1;
	}
	audit_regular = audit_is_regular(audit_fd);
	audit_off = strcmp(path, "off") == 0;
	close(fd);
	free(audit_path);
	audit_path = copy;
	/* A new file: nothing failed on it yet. */
	atomic_store_explicit(&audit_errno, 0, memory_order_relaxed);
	pthread_mutex_unlock(&audit_mu);
	return 0;
}

/* Reopen after log rotation (SIGUSR1, SIGHUP); nothing to do for "-". */
int
audit_reopen(char **cause)
{
	*cause = NULL;
	if (audit_path == NULL || strcmp(audit_path, "-") == 0 ||
	    strcmp(audit_path, "off") == 0)
		return 0;
	return audit_switch(audit_path, cause);
}

void
audit_close(void)
{
	pthread_mutex_lock(&audit_mu);
	if (audit_fd != -1)
		close(audit_fd);
	audit_fd = -1;
	free(audit_path);
	audit_path = NULL;
	if (audit_key != NULL) {
		OPENSSL_cleanse(audit_key, audit_keylen);
		free(audit_key);
	}
	audit_key = NULL;
	audit_keylen = 0;
	EVP_MAC_free(audit_mac);
	audit_mac = NULL;
	EVP_MD_CTX_free(audit_dc);
	audit_dc = NULL;
	EVP_MD_free(audit_md);
	audit_md = NULL;
	pthread_mutex_unlock(&audit_mu);
}

/* Decimal digits of v at the end of buf[20]; returns the first one. */
static char *
audit_u64(char *end, uint64_t v)
{
	do {
		*--end = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	return end;
}

static void
audit_add_u64(struct evbuffer *b, const char *key, size_t keylen, uint64_t v)
{
	char	 buf[24], *p = audit_u64(buf + sizeof(buf), v);

	evbuffer_add(b, key, keylen);
	evbuffer_add(b, p, (size_t)(buf + sizeof(buf) - p));
}

/* "2026-11-24T07:35:12.345Z" for ms since the epoch; 24 bytes. */
static void
audit_timestamp(char *out, uint64_t ms)
{
	struct tm	 tm;
	time_t		 sec = (time_t)(ms / 1000);
	unsigned int	 f[7], i;
	static const unsigned char width[7] = { 4, 2, 2, 2, 2, 2, 3 };
	static const char sep[7] = { '-', '-', 'T', ':', ':', '.', 'Z' };
	char		*p = out;

	gmtime_r(&sec, &tm);
	f[0] = (unsigned int)tm.tm_year + 1900;
	f[1] = (unsigned int)tm.tm_mon + 1;
	f[2] = (unsigned int)tm.tm_mday;
	f[3] = (unsigned int)tm.tm_hour;
	f[4] = (unsigned int)tm.tm_min;
	f[5] = (unsigned int)tm.tm_sec;
	f[6] = (unsigned int)(ms % 1000);
	for (i = 0; i < 7; i++) {
		p += width[i];
		for (char *q = p - 1; q >= p - width[i]; q--) {
			*q = (char)('0' + f[i] % 10);
			f[i] /= 10;
		}
		*p++ = sep[i];
	}
}

#define AUDIT_LIT(b, s)	evbuffer_add((b), (s), sizeof(s) - 1)

/* A record was not written: count it, remember why. */
static void
audit_failed(int e)
{
	atomic_fetch_add_explicit(&audit_errors, 1, memory_order_relaxed);
	atomic_store_explicit(&audit_errno, e, memory_order_relaxed);
}

/* The fields both records share, from "ts" to "query". */
static void
audit_format_head(struct evbuffer *b, const struct request *req)
{
	char		 stamp[24];
	const char	*query = req->req_uri + req->req_path_len;

	audit_timestamp(stamp, req->req_start_wall_ms);
	AUDIT_LIT(b, "\"ts\":\"");
	evbuffer_add(b, stamp, sizeof(stamp));
	AUDIT_LIT(b, "\",\"request_id\":\"");
	evbuffer_add(b, req->req_id, REQUEST_ID_LEN);
	AUDIT_LIT(b, "\",\"tenant\":");
	json_add_cstring(b, req->req_tenant->tn_name);
	AUDIT_LIT(b, ",\"key_id\":");
	json_add_cstring(b, req->req_tenant->tn_key_id);
	AUDIT_LIT(b, ",\"client\":");
	json_add_cstring(b, req->req_client);
	AUDIT_LIT(b, ",\"method\":");
	json_add_cstring(b, req->req_method);
	AUDIT_LIT(b, ",\"path\":");
	json_add_string(b, req->req_uri, req->req_path_len);
	AUDIT_LIT(b, ",\"query\":");
	if (*query == '?')
		query++;
	json_add_cstring(b, query);
}

/* The fields both records end with: the policy rule, the caller. */
static void
audit_format_end(struct evbuffer *b, const struct request *req)
{
	if (req->req_rule != NULL) {
		AUDIT_LIT(b, ",\"rule\":");
		json_add_cstring(b, req->req_rule);
	}
	caller_json(b, req->req_caller);
	AUDIT_LIT(b, "}\n");
}

/* req's record after the chain fields (from "ts" on, '\n' included). */
static void
audit_format(struct evbuffer *b, const struct request *req,
    enum audit_type type)
{
	const char	*outcome = audit_outcome_name(req->req_outcome);
	uint64_t	 us = req->req_end_mono_us - req->req_start_mono_us;

	audit_format_head(b, req);
	if (type == AUDIT_REQUEST) {
		audit_add_u64(b, ",\"bytes_in\":", 12, req->req_bytes_in);
		audit_format_end(b, req);
		return;
	}
	audit_add_u64(b, ",\"status\":", 10, (uint64_t)req->req_status);
	audit_add_u64(b, ",\"bytes_in\":", 12, req->req_bytes_in);
	audit_add_u64(b, ",\"bytes_out\":", 13, req->req_bytes_out);
	audit_add_u64(b, ",\"duration_ms\":", 15, (us + 500) / 1000);
	audit_add_u64(b, ",\"queued_ms\":", 13, (req->req_queued_us + 500) /
	    1000);
	audit_add_u64(b, ",\"attempts\":", 12, req->req_attempts);
	AUDIT_LIT(b, ",\"outcome\":\"");
	evbuffer_add(b, outcome, strlen(outcome));
	AUDIT_LIT(b, "\",\"error\":");
	json_add_cstring(b, req->req_outcome == OUTCOME_OK ? NULL :
	    req->req_error);
	audit_format_end(b, req);
}


/*
 * Append one record: the chain fields, then body (bodylen bytes, its '\n'
 * last). 0, or -1 with errno: then no seq is used and no byte of it stays
 * in a regular file. With sync, the record is on disk when 0 comes back (a
 * failed fdatasync leaves it written, seq used, and returns -1). Under
 * audit_mu.
 */
static int
audit_append(const char *type, const char *body, size_t bodylen, int sync)
{
	struct iovec	 iov[2];
	unsigned char	 h[AUDIT_HASH_LEN];
	char		 pre[160], hex[2 * AUDIT_HASH_LEN];
	uint64_t	 seq = audit_seq + 1;
	off_t		 before = -1;
	size_t		 done = 0, total;
	ssize_t		 n;
	int		 i = 0, e, prelen;

	if (audit_fd == -1) {
		errno = EBADF;
		return -1;
	}
	audit_hex(hex, audit_prev);
	prelen = snprintf(pre, sizeof(pre), "{\"type\":\"%s\",\"seq\":%" PRIu64
	    ",\"prev\":\"%.*s\"%s,", type, seq, (int)sizeof(hex), hex,
	    audit_seq == 0 ? ",\"chain\":\"start\"" : "");
	iov[0].iov_base = pre;
	iov[0].iov_len = (size_t)prelen;
	iov[1].iov_base = (void *)(uintptr_t)body;
	iov[1].iov_len = bodylen - 1;
	if (audit_hash(iov, 2, h) == -1) {
		errno = ENOMEM;
		return -1;
	}
	iov[1].iov_len = bodylen;
	total = (size_t)prelen + bodylen;
	if (audit_regular)
		before = lseek(audit_fd, 0, SEEK_END);
	while (done < total) {
		n = writev(audit_fd, iov + i, 2 - i);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			e = n == 0 ? EIO : errno;
			/* No torn line: the next record would join it. */
			if (done > 0 && before != -1 &&
			    ftruncate(audit_fd, before) == -1)
				log_warn("audit_log: cutting back a partial "
				    "record");
			errno = e;
			return -1;
		}
		done += (size_t)n;
		while (n > 0 && i < 2) {
			if ((size_t)n >= iov[i].iov_len) {
				n -= (ssize_t)iov[i].iov_len;
				i++;
			} else {
				iov[i].iov_base = (char *)iov[i].iov_base + n;
				iov[i].iov_len -= (size_t)n;
				n = 0;
			}
		}
	}
	/*
	 * Syslog sinks (sink.c) get the line without its '\n'. With
	 * audit_log = off they are the only sink: a record none took is not
	 * written, and its seq is not used.
	 */
	/* The write advanced iov: the line again, without its '\n'. */
	iov[0].iov_base = pre;
	iov[0].iov_len = (size_t)prelen;
	iov[1].iov_base = (void *)(uintptr_t)body;
	iov[1].iov_len = bodylen - 1;
	if (sink_count() > 0 && sink_send("audit", iov, 2, audit_off) == -1 &&
	    audit_off) {
		errno = EIO;
		return -1;
	}
	audit_seq = seq;
	memcpy(audit_prev, h, sizeof(audit_prev));
	/* Standard output may be a pipe: nothing to sync there. */
	if (sync && fdatasync(audit_fd) == -1 && errno != EINVAL)
		return -1;
	return 0;
}

/*
 * Append req's record of the given type; -1 (errno set) if it could not be
 * written whole (or, with audit_fsync, synced: a request record).
 */
int
audit_write(const struct request *req, enum audit_type type)
{
	struct evbuffer	*audit_buf = req->req_worker->w_audit;
	const char	*p;
	size_t		 len;
	int		 rc, e = 0;

	audit_format(audit_buf, req, type);
	len = evbuffer_get_length(audit_buf);
	p = (const char *)evbuffer_pullup(audit_buf, -1);
	pthread_mutex_lock(&audit_mu);
	if (p == NULL) {
		rc = -1;
		errno = ENOMEM;
	} else
		rc = audit_append(type == AUDIT_REQUEST ? "request" :
		    "response", p, len, type == AUDIT_REQUEST &&
		    req->req_conf->cf_audit_fsync);
	if (rc == -1)
		e = errno;
	pthread_mutex_unlock(&audit_mu);
	evbuffer_drain(audit_buf, evbuffer_get_length(audit_buf));
	if (rc == -1) {
		audit_failed(e);
		errno = e;
		return -1;
	}
	/* Read first: no store to the shared line while all is well. */
	if (atomic_load_explicit(&audit_errno, memory_order_relaxed) != 0)
		atomic_store_explicit(&audit_errno, 0, memory_order_relaxed);
	return 0;
}

/*
 * The checkpoint: 1 with the seq of the last record and its hash (the prev
 * the next record will carry, 64 hex digits and a NUL) if a record was
 * written since the last call, else 0.
 */
int
audit_checkpoint(uint64_t *seq, char hash[2 * AUDIT_HASH_LEN + 1])
{
	int	 rc = 0;

	pthread_mutex_lock(&audit_mu);
	if (audit_seq != audit_ckpt_seq) {
		*seq = audit_seq;
		audit_hex(hash, audit_prev);
		hash[2 * AUDIT_HASH_LEN] = '\0';
		audit_ckpt_seq = audit_seq;
		rc = 1;
	}
	pthread_mutex_unlock(&audit_mu);
	return rc;
}

/* A request refused because its record could not be written. */
void
audit_count_unavailable(void)
{
	atomic_fetch_add_explicit(&audit_unavailable, 1, memory_order_relaxed);
}

/* Requests refused for want of an audit record, since the start. */
uint64_t
audit_unavailable_total(void)
{
	return atomic_load_explicit(&audit_unavailable, memory_order_relaxed);
}

/* Records that could not be written, since the start. */
uint64_t
audit_write_errors(void)
{
	return atomic_load_explicit(&audit_errors, memory_order_relaxed);
}

/*
 * Can records be written, as far as is known (/readyz)? 0, or -1 with why
 * in buf. Known from the last write: one that failed makes the audit not
 * ready until a write succeeds or the log is reopened. After a failure
 * for want of space in a regular file, free space on its file system is
 * enough: otherwise a proxy taken out of service for it would never get
 * the request that shows it can write again.
 */
int
audit_ready(char *buf, size_t len)
{
	struct stat	 st;
	struct statvfs	 sv;
	int		 e;

	if (audit_fd == -1) {
		snprintf(buf, len, "audit log not open");
		return -1;
	}
	if ((e = atomic_load_explicit(&audit_errno, memory_order_relaxed)) ==
	    0)
		return 0;
	if (e == ENOSPC && fstat(audit_fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    fstatvfs(audit_fd, &sv) == 0 && sv.f_bavail > 0)
		return 0;
	snprintf(buf, len, "last write failed: %s", strerror(e));
	return -1;
}
