#!/bin/bash
# t_cli.sh: the command line. -t checks the configuration and key files
# and reports FILE:LINE: message; --version, -h; a start-up failure is
# named; SIGTERM and SIGINT exit 0.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

make_pki
MOCK_PORT=9
write_config
conf=$T/xdrproxy.conf

out=$("$XDRPROXY" -t -c "$conf" 2>&1)
expect_eq "-t on a good configuration: exit 0" "$?" 0
expect_eq "-t on a good configuration: says so" "$out" "$conf: configuration OK"

out=$("$XDRPROXY" --version)
expect_eq "--version: exit 0" "$?" 0
expect_match "--version" "$out" '^xdrproxy [0-9]+\.[0-9]+\.[0-9]+ \(libevent 2\.1'
out=$("$XDRPROXY" -h)
expect_eq "-h: exit 0" "$?" 0
expect_match "-h: usage" "$out" 'usage: xdrproxy \[-tv\] \[-c file\]'
"$XDRPROXY" -x > /dev/null 2> "$T/err"
expect_eq "unknown option: exit 2" "$?" 2
expect_match "unknown option: usage" "$(cat "$T/err")" 'usage:'
"$XDRPROXY" -t -c "$T/missing.conf" 2> "$T/err"
expect_eq "missing config: exit 1" "$?" 1
expect_eq "missing config: named" "$(cat "$T/err")" \
    "$T/missing.conf: No such file or directory"

# bad_config LINE MESSAGE-FRAGMENT TEXT: -t fails with FILE:LINE: message.
bad_config() {
	printf '%s' "$3" > "$T/bad.conf"
	"$XDRPROXY" -t -c "$T/bad.conf" 2> "$T/err"
	local rc=$?
	if [ "$rc" -ne 0 ]; then pass "rejected: $2"
	else fail "accepted: $2"; fi
	expect_match "reported as FILE:LINE: $2" "$(cat "$T/err")" \
	    "^$T/bad.conf:$1: .*$2"
}
tenant="[tenant acme]
listen = 127.0.0.1:0
fqdn = $FQDN
key_id = $KEY_ID
key_file = $T/api.key
"
bad_config 6 "unknown key 'colour'" "$tenant"'colour = blue
'
bad_config 1 "\\[tenant acme\\] needs 'fqdn'" '[tenant acme]
listen = 127.0.0.1:0
key_id = 1
key_file = /k
'
bad_config 7 "listen 127.0.0.1:8080: already used by \\[tenant a\\] on line 2" "[tenant a]
listen = 127.0.0.1:8080
fqdn = a.x
key_id = 1
key_file = $T/api.key
[tenant b]
listen = 127.0.0.1:8080
fqdn = b.x
key_id = 2
key_file = $T/api.key
"
bad_config 2 "max_body: bad size 'lots'" "[proxy]
max_body = lots
$tenant"
bad_config 6 "key_type: expected advanced or standard" "$tenant"'key_type = sha1
'

# Key files: refused when unsafe, naming the config line and the file.
cp "$T/api.key" "$T/bad.key"
bad_key() {
	sed "s|^key_file   = .*|key_file   = $T/bad.key|" "$conf" > "$T/k.conf"
	"$XDRPROXY" -t -c "$T/k.conf" 2> "$T/err"
	local rc=$?
	if [ "$rc" -ne 0 ]; then pass "key file refused: $1"
	else fail "key file accepted: $1"; fi
	expect_match "key file: $1: named" "$(cat "$T/err")" \
	    "^$T/k.conf:[0-9]+: key_file $T/bad.key: $2"
	expect_no_match "key file: $1: key not printed" "$(cat "$T/err")" "$API_KEY"
}
chmod 644 "$T/bad.key"; bad_key "world-readable" 'mode 0644 lets group or others read or write it'
chmod 640 "$T/bad.key"; bad_key "group-readable" 'mode 0640'
chmod 602 "$T/bad.key"; bad_key "world-writable" 'mode 0602'
: > "$T/bad.key"; chmod 600 "$T/bad.key"; bad_key "empty" 'empty'
rm -f "$T/bad.key"; mkdir "$T/bad.key"; bad_key "a directory" 'not a regular file'
rmdir "$T/bad.key"; bad_key "missing" 'No such file or directory'
if [ "$(id -u)" -eq 0 ]; then
	printf '%s\n' "$API_KEY" > "$T/bad.key"; chmod 600 "$T/bad.key"
	chown 4242:4242 "$T/bad.key"
	bad_key "owned by another user" 'owned by uid 4242'
else
	echo "# skipped the key owner check: chown to another user needs root"
fi

# A listener that cannot be opened is named, with its line.
start_mock
write_config
start_proxy
sed "s|^listen     = .*|listen     = 127.0.0.1:$PROXY_PORT|" "$conf" > "$T/busy.conf"
timeout 10 "$XDRPROXY" -c "$T/busy.conf" 2> "$T/err"
rc=$?
if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ]; then pass "port in use: refuses to start"
else fail "port in use: exit $rc"; fi
expect_match "port in use: named" "$(cat "$T/err")" \
    "$T/busy.conf:[0-9]+: listen 127\\.0\\.0\\.1:$PROXY_PORT: Address already in use"
stop_proxy

# SIGINT exits 0 too.
start_proxy
kill -INT "$PROXY_PID"
wait "$PROXY_PID"
expect_eq "SIGINT: exit 0" "$?" 0
expect_match "SIGINT: logged" "$(cat "$PROXY_LOG")" 'SIGINT: shutting down'

# The key never appears in argv, the environment or the logs.
start_proxy
px -X POST -d '{}' /public_api/v1/x/ > /dev/null
expect_no_match "key not in argv" "$(tr '\0' ' ' < "/proc/$PROXY_PID/cmdline")" "$API_KEY"
if [ -r "/proc/$PROXY_PID/environ" ]; then
	expect_no_match "key not in the environment" \
	    "$(tr '\0' '\n' < "/proc/$PROXY_PID/environ")" "$API_KEY"
fi
expect_match "no core dumps (they would hold the key)" \
    "$(grep 'Max core file size' "/proc/$PROXY_PID/limits")" \
    'Max core file size +0 +0 '
stop_proxy
expect_no_match "key not in the log" "$(cat "$PROXY_LOG")" "$API_KEY"

# -v logs every request, not only the failed ones.
expect_no_match "no debug lines without -v" "$(cat "$PROXY_LOG")" 'debug:'
PROXY_ARGS=-v start_proxy
px -o /dev/null -X POST -d '{}' /public_api/v1/verbose/
stop_proxy
expect_match "-v: a line per request" "$(cat "$PROXY_LOG")" \
    'debug: request [0-9a-f]{16}: tenant acme: POST /public_api/v1/verbose/ from 127\.0\.0\.1:[0-9]+: 200, [0-9]+ bytes'
finish
