/*
 * pkcs11.c: advanced keys that stay on a PKCS#11 token; the token hashes
 * key + nonce + timestamp itself (C_DigestInit(CKM_SHA256), C_DigestKey,
 * C_DigestUpdate, C_DigestFinal), so the key never enters xdrproxy's own
 * memory. p11-kit parses the RFC 7512 URI and loads the modules.
 *
 * Modules are loaded "managed" (p11-kit flags 0): every load gets its own
 * view of the module and p11-kit reference-counts C_Initialize/C_Finalize
 * underneath, so a reload's new generation loads and logs in on its own
 * while the old one still serves in-flight requests, and the old one's
 * C_Finalize closes only its own session.
 *
 * One session per key, and a mutex around each digest: a PKCS#11 session
 * runs one operation at a time, and worker threads sign concurrently.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <p11-kit/p11-kit.h>
#include <p11-kit/uri.h>

#include <openssl/crypto.h>

#include "xdrproxy.h"

struct pkcs11_key {
	pthread_mutex_t		  p_lock;
	CK_FUNCTION_LIST	 *p_mod;	/* the module with the token */
	CK_FUNCTION_LIST	 *p_loaded;	/* p11_kit_module_load'ed */
	CK_FUNCTION_LIST	**p_mods;	/* or all registered modules */
	CK_SESSION_HANDLE	  p_session;
	int			  p_has_session;
	CK_OBJECT_HANDLE	  p_obj;
};

/* A readable name for the return values a user may meet. */
static const char *
pkcs11_rv(CK_RV rv)
{
	static char	 buf[32];

	switch (rv) {
	case CKR_OK:			return "CKR_OK";
	case CKR_PIN_INCORRECT:		return "CKR_PIN_INCORRECT";
	case CKR_PIN_LOCKED:		return "CKR_PIN_LOCKED";
	case CKR_PIN_EXPIRED:		return "CKR_PIN_EXPIRED";
	case CKR_PIN_LEN_RANGE:		return "CKR_PIN_LEN_RANGE";
	case CKR_TOKEN_NOT_PRESENT:	return "CKR_TOKEN_NOT_PRESENT";
	case CKR_DEVICE_REMOVED:	return "CKR_DEVICE_REMOVED";
	case CKR_DEVICE_ERROR:		return "CKR_DEVICE_ERROR";
	case CKR_SESSION_HANDLE_INVALID: return "CKR_SESSION_HANDLE_INVALID";
	case CKR_SESSION_CLOSED:	return "CKR_SESSION_CLOSED";
	case CKR_USER_NOT_LOGGED_IN:	return "CKR_USER_NOT_LOGGED_IN";
	case CKR_KEY_INDIGESTIBLE:	return "CKR_KEY_INDIGESTIBLE";
	case CKR_KEY_HANDLE_INVALID:	return "CKR_KEY_HANDLE_INVALID";
	case CKR_MECHANISM_INVALID:	return "CKR_MECHANISM_INVALID";
	case CKR_FUNCTION_NOT_SUPPORTED: return "CKR_FUNCTION_NOT_SUPPORTED";
	case CKR_GENERAL_ERROR:		return "CKR_GENERAL_ERROR";
	case CKR_HOST_MEMORY:		return "CKR_HOST_MEMORY";
	}
	snprintf(buf, sizeof(buf), "CKR 0x%lx", (unsigned long)rv);
	return buf;
}

static int
pkcs11_error(char **cause, const char *what, CK_RV rv)
{
	if (asprintf(cause, "key_pkcs11: %s: %s", what, pkcs11_rv(rv)) == -1)
		*cause = NULL;
	return -1;
}

/* The first slot of mod whose token matches uri; 0, or -1 (none). */
static int
pkcs11_find_slot(CK_FUNCTION_LIST *mod, P11KitUri *uri, CK_SLOT_ID *slot)
{
	CK_SLOT_ID	*slots = NULL;
	CK_ULONG	 n = 0, i;
	CK_TOKEN_INFO	 ti;
	int		 rc = -1;

	if (mod->C_GetSlotList(CK_TRUE, NULL, &n) != CKR_OK || n == 0)
		return -1;
	if ((slots = calloc(n, sizeof(*slots))) == NULL)
		return -1;
	if (mod->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK)
		goto done;
	for (i = 0; i < n; i++) {
		if (mod->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
			continue;
		if (p11_kit_uri_match_token_info(uri, &ti)) {
			*slot = slots[i];
			rc = 0;
			break;
		}
	}
done:
	free(slots);
	return rc;
}

/* Load the module(s) and find the token's slot: 0, or -1 and *cause. */
static int
pkcs11_open_module(struct pkcs11_key *p, const char *path, P11KitUri *uri,
    CK_SLOT_ID *slot, char **cause)
{
	CK_RV	 rv;
	size_t	 i;

	if (path == NULL)
		path = p11_kit_uri_get_module_path(uri);
	if (path != NULL) {
		if ((p->p_loaded = p11_kit_module_load(path, 0)) == NULL) {
			if (asprintf(cause, "pkcs11_module %s: cannot load: "
			    "%s", path, p11_kit_message() != NULL ?
			    p11_kit_message() : "unknown error") == -1)
				*cause = NULL;
			return -1;
		}
		if ((rv = p11_kit_module_initialize(p->p_loaded)) != CKR_OK) {
			p11_kit_module_release(p->p_loaded);
			p->p_loaded = NULL;
			return pkcs11_error(cause, "C_Initialize", rv);
		}
		if (pkcs11_find_slot(p->p_loaded, uri, slot) == 0) {
			p->p_mod = p->p_loaded;
			return 0;
		}
	} else {
		if ((p->p_mods = p11_kit_modules_load_and_initialize(0)) ==
		    NULL) {
			if (asprintf(cause, "key_pkcs11: cannot load the "
			    "p11-kit modules: %s", p11_kit_message() != NULL ?
			    p11_kit_message() : "unknown error") == -1)
				*cause = NULL;
			return -1;
		}
		for (i = 0; p->p_mods[i] != NULL; i++) {
			CK_INFO	 info;

			/* The URI's module-name and library attributes. */
			if (p->p_mods[i]->C_GetInfo(&info) != CKR_OK ||
			    !p11_kit_uri_match_module_info(uri, &info))
				continue;
			if (pkcs11_find_slot(p->p_mods[i], uri, slot) == 0) {
				p->p_mod = p->p_mods[i];
				return 0;
			}
		}
	}
	*cause = strdup("key_pkcs11: no token matches the URI");
	return -1;
}

/* Log in with the PIN from pin_file (wiped at once): 0, or -1 and *cause. */
static int
pkcs11_login(struct pkcs11_key *p, const char *pin_file, char **cause)
{
	struct key	*pin;
	char		*why = NULL;
	CK_RV		 rv;

	if (keystore_load(pin_file, &pin, &why) == -1) {
		if (asprintf(cause, "pkcs11_pin_file: %s", why != NULL ? why :
		    "out of memory") == -1)
			*cause = NULL;
		free(why);
		return -1;
	}
	rv = p->p_mod->C_Login(p->p_session, CKU_USER,
	    (CK_UTF8CHAR_PTR)pin->k_data, pin->k_len);
	keystore_free(pin);
	/* Another generation's session on this token already logged in. */
	if (rv == CKR_USER_ALREADY_LOGGED_IN)
		rv = CKR_OK;
	if (rv == CKR_PIN_INCORRECT) {
		if (asprintf(cause, "key_pkcs11: C_Login: wrong PIN "
		    "(CKR_PIN_INCORRECT) in %s", pin_file) == -1)
			*cause = NULL;
		return -1;
	}
	if (rv != CKR_OK)
		return pkcs11_error(cause, "C_Login", rv);
	return 0;
}

/* Exactly one secret-key object matching uri: 0, or -1 and *cause. */
static int
pkcs11_find_object(struct pkcs11_key *p, P11KitUri *uri, char **cause)
{
	CK_OBJECT_CLASS	 cls = CKO_SECRET_KEY;
	CK_ATTRIBUTE	*ua, *tmpl = NULL;
	CK_OBJECT_HANDLE objs[2];
	CK_ULONG	 nua = 0, nt = 0, nobj = 0, i;
	CK_RV		 rv;
	int		 rc = -1;

	ua = p11_kit_uri_get_attributes(uri, &nua);
	if ((tmpl = calloc(nua + 1, sizeof(*tmpl))) == NULL) {
		*cause = strdup("key_pkcs11: out of memory");
		return -1;
	}
	for (i = 0; i < nua; i++) {
		if (ua[i].type == CKA_CLASS) {
			if (ua[i].ulValueLen != sizeof(cls) ||
			    memcmp(ua[i].pValue, &cls, sizeof(cls)) != 0) {
				*cause = strdup("key_pkcs11: the URI names an "
				    "object type other than secret-key");
				goto done;
			}
			continue;
		}
		tmpl[nt++] = ua[i];
	}
	tmpl[nt].type = CKA_CLASS;
	tmpl[nt].pValue = &cls;
	tmpl[nt].ulValueLen = sizeof(cls);
	nt++;
	if ((rv = p->p_mod->C_FindObjectsInit(p->p_session, tmpl, nt)) !=
	    CKR_OK) {
		pkcs11_error(cause, "C_FindObjectsInit", rv);
		goto done;
	}
	rv = p->p_mod->C_FindObjects(p->p_session, objs, 2, &nobj);
	p->p_mod->C_FindObjectsFinal(p->p_session);
	if (rv != CKR_OK) {
		pkcs11_error(cause, "C_FindObjects", rv);
		goto done;
	}
	if (nobj == 0) {
		*cause = strdup("key_pkcs11: no secret-key object matches "
		    "the URI");
		goto done;
	}
	if (nobj > 1) {
		*cause = strdup("key_pkcs11: several secret-key objects match "
		    "the URI; name one with object= or id=");
		goto done;
	}
	p->p_obj = objs[0];
	rc = 0;
done:
	free(tmpl);
	return rc;
}

/* The digest sequence on p's session; called with p_lock held. */
static CK_RV
pkcs11_digest(struct pkcs11_key *p, const char *a, const char *b,
    unsigned char *md, CK_ULONG *mdlen)
{
	CK_MECHANISM	 mech = { CKM_SHA256, NULL, 0 };
	CK_FUNCTION_LIST *m = p->p_mod;
	CK_RV		 rv;

	if ((rv = m->C_DigestInit(p->p_session, &mech)) != CKR_OK)
		return rv;
	if ((rv = m->C_DigestKey(p->p_session, p->p_obj)) != CKR_OK ||
	    (rv = m->C_DigestUpdate(p->p_session, (CK_BYTE_PTR)a,
	    strlen(a))) != CKR_OK ||
	    (b != NULL && (rv = m->C_DigestUpdate(p->p_session,
	    (CK_BYTE_PTR)b, strlen(b))) != CKR_OK)) {
		/* End the operation (a NULL buffer only asks the length). */
		unsigned char	 junk[64];
		CK_ULONG	 n = sizeof(junk);

		m->C_DigestFinal(p->p_session, junk, &n);
		OPENSSL_cleanse(junk, sizeof(junk));
		return rv;
	}
	return m->C_DigestFinal(p->p_session, md, mdlen);
}

/* What the token needs in order to digest the key, checked once at load. */
static int
pkcs11_check_digest(struct pkcs11_key *p, CK_SLOT_ID slot, char **cause)
{
	CK_MECHANISM_INFO mi;
	unsigned char	 md[64];
	CK_ULONG	 mdlen = sizeof(md);
	CK_RV		 rv;

	rv = p->p_mod->C_GetMechanismInfo(slot, CKM_SHA256, &mi);
	if (rv == CKR_MECHANISM_INVALID || (rv == CKR_OK &&
	    (mi.flags & CKF_DIGEST) == 0)) {
		*cause = strdup("key_pkcs11: the token cannot compute SHA-256 "
		    "digests (no CKM_SHA256 with CKF_DIGEST)");
		return -1;
	}
	if (rv != CKR_OK)
		return pkcs11_error(cause, "C_GetMechanismInfo", rv);
	rv = pkcs11_digest(p, "test", NULL, md, &mdlen);
	OPENSSL_cleanse(md, sizeof(md));
	if (rv == CKR_KEY_INDIGESTIBLE) {
		*cause = strdup("key_pkcs11: the token cannot hash this key "
		    "(CKR_KEY_INDIGESTIBLE): the object must be a generic "
		    "secret key (CKK_GENERIC_SECRET) with CKA_EXTRACTABLE "
		    "true and CKA_SENSITIVE false");
		return -1;
	}
	if (rv != CKR_OK)
		return pkcs11_error(cause, "test digest", rv);
	if (mdlen != 32) {
		*cause = strdup("key_pkcs11: the token's SHA-256 digest is "
		    "not 32 bytes");
		return -1;
	}
	return 0;
}

int
pkcs11_key_load(struct tenant *tn, struct key **k, char **cause)
{
	struct pkcs11_key *p = NULL;
	P11KitUri	*uri = NULL;
	CK_SLOT_ID	 slot = 0;
	CK_RV		 rv;
	int		 r;

	*k = NULL;
	*cause = NULL;
	if ((uri = p11_kit_uri_new()) == NULL) {
		*cause = strdup("key_pkcs11: out of memory");
		return -1;
	}
	r = p11_kit_uri_parse(tn->tn_key_pkcs11,
	    P11_KIT_URI_FOR_OBJECT_ON_TOKEN_AND_MODULE, uri);
	if (r != P11_KIT_URI_OK) {
		if (asprintf(cause, "key_pkcs11: not a valid PKCS#11 URI: %s",
		    p11_kit_uri_message(r)) == -1)
			*cause = NULL;
		goto fail;
	}
	if (p11_kit_uri_any_unrecognized(uri)) {
		*cause = strdup("key_pkcs11: the URI has attributes or values "
		    "that p11-kit does not recognize");
		goto fail;
	}
	if (p11_kit_uri_get_pin_value(uri) != NULL) {
		*cause = strdup("key_pkcs11: the URI holds pin-value, a secret "
		    "in the configuration file; remove it and put the PIN in "
		    "pkcs11_pin_file");
		goto fail;
	}
	if (p11_kit_uri_get_pin_source(uri) != NULL) {
		*cause = strdup("key_pkcs11: pin-source in the URI is not "
		    "supported; use pkcs11_pin_file");
		goto fail;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (*k = calloc(1, sizeof(**k))) == NULL) {
		free(p);
		p = NULL;
		*cause = strdup("key_pkcs11: out of memory");
		goto fail;
	}
	pthread_mutex_init(&p->p_lock, NULL);
	(*k)->k_p11 = p;
	if (pkcs11_open_module(p, tn->tn_pkcs11_module, uri, &slot,
	    cause) == -1)
		goto fail;
	rv = p->p_mod->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL,
	    &p->p_session);
	if (rv != CKR_OK) {
		pkcs11_error(cause, "C_OpenSession", rv);
		goto fail;
	}
	p->p_has_session = 1;
	if (tn->tn_pkcs11_pin_file != NULL &&
	    pkcs11_login(p, tn->tn_pkcs11_pin_file, cause) == -1)
		goto fail;
	if (pkcs11_find_object(p, uri, cause) == -1 ||
	    pkcs11_check_digest(p, slot, cause) == -1)
		goto fail;
	p11_kit_uri_free(uri);
	return 0;
fail:
	if (*cause == NULL)
		*cause = strdup("key_pkcs11: out of memory");
	p11_kit_uri_free(uri);
	keystore_free(*k);	/* calls pkcs11_key_free */
	*k = NULL;
	return -1;
}

void
pkcs11_key_free(struct pkcs11_key *p)
{
	if (p == NULL)
		return;
	/* No C_Logout: login state is the token's, shared with newer keys. */
	if (p->p_has_session)
		p->p_mod->C_CloseSession(p->p_session);
	if (p->p_loaded != NULL) {
		p11_kit_module_finalize(p->p_loaded);
		p11_kit_module_release(p->p_loaded);
	}
	if (p->p_mods != NULL)
		p11_kit_modules_finalize_and_release(p->p_mods);
	pthread_mutex_destroy(&p->p_lock);
	free(p);
}

/*
 * hex(sha256(key + nonce + ts)) into out (65 bytes), computed by the token.
 * -1 when the token fails (removed, session gone): the request then fails.
 */
int
pkcs11_hash(struct pkcs11_key *p, const char *nonce, const char *ts,
    char *out)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char	 md[64];
	CK_ULONG	 mdlen = sizeof(md), i;
	CK_RV		 rv;

	pthread_mutex_lock(&p->p_lock);
	rv = pkcs11_digest(p, nonce, ts, md, &mdlen);
	pthread_mutex_unlock(&p->p_lock);
	if (rv != CKR_OK || mdlen != 32) {
		OPENSSL_cleanse(md, sizeof(md));
		return -1;
	}
	for (i = 0; i < mdlen; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 0x0f];
	}
	out[2 * mdlen] = '\0';
	OPENSSL_cleanse(md, sizeof(md));
	return 0;
}
