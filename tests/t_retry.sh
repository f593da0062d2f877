#!/bin/bash
# t_retry.sh: safe retries with fresh signatures. A read call that meets
# 503 is sent again, each attempt signed anew (the mock tenant rejects a
# replayed nonce); an unsafe POST is not; the tenant's 429 is retried after
# its Retry-After, unless that is past retry_cap; a tenant that cannot be
# reached is tried retry_max more times; nothing is retried once the answer
# has started; the retry budget stops retries multiplying an outage.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

make_pki
start_mock
GOVERNOR="rate_limit = 0
retry_base = 100ms
retry_cap = 3s" write_config "" "admin_listen = 127.0.0.1:0
upstream_timeout = 2s"
start_proxy
ADMIN_PORT=$(sed -n 's/.*admin: listening on [^ ]*:\([0-9][0-9]*\) .*/\1/p' "$PROXY_LOG" | head -n 1)
metric() {
	curl -sS "http://127.0.0.1:$ADMIN_PORT/metrics" |
	    awk -v k="$1" 'index($0, k " ") == 1 { print $2 }'
}
# record PATH: the response record of the request to PATH.
record() { audit_responses | grep "\"path\":\"$1\"" | tail -n 1; }
# seen URI: the mock's request lines for URI.
seen() { grep "\"event\":\"request\",.*\"uri\":\"$1\"" "$MOCK_LOG"; }

# A read call: 503 twice, then served.
p=/public_api/v1/incidents/get_incidents/
code=$(px -o "$T/out" -w '%{http_code}' -X POST -d '{"request_data":{}}' \
    -H 'X-Mock-Status: 503' -H 'X-Mock-Status-Times: 2' "$p")
expect_eq "get_incidents after two 503s: 200" "$code" 200
wait_for 5 grep -q "\"path\":\"$p\"" "$T/audit.jsonl"
expect_match "audited: 3 attempts, the answer ok" "$(record "$p")" '"status":200,.*"attempts":3,"outcome":"ok"'
expect_eq "the tenant saw 3 attempts" "$(seen "$p" | wc -l)" 3
expect_eq "each signed and accepted" "$(seen "$p" | grep -c '"auth":"ok"')" 3
expect_eq "3 distinct nonces" "$(seen "$p" | sed 's/.*"nonce":"\([^"]*\)".*/\1/' | sort -u | wc -l)" 3
ts=$(seen "$p" | sed 's/.*"timestamp":"\([0-9]*\)".*/\1/' | tr '\n' ' ')
# shellcheck disable=SC2086
set -- $ts
if [ "$1" -lt "$2" ] && [ "$2" -lt "$3" ]; then pass "each attempt has its own, later timestamp ($ts)"
else fail "timestamps not fresh: $ts"; fi
expect_match "the retry is logged" "$(cat "$PROXY_LOG")" \
    "tenant acme: POST $p: 503 from the tenant; attempt 2 of 4 in [0-9]+ ms, signed anew"
expect_eq "one request record" "$(grep -c "^{\"type\":\"request\",.*\"path\":\"$p\"" "$T/audit.jsonl")" 1

# An unsafe POST: the 503 is the answer.
p=/public_api/v1/incidents/update_incident/
code=$(px -o "$T/out" -w '%{http_code}' -X POST -d '{"request_data":{}}' \
    -H 'X-Mock-Status: 503' -H 'X-Mock-Status-Times: 2' "$p")
expect_eq "update_incident with 503: not retried" "$code" 503
expect_match "the tenant's error relayed" "$(cat "$T/out")" '"err_code":503'
wait_for 5 grep -q "\"path\":\"$p\"" "$T/audit.jsonl"
expect_match "audited: 1 attempt" "$(record "$p")" '"status":503,.*"attempts":1,'
expect_eq "the tenant saw it once" "$(seen "$p" | wc -l)" 1

# GET is safe whatever the path.
p=/public_api/v1/x/thing/
expect_eq "GET after a 502: 200" "$(px -o /dev/null -w '%{http_code}' \
    -H 'X-Mock-Status: 502' -H 'X-Mock-Status-Times: 1' "$p")" 200
expect_eq "the tenant saw it twice" "$(seen "$p" | wc -l)" 2

# The retry budget (3 retries over 10 s at this rate) is spent: a fresh
# process for what follows.
stop_proxy
start_proxy

# 429 from the tenant: retried even for a POST, after its Retry-After.
p=/public_api/v1/incidents/update_incident/?busy=1
code=$(px -o /dev/null -w '%{http_code} %{time_total}' -X POST -d '{}' \
    -H 'X-Mock-Status: 429' -H 'X-Mock-Status-Times: 1' \
    -H 'X-Mock-Header: Retry-After: 1' "$p")
expect_match "a POST after the tenant's 429: 200" "$code" '^200 '
t=${code#* }
if python3 -c "import sys; sys.exit(0 if float('$t') >= 1.0 else 1)"; then
	pass "waited the tenant's Retry-After ($t s)"
else fail "retried after $t s, before the tenant's Retry-After: 1"; fi
expect_eq "the tenant saw it twice" "$(seen "${p%%\?*}?busy=1" | wc -l)" 2

# A Retry-After past retry_cap: the tenant's 429 is the answer.
p=/public_api/v1/incidents/update_incident/?busy=2
code=$(px -o /dev/null -w '%{http_code}' -X POST -d '{}' \
    -H 'X-Mock-Status: 429' -H 'X-Mock-Status-Times: 1' \
    -H 'X-Mock-Header: Retry-After: 60' "$p")
expect_eq "Retry-After: 60 past retry_cap = 3s: the 429 relayed" "$code" 429
expect_eq "the tenant saw it once" "$(seen "${p%%\?*}?busy=2" | wc -l)" 1

# Once the answer has started, no retry: a stream that stalls.
p=/public_api/v1/incidents/get_stream/
code=$(px -o /dev/null -w '%{http_code}' -H 'X-Mock-Stream: 100000' \
    -H 'X-Mock-Stall-After: 1000' "$p" 2>/dev/null)
wait_for 10 grep -q "\"path\":\"$p\"" "$T/audit.jsonl"
expect_match "a stalled answer: cut, not retried" "$(record "$p")" '"status":200,.*"attempts":1,"outcome":"upstream_error","error":"upstream_timeout"'
expect_eq "the tenant saw it once" "$(seen "$p" | wc -l)" 1

# After a retry, the second attempt is watched like a first one: it is
# cut when it stalls, and paused and resumed for a slow client.
p=/public_api/v1/incidents/get_stream_retried/
px -o /dev/null -H 'X-Mock-Status: 503' -H 'X-Mock-Status-Times: 1' \
    -H 'X-Mock-Stream: 100000' -H 'X-Mock-Stall-After: 1000' "$p" 2>/dev/null
wait_for 10 grep -q "\"path\":\"$p\"" "$T/audit.jsonl"
expect_match "a retried answer that stalls: cut by upstream_timeout" "$(record "$p")" \
    '"status":200,.*"attempts":2,"outcome":"upstream_error","error":"upstream_timeout"'
p=/public_api/v1/incidents/get_big_retried/
n=$(px -o "$T/big" -w '%{size_download}' --limit-rate 2M -H 'X-Mock-Status: 503' \
    -H 'X-Mock-Status-Times: 1' -H 'X-Mock-Stream: 4000000' "$p")
expect_eq "a retried answer to a slow client: all 4000000 bytes" "$n" 4000000
expect_eq "its bytes are the tenant's" "$(sha256sum < "$T/big" | cut -d' ' -f1)" \
    "$("$MOCK" --generate 4000000 | sha256sum | cut -d' ' -f1)"
wait_for 10 grep -q "\"path\":\"$p\"" "$T/audit.jsonl"
expect_match "audited: 2 attempts, ok" "$(record "$p")" '"status":200,.*"attempts":2,"outcome":"ok"'
stop_proxy

# A tenant that cannot be reached: tried retry_max (2) more times.
GOVERNOR="rate_limit = 0
retry_max = 2
retry_base = 100ms" MOCK_PORT=1 write_config
start_proxy
out=$T/unreach
px -o "$out.body" -D "$out.head" -X POST -d '{}' /public_api/v1/x/unreachable/
cat "$out.head" "$out.body" > "$out"
expect_proxy_error "unreachable" 502 upstream_unreachable "$out"
wait_for 5 grep -q '"path":"/public_api/v1/x/unreachable/"' "$T/audit.jsonl"
expect_match "audited: 3 attempts" "$(record /public_api/v1/x/unreachable/)" '"status":502,.*"attempts":3,'
expect_eq "two retries logged" "$(grep -c 'POST /public_api/v1/x/unreachable/: .*attempt [23] of 3 in [0-9]* ms, signed anew' "$PROXY_LOG")" 2
stop_proxy

# The retry budget: 10 read calls that all meet 503 get 3 retries in all.
: > "$MOCK_LOG"
GOVERNOR="rate_limit = 0
retry_base = 10ms" write_config "" "admin_listen = 127.0.0.1:0"
start_proxy
ADMIN_PORT=$(sed -n 's/.*admin: listening on [^ ]*:\([0-9][0-9]*\) .*/\1/p' "$PROXY_LOG" | head -n 1)
for i in $(seq 1 10); do
	px -o /dev/null -X POST -d '{}' -H 'X-Mock-Status: 503' "/public_api/v1/x/get_down$i/"
done
expect_eq "13 attempts reached the tenant (10 + a budget of 3)" "$(mock_requests)" 13
expect_eq "metric: 3 retries" "$(metric 'xdrproxy_retries_total{tenant="acme"}')" 3
denied=$(metric 'xdrproxy_retries_denied_total{tenant="acme"}')
if [ "${denied:-0}" -ge 7 ]; then pass "metric: retries denied by the budget ($denied)"
else fail "retries denied: ${denied:-none}"; fi
stop_proxy
finish
