#!/bin/bash
# t_auditverify.sh: xdrproxy-audit verify on chained audit files written
# here by python3 (hashlib/hmac) from the spec, then tampered with: a byte
# edited, a line deleted, two swapped, a copy inserted, files in the wrong
# order, the tail cut (caught by a checkpoint), a rotated file gzipped.
# Each case asserts the exact message and exit status.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

AUDIT="$top_builddir/src/xdrproxy-audit"
command -v python3 >/dev/null ||
    skip_all "python3 not installed (it writes the test's audit chains)"
command -v gzip >/dev/null || skip_all "gzip not installed"

# gen OUT N [KEYFILE]: N chained records (request and response records in
# turn, the design's field order) from a chain start; prints the last
# record's checkpoint, SEQ:HASH.
gen() {
	python3 - "$@" <<'EOF'
import hashlib, hmac, sys
out, n = sys.argv[1], int(sys.argv[2])
key = None
if len(sys.argv) > 3:
    key = open(sys.argv[3], "rb").read()
    if key.endswith(b"\n"):
        key = key[:-1]
def h(b):
    if key is not None:
        return hmac.new(key, b, hashlib.sha256).hexdigest()
    return hashlib.sha256(b).hexdigest()
prev = "0" * 64
with open(out, "wb") as f:
    for seq in range(1, n + 1):
        rid = "3e16e0df%08x" % ((seq + 1) // 2)
        start = ',"chain":"start"' if seq == 1 else ""
        head = '{"type":"%s","seq":%d,"prev":"%s"%s,"ts":"2026-12-02T16:%02d:00.000Z","request_id":"%s","tenant":"acme","key_id":"42","client":"127.0.0.1:43792","method":"POST","path":"/public_api/v1/incidents/get_incidents/","query":""' % (
            "request" if seq % 2 else "response", seq, prev, start, seq % 60, rid)
        if seq % 2:
            rec = head + ',"bytes_in":19,"caller":{"uid":1000,"user":"alice","gid":1000,"group":"alice","pid":4242,"exe":"/usr/bin/curl"},"caller_error":null}'
        else:
            rec = head + ',"status":200,"bytes_in":19,"bytes_out":1648,"duration_ms":47,"outcome":"ok","error":null,"caller":{"uid":1000,"user":"alice","gid":1000,"group":"alice","pid":4242,"exe":"/usr/bin/curl"},"caller_error":null}'
        line = rec.encode()
        f.write(line + b"\n")
        prev = h(line)
print("%d:%s" % (n, prev))
EOF
}

# va ARGS...: run xdrproxy-audit; RC, OUT (stdout), ERR (stderr).
va() {
	"$AUDIT" "$@" >"$T/audit.out" 2>"$T/audit.err"
	RC=$?
	OUT=$(cat "$T/audit.out")
	ERR=$(cat "$T/audit.err")
}

# expect_ok WHAT STDOUT ARGS...
expect_ok() {
	local what=$1 want=$2
	shift 2
	va "$@"
	expect_eq "$what: exit 0" "$RC" 0
	expect_eq "$what: stdout" "$OUT" "$want"
	expect_eq "$what: nothing on stderr" "$ERR" ""
}

# expect_bad WHAT MESSAGE ARGS...: exit 1 and exactly MESSAGE on stderr.
expect_bad() {
	local what=$1 want=$2
	shift 2
	va "$@"
	expect_eq "$what: exit 1" "$RC" 1
	expect_eq "$what: message" "$ERR" "xdrproxy-audit: $want"
	expect_eq "$what: no OK" "$OUT" ""
}

NOCP="note: no --checkpoint: records removed from the end cannot be detected"
cd "$T" || exit 1

# A good chain, whole and rotated into three files (oldest first).
cp20=$(gen all.jsonl 20)
expect_ok "a good chain" "$NOCP
OK: 20 records, seq 1..20" verify all.jsonl
sed -n 1,7p all.jsonl > audit.jsonl.2
sed -n 8,14p all.jsonl > audit.jsonl.1
sed -n 15,20p all.jsonl > audit.jsonl
expect_ok "rotated files in order" "$NOCP
OK: 20 records, seq 1..20" verify audit.jsonl.2 audit.jsonl.1 audit.jsonl
expect_ok "with its checkpoint" "note: checkpoint seq 20 matches audit.jsonl:6
OK: 20 records, seq 1..20" verify --checkpoint "$cp20" audit.jsonl.2 \
    audit.jsonl.1 audit.jsonl
expect_ok "the latest files alone: the first is an anchor" \
    "note: audit.jsonl.1:1: seq 8 is not a chain start: its prev cannot be checked (the records before it are not in the files given)
$NOCP
OK: 13 records, seq 8..20" verify audit.jsonl.1 audit.jsonl

# A rotated file gzipped (logrotate's compress): read transparently.
gzip -c audit.jsonl.2 > audit.jsonl.2.gz
expect_ok "a gzipped rotated file" "$NOCP
OK: 20 records, seq 1..20" verify audit.jsonl.2.gz audit.jsonl.1 audit.jsonl
head -c 60 audit.jsonl.2.gz > cut.gz
expect_bad "a gzip file cut short" "cut.gz: unexpected end of file" \
    verify cut.gz audit.jsonl.1 audit.jsonl

# One byte changed in the middle of record 10 (audit.jsonl.1:3): the next
# record's prev no longer matches.
python3 -c '
import sys
b = bytearray(open("audit.jsonl.1", "rb").read())
lines = b.split(b"\n")
i = lines[2].find(b"get_incidents")
lines[2][i] = ord("G")
open("edited.1", "wb").write(b"\n".join(lines))'
expect_bad "a byte edited" "edited.1:4: edited: prev does not match the hash of edited.1:3 (seq 10): that record was edited, or this record's prev was" \
    verify audit.jsonl.2 edited.1 audit.jsonl

# A line deleted (record 11, audit.jsonl.1:4).
sed 4d audit.jsonl.1 > del.1
expect_bad "a line deleted" "del.1:4: deleted: record seq 11 is missing between del.1:3 and this record (seq 12)" \
    verify audit.jsonl.2 del.1 audit.jsonl
# Two lines deleted.
sed 4,5d audit.jsonl.1 > del2.1
expect_bad "two lines deleted" "del2.1:4: deleted: records seq 11..12 are missing between del2.1:3 and this record (seq 13)" \
    verify audit.jsonl.2 del2.1 audit.jsonl

# Two lines swapped (records 10 and 11).
awk 'NR == 3 { h = $0; next } { print } NR == 4 { print h }' audit.jsonl.1 > swap.1
expect_bad "two lines swapped" "swap.1:3: reordered: seq 11 comes before seq 10 (swap.1:4)" \
    verify audit.jsonl.2 swap.1 audit.jsonl

# A copy of record 9 inserted after record 12.
awk '{ print } NR == 2 { l2 = $0 } NR == 5 { print l2 }' audit.jsonl.1 > ins.1
expect_bad "a copy inserted" "ins.1:6: inserted: seq 9 does not fit after seq 12 (ins.1:5)" \
    verify audit.jsonl.2 ins.1 audit.jsonl
# A record duplicated in place.
sed -n '1,3p;3p;4,$p' audit.jsonl.1 > dup.1
expect_bad "a record repeated" "dup.1:4: inserted: seq 10 repeats the record before it (dup.1:3)" \
    verify audit.jsonl.2 dup.1 audit.jsonl

# Files in the wrong order, and a rotated file missing.
expect_bad "files swapped" "audit.jsonl.2:1: files out of order: audit.jsonl.2 starts at seq 1, lower than the last record of the file before it (seq 14, audit.jsonl.1:7)" \
    verify audit.jsonl.1 audit.jsonl.2 audit.jsonl
expect_bad "files newest first" "audit.jsonl.1:1: files out of order: audit.jsonl.1 starts at seq 8, lower than the last record of the file before it (seq 20, audit.jsonl:6)" \
    verify audit.jsonl.2 audit.jsonl audit.jsonl.1
expect_bad "a rotated file missing" "audit.jsonl:1: deleted: records seq 8..14 are missing between audit.jsonl.2:7 and this record (seq 15)" \
    verify audit.jsonl.2 audit.jsonl

# The tail cut: invisible without a checkpoint, caught with one.
head -n 3 audit.jsonl > cut
expect_ok "the tail cut, no checkpoint" "$NOCP
OK: 17 records, seq 1..17" verify audit.jsonl.2 audit.jsonl.1 cut
expect_bad "the tail cut, with a checkpoint" "cut:3: truncated: the last record is seq 17, but the checkpoint names seq 20: records seq 18..20 were removed from the end" \
    verify --checkpoint "$cp20" audit.jsonl.2 audit.jsonl.1 cut
# The last record edited: only the checkpoint sees it.
sed '$s/get_incidents/get_incidentz/' audit.jsonl > lastedit
lasthash=$(tail -n 1 lastedit | tr -d '\n' | sha256sum | cut -d' ' -f1)
expect_bad "the last record edited, with a checkpoint" "lastedit:6: edited: seq 20 hashes to $lasthash, but the checkpoint says ${cp20#20:}" \
    verify --checkpoint "$cp20" audit.jsonl.2 audit.jsonl.1 lastedit

# A torn last line, and a chain restarted in the middle.
head -c -1 audit.jsonl > torn
expect_bad "a torn last line" "torn:6: torn line: no newline at its end (a write was cut short)" \
    verify audit.jsonl.2 audit.jsonl.1 torn
cat audit.jsonl.2 audit.jsonl.2 > restart
expect_bad "a chain restarted" "restart:8: chain restarted (\"chain\":\"start\" after seq 7, restart:7): earlier records may have been removed" \
    verify restart
printf 'not json\n' > junk
expect_bad "not JSON" "junk:1: not JSON: null expected" verify junk
printf '{"type":"request","seq":1}\n' > noprev
expect_bad "no prev" 'noprev:1: no "prev"' verify noprev
: > empty
expect_bad "no records" "no records in the files given" verify empty
expect_bad "a missing file" "missing: No such file or directory" \
    verify audit.jsonl.2 missing

# HMAC chains: the key is the file's bytes, one trailing newline removed.
printf 'an-audit-hmac-key\n' > hmac.key
chmod 600 hmac.key
cph=$(gen hmac.jsonl 9 hmac.key)
expect_ok "an HMAC chain" "note: checkpoint seq 9 matches hmac.jsonl:9
OK: 9 records, seq 1..9" verify --hmac-key-file hmac.key --checkpoint "$cph" \
    hmac.jsonl
expect_bad "an HMAC chain without the key" "hmac.jsonl:2: edited: prev does not match the hash of hmac.jsonl:1 (seq 1): that record was edited, or this record's prev was (or the log was written with audit_hmac_key_file: give it with --hmac-key-file)" \
    verify hmac.jsonl
printf 'another-key' > other.key
chmod 600 other.key
expect_bad "an HMAC chain with another key" "hmac.jsonl:2: edited: prev does not match the hash of hmac.jsonl:1 (seq 1): that record was edited, or this record's prev was (or the log was not written with this HMAC key)" \
    verify --hmac-key-file other.key hmac.jsonl
# Someone without the key rebuilds the chain with plain SHA-256 after an edit.
sed '5s/alice/mallory/g' hmac.jsonl > forged.in
python3 -c '
import hashlib, re
prev = "0" * 64
out = []
for line in open("forged.in", "rb").read().split(b"\n")[:-1]:
    line = re.sub(rb"\"prev\":\"[0-9a-f]{64}\"", b"\"prev\":\"" + prev.encode() + b"\"", line)
    out.append(line)
    prev = hashlib.sha256(line).hexdigest()
open("forged", "wb").write(b"\n".join(out) + b"\n")'
expect_bad "a chain rebuilt without the HMAC key" "forged:2: edited: prev does not match the hash of forged:1 (seq 1): that record was edited, or this record's prev was (or the log was not written with this HMAC key)" \
    verify --hmac-key-file hmac.key forged
# The key-file rules of xdrproxy's own key files.
chmod 640 hmac.key
expect_bad "a group-readable key file" "hmac.key: mode 0640 lets group or others read or write it; chmod 600 it" \
    verify --hmac-key-file hmac.key hmac.jsonl
chmod 600 hmac.key
expect_no_secret "the HMAC key in no output" - "$T/audit.out" \
    "$T/audit.err" -- "an-audit-hmac-key"

# Usage errors exit 2.
for args in "" "check all.jsonl" "verify" "verify --checkpoint 5 all.jsonl" \
    "verify --checkpoint 0:$(printf '%064d' 0) all.jsonl" \
    "verify --checkpoint 5:ABC all.jsonl" "verify --bogus all.jsonl"; do
	# shellcheck disable=SC2086
	va $args
	expect_eq "usage error ($args): exit 2" "$RC" 2
	expect_match "usage error ($args): usage" "$ERR" "usage: xdrproxy-audit verify"
done
va --help
expect_eq "--help: exit 0" "$RC" 0
expect_match "--help: usage" "$OUT" "^usage: xdrproxy-audit verify"

# Bounded memory: a long trail costs no more than a short one.
if [ -z "${XDRPROXY_SANITIZED:-}" ]; then
	gen big.jsonl 200000 >/dev/null
	# maxrss of the child, in kB, and its stdout's last line.
	rss() {
		python3 -c '
import resource, subprocess, sys
p = subprocess.run(sys.argv[1:], capture_output=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    p.stdout.decode().splitlines()[-1:])' "$AUDIT" verify "$1"
	}
	small=$(rss all.jsonl)
	big=$(rss big.jsonl)
	expect_eq "200000 records" "${big#* }" \
	    "['OK: 200000 records, seq 1..200000']"
	small=${small%% *}
	big=${big%% *}
	if [ "$big" -lt $((small + 2048)) ]; then
		pass "bounded memory: $big kB for 200000 records, $small kB for 20"
	else
		fail "memory grows with the trail: $big kB vs $small kB"
	fi
else
	echo "# memory bound skipped under ASan (its allocator's footprint is not the program's)"
fi
finish
