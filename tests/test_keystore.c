/*
 * test_keystore.c: key files are refused unless they are a regular file,
 * owned by us or root, without group/other access, one non-empty line;
 * no error text ever quotes the key.
 */
#include "config.h"

#include <sys/stat.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xdrproxy.h"
#include "unit.h"

#define SECRET	"S3cr3tK3yValue0123456789abcdef"

static char	dir[] = "/tmp/test_keystore.XXXXXX";

static const char *
keyfile(const char *name, const char *content, mode_t mode)
{
	static char	 path[256];
	FILE		*f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	unlink(path);
	f = fopen(path, "w");
	fputs(content, f);
	fclose(f);
	chmod(path, mode);
	return path;
}

/* Load path; on failure return the cause (checked never to hold SECRET). */
static char *
load(const char *path, struct key **k)
{
	char	*cause = NULL;

	*k = NULL;
	if (keystore_load(path, k, &cause) == 0) {
		CHECK(cause == NULL);
		return NULL;
	}
	CHECK(cause != NULL);
	CHECK(*k == NULL);
	if (cause != NULL) {
		CHECK(strstr(cause, SECRET) == NULL);
		CHECK(strstr(cause, path) != NULL);
	}
	return cause;
}

static void
expect_ok(const char *path, const char *want)
{
	struct key	*k;
	char		*cause = load(path, &k);

	CHECK(cause == NULL);
	free(cause);
	if (k == NULL)
		return;
	CHECK(k->k_len == strlen(want));
	CHECK(memcmp(k->k_data, want, k->k_len) == 0);
	keystore_free(k);
}

static void
expect_error(const char *path, const char *fragment)
{
	struct key	*k;
	char		*cause = load(path, &k);

	CHECK(cause != NULL && strstr(cause, fragment) != NULL);
	if (cause != NULL && strstr(cause, fragment) == NULL)
		fprintf(stderr, "  cause: %s\n  wanted: %s\n", cause, fragment);
	free(cause);
	keystore_free(k);
}

int
main(void)
{
	char	 path[300];

	if (mkdtemp(dir) == NULL)
		return 99;
	expect_ok(keyfile("a", SECRET "\n", 0600), SECRET);
	expect_ok(keyfile("b", SECRET, 0400), SECRET);
	expect_ok(keyfile("c", SECRET "\r\n", 0600), SECRET);
	expect_ok(keyfile("c2", SECRET "\n", 0700), SECRET);
	expect_error(keyfile("d", SECRET "\n", 0644), "group or others");
	expect_error(keyfile("e", SECRET "\n", 0640), "mode 0640");
	expect_error(keyfile("f", SECRET "\n", 0604), "group or others");
	expect_error(keyfile("g", SECRET "\n", 0602), "group or others");
	expect_error(keyfile("h", SECRET "\n", 0620), "group or others");
	expect_error(keyfile("i", "", 0600), "empty");
	expect_error(keyfile("j", "\n", 0600), "empty");
	expect_error(keyfile("k", SECRET "\n" SECRET "\n", 0600),
	    "one line");
	expect_error(keyfile("l", "abc def\n", 0600), "one line");
	expect_error(keyfile("m", "\n" SECRET, 0600), "one line");
	snprintf(path, sizeof(path), "%s/missing", dir);
	expect_error(path, "No such file");
	snprintf(path, sizeof(path), "%s/sub", dir);
	mkdir(path, 0700);
	expect_error(path, "not a regular file");
	rmdir(path);
	snprintf(path, sizeof(path), "%s/fifo", dir);
	mkfifo(path, 0600);
	expect_error(path, "not a regular file");
	unlink(path);
	if (geteuid() == 0) {
		const char *p = keyfile("n", SECRET "\n", 0600);

		CHECK(chown(p, 12345, 12345) == 0);
		expect_error(p, "owned by uid 12345");
	} else
		printf("test_keystore: skipping the owner check: it needs "
		    "root to chown a file to another user\n");
	snprintf(path, sizeof(path), "rm -rf %s", dir);
	if (system(path) != 0)
		return 99;
	return unit_exit("test_keystore");
}
