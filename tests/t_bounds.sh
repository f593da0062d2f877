#!/bin/bash
# t_bounds.sh: what bounds a client's hold on the proxy. A request head
# sent a byte at a time (slowloris) is cut off at client_header_timeout,
# and 200 such connections do not keep 20 ordinary clients from being
# served; past max_clients a new connection is closed at once, and served
# again once others have gone; an idle keep-alive connection is closed at
# keepalive_timeout.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

make_pki
start_mock
write_config "" "client_header_timeout = 1s
keepalive_timeout = 1s"
start_proxy

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# The head a slow client trickles out, never complete in the time it has
# (25 bytes at most, one each 200 ms).
SLOW_HEAD="GET /public_api/v1/slowloris/ HTTP/1.1\r\nHost: localhost\r\n"

# 9a. One slow connection: closed by the proxy after about 1 s, with no
# response, and nothing reached the tenant.
before=$(mock_requests)
exec {slow}<>"/dev/tcp/127.0.0.1/$PROXY_PORT"
t0=$(now_ms)
(
	trap '' PIPE
	bytes=$(printf '%b' "$SLOW_HEAD")
	for ((i = 0; i < 25; i++)); do
		printf '%s' "${bytes:i:1}" 1>&"$slow" 2>/dev/null || exit 0
		sleep 0.2
	done
) &
writer=$!
timeout 5 cat <&"$slow" > "$T/slow.out"
rc=$?
ms=$(( $(now_ms) - t0 ))
exec {slow}<&-
kill "$writer" 2>/dev/null
wait "$writer" 2>/dev/null
expect_eq "slowloris: closed by the proxy (not the 5 s timeout)" "$rc" 0
expect_eq "slowloris: closed after 0.8-3 s (took $ms ms)" \
    "$([ "$ms" -ge 800 ] && [ "$ms" -lt 3000 ] && echo yes)" yes
expect_eq "slowloris: no response" "$(wc -c < "$T/slow.out")" 0
expect_eq "slowloris: nothing reached the tenant" "$(mock_requests)" "$before"

# 9b. 200 slow connections at once (one shell holds them all, writing a
# byte to each every 200 ms for at most 5 s), while 20 ordinary clients
# each get their answer.
(
	trap '' PIPE
	fds=()
	for ((k = 0; k < 200; k++)); do
		exec {fd}<>"/dev/tcp/127.0.0.1/$PROXY_PORT" || break
		fds+=("$fd")
	done
	echo "${#fds[@]}" > "$T/slow.opened"
	bytes=$(printf '%b' "$SLOW_HEAD")
	for ((i = 0; i < 25; i++)); do
		for fd in "${fds[@]}"; do
			printf '%s' "${bytes:i:1}" 1>&"$fd" 2>/dev/null
		done
		sleep 0.2
	done
	# By now the proxy has closed every one: read sees EOF (or the reset
	# our late writes drew) at once, not a timeout.
	closed=0
	for fd in "${fds[@]}"; do
		read -r -t 0.2 -u "$fd" _
		[ $? -le 128 ] && closed=$((closed + 1))
	done
	echo "$closed" > "$T/slow.closed"
) 2> "$T/slow.err" &
slowpid=$!
if ! wait_for 10 test -s "$T/slow.opened"; then
	fail "200 slow connections: not opened"
fi
expect_eq "200 slow connections opened" "$(cat "$T/slow.opened" 2>/dev/null)" 200
busy=()
for ((k = 1; k <= 20; k++)); do
	curl -sS --max-time 20 -o /dev/null -w '%{http_code}' -X POST -d '{}' \
	    "$URL/public_api/v1/bounds/busy-$k/" > "$T/busy.$k" 2>&1 &
	busy+=($!)
done
# Each curl ends by itself (--max-time 20).
for pid in "${busy[@]}"; do
	wait "$pid"
done
ok=0
for ((k = 1; k <= 20; k++)); do
	[ "$(cat "$T/busy.$k")" = 200 ] && ok=$((ok + 1))
done
expect_eq "20 clients served beside 200 slow connections" "$ok" 20
wait_for 15 test -s "$T/slow.closed" || fail "slow connections: writer did not finish"
wait "$slowpid" 2>/dev/null
expect_eq "200 slow connections all closed by the proxy" \
    "$(cat "$T/slow.closed" 2>/dev/null)" 200
expect_no_match "slow connections never reached the tenant" \
    "$(cat "$MOCK_LOG")" slowloris

# 11. keepalive_timeout = 1s: after its answer, an idle keep-alive
# connection is closed by the proxy.
exec {ka}<>"/dev/tcp/127.0.0.1/$PROXY_PORT"
printf 'POST /public_api/v1/bounds/keepalive/ HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\n{}' >&"$ka"
t0=$(now_ms)
timeout 6 cat <&"$ka" > "$T/ka.out"
rc=$?
ms=$(( $(now_ms) - t0 ))
exec {ka}<&-
expect_match "keep-alive: answered 200" "$(head -n 1 "$T/ka.out")" '^HTTP/1\.1 200 '
expect_no_match "keep-alive: the answer kept the connection open" \
    "$(sed -n '1,/^\r$/p' "$T/ka.out")" 'Connection: close'
expect_eq "keep-alive: one response" "$(grep -ac '^HTTP/1' "$T/ka.out")" 1
expect_eq "keep-alive: idle connection closed by the proxy" "$rc" 0
expect_eq "keep-alive: closed within 0.8-3 s (took $ms ms)" \
    "$([ "$ms" -ge 800 ] && [ "$ms" -lt 3000 ] && echo yes)" yes

stop_proxy

# 10. max_clients = 5: with 5 keep-alive connections open and idle (each
# has had an answer, so the proxy has surely counted it), a 6th is closed
# at once with no response.
write_config "" "max_clients = 5
client_header_timeout = 30s
keepalive_timeout = 30s"
start_proxy

# reply FD FILE: one response read from FD (head, then Content-Length
# bytes of body) into FILE, leaving the connection open.
reply() {
	local fd=$1 line len=0 body LC_ALL=C
	: > "$2"
	while IFS= read -r -t 5 -u "$fd" line; do
		printf '%s\n' "$line" >> "$2"
		case $line in
		[Cc]ontent-[Ll]ength:*) len=${line#*:}; len=${len//[!0-9]/} ;;
		$'\r') break ;;
		esac
	done
	if [ "${len:-0}" -gt 0 ] && IFS= read -r -N "$len" -t 5 -u "$fd" body; then
		printf '%s' "$body" >> "$2"
	fi
}
idle=()
answered=0
for ((k = 0; k < 5; k++)); do
	exec {fd}<>"/dev/tcp/127.0.0.1/$PROXY_PORT"
	idle+=("$fd")
	# In a subshell: a write to a connection the proxy closed must not
	# kill the test with SIGPIPE.
	( printf 'POST /public_api/v1/bounds/idle-%d/ HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\n{}' \
	    "$k" 1>&"$fd" ) 2>/dev/null
	reply "$fd" "$T/idle.$k"
	grep -q '^HTTP/1\.1 200 ' "$T/idle.$k" && answered=$((answered + 1))
done
expect_eq "max_clients: 5 keep-alive connections answered" "$answered" 5
exec {sixth}<>"/dev/tcp/127.0.0.1/$PROXY_PORT"
t0=$(now_ms)
timeout 5 cat <&"$sixth" > "$T/sixth.out"
rc=$?
ms=$(( $(now_ms) - t0 ))
exec {sixth}<&-
expect_eq "max_clients: 6th connection closed (not the 5 s timeout)" "$rc" 0
expect_eq "max_clients: 6th closed at once (took $ms ms)" \
    "$([ "$ms" -lt 1000 ] && echo yes)" yes
expect_eq "max_clients: 6th got no response" "$(wc -c < "$T/sixth.out")" 0
if wait_for 5 grep -q 'max_clients (5) reached' "$PROXY_LOG"; then
	pass "max_clients: logged"
else
	fail "max_clients: no 'max_clients (5) reached' in the log"
fi
# The 5 are still open and served.
( printf 'POST /public_api/v1/bounds/idle/ HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}' \
    1>&"${idle[0]}" ) 2>/dev/null
timeout 5 cat <&"${idle[0]}" > "$T/idle0.out"
expect_match "max_clients: an idle connection is still served" \
    "$(head -n 1 "$T/idle0.out")" '^HTTP/1\.1 200 '
for fd in "${idle[@]}"; do
	exec {fd}<&-
done
served() {
	[ "$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' -X POST \
	    -d '{}' "$URL/public_api/v1/bounds/after/" 2>/dev/null)" = 200 ]
}
if wait_for 5 served; then
	pass "max_clients: served again once the idle connections closed"
else
	fail "max_clients: not served after the idle connections closed"
fi

stop_proxy
finish
