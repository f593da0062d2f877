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
#include <sys/statvfs.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "xdrproxy.h"

static int		 audit_fd = -1;
static char		*audit_path;
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

/* Open the audit log: a path, or "-" for standard output. */
int
audit_open(const char *path, char **cause)
{
	*cause = NULL;
	if ((audit_path = strdup(path)) == NULL) {
		*cause = strdup("out of memory");
		return -1;
	}
	if ((audit_fd = audit_open_fd(path, cause)) == -1)
		return -1;
	audit_off = strcmp(path, "off") == 0;
	return 0;
}

/*
 * Write to path from now on (a reload that changed audit_log, or the same
 * path after log rotation); the old file stays in use on failure. dup3()
 * swaps the file under the same descriptor at once, so workers writing
 * meanwhile never see a closed one.
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
	if ((fd = audit_open_fd(path, cause)) == -1) {
		free(copy);
		return -1;
	}
	if (dup3(fd, audit_fd, O_CLOEXEC) == -1) {
		if (asprintf(cause, "audit_log %s: %s", path,
		    strerror(errno)) == -1)
			*cause = NULL;
		close(fd);
		free(copy);
		return -1;
	}
	close(fd);
	audit_off = strcmp(copy, "off") == 0;	/* path may be audit_path */
	free(audit_path);
	audit_path = copy;
	/* A new file: nothing failed on it yet. */
	atomic_store_explicit(&audit_errno, 0, memory_order_relaxed);
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
	if (audit_fd != -1)
		close(audit_fd);
	audit_fd = -1;
	free(audit_path);
	audit_path = NULL;
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

/* The record for req, as one line, appended to b. */
static void
audit_format(struct evbuffer *b, const struct request *req)
{
	char		 stamp[24];
	const char	*query = req->req_uri + req->req_path_len;
	const char	*outcome = audit_outcome_name(req->req_outcome);
	uint64_t	 us = req->req_end_mono_us - req->req_start_mono_us;

	audit_timestamp(stamp, req->req_start_wall_ms);
	AUDIT_LIT(b, "{\"ts\":\"");
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
	audit_add_u64(b, ",\"status\":", 10, (uint64_t)req->req_status);
	audit_add_u64(b, ",\"bytes_in\":", 12, req->req_bytes_in);
	audit_add_u64(b, ",\"bytes_out\":", 13, req->req_bytes_out);
	audit_add_u64(b, ",\"duration_ms\":", 15, (us + 500) / 1000);
	AUDIT_LIT(b, ",\"outcome\":\"");
	evbuffer_add(b, outcome, strlen(outcome));
	AUDIT_LIT(b, "\",\"error\":");
	json_add_cstring(b, req->req_outcome == OUTCOME_OK ? NULL :
	    req->req_error);
	caller_json(b, &req->req_caller);
	AUDIT_LIT(b, "}\n");
}

/* Append req's record; -1 (errno set) if it could not be written whole. */
int
audit_write(const struct request *req)
{
	struct evbuffer	*audit_buf = req->req_worker->w_audit;
	const char	*p;
	size_t		 len;
	ssize_t		 n;
	int		 rc = 0;

	if (audit_fd == -1) {
		audit_failed(EBADF);
		errno = EBADF;
		return -1;
	}
	audit_format(audit_buf, req);
	len = evbuffer_get_length(audit_buf);
	p = (const char *)evbuffer_pullup(audit_buf, -1);
	while (len > 0) {
		n = write(audit_fd, p, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			audit_failed(errno);
			rc = -1;
			break;
		}
		p += n;
		len -= (size_t)n;
	}
	/* Syslog sinks (sink.c): the line without its '\n'. With audit_log = off
	 * they are the only sink, and a record none took fails the write. */
	if ((rc == 0 || audit_off) && sink_send("audit", (const char *)
	    evbuffer_pullup(audit_buf, -1), evbuffer_get_length(audit_buf) -
	    1) == -1 && audit_off) {
		errno = EIO;
		audit_failed(errno);
		rc = -1;
	}
	evbuffer_drain(audit_buf, evbuffer_get_length(audit_buf));
	/* Read first: no store to the shared line while all is well. */
	if (rc == 0 && atomic_load_explicit(&audit_errno,
	    memory_order_relaxed) != 0)
		atomic_store_explicit(&audit_errno, 0, memory_order_relaxed);
	return rc;
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
