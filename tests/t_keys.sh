#!/bin/bash
# t_keys.sh: the encrypted key store through the real xdrproxy-keys and
# xdrproxy. The CLI's commands and errors; mode and owner kept, symlinks
# refused; a tenant with key_store + key_name (no key_id) signs requests
# the mock tenant accepts; a wrong passphrase is FILE:LINE: ... at -t; a
# key rotated in the store and put in force by SIGHUP under continuous
# load; the CLI killed at each step of a write (strace fault injection)
# leaves the old store or the new one; no key or passphrase in
# /proc/PID/cmdline, /proc/PID/environ, the log or the audit log.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

KEYS="$top_builddir/src/xdrproxy-keys"
[ -x "$KEYS" ] || { echo "missing $KEYS: run make first"; exit 99; }

make_pki
PASS='correct horse battery staple'
printf '%s\n' "$PASS" > "$T/pass"
chmod 600 "$T/pass"
printf 'a different passphrase\n' > "$T/pass2"
chmod 600 "$T/pass2"
printf 'not the passphrase\n' > "$T/wrong"
chmod 600 "$T/wrong"
S=$T/keys.store

# k ARGS...: xdrproxy-keys on $S with the passphrase file; stdin as given.
k() { "$KEYS" -f "$S" --passphrase-file "$T/pass" "$@"; }
# rc CMD...: the exit status of CMD (output to $T/rc.out).
rc() { "$@" > "$T/rc.out" 2>&1; echo $?; }
mode_of() { stat -c '%a' "$1"; }

# 1. The commands.
expect_eq "create" "$(rc k create)" 0
expect_eq "create: mode 600" "$(mode_of "$S")" 600
expect_eq "create again: refused" "$(rc k create)" 1
expect_match "create again: says why" "$(cat "$T/rc.out")" "$S: already exists"
expect_eq "an empty store lists nothing" "$(k list)" ""
expect_eq "add (key from stdin)" "$(rc k add acme --key-id "$KEY_ID" --expires 2031-01-31 < "$T/api.key")" 0
printf 'Z9standardKey\n' | k add beta --key-id 7 --type standard
expect_eq "list: name, key ID, type, expiry" "$(k list)" \
    "$(printf 'acme\t42\tadvanced\t2031-01-31\nbeta\t7\tstandard\t-')"
expect_no_match "list never shows a key" "$(k list)" "$API_KEY|Z9standardKey"
expect_eq "show-id" "$(k show-id acme)" "$KEY_ID"
expect_eq "show-id of an unknown name: 1" "$(rc k show-id nobody)" 1
expect_match "show-id of an unknown name: says why" "$(cat "$T/rc.out")" "nobody: no such key in $S"
expect_eq "add of an existing name: refused" "$(printf 'x1\n' | rc k add acme --key-id 1)" 1
expect_match "add of an existing name: --force named" "$(cat "$T/rc.out")" "acme: already in $S \\(--force replaces it\\)"
expect_eq "add --force replaces" "$(printf 'Replaced1\n' | rc k add beta --key-id 8 --force)" 0
expect_eq "the replaced key ID" "$(k show-id beta)" 8
expect_eq "remove" "$(rc k remove beta)" 0
expect_eq "remove: gone" "$(k list | cut -f1)" acme
expect_eq "remove of an unknown name: 1" "$(rc k remove beta)" 1
expect_eq "a key with a space: refused" "$(printf 'a b\n' | rc k add c --key-id 1)" 1
expect_eq "an empty key: refused" "$(rc k add c --key-id 1 < /dev/null)" 1
expect_eq "a wrong passphrase: 1" "$(rc "$KEYS" -f "$S" --passphrase-file "$T/wrong" list)" 1
expect_eq "a wrong passphrase: the message" "$(cat "$T/rc.out")" \
    "xdrproxy-keys: $S: wrong passphrase or damaged store"
expect_eq "no passphrase file and no terminal: 1" "$(rc "$KEYS" -f "$S" list < /dev/null)" 1
# Usage errors: 2.
expect_eq "no command: 2" "$(rc "$KEYS" -f "$S")" 2
expect_eq "unknown command: 2" "$(rc "$KEYS" -f "$S" frob)" 2
expect_eq "add without --key-id: 2" "$(rc k add x < "$T/api.key")" 2
expect_eq "add with a bad --type: 2" "$(rc k add x --key-id 1 --type odd < "$T/api.key")" 2
expect_eq "add with a bad --expires: 2" "$(rc k add x --key-id 1 --expires 2031-02-30 < "$T/api.key")" 2
expect_eq "--force without add: 2" "$(rc k list --force)" 2
expect_eq "no -f: 2" "$(rc "$KEYS" list)" 2
expect_eq "--help: 0" "$(rc "$KEYS" --help)" 0
expect_match "--help: the commands" "$(cat "$T/rc.out")" "show-id NAME"
# passwd
expect_eq "passwd" "$(rc k --new-passphrase-file "$T/pass2" passwd)" 0
expect_eq "passwd: the old passphrase fails" "$(rc k list)" 1
expect_eq "passwd: the new one works" \
    "$("$KEYS" -f "$S" --passphrase-file "$T/pass2" show-id acme)" "$KEY_ID"
"$KEYS" -f "$S" --passphrase-file "$T/pass2" --new-passphrase-file "$T/pass" passwd
expect_eq "passwd back" "$(k show-id acme)" "$KEY_ID"
# A passphrase file with group access is refused, like a key file.
chmod 640 "$T/pass"
expect_eq "passphrase file mode 640: refused" "$(rc k list)" 1
expect_match "passphrase file mode 640: says why" "$(cat "$T/rc.out")" "mode 0640"
chmod 600 "$T/pass"
# Mode and owner kept, symlinks refused.
chown 65534:65534 "$S"
expect_eq "root manages a store a service user owns" \
    "$(printf 'OwnerKey1\n' | rc k add owner --key-id 5)" 0
expect_eq "the key was added" "$(k show-id owner)" 5
expect_eq "a write keeps the owner" "$(stat -c '%u:%g' "$S")" 65534:65534
expect_eq "a write keeps mode 600" "$(mode_of "$S")" 600
chown 0:0 "$S"
k remove owner
ln -s "$S" "$T/link.store"
expect_eq "a symlinked store: list refused" \
    "$(rc "$KEYS" -f "$T/link.store" --passphrase-file "$T/pass" list)" 1
expect_match "a symlinked store: says why" "$(cat "$T/rc.out")" "a symbolic link; refusing to follow it"
expect_eq "a symlinked store: add refused" \
    "$(rc "$KEYS" -f "$T/link.store" --passphrase-file "$T/pass" add z --key-id 1 < "$T/api.key")" 1
# A changed byte, and a header asking for a huge scrypt cost.
cp "$S" "$T/bad.store"
printf '\377' | dd of="$T/bad.store" bs=1 seek=50 conv=notrunc 2> /dev/null
expect_eq "a changed byte: refused" \
    "$(rc "$KEYS" -f "$T/bad.store" --passphrase-file "$T/pass" list)" 1
expect_eq "a changed byte: the message" "$(cat "$T/rc.out")" \
    "xdrproxy-keys: $T/bad.store: wrong passphrase or damaged store"
cp "$S" "$T/bad.store"
printf '\036' | dd of="$T/bad.store" bs=1 seek=7 conv=notrunc 2> /dev/null
t0=$(date +%s%N)
expect_eq "N = 2^30 in the header: refused" \
    "$(rc "$KEYS" -f "$T/bad.store" --passphrase-file "$T/pass" list)" 1
t1=$(date +%s%N)
expect_match "N = 2^30: refused before deriving, with the bounds" "$(cat "$T/rc.out")" \
    "scrypt cost in the header \\(N=2\\^30 r=8 p=1\\) is beyond the bounds"
if [ $(( (t1 - t0) / 1000000 )) -lt 2000 ]; then pass "N = 2^30: refused at once"
else fail "N = 2^30: took $(( (t1 - t0) / 1000000 )) ms"; fi
expect_eq "the store is not a key file in disguise" "$(grep -c "$API_KEY" "$S")" 0

# 2. The daemon: key_store + key_name, no key_id.
start_mock
write_store_config() {
	cat > "$T/xdrproxy.conf" <<EOF
[proxy]
audit_log = $T/audit.jsonl
key_store_passphrase_file = ${PASSFILE:-$T/pass}
${1:-}

[tenant acme]
listen     = 127.0.0.1:0
fqdn       = $FQDN
key_store  = $S
key_name   = ${NAME:-acme}
ca_file    = $CA
connect_to = 127.0.0.1:$MOCK_PORT
${2:-}
# The governor off: the rotation below is tested under steady load.
rate_limit = 0
limit      = /* 0
EOF
}
name_line() { grep -n '^key_name' "$T/xdrproxy.conf" | cut -d: -f1; }
write_store_config
expect_eq "-t with a key store: 0" "$(rc "$XDRPROXY" -t -c "$T/xdrproxy.conf")" 0
PASSFILE=$T/wrong write_store_config
expect_eq "-t with a wrong passphrase: 1" "$(rc "$XDRPROXY" -t -c "$T/xdrproxy.conf")" 1
expect_match "-t with a wrong passphrase: FILE:LINE: message" "$(cat "$T/rc.out")" \
    "$T/xdrproxy.conf:$(name_line): key_store $S: wrong passphrase or damaged store"
expect_no_match "-t with a wrong passphrase: no passphrase in the message" \
    "$(cat "$T/rc.out")" "not the passphrase|$PASS"
NAME=nobody write_store_config
expect_eq "-t with an unknown key_name: 1" "$(rc "$XDRPROXY" -t -c "$T/xdrproxy.conf")" 1
expect_match "-t with an unknown key_name: the message" "$(cat "$T/rc.out")" \
    "$T/xdrproxy.conf:$(name_line): key_name nobody: no such key in $S"
write_store_config "" "key_id = 99"
expect_eq "-t with a contradicting key_id: 1" "$(rc "$XDRPROXY" -t -c "$T/xdrproxy.conf")" 1
expect_match "-t with a contradicting key_id: the message" "$(cat "$T/rc.out")" \
    "key_name acme: key_id 99 differs from the key ID 42 in $S"
write_store_config "" "key_id = $KEY_ID"
expect_eq "-t with the same key_id: 0" "$(rc "$XDRPROXY" -t -c "$T/xdrproxy.conf")" 0
write_store_config "" "key_type = standard"
expect_eq "-t with a contradicting key_type: 1" "$(rc "$XDRPROXY" -t -c "$T/xdrproxy.conf")" 1
expect_match "-t with a contradicting key_type: the message" "$(cat "$T/rc.out")" \
    "key_name acme: key_type standard contradicts the type advanced in $S"
sed '/^key_store_passphrase_file/d' "$T/xdrproxy.conf" > "$T/nopass.conf"
sed -i '/^key_type/d' "$T/nopass.conf"
expect_eq "-t with no passphrase and no terminal: 1" "$(rc "$XDRPROXY" -t -c "$T/nopass.conf" < /dev/null)" 1
expect_match "-t with no passphrase: the message" "$(cat "$T/rc.out")" \
    "key_store $S: no passphrase: set key_store_passphrase_file or key_store_passphrase_credential"
# Asked on the terminal (a pty from script(1)), echo off.
if command -v script >/dev/null; then
	rm -f "$T/tty.in"
	mkfifo "$T/tty.in"
	script -qfc "'$XDRPROXY' -t -c '$T/nopass.conf'; echo rc=\$?" /dev/null \
	    < "$T/tty.in" > "$T/tty.out" 2>&1 &
	spid=$!
	exec 5> "$T/tty.in"
	if wait_for 20 grep -q "Passphrase for key store $S: " "$T/tty.out"; then
		pass "-t on a terminal: asks for the passphrase"
		printf '%s\n' "$PASS" >&5
		wait_for 20 grep -q 'rc=' "$T/tty.out"
	else
		fail "-t on a terminal: no prompt: $(cat "$T/tty.out")"
	fi
	exec 5>&-
	wait "$spid"
	expect_match "-t on a terminal: the store opens" "$(cat "$T/tty.out")" "configuration OK"
	expect_match "-t on a terminal: exit 0" "$(cat "$T/tty.out")" "rc=0"
	expect_no_match "-t on a terminal: the passphrase is not echoed" "$(cat "$T/tty.out")" "$PASS"
else
	echo "# script(1) not installed: the terminal prompt is not checked"
fi
# The passphrase as a systemd credential.
mkdir -p "$T/creds"
cp "$T/pass" "$T/creds/store.pass"
sed "s|^\\[proxy\\]|[proxy]\\nkey_store_passphrase_credential = store.pass|" \
    "$T/nopass.conf" > "$T/cred.conf"
expect_eq "-t with the passphrase as a credential: 0" \
    "$(CREDENTIALS_DIRECTORY=$T/creds rc "$XDRPROXY" -t -c "$T/cred.conf")" 0
expect_eq "-t with the credential but no \$CREDENTIALS_DIRECTORY: 1" \
    "$(rc env -u CREDENTIALS_DIRECTORY "$XDRPROXY" -t -c "$T/cred.conf")" 1
expect_match "no \$CREDENTIALS_DIRECTORY: the message" "$(cat "$T/rc.out")" \
    "key_store_passphrase_credential store.pass: \\\$CREDENTIALS_DIRECTORY is not set"

# The key from the store signs; the mock tenant checks it.
NEW_KEY=N3wR0tatedKey$(openssl rand -hex 20)
printf '1001 %s\n' "$NEW_KEY" > "$T/extra.txt"
stop_all
start_mock --extra-keys "$T/extra.txt"
write_store_config "workers = 2"
start_proxy
signed_with() {
	grep '"event":"request"' "$MOCK_LOG" | grep -F "[\"X-Tag\",\"$1\"]" |
	    sed -n 's/.*"auth":"ok","auth_id":"\([0-9]*\)".*/\1/p' | tail -n 1
}
call() {
	curl -sS -o /dev/null -w '%{http_code}' --max-time 30 -H "X-Tag: $1" \
	    -X POST -d '{}' "$URL/public_api/v1/x/"
}
expect_eq "a key from the store: 200" "$(call s1)" 200
expect_eq "a key from the store: signed with the stored key ID" "$(signed_with s1)" "$KEY_ID"
expect_match "a key from the store: audited with the stored key ID" \
    "$(last_audit)" "\"key_id\":\"$KEY_ID\""

# The leak test for this source: neither the key nor the passphrase in
# the proxy's command line, environment, log or audit log.
expect_no_secret "no key or passphrase" "$PROXY_PID" "$PROXY_LOG" \
    "$T/audit.jsonl" -- "$API_KEY" "$PASS"

# 3. Rotation under load: 10 clients all along; the key replaced in the
# store (new key ID 1001, which the mock also accepts) and SIGHUP. Each
# client notes the generation before each request; after the reload every
# request is signed with the new key, and none fails.
echo 1 > "$T/gen"
client() {
	local c=$1 n=0 g
	while [ ! -e "$T/stop" ]; do
		g=$(cat "$T/gen")
		n=$((n + 1))
		curl -s -w '%{http_code}\n' --max-time 30 \
		    -H "X-Load: $c-$n-$g" -X POST -d '{}' \
		    -o /dev/null "$URL/public_api/v1/x/" >> "$T/client$c.codes"
	done
}
answered_at_least() { [ "$(cat "$T"/client*.codes 2>/dev/null | wc -l)" -ge "$1" ]; }
clients=()
for c in $(seq 1 10); do
	client "$c" &
	clients+=($!)
done
wait_for 20 answered_at_least 50 || fail "the clients did not start"
printf '%s\n' "$NEW_KEY" | k add acme --key-id 1001 --force
kill -HUP "$PROXY_PID"
if wait_for 20 grep -q 'reload: configuration 2 in force' "$PROXY_LOG"; then
	pass "rotation: configuration 2 in force"
else
	fail "rotation: no 'configuration 2 in force': $(tail -n 3 "$PROXY_LOG")"
fi
echo 2 > "$T/gen.new" && mv "$T/gen.new" "$T/gen"
n0=$(cat "$T"/client*.codes | wc -l)
wait_for 30 answered_at_least $((n0 + 100)) || fail "rotation: the clients stalled after the reload"
touch "$T/stop"
wait "${clients[@]}"
total=$(cat "$T"/client*.codes | wc -l)
bad=$(cat "$T"/client*.codes | grep -cv '^200$')
echo "# rotation: $total requests from 10 clients across the reload"
expect_eq "rotation: no failed request" "$bad" 0
grep '"event":"request"' "$MOCK_LOG" | grep '"X-Load"' |
    sed -n 's/.*"auth":"\([a-z_]*\)","auth_id":"\([0-9]*\)".*\["X-Load","[0-9]*-[0-9]*-\([0-9]*\)"\].*/\1 \2 \3/p' \
    > "$T/load.sig"
expect_eq "rotation: the tenant saw every request" "$(wc -l < "$T/load.sig")" "$total"
expect_eq "rotation: every signature verified" "$(awk '$1 != "ok"' "$T/load.sig" | wc -l)" 0
after=$(awk '$3 == 2' "$T/load.sig" | wc -l)
if [ "$after" -ge 100 ]; then pass "rotation: $after requests after the reload"
else fail "rotation: only $after requests after the reload"; fi
expect_eq "rotation: every request after the reload signed with the new key" \
    "$(awk '$3 == 2 && $2 != 1001' "$T/load.sig" | wc -l)" 0
expect_eq "rotation: a new request uses the new key" "$(call s2)" 200
expect_eq "rotation: signed with key 1001" "$(signed_with s2)" 1001
# A reload that cannot open the store keeps the old key.
cp "$T/wrong" "$T/pass.bad"
sed -i "s|^key_store_passphrase_file.*|key_store_passphrase_file = $T/pass.bad|" "$T/xdrproxy.conf"
kill -HUP "$PROXY_PID"
if wait_for 20 grep -q "reload failed: $T/xdrproxy.conf:$(name_line): key_store $S: wrong passphrase or damaged store; configuration 2 stays in force" "$PROXY_LOG"; then
	pass "a reload with a wrong passphrase fails, FILE:LINE: message"
else
	fail "no 'reload failed' for the wrong passphrase: $(tail -n 3 "$PROXY_LOG")"
fi
expect_eq "after the failed reload: still 200" "$(call s3)" 200
expect_eq "after the failed reload: still the new key" "$(signed_with s3)" 1001
expect_no_secret "after rotation" "$PROXY_PID" "$PROXY_LOG" \
    "$T/audit.jsonl" -- "$API_KEY" "$NEW_KEY" "$PASS"
stop_proxy

# 4. Crash safety: the CLI killed at each step of a write. After each
# kill the store opens, with the old content or the new, and the next
# write works and leaves no temp file behind.
if ! command -v strace >/dev/null; then
	echo "# strace not installed (tests/deps.sh installs it): crash checks skipped"
elif ! strace -f -o /dev/null true 2>/dev/null; then
	echo "# strace cannot trace here (ptrace refused): crash checks skipped"
else
	before=$(k list)
	i=0
	# SYSCALL WHEN: the temp file's write, its fsync (1st), the rename,
	# the directory's fsync (2nd).
	for step in "write 1" "fsync 1" "rename,renameat,renameat2 1" "fsync 2"; do
		set -- "${step% *}" "${step##* }"
		i=$((i + 1))
		printf 'CrashKey%s\n' "$i" | strace -f -o /dev/null \
		    -e trace="$1" -e inject="$1":signal=KILL:when="$2" \
		    "$KEYS" -f "$S" --passphrase-file "$T/pass" add "crash$i" --key-id "$i" \
		    > /dev/null 2>&1
		code=$?
		expect_eq "killed at $1 #$2: the CLI died of SIGKILL" "$code" 137
		now=$(k list 2>&1)
		if [ "$now" = "$before" ] ||
		    [ "$now" = "$(printf '%s\ncrash%s\t%s\tadvanced\t-' "$before" "$i" "$i")" ]; then
			pass "killed at $1 #$2: the store holds the old or the new list"
		else
			fail "killed at $1 #$2: the store lists '$now'"
		fi
		expect_eq "killed at $1 #$2: mode 600" "$(mode_of "$S")" 600
		# The next write works, and cleans up.
		k remove "crash$i" > /dev/null 2>&1
		printf 'After%s\n' "$i" | k add "after$i" --key-id "$i"
		expect_eq "killed at $1 #$2: the next write works" "$(k show-id "after$i")" "$i"
		expect_eq "killed at $1 #$2: no temp file left" \
		    "$(find "$T" -maxdepth 1 -name '.keys.store.tmp-*' | wc -l)" 0
		k remove "after$i"
		before=$(k list)
	done
fi
finish
