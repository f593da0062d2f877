#!/bin/sh
# tests/build.sh DIR [configure options]: build xdrproxy out of tree in DIR
# (relative to the top of the source). Used by ci.sh and demo.sh.
set -eu

cd "$(dirname "$0")/.."
top=$(pwd)
dir=$1
shift

# An in-tree build would block out-of-tree ones; clean it away.
if [ -f config.status ]; then
	make distclean >/dev/null 2>&1 || true
fi
if [ ! -x configure ] || [ configure.ac -nt configure ] ||
    [ Makefile.am -nt Makefile.in ]; then
	autoreconf -fi
fi
mkdir -p "$top/$dir"
cd "$top/$dir"
if [ ! -f Makefile ] || [ "$top/configure" -nt config.status ]; then
	"$top/configure" -q "$@"
fi
make -j"$(nproc 2>/dev/null || echo 2)"
