"""`codemode doctor`, required layers, and per-request resource limits
(a request may lower the configured limits, never raise them)."""
import os
import subprocess
import unittest

from tests.integration.engine import BIN, Engine, EngineTest
from tests.security import harness


def doctor(config_text=None, disable=None):
    eng = Engine(config_text) if config_text else None
    cmd = [BIN, "doctor"] + (["--config", eng.config_path] if eng else [])
    env = dict(os.environ, CODEMODE_TEST_DISABLE_LAYER=disable or "")
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    finally:
        if eng:
            eng.cleanup()
    return p.returncode, p.stdout + p.stderr


class DoctorTest(unittest.TestCase):
    def test_every_layer_active_here(self):
        rc, out = doctor()
        self.assertEqual(rc, 0, out)
        for layer in ("namespaces", "cgroup", "seccomp", "caps", "rlimits", "userns_limit", "bpf",
                      "init"):
            self.assertRegex(out, r"(?m)^%s\s+active\s" % layer)
        # the development host is v1; the test VM (make test-vm) is v2
        v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
        self.assertIn("cgroup mode: v2\n" if v2 else "cgroup mode: v1 (fallback)", out)
        self.assertRegex(out, r"live check\s+ok\s+.*capabilities all empty, seccomp filter on, "
                              r"no_new_privs on")
        self.assertIn("all required layers active", out)

    def test_missing_required_layer_fails(self):
        rc, out = doctor("engine:\n  test_mode: true\n  require_layers: [seccomp, bpf]\n",
                         disable="bpf")
        self.assertEqual(rc, 1, out)
        self.assertRegex(out, r"(?m)^bpf\s+disabled\s")
        self.assertIn("required layers missing: bpf", out)

    def test_unrequired_missing_layer_passes(self):
        rc, out = doctor("engine:\n  test_mode: true\n  require_layers: [seccomp]\n",
                         disable="bpf")
        self.assertEqual(rc, 0, out)

    def test_unknown_layer_name(self):
        rc, out = doctor("engine:\n  require_layers: [seccom]\n")
        self.assertEqual(rc, 1, out)
        self.assertIn("unknown layer 'seccom'", out)

    def test_serve_refuses_when_required_layer_missing(self):
        eng = Engine("engine:\n  test_mode: true\n  require_layers: [caps]\n")
        os.environ["CODEMODE_TEST_DISABLE_LAYER"] = "caps"
        try:
            with self.assertRaises(RuntimeError) as cm:
                eng.start()
        finally:
            del os.environ["CODEMODE_TEST_DISABLE_LAYER"]
            eng.log.close()
            eng.cleanup()
        self.assertIn("required isolation layers not active: caps", str(cm.exception))

    def test_bad_config_values(self):
        for text, msg in (("engine:\n  imports: some\n", "engine.imports"),
                          ("engine:\n  memory_mb: 1\n", "engine.memory_mb"),
                          ("engine:\n  test_mode: 1\n", "engine.test_mode")):
            rc, out = doctor(text)
            self.assertEqual(rc, 2, out)
            self.assertIn(msg, out)


class RequestLimitsTest(EngineTest):
    CONFIG = "engine:\n  imports: all\n  memory_mb: 96\n  cpu_quota_pct: 100\n"
    ALLOC = "x = b'x' * (%d << 20)\nreturn len(x) >> 20"

    def test_memory_within_config(self):
        r = self.client.chain(self.ALLOC % 48)
        self.assertEqual(r["result"], 48, r)

    def test_request_lowers_memory(self):
        r = self.client.call_tool("call_tool_chain", {"code": self.ALLOC % 48, "memory_mb": 32})
        sc = r["structuredContent"]
        self.assertEqual(sc["error"]["kind"], "memory_limit", sc)
        self.assertIn("32 MiB", sc["error"]["message"])

    def test_request_cannot_raise_memory(self):
        r = self.client.call_tool("call_tool_chain", {"code": self.ALLOC % 128, "memory_mb": 4096})
        sc = r["structuredContent"]
        self.assertEqual(sc["error"]["kind"], "memory_limit", sc)
        self.assertIn("96 MiB", sc["error"]["message"])

    def test_bad_limit_is_invalid_request(self):
        r = self.client.call_tool("call_tool_chain", {"code": "return 1", "pids_max": "many"})
        self.assertEqual(r["structuredContent"]["error"]["kind"], "invalid_request")

    def test_cpu_spin_throttled_then_killed(self):
        r = self.client.call_tool("call_tool_chain", {"code": "while True:\n    pass",
                                                      "timeout": 2, "cpu_quota_pct": 20})
        sc = r["structuredContent"]
        self.assertEqual(sc["error"]["kind"], "timeout", sc)
        self.assertGreater(sc["stats"]["cpu_throttled_periods"], 0, sc)
        # the quota is a ceiling: 20% of the wall time plus one 100 ms period of slack
        self.assertLess(sc["stats"]["cpu_ms"], 0.2 * sc["stats"]["wall_ms"] + 150, sc)

    def test_pid_one_is_the_init(self):
        # pid 1: the minimal init; pid 2: the chain process, the sandbox's
        # runner (it holds the engine socket: the engine checks its frames)
        r = self.client.chain("import os\nreturn [os.getpid(), os.getppid()]")
        self.assertEqual(r["result"], [2, 1], r)


if __name__ == "__main__":
    unittest.main()
