/*
 * xdrproxy.h: structures and prototypes shared by every part of xdrproxy,
 * a local proxy that signs requests to the Cortex XDR public API.
 */
#ifndef XDRPROXY_H
#define XDRPROXY_H

#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <sys/time.h>

#include <time.h>

#include <pthread.h>

#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/http.h>

#define XDRPROXY_NAME		"xdrproxy"

/* Advanced-key signing: 64-character nonce, hex SHA-256. */
#define SIGN_NONCE_LEN		64
#define SIGN_HASH_HEX_LEN	64
#define SIGN_TS_MAX		24	/* decimal ms since epoch, with NUL */

#define REQUEST_ID_LEN		16

/* A duration in ms as a struct timeval. */
static inline struct timeval
ms_timeval(unsigned int ms)
{
	struct timeval	 tv;

	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	return tv;
}

/* Arm a timer event to fire in ms. */
static inline void
timer_add_ms(struct event *ev, unsigned int ms)
{
	struct timeval	 tv = ms_timeval(ms);

	evtimer_add(ev, &tv);
}

/* log.c */
void	 log_init(int verbosity);
void	 log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 fatal(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	 fatalx(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	 log_escape(char *, size_t, const char *, size_t);

/* notify.c */
int	 notify_send(const char *, char **);

/* json.c */
struct evbuffer;
void	 json_add_string(struct evbuffer *, const char *, size_t);
void	 json_add_cstring(struct evbuffer *, const char *);
void	 json_add_id(struct evbuffer *, long);

/* auditverify.c: checks an audit trail's chain line by line (xdrproxy-audit). */
#define AVERIFY_LINE_MAX	(1024 * 1024)	/* longest line, '\n' excluded */
#define AVERIFY_HASH_LEN	32
struct arecord {
	uint64_t	 ar_seq;
	unsigned char	 ar_prev[AVERIFY_HASH_LEN];
	int		 ar_start;	/* "chain":"start" */
};
struct averify;
int	 averify_parse(const char *, size_t, struct arecord *, char *, size_t);
int	 averify_hex(const char *, size_t, unsigned char *);
struct averify *averify_new(const unsigned char *, size_t);
void	 averify_free(struct averify *);
void	 averify_checkpoint(struct averify *, uint64_t, const unsigned char *);
void	 averify_file(struct averify *, const char *);
int	 averify_line(struct averify *, const char *, size_t, int);
int	 averify_path(struct averify *, const char *);
int	 averify_end(struct averify *);
const char *averify_error(const struct averify *);
const char *averify_note(const struct averify *, size_t);
void	 averify_range(const struct averify *, uint64_t *, uint64_t *,
	    uint64_t *);

/* keystore.c */
struct pkcs11_key;
struct key {
	char		*k_data;	/* own mapping; wiped on free */
	size_t		 k_len;
	size_t		 k_size;	/* of the mapping */
	int		 k_locked;	/* mlock()ed */
	struct pkcs11_key *k_p11;	/* on a token: k_data is NULL */
};
int	 keystore_load(const char *, struct key **, char **);
void	 keystore_free(struct key *);
struct key *keystore_new(const char *, size_t);
enum keyline { KEYLINE_OK, KEYLINE_EMPTY, KEYLINE_LINES, KEYLINE_BAD };
enum keyline keystore_line(const char *, size_t *);
int	 keystore_check_fd(int, const char *, char **);
int	 keystore_check_client(const char *, const char *, int *, char **);

/* config.c */
enum key_type {
	KEY_ADVANCED,
	KEY_STANDARD
};

/* Where a tenant's key comes from (keysource.c). */
enum key_source {
	KS_FILE,	/* key_file */
	KS_STORE,	/* key_store + key_name (store.c) */
	KS_CREDENTIAL,	/* key_credential: $CREDENTIALS_DIRECTORY/NAME */
	KS_COMMAND,	/* key_command (keycmd.c) */
	KS_PKCS11	/* key_pkcs11 (pkcs11.c) */
};

/* tls_min_version, in the order of config.c's names. */
enum tls_min {
	TLS_MIN_1_2,
	TLS_MIN_1_3
};

struct listen_addr {
	TAILQ_ENTRY(listen_addr) la_entry;
	int			 la_line;
	int			 la_unix;
	struct sockaddr_storage	 la_ss;
	socklen_t		 la_sslen;
	char			 la_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char			 la_text[128];	/* as written, for messages */
	struct sockaddr_storage	 la_bound;	/* with the port chosen */
	/* Opened by server_open(), one per worker, until a worker adopts. */
	int			*la_fds;	/* -1: none for that worker */
	int			 la_nfds;
	int			 la_activated;	/* passed by systemd */
	mode_t			 la_mode;	/* unix: mode=, 0660 */
	gid_t			 la_gid;	/* unix: group=, -1 the daemon's */
};
TAILQ_HEAD(listen_addrs, listen_addr);

struct strlist {
	char			**sl_v;
	size_t			  sl_n;
};

/* policy.c: a tenant's allow/deny rules, in order. */
struct policy_rule;
struct policy_rules {
	struct policy_rule	*pl_v;
	size_t			 pl_n;
};

/*
 * governor.c: how one tenant's budget is shared (config.c fills it; a
 * tenant's own settings, else [proxy]'s, else the defaults).
 */
struct gov_rate {
	uint64_t		 gr_interval_us;	/* per request; 0: off */
	char			 gr_text[24];	/* as written: "10/s" */
};
struct gov_tenant;
struct gov_lane;
struct gov_limit_conf {			/* limit = GLOB RATE [burst=N] */
	char			*glc_glob;	/* canonical (policy_canon) */
	struct gov_lane		*glc_lane;	/* governor.c's queue for it */
	struct gov_rate		 glc_rate;
	unsigned int		 glc_burst;
	int			 glc_line;	/* 0: built in */
	char			*glc_file;	/* NULL: built in */
};
struct gov_conf {
	struct gov_rate		 gc_rate;	/* rate_limit */
	int			 gc_burst;
	long			 gc_max_concurrent;	/* 0: max_connections only */
	size_t			 gc_queue_max;
	unsigned int		 gc_queue_timeout;	/* ms */
	struct gov_limit_conf	*gc_limits;	/* first match wins */
	size_t			 gc_nlimits;
	int			 gc_xql_max;	/* xql_max_running; 0: off */
	unsigned int		 gc_xql_slot_timeout;	/* ms */
	int			 gc_retry_max;
	unsigned int		 gc_retry_base;	/* ms */
	unsigned int		 gc_retry_cap;	/* ms */
	struct strlist		 gc_retry_paths;	/* globs, canonical */
};

struct tenant {
	TAILQ_ENTRY(tenant)	 tn_entry;
	char			*tn_name;
	int			 tn_line;	/* of the section header */
	char			*tn_fqdn;
	char			*tn_host;	/* api-<fqdn> */
	char			*tn_base_url;	/* https://api-<fqdn> */
	char			*tn_key_id;
	int			 tn_key_id_line;	/* 0: not set (store) */
	char			*tn_key_file;
	int			 tn_key_file_line;
	enum key_type		 tn_key_type;
	int			 tn_key_type_line;	/* 0: not set */
	enum key_source		 tn_key_source;
	int			 tn_key_source_line;	/* its setting's line */
	char			*tn_key_store;	/* its own, else [proxy]'s */
	char			*tn_key_name;
	char			*tn_key_credential;
	char			*tn_key_command;
	char			*tn_key_pkcs11;	/* RFC 7512 URI */
	char			*tn_pkcs11_module;
	char			*tn_pkcs11_pin_file;
	char			*tn_key_expires_text;
	int64_t			 tn_key_expires;	/* UTC s; 0: never */
	char			*tn_ca_file;
	char			*tn_connect_to;	/* "api-<fqdn>:443:host:port" */
	int			 tn_http2;
	char			*tn_egress_proxy;	/* http://host:port or NULL */
	char			*tn_no_proxy;	/* libcurl's list, or NULL */
	int			 tn_egress_used;	/* no_proxy spares not tn_host */
	char			*tn_pinned_pubkey;	/* sha256//...[;...] */
	enum tls_min		 tn_tls_min;
	char			*tn_client_cert;	/* PEM, with client_key */
	char			*tn_client_key;
	int			 tn_client_cert_line;
	int			 tn_client_key_line;
	struct listen_addrs	 tn_listens;
	struct strlist		 tn_server_names;
	struct strlist		 tn_allow_paths;
	struct policy_rules	 tn_policy;	/* policy.c; none: all allowed */
	struct gov_conf		 tn_gov;	/* governor.c */
	struct gov_tenant	*tn_gov_state;	/* governor.c: by name, for the
						   process's life */
	struct key		*tn_key;	/* filled by keystore_load */
	struct curl_slist	*tn_curl_connect_to;	/* upstream.c */
	int			 tn_metrics_slot;	/* metrics.c; -1: none */
	int			 tn_seen[48];	/* line of each key, 0 if unset */
	/* clock.c: the tenant's clock as its Date headers tell; workers write. */
	_Atomic int64_t		 tn_skew_ms;	/* tenant - local */
	_Atomic int		 tn_skew_known;
	_Atomic int64_t		 tn_skew_warned_ms;	/* monotonic; 0: never */
};
TAILQ_HEAD(tenants, tenant);

/*
 * A configuration generation: loaded and checked whole, then put in force
 * by a pointer swap (reload). Each holder has a reference: the main
 * thread for the one in force, each worker for every generation it still
 * has a listener or a request of (worker_release()).
 */
struct config {
	atomic_int		 cf_refs;
	unsigned int		 cf_gen;	/* 1, 2, ... set by main.c */
	char			*cf_file;
	char			*cf_audit_log;	/* "off": syslog sinks only */
	int			 cf_audit_log_line;
	int			 cf_audit_fsync;	/* request records */
	int			 cf_audit_fail;	/* enum audit_fail */
	unsigned int		 cf_audit_checkpoint_interval;	/* ms */
	char			*cf_audit_key_file;
	char			*cf_audit_key_name;	/* in cf_key_store */
	int			 cf_audit_key_line;	/* of either */
	struct key		*cf_audit_key;	/* NULL: plain SHA-256 */
	struct strlist		 cf_audit_syslog;	/* sink.c */
	size_t			 cf_audit_syslog_queue;	/* messages per sink */
	char			*cf_audit_syslog_facility;	/* NULL: authpriv */
	size_t			 cf_max_body;
	size_t			 cf_max_headers;
	unsigned int		 cf_client_timeout;	/* ms */
	unsigned int		 cf_connect_timeout;	/* ms */
	unsigned int		 cf_upstream_timeout;	/* ms */
	unsigned int		 cf_shutdown_timeout;	/* ms */
	long			 cf_max_connections;	/* per tenant host */
	long			 cf_idle_connections;	/* pool size */
	int			 cf_workers;
	long			 cf_max_clients;	/* open client connections, all workers */
	unsigned int		 cf_client_header_timeout;	/* ms */
	unsigned int		 cf_client_body_timeout;	/* ms */
	unsigned int		 cf_keepalive_timeout;	/* ms */
	size_t			 cf_max_header_count;	/* header lines per request */
	char			*cf_egress_proxy;	/* default of tenants' */
	char			*cf_no_proxy;
	struct listen_addrs	 cf_admin_listens;	/* admin.c */
	char			*cf_key_store;	/* default of tenants' */
	char			*cf_passphrase_file;
	char			*cf_passphrase_credential;
	int			 cf_passphrase_line;
	unsigned int		 cf_key_command_timeout;	/* ms */
	char			*cf_user;	/* drop to after setup (priv.c) */
	char			*cf_group;
	int			 cf_user_line;
	struct gov_conf		 cf_gov;	/* [proxy]'s, tenants' default */
	char			*cf_rate_backend;	/* redis://..., NULL: local */
	int			 cf_rate_backend_line;
	char			*cf_redis_password_file;
	int			 cf_redis_password_line;
	struct key		*cf_redis_password;	/* read by keysource.c */
	int			 cf_fleet_size;
	struct tenants		 cf_tenants;
	int			 cf_seen[64];
};

struct config	*config_load(const char *, char **);
int		 strlist_add(struct strlist *, const char *);
void		 strlist_free(struct strlist *);
void		 config_free(struct config *);
struct config	*config_ref(struct config *);
void		 config_unref(struct config *);
int		 config_parse_size(const char *, size_t *);
int		 config_parse_duration(const char *, unsigned int *);
int		 config_parse_listen(const char *, struct listen_addr *,
		    char **);
int		 config_noproxy_match(const char *, const char *);
int64_t		 config_parse_date(const char *);

/* govconf.c: the governor's settings. */
enum gov_backend_kind {
	GOV_BACKEND_LOCAL,
	GOV_BACKEND_REDIS,	/* redis:// */
	GOV_BACKEND_UNIX	/* unix:/path: gb_host is the path */
};
struct gov_backend {
	enum gov_backend_kind	 gb_kind;
	char			 gb_host[256];
	int			 gb_port;
	int			 gb_db;
};
int	 gov_parse_rate(const char *, struct gov_rate *);
double	 gov_rate_per_s(uint64_t);
int	 gov_limit_add(struct gov_conf *, const char *, const char *, int,
	    char **);
int	 gov_retry_path_check(const char *, const char **);
int	 gov_backend_parse(const char *, struct gov_backend *, const char **);
void	 gov_conf_defaults(struct gov_conf *);
void	 gov_conf_unset(struct gov_conf *);
int	 gov_conf_finish(struct gov_conf *);
int	 gov_conf_inherit(struct gov_conf *, const struct gov_conf *);
void	 gov_conf_free(struct gov_conf *);
const struct gov_limit_conf *
	 gov_limit_find(const struct gov_conf *, const char *, size_t);
int	 gov_retry_path(const struct gov_conf *, const char *, size_t);

/* fleet.c: the fleet's budget in Redis, on the governor's thread. */
typedef void (*fleet_cb)(void *, int, uint64_t);
int	 fleet_init(const struct config *, struct event_base *,
	    void (*)(int), char **);
int	 fleet_status(void);
int	 fleet_gcra(const char *, uint64_t, unsigned int, fleet_cb, void *);
int	 fleet_slot_take(const char *, int, uint64_t, const char *, fleet_cb,
	    void *);
void	 fleet_slot_rename(const char *, const char *, const char *,
	    uint64_t);
void	 fleet_slot_release(const char *, const char *);
void	 fleet_stop(void);

/* keysource.c: loading one generation's keys. */
struct store_cache;
struct keyload {
	struct config		*kl_conf;
	int			 kl_prompt;	/* may ask on the terminal */
	struct store_cache	*kl_stores;	/* store.c: opened, by path */
};
int	 keysource_load(struct config *, int, char **);
int	 keysource_credential_path(const char *, char **, char **);

/* store.c */
#define STORE_NAME_MAX	64
#define STORE_PASS_MAX	1024
struct store_entry {
	char			*se_name;
	char			*se_key_id;	/* digits */
	enum key_type		 se_type;
	char			 se_expires[11];	/* YYYY-MM-DD, "": never */
	struct key		*se_key;
};
struct store {
	struct store_entry	*st_entries;
	size_t			 st_n;
	unsigned int		 st_log2n;	/* scrypt cost, for the next write */
	uint32_t		 st_r, st_p;
};
struct store	*store_new(void);
void		 store_free(struct store *);
int		 store_seal(const struct store *, const struct key *,
		    unsigned char **, size_t *, char **);
int		 store_unseal(const unsigned char *, size_t,
		    const struct key *, struct store **, char **);
int		 store_open(const char *, const struct key *, int,
		    struct store **, char **);
int		 store_lock(const char *, char **);
int		 store_write(const struct store *, const char *,
		    const struct key *, int, char **);
struct store	*store_parse(const unsigned char *, size_t);
struct store_entry *store_find(const struct store *, const char *);
int		 store_put(struct store *, const char *, const char *,
		    enum key_type, const char *, const char *, size_t, int,
		    char **);
int		 store_remove(struct store *, const char *);
int		 store_check_name(const char *);
int		 store_check_key(const char *, size_t);
int		 store_read_secret(const char *, struct key **, char **);
int		 store_prompt(const char *, struct key **, char **);
int	 store_key_load(struct keyload *, struct tenant *, char **);
int	 store_entry_key(struct keyload *, const char *, const char *,
	    struct key **, char **);
void	 store_cache_free(struct keyload *);

/* expiry.c */
struct request;
int	 expiry_expired(const struct tenant *, int64_t);
int	 expiry_refused(const struct request *, char *, size_t);
void	 expiry_check(const struct config *);
int	 expiry_start(struct event_base *, struct config *const *);
void	 expiry_stop(void);

/* keycmd.c */
int	 keycmd_run(const char *, unsigned int, struct key **, char **);

/* pkcs11.c */
int	 pkcs11_key_load(struct tenant *, struct key **, char **);
void	 pkcs11_key_free(struct pkcs11_key *);
int	 pkcs11_hash(struct pkcs11_key *, const char *, const char *, char *);

/* priv.c */
void	 priv_harden(void);
int	 priv_prepare(const struct config *, char **);
int	 priv_owns(uid_t);
int	 priv_target(uid_t *, gid_t *);
int	 priv_drop(const struct config *, char **);
int	 priv_check(const struct config *, char **);

/* clock.c */
#define CLOCK_SKEW_WARN_MS	(60 * 1000)	/* the tenant allows ~5 min */
int	 clock_parse_date(const char *, int64_t *);
int64_t	 clock_skew_ms(int64_t, int64_t);
int	 clock_record(struct tenant *, int64_t, int64_t);
int	 clock_skew_get(const struct tenant *, int64_t *);
void	 clock_format(char *, size_t, int64_t);
int	 clock_observe(struct tenant *, const char *, int64_t *);

/* live.c */
int	 live_check(struct config *);

/* sign.c */
struct signer {
	void		*sg_md;		/* EVP_MD, fetched once */
	void		*sg_ctx;	/* EVP_MD_CTX, reused */
	unsigned char	 sg_pool[1024];	/* RAND_bytes drawn in batches */
	size_t		 sg_pool_pos;
};

struct sign_headers {
	char		 sh_nonce[SIGN_NONCE_LEN + 1];
	char		 sh_timestamp[SIGN_TS_MAX];
	char		 sh_hash[SIGN_HASH_HEX_LEN + 1];
};

int	 sign_init(struct signer *);
void	 sign_free(struct signer *);
int	 sign_nonce_char(unsigned char);
int	 sign_nonce(struct signer *, char *);
int	 sign_hash(struct signer *, const char *, size_t, const char *,
	    const char *, char *);
int	 sign_advanced(struct signer *, const struct key *, uint64_t,
	    struct sign_headers *);
int	 sign_random(struct signer *, void *, size_t);

/* filter.c */
enum filter_verdict {
	FILTER_PASS,
	FILTER_DROP
};
enum filter_dir {
	FILTER_TO_TENANT,
	FILTER_TO_CLIENT
};

/* What filter_request() needs to know of a request that evhttp parsed. */
struct filter_req {
	enum evhttp_cmd_type	 fq_cmd;
	int			 fq_major, fq_minor;	/* HTTP version */
	const struct evkeyvalq	*fq_headers;
	const char		*fq_uri;
	int			 fq_head_bad;	/* seen raw: 1 NUL or control
						   byte, 2 bad chunked body */
	size_t			 fq_max_count;	/* header lines; 0: no limit */
	const struct strlist	*fq_allow;	/* allow_path prefixes */
	const char *const	*fq_names;	/* Host names accepted */
	size_t			 fq_nnames;
	const char		*fq_local;	/* wildcard listener: local
						   address, else NULL */
};

/* Why filter_request() refused, or what it learnt of a request it let by. */
struct filter_res {
	int			 fs_status;	/* 400, 403, 405, 421 */
	const char		*fs_code;	/* "bad_request", ... */
	const char		*fs_why;	/* static text for the message */
	const char		*fs_which;	/* header that decided, or NULL */
	int			 fs_close;	/* close the connection after */
	int			 fs_has_body;	/* Content-Length or chunked */
};

int	 filter_request(const struct filter_req *, struct filter_res *);
int	 filter_framing(const struct evkeyvalq *, int *, const char **);
int	 filter_browser(const struct evkeyvalq *, const char **);
int	 filter_host_name(const char *, char *, size_t);
int	 filter_host_allowed(const char *, const char *const *, size_t);
int	 filter_uri(const char *, const struct strlist *, int *,
	    const char **);
int	 filter_header_value_ok(const char *);
enum filter_verdict
	 filter_header(enum filter_dir, const char *,
	    const struct evkeyvalq *);
int	 filter_token_listed(const char *, const char *);

/*
 * caller.c: who called, resolved once per client connection. The
 * connection and each of its requests hold a reference (one worker
 * thread's); the audit fragment is formatted once.
 */
struct caller {
	long		 c_uid, c_gid, c_pid;	/* -1: unknown */
	char		 c_user[64], c_group[64];	/* "": unknown */
	char		 c_exe[4096];
	char		 c_error[192];	/* "": all known */
	unsigned int	 c_refs;	/* 0: static, never freed */
	char		*c_json;	/* caller_json()'s bytes, or NULL */
	size_t		 c_jsonlen;
};
extern struct caller caller_untracked;
void	 caller_resolve(int, struct caller *);
void	 caller_unknown(struct caller *, const char *);
struct caller *caller_new(int);
struct caller *caller_ref(struct caller *);
void	 caller_unref(struct caller *);
void	 caller_json(struct evbuffer *, const struct caller *);

/* policy.c */
enum policy_verdict {
	POLICY_ALLOW,
	POLICY_DENY,
	POLICY_REFUSE	/* a path spelling refused before any rule */
};
int	 policy_rule_add(struct policy_rules *, int, const char *,
	    const char *, int, char **);
void	 policy_rules_free(struct policy_rules *);
int	 policy_canon(const char *, size_t, char *, const char **);
int	 policy_glob_match(const char *, const char *, size_t);
struct caller;
enum policy_verdict
	 policy_decide(const struct policy_rules *, const struct caller *,
	    enum evhttp_cmd_type, const char *, size_t, const char **,
	    const char **);
struct request;
int	 policy_check(struct request *);
/* sink.c: syslog audit sinks. */
enum sink_kind { SINK_UNIX, SINK_UDP, SINK_TCP };
struct sink_addr {
	char			 sa_spec[256];	/* as configured */
	enum sink_kind		 sa_kind;
	char			 sa_host[256];	/* unix: the path */
	int			 sa_port;
};
struct sink_stat {
	char			 ss_spec[256];
	uint64_t		 ss_dropped;
	size_t			 ss_queued;
	int			 ss_up;
};
int	 sink_parse(const char *, struct sink_addr *, const char **);
int	 sink_facility_code(const char *);
size_t	 sink_format_header(char *, size_t, int, uint64_t, const char *,
	    long, const char *);
int	 sink_configure(const struct config *, char **);
struct iovec;
int	 sink_send(const char *, const struct iovec *, int, int);
int	 sink_count(void);
int	 sink_stat(size_t, struct sink_stat *);
void	 sink_stop(void);

/* audit.c */
enum outcome {
	OUTCOME_OK,
	OUTCOME_UPSTREAM_ERROR,
	OUTCOME_PROXY_ERROR,
	OUTCOME_CLIENT_ABORTED
};
enum audit_fail {
	AUDIT_FAIL_CLOSED,	/* no request record: 503, not forwarded */
	AUDIT_FAIL_OPEN		/* forwarded all the same, with a warning */
};
enum audit_type {
	AUDIT_REQUEST,		/* before forwarding */
	AUDIT_RESPONSE		/* at the end, whatever the outcome */
};
#define AUDIT_HASH_LEN	32	/* SHA-256 */
struct request;
int	 audit_set_key(const unsigned char *, size_t);
int	 audit_key_same(const unsigned char *, size_t);
int	 audit_open(const char *, char **);
void	 audit_chain_init(void);
int	 audit_reopen(char **);
int	 audit_switch(const char *, char **);
void	 audit_close(void);
int	 audit_write(const struct request *, enum audit_type);
int	 audit_checkpoint(uint64_t *, char [2 * AUDIT_HASH_LEN + 1]);
void	 audit_count_unavailable(void);
uint64_t audit_unavailable_total(void);
int	 audit_line_seq(const char *, size_t, uint64_t *);
int	 audit_last_line(const char *, size_t, int, size_t *, size_t *,
	    size_t *);
const char *audit_outcome_name(enum outcome);
uint64_t audit_write_errors(void);
int	 audit_ready(char *, size_t);

/* server.c */
struct worker;
struct listener {
	TAILQ_ENTRY(listener)	 ln_entry;
	struct worker		*ln_worker;
	struct config		*ln_conf;	/* generation of ln_tenant */
	struct tenant		*ln_tenant;
	struct listen_addr	*ln_addr;
	struct evhttp		*ln_http;
	struct evhttp_bound_socket *ln_bound;
	char			 ln_bound_name[64];	/* numeric host */
	int			 ln_wildcard;
	const char		**ln_names;	/* Host names accepted */
	size_t			 ln_nnames;
	int			 ln_retired;	/* not in the configuration
						   in force: accepts no more */
	size_t			 ln_nconns;	/* open client connections */
	int			 ln_activated;	/* socket passed by systemd */
};
TAILQ_HEAD(listeners, listener);

int	 server_init(int);
int	 server_activated(char **);
int	 server_open(struct config *, const struct config *, char **);
void	 server_activated_done(void);
int	 server_start(struct worker *, struct config *, char **);
int	 server_reconfigure(struct worker *, struct config *, char **);
void	 server_sweep(evutil_socket_t, short, void *);
void	 server_stop_accepting(struct worker *);
void	 server_free(struct worker *);
int	 server_local_name(struct evhttp_connection *, char *, size_t);
void	 server_watch(struct evhttp_connection *,
	    void (*)(struct evhttp_connection *, void *), void *);
void	 server_request_taken(struct evhttp_request *);
void	 server_request_done(struct evhttp_connection *);
void	 server_watch_eof(struct evhttp_connection *);
void	 server_close_after(struct evhttp_connection *);
int	 server_head_bad(struct evhttp_connection *);
struct caller *server_caller(struct evhttp_connection *);
int	 server_half_closed(struct evhttp_connection *);
long	 server_clients(void);
int	 server_socket(const struct listen_addr *, char *, size_t, int *,
	    char **);

/* upstream.c: how the transfer reports to the stage that started it. */
struct upstream_cbs {
	size_t	(*uc_header)(void *, const char *, size_t);	/* a line */
	size_t	(*uc_data)(void *, const char *, size_t);	/* body bytes */
	void	(*uc_done)(void *, CURLcode);	/* outside libcurl */
};

/* One request's transfer, upstream.c's alone. */
struct upstream_xfer {
	CURL			*ux_easy;
	struct curl_slist	*ux_headers;
	const struct upstream_cbs *ux_cbs;
	int			 ux_in_multi;	/* added to the multi handle */
	int			 ux_done;	/* libcurl reported the end */
	int			 ux_sent;	/* it went out: upstream_detach() */
};

/* request.c: the states of a request's life (see request.c). */
enum request_state {
	REQ_NEW,
	REQ_WAITING,		/* the governor's queue, or a retry's backoff */
	REQ_FORWARDING,
	REQ_REPLYING,
	REQ_ENDING,
	REQ_FLUSHING,
	REQ_CLOSING
};

/* xql.c */
#define XQL_CAPTURE_MAX	(256 * 1024)	/* longer answers are not read */
enum xql_kind {
	XQL_NONE,
	XQL_START,	/* start_xql_query: takes a slot */
	XQL_RESULTS	/* get_query_results: may free one */
};
struct request;
enum xql_kind xql_kind(const char *, size_t);
char	*xql_request_id(const char *, size_t);
void	 xql_answer(struct request *, enum xql_kind, const char *,
	    const unsigned char *, size_t, int);

/*
 * governor.c: a request's place in its tenant's budget. Small, and all
 * there is of a queued request besides what evhttp read: no upstream
 * handle or buffer is made until it is granted. Under governor.c's lock.
 */
enum gov_state {
	GK_NONE,	/* holds nothing, waits for nothing */
	GK_LANE,	/* waits on its call's own limit */
	GK_XQL,		/* waits for an XQL slot */
	GK_MAIN,	/* waits on the tenant's rate or max_concurrent */
	GK_GRANTED,	/* granted; its worker has not taken it yet */
	GK_HELD		/* taken: in flight to the tenant */
};
struct gov_slot;
struct gov_caller;
struct gov_ticket {
	TAILQ_ENTRY(gov_ticket)	 gk_entry;	/* a queue, or w_granted */
	struct request		*gk_req;
	enum gov_state		 gk_state;
	struct gov_tenant	*gk_tenant;	/* NULL: bypassed the governor */
	struct gov_lane		*gk_lane;	/* its call's limit, or NULL */
	struct gov_caller	*gk_caller;	/* while in GK_MAIN */
	struct gov_slot		*gk_slot;	/* an XQL slot it holds */
	int			 gk_xql;	/* start_xql_query: wants a slot */
	int			 gk_inflight;	/* counted in max_concurrent */
	uint64_t		 gk_queued_us;	/* when it started waiting */
	char			 gk_key[48];	/* fairness: "uid:N" or address */
};
TAILQ_HEAD(gov_tickets, gov_ticket);

struct request {
	TAILQ_ENTRY(request)	 req_entry;	/* worker's live requests */
	TAILQ_ENTRY(request)	 req_done_entry;	/* to be ended */
	enum request_state	 req_state;
	struct worker		*req_worker;
	struct config		*req_conf;	/* the generation it started in */
	struct tenant		*req_tenant;
	struct evhttp_request	*req_http;	/* NULL once handed back */
	struct evhttp_connection *req_conn;	/* NULL once the client left */
	struct upstream_xfer	 req_xfer;
	struct event		*req_timer;	/* upstream idle timeout */
	const char		*req_method;
	const char		*req_uri;	/* evhttp's, or req_uri_copy */
	char			*req_uri_copy;	/* once handed back */
	size_t			 req_path_len;	/* bytes before '?' */
	char			 req_id[REQUEST_ID_LEN + 1];
	char			 req_client[64];
	struct caller		*req_caller;	/* the connection's, a reference */
	uint64_t		 req_start_wall_ms;
	uint64_t		 req_start_mono_us;
	uint64_t		 req_reply_us;	/* reply started; 0 before */
	uint64_t		 req_end_mono_us;
	uint64_t		 req_last_activity_us;
	uint64_t		 req_bytes_in;
	uint64_t		 req_bytes_out;
	int			 req_status;	/* sent to the client */
	int			 req_close;	/* close the connection after */
	int			 req_paused;	/* transfer paused: slow client */
	enum outcome		 req_outcome;
	const char		*req_error;	/* error code, NULL when ok */
	char			 req_message[256];	/* error detail */
	char			 req_curl_error[CURL_ERROR_SIZE];
	char			 req_reason[64];	/* upstream reason phrase */
	long long		 req_up_clen;	/* tenant's Content-Length */
	int			 req_up_te;	/* tenant sent Transfer-Encoding */
	int			 req_upstream_status;
	const char		*req_rule;	/* policy.c: "FILE:LINE" of the
						   rule that decided (the
						   generation's), "default",
						   NULL: the tenant has none */
	struct gov_ticket	 req_gov;	/* governor.c */
	uint64_t		 req_queued_us;	/* waited in all, all attempts */
	unsigned int		 req_attempts;	/* transfers started */
	unsigned int		 req_retry_after;	/* s, with a 429 of ours */
	int			 req_has_body;	/* the client framed a body */
	/* request_canon(): the path as globs see it, until request_end(). */
	const char		*req_canon;	/* NULL: a spelling refused */
	size_t			 req_canon_len;
	char			*req_canon_copy;	/* when it differs */
	/* Retries (retry.c). */
	int			 req_retry;	/* this attempt is to be retried */
	size_t			 req_retry_discarded;	/* its body, dropped */
	unsigned int		 req_retry_wait_ms;	/* tenant's Retry-After */
	/* XQL calls (xql.c). */
	enum xql_kind		 req_xql;
	char			*req_xql_id;	/* get_query_results: the query */
	struct evbuffer		*req_xql_body;	/* the answer, while small */
	int			 req_xql_gzip;
	int			 req_xql_big;	/* over XQL_CAPTURE_MAX */
};
TAILQ_HEAD(requests, request);

uint64_t request_clock_us(clockid_t);
uint64_t request_wall_ms(void);
void	 request_id_new(struct worker *, char [REQUEST_ID_LEN + 1]);
struct request *request_new(struct listener *, struct evhttp_request *);
void	 request_canon(struct request *);
void	 request_finish(struct request *);
void	 request_fail(struct request *, int, const char *, const char *, ...)
	    __attribute__((format(printf, 4, 5)));
void	 request_reap(evutil_socket_t, short, void *);
void	 request_end_all(struct worker *, int, const char *);
void	 request_abandon_all(struct worker *);

/* retry.c */
int	 retry_status(struct request *);
int	 retry_error(struct request *, CURL *, CURLcode);
unsigned int retry_after_ms(const char *);
unsigned int retry_delay_ms(const struct gov_conf *, unsigned int,
	    unsigned int, uint32_t);

/* proxy.c */
void	 proxy_handle(struct evhttp_request *, void *);
void	 proxy_granted(struct request *);

/*
 * governor.c: the tenant's budget. Workers admit and release requests
 * under one lock; the governor's thread runs the queues and their
 * timers and hands granted requests back to their workers
 * (WORKER_GRANTED).
 */
enum gov_verdict {
	GOV_GO,		/* send it now */
	GOV_QUEUED,	/* proxy_granted() once its turn comes */
	GOV_FULL	/* queue_max waiting already: 429 */
};
int	 governor_start(struct config *, char **);
void	 governor_stop(void);
void	 governor_free(void);
int	 governor_configure(struct config *, char **);
enum gov_verdict governor_admit(struct request *, char *, size_t);
int	 governor_cancel(struct request *);
void	 governor_done(struct request *);
void	 governor_take(struct worker *);
void	 governor_observe(struct request *, int);
int	 governor_retry_take(struct request *);
void	 governor_xql_started(struct request *, const char *, size_t);
void	 governor_xql_final(struct request *, const char *, size_t);
void	 governor_render(struct evbuffer *);

/* upstream.c */
struct upstream_failure {
	int		 uf_status;	/* 502, 504 */
	const char	*uf_code;	/* "upstream_tls", ... */
	char		 uf_message[256];
};
CURLcode upstream_tenant_setopt(CURL *, const struct tenant *,
	    const struct config *, const char **);
void	 upstream_classify(CURL *, const struct tenant *, CURLcode,
	    const char *, struct upstream_failure *);
int	 upstream_init(struct worker *, struct config *, char **);
void	 upstream_configure(struct worker *, const struct config *);
void	 upstream_free(struct worker *);
int	 upstream_start(struct request *, int, const struct upstream_cbs *,
	    char **);
void	 upstream_detach(struct request *);
void	 upstream_resume(struct request *);

/* worker.c: one event loop with its listeners, libcurl multi and requests */
struct conn;
TAILQ_HEAD(conns, conn);

struct worker {
	int			 w_index;
	struct config		*w_conf;
	struct event_base	*w_base;
	struct listeners	 w_listeners;
	struct conns		 w_conns;	/* client connections, server.c */
	CURLM			*w_multi;
	CURLSH			*w_share;
	struct event		*w_curl_timer;
	CURL			*w_easy_pool[64];	/* reusable handles */
	size_t			 w_easy_npool;
	struct event		*w_reaper;	/* ends finished requests */
	struct requests		 w_live;
	struct requests		 w_done;
	struct gov_tickets	 w_granted;	/* governor.c's lock */
	size_t			 w_nlive;	/* until audited, flush included */
	struct signer		 w_signer;
	struct evbuffer		*w_scratch;	/* chunk staging */
	struct evbuffer		*w_audit;	/* record formatting */
	struct event		*w_shutdown_timer;
	struct event		*w_sweep;	/* frees retired listeners */
	int			 w_draining;	/* 1 stopping, 2 deadline passed */
	/* Written by the worker only, read by metrics.c: metrics_add(). */
	_Atomic uint64_t	 w_clients_refused;	/* past max_clients */
	_Atomic uint64_t	 w_header_timeouts;
	_Atomic uint64_t	 w_libevent_answers;	/* its own error pages */
	struct metrics_worker	*w_metrics;	/* metrics.c's counters */
	uint32_t		 w_id_prefix;
	uint64_t		 w_id_counter;
	/* How the main thread talks to the worker, and back. */
	int			 w_ctl[2];	/* pipe: WORKER_* bytes */
	struct event		*w_control;	/* reads w_ctl[0] */
	struct config *_Atomic	 w_next;	/* with WORKER_RECONFIGURE */
	int			 w_report;	/* main's pipe: WORKER_ENDED, ... */
	pthread_t		 w_thread;
	int			 w_started;
};

/* Bytes on a worker's control pipe, and on the main thread's report pipe. */
#define WORKER_DRAIN		1	/* stop accepting, finish requests */
#define WORKER_END_NOW		2	/* end what is still running */
#define WORKER_RECONFIGURE	3	/* put w_next in force */
#define WORKER_GRANTED		4	/* governor.c: w_granted has more */
#define WORKER_ENDED		1	/* reported: the loop ended */
#define WORKER_SWITCHED		2	/* reported: w_next is in force */

int	 worker_init(struct worker *, int, struct config *, char **);
int	 worker_start(struct worker *, int);
void	 worker_stop(struct worker *, int);
void	 worker_reconfigure(struct worker *, struct config *);
void	 worker_release(struct worker *, struct config *);
void	 worker_wake(struct worker *);
void	 worker_join(struct worker *);
void	 worker_free(struct worker *);

/*
 * metrics.c: counters per worker, summed when /metrics is scraped. Each
 * counter has one writer (its worker's thread, or the main thread for
 * what only it does) and is read by the main thread: metrics_add() is a
 * relaxed load and store, not a locked read-modify-write, so counting
 * costs the request path next to nothing.
 */
#define METRICS_MAX_TENANTS	1024	/* tenant names, over the process's life */
#define METRICS_NBUCKETS	16
struct metrics_worker;

/* Counts per bucket (not cumulative; the last is +Inf) and their sum. */
struct metrics_hist {
	_Atomic uint64_t	 mh_bucket[METRICS_NBUCKETS + 1];
	_Atomic uint64_t	 mh_sum_us;
};

static inline void
metrics_add(_Atomic uint64_t *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) +
	    n, memory_order_relaxed);
}

static inline uint64_t
metrics_get(const _Atomic uint64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

int	 metrics_init(struct config *);
void	 metrics_free(void);
int	 metrics_tenant_slot(const char *);
void	 metrics_register(struct config *);
int	 metrics_worker_add(struct worker *);
void	 metrics_worker_remove(struct worker *);
void	 metrics_request_start(struct request *);
void	 metrics_request_done(struct request *);
void	 metrics_policy_denied(struct request *);
void	 metrics_upstream_done(struct request *, CURL *);
void	 metrics_reload_result(int);
void	 metrics_render(struct evbuffer *, const struct config *);
void	 metrics_label_value(struct evbuffer *, const char *);
void	 metrics_observe(struct metrics_hist *, uint64_t);
void	 metrics_family(struct evbuffer *, const char *, const char *,
	    const char *);
void	 metrics_tenant_sample(struct evbuffer *, const char *, int,
	    const char *);
void	 metrics_histogram(struct evbuffer *, const char *, int,
	    const uint64_t *, uint64_t);

/* admin.c: the admin listener (metrics, health) on the main thread's loop. */
int	 admin_start(struct event_base *, struct config *, char **);
int	 admin_reconfigure(struct config *, char **);
void	 admin_draining(void);
void	 admin_free(void);

#endif /* XDRPROXY_H */
