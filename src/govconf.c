/*
 * govconf.c: the governor's settings, as config.c reads them: rates
 * ("10/s"), limit lines ("GLOB RATE [burst=N]"), the rate backend's
 * address, defaults, and what a tenant takes from [proxy]. Pure: no I/O.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xdrproxy.h"

/* A tenant's setting that was not given: it takes [proxy]'s. */
#define GOV_UNSET_RATE	UINT64_MAX

/*
 * The vendor's documented per-call limits, checked after the tenant's and
 * [proxy]'s own limit lines. Sources are in the README ("Rate governor").
 */
static const struct {
	const char	*glob;
	const char	*rate;
} gov_builtin[] = {
	/* "The API includes a limit rate of 10 API requests per minute." */
	{ "/public_api/v1/incidents/get_incident_extra_data*", "10/min" }
};

/*
 * "N/s", "N/min", "N/h" (also /sec, /second, /m, /minute, /hour), or "0"
 * (off): the time between requests. 0, or -1 if malformed.
 */
int
gov_parse_rate(const char *s, struct gov_rate *gr)
{
	unsigned long long	 n, period_us;
	const char		*unit;
	char			*end;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	n = strtoull(s, &end, 10);
	if (errno != 0 || n > 1000000)
		return -1;
	if (*end == '\0' && n == 0) {
		gr->gr_interval_us = 0;
		snprintf(gr->gr_text, sizeof(gr->gr_text), "0");
		return 0;
	}
	if (*end != '/' || n == 0)
		return -1;
	unit = end + 1;
	if (strcmp(unit, "s") == 0 || strcmp(unit, "sec") == 0 ||
	    strcmp(unit, "second") == 0)
		period_us = 1000000ULL;
	else if (strcmp(unit, "m") == 0 || strcmp(unit, "min") == 0 ||
	    strcmp(unit, "minute") == 0)
		period_us = 60 * 1000000ULL;
	else if (strcmp(unit, "h") == 0 || strcmp(unit, "hour") == 0)
		period_us = 3600 * 1000000ULL;
	else
		return -1;
	gr->gr_interval_us = period_us / n;
	if (gr->gr_interval_us == 0)
		gr->gr_interval_us = 1;
	snprintf(gr->gr_text, sizeof(gr->gr_text), "%llu/%s", n,
	    period_us == 1000000ULL ? "s" : period_us == 60 * 1000000ULL ?
	    "min" : "h");
	return 0;
}

/* The requests per second a rate allows (for metrics and messages). */
double
gov_rate_per_s(uint64_t interval_us)
{
	return interval_us == 0 ? 0 : 1e6 / (double)interval_us;
}

static int
gov_limit_push(struct gov_conf *gc, const char *glob,
    const struct gov_rate *gr, unsigned int burst, const char *file,
    int line)
{
	struct gov_limit_conf	*v, *l;

	v = reallocarray(gc->gc_limits, gc->gc_nlimits + 1, sizeof(*v));
	if (v == NULL)
		return -1;
	gc->gc_limits = v;
	l = &v[gc->gc_nlimits];
	memset(l, 0, sizeof(*l));
	if ((l->glc_glob = strdup(glob)) == NULL)
		return -1;
	if (file != NULL && (l->glc_file = strdup(file)) == NULL) {
		free(l->glc_glob);
		return -1;
	}
	l->glc_rate = *gr;
	l->glc_burst = burst;
	l->glc_line = line;
	gc->gc_nlimits++;
	return 0;
}

/*
 * One "limit = GLOB RATE [burst=N]" line. A per-call limit has burst 1
 * unless the line says otherwise. 0, or -1 with *why (to be freed; NULL
 * when out of memory).
 */
int
gov_limit_add(struct gov_conf *gc, const char *value, const char *file,
    int line, char **why)
{
	struct gov_rate	 gr;
	char		*copy, *glob, *rate, *extra, *end, *canon = NULL;
	char		*last = NULL;
	const char	*cwhy;
	unsigned long	 burst = 1;
	int		 rc = -1;

	*why = NULL;
	if ((copy = strdup(value)) == NULL)
		return -1;
	glob = strtok_r(copy, " \t", &last);
	rate = strtok_r(NULL, " \t", &last);
	extra = strtok_r(NULL, " \t", &last);
	if (glob == NULL || rate == NULL) {
		*why = strdup("limit: expected 'GLOB RATE [burst=N]', e.g. "
		    "/public_api/v1/incidents/get_incident_extra_data* 10/min");
		goto done;
	}
	if (glob[0] != '/' && glob[0] != '*') {
		if (asprintf(why, "limit: '%s' is not a path glob (starts "
		    "with / or *)", glob) == -1)
			*why = NULL;
		goto done;
	}
	if (gov_parse_rate(rate, &gr) == -1) {
		if (asprintf(why, "limit: bad rate '%s' (e.g. 10/s, 10/min, "
		    "0 for none)", rate) == -1)
			*why = NULL;
		goto done;
	}
	if (extra != NULL) {
		errno = 0;
		if (strncmp(extra, "burst=", 6) != 0 ||
		    !isdigit((unsigned char)extra[6]) ||
		    (burst = strtoul(extra + 6, &end, 10)) == 0 ||
		    errno != 0 || *end != '\0' || burst > 100000 ||
		    strtok_r(NULL, " \t", &last) != NULL) {
			if (asprintf(why, "limit: expected burst=N (1 to "
			    "100000) after the rate, not '%s'", extra) == -1)
				*why = NULL;
			goto done;
		}
	}
	if ((canon = malloc(strlen(glob) + 1)) == NULL)
		goto done;
	if (policy_canon(glob, strlen(glob), canon, &cwhy) == -1) {
		if (asprintf(why, "limit: glob '%s': %s", glob, cwhy) == -1)
			*why = NULL;
		goto done;
	}
	if (gov_limit_push(gc, canon, &gr, (unsigned int)burst, file,
	    line) == 0)
		rc = 0;
done:
	free(canon);
	free(copy);
	return rc;
}

/*
 * A retry_paths glob: a path glob as limit takes, in canonical form.
 * 0, or -1 with *why (static).
 */
int
gov_retry_path_check(const char *glob, const char **why)
{
	char	*canon;
	int	 rc;

	if (glob[0] != '/' && glob[0] != '*') {
		*why = "a path glob starts with / or *";
		return -1;
	}
	if ((canon = malloc(strlen(glob) + 1)) == NULL) {
		*why = "out of memory";
		return -1;
	}
	rc = policy_canon(glob, strlen(glob), canon, why);
	free(canon);
	return rc;
}

/*
 * rate_backend: redis://HOST:PORT[/DB], rediss://HOST:PORT[/DB] (TLS) or
 * unix:/PATH[?db=N]. 0, or -1 with *why (static).
 */
int
gov_backend_parse(const char *s, struct gov_backend *gb, const char **why)
{
	const char	*p, *colon, *slash;
	char		*end;
	unsigned long	 port, db = 0;
	size_t		 hlen;

	memset(gb, 0, sizeof(*gb));
	if (strcmp(s, "local") == 0) {
		gb->gb_kind = GOV_BACKEND_LOCAL;
		return 0;
	}
	if (strncmp(s, "unix:", 5) == 0) {
		p = s + 5;
		if (*p != '/') {
			*why = "unix: needs an absolute path";
			return -1;
		}
		hlen = strcspn(p, "?");
		if (hlen >= sizeof(gb->gb_host)) {
			*why = "path too long";
			return -1;
		}
		memcpy(gb->gb_host, p, hlen);
		gb->gb_host[hlen] = '\0';
		if (p[hlen] == '?') {
			errno = 0;
			if (strncmp(p + hlen, "?db=", 4) != 0 ||
			    !isdigit((unsigned char)p[hlen + 4]) ||
			    (db = strtoul(p + hlen + 4, &end, 10)) > 10000 ||
			    errno != 0 || *end != '\0') {
				*why = "after the path, only ?db=N";
				return -1;
			}
		}
		gb->gb_kind = GOV_BACKEND_UNIX;
		gb->gb_db = (int)db;
		return 0;
	}
	if (strncmp(s, "redis://", 8) == 0) {
		gb->gb_kind = GOV_BACKEND_REDIS;
		p = s + 8;
	} else if (strncmp(s, "rediss://", 9) == 0) {
		/* hiredis 0.14 (Debian 12) has no TLS: no hiredis_ssl. */
		*why = "rediss:// (TLS) is not supported by the hiredis this "
		    "xdrproxy is built with (Debian 12's 0.14 has no TLS): reach "
		    "Redis through unix:/PATH, or a TLS tunnel on loopback";
		return -1;
	} else {
		*why = "expected redis://HOST:PORT[/DB], rediss://HOST:PORT[/DB] "
		    "or unix:/PATH";
		return -1;
	}
	if (strchr(p, '@') != NULL) {
		*why = "no credentials in the address: use redis_password_file";
		return -1;
	}
	if (*p == '[') {
		if ((colon = strchr(p, ']')) == NULL || colon[1] != ':') {
			*why = "expected [IPv6]:PORT";
			return -1;
		}
		hlen = (size_t)(colon - p - 1);
		p++;
		colon++;
	} else {
		if ((colon = strchr(p, ':')) == NULL) {
			*why = "a port is required (HOST:PORT; Redis uses 6379)";
			return -1;
		}
		hlen = (size_t)(colon - p);
	}
	if (hlen == 0 || hlen >= sizeof(gb->gb_host)) {
		*why = "bad host";
		return -1;
	}
	memcpy(gb->gb_host, p, hlen);
	gb->gb_host[hlen] = '\0';
	errno = 0;
	if (!isdigit((unsigned char)colon[1]) ||
	    (port = strtoul(colon + 1, &end, 10)) == 0 || port > 65535 ||
	    errno != 0 || (*end != '\0' && *end != '/')) {
		*why = "bad port";
		return -1;
	}
	gb->gb_port = (int)port;
	slash = end;
	if (*slash == '/' && slash[1] != '\0') {
		errno = 0;
		if (!isdigit((unsigned char)slash[1]) ||
		    (db = strtoul(slash + 1, &end, 10)) > 10000 ||
		    errno != 0 || *end != '\0') {
			*why = "bad database number after '/'";
			return -1;
		}
	}
	gb->gb_db = (int)db;
	return 0;
}

/* [proxy]'s settings before the file: the defaults of every tenant. */
void
gov_conf_defaults(struct gov_conf *gc)
{
	memset(gc, 0, sizeof(*gc));
	gov_parse_rate("10/s", &gc->gc_rate);
	gc->gc_burst = 10;
	gc->gc_max_concurrent = 0;
	gc->gc_queue_max = 1000;
	gc->gc_queue_timeout = 30 * 1000;
	gc->gc_xql_max = 4;
	gc->gc_xql_slot_timeout = 10 * 60 * 1000;
	gc->gc_retry_max = 3;
	gc->gc_retry_base = 500;
	gc->gc_retry_cap = 10 * 1000;
}

/* A tenant's settings before its section: all unset. */
void
gov_conf_unset(struct gov_conf *gc)
{
	memset(gc, 0, sizeof(*gc));
	gc->gc_rate.gr_interval_us = GOV_UNSET_RATE;
	gc->gc_burst = -1;
	gc->gc_max_concurrent = -1;
	gc->gc_xql_max = -1;
	gc->gc_retry_max = -1;
	/* 0 is below the minimum of the others: unset. */
}

/*
 * [proxy] read: its defaults where the file said nothing, then the
 * built-in per-call limits after its own lines.
 */
int
gov_conf_finish(struct gov_conf *gc)
{
	struct gov_rate	 gr;
	size_t		 i;

	if (gc->gc_retry_paths.sl_n == 0 &&
	    (strlist_add(&gc->gc_retry_paths, "*/get_*") == -1 ||
	    strlist_add(&gc->gc_retry_paths, "*/healthcheck") == -1))
		return -1;
	for (i = 0; i < sizeof(gov_builtin) / sizeof(gov_builtin[0]); i++) {
		if (gov_parse_rate(gov_builtin[i].rate, &gr) == -1 ||
		    gov_limit_push(gc, gov_builtin[i].glob, &gr, 1, NULL,
		    0) == -1)
			return -1;
	}
	return 0;
}

/* What a tenant did not set, it takes from [proxy] (px, finished). */
int
gov_conf_inherit(struct gov_conf *gc, const struct gov_conf *px)
{
	const struct gov_limit_conf	*l;
	size_t				 i;

	if (gc->gc_rate.gr_interval_us == GOV_UNSET_RATE)
		gc->gc_rate = px->gc_rate;
	if (gc->gc_burst == -1)
		gc->gc_burst = px->gc_burst;
	if (gc->gc_max_concurrent == -1)
		gc->gc_max_concurrent = px->gc_max_concurrent;
	if (gc->gc_queue_max == 0)
		gc->gc_queue_max = px->gc_queue_max;
	if (gc->gc_queue_timeout == 0)
		gc->gc_queue_timeout = px->gc_queue_timeout;
	if (gc->gc_xql_max == -1)
		gc->gc_xql_max = px->gc_xql_max;
	if (gc->gc_xql_slot_timeout == 0)
		gc->gc_xql_slot_timeout = px->gc_xql_slot_timeout;
	if (gc->gc_retry_max == -1)
		gc->gc_retry_max = px->gc_retry_max;
	if (gc->gc_retry_base == 0)
		gc->gc_retry_base = px->gc_retry_base;
	if (gc->gc_retry_cap == 0)
		gc->gc_retry_cap = px->gc_retry_cap;
	if (gc->gc_retry_paths.sl_n == 0) {
		for (i = 0; i < px->gc_retry_paths.sl_n; i++)
			if (strlist_add(&gc->gc_retry_paths,
			    px->gc_retry_paths.sl_v[i]) == -1)
				return -1;
	}
	/* The tenant's own limit lines first: the first match wins. */
	for (i = 0; i < px->gc_nlimits; i++) {
		l = &px->gc_limits[i];
		if (gov_limit_push(gc, l->glc_glob, &l->glc_rate, l->glc_burst,
		    l->glc_file, l->glc_line) == -1)
			return -1;
	}
	return 0;
}

void
gov_conf_free(struct gov_conf *gc)
{
	size_t	 i;

	for (i = 0; i < gc->gc_nlimits; i++) {
		free(gc->gc_limits[i].glc_glob);
		free(gc->gc_limits[i].glc_file);
	}
	free(gc->gc_limits);
	gc->gc_limits = NULL;
	gc->gc_nlimits = 0;
	strlist_free(&gc->gc_retry_paths);
}

/* Does glob match a canonical path? A trailing '/' is not significant. */
static int
gov_glob_path(const char *glob, const char *path, size_t len)
{
	return policy_glob_match(glob, path, len) || (len > 1 &&
	    path[len - 1] == '/' && policy_glob_match(glob, path, len - 1));
}

/* The limit line that applies to a canonical path (len bytes), or NULL. */
const struct gov_limit_conf *
gov_limit_find(const struct gov_conf *gc, const char *path, size_t len)
{
	size_t	 i;

	for (i = 0; i < gc->gc_nlimits; i++)
		if (gov_glob_path(gc->gc_limits[i].glc_glob, path, len))
			return &gc->gc_limits[i];
	return NULL;
}

/* Is a canonical path one of retry_paths (safe to send again)? */
int
gov_retry_path(const struct gov_conf *gc, const char *path, size_t len)
{
	size_t	 i;

	for (i = 0; i < gc->gc_retry_paths.sl_n; i++)
		if (gov_glob_path(gc->gc_retry_paths.sl_v[i], path, len))
			return 1;
	return 0;
}
