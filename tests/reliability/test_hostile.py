"""Hostile clients, hostile chains and overload: each gets a bounded, clear
error and the engine keeps serving everybody else."""
import json
import socket
import threading
import time

from tests.integration.engine import EngineTest

ERR_OK = "return 1"


class HostileClients(EngineTest):
    CONFIG = json.dumps({"engine": {"max_request_bytes": 65536}})

    def assert_serving(self):
        c = self.engine.client(timeout=30)
        try:
            self.assertEqual(c.request("ping")["result"], {})
            self.assertEqual(c.chain(ERR_OK)["result"], 1)
        finally:
            c.close()

    def raw(self, data, expect_reply=True):
        c = self.engine.client(timeout=10)
        try:
            c.send_raw(data)
            return c.read_message() if expect_reply else None
        finally:
            c.close()

    def test_malformed_json(self):
        r = self.raw(b"{not json\n")
        self.assertEqual(r["error"]["code"], -32700, r)
        self.assert_serving()

    def test_invalid_requests(self):
        for line in (b"[]", b"42", b'{"jsonrpc":"2.0","id":{},"method":"x"}',
                     b'{"jsonrpc":"1.0","id":1,"method":"ping"}',
                     b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":[1]}',
                     b'{"jsonrpc":"2.0","id":1,"method":"nope"}'):
            r = self.raw(line + b"\n")
            self.assertIn("error", r, line)
        self.assert_serving()

    def test_invalid_utf8(self):
        r = self.raw(b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"call_tool_chain",'
                     b'"arguments":{"code":"return \'\xff\xfe\xc3\x28\'"}}}\n')
        self.assertTrue("error" in r or r["result"]["isError"] or r["result"], r)
        self.assert_serving()

    def test_deeply_nested(self):
        r = self.raw(b"[" * 50000 + b"]" * 50000 + b"\n")
        self.assertIn("error", r)
        r = self.raw(b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":' + b"[" * 2000
                     + b"]" * 2000 + b"}}\n")
        self.assertIn("error", r)
        self.assert_serving()

    def test_oversized_message_then_same_connection_works(self):
        c = self.engine.client(timeout=10)
        try:
            c.send_raw(b'{"x":"' + b"a" * 200000 + b'"}\n')
            r = c.read_message()
            self.assertIn("exceeds", r["error"]["message"])
            self.assertEqual(c.request("ping")["result"], {})
        finally:
            c.close()

    def test_half_written_frame_and_idle(self):
        held = []
        try:
            for _ in range(20):
                c = self.engine.client()
                c.send_raw(b'{"jsonrpc":"2.0","id":1,"meth')
                held.append(c)
            self.assert_serving()
        finally:
            for c in held:
                c.close()
        self.assert_serving()

    def test_thousands_of_connections(self):
        held = []
        try:
            for _ in range(1500):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(self.engine.socket)
                held.append(s)
            t0 = time.time()
            self.assert_serving()
            self.assertLess(time.time() - t0, 30)
        finally:
            for s in held:
                s.close()
        self.assert_serving()

    def test_chain_floods_tool_calls_and_huge_arguments(self):
        c = self.engine.client(timeout=60)
        try:
            r = c.chain("import asyncio\n"
                        "async def one(i):\n"
                        "    try:\n"
                        "        return len(await search_tools(query='x' * 10))\n"
                        "    except Exception as e:\n"
                        "        return type(e).__name__\n"
                        "rs = await asyncio.gather(*[one(i) for i in range(3000)])\n"
                        "return len(rs)", timeout=30)
            self.assertTrue(r["error"] is None or r["error"]["kind"] in ("tool_error", "exception"), r)
            r = c.chain("return await search_tools(query='x' * (8 << 20))", timeout=30)
            self.assertIsNotNone(r["error"], r)
        finally:
            c.close()
        self.assert_serving()


# A chain that reaches its own end of the control channel (found through
# gc) and writes frames the runner never would.
FORGE = """import gc, json
ch = next(o for o in gc.get_objects() if hasattr(o, 'send_bytes') and not isinstance(o, type))
frame = %s
ch.send_bytes(frame if isinstance(frame, bytes) else json.dumps(frame).encode())
await search_tools(query='x')
return 'survived'"""


class HostileChains(EngineTest):
    CONFIG = json.dumps({"engine": {"imports": "all"}})

    def forged(self, frame):
        r = self.client.chain(FORGE % frame, timeout=10)
        self.assertIsNotNone(r["error"], r)
        self.assertIn(r["error"]["kind"], ("exception", "sandbox_failure", "tool_error"), r)
        self.assertEqual(self.client.chain("return 2")["result"], 2)
        return r

    def test_garbage_bytes(self):
        self.forged("b'\\xff\\x00garbage'")

    def test_wrong_id(self):
        self.forged("{'t': 'call', 'id': 777, 'tool': 'x.y', 'args': {}}")

    def test_forged_result_and_done(self):
        self.forged("{'t': 'result', 'id': 1, 'ok': True, 'value': 1}")
        self.forged("{'t': 'done', 'ok': False, 'error': {'kind': 'timeout', 'message': 'fake'}}")

    def test_huge_arguments(self):
        r = self.client.chain("return await search_tools(query='q' * (32 << 20))", timeout=20)
        self.assertIsNotNone(r["error"], r)
        self.assertEqual(self.client.chain("return 3")["result"], 3)


class Overload(EngineTest):
    CONFIG = json.dumps({"engine": {"workers": 2, "queue_max": 12, "client_queue_max": 4}})

    def flood(self, c, n, code):
        for i in range(n):
            c.send_raw(json.dumps({"jsonrpc": "2.0", "id": i + 1000, "method": "tools/call",
                                   "params": {"name": "call_tool_chain",
                                              "arguments": {"code": code}}}).encode() + b"\n")

    def collect(self, c, n):
        out = []
        while len(out) < n:
            out.append(c.read_message())
        return out

    def test_per_client_cap_and_fairness(self):
        flooder = self.engine.client(timeout=120)
        normal = self.engine.client(timeout=120)
        try:
            t0 = time.time()
            self.flood(flooder, 40, "import time\ntime.sleep(1)\nreturn 1")
            replies = []
            th = threading.Thread(target=lambda: replies.extend(self.collect(flooder, 40)))
            th.start()
            time.sleep(0.5)
            t1 = time.time()
            r = normal.chain("return 'me'")
            took = time.time() - t1
            self.assertEqual(r["result"], "me")
            # at most client_queue_max of the flooder's chains are ahead of us
            self.assertLess(took, 30)
            th.join(120)
            busy = [m for m in replies if m["result"].get("isError")
                    and m["result"]["structuredContent"]["error"]["kind"] == "busy"]
            done = [m for m in replies if not m["result"].get("isError")]
            self.assertEqual(len(replies), 40)
            self.assertGreaterEqual(len(busy), 30, "per-client cap not applied")
            self.assertTrue(any("client busy" in m["result"]["structuredContent"]["error"]["message"]
                                for m in busy))
            self.assertGreaterEqual(len(done), 1)
            self.assertLess(time.time() - t0, 120)
        finally:
            flooder.close()
            normal.close()

    def test_global_queue_busy_at_once(self):
        clients = [self.engine.client(timeout=120) for _ in range(6)]
        try:
            for c in clients:
                self.flood(c, 4, "import time\ntime.sleep(1)\nreturn 1")
            replies = []
            t0 = time.time()
            for c in clients:
                replies += self.collect(c, 4)
            kinds = [m["result"]["structuredContent"]["error"]["kind"]
                     if m["result"]["isError"] else "ok" for m in replies]
            self.assertEqual(len(replies), 24)
            self.assertIn("busy", kinds)
            self.assertIn("ok", kinds)
            self.assertLess(time.time() - t0, 120)
        finally:
            for c in clients:
                c.close()
