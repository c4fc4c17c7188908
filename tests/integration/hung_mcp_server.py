"""A stdio MCP server (stdlib only) that answers initialize and tools/list
but hangs on tools/call -- alive, reading, never answering -- the first time
it runs in a state directory; later runs answer.  Each run appends its pid to
<statedir>/pids.  Usage: hung_mcp_server.py STATEDIR"""
import os
import sys

from mcp_stdio_stub import serve, text_result

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


def on_call(mid, args):
    if not hang:   # else: alive, still reading stdin, never answering
        text_result(mid, args["a"] + args["b"])


serve("hung", TOOL, on_call)
