"""The engine as an MCP client of a real server (npm
@modelcontextprotocol/server-everything, over stdio and streamable HTTP):
more concurrent calls than engine.max_inflight_calls queue instead of
failing, the client declares roots/sampling/elicitation (stdio) and refuses
sampling and elicitation requests clearly, and a long-running tool's
progress notifications reach the chain's logs attributed to the tool; a
call the chain gives up on is cancelled at the server."""
import json
import os
import subprocess
import time

from tests.integration.engine import ROOT, EngineTest, stop_process, wait_port
from tests.integration.test_mcp_conformance import free_port
from tests.integration.test_mcp_hang import StdioStubTest
from tests.integration.test_providers import EVERYTHING, NODE

GATHER32 = """
import asyncio
rs = await asyncio.gather(*[ev.srv_echo(message='m%d' % i) for i in range(32)])
return [r if isinstance(r, str) else json.dumps(r) for r in rs]
"""


class EverythingClient(EngineTest):
    @classmethod
    def setUpClass(cls):
        if not os.path.exists(EVERYTHING):
            raise RuntimeError("%s missing: run `make npm-deps` (make test does)" % EVERYTHING)
        cls.port = free_port()
        cls.srv = subprocess.Popen([NODE, EVERYTHING, "streamableHttp"],
                                   env=dict(os.environ, PORT=str(cls.port)),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_port(cls.port, cls.srv, "server-everything")
        except Exception:
            cls.cleanup_side()
            raise
        cls.CONFIG = json.dumps({"manual_call_templates": [
            {"name": "ev", "call_template_type": "mcp", "config": {"mcpServers": {
                "srv": {"command": NODE, "args": [EVERYTHING, "stdio"]}}}},
            {"name": "evh", "call_template_type": "mcp", "config": {"mcpServers": {
                "h": {"url": "http://127.0.0.1:%d/mcp" % cls.port}}}},
        ]})
        super().setUpClass()

    @classmethod
    def cleanup_side(cls):
        stop_process(cls.srv)

    def run_chain(self, code, timeout=60):
        r = self.client.chain("import json\n" + code, timeout=timeout)
        self.assertIsNone(r["error"], r)
        return r

    def test_32_gathered_calls_queue_past_the_inflight_limit(self):
        for manual in ("ev.srv", "evh.h"):
            r = self.run_chain(GATHER32.replace("ev.srv", manual))
            self.assertEqual(len(r["result"]), 32)
            for i, text in enumerate(r["result"]):
                self.assertIn("m%d" % i, text, manual)
            self.assertEqual(r["stats"]["tool_calls"], 32)

    def test_long_running_tool_progress_reaches_the_chain_logs(self):
        for manual in ("ev.srv", "evh.h"):
            tool = manual + ".trigger-long-running-operation"  # the name its log lines carry
            call = manual + "_trigger_long_running_operation"
            r = self.run_chain("r = await %s(duration=1, steps=4)\nreturn r" % call)
            self.assertIn("completed", json.dumps(r["result"]))
            progress = [line for line in r["logs"] if "progress" in line]
            self.assertEqual(progress, ["[%s] progress %d/4" % (tool, i) for i in range(1, 5)],
                             (manual, r["logs"]))

    def test_declared_capabilities_expose_the_tools_that_need_them(self):
        r = self.run_chain("return sorted(t['access_name'] for t in search_tools('roots "
                           "sampling elicitation', 50))")
        for manual, server in (("ev", "srv"), ("evh", "h")):
            for tool in ("get_roots_list", "trigger_sampling_request",
                         "trigger_elicitation_request"):
                self.assertIn("%s.%s_%s" % (manual, server, tool), r["result"])

    def test_sampling_is_refused_and_elicitation_declined_clearly(self):
        # over HTTP the server's requests come on the answer's SSE stream, read live
        for server in ("ev.srv", "evh.h"):
            r = self.client.chain(
                "import json\n"
                "try:\n"
                "    await ev.srv_trigger_sampling_request(prompt='hi', maxTokens=5)\n"
                "    s = 'sampled'\n"
                "except Exception as e:\n"
                "    s = str(e)\n"
                "e = await ev.srv_trigger_elicitation_request()\n"
                "return [s, json.dumps(e)]".replace("ev.srv", server), timeout=60)
            self.assertIsNone(r["error"], r)
            sampled, elicited = r["result"]
            self.assertIn("sampling refused", sampled, server)
            self.assertIn("declined", elicited, server)
        roots = self.run_chain("return await ev.srv_get_roots_list()")["result"]
        self.assertNotIn("does not support roots", json.dumps(roots))


    def test_resources_and_prompts_reachable_from_a_chain(self):
        for server in ("ev.srv", "evh.h"):
            r = self.run_chain(
                "rs = await ev.srv_list_resources()\n"
                "uri = rs['resources'][0]['uri']\n"
                "doc = await ev.srv_read_resource(uri=uri)\n"
                "ps = await ev.srv_list_prompts()\n"
                "p = await ev.srv_get_prompt(name='simple-prompt')\n"
                "return [uri, doc, [x['name'] for x in ps['prompts']], p]".replace("ev.srv",
                                                                                  server))
            uri, doc, prompts, prompt = r["result"]
            self.assertEqual(doc["contents"][0]["uri"], uri, server)
            self.assertIn("simple-prompt", prompts)
            self.assertTrue(prompt["messages"], server)
        iface = self.run_chain("return __interfaces")["result"]
        self.assertIn("read_resource", iface)
        self.assertIn("get_prompt", iface)

    def test_task_only_tool_is_refused_clearly(self):
        r = self.client.chain("await ev.srv_simulate_research_query(topic='x')")
        self.assertEqual(r["error"]["kind"], "tool_error", r)
        self.assertIn("only as a task", r["error"]["message"])


class CancelToServer(StdioStubTest):
    """A chain that gives up on an MCP call (its deadline, or its own
    cancellation) tells the server with notifications/cancelled."""

    MANUAL, NAME, ENTRY = "c", "s", {}
    SCRIPT = os.path.join(ROOT, "tests", "integration", "cancel_mcp_server.py")  # via the provider view

    def cancelled(self, n, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                with open(os.path.join(self.state, "cancelled")) as f:
                    lines = [json.loads(x) for x in f if x.strip()]
                if len(lines) >= n:
                    return lines
            except FileNotFoundError:
                pass
            time.sleep(0.1)
        self.fail("the server got no notifications/cancelled")

    def test_deadline_and_chain_cancel_reach_the_server(self):
        r = self.client.chain("try:\n    await c.s_slow()\nexcept Exception as e:\n"
                              "    return str(e)\n", timeout=2)
        self.assertIn("timed out", r["result"])
        first = self.cancelled(1)[0]
        self.assertIsInstance(first["requestId"], int)
        self.assertIn("deadline", first["reason"])
        # the chain itself cancelled (notifications/cancelled from our client)
        self.client.send_raw((json.dumps({"jsonrpc": "2.0", "id": "c1", "method": "tools/call",
                                          "params": {"name": "call_tool_chain", "arguments": {
                                              "code": "await c.s_slow()", "timeout": 30}}})
                              + "\n").encode())
        time.sleep(1)
        self.client.send_raw(b'{"jsonrpc":"2.0","method":"notifications/cancelled",'
                             b'"params":{"requestId":"c1"}}\n')
        second = self.cancelled(2)[1]
        self.assertNotEqual(second["requestId"], first["requestId"])
        self.assertIn("chain ended", second["reason"])
