/*
 * main.c: command line, start-up, signals and teardown. xdrproxy runs in
 * the foreground and logs to stderr; SIGTERM or SIGINT stop it after the
 * requests in flight finish (at most shutdown_timeout), SIGHUP reopens the
 * audit log.
 */
#include "config.h"

#include <sys/prctl.h>
#include <sys/resource.h>

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

/* Called as requests end and replies are written: finish a shutdown. */
void
worker_request_done(struct worker *w)
{
	if (w->w_draining && w->w_nlive == 0 && w->w_nflushing == 0)
		event_base_loopbreak(w->w_base);
}

static void
main_arm_deadline(struct worker *w, unsigned int ms)
{
	struct timeval	 tv;

	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(w->w_shutdown_timer, &tv);
}

/*
 * shutdown_timeout passed: end what is still running with 503 and give the
 * replies a second to be written; the second time, stop regardless (a
 * client that stopped reading cannot hold the exit).
 */
static void
main_shutdown_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct worker	*w = arg;

	if (w->w_draining == 2) {
		event_base_loopbreak(w->w_base);
		return;
	}
	if (w->w_nlive > 0)
		log_warnx("shutdown: ending %zu requests still running",
		    w->w_nlive);
	w->w_draining = 2;
	proxy_end_all(w, 503, "shutting_down");
	main_arm_deadline(w, 1000);
}

static void
main_signal(evutil_socket_t sig, short what, void *arg)
{
	struct worker	*w = arg;
	char		*cause;

	if (sig == SIGHUP) {
		if (audit_reopen(&cause) == -1) {
			log_warnx("SIGHUP: %s", cause != NULL ? cause :
			    "out of memory");
			free(cause);
		} else
			log_info("SIGHUP: audit log reopened");
		return;
	}
	if (w->w_draining) {
		if (w->w_draining == 1) {
			log_info("second signal: ending %zu requests now",
			    w->w_nlive);
			evtimer_del(w->w_shutdown_timer);
			main_shutdown_deadline(-1, 0, w);
		}
		return;
	}
	log_info("%s: shutting down, %zu requests in flight",
	    sig == SIGTERM ? "SIGTERM" : "SIGINT", w->w_nlive);
	w->w_draining = 1;
	server_stop_accepting(w);
	main_arm_deadline(w, w->w_conf->cf_shutdown_timeout);
	worker_request_done(w);
}

/*
 * An event base whose epoll changes are batched per loop turn: evhttp and
 * libcurl turn read and write interest on and off several times per
 * request, and most of those changes cancel out.
 */
static struct event_base *
main_base_new(void)
{
	struct event_config	*ec;
	struct event_base	*base;

	if ((ec = event_config_new()) == NULL)
		return NULL;
	event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	base = event_base_new_with_config(ec);
	event_config_free(ec);
	return base;
}

static int
worker_init(struct worker *w, struct config *cf, char **cause)
{
	memset(w, 0, sizeof(*w));
	w->w_conf = cf;
	TAILQ_INIT(&w->w_listeners);
	TAILQ_INIT(&w->w_live);
	TAILQ_INIT(&w->w_done);
	*cause = NULL;
	if ((w->w_base = main_base_new()) == NULL ||
	    (w->w_scratch = evbuffer_new()) == NULL ||
	    (w->w_reaper = event_new(w->w_base, -1, 0, proxy_reap, w)) ==
	    NULL ||
	    (w->w_shutdown_timer = evtimer_new(w->w_base,
	    main_shutdown_deadline, w)) == NULL) {
		*cause = strdup("libevent: out of memory");
		return -1;
	}
	if (sign_init(&w->w_signer) == -1 ||
	    sign_random(&w->w_signer, &w->w_id_prefix,
	    sizeof(w->w_id_prefix)) == -1) {
		*cause = strdup("OpenSSL: SHA-256 or the random generator is "
		    "unavailable");
		return -1;
	}
	if (upstream_init(w, cf, cause) == -1)
		return -1;
	return server_start(w, cf, cause);
}

static void
worker_free(struct worker *w)
{
	server_free(w);
	upstream_free(w);
	sign_free(&w->w_signer);
	if (w->w_shutdown_timer != NULL)
		event_free(w->w_shutdown_timer);
	if (w->w_reaper != NULL)
		event_free(w->w_reaper);
	if (w->w_scratch != NULL)
		evbuffer_free(w->w_scratch);
	if (w->w_base != NULL)
		event_base_free(w->w_base);
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
	struct worker			 w;
	struct event			*sigs[3];
	const int			 signos[3] = { SIGTERM, SIGINT, SIGHUP };
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
	if (worker_init(&w, cf, &cause) == -1)
		fatalx("%s", cause != NULL ? cause : "out of memory");
	for (i = 0; i < 3; i++) {
		if ((sigs[i] = evsignal_new(w.w_base, signos[i], main_signal,
		    &w)) == NULL || evsignal_add(sigs[i], NULL) == -1)
			fatalx("cannot handle signal %d", signos[i]);
	}
	log_info("xdrproxy %s running", PACKAGE_VERSION);

	event_base_dispatch(w.w_base);

	log_info("stopped");
	for (i = 0; i < 3; i++)
		event_free(sigs[i]);
	worker_free(&w);
	curl_global_cleanup();
	audit_close();
	config_free(cf);
	libevent_global_shutdown();
	return 0;
}
