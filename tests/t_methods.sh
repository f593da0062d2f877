#!/bin/bash
# t_methods.sh: method, path, query and body bytes pass through unchanged,
# with Content-Length, chunked and Expect: 100-continue request bodies,
# HTTP/1.0 and keep-alive clients.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

make_pki
start_mock
write_config "" "workers = 1"   # one upstream pool, to check its reuse
start_proxy

last_req() { grep '"event":"request"' "$MOCK_LOG" | tail -n 1; }

for m in GET POST PUT DELETE PATCH OPTIONS; do
	px -X "$m" /public_api/v1/alerts/get_alerts/ > "$T/out"
	rec=$(last_req)
	expect_eq "$m reaches the tenant" "$(json_str "$rec" method)" "$m"
	expect_eq "$m signed" "$(json_str "$rec" auth)" ok
done
code=$(px -I -o /dev/null -w '%{http_code}' /public_api/v1/alerts/get_alerts/)
expect_eq "HEAD answered" "$code" 200
expect_eq "HEAD reaches the tenant" "$(json_str "$(last_req)" method)" HEAD

for p in /public_api/v1/incidents/get_incidents/ \
    /public_api/v1/incidents/get_incidents \
    /public_api/v2/alerts/get_alerts_multi_events/ \
    '/public_api/v1/xql/start_xql_query/?a=1&b=%2F%20x&c&d=%7e~' \
    '/public_api/v1/x/%41%42/y;p=1?q=a+b&r=%zz'; do
	px -X POST -d '{}' "$p" > /dev/null
	expect_eq "path and query bytes unchanged: $p" \
	    "$(json_str "$(last_req)" uri)" "$p"
done

# Bodies: byte for byte, whatever the framing.
head -c 1000000 /dev/urandom > "$T/body.bin"
want=$(sha256sum < "$T/body.bin" | cut -d' ' -f1)
px -X POST --data-binary @"$T/body.bin" -H 'Content-Type: application/octet-stream' \
    /public_api/v1/x/upload/ > /dev/null
rec=$(last_req)
expect_eq "binary body: length" "$(json_num "$rec" body_len)" 1000000
expect_eq "binary body: bytes" "$(json_str "$rec" body_sha256)" "$want"
px -X POST -H 'Transfer-Encoding: chunked' --data-binary @"$T/body.bin" \
    /public_api/v1/x/upload/ > /dev/null
rec=$(last_req)
expect_eq "chunked body: bytes" "$(json_str "$rec" body_sha256)" "$want"
expect_match "chunked body: sent with a length" "$rec" '\["Content-Length","1000000"\]'
px -X PUT -H 'Expect: 100-continue' --data-binary @"$T/body.bin" \
    /public_api/v1/x/upload/ > /dev/null
rec=$(last_req)
expect_eq "Expect: 100-continue body: bytes" "$(json_str "$rec" body_sha256)" "$want"
expect_eq "PUT with a body" "$(json_str "$rec" method)" PUT
px -X POST -d '' /public_api/v1/x/empty/ > /dev/null
expect_match "empty POST body: Content-Length 0" "$(last_req)" '\["Content-Length","0"\]'

# HTTP/1.0, with and without keep-alive.
code=$(px -0 -o "$T/out" -w '%{http_code}' -X POST -d '{}' /public_api/v1/x/y/)
expect_eq "HTTP/1.0 answered" "$code" 200
expect_match "HTTP/1.0 body" "$(cat "$T/out")" '"method":"POST"'
code=$(px -0 -H 'Connection: keep-alive' -o "$T/out" -w '%{http_code}' \
    -H 'X-Mock-Stream: 5000' -H 'X-Mock-Chunked: 1' /public_api/v1/x/y/)
expect_eq "HTTP/1.0 keep-alive, unframed stream: answered" "$code" 200
expect_eq "HTTP/1.0 keep-alive, unframed stream: whole body" "$(stat -c %s "$T/out")" 5000

# Keep-alive: two requests, one client connection, one tenant connection.
curl -sS -v -X POST -d '{}' "$URL/public_api/v1/a/b/" -o "$T/o1" \
    --next -X POST -d '{}' "$URL/public_api/v1/a/b/" -o "$T/o2" 2> "$T/v"
expect_match "client connection reused" "$(cat "$T/v")" 'Re-using existing connection'
n=$(grep -c '"event":"connection"' "$MOCK_LOG")
expect_eq "upstream connection reused across all requests" "$n" 1

stop_proxy
finish
