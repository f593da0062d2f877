/*
 * keysource.c: a tenant's key from the one source its section names
 * (key_file, key_store + key_name, key_credential, key_command,
 * key_pkcs11), loaded whole for a configuration generation, at start and
 * on each reload. Each source returns its own message; errors leave here
 * as FILE:LINE: message, the line being the source's setting.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xdrproxy.h"

/*
 * $CREDENTIALS_DIRECTORY/NAME in *path, or -1 and *cause when systemd
 * did not pass credentials.
 */
int
keysource_credential_path(const char *name, char **path, char **cause)
{
	const char	*dir = getenv("CREDENTIALS_DIRECTORY");

	*path = NULL;
	if (dir == NULL || *dir == '\0') {
		if (asprintf(cause, "credential %s: $CREDENTIALS_DIRECTORY is "
		    "not set; systemd sets it for a unit with LoadCredential= "
		    "or LoadCredentialEncrypted=", name) == -1)
			*cause = NULL;
		return -1;
	}
	if (asprintf(path, "%s/%s", dir, name) == -1) {
		*path = NULL;
		*cause = strdup("out of memory");
		return -1;
	}
	return 0;
}

/* The key file at path; errors as "WHAT PATH: why". */
static int
keysource_file(const char *what, const char *path, struct key **k,
    char **cause)
{
	char	*why;

	if (keystore_load(path, k, &why) == 0)
		return 0;
	if (asprintf(cause, "%s %s", what, why != NULL ? why :
	    "out of memory") == -1)
		*cause = NULL;
	free(why);
	return -1;
}

/* key_credential: a key file that systemd put in place. */
static int
keysource_credential(struct tenant *tn, struct key **k, char **cause)
{
	char	*path, *what;
	int	 rc;

	if (keysource_credential_path(tn->tn_key_credential, &path,
	    cause) == -1)
		return -1;
	if (asprintf(&what, "key_credential %s:", tn->tn_key_credential) ==
	    -1) {
		free(path);
		*cause = strdup("out of memory");
		return -1;
	}
	rc = keysource_file(what, path, k, cause);
	free(what);
	free(path);
	return rc;
}

static int
keysource_one(struct keyload *kl, struct tenant *tn, char **cause)
{
	struct config	*cf = kl->kl_conf;

	switch (tn->tn_key_source) {
	case KS_FILE:
		return keysource_file("key_file", tn->tn_key_file,
		    &tn->tn_key, cause);
	case KS_STORE:
		return store_key_load(kl, tn, cause);
	case KS_CREDENTIAL:
		return keysource_credential(tn, &tn->tn_key, cause);
	case KS_COMMAND:
		return keycmd_run(tn->tn_key_command,
		    cf->cf_key_command_timeout, &tn->tn_key, cause);
	case KS_PKCS11:
		return pkcs11_key_load(tn, &tn->tn_key, cause);
	}
	*cause = strdup("unknown key source");
	return -1;
}

/*
 * Every tenant's key for cf. prompt: the key store's passphrase may be
 * asked for on the controlling terminal (at start, in the foreground).
 * 0, or -1 and *cause as FILE:LINE: message.
 */
int
keysource_load(struct config *cf, int prompt, char **cause)
{
	struct keyload	 kl;
	struct tenant	*tn;
	char		*why = NULL;
	int		 rc = 0;

	*cause = NULL;
	memset(&kl, 0, sizeof(kl));
	kl.kl_conf = cf;
	kl.kl_prompt = prompt;
	if (cf->cf_audit_key_file != NULL)
		rc = keysource_file("audit_hmac_key_file", cf->cf_audit_key_file,
		    &cf->cf_audit_key, &why);
	else if (cf->cf_audit_key_name != NULL)
		rc = store_entry_key(&kl, cf->cf_key_store,
		    cf->cf_audit_key_name, &cf->cf_audit_key, &why);
	if (rc == -1) {
		if (asprintf(cause, "%s:%d: %s%s", cf->cf_file,
		    cf->cf_audit_key_line, cf->cf_audit_key_file == NULL ?
		    "audit_hmac_key_name " : "", why != NULL ? why :
		    "out of memory") == -1)
			*cause = NULL;
		free(why);
		store_cache_free(&kl);
		return -1;
	}
	/* The rate backend's password: a key file's rules. */
	if (cf->cf_redis_password_file != NULL &&
	    keysource_file("redis_password_file", cf->cf_redis_password_file,
	    &cf->cf_redis_password, &why) == -1) {
		if (asprintf(cause, "%s:%d: %s", cf->cf_file,
		    cf->cf_redis_password_line, why != NULL ? why :
		    "out of memory") == -1)
			*cause = NULL;
		free(why);
		store_cache_free(&kl);
		return -1;
	}
	TAILQ_FOREACH(tn, &cf->cf_tenants, tn_entry) {
		if (keysource_one(&kl, tn, &why) == -1) {
			if (asprintf(cause, "%s:%d: %s", cf->cf_file,
			    tn->tn_key_source_line, why != NULL ? why :
			    "out of memory") == -1)
				*cause = NULL;
			free(why);
			rc = -1;
			break;
		}
		if (tn->tn_key->k_p11 == NULL && !tn->tn_key->k_locked)
			log_warnx("tenant %s: cannot lock the key in memory "
			    "(RLIMIT_MEMLOCK); it may be swapped out",
			    tn->tn_name);
	}
	store_cache_free(&kl);
	return rc;
}
