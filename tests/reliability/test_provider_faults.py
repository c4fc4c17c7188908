"""Provider faults: MCP servers that crash, hang or write garbage; HTTP
endpoints that reset, stall, fail or never end; CLI tools that hang or
flood.  Each call ends in a tool_error (or the chain's own timeout) within
its bounds, the engine keeps serving, and the next chain works."""
import json
import os
import time

from tests.integration.engine import ROOT, EngineTest
from tests.reliability.fault_servers import FaultHTTP

HERE = os.path.join(ROOT, "tests", "reliability")  # reachable by provider uids (engine.py)
PY = "/usr/bin/python3"  # the system Python: provider processes run as an unprivileged uid


def cli_manual():
    def tool(name, cmd, timeout=None):
        t = {"call_template_type": "cli", "commands": [{"command": cmd}]}
        if timeout:
            t["timeout"] = timeout
        return {"name": name, "inputs": {"type": "object", "properties": {}},
                "tool_call_template": t}
    return {"utcp_version": "1.0.1", "manual_version": "1.0.0", "tools": [
        tool("hang", "sleep 3600", timeout=2),
        tool("hang_long", "sleep 3600"),
        tool("flood", "yes floodfloodflood"),
        tool("ok", "echo fine"),
    ]}


class ProviderFaults(EngineTest):
    @classmethod
    def setUpClass(cls):
        cls.http = FaultHTTP()
        cls.addClassCleanup(cls.http.stop)  # runs even when setUpClass fails
        cls.CONFIG = json.dumps({
            "manual_call_templates": [
                {"name": "mf", "call_template_type": "mcp", "config": {"mcpServers": {
                    "s": {"command": PY, "args": [os.path.join(HERE, "fault_servers.py"), "mcp"]}}}},
                {"name": "hf", "call_template_type": "text", "allowed_communication_protocols": ["http"],
                 "content": json.dumps(cls.http.manual())},
                {"name": "cf", "call_template_type": "text", "allowed_communication_protocols": ["cli"],
                 "content": json.dumps(cli_manual())},
            ]})
        super().setUpClass()

    def run_fault(self, call, bound_s, timeout=None, kinds=("tool_error",)):
        """Runs `return await <call>()` in a chain; checks the error kind and
        the wall time, then that the engine still serves a good chain."""
        t0 = time.time()
        r = self.client.chain("return await %s()" % call, timeout=timeout)
        took = time.time() - t0
        self.assertIsNotNone(r["error"], r)
        self.assertIn(r["error"]["kind"], kinds, r)
        self.assertLess(took, bound_s, "%s took %.1fs" % (call, took))
        ok = self.client.chain("return await hf.pok()")
        self.assertIsNone(ok["error"], ok)
        self.assertEqual(ok["result"], {"fine": True})
        return r

    # ---- MCP -------------------------------------------------------------
    def test_mcp_crash_mid_call(self):
        self.run_fault("mf.s_crash", 20)

    def test_mcp_hang_bounded_by_chain_deadline(self):
        # a hung server: the chain's own 3 s deadline ends it
        self.run_fault("mf.s_hang", 20, timeout=3, kinds=("timeout", "tool_error"))

    def test_mcp_garbage(self):
        self.run_fault("mf.s_garbage", 20, timeout=4, kinds=("tool_error", "timeout"))

    # ---- HTTP ------------------------------------------------------------
    def test_http_reset(self):
        self.run_fault("hf.preset", 10)

    def test_http_5xx(self):
        self.run_fault("hf.p500", 10)
        self.run_fault("hf.p503", 10)

    def test_http_slow_headers(self):
        self.run_fault("hf.pslowheaders", 20, timeout=3, kinds=("timeout", "tool_error"))

    def test_http_slow_body(self):
        self.run_fault("hf.pslowbody", 20, timeout=3, kinds=("timeout", "tool_error"))

    def test_http_endless_body(self):
        # capped by engine.max_tool_output_bytes, not by time
        r = self.run_fault("hf.pendless", 30, timeout=20, kinds=("tool_error", "timeout"))
        self.assertIn("tool_error", r["error"]["kind"], r)

    # ---- CLI -------------------------------------------------------------
    def test_cli_hang_own_timeout(self):
        r = self.run_fault("cf.hang", 15)
        self.assertIn("timed out", r["error"]["message"], r)

    def test_cli_hang_chain_deadline(self):
        self.run_fault("cf.hang_long", 15, timeout=3, kinds=("timeout", "tool_error"))

    def test_cli_flood(self):
        r = self.run_fault("cf.flood", 30, timeout=20)
        self.assertIsNotNone(r["error"])

    def test_engine_serves_after_all(self):
        r = self.client.chain("return await cf.ok()")
        self.assertIsNone(r["error"], r)
        h = self.client.request("codemode/health")
        self.assertIn("result", h)
