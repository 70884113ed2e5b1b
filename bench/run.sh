#!/usr/bin/env bash
# Runs every scenario of docs/performance.md three times against chat-server and the raw
# forwarder, server pinned to CPU 0 and chat-bench to CPU 1, and prints the medians.
# Usage: bench/run.sh [results.jsonl]      (about thirteen minutes on a 2-core machine)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bench/results.jsonl}
runs=${RUNS:-3}
cargo build --release -q -p chat-server -p chat-bench
server=target/release/chat-server
bench="taskset -c 1 target/release/chat-bench"
port=19000
: > "$out"

start_server() {
    pkill -f "chat-server --addr 127.0.0.1:$port" 2>/dev/null || true
    while pgrep -f "chat-server --addr 127.0.0.1:$port" >/dev/null; do sleep 0.1; done
    RUST_LOG=warn taskset -c 0 "$server" --addr "127.0.0.1:$port" "$@" > /tmp/chat-bench-server.out 2>&1 &
    server_pid=$!
    until grep -q "listening on" /tmp/chat-bench-server.out 2>/dev/null; do sleep 0.05; done
}

record() { # name, then the command; appends its JSON line tagged with the scenario name
    local name=$1; shift
    # A run that loses something exits 1; keep its record and go on.
    { "$@" 2>/dev/null || true; } | tail -n 1 | python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); r["name"]=sys.argv[1]; print(json.dumps(r))' "$name" >> "$out"
}

load() { # name, then chat-bench load arguments
    local name=$1; shift
    start_server
    for _ in $(seq "$runs"); do
        record "$name" $bench run --addr "127.0.0.1:$port" --server-pid "$server_pid" "$@"
        record "$name" $bench raw --server-cpu 0 "$@"
    done
}
db_dir=$(mktemp -d)
trap 'rm -rf "$db_dir"' EXIT
rooms=(--clients 1000 --senders 50 --rooms 10 --messages 3000 --window 64)

load fanout1 --clients 100 --senders 100 --fanout 1 --messages 10000 --window 64
load fanout10 --clients 100 --senders 10 --fanout 10 --messages 10000 --window 64
load broadcast --clients 1000 --senders 50 --broadcast --messages 200 --window 64
load latency --clients 100 --senders 100 --fanout 1 --messages 1000 --rate 10000
# History's cost is a difference of a few percent inside a ±20% run-to-run spread, so the
# three room servers run side by side (idle ones cost nothing) and their runs alternate,
# five each: a slow minute of the VM then hits all of them alike.
declare -A room_pid=()
room_port=$((port + 100))
for mode in mem off db; do
    room_port=$((room_port + 1))
    case $mode in
        mem) args=() ;;
        off) args=(--history off) ;;
        db) args=(--db "$db_dir/rooms.db") ;;
    esac
    RUST_LOG=warn taskset -c 0 "$server" --addr "127.0.0.1:$room_port" "${args[@]}" > "/tmp/chat-bench-$mode.out" 2>&1 &
    room_pid[$mode]="$! $room_port"
    until grep -q "listening on" "/tmp/chat-bench-$mode.out" 2>/dev/null; do sleep 0.05; done
done
for _ in $(seq "${ROOM_RUNS:-5}"); do
    for mode in mem off db; do
        read -r pid room_port <<< "${room_pid[$mode]}"
        name=rooms; [ "$mode" = mem ] || name="rooms-$mode"
        record "$name" $bench run --addr "127.0.0.1:$room_port" --server-pid "$pid" "${rooms[@]}"
    done
    record rooms $bench raw --server-cpu 0 "${rooms[@]}"
done
for mode in mem off db; do
    read -r pid room_port <<< "${room_pid[$mode]}"
    kill "$pid"
done
start_server
for _ in $(seq "$runs"); do
    record history $bench history --addr "127.0.0.1:$port" --clients 100 --messages 2000 --lines 1000 --server-pid "$server_pid"
done
start_server --db "$db_dir/history.db"
for _ in $(seq "$runs"); do
    record history-db $bench history --addr "127.0.0.1:$port" --clients 100 --messages 2000 --lines 1000 --server-pid "$server_pid"
done
# Accounts: password logins per second (Argon2id bound), then message latency with and
# without 200 clients trying wrong passwords for a registered name once a second each;
# the runs alternate so the VM's noise falls on both alike.
start_server --db "$db_dir/accounts.db"
record accounts $bench accounts --addr "127.0.0.1:$port" --clients 200 --server-pid "$server_pid"
start_server --db "$db_dir/attack.db"
for _ in $(seq "${ROOM_RUNS:-5}"); do
    for attackers in 0 200; do
        record "attack-$attackers" $bench run --addr "127.0.0.1:$port" --server-pid "$server_pid" \
            --clients 100 --senders 100 --fanout 1 --messages 1000 --rate 10000 --attackers "$attackers"
    done
done
for _ in $(seq "$runs"); do
    start_server
    record idle $bench idle --addr "127.0.0.1:$port" --clients 10000 --hold 5 --server-pid "$server_pid"
    start_server
    record logins $bench logins --addr "127.0.0.1:$port" --clients 5000 --server-pid "$server_pid"
    # The same storm with clients that read and parse every line, as real clients do:
    # presence to everyone (12.5 M joined lines), then --presence rooms (none).
    start_server
    record logins-read $bench logins --read-presence --addr "127.0.0.1:$port" --clients 5000 --server-pid "$server_pid"
    start_server --presence rooms
    record logins-rooms $bench logins --read-presence --presence rooms --addr "127.0.0.1:$port" --clients 5000 --server-pid "$server_pid"
    start_server --sendq 1GiB
    record drain $bench drain --addr "127.0.0.1:$port" --messages 1000000 --server-pid "$server_pid"
    record drain $bench drain --raw --server-cpu 0 --messages 1000000
    record render $bench render --lines 10000 --width 120 --height 40
done
pkill -f "chat-server --addr 127.0.0.1:$port" 2>/dev/null || true

python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(name, target, key):
    vals = [key(r) for r in rows if r["name"] == name and r.get("target", "server") == target]
    return statistics.median(vals) if vals else None
for name in ["fanout1", "fanout10", "broadcast"]:
    s = med(name, "server", lambda r: r["deliveries_per_sec"]); w = med(name, "raw", lambda r: r["deliveries_per_sec"])
    lost = sum(r["lost"] + r["duplicated"] + r["reordered"] for r in rows if r["name"] == name)
    cpu = med(name, "server", lambda r: r["bench"]["cpu_percent"])
    print(f"{name}: server {s:,.0f}/s, raw {w:,.0f}/s, ratio {s / w:.0%}, lost+dup+reordered {lost}, bench CPU {cpu}%")
raw_rooms = med("rooms", "raw", lambda r: r["deliveries_per_sec"])
off = med("rooms-off", "server", lambda r: r["deliveries_per_sec"])
for name in ["rooms", "rooms-db", "rooms-off"]:
    s = med(name, "server", lambda r: r["deliveries_per_sec"])
    lost = sum(r["lost"] + r["duplicated"] + r["reordered"] for r in rows if r["name"] == name)
    print(f"{name}: server {s:,.0f}/s, {s / raw_rooms:.0%} of raw ({raw_rooms:,.0f}/s), "
          f"{1 - s / off:+.0%} cost against --history off, lost+dup+reordered {lost}")
print(f"accounts: {med('accounts', 'server', lambda r: r['logins_per_sec']):.1f} password logins/s")
for name in ["attack-0", "attack-200"]:
    print(f"{name}: latency p50 {med(name, 'server', lambda r: r['latency_us']['p50'])} µs, "
          f"p99 {med(name, 'server', lambda r: r['latency_us']['p99'])} µs")
for name in ["history", "history-db"]:
    print(f"{name}: 100 x /history 1000, reply p50 {med(name, 'server', lambda r: r['reply_ms']['p50'])} ms, "
          f"p99 {med(name, 'server', lambda r: r['reply_ms']['p99'])} ms")
for target in ["server", "raw"]:
    print(f"latency {target}: p50 {med('latency', target, lambda r: r['latency_us']['p50'])} µs, "
          f"p99 {med('latency', target, lambda r: r['latency_us']['p99'])} µs")
for q in ["p50", "p99"]:
    d = med("latency", "server", lambda r: r["latency_us"][q]) - med("latency", "raw", lambda r: r["latency_us"][q])
    print(f"latency {q}: server minus raw {d:+} µs")
print(f"idle: {med('idle', 'server', lambda r: r['bytes_per_connection']):,.0f} bytes per connection")
print(f"logins: {med('logins', 'server', lambda r: r['seconds']):.2f} s for 5,000")
for name in ["logins-read", "logins-rooms"]:
    print(f"{name}: {med(name, 'server', lambda r: r['seconds']):.2f} s for 5,000 reading every line "
          f"(welcomed {med(name, 'server', lambda r: r['welcomed_seconds']):.2f} s), "
          f"server CPU {med(name, 'server', lambda r: r['server_cpu_seconds'])} s, "
          f"clients' CPU {med(name, 'server', lambda r: r['bench_cpu_seconds'])} s")
s = med("drain", "server", lambda r: r["lines_per_sec"]); w = med("drain", "raw", lambda r: r["lines_per_sec"])
print(f"drain: server {s:,.0f} lines/s, raw {w:,.0f} lines/s, ratio {s / w:.0%}")
print(f"client render, 10,000 lines: arriving p99 {med('render', 'server', lambda r: r['arrival_p99_ms'])} ms, "
      f"scrolling p99 {med('render', 'server', lambda r: r['scroll_p99_ms'])} ms, "
      f"worst {max(max(r['arrival_max_ms'], r['scroll_max_ms']) for r in rows if r['name'] == 'render')} ms")
PY
