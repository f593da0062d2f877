#!/bin/bash
# t_syslog.sh: audit_syslog sinks over TCP (octet counting), UDP and a unix
# datagram socket, against listeners that parse the framing strictly: RFC
# 5424 header fields, MSG = the audit file's line; a TCP sink that goes away
# gets its queued records after it comes back; a sink that stays down
# overflows its queue (drops counted and logged) while the proxy serves on.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

command -v python3 > /dev/null || skip_all "python3 missing"
LISTEN=${top_srcdir:-$(dirname "$0")/..}/tests/syslog_listen.py
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
listen() {	# MODE ADDR OUT: sets LPID
	python3 "$LISTEN" "$1" "$2" "$3" & LPID=$!; PIDS+=($LPID)
}
admin_port() {
	sed -n 's/.*admin: listening on 127\.0\.0\.1:\([0-9]*\) (.*/\1/p' "$PROXY_LOG" | head -n 1
}
# Audit messages (MSGID audit) only: checkpoints come every second too.
lines() { [ -f "$1" ] && grep -c '^<[0-9]*>1 [^ ]* [^ ]* xdrproxy [0-9]* audit - ' "$1" || echo 0; }
nth() { grep '^<[0-9]*>1 [^ ]* [^ ]* xdrproxy [0-9]* audit - ' "$2" | sed -n "${1}p"; }
is() { test "$("$@" 2>/dev/null)" = "$WANT"; }

make_pki
start_mock
tport=$(free_port); uport=$(free_port); dead=$(free_port)
listen tcp "$tport" "$T/tcp.out"; TPID=$LPID
listen udp "$uport" "$T/udp.out"
listen unix "$T/log.sock" "$T/unix.out"
wait_for 10 test -S "$T/log.sock"
wait_for 10 python3 -c "import socket; socket.create_connection(('127.0.0.1', $tport)).close()"
# The probe above was a connection without frames: nothing was written.
write_config "" "admin_listen = 127.0.0.1:0
audit_syslog = tcp:127.0.0.1:$tport
audit_syslog = udp:127.0.0.1:$uport
audit_syslog = unix:$T/log.sock
audit_syslog = tcp:127.0.0.1:$dead
audit_syslog_queue = 4
audit_syslog_facility = local3
audit_checkpoint_interval = 1s"
start_proxy
ADMIN=http://127.0.0.1:$(admin_port)

px -o /dev/null -X POST -d '{}' /public_api/v1/x/one/
px -o /dev/null -X POST -d '{}' '/public_api/v1/x/two/?a="b"'
wait_num 10 -ge 2 audit_count
for t in tcp udp unix; do
	wait_num 10 -ge 4 lines "$T/$t.out"
	expect_eq "$t: one message per record (request, response)" "$(lines "$T/$t.out")" 4
	# <local3*8+info>1 TIMESTAMP HOSTNAME APP PROCID MSGID - MSG
	hdr='^<158>1 [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z '
	hdr+="$(hostname) xdrproxy $PROXY_PID audit - "
	for n in 1 2 3 4; do
		msg=$(nth "$n" "$T/$t.out")
		expect_match "$t: record $n's RFC 5424 header" "$msg" "$hdr"
		expect_eq "$t: record $n's MSG is the audit line" \
		    "$(printf '%s' "$msg" | sed -E 's/^([^ ]* ){7}//')" \
		    "$(sed -n "${n}p" "$T/audit.jsonl")"
	done
done
metrics() { curl -sS --max-time 5 "$ADMIN/metrics"; }
up() { metrics | grep -F "xdrproxy_audit_syslog_up{sink=\"$1\"} " | sed 's/.* //'; }
WANT=1 wait_for 10 is up "tcp:127.0.0.1:$tport"
expect_eq "up metric for the unix sink" "$(up "unix:$T/log.sock")" 1
expect_eq "down sink's up metric" "$(up "tcp:127.0.0.1:$dead")" 0

# The TCP receiver goes away: records queue, the proxy serves on.
kill "$TPID"; wait "$TPID" 2> /dev/null
WANT=0 wait_for 10 is up "tcp:127.0.0.1:$tport"
expect_match "lost connection logged" "$(cat "$PROXY_LOG")" \
    "audit_syslog tcp:127\\.0\\.0\\.1:$tport: connection lost"
code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST -d '{}' "$URL/public_api/v1/x/three/")
expect_eq "proxy serves while a sink is down" "$code" 200
px -o /dev/null -X POST -d '{}' /public_api/v1/x/four/
wait_num 10 -ge 4 audit_count
listen tcp "$tport" "$T/tcp.out"
wait_num 20 -ge 8 lines "$T/tcp.out"
expect_eq "queued records delivered after the reconnect" "$(lines "$T/tcp.out")" 8
for n in 5 6 7 8; do
	expect_eq "tcp: record $n after the outage" \
	    "$(nth "$n" "$T/tcp.out" | sed -E 's/^([^ ]* ){7}//')" \
	    "$(sed -n "${n}p" "$T/audit.jsonl")"
done
expect_match "reconnect logged" "$(cat "$PROXY_LOG")" \
    "audit_syslog tcp:127\\.0\\.0\\.1:$tport: connected"

# The sink that never came up: 4 queued, the rest dropped, counted, logged
# (10 records, and the checkpoints).
px -o /dev/null /public_api/v1/x/five/
wait_num 10 -ge 5 audit_count
dropped() { metrics | sed -n "s/^xdrproxy_audit_syslog_dropped_total{sink=\"tcp:127.0.0.1:$dead\"} //p"; }
wait_num 10 -ge 6 dropped
expect_match "dropped records counted" "$(dropped)" '^([6-9]|[1-9][0-9]+)$'
expect_eq "queue depth of the dead sink" \
    "$(metrics | sed -n "s/^xdrproxy_audit_syslog_queue{sink=\"tcp:127.0.0.1:$dead\"} //p")" 4
wait_for 10 grep -q "audit_syslog tcp:127.0.0.1:$dead: queue full, dropping records" "$PROXY_LOG"
pass "queue full logged"
expect_eq "queue full logged once per outage" \
    "$(grep -c "audit_syslog tcp:127.0.0.1:$dead: queue full" "$PROXY_LOG")" 1

# SIGHUP to syslog only (audit_log = off): the kept TCP sink goes on, the
# file gets nothing more.
wait_num 10 -ge 10 lines "$T/tcp.out"
cp "$T/xdrproxy.conf" "$T/running.conf"
write_config "" "admin_listen = 127.0.0.1:0
audit_syslog = tcp:127.0.0.1:$tport
audit_checkpoint_interval = 1s"
sed -i "s|^audit_log = .*|audit_log = off|" "$T/xdrproxy.conf"
kill -HUP "$PROXY_PID"
wait_for 10 grep -q 'reload: configuration 2 in force' "$PROXY_LOG"
px -o /dev/null /public_api/v1/x/six/
wait_num 10 -ge 12 lines "$T/tcp.out"
expect_match "audit_log = off: the record went to syslog" \
    "$(nth 12 "$T/tcp.out")" '"type":"response",.*"path":"/public_api/v1/x/six/"'
# Checkpoints reach the sink: seq S and the hash of record S.
wait_for 10 grep -q ' checkpoint - {"type":"checkpoint","seq":12,' "$T/tcp.out"
expect_eq "a checkpoint names the last record's hash" "$(python3 - "$T/tcp.out" <<'PYEOF2'
import hashlib, json, re, sys
recs, ck = {}, None
for line in open(sys.argv[1], encoding="utf-8"):
    m = re.match(r"^<\d+>1 (?:\S+ ){4}(audit|checkpoint) - (.*)$", line.rstrip("\n"))
    if not m:
        continue
    r = json.loads(m.group(2))
    if m.group(1) == "audit":
        recs[r["seq"]] = m.group(2).encode()
    elif r["seq"] == 12:
        ck = r
print("ok" if ck and hashlib.sha256(recs[12]).hexdigest() == ck["hash"] else "bad %r" % ck)
PYEOF2
)" ok
expect_eq "audit_log = off: nothing more in the file" "$(audit_count)" 5
expect_eq "the removed sink's metrics are gone" \
    "$(metrics | grep -c "sink=\"tcp:127.0.0.1:$dead\"")" 0

# A real rsyslogd (Debian's rsyslog) on loopback, with a config of its own.
RSYSLOGD=$(command -v rsyslogd || echo /usr/sbin/rsyslogd)
if [ -x "$RSYSLOGD" ]; then
	rport=$(free_port)
	mkdir -p "$T/rsyslog"
	cat > "$T/rsyslog.conf" <<EOC
global(workDirectory="$T/rsyslog")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="$rport")
template(name="raw" type="string" string="%APP-NAME% %PROCID% %MSGID% %msg%\\n")
action(type="omfile" file="$T/rsyslog.out" template="raw")
EOC
	"$RSYSLOGD" -n -f "$T/rsyslog.conf" -i "$T/rsyslog.pid" 2> "$T/rsyslog.err" &
	PIDS+=($!)
	wait_for 10 python3 -c "import socket; socket.create_connection(('127.0.0.1', $rport)).close()"
	write_config "" "audit_syslog = tcp:127.0.0.1:$rport"
	sed -i "s|^audit_log = .*|audit_log = off|" "$T/xdrproxy.conf"
	kill -HUP "$PROXY_PID"
	wait_for 10 grep -q 'reload: configuration 3 in force' "$PROXY_LOG"
	px -o /dev/null /public_api/v1/x/rsyslog/
	wait_for 10 grep -q '/public_api/v1/x/rsyslog/' "$T/rsyslog.out"
	expect_match "rsyslogd got the record, RFC 5424 fields parsed" \
	    "$(grep rsyslog/ "$T/rsyslog.out")" \
	    "^xdrproxy $PROXY_PID audit \\{\"type\":\"request\",\"seq\":[0-9]+,.*\"path\":\"/public_api/v1/x/rsyslog/\""
else
	echo "# rsyslogd not installed: the real-rsyslog check is skipped"
fi

# Syslog only (audit_log = off), its one sink down, audit_fail = closed
# (the default): the record has nowhere to go, so 503, never forwarded.
mock_requests() { grep -c '"event":"request"' "$MOCK_LOG"; }
reloads() { grep -c 'reload: configuration [0-9]* in force' "$PROXY_LOG"; }
dead2=$(free_port)
write_config "" "audit_syslog = tcp:127.0.0.1:$dead2"
sed -i "s|^audit_log = .*|audit_log = off|" "$T/xdrproxy.conf"
k=$(reloads)
kill -HUP "$PROXY_PID"
wait_num 10 -gt "$k" reloads
m0=$(mock_requests)
code=$(curl -sS -o "$T/body" -w '%{http_code}' -X POST -d '{}' "$URL/public_api/v1/x/nowhere/")
expect_eq "only sink down: 503" "$code" 503
expect_match "only sink down: audit_unavailable" "$(cat "$T/body")" '"error":"audit_unavailable"'
expect_eq "only sink down: not forwarded" "$(mock_requests)" "$m0"
# The sink comes up: served again, its record delivered.
listen tcp "$dead2" "$T/dead2.out"
wait_for 10 python3 -c "import socket; socket.create_connection(('127.0.0.1', $dead2)).close()"
ok=0
for _ in $(seq 1 100); do
	code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST -d '{}' "$URL/public_api/v1/x/back/")
	[ "$code" = 200 ] && { ok=1; break; }
	sleep 0.1
done
expect_eq "sink back: served again" "$ok" 1
if wait_for 10 grep -q '"type":"response".*"path":"/public_api/v1/x/back/"' "$T/dead2.out"; then
	pass "sink back: the record reached it"
else
	fail "sink back: the record did not reach it"
fi

# Config errors: FILE:LINE.
cfgerr() {	# VALUE-LINES EXPECTED
	write_config "" "$1"
	out=$("$XDRPROXY" -t -c "$T/xdrproxy.conf" 2>&1)
	expect_match "config error: $1" "$out" "$2"
}
cfgerr "audit_syslog = tls:1.2.3.4:6514" "xdrproxy.conf:3: audit_syslog 'tls:1.2.3.4:6514': expected unix:"
cfgerr "audit_syslog = tcp:127.0.0.1:0" "xdrproxy.conf:3: .*bad port"
cfgerr "audit_syslog = udp:localhost:99999" "xdrproxy.conf:3: .*bad port"
cfgerr "audit_syslog = unix:dev/log" "xdrproxy.conf:3: .*absolute path"
cfgerr "audit_syslog = tcp:::1:514" "xdrproxy.conf:3: .*brackets"
cfgerr "audit_syslog = tcp:[::1]:514
audit_syslog = tcp:[::1]:514" "xdrproxy.conf:4: .*given twice"
cfgerr "audit_syslog_facility = nope" "xdrproxy.conf:3: audit_syslog_facility: expected"
write_config "" ""; sed -i "s|^audit_log = .*|audit_log = off|" "$T/xdrproxy.conf"
out=$("$XDRPROXY" -t -c "$T/xdrproxy.conf" 2>&1)
expect_match "audit_log = off alone refused" "$out" "xdrproxy.conf:2: audit_log = off needs"

stop_proxy
finish
