/*
 * fuzz_store.c: libFuzzer target for the key store's entry list parser
 * (store_parse, what AES-GCM hands over once the tag checks): lengths,
 * counts, names, key IDs, types, dates and keys, all strictly.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "xdrproxy.h"

int	 LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct store	*st;
	size_t		 i;

	if ((st = store_parse(data, size)) == NULL)
		return 0;
	/* What parsed is well formed. */
	for (i = 0; i < st->st_n; i++) {
		if (store_check_name(st->st_entries[i].se_name) == -1 ||
		    store_check_key(st->st_entries[i].se_key->k_data,
		    st->st_entries[i].se_key->k_len) == -1)
			__builtin_trap();
	}
	store_free(st);
	return 0;
}
