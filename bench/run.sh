#!/bin/sh
# run.sh — `make bench`: runs every executable bench/sections/* in name order;
# each prints its own numbers.  Run from the repository root after `make all rootfs`.
set -eu
cd "$(dirname "$0")/.."
for s in bench/sections/*; do
    [ -x "$s" ] || continue
    echo "== $(basename "$s")"
    "$s"
done
