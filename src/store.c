/*
 * store.c: the encrypted key store (xdrproxy-keys(1)): many named keys in
 * one file, encrypted as a whole with AES-256-GCM under a key derived
 * from a passphrase with scrypt.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "xdrproxy.h"

/* A tenant's key_store + key_name. */
int
store_key_load(struct keyload *kl, struct tenant *tn, char **cause)
{
	*cause = strdup("key_name: key stores are not supported yet");
	return -1;
}

void
store_cache_free(struct keyload *kl)
{
}
