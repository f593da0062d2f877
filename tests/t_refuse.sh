#!/bin/bash
# t_refuse.sh: what the proxy refuses and how: ambiguous framing (400 and
# the connection closed), browser requests (403: Origin, Sec-Fetch-Site,
# Sec-Fetch-Dest, Sec-Fetch-User; Sec-Fetch-Mode alone passes), foreign
# Host names (421), paths outside allow_path (403), bad targets (400),
# CONNECT/TRACE (405), bodies over max_body (413). Nothing refused reaches
# the tenant; every refusal is audited as a proxy_error.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

make_pki
start_mock
write_config "server_name = xdrproxy.corp.example" "max_body = 64k"
start_proxy

# refused WHAT STATUS CODE CURL-ARGS...: a JSON error, audited, not forwarded.
refused() {
	local what=$1 status=$2 code=$3 n
	shift 3
	n=$(audit_count)
	px -i "$@" > "$T/out"
	expect_proxy_error "$what" "$status" "$code" "$T/out"
	wait_num 5 -gt "$n" audit_count || fail "$what: not audited"
	a=$(last_audit)
	expect_match "$what: audited" "$a" \
	    "\"status\":$status,.*\"outcome\":\"proxy_error\",\"error\":\"$code\",\"caller\":"
}

before=$(mock_requests)
refused "Origin" 403 browser_request_refused -X POST -d '{}' \
    -H 'Origin: https://evil.example' /public_api/v1/incidents/get_incidents/
refused "Origin: null" 403 browser_request_refused -X POST -d '{}' \
    -H 'Origin: null' /public_api/v1/incidents/get_incidents/
refused "Sec-Fetch-Site" 403 browser_request_refused -X POST -d '{}' \
    -H 'Sec-Fetch-Site: cross-site' /public_api/v1/incidents/get_incidents/
refused "Sec-Fetch-Dest" 403 browser_request_refused -X POST -d '{}' \
    -H 'Sec-Fetch-Dest: empty' /public_api/v1/incidents/get_incidents/
refused "Sec-Fetch-User" 403 browser_request_refused -X POST -d '{}' \
    -H 'Sec-Fetch-User: ?1' /public_api/v1/incidents/get_incidents/
refused "DNS rebinding Host" 421 misdirected_host -X POST -d '{}' \
    -H 'Host: attacker.example' /public_api/v1/incidents/get_incidents/
refused "Host with the right port, wrong name" 421 misdirected_host \
    -H "Host: attacker.example:$PROXY_PORT" /public_api/v1/x/
refused "Host 127.0.0.2" 421 misdirected_host -H 'Host: 127.0.0.2' /public_api/v1/x/
refused "malformed Host" 400 bad_request -H 'Host: a b' /public_api/v1/x/
refused "path outside allow_path" 403 path_not_allowed /admin/
refused "root path" 403 path_not_allowed /
refused "dot segment" 400 bad_request --path-as-is /public_api/../admin/
refused "encoded dot segment" 400 bad_request /public_api/%2e%2e/admin/
refused "encoded slash" 400 bad_request /public_api/..%2Fadmin/
refused "dot segment with a parameter" 400 bad_request --path-as-is '/public_api/..;x/admin/'
refused "TRACE" 405 method_not_allowed -X TRACE /public_api/v1/x/

# CONNECT in its authority form, sent raw: the method is what is refused
# (405), not the foreign Host (421).
n=$(audit_count)
printf 'CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\nConnection: close\r\n\r\n' |
    raw_request "$PROXY_PORT" > "$T/raw"
expect_proxy_error "CONNECT" 405 method_not_allowed "$T/raw"
wait_num 5 -gt "$n" audit_count || fail "CONNECT: not audited"
expect_match "CONNECT: audited" "$(last_audit)" \
    '"status":405,.*"outcome":"proxy_error","error":"method_not_allowed","caller":'

expect_eq "nothing refused reached the tenant" "$(mock_requests)" "$before"

# Sec-Fetch-Mode alone is no browser's mark: Node's fetch sends it.
code=$(px -o /dev/null -w '%{http_code}' -X POST -d '{}' \
    -H 'Sec-Fetch-Mode: cors' /public_api/v1/incidents/get_incidents/)
expect_eq "Sec-Fetch-Mode alone forwarded" "$code" 200
expect_eq "Sec-Fetch-Mode alone reached the tenant" "$(mock_requests)" \
    $((before + 1))

for h in localhost "localhost:$PROXY_PORT" 127.0.0.1 "127.0.0.1:1" \
    '[::1]:8080' LOCALHOST xdrproxy.corp.example; do
	code=$(px -o /dev/null -w '%{http_code}' -H "Host: $h" /public_api/v1/x/)
	expect_eq "Host $h accepted" "$code" 200
done

before=$(mock_requests)
# A body over max_body (64k here). libevent answers this one itself, before
# xdrproxy sees the request.
head -c 70000 /dev/zero > "$T/big"
code=$(px -o /dev/null -w '%{http_code}' -X POST --data-binary @"$T/big" \
    /public_api/v1/x/)
expect_eq "body over max_body: 413" "$code" 413
code=$(px -o /dev/null -w '%{http_code}' -X POST -H 'Transfer-Encoding: chunked' \
    --data-binary @"$T/big" /public_api/v1/x/)
expect_eq "chunked body over max_body: 413" "$code" 413

# Ambiguous framing, sent raw: 400 and the connection closed, so the
# smuggled second request is never read. Debian's libevent refuses
# Content-Length with Transfer-Encoding, and repeated Content-Length,
# itself (with its own HTML page, before xdrproxy sees the request);
# xdrproxy refuses the rest with its JSON error.
smuggle() {
	local raw=$1 what=$2 who=$3
	printf '%s' "$raw" | raw_request "$PROXY_PORT" > "$T/raw"
	expect_match "$what: 400" "$(head -n 1 "$T/raw")" '^HTTP/1\.1 400 '
	if [ "$who" = xdrproxy ]; then
		expect_match "$what: JSON error" "$(cat "$T/raw")" \
		    '"error":"bad_request"'
	elif [ "$who" = xdrproxy-head ]; then
		# An answer to HEAD has no body; the length says so.
		expect_match "$what: error header" "$(cat "$T/raw")" \
		    $'x-xdrproxy-error: bad_request\r'
		expect_no_match "$what: no body" "$(sed '1,/^\r$/d' "$T/raw")" '.'
	fi
	expect_match "$what: connection closed" "$(cat "$T/raw")" \
	    $'Connection: close\r'
	expect_eq "$what: one response only" "$(grep -c '^HTTP/1' "$T/raw")" 1
}
smuggle $'POST /public_api/v1/x/ HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /public_api/v1/smuggled/ HTTP/1.1\r\nHost: localhost\r\n\r\n' \
    "Content-Length and Transfer-Encoding" libevent
smuggle $'POST /public_api/v1/x/ HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nContent-Length: 44\r\n\r\nGET /public_api/v1/smuggled/ HTTP/1.1\r\nHost: localhost\r\n\r\n' \
    "repeated Content-Length" libevent
smuggle $'POST /public_api/v1/x/ HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip\r\n\r\nGET /public_api/v1/smuggled/ HTTP/1.1\r\nHost: localhost\r\n\r\n' \
    "Transfer-Encoding gzip" xdrproxy
smuggle $'POST /public_api/v1/x/ HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\nGET /public_api/v1/smuggled/ HTTP/1.1\r\nHost: localhost\r\n\r\n' \
    "Transfer-Encoding gzip, chunked" xdrproxy
smuggle $'POST /public_api/v1/x/ HTTP/1.1\r\nHost: localhost\r\nContent-Length: +3\r\n\r\nabcGET /public_api/v1/smuggled/ HTTP/1.1\r\nHost: localhost\r\n\r\n' \
    "Content-Length with a sign" xdrproxy
smuggle $'HEAD /public_api/v1/x/ HTTP/1.1\r\nHost: localhost\r\nContent-Length: 52\r\n\r\nGET /public_api/v1/smuggled/ HTTP/1.1\r\nHost: x\r\n\r\n' \
    "HEAD with a body" xdrproxy-head
smuggle $'POST /public_api/v1/x/ HTTP/1.1\r\nHost: localhost\r\nAuthorization : Basic eDp5\r\nContent-Length: 2\r\n\r\n{}' \
    "header name with a space" xdrproxy
printf 'POST /public_api/v1/x/ HTTP/1.1\r\nHost: localhost\r\nContent-Length: abc\r\n\r\n' |
    raw_request "$PROXY_PORT" > "$T/raw"
expect_match "malformed Content-Length: 400" "$(head -n 1 "$T/raw")" '^HTTP/1\.1 400 '

expect_eq "nothing refused reached the tenant" "$(mock_requests)" "$before"
expect_no_match "smuggled request never forwarded" "$(cat "$MOCK_LOG")" smuggled

# The proxy still works after all that.
code=$(px -o /dev/null -w '%{http_code}' -X POST -d '{}' /public_api/v1/x/)
expect_eq "still serving" "$code" 200

stop_proxy
finish
