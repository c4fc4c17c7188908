"""An engine.rootfs without a Python (an empty directory) is refused with a
clear error and exit status 1 — not a crash (it once freed the resolved path
twice and aborted)."""
import json
import os
import subprocess
import tempfile
import unittest

from tests.integration.engine import BIN


class RootfsWithoutPython(unittest.TestCase):

    def test_clear_error_no_abort(self):
        with tempfile.TemporaryDirectory() as d:
            os.mkdir(os.path.join(d, "rootfs"))
            cfg = os.path.join(d, "config.json")
            with open(cfg, "w") as f:
                json.dump({"engine": {"rootfs": os.path.join(d, "rootfs")}}, f)
            p = subprocess.run([BIN, "serve", "--socket", os.path.join(d, "s.sock"), "--config", cfg],
                               capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("has no usr/bin/python3.11", p.stderr)
        self.assertNotIn("double free", p.stderr)
        self.assertNotIn("AddressSanitizer", p.stderr)
