/* test_sink.c: audit_syslog addresses and the RFC 5424 header (sink.c). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "xdrproxy.h"
#include "unit.h"

static int
parses(const char *spec)
{
	struct sink_addr	 sa;
	const char		*why;

	return sink_parse(spec, &sa, &why) == 0;
}

int
main(void)
{
	struct sink_addr	 sa;
	const char		*why;
	char			 buf[512];
	size_t			 n;

	CHECK(sink_parse("unix:/dev/log", &sa, &why) == 0);
	CHECK(sa.sa_kind == SINK_UNIX);
	CHECK_STR(sa.sa_host, "/dev/log");
	CHECK(sink_parse("tcp:siem.example.com:514", &sa, &why) == 0);
	CHECK(sa.sa_kind == SINK_TCP && sa.sa_port == 514);
	CHECK_STR(sa.sa_host, "siem.example.com");
	CHECK_STR(sa.sa_spec, "tcp:siem.example.com:514");
	CHECK(sink_parse("udp:[::1]:6514", &sa, &why) == 0);
	CHECK(sa.sa_kind == SINK_UDP && sa.sa_port == 6514);
	CHECK_STR(sa.sa_host, "::1");
	CHECK(parses("udp:127.0.0.1:65535"));
	CHECK(!parses("unix:dev/log"));
	CHECK(!parses("unix:"));
	CHECK(!parses("unix:/a b"));
	CHECK(!parses("unix:/a\"b"));
	CHECK(!parses("tls:host:6514"));
	CHECK(!parses("tcp:host"));
	CHECK(!parses("tcp::514"));
	CHECK(!parses("tcp:host:0"));
	CHECK(!parses("tcp:host:65536"));
	CHECK(!parses("tcp:host:+5"));
	CHECK(!parses("tcp:host:5x"));
	CHECK(!parses("tcp:host:"));
	CHECK(!parses("tcp:::1:514"));
	CHECK(!parses("tcp:[::1]514"));
	CHECK(!parses("tcp:[zz::1]:514"));
	CHECK(!parses("tcp:[]:514"));
	CHECK(!parses("tcp:bad_host:514"));
	CHECK(!parses("TCP:host:514"));

	CHECK(sink_facility_code("authpriv") == 10);
	CHECK(sink_facility_code("local0") == 16);
	CHECK(sink_facility_code("local7") == 23);
	CHECK(sink_facility_code("kern") == 0);
	CHECK(sink_facility_code("Local0") == -1);

	/* 2026-11-25T07:35:12.345Z */
	n = sink_format_header(buf, sizeof(buf), 10, 1795592112345ULL, "px1",
	    4242, "audit");
	CHECK_STR(buf, "<86>1 2026-11-25T07:35:12.345Z px1 xdrproxy 4242 "
	    "audit - ");
	CHECK(n == strlen(buf));
	n = sink_format_header(buf, sizeof(buf), 16, 5, "", 1, "checkpoint");
	CHECK_STR(buf, "<134>1 1970-01-01T00:00:00.005Z - xdrproxy 1 "
	    "checkpoint - ");
	CHECK(sink_format_header(buf, 10, 10, 0, "h", 1, "audit") == 0);
	return unit_exit("test_sink");
}
