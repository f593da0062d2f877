#!/bin/bash
# t_priv.sh: [proxy] user/group. Started as root, xdrproxy opens its
# listeners, audit log and keys, then drops to the user (one group, all
# four ids, setuid(0) impossible, NoNewPrivs) before serving; -t warns
# about files a reload as that user could not read; an unknown user is a
# FILE:LINE error; a SIGHUP after the drop reloads keys the user owns, and
# one it cannot read fails the reload while the old key keeps serving.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

[ "$(id -u)" = 0 ] || skip_all "needs root (to start as root and drop)"
U=xdrproxy-test
if ! id "$U" > /dev/null 2>&1; then
	useradd --system --no-create-home --shell /usr/sbin/nologin "$U" \
	    > /dev/null 2>&1 || skip_all "cannot create user $U (useradd)"
fi
UID_T=$(id -u "$U")
GID_T=$(id -g "$U")

make_pki
start_mock
# The user must reach the configuration, the CA and the audit log later.
chmod 755 "$T"
chmod -R a+rX "$T/pki"
: > "$T/audit.jsonl"
chown "$U" "$T/audit.jsonl"
# The key stays root's, 0600: read at start, before the drop.
write_config "" "user = $U"
chmod 644 "$T/xdrproxy.conf"

# -t: the exact warning, and still OK.
"$XDRPROXY" -t -c "$T/xdrproxy.conf" > "$T/t.out" 2>&1
expect_eq "-t with a root-owned key exits 0" "$?" 0
expect_match "-t warns that a reload cannot read the key" "$(cat "$T/t.out")" \
    "key_file $T/api.key: owned by root; after dropping to user $U, a reload cannot read it \\(chown $U it\\)"

start_proxy
st=/proc/$PROXY_PID/status
expect_match "Uid: all four are the user's" "$(grep '^Uid:' "$st")" \
    "^Uid:[[:space:]]+${UID_T}[[:space:]]+${UID_T}[[:space:]]+${UID_T}[[:space:]]+$UID_T\$"
expect_match "Gid: all four are the group's" "$(grep '^Gid:' "$st")" \
    "^Gid:[[:space:]]+${GID_T}[[:space:]]+${GID_T}[[:space:]]+${GID_T}[[:space:]]+$GID_T\$"
expect_match "Groups: only that group" "$(grep '^Groups:' "$st")" \
    "^Groups:[[:space:]]+${GID_T}[[:space:]]*\$"
expect_match "NoNewPrivs: 1" "$(grep '^NoNewPrivs:' "$st")" "^NoNewPrivs:[[:space:]]+1\$"
expect_match "CapEff: none" "$(grep '^CapEff:' "$st")" "^CapEff:[[:space:]]+0+\$"
code=$(px -o /dev/null -w '%{http_code}' /public_api/v1/healthcheck)
expect_eq "a signed request works after the drop (root-owned key read at start)" "$code" 200
expect_eq "the mock tenant saw it" "$(mock_requests)" 1

# Reload with the key still root's: fails, logged, the proxy serves on.
kill -HUP "$PROXY_PID"
wait_for 20 grep -q "reload failed: " "$PROXY_LOG"
expect_match "reload of a root-only key fails and says why" \
    "$(grep 'reload failed: ' "$PROXY_LOG")" \
    "reload failed: .*$T/api.key.*configuration 1 stays in force"
code=$(px -o /dev/null -w '%{http_code}' /public_api/v1/healthcheck)
expect_eq "still serving after the failed reload" "$code" 200

# The key chowned to the user: the reload works as the user.
chown "$U" "$T/api.key"
kill -HUP "$PROXY_PID"
wait_for 20 grep -q "reload: configuration 2 in force" "$PROXY_LOG"
expect_match "reload with the key owned by the user works" \
    "$(cat "$PROXY_LOG")" "reload: configuration 2 in force"
code=$(px -o /dev/null -w '%{http_code}' /public_api/v1/healthcheck)
expect_eq "a signed request after that reload" "$code" 200

# A user change on reload: a warning, and it goes on.
write_config "" "user = nobody"
chmod 644 "$T/xdrproxy.conf"
kill -HUP "$PROXY_PID"
wait_for 20 grep -q "user/group changes need a restart" "$PROXY_LOG"
expect_match "a user change on reload: restart needed" "$(cat "$PROXY_LOG")" \
    "$T/xdrproxy.conf:3: user/group changes need a restart"
stop_proxy

# Unknown user, unknown group: FILE:LINE errors, at -t and at start.
write_config "" "user = no-such-user-xdrproxy"
"$XDRPROXY" -t -c "$T/xdrproxy.conf" > "$T/t.out" 2>&1
expect_eq "-t: unknown user exits 1" "$?" 1
expect_eq "-t: unknown user message" "$(cat "$T/t.out")" \
    "$T/xdrproxy.conf:3: user no-such-user-xdrproxy: no such user"
"$XDRPROXY" -c "$T/xdrproxy.conf" > "$T/t.out" 2>&1
expect_match "start: unknown user message" "$(cat "$T/t.out")" \
    "$T/xdrproxy.conf:3: user no-such-user-xdrproxy: no such user"
write_config "" "user = $U
group = no-such-group-xdrproxy"
"$XDRPROXY" -t -c "$T/xdrproxy.conf" > "$T/t.out" 2>&1
expect_eq "-t: unknown group message" "$(cat "$T/t.out")" \
    "$T/xdrproxy.conf:3: group no-such-group-xdrproxy: no such group"

write_config "" "user = root"
"$XDRPROXY" -t -c "$T/xdrproxy.conf" > "$T/t.out" 2>&1
expect_eq "-t: user root is refused" "$(cat "$T/t.out")" \
    "$T/xdrproxy.conf:3: user root: is root: name an unprivileged user"

# Not root: changing user is refused; already that user is fine.
chown "$U" "$T/api.key"
write_config "" "user = nobody"
chmod 644 "$T/xdrproxy.conf"
setpriv --reuid="$UID_T" --regid="$GID_T" --clear-groups \
    "$XDRPROXY" -c "$T/xdrproxy.conf" > "$T/t.out" 2>&1
expect_match "not root: must start as root" "$(cat "$T/t.out")" \
    "$T/xdrproxy.conf:3: user nobody: xdrproxy must start as root to change user"
write_config "" "user = $U"
chmod 644 "$T/xdrproxy.conf"
setpriv --reuid="$UID_T" --regid="$GID_T" --clear-groups \
    "$XDRPROXY" -c "$T/xdrproxy.conf" 2> "$T/self.log" &
PIDS+=($!)
wait_for 20 grep -q ': xdrproxy [0-9.]* running' "$T/self.log"
expect_match "not root but already the user: starts" "$(cat "$T/self.log")" \
    ': xdrproxy [0-9.]* running'

# A key_command runs before the drop at start (and under -t): as the user,
# never as root.
mkdir -m 1777 "$T/cmdout"
cat > "$T/whoami-key.sh" <<EOF
#!/bin/sh
id -u > $T/cmdout/uid
printf '%s\\n' '$API_KEY'
EOF
chmod 755 "$T/whoami-key.sh"
write_config "" "user = $U"
sed -i "s|^key_file .*|key_command = $T/whoami-key.sh|" "$T/xdrproxy.conf"
"$XDRPROXY" -t -c "$T/xdrproxy.conf" > "$T/tcmd.out" 2>&1
expect_eq "-t with key_command and user exits 0" "$?" 0
expect_eq "key_command under -t ran as the user, not root" \
    "$(cat "$T/cmdout/uid" 2>/dev/null)" "$UID_T"

# A configuration the user cannot read: a reload could not re-read it.
chmod 600 "$T/xdrproxy.conf"
"$XDRPROXY" -t -c "$T/xdrproxy.conf" > "$T/tconf.out" 2>&1
expect_eq "-t with a root-only configuration exits 0" "$?" 0
expect_match "-t warns that a reload cannot read the configuration" \
    "$(cat "$T/tconf.out")" \
    "configuration $T/xdrproxy.conf: not readable by user $U; after dropping to it, a reload cannot read it"

finish
