#!/bin/sh
# tests/fuzz.sh SECONDS: build the libFuzzer targets in build-fuzz/ (clang,
# --enable-fuzz: ASan+UBSan) and run each for SECONDS on a copy of its seed
# corpus in tests/fuzz/corpus/, so that the committed corpus does not grow.
# Any crash, leak, timeout or OOM fails the run; its input is kept and its
# path printed. CI runs `tests/fuzz.sh 60`.
set -eu

secs=${1:-60}
case $secs in
''|*[!0-9]*)
	echo "usage: tests/fuzz.sh SECONDS" >&2
	exit 2
	;;
esac

cd "$(dirname "$0")/.."
top=$(pwd)
jobs=$(nproc 2>/dev/null || echo 2)
targets="fuzz_auditline fuzz_config fuzz_filter fuzz_govconf fuzz_keyfile fuzz_policy fuzz_store"

tests/build.sh build-fuzz CC=clang --enable-fuzz
make -C build-fuzz -j"$jobs" fuzz >/dev/null

work=$(mktemp -d "${TMPDIR:-/tmp}/xdrproxy-fuzz.XXXXXX")
keep=0
trap '[ "$keep" -eq 1 ] || rm -rf "$work"' EXIT
trap 'exit 1' INT TERM

# libFuzzer reports leaks itself (-detect_leaks=1 is its default under ASan).
ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export ASAN_OPTIONS UBSAN_OPTIONS

pass=0
fail=0
for t in $targets; do
	d=$work/$t
	mkdir -p "$d/corpus" "$d/artifacts"
	cp "$top/tests/fuzz/corpus/$t/"* "$d/corpus/"
	set -- -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
	    -print_final_stats=1 -artifact_prefix="$d/artifacts/"
	if [ -f "$top/tests/fuzz/$t.dict" ]; then
		set -- "$@" -dict="$top/tests/fuzz/$t.dict"
	fi
	start=$(date +%s)
	rc=0
	"$top/build-fuzz/tests/fuzz/$t" "$@" "$d/corpus" >"$d/log" 2>&1 ||
	    rc=$?
	took=$(($(date +%s) - start))
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$d/log" |
	    tail -n 1)
	found=$(find "$d/artifacts" -type f | sort)
	if [ "$rc" -eq 0 ] && [ -z "$found" ]; then
		echo "fuzz: $t: ${runs:-?} runs in $took s, no finding"
		pass=$((pass + 1))
		continue
	fi
	keep=1
	fail=$((fail + 1))
	echo "fuzz: $t: FAILED (exit $rc) after ${runs:-?} runs in $took s;" \
	    "log $d/log"
	grep -E '^(==[0-9]+==|SUMMARY:|.*runtime error:)' "$d/log" |
	    head -n 20 | sed 's/^/    /' || true
	for f in $found; do
		echo "    input: $f (rerun: build-fuzz/tests/fuzz/$t $f)"
	done
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
