"""A stdio MCP server (stdlib only) whose tool `gather(n)` answers only once n
calls are in flight at the same time, then answers all of them with the
number in flight: a client that sends one request at a time never gets an
answer.  Answers go out in reverse order of the requests, so matching by id
is exercised too.  Usage: barrier_mcp_server.py"""
from mcp_stdio_stub import serve, text_result

TOOL = {"name": "gather", "description": "answers when n calls are in flight",
        "inputSchema": {"type": "object", "properties": {"n": {"type": "number"}}}}
waiting = []


def on_call(mid, args):
    waiting.append((mid, args))
    if len(waiting) >= max(int(a.get("n", 1)) for _, a in waiting):
        count = len(waiting)
        for wid, a in reversed(waiting):
            text_result(wid, {"in_flight": count, "n": a.get("n")})
        waiting.clear()


serve("barrier", TOOL, on_call)
