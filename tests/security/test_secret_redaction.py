"""Secrets never reach a chain (issue 14, deliverable 5): no provider error,
result or traceback a chain gets contains a substituted variable value.

Every value below is a canary substituted into a call template — http (URL
to a dead loopback port, URL and header and Basic credential to a real
loopback server that echoes them, status error quoting the URL), cli (an
argument of a failing command and of a succeeding one), mcp stdio (env of a
stub server that shows it in a result, a tool error and a JSON-RPC error),
file (the path) — and each case asserts that the canary is absent from
everything the chain's answer holds (result, error, traceback, logs), that
`[redacted:NAME]` stands where it was, and that the call otherwise behaved
(the server got the real value, the command ran, the error is the expected
one).  Text tools substitute no variables, so they have no case."""
import json
import os

from tests.integration import http_fixture
from tests.integration.engine import ROOT, EngineTest
from tests.integration.test_providers import free_port

STUB = os.path.join(ROOT, "tests", "integration", "env_mcp_server.py")
CANARIES = {
    "DEAD_TOKEN": "CANARY-dead-5b1e77c2",
    "URL_TOKEN": "CANARY-url-91d0f4aa",
    "Q_TOKEN": "CANARY-query-3c8e2b19",
    "HDR_TOKEN": "CANARY-hdr-\"quoted\"-7a61",
    "BASIC_PW": "CANARY-basic-pw-e40c",
    "CLI_TOKEN": "CANARY-cli-02f7d5e9",
    "MCP_TOKEN": "CANARY-mcp-6d93ab0f",
    "FILE_DIR": "/tmp/CANARY-file-dir-b52c",
}


def text_manual(tools, protocol):
    return {"call_template_type": "text", "allowed_communication_protocols": [protocol],
            "content": json.dumps({"utcp_version": "1.0.1", "manual_version": "1.0.0",
                                   "tools": [{"name": n, "tool_call_template": t}
                                             for n, t in tools.items()]})}


def http(url, **kw):
    return dict({"call_template_type": "http", "http_method": "GET", "url": url}, **kw)


class SecretRedaction(EngineTest):
    @classmethod
    def setUpClass(cls):
        cls.http = http_fixture.Server()
        base = cls.http.base
        dead = "http://127.0.0.1:%d" % free_port()
        cls.dead = dead
        manuals = [
            dict(text_manual({
                "dead": http(dead + "/x/${DEAD_TOKEN}?k=${DEAD_TOKEN}"),
                "missing": http(base + "/nowhere/${URL_TOKEN}"),
                "query": http(base + "/echo/q?token=${Q_TOKEN}"),
                "header": http(base + "/echo/h", headers={"X-Secret": "${HDR_TOKEN}"}),
                "basic": http(base + "/basic", auth={"auth_type": "basic", "username": "svc",
                                                     "password": "${BASIC_PW}"}),
            }, "http"), name="web"),
            dict(text_manual({
                "fails": {"call_template_type": "cli", "commands": [
                    {"command": "echo \"login with ${CLI_TOKEN} refused\" >&2; exit 3"}]},
                "prints": {"call_template_type": "cli", "commands": [
                    {"command": "printf 'arg=%s' ${CLI_TOKEN}"}]},
            }, "cli"), name="sh"),
            {"name": "stub", "call_template_type": "mcp", "config": {"mcpServers": {
                "s": {"command": "/usr/bin/python3", "args": [STUB],
                      "env": {"STUB_TOKEN": "${MCP_TOKEN}"}}}}},
            dict(text_manual({"read": {"call_template_type": "file",
                                       "file_path": "${FILE_DIR}/nope.json"}}, "file"),
                 name="files"),
        ]
        cls.CONFIG = json.dumps({"engine": {"imports": "all"},  # traceback, for the chain
                                 "manual_call_templates": manuals, "variables": CANARIES})
        try:
            super().setUpClass()
        except Exception:
            cls.http.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.http.stop()

    def run_chain(self, code):
        r = self.client.chain(code, timeout=30)
        text = json.dumps(r)
        for name, value in CANARIES.items():
            for form in (value, json.dumps(value)[1:-1]):
                self.assertNotIn(form, text, "%s leaked to the chain: %s" % (name, text))
        return r

    def caught(self, call):
        """The chain catches the tool's error and returns (and prints)
        everything it has: message, repr, args, traceback."""
        r = self.run_chain(
            "import traceback\n"
            "try:\n"
            "    await %s\n"
            "except Exception as e:\n"
            "    tb = traceback.format_exc()\n"
            "    print(tb)\n"
            "    return {'str': str(e), 'repr': repr(e), 'args': [str(a) for a in e.args],"
            " 'tb': tb}\n"
            "return 'no error'\n" % call)
        self.assertIsNone(r["error"], r)
        self.assertIsInstance(r["result"], dict, r)
        return r["result"]["str"]

    def uncaught(self, call):
        r = self.run_chain("return await %s" % call)
        self.assertIsNotNone(r["error"], r)
        self.assertEqual(r["error"]["kind"], "tool_error", r)
        return r["error"]["message"] + r["error"].get("traceback", "")

    def ok(self, call):
        r = self.run_chain("return await %s" % call)
        self.assertIsNone(r["error"], r)
        return r["result"]

    # ---- http -----------------------------------------------------------

    def test_http_dead_port_url(self):
        for msg in (self.caught("web.dead()"), self.uncaught("web.dead()")):
            self.assertIn("[redacted:DEAD_TOKEN]", msg)
            self.assertIn(self.dead.split("//")[1], msg)  # still says where it failed

    def test_http_status_error_quoting_url_and_body(self):
        # the URL in the message and the server's body both hold the value
        msg = self.caught("web.missing()")
        self.assertIn("status 404", msg)
        self.assertRegex(msg, r"/nowhere/(\$\{URL_TOKEN\}|\[redacted:URL_TOKEN\]): status 404")
        self.assertIn("no such path /nowhere/[redacted:URL_TOKEN]", msg)
        self.assertIn("[redacted:URL_TOKEN]", self.uncaught("web.missing()"))

    def test_http_query_echoed(self):
        r = self.ok("web.query()")
        self.assertEqual(r["query"], {"token": ["[redacted:Q_TOKEN]"]})
        self.assertEqual(self.http.httpd.log[-1]["query"], "token=" + CANARIES["Q_TOKEN"])

    def test_http_header_echoed(self):
        r = self.ok("web.header()")
        self.assertEqual(r["secret"], "[redacted:HDR_TOKEN]")
        self.assertEqual(r["path"], "/echo/h")
        self.assertEqual(self.http.httpd.log[-1]["headers"]["X-Secret"], CANARIES["HDR_TOKEN"])

    def test_http_basic_credential_echoed(self):
        r = self.ok("web.basic()")
        self.assertEqual(r["authorization"], "Basic [redacted:BASIC_PW]")
        import base64
        self.assertEqual(self.http.httpd.log[-1]["headers"]["Authorization"],
                         "Basic " + base64.b64encode(
                             ("svc:" + CANARIES["BASIC_PW"]).encode()).decode())

    # ---- cli ------------------------------------------------------------

    def test_cli_failing_command_argument(self):
        for msg in (self.caught("sh.fails()"), self.uncaught("sh.fails()")):
            self.assertIn("status 3", msg)
            self.assertIn("login with [redacted:CLI_TOKEN] refused", msg)

    def test_cli_output_echoing_argument(self):
        self.assertEqual(self.ok("sh.prints()"), "arg=[redacted:CLI_TOKEN]")

    # ---- mcp stdio ------------------------------------------------------

    def test_mcp_env_in_result(self):
        r = self.ok("stub.s_env(mode='ok')")
        self.assertEqual(r["token"], "[redacted:MCP_TOKEN]")
        self.assertGreater(r["pid"], 0)

    def test_mcp_env_in_tool_error(self):
        for call in ("stub.s_env(mode='tool_error')", "stub.s_env(mode='rpc_error')"):
            msg = self.caught(call)
            self.assertRegex(msg, r"stub (failed|exploded)")
            self.assertIn("STUB_TOKEN=[redacted:MCP_TOKEN]", msg)
            self.assertIn("[redacted:MCP_TOKEN]", self.uncaught(call))

    # ---- file -----------------------------------------------------------

    def test_file_path_in_error(self):
        msg = self.caught("files.read()")
        self.assertIn("[redacted:FILE_DIR]/nope.json", msg)

    # ---- nothing else changes ---------------------------------------------

    def test_values_without_variables_untouched(self):
        r = self.run_chain("return await web.header()")
        self.assertEqual(r["result"]["host"], self.http.base.split("//")[1])
        self.assertEqual(r["result"]["method"], "GET")


if __name__ == "__main__":
    import unittest
    unittest.main()


class RegistrationErrors(EngineTest):
    """A failing discovery's message (to the registering caller and the log)
    carries no value substituted into the manual template."""

    CONFIG = json.dumps({"variables": CANARIES})

    def test_http_manual_url_to_dead_port(self):
        url = "http://127.0.0.1:%d/m/${DEAD_TOKEN}" % free_port()
        res = self.client.call_tool("register_manual", {"manual_call_template": {
            "name": "deadman", "call_template_type": "http", "http_method": "GET", "url": url}})
        self.assertTrue(res["isError"], res)
        text = json.dumps(res)
        self.assertNotIn(CANARIES["DEAD_TOKEN"], text)
        self.assertIn("[redacted:DEAD_TOKEN]", text)
        self.assertNotIn(CANARIES["DEAD_TOKEN"], self.engine.read_log())
