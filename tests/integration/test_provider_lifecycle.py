"""Provider processes do not outlive their engine (issue 17, deliverable 2):
CLI commands (and what they leave running) and MCP stdio servers run in the
engine's provider cgroup (v1: below its instance; cgroup2: the sibling
p<pid>), and their temp directories in the engine's own temp dir.  After
`kill -9` of the engine, the next engine's start-up kills them and removes
both; a normal stop removes them at once.  (What a finished CLI call leaves
running dies with the call: test_provider_jail.py.)"""
import glob
import json
import os
import threading
import time
import unittest

from tests.integration.engine import ROOT, Engine, codemode_cgroup_roots, alive

STUB = os.path.join(ROOT, "tests", "integration", "env_mcp_server.py")
MANUAL = {"utcp_version": "1.0.1", "manual_version": "1.0.0", "tools": [
    {"name": "busy", "description": "Runs until the engine is gone.",
     "inputs": {"type": "object", "properties": {}},
     "tool_call_template": {"call_template_type": "cli", "timeout": 600,
                            "commands": [{"command": "sleep 300; echo done"}]}}]}


def config():
    # a short drain: the stop below ends the running CLI call
    return json.dumps({"engine": {"drain_timeout_s": 2}, "manual_call_templates": [
        {"name": "sh", "call_template_type": "file", "file_path": "m.json",
         "allowed_communication_protocols": ["cli"]},
        {"name": "stub", "call_template_type": "mcp", "config": {"mcpServers": {
            "s": {"command": "/usr/bin/python3", "args": [STUB]}}}}]})


def cgroup_of(pid):
    with open("/proc/%d/cgroup" % pid) as f:
        return f.read()


def start(files):
    eng = Engine(config(), config_name="config.json", files=files)
    eng.start()
    return eng


def provider_group_pids(eng):
    """Every pid in the engine's cgroup2 provider group p<pid>."""
    out = []
    for f in glob.glob(os.path.join("/sys/fs/cgroup", "**", "codemode", "p%d" % eng.proc.pid,
                                    "cgroup.procs"), recursive=True):
        with open(f) as fh:
            out += [int(x) for x in fh.read().split()]
    return out


def provider_pids(eng):
    """The MCP server's pid and those of a CLI call still running (started
    on a thread whose chain the engine's death ends)."""
    c = eng.client()
    try:
        r = c.chain("return await stub.s_env(mode='ok')")
    finally:
        c.close()
    assert r["error"] is None, r
    b = r["result"]
    stub = int((b if isinstance(b, dict) else json.loads(b))["pid"])

    def busy():
        bc = eng.client(timeout=600)
        try:
            bc.chain("return await sh.busy()", timeout=300)
        except (OSError, ConnectionError):
            pass  # the engine was killed under it
        finally:
            bc.close()
    threading.Thread(target=busy, daemon=True).start()
    deadline = time.time() + 10
    while time.time() < deadline:
        cli = [p for p in provider_group_pids(eng) if p != stub]
        if cli:
            return [stub] + cli
        time.sleep(0.05)
    raise AssertionError("the CLI call did not start")


def wait_gone(pids, seconds=10):
    deadline = time.time() + seconds
    while any(alive(p) for p in pids) and time.time() < deadline:
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


class ProviderLifecycle(unittest.TestCase):
    def test_kill_9_then_restart_leaves_nothing(self):
        files = {"m.json": json.dumps(MANUAL)}
        a = start(files)
        b = None
        pids = []
        try:
            pids = provider_pids(a)
            self.assertGreaterEqual(len(pids), 2)
            for p in pids:
                cg = cgroup_of(p)
                self.assertIn("codemode/p%d\n" % a.proc.pid, cg, "provider %d in the engine's cgroup" % p)
                if "memory:" in cg:  # cgroup v1: also below the instance
                    self.assertIn("codemode/e%d/providers" % a.proc.pid, cg)
            workdir = os.path.join(os.environ.get("TMPDIR", "/tmp"), "codemode-e%d" % a.proc.pid)
            self.assertTrue(os.path.isdir(workdir))
            a.proc.kill()
            a.proc.wait()
            # (on cgroup v1 nothing kills them at this moment: any engine that
            # starts next on this host reaps the dead engine's cgroups)
            # the next engine (here: the same config in a new directory) reaps them
            b = Engine(config(), config_name="config.json", files=files)
            b.start()
            self.assertEqual(wait_gone(pids), [], "the next engine's start kills them")
            self.assertFalse(os.path.exists(workdir), "and removes the temp dir")
            self.assertEqual([d for r in codemode_cgroup_roots()
                              for d in glob.glob(os.path.join(r, "[ep]%d" % a.proc.pid))], [])
            # a normal stop removes its own at once
            pids = provider_pids(b)
            bdir = os.path.join(os.environ.get("TMPDIR", "/tmp"), "codemode-e%d" % b.proc.pid)
            self.assertEqual(b.stop(), 0)
            self.assertEqual(wait_gone(pids), [])
            self.assertFalse(os.path.exists(bdir))
        finally:
            for p in pids:
                if alive(p):
                    os.kill(p, 9)  # only processes this test's engines started
            a.stop()
            a.cleanup()
            if b:
                b.stop()
                b.cleanup()


if __name__ == "__main__":
    unittest.main()
