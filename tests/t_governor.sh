#!/bin/bash
# t_governor.sh: the tenant's budget, shared fairly. 50 clients hammering
# a 10/s tenant for 20 s get every answer and the tenant answers no 429;
# a caller with one request a second waits under 2 s beside one with 40 in
# parallel; a full queue and a wait past queue_timeout answer 429
# rate_limited with Retry-After; a client that leaves while queued is
# removed at once; a call waiting on its own limit holds up no other;
# max_concurrent holds; a tenant that still answers 429 lowers the pace
# (AIMD); the metrics say all of it.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

command -v python3 >/dev/null || skip_all "python3 is required"
make_pki

# scrape: the admin listener's /metrics into $T/metrics.
scrape() { curl -sS --max-time 10 "http://127.0.0.1:$ADMIN_PORT/metrics" > "$T/metrics"; }
metric() { scrape && awk -v k="$1" 'index($0, k " ") == 1 { print $2 }' "$T/metrics"; }
admin_port() {
	ADMIN_PORT=$(sed -n 's/.*admin: listening on [^ ]*:\([0-9][0-9]*\) .*/\1/p' "$PROXY_LOG" | head -n 1)
}

# ---- 50 clients, 20 s, against a tenant of 10/s (burst 10). ----
# The tenant forgives 250 ms: the first requests of a burst open new
# connections (TLS handshakes), so it sees them later than xdrproxy sent
# them, and a limiter anchored on them would take the next ones, sent on
# time over pooled connections, for early.
start_mock --rate 10 --rate-burst 10 --rate-slack 250
GOVERNOR="" write_config "" "admin_listen = 127.0.0.1:0"
start_proxy
admin_port
expect_eq "default pace: 10/s" "$(metric 'xdrproxy_rate_limit_current{tenant="acme"}')" 10.000
# 50 connections at once for 20 s: 210 requests (20 s at 10/s and the
# burst), 50 always in flight, so the queue is never empty.
: > "$T/urls"
for i in $(seq 1 210); do
	printf 'url = "%s/public_api/v1/x/hammer-%s/"\noutput = "/dev/null"\n' "$URL" "$i" >> "$T/urls"
done
curl -sS --no-progress-meter --parallel --parallel-max 50 --max-time 60 -X POST -d '{}' \
    -K "$T/urls" -w '%{http_code} %{time_total}\n' > "$T/hammer"
cp "$MOCK_LOG" "$T/mock.hammer.jsonl"
total=$(wc -l < "$T/hammer")
expect_eq "every answer a 200 ($total requests)" "$(grep -c '^200 ' "$T/hammer")" "$total"
expect_eq "the tenant answered no 429" "$(grep -c '"event":"rate_limited"' "$MOCK_LOG")" 0
# 20 s at 10/s, plus the burst, plus what was queued at the end.
expect_eq "all 210 answered" "$total" 210
first=$(mock_span_ms "$MOCK_LOG")
if [ "$first" -ge 19000 ] && [ "$first" -le 22000 ]; then pass "paced: 210 requests over $first ms"
else fail "paced: 210 requests over $first ms, want about 20 s"; fi
slowest=$(sort -k2 -n "$T/hammer" | tail -n 1 | cut -d' ' -f2)
if python3 -c "import sys; sys.exit(0 if float('$slowest') < 30 else 1)"; then
	pass "every request answered within queue_timeout (slowest $slowest s)"
else fail "a request took $slowest s"; fi
w1=$(mock_max_in_window "$MOCK_LOG" 1000 1000)
if [ "$w1" -le 11 ]; then pass "after the first second, at most 11 requests in any second (saw $w1)"
else fail "after the first second, $w1 requests within one second"; fi
w0=$(mock_max_in_window "$MOCK_LOG" 1000)
if [ "$w0" -le 21 ]; then pass "at most 10 a second plus the burst once (saw $w0)"
else fail "$w0 requests within one second"; fi
wait_num 10 -ge "$total" audit_count
expect_eq "every record has queued_ms and attempts" \
    "$(audit_responses | grep -cE '"duration_ms":[0-9]+,"queued_ms":[0-9]+,"attempts":1,')" "$total"
expect_match "most waited" "$(audit_responses | grep -c '"queued_ms":[1-9]')" '^(1[5-9][0-9]|20[0-9])$'
paced=$(metric 'xdrproxy_requests_paced_total{tenant="acme"}')
if [ "${paced:-0}" -ge 100 ]; then pass "requests paced counted ($paced)"
else fail "requests paced: ${paced:-none}"; fi
expect_eq "queue empty at rest" "$(metric 'xdrproxy_queue_depth{tenant="acme"}')" 0
count=$(metric 'xdrproxy_queue_wait_seconds_count{tenant="acme"}')
expect_eq "wait histogram: one observation per paced request" "$count" "$paced"
stop_proxy

# ---- Fairness: 40 in parallel from root, one a second from nobody. ----
if command -v setpriv >/dev/null && id nobody >/dev/null 2>&1; then
	: > "$MOCK_LOG"
	GOVERNOR="" write_config "" "admin_listen = 127.0.0.1:0"
	start_proxy
	: > "$T/urls"
	for i in $(seq 1 120); do
		printf 'url = "%s/public_api/v1/x/greedy-%s/"\noutput = "/dev/null"\n' "$URL" "$i" >> "$T/urls"
	done
	curl -sS --no-progress-meter --parallel --parallel-max 40 -X POST -d '{}' -K "$T/urls" \
	    -w '%{http_code}\n' > "$T/greedy" &
	greedy=$!
	# Wait until the greedy client has a queue.
	wait_for 10 grep -q '"path":"/public_api/v1/x/greedy-' "$T/audit.jsonl"
	: > "$T/analyst"
	for i in 1 2 3 4 5 6; do
		setpriv --reuid=nobody --regid=nogroup --clear-groups \
		    curl -sS --max-time 30 -o /dev/null -w '%{http_code} %{time_total}\n' \
		    -X POST -d '{}' "$URL/public_api/v1/x/analyst-$i/" >> "$T/analyst"
		sleep 1
	done
	wait "$greedy"
	expect_eq "the greedy client's 120 answered" "$(grep -c '^200$' "$T/greedy")" 120
	expect_eq "the analyst's 6 answered" "$(grep -c '^200 ' "$T/analyst")" 6
	worst=$(sort -k2 -n "$T/analyst" | tail -n 1 | cut -d' ' -f2)
	if python3 -c "import sys; sys.exit(0 if float('$worst') < 2 else 1)"; then
		pass "round-robin: the analyst's longest wait $worst s (< 2 s) beside 40 in parallel"
	else fail "the analyst waited $worst s beside the greedy client"; fi
	expect_match "the analyst was a caller of its own" \
	    "$(audit_responses | grep '"path":"/public_api/v1/x/analyst-1/"')" '"user":"nobody"'
	stop_proxy
else
	echo "# setpriv or user nobody missing: the fairness check is skipped"
fi

# ---- A full queue, and a wait past queue_timeout: 429 rate_limited. ----
: > "$MOCK_LOG"
GOVERNOR="rate_limit = 1/min
burst = 1
queue_max = 3
queue_timeout = 2s" write_config "" "admin_listen = 127.0.0.1:0"
start_proxy
admin_port
expect_eq "first request: at once" "$(px -o /dev/null -w '%{http_code}' -X POST -d '{}' /public_api/v1/x/first/)" 200
for i in 1 2 3 4 5; do
	px -D "$T/q.$i" -o "$T/qb.$i" -X POST -d '{}' "/public_api/v1/x/queued-$i/" &
	pids[i]=$!
	# In order: the first three queue, the last two find it full.
	[ "$i" -le 3 ] && wait_num 5 -ge "$i" metric 'xdrproxy_queue_depth{tenant="acme"}'
done
for i in 4 5; do wait "${pids[i]}"; done
cat "$T/q.4" "$T/qb.4" > "$T/full"
expect_proxy_error "queue full" 429 rate_limited "$T/full"
expect_match "queue full: Retry-After" "$(cat "$T/q.4")" $'Retry-After: [0-9]+\r'
expect_match "queue full: says so" "$(cat "$T/qb.4")" 'queue is full \(queue_max = 3'
for i in 1 2 3; do wait "${pids[i]}"; done
cat "$T/q.1" "$T/qb.1" > "$T/timeout"
expect_proxy_error "queue timeout" 429 rate_limited "$T/timeout"
expect_match "queue timeout: says so" "$(cat "$T/qb.1")" 'waited 2000 ms for the tenant.s budget \(queue_timeout\)'
expect_match "queue timeout: Retry-After" "$(cat "$T/q.1")" $'Retry-After: [0-9]+\r'
expect_eq "none of the refused reached the tenant" "$(mock_requests)" 1
expect_eq "metric: queue_full" \
    "$(metric 'xdrproxy_requests_rate_limited_total{tenant="acme",reason="queue_full"}')" 2
expect_eq "metric: queue_timeout" \
    "$(metric 'xdrproxy_requests_rate_limited_total{tenant="acme",reason="queue_timeout"}')" 3
wait_num 5 -ge 6 audit_count
expect_match "audited: 429 rate_limited, waited, never sent" \
    "$(audit_responses | grep '"path":"/public_api/v1/x/queued-1/"')" \
    '"status":429,.*"queued_ms":(19[0-9][0-9]|2[0-9]{3}),"attempts":0,"outcome":"proxy_error","error":"rate_limited"'
expect_eq "no request record for what was never sent" \
    "$(grep -c '^{"type":"request",.*"path":"/public_api/v1/x/queued-' "$T/audit.jsonl")" 0

# ---- A client that leaves while queued is removed at once. ----
stop_proxy
GOVERNOR="rate_limit = 1/min
burst = 1
queue_timeout = 60s" write_config "" "admin_listen = 127.0.0.1:0"
start_proxy
admin_port
px -o /dev/null -X POST -d '{}' /public_api/v1/x/first/
curl -sS --max-time 1 -o /dev/null -X POST -d '{}' "$URL/public_api/v1/x/leaver/" 2>/dev/null
wait_num 2 -eq 0 metric 'xdrproxy_queue_depth{tenant="acme"}' &&
    pass "the queue is empty once the client left" || fail "still queued after the client left"
wait_for 2 grep -q '"path":"/public_api/v1/x/leaver/"' "$T/audit.jsonl" &&
    pass "audited at once" || fail "no record of the client that left"
expect_match "audited as client_closed" "$(audit_responses | grep '"path":"/public_api/v1/x/leaver/"')" \
    '"status":499,.*"attempts":0,"outcome":"client_aborted","error":"client_closed"'
expect_eq "never sent" "$(grep -c '/x/leaver/' "$MOCK_LOG")" 0
stop_proxy

# ---- A call waiting on its own limit holds up no other call. ----
: > "$MOCK_LOG"
GOVERNOR="rate_limit = 0
queue_timeout = 2m
limit = /public_api/v1/x/slow_call* 1/min
limit = /public_api/v1/x/hopeless* 1/min" write_config "" "admin_listen = 127.0.0.1:0"
start_proxy
admin_port
expect_eq "limited call: first at once" "$(px -o /dev/null -w '%{http_code}' -X POST -d '{}' /public_api/v1/x/slow_call/)" 200
# curl itself in the background (not px's subshell): killing it closes
# its connection.
curl -sS -o /dev/null -X POST -d '{}' "$URL/public_api/v1/x/slow_call/" 2>/dev/null &
slow2=$!
wait_num 5 -eq 1 metric 'xdrproxy_queue_depth{tenant="acme"}'
t=$(px -o /dev/null -w '%{http_code} %{time_total}' -X POST -d '{}' /public_api/v1/x/other/)
expect_match "another call goes at once meanwhile" "$t" '^200 0\.[0-9]+$'
expect_match "the built-in limit of get_incident_extra_data applies" \
    "$(px -o /dev/null -w '%{http_code}' -X POST -d '{}' /public_api/v1/incidents/get_incident_extra_data/)" '^200$'
curl -sS -o /dev/null -X POST -d '{}' "$URL/public_api/v1/incidents/get_incident_extra_data/" 2>/dev/null &
extra2=$!
wait_num 5 -eq 2 metric 'xdrproxy_queue_depth{tenant="acme"}' &&
    pass "a second get_incident_extra_data waits (10/min)" || fail "get_incident_extra_data not limited"
curl -sS -o /dev/null -X POST -d '{}' "$URL/public_api/v1/x/slow%5Fcall/" 2>/dev/null &
spelled=$!
wait_num 5 -eq 3 metric 'xdrproxy_queue_depth{tenant="acme"}' &&
    pass "the same call spelled with %5F waits too" || fail "slow%5Fcall not limited"
kill "$slow2" "$extra2" "$spelled" 2>/dev/null
wait "$slow2" "$extra2" "$spelled" 2>/dev/null
wait_num 5 -eq 0 metric 'xdrproxy_queue_depth{tenant="acme"}'
# A wait on a call's own limit that would pass queue_timeout: told at once.
GOVERNOR="rate_limit = 0
queue_timeout = 2s
limit = /public_api/v1/x/hopeless* 1/min" write_config "" "admin_listen = 127.0.0.1:0"
kill -HUP "$PROXY_PID"
wait_for 10 grep -q 'reload: configuration 2 in force' "$PROXY_LOG"
expect_eq "hopeless: the first at once" "$(px -o /dev/null -w '%{http_code}' -X POST -d '{}' /public_api/v1/x/hopeless/)" 200
px -D "$T/h.head" -o "$T/h.body" -w '%{time_total}' -X POST -d '{}' /public_api/v1/x/hopeless/ > "$T/h.time"
cat "$T/h.head" "$T/h.body" > "$T/hopeless"
expect_proxy_error "a minute's wait past queue_timeout = 2s" 429 rate_limited "$T/hopeless"
expect_match "told at once ($(cat "$T/h.time") s)" "$(cat "$T/h.time")" '^0\.'
expect_match "Retry-After: the minute" "$(cat "$T/h.head")" $'Retry-After: (59|60)\r'
expect_match "says which limit" "$(cat "$T/h.body")" 'this call.s own limit \(limit = /public_api/v1/x/hopeless\* 1/min\)'
expect_eq "other calls unaffected" "$(px -o /dev/null -w '%{http_code}' -X POST -d '{}' /public_api/v1/x/free/)" 200
expect_eq "the waiting calls never reached the tenant" "$(grep -c '"uri":"/public_api/v1/x/slow' "$MOCK_LOG")" 1
expect_eq "get_incident_extra_data: one reached the tenant" "$(grep -c '"uri":"/public_api/v1/incidents/get_incident_extra_data/"' "$MOCK_LOG")" 1
stop_proxy

# ---- max_concurrent: never more in flight than that. ----
: > "$MOCK_LOG"
GOVERNOR="rate_limit = 0
max_concurrent = 2" write_config
start_proxy
: > "$T/urls"
for i in $(seq 1 6); do
	printf 'url = "%s/public_api/v1/x/conc-%s/"\noutput = "/dev/null"\n' "$URL" "$i" >> "$T/urls"
done
curl -sS --no-progress-meter --parallel --parallel-max 6 -X POST -d '{}' -H 'X-Mock-Delay-Ms: 700' -K "$T/urls" -w '%{http_code}\n' > "$T/conc"
expect_eq "all 6 answered" "$(grep -c '^200$' "$T/conc")" 6
expect_eq "never more than 2 at the tenant at once" "$(mock_max_in_window "$MOCK_LOG" 600)" 2
stop_proxy

# ---- SIGTERM with requests queued: ended with 503, nothing leaks. ----
GOVERNOR="rate_limit = 1/min
burst = 1" write_config "" "admin_listen = 127.0.0.1:0
shutdown_timeout = 1s"
start_proxy
admin_port
px -o /dev/null -X POST -d '{}' /public_api/v1/x/before-stop/
sp=()
for i in 1 2 3; do
	curl -sS -o "$T/stop.$i" -w '%{http_code}' -X POST -d '{}' \
	    "$URL/public_api/v1/x/queued-at-stop-$i/" > "$T/stop.$i.code" 2>/dev/null &
	sp+=($!)
done
wait_num 5 -eq 3 metric 'xdrproxy_queue_depth{tenant="acme"}'
stop_proxy
wait "${sp[@]}"
expect_eq "queued at SIGTERM: 503 each" "$(cat "$T"/stop.*.code | tr -d '\n')" 503503503
expect_match "queued at SIGTERM: shutting_down" "$(cat "$T/stop.1")" '"error":"shutting_down"'
expect_eq "none of them sent" "$(grep -c 'queued-at-stop' "$MOCK_LOG")" 0

# ---- AIMD: the tenant still answers 429 (its budget used by others). ----
: > "$MOCK_LOG"
stop_all
start_mock --rate 4 --rate-burst 1
GOVERNOR="rate_limit = 10/s
burst = 1
retry_base = 100ms" write_config "" "admin_listen = 127.0.0.1:0"
start_proxy
admin_port
: > "$T/urls"
for i in $(seq 1 30); do
	printf 'url = "%s/public_api/v1/x/aimd-%s/"\noutput = "/dev/null"\n' "$URL" "$i" >> "$T/urls"
done
curl -sS --no-progress-meter --parallel --parallel-max 30 -X POST -d '{}' -K "$T/urls" -w '%{http_code}\n' > "$T/aimd"
n429=$(metric 'xdrproxy_tenant_429_total{tenant="acme"}')
if [ "${n429:-0}" -ge 1 ]; then pass "429s from the tenant counted ($n429)"
else fail "no 429 from the tenant counted"; fi
expect_match "the pace was lowered" "$(cat "$PROXY_LOG")" \
    'tenant acme: the tenant answered 429 \(its budget is used by others too\); rate lowered to [0-9.]+/s for a while'
rate=$(metric 'xdrproxy_rate_limit_current{tenant="acme"}')
if python3 -c "import sys; sys.exit(0 if float('$rate') < 10 else 1)"; then
	pass "the current pace is below rate_limit ($rate/s)"
else fail "current pace $rate/s"; fi
ok200=$(grep -c '^200$' "$T/aimd")
if [ "$ok200" -ge 20 ]; then pass "$ok200 of 30 answered 200 (429s retried within the retry budget)"
else fail "only $ok200 of 30 answered 200"; fi
expect_eq "the others: the tenant's 429, relayed" "$(grep -vc '^\(200\|429\)$' "$T/aimd")" 0
retried=$(metric 'xdrproxy_retries_total{tenant="acme"}')
if [ "${retried:-0}" -ge 1 ]; then pass "429s retried ($retried)"; else fail "no retry"; fi
stop_proxy
finish
