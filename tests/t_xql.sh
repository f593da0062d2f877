#!/bin/bash
# t_xql.sh: XQL slots. 8 clients each start a query and poll for its
# results; the tenant never has more than 4 running (xql_max_running) and
# never answers "maximum number of concurrent queries"; the 5th start waits
# for a slot without holding up other calls. A query nobody polls gives its
# slot back after xql_slot_timeout; a start that fails gives it back at once.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

command -v python3 >/dev/null || skip_all "python3 is required"
make_pki
start_mock --xql-max 4 --xql-ms 1500
GOVERNOR="rate_limit = 0" write_config "" "admin_listen = 127.0.0.1:0"
start_proxy
ADMIN_PORT=$(sed -n 's/.*admin: listening on [^ ]*:\([0-9][0-9]*\) .*/\1/p' "$PROXY_LOG" | head -n 1)
metric() {
	curl -sS "http://127.0.0.1:$ADMIN_PORT/metrics" |
	    awk -v k="$1" 'index($0, k " ") == 1 { print $2 }'
}
xql() {	# CALL BODY: prints the answer
	curl -sS --max-time 60 -X POST -H 'Content-Type: application/json' \
	    -d "$2" "$URL/public_api/v1/xql/$1/"
}
q='{"request_data":{"query":"dataset = xdr_data | limit 1"}}'

# client N: start a query, poll its results until SUCCESS.
client() {
	local id ans
	ans=$(xql start_xql_query "$q")
	echo "$ans" > "$T/start.$1"
	id=$(printf '%s' "$ans" | sed -n 's/^{"reply":"\(mockq-[0-9]*\)"}$/\1/p')
	[ -n "$id" ] || return
	while :; do
		ans=$(xql get_query_results "{\"request_data\":{\"query_id\":\"$id\",\"pending_flag\":true}}")
		case $ans in
		*'"status":"PENDING"'*) sleep 0.2 ;;
		*) echo "$ans" > "$T/result.$1"; return ;;
		esac
	done
}
pids=()
for i in $(seq 1 8); do client "$i" & pids+=($!); done
# While 4 run and 4 wait for a slot, another call goes at once.
wait_num 10 -ge 4 metric 'xdrproxy_queue_depth{tenant="acme"}'
expect_eq "4 slots in use" "$(metric 'xdrproxy_xql_slots_in_use{tenant="acme"}')" 4
t=$(px -o /dev/null -w '%{http_code} %{time_total}' -X POST -d '{}' /public_api/v1/incidents/get_incidents/)
expect_match "another call is not held up by the XQL queue" "$t" '^200 0\.'
wait "${pids[@]}"
expect_eq "8 queries started" "$(cat "$T"/start.* | grep -c '^{"reply":"mockq-[0-9]*"}$')" 8
expect_eq "8 results" "$(cat "$T"/result.* | grep -c '"status":"SUCCESS"')" 8
expect_eq "the tenant refused no start" "$(grep -c '"event":"xql_refused"' "$MOCK_LOG")" 0
most=$(sed -n 's/.*"event":"xql_start".*"running":\([0-9]*\).*/\1/p' "$MOCK_LOG" | sort -n | tail -n 1)
if [ "$most" -le 4 ]; then pass "never more than 4 running at the tenant (at most $most)"
else fail "$most queries ran at once at the tenant"; fi
wait_num 5 -eq 0 metric 'xdrproxy_xql_slots_in_use{tenant="acme"}' &&
    pass "every slot given back" || fail "slots still in use: $(metric 'xdrproxy_xql_slots_in_use{tenant="acme"}')"
waited=$(audit_responses | grep '"path":"/public_api/v1/xql/start_xql_query/"' |
    grep -c '"queued_ms":[1-9][0-9][0-9][0-9]')
if [ "$waited" -ge 4 ]; then pass "$waited starts waited over a second for a slot"
else fail "only $waited starts waited for a slot"; fi

# A start the tenant refuses gives its slot back.
expect_match "a failed start" "$(curl -sS -X POST -H 'X-Mock-Status: 500' -d "$q" \
    "$URL/public_api/v1/xql/start_xql_query/")" '"err_code":500'
expect_eq "its slot given back" "$(metric 'xdrproxy_xql_slots_in_use{tenant="acme"}')" 0
# A start that went out and whose client left before the answer: the
# tenant may run it, so its slot stays taken (until xql_slot_timeout).
curl -sS --max-time 1 -o /dev/null -X POST -H 'X-Mock-Delay-Ms: 2500' -d "$q" \
    "$URL/public_api/v1/xql/start_xql_query/" 2>/dev/null
wait_for 5 grep -q '"status":499,.*"attempts":1,' "$T/audit.jsonl"
expect_eq "a start sent, its client gone: the slot stays taken" \
    "$(metric 'xdrproxy_xql_slots_in_use{tenant="acme"}')" 1
stop_proxy

# Nobody polls: the slots come back after xql_slot_timeout.
GOVERNOR="rate_limit = 0
xql_slot_timeout = 2s" write_config "" "admin_listen = 127.0.0.1:0"
start_proxy
ADMIN_PORT=$(sed -n 's/.*admin: listening on [^ ]*:\([0-9][0-9]*\) .*/\1/p' "$PROXY_LOG" | head -n 1)
for i in 1 2 3 4; do xql start_xql_query "$q" > /dev/null; done
expect_eq "4 slots taken" "$(metric 'xdrproxy_xql_slots_in_use{tenant="acme"}')" 4
t=$(curl -sS -o "$T/fifth" -w '%{time_total}' -X POST -d "$q" "$URL/public_api/v1/xql/start_xql_query/")
expect_match "the 5th start: a query id" "$(cat "$T/fifth")" '^\{"reply":"mockq-[0-9]+"\}$'
if python3 -c "import sys; sys.exit(0 if 1.5 <= float('$t') < 6 else 1)"; then
	pass "the 5th waited for xql_slot_timeout ($t s)"
else fail "the 5th took $t s"; fi
expect_match "the freed slot is logged" "$(cat "$PROXY_LOG")" \
    'tenant acme: XQL query mockq-[0-9]+ gave no final status within xql_slot_timeout; its slot is free again'
stop_proxy
finish
