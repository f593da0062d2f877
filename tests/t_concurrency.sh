#!/bin/bash
# t_concurrency.sh: 50 clients at once. Every one answered correctly and
# signed with its own nonce, one audit record each, upstream connections
# pooled: never more than max_connections of them, each carrying several
# requests, and kept for the next wave.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

make_pki
start_mock
# One pool, its reuse checked; 8 connections for 50 clients held 500 ms
# each, so the limit is reached and requests wait for a connection.
MAXCONN=8
write_config "http2 = no" "workers = 1
max_connections = $MAXCONN"
start_proxy

N=50
clients=()
for i in $(seq 1 $N); do
	curl -sS --max-time 60 -o "$T/out.$i" -w '%{http_code}\n' -X POST \
	    -H 'Content-Type: application/json' -H 'X-Mock-Delay-Ms: 500' \
	    -d "{\"request_data\":{\"client\":$i}}" \
	    "$URL/public_api/v1/incidents/get_incident_extra_data/?client=$i" \
	    > "$T/code.$i" &
	clients+=($!)
done
wait "${clients[@]}"
ok=0
for i in $(seq 1 $N); do
	if [ "$(cat "$T/code.$i")" = 200 ] &&
	    grep -q "\"uri\":\"/public_api/v1/incidents/get_incident_extra_data/?client=$i\"" "$T/out.$i"; then
		ok=$((ok + 1))
	fi
done
expect_eq "$N concurrent clients each got their own answer" "$ok" $N

reqs=$(grep '"event":"request"' "$MOCK_LOG")
expect_eq "tenant saw $N requests" "$(printf '%s\n' "$reqs" | wc -l)" $N
expect_eq "all signatures accepted" "$(printf '%s\n' "$reqs" | grep -c '"auth":"ok"')" $N
expect_eq "$N distinct nonces" \
    "$(printf '%s\n' "$reqs" | sed -n 's/.*"nonce":"\([^"]*\)".*/\1/p' | sort -u | wc -l)" $N
wait_num 10 -ge $N audit_count
expect_eq "$N audit records" "$(audit_count)" $N
expect_eq "$N distinct request ids" \
    "$(audit_responses | sed -n 's/.*"request_id":"\([^"]*\)".*/\1/p' | sort -u | wc -l)" $N
expect_eq "all audited ok" "$(grep -c '"status":200,.*"outcome":"ok"' "$T/audit.jsonl")" $N
conns=$(grep -c '"event":"connection"' "$MOCK_LOG")
if [ "$conns" -ge 2 ] && [ "$conns" -le $MAXCONN ]; then
	pass "upstream connections: $conns for $N requests (2..$MAXCONN)"
else
	fail "upstream connections: $conns for $N requests, want 2..$MAXCONN"
fi
# Every request went over one of those, so each carried several.
expect_eq "requests spread over the $conns connections only" \
    "$(printf '%s\n' "$reqs" | sed -n 's/.*"conn":\([0-9]*\),.*/\1/p' | sort -u | wc -l)" \
    "$conns"
busiest=$(printf '%s\n' "$reqs" | sed -n 's/.*"conn":\([0-9]*\),.*/\1/p' |
    sort | uniq -c | sort -rn | awk 'NR == 1 { print $1 }')
if [ "${busiest:-0}" -ge $(( (N + MAXCONN - 1) / MAXCONN )) ]; then
	pass "connections reused: the busiest carried $busiest requests"
else
	fail "connections reused: the busiest carried ${busiest:-0} requests"
fi

# A second wave reuses the pool: no new upstream connections.
clients=()
for i in $(seq 1 20); do
	curl -sS --max-time 60 -o /dev/null -X POST -d '{}' \
	    "$URL/public_api/v1/x/" &
	clients+=($!)
done
wait "${clients[@]}"
expect_eq "second wave reuses pooled connections" \
    "$(grep -c '"event":"connection"' "$MOCK_LOG")" "$conns"

stop_proxy
finish
