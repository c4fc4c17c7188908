"""The streamable HTTP transport (`codemode serve --http`) end to end: a real
engine on a loopback port, real chains in sandboxes.  Authentication (401 and
WWW-Authenticate; tokens hashed in the config and mapped to policy profiles
like socket peers), sessions (Mcp-Session-Id, DELETE, another caller's
session), SSE answers for chains with logs and progress, resumption with
Last-Event-ID, notifications/cancelled, DNS-rebinding checks, loopback-only
by default, bad input answered without harming the engine, and OAuth
resource-server mode against a loopback introspection endpoint."""
import base64
import hashlib
import http.client
import http.server
import json
import os
import subprocess
import threading
import time
import unittest
import urllib.parse

from tests.integration.engine import BIN, Engine, EngineTest, wait_port
from tests.integration.test_mcp_conformance import free_port

OPS_TOKEN, OTHER_TOKEN, STRANGER_TOKEN = "ops-secret-1", "other-secret-2", "stranger-secret-3"


def sha(token):
    return hashlib.sha256(token.encode()).hexdigest()


POLICY = """\
version: 1
profiles:
  ops:
    limits: {timeout_s: 60}
  other:
    limits: {timeout_s: 60}
"""
PORT = free_port()
CONFIG = json.dumps({
    "manual_call_templates": [],
    "engine": {
        "policy": {"file": "policy.yaml", "audit_log": "audit.jsonl",
                   "callers": [{"uid": 1000, "profile": "ops"}, {"uid": 2000, "profile": "other"}],
                   "default_profile": None},
        "http": {"listen": "127.0.0.1:%d" % PORT,
                 "tokens": [{"sha256": sha(OPS_TOKEN), "uid": 1000, "name": "ops"},
                            {"sha256": sha(OTHER_TOKEN), "uid": 2000},
                            {"sha256": sha(STRANGER_TOKEN), "uid": 3000}]},
    },
})
INIT = {"protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"}}


class Http:
    """One MCP client over HTTP (a new TCP connection per request)."""

    def __init__(self, port, token=None):
        self.port, self.token, self.session = port, token, None

    def headers(self, extra=None):
        h = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        if self.session:
            h["Mcp-Session-Id"] = self.session
        h.update(extra or {})
        return h

    def raw(self, method, body=None, headers=None, timeout=60):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        c.request(method, "/mcp", body=data, headers=self.headers(headers))
        return c, c.getresponse()

    def post(self, msg, headers=None):
        """The response and its JSON-RPC message (an SSE answer: its last event)."""
        c, r = self.raw("POST", msg, headers)
        if r.getheader("Content-Type") == "text/event-stream":
            events = sse_events(r)
            c.close()
            return r, events[-1][1]
        body = r.read()
        c.close()
        return r, (json.loads(body) if body else None)

    def initialize(self):
        r, body = self.post({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INIT})
        assert r.status == 200, (r.status, body)
        self.session = r.getheader("Mcp-Session-Id")
        return body

    def chain_stream(self, rid, code, progress=None):
        params = {"name": "call_tool_chain", "arguments": {"code": code}}
        if progress:
            params["_meta"] = {"progressToken": progress}
        return self.raw("POST", {"jsonrpc": "2.0", "id": rid, "method": "tools/call",
                                 "params": params})


def sse_events(resp, stop_after=None):
    """(id, data) of each SSE event until the stream ends (or stop_after events)."""
    events, ev_id, data = [], None, []
    while True:
        line = resp.readline()
        if not line:
            return events
        line = line.decode().rstrip("\r\n")
        if line.startswith("id: "):
            ev_id = line[4:]
        elif line.startswith("data: ") or line == "data:":
            data.append(line[6:])
        elif line == "":
            if ev_id is not None:
                text = "\n".join(data)
                events.append((ev_id, json.loads(text) if text.strip() else None))
                if stop_after and len(events) >= stop_after:
                    return events
            ev_id, data = None, []


class HttpTransport(EngineTest):
    CONFIG = CONFIG
    CONFIG_NAME = "config.json"
    FILES = {"policy.yaml": POLICY}

    @classmethod
    def ready(cls):
        wait_port(PORT, cls.engine.proc)

    def test_no_token_gets_401_with_a_bearer_challenge(self):
        r, body = Http(PORT).post({"jsonrpc": "2.0", "id": 1, "method": "ping"})
        self.assertEqual(r.status, 401)
        self.assertTrue(r.getheader("WWW-Authenticate").startswith("Bearer "))
        self.assertIn("engine.http.tokens", body["error"]["message"])
        r, body = Http(PORT, "wrong").post({"jsonrpc": "2.0", "id": 1, "method": "ping"})
        self.assertEqual(r.status, 401)
        self.assertIn('error="invalid_token"', r.getheader("WWW-Authenticate"))

    def test_token_identity_maps_to_its_policy_profile(self):
        for token, profile in ((OPS_TOKEN, "ops"), (OTHER_TOKEN, "other")):
            h = Http(PORT, token)
            h.initialize()
            r, body = h.post({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                              "params": {"name": "call_tool_chain",
                                         "arguments": {"code": "return 7"}}})
            self.assertEqual(r.status, 200)
            out = body["result"]["structuredContent"]
            self.assertEqual(out["result"], 7)
            self.assertEqual(out["stats"]["profile"], profile)
        # uid 3000 matches no caller entry and there is no default profile
        r, body = Http(PORT, STRANGER_TOKEN).post(
            {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INIT})
        self.assertEqual(body["error"]["code"], -32001)
        self.assertIn("uid 3000", body["error"]["message"])
        self.assertIsNone(r.getheader("Mcp-Session-Id"))

    def test_session_is_required_and_ends_with_delete(self):
        h = Http(PORT, OPS_TOKEN)
        r, body = h.post({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        self.assertEqual(r.status, 400)
        self.assertIn("Mcp-Session-Id", body["error"]["message"])
        h.initialize()
        self.assertEqual(len(h.session), 32)
        r, body = h.post({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        self.assertIn("call_tool_chain", [t["name"] for t in body["result"]["tools"]])
        # another caller cannot use this session
        other = Http(PORT, OTHER_TOKEN)
        other.session = h.session
        self.assertEqual(other.post({"jsonrpc": "2.0", "id": 3, "method": "ping"})[0].status, 404)
        c, r = h.raw("DELETE")
        self.assertEqual(r.status, 200)
        c.close()
        self.assertEqual(h.post({"jsonrpc": "2.0", "id": 4, "method": "ping"})[0].status, 404)

    def test_chain_streams_logs_and_progress_then_its_answer(self):
        h = Http(PORT, OPS_TOKEN)
        h.initialize()
        self.assertEqual(h.post({"jsonrpc": "2.0", "id": 2, "method": "logging/setLevel",
                                 "params": {"level": "info"}})[1]["result"], {})
        c, r = h.chain_stream(3, "import asyncio\nprint('one')\nawait asyncio.sleep(0.3)\n"
                                 "print('two')\nreturn 42", progress="tok")
        self.assertEqual(r.getheader("Content-Type"), "text/event-stream")
        events = sse_events(r)
        c.close()
        self.assertIsNone(events[0][1], "the first event primes the stream (no data)")
        msgs = [e[1] for e in events[1:]]
        logs = [m["params"]["data"] for m in msgs if m.get("method") == "notifications/message"]
        progress = [m["params"] for m in msgs if m.get("method") == "notifications/progress"]
        self.assertEqual(logs, ["one", "two"])
        self.assertEqual([p["progress"] for p in progress], [1, 2])
        self.assertEqual(progress[0]["progressToken"], "tok")
        self.assertEqual(msgs[-1]["id"], 3)
        self.assertEqual(msgs[-1]["result"]["structuredContent"]["result"], 42)
        self.assertEqual(len({e[0] for e in events}), len(events), "event ids are unique")

    def test_broken_stream_resumes_with_last_event_id(self):
        h = Http(PORT, OPS_TOKEN)
        h.initialize()
        h.post({"jsonrpc": "2.0", "id": 2, "method": "logging/setLevel",
                "params": {"level": "info"}})
        c, r = h.chain_stream(5, "import asyncio\nprint('first')\nawait asyncio.sleep(1)\n"
                                 "print('second')\nreturn 'done'")
        first = sse_events(r, stop_after=2)  # priming + 'first'
        c.close()  # the connection breaks mid-chain: not a cancellation
        self.assertEqual(first[1][1]["params"]["data"], "first")
        c, r = h.raw("GET", headers={"Last-Event-ID": first[1][0], "Accept": "text/event-stream"})
        self.assertEqual(r.status, 200)
        rest = sse_events(r)
        c.close()
        msgs = [e[1] for e in rest]
        self.assertEqual([m["params"]["data"] for m in msgs if m.get("method")], ["second"])
        self.assertEqual(msgs[-1]["result"]["structuredContent"]["result"], "done")
        # delivered: the stream is gone now
        c, r = h.raw("GET", headers={"Last-Event-ID": first[1][0], "Accept": "text/event-stream"})
        self.assertEqual(r.status, 404)
        c.close()

    def test_cancelled_request_ends_its_stream_without_an_answer(self):
        h = Http(PORT, OPS_TOKEN)
        h.initialize()
        c, r = h.chain_stream("long-1", "import asyncio\nawait asyncio.sleep(30)\nreturn 1")
        sse_events(r, stop_after=1)
        t0 = time.time()
        resp, _ = h.post({"jsonrpc": "2.0", "method": "notifications/cancelled",
                          "params": {"requestId": "long-1", "reason": "test"}})
        self.assertEqual(resp.status, 202)
        rest = sse_events(r)
        c.close()
        self.assertLess(time.time() - t0, 10)
        self.assertEqual([e for e in rest if e[1] and "id" in e[1]], [], "no answer is sent")
        self.assertIn("cancelled by the client", self.engine.read_log())
        deadline = time.time() + 10
        while time.time() < deadline:  # the chain's end is audited as cancelled
            with open(os.path.join(self.engine.dir, "audit.jsonl")) as f:
                ends = [json.loads(x) for x in f if '"chain_end"' in x]
            if any(e.get("outcome") == "cancelled" for e in ends):
                break
            time.sleep(0.1)
        self.assertIn("cancelled", [e.get("outcome") for e in ends])

    def test_dns_rebinding_host_and_origin_are_checked(self):
        h = Http(PORT, OPS_TOKEN)
        ping = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INIT}
        self.assertEqual(h.post(ping, {"Host": "evil.example.com"})[0].status, 403)
        self.assertEqual(h.post(ping, {"Origin": "http://evil.example.com"})[0].status, 403)
        self.assertEqual(h.post(ping, {"Origin": "http://localhost:3000"})[0].status, 200)

    def test_bad_input_is_refused_and_the_engine_keeps_serving(self):
        h = Http(PORT, OPS_TOKEN)
        h.initialize()
        r, body = h.post(b"{not json")
        self.assertEqual((r.status, body["error"]["code"]), (400, -32700))
        r, body = h.post(b"[1, 2]")
        self.assertIn("batches", body["error"]["message"])
        r, _ = h.post(b"x" * (4 << 20 + 1))
        self.assertEqual(r.status, 413)
        r, _ = h.post({"jsonrpc": "2.0", "id": 1, "method": "ping"}, {"Content-Type": "text/plain"})
        self.assertEqual(r.status, 415)
        r, _ = h.post({"jsonrpc": "2.0", "id": 1, "method": "ping"},
                      {"MCP-Protocol-Version": "1999-01-01"})
        self.assertEqual(r.status, 400)
        self.assertEqual(h.post({"jsonrpc": "2.0", "id": 9, "method": "ping"})[1]["result"], {})


class HttpLoopbackOnly(unittest.TestCase):
    def test_non_loopback_address_is_refused_at_start(self):
        eng = Engine(json.dumps({"manual_call_templates": []}), "config.json",
                     args=["--http", "0.0.0.0:%d" % free_port()])
        try:
            eng.start(wait=False)
            rc = eng.proc.wait(30)
            self.assertEqual(rc, 1)
            self.assertIn("engine.http.allow_remote", eng.read_log())
        finally:
            eng.stop()
            eng.cleanup()

    def test_stored_token_must_be_a_sha256(self):
        cfg = {"engine": {"http": {"listen": "127.0.0.1:1", "tokens": [{"sha256": "plain",
                                                                        "uid": 1}]}}}
        eng = Engine(json.dumps(cfg), "config.json")
        try:
            p = subprocess.run([BIN, "serve", "--socket", eng.socket, "--config",
                                eng.config_path], capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 1)
            self.assertIn("engine.http.tokens[0].sha256", p.stderr + p.stdout)
            self.assertIn("sha256sum", p.stderr + p.stdout)
        finally:
            eng.cleanup()


if __name__ == "__main__":
    unittest.main()


class SocketCancellation(EngineTest):
    """notifications/cancelled on the socket (and so through `codemode mcp`)."""

    def test_cancelled_chain_stops_without_an_answer(self):
        c = self.client
        c.send_raw((json.dumps({"jsonrpc": "2.0", "id": "slow", "method": "tools/call", "params": {
            "name": "call_tool_chain", "arguments": {
                "code": "import asyncio\nawait asyncio.sleep(30)\nreturn 1"}}}) + "\n").encode())
        time.sleep(0.5)
        t0 = time.time()
        c.send_raw((json.dumps({"jsonrpc": "2.0", "method": "notifications/cancelled",
                                "params": {"requestId": "slow", "reason": "test"}}) + "\n").encode())
        # the next answer on this connection is the ping's: the chain sent none
        c.send_raw(b'{"jsonrpc":"2.0","id":"after","method":"ping"}\n')
        msg = c.read_message()
        while msg.get("method"):
            msg = c.read_message()
        self.assertEqual(msg["id"], "after")
        deadline = time.time() + 10
        while time.time() < deadline:
            stats = c.request("codemode/stats")["result"]
            if stats.get("chains_failed", 0) >= 1:
                break
            time.sleep(0.1)
        self.assertLess(time.time() - t0, 10, "the chain stopped long before its 30 s")
        self.assertIn("cancelled by the client", self.engine.read_log())
        metrics = c.request("codemode/metrics")["result"]["text"]
        self.assertIn('codemode_chains_total{outcome="cancelled"}', metrics)


class Introspection(http.server.BaseHTTPRequestHandler):
    """RFC 7662 introspection on loopback: a few known tokens."""
    RESOURCE = None
    calls = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        form = urllib.parse.parse_qs(body)
        token = form.get("token", [""])[0]
        Introspection.calls.append((self.headers.get("Authorization"), token))
        now = int(time.time())
        info = {
            "good": {"active": True, "aud": self.RESOURCE, "sub": "alice", "scope": "mcp other",
                     "exp": now + 600},
            "wrong-aud": {"active": True, "aud": "https://elsewhere/mcp", "sub": "alice",
                          "scope": "mcp"},
            "expired": {"active": True, "aud": [self.RESOURCE], "sub": "alice", "scope": "mcp",
                        "exp": now - 5},
            "no-scope": {"active": True, "aud": self.RESOURCE, "sub": "alice", "scope": "other"},
            "stranger": {"active": True, "aud": self.RESOURCE, "sub": "mallory", "scope": "mcp"},
        }.get(token, {"active": False})
        data = json.dumps(info).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


OAUTH_PORT = free_port()


class HttpOAuth(EngineTest):
    """engine.http.oauth: protected-resource metadata, WWW-Authenticate pointing at it, and
    bearer tokens checked by introspection (active, expiry, audience, scope, subject)."""
    CONFIG_NAME = "config.json"

    @classmethod
    def setUpClass(cls):
        cls.resource = "http://127.0.0.1:%d/mcp" % OAUTH_PORT
        Introspection.RESOURCE = cls.resource
        cls.auth = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Introspection)
        threading.Thread(target=cls.auth.serve_forever, daemon=True).start()
        issuer = "http://127.0.0.1:%d" % cls.auth.server_address[1]
        os.environ["CM_TEST_INTROSPECT_SECRET"] = "s3cr3t"
        cls.CONFIG = json.dumps({"manual_call_templates": [], "engine": {"http": {
            "listen": "127.0.0.1:%d" % OAUTH_PORT,
            "oauth": {"resource": cls.resource, "issuer": issuer,
                      "introspection_url": issuer + "/introspect", "client_id": "codemode",
                      "client_secret_env": "CM_TEST_INTROSPECT_SECRET", "scopes": ["mcp"],
                      "subjects": [{"sub": "alice", "uid": 1000}]}}}})
        super().setUpClass()

    @classmethod
    def ready(cls):
        wait_port(OAUTH_PORT, cls.engine.proc)

    @classmethod
    def cleanup_side(cls):
        cls.auth.shutdown()
        cls.auth.server_close()

    def test_metadata_and_challenge(self):
        c = http.client.HTTPConnection("127.0.0.1", OAUTH_PORT, timeout=10)
        c.request("GET", "/.well-known/oauth-protected-resource/mcp")
        meta = json.loads(c.getresponse().read())
        c.close()
        self.assertEqual(meta["resource"], self.resource)
        self.assertEqual(meta["authorization_servers"],
                         ["http://127.0.0.1:%d" % self.auth.server_address[1]])
        self.assertEqual(meta["scopes_supported"], ["mcp"])
        r, _ = Http(OAUTH_PORT).post({"jsonrpc": "2.0", "id": 1, "method": "ping"})
        self.assertEqual(r.status, 401)
        www = r.getheader("WWW-Authenticate")
        self.assertIn('resource_metadata="http://127.0.0.1:%d/.well-known/oauth-protected-resource'
                      '/mcp"' % OAUTH_PORT, www)
        self.assertIn('scope="mcp"', www)

    def test_introspected_tokens(self):
        h = Http(OAUTH_PORT, "good")
        h.initialize()
        self.assertEqual(h.post({"jsonrpc": "2.0", "id": 2, "method": "ping"})[1]["result"], {})
        auth, token = Introspection.calls[-1]
        self.assertEqual(token, "good")
        self.assertEqual(auth, "Basic " + base64.b64encode(b"codemode:s3cr3t").decode())
        for token, status, why in (("wrong-aud", 401, "audience"), ("expired", 401, "expired"),
                                   ("bogus", 401, "not active"), ("no-scope", 403, "scope mcp"),
                                   ("stranger", 403, "mallory")):
            r, body = Http(OAUTH_PORT, token).post(
                {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INIT})
            self.assertEqual(r.status, status, token)
            self.assertIn(why, body["error"]["message"], token)
            self.assertIn("error=", r.getheader("WWW-Authenticate"), token)
