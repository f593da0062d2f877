#!/bin/bash
# tests/demo.sh: the demo. Installs what is needed (Debian 12), builds, and
# runs xdrproxy on 127.0.0.1:8080 in front of the bundled mock tenant, with
# a throwaway CA and API key under demo/. Ctrl-C stops both.
#   DEMO_PORT=8081 tests/demo.sh    to listen elsewhere
set -eu

cd "$(dirname "$0")/.."
top=$(pwd)
port=${DEMO_PORT:-8080}
d=$top/demo

tests/deps.sh
tests/build.sh build

rm -rf "$d"
mkdir -p "$d"
chmod 700 "$d"
(
	cd "$d"
	openssl ecparam -name prime256v1 -genkey -noout -out ca.key
	openssl req -x509 -new -key ca.key -days 30 -subj "/CN=xdrproxy demo CA" -out ca.pem
	openssl ecparam -name prime256v1 -genkey -noout -out tenant.key
	openssl req -new -key tenant.key -subj "/CN=api-demo.xdr.example" -out tenant.csr
	printf 'subjectAltName=DNS:api-demo.xdr.example\n' > tenant.ext
	openssl x509 -req -in tenant.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
	    -days 30 -extfile tenant.ext -out tenant.pem
) > "$d/openssl.log" 2>&1
# A random advanced API key, as the console would give one.
(umask 077; head -c 96 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 128 > "$d/api.key")

pids=()
stop() {
	trap - INT TERM EXIT
	kill -TERM "${pids[@]}" 2>/dev/null || true
	wait 2>/dev/null || true
	echo
	echo "demo stopped; its files are in demo/ (audit log: demo/audit.jsonl)"
}
trap stop INT TERM EXIT

build/tests/mocktenant --listen 127.0.0.1:0 --cert "$d/tenant.pem" --key "$d/tenant.key" \
    --key-id 1 --key-file "$d/api.key" --port-file "$d/tenant.port" \
    --log "$d/tenant.jsonl" 2> "$d/tenant.err" &
pids+=($!)
for _ in $(seq 100); do [ -s "$d/tenant.port" ] && break; sleep 0.1; done
[ -s "$d/tenant.port" ] || { cat "$d/tenant.err"; exit 1; }

cat > "$d/xdrproxy.conf" <<EOF2
# The demo: xdrproxy in front of the mock tenant (see etc/xdrproxy.conf.example).
[proxy]
audit_log = $d/audit.jsonl

[tenant demo]
listen     = 127.0.0.1:$port
fqdn       = demo.xdr.example
key_id     = 1
key_file   = $d/api.key
ca_file    = $d/ca.pem
connect_to = 127.0.0.1:$(cat "$d/tenant.port")
EOF2

cat <<EOF2

xdrproxy demo: listening on http://127.0.0.1:$port, signing for the mock
tenant api-demo.xdr.example (which checks every signature). In another
terminal:

  curl -s -X POST http://127.0.0.1:$port/public_api/v1/incidents/get_incidents/ \\
       -H 'Content-Type: application/json' -d '{"request_data":{}}'

  tail -f demo/audit.jsonl       # one record per request
  tail -f demo/tenant.jsonl      # what the tenant received, signature included

Ctrl-C stops the demo.

EOF2
build/src/xdrproxy -c "$d/xdrproxy.conf" &
pids+=($!)
wait "${pids[1]}"
