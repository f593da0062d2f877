#!/bin/bash
# t_expiry.sh: key_expires. A warning from 7 days before (at start and on
# reload); on and after the day, 503 key_expired (never forwarded,
# audited), /readyz not ready; the expiry as a metric. -t warns, and
# passes: an expired key is a date to act on, not a broken file.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

make_pki
start_mock

# exp_config DATE: tenant acme with key_expires = DATE, an admin listener.
exp_config() {
	write_config "key_expires = $1" "admin_listen = 127.0.0.1:0"
}
admin_port() {
	sed -n 's/.*admin: listening on 127\.0\.0\.1:\([0-9]*\) (.*/\1/p' \
	    "$PROXY_LOG" | head -n 1
}

# 1. Three days ahead: a warning, calls work, the metric is there.
soon=$(date -u -d '+3 days' +%F)
exp_config "$soon"
out=$("$XDRPROXY" -t -c "$T/xdrproxy.conf" 2>&1)
expect_eq "-t passes with a key expiring in 3 days" "$?" 0
expect_match "-t warns" "$out" \
    "warning: tenant acme: the API key expires on $soon \\(in 3 days\\)"
start_proxy
expect_match "warning at start" "$(cat "$PROXY_LOG")" \
    "warning: tenant acme: the API key expires on $soon \\(in 3 days\\)\$"
code=$(px -o /dev/null -w '%{http_code}' -X POST -d '{}' \
    /public_api/v1/incidents/get_incidents/)
expect_eq "a call before the day: 200" "$code" 200
ap=$(admin_port)
m=$(curl -sS "http://127.0.0.1:$ap/metrics")
expect_match "expiry metric" "$m" \
    "^xdrproxy_key_expiry_timestamp_seconds\\{tenant=\"acme\"\\} $(date -u -d "$soon" +%s)\$"
expect_match "metric type" "$m" \
    '# TYPE xdrproxy_key_expiry_timestamp_seconds gauge'
expect_eq "/readyz: 200" "$(curl -sS -o /dev/null -w '%{http_code}' \
    "http://127.0.0.1:$ap/readyz")" 200
stop_proxy

# No expiry: no warning and no sample.
write_config "" "admin_listen = 127.0.0.1:0"
start_proxy
expect_no_match "no expiry: no warning" "$(cat "$PROXY_LOG")" 'API key expire'
m=$(curl -sS "http://127.0.0.1:$(admin_port)/metrics")
expect_no_match "no expiry: no sample" "$m" \
    '^xdrproxy_key_expiry_timestamp_seconds\{'
# 2. Reload to a key that expires today: warned, refused from now on.
today=$(date -u +%F)
exp_config "$today"
kill -HUP "$PROXY_PID"
if wait_for 20 grep -q 'reload: configuration 2 in force' "$PROXY_LOG"; then
	pass "reload to an expired key"
else
	fail "no reload: $(tail -n 3 "$PROXY_LOG")"
fi
expect_match "warning on reload" "$(cat "$PROXY_LOG")" \
    "warning: tenant acme: the API key expired on $today; requests get 503 key_expired\$"
n=$(mock_requests)
a0=$(audit_count)
px -i -X POST -d '{}' /public_api/v1/incidents/get_incidents/ > "$T/out"
expect_proxy_error "expired today" 503 key_expired "$T/out"
expect_match "the message names the day" "$(cat "$T/out")" \
    "\"message\":\"the API key of tenant acme expired on $today\""
expect_eq "the tenant received nothing" "$(mock_requests)" "$n"
wait_num 5 -gt "$a0" audit_count || fail "not audited"
expect_match "audited" "$(last_audit)" \
    '"status":503,.*"outcome":"proxy_error","error":"key_expired","caller":'
ap=$(admin_port)
code=$(curl -sS -o "$T/ready" -w '%{http_code}' "http://127.0.0.1:$ap/readyz")
expect_eq "/readyz: 503 with an expired key" "$code" 503
expect_match "/readyz names it" "$(cat "$T/ready")" '"acme":"key expired"'
stop_proxy

# 3. A past date: -t warns and passes; the proxy refuses at once.
exp_config 2020-02-29
out=$("$XDRPROXY" -t -c "$T/xdrproxy.conf" 2>&1)
expect_eq "-t passes with an expired key (a warning)" "$?" 0
expect_match "-t says it expired" "$out" \
    'warning: tenant acme: the API key expired on 2020-02-29; requests get 503 key_expired'
start_proxy
n=$(mock_requests)
px -i /public_api/v1/x > "$T/out"
expect_proxy_error "expired in 2020" 503 key_expired "$T/out"
expect_eq "the tenant received nothing" "$(mock_requests)" "$n"
m=$(curl -sS "http://127.0.0.1:$(admin_port)/metrics")
expect_match "metric of a past expiry" "$m" \
    '^xdrproxy_key_expiry_timestamp_seconds\{tenant="acme"\} 1582934400$'

# 8 days ahead: no warning yet.
exp_config "$(date -u -d '+8 days' +%F)"
out=$("$XDRPROXY" -t -c "$T/xdrproxy.conf" 2>&1)
expect_eq "8 days ahead: no warning" "$out" "$T/xdrproxy.conf: configuration OK"

stop_proxy
finish
