/*
 * config.c: the configuration file. inih parses the INI syntax; this file
 * feeds it one line at a time (to know line numbers and section headers),
 * turns settings into struct config, applies defaults and validates.
 * Errors come back as "FILE:LINE: message" through *cause.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <event2/util.h>
#include <ini.h>

#include "xdrproxy.h"

#define CONFIG_MAX_WORKERS	64
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

int
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

void
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
/*
 * A unix: listener's options after its path: mode=OCTAL (no more than
 * 0777) and group=NAME or group=GID. Parsing is single-threaded (the
 * main thread), so a message naming the value can live in a static.
 */
static int
config_listen_options(const char *s, struct listen_addr *la, char **why)
{
	static char	 msg[160];
	struct group	 gr, *grp;
	char		 opt[128], buf[4096], *end;
	const char	*val;
	size_t		 n;
	long		 v;

	for (;;) {
		s += strspn(s, " \t");
		if (*s == '\0')
			return 0;
		n = strcspn(s, " \t");
		snprintf(opt, sizeof(opt), "%.*s", (int)n, s);
		s += n;
		if (strncmp(opt, "mode=", 5) == 0) {
			val = opt + 5;
			errno = 0;
			v = strtol(val, &end, 8);
			if (*val == '\0' || *end != '\0' || errno != 0 ||
			    v < 0 || v > 0777 || strspn(val, "01234567") !=
			    strlen(val)) {
				snprintf(msg, sizeof(msg), "mode '%.32s': "
				    "expected octal permissions such as 0660",
				    val);
				*why = msg;
				return -1;
			}
			la->la_mode = (mode_t)v;
		} else if (strncmp(opt, "group=", 6) == 0) {
			val = opt + 6;
			grp = NULL;
			if (*val != '\0' && strspn(val, "0123456789") ==
			    strlen(val) && strlen(val) < 10)
				la->la_gid = (gid_t)strtoul(val, NULL, 10);
			else if (*val != '\0' && getgrnam_r(val, &gr, buf,
			    sizeof(buf), &grp) == 0 && grp != NULL)
				la->la_gid = gr.gr_gid;
			else {
				snprintf(msg, sizeof(msg), "group '%.64s': "
				    "no such group", val);
				*why = msg;
				return -1;
			}
		} else {
			snprintf(msg, sizeof(msg), "unknown option '%.64s' "
			    "(expected mode= or group=)", opt);
			*why = msg;
			return -1;
		}
	}
}

int
config_parse_listen(const char *s, struct listen_addr *la, char **why)
{
	struct sockaddr_un	*sun;
	struct sockaddr_in	*sin = (struct sockaddr_in *)&la->la_ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)&la->la_ss;
	char			 buf[128];
	const char		*colon;
	size_t			 plen;
	int			 len, port;

	memset(la, 0, sizeof(*la));
	snprintf(la->la_text, sizeof(la->la_text), "%s", s);
	la->la_mode = 0660;
	la->la_gid = (gid_t)-1;
	if (strncmp(s, "unix:", 5) == 0) {
		s += 5;
		if (*s != '/') {
			*why = "unix socket path must be absolute";
			return -1;
		}
		plen = strcspn(s, " \t");
		if (plen >= sizeof(la->la_path)) {
			*why = "unix socket path too long";
			return -1;
		}
		la->la_unix = 1;
		memcpy(la->la_path, s, plen);
		la->la_path[plen] = '\0';
		/* la_text: the address alone, as messages name it. */
		snprintf(la->la_text, sizeof(la->la_text), "unix:%s",
		    la->la_path);
		sun = (struct sockaddr_un *)&la->la_ss;
		sun->sun_family = AF_UNIX;
		strcpy(sun->sun_path, la->la_path);
		la->la_sslen = sizeof(*sun);
		return config_listen_options(s + plen, la, why);
	}
	if (strpbrk(s, " \t") != NULL) {
		*why = "options (mode=, group=) are for unix: sockets only";
		return -1;
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

/*
 * The settings of a section, one table each: name, type, where the value
 * goes (offsetof in struct config or struct tenant), limits. One setter,
 * config_set(), walks them. A setting's position in its table indexes
 * cf_seen / tn_seen, the line it was last set on (0: not set).
 */
enum config_type {
	CT_SIZE,	/* size_t: bytes, 16m, 512k, 100 */
	CT_DURATION,	/* unsigned int: ms, from 30s, 500ms, 2m, 1h, 30 */
	CT_INT,		/* int: a decimal number */
	CT_LONG,	/* long: a decimal number */
	CT_COUNT,	/* size_t: a decimal number */
	CT_BOOL,	/* int: yes/no, on/off, true/false, 1/0 */
	CT_ENUM,	/* an enum: the value's index in ck_names */
	CT_STRING,	/* char *: a copy of the value */
	CT_PATH,	/* char *: an absolute path */
	CT_LISTEN,	/* struct listen_addrs: one more listener */
	CT_STRLIST,	/* struct strlist: one more string */
	CT_RATE		/* struct gov_rate: "10/s", "10/min", 0 (govconf.c) */
};

#define CK_REPEAT	0x01	/* may appear more than once */
#define CK_REQUIRED	0x02	/* a [tenant] section needs it */
#define CK_AUTO		0x04	/* a number, or "auto" (stored as 0) */
#define CK_DASH		0x08	/* a path, or "-" (stdout) */
#define CK_OFF		0x10	/* a path, or "off" */

struct config_key {
	const char		 *ck_name;
	enum config_type	  ck_type;
	size_t			  ck_offset;
	long long		  ck_min;	/* numbers */
	long long		  ck_max;
	int			  ck_flags;
	const char *const	 *ck_names;	/* CT_ENUM, NULL-terminated */
	/* Checks the type does not make; reports its own error. */
	int			(*ck_check)(struct config_parse *,
				    const char *, const char *);
};

/* offsetof, and a compile-time check that the field has the C type t. */
#define CF(f, t)	(offsetof(struct config, f) + \
			    0 * sizeof(&((struct config *)0)->f == (t *)0))
#define TN(f, t)	(offsetof(struct tenant, f) + \
			    0 * sizeof(&((struct tenant *)0)->f == (t *)0))

#define CONFIG_SIZE_MAX	(1LL << 40)	/* sizes: 1 to 1 TiB */
#define CONFIG_MS_MAX	((long long)UINT_MAX)	/* durations: 1ms to 49 days */

static int	config_check_fqdn(struct config_parse *, const char *,
		    const char *);
static int	config_check_hostname(struct config_parse *, const char *,
		    const char *);
static int	config_check_key_id(struct config_parse *, const char *,
		    const char *);
static int	config_check_readable(struct config_parse *, const char *,
		    const char *);
static int	config_check_connect_to(struct config_parse *, const char *,
		    const char *);
static int	config_check_allow_path(struct config_parse *, const char *,
		    const char *);
static int	config_check_egress_proxy(struct config_parse *, const char *,
		    const char *);
static int	config_check_no_proxy(struct config_parse *, const char *,
		    const char *);
static int	config_check_pinned_pubkey(struct config_parse *,
		    const char *, const char *);
static int	config_check_credential(struct config_parse *, const char *,
		    const char *);
static int	config_check_key_command(struct config_parse *,
		    const char *, const char *);
static int	config_check_pkcs11_uri(struct config_parse *, const char *,
		    const char *);
static int	config_check_date(struct config_parse *, const char *,
		    const char *);
static int	config_check_syslog(struct config_parse *, const char *,
		    const char *);
static int	config_check_facility(struct config_parse *, const char *,
		    const char *);
static int	config_check_retry_path(struct config_parse *, const char *,
		    const char *);
static int	config_check_backend(struct config_parse *, const char *,
		    const char *);


/*
 * The governor's settings (governor.c): in [proxy] as the default of every
 * tenant, and in a tenant's section for that tenant. B is CF or TN.
 */
#define CONFIG_GOV_KEYS(B, f)						\
	{ "rate_limit", CT_RATE, B(f.gc_rate, struct gov_rate),	\
	    .ck_flags = 0 },						\
	{ "burst", CT_INT, B(f.gc_burst, int),				\
	    .ck_min = 1, .ck_max = 100000 },				\
	{ "max_concurrent", CT_LONG, B(f.gc_max_concurrent, long),	\
	    .ck_min = 0, .ck_max = 100000 },				\
	{ "queue_max", CT_COUNT, B(f.gc_queue_max, size_t),		\
	    .ck_min = 1, .ck_max = 1000000 },				\
	{ "queue_timeout", CT_DURATION,					\
	    B(f.gc_queue_timeout, unsigned int),			\
	    .ck_min = 1, .ck_max = 3600 * 1000 },			\
	{ "xql_max_running", CT_INT, B(f.gc_xql_max, int),		\
	    .ck_min = 0, .ck_max = 1000 },				\
	{ "xql_slot_timeout", CT_DURATION,				\
	    B(f.gc_xql_slot_timeout, unsigned int),			\
	    .ck_min = 1000, .ck_max = 24 * 3600 * 1000 },		\
	{ "retry_max", CT_INT, B(f.gc_retry_max, int),			\
	    .ck_min = 0, .ck_max = 10 },				\
	{ "retry_base", CT_DURATION, B(f.gc_retry_base, unsigned int),	\
	    .ck_min = 1, .ck_max = 600 * 1000 },			\
	{ "retry_cap", CT_DURATION, B(f.gc_retry_cap, unsigned int),	\
	    .ck_min = 1, .ck_max = 3600 * 1000 },			\
	{ "retry_paths", CT_STRLIST, B(f.gc_retry_paths, struct strlist), \
	    .ck_flags = CK_REPEAT, .ck_check = config_check_retry_path }

/* In the order of enum audit_fail. */
static const char *const config_audit_fails[] = { "closed", "open", NULL };

static const struct config_key config_proxy_keys[] = {
	{ "audit_log", CT_PATH, CF(cf_audit_log, char *),
	    .ck_flags = CK_DASH | CK_OFF },
	{ "audit_fsync", CT_BOOL, CF(cf_audit_fsync, int), .ck_flags = 0 },
	{ "audit_fail", CT_ENUM, CF(cf_audit_fail, int),
	    .ck_names = config_audit_fails },
	{ "audit_checkpoint_interval", CT_DURATION,
	    CF(cf_audit_checkpoint_interval, unsigned int),
	    .ck_min = 1000, .ck_max = CONFIG_MS_MAX },
	{ "audit_hmac_key_file", CT_PATH, CF(cf_audit_key_file, char *),
	    .ck_flags = 0 },
	{ "audit_hmac_key_name", CT_STRING, CF(cf_audit_key_name, char *),
	    .ck_flags = 0 },
	{ "audit_syslog", CT_STRLIST, CF(cf_audit_syslog, struct strlist),
	    .ck_flags = CK_REPEAT, .ck_check = config_check_syslog },
	{ "audit_syslog_queue", CT_COUNT, CF(cf_audit_syslog_queue, size_t),
	    .ck_min = 1, .ck_max = 1000000 },
	{ "audit_syslog_facility", CT_STRING,
	    CF(cf_audit_syslog_facility, char *),
	    .ck_check = config_check_facility },
	{ "max_body", CT_SIZE, CF(cf_max_body, size_t),
	    .ck_min = 1, .ck_max = CONFIG_SIZE_MAX },
	{ "max_headers", CT_SIZE, CF(cf_max_headers, size_t),
	    .ck_min = 1, .ck_max = CONFIG_SIZE_MAX },
	{ "max_header_count", CT_COUNT, CF(cf_max_header_count, size_t),
	    .ck_min = 1, .ck_max = 10000 },
	{ "max_clients", CT_LONG, CF(cf_max_clients, long),
	    .ck_min = 1, .ck_max = 1000000 },
	{ "client_timeout", CT_DURATION,
	    CF(cf_client_timeout, unsigned int),
	    .ck_min = 1, .ck_max = CONFIG_MS_MAX },
	{ "client_header_timeout", CT_DURATION,
	    CF(cf_client_header_timeout, unsigned int),
	    .ck_min = 1, .ck_max = CONFIG_MS_MAX },
	{ "client_body_timeout", CT_DURATION,
	    CF(cf_client_body_timeout, unsigned int),
	    .ck_min = 1, .ck_max = CONFIG_MS_MAX },
	{ "keepalive_timeout", CT_DURATION,
	    CF(cf_keepalive_timeout, unsigned int),
	    .ck_min = 1, .ck_max = CONFIG_MS_MAX },
	{ "connect_timeout", CT_DURATION,
	    CF(cf_connect_timeout, unsigned int),
	    .ck_min = 1, .ck_max = CONFIG_MS_MAX },
	{ "upstream_timeout", CT_DURATION,
	    CF(cf_upstream_timeout, unsigned int),
	    .ck_min = 1, .ck_max = CONFIG_MS_MAX },
	{ "shutdown_timeout", CT_DURATION,
	    CF(cf_shutdown_timeout, unsigned int),
	    .ck_min = 1, .ck_max = CONFIG_MS_MAX },
	{ "max_connections", CT_LONG, CF(cf_max_connections, long),
	    .ck_min = 0, .ck_max = 100000 },
	{ "idle_connections", CT_LONG, CF(cf_idle_connections, long),
	    .ck_min = 0, .ck_max = 100000 },
	{ "workers", CT_INT, CF(cf_workers, int),
	    .ck_min = 1, .ck_max = CONFIG_MAX_WORKERS, .ck_flags = CK_AUTO },
	{ "egress_proxy", CT_STRING, CF(cf_egress_proxy, char *),
	    .ck_check = config_check_egress_proxy },
	{ "no_proxy", CT_STRING, CF(cf_no_proxy, char *),
	    .ck_check = config_check_no_proxy },
	{ "admin_listen", CT_LISTEN, CF(cf_admin_listens, struct listen_addrs),
	    .ck_flags = CK_REPEAT },
	{ "key_store", CT_PATH, CF(cf_key_store, char *), .ck_flags = 0 },
	{ "key_store_passphrase_file", CT_PATH,
	    CF(cf_passphrase_file, char *), .ck_flags = 0 },
	{ "key_store_passphrase_credential", CT_STRING,
	    CF(cf_passphrase_credential, char *),
	    .ck_check = config_check_credential },
	{ "key_command_timeout", CT_DURATION,
	    CF(cf_key_command_timeout, unsigned int),
	    .ck_min = 1, .ck_max = 600 * 1000 },
	{ "user", CT_STRING, CF(cf_user, char *), .ck_flags = 0 },
	{ "group", CT_STRING, CF(cf_group, char *), .ck_flags = 0 },
	CONFIG_GOV_KEYS(CF, cf_gov),
	{ "rate_backend", CT_STRING, CF(cf_rate_backend, char *),
	    .ck_check = config_check_backend },
	{ "redis_password_file", CT_PATH, CF(cf_redis_password_file, char *),
	    .ck_flags = 0 },
	{ "fleet_size", CT_INT, CF(cf_fleet_size, int),
	    .ck_min = 1, .ck_max = 10000 },
	{ .ck_name = NULL }
};

/* In the order of enum key_type. */
static const char *const config_key_types[] = { "advanced", "standard", NULL };
/* In the order of enum tls_min. */
static const char *const config_tls_versions[] = { "1.2", "1.3", NULL };

static const struct config_key config_tenant_keys[] = {
	{ "listen", CT_LISTEN, TN(tn_listens, struct listen_addrs),
	    .ck_flags = CK_REPEAT | CK_REQUIRED },
	{ "fqdn", CT_STRING, TN(tn_fqdn, char *),
	    .ck_flags = CK_REQUIRED, .ck_check = config_check_fqdn },
	{ "key_id", CT_STRING, TN(tn_key_id, char *),
	    .ck_check = config_check_key_id },
	{ "key_file", CT_PATH, TN(tn_key_file, char *), .ck_flags = 0 },
	{ "key_store", CT_PATH, TN(tn_key_store, char *), .ck_flags = 0 },
	{ "key_name", CT_STRING, TN(tn_key_name, char *), .ck_flags = 0 },
	{ "key_credential", CT_STRING, TN(tn_key_credential, char *),
	    .ck_check = config_check_credential },
	{ "key_command", CT_STRING, TN(tn_key_command, char *),
	    .ck_check = config_check_key_command },
	{ "key_pkcs11", CT_STRING, TN(tn_key_pkcs11, char *),
	    .ck_check = config_check_pkcs11_uri },
	{ "pkcs11_module", CT_PATH, TN(tn_pkcs11_module, char *),
	    .ck_flags = 0 },
	{ "pkcs11_pin_file", CT_PATH, TN(tn_pkcs11_pin_file, char *),
	    .ck_flags = 0 },
	{ "key_expires", CT_STRING, TN(tn_key_expires_text, char *),
	    .ck_check = config_check_date },
	{ "key_type", CT_ENUM, TN(tn_key_type, enum key_type),
	    .ck_names = config_key_types },
	{ "ca_file", CT_STRING, TN(tn_ca_file, char *),
	    .ck_check = config_check_readable },
	{ "connect_to", CT_STRING, TN(tn_connect_to, char *),
	    .ck_check = config_check_connect_to },
	{ "server_name", CT_STRLIST, TN(tn_server_names, struct strlist),
	    .ck_flags = CK_REPEAT, .ck_check = config_check_hostname },
	{ "allow_path", CT_STRLIST, TN(tn_allow_paths, struct strlist),
	    .ck_flags = CK_REPEAT, .ck_check = config_check_allow_path },
	{ "http2", CT_BOOL, TN(tn_http2, int), .ck_flags = 0 },
	{ "egress_proxy", CT_STRING, TN(tn_egress_proxy, char *),
	    .ck_check = config_check_egress_proxy },
	{ "no_proxy", CT_STRING, TN(tn_no_proxy, char *),
	    .ck_check = config_check_no_proxy },
	{ "pinned_pubkey", CT_STRING, TN(tn_pinned_pubkey, char *),
	    .ck_check = config_check_pinned_pubkey },
	{ "tls_min_version", CT_ENUM, TN(tn_tls_min, enum tls_min),
	    .ck_names = config_tls_versions },
	{ "client_cert", CT_PATH, TN(tn_client_cert, char *), .ck_flags = 0 },
	{ "client_key", CT_PATH, TN(tn_client_key, char *), .ck_flags = 0 },
	CONFIG_GOV_KEYS(TN, tn_gov),
	{ .ck_name = NULL }
};

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))
_Static_assert(nitems(config_proxy_keys) - 1 <=
    nitems(((struct config *)0)->cf_seen), "cf_seen too small");
_Static_assert(nitems(config_tenant_keys) - 1 <=
    nitems(((struct tenant *)0)->tn_seen), "tn_seen too small");
/* CT_ENUM stores an int. */
_Static_assert(sizeof(enum key_type) == sizeof(int), "enum not int-sized");
_Static_assert(sizeof(enum tls_min) == sizeof(int), "enum not int-sized");

/* The line a setting was (last) set on, 0 if it was not. */
static int
config_key_line(const struct config_key *keys, const int *seen,
    const char *name)
{
	int	 k;

	for (k = 0; keys[k].ck_name != NULL; k++)
		if (strcmp(keys[k].ck_name, name) == 0)
			return seen[k];
	return 0;
}

/* fqdn: the bare tenant FQDN, a host name. */
static int
config_check_fqdn(struct config_parse *cp, const char *name,
    const char *value)
{
	if (strncasecmp(value, "https://", 8) == 0 ||
	    strncasecmp(value, "api-", 4) == 0) {
		config_error(cp, cp->cp_line, "fqdn: give the bare tenant FQDN "
		    "(requests go to https://api-<fqdn>), not '%s'", value);
		return -1;
	}
	return config_check_hostname(cp, name, value);
}

static int
config_check_hostname(struct config_parse *cp, const char *name,
    const char *value)
{
	if (!config_valid_hostname(value)) {
		config_error(cp, cp->cp_line, "%s: '%s' is not a host name",
		    name, value);
		return -1;
	}
	return 0;
}

static int
config_check_key_id(struct config_parse *cp, const char *name,
    const char *value)
{
	if (strspn(value, "0123456789") != strlen(value) ||
	    strlen(value) > 20) {
		config_error(cp, cp->cp_line, "key_id: expected the numeric "
		    "API key ID, not '%s'", value);
		return -1;
	}
	return 0;
}

static int
config_check_readable(struct config_parse *cp, const char *name,
    const char *value)
{
	if (access(value, R_OK) == -1) {
		config_error(cp, cp->cp_line, "%s %s: %s", name, value,
		    strerror(errno));
		return -1;
	}
	return 0;
}

static int
config_check_connect_to(struct config_parse *cp, const char *name,
    const char *value)
{
	struct listen_addr	 la;
	char			*why;

	if (config_parse_listen(value, &la, &why) == -1 || la.la_unix) {
		config_error(cp, cp->cp_line, "connect_to '%s': expected "
		    "host:port or [v6addr]:port", value);
		return -1;
	}
	return 0;
}

static int
config_check_allow_path(struct config_parse *cp, const char *name,
    const char *value)
{
	size_t	 i;

	if (value[0] != '/') {
		config_error(cp, cp->cp_line, "allow_path must start with "
		    "'/'");
		return -1;
	}
	for (i = 0; value[i] != '\0'; i++) {
		if ((unsigned char)value[i] <= 0x20 ||
		    (unsigned char)value[i] >= 0x7f) {
			config_error(cp, cp->cp_line, "allow_path: bad "
			    "character");
			return -1;
		}
	}
	return 0;
}

/*
 * egress_proxy: "http://host:port" (a trailing '/' allowed) or "none".
 * Credentials in the URL are refused without quoting the value, so that
 * a password never reaches -t's output or a log.
 */
static int
config_check_egress_proxy(struct config_parse *cp, const char *name,
    const char *value)
{
	struct in6_addr	 in6;
	char		 host[256];
	const char	*auth, *colon, *end;
	size_t		 len;

	if (strcmp(value, "none") == 0)
		return 0;
	if (strchr(value, '@') != NULL) {
		config_error(cp, cp->cp_line, "%s: user:password@ in the URL "
		    "is not supported (it would be shown in messages); use a "
		    "proxy that admits xdrproxy's address", name);
		return -1;
	}
	if (strncasecmp(value, "https://", 8) == 0) {
		config_error(cp, cp->cp_line, "%s: https:// proxies are not "
		    "supported: give http://host:port (TLS to the tenant runs "
		    "end to end through the proxy's CONNECT tunnel)", name);
		return -1;
	}
	if (strncasecmp(value, "http://", 7) != 0)
		goto bad;
	auth = value + 7;
	len = strlen(auth);
	if (len > 0 && auth[len - 1] == '/')
		len--;
	end = auth + len;
	if (memchr(auth, '/', len) != NULL || memchr(auth, '?', len) != NULL ||
	    memchr(auth, '#', len) != NULL)
		goto bad;
	if (auth[0] == '[') {
		if ((colon = memchr(auth, ']', len)) == NULL ||
		    colon[1] != ':' || (size_t)(colon - auth - 1) >=
		    sizeof(host))
			goto bad;
		memcpy(host, auth + 1, (size_t)(colon - auth - 1));
		host[colon - auth - 1] = '\0';
		if (inet_pton(AF_INET6, host, &in6) != 1)
			goto bad;
		colon++;
	} else {
		for (colon = end; colon > auth && colon[-1] != ':'; colon--)
			;
		if (colon == auth || (size_t)(colon - auth - 1) >=
		    sizeof(host))
			goto bad;
		colon--;
		memcpy(host, auth, (size_t)(colon - auth));
		host[colon - auth] = '\0';
		if (!config_valid_hostname(host))
			goto bad;
	}
	/* colon points at ':'; the port runs to end. */
	len = (size_t)(end - colon - 1);
	if (len == 0 || len > 5 || strspn(colon + 1, "0123456789") < len ||
	    atoi(colon + 1) < 1 || atoi(colon + 1) > 65535)
		goto bad;
	return 0;
bad:
	config_error(cp, cp->cp_line, "%s: expected http://host:port or none, "
	    "not '%s'", name, value);
	return -1;
}

/*
 * no_proxy: libcurl's list (host names, domains with or without a leading
 * '.', addresses, CIDR ranges, or "*"), separated by ',' or blanks.
 */
static int
config_check_no_proxy(struct config_parse *cp, const char *name,
    const char *value)
{
	if (strspn(value, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789.-_:*/[], ") != strlen(value) ||
	    strspn(value, ", ") == strlen(value)) {
		config_error(cp, cp->cp_line, "%s: expected host names, "
		    "domains, addresses or *, separated by commas, not '%s'",
		    name, value);
		return -1;
	}
	return 0;
}

/*
 * Whether the no_proxy list spares host, by libcurl's rules for names
 * (its noproxy.c): "*" alone matches everything; an entry matches the
 * name itself and every name under it, with or without a leading '.'.
 * Address and CIDR entries never match a name. libcurl decides the route;
 * this only tells xdrproxy whether a failure was the proxy's.
 */
int
config_noproxy_match(const char *list, const char *host)
{
	const char	*p = list, *tok;
	size_t		 hlen = strlen(host), tlen;

	if (hlen > 0 && host[hlen - 1] == '.')
		hlen--;
	p += strspn(p, " ");
	tlen = strcspn(p, " ");
	if (tlen == 1 && p[0] == '*' && p[1 + strspn(p + 1, " ")] == '\0')
		return 1;
	for (p = list; *p != '\0'; p += tlen) {
		p += strspn(p, ", ");
		tok = p;
		tlen = strcspn(p, ", ");
		if (tlen == 0)
			break;
		if (tok[tlen - 1] == '.')
			tlen--;
		if (tlen > 0 && tok[0] == '.') {
			tok++;
			tlen--;
		}
		if (tlen == 0) {
			tlen = strcspn(p, ", ");
			continue;
		}
		if (tlen == hlen && strncasecmp(tok, host, hlen) == 0)
			return 1;
		if (tlen < hlen && host[hlen - tlen - 1] == '.' &&
		    strncasecmp(tok, host + hlen - tlen, tlen) == 0)
			return 1;
		tlen = strcspn(p, ", ");
	}
	return 0;
}

/* pinned_pubkey: sha256//BASE64 of a 32-byte digest, ';'-separated. */
static int
config_check_pinned_pubkey(struct config_parse *cp, const char *name,
    const char *value)
{
	static const char	 b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				    "abcdefghijklmnopqrstuvwxyz0123456789+/";
	const char		*p = value;
	size_t			 len;

	for (;;) {
		len = strcspn(p, ";");
		/* 32 bytes: 43 characters and one '=' of padding. */
		if (len != 8 + 44 || strncmp(p, "sha256//", 8) != 0 ||
		    strspn(p + 8, b64) != 43 || p[8 + 43] != '=' ||
		    strchr("AEIMQUYcgkosw048", p[8 + 42]) == NULL) {
			config_error(cp, cp->cp_line, "%s: expected "
			    "sha256//BASE64 (the base64 SHA-256 of the "
			    "tenant's public key; several separated by ';'), "
			    "not '%s'", name, value);
			return -1;
		}
		if (p[len] == '\0')
			return 0;
		p += len + 1;
	}
}

/* Store a copy of value in *dst, replacing what was there. */
/* A systemd credential's name: a file name in $CREDENTIALS_DIRECTORY. */
static int
config_check_credential(struct config_parse *cp, const char *name,
    const char *value)
{
	if (strchr(value, '/') != NULL || strcmp(value, ".") == 0 ||
	    strcmp(value, "..") == 0 || strlen(value) > 255) {
		config_error(cp, cp->cp_line, "%s: '%s' is not a credential "
		    "name (a file name in $CREDENTIALS_DIRECTORY, no '/')",
		    name, value);
		return -1;
	}
	return 0;
}

/* key_command: an absolute program path, then arguments; no shell. */
static int
config_check_key_command(struct config_parse *cp, const char *name,
    const char *value)
{
	if (value[0] != '/') {
		config_error(cp, cp->cp_line, "key_command: the program must "
		    "be an absolute path (it runs without a shell or $PATH)");
		return -1;
	}
	return 0;
}

static int
config_check_pkcs11_uri(struct config_parse *cp, const char *name,
    const char *value)
{
	if (strncasecmp(value, "pkcs11:", 7) != 0) {
		config_error(cp, cp->cp_line, "key_pkcs11: expected a PKCS#11 "
		    "URI (RFC 7512), pkcs11:token=...;object=...");
		return -1;
	}
	return 0;
}

/*
 * A UTC date, YYYY-MM-DD, as the time_t of its first second; -1 if it is
 * not one (or not a real day).
 */
int64_t
config_parse_date(const char *s)
{
	struct tm	 tm;
	time_t		 t;
	char		*end;

	/* From 2000 on: 0 (1970-01-01) means "no expiry" to callers. */
	if (strlen(s) != 10 || strspn(s, "0123456789-") != 10 ||
	    s[4] != '-' || s[7] != '-' || strncmp(s, "2", 1) != 0)
		return -1;
	memset(&tm, 0, sizeof(tm));
	if ((end = strptime(s, "%Y-%m-%d", &tm)) == NULL || *end != '\0')
		return -1;
	tm.tm_isdst = 0;
	{
		struct tm	 back;
		int		 y = tm.tm_year, m = tm.tm_mon, d = tm.tm_mday;

		if ((t = timegm(&tm)) == (time_t)-1 ||
		    gmtime_r(&t, &back) == NULL || back.tm_year != y ||
		    back.tm_mon != m || back.tm_mday != d)
			return -1;
	}
	return (int64_t)t;
}

static int
config_check_date(struct config_parse *cp, const char *name,
    const char *value)
{
	if (config_parse_date(value) == -1) {
		config_error(cp, cp->cp_line, "%s: expected a date, "
		    "YYYY-MM-DD (UTC), not '%s'", name, value);
		return -1;
	}
	return 0;
}

/* audit_syslog: unix:/PATH, udp:HOST:PORT, tcp:HOST:PORT; once each. */
static int
config_check_syslog(struct config_parse *cp, const char *name,
    const char *value)
{
	struct sink_addr	 sa;
	const struct strlist	*sl = &cp->cp_conf->cf_audit_syslog;
	const char		*why;
	size_t			 i;

	if (sink_parse(value, &sa, &why) == -1) {
		config_error(cp, cp->cp_line, "%s '%s': %s", name, value, why);
		return -1;
	}
	for (i = 0; i < sl->sl_n; i++) {
		if (strcmp(sl->sl_v[i], value) == 0) {
			config_error(cp, cp->cp_line, "%s '%s': given twice",
			    name, value);
			return -1;
		}
	}
	return 0;
}

static int
config_check_facility(struct config_parse *cp, const char *name,
    const char *value)
{
	if (sink_facility_code(value) == -1) {
		config_error(cp, cp->cp_line, "%s: expected a syslog facility "
		    "(authpriv, auth, local0 to local7, user, daemon, ...), "
		    "not '%s'", name, value);
		return -1;
	}
	return 0;
}

static int
config_check_retry_path(struct config_parse *cp, const char *name,
    const char *value)
{
	const char	*why;

	if (gov_retry_path_check(value, &why) == -1) {
		config_error(cp, cp->cp_line, "%s '%s': %s", name, value, why);
		return -1;
	}
	return 0;
}

static int
config_check_backend(struct config_parse *cp, const char *name,
    const char *value)
{
	struct gov_backend	 gb;
	const char		*why;

	if (gov_backend_parse(value, &gb, &why) == -1) {
		config_error(cp, cp->cp_line, "%s '%s': %s", name, value, why);
		return -1;
	}
	return 0;
}

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
config_listen_add(struct config_parse *cp, struct listen_addrs *list,
    const char *name, const char *value)
{
	struct listen_addr	*la;
	char			*why;

	if ((la = calloc(1, sizeof(*la))) == NULL) {
		config_error(cp, cp->cp_line, "out of memory");
		return -1;
	}
	if (config_parse_listen(value, la, &why) == -1) {
		config_error(cp, cp->cp_line, "%s '%s': %s", name, value, why);
		free(la);
		return -1;
	}
	la->la_line = cp->cp_line;
	TAILQ_INSERT_TAIL(list, la, la_entry);
	return 0;
}

/* CT_SIZE, CT_DURATION, CT_INT, CT_LONG, CT_COUNT: from ck_min to ck_max. */
static int
config_set_number(struct config_parse *cp, const struct config_key *ck,
    void *dst, const char *value)
{
	size_t		 sz;
	unsigned int	 ms;
	long		 n;
	char		*end;

	switch (ck->ck_type) {
	case CT_SIZE:
		if (config_parse_size(value, &sz) == -1 ||
		    (unsigned long long)sz < (unsigned long long)ck->ck_min ||
		    (unsigned long long)sz > (unsigned long long)ck->ck_max) {
			config_error(cp, cp->cp_line, "%s: bad size '%s' (e.g. "
			    "16m, 512k)", ck->ck_name, value);
			return -1;
		}
		*(size_t *)dst = sz;
		return 0;
	case CT_DURATION:
		if (config_parse_duration(value, &ms) == -1 ||
		    ms < ck->ck_min || ms > ck->ck_max) {
			config_error(cp, cp->cp_line, "%s: bad duration '%s' "
			    "(e.g. 30s, 500ms, 2m)", ck->ck_name, value);
			return -1;
		}
		*(unsigned int *)dst = ms;
		return 0;
	default:
		break;
	}
	if ((ck->ck_flags & CK_AUTO) && strcmp(value, "auto") == 0)
		n = 0;
	else {
		errno = 0;
		n = strtol(value, &end, 10);
		if (errno != 0 || *end != '\0' || n < ck->ck_min ||
		    n > ck->ck_max) {
			config_error(cp, cp->cp_line, "%s: expected %sa number "
			    "from %lld to %lld, not '%s'", ck->ck_name,
			    (ck->ck_flags & CK_AUTO) ? "auto or " : "",
			    ck->ck_min, ck->ck_max, value);
			return -1;
		}
	}
	if (ck->ck_type == CT_INT)
		*(int *)dst = (int)n;
	else if (ck->ck_type == CT_LONG)
		*(long *)dst = n;
	else
		*(size_t *)dst = (size_t)n;
	return 0;
}

/* CT_ENUM: one of ck_names; the error lists them ("a, b or c"). */
static int
config_set_enum(struct config_parse *cp, const struct config_key *ck,
    void *dst, const char *value)
{
	char	 list[128];
	size_t	 i, n, len = 0;

	for (n = 0; ck->ck_names[n] != NULL; n++) {
		if (strcmp(ck->ck_names[n], value) == 0) {
			*(int *)dst = (int)n;
			return 0;
		}
	}
	list[0] = '\0';
	for (i = 0; i < n && len < sizeof(list); i++)
		len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s",
		    i == 0 ? "" : i == n - 1 ? " or " : ", ", ck->ck_names[i]);
	config_error(cp, cp->cp_line, "%s: expected %s, not '%s'", ck->ck_name,
	    list, value);
	return -1;
}

/*
 * One "name = value" line in a section whose settings are keys; base is
 * the struct config or struct tenant the offsets are in, section names
 * it in messages.
 */
static int
config_set(struct config_parse *cp, const struct config_key *keys,
    int *seen, void *base, const char *section, const char *name,
    const char *value)
{
	const struct config_key	*ck;
	void			*dst;
	int			 k, line = cp->cp_line;

	for (k = 0; keys[k].ck_name != NULL; k++)
		if (strcmp(keys[k].ck_name, name) == 0)
			break;
	ck = &keys[k];
	if (ck->ck_name == NULL) {
		config_error(cp, line, "unknown key '%s' in [%s]", name,
		    section);
		return -1;
	}
	if (seen[k] != 0 && !(ck->ck_flags & CK_REPEAT)) {
		config_error(cp, line, "'%s' already set on line %d", name,
		    seen[k]);
		return -1;
	}
	seen[k] = line;
	if (*value == '\0') {
		config_error(cp, line, "'%s' needs a value", name);
		return -1;
	}
	if (ck->ck_check != NULL && ck->ck_check(cp, name, value) == -1)
		return -1;
	dst = (char *)base + ck->ck_offset;
	switch (ck->ck_type) {
	case CT_SIZE:
	case CT_DURATION:
	case CT_INT:
	case CT_LONG:
	case CT_COUNT:
		return config_set_number(cp, ck, dst, value);
	case CT_BOOL:
		if (config_parse_bool(value, dst) == -1) {
			config_error(cp, line, "%s: expected yes or no", name);
			return -1;
		}
		return 0;
	case CT_ENUM:
		return config_set_enum(cp, ck, dst, value);
	case CT_PATH:
		if (value[0] != '/' && !((ck->ck_flags & CK_DASH) &&
		    strcmp(value, "-") == 0) && !((ck->ck_flags & CK_OFF) &&
		    strcmp(value, "off") == 0)) {
			config_error(cp, line, "%s must be an absolute path%s%s",
			    name, (ck->ck_flags & CK_DASH) ?
			    " or \"-\" (stdout)" : "", (ck->ck_flags & CK_OFF) ?
			    " or off" : "");
			return -1;
		}
		return config_strset(cp, dst, value);
	case CT_STRING:
		return config_strset(cp, dst, value);
	case CT_LISTEN:
		return config_listen_add(cp, dst, name, value);
	case CT_STRLIST:
		if (strlist_add(dst, value) == -1) {
			config_error(cp, line, "out of memory");
			return -1;
		}
		return 0;
	case CT_RATE:
		if (gov_parse_rate(value, dst) == -1) {
			config_error(cp, line, "%s: bad rate '%s' (e.g. 10/s, "
			    "600/min, 0 for no limit)", name, value);
			return -1;
		}
		return 0;
	}
	return 0;
}

/* allow / deny: one more rule of the tenant's policy (policy.c). */
static void
config_policy_add(struct config_parse *cp, struct tenant *tn, int allow,
    const char *value)
{
	char	*why;

	if (policy_rule_add(&tn->tn_policy, allow, value, cp->cp_path,
	    cp->cp_line, &why) == -1)
		config_error(cp, cp->cp_line, "%s", why != NULL ? why :
		    "out of memory");
	free(why);
}

/* limit = GLOB RATE [burst=N]: one more per-call limit (govconf.c). */
static void
config_limit_add(struct config_parse *cp, struct gov_conf *gc,
    const char *value)
{
	char	*why;

	if (gov_limit_add(gc, value, cp->cp_path, cp->cp_line, &why) == -1)
		config_error(cp, cp->cp_line, "%s", why != NULL ? why :
		    "out of memory");
	free(why);
}

/* inih calls this for every "name = value" line. */
static int
config_handler(void *arg, const char *section, const char *name,
    const char *value)
{
	struct config_parse	*cp = arg;
	struct tenant		*tn = cp->cp_tenant;
	char			 label[64];

	if (cp->cp_error != NULL)
		return 1;
	if (strcmp(name, "limit") == 0 && (cp->cp_in_proxy || tn != NULL))
		config_limit_add(cp, cp->cp_in_proxy ? &cp->cp_conf->cf_gov :
		    &tn->tn_gov, value);
	else if (cp->cp_in_proxy)
		config_set(cp, config_proxy_keys, cp->cp_conf->cf_seen,
		    cp->cp_conf, "proxy", name, value);
	else if (tn != NULL && (strcmp(name, "allow") == 0 ||
	    strcmp(name, "deny") == 0))
		config_policy_add(cp, tn, name[0] == 'a', value);
	else if (tn != NULL) {
		snprintf(label, sizeof(label), "tenant %s", tn->tn_name);
		config_set(cp, config_tenant_keys, tn->tn_seen, tn, label,
		    name, value);
	} else
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
	tn->tn_metrics_slot = -1;
	TAILQ_INIT(&tn->tn_listens);
	gov_conf_unset(&tn->tn_gov);
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
	int			 i;

	while ((la = TAILQ_FIRST(&tn->tn_listens)) != NULL) {
		TAILQ_REMOVE(&tn->tn_listens, la, la_entry);
		/* Sockets opened for a generation never put in force. */
		for (i = 0; i < la->la_nfds; i++)
			if (la->la_fds[i] != -1)
				close(la->la_fds[i]);
		free(la->la_fds);
		free(la);
	}
	strlist_free(&tn->tn_server_names);
	strlist_free(&tn->tn_allow_paths);
	policy_rules_free(&tn->tn_policy);
	gov_conf_free(&tn->tn_gov);
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
	free(tn->tn_egress_proxy);
	free(tn->tn_no_proxy);
	free(tn->tn_pinned_pubkey);
	free(tn->tn_client_cert);
	free(tn->tn_client_key);
	free(tn->tn_key_store);
	free(tn->tn_key_name);
	free(tn->tn_key_credential);
	free(tn->tn_key_command);
	free(tn->tn_key_pkcs11);
	free(tn->tn_pkcs11_module);
	free(tn->tn_pkcs11_pin_file);
	free(tn->tn_key_expires_text);
	free(tn);
}

void
config_free(struct config *cf)
{
	struct tenant		*tn;
	struct listen_addr	*la;

	if (cf == NULL)
		return;
	while ((tn = TAILQ_FIRST(&cf->cf_tenants)) != NULL) {
		TAILQ_REMOVE(&cf->cf_tenants, tn, tn_entry);
		tenant_free(tn);
	}
	while ((la = TAILQ_FIRST(&cf->cf_admin_listens)) != NULL) {
		TAILQ_REMOVE(&cf->cf_admin_listens, la, la_entry);
		free(la);
	}
	free(cf->cf_file);
	free(cf->cf_audit_log);
	strlist_free(&cf->cf_audit_syslog);
	free(cf->cf_audit_syslog_facility);
	free(cf->cf_egress_proxy);
	free(cf->cf_no_proxy);
	free(cf->cf_key_store);
	free(cf->cf_audit_key_file);
	free(cf->cf_audit_key_name);
	keystore_free(cf->cf_audit_key);
	free(cf->cf_passphrase_file);
	free(cf->cf_passphrase_credential);
	free(cf->cf_user);
	free(cf->cf_group);
	gov_conf_free(&cf->cf_gov);
	free(cf->cf_rate_backend);
	free(cf->cf_redis_password_file);
	keystore_free(cf->cf_redis_password);
	free(cf);
}

/* Another holder of cf; from any thread. */
struct config *
config_ref(struct config *cf)
{
	atomic_fetch_add_explicit(&cf->cf_refs, 1, memory_order_relaxed);
	return cf;
}

/* A holder is done with cf; the last one frees it (keys wiped). */
void
config_unref(struct config *cf)
{
	if (cf != NULL && atomic_fetch_sub_explicit(&cf->cf_refs, 1,
	    memory_order_acq_rel) == 1)
		config_free(cf);
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

/*
 * The tenant's key source: exactly one of key_file, key_store + key_name
 * (key_store may come from [proxy]), key_credential, key_command,
 * key_pkcs11. key_id is required except from a key store, which keeps it.
 */
static int
config_validate_key(struct config_parse *cp, struct tenant *tn)
{
	static const char *const names[] = { "key_file", "key_name",
	    "key_credential", "key_command", "key_pkcs11" };
	static const enum key_source sources[] = { KS_FILE, KS_STORE,
	    KS_CREDENTIAL, KS_COMMAND, KS_PKCS11 };
	static const char *const pkcs11_only[] = { "pkcs11_module",
	    "pkcs11_pin_file" };
	struct config	*cf = cp->cp_conf;
	const char	*first = NULL;
	size_t		 i;
	int		 line, first_line = 0, store_line;

	store_line = config_key_line(config_tenant_keys, tn->tn_seen,
	    "key_store");
	if (store_line != 0 && tn->tn_key_name == NULL) {
		config_error(cp, store_line, "key_store needs key_name: the "
		    "name of the key in the store");
		return -1;
	}
	for (i = 0; i < nitems(names); i++) {
		if ((line = config_key_line(config_tenant_keys, tn->tn_seen,
		    names[i])) == 0)
			continue;
		if (first != NULL) {
			config_error(cp, line, "%s and %s (line %d) both set: "
			    "a tenant names exactly one key source", names[i],
			    first, first_line);
			return -1;
		}
		first = names[i];
		first_line = line;
		tn->tn_key_source = sources[i];
	}
	if (first == NULL) {
		config_error(cp, tn->tn_line, "[tenant %s] names no key source: "
		    "set one of key_file, key_store + key_name, key_credential, "
		    "key_command or key_pkcs11", tn->tn_name);
		return -1;
	}
	tn->tn_key_source_line = first_line;
	if (tn->tn_key_source == KS_STORE && tn->tn_key_store == NULL) {
		if (cf->cf_key_store == NULL) {
			config_error(cp, first_line, "key_name needs key_store, "
			    "in this section or in [proxy]");
			return -1;
		}
		if ((tn->tn_key_store = strdup(cf->cf_key_store)) == NULL) {
			config_error(cp, first_line, "out of memory");
			return -1;
		}
	}
	if (tn->tn_key_source != KS_STORE && tn->tn_key_id == NULL) {
		config_error(cp, tn->tn_line, "[tenant %s] needs 'key_id' "
		    "(only a key store keeps the key ID with the key)",
		    tn->tn_name);
		return -1;
	}
	if (tn->tn_key_source != KS_PKCS11) {
		for (i = 0; i < nitems(pkcs11_only); i++) {
			if ((line = config_key_line(config_tenant_keys,
			    tn->tn_seen, pkcs11_only[i])) == 0)
				continue;
			config_error(cp, line, "%s applies only with "
			    "key_pkcs11", pkcs11_only[i]);
			return -1;
		}
	} else if (tn->tn_key_type == KEY_STANDARD) {
		config_error(cp, first_line, "key_pkcs11: a standard key is "
		    "sent as it is, so it cannot stay on a token; PKCS#11 "
		    "holds advanced keys only");
		return -1;
	}
	tn->tn_key_type_line = config_key_line(config_tenant_keys,
	    tn->tn_seen, "key_type");
	tn->tn_key_id_line = config_key_line(config_tenant_keys, tn->tn_seen,
	    "key_id");
	if (tn->tn_key_expires_text != NULL)
		tn->tn_key_expires = config_parse_date(tn->tn_key_expires_text);
	return 0;
}

/* client_cert and client_key: both or neither (their files: main.c). */
static int
config_validate_tls(struct config_parse *cp, struct tenant *tn)
{
	tn->tn_client_cert_line = config_key_line(config_tenant_keys,
	    tn->tn_seen, "client_cert");
	tn->tn_client_key_line = config_key_line(config_tenant_keys,
	    tn->tn_seen, "client_key");
	if ((tn->tn_client_cert == NULL) != (tn->tn_client_key == NULL)) {
		config_error(cp, tn->tn_client_cert != NULL ?
		    tn->tn_client_cert_line : tn->tn_client_key_line,
		    "%s needs %s as well: a client certificate and its key go "
		    "together", tn->tn_client_cert != NULL ? "client_cert" :
		    "client_key", tn->tn_client_cert != NULL ? "client_key" :
		    "client_cert");
		return -1;
	}
	return 0;
}

/*
 * The tenant's egress proxy and no_proxy: its own, else [proxy]'s; "none"
 * means direct. tn_egress_used says whether the proxy applies to tn_host.
 */
static int
config_validate_egress(struct config_parse *cp, struct tenant *tn)
{
	struct config	*cf = cp->cp_conf;

	if (tn->tn_egress_proxy == NULL && cf->cf_egress_proxy != NULL &&
	    (tn->tn_egress_proxy = strdup(cf->cf_egress_proxy)) == NULL)
		goto nomem;
	if (tn->tn_no_proxy == NULL && cf->cf_no_proxy != NULL &&
	    (tn->tn_no_proxy = strdup(cf->cf_no_proxy)) == NULL)
		goto nomem;
	if (tn->tn_egress_proxy != NULL &&
	    strcmp(tn->tn_egress_proxy, "none") == 0) {
		free(tn->tn_egress_proxy);
		tn->tn_egress_proxy = NULL;
	}
	tn->tn_egress_used = tn->tn_egress_proxy != NULL &&
	    (tn->tn_no_proxy == NULL ||
	    !config_noproxy_match(tn->tn_no_proxy, tn->tn_host));
	return 0;
nomem:
	config_error(cp, cp->cp_line, "out of memory");
	return -1;
}

/* admin_listen: not a proxy listener's address, nor given twice. */
static int
config_validate_admin(struct config_parse *cp)
{
	struct config		*cf = cp->cp_conf;
	struct tenant		*tn;
	struct listen_addr	*la, *la2;

	TAILQ_FOREACH(la, &cf->cf_admin_listens, la_entry) {
		TAILQ_FOREACH(tn, &cf->cf_tenants, tn_entry) {
			TAILQ_FOREACH(la2, &tn->tn_listens, la_entry) {
				if (!config_same_addr(la, la2))
					continue;
				config_error(cp, la->la_line, "admin_listen "
				    "%s: already used by [tenant %s] on line "
				    "%d", la->la_text, tn->tn_name,
				    la2->la_line);
				return -1;
			}
		}
		for (la2 = TAILQ_FIRST(&cf->cf_admin_listens); la2 != la;
		    la2 = TAILQ_NEXT(la2, la_entry)) {
			if (!config_same_addr(la, la2))
				continue;
			config_error(cp, la->la_line, "admin_listen %s: "
			    "already given on line %d", la->la_text,
			    la2->la_line);
			return -1;
		}
	}
	return 0;
}

/* Required keys, defaults and cross-tenant checks after parsing. */
static int
config_validate(struct config_parse *cp)
{
	struct config		*cf = cp->cp_conf;
	struct tenant		*tn, *tn2;
	struct listen_addr	*la, *la2;
	int			 k;
	long			 n;

	if (TAILQ_EMPTY(&cf->cf_tenants)) {
		config_error(cp, cp->cp_line, "no [tenant NAME] section");
		return -1;
	}
	/* For audit log errors found later (main.c). */
	cf->cf_audit_log_line = config_key_line(config_proxy_keys, cf->cf_seen,
	    "audit_log");
	k = config_key_line(config_proxy_keys, cf->cf_seen,
	    "audit_hmac_key_file");
	cf->cf_audit_key_line = config_key_line(config_proxy_keys,
	    cf->cf_seen, "audit_hmac_key_name");
	if (k != 0 && cf->cf_audit_key_line != 0) {
		config_error(cp, k > cf->cf_audit_key_line ? k :
		    cf->cf_audit_key_line, "audit_hmac_key_file and "
		    "audit_hmac_key_name both set: name one audit HMAC key");
		return -1;
	}
	if (cf->cf_audit_key_line != 0 && cf->cf_key_store == NULL) {
		config_error(cp, cf->cf_audit_key_line, "audit_hmac_key_name "
		    "needs key_store in [proxy]");
		return -1;
	}
	if (k != 0)
		cf->cf_audit_key_line = k;
	if (strcmp(cf->cf_audit_log, "off") == 0 &&
	    cf->cf_audit_syslog.sl_n == 0) {
		config_error(cp, cf->cf_audit_log_line, "audit_log = off needs "
		    "at least one audit_syslog (records must go somewhere)");
		return -1;
	}
	/* Not set (0; a duration is at least 1ms): follow client_timeout. */
	if (cf->cf_client_body_timeout == 0)
		cf->cf_client_body_timeout = cf->cf_client_timeout;
	if (cf->cf_keepalive_timeout == 0)
		cf->cf_keepalive_timeout = cf->cf_client_timeout;
	/* The governor: [proxy]'s settings are every tenant's default. */
	if (gov_conf_finish(&cf->cf_gov) == -1)
		goto nomem;
	cf->cf_rate_backend_line = config_key_line(config_proxy_keys,
	    cf->cf_seen, "rate_backend");
	cf->cf_redis_password_line = config_key_line(config_proxy_keys,
	    cf->cf_seen, "redis_password_file");
	if (cf->cf_redis_password_file != NULL &&
	    (cf->cf_rate_backend == NULL ||
	    strcmp(cf->cf_rate_backend, "local") == 0)) {
		config_error(cp, config_key_line(config_proxy_keys, cf->cf_seen,
		    "redis_password_file"), "redis_password_file needs "
		    "rate_backend = redis://HOST:PORT or unix:/PATH");
		return -1;
	}
	/* workers = auto: one per online CPU. */
	if (cf->cf_workers == 0) {
		n = sysconf(_SC_NPROCESSORS_ONLN);
		cf->cf_workers = n < 1 ? 1 : n > CONFIG_MAX_WORKERS ?
		    CONFIG_MAX_WORKERS : (int)n;
	}
	TAILQ_FOREACH(tn, &cf->cf_tenants, tn_entry) {
		for (k = 0; config_tenant_keys[k].ck_name != NULL; k++) {
			if ((config_tenant_keys[k].ck_flags & CK_REQUIRED) &&
			    tn->tn_seen[k] == 0) {
				config_error(cp, tn->tn_line, "[tenant %s] "
				    "needs '%s'", tn->tn_name,
				    config_tenant_keys[k].ck_name);
				return -1;
			}
		}
		/* For key file errors found later (main.c). */
		tn->tn_key_file_line = config_key_line(config_tenant_keys,
		    tn->tn_seen, "key_file");
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
		if (gov_conf_inherit(&tn->tn_gov, &cf->cf_gov) == -1)
			goto nomem;
		if (config_validate_key(cp, tn) == -1 ||
		    config_validate_tls(cp, tn) == -1 ||
		    config_validate_egress(cp, tn) == -1)
			return -1;
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
	if (cf->cf_passphrase_file != NULL &&
	    cf->cf_passphrase_credential != NULL) {
		config_error(cp, config_key_line(config_proxy_keys, cf->cf_seen,
		    "key_store_passphrase_credential"), "key_store_passphrase_"
		    "file and key_store_passphrase_credential both set: name "
		    "one");
		return -1;
	}
	cf->cf_passphrase_line = config_key_line(config_proxy_keys,
	    cf->cf_seen, cf->cf_passphrase_file != NULL ?
	    "key_store_passphrase_file" : "key_store_passphrase_credential");
	cf->cf_user_line = config_key_line(config_proxy_keys, cf->cf_seen,
	    "user");
	return config_validate_admin(cp);
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
	atomic_init(&cf->cf_refs, 1);
	TAILQ_INIT(&cf->cf_tenants);
	TAILQ_INIT(&cf->cf_admin_listens);
	cf->cf_max_body = 16 * 1024 * 1024;
	cf->cf_max_headers = 64 * 1024;
	cf->cf_client_timeout = 60 * 1000;
	cf->cf_connect_timeout = 10 * 1000;
	cf->cf_upstream_timeout = 120 * 1000;
	cf->cf_audit_checkpoint_interval = 60 * 1000;
	cf->cf_shutdown_timeout = 30 * 1000;
	cf->cf_max_connections = 64;
	cf->cf_idle_connections = 0;
	cf->cf_max_clients = 1024;
	cf->cf_client_header_timeout = 10 * 1000;
	cf->cf_max_header_count = 100;
	cf->cf_key_command_timeout = 10 * 1000;
	cf->cf_audit_syslog_queue = 10000;
	cf->cf_fleet_size = 1;
	gov_conf_defaults(&cf->cf_gov);
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
