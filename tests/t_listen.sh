#!/bin/bash
# t_listen.sh: listeners and tenants. A unix socket, IPv6, several
# listeners per tenant, two tenants routed by listener (one with a
# standard key), and a warning for a listener other hosts can reach.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

make_pki
start_mock acme
ACME_LOG=$MOCK_LOG
ACME_PORT=$MOCK_PORT
KEY_ID=77 start_mock beta --mode standard
BETA_LOG=$MOCK_LOG
BETA_PORT=$MOCK_PORT
sock=$T/acme.sock

# IPv6 loopback configured?
ipv6=0
if grep -q '^0\{31\}1 .* lo$' /proc/net/if_inet6 2>/dev/null; then
	ipv6=1
fi

cat > "$T/xdrproxy.conf" <<EOF2
[proxy]
audit_log = $T/audit.jsonl

[tenant acme]
listen     = 127.0.0.1:0
listen     = unix:$sock
$( [ $ipv6 = 1 ] && echo "listen     = [::1]:0" )
fqdn       = $FQDN
key_id     = 42
key_file   = $T/api.key
ca_file    = $CA
connect_to = 127.0.0.1:$ACME_PORT

[tenant beta]
listen     = 127.0.0.1:0
fqdn       = $FQDN
key_id     = 77
key_file   = $T/api.key
key_type   = standard
ca_file    = $CA
connect_to = 127.0.0.1:$BETA_PORT
EOF2
start_proxy
ports=$(sed -n 's/.*tenant \([a-z]*\): listening on 127\.0\.0\.1:\([0-9]*\)$/\1 \2/p' "$PROXY_LOG")
acme_port=$(printf '%s\n' "$ports" | sed -n 's/^acme //p')
beta_port=$(printf '%s\n' "$ports" | sed -n 's/^beta //p')

# The unix socket.
expect_eq "unix socket mode 0660" "$(stat -c %a "$sock")" 660
code=$(curl -sS --unix-socket "$sock" -o "$T/out" -w '%{http_code}' -X POST \
    -d '{}' http://localhost/public_api/v1/incidents/get_incidents/)
expect_eq "unix socket: answered" "$code" 200
expect_eq "unix socket: signed" "$(json_str "$(tail -n 1 "$ACME_LOG")" auth)" ok
wait_for 5 audit_grep -q '"client":"unix"'
expect_match "unix socket: audited with client unix" "$(last_audit)" \
    '"tenant":"acme","key_id":"42","client":"unix",'

# IPv6.
if [ $ipv6 = 1 ]; then
	v6port=$(sed -n 's/.*tenant acme: listening on \[::1\]:\([0-9]*\)$/\1/p' "$PROXY_LOG")
	code=$(curl -sS -g -o /dev/null -w '%{http_code}' -X POST -d '{}' \
	    "http://[::1]:$v6port/public_api/v1/x/")
	expect_eq "IPv6 listener: answered" "$code" 200
	wait_for 5 audit_grep -q '"client":"\[::1\]:'
	expect_match "IPv6: audited as [addr]:port" "$(last_audit)" '"client":"\[::1\]:[0-9]+"'
else
	echo "# IPv6 checks skipped: ::1 is not available here"
fi

# Each listener goes to its own tenant with its own key.
n_acme=$(grep -c '"event":"request"' "$ACME_LOG")
code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST -d '{}' \
    "http://127.0.0.1:$beta_port/public_api/v1/x/")
expect_eq "tenant beta: answered" "$code" 200
rec=$(grep '"event":"request"' "$BETA_LOG" | tail -n 1)
expect_eq "tenant beta: standard key accepted" "$(json_str "$rec" auth)" ok
expect_eq "tenant beta: its key id" "$(json_str "$rec" auth_id)" 77
expect_match "tenant beta: Authorization is the key itself" "$rec" \
    "\\[\"Authorization\",\"$API_KEY\"\\]"
expect_no_match "tenant beta: no nonce" "$rec" '"x-xdr-nonce"'
expect_eq "tenant acme saw nothing of it" "$(grep -c '"event":"request"' "$ACME_LOG")" "$n_acme"
wait_for 5 audit_grep -q '"tenant":"beta"'
expect_match "tenant beta: audited" "$(last_audit)" '"tenant":"beta","key_id":"77",'
expect_no_match "standard key not in the audit log" "$(cat "$T/audit.jsonl")" "$API_KEY"
stop_proxy
expect_no_match "standard key not in the log" "$(cat "$PROXY_LOG")" "$API_KEY"
if [ -e "$sock" ]; then fail "unix socket left behind"; else pass "unix socket removed at exit"; fi

# A live socket is not taken over; a stale one (after a crash) is.
start_proxy
"$XDRPROXY" -c "$T/xdrproxy.conf" 2> "$T/err2" &
wait $!
rc=$?
if [ "$rc" -ne 0 ]; then pass "socket in use: refuses to start"
else fail "socket in use: started"; fi
expect_match "socket in use: named" "$(cat "$T/err2")" "listen $sock: in use by another process"
kill -KILL "$PROXY_PID"
wait "$PROXY_PID" 2>/dev/null
expect_eq "stale socket left by a killed proxy" "$(stat -c %F "$sock")" socket
start_proxy
code=$(curl -sS --unix-socket "$sock" -o /dev/null -w '%{http_code}' -X POST \
    -d '{}' http://localhost/public_api/v1/x/)
expect_eq "stale socket replaced: answered" "$code" 200
stop_proxy

# A listener reachable from other hosts gets a warning.
sed 's|^listen     = 127.0.0.1:0$|listen     = 0.0.0.0:0|' "$T/xdrproxy.conf" |
    grep -v '^listen     = unix' > "$T/wild.conf"
start_proxy "$T/wild.conf"
expect_match "wildcard listener: warned" "$(cat "$PROXY_LOG")" \
    'tenant acme: 0\.0\.0\.0:0 is reachable from other hosts'
wport=$(sed -n 's/.*tenant acme: listening on 0\.0\.0\.0:\([0-9]*\)$/\1/p' "$PROXY_LOG")
code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST -d '{}' \
    "http://127.0.0.1:$wport/public_api/v1/x/")
expect_eq "wildcard listener: answers on loopback" "$code" 200
code=$(curl -sS -o /dev/null -w '%{http_code}' -H 'Host: 10.9.8.7' \
    "http://127.0.0.1:$wport/public_api/v1/x/")
expect_eq "wildcard listener: another address as Host is refused" "$code" 421
stop_proxy
finish
