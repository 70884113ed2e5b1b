#!/usr/bin/env bash
# fanout 1, before (333c45a) and after (HEAD), interleaved pairs, longer runs.
# Usage: BEFORE_SERVER=... [AFTER_ARGS=...] bench/fanout1-pairs.sh > out.txt   (from the repository root; lines "<b|a> <pair> <chat-bench JSON>")
set -u
B=${BEFORE_SERVER:?build 333c45a and give its chat-server as BEFORE_SERVER}
A=${AFTER_SERVER:-target/release/chat-server}
bench="taskset -c 1 target/release/chat-bench"
RUST_LOG=warn taskset -c 0 $B --addr 127.0.0.1:19501 > /tmp/f1b.log 2>&1 & bp=$!
RUST_LOG=warn taskset -c 0 $A --addr 127.0.0.1:19502 ${AFTER_ARGS:-} > /tmp/f1a.log 2>&1 & ap=$!
sleep 1
for i in $(seq 1 8); do
  if [ $((i % 2)) = 1 ]; then order="b a"; else order="a b"; fi
  for w in $order; do
    if [ $w = b ]; then port=19501; pid=$bp; else port=19502; pid=$ap; fi
    r=$($bench run --addr 127.0.0.1:$port --server-pid $pid --clients 100 --senders 100 --fanout 1 --messages 30000 --window 64 2>/dev/null | tail -n 1)
    echo "$w $i $r"
  done
done
kill $bp $ap
