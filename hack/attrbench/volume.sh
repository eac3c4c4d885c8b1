#!/bin/bash
# search_traces attribute filters on the 50 M-span tenant of hack/mcpbench (docs/benchmarks.md,
# "Attribute search", at volume): starts the given tracekit binary on tracekit_bench50m, creates an API
# key, and calls search_traces N times per case through /mcp (each call distinct: a random max_tokens
# defeats answer sharing), printing p50/p95/max and the last answer's total.
# usage: hack/attrbench/volume.sh <tracekit binary> <port> [N]
BIN=$1; PORT=$2; N=${3:-30}
DB='postgres://postgres@127.0.0.1:5432/tracekit_bench50m?sslmode=disable'
KEY=$($BIN apikey create --tenant bench --database-url "$DB" 2>/dev/null | tail -1)
[ -z "$KEY" ] && { echo "no key"; $BIN apikey create --tenant bench --database-url "$DB"; exit 1; }
$BIN server --database-url "$DB" --addr 127.0.0.1:$PORT --grpc-addr "" >${TMPDIR:-/tmp}/attrbench-server-$PORT.log 2>&1 &
SP=$!; trap "kill $SP" EXIT
for i in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:$PORT/healthz && break; sleep 0.2; done
call() { # args json
  curl -s -o ${TMPDIR:-/tmp}/attrbench-out.json -w '%{time_total}\n' -X POST http://127.0.0.1:$PORT/mcp -H "Authorization: Bearer $KEY" \
   -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' -H 'Mcp-Protocol-Version: 2025-06-18' \
   -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"search_traces\",\"arguments\":$1}}"
}
# The windows end where the documented load ends (-end 2026-12-04T19:00:00Z).
W1='"start":"2026-12-04T18:00:00Z","end":"2026-12-04T19:00:00Z"'
W24='"start":"2026-12-03T19:00:00Z","end":"2026-12-04T19:00:00Z"'
i=0
while read -r label args; do
  i=$((i+1))
  for k in $(seq $N); do
    a=${args//@W1@/$W1}; a=${a//@W24@/$W24}; a=${a//@R@/$RANDOM}; a="${a%\}},\"max_tokens\":$((3000+RANDOM%1000))}"
    call "$a"
  done | sort -n | awk -v l="$label" '{v[NR]=$1} END {printf "%-40s p50 %6.1f ms  p95 %6.1f ms  max %6.1f ms\n", l, v[int(NR*0.5)+1]*1000, v[int(NR*0.95)]*1000, v[NR]*1000}'
  grep -o '"total[a-z_]*":[0-9]*\|"isError":true' ${TMPDIR:-/tmp}/attrbench-out.json | head -2 | tr '\n' ' '; echo
done <<'CASES'
u_00000(0.09%)/1h {"attributes":{"user.id":"u_00000"},@W1@}
u_00000(0.09%)/24h {"attributes":{"user.id":"u_00000"},@W24@}
u_00000+frontend/24h {"service":"frontend","attributes":{"user.id":"u_00000"},@W24@}
u_01000(tail)/1h {"attributes":{"user.id":"u_01000"},@W1@}
u_01000(tail)/24h {"attributes":{"user.id":"u_01000"},@W24@}
u_01000+frontend/24h {"service":"frontend","attributes":{"user.id":"u_01000"},@W24@}
none/1h {"attributes":{"user.id":"nobody-@R@"},@W1@}
none/24h {"attributes":{"user.id":"nobody-@R@"},@W24@}
none+frontend/24h {"service":"frontend","attributes":{"user.id":"nobody-@R@"},@W24@}
none+frontend/1h {"service":"frontend","attributes":{"user.id":"nobody-@R@"},@W1@}
CASES
