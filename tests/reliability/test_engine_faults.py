"""Engine faults: SIGTERM drains in-flight chains within a bound and refuses
new ones; SIGKILL under load, then a restart on the same socket reaps the
stale sandboxes, cgroups and socket and leaves no orphan process."""
import json
import os
import signal
import threading
import time
import unittest

from tests.integration.engine import Engine
from tests.reliability import census


def send_chain(c, rid, code):
    c.send_raw(json.dumps({"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": {
        "name": "call_tool_chain", "arguments": {"code": code}}}).encode() + b"\n")


class EngineFaults(unittest.TestCase):
    def test_sigterm_drains_and_refuses(self):
        e = Engine().start()
        try:
            c = e.client(timeout=60)
            for i in range(3):
                send_chain(c, i + 1, "import time\ntime.sleep(2)\nreturn %d" % i)
            time.sleep(0.5)
            t0 = time.time()
            e.proc.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            send_chain(c, 99, "return 'late'")
            got = {}
            while len(got) < 4:
                m = c.read_message()
                got[m["id"]] = m
            self.assertIn("shutting down", got[99]["error"]["message"])
            for i in range(3):
                self.assertEqual(got[i + 1]["result"]["structuredContent"]["result"], i)
            self.assertEqual(e.proc.wait(30), 0)
            self.assertLess(time.time() - t0, 30)
            self.assertFalse(os.path.exists(e.socket))
        finally:
            e.cleanup()

    def test_sigkill_under_load_then_restart_reaps(self):
        e = Engine().start()
        stale_pids = []
        try:
            clients = [e.client(timeout=60) for _ in range(4)]
            for i, c in enumerate(clients):
                for k in range(2):
                    send_chain(c, k + 1, "import time\nwhile True:\n    time.sleep(0.05)")
            deadline = time.time() + 20
            while len(census.sandbox_procs("e%d" % e.proc.pid)) < 2 and time.time() < deadline:
                time.sleep(0.1)
            inst = "e%d" % e.proc.pid
            stale_pids = census.sandbox_procs(inst)
            self.assertTrue(stale_pids, "no sandboxes running under load")
            self.assertTrue(census.cgroup_dirs(inst), "no sandbox cgroups under load")
            e.proc.kill()
            e.proc.wait()
            for c in clients:
                c.close()
            self.assertTrue(os.path.exists(e.socket), "stale socket expected after SIGKILL")
            # restart on the same socket: start-up reaps
            e2 = Engine()
            e2.dir, e2.socket, e2.log_path = e.dir, e.socket, os.path.join(e.dir, "engine2.log")
            e2.start()
            try:
                deadline = time.time() + 20
                while time.time() < deadline:
                    left = [p for p in stale_pids if os.path.exists("/proc/%d" % p)]
                    if not left:
                        break
                    time.sleep(0.2)
                self.assertEqual(left, [], "orphan sandbox processes survive")
                self.assertEqual(census.cgroup_dirs(inst), [], "stale cgroups not reaped")
                inst2 = "e%d" % e2.proc.pid
                c = e2.client()
                self.assertEqual(c.chain("return 5")["result"], 5)
                c.close()
            finally:
                self.assertEqual(e2.stop(), 0)
            time.sleep(0.5)
            self.assertEqual(census.sandbox_procs(inst2), [], "sandbox processes after stop")
            self.assertEqual(census.cgroup_dirs(inst2), [], "codemode cgroups left after stop")
        finally:
            for p in stale_pids:
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
            e.cleanup()


if __name__ == "__main__":
    unittest.main()
