"""http tool calls run on the providers' curl multi loop, not one thread per
call: 50 calls gathered by one chain overlap at a real loopback server while
the engine's thread count stays flat; a chain that times out drops its
transfers at once; sequential calls, redirects and errors still behave."""
import json
import os
import threading
import time

from tests.integration import http_fixture
from tests.integration.engine import EngineTest


def threads_of(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    raise AssertionError("no Threads: line")


class HttpOnTheLoop(EngineTest):

    @classmethod
    def setUpClass(cls):
        cls.http = http_fixture.Server()
        cls.addClassCleanup(cls.http.stop)  # runs even when setUpClass fails
        cls.CONFIG = json.dumps({
            "engine": {"max_inflight_calls": 64},
            "manual_call_templates": [
                {"name": "api", "call_template_type": "http", "url": cls.http.base + "/utcp"}],
            "variables": {"api_SECRET_TOKEN": "s3cret"}})
        super().setUpClass()

    def sample_threads(self, stop, out):
        pid = self.engine.proc.pid
        while not stop.is_set():
            out.append(threads_of(pid))
            time.sleep(0.02)

    def test_fifty_gathered_calls_overlap_without_fifty_threads(self):
        self.client.chain("return await api.get_echo()")   # loop thread started, warm
        before = threads_of(self.engine.proc.pid)
        deadline = time.monotonic() + 15   # earlier tests' abandoned requests
        while self.http.httpd.active and time.monotonic() < deadline:
            time.sleep(0.05)
        with self.http.httpd.lock:
            self.http.httpd.max_active = 0
        samples, stop = [], threading.Event()
        t = threading.Thread(target=self.sample_threads, args=(stop, samples))
        t.start()
        try:
            r = self.client.chain("import asyncio\n"
                                  "rs = await asyncio.gather(*[api.slow(ms=1500) for _ in range(50)])\n"
                                  "return [x['slept_ms'] for x in rs]", timeout=60)
        finally:
            stop.set()
            t.join()
        self.assertIsNone(r["error"], r)
        self.assertEqual(r["result"], [1500] * 50)
        # the server had (nearly) all 50 in flight together ...
        self.assertGreaterEqual(self.http.httpd.max_active, 40)
        # ... while the engine ran a handful of threads, not one per call
        peak = max(samples)
        print("\n  engine threads: %d before, peak %d during 50 gathered calls; "
              "server overlap %d" % (before, peak, self.http.httpd.max_active))
        self.assertGreater(len(samples), 20)
        self.assertLessEqual(peak, before + 4, samples)
        self.assertLess(peak - before, 10)

    # A chain cannot end before its in-flight calls are done (it waits for
    # their callbacks), so a chain ending long before the server's 8 s shows
    # that the loop dropped its transfers when the chain cancelled them.

    def test_chain_timeout_drops_its_transfers(self):
        t0 = time.monotonic()
        r = self.client.chain("import asyncio\n"
                              "await asyncio.gather(*[api.slow(ms=8000) for _ in range(5)])\n"
                              "return 1", timeout=1)
        took = time.monotonic() - t0
        # the calls' deadline ends a margin before the chain's (deadlines
        # nest), so the calls time out and the uncaught ToolError ends the chain
        self.assertEqual(r["error"]["kind"], "tool_error", r)
        self.assertRegex(r["error"]["message"], "timed out|timeout")
        self.assertLess(took, 5)
        r = self.client.chain("return (await api.slow(ms=10))['slept_ms']")
        self.assertEqual(r["result"], 10, r)

    def test_finished_chain_cancels_unawaited_calls(self):
        t0 = time.monotonic()
        r = self.client.chain("import asyncio\n"
                              "ts = [asyncio.ensure_future(api.slow(ms=8000)) for _ in range(5)]\n"
                              "await asyncio.sleep(0.3)\n"
                              "return 'left them running'", timeout=30)
        took = time.monotonic() - t0
        self.assertIsNone(r["error"], r)
        self.assertEqual(r["result"], "left them running")
        self.assertEqual(r["stats"]["tool_calls"], 5)
        self.assertLess(took, 5)

    def test_sequential_calls_reuse_connections(self):
        n = len(self.http.httpd.log)
        r = self.client.chain("out = []\nfor i in range(10):\n"
                              "    out.append((await api.get_echo(i=i))['query']['i'][0])\nreturn out")
        self.assertIsNone(r["error"], r)
        self.assertEqual(r["result"], [str(i) for i in range(10)])
        ports = {e["port"] for e in self.http.httpd.log[n:]}
        self.assertLess(len(ports), 10, ports)

    def test_gathered_calls_reuse_connections(self):
        # the loop keeps the idle connections of a burst (CURLMOPT_MAXCONNECTS):
        # a second burst of 10 reuses them (curl's default limit, 4 x the
        # transfers still running, closed 2 of every 10 as the calls finished)
        code = ("import asyncio\n"
                "rs = await asyncio.gather(*[api.slow(ms=200) for _ in range(10)])\n"
                "return len(rs)")
        n = len(self.http.httpd.log)
        self.assertEqual(self.client.chain(code)["result"], 10)
        first = {e["port"] for e in self.http.httpd.log[n:]}
        n = len(self.http.httpd.log)
        self.assertEqual(self.client.chain(code)["result"], 10)
        second = {e["port"] for e in self.http.httpd.log[n:]}
        self.assertGreaterEqual(len(first & second), 9, (first, second))

    def test_large_body_without_expect_100_continue(self):
        n = len(self.http.httpd.log)
        r = self.client.chain("try:\n    await api.echo(kind='big', payload='x' * 1200000)\n"
                              "except ToolError as e:\n    pass\nreturn 1", timeout=30)
        self.assertIsNone(r["error"], r)
        sent = [e for e in self.http.httpd.log[n:] if e["path"] == "/echo/big"]
        self.assertEqual(len(sent), 1, self.http.httpd.log[n:])
        self.assertNotIn("expect", {k.lower() for k in sent[0]["headers"]})

    def test_errors_and_redirects_on_the_loop(self):
        r = self.client.chain("try:\n    await api.fail()\nexcept ToolError as e:\n"
                              "    return [e.kind, e.message]")
        self.assertEqual(r["result"][0], "tool_error", r)
        self.assertIn("status 500", r["result"][1])
        self.assertIn("database exploded", r["result"][1])
        self.assertLess(len(r["result"][1]), 800)
        n = len(self.http.httpd.log)
        r = self.client.chain("return await api.redirect_cross()")
        self.assertIsNone(r["error"], r)
        self.assertIsNone(r["result"]["secret"])        # dropped on the cross-origin hop
        hops = [e["path"] for e in self.http.httpd.log[n:]]
        self.assertEqual(hops, ["/redirect-cross", "/echo/cross"])
