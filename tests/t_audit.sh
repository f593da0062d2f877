#!/bin/bash
# t_audit.sh: the audit log, line by line, over a mix of outcomes; no
# secret in it or in the log; SIGHUP and SIGUSR1 reopen it after rotation.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

make_pki
start_mock
write_config "" "upstream_timeout = 1s"
start_proxy

# One request of each kind, in order.
px -o /dev/null -X POST -H 'Content-Type: application/json' -d '{"request_data":{}}' \
    '/public_api/v1/incidents/get_incidents/?page=2&x=%22q%22'          # ok
px -o /dev/null -X POST -d '{}' -H 'X-Mock-Status: 429' /public_api/v1/x/limited/  # tenant 429
px -o /dev/null -H 'Origin: https://evil.example' /public_api/v1/x/      # refused
px -o /dev/null -H 'X-Mock-Delay-Ms: 3000' /public_api/v1/x/slow/       # timeout
curl -sS --max-time 0.4 -o /dev/null -H 'X-Mock-Delay-Ms: 5000' \
    "$URL/public_api/v1/x/gone/" 2>/dev/null                             # client left
# Records come in the order requests end: a client that left is noticed
# about a second later (README, step 7), so wait for it.
wait_num 10 -ge 5 audit_count
head -c 100 /dev/zero > "$T/b"
px -o /dev/null -X PUT --data-binary @"$T/b" /public_api/v1/x/put/      # ok, PUT
wait_num 10 -ge 6 audit_count
expect_eq "one record per request" "$(audit_count)" 6

rec() { audit_responses | sed -n "${1}p"; }
ts='"ts":"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z"'
head="$AUDIT_RESP$ts"',"request_id":"[0-9a-f]{16}","tenant":"acme","key_id":"42","client":"127\.0\.0\.1:[0-9]+",'
tail=',"caller":\{"uid":0,"user":"root","gid":0,"group":"root","pid":[0-9]+,"exe":"[^"]+"\},"caller_error":null\}$'
expect_match "record 1: ok, with its query" "$(rec 1)" \
    "$head"'"method":"POST","path":"/public_api/v1/incidents/get_incidents/","query":"page=2&x=%22q%22","status":200,"bytes_in":19,"bytes_out":[0-9]+,"duration_ms":[0-9]+,"queued_ms":0,"attempts":1,"outcome":"ok","error":null'"$tail"
expect_match "record 2: the tenant's 429 relayed" "$(rec 2)" \
    "$head"'"method":"POST","path":"/public_api/v1/x/limited/","query":"","status":429,"bytes_in":2,"bytes_out":[0-9]+,"duration_ms":[0-9]+,"queued_ms":0,"attempts":1,"outcome":"ok","error":null'"$tail"
expect_match "record 3: refused" "$(rec 3)" \
    "$head"'"method":"GET","path":"/public_api/v1/x/","query":"","status":403,"bytes_in":0,"bytes_out":[0-9]+,"duration_ms":[0-9]+,"queued_ms":0,"attempts":0,"outcome":"proxy_error","error":"browser_request_refused"'"$tail"
expect_match "record 4: upstream timeout" "$(rec 4)" \
    "$head"'"method":"GET","path":"/public_api/v1/x/slow/","query":"","status":504,"bytes_in":0,"bytes_out":[0-9]+,"duration_ms":[0-9]+,"queued_ms":0,"attempts":1,"outcome":"upstream_error","error":"upstream_timeout"'"$tail"
expect_match "record 5: client aborted" "$(rec 5)" \
    "$head"'"method":"GET","path":"/public_api/v1/x/gone/","query":"","status":499,"bytes_in":0,"bytes_out":0,"duration_ms":[0-9]+,"queued_ms":0,"attempts":1,"outcome":"client_aborted","error":"client_closed"'"$tail"
expect_match "record 6: PUT with a body" "$(rec 6)" \
    "$head"'"method":"PUT","path":"/public_api/v1/x/put/","query":"","status":200,"bytes_in":100,'
d4=$(json_num "$(rec 4)" duration_ms)
if [ "$d4" -ge 900 ] && [ "$d4" -lt 3000 ]; then pass "duration_ms of the timeout ($d4)"
else fail "duration_ms of the timeout: $d4"; fi
ids=$(audit_responses | sed -n 's/.*"request_id":"\([^"]*\)".*/\1/p' | sort -u | wc -l)
expect_eq "distinct request ids" "$ids" 6
# The request id in the response header is the audited one.
px -D "$T/h" -o /dev/null -X POST -d '{}' /public_api/v1/x/id/
id=$(sed -n 's/^x-xdrproxy-request-id: \([0-9a-f]*\).*/\1/p' "$T/h")
wait_num 5 -ge 7 audit_count
expect_eq "response header carries the audited request id" \
    "$(json_str "$(last_audit)" request_id)" "$id"

# Untrusted bytes stay valid JSON.
printf 'GET /public_api/v1/x/%%22%%5C?q="\\\x01 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' |
    raw_request "$PROXY_PORT" > /dev/null
wait_num 5 -ge 8 audit_count
expect_match "raw bytes escaped in the record" "$(last_audit)" \
    '"path":"/public_api/v1/x/%22%5C","query":"q=\\"\\\\\\u0001"'

# No secret anywhere: the key, and every Authorization value sent.
hashes=$(sed -n 's/.*\["Authorization","\([0-9a-f]\{64\}\)"\].*/\1/p' "$MOCK_LOG")
expect_eq "Authorization values to look for" "$(printf '%s\n' "$hashes" | grep -c .)" \
    "$(grep -c '"auth":"ok"' "$MOCK_LOG")"
for f in "$T/audit.jsonl" "$PROXY_LOG"; do
	expect_no_match "key not in $(basename "$f")" "$(cat "$f")" "$API_KEY"
	leaked=0
	for h in $hashes; do
		grep -q "$h" "$f" && leaked=$((leaked + 1))
	done
	expect_eq "no Authorization value in $(basename "$f")" "$leaked" 0
	expect_no_match "no nonce in $(basename "$f")" "$(cat "$f")" \
	    "$(json_str "$(grep '"event":"request"' "$MOCK_LOG" | head -n 1)" nonce)"
done

# Rotation: move the file away, SIGHUP, new records go to a new file.
mv "$T/audit.jsonl" "$T/audit.jsonl.1"
kill -HUP "$PROXY_PID"
wait_for 5 grep -q 'SIGHUP: audit log reopened' "$PROXY_LOG"
px -o /dev/null -X POST -d '{}' /public_api/v1/x/after-rotation/
wait_for 5 test -s "$T/audit.jsonl"
expect_match "after SIGHUP: record in the new file" "$(cat "$T/audit.jsonl")" \
    '"path":"/public_api/v1/x/after-rotation/"'
expect_eq "after SIGHUP: old file untouched" "$(audit_responses "$T/audit.jsonl.1" | wc -l)" 8
# SIGUSR1 does the same (logrotate's postrotate, etc/logrotate.d/xdrproxy).
mv "$T/audit.jsonl" "$T/audit.jsonl.2"
kill -USR1 "$PROXY_PID"
wait_for 5 grep -q 'SIGUSR1: audit log reopened' "$PROXY_LOG" ||
    fail "SIGUSR1: reopening not logged"
px -o /dev/null -X POST -d '{}' /public_api/v1/x/after-usr1/
wait_for 5 test -s "$T/audit.jsonl"
expect_match "after SIGUSR1: record in the new file" "$(cat "$T/audit.jsonl")" \
    '"path":"/public_api/v1/x/after-usr1/"'
expect_eq "after SIGUSR1: rotated file untouched" "$(audit_responses "$T/audit.jsonl.2" | wc -l)" 1
# The shipped logrotate file, run for real by logrotate on this log (its
# path, its owner and the process to signal made this test's).
if command -v logrotate >/dev/null; then
	sed -e "s|^/var/log/xdrproxy/audit.jsonl|$T/audit.jsonl|" \
	    -e "s|create 0640 xdrproxy adm|create 0640 $(id -un) $(id -gn)|" \
	    -e "s|pkill -USR1 -x xdrproxy|kill -USR1 $PROXY_PID|" \
	    "$top_srcdir/etc/logrotate.d/xdrproxy" > "$T/logrotate.conf"
	chmod 644 "$T/logrotate.conf"
	mv "$T/audit.jsonl.1" "$T/sighup.jsonl"
	mv "$T/audit.jsonl.2" "$T/usr1.jsonl"
	if logrotate -f -s "$T/logrotate.state" "$T/logrotate.conf" \
	    > "$T/logrotate.out" 2>&1; then
		pass "logrotate accepts etc/logrotate.d/xdrproxy"
	else
		fail "logrotate: $(cat "$T/logrotate.out")"
	fi
	expect_eq "logrotate: the log rotated" "$(audit_responses "$T/audit.jsonl.1" | wc -l)" 1
	wait_num 5 -gt 1 grep -c 'SIGUSR1: audit log reopened' "$PROXY_LOG" ||
	    fail "logrotate: xdrproxy not told (postrotate)"
	px -o /dev/null -X POST -d '{}' /public_api/v1/x/after-logrotate/
	wait_for 5 test -s "$T/audit.jsonl"
	expect_match "logrotate: new records in the new file" \
	    "$(cat "$T/audit.jsonl")" '"path":"/public_api/v1/x/after-logrotate/"'
	expect_eq "logrotate: the old file got none" "$(audit_responses "$T/audit.jsonl.1" | wc -l)" 1
else
	echo "# logrotate checks skipped: logrotate not installed (tests/deps.sh installs it)"
fi
stop_proxy

# audit_log = - writes records to standard output.
sed "s|^audit_log = .*|audit_log = -|" "$T/xdrproxy.conf" > "$T/stdout.conf"
"$XDRPROXY" -c "$T/stdout.conf" > "$T/stdout" 2> "$T/proxy2.log" &
PROXY_PID=$!
PIDS+=($PROXY_PID)
PROXY_LOG=$T/proxy2.log
wait_for 20 grep -q ': xdrproxy [0-9.]* running' "$PROXY_LOG"
PROXY_PORT=$(sed -n 's/.*listening on [^ ]*:\([0-9][0-9]*\)$/\1/p' "$PROXY_LOG")
URL=http://127.0.0.1:$PROXY_PORT
px -o /dev/null -X POST -d '{}' /public_api/v1/x/stdout/
if wait_for 5 grep -q '"path":"/public_api/v1/x/stdout/"' "$T/stdout"; then
	pass "audit_log = -: record on standard output"
else
	fail "audit_log = -: record not on standard output"
fi
stop_proxy
finish
