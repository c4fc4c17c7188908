"""A stdio MCP server (stdlib only) whose tool `gather(n)` answers only once n
calls are in flight at the same time, then answers all of them with the
number in flight: a client that sends one request at a time never gets an
answer.  Answers go out in reverse order of the requests, so matching by id
is exercised too.  Usage: barrier_mcp_server.py"""
import json
import sys

TOOL = {"name": "gather", "description": "answers when n calls are in flight",
        "inputSchema": {"type": "object", "properties": {"n": {"type": "number"}}}}
waiting = []


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
            "serverInfo": {"name": "barrier", "version": "1"}}})
    elif method == "tools/list":
        send({"jsonrpc": "2.0", "id": mid, "result": {"tools": [TOOL]}})
    elif method == "tools/call":
        waiting.append((mid, msg["params"]["arguments"]))
        if len(waiting) >= max(int(a.get("n", 1)) for _, a in waiting):
            count = len(waiting)
            for wid, a in reversed(waiting):
                send({"jsonrpc": "2.0", "id": wid, "result": {"content": [
                    {"type": "text", "text": json.dumps({"in_flight": count, "n": a.get("n")})}]}})
            waiting = []
    else:
        send({"jsonrpc": "2.0", "id": mid, "error": {"code": -32601, "message": method}})
