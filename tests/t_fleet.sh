#!/bin/bash
# t_fleet.sh: a fleet of xdrproxy instances shares one tenant budget held
# in Redis (rate_backend, redis_password_file, fleet_size). Two instances
# in front of a 10/s tenant, 15 clients on each for 20 s: every answer a
# 200, no 429 from the tenant, 10 a second in all (not 10 each). Redis
# killed mid-load: each instance warns once, says so in
# xdrproxy_rate_backend_up, keeps serving at its share (rate_limit /
# fleet_size, 5/s) and the tenant still sees about 10/s. Redis back on the
# same port: each says so, the metric is 1 again, requests still pass. The
# Redis password appears in no log, audit record, command line or
# environment of xdrproxy.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

command -v python3 >/dev/null || skip_all "python3 is required"
command -v redis-server >/dev/null || skip_all "redis-server is not installed"
command -v redis-cli >/dev/null || skip_all "redis-cli is not installed"
make_pki

# forget_pid PID: take PID out of PIDS (it was stopped here).
forget_pid() {
	local p
	local -a keep=()
	for p in "${PIDS[@]}"; do
		[ "$p" = "$1" ] || keep+=("$p")
	done
	PIDS=("${keep[@]}")
}

# now_ms: the real clock in ms since the epoch, as the mock's "at".
now_ms() { date +%s%3N; }

# ---- Redis on loopback, a port picked now, a password, no persistence. ----
RPORT=$(python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()')
RPASS=rp-$(openssl rand -hex 16)
( umask 077; printf '%s\n' "$RPASS" > "$T/redis.pass" )
chmod 600 "$T/redis.pass"
mkdir -p "$T/redis"
BACKEND=redis://127.0.0.1:$RPORT

redis_ping() {
	[ "$(redis-cli -h 127.0.0.1 -p "$RPORT" -a "$RPASS" --no-auth-warning ping 2>/dev/null)" = PONG ]
}
# start_redis: sets REDIS_PID.
start_redis() {
	redis-server --port "$RPORT" --bind 127.0.0.1 --dir "$T/redis" \
	    --save '' --appendonly no --requirepass "$RPASS" \
	    --logfile "$T/redis.log" --daemonize no > /dev/null 2>&1 &
	REDIS_PID=$!
	PIDS+=("$REDIS_PID")
	if ! wait_for 10 redis_ping; then
		echo "redis-server did not start:"; cat "$T/redis.log"; exit 99
	fi
}
start_redis

# ---- One tenant of 10/s, burst 10 (250 ms slack, as in t_governor). ----
start_mock --rate 10 --rate-burst 10 --rate-slack 250 --xql-max 4 --xql-ms 1500

# write_fleet_config NAME: $T/NAME.conf, audit log $T/audit-NAME.jsonl.
write_fleet_config() {
	cat > "$T/$1.conf" <<EOF
[proxy]
audit_log           = $T/audit-$1.jsonl
admin_listen        = 127.0.0.1:0
rate_backend        = $BACKEND
redis_password_file = $T/redis.pass
fleet_size          = 2

[tenant acme]
listen     = 127.0.0.1:0
fqdn       = $FQDN
key_id     = $KEY_ID
key_file   = $T/api.key
ca_file    = $CA
connect_to = 127.0.0.1:$MOCK_PORT
rate_limit = 10/s
EOF
}

# start_instance CONFIG LOG: start_proxy with a log of its own; sets
# PROXY_PID, PROXY_PORT, ADMIN_PORT.
start_instance() {
	local conf=$1 log=$2
	: > "$log"
	# shellcheck disable=SC2086
	"$XDRPROXY" ${PROXY_ARGS:-} -c "$conf" 2> "$log" &
	PROXY_PID=$!
	PIDS+=("$PROXY_PID")
	if ! wait_for 20 grep -q ': xdrproxy [0-9.]* running' "$log"; then
		echo "xdrproxy did not start ($conf):"; cat "$log"; exit 99
	fi
	PROXY_PORT=$(sed -n 's/.*listening on [^ ]*:\([0-9][0-9]*\)$/\1/p' \
	    "$log" | head -n 1)
	ADMIN_PORT=$(sed -n 's/.*admin: listening on [^ ]*:\([0-9][0-9]*\) .*/\1/p' \
	    "$log" | head -n 1)
	if [ -z "$PROXY_PORT" ] || [ -z "$ADMIN_PORT" ]; then
		echo "no listener or admin port in $log:"; cat "$log"; exit 99
	fi
}

# stop_instance PID LOG NAME: SIGTERM, exit 0, no sanitizer report.
stop_instance() {
	local rc
	kill -TERM "$1"
	wait "$1"
	rc=$?
	forget_pid "$1"
	expect_eq "xdrproxy $3 exits 0 on SIGTERM" "$rc" 0
	if sanitizer_clean "$2"; then
		pass "no sanitizer report from xdrproxy $3"
	else
		fail "sanitizer report from xdrproxy $3:"
		sed 's/^/# /' "$2"
	fi
}

# metric ADMIN-PORT NAME: the value of NAME (with its labels) on /metrics.
metric() {
	curl -sS --max-time 10 "http://127.0.0.1:$1/metrics" 2>/dev/null |
	    awk -v k="$2" 'index($0, k " ") == 1 { print $2 }'
}
# metric_is ADMIN-PORT NAME VALUE
metric_is() { [ "$(metric "$1" "$2")" = "$3" ]; }

# urls FILE BASE-URL PREFIX N: a curl -K list of N POSTs.
urls() {
	local i
	: > "$1"
	for i in $(seq 1 "$4"); do
		printf 'url = "%s/public_api/v1/x/%s-%s/"\noutput = "/dev/null"\n' \
		    "$2" "$3" "$i" >> "$1"
	done
}
# load URL-FILE OUT: 15 in flight, one status per line in OUT.
load() {
	curl -sS --no-progress-meter --parallel --parallel-max 15 --max-time 60 \
	    -X POST -d '{}' -K "$1" -w '%{http_code}\n' > "$2" 2> "$2.err"
}

# ---- Two instances on the same tenant, sharing the budget in Redis. ----
write_fleet_config a
write_fleet_config b
A_LOG=$T/proxy-a.log
B_LOG=$T/proxy-b.log
start_instance "$T/a.conf" "$A_LOG"
A_PID=$PROXY_PID A_URL=http://127.0.0.1:$PROXY_PORT A_ADMIN=$ADMIN_PORT
start_instance "$T/b.conf" "$B_LOG"
B_PID=$PROXY_PID B_URL=http://127.0.0.1:$PROXY_PORT B_ADMIN=$ADMIN_PORT

UP=xdrproxy_rate_backend_up
PACE='xdrproxy_rate_limit_current{tenant="acme"}'
for x in a b; do
	if [ $x = a ]; then log=$A_LOG adm=$A_ADMIN; else log=$B_LOG adm=$B_ADMIN; fi
	if wait_for 10 grep -qF "rate backend $BACKEND: connected" "$log"; then
		pass "$x: logged 'rate backend $BACKEND: connected'"
	else
		fail "$x: no 'rate backend $BACKEND: connected' in its log:"
		sed 's/^/# /' "$log"
	fi
	wait_for 5 metric_is "$adm" "$UP" 1
	expect_eq "$x: $UP is 1" "$(metric "$adm" "$UP")" 1
	expect_eq "$x: with Redis, the pace is the tenant's 10/s" "$(metric "$adm" "$PACE")" 10.000
done

# ---- Shared budget: 15 clients on each instance, 210 requests, ~20 s. ----
urls "$T/urls-a" "$A_URL" fleet-a 105
urls "$T/urls-b" "$B_URL" fleet-b 105
: > "$MOCK_LOG"
load "$T/urls-a" "$T/load1-a" &
la=$!
load "$T/urls-b" "$T/load1-b" &
lb=$!
wait "$la" "$lb"
cp "$MOCK_LOG" "$T/mock.load1.jsonl"
L1=$T/mock.load1.jsonl
cat "$T/load1-a" "$T/load1-b" > "$T/load1"
expect_eq "shared budget: 210 answered" "$(wc -l < "$T/load1")" 210
expect_eq "shared budget: every answer a 200" "$(grep -c '^200$' "$T/load1")" 210
expect_eq "shared budget: the tenant answered no 429" \
    "$(grep -c '"event":"rate_limited"' "$L1")" 0
expect_eq "shared budget: the tenant saw 210 requests" \
    "$(grep -c '"event":"request"' "$L1")" 210
w1=$(mock_max_in_window "$L1" 1000 1000)
if [ "$w1" -le 11 ]; then pass "shared budget: after the first second, at most 11 requests in any second (saw $w1)"
else fail "shared budget: after the first second, $w1 requests within one second (the two instances did not share)"; fi
w0=$(mock_max_in_window "$L1" 1000)
if [ "$w0" -le 21 ]; then pass "shared budget: at most 10 a second plus the burst once (saw $w0)"
else fail "shared budget: $w0 requests within one second"; fi
span=$(mock_span_ms "$L1")
if [ "$span" -ge 19000 ] && [ "$span" -le 23000 ]; then
	pass "shared budget: 210 requests over $span ms at the tenant (10/s in all)"
else fail "shared budget: 210 requests over $span ms at the tenant, want about 20 s"; fi
expect_eq "a: its 105 passed through it" \
    "$(grep -c '"uri":"/public_api/v1/x/fleet-a-' "$L1")" 105

# ---- Redis killed mid-load: each falls back to its share, 5/s. ----
urls "$T/urls2-a" "$A_URL" outage-a 60
urls "$T/urls2-b" "$B_URL" outage-b 60
: > "$MOCK_LOG"
load "$T/urls2-a" "$T/load2-a" &
la=$!
load "$T/urls2-b" "$T/load2-b" &
lb=$!
wait_num 10 -ge 1 mock_requests
sleep 2		# let the load run on the shared budget for a while
kill -9 "$REDIS_PID"
wait "$REDIS_PID" 2>/dev/null
forget_pid "$REDIS_PID"
killed_at=$(now_ms)
for x in a b; do
	if [ $x = a ]; then log=$A_LOG adm=$A_ADMIN; else log=$B_LOG adm=$B_ADMIN; fi
	if wait_for 10 metric_is "$adm" "$UP" 0; then
		pass "$x: $UP is 0 with Redis gone"
	else fail "$x: $UP is '$(metric "$adm" "$UP")' with Redis gone"; fi
	expect_eq "$x: with Redis gone, the pace is its share (10/s / 2)" \
	    "$(metric "$adm" "$PACE")" 5.000
done
wait "$la" "$lb"
done_at=$(now_ms)
cp "$MOCK_LOG" "$T/mock.load2.jsonl"
L2=$T/mock.load2.jsonl
cat "$T/load2-a" "$T/load2-b" > "$T/load2"
expect_eq "Redis gone: all 120 answered" "$(wc -l < "$T/load2")" 120
expect_eq "Redis gone: every answer still a 200" "$(grep -c '^200$' "$T/load2")" 120
for x in a b; do
	if [ $x = a ]; then log=$A_LOG adm=$A_ADMIN; else log=$B_LOG adm=$B_ADMIN; fi
	expect_eq "$x: the 'unreachable' warning logged once" \
	    "$(grep -cF "rate backend $BACKEND: unreachable" "$log")" 1
	expect_eq "$x: still 0 at the end of the outage load" "$(metric "$adm" "$UP")" 0
done
n_out=$(python3 -c 'import json, sys
print(sum(1 for l in open(sys.argv[1]) if "\"event\":\"request\"" in l
          and json.loads(l)["at"] >= int(sys.argv[2])))' "$L2" "$killed_at")
echo "# $n_out requests reached the tenant while Redis was down ($((done_at - killed_at)) ms)"
if [ "$n_out" -ge 20 ]; then pass "Redis gone: the load went on ($n_out requests)"
else fail "Redis gone: only $n_out requests reached the tenant"; fi
wo=$(mock_max_in_window "$L2" 1000 1000 "$killed_at" "$done_at")
# Two streams of 5/s, each 5 in a second, 6 when jitter brings one pair
# closer than 200 ms: 12 at most, 13 with both ends of one stream early.
if [ "$wo" -le 13 ]; then pass "Redis gone: at most 13 in any second in all, each at its share (saw $wo)"
else fail "Redis gone: $wo requests within one second (the shares add up to more than the tenant's 10/s)"; fi
ws=$(mock_max_in_window "$L2" 1000 0 "$((killed_at - 1000))" "$done_at")
if [ "$ws" -le 21 ]; then pass "Redis gone: across the switch, at most 10 a second plus the burst (saw $ws)"
else fail "Redis gone: $ws requests within one second across the switch to local shares"; fi

# ---- Redis back on the same port. ----
start_redis
for x in a b; do
	if [ $x = a ]; then log=$A_LOG adm=$A_ADMIN; else log=$B_LOG adm=$B_ADMIN; fi
	if wait_for 10 grep -qF "rate backend $BACKEND: back" "$log"; then
		pass "$x: logged 'rate backend $BACKEND: back'"
	else
		fail "$x: no 'rate backend $BACKEND: back' in its log:"
		sed 's/^/# /' "$log"
	fi
	expect_eq "$x: the 'back' line logged once" \
	    "$(grep -cF "rate backend $BACKEND: back" "$log")" 1
	wait_for 5 metric_is "$adm" "$UP" 1
	expect_eq "$x: $UP is 1 again" "$(metric "$adm" "$UP")" 1
	expect_eq "$x: the pace is the tenant's 10/s again" "$(metric "$adm" "$PACE")" 10.000
	expect_eq "$x: still one 'unreachable' warning" \
	    "$(grep -cF "rate backend $BACKEND: unreachable" "$log")" 1
done
urls "$T/urls3-a" "$A_URL" back-a 10
urls "$T/urls3-b" "$B_URL" back-b 10
load "$T/urls3-a" "$T/load3-a" &
la=$!
load "$T/urls3-b" "$T/load3-b" &
lb=$!
wait "$la" "$lb"
cat "$T/load3-a" "$T/load3-b" > "$T/load3"
expect_eq "Redis back: 20 more answered" "$(wc -l < "$T/load3")" 20
expect_eq "Redis back: every one a 200" "$(grep -c '^200$' "$T/load3")" 20

# ---- XQL slots in Redis: 4 running across both, not 4 each. ----
xql() {	# BASE CALL BODY: prints the answer
	curl -sS --max-time 60 -X POST -H 'Content-Type: application/json' \
	    -d "$3" "$1/public_api/v1/xql/$2/"
}
xq='{"request_data":{"query":"dataset = xdr_data | limit 1"}}'
# xclient N BASE: start a query through BASE, poll its results to the end.
xclient() {
	local id ans
	ans=$(xql "$2" start_xql_query "$xq")
	id=$(printf '%s' "$ans" | sed -n 's/^{"reply":"\(mockq-[0-9]*\)"}$/\1/p')
	echo "${id:-$ans}" > "$T/xstart.$1"
	[ -n "$id" ] || return
	while :; do
		ans=$(xql "$2" get_query_results "{\"request_data\":{\"query_id\":\"$id\"}}")
		case $ans in
		*'"status":"PENDING"'*) sleep 0.3 ;;
		*) echo "$ans" > "$T/xresult.$1"; return ;;
		esac
	done
}
xp=()
for i in 1 2 3 4; do xclient "a$i" "$A_URL" & xp+=($!); done
for i in 1 2 3 4; do xclient "b$i" "$B_URL" & xp+=($!); done
wait "${xp[@]}"
expect_eq "XQL: 8 queries started across both" "$(cat "$T"/xstart.* | grep -c '^mockq-')" 8
expect_eq "XQL: 8 results" "$(cat "$T"/xresult.* | grep -c '"status":"SUCCESS"')" 8
expect_eq "XQL: the tenant refused no start" "$(grep -c '"event":"xql_refused"' "$MOCK_LOG")" 0
most=$(sed -n 's/.*"event":"xql_start".*"running":\([0-9]*\).*/\1/p' "$MOCK_LOG" | sort -n | tail -n 1)
if [ "${most:-9}" -le 4 ]; then pass "XQL: never more than 4 running at the tenant (at most $most)"
else fail "XQL: $most queries ran at once at the tenant"; fi
expect_eq "XQL: no slot left in Redis" \
    "$(redis-cli -p "$RPORT" -a "$RPASS" --no-auth-warning zcard 'xdrproxy:{acme}:xql')" 0

# ---- The Redis password leaks nowhere. ----
wait_for 10 grep -q '"path":"/public_api/v1/x/back-a-' "$T/audit-a.jsonl"
wait_for 10 grep -q '"path":"/public_api/v1/x/back-b-' "$T/audit-b.jsonl"
expect_no_secret "a" "$A_PID" "$A_LOG" "$T/audit-a.jsonl" -- "$RPASS"
expect_no_secret "b" "$B_PID" "$B_LOG" "$T/audit-b.jsonl" -- "$RPASS"

stop_instance "$A_PID" "$A_LOG" a
stop_instance "$B_PID" "$B_LOG" b
finish
