#!/bin/sh
# tests/ci.sh: the whole test suite from a clean clone, as CI runs it
# (.ci/run calls this). Installs the Debian packages it needs, then builds
# twice out of tree and runs `make check` in each:
#   build-werror/  warnings as errors
#   build-asan/    AddressSanitizer + UndefinedBehaviorSanitizer; any
#                  report or leak fails the run
set -eu

cd "$(dirname "$0")/.."
top=$(pwd)
jobs=$(nproc 2>/dev/null || echo 2)

tests/deps.sh

run_build() {
	dir=$1
	shift
	echo "=== $dir: configure $*"
	rm -rf "$top/$dir"
	tests/build.sh "$dir" "$@"
	cd "$top/$dir"
	if ! make -j"$jobs" check; then
		cat test-suite.log 2>/dev/null || true
		exit 1
	fi
	cd "$top"
}

run_build build-werror --enable-werror
XDRPROXY_SANITIZED=1
ASAN_OPTIONS=detect_leaks=1:halt_on_error=1
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export XDRPROXY_SANITIZED ASAN_OPTIONS UBSAN_OPTIONS
run_build build-asan --enable-werror --enable-asan
# libFuzzer targets, 60 s each under ASan+UBSan: any crash, leak or
# timeout fails the run.
tests/fuzz.sh 60
echo "=== all tests passed (warnings as errors, and under ASan+UBSan)"
