# Shell helpers of the benchmark scripts (ab.sh, fanout.sh, profile.sh,
# transports.sh); sourced.

# pids...: utime + stime of each, summed, in clock ticks.
cpu_ticks() {
    local total=0 pid
    for pid in "$@"; do
        read -r -a f <"/proc/$pid/stat"
        # Fields 14 and 15 (1-based); the command name has no spaces here.
        total=$((total + f[13] + f[14]))
    done
    echo "$total"
}

# port [seconds]: waits (10 s unless told) until something listens on
# 127.0.0.1:port.
wait_port() {
    for _ in $(seq $((${2:-10} * 10))); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on port $1" >&2
    return 1
}

# mysql://USER:PW@HOST:PORT statement: runs one statement with the mariadb
# client (the scripts make and drop a database per run).
mysql_sql() {
    local creds=${1#mysql://}
    local userpw=${creds%@*} hostport=${creds##*@}
    mariadb -u"${userpw%%:*}" -p"${userpw#*:}" -h"${hostport%%:*}" -P"${hostport##*:}" -e "$2"
}

# Microseconds in a clock tick.
tick_us=$((1000000 / $(getconf CLK_TCK)))
