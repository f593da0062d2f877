/* test_audit.c: the audit chain's line parsing (last line, leading seq). */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "xdrproxy.h"
#include "unit.h"

#define SEQ(s, want) do {						\
	uint64_t v = 0;							\
	CHECK(audit_line_seq(s, sizeof(s) - 1, &v) == 0 && v == (want));	\
} while (0)
#define NOTSEQ(s) do {							\
	uint64_t v = 0;							\
	CHECK(audit_line_seq(s, sizeof(s) - 1, &v) == -1);		\
} while (0)

int
main(void)
{
	size_t	 off, n, keep;
	const char *b;

	SEQ("{\"type\":\"request\",\"seq\":1,\"prev\":\"0\"}", 1);
	SEQ("{\"type\":\"response\",\"seq\":18446744073709551,\"x\":1}",
	    18446744073709551ULL);
	NOTSEQ("{\"type\":\"checkpoint\",\"seq\":1,\"x\":1}");
	NOTSEQ("{\"type\":\"request\",\"seq\":01,\"x\":1}");
	NOTSEQ("{\"type\":\"request\",\"seq\":,\"x\":1}");
	NOTSEQ("{\"type\":\"request\",\"seq\":1}");
	NOTSEQ("{\"type\":\"request\",\"seq\":1,\"x\":1");
	NOTSEQ("{\"type\":\"request\",\"seq\":12345678901234567890,\"x\":1}");
	NOTSEQ("{\"ts\":\"2026\"}");
	NOTSEQ("{\"type\":\"request\"");

	b = "a\nbc\n";
	CHECK(audit_last_line(b, strlen(b), 1, &off, &n, &keep) == 0 &&
	    off == 2 && n == 2 && keep == 5);
	b = "abc\n";
	CHECK(audit_last_line(b, strlen(b), 1, &off, &n, &keep) == 0 &&
	    off == 0 && n == 3 && keep == 4);
	/* Not the file's start: the first line may be a piece. */
	CHECK(audit_last_line(b, strlen(b), 0, &off, &n, &keep) == -1 &&
	    keep == 4);
	b = "a\nbc\nde";	/* torn tail */
	CHECK(audit_last_line(b, strlen(b), 1, &off, &n, &keep) == 0 &&
	    off == 2 && n == 2 && keep == 5);
	b = "torn";
	CHECK(audit_last_line(b, strlen(b), 1, &off, &n, &keep) == -1 &&
	    keep == 0);
	b = "a\n\n";	/* an empty last line is not ours */
	CHECK(audit_last_line(b, strlen(b), 1, &off, &n, &keep) == -1);
	CHECK(audit_last_line("", 0, 1, &off, &n, &keep) == -1);
	return unit_exit("test_audit");
}
