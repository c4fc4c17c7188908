"""Operations: install/uninstall, systemd units, socket activation, health,
stats and metrics, the man page, and the offline deployment check."""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.request

from tests.integration.engine import BIN, ROOT, Client, Engine, EngineTest


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Install(unittest.TestCase):

    def test_install_serve_uninstall(self):
        dest = tempfile.mkdtemp(prefix="codemode-install-")
        # searchable: the engine's service user binds the installed rootfs
        os.chmod(dest, 0o755)
        env = dict(os.environ, DESTDIR=dest, PREFIX="/usr/local", SYSCONFDIR="/etc")
        eng = None
        try:
            subprocess.run([os.path.join(ROOT, "scripts", "install.sh"), "install"], env=env,
                           check=True, capture_output=True, timeout=120)
            binary = os.path.join(dest, "usr/local/bin/codemode")
            config = os.path.join(dest, "etc/codemode/codemode.yaml")
            for p in (binary, config, os.path.join(dest, "usr/local/lib/codemode/rootfs/MANIFEST"),
                      os.path.join(dest, "usr/local/share/man/man1/codemode.1.gz"),
                      os.path.join(dest, "usr/local/lib/systemd/system/codemode.socket"),
                      os.path.join(dest, "usr/local/lib/codemode/rootfs-full/MANIFEST"),
                      os.path.join(dest, "usr/local/share/codemode/build_rootfs.py")):
                self.assertTrue(os.path.exists(p), p)
            self.assertFalse(os.path.exists(os.path.join(dest, "usr/local/lib/codemode/rootfs/.stamp")))
            sock = os.path.join(dest, "s.sock")
            log = open(os.path.join(dest, "log"), "w")
            eng = subprocess.Popen([binary, "serve", "--socket", sock, "--config", config],
                                   stderr=log)
            deadline = time.time() + 20
            while not os.path.exists(sock) and time.time() < deadline and eng.poll() is None:
                time.sleep(0.05)
            c = Client(sock)
            r = c.chain("return await demo.word_count(text='a b c d')")
            c.close()
            self.assertIsNone(r["error"], r)
            self.assertEqual(r["result"], {"words": 4})
            eng.terminate()
            self.assertEqual(eng.wait(30), 0)
            log.close()
            subprocess.run([os.path.join(ROOT, "scripts", "install.sh"), "uninstall"], env=env,
                           check=True, capture_output=True, timeout=60)
            left = [os.path.join(d, f) for d, _, fs in os.walk(dest) for f in fs]
            self.assertEqual([p for p in left if not p.endswith(("/log", ".sock"))], [])
        finally:
            if eng and eng.poll() is None:
                eng.kill()
                eng.wait()
            shutil.rmtree(dest, ignore_errors=True)


class SystemdAndMan(unittest.TestCase):

    def test_units_verify(self):
        d = tempfile.mkdtemp(prefix="codemode-units-")
        try:
            for u in ("codemode.service", "codemode.socket"):
                with open(os.path.join(ROOT, "deploy/systemd", u + ".in")) as f:
                    text = f.read().replace("@BINDIR@", os.path.dirname(BIN)).replace(
                        "@SYSCONFDIR@", "/etc")
                with open(os.path.join(d, u), "w") as f:
                    f.write(text)
            p = subprocess.run(["systemd-analyze", "verify", "--man=no",
                                os.path.join(d, "codemode.socket"),
                                os.path.join(d, "codemode.service")],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stderr.strip(), "", "systemd-analyze complained")
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def test_man_page_renders_every_command(self):
        p = subprocess.run(["man", "-l", os.path.join(ROOT, "build", "codemode.1")],
                           capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, MANPAGER="cat", MANWIDTH="100"))
        self.assertEqual(p.returncode, 0, p.stderr)
        for word in ("NAME", "SYNOPSIS", "EXIT STATUS", "CONFIGURATION"):
            self.assertIn(word, p.stdout)
        # every subcommand of `codemode --help` is documented
        helptext = subprocess.run([BIN, "--help"], capture_output=True, text=True).stdout
        cmds = [l.split()[0] for l in helptext.splitlines() if l.startswith("  ") and l.split()]
        self.assertIn("serve", cmds)
        for cmd in cmds:
            self.assertIn("codemode " + cmd, p.stdout)

    def test_every_subcommand_has_help(self):
        helptext = subprocess.run([BIN, "--help"], capture_output=True, text=True).stdout
        cmds = [l.split()[0] for l in helptext.splitlines() if l.startswith("  ") and l.split()]
        for cmd in cmds:
            if cmd == "version":
                continue
            p = subprocess.run([BIN, cmd, "--help"], capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 0, cmd)
            self.assertIn("usage:", p.stdout, cmd)
            self.assertIn("codemode " + cmd, p.stdout)


class Observe(EngineTest):
    PORT = free_port()
    CONFIG = """
engine:
  metrics_port: %d
  metrics_file: metrics.prom
""" % PORT

    def test_health_ready(self):
        r = self.client.request("codemode/health")["result"]
        self.assertTrue(r["ready"], r)
        p = subprocess.run([BIN, "health", "--quiet", "--socket", self.engine.socket], timeout=30)
        self.assertEqual(p.returncode, 0)

    def test_stats_move_after_a_chain(self):
        def stats():
            p = subprocess.run([BIN, "stats", "--socket", self.engine.socket],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stderr)
            return json.loads(p.stdout)
        before = stats()
        self.client.chain("return 1")
        self.client.chain("raise ValueError()")
        after = stats()
        self.assertEqual(after["chains_ok"], before["chains_ok"] + 1)
        self.assertEqual(after["chains_failed"], before["chains_failed"] + 1)
        self.assertEqual(after["metrics"]["chains"].get("exception", 0),
                         before["metrics"]["chains"].get("exception", 0) + 1)

    def test_prometheus_port_and_file(self):
        self.client.chain("return 2")
        body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.PORT, timeout=10).read()
        text = body.decode()
        self.assertIn('codemode_chains_total{outcome="ok"}', text)
        self.assertIn("codemode_chain_duration_ms_bucket", text)
        self.assertIn("codemode_queue_depth", text)
        p = subprocess.run([BIN, "stats", "--prometheus", "--socket", self.engine.socket],
                           capture_output=True, text=True, timeout=30)
        self.assertIn("codemode_sandbox_ready_ms_count", p.stdout)
        path = os.path.join(self.engine.dir, "metrics.prom")
        deadline = time.time() + 10
        while not os.path.exists(path) and time.time() < deadline:
            time.sleep(0.2)
        with open(path) as f:
            self.assertIn("codemode_chains_total", f.read())

    def test_logs_are_json_lines(self):
        for line in self.engine.read_log().splitlines():
            rec = json.loads(line)
            self.assertIn(rec["level"], ("debug", "info", "warn", "error"))


class SocketActivation(unittest.TestCase):

    def test_adopts_systemd_socket(self):
        d = tempfile.mkdtemp(prefix="codemode-sa-")
        path = os.path.join(d, "act.sock")
        lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        lsock.bind(path)
        lsock.listen(8)
        fd = lsock.fileno()

        def as_fd3():
            os.dup2(fd, 3)

        proc = subprocess.Popen(
            ["/bin/sh", "-c", 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" serve --socket /nonexistent/x',
             BIN], preexec_fn=as_fd3, pass_fds=(fd,), stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + 20
            while True:
                try:
                    c = Client(path, timeout=30)
                    break
                except OSError:
                    if time.time() > deadline or proc.poll() is not None:
                        raise
                    time.sleep(0.1)
            # connect succeeds on the backlog even before the engine runs: ask
            self.assertEqual(c.request("ping")["result"], {})
            self.assertEqual(c.chain("return 'activated'")["result"], "activated")
            c.close()
            proc.terminate()
            self.assertEqual(proc.wait(30), 0)
            self.assertTrue(os.path.exists(path), "socket-activated engine must not unlink")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            lsock.close()
            shutil.rmtree(d, ignore_errors=True)


class DeployCheck(unittest.TestCase):

    def run_check(self, directory):
        return subprocess.run(["/usr/bin/python3.11", os.path.join(ROOT, "deploy/check_manifests.py"),
                               directory], capture_output=True, text=True, timeout=60)

    def test_shipped_manifests_pass(self):
        p = self.run_check(os.path.join(ROOT, "deploy/kubernetes"))
        self.assertEqual(p.returncode, 0, p.stdout)

    def test_broken_manifest_is_caught(self):
        d = tempfile.mkdtemp(prefix="codemode-k8s-")
        try:
            for f in os.listdir(os.path.join(ROOT, "deploy/kubernetes")):
                shutil.copy(os.path.join(ROOT, "deploy/kubernetes", f), d)
            path = os.path.join(d, "daemonset.yaml")
            with open(path) as f:
                text = f.read()
            with open(path, "w") as f:
                f.write(text.replace("name: codemode-config", "name: no-such-config")
                        .replace("mountPath: /etc/codemode", "mountPath: etc/codemode"))
            p = self.run_check(d)
            self.assertEqual(p.returncode, 1)
            self.assertIn("unknown ConfigMap no-such-config", p.stdout)
            self.assertIn("mountPath must be absolute", p.stdout)
        finally:
            shutil.rmtree(d, ignore_errors=True)
