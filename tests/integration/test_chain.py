"""Chain execution end to end: a real engine, real sandboxes, the rootfs
runner, and cli tools run by the engine."""
import json
import os
import socket
import threading
import time

from tests.integration.engine import EngineTest

MANUAL = {
    "utcp_version": "1.0.1",
    "manual_version": "1.0.0",
    "tools": [
        {
            "name": "echo",
            "description": "Echo a message back.",
            "inputs": {"type": "object", "properties": {"msg": {"type": "string"}}},
            "tool_call_template": {"call_template_type": "cli",
                                   "commands": [{"command": "printf '%s' UTCP_ARG_msg_UTCP_END"}]},
        },
        {
            "name": "slow",
            "description": "Sleep a little, then answer.",
            "inputs": {"type": "object", "properties": {"n": {"type": "integer"}}},
            "tool_call_template": {"call_template_type": "cli",
                                   "commands": [{"command": "sleep 0.5; printf '{\"n\": %s}' UTCP_ARG_n_UTCP_END"}]},
        },
        {
            "name": "fail",
            "description": "Always fails.",
            "tool_call_template": {"call_template_type": "cli",
                                   "commands": [{"command": "echo broken >&2; exit 3"}]},
        },
    ],
}

CONFIG = """
manual_call_templates:
  - name: t
    call_template_type: file
    file_path: manual.json
    allowed_communication_protocols: [cli]
"""


class ChainBasics(EngineTest):
    CONFIG = CONFIG
    FILES = {"manual.json": json.dumps(MANUAL)}

    def test_return_value(self):
        r = self.client.chain("return 1 + 1")
        self.assertEqual(r["result"], 2)
        self.assertIsNone(r["error"])
        self.assertEqual(r["logs"], [])
        for k in ("wall_ms", "cpu_ms", "peak_memory_bytes", "tool_calls"):
            self.assertIn(k, r["stats"])
        self.assertGreater(r["stats"]["peak_memory_bytes"], 0)

    def test_no_return_is_null(self):
        r = self.client.chain("x = 3")
        self.assertIsNone(r["result"])
        self.assertIsNone(r["error"])

    def test_logs_kept_when_chain_raises(self):
        r = self.client.chain("print('one')\nprint('two')\nprint('three')\nraise ValueError('boom')")
        self.assertEqual(r["logs"], ["one", "two", "three"])
        self.assertEqual(r["error"]["kind"], "exception")
        self.assertIn("ValueError", r["error"]["message"])
        self.assertIn("boom", r["error"]["message"])
        self.assertIn("line 4", r["error"].get("traceback", ""))
        self.assertIsNone(r["result"])

    def test_multiline_print_is_one_entry_per_line(self):
        r = self.client.chain("print('a\\nb')\nprint('c', 'd', sep='-')\nreturn 0")
        self.assertEqual(r["logs"], ["a", "b", "c-d"])

    def test_syntax_error(self):
        r = self.client.chain("x = 1\nif x:\nreturn 2")
        self.assertEqual(r["error"]["kind"], "syntax")
        self.assertIn("line 3", r["error"]["message"])

    def test_top_level_await(self):
        r = self.client.chain("import asyncio\nawait asyncio.sleep(0.01)\nreturn 'slept'")
        self.assertEqual(r["result"], "slept")

    def test_not_serializable_result(self):
        r = self.client.chain("return {1, 2}")
        self.assertEqual(r["error"]["kind"], "result_not_serializable")
        self.assertIn("set", r["error"]["message"])

    def test_timeout_kills_spin(self):
        t0 = time.monotonic()
        r = self.client.chain("while True: pass", timeout=2)
        elapsed = time.monotonic() - t0
        self.assertEqual(r["error"]["kind"], "timeout")
        self.assertLess(elapsed, 3.0)
        self.assertGreaterEqual(elapsed, 1.9)

    def test_engine_answers_during_a_spinning_chain(self):
        box = {}

        def spin():
            c = self.engine.client()
            box["r"] = c.chain("while True: pass", timeout=3)
            c.close()

        th = threading.Thread(target=spin)
        th.start()
        time.sleep(0.5)
        c = self.engine.client()
        t0 = time.monotonic()
        self.assertEqual(c.request("ping")["result"], {})
        self.assertEqual(c.chain("return 'other'")["result"], "other")
        self.assertLess(time.monotonic() - t0, 2.0)
        c.close()
        th.join()
        self.assertEqual(box["r"]["error"]["kind"], "timeout")

    def test_invalid_timeout(self):
        r = self.client.chain("return 1", timeout=-1)
        self.assertEqual(r["error"]["kind"], "invalid_request")

    def test_tool_call_awaited_and_plain(self):
        r = self.client.chain(
            "a = await t.echo(msg='hi')\nb = t.echo(msg='there')\nreturn [a, b]")
        self.assertIsNone(r["error"], r)
        self.assertEqual(r["result"], ["hi", "there"])
        self.assertEqual(r["stats"]["tool_calls"], 2)

    def test_tool_calls_overlap_with_gather(self):
        t0 = time.monotonic()
        r = self.client.chain(
            "import asyncio\nrs = await asyncio.gather(*[t.slow(n=i) for i in range(4)])\n"
            "return [x['n'] for x in rs]")
        self.assertIsNone(r["error"], r)
        self.assertEqual(r["result"], [0, 1, 2, 3])
        # four 0.5 s calls in sequence would take 2 s
        self.assertLess(time.monotonic() - t0, 1.8)

    def test_tool_failure_is_catchable(self):
        r = self.client.chain(
            "try:\n    t.fail()\nexcept ToolError as e:\n    return 'caught: ' + e.kind\n")
        self.assertEqual(r["result"], "caught: tool_error")

    def test_uncaught_tool_failure(self):
        r = self.client.chain("print('before')\nawait t.fail()\nreturn 1")
        self.assertEqual(r["error"]["kind"], "tool_error")
        self.assertIn("status 3", r["error"]["message"])
        self.assertEqual(r["logs"], ["before"])

    def test_hostile_argument_is_not_executed(self):
        marker = os.path.join(self.engine.dir, "pwned")
        r = self.client.chain("return t.echo(msg='$(touch %s)`touch %s`; touch %s')"
                              % (marker, marker, marker))
        self.assertIsNone(r["error"], r)
        self.assertIn("$(touch", r["result"])
        self.assertFalse(os.path.exists(marker))

    def test_import_outside_allow_list(self):
        r = self.client.chain("import os\nreturn os.getcwd()")
        self.assertEqual(r["error"]["kind"], "exception")
        self.assertIn("os", r["error"]["message"])

    def test_concurrent_clients(self):
        results = [None] * 6

        def run(i):
            c = self.engine.client()
            results[i] = c.chain("return %d * 10" % i)
            c.close()

        ths = [threading.Thread(target=run, args=(i,)) for i in range(6)]
        for th in ths:
            th.start()
        for th in ths:
            th.join()
        self.assertEqual([r["result"] for r in results], [i * 10 for i in range(6)])


class SandboxFloor(EngineTest):
    """The language layer is not the boundary: these chains bypass it (the
    classic subclass walk to reach `os`) and check the kernel layers hold."""

    ESCAPE = (
        "os = [c for c in ().__class__.__base__.__subclasses__() "
        "if c.__name__ == '_wrap_close'][0].__init__.__globals__['sys'].modules['os']\n"
    )

    def test_escape_finds_only_the_rootfs(self):
        r = self.client.chain(self.ESCAPE + "return sorted(os.listdir('/'))")
        self.assertIsNone(r["error"], r)
        entries = set(r["result"])
        for host_only in ("etc", "home", "root", "work", "var", "boot"):
            self.assertNotIn(host_only, entries)
        self.assertIn("usr", entries)

    def test_identity_inside(self):
        r = self.client.chain(self.ESCAPE + "return [os.getpid(), os.getuid(), os.uname().nodename]")
        self.assertIsNone(r["error"], r)
        pid, uid, node = r["result"]
        self.assertEqual(uid, 0)  # root inside, an unprivileged uid outside
        self.assertLess(pid, 10)  # own pid namespace
        self.assertNotEqual(node, socket.gethostname())

    def test_root_is_read_only_and_tmp_is_writable(self):
        r = self.client.chain(self.ESCAPE + """
out = {}
try:
    fd = os.open('/usr/x', os.O_CREAT | os.O_WRONLY)
    out['root'] = 'writable'
except OSError as e:
    out['root'] = e.errno
fd = os.open('/tmp/x', os.O_CREAT | os.O_WRONLY)
os.write(fd, b'ok')
out['tmp'] = 'ok'
return out
""")
        self.assertIsNone(r["error"], r)
        self.assertEqual(r["result"]["root"], 30)  # EROFS
        self.assertEqual(r["result"]["tmp"], "ok")

    def test_no_network(self):
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        port = srv.getsockname()[1]
        try:
            r = self.client.chain(self.ESCAPE + """
s = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == 'socket']
if not s:
    return 'no socket class'
try:
    sock = s[0](2, 1)  # EPERM since issue 3 (seccomp, eBPF guard)
    sock.connect(('127.0.0.1', %d))
    return 'connected'
except OSError as e:
    return 'refused: %%s' %% e.errno
""" % port)
            self.assertIsNone(r["error"], r)
            self.assertNotEqual(r["result"], "connected")
        finally:
            srv.close()
