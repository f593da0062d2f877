#!/bin/bash
# t_basic.sh: the user's first call. curl -> xdrproxy -> mock tenant over
# TLS with fresh advanced-auth headers, answered and audited.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

make_pki
start_mock
write_config
start_proxy

# The README's call.
out=$T/out
code=$(curl -sS -o "$out" -w '%{http_code}' -X POST \
    "$URL/public_api/v1/incidents/get_incidents/" \
    -H 'Content-Type: application/json' -d '{"request_data":{}}')
expect_eq "get_incidents answered" "$code" 200
expect_match "tenant's reply reaches the client" "$(cat "$out")" \
    '^\{"reply":\{"total_count":2,.*"incidents":\['
rec=$(grep '"event":"request"' "$MOCK_LOG" | tail -n 1)
expect_eq "tenant accepted the signature" "$(json_str "$rec" auth)" ok
expect_eq "x-xdr-auth-id is the key id" "$(json_str "$rec" auth_id)" "$KEY_ID"

# Recompute the hash the tenant saw, by hand, with sha256sum.
nonce=$(json_str "$rec" nonce)
ts=$(json_str "$rec" timestamp)
authz=$(printf '%s' "$rec" | sed -n 's/.*\["Authorization","\([^"]*\)"\].*/\1/p')
want=$(printf '%s' "$API_KEY$nonce$ts" | sha256sum | cut -d' ' -f1)
expect_eq "Authorization is sha256(key + nonce + timestamp)" "$authz" "$want"
expect_match "nonce is 64 characters of [A-Za-z0-9]" "$nonce" '^[A-Za-z0-9]{64}$'
now=$(date +%s%3N)
expect_match "timestamp is ms since the epoch" "$ts" '^[0-9]{13}$'
if [ $((now - ts)) -ge 0 ] && [ $((now - ts)) -lt 10000 ]; then
	pass "timestamp is current"
else
	fail "timestamp $ts is not within 10 s of $now"
fi
expect_match "Host is api-<fqdn>" "$rec" "\[\"Host\",\"$API_HOST\"\]"
expect_eq "one Authorization header" \
    "$(printf '%s' "$rec" | grep -o '"Authorization"' | wc -l)" 1

# A second call gets a new nonce.
px -X POST -d '{}' /public_api/v1/incidents/get_incidents/ > /dev/null
rec2=$(grep '"event":"request"' "$MOCK_LOG" | tail -n 1)
expect_eq "second call accepted" "$(json_str "$rec2" auth)" ok
if [ "$(json_str "$rec2" nonce)" != "$nonce" ]; then pass "nonce is fresh"
else fail "nonce reused"; fi

# The audit record.
wait_num 5 -ge 2 audit_count || fail "no audit records"
a=$(audit_responses | head -n 1)
expect_match "audit record" "$a" \
    "$AUDIT_RESP"'"ts":"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z","request_id":"[0-9a-f]{16}","tenant":"acme","key_id":"42","client":"127\.0\.0\.1:[0-9]+","method":"POST","path":"/public_api/v1/incidents/get_incidents/","query":"","status":200,"bytes_in":19,"bytes_out":[0-9]+,"duration_ms":[0-9]+,"queued_ms":0,"attempts":1,"outcome":"ok","error":null,"caller":'
expect_eq "audit bytes_out is the body size" "$(json_num "$a" bytes_out)" \
    "$(stat -c %s "$out")"

stop_proxy
finish
