#!/usr/bin/env bash
# Brings a local chat cluster up or down on loopback: two chatd nodes and
# nginx in front of them (TCP clients and browsers), on the MySQL/MariaDB
# and Redis you give it.
#
#   deploy/cluster.sh up      # builds chatd (release), starts everything
#   deploy/cluster.sh down    # stops what `up` started, by pid
#   deploy/cluster.sh status
#
# Settings (environment):
#   CHAT_DATABASE_URL  mysql://USER:PASSWORD@127.0.0.1:3306/chat  (required)
#   CHAT_REDIS_URL     redis://127.0.0.1:6379                     (default)
#   CHAT_REDIS_CLUSTER_NODES  redis://HOST:PORT,...  a Redis Cluster instead
#   REDIS_CLUSTER=1    start a local Redis Cluster (deploy/redis-cluster.sh,
#                      in CLUSTER_DIR/redis-cluster) and put the nodes on it
#   CHAT_RESUME_KEY    secret shared by the nodes to sign resume tokens
#                      (default: the nodes agree on one kept in Redis)
#   CLUSTER_DIR        state: pids, logs, nginx config  (default ./cluster)
#   LB_PORT=8000 NODE1_PORT=6000 NODE2_PORT=6002          TCP (chat protocol)
#   WEB_PORT=8080 NODE1_WEB_PORT=6080 NODE2_WEB_PORT=6082  browsers (http, /ws)
#   CHATD              a chatd binary to use instead of building one
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir=${CLUSTER_DIR:-$PWD/cluster}
lb_port=${LB_PORT:-8000}
ports=("${NODE1_PORT:-6000}" "${NODE2_PORT:-6002}")
web_port=${WEB_PORT:-8080}
web_ports=("${NODE1_WEB_PORT:-6080}" "${NODE2_WEB_PORT:-6082}")
redis_url=${CHAT_REDIS_URL:-redis://127.0.0.1:6379}
redis_cluster_nodes=${CHAT_REDIS_CLUSTER_NODES:-}

wait_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on port $1; see $dir/*.log" >&2
    return 1
}

stop_pid() { # name
    local file="$dir/$1.pid"
    [ -f "$file" ] || return 0
    local pid
    pid=$(cat "$file")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    fi
    rm -f "$file"
    echo "stopped $1 ($pid)"
}

up() {
    : "${CHAT_DATABASE_URL:?set CHAT_DATABASE_URL to a mysql:// URL the nodes share}"
    # The nodes read it from their environment: on their command lines its
    # password would show in `ps` to every user of the machine.
    export CHAT_DATABASE_URL
    command -v nginx >/dev/null || { echo "nginx is not installed (apt-get install nginx libnginx-mod-stream)" >&2; exit 1; }
    mkdir -p "$dir"
    local chatd=${CHATD:-}
    if [ -z "$chatd" ]; then
        cargo build --release -p chatd --manifest-path "$root/Cargo.toml"
        chatd="$root/target/release/chatd"
    fi
    # Without CHAT_RESUME_KEY the nodes agree on one in Redis (the first
    # to start makes it), so a token from one node works on the other.
    if [ "${REDIS_CLUSTER:-}" = 1 ] && [ -z "$redis_cluster_nodes" ]; then
        if [ -f "$dir/redis-cluster/nodes" ]; then
            redis_cluster_nodes=$(cat "$dir/redis-cluster/nodes")
        else
            redis_cluster_nodes=$("$root/deploy/redis-cluster.sh" up "$dir/redis-cluster")
            echo "$redis_cluster_nodes" >"$dir/redis-cluster/nodes"
        fi
        echo "Redis Cluster: $redis_cluster_nodes"
    fi
    local redis_args=(--redis-url "$redis_url")
    if [ -n "$redis_cluster_nodes" ]; then
        # One Redis or a Cluster: chatd refuses both.
        unset CHAT_REDIS_URL
        redis_args=()
        local node
        IFS=, read -r -a nodes <<<"$redis_cluster_nodes"
        for node in "${nodes[@]}"; do redis_args+=(--redis-cluster-node "$node"); done
    fi
    local i=0
    for port in "${ports[@]}"; do
        local web=${web_ports[$i]}
        i=$((i + 1))
        [ -f "$dir/node$i.pid" ] && kill -0 "$(cat "$dir/node$i.pid")" 2>/dev/null && { echo "node$i already running"; continue; }
        # Each node's web listener on a port of its own (the default,
        # 127.0.0.1:6080, would be taken by the first); nginx is in front.
        "$chatd" --listen "127.0.0.1:$port" --web-addr "127.0.0.1:$web" --node-id "node$i" \
            "${redis_args[@]}" \
            --proxy-protocol-from 127.0.0.2 \
            >"$dir/node$i.log" 2>&1 &
        echo $! >"$dir/node$i.pid"
        wait_port "$port"
        wait_port "$web"
        echo "node$i on 127.0.0.1:$port, web 127.0.0.1:$web (pid $(cat "$dir/node$i.pid"))"
    done
    # \b: a port just written (say 60801) is not rewritten by a later line.
    sed -e "s#127\.0\.0\.1:8000\b#127.0.0.1:$lb_port#" \
        -e "s#127\.0\.0\.1:6000\b#127.0.0.1:${ports[0]}#" \
        -e "s#127\.0\.0\.1:6002\b#127.0.0.1:${ports[1]}#" \
        -e "s#127\.0\.0\.1:8080\b#127.0.0.1:$web_port#" \
        -e "s#127\.0\.0\.1:6080\b#127.0.0.1:${web_ports[0]}#" \
        -e "s#127\.0\.0\.1:6082\b#127.0.0.1:${web_ports[1]}#" \
        -e "s#^pid .*#pid $dir/nginx.pid;#" \
        -e "s#^load_module modules/#load_module $(nginx_modules)/#" \
        "$root/deploy/nginx/chat.conf" >"$dir/nginx.conf"
    # -p: the http block's temp directories are relative to it.
    nginx -t -q -p "$dir/" -c "$dir/nginx.conf" -e "$dir/nginx.log"
    nginx -p "$dir/" -c "$dir/nginx.conf" -e "$dir/nginx.log" >>"$dir/nginx.log" 2>&1 &
    # nginx writes its own pid file; wait for it and the ports.
    wait_port "$lb_port"
    wait_port "$web_port"
    echo "nginx on 127.0.0.1:$lb_port (pid $(cat "$dir/nginx.pid"))"
    echo "web client: http://127.0.0.1:$web_port/"
}

nginx_modules() {
    local path
    path=$(nginx -V 2>&1 | tr ' ' '\n' | sed -n 's/^--modules-path=//p')
    echo "${path:-/usr/lib/nginx/modules}"
}

down() {
    stop_pid nginx
    stop_pid node1
    stop_pid node2
    if [ -f "$dir/redis-cluster/nodes" ]; then
        "$root/deploy/redis-cluster.sh" down "$dir/redis-cluster"
        rm -f "$dir/redis-cluster/nodes"
        echo "stopped the Redis Cluster"
    fi
}

status() {
    for name in nginx node1 node2; do
        if [ -f "$dir/$name.pid" ] && kill -0 "$(cat "$dir/$name.pid")" 2>/dev/null; then
            echo "$name: running (pid $(cat "$dir/$name.pid"))"
        else
            echo "$name: stopped"
        fi
    done
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
