#!/bin/bash
# t_mockrate.sh: the mock tenant's limits, the busy tenant the governor
# (issue 10) is tested against. --rate N [--rate-burst B]: a token bucket
# (GCRA) of N a second and a burst of B (default N); a request too early
# gets 429 with the vendor's error and a rate_limited log line, and does
# not use up the bucket. Each request line and rate_limited line ends with
# "at", the mock's receive time in ms, which the pacing checks measure
# against. X-Mock-Status-Times: K limits X-Mock-Status to the first K
# requests for a URI. --xql-max N: at most N XQL queries run at once
# (PENDING for --xql-ms, then SUCCESS); a start beyond that gets the
# vendor's error. Today xdrproxy relays all of them as the tenant's answers.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

make_pki
start_mock --rate 3
write_config
start_proxy

: > "$T/urls"
for i in $(seq 1 12); do
	printf 'url = "%s/public_api/v1/x/burst-%s/"\n' "$URL" "$i" >> "$T/urls"
	printf 'output = "%s/out.%s"\n' "$T" "$i" >> "$T/urls"
done
codes=$(curl -sS --no-progress-meter --parallel --parallel-max 12 -X POST -d '{}' -K "$T/urls" \
    -w '%{http_code}\n' | sort | uniq -c | tr -s ' ' | tr '\n' ' ')
n429=$(grep -l '"err_code":429' "$T"/out.* | wc -l)
expect_match "a burst of 12 against --rate 3: some 429" "$codes" ' 429 '
expect_match "at least the first 3 served" \
    "$(grep -c '"err_code"' "$T"/out.* | grep -c ':0$')" '^([3-9]|1[0-2])$'
expect_match "the 429 is the vendor's error" "$(grep -h '"err_code":429' "$T"/out.* | head -n 1)" \
    '^\{"reply":\{"err_code":429,"err_msg":"Too many requests","err_extra":null\}\}$'
wait_num 5 -ge 12 audit_count
expect_eq "each 429 logged by the mock" \
    "$(grep -c '"event":"rate_limited"' "$MOCK_LOG")" "$n429"
expect_eq "xdrproxy relays the tenant's 429 (outcome ok)" \
    "$(audit_responses | grep -c '"status":429,.*"outcome":"ok"')" "$n429"
expect_eq "a request answered 429 is logged as a request too" \
    "$(grep '"event":"request"' "$MOCK_LOG" | grep -c '"uri":"/public_api/v1/x/burst-')" 12
# "at": the receive time, ms since the epoch by the real clock, last.
expect_eq "every request line ends with a numeric \"at\"" \
    "$(grep '"event":"request"' "$MOCK_LOG" | grep -cvE ',"at":[0-9]{13}\}$')" 0
expect_match "a rate_limited line: uri, then at" \
    "$(grep '"event":"rate_limited"' "$MOCK_LOG" | head -n 1)" \
    '^\{"event":"rate_limited","uri":"/public_api/v1/x/burst-[0-9]+/","at":[0-9]{13}\}$'
at=$(grep '"event":"request"' "$MOCK_LOG" | tail -n 1 | sed 's/.*,"at":\([0-9]*\)}$/\1/')
now=$(date +%s%3N)
expect_match "at is ms since the epoch, of the last minute" \
    "$(( now - at >= 0 && now - at < 60000 ))" '^1$'
# The bucket refills: soon served again.
served() { [ "$(curl -sS -o /dev/null -w '%{http_code}' -X POST -d '{}' "$URL/public_api/v1/x/later/")" = 200 ]; }
if wait_for 5 served; then pass "served again once the bucket refills"; else fail "still 429 after 5 s"; fi
stop_proxy

# --rate 5 --rate-burst 1: one request every 200 ms, no burst. Requests
# 250 ms apart are served; of two back to back, the second is refused.
start_mock paced --rate 5 --rate-burst 1
write_config
start_proxy
post() { px -o /dev/null -w '%{http_code}' -X POST -d '{}' "$1"; }
codes=
for i in 1 2 3 4; do
	codes="$codes $(post "/public_api/v1/x/paced-$i/")"
	sleep 0.25	# on purpose: the spacing under test
done
expect_eq "requests 250 ms apart: all served" "$codes" " 200 200 200 200"
# pacelog: "URI GAP CODE" per request, in order; GAP is the ms (by "at")
# since the last request served, -1 for the first; CODE 429 if the mock
# logged it rate_limited.
pacelog() {
	sed -n -e 's/^{"event":"request","conn":[0-9]*,"method":"[A-Z]*","uri":"\([^"]*\)".*,"at":\([0-9]*\)}$/request \1 \2/p' \
	    -e 's/^{"event":"rate_limited","uri":"\([^"]*\)","at":\([0-9]*\)}$/limited \1 \2/p' "$MOCK_LOG" |
	awk '$1 == "limited" { lim[$2] = 1 }
	    $1 == "request" { n++; u[n] = $2; at[n] = $3 }
	    END {
		last = -1
		for (i = 1; i <= n; i++) {
			gap = last < 0 ? -1 : at[i] - last
			if (u[i] in lim)
				print u[i], gap, 429
			else {
				print u[i], gap, 200
				last = at[i]
			}
		}
	    }'
}
expect_eq "the log: the paced ones at least 250 ms apart, none limited" \
    "$(pacelog | awk '$1 ~ /paced-/ && ($3 != 200 || ($2 != -1 && $2 < 250))' | wc -l)" 0
# Back to back: curl sends the second as soon as the first is answered.
# Should the machine be so slow that they arrive 150 ms apart or more,
# try again (the rule check below holds whatever the gaps were).
for n in 1 2 3; do
	pair=$(curl -sS -o /dev/null -o /dev/null -w '%{http_code} ' -X POST -d '{}' \
	    "$URL/public_api/v1/x/pair-$n-a/" "$URL/public_api/v1/x/pair-$n-b/")
	gap=$(pacelog | awk -v u="/public_api/v1/x/pair-$n-b/" '$1 == u { print $2 }')
	[ -n "$gap" ] && [ "$gap" -lt 150 ] && break
	sleep 0.25	# on purpose: the bucket is full again for the next pair
done
expect_eq "back to back: the first served, the second 429" "$pair" "200 429 "
if [ -n "$gap" ] && [ "$gap" -lt 200 ]; then
	pass "the second arrived $gap ms after the first (by at)"
else
	fail "the pair arrived '$gap' ms apart, not less than 200"
fi
expect_eq "a rate_limited line for the second of the pair" \
    "$(grep -c "^{\"event\":\"rate_limited\",\"uri\":\"/public_api/v1/x/pair-$n-b/\"" "$MOCK_LOG")" 1
expect_eq "none for the first" \
    "$(grep -c "^{\"event\":\"rate_limited\",\"uri\":\"/public_api/v1/x/pair-$n-a/\"" "$MOCK_LOG")" 0
# The rule itself, over everything this mock saw (1 ms either way for
# "at" being whole ms): served only 200 ms or more after the last one
# served, refused only less than that.
bad=$(pacelog | awk '($3 == 200 && $2 != -1 && $2 < 199) || ($3 == 429 && $2 > 200)')
expect_eq "GCRA, burst 1: served iff 200 ms after the last served (by at)" "$bad" ""
stop_proxy

# X-Mock-Status-Times: 2: the tenant fails twice for a URI, then serves.
start_mock
write_config
start_proxy
flaky() {	# URI [X-Mock-Status-Times]: prints the status
	px -o "$T/flaky.out" -w '%{http_code}' -X POST -d '{}' -H 'X-Mock-Status: 503' \
	    -H "X-Mock-Status-Times: ${2:-2}" "$1"
}
u=/public_api/v1/x/flaky/?n=1
expect_eq "503, 503, then 200 for one URI" "$(flaky "$u") $(flaky "$u") $(flaky "$u")" "503 503 200"
expect_match "the third is served as if there were no X-Mock-Status (echo)" \
    "$(cat "$T/flaky.out")" '^\{"reply":\{"method":"POST","uri":"/public_api/v1/x/flaky/\?n=1",'
expect_eq "and so are later ones" "$(flaky "$u")" 200
expect_eq "another query is another URI" "$(flaky /public_api/v1/x/flaky/?n=2)" 503
expect_eq "X-Mock-Status-Times: 0: served at once" "$(flaky /public_api/v1/x/flaky0/ 0)" 200
expect_eq "a bad X-Mock-Status-Times: 400" "$(flaky /public_api/v1/x/flakybad/ x)" 400
expect_eq "X-Mock-Status alone still fails every time" \
    "$(px -o /dev/null -w '%{http_code}' -X POST -d '{}' -H 'X-Mock-Status: 503' "$u")" 503

stop_proxy

# XQL: two may run; a third start is refused until one is done.
start_mock xql --xql-max 2 --xql-ms 1500
write_config
start_proxy
xql() {	# CALL BODY: prints the answer
	curl -sS -X POST -H 'Content-Type: application/json' -d "$2" \
	    "$URL/public_api/v1/xql/$1/"
}
q='{"request_data":{"query":"dataset = xdr_data | limit 1"}}'
expect_eq "first start: a query id" "$(xql start_xql_query "$q")" '{"reply":"mockq-1"}'
expect_eq "second start" "$(xql start_xql_query "$q")" '{"reply":"mockq-2"}'
expect_match "third start while two run: the vendor's error" "$(xql start_xql_query "$q")" \
    '^\{"reply":\{"err_code":500,"err_msg":"The maximum number of concurrent queries has been reached"'
expect_match "results of a running query: PENDING" \
    "$(xql get_query_results '{"request_data":{"query_id":"mockq-1","pending_flag":true}}')" \
    '^\{"reply":\{"status":"PENDING",'
done1() { xql get_query_results '{"request_data":{"query_id":"mockq-1"}}' | grep -q '"status":"SUCCESS"'; }
if wait_for 10 done1; then pass "after --xql-ms: SUCCESS"; else fail "mockq-1 never SUCCESS"; fi
expect_eq "a slot again" "$(xql start_xql_query "$q")" '{"reply":"mockq-3"}'
expect_match "an unknown query id: 500" \
    "$(xql get_query_results '{"request_data":{"query_id":"mockq-99"}}')" '"err_code":500,"err_msg":"unknown query_id"'
expect_eq "the mock logged 3 starts and 1 refusal" \
    "$(grep -c '"event":"xql_start"' "$MOCK_LOG") $(grep -c '"event":"xql_refused"' "$MOCK_LOG")" "3 1"
stop_proxy
finish
