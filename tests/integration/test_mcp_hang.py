"""A hung stdio MCP server (alive, reading, never answering tools/call):
its in-flight calls fail with tool_error at the server's `timeout`, it is
killed and restarted, other chains are served meanwhile, and the next call
works against the new process."""
import json
import os
import shutil
import tempfile
import threading
import time

from tests.integration.engine import ROOT, EngineTest, alive

SERVER = os.path.join(ROOT, "tests", "integration", "hung_mcp_server.py")


class StdioStubTest(EngineTest):
    """An engine whose manual MANUAL has one stdio stub MCP server NAME
    (SCRIPT STATEDIR, entry extras in ENTRY), with a state dir of its own."""

    MANUAL, NAME, SCRIPT, ENTRY = "hang", "h", SERVER, {"timeout": 1.5}

    @classmethod
    def setUpClass(cls):
        cls.state = tempfile.mkdtemp(prefix="codemode-stub-mcp-")
        os.chmod(cls.state, 0o777)  # the server runs as its own unprivileged uid
        entry = dict(cls.ENTRY, command="/usr/bin/python3.11", args=[cls.SCRIPT, cls.state],
                     writable_dirs=[cls.state])
        cls.CONFIG = json.dumps({"manual_call_templates": [
            {"name": cls.MANUAL, "call_template_type": "mcp",
             "config": {"mcpServers": {cls.NAME: entry}}}]})
        super().setUpClass()

    @classmethod
    def cleanup_side(cls):
        shutil.rmtree(cls.state, ignore_errors=True)


class HungMcpServer(StdioStubTest):

    def pids(self):
        with open(os.path.join(self.state, "pids")) as f:
            return [int(x) for x in f.read().split()]

    def test_hung_server_fails_calls_then_is_restarted(self):
        other = {}

        def meanwhile():
            time.sleep(0.5)
            c = self.engine.client()   # its own connection
            try:
                other["r"] = c.chain("return 6 * 7")
            finally:
                c.close()
        t = threading.Thread(target=meanwhile)
        t0 = time.monotonic()
        t.start()
        r = self.client.chain(
            "import asyncio\n"
            "async def one(i):\n"
            "    try:\n"
            "        return await hang.h_add(a=i, b=1)\n"
            "    except ToolError as e:\n"
            "        return [e.kind, e.message]\n"
            "return await asyncio.gather(one(1), one(2))\n", timeout=30)
        took = time.monotonic() - t0
        t.join()
        self.assertIsNone(r["error"], r)
        for kind, message in r["result"]:
            self.assertEqual(kind, "tool_error", r)
            self.assertIn("MCP server 'h' did not answer tools/call within 1.5s and was killed",
                          message)
        self.assertLess(took, 10)              # the server timeout, not the chain's 30 s
        self.assertEqual(other["r"]["result"], 42)   # the engine kept serving
        first = self.pids()
        self.assertEqual(len(first), 1)
        deadline = time.monotonic() + 5
        while alive(first[0]) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertFalse(alive(first[0]), "hung server was not killed")
        # restarted (first crash: at once) and answering
        r = self.client.chain("return await hang.h_add(a=40, b=2)")
        self.assertIsNone(r["error"], r)
        self.assertEqual(r["result"], 42)
        self.assertEqual(len(self.pids()), 2)
