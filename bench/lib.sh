# Shared by bench/governance.sh and bench/sessions.sh (sourced, not run): servers side by
# side on CPU 0, chat-bench on CPU 1, and runs that wait for a quiet machine.
# The caller sets `bench` (the chat-bench command) and `pids` (an array, killed on exit).

start_server() { # log name, port, binary, then its arguments; sets server_pid
    local log=/tmp/chat-$1.out port=$2 binary=$3
    shift 3
    RUST_LOG=warn taskset -c 0 "$binary" --addr "127.0.0.1:$port" "$@" > "$log" 2>&1 &
    server_pid=$!
    pids+=("$server_pid")
    until grep -q "listening on" "$log" 2>/dev/null; do sleep 0.05; done
}

busy_ticks() { # all CPUs' busy time so far, in clock ticks
    local _cpu user nice system _idle _iowait irq softirq _rest
    read -r _cpu user nice system _idle _iowait irq softirq _rest < /proc/stat
    echo $((user + nice + system + irq + softirq))
}
wait_quiet() { # until 3 seconds in a row each used under 10% of a core
    local before quiet=0
    for _ in $(seq "${QUIET_WAIT:-600}"); do
        before=$(busy_ticks)
        sleep 1
        if [ $(($(busy_ticks) - before)) -le 10 ]; then quiet=$((quiet + 1)); else quiet=0; fi
        [ "$quiet" -ge 3 ] && return 0
    done
    echo "the machine stayed busy; running anyway" >&2
}

quiet_run() { # results file, the record's tags as JSON, then `chat-bench run` arguments
    # Waits for a quiet machine, runs, appends the record with the tags and `try`. A run
    # in which others used over 10% of a core is run again, up to TRIES times; every try
    # is kept (the summaries take each round's last tries).
    local out=$1 tags=$2 try noisy
    shift 2
    for try in $(seq "${TRIES:-5}"); do
        wait_quiet
        # A run that loses something exits 1; keep its record and go on.
        { $bench run "$@" 2>/dev/null || true; } | tail -n 1 |
            python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); r.update(json.loads(sys.argv[1])); r["try"] = int(sys.argv[2]); print(json.dumps(r))' \
                "$tags" "$try" >> "$out"
        noisy=$(tail -n 1 "$out" | python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); o=r["machine"]["others_cpu_seconds"]; print("{tags}: {deliveries_per_sec:,.0f}/s, lost {lost}, others CPU {o} s".format(o=o, tags=sys.argv[1], **r), file=sys.stderr); print(int(o > 0.1 * r["seconds"]))' "$tags")
        [ "$noisy" = 0 ] && break
    done
    return 0 # a last try that was noisy too is kept, not an error
}
