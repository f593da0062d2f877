#!/bin/bash
# t_policy.sh: who may call what. A tenant's allow/deny rules by user,
# group (supplementary), uid, exe and any, with method lists; first match
# wins, default deny; 403 policy_denied naming the rule's FILE:LINE, the
# audit's "rule"; the denied calls and every bypass spelling never reach
# the tenant; the metric; a reload replaces the rules; -t names unknown
# users and groups. Needs root (useradd, running curl as others).
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

[ "$(id -u)" = 0 ] || skip_all "needs root: creates users and runs curl as them"
command -v useradd >/dev/null || skip_all "useradd not found"
command -v groupadd >/dev/null || skip_all "groupadd not found"
command -v setpriv >/dev/null || skip_all "setpriv not found"

ALICE=xdrp-pa
BOB=xdrp-pb
SOC=xdrp-psoc
getent group "$SOC" >/dev/null || groupadd --system "$SOC" ||
    skip_all "groupadd $SOC failed"
for u in "$ALICE" "$BOB"; do
	id -u "$u" >/dev/null 2>&1 ||
	    useradd --system --no-create-home --user-group \
	    --shell /usr/sbin/nologin "$u" || skip_all "useradd $u failed"
done
# alice is in the soc group as a supplementary member only.
usermod -a -G "$SOC" "$ALICE" || skip_all "usermod failed"
cleanup_users() {
	userdel "$ALICE" >/dev/null 2>&1
	userdel "$BOB" >/dev/null 2>&1
	groupdel "$SOC" >/dev/null 2>&1
	rm -rf "$SOCKDIR"
}
SOCKDIR=$(mktemp -d /tmp/xdrp-policy.XXXXXX)
chmod 1777 "$SOCKDIR"
OUT=$SOCKDIR/out
sock=$SOCKDIR/acme.sock
trap 'cleanup_users; cleanup' EXIT

CURL=$(readlink -f "$(command -v curl)")
PY=
[ -x /usr/bin/python3 ] && PY=$(readlink -f /usr/bin/python3)

make_pki
start_mock
rules1="listen = unix:$sock mode=0666
allow = group:$SOC     POST          /public_api/v1/incidents/*
allow = user:$BOB      POST,get      /public_api/v1/xql/*
allow = exe:$CURL      GET           /public_api/v1/exe/*
deny  = any            *             /public_api/v1/endpoints/isolate*
deny  = any            POST          /public_api/v1/endpoints/delete
allow = any            GET           /public_api/v1/healthcheck
allow = uid:0          *             *"
write_config "$rules1" "admin_listen = 127.0.0.1:0"
conf=$T/xdrproxy.conf
# line PATTERN: the FILE:LINE of the config line matching PATTERN.
line() { echo "$conf:$(grep -nF -- "$1" "$conf" | head -n 1 | cut -d: -f1)"; }
R_SOC=$(line "group:$SOC")
R_BOB=$(line "user:$BOB")
R_EXE=$(line "exe:")
R_ISO=$(line "deny  = any")
R_HC=$(line "healthcheck")
R_DEL=$(line "endpoints/delete")
R_ROOT=$(line "uid:0")

expect_eq "-t: rules load" "$("$XDRPROXY" -t -c "$conf" 2>&1)" \
    "$conf: configuration OK"
start_proxy
ADMIN=http://127.0.0.1:$(sed -n 's/.*admin: listening on 127\.0\.0\.1:\([0-9]*\) (.*/\1/p' "$PROXY_LOG" | head -n 1)

# as USER METHOD PATH [curl args]: curl as USER (own uid/gid, its groups
# from the group database unless CLEAR is set), over TCP, or over the
# unix socket with VIA=unix. Prints the status; the answer is in $OUT.
as() {
	local u=$1 m=$2 p=$3 grp=--init-groups
	shift 3
	[ -n "${CLEAR:-}" ] && grp=--clear-groups
	rm -f "$OUT" "$OUT.hdr"
	if [ "${VIA:-tcp}" = unix ]; then
		set -- --unix-socket "$sock" "$@" "http://localhost$p"
	else
		set -- "$@" "$URL$p"
	fi
	setpriv --reuid="$(id -u "$u")" --regid="$(id -g "$u")" $grp -- \
	    "$CURL" -sS --max-time 30 -D "$OUT.hdr" -o "$OUT" \
	    -w '%{http_code}' -X "$m" "$@"
}
# asroot METHOD PATH [curl args]: the same as root, with --path-as-is.
asroot() {
	local m=$1 p=$2
	shift 2
	rm -f "$OUT" "$OUT.hdr"
	curl -sS --max-time 30 --path-as-is -D "$OUT.hdr" -o "$OUT" \
	    -w '%{http_code}' -X "$m" "$@" "$URL$p"
}

n=0
# audited WHAT REGEX: the next audit record matches.
audited() {
	n=$((n + 1))
	wait_num 10 -ge $n audit_count
	expect_match "$1: audited" "$(last_audit)" "$2"
}
# allowed WHAT RULE STATUS: the answer was the tenant's, and the record
# names the rule.
allowed() {
	expect_eq "$1: answered" "$2" 200
	audited "$1" "\"outcome\":\"ok\",\"error\":null,\"rule\":\"$3\",\"caller\":"
}
# denied WHAT STATUS RULE: 403 policy_denied naming the rule, audited.
denied() {
	local msg
	expect_eq "$1: 403" "$2" 403
	expect_match "$1: x-xdrproxy-error" "$(cat "$OUT.hdr")" \
	    "x-xdrproxy-error: policy_denied"
	if [ "$3" = default ]; then msg="no rule allows this caller"
	else msg="denied by rule $3\""; fi
	expect_match "$1: body" "$(cat "$OUT")" \
	    "^\\{\"error\":\"policy_denied\",\"message\":\"[^\"]*$msg"
	audited "$1" "\"outcome\":\"proxy_error\",\"error\":\"policy_denied\",\"rule\":\"$3\",\"caller\":"
}

seen=$(mock_requests)
# Group by supplementary membership (the process has the group, or not:
# the group database decides either way), over TCP and the unix socket.
allowed "alice (soc member) POST incidents, TCP" \
    "$(as $ALICE POST /public_api/v1/incidents/get_incidents)" "$R_SOC"
allowed "alice POST incidents, unix" \
    "$(VIA=unix as $ALICE POST /public_api/v1/incidents/get_incidents)" "$R_SOC"
allowed "alice without the group in her process, unix" \
    "$(CLEAR=1 VIA=unix as $ALICE POST /public_api/v1/incidents/x)" "$R_SOC"
expect_match "the record names alice" "$(last_audit)" "\"user\":\"$ALICE\""
seen=$((seen + 3))
denied "bob POST incidents: default deny" \
    "$(as $BOB POST /public_api/v1/incidents/get_incidents)" default
denied "bob POST incidents over unix: default deny" \
    "$(VIA=unix as $BOB POST /public_api/v1/incidents/get_incidents)" default
# user: and a method list (case of the method in the rule is free).
allowed "bob POST xql" "$(as $BOB POST /public_api/v1/xql/start)" "$R_BOB"
allowed "bob GET xql" "$(VIA=unix as $BOB GET /public_api/v1/xql/x)" "$R_BOB"
denied "bob DELETE xql: not in the list" \
    "$(as $BOB DELETE /public_api/v1/xql/x)" default
denied "alice POST xql: another user" \
    "$(as $ALICE POST /public_api/v1/xql/start)" default
seen=$((seen + 2))
# exe: curl yes, python3 no.
allowed "alice GET exe/ with $CURL" "$(as $ALICE GET /public_api/v1/exe/x)" "$R_EXE"
seen=$((seen + 1))
if [ -n "$PY" ]; then
	st=$(setpriv --reuid="$(id -u $ALICE)" --regid="$(id -g $ALICE)" \
	    --init-groups -- "$PY" -c '
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1], timeout=30); print(200)
except urllib.error.HTTPError as e:
    print(e.code)' "$URL/public_api/v1/exe/x")
	expect_eq "alice GET exe/ with $PY: 403" "$st" 403
	audited "python3: default deny" "\"error\":\"policy_denied\",\"rule\":\"default\",\"caller\":\\{[^}]*\"exe\":\"$PY\""
else
	echo "# python3 not found: the exe: mismatch case is skipped"
fi
# any; first match wins: the deny beats root's allow that comes later.
allowed "bob GET healthcheck (any)" \
    "$(as $BOB GET /public_api/v1/healthcheck)" "$R_HC"
denied "bob POST healthcheck: method" \
    "$(as $BOB POST /public_api/v1/healthcheck)" default
denied "root POST isolate: the deny comes first" \
    "$(asroot POST /public_api/v1/endpoints/isolate -d '{}')" "$R_ISO"
# A rule without '*' covers the path with and without a trailing '/'.
denied "root POST delete/: a deny of .../delete" \
    "$(asroot POST /public_api/v1/endpoints/delete/ -d '{}')" "$R_DEL"
denied "root POST delete: a deny of .../delete" \
    "$(asroot POST /public_api/v1/endpoints/delete -d '{}')" "$R_DEL"
# A method override header could make an allowed call another one.
for h in X-HTTP-Method-Override X-HTTP-Method X-Method-Override; do
	st=$(asroot GET /public_api/v1/healthcheck -H "$h: POST")
	expect_eq "$h: 400" "$st" 400
	expect_match "$h: said why" "$(cat "$OUT")" "$h is refused for a tenant with allow/deny rules"
	audited "$h: audited" '"status":400,.*"error":"bad_request"'
done
allowed "root POST elsewhere (uid:0)" \
    "$(asroot POST /public_api/v1/endpoints/get_endpoints -d '{}')" "$R_ROOT"
seen=$((seen + 2))
expect_eq "the tenant saw only the allowed calls" "$(mock_requests)" "$seen"

# Bypass spellings, as root (uid:0 would allow anything the deny misses):
# each is refused (400) before the rules or denied (403) by them.
spell() {
	local st
	st=$(asroot POST "$1" -d '{}')
	case $st in
	400) audited "$1: refused 400" '"status":400,.*"outcome":"proxy_error","error":"bad_request"' ;;
	403) audited "$1: denied 403" "\"status\":403,.*\"error\":\"policy_denied\",\"rule\":\"$R_ISO\"" ;;
	*) fail "$1: got $st, want 400 or 403"; n=$((n + 1)) ;;
	esac
}
for p in \
    /public_api/v1/endpoints/%2e/isolate \
    /public_api/v1/endpoints/%2E%2E/endpoints/isolate \
    /public_api/v1/endpoints/x/../isolate \
    /public_api/v1/endpoints/./isolate \
    /public_api/v1/endpoints%2fisolate \
    /public_api/v1/endpoints%2Fisolate \
    /public_api/v1//endpoints/isolate \
    /public_api/v1/endpoints//isolate \
    /public_api/v1/ENDPOINTS/Isolate \
    /public_api/v1/endpoints/ISOLATE_endpoints \
    '/public_api/v1/endpoints/isolate;' \
    '/public_api/v1/endpoints/isolate;x=1' \
    '/public_api/v1/endpoints;x/isolate' \
    /public_api/v1/endpoints/isolate%3b \
    '/public_api/v1/endpoints/isolate?x=1' \
    '/public_api/v1/endpoints/isolate?' \
    /public_api/v1/endpoints/isolate%3f \
    /public_api/v1/endpoints/isolate%3Fx \
    /public_api/v1/endpoints/isolate%23x \
    /public_api/v1/endpoints/%69solate \
    /public_api/v1/endpoints/%49SOLATE \
    /public_api/v1/%65ndpoints/isolate \
    /public_api/v1/endpoints/%2569solate \
    /public_api/v1/endpoints/isolate%00 \
    /public_api/v1/endpoints/isolate/ \
    '/public_api/v1/endpoints\isolate' \
    /public_api/v1/endpoints%5cisolate; do
	spell "$p"
done
# A raw '#': curl would cut the fragment off itself.
n=$((n + 1))
out=$(printf 'POST /public_api/v1/endpoints/isolate#x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n' |
    raw_request "$PROXY_PORT")
expect_match "raw '#': refused" "$(printf '%s' "$out" | head -n 1)" '^HTTP/1\.1 40[03] '
wait_num 10 -ge $n audit_count
expect_eq "no bypass spelling reached the tenant" "$(mock_requests)" "$seen"

ndenied=$(grep -c '"error":"policy_denied"' "$T/audit.jsonl")
expect_eq "xdrproxy_policy_denied_total = the audit's denials" \
    "$(curl -sS --max-time 10 "$ADMIN/metrics" |
    sed -n 's/^xdrproxy_policy_denied_total{tenant="acme"} //p')" "$ndenied"

# A reload replaces the rules: now bob may POST incidents, alice may not.
write_config "listen = unix:$sock mode=0666
allow = user:$BOB   POST   /public_api/v1/incidents/*" "admin_listen = 127.0.0.1:0"
R_NEW=$(line "user:$BOB")
kill -HUP "$PROXY_PID"
wait_for 20 grep -q "reload: configuration 2 in force" "$PROXY_LOG" ||
    fail "reload did not take: $(tail -n 3 "$PROXY_LOG")"
allowed "after reload: bob POST incidents" \
    "$(VIA=unix as $BOB POST /public_api/v1/incidents/x)" "$R_NEW"
denied "after reload: alice POST incidents" \
    "$(VIA=unix as $ALICE POST /public_api/v1/incidents/x)" default
denied "after reload: root has no rule now" \
    "$(VIA=unix as root GET /public_api/v1/x)" default
# No rules at all: everything passes, and records carry no "rule".
write_config "listen = unix:$sock mode=0666" "admin_listen = 127.0.0.1:0"
kill -HUP "$PROXY_PID"
wait_for 20 grep -q "reload: configuration 3 in force" "$PROXY_LOG" ||
    fail "reload 3 did not take: $(tail -n 3 "$PROXY_LOG")"
expect_eq "no rules: alice POST isolate answered" \
    "$(VIA=unix as $ALICE POST /public_api/v1/endpoints/isolate)" 200
n=$((n + 1)); wait_num 10 -ge $n audit_count
expect_no_match "no rules: no \"rule\" in the record" "$(last_audit)" '"rule":'

# A bad rule in a reload: refused with FILE:LINE; the old rules stay.
write_config "allow = user:no-such-xdrp-user  *  *" "admin_listen = 127.0.0.1:0"
before=$(grep -c 'reload failed: ' "$PROXY_LOG")
more_failures() { [ "$(grep -c 'reload failed: ' "$PROXY_LOG")" -gt "$before" ]; }
kill -HUP "$PROXY_PID"
wait_for 20 more_failures ||
    fail "bad reload not reported"
expect_match "bad reload names FILE:LINE" "$(cat "$PROXY_LOG")" \
    "reload failed: $(line no-such-xdrp-user): allow: no user 'no-such-xdrp-user' on this system"
stop_proxy

# -t: unknown users and groups are errors, with FILE:LINE.
for bad in "allow = user:no-such-xdrp-user * *|allow: no user 'no-such-xdrp-user' on this system" \
    "deny = group:no-such-xdrp-group GET /x|deny: no group 'no-such-xdrp-group' on this system" \
    "allow = any FETCH /x|allow: unknown method 'FETCH'" \
    "allow = any GET public_api|allow: path 'public_api' must start with /" \
    "allow = someone GET /x|allow: unknown caller 'someone'" \
    "deny = any GET|deny: expected CALLER METHODS PATH"; do
	write_config "${bad%%|*}"
	out=$("$XDRPROXY" -t -c "$conf" 2>&1)
	rc=$?
	expect_eq "-t ${bad%%|*}: fails" "$rc" 1
	expect_match "-t ${bad%%|*}: FILE:LINE" "$out" \
	    "$(line "${bad%%|*}"): ${bad#*|}"
done
finish
