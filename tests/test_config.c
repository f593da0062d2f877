/*
 * test_config.c: the configuration file: values, defaults, and an error
 * naming FILE:LINE for every kind of mistake.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <netinet/in.h>

#include "xdrproxy.h"
#include "unit.h"

static char	path[] = "/tmp/test_config.XXXXXX";

static struct config *
load(const char *text, char **cause)
{
	FILE	*f = fopen(path, "w");

	fputs(text, f);
	fclose(f);
	return config_load(path, cause);
}

/* The text must fail to load with "PATH:LINE: <fragment...>". */
static void
bad(int line, const char *fragment, const char *text)
{
	struct config	*cf;
	char		*cause = NULL, want[512];

	cf = load(text, &cause);
	CHECK(cf == NULL);
	config_free(cf);
	snprintf(want, sizeof(want), "%s:%d: ", path, line);
	CHECK(cause != NULL && strncmp(cause, want, strlen(want)) == 0 &&
	    strstr(cause, fragment) != NULL);
	if (cause == NULL || strncmp(cause, want, strlen(want)) != 0 ||
	    strstr(cause, fragment) == NULL)
		fprintf(stderr, "  got:  %s\n  want: %s...%s\n",
		    cause ? cause : "(none)", want, fragment);
	free(cause);
}

#define TENANT \
	"[tenant acme]\n" \
	"listen = 127.0.0.1:8080\n" \
	"fqdn = acme.xdr.us.paloaltonetworks.com\n" \
	"key_id = 42\n" \
	"key_file = /etc/xdrproxy/keys/acme.key\n"

static void
test_good(void)
{
	struct config		*cf;
	struct tenant		*tn;
	struct listen_addr	*la;
	char			*cause = NULL;

	cf = load("; a comment\n"
	    "# another\n"
	    "[proxy]\n"
	    "audit_log = /var/log/xdrproxy/audit.jsonl   ; \"-\" is stdout\n"
	    "max_body  = 1m\n"
	    "upstream_timeout = 2500ms\n"
	    "\n"
	    "[tenant acme]            ; NAME is free text\n"
	    "  listen     = 127.0.0.1:8080\n"
	    "  listen     = [::1]:8081\n"
	    "  listen     = unix:/run/xdrproxy/acme.sock mode=0600 group=0\n"
	    "  fqdn       = acme.xdr.us.paloaltonetworks.com\n"
	    "  key_id     = 42\n"
	    "  key_file   = /etc/xdrproxy/keys/acme.key\n"
	    "  key_type   = standard\n"
	    "  connect_to = 127.0.0.1:9443\n"
	    "  server_name = proxy.internal\n"
	    "  http2 = yes\n"
	    "[tenant b]\n"
	    "listen = localhost:8090\n"
	    "fqdn = b.xdr.eu.paloaltonetworks.com\n"
	    "key_id = 7\n"
	    "key_file = /k\n"
	    "allow_path = /public_api/v1/incidents/\n"
	    "allow = group:root  POST  /public_api/v1/incidents/*\n"
	    "deny  = any * /public_api/v1/endpoints/isolate*  ; never\n"
	    "allow = uid:0 * *\n", &cause);
	CHECK(cf != NULL);
	if (cf == NULL) {
		fprintf(stderr, "  cause: %s\n", cause);
		free(cause);
		return;
	}
	CHECK_STR(cf->cf_audit_log, "/var/log/xdrproxy/audit.jsonl");
	CHECK(cf->cf_max_body == 1024 * 1024);
	CHECK(cf->cf_upstream_timeout == 2500);
	CHECK(cf->cf_client_timeout == 60000);
	tn = TAILQ_FIRST(&cf->cf_tenants);
	CHECK_STR(tn->tn_name, "acme");
	CHECK_STR(tn->tn_host, "api-acme.xdr.us.paloaltonetworks.com");
	CHECK_STR(tn->tn_base_url,
	    "https://api-acme.xdr.us.paloaltonetworks.com");
	CHECK_STR(tn->tn_key_id, "42");
	CHECK(tn->tn_key_type == KEY_STANDARD);
	CHECK(tn->tn_http2 == 1);
	CHECK(tn->tn_server_names.sl_n == 1);
	CHECK(tn->tn_allow_paths.sl_n == 1);
	CHECK_STR(tn->tn_allow_paths.sl_v[0], "/public_api/");
	CHECK(tn->tn_curl_connect_to != NULL);
	if (tn->tn_curl_connect_to != NULL)
		CHECK_STR(tn->tn_curl_connect_to->data,
		    "api-acme.xdr.us.paloaltonetworks.com:443:127.0.0.1:9443");
	la = TAILQ_FIRST(&tn->tn_listens);
	CHECK(la->la_ss.ss_family == AF_INET && la->la_line == 9);
	la = TAILQ_NEXT(la, la_entry);
	CHECK(la->la_ss.ss_family == AF_INET6);
	la = TAILQ_NEXT(la, la_entry);
	CHECK(la->la_unix && strcmp(la->la_path, "/run/xdrproxy/acme.sock") ==
	    0);
	CHECK(la->la_mode == 0600 && la->la_gid == 0);
	la = TAILQ_FIRST(&tn->tn_listens);
	CHECK(la->la_mode == 0660 && la->la_gid == (gid_t)-1);
	tn = TAILQ_NEXT(tn, tn_entry);
	CHECK_STR(tn->tn_name, "b");
	CHECK(tn->tn_key_type == KEY_ADVANCED);
	CHECK(tn->tn_http2 == 0);
	CHECK_STR(tn->tn_allow_paths.sl_v[0], "/public_api/v1/incidents/");
	CHECK(tn->tn_curl_connect_to == NULL);
	CHECK(tn->tn_policy.pl_n == 3);
	CHECK(TAILQ_FIRST(&cf->cf_tenants)->tn_policy.pl_n == 0);
	config_free(cf);

	/* Defaults: no [proxy] at all. */
	cf = load(TENANT, &cause);
	CHECK(cf != NULL);
	if (cf != NULL) {
		CHECK_STR(cf->cf_audit_log, "-");
		CHECK(cf->cf_max_body == 16 * 1024 * 1024);
		config_free(cf);
	}
}

static void
test_errors(void)
{
	/* allow / deny: FILE:LINE of the rule. */
	bad(6, "allow: expected CALLER METHODS PATH", TENANT "allow = any *\n");
	bad(7, "deny: unknown caller 'bob'", TENANT
	    "allow = any GET /x\ndeny = bob * /x\n");
	bad(6, "allow: no user 'no-such-xdrp-user' on this system", TENANT
	    "allow = user:no-such-xdrp-user * *\n");
	bad(6, "allow: no group 'no-such-xdrp-group' on this system", TENANT
	    "allow = group:no-such-xdrp-group * *\n");
	bad(6, "allow: unknown method 'TRACE'", TENANT
	    "allow = uid:0 GET,TRACE *\n");
	bad(6, "deny: path 'public_api/*' must start with /", TENANT
	    "deny = any * public_api/*\n");
	bad(1, "'allow' outside a section", "allow = any * *\n" TENANT);
	bad(2, "unknown key 'allow' in [proxy]", "[proxy]\nallow = any * *\n"
	    TENANT);
	bad(6, "unknown key 'fqnd' in [tenant acme]", TENANT "fqnd = x\n");
	bad(2, "unknown key 'max_bdy' in [proxy]",
	    "[proxy]\nmax_bdy = 1m\n" TENANT);
	bad(1, "[tenant acme] needs 'fqdn'",
	    "[tenant acme]\nlisten = 127.0.0.1:1\nkey_id = 1\nkey_file = /k\n");
	bad(1, "[tenant acme] needs 'listen'", "[tenant acme]\n");
	bad(7, "[tenant b] names no key source: set one of key_file, "
	    "key_store + key_name, key_credential, key_command or key_pkcs11",
	    TENANT
	    "\n[tenant b]\nlisten = 127.0.0.1:1\nfqdn = b.x\nkey_id = 1\n");
	bad(6, "key_command and key_file (line 5) both set: a tenant names "
	    "exactly one key source", TENANT "key_command = /bin/echo x\n");
	bad(6, "key_command: the program must be an absolute path",
	    TENANT "key_command = echo x\n");
	bad(6, "key_credential: 'a/b' is not a credential name", TENANT
	    "key_credential = a/b\n");
	bad(6, "key_expires: expected a date, YYYY-MM-DD (UTC), not "
	    "'2026-02-30'", TENANT "key_expires = 2026-02-30\n");
	bad(6, "pkcs11_module applies only with key_pkcs11", TENANT
	    "pkcs11_module = /usr/lib/softhsm/libsofthsm2.so\n");
	bad(5, "key_pkcs11: a standard key is sent as it is, so it cannot "
	    "stay on a token", "[tenant acme]\nlisten = 127.0.0.1:8080\n"
	    "fqdn = a.x\nkey_id = 1\nkey_pkcs11 = pkcs11:object=k\n"
	    "key_type = standard\n");
	bad(5, "key_name needs key_store, in this section or in [proxy]",
	    "[tenant acme]\nlisten = 127.0.0.1:8080\nfqdn = a.x\n"
	    "key_id = 1\nkey_name = acme\n");
	bad(4, "key_store needs key_name", "[tenant acme]\n"
	    "listen = 127.0.0.1:8080\nfqdn = a.x\nkey_store = /s\n");
	bad(1, "[tenant acme] needs 'key_id' (only a key store keeps the key "
	    "ID with the key)", "[tenant acme]\nlisten = 127.0.0.1:8080\n"
	    "fqdn = a.x\nkey_command = /bin/echo k\n");
	bad(7, "listen 127.0.0.1:8080: already used by [tenant acme] on line 2",
	    TENANT "[tenant b]\nlisten = 127.0.0.1:8080\nfqdn = b.x\n"
	    "key_id = 1\nkey_file = /k\n");
	bad(6, "already used by [tenant acme] on line 2",
	    TENANT "listen = 127.0.0.1:8080\n");
	bad(2, "listen 'nowhere'", "[tenant a]\nlisten = nowhere\n");
	bad(2, "listen 'unix:/s mode=0999': mode '0999': expected octal "
	    "permissions such as 0660", "[tenant a]\nlisten = unix:/s "
	    "mode=0999\n");
	bad(2, "mode '1777': expected octal", "[tenant a]\nlisten = unix:/s "
	    "mode=1777\n");
	bad(2, "group 'no-such-group-x': no such group",
	    "[tenant a]\nlisten = unix:/s group=no-such-group-x\n");
	bad(2, "unknown option 'owner=root' (expected mode= or group=)",
	    "[tenant a]\nlisten = unix:/s owner=root\n");
	bad(2, "options (mode=, group=) are for unix: sockets only",
	    "[tenant a]\nlisten = 127.0.0.1:1 mode=0600\n");
	bad(2, "listen '127.0.0.1'", "[tenant a]\nlisten = 127.0.0.1\n");
	bad(2, "listen 'example.com:80'",
	    "[tenant a]\nlisten = example.com:80\n");
	bad(2, "listen '127.0.0.1:99999'",
	    "[tenant a]\nlisten = 127.0.0.1:99999\n");
	bad(2, "unix socket path must be absolute",
	    "[tenant a]\nlisten = unix:rel.sock\n");
	bad(2, "max_body: bad size '16q'", "[proxy]\nmax_body = 16q\n" TENANT);
	bad(2, "max_body: bad size '-1'", "[proxy]\nmax_body = -1\n" TENANT);
	bad(2, "client_timeout: bad duration '5 s'",
	    "[proxy]\nclient_timeout = 5 s\n" TENANT);
	bad(3, "'max_body' already set on line 2",
	    "[proxy]\nmax_body = 1m\nmax_body = 2m\n" TENANT);
	bad(6, "'fqdn' already set on line 3", TENANT "fqdn = other.x\n");
	bad(1, "unknown section [proxi]", "[proxi]\n" TENANT);
	bad(1, "unknown section [tenants x]", "[tenants x]\n" TENANT);
	bad(1, "tenant name", "[tenant]\n" TENANT);
	bad(1, "tenant name", "[tenant a/b]\n" TENANT);
	bad(6, "[tenant acme] already appears on line 1", TENANT TENANT);
	bad(3, "[proxy] already appears on line 1",
	    "[proxy]\nmax_body = 1m\n[proxy]\n" TENANT);
	bad(1, "'fqdn' outside a section", "fqdn = x\n" TENANT);
	bad(2, "expected 'key = value'", "[proxy]\njust words\n" TENANT);
	bad(1, "section header without ']'", "[proxy\n" TENANT);
	bad(1, "no [tenant NAME] section", "[proxy]\n");
	bad(3, "fqdn: give the bare tenant FQDN",
	    "[tenant a]\nlisten = 127.0.0.1:1\n"
	    "fqdn = api-acme.xdr.us.paloaltonetworks.com\n");
	bad(3, "fqdn: give the bare tenant FQDN",
	    "[tenant a]\nlisten = 127.0.0.1:1\nfqdn = https://acme.x\n");
	bad(3, "fqdn: 'a b' is not a host name",
	    "[tenant a]\nlisten = 127.0.0.1:1\nfqdn = a b\n");
	bad(2, "key_id: expected the numeric API key ID",
	    "[tenant a]\nkey_id = abc\n");
	bad(2, "key_file must be an absolute path",
	    "[tenant a]\nkey_file = keys/a.key\n");
	bad(6, "key_type: expected advanced or standard",
	    TENANT "key_type = fancy\n");
	bad(6, "ca_file /nonexistent/ca.pem: No such file",
	    TENANT "ca_file = /nonexistent/ca.pem\n");
	bad(6, "connect_to 'x'", TENANT "connect_to = x\n");
	bad(6, "http2: expected yes or no", TENANT "http2 = maybe\n");
	bad(6, "allow_path must start with '/'", TENANT "allow_path = api\n");
	bad(6, "'key_type' needs a value", TENANT "key_type =\n");
	bad(2, "audit_log must be an absolute path",
	    "[proxy]\naudit_log = audit.jsonl\n" TENANT);
	bad(2, "line too long", "[proxy]\naudit_log = /"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "\n" TENANT);
}

static void
test_values(void)
{
	size_t		 sz;
	unsigned int	 ms;
	struct config	*cf;
	char		*cause = NULL;

	CHECK(config_parse_size("16m", &sz) == 0 && sz == 16 << 20);
	CHECK(config_parse_size("512K", &sz) == 0 && sz == 512 << 10);
	CHECK(config_parse_size("1g", &sz) == 0 && sz == 1 << 30);
	CHECK(config_parse_size("1MB", &sz) == 0 && sz == 1 << 20);
	CHECK(config_parse_size("100", &sz) == 0 && sz == 100);
	CHECK(config_parse_size("", &sz) == -1);
	CHECK(config_parse_size("m", &sz) == -1);
	CHECK(config_parse_size("1t", &sz) == -1);
	CHECK(config_parse_size("99999999999999999999g", &sz) == -1);
	CHECK(config_parse_duration("30", &ms) == 0 && ms == 30000);
	CHECK(config_parse_duration("30s", &ms) == 0 && ms == 30000);
	CHECK(config_parse_duration("250ms", &ms) == 0 && ms == 250);
	CHECK(config_parse_duration("2m", &ms) == 0 && ms == 120000);
	CHECK(config_parse_duration("1h", &ms) == 0 && ms == 3600000);
	CHECK(config_parse_duration("1d", &ms) == -1);
	CHECK(config_parse_duration("-1s", &ms) == -1);
	CHECK(config_parse_duration("9999999h", &ms) == -1);
	/* A long comment line is fine; a UTF-8 BOM is skipped. */
	cf = load("\xef\xbb\xbf; " "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "\n" TENANT, &cause);
	CHECK(cf != NULL);
	if (cf == NULL)
		fprintf(stderr, "  cause: %s\n", cause);
	free(cause);
	config_free(cf);
	cause = NULL;
	cf = config_load("/nonexistent/xdrproxy.conf", &cause);
	CHECK(cf == NULL && cause != NULL &&
	    strcmp(cause, "/nonexistent/xdrproxy.conf: No such file or "
	    "directory") == 0);
	free(cause);
}

/* The [proxy] limits on clients: defaults, values, ranges. */
static void
test_limits(void)
{
	struct config	*cf;
	char		*cause = NULL;

	cf = load(TENANT, &cause);
	CHECK(cf != NULL);
	if (cf != NULL) {
		CHECK(cf->cf_max_clients == 1024);
		CHECK(cf->cf_client_header_timeout == 10000);
		CHECK(cf->cf_client_body_timeout == 60000);
		CHECK(cf->cf_keepalive_timeout == 60000);
		CHECK(cf->cf_max_header_count == 100);
		config_free(cf);
	}

	cf = load("[proxy]\n"
	    "max_clients = 1000000\n"
	    "client_header_timeout = 2500ms\n"
	    "client_body_timeout = 20s\n"
	    "keepalive_timeout = 5\n"
	    "max_header_count = 1\n" TENANT, &cause);
	CHECK(cf != NULL);
	if (cf != NULL) {
		CHECK(cf->cf_max_clients == 1000000);
		CHECK(cf->cf_client_header_timeout == 2500);
		CHECK(cf->cf_client_body_timeout == 20000);
		CHECK(cf->cf_keepalive_timeout == 5000);
		CHECK(cf->cf_max_header_count == 1);
		CHECK(cf->cf_client_timeout == 60000);
		config_free(cf);
	}

	/* client_body_timeout and keepalive_timeout follow client_timeout. */
	cf = load("[proxy]\nclient_timeout = 30s\n" TENANT, &cause);
	CHECK(cf != NULL);
	if (cf != NULL) {
		CHECK(cf->cf_client_body_timeout == 30000);
		CHECK(cf->cf_keepalive_timeout == 30000);
		CHECK(cf->cf_client_header_timeout == 10000);
		config_free(cf);
	}
	/* Whatever the order of the lines. */
	cf = load("[proxy]\nkeepalive_timeout = 2m\nclient_timeout = 45s\n"
	    TENANT, &cause);
	CHECK(cf != NULL);
	if (cf != NULL) {
		CHECK(cf->cf_client_body_timeout == 45000);
		CHECK(cf->cf_keepalive_timeout == 120000);
		config_free(cf);
	}
	cf = load("[proxy]\nmax_clients = 1\nmax_header_count = 10000\n"
	    TENANT, &cause);
	CHECK(cf != NULL);
	if (cf != NULL) {
		CHECK(cf->cf_max_clients == 1);
		CHECK(cf->cf_max_header_count == 10000);
		config_free(cf);
	}

	bad(2, "max_clients: expected a number from 1 to 1000000, not '0'",
	    "[proxy]\nmax_clients = 0\n" TENANT);
	bad(2, "max_clients: expected a number from 1 to 1000000, not "
	    "'1000001'", "[proxy]\nmax_clients = 1000001\n" TENANT);
	bad(2, "max_clients: expected a number", "[proxy]\nmax_clients = "
	    "1k\n" TENANT);
	bad(3, "'max_clients' already set on line 2",
	    "[proxy]\nmax_clients = 10\nmax_clients = 20\n" TENANT);
	bad(2, "max_header_count: expected a number from 1 to 10000, not "
	    "'0'", "[proxy]\nmax_header_count = 0\n" TENANT);
	bad(2, "max_header_count: expected a number from 1 to 10000, not "
	    "'10001'", "[proxy]\nmax_header_count = 10001\n" TENANT);
	bad(2, "client_header_timeout: bad duration '0'",
	    "[proxy]\nclient_header_timeout = 0\n" TENANT);
	bad(2, "client_header_timeout: bad duration '10 s'",
	    "[proxy]\nclient_header_timeout = 10 s\n" TENANT);
	bad(2, "client_body_timeout: bad duration '0ms'",
	    "[proxy]\nclient_body_timeout = 0ms\n" TENANT);
	bad(2, "client_body_timeout: bad duration '9999999h'",
	    "[proxy]\nclient_body_timeout = 9999999h\n" TENANT);
	bad(2, "keepalive_timeout: bad duration '1d'",
	    "[proxy]\nkeepalive_timeout = 1d\n" TENANT);
	bad(2, "'keepalive_timeout' needs a value",
	    "[proxy]\nkeepalive_timeout =\n" TENANT);
}

/* Every kind of value the tables know, at and past its limits. */
static void
test_types(void)
{
	struct config	*cf;
	char		*cause = NULL;

	cf = load("[proxy]\nworkers = 64\nmax_connections = 0\n"
	    "idle_connections = 100000\nmax_headers = 1\n"
	    "audit_log = -\n" TENANT "listen = [::1]:8080\n"
	    "server_name = a.example\nserver_name = b.example\n"
	    "allow_path = /a/\nallow_path = /b/\nhttp2 = on\n"
	    "key_type = advanced\n", &cause);
	CHECK(cf != NULL);
	if (cf == NULL) {
		fprintf(stderr, "  cause: %s\n", cause);
		free(cause);
		return;
	}
	CHECK(cf->cf_workers == 64);
	CHECK(cf->cf_max_connections == 0);
	CHECK(cf->cf_idle_connections == 100000);
	CHECK(cf->cf_max_headers == 1);
	CHECK(cf->cf_audit_log_line == 6);
	CHECK_STR(cf->cf_audit_log, "-");
	CHECK(TAILQ_FIRST(&cf->cf_tenants)->tn_key_file_line == 11);
	CHECK(TAILQ_FIRST(&cf->cf_tenants)->tn_server_names.sl_n == 2);
	CHECK(TAILQ_FIRST(&cf->cf_tenants)->tn_allow_paths.sl_n == 2);
	CHECK(TAILQ_FIRST(&cf->cf_tenants)->tn_http2 == 1);
	CHECK(TAILQ_FIRST(&cf->cf_tenants)->tn_key_type == KEY_ADVANCED);
	config_free(cf);

	cf = load("[proxy]\nworkers = auto\n" TENANT, &cause);
	CHECK(cf != NULL && cf->cf_workers >= 1 && cf->cf_workers <= 64);
	config_free(cf);

	bad(2, "workers: expected auto or a number from 1 to 64, not '65'",
	    "[proxy]\nworkers = 65\n" TENANT);
	bad(2, "workers: expected auto or a number from 1 to 64, not '0'",
	    "[proxy]\nworkers = 0\n" TENANT);
	bad(2, "max_connections: expected a number from 0 to 100000, not "
	    "'100001'", "[proxy]\nmax_connections = 100001\n" TENANT);
	bad(2, "idle_connections: expected a number from 0 to 100000, not "
	    "'-1'", "[proxy]\nidle_connections = -1\n" TENANT);
	bad(2, "max_headers: bad size '0'", "[proxy]\nmax_headers = 0\n"
	    TENANT);
	bad(2, "max_body: bad size '1025g'", "[proxy]\nmax_body = 1025g\n"
	    TENANT);
	bad(6, "server_name: 'a b' is not a host name",
	    TENANT "server_name = a b\n");
	bad(6, "allow_path: bad character", TENANT "allow_path = /a b\n");
	bad(2, "key_file must be an absolute path",
	    "[tenant a]\nkey_file = -\n");
	bad(6, "key_type: expected advanced or standard, not 'Advanced'",
	    TENANT "key_type = Advanced\n");
	bad(6, "connect_to 'unix:/x': expected host:port",
	    TENANT "connect_to = unix:/x\n");
	bad(2, "key_id: expected the numeric API key ID, not "
	    "'123456789012345678901'",
	    "[tenant a]\nkey_id = 123456789012345678901\n");
}

#define PIN_A	"sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
#define PIN_B	"sha256//47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="

/* Egress proxies, no_proxy, pinning, TLS versions, client certificates. */
static void
test_upstream_options(void)
{
	struct config	*cf;
	struct tenant	*tn;
	char		*cause = NULL;

	/* Defaults: direct, TLS 1.2, no pin, no client certificate. */
	cf = load(TENANT, &cause);
	CHECK(cf != NULL);
	if (cf != NULL) {
		tn = TAILQ_FIRST(&cf->cf_tenants);
		CHECK(tn->tn_egress_proxy == NULL && !tn->tn_egress_used);
		CHECK(tn->tn_no_proxy == NULL);
		CHECK(tn->tn_tls_min == TLS_MIN_1_2);
		CHECK(tn->tn_pinned_pubkey == NULL);
		CHECK(tn->tn_client_cert == NULL && tn->tn_client_key == NULL);
		config_free(cf);
	}

	/* [proxy]'s egress_proxy is every tenant's, unless it says none. */
	cf = load("[proxy]\negress_proxy = http://proxy.corp.example:3128\n"
	    "no_proxy = .internal.example, 10.0.0.0/8\n"
	    TENANT "tls_min_version = 1.3\n"
	    "pinned_pubkey = " PIN_A ";" PIN_B "\n"
	    "client_cert = /etc/xdrproxy/acme.crt\n"
	    "client_key = /etc/xdrproxy/acme.pem\n"
	    "[tenant b]\nlisten = 127.0.0.1:8081\nfqdn = b.internal.example\n"
	    "key_id = 1\nkey_file = /k\n"
	    "[tenant c]\nlisten = 127.0.0.1:8082\nfqdn = c.x\nkey_id = 1\n"
	    "key_file = /k\negress_proxy = none\n"
	    "[tenant d]\nlisten = 127.0.0.1:8083\nfqdn = d.x\nkey_id = 1\n"
	    "key_file = /k\negress_proxy = http://[::1]:8080/\n"
	    "no_proxy = other.example\n", &cause);
	CHECK(cf != NULL);
	if (cf == NULL) {
		fprintf(stderr, "  cause: %s\n", cause);
		free(cause);
		cause = NULL;
	} else {
		tn = TAILQ_FIRST(&cf->cf_tenants);
		CHECK_STR(tn->tn_egress_proxy, "http://proxy.corp.example:3128");
		CHECK_STR(tn->tn_no_proxy, ".internal.example, 10.0.0.0/8");
		CHECK(tn->tn_egress_used);
		CHECK(tn->tn_tls_min == TLS_MIN_1_3);
		CHECK_STR(tn->tn_pinned_pubkey, PIN_A ";" PIN_B);
		CHECK_STR(tn->tn_client_cert, "/etc/xdrproxy/acme.crt");
		CHECK(tn->tn_client_cert_line == 11 &&
		    tn->tn_client_key_line == 12);
		tn = TAILQ_NEXT(tn, tn_entry);
		/* api-b.internal.example is under .internal.example. */
		CHECK(tn->tn_egress_proxy != NULL && !tn->tn_egress_used);
		tn = TAILQ_NEXT(tn, tn_entry);
		CHECK(tn->tn_egress_proxy == NULL && !tn->tn_egress_used);
		tn = TAILQ_NEXT(tn, tn_entry);
		CHECK_STR(tn->tn_egress_proxy, "http://[::1]:8080/");
		CHECK_STR(tn->tn_no_proxy, "other.example");
		CHECK(tn->tn_egress_used);
		config_free(cf);
	}

	/* libcurl's no_proxy rules for names. */
	CHECK(config_noproxy_match("*", "api-a.example"));
	CHECK(config_noproxy_match("a.example", "api-a.example") == 0);
	CHECK(config_noproxy_match("api-a.example", "api-a.example"));
	CHECK(config_noproxy_match("API-A.example.", "api-a.example"));
	CHECK(config_noproxy_match("example", "api-a.example"));
	CHECK(config_noproxy_match(".example", "api-a.example"));
	CHECK(config_noproxy_match("x.test,  .example", "api-a.example"));
	CHECK(config_noproxy_match("x.test example", "api-a.example"));
	CHECK(config_noproxy_match("xample", "api-a.example") == 0);
	CHECK(config_noproxy_match("10.0.0.0/8, 127.0.0.1", "api-a.example")
	    == 0);
	CHECK(config_noproxy_match("*.example", "api-a.example") == 0);
	CHECK(config_noproxy_match("a,*", "api-a.example") == 0);

	bad(6, "egress_proxy: expected http://host:port or none, not "
	    "'proxy:3128'", TENANT "egress_proxy = proxy:3128\n");
	bad(2, "egress_proxy: expected http://host:port or none, not "
	    "'http://proxy'", "[proxy]\negress_proxy = http://proxy\n" TENANT);
	bad(6, "egress_proxy: expected http://host:port",
	    TENANT "egress_proxy = http://proxy:0\n");
	bad(6, "egress_proxy: expected http://host:port",
	    TENANT "egress_proxy = http://proxy:65536\n");
	bad(6, "egress_proxy: expected http://host:port",
	    TENANT "egress_proxy = http://proxy:80/path\n");
	bad(6, "egress_proxy: expected http://host:port",
	    TENANT "egress_proxy = http://[::1:80\n");
	bad(6, "egress_proxy: expected http://host:port",
	    TENANT "egress_proxy = http://pro_xy:80\n");
	bad(6, "egress_proxy: expected http://host:port",
	    TENANT "egress_proxy = socks5://proxy:1080\n");
	bad(6, "egress_proxy: https:// proxies are not supported",
	    TENANT "egress_proxy = https://proxy:443\n");
	bad(6, "egress_proxy: user:password@ in the URL is not supported",
	    TENANT "egress_proxy = http://u:secretpw@proxy:3128\n");
	/* The password is not quoted back. */
	cf = load(TENANT "egress_proxy = http://u:secretpw@proxy:3128\n",
	    &cause);
	CHECK(cf == NULL && cause != NULL && strstr(cause, "secretpw") == NULL);
	free(cause);
	cause = NULL;
	bad(6, "no_proxy: expected host names", TENANT "no_proxy = a;b\n");
	bad(6, "no_proxy: expected host names", TENANT "no_proxy = , ,\n");
	bad(7, "'egress_proxy' already set on line 6", TENANT
	    "egress_proxy = http://p:1\negress_proxy = http://p:2\n");

	bad(6, "pinned_pubkey: expected sha256//BASE64",
	    TENANT "pinned_pubkey = /etc/xdrproxy/pubkey.der\n");
	bad(6, "pinned_pubkey: expected sha256//BASE64",
	    TENANT "pinned_pubkey = sha256//AAAA\n");
	bad(6, "pinned_pubkey: expected sha256//BASE64",
	    TENANT "pinned_pubkey = " PIN_A ";\n");
	bad(6, "pinned_pubkey: expected sha256//BASE64",
	    TENANT "pinned_pubkey = " PIN_A "; " PIN_B "\n");
	/* A last character that leaves bits over is no 32-byte digest. */
	bad(6, "pinned_pubkey: expected sha256//BASE64", TENANT
	    "pinned_pubkey = sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=\n");
	bad(6, "pinned_pubkey: expected sha256//BASE64", TENANT
	    "pinned_pubkey = sha1//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n");

	bad(6, "tls_min_version: expected 1.2 or 1.3, not '1.1'",
	    TENANT "tls_min_version = 1.1\n");
	bad(6, "tls_min_version: expected 1.2 or 1.3, not 'TLSv1.3'",
	    TENANT "tls_min_version = TLSv1.3\n");

	bad(6, "client_cert needs client_key as well",
	    TENANT "client_cert = /etc/xdrproxy/acme.crt\n");
	bad(7, "client_key needs client_cert as well",
	    TENANT "http2 = no\nclient_key = /etc/xdrproxy/acme.pem\n");
	bad(6, "client_key must be an absolute path",
	    TENANT "client_key = acme.pem\n");
	bad(6, "client_cert must be an absolute path",
	    TENANT "client_cert = acme.crt\n");
}

/* admin_listen: repeatable, parsed as listen is, never a proxy address. */
static void
test_admin(void)
{
	struct config		*cf;
	struct listen_addr	*la;
	struct tenant		*tn;
	char			*cause = NULL;

	cf = load(TENANT, &cause);
	CHECK(cf != NULL && TAILQ_EMPTY(&cf->cf_admin_listens));
	if (cf != NULL)
		CHECK(TAILQ_FIRST(&cf->cf_tenants)->tn_metrics_slot == -1);
	config_free(cf);

	cf = load("[proxy]\n"
	    "admin_listen = 127.0.0.1:9901\n"
	    "admin_listen = [::1]:9901\n"
	    "admin_listen = unix:/run/xdrproxy/admin.sock\n"
	    "admin_listen = localhost:0\n" TENANT
	    "listen = 127.0.0.1:0\n", &cause);
	CHECK(cf != NULL);
	if (cf == NULL) {
		fprintf(stderr, "  cause: %s\n", cause);
		free(cause);
		return;
	}
	la = TAILQ_FIRST(&cf->cf_admin_listens);
	CHECK(la != NULL && la->la_ss.ss_family == AF_INET &&
	    la->la_line == 2 && ntohs(((struct sockaddr_in *)&la->la_ss)->sin_port) == 9901);
	la = TAILQ_NEXT(la, la_entry);
	CHECK(la != NULL && la->la_ss.ss_family == AF_INET6 &&
	    la->la_line == 3);
	la = TAILQ_NEXT(la, la_entry);
	CHECK(la != NULL && la->la_unix &&
	    strcmp(la->la_path, "/run/xdrproxy/admin.sock") == 0);
	la = TAILQ_NEXT(la, la_entry);
	CHECK(la != NULL && la->la_ss.ss_family == AF_INET && la->la_line == 5);
	CHECK(la != NULL && TAILQ_NEXT(la, la_entry) == NULL);
	/* The tenant's listeners are its own. */
	tn = TAILQ_FIRST(&cf->cf_tenants);
	la = TAILQ_FIRST(&tn->tn_listens);
	CHECK(la != NULL && TAILQ_NEXT(la, la_entry) != NULL);
	config_free(cf);

	/* Port 0 is never "the same address": each gets a port of its own. */
	cf = load("[proxy]\nadmin_listen = 127.0.0.1:0\n"
	    "admin_listen = 127.0.0.1:0\n" TENANT "listen = 127.0.0.1:0\n",
	    &cause);
	CHECK(cf != NULL);
	config_free(cf);

	bad(2, "admin_listen 127.0.0.1:8080: already used by [tenant acme] on "
	    "line 4", "[proxy]\nadmin_listen = 127.0.0.1:8080\n" TENANT);
	bad(2, "admin_listen localhost:8080: already used by [tenant acme] on "
	    "line 4", "[proxy]\nadmin_listen = localhost:8080\n" TENANT);
	bad(2, "admin_listen unix:/run/a.sock: already used by [tenant acme] "
	    "on line 8", "[proxy]\nadmin_listen = unix:/run/a.sock\n" TENANT
	    "listen = unix:/run/a.sock\n");
	bad(2, "admin_listen [::1]:9902: already used by [tenant b] on line 10",
	    "[proxy]\nadmin_listen = [::1]:9902\n" TENANT
	    "[tenant b]\nlisten = 127.0.0.1:1\nlisten = [::1]:9902\n"
	    "fqdn = b.x\nkey_id = 1\nkey_file = /k\n");
	bad(3, "admin_listen 127.0.0.1:9901: already given on line 2",
	    "[proxy]\nadmin_listen = 127.0.0.1:9901\n"
	    "admin_listen = 127.0.0.1:9901\n" TENANT);
	bad(2, "admin_listen 'nowhere': expected host:port",
	    "[proxy]\nadmin_listen = nowhere\n" TENANT);
	bad(2, "admin_listen 'example.com:9901': expected a numeric address",
	    "[proxy]\nadmin_listen = example.com:9901\n" TENANT);
	bad(2, "admin_listen 'unix:admin.sock': unix socket path must be "
	    "absolute", "[proxy]\nadmin_listen = unix:admin.sock\n" TENANT);
	bad(2, "'admin_listen' needs a value", "[proxy]\nadmin_listen =\n"
	    TENANT);
	bad(6, "unknown key 'admin_listen' in [tenant acme]",
	    TENANT "admin_listen = 127.0.0.1:9901\n");
}

/* Each key source, and what the tenant keeps of it. */
static void
test_key_sources(void)
{
	struct config	*cf;
	struct tenant	*tn;
	char		*cause = NULL;

	cf = load("[proxy]\nkey_store = /etc/xdrproxy/keys.store\n"
	    "key_store_passphrase_credential = pass\nkey_command_timeout = 3s\n"
	    "user = xdrproxy\ngroup = xdrproxy\n"
	    "[tenant a]\nlisten = 127.0.0.1:1\nfqdn = a.x\nkey_name = a\n"
	    "key_expires = 2027-01-31\n"
	    "[tenant b]\nlisten = 127.0.0.1:2\nfqdn = b.x\nkey_id = 7\n"
	    "key_command = /usr/bin/vault kv get -field=key secret/b\n"
	    "[tenant c]\nlisten = 127.0.0.1:3\nfqdn = c.x\nkey_id = 8\n"
	    "key_credential = c.key\n"
	    "[tenant d]\nlisten = 127.0.0.1:4\nfqdn = d.x\nkey_id = 9\n"
	    "key_pkcs11 = pkcs11:token=xdr;object=d\n"
	    "pkcs11_module = /usr/lib/softhsm/libsofthsm2.so\n", &cause);
	CHECK(cf != NULL);
	if (cf == NULL) {
		fprintf(stderr, "  %s\n", cause);
		free(cause);
		return;
	}
	CHECK(cf->cf_key_command_timeout == 3000);
	CHECK_STR(cf->cf_user, "xdrproxy");
	CHECK(cf->cf_passphrase_line == 3);
	tn = TAILQ_FIRST(&cf->cf_tenants);
	CHECK(tn->tn_key_source == KS_STORE);
	CHECK_STR(tn->tn_key_store, "/etc/xdrproxy/keys.store");
	CHECK(tn->tn_key_id == NULL && tn->tn_key_source_line == 10);
	CHECK(tn->tn_key_expires == 1801353600);	/* 2027-01-31 UTC */
	tn = TAILQ_NEXT(tn, tn_entry);
	CHECK(tn->tn_key_source == KS_COMMAND && tn->tn_key_expires == 0);
	tn = TAILQ_NEXT(tn, tn_entry);
	CHECK(tn->tn_key_source == KS_CREDENTIAL);
	tn = TAILQ_NEXT(tn, tn_entry);
	CHECK(tn->tn_key_source == KS_PKCS11);
	config_free(cf);
	CHECK(config_parse_date("2028-02-29") == 1835395200);
	CHECK(config_parse_date("2027-02-29") == -1);
	CHECK(config_parse_date("2027-1-01") == -1);
	CHECK(config_parse_date("2027-01-01x") == -1);
}

int
main(void)
{
	int	 fd;

	if ((fd = mkstemp(path)) == -1)
		return 99;
	close(fd);
	test_good();
	test_errors();
	test_values();
	test_limits();
	test_types();
	test_upstream_options();
	test_admin();
	test_key_sources();
	unlink(path);
	return unit_exit("test_config");
}
