"""A stdio MCP server (stdlib only) that answers initialize and tools/list
but hangs on tools/call -- alive, reading, never answering -- the first time
it runs in a state directory; later runs answer.  Each run appends its pid to
<statedir>/pids.  Usage: hung_mcp_server.py STATEDIR"""
import json
import os
import sys

state = sys.argv[1]
with open(os.path.join(state, "pids"), "a") as f:
    f.write("%d\n" % os.getpid())
marker = os.path.join(state, "hung-once")
hang = not os.path.exists(marker)
if hang:
    open(marker, "w").close()

TOOL = {"name": "add", "description": "a + b",
        "inputSchema": {"type": "object", "properties": {"a": {"type": "number"},
                                                         "b": {"type": "number"}}}}


def send(msg):
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


for line in sys.stdin:
    msg = json.loads(line)
    mid, method = msg.get("id"), msg.get("method")
    if mid is None:
        continue   # notifications
    if method == "initialize":
        send({"jsonrpc": "2.0", "id": mid, "result": {
            "protocolVersion": msg["params"]["protocolVersion"], "capabilities": {"tools": {}},
            "serverInfo": {"name": "hung", "version": "1"}}})
    elif method == "tools/list":
        send({"jsonrpc": "2.0", "id": mid, "result": {"tools": [TOOL]}})
    elif method == "tools/call" and hang:
        pass   # alive, still reading stdin, never answering
    elif method == "tools/call":
        a = msg["params"]["arguments"]
        send({"jsonrpc": "2.0", "id": mid, "result": {
            "content": [{"type": "text", "text": json.dumps(a["a"] + a["b"])}]}})
    else:
        send({"jsonrpc": "2.0", "id": mid, "error": {"code": -32601, "message": method}})
