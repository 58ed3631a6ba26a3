# Shell helpers of the benchmark scripts (ab.sh, transports.sh); sourced.

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

# port: waits (10 s at most) until something listens on 127.0.0.1:port.
wait_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on port $1" >&2
    return 1
}

# Microseconds in a clock tick.
tick_us=$((1000000 / $(getconf CLK_TCK)))
