"""Nested cgroups (issue 17, deliverable 3): the engine's sandbox cgroups
live below the cgroup the engine was started in, so the service's own
memory limit bounds every chain.  The test makes a v1 memory cgroup of
300 MB (as a systemd unit's MemoryMax or a pod's limit would), starts the
engine inside it, and runs four chains of 100 MB each at once: they cannot
all succeed, and the engine keeps serving.  Before, all four ran."""
import os
import threading
import unittest

from tests.integration.engine import Engine

MEM = "/sys/fs/cgroup/memory"
CONFIG = """
engine:
  workers: 4
  pool_size: 0
  memory_mb: 200
"""
CHAIN = ("import asyncio\nb = bytearray(100 << 20)\nfor i in range(0, len(b), 4096):\n"
         "    b[i] = 1\nawait asyncio.sleep(2)\nreturn len(b)")


def own_memory_cgroup():
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if "memory" in ctrls.split(","):
                return path
    return None


@unittest.skipUnless(os.path.isfile(os.path.join(MEM, "memory.limit_in_bytes")),
                     "a cgroup v2 host has no v1 memory controller: the v2 nesting is "
                     "asserted in tests/vm/test_cgroup_v2.py (make test-vm)")
class NestedInServiceCgroup(unittest.TestCase):
    def test_service_limit_bounds_chains(self):
        parent = own_memory_cgroup()
        svc = os.path.join(MEM + parent, "codemode-test-svc-%d" % os.getpid())
        os.mkdir(svc)
        eng = None
        try:
            with open(os.path.join(svc, "memory.limit_in_bytes"), "w") as f:
                f.write(str(300 << 20))
            memsw = os.path.join(svc, "memory.memsw.limit_in_bytes")
            if os.path.exists(memsw):
                with open(memsw, "w") as f:
                    f.write(str(300 << 20))
            # start the engine inside the service cgroup: this process joins
            # it for the spawn, then goes back
            with open(os.path.join(svc, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))
            try:
                eng = Engine(CONFIG).start()
            finally:
                with open(os.path.join(MEM + parent, "cgroup.procs"), "w") as f:
                    f.write(str(os.getpid()))
            inst = os.path.join(svc, "codemode", "e%d" % eng.proc.pid)
            self.assertTrue(os.path.isdir(inst), "the engine's tree is below its own cgroup")
            results = []

            def run():
                c = eng.client(timeout=60)
                try:
                    results.append(c.chain(CHAIN, timeout=30))
                finally:
                    c.close()

            ts = [threading.Thread(target=run) for _ in range(4)]
            for t in ts:
                t.start()
            for t in ts:
                t.join(60)
            ok = [r for r in results if r["error"] is None]
            failed = [r["error"]["kind"] for r in results if r["error"] is not None]
            self.assertEqual(len(results), 4)
            print("\n  nested: %d of 4 chains of 100 MB ran in a 300 MB service; others: %s" % (len(ok), failed))
            self.assertLess(len(ok), 4, "400 MB of chains inside a 300 MB service")
            self.assertTrue(set(failed) <= {"memory_limit", "sandbox_failure"}, failed)
            c = eng.client()
            self.assertEqual(c.chain("return 5")["result"], 5, "the engine still serves")
            c.close()
            self.assertEqual(eng.stop(), 0)
            self.assertFalse(os.path.exists(inst), "the engine removed its own tree")
        finally:
            if eng:
                eng.stop()
                eng.cleanup()
            for d in (os.path.join(svc, "codemode"), svc):
                try:
                    os.rmdir(d)
                except OSError:
                    pass


if __name__ == "__main__":
    unittest.main()
