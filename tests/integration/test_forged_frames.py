"""Forged control frames straight to the engine (engine/chain_check.c).

Why this file: a sandbox is one process, the chain's (rootfs/README.md "One
process"), and it holds the engine's control socket (fd 3) itself; there is
no in-sandbox bridge that checks and re-encodes its frames any more.  So a
chain that reaches fd 3 by any route -- the runner's globals, closures,
gc.get_objects(), frames, a raw os.write -- must gain nothing: every frame
it forges is checked by the engine, which ends the chain with kind
`exception`, "the chain broke the runner protocol: ...".  These are the
checks tests/unit/test_runner_isolation.py made of the bridge, now made of
the engine, plus one per rule the engine enforces (ids 1, 2, 3...; tools of
this run; object arguments; string log lines; the search and interfaces
fields; the frame types a chain may send; the error kinds a `done` may
claim).  Run from the repo root as root:
    /usr/bin/python3.11 -m unittest tests.integration.test_forged_frames -v
"""
import json

from tests.integration.engine import EngineTest

PROTOCOL_BROKEN = "the chain broke the runner protocol"
FORGED_CALL = "{'t': 'call', 'id': 1, 'tool': 'evil.tool', 'args': {}}"
FORGED_DONE = "{'t': 'done', 'ok': False, 'error': {'kind': 'timeout', 'message': 'forged'}}"

MANUAL = {
    "utcp_version": "1.0.1", "manual_version": "1.0.0",
    "tools": [{"name": "echo", "description": "Echo a message back.",
               "inputs": {"type": "object", "properties": {"msg": {"type": "string"}}},
               "tool_call_template": {"call_template_type": "cli", "commands": [
                   {"command": "printf '%s' UTCP_ARG_msg_UTCP_END"}]}}],
}
CONFIG = json.dumps({
    "manual_call_templates": [{"name": "demo", "call_template_type": "file",
                               "file_path": "manual.json",
                               "allowed_communication_protocols": ["cli"]}],
    "engine": {"imports": "all"},
})

# fd 3 with a frame: the raw route (a policy with imports: all opens it)
RAW = ("import os, json\n"
       "def forge(f):\n"
       "    p = f if isinstance(f, bytes) else json.dumps(f).encode()\n"
       "    os.write(3, len(p).to_bytes(4, 'big') + p)\n")


class ForgedFrames(EngineTest):
    CONFIG = CONFIG
    FILES = {"manual.json": json.dumps(MANUAL)}

    def chain(self, code):
        return self.client.chain(code, timeout=20)

    def assert_broke(self, r, why=None):
        self.assertIsNotNone(r["error"], r)
        self.assertEqual(r["error"]["kind"], "exception", r)
        self.assertIn(PROTOCOL_BROKEN, r["error"]["message"])
        if why:
            self.assertIn(why, r["error"]["message"])
        self.assertIsNone(r["result"], r)

    def assert_serving(self):
        self.assertEqual(self.chain("return await demo.echo(msg='ok')")["result"], "ok")

    # -- the routes to fd 3 the bridge used to stand in: each reaches the engine
    def test_globals_route(self):
        for forged in (FORGED_CALL, FORGED_DONE):
            r = self.chain("st = globals()['_cm_sync'].__globals__['_STATE']\n"
                           "st.chan.send(%s)\n"
                           "return await demo.echo(msg='x')" % forged)
            self.assert_broke(r)
            self.assertNotEqual(r["error"]["kind"], "timeout")
        self.assert_serving()

    def test_closure_route(self):
        r = self.chain("g = demo.echo.__globals__\n"
                       "g['_STATE'].chan.send_bytes(b'not json')\n"
                       "return 1")
        self.assert_broke(r, "not valid JSON")

    def test_gc_route(self):
        r = self.chain("import gc\n"
                       "gc.unfreeze()\n"
                       "senders = [o for o in gc.get_objects() if not isinstance(o, type) and\n"
                       "           callable(getattr(o, 'send_bytes', None))]\n"
                       "for s in senders:\n"
                       "    s.send(%s)\n"
                       "return len(senders)" % FORGED_CALL)
        self.assert_broke(r, "'evil.tool', which is not a tool of this run")

    def test_frames_route(self):
        r = self.chain("try:\n"
                       "    raise ValueError\n"
                       "except ValueError as e:\n"
                       "    f = e.__traceback__.tb_frame\n"
                       "while f is not None:\n"
                       "    for k, v in list(f.f_locals.items()):\n"
                       "        if callable(getattr(v, 'send', None)) and hasattr(v, 'fd'):\n"
                       "            v.send(%s)\n"
                       "    f = f.f_back\n"
                       "return 'not forged'" % FORGED_DONE)
        self.assert_broke(r, "which no tool call returned")

    def test_raw_fd_route(self):
        r = self.chain("import os, json\n"
                       "p = json.dumps(%s).encode()\n"
                       "for fd in range(3, 64):\n"
                       "    try:\n"
                       "        os.write(fd, len(p).to_bytes(4, 'big') + p)\n"
                       "    except OSError:\n"
                       "        pass\n"
                       "return 1" % FORGED_CALL)
        self.assert_broke(r, "not a tool of this run")
        self.assert_serving()

    # -- the error kinds a chain may claim
    def test_engine_only_kinds_not_claimable(self):
        for exc in ("ToolError('x', kind='timeout')", "PolicyDenied('nobody denied this')",
                    "ToolError('x', kind='sandbox_failure')", "ToolError('x', kind='memory_limit')",
                    "ToolError('x', kind='invalid_arguments')", "ToolError('x', kind='no such')"):
            r = self.chain("raise " + exc)
            self.assert_broke(r, "which no tool call returned")
        for kind in ("timeout", "policy_denied", "cancelled"):
            r = self.chain(RAW + "forge({'t': 'done', 'ok': False, 'error': "
                                 "{'kind': %r, 'message': 'forged'}})\n"
                                 "import time\ntime.sleep(5)" % kind)
            self.assert_broke(r, "error kind '%s', which no tool call returned" % kind)

    def test_kind_the_engine_returned_passes(self):
        # the schema check answers invalid_arguments; re-raised, it ends the chain so
        r = self.chain("await demo.echo(msg=5)")
        self.assertEqual(r["error"]["kind"], "invalid_arguments", r)
        # the runner's own kinds pass as they are
        self.assertEqual(self.chain("raise ValueError('v')")["error"]["kind"], "exception")
        self.assertEqual(self.chain("return {1, 2}")["error"]["kind"], "result_not_serializable")

    # -- one test per rule the engine enforces on the chain's frames
    def test_call_ids_in_sequence(self):
        self.assert_broke(self.chain(RAW + "forge({'t': 'call', 'id': 777, 'tool': 'demo.echo', "
                                           "'args': {}})\nimport time\ntime.sleep(5)"),
                          "call id 777 out of sequence (expected 1)")
        # the runner's own next call reuses an id the forged one took
        r = self.chain(RAW + "forge({'t': 'call', 'id': 1, 'tool': 'demo.echo', "
                             "'args': {'msg': 'a'}})\n"
                             "return await demo.echo(msg='b')")
        self.assert_broke(r, "call id 1 out of sequence (expected 2)")
        self.assert_broke(self.chain(RAW + "forge({'t': 'call', 'id': 1.5, 'tool': 'demo.echo', "
                                           "'args': {}})\nimport time\ntime.sleep(5)"),
                          "out of sequence")
        self.assert_broke(self.chain(RAW + "forge({'t': 'search', 'id': 3, 'query': 'x', "
                                           "'limit': 1})\nimport time\ntime.sleep(5)"),
                          "search id 3 out of sequence")
        self.assert_broke(self.chain(RAW + "forge({'t': 'interfaces', 'id': 0})\n"
                                           "import time\ntime.sleep(5)"),
                          "interfaces id 0 out of sequence")

    def test_call_fields(self):
        self.assert_broke(self.chain(RAW + "forge({'t': 'call', 'id': 1, 'tool': 'demo.echo', "
                                           "'args': [1]})\nimport time\ntime.sleep(5)"),
                          "call arguments are not an object")
        self.assert_broke(self.chain(RAW + "forge({'t': 'call', 'id': 1, 'tool': 'demo.echo'})\n"
                                           "import time\ntime.sleep(5)"),
                          "call arguments are not an object")
        self.assert_broke(self.chain(RAW + "forge({'t': 'call', 'id': 1, 'tool': 7, 'args': {}})\n"
                                           "import time\ntime.sleep(5)"),
                          "without a string tool")

    def test_call_outside_the_table_breaks_the_protocol(self):
        # the language layer is not the boundary: past it, the engine is
        r = self.chain("demo.echo.__globals__['_STATE'].call('demo.secret', {})\nreturn 1")
        self.assert_broke(r, "call to 'demo.secret', which is not a tool of this run")
        self.assertEqual(r["stats"]["tool_calls"], 0)

    def test_forged_call_to_a_tool_of_the_run_is_just_a_call(self):
        # what a chain may do anyway: the engine runs it like any other call
        # (the chain registers it with its runner, so its result has a taker)
        r = self.chain(RAW + "g = globals()['_cm_sync'].__globals__\n"
                             "st = g['_STATE']\n"
                             "p = st.pending[1] = g['_Pending'](1, 'demo.echo')\n"
                             "st.next_id = 2\n"
                             "forge({'t': 'call', 'id': 1, 'tool': 'demo.echo', "
                             "'args': {'msg': 'forged'}})\n"
                             "b = await demo.echo(msg='b')\n"
                             "return [await p, b]")
        self.assertIsNone(r["error"], r)
        self.assertEqual(r["result"], ["forged", "b"])
        self.assertEqual(r["stats"]["tool_calls"], 2)

    def test_log_search_interfaces_fields(self):
        for frame, why in (
                ("{'t': 'log', 'line': 5}", "log line is not a string"),
                ("{'t': 'search', 'id': 1, 'query': 'x', 'limit': 0}", "an int limit 1..1000"),
                ("{'t': 'search', 'id': 1, 'query': 'x', 'limit': 2.5}", "an int limit 1..1000"),
                ("{'t': 'search', 'id': 1, 'query': 5, 'limit': 2}", "a string query"),
                ("{'t': 'interfaces', 'id': 1, 'name': 5}", "a name that is not a string")):
            self.assert_broke(self.chain(RAW + "forge(%s)\nimport time\ntime.sleep(5)" % frame), why)
        # a null name is the index, as the runner's own frame without one
        r = self.chain(RAW + "g = globals()['_cm_sync'].__globals__\n"
                             "st = g['_STATE']\n"
                             "p = st.pending[1] = g['_Pending'](1, 'interfaces')\n"
                             "st.next_id = 2\n"
                             "forge({'t': 'interfaces', 'id': 1, 'name': None})\n"
                             "return type(await p).__name__")
        self.assertIsNone(r["error"], r)
        self.assertEqual(r["result"], "str")

    def test_frame_types(self):
        for frame, why in (("{'t': 'result', 'id': 1, 'ok': True, 'value': 1}", "unexpected frame 'result'"),
                           ("{'t': 'ready'}", "unexpected frame 'ready'"),
                           ("{'t': 'tools', 'key': 'k', 'tools': []}", "unexpected frame 'tools'"),
                           ("{'x': 1}", "frame without a string 't'"),
                           ("b'[1, 2]'", "not a JSON object"),
                           ("b'\\xff\\xfe'", "not valid UTF-8"),
                           ("{'t': 'done'}", "done frame without ok/result or error"),
                           ("{'t': 'done', 'ok': True}", "done frame without ok/result or error"),
                           ("{'t': 'done', 'ok': False, 'error': {'kind': 'exception'}}",
                            "done frame with a malformed error"),
                           ("{'t': 'done', 'ok': False, 'error': {'kind': 'exception', "
                            "'message': 'm', 'traceback': 3}}", "done frame with a malformed error")):
            self.assert_broke(self.chain(RAW + "forge(%s)\nimport time\ntime.sleep(5)" % frame), why)
        self.assert_serving()

    # -- the chain's own end
    def test_chain_process_exit_reported(self):
        r = self.chain("import os\nos._exit(5)")
        self.assertEqual(r["error"]["kind"], "exception", r)
        self.assertIn("the chain process ended without a result (exit status 5)",
                      r["error"]["message"])
        r = self.chain("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)")
        self.assertEqual(r["error"]["kind"], "exception", r)
        self.assertIn("ended without a result (signal 11)", r["error"]["message"])

    def test_pid_one_cannot_be_killed_from_inside(self):
        # the init is what tells the engine how the chain process ended
        r = self.chain("import os, signal\n"
                       "for s in (signal.SIGKILL, signal.SIGTERM, signal.SIGSTOP):\n"
                       "    os.kill(1, s)\n"
                       "return [os.getpid(), os.getppid()]")
        self.assertIsNone(r["error"], r)
        self.assertEqual(r["result"], [2, 1])
