"""Sandbox zygote (isolate/zygote.c, isolate/zygote_ext.c, runner zygote_main):
sandboxes forked from it get their own pid/mount/net/ipc/uts/cgroup namespaces
(not the zygote's, not each other's), the hardened state a freshly cloned
sandbox gets (no capabilities, no_new_privs, seccomp, their own cgroups, pid 1
= init), and answer chains; a killed zygote is restarted and its dead warm
sandboxes are discarded, not handed to chains; `engine.zygote: false` and a
rootfs without the extension fall back to building sandboxes from scratch."""
import os
import re
import signal
import subprocess
import tempfile
import shutil
import time
import unittest

from tests.integration.engine import EngineTest, Engine, ROOT, status_fields

UID_LO, UID_HI = 320000, 320016
CONFIG = """
engine:
  pool_size: 2
  pool_refill_concurrency: 1
  sandbox_uid: 320000
  sandbox_gid: 320000
  sandbox_uid_range: 16
"""


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def read(path):
    with open(path) as f:
        return f.read()


def ns(pid, name):
    return os.readlink("/proc/%d/ns/%s" % (pid, name))


def zygote_pids(log):
    return [int(p) for p in re.findall(r"zygote \(minimal rootfs\) started, pid (\d+)", log)]


def health(client):
    return client.request("codemode/health")["result"]


def wait_pool(client, idle, timeout=30):
    """The pool holds `idle` warm sandboxes and nothing is being built or torn down."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        h = health(client)
        p = h["pool"]
        if p["idle"] >= idle and p["building"] == 0 and p["disposing"] == 0:
            return h
        time.sleep(0.05)
    raise AssertionError("pool did not refill: %r" % health(client))


class ZygoteTest(EngineTest):
    CONFIG = CONFIG

    def warm_sandboxes(self, z, n, timeout=10):
        """The zygote's children once only the n warm sandboxes are left (a used
        one stays its child until the zygote reaps it, a moment after teardown)."""
        deadline = time.time() + timeout
        while True:
            live = [p for p in children(z) if not status_fields(p)["State"].startswith("Z")]
            if len(live) == n or time.time() > deadline:
                return live
            time.sleep(0.05)

    def zygote(self):
        pids = zygote_pids(self.engine.read_log())
        self.assertTrue(pids, self.engine.read_log())
        return pids[-1]

    def test_1_sandboxes_are_forked_with_their_own_namespaces(self):
        h = wait_pool(self.client, 2)
        self.assertEqual(h["pool"]["zygotes"], 1, h)
        self.assertGreaterEqual(h["pool"]["zygote_spawns"], 2, h)
        z = self.zygote()
        sandboxes = self.warm_sandboxes(z, 2)  # each warm sandbox's pid 1 is a child of the zygote
        self.assertEqual(len(sandboxes), 2, sandboxes)
        a, b = sandboxes
        for name in ("mnt", "net", "ipc", "uts"):
            self.assertNotEqual(ns(a, name), ns(z, name), name)
            self.assertNotEqual(ns(a, name), ns(b, name), name)
        self.assertNotEqual(ns(a, "pid"), ns(z, "pid"))
        self.assertNotEqual(ns(a, "pid"), ns(b, "pid"))
        self.assertNotEqual(ns(a, "cgroup"), ns(z, "cgroup"))
        # one user namespace per zygote (isolate/README.md: what chains share)
        self.assertEqual(ns(a, "user"), ns(z, "user"))
        self.assertNotEqual(ns(z, "user"), ns(os.getpid(), "user"))

    def test_2_forked_sandboxes_are_hardened(self):
        wait_pool(self.client, 2)
        z = self.zygote()
        zcg = read("/proc/%d/cgroup" % z)
        for init in self.warm_sandboxes(z, 2):
            # one process per sandbox besides its init: the chain process
            # (the runner itself, holding the control socket), with no child
            chain_proc = children(init)
            self.assertEqual(len(chain_proc), 1)
            self.assertEqual(children(chain_proc[0]), [])
            for pid in (init, chain_proc[0]):
                st = status_fields(pid)
                self.assertEqual(st["CapEff"], "0000000000000000", pid)
                self.assertEqual(st["CapPrm"], "0000000000000000", pid)
                self.assertEqual(st["CapBnd"], "0000000000000000", pid)
                self.assertEqual(st["NoNewPrivs"], "1", pid)
                self.assertEqual(st["Seccomp"], "2", pid)
                cg = read("/proc/%d/cgroup" % pid)
                self.assertNotEqual(cg, zcg)  # moved into the chain's own cgroups
            self.assertEqual(status_fields(init)["NSpid"].split()[-1], "1")
            self.assertEqual(status_fields(chain_proc[0])["NSpid"].split()[-1], "2")
        # the zygote itself keeps capabilities only inside its own user namespace
        self.assertNotEqual(status_fields(z)["Uid"].split()[0], "0")

    def test_2b_warm_sandboxes_wait_at_refill_priority(self):
        # forked by the zygote for a refill thread (nice 10, isolate/pool.c), not at
        # the zygote's own priority; a chain that takes one runs at nice 0 (test_pool).
        # An engine separated from its privileged part cannot raise a priority
        # again, so its refills stay at nice 0 (pool.c may_renice)
        wait_pool(self.client, 2)
        want = 0 if "privilege separation: the engine runs as" in self.engine.read_log() else 10
        z = self.zygote()
        for init in self.warm_sandboxes(z, 2):
            for pid in [init] + children(init):
                nice = int(read("/proc/%d/stat" % pid).rsplit(")", 1)[1].split()[16])
                self.assertEqual(nice, want, pid)

    def test_3_chains_run_and_get_fresh_tmp(self):
        for _ in range(3):
            sc = self.client.chain("return 1 + 1")
            self.assertIsNone(sc["error"], sc)
            self.assertEqual(sc["result"], 2)

    def test_4_killed_zygote_is_restarted(self):
        wait_pool(self.client, 2)
        z = self.zygote()
        os.kill(z, signal.SIGKILL)
        deadline = time.time() + 10
        while os.path.exists("/proc/%d/status" % z) and time.time() < deadline:
            try:
                if status_fields(z)["State"].startswith("Z"):
                    break
            except OSError:
                break
            time.sleep(0.02)
        # the warm sandboxes died with it: they are discarded, never handed out
        for _ in range(4):
            sc = self.client.chain("return 40 + 2")
            self.assertIsNone(sc["error"], sc)
            self.assertEqual(sc["result"], 42)
        h = wait_pool(self.client, 2)
        self.assertEqual(h["pool"]["zygotes"], 1, h)
        self.assertEqual(len(zygote_pids(self.engine.read_log())), 2, self.engine.read_log())
        self.assertNotEqual(self.zygote(), z)



class ZygoteSingleRootProcessTest(ZygoteTest):
    """The same with engine.user: root (one root process, not separated):
    its refills run at nice 10 and the zygote forks at that priority."""
    CONFIG = CONFIG + "  user: root\n"

class ZygoteOffTest(unittest.TestCase):
    def run_engine(self, config):
        eng = Engine(config).start()
        try:
            c = eng.client()
            h = wait_pool(c, 1)
            sc = c.chain("return 'direct'")
            self.assertIsNone(sc["error"], sc)
            self.assertEqual(sc["result"], "direct")
            h = health(c)
            c.close()
            return h, eng.read_log()
        finally:
            eng.stop()
            eng.cleanup()

    def test_disabled_by_config(self):
        h, log = self.run_engine(CONFIG + "  zygote: false\n")
        self.assertEqual(h["pool"]["zygotes"], 0)
        self.assertEqual(h["pool"]["zygote_spawns"], 0)
        self.assertNotIn("zygote", log)

    def test_rootfs_without_the_extension(self):
        d = tempfile.mkdtemp(prefix="codemode-zygote-test-")
        os.chmod(d, 0o755)  # the engine's service user binds the rootfs
        try:
            rootfs = os.path.join(d, "rootfs")
            # the builder run from the source tree finds no extension next to it
            r = subprocess.run(["/usr/bin/python3.11", os.path.join(ROOT, "rootfs", "build_rootfs.py"),
                                "--out", rootfs], capture_output=True, text=True, timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("no zygote extension", r.stderr)
            h, log = self.run_engine(CONFIG + "  rootfs: %s\n" % rootfs)
            self.assertEqual(h["pool"]["zygotes"], 0)
            self.assertIn("zygote (minimal rootfs) unavailable, building sandboxes directly", log)
            self.assertIn("_codemode_zygote", log)
        finally:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
