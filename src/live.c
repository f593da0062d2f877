/*
 * live.c: xdrproxy -t --live. After the static checks, one signed
 * GET /public_api/v1/healthcheck per tenant, with the options and signing
 * of real transfers (upstream_tenant_setopt, sign.c), blocking; one line
 * per tenant on standard error saying what happened in words.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>

#include "xdrproxy.h"

#define LIVE_PATH	"/public_api/v1/healthcheck"
#define LIVE_BODY_MAX	512	/* of the tenant's answer, for messages */

struct live_answer {
	char	 la_date[64];	/* the Date header, "" if none */
	int64_t	 la_wall_ms;	/* when the headers arrived */
	char	 la_body[LIVE_BODY_MAX + 1];
	size_t	 la_len;
};

static size_t
live_header(char *line, size_t size, size_t n, void *arg)
{
	struct live_answer	*la = arg;
	struct timespec		 ts;
	size_t			 len = size * n, vlen;
	const char		*v;

	if (len >= 5 && strncasecmp(line, "HTTP/", 5) == 0)
		la->la_date[0] = '\0';	/* a new block (after a 1xx) */
	if (len > 5 && strncasecmp(line, "Date:", 5) == 0) {
		v = line + 5;
		vlen = len - 5;
		while (vlen > 0 && (*v == ' ' || *v == '\t')) {
			v++;
			vlen--;
		}
		while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n'))
			vlen--;
		if (vlen >= sizeof(la->la_date))
			vlen = sizeof(la->la_date) - 1;
		memcpy(la->la_date, v, vlen);
		la->la_date[vlen] = '\0';
		clock_gettime(CLOCK_REALTIME, &ts);
		la->la_wall_ms = (int64_t)ts.tv_sec * 1000 +
		    ts.tv_nsec / 1000000;
	}
	return len;
}

static size_t
live_body(char *data, size_t size, size_t n, void *arg)
{
	struct live_answer	*la = arg;
	size_t			 len = size * n, room;

	room = LIVE_BODY_MAX - la->la_len;
	if (len < room)
		room = len;
	memcpy(la->la_body + la->la_len, data, room);
	la->la_len += room;
	la->la_body[la->la_len] = '\0';
	return len;
}

/* The signed headers for one request; NULL if out of memory. */
static struct curl_slist *
live_headers(struct signer *sg, const struct tenant *tn)
{
	struct curl_slist	*sl = NULL;
	struct sign_headers	 sh;
	struct timespec		 ts;
	char			 buf[64 + SIGN_HASH_HEX_LEN];
	char			*auth = NULL;
	int			 ok = 0;

	clock_gettime(CLOCK_REALTIME, &ts);
	memset(&sh, 0, sizeof(sh));
	if ((sl = curl_slist_append(NULL, "Accept: application/json")) == NULL)
		return NULL;
	snprintf(buf, sizeof(buf), "x-xdr-auth-id: %s", tn->tn_key_id);
	if (curl_slist_append(sl, buf) == NULL)
		goto done;
	if (tn->tn_key_type == KEY_STANDARD) {
		if (asprintf(&auth, "Authorization: %s", tn->tn_key->k_data) ==
		    -1) {
			auth = NULL;
			goto done;
		}
	} else {
		if (sign_advanced(sg, tn->tn_key, (uint64_t)ts.tv_sec * 1000 +
		    (uint64_t)ts.tv_nsec / 1000000, &sh) == -1)
			goto done;
		snprintf(buf, sizeof(buf), "x-xdr-nonce: %s", sh.sh_nonce);
		if (curl_slist_append(sl, buf) == NULL)
			goto done;
		snprintf(buf, sizeof(buf), "x-xdr-timestamp: %s",
		    sh.sh_timestamp);
		if (curl_slist_append(sl, buf) == NULL)
			goto done;
		if (asprintf(&auth, "Authorization: %s", sh.sh_hash) == -1) {
			auth = NULL;
			goto done;
		}
	}
	if (curl_slist_append(sl, auth) == NULL)
		goto done;
	ok = 1;
done:
	OPENSSL_cleanse(&sh, sizeof(sh));
	OPENSSL_cleanse(buf, sizeof(buf));
	if (auth != NULL) {
		OPENSSL_cleanse(auth, strlen(auth));
		free(auth);
	}
	if (!ok) {
		curl_slist_free_all(sl);
		return NULL;
	}
	return sl;
}

/* Wipe the Authorization value (a key, or a hash of one), then free. */
static void
live_headers_free(struct curl_slist *list)
{
	struct curl_slist	*sl;

	for (sl = list; sl != NULL; sl = sl->next)
		if (strncasecmp(sl->data, "Authorization", 13) == 0)
			OPENSSL_cleanse(sl->data, strlen(sl->data));
	curl_slist_free_all(list);
}

/* In words, what an upstream_* error code means. */
static const char *
live_words(const char *code)
{
	if (strcmp(code, "upstream_unreachable") == 0)
		return "unreachable";
	if (strcmp(code, "upstream_proxy_unreachable") == 0)
		return "the egress proxy is unreachable";
	if (strcmp(code, "upstream_proxy_refused") == 0)
		return "refused by the egress proxy";
	if (strcmp(code, "upstream_tls") == 0)
		return "TLS (certificate, name, pin or handshake)";
	if (strcmp(code, "upstream_timeout") == 0)
		return "timed out";
	return "failed";
}

/* The tenant's answer other than 200, in words; ok is 0 after. */
static void
live_status(const struct tenant *tn, long status, int skew_known,
    int64_t skew, const struct live_answer *la)
{
	char	 s[32], body[LIVE_BODY_MAX * 4 + 1];
	int	 off = skew_known && (skew > CLOCK_SKEW_WARN_MS ||
		    skew < -CLOCK_SKEW_WARN_MS);

	clock_format(s, sizeof(s), skew);
	if (status == 401) {
		if (off)
			fprintf(stderr, "tenant %s: FAILED: HTTP 401: the "
			    "clock is off by %s (the tenant refuses requests "
			    "about 5 minutes off), or the key or key ID is "
			    "wrong\n", tn->tn_name, s);
		else if (skew_known)
			fprintf(stderr, "tenant %s: FAILED: HTTP 401: the key "
			    "or key ID is wrong (the clocks agree: skew %s)\n",
			    tn->tn_name, s);
		else
			fprintf(stderr, "tenant %s: FAILED: HTTP 401: the key "
			    "or key ID is wrong, or the clock is off (the "
			    "tenant sent no Date)\n", tn->tn_name);
		return;
	}
	if (status == 403) {
		fprintf(stderr, "tenant %s: FAILED: HTTP 403: the key's role "
		    "does not allow this call\n", tn->tn_name);
		return;
	}
	log_escape(body, sizeof(body), la->la_body, la->la_len);
	fprintf(stderr, "tenant %s: FAILED: HTTP %ld%s%s\n", tn->tn_name,
	    status, body[0] != '\0' ? ": " : "", body);
}

/* One tenant's check; 0 if it passed. */
static int
live_tenant(struct config *cf, struct tenant *tn, struct signer *sg)
{
	struct live_answer	 la;
	struct upstream_failure	 uf;
	struct curl_slist	*hdrs = NULL;
	CURL			*easy;
	CURLcode		 rc;
	const char		*what;
	char			 errbuf[CURL_ERROR_SIZE], url[512], s[32];
	char			 msg[sizeof(uf.uf_message) * 4];
	long			 status = 0;
	int64_t			 date_s, skew = 0;
	int			 skew_known = 0, ret = -1;

	memset(&la, 0, sizeof(la));
	errbuf[0] = '\0';
	if ((easy = curl_easy_init()) == NULL) {
		fprintf(stderr, "tenant %s: FAILED: libcurl: out of memory\n",
		    tn->tn_name);
		return -1;
	}
	if ((rc = upstream_tenant_setopt(easy, tn, cf, &what)) != CURLE_OK) {
		fprintf(stderr, "tenant %s: FAILED: libcurl refuses %s: %s\n",
		    tn->tn_name, what, curl_easy_strerror(rc));
		goto done;
	}
	if ((hdrs = live_headers(sg, tn)) == NULL) {
		fprintf(stderr, "tenant %s: FAILED: cannot sign: out of "
		    "memory\n", tn->tn_name);
		goto done;
	}
	snprintf(url, sizeof(url), "%s%s", tn->tn_base_url, LIVE_PATH);
	curl_easy_setopt(easy, CURLOPT_URL, url);
	curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, live_header);
	curl_easy_setopt(easy, CURLOPT_HEADERDATA, &la);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, live_body);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, &la);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS,
	    (long)cf->cf_connect_timeout + (long)cf->cf_upstream_timeout);
	rc = curl_easy_perform(easy);
	if (rc != CURLE_OK) {
		upstream_classify(easy, tn, rc, errbuf, &uf);
		log_escape(msg, sizeof(msg), uf.uf_message,
		    strlen(uf.uf_message));
		fprintf(stderr, "tenant %s: FAILED: %s: %s\n", tn->tn_name,
		    live_words(uf.uf_code), msg);
		goto done;
	}
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	if (la.la_date[0] != '\0' && clock_parse_date(la.la_date,
	    &date_s) == 0) {
		skew = clock_skew_ms(date_s, la.la_wall_ms);
		skew_known = 1;
	}
	if (status != 200) {
		live_status(tn, status, skew_known, skew, &la);
		goto done;
	}
	clock_format(s, sizeof(s), skew);
	if (!skew_known)
		fprintf(stderr, "tenant %s: OK (HTTP 200, skew unknown: no "
		    "Date header)\n", tn->tn_name);
	else if (skew > CLOCK_SKEW_WARN_MS || skew < -CLOCK_SKEW_WARN_MS)
		fprintf(stderr, "tenant %s: OK (HTTP 200, skew %s: more than "
		    "60 s; the tenant rejects requests about 5 minutes off)\n",
		    tn->tn_name, s);
	else
		fprintf(stderr, "tenant %s: OK (HTTP 200, skew %s)\n",
		    tn->tn_name, s);
	ret = 0;
done:
	curl_easy_cleanup(easy);
	live_headers_free(hdrs);
	return ret;
}

/* Check every tenant; returns how many failed (-1: could not start). */
int
live_check(struct config *cf)
{
	struct signer	 sg;
	struct tenant	*tn;
	int		 failed = 0;

	if (sign_init(&sg) == -1) {
		fprintf(stderr, "cannot set up signing (OpenSSL)\n");
		return -1;
	}
	TAILQ_FOREACH(tn, &cf->cf_tenants, tn_entry)
		if (live_tenant(cf, tn, &sg) == -1)
			failed++;
	sign_free(&sg);
	return failed;
}
