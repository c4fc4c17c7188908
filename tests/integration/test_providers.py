"""http, OpenAPI, MCP (stdio + streamable HTTP), cli, text and file providers
end to end through a real engine: manuals registered from real servers on
loopback (tests/integration/http_fixture.py) and the npm MCP reference
servers (installed into build/npm by `make test`), tools called from chains."""
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

from tests.integration import http_fixture
from tests.integration.engine import ROOT, EngineTest

NPM = os.path.join(ROOT, "build", "npm", "node_modules", "@modelcontextprotocol")
EVERYTHING = os.path.join(NPM, "server-everything", "dist", "index.js")
MEMORY = os.path.join(NPM, "server-memory", "dist", "index.js")
NODE = shutil.which("node") or "node"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited with %s" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server on port %d did not start" % port)


def children_matching(ppid, needle):
    """Pids of the engine's children whose command line contains needle."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % pid) as f:
                stat = f.read()
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == ppid and needle in cmd:
            out.append(int(pid))
    return out


class AllProviders(EngineTest):
    """One engine with a manual of every kind."""

    @classmethod
    def setUpClass(cls):
        for path in (EVERYTHING, MEMORY):
            if not os.path.exists(path):
                raise RuntimeError("%s missing: run `make npm-deps` (make test does)" % path)
        cls.http = http_fixture.Server()
        cls.mcp_port = free_port()
        cls.mcp_http = subprocess.Popen([NODE, EVERYTHING, "streamableHttp"],
                                        env=dict(os.environ, PORT=str(cls.mcp_port)),
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_port(cls.mcp_port, cls.mcp_http)
            cls.CONFIG = json.dumps(cls.config())
            cls.FILES = {
                "file-manual.json": json.dumps({"utcp_version": "1.0.1", "manual_version": "1.0.0",
                                                "tools": [{"name": "data", "tool_call_template": {
                                                    "call_template_type": "file",
                                                    "file_path": "data.json"}}]}),
                "data.json": json.dumps({"from": "file", "n": 7}),
            }
            super().setUpClass()
        except Exception:
            cls.stop_servers()
            raise

    @classmethod
    def config(cls):
        base = cls.http.base
        return {
            "manual_call_templates": [
                {"name": "api", "call_template_type": "http", "url": base + "/utcp"},
                {"name": "petstore", "call_template_type": "http", "url": base + "/openapi.json"},
                {"name": "ev", "call_template_type": "mcp", "config": {"mcpServers": {
                    "srv": {"command": NODE, "args": [EVERYTHING, "stdio"]}}}},
                {"name": "mem", "call_template_type": "mcp", "config": {"mcpServers": {
                    "m": {"command": NODE, "args": [MEMORY],
                          "env": {"MEMORY_FILE_PATH": "${MEMFILE}"}}}}},
                {"name": "evh", "call_template_type": "mcp", "config": {"mcpServers": {
                    "h": {"url": "http://127.0.0.1:%d/mcp" % cls.mcp_port}}}},
                {"name": "sh", "call_template_type": "text", "allowed_communication_protocols": ["cli"],
                 "content": json.dumps({"utcp_version": "1.0.1", "manual_version": "1.0.0", "tools": [
                     {"name": "upper", "tool_call_template": {"call_template_type": "cli", "commands": [
                         {"command": "printf '%s' UTCP_ARG_word_UTCP_END | tr a-z A-Z"}]}}]})},
                {"name": "files", "call_template_type": "file", "file_path": "file-manual.json"},
            ],
            "variables": {"api_SECRET_TOKEN": "s3cret", "petstore_API_KEY_1": http_fixture.API_KEY,
                          "MEMFILE": "/tmp/codemode-test-memory-%d.json" % os.getpid()},
        }

    @classmethod
    def stop_servers(cls):
        cls.http.stop()
        if cls.mcp_http.poll() is None:
            cls.mcp_http.terminate()
            cls.mcp_http.wait(10)
        try:
            os.unlink("/tmp/codemode-test-memory-%d.json" % os.getpid())
        except OSError:
            pass

    @classmethod
    def tearDownClass(cls):
        pid = cls.engine.proc.pid
        try:
            super().tearDownClass()
        finally:
            cls.stop_servers()
        # no orphan MCP servers after the engine exited
        time.sleep(0.2)
        leftover = []
        for p in os.listdir("/proc"):
            try:
                with open("/proc/%s/cmdline" % p, "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if MEMORY in cmd or (EVERYTHING in cmd and "stdio" in cmd):
                leftover.append(cmd)
        assert not leftover, "MCP servers left behind: %r" % leftover

    def ok(self, code, timeout=60):
        r = self.client.chain(code, timeout=timeout)
        self.assertIsNone(r["error"], r)
        return r["result"]

    # ---- acceptance ----------------------------------------------------

    def test_one_chain_every_provider(self):
        r = self.ok(
            "a = await api.echo(kind='k', payload={'x': 1}, q='v')\n"
            "b = await petstore.getPet(petId=5)\n"
            "c = await ev.srv_echo(message='hi')\n"
            "d = await evh.h_get_sum(a=2, b=3)\n"
            "e = await sh.upper(word='abc')\n"
            "f = await files.data()\n"
            "return {'http': a['body'], 'openapi': b['name'], 'stdio': c, 'streamable': d,"
            " 'cli': e, 'file': f}\n")
        self.assertEqual(json.loads(r["http"]), {"x": 1})
        self.assertEqual(r["openapi"], "pet5")
        self.assertEqual(r["stdio"], "Echo: hi")
        self.assertIn("5", r["streamable"])
        self.assertEqual(r["cli"], "ABC")
        self.assertEqual(r["file"], {"from": "file", "n": 7})

    # ---- http ---------------------------------------------------------------

    def test_http_argument_mapping(self):
        r = self.ok("return await api.echo(kind='a b/c', payload=[1, 'two'], X_Trace=None,"
                    " q='v', arr=[1, 2], obj={'k': 'v'})")
        self.assertEqual(r["method"], "POST")
        self.assertEqual(r["path"], "/echo/a%20b%2Fc")
        self.assertEqual(json.loads(r["body"]), [1, "two"])
        self.assertEqual(r["ctype"], "application/json")
        self.assertEqual(r["static"], "static-value")
        self.assertEqual(r["query"], {"q": ["v"], "arr": ["1", "2"], "obj": ['{"k":"v"}']})
        r = self.ok("return await api.echo(kind='k', **{'X-Trace': 't-1'})")
        self.assertEqual(r["trace"], "t-1")

    def test_http_missing_path_param(self):
        r = self.client.chain("return await api.echo(payload=1)")
        self.assertEqual(r["error"]["kind"], "tool_error")
        self.assertIn("missing path parameter 'kind'", r["error"]["message"])

    def test_http_form_and_text(self):
        r = self.ok("return await api.form(body={'a': 1, 'b': 'x y'})")
        self.assertEqual(r["body"], "a=1&b=x%20y")
        self.assertEqual(r["ctype"], "application/x-www-form-urlencoded")
        self.assertEqual(self.ok("return await api.text()"), "plain words")

    def test_http_status_error_has_status_and_bounded_excerpt(self):
        r = self.client.chain("return await api.fail()")
        self.assertEqual(r["error"]["kind"], "tool_error")
        msg = r["error"]["message"]
        self.assertIn("status 500", msg)
        self.assertIn("database exploded", msg)
        self.assertLess(len(msg), 800)

    def test_http_response_cap(self):
        r = self.client.chain("return await api.big()")
        self.assertEqual(r["error"]["kind"], "tool_error")
        self.assertIn("larger than", r["error"]["message"])

    def test_redirects(self):
        same = self.ok("return await api.redirect_same()")
        self.assertEqual(same["path"], "/echo/get")
        # same origin keeps credentials: the server got the value; the echo the
        # chain sees is redacted (secrets never reach a chain, engine/redact.c)
        self.assertEqual(same["secret"], "[redacted:SECRET_TOKEN]")
        got = [e for e in self.http.httpd.log if e["path"] == "/echo/get"][-1]
        self.assertEqual(got["headers"].get("X-Secret"), "s3cret")
        cross = self.ok("return await api.redirect_cross()")
        self.assertEqual(cross["path"], "/echo/cross")
        self.assertIsNone(cross["secret"])          # other origin: dropped
        r = self.client.chain("return await api.redirect_loop()")
        self.assertIn("more than 5 redirects", r["error"]["message"])

    def test_basic_auth(self):
        import base64
        r = self.ok("return await api.basic()")
        self.assertEqual(r["authorization"], "Basic " + base64.b64encode(b"u:p w").decode())

    def test_oauth2_token_cached_and_refreshed(self):
        self.assertEqual(self.ok("return await api.oauth()")["token"], "tok-1")
        self.assertEqual(self.ok("return await api.oauth()")["token"], "tok-1")  # cached
        self.assertEqual(self.http.httpd.tokens_issued, 1)
        self.http.httpd.tokens_issued += 1   # server rotated: the cached token gets 401
        self.http.httpd.tokens_issued -= 1
        with self.http.httpd.lock:
            self.http.httpd.tokens_issued = 5   # "tok-5" now expected, engine holds tok-1
        r = self.ok("return await api.oauth()")
        self.assertEqual(r["token"], "tok-6")    # 401 → token refetched once → success

    def test_concurrent_calls_overlap_at_the_server(self):
        self.http.httpd.max_active = 0
        r = self.ok("import asyncio\n"
                    "rs = await asyncio.gather(*[api.slow() for _ in range(10)])\n"
                    "return [x['slept_ms'] for x in rs]")
        self.assertEqual(r, [100] * 10)
        # the server saw the requests in flight together, not one after another
        self.assertGreaterEqual(self.http.httpd.max_active, 5)

    def test_connections_reused(self):
        n = len(self.http.httpd.log)
        self.ok("for _ in range(5):\n    await api.get_echo()\nreturn 1")
        ports = {e["port"] for e in self.http.httpd.log[n:]}
        self.assertLess(len(ports), 5, ports)

    def test_plain_http_to_non_loopback_refused(self):
        r = self.client.call_tool("register_manual", {"manual_call_template": {
            "name": "far", "call_template_type": "http", "url": "http://192.0.2.1/utcp"}})
        self.assertTrue(r["isError"])
        self.assertIn("loopback", r["structuredContent"]["error"]["message"])

    def test_document_that_is_neither_manual_nor_openapi(self):
        r = self.client.call_tool("register_manual", {"manual_call_template": {
            "name": "notmanual", "call_template_type": "http",
            "url": self.http.base + "/echo/get"}})
        self.assertTrue(r["isError"])
        self.assertIn("neither a UTCP manual", r["structuredContent"]["error"]["message"])
        self.assertNotIn("notmanual.", json.dumps(self.client.call_tool("list_tools")))

    # ---- OpenAPI ------------------------------------------------------------

    def test_openapi_tools_and_schemas(self):
        info = self.client.call_tool("tools_info", {"tool_names": ["petstore.getPet",
                                                                    "petstore.post_pets"]})
        tools = {t["name"]: t for t in info["structuredContent"]["tools"]}
        get = tools["petstore.getPet"]
        self.assertEqual(get["inputs"]["type"], "object")
        self.assertEqual(get["inputs"]["required"], ["petId"])
        # $refs stay references into the schema's own $defs, each definition once
        self.assertEqual(get["inputs"]["properties"]["petId"]["$ref"], "#/$defs/Id")
        self.assertEqual(get["inputs"]["$defs"]["Id"]["type"], "integer")
        self.assertEqual(get["tags"], ["pets"])
        out = get["outputs"]
        self.assertEqual(out["$ref"], "#/$defs/Pet")
        self.assertEqual(sorted(out["$defs"]), ["Owner", "Pet"])
        self.assertEqual(out["$defs"]["Pet"]["properties"]["owner"], {"$ref": "#/$defs/Owner"})
        pets = out["$defs"]["Owner"]["properties"]["pets"]["items"]
        self.assertEqual(pets, {"$ref": "#/$defs/Pet"})     # the cycle stays a reference
        post = tools["petstore.post_pets"]
        self.assertEqual(post["inputs"]["required"], ["body"])
        self.assertEqual(post["inputs"]["properties"]["body"]["$ref"], "#/$defs/Pet")
        self.assertEqual(post["inputs"]["$defs"]["Pet"]["required"], ["name"])
        # the Python interface renders the references as classes named after the
        # definitions; compact, the output stops one level down ...
        iface = self.client.call_tool("get_tool_interface", {"tool_name": "petstore.getPet"})
        text = iface["structuredContent"]["interface"]
        self.assertIn("class petstore_Pet(TypedDict, total=False)", text, text)
        self.assertIn("    owner: dict\n", text, text)
        self.assertIn("-> petstore_Pet:", text, text)
        # ... in full, every level (recursion: forward refs)
        iface = self.client.call_tool("get_tool_interface", {"tool_name": "petstore.getPet",
                                                             "detail": "full"})
        text = iface["structuredContent"]["interface"]
        self.assertIn("class petstore_Pet(TypedDict)", text, text)
        self.assertIn('owner: NotRequired["petstore_Owner"]', text, text)
        self.assertIn('pets: NotRequired[List["petstore_Pet"]]', text, text)
        self.assertIn("-> petstore_Pet:", text, text)
        compile(text, "<petstore>", "exec")
        keys = self.client.call_tool("get_required_keys_for_tool", {"tool_name": "petstore.getPet"})
        self.assertEqual(keys["structuredContent"]["required_variables"], ["API_KEY_1"])

    def test_openapi_calls(self):
        r = self.ok("return await petstore.getPet(petId=3, verbose=True)")
        self.assertEqual(r, {"id": 3, "name": "pet3", "verbose": ["true"]})
        r = self.ok("return await petstore.post_pets(body={'name': 'rex'})")
        self.assertEqual(r, {"created": {"name": "rex"}})

    # ---- MCP -----------------------------------------------------------------

    def test_mcp_stdio_results(self):
        r = self.ok("return [await ev.srv_get_sum(a=1, b=2), await ev.srv_echo(message='x')]")
        self.assertIn("3", r[0])
        self.assertEqual(r[1], "Echo: x")
        sc = self.ok("return await ev.srv_get_structured_content(location='New York')")
        self.assertIsInstance(sc, dict)
        self.assertIn("temperature", sc)

    def test_mcp_memory_server(self):
        r = self.ok(
            "await mem.m_create_entities(entities=[{'name': 'Ada', 'entityType': 'person',"
            " 'observations': ['wrote programs']}])\n"
            "g = await mem.m_read_graph()\n"
            "return g")
        names = [e["name"] for e in r["entities"]]
        self.assertIn("Ada", names)

    def test_mcp_streamable_http(self):
        r = self.ok("import asyncio\n"
                    "return await asyncio.gather(evh.h_echo(message='a'), evh.h_echo(message='b'))")
        self.assertEqual(r, ["Echo: a", "Echo: b"])

    def test_mcp_tool_error(self):
        # arguments that pass the inputs schema, refused by the server itself
        r = self.client.chain("return await ev.srv_get_resource_reference(resourceId=0)")
        self.assertEqual(r["error"]["kind"], "tool_error", r)
        self.assertIn("Invalid resourceId", r["error"]["message"])
        # arguments that do not: refused by the engine before the server sees them
        r = self.client.chain("return await ev.srv_get_sum(a='not a number')")
        self.assertEqual(r["error"]["kind"], "invalid_arguments", r)

    def test_mcp_kill_mid_chain_then_next_chain_works(self):
        self.ok("return await ev.srv_echo(message='warm')")
        pids = children_matching(self.engine.proc.pid, "server-everything")
        self.assertEqual(len(pids), 1, pids)

        def killer():
            time.sleep(1.5)
            os.kill(pids[0], signal.SIGKILL)
        t = threading.Thread(target=killer)
        t.start()
        try:
            r = self.client.chain(
                "try:\n"
                "    await ev.srv_trigger_long_running_operation(duration=20, steps=20)\n"
                "    return 'finished?'\n"
                "except ToolError as e:\n"
                "    return [e.kind, e.message]\n", timeout=30)
        finally:
            t.join()
        self.assertIsNone(r["error"], r)
        self.assertEqual(r["result"][0], "tool_error")
        self.assertIn("MCP server 'srv'", r["result"][1])
        self.assertEqual(self.ok("return await ev.srv_echo(message='again')"), "Echo: again")
        new = children_matching(self.engine.proc.pid, "server-everything")
        self.assertEqual(len(new), 1)
        self.assertNotEqual(new, pids)
