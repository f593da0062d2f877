/*
 * test_sign.c: the advanced-key signature. Known vectors were computed by
 * hand with: printf %s "$key$nonce$ts" | sha256sum
 */
#include "config.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "xdrproxy.h"
#include "unit.h"

static void
test_vectors(struct signer *sg)
{
	static const char key[] =
	    "Xq3bT9vLr2mZp7KdN4sWc8hYf1GjA6uE0oRiVtB5nMxQwPzHlSeJkDyCgF";
	static const char nonce[] =
	    "aB3dE5gH7jK9mN1pQ3sT5vW7yZ0bC2eF4hJ6kL8nP0rS2uV4xY6zA8cD0fG2hJ4k";
	char	 out[SIGN_HASH_HEX_LEN + 1];

	CHECK(sign_hash(sg, key, strlen(key), nonce, "1732435200123",
	    out) == 0);
	CHECK_STR(out,
	    "d5a298135686137caa571ab17081c6bea34b1957b52e14fbc2d4c3d2f0c1c4e6");
	CHECK(sign_hash(sg, "x", 1, nonce, "0", out) == 0);
	CHECK_STR(out,
	    "168518faa9b5b30f7e8991adad42041a63db014b9f98d4bad8597ff82d6b8b5d");
	/* The context is reused: the first vector again gives the same. */
	CHECK(sign_hash(sg, key, strlen(key), nonce, "1732435200123",
	    out) == 0);
	CHECK_STR(out,
	    "d5a298135686137caa571ab17081c6bea34b1957b52e14fbc2d4c3d2f0c1c4e6");
}

/* Every accepted byte maps to the alphabet, each character equally often. */
static void
test_nonce_char(void)
{
	int	 counts[256], b, c, accepted = 0;

	memset(counts, 0, sizeof(counts));
	for (b = 0; b < 256; b++) {
		c = sign_nonce_char((unsigned char)b);
		if (c == -1)
			continue;
		accepted++;
		CHECK(isalnum(c));
		counts[c]++;
	}
	CHECK(accepted == 248);
	for (c = 0; c < 256; c++)
		CHECK(counts[c] == 0 || (isalnum(c) && counts[c] == 4));
	for (c = 0; c < 256; c++)
		if (isalnum(c))
			CHECK(counts[c] == 4);
	for (b = 248; b < 256; b++)
		CHECK(sign_nonce_char((unsigned char)b) == -1);
}

static int
cmp_nonce(const void *a, const void *b)
{
	return memcmp(a, b, SIGN_NONCE_LEN + 1);
}

/* Nonces are 64 alphanumerics, never repeated, and use the whole alphabet. */
static void
test_nonces(struct signer *sg)
{
	enum { N = 20000 };
	static char	 nonces[N][SIGN_NONCE_LEN + 1];
	long		 counts[256];
	size_t		 i, j;
	int		 dups = 0, bad = 0, unused = 0;
	double		 expect;

	memset(counts, 0, sizeof(counts));
	for (i = 0; i < N; i++) {
		CHECK(sign_nonce(sg, nonces[i]) == 0);
		if (strlen(nonces[i]) != SIGN_NONCE_LEN)
			bad++;
		for (j = 0; j < SIGN_NONCE_LEN; j++) {
			if (!isalnum((unsigned char)nonces[i][j]))
				bad++;
			counts[(unsigned char)nonces[i][j]]++;
		}
	}
	CHECK(bad == 0);
	qsort(nonces, N, sizeof(nonces[0]), cmp_nonce);
	for (i = 1; i < N; i++)
		if (memcmp(nonces[i - 1], nonces[i], SIGN_NONCE_LEN) == 0)
			dups++;
	CHECK(dups == 0);
	/* 1,280,000 characters over 62: each about 20645, sd about 142. */
	expect = (double)N * SIGN_NONCE_LEN / 62;
	for (i = 0; i < 256; i++) {
		if (!isalnum((int)i))
			continue;
		if (counts[i] < expect * 0.95 || counts[i] > expect * 1.05)
			unused++;
	}
	CHECK(unused == 0);
}

static void
test_advanced(struct signer *sg)
{
	struct key		 k = { .k_data = "k3y", .k_len = 3 };
	struct sign_headers	 a, b;
	char			 want[SIGN_HASH_HEX_LEN + 1];

	CHECK(sign_advanced(sg, &k, 1700000000000ULL, &a) == 0);
	CHECK_STR(a.sh_timestamp, "1700000000000");
	CHECK(strlen(a.sh_nonce) == SIGN_NONCE_LEN);
	CHECK(sign_hash(sg, "k3y", 3, a.sh_nonce, "1700000000000", want) == 0);
	CHECK_STR(a.sh_hash, want);
	/* Fresh for every request: same key and time, new nonce and hash. */
	CHECK(sign_advanced(sg, &k, 1700000000000ULL, &b) == 0);
	CHECK(strcmp(a.sh_nonce, b.sh_nonce) != 0);
	CHECK(strcmp(a.sh_hash, b.sh_hash) != 0);
}

int
main(void)
{
	struct signer	 sg;

	CHECK(sign_init(&sg) == 0);
	test_vectors(&sg);
	test_nonce_char();
	test_nonces(&sg);
	test_advanced(&sg);
	sign_free(&sg);
	return unit_exit("test_sign");
}
