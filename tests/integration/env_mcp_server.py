"""A stdio MCP server (stdlib only) that shows its environment variable
STUB_TOKEN back to the caller, for the secret-redaction tests
(tests/security/test_secret_redaction.py): tools/call `env` with mode
"ok" answers the value in a text block, "tool_error" in an isError result,
"rpc_error" in a JSON-RPC error.  Usage: env_mcp_server.py"""
import os

from mcp_stdio_stub import send, serve, text_result

TOOL = {"name": "env", "description": "Shows STUB_TOKEN.",
        "inputSchema": {"type": "object", "properties": {"mode": {"type": "string"}}}}


def on_call(mid, args):
    token = os.environ.get("STUB_TOKEN", "")
    mode = args.get("mode", "ok")
    if mode == "ok":
        text_result(mid, {"token": token, "pid": os.getpid()})
    elif mode == "tool_error":
        send({"jsonrpc": "2.0", "id": mid, "result": {"isError": True, "content": [
            {"type": "text", "text": "stub failed: STUB_TOKEN=%s is not accepted" % token}]}})
    else:
        send({"jsonrpc": "2.0", "id": mid,
              "error": {"code": -32000, "message": "stub exploded with STUB_TOKEN=" + token}})


serve("env", TOOL, on_call)
