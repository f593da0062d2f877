#!/bin/bash
# t_pkcs11.sh: key_pkcs11. The API key is a generic secret-key object on a
# SoftHSM2 token; the token hashes key + nonce + timestamp (C_DigestKey) and
# the mock tenant checks every signature. -t checks the PIN, the object and
# that the token can digest it; each failure has its exact message. 20
# parallel requests on 2 workers, reloads to new generations, and neither
# the key nor the PIN in argv, environment, logs or the audit log.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

command -v softhsm2-util > /dev/null ||
    skip_all "softhsm2-util missing (apt-get install softhsm2)"
MODULE=
for m in /usr/lib/softhsm/libsofthsm2.so \
    /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so; do
	[ -f "$m" ] && { MODULE=$m; break; }
done
[ -n "$MODULE" ] || skip_all "libsofthsm2.so not found"
IMPORT=${XDRPROXY%/src/xdrproxy}/tests/p11import
[ -x "$IMPORT" ] || skip_all "tests/p11import not built"

make_pki
PIN=4f7Kq93x
mkdir -p "$T/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
    "$T/tokens" > "$T/softhsm2.conf"
export SOFTHSM2_CONF=$T/softhsm2.conf
softhsm2-util --init-token --free --label xdrproxy --pin "$PIN" \
    --so-pin 5678 > "$T/init.log" 2>&1 || { cat "$T/init.log"; exit 99; }
printf '%s\n' "$PIN" > "$T/pin"
printf 'wrong-pin\n' > "$T/badpin"
chmod 600 "$T/pin" "$T/badpin"
for label in acme twin twin; do
	"$IMPORT" "$MODULE" xdrproxy "$T/pin" $label "$T/api.key" || exit 99
done

start_mock

# conf URI [PIN-FILE] [TENANT-LINE]: tenant acme with its key on the token
# (key_pkcs11 on line 14), an admin listener.
conf() {
	cat > "$T/xdrproxy.conf" <<EOF
[proxy]
audit_log = $T/audit.jsonl
workers = 2
admin_listen = 127.0.0.1:0

[tenant acme]
listen     = 127.0.0.1:0
fqdn       = $FQDN
key_id     = $KEY_ID
ca_file    = $CA
connect_to = 127.0.0.1:$MOCK_PORT
pkcs11_module = $MODULE
pkcs11_pin_file = ${2:-$T/pin}
key_pkcs11 = $1
${3:-}
EOF
}
# readyz: the admin listener's /readyz, "CODE BODY".
readyz() {
	local port
	port=$(sed -n 's/.*admin: listening on 127\.0\.0\.1:\([0-9]*\) (.*/\1/p' \
	    "$PROXY_LOG" | tail -n 1)
	curl -sS -w ' %{http_code}' "http://127.0.0.1:$port/readyz"
}
# check_fails WHAT MESSAGE: -t on $T/xdrproxy.conf fails with exactly it.
check_fails() {
	"$XDRPROXY" -t -c "$T/xdrproxy.conf" 2> "$T/err"
	expect_eq "$1: -t exits 1" "$?" 1
	expect_eq "$1: message" "$(cat "$T/err")" "$T/xdrproxy.conf:14: $2"
}

URI='pkcs11:token=xdrproxy;object=acme'
conf "$URI"
out=$("$XDRPROXY" -t -c "$T/xdrproxy.conf" 2>&1)
expect_eq "-t: exit 0" "$?" 0
expect_eq "-t: OK" "$out" "$T/xdrproxy.conf: configuration OK"

# Without pkcs11_module: the modules registered with p11-kit are searched.
if [ -f /usr/share/p11-kit/modules/softhsm2.module ]; then
	sed -i '/^pkcs11_module/d' "$T/xdrproxy.conf"
	sed -i 's/^key_pkcs11/\n&/' "$T/xdrproxy.conf"
	out=$("$XDRPROXY" -t -c "$T/xdrproxy.conf" 2>&1)
	expect_eq "-t through p11-kit's registered modules" "$out" \
	    "$T/xdrproxy.conf: configuration OK"
fi

conf "$URI" "$T/badpin"
check_fails "wrong PIN" \
    "key_pkcs11: C_Login: wrong PIN (CKR_PIN_INCORRECT) in $T/badpin"
conf 'pkcs11:token=xdrproxy;object=nosuch'
check_fails "no such object" \
    "key_pkcs11: no secret-key object matches the URI"
conf 'pkcs11:token=xdrproxy;object=twin'
check_fails "two objects" \
    "key_pkcs11: several secret-key objects match the URI; name one with object= or id="
conf 'pkcs11:token=nosuch;object=acme'
check_fails "no such token" "key_pkcs11: no token matches the URI"
conf "pkcs11:token=xdrproxy;object=acme?pin-value=$PIN"
check_fails "pin-value in the URI" \
    "key_pkcs11: the URI holds pin-value, a secret in the configuration file; remove it and put the PIN in pkcs11_pin_file"
if grep -Fq "$PIN" "$T/err"; then fail "the PIN in the error"
else pass "pin-value refused without echoing it"; fi
conf 'pkcs11:token=xdrproxy;object=acme;type=private'
check_fails "another object type" \
    "key_pkcs11: the URI names an object type other than secret-key"
conf 'pkcs11:token=xdrproxy;object=acme;type=bogus'
check_fails "an attribute p11-kit does not know" \
    "key_pkcs11: the URI has attributes or values that p11-kit does not recognize"
conf 'pkcs11:token=xdrproxy;object=%zz'
check_fails "a bad URI" \
    "key_pkcs11: not a valid PKCS#11 URI: URI encoding invalid or corrupted"
conf "$URI"
sed -i "s|^pkcs11_module.*|pkcs11_module = $T/nosuch.so|" "$T/xdrproxy.conf"
"$XDRPROXY" -t -c "$T/xdrproxy.conf" 2> "$T/err"
expect_match "a missing module" "$(cat "$T/err")" \
    "^$T/xdrproxy.conf:14: pkcs11_module $T/nosuch.so: cannot load: "
chmod 644 "$T/pin"
conf "$URI"
check_fails "a PIN file others can read" \
    "pkcs11_pin_file: $T/pin: mode 0644 lets group or others read or write it; chmod 600 it"
chmod 600 "$T/pin"

# post: one request through the proxy; prints the status.
post() {
	px -o /dev/null -w '%{http_code}\n' -X POST -d '{}' \
	    /public_api/v1/incidents/get_incidents/
}
# answers: how many parallel requests have answered.
answers() { cat "$T"/par*.code 2>/dev/null | wc -l; }

# Requests signed by the token; the mock tenant checks each signature.
conf "$URI"
start_proxy
expect_eq "a request signed on the token: 200" "$(post)" 200
expect_eq "the mock tenant accepted it" "$(mock_requests)" 1
expect_match "/readyz counts a token key as loaded: 200" "$(readyz)" ' 200$'

clients=()
for i in $(seq 1 20); do
	post > "$T/par$i.code" &
	clients+=($!)
done
wait_num 60 -ge 20 answers
wait "${clients[@]}"
expect_eq "20 parallel requests on 2 workers: all 200" \
    "$(sort "$T"/par*.code | uniq -c | tr -s ' ')" " 20 200"
expect_eq "the mock tenant accepted all" "$(mock_requests)" 21

# Each reload opens a new generation with its own session; the old one's
# is closed without logging the new one out.
for gen in 2 3; do
	kill -HUP "$PROXY_PID"
	if wait_for 20 grep -q "reload: configuration $gen in force" \
	    "$PROXY_LOG"; then
		expect_eq "after reload $gen: 200" "$(post)" 200
	else
		fail "reload $gen did not happen"
	fi
done
expect_eq "the mock tenant accepted every request" "$(mock_requests)" 23

# A token key past its key_expires: /readyz says so, like any other key.
conf "$URI" "" "key_expires = 2001-01-01"
kill -HUP "$PROXY_PID"
if wait_for 20 grep -q "reload: configuration 4 in force" "$PROXY_LOG"; then
	expect_match "/readyz: a token key expired: 503" "$(readyz)" \
	    '"acme":"key expired".* 503$'
	expect_eq "a request with the expired token key: 503" "$(post)" 503
else
	fail "reload 4 did not happen: $(tail -n 3 "$PROXY_LOG")"
fi

# Neither the key nor the PIN anywhere a user or another process sees.
expect_no_secret "key or PIN" "$PROXY_PID" "$PROXY_LOG" \
    "$T/audit.jsonl" "$T/err" -- "$API_KEY" "$PIN"
stop_proxy
expect_no_secret "after shutdown" - "$PROXY_LOG" -- "$API_KEY" "$PIN"
finish
