#!/bin/bash
# t_http2.sh: http2 = yes against a tenant that speaks HTTP/2 (nghttpd,
# from Debian's nghttp2-server; the mock tenant speaks HTTP/1.1 only).
# Requests share one connection, bodies pass byte for byte both ways, a
# slow client pauses its stream without the proxy's memory growing, and a
# client that leaves resets its stream. Concurrent streams are not
# exercised: with libcurl 7.88 some stall (README, Limits), which is why
# http2 is off by default.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

command -v nghttpd >/dev/null ||
    skip_all "nghttpd not installed (Debian package nghttp2-server; tests/deps.sh installs it)"
make_pki
mkdir -p "$T/h2/public_api/v1"
head -c 3000000 /dev/urandom > "$T/h2/public_api/v1/file.bin"
head -c 100000 /dev/urandom > "$T/h2/public_api/v1/small.bin"
head -c 67108864 /dev/urandom > "$T/h2/public_api/v1/big.bin"

# nghttpd takes a port number: try free-looking ones until ours answers
# with our certificate.
h2_up() {
	curl -s -o /dev/null --max-time 2 --cacert "$CA" \
	    --connect-to "$API_HOST:443:127.0.0.1:$H2_PORT" "https://$API_HOST/"
}
for try in $(seq 1 20); do
	H2_PORT=$((20000 + RANDOM % 30000))
	nghttpd -v -a 127.0.0.1 -d "$T/h2" --echo-upload "$H2_PORT" \
	    "$T/pki/$API_HOST.key" "$T/pki/$API_HOST.pem" > "$T/nghttpd.out" 2>&1 &
	H2_PID=$!
	if wait_for 5 h2_up; then break; fi
	kill "$H2_PID" 2>/dev/null; wait "$H2_PID" 2>/dev/null
	H2_PID=
done
[ -n "$H2_PID" ] || { echo "nghttpd did not start"; exit 99; }
PIDS+=("$H2_PID")
MOCK_PORT=$H2_PORT
write_config "http2 = yes" "workers = 1"
start_proxy
# Connections nghttpd numbers from here on are xdrproxy's (the probes
# above made the first ones).
probes=$(grep -o '^\[id=[0-9]*\]' "$T/nghttpd.out" | sort -u | wc -l)
h2_conns() {
	echo $(( $(grep -o '^\[id=[0-9]*\]' "$T/nghttpd.out" | sort -u | wc -l) - probes ))
}

measure_memory=1
[ -n "${XDRPROXY_SANITIZED:-}" ] && measure_memory=0 &&
    echo "# memory checks skipped: this is a sanitizer build"

px -D "$T/h" -o "$T/got" /public_api/v1/file.bin
if cmp -s "$T/got" "$T/h2/public_api/v1/file.bin"; then pass "download over HTTP/2 byte for byte"
else fail "download over HTTP/2 changed"; fi
# nghttpd -v logs the pseudo-headers of each HTTP/2 stream it receives:
# the request went out as HTTP/2 (this does not depend on the content type
# nghttpd picks, which needs /etc/mime.types).
expect_match "HTTP/2 in use (nghttpd received the path as an HTTP/2 stream)" \
    "$(cat "$T/nghttpd.out")" \
    'recv \(stream_id=[0-9]+\) :path: /public_api/v1/file\.bin'
expect_match "client still gets HTTP/1.1" "$(head -n 1 "$T/h")" '^HTTP/1\.1 200 '

head -c 1000000 /dev/urandom > "$T/up.bin"
px -X POST --data-binary @"$T/up.bin" -o "$T/echo" /public_api/v1/upload/
if cmp -s "$T/echo" "$T/up.bin"; then pass "upload over HTTP/2 byte for byte (echoed)"
else fail "upload over HTTP/2 changed"; fi

code=$(px -o /dev/null -w '%{http_code}' /public_api/v1/missing)
expect_eq "tenant's 404 passes through" "$code" 404

# One after another, all on the one connection.
same=0
for i in $(seq 1 10); do
	px -o "$T/c.$i" /public_api/v1/small.bin
	cmp -s "$T/c.$i" "$T/h2/public_api/v1/small.bin" && same=$((same + 1))
done
expect_eq "10 more downloads intact" "$same" 10
expect_eq "one HTTP/2 connection for everything" "$(h2_conns)" 1

# A slow client pauses its stream; the proxy does not buffer the rest.
base=$(hwm_kb "$PROXY_PID")
px --limit-rate 16M -o "$T/slow" /public_api/v1/big.bin
if cmp -s "$T/slow" "$T/h2/public_api/v1/big.bin"; then pass "slow client over HTTP/2: intact"
else fail "slow client over HTTP/2: changed"; fi
if [ "$measure_memory" = 1 ]; then
	grow=$(( $(hwm_kb "$PROXY_PID") - base ))
	if [ "$grow" -le 8192 ]; then pass "slow client over HTTP/2: peak RSS grew ${grow} KiB"
	else fail "slow client over HTTP/2: peak RSS grew ${grow} KiB"; fi
fi

# A client that leaves resets its stream, not the connection. libcurl
# 7.88 queues small frames until the connection's next send, so the reset
# reaches the tenant with the next request at the latest.
n=$(audit_count)
resets=$(grep -c 'recv RST_STREAM' "$T/nghttpd.out")
curl -sS --limit-rate 1M "$URL/public_api/v1/big.bin" 2>/dev/null | head -c 100000 > /dev/null
wait_num 5 -gt "$n" audit_count
expect_match "client gone: audited" "$(last_audit)" \
    '"path":"/public_api/v1/big.bin".*"outcome":"client_aborted"'
code=$(px -o /dev/null -w '%{http_code}' /public_api/v1/file.bin)
expect_eq "still serving" "$code" 200
if wait_num 5 -gt "$resets" grep -c 'recv RST_STREAM' "$T/nghttpd.out"; then
	pass "client gone: its stream was reset at the tenant"
else
	fail "client gone: no RST_STREAM at the tenant"
fi
expect_eq "still one HTTP/2 connection" "$(h2_conns)" 1
stop_proxy
finish
