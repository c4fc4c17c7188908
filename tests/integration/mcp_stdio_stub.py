"""The stdio MCP loop the integration tests' stub servers share (stdlib
only): answers initialize and tools/list, ignores notifications, refuses
unknown methods, and hands every tools/call to the server's own handler.
Imported by barrier_mcp_server.py, hung_mcp_server.py and
cancel_mcp_server.py (run as scripts,
so this directory is on sys.path)."""
import json
import sys


def send(msg):
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


def text_result(mid, value):
    """A tools/call answer whose one text block is value as JSON."""
    send({"jsonrpc": "2.0", "id": mid, "result": {
        "content": [{"type": "text", "text": json.dumps(value)}]}})


def serve(name, tool, on_call, on_note=None):
    """on_call(id, arguments) answers (or not) each tools/call; on_note(msg)
    sees each notification."""
    for line in sys.stdin:
        msg = json.loads(line)
        mid, method = msg.get("id"), msg.get("method")
        if mid is None:
            if on_note:
                on_note(msg)
            continue   # notifications
        if method == "initialize":
            send({"jsonrpc": "2.0", "id": mid, "result": {
                "protocolVersion": msg["params"]["protocolVersion"], "capabilities": {"tools": {}},
                "serverInfo": {"name": name, "version": "1"}}})
        elif method == "tools/list":
            send({"jsonrpc": "2.0", "id": mid, "result": {"tools": [tool]}})
        elif method == "tools/call":
            on_call(mid, msg["params"]["arguments"])
        else:
            send({"jsonrpc": "2.0", "id": mid, "error": {"code": -32601, "message": method}})
