#!/usr/bin/env bash
# Where chatd's CPU goes per message: two nodes on MariaDB and Redis, each
# under valgrind's callgrind (instruction counts, which repeat on a shared
# machine where timings do not), driven by a fixed light load across the
# nodes (chat-load one-to-one at a fixed rate). Counting is zeroed once the
# nodes are up and dumped when the load ends, so the figures are the load
# phase's alone (the clients' logins included: cheap argon2 settings).
# Prints each node's instructions per delivered message: inclusive counts
# of entry points (dispatch, the store, SeaORM and sqlx, the bus, JSON,
# spawning, logging) and the C library's own (memcpy, malloc); the raw
# profiles stay in OUT for callgrind_annotate.
#
#   benches/profile.sh CHATD
#
# Environment:
#   CHAT_LOAD   the chat-load binary (default target/release/chat-load)
#   MYSQL_URL   a server URL without database, mysql://USER:PW@127.0.0.1:3306
#               (a database is created and dropped; needs `mariadb`)
#   REDIS_URL   default redis://127.0.0.1:6379
#   LOAD        chat-load's flags (default: 20 clients, 10 pairs across the
#               nodes, 2 messages/s each, 30 s: about 1,200 messages)
#   OUT         directory for the profiles and logs (default /tmp/chat-profile)
# Needs valgrind (callgrind, callgrind_control) and python3. Build chatd
# with debug info (the release profile has it) so that functions have names.
set -euo pipefail
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"

chatd=${1:?usage: $0 CHATD}
load=${CHAT_LOAD:-target/release/chat-load}
mysql_url=${MYSQL_URL:?set MYSQL_URL to mysql://USER:PW@HOST:PORT}
redis_url=${REDIS_URL:-redis://127.0.0.1:6379}
load_args=${LOAD:---scenario one-to-one --clients 20 --rate 2 --duration 30}
out=${OUT:-/tmp/chat-profile}
mkdir -p "$out"
rm -f "$out"/callgrind.*

sql() { mysql_sql "$mysql_url" "$1"; }
db="chat_profile_$$"
sql "CREATE DATABASE $db"
pids=()
cleanup() {
    [ ${#pids[@]} -gt 0 ] && kill -TERM "${pids[@]}" 2>/dev/null
    wait 2>/dev/null || true
    sql "DROP DATABASE IF EXISTS $db" || true
}
trap cleanup EXIT

addrs=()
for i in 1 2; do
    port=$((6298 + 2 * i))
    CHAT_ARGON2_MEMORY_KIB=64 CHAT_ARGON2_ITERATIONS=1 \
        valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.node$i.%p" \
        "$chatd" --listen "127.0.0.1:$port" --web-addr off --node-id "profile$i" \
        --database-url "$mysql_url/$db" --redis-url "$redis_url" --redis-prefix "profile-$db" \
        --login-max-failures-per-address 0 --log warn \
        >"$out/node$i.log" 2>&1 &
    pids+=($!)
    addrs+=(--addr "127.0.0.1:$port")
done
# Under valgrind a node takes a while to start.
for i in 1 2; do wait_port $((6298 + 2 * i)) 300; done
echo "nodes up; zeroing their counts" >&2
for pid in "${pids[@]}"; do callgrind_control --zero "$pid" >/dev/null; done
# shellcheck disable=SC2086
"$load" "${addrs[@]}" $load_args --json "$out/load.json" | tee "$out/load.txt"
for pid in "${pids[@]}"; do callgrind_control --dump=load "$pid" >/dev/null; done
kill -TERM "${pids[@]}"
wait "${pids[@]}" 2>/dev/null || true
pids=()

python3 - "$out" <<'PY'
import glob, json, re, subprocess, sys
out = sys.argv[1]
delivered = json.load(open(f"{out}/load.json"))["delivered"] or 1
line_re = re.compile(r"\s*([\d,]+) \([ \d.]+%\)\s+(.*)$")

def annotate(path, inclusive):
    text = subprocess.run(
        ["callgrind_annotate", f"--inclusive={'yes' if inclusive else 'no'}", "--threshold=100", path],
        capture_output=True, text=True, check=True).stdout
    rows = []
    for line in text.splitlines():
        m = line_re.match(line)
        if m:
            rows.append((int(m.group(1).replace(",", "")), m.group(2)))
    return rows

# Async code is inlined into the poll of its task, so a function's own
# count says little, and a task's own loop (the bus subscriber's, a
# connection's) cannot be told apart from the task; these are inclusive
# counts of entry points (the largest of the closures bearing the name),
# and the C library's own.
inclusive = [
    ("a request, decoded to answered (ChatService::dispatch)", r"chatcore::service::ChatService::dispatch"),
    ("handing a message to a batch writer (SqlStore::send)", r"SqlStore as chatcore::store::Store>::send"),
    ("the writer opening a transaction (SeaORM begin)", r"TransactionTrait>::begin_with_options"),
    ("the writer committing it (SeaORM commit)", r"DatabaseTransaction::commit"),
    ("taking a pooled connection (sqlx acquire)", r"sqlx_core::pool::Pool<DB>::acquire"),
    ("giving it back (sqlx PoolConnection drop)", r"PoolConnection<DB> as core::ops::drop::Drop>::drop"),
    ("ringing doorbells (RedisBus publish)", r"RedisBus as chatcore::bus::Bus>::publish"),
    ("JSON encoding", r"serde_json::ser::"),
    ("JSON decoding", r"serde_json::de::"),
    ("spawning tasks (tokio new_task)", r"tokio::runtime::task::new_task"),
    ("logging (tracing subscriber)", r"tracing_subscriber::"),
]
exclusive = [
    ("memcpy, memmove (moving futures, buffers)", r"__mem(cpy|move)"),
    ("memset", r"__memset"),
    ("malloc, free", r"malloc\.c:|arena\.c:"),
]
for path in sorted(glob.glob(f"{out}/callgrind.node*")):
    if not re.search(r"\.\d+\.\d+$", path):
        continue
    incl = annotate(path, True)
    excl = annotate(path, False)
    total = next(c for c, name in incl if "PROGRAM TOTALS" in name)
    print(f"\n{path}: {total / delivered:,.0f} instructions per delivered message ({delivered} delivered)")
    print("  inclusive:")
    for label, pattern in inclusive:
        count = max((c for c, name in incl if re.search(pattern, name)), default=0)
        print(f"    {label:58} {count / delivered:>9,.0f}  {100 * count / total:5.1f} %")
    print("  the C library's own:")
    for label, pattern in exclusive:
        count = sum(c for c, name in excl if re.search(pattern, name))
        print(f"    {label:58} {count / delivered:>9,.0f}  {100 * count / total:5.1f} %")
PY
