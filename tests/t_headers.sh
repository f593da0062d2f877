#!/bin/bash
# t_headers.sh: which headers reach the tenant and which come back. The
# client's credentials, x-xdr-* and hop-by-hop headers are dropped; the
# rest passes unchanged; the tenant's hop-by-hop headers do not come back.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

make_pki
start_mock
write_config
start_proxy

body=$(px -X POST \
    -H 'Authorization: Bearer stolen-token' \
    -H 'Proxy-Authorization: Basic eDp5' \
    -H 'x-xdr-auth-id: 999' \
    -H 'X-XDR-Nonce: client-nonce' \
    -H 'x-xdr-timestamp: 1' \
    -H 'Connection: keep-alive, X-Drop-Me' \
    -H 'X-Drop-Me: 1' \
    -H 'Keep-Alive: timeout=5' \
    -H 'TE: trailers' \
    -H 'Trailer: X-Foo' \
    -H 'Upgrade: h2c' \
    -H 'Proxy-Connection: keep-alive' \
    -H 'X-Custom: keep me' \
    -H 'Accept: application/json' \
    -H 'Accept-Encoding: gzip, deflate' \
    -H 'User-Agent: legacy-tool/1.0' \
    -H 'Content-Type: application/json; charset=utf-8' \
    -H 'X-Empty;' \
    --data-binary '{"request_data":{"filters":[]}}' \
    /public_api/v1/endpoints/get_endpoint/)
expect_match "echo" "$body" '^\{"reply":\{"method":"POST"'
rec=$(grep '"event":"request"' "$MOCK_LOG" | tail -n 1)
expect_eq "tenant accepted the signature" "$(json_str "$rec" auth)" ok
for h in Proxy-Authorization X-Drop-Me Keep-Alive TE Trailer Upgrade \
    Proxy-Connection Connection; do
	expect_no_match "$h not forwarded" "$rec" "\[\"$h\","
done
expect_no_match "client Authorization not forwarded" "$rec" 'Bearer'
expect_no_match "client x-xdr-auth-id not forwarded" "$rec" '"999"'
expect_no_match "client nonce not forwarded" "$rec" 'client-nonce'
expect_eq "one x-xdr-nonce" "$(printf '%s' "$rec" | grep -io '"x-xdr-nonce"' | wc -l)" 1
expect_eq "one x-xdr-timestamp" "$(printf '%s' "$rec" | grep -io '"x-xdr-timestamp"' | wc -l)" 1
expect_match "X-Custom passes" "$rec" '\["X-Custom","keep me"\]'
expect_match "Accept passes" "$rec" '\["Accept","application/json"\]'
expect_match "Accept-Encoding passes unchanged" "$rec" \
    '\["Accept-Encoding","gzip, deflate"\]'
expect_match "User-Agent passes" "$rec" '\["User-Agent","legacy-tool/1.0"\]'
expect_match "Content-Type passes" "$rec" \
    '\["Content-Type","application/json; charset=utf-8"\]'
expect_match "empty header passes" "$rec" '\["X-Empty",""\]'
expect_match "Host is the tenant's" "$rec" "\\[\"Host\",\"$API_HOST\"\\]"
expect_match "Content-Length set for the body" "$rec" '\["Content-Length","31"\]'

# Expect: 100-continue with a body over libcurl's own Expect threshold
# (1 MiB): neither the client's Expect nor libcurl's reaches the tenant,
# and the body arrives whole with its Content-Length.
head -c 1500000 /dev/urandom > "$T/big"
big_sha=$(sha256sum < "$T/big" | cut -d' ' -f1)
px -v -X POST -H 'Expect: 100-continue' -H 'Content-Type: application/octet-stream' \
    --data-binary @"$T/big" /public_api/v1/x/expect/ > "$T/expect.out" 2> "$T/expect.v"
expect_match "client sent Expect: 100-continue" "$(cat "$T/expect.v")" \
    $'^> Expect: 100-continue\r$'
expect_eq "client sent no Transfer-Encoding" \
    "$(grep -c '^> Transfer-Encoding' "$T/expect.v")" 0
rec=$(grep '"event":"request"' "$MOCK_LOG" | grep '"uri":"/public_api/v1/x/expect/"')
expect_eq "Expect: tenant accepted the signature" "$(json_str "$rec" auth)" ok
expect_no_match "Expect not forwarded" "$rec" '\["Expect",'
expect_match "Expect: Content-Length of the body" "$rec" '\["Content-Length","1500000"\]'
expect_match "Expect: body whole" "$rec" \
    "\"body_len\":1500000,\"body_sha256\":\"$big_sha\""

# A chunked request body: forwarded with a Content-Length, not chunked.
head -c 100000 /dev/urandom > "$T/chunked"
chunked_sha=$(sha256sum < "$T/chunked" | cut -d' ' -f1)
px -v -X POST -H 'Transfer-Encoding: chunked' -H 'Expect:' \
    -H 'Content-Type: application/octet-stream' \
    --data-binary @"$T/chunked" /public_api/v1/x/chunked/ > "$T/chunked.out" \
    2> "$T/chunked.v"
expect_match "client sent Transfer-Encoding: chunked" "$(cat "$T/chunked.v")" \
    $'^> Transfer-Encoding: chunked\r$'
expect_eq "client sent no Content-Length" \
    "$(grep -ic '^> Content-Length' "$T/chunked.v")" 0
rec=$(grep '"event":"request"' "$MOCK_LOG" | grep '"uri":"/public_api/v1/x/chunked/"')
expect_eq "chunked: tenant accepted the signature" "$(json_str "$rec" auth)" ok
expect_no_match "Transfer-Encoding not forwarded" "$rec" '\["Transfer-Encoding",'
expect_match "chunked: Content-Length of the body" "$rec" '\["Content-Length","100000"\]'
expect_match "chunked: body whole" "$rec" \
    "\"body_len\":100000,\"body_sha256\":\"$chunked_sha\""

# Nothing added that the client did not send.
px -X POST -d '' -H 'Accept:' -H 'User-Agent:' -H 'Content-Type:' \
    /public_api/v1/x/y/ > /dev/null
rec=$(grep '"event":"request"' "$MOCK_LOG" | tail -n 1)
expect_no_match "no Accept added" "$rec" '\["Accept",'
expect_no_match "no Accept-Encoding added" "$rec" '\["Accept-Encoding",'
expect_no_match "no Content-Type added" "$rec" '\["Content-Type",'
expect_no_match "no User-Agent added" "$rec" '\["User-Agent",'

# Response headers: the tenant's pass, hop-by-hop ones stop here.
px -D "$T/h" -o /dev/null \
    -H 'X-Mock-Header: X-Tenant-Trace: abc 123' \
    -H 'X-Mock-Header: Keep-Alive: timeout=99' \
    -H 'X-Mock-Header: Set-Cookie: a=b; Secure' \
    -H 'X-Mock-Header: Connection: X-Private' \
    -H 'X-Mock-Header: X-Private: hop' \
    -H 'X-Mock-Header: Upgrade: h2c' \
    /public_api/v1/x/y/
h=$(cat "$T/h")
expect_match "tenant header passes" "$h" $'X-Tenant-Trace: abc 123\r'
expect_match "Set-Cookie passes" "$h" $'Set-Cookie: a=b; Secure\r'
expect_no_match "tenant Keep-Alive stops" "$h" 'timeout=99'
expect_no_match "header named in tenant's Connection stops" "$h" 'X-Private'
expect_no_match "tenant Upgrade stops" "$h" 'Upgrade'
expect_match "request id header" "$h" 'x-xdrproxy-request-id: [0-9a-f]{16}'
expect_match "Content-Length from the tenant" "$h" 'Content-Length: [0-9]+'

stop_proxy
finish
