#!/usr/bin/env bash
# Cluster mode against a single server, same loads as docs/performance.md's tables (fewer
# messages each): a plain server, one node with --cluster, and two nodes with the clients
# spread over both. Servers and redis-server share CPU 0, chat-bench has CPU 1, so the
# figures show what going through Redis costs, not what a second machine would add.
# Usage: bench/cluster.sh [results.jsonl]      (about six minutes on a 2-core machine)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bench/cluster-results.jsonl}
runs=${RUNS:-3}
cargo build --release -q -p chat-server -p chat-bench
server=target/release/chat-server
bench="taskset -c 1 target/release/chat-bench"
redis_port=19500
: > "$out"

taskset -c 0 redis-server --port "$redis_port" --save "" --appendonly no > /tmp/chat-bench-redis.out 2>&1 &
redis_pid=$!
trap 'pkill -f "chat-server --addr 127.0.0.1:195" 2>/dev/null || true; kill $redis_pid 2>/dev/null || true' EXIT
until redis-cli -p "$redis_port" ping >/dev/null 2>&1; do sleep 0.05; done

start() { # port, then server arguments; sets $pid
    local port=$1; shift
    RUST_LOG=warn taskset -c 0 "$server" --addr "127.0.0.1:$port" "$@" > "/tmp/chat-bench-$port.out" 2>&1 &
    pid=$!
    until grep -q "listening on" "/tmp/chat-bench-$port.out" 2>/dev/null; do sleep 0.05; done
}

record() { # name, target, then the command
    local name=$1 target=$2; shift 2
    # A run that loses something exits 1, one that times out prints nothing: keep going.
    { "$@" 2>/dev/null || true; } | tail -n 1 | python3 -c 'import json,sys
t=sys.stdin.read().strip()
if t:
    r=json.loads(t); r["name"]=sys.argv[1]; r["target"]=sys.argv[2]; print(json.dumps(r))' "$name" "$target" >> "$out"
}

stop_all() {
    pkill -f "chat-server --addr 127.0.0.1:195" 2>/dev/null || true
    while pgrep -f "chat-server --addr 127.0.0.1:195" >/dev/null; do sleep 0.1; done
    redis-cli -p "$redis_port" flushall >/dev/null
}

scenario() { # name, then chat-bench load arguments
    local name=$1; shift
    for _ in $(seq "$runs"); do
        stop_all; start 19501
        record "$name" single $bench run --addr 127.0.0.1:19501 --server-pid "$pid" "$@"
        stop_all; start 19502 --cluster "redis://127.0.0.1:$redis_port" --node-name a
        record "$name" node1 $bench run --addr 127.0.0.1:19502 --server-pid "$pid" "$@"
        stop_all; start 19503 --cluster "redis://127.0.0.1:$redis_port" --node-name a
        start 19504 --cluster "redis://127.0.0.1:$redis_port" --node-name b
        record "$name" nodes2 $bench run --addr 127.0.0.1:19503 --also-addr 127.0.0.1:19504 "$@"
    done
}

scenario fanout1 --clients 100 --senders 100 --fanout 1 --messages 2000 --window 64
scenario fanout10 --clients 100 --senders 10 --fanout 10 --messages 2000 --window 64
scenario broadcast --clients 1000 --senders 50 --broadcast --messages 50 --window 64
scenario rooms --clients 1000 --senders 50 --rooms 10 --messages 500 --window 64
stop_all

python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
for name in ["fanout1", "fanout10", "broadcast", "rooms"]:
    line = [name]
    for target in ["single", "node1", "nodes2"]:
        got = [r for r in rows if r["name"] == name and r["target"] == target]
        if not got:
            line.append(f"{target}: no complete run")
            continue
        rate = statistics.median(r["deliveries_per_sec"] for r in got)
        bad = sum(r["lost"] + r["duplicated"] + r["reordered"] for r in got)
        line.append(f"{target} {rate:,.0f}/s (lost+dup+reordered {bad}, {len(got)} runs)")
    print(": ".join([line[0], ", ".join(line[1:])]))
PY
