"""Calls to one stdio MCP session are pipelined: gathered calls are all in
flight on the one session at once (the server answers only then, in reverse
order), a call whose chain times out is dropped without harming the session,
and sequential calls keep working after it."""
import json
import os
import time

from tests.integration.engine import ROOT, EngineTest

SERVER = os.path.join(ROOT, "tests", "integration", "barrier_mcp_server.py")


class McpPipeline(EngineTest):
    CONFIG = json.dumps({"manual_call_templates": [
        {"name": "bar", "call_template_type": "mcp", "config": {"mcpServers": {
            "b": {"command": "/usr/bin/python3.11", "args": [SERVER], "timeout": 20}}}}]})

    def test_gathered_calls_are_in_flight_together(self):
        r = self.client.chain(
            "import asyncio\n"
            "return await asyncio.gather(*[bar.b_gather(n=4) for i in range(4)])\n", timeout=15)
        self.assertIsNone(r["error"], r)
        self.assertEqual(r["result"], [{"in_flight": 4, "n": 4}] * 4)

    def test_timed_out_call_is_dropped_and_session_keeps_serving(self):
        t0 = time.monotonic()
        r = self.client.chain("return await bar.b_gather(n=2)\n", timeout=1)
        self.assertIsNotNone(r["error"], r)
        self.assertLess(time.monotonic() - t0, 10)
        # the abandoned request is still waiting in the server: one more call
        # completes its pair, and the answer to the dead chain is dropped
        r = self.client.chain("return await bar.b_gather(n=2)\n", timeout=15)
        self.assertIsNone(r["error"], r)
        self.assertEqual(r["result"], {"in_flight": 2, "n": 2})
        r = self.client.chain(
            "out = []\n"
            "for i in range(5):\n"
            "    out.append(await bar.b_gather(n=1))\n"
            "return out\n", timeout=15)
        self.assertIsNone(r["error"], r)
        self.assertEqual(r["result"], [{"in_flight": 1, "n": 1}] * 5)
