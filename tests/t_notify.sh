#!/bin/bash
# t_notify.sh: systemd's Type=notify readiness without libsystemd: READY=1
# once listening and STOPPING=1 on the drain, as one datagram each to
# $NOTIFY_SOCKET, a path or an abstract name ('@'); a NOTIFY_SOCKET that
# is not a socket is a warning, and the proxy serves on.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

command -v socat >/dev/null ||
    skip_all "socat not installed (Debian package socat; tests/deps.sh installs it)"
make_pki
start_mock
write_config

# listen ADDRESS: socat receives datagrams on ADDRESS into $T/notify.out.
listen() {
	: > "$T/notify.out"
	socat -u "$1" "OPEN:$T/notify.out,append" 2> "$T/socat.err" &
	SOCAT_PID=$!
	PIDS+=($SOCAT_PID)
}

for kind in path abstract; do
	if [ "$kind" = path ]; then
		rm -f "$T/notify.sock"
		listen "UNIX-RECV:$T/notify.sock"
		wait_for 5 test -S "$T/notify.sock" || fail "$kind: socat did not start"
		export NOTIFY_SOCKET=$T/notify.sock
	else
		name=xdrproxy-test-$$-$RANDOM
		listen "ABSTRACT-RECV:$name"
		wait_for 5 grep -q "@$name" /proc/net/unix || fail "$kind: socat did not start"
		export NOTIFY_SOCKET=@$name
	fi
	start_proxy
	if wait_for 5 grep -q '^READY=1$' "$T/notify.out"; then
		pass "$kind: READY=1 once listening"
	else
		fail "$kind: no READY=1: '$(cat "$T/notify.out")'"
	fi
	code=$(px -o /dev/null -w '%{http_code}' -X POST -d '{}' /public_api/v1/x/)
	expect_eq "$kind: serving when READY=1 was sent" "$code" 200
	expect_no_match "$kind: no STOPPING=1 before the stop" \
	    "$(cat "$T/notify.out")" 'STOPPING=1'
	stop_proxy
	if wait_for 5 grep -q '^STOPPING=1$' "$T/notify.out"; then
		pass "$kind: STOPPING=1 on SIGTERM"
	else
		fail "$kind: no STOPPING=1: '$(cat "$T/notify.out")'"
	fi
	kill "$SOCAT_PID" 2>/dev/null
	wait "$SOCAT_PID" 2>/dev/null
done

# Nothing listening there: a warning, and the proxy serves all the same.
export NOTIFY_SOCKET=$T/nobody.sock
start_proxy
expect_match "no listener: warned" "$(cat "$PROXY_LOG")" "NOTIFY_SOCKET $T/nobody.sock: "
code=$(px -o /dev/null -w '%{http_code}' -X POST -d '{}' /public_api/v1/x/)
expect_eq "no listener: serving" "$code" 200
stop_proxy
unset NOTIFY_SOCKET
finish
