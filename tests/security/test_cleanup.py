"""Clean-up: after many chains (a fifth of them killed for timeout or
memory) the host shows no leftover cgroup directory, sandbox process, mount
or engine fd; an engine killed with SIGKILL is cleaned up at once by its
privileged part (`codemode __sandboxd`, which reads end-of-file); and when
both die with SIGKILL, the cgroups they leave are removed by the next
engine at start-up (killing anything still inside).

CODEMODE_SOAK_CHAINS sets the count (default 100 in `make test`; `make
soak-isolation` runs 500)."""
import concurrent.futures
import glob
import os
import signal
import time
import unittest

from tests.integration.engine import codemode_cgroup_roots
from tests.security import harness

CHAINS = int(os.environ.get("CODEMODE_SOAK_CHAINS", "100"))
CONFIG = """
engine:
  imports: all
  workers: 4
  memory_mb: 48
  pids_max: 32
  sandbox_uid: 300000
  sandbox_gid: 300000
  sandbox_uid_range: 64
  pool_size: 1
  pool_full_size: 2
"""
# the engine itself runs as the range's last uid (its service user: no
# codemode account here), so sandboxes have the others
UID_LO, UID_HI = 300000, 300063


def sandbox_pids():
    """Host pids of processes running as one of this test's sandbox uids."""
    out = []
    for status in glob.glob("/proc/[0-9]*/status"):
        try:
            with open(status) as f:
                for line in f:
                    if line.startswith("Uid:"):
                        uid = int(line.split()[1])
                        if UID_LO <= uid < UID_HI:
                            out.append(int(status.split("/")[2]))
                        break
        except (OSError, ValueError, IndexError):
            pass
    return out


def instance_dirs(pid):
    """The engine's sandbox cgroups (its one `providers` cgroup aside)."""
    return [d for r in codemode_cgroup_roots() for d in glob.glob(os.path.join(r, "e%d" % pid, "*"))
            if os.path.isdir(d) and not d.endswith("/providers")]


def rootfs_mounts():
    """Host mounts that involve the rootfs (a sandbox mount leaking out of its
    private mount namespace would show here).  Not a global count: other
    programs on the machine mount things too."""
    with open("/proc/self/mountinfo") as f:
        # (the test process's own bind of the checkout for provider uids,
        # tests/integration/engine.py, is not a sandbox's)
        return [l for l in f if (harness.ROOTFS in l or "/codemode" in l.split(" - ")[0])
                and l.split()[4] != harness.ROOT]


def fd_count(pid, want=None, wait=5.0):
    """Engine fd count; with want, waits briefly for the event loop to close
    the sockets of clients that just disconnected."""
    deadline = time.time() + wait
    while True:
        n = len(os.listdir("/proc/%d/fd" % pid))
        if want is None or n == want or time.time() > deadline:
            return n
        time.sleep(0.05)


def steady_fd_count(pid, quiet=0.5, wait=10.0):
    """Engine fd count once it has not changed for `quiet` seconds (the
    socket of a client that just closed may not be closed yet)."""
    deadline = time.time() + wait
    n, since = fd_count(pid), time.time()
    while time.time() - since < quiet and time.time() < deadline:
        time.sleep(0.05)
        m = fd_count(pid)
        if m != n:
            n, since = m, time.time()
    return n


def settled_pool(eng, timeout=30.0):
    """Waits until the warm pool is full and the reaper idle; returns the
    number of warm sandboxes (each legitimately holds cgroups, 3 processes
    and 2 engine fds) and of running zygotes (each holds cgroups, 1 process
    and 2 engine fds: isolate/zygote.c)."""
    c = eng.client(timeout=30)
    try:
        deadline = time.time() + timeout
        while True:
            p = c.request("codemode/health")["result"]["pool"]
            if (p["idle"] == p["size"] and p["idle_full"] == p["full_size"]
                    and p["building"] == 0 and p["disposing"] == 0):
                return p["idle"] + p["idle_full"], p["zygotes"]
            if time.time() > deadline:
                raise AssertionError("pool did not settle: %r" % p)
            time.sleep(0.05)
    finally:
        c.close()


def chain_for(i):
    if i % 10 == 3:
        return "while True:\n    pass", 0.5, "timeout"
    if i % 10 == 7:
        return "x = []\nwhile True:\n    x.append(b'x' * (4 << 20))", 10, "memory_limit"
    return "import os\nreturn os.getpid()", 10, None


class CleanupTest(unittest.TestCase):
    def run_one(self, eng, i):
        code, timeout, kind = chain_for(i)
        c = eng.client(timeout=60)
        try:
            sc = c.chain(code, timeout=timeout)
        finally:
            c.close()
        got = sc["error"]["kind"] if sc["error"] else None
        self.assertEqual(got, kind, sc)
        if kind is None:
            # pid 1 is the init, pid 2 the chain process (the sandbox's runner)
            self.assertEqual(sc["result"], 2)
        return kind

    def test_many_chains_leave_nothing(self):
        self.assertEqual(rootfs_mounts(), [])
        eng = harness.Engine(CONFIG).start()
        try:
            self.run_one(eng, 0)  # warm-up: the engine's steady-state fds
            settled_pool(eng)
            fds_before = steady_fd_count(eng.proc.pid)
            start = time.time()
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                kinds = list(pool.map(lambda i: self.run_one(eng, i), range(CHAINS)))
            elapsed = time.time() - start
            killed = sum(1 for k in kinds if k)
            print("\n%d chains (%d killed: %d timeout, %d memory) in %.1fs" % (
                CHAINS, killed, kinds.count("timeout"), kinds.count("memory_limit"), elapsed))
            self.assertEqual(killed, CHAINS // 10 * 2)
            # what is left is exactly the warm pool: one cgroup per hierarchy
            # and two processes (init, chain process) per sandbox,
            # and per rootfs flavour a zygote (one cgroup per hierarchy, one
            # process)
            warm, zygotes = settled_pool(eng)
            self.assertEqual(zygotes, 2)
            per_sandbox = len([r for r in codemode_cgroup_roots()
                               if os.path.isdir(os.path.join(r, "e%d" % eng.proc.pid))])
            self.assertEqual(len(instance_dirs(eng.proc.pid)), (warm + zygotes) * per_sandbox)
            self.assertEqual(len(sandbox_pids()), warm * 2 + zygotes)
            self.assertEqual(rootfs_mounts(), [])
            self.assertEqual(fd_count(eng.proc.pid, fds_before), fds_before)
            # the engine writes no temp files: its directory holds only what the test put there
            self.assertEqual(sorted(os.listdir(eng.dir)),
                             ["config.yaml", "engine.log", "engine.sock"])
        finally:
            rc = eng.stop()
            eng.cleanup()
        self.assertEqual(rc, 0)
        self.assertEqual([d for r in codemode_cgroup_roots() for d in glob.glob(os.path.join(r, "e%d" % eng.proc.pid))], [])
        self.assertEqual(sandbox_pids(), [])

    def start_three_chains(self):
        eng = harness.Engine(CONFIG).start()
        pool = concurrent.futures.ThreadPoolExecutor(3)
        futs = [pool.submit(lambda: eng.client(timeout=30).chain(
            "import time\ntime.sleep(20)", timeout=25)) for _ in range(3)]
        deadline = time.time() + 10
        while len(instance_dirs(eng.proc.pid)) < 3 and time.time() < deadline:
            time.sleep(0.05)
        self.assertGreaterEqual(len(instance_dirs(eng.proc.pid)), 3)
        return eng, pool, futs

    def wait_killed(self, eng, futs):
        eng.proc.wait()
        for f in futs:
            with self.assertRaises(Exception):
                f.result(timeout=30)
        # the sandboxes died with their spawning threads (parent-death signal)
        deadline = time.time() + 10
        while sandbox_pids() and time.time() < deadline:
            time.sleep(0.05)
        self.assertEqual(sandbox_pids(), [])

    def test_sigkilled_engine_is_cleaned_up_by_its_privileged_part(self):
        eng, pool, futs = self.start_three_chains()
        try:
            self.assertTrue(broker_pid(eng.proc.pid))
            eng.proc.send_signal(signal.SIGKILL)
            self.wait_killed(eng, futs)
            dead = eng.proc.pid
            deadline = time.time() + 10
            while instance_dirs(dead) and time.time() < deadline:
                time.sleep(0.05)
            self.assertEqual(instance_dirs(dead), [])
            self.assertEqual([d for r in codemode_cgroup_roots()
                              for d in glob.glob(os.path.join(r, "e%d" % dead))], [])
            self.assertFalse(os.path.exists(os.path.join(
                os.environ.get("TMPDIR", "/tmp"), "codemode-e%d" % dead)))
        finally:
            pool.shutdown(wait=False)
            eng.cleanup()

    def test_sigkilled_engine_and_broker_are_cleaned_up_by_successor(self):
        eng, pool, futs = self.start_three_chains()
        try:
            broker = broker_pid(eng.proc.pid)
            self.assertTrue(broker)
            os.kill(broker, signal.SIGKILL)  # first: it would clean up after the engine
            eng.proc.send_signal(signal.SIGKILL)
            self.wait_killed(eng, futs)
            dead = eng.proc.pid
            self.assertTrue(instance_dirs(dead), "SIGKILL should have left cgroups behind")
        finally:
            pool.shutdown(wait=False)
            eng.cleanup()
        succ = harness.Engine(CONFIG).start()
        try:
            self.assertEqual(instance_dirs(dead), [])
            self.assertEqual([d for r in codemode_cgroup_roots() for d in glob.glob(os.path.join(r, "e%d" % dead))], [])
            self.assertIn("left by dead engine %d" % dead, succ.read_log())
        finally:
            succ.stop()
            succ.cleanup()


def broker_pid(engine_pid):
    """The engine's privileged part: its child running `__sandboxd`."""
    for name in os.listdir("/proc"):
        try:
            with open("/proc/%s/stat" % name) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open("/proc/%s/cmdline" % name, "rb") as f:
                argv = f.read().split(b"\0")
        except (OSError, ValueError):
            continue
        if ppid == engine_pid and len(argv) > 1 and argv[1] == b"__sandboxd":
            return int(name)
    return None


if __name__ == "__main__":
    unittest.main()
