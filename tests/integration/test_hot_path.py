"""A pool hit's answer path (issue 8): the worker writes the answer to the
client's socket itself when nothing is queued before it, and queues the rest
for the event loop when the socket is full; the sandbox's cgroup usage files
are opened while it runs and read after `done`.  Answers stay whole and in
order, and the stats keep every field."""
import json
import time

from tests.integration.engine import EngineTest

CONFIG = """
engine:
  pool_size: 2
  pool_refill_concurrency: 1
  sandbox_uid: 311000
  sandbox_gid: 311000
  sandbox_uid_range: 16
  max_result_bytes: 8388608
"""


class HotPathTest(EngineTest):
    CONFIG = CONFIG

    def wait_warm(self):
        deadline = time.time() + 30
        while not self.client.request("codemode/health")["result"]["ready"]:
            self.assertLess(time.time(), deadline, "pool never warmed")
            time.sleep(0.05)

    def test_stats_of_a_pool_hit(self):
        self.wait_warm()
        time.sleep(0.5)
        sc = self.client.chain("x = sum(i * i for i in range(200000))\nreturn x > 0")
        self.assertIs(sc["result"], True)
        s = sc["stats"]
        self.assertTrue(s["pool_hit"])
        self.assertGreater(s["cpu_ms"], 0)
        self.assertGreater(s["peak_memory_bytes"], 0)
        self.assertGreaterEqual(s["cpu_throttled_periods"], 0)
        for key in ("wall_ms", "tool_calls", "timeout_s", "startup_ms", "limits"):
            self.assertIn(key, s)

    def test_big_answer_to_a_slow_reader_stays_whole_and_ordered(self):
        """6 MB answer (more than a socket buffer) with a ping pipelined behind
        it, read only after a pause: the part the worker could not write goes
        through the event loop; neither answer is cut or interleaved."""
        self.wait_warm()
        c = self.engine.client()
        try:
            call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                    "params": {"name": "call_tool_chain",
                               "arguments": {"code": "return 'x' * (6 << 20)"}}}
            ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
            c.send_raw(json.dumps(call).encode() + b"\n")
            time.sleep(0.3)
            c.send_raw(json.dumps(ping).encode() + b"\n")
            time.sleep(1.0)  # the answer fills the socket meanwhile
            got = {m["id"]: m for m in (c.read_message(), c.read_message())}
        finally:
            c.close()
        sc = got[1]["result"]["structuredContent"]
        self.assertIsNone(sc["error"])
        self.assertEqual(len(sc["result"]), 6 << 20)
        self.assertEqual(got[2], {"jsonrpc": "2.0", "id": 2, "result": {}})

    def test_answers_in_a_row(self):
        self.wait_warm()
        for i in range(5):
            sc = self.client.chain("return %d" % i)
            self.assertEqual(sc["result"], i)
