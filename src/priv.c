/*
 * priv.c: the process that holds keys. Started as root with [proxy] user
 * (and group) set, xdrproxy opens its listeners, audit log and every key
 * source, then drops to that user before any worker starts: setgroups()
 * to the one target group only (not initgroups(): the user's supplementary
 * groups would give access nobody asked for), setgid, setuid, and then
 * checks that the drop holds (setuid(0) fails, all four ids are the
 * target's). PR_SET_NO_NEW_PRIVS is set in any case (main_harden() too).
 * priv_prepare() resolves them before keys are read; priv_check() is what
 * -t adds: a warning for each file a reload (as that user) could not read.
 */
#include "config.h"

#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xdrproxy.h"

/* Started as root with a user set: that user may own key files too. */
static uid_t	 priv_owner = (uid_t)-1;
static gid_t	 priv_group = (gid_t)-1;

/* Format a cause as "FILE:LINE: ..." (LINE of the user setting). */
static int
priv_error(const struct config *cf, char **cause, const char *what,
    const char *name, const char *why)
{
	if (asprintf(cause, "%s:%d: %s %s: %s", cf->cf_file, cf->cf_user_line,
	    what, name, why) == -1)
		*cause = NULL;
	return -1;
}

/* The target uid and gid of cf's user and group. */
static int
priv_resolve(const struct config *cf, uid_t *uid, gid_t *gid, char **cause)
{
	struct passwd	 pw, *pwp = NULL;
	struct group	 gr, *grp = NULL;
	char		 buf[16384];
	int		 rc;

	if (cf->cf_user == NULL)
		return priv_error(cf, cause, "group", cf->cf_group,
		    "set user too (group alone is not changed)");
	rc = getpwnam_r(cf->cf_user, &pw, buf, sizeof(buf), &pwp);
	if (pwp == NULL)
		return priv_error(cf, cause, "user", cf->cf_user, rc != 0 &&
		    rc != ENOENT && rc != ESRCH ? strerror(rc) :
		    "no such user");
	*uid = pw.pw_uid;
	*gid = pw.pw_gid;
	if (cf->cf_group != NULL) {
		rc = getgrnam_r(cf->cf_group, &gr, buf, sizeof(buf), &grp);
		if (grp == NULL)
			return priv_error(cf, cause, "group", cf->cf_group,
			    rc != 0 && rc != ENOENT && rc != ESRCH ?
			    strerror(rc) : "no such group");
		*gid = gr.gr_gid;
	}
	if (*uid == 0)
		return priv_error(cf, cause, "user", cf->cf_user,
		    "is root: name an unprivileged user");
	return 0;
}

/*
 * For every program of ours that holds keys: no core dumps, no ptrace by
 * other processes of the user, and no setuid program (nor key_command)
 * gains privileges. Best effort: nothing here can make it worse.
 */
void
priv_harden(void)
{
	struct rlimit	 rl = { 0, 0 };

	(void)setrlimit(RLIMIT_CORE, &rl);
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	(void)prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
}

/*
 * Before any key is read: the user and group must resolve (FILE:LINE
 * errors otherwise). Started as root, files owned by the target user pass
 * the key-file owner check as well as root's, so that keys chowned to it
 * for reloads still load at the next start.
 */
int
priv_prepare(const struct config *cf, char **cause)
{
	uid_t	 uid;
	gid_t	 gid;

	*cause = NULL;
	if (cf->cf_user == NULL && cf->cf_group == NULL)
		return 0;
	if (priv_resolve(cf, &uid, &gid, cause) == -1)
		return -1;
	if (geteuid() == 0) {
		priv_owner = uid;
		priv_group = gid;
	}
	return 0;
}

/*
 * Still root, with a user to drop to: 1 and its ids (a key_command run
 * before the drop runs as that user), else 0.
 */
int
priv_target(uid_t *uid, gid_t *gid)
{
	if (priv_owner == (uid_t)-1 || geteuid() != 0)
		return 0;
	*uid = priv_owner;
	*gid = priv_group;
	return 1;
}

/* Whether uid is the user xdrproxy will drop to (priv_prepare()). */
int
priv_owns(uid_t uid)
{
	return priv_owner != (uid_t)-1 && uid == priv_owner;
}

int
priv_drop(const struct config *cf, char **cause)
{
	uid_t	 uid, ru, eu, su;
	gid_t	 gid, groups[2], rg, eg, sg;
	char	 why[128];
	int	 n;

	*cause = NULL;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1) {
		if (asprintf(cause, "PR_SET_NO_NEW_PRIVS: %s",
		    strerror(errno)) == -1)
			*cause = NULL;
		return -1;
	}
	if (cf->cf_user == NULL && cf->cf_group == NULL)
		return 0;
	if (priv_resolve(cf, &uid, &gid, cause) == -1)
		return -1;
	if (geteuid() != 0) {
		/* Already the user (systemd's User=, a container): fine. */
		if (getuid() == uid && geteuid() == uid && getgid() == gid &&
		    getegid() == gid)
			return 0;
		return priv_error(cf, cause, "user", cf->cf_user,
		    "xdrproxy must start as root to change user");
	}
	if (setgroups(1, &gid) == -1 || setresgid(gid, gid, gid) == -1 ||
	    setresuid(uid, uid, uid) == -1) {
		snprintf(why, sizeof(why), "cannot drop privileges: %s",
		    strerror(errno));
		return priv_error(cf, cause, "user", cf->cf_user, why);
	}
	/* The drop must hold: no way back to root, no group left over. */
	n = getgroups(2, groups);
	if (getresuid(&ru, &eu, &su) == -1 || getresgid(&rg, &eg, &sg) == -1)
		ru = eu = su = 0, rg = eg = sg = 0;
	if (setuid(0) != -1 || ru != uid || eu != uid || su != uid ||
	    rg != gid || eg != gid || sg != gid ||
	    setfsuid((uid_t)-1) != (int)uid || setfsgid((gid_t)-1) != (int)gid ||
	    n != 1 || groups[0] != gid)
		return priv_error(cf, cause, "user", cf->cf_user,
		    "privileges still held after dropping them");
	/* setuid clears it; keys stay out of core dumps and ptrace. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == -1) {
		if (asprintf(cause, "PR_SET_DUMPABLE: %s",
		    strerror(errno)) == -1)
			*cause = NULL;
		return -1;
	}
	return 0;
}

/* Whether uid/gid (no supplementary groups) may read path. */
static void
priv_check_file(const struct config *cf, const char *what, const char *path,
    int secret, uid_t uid, gid_t gid)
{
	struct stat	 st;

	if (path == NULL || stat(path, &st) == -1)
		return;
	if (st.st_uid == uid ? (st.st_mode & S_IRUSR) :
	    st.st_gid == gid ? (st.st_mode & S_IRGRP) :
	    (st.st_mode & S_IROTH))
		return;
	if (secret && st.st_uid == 0)
		log_warnx("%s %s: owned by root; after dropping to user %s, "
		    "a reload cannot read it (chown %s it)", what, path,
		    cf->cf_user, cf->cf_user);
	else
		log_warnx("%s %s: not readable by user %s; after dropping "
		    "to it, a reload cannot read it", what, path,
		    cf->cf_user);
}

/* A key_command program the user could not run on a reload. */
static void
priv_check_exec(const struct config *cf, const char *command, uid_t uid,
    gid_t gid)
{
	struct stat	 st;
	char		*prog;

	if (command == NULL ||
	    (prog = strndup(command, strcspn(command, " \t"))) == NULL)
		return;
	if (stat(prog, &st) == 0 && !(st.st_uid == uid ?
	    (st.st_mode & S_IXUSR) : st.st_gid == gid ?
	    (st.st_mode & S_IXGRP) : (st.st_mode & S_IXOTH)))
		log_warnx("key_command %s: not executable by user %s; after "
		    "dropping to it, a reload cannot run it", prog,
		    cf->cf_user);
	free(prog);
}

/* A systemd credential, where $CREDENTIALS_DIRECTORY is set. */
static void
priv_check_credential(const struct config *cf, const char *what,
    const char *name, uid_t uid, gid_t gid)
{
	char	*path, *why = NULL;

	if (name == NULL || getenv("CREDENTIALS_DIRECTORY") == NULL)
		return;
	if (keysource_credential_path(name, &path, &why) == 0) {
		priv_check_file(cf, what, path, 1, uid, gid);
		free(path);
	}
	free(why);
}

/*
 * For -t: the user and group must resolve; each file read again on a
 * reload that the target user could not read is a warning, not an error
 * (start-up reads them as root).
 */
int
priv_check(const struct config *cf, char **cause)
{
	struct tenant	*tn;
	uid_t		 uid;
	gid_t		 gid;

	*cause = NULL;
	if (cf->cf_user == NULL && cf->cf_group == NULL)
		return 0;
	if (priv_resolve(cf, &uid, &gid, cause) == -1)
		return -1;
	if (geteuid() != 0)
		return 0;
	priv_check_file(cf, "configuration", cf->cf_file, 0, uid, gid);
	priv_check_file(cf, "key_store_passphrase_file",
	    cf->cf_passphrase_file, 1, uid, gid);
	priv_check_credential(cf, "key_store_passphrase_credential",
	    cf->cf_passphrase_credential, uid, gid);
	TAILQ_FOREACH(tn, &cf->cf_tenants, tn_entry) {
		priv_check_file(cf, "key_file", tn->tn_key_file, 1, uid, gid);
		if (tn->tn_key_source == KS_STORE)
			priv_check_file(cf, "key_store", tn->tn_key_store, 1,
			    uid, gid);
		priv_check_file(cf, "pkcs11_pin_file", tn->tn_pkcs11_pin_file,
		    1, uid, gid);
		priv_check_credential(cf, "key_credential",
		    tn->tn_key_credential, uid, gid);
		priv_check_exec(cf, tn->tn_key_command, uid, gid);
		priv_check_file(cf, "ca_file", tn->tn_ca_file, 0, uid, gid);
		priv_check_file(cf, "client_cert", tn->tn_client_cert, 0,
		    uid, gid);
		priv_check_file(cf, "client_key", tn->tn_client_key, 1,
		    uid, gid);
	}
	return 0;
}
