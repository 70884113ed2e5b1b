#!/usr/bin/env bash
# Issue 18's target: the room scenario against the v2 server (85a40c9, the last commit
# before room governance) and the current one, with no roles set and with 10 ops and 100
# bans per room (`chat-bench run --governed`). Three servers run side by side, history in
# memory, pinned to CPU 0 (chat-bench to CPU 1), and their runs alternate, a then b then
# c, for five rounds: a slow minute of the VM hits all three alike. Prints every run, the
# medians and the ratios against v2.
# On a shared machine each run first waits (up to QUIET_WAIT seconds) for three seconds
# in a row in which others used under 10% of a core, and each record says how much CPU
# others used during the run (`machine`); a run in which they used more than 10% of a
# core is marked, left out of the medians, and run again (up to TRIES times).
# Usage: bench/governance.sh [results.jsonl]   (appends; about two minutes once built)
#        bench/governance.sh --summary results.jsonl   (only the summary, every session)
# V2_SERVER=path/to/chat-server skips building 85a40c9 in a temporary worktree.
set -euo pipefail
cd "$(dirname "$0")/.."

summary() {
    python3 - "$1" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
names = ["v2", "v3", "v3-governed"]
def noisy(r):  # others used over 10% of a core during the run
    return r["machine"]["others_cpu_seconds"] > 0.1 * r["seconds"]
def ns(r):  # server CPU per delivery
    return 1e9 * r["server"]["cpu_seconds"] / r["delivered"]
rounds = sorted({(r["session"], r["round"]) for r in rows})
print("servers: " + ", ".join(f"{n} {'/'.join(sorted({r.get('commit', '?') for r in rows if r['name'] == n}))}" for n in names))
print("session              round  " + "".join(f"{n:>13}" for n in names)
      + "    b/a     c/a   server ns/delivery a b c")
paired = {"v3": [], "v3-governed": []}
for s, i in rounds:
    run = {r["name"]: r for r in rows if (r["session"], r["round"]) == (s, i)}
    if len(run) < 3:
        continue
    a, b, c = (run[n]["deliveries_per_sec"] for n in names)
    marks = "".join("*" if noisy(run[n]) else " " for n in names)
    if marks.strip() == "":
        paired["v3"].append(b / a)
        paired["v3-governed"].append(c / a)
    print(f"{s}  {i:>5}  " + "".join(f"{run[n]['deliveries_per_sec']:>12,.0f}{'*' if noisy(run[n]) else ' '}" for n in names)
          + f"  {b / a:>6.1%}  {c / a:>6.1%}   " + " ".join(f"{ns(run[n]):.0f}" for n in names))
clean = {n: [r for r in rows if r["name"] == n and not noisy(r)] for n in names}
med = {n: statistics.median(r["deliveries_per_sec"] for r in clean[n]) for n in names}
med_ns = {n: statistics.median(ns(r) for r in clean[n]) for n in names}
print("(* others used over 10% of a core: left out of the medians; a round shows its last tries)")
print("median of clean runs        " + "".join(f"{med[n]:>12,.0f} " for n in names)
      + f"  {med['v3'] / med['v2']:>6.1%}  {med['v3-governed'] / med['v2']:>6.1%}   "
      + " ".join(f"{med_ns[n]:.0f}" for n in names))
for n in names:
    rs = [r for r in rows if r["name"] == n]
    bad = sum(r["lost"] + r["duplicated"] + r["reordered"] for r in rs)
    print(f"{n}: {len(clean[n])} clean runs of {len(rs)}, lost+dup+reordered {bad} in all, "
          f"server CPU {statistics.median(r['server']['cpu_percent'] for r in clean[n]):.0f}%, "
          f"chat-bench CPU {statistics.median(r['bench']['cpu_percent'] for r in clean[n]):.0f}%")
for n in ["v3", "v3-governed"]:
    ratio = med[n] / med["v2"]
    p = paired[n]
    print(f"{n} / v2: medians {ratio:.1%} ({'within' if ratio >= 0.95 else 'NOT within'} 5%); "
          f"median of the {len(p)} clean rounds' ratios {statistics.median(p) if p else float('nan'):.1%}; "
          f"server CPU per delivery {med_ns[n] / med_ns['v2']:.1%} of v2's")
PY
}
if [ "${1:-}" = --summary ]; then
    summary "${2:-bench/governance-results.jsonl}"
    exit
fi

out=${1:-bench/governance-results.jsonl}
rounds=${ROUNDS:-5}
session=$(date -u +%Y-%m-%dT%H:%M)
v2_commit=85a40c9
cargo build --release -q -p chat-server -p chat-bench
server=target/release/chat-server
bench="taskset -c 1 target/release/chat-bench"
v2=${V2_SERVER:-}
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    if [ -n "${v2_tree:-}" ]; then git worktree remove --force "$v2_tree"; fi
}
trap cleanup EXIT
if [ -z "$v2" ]; then
    v2_tree=$(mktemp -d -u /tmp/chat-v2.XXXXXX)
    git worktree add --detach "$v2_tree" "$v2_commit"
    # Dependencies built already are reused.
    mkdir -p "$v2_tree/target" && cp -a target/release "$v2_tree/target/"
    (cd "$v2_tree" && cargo build --release -q -p chat-server)
    v2="$v2_tree/target/release/chat-server"
fi

rooms=(--clients 1000 --senders 50 --rooms 10 --messages 3000 --window 64)
declare -A port=([v2]=19201 [v3]=19202 [v3-governed]=19203)
declare -A binary=([v2]="$v2" [v3]="$server" [v3-governed]="$server")
# Each record names the server's code: the commit, `+` if chat-server had local changes.
current=$(git rev-parse --short=7 HEAD)
git diff --quiet HEAD -- chat-server chat-proto || current+=+
declare -A commit=([v2]="$v2_commit" [v3]="$current" [v3-governed]="$current")
source bench/lib.sh
declare -A pid=()
for name in v2 v3 v3-governed; do
    start_server "governance-$name" "${port[$name]}" "${binary[$name]}"
    pid[$name]=$server_pid
done

for round in $(seq "$rounds"); do
    for name in v2 v3 v3-governed; do
        governed=(); [ "$name" = v3-governed ] && governed=(--governed)
        tags=$(printf '{"name": "%s", "commit": "%s", "session": "%s", "round": %d}' \
            "$name" "${commit[$name]}" "$session" "$round")
        quiet_run "$out" "$tags" --addr "127.0.0.1:${port[$name]}" --server-pid "${pid[$name]}" \
            "${rooms[@]}" "${governed[@]}"
    done
done
summary "$out"
