"""Who runs as root while a chain works (issue 17's acceptance, measured
from the host): during a chain that calls an MCP stdio tool and then a CLI
tool, every process of the engine and its providers is listed from /proc
(the engine's descendants, and anything in its cgroups codemode/e<pid> and
codemode/p<pid> that was reparented), several times while the CLI command
runs.  Asserted: the snapshot holds a sandbox process, the MCP server and
the CLI command (so it was taken at the right moment); none of them, and
not the engine itself, runs as root; the only root processes are the
documented privileged part, `codemode __sandboxd` (one, the engine's
child), and its transient steps (a `__provider-exec` exec step before its
uid switch, a fork of the broker before it execs or becomes another uid;
isolate/README.md "Privilege separation").

The process holding the listening socket (the socket-facing one) is found
through /proc/net/unix; it runs with uid != 0 and empty CapEff, CapPrm and
CapBnd (issue 17 deliverable 1)."""
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import unittest

from tests.integration.engine import BIN, ROOT, Engine, chain_result, status_fields

STUB = os.path.join(ROOT, "tests", "integration", "env_mcp_server.py")
NAP = "2.7"  # seconds the CLI command sleeps; its argv marks it in /proc


def read_proc(pid):
    """(ppid, status, argv, cgroup text) of pid, None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
        with open("/proc/%d/cgroup" % pid) as f:
            cg = f.read()
        return ppid, status_fields(pid), argv, cg
    except (OSError, KeyError, ValueError):
        return None


def engine_processes(engine_pid):
    """{pid: (ppid, status, argv, cgroup)} of the engine, its descendants
    and whatever sits in its instance or provider cgroups."""
    procs = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            info = read_proc(int(name))
            if info:
                procs[int(name)] = info
    inst, prov = "/codemode/e%d" % engine_pid, "/codemode/p%d" % engine_pid

    def in_cgroups(cg):
        for line in cg.splitlines():
            path = line.split(":", 2)[2]
            for mark in (inst, prov):
                if path.endswith(mark) or mark + "/" in path:
                    return True
        return False

    tree = {engine_pid} | {p for p, info in procs.items() if in_cgroups(info[3])}
    grew = True
    while grew:
        more = {p for p, info in procs.items() if info[0] in tree} - tree
        tree |= more
        grew = bool(more)
    return {p: procs[p] for p in tree if p in procs}


def is_root(status):
    return "0" in status["Uid"].split() or "0" in status["Gid"].split()


def socket_pids(path, candidates):
    """Pids among candidates holding an fd on the unix socket at path (the
    engine binds PATH.<pid>.tmp and renames it: /proc/net/unix shows the
    name it was bound as)."""
    inodes = set()
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            cols = line.split()
            if len(cols) >= 8 and (cols[7] == path or (cols[7].startswith(path + ".")
                                                       and cols[7].endswith(".tmp"))):
                inodes.add("socket:[%s]" % cols[6])
    out = set()
    for pid in candidates:
        try:
            fds = os.listdir("/proc/%d/fd" % pid)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink("/proc/%d/fd/%s" % (pid, fd)) in inodes:
                    out.add(pid)
                    break
            except OSError:
                pass
    return out


class PrivilegeModel(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="privmodel-", dir=os.path.join(ROOT, "build"))
        os.chmod(cls.dir, 0o755)
        manual = os.path.join(cls.dir, "m.json")
        with open(manual, "w") as f:
            json.dump({"utcp_version": "1.0.1", "manual_version": "1.0.0", "tools": [
                {"name": "nap", "description": "sleeps, so the host can look",
                 "inputs": {"type": "object", "properties": {}},
                 "tool_call_template": {"call_template_type": "cli", "commands": [
                     {"command": "sleep %s && echo slept" % NAP}]}}]}, f)
        os.chmod(manual, 0o644)
        cls.eng = Engine({"manual_call_templates": [
            {"name": "sh", "call_template_type": "file", "file_path": manual,
             "allowed_communication_protocols": ["cli"]},
            {"name": "stub", "call_template_type": "mcp", "config": {"mcpServers": {
                "s": {"command": "/usr/bin/python3", "args": [STUB],
                      "env": {"STUB_TOKEN": "declared"}}}}}]})
        try:
            cls.eng.start()
        except Exception:
            cls.eng.cleanup()
            shutil.rmtree(cls.dir, ignore_errors=True)
            raise
        cls.snapshots, cls.result = cls.sample_during_chain()
        cls.socket_holders = socket_pids(cls.eng.socket, cls.snapshots[0]) if cls.snapshots \
            else set()

    @classmethod
    def tearDownClass(cls):
        cls.eng.stop()
        cls.eng.cleanup()
        shutil.rmtree(cls.dir, ignore_errors=True)

    @classmethod
    def sample_during_chain(cls):
        """Runs the chain on a thread; once its CLI command is seen, five
        snapshots 150 ms apart.  Returns (snapshots, chain result)."""
        box = {}

        def run():
            try:
                box["result"] = chain_result(cls.eng.socket, "a = await stub.s_env(mode='ok')\n"
                                                             "b = await sh.nap()\n"
                                                             "return [a, b]")
            except Exception as e:  # reported by the tests, not lost on the thread
                box["error"] = e

        t = threading.Thread(target=run)
        t.start()
        snaps = []
        deadline = time.time() + 30
        while time.time() < deadline and t.is_alive() and len(snaps) < 5:
            snap = engine_processes(cls.eng.proc.pid)
            if snaps or any(info[2] == ["sleep", NAP] for info in snap.values()):
                snaps.append(snap)
                time.sleep(0.15)
            else:
                time.sleep(0.02)
        t.join(60)
        if "error" in box:
            raise box["error"]
        return snaps, box.get("result")

    def kinds(self, snap):
        """The snapshot's processes by what they are."""
        eng = self.eng.proc.pid
        out = {"sandbox": set(), "mcp": set(), "cli": set()}
        for pid, (_, _, argv, cg) in snap.items():
            if STUB in argv:
                out["mcp"].add(pid)
            elif argv == ["sleep", NAP]:
                out["cli"].add(pid)
            elif any("/codemode/e%d/" % eng in ln and not ln.endswith("/providers")
                     for ln in cg.splitlines()):
                out["sandbox"].add(pid)  # v1's <instance>/providers holds providers
        return out

    def broker(self, snap):
        """The privileged part: the engine's child running `__sandboxd`."""
        eng = self.eng.proc.pid
        return {p for p, (ppid, _, argv, _) in snap.items()
                if ppid == eng and len(argv) > 1 and argv[1] == "__sandboxd"}

    def transient(self, pid, snap, brokers):
        """The privileged part's own steps that are root for a moment: the
        provider exec step before its uid switch, and a fork of the broker
        (a provider's clone before it execs the step, a map writer or uid
        clean-up before it changes uid)."""
        ppid, _, argv, _ = snap[pid]
        broker_argv = [snap[b][2] for b in brokers]
        return (len(argv) > 1 and argv[1] == "__provider-exec") or argv in broker_argv

    def test_chain_ran_and_was_seen(self):
        self.assertIsNotNone(self.result)
        self.assertEqual(self.result[1].strip() if isinstance(self.result[1], str)
                         else self.result[1], "slept")
        self.assertEqual(len(self.snapshots), 5, "the CLI command was never seen running")
        k = self.kinds(self.snapshots[0])
        for what in ("sandbox", "mcp", "cli"):
            self.assertTrue(k[what], "no %s process in the snapshot" % what)

    def test_no_root_but_the_privileged_part(self):
        for snap in self.snapshots:
            k = self.kinds(snap)
            for what in ("sandbox", "mcp", "cli"):
                for pid in k[what]:
                    self.assertFalse(is_root(snap[pid][1]), "%s pid %d runs as root: %s %s" % (
                        what, pid, snap[pid][2], snap[pid][1]["Uid"]))
            eng = self.eng.proc.pid
            self.assertFalse(is_root(snap[eng][1]), "the engine runs as root: %s" % snap[eng][1])
            brokers = self.broker(snap)
            self.assertEqual(len(brokers), 1, "not one privileged part: %s" % brokers)
            root = {p for p, info in snap.items() if is_root(info[1])}
            others = {p for p in root - brokers if not self.transient(p, snap, brokers)}
            self.assertEqual(others, set(), {p: snap[p][2] for p in others})

    def test_socket_holder_found(self):
        self.assertTrue(self.socket_holders, "no process of the engine holds its socket")

    def test_socket_facing_process_is_unprivileged(self):
        self.assertTrue(self.socket_holders, "no process of the engine holds its socket")
        snap = self.snapshots[0]
        for pid in self.socket_holders:
            st = snap[pid][1]
            self.assertFalse(is_root(st), "socket-facing pid %d: Uid %s" % (pid, st["Uid"]))
            for cap in ("CapEff", "CapPrm", "CapBnd"):
                self.assertEqual(int(st[cap], 16), 0, "socket-facing pid %d %s" % (pid, cap))


class DoctorSaysWhoRunsAsWhat(unittest.TestCase):
    """`codemode doctor`'s engine and privileged lines, separated (the
    default) and with engine.user: root (one process, said so)."""

    def doctor(self, config):
        d = tempfile.mkdtemp(prefix="privmodel-doctor-")
        try:
            cfg = os.path.join(d, "c.yaml")
            with open(cfg, "w") as f:
                f.write(config)
            return subprocess.run([BIN, "doctor", "--config", cfg], capture_output=True,
                                  text=True, timeout=60).stdout
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def test_separated(self):
        out = self.doctor("engine:\n  user: '54321:54321'\n")
        self.assertRegex(out, r"engine\s+uid 54321 gid 54321 \(engine.user\): socket server, RPC,"
                              r".*no capabilities")
        self.assertRegex(out, r"privileged\s+uid 0: codemode __sandboxd .*IDS, ATTACH, PROVIDER, "
                              r"SIGNAL, UIDKILL")

    def test_default_service_user_is_the_ranges_last_uid(self):
        out = self.doctor("engine:\n  sandbox_uid: 310000\n  sandbox_gid: 310000\n"
                          "  sandbox_uid_range: 8\n")
        self.assertRegex(out, r"engine\s+uid 310007 gid 310007 \(the sandbox range's last uid\)")
        self.assertRegex(out, r"sandboxes\s+host uids 310000\.\.310006")

    def test_root_is_not_separated(self):
        out = self.doctor("engine:\n  user: root\n")
        self.assertRegex(out, r"engine\s+uid 0 \(engine.user: root: .*NOT separated\)")
        self.assertNotIn("privileged", out)


class RootfsTheServiceUserCannotReach(unittest.TestCase):
    """A rootfs below a directory the service user may not search (a
    checkout under a 0700 /root): by default the engine stays one root
    process and says so (in its log and in doctor); with engine.user set it
    refuses to start, naming the directory."""

    @classmethod
    def setUpClass(cls):
        cls.private = tempfile.mkdtemp(prefix="privmodel-rootfs-")  # 0700, root's
        cls.rootfs = os.path.join(cls.private, "rootfs")
        subprocess.run(["cp", "-a", os.path.join(ROOT, "build", "rootfs"), cls.rootfs], check=True)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.private, ignore_errors=True)

    def config(self, user=None):
        eng = {"rootfs": self.rootfs, "rootfs_full": self.rootfs, "pool_size": 0}
        if user:
            eng["user"] = user
        return {"engine": eng}

    def test_default_stays_one_root_process_and_says_so(self):
        eng = Engine(self.config()).start()
        try:
            self.assertEqual(chain_result(eng.socket, "return 1 + 1"), 2)
            log = eng.read_log()
            self.assertRegex(log, r"privilege separation: rootfs .*: directory %s is not searchable"
                                  r" by the service user .*stays one root process" % self.private)
            out = subprocess.run([BIN, "doctor", "--config", eng.config_path], capture_output=True,
                                 text=True, timeout=60).stdout
            self.assertRegex(out, r"engine\s+uid 0 \(rootfs .*not searchable.*NOT separated\)")
            self.assertNotIn("privileged", out)
        finally:
            eng.stop()

    def test_an_explicit_service_user_is_refused(self):
        eng = Engine(self.config("54321:54321"))
        with self.assertRaises(RuntimeError) as cm:
            eng.start()
        eng.stop()
        self.assertRegex(str(cm.exception), r"directory %s is not searchable by the service user "
                                            r"uid 54321" % self.private)


if __name__ == "__main__":
    unittest.main()
