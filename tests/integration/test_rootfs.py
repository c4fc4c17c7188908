"""`codemode rootfs build|verify`, the engine's refusal of a bad rootfs, the
make cache of the rootfs, and the minimal profile through a real engine.

Builds two minimal rootfs into a temp dir with the binary under test (so the
ASan pass covers the C verifier too) and damages copies of them one way at a time.
"""
import os
import re
import shutil
import stat
import subprocess
import tempfile
import unittest

from tests.integration.engine import BIN, ROOT, Engine, EngineTest


def codemode(*args):
    return subprocess.run([BIN, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=300)


class RootfsBuildVerify(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="codemode-rootfs-test-")
        os.chmod(cls.tmp, 0o755)  # the engine's service user binds the rootfs
        cls.ids = []
        for name in ("a", "b"):
            r = codemode("rootfs", "build", "--out", os.path.join(cls.tmp, name))
            if r.returncode != 0:
                raise AssertionError("rootfs build failed: %s" % r.stderr)
            cls.ids.append(r.stdout.strip().splitlines()[-1])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.copy = os.path.join(self.tmp, "copy")
        shutil.rmtree(self.copy, ignore_errors=True)
        shutil.copytree(os.path.join(self.tmp, "a"), self.copy, symlinks=True)
        shutil.copystat(os.path.join(self.tmp, "a"), self.copy)

    def tearDown(self):
        shutil.rmtree(self.copy, ignore_errors=True)

    def assert_rejected(self, path, reason):
        r = codemode("rootfs", "verify", self.copy)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("%s: %s" % (path, reason), r.stderr)

    def test_same_inputs_same_id(self):
        self.assertRegex(self.ids[0], r"^[0-9a-f]{64}$")
        self.assertEqual(self.ids[0], self.ids[1])
        with open(os.path.join(self.tmp, "a", "MANIFEST"), "rb") as f1, \
                open(os.path.join(self.tmp, "b", "MANIFEST"), "rb") as f2:
            self.assertEqual(f1.read(), f2.read())

    def test_verify_passes_and_reports_id(self):
        r = codemode("rootfs", "verify", self.copy)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("ok, id %s" % self.ids[0], r.stdout)

    def test_altered_file(self):
        p = os.path.join(self.copy, "usr/lib/python3.11/json/decoder.pyc")
        with open(p, "r+b") as f:  # same size, one byte different
            b = f.read(1)
            f.seek(0)
            f.write(bytes([b[0] ^ 1]))
        self.assert_rejected("usr/lib/python3.11/json/decoder.pyc",
                             "content changed (SHA-256 differs from MANIFEST)")

    def test_added_file(self):
        open(os.path.join(self.copy, "usr/lib/python3.11/sitecustomize.pyc"), "wb").close()
        self.assert_rejected("usr/lib/python3.11/sitecustomize.pyc", "not in MANIFEST (extra file)")

    def test_added_directory(self):
        os.mkdir(os.path.join(self.copy, "usr/lib/python3.11/site-packages"), 0o755)
        self.assert_rejected("usr/lib/python3.11/site-packages/",
                             "not in MANIFEST (extra directory)")

    def test_missing_file(self):
        os.unlink(os.path.join(self.copy, "usr/lib/python3.11/uuid.pyc"))
        self.assert_rejected("usr/lib/python3.11/uuid.pyc", "missing (listed in MANIFEST)")

    def test_setuid_and_setgid(self):
        p = os.path.join(self.copy, "usr/bin/python3.11")
        os.chmod(p, 0o4755)
        self.assert_rejected("usr/bin/python3.11", "setuid bit set")
        os.chmod(p, 0o2755)
        self.assert_rejected("usr/bin/python3.11", "setgid bit set")

    def test_mode_changed(self):
        os.chmod(os.path.join(self.copy, "usr/lib/python3.11/uuid.pyc"), 0o755)
        self.assert_rejected("usr/lib/python3.11/uuid.pyc", "mode 0755, MANIFEST says 0644")

    def test_world_writable(self):
        os.chmod(os.path.join(self.copy, "tmp"), 0o777)
        self.assert_rejected("tmp", "world-writable")

    def test_device_node_and_symlink(self):
        os.mknod(os.path.join(self.copy, "dev/sda"), 0o600 | stat.S_IFBLK, os.makedev(8, 0))
        self.assert_rejected("dev/sda", "device node")
        os.unlink(os.path.join(self.copy, "dev/sda"))
        os.symlink("/bin/sh", os.path.join(self.copy, "usr/bin/sh"))
        self.assert_rejected("usr/bin/sh", "symlink")

    def test_no_manifest(self):
        os.unlink(os.path.join(self.copy, "MANIFEST"))
        r = codemode("rootfs", "verify", self.copy)
        self.assertEqual(r.returncode, 1)
        self.assertIn("no MANIFEST", r.stderr)

    def test_engine_refuses_bad_rootfs(self):
        os.chmod(os.path.join(self.copy, "usr/lib/python3.11/uuid.pyc"), 0o4644)
        eng = Engine({"engine": {"rootfs": self.copy}}, "config.json")
        try:
            with self.assertRaises(RuntimeError) as cm:
                eng.start()
            self.assertIn("refusing to start: rootfs fails verification", str(cm.exception))
            self.assertIn("usr/lib/python3.11/uuid.pyc: setuid bit set", str(cm.exception))
            self.assertEqual(eng.proc.wait(10), 1)
        finally:
            eng.stop()
            eng.cleanup()

    def test_usage_errors(self):
        self.assertEqual(codemode("rootfs").returncode, 2)
        self.assertEqual(codemode("rootfs", "verify").returncode, 2)
        r = codemode("rootfs", "build", "--profile", "huge", "--out", self.copy)
        self.assertEqual(r.returncode, 2)
        self.assertIn("minimal or full", r.stderr)


class RootfsMakeCache(unittest.TestCase):
    """make rebuilds the rootfs only when an input changes (`make -q`: 0 = up to date)."""

    def make_q(self, *args):
        return subprocess.run(["make", "-s", "-q", "-C", ROOT, *args, "build/rootfs.stamp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode

    def test_up_to_date_until_an_input_changes(self):
        self.assertEqual(self.make_q(), 0)
        for changed in ("rootfs/runner.py", "rootfs/build_rootfs.py", "/usr/bin/python3.11",
                        "build/rootfs-key.txt"):
            self.assertEqual(self.make_q("-W", changed), 1, changed)


class MinimalProfileEngine(EngineTest):
    """The engine's default rootfs is the minimal profile; the policy refuses imports."""

    def test_denied_imports_name_the_policy(self):
        for mod in ("os", "socket", "ctypes"):
            r = self.client.chain("import %s\nreturn 1" % mod)
            self.assertEqual(r["error"]["kind"], "exception", r)
            self.assertIn("import of '%s' is not allowed" % mod, r["error"]["message"])
            self.assertIn("allow-list of policy", r["error"]["message"])

    def test_forged_frames_on_raw_fds_refused(self):
        # the classic subclass walk reaches os; a forged `done` claiming "timeout"
        # written to every fd of the chain's process reaches the engine (fd 3 is
        # the chain process's own control socket), which refuses the claim
        escape = ("os = [c for c in ().__class__.__base__.__subclasses__() "
                  "if c.__name__ == '_wrap_close'][0].__init__.__globals__['sys'].modules['os']\n")
        code = escape + (
            "import json\n"
            "p = json.dumps({'t': 'done', 'ok': False, 'error': {'kind': 'timeout', "
            "'message': 'forged'}}).encode()\n"
            "for fd in range(3, 64):\n"
            "    try:\n"
            "        os.write(fd, len(p).to_bytes(4, 'big') + p)\n"
            "    except OSError:\n"
            "        pass\n"
            "return 'not forged'")
        r = self.client.chain(code)
        self.assertIsNotNone(r["error"], r)
        self.assertEqual(r["error"]["kind"], "exception", r)
        self.assertIn("the chain broke the runner protocol", r["error"]["message"])

    def test_rootfs_id_logged(self):
        self.assertTrue(re.search(r"rootfs \S+ verified: id [0-9a-f]{64}", self.engine.read_log()))


if __name__ == "__main__":
    unittest.main()
