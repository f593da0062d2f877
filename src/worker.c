/*
 * worker.c: one event loop per thread (workers = N). Each worker has its
 * own listeners (SO_REUSEPORT when there are several), libcurl multi
 * handle, signer and requests; nothing of a request crosses threads. The
 * main thread asks a worker to stop or to put a new configuration in
 * force by writing a byte to the worker's control pipe (worker_stop() and
 * worker_reconfigure(), the only calls made from another thread), and
 * learns that it did from a byte on the main thread's report pipe. No
 * event base is shared, so libevent runs without locks.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "xdrproxy.h"

/*
 * An event base whose epoll changes are batched per loop turn: evhttp and
 * libcurl turn read and write interest on and off several times per
 * request, and most of those changes cancel out.
 */
static struct event_base *
worker_base_new(void)
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

/*
 * shutdown_timeout passed (or a second signal): end what is still running
 * with 503 and give the replies a second to be written; the second time,
 * stop regardless (a client that stopped reading cannot hold the exit).
 */
static void
worker_deadline(evutil_socket_t fd, short what, void *arg)
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
	request_end_all(w, 503, "shutting_down");
	timer_add_ms(w->w_shutdown_timer, 1000);
}

/* Tell the main thread (WORKER_ENDED, WORKER_SWITCHED). */
static void
worker_report(struct worker *w, unsigned char what)
{
	while (write(w->w_report, &what, 1) == -1 && errno == EINTR)
		;
}

/* Does anything of w still use generation cf? */
static int
worker_uses(struct worker *w, const struct config *cf)
{
	struct request	*req;
	struct listener	*ln;

	if (w->w_conf == cf)
		return 1;
	TAILQ_FOREACH(ln, &w->w_listeners, ln_entry)
		if (ln->ln_conf == cf)
			return 1;
	TAILQ_FOREACH(req, &w->w_live, req_entry)
		if (req->req_conf == cf)
			return 1;
	return 0;
}

/*
 * A request or a listener of generation cf is gone (already off its list):
 * the worker's reference goes with the last of them. Only generations
 * older than the one in force get here, so the common case costs a
 * comparison.
 */
void
worker_release(struct worker *w, struct config *cf)
{
	if (cf != w->w_conf && !worker_uses(w, cf))
		config_unref(cf);
}

/*
 * Put the generation the main thread left in w_next in force: listeners
 * handed over, new ones opened, libcurl's limits set. Requests already
 * admitted keep theirs.
 */
static void
worker_switch(struct worker *w)
{
	struct config	*cf, *old = w->w_conf;
	char		*cause;

	if ((cf = atomic_exchange(&w->w_next, NULL)) == NULL)
		return;
	if (server_reconfigure(w, cf, &cause) == -1) {
		log_warnx("worker %d: %s", w->w_index, cause != NULL ? cause :
		    "out of memory");
		free(cause);
	}
	w->w_conf = cf;
	upstream_configure(w, cf);
	worker_release(w, old);
	worker_report(w, WORKER_SWITCHED);
}

/* In the worker's thread: act on what the main thread asked. */
static void
worker_control(evutil_socket_t fd, short what, void *arg)
{
	struct worker	*w = arg;
	unsigned char	 buf[16];
	ssize_t		 n, i;
	int		 level = 0;

	while ((n = read(fd, buf, sizeof(buf))) > 0)
		for (i = 0; i < n; i++) {
			if (buf[i] == WORKER_RECONFIGURE)
				worker_switch(w);
			else if (buf[i] == WORKER_GRANTED)
				governor_take(w);
			else if (buf[i] > level)
				level = buf[i];
		}
	if (level >= WORKER_DRAIN && w->w_draining == 0) {
		log_info("worker %d: stopping, %zu requests in flight",
		    w->w_index, w->w_nlive);
		w->w_draining = 1;
		server_stop_accepting(w);
		timer_add_ms(w->w_shutdown_timer,
		    w->w_conf->cf_shutdown_timeout);
		if (w->w_nlive == 0)
			event_base_loopbreak(w->w_base);
	}
	if (level >= WORKER_END_NOW && w->w_draining == 1) {
		log_info("worker %d: ending %zu requests now", w->w_index,
		    w->w_nlive);
		evtimer_del(w->w_shutdown_timer);
		worker_deadline(-1, 0, w);
	}
}

/* A byte for the worker; a full pipe already holds one it will read. */
static void
worker_tell(struct worker *w, unsigned char c)
{
	while (write(w->w_ctl[1], &c, 1) == -1 && errno == EINTR)
		;
}

/* The governor granted requests of w's (any thread). */
void
worker_wake(struct worker *w)
{
	worker_tell(w, WORKER_GRANTED);
}

/*
 * Ask the worker to stop, from any thread: level 1 drains (stop accepting,
 * let requests finish up to shutdown_timeout), level 2 ends them now.
 */
void
worker_stop(struct worker *w, int level)
{
	worker_tell(w, level >= 2 ? WORKER_END_NOW : WORKER_DRAIN);
}

/*
 * From the main thread: put cf in force (a reference for the worker comes
 * with it); WORKER_SWITCHED is reported once it is. One at a time: the
 * main thread waits for every worker before the next.
 */
void
worker_reconfigure(struct worker *w, struct config *cf)
{
	atomic_store(&w->w_next, config_ref(cf));
	worker_tell(w, WORKER_RECONFIGURE);
}

/* Set up worker number index (listeners included) in the main thread. */
int
worker_init(struct worker *w, int index, struct config *cf, char **cause)
{
	memset(w, 0, sizeof(*w));
	w->w_index = index;
	w->w_conf = config_ref(cf);
	w->w_report = -1;
	TAILQ_INIT(&w->w_listeners);
	TAILQ_INIT(&w->w_conns);
	TAILQ_INIT(&w->w_live);
	TAILQ_INIT(&w->w_done);
	TAILQ_INIT(&w->w_granted);
	*cause = NULL;
	w->w_ctl[0] = w->w_ctl[1] = -1;
	if (pipe2(w->w_ctl, O_CLOEXEC | O_NONBLOCK) == -1) {
		if (asprintf(cause, "pipe: %s", strerror(errno)) == -1)
			*cause = NULL;
		return -1;
	}
	if (metrics_worker_add(w) == -1) {
		*cause = strdup("out of memory");
		return -1;
	}
	if ((w->w_base = worker_base_new()) == NULL ||
	    (w->w_scratch = evbuffer_new()) == NULL ||
	    (w->w_audit = evbuffer_new()) == NULL ||
	    (w->w_reaper = event_new(w->w_base, -1, 0, request_reap, w)) ==
	    NULL ||
	    (w->w_control = event_new(w->w_base, w->w_ctl[0],
	    EV_READ | EV_PERSIST, worker_control, w)) == NULL ||
	    event_add(w->w_control, NULL) == -1 ||
	    (w->w_shutdown_timer = evtimer_new(w->w_base, worker_deadline,
	    w)) == NULL ||
	    (w->w_sweep = event_new(w->w_base, -1, 0, server_sweep, w)) ==
	    NULL) {
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

static void *
worker_main(void *arg)
{
	struct worker	*w = arg;

	event_base_dispatch(w->w_base);
	worker_report(w, WORKER_ENDED);
	return NULL;
}

/* Run the worker's loop in a thread of its own; it reports to fd. */
int
worker_start(struct worker *w, int report)
{
	w->w_report = report;
	if (pthread_create(&w->w_thread, NULL, worker_main, w) != 0)
		return -1;
	w->w_started = 1;
	return 0;
}

void
worker_join(struct worker *w)
{
	if (w->w_started)
		pthread_join(w->w_thread, NULL);
	w->w_started = 0;
}

/*
 * Free everything; the worker's thread has ended. Requests still live
 * (their replies being written, or queued to end when the loop stopped)
 * are audited and ended first: server_free() frees evhttp's connections
 * and requests.
 */
void
worker_free(struct worker *w)
{
	request_abandon_all(w);
	/* Its counts live on in metrics.c's totals. */
	metrics_worker_remove(w);
	server_free(w);
	upstream_free(w);
	config_unref(atomic_exchange(&w->w_next, NULL));
	config_unref(w->w_conf);
	w->w_conf = NULL;
	sign_free(&w->w_signer);
	if (w->w_shutdown_timer != NULL)
		event_free(w->w_shutdown_timer);
	if (w->w_sweep != NULL)
		event_free(w->w_sweep);
	if (w->w_control != NULL)
		event_free(w->w_control);
	if (w->w_reaper != NULL)
		event_free(w->w_reaper);
	if (w->w_audit != NULL)
		evbuffer_free(w->w_audit);
	if (w->w_scratch != NULL)
		evbuffer_free(w->w_scratch);
	if (w->w_base != NULL)
		event_base_free(w->w_base);
	if (w->w_ctl[0] != -1)
		close(w->w_ctl[0]);
	if (w->w_ctl[1] != -1)
		close(w->w_ctl[1]);
}
