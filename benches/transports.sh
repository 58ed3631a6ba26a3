#!/usr/bin/env bash
# TCP against WebSocket on one chatd (SQLite, clients straight to the node),
# driven by one chat-load binary: one-to-one at saturation and at a fixed
# half load, with chatd's CPU time per delivered message (utime + stime
# from /proc/PID/stat around each chat-load run, divided by the
# deliveries it counted), then the node's memory per idle connection.
# Rounds alternate the order (tcp ws, ws tcp, ...) so that a drift of the
# shared machine falls on both.
#
#   benches/transports.sh [ROUNDS]
#
# Environment:
#   CHATD, CHAT_LOAD  the binaries (default target/release/...)
#   CLIENTS           one-to-one clients (default 128)
#   DURATION          seconds per run (default 10)
#   HALF_RATE         messages/s per client at half load (default: half of
#                     the first TCP saturation run)
#   IDLE              idle connections per transport (default 10000)
#   OUT               directory for logs and chat-load's JSON (default /tmp/chat-transports)
# Needs python3 to read chat-load's JSON. Everything runs on loopback.
set -euo pipefail
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"

rounds=${1:-2}
chatd=${CHATD:-target/release/chatd}
load=${CHAT_LOAD:-target/release/chat-load}
clients=${CLIENTS:-128}
duration=${DURATION:-10}
idle=${IDLE:-10000}
out=${OUT:-/tmp/chat-transports}
tcp_port=6200 web_port=6201
rm -rf "$out" && mkdir -p "$out"

start_chatd() {
    rm -f "$out"/chat.db*
    CHAT_ARGON2_MEMORY_KIB=64 CHAT_ARGON2_ITERATIONS=1 "$chatd" \
        --listen "127.0.0.1:$tcp_port" --web-addr "127.0.0.1:$web_port" \
        --database-url "sqlite://$out/chat.db?mode=rwc" --max-connections 19000 \
        --log warn >>"$out/chatd.log" 2>&1 &
    pid=$!
    wait_port "$tcp_port"
    wait_port "$web_port"
}

addr_of() { if [ "$1" = tcp ]; then echo "127.0.0.1:$tcp_port"; else echo "127.0.0.1:$web_port"; fi; }

# transport name extra-args...: one chat-load run, one line of figures.
measure() {
    local transport=$1 name=$2
    shift 2
    local json="$out/$name-$transport.json" before after
    before=$(cpu_ticks "$pid")
    "$load" --addr "$(addr_of "$transport")" --transport "$transport" --scenario one-to-one \
        --clients "$clients" --duration "$duration" "$@" --json "$json" \
        >"$out/$name-$transport.txt" 2>&1
    after=$(cpu_ticks "$pid")
    python3 - "$json" "$transport" "$name" $(((after - before) * tick_us)) <<'PY'
import json, sys
path, transport, name, cpu_us = sys.argv[1:5]
s = json.load(open(path))
delivered = s["delivered"] or 1
print(f"{name:12} {transport:3} {s['throughput_msgs_per_s']:8.0f} msg/s"
      f"  ack p50 {s['ack_latency_ms']['p50']:6.1f} p99 {s['ack_latency_ms']['p99']:6.1f} ms"
      f"  delivery p99 {s['latency_ms']['p99']:6.1f} ms"
      f"  chatd {int(cpu_us) / delivered:6.1f} us/msg"
      f"  lost {s['lost']} dup {s['duplicated']} reord {s['reordered']}")
PY
}

start_chatd
half=${HALF_RATE:-}
for round in $(seq "$rounds"); do
    if [ $((round % 2)) = 1 ]; then order="tcp ws"; else order="ws tcp"; fi
    for transport in $order; do
        measure "$transport" "sat-$round"
        if [ -z "$half" ]; then
            half=$(python3 -c "import json; s=json.load(open('$out/sat-$round-$transport.json')); print(round(s['throughput_msgs_per_s'] / 2 / $clients, 1))")
            echo "half load: $half msg/s per client"
        fi
    done
    for transport in $order; do
        measure "$transport" "half-$round" --rate "$half"
    done
done
kill -TERM "$pid"; wait "$pid" 2>/dev/null || true

# Memory per idle connection: a fresh node per transport.
for transport in tcp ws; do
    start_chatd
    "$load" --addr "$(addr_of "$transport")" --transport "$transport" --scenario idle \
        --clients "$idle" --duration 10 --connect-concurrency 128 --server-pid "$pid" \
        >"$out/idle-$transport.txt" 2>&1
    echo "idle $transport: $(grep -i 'server RSS' "$out/idle-$transport.txt" || tail -3 "$out/idle-$transport.txt")"
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
done
