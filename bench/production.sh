#!/usr/bin/env bash
# Issue 22's performance targets that bench/sessions.sh and bench/history-cost.sh do not
# cover, on the release build of HEAD: fanout 1 against the raw forwarder in interleaved
# pairs; idle memory at 10,000 connections; peak RSS while 1,000 clients take a broadcast
# load; a 5,000-login storm's server CPU (clients reading every presence line, and not
# reading them). HEAP_SERVER, a build with `--features heap-stats`, adds the live heap
# (chat_heap_live_bytes / chat_heap_peak_bytes) to the idle and broadcast records.
# Server on CPU 0, chat-bench on CPU 1; each run waits for a quiet machine (bench/lib.sh).
# Usage: bench/production.sh [results.jsonl]   (appends; ROUNDS, default 3)
#        bench/production.sh --summary results.jsonl
set -euo pipefail
cd "$(dirname "$0")/.."

summary() {
    python3 - "$1" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def of(name, **match):
    return [r for r in rows if r["name"] == name and all(r.get(k) == v for k, v in match.items())]
def med(values):
    values = list(values)
    return statistics.median(values) if values else float("nan")
pairs = {}
for r in of("fanout1-pair"):
    pairs.setdefault((r["session"], r["round"]), {})[r["target"]] = r
ratios = [p["server"]["deliveries_per_sec"] / p["raw"]["deliveries_per_sec"] for p in pairs.values() if len(p) == 2]
server, raw = of("fanout1-pair", target="server"), of("fanout1-pair", target="raw")
print(f"fanout 1: server median {med(r['deliveries_per_sec'] for r in server):,.0f}/s, "
      f"raw {med(r['deliveries_per_sec'] for r in raw):,.0f}/s; pairs' ratios "
      + ", ".join(f"{x:.0%}" for x in ratios) + f"; median {med(ratios):.1%} (target 70%)")
for r in of("idle"):
    live = r.get("heap_live_per_connection")
    print(f"idle ({r['server_kind']}): {r['bytes_per_connection']:,.0f} bytes RSS per connection"
          + (f", live heap {live:,.0f}" if live else "") + " (target 2,048)")
for r in of("broadcast"):
    peak = r.get("heap_peak_bytes")
    print(f"broadcast ({r['server_kind']}): {r['deliveries_per_sec']:,.0f}/s, peak RSS "
          f"{r['server']['peak_rss_kib'] / 1024:.0f} MiB, server CPU {r['server']['cpu_percent']}%"
          + (f", peak live heap {peak / 2**20:.0f} MiB" if peak else "") + " (target 64 MiB)")
for variant in ["logins", "logins-read"]:
    cpu = [r["server_cpu_seconds"] for r in of(variant)]
    print(f"{variant}: server CPU " + ", ".join(f"{c:.2f}" for c in cpu)
          + f" s; median {med(cpu):.2f} s (target 0.5 s)")
PY
}
if [ "${1:-}" = --summary ]; then
    summary "${2:-bench/production-results.jsonl}"
    exit
fi

out=${1:-bench/production-results.jsonl}
rounds=${ROUNDS:-3}
session=$(date -u +%Y-%m-%dT%H:%M)
cargo build --release -q -p chat-server -p chat-bench
server=target/release/chat-server
bench="taskset -c 1 target/release/chat-bench"
commit=$(git rev-parse --short=7 HEAD)
pids=()
trap 'for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done' EXIT
source bench/lib.sh

tag() { # the record on stdin, with the tags given as JSON, appended to $out
    python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); r.update(json.loads(sys.argv[1])); print(json.dumps(r))' "$1" >> "$out"
}
tags() { # name, then extra JSON fields
    printf '{"name": "%s", "commit": "%s", "session": "%s"%s}' "$1" "$commit" "$session" "${2:-}"
}
heap() { # the heap-stats server's metrics address: its chat_heap_* gauges as JSON fields
    curl -s "http://$1/metrics" | python3 -c '
import sys
v = {l.split()[0]: float(l.split()[1]) for l in sys.stdin if l.startswith("chat_heap_")}
print(", \"heap_live_bytes\": %d, \"heap_peak_bytes\": %d" % (v["chat_heap_live_bytes"], v["chat_heap_peak_bytes"]))'
}
heap_while_held() { # metrics address, clients: the gauges once all are connected, polled
    # while the idle bench holds them (afterwards their leaving has filled the queues)
    local sample="" base
    base=$(curl -s "http://$1/metrics" | awk '$1 == "chat_heap_live_bytes" { print $2 }')
    while kill -0 "$server_pid" 2>/dev/null; do
        if curl -s "http://$1/metrics" | grep -q "^chat_connections{listener=\"native\"} $2\$"; then
            sleep 1
            sample=$(heap "$1")
            break
        fi
        sleep 0.2
    done
    echo "$sample, \"heap_base_bytes\": ${base:-0}"
}
stop() { kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; }

port=19400
next_port() { port=$((port + 1)); }
fanout1=(--clients 100 --senders 100 --fanout 1 --messages 30000 --window 64)
for round in $(seq "$rounds"); do
    next_port
    start_server production "$port" "$server"
    order=(server raw); [ $((round % 2)) = 0 ] && order=(raw server)
    for target in "${order[@]}"; do
        wait_quiet
        if [ "$target" = server ]; then
            $bench run --addr "127.0.0.1:$port" --server-pid "$server_pid" "${fanout1[@]}" 2>/dev/null
        else
            $bench raw --server-cpu 0 "${fanout1[@]}" 2>/dev/null
        fi | tail -n 1 | tag "$(tags fanout1-pair ", \"round\": $round")"
    done
    stop
done

kinds=(release)
[ -n "${HEAP_SERVER:-}" ] && kinds+=(heap-stats)
for round in $(seq "$rounds"); do
    for kind in "${kinds[@]}"; do
        binary=$server; [ "$kind" = heap-stats ] && binary=$HEAP_SERVER
        [ "$kind" = heap-stats ] && [ "$round" -gt 1 ] && continue
        next_port; metrics=127.0.0.1:$((port + 500))
        start_server production "$port" "$binary" --metrics-addr "$metrics"
        wait_quiet
        held=/tmp/production-heap-held
        : > "$held"
        sampler=""
        if [ "$kind" = heap-stats ]; then
            heap_while_held "$metrics" 10000 > "$held" &
            sampler=$!
        fi
        record=$($bench idle --addr "127.0.0.1:$port" --clients 10000 --hold 5 --server-pid "$server_pid" 2>/dev/null | tail -n 1)
        [ -n "$sampler" ] && wait "$sampler"
        extra=", \"round\": $round, \"server_kind\": \"$kind\"$(cat "$held")"
        echo "$record" | tag "$(tags idle "$extra")"
        stop

        next_port; metrics=127.0.0.1:$((port + 500))
        start_server production "$port" "$binary" --metrics-addr "$metrics"
        wait_quiet
        record=$($bench run --addr "127.0.0.1:$port" --server-pid "$server_pid" --clients 1000 --senders 50 --broadcast --messages 200 --window 64 2>/dev/null | tail -n 1)
        extra=", \"round\": $round, \"server_kind\": \"$kind\""
        [ "$kind" = heap-stats ] && extra+=$(heap "$metrics")
        echo "$record" | tag "$(tags broadcast "$extra")"
        stop
    done
    for variant in logins logins-read; do
        next_port
        start_server production "$port" "$server"
        wait_quiet
        read_flag=(); [ "$variant" = logins-read ] && read_flag=(--read-presence)
        $bench logins "${read_flag[@]}" --addr "127.0.0.1:$port" --clients 5000 --server-pid "$server_pid" 2>/dev/null |
            tail -n 1 | tag "$(tags "$variant" ", \"round\": $round")"
        stop
    done
done
python3 - "$out" <<'PY'
import json, sys
# The idle records' live heap per connection, from the heap-stats server's gauges.
rows = [json.loads(l) for l in open(sys.argv[1])]
for r in rows:
    if r["name"] == "idle" and "heap_live_bytes" in r and "heap_live_per_connection" not in r:
        r["heap_live_per_connection"] = (r["heap_live_bytes"] - r.get("heap_base_bytes", 0)) / r["clients"]
open(sys.argv[1], "w").write("".join(json.dumps(r) + "\n" for r in rows))
PY
summary "$out"
