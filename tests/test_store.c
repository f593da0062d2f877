/*
 * test_store.c: the key store round-trips; a wrong passphrase and every
 * single-byte change of a small store are refused with "wrong passphrase
 * or damaged store"; cost parameters beyond the bounds are refused before
 * deriving (fast); the entry list is checked strictly.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "xdrproxy.h"
#include "unit.h"

#define SECRET	"S3cr3tK3yValue0123456789abcdef"

static struct key *
pw(const char *s)
{
	return keystore_new(s, strlen(s));
}

static double
now(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int
main(void)
{
	struct store		*st, *back;
	struct store_entry	*se;
	struct key		*pass = pw("correct horse battery"), *bad = pw("x");
	unsigned char		*buf, *copy;
	size_t			 len, i;
	char			*cause;
	double			 t0;
	int			 rejected = 0, garbage = 0;

	st = store_new();
	CHECK(st != NULL);
	/* Cheap cost for the byte-flip loop. */
	st->st_log2n = 10;
	st->st_r = 1;
	CHECK(store_put(st, "acme", "42", KEY_ADVANCED, "2030-01-31", SECRET,
	    strlen(SECRET), 0, &cause) == 0);
	CHECK(store_put(st, "beta", "7", KEY_STANDARD, NULL, "k2", 2, 0,
	    &cause) == 0);
	CHECK(store_put(st, "acme", "43", KEY_ADVANCED, NULL, "k3", 2, 0,
	    &cause) == -1);
	CHECK(cause != NULL && strstr(cause, "--force") != NULL);
	free(cause);
	CHECK(store_put(st, "bad name", "1", KEY_ADVANCED, NULL, "k", 1, 0,
	    &cause) == -1);
	free(cause);
	CHECK(store_put(st, "n", "12a", KEY_ADVANCED, NULL, "k", 1, 0,
	    &cause) == -1);
	free(cause);
	CHECK(store_put(st, "n", "1", KEY_ADVANCED, "2030-02-30", "k", 1, 0,
	    &cause) == -1);
	free(cause);
	CHECK(store_put(st, "n", "1", KEY_ADVANCED, NULL, "a b", 3, 0,
	    &cause) == -1);
	free(cause);

	/* Round trip. */
	CHECK(store_seal(st, pass, &buf, &len, &cause) == 0);
	CHECK(memmem(buf, len, SECRET, strlen(SECRET)) == NULL);
	CHECK(memmem(buf, len, "acme", 4) == NULL);
	CHECK(store_unseal(buf, len, pass, &back, &cause) == 0);
	CHECK(back != NULL && back->st_n == 2);
	if (back != NULL && (se = store_find(back, "acme")) != NULL) {
		CHECK_STR(se->se_key_id, "42");
		CHECK(se->se_type == KEY_ADVANCED);
		CHECK_STR(se->se_expires, "2030-01-31");
		CHECK(se->se_key->k_len == strlen(SECRET) &&
		    memcmp(se->se_key->k_data, SECRET, strlen(SECRET)) == 0);
	} else
		CHECK(!"acme missing");
	if (back != NULL && (se = store_find(back, "beta")) != NULL) {
		CHECK(se->se_type == KEY_STANDARD);
		CHECK_STR(se->se_expires, "");
	} else
		CHECK(!"beta missing");
	CHECK(back != NULL && store_remove(back, "acme") == 0 &&
	    store_find(back, "acme") == NULL && back->st_n == 1);
	CHECK(back != NULL && store_remove(back, "acme") == -1);
	store_free(back);

	/* A wrong passphrase. */
	CHECK(store_unseal(buf, len, bad, &back, &cause) == -1);
	CHECK_STR(cause, "wrong passphrase or damaged store");
	free(cause);

	/* Every single-byte change, and every truncation, is refused. */
	copy = malloc(len);
	for (i = 0; i < len; i++) {
		memcpy(copy, buf, len);
		copy[i] ^= 0x01;
		if (store_unseal(copy, len, pass, &back, &cause) == -1) {
			rejected++;
			if (cause == NULL || strstr(cause,
			    "wrong passphrase or damaged store") == NULL)
				garbage++;
			free(cause);
		} else
			store_free(back);
		if (store_unseal(buf, i, pass, &back, &cause) == 0) {
			garbage++;
			store_free(back);
		} else
			free(cause);
	}
	CHECK((size_t)rejected == len);
	CHECK(garbage == 0);
	free(copy);

	/* Cost bounds: refused before deriving, so fast. */
	{
		static const struct { int off; unsigned char v; } cost[] = {
			{ 7, 21 }, { 7, 40 }, { 7, 9 },	/* log2 N */
			{ 11, 17 }, { 11, 0 },		/* r */
			{ 15, 5 }, { 15, 0 },		/* p */
			{ 8, 1 },			/* r huge */
		};
		copy = malloc(len);
		for (i = 0; i < sizeof(cost) / sizeof(cost[0]); i++) {
			memcpy(copy, buf, len);
			copy[cost[i].off] = cost[i].v;
			t0 = now();
			CHECK(store_unseal(copy, len, pass, &back,
			    &cause) == -1);
			CHECK(now() - t0 < 0.5);
			CHECK(cause != NULL && strstr(cause, "beyond the "
			    "bounds") != NULL);
			free(cause);
		}
		/* N = 2^20 with r = 16 is 2 GiB: refused. */
		memcpy(copy, buf, len);
		copy[7] = 20;
		copy[11] = 16;
		CHECK(store_unseal(copy, len, pass, &back, &cause) == -1);
		CHECK(cause != NULL && strstr(cause, "beyond") != NULL);
		free(cause);
		free(copy);
	}
	st->st_log2n = 21;
	CHECK(store_seal(st, pass, &copy, &len, &cause) == -1);
	free(cause);
	free(buf);

	/* Not a store at all. */
	CHECK(store_unseal((const unsigned char *)"hello", 5, pass, &back,
	    &cause) == -1);
	CHECK(cause != NULL && strstr(cause, "damaged store") != NULL);
	free(cause);

	/* An empty store round-trips too. */
	store_free(st);
	st = store_new();
	st->st_log2n = 10;
	CHECK(store_seal(st, pass, &buf, &len, &cause) == 0);
	CHECK(store_unseal(buf, len, pass, &back, &cause) == 0);
	CHECK(back != NULL && back->st_n == 0);
	store_free(back);
	free(buf);
	store_free(st);

	/* The plaintext entry list is parsed strictly. */
	{
		/* count 1: "a", "1", type 0, "", "k" */
		static const unsigned char good[] = { 0, 0, 0, 1, 0, 1, 'a',
		    0, 1, '1', 0, 0, 0, 0, 1, 'k' };
		unsigned char	t[sizeof(good) + 1];

		CHECK((back = store_parse(good, sizeof(good))) != NULL);
		store_free(back);
		memcpy(t, good, sizeof(good));
		t[sizeof(good)] = 0;
		CHECK(store_parse(t, sizeof(good) + 1) == NULL); /* trailing */
		CHECK(store_parse(good, sizeof(good) - 1) == NULL); /* short */
		memcpy(t, good, sizeof(good));
		t[3] = 2;		/* count says 2 */
		CHECK(store_parse(t, sizeof(good)) == NULL);
		memcpy(t, good, sizeof(good));
		t[10] = 2;		/* type 2 */
		CHECK(store_parse(t, sizeof(good)) == NULL);
		memcpy(t, good, sizeof(good));
		t[9] = 'x';		/* key ID not digits */
		CHECK(store_parse(t, sizeof(good)) == NULL);
		memcpy(t, good, sizeof(good));
		t[6] = '/';		/* bad name */
		CHECK(store_parse(t, sizeof(good)) == NULL);
		memcpy(t, good, sizeof(good));
		t[15] = ' ';		/* key with a space */
		CHECK(store_parse(t, sizeof(good)) == NULL);
		memcpy(t, good, sizeof(good));
		t[14] = 0;		/* empty key */
		CHECK(store_parse(t, sizeof(good) - 1) == NULL);
		memcpy(t, good, sizeof(good));
		t[0] = 0xff;		/* absurd count */
		CHECK(store_parse(t, sizeof(good)) == NULL);
	}
	{
		/* two entries of the same name */
		static const unsigned char dup[] = { 0, 0, 0, 2,
		    0, 1, 'a', 0, 1, '1', 0, 0, 0, 0, 1, 'k',
		    0, 1, 'a', 0, 1, '2', 0, 0, 0, 0, 1, 'k' };
		static const unsigned char exp[] = { 0, 0, 0, 1,
		    0, 1, 'a', 0, 1, '1', 0, 0, 10, '2', '0', '3', '0', '-',
		    '0', '2', '-', '3', '0', 0, 1, 'k' };

		/* a NUL inside the first name (once freed a stale pointer) */
		static const unsigned char nul[] = { 0, 0, 0, 1, 0, 2, 'a', 0,
		    0, 1, '1', 0, 0, 0, 0, 1, 'k' };

		CHECK(store_parse(nul, sizeof(nul)) == NULL);
		CHECK(store_parse(dup, sizeof(dup)) == NULL);
		CHECK(store_parse(exp, sizeof(exp)) == NULL); /* Feb 30 */
	}

	CHECK(store_check_name("acme-1.prod_x") == 0);
	CHECK(store_check_name("-x") == -1);
	CHECK(store_check_name("") == -1);
	CHECK(store_check_name("a/b") == -1);

	keystore_free(pass);
	keystore_free(bad);
	return unit_exit("test_store");
}
