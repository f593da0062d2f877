/*
 * test_policy.c: the policy glob matcher, the canonical path form, the
 * allow/deny rule parser and the first-match-wins verdict.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

#include "xdrproxy.h"
#include "unit.h"

static int
glob(const char *g, const char *s)
{
	return policy_glob_match(g, s, strlen(s));
}

static void
test_glob(void)
{
	CHECK(glob("*", ""));
	CHECK(glob("*", "/anything"));
	CHECK(glob("/a/b", "/a/b"));
	CHECK(!glob("/a/b", "/a/bc"));
	CHECK(!glob("/a/b", "/a/"));
	CHECK(glob("/a/*", "/a/"));
	CHECK(glob("/a/*", "/a/b/c"));
	CHECK(!glob("/a/*", "/a"));
	CHECK(glob("/e/isolate*", "/e/isolate"));
	CHECK(glob("/e/isolate*", "/e/isolate/x"));
	CHECK(glob("/e/isolate*", "/E/ISOLATE"));
	CHECK(glob("/*/isolate", "/x/y/isolate"));
	CHECK(!glob("/*/isolate", "/x/y/isolatex"));
	CHECK(glob("*a*b*c", "xxaxxbxxbcxc"));
	CHECK(!glob("*a*b*c", "xxaxxcxxb"));
	CHECK(glob("/a**b", "/ab"));
	/* Nothing but '*' is special. */
	CHECK(!glob("/a?", "/ab"));
	CHECK(glob("/a?", "/a?"));
	CHECK(!glob("/[a]", "/a"));
	/* Only len bytes count. */
	CHECK(policy_glob_match("/ab", "/abc", 3));
}

static const char *
canon(const char *s)
{
	static char	 out[256];
	const char	*why = NULL;

	if (policy_canon(s, strlen(s), out, &why) == -1) {
		CHECK(why != NULL);
		return NULL;
	}
	return out;
}

static void
test_canon(void)
{
	CHECK_STR(canon("/public_api/v1/x"), "/public_api/v1/x");
	CHECK_STR(canon("/%69solate"), "/isolate");
	CHECK_STR(canon("/%2e%7E%5f%2D"), "/.~_-");
	CHECK_STR(canon("/a%20b%2cc"), "/a%20b%2Cc");
	CHECK(canon("/a;b") == NULL);
	CHECK(canon("/a/b;") == NULL);
	CHECK(canon("/a//b") == NULL);
	CHECK(canon("//a") == NULL);
	CHECK(canon("/a%3fb") == NULL);
	CHECK(canon("/a%3Bb") == NULL);
	CHECK(canon("/a%23") == NULL);
	CHECK(canon("/a%2fb") == NULL);
	CHECK(canon("/a%00") == NULL);
	CHECK(canon("/a%2569") == NULL);
	CHECK(canon("/a%") == NULL);
	CHECK(canon("/a%6") == NULL);
	CHECK(canon("/a%zz") == NULL);
}

/* Parse one rule into pl; returns the message on error (static), or NULL. */
static const char *
add(struct policy_rules *pl, int allow, const char *value, int line)
{
	static char	 msg[512];
	char		*why = NULL;

	if (policy_rule_add(pl, allow, value, "t.conf", line, &why) == 0) {
		CHECK(why == NULL);
		return NULL;
	}
	CHECK(why != NULL);
	snprintf(msg, sizeof(msg), "%s", why != NULL ? why : "");
	free(why);
	return msg;
}

static void
test_parse(void)
{
	struct policy_rules	 pl = { NULL, 0 };
	const char		*m;

	CHECK(add(&pl, 1, "any * *", 1) == NULL);
	CHECK(add(&pl, 1, "uid:0  GET,post\t/x/*", 2) == NULL);
	CHECK(add(&pl, 0, "gid:5 DELETE /x", 3) == NULL);
	CHECK(add(&pl, 1, "user:root GET /", 4) == NULL);
	CHECK(add(&pl, 1, "group:root GET /", 5) == NULL);
	CHECK(add(&pl, 1, "exe:/usr/bin/curl GET /", 6) == NULL);
	CHECK(pl.pl_n == 6);
	m = add(&pl, 1, "any *", 7);
	CHECK(m != NULL && strstr(m, "expected CALLER METHODS PATH") != NULL);
	m = add(&pl, 1, "any * /x extra", 7);
	CHECK(m != NULL && strstr(m, "expected CALLER METHODS PATH") != NULL);
	m = add(&pl, 0, "bob * /x", 7);
	CHECK(m != NULL && strstr(m, "deny: unknown caller 'bob'") != NULL);
	m = add(&pl, 1, "user: * /x", 7);
	CHECK(m != NULL && strstr(m, "unknown caller") != NULL);
	m = add(&pl, 1, "user:no-such-user-xdr * /x", 7);
	CHECK(m != NULL && strstr(m, "no user 'no-such-user-xdr'") != NULL);
	m = add(&pl, 1, "group:no-such-group-xdr * /x", 7);
	CHECK(m != NULL && strstr(m, "no group 'no-such-group-xdr'") != NULL);
	m = add(&pl, 1, "uid:x * /x", 7);
	CHECK(m != NULL && strstr(m, "expected a number") != NULL);
	m = add(&pl, 1, "uid:-1 * /x", 7);
	CHECK(m != NULL && strstr(m, "expected a number") != NULL);
	m = add(&pl, 1, "exe:curl * /x", 7);
	CHECK(m != NULL && strstr(m, "absolute path") != NULL);
	m = add(&pl, 1, "any TRACE /x", 7);
	CHECK(m != NULL && strstr(m, "unknown method 'TRACE'") != NULL);
	m = add(&pl, 1, "any GET,,POST /x", 7);
	CHECK(m != NULL && strstr(m, "unknown method ''") != NULL);
	m = add(&pl, 1, "any GET x/*", 7);
	CHECK(m != NULL && strstr(m, "must start with /") != NULL);
	m = add(&pl, 1, "any GET /x?y", 7);
	CHECK(m != NULL && strstr(m, "no query") != NULL);
	m = add(&pl, 1, "any GET /x;y", 7);
	CHECK(m != NULL && strstr(m, "can never match") != NULL);
	CHECK(pl.pl_n == 6);
	policy_rules_free(&pl);
	CHECK(pl.pl_n == 0 && pl.pl_v == NULL);
}

static struct caller
who(long uid, long gid, const char *exe)
{
	struct caller	 c;

	caller_unknown(&c, "");
	c.c_uid = uid;
	c.c_gid = gid;
	snprintf(c.c_exe, sizeof(c.c_exe), "%s", exe);
	return c;
}

static enum policy_verdict
decide(const struct policy_rules *pl, struct caller c,
    enum evhttp_cmd_type cmd, const char *path, const char **where)
{
	const char	*why;

	return policy_decide(pl, &c, cmd, path, strlen(path), where, &why);
}

static void
test_decide(void)
{
	struct policy_rules	 pl = { NULL, 0 };
	const char		*w;

	CHECK(add(&pl, 1, "uid:1000 POST /public_api/v1/incidents/*", 1) ==
	    NULL);
	CHECK(add(&pl, 1, "exe:/usr/bin/curl GET,HEAD /public_api/v1/xql/*",
	    2) == NULL);
	CHECK(add(&pl, 0, "any * /public_api/v1/endpoints/isolate*", 3) ==
	    NULL);
	CHECK(add(&pl, 1, "gid:50 * *", 4) == NULL);
	CHECK(add(&pl, 1, "any GET /public_api/v1/healthcheck", 5) == NULL);

	CHECK(decide(&pl, who(1000, 1000, ""), EVHTTP_REQ_POST,
	    "/public_api/v1/incidents/get_incidents", &w) == POLICY_ALLOW);
	CHECK_STR(w, "t.conf:1");
	/* Method not listed: on to the next rules, default deny. */
	CHECK(decide(&pl, who(1000, 1000, ""), EVHTTP_REQ_GET,
	    "/public_api/v1/incidents/get_incidents", &w) == POLICY_DENY);
	CHECK(w == NULL);
	CHECK(decide(&pl, who(7, 7, "/usr/bin/curl"), EVHTTP_REQ_HEAD,
	    "/public_api/v1/xql/x", &w) == POLICY_ALLOW);
	CHECK_STR(w, "t.conf:2");
	CHECK(decide(&pl, who(7, 7, "/usr/bin/python3"), EVHTTP_REQ_GET,
	    "/public_api/v1/xql/x", &w) == POLICY_DENY);
	CHECK(w == NULL);
	/* First match wins: the deny comes before gid:50's allow. */
	CHECK(decide(&pl, who(7, 50, ""), EVHTTP_REQ_POST,
	    "/public_api/v1/endpoints/isolate", &w) == POLICY_DENY);
	CHECK_STR(w, "t.conf:3");
	CHECK(decide(&pl, who(7, 50, ""), EVHTTP_REQ_POST,
	    "/public_api/v1/endpoints/get_endpoints", &w) == POLICY_ALLOW);
	CHECK_STR(w, "t.conf:4");
	/* Other spellings of a denied path: denied, or refused. */
	CHECK(decide(&pl, who(7, 50, ""), EVHTTP_REQ_POST,
	    "/PUBLIC_API/v1/Endpoints/ISOLATE", &w) == POLICY_DENY);
	CHECK_STR(w, "t.conf:3");
	CHECK(decide(&pl, who(7, 50, ""), EVHTTP_REQ_POST,
	    "/public_api/v1/endpoints/%69solate", &w) == POLICY_DENY);
	CHECK_STR(w, "t.conf:3");
	CHECK(decide(&pl, who(7, 50, ""), EVHTTP_REQ_POST,
	    "/public_api/v1/endpoints;x/isolate", &w) == POLICY_REFUSE);
	CHECK(decide(&pl, who(7, 50, ""), EVHTTP_REQ_POST,
	    "/public_api/v1//endpoints/isolate", &w) == POLICY_REFUSE);
	/* An unknown caller matches "any" only. */
	CHECK(decide(&pl, who(-1, 50, "/usr/bin/curl"), EVHTTP_REQ_GET,
	    "/public_api/v1/xql/x", &w) == POLICY_DENY);
	CHECK(w == NULL);
	CHECK(decide(&pl, who(-1, -1, ""), EVHTTP_REQ_GET,
	    "/public_api/v1/healthcheck", &w) == POLICY_ALLOW);
	CHECK_STR(w, "t.conf:5");
	/* An unknown gid is not gid 50; an unknown exe is no exe. */
	CHECK(decide(&pl, who(7, -1, ""), EVHTTP_REQ_GET, "/x", &w) ==
	    POLICY_DENY);
	policy_rules_free(&pl);

	/* /x and /x/ are one call to a rule, whichever it names. */
	CHECK(add(&pl, 0, "any POST /public_api/v1/endpoints/delete", 1) ==
	    NULL);
	CHECK(add(&pl, 0, "any POST /public_api/v1/alerts/", 2) == NULL);
	CHECK(add(&pl, 1, "any * /public_api/v1/*", 3) == NULL);
	CHECK(decide(&pl, who(7, 7, ""), EVHTTP_REQ_POST,
	    "/public_api/v1/endpoints/delete/", &w) == POLICY_DENY);
	CHECK_STR(w, "t.conf:1");
	CHECK(decide(&pl, who(7, 7, ""), EVHTTP_REQ_POST,
	    "/public_api/v1/endpoints/delete", &w) == POLICY_DENY);
	CHECK_STR(w, "t.conf:1");
	CHECK(decide(&pl, who(7, 7, ""), EVHTTP_REQ_POST,
	    "/public_api/v1/alerts", &w) == POLICY_DENY);
	CHECK_STR(w, "t.conf:2");
	CHECK(decide(&pl, who(7, 7, ""), EVHTTP_REQ_POST,
	    "/public_api/v1/endpoints/delete_x/", &w) == POLICY_ALLOW);
	CHECK_STR(w, "t.conf:3");
	/* A path long enough for the allocated buffer. */
	{
		char	 longp[1100];

		memset(longp, 'a', sizeof(longp) - 1);
		longp[sizeof(longp) - 1] = '\0';
		memcpy(longp, "/public_api/v1/", 15);
		CHECK(decide(&pl, who(7, 7, ""), EVHTTP_REQ_POST, longp, &w) ==
		    POLICY_ALLOW);
		CHECK_STR(w, "t.conf:3");
	}
	policy_rules_free(&pl);
}

int
main(void)
{
	test_glob();
	test_canon();
	test_parse();
	test_decide();
	return unit_exit("test_policy");
}
