#!/bin/bash
# t_egress.sh: the tenant through an egress proxy (egress_proxy, no_proxy).
# A real forward proxy, Debian's tinyproxy, runs on a loopback port picked
# at run time: the request reaches the mock tenant signed, through a
# CONNECT tunnel that tinyproxy logs (naming the connect_to address, as
# libcurl does), with TLS end to end. no_proxy goes direct; proxies in the
# environment never apply; an unreachable proxy, and a CONNECT the proxy
# refuses, are 502s with their own error codes.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

command -v tinyproxy >/dev/null ||
    skip_all "tinyproxy is needed (tests/deps.sh installs it)"

make_pki
start_mock

# start_tinyproxy CONNECT-PORT: tinyproxy admitting CONNECTs to that port
# only; sets TP_PORT, TP_PID, TP_LOG.
start_tinyproxy() {
	local try
	TP_LOG=$T/tinyproxy.log
	for try in 1 2 3 4 5 6 7 8; do
		TP_PORT=$((20000 + RANDOM % 40000))
		# Taken already: try another.
		(exec 3<>"/dev/tcp/127.0.0.1/$TP_PORT") 2>/dev/null && continue
		cat > "$T/tinyproxy.conf" <<EOF
Port $TP_PORT
Listen 127.0.0.1
Timeout 30
LogFile "$TP_LOG"
LogLevel Connect
MaxClients 20
Allow 127.0.0.1
ConnectPort $1
DisableViaHeader Yes
EOF
		: > "$TP_LOG"
		tinyproxy -d -c "$T/tinyproxy.conf" 2> "$T/tinyproxy.err" &
		TP_PID=$!
		# Listening, or gone (its port was taken after all).
		wait_for 10 tp_settled
		if kill -0 "$TP_PID" 2>/dev/null &&
		    (exec 3<>"/dev/tcp/127.0.0.1/$TP_PORT") 2>/dev/null; then
			PIDS+=("$TP_PID")
			return 0
		fi
		kill "$TP_PID" 2>/dev/null
		wait "$TP_PID" 2>/dev/null
	done
	echo "tinyproxy did not start:"; cat "$T/tinyproxy.err" "$TP_LOG"; exit 99
}
# The tinyproxy we started listens, or has exited.
tp_settled() {
	! kill -0 "$TP_PID" 2>/dev/null ||
	    (exec 3<>"/dev/tcp/127.0.0.1/$TP_PORT") 2>/dev/null
}
stop_tinyproxy() {
	kill -TERM "$TP_PID" 2>/dev/null
	wait "$TP_PID" 2>/dev/null
}
# The CONNECT requests tinyproxy logged.
tp_connects() { grep -c 'Request (file descriptor [0-9]*): CONNECT ' "$TP_LOG"; }

# call WHAT: one signed call through xdrproxy; its answer in $T/out.
call() {
	px -i -X POST -d '{"request_data":{}}' \
	    /public_api/v1/incidents/get_incidents/ > "$T/out" 2> "$T/curl.err"
}

start_tinyproxy "$MOCK_PORT"

# Through the proxy, configured per tenant. One worker: one pool, so the
# second call finds the first one's tunnel.
write_config "egress_proxy = http://127.0.0.1:$TP_PORT" "workers = 1"
start_proxy
before=$(mock_requests)
call
expect_match "through the egress proxy: 200" "$(head -n 1 "$T/out")" '^HTTP/1\.1 200 '
# The proxy's own answer to the CONNECT is not passed on as the tenant's.
expect_eq "through the egress proxy: one status line, the tenant's" \
    "$(grep -c '^HTTP/' "$T/out")" 1
expect_match "through the egress proxy: the tenant's headers" "$(cat "$T/out")" \
    'X-Mock-Conn: [0-9]+'
expect_match "through the egress proxy: the tenant's body" "$(sed '1,/^\r$/d' "$T/out")" \
    '^\{"reply":\{"total_count":2,'
expect_eq "through the egress proxy: the tenant got one request" \
    "$(mock_requests)" $((before + 1))
expect_match "through the egress proxy: signed, and the signature checks" \
    "$(grep '"event":"request"' "$MOCK_LOG" | tail -n 1)" \
    "\"auth\":\"ok\",\"auth_id\":\"$KEY_ID\",\"nonce\":\"[A-Za-z0-9]{64}\""
expect_eq "tinyproxy logged one CONNECT" "$(tp_connects)" 1
expect_match "the CONNECT names the connect_to address (libcurl's way)" \
    "$(grep 'CONNECT ' "$TP_LOG")" "CONNECT 127\\.0\\.0\\.1:$MOCK_PORT HTTP/1\\.1"
# Keep-alive through the tunnel: a second call, no second CONNECT.
call
expect_match "second call: 200" "$(head -n 1 "$T/out")" '^HTTP/1\.1 200 '
expect_eq "second call: the tunnel is reused (still one CONNECT)" "$(tp_connects)" 1
stop_proxy

# [proxy]'s egress_proxy is the default; environment proxy settings that
# say otherwise are ignored (NO_PROXY=* would send it direct).
write_config "" "egress_proxy = http://127.0.0.1:$TP_PORT"
n=$(tp_connects)
NO_PROXY='*' no_proxy='*' https_proxy= start_proxy
call
expect_match "[proxy] egress_proxy: 200" "$(head -n 1 "$T/out")" '^HTTP/1\.1 200 '
expect_eq "[proxy] egress_proxy, NO_PROXY=* in the environment: through the proxy all the same" \
    "$(tp_connects)" $((n + 1))
stop_proxy

# no_proxy naming the tenant's host: direct, the proxy sees nothing.
write_config "no_proxy = localhost, .xdr.test" "egress_proxy = http://127.0.0.1:$TP_PORT"
n=$(tp_connects)
before=$(mock_requests)
start_proxy
call
expect_match "no_proxy: 200" "$(head -n 1 "$T/out")" '^HTTP/1\.1 200 '
expect_eq "no_proxy: the tenant got the request" "$(mock_requests)" $((before + 1))
expect_eq "no_proxy: direct, no CONNECT" "$(tp_connects)" "$n"
stop_proxy

# egress_proxy = none in a tenant opts out of [proxy]'s.
write_config "egress_proxy = none" "egress_proxy = http://127.0.0.1:$TP_PORT"
start_proxy
call
expect_match "egress_proxy = none: 200" "$(head -n 1 "$T/out")" '^HTTP/1\.1 200 '
expect_eq "egress_proxy = none: direct, no CONNECT" "$(tp_connects)" "$n"
stop_proxy

# No egress_proxy: https_proxy and ALL_PROXY in the environment do not apply.
write_config
https_proxy=http://127.0.0.1:$TP_PORT HTTPS_PROXY=http://127.0.0.1:$TP_PORT \
    ALL_PROXY=http://127.0.0.1:$TP_PORT start_proxy
call
expect_match "https_proxy in the environment: 200" "$(head -n 1 "$T/out")" '^HTTP/1\.1 200 '
expect_eq "https_proxy in the environment: ignored" "$(tp_connects)" "$n"
stop_proxy

# upstream_error WHAT CODE MESSAGE-REGEX: the call got 502 CODE, audited,
# logged, and nothing reached the tenant.
upstream_error() {
	local before
	before=$(mock_requests)
	n=$(audit_count)
	call
	expect_proxy_error "$1" 502 "$2" "$T/out"
	expect_match "$1: message" "$(sed '1,/^\r$/d' "$T/out")" "$3"
	wait_num 5 -gt "$n" audit_count || fail "$1: not audited"
	expect_match "$1: audited" "$(last_audit)" \
	    "\"status\":502,.*\"outcome\":\"upstream_error\",\"error\":\"$2\",\"caller\":"
	expect_match "$1: logged" "$(cat "$PROXY_LOG")" \
	    "request [0-9a-f]{16}: tenant acme: POST /public_api/v1/incidents/get_incidents/ from 127\\.0\\.0\\.1:[0-9]+: 502 $2"
	expect_eq "$1: nothing reached the tenant" "$(mock_requests)" "$before"
}

# The proxy refuses the CONNECT (its ConnectPort does not admit the port).
stop_tinyproxy
start_tinyproxy $((MOCK_PORT == 65535 ? 1 : MOCK_PORT + 1))
write_config "egress_proxy = http://127.0.0.1:$TP_PORT"
start_proxy
upstream_error "CONNECT refused by the proxy" upstream_proxy_refused \
    "the egress proxy http://127\\.0\\.0\\.1:$TP_PORT answered the CONNECT to the tenant with 403 \\(not allowed by its rules\\)"
expect_match "refused CONNECT: tinyproxy saw it" "$(grep 'CONNECT ' "$TP_LOG")" \
    "CONNECT 127\\.0\\.0\\.1:$MOCK_PORT "
stop_proxy

# The proxy cannot reach the tenant: it answers the CONNECT with 500.
stop_tinyproxy
kill -TERM "$MOCK_PID"; wait "$MOCK_PID" 2>/dev/null
start_tinyproxy "$MOCK_PORT"
write_config "egress_proxy = http://127.0.0.1:$TP_PORT"
start_proxy
upstream_error "the proxy cannot reach the tenant" upstream_proxy_refused \
    "answered the CONNECT to the tenant with 5[0-9][0-9] \\(it could not reach the tenant\\)"
stop_proxy

# Nothing listens on the proxy's port any more.
stop_tinyproxy
start_mock
write_config "egress_proxy = http://127.0.0.1:$TP_PORT"
start_proxy
upstream_error "egress proxy unreachable" upstream_proxy_unreachable \
    "egress proxy http://127\\.0\\.0\\.1:$TP_PORT: Failed to connect to 127\\.0\\.0\\.1 port $TP_PORT"
stop_proxy

# A proxy name that does not resolve (.invalid never does, RFC 6761).
write_config "egress_proxy = http://proxy.invalid:3128"
start_proxy
upstream_error "egress proxy name does not resolve" upstream_proxy_unreachable \
    "egress proxy http://proxy\\.invalid:3128: "
stop_proxy

# Credentials in the URL are refused at load, and not printed.
write_config "egress_proxy = http://user:s3cr3tpw@127.0.0.1:$TP_PORT"
"$XDRPROXY" -t -c "$T/xdrproxy.conf" 2> "$T/err"
expect_eq "egress_proxy with user:password@: refused" "$?" 1
expect_match "egress_proxy with user:password@: FILE:LINE: message" "$(cat "$T/err")" \
    "^$T/xdrproxy.conf:[0-9]+: egress_proxy: user:password@ in the URL is not supported"
expect_no_match "egress_proxy with user:password@: the password is not printed" \
    "$(cat "$T/err")" 's3cr3tpw'
write_config "egress_proxy = https://127.0.0.1:$TP_PORT"
"$XDRPROXY" -t -c "$T/xdrproxy.conf" 2> "$T/err"
expect_eq "https:// egress proxy: refused" "$?" 1
expect_match "https:// egress proxy: FILE:LINE: message" "$(cat "$T/err")" \
    "^$T/xdrproxy.conf:[0-9]+: egress_proxy: https:// proxies are not supported"

finish
