"""Tool calls that are correct and errors that say what to do (issue 19),
end to end through a real engine:

- arguments are checked against the tool's `inputs` before policy and
  provider: a failure is a ToolError of kind `invalid_arguments` naming the
  argument, the expected type and the signature (uncaught: the chain's kind);
- a misspelled tool or manual names the nearest names;
- deadlines nest: a stalled CLI, HTTP or MCP tool raises a catchable
  ToolError of kind `timeout` before the chain's own deadline;
- an HTTP response labelled JSON whose body is not JSON is a tool_error with
  its first bytes; other content types come back as text;
- a timed-out chain's message shows its timeout."""
import json
import os
import shutil
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.integration.engine import ROOT, EngineTest

HUNG_MCP = os.path.join(ROOT, "tests", "integration", "hung_mcp_server.py")
RELEASE = threading.Event()  # ends the stalled handlers at teardown


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def reply(self, body, ctype):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except OSError:
            pass  # the engine gave up on a stalled call

    def do_GET(self):
        if self.path == "/stall":
            RELEASE.wait(60)
            self.reply("{}", "application/json")
        elif self.path == "/badjson":
            self.reply("<html><body>Service Unavailable</body></html>" + "x" * 500,
                       "application/json; charset=utf-8")
        elif self.path == "/text":
            self.reply("plain words", "text/plain")
        elif self.path == "/json":
            self.reply('{"ok": true}', "application/problem+json")
        elif self.path == "/empty":
            self.reply("", "application/json")
        else:
            self.send_error(404)


def tool(name, inputs, template, description=""):
    return {"name": name, "description": description or name, "inputs": inputs,
            "tool_call_template": template}


STRICT = {"type": "object", "additionalProperties": False, "required": ["text"],
          "properties": {"text": {"type": "string"}, "limit": {"type": "integer"},
                         "mode": {"enum": ["fast", "slow"]},
                         "opts": {"type": "object", "required": ["depth"],
                                  "properties": {"depth": {"type": "integer"}}},
                         "tags": {"type": "array", "items": {"type": "string"}}}}


class ToolCalls(EngineTest):
    @classmethod
    def setUpClass(cls):
        RELEASE.clear()
        cls.http = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        cls.http.daemon_threads = True
        threading.Thread(target=cls.http.serve_forever, daemon=True).start()
        base = "http://127.0.0.1:%d" % cls.http.server_address[1]
        cls.state = tempfile.mkdtemp(prefix="codemode-deadline-mcp-")
        os.chmod(cls.state, 0o777)  # the server runs as its own unprivileged uid

        def http(path):
            return {"call_template_type": "http", "http_method": "GET", "url": base + path}
        manual = {"utcp_version": "1.0.1", "manual_version": "1.0.0", "tools": [
            tool("echo", STRICT, {"call_template_type": "cli", "commands": [
                {"command": "printf '%s' UTCP_ARG_text_UTCP_END"}]}),
            tool("word_count", {"type": "object", "required": ["text"],
                                "properties": {"text": {"type": "string"}}},
                 {"call_template_type": "cli", "commands": [
                     {"command": "printf '%s' UTCP_ARG_text_UTCP_END | wc -w"}]}),
            tool("stall_cli", {"type": "object", "properties": {}},
                 {"call_template_type": "cli", "commands": [{"command": "sleep 60"}]}),
            tool("stall_http", {"type": "object", "properties": {}}, http("/stall")),
            tool("bad_json", {"type": "object", "properties": {}}, http("/badjson")),
            tool("text", {"type": "object", "properties": {}}, http("/text")),
            tool("json", {"type": "object", "properties": {}}, http("/json")),
            tool("empty", {"type": "object", "properties": {}}, http("/empty")),
        ]}
        cls.CONFIG = json.dumps({"manual_call_templates": [
            {"name": "t", "call_template_type": "file", "file_path": "manual.json",
             "allowed_communication_protocols": ["cli", "http"]},
            {"name": "hang", "call_template_type": "mcp", "config": {"mcpServers": {
                "h": {"command": "/usr/bin/python3.11", "args": [HUNG_MCP, cls.state],
                      "writable_dirs": [cls.state]}}}}]})
        cls.FILES = {"manual.json": json.dumps(manual)}
        try:
            super().setUpClass()
        except Exception:
            cls.http.shutdown()
            shutil.rmtree(cls.state, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        RELEASE.set()
        try:
            super().tearDownClass()
        finally:
            cls.http.shutdown()
            shutil.rmtree(cls.state, ignore_errors=True)

    def caught(self, call, timeout=10):
        """The chain calls `call` and returns [kind, message] of the ToolError."""
        r = self.client.chain("try:\n    return ['ok', await %s]\n"
                              "except ToolError as e:\n    return [e.kind, e.message]\n" % call,
                              timeout=timeout)
        self.assertIsNone(r["error"], r)
        return r["result"]

    # ---- 1. arguments checked against inputs -----------------------------------

    def test_valid_arguments_pass(self):
        self.assertEqual(self.caught("t.echo(text='hi', limit=2, mode='fast', "
                                     "opts={'depth': 1}, tags=['a'])"), ["ok", "hi"])

    def test_missing_required_argument(self):
        kind, msg = self.caught("t.word_count()")
        self.assertEqual(kind, "invalid_arguments")
        self.assertIn("t.word_count: missing required argument `text` (string)", msg)
        self.assertIn("signature: t.word_count(text: str)", msg)

    def test_misspelled_argument(self):
        kind, msg = self.caught("t.echo(txt='a')")
        self.assertEqual(kind, "invalid_arguments")
        self.assertIn("missing required argument `text`", msg)
        kind, msg = self.caught("t.echo(text='a', limt=3)")
        self.assertEqual(kind, "invalid_arguments")
        self.assertIn("unexpected argument `limt` (did you mean `limit`?)", msg)
        self.assertIn("signature: t.echo(text: str, limit: int = None", msg)

    def test_wrong_types_enum_nested(self):
        for call, needle in [
                ("t.echo(text=5)", "argument `text` must be string, got integer"),
                ("t.echo(text='a', limit='3')", "argument `limit` must be integer, got string"),
                ("t.echo(text='a', mode='medium')", 'argument `mode` must be one of "fast", "slow"'),
                ("t.echo(text='a', opts={})", "missing required argument `opts.depth` (integer)"),
                ("t.echo(text='a', opts={'depth': 'x'})", "argument `opts.depth` must be integer"),
                ("t.echo(text='a', tags=['a', 1])", "argument `tags[1]` must be string")]:
            kind, msg = self.caught(call)
            self.assertEqual(kind, "invalid_arguments", call)
            self.assertIn(needle, msg, call)

    def test_uncaught_invalid_arguments_is_the_chain_kind(self):
        r = self.client.chain("return await t.word_count(txt='a')")
        self.assertEqual(r["error"]["kind"], "invalid_arguments")
        self.assertIn("missing required argument `text`", r["error"]["message"])

    def test_mcp_tool_arguments_checked(self):
        kind, msg = self.caught("hang.h_add(a='x', b=1)")
        self.assertEqual(kind, "invalid_arguments")
        self.assertIn("argument `a` must be number, got string", msg)

    # ---- 2. errors that say what to do ----------------------------------------

    def test_misspelled_tool_and_manual(self):
        r = self.client.chain("return await t.word_cont(text='a')")
        self.assertIn("did you mean `t.word_count`?", r["error"]["message"])
        self.assertIn("search_tools(", r["error"]["message"])
        r = self.client.chain("return await hanf.h_add(a=1, b=2)")
        self.assertIn("did you mean the manual `hang`?", r["error"]["message"])

    # ---- 3. deadlines that nest -----------------------------------------------

    def assert_catchable_timeout(self, call):
        t0 = time.monotonic()
        kind, msg = self.caught(call, timeout=3)
        took = time.monotonic() - t0
        self.assertEqual(kind, "timeout", msg)
        self.assertIn("before the chain's timeout of 3s", msg)
        self.assertLess(took, 3.5)

    def test_stalled_cli_tool_is_a_catchable_timeout(self):
        self.assert_catchable_timeout("t.stall_cli()")

    def test_stalled_http_tool_is_a_catchable_timeout(self):
        self.assert_catchable_timeout("t.stall_http()")

    def test_stalled_mcp_tool_is_a_catchable_timeout(self):
        self.assert_catchable_timeout("hang.h_add(a=1, b=2)")

    # ---- 4. responses that are what they claim --------------------------------

    def test_json_type_with_unparseable_body(self):
        kind, msg = self.caught("t.bad_json()")
        self.assertEqual(kind, "tool_error")
        self.assertIn("labelled application/json; charset=utf-8 but its body (545 bytes) is not "
                      "JSON; it begins: <html><body>Service Unavailable</body></html>xxx", msg)
        self.assertTrue(msg.endswith("..."), msg)

    def test_other_types_are_text_and_json_suffixes_parse(self):
        self.assertEqual(self.caught("t.text()"), ["ok", "plain words"])
        self.assertEqual(self.caught("t.json()"), ["ok", {"ok": True}])
        self.assertEqual(self.caught("t.empty()"), ["ok", None])

    # ---- 7. the timed-out chain's message -------------------------------------

    def test_timeout_message_shows_the_timeout(self):
        r = self.client.chain("while True:\n    pass\n", timeout=1)
        self.assertEqual(r["error"]["kind"], "timeout")
        self.assertRegex(r["error"]["message"],
                         r"^chain exceeded its timeout of 1s after 1\.\ds and was killed$")
