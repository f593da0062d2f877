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
	    "  listen     = unix:/run/xdrproxy/acme.sock\n"
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
	    "allow_path = /public_api/v1/incidents/\n", &cause);
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
	tn = TAILQ_NEXT(tn, tn_entry);
	CHECK_STR(tn->tn_name, "b");
	CHECK(tn->tn_key_type == KEY_ADVANCED);
	CHECK(tn->tn_http2 == 0);
	CHECK_STR(tn->tn_allow_paths.sl_v[0], "/public_api/v1/incidents/");
	CHECK(tn->tn_curl_connect_to == NULL);
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
	bad(6, "unknown key 'fqnd' in [tenant acme]", TENANT "fqnd = x\n");
	bad(2, "unknown key 'max_bdy' in [proxy]",
	    "[proxy]\nmax_bdy = 1m\n" TENANT);
	bad(1, "[tenant acme] needs 'fqdn'",
	    "[tenant acme]\nlisten = 127.0.0.1:1\nkey_id = 1\nkey_file = /k\n");
	bad(1, "[tenant acme] needs 'listen'", "[tenant acme]\n");
	bad(7, "[tenant b] needs 'key_file'", TENANT
	    "\n[tenant b]\nlisten = 127.0.0.1:1\nfqdn = b.x\nkey_id = 1\n");
	bad(7, "listen 127.0.0.1:8080: already used by [tenant acme] on line 2",
	    TENANT "[tenant b]\nlisten = 127.0.0.1:8080\nfqdn = b.x\n"
	    "key_id = 1\nkey_file = /k\n");
	bad(6, "already used by [tenant acme] on line 2",
	    TENANT "listen = 127.0.0.1:8080\n");
	bad(2, "listen 'nowhere'", "[tenant a]\nlisten = nowhere\n");
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
	unlink(path);
	return unit_exit("test_config");
}
