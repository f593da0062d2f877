/*
 * fuzz_config.c: libFuzzer target for the configuration file. The input is
 * a whole file for config_load(): inih's parsing, then xdrproxy's settings,
 * defaults and validation (none of which opens a key file or a socket).
 */
#include "config.h"

#include <sys/mman.h>

#include <err.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "xdrproxy.h"

int	 LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* One memory file per process, rewritten for each input. */
static int	 fuzz_fd = -1;
static char	 fuzz_path[64];

static void
fuzz_write(const uint8_t *data, size_t size)
{
	ssize_t	 n;
	size_t	 off = 0;

	if (fuzz_fd == -1) {
		if ((fuzz_fd = memfd_create("fuzz_config", MFD_CLOEXEC)) == -1)
			err(1, "memfd_create");
		snprintf(fuzz_path, sizeof(fuzz_path), "/proc/self/fd/%d",
		    fuzz_fd);
	}
	if (ftruncate(fuzz_fd, 0) == -1)
		err(1, "ftruncate");
	while (off < size) {
		if ((n = pwrite(fuzz_fd, data + off, size - off,
		    (off_t)off)) == -1)
			err(1, "pwrite");
		off += (size_t)n;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config	*cf;
	char		*cause = NULL;

	fuzz_write(data, size);
	cf = config_load(fuzz_path, &cause);
	/* The contract: a configuration, or NULL and a reason. */
	if ((cf == NULL) == (cause == NULL))
		abort();
	config_free(cf);
	free(cause);
	return 0;
}
