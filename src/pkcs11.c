/*
 * pkcs11.c: advanced keys that stay on a PKCS#11 token; the token hashes
 * key + nonce + timestamp itself (C_DigestKey).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "xdrproxy.h"

int
pkcs11_key_load(struct tenant *tn, struct key **k, char **cause)
{
	*k = NULL;
	*cause = strdup("key_pkcs11: not supported yet");
	return -1;
}

void
pkcs11_key_free(struct pkcs11_key *p)
{
}

int
pkcs11_hash(struct pkcs11_key *p, const char *nonce, const char *ts,
    char *out)
{
	return -1;
}
