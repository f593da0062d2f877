/*
 * config.c: the configuration file. inih parses the INI syntax; this file
 * feeds it one line at a time (to know line numbers and section headers),
 * turns settings into struct config, applies defaults and validates.
 * Errors come back as "FILE:LINE: message" through *cause.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <event2/util.h>
#include <ini.h>

#include "xdrproxy.h"

enum {
	P_AUDIT_LOG, P_MAX_BODY, P_MAX_HEADERS, P_CLIENT_TIMEOUT,
	P_CONNECT_TIMEOUT, P_UPSTREAM_TIMEOUT, P_SHUTDOWN_TIMEOUT,
	P_MAX_CONNECTIONS, P_IDLE_CONNECTIONS, P_WORKERS
};
static const char *const config_proxy_keys[] = {
	"audit_log", "max_body", "max_headers", "client_timeout",
	"connect_timeout", "upstream_timeout", "shutdown_timeout",
	"max_connections", "idle_connections", "workers", NULL
};

#define CONFIG_MAX_WORKERS	64

enum {
	T_LISTEN, T_FQDN, T_KEY_ID, T_KEY_FILE, T_KEY_TYPE, T_CA_FILE,
	T_CONNECT_TO, T_SERVER_NAME, T_ALLOW_PATH, T_HTTP2
};
static const char *const config_tenant_keys[] = {
	"listen", "fqdn", "key_id", "key_file", "key_type", "ca_file",
	"connect_to", "server_name", "allow_path", "http2", NULL
};
/* Keys that may appear more than once in a section. */
#define T_REPEATABLE	((1 << T_LISTEN) | (1 << T_SERVER_NAME) | \
			 (1 << T_ALLOW_PATH))

#define CONFIG_DEFAULT_ALLOW_PATH	"/public_api/"

struct config_parse {
	struct config	*cp_conf;
	FILE		*cp_file;
	const char	*cp_path;
	int		 cp_line;
	int		 cp_in_proxy;	/* current section is [proxy] */
	int		 cp_proxy_line;	/* line of [proxy], 0 if none yet */
	struct tenant	*cp_tenant;	/* current [tenant NAME] */
	char		*cp_error;	/* first error, "file:line: ..." */
	char		*cp_linebuf;
	size_t		 cp_linesize;
};

static void	config_error(struct config_parse *, int, const char *, ...)
		    __attribute__((format(printf, 3, 4)));

static void
config_error(struct config_parse *cp, int line, const char *fmt, ...)
{
	va_list	 ap;
	char	*msg;

	if (cp->cp_error != NULL)
		return;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) == -1)
		msg = NULL;
	va_end(ap);
	if (msg == NULL || asprintf(&cp->cp_error, "%s:%d: %s", cp->cp_path,
	    line, msg) == -1)
		cp->cp_error = strdup("out of memory");
	free(msg);
}

static int
strlist_add(struct strlist *sl, const char *s)
{
	char	**v;

	v = reallocarray(sl->sl_v, sl->sl_n + 1, sizeof(*v));
	if (v == NULL)
		return -1;
	sl->sl_v = v;
	if ((sl->sl_v[sl->sl_n] = strdup(s)) == NULL)
		return -1;
	sl->sl_n++;
	return 0;
}

static void
strlist_free(struct strlist *sl)
{
	size_t	 i;

	for (i = 0; i < sl->sl_n; i++)
		free(sl->sl_v[i]);
	free(sl->sl_v);
	sl->sl_v = NULL;
	sl->sl_n = 0;
}

/* "16m", "512k", "1g", "100": bytes. Returns 0 or -1. */
int
config_parse_size(const char *s, size_t *out)
{
	unsigned long long	 v, mult = 1;
	char			*end;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return -1;
	if (*end != '\0') {
		switch (tolower((unsigned char)*end)) {
		case 'k':
			mult = 1024ULL;
			break;
		case 'm':
			mult = 1024ULL * 1024;
			break;
		case 'g':
			mult = 1024ULL * 1024 * 1024;
			break;
		default:
			return -1;
		}
		end++;
		if (*end == 'b' || *end == 'B')
			end++;
		if (*end != '\0')
			return -1;
	}
	if (v > SIZE_MAX / mult)
		return -1;
	*out = (size_t)(v * mult);
	return 0;
}

/* "500ms", "30s", "2m", "1h", "30" (seconds): milliseconds. */
int
config_parse_duration(const char *s, unsigned int *out)
{
	unsigned long long	 v, mult = 1000;
	char			*end;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return -1;
	if (strcmp(end, "ms") == 0)
		mult = 1;
	else if (strcmp(end, "s") == 0 || *end == '\0')
		mult = 1000;
	else if (strcmp(end, "m") == 0)
		mult = 60 * 1000;
	else if (strcmp(end, "h") == 0)
		mult = 3600 * 1000;
	else
		return -1;
	if (v > UINT_MAX / mult)
		return -1;
	*out = (unsigned int)(v * mult);
	return 0;
}

static int
config_parse_bool(const char *s, int *out)
{
	if (strcasecmp(s, "yes") == 0 || strcasecmp(s, "on") == 0 ||
	    strcasecmp(s, "true") == 0 || strcmp(s, "1") == 0)
		*out = 1;
	else if (strcasecmp(s, "no") == 0 || strcasecmp(s, "off") == 0 ||
	    strcasecmp(s, "false") == 0 || strcmp(s, "0") == 0)
		*out = 0;
	else
		return -1;
	return 0;
}

/*
 * "127.0.0.1:8080", "[::1]:8080", "localhost:8080" or "unix:/path".
 * Returns 0, or -1 with *why (a static string) set.
 */
int
config_parse_listen(const char *s, struct listen_addr *la, char **why)
{
	struct sockaddr_un	*sun;
	struct sockaddr_in	*sin = (struct sockaddr_in *)&la->la_ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)&la->la_ss;
	char			 buf[128];
	const char		*colon;
	int			 len, port;

	memset(la, 0, sizeof(*la));
	snprintf(la->la_text, sizeof(la->la_text), "%s", s);
	if (strncmp(s, "unix:", 5) == 0) {
		s += 5;
		if (*s != '/') {
			*why = "unix socket path must be absolute";
			return -1;
		}
		if (strlen(s) >= sizeof(la->la_path)) {
			*why = "unix socket path too long";
			return -1;
		}
		la->la_unix = 1;
		strcpy(la->la_path, s);
		sun = (struct sockaddr_un *)&la->la_ss;
		sun->sun_family = AF_UNIX;
		strcpy(sun->sun_path, s);
		la->la_sslen = sizeof(*sun);
		return 0;
	}
	if ((colon = strrchr(s, ':')) == NULL || colon[1] == '\0' ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
	    strlen(colon + 1) > 5 || atoi(colon + 1) > 65535) {
		*why = "expected host:port, [v6addr]:port or unix:/path";
		return -1;
	}
	port = atoi(colon + 1);
	len = (int)(colon - s);
	if (s[0] == '[') {
		if (len < 3 || s[len - 1] != ']') {
			*why = "expected [v6addr]:port";
			return -1;
		}
		snprintf(buf, sizeof(buf), "%.*s", len - 2, s + 1);
	} else
		snprintf(buf, sizeof(buf), "%.*s", len, s);
	if (strcasecmp(buf, "localhost") == 0)
		snprintf(buf, sizeof(buf), "127.0.0.1");
	else if (strcmp(buf, "*") == 0)
		snprintf(buf, sizeof(buf), "0.0.0.0");
	if (s[0] != '[' && evutil_inet_pton(AF_INET, buf, &sin->sin_addr) ==
	    1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		la->la_sslen = sizeof(*sin);
	} else if (s[0] == '[' && evutil_inet_pton(AF_INET6, buf,
	    &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		la->la_sslen = sizeof(*sin6);
	} else {
		*why = "expected a numeric address (or localhost) and a port";
		return -1;
	}
	return 0;
}

static int
config_valid_hostname(const char *s)
{
	size_t	 len = strlen(s), i;

	if (len == 0 || len > 253 || s[0] == '.' || s[0] == '-' ||
	    s[len - 1] == '.' || s[len - 1] == '-')
		return 0;
	for (i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '.' &&
		    s[i] != '-')
			return 0;
	return strstr(s, "..") == NULL;
}

static int
config_key_index(const char *const *keys, const char *name)
{
	int	 i;

	for (i = 0; keys[i] != NULL; i++)
		if (strcmp(keys[i], name) == 0)
			return i;
	return -1;
}

static int
config_proxy_set(struct config_parse *cp, const char *name,
    const char *value)
{
	struct config	*cf = cp->cp_conf;
	int		 k, line = cp->cp_line;
	size_t		 sz;
	unsigned int	*dur = NULL;
	long		*count = NULL;
	char		*end;
	long		 v;

	if ((k = config_key_index(config_proxy_keys, name)) == -1) {
		config_error(cp, line, "unknown key '%s' in [proxy]", name);
		return -1;
	}
	if (cf->cf_seen[k] != 0) {
		config_error(cp, line, "'%s' already set on line %d", name,
		    cf->cf_seen[k]);
		return -1;
	}
	cf->cf_seen[k] = line;
	if (*value == '\0') {
		config_error(cp, line, "'%s' needs a value", name);
		return -1;
	}
	switch (k) {
	case P_AUDIT_LOG:
		if (strcmp(value, "-") != 0 && value[0] != '/') {
			config_error(cp, line, "audit_log must be an absolute "
			    "path or \"-\" (stdout)");
			return -1;
		}
		free(cf->cf_audit_log);
		if ((cf->cf_audit_log = strdup(value)) == NULL)
			goto nomem;
		cf->cf_audit_log_line = line;
		return 0;
	case P_MAX_BODY:
	case P_MAX_HEADERS:
		if (config_parse_size(value, &sz) == -1 || sz == 0 ||
		    sz > (size_t)1 << 40) {
			config_error(cp, line, "%s: bad size '%s' (e.g. 16m, "
			    "512k)", name, value);
			return -1;
		}
		if (k == P_MAX_BODY)
			cf->cf_max_body = sz;
		else
			cf->cf_max_headers = sz;
		return 0;
	case P_CLIENT_TIMEOUT:
		dur = &cf->cf_client_timeout;
		break;
	case P_CONNECT_TIMEOUT:
		dur = &cf->cf_connect_timeout;
		break;
	case P_UPSTREAM_TIMEOUT:
		dur = &cf->cf_upstream_timeout;
		break;
	case P_SHUTDOWN_TIMEOUT:
		dur = &cf->cf_shutdown_timeout;
		break;
	case P_MAX_CONNECTIONS:
		count = &cf->cf_max_connections;
		break;
	case P_IDLE_CONNECTIONS:
		count = &cf->cf_idle_connections;
		break;
	case P_WORKERS:
		if (strcmp(value, "auto") == 0) {
			cf->cf_workers = 0;
			return 0;
		}
		errno = 0;
		v = strtol(value, &end, 10);
		if (errno != 0 || *end != '\0' || v < 1 ||
		    v > CONFIG_MAX_WORKERS) {
			config_error(cp, line, "workers: expected auto or a "
			    "number from 1 to %d, not '%s'", CONFIG_MAX_WORKERS,
			    value);
			return -1;
		}
		cf->cf_workers = (int)v;
		return 0;
	}
	if (dur != NULL) {
		if (config_parse_duration(value, dur) == -1 || *dur == 0) {
			config_error(cp, line, "%s: bad duration '%s' (e.g. "
			    "30s, 500ms, 2m)", name, value);
			return -1;
		}
		return 0;
	}
	errno = 0;
	v = strtol(value, &end, 10);
	if (errno != 0 || *end != '\0' || v < 0 || v > 100000) {
		config_error(cp, line, "%s: expected a number from 0 to "
		    "100000, not '%s'", name, value);
		return -1;
	}
	*count = v;
	return 0;
nomem:
	config_error(cp, line, "out of memory");
	return -1;
}

static int
config_tenant_listen(struct config_parse *cp, struct tenant *tn,
    const char *value)
{
	struct listen_addr	*la;
	char			*why;

	if ((la = calloc(1, sizeof(*la))) == NULL) {
		config_error(cp, cp->cp_line, "out of memory");
		return -1;
	}
	if (config_parse_listen(value, la, &why) == -1) {
		config_error(cp, cp->cp_line, "listen '%s': %s", value, why);
		free(la);
		return -1;
	}
	la->la_line = cp->cp_line;
	TAILQ_INSERT_TAIL(&tn->tn_listens, la, la_entry);
	return 0;
}

/* Store a copy of value in *dst, replacing what was there. */
static int
config_strset(struct config_parse *cp, char **dst, const char *value)
{
	free(*dst);
	if ((*dst = strdup(value)) == NULL) {
		config_error(cp, cp->cp_line, "out of memory");
		return -1;
	}
	return 0;
}

static int
config_tenant_set(struct config_parse *cp, struct tenant *tn,
    const char *name, const char *value)
{
	struct listen_addr	 la;
	char			*why;
	int			 k, line = cp->cp_line;
	size_t			 i;

	if ((k = config_key_index(config_tenant_keys, name)) == -1) {
		config_error(cp, line, "unknown key '%s' in [tenant %s]", name,
		    tn->tn_name);
		return -1;
	}
	if (tn->tn_seen[k] != 0 && !(T_REPEATABLE & (1 << k))) {
		config_error(cp, line, "'%s' already set on line %d", name,
		    tn->tn_seen[k]);
		return -1;
	}
	tn->tn_seen[k] = line;
	if (*value == '\0') {
		config_error(cp, line, "'%s' needs a value", name);
		return -1;
	}
	switch (k) {
	case T_LISTEN:
		return config_tenant_listen(cp, tn, value);
	case T_FQDN:
		if (strncasecmp(value, "https://", 8) == 0 ||
		    strncasecmp(value, "api-", 4) == 0) {
			config_error(cp, line, "fqdn: give the bare tenant "
			    "FQDN (requests go to https://api-<fqdn>), not "
			    "'%s'", value);
			return -1;
		}
		if (!config_valid_hostname(value)) {
			config_error(cp, line, "fqdn: '%s' is not a host name",
			    value);
			return -1;
		}
		return config_strset(cp, &tn->tn_fqdn, value);
	case T_KEY_ID:
		if (strspn(value, "0123456789") != strlen(value) ||
		    strlen(value) > 20) {
			config_error(cp, line, "key_id: expected the numeric "
			    "API key ID, not '%s'", value);
			return -1;
		}
		return config_strset(cp, &tn->tn_key_id, value);
	case T_KEY_FILE:
		if (value[0] != '/') {
			config_error(cp, line, "key_file must be an absolute "
			    "path");
			return -1;
		}
		tn->tn_key_file_line = line;
		return config_strset(cp, &tn->tn_key_file, value);
	case T_KEY_TYPE:
		if (strcmp(value, "advanced") == 0)
			tn->tn_key_type = KEY_ADVANCED;
		else if (strcmp(value, "standard") == 0)
			tn->tn_key_type = KEY_STANDARD;
		else {
			config_error(cp, line, "key_type: expected advanced "
			    "or standard, not '%s'", value);
			return -1;
		}
		return 0;
	case T_CA_FILE:
		if (access(value, R_OK) == -1) {
			config_error(cp, line, "ca_file %s: %s", value,
			    strerror(errno));
			return -1;
		}
		return config_strset(cp, &tn->tn_ca_file, value);
	case T_CONNECT_TO:
		if (config_parse_listen(value, &la, &why) == -1 ||
		    la.la_unix) {
			config_error(cp, line, "connect_to '%s': expected "
			    "host:port or [v6addr]:port", value);
			return -1;
		}
		return config_strset(cp, &tn->tn_connect_to, value);
	case T_SERVER_NAME:
		if (!config_valid_hostname(value)) {
			config_error(cp, line, "server_name: '%s' is not a "
			    "host name", value);
			return -1;
		}
		if (strlist_add(&tn->tn_server_names, value) == -1)
			goto nomem;
		return 0;
	case T_ALLOW_PATH:
		if (value[0] != '/') {
			config_error(cp, line, "allow_path must start with "
			    "'/'");
			return -1;
		}
		for (i = 0; value[i] != '\0'; i++) {
			if ((unsigned char)value[i] <= 0x20 ||
			    (unsigned char)value[i] >= 0x7f) {
				config_error(cp, line, "allow_path: bad "
				    "character");
				return -1;
			}
		}
		if (strlist_add(&tn->tn_allow_paths, value) == -1)
			goto nomem;
		return 0;
	case T_HTTP2:
		if (config_parse_bool(value, &tn->tn_http2) == -1) {
			config_error(cp, line, "http2: expected yes or no");
			return -1;
		}
		return 0;
	}
	return 0;
nomem:
	config_error(cp, line, "out of memory");
	return -1;
}

/* inih calls this for every "name = value" line. */
static int
config_handler(void *arg, const char *section, const char *name,
    const char *value)
{
	struct config_parse	*cp = arg;

	if (cp->cp_error != NULL)
		return 1;
	if (cp->cp_in_proxy)
		config_proxy_set(cp, name, value);
	else if (cp->cp_tenant != NULL)
		config_tenant_set(cp, cp->cp_tenant, name, value);
	else
		config_error(cp, cp->cp_line, "'%s' outside a section; put "
		    "it under [proxy] or [tenant NAME]", name);
	return 1;
}

static struct tenant *
config_tenant_new(const char *name, int line)
{
	struct tenant	*tn;

	if ((tn = calloc(1, sizeof(*tn))) == NULL)
		return NULL;
	if ((tn->tn_name = strdup(name)) == NULL) {
		free(tn);
		return NULL;
	}
	tn->tn_line = line;
	TAILQ_INIT(&tn->tn_listens);
	return tn;
}

/* A section header line (already known to start with '['). */
static void
config_section(struct config_parse *cp, char *line)
{
	struct config	*cf = cp->cp_conf;
	struct tenant	*tn;
	char		*end, *name;
	size_t		 i;

	cp->cp_in_proxy = 0;
	cp->cp_tenant = NULL;
	if ((end = strchr(line, ']')) == NULL) {
		config_error(cp, cp->cp_line, "section header without ']'");
		return;
	}
	*end = '\0';
	name = line + 1;
	name += strspn(name, " \t");
	for (i = strlen(name); i > 0 && isspace((unsigned char)name[i - 1]);
	    i--)
		name[i - 1] = '\0';
	if (strcmp(name, "proxy") == 0) {
		if (cp->cp_proxy_line != 0) {
			config_error(cp, cp->cp_line, "[proxy] already "
			    "appears on line %d", cp->cp_proxy_line);
			return;
		}
		cp->cp_proxy_line = cp->cp_line;
		cp->cp_in_proxy = 1;
		return;
	}
	if (strncmp(name, "tenant", 6) != 0 ||
	    (name[6] != ' ' && name[6] != '\t' && name[6] != '\0')) {
		config_error(cp, cp->cp_line, "unknown section [%s]; expected "
		    "[proxy] or [tenant NAME]", name);
		return;
	}
	name += 6;
	name += strspn(name, " \t");
	if (*name == '\0' || strlen(name) > 40 ||
	    strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789._-") != strlen(name)) {
		config_error(cp, cp->cp_line, "tenant name must be 1 to 40 "
		    "of [A-Za-z0-9._-]");
		return;
	}
	TAILQ_FOREACH(tn, &cf->cf_tenants, tn_entry) {
		if (strcmp(tn->tn_name, name) == 0) {
			config_error(cp, cp->cp_line, "[tenant %s] already "
			    "appears on line %d", name, tn->tn_line);
			return;
		}
	}
	if ((tn = config_tenant_new(name, cp->cp_line)) == NULL) {
		config_error(cp, cp->cp_line, "out of memory");
		return;
	}
	TAILQ_INSERT_TAIL(&cf->cf_tenants, tn, tn_entry);
	cp->cp_tenant = tn;
}

/*
 * inih's line reader. Counting lines here gives the handler its line
 * number; section headers are handled here so that empty sections and
 * their line numbers are known. Leading blanks are removed, so indented
 * settings are not taken for continuation lines.
 */
static char *
config_read_line(char *str, int num, void *arg)
{
	struct config_parse	*cp = arg;
	ssize_t			 n;
	char			*line;

	if (cp->cp_error != NULL)
		return NULL;
	if ((n = getline(&cp->cp_linebuf, &cp->cp_linesize,
	    cp->cp_file)) == -1) {
		if (ferror(cp->cp_file))
			config_error(cp, cp->cp_line + 1, "read error: %s",
			    strerror(errno));
		return NULL;
	}
	cp->cp_line++;
	line = cp->cp_linebuf;
	if (cp->cp_line == 1 && strncmp(line, "\xef\xbb\xbf", 3) == 0)
		line += 3;	/* UTF-8 byte order mark */
	if (memchr(cp->cp_linebuf, '\0', (size_t)n) != NULL) {
		config_error(cp, cp->cp_line, "NUL byte in line");
		return NULL;
	}
	line += strspn(line, " \t");
	n = (ssize_t)strlen(line);
	if (*line == ';' || *line == '#') {
		/* Comments may be long; inih only needs to see one. */
		snprintf(str, (size_t)num, "#\n");
		return str;
	}
	if (n >= num - 1) {
		config_error(cp, cp->cp_line, "line too long (at most %d "
		    "characters)", num - 2);
		return NULL;
	}
	if (*line == '[') {
		config_section(cp, line);
		snprintf(str, (size_t)num, "#\n");
		return cp->cp_error != NULL ? NULL : str;
	}
	memcpy(str, line, (size_t)n + 1);
	return str;
}

static void
tenant_free(struct tenant *tn)
{
	struct listen_addr	*la;

	while ((la = TAILQ_FIRST(&tn->tn_listens)) != NULL) {
		TAILQ_REMOVE(&tn->tn_listens, la, la_entry);
		free(la);
	}
	strlist_free(&tn->tn_server_names);
	strlist_free(&tn->tn_allow_paths);
	keystore_free(tn->tn_key);
	curl_slist_free_all(tn->tn_curl_connect_to);
	free(tn->tn_name);
	free(tn->tn_fqdn);
	free(tn->tn_host);
	free(tn->tn_base_url);
	free(tn->tn_key_id);
	free(tn->tn_key_file);
	free(tn->tn_ca_file);
	free(tn->tn_connect_to);
	free(tn);
}

void
config_free(struct config *cf)
{
	struct tenant	*tn;

	if (cf == NULL)
		return;
	while ((tn = TAILQ_FIRST(&cf->cf_tenants)) != NULL) {
		TAILQ_REMOVE(&cf->cf_tenants, tn, tn_entry);
		tenant_free(tn);
	}
	free(cf->cf_file);
	free(cf->cf_audit_log);
	free(cf);
}

static int
config_same_addr(const struct listen_addr *a, const struct listen_addr *b)
{
	const struct sockaddr_in	*a4, *b4;
	const struct sockaddr_in6	*a6, *b6;

	if (a->la_unix || b->la_unix)
		return a->la_unix && b->la_unix &&
		    strcmp(a->la_path, b->la_path) == 0;
	if (a->la_ss.ss_family != b->la_ss.ss_family)
		return 0;
	if (a->la_ss.ss_family == AF_INET) {
		a4 = (const struct sockaddr_in *)&a->la_ss;
		b4 = (const struct sockaddr_in *)&b->la_ss;
		return a4->sin_port != 0 && a4->sin_port == b4->sin_port &&
		    a4->sin_addr.s_addr == b4->sin_addr.s_addr;
	}
	a6 = (const struct sockaddr_in6 *)&a->la_ss;
	b6 = (const struct sockaddr_in6 *)&b->la_ss;
	return a6->sin6_port != 0 && a6->sin6_port == b6->sin6_port &&
	    memcmp(&a6->sin6_addr, &b6->sin6_addr, sizeof(a6->sin6_addr)) == 0;
}

/* curl's --connect-to for the tenant: "api-<fqdn>:443:HOST:PORT". */
static int
config_connect_to(struct tenant *tn)
{
	struct curl_slist	*sl;
	char			*s;

	if (asprintf(&s, "%s:443:%s", tn->tn_host, tn->tn_connect_to) == -1)
		return -1;
	sl = curl_slist_append(NULL, s);
	free(s);
	if (sl == NULL)
		return -1;
	tn->tn_curl_connect_to = sl;
	return 0;
}

/* Required keys, defaults and cross-tenant checks after parsing. */
static int
config_validate(struct config_parse *cp)
{
	struct config		*cf = cp->cp_conf;
	struct tenant		*tn, *tn2;
	struct listen_addr	*la, *la2;
	static const int	 required[] = { T_LISTEN, T_FQDN, T_KEY_ID,
				    T_KEY_FILE };
	size_t			 i;
	long			 n;

	if (TAILQ_EMPTY(&cf->cf_tenants)) {
		config_error(cp, cp->cp_line, "no [tenant NAME] section");
		return -1;
	}
	/* workers = auto: one per online CPU. */
	if (cf->cf_workers == 0) {
		n = sysconf(_SC_NPROCESSORS_ONLN);
		cf->cf_workers = n < 1 ? 1 : n > CONFIG_MAX_WORKERS ?
		    CONFIG_MAX_WORKERS : (int)n;
	}
	TAILQ_FOREACH(tn, &cf->cf_tenants, tn_entry) {
		for (i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
			if (tn->tn_seen[required[i]] == 0) {
				config_error(cp, tn->tn_line, "[tenant %s] "
				    "needs '%s'", tn->tn_name,
				    config_tenant_keys[required[i]]);
				return -1;
			}
		}
		if (tn->tn_allow_paths.sl_n == 0 &&
		    strlist_add(&tn->tn_allow_paths,
		    CONFIG_DEFAULT_ALLOW_PATH) == -1)
			goto nomem;
		if (asprintf(&tn->tn_host, "api-%s", tn->tn_fqdn) == -1) {
			tn->tn_host = NULL;
			goto nomem;
		}
		if (asprintf(&tn->tn_base_url, "https://%s", tn->tn_host) ==
		    -1) {
			tn->tn_base_url = NULL;
			goto nomem;
		}
		if (tn->tn_connect_to != NULL && config_connect_to(tn) == -1)
			goto nomem;
		/* Two listeners on one address: in this tenant or another. */
		TAILQ_FOREACH(la, &tn->tn_listens, la_entry) {
			for (tn2 = TAILQ_FIRST(&cf->cf_tenants); tn2 != NULL;
			    tn2 = TAILQ_NEXT(tn2, tn_entry)) {
				TAILQ_FOREACH(la2, &tn2->tn_listens, la_entry) {
					if (la2 == la)
						break;
					if (!config_same_addr(la, la2))
						continue;
					config_error(cp, la->la_line, "listen "
					    "%s: already used by [tenant %s] "
					    "on line %d", la->la_text,
					    tn2->tn_name, la2->la_line);
					return -1;
				}
				if (la2 == la)
					break;
			}
		}
	}
	return 0;
nomem:
	config_error(cp, cp->cp_line, "out of memory");
	return -1;
}

/*
 * Read the configuration at path. Returns it, or NULL with *cause set
 * (to be freed by the caller).
 */
struct config *
config_load(const char *path, char **cause)
{
	struct config_parse	 cp;
	struct config		*cf;
	int			 rc;

	*cause = NULL;
	memset(&cp, 0, sizeof(cp));
	cp.cp_path = path;
	if ((cf = calloc(1, sizeof(*cf))) == NULL ||
	    (cf->cf_file = strdup(path)) == NULL ||
	    (cf->cf_audit_log = strdup("-")) == NULL) {
		config_free(cf);
		*cause = strdup("out of memory");
		return NULL;
	}
	TAILQ_INIT(&cf->cf_tenants);
	cf->cf_max_body = 16 * 1024 * 1024;
	cf->cf_max_headers = 64 * 1024;
	cf->cf_client_timeout = 60 * 1000;
	cf->cf_connect_timeout = 10 * 1000;
	cf->cf_upstream_timeout = 120 * 1000;
	cf->cf_shutdown_timeout = 30 * 1000;
	cf->cf_max_connections = 64;
	cf->cf_idle_connections = 0;
	cp.cp_conf = cf;

	if ((cp.cp_file = fopen(path, "r")) == NULL) {
		if (asprintf(cause, "%s: %s", path, strerror(errno)) == -1)
			*cause = NULL;
		config_free(cf);
		return NULL;
	}
	rc = ini_parse_stream(config_read_line, &cp, config_handler, &cp);
	if (rc > 0)
		config_error(&cp, rc, "expected 'key = value', [proxy] or "
		    "[tenant NAME]");
	else if (rc < 0)
		config_error(&cp, cp.cp_line, "out of memory");
	fclose(cp.cp_file);
	free(cp.cp_linebuf);
	if (cp.cp_error == NULL)
		config_validate(&cp);
	if (cp.cp_error != NULL) {
		*cause = cp.cp_error;
		config_free(cf);
		return NULL;
	}
	return cf;
}
