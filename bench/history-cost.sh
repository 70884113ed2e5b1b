#!/usr/bin/env bash
# Issue 22: what keeping room history in memory costs in the rooms scenario (1,000
# clients in 10 rooms, 50 senders, 3,000 messages each, window 64), measured by two load
# generators that share no code: chat-bench and indep-load (bench/indep, std only).
# Two release chat-servers run side by side pinned to CPU 0, one with history in memory
# (the default), one with `--history off`; the tools run pinned to CPU 1. Each of PAIRS
# pairs runs both tools against both servers, the servers' order alternating from pair to
# pair, so a slow minute of the shared machine hits both modes alike.
#
# Every record gets tool, mode, pair, session, commit, and `others_cpu_seconds`: busy
# time of both CPUs during the measured window that was neither the server's nor the
# tool's. The machine is shared: each run first waits, at most QUIET_WAIT seconds (30),
# for three seconds in a row in which all CPUs together were under 10% busy.
# The summary gives medians of deliveries/s and of server CPU seconds per million
# deliveries, and the cost of history by each: 1 - mem/off on throughput, and mem/off - 1
# on server CPU per delivery (which shows server-side cost even when the server was not
# the bottleneck).
#
# Usage: bench/history-cost.sh [results.jsonl]   (appends; default
#        bench/history-cost-results.jsonl; about 5 minutes for 5 pairs once built)
#        bench/history-cost.sh --summary results.jsonl   (only the summary, every session)
# Needs release builds: cargo build --release -p chat-server -p chat-bench -p indep-load
# (binaries from $BIN, default $CARGO_TARGET_DIR/release or target/release).
# Env: PAIRS (5), QUIET_WAIT (30), MEM_PORT (19522), OFF_PORT (19523), and the load: CLIENTS (1000),
# SENDERS (50), ROOMS (10), MESSAGES (3000), WINDOW (64).
set -euo pipefail
cd "$(dirname "$0")/.."

summary() {
    python3 - "$@" <<'PY'
import json, statistics, sys
path = sys.argv[1]
session = sys.argv[2] if len(sys.argv) > 2 else None
rows = [json.loads(l) for l in open(path) if l.strip()]
rows = [r for r in rows if session is None or r.get("session") == session]
tools, modes = ["chat-bench", "indep-load"], ["memory", "off"]
def noisy(r):  # others used over 10% of a core during the measured window
    return r.get("others_cpu_seconds", 0) > 0.1 * r["seconds"]
def tool_cpu(r):  # chat-bench calls its own CPU `bench`, indep-load `load`
    return (r.get("bench") or r.get("load") or {}).get("cpu_percent")
def per_m(r):  # server CPU seconds per million deliveries
    return 1e6 * r["server"]["cpu_seconds"] / r["delivered"] if r["delivered"] else float("nan")
def table(rs_all, title):
    print(title)
    print(f"{'tool':<11}{'mode':<7}{'runs':>5}{'deliveries/s':>14}{'server CPU s/M':>16}"
          f"{'server CPU%':>13}{'tool CPU%':>11}{'others s':>10}  lost/dup/reord")
    med = {}
    for tool in tools:
        for mode in modes:
            rs = [r for r in rs_all if r["tool"] == tool and r["mode"] == mode]
            if not rs:
                continue
            m = lambda f: statistics.median(f(r) for r in rs)
            med[tool, mode] = (m(lambda r: r["deliveries_per_sec"]), m(per_m))
            bad = sum(r["lost"] for r in rs), sum(r["duplicated"] for r in rs), sum(r["reordered"] for r in rs)
            print(f"{tool:<11}{mode:<7}{len(rs):>5}{med[tool, mode][0]:>14,.0f}{med[tool, mode][1]:>16.3f}"
                  f"{m(lambda r: r['server']['cpu_percent']):>13.0f}{m(tool_cpu):>11.0f}"
                  f"{m(lambda r: r.get('others_cpu_seconds', 0)):>10.2f}  {'/'.join(map(str, bad))}")
    for tool in tools:
        if (tool, "memory") in med and (tool, "off") in med:
            (rm, cm), (ro, co) = med[tool, "memory"], med[tool, "off"]
            if not (ro and co):  # a load too small to measure the server's CPU
                continue
            print(f"  {tool}: history costs {100 * (1 - rm / ro):+.1f}% of deliveries/s (1 - mem/off), "
                  f"{100 * (cm / co - 1):+.1f}% server CPU per delivery (mem/off - 1)")
    print()
table(rows, "Every run, medians:")
quiet = [r for r in rows if not noisy(r)]
table(quiet, f"Quiet runs only (others under 10% of a core; {len(rows) - len(quiet)} of {len(rows)} left out):")
# Within each pair the two modes ran a few seconds apart: the paired ratio cancels the
# machine's slow and fast minutes that the medians above mix in.
print("Per pair, throughput cost / server-CPU-per-delivery cost (* = a noisy run):")
for tool in tools:
    cells, clean = [], []
    for p in sorted({r["pair"] for r in rows if r["tool"] == tool}):
        run = {r["mode"]: r for r in rows if r["tool"] == tool and r["pair"] == p}
        if len(run) < 2 or not per_m(run["off"]):
            continue
        t = 1 - run["memory"]["deliveries_per_sec"] / run["off"]["deliveries_per_sec"]
        c = per_m(run["memory"]) / per_m(run["off"]) - 1
        mark = "*" if noisy(run["memory"]) or noisy(run["off"]) else ""
        cells.append(f"{100 * t:+.0f}%/{100 * c:+.0f}%{mark}")
        if not mark:
            clean.append((t, c))
    med = (f"; median of the clean pairs {100 * statistics.median(t for t, _ in clean):+.1f}%/"
           f"{100 * statistics.median(c for _, c in clean):+.1f}%" if clean else "")
    print(f"  {tool}: {' '.join(cells)}{med}")
PY
}

if [ "${1:-}" = "--summary" ]; then
    summary "${2:-bench/history-cost-results.jsonl}"
    exit 0
fi

out=${1:-bench/history-cost-results.jsonl}
pairs=${PAIRS:-5}
bin=${BIN:-${CARGO_TARGET_DIR:-target}/release}
load_args=(--clients "${CLIENTS:-1000}" --senders "${SENDERS:-50}" --rooms "${ROOMS:-10}"
    --messages "${MESSAGES:-3000}" --window "${WINDOW:-64}")
for b in chat-server chat-bench indep-load; do
    [ -x "$bin/$b" ] || { echo "no $bin/$b: cargo build --release -p $b" >&2; exit 2; }
done
# Each client is a file descriptor in the tool and in the server; ask for 65536, or as
# many as the hard limit allows.
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -ge 65536 ]; then ulimit -n 65536; else ulimit -n "$hard"; fi

pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT

start_mode() { # mode, port, extra arguments; sets server_pid
    local mode=$1 port=$2 log=/tmp/history-cost-$1.$$.log
    shift 2
    RUST_LOG=warn taskset -c 0 "$bin/chat-server" --addr "127.0.0.1:$port" "$@" > "$log" 2>&1 &
    server_pid=$!
    pids+=("$server_pid")
    for _ in $(seq 200); do
        grep -q "listening on" "$log" 2>/dev/null && return 0
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.05
    done
    echo "the $mode server did not start:" >&2
    cat "$log" >&2
    exit 2
}

# The quiet-machine wait shared with the other scripts, with a shorter default wait.
QUIET_WAIT=${QUIET_WAIT:-30}
source bench/lib.sh

start_mode memory "${MEM_PORT:-19522}"
mem_pid=$server_pid
start_mode off "${OFF_PORT:-19523}" --history off
off_pid=$server_pid
commit=$(git rev-parse --short HEAD)
session=$(date -u +%Y-%m-%dT%H:%M:%SZ)
echo "session $session, commit $commit, servers: memory pid $mem_pid, off pid $off_pid" >&2

run() { # tool, mode, pair
    local tool=$1 mode=$2 pair=$3 port pid record
    if [ "$mode" = memory ]; then port=${MEM_PORT:-19522} pid=$mem_pid; else port=${OFF_PORT:-19523} pid=$off_pid; fi
    local cmd=("$bin/indep-load")
    [ "$tool" = chat-bench ] && cmd=("$bin/chat-bench" run)
    wait_quiet
    # A run that loses something exits 1: keep its record and go on.
    record=$(taskset -c 1 "${cmd[@]}" --addr "127.0.0.1:$port" --server-pid "$pid" "${load_args[@]}" \
        2>>"/tmp/history-cost-$tool.$$.log" | tail -n 1) || true
    if [ -z "$record" ]; then
        echo "$tool against $mode printed no record; see /tmp/history-cost-$tool.$$.log" >&2
        return
    fi
    python3 - "$record" "$tool" "$mode" "$pair" "$session" "$commit" >> "$out" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
tool, mode, pair, session, commit = sys.argv[2:]
r.update(tool=tool, mode=mode, pair=int(pair), session=session, commit=commit)
# Both tools measure what others used of the machine over their own measured window;
# chat-bench nests it under `machine`.
if "machine" in r:
    r["others_cpu_seconds"] = r["machine"]["others_cpu_seconds"]
print(json.dumps(r))
PY
    tail -n 1 "$out" | python3 -c 'import json,sys; r=json.load(sys.stdin); print("pair {pair} {tool:<10} {mode:<6} {deliveries_per_sec:>12,.0f}/s  server CPU {s[cpu_percent]:.0f}%  lost {lost}".format(s=r["server"], **r), file=sys.stderr)'
}

for pair in $(seq "$pairs"); do
    if [ $((pair % 2)) = 1 ]; then modes=(memory off); tools=(chat-bench indep-load); else modes=(off memory); tools=(indep-load chat-bench); fi
    for tool in "${tools[@]}"; do
        for mode in "${modes[@]}"; do
            run "$tool" "$mode" "$pair"
        done
    done
done
summary "$out" "$session"
