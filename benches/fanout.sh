#!/usr/bin/env bash
# Group fan-out on one node against two nodes, on one Redis and on a Redis
# Cluster, in one run: the same group load (chat-load --scenario group,
# clients spread over the nodes) against each deployment, for one chatd
# build or two (to compare a change). Rounds alternate the order of the
# builds so that a drift of the shared machine falls on both.
#
# Deployments, each on a fresh MariaDB database:
#   one      one node, in-process bus and presence
#   redis    NODES nodes (default two) on one Redis
#   cluster  NODES nodes on a Redis Cluster
# For each run it prints the deliveries per second and the CPU time per
# delivery of the nodes, of Redis and of MariaDB (utime + stime from /proc
# around the chat-load run, set-up included; MariaDB's when its server runs
# on this machine), and at the end each build's two-node rate as a share of
# its one-node rate.
#
#   benches/fanout.sh CHATD [OTHER_CHATD] [ROUNDS]
#
# Environment:
#   CHAT_LOAD      the chat-load binary (default target/release/chat-load)
#   MYSQL_URL      a server URL without database, mysql://USER:PW@127.0.0.1:3306
#                  (a database is created and dropped per run; needs `mariadb`)
#   REDIS_URL      default redis://127.0.0.1:6379
#   REDIS_CLUSTER  a Redis Cluster's nodes, comma-separated (default: one is
#                  started in OUT/redis-cluster with deploy/redis-cluster.sh
#                  and stopped at the end)
#   DEPLOYMENTS    default "one redis cluster"
#   NODES          nodes of the redis and cluster deployments (default 2;
#                  they listen on 127.0.0.1:6200, 6202, ...)
#   WRITERS        batch writers in all, shared out over the nodes (each gets
#                  WRITERS / nodes, at least one: `--batch-writers`), so that
#                  the database takes as many transactions at once whatever
#                  the number of nodes (default: chatd's own, per node)
#   LOAD           chat-load's scenario flags (default: 200 clients in groups
#                  of 100, 10 senders a group, 20 s)
#   OUT            directory for logs and chat-load's JSON (default /tmp/chat-fanout)
# Needs python3 to read chat-load's JSON. Everything runs on loopback.
set -euo pipefail
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"
root=$(cd "$(dirname "$0")/.." && pwd)

usage="usage: $0 CHATD [OTHER_CHATD] [ROUNDS]"
builds=("${1:?$usage}")
[ -n "${2:-}" ] && builds+=("$2")
rounds=${3:-1}
load=${CHAT_LOAD:-target/release/chat-load}
mysql_url=${MYSQL_URL:?set MYSQL_URL to mysql://USER:PW@HOST:PORT}
redis_url=${REDIS_URL:-redis://127.0.0.1:6379}
deployments=${DEPLOYMENTS:-one redis cluster}
load_args=${LOAD:---scenario group --clients 200 --group-size 100 --group-senders 10 --duration 20}
out=${OUT:-/tmp/chat-fanout}
mkdir -p "$out"
nodes_wanted=${NODES:-2}

sql() { mysql_sql "$mysql_url" "$1"; }

redis_cluster=${REDIS_CLUSTER:-}
if [[ " $deployments " == *" cluster "* ]] && [ -z "$redis_cluster" ]; then
    echo "starting a Redis Cluster in $out/redis-cluster" >&2
    redis_cluster=$("$root/deploy/redis-cluster.sh" up "$out/redis-cluster")
    trap '"$root/deploy/redis-cluster.sh" down "$out/redis-cluster"' EXIT
fi

# Process ids of the Redis servers behind redis://HOST:PORT,...
redis_pids() {
    local url
    IFS=, read -r -a urls <<<"$1"
    for url in "${urls[@]}"; do
        url=${url#redis://}
        redis-cli -h "${url%:*}" -p "${url##*:}" info server | tr -d '\r' | sed -n 's/^process_id://p'
    done
}

run() { # deployment build-index chatd round
    local deployment=$1 index=$2 chatd=$3 round=$4
    local label="$deployment-b$index-r$round"
    local db="chat_fanout_${deployment}_${index}_${round}_$$"
    sql "CREATE DATABASE $db"
    local nodes=$nodes_wanted backend=() redis=""
    case "$deployment" in
        one) nodes=1 ;;
        redis) backend=(--redis-url "$redis_url" --redis-prefix "fanout-$db") redis=$redis_url ;;
        cluster)
            backend=(--redis-prefix "fanout-$db") redis=$redis_cluster
            IFS=, read -r -a seeds <<<"$redis_cluster"
            for seed in "${seeds[@]}"; do backend+=(--redis-cluster-node "$seed"); done
            ;;
        *) echo "unknown deployment $deployment" >&2; exit 2 ;;
    esac
    local writers=()
    [ -n "${WRITERS:-}" ] && writers=(--batch-writers $((WRITERS / nodes > 0 ? WRITERS / nodes : 1)))
    local pids=() addrs=() i
    for i in $(seq "$nodes"); do
        local port=$((6198 + 2 * i))
        CHAT_ARGON2_MEMORY_KIB=64 CHAT_ARGON2_ITERATIONS=1 \
            "$chatd" --listen "127.0.0.1:$port" --web-addr off --node-id "fanout$i" \
            --database-url "$mysql_url/$db" "${backend[@]}" "${writers[@]}" \
            --login-max-failures-per-address 0 --log warn \
            >"$out/$label-node$i.log" 2>&1 &
        pids+=($!)
        addrs+=(--addr "127.0.0.1:$port")
        wait_port "$port"
    done
    local rpids=()
    [ -n "$redis" ] && mapfile -t rpids < <(redis_pids "$redis")
    local json="$out/$label.json" before after rbefore=0 rafter=0 dbefore=0 dafter=0
    local dbpid
    dbpid=$(pgrep -x mariadbd || pgrep -x mysqld || true)
    before=$(cpu_ticks "${pids[@]}")
    [ -n "$redis" ] && rbefore=$(cpu_ticks "${rpids[@]}")
    [ -n "$dbpid" ] && dbefore=$(cpu_ticks "$dbpid")
    # shellcheck disable=SC2086
    "$load" "${addrs[@]}" $load_args --json "$json" >"$out/$label.txt" 2>&1
    after=$(cpu_ticks "${pids[@]}")
    [ -n "$redis" ] && rafter=$(cpu_ticks "${rpids[@]}")
    [ -n "$dbpid" ] && dafter=$(cpu_ticks "$dbpid")
    python3 - "$json" "$deployment" "$index" "$round" $(((after - before) * tick_us)) \
        $(((rafter - rbefore) * tick_us)) $(((dafter - dbefore) * tick_us)) <<'PY' | tee -a "$out/results.txt"
import json, sys
path, deployment, build, round_, cpu_us, redis_us, db_us = sys.argv[1:8]
s = json.load(open(path))
delivered = s["delivered"] or 1
rate = s["delivered"] / s["load_s"]
print(f"{deployment:8} build {build} round {round_} {rate:9.0f} deliveries/s"
      f"  chatd {int(cpu_us) / delivered:5.2f} us  redis {int(redis_us) / delivered:5.2f} us"
      f"  db {int(db_us) / delivered:5.2f} us per delivery"
      f"  lost {s['lost']} dup {s['duplicated']} reord {s['reordered']}")
PY
    kill -TERM "${pids[@]}"
    wait "${pids[@]}" 2>/dev/null || true
    sql "DROP DATABASE $db"
}

: >"$out/results.txt"
for round in $(seq "$rounds"); do
    order=$(seq 0 $((${#builds[@]} - 1)))
    [ $((round % 2)) = 0 ] && order=$(echo "$order" | tac)
    for deployment in $deployments; do
        for index in $order; do
            run "$deployment" "$index" "${builds[$index]}" "$round"
        done
    done
done

# Each build's two-node rates as a share of its one-node rate (means over
# the rounds).
python3 - "$out/results.txt" <<'PY'
import collections, sys
rates = collections.defaultdict(list)
for line in open(sys.argv[1]):
    f = line.split()
    rates[(f[0], f[2])].append(float(f[5]))
mean = {k: sum(v) / len(v) for k, v in rates.items()}
for (deployment, build), rate in sorted(mean.items()):
    one = mean.get(("one", build))
    if deployment != "one" and one:
        print(f"build {build}: {deployment} {rate:.0f} / one {one:.0f} = {100 * rate / one:.0f} %")
PY
