"""Bounded shutdown (issue 17, deliverable 5): SIGTERM lets running chains
finish for engine.drain_timeout_s, then stops the rest with error kind
`shutdown`, which their callers receive before the engine exits; a chain
that ends within the drain time is answered normally."""
import json
import signal
import threading
import time
import unittest

from tests.integration.engine import Engine

CONFIG = """
engine:
  workers: 2
  drain_timeout_s: 2
  max_timeout_s: 120
"""


class BoundedShutdown(unittest.TestCase):
    def test_long_chain_stopped_after_drain_short_one_finishes(self):
        eng = Engine(CONFIG)
        eng.start()
        answers = {}

        def run(name, code):
            c = eng.client(timeout=60)
            try:
                answers[name] = c.chain(code, timeout=100)
            except Exception as e:  # the test asserts on what arrived
                answers[name] = e
            finally:
                c.close()

        try:
            long = threading.Thread(target=run, args=(
                "long", "import asyncio\nawait asyncio.sleep(90)\nreturn 'late'"))
            short = threading.Thread(target=run, args=(
                "short", "import asyncio\nawait asyncio.sleep(1)\nreturn 'done'"))
            long.start()
            short.start()
            time.sleep(0.8)  # both chains are running
            t0 = time.monotonic()
            eng.proc.send_signal(signal.SIGTERM)
            rc = eng.proc.wait(30)
            took = time.monotonic() - t0
            long.join(10)
            short.join(10)
            self.assertEqual(rc, 0, eng.read_log()[-2000:])
            self.assertLess(took, 2 + 5 + 3, "the drain is bounded")
            self.assertEqual(answers["short"]["result"], "done", answers["short"])
            err = answers["long"]["error"]
            self.assertEqual(err["kind"], "shutdown", answers["long"])
            self.assertIn("engine.drain_timeout_s", err["message"])
            self.assertIn("drain time over", eng.read_log())
        finally:
            eng.stop()
            eng.cleanup()


if __name__ == "__main__":
    unittest.main()
