#!/usr/bin/env bash
# The soak run of docs/reliability.md: 500 clients for about 60 s, release build.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release -p chat-tests --test soak -- --ignored --nocapture
