/*
 * expiry.c: a tenant's key_expires (or its key store entry's expiry).
 * Warnings at start, on each reload and once a day from 7 days before;
 * on and after the day, requests for the tenant are refused with 503
 * key_expired (proxy.c asks expiry_refused() before forwarding).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "xdrproxy.h"

#define EXPIRY_WARN_DAYS	7
#define EXPIRY_DAY		(24 * 60 * 60)

static struct event		*expiry_ev;
static struct config *const	*expiry_confp;

/* YYYY-MM-DD of a UTC day start. */
static void
expiry_date(int64_t t, char *buf, size_t len)
{
	struct tm	 tm;
	time_t		 tt = (time_t)t;

	if (gmtime_r(&tt, &tm) == NULL || strftime(buf, len, "%Y-%m-%d",
	    &tm) == 0)
		snprintf(buf, len, "?");
}

/* Whether tn's key has expired at now (UTC seconds). */
int
expiry_expired(const struct tenant *tn, int64_t now)
{
	return tn->tn_key_expires != 0 && now >= tn->tn_key_expires;
}

/*
 * A request for req's tenant (of its generation) whose key has expired:
 * -1 and a message in buf; else 0. Cheap: a coarse clock.
 */
int
expiry_refused(const struct request *req, char *buf, size_t len)
{
	const struct tenant	*tn = req->req_tenant;
	char			 day[16];
	int64_t			 now;

	if (tn->tn_key_expires == 0)
		return 0;
	now = (int64_t)(request_clock_us(CLOCK_REALTIME_COARSE) / 1000000);
	if (!expiry_expired(tn, now))
		return 0;
	expiry_date(tn->tn_key_expires, day, sizeof(day));
	snprintf(buf, len, "the API key of tenant %s expired on %s",
	    tn->tn_name, day);
	return -1;
}

/* The warnings due now for cf's tenants, logged. */
void
expiry_check(const struct config *cf)
{
	const struct tenant	*tn;
	char			 day[16];
	int64_t			 now = (int64_t)time(NULL), days;

	TAILQ_FOREACH(tn, &cf->cf_tenants, tn_entry) {
		if (tn->tn_key_expires == 0)
			continue;
		expiry_date(tn->tn_key_expires, day, sizeof(day));
		if (expiry_expired(tn, now)) {
			log_warnx("tenant %s: the API key expired on %s; "
			    "requests get 503 key_expired", tn->tn_name, day);
			continue;
		}
		/* Whole days from today's start to the expiry day's. */
		days = (tn->tn_key_expires - (now - now % EXPIRY_DAY)) /
		    EXPIRY_DAY;
		if (days <= EXPIRY_WARN_DAYS)
			log_warnx("tenant %s: the API key expires on %s (in %lld "
			    "day%s)", tn->tn_name, day, (long long)days,
			    days == 1 ? "" : "s");
	}
}

/* The timer, for one second past the next UTC midnight. */
static int
expiry_arm(void)
{
	struct timeval	 tv;
	time_t		 now = time(NULL);

	tv.tv_sec = EXPIRY_DAY - now % EXPIRY_DAY + 1;
	tv.tv_usec = 0;
	return evtimer_add(expiry_ev, &tv);
}

/* Just after each UTC midnight: check the configuration in force. */
static void
expiry_daily(evutil_socket_t fd, short what, void *arg)
{
	if (expiry_confp != NULL && *expiry_confp != NULL)
		expiry_check(*expiry_confp);
	expiry_arm();
}

/*
 * The daily check in the main loop; *confp is the configuration in force
 * whenever the timer fires. 0, or -1 (out of memory).
 */
int
expiry_start(struct event_base *base, struct config *const *confp)
{
	expiry_confp = confp;
	if ((expiry_ev = evtimer_new(base, expiry_daily, NULL)) == NULL)
		return -1;
	return expiry_arm();
}

void
expiry_stop(void)
{
	if (expiry_ev != NULL)
		event_free(expiry_ev);
	expiry_ev = NULL;
	expiry_confp = NULL;
}
