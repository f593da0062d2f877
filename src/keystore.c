/*
 * keystore.c: where API keys come from. A key file is one line; it must be
 * a regular file owned by us or root with no group or other permissions.
 * Each key lives in its own anonymous mapping, locked in memory when the
 * memlock limit allows and excluded from core dumps, and is wiped when
 * freed. (OpenSSL's secure heap is not used: TLS handshakes draw on it
 * too, and a small one runs dry under load.) A client certificate's key
 * (mutual TLS) is read by libcurl itself; its file gets the same checks,
 * and OpenSSL checks here that it matches the certificate.
 */
#include "config.h"

#include <sys/mman.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "xdrproxy.h"

#define KEY_MAX		4096

/* A zeroed mapping of at least len bytes for a key; sets k_size. */
static char *
keystore_alloc(struct key *k, size_t len)
{
	long	 page = sysconf(_SC_PAGESIZE);
	void	*p;

	if (page <= 0)
		page = 4096;
	k->k_size = (len + (size_t)page - 1) / (size_t)page * (size_t)page;
	p = mmap(NULL, k->k_size, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	k->k_locked = mlock(p, k->k_size) == 0;
#ifdef MADV_DONTDUMP
	madvise(p, k->k_size, MADV_DONTDUMP);
#endif
	return p;
}

/*
 * The rules for a file holding a secret, on an open fd: a regular file
 * owned by us or root, no group or other permissions. 0, or -1 and *cause.
 */
int
keystore_check_fd(int fd, const char *path, char **cause)
{
	struct stat	 st;

	if (fstat(fd, &st) == -1) {
		if (asprintf(cause, "%s: %s", path, strerror(errno)) == -1)
			*cause = NULL;
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		if (asprintf(cause, "%s: not a regular file", path) == -1)
			*cause = NULL;
		return -1;
	}
	/* Or [proxy] user's, when started as root to drop to it. */
	if (st.st_uid != geteuid() && st.st_uid != 0 && !priv_owns(st.st_uid)) {
		if (asprintf(cause, "%s: owned by uid %u; must be owned by "
		    "uid %u (the user running xdrproxy) or root", path,
		    (unsigned)st.st_uid, (unsigned)geteuid()) == -1)
			*cause = NULL;
		return -1;
	}
	if (st.st_mode & (S_IRGRP | S_IWGRP | S_IROTH | S_IWOTH)) {
		if (asprintf(cause, "%s: mode %04o lets group or others read "
		    "or write it; chmod 600 it", path,
		    (unsigned)(st.st_mode & 07777)) == -1)
			*cause = NULL;
		return -1;
	}
	return 0;
}

/*
 * A key as one line of text: one trailing \n or \r\n is dropped from
 * *len, and what is left must be printable characters without spaces.
 */
enum keyline
keystore_line(const char *buf, size_t *len)
{
	size_t	 i, n = *len;

	if (n > 0 && buf[n - 1] == '\n')
		n--;
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	*len = n;
	if (n == 0)
		return KEYLINE_EMPTY;
	if (memchr(buf, '\n', n) != NULL)
		return KEYLINE_LINES;
	for (i = 0; i < n; i++)
		if (buf[i] <= 0x20 || buf[i] >= 0x7f)
			return KEYLINE_BAD;
	return KEYLINE_OK;
}

/*
 * Read and check the key file at path. On success *out holds the key and 0
 * is returned; otherwise -1 and *cause says why (never quoting the key).
 */
int
keystore_load(const char *path, struct key **out, char **cause)
{
	char		 buf[KEY_MAX + 2];
	struct key	*k = NULL;
	ssize_t		 n;
	size_t		 len = 0;
	enum keyline	 line;
	int		 fd, rc = -1;

	*out = NULL;
	*cause = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd == -1) {
		if (asprintf(cause, "%s: %s", path, strerror(errno)) == -1)
			*cause = NULL;
		return -1;
	}
	if (keystore_check_fd(fd, path, cause) == -1)
		goto done;
	for (;;) {
		n = read(fd, buf + len, sizeof(buf) - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			if (asprintf(cause, "%s: %s", path,
			    strerror(errno)) == -1)
				*cause = NULL;
			goto done;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == sizeof(buf))
			break;
	}
	if (len > KEY_MAX) {
		if (asprintf(cause, "%s: larger than %d bytes; the file must "
		    "hold the API key on one line", path, KEY_MAX) == -1)
			*cause = NULL;
		goto done;
	}
	if ((line = keystore_line(buf, &len)) != KEYLINE_OK) {
		if (asprintf(cause, line == KEYLINE_EMPTY ? "%s: empty" :
		    "%s: the key must be one line of printable characters "
		    "without spaces", path) == -1)
			*cause = NULL;
		goto done;
	}
	if ((k = calloc(1, sizeof(*k))) == NULL ||
	    (k->k_data = keystore_alloc(k, len + 1)) == NULL) {
		if (asprintf(cause, "%s: out of memory", path) == -1)
			*cause = NULL;
		free(k);
		k = NULL;
		goto done;
	}
	memcpy(k->k_data, buf, len);
	k->k_len = len;
	*out = k;
	rc = 0;
done:
	OPENSSL_cleanse(buf, sizeof(buf));
	close(fd);
	return rc;
}

/*
 * A key (or any secret buffer) of len bytes in its own locked, wiped
 * mapping, holding a copy of data when it is not NULL (else zeroed); one
 * byte more is kept zero, so the data is also a C string. NULL when out
 * of memory.
 */
struct key *
keystore_new(const char *data, size_t len)
{
	struct key	*k;

	if ((k = calloc(1, sizeof(*k))) == NULL)
		return NULL;
	if ((k->k_data = keystore_alloc(k, len + 1)) == NULL) {
		free(k);
		return NULL;
	}
	if (data != NULL)
		memcpy(k->k_data, data, len);
	k->k_len = len;
	return k;
}

void
keystore_free(struct key *k)
{
	if (k == NULL)
		return;
	pkcs11_key_free(k->k_p11);
	if (k->k_data != NULL) {
		OPENSSL_cleanse(k->k_data, k->k_size);
		if (k->k_locked)
			munlock(k->k_data, k->k_size);
		munmap(k->k_data, k->k_size);
	}
	free(k);
}

/* PEM passphrase callback: refuse, and note that one was asked for. */
static int
keystore_no_passphrase(char *buf, int size, int rwflag, void *arg)
{
	*(int *)arg = 1;
	return -1;
}

/*
 * A client certificate (PEM) and its unencrypted key: the key file is
 * checked like a key file, both must parse and the key must match the
 * certificate. On failure, -1 with *cause, and *bad_key 1 if the key file
 * is at fault (0: the certificate). Never quotes the key.
 */
int
keystore_check_client(const char *cert, const char *key, int *bad_key,
    char **cause)
{
	X509		*x = NULL;
	EVP_PKEY	*pk = NULL;
	BIO		*bio = NULL;
	int		 fd, asked = 0, rc = -1;

	*cause = NULL;
	*bad_key = 0;
	if ((bio = BIO_new_file(cert, "r")) == NULL) {
		if (asprintf(cause, "%s: %s", cert, strerror(errno)) == -1)
			*cause = NULL;
		goto done;
	}
	if ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) == NULL) {
		if (asprintf(cause, "%s: no PEM certificate in it", cert) == -1)
			*cause = NULL;
		goto done;
	}
	BIO_free(bio);
	bio = NULL;
	*bad_key = 1;
	fd = open(key, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd == -1) {
		if (asprintf(cause, "%s: %s", key, strerror(errno)) == -1)
			*cause = NULL;
		goto done;
	}
	if (keystore_check_fd(fd, key, cause) == -1 ||
	    (bio = BIO_new_fd(fd, BIO_CLOSE)) == NULL) {
		close(fd);
		if (*cause == NULL && asprintf(cause, "%s: out of memory",
		    key) == -1)
			*cause = NULL;
		goto done;
	}
	if ((pk = PEM_read_bio_PrivateKey(bio, NULL, keystore_no_passphrase,
	    &asked)) == NULL) {
		if (asprintf(cause, asked ? "%s: the key is encrypted; "
		    "xdrproxy needs it unencrypted (its file mode protects it)" :
		    "%s: no PEM private key in it", key) == -1)
			*cause = NULL;
		goto done;
	}
	if (X509_check_private_key(x, pk) != 1) {
		if (asprintf(cause, "%s: does not match the certificate in %s",
		    key, cert) == -1)
			*cause = NULL;
		goto done;
	}
	rc = 0;
done:
	ERR_clear_error();
	EVP_PKEY_free(pk);
	X509_free(x);
	BIO_free(bio);
	return rc;
}
