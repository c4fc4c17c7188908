"""Warm pool (isolate/pool.c): chains are served from pre-built sandboxes,
an empty pool still serves (and counts the miss), a request's lower limits
reach a pooled sandbox's cgroup, no sandbox is ever reused, and teardown
(on the reaper, after the answer) leaves no cgroup or process behind."""
import concurrent.futures
import glob
import os
import time

from tests.integration.engine import EngineTest, Engine, codemode_cgroup_roots

# the range's last uid is the engine's own (its service user, no codemode
# account here): sandboxes have the others
UID_LO, UID_HI = 310000, 310015
CONFIG = """
engine:
  pool_size: 2
  pool_refill_concurrency: 1
  sandbox_uid: 310000
  sandbox_gid: 310000
  sandbox_uid_range: 16
"""


def instance_dirs(pid):
    """The engine's sandbox cgroups in memory, cpu, pids and unified (its
    one `providers` cgroup aside)."""
    roots = [r for r in codemode_cgroup_roots() if "/cpuacct/" not in r]
    return [d for r in roots for d in glob.glob(os.path.join(r, "e%d" % pid, "*"))
            if os.path.isdir(d) and not d.endswith("/providers")]


def sandbox_pids():
    out = []
    for status in glob.glob("/proc/[0-9]*/status"):
        try:
            with open(status) as f:
                for line in f:
                    if line.startswith("Uid:"):
                        if UID_LO <= int(line.split()[1]) < UID_HI:
                            out.append(int(status.split("/")[2]))
                        break
        except (OSError, ValueError, IndexError):
            pass
    return out


class PoolTest(EngineTest):
    CONFIG = CONFIG

    def health(self):
        return self.client.request("codemode/health")["result"]

    def wait_idle(self, n, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            h = self.health()
            if h["pool"]["idle"] >= n and h["pool"]["disposing"] == 0:
                return h
            time.sleep(0.05)
        self.fail("pool did not refill to %d: %r" % (n, self.health()))

    def test_health_reports_the_pool(self):
        h = self.wait_idle(2)
        self.assertTrue(h["ready"], h)
        self.assertEqual(h["pool"]["size"], 2)

    def test_chain_served_from_pool(self):
        self.wait_idle(1)
        sc = self.client.chain("return 1 + 1")
        self.assertEqual(sc["result"], 2, sc)
        self.assertTrue(sc["stats"]["pool_hit"], sc)

    def test_warm_sandbox_gets_normal_priority_on_take(self):
        # refills run at nice 10 so they do not compete with served chains;
        # the chain that takes a sandbox must run at nice 0 (the kernel layers,
        # not the language filter, are the boundary: reach os the classic way)
        self.wait_idle(1)
        code = ("os = [c for c in ().__class__.__base__.__subclasses__() "
                "if c.__name__ == '_wrap_close'][0].__init__.__globals__['sys'].modules['os']\n"
                "return os.getpriority(os.PRIO_PROCESS, 0)")
        sc = self.client.chain(code)
        self.assertTrue(sc["stats"]["pool_hit"], sc)
        self.assertEqual(sc["result"], 0, sc)

    def concurrent_chains(self, code, n):
        """n chains at once on their own connections (more than the pool holds)."""
        def one(_):
            c = self.engine.client()
            try:
                return c.chain(code)
            finally:
                c.close()
        with concurrent.futures.ThreadPoolExecutor(n) as ex:
            return list(ex.map(one, range(n)))

    def test_exhausted_pool_still_serves_and_counts_misses(self):
        self.wait_idle(2)
        before = self.health()["pool"]["misses"]
        # six at once, each holding its sandbox a while: the pool of 2 runs dry
        scs = self.concurrent_chains("import time\ntime.sleep(0.3)\nreturn 7", 6)
        hits = []
        for sc in scs:
            self.assertEqual(sc["result"], 7, sc)
            hits.append(sc["stats"]["pool_hit"])
        self.assertIn(False, hits)
        after = self.health()["pool"]["misses"]
        self.assertEqual(after - before, hits.count(False))
        metrics = self.client.request("codemode/metrics")["result"]
        text = metrics if isinstance(metrics, str) else metrics.get("text", str(metrics))
        self.assertIn("codemode_pool_misses_total", text)

    def test_sandbox_built_on_the_request_path_runs_at_normal_priority(self):
        # a miss is forked from the zygote, which the nice-10 refill thread may
        # have started: the chain must still run at nice 0
        self.wait_idle(2)
        code = ("import time\ntime.sleep(0.3)\n"
                "os = [c for c in ().__class__.__base__.__subclasses__() "
                "if c.__name__ == '_wrap_close'][0].__init__.__globals__['sys'].modules['os']\n"
                "return os.getpriority(os.PRIO_PROCESS, 0)")
        scs = self.concurrent_chains(code, 5)
        self.assertIn(False, [sc["stats"]["pool_hit"] for sc in scs])
        self.assertEqual([sc["result"] for sc in scs], [0] * 5, scs)

    def test_lower_limits_reach_a_pooled_sandbox(self):
        self.wait_idle(1)
        res = self.client.call_tool("call_tool_chain", {
            "code": "x = []\nwhile True:\n    x.append(b'x' * (1 << 20))",
            "memory_mb": 32, "timeout": 20})
        sc = res["structuredContent"]
        self.assertTrue(sc["stats"]["pool_hit"], sc)
        self.assertEqual(sc["error"]["kind"], "memory_limit", sc)
        self.assertIn("32 MiB", sc["error"]["message"])
        self.assertLessEqual(sc["stats"]["peak_memory_bytes"], 32 << 20)

    def test_teardown_leaves_only_the_warm_sandboxes(self):
        for _ in range(3):
            self.client.chain("return 1")
        h = self.wait_idle(2)
        building = h["pool"]["building"]
        # each warm sandbox: its cgroup dirs (memory, cpu, pids, unified) and
        # two processes (the init and the chain process)
        dirs = instance_dirs(self.engine.proc.pid)
        per = len(dirs) // max(1, h["pool"]["idle"] + building)
        self.assertEqual(len(dirs), per * (h["pool"]["idle"] + building))
        # at most: the warm sandboxes plus one zygote per rootfs flavour, in
        # four hierarchies (memory, cpu, pids, unified)
        self.assertLessEqual(len(dirs), 4 * (h["pool"]["idle"] + building + 2))


class PoolFullRootfsTest(EngineTest):
    """imports: all runs on the full rootfs: its own pool flavour."""
    CONFIG = CONFIG.replace("pool_size: 2", "pool_size: 1\n  pool_full_size: 2\n  imports: all")

    def test_no_sandbox_is_reused(self):
        code = ("import os\nnames = os.listdir('/tmp')\n"
                "fd = os.open('/tmp/mark', os.O_CREAT | os.O_WRONLY)\nos.write(fd, b'x')\nreturn names")
        for _ in range(4):
            sc = self.client.chain(code)
            self.assertIn("pool_hit", sc["stats"])
            self.assertEqual(sc["result"], [], sc)

    def test_full_flavour_is_pooled(self):
        deadline = time.time() + 30
        while self.client.request("codemode/health")["result"]["pool"]["idle_full"] < 1:
            self.assertLess(time.time(), deadline)
            time.sleep(0.05)
        sc = self.client.chain("import os\nreturn os.getpid()")
        self.assertEqual(sc["result"], 2, sc)  # pid 1 the init, pid 2 the chain process
        self.assertTrue(sc["stats"]["pool_hit"], sc)


class PoolShutdownTest(EngineTest):
    CONFIG = CONFIG

    def test_stop_removes_pool_and_used_sandboxes(self):
        eng = Engine(CONFIG).start()
        try:
            c = eng.client()
            for _ in range(3):
                self.assertEqual(c.chain("return 3")["result"], 3)
            c.close()
        finally:
            rc = eng.stop()
        pid = eng.proc.pid
        eng.cleanup()
        self.assertEqual(rc, 0)
        self.assertEqual(instance_dirs(pid), [])
        deadline = time.time() + 5
        while sandbox_pids() and time.time() < deadline:
            time.sleep(0.05)
        # the class engine's warm sandboxes use the same uid range: count only
        # what is not a descendant of the class engine
        left = [p for p in sandbox_pids() if not self.owned_by(p, self.engine.proc.pid)]
        self.assertEqual(left, [])

    @staticmethod
    def owned_by(pid, engine_pid):
        while pid > 1:
            try:
                with open("/proc/%d/stat" % pid) as f:
                    pid = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                return False
            if pid == engine_pid:
                return True
        return False
