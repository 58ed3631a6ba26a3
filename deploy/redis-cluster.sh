#!/usr/bin/env bash
# A local Redis Cluster on loopback: three masters with a replica each
# (Redis 7 or later, for sharded pub/sub), no persistence.
#
#   deploy/redis-cluster.sh up DIR     # starts it; prints its nodes, comma-separated
#                                      # (what --redis-cluster-node / CHAT_REDIS_CLUSTER_NODES take)
#   deploy/redis-cluster.sh down DIR   # stops what `up` started there, by pid
#
# Ports: REDIS_CLUSTER_PORTS="7000 7001 7002 7003 7004 7005" (six), else
# free ones between 20000 and 22767, so that their cluster bus ports
# (+10000) stay below the local port range the kernel hands to clients.
set -euo pipefail

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pick_ports() {
    local ports=() p
    while [ ${#ports[@]} -lt 6 ]; do
        p=$((20000 + RANDOM % 2768))
        if port_free "$p" && port_free $((p + 10000)) && [[ " ${ports[*]} " != *" $p "* ]]; then
            ports+=("$p")
        fi
    done
    echo "${ports[*]}"
}

up() {
    local dir=$1 ports p nodes=()
    mkdir -p "$dir"
    read -r -a ports <<<"${REDIS_CLUSTER_PORTS:-$(pick_ports)}"
    [ ${#ports[@]} -eq 6 ] || { echo "need six ports, got: ${ports[*]}" >&2; exit 2; }
    for p in "${ports[@]}"; do
        redis-server --port "$p" --bind 127.0.0.1 --daemonize yes \
            --cluster-enabled yes --cluster-node-timeout 2000 \
            --cluster-config-file "nodes-$p.conf" --save "" --appendonly no \
            --dir "$dir" --pidfile "$dir/redis-$p.pid" --logfile "$dir/redis-$p.log"
        nodes+=("127.0.0.1:$p")
    done
    for p in "${ports[@]}"; do
        for _ in $(seq 100); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.1; done
    done
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >"$dir/create.log"
    for p in "${ports[@]}"; do
        for _ in $(seq 300); do
            redis-cli -p "$p" cluster info 2>/dev/null | grep -q '^cluster_state:ok' && break
            sleep 0.1
        done
        redis-cli -p "$p" cluster info | grep -q '^cluster_state:ok' \
            || { echo "Redis Cluster node $p is not ok; see $dir" >&2; exit 1; }
    done
    local list=()
    for p in "${ports[@]}"; do list+=("redis://127.0.0.1:$p"); done
    (IFS=,; echo "${list[*]}")
}

down() {
    local dir=$1 file
    for file in "$dir"/redis-*.pid; do
        [ -f "$file" ] || continue
        kill -TERM "$(cat "$file")" 2>/dev/null || true
        rm -f "$file"
    done
}

case "${1:-}" in
    up) up "${2:?usage: $0 up DIR}" ;;
    down) down "${2:?usage: $0 down DIR}" ;;
    *) echo "usage: $0 up|down DIR" >&2; exit 2 ;;
esac
