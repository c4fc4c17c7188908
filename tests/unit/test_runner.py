"""Host-side tests for rootfs/runner.py (no sandbox needed).

Run from the repository root:
    /usr/bin/python3.11 -m unittest tests/unit/test_runner.py -v

Each test starts `python3.11 -I -S rootfs/runner.py` with fd 3 one end of a
socketpair and plays the engine on the other end.
"""

import json
import os
import socket
import struct
import subprocess
import sys
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUNNER = os.environ.get("CODEMODE_TEST_RUNNER") or os.path.join(ROOT, "rootfs", "runner.py")
PYTHON = "/usr/bin/python3.11" if os.path.exists("/usr/bin/python3.11") else sys.executable
TIMEOUT = 20.0

DEMO_TOOLS = [
    {"name": "demo.word_count", "access_manual": "demo", "access_tool": "word_count"},
    {"name": "demo.echo", "access_manual": "demo", "access_tool": "echo"},
    {"name": "demo.fail", "access_manual": "demo", "access_tool": "fail"},
]


class Engine:
    """The engine side of one runner process."""

    def __init__(self, argv=None):
        argv = argv or [PYTHON, "-I", "-S", "-B", RUNNER]
        self.sock, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(TIMEOUT)
        # the child end must be fd 3 in the runner
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={"LANG": "C.UTF-8"},
            close_fds=False, preexec_fn=_dup_to_3(child.fileno()))
        self.runner_socket_ino = os.fstat(child.fileno()).st_ino  # the runner's fd 3
        child.close()
        self.buf = b""

    def send(self, obj):
        data = json.dumps(obj).encode()
        self.sock.sendall(struct.pack(">I", len(data)) + data)

    def send_raw(self, data):
        self.sock.sendall(data)

    def recv(self):
        while len(self.buf) < 4 or len(self.buf) < 4 + struct.unpack(">I", self.buf[:4])[0]:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("runner closed the socket")
            self.buf += chunk
        n = struct.unpack(">I", self.buf[:4])[0]
        frame, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
        return json.loads(frame)

    def start(self, code, tools=DEMO_TOOLS, allowed=None):
        self.ready = self.recv()
        msg = {"t": "run", "code": code, "tools": tools}
        if allowed is not None:
            msg["allowed_imports"] = allowed
        self.send(msg)

    def serve(self, handler, batch=1):
        """Answer calls with handler(tool, args) -> (ok, value|error) until done.
        Calls are collected `batch` at a time and answered in reverse order.
        Returns (done frame, logs, calls)."""
        logs, calls, waiting = [], [], []
        while True:
            f = self.recv()
            if f["t"] == "log":
                logs.append(f["line"])
            elif f["t"] == "call":
                calls.append(f)
                waiting.append(f)
                if len(waiting) >= batch:
                    for c in reversed(waiting):
                        self._answer(c, handler)
                    waiting = []
            elif f["t"] == "done":
                return f, logs, calls
            else:
                raise AssertionError("unexpected frame %r" % f)

    def _answer(self, c, handler):
        ok, v = handler(c["tool"], c["args"])
        if ok:
            self.send({"t": "result", "id": c["id"], "ok": True, "value": v})
        else:
            self.send({"t": "result", "id": c["id"], "ok": False, "error": v})

    def wait(self):
        # after `done` the runner (the sandbox's one process) waits for the
        # engine to end the sandbox, reading until end-of-file: give it that
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        try:
            rc = self.proc.wait(TIMEOUT)
        finally:
            out, err = self.proc.communicate()
            self.stderr = err.decode()
            self.sock.close()
        return rc


def _dup_to_3(fd):
    # Python's own fds are close-on-exec, so only fds 0-2 and 3 reach the runner.
    def fn():
        if fd != 3:
            os.dup2(fd, 3)          # dup2 clears close-on-exec on 3
        else:
            os.set_inheritable(3, True)
    return fn


def default_handler(tool, args):
    if tool == "demo.word_count":
        return True, {"count": len(args.get("text", "").split())}
    if tool == "demo.echo":
        return True, args
    if tool == "demo.fail":
        return False, {"kind": args.get("kind", "tool_error"), "message": "it failed"}
    return False, {"kind": "invalid_request", "message": "no such tool"}


def run_chain(code, batch=1, handler=default_handler, allowed=None, tools=DEMO_TOOLS, argv=None):
    e = Engine(argv)
    e.start(code, tools=tools, allowed=allowed)
    done, logs, calls = e.serve(handler, batch=batch)
    rc = e.wait()
    return done, logs, calls, rc


class RunnerBasics(unittest.TestCase):
    def test_ready_then_result(self):
        e = Engine()
        e.start("return 1+1")
        self.assertEqual(e.ready, {"t": "ready"})
        done, logs, calls = e.serve(default_handler)
        self.assertEqual(e.wait(), 0)
        self.assertEqual(done, {"t": "done", "ok": True, "result": 2})
        self.assertEqual(logs, [])

    def test_no_return_is_null(self):
        done, _, _, _ = run_chain("x = 1")
        self.assertEqual(done, {"t": "done", "ok": True, "result": None})

    def test_logs_then_exception(self):
        code = "print('one')\nprint('two', 2)\nprint('three', end='!\\n')\nraise ValueError('boom')\n"
        done, logs, _, rc = run_chain(code)
        self.assertEqual(rc, 0)
        self.assertEqual(logs, ["one", "two 2", "three!"])
        self.assertFalse(done["ok"])
        err = done["error"]
        self.assertEqual(err["kind"], "exception")
        self.assertEqual(err["message"], "ValueError: boom")
        self.assertIn('File "<chain>", line 4', err["traceback"])
        self.assertIn("raise ValueError('boom')", err["traceback"])
        self.assertNotIn("runner.py", err["traceback"])

    def test_traceback_through_user_function(self):
        code = "def f(x):\n    return 1 / x\n\nreturn f(0)\n"
        done, _, _, _ = run_chain(code)
        tb = done["error"]["traceback"]
        self.assertEqual(done["error"]["message"], "ZeroDivisionError: division by zero")
        self.assertIn('File "<chain>", line 4', tb)
        self.assertIn('File "<chain>", line 2, in f', tb)

    def test_log_lines_streamed_before_end(self):
        # the first line must arrive while the chain is still blocked in a tool call
        e = Engine()
        e.start("print('early')\nprint('partial', end='')\nx = demo.echo(v=1)\nprint('late')\nreturn x")
        first = e.recv()
        self.assertEqual(first, {"t": "log", "line": "early"})
        call = e.recv()
        self.assertEqual(call["t"], "call")
        e.send({"t": "result", "id": call["id"], "ok": True, "value": 5})
        rest = [e.recv(), e.recv()]
        self.assertEqual(rest[0], {"t": "log", "line": "partiallate"})
        self.assertEqual(rest[1], {"t": "done", "ok": True, "result": 5})
        self.assertEqual(e.wait(), 0)

    def test_trailing_partial_line_and_stderr(self):
        code = "import sys\nprint('a', file=sys.stderr)\nsys.stdout.write('b\\nc')\nreturn 0"
        done, logs, _, _ = run_chain(code, allowed="all")
        self.assertEqual(logs, ["a", "b", "c"])
        self.assertTrue(done["ok"])

    def test_syntax_error_line_number(self):
        code = "x = 1\ny = 2\nz = (3 +\n"
        done, _, _, rc = run_chain(code)
        self.assertEqual(rc, 0)
        self.assertEqual(done["error"]["kind"], "syntax")
        self.assertIn("line 3", done["error"]["message"])

    def test_syntax_error_line_number_compile_stage(self):
        # detected by the compiler, not the parser: line must still be the user's
        code = "a = 1\n\n\nnonlocal q\n"
        done, _, _, _ = run_chain(code)
        self.assertEqual(done["error"]["kind"], "syntax")
        self.assertIn("line 4", done["error"]["message"])

    def test_top_level_await_and_return(self):
        code = "import asyncio\nawait asyncio.sleep(0)\nreturn {'a': [1, (2, 3)]}"
        done, _, _, _ = run_chain(code)
        self.assertEqual(done["result"], {"a": [1, [2, 3]]})

    def test_set_not_serializable(self):
        done, _, _, _ = run_chain("return {1, 2}")
        self.assertEqual(done["error"]["kind"], "result_not_serializable")
        self.assertEqual(done["error"]["message"], "return value is not JSON-serializable: set")

    def test_nan_not_serializable(self):
        done, _, _, _ = run_chain("return float('nan')")
        self.assertEqual(done["error"]["kind"], "result_not_serializable")

    def test_import_denied(self):
        done, _, _, _ = run_chain("import os\nreturn 1")
        self.assertEqual(done["error"]["kind"], "exception")
        self.assertIn("ImportError", done["error"]["message"])
        self.assertIn("'os'", done["error"]["message"])
        self.assertIn("allow-list", done["error"]["message"])

    def test_import_allowed_default_and_all(self):
        done, _, _, _ = run_chain("import json, math\nfrom collections import Counter\nreturn math.floor(json.loads('2.5'))")
        self.assertEqual(done["result"], 2)
        done, _, _, _ = run_chain("import os\nreturn os.sep", allowed="all")
        self.assertEqual(done["result"], "/")
        done, _, _, _ = run_chain("import math\nreturn 1", allowed=["json"])
        self.assertEqual(done["error"]["kind"], "exception")

    def test_implicit_c_level_imports_pass(self):
        # datetime.strptime imports _strptime from C through the chain's __import__
        code = "import datetime\nreturn datetime.datetime.strptime('2021', '%Y').year"
        done, _, _, _ = run_chain(code, allowed=["datetime"])
        self.assertEqual(done["result"], 2021)
        done, _, _, _ = run_chain("from os import path\nreturn 1", allowed=["json"])
        self.assertIn("ImportError", done["error"]["message"])

    def test_builtins_removed(self):
        for name in ("exec", "eval", "compile", "open", "input", "breakpoint"):
            done, _, _, _ = run_chain("return %s('1')" % name)
            self.assertEqual(done["error"]["kind"], "exception", name)
            self.assertIn("RuntimeError: %s() is not available in a chain" % name,
                          done["error"]["message"], name)


class RunnerTools(unittest.TestCase):
    def test_awaited_call(self):
        done, _, calls, _ = run_chain("r = await demo.word_count(text='a b c')\nreturn r['count']")
        self.assertEqual(done["result"], 3)
        self.assertEqual(calls[0]["tool"], "demo.word_count")
        self.assertEqual(calls[0]["args"], {"text": "a b c"})

    def test_plain_call(self):
        code = "r = demo.word_count(text='a b')\nprint(r['count'])\nreturn demo.echo(x=r['count'] + 1)"
        done, logs, _, _ = run_chain(code)
        self.assertEqual(logs, ["2"])
        self.assertEqual(done["result"], {"x": 3})

    def test_plain_call_in_nested_function(self):
        code = "def f(t):\n    return demo.word_count(text=t)['count']\nreturn [f('a'), f('a b')]"
        done, _, _, _ = run_chain(code)
        self.assertEqual(done["result"], [1, 2])

    def test_gather_out_of_order(self):
        code = ("import asyncio\n"
                "a, b, c = await asyncio.gather(demo.echo(i=1), demo.echo(i=2), demo.echo(i=3))\n"
                "return [a['i'], b['i'], c['i']]")
        done, _, calls, _ = run_chain(code, batch=3)   # all 3 in flight, answered 3,2,1
        self.assertEqual(done["result"], [1, 2, 3])
        self.assertEqual([c["id"] for c in calls], sorted(c["id"] for c in calls))
        self.assertEqual(len({c["id"] for c in calls}), 3)

    def test_gather_of_task_list(self):
        code = ("import asyncio\n"
                "tasks = [demo.echo(i=i) for i in range(3)]\n"
                "res = await asyncio.gather(*tasks)\n"
                "return [r['i'] for r in res]")
        done, _, _, _ = run_chain(code, batch=3)      # concurrent: all 3 sent before any answer
        self.assertEqual(done["result"], [0, 1, 2])

    def test_list_of_plain_calls_concurrent_values(self):
        code = ("xs = [demo.echo(i=i) for i in range(3)]\n"
                "ys = {'a': demo.echo(i=7), 'b': demo.echo(i=8)}\n"
                "return [x['i'] for x in xs] + [ys['a']['i'], ys['b']['i']]")
        # batch=3/2: the three (then two) requests must be in flight together
        done, _, calls, _ = run_chain(code, batch=1)
        self.assertEqual(done["result"], [0, 1, 2, 7, 8])
        done, _, calls, _ = run_chain(code.split("\n")[0] + "\nreturn [x['i'] for x in xs]", batch=3)
        self.assertEqual(done["result"], [0, 1, 2])

    def test_gather_starred_generator_and_create_task(self):
        code = ("import asyncio\n"
                "res = await asyncio.gather(*(demo.echo(i=i) for i in range(2)))\n"
                "t = asyncio.create_task(demo.echo(i=9))\n"
                "return [r['i'] for r in res] + [(await t)['i']]")
        done, _, _, _ = run_chain(code)
        self.assertEqual(done["result"], [0, 1, 9])

    def test_await_of_resolved_value_and_mixed_gather(self):
        code = ("import asyncio\n"
                "x = demo.echo(i=1)\n"
                "y = await x\n"
                "z = await asyncio.gather(x, demo.echo(i=2), asyncio.sleep(0, 'v'))\n"
                "return [y['i'], z[0]['i'], z[1]['i'], z[2]]")
        done, _, _, _ = run_chain(code)
        self.assertEqual(done["result"], [1, 1, 2, "v"])

    def test_user_async_functions_concurrent(self):
        code = ("import asyncio\n"
                "async def one(i):\n"
                "    r = await demo.echo(i=i)\n"
                "    return r['i'] * 10\n"
                "return await asyncio.gather(one(1), one(2))")
        done, _, _, _ = run_chain(code, batch=2)
        self.assertEqual(done["result"], [10, 20])

    def test_positional_args_rejected(self):
        done, _, calls, _ = run_chain("return demo.word_count('a b')")
        self.assertEqual(calls, [])
        self.assertEqual(done["error"]["kind"], "exception")
        self.assertIn("TypeError", done["error"]["message"])
        self.assertIn("keyword arguments only", done["error"]["message"])

    def test_tool_error_caught(self):
        code = ("try:\n"
                "    demo.fail()\n"
                "except ToolError as e:\n"
                "    return [e.kind, e.message, e.tool, isinstance(e, PolicyDenied)]\n")
        done, _, _, _ = run_chain(code)
        self.assertEqual(done["result"], ["tool_error", "it failed", "demo.fail", False])

    def test_policy_denied_caught_awaited(self):
        code = ("try:\n"
                "    await demo.fail(kind='policy_denied')\n"
                "except PolicyDenied as e:\n"
                "    return ['denied', e.kind]\n")
        done, _, _, _ = run_chain(code)
        self.assertEqual(done["result"], ["denied", "policy_denied"])

    def test_uncaught_tool_failure(self):
        done, logs, _, rc = run_chain("print('before')\nx = demo.fail()\nreturn x")
        self.assertEqual(rc, 0)
        self.assertEqual(logs, ["before"])
        self.assertEqual(done["error"]["kind"], "tool_error")
        self.assertEqual(done["error"]["message"], "it failed")
        self.assertIn('line 2', done["error"]["traceback"])

    def test_uncaught_policy_denied_and_other_kind(self):
        done, _, _, _ = run_chain("return await demo.fail(kind='policy_denied')")
        self.assertEqual(done["error"]["kind"], "policy_denied")
        done, _, _, _ = run_chain("return demo.fail(kind='invalid_request')")
        self.assertEqual(done["error"]["kind"], "invalid_request")

    def test_returned_pending_resolved(self):
        code = "import asyncio\nt = asyncio.ensure_future(demo.echo(i=4))\nreturn {'r': [demo.echo(i=5)]}"
        done, _, _, _ = run_chain(code, batch=2)
        self.assertEqual(done["result"], {"r": [{"i": 5}]})

    def test_unserializable_args(self):
        done, _, calls, _ = run_chain("return demo.echo(x={1})")
        self.assertEqual(calls, [])
        self.assertIn("TypeError", done["error"]["message"])


class RunnerProtocolFailures(unittest.TestCase):
    def test_engine_eof_before_run(self):
        e = Engine()
        self.assertEqual(e.recv(), {"t": "ready"})
        e.sock.shutdown(socket.SHUT_RDWR)
        self.assertEqual(e.wait(), 4)

    def test_engine_eof_during_call(self):
        e = Engine()
        e.start("return demo.echo(i=1)")
        self.assertEqual(e.recv()["t"], "call")
        e.sock.shutdown(socket.SHUT_WR)
        self.assertEqual(e.wait(), 4)

    def test_engine_eof_during_awaited_call(self):
        e = Engine()
        e.start("return await demo.echo(i=1)")
        self.assertEqual(e.recv()["t"], "call")
        e.sock.shutdown(socket.SHUT_WR)
        self.assertEqual(e.wait(), 4)

    def test_malformed_json(self):
        e = Engine()
        e.recv()
        e.send_raw(struct.pack(">I", 5) + b"{nope")
        self.assertEqual(e.wait(), 3)
        self.assertIn("malformed", e.stderr)

    def test_oversized_frame(self):
        e = Engine()
        e.recv()
        e.send_raw(struct.pack(">I", 64 * 1024 * 1024 + 1))
        self.assertEqual(e.wait(), 3)

    def test_result_for_unknown_id(self):
        e = Engine()
        e.start("return demo.echo(i=1)")
        call = e.recv()
        e.send({"t": "result", "id": call["id"] + 100, "ok": True, "value": 1})
        self.assertEqual(e.wait(), 3)

    def test_bad_run_frame(self):
        e = Engine()
        e.recv()
        e.send({"t": "run", "code": 5})
        self.assertEqual(e.wait(), 3)


# `make test` builds the rootfs first and runs as root; elsewhere point
# CODEMODE_TEST_ROOTFS at a built rootfs.
ROOTFS = os.environ.get("CODEMODE_TEST_ROOTFS") or os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "build", "rootfs")
CHROOT = "/usr/sbin/chroot"


class RunnerInRootfs(unittest.TestCase):
    """The runner as the engine starts it, from the built rootfs alone (chroot)."""
    ARGV = [CHROOT, ROOTFS or "/", "/usr/bin/python3.11", "-I", "-S", "-B", "-c",
            "import _codemode_runner as r; r.main(3)"]

    def test_chain_in_rootfs(self):
        code = ("import asyncio, json\n"
                "print('hi')\n"
                "a = demo.echo(i=1)\n"
                "b, c = await asyncio.gather(demo.echo(i=2), demo.echo(i=3))\n"
                "return [a['i'], b['i'], c['i'], json.dumps([1])]")
        done, logs, _, rc = run_chain(code, argv=self.ARGV)
        self.assertEqual(rc, 0)
        self.assertEqual(logs, ["hi"])
        self.assertEqual(done["result"], [1, 2, 3, "[1]"])

    def test_default_allow_list_works_in_rootfs(self):
        code = ("import datetime, time, re, decimal, fractions, statistics, uuid, random, base64\n"
                "import textwrap, dataclasses, enum, heapq, bisect, copy, string, typing\n"
                "import collections, itertools, functools, operator, math\n"
                "@dataclasses.dataclass\n"
                "class P:\n"
                "    x: int\n"
                "return [datetime.datetime.strptime('2020-02-03', '%Y-%m-%d').day,\n"
                "        time.strftime('%Y', time.gmtime(0)), str(decimal.Decimal('1.10') * 2),\n"
                "        str(fractions.Fraction(1, 3)), statistics.mean([1, 2, 3]),\n"
                "        uuid.uuid4().version, random.Random(1).randint(1, 1),\n"
                "        base64.b64encode(b'hi').decode(), textwrap.shorten('a b c', 5),\n"
                "        dataclasses.asdict(P(1)), re.sub('a', 'b', 'aa'), 'é'.upper()]")
        done, _, _, _ = run_chain(code, argv=self.ARGV)
        self.assertTrue(done["ok"], done)
        self.assertEqual(done["result"], [3, "1970", "2.20", "1/3", 2, 4, 1, "aGk=", "a b c",
                                          {"x": 1}, "bb", "É"])

    def test_error_in_rootfs(self):
        done, _, _, _ = run_chain("x = 1\nreturn {1}", argv=self.ARGV)
        self.assertEqual(done["error"]["kind"], "result_not_serializable")
        done, _, _, _ = run_chain("x = 1\nraise KeyError('k')", argv=self.ARGV)
        self.assertIn('line 2', done["error"]["traceback"])
        self.assertNotIn("_codemode_runner", done["error"]["traceback"])


if __name__ == "__main__":
    unittest.main()
