/*
 * fuzz_govconf.c: libFuzzer target for what the governor reads: the
 * first byte picks the parser, the rest is its input. 0: a limit line
 * (govconf.c), 1: a rate_backend address, 2: a rate, 3: a
 * get_query_results request body (xql.c), 4 and 5: start_xql_query and
 * get_query_results answers, plain, 6 and 7: the same gzip'd as the
 * tenant might send them (whatever the bytes, they are inflated). The
 * answers go to a tenant without a governor: only the reading is tested.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xdrproxy.h"

int	 LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define FUZZ_CHECK(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "fuzz_govconf: %s:%d: %s\n", __FILE__,	\
		    __LINE__, #cond);					\
		abort();						\
	}								\
} while (0)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gov_conf		 gc;
	struct gov_backend	 gb;
	struct gov_rate		 gr;
	struct tenant		 tn;
	struct request		 req;
	const char		*why;
	char			*s, *cause, *id;
	size_t			 i;

	if (size == 0 || size > 4096)
		return 0;
	if ((s = malloc(size)) == NULL)
		return 0;
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	switch (data[0] % 8) {
	case 0:
		gov_conf_unset(&gc);
		if (gov_limit_add(&gc, s, "f", 1, &cause) == 0) {
			FUZZ_CHECK(gc.gc_nlimits == 1);
			FUZZ_CHECK(gc.gc_limits[0].glc_burst >= 1);
			/* The glob matches in canonical form. */
			for (i = 0; gc.gc_limits[0].glc_glob[i] != '\0'; i++)
				FUZZ_CHECK(gc.gc_limits[0].glc_glob[i] != ' ');
		} else
			FUZZ_CHECK(cause == NULL || strlen(cause) > 0);
		free(cause);
		gov_conf_free(&gc);
		break;
	case 1:
		if (gov_backend_parse(s, &gb, &why) == 0) {
			FUZZ_CHECK(gb.gb_kind == GOV_BACKEND_LOCAL ||
			    gb.gb_host[0] != '\0');
			FUZZ_CHECK(gb.gb_kind != GOV_BACKEND_REDIS ||
			    (gb.gb_port > 0 && gb.gb_port < 65536));
		} else
			FUZZ_CHECK(why != NULL);
		break;
	case 2:
		if (gov_parse_rate(s, &gr) == 0)
			FUZZ_CHECK(memchr(gr.gr_text, '\0',
			    sizeof(gr.gr_text)) != NULL);
		break;
	case 3:
		id = xql_request_id(s, size - 1);
		FUZZ_CHECK(id == NULL || (strlen(id) > 0 && strlen(id) < 128));
		free(id);
		break;
	default:
		memset(&tn, 0, sizeof(tn));
		memset(&req, 0, sizeof(req));
		req.req_tenant = &tn;
		xql_answer(&req, data[0] % 2 == 0 ? XQL_START : XQL_RESULTS,
		    "q-1", (const unsigned char *)data + 1, size - 1,
		    data[0] % 8 >= 6);
		break;
	}
	free(s);
	return 0;
}
