/*
 * fuzz_keyfile.c: libFuzzer target for the key-file reader. The input is
 * written to a 0600 file of ours in a private directory and loaded with
 * keystore_load(): size limit, line endings, the printable-bytes check.
 */
#include "config.h"

#include <err.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xdrproxy.h"

int	 LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static char	 fuzz_dir[256];
static char	 fuzz_path[300];

static void
fuzz_cleanup(void)
{
	unlink(fuzz_path);
	rmdir(fuzz_dir);
}

static void
fuzz_write(const uint8_t *data, size_t size)
{
	const char	*tmp;
	ssize_t		 n;
	size_t		 off = 0;
	int		 fd;

	if (fuzz_dir[0] == '\0') {
		if ((tmp = getenv("TMPDIR")) == NULL || *tmp == '\0')
			tmp = "/tmp";
		snprintf(fuzz_dir, sizeof(fuzz_dir), "%s/fuzz_keyfile.XXXXXX",
		    tmp);
		if (mkdtemp(fuzz_dir) == NULL)
			err(1, "mkdtemp %s", fuzz_dir);
		snprintf(fuzz_path, sizeof(fuzz_path), "%s/key", fuzz_dir);
		atexit(fuzz_cleanup);
	}
	fd = open(fuzz_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd == -1)
		err(1, "%s", fuzz_path);
	while (off < size) {
		if ((n = write(fd, data + off, size - off)) == -1)
			err(1, "%s", fuzz_path);
		off += (size_t)n;
	}
	close(fd);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct key	*k = NULL;
	char		*cause = NULL;
	size_t		 i;
	int		 rc;

	fuzz_write(data, size);
	rc = keystore_load(fuzz_path, &k, &cause);
	if (rc == 0) {
		/* A key: one non-empty line of visible ASCII, from the file. */
		if (k == NULL || cause != NULL || k->k_len == 0 ||
		    k->k_len > size || k->k_len >= k->k_size ||
		    memcmp(k->k_data, data, k->k_len) != 0)
			abort();
		for (i = 0; i < k->k_len; i++)
			if ((unsigned char)k->k_data[i] <= 0x20 ||
			    (unsigned char)k->k_data[i] >= 0x7f)
				abort();
	} else if (rc != -1 || k != NULL || cause == NULL)
		abort();
	keystore_free(k);
	free(cause);
	return 0;
}
