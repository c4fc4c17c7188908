"""`codemode run` and `codemode serve` as commands: exit codes and output."""
import json
import os
import subprocess

from tests.integration.engine import BIN, EngineTest


class RunCommand(EngineTest):

    def run_cli(self, code, *extra):
        return subprocess.run([BIN, "run", "--socket", self.engine.socket, *extra, "-"],
                              input=code.encode(), capture_output=True, timeout=60)

    def test_success_exit_0(self):
        p = self.run_cli("return 1 + 1")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout)["result"], 2)

    def test_failure_exit_1(self):
        p = self.run_cli("raise RuntimeError('x')")
        self.assertEqual(p.returncode, 1)
        self.assertEqual(json.loads(p.stdout)["error"]["kind"], "exception")

    def test_timeout_flag(self):
        p = self.run_cli("while True: pass", "--timeout", "1")
        self.assertEqual(p.returncode, 1)
        self.assertEqual(json.loads(p.stdout)["error"]["kind"], "timeout")

    def test_file_argument(self):
        path = os.path.join(self.engine.dir, "chain.py")
        with open(path, "w") as f:
            f.write("return 'from file'")
        p = subprocess.run([BIN, "run", "--socket", self.engine.socket, path],
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout)["result"], "from file")

    def test_connection_error_exit_2(self):
        p = subprocess.run([BIN, "run", "--socket", "/nonexistent/x.sock", "-"], input=b"return 1",
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"cannot connect", p.stderr)

    def test_usage_error_exit_2(self):
        p = subprocess.run([BIN, "run"], capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"usage", p.stderr)
        p = subprocess.run([BIN, "frobnicate"], capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 2)

    def test_missing_file_exit_2(self):
        p = subprocess.run([BIN, "run", "--socket", self.engine.socket, "/nonexistent.py"],
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 2)


class ServeCommand(EngineTest):

    def test_refuses_second_engine_on_same_socket(self):
        p = subprocess.run([BIN, "serve", "--socket", self.engine.socket], capture_output=True,
                           timeout=30)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(b"already serving", p.stderr)
        self.assertEqual(self.client.request("ping")["result"], {})

    def test_bad_config_is_reported(self):
        path = os.path.join(self.engine.dir, "bad.yaml")
        with open(path, "w") as f:
            f.write("manual_call_templates: []\nnot_a_key: 1\n")
        p = subprocess.run([BIN, "serve", "--socket", os.path.join(self.engine.dir, "b.sock"),
                            "--config", path], capture_output=True, timeout=30)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(b"not_a_key", p.stderr)

    def test_socket_mode(self):
        mode = os.stat(self.engine.socket).st_mode & 0o777
        self.assertEqual(mode, 0o660)
