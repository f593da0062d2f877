#!/bin/bash
# t_reload.sh: SIGHUP puts a new configuration (and key) in force without
# dropping a request. Listeners in both configurations keep their sockets,
# removed ones close, new ones open; an invalid configuration changes
# nothing and is logged as FILE:LINE: message; requests in flight finish
# with what they started with. Under load: 20 clients sending all along
# while the configuration is reloaded 20 times (key changed, a listener
# added and one removed), the mock tenant checking every signature.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

make_pki
# Key k (0..23) has key ID 1000+k; the mock tenant accepts them all.
: > "$T/keys.txt"
for k in $(seq 0 23); do
	key=$(openssl rand -hex 24)
	printf '%s %s\n' $((1000 + k)) "$key" >> "$T/keys.txt"
	printf '%s\n' "$key" > "$T/key$k"
	chmod 600 "$T/key$k"
done
start_mock --extra-keys "$T/keys.txt"

# conf K [PROXY-LINES] [LISTEN...]: the configuration signing with key K,
# on the stable listener and the given extra ones. Written whole, then
# renamed: a reload never reads half a file.
conf() {
	local k=$1 extra=$2 l
	shift 2
	{
		cat <<EOF
[proxy]
audit_log = $T/audit.jsonl
workers = ${WORKERS:-2}
$extra

[tenant acme]
listen     = 127.0.0.1:0
fqdn       = $FQDN
key_id     = $((1000 + k))
key_file   = $T/key$k
ca_file    = $CA
connect_to = 127.0.0.1:$MOCK_PORT
# The governor off: thousands of requests across the reloads.
rate_limit = 0
limit      = /* 0
EOF
		for l in "$@"; do
			printf 'listen     = %s\n' "$l"
		done
	} > "$T/xdrproxy.conf.new"
	mv "$T/xdrproxy.conf.new" "$T/xdrproxy.conf"
}

# reload N: SIGHUP, then wait until configuration N is in force.
reload() {
	kill -HUP "$PROXY_PID"
	wait_for 20 grep -q "reload: configuration $1 in force" "$PROXY_LOG"
}

# reload_fails N: SIGHUP, then wait for the failure (N stays in force).
reload_fails() {
	local before
	before=$(grep -c 'reload failed: ' "$PROXY_LOG")
	kill -HUP "$PROXY_PID"
	wait_for 20 failures_above "$1" "$before"
}
failures_above() {
	[ "$(grep -c "reload failed: .*; configuration $1 stays in force" "$PROXY_LOG")" -gt "$2" ]
}

# answered_at_least N: the clients have N answers between them.
answered_at_least() { [ "$(cat "$T"/client*.codes 2>/dev/null | wc -l)" -ge "$1" ]; }

# port_of ADDR: the port xdrproxy logged for listen address ADDR (ADDR:0).
port_of() {
	sed -n "s/.*listening on $1:\\([0-9][0-9]*\\)\$/\\1/p" "$PROXY_LOG" | tail -n 1
}

# signed_with UNIQUE: key ID the mock saw on the request with X-Tag UNIQUE.
signed_with() {
	grep "\"event\":\"request\"" "$MOCK_LOG" | grep -F "[\"X-Tag\",\"$1\"]" |
	    sed -n 's/.*"auth":"ok","auth_id":"\([0-9]*\)".*/\1/p' | tail -n 1
}

# call TAG [URL]: POST through the proxy; prints the status.
call() {
	curl -sS -o /dev/null -w '%{http_code}' --max-time 30 -H "X-Tag: $1" \
	    -X POST -d '{}' "${2:-$URL}/public_api/v1/x/"
}

if command -v socat >/dev/null; then
	: > "$T/notify.out"
	rm -f "$T/notify.sock"
	socat -u "UNIX-RECV:$T/notify.sock" "OPEN:$T/notify.out,append" \
	    2> "$T/socat.err" &
	PIDS+=($!)
	wait_for 5 test -S "$T/notify.sock" && export NOTIFY_SOCKET=$T/notify.sock
fi

conf 0 ""
start_proxy
STABLE=$URL
expect_eq "generation 1: 200" "$(call g1)" 200
expect_eq "generation 1: signed with key 1000" "$(signed_with g1)" 1000

# 1. A new key, and a second listener.
conf 1 "" "127.0.0.2:0"
if reload 2; then pass "reload: configuration 2 in force"
else fail "no 'configuration 2 in force': $(tail -n 5 "$PROXY_LOG")"; fi
expect_eq "generation 2: 200 on the listener that stayed" "$(call g2)" 200
expect_eq "generation 2: signed with the new key" "$(signed_with g2)" 1001
p2=$(port_of 127.0.0.2)
expect_match "the new listener is logged" "$p2" '^[0-9]+$'
expect_eq "the new listener serves" "$(call g2b "http://127.0.0.2:$p2")" 200
expect_eq "the new listener signs with the new key" "$(signed_with g2b)" 1001
expect_eq "the stable listener kept its port" \
    "$(grep -c 'tenant acme: listening on 127.0.0.1:' "$PROXY_LOG")" 1
if [ -n "${NOTIFY_SOCKET:-}" ]; then
	if wait_for 5 grep -q '^RELOADING=1$' "$T/notify.out" &&
	    grep -Eq '^MONOTONIC_USEC=[0-9]+$' "$T/notify.out"; then
		pass "RELOADING=1 with MONOTONIC_USEC sent"
	else
		fail "no RELOADING=1 + MONOTONIC_USEC: '$(cat "$T/notify.out")'"
	fi
	expect_eq "READY=1 sent again after the reload" \
	    "$(grep -c '^READY=1$' "$T/notify.out")" 2
else
	echo "# socat not installed: notification checks skipped"
fi

# 2. An invalid configuration changes nothing.
conf 2 "bogus_setting = 1" "127.0.0.2:0"
line=$(grep -n '^bogus_setting' "$T/xdrproxy.conf" | cut -d: -f1)
if reload_fails 2; then pass "invalid configuration: reload failed"
else fail "no 'reload failed': $(tail -n 5 "$PROXY_LOG")"; fi
expect_match "the error is FILE:LINE: message" "$(grep 'reload failed' "$PROXY_LOG" | tail -n 1)" \
    "reload failed: $T/xdrproxy.conf:$line: .*bogus_setting"
expect_eq "still serving after a failed reload" "$(call g2c)" 200
expect_eq "still the old key after a failed reload" "$(signed_with g2c)" 1001
expect_eq "the second listener still serves" "$(call g2d "http://127.0.0.2:$p2")" 200

# A key file that cannot be read: the same.
conf 2 "" "127.0.0.2:0"
sed -i "s|^key_file .*|key_file   = $T/no-such.key|" "$T/xdrproxy.conf"
reload_fails 2 || fail "missing key: no 'reload failed'"
expect_match "missing key: FILE:LINE: key_file" "$(grep 'reload failed' "$PROXY_LOG" | tail -n 1)" \
    "reload failed: $T/xdrproxy.conf:[0-9]+: key_file $T/no-such.key"
expect_eq "missing key: still serving with the old key" "$(call g2e)" 200
expect_eq "missing key: old key" "$(signed_with g2e)" 1001

# An address another process holds (the mock tenant's): the same.
conf 2 "" "127.0.0.2:0" "127.0.0.1:$MOCK_PORT"
reload_fails 2 || fail "address in use: no 'reload failed'"
expect_match "address in use: FILE:LINE: listen" "$(grep 'reload failed' "$PROXY_LOG" | tail -n 1)" \
    "reload failed: $T/xdrproxy.conf:[0-9]+: listen 127.0.0.1:$MOCK_PORT: Address already in use"
expect_eq "address in use: the second listener still serves" \
    "$(call g2f "http://127.0.0.2:$p2")" 200

# 3. A request in flight finishes with the configuration it started with.
curl -sS -o "$T/slow.out" -w '%{http_code}' --max-time 30 -H 'X-Tag: slow' \
    -H 'X-Mock-Delay-Ms: 1500' -H 'X-Mock-Stream: 300000' -X POST -d '{}' \
    "$URL/public_api/v1/x/" > "$T/slow.code" &
slow=$!
wait_for 10 grep -q '"X-Tag","slow"' "$MOCK_LOG" || fail "the slow request did not reach the tenant"
conf 2 "upstream_timeout = 1s" "127.0.0.4:0"
reload 3 || fail "no 'configuration 3 in force'"
wait "$slow"
expect_eq "in flight across the reload: 200" "$(cat "$T/slow.code")" 200
expect_eq "in flight across the reload: the whole body" "$(wc -c < "$T/slow.out")" 300000
expect_eq "in flight across the reload: signed with the old key" "$(signed_with slow)" 1001
expect_eq "after it: the new key" "$(call g3)" 200
expect_eq "after it: signed with key 1002" "$(signed_with g3)" 1002
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.2:$p2/public_api/v1/x/")
expect_eq "the removed listener refuses connections" "$code" 000

# 4. Under load: 20 clients, 20 reloads. A client reads the key index in
# force before each curl (5 requests on one keep-alive connection); every
# one of them must be answered 200 and signed with that key or a newer one.
echo 2 > "$T/gen"
client() {
	local c=$1 n=0 k
	while [ ! -e "$T/stop" ]; do
		k=$(cat "$T/gen")
		n=$((n + 1))
		curl -s -w '%{http_code}\n' --max-time 30 \
		    -H "X-Load: $c-$n-$k" -X POST -d '{}' \
		    -o /dev/null "$STABLE/public_api/v1/x/" \
		    -o /dev/null "$STABLE/public_api/v1/x/" \
		    -o /dev/null "$STABLE/public_api/v1/x/" \
		    -o /dev/null "$STABLE/public_api/v1/x/" \
		    -o /dev/null "$STABLE/public_api/v1/x/" \
		    >> "$T/client$c.codes"
	done
}
clients=()
for c in $(seq 1 20); do
	client "$c" &
	clients+=($!)
done
wait_for 20 answered_at_least 100 ||
    fail "the clients did not start"
prev=127.0.0.4
reloads_ok=0 extra_ok=0 removed_ok=0
for i in $(seq 1 20); do
	k=$((i + 2))
	addr=127.0.0.$((10 + i))
	conf "$k" "" "$addr:0"
	if reload $((i + 3)); then
		reloads_ok=$((reloads_ok + 1))
	else
		fail "reload $i: no 'configuration $((i + 3)) in force'"
	fi
	echo "$k" > "$T/gen.new" && mv "$T/gen.new" "$T/gen"
	p=$(port_of "$addr")
	[ -n "$p" ] && [ "$(call "extra$i" "http://$addr:$p")" = 200 ] &&
	    [ "$(signed_with "extra$i")" = $((1000 + k)) ] && extra_ok=$((extra_ok + 1))
	pp=$(port_of "$prev")
	[ -n "$pp" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
	    "http://$prev:$pp/public_api/v1/x/")" = 000 ] && removed_ok=$((removed_ok + 1))
	prev=$addr
	# Let the clients send under this configuration too.
	n0=$(cat "$T"/client*.codes | wc -l)
	wait_for 20 answered_at_least $((n0 + 40)) ||
	    echo "# reload $i: the clients sent fewer than 40 requests in 20 s"
done
touch "$T/stop"
wait "${clients[@]}"
expect_eq "under load: 20 reloads done" "$reloads_ok" 20
expect_eq "under load: each new listener served, with the new key" "$extra_ok" 20
expect_eq "under load: each removed listener refused connections" "$removed_ok" 20
total=$(cat "$T"/client*.codes | wc -l)
bad=$(grep -cv '^200$' "$T"/client*.codes | awk -F: '{s += $2} END {print s}')
echo "# under load: $total requests from 20 clients across 20 reloads"
expect_eq "under load: no failed or refused request" "$bad" 0
[ "$total" -ge 1000 ] && pass "under load: $total requests (>= 1000)" ||
    fail "under load: only $total requests"
# Every request signed with the key in force when it was sent, or newer.
grep '"event":"request"' "$MOCK_LOG" | grep '"X-Load"' |
    sed -n 's/.*"auth":"\([a-z_]*\)","auth_id":"\([0-9]*\)".*\["X-Load","[0-9]*-[0-9]*-\([0-9]*\)"\].*/\1 \2 \3/p' \
    > "$T/load.sig"
expect_eq "under load: the tenant saw every request" "$(wc -l < "$T/load.sig")" "$total"
stale=$(awk '$1 != "ok" || $2 - 1000 < $3' "$T/load.sig" | wc -l)
expect_eq "under load: every request signed with the key in force or newer" "$stale" 0
expect_eq "under load: every request audited" \
    "$(grep -c '"status":200' "$T/audit.jsonl")" "$(grep -c '"event":"request"' "$MOCK_LOG")"

# 5. The audit log follows audit_log, and workers waits for a restart.
WORKERS=1 conf 21 "" "127.0.0.2:0"
sed -i "s|^audit_log = .*|audit_log = $T/audit2.jsonl|" "$T/xdrproxy.conf"
reload 24 || fail "no 'configuration 24 in force'"
expect_eq "new audit_log: 200" "$(call g24)" 200
# The record is written once the answer is out: curl may return first.
wait_for 5 grep -qs '^{"type":"response",.*"status":200' "$T/audit2.jsonl" || :
expect_match "new audit_log: the record is in the new file" "$(audit_responses "$T/audit2.jsonl" | tail -n 1)" '"status":200'
expect_match "a changed workers count: said to wait for a restart" "$(cat "$PROXY_LOG")" \
    "workers = 1 takes effect at the next restart; 2 keep running"
stop_proxy
finish
