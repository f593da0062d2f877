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

# An in-tree build would block out-of-tree ones; clean it away.
if [ -f config.status ]; then
	make distclean >/dev/null 2>&1 || true
fi
autoreconf -fi

run_build() {
	dir=$1
	shift
	echo "=== $dir: configure $*"
	rm -rf "$top/$dir"
	mkdir -p "$top/$dir"
	cd "$top/$dir"
	"$top/configure" -q "$@"
	make -j"$jobs"
	if ! make -j"$jobs" check; then
		cat test-suite.log 2>/dev/null || true
		for f in tests/*.log; do
			case "$f" in */test-suite.log) continue ;; esac
			if grep -q '^not ok\|^FAIL\|check failed\|ERROR: ' "$f" 2>/dev/null; then
				echo "--- $f"; cat "$f"
			fi
		done
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
echo "=== all tests passed (warnings as errors, and under ASan+UBSan)"
