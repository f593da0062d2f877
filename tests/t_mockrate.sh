#!/bin/bash
# t_mockrate.sh: the mock tenant's --rate N, the busy tenant the governor
# (issue 10) is tested against: past N requests in one second it answers
# 429 with the vendor's error, logs it, and serves again a second later.
# Today xdrproxy relays that 429 as the tenant's answer.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

make_pki
start_mock --rate 3
write_config
start_proxy

: > "$T/urls"
for i in $(seq 1 12); do
	printf 'url = "%s/public_api/v1/x/burst-%s/"\n' "$URL" "$i" >> "$T/urls"
	printf 'output = "%s/out.%s"\n' "$T" "$i" >> "$T/urls"
done
codes=$(curl -sS --no-progress-meter --parallel --parallel-max 12 -X POST -d '{}' -K "$T/urls" \
    -w '%{http_code}\n' | sort | uniq -c | tr -s ' ' | tr '\n' ' ')
n429=$(grep -l '"err_code":429' "$T"/out.* | wc -l)
expect_match "a burst of 12 against --rate 3: some 429" "$codes" ' 429 '
expect_match "at least the first 3 served" \
    "$(grep -c '"err_code"' "$T"/out.* | grep -c ':0$')" '^([3-9]|1[0-2])$'
expect_match "the 429 is the vendor's error" "$(grep -h '"err_code":429' "$T"/out.* | head -n 1)" \
    '^\{"reply":\{"err_code":429,"err_msg":"Too many requests","err_extra":null\}\}$'
wait_num 5 -ge 12 audit_count
expect_eq "each 429 logged by the mock" \
    "$(grep -c '"event":"rate_limited"' "$MOCK_LOG")" "$n429"
expect_eq "xdrproxy relays the tenant's 429 (outcome ok)" \
    "$(audit_responses | grep -c '"status":429,.*"outcome":"ok"')" "$n429"
# A second later the window has room again.
served() { [ "$(curl -sS -o /dev/null -w '%{http_code}' -X POST -d '{}' "$URL/public_api/v1/x/later/")" = 200 ]; }
if wait_for 5 served; then pass "served again once the second is over"; else fail "still 429 after 5 s"; fi

stop_proxy
finish
