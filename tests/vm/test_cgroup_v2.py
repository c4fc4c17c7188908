"""The engine's cgroup v2 paths, asserted on a real unified hierarchy.

Why a suite of its own: the development host is cgroup v1, so these paths
run only in the test VM (`make test-vm`, scripts/vm/), whose pid 1 mounts
cgroup2 and enables +memory +cpu +pids in the root and in /sys/fs/cgroup/
cm.slice (where these tests make the delegated subtrees systemd's
Delegate=yes would give a service).  On a host without the unified
hierarchy every test here is skipped with that reason.

Covered: the doctor's v2 report, the per-sandbox v2 files (memory.max,
memory.swap.max, cpu.max, pids.max) and every process of a zygote-born
sandbox inside its chain's cgroup, memory_limit from memory.events, the CPU
quota, the pids cap, teardown (the chain's cgroup gone after the chain, with
its processes), the eBPF guard on the v2 group, an engine nested below a
delegated subtree and below a cgroup namespace root (a container), and the
error naming a controller missing from the parent's cgroup.subtree_control."""
import errno
import os
import subprocess
import threading
import time
import unittest

from tests.integration.engine import BIN, Engine, EngineTest

CG = "/sys/fs/cgroup"
V2 = os.path.exists(os.path.join(CG, "cgroup.controllers"))
SLICE = os.path.join(CG, "cm.slice")
NEED = "needs the unified cgroup hierarchy (make test-vm)"


def read(path):
    with open(path) as f:
        return f.read().strip()


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def remove_tree(path):
    """rmdir a cgroup tree bottom-up (kills what is left first)."""
    if not os.path.isdir(path):
        return
    for name in os.listdir(path):
        sub = os.path.join(path, name)
        if os.path.isdir(sub):
            remove_tree(sub)
    if os.path.exists(os.path.join(path, "cgroup.kill")):
        try:
            write(os.path.join(path, "cgroup.kill"), "1")
        except OSError:
            pass
    for _ in range(200):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.02)


def sandbox_dirs(instance):
    """Sandbox cgroups below an instance directory that hold processes."""
    out = []
    for name in sorted(os.listdir(instance)) if os.path.isdir(instance) else []:
        d = os.path.join(instance, name)
        if os.path.isdir(d) and name.isdigit() and read(os.path.join(d, "cgroup.procs")):
            out.append(d)
    return out


def wait_for(pred, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.05)
    return pred()


def run_chain_in_thread(engine, args):
    box = {}

    def go():
        c = engine.client(timeout=120)
        try:
            box["r"] = c.call_tool("call_tool_chain", args)["structuredContent"]
        finally:
            c.close()

    t = threading.Thread(target=go)
    t.start()
    return t, box


class DelegatedEngine(Engine):
    """An engine started inside cgroup `cgdir` (its only process), optionally
    in a cgroup namespace of its own with a fresh cgroup2 mount: what a
    systemd service with Delegate=yes, or a container, looks like."""

    def __init__(self, cgdir, config=None, container=False, argv=None):
        super().__init__(config)
        self.cgdir, self.container = cgdir, container
        self.argv = argv

    def start(self, wait=True):
        cmd = self.argv or [BIN, "serve", "--socket", self.socket]
        if self.config_path and not self.argv:
            cmd += ["--config", self.config_path]
        if self.container:
            cmd = ["unshare", "--cgroup", "--mount", "--propagation", "private", "sh", "-c",
                   'umount /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec "$0" "$@"'] + cmd
        procs = os.path.join(self.cgdir, "cgroup.procs")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log,
                                     preexec_fn=lambda: write(procs, str(os.getpid())))
        if wait and not self.argv:
            deadline = time.time() + 60
            while not os.path.exists(self.socket):
                if self.proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError("engine did not start: " + self.read_log())
                time.sleep(0.05)
        return self


def make_service(name, controllers="+memory +cpu +pids", parent=SLICE):
    """<parent>/<name>: an empty cgroup whose parent enables `controllers`."""
    if parent != SLICE:
        os.makedirs(parent, exist_ok=True)
        write(os.path.join(parent, "cgroup.subtree_control"), controllers)
    d = os.path.join(parent, name)
    os.makedirs(d, exist_ok=True)
    return d


@unittest.skipUnless(V2, NEED)
class DoctorV2Test(unittest.TestCase):
    def test_doctor_reports_every_layer_on_v2(self):
        p = subprocess.run([BIN, "doctor"], capture_output=True, text=True, timeout=120)
        out = p.stdout + p.stderr
        self.assertEqual(p.returncode, 0, out)
        self.assertIn("cgroup mode: v2\n", out)
        self.assertRegex(out, r"(?m)^cgroup\s+active\s+cgroup v2 \(memory\.max, memory\.swap\.max=0, "
                              r"cpu\.max, pids\.max\) under /sys/fs/cgroup/codemode$")
        self.assertRegex(out, r"(?m)^bpf\s+active\s+cgroup/sock_create .* on "
                              r"/sys/fs/cgroup/codemode/e\d+$")
        self.assertRegex(out, r"live check\s+ok\s")
        self.assertIn("all required layers active", out)


@unittest.skipUnless(V2, NEED)
class V2LimitsTest(EngineTest):
    CONFIG = "engine:\n  imports: all\n  memory_mb: 96\n  cpu_quota_pct: 100\n  pids_max: 64\n"

    def instance(self):
        return os.path.join(CG, "codemode", "e%d" % self.engine.proc.pid)

    def test_sandbox_cgroup_files_and_members(self):
        t, box = run_chain_in_thread(self.engine, {
            "code": "import time\ntime.sleep(3)\nreturn 1", "memory_mb": 64, "cpu_quota_pct": 50,
            "pids_max": 16})
        try:
            want = str(64 << 20)
            dirs = wait_for(lambda: [d for d in sandbox_dirs(self.instance())
                                     if read(d + "/memory.max") == want])
            self.assertEqual(len(dirs), 1, sandbox_dirs(self.instance()))
            d = dirs[0]
            self.assertEqual(read(d + "/cpu.max"), "50000 100000")
            self.assertEqual(read(d + "/pids.max"), "16")
            if os.path.exists(d + "/memory.swap.max"):
                self.assertEqual(read(d + "/memory.swap.max"), "0")
            self.assertEqual(read(d + "/cgroup.type"), "domain")
            # every process of the (zygote-born) sandbox is in the chain's cgroup,
            # none is left in the zygote's: init, chain process
            rel = "0::" + d[len(CG):]
            pids = read(d + "/cgroup.procs").split()
            wait_for(lambda: len(read(d + "/cgroup.procs").split()) >= 2, 10)
            pids = read(d + "/cgroup.procs").split()
            self.assertGreaterEqual(len(pids), 2, pids)
            for pid in pids:
                self.assertEqual(read("/proc/%s/cgroup" % pid), rel)
                uid = int(read("/proc/%s/status" % pid).split("Uid:")[1].split()[0])
                self.assertGreaterEqual(uid, 100000)
            self.assertGreater(int(read(d + "/memory.current")), 0)
        finally:
            t.join(120)
        self.assertEqual(box["r"]["result"], 1, box)
        # teardown: the chain's cgroup is gone after the answer, with its processes
        self.assertTrue(wait_for(lambda: not os.path.exists(d), 10), d)
        for pid in pids:
            self.assertFalse(os.path.exists("/proc/%s" % pid) and
                             "State:\tZ" not in read("/proc/%s/status" % pid), pid)

    def test_memory_limit_from_memory_events(self):
        r = self.client.call_tool("call_tool_chain", {
            "code": "x = b'x' * (200 << 20)\nreturn len(x)", "memory_mb": 48})["structuredContent"]
        self.assertEqual(r["error"]["kind"], "memory_limit", r)
        self.assertIn("48 MiB", r["error"]["message"])
        self.assertGreater(r["stats"]["peak_memory_bytes"], 32 << 20, r)

    def test_within_memory_cap_is_fine(self):
        r = self.client.chain("x = b'x' * (40 << 20)\nreturn len(x) >> 20")
        self.assertEqual(r["result"], 40, r)

    def test_cpu_quota_throttles(self):
        r = self.client.call_tool("call_tool_chain", {"code": "while True:\n    pass", "timeout": 3,
                                                      "cpu_quota_pct": 20})["structuredContent"]
        self.assertEqual(r["error"]["kind"], "timeout", r)
        self.assertGreater(r["stats"]["cpu_throttled_periods"], 0, r)
        self.assertLess(r["stats"]["cpu_ms"], 0.2 * r["stats"]["wall_ms"] + 250, r)

    def test_pids_cap(self):
        code = ("import os, time\nn, err, kids = 0, None, []\n"
                "for i in range(40):\n"
                "    try:\n        p = os.fork()\n"
                "    except OSError as e:\n        err = e.errno\n        break\n"
                "    if p == 0:\n        time.sleep(30)\n        os._exit(0)\n"
                "    kids.append(p)\n    n += 1\n"
                "for p in kids:\n    os.kill(p, 9)\n    os.waitpid(p, 0)\n"
                "return [n, err]")
        r = self.client.call_tool("call_tool_chain", {"code": code, "pids_max": 12})
        n, err = r["structuredContent"]["result"]
        self.assertEqual(err, errno.EAGAIN, r)
        self.assertGreaterEqual(n, 1)
        self.assertLessEqual(n, 12 - 2)  # the init and the chain process count too

    def test_timeout_teardown_kills_every_process(self):
        # a chain that leaves an orphaned grandchild behind and then spins: the
        # timeout tears the whole cgroup down (cgroup.kill), nothing survives
        code = ("import os, time\nif os.fork() == 0:\n"
                "    if os.fork() == 0:\n        time.sleep(60)\n    os._exit(0)\n"
                "while True:\n    time.sleep(0.1)")
        t, box = run_chain_in_thread(self.engine, {"code": code, "timeout": 3,
                                                   "memory_mb": 80})
        try:
            want = str(80 << 20)
            dirs = wait_for(lambda: [d for d in sandbox_dirs(self.instance())
                                     if read(d + "/memory.max") == want and
                                     len(read(d + "/cgroup.procs").split()) >= 4])
            self.assertEqual(len(dirs), 1)
            pids = read(dirs[0] + "/cgroup.procs").split()
        finally:
            t.join(120)
        self.assertEqual(box["r"]["error"]["kind"], "timeout", box)
        self.assertTrue(wait_for(lambda: not os.path.exists(dirs[0]), 10))
        alive = [p for p in pids if os.path.exists("/proc/" + p)]
        self.assertEqual(alive, [])


@unittest.skipUnless(V2, NEED)
class GuardOnV2Test(unittest.TestCase):
    """seccomp off (test mode): the inet socket reaches the cgroup/sock_create
    program on the v2 group, which denies it; with the guard off too it is
    created (so the denial was the guard's)."""

    def chain(self, disable):
        eng = Engine("engine:\n  imports: all\n  test_mode: true\n")
        old = os.environ.get("CODEMODE_TEST_DISABLE_LAYER")
        os.environ["CODEMODE_TEST_DISABLE_LAYER"] = disable
        try:
            eng.start()
            c = eng.client()
            try:
                return c.chain("import socket\ntry:\n    s = socket.socket(socket.AF_INET)\n"
                               "    s.close()\n    return 'created'\n"
                               "except OSError as e:\n    return e.errno")
            finally:
                c.close()
        finally:
            if old is None:
                del os.environ["CODEMODE_TEST_DISABLE_LAYER"]
            else:
                os.environ["CODEMODE_TEST_DISABLE_LAYER"] = old
            eng.stop()
            eng.cleanup()

    def test_guard_denies_inet_socket(self):
        self.assertEqual(self.chain("seccomp")["result"], errno.EPERM)

    def test_without_guard_socket_is_created(self):
        self.assertEqual(self.chain("seccomp,bpf")["result"], "created")


@unittest.skipUnless(V2, NEED)
class DelegatedSubtreeTest(unittest.TestCase):
    CONFIG = "engine:\n  imports: all\n  memory_mb: 64\n"

    def setUp(self):
        self.cgroups = []

    def tearDown(self):
        for d in reversed(self.cgroups):
            remove_tree(d)

    def service(self, name, controllers="+memory +cpu +pids", parent=SLICE):
        d = make_service(name, controllers, parent)
        self.cgroups.append(parent if parent != SLICE else d)
        return d

    def run_engine(self, eng, base):
        """A chain in `eng` while the test looks at the tree below `base`."""
        try:
            eng.start()
            pid = eng.proc.pid
            t, box = run_chain_in_thread(eng, {"code": "import time\ntime.sleep(2)\nreturn 7"})
            try:
                inst = os.path.join(base, "codemode", "e%d" % pid)
                dirs = wait_for(lambda: sandbox_dirs(inst))
                self.assertTrue(dirs, "no sandbox cgroup below %s; log:\n%s" % (inst, eng.read_log()))
                self.assertEqual(read(dirs[0] + "/memory.max"), str(64 << 20))
                self.assertFalse(os.path.exists(os.path.join(CG, "codemode", "e%d" % pid)))
                own = read("/proc/%d/cgroup" % pid)
            finally:
                t.join(120)
            self.assertEqual(box["r"]["result"], 7, box)
            c = eng.client()
            r = c.call_tool("call_tool_chain", {
                "code": "x = b'x' * (200 << 20)\nreturn 1"})["structuredContent"]
            c.close()
            self.assertEqual(r["error"]["kind"], "memory_limit", r)
            self.assertEqual(eng.stop(), 0, eng.read_log())
            self.assertFalse(os.path.exists(inst), "instance left behind")
            return own
        finally:
            eng.cleanup()

    def test_nested_under_delegated_service(self):
        svc = self.service("cmtest-%d.service" % os.getpid())
        own = self.run_engine(DelegatedEngine(svc, self.CONFIG), svc)
        # the engine moved itself into a leaf: its service cgroup holds no process
        self.assertEqual(own, "0::" + svc[len(CG):] + "/codemode/supervisor")
        self.assertEqual(read(svc + "/cgroup.procs"), "")
        self.assertEqual(set(read(svc + "/cgroup.subtree_control").split()),
                         {"memory", "cpu", "pids"})

    def test_container_cgroup_namespace_root(self):
        svc = self.service("cmctr-%d.scope" % os.getpid())
        own = self.run_engine(DelegatedEngine(svc, self.CONFIG, container=True), svc)
        # seen from the host; inside the container it is /codemode/supervisor
        self.assertEqual(own, "0::" + svc[len(CG):] + "/codemode/supervisor")

    def test_missing_controller_is_named(self):
        parent = os.path.join(CG, "cm-nocpu-%d.slice" % os.getpid())
        svc = self.service("codemode.service", "+memory +pids", parent)
        eng = DelegatedEngine(svc, argv=[BIN, "doctor"])
        try:
            eng.start()
            rc = eng.proc.wait(120)
            out = eng.read_log()
        finally:
            eng.cleanup()
        self.assertEqual(rc, 1, out)
        self.assertRegex(out, r"(?m)^cgroup\s+unavailable\s+cgroup v2 controller cpu not "
                              r"available in %s " % svc)
        self.assertIn("cgroup.subtree_control", out)
        self.assertIn("required layers missing: cgroup", out)


if __name__ == "__main__":
    unittest.main()
