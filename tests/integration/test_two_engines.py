"""Two engines on one host (issue 17, deliverable 3): with the same config
they take disjoint sandbox uid ranges (a lock per range under
engine.runtime_dir), keep their own cgroup directories, and stopping one
leaves the other serving and its cgroups in place."""
import glob
import os
import re
import threading
import time
import unittest

from tests.integration.engine import Engine, codemode_cgroup_roots

CONFIG = """
engine:
  workers: 2
  sandbox_uid: 330000
  sandbox_gid: 330000
  sandbox_uid_range: 8
  pool_size: 1
"""


def uid_range(engine):
    m = re.search(r"user \(uids (\d+)\.\.(\d+)", engine.read_log())
    assert m, engine.read_log()[-2000:]
    return int(m.group(1)), int(m.group(2))


def descendants(pid):
    """Host pids below pid, with their real uid."""
    parent, uid = {}, {}
    for status in glob.glob("/proc/[0-9]*/status"):
        try:
            with open(status) as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            p = int(status.split("/")[2])
            parent[p] = int(fields["PPid"])
            uid[p] = int(fields["Uid"].split()[0])
        except (OSError, ValueError, KeyError):
            pass
    out = {}
    for p in parent:
        q = p
        while q > 1 and q in parent:
            q = parent[q]
            if q == pid:
                out[p] = uid[p]
                break
    return out


def instance_dirs(pid):
    return [d for r in codemode_cgroup_roots() for d in glob.glob(os.path.join(r, "e%d" % pid))]


class TwoEngines(unittest.TestCase):
    def test_disjoint_uids_and_cgroups(self):
        a, b = Engine(CONFIG), Engine(CONFIG)
        try:
            a.start()
            b.start()
            ra, rb = uid_range(a), uid_range(b)
            self.assertEqual(ra[1] - ra[0], 7)
            self.assertTrue(ra[1] < rb[0] or rb[1] < ra[0], (ra, rb))
            seen = {}

            def hold(name, eng):
                c = eng.client()
                try:
                    seen[name] = c.chain("import asyncio\nawait asyncio.sleep(1.5)\nreturn 1")
                finally:
                    c.close()

            ts = [threading.Thread(target=hold, args=(n, e)) for n, e in (("a", a), ("b", b))]
            for t in ts:
                t.start()
            time.sleep(0.8)
            for eng, (lo, hi) in ((a, ra), (b, rb)):
                sandbox_uids = {u for u in descendants(eng.proc.pid).values() if u >= 330000}
                self.assertTrue(sandbox_uids, "a sandbox of the engine runs now")
                self.assertTrue(all(lo <= u <= hi for u in sandbox_uids), (sandbox_uids, lo, hi))
            for t in ts:
                t.join(30)
            self.assertEqual(seen["a"]["result"], 1)
            self.assertEqual(seen["b"]["result"], 1)
            b_dirs = instance_dirs(b.proc.pid)
            self.assertTrue(b_dirs)
            self.assertTrue(set(instance_dirs(a.proc.pid)).isdisjoint(b_dirs))
            self.assertEqual(a.stop(), 0)
            self.assertEqual(sorted(instance_dirs(b.proc.pid)), sorted(b_dirs))
            c = b.client()
            self.assertEqual(c.chain("return 2")["result"], 2)
            c.close()
        finally:
            a.stop()
            b.stop()
            a.cleanup()
            b.cleanup()


if __name__ == "__main__":
    unittest.main()
