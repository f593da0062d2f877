#!/bin/bash
# t_workers.sh: workers = N. Several event loops share the listeners
# (SO_REUSEPORT, or one unix socket), each with its own upstream pool;
# records from all of them reach one audit log; a port already in use is
# refused even though the workers' own sockets share it; SIGTERM stops all.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

make_pki
start_mock
sock=$T/w.sock
write_config "listen = unix:$sock" "workers = 3"
start_proxy
expect_match "three workers" "$(cat "$PROXY_LOG")" 'running, 3 workers'
expect_eq "one listening line per address" \
    "$(grep -c 'tenant acme: listening on 127' "$PROXY_LOG")" 1

# 60 connections: the kernel spreads them over the workers.
ok=0
for i in $(seq 1 60); do
	code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST -d '{}' \
	    "$URL/public_api/v1/x/$i/")
	[ "$code" = 200 ] && ok=$((ok + 1))
done
expect_eq "60 requests answered" "$ok" 60
for i in $(seq 1 20); do
	code=$(curl -sS --unix-socket "$sock" -o /dev/null -w '%{http_code}' \
	    -X POST -d '{}' "http://localhost/public_api/v1/u/$i/")
	[ "$code" = 200 ] && ok=$((ok + 1))
done
expect_eq "20 more over the unix socket" "$ok" 80
wait_num 10 -ge 80 audit_count
expect_eq "80 audit records in one file" "$(audit_count)" 80
prefixes=$(audit_responses | sed -n 's/.*"request_id":"\([0-9a-f]\{8\}\).*/\1/p' | sort -u | wc -l)
if [ "$prefixes" -ge 2 ]; then pass "requests served by $prefixes workers"
else fail "all requests served by one worker"; fi
expect_eq "all signatures accepted" "$(grep -c '"auth":"ok"' "$MOCK_LOG")" 80
expect_eq "every record whole (one JSON object per line)" \
    "$(grep -cE "$AUDIT_RESP"'"ts":".*"error":null,"caller":\{[^}]*\},"caller_error":null\}$' "$T/audit.jsonl")" 80

# Another instance on the same port is refused, not let into the group.
sed "s|^listen     = 127.0.0.1:0$|listen     = 127.0.0.1:$PROXY_PORT|; /^listen = unix/d" \
    "$T/xdrproxy.conf" > "$T/second.conf"
timeout 10 "$XDRPROXY" -c "$T/second.conf" 2> "$T/second.err"
rc=$?
if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ]; then pass "second instance on the port: refused"
else fail "second instance on the port: exit $rc"; fi
expect_match "second instance: address in use" "$(cat "$T/second.err")" \
    'Address already in use'

# Rotation with several workers writing.
mv "$T/audit.jsonl" "$T/audit.jsonl.1"
kill -HUP "$PROXY_PID"
wait_for 5 grep -q 'SIGHUP: audit log reopened' "$PROXY_LOG"
for i in $(seq 1 10); do
	curl -sS -o /dev/null -X POST -d '{}' "$URL/public_api/v1/after/$i/"
done
wait_num 5 -ge 10 audit_count
expect_eq "after SIGHUP: records in the new file" "$(audit_count)" 10

# A request in flight on any worker finishes; all workers stop.
curl -sS --max-time 30 -o /dev/null -w '%{http_code}' -H 'X-Mock-Delay-Ms: 500' \
    "$URL/public_api/v1/x/inflight/" > "$T/code" &
client=$!
wait_for 10 grep -q '"uri":"/public_api/v1/x/inflight/"' "$MOCK_LOG"
stop_proxy
wait "$client"
expect_eq "request in flight completed" "$(cat "$T/code")" 200
expect_eq "every worker stopped" "$(grep -c 'worker [0-9]: stopping' "$PROXY_LOG")" 3
finish
