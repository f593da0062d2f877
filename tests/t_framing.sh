#!/bin/bash
# t_framing.sh: the framing towards the client is xdrproxy's, decided from
# what it sends, not copied from the tenant. A tenant answer (sent byte for
# byte with X-Mock-Raw) with Content-Length and chunked encoding, or the
# same Content-Length twice, reaches the client as exactly its body bytes
# with one framing that matches them, and the client's keep-alive
# connection stays in step for the next response (RFC 9112 6.3);
# conflicting Content-Length values get 502.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

make_pki
start_mock
write_config "http2 = no" "workers = 1"
start_proxy

F=$T/files
# raw NAME BYTES: a tenant answer, written by the mock as it stands.
raw() { printf '%s' "$2" > "$F/$1"; }
raw cl_chunked $'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\n01234\r\n5\r\n56789\r\n0\r\n\r\n'
raw cl_twice $'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 10\r\nContent-Length: 10\r\nConnection: close\r\n\r\n0123456789'
raw cl_conflict $'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nContent-Length: 10\r\nConnection: close\r\n\r\n0123456789'
raw cl_conflict_rev $'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 10\r\nContent-Length: 5\r\nConnection: close\r\n\r\n0123456789'
raw cl_plain $'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 10\r\nConnection: close\r\n\r\n0123456789'
printf '0123456789' > "$T/want"

# framing WHAT HEADERS BODY: one framing that matches the body received,
# chunked without Content-Length, or one Content-Length equal to its size.
framing() {
	local what=$1 h=$2 b=$3 ncl nte
	ncl=$(grep -ic '^Content-Length:' "$h")
	nte=$(grep -ic '^Transfer-Encoding:' "$h")
	if [ "$nte" -gt 0 ]; then
		expect_eq "$what: no Content-Length beside Transfer-Encoding" \
		    "$ncl" 0
		expect_match "$what: Transfer-Encoding is chunked, once" \
		    "$(grep -i '^Transfer-Encoding:' "$h")" \
		    $'^Transfer-Encoding: chunked\r$'
	else
		expect_eq "$what: one Content-Length" "$ncl" 1
		expect_eq "$what: Content-Length is the body's size" \
		    "$(sed -n 's/^[Cc]ontent-[Ll]ength: *\([0-9]*\)\r$/\1/p' "$h")" \
		    "$(wc -c < "$b")"
	fi
}

# pair NAME MOCKFILE: the tenant's answer MOCKFILE, then an ordinary
# request on the same client connection (curl --next reuses it).
pair() {
	local name=$1 file=$2 rc
	curl -sS --max-time 20 -H "X-Mock-Raw: $file" \
	    -D "$T/$name.1.h" -o "$T/$name.1.b" \
	    -w '%{http_code} %{num_connects}\n' \
	    "$URL/public_api/v1/framing/$name/" \
	    --next -sS --max-time 20 -D "$T/$name.2.h" -o "$T/$name.2.b" \
	    -w '%{http_code} %{num_connects}\n' \
	    "$URL/public_api/v1/framing/$name/next/" \
	    > "$T/$name.w" 2> "$T/$name.err"
	rc=$?
	expect_eq "$name: curl exit status" "$rc" 0
	[ "$rc" = 0 ] || sed 's/^/# /' "$T/$name.err"
	expect_eq "$name: first answer 200 on a new connection" \
	    "$(sed -n 1p "$T/$name.w")" "200 1"
	if cmp -s "$T/$name.1.b" "$T/want"; then
		pass "$name: exactly the 10 body bytes"
	else
		fail "$name: body '$(od -An -c "$T/$name.1.b" | tr -s ' ' | tr -d '\n')', want '0123456789'"
	fi
	framing "$name" "$T/$name.1.h" "$T/$name.1.b"
	expect_eq "$name: next answer 200 on the same connection" \
	    "$(sed -n 2p "$T/$name.w")" "200 0"
	expect_match "$name: next answer is its own, intact" \
	    "$(cat "$T/$name.2.b")" \
	    "^\\{\"reply\":\\{\"method\":\"GET\",\"uri\":\"/public_api/v1/framing/$name/next/\".*\\}\\}\$"
	framing "$name: next answer" "$T/$name.2.h" "$T/$name.2.b"
	expect_match "$name: tenant sent the raw answer" "$(cat "$MOCK_LOG")" \
	    "\"event\":\"raw_done\",\"uri\":\"/public_api/v1/framing/$name/\",\"bytes_sent\":$(wc -c < "$F/$file")\\}"
}

# (a) Content-Length: 5 and chunked, 10 bytes in chunks: libcurl de-chunks,
# so the 5 must not reach the client.
pair both cl_chunked
expect_no_match "both: the tenant's Content-Length: 5 not passed on" \
    "$(cat "$T/both.1.h")" 'Content-Length: 5'

# The same, pipelined on one raw connection: the second response starts
# right where the first one ends.
printf 'GET /public_api/v1/framing/pipe1/ HTTP/1.1\r\nHost: localhost\r\nX-Mock-Raw: cl_chunked\r\n\r\nGET /public_api/v1/framing/pipe2/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' |
    raw_request "$PROXY_PORT" > "$T/pipe"
expect_eq "pipelined: two responses, each at a line start" \
    "$(grep -ac '^HTTP/1\.1 200 OK' "$T/pipe")" 2
expect_match "pipelined: the second is the echo of the second request" \
    "$(awk '/^HTTP\/1\.1 /{n++} n==2' "$T/pipe" | sed '1,/^\r$/d')" \
    '^\{"reply":\{"method":"GET","uri":"/public_api/v1/framing/pipe2/".*\}\}$'

# (b) the same Content-Length twice: one length (or chunked) to the client.
pair twice cl_twice

# (c) conflicting Content-Length values, in either order: 502, xdrproxy's
# JSON error, audited; the connection still serves the next request.
for file in cl_conflict cl_conflict_rev; do
	n=$(audit_count)
	curl -sS --max-time 20 -i -H "X-Mock-Raw: $file" \
	    "$URL/public_api/v1/framing/$file/" -o "$T/$file.out" \
	    --next -sS --max-time 20 -o "$T/$file.next" -w '%{http_code}' \
	    "$URL/public_api/v1/framing/$file/next/" > "$T/$file.w" 2> "$T/$file.err"
	expect_eq "$file: curl exit status" "$?" 0
	expect_proxy_error "$file" 502 upstream_error "$T/$file.out"
	expect_no_match "$file: no tenant bytes to the client" \
	    "$(cat "$T/$file.out")" '01234'
	wait_num 5 -ge $((n + 2)) audit_count ||
	    fail "$file: not audited"
	expect_match "$file: audited" \
	    "$(audit_grep "\"path\":\"/public_api/v1/framing/$file/\"")" \
	    '"status":502,.*"outcome":"upstream_error","error":"upstream_error","caller":'
	expect_eq "$file: next request answered" "$(cat "$T/$file.w")" 200
	expect_match "$file: next answer is its own" "$(cat "$T/$file.next")" \
	    "^\\{\"reply\":\\{\"method\":\"GET\",\"uri\":\"/public_api/v1/framing/$file/next/\""
done

# (d) a plain Content-Length passes with its length.
pair plain cl_plain
expect_match "plain: Content-Length: 10 passed on" "$(cat "$T/plain.1.h")" \
    $'\nContent-Length: 10\r'
expect_no_match "plain: not re-chunked" "$(cat "$T/plain.1.h")" \
    'Transfer-Encoding'

stop_proxy
finish
