"""Provider processes do not outlive their engine (issue 17, deliverable 2):
CLI commands (and what they leave running) and MCP stdio servers run in the
engine's provider cgroup, below its instance, and their temp directories in
the engine's own temp dir.  After `kill -9` of the engine, the next engine's
start-up kills them and removes both; a normal stop removes them at once."""
import glob
import json
import os
import sys
import time
import unittest

from tests.integration.engine import ROOT, Engine, codemode_cgroup_roots, alive

STUB = os.path.join(ROOT, "tests", "integration", "env_mcp_server.py")
MANUAL = {"utcp_version": "1.0.1", "manual_version": "1.0.0", "tools": [
    {"name": "linger", "description": "Leaves a process behind (its own session).",
     "inputs": {"type": "object", "properties": {}},
     "tool_call_template": {"call_template_type": "cli", "commands": [
         # waits until the sleep has its own session: the provider kills the
         # command's process group when it ends, which would catch a sleep
         # that has not yet left it (and leave a zombie, listed in no cgroup)
         {"command": "setsid sleep 300 < /dev/null > /dev/null 2>&1 & p=$!; "
                     "while [ \"$(cut -d' ' -f6 /proc/$p/stat)\" != \"$p\" ]; do :; done; "
                     "echo $p"}]}}]}


def config():
    return json.dumps({"manual_call_templates": [
        {"name": "sh", "call_template_type": "file", "file_path": "m.json",
         "allowed_communication_protocols": ["cli"]},
        {"name": "stub", "call_template_type": "mcp", "config": {"mcpServers": {
            "s": {"command": sys.executable, "args": [STUB]}}}}]})


def cgroup_of(pid):
    with open("/proc/%d/cgroup" % pid) as f:
        return f.read()


def start(files):
    eng = Engine(config(), config_name="config.json", files=files)
    eng.start()
    return eng


def provider_pids(eng):
    c = eng.client()
    try:
        r = c.chain("a = await sh.linger()\nb = await stub.s_env(mode='ok')\nreturn [a, b]")
    finally:
        c.close()
    assert r["error"] is None, r
    linger = int(str(r["result"][0]).strip())
    b = r["result"][1]
    stub = int((b if isinstance(b, dict) else json.loads(b))["pid"])
    return linger, stub


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
            pids = list(provider_pids(a))
            inst = "codemode/e%d/" % a.proc.pid
            for p in pids:
                self.assertIn(inst, cgroup_of(p), "provider %d in the engine's cgroup" % p)
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
                              for d in glob.glob(os.path.join(r, "e%d" % a.proc.pid))], [])
            # a normal stop removes its own at once
            pids = list(provider_pids(b))
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
