/*
 * unit.h: a minimal harness for the unit tests. CHECK() records a failure
 * with its file and line and goes on; unit_exit() gives automake's exit
 * status (0 pass, 1 fail).
 */
#ifndef UNIT_H
#define UNIT_H

#include <stdio.h>
#include <string.h>

static int	unit_failures;
static int	unit_checks;

#define CHECK(cond) do {						\
	unit_checks++;							\
	if (!(cond)) {							\
		unit_failures++;					\
		fprintf(stderr, "%s:%d: check failed: %s\n",		\
		    __FILE__, __LINE__, #cond);				\
	}								\
} while (0)

#define CHECK_STR(got, want) do {					\
	const char *unit_g = (got), *unit_w = (want);			\
	unit_checks++;							\
	if (unit_g == NULL || strcmp(unit_g, unit_w) != 0) {		\
		unit_failures++;					\
		fprintf(stderr, "%s:%d: got \"%s\", want \"%s\"\n",	\
		    __FILE__, __LINE__, unit_g ? unit_g : "(null)",	\
		    unit_w);						\
	}								\
} while (0)

static inline int
unit_exit(const char *name)
{
	printf("%s: %d checks, %d failed\n", name, unit_checks, unit_failures);
	return unit_failures == 0 ? 0 : 1;
}

#endif /* UNIT_H */
