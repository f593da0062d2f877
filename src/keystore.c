/*
 * keystore.c: where API keys come from. A key file is one line; it must be
 * a regular file owned by us or root with no group or other permissions.
 * Keys live in OpenSSL's secure heap (locked, kept out of core dumps) when
 * it is available, and are wiped when freed.
 */
#include "config.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "xdrproxy.h"

#define KEY_MAX		4096

static int	keystore_secure;

/* Set up the secure heap; returns 0, or -1 if keys go to the normal heap. */
int
keystore_init(void)
{
	if (CRYPTO_secure_malloc_initialized())
		keystore_secure = 1;
	else
		keystore_secure = CRYPTO_secure_malloc_init(64 * 1024, 32) != 0;
	return keystore_secure ? 0 : -1;
}

void
keystore_shutdown(void)
{
	if (keystore_secure)
		CRYPTO_secure_malloc_done();
	keystore_secure = 0;
}

static void *
keystore_alloc(size_t len)
{
	if (keystore_secure)
		return OPENSSL_secure_zalloc(len);
	return OPENSSL_zalloc(len);
}

static void
keystore_wipe_free(void *p, size_t len)
{
	if (p == NULL)
		return;
	if (keystore_secure)
		OPENSSL_secure_clear_free(p, len);
	else
		OPENSSL_clear_free(p, len);
}

/*
 * Read and check the key file at path. On success *out holds the key and 0
 * is returned; otherwise -1 and *cause says why (never quoting the key).
 */
int
keystore_load(const char *path, struct key **out, char **cause)
{
	char		 buf[KEY_MAX + 2];
	struct stat	 st;
	struct key	*k = NULL;
	ssize_t		 n;
	size_t		 len = 0, i;
	int		 fd, rc = -1;

	*out = NULL;
	*cause = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd == -1) {
		if (asprintf(cause, "%s: %s", path, strerror(errno)) == -1)
			*cause = NULL;
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		if (asprintf(cause, "%s: %s", path, strerror(errno)) == -1)
			*cause = NULL;
		goto done;
	}
	if (!S_ISREG(st.st_mode)) {
		if (asprintf(cause, "%s: not a regular file", path) == -1)
			*cause = NULL;
		goto done;
	}
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		if (asprintf(cause, "%s: owned by uid %u; must be owned by "
		    "uid %u (the user running xdrproxy) or root", path,
		    (unsigned)st.st_uid, (unsigned)geteuid()) == -1)
			*cause = NULL;
		goto done;
	}
	if (st.st_mode & (S_IRGRP | S_IWGRP | S_IROTH | S_IWOTH)) {
		if (asprintf(cause, "%s: mode %04o lets group or others read "
		    "or write it; chmod 600 it", path,
		    (unsigned)(st.st_mode & 07777)) == -1)
			*cause = NULL;
		goto done;
	}
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
	/* One line: drop a single trailing \n or \r\n. */
	if (len > 0 && buf[len - 1] == '\n')
		len--;
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	if (len == 0) {
		if (asprintf(cause, "%s: empty", path) == -1)
			*cause = NULL;
		goto done;
	}
	for (i = 0; i < len; i++) {
		if (buf[i] <= 0x20 || buf[i] >= 0x7f) {
			if (asprintf(cause, "%s: the key must be one line of "
			    "printable characters without spaces", path) == -1)
				*cause = NULL;
			goto done;
		}
	}
	if ((k = calloc(1, sizeof(*k))) == NULL ||
	    (k->k_data = keystore_alloc(len + 1)) == NULL) {
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

void
keystore_free(struct key *k)
{
	if (k == NULL)
		return;
	keystore_wipe_free(k->k_data, k->k_len + 1);
	free(k);
}
