#!/bin/bash
# t_browser.sh: the browser defence, both sides, with real clients. Node's
# built-in fetch (undici, which sends Sec-Fetch-Mode: cors on every request)
# is a script and is answered. A page from another origin (another loopback
# address and port) in headless Chromium tries a no-cors fetch, CORS fetches
# (simple and preflighted), a form POST, an <img> GET, and requests to a
# DNS-rebinding style name that resolves to the proxy (whose GETs carry no
# browser mark at all: only the Host name tells). The tenant sees none of
# them; the proxy refuses each one and audits it.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

command -v node >/dev/null ||
    skip_all "node not found: install Debian's nodejs package (tests/deps.sh)"
CHROMIUM=
for c in chromium chromium-browser; do
	command -v "$c" >/dev/null && { CHROMIUM=$c; break; }
done
[ -n "$CHROMIUM" ] ||
    skip_all "chromium not found: install Debian's chromium package (tests/deps.sh)"

make_pki
start_mock
write_config
start_proxy
INCIDENTS=/public_api/v1/incidents/get_incidents/

# --- Node's fetch: a script, answered -------------------------------------
# node_fetch URL [EXTRA-HEADERS-JSON]: POST a JSON body with Node's fetch;
# prints the status on the first line, then the body.
node_fetch() {
	U=$1 H=${2:-'{}'} node -e '
(async () => {
	const headers = Object.assign({"Content-Type": "application/json"},
	    JSON.parse(process.env.H));
	const r = await fetch(process.env.U, { method: "POST", headers,
	    body: JSON.stringify({ request_data: { search_from: 0, search_to: 2 } }) });
	console.log(r.status);
	console.log(await r.text());
})().catch((e) => { console.error(e); process.exit(1); });
' 2> "$T/node.err"
}

before=$(mock_requests)
out=$(node_fetch "$URL$INCIDENTS?via=node")
rc=$?
expect_eq "Node fetch: node exits 0" "$rc" 0
[ "$rc" -eq 0 ] || sed 's/^/# /' "$T/node.err"
expect_eq "Node fetch: status 200" "$(printf '%s\n' "$out" | head -n 1)" 200
body=$(printf '%s\n' "$out" | sed 1d)
want=$(px -X POST -H 'Content-Type: application/json' \
    -d '{"request_data":{"search_from":0,"search_to":2}}' "$INCIDENTS")
expect_match "Node fetch: the tenant's incidents" "$body" \
    '^\{"reply":\{"total_count":2,'
expect_eq "Node fetch: the same body curl gets" "$body" "$want"
expect_eq "Node fetch: forwarded once (and curl once)" \
    "$(mock_requests)" $((before + 2))
m=$(grep '"event":"request"' "$MOCK_LOG" | grep -F 'via=node')
expect_match "Node fetch: the tenant got the POST, signed" "$m" \
    "^\\{\"event\":\"request\",\"conn\":[0-9]+,\"method\":\"POST\",\"uri\":\"${INCIDENTS}\\?via=node\",\"auth\":\"ok\","
expect_match "Node fetch: the tenant got the JSON body" "$m" \
    '"body_len":48,'
if wait_for 10 grep -Eq '"query":"via=node","status":200,.*"outcome":"ok"' \
    "$T/audit.jsonl"; then
	pass "Node fetch: audited ok"
else
	fail "Node fetch: no ok record in the audit log:"
	grep -F 'via=node' "$T/audit.jsonl" | sed 's/^/# /'
fi

# A script that sets Origin itself says it is a browser: refused.
before=$(mock_requests)
out=$(node_fetch "$URL$INCIDENTS?via=node-origin" \
    '{"Origin":"https://evil.example"}')
expect_eq "Node fetch with Origin: 403" "$(printf '%s\n' "$out" | head -n 1)" 403
expect_match "Node fetch with Origin: browser_request_refused" \
    "$(printf '%s\n' "$out" | sed 1d)" '^\{"error":"browser_request_refused",'
expect_eq "Node fetch with Origin: not forwarded" "$(mock_requests)" "$before"

# --- Chromium: a page from another origin ---------------------------------
# The attacker's site: 127.0.0.2 on a port of its own, served by node, which
# logs every request it serves.
cat > "$T/attack.html" <<EOF
<!doctype html>
<html><head><title>running</title></head><body>
<form id="f" method="POST" enctype="text/plain" target="sink"
    action="http://127.0.0.1:$PROXY_PORT$INCIDENTS?via=form">
<input type="hidden" name='{"request_data":{},"x":"' value='"}'>
</form>
<pre id="out"></pre>
<script>
const P = "http://127.0.0.1:$PROXY_PORT";
const R = "http://attacker.test:$PROXY_PORT";
const body = JSON.stringify({ request_data: {} });
const out = document.getElementById("out");
function attempt(name, p) {
	return p.then((v) => { out.textContent += name + ": " + v + "\n"; },
	    (e) => { out.textContent += name + ": error " + e.name + "\n"; });
}
const seen = (r) => "response " + r.type + " " + r.status;
function form() {
	return new Promise((resolve) => {
		const sink = document.createElement("iframe");
		sink.name = "sink";
		document.body.appendChild(sink);
		sink.onload = () => resolve("iframe loaded");
		document.getElementById("f").submit();
	});
}
function img(url) {
	return new Promise((resolve) => {
		const i = new Image();
		i.onload = () => resolve("image loaded");
		i.onerror = () => resolve("image error");
		i.src = url;
	});
}
Promise.allSettled([
	attempt("nocors", fetch(P + "$INCIDENTS?via=nocors",
	    { mode: "no-cors", method: "POST", body }).then(seen)),
	attempt("corssimple", fetch(P + "$INCIDENTS?via=corssimple",
	    { mode: "cors", method: "POST", body,
	      headers: { "Content-Type": "text/plain" } }).then(seen)),
	attempt("cors", fetch(P + "$INCIDENTS?via=cors",
	    { mode: "cors", method: "POST", body,
	      headers: { "Content-Type": "application/json" } }).then(seen)),
	attempt("form", form()),
	attempt("img", img(P + "/public_api/v1/x/?via=img")),
	attempt("rebind", fetch(R + "$INCIDENTS?via=rebind",
	    { mode: "no-cors", method: "POST", body }).then(seen)),
	attempt("rebindget", fetch(R + "/public_api/v1/x/?via=rebindget",
	    { mode: "no-cors" }).then(seen)),
	attempt("rebindimg", img(R + "/public_api/v1/x/?via=rebindimg")),
]).then(() => { document.title = "done"; });
</script>
</body></html>
EOF
PAGE=$T/attack.html ALOG=$T/attacker.log APORT=$T/attacker.port node -e '
const fs = require("fs"), http = require("http");
const page = fs.readFileSync(process.env.PAGE);
const s = http.createServer((q, r) => {
	const status = q.url === "/" ? 200 : 404;
	fs.appendFileSync(process.env.ALOG, JSON.stringify({ method: q.method,
	    url: q.url, status, headers: q.rawHeaders }) + "\n");
	r.writeHead(status, { "Content-Type": "text/html" });
	r.end(status === 200 ? page : "");
});
s.listen(0, "127.0.0.2", () =>
    fs.writeFileSync(process.env.APORT, String(s.address().port)));
process.on("SIGTERM", () => process.exit(0));
' 2> "$T/attacker.err" &
PIDS+=($!)
wait_for 20 test -s "$T/attacker.port" ||
    { echo "attacker page server did not start:"; cat "$T/attacker.err"; exit 99; }
PAGE_URL=http://127.0.0.2:$(cat "$T/attacker.port")/

before=$(mock_requests)
n_audit=$(audit_count)
n_log=$(wc -l < "$PROXY_LOG")
mkdir -p "$T/chromium-profile" "$T/chromium-home"
# Only loopback is reachable: everything that would call out is off, and
# attacker.test resolves to the proxy's address (a rebound name). HOME is
# the test's, so that Chromium leaves nothing in the user's.
HOME=$T/chromium-home XDG_CONFIG_HOME=$T/chromium-home \
    XDG_CACHE_HOME=$T/chromium-home \
    timeout 50 "$CHROMIUM" --headless --no-sandbox --disable-gpu \
    --disable-dev-shm-usage --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update \
    --disable-sync --disable-extensions --disable-default-apps \
    --no-default-browser-check --metrics-recording-only \
    --host-resolver-rules="MAP attacker.test 127.0.0.1" \
    --user-data-dir="$T/chromium-profile" \
    --virtual-time-budget=10000 --dump-dom "$PAGE_URL" \
    > "$T/dom.html" 2> "$T/chromium.stderr"
rc=$?
expect_eq "chromium exits 0" "$rc" 0
if [ "$rc" -ne 0 ] || [ ! -s "$T/dom.html" ]; then
	grep -v dbus "$T/chromium.stderr" | tail -n 20 | sed 's/^/# chromium: /'
fi
dom=$(cat "$T/dom.html")
sed -n '/<pre id="out">/,/<\/pre>/p' "$T/dom.html" | sed 's/^/# page saw: /'

expect_match "attacker page served to Chromium" \
    "$(cat "$T/attacker.log" 2>/dev/null)" '"method":"GET","url":"/","status":200'
expect_match "the page ran every attempt to the end" "$dom" '<title>done</title>'
PAGE_TRIES="nocors corssimple cors form img rebind rebindget rebindimg"
for via in $PAGE_TRIES; do
	expect_match "page: $via attempt settled" "$dom" "(^|>)$via: "
done

# Each attempt reached the proxy and was refused there, and audited:
# VIA METHOD STATUS ERROR. The preflighted CORS POST stops at its OPTIONS.
# attacker.test is not a trustworthy origin, so Chromium sends it no
# Sec-Fetch-* and a GET no Origin: only the Host name gives those away.
audit_has() { grep -F "\"query\":\"via=$1\"" "$T/audit.jsonl" 2>/dev/null |
    grep -Eq "$2"; }
browser='403 browser_request_refused'
while read -r via method status error; do
	want="\"method\":\"$method\",.*\"status\":($status),.*\"outcome\":\"proxy_error\",\"error\":\"($error)\""
	if wait_for 5 audit_has "$via" "$want"; then
		pass "$via: $method refused by the proxy with $status (audited)"
	else
		fail "$via: no $method refused with $status in the audit log:"
		grep -F "via=$via" "$T/audit.jsonl" | sed 's/^/# /'
	fi
done <<EOF
nocors POST $browser
corssimple POST $browser
cors OPTIONS $browser
form POST $browser
img GET $browser
rebind POST 403|421 browser_request_refused|misdirected_host
rebindget GET 421 misdirected_host
rebindimg GET 421 misdirected_host
EOF
tries_re="via=($(printf '%s' "$PAGE_TRIES" | tr ' ' '|'))\""
answered=$(grep -E "\"query\":\"$tries_re" "$T/audit.jsonl" |
    grep -v '"outcome":"proxy_error"')
expect_eq "nothing from the page was answered" "$answered" ""
expect_eq "the tenant saw none of the page's requests" "$(mock_requests)" "$before"
expect_no_match "no via= marker of the page in the tenant's log" \
    "$(cat "$MOCK_LOG")" "$tries_re"
# What reached the proxy, for the log.
audit_responses | tail -n +$((n_audit + 1)) |
    sed -n 's/.*"method":"\([^"]*\)",.*"query":"\([^"]*\)","status":\([0-9]*\),.*"error":\([^}]*\)}/# proxy: \1 \2 \3 \4/p'
tail -n +$((n_log + 1)) "$PROXY_LOG" |
    sed -n 's/^.*request [0-9a-f]*: tenant [^:]*: /# proxy log: /p'

# The proxy still answers a script afterwards.
code=$(px -o /dev/null -w '%{http_code}' -X POST -d '{}' "$INCIDENTS")
expect_eq "still serving" "$code" 200

stop_proxy
finish
