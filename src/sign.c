/*
 * sign.c: the advanced-key signature. Pure computation, no I/O: a nonce of
 * 64 characters from [A-Za-z0-9] drawn from OpenSSL's CSPRNG without modulo
 * bias, the timestamp in ms, and hex(sha256(key + nonce + timestamp)).
 * One signer per event loop: the SHA-256 method is fetched once and its
 * context reused, and random bytes are drawn in batches.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "xdrproxy.h"

static const char sign_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/* 248 = 4 * 62: bytes below it map evenly onto the 62 characters. */
#define SIGN_ACCEPT_BELOW	248

int
sign_init(struct signer *sg)
{
	memset(sg, 0, sizeof(*sg));
	sg->sg_pool_pos = sizeof(sg->sg_pool);
	if ((sg->sg_md = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL)
		return -1;
	if ((sg->sg_ctx = EVP_MD_CTX_new()) == NULL) {
		EVP_MD_free(sg->sg_md);
		sg->sg_md = NULL;
		return -1;
	}
	return 0;
}

void
sign_free(struct signer *sg)
{
	EVP_MD_CTX_free(sg->sg_ctx);
	EVP_MD_free(sg->sg_md);
	OPENSSL_cleanse(sg->sg_pool, sizeof(sg->sg_pool));
	memset(sg, 0, sizeof(*sg));
}

/* Nonce character for one random byte, or -1 if the byte must be skipped. */
int
sign_nonce_char(unsigned char b)
{
	if (b >= SIGN_ACCEPT_BELOW)
		return -1;
	return sign_alphabet[b % (sizeof(sign_alphabet) - 1)];
}

/* Make sure the batch of random bytes is not used up. */
static int
sign_pool_fill(struct signer *sg)
{
	if (sg->sg_pool_pos < sizeof(sg->sg_pool))
		return 0;
	if (RAND_bytes(sg->sg_pool, sizeof(sg->sg_pool)) != 1)
		return -1;
	sg->sg_pool_pos = 0;
	return 0;
}

/* Fill buf with len bytes from the CSPRNG. */
int
sign_random(struct signer *sg, void *buf, size_t len)
{
	unsigned char	*p = buf;
	size_t		 n;

	while (len > 0) {
		if (sign_pool_fill(sg) == -1)
			return -1;
		n = sizeof(sg->sg_pool) - sg->sg_pool_pos;
		if (n > len)
			n = len;
		memcpy(p, sg->sg_pool + sg->sg_pool_pos, n);
		sg->sg_pool_pos += n;
		p += n;
		len -= n;
	}
	return 0;
}

/* Write SIGN_NONCE_LEN characters and a NUL to out. */
int
sign_nonce(struct signer *sg, char *out)
{
	size_t	 n = 0;
	int	 c;

	while (n < SIGN_NONCE_LEN) {
		if (sign_pool_fill(sg) == -1)
			return -1;
		if ((c = sign_nonce_char(sg->sg_pool[sg->sg_pool_pos++])) != -1)
			out[n++] = (char)c;
	}
	out[n] = '\0';
	return 0;
}

/* out (65 bytes) = lowercase hex of sha256(key + nonce + timestamp). */
int
sign_hash(struct signer *sg, const char *key, size_t keylen,
    const char *nonce, const char *ts, char *out)
{
	static const char	 hex[] = "0123456789abcdef";
	unsigned char		 md[EVP_MAX_MD_SIZE];
	unsigned int		 mdlen = 0, i;
	EVP_MD_CTX		*ctx = sg->sg_ctx;

	if (EVP_DigestInit_ex2(ctx, sg->sg_md, NULL) != 1 ||
	    EVP_DigestUpdate(ctx, key, keylen) != 1 ||
	    EVP_DigestUpdate(ctx, nonce, strlen(nonce)) != 1 ||
	    EVP_DigestUpdate(ctx, ts, strlen(ts)) != 1 ||
	    EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 ||
	    mdlen * 2 != SIGN_HASH_HEX_LEN)
		return -1;
	for (i = 0; i < mdlen; i++) {
		out[i * 2] = hex[md[i] >> 4];
		out[i * 2 + 1] = hex[md[i] & 0xf];
	}
	out[mdlen * 2] = '\0';
	OPENSSL_cleanse(md, sizeof(md));
	return 0;
}

/* Fresh advanced-key headers for one request at time now_ms. */
int
sign_advanced(struct signer *sg, const struct key *k, uint64_t now_ms,
    struct sign_headers *sh)
{
	if (sign_nonce(sg, sh->sh_nonce) == -1)
		return -1;
	snprintf(sh->sh_timestamp, sizeof(sh->sh_timestamp), "%" PRIu64,
	    now_ms);
	if (k->k_p11 != NULL)
		return pkcs11_hash(k->k_p11, sh->sh_nonce, sh->sh_timestamp,
		    sh->sh_hash);
	return sign_hash(sg, k->k_data, k->k_len, sh->sh_nonce,
	    sh->sh_timestamp, sh->sh_hash);
}
