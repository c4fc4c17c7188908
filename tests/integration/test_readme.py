"""Docs that match (issue 19): every command in the README's ```sh blocks
runs on the shipped config (examples/codemode.yaml) with the exit status
the README gives and prints something; `policy bench` reports allowed and
denied decisions apart; the command-line errors say what to do (no engine,
a socket directory that does not exist, a misspelled config key)."""
import os
import re
import subprocess
import tempfile
import time
import unittest

from tests.integration.engine import BIN, ROOT

README = os.path.join(ROOT, "README.md")
SOCKET_IN_README = "/tmp/codemode.sock"
MCP_INPUT = (b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":'
             b'"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}\n'
             b'{"jsonrpc":"2.0","id":2,"method":"tools/list"}\n')
# the harness itself, a service, a pager; containers and clusters: tests/deploy
# runs the image and the manifests (with the flags deploy/README.md documents,
# which test_image.py also finds in this README's podman line)
NOT_RUN = ("make ", "systemctl ", "man ", "podman ", "kubectl ")


def readme_commands():
    """(command, comment) for each command line of the README's sh blocks."""
    with open(README) as f:
        text = f.read()
    out = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            m = re.match(r"(.*?)\s+#\s(.*)$", line)
            cmd, comment = (m.group(1), m.group(2)) if m else (line, "")
            out.append((cmd.strip(), comment))
    return out


class ReadmeCommands(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="codemode-readme-")
        cls.socket = os.path.join(cls.dir, "codemode.sock")
        cls.commands = readme_commands()
        serve = [c for c, _ in cls.commands if c.startswith("build/codemode serve ")]
        if len(serve) != 1:
            raise AssertionError("README: expected one `build/codemode serve` line: %r" % serve)
        # the README's own serve line, on a temporary socket
        cls.log = open(os.path.join(cls.dir, "engine.log"), "w")
        argv = serve[0].replace(SOCKET_IN_README, cls.socket).split()
        argv[0] = BIN
        cls.proc = subprocess.Popen(argv, cwd=ROOT, stdout=cls.log, stderr=cls.log)
        deadline = time.time() + 30
        while not os.path.exists(cls.socket):
            if cls.proc.poll() is not None or time.time() > deadline:
                cls.tearDownClass()
                raise AssertionError("README's serve line did not start an engine")
            time.sleep(0.05)

    @classmethod
    def tearDownClass(cls):
        if cls.proc.poll() is None:
            cls.proc.terminate()
            cls.proc.wait(30)
        cls.log.close()
        subprocess.run(["rm", "-rf", cls.dir])

    def run_line(self, cmd):
        shell = cmd.replace(SOCKET_IN_README, self.socket)
        shell = re.sub(r"(^|\| )(build/)?codemode ", lambda m: m.group(1) + BIN + " ", shell)
        stdin = MCP_INPUT if " mcp " in " %s " % shell else b""
        env = dict(os.environ, CODEMODE_SOCKET=self.socket)
        return subprocess.run(["/bin/sh", "-c", shell], cwd=ROOT, input=stdin, env=env,
                              capture_output=True, timeout=120)

    def test_every_command_works(self):
        ran = 0
        for cmd, comment in self.commands:
            if cmd.startswith(NOT_RUN) or cmd.startswith("build/codemode serve "):
                continue
            if not re.match(r"(build/)?codemode |echo |printf ", cmd):
                self.fail("README command of a form this test does not run: %r" % cmd)
            with self.subTest(cmd=cmd):
                p = self.run_line(cmd)
                want = 1 if "exit 1" in comment else 0
                self.assertEqual(p.returncode, want, "%s\nstdout: %s\nstderr: %s" % (
                    cmd, p.stdout[-2000:], p.stderr[-2000:]))
                self.assertTrue(p.stdout.strip() or p.stderr.strip(), "%s printed nothing" % cmd)
                if want == 1:
                    self.assertIn(b"no matches", p.stderr)
                if " mcp " in cmd + " ":
                    self.assertIn(b'"tools"', p.stdout)
            ran += 1
        self.assertGreaterEqual(ran, 14, "fewer README commands than expected")

    def test_search_results_and_interface(self):
        p = self.run_line("build/codemode tools --socket %s interface demo.word_count"
                          % SOCKET_IN_README)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"async def word_count", p.stdout)
        p = self.run_line('build/codemode tools --socket %s search "count words"'
                          % SOCKET_IN_README)
        self.assertIn(b"demo.word_count", p.stdout)


class ReadmeStatements(unittest.TestCase):
    def test_make_test_says_what_it_installs_and_how_long(self):
        with open(README) as f:
            text = f.read()
        self.assertTrue(re.search(r"make test .*\(\d+ min( \d+ s)? on 2 cores\)", text),
                        "README: `make test` line without its measured duration")
        self.assertIn("scripts/install-deps.sh", text)
        self.assertIn("build/npm/", text)
        self.assertNotIn("../shared/", text)
        self.assertIn("| `invalid_arguments` |", text)

    def test_policy_bench_reports_allow_and_deny_apart(self):
        p = subprocess.run([BIN, "policy", "bench", "--policy",
                            os.path.join(ROOT, "policies", "examples", "production.yaml"),
                            "--tool", "demo.word_count", "--args", '{"text": "a"}', "-n", "20000"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, r"allow +5 decisions +\d+ ns each +rule 'demo-read': allowed")
        self.assertRegex(p.stdout, r"deny +19995 decisions +\d+ ns each +rule 'demo-read': rate:")


class CliErrors(unittest.TestCase):
    def test_no_engine_asks_whether_serve_runs(self):
        p = subprocess.run([BIN, "run", "--socket", "/tmp/codemode-none.sock", "-"],
                           input="return 1", capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 2)
        self.assertIn("cannot connect to engine at /tmp/codemode-none.sock", p.stderr)
        self.assertIn("is `codemode serve` running?", p.stderr)

    def test_serve_checks_the_socket_directory_first(self):
        t0 = time.monotonic()
        p = subprocess.run([BIN, "serve", "--socket", "/nonexistent-dir/x.sock", "--config",
                            os.path.join(ROOT, "examples", "codemode.yaml")],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 1)
        self.assertIn("socket directory /nonexistent-dir of /nonexistent-dir/x.sock does not "
                      "exist", p.stderr)
        self.assertLess(time.monotonic() - t0, 1.0)  # before sandboxes, manuals, rootfs checks

    def test_misspelled_config_key_names_the_nearest(self):
        d = tempfile.mkdtemp(prefix="codemode-cfg-")
        try:
            cfg = os.path.join(d, "c.yaml")
            with open(cfg, "w") as f:
                f.write("engine:\n  pool_sise: 1\n")
            p = subprocess.run([BIN, "serve", "--socket", os.path.join(d, "s.sock"),
                                "--config", cfg], capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 1)
            self.assertIn("unknown key 'pool_sise' (did you mean 'pool_size'?)", p.stderr)
        finally:
            subprocess.run(["rm", "-rf", d])


if __name__ == "__main__":
    unittest.main()
