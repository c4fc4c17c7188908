"""The engine socket: MCP/JSON-RPC method vocabulary and hostile clients."""
import json
import socket
import time

from tests.integration.engine import EngineTest


class Protocol(EngineTest):

    def test_initialize(self):
        r = self.client.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                               "clientInfo": {"name": "t", "version": "1"}})
        self.assertEqual(r["result"]["protocolVersion"], "2025-06-18")
        self.assertEqual(r["result"]["serverInfo"]["name"], "codemode")
        self.assertIn("tools", r["result"]["capabilities"])

    def test_initialize_unknown_version_gets_latest(self):
        r = self.client.request("initialize", {"protocolVersion": "1999-01-01"})
        self.assertEqual(r["result"]["protocolVersion"], "2025-11-25")

    def test_ping(self):
        self.assertEqual(self.client.request("ping")["result"], {})

    def test_tools_list(self):
        tools = self.client.request("tools/list")["result"]["tools"]
        names = {t["name"] for t in tools}
        self.assertEqual(names, {"call_tool_chain", "register_manual", "deregister_manual",
                                 "list_tools", "search_tools", "tools_info",
                                 "get_required_keys_for_tool", "get_all_tools_python_interfaces",
                                 "get_tool_interface", "agent_prompt"})
        for t in tools:
            self.assertEqual(t["inputSchema"]["type"], "object")
        chain = [t for t in tools if t["name"] == "call_tool_chain"][0]
        self.assertIn("code", chain["inputSchema"]["required"])

    def test_unknown_method(self):
        r = self.client.request("nope/nothing")
        self.assertEqual(r["error"]["code"], -32601)

    def test_unknown_tool_is_an_error_result(self):
        r = self.client.request("tools/call", {"name": "no_such_tool", "arguments": {}})
        self.assertTrue(r["result"]["isError"])
        self.assertIn("no_such_tool", r["result"]["content"][0]["text"])

    def test_missing_code(self):
        r = self.client.call_tool("call_tool_chain", {})
        self.assertTrue(r["isError"])
        self.assertEqual(r["structuredContent"]["error"]["kind"], "invalid_request")

    def test_notification_gets_no_answer(self):
        self.client.send_raw(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
        self.assertEqual(self.client.request("ping")["result"], {})

    def test_string_ids_are_echoed(self):
        c = self.engine.client()
        c.send_raw(b'{"jsonrpc":"2.0","id":"abc","method":"ping"}\n')
        self.assertEqual(c.read_message()["id"], "abc")
        c.close()

    def test_garbage_then_valid_on_same_connection(self):
        c = self.engine.client()
        c.send_raw(b"this is not json\n")
        r = c.read_message()
        self.assertEqual(r["error"]["code"], -32700)
        self.assertIsNone(r["id"])
        c.send_raw(b"[1,2,3]\n")
        self.assertEqual(c.read_message()["error"]["code"], -32600)
        c.send_raw(b'{"jsonrpc":"1.0","id":5,"method":"ping"}\n')
        self.assertEqual(c.read_message()["error"]["code"], -32600)
        c.send_raw(b'{"jsonrpc":"2.0","id":{"x":1},"method":"ping"}\n')
        self.assertEqual(c.read_message()["error"]["code"], -32600)
        c.send_raw(b'\xff\xfe{"jsonrpc":"2.0"}\n')
        self.assertEqual(c.read_message()["error"]["code"], -32700)
        self.assertEqual(c.request("ping")["result"], {})
        c.close()

    def test_oversized_request_is_refused_and_connection_survives(self):
        c = self.engine.client()
        big = b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"' + b"a" * (5 << 20) + b'"}}\n'
        c.send_raw(big)
        r = c.read_message()
        self.assertEqual(r["error"]["code"], -32600)
        self.assertIn("exceeds", r["error"]["message"])
        self.assertEqual(c.request("ping")["result"], {})
        c.close()

    def test_disconnect_mid_request_and_mid_chain(self):
        c = self.engine.client()
        c.send_raw(b'{"jsonrpc":"2.0","id":1,"method":"pi')
        c.close()
        c = self.engine.client()
        c.send_raw(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                               "params": {"name": "call_tool_chain",
                                          "arguments": {"code": "while True: pass", "timeout": 20}}}
                              ).encode() + b"\n")
        time.sleep(0.3)
        c.close()
        # the abandoned chain is stopped well before its 20 s timeout
        deadline = time.time() + 5
        while time.time() < deadline:
            stats = self.client.request("codemode/stats")["result"]
            if stats["running"] == 0:
                break
            time.sleep(0.1)
        self.assertEqual(stats["running"], 0)
        self.assertEqual(self.client.request("ping")["result"], {})

    def test_stalled_client_does_not_block_others(self):
        stalled = self.engine.client()
        # many requests whose answers the client never reads
        stalled.send_raw(b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}\n' * 2000)
        c = self.engine.client()
        t0 = time.monotonic()
        self.assertEqual(c.chain("return 5")["result"], 5)
        self.assertLess(time.monotonic() - t0, 5)
        c.close()
        stalled.close()

    def test_half_closed_client_still_gets_its_answer(self):
        c = self.engine.client()
        c.send_raw(json.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                               "params": {"name": "call_tool_chain",
                                          "arguments": {"code": "return 'late'"}}}).encode() + b"\n")
        c.sock.shutdown(socket.SHUT_WR)
        r = c.read_message()
        self.assertEqual(r["id"], 7)
        self.assertEqual(r["result"]["structuredContent"]["result"], "late")
        # then the engine closes its side
        self.assertEqual(c.sock.recv(10), b"")
        c.close()

    def test_half_written_frame_held_open(self):
        idle = self.engine.client()
        idle.send_raw(b'{"jsonrpc":"2.0","id":1,')
        self.assertEqual(self.client.request("ping")["result"], {})
        idle.close()
