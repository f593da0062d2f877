/*
 * fuzz_policy.c: libFuzzer target for policy.c's path matching: the
 * input is GLOB '\n' PATH. policy_glob_match() is checked against a
 * plain recursive matcher, policy_canon() for memory safety, length and
 * idempotence, and policy_rule_add() parses the first line as a rule.
 */
#include "config.h"

#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xdrproxy.h"

int	 LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define FUZZ_CHECK(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "fuzz_policy: %s:%d: %s\n", __FILE__,	\
		    __LINE__, #cond);					\
		abort();						\
	}								\
} while (0)

/* The reference: '*' any run, other bytes equal regardless of case. */
static int
naive(const char *g, const char *s, size_t len)
{
	size_t	 i;

	if (*g == '\0')
		return len == 0;
	if (*g == '*') {
		while (g[1] == '*')
			g++;	/* "**" is "*" */
		for (i = 0; i <= len; i++)
			if (naive(g + 1, s + i, len - i))
				return 1;
		return 0;
	}
	return len > 0 && tolower((unsigned char)*g) ==
	    tolower((unsigned char)*s) && naive(g + 1, s + 1, len - 1);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct policy_rules	 pl = { NULL, 0 };
	const char		*nl, *why;
	char			*glob, *path, *c1, *c2, *cause = NULL;
	size_t			 glen, plen, stars = 0, i;

	if (size > 160)
		return 0;	/* the reference is exponential in stars */
	nl = memchr(data, '\n', size);
	glen = nl != NULL ? (size_t)(nl - (const char *)data) : size;
	plen = nl != NULL ? size - glen - 1 : 0;
	if ((glob = strndup((const char *)data, glen)) == NULL)
		return 0;
	path = malloc(plen + 1);
	c1 = malloc(plen + 1);
	c2 = malloc(plen + 1);
	if (path == NULL || c1 == NULL || c2 == NULL)
		goto out;
	if (plen > 0)
		memcpy(path, nl + 1, plen);
	path[plen] = '\0';
	for (i = 0; glob[i] != '\0'; i++)
		stars += glob[i] == '*';
	if (strlen(glob) == glen && stars <= 4)
		FUZZ_CHECK(policy_glob_match(glob, path, plen) ==
		    naive(glob, path, plen));
	if (policy_canon(path, plen, c1, &why) == 0) {
		FUZZ_CHECK(strlen(c1) <= plen);
		FUZZ_CHECK(strchr(c1, ';') == NULL && strstr(c1, "//") == NULL);
		FUZZ_CHECK(policy_canon(c1, strlen(c1), c2, &why) == 0);
		FUZZ_CHECK(strcmp(c1, c2) == 0);
	} else
		FUZZ_CHECK(why != NULL);
	if (strlen(glob) == glen) {
		if (policy_rule_add(&pl, 0, glob, "f", 1, &cause) == 0)
			FUZZ_CHECK(pl.pl_n == 1 && cause == NULL);
		else
			FUZZ_CHECK(cause != NULL);
	}
out:
	free(cause);
	policy_rules_free(&pl);
	free(glob);
	free(path);
	free(c1);
	free(c2);
	return 0;
}
