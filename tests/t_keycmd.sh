#!/bin/bash
# t_keycmd.sh: key_command, a program that prints the key. Signed calls
# with its key; every way it can fail, with the message a user sees and
# never its output; the timeout kills it whole; reload runs it again.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

NEW_KEY='N3wK3yAdv4nced0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQR'
STDERR_SECRET='S3cr3tOnStdErr_9f8e7d6c5b4a'

make_pki
printf '43 %s\n' "$NEW_KEY" > "$T/extra.keys"
start_mock --extra-keys "$T/extra.keys"

# key_script BODY...: $T/key.sh, a /bin/sh script with these lines.
key_script() {
	{
		echo '#!/bin/sh'
		printf '%s\n' "$@"
	} > "$T/key.sh.new"
	chmod 700 "$T/key.sh.new"
	mv "$T/key.sh.new" "$T/key.sh"
}

# kc_config [KEY-ID]: tenant acme with key_command = $T/key.sh (args).
kc_config() {
	write_config "key_command = $T/key.sh --field key  secret/xdr/acme" \
	    "key_command_timeout = 1s"
	sed -i -e '/^key_file   = /d' -e "s/^key_id .*/key_id = ${1:-$KEY_ID}/" \
	    "$T/xdrproxy.conf"
}

# check_t WHAT WANT-MESSAGE: xdrproxy -t fails with exactly this line.
check_t() {
	local out rc
	out=$("$XDRPROXY" -t -c "$T/xdrproxy.conf" 2>&1)
	rc=$?
	expect_eq "$1: -t exits 1" "$rc" 1
	expect_eq "$1: message" "$out" "$2"
}

kc_config
line=$(grep -n '^key_command ' "$T/xdrproxy.conf" | cut -d: -f1)
where="$T/xdrproxy.conf:$line: key_command $T/key.sh"

# 1. Failures, each with its message; the output is never quoted.
key_script "echo '$STDERR_SECRET' >&2" "echo '$STDERR_SECRET'x" 'exit 3'
check_t "non-zero exit" "$where: exited with status 3"
out=$("$XDRPROXY" -t -c "$T/xdrproxy.conf" 2>&1)
expect_no_match "neither stdout nor stderr of the command is shown" "$out" \
    "$STDERR_SECRET"

# Started with SIGCHLD ignored (inherited), the exit status still counts.
out=$(trap '' CHLD; "$XDRPROXY" -t -c "$T/xdrproxy.conf" 2>&1)
expect_eq "SIGCHLD ignored by the parent: the status is seen" "$out" \
    "$where: exited with status 3"

key_script 'exit 0'
check_t "empty output" "$where: printed nothing"
key_script 'echo'
check_t "an empty line" "$where: printed nothing"
key_script 'echo one' 'echo two'
check_t "two lines" "$where: printed more than one line"
key_script 'echo "has space"'
check_t "a space in the key" \
    "$where: printed a line that is not printable characters without spaces"
key_script 'head -c 5000 /dev/zero | tr "\0" a'
check_t "too much output" "$where: printed more than 4096 bytes"
key_script 'kill -TERM $$'
check_t "killed by a signal" "$where: killed by signal 15 (Terminated)"
rm -f "$T/key.sh"
check_t "missing program" "$where: cannot run: No such file or directory"
key_script 'echo x'
chmod 600 "$T/key.sh"
check_t "not executable" "$where: cannot run: Permission denied"

# The timeout: a command that sleeps (and a child of it holding stdout)
# is killed whole after key_command_timeout, and reaped.
key_script 'sleep 60 &' 'echo $! > '"$T"'/child.pid' \
    'echo $$ > '"$T"'/main.pid' 'exec sleep 61'
t0=$(date +%s%N)
check_t "timeout" "$where: killed after 1s (key_command_timeout)"
ms=$((($(date +%s%N) - t0) / 1000000))
if [ "$ms" -ge 900 ] && [ "$ms" -lt 5000 ]; then pass "-t failed after ${ms} ms"
else fail "-t took $ms ms with key_command_timeout = 1s"; fi
for p in main child; do
	pid=$(cat "$T/$p.pid")
	if wait_for 5 sh -c "! kill -0 $pid 2>/dev/null"; then
		pass "the command's $p process was killed"
	else
		fail "the command's $p process $pid is still running"
		kill -KILL "$pid"
	fi
done

# The program runs with stdin /dev/null, no descriptor of ours, and the
# arguments as written, split on blanks without a shell.
key_script 'printf "%s|" "$@" > '"$T"'/args' \
    'ls /proc/$$/fd > '"$T"'/fds' \
    'readlink /proc/$$/fd/0 /proc/$$/fd/2 > '"$T"'/std' \
    'python3 -c "import os, sys; open(sys.argv[1], \"w\").write(str(os.get_blocking(1)))" '"$T"'/blocking' \
    "echo '$API_KEY'"
out=$("$XDRPROXY" -t -c "$T/xdrproxy.conf" 2>&1)
expect_eq "-t passes with a working command" "$?" 0
expect_eq "arguments split on blanks" "$(cat "$T/args")" \
    "--field|key|secret/xdr/acme|"
expect_eq "only stdin, stdout, stderr (and the shell's own)" \
    "$(grep -cvxE '[0-2]|1[0-9]|255' "$T/fds")" 0
expect_eq "its stdout is a blocking pipe" "$(cat "$T/blocking")" True
expect_eq "stdin and stderr are /dev/null" "$(tr '\n' ' ' < "$T/std")" \
    "/dev/null /dev/null "

# 2. Calls signed with the key it prints.
key_script "echo '$API_KEY'"
start_proxy
code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST -d '{}' \
    "$URL/public_api/v1/incidents/get_incidents/")
expect_eq "call with the command's key: 200" "$code" 200
rec=$(grep '"event":"request"' "$MOCK_LOG" | tail -n 1)
expect_eq "the tenant accepted the signature" "$(json_str "$rec" auth)" ok

# 3. Reload runs it again: a new key (and key ID) is used.
kc_config 43
key_script "printf '%s\\r\\n' '$NEW_KEY'"
kill -HUP "$PROXY_PID"
if wait_for 20 grep -q 'reload: configuration 2 in force' "$PROXY_LOG"; then
	pass "reload with the new key"
else
	fail "no reload: $(tail -n 3 "$PROXY_LOG")"
fi
code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST -d '{}' \
    "$URL/public_api/v1/incidents/get_incidents/")
expect_eq "call after the reload: 200" "$code" 200
rec=$(grep '"event":"request"' "$MOCK_LOG" | tail -n 1)
expect_eq "signed with the new key's ID" "$(json_str "$rec" auth_id)" 43
expect_eq "the tenant accepted the new signature" "$(json_str "$rec" auth)" ok

# 4. A reload whose command fails keeps the key in force, and says why.
key_script "echo '$STDERR_SECRET' >&2" 'exit 7'
kill -HUP "$PROXY_PID"
if wait_for 20 grep -q 'reload failed: ' "$PROXY_LOG"; then
	pass "the failed reload is logged"
else
	fail "no 'reload failed': $(tail -n 3 "$PROXY_LOG")"
fi
expect_match "the log says why" "$(grep 'reload failed: ' "$PROXY_LOG")" \
    "reload failed: $where: exited with status 7; configuration 2 stays in force"
code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST -d '{}' \
    "$URL/public_api/v1/incidents/get_incidents/")
expect_eq "calls still work after the failed reload" "$code" 200
rec=$(grep '"event":"request"' "$MOCK_LOG" | tail -n 1)
expect_eq "still signed with the key in force" "$(json_str "$rec" auth_id)" 43
expect_eq "the tenant accepted it" "$(json_str "$rec" auth)" ok
if grep -qF "$STDERR_SECRET" "$PROXY_LOG" "$T/audit.jsonl"; then
	fail "the command's stderr reached the log or the audit log"
else
	pass "the command's stderr is nowhere in the logs"
fi
expect_eq "no zombie children of xdrproxy" \
    "$(ps -o stat= --ppid "$PROXY_PID" | grep -c Z)" 0

stop_proxy
finish
