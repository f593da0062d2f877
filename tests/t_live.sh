#!/bin/bash
# t_live.sh: the tenant's clock and xdrproxy -t --live. The mock tenant's
# clock can run off ours (--date-offset: its Date headers and the window
# it checks timestamps in). A skew over 60 s is warned about once per
# tenant (two requests, one warning); a 401 under such a skew is logged
# with the clock as its likely cause. -t --live makes one signed
# healthcheck per tenant and says what happened, in words: OK with the
# skew, a wrong key, a clock far off, an unreachable tenant, a bad
# certificate, a 403; any failure makes it exit 1.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

make_pki

# live [CONFIG]: xdrproxy -t --live; its output in $T/live, status in $rc.
live() {
	"$XDRPROXY" -t --live -c "${1:-$T/xdrproxy.conf}" > "$T/live" 2>&1
	rc=$?
}

# ---- -t --live against a tenant whose clock agrees
start_mock
write_config
before=$(mock_requests)
live
expect_eq "-t --live, good tenant: exit 0" "$rc" 0
expect_match "-t --live, good tenant: configuration OK first" "$(head -n 1 "$T/live")" \
    "^$T/xdrproxy.conf: configuration OK\$"
expect_match "-t --live, good tenant: OK with the skew" "$(sed -n 2p "$T/live")" \
    '^tenant acme: OK \(HTTP 200, skew [+-][01]\.[0-9] s\)$'
expect_eq "-t --live: one request to the tenant" "$(mock_requests)" $((before + 1))
last=$(grep '"event":"request"' "$MOCK_LOG" | tail -n 1)
expect_match "-t --live: a signed GET of the healthcheck, accepted" "$last" \
    "^\\{\"event\":\"request\",\"conn\":[0-9]+,\"method\":\"GET\",\"uri\":\"/public_api/v1/healthcheck\",\"auth\":\"ok\",\"auth_id\":\"$KEY_ID\",\"nonce\":\"[A-Za-z0-9]{64}\",\"timestamp\":\"[0-9]{13}\""
expect_no_match "-t --live: the key is not printed" "$(cat "$T/live")" "$API_KEY"
# Without -t, --live is a usage error.
"$XDRPROXY" --live -c "$T/xdrproxy.conf" > "$T/out" 2>&1
expect_eq "--live without -t: exit 2" "$?" 2
expect_match "--live without -t: says so" "$(cat "$T/out")" '--live goes with -t'
out=$("$XDRPROXY" -h)
expect_match "-h names --live" "$out" 'xdrproxy -t --live \[-c file\]'

# A wrong key: the tenant's 401, in words.
printf 'not-the-key\n' > "$T/wrong.key"; chmod 600 "$T/wrong.key"
sed "s|^key_file   = .*|key_file   = $T/wrong.key|" "$T/xdrproxy.conf" > "$T/wrongkey.conf"
live "$T/wrongkey.conf"
expect_eq "-t --live, wrong key: exit 1" "$rc" 1
expect_match "-t --live, wrong key: the key or key ID is wrong" "$(cat "$T/live")" \
    'tenant acme: FAILED: HTTP 401: the key or key ID is wrong \(the clocks agree: skew [+-][01]\.[0-9] s\)'

# A wrong key ID: the same 401.
sed "s|^key_id     = .*|key_id     = 4242|" "$T/xdrproxy.conf" > "$T/wrongid.conf"
live "$T/wrongid.conf"
expect_eq "-t --live, wrong key ID: exit 1" "$rc" 1
expect_match "-t --live, wrong key ID: in words" "$(cat "$T/live")" \
    'tenant acme: FAILED: HTTP 401: the key or key ID is wrong'

# Two tenants, one unreachable: both reported, exit 1.
cat "$T/xdrproxy.conf" > "$T/two.conf"
cat >> "$T/two.conf" <<EOF
[tenant down]
listen     = 127.0.0.1:0
fqdn       = $FQDN
key_id     = $KEY_ID
key_file   = $T/api.key
ca_file    = $CA
connect_to = 127.0.0.1:1
EOF
live "$T/two.conf"
expect_eq "-t --live, one tenant unreachable: exit 1" "$rc" 1
expect_match "-t --live: the good tenant still OK" "$(cat "$T/live")" \
    'tenant acme: OK \(HTTP 200, skew [+-][01]\.[0-9] s\)'
expect_match "-t --live: unreachable, with libcurl's message" "$(cat "$T/live")" \
    'tenant down: FAILED: unreachable: Failed to connect to 127\.0\.0\.1 port 1 '

# An untrusted certificate: TLS.
PROXY_CA=$OTHER_CA write_config
live
expect_eq "-t --live, untrusted certificate: exit 1" "$rc" 1
expect_match "-t --live, untrusted certificate: TLS" "$(cat "$T/live")" \
    'tenant acme: FAILED: TLS \(certificate, name, pin or handshake\): SSL certificate problem'

# A wrong pin: TLS too, and nothing reaches the tenant.
before=$(mock_requests)
write_config "pinned_pubkey = sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
live
expect_eq "-t --live, wrong pin: exit 1" "$rc" 1
expect_match "-t --live, wrong pin: TLS" "$(cat "$T/live")" \
    'tenant acme: FAILED: TLS .*: SSL: public key does not match pinned public key'
expect_eq "-t --live, wrong pin: nothing reached the tenant" "$(mock_requests)" "$before"

# A static error stops -t before any call.
write_config "colour = blue"
before=$(mock_requests)
live
expect_eq "-t --live, bad configuration: exit 1" "$rc" 1
expect_match "-t --live, bad configuration: FILE:LINE" "$(cat "$T/live")" \
    "^$T/xdrproxy.conf:[0-9]+: unknown key 'colour'"
expect_eq "-t --live, bad configuration: no call made" "$(mock_requests)" "$before"
kill -TERM "$MOCK_PID"; wait "$MOCK_PID" 2>/dev/null

# ---- A tenant whose clock is 2 minutes ahead: still accepted (within 5
# minutes), but warned about, once. Skews are checked to within 2 s: a
# Date is good to a second, and a loaded machine adds some.
start_mock ahead --date-offset 120
write_config "" "workers = 2"
live
expect_eq "-t --live, clock 2 minutes off: exit 0 (the tenant accepts)" "$rc" 0
expect_match "-t --live, clock 2 minutes off: OK, with the skew and a warning" \
    "$(cat "$T/live")" \
    'tenant acme: OK \(HTTP 200, skew \+1(1[89]|2[01])\.[0-9] s: more than 60 s; the tenant rejects requests about 5 minutes off\)'
start_proxy
for i in 1 2 3; do
	code=$(px -o /dev/null -w '%{http_code}' -X POST -d '{}' /public_api/v1/clock/$i/)
	expect_eq "clock 2 minutes off: request $i answered" "$code" 200
done
expect_eq "clock 2 minutes off: one warning for three requests" \
    "$(grep -c "the tenant's clock differs from ours" "$PROXY_LOG")" 1
expect_match "clock 2 minutes off: the warning" "$(cat "$PROXY_LOG")" \
    "warning: tenant acme: the tenant's clock differs from ours by \\+1(1[89]|2[01])\.[0-9] s; it rejects requests more than about 5 minutes off"
# A 401 while the skew is known to be over 60 s names the clock.
px -o /dev/null -H 'X-Mock-Status: 401' -X POST -d '{}' /public_api/v1/clock/401/
wait_for 5 grep -q 'clock/401/ from .*: 401 from the tenant' "$PROXY_LOG" ||
    fail "401 under skew: no log line"
expect_match "401 under skew: the clock is the likely cause" "$(cat "$PROXY_LOG")" \
    "warning: request [0-9a-f]{16}: tenant acme: POST /public_api/v1/clock/401/ from 127\\.0\\.0\\.1:[0-9]+: 401 from the tenant, whose clock differs from ours by \\+1(1[89]|2[01])\.[0-9] s: the clock is the likely cause"
stop_proxy
kill -TERM "$MOCK_PID"; wait "$MOCK_PID" 2>/dev/null

# ---- 10 minutes behind: every signature is stale to the tenant (401).
start_mock behind --date-offset -600
write_config
live
expect_eq "-t --live, clock 10 minutes off: exit 1" "$rc" 1
expect_match "-t --live, clock 10 minutes off: the clock, with the skew" "$(cat "$T/live")" \
    'tenant acme: FAILED: HTTP 401: the clock is off by -(59[89]|60[01])\.[0-9] s \(the tenant refuses requests about 5 minutes off\), or the key or key ID is wrong'
expect_match "the mock refused it as stale" \
    "$(grep '"event":"request"' "$MOCK_LOG" | tail -n 1)" '"auth":"stale"'
start_proxy
px -o /dev/null -X POST -d '{}' /public_api/v1/stale/
wait_for 5 grep -q 'stale/ from .*: 401' "$PROXY_LOG" || fail "stale 401: no log line"
expect_match "stale 401: the warning, then the hint" "$(cat "$PROXY_LOG")" \
    "tenant acme: the tenant's clock differs from ours by -(59[89]|60[01])\\.[0-9] s"
expect_match "stale 401: the clock is the likely cause" "$(cat "$PROXY_LOG")" \
    'POST /public_api/v1/stale/ from 127\.0\.0\.1:[0-9]+: 401 from the tenant, whose clock differs from ours by -(59[89]|60[01])\.[0-9] s: the clock is the likely cause \(the tenant rejects timestamps about 5 minutes off\)'
stop_proxy

# A key whose role forbids the call: 403 in words; another status with
# the tenant's body (the mock's --healthcheck-status, since -t --live
# sends no X-Mock-* headers).
kill -TERM "$MOCK_PID"; wait "$MOCK_PID" 2>/dev/null
start_mock forbidden --healthcheck-status 403
write_config
live
expect_eq "-t --live, 403: exit 1" "$rc" 1
expect_match "-t --live, 403: in words" "$(cat "$T/live")" \
    "tenant acme: FAILED: HTTP 403: the key's role does not allow this call"
kill -TERM "$MOCK_PID"; wait "$MOCK_PID" 2>/dev/null
start_mock broken --healthcheck-status 500
write_config
live
expect_eq "-t --live, 500: exit 1" "$rc" 1
expect_match "-t --live, 500: with the tenant's answer" "$(cat "$T/live")" \
    'tenant acme: FAILED: HTTP 500: \{"reply":\{"err_code":500,"err_msg":"mock healthcheck error","err_extra":null\}\}'
finish
