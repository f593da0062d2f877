#!/bin/bash
# t_systemd.sh: etc/systemd/xdrproxy.service and xdrproxy.socket pass
# `systemd-analyze verify` (offline: no running systemd needed), and the
# service's `systemd-analyze security --offline=yes` exposure is at most
# the score the README states. verify insists that ExecStart's binary
# exists, so a copy of the units runs the built one.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

# The exposure README.md states ("1.3 OK"); a change to the unit that
# raises it must update both.
THRESHOLD=1.3

command -v systemd-analyze > /dev/null 2>&1 ||
    skip_all "systemd-analyze not installed (Debian package systemd)"
mkdir -p "$T/units"
sed "s|/usr/sbin/xdrproxy|$XDRPROXY|g" \
    "$top_srcdir/etc/systemd/xdrproxy.service" > "$T/units/xdrproxy.service"
cp "$top_srcdir/etc/systemd/xdrproxy.socket" "$T/units/"

# --man=no: the man pages are not installed where man(1) would find them.
systemd-analyze verify --man=no "$T/units/xdrproxy.service" \
    "$T/units/xdrproxy.socket" > "$T/verify.out" 2>&1
rc=$?
if [ $rc -ne 0 ] && grep -q 'Failed to \(connect\|initialize\)' "$T/verify.out"; then
	cat "$T/verify.out"
	skip_all "systemd-analyze verify cannot run here"
fi
expect_eq "systemd-analyze verify passes on both units" "$rc" 0
expect_eq "verify prints nothing" "$(cat "$T/verify.out")" ""

systemd-analyze security --offline=yes --no-pager \
    "$T/units/xdrproxy.service" > "$T/security.out" 2>&1
expect_eq "systemd-analyze security --offline=yes runs" "$?" 0
score=$(sed -n 's/.*Overall exposure level for xdrproxy.service: \([0-9.]*\) .*/\1/p' \
    "$T/security.out")
expect_match "an exposure score is printed" "$score" '^[0-9]+\.[0-9]$'
expect_eq "exposure $score is at most $THRESHOLD" \
    "$(awk -v s="${score:-99}" -v t="$THRESHOLD" 'BEGIN { print (s <= t) ? "yes" : "no" }')" yes
if grep -q "exposure score of $THRESHOLD" "$top_srcdir/README.md"; then
	pass "README states the score"
else
	fail "README states the score: no 'exposure score of $THRESHOLD' in README.md"
fi
for d in NoNewPrivileges=yes ProtectSystem=strict MemoryDenyWriteExecute=yes \
    'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK' \
    SystemCallFilter=@system-service LimitMEMLOCK=8M \
    '#LoadCredentialEncrypted=acme.key:'; do
	expect_match "unit has $d" "$(cat "$top_srcdir/etc/systemd/xdrproxy.service")" \
	    "(^|$(printf '\n'))$d"
done

finish
