/*
 * main.c: command line, start-up, signals, reload and teardown. xdrproxy
 * runs in the foreground and logs to stderr. The main thread runs a small
 * loop for signals while the workers (worker.c) serve requests: SIGTERM or
 * SIGINT stop them after the requests in flight finish (at most
 * shutdown_timeout), SIGHUP loads the configuration and keys again and
 * puts them in force as a new generation, SIGUSR1 reopens the audit log.
 * The admin listener (metrics and health, admin.c) is served on the main
 * thread's loop too.
 */
#include "config.h"

#include <sys/uio.h>


#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
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
	    "       xdrproxy -t --live [-c file]\n"
	    "       xdrproxy --version | -h\n"
	    "  -c file    configuration file (default %s)\n"
	    "  -t         check the configuration and key files, then exit\n"
	    "  --live     with -t: also call each tenant's healthcheck, signed\n"
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

/* A string setting that changed between two generations. */
static int
main_changed(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a != b;
	return strcmp(a, b) != 0;
}

/*
 * What libcurl will be given for each tenant: the client certificate and
 * its key (the key file checked like a key file, the pair matched), and
 * every option, set once on a handle so that one libcurl refuses (say,
 * pinning with a TLS library that cannot) is found by -t.
 */
static int
main_check_tenants(struct config *cf, char **cause)
{
	struct tenant	*tn;
	CURL		*easy;
	CURLcode	 rc;
	const char	*what;
	char		*why;
	int		 bad_key;

	TAILQ_FOREACH(tn, &cf->cf_tenants, tn_entry) {
		if (tn->tn_client_cert != NULL &&
		    keystore_check_client(tn->tn_client_cert,
		    tn->tn_client_key, &bad_key, &why) == -1) {
			if (asprintf(cause, "%s:%d: %s %s", cf->cf_file,
			    bad_key ? tn->tn_client_key_line :
			    tn->tn_client_cert_line, bad_key ? "client_key" :
			    "client_cert", why != NULL ? why :
			    "out of memory") == -1)
				*cause = NULL;
			free(why);
			return -1;
		}
		if ((easy = curl_easy_init()) == NULL) {
			*cause = strdup("libcurl: out of memory");
			return -1;
		}
		rc = upstream_tenant_setopt(easy, tn, cf, &what);
		curl_easy_cleanup(easy);
		if (rc != CURLE_OK) {
			if (asprintf(cause, "%s:%d: [tenant %s]: libcurl refuses "
			    "%s: %s", cf->cf_file, tn->tn_line, tn->tn_name,
			    what, curl_easy_strerror(rc)) == -1)
				*cause = NULL;
			return -1;
		}
	}
	return 0;
}

/*
 * Read and check a configuration and its keys, as -t does. prompt: at
 * start only, a passphrase may be asked for on the terminal.
 */
static struct config *
main_config_new(const char *file, int prompt, char **cause)
{
	struct config	*cf;

	if ((cf = config_load(file, cause)) == NULL)
		return NULL;
	if (priv_prepare(cf, cause) == -1 ||
	    keysource_load(cf, prompt, cause) == -1 ||
	    main_check_tenants(cf, cause) == -1) {
		config_free(cf);
		return NULL;
	}
	expiry_check(cf);
	return cf;
}

static int
main_open_audit(struct config *cf, char **cause)
{
	char	*why;

	if (audit_set_key(cf->cf_audit_key != NULL ?
	    (const unsigned char *)cf->cf_audit_key->k_data : NULL,
	    cf->cf_audit_key != NULL ? cf->cf_audit_key->k_len : 0) == -1) {
		if (asprintf(cause, "%s:%d: audit HMAC key: out of memory or "
		    "no HMAC in libcrypto", cf->cf_file,
		    cf->cf_audit_key_line) == -1)
			*cause = NULL;
		return -1;
	}
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
	const char		*ms_file;
	struct config		*ms_conf;	/* the generation in force */
	struct config		*ms_next;	/* being put in force */
	int			 ms_report[2];	/* pipe: WORKER_* from workers */
	struct event		*ms_report_ev;
	struct event		*ms_ckpt_ev;	/* audit checkpoints */
	struct worker		*ms_workers;
	int			 ms_nworkers;
	int			 ms_running;
	int			 ms_switching;	/* workers yet to switch */
	int			 ms_reload_again;	/* SIGHUP meanwhile */
	int			 ms_stop;	/* signals received: 0, 1, 2 */
};

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

static void	main_reload(struct main_state *);

/* Report the audit checkpoint, if records were written since the last. */
static void
main_checkpoint_send(void)
{
	struct iovec	 iov;
	char		 hash[2 * AUDIT_HASH_LEN + 1], line[160];
	uint64_t	 seq;
	int		 len;

	if (audit_checkpoint(&seq, hash) != 1)
		return;
	log_info("audit checkpoint: seq %" PRIu64 " hash %s", seq, hash);
	/* And to the syslog sinks, MSGID "checkpoint"; never blocks. */
	len = snprintf(line, sizeof(line), "{\"type\":\"checkpoint\","
	    "\"seq\":%" PRIu64 ",\"hash\":\"%s\"}", seq, hash);
	iov.iov_base = line;
	iov.iov_len = (size_t)len;
	if (sink_count() > 0 && sink_send("checkpoint", &iov, 1, 0) == -1)
		log_warnx("audit checkpoint: no syslog sink took it");
}

/* Every audit_checkpoint_interval: the checkpoint, then the next one. */
static void
main_checkpoint(evutil_socket_t fd, short what, void *arg)
{
	struct main_state	*ms = arg;

	(void)fd;
	(void)what;
	main_checkpoint_send();
	timer_add_ms(ms->ms_ckpt_ev, ms->ms_conf->cf_audit_checkpoint_interval);
}

/* Every worker has the new generation: the old one goes (when unused). */
static void
main_reload_done(struct main_state *ms)
{
	struct config	*old = ms->ms_conf;

	ms->ms_conf = ms->ms_next;
	ms->ms_next = NULL;
	config_unref(old);
	metrics_reload_result(1);
	log_info("reload: configuration %u in force", ms->ms_conf->cf_gen);
	/* A stop that came meanwhile: systemd was told STOPPING=1 already. */
	if (!ms->ms_stop)
		(void)main_notify("READY=1\nSTATUS=serving\n");
	if (ms->ms_reload_again) {
		ms->ms_reload_again = 0;
		main_reload(ms);
	}
}

/*
 * SIGHUP: read the whole configuration and every key again and check them
 * as -t does, open the listening sockets it adds, then hand it to every
 * worker; it is in force once all have switched (main_reload_done()).
 * Anything wrong and nothing changes: the error is logged as FILE:LINE:
 * message and the generation in force keeps serving. The audit log is
 * reopened either way.
 */
static void
main_reload(struct main_state *ms)
{
	struct config	*cf = NULL;
	char		 msg[64], *cause = NULL, *why = NULL;
	int		 i, governor_set = 0;

	if (ms->ms_stop) {
		log_info("SIGHUP: shutting down, not reloading");
		return;
	}
	if (ms->ms_switching > 0) {
		ms->ms_reload_again = 1;
		return;
	}
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu\n",
	    (unsigned long long)request_clock_us(CLOCK_MONOTONIC));
	(void)main_notify(msg);
	log_info("SIGHUP: reloading %s", ms->ms_file);
	if ((cf = main_config_new(ms->ms_file, 0, &cause)) == NULL ||
	    server_open(cf, ms->ms_conf, &cause) == -1)
		goto fail;
	/* Each tenant's budget by name: before anything else changes. */
	metrics_register(cf);
	governor_set = 1;
	if (governor_configure(cf, &cause) == -1)
		goto fail;
	/* One key per chain segment: a new one waits for a restart. */
	if (!audit_key_same(cf->cf_audit_key != NULL ?
	    (const unsigned char *)cf->cf_audit_key->k_data : NULL,
	    cf->cf_audit_key != NULL ? cf->cf_audit_key->k_len : 0))
		log_warnx("reload: the audit HMAC key changed; the chain keeps "
		    "the key it started with until xdrproxy is restarted");
	/* The old file's last records: covered before the switch. */
	main_checkpoint_send();
	if (audit_switch(cf->cf_audit_log, &why) == -1) {
		if (asprintf(&cause, "%s:%d: %s", cf->cf_file,
		    cf->cf_audit_log_line, why != NULL ? why :
		    "out of memory") == -1)
			cause = NULL;
		free(why);
		goto fail;
	}
	/* The last step that can fail: the audit log goes back if it does. */
	if (admin_reconfigure(cf, &cause) == -1) {
		if (audit_switch(ms->ms_conf->cf_audit_log, &why) == -1) {
			log_warnx("reload: %s", why != NULL ? why :
			    "out of memory");
			free(why);
		}
		goto fail;
	}
	if (sink_configure(cf, &why) == -1) {
		log_warnx("reload: %s", why != NULL ? why : "out of memory");
		free(why);
	}
	if (cf->cf_workers != ms->ms_nworkers)
		log_warnx("%s: workers = %d takes effect at the next restart; "
		    "%d keep running", cf->cf_file, cf->cf_workers,
		    ms->ms_nworkers);
	if (main_changed(cf->cf_rate_backend, ms->ms_conf->cf_rate_backend) ||
	    main_changed(cf->cf_redis_password_file,
	    ms->ms_conf->cf_redis_password_file) ||
	    cf->cf_fleet_size != ms->ms_conf->cf_fleet_size)
		log_warnx("%s: rate_backend, redis_password_file and "
		    "fleet_size take effect at the next restart; running on as "
		    "before", cf->cf_file);
	if (main_changed(cf->cf_user, ms->ms_conf->cf_user) ||
	    main_changed(cf->cf_group, ms->ms_conf->cf_group))
		log_warnx("%s:%d: user/group changes need a restart; "
		    "running on as before", cf->cf_file, cf->cf_user_line);
	cf->cf_gen = ms->ms_conf->cf_gen + 1;
	ms->ms_next = cf;
	ms->ms_switching = ms->ms_nworkers;
	for (i = 0; i < ms->ms_nworkers; i++)
		worker_reconfigure(&ms->ms_workers[i], cf);
	return;
fail:
	log_warnx("reload failed: %s; configuration %u stays in force",
	    cause != NULL ? cause : "out of memory", ms->ms_conf->cf_gen);
	/* The budgets' settings back to the generation in force. */
	if (governor_set && governor_configure(ms->ms_conf, &why) == -1) {
		log_warnx("reload: %s", why != NULL ? why : "out of memory");
		free(why);
		why = NULL;
	}
	free(cause);
	metrics_reload_result(0);
	config_unref(cf);
	if (audit_reopen(&why) == -1) {
		log_warnx("SIGHUP: %s", why != NULL ? why : "out of memory");
		free(why);
	}
	(void)main_notify("READY=1\nSTATUS=serving; the last reload "
	    "failed\n");
}

/* What the workers report: a loop ended, a generation in force. */
static void
main_report(evutil_socket_t fd, short what, void *arg)
{
	struct main_state	*ms = arg;
	unsigned char		 buf[64];
	ssize_t			 n, i;

	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (i = 0; i < n; i++) {
			if (buf[i] == WORKER_ENDED)
				ms->ms_running--;
			else if (buf[i] == WORKER_SWITCHED &&
			    --ms->ms_switching == 0)
				main_reload_done(ms);
		}
	}
	if (ms->ms_running <= 0)
		event_base_loopbreak(ms->ms_base);
}

static void
main_signal(evutil_socket_t sig, short what, void *arg)
{
	struct main_state	*ms = arg;
	char			*cause;
	int			 i;

	if (sig == SIGHUP) {
		main_reload(ms);
		return;
	}
	/* SIGUSR1 is logrotate's postrotate convention (nginx's too). */
	if (sig == SIGUSR1) {
		if (audit_reopen(&cause) == -1) {
			log_warnx("SIGUSR1: %s", cause != NULL ? cause :
			    "out of memory");
			free(cause);
		} else
			log_info("SIGUSR1: audit log reopened");
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
		{ "live", no_argument, NULL, 'L' },
		{ NULL, 0, NULL, 0 }
	};
	struct config			*cf;
	struct main_state		 ms;
	struct event			*sigs[4];
	const int			 signos[4] = { SIGTERM, SIGINT, SIGHUP,
					    SIGUSR1 };
	const char			*file = DEFAULT_CONFIG;
	char				*cause = NULL;
	int				 ch, test = 0, live = 0, verbose = 0, i;

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
		case 'L':
			live = 1;
			break;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (live && !test) {
		fprintf(stderr, "xdrproxy: --live goes with -t\n");
		usage(stderr);
		return 2;
	}

	priv_harden();
	signal(SIGPIPE, SIG_IGN);
	log_init(verbose);

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		fatalx("libcurl initialisation failed");
	if ((cf = main_config_new(file, 1, &cause)) == NULL ||
	    main_open_audit(cf, &cause) == -1 ||
	    (test && priv_check(cf, &cause) == -1)) {
		fprintf(stderr, "%s\n", cause != NULL ? cause :
		    "out of memory");
		free(cause);
		audit_close();
		config_free(cf);
		curl_global_cleanup();
		return 1;
	}
	if (test) {
		fprintf(stderr, "%s: configuration OK\n", file);
		/* One signed call per tenant; any failure fails -t. */
		i = live ? live_check(cf) : 0;
		audit_close();
		config_free(cf);
		curl_global_cleanup();
		return i == 0 ? 0 : 1;
	}

	audit_chain_init();
	if (server_init(cf->cf_workers) == -1)
		fatalx("out of memory");
	if (server_activated(&cause) == -1 ||
	    server_open(cf, NULL, &cause) == -1)
		fatalx("%s", cause != NULL ? cause : "out of memory");
	server_activated_done();
	cf->cf_gen = 1;
	/* Tenant counter slots, the start time, the first load's time. */
	if (metrics_init(cf) == -1)
		fatalx("out of memory");
	/* The tenants' budgets by name; the thread starts after the drop. */
	if (governor_configure(cf, &cause) == -1)
		fatalx("%s", cause != NULL ? cause : "out of memory");
	memset(&ms, 0, sizeof(ms));
	ms.ms_file = file;
	ms.ms_conf = cf;
	ms.ms_nworkers = cf->cf_workers;
	if (pipe2(ms.ms_report, O_CLOEXEC | O_NONBLOCK) == -1)
		fatal("pipe");
	if ((ms.ms_base = event_base_new()) == NULL ||
	    (ms.ms_report_ev = event_new(ms.ms_base, ms.ms_report[0],
	    EV_READ | EV_PERSIST, main_report, &ms)) == NULL ||
	    event_add(ms.ms_report_ev, NULL) == -1 ||
	    (ms.ms_workers = calloc((size_t)ms.ms_nworkers,
	    sizeof(*ms.ms_workers))) == NULL)
		fatalx("out of memory");
	for (i = 0; i < ms.ms_nworkers; i++) {
		if (worker_init(&ms.ms_workers[i], i, cf, &cause) == -1)
			fatalx("%s", cause != NULL ? cause : "out of memory");
	}
	if ((ms.ms_ckpt_ev = evtimer_new(ms.ms_base, main_checkpoint,
	    &ms)) == NULL)
		fatalx("out of memory");
	timer_add_ms(ms.ms_ckpt_ev, cf->cf_audit_checkpoint_interval);
	if (admin_start(ms.ms_base, cf, &cause) == -1)
		fatalx("%s", cause != NULL ? cause : "out of memory");
	if (expiry_start(ms.ms_base, &ms.ms_conf) == -1)
		fatalx("out of memory");
	/* Everything root had to open is open: drop before any worker. */
	if (priv_drop(cf, &cause) == -1)
		fatalx("%s", cause != NULL ? cause : "out of memory");
	/* The governor's thread (and its Redis), before any worker runs. */
	if (governor_start(cf, &cause) == -1)
		fatalx("%s", cause != NULL ? cause : "out of memory");
	/* The syslog sinks' thread, before any worker can audit. */
	if (sink_configure(cf, &cause) == -1)
		fatalx("%s", cause != NULL ? cause : "out of memory");
	for (i = 0; i < 4; i++) {
		if ((sigs[i] = evsignal_new(ms.ms_base, signos[i], main_signal,
		    &ms)) == NULL || evsignal_add(sigs[i], NULL) == -1)
			fatalx("cannot handle signal %d", signos[i]);
	}
	for (i = 0; i < ms.ms_nworkers; i++) {
		ms.ms_running++;
		if (worker_start(&ms.ms_workers[i], ms.ms_report[1]) == -1)
			fatal("pthread_create");
	}
	log_info("xdrproxy %s running, %d worker%s", PACKAGE_VERSION,
	    ms.ms_nworkers, ms.ms_nworkers == 1 ? "" : "s");
	/* systemd's Type=notify: the listeners are open. */
	(void)main_notify("READY=1\nSTATUS=serving\n");

	event_base_dispatch(ms.ms_base);

	for (i = 0; i < ms.ms_nworkers; i++)
		worker_join(&ms.ms_workers[i]);
	/* No grant may reach a worker from here on. */
	governor_stop();
	/* The last records, for whoever verifies the file later. */
	main_checkpoint_send();
	sink_stop();
	admin_free();
	expiry_stop();
	event_free(ms.ms_ckpt_ev);
	log_info("stopped");
	for (i = 0; i < 4; i++)
		event_free(sigs[i]);
	for (i = 0; i < ms.ms_nworkers; i++)
		worker_free(&ms.ms_workers[i]);
	free(ms.ms_workers);
	/* After the workers: their requests gave back what they held. */
	governor_free();
	metrics_free();
	event_free(ms.ms_report_ev);
	event_base_free(ms.ms_base);
	close(ms.ms_report[0]);
	close(ms.ms_report[1]);
	curl_global_cleanup();
	audit_close();
	config_unref(ms.ms_next);
	config_unref(ms.ms_conf);
	libevent_global_shutdown();
	return 0;
}
