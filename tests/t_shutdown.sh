#!/bin/bash
# t_shutdown.sh: SIGTERM stops accepting, lets requests in flight finish
# (up to shutdown_timeout, then 503), and exits 0.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

make_pki
start_mock
write_config "" "shutdown_timeout = 1s"
start_proxy

# A request in flight finishes after SIGTERM.
curl -sS --max-time 30 -o "$T/slow" -w '%{http_code}' -H 'X-Mock-Delay-Ms: 600' \
    "$URL/public_api/v1/x/inflight/" > "$T/code" &
client=$!
wait_for 10 grep -q '"uri":"/public_api/v1/x/inflight/"' "$MOCK_LOG"
kill -TERM "$PROXY_PID"
wait_for 5 grep -q 'SIGTERM: shutting down' "$PROXY_LOG" ||
    fail "shutdown not logged"
wait_for 5 grep -q 'worker [0-9]*: stopping, 1 requests in flight' "$PROXY_LOG" ||
    fail "the request in flight not logged"
code=$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "$URL/public_api/v1/x/" 2>/dev/null)
expect_eq "no new connections once shutting down" "$code" 000
wait "$client"
expect_eq "request in flight completed" "$(cat "$T/code")" 200
wait "$PROXY_PID"
expect_eq "exit 0 after draining" "$?" 0
expect_match "in-flight request audited" "$(last_audit)" \
    '"path":"/public_api/v1/x/inflight/".*"status":200,.*"outcome":"ok"'

# One that takes longer than shutdown_timeout is ended with 503.
start_proxy
curl -sS --max-time 30 -i -H 'X-Mock-Delay-Ms: 20000' \
    "$URL/public_api/v1/x/toolong/" > "$T/out" &
client=$!
wait_for 10 grep -q '"uri":"/public_api/v1/x/toolong/"' "$MOCK_LOG"
kill -TERM "$PROXY_PID"
wait "$client"
expect_proxy_error "past shutdown_timeout" 503 shutting_down "$T/out"
wait "$PROXY_PID"
expect_eq "exit 0 after shutdown_timeout" "$?" 0
expect_match "ended request audited" "$(last_audit)" \
    '"path":"/public_api/v1/x/toolong/".*"status":503,.*"outcome":"proxy_error","error":"shutting_down"'
if sanitizer_clean "$PROXY_LOG"; then pass "no sanitizer report"
else fail "sanitizer report:"; sed 's/^/# /' "$PROXY_LOG"; fi

# A second signal does not wait: with shutdown_timeout 60s and a tenant
# that answers in 30 s, the request is ended with 503 and xdrproxy exits
# within 5 s of the second signal (the reply gets at most 1 s to go out).
write_config "" "shutdown_timeout = 60s"
start_proxy
curl -sS --max-time 90 -i -H 'X-Mock-Delay-Ms: 30000' \
    "$URL/public_api/v1/x/second/" > "$T/second" 2>/dev/null &
client=$!
wait_for 10 grep -q '"uri":"/public_api/v1/x/second/"' "$MOCK_LOG"
kill -TERM "$PROXY_PID"
wait_for 5 grep -q 'worker [0-9]*: stopping, 1 requests in flight' "$PROXY_LOG" ||
    fail "second signal: the first one not acted on"
t0=$(date +%s%N)
kill -INT "$PROXY_PID"
wait "$PROXY_PID"
rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
expect_eq "second signal: exit 0" "$rc" 0
if [ "$ms" -lt 5000 ]; then pass "second signal: exited ${ms} ms after it (< 5000)"
else fail "second signal: exited ${ms} ms after it, want < 5000"; fi
expect_match "second signal: logged" "$(cat "$PROXY_LOG")" 'second signal: ending requests now'
expect_match "second signal: the request ended" "$(cat "$PROXY_LOG")" 'worker [0-9]*: ending 1 requests now'
wait "$client"
expect_proxy_error "second signal" 503 shutting_down "$T/second"
expect_match "second signal: ended request audited" "$(last_audit)" \
    '"path":"/public_api/v1/x/second/".*"status":503,.*"outcome":"proxy_error","error":"shutting_down"'

# Stopping while answers are still being written to clients that read
# slowly (replies streaming or handed to libevent to flush): a second
# signal ends them, every one is audited once, and nothing of theirs
# outlives the exit (the sanitizer build checks the teardown).
write_config "" "shutdown_timeout = 60s
workers = 1"
start_proxy
clients=()
for i in 1 2 3; do
	curl -sS --max-time 60 --limit-rate 200k -o /dev/null \
	    -H 'X-Mock-Stream: 20000000' "$URL/public_api/v1/x/slowread$i/" \
	    2>/dev/null &
	clients+=($!)
done
for i in 1 2 3; do
	wait_for 10 grep -q "\"uri\":\"/public_api/v1/x/slowread$i/\"" "$MOCK_LOG" ||
	    fail "slow reader $i: never reached the tenant"
done
n=$(audit_count)
kill -TERM "$PROXY_PID"
wait_for 5 grep -q 'worker [0-9]*: stopping, 3 requests in flight' "$PROXY_LOG" ||
    fail "slow readers: the first signal not acted on"
t0=$(date +%s%N)
kill -INT "$PROXY_PID"
wait "$PROXY_PID"
rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
expect_eq "slow readers: exit 0" "$rc" 0
if [ "$ms" -lt 5000 ]; then pass "slow readers: exited ${ms} ms after the second signal"
else fail "slow readers: exited ${ms} ms after the second signal, want < 5000"; fi
expect_eq "slow readers: one record each" \
    "$(audit_responses | tail -n +"$((n + 1))" | grep -c '"path":"/public_api/v1/x/slowread')" 3
if sanitizer_clean "$PROXY_LOG"; then pass "slow readers: no sanitizer report"
else fail "slow readers: sanitizer report:"; sed 's/^/# /' "$PROXY_LOG"; fi
wait "${clients[@]}" 2>/dev/null
finish
