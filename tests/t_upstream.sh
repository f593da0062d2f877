#!/bin/bash
# t_upstream.sh: when the tenant side fails. An untrusted or misnamed
# certificate (502, nothing sent), nothing listening (502), too slow (504),
# a dropped connection (502), a stall mid-body (the client sees a cut-off
# body); and the tenant's own errors pass through unchanged.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

make_pki

# refused_upstream WHAT STATUS CODE: one call, a JSON error, audited.
upstream_error() {
	local what=$1 status=$2 code=$3
	px -i -X POST -d '{}' "${@:4}" /public_api/v1/incidents/get_incidents/ > "$T/out"
	expect_proxy_error "$what" "$status" "$code" "$T/out"
	wait_for 5 grep -q "\"error\":\"$code\"" "$T/audit.jsonl" ||
	    fail "$what: not audited"
	expect_match "$what: audited" "$(last_audit)" \
	    "\"status\":$status,.*\"outcome\":\"upstream_error\",\"error\":\"$code\",\"caller\":"
	expect_match "$what: logged with the request id" "$(cat "$PROXY_LOG")" \
	    "request [0-9a-f]{16}: tenant acme: POST /public_api/v1/incidents/get_incidents/ from 127\\.0\\.0\\.1:[0-9]+: $status $code"
}

# The proxy trusts another CA: TLS fails, no request is sent.
start_mock
PROXY_CA=$OTHER_CA write_config
start_proxy
upstream_error "untrusted certificate" 502 upstream_tls
expect_eq "untrusted certificate: nothing sent" "$(mock_requests)" 0
stop_proxy

# The tenant's certificate is for another name.
MOCK_CERT=$T/pki/wrong.example start_mock wrongname
write_config
start_proxy
upstream_error "certificate for another name" 502 upstream_tls
expect_eq "misnamed certificate: nothing sent" "$(mock_requests)" 0
stop_proxy

# Nothing listening.
start_mock
kill -TERM "$MOCK_PID"; wait "$MOCK_PID" 2>/dev/null
write_config
start_proxy
upstream_error "tenant down" 502 upstream_unreachable
stop_proxy

# Slow and broken tenants.
start_mock
write_config "" "upstream_timeout = 1s"
start_proxy
upstream_error "tenant slower than upstream_timeout" 504 upstream_timeout \
    -H 'X-Mock-Delay-Ms: 3000'
wait_for 10 grep -q '"event":"aborted"' "$MOCK_LOG"
expect_match "slow request cancelled at the tenant" "$(grep '"event":"aborted"' "$MOCK_LOG")" \
    '"uri":"/public_api/v1/incidents/get_incidents/"'
upstream_error "tenant drops the connection" 502 upstream_error -H 'X-Mock-Close: 1'

# A stall after part of the body: headers are gone, so the client must see
# a cut-off body, not a complete-looking one.
n=$(audit_count)
curl -sS --max-time 30 -o "$T/part" -H 'X-Mock-Stream: 1000000' \
    -H 'X-Mock-Stall-After: 300000' "$URL/public_api/v1/x/download/" 2> "$T/curl.err"
rc=$?
expect_eq "stalled body: curl reports a partial transfer" "$rc" 18
size=$(stat -c %s "$T/part")
if [ "$size" -lt 1000000 ]; then pass "stalled body: cut off ($size bytes)"
else fail "stalled body: $size bytes"; fi
wait_num 5 -gt "$n" audit_count
expect_match "stalled body: audited" "$(last_audit)" \
    '"status":200,.*"outcome":"upstream_error","error":"upstream_timeout","caller":'

# A slow tenant that keeps sending is not timed out.
code=$(px -o "$T/slow" -w '%{http_code}' -H 'X-Mock-Delay-Ms: 700' \
    -X POST -d '{}' /public_api/v1/x/)
expect_eq "tenant within upstream_timeout: answered" "$code" 200

# The tenant's errors pass through unchanged, body included.
for st in 400 401 402 403 404 429 500 502 503; do
	body="{\"reply\":{\"err_code\":$st,\"err_msg\":\"tenant says $st\",\"err_extra\":null}}"
	px -i -X POST -d '{}' -H "X-Mock-Status: $st" -H "X-Mock-Body: $body" \
	    /public_api/v1/incidents/get_incidents/ > "$T/out"
	expect_match "tenant $st: status" "$(head -n 1 "$T/out")" "^HTTP/1\\.1 $st "
	expect_eq "tenant $st: body unchanged" "$(sed '1,/^\r$/d' "$T/out")" "$body"
	expect_no_match "tenant $st: not marked as a proxy error" "$(cat "$T/out")" \
	    'x-xdrproxy-error'
	expect_match "tenant $st: audited as a complete answer" "$(last_audit)" \
	    "\"status\":$st,.*\"outcome\":\"ok\",\"error\":null,\"caller\":"
done
# The tenant's 401 for a bad signature, exactly as the tenant words it.
px -i -X POST -d '{}' -H 'X-Mock-Status: 401' /public_api/v1/x/ > "$T/out"
expect_eq "tenant 401 default body" "$(sed '1,/^\r$/d' "$T/out")" \
    '{"reply":{"err_code":401,"err_msg":"mock error","err_extra":null}}'
stop_proxy
finish
