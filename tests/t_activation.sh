#!/bin/bash
# t_activation.sh: systemd socket activation. Listening sockets passed as
# descriptors 3.. with LISTEN_FDS/LISTEN_PID are matched to listen lines by
# address and served (they are not reopened); one that no line names is
# closed with a warning; LISTEN_PID of another process is ignored. A
# launcher in Python does what systemd does: bind, listen, set the
# variables, exec (so LISTEN_PID is the proxy's own pid). It waits for
# PORTFILE.go, so the test can write the configuration for the ports.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

PY=$(command -v python3) || skip_all "python3 not installed (tests/deps.sh installs it)"
make_pki
start_mock

# activate PORTFILE PIDMODE ADDR...: run xdrproxy with sockets for ADDR
# (host:port with port 0 for any, or unix:PATH) as descriptors 3...
activate() {
	local portfile=$1 pidmode=$2
	shift 2
	"$PY" - "$portfile" "$pidmode" "$XDRPROXY" "$T/xdrproxy.conf" "$@" <<'EOF' 2> "$PROXY_LOG" &
import os, socket, sys
portfile, pidmode, prog, conf = sys.argv[1:5]
ports, keep = [], []
for n, addr in enumerate(sys.argv[5:]):
    if addr.startswith("unix:"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(addr[5:])
        ports.append("0")
    else:
        host, port = addr.rsplit(":", 1)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((host, int(port)))
        ports.append(str(s.getsockname()[1]))
    s.listen(128)
    keep.append(s)
    os.dup2(s.fileno(), 3 + n)
    os.set_inheritable(3 + n, True)
with open(portfile + ".tmp", "w") as f:
    f.write(" ".join(ports) + "\n")
os.rename(portfile + ".tmp", portfile)
# The test writes the configuration for these ports, then says go.
import time
while not os.path.exists(portfile + ".go"):
    time.sleep(0.02)
os.environ["LISTEN_FDS"] = str(len(sys.argv) - 5)
os.environ["LISTEN_PID"] = str(os.getpid() if pidmode == "self" else 1)
os.execv(prog, [prog, "-c", conf])
EOF
	PROXY_PID=$!
	PIDS+=($PROXY_PID)
}

PROXY_LOG=$T/proxy.log
# 1. Two sockets: a TCP one and a unix one, both in the configuration.
: > "$PROXY_LOG"
activate "$T/ports" self 127.0.0.1:0 "unix:$T/act.sock"
wait_for 10 test -s "$T/ports" || { echo "launcher failed:"; cat "$PROXY_LOG"; exit 99; }
port=$(cut -d' ' -f1 "$T/ports")
write_config "listen = unix:$T/act.sock"
sed -i "s|^listen     = 127.0.0.1:0|listen     = 127.0.0.1:$port|" "$T/xdrproxy.conf"
touch "$T/ports.go"
wait_for 20 grep -q ': xdrproxy [0-9.]* running' "$PROXY_LOG" ||
    { echo "xdrproxy did not start:"; cat "$PROXY_LOG"; exit 99; }
expect_match "the TCP socket came from systemd" "$(cat "$PROXY_LOG")" \
    "listening on 127.0.0.1:$port \\(from systemd\\)"
expect_match "the unix socket came from systemd" "$(cat "$PROXY_LOG")" \
    "listening on unix:$T/act.sock \\(from systemd\\)"
URL=http://127.0.0.1:$port
expect_eq "served on the passed TCP socket" \
    "$(px -o /dev/null -w '%{http_code}' -X POST -d '{}' /public_api/v1/x/)" 200
code=$(curl -sS -o /dev/null -w '%{http_code}' --unix-socket "$T/act.sock" \
    -X POST -d '{}' http://localhost/public_api/v1/x/)
expect_eq "served on the passed unix socket" "$code" 200
expect_match "signed on the way" "$(tail -n 1 "$MOCK_LOG")" '"auth":"ok"'
# A reload keeps them, not reopened.
kill -HUP "$PROXY_PID"
wait_for 20 grep -q 'reload: configuration 2 in force' "$PROXY_LOG" || fail "no reload"
expect_eq "after a reload: still served" \
    "$(px -o /dev/null -w '%{http_code}' -X POST -d '{}' /public_api/v1/x/)" 200
expect_eq "after a reload: not reopened" "$(grep -c "listening on 127.0.0.1:$port" "$PROXY_LOG")" 1
stop_proxy
expect_eq "the passed unix socket is systemd's: not removed" \
    "$(test -S "$T/act.sock" && echo kept)" kept

# 2. A socket no listen line names: closed with a warning; the rest serves.
rm -f "$T/ports" "$T/ports.go" "$T/act.sock"
write_config
: > "$PROXY_LOG"
activate "$T/ports" self 127.0.0.1:0
touch "$T/ports.go"
wait_for 20 grep -q ': xdrproxy [0-9.]* running' "$PROXY_LOG" ||
    { echo "xdrproxy did not start:"; cat "$PROXY_LOG"; exit 99; }
extra=$(cut -d' ' -f1 "$T/ports")
expect_match "an unnamed socket: warned" "$(cat "$PROXY_LOG")" \
    "socket activation: descriptor 3 \\(127.0.0.1:$extra\\) matches no listen line: closed"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$extra/")
expect_eq "an unnamed socket: closed" "$code" 000
stop_proxy

# 3. LISTEN_PID of another process: not ours, ignored.
rm -f "$T/ports" "$T/ports.go"
: > "$PROXY_LOG"
activate "$T/ports" other 127.0.0.1:0
touch "$T/ports.go"
wait_for 20 grep -q ': xdrproxy [0-9.]* running' "$PROXY_LOG" ||
    { echo "xdrproxy did not start:"; cat "$PROXY_LOG"; exit 99; }
expect_no_match "another process's sockets: not taken" "$(cat "$PROXY_LOG")" 'socket activation|from systemd'
stop_proxy
finish
