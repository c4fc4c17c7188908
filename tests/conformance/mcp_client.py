"""The MCP conformance suite's client under test: a codemode engine whose
MCP client talks to the suite's test server.

Usage (the suite appends the server URL): mcp_client.py URL
Starts an engine (CODEMODE_BIN, default build/codemode) with one `mcp` manual
pointing at URL over streamable HTTP -- registration runs initialize,
notifications/initialized and tools/list -- then runs a chain:
  initialize: `return 1` (the handshake is what the suite checks)
  tools_call: add_numbers(a=17, b=25) through the chain, result checked.
  elicitation-sep1034-client-defaults: with `elicitation: accept_defaults`
             on the server entry, the schema's defaults are the answer.
  sse-retry: test_reconnection, whose answer stream the server closes early:
             the client resumes it (GET, Last-Event-ID, after `retry`).
Exits 0 on success, 1 with a message otherwise."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from tests.integration.engine import Engine  # noqa: E402


def main():
    url = sys.argv[-1]
    scenario = os.environ.get("MCP_CONFORMANCE_SCENARIO", "")
    server = {"url": url}
    if scenario == "elicitation-sep1034-client-defaults":
        server["elicitation"] = "accept_defaults"  # the configured elicitation policy
    cfg = {"manual_call_templates": [{"name": "conf", "call_template_type": "mcp", "config": {
        "mcpServers": {"suite": server}}}]}
    engine = Engine(json.dumps(cfg), "config.json")
    try:
        engine.start()
        client = engine.client()
        try:
            if scenario == "tools_call":
                r = client.chain("return await conf.suite_add_numbers(a=17, b=25)")
                ok = r["error"] is None and "42" in json.dumps(r["result"])
            elif scenario == "elicitation-sep1034-client-defaults":
                r = client.chain("return await conf.suite_test_client_elicitation_defaults()")
                ok = r["error"] is None and "completed" in json.dumps(r["result"])
            elif scenario == "sse-retry":
                r = client.chain("return await conf.suite_test_reconnection()")
                ok = r["error"] is None and "successfully" in json.dumps(r["result"])
            else:
                r = client.chain("return 1")
                ok = r["error"] is None and r["result"] == 1
            print("codemode chain (%s): %s" % (scenario or "?", json.dumps(r)[:500]))
        finally:
            client.close()
    except Exception as e:  # engine failed to start or to register the manual
        print("codemode: %s" % e, file=sys.stderr)
        ok = False
    finally:
        rc = engine.stop()
        log = engine.read_log()
        engine.cleanup()
    if rc != 0 or any(s in log for s in ("AddressSanitizer", "LeakSanitizer", "runtime error:")):
        print("codemode: engine exited with %s or reported a sanitizer error" % rc, file=sys.stderr)
        ok = False
    if not ok:
        print(log[-3000:], file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
