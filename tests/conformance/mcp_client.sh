#!/bin/sh
# The conformance suite's --command: it appends the test server's URL.
exec /usr/bin/python3.11 "$(dirname "$0")/mcp_client.py" "$@"
