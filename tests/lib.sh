# tests/lib.sh: shared by the integration tests (sourced, bash). Starts the
# TLS mock tenant and xdrproxy on ports chosen at run time, waits for them by
# polling, talks to them with real curl and checks what a user would see.
# A test calls pass/fail/skip helpers and ends with `finish`.

set -u

: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
XDRPROXY="$top_builddir/src/xdrproxy"
MOCK="$top_builddir/tests/mocktenant"
TEST_NAME=$(basename "$0" .sh)
T=$(mktemp -d "${TMPDIR:-/tmp}/xdrproxy-$TEST_NAME.XXXXXX")
FQDN=acme.xdr.test
API_HOST=api-$FQDN
KEY_ID=42
API_KEY='Tk3yAdv4nced0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV'
FAILURES=0
CHECKS=0
PIDS=()

# stop_all: SIGTERM everything this test started and wait for it.
stop_all() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null
	done
	PIDS=()
}

cleanup() {
	stop_all
	if [ "$FAILURES" -ne 0 ] || [ -n "${KEEP_TMP:-}" ]; then
		echo "# files kept in $T"
	else
		rm -rf "$T"
	fi
}
trap cleanup EXIT

# ok/not ok lines, TAP-like, for the test's log.
pass() { CHECKS=$((CHECKS + 1)); echo "ok $CHECKS - $*"; }
fail() {
	CHECKS=$((CHECKS + 1))
	FAILURES=$((FAILURES + 1))
	echo "not ok $CHECKS - $*"
}
skip_all() { echo "SKIP: $*"; trap - EXIT; rm -rf "$T"; exit 77; }
finish() {
	local f
	# Stop what is still running; sanitizer reports fail the test.
	stop_all
	for f in "$T"/*.err "$T"/proxy*.log; do
		[ -f "$f" ] || continue
		if ! sanitizer_clean "$f"; then
			fail "sanitizer report in $(basename "$f"):"
			sed 's/^/# /' "$f"
		fi
	done
	echo "# $TEST_NAME: $CHECKS checks, $FAILURES failed"
	[ "$FAILURES" -eq 0 ] && exit 0
	exit 1
}

# expect_eq WHAT GOT WANT
expect_eq() {
	if [ "$2" = "$3" ]; then pass "$1"
	else fail "$1: got '$2', want '$3'"; fi
}
# expect_match WHAT STRING EXTENDED-REGEX
expect_match() {
	if printf '%s' "$2" | grep -Eq -- "$3"; then pass "$1"
	else fail "$1: '$2' does not match /$3/"; fi
}
# expect_no_match WHAT STRING EXTENDED-REGEX
expect_no_match() {
	if printf '%s' "$2" | grep -Eq -- "$3"; then fail "$1: '$2' matches /$3/"
	else pass "$1"; fi
}

# expect_no_secret WHAT PID FILE... -- SECRET...: no SECRET appears in
# the command line or environment of PID (and of each of its threads;
# PID "-" for none) nor in any FILE. NULs are read as newlines; a file
# that cannot be read fails, rather than passing for want of bytes.
expect_no_secret() {
	local what=$1 pid=$2 f found
	local -a files=() pats=()
	shift 2
	while [ $# -gt 0 ] && [ "$1" != -- ]; do files+=("$1"); shift; done
	[ $# -gt 0 ] && shift
	for f in "$@"; do pats+=(-e "$f"); done
	if [ "$pid" != - ]; then
		files+=("/proc/$pid/cmdline" "/proc/$pid/environ")
		for f in /proc/"$pid"/task/*/cmdline; do files+=("$f"); done
	fi
	for f in "${files[@]}"; do
		if ! found=$(tr '\0' '\n' < "$f"); then
			fail "$what: cannot read $f"
		elif printf '%s\n' "$found" | grep -qaF "${pats[@]}"; then
			fail "$what: a secret in $f"
		else
			pass "$what: no secret in $f"
		fi
	done
}

# wait_for SECONDS CMD...: poll CMD every 50 ms until it succeeds.
wait_for() {
	local deadline=$(( $(date +%s) + $1 ))
	shift
	until "$@"; do
		[ "$(date +%s)" -ge "$deadline" ] && return 1
		sleep 0.05
	done
	return 0
}

# wait_num SECONDS OP VALUE CMD...: poll until CMD's output compares OP
# (-eq, -ge, -gt...) to VALUE. CMD runs at each poll: `wait_for N test
# "$(cmd)" -ge V` would expand $(cmd) once and never see it change.
wait_num() {
	local secs=$1
	shift
	wait_for "$secs" num_is "$@"
}
num_is() {
	local op=$1 want=$2 got
	shift 2
	got=$("$@")
	[ -n "$got" ] && [ "$got" "$op" "$want" ]
}

# A throwaway CA with a server certificate for $API_HOST, a second CA that
# signed nothing we serve, and a certificate for the wrong name.
make_pki() {
	local d=$T/pki
	mkdir -p "$d"
	(
		cd "$d" || exit 1
		for ca in ca otherca; do
			openssl ecparam -name prime256v1 -genkey -noout \
			    -out $ca.key
			openssl req -x509 -new -key $ca.key -days 2 \
			    -subj "/CN=xdrproxy test $ca" -out $ca.pem
		done
		for name in "$API_HOST" wrong.example; do
			openssl ecparam -name prime256v1 -genkey -noout \
			    -out "$name.key"
			openssl req -new -key "$name.key" -subj "/CN=$name" \
			    -out "$name.csr"
			printf 'subjectAltName=DNS:%s\n' "$name" > "$name.ext"
			openssl x509 -req -in "$name.csr" -CA ca.pem \
			    -CAkey ca.key -CAcreateserial -days 2 \
			    -extfile "$name.ext" -out "$name.pem"
		done
	) > "$d/openssl.log" 2>&1 || { echo "openssl failed:"; cat "$d/openssl.log"; exit 99; }
	CA=$d/ca.pem
	OTHER_CA=$d/otherca.pem
	printf '%s\n' "$API_KEY" > "$T/api.key"
	chmod 600 "$T/api.key"
}

# start_mock [NAME] [mocktenant options...]: sets MOCK_PORT, MOCK_LOG.
start_mock() {
	local name=mock cert=$T/pki/$API_HOST
	if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then name=$1; shift; fi
	[ -n "${MOCK_CERT:-}" ] && cert=$MOCK_CERT
	mkdir -p "$T/files"
	rm -f "$T/$name.port"
	"$MOCK" --listen 127.0.0.1:0 --cert "$cert.pem" --key "$cert.key" \
	    --key-id "$KEY_ID" --key-file "$T/api.key" \
	    --port-file "$T/$name.port" --log "$T/$name.jsonl" \
	    --files "$T/files" "$@" 2> "$T/$name.err" &
	PIDS+=($!)
	MOCK_PID=$!
	if ! wait_for 20 test -s "$T/$name.port"; then
		echo "mock tenant did not start:"; cat "$T/$name.err"; exit 99
	fi
	MOCK_PORT=$(cat "$T/$name.port")
	MOCK_LOG=$T/$name.jsonl
	touch "$MOCK_LOG"
}

# write_config [EXTRA-TENANT-LINES] [EXTRA-PROXY-LINES]: $T/xdrproxy.conf
# for tenant acme in front of the mock. The governor is off unless a test
# sets GOVERNOR (the tenant's governor lines, last in its section; "" for
# the defaults): tests of other parts send what they send, when they send
# it, and see every answer.
write_config() {
	cat > "$T/xdrproxy.conf" <<EOF
[proxy]
audit_log = $T/audit.jsonl
${2:-}

[tenant acme]
listen     = 127.0.0.1:0
fqdn       = $FQDN
key_id     = $KEY_ID
key_file   = $T/api.key
ca_file    = ${PROXY_CA:-$CA}
connect_to = 127.0.0.1:${MOCK_PORT:-1}
${1:-}
${GOVERNOR-rate_limit = 0
retry_max = 0
xql_max_running = 0
limit = /* 0}
EOF
}

# start_proxy [CONFIG]: runs xdrproxy (with $PROXY_ARGS), waits for its
# listener, sets PROXY_PORT (first TCP listener), PROXY_PID, PROXY_LOG.
start_proxy() {
	local conf=${1:-$T/xdrproxy.conf}
	PROXY_LOG=$T/proxy.log
	: > "$PROXY_LOG"
	# shellcheck disable=SC2086
	"$XDRPROXY" ${PROXY_ARGS:-} -c "$conf" 2> "$PROXY_LOG" &
	PROXY_PID=$!
	PIDS+=($PROXY_PID)
	if ! wait_for 20 grep -q ': xdrproxy [0-9.]* running' "$PROXY_LOG"; then
		echo "xdrproxy did not start:"; cat "$PROXY_LOG"; exit 99
	fi
	PROXY_PORT=$(sed -n 's/.*listening on [^ ]*:\([0-9][0-9]*\)$/\1/p' \
	    "$PROXY_LOG" | head -n 1)
	URL=http://127.0.0.1:$PROXY_PORT
}

# sanitizer_clean FILE: no AddressSanitizer/UBSan/LeakSanitizer report.
sanitizer_clean() {
	! grep -Eq 'ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY: .*Sanitizer' "$1"
}

# stop_proxy: SIGTERM, which must exit 0 with no sanitizer report.
stop_proxy() {
	local rc
	kill -TERM "$PROXY_PID"
	wait "$PROXY_PID"
	rc=$?
	expect_eq "xdrproxy exits 0 on SIGTERM" "$rc" 0
	if sanitizer_clean "$PROXY_LOG"; then
		pass "no sanitizer report from xdrproxy"
	else
		fail "sanitizer report from xdrproxy:"
		sed 's/^/# /' "$PROXY_LOG"
	fi
}

# px [curl options...] PATH: curl to the proxy; prints the body.
px() {
	local path=${*: -1}
	curl -sS --max-time 60 "${@:1:$#-1}" "$URL$path"
}

# mock_max_in_window FILE MS [SKIP_MS [FROM_MS [TO_MS]]]: the most requests the
# mock logged in FILE within any MS ms, counting only those received at
# FROM_MS..TO_MS (epoch ms; default: all) and not in the first SKIP_MS ms
# of those.
mock_max_in_window() {
	python3 - "$1" "$2" "${3:-0}" "${4:-0}" "${5:-0}" <<'EOF'
import json, sys
w, skip, lo, hi = (int(a) for a in sys.argv[2:6])
at = sorted(json.loads(l)["at"] for l in open(sys.argv[1])
            if '"event":"request"' in l)
at = [a for a in at if a >= lo and (hi == 0 or a < hi)]
at = [a for a in at if a >= at[0] + skip] if at else []
best, j = 0, 0
for i in range(len(at)):
    while at[i] - at[j] >= w:
        j += 1
    best = max(best, i - j + 1)
print(best)
EOF
}
# mock_span_ms FILE: ms from the first request the mock logged to the last.
mock_span_ms() {
	python3 -c 'import json, sys
a = [json.loads(l)["at"] for l in open(sys.argv[1]) if "\"event\":\"request\"" in l]
print(max(a) - min(a) if a else 0)' "$1"
}

# mock_requests: number of requests the mock tenant received.
mock_requests() { grep -c '"event":"request"' "$MOCK_LOG"; }

# audit_responses [FILE]: the response records (one per request that
# ended), in order; request records (written before forwarding) left out.
audit_responses() {
	grep '^{"type":"response",' "${1:-$T/audit.jsonl}" 2>/dev/null || :
}

# AUDIT_RESP: ERE for a response record's chain fields, up to "ts".
AUDIT_RESP='^\{"type":"response","seq":[1-9][0-9]*,"prev":"[0-9a-f]{64}",("chain":"start",)?'

# audit_grep ARGS...: grep the response records.
audit_grep() { audit_responses | grep "$@"; }

# last_audit: the last response record.
last_audit() { audit_responses | tail -n 1; }

# audit_count: number of response records (requests that ended).
audit_count() { audit_responses | wc -l; }

# json_str JSON KEY: the string value of KEY in a flat JSON object line.
json_str() { printf '%s' "$1" | sed -n "s/.*\"$2\":\"\\([^\"]*\\)\".*/\\1/p"; }
# json_num JSON KEY: the number (or null) value of KEY.
json_num() { printf '%s' "$1" | sed -n "s/.*\"$2\":\\([0-9.-]*\\|null\\)[,}].*/\\1/p"; }

# expect_proxy_error WHAT STATUS CODE CURL-OUTPUT-FILE: a JSON error from
# the proxy itself, with its header.
expect_proxy_error() {
	local what=$1 status=$2 code=$3 out=$4 body hdr
	hdr=$(sed -n '1,/^\r$/p' "$out")
	body=$(sed '1,/^\r$/d' "$out")
	expect_match "$what: status" "$(head -n 1 "$out")" "^HTTP/1\\.[01] $status "
	expect_match "$what: x-xdrproxy-error header" "$hdr" \
	    "x-xdrproxy-error: $code"$'\r'
	expect_match "$what: JSON body" "$body" \
	    "^\\{\"error\":\"$code\",\"message\":\"[^\"]+\",\"request_id\":\"[0-9a-f]{16}\"\\}\$"
	expect_match "$what: Content-Type" "$hdr" \
	    "Content-Type: application/json"
}

# raw_request HOST-PORT: send stdin as raw bytes, print the whole answer
# (until the proxy closes, or 5 s).
raw_request() {
	local port=$1
	exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
	cat >&3
	timeout 5 cat <&3
	exec 3<&-
}

# rss_kb PID: peak resident set (VmHWM) in KiB.
hwm_kb() { sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status"; }

[ -x "$XDRPROXY" ] || { echo "missing $XDRPROXY: run make first"; exit 99; }
# A build configured with --enable-asan: memory figures mean nothing there.
if grep -q '^SAN_CFLAGS = -fsanitize' "$top_builddir/Makefile" 2>/dev/null; then
	XDRPROXY_SANITIZED=1
fi
[ -x "$MOCK" ] || { echo "missing $MOCK: run make first"; exit 99; }
command -v curl >/dev/null || { echo "curl is required"; exit 99; }
command -v openssl >/dev/null || { echo "openssl is required"; exit 99; }
