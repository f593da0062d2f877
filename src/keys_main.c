/*
 * keys_main.c: xdrproxy-keys(1), the key store's command line, after
 * elasticsearch-keystore: create, add, list, remove, passwd, show-id.
 * Passphrases come from a file or a prompt on /dev/tty, keys from stdin
 * or a prompt; never from argv. Errors exit 1, usage errors 2.
 */
#include "config.h"


#include <err.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "xdrproxy.h"

static const char usage_text[] =
"usage: xdrproxy-keys -f STORE [--passphrase-file F] COMMAND [ARGS]\n"
"commands:\n"
"  create                     a new, empty store (passphrase asked twice)\n"
"  add NAME --key-id ID [--type advanced|standard] [--expires YYYY-MM-DD]\n"
"      [--force]              add a key, read from stdin (one line) or asked\n"
"  list                       name, key ID, type, expiry (never the key)\n"
"  remove NAME                remove a key\n"
"  passwd [--new-passphrase-file F]  change the passphrase\n"
"  show-id NAME               print the key ID of NAME\n"
"options:\n"
"  -f, --file STORE           the key store\n"
"  --passphrase-file F        the passphrase from F, not a prompt\n"
"  -h, --help                 this text\n";

static __attribute__((noreturn)) void
usage(const char *why)
{
	if (why != NULL)
		fprintf(stderr, "xdrproxy-keys: %s\n", why);
	fputs(usage_text, stderr);
	exit(2);
}

/* A passphrase: from file, or asked (twice when confirm). */
static struct key *
passphrase(const char *file, const char *what, int confirm)
{
	struct key	*a, *b;
	char		*why, prompt[128];

	if (file != NULL) {
		if (store_read_secret(file, &a, &why) == -1)
			errx(1, "%s", why != NULL ? why : "out of memory");
		return a;
	}
	snprintf(prompt, sizeof(prompt), "%s: ", what);
	if (store_prompt(prompt, &a, &why) == -1)
		errx(1, "%s: %s", what, why != NULL ? why : "out of memory");
	if (!confirm)
		return a;
	snprintf(prompt, sizeof(prompt), "%s (again): ", what);
	if (store_prompt(prompt, &b, &why) == -1)
		errx(1, "%s: %s", what, why != NULL ? why : "out of memory");
	if (a->k_len != b->k_len || CRYPTO_memcmp(a->k_data, b->k_data,
	    a->k_len) != 0) {
		keystore_free(a);
		keystore_free(b);
		errx(1, "the passphrases differ");
	}
	keystore_free(b);
	return a;
}

/* The key for add: one line from stdin, or asked when stdin is a tty. */
static struct key *
read_key(const char *name)
{
	struct key	*k;
	char		*why, prompt[128];
	ssize_t		 n;
	size_t		 len = 0, cap = 4098;

	if (isatty(STDIN_FILENO)) {
		snprintf(prompt, sizeof(prompt), "Key for %s: ", name);
		if (store_prompt(prompt, &k, &why) == -1)
			errx(1, "key: %s", why != NULL ? why : "out of memory");
		if (store_check_key(k->k_data, k->k_len) == -1) {
			keystore_free(k);
			errx(1, "the key must be one line of 1 to 4096 printable "
			    "characters without spaces");
		}
		return k;
	}
	if ((k = keystore_new(NULL, cap)) == NULL)
		errx(1, "out of memory");
	for (;;) {
		n = read(STDIN_FILENO, k->k_data + len, cap - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			keystore_free(k);
			errx(1, "stdin: %s", strerror(errno));
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == cap)
			break;
	}
	if (len > 0 && k->k_data[len - 1] == '\n')
		len--;
	if (len > 0 && k->k_data[len - 1] == '\r')
		len--;
	if (store_check_key(k->k_data, len) == -1) {
		keystore_free(k);
		errx(1, "stdin: the key must be one line of 1 to 4096 printable "
		    "characters without spaces");
	}
	k->k_data[len] = '\0';
	k->k_len = len;
	return k;
}

static struct store *
open_store(const char *path, const struct key *pass)
{
	struct store	*st;
	char		*why;

	if (store_open(path, pass, 1, &st, &why) == -1) {
		if (why != NULL && strncmp(why, path, strlen(path)) == 0)
			errx(1, "%s", why);
		errx(1, "%s: %s", path, why != NULL ? why : "out of memory");
	}
	return st;
}

static void
write_store(const struct store *st, const char *path, const struct key *pass,
    int create)
{
	char	*why;

	if (store_write(st, path, pass, create, &why) == -1)
		errx(1, "%s", why != NULL ? why : "out of memory");
}

int
main(int argc, char **argv)
{
	enum { O_PASS = 256, O_NEWPASS, O_KEYID, O_TYPE, O_EXPIRES, O_FORCE };
	static const struct option longopts[] = {
		{ "file", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ "passphrase-file", required_argument, NULL, O_PASS },
		{ "new-passphrase-file", required_argument, NULL, O_NEWPASS },
		{ "key-id", required_argument, NULL, O_KEYID },
		{ "type", required_argument, NULL, O_TYPE },
		{ "expires", required_argument, NULL, O_EXPIRES },
		{ "force", no_argument, NULL, O_FORCE },
		{ NULL, 0, NULL, 0 }
	};
	const char		*path = NULL, *passfile = NULL, *newfile = NULL;
	const char		*key_id = NULL, *expires = NULL, *cmd, *name = NULL;
	const char		*type_text = NULL;
	enum key_type		 type = KEY_ADVANCED;
	int			 ch, force = 0, nargs;
	struct store		*st;
	struct store_entry	*se;
	struct key		*pass, *npass, *k;
	char			*why;
	size_t			 i;

	/* It holds every key decrypted: no core dump, no ptrace, no setuid. */
	priv_harden();
	while ((ch = getopt_long(argc, argv, "f:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'f':
			path = optarg;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case O_PASS:
			passfile = optarg;
			break;
		case O_NEWPASS:
			newfile = optarg;
			break;
		case O_KEYID:
			key_id = optarg;
			break;
		case O_TYPE:
			type_text = optarg;
			if (strcmp(optarg, "advanced") == 0)
				type = KEY_ADVANCED;
			else if (strcmp(optarg, "standard") == 0)
				type = KEY_STANDARD;
			else
				usage("--type: advanced or standard");
			break;
		case O_EXPIRES:
			expires = optarg;
			break;
		case O_FORCE:
			force = 1;
			break;
		default:
			usage(NULL);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0)
		usage("no command");
	if (path == NULL)
		usage("-f STORE is required");
	cmd = argv[0];
	nargs = argc - 1;
	if (nargs > 0)
		name = argv[1];
	if (strcmp(cmd, "add") == 0 || strcmp(cmd, "remove") == 0 ||
	    strcmp(cmd, "show-id") == 0) {
		if (nargs != 1)
			usage("this command takes one NAME");
		if (store_check_name(name) == -1)
			usage("a key name is 1 to 64 letters, digits, '.', '_' "
			    "or '-', not starting with '-'");
	} else if (strcmp(cmd, "create") == 0 || strcmp(cmd, "list") == 0 ||
	    strcmp(cmd, "passwd") == 0) {
		if (nargs != 0)
			usage("this command takes no argument");
	} else
		usage("unknown command");
	if (strcmp(cmd, "add") != 0 && (key_id != NULL || type_text != NULL ||
	    expires != NULL || force))
		usage("--key-id, --type, --expires and --force go with add");
	if (strcmp(cmd, "passwd") != 0 && newfile != NULL)
		usage("--new-passphrase-file goes with passwd");

	if (strcmp(cmd, "create") == 0) {
		if ((st = store_new()) == NULL)
			errx(1, "out of memory");
		pass = passphrase(passfile, "New passphrase", 1);
		if (store_lock(path, &why) == -1)
			errx(1, "%s", why != NULL ? why : "out of memory");
		write_store(st, path, pass, 1);
		keystore_free(pass);
		store_free(st);
		return 0;
	}
	if (strcmp(cmd, "add") == 0) {
		if (key_id == NULL)
			usage("add needs --key-id ID");
		if (expires != NULL && config_parse_date(expires) == -1)
			usage("--expires: expected a date, YYYY-MM-DD");
		if (strspn(key_id, "0123456789") != strlen(key_id) ||
		    *key_id == '\0' || strlen(key_id) > 32)
			usage("--key-id: 1 to 32 digits");
	}
	pass = passphrase(passfile, "Passphrase", 0);
	/* Writers one at a time, from the read to the rename. */
	if (strcmp(cmd, "list") != 0 && strcmp(cmd, "show-id") != 0 &&
	    store_lock(path, &why) == -1)
		errx(1, "%s", why != NULL ? why : "out of memory");
	st = open_store(path, pass);
	if (strcmp(cmd, "list") == 0) {
		for (i = 0; i < st->st_n; i++) {
			se = &st->st_entries[i];
			printf("%s\t%s\t%s\t%s\n", se->se_name, se->se_key_id,
			    se->se_type == KEY_STANDARD ? "standard" :
			    "advanced", se->se_expires[0] != '\0' ?
			    se->se_expires : "-");
		}
	} else if (strcmp(cmd, "show-id") == 0) {
		if ((se = store_find(st, name)) == NULL)
			errx(1, "%s: no such key in %s", name, path);
		printf("%s\n", se->se_key_id);
	} else if (strcmp(cmd, "remove") == 0) {
		if (store_remove(st, name) == -1)
			errx(1, "%s: no such key in %s", name, path);
		write_store(st, path, pass, 0);
	} else if (strcmp(cmd, "add") == 0) {
		if (!force && store_find(st, name) != NULL)
			errx(1, "%s: already in %s (--force replaces it)", name,
			    path);
		k = read_key(name);
		if (store_put(st, name, key_id, type, expires, k->k_data,
		    k->k_len, force, &why) == -1) {
			keystore_free(k);
			errx(1, "%s", why != NULL ? why : "out of memory");
		}
		keystore_free(k);
		write_store(st, path, pass, 0);
	} else if (strcmp(cmd, "passwd") == 0) {
		npass = passphrase(newfile, "New passphrase", 1);
		write_store(st, path, npass, 0);
		keystore_free(npass);
	}
	if (fflush(stdout) == EOF || ferror(stdout))
		errx(1, "stdout: %s", strerror(errno));
	keystore_free(pass);
	store_free(st);
	return 0;
}
