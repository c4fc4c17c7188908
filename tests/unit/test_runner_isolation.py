"""The language layer's refusals are clear, and the runner runs from the
minimal rootfs as the engine starts it.

The routes a chain could take to the engine's socket -- globals(),
closures/__globals__, gc.get_objects(), frames, raw fds -- used to be tried
here against the runner's bridge.  The sandbox is one process now and the
chain holds fd 3 itself, so those tests send their forged frames to the real
engine, which checks them: tests/integration/test_forged_frames.py.
Run from the repo root:
    /usr/bin/python3.11 -m unittest tests.unit.test_runner_isolation -v
The RunnerInMinimalRootfs class runs the runner from build/rootfs (the minimal
profile) via chroot, as root (`make test` builds it first).
"""

import unittest

from tests.unit.test_runner import CHROOT, ROOTFS, Engine, default_handler, run_chain

class LanguageLayerErrors(unittest.TestCase):
    def test_removed_builtins_say_why(self):
        for name in ("exec", "eval", "compile", "open", "breakpoint", "input"):
            done, _, _, _ = run_chain("%s('1')" % name)
            msg = done["error"]["message"]
            self.assertTrue(msg.startswith("RuntimeError: %s() is not available in a chain: " % name),
                            msg)

    def test_removed_builtin_stub_leads_nowhere(self):
        done, _, _, _ = run_chain("return sorted(open.__globals__)")
        self.assertEqual(done["result"], ["__builtins__", "open"])

    def test_import_error_names_policy(self):
        done, _, _, _ = run_chain("import os")
        self.assertIn("not in the allow-list of policy 'default'", done["error"]["message"])
        e = Engine()
        e.ready = e.recv()
        e.send({"t": "run", "code": "import socket", "policy": "strict"})
        done, _, _ = e.serve(default_handler)
        self.assertIn("import of 'socket' is not allowed", done["error"]["message"])
        self.assertIn("policy 'strict'", done["error"]["message"])


class RunnerInMinimalRootfs(unittest.TestCase):
    """The runner from build/rootfs (minimal profile) as the engine starts it."""
    ARGV = [CHROOT, ROOTFS, "/usr/bin/python3.11", "-I", "-S", "-B", "-c",
            "import _codemode_runner as r; r.main(3)"]

    def test_denied_imports(self):
        for mod in ("os", "socket", "ctypes"):
            done, _, _, rc = run_chain("import %s" % mod, argv=self.ARGV)
            self.assertEqual(rc, 0)
            self.assertEqual(done["error"]["kind"], "exception")
            self.assertIn("ImportError: import of '%s' is not allowed: module '%s' is not in the "
                          "allow-list of policy 'default'" % (mod, mod), done["error"]["message"])

    def test_minimal_profile_lacks_the_wider_stdlib(self):
        # even with imports: all, the minimal rootfs holds only its profile
        for mod in ("ctypes", "xml.dom", "email"):
            done, _, _, _ = run_chain("import %s" % mod, allowed="all", argv=self.ARGV)
            self.assertIn("ModuleNotFoundError", done["error"]["message"])

    def test_isolated_interpreter(self):
        code = ("import sys, os\n"
                "return [sys.path, dict(os.environ), sys.flags.isolated, sys.flags.no_site,\n"
                "        sys.flags.ignore_environment, sys.dont_write_bytecode]")
        done, _, _, _ = run_chain(code, allowed="all", argv=self.ARGV)
        self.assertEqual(done["result"], [
            ["/usr/lib/python311.zip", "/usr/lib/python3.11", "/usr/lib/python3.11/lib-dynload"],
            {"LANG": "C.UTF-8"}, 1, 1, 1, True])


if __name__ == "__main__":
    unittest.main()
