#!/usr/bin/env bash
# A/B comparison of two chatd builds on a two-node cluster (MariaDB and
# Redis, clients straight to the nodes), driven by one chat-load binary.
# Rounds alternate the order (A B, B A, ...) so that a drift of the shared
# machine falls on both. For each run it reads both nodes' CPU time
# (utime + stime from /proc/PID/stat) around the chat-load run and divides
# it by the deliveries chat-load counted; set-up (register, login with the
# cheap argon2 setting) is inside that window for both builds alike.
#
#   benches/ab.sh OLD_CHATD NEW_CHATD [ROUNDS]
#
# Environment:
#   CHAT_LOAD    the chat-load binary (default target/release/chat-load)
#   MYSQL_URL    a server URL without database, mysql://USER:PW@127.0.0.1:3306
#                (a database is created and dropped per run; needs `mariadb`)
#   REDIS_URL    default redis://127.0.0.1:6379
#   SCENARIOS    default "saturation steady": 128 clients as fast as their
#                window allows, and 40 clients at 20 msg/s each, 20 s each
#   OUT          directory for logs and chat-load's JSON (default /tmp/chat-ab)
# Needs python3 to read chat-load's JSON. Everything runs on loopback.
set -euo pipefail
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"

old=${1:?usage: $0 OLD_CHATD NEW_CHATD [ROUNDS]}
new=${2:?usage: $0 OLD_CHATD NEW_CHATD [ROUNDS]}
rounds=${3:-2}
load=${CHAT_LOAD:-target/release/chat-load}
mysql_url=${MYSQL_URL:?set MYSQL_URL to mysql://USER:PW@HOST:PORT}
redis_url=${REDIS_URL:-redis://127.0.0.1:6379}
scenarios=${SCENARIOS:-saturation steady}
out=${OUT:-/tmp/chat-ab}
mkdir -p "$out"
ports=(6100 6102)

sql() { mysql_sql "$mysql_url" "$1"; }

scenario_args() {
    case "$1" in
        saturation) echo "--scenario one-to-one --clients 128 --duration 20" ;;
        steady) echo "--scenario one-to-one --clients 40 --rate 20 --duration 20" ;;
        *) echo "unknown scenario $1" >&2; exit 2 ;;
    esac
}

run() { # label chatd round
    local label=$1 chatd=$2 round=$3
    local db="chat_ab_${label}_${round}_$$"
    sql "CREATE DATABASE $db"
    local pids=() i=0
    for port in "${ports[@]}"; do
        i=$((i + 1))
        # The web listener's default port would be taken by the second node;
        # an environment variable, which a build without it ignores.
        CHAT_WEB_ADDR=off CHAT_ARGON2_MEMORY_KIB=64 CHAT_ARGON2_ITERATIONS=1 CHAT_RESUME_KEY=$(printf 'ab%.0s' {1..32}) \
            "$chatd" --listen "127.0.0.1:$port" --node-id "ab$i" \
            --database-url "$mysql_url/$db" --redis-url "$redis_url" --redis-prefix "ab-$db" \
            --login-max-failures-per-address 0 --log warn \
            >"$out/$label-$round-node$i.log" 2>&1 &
        pids+=($!)
        wait_port "$port"
    done
    for scenario in $scenarios; do
        local json="$out/$label-$round-$scenario.json"
        local before after
        before=$(cpu_ticks "${pids[@]}")
        # shellcheck disable=SC2046
        "$load" --addr "127.0.0.1:${ports[0]}" --addr "127.0.0.1:${ports[1]}" \
            $(scenario_args "$scenario") --json "$json" >"$out/$label-$round-$scenario.txt" 2>&1
        after=$(cpu_ticks "${pids[@]}")
        python3 - "$json" "$label" "$round" "$scenario" $(((after - before) * tick_us)) <<'PY'
import json, sys
path, label, round_, scenario, cpu_us = sys.argv[1:6]
s = json.load(open(path))
delivered = s["delivered"] or 1
print(f"{label:4} round {round_} {scenario:10} {s['throughput_msgs_per_s']:9.0f} msg/s"
      f"  ack p99 {s['ack_latency_ms']['p99']:7.1f} ms"
      f"  chatd {int(cpu_us) / delivered:6.1f} us/msg"
      f"  lost {s['lost']} dup {s['duplicated']} reord {s['reordered']}")
PY
    done
    kill -TERM "${pids[@]}"
    wait "${pids[@]}" 2>/dev/null || true
    sql "DROP DATABASE $db"
}

for round in $(seq "$rounds"); do
    if [ $((round % 2)) = 1 ]; then order="old new"; else order="new old"; fi
    for label in $order; do
        if [ "$label" = old ]; then run old "$old" "$round"; else run new "$new" "$round"; fi
    done
done
