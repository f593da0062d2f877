#!/bin/bash
# t_stream.sh: responses stream through byte for byte with bounded memory.
# A 1 GiB download (checked by size and hash), a slow client that pauses
# the tenant instead of filling the proxy's memory, gzip and zip bodies
# untouched, and a client that leaves cancelling its transfer at once.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

make_pki
start_mock
write_config "http2 = no"
start_proxy

# Memory figures are meaningless under AddressSanitizer (shadow memory and
# its quarantine of freed blocks); the sanitizer run checks the rest.
measure_memory=1
if [ -n "${XDRPROXY_SANITIZED:-}" ]; then
	measure_memory=0
	echo "# memory checks skipped: this is a sanitizer build"
fi

px -X POST -d '{}' /public_api/v1/x/ > /dev/null
base=$(hwm_kb "$PROXY_PID")

# 1 GiB, with Content-Length.
N=1073741824
want=$("$MOCK" --generate $N | sha256sum | cut -d' ' -f1)
got=$(px -H "X-Mock-Stream: $N" /public_api/v1/xql/get_query_results_stream/ |
    tee >(wc -c > "$T/size") | sha256sum | cut -d' ' -f1)
wait_for 5 test -s "$T/size"
expect_eq "1 GiB download: size" "$(cat "$T/size")" "$N"
expect_eq "1 GiB download: sha256" "$got" "$want"
if [ "$measure_memory" = 1 ]; then
	grow=$(( $(hwm_kb "$PROXY_PID") - base ))
	if [ "$grow" -le 8192 ]; then pass "1 GiB download: peak RSS grew ${grow} KiB (<= 8 MiB)"
	else fail "1 GiB download: peak RSS grew ${grow} KiB"; fi
fi
wait_for 5 grep -q '"bytes_out":1073741824,' "$T/audit.jsonl" ||
    fail "1 GiB download: audit bytes_out"
expect_match "1 GiB download: audited" "$(last_audit)" \
    '"status":200,"bytes_in":0,"bytes_out":1073741824,.*"outcome":"ok"'

# Chunked from the tenant (no length): re-chunked to the client.
N=50000000
want=$("$MOCK" --generate $N | sha256sum | cut -d' ' -f1)
got=$(px -H "X-Mock-Stream: $N" -H 'X-Mock-Chunked: 1' /public_api/v1/x/ |
    sha256sum | cut -d' ' -f1)
expect_eq "chunked download: sha256" "$got" "$want"

# A slow client: 64 MiB read at 16 MiB/s. Without backpressure the proxy
# would hold most of it; with it the tenant is paused.
N=67108864
base=$(hwm_kb "$PROXY_PID")
got=$(px --limit-rate 16M -H "X-Mock-Stream: $N" /public_api/v1/x/ |
    sha256sum | cut -d' ' -f1)
expect_eq "slow client: sha256" "$got" "$("$MOCK" --generate $N | sha256sum | cut -d' ' -f1)"
if [ "$measure_memory" = 1 ]; then
	grow=$(( $(hwm_kb "$PROXY_PID") - base ))
	if [ "$grow" -le 8192 ]; then pass "slow client: peak RSS grew ${grow} KiB (<= 8 MiB)"
	else fail "slow client: peak RSS grew ${grow} KiB: not paused"; fi
fi

# Compressed bodies pass through untouched, whatever Accept-Encoding says.
head -c 300000 /dev/urandom | base64 > "$T/results.ndjson"
gzip -c "$T/results.ndjson" > "$T/files/results.ndjson.gz"
cp "$T/files/results.ndjson.gz" "$T/files/download.zip"
for accept in '' 'gzip' 'identity'; do
	px -H 'X-Mock-File: results.ndjson.gz' -H 'X-Mock-Content-Encoding: gzip' \
	    -H 'X-Mock-Content-Type: application/x-ndjson' \
	    ${accept:+-H "Accept-Encoding: $accept"} -D "$T/h" -o "$T/got.gz" \
	    /public_api/v1/xql/get_query_results_stream/
	if cmp -s "$T/got.gz" "$T/files/results.ndjson.gz"; then
		pass "gzip NDJSON byte for byte (Accept-Encoding: ${accept:-none})"
	else
		fail "gzip NDJSON changed (Accept-Encoding: ${accept:-none})"
	fi
	expect_match "Content-Encoding kept" "$(cat "$T/h")" $'Content-Encoding: gzip\r'
done
px -H 'X-Mock-File: download.zip' -H 'X-Mock-Content-Type: application/zip' \
    -o "$T/got.zip" /public_api/v1/download/file/
if cmp -s "$T/got.zip" "$T/files/download.zip"; then pass "zip download byte for byte"
else fail "zip download changed"; fi

# A client that leaves mid-download cancels the transfer at once: the
# tenant has sent no more than the client took plus what can wait in the
# pipes between them (two loopback TCP connections, each at most a full
# send and receive buffer, and about 1 MiB in the three programs). A proxy
# that read on after the client left, even for a fraction of a second at
# loopback speed, goes past that (a 1 GiB bound let it read on for seconds).
took=5000000
rmax=$(awk '{ print $3 }' /proc/sys/net/ipv4/tcp_rmem 2>/dev/null)
wmax=$(awk '{ print $3 }' /proc/sys/net/ipv4/tcp_wmem 2>/dev/null)
bound=$(( took + 2 * (${rmax:-33554432} + ${wmax:-4194304}) + 1048576 ))
n=$(audit_count)
curl -sS --max-time 60 -H "X-Mock-Stream: 10737418240" "$URL/public_api/v1/x/big/" 2>/dev/null |
    head -c $took > /dev/null
wait_for 10 grep -q '"event":"aborted","uri":"/public_api/v1/x/big/"' "$MOCK_LOG" ||
    fail "client gone mid-download: tenant transfer not cancelled within 10 s"
a=$(grep '"event":"aborted","uri":"/public_api/v1/x/big/"' "$MOCK_LOG")
expect_match "client gone mid-download: tenant transfer cancelled" "$a" '"bytes_sent":[0-9]+'
sent=$(printf '%s' "$a" | sed -n 's/.*"bytes_sent":\([0-9]*\).*/\1/p')
if [ -n "$sent" ] && [ "$sent" -ge $took ] && [ "$sent" -le $bound ]; then
	pass "cancelled early (${sent} bytes sent, client took $took, bound $bound)"
else
	fail "tenant sent ${sent:-no count of} bytes before the cancel (client took $took, bound $bound)"
fi
wait_num 5 -gt "$n" audit_count
expect_match "client gone mid-download: audited" "$(last_audit)" \
    '"path":"/public_api/v1/x/big/".*"status":200,.*"outcome":"client_aborted","error":"client_closed",'

# A client that leaves while the tenant is still thinking.
n=$(audit_count)
curl -sS --max-time 1 -H 'X-Mock-Delay-Ms: 20000' "$URL/public_api/v1/x/slow/" \
    > /dev/null 2>&1
wait_for 10 grep -q '"event":"aborted","uri":"/public_api/v1/x/slow/"' "$MOCK_LOG" ||
    fail "client gone while waiting: tenant request not cancelled"
expect_match "client gone while waiting: tenant request cancelled" \
    "$(grep '"uri":"/public_api/v1/x/slow/"' "$MOCK_LOG" | tail -n 1)" '"event":"aborted"'
wait_num 5 -gt "$n" audit_count
expect_match "client gone while waiting: audited as 499" "$(last_audit)" \
    '"path":"/public_api/v1/x/slow/".*"status":499,.*"outcome":"client_aborted","error":"client_closed",'

code=$(px -o /dev/null -w '%{http_code}' /public_api/v1/x/)
expect_eq "still serving" "$code" 200
stop_proxy
finish
