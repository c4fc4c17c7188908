"""The chain process's hot path (rootfs/runner.py, issue 8): what it prepares
before its run frame (builtins, patched asyncio, event loop, log streams) and
the compile short-cuts (no AST rewrite / yield walk when the source cannot
need them) keep every behaviour; after `done` it waits to be killed, and the
runner still ends promptly.

    /usr/bin/python3.11 -m unittest tests/unit/test_runner_hot.py -v
"""
import time
import unittest

from tests.unit.test_runner import run_chain


class ChainProcessHotPath(unittest.TestCase):
    def test_top_level_yield_still_a_syntax_error(self):
        done, _, _, rc = run_chain("x = 1\nyield x")
        self.assertEqual(rc, 0)
        self.assertFalse(done["ok"])
        self.assertEqual(done["error"]["kind"], "syntax")
        self.assertIn("line 2", done["error"]["message"])

    def test_yield_in_nested_function_allowed(self):
        done, _, _, _ = run_chain("def g():\n    yield 1\n    yield 2\nreturn list(g())")
        self.assertEqual(done, {"t": "done", "ok": True, "result": [1, 2]})

    def test_plain_chain_without_rewrite(self):
        done, _, calls, _ = run_chain("return {'a': 1 + 1, 'b': 'demo'}")
        self.assertEqual(done["result"], {"a": 2, "b": "demo"})
        self.assertEqual(calls, [])

    def test_await_of_plain_value_still_rewritten(self):
        done, _, _, _ = run_chain("x = await 5\nreturn x")
        self.assertEqual(done["result"], 5)

    def test_tool_call_without_await_still_rewritten(self):
        done, _, calls, _ = run_chain("r = demo.echo(v=3)\nreturn r['v']")
        self.assertEqual(done["result"], 3)
        self.assertEqual([c["tool"] for c in calls], ["demo.echo"])

    def test_prepared_asyncio_and_streams(self):
        code = "import asyncio\nprint('a', 1)\nr = await asyncio.gather(1, demo.echo(v=2))\nreturn r"
        done, logs, _, _ = run_chain(code)
        self.assertEqual(done["result"], [1, {"v": 2}])
        self.assertEqual(logs, ["a 1"])

    def test_removed_builtins_still_removed(self):
        done, _, _, _ = run_chain("open('/etc/passwd')")
        self.assertEqual(done["error"]["kind"], "exception")
        self.assertIn("open() is not available", done["error"]["message"])

    def test_runner_ends_promptly_after_done(self):
        t = time.monotonic()
        done, _, _, rc = run_chain("return 1")
        self.assertEqual((done["result"], rc), (1, 0))
        self.assertLess(time.monotonic() - t, 10)  # no hang waiting for the kill


if __name__ == "__main__":
    unittest.main()
