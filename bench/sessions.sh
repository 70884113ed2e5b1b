#!/usr/bin/env bash
# Issue 19's targets: with one session per client, the direct path (chat-bench fanout 1)
# within 3% of the server before several sessions (333c45a), and the room scenario, with
# no roles and governed, within 5%. The two servers (and a second pair for the governed
# rooms, whose bans stay) run side by side, pinned to CPU 0, chat-bench on CPU 1; each
# round runs every scenario on both, in pairs, the pair's order swapped every round.
# Runs wait for a quiet machine and noisy ones are run again (see bench/lib.sh).
# Usage: bench/sessions.sh [results.jsonl]   (appends; ROUNDS, default 3)
#        bench/sessions.sh --summary results.jsonl
# BEFORE_SERVER=path/to/chat-server skips building 333c45a in a temporary worktree (a
# build from scratch: a few minutes). BEFORE_COMMIT compares with another commit (issue
# 22: f22c480, the end of v2, with AFTER_ARGS="--metrics-addr 127.0.0.1:0" and TARGET=0.97
# for every scenario, and SCENARIOS="fanout1 rooms": f22c480 has no governed rooms).
set -euo pipefail
cd "$(dirname "$0")/.."

summary() {
    python3 - "$1" ${TARGET:-} <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
targets = {"fanout1": 0.97, "rooms": 0.95, "rooms-governed": 0.95}
if len(sys.argv) > 2:
    targets = {scenario: float(sys.argv[2]) for scenario in targets}
def noisy(r):  # others used over 10% of a core during the run
    return r["machine"]["others_cpu_seconds"] > 0.1 * r["seconds"]
def ns(r):  # server CPU per delivery
    return 1e9 * r["server"]["cpu_seconds"] / r["delivered"]
def m(v):
    return f"{v / 1e6:.2f} M"
for name in ["before", "after"]:
    print(f"{name}: " + "/".join(sorted({r["commit"] for r in rows if r["name"] == name})))
for sc, target in targets.items():
    rs = [r for r in rows if r["scenario"] == sc]
    if not rs:
        continue
    print(f"\n{sc}   session round   before      after   after/before   ns/delivery before/after")
    ratios, ns_ratios = [], []
    for s, i in sorted({(r["session"], r["round"]) for r in rs}):
        # a round's last tries
        run = {r["name"]: r for r in rs if (r["session"], r["round"]) == (s, i)}
        if len(run) < 2:
            continue
        a, b = run["before"], run["after"]
        clean = not noisy(a) and not noisy(b)
        if clean:
            ratios.append(b["deliveries_per_sec"] / a["deliveries_per_sec"])
            ns_ratios.append(ns(b) / ns(a))
        print(f"  {s} {i:>3}  {m(a['deliveries_per_sec']):>9}{'*' if noisy(a) else ' '} "
              f"{m(b['deliveries_per_sec']):>9}{'*' if noisy(b) else ' '}  "
              f"{b['deliveries_per_sec'] / a['deliveries_per_sec']:>9.1%}     {ns(a):.0f} / {ns(b):.0f}")
    med = {}
    for n in ["before", "after"]:
        # With no clean run (short runs on a busy machine), every run rather than none.
        c = [r for r in rs if r["name"] == n and not noisy(r)] or [r for r in rs if r["name"] == n]
        med[n] = (statistics.median(r["deliveries_per_sec"] for r in c), statistics.median(ns(r) for r in c), len(c))
        bad = sum(r["lost"] + r["duplicated"] + r["reordered"] for r in rs if r["name"] == n)
        print(f"  {n}: median of {med[n][2]} clean runs {med[n][0]:,.0f}/s, {med[n][1]:.0f} ns/delivery, "
              f"lost+dup+reordered {bad}")
    ratio = med["after"][0] / med["before"][0]
    print(f"  after/before: medians {ratio:.1%} ({'within' if ratio >= target else 'NOT within'} "
          f"{1 - target:.0%}); median of the {len(ratios)} clean pairs' ratios "
          f"{statistics.median(ratios) if ratios else float('nan'):.1%}; server CPU per delivery "
          f"{med['after'][1] / med['before'][1]:.1%} (pairs: {statistics.median(ns_ratios) if ns_ratios else float('nan'):.1%})")
print("(* others used over 10% of a core: left out of the medians and the pairs)")
PY
}
if [ "${1:-}" = --summary ]; then
    summary "${2:-bench/sessions-results.jsonl}"
    exit
fi

out=${1:-bench/sessions-results.jsonl}
rounds=${ROUNDS:-3}
session=$(date -u +%Y-%m-%dT%H:%M)
before_commit=${BEFORE_COMMIT:-333c45a}
read -r -a after_args <<< "${AFTER_ARGS:-}"
cargo build --release -q -p chat-server -p chat-bench
bench="taskset -c 1 target/release/chat-bench"
before=${BEFORE_SERVER:-}
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    if [ -n "${before_tree:-}" ]; then git worktree remove --force "$before_tree"; fi
}
trap cleanup EXIT
if [ -z "$before" ]; then
    before_tree=$(mktemp -d -u /tmp/chat-before.XXXXXX)
    git worktree add --detach "$before_tree" "$before_commit"
    (cd "$before_tree" && cargo build --release -q -p chat-server)
    before="$before_tree/target/release/chat-server"
fi
# Each record names the server's code: the commit, `+` if chat-server had local changes.
after_commit=$(git rev-parse --short=7 HEAD)
git diff --quiet HEAD -- chat-server chat-proto || after_commit+=+
declare -A binary=([before]="$before" [after]=target/release/chat-server)
declare -A commit=([before]="$before_commit" [after]="$after_commit")

source bench/lib.sh
declare -A addr=() pid=()
p=19300
for name in before after; do
    for kind in "" -governed; do
        p=$((p + 1))
        args=()
        [ "$name" = after ] && args=("${after_args[@]}")
        start_server "sessions-$name$kind" "$p" "${binary[$name]}" "${args[@]}"
        addr[$name$kind]=127.0.0.1:$p
        pid[$name$kind]=$server_pid
    done
done

fanout1=(--clients 100 --senders 100 --fanout 1 --messages 10000 --window 64)
rooms=(--clients 1000 --senders 50 --rooms 10 --messages 3000 --window 64)
for round in $(seq "$rounds"); do
    order=(before after); [ $((round % 2)) = 0 ] && order=(after before)
    for scenario in ${SCENARIOS:-fanout1 rooms rooms-governed}; do
        for name in "${order[@]}"; do
            server=$name; args=("${rooms[@]}")
            case $scenario in
                fanout1) args=("${fanout1[@]}") ;;
                rooms-governed) server=$name-governed; args+=(--governed) ;;
            esac
            tags=$(printf '{"name": "%s", "scenario": "%s", "commit": "%s", "session": "%s", "round": %d}' \
                "$name" "$scenario" "${commit[$name]}" "$session" "$round")
            quiet_run "$out" "$tags" --addr "${addr[$server]}" --server-pid "${pid[$server]}" "${args[@]}"
        done
    done
done
summary "$out"
