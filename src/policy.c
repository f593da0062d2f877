/*
 * policy.c: who may call what. A tenant's allow/deny rules (CALLER
 * METHODS PATH-GLOB), parsed and resolved when the configuration is
 * loaded, and the request stage that applies them, in order, first match
 * wins, default deny once a tenant has any rule.
 *
 * Paths are matched after filter.c's checks, on the bytes that will be
 * sent, but in one canonical form so that no other spelling of a denied
 * call gets by: percent-encoded unreserved characters decoded, compared
 * without regard to case. Spellings a server could read as another path
 * (";" path parameters, "//" empty segments, encoded "%", "?", "#", ";",
 * NUL, malformed "%") are refused outright where rules apply.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "xdrproxy.h"

enum policy_who {
	PW_ANY,
	PW_USER,	/* pr_id: its uid */
	PW_UID,
	PW_GROUP,	/* pr_id: its gid; pr_uids: members, primary too */
	PW_GID,
	PW_EXE
};

struct policy_rule {
	int		 pr_allow;
	enum policy_who	 pr_who;
	long		 pr_id;
	long		*pr_uids;
	size_t		 pr_nuids;
	char		*pr_exe;
	unsigned int	 pr_methods;	/* EVHTTP_REQ_* bits */
	char		*pr_glob;	/* canonical form */
	char		*pr_where;	/* "FILE:LINE" */
};

/* The methods xdrproxy forwards (TRACE and CONNECT never are). */
static const struct {
	const char	*pm_name;
	unsigned int	 pm_cmd;
} policy_methods[] = {
	{ "GET", EVHTTP_REQ_GET }, { "HEAD", EVHTTP_REQ_HEAD },
	{ "POST", EVHTTP_REQ_POST }, { "PUT", EVHTTP_REQ_PUT },
	{ "DELETE", EVHTTP_REQ_DELETE }, { "PATCH", EVHTTP_REQ_PATCH },
	{ "OPTIONS", EVHTTP_REQ_OPTIONS }
};
#define POLICY_ALL_METHODS	(EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | \
    EVHTTP_REQ_POST | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | \
    EVHTTP_REQ_PATCH | EVHTTP_REQ_OPTIONS)

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))

static void	policy_why(char **, const char *, ...)
		    __attribute__((format(printf, 2, 3)));

static void
policy_why(char **why, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	if (vasprintf(why, fmt, ap) == -1)
		*why = NULL;
	va_end(ap);
}

static int
policy_hex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* RFC 3986 section 2.3. */
static int
policy_unreserved(int c)
{
	return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

/*
 * The canonical form of a path (len bytes) into out (at least len + 1):
 * %XX of an unreserved character decoded, other %XX with upper-case hex.
 * Returns 0, or -1 with *why set for a spelling refused where rules apply.
 * A glob is put in the same form (its '*' passes as it is).
 */
int
policy_canon(const char *s, size_t len, char *out, const char **why)
{
	size_t	 i, o = 0;
	int	 hi, lo, c;

	for (i = 0; i < len; i++) {
		c = (unsigned char)s[i];
		if (c == ';') {
			*why = "path has a ';' (path parameters are refused "
			    "where policy rules apply)";
			return -1;
		}
		if (c == '/' && i + 1 < len && s[i + 1] == '/') {
			*why = "path has an empty segment (//), refused where "
			    "policy rules apply";
			return -1;
		}
		if (c != '%') {
			out[o++] = (char)c;
			continue;
		}
		if (i + 2 >= len) {
			*why = "path has a malformed percent-encoding";
			return -1;
		}
		if ((hi = policy_hex((unsigned char)s[i + 1])) == -1 ||
		    (lo = policy_hex((unsigned char)s[i + 2])) == -1) {
			*why = "path has a malformed percent-encoding";
			return -1;
		}
		c = hi * 16 + lo;
		if (c == '%' || c == '?' || c == '#' || c == ';' || c == '/' ||
		    c == '\\' || c == '\0') {
			*why = "path has an encoded '%', '?', '#', ';', slash "
			    "or NUL, refused where policy rules apply";
			return -1;
		}
		if (policy_unreserved(c))
			out[o++] = (char)c;
		else {
			out[o++] = '%';
			out[o++] = "0123456789ABCDEF"[hi];
			out[o++] = "0123456789ABCDEF"[lo];
		}
		i += 2;
	}
	out[o] = '\0';
	return 0;
}

/*
 * Does the glob match all of s (len bytes)? '*' matches any run of bytes,
 * nothing else is special; letters match regardless of case. Iterative,
 * with one backtrack point: linear in practice, quadratic at worst.
 */
int
policy_glob_match(const char *glob, const char *s, size_t len)
{
	const char	*star = NULL;
	size_t		 i = 0, mark = 0;

	while (i < len) {
		if (*glob == '*') {
			star = ++glob;
			mark = i;
		} else if (*glob != '\0' && tolower((unsigned char)*glob) ==
		    tolower((unsigned char)s[i])) {
			glob++;
			i++;
		} else if (star != NULL) {
			glob = star;
			i = ++mark;
		} else
			return 0;
	}
	while (*glob == '*')
		glob++;
	return *glob == '\0';
}

/* getpwnam_r / getgrnam_r want a buffer; grow it on ERANGE. */
static int
policy_getpw(const char *name, struct passwd *pw, char **buf)
{
	struct passwd	*res = NULL;
	size_t		 size = 1024;
	char		*nbuf;
	int		 rc;

	for (;;) {
		if ((nbuf = realloc(*buf, size)) == NULL)
			return -1;
		*buf = nbuf;
		rc = getpwnam_r(name, pw, *buf, size, &res);
		if (rc != ERANGE || size > (1 << 20))
			break;
		size *= 2;
	}
	return rc == 0 && res != NULL ? 0 : -1;
}

static int
policy_getgr(const char *name, struct group *gr, char **buf)
{
	struct group	*res = NULL;
	size_t		 size = 4096;
	char		*nbuf;
	int		 rc;

	for (;;) {
		if ((nbuf = realloc(*buf, size)) == NULL)
			return -1;
		*buf = nbuf;
		rc = getgrnam_r(name, gr, *buf, size, &res);
		if (rc != ERANGE || size > (1 << 22))
			break;
		size *= 2;
	}
	return rc == 0 && res != NULL ? 0 : -1;
}

static int
policy_uid_add(struct policy_rule *pr, long uid)
{
	long	*v;
	size_t	 i;

	for (i = 0; i < pr->pr_nuids; i++)
		if (pr->pr_uids[i] == uid)
			return 0;
	if ((v = reallocarray(pr->pr_uids, pr->pr_nuids + 1,
	    sizeof(*v))) == NULL)
		return -1;
	pr->pr_uids = v;
	v[pr->pr_nuids++] = uid;
	return 0;
}

/*
 * group:NAME: its gid, the uids of its listed members and of the users
 * whose primary group it is (the passwd database is walked once; load
 * time only, on the main thread).
 */
static int
policy_group(struct policy_rule *pr, const char *name, const char *kw,
    char **why)
{
	struct group	 gr;
	struct passwd	 pw, *pwp;
	char		*buf = NULL, *pbuf = NULL, pwbuf[4096];
	char		**m;
	int		 rc = -1, e;

	if (policy_getgr(name, &gr, &buf) == -1) {
		policy_why(why, "%s: no group '%s' on this system", kw, name);
		goto out;
	}
	pr->pr_id = (long)gr.gr_gid;
	for (m = gr.gr_mem; m != NULL && *m != NULL; m++) {
		if (policy_getpw(*m, &pw, &pbuf) == -1)
			continue;	/* a member without an account */
		if (policy_uid_add(pr, (long)pw.pw_uid) == -1)
			goto nomem;
	}
	setpwent();
	while ((e = getpwent_r(&pw, pwbuf, sizeof(pwbuf), &pwp)) == 0 &&
	    pwp != NULL) {
		if (pw.pw_gid == gr.gr_gid &&
		    policy_uid_add(pr, (long)pw.pw_uid) == -1) {
			endpwent();
			goto nomem;
		}
	}
	endpwent();
	/* A walk cut short would leave members out: a deny they pass. */
	if (e != 0 && e != ENOENT) {
		policy_why(why, "%s: cannot list the users of group '%s': "
		    "passwd: %s", kw, name, strerror(e));
		goto out;
	}
	rc = 0;
	goto out;
nomem:
	policy_why(why, "out of memory");
out:
	free(buf);
	free(pbuf);
	return rc;
}

static int
policy_number(const char *s, long *out)
{
	char	*end;
	long	 n;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	n = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || n > 0x7fffffffL)
		return -1;
	*out = n;
	return 0;
}

static int
policy_parse_who(struct policy_rule *pr, const char *who, const char *kw,
    char **why)
{
	struct passwd	 pw;
	char		*buf = NULL;
	const char	*arg = strchr(who, ':');
	size_t		 klen;

	if (strcmp(who, "any") == 0) {
		pr->pr_who = PW_ANY;
		return 0;
	}
	if (arg == NULL || arg[1] == '\0')
		goto bad;
	klen = (size_t)(arg - who);
	arg++;
	if (klen == 4 && strncmp(who, "user", 4) == 0) {
		pr->pr_who = PW_USER;
		if (policy_getpw(arg, &pw, &buf) == -1) {
			free(buf);
			policy_why(why, "%s: no user '%s' on this system", kw,
			    arg);
			return -1;
		}
		pr->pr_id = (long)pw.pw_uid;
		free(buf);
		return 0;
	}
	if (klen == 5 && strncmp(who, "group", 5) == 0) {
		pr->pr_who = PW_GROUP;
		return policy_group(pr, arg, kw, why);
	}
	if ((klen == 3 && strncmp(who, "uid", 3) == 0) ||
	    (klen == 3 && strncmp(who, "gid", 3) == 0)) {
		pr->pr_who = who[0] == 'u' ? PW_UID : PW_GID;
		if (policy_number(arg, &pr->pr_id) == -1) {
			policy_why(why, "%s: %.3s:%s: expected a number", kw,
			    who, arg);
			return -1;
		}
		return 0;
	}
	if (klen == 3 && strncmp(who, "exe", 3) == 0) {
		pr->pr_who = PW_EXE;
		if (arg[0] != '/') {
			policy_why(why, "%s: exe:%s: the program must be an "
			    "absolute path", kw, arg);
			return -1;
		}
		if ((pr->pr_exe = strdup(arg)) == NULL) {
			policy_why(why, "out of memory");
			return -1;
		}
		return 0;
	}
bad:
	policy_why(why, "%s: unknown caller '%s'; expected user:NAME, uid:N, "
	    "group:NAME, gid:N, exe:/PATH or any", kw, who);
	return -1;
}

static int
policy_parse_methods(struct policy_rule *pr, const char *s, const char *kw,
    char **why)
{
	const char	*p = s;
	size_t		 len, i;

	if (strcmp(s, "*") == 0) {
		pr->pr_methods = POLICY_ALL_METHODS;
		return 0;
	}
	for (;;) {
		len = strcspn(p, ",");
		for (i = 0; i < nitems(policy_methods); i++)
			if (strlen(policy_methods[i].pm_name) == len &&
			    strncasecmp(p, policy_methods[i].pm_name, len) == 0)
				break;
		if (i == nitems(policy_methods)) {
			policy_why(why, "%s: unknown method '%.*s'; expected "
			    "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, a "
			    "comma list of them, or *", kw, (int)len, p);
			return -1;
		}
		pr->pr_methods |= policy_methods[i].pm_cmd;
		if (p[len] == '\0')
			return 0;
		p += len + 1;
	}
}

static int
policy_parse_glob(struct policy_rule *pr, const char *s, const char *kw,
    char **why)
{
	const char	*p, *canon_why;

	if (strcmp(s, "*") != 0 && s[0] != '/') {
		policy_why(why, "%s: path '%s' must start with / (or be *)",
		    kw, s);
		return -1;
	}
	for (p = s; *p != '\0'; p++) {
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f ||
		    *p == '?' || *p == '#' || *p == '\\') {
			policy_why(why, "%s: path '%s': the path of a request "
			    "only (no query, '?', '#', backslash or blank)",
			    kw, s);
			return -1;
		}
	}
	if ((pr->pr_glob = malloc(strlen(s) + 1)) == NULL) {
		policy_why(why, "out of memory");
		return -1;
	}
	if (policy_canon(s, strlen(s), pr->pr_glob, &canon_why) == -1) {
		policy_why(why, "%s: path '%s' can never match: %s", kw, s,
		    canon_why);
		return -1;
	}
	return 0;
}

static void
policy_rule_clear(struct policy_rule *pr)
{
	free(pr->pr_uids);
	free(pr->pr_exe);
	free(pr->pr_glob);
	free(pr->pr_where);
	memset(pr, 0, sizeof(*pr));
}

/*
 * One "allow = ..." or "deny = ..." line (value: CALLER METHODS PATH) of
 * file at line, appended to pl. Returns 0, or -1 with *why set (to be
 * freed; without FILE:LINE, which the caller adds).
 */
int
policy_rule_add(struct policy_rules *pl, int allow, const char *value,
    const char *file, int line, char **why)
{
	struct policy_rule	 pr, *v;
	const char		*kw = allow ? "allow" : "deny";
	char			*copy, *f[4], *last;
	int			 n = 0;

	*why = NULL;
	memset(&pr, 0, sizeof(pr));
	pr.pr_allow = allow;
	if ((copy = strdup(value)) == NULL) {
		policy_why(why, "out of memory");
		return -1;
	}
	for (f[n] = strtok_r(copy, " \t", &last); f[n] != NULL && n < 3;
	    f[n] = strtok_r(NULL, " \t", &last))
		n++;
	if (n != 3 || f[3] != NULL) {
		policy_why(why, "%s: expected CALLER METHODS PATH (e.g. "
		    "'group:soc POST /public_api/v1/incidents/*')", kw);
		goto fail;
	}
	if (policy_parse_who(&pr, f[0], kw, why) == -1 ||
	    policy_parse_methods(&pr, f[1], kw, why) == -1 ||
	    policy_parse_glob(&pr, f[2], kw, why) == -1)
		goto fail;
	if (asprintf(&pr.pr_where, "%s:%d", file, line) == -1) {
		pr.pr_where = NULL;
		policy_why(why, "out of memory");
		goto fail;
	}
	if ((v = reallocarray(pl->pl_v, pl->pl_n + 1, sizeof(*v))) == NULL) {
		policy_why(why, "out of memory");
		goto fail;
	}
	pl->pl_v = v;
	v[pl->pl_n++] = pr;
	free(copy);
	return 0;
fail:
	if (*why == NULL)
		*why = strdup("out of memory");
	policy_rule_clear(&pr);
	free(copy);
	return -1;
}

void
policy_rules_free(struct policy_rules *pl)
{
	size_t	 i;

	for (i = 0; i < pl->pl_n; i++)
		policy_rule_clear(&pl->pl_v[i]);
	free(pl->pl_v);
	pl->pl_v = NULL;
	pl->pl_n = 0;
}

/* Is c the caller rule pr names? An unresolved caller is only "any". */
static int
policy_who_match(const struct policy_rule *pr, const struct caller *c)
{
	size_t	 i;

	if (pr->pr_who == PW_ANY)
		return 1;
	if (c->c_uid < 0)
		return 0;
	switch (pr->pr_who) {
	case PW_USER:
	case PW_UID:
		return c->c_uid == pr->pr_id;
	case PW_GROUP:
		if (c->c_gid >= 0 && c->c_gid == pr->pr_id)
			return 1;
		for (i = 0; i < pr->pr_nuids; i++)
			if (pr->pr_uids[i] == c->c_uid)
				return 1;
		return 0;
	case PW_GID:
		return c->c_gid >= 0 && c->c_gid == pr->pr_id;
	case PW_EXE:
		return c->c_exe[0] != '\0' && strcmp(c->c_exe, pr->pr_exe) == 0;
	case PW_ANY:
		break;
	}
	return 0;
}

/*
 * The verdict of rules pl on caller c calling cmd on path (len bytes,
 * before any '?'). POLICY_ALLOW or POLICY_DENY with *where the deciding
 * rule's "FILE:LINE" (NULL: no rule matched, denied by default), or
 * POLICY_REFUSE with *why: a spelling refused before any rule.
 */
enum policy_verdict
policy_decide(const struct policy_rules *pl, const struct caller *c,
    enum evhttp_cmd_type cmd, const char *path, size_t len,
    const char **where, const char **why)
{
	const struct policy_rule	*pr;
	char				 sbuf[1024], *canon = sbuf;
	enum policy_verdict		 v = POLICY_DENY;
	size_t				 i, clen, alen;

	*where = NULL;
	*why = NULL;
	/* Room for the canonical path, a '/' and its NUL. */
	if (len + 2 > sizeof(sbuf) && (canon = malloc(len + 2)) == NULL) {
		*why = "out of memory to check the path";
		return POLICY_REFUSE;
	}
	if (policy_canon(path, len, canon, why) == -1) {
		v = POLICY_REFUSE;
		goto out;
	}
	/*
	 * A server may route /x/ and /x alike: a rule matches either
	 * spelling, so a deny of /x is not passed by /x/ (nor the reverse).
	 * alen is the other spelling's length: one '/' less, or one more
	 * (written after the NUL's place, matched by length).
	 */
	clen = strlen(canon);
	if (clen > 1 && canon[clen - 1] == '/')
		alen = clen - 1;
	else {
		canon[clen] = '/';
		canon[clen + 1] = '\0';
		alen = clen + 1;
	}
	for (i = 0; i < pl->pl_n; i++) {
		pr = &pl->pl_v[i];
		if (!(pr->pr_methods & (unsigned int)cmd) ||
		    !policy_who_match(pr, c) ||
		    (!policy_glob_match(pr->pr_glob, canon, clen) &&
		    !policy_glob_match(pr->pr_glob, canon, alen)))
			continue;
		*where = pr->pr_where;
		v = pr->pr_allow ? POLICY_ALLOW : POLICY_DENY;
		break;
	}
out:
	if (canon != sbuf)
		free(canon);
	return v;
}

/*
 * The request stage: with rules, decide; req_rule names the rule that
 * did, or "default". Returns 0 to go on, or -1 once the request has been
 * refused (request_fail).
 */
int
policy_check(struct request *req)
{
	static const char *const	 overrides[] = { "X-HTTP-Method-Override",
	    "X-HTTP-Method", "X-Method-Override" };
	const struct policy_rules	*pl = &req->req_tenant->tn_policy;
	const struct evkeyvalq		*in;
	const char			*where, *why;
	enum policy_verdict		 v;
	size_t				 i;

	if (pl->pl_n == 0)
		return 0;
	/* Rules judge the method sent: a server could act on another one. */
	in = evhttp_request_get_input_headers(req->req_http);
	for (i = 0; i < sizeof(overrides) / sizeof(overrides[0]); i++)
		if (evhttp_find_header(in, overrides[i]) != NULL) {
			request_fail(req, 400, "bad_request", "%s is refused for "
			    "a tenant with allow/deny rules", overrides[i]);
			return -1;
		}
	v = policy_decide(pl, req->req_caller,
	    evhttp_request_get_command(req->req_http), req->req_uri,
	    req->req_path_len, &where, &why);
	if (v == POLICY_REFUSE) {
		request_fail(req, 400, "bad_request", "%s", why);
		return -1;
	}
	req->req_rule = where != NULL ? where : "default";
	if (v == POLICY_ALLOW)
		return 0;
	metrics_policy_denied(req);
	if (where != NULL)
		request_fail(req, 403, "policy_denied", "%s denied by rule %s",
		    req->req_method, where);
	else
		request_fail(req, 403, "policy_denied", "no rule allows this "
		    "caller %s on this path (denied by default)",
		    req->req_method);
	return -1;
}
