"""A slow zygote is not a lost one (issue 18.7): when the zygote answers a
spawn late (here: stopped for 7 s, past the old 5 s reply timeout), the
engine waits for it while it lives instead of declaring it lost and killing
it, which killed every sandbox it had forked — a running chain was then
answered `sandbox_failure` ("the sandbox runner exited without a result")
although its code was fine."""
import os
import signal
import threading
import time

from tests.integration.engine import EngineTest
from tests.integration.test_zygote import zygote_pids

CONFIG = """
engine:
  pool_size: 0
  sandbox_uid: 320100
  sandbox_gid: 320100
  sandbox_uid_range: 16
"""


class SlowZygote(EngineTest):
    CONFIG = CONFIG

    def test_running_chains_survive_a_slow_spawn(self):
        first = self.client.chain("return 1")  # starts the zygote
        self.assertIsNone(first["error"], first)
        z = zygote_pids(self.engine.read_log())[-1]
        got = {}

        def run(name, code):
            c = self.engine.client(timeout=60)
            try:
                got[name] = c.chain(code, timeout=30)
            finally:
                c.close()

        a = threading.Thread(target=run, args=("a", "import time\ntime.sleep(9)\nreturn 'a'"))
        a.start()
        time.sleep(1.0)  # a runs in a sandbox forked by z
        os.kill(z, signal.SIGSTOP)
        try:
            b = threading.Thread(target=run, args=("b", "return 'b'"))
            b.start()  # its spawn waits on the stopped zygote
            time.sleep(7.0)
        finally:
            os.kill(z, signal.SIGCONT)
        a.join(60)
        b.join(60)
        self.assertIsNone(got["a"]["error"], got["a"])
        self.assertEqual(got["a"]["result"], "a")
        self.assertIsNone(got["b"]["error"], got["b"])
        self.assertEqual(got["b"]["result"], "b")
        log = self.engine.read_log()
        self.assertIn("slow: no answer after", log)
        self.assertEqual(zygote_pids(log), [z], log)  # the same zygote, not a replacement
