/*
 * main.c: command line, start-up, signals and teardown. xdrproxy runs in
 * the foreground and logs to stderr. The main thread runs a small loop for
 * signals while the workers (worker.c) serve requests: SIGTERM or SIGINT
 * stop them after the requests in flight finish (at most shutdown_timeout),
 * SIGHUP and SIGUSR1 reopen the audit log. The admin listener (metrics and
 * health, admin.c) is served on the main thread's loop too.
 */
#include "config.h"

#include <sys/prctl.h>
#include <sys/resource.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/opensslv.h>

#include "xdrproxy.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif
#define DEFAULT_CONFIG	SYSCONFDIR "/xdrproxy/xdrproxy.conf"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: xdrproxy [-tv] [-c file]\n"
	    "       xdrproxy --version | -h\n"
	    "  -c file    configuration file (default %s)\n"
	    "  -t         check the configuration and key files, then exit\n"
	    "  -v         log more (debug)\n"
	    "  -h         this help\n"
	    "  --version  print the version\n", DEFAULT_CONFIG);
}

static void
version(void)
{
	const curl_version_info_data	*cv = curl_version_info(CURLVERSION_NOW);

	printf("xdrproxy %s (libevent %s, libcurl %s, %s)\n", PACKAGE_VERSION,
	    event_get_version(), cv->version, OPENSSL_VERSION_TEXT);
}

/* Keys stay out of core dumps and away from ptrace by other processes. */
static void
main_harden(void)
{
	struct rlimit	 rl = { 0, 0 };

	setrlimit(RLIMIT_CORE, &rl);
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

/* Load and check every tenant's key. */
static int
main_load_keys(struct config *cf, char **cause)
{
	struct tenant	*tn;
	char		*why;

	TAILQ_FOREACH(tn, &cf->cf_tenants, tn_entry) {
		if (keystore_load(tn->tn_key_file, &tn->tn_key, &why) == 0) {
			if (!tn->tn_key->k_locked)
				log_warnx("tenant %s: cannot lock the key in "
				    "memory (RLIMIT_MEMLOCK); it may be swapped "
				    "out", tn->tn_name);
			continue;
		}
		if (asprintf(cause, "%s:%d: key_file %s", cf->cf_file,
		    tn->tn_key_file_line, why != NULL ? why :
		    "out of memory") == -1)
			*cause = NULL;
		free(why);
		return -1;
	}
	return 0;
}

static int
main_open_audit(struct config *cf, char **cause)
{
	char	*why;

	if (audit_open(cf->cf_audit_log, &why) == 0)
		return 0;
	if (asprintf(cause, "%s:%d: %s", cf->cf_file, cf->cf_audit_log_line,
	    why != NULL ? why : "out of memory") == -1)
		*cause = NULL;
	free(why);
	return -1;
}

/* The main thread's state: its control loop and the workers. */
struct main_state {
	struct event_base	*ms_base;
	int			 ms_done[2];	/* pipe: a byte per ended worker */
	struct event		*ms_done_ev;
	struct worker		*ms_workers;
	int			 ms_nworkers;
	int			 ms_running;
	int			 ms_stop;	/* signals received: 0, 1, 2 */
};

/* In a worker's thread, as its loop ends. */
static void
main_worker_done(struct worker *w, void *arg)
{
	struct main_state	*ms = arg;
	unsigned char		 c = 1;

	while (write(ms->ms_done[1], &c, 1) == -1 && errno == EINTR)
		;
}

static void
main_check_done(evutil_socket_t fd, short what, void *arg)
{
	struct main_state	*ms = arg;
	unsigned char		 buf[64];
	ssize_t			 n;

	while ((n = read(fd, buf, sizeof(buf))) > 0)
		ms->ms_running -= (int)n;
	if (ms->ms_running <= 0)
		event_base_loopbreak(ms->ms_base);
}

/* Tell systemd (if it asked); a failure is logged here, once. */
static int
main_notify(const char *msg)
{
	char	*cause;

	if (notify_send(msg, &cause) == 0)
		return 0;
	log_warnx("%s", cause != NULL ? cause : "out of memory");
	free(cause);
	return -1;
}

static void
main_signal(evutil_socket_t sig, short what, void *arg)
{
	struct main_state	*ms = arg;
	const char		*name;
	char			*cause;
	int			 i;

	/* SIGUSR1 is logrotate's postrotate convention (nginx's too). */
	if (sig == SIGHUP || sig == SIGUSR1) {
		name = sig == SIGHUP ? "SIGHUP" : "SIGUSR1";
		if (audit_reopen(&cause) == -1) {
			log_warnx("%s: %s", name, cause != NULL ? cause :
			    "out of memory");
			free(cause);
		} else
			log_info("%s: audit log reopened", name);
		return;
	}
	if (ms->ms_stop >= 2)
		return;
	ms->ms_stop++;
	if (ms->ms_stop == 1) {
		(void)main_notify("STOPPING=1\n");
		admin_draining();
	}
	if (ms->ms_stop == 1)
		log_info("%s: shutting down", sig == SIGTERM ? "SIGTERM" :
		    "SIGINT");
	else
		log_info("second signal: ending requests now");
	for (i = 0; i < ms->ms_nworkers; i++)
		worker_stop(&ms->ms_workers[i], ms->ms_stop);
}

int
main(int argc, char *argv[])
{
	static const struct option	 longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	struct config			*cf;
	struct main_state		 ms;
	struct event			*sigs[4];
	const int			 signos[4] = { SIGTERM, SIGINT, SIGHUP,
					    SIGUSR1 };
	const char			*file = DEFAULT_CONFIG;
	char				*cause = NULL;
	int				 ch, test = 0, verbose = 0, i;

	while ((ch = getopt_long(argc, argv, "c:htvV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			file = optarg;
			break;
		case 't':
			test = 1;
			break;
		case 'v':
			verbose++;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			version();
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}

	main_harden();
	signal(SIGPIPE, SIG_IGN);
	log_init(verbose);

	if ((cf = config_load(file, &cause)) == NULL) {
		fprintf(stderr, "%s\n", cause != NULL ? cause :
		    "out of memory");
		free(cause);
		return 1;
	}
	if (main_load_keys(cf, &cause) == -1 ||
	    main_open_audit(cf, &cause) == -1) {
		fprintf(stderr, "%s\n", cause != NULL ? cause :
		    "out of memory");
		free(cause);
		audit_close();
		config_free(cf);
		return 1;
	}
	if (test) {
		fprintf(stderr, "%s: configuration OK\n", file);
		audit_close();
		config_free(cf);
		return 0;
	}

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		fatalx("libcurl initialisation failed");
	if (server_init() == -1)
		fatalx("out of memory");
	/* Tenant counter slots, the start time, the first load's time. */
	if (metrics_init(cf) == -1)
		fatalx("out of memory");
	memset(&ms, 0, sizeof(ms));
	ms.ms_nworkers = cf->cf_workers;
	if (pipe2(ms.ms_done, O_CLOEXEC | O_NONBLOCK) == -1)
		fatal("pipe");
	if ((ms.ms_base = event_base_new()) == NULL ||
	    (ms.ms_done_ev = event_new(ms.ms_base, ms.ms_done[0],
	    EV_READ | EV_PERSIST, main_check_done, &ms)) == NULL ||
	    event_add(ms.ms_done_ev, NULL) == -1 ||
	    (ms.ms_workers = calloc((size_t)ms.ms_nworkers,
	    sizeof(*ms.ms_workers))) == NULL)
		fatalx("out of memory");
	for (i = 0; i < ms.ms_nworkers; i++) {
		if (worker_init(&ms.ms_workers[i], i, cf, &cause) == -1)
			fatalx("%s", cause != NULL ? cause : "out of memory");
	}
	if (admin_start(ms.ms_base, cf, &cause) == -1)
		fatalx("%s", cause != NULL ? cause : "out of memory");
	for (i = 0; i < 4; i++) {
		if ((sigs[i] = evsignal_new(ms.ms_base, signos[i], main_signal,
		    &ms)) == NULL || evsignal_add(sigs[i], NULL) == -1)
			fatalx("cannot handle signal %d", signos[i]);
	}
	for (i = 0; i < ms.ms_nworkers; i++) {
		ms.ms_running++;
		if (worker_start(&ms.ms_workers[i], main_worker_done, &ms) ==
		    -1)
			fatal("pthread_create");
	}
	log_info("xdrproxy %s running, %d worker%s", PACKAGE_VERSION,
	    ms.ms_nworkers, ms.ms_nworkers == 1 ? "" : "s");
	/* systemd's Type=notify: the listeners are open. */
	(void)main_notify("READY=1\nSTATUS=serving\n");

	event_base_dispatch(ms.ms_base);

	for (i = 0; i < ms.ms_nworkers; i++)
		worker_join(&ms.ms_workers[i]);
	admin_free();
	log_info("stopped");
	for (i = 0; i < 4; i++)
		event_free(sigs[i]);
	for (i = 0; i < ms.ms_nworkers; i++)
		worker_free(&ms.ms_workers[i]);
	free(ms.ms_workers);
	metrics_free();
	event_free(ms.ms_done_ev);
	event_base_free(ms.ms_base);
	close(ms.ms_done[0]);
	close(ms.ms_done[1]);
	curl_global_cleanup();
	audit_close();
	config_free(cf);
	libevent_global_shutdown();
	return 0;
}
