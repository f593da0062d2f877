#!/bin/bash
# t_tlsopts.sh: the tenant's TLS options. pinned_pubkey: the right pin
# passes, a wrong one is 502 upstream_tls with nothing sent to the tenant;
# tls_min_version 1.3 works against the mock and fails against a tenant
# capped at TLS 1.2; client_cert/client_key (mutual TLS) against a mock
# that requires a client certificate: a good one passes and is seen by the
# tenant, none or an untrusted one is 502 upstream_tls; -t checks the pair.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

make_pki
P=$T/pki
# Client certificates: one from the CA the mock trusts for clients
# (otherca), one from a CA it does not (ca); an encrypted key.
(
	cd "$P" || exit 1
	printf 'extendedKeyUsage=clientAuth\n' > client.ext
	for c in client:otherca stranger:ca; do
		name=${c%%:*} ca=${c#*:}
		openssl ecparam -name prime256v1 -genkey -noout -out "$name.key"
		openssl req -new -key "$name.key" -subj "/CN=xdrproxy $name acme" \
		    -out "$name.csr"
		openssl x509 -req -in "$name.csr" -CA "$ca.pem" -CAkey "$ca.key" \
		    -CAcreateserial -days 2 -extfile client.ext -out "$name.pem"
		chmod 600 "$name.key"
	done
	openssl pkey -in client.key -aes256 -passout pass:secret -out enc.key
	chmod 600 enc.key
) > "$P/client.log" 2>&1 || { echo "openssl failed:"; cat "$P/client.log"; exit 99; }

# pin FILE.pem: curl's sha256//BASE64 of the certificate's public key.
pin() {
	openssl x509 -in "$1" -pubkey -noout | openssl pkey -pubin -outform der |
	    openssl dgst -sha256 -binary | base64
}
MOCK_PIN=sha256//$(pin "$P/$API_HOST.pem")
OTHER_PIN=sha256//$(pin "$P/wrong.example.pem")

# call: one signed call; the answer in $T/out.
call() {
	px -i -X POST -d '{}' /public_api/v1/incidents/get_incidents/ > "$T/out" \
	    2> "$T/curl.err"
}
# ok WHAT: the call got the tenant's 200 and the tenant got one request.
ok() {
	local before
	before=$(mock_requests)
	call
	expect_match "$1: 200" "$(head -n 1 "$T/out")" '^HTTP/1\.1 200 '
	expect_eq "$1: the tenant got it" "$(mock_requests)" $((before + 1))
}
# refused WHAT MESSAGE-REGEX: 502 upstream_tls, nothing reached the tenant.
audited_more() { [ "$(audit_count)" -gt "$1" ]; }
refused() {
	local before
	before=$(mock_requests)
	n=$(audit_count)
	call
	expect_proxy_error "$1" 502 upstream_tls "$T/out"
	expect_match "$1: message" "$(sed '1,/^\r$/d' "$T/out")" "$2"
	expect_eq "$1: nothing reached the tenant" "$(mock_requests)" "$before"
	wait_for 5 audited_more "$n" || fail "$1: not audited"
	expect_match "$1: audited" "$(last_audit)" \
	    '"status":502,.*"outcome":"upstream_error","error":"upstream_tls","caller":'
}

# ---- pinned_pubkey
start_mock
write_config "pinned_pubkey = $MOCK_PIN"
start_proxy
ok "the tenant's pin"
stop_proxy
write_config "pinned_pubkey = $OTHER_PIN;$MOCK_PIN"
start_proxy
ok "a list of pins, the tenant's second"
stop_proxy
write_config "pinned_pubkey = $OTHER_PIN"
start_proxy
refused "a wrong pin" 'SSL: public key does not match pinned public key'
expect_eq "a wrong pin: the mock saw no request at all" \
    "$(grep -c '"event":"request"' "$MOCK_LOG")" 2
stop_proxy
# A pin that is not sha256//BASE64 stops -t with FILE:LINE.
write_config "pinned_pubkey = sha256//notbase64"
"$XDRPROXY" -t -c "$T/xdrproxy.conf" 2> "$T/err"
expect_eq "malformed pin: -t fails" "$?" 1
expect_match "malformed pin: FILE:LINE: message" "$(cat "$T/err")" \
    "^$T/xdrproxy.conf:[0-9]+: pinned_pubkey: expected sha256//BASE64"

# ---- tls_min_version
write_config "tls_min_version = 1.3"
start_proxy
ok "tls_min_version = 1.3 against a TLS 1.3 tenant"
stop_proxy
kill -TERM "$MOCK_PID"; wait "$MOCK_PID" 2>/dev/null
start_mock tls12 --tls-max 1.2
write_config
start_proxy
ok "default (1.2) against a tenant capped at TLS 1.2"
stop_proxy
write_config "tls_min_version = 1.3"
start_proxy
refused "tls_min_version = 1.3 against a tenant capped at TLS 1.2" \
    'SSL|TLS|alert|version'
stop_proxy
write_config "tls_min_version = 1.1"
"$XDRPROXY" -t -c "$T/xdrproxy.conf" 2> "$T/err"
expect_match "tls_min_version = 1.1: refused" "$(cat "$T/err")" \
    "^$T/xdrproxy.conf:[0-9]+: tls_min_version: expected 1\\.2 or 1\\.3, not '1\\.1'"
kill -TERM "$MOCK_PID"; wait "$MOCK_PID" 2>/dev/null

# ---- client_cert / client_key against a tenant requiring one
start_mock mtls --client-ca "$OTHER_CA"
write_config "client_cert = $P/client.pem
client_key = $P/client.key"
"$XDRPROXY" -t -c "$T/xdrproxy.conf" 2> "$T/err"
expect_eq "client certificate: -t passes" "$?" 0
start_proxy
ok "a good client certificate"
expect_match "the tenant saw the client certificate" \
    "$(grep '"event":"connection"' "$MOCK_LOG" | tail -n 1)" \
    '"client_cert":"/CN=xdrproxy client acme"'
stop_proxy
write_config
start_proxy
# TLS 1.3: the refusal comes after the client's side of the handshake, as
# an alert or a reset on the first write or read, whichever comes first.
refused "no client certificate" \
    'alert certificate required.* \(the tenant wants a client certificate: client_cert, client_key\)|the tenant ended the connection right after the TLS handshake, as one does that refuses the client certificate \(none is set: client_cert, client_key\)'
stop_proxy
write_config "client_cert = $P/stranger.pem
client_key = $P/stranger.key"
start_proxy
# As above: an alert, or the connection ended right after the handshake.
refused "a client certificate from a CA the tenant does not trust" \
    'alert|SSL|the tenant ended the connection right after the TLS handshake, as one does that refuses the client certificate'
stop_proxy
kill -TERM "$MOCK_PID"; wait "$MOCK_PID" 2>/dev/null
# TLS 1.2: the refusal comes within the handshake.
start_mock mtls12 --client-ca "$OTHER_CA" --tls-max 1.2
write_config
start_proxy
refused "no client certificate, TLS 1.2" 'SSL|alert|handshake'
stop_proxy
write_config "client_cert = $P/client.pem
client_key = $P/client.key"
start_proxy
ok "a good client certificate, TLS 1.2"
stop_proxy

# -t checks the pair: FILE:LINE of the setting at fault.
# bad_pair WHAT LINE-SETTING MESSAGE-REGEX CERT KEY
bad_pair() {
	write_config "client_cert = $4
client_key = $5"
	"$XDRPROXY" -t -c "$T/xdrproxy.conf" 2> "$T/err"
	local rc=$? line
	if [ "$rc" -eq 1 ]; then pass "-t refuses $1"
	else fail "-t on $1: exit $rc"; fi
	line=$(grep -n "^$2 " "$T/xdrproxy.conf" | cut -d: -f1)
	expect_match "-t on $1: FILE:LINE: message" "$(cat "$T/err")" \
	    "^$T/xdrproxy.conf:$line: $2 $3"
}
bad_pair "a key that does not match" client_key \
    "$P/stranger.key: does not match the certificate in $P/client.pem" \
    "$P/client.pem" "$P/stranger.key"
bad_pair "an encrypted key" client_key \
    "$P/enc.key: the key is encrypted" "$P/client.pem" "$P/enc.key"
chmod 644 "$P/client.key"
bad_pair "a readable key" client_key \
    "$P/client.key: mode 0644 lets group or others read or write it" \
    "$P/client.pem" "$P/client.key"
chmod 600 "$P/client.key"
bad_pair "a missing certificate" client_cert \
    "$P/none.pem: No such file or directory" "$P/none.pem" "$P/client.key"
bad_pair "a key given as the certificate" client_cert \
    "$P/client.key: no PEM certificate in it" "$P/client.key" "$P/client.key"
bad_pair "a certificate given as the key" client_key \
    "$P/client.pem: mode|no PEM private key" "$P/client.pem" "$P/client.pem"
write_config "client_cert = $P/client.pem"
"$XDRPROXY" -t -c "$T/xdrproxy.conf" 2> "$T/err"
expect_match "client_cert without client_key: refused" "$(cat "$T/err")" \
    "^$T/xdrproxy.conf:[0-9]+: client_cert needs client_key as well"

finish
