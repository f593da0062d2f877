/*
 * audit.c: one JSON object per line for every request that reached the
 * proxy, whatever its outcome. Records are written with one write(2) each
 * to a file opened O_APPEND, so a crash loses nothing already answered and
 * several writers never interleave. Never the key, the Authorization value
 * or bodies.
 */
#include "config.h"

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
static struct evbuffer	*audit_buf;

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

static int
audit_open_fd(const char *path, char **cause)
{
	int	 fd;

	if (strcmp(path, "-") == 0)
		return STDOUT_FILENO;
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY,
	    0640);
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
	if ((audit_buf = evbuffer_new()) == NULL ||
	    (audit_path = strdup(path)) == NULL) {
		*cause = strdup("out of memory");
		return -1;
	}
	if ((audit_fd = audit_open_fd(path, cause)) == -1)
		return -1;
	return 0;
}

/* Reopen after log rotation (SIGHUP); the old file stays open on failure. */
int
audit_reopen(char **cause)
{
	int	 fd;

	*cause = NULL;
	if (audit_path == NULL || strcmp(audit_path, "-") == 0)
		return 0;
	if ((fd = audit_open_fd(audit_path, cause)) == -1)
		return -1;
	close(audit_fd);
	audit_fd = fd;
	return 0;
}

void
audit_close(void)
{
	if (audit_fd != -1 && audit_fd != STDOUT_FILENO)
		close(audit_fd);
	audit_fd = -1;
	free(audit_path);
	audit_path = NULL;
	if (audit_buf != NULL)
		evbuffer_free(audit_buf);
	audit_buf = NULL;
}

/* The record for req, as one line, appended to b. */
void
audit_format(struct evbuffer *b, const struct request *req)
{
	struct tm	 tm;
	time_t		 sec = (time_t)(req->req_start_wall_ms / 1000);
	char		 stamp[32];
	const char	*query = req->req_uri + req->req_path_len;
	uint64_t	 us = req->req_end_mono_us - req->req_start_mono_us;

	gmtime_r(&sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	evbuffer_add_printf(b, "{\"ts\":\"%s.%03uZ\",\"request_id\":\"%s\","
	    "\"tenant\":", stamp, (unsigned)(req->req_start_wall_ms % 1000),
	    req->req_id);
	json_add_cstring(b, req->req_tenant->tn_name);
	evbuffer_add(b, ",\"key_id\":", 10);
	json_add_cstring(b, req->req_tenant->tn_key_id);
	evbuffer_add(b, ",\"client\":", 10);
	json_add_cstring(b, req->req_client);
	evbuffer_add(b, ",\"method\":", 10);
	json_add_cstring(b, req->req_method);
	evbuffer_add(b, ",\"path\":", 8);
	json_add_string(b, req->req_uri, req->req_path_len);
	evbuffer_add(b, ",\"query\":", 9);
	if (*query == '?')
		query++;
	json_add_cstring(b, query);
	evbuffer_add_printf(b, ",\"status\":%d,\"bytes_in\":%" PRIu64
	    ",\"bytes_out\":%" PRIu64 ",\"duration_ms\":%" PRIu64
	    ",\"outcome\":\"%s\",\"error\":", req->req_status,
	    req->req_bytes_in, req->req_bytes_out, (us + 500) / 1000,
	    audit_outcome_name(req->req_outcome));
	json_add_cstring(b, req->req_outcome == OUTCOME_OK ? NULL :
	    req->req_error);
	evbuffer_add(b, "}\n", 2);
}

/* Append req's record; -1 (errno set) if it could not be written whole. */
int
audit_write(const struct request *req)
{
	const char	*p;
	size_t		 len;
	ssize_t		 n;
	int		 rc = 0;

	if (audit_fd == -1 || audit_buf == NULL) {
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
			rc = -1;
			break;
		}
		p += n;
		len -= (size_t)n;
	}
	evbuffer_drain(audit_buf, evbuffer_get_length(audit_buf));
	return rc;
}
