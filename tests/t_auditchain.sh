#!/bin/bash
# t_auditchain.sh: the audit hash chain: request and response records,
# seq 1..N with prev = SHA-256 (or HMAC) of the line before, continued
# across restarts and rotation, a crash mid-call, a torn last line;
# audit_fail closed/open on a full file system; audit_fsync.
if [ -z "${XDRPROXY_AUDITCHAIN_NS:-}" ] && [ "$(id -u)" -eq 0 ] &&
    command -v unshare >/dev/null && unshare -m true 2>/dev/null; then
	XDRPROXY_AUDITCHAIN_NS=1 exec unshare -m --propagation private bash "$0" "$@"
fi
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

PY=/usr/bin/python3
[ -x "$PY" ] || skip_all "no /usr/bin/python3"

# verify [--key FILE] FILES...: the records of FILES, in order, form one
# chain from a "chain":"start" record; prints "ok N" or why not.
verify() {
	"$PY" - "$@" <<'PYEOF'
import hashlib, hmac, json, sys
args = sys.argv[1:]
key = None
if args[0] == "--key":
    key = open(args[1], "rb").read()
    if key.endswith(b"\n"):
        key = key[:-1]
    args = args[2:]
data = b"".join(open(f, "rb").read() for f in args)
if data and not data.endswith(b"\n"):
    print("torn last line"); sys.exit(0)
lines = data.split(b"\n")[:-1]
prev = None
for i, line in enumerate(lines):
    r = json.loads(line)
    keys = list(r.keys())
    want = ["type", "seq", "prev"] + (["chain"] if i == 0 else []) + ["ts"]
    if keys[:len(want)] != want:
        print("record %d: fields %s" % (i + 1, keys[:5])); sys.exit(0)
    if i > 0 and "chain" in r:
        print("record %d: a second chain start" % (i + 1)); sys.exit(0)
    if r["seq"] != i + 1:
        print("record %d: seq %d" % (i + 1, r["seq"])); sys.exit(0)
    exp = "0" * 64 if i == 0 else prev
    if r["prev"] != exp:
        print("record %d: prev %s, want %s" % (i + 1, r["prev"], exp)); sys.exit(0)
    if i == 0 and r["chain"] != "start":
        print("record 1: no chain start"); sys.exit(0)
    if key is None:
        prev = hashlib.sha256(line).hexdigest()
    else:
        prev = hmac.new(key, line, hashlib.sha256).hexdigest()
print("ok %d %s" % (len(lines), prev))
PYEOF
}
ntype() { grep -c "^{\"type\":\"$1\"," "$2"; }
audit_responses_n() { audit_responses "$1" | wc -l; }

make_pki
start_mock
write_config "" "upstream_timeout = 10s
audit_checkpoint_interval = 1s"
start_proxy
A=$T/audit.jsonl

for i in 1 2 3 4 5; do
	px -o /dev/null -X POST -d '{}' "/public_api/v1/x/c$i/"
done
px -o /dev/null -H 'Origin: https://evil.example' /public_api/v1/x/refused/
wait_num 5 -ge 6 audit_count
expect_eq "5 request records (not the refused one)" "$(ntype request "$A")" 5
expect_eq "6 response records" "$(ntype response "$A")" 6
expect_match "the chain: seq 1..11, prev = SHA-256 of the line before" "$(verify "$A")" '^ok 11 '
expect_match "a request record: fields up to bytes_in, then caller" "$(head -n 1 "$A")" \
    '^\{"type":"request","seq":1,"prev":"0{64}","chain":"start","ts":"[^"]+","request_id":"[0-9a-f]{16}","tenant":"acme","key_id":"[^"]+","client":"127\.0\.0\.1:[0-9]+","method":"POST","path":"/public_api/v1/x/c1/","query":"","bytes_in":2,"caller":\{[^}]*\},"caller_error":null\}$'
expect_eq "request and response records share the request id" \
    "$(json_str "$(sed -n 1p "$A")" request_id)" "$(json_str "$(sed -n 2p "$A")" request_id)"
# A checkpoint: seq and hash of the last record.
last=$(verify "$A")
wait_for 5 grep -q "audit checkpoint: seq 11 hash ${last#ok 11 }" "$PROXY_LOG" ||
    fail "no checkpoint for seq 11 in the log"
expect_eq "checkpoints only when something was written" \
    "$(grep -c 'audit checkpoint: seq 11 ' "$PROXY_LOG")" 1
stop_proxy

# A restart continues the chain.
start_proxy
expect_match "restart: continuation logged" "$(cat "$PROXY_LOG")" \
    "audit chain continues from $A: seq 11"
px -o /dev/null -X POST -d '{}' /public_api/v1/x/after-restart/
wait_num 5 -ge 7 audit_count
expect_match "restart: one chain" "$(verify "$A")" '^ok 13 '

# SIGUSR1 after rotation: continues in memory.
mv "$A" "$A.1"
kill -USR1 "$PROXY_PID"
wait_for 5 grep -q 'SIGUSR1: audit log reopened' "$PROXY_LOG"
px -o /dev/null -X POST -d '{}' /public_api/v1/x/after-usr1/
wait_num 5 -ge 1 audit_count
expect_match "SIGUSR1: the new file continues the old one" "$(verify "$A.1" "$A")" '^ok 15 '
stop_proxy

# Restart after rotation: an empty file, the chain from PATH.1.
cat "$A" >> "$A.1"
: > "$A"
start_proxy
expect_match "restart after rotation: continued from PATH.1" "$(cat "$PROXY_LOG")" \
    "audit chain continues from $A.1: seq 15"
px -o /dev/null -X POST -d '{}' /public_api/v1/x/after-rotation/
wait_num 5 -ge 1 audit_count
expect_match "restart after rotation: one chain" "$(verify "$A.1" "$A")" '^ok 17 '

# kill -9 during a slow call: its request record is on disk, no response.
curl -sS --max-time 20 -o /dev/null -X POST -d '{}' -H 'X-Mock-Delay-Ms: 5000' \
    "$URL/public_api/v1/x/crash/" 2>/dev/null &
cpid=$!
wait_for 5 grep -q '"path":"/public_api/v1/x/crash/"' "$A" || fail "no request record before forwarding"
kill -9 "$PROXY_PID"
wait "$PROXY_PID" 2>/dev/null
wait "$cpid" 2>/dev/null
expect_eq "kill -9: the request record is there" \
    "$(grep -c '^{"type":"request",.*"path":"/public_api/v1/x/crash/"' "$A")" 1
expect_eq "kill -9: no response record" \
    "$(grep -c '^{"type":"response",.*"path":"/public_api/v1/x/crash/"' "$A")" 0
# And a torn line, as a crash in the middle of a write leaves it.
printf '{"type":"response","seq":19,"prev":"00' >> "$A"
start_proxy
expect_match "torn last line cut off, with a warning" "$(cat "$PROXY_LOG")" \
    "audit_log $A: torn last line \\([0-9]+ bytes, no newline\\) cut off"
px -o /dev/null -X POST -d '{}' /public_api/v1/x/after-crash/
wait_num 5 -ge 1 audit_count
expect_match "after kill -9: the chain continues" "$(verify "$A.1" "$A")" '^ok 20 '
stop_proxy
# xdrproxy-audit(1) accepts both files, against the checkpoint logged at stop.
ck=$(sed -n 's/.*audit checkpoint: seq \([0-9]*\) hash \([0-9a-f]\{64\}\)$/\1:\2/p' "$PROXY_LOG" | tail -n 1)
expect_match "a checkpoint is logged at stop" "$ck" '^20:[0-9a-f]{64}$'
out=$("$top_builddir/src/xdrproxy-audit" verify --checkpoint "$ck" "$A.1" "$A" 2>&1)
expect_eq "xdrproxy-audit verify: both files, the checkpoint" "$out" "note: checkpoint seq 20 matches $A:$(wc -l < "$A")
OK: 20 records, seq 1..20"

# A reload to another audit_log, and back: one chain, no seq used twice,
# a checkpoint before each switch.
sed "s|^audit_log = .*|audit_log = $T/r1.jsonl|" "$T/xdrproxy.conf" > "$T/r.conf"
start_proxy "$T/r.conf"
reloads() { grep -c 'reload: configuration [0-9]* in force' "$PROXY_LOG"; }
for f in r2 r1; do
	px -o /dev/null -X POST -d '{}' "/public_api/v1/x/before-$f/"
	wait_for 5 grep -qs "\"type\":\"response\".*before-$f/" "$T"/r?.jsonl
	sed -i "s|^audit_log = .*|audit_log = $T/$f.jsonl|" "$T/r.conf"
	k=$(reloads)
	kill -HUP "$PROXY_PID"
	wait_num 5 -gt "$k" reloads
done
px -o /dev/null -X POST -d '{}' /public_api/v1/x/back-in-r1/
wait_for 5 grep -q '"type":"response".*back-in-r1/' "$T/r1.jsonl"
expect_eq "reload to another file and back: seq 1..6, each once" \
    "$(cat "$T/r1.jsonl" "$T/r2.jsonl" | sed 's/^{"type":"[a-z]*","seq":\([0-9]*\),.*/\1/' | sort -n | tr '\n' ' ')" \
    "1 2 3 4 5 6 "
expect_eq "r2.jsonl holds seq 3 and 4" \
    "$(sed 's/^{"type":"[a-z]*","seq":\([0-9]*\),.*/\1/' "$T/r2.jsonl" | tr '\n' ' ')" "3 4 "
expect_match "a checkpoint before each switch" \
    "$(grep -o 'audit checkpoint: seq [0-9]*' "$PROXY_LOG" | tr '\n' ' ')" \
    '^audit checkpoint: seq 2 audit checkpoint: seq 4 '
stop_proxy

# A last line that is not ours: a new chain, logged.
echo '{"something":"else"}' > "$T/other.jsonl"
sed "s|^audit_log = .*|audit_log = $T/other.jsonl|" "$T/xdrproxy.conf" > "$T/other.conf"
start_proxy "$T/other.conf"
expect_match "foreign last line: a new chain, logged" "$(cat "$PROXY_LOG")" \
    "audit chain: a new chain starts \\($T/other.jsonl: its last line is not an xdrproxy audit record\\)"
px -o /dev/null -X POST -d '{}' /public_api/v1/x/other/
wait_for 5 grep -q '^{"type":"response"' "$T/other.jsonl"
expect_match "foreign last line: chain:start after it" "$(tail -n +2 "$T/other.jsonl" > "$T/o2"; verify "$T/o2")" '^ok 2 '
stop_proxy

# HMAC mode: prev = HMAC-SHA-256(key, line); the key never written out.
printf 'audit-hmac-s3cret-%s\n' "$$" > "$T/audit.key"
chmod 600 "$T/audit.key"
sed "s|^audit_log = .*|audit_log = $T/hmac.jsonl\naudit_hmac_key_file = $T/audit.key|" \
    "$T/xdrproxy.conf" > "$T/hmac.conf"
start_proxy "$T/hmac.conf"
px -o /dev/null -X POST -d '{}' /public_api/v1/x/hmac/
wait_for 5 grep -q '^{"type":"response"' "$T/hmac.jsonl"
expect_match "HMAC: the chain checks with the key" "$(verify --key "$T/audit.key" "$T/hmac.jsonl")" '^ok 2 '
expect_no_match "HMAC: not plain SHA-256" "$(verify "$T/hmac.jsonl")" '^ok '
expect_no_match "HMAC: the key is in neither file" \
    "$(cat "$T/hmac.jsonl" "$PROXY_LOG")" "audit-hmac-s3cret"
# A changed key on reload is refused with a warning; the chain goes on.
printf 'another-key\n' > "$T/audit.key"
kill -HUP "$PROXY_PID"
wait_for 5 grep -q 'the audit HMAC key changed' "$PROXY_LOG" || fail "HMAC: key change not warned about"
printf 'audit-hmac-s3cret-%s\n' "$$" > "$T/audit.key"
px -o /dev/null -X POST -d '{}' /public_api/v1/x/hmac2/
wait_num 5 -ge 2 audit_responses_n "$T/hmac.jsonl"
expect_match "HMAC: after the reload, still the first key" "$(verify --key "$T/audit.key" "$T/hmac.jsonl")" '^ok 4 '
stop_proxy
# Both key settings, or a name without key_store: FILE:LINE.
printf '[proxy]\naudit_hmac_key_file = %s\naudit_hmac_key_name = a\nkey_store = /x\n' "$T/audit.key" > "$T/both.conf"
sed -n '/^\[tenant/,$p' "$T/xdrproxy.conf" >> "$T/both.conf"
expect_match "both audit HMAC keys: FILE:LINE" "$("$XDRPROXY" -t -c "$T/both.conf" 2>&1)" \
    "^$T/both.conf:3: audit_hmac_key_file and audit_hmac_key_name both set"

# audit_fsync = yes: the request record is synced before forwarding.
sed "s|^audit_log = .*|audit_log = $T/sync.jsonl\naudit_fsync = yes|" "$T/xdrproxy.conf" > "$T/sync.conf"
if command -v strace >/dev/null; then
	PROXY_ARGS= start_proxy "$T/sync.conf"
	if strace -f -qq -e trace=fdatasync -o "$T/strace" -p "$PROXY_PID" 2>/dev/null &
	then
		spid=$!
		wait_for 5 test -s "$T/strace" || sleep 0
	fi
	px -o /dev/null -X POST -d '{}' /public_api/v1/x/synced/
	wait_for 5 grep -q fdatasync "$T/strace" 2>/dev/null
	kill "$spid" 2>/dev/null; wait "$spid" 2>/dev/null
	if grep -q 'fdatasync' "$T/strace" 2>/dev/null; then
		pass "audit_fsync = yes: fdatasync called"
	else
		echo "# strace could not attach: fdatasync not checked"
	fi
else
	start_proxy "$T/sync.conf"
	px -o /dev/null -X POST -d '{}' /public_api/v1/x/synced/
	echo "# no strace: fdatasync not checked"
fi
wait_for 5 grep -q '^{"type":"response"' "$T/sync.jsonl"
expect_match "audit_fsync = yes: records chained" "$(verify "$T/sync.jsonl")" '^ok 2 '
stop_proxy

# audit_fail on a full file system.
fs=$T/fs
mkdir -p "$fs"
if [ -z "${XDRPROXY_AUDITCHAIN_NS:-}" ] || ! mount -t tmpfs -o size=64k tmpfs "$fs" 2>/dev/null; then
	echo "# audit_fail checks skipped: needs root and unshare -m for a small tmpfs"
	finish
fi
sed "s|^audit_log = .*|audit_log = $fs/audit.jsonl\nadmin_listen = 127.0.0.1:0|" \
    "$T/xdrproxy.conf" > "$T/closed.conf"
start_proxy "$T/closed.conf"
ADMIN=http://127.0.0.1:$(sed -n 's/.*admin: listening on 127\.0\.0\.1:\([0-9]*\) (.*/\1/p' "$PROXY_LOG" | head -n 1)
px -o /dev/null -X POST -d '{}' /public_api/v1/x/before-full/
wait_for 5 grep -q '^{"type":"response"' "$fs/audit.jsonl"
dd if=/dev/zero of="$fs/fill" bs=4096 2>/dev/null
# Fill what is left to the byte: the next record is written in part.
dd if=/dev/zero of="$fs/fill2" bs=1 2>/dev/null
# The file's last page may still hold a record or a few: until refused.
q=$(head -c 1500 /dev/zero | tr '\0' q)
for i in $(seq 1 30); do
	m0=$(mock_requests)
	code=$(curl -sS -o "$T/body" -w '%{http_code}' -X POST -d '{}' "$URL/public_api/v1/x/refused-full/?$q")
	[ "$code" = 200 ] || break
	wait_num 5 -gt "$m0" mock_requests
done
expect_eq "full: 503" "$code" 503
expect_match "full: audit_unavailable JSON body" "$(cat "$T/body")" '"error":"audit_unavailable"'
expect_eq "full: not forwarded (the mock saw nothing)" "$(mock_requests)" "$m0"
expect_eq "full: whole lines only" "$(tail -c 1 "$fs/audit.jsonl" | od -An -c | tr -d ' ')" '\n'
expect_match "full: the chain intact" "$(verify "$fs/audit.jsonl")" '^ok '
code=$(curl -sS -o "$T/b" -w '%{http_code}' "$ADMIN/readyz")
expect_eq "full: /readyz 503" "$code" 503
m=$(curl -sS "$ADMIN/metrics")
expect_eq "full: xdrproxy_audit_unavailable_total" \
    "$(printf '%s\n' "$m" | grep -c '^xdrproxy_audit_unavailable_total 1$')" 1
rm -f "$fs/fill" "$fs/fill2"
code=$(curl -sS -o /dev/null -w '%{http_code}' "$ADMIN/readyz")
expect_eq "space again: /readyz 200" "$code" 200
code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST -d '{}' "$URL/public_api/v1/x/recovered/")
expect_eq "space again: served" "$code" 200
wait_for 5 grep -q '^{"type":"response".*recovered' "$fs/audit.jsonl"
expect_match "space again: one chain, no seq lost to the failures" "$(verify "$fs/audit.jsonl")" '^ok '
stop_proxy

# audit_fail = open: forwarded, with a warning.
sed "s|^admin_listen = .*|audit_fail = open|" "$T/closed.conf" > "$T/open.conf"
start_proxy "$T/open.conf"
dd if=/dev/zero of="$fs/fill" bs=4096 2>/dev/null
dd if=/dev/zero of="$fs/fill2" bs=1 2>/dev/null
m0=$(mock_requests)
code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST -d '{}' "$URL/public_api/v1/x/open-full/")
expect_eq "audit_fail = open: served" "$code" 200
expect_eq "audit_fail = open: forwarded" "$(mock_requests)" "$((m0 + 1))"
wait_for 5 grep -q 'audit record not written; forwarded (audit_fail = open)' "$PROXY_LOG" ||
    fail "audit_fail = open: no warning"
rm -f "$fs/fill" "$fs/fill2"
stop_proxy
umount "$fs"
finish
