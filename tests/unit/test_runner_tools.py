"""Host-side tests for the runner's tool table sent ahead and its interface
text asked for on use (issue 18.2, rootfs/README.md "Control protocol":
`tools` frames, run.tools_key, `interfaces` frames).  Same harness as
test_runner.py: the test plays the engine on the runner's fd 3."""
import unittest

from tests.unit.test_runner import DEMO_TOOLS, Engine, default_handler


def primed(code, key="k1", tools=DEMO_TOOLS, run_key=None):
    """A runner given `tools` (key) after ready, then a run naming run_key."""
    e = Engine()
    assert e.recv() == {"t": "ready"}
    e.send({"t": "tools", "key": key, "tools": tools})
    e.send({"t": "run", "code": code, "tools_key": run_key or key})
    return e


def serve(e, interfaces=None):
    """Answers calls with default_handler and interfaces frames with
    interfaces(name); returns (done, calls, interface frames, exit status)."""
    calls, asked = [], []
    while True:
        f = e.recv()
        if f["t"] == "call":
            calls.append(f)
            ok, v = default_handler(f["tool"], f["args"])
            e.send({"t": "result", "id": f["id"], "ok": ok, ("value" if ok else "error"): v})
        elif f["t"] == "interfaces":
            asked.append(f)
            e.send({"t": "result", "id": f["id"], "ok": True, "value": interfaces(f.get("name"))})
        elif f["t"] == "done":
            return f, calls, asked, e.wait()


class ToolsAhead(unittest.TestCase):
    def test_run_by_key_uses_the_primed_table(self):
        e = primed("return [sorted(dir(demo)), await demo.echo(x=1)]")
        done, calls, _, rc = serve(e)
        self.assertEqual(rc, 0)
        self.assertEqual(done["result"], [["echo", "fail", "word_count"], {"x": 1}])
        self.assertEqual([c["tool"] for c in calls], ["demo.echo"])

    def test_a_later_tools_frame_replaces_the_first(self):
        e = Engine()
        e.recv()
        e.send({"t": "tools", "key": "old", "tools": DEMO_TOOLS})
        e.send({"t": "tools", "key": "new", "tools": [
            {"name": "other.t", "access_manual": "other", "access_tool": "t"}]})
        e.send({"t": "run", "code": "return [dir(other), 'demo' in globals()]", "tools_key": "new"})
        done, _, _, rc = serve(e)
        self.assertEqual((rc, done["result"]), (0, [["t"], False]))

    def test_unknown_key_is_a_malformed_frame(self):
        e = primed("return 1", key="k1", run_key="k2")
        self.assertEqual(e.wait(), 3)
        self.assertIn("tools_key", e.stderr)

    def test_key_without_tools_frame_is_a_malformed_frame(self):
        e = Engine()
        e.recv()
        e.send({"t": "run", "code": "return 1", "tools_key": "k1"})
        self.assertEqual(e.wait(), 3)

    def test_bad_tools_frame_is_a_malformed_frame(self):
        e = Engine()
        e.recv()
        e.send({"t": "tools", "key": "k", "tools": [{"name": "x"}]})
        self.assertEqual(e.wait(), 3)

    # A call outside the table (past the language layer) is the engine's to
    # refuse: tests/integration/test_forged_frames.py
    # test_call_outside_the_table_breaks_the_protocol.


class InterfacesOnUse(unittest.TestCase):
    def test_interfaces_asked_once_on_first_read(self):
        code = "a = interfaces\nb = __interfaces\nreturn [a == b, len(a)]"
        done, _, asked, rc = serve(primed(code), interfaces=lambda name: "TEXT")
        self.assertEqual((rc, done["result"]), (0, [True, 4]))
        self.assertEqual(asked, [{"t": "interfaces", "id": 1}])

    def test_chain_that_never_reads_them_never_asks(self):
        done, _, asked, rc = serve(primed("return 2"), interfaces=lambda name: "TEXT")
        self.assertEqual((rc, done["result"], asked), (0, 2, []))

    def test_get_tool_interface_asks_by_name_and_unknown_is_value_error(self):
        code = ("t = get_tool_interface('demo.echo')\n"
                "try:\n    __get_tool_interface('nope')\nexcept ValueError as e:\n    u = str(e)\n"
                "return [t, u]")
        done, _, asked, rc = serve(primed(code),
                                   interfaces=lambda name: "IF " + name if name == "demo.echo" else None)
        self.assertEqual(rc, 0)
        self.assertEqual(done["result"][0], "IF demo.echo")
        self.assertIn("unknown tool 'nope'", done["result"][1])
        self.assertEqual([a.get("name") for a in asked], ["demo.echo", "nope"])

    def test_manual_named_interfaces_shadows_the_text(self):
        tools = [{"name": "interfaces.t", "access_manual": "interfaces", "access_tool": "t"}]
        done, _, asked, rc = serve(primed("return repr(interfaces)", tools=tools),
                                   interfaces=lambda name: "TEXT")
        self.assertEqual(rc, 0)
        self.assertEqual(done["result"], "<manual interfaces: t>")
        self.assertEqual(asked, [])

    def test_tools_made_on_first_use_keep_their_names(self):
        code = "f = demo.word_count\nreturn [f.__qualname__, f is demo.word_count, repr(demo)]"
        done, _, _, rc = serve(primed(code))
        self.assertEqual(rc, 0)
        self.assertEqual(done["result"], ["demo.word_count", True,
                                          "<manual demo: echo, fail, word_count>"])


if __name__ == "__main__":
    unittest.main()
