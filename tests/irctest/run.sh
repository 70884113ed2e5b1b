#!/usr/bin/env bash
# Run the irctest conformance suite against chat-server's IRC listener.
#
#   tests/irctest/run.sh /path/to/irctest-checkout [pytest args...]
#
# e.g. tests/irctest/run.sh ~/irctest -k 'pingpong or connection_registration'
#      CHAT_SERVER_BIN=target/debug/chat-server tests/irctest/run.sh ~/irctest \
#          irctest/server_tests/join.py
#
# Without pytest args it runs the whole server suite minus other servers'
# implementation-specific, deprecated and strict tests. Python deps:
# `pip install -r <checkout>/requirements.txt` (pytest; ecdsa/filelock/websockets optional).
# PYTHON picks the interpreter (default python3). See tests/irctest/README.md.
set -euo pipefail

if [ $# -lt 1 ] || [ ! -f "$1/irctest/basecontrollers.py" ]; then
    echo "usage: $0 /path/to/irctest-checkout [pytest args...]" >&2
    exit 2
fi
checkout=$(cd "$1" && pwd)
shift

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

# Relative CHAT_SERVER_BIN is taken from the repository root (the controller
# resolves it the same way); default: the release build.
export CHAT_SERVER_BIN="${CHAT_SERVER_BIN:-target/release/chat-server}"
case "$CHAT_SERVER_BIN" in
    /*) bin="$CHAT_SERVER_BIN" ;;
    *) bin="$repo/$CHAT_SERVER_BIN" ;;
esac
if [ ! -x "$bin" ]; then
    echo "chat-server binary not found at $bin (build it, or set CHAT_SERVER_BIN)" >&2
    exit 2
fi

# irctest's checkout first (its conftest.py and pytest.ini live there), then ours.
export PYTHONPATH="$checkout:$here${PYTHONPATH:+:$PYTHONPATH}"

if [ $# -eq 0 ]; then
    set -- -m 'not implementation-specific and not deprecated and not strict'
fi

cd "$checkout"
exec "${PYTHON:-python3}" -m pytest --controller controller "$@"
