"""The privileged part alone (issue 17 deliverable 1, isolate/sandboxd.c):
`codemode __sandboxd` started by this test on one end of a SOCK_SEQPACKET
pair, with a throw-away service uid S, a sandbox uid range, its own cgroup
instance directories (v1 pids and cpu, cgroup2) and work dir.  Each of the
five requests is accepted for a valid target (a process that became S and
made a user namespace, a provider process of a range uid), and each of a
list of fuzzed frames and wrong targets (no pidfd, a namespace not S's,
a uid outside the range, `..` or `/` in a name, paths outside the work
dir, an oversized frame, ...) is refused: no reply, the channel closed,
exit status 3, and nothing created (no id map written, no process moved
or started).  End-of-file cleans up: what is in the instance cgroups is
killed, the cgroups and the work dir are removed.  The accepted requests
run again with only the engine container's capabilities.  Root only."""
import ctypes
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import unittest

from tests.integration.engine import ROOT

BIN = os.environ.get("CODEMODE_BIN", os.path.join(ROOT, "build", "codemode"))
HDR = struct.Struct("=IIIiiII")  # magic op uid pgid sig nstr len (isolate/sandboxd.h)
REPLY = struct.Struct("=Iii")
MAGIC = 0x434D5344
IDS, ATTACH, PROVIDER, SIGNAL, UIDKILL = 1, 2, 3, 4, 5
CLONE_NEWUSER = 0x10000000
SVC = 3950000 + (os.getpid() % 1000) * 40  # S; the range is S+1 .. S+16
BASE, COUNT = SVC + 1, 16
U = BASE + 3
CG = "/sys/fs/cgroup"
# this host's hierarchies: v1 pids and cpu beside cgroup2 at unified/, or
# cgroup2 alone at the mount point (the cgroup v2 test VM)
PURE_V2 = os.path.exists(os.path.join(CG, "cgroup.controllers"))
V1_ROOTS = [] if PURE_V2 else [os.path.join(CG, c) for c in ("pids", "cpu")]
V2_ROOT = CG if PURE_V2 else os.path.join(CG, "unified")


def frame(op, uid=0, pgid=0, sig=0, strs=(), nstr=None, magic=MAGIC, extra=b""):
    payload = b"".join(s.encode() + b"\0" for s in strs) + extra
    return HDR.pack(magic, op, uid, pgid, sig, len(strs) if nstr is None else nstr,
                    len(payload)) + payload


def uids_of(pid):
    """The four uids of a live process ([] for a zombie: it is dead)."""
    uids, state = [], ""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                uids = [int(x) for x in line.split()[1:]]
            elif line.startswith("State:"):
                state = line.split()[1]
    return [] if state in ("Z", "X") else uids


def range_processes():
    """Pids running as a uid of the range (there must be none left)."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if any(BASE <= u < BASE + COUNT for u in uids_of(int(name))):
                    out.append(int(name))
            except OSError:
                pass
    return out


class Target:
    """A forked process: with userns_uid it becomes that uid and makes a user
    namespace (so that uid owns it), else it stays as it is."""

    def __init__(self, userns_uid=None):
        r, w = os.pipe()
        self.hold_r, self.hold_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            try:
                # nothing of this test's (the broker's channel above all)
                keep = sorted((w, self.hold_r))
                os.closerange(3, keep[0])
                os.closerange(keep[0] + 1, keep[1])
                os.closerange(keep[1] + 1, 1 << 16)
                if userns_uid is not None:
                    os.setresgid(userns_uid, userns_uid, userns_uid)
                    os.setresuid(userns_uid, userns_uid, userns_uid)
                    libc = ctypes.CDLL(None, use_errno=True)
                    # dumpable, as the engine is after its drop (its /proc
                    # files its own, not root's)
                    if libc.prctl(4, 1, 0, 0, 0) != 0 or libc.unshare(CLONE_NEWUSER) != 0:
                        os._exit(2)
                os.write(w, b"r")
                os.read(self.hold_r, 1)
            finally:
                os._exit(0)
        os.close(w)
        os.read(r, 1)
        os.close(r)
        self.pidfd = os.pidfd_open(self.pid)

    def proc(self, name):
        with open("/proc/%d/%s" % (self.pid, name)) as f:
            return f.read()

    def end(self):
        os.close(self.pidfd)
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(self.pid, 0)
        os.close(self.hold_r)
        os.close(self.hold_w)


class Broker:
    """One __sandboxd with fresh instance cgroups (each with a child c1) and
    a fresh work dir (S's, 0711)."""

    def __init__(self, exec_opts=("--jail", "--tmp-mb", "8"), prefix=()):
        tag = "sbdtest-%d-%d" % (os.getpid(), time.monotonic_ns() % 10**9)
        # each below a directory of its own (0755, root's), as an engine's
        # instance is below its cgroup: the hierarchy roots here are 0555,
        # which a root without CAP_DAC_OVERRIDE could not remove from
        self.parents = [os.path.join(r, tag) for r in V1_ROOTS + [V2_ROOT]]
        for d in self.parents:
            os.mkdir(d)
        self.v1 = [os.path.join(d, "e") for d in self.parents[:-1]]
        self.v2 = os.path.join(self.parents[-1], "e")
        self.prov = os.path.join(self.parents[-1], "p")
        for d in self.v1 + [self.v2]:
            os.makedirs(os.path.join(d, "c1"))
        os.mkdir(self.prov)
        self.workdir = tempfile.mkdtemp(prefix="sbdtest-", dir="/tmp")
        os.chown(self.workdir, SVC, SVC)
        os.chmod(self.workdir, 0o711)
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        argv = [BIN, "__sandboxd", "--fd", str(theirs.fileno()), "--service",
                "%d:%d" % (SVC, SVC), "--range", "%d:%d:%d" % (BASE, BASE, COUNT),
                "--workdir", self.workdir]
        for d in self.v1:
            argv += ["--instance", "1:" + d]
        argv += ["--instance", "2:" + self.v2, "--cgroup", "2:" + self.prov, "--"]
        argv += list(exec_opts)
        argv = list(prefix) + argv
        self.proc = subprocess.Popen(argv, pass_fds=[theirs.fileno()], stderr=subprocess.PIPE)
        theirs.close()
        self.sock.settimeout(20)

    def ask(self, data, fds=()):
        if fds:
            socket.send_fds(self.sock, [data], list(fds))
        else:
            self.sock.send(data)
        got = self.sock.recv(64)
        if not got:
            return None
        magic, status, pid = REPLY.unpack(got)
        assert magic == MAGIC
        return status, pid

    def close(self):
        self.sock.close()
        rc = self.proc.wait(20)
        self.stderr = self.proc.stderr.read().decode(errors="replace")
        self.proc.stderr.close()
        assert "Sanitizer" not in self.stderr, self.stderr  # the ASan build (CODEMODE_BIN)
        return rc

    def leftovers(self):
        return [p for p in self.v1 + [self.v2, self.prov, self.workdir] if os.path.exists(p)]

    def remove(self):
        for d in self.v1 + [self.v2]:
            for sub in (os.path.join(d, "c1"), d):
                try:
                    os.rmdir(sub)
                except OSError:
                    pass
        for d in [self.prov] + self.parents:
            try:
                os.rmdir(d)
            except OSError:
                pass
        subprocess.run(["rm", "-rf", self.workdir])


@unittest.skipUnless(os.geteuid() == 0, "root only")
class SandboxdAccepts(unittest.TestCase):
    PREFIX = ()

    def setUp(self):
        self.b = Broker(prefix=self.PREFIX)
        self.targets = []

    def tearDown(self):
        for t in self.targets:
            t.end()
        if self.b.proc.poll() is None:
            self.b.close()
        self.b.remove()

    def target(self, uid=SVC):
        t = Target(uid)
        self.targets.append(t)
        return t

    def test_ids_writes_the_maps(self):
        t = self.target()
        self.assertEqual(self.b.ask(frame(IDS, uid=U), [t.pidfd]), (0, 0))
        self.assertEqual(t.proc("uid_map").split(), ["0", str(U), "1"])
        self.assertEqual(t.proc("gid_map").split(), ["0", str(U), "1"])
        self.assertEqual(t.proc("setgroups").strip(), "deny")

    def test_attach_joins_every_hierarchy(self):
        t = self.target()
        # mapped first, as a direct sandbox is attached after its maps
        self.assertEqual(self.b.ask(frame(IDS, uid=U), [t.pidfd]), (0, 0))
        self.assertEqual(self.b.ask(frame(ATTACH, strs=["c1"]), [t.pidfd]), (0, 0))
        cg = t.proc("cgroup")
        for d in self.b.v1 + [self.b.v2]:
            root = next(r for r in V1_ROOTS + [V2_ROOT] if d.startswith(r + "/"))
            self.assertIn("/%s/c1\n" % os.path.relpath(d, root), cg)

    def test_attach_takes_a_process_of_a_sandbox_uid(self):
        t = self.target(U)  # as a zygote's child: already the sandbox uid
        self.assertEqual(self.b.ask(frame(ATTACH, strs=["c1"]), [t.pidfd]), (0, 0))
        self.assertIn("/c1", t.proc("cgroup"))

    def spawn(self, script, strs=()):
        r, w = os.pipe()
        nul = os.open("/dev/null", os.O_RDONLY)
        got = self.b.ask(frame(PROVIDER, uid=U, strs=["p/bin/sh", "ash", "a-c", "a" + script,
                                                     "ePATH=/usr/bin:/bin", "c/"] + list(strs)),
                         [nul, w, w])
        os.close(nul)
        os.close(w)
        self.assertIsNotNone(got)
        self.assertEqual(got[0], 0)
        return got[1], r

    def test_provider_runs_as_the_uid_and_is_our_child(self):
        pid, r = self.spawn("id -u; id -g; exec sleep 30")
        with os.fdopen(r) as f:
            self.assertEqual(f.readline().strip(), str(U))
            self.assertEqual(f.readline().strip(), str(U))
            self.assertEqual(uids_of(pid), [U] * 4)
            self.assertEqual(os.getpgid(pid), pid)
            # SIGNAL reaches its group; CLONE_PARENT made it this process's child
            self.assertEqual(self.b.ask(frame(SIGNAL, pgid=pid, sig=signal.SIGKILL)), (0, 0))
            _, st = os.waitpid(pid, 0)
            self.assertTrue(os.WIFSIGNALED(st) and os.WTERMSIG(st) == signal.SIGKILL)

    def call_dir(self, name, link=False):
        """A call directory as the unprivileged engine makes it: S's, 0700,
        a script in it (and, with link, a second name of that script)."""
        call = os.path.join(self.b.workdir, name)
        os.mkdir(call, 0o700)
        with open(os.path.join(call, "script"), "w") as f:
            f.write("x")
        if link:
            os.link(os.path.join(call, "script"), os.path.join(call, "alias"))
        for p in [call] + [os.path.join(call, n) for n in os.listdir(call)]:
            os.chown(p, SVC, SVC)
        return call

    def test_provider_own_gives_the_call_dir_to_the_uid(self):
        call = self.call_dir("call2")
        pid, r = self.spawn("echo hi > %s/out" % call, ["r" + call, "o" + call])
        with os.fdopen(r) as f:
            said = f.read()
        _, st = os.waitpid(pid, 0)
        self.assertEqual(os.waitstatus_to_exitcode(st), 0, said)
        d = os.stat(call)
        self.assertEqual((d.st_uid, d.st_gid, d.st_mode & 0o7777), (U, SVC, 0o2750))
        for name in ("script", "out"):  # the engine's group stays: it may read them
            f = os.stat(os.path.join(call, name))
            self.assertEqual((f.st_uid, f.st_gid), (U, SVC), name)

    def test_provider_own_refuses_a_hard_link(self):
        call = self.call_dir("call3", link=True)
        pid, r = self.spawn("echo ran", ["r" + call, "o" + call])
        with os.fdopen(r) as f:
            self.assertIn("not a file of its own", f.read())
        _, st = os.waitpid(pid, 0)
        self.assertEqual(os.waitstatus_to_exitcode(st), 126)
        self.assertEqual(os.stat(call).st_uid, SVC)  # nothing given away
        self.assertEqual(os.stat(os.path.join(call, "script")).st_uid, SVC)

    def test_uidkill_clears_the_uid_and_its_call_dir(self):
        call = os.path.join(self.b.workdir, "call1")
        os.mkdir(call, 0o700)
        with open(os.path.join(call, "out"), "w") as f:
            f.write("x")
        os.chown(os.path.join(call, "out"), U, U)
        os.chown(call, U, U)
        pid, r = self.spawn("setsid sleep 30 & echo started; wait")
        with os.fdopen(r) as f:
            self.assertEqual(f.readline().strip(), "started")
        self.assertTrue(range_processes())
        self.assertEqual(self.b.ask(frame(UIDKILL, uid=U, strs=[call])), (0, 0))
        os.waitpid(pid, 0)
        self.assertEqual(range_processes(), [])
        self.assertFalse(os.path.exists(call))

    def test_end_of_file_cleans_up(self):
        t = self.target()
        self.assertEqual(self.b.ask(frame(IDS, uid=U), [t.pidfd]), (0, 0))
        self.assertEqual(self.b.ask(frame(ATTACH, strs=["c1"]), [t.pidfd]), (0, 0))
        self.assertEqual(self.b.close(), 0, self.b.stderr)
        _, st = os.waitpid(t.pid, 0)  # killed with its cgroup
        self.assertTrue(os.WIFSIGNALED(st))
        self.targets.remove(t)
        os.close(t.pidfd)
        os.close(t.hold_r)
        os.close(t.hold_w)
        self.assertEqual(self.b.leftovers(), [])


@unittest.skipUnless(shutil.which("setpriv"), "no setpriv")
class SandboxdAcceptsContainerCaps(SandboxdAccepts):
    """The same with only the capabilities of the engine's container
    (deploy/README.md "Privileges": CHOWN SETUID SETGID BPF NET_ADMIN):
    no CAP_SYS_ADMIN, CAP_DAC_OVERRIDE, CAP_SYS_PTRACE or CAP_KILL."""
    PREFIX = ("setpriv", "--bounding-set=-all,+chown,+setuid,+setgid,+bpf,+net_admin")


def bad(name, reason, build):
    """A refusal case: build(test, target) -> (frame, fds); reason: what the
    broker's log line must name (so it was refused for that)."""
    return name, reason, build


def provider(*strs, uid=U):
    return lambda t, tg: (frame(PROVIDER, uid=uid, strs=["p/bin/true", "atrue"] + list(strs)),
                          t.stdio())


REFUSED = [
    bad("bad_magic", "bad magic", lambda t, tg: (frame(IDS, uid=U, magic=0x1234), [tg.pidfd])),
    bad("unknown_op", "bad magic", lambda t, tg: (frame(9), [])),
    bad("op_zero", "bad magic", lambda t, tg: (frame(0), [])),
    bad("short_frame", "short frame", lambda t, tg: (b"CMSD", [])),
    bad("length_mismatch", "bad length", lambda t, tg: (frame(ATTACH, strs=["c1"])[:-1], [tg.pidfd])),
    bad("string_count_mismatch", "op 2:", lambda t, tg: (frame(ATTACH, strs=["c1"], nstr=2), [tg.pidfd])),
    bad("unterminated_string", "unterminated string", lambda t, tg: (frame(ATTACH, nstr=1, extra=b"c1"), [tg.pidfd])),
    bad("unused_field_set", "fields it does not use", lambda t, tg: (frame(IDS, uid=U, sig=9), [tg.pidfd])),
    bad("ids_without_fd", "fd count", lambda t, tg: (frame(IDS, uid=U), [])),
    bad("ids_two_fds", "fd count", lambda t, tg: (frame(IDS, uid=U), [tg.pidfd, tg.pidfd])),
    bad("ids_fd_not_a_pidfd", "no pidfd", lambda t, tg: (frame(IDS, uid=U), [t.pipe()])),
    bad("ids_uid_below_range", "outside the sandbox range", lambda t, tg: (frame(IDS, uid=BASE - 1), [tg.pidfd])),
    bad("ids_uid_above_range", "outside the sandbox range", lambda t, tg: (frame(IDS, uid=BASE + COUNT), [tg.pidfd])),
    bad("ids_uid_zero", "outside the sandbox range", lambda t, tg: (frame(IDS, uid=0), [tg.pidfd])),
    bad("ids_host_namespace", "no child of the engine running as the service user", lambda t, tg: (frame(IDS, uid=U), [t.other(None).pidfd])),
    bad("ids_namespace_of_other_uid", "no child of the engine running as the service user", lambda t, tg: (frame(IDS, uid=U), [t.other(U).pidfd])),
    bad("ids_twice", "already has id maps", lambda t, tg: (t.ids_once(tg), [tg.pidfd])),
    bad("attach_dotdot", "bad cgroup name", lambda t, tg: (frame(ATTACH, strs=[".."]), [tg.pidfd])),
    bad("attach_slash", "bad cgroup name", lambda t, tg: (frame(ATTACH, strs=["c1/x"]), [tg.pidfd])),
    bad("attach_upper", "bad cgroup name", lambda t, tg: (frame(ATTACH, strs=["C1"]), [tg.pidfd])),
    bad("attach_long", "bad cgroup name", lambda t, tg: (frame(ATTACH, strs=["c" * 33]), [tg.pidfd])),
    bad("attach_empty", "bad cgroup name", lambda t, tg: (frame(ATTACH, strs=[""]), [tg.pidfd])),
    bad("attach_providers", "bad cgroup name", lambda t, tg: (frame(ATTACH, strs=["providers"]), [tg.pidfd])),
    bad("attach_missing", "no cgroup c9", lambda t, tg: (frame(ATTACH, strs=["c9"]), [tg.pidfd])),
    bad("attach_host_process", "no process of a sandbox uid", lambda t, tg: (frame(ATTACH, strs=["c1"]), [t.other(None).pidfd])),
    bad("attach_service_user_process", "no process of a sandbox uid",
        lambda t, tg: (frame(ATTACH, strs=["c1"]), [tg.pidfd])),  # before its IDS
    bad("ids_not_the_engines_child", "no child of the engine running as the service user",
        lambda t, tg: (frame(IDS, uid=U), [t.grandchild()])),
    bad("provider_uid_outside", "outside the sandbox range", provider(uid=SVC)),
    bad("provider_rw_relative", "writable directory", provider("rtmp")),
    bad("provider_rw_dotdot", "writable directory", provider("r/tmp/../etc")),
    bad("provider_cwd_relative", "working directory", provider("ctmp")),
    bad("provider_own_outside", "not a direct child", provider("o/etc/passwd")),
    bad("provider_own_nested", "not a direct child", lambda t, tg: provider("o" + t.b.workdir + "/a/b")(t, tg)),
    bad("provider_own_dotdot", "not a direct child", lambda t, tg: provider("o" + t.b.workdir + "/..")(t, tg)),
    bad("provider_env_without_name", "without a name", provider("e=x")),
    bad("provider_unknown_tag", "unknown string tag", provider("zfoo")),
    bad("provider_no_argv", "no program or argv", lambda t, tg: (frame(PROVIDER, uid=U, strs=["p/bin/true"]),
                                           t.stdio())),
    bad("provider_two_fds", "fd count", lambda t, tg: (frame(PROVIDER, uid=U, strs=["p/bin/true", "atrue"]),
                                           t.stdio()[:2])),
    bad("provider_oversized", "truncated", provider("a" + "x" * (130 * 1024))),
    bad("signal_bad_signal", "SIGNAL: signal 19", lambda t, tg: (frame(SIGNAL, pgid=os.getpgid(0), sig=19), [])),
    bad("signal_unknown_group", "no provider process group", lambda t, tg: (frame(SIGNAL, pgid=os.getpgid(0), sig=9), [])),
    bad("uidkill_uid_outside", "outside the sandbox range", lambda t, tg: (frame(UIDKILL, uid=SVC), [])),
    bad("uidkill_dir_outside", "not a direct child", lambda t, tg: (frame(UIDKILL, uid=U, strs=["/tmp"]), [])),
    bad("uidkill_dir_dotdot", "not a direct child", lambda t, tg: (frame(UIDKILL, uid=U, strs=[t.b.workdir + "/.."]),
                                             [])),
]


@unittest.skipUnless(os.geteuid() == 0, "root only")
class SandboxdRefuses(unittest.TestCase):
    def setUp(self):
        self.b = Broker()
        self.fds, self.procs, self.mids = [], [], []

    def tearDown(self):
        for fd in self.fds:
            os.close(fd)
        for t in self.procs:
            t.end()
        for mid, pid in self.mids:
            os.kill(pid, signal.SIGKILL)
            os.kill(mid, signal.SIGKILL)
            os.waitpid(mid, 0)
        if self.b.proc.poll() is None:
            self.b.close()
        self.b.remove()

    def pipe(self):
        r, w = os.pipe()
        self.fds += [r, w]
        return r

    def stdio(self):
        r, w = os.pipe()
        self.fds += [r, w]
        return [r, w, w]

    def other(self, uid):
        t = Target(uid)
        self.procs.append(t)
        return t

    def grandchild(self):
        """A pidfd of a service-user process with a user namespace that is
        not this test's (the engine's) child."""
        r, w = os.pipe()
        mid = os.fork()
        if mid == 0:
            t = Target(SVC)
            os.write(w, str(t.pid).encode())
            os.read(t.hold_r, 1)  # until this test's tearDown kills it
            os._exit(0)
        os.close(w)
        pid = int(os.read(r, 32))
        os.close(r)
        self.mids.append((mid, pid))
        fd = os.pidfd_open(pid)
        self.fds.append(fd)
        return fd

    def ids_once(self, tg):
        self.assertEqual(self.b.ask(frame(IDS, uid=U), [tg.pidfd]), (0, 0))
        return frame(IDS, uid=U + 1)

    def check(self, name, reason, build):
        tg = self.other(SVC)
        cg_before = tg.proc("cgroup")
        data, fds = build(self, tg)
        maps_before = tg.proc("uid_map")
        if len(data) > 128 * 1024:
            self.b.sock.send(data)
            got = self.b.sock.recv(64) or None
        else:
            got = self.b.ask(data, fds)
        self.assertIsNone(got, "%s: answered %r" % (name, got))
        self.assertEqual(self.b.close(), 3, self.b.stderr)
        self.assertIn("refused", self.b.stderr)
        self.assertIn(reason, self.b.stderr, name)
        self.assertEqual(tg.proc("uid_map"), maps_before, name)
        self.assertEqual(tg.proc("cgroup"), cg_before, name)
        ours = {t.pid for t in self.procs}  # a target of a range uid is this test's
        self.assertEqual([p for p in range_processes() if p not in ours], [], name)
        self.assertEqual(self.b.leftovers(), [], name)  # refused: cleaned up as at EOF


def make_case(case):
    def test(self):
        self.check(*case)
    return test


for _case in REFUSED:
    setattr(SandboxdRefuses, "test_refuses_" + _case[0], make_case(_case))


if __name__ == "__main__":
    unittest.main()
