#!/bin/bash
# t_mockrate.sh: the mock tenant's limits, the busy tenant the governor
# (issue 10) is tested against. --rate N: past N requests in one second it
# answers 429 with the vendor's error, logs it, and serves again a second
# later. --xql-max N: at most N XQL queries run at once (PENDING for
# --xql-ms, then SUCCESS); a start beyond that gets the vendor's error.
# Today xdrproxy relays both as the tenant's answers.
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
# A second later the window has room again.
served() { [ "$(curl -sS -o /dev/null -w '%{http_code}' -X POST -d '{}' "$URL/public_api/v1/x/later/")" = 200 ]; }
if wait_for 5 served; then pass "served again once the second is over"; else fail "still 429 after 5 s"; fi

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
