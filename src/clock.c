/* clock.c: the tenant's clock, as its Date headers tell, against ours. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "xdrproxy.h"

/* At most one warning per tenant this often. */
#define CLOCK_WARN_EVERY_MS	(10 * 60 * 1000)

/* An HTTP-date (any of RFC 9110's three forms; libcurl's parser). */
int
clock_parse_date(const char *s, int64_t *out)
{
	time_t	 t;

	if ((t = curl_getdate(s, NULL)) == -1)
		return -1;
	*out = (int64_t)t;
	return 0;
}

/*
 * Tenant time minus local time, in ms. A Date names the second the tenant
 * was in (its clock truncated), so its time was D to D + 1 s: take the
 * middle, D + 500 ms. An exact clock then shows within 0.5 s either way.
 */
int64_t
clock_skew_ms(int64_t date_s, int64_t local_ms)
{
	return date_s * 1000 + 500 - local_ms;
}

/*
 * Keep the latest skew of tenant tn, to 100 ms. Returns 1 when a warning
 * is due: the skew is over CLOCK_SKEW_WARN_MS either way and none was
 * given for this tenant in the last 10 minutes (mono_ms: a monotonic
 * clock, in ms).
 * Workers call this at once; one of them wins the warning.
 */
int
clock_record(struct tenant *tn, int64_t skew_ms, int64_t mono_ms)
{
	int64_t	 last, old;

	/*
	 * Every worker passes here on every answer: write the shared line
	 * only when the skew moved by 100 ms or more, so that steady answers
	 * only read it.
	 */
	old = atomic_load(&tn->tn_skew_ms);
	if (!atomic_load(&tn->tn_skew_known) || old - skew_ms >= 100 ||
	    skew_ms - old >= 100) {
		atomic_store(&tn->tn_skew_ms, skew_ms);
		atomic_store(&tn->tn_skew_known, 1);
	}
	if (skew_ms <= CLOCK_SKEW_WARN_MS && skew_ms >= -CLOCK_SKEW_WARN_MS)
		return 0;
	if (mono_ms == 0)
		mono_ms = 1;	/* 0 means never warned */
	last = atomic_load(&tn->tn_skew_warned_ms);
	if (last != 0 && mono_ms - last < CLOCK_WARN_EVERY_MS)
		return 0;
	return atomic_compare_exchange_strong(&tn->tn_skew_warned_ms, &last,
	    mono_ms);
}

/* The latest skew of tn in *ms: 0, or -1 if no Date was seen yet. */
int
clock_skew_get(const struct tenant *tn, int64_t *ms)
{
	struct tenant	*t = (struct tenant *)(uintptr_t)tn;

	if (!atomic_load(&t->tn_skew_known))
		return -1;
	*ms = atomic_load(&t->tn_skew_ms);
	return 0;
}

/* "+75.2 s", "-0.4 s": seconds to the nearest tenth. */
void
clock_format(char *buf, size_t len, int64_t ms)
{
	uint64_t	 a = ms < 0 ? (uint64_t)-(ms + 1) + 1 : (uint64_t)ms;
	uint64_t	 tenths = (a + 50) / 100;

	snprintf(buf, len, "%c%llu.%u s", ms < 0 ? '-' : '+',
	    (unsigned long long)(tenths / 10), (unsigned)(tenths % 10));
}

/*
 * A Date header of tenant tn's, arriving now: parse, record, and say in
 * *skew_ms what it was. -1 if it is no date; else clock_record()'s answer.
 */
int
clock_observe(struct tenant *tn, const char *date, int64_t *skew_ms)
{
	struct timespec	 wall, mono;
	int64_t		 d;

	if (clock_parse_date(date, &d) == -1)
		return -1;
	clock_gettime(CLOCK_REALTIME, &wall);
	clock_gettime(CLOCK_MONOTONIC_COARSE, &mono);
	*skew_ms = clock_skew_ms(d, (int64_t)wall.tv_sec * 1000 +
	    wall.tv_nsec / 1000000);
	return clock_record(tn, *skew_ms, (int64_t)mono.tv_sec * 1000 +
	    mono.tv_nsec / 1000000);
}
