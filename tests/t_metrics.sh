#!/bin/bash
# t_metrics.sh: the admin listener ([proxy] admin_listen). GET /metrics,
# parsed by a real Prometheus exposition parser (Debian's
# python3-prometheus-client), counts what the test did: requests by tenant,
# status and outcome, summed over two workers, histograms, bytes, upstream
# connections and TLS handshakes as the mock tenant saw them, requests in
# flight, build info. /healthz and /readyz, HEAD, 405, 404, the browser and
# Host defence, a unix admin socket, draining. /readyz is 503 and names the
# audit log when records cannot be written (a full file system: a small
# tmpfs in a mount namespace of the test's own, or /dev/full where that
# cannot be had). admin_listen on a proxy listener's address, or on an
# address in use, is refused with FILE:LINE.
if [ -z "${XDRPROXY_METRICS_NS:-}" ] && [ "$(id -u)" -eq 0 ] &&
    command -v unshare >/dev/null && unshare -m true 2>/dev/null; then
	XDRPROXY_METRICS_NS=1 exec unshare -m --propagation private bash "$0" "$@"
fi
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

# Debian's python3, not one on PATH (pyenv and the like lack the package).
PY=/usr/bin/python3
if ! "$PY" -c 'import prometheus_client.parser' 2>/dev/null; then
	echo "python3-prometheus-client is required (tests/deps.sh installs it)"
	exit 99
fi

# The exposition, flattened by the parser: one "name{k="v",...} value" line
# per sample, labels sorted; "PROBLEM ..." for what the format forbids or
# this project promises (HELP and TYPE on every family, xdrproxy_* names,
# cumulative buckets ending in +Inf equal to _count).
cat > "$T/flatten.py" <<'EOF'
import math, sys
from prometheus_client.parser import text_string_to_metric_families

text = open(sys.argv[1], encoding="utf-8").read()
problems = []
names = set()
for fam in text_string_to_metric_families(text):
    if fam.name in names:
        problems.append("family %s twice" % fam.name)
    names.add(fam.name)
    if not (fam.name.startswith("xdrproxy_") or fam.name == "process_start_time_seconds"):
        problems.append("family %s: not an xdrproxy_ name" % fam.name)
    if not fam.documentation:
        problems.append("family %s: no HELP" % fam.name)
    if fam.type not in ("counter", "gauge", "histogram"):
        problems.append("family %s: TYPE %s" % (fam.name, fam.type))
    hist = {}
    for s in fam.samples:
        if fam.type == "counter" and not s.name.endswith("_total"):
            problems.append("counter sample %s without _total" % s.name)
        labels = ",".join('%s="%s"' % (k, v) for k, v in sorted(s.labels.items()))
        v = s.value
        out = "%d" % v if v == int(v) else repr(v)
        print("%s{%s} %s" % (s.name, labels, out))
        if fam.type == "histogram":
            key = tuple(sorted((k, x) for k, x in s.labels.items() if k != "le"))
            h = hist.setdefault(key, {"buckets": [], "count": None})
            if s.name.endswith("_bucket"):
                h["buckets"].append((float(s.labels["le"]), v))
            elif s.name.endswith("_count"):
                h["count"] = v
    for key, h in hist.items():
        b = h["buckets"]
        if not b or b[-1][0] != math.inf:
            problems.append("%s %s: no +Inf bucket last" % (fam.name, key))
        elif b[-1][1] != h["count"]:
            problems.append("%s %s: +Inf %s != _count %s" % (fam.name, key, b[-1][1], h["count"]))
        for (le1, v1), (le2, v2) in zip(b, b[1:]):
            if le2 <= le1 or v2 < v1:
                problems.append("%s %s: buckets not cumulative at le=%s" % (fam.name, key, le2))
print("# %d families" % len(names))
for p in problems:
    print("PROBLEM " + p)
EOF

admin_port() {
	sed -n 's/.*admin: listening on 127\.0\.0\.1:\([0-9]*\) (.*/\1/p' "$PROXY_LOG" | head -n 1
}
# scrape: /metrics into $T/m.txt (headers $T/m.hdr), flattened in $T/m.flat.
scrape() {
	curl -sS --max-time 10 -D "$T/m.hdr" -o "$T/m.txt" "$ADMIN/metrics" &&
	    "$PY" "$T/flatten.py" "$T/m.txt" > "$T/m.flat" 2> "$T/m.pyerr"
}
# metric 'NAME{LABELS}': its value in the last scrape, empty if absent.
metric() {
	awk -v k="$1" 'index($0, k " ") == 1 { print $2 }' "$T/m.flat"
}
# metric_is 'NAME{LABELS}' VALUE: a fresh scrape has it (waits a little:
# the test's requests end on the workers' threads).
metric_is() {
	scrape && [ "$(metric "$1")" = "$2" ]
}
# audit_sum FIELD: the sum of a numeric field over the audit records.
audit_sum() {
	audit_responses | sed -n "s/.*\"$1\":\\([0-9]*\\),.*/\\1/p" | awk '{ s += $1 } END { print s + 0 }'
}
audit_at_least() { [ "$(audit_count)" -ge "$1" ]; }
TEST_START=$(date +%s)

make_pki
start_mock
sock=$T/admin.sock
write_config "" "workers = 2
admin_listen = 127.0.0.1:0
admin_listen = unix:$sock
client_header_timeout = 1s"
start_proxy
port=$(admin_port)
ADMIN=http://127.0.0.1:$port
expect_match "admin listener logged" "$(cat "$PROXY_LOG")" \
    "admin: listening on 127\\.0\\.0\\.1:[0-9]+ \\(metrics, health\\)"
expect_match "unix admin listener logged" "$(cat "$PROXY_LOG")" \
    "admin: listening on unix:$sock \\(metrics, health\\)"
expect_eq "the proxy's port is the tenant's" "$(sed -n 's/.*tenant acme: listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$PROXY_LOG")" "$PROXY_PORT"

# Health before any request.
code=$(curl -sS -D "$T/h" -o "$T/b" -w '%{http_code}' "$ADMIN/healthz")
expect_eq "/healthz: 200" "$code" 200
expect_eq "/healthz: body" "$(cat "$T/b")" '{"status":"ok"}'
expect_match "/healthz: JSON" "$(cat "$T/h")" $'Content-Type: application/json\r'
code=$(curl -sS -o "$T/b" -w '%{http_code}' "$ADMIN/readyz")
expect_eq "/readyz: 200" "$code" 200
expect_eq "/readyz: body" "$(cat "$T/b")" \
    '{"status":"ready","checks":{"listening":"ok","config":"ok","audit":"ok","tenants":{"acme":"ok"}}}'
scrape
expect_eq "exposition Content-Type" "$(sed -n 's/^Content-Type: \(.*\)\r$/\1/p' "$T/m.hdr")" \
    'text/plain; version=0.0.4; charset=utf-8'
expect_eq "no request counted yet" "$(grep -c '^xdrproxy_requests_total{' "$T/m.flat")" 0
expect_eq "idle: in flight" "$(metric 'xdrproxy_requests_in_flight{tenant="acme"}')" 0
expect_eq "idle: histogram count" "$(metric 'xdrproxy_request_duration_seconds_count{tenant="acme"}')" 0

# Known requests, each on a connection of its own so both workers serve.
# First the one the tenant drops, while no upstream connection is pooled:
# on a reused one, libcurl would send it again on a new connection.
px -o /dev/null -H 'X-Mock-Close: 1' /public_api/v1/x/dropped/   # 502
for i in $(seq 1 20); do
	px -o /dev/null -X POST -d "{\"n\":$i}" "/public_api/v1/x/$i/"
done
px -o /dev/null -H 'X-Mock-Status: 404' /public_api/v1/x/missing/
px -o /dev/null -X POST -d '{}' -H 'X-Mock-Status: 404' /public_api/v1/x/missing2/
px -o /dev/null /other/                                          # 403 path
px -o /dev/null -H 'Origin: https://evil.example' /public_api/v1/x/ # 403 browser
# libevent's own answer (a header line without a colon): not audited.
printf 'GET /public_api/v1/x/ HTTP/1.1\r\nHost: localhost\r\nno colon here\r\n\r\n' |
    raw_request "$PROXY_PORT" > "$T/raw"
expect_match "malformed request refused" "$(head -n 1 "$T/raw")" '^HTTP/1\.1 400 '
# A request head that never ends: client_header_timeout.
exec 5<>"/dev/tcp/127.0.0.1/$PROXY_PORT"
printf 'GET /public_api/v1/x/ HTTP/1.1\r\nHost: loc' >&5
wait_for 20 audit_at_least 25 || fail "requests not audited"
expect_eq "25 requests audited" "$(audit_count)" 25
prefixes=$(audit_responses | sed -n 's/.*"request_id":"\([0-9a-f]\{8\}\).*/\1/p' | sort -u | wc -l)
if [ "$prefixes" -ge 2 ]; then pass "requests served by $prefixes workers"
else fail "all requests served by one worker: the sum over workers is not shown"; fi
wait_for 10 metric_is 'xdrproxy_client_header_timeouts_total{}' 1 ||
    fail "header timeout not counted: $(metric 'xdrproxy_client_header_timeouts_total{}')"
exec 5<&-
wait_for 10 metric_is 'xdrproxy_client_connections{}' 0 ||
    fail "client connections at rest: $(metric 'xdrproxy_client_connections{}')"

scrape
expect_eq "the parser read it (stderr empty)" "$(cat "$T/m.pyerr")" ""
expect_eq "no format problem" "$(grep '^PROBLEM' "$T/m.flat")" ""
expect_eq "30 families" "$(sed -n 's/^# \([0-9]*\) families$/\1/p' "$T/m.flat")" 30
# The governor's (off here: rate_limit = 0), one series each for acme.
expect_eq "governor: queue empty" "$(metric 'xdrproxy_queue_depth{tenant="acme"}')" 0
expect_eq "governor: nothing paced" "$(metric 'xdrproxy_requests_paced_total{tenant="acme"}')" 0
expect_eq "governor: no rate" "$(metric 'xdrproxy_rate_limit_current{tenant="acme"}')" 0
expect_eq "governor: no 429 from the tenant" "$(metric 'xdrproxy_tenant_429_total{tenant="acme"}')" 0
expect_eq "governor: no XQL slot" "$(metric 'xdrproxy_xql_slots_in_use{tenant="acme"}')" 0
expect_eq "governor: none refused" \
    "$(metric 'xdrproxy_requests_rate_limited_total{reason="queue_full",tenant="acme"}')" 0
expect_eq "no policy: nothing denied" \
    "$(metric 'xdrproxy_policy_denied_total{tenant="acme"}')" 0
r='xdrproxy_requests_total{code="%s",outcome="%s",tenant="acme"}'
# shellcheck disable=SC2059
expect_eq "requests_total 200 ok" "$(metric "$(printf "$r" 200 ok)")" 20
# shellcheck disable=SC2059
expect_eq "requests_total 404 ok (the tenant's)" "$(metric "$(printf "$r" 404 ok)")" 2
# shellcheck disable=SC2059
expect_eq "requests_total 403 proxy_error" "$(metric "$(printf "$r" 403 proxy_error)")" 2
# shellcheck disable=SC2059
expect_eq "requests_total 502 upstream_error" "$(metric "$(printf "$r" 502 upstream_error)")" 1
expect_eq "no other pair" "$(grep -c '^xdrproxy_requests_total{' "$T/m.flat")" 4
# The same from the audit records, pair by pair.
audit_responses | sed -n 's/.*"status":\([0-9]*\),.*"outcome":"\([a-z_]*\)".*/\1 \2/p' |
    sort | uniq -c > "$T/pairs"
while read -r n st oc; do
	# shellcheck disable=SC2059
	expect_eq "audit and metrics agree: $st $oc" "$(metric "$(printf "$r" "$st" "$oc")")" "$n"
done < "$T/pairs"
expect_eq "duration histogram: one per request" \
    "$(metric 'xdrproxy_request_duration_seconds_count{tenant="acme"}')" 25
expect_eq "duration histogram: +Inf bucket" \
    "$(metric 'xdrproxy_request_duration_seconds_bucket{le="+Inf",tenant="acme"}')" 25
dsum=$(metric 'xdrproxy_request_duration_seconds_sum{tenant="acme"}')
asum=$(audit_sum duration_ms)
if awk -v m="$dsum" -v a="$asum" 'BEGIN { exit !(m > 0 && m * 1000 <= a + 25 && m * 1000 >= a - 25) }'; then
	pass "duration sum ($dsum s) matches the audit's ($asum ms)"
else
	fail "duration sum $dsum s, audit $asum ms"
fi
expect_eq "upstream histogram: the 22 answers the tenant began" \
    "$(metric 'xdrproxy_upstream_duration_seconds_count{tenant="acme"}')" 22
expect_eq "bytes received = the audit's bytes_in" \
    "$(metric 'xdrproxy_bytes_received_total{tenant="acme"}')" "$(audit_sum bytes_in)"
expect_eq "bytes sent = the audit's bytes_out" \
    "$(metric 'xdrproxy_bytes_sent_total{tenant="acme"}')" "$(audit_sum bytes_out)"
conns=$(grep -c '"event":"connection"' "$MOCK_LOG")
expect_eq "upstream connections = those the tenant saw" \
    "$(metric 'xdrproxy_upstream_connections_opened_total{tenant="acme"}')" "$conns"
expect_eq "TLS handshakes = those connections" \
    "$(metric 'xdrproxy_upstream_tls_handshakes_total{tenant="acme"}')" "$conns"
expect_eq "in flight at rest" "$(metric 'xdrproxy_requests_in_flight{tenant="acme"}')" 0
expect_eq "malformed request counted" "$(metric 'xdrproxy_malformed_requests_total{}')" 1
expect_eq "no connection refused" "$(metric 'xdrproxy_client_connections_refused_total{}')" 0
expect_eq "no audit write error" "$(metric 'xdrproxy_audit_write_errors_total{}')" 0
expect_eq "no reload yet: success" "$(metric 'xdrproxy_config_reloads_total{result="success"}')" 0
expect_eq "no reload yet: failure" "$(metric 'xdrproxy_config_reloads_total{result="failure"}')" 0
skew=$(metric 'xdrproxy_tenant_clock_skew_seconds{tenant="acme"}')
if awk -v v="$skew" 'BEGIN { exit !(v != "" && v >= -2 && v <= 2) }'; then
	pass "clock skew of acme read from its Date: $skew s"
else
	fail "clock skew of acme: '$skew', not within 2 s"
fi
now=$(date +%s)
for m in process_start_time_seconds xdrproxy_config_last_reload_success_timestamp_seconds; do
	v=$(metric "$m{}")
	if awk -v v="$v" -v a="$TEST_START" -v b="$now" 'BEGIN { exit !(v >= a - 1 && v <= b + 1) }'; then
		pass "$m: when it started ($v)"
	else
		fail "$m: $v, not in [$TEST_START, $now]"
	fi
done
# Reloads counted: one that works (and moves the timestamp), one that fails.
before=$(metric 'xdrproxy_config_last_reload_success_timestamp_seconds{}')
kill -HUP "$PROXY_PID"
wait_for 20 grep -q 'reload: configuration 2 in force' "$PROXY_LOG" || fail "no reload"
cp "$T/xdrproxy.conf" "$T/good.conf"
echo "bogus = 1" >> "$T/xdrproxy.conf"
kill -HUP "$PROXY_PID"
wait_for 20 grep -q 'reload failed: ' "$PROXY_LOG" || fail "no failed reload"
mv "$T/good.conf" "$T/xdrproxy.conf"
scrape
expect_eq "a reload: success counted" "$(metric 'xdrproxy_config_reloads_total{result="success"}')" 1
expect_eq "a failed reload: counted" "$(metric 'xdrproxy_config_reloads_total{result="failure"}')" 1
after=$(metric 'xdrproxy_config_last_reload_success_timestamp_seconds{}')
awk -v a="$before" -v b="$after" 'BEGIN { exit !(b >= a) }' &&
    pass "last success timestamp: $before -> $after" || fail "last success timestamp went back: $before -> $after"
code=$(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/healthz")
expect_eq "the admin port is kept across reloads" "$code" 200
expect_eq "the admin port is not reopened" "$(grep -c 'admin: listening on 127' "$PROXY_LOG")" 1
# build_info: the versions xdrproxy reports, and the OpenSSL it runs with.
info=$(grep '^xdrproxy_build_info{' "$T/m.flat")
ver=$("$XDRPROXY" --version)
lv=$(printf '%s' "$info" | sed -n 's/.*version="\([^"]*\)".*/\1/p')
expect_match "build_info: version" "$ver" "^xdrproxy $lv "
expect_match "build_info: libcurl" "$ver" "libcurl $(printf '%s' "$info" | sed -n 's/.*libcurl="\([^"]*\)".*/\1/p'),"
expect_match "build_info: libevent" "$ver" "libevent $(printf '%s' "$info" | sed -n 's/.*libevent="\([^"]*\)".*/\1/p'),"
expect_match "build_info: openssl" "$(openssl version)" "^OpenSSL $(printf '%s' "$info" | sed -n 's/.*openssl="\([^"]*\)".*/\1/p') "
expect_match "build_info: value 1" "$info" ' 1$'

# A request in flight is seen while the tenant works; the scrape does not wait.
curl -sS --max-time 30 -o /dev/null -H 'X-Mock-Delay-Ms: 2000' \
    "$URL/public_api/v1/x/slow/" &
slow=$!
wait_for 10 grep -q '"uri":"/public_api/v1/x/slow/"' "$MOCK_LOG"
t0=$(date +%s%N)
scrape
t1=$(date +%s%N)
expect_eq "in flight while the tenant works" "$(metric 'xdrproxy_requests_in_flight{tenant="acme"}')" 1
if [ $(( (t1 - t0) / 1000000 )) -lt 1000 ]; then pass "scrape answered at once ($(( (t1 - t0) / 1000000 )) ms)"
else fail "scrape took $(( (t1 - t0) / 1000000 )) ms with a request in flight"; fi
wait "$slow"
wait_for 10 metric_is 'xdrproxy_requests_in_flight{tenant="acme"}' 0 || fail "in flight after it ended"
expect_eq "it is counted once over" "$(metric "$(printf "$r" 200 ok)")" 21

# HTTP on the admin port.
len=$(curl -sS -o /dev/null -w '%{size_download}' "$ADMIN/metrics")
curl -sS -I "$ADMIN/metrics" > "$T/head"
expect_match "HEAD /metrics: 200" "$(head -n 1 "$T/head")" '^HTTP/1\.1 200 '
expect_match "HEAD /metrics: the length of a GET" "$(cat "$T/head")" "Content-Length: $len"$'\r'
curl -sS -i -X POST -d x "$ADMIN/metrics" > "$T/post"
expect_match "POST /metrics: 405" "$(head -n 1 "$T/post")" '^HTTP/1\.1 405 '
expect_match "POST /metrics: x-xdrproxy-error" "$(cat "$T/post")" $'x-xdrproxy-error: method_not_allowed\r'
expect_match "POST /metrics: Allow" "$(cat "$T/post")" $'Allow: GET, HEAD\r'
expect_match "POST /metrics: JSON error" "$(sed '1,/^\r$/d' "$T/post")" \
    '^\{"error":"method_not_allowed","message":"[^"]+"\}$'
curl -sS -i "$ADMIN/nothing" > "$T/404"
expect_match "unknown path: 404" "$(head -n 1 "$T/404")" '^HTTP/1\.1 404 '
expect_match "unknown path: JSON error" "$(sed '1,/^\r$/d' "$T/404")" \
    '^\{"error":"not_found","message":"[^"]+"\}$'
code=$(curl -sS -o /dev/null -w '%{http_code}' "$ADMIN/metrics?x=1")
expect_eq "a query string is ignored" "$code" 200
code=$(curl -sS -o "$T/b" -w '%{http_code}' -H 'Origin: https://evil.example' "$ADMIN/metrics")
expect_eq "a browser's request: 403" "$code" 403
expect_match "a browser's request: its code" "$(cat "$T/b")" '"error":"browser_request_refused"'
code=$(curl -sS -o "$T/b" -w '%{http_code}' -H 'Host: attacker.example' "$ADMIN/metrics")
expect_eq "DNS rebinding Host: 421" "$code" 421
expect_match "DNS rebinding Host: its code" "$(cat "$T/b")" '"error":"misdirected_host"'
code=$(curl -sS -o /dev/null -w '%{http_code}' -H "Host: localhost:$port" "$ADMIN/metrics")
expect_eq "Host localhost: 200" "$code" 200

# The unix admin socket.
expect_eq "unix admin socket: mode 0660" "$(stat -c %a "$sock")" 660
code=$(curl -sS --unix-socket "$sock" -o "$T/b" -w '%{http_code}' http://localhost/readyz)
expect_eq "unix admin socket: /readyz" "$code" 200
curl -sS --unix-socket "$sock" -o "$T/m.txt" http://localhost/metrics
"$PY" "$T/flatten.py" "$T/m.txt" > "$T/m.flat"
expect_eq "unix admin socket: /metrics" "$(metric "$(printf "$r" 200 ok)")" 21

# An admin address in use: refused with its line.
sed "s|^admin_listen = 127.0.0.1:0$|admin_listen = 127.0.0.1:$port|; /^admin_listen = unix/d" \
    "$T/xdrproxy.conf" > "$T/inuse.conf"
line=$(grep -n "^admin_listen = 127.0.0.1:$port$" "$T/inuse.conf" | cut -d: -f1)
timeout 10 "$XDRPROXY" -c "$T/inuse.conf" 2> "$T/inuse.err"
rc=$?
expect_eq "admin address in use: exit 1" "$rc" 1
expect_match "admin address in use: FILE:LINE" "$(cat "$T/inuse.err")" \
    "$T/inuse.conf:$line: admin_listen 127\\.0\\.0\\.1:$port: Address already in use"

# Draining: not ready, still alive.
curl -sS --max-time 30 -o /dev/null -H 'X-Mock-Delay-Ms: 1500' \
    "$URL/public_api/v1/x/draining/" &
slow=$!
wait_for 10 grep -q '"uri":"/public_api/v1/x/draining/"' "$MOCK_LOG"
kill -TERM "$PROXY_PID"
wait_for 5 grep -q 'SIGTERM: shutting down' "$PROXY_LOG"
code=$(curl -sS -o "$T/b" -w '%{http_code}' "$ADMIN/readyz")
expect_eq "draining: /readyz 503" "$code" 503
expect_match "draining: named" "$(cat "$T/b")" '^\{"status":"not_ready","checks":\{"listening":"draining",'
code=$(curl -sS -o /dev/null -w '%{http_code}' "$ADMIN/healthz")
expect_eq "draining: /healthz still 200" "$code" 200
wait "$slow"
wait "$PROXY_PID"
expect_eq "exit 0 after the drain" "$?" 0
if [ -e "$sock" ]; then fail "unix admin socket left behind"; else pass "unix admin socket removed at exit"; fi
sanitizer_clean "$PROXY_LOG" && pass "no sanitizer report" || { fail "sanitizer report:"; sed 's/^/# /' "$PROXY_LOG"; }

# admin_listen on a proxy listener's address, or twice: FILE:LINE.
cat > "$T/same.conf" <<EOF2
[proxy]
audit_log = $T/audit-same.jsonl
admin_listen = 127.0.0.1:19901

[tenant acme]
listen   = 127.0.0.1:19901
fqdn     = $FQDN
key_id   = $KEY_ID
key_file = $T/api.key
EOF2
"$XDRPROXY" -t -c "$T/same.conf" 2> "$T/same.err"
expect_eq "admin_listen = a listen address: exit 1" "$?" 1
expect_eq "admin_listen = a listen address: FILE:LINE" "$(cat "$T/same.err")" \
    "$T/same.conf:3: admin_listen 127.0.0.1:19901: already used by [tenant acme] on line 6"
sed -i 's|^listen   = 127.0.0.1:19901$|listen   = 127.0.0.1:19902|; s|^admin_listen = 127.0.0.1:19901$|admin_listen = unix:/tmp/x.sock\nadmin_listen = unix:/tmp/x.sock|' "$T/same.conf"
"$XDRPROXY" -t -c "$T/same.conf" 2> "$T/same.err"
expect_eq "admin_listen twice: FILE:LINE" "$(cat "$T/same.err")" \
    "$T/same.conf:4: admin_listen unix:/tmp/x.sock: already given on line 3"

# The audit log cannot be written: a full file system.
auditfs=$T/auditfs
mkdir -p "$auditfs"
if [ -n "${XDRPROXY_METRICS_NS:-}" ] && mount -t tmpfs -o size=64k tmpfs "$auditfs" 2>/dev/null; then
	audit=$auditfs/audit.jsonl
	echo "# in a mount namespace: a 64 KiB tmpfs holds the audit log"
else
	audit=/dev/full
	echo "# no tmpfs (needs root and unshare -m): /dev/full as the audit log; recovery not checked"
fi
# audit_fail = open: served all the same (closed is t_auditchain.sh's).
sed "s|^audit_log = .*|audit_log = $audit\naudit_fail = open|; s|^workers = 2$|workers = 1|; /^admin_listen = unix/d" \
    "$T/xdrproxy.conf" > "$T/full.conf"
start_proxy "$T/full.conf"
port=$(admin_port)
ADMIN=http://127.0.0.1:$port
code=$(curl -sS -o /dev/null -w '%{http_code}' "$ADMIN/readyz")
expect_eq "audit not written yet: ready" "$code" 200
if [ "$audit" != /dev/full ]; then
	dd if=/dev/zero of="$auditfs/fill" bs=4096 2>/dev/null
	expect_eq "file system full" "$(df --output=avail "$auditfs" | tail -n 1 | tr -d ' ')" 0
fi
code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST -d '{}' "$URL/public_api/v1/x/unaudited/")
expect_eq "request served though its record is not written" "$code" 200
wait_for 10 grep -q 'audit record not written' "$PROXY_LOG" || fail "audit failure not logged"
code=$(curl -sS -o "$T/b" -w '%{http_code}' "$ADMIN/readyz")
expect_eq "audit not writable: /readyz 503" "$code" 503
expect_eq "audit not writable: named" "$(cat "$T/b")" \
    '{"status":"not_ready","checks":{"listening":"ok","config":"ok","audit":"last write failed: No space left on device","tenants":{"acme":"ok"}}}'
code=$(curl -sS -o /dev/null -w '%{http_code}' "$ADMIN/healthz")
expect_eq "audit not writable: /healthz 200" "$code" 200
scrape
# Two records not written: the request record and the response record.
expect_eq "audit write errors counted" "$(metric 'xdrproxy_audit_write_errors_total{}')" 2
expect_eq "none refused (audit_fail = open)" "$(metric 'xdrproxy_audit_unavailable_total{}')" 0
expect_eq "the request counted all the same" "$(metric "$(printf "$r" 200 ok)")" 1
if [ "$audit" != /dev/full ]; then
	rm -f "$auditfs/fill"
	code=$(curl -sS -o /dev/null -w '%{http_code}' "$ADMIN/readyz")
	expect_eq "space again: /readyz 200" "$code" 200
	px -o /dev/null -X POST -d '{}' /public_api/v1/x/audited-again/
	wait_for 5 grep -q 'audited-again' "$audit" || fail "record after the recovery not written"
	expect_eq "one record after the recovery" "$(audit_responses "$audit" | wc -l)" 1
	scrape
	expect_eq "no new audit write error" "$(metric 'xdrproxy_audit_write_errors_total{}')" 2
fi
stop_proxy
if [ "$audit" != /dev/full ]; then
	umount "$auditfs"
fi
finish
