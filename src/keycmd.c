/*
 * keycmd.c: key_command, a program that prints the key (the AWS CLI's
 * credential_process convention), run without a shell with a timeout.
 *
 * The value is split on spaces and tabs; the first word is an absolute
 * path (no $PATH search). The program runs as xdrproxy's user in its own
 * process group, with stdin and stderr on /dev/null (stderr may echo a
 * secret), stdout a pipe, no other descriptor, default signal dispositions
 * and xdrproxy's environment unchanged (secret managers' CLIs need theirs:
 * VAULT_ADDR, HOME, GNUPGHOME...). Its output is never quoted in an error.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <grp.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "xdrproxy.h"

#define KEYCMD_MAX	4096	/* bytes of output */
#define KEYCMD_ARGS	64

extern char **environ;

static int64_t
keycmd_now_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "10s" or "1500ms", for messages. */
static void
keycmd_duration(unsigned int ms, char *buf, size_t len)
{
	if (ms % 1000 == 0)
		snprintf(buf, len, "%us", ms / 1000);
	else
		snprintf(buf, len, "%ums", ms);
}

/*
 * Started as root with [proxy] user set (keys load before the drop): the
 * program runs as that user, never as root. posix_spawn cannot change ids,
 * so fork and drop in the child, which only makes async-signal-safe calls;
 * this happens before any worker thread exists. An exec failure's errno
 * comes back through a close-on-exec pipe.
 */
static int
keycmd_fork_as(char *const argv[], uid_t uid, gid_t gid, int out, pid_t *pid)
{
	struct sigaction	 sa;
	sigset_t		 none;
	int			 ep[2], e = 0, fd, sig, errfd;
	ssize_t			 n;

	if (pipe2(ep, O_CLOEXEC) == -1)
		return -1;
	if ((*pid = fork()) == -1) {
		e = errno;
		close(ep[0]);
		close(ep[1]);
		errno = e;
		return -1;
	}
	if (*pid == 0) {
		errfd = ep[1];
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = SIG_DFL;
		for (sig = 1; sig < NSIG; sig++)
			(void)sigaction(sig, &sa, NULL);
		sigemptyset(&none);
		(void)sigprocmask(SIG_SETMASK, &none, NULL);
		(void)setpgid(0, 0);
		if (setgroups(1, &gid) == -1 || setresgid(gid, gid, gid) == -1 ||
		    setresuid(uid, uid, uid) == -1 || setuid(0) != -1)
			goto fail;
		if ((fd = open("/dev/null", O_RDWR)) == -1 ||
		    dup2(fd, 0) == -1 || dup2(out, 1) == -1 || dup2(fd, 2) == -1)
			goto fail;
		if (ep[1] != 3 && dup2(ep[1], 3) == -1)
			goto fail;
		errfd = 3;
		(void)fcntl(3, F_SETFD, FD_CLOEXEC);
		closefrom(4);
		execve(argv[0], argv, environ);
fail:
		e = errno != 0 ? errno : EPERM;
		(void)!write(errfd, &e, sizeof(e));
		_exit(127);
	}
	close(ep[1]);
	while ((n = read(ep[0], &e, sizeof(e))) == -1 && errno == EINTR)
		;
	close(ep[0]);
	if (n == (ssize_t)sizeof(e)) {
		while (waitpid(*pid, NULL, 0) == -1 && errno == EINTR)
			;
		errno = e;
		return -1;
	}
	return 0;
}

/*
 * Start the program: *pid and the read end of its stdout in *fd, or -1
 * with errno. argv is split in place in copy.
 */
static int
keycmd_spawn(char *copy, pid_t *pid, int *fd)
{
	posix_spawn_file_actions_t	 fa;
	posix_spawnattr_t		 sa;
	sigset_t			 all, none;
	char				*argv[KEYCMD_ARGS + 1], *p, *save;
	int				 argc = 0, pfd[2] = { -1, -1 }, rc, e;
	uid_t				 uid;
	gid_t				 gid;

	for (p = strtok_r(copy, " \t", &save); p != NULL;
	    p = strtok_r(NULL, " \t", &save)) {
		if (argc == KEYCMD_ARGS) {
			errno = E2BIG;
			return -1;
		}
		argv[argc++] = p;
	}
	argv[argc] = NULL;
	if (argc == 0 || argv[0][0] != '/') {
		errno = ENOENT;
		return -1;
	}
	/* Only our end is non-blocking: the program gets a plain stdout. */
	if (pipe2(pfd, O_CLOEXEC) == -1)
		return -1;
	if (fcntl(pfd[0], F_SETFL, O_NONBLOCK) == -1) {
		e = errno;
		close(pfd[0]);
		close(pfd[1]);
		errno = e;
		return -1;
	}
	if (priv_target(&uid, &gid)) {
		rc = keycmd_fork_as(argv, uid, gid, pfd[1], pid);
		e = errno;
		close(pfd[1]);
		if (rc == -1) {
			close(pfd[0]);
			errno = e;
			return -1;
		}
		*fd = pfd[0];
		return 0;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&sa);
	sigfillset(&all);
	sigemptyset(&none);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	/* Its own group (killed whole on timeout); SIGPIPE back to default. */
	posix_spawnattr_setpgroup(&sa, 0);
	posix_spawnattr_setsigdefault(&sa, &all);
	posix_spawnattr_setsigmask(&sa, &none);
	posix_spawnattr_setflags(&sa, POSIX_SPAWN_SETPGROUP |
	    POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
	rc = posix_spawn(pid, argv[0], &fa, &sa, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&sa);
	close(pfd[1]);
	if (rc != 0) {
		e = rc;
		close(pfd[0]);
		errno = e;
		return -1;
	}
	*fd = pfd[0];
	return 0;
}

/* Reap pid, waiting until deadline; 0 and *status, or -1 (still alive). */
static int
keycmd_wait(pid_t pid, int64_t deadline, int *status)
{
	struct timespec	 ts = { 0, 10 * 1000 * 1000 };
	pid_t		 r;

	for (;;) {
		r = waitpid(pid, status, WNOHANG);
		if (r == pid)
			return 0;
		if (r == -1 && errno != EINTR) {
			*status = -1;	/* ECHILD: its status is lost */
			return 0;
		}
		if (keycmd_now_ms() >= deadline)
			return -1;
		nanosleep(&ts, NULL);
	}
}

/* Kill the program's whole group and reap it. */
static void
keycmd_kill(pid_t pid)
{
	int	 status;

	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
		;
}

/*
 * Run key_command command and take the one line it prints as the key.
 * 0 and *k, or -1 and *cause ("key_command PROGRAM: why"; arguments and
 * output are never quoted: either may hold a secret).
 */
int
keycmd_run(const char *command, unsigned int timeout_ms, struct key **k,
    char **cause)
{
	char		 buf[KEYCMD_MAX + 1], dur[32], *copy = NULL;
	const char	*why = NULL, *prog;
	struct pollfd	 pfd;
	struct sigaction sa;
	int64_t		 deadline;
	size_t		 len = 0, plen;
	ssize_t		 n;
	pid_t		 pid = -1;
	int		 fd = -1, status = 0, e, timeout, rc = -1, killed = 0;

	*k = NULL;
	*cause = NULL;
	prog = command + strspn(command, " \t");
	plen = strcspn(prog, " \t");
	if ((copy = strdup(command)) == NULL) {
		why = "out of memory";
		goto done;
	}
	keycmd_duration(timeout_ms, dur, sizeof(dur));
	/*
	 * An ignored SIGCHLD (inherited from whoever started xdrproxy) would
	 * have the kernel reap the program, and its exit status be lost.
	 */
	if (sigaction(SIGCHLD, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN) {
		sa.sa_handler = SIG_DFL;
		sa.sa_flags = 0;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGCHLD, &sa, NULL);
	}
	deadline = keycmd_now_ms() + timeout_ms;
	if (keycmd_spawn(copy, &pid, &fd) == -1) {
		e = errno;
		if (asprintf(cause, "key_command %.*s: cannot run: %s",
		    (int)plen, prog, strerror(e)) == -1)
			*cause = NULL;
		goto done;
	}
	for (;;) {
		timeout = (int)(deadline - keycmd_now_ms());
		if (timeout <= 0) {
			killed = 1;
			break;
		}
		pfd.fd = fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, timeout) == -1) {
			if (errno == EINTR)
				continue;
			why = "poll failed";
			break;
		}
		n = read(fd, buf + len, sizeof(buf) - len);
		if (n == -1 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n == -1) {
			why = "cannot read its output";
			break;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == sizeof(buf)) {
			why = "printed more than 4096 bytes";
			break;
		}
	}
	close(fd);
	fd = -1;
	/* It closed its stdout: give it the rest of the time to exit. */
	if (why == NULL && !killed) {
		if (keycmd_wait(pid, deadline, &status) == 0)
			pid = -1;
		else
			killed = 1;
	}
	if (why != NULL || killed) {
		keycmd_kill(pid);
		pid = -1;
		if (killed && asprintf(cause, "key_command %.*s: killed after "
		    "%s (key_command_timeout)", (int)plen, prog, dur) == -1)
			*cause = NULL;
		goto done;
	}
	if (status == -1) {
		why = "cannot get its exit status";
		goto done;
	}
	if (WIFSIGNALED(status)) {
		if (asprintf(cause, "key_command %.*s: killed by signal %d "
		    "(%s)", (int)plen, prog, WTERMSIG(status),
		    strsignal(WTERMSIG(status))) == -1)
			*cause = NULL;
		goto done;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
		if (asprintf(cause, "key_command %.*s: exited with status %d",
		    (int)plen, prog, WEXITSTATUS(status)) == -1)
			*cause = NULL;
		goto done;
	}
	switch (keystore_line(buf, &len)) {
	case KEYLINE_OK:
		break;
	case KEYLINE_EMPTY:
		why = "printed nothing";
		goto done;
	case KEYLINE_LINES:
		why = "printed more than one line";
		goto done;
	case KEYLINE_BAD:
		why = "printed a line that is not printable characters "
		    "without spaces";
		goto done;
	}
	if ((*k = keystore_new(buf, len)) == NULL) {
		why = "out of memory";
		goto done;
	}
	rc = 0;
done:
	if (rc == -1 && *cause == NULL && why != NULL &&
	    asprintf(cause, "key_command %.*s: %s", (int)plen, prog,
	    why) == -1)
		*cause = NULL;
	if (fd != -1)
		close(fd);
	if (pid != -1)
		keycmd_kill(pid);
	OPENSSL_cleanse(buf, sizeof(buf));
	if (copy != NULL) {
		OPENSSL_cleanse(copy, strlen(command));
		free(copy);
	}
	return rc;
}
