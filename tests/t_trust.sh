#!/bin/bash
# t_trust.sh: ca_file is the whole of what the proxy trusts for its tenant.
# libcurl trusts a CA directory of its own by default (/etc/ssl/certs on
# Debian, CURLOPT_CAPATH); with ca_file set, a tenant certificate from a CA
# in that directory but not in ca_file must be refused (502 upstream_tls).
# The test CA that signed the mock's certificate is put into the system
# directory for the duration of the test (needs root), and removed on exit.
# Where it can, the test runs in a mount namespace of its own, with a copy
# of that directory mounted over it: the machine's trust store is never
# touched, even if the test is killed.
if [ -z "${XDRPROXY_TRUST_NS:-}" ] && [ "$(id -u)" -eq 0 ] &&
    command -v unshare >/dev/null && unshare -m true 2>/dev/null; then
	XDRPROXY_TRUST_NS=1 exec unshare -m --propagation private bash "$0" "$@"
fi
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

[ "$(id -u)" -eq 0 ] || skip_all "needs root to add a CA to the system CA directory"
command -v curl-config >/dev/null ||
    skip_all "curl-config (libcurl4-openssl-dev) is needed to find libcurl's CA directory"
# The directory libcurl was built to trust (--with-ca-path).
CAPATH_DIR=$(curl-config --configure | tr ' ' '\n' |
    sed -n "s/^'*--with-ca-path=\\([^']*\\)'*\$/\\1/p")
[ -n "$CAPATH_DIR" ] || skip_all "libcurl has no built-in CA directory"
if [ ! -d "$CAPATH_DIR" ] || [ ! -w "$CAPATH_DIR" ]; then
	skip_all "$CAPATH_DIR is not a writable directory"
fi
if [ -n "${XDRPROXY_TRUST_NS:-}" ]; then
	mkdir "$T/capath" && cp -a "$CAPATH_DIR/." "$T/capath/" &&
	    mount --bind "$T/capath" "$CAPATH_DIR" ||
	    { echo "cannot mount a copy over $CAPATH_DIR"; exit 99; }
	echo "# in a mount namespace: $CAPATH_DIR is a private copy"
else
	echo "# no mount namespace (unshare -m): changing $CAPATH_DIR itself"
fi

make_pki

# Put $CA into the system directory under a unique name, with the
# <hash>.N link OpenSSL looks it up by (the first N not taken).
SYS_PEM=$CAPATH_DIR/xdrproxy-test-$$-$(basename "$T").pem
SYS_LINK=
untrust() {
	if [ -n "$SYS_LINK" ]; then rm -f "$SYS_LINK"; fi
	rm -f "$SYS_PEM"
}
trap 'untrust; cleanup' EXIT
cp "$CA" "$SYS_PEM" || { echo "cannot write $SYS_PEM"; exit 99; }
hash=$(openssl x509 -hash -noout -in "$CA") || exit 99
n=0
while [ -e "$CAPATH_DIR/$hash.$n" ] || [ -L "$CAPATH_DIR/$hash.$n" ]; do
	n=$((n + 1))
	[ "$n" -lt 100 ] || { echo "no free $hash.N in $CAPATH_DIR"; exit 99; }
done
SYS_LINK=$CAPATH_DIR/$hash.$n
ln -s "$(basename "$SYS_PEM")" "$SYS_LINK" || exit 99
# The bundle file libcurl also trusts by default does not have our CA: the
# system directory alone can vouch for the mock's certificate.
if [ -f "$CAPATH_DIR/ca-certificates.crt" ] &&
    grep -qF "$(sed -n 2p "$CA")" "$CAPATH_DIR/ca-certificates.crt"; then
	echo "test CA already in the system bundle?"; exit 99
fi

start_mock

# run_case WHAT: one request through a fresh proxy, its output in $T/out.
run_case() {
	start_proxy
	px -i -X POST -d '{}' /public_api/v1/trust/"$1"/ > "$T/out" 2> "$T/curl.err"
}

# Control: without ca_file, libcurl trusts the system directory, so the
# CA installed there makes the mock's certificate good. This proves the
# directory is the one libcurl uses, so the refusal below can fail.
write_config
sed -i '/^ca_file /d' "$T/xdrproxy.conf"
before=$(mock_requests)
run_case no-ca-file
expect_match "no ca_file, CA in the system directory: 200" \
    "$(head -n 1 "$T/out")" '^HTTP/1\.1 200 '
expect_eq "no ca_file: the tenant got the request" "$(mock_requests)" $((before + 1))
stop_proxy

# Control: ca_file = the CA that signed the mock's certificate: 200.
PROXY_CA=$CA write_config
run_case ca-file-ca
expect_match "ca_file = the signing CA: 200" "$(head -n 1 "$T/out")" \
    '^HTTP/1\.1 200 '
stop_proxy

# ca_file = a CA that signed nothing we serve, while the signing CA is in
# the system directory: ca_file alone decides, so 502 upstream_tls.
PROXY_CA=$OTHER_CA write_config
before=$(mock_requests)
n=$(audit_count)
run_case ca-file-other
expect_proxy_error "ca_file narrows trust: a CA only in the system directory is not trusted" \
    502 upstream_tls "$T/out"
wait_num 5 -gt "$n" audit_count || fail "ca_file = other CA: not audited"
expect_match "ca_file = other CA: audited" "$(last_audit)" \
    '"status":502,.*"error":"upstream_tls","caller":'
expect_eq "ca_file = other CA: no request reached the tenant" \
    "$(mock_requests)" "$before"
stop_proxy

finish
