"""The engine's MCP client authorizing itself (OAuth, providers/mcp_oauth.c)
against a loopback MCP server whose tools/call needs a bearer token: the
token comes from client credentials on the host, is renewed when it
expires, and what a chain sees never holds the client secret — not even
when the authorization server echoes it in an error (scrubbed by the
client, and the engine's redaction behind it) — nor the token.  The authorization server's URL obeys the same
rules as every provider fetch (no plain http off loopback), and a 401 from
a server without an `oauth` entry says what to configure; concurrent first
calls share one authorization.  (The flows
themselves are judged by the conformance suite: tests/conformance.)"""
import base64
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.integration.engine import EngineTest

CLIENT_ID = "cm-client"
GOOD, BAD = "s3cr3t-good-value", "s3cr3t-wrong-value"


class Fixture(BaseHTTPRequestHandler):
    """/mcp/<name>: an MCP server; /.well-known/...: its PRM and the
    authorization server's metadata; /token: client credentials, Basic."""
    protocol_version = "HTTP/1.1"
    state = None  # set per server: tokens issued, token requests

    def log_message(self, *args):
        pass

    def reply(self, status, body=None, headers=None):
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def base(self):
        return "http://127.0.0.1:%d" % self.server.server_address[1]

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        prm = "/.well-known/oauth-protected-resource/mcp/"
        if path.startswith(prm):
            name = path[len(prm):]
            issuer = "http://192.0.2.1" if name == "far" else self.base()
            return self.reply(200, {"resource": self.base() + "/mcp/" + name,
                                    "authorization_servers": [issuer]})
        if path == "/.well-known/oauth-authorization-server":
            return self.reply(200, {
                "issuer": self.base(), "token_endpoint": self.base() + "/token",
                "grant_types_supported": ["client_credentials"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic"]})
        return self.reply(405 if path.startswith("/mcp/") else 404)

    def body(self):
        return self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()

    def do_POST(self):
        path = urllib.parse.urlsplit(self.path).path
        if path == "/token":
            return self.token(urllib.parse.parse_qs(self.body()))
        if path.startswith("/mcp/"):
            return self.mcp(path[len("/mcp/"):], json.loads(self.body()))
        return self.reply(404)

    def token(self, form):
        st = self.state
        cid, _, secret = base64.b64decode(
            self.headers.get("Authorization", "Basic ")[6:]).decode().partition(":")
        st["token_requests"].append({"grant": form.get("grant_type"), "client": cid,
                                     "resource": form.get("resource")})
        if (cid, urllib.parse.unquote(secret)) != (CLIENT_ID, GOOD):
            # a careless authorization server: it echoes what it was sent
            return self.reply(401, {"error": "invalid_client",
                                    "error_description": "bad secret %s" % secret})
        st["issued"].append("tok-%d" % (len(st["issued"]) + 1))
        return self.reply(200, {"access_token": st["issued"][-1], "token_type": "Bearer",
                                "expires_in": 2})

    def mcp(self, name, msg):
        method, rid = msg.get("method"), msg.get("id")
        if rid is None:
            return self.reply(202)
        if method == "initialize":
            return self.reply(200, {"jsonrpc": "2.0", "id": rid, "result": {
                "protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                "serverInfo": {"name": "oauth-fixture", "version": "1"}}})
        if method == "tools/list":
            return self.reply(200, {"jsonrpc": "2.0", "id": rid, "result": {"tools": [
                {"name": "whoami", "inputSchema": {"type": "object"}}]}})
        if method != "tools/call":  # no resources or prompts (discovery asks)
            return self.reply(200, {"jsonrpc": "2.0", "id": rid, "error": {
                "code": -32601, "message": "method not found"}})
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.state["issued"][-1:]:
            return self.reply(401, {"error": "invalid_token"}, {
                "WWW-Authenticate": 'Bearer resource_metadata="%s"' % (
                    self.base() + "/.well-known/oauth-protected-resource/mcp/" + name)})
        self.state["calls"].append(auth[7:])
        return self.reply(200, {"jsonrpc": "2.0", "id": rid, "result": {
            "content": [{"type": "text", "text": "hello"}]}})


class McpOAuthClient(EngineTest):
    @classmethod
    def setUpClass(cls):
        cls.state = {"issued": [], "token_requests": [], "calls": []}
        handler = type("H", (Fixture,), {"state": cls.state})
        cls.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        cls.thread = threading.Thread(target=cls.httpd.serve_forever, daemon=True)
        cls.thread.start()
        base = "http://127.0.0.1:%d/mcp/" % cls.httpd.server_address[1]

        def manual(name, secret=None):
            srv = {"url": base + name}
            if secret:
                srv["oauth"] = {"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                "client_secret": "${%s}" % secret}
            return {"name": name, "call_template_type": "mcp",
                    "config": {"mcpServers": {"srv": srv}}}
        cls.CONFIG = json.dumps({
            "variables": {"GOOD_SECRET": GOOD, "BAD_SECRET": BAD},
            "manual_call_templates": [manual("good", "GOOD_SECRET"), manual("bad", "BAD_SECRET"),
                                      manual("far", "GOOD_SECRET"), manual("many", "GOOD_SECRET"),
                                      manual("plain")]})
        super().setUpClass()

    @classmethod
    def cleanup_side(cls):
        cls.httpd.shutdown()
        cls.httpd.server_close()

    def assert_no_secret(self, r):
        text = json.dumps(r)
        for s in (GOOD, BAD, base64.b64encode(("%s:%s" % (CLIENT_ID, BAD)).encode()).decode()):
            self.assertNotIn(s, text)
        for tok in self.state["issued"]:
            self.assertNotIn('"%s"' % tok, text)

    def test_client_credentials_token_obtained_on_401_and_renewed(self):
        r1 = self.client.chain("return await good.srv_whoami()")
        time.sleep(1.5)  # the token (expires_in 2) is renewed 1 s early
        r2 = self.client.chain("return await good.srv_whoami()")
        for r in (r1, r2):
            self.assertIsNone(r["error"], r)
            self.assertEqual(r["result"], "hello")
            self.assert_no_secret(r)
        good = [t for t in self.state["token_requests"] if t["client"] == CLIENT_ID]
        self.assertGreaterEqual(len(good), 2, self.state)
        self.assertEqual(good[0]["grant"], ["client_credentials"])
        self.assertTrue(good[0]["resource"][0].endswith("/mcp/good"), good[0])
        self.assertEqual(len(set(self.state["calls"][-2:])), 2, self.state)  # a new token

    def test_concurrent_first_calls_share_one_authorization(self):
        r = self.client.chain("import asyncio\n"
                              "return await asyncio.gather(*[many.srv_whoami() for _ in range(8)])")
        self.assertIsNone(r["error"], r)
        self.assertEqual(r["result"], ["hello"] * 8)
        many = [t for t in self.state["token_requests"] if t["resource"][0].endswith("/many")]
        self.assertEqual(len(many), 1, self.state["token_requests"])

    def test_failing_token_request_keeps_the_secret_out_of_the_chain(self):
        r = self.client.chain("return await bad.srv_whoami()")
        self.assertIsNotNone(r["error"])
        msg = r["error"]["message"]
        self.assertIn("token endpoint", msg)
        self.assertIn("invalid_client", msg)
        self.assertIn("bad secret [redacted", msg)  # the echo, redacted
        self.assert_no_secret(r)

    def test_authorization_server_url_obeys_the_provider_url_rules(self):
        r = self.client.chain("return await far.srv_whoami()")
        self.assertIsNotNone(r["error"])
        self.assertIn("192.0.2.1", r["error"]["message"])
        self.assertIn("loopback", r["error"]["message"])
        self.assert_no_secret(r)

    def test_401_without_oauth_says_what_to_configure(self):
        r = self.client.chain("return await plain.srv_whoami()")
        self.assertIsNotNone(r["error"])
        self.assertIn("`oauth`", r["error"]["message"])
