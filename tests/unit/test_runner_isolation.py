"""The runner's bridge is out of a chain's reach (rootfs/runner.py, section
"bridge"), and the language layer's refusals are clear.

Each route a chain could take to its bridge -- globals(), closures/__globals__,
gc.get_objects(), frames, raw fds -- is tried by a chain; the engine side (this
test) checks that nothing the chain forged reached it.  Run from the repo root:
    /usr/bin/python3.11 -m unittest tests.unit.test_runner_isolation -v
The RunnerInMinimalRootfs class runs the runner from build/rootfs (the minimal
profile) via chroot, as root (`make test` builds it first).
"""

import os
import unittest

from tests.unit.test_runner import CHROOT, ROOTFS, Engine, default_handler, run_chain

PROTOCOL_BROKEN = "the chain broke the runner protocol"
FORGED_CALL = "{'t': 'call', 'id': 1, 'tool': 'evil.tool', 'args': {}}"
FORGED_DONE = "{'t': 'done', 'ok': False, 'error': {'kind': 'timeout', 'message': 'forged'}}"


def run_watch(code, allowed=None, argv=None):
    """Runs a chain; returns (done, calls, the chain's view is checked by caller)."""
    e = Engine(argv)
    e.start(code, allowed=allowed)
    done, logs, calls = e.serve(default_handler)
    rc = e.wait()
    return e, done, logs, calls, rc


class BridgeUnreachable(unittest.TestCase):
    def assert_refused(self, done, calls):
        self.assertFalse(done["ok"], done)
        self.assertEqual(done["error"]["kind"], "exception", done)
        self.assertIn(PROTOCOL_BROKEN, done["error"]["message"])
        self.assertNotIn("evil.tool", [c["tool"] for c in calls])

    def test_engine_socket_not_open_in_chain_process(self):
        # Every fd of the chain's process: none is the engine's control socket.
        code = ("import os\n"
                "inos = []\n"
                "for fd in range(4096):\n"
                "    try:\n"
                "        inos.append(os.fstat(fd).st_ino)\n"
                "    except OSError:\n"
                "        pass\n"
                "return inos")
        e, done, _, _, rc = run_watch(code, allowed="all")
        self.assertEqual(rc, 0)
        self.assertTrue(done["ok"], done)
        self.assertTrue(done["result"])  # it does see its own fds (0-2 and its link)
        self.assertNotIn(e.runner_socket_ino, done["result"])

    def test_globals_route(self):
        # The helpers' __globals__ is the runner module: what it holds is the chain's
        # own link to the bridge, which refuses forged frames.
        for forged in (FORGED_CALL, FORGED_DONE):
            code = ("st = globals()['_cm_sync'].__globals__['_STATE']\n"
                    "st.chan.send(%s)\n"
                    "return await demo.echo(i=1)" % forged)
            _, done, _, calls, rc = run_watch(code)
            self.assertEqual(rc, 0)
            self.assert_refused(done, calls)
            self.assertNotEqual(done["error"]["kind"], "timeout")

    def test_closure_route(self):
        code = ("fn = demo.echo\n"
                "g = fn.__globals__\n"
                "bridges = [v for v in g.values() if type(v).__name__ in ('_Bridge', '_ChainLink')]\n"
                "g['_STATE'].chan.send_bytes(b'not json')\n"
                "return len(bridges)")
        _, done, _, calls, _ = run_watch(code)
        self.assert_refused(done, calls)
        self.assertIn("invalid JSON", done["error"]["message"])

    def test_gc_route(self):
        # gc.get_objects() in the chain's process holds no bridge object; whatever
        # can send frames only reaches the bridge, which refuses forged frames.
        # (asyncio's own self-pipe sockets are there; none is the engine's socket)
        # The runner freezes its start-up objects (gc.freeze); a chain can unfreeze.
        code = ("import gc, os, socket\n"
                "gc.unfreeze()\n"
                "objs = gc.get_objects()\n"
                "names = sorted({type(o).__name__ for o in objs})\n"
                "found = [n for n in names if n in ('_Bridge', '_ChainLink')]\n"
                "inos = [os.fstat(o.fileno()).st_ino for o in objs\n"
                "        if isinstance(o, socket.socket) and o.fileno() >= 0]\n"
                "senders = [o for o in objs if not isinstance(o, type) and\n"
                "           callable(getattr(o, 'send_bytes', None))]\n"
                "print(repr(found))\n"
                "print(' '.join(map(str, inos)))\n"
                "for s in senders:\n"
                "    s.send(%s)\n"
                "return len(senders)" % FORGED_CALL)
        e, done, logs, calls, _ = run_watch(code, allowed="all")
        self.assertEqual(logs[0], "[]")
        self.assertNotIn(str(e.runner_socket_ino), logs[1].split())
        self.assert_refused(done, calls)

    def test_frames_route(self):
        # Walk every frame up from the chain; use whatever sends frames.
        code = ("try:\n"
                "    raise ValueError\n"
                "except ValueError as e:\n"
                "    f = e.__traceback__.tb_frame\n"
                "seen = []\n"
                "while f is not None:\n"
                "    for k, v in list(f.f_locals.items()):\n"
                "        seen.append(type(v).__name__)\n"
                "        if callable(getattr(v, 'send', None)) and hasattr(v, 'fd'):\n"
                "            v.send(%s)\n"
                "    f = f.f_back\n"
                "return seen" % FORGED_DONE)
        _, done, _, calls, _ = run_watch(code)
        self.assert_refused(done, calls)

    def test_raw_fd_route(self):
        # os.write to every fd (the escape route a policy with imports: all opens)
        code = ("import os, struct, json\n"
                "p = json.dumps(%s).encode()\n"
                "for fd in range(3, 64):\n"
                "    try:\n"
                "        os.write(fd, struct.pack('>I', len(p)) + p)\n"
                "    except OSError:\n"
                "        pass\n"
                "return 1" % FORGED_CALL)
        _, done, _, calls, _ = run_watch(code, allowed="all")
        self.assert_refused(done, calls)

    def test_engine_only_kinds_not_claimable(self):
        for exc in ("ToolError('x', kind='timeout')", "PolicyDenied('nobody denied this')"):
            done, _, _, _ = run_chain("raise " + exc)
            self.assertEqual(done["error"]["kind"], "exception", done)
            self.assertIn("which no tool call returned", done["error"]["message"])
        # a kind the engine did return passes through
        done, _, _, _ = run_chain("await demo.fail(kind='policy_denied')")
        self.assertEqual(done["error"]["kind"], "policy_denied")

    def test_chain_process_exit_reported(self):
        done, _, _, rc = run_chain("import os\nos._exit(5)", allowed="all")
        self.assertEqual(rc, 0)
        self.assertEqual(done["error"]["kind"], "exception")
        self.assertIn("ended without a result (exit status 5)", done["error"]["message"])


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

    def test_bridge_unreachable_in_rootfs(self):
        code = ("import gc, os\n"
                "names = {type(o).__name__ for o in gc.get_objects()}\n"
                "return [sorted(names & {'_Bridge', '_ChainLink'}), os.getpid() != 1]")
        e, done, _, calls, rc = run_watch(code, allowed="all", argv=self.ARGV)
        self.assertEqual(rc, 0)
        self.assertEqual(done["result"], [[], True])


if __name__ == "__main__":
    unittest.main()
