"""Rootless mode (issue 17, deliverable 4): `codemode serve`, `codemode mcp`
and `codemode doctor` run as an ordinary user (a real non-root uid via
setpriv, no capabilities, no supplementary groups).  Sandboxes map their
root to that one uid in unprivileged user namespaces; provider processes
(a CLI command and an MCP stdio server) run in a user namespace of their
own with their own mount view; the socket defaults to $XDG_RUNTIME_DIR;
where this user has no cgroup the limits fall back to rlimits and the
timeout, and doctor says so.  Checked from the host: no process of the
engine, its sandboxes or its providers runs as root or holds a capability."""
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from tests.integration.engine import BIN, ROOT, Client, alive, chain_result, status_fields

UID = 61020
STUB = os.path.join(ROOT, "tests", "integration", "env_mcp_server.py")
TOOLS = {"utcp_version": "1.0.1", "manual_version": "1.0.0", "tools": [
    {"name": "who", "description": "ids, caps and what the command can read",
     "inputs": {"type": "object", "properties": {}},
     "tool_call_template": {"call_template_type": "cli", "commands": [{"command": (
         "echo uid=$(id -u); grep -E '^Cap(Eff|Bnd)' /proc/self/status; "
         "if [ -s CONFIG ]; then echo config-readable; else echo config-hidden; fi")}]}}]}


def descendants(pid):
    """pid and every process below it (the engine, its sandboxes, providers)."""
    kids = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open("/proc/%s/stat" % p) as f:
                    kids.setdefault(int(f.read().rsplit(")", 1)[1].split()[1]), []).append(int(p))
            except OSError:
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


class Rootless(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = tempfile.mkdtemp(prefix="codemode-rootless-")
        os.chmod(cls.d, 0o755)
        cls.run_dir = os.path.join(cls.d, "run")
        cls.home = os.path.join(cls.d, "home")
        for p in (cls.run_dir, cls.home):
            os.mkdir(p, 0o700)
            os.chown(p, UID, UID)
        cls.config = os.path.join(cls.d, "config.json")
        tools = json.loads(json.dumps(TOOLS).replace("CONFIG", cls.config))
        with open(cls.config, "w") as f:
            json.dump({"manual_call_templates": [
                {"name": "sh", "call_template_type": "text",
                 "allowed_communication_protocols": ["cli"], "content": json.dumps(tools)},
                {"name": "stub", "call_template_type": "mcp", "config": {"mcpServers": {
                    "s": {"command": "/usr/bin/python3", "args": [STUB]}}}}]}, f)
        os.chmod(cls.config, 0o644)
        cls.env = {"PATH": "/usr/bin:/bin", "HOME": cls.home, "XDG_RUNTIME_DIR": cls.run_dir,
                   "LANG": "C.UTF-8"}
        cls.socket = os.path.join(cls.run_dir, "codemode.sock")
        cls.log = open(os.path.join(cls.d, "engine.log"), "w")
        cls.proc = subprocess.Popen(cls.as_user([BIN, "serve", "--config", cls.config]),
                                    stdout=cls.log, stderr=cls.log, env=cls.env)
        deadline = time.time() + 20
        while not os.path.exists(cls.socket) and time.time() < deadline:
            if cls.proc.poll() is not None:
                break
            time.sleep(0.05)
        if not os.path.exists(cls.socket):
            log = cls.read_log()
            cls.tearDownClass()
            raise RuntimeError("rootless engine did not start: " + log)

    @classmethod
    def tearDownClass(cls):
        if cls.proc.poll() is None:
            cls.proc.terminate()
            try:
                cls.proc.wait(30)
            except subprocess.TimeoutExpired:
                cls.proc.kill()
                cls.proc.wait()
        cls.log.close()
        shutil.rmtree(cls.d, ignore_errors=True)

    @staticmethod
    def as_user(cmd):
        return ["setpriv", "--reuid", str(UID), "--regid", str(UID), "--clear-groups",
                "--inh-caps=-all", "--bounding-set=-all"] + cmd

    @classmethod
    def read_log(cls):
        with open(os.path.join(cls.d, "engine.log")) as f:
            return f.read()

    def chain(self, code):
        return chain_result(self.socket, code)

    def test_serves_chains_from_the_runtime_dir_socket(self):
        c = Client(self.socket)
        try:
            h = c.request("codemode/health")["result"]
        finally:
            c.close()
        self.assertTrue(h["ready"], h)
        self.assertEqual(self.chain("return sum(range(10))"), 45)
        self.assertEqual(status_fields(self.proc.pid)["Uid"].split()[0], str(UID))

    def test_cli_and_mcp_providers_and_no_root_anywhere(self):
        out = str(self.chain("return await sh.who()")).split()
        self.assertIn("uid=%d" % UID, out)
        self.assertIn("config-hidden", out, "the provider's mount view covers the config")
        stub = self.chain("return await stub.s_env(mode='ok')")
        stub_pid = int((stub if isinstance(stub, dict) else json.loads(stub))["pid"])
        st = status_fields(stub_pid)
        self.assertEqual(st["Uid"].split()[0], str(UID))
        for k in ("CapPrm", "CapEff", "CapBnd"):
            self.assertEqual(int(st[k], 16), 0, "%s %s" % (k, st[k]))
        self.assertEqual(st["NoNewPrivs"], "1")
        self.assertNotEqual(os.readlink("/proc/%d/ns/mnt" % stub_pid),
                            os.readlink("/proc/%d/ns/mnt" % self.proc.pid))
        # while a chain runs: every process of the engine, its sandboxes and
        # its providers runs as this user, none with an effective capability
        c = Client(self.socket)
        try:
            c.send_raw(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
                "name": "call_tool_chain",
                "arguments": {"code": "import time\ntime.sleep(1.5)\nreturn 1"}}}).encode() + b"\n")
            time.sleep(0.7)
            procs = [p for p in descendants(self.proc.pid) if alive(p)]
            self.assertIn(stub_pid, procs)
            self.assertGreater(len(procs), 3, procs)  # engine, sandboxes, the MCP server
            for p in procs:
                try:
                    st = status_fields(p)
                except OSError:
                    continue  # ended meanwhile
                host_uids = set(st["Uid"].split())
                self.assertEqual(host_uids, {str(UID)}, "pid %d: %s" % (p, st["Uid"]))
                self.assertEqual(int(st["CapEff"], 16), 0, "pid %d CapEff %s" % (p, st["CapEff"]))
            while True:
                m = c.read_message()
                if m.get("id") == 1:
                    break
            self.assertIsNone(m["result"]["structuredContent"]["error"])
        finally:
            c.close()

    def test_doctor_says_what_is_active_and_who_runs_as_what(self):
        p = subprocess.run(self.as_user([BIN, "doctor", "--config", self.config]),
                           capture_output=True, text=True, env=self.env, timeout=60)
        self.assertIn("rootless", p.stdout)
        self.assertRegex(p.stdout, r"namespaces\s+active")
        self.assertRegex(p.stdout, r"live check\s+ok")
        self.assertRegex(p.stdout, r"engine\s+uid %d" % UID)
        self.assertRegex(p.stdout, r"providers\s+.*user namespace")
        self.assertRegex(p.stdout, r"provider check\s+ok")
        # cgroup is not this user's on this host: doctor names the fallback
        if "cgroup        unavailable" in p.stdout:
            self.assertIn("rlimits", p.stdout.split("fallback", 1)[-1])
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_mcp_command_for_a_desktop_host(self):
        """What an MCP host (Claude Desktop) runs: `codemode mcp --config`."""
        reqs = [{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                    "protocolVersion": "2025-06-18", "capabilities": {},
                    "clientInfo": {"name": "test", "version": "1"}}},
                {"jsonrpc": "2.0", "method": "notifications/initialized"},
                {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
                    "name": "call_tool_chain", "arguments": {"code": "return 6 * 7"}}}]
        env = dict(self.env, XDG_RUNTIME_DIR=self.run_dir)
        p = subprocess.Popen(self.as_user([BIN, "mcp", "--config", self.config]),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, env=env)
        try:
            answers = {}
            p.stdin.write(b"".join(json.dumps(r).encode() + b"\n" for r in reqs[:2]))
            p.stdin.flush()
            while 1 not in answers:
                m = json.loads(p.stdout.readline())
                answers[m.get("id")] = m
            p.stdin.write(json.dumps(reqs[2]).encode() + b"\n")
            p.stdin.flush()
            while 2 not in answers:
                m = json.loads(p.stdout.readline())
                answers[m.get("id")] = m
        finally:
            p.stdin.close()
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            p.stdout.close()
        self.assertIn("serverInfo", answers[1]["result"])
        self.assertEqual(answers[2]["result"]["structuredContent"]["result"], 42)



class FirstUse(unittest.TestCase):
    """An installed binary with no rootfs beside it: the rootless engine
    builds the user's own into $HOME/.local/share/codemode/rootfs on first
    start, and serves from it."""

    def test_builds_the_users_rootfs_on_first_start(self):
        d = tempfile.mkdtemp(prefix="codemode-firstuse-")
        proc = None
        try:
            os.chmod(d, 0o755)
            bindir = os.path.join(d, "bin")
            os.mkdir(bindir)
            shutil.copy2(BIN, os.path.join(bindir, "codemode"))
            shutil.copytree(os.path.join(ROOT, "build", "share"), os.path.join(bindir, "share"))
            home, run = os.path.join(d, "home"), os.path.join(d, "run")
            for p in (home, run):
                os.mkdir(p, 0o700)
                os.chown(p, UID, UID)
            env = {"PATH": "/usr/bin:/bin", "HOME": home, "XDG_RUNTIME_DIR": run}
            log = os.path.join(d, "log")
            with open(log, "w") as lf:
                proc = subprocess.Popen(Rootless.as_user([os.path.join(bindir, "codemode"), "serve"]),
                                        stdout=lf, stderr=lf, env=env)
            sock = os.path.join(run, "codemode.sock")
            deadline = time.time() + 60
            while not os.path.exists(sock) and time.time() < deadline and proc.poll() is None:
                time.sleep(0.1)
            with open(log) as f:
                text = f.read()
            self.assertTrue(os.path.exists(sock), text)
            rootfs = os.path.join(home, ".local", "share", "codemode", "rootfs")
            self.assertIn("building the sandbox rootfs into %s" % rootfs, text)
            self.assertTrue(os.path.exists(os.path.join(rootfs, "MANIFEST")))
            self.assertEqual(os.stat(rootfs).st_uid, UID)
            c = Client(sock)
            try:
                self.assertEqual(c.chain("return 'built'")["result"], "built")
            finally:
                c.close()
        finally:
            if proc and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
