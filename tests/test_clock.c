/*
 * test_clock.c: the tenant's clock: HTTP-dates, the skew and its rounding,
 * the once-per-10-minutes warning, the formatting.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xdrproxy.h"
#include "unit.h"

static void
test_parse(void)
{
	int64_t	 t;

	/* RFC 9110 5.6.7: IMF-fixdate, and the obsolete two. */
	CHECK(clock_parse_date("Sun, 06 Nov 1994 08:49:37 GMT", &t) == 0 &&
	    t == 784111777);
	CHECK(clock_parse_date("Sunday, 06-Nov-94 08:49:37 GMT", &t) == 0 &&
	    t == 784111777);
	CHECK(clock_parse_date("Sun Nov  6 08:49:37 1994", &t) == 0 &&
	    t == 784111777);
	CHECK(clock_parse_date("Wed, 02 Dec 2026 07:00:00 GMT", &t) == 0 &&
	    t == 1796194800);
	CHECK(clock_parse_date("", &t) == -1);
	CHECK(clock_parse_date("yesterday", &t) == -1);
}

static void
test_skew(void)
{
	char	 buf[32];

	/* Date D covers D..D+1s: an exact clock is within 0.5 s. */
	CHECK(clock_skew_ms(1000, 1000000) == 500);
	CHECK(clock_skew_ms(1000, 1000999) == -499);
	CHECK(clock_skew_ms(1075, 1000000) == 75500);
	CHECK(clock_skew_ms(925, 1000000) == -74500);

	clock_format(buf, sizeof(buf), 75200);
	CHECK_STR(buf, "+75.2 s");
	clock_format(buf, sizeof(buf), -400);
	CHECK_STR(buf, "-0.4 s");
	clock_format(buf, sizeof(buf), 0);
	CHECK_STR(buf, "+0.0 s");
	clock_format(buf, sizeof(buf), 449);
	CHECK_STR(buf, "+0.4 s");
	clock_format(buf, sizeof(buf), 450);
	CHECK_STR(buf, "+0.5 s");
	clock_format(buf, sizeof(buf), -59999);
	CHECK_STR(buf, "-60.0 s");
	clock_format(buf, sizeof(buf), INT64_MIN);
	CHECK(buf[0] == '-');
}

static void
test_record(void)
{
	struct tenant	*tn = calloc(1, sizeof(*tn));
	int64_t		 ms = 1, mono = 5000000;

	CHECK(clock_skew_get(tn, &ms) == -1 && ms == 1);
	/* Within 60 s: kept, no warning. */
	CHECK(clock_record(tn, 60000, mono) == 0);
	CHECK(clock_skew_get(tn, &ms) == 0 && ms == 60000);
	CHECK(clock_record(tn, -60000, mono) == 0);
	/* Moves under 100 ms are not written (the line stays shared). */
	CHECK(clock_record(tn, -59950, mono) == 0);
	CHECK(clock_skew_get(tn, &ms) == 0 && ms == -60000);
	CHECK(clock_record(tn, -59900, mono) == 0);
	CHECK(clock_skew_get(tn, &ms) == 0 && ms == -59900);
	/* Over: one warning, then none for 10 minutes, either way. */
	CHECK(clock_record(tn, 60001, mono) == 1);
	CHECK(clock_skew_get(tn, &ms) == 0 && ms == 60001);
	CHECK(clock_record(tn, 75000, mono + 1000) == 0);
	CHECK(clock_record(tn, -90000, mono + 599999) == 0);
	CHECK(clock_skew_get(tn, &ms) == 0 && ms == -90000);
	CHECK(clock_record(tn, -90000, mono + 600000) == 1);
	CHECK(clock_record(tn, -90000, mono + 600001) == 0);
	/* A monotonic clock at 0 still counts as a warning given. */
	memset(tn, 0, sizeof(*tn));
	CHECK(clock_record(tn, 100000, 0) == 1);
	CHECK(clock_record(tn, 100000, 1000) == 0);
	free(tn);
}

int
main(void)
{
	test_parse();
	test_skew();
	test_record();
	return unit_exit("test_clock");
}
