#!/bin/bash
# t_caller.sh: who called. Two local users call over loopback TCP and over
# a unix socket (mode=0666, group=); each audit record names the right
# uid, user and executable. Needs root (useradd, running curl as others).
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

[ "$(id -u)" = 0 ] || skip_all "needs root: creates users and runs curl as them"
command -v useradd >/dev/null || skip_all "useradd not found"
command -v setpriv >/dev/null || skip_all "setpriv not found"

USERS=(xdrp-alice xdrp-bob)
for u in "${USERS[@]}"; do
	id -u "$u" >/dev/null 2>&1 ||
	    useradd --system --no-create-home --user-group \
	    --shell /usr/sbin/nologin "$u" || skip_all "useradd $u failed"
done
cleanup_users() {
	for u in "${USERS[@]}"; do userdel "$u" >/dev/null 2>&1; done
	rm -rf "$SOCKDIR"
}
# Reachable by the test users (T itself is private).
SOCKDIR=$(mktemp -d /tmp/xdrp-caller.XXXXXX)
chmod 0755 "$SOCKDIR"
sock=$SOCKDIR/acme.sock
sock2=$SOCKDIR/other.sock
trap 'cleanup_users; cleanup' EXIT

CURL=$(readlink -f "$(command -v curl)")
make_pki
start_mock
write_config "listen = unix:$sock mode=0666
listen = unix:$sock2 mode=0660 group=xdrp-bob"
start_proxy

expect_eq "mode=0666 applied" "$(stat -c %a "$sock")" 666
expect_eq "default group: the daemon's" "$(stat -c %G "$sock")" "$(id -gn)"
expect_eq "mode=0660 applied" "$(stat -c %a "$sock2")" 660
expect_eq "group=xdrp-bob applied" "$(stat -c %G "$sock2")" xdrp-bob

# as USER CURL-ARGS...: curl run as USER, with its own uid and gid only.
as() {
	local u=$1; shift
	setpriv --reuid="$(id -u "$u")" --regid="$(id -g "$u")" \
	    --clear-groups -- "$CURL" -sS --max-time 30 -o /dev/null \
	    -w '%{http_code}' -X POST -d '{}' "$@"
}

n=0
for u in "${USERS[@]}"; do
	uid=$(id -u "$u"); gid=$(id -g "$u")
	want="\"caller\":\\{\"uid\":$uid,\"user\":\"$u\",\"gid\":$gid,\"group\":\"$u\",\"pid\":[0-9]+,\"exe\":\"$CURL\"\\},\"caller_error\":null"
	expect_eq "$u over TCP: answered" "$(as "$u" "$URL/public_api/v1/x/")" 200
	n=$((n + 1)); wait_num 10 -ge $n audit_count
	expect_match "$u over TCP: audited as $u, $CURL" "$(last_audit)" "$want"
	expect_eq "$u over unix: answered" \
	    "$(as "$u" --unix-socket "$sock" http://localhost/public_api/v1/x/)" 200
	n=$((n + 1)); wait_num 10 -ge $n audit_count
	expect_match "$u over unix: audited as $u, $CURL" "$(last_audit)" "$want"
done
# Group xdrp-bob may use the 0660 socket; alice may not.
expect_eq "bob via group=: answered" \
    "$(as xdrp-bob --unix-socket "$sock2" http://localhost/public_api/v1/x/)" 200
n=$((n + 1)); wait_num 10 -ge $n audit_count
expect_match "bob via group=: audited" "$(last_audit)" '"user":"xdrp-bob"'
if as xdrp-alice --unix-socket "$sock2" http://localhost/public_api/v1/x/ \
    >/dev/null 2>&1; then
	fail "alice connected to a 0660 socket of group xdrp-bob"
else
	pass "alice refused by the socket's mode"
fi

# Root's own curl, through the helper: uid 0.
px -o /dev/null /public_api/v1/x/
n=$((n + 1)); wait_num 10 -ge $n audit_count
expect_match "root over TCP: uid 0" "$(last_audit)" '"caller":\{"uid":0,"user":"root",'

stop_proxy
finish
