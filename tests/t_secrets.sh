#!/bin/bash
# t_secrets.sh: for each key source (key_file, key_credential,
# key_command), the key is in no argv, environment, log or audit record of
# xdrproxy, after signed calls with it and a reload (debug logging on).
# key_credential's own failures, with their messages.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

make_pki
start_mock
mkdir -p "$T/creds"
printf '%s\n' "$API_KEY" > "$T/creds/acme-key"
chmod 400 "$T/creds/acme-key"
printf '#!/bin/sh\necho %s\n' "$API_KEY" > "$T/key.sh"
chmod 700 "$T/key.sh"

# src_config SOURCE-LINE: tenant acme with this key source.
src_config() {
	write_config "$1"
	sed -i '/^key_file   = /d' "$T/xdrproxy.conf"
}

for src in "key_file = $T/api.key" "key_credential = acme-key" \
    "key_command = $T/key.sh"; do
	name=${src%% *}
	src_config "$src"
	CREDENTIALS_DIRECTORY=$T/creds PROXY_ARGS=-v start_proxy
	for i in 1 2 3; do
		code=$(px -o /dev/null -w '%{http_code}' -X POST -d '{}' \
		    "/public_api/v1/incidents/get_incidents/?i=$i")
		expect_eq "$name: call $i: 200" "$code" 200
	done
	rec=$(grep '"event":"request"' "$MOCK_LOG" | tail -n 1)
	expect_eq "$name: the tenant accepted the signature" \
	    "$(json_str "$rec" auth)" ok
	kill -HUP "$PROXY_PID"
	wait_for 20 grep -q 'reload: configuration 2 in force' "$PROXY_LOG" ||
	    fail "$name: no reload: $(tail -n 3 "$PROXY_LOG")"
	expect_eq "$name: a call after the reload: 200" "$(px -o /dev/null \
	    -w '%{http_code}' /public_api/v1/x)" 200
	expect_no_secret "$name" "$PROXY_PID" "$PROXY_LOG" "$T/audit.jsonl" \
	    -- "$API_KEY"
	expect_match "$name: the log has the requests (debug)" \
	    "$(cat "$PROXY_LOG")" 'debug: request [0-9a-f]+: tenant acme: GET /public_api/v1/x '
	stop_proxy
	rm -f "$T/audit.jsonl"
done

# key_credential without systemd's variable, and with a missing file.
src_config "key_credential = acme-key"
line=$(grep -n '^key_credential ' "$T/xdrproxy.conf" | cut -d: -f1)
out=$(env -u CREDENTIALS_DIRECTORY "$XDRPROXY" -t -c "$T/xdrproxy.conf" 2>&1)
expect_eq "no \$CREDENTIALS_DIRECTORY: -t exits 1" "$?" 1
expect_eq "no \$CREDENTIALS_DIRECTORY: message" "$out" \
    "$T/xdrproxy.conf:$line: credential acme-key: \$CREDENTIALS_DIRECTORY is not set; systemd sets it for a unit with LoadCredential= or LoadCredentialEncrypted="
src_config "key_credential = other-key"
out=$(CREDENTIALS_DIRECTORY=$T/creds "$XDRPROXY" -t -c "$T/xdrproxy.conf" 2>&1)
expect_eq "missing credential: -t exits 1" "$?" 1
expect_eq "missing credential: message" "$out" \
    "$T/xdrproxy.conf:$line: key_credential other-key: $T/creds/other-key: No such file or directory"
chmod 644 "$T/creds/acme-key"
src_config "key_credential = acme-key"
out=$(CREDENTIALS_DIRECTORY=$T/creds "$XDRPROXY" -t -c "$T/xdrproxy.conf" 2>&1)
expect_eq "credential readable by others: -t exits 1" "$?" 1
expect_eq "credential readable by others: message" "$out" \
    "$T/xdrproxy.conf:$line: key_credential acme-key: $T/creds/acme-key: mode 0644 lets group or others read or write it; chmod 600 it"

finish
