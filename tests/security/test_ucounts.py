"""Sandbox accounting is the sandbox's (issue 14, deliverable 6): the
per-user-namespace limits /proc/sys/user/max_* are set low in every
sandbox's user namespace, so what a chain holds (inotify instances and
watches, namespaces, fanotify groups) is bounded there and cannot exhaust
the host user that created the namespace (host root: measured before the
fix, a chain holding 128 inotify instances made inotify_init() fail for
every host root process).

Each case runs on the zygote path (the default) and on the direct path
(engine.zygote: false, one user namespace per sandbox).  The limits are read
from the host with `nsenter --user` into a sandbox process's user namespace
(the sandbox has no /proc), and the host-side check calls inotify_init1()
in this (host root) process while a chain holds all it could get."""
import ctypes
import errno
import os
import subprocess
import threading
import time
import unittest

from tests.integration.engine import Engine
from tests.security import harness

EXPECTED = {"max_user_namespaces": 0, "max_inotify_instances": 8, "max_inotify_watches": 256,
            "max_fanotify_groups": 0, "max_fanotify_marks": 0, "max_time_namespaces": 0}
NS_KINDS = ("pid", "mnt", "net", "ipc", "uts", "cgroup")

# Creates up to 200 inotify instances, holds them for `hold` seconds, and
# returns [instances, errno name of the first failure].
HOLD_INSTANCES = r'''
import ctypes, errno, time
libc = ctypes.CDLL(None, use_errno=True)
fds, err = [], None
for _ in range(200):
    fd = libc.inotify_init1(0o2000000)
    if fd < 0:
        err = errno.errorcode.get(ctypes.get_errno())
        break
    fds.append(fd)
time.sleep(%(hold)s)
return [len(fds), err]
'''

# One instance, watches on 300 distinct files in /tmp: [watches, errno name].
MANY_WATCHES = r'''
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init1(0o2000000)
if fd < 0:
    return ["init", errno.errorcode.get(ctypes.get_errno())]
n, err = 0, None
for i in range(300):
    p = "/tmp/w%d" % i
    os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o600))
    if libc.inotify_add_watch(fd, p.encode(), 0x2) < 0:
        err = errno.errorcode.get(ctypes.get_errno())
        break
    n += 1
return [n, err]
'''

_libc = ctypes.CDLL(None, use_errno=True)


def host_inotify_init():
    """inotify_init1() in this host-root process: 0 or the errno name."""
    fd = _libc.inotify_init1(os.O_CLOEXEC)
    if fd < 0:
        return errno.errorcode.get(ctypes.get_errno(), "?")
    os.close(fd)
    return 0


def inotify_fds(pid):
    try:
        return sum(1 for fd in os.listdir("/proc/%d/fd" % pid)
                   if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == "anon_inode:inotify")
    except OSError:
        return 0


def sandboxed_pids():
    """Processes in a user namespace other than ours (the sandboxes)."""
    mine = os.readlink("/proc/self/ns/user")
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            if os.readlink("/proc/%s/ns/user" % p) != mine:
                out.append(int(p))
        except OSError:
            continue
    return out


def wait_holder(timeout=15):
    """Pid of the sandbox process holding inotify instances, once its count
    stopped growing."""
    deadline = time.time() + timeout
    last = (None, -1)
    while time.time() < deadline:
        best = max(((inotify_fds(p), p) for p in sandboxed_pids()), default=(0, None))
        if best[0] > 0 and best == last:
            return best[1], best[0]
        last = best
        time.sleep(0.2)
    raise AssertionError("no sandbox process holds inotify instances")


def userns_limits(pid):
    """/proc/sys/user/max_* as seen from pid's user namespace."""
    names = sorted(os.listdir("/proc/sys/user"))
    out = subprocess.run(["nsenter", "--user", "--preserve-credentials", "-t", str(pid), "sh", "-c",
                          "cd /proc/sys/user && for f in %s; do echo $f $(cat $f); done"
                          % " ".join(names)], capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    return {k: int(v) for k, v in (line.split() for line in out.stdout.splitlines())}


class UcountsBase:
    EXTRA = ""

    @classmethod
    def setUpClass(cls):
        cls.engine = Engine(harness.CONFIG + cls.EXTRA)
        try:
            cls.engine.start()
        except Exception:
            cls.engine.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        rc = cls.engine.stop()
        log = cls.engine.read_log()
        cls.engine.cleanup()
        if rc != 0:
            raise AssertionError("engine exited with %s; log:\n%s" % (rc, log[-4000:]))
        if "ERROR: AddressSanitizer" in log or "runtime error:" in log or "LeakSanitizer" in log:
            raise AssertionError("sanitizer report in engine log:\n" + log[-6000:])

    def chain(self, code, timeout=20):
        client = self.engine.client(timeout=60)
        try:
            return client.chain(code, timeout=timeout)
        finally:
            client.close()

    def run_holding(self, hold, while_held):
        """Runs HOLD_INSTANCES; calls while_held(pid, count) while the chain
        holds its instances; returns (chain answer, while_held's value)."""
        answer = {}
        t = threading.Thread(target=lambda: answer.update(
            r=self.chain(HOLD_INSTANCES % {"hold": hold}, timeout=hold + 10)))
        t.start()
        try:
            pid, count = wait_holder()
            seen = while_held(pid, count)
        finally:
            t.join(60)
        self.assertFalse(t.is_alive())
        r = answer["r"]
        self.assertIsNone(r["error"], r)
        return r["result"], seen

    def test_inotify_bounded_and_host_root_unaffected(self):
        self.assertEqual(host_inotify_init(), 0)  # baseline
        result, (count, host) = self.run_holding(4, lambda pid, n: (n, host_inotify_init()))
        # host root could still create one while the chain held all it got
        self.assertEqual(host, 0, "host inotify_init1 failed while a chain held %d" % count)
        # the chain got exactly the sandbox's limit, then EMFILE (the ucount
        # of its own user namespace, not the host's 128)
        self.assertEqual(result, [EXPECTED["max_inotify_instances"], "EMFILE"])
        self.assertEqual(count, EXPECTED["max_inotify_instances"])

    def test_limits_inside_the_sandbox_namespace(self):
        _, limits = self.run_holding(3, lambda pid, n: userns_limits(pid))
        for name, value in EXPECTED.items():
            if name in limits:
                self.assertEqual(limits[name], value, name)
        for kind in NS_KINDS:
            self.assertLessEqual(limits["max_%s_namespaces" % kind], self.MAX_NS, kind)
        # the host's own values are untouched
        with open("/proc/sys/user/max_inotify_instances") as f:
            self.assertGreater(int(f.read()), EXPECTED["max_inotify_instances"])

    def test_inotify_watches_bounded(self):
        r = self.chain(MANY_WATCHES)
        self.assertIsNone(r["error"], r)
        n, err = r["result"]
        self.assertEqual(err, "ENOSPC", r)
        self.assertEqual(n, EXPECTED["max_inotify_watches"])

    def test_ordinary_chains_still_work(self):
        # namespace limits must leave room for the engine's own sandboxes
        for _ in range(6):
            r = self.chain("return 41 + 1")
            self.assertEqual(r["result"], 42, r)


class ZygoteUcounts(UcountsBase, unittest.TestCase):
    """Chains forked by the zygote share its user namespace (and limits);
    the zygote may create namespaces for its live chains only."""
    EXTRA = ""
    MAX_NS = 4 * (4 + 2 + 0) + 64 + 1  # workers 4, pool 2 (ZYGOTE_NS_CHILDREN, +1 cgroup)


class DirectUcounts(UcountsBase, unittest.TestCase):
    """engine.zygote: false — every sandbox has a user namespace of its own,
    which may create no namespaces (its one cgroup re-entry aside)."""
    EXTRA = "  zygote: false\n"
    MAX_NS = 1


if __name__ == "__main__":
    unittest.main()
