"""A stdio MCP server (stdlib only) whose one tool never answers, and which
appends every notifications/cancelled it receives, as JSON, to
<statedir>/cancelled.  Usage: cancel_mcp_server.py STATEDIR"""
import json
import os
import sys

from mcp_stdio_stub import serve

state = sys.argv[1]
TOOL = {"name": "slow", "description": "never answers",
        "inputSchema": {"type": "object", "properties": {}}}


def on_note(msg):
    if msg.get("method") == "notifications/cancelled":
        with open(os.path.join(state, "cancelled"), "a") as f:
            f.write(json.dumps(msg["params"]) + "\n")


serve("cancel", TOOL, lambda mid, args: None, on_note)
