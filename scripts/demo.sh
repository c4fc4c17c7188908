#!/bin/sh
# demo.sh — what `make run` does after building: start the engine with the
# shipped default config on a temporary socket, run the demo chain through
# `codemode run`, print its response, stop the engine.
set -eu
cd "$(dirname "$0")/.."
dir=$(mktemp -d /tmp/codemode-demo.XXXXXX)
sock="$dir/codemode.sock"
log="$dir/engine.log"
build/codemode serve --socket "$sock" --config examples/codemode.yaml 2>"$log" &
pid=$!
cleanup() {
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM
i=0
while [ ! -S "$sock" ]; do
    i=$((i + 1))
    if [ $i -gt 100 ] || ! kill -0 "$pid" 2>/dev/null; then
        echo "demo: engine did not start; its log:" >&2
        cat "$log" >&2
        exit 1
    fi
    sleep 0.1
done
echo "== engine serving on $sock (config examples/codemode.yaml)"
echo "== running examples/demo-chain.py"
build/codemode run --socket "$sock" examples/demo-chain.py
