#!/bin/bash
# t_man.sh: the man pages are well formed (mandoc -T lint, warnings are
# failures), and every setting the configuration parser knows is documented
# in xdrproxy.conf(5), etc/xdrproxy.conf.example and README.md.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

command -v mandoc >/dev/null ||
    skip_all "mandoc not installed (Debian package mandoc; tests/deps.sh installs it)"

for page in doc/xdrproxy.8 doc/xdrproxy.conf.5 doc/xdrproxy-keys.1 \
    doc/xdrproxy-audit.1; do
	if out=$(mandoc -T lint -W warning "$top_srcdir/$page" 2>&1); then
		pass "$page: mandoc -T lint is clean"
	else
		fail "$page: mandoc -T lint: $out"
	fi
done

# The parser's tables: lines like `{ "name", CT_...` in src/config.c.
names=$(sed -n 's/^[[:space:]]*{ "\([a-z0-9_]*\)", CT_.*/\1/p' \
    "$top_srcdir/src/config.c" | sort -u)
[ -n "$names" ] || fail "no settings found in src/config.c"
for name in $names; do
	missing=""
	grep -Eq "^\.It Ic $name( |$)" "$top_srcdir/doc/xdrproxy.conf.5" ||
	    missing="$missing xdrproxy.conf.5"
	grep -Eq "^[#;]?[[:space:]]*$name[[:space:]]*=" \
	    "$top_srcdir/etc/xdrproxy.conf.example" ||
	    missing="$missing etc/xdrproxy.conf.example"
	grep -q "\`$name" "$top_srcdir/README.md" || missing="$missing README.md"
	if [ -n "$missing" ]; then fail "setting $name undocumented in:$missing"
	else pass "setting $name documented"; fi
done
finish
