"""Provider processes are sandboxed (issue 17, deliverable 2): a CLI command
and MCP stdio servers (the stdlib stub and the npm reference server-memory
run by node) started by a root engine run under their own unprivileged
uid, with empty capability sets and no_new_privs, in the engine's provider
cgroup (cgroup2 sibling p<pid>, on v1 also <instance>/providers), in a
mount namespace of their own where the host is read-only, /tmp is private
and the engine's config, policy file, audit log, variables file and socket
read as empty although their modes would let any uid read them; their
environment holds only the allow-listed names and what the manual declares.
Checked from the host (/proc/PID/status, cgroup, environ, ns/mnt) and from
inside (what the CLI command sees)."""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from tests.integration.engine import (BIN, ROOT, Engine, alive, chain_result, codemode_cgroup_roots,
                                      status_fields)
from tests.integration.test_provider_lifecycle import wait_gone

STUB = os.path.join(ROOT, "tests", "integration", "env_mcp_server.py")
MEMORY = os.path.join(ROOT, "build", "npm", "node_modules", "@modelcontextprotocol",
                      "server-memory", "dist", "index.js")
NODE = shutil.which("node") or "/usr/bin/node"
ALLOWED_ENV = {"PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "USER", "LOGNAME", "SHELL", "TZ",
               "TERM"}
SECRET = "do-not-leak-7f3a"


def environ(pid):
    with open("/proc/%d/environ" % pid, "rb") as f:
        return dict(e.decode().split("=", 1) for e in f.read().split(b"\0") if b"=" in e)


def probe_command(paths):
    """What a CLI command sees: its ids, caps, whether each path has content,
    and whether it can write to the host."""
    checks = "; ".join("if [ -s %s ]; then echo readable:%s; else echo hidden:%s; fi" % (p, p, p)
                       for p in paths)
    return ("echo uid=$(id -u); grep -E '^(Cap(Eff|Prm|Bnd)|NoNewPrivs)' /proc/self/status; "
            + checks + "; if touch /usr/codemode-jail-probe 2>/dev/null; then echo host-writable; "
            "else echo host-readonly; fi; echo tmp=$(ls -A /tmp | tr '\\n' ,); echo home=$(printenv HOME)")


class ProviderJail(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.exists(MEMORY):
            raise RuntimeError("%s missing: run `make npm-deps` (make test does)" % MEMORY)
        # a world-readable directory outside /tmp (a provider's /tmp is its
        # own): without the jail's covers any uid could read these files
        cls.pub = tempfile.mkdtemp(prefix="jail-", dir=os.path.join(ROOT, "build"))
        os.chmod(cls.pub, 0o755)
        cls.config = os.path.join(cls.pub, "config.json")
        cls.policy = os.path.join(cls.pub, "policy.yaml")
        cls.audit = os.path.join(cls.pub, "audit.jsonl")
        cls.envfile = os.path.join(cls.pub, "secrets.env")
        cls.manual = os.path.join(cls.pub, "m.json")
        shutil.copy(os.path.join(ROOT, "policies", "examples", "development.yaml"), cls.policy)
        with open(cls.envfile, "w") as f:
            f.write("JAIL_SECRET=%s\n" % SECRET)
        with open(cls.audit, "w"):
            pass
        paths = [cls.config, cls.policy, cls.audit, cls.envfile, cls.manual]
        with open(cls.manual, "w") as f:
            json.dump({"utcp_version": "1.0.1", "manual_version": "1.0.0", "tools": [
                {"name": "probe", "description": "what a provider sees",
                 "inputs": {"type": "object", "properties": {}},
                 "tool_call_template": {"call_template_type": "cli",
                                        "commands": [{"command": probe_command(paths)}]}},
                {"name": "linger", "description": "leaves a process in its own session",
                 "inputs": {"type": "object", "properties": {}},
                 "tool_call_template": {"call_template_type": "cli", "commands": [{"command": (
                     "setsid sleep 300 < /dev/null > /dev/null 2>&1 & p=$!; "
                     "while [ \"$(cut -d' ' -f6 /proc/$p/stat)\" != \"$p\" ]; do :; done; "
                     "echo $p")}]}}]}, f)
        with open(cls.config, "w") as f:
            json.dump({"load_variables_from": [{"variable_loader_type": "dotenv",
                                                "env_file_path": cls.envfile}],
                       "engine": {"policy": {"file": cls.policy, "audit_log": cls.audit,
                                             "default_profile": "default"}},
                       "manual_call_templates": [
                           {"name": "sh", "call_template_type": "file", "file_path": cls.manual,
                            "allowed_communication_protocols": ["cli"]},
                           {"name": "stub", "call_template_type": "mcp", "config": {"mcpServers": {
                               "s": {"command": "/usr/bin/python3", "args": [STUB],
                                     "env": {"STUB_TOKEN": "declared"}}}}},
                           {"name": "mem", "call_template_type": "mcp", "config": {"mcpServers": {
                               "m": {"command": NODE, "args": [MEMORY]}}}}]}, f)
        for p in paths:
            os.chmod(p, 0o644)
        cls.eng = Engine()
        cls.eng.config_path = cls.config
        try:
            cls.eng.start()
        except Exception:
            cls.eng.cleanup()
            shutil.rmtree(cls.pub, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        cls.eng.stop()
        cls.eng.cleanup()
        shutil.rmtree(cls.pub, ignore_errors=True)

    def chain(self, code):
        return chain_result(self.eng.socket, code)

    def servers(self):
        """Pids of the two MCP servers (the engine's children)."""
        out = {}
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % pid) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    cmd = f.read().split(b"\0")
            except OSError:
                continue
            if ppid == self.eng.proc.pid and len(cmd) > 1:
                if cmd[1].decode() == STUB:
                    out["stub"] = int(pid)
                elif cmd[1].decode() == MEMORY:
                    out["memory"] = int(pid)
        return out

    def assert_jailed(self, pid, what):
        st = status_fields(pid)
        uids = st["Uid"].split()
        self.assertNotIn("0", uids, "%s runs as root: %s" % (what, st["Uid"]))
        self.assertNotIn("0", st["Gid"].split(), what)
        for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            self.assertEqual(int(st[k], 16), 0, "%s %s=%s" % (what, k, st[k]))
        self.assertEqual(st["NoNewPrivs"], "1", what)
        self.assertNotEqual(os.readlink("/proc/%d/ns/mnt" % pid),
                            os.readlink("/proc/%d/ns/mnt" % self.eng.proc.pid),
                            "%s has its own mount namespace" % what)
        with open("/proc/%d/cgroup" % pid) as f:
            cg = f.read()
        self.assertIn("/codemode/p%d" % self.eng.proc.pid, cg, "%s in the provider cgroup" % what)
        with open("/proc/%d/cgroup" % self.eng.proc.pid) as f:
            engine_cg = f.read()
        # below the engine's own cgroup in each hierarchy (engines nest)
        for line in engine_cg.splitlines():
            _, ctrls, path = line.split(":", 2)
            if ctrls.startswith("name="):
                continue
            if ctrls and not set(ctrls.split(",")) & {"memory", "cpu", "pids", "cpuacct"}:
                continue  # v1 hierarchies the engine does not use
            mine = [ln for ln in cg.splitlines() if ln.split(":", 2)[1] == ctrls][0].split(":", 2)[2]
            # a delegated v2 engine moved itself into <own>/codemode/supervisor
            path = path[:-len("/codemode/supervisor")] if path.endswith("/codemode/supervisor") \
                else path
            self.assertTrue(mine.startswith(path.rstrip("/") + "/codemode/"),
                            "%s: %s not below the engine's %s" % (what, mine, path))
        return int(uids[0])

    def test_cli_command_is_jailed(self):
        out = self.chain("return await sh.probe()")
        lines = str(out).split()
        self.assertNotIn("uid=0", lines)
        uid = [ln for ln in lines if ln.startswith("uid=")][0]
        self.assertGreater(int(uid[4:]), 0)
        text = str(out)
        for k in ("CapEff", "CapPrm", "CapBnd"):
            self.assertRegex(text, k + r":\s+0000000000000000")
        self.assertRegex(text, r"NoNewPrivs:\s+1")
        for p in (self.config, self.policy, self.audit, self.envfile, self.manual):
            self.assertIn("hidden:" + p, lines, "a CLI command must not read " + p)
        self.assertIn("host-readonly", lines)
        tmp = [ln for ln in lines if ln.startswith("tmp=")][0][4:].strip(",")
        # its own /tmp: at most the path to the call's own directory
        self.assertLessEqual(set(filter(None, tmp.split(","))),
                             {"codemode-e%d" % self.eng.proc.pid}, tmp)
        self.assertIn("home=/tmp", lines)
        # the engine itself still reads them (they are only covered in the jail)
        with open(self.config) as f:
            self.assertIn("manual_call_templates", f.read())

    def test_mcp_servers_are_jailed(self):
        r = self.chain("a = await stub.s_env(mode='ok')\n"
                       "b = await mem.m_read_graph()\n"
                       "return [a, b]")
        stub = r[0] if isinstance(r[0], dict) else json.loads(r[0])
        self.assertEqual(stub["token"], "declared")
        pids = self.servers()
        self.assertEqual(set(pids), {"stub", "memory"}, pids)
        self.assertEqual(pids["stub"], int(stub["pid"]))
        uids = {self.assert_jailed(pid, name) for name, pid in pids.items()}
        self.assertEqual(len(uids), 2, "each server has a uid of its own")
        env = environ(pids["stub"])
        self.assertLessEqual(set(env) - {"STUB_TOKEN"}, ALLOWED_ENV, env)
        self.assertEqual(env["HOME"], "/tmp")
        self.assertNotIn(SECRET, json.dumps(env))

    def test_cli_leftovers_die_with_the_call(self):
        """A process a CLI command leaves running (own session, so the
        process-group kill misses it) is killed when the call ends: its uid
        is cleared before it is handed out again."""
        c = self.eng.client()
        try:
            r = c.chain("return await sh.linger()")
        finally:
            c.close()
        self.assertIsNone(r["error"], r)
        pid = int(str(r["result"]).strip())
        left = wait_gone([pid], 5)
        if left:
            os.kill(pid, 9)  # this test's own leftover
        self.assertEqual(left, [])

    def test_doctor_reports_the_jail(self):
        p = subprocess.run([BIN, "doctor", "--config", self.config], capture_output=True,
                           text=True, timeout=60)
        self.assertRegex(p.stdout, r"engine\s+uid [1-9]\d* gid \d+ \(")
        self.assertRegex(p.stdout, r"privileged\s+uid 0: codemode __sandboxd")
        self.assertRegex(p.stdout, r"providers\s+jailed: a uid of its own per process")
        self.assertRegex(p.stdout, r"provider check\s+ok")

    def test_provider_cgroup_is_the_engines(self):
        roots = [r for r in codemode_cgroup_roots()
                 if os.path.isdir(os.path.join(r, "p%d" % self.eng.proc.pid))]
        self.assertTrue(roots, "a cgroup2 provider group p<pid> exists")
        self.chain("return await stub.s_env(mode='ok')")
        pid = self.servers()["stub"]
        with open(os.path.join(roots[0], "p%d" % self.eng.proc.pid, "cgroup.procs")) as f:
            self.assertIn(str(pid), f.read().split())
        self.assertTrue(alive(pid))


if __name__ == "__main__":
    unittest.main()
