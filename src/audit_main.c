/*
 * audit_main.c: xdrproxy-audit(1), the auditor's command line. `verify`
 * checks the hash chain of audit files given in order (rotated ones
 * first, .gz read as is) and prints "OK: N records, seq A..B", or names
 * the first problem as FILE:LINE. Exit 0 good, 1 a problem, 2 usage.
 */
#include "config.h"

#include <sys/stat.h>

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xdrproxy.h"

#define AUDIT_KEY_MAX	(64 * 1024)

static const char usage_text[] =
"usage: xdrproxy-audit verify [--hmac-key-file F] [--checkpoint SEQ:HASH] "
"FILE...\n"
"  verify                     check the chain of FILE... (oldest first)\n"
"options:\n"
"  --hmac-key-file F          the log's audit_hmac_key_file\n"
"  --checkpoint SEQ:HASH      a checkpoint from xdrproxy's log: the record\n"
"                             with seq SEQ must exist and hash to HASH\n"
"  -h, --help                 this text\n";

static __attribute__((noreturn)) void
usage(const char *why)
{
	if (why != NULL)
		fprintf(stderr, "xdrproxy-audit: %s\n", why);
	fputs(usage_text, stderr);
	exit(2);
}

/*
 * The HMAC key: the file's one line, as xdrproxy reads key files, from
 * a file that passes the key-file rules (root may read one of any owner
 * that has no group or other access, as xdrproxy-keys does).
 */
static struct key *
read_hmac_key(const char *path)
{
	struct stat	 st;
	struct key	*k;
	char		*why = NULL;
	ssize_t		 n;
	size_t		 len = 0;
	int		 fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd == -1)
		errx(1, "%s: %s", path, strerror(errno));
	if (!(geteuid() == 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    (st.st_mode & 077) == 0) && keystore_check_fd(fd, path, &why) == -1)
		errx(1, "%s", why != NULL ? why : "out of memory");
	if ((k = keystore_new(NULL, AUDIT_KEY_MAX + 1)) == NULL)
		errx(1, "out of memory");
	for (;;) {
		n = read(fd, k->k_data + len, AUDIT_KEY_MAX + 1 - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			keystore_free(k);
			errx(1, "%s: %s", path, strerror(errno));
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > AUDIT_KEY_MAX) {
			keystore_free(k);
			errx(1, "%s: larger than %d bytes", path, AUDIT_KEY_MAX);
		}
	}
	close(fd);
	/* The daemon's rule for key files (keystore_load), to the byte. */
	switch (keystore_line(k->k_data, &len)) {
	case KEYLINE_OK:
		break;
	case KEYLINE_EMPTY:
		keystore_free(k);
		errx(1, "%s: empty", path);
	default:
		keystore_free(k);
		errx(1, "%s: not one line of visible ASCII (as xdrproxy reads "
		    "key files)", path);
	}
	k->k_len = len;
	return k;
}

/* SEQ:HASH, a positive seq and 64 lowercase hex digits. */
static void
parse_checkpoint(const char *arg, uint64_t *seq, unsigned char *hash)
{
	const char	*colon;
	char		*end;
	unsigned long long v;

	if ((colon = strchr(arg, ':')) == NULL || arg[0] < '0' ||
	    arg[0] > '9')
		usage("--checkpoint: SEQ:HASH, as xdrproxy logs it");
	errno = 0;
	v = strtoull(arg, &end, 10);
	if (end != colon || errno != 0 || v == 0 || v >= INT64_MAX)
		usage("--checkpoint: SEQ must be a positive integer");
	if (averify_hex(colon + 1, strlen(colon + 1), hash) == -1)
		usage("--checkpoint: HASH must be 64 lowercase hex digits");
	*seq = v;
}

static int
verify(int nfiles, char **files, const char *keyfile, const char *cp)
{
	struct averify	*v;
	struct key	*k = NULL;
	unsigned char	 cphash[AVERIFY_HASH_LEN];
	uint64_t	 cpseq = 0, n, first, last;
	const char	*note;
	size_t		 i;
	int		 f;

	if (cp != NULL)
		parse_checkpoint(cp, &cpseq, cphash);
	if (keyfile != NULL)
		k = read_hmac_key(keyfile);
	v = averify_new(k != NULL ? (unsigned char *)k->k_data : NULL,
	    k != NULL ? k->k_len : 0);
	keystore_free(k);
	if (v == NULL)
		errx(1, "cannot set up SHA-256/HMAC (OpenSSL) or out of memory");
	if (cp != NULL)
		averify_checkpoint(v, cpseq, cphash);
	for (f = 0; f < nfiles; f++)
		if (averify_path(v, files[f]) == -1)
			break;
	if (f < nfiles || averify_end(v) == -1) {
		fprintf(stderr, "xdrproxy-audit: %s\n", averify_error(v));
		averify_free(v);
		return 1;
	}
	for (i = 0; (note = averify_note(v, i)) != NULL; i++)
		printf("note: %s\n", note);
	if (cp == NULL)
		printf("note: no --checkpoint: records removed from the end "
		    "cannot be detected\n");
	averify_range(v, &n, &first, &last);
	printf("OK: %" PRIu64 " records, seq %" PRIu64 "..%" PRIu64 "\n", n,
	    first, last);
	averify_free(v);
	if (fflush(stdout) == EOF || ferror(stdout))
		errx(1, "stdout: %s", strerror(errno));
	return 0;
}

int
main(int argc, char **argv)
{
	enum { O_KEY = 256, O_CHECKPOINT };
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "hmac-key-file", required_argument, NULL, O_KEY },
		{ "checkpoint", required_argument, NULL, O_CHECKPOINT },
		{ NULL, 0, NULL, 0 }
	};
	const char	*keyfile = NULL, *cp = NULL;
	int		 ch;

	/* It may hold the audit HMAC key: no core dump, no ptrace. */
	priv_harden();
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case O_KEY:
			if (keyfile != NULL)
				usage("--hmac-key-file given twice");
			keyfile = optarg;
			break;
		case O_CHECKPOINT:
			if (cp != NULL)
				usage("--checkpoint given twice");
			cp = optarg;
			break;
		default:
			usage(NULL);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0)
		usage("no command");
	if (strcmp(argv[0], "verify") != 0) {
		fprintf(stderr, "xdrproxy-audit: unknown command: %s\n",
		    argv[0]);
		usage(NULL);
	}
	if (argc == 1)
		usage("verify: no files");
	return verify(argc - 1, argv + 1, keyfile, cp);
}
