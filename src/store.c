/*
 * store.c: the encrypted key store (xdrproxy-keys(1)): many named keys in
 * one file, encrypted as a whole with AES-256-GCM under a key derived
 * from a passphrase with scrypt. Shared by the daemon (key_store +
 * key_name) and the CLI.
 *
 * The file: a 44-byte header, authenticated as GCM's AAD,
 *	"XDRKS1"  version (1)  log2(N) (1)  r (4, BE)  p (4, BE)
 *	salt (16)  IV (12)
 * then the ciphertext of the entry list and the 16-byte tag. The entry
 * list (plaintext, names included):
 *	count (4, BE), then per entry: name, key ID, type (1 byte: 0
 *	advanced, 1 standard), expiry ("" or YYYY-MM-DD), key; each string
 *	as a 2-byte big-endian length and its bytes.
 * Cost parameters are bounded before anything is derived, so a changed
 * header cannot make us run for minutes; any other change fails the tag.
 * The passphrase, the derived key and the plaintext live in locked,
 * wiped mappings (struct key), freed as soon as they are done with.
 */
#include "config.h"

#include <sys/file.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "xdrproxy.h"

#define STORE_MAGIC	"XDRKS1"
#define STORE_VERSION	1
#define STORE_SALT	16
#define STORE_IV	12
#define STORE_TAG	16
#define STORE_HDR	(6 + 1 + 1 + 4 + 4 + STORE_SALT + STORE_IV)
#define STORE_FILE_MAX	(4 * 1024 * 1024)
#define STORE_ENTRIES_MAX 10000
#define STORE_ID_MAX	32
#define STORE_KEY_MAX	4096
/* Defaults, and the bounds a header must stay within. */
#define STORE_LOG2N	15
#define STORE_R		8
#define STORE_P		1
#define STORE_LOG2N_MIN	10
#define STORE_LOG2N_MAX	20
#define STORE_R_MAX	16
#define STORE_P_MAX	4
#define STORE_MEM_MAX	((uint64_t)256 * 1024 * 1024)

static const char store_damaged[] = "wrong passphrase or damaged store";

struct store_cache {
	struct store_cache	*sc_next;
	char			*sc_path;
	struct store		*sc_store;
};

static void
store_put32(unsigned char *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static uint32_t
store_get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

struct store *
store_new(void)
{
	struct store	*st;

	if ((st = calloc(1, sizeof(*st))) == NULL)
		return NULL;
	st->st_log2n = STORE_LOG2N;
	st->st_r = STORE_R;
	st->st_p = STORE_P;
	return st;
}

static void
store_entry_clear(struct store_entry *se)
{
	free(se->se_name);
	free(se->se_key_id);
	keystore_free(se->se_key);
	memset(se, 0, sizeof(*se));
}

void
store_free(struct store *st)
{
	size_t	i;

	if (st == NULL)
		return;
	for (i = 0; i < st->st_n; i++)
		store_entry_clear(&st->st_entries[i]);
	free(st->st_entries);
	free(st);
}

/* A key name: 1..64 of [A-Za-z0-9._-], not starting with '-'. */
int
store_check_name(const char *s)
{
	size_t	len = strlen(s);

	if (len == 0 || len > STORE_NAME_MAX || s[0] == '-')
		return -1;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789._-") == len ? 0 : -1;
}

static int
store_check_id(const char *s, size_t len)
{
	size_t	i;

	if (len == 0 || len > STORE_ID_MAX)
		return -1;
	for (i = 0; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return -1;
	return 0;
}

/* A key: one line of printable characters without spaces, as key files. */
int
store_check_key(const char *s, size_t len)
{
	size_t	i;

	if (len == 0 || len > STORE_KEY_MAX)
		return -1;
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return -1;
	return 0;
}

struct store_entry *
store_find(const struct store *st, const char *name)
{
	size_t	i;

	for (i = 0; i < st->st_n; i++)
		if (strcmp(st->st_entries[i].se_name, name) == 0)
			return &st->st_entries[i];
	return NULL;
}

/*
 * Add (or, with force, replace) the entry name. expires: NULL or
 * YYYY-MM-DD. 0, or -1 and *cause (never quoting the key).
 */
int
store_put(struct store *st, const char *name, const char *key_id,
    enum key_type type, const char *expires, const char *key, size_t keylen,
    int force, char **cause)
{
	struct store_entry	 se, *old, *v;

	*cause = NULL;
	if (store_check_name(name) == -1) {
		*cause = strdup("a key name is 1 to 64 letters, digits, '.', "
		    "'_' or '-', not starting with '-'");
		return -1;
	}
	if (store_check_id(key_id, strlen(key_id)) == -1) {
		*cause = strdup("a key ID is 1 to 32 digits");
		return -1;
	}
	if (expires != NULL && config_parse_date(expires) == -1) {
		*cause = strdup("expiry: expected a date, YYYY-MM-DD");
		return -1;
	}
	if (store_check_key(key, keylen) == -1) {
		*cause = strdup("the key must be one line of 1 to 4096 "
		    "printable characters without spaces");
		return -1;
	}
	old = store_find(st, name);
	if (old != NULL && !force) {
		if (asprintf(cause, "%s: already in the store (--force "
		    "replaces it)", name) == -1)
			*cause = NULL;
		return -1;
	}
	memset(&se, 0, sizeof(se));
	se.se_type = type;
	if (expires != NULL)
		memcpy(se.se_expires, expires, 11);
	if ((se.se_name = strdup(name)) == NULL ||
	    (se.se_key_id = strdup(key_id)) == NULL ||
	    (se.se_key = keystore_new(key, keylen)) == NULL)
		goto nomem;
	if (old != NULL) {
		store_entry_clear(old);
		*old = se;
		return 0;
	}
	if (st->st_n >= STORE_ENTRIES_MAX) {
		store_entry_clear(&se);
		*cause = strdup("the store is full");
		return -1;
	}
	if ((v = reallocarray(st->st_entries, st->st_n + 1,
	    sizeof(*v))) == NULL)
		goto nomem;
	st->st_entries = v;
	st->st_entries[st->st_n++] = se;
	return 0;
nomem:
	store_entry_clear(&se);
	*cause = strdup("out of memory");
	return -1;
}

/* 0 if name was there and is gone, -1 if it was not there. */
int
store_remove(struct store *st, const char *name)
{
	struct store_entry	*se = store_find(st, name);
	size_t			 i;

	if (se == NULL)
		return -1;
	i = (size_t)(se - st->st_entries);
	store_entry_clear(se);
	memmove(se, se + 1, (st->st_n - i - 1) * sizeof(*se));
	st->st_n--;
	return 0;
}

/* Cost bounds, checked before deriving. 0, or -1 and *cause. */
static int
store_check_cost(unsigned int log2n, uint32_t r, uint32_t p, char **cause)
{
	if (log2n < STORE_LOG2N_MIN || log2n > STORE_LOG2N_MAX ||
	    r == 0 || r > STORE_R_MAX || p == 0 || p > STORE_P_MAX ||
	    ((uint64_t)1 << log2n) * r * 128 > STORE_MEM_MAX) {
		if (asprintf(cause, "scrypt cost in the header (N=2^%u r=%u "
		    "p=%u) is beyond the bounds (N <= 2^%d, r <= %d, p <= %d, "
		    "128*N*r <= 256 MiB): refusing to derive; %s", log2n,
		    (unsigned)r, (unsigned)p, STORE_LOG2N_MAX, STORE_R_MAX,
		    STORE_P_MAX, store_damaged) == -1)
			*cause = NULL;
		return -1;
	}
	return 0;
}

/* scrypt(pass, salt) -> a 32-byte key in *out. 0, or -1 and *cause. */
static int
store_derive(const struct key *pass, const unsigned char *salt,
    unsigned int log2n, uint32_t r, uint32_t p, struct key **out,
    char **cause)
{
	EVP_KDF		*kdf = NULL;
	EVP_KDF_CTX	*kctx = NULL;
	OSSL_PARAM	 params[7], *q = params;
	uint64_t	 n = (uint64_t)1 << log2n;
	uint64_t	 maxmem = STORE_MEM_MAX * 2 + 1024 * 1024;
	struct key	*k = NULL;
	int		 rc = -1;

	*out = NULL;
	if ((k = keystore_new(NULL, 32)) == NULL) {
		*cause = strdup("out of memory");
		return -1;
	}
	*q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD,
	    pass->k_data, pass->k_len);
	*q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
	    (void *)salt, STORE_SALT);
	*q++ = OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n);
	*q++ = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &r);
	*q++ = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &p);
	*q++ = OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM,
	    &maxmem);
	*q = OSSL_PARAM_construct_end();
	if ((kdf = EVP_KDF_fetch(NULL, "SCRYPT", NULL)) == NULL ||
	    (kctx = EVP_KDF_CTX_new(kdf)) == NULL) {
		*cause = strdup("OpenSSL has no scrypt");
		goto done;
	}
	if (EVP_KDF_derive(kctx, (unsigned char *)k->k_data, 32,
	    params) != 1) {
		*cause = strdup("scrypt failed (out of memory?)");
		goto done;
	}
	*out = k;
	k = NULL;
	rc = 0;
done:
	ERR_clear_error();
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	keystore_free(k);
	return rc;
}

/* Plaintext of the entry list, in a wiped mapping. */
static struct key *
store_serialize(const struct store *st)
{
	const struct store_entry *se;
	struct key	*pt;
	size_t		 len = 4, i, j, off;
	const char	*f[4];
	size_t		 fl[4];

	for (i = 0; i < st->st_n; i++) {
		se = &st->st_entries[i];
		len += 2 + strlen(se->se_name) + 2 + strlen(se->se_key_id) +
		    1 + 2 + strlen(se->se_expires) + 2 + se->se_key->k_len;
	}
	if ((pt = keystore_new(NULL, len)) == NULL)
		return NULL;
	store_put32((unsigned char *)pt->k_data, (uint32_t)st->st_n);
	off = 4;
	for (i = 0; i < st->st_n; i++) {
		se = &st->st_entries[i];
		f[0] = se->se_name;
		f[1] = se->se_key_id;
		f[2] = se->se_expires;
		f[3] = se->se_key->k_data;
		fl[0] = strlen(f[0]);
		fl[1] = strlen(f[1]);
		fl[2] = strlen(f[2]);
		fl[3] = se->se_key->k_len;
		for (j = 0; j < 4; j++) {
			if (j == 2)
				pt->k_data[off++] = se->se_type ==
				    KEY_STANDARD ? 1 : 0;
			pt->k_data[off++] = (char)(fl[j] >> 8);
			pt->k_data[off++] = (char)fl[j];
			memcpy(pt->k_data + off, f[j], fl[j]);
			off += fl[j];
		}
	}
	return pt;
}

/* One length-prefixed field of at most max bytes. */
static int
store_field(const unsigned char *p, size_t len, size_t *off, size_t max,
    const unsigned char **f, size_t *flen)
{
	if (len - *off < 2)
		return -1;
	*flen = (size_t)p[*off] << 8 | p[*off + 1];
	*off += 2;
	if (*flen > max || len - *off < *flen)
		return -1;
	*f = p + *off;
	*off += *flen;
	return 0;
}

/* The entry list, parsed strictly. NULL on any flaw. */
struct store *
store_parse(const unsigned char *p, size_t len)
{
	struct store		*st;
	const unsigned char	*f[4];
	size_t			 fl[4], off = 4, j;
	uint32_t		 n, i;
	char			 name[STORE_NAME_MAX + 1], id[STORE_ID_MAX + 1];
	char			 exp[11];
	enum key_type		 type = KEY_ADVANCED;
	char			*why;
	static const size_t	 max[4] = { STORE_NAME_MAX, STORE_ID_MAX, 10,
				    STORE_KEY_MAX };

	if (len < 4 || (n = store_get32(p)) > STORE_ENTRIES_MAX)
		return NULL;
	if ((st = store_new()) == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		for (j = 0; j < 4; j++) {
			if (j == 2) {
				if (off >= len || p[off] > 1)
					goto bad;
				type = p[off++] ? KEY_STANDARD : KEY_ADVANCED;
			}
			if (store_field(p, len, &off, max[j], &f[j],
			    &fl[j]) == -1)
				goto bad;
		}
		if (fl[2] != 0 && fl[2] != 10)
			goto bad;
		why = NULL;
		memcpy(name, f[0], fl[0]);
		name[fl[0]] = '\0';
		memcpy(id, f[1], fl[1]);
		id[fl[1]] = '\0';
		memcpy(exp, f[2], fl[2]);
		exp[fl[2]] = '\0';
		if (strlen(name) != fl[0] || strlen(id) != fl[1] ||
		    strlen(exp) != fl[2] || store_find(st, name) != NULL ||
		    store_put(st, name, id, type, fl[2] ? exp : NULL,
		    (const char *)f[3], fl[3], 0, &why) == -1) {
			free(why);
			goto bad;
		}
	}
	if (off != len)
		goto bad;
	return st;
bad:
	store_free(st);
	return NULL;
}

/*
 * The whole file for st under pass, fresh salt and IV, in *out (malloc'd;
 * ciphertext only, no secret). 0, or -1 and *cause.
 */
int
store_seal(const struct store *st, const struct key *pass,
    unsigned char **out, size_t *outlen, char **cause)
{
	EVP_CIPHER_CTX	*ctx = NULL;
	struct key	*pt = NULL, *dk = NULL;
	unsigned char	*buf = NULL, *h;
	size_t		 len;
	int		 n, rc = -1;

	*out = NULL;
	*cause = NULL;
	if (store_check_cost(st->st_log2n, st->st_r, st->st_p, cause) == -1)
		return -1;
	if ((pt = store_serialize(st)) == NULL)
		goto nomem;
	len = STORE_HDR + pt->k_len + STORE_TAG;
	if (len > STORE_FILE_MAX) {
		*cause = strdup("the store would be larger than 4 MiB");
		goto done;
	}
	if ((buf = malloc(len)) == NULL)
		goto nomem;
	h = buf;
	memcpy(h, STORE_MAGIC, 6);
	h[6] = STORE_VERSION;
	h[7] = (unsigned char)st->st_log2n;
	store_put32(h + 8, st->st_r);
	store_put32(h + 12, st->st_p);
	if (RAND_bytes(h + 16, STORE_SALT + STORE_IV) != 1) {
		*cause = strdup("no random bytes for the salt and IV");
		goto done;
	}
	if (store_derive(pass, h + 16, st->st_log2n, st->st_r, st->st_p, &dk,
	    cause) == -1)
		goto done;
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL ||
	    EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, STORE_IV,
	    NULL) != 1 ||
	    EVP_EncryptInit_ex(ctx, NULL, NULL, (unsigned char *)dk->k_data,
	    h + 16 + STORE_SALT) != 1 ||
	    EVP_EncryptUpdate(ctx, NULL, &n, h, STORE_HDR) != 1 ||
	    EVP_EncryptUpdate(ctx, buf + STORE_HDR, &n,
	    (unsigned char *)pt->k_data, (int)pt->k_len) != 1 ||
	    EVP_EncryptFinal_ex(ctx, buf + STORE_HDR + n, &n) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, STORE_TAG,
	    buf + STORE_HDR + pt->k_len) != 1) {
		*cause = strdup("AES-256-GCM encryption failed");
		goto done;
	}
	*out = buf;
	*outlen = len;
	buf = NULL;
	rc = 0;
	goto done;
nomem:
	*cause = strdup("out of memory");
done:
	ERR_clear_error();
	EVP_CIPHER_CTX_free(ctx);
	keystore_free(dk);
	keystore_free(pt);
	free(buf);
	return rc;
}

/*
 * The store in buf (a whole file) under pass. 0, or -1 and *cause: any
 * flaw, including a wrong passphrase, is "wrong passphrase or damaged
 * store" (the header checks say more).
 */
int
store_unseal(const unsigned char *buf, size_t len, const struct key *pass,
    struct store **out, char **cause)
{
	EVP_CIPHER_CTX	*ctx = NULL;
	struct key	*pt = NULL, *dk = NULL;
	struct store	*st = NULL;
	size_t		 ctlen;
	unsigned int	 log2n;
	uint32_t	 r, p;
	int		 n, rc = -1;

	*out = NULL;
	*cause = NULL;
	if (len < STORE_HDR + 4 + STORE_TAG || len > STORE_FILE_MAX ||
	    memcmp(buf, STORE_MAGIC, 6) != 0) {
		if (asprintf(cause, "not a key store (no %s header); %s",
		    STORE_MAGIC, store_damaged) == -1)
			*cause = NULL;
		return -1;
	}
	if (buf[6] != STORE_VERSION) {
		if (asprintf(cause, "key store version %u, expected %d; %s",
		    buf[6], STORE_VERSION, store_damaged) == -1)
			*cause = NULL;
		return -1;
	}
	log2n = buf[7];
	r = store_get32(buf + 8);
	p = store_get32(buf + 12);
	if (store_check_cost(log2n, r, p, cause) == -1)
		return -1;
	ctlen = len - STORE_HDR - STORE_TAG;
	if (store_derive(pass, buf + 16, log2n, r, p, &dk, cause) == -1)
		return -1;
	if ((pt = keystore_new(NULL, ctlen)) == NULL) {
		*cause = strdup("out of memory");
		goto done;
	}
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL ||
	    EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, STORE_IV,
	    NULL) != 1 ||
	    EVP_DecryptInit_ex(ctx, NULL, NULL, (unsigned char *)dk->k_data,
	    buf + 16 + STORE_SALT) != 1 ||
	    EVP_DecryptUpdate(ctx, NULL, &n, buf, STORE_HDR) != 1 ||
	    EVP_DecryptUpdate(ctx, (unsigned char *)pt->k_data, &n,
	    buf + STORE_HDR, (int)ctlen) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, STORE_TAG,
	    (void *)(buf + len - STORE_TAG)) != 1 ||
	    EVP_DecryptFinal_ex(ctx, (unsigned char *)pt->k_data + n,
	    &n) != 1) {
		*cause = strdup(store_damaged);
		goto done;
	}
	keystore_free(dk);
	dk = NULL;
	if ((st = store_parse((unsigned char *)pt->k_data, ctlen)) == NULL) {
		*cause = strdup(store_damaged);
		goto done;
	}
	st->st_log2n = log2n;
	st->st_r = r;
	st->st_p = p;
	*out = st;
	rc = 0;
done:
	ERR_clear_error();
	EVP_CIPHER_CTX_free(ctx);
	keystore_free(dk);
	keystore_free(pt);
	return rc;
}

/*
 * Open fd path for reading a secret file: no symlink, key file rules.
 * The fd, or -1 and *cause.
 */
static int
store_open_fd(const char *path, int any_owner, char **cause)
{
	struct stat	sb;
	int		fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK |
	    O_NOFOLLOW);
	if (fd == -1) {
		if (asprintf(cause, errno == ELOOP ? "%s: a symbolic link; "
		    "refusing to follow it" : "%s: %s", path,
		    strerror(errno)) == -1)
			*cause = NULL;
		return -1;
	}
	/* Root (the CLI) may manage a store a service user owns. */
	if (any_owner && geteuid() == 0 && fstat(fd, &sb) == 0 &&
	    S_ISREG(sb.st_mode) && (sb.st_mode & 077) == 0)
		return fd;
	if (keystore_check_fd(fd, path, cause) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Read all of fd, at most max bytes, into a wiped mapping. */
static int
store_read_all(int fd, const char *path, size_t max, struct key **out,
    char **cause)
{
	struct key	*k;
	ssize_t		 n;
	size_t		 len = 0;

	*out = NULL;
	if ((k = keystore_new(NULL, max + 1)) == NULL) {
		*cause = strdup("out of memory");
		return -1;
	}
	for (;;) {
		n = read(fd, k->k_data + len, max + 1 - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			if (asprintf(cause, "%s: %s", path,
			    strerror(errno)) == -1)
				*cause = NULL;
			keystore_free(k);
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max) {
			if (asprintf(cause, "%s: larger than %zu bytes", path,
			    max) == -1)
				*cause = NULL;
			keystore_free(k);
			return -1;
		}
	}
	k->k_data[len] = '\0';
	k->k_len = len;
	*out = k;
	return 0;
}

/*
 * Open and decrypt the store at path: owned by us or root (any owner
 * when any_owner and we are root), no group or other access. 0, or -1
 * and *cause.
 */
int
store_open(const char *path, const struct key *pass, int any_owner,
    struct store **out, char **cause)
{
	struct stat	 sb;
	unsigned char	*buf;
	size_t		 len;
	ssize_t		 n;
	int		 fd, rc;

	*out = NULL;
	*cause = NULL;
	if ((fd = store_open_fd(path, any_owner, cause)) == -1)
		return -1;
	/* Ciphertext only: plain memory, not the locked kind keys need. */
	if (fstat(fd, &sb) == -1) {
		if (asprintf(cause, "%s: %s", path, strerror(errno)) == -1)
			*cause = NULL;
		close(fd);
		return -1;
	}
	if (sb.st_size > STORE_FILE_MAX) {
		if (asprintf(cause, "%s: larger than 4 MiB; not a key store",
		    path) == -1)
			*cause = NULL;
		close(fd);
		return -1;
	}
	if ((buf = malloc((size_t)sb.st_size + 1)) == NULL) {
		*cause = strdup("out of memory");
		close(fd);
		return -1;
	}
	len = 0;
	while (len <= (size_t)sb.st_size) {
		n = read(fd, buf + len, (size_t)sb.st_size + 1 - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			if (asprintf(cause, "%s: %s", path,
			    strerror(errno)) == -1)
				*cause = NULL;
			close(fd);
			free(buf);
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	rc = store_unseal(buf, len, pass, out, cause);
	free(buf);
	return rc;
}

/*
 * A passphrase (or other one-line secret) file: key file rules, at most
 * STORE_PASS_MAX bytes, one trailing newline dropped; spaces allowed.
 */
int
store_read_secret(const char *path, struct key **out, char **cause)
{
	struct key	*k;
	int		 fd, rc;

	*out = NULL;
	*cause = NULL;
	if ((fd = store_open_fd(path, 0, cause)) == -1)
		return -1;
	rc = store_read_all(fd, path, STORE_PASS_MAX, &k, cause);
	close(fd);
	if (rc == -1)
		return -1;
	if (k->k_len > 0 && k->k_data[k->k_len - 1] == '\n')
		k->k_data[--k->k_len] = '\0';
	if (k->k_len > 0 && k->k_data[k->k_len - 1] == '\r')
		k->k_data[--k->k_len] = '\0';
	if (k->k_len == 0 || memchr(k->k_data, '\n', k->k_len) != NULL ||
	    memchr(k->k_data, '\0', k->k_len) != NULL) {
		if (asprintf(cause, "%s: %s", path, k->k_len == 0 ? "empty" :
		    "more than one line") == -1)
			*cause = NULL;
		keystore_free(k);
		return -1;
	}
	*out = k;
	return 0;
}

/*
 * Ask on the controlling terminal (/dev/tty), echo off: one line, at most
 * STORE_PASS_MAX bytes, in a wiped mapping. 0, or -1 and *cause.
 */
int
store_prompt(const char *prompt, struct key **out, char **cause)
{
	struct termios	 old, noecho;
	struct key	*k;
	size_t		 len = 0;
	ssize_t		 n;
	char		 c;
	int		 fd, restore = 0, rc = -1;

	*out = NULL;
	*cause = NULL;
	if ((fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY)) == -1) {
		if (asprintf(cause, "no terminal to ask on: /dev/tty: %s",
		    strerror(errno)) == -1)
			*cause = NULL;
		return -1;
	}
	if ((k = keystore_new(NULL, STORE_PASS_MAX + 1)) == NULL) {
		*cause = strdup("out of memory");
		goto done;
	}
	if (tcgetattr(fd, &old) == 0) {
		noecho = old;
		noecho.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
		noecho.c_lflag |= ICANON;
		if (tcsetattr(fd, TCSAFLUSH, &noecho) == 0)
			restore = 1;
	}
	if (write(fd, prompt, strlen(prompt)) == -1) {
		/* asked nowhere; reading goes on */
	}
	for (;;) {
		n = read(fd, &c, 1);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0 || c == '\n')
			break;
		if (len == STORE_PASS_MAX) {
			*cause = strdup("answer too long");
			goto done;
		}
		k->k_data[len++] = c;
	}
	c = '\0';
	if (write(fd, "\n", 1) == -1) {
		/* nothing to do */
	}
	if (len > 0 && k->k_data[len - 1] == '\r')
		len--;
	k->k_data[len] = '\0';
	k->k_len = len;
	if (len == 0) {
		*cause = strdup("empty answer");
		goto done;
	}
	*out = k;
	k = NULL;
	rc = 0;
done:
	if (restore)
		tcsetattr(fd, TCSAFLUSH, &old);
	keystore_free(k);
	close(fd);
	return rc;
}

static int
store_write_all(int fd, const unsigned char *p, size_t len)
{
	ssize_t	n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Lock the directory of path against other writers (flock on the
 * directory, so no lock file is left behind): held by the CLI from
 * before it reads the store until after it wrote it. The locked fd, or
 * -1 and *cause.
 */
int
store_lock(const char *path, char **cause)
{
	char	*copy, *dir;
	int	 fd;

	*cause = NULL;
	if ((copy = strdup(path)) == NULL) {
		*cause = strdup("out of memory");
		return -1;
	}
	dir = dirname(copy);	/* may change copy: call it once */
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1 || flock(fd, LOCK_EX) == -1) {
		if (asprintf(cause, "%s: %s", dir,
		    strerror(errno)) == -1)
			*cause = NULL;
		if (fd != -1)
			close(fd);
		fd = -1;
	}
	free(copy);
	return fd;
}

/* Temp files of base that a killed writer left in dir: removed. */
static void
store_clean(const char *dir, const char *base)
{
	DIR		*d;
	struct dirent	*de;
	char		 prefix[STORE_NAME_MAX + 300];
	int		 dfd;

	if (snprintf(prefix, sizeof(prefix), ".%s.tmp-", base) >=
	    (int)sizeof(prefix) || (d = opendir(dir)) == NULL)
		return;
	dfd = dirfd(d);
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, prefix, strlen(prefix)) == 0 &&
		    strlen(de->d_name) == strlen(prefix) + 16)
			unlinkat(dfd, de->d_name, 0);
	closedir(d);
}

/*
 * Write st to path under pass, atomically: a temp file of a unique name
 * in the same directory (O_EXCL, O_NOFOLLOW, mode 0600, the old file's
 * owner kept when root), written, fsync'd, renamed over path, then the
 * directory fsync'd. A symlink at path is refused. create: path must not
 * exist yet; else it must. A crash leaves the old or the new store (and
 * maybe a stray temp file, which nothing reads and the next write
 * removes). The caller holds store_lock(). 0, or -1 and *cause.
 */
int
store_write(const struct store *st, const char *path, const struct key *pass,
    int create, char **cause)
{
	struct stat	 sb;
	unsigned char	*buf = NULL, rnd[8];
	size_t		 len;
	char		*dcopy = NULL, *bcopy = NULL, *tmp = NULL;
	const char	*dir;
	int		 fd = -1, dfd = -1, exists, rc = -1, e;

	*cause = NULL;
	exists = lstat(path, &sb) == 0;
	if (!exists && errno != ENOENT) {
		if (asprintf(cause, "%s: %s", path, strerror(errno)) == -1)
			*cause = NULL;
		return -1;
	}
	if (exists && S_ISLNK(sb.st_mode)) {
		if (asprintf(cause, "%s: a symbolic link; refusing to follow "
		    "it", path) == -1)
			*cause = NULL;
		return -1;
	}
	if (exists && !S_ISREG(sb.st_mode)) {
		if (asprintf(cause, "%s: not a regular file", path) == -1)
			*cause = NULL;
		return -1;
	}
	if (create && exists) {
		if (asprintf(cause, "%s: already exists", path) == -1)
			*cause = NULL;
		return -1;
	}
	if (!create && !exists) {
		if (asprintf(cause, "%s: %s", path, strerror(ENOENT)) == -1)
			*cause = NULL;
		return -1;
	}
	if (store_seal(st, pass, &buf, &len, cause) == -1)
		return -1;
	if ((dcopy = strdup(path)) == NULL || (bcopy = strdup(path)) == NULL ||
	    RAND_bytes(rnd, sizeof(rnd)) != 1)
		goto nomem;
	dir = dirname(dcopy);
	store_clean(dir, basename(bcopy));
	if (asprintf(&tmp, "%s/.%s.tmp-%02x%02x%02x%02x%02x%02x%02x%02x",
	    dir, basename(bcopy), rnd[0], rnd[1], rnd[2], rnd[3], rnd[4],
	    rnd[5], rnd[6], rnd[7]) == -1) {
		tmp = NULL;
		goto nomem;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0600);
	if (fd == -1) {
		if (asprintf(cause, "%s: %s", tmp, strerror(errno)) == -1)
			*cause = NULL;
		free(tmp);
		tmp = NULL;
		goto done;
	}
	if (exists && geteuid() == 0 && (sb.st_uid != 0 || sb.st_gid != 0) &&
	    fchown(fd, sb.st_uid, sb.st_gid) == -1)
		goto syserr;
	if (fchmod(fd, 0600) == -1 || store_write_all(fd, buf, len) == -1 ||
	    fsync(fd) == -1)
		goto syserr;
	if (close(fd) == -1) {
		fd = -1;
		goto syserr;
	}
	fd = -1;
	/* A new store never replaces one that appeared meanwhile. */
	if ((exists ? rename(tmp, path) : renameat2(AT_FDCWD, tmp, AT_FDCWD,
	    path, RENAME_NOREPLACE)) == -1)
		goto syserr;
	free(tmp);
	tmp = NULL;
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 ||
	    fsync(dfd) == -1) {
		if (asprintf(cause, "%s: the store was written, but the "
		    "directory's fsync failed (a crash now may undo it): %s", dir,
		    strerror(errno)) == -1)
			*cause = NULL;
		goto done;
	}
	rc = 0;
	goto done;
syserr:
	e = errno;
	if (asprintf(cause, "%s: %s", tmp, strerror(e)) == -1)
		*cause = NULL;
	goto done;
nomem:
	*cause = strdup("out of memory");
done:
	if (fd != -1)
		close(fd);
	if (dfd != -1)
		close(dfd);
	if (tmp != NULL) {
		unlink(tmp);
		free(tmp);
	}
	free(dcopy);
	free(bcopy);
	free(buf);
	return rc;
}

/* ---- The daemon's side: a tenant's key_store + key_name. ---- */

/* The store's passphrase, from the first of the configured ways. */
static int
store_passphrase(struct keyload *kl, const char *path, struct key **pass,
    char **cause)
{
	struct config	*cf = kl->kl_conf;
	char		*p, *why = NULL;
	int		 rc;

	*pass = NULL;
	if (cf->cf_passphrase_file != NULL) {
		if (store_read_secret(cf->cf_passphrase_file, pass, &why) == 0)
			return 0;
		if (asprintf(cause, "key_store_passphrase_file %s", why != NULL ?
		    why : "out of memory") == -1)
			*cause = NULL;
		free(why);
		return -1;
	}
	if (cf->cf_passphrase_credential != NULL) {
		if (keysource_credential_path(cf->cf_passphrase_credential, &p,
		    &why) == -1) {
			if (asprintf(cause, "key_store_passphrase_%s", why !=
			    NULL ? why : "credential: out of memory") == -1)
				*cause = NULL;
			free(why);
			return -1;
		}
		rc = store_read_secret(p, pass, &why);
		free(p);
		if (rc == 0)
			return 0;
		if (asprintf(cause, "key_store_passphrase_credential %s: %s",
		    cf->cf_passphrase_credential, why != NULL ? why :
		    "out of memory") == -1)
			*cause = NULL;
		free(why);
		return -1;
	}
	if (kl->kl_prompt && isatty(STDIN_FILENO)) {
		if (asprintf(&p, "Passphrase for key store %s: ", path) == -1) {
			*cause = strdup("out of memory");
			return -1;
		}
		rc = store_prompt(p, pass, &why);
		free(p);
		if (rc == 0)
			return 0;
		if (asprintf(cause, "key_store %s: passphrase: %s", path,
		    why != NULL ? why : "out of memory") == -1)
			*cause = NULL;
		free(why);
		return -1;
	}
	if (asprintf(cause, "key_store %s: no passphrase: set "
	    "key_store_passphrase_file or key_store_passphrase_credential (a "
	    "reload cannot ask on a terminal)", path) == -1)
		*cause = NULL;
	return -1;
}

/* The store at path, opened once per keysource_load. */
static struct store *
store_cached(struct keyload *kl, const char *path, char **cause)
{
	struct store_cache	*sc;
	struct key		*pass;
	struct store		*st;
	char			*why;
	int			 rc;

	for (sc = kl->kl_stores; sc != NULL; sc = sc->sc_next)
		if (strcmp(sc->sc_path, path) == 0)
			return sc->sc_store;
	if (store_passphrase(kl, path, &pass, cause) == -1)
		return NULL;
	if (store_open(path, pass, 0, &st, &why) == -1) {
		keystore_free(pass);
		/* Messages from the file layer begin with the path already. */
		if (why == NULL)
			rc = asprintf(cause, "key_store %s: out of memory", path);
		else if (strncmp(why, path, strlen(path)) == 0)
			rc = asprintf(cause, "key_store %s", why);
		else
			rc = asprintf(cause, "key_store %s: %s", path, why);
		if (rc == -1)
			*cause = NULL;
		free(why);
		return NULL;
	}
	keystore_free(pass);
	if ((sc = calloc(1, sizeof(*sc))) == NULL ||
	    (sc->sc_path = strdup(path)) == NULL) {
		free(sc);
		store_free(st);
		*cause = strdup("out of memory");
		return NULL;
	}
	sc->sc_store = st;
	sc->sc_next = kl->kl_stores;
	kl->kl_stores = sc;
	return st;
}

/*
 * A tenant's key_store + key_name: the key, and from the entry the key
 * ID (when the tenant has none; one that differs is an error), the type
 * (a key_type line that contradicts it is an error) and the expiry (the
 * tenant's key_expires, when set, wins).
 */
int
store_key_load(struct keyload *kl, struct tenant *tn, char **cause)
{
	struct store		*st;
	struct store_entry	*se;
	const char		*path = tn->tn_key_store;

	*cause = NULL;
	if ((st = store_cached(kl, path, cause)) == NULL)
		return -1;
	if ((se = store_find(st, tn->tn_key_name)) == NULL) {
		if (asprintf(cause, "key_name %s: no such key in %s",
		    tn->tn_key_name, path) == -1)
			*cause = NULL;
		return -1;
	}
	if (tn->tn_key_id != NULL && strcmp(tn->tn_key_id, se->se_key_id)) {
		if (asprintf(cause, "key_name %s: key_id %s differs from the "
		    "key ID %s in %s; drop key_id to use the store's",
		    tn->tn_key_name, tn->tn_key_id, se->se_key_id, path) == -1)
			*cause = NULL;
		return -1;
	}
	if (tn->tn_key_type_line != 0 && tn->tn_key_type != se->se_type) {
		if (asprintf(cause, "key_name %s: key_type %s contradicts the "
		    "type %s in %s", tn->tn_key_name,
		    tn->tn_key_type == KEY_STANDARD ? "standard" : "advanced",
		    se->se_type == KEY_STANDARD ? "standard" : "advanced",
		    path) == -1)
			*cause = NULL;
		return -1;
	}
	if (tn->tn_key_id == NULL &&
	    (tn->tn_key_id = strdup(se->se_key_id)) == NULL) {
		*cause = strdup("out of memory");
		return -1;
	}
	tn->tn_key_type = se->se_type;
	if (tn->tn_key_expires_text == NULL && se->se_expires[0] != '\0')
		tn->tn_key_expires = config_parse_date(se->se_expires);
	keystore_free(tn->tn_key);
	if ((tn->tn_key = keystore_new(se->se_key->k_data,
	    se->se_key->k_len)) == NULL) {
		*cause = strdup("out of memory");
		return -1;
	}
	return 0;
}

/* The key of entry name in the store at path (a copy, in *k). */
int
store_entry_key(struct keyload *kl, const char *path, const char *name,
    struct key **k, char **cause)
{
	struct store		*st;
	struct store_entry	*se;

	*cause = NULL;
	if ((st = store_cached(kl, path, cause)) == NULL)
		return -1;
	if ((se = store_find(st, name)) == NULL) {
		if (asprintf(cause, "%s: no such key in %s", name, path) == -1)
			*cause = NULL;
		return -1;
	}
	keystore_free(*k);
	if ((*k = keystore_new(se->se_key->k_data, se->se_key->k_len)) ==
	    NULL) {
		*cause = strdup("out of memory");
		return -1;
	}
	return 0;
}

void
store_cache_free(struct keyload *kl)
{
	struct store_cache	*sc, *next;

	for (sc = kl->kl_stores; sc != NULL; sc = next) {
		next = sc->sc_next;
		store_free(sc->sc_store);
		free(sc->sc_path);
		free(sc);
	}
	kl->kl_stores = NULL;
}
