"""Agent surface (issue 7): Python interfaces from JSON Schema, search with
synonyms, in-chain introspection, agent prompt, `codemode run --follow`,
`codemode tools`, and `codemode mcp` over stdio (isError, streamed logs)."""
import json
import os
import subprocess
import sys
import tempfile

from tests.integration.engine import BIN, EngineTest


def tool(name, description="", inputs=None, outputs=None, tags=None, command="echo '{}'"):
    return {"name": name, "description": description, "tags": tags or [],
            "inputs": inputs or {"type": "object", "properties": {}},
            "outputs": outputs or {},
            "tool_call_template": {"call_template_type": "cli", "commands": [{"command": command}]}}


def manual(name, tools):
    return {"name": name, "call_template_type": "text", "allowed_communication_protocols": ["cli"],
            "content": json.dumps({"utcp_version": "1.0.1", "tools": tools})}


NODE = {"type": "object", "description": "A tree node \"quoted\"\nsecond line \\ backslash",
        "properties": {"value": {"type": "integer"},
                       "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
                       "parent": {"anyOf": [{"$ref": "#/$defs/Node"}, {"type": "null"}]}},
        "required": ["value"]}

CORPUS_INPUTS = {
    "type": "object",
    "$defs": {"Node": NODE, "Alias": {"$ref": "#/$defs/Alias"}},
    "properties": {
        "root": {"$ref": "#/$defs/Node"},
        "loop": {"$ref": "#/$defs/Alias"},
        "missing": {"$ref": "#/$defs/Nope"},
        "remote": {"$ref": "https://example.invalid/schema.json"},
        "content-type": {"type": "string", "description": "non-identifier key"},
        "class": {"type": "string", "enum": ["a", "b\"c", "x\ny"]},
        "__private": {"type": "integer"},
        "mode": {"const": "fast"},
        "level": {"enum": [1, 2, None, True]},
        "weird_enum": {"enum": [1.5, {"a": 1}]},
        "either": {"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "object",
                   "properties": {"k-1": {"type": "boolean"}}}]},
        "one": {"oneOf": [{"type": "array", "items": {"type": "number"}}, {"type": "null"}]},
        "merged": {"allOf": [{"type": "object", "properties": {"a": {"type": "string"}},
                              "required": ["a"]},
                             {"type": "object", "properties": {"b": {"type": "integer"}}}]},
        "multi": {"type": ["string", "null", "integer"]},
        "maybe": {"type": "string", "nullable": True},
        "nested": {"type": "object", "properties": {"deep": {"type": "object", "properties": {
            "deeper": {"type": "array", "items": {"type": "object", "properties": {
                "leaf": {"type": "string", "description": "\"\"\" triple quotes '''"}}}}}}}},
        "dict": {"type": "object", "additionalProperties": {"type": "integer"}},
        "free": {},
        "lambda": {"type": "boolean"},
        "ünïcode": {"type": "string"},
        "List": {"type": "string"},
    },
    "required": ["root", "content-type", "class"],
}


class Interfaces(EngineTest):
    CONFIG = json.dumps({"manual_call_templates": [
        manual("corpus", [
            tool("everything", "All the schema features.\nSecond \"line\".", CORPUS_INPUTS,
                 {"type": "object", "properties": {"ok": {"type": "boolean"}}}),
            tool("get", "get from corpus", {"type": "object", "properties": {"id": {"type": "string"}}}),
            tool("not-an-object", "inputs is not an object schema", {"type": "string"}),
            tool("getPr", "camel", {"type": "object", "properties": {"x": {"type": "string"}}}),
            tool("get_pr", "snake", {"type": "object", "properties": {"x": {"type": "integer"}}}),
        ]),
        manual("other", [tool("get", "get from other",
                              {"type": "object", "properties": {"id": {"type": "integer"}}})]),
        manual("github", [tool("get_pull_request", "Fetch a PR by number", tags=["git"],
                               inputs={"type": "object", "properties": {
                                   "pull_number": {"type": "integer"}}}),
                          tool("list_issues", "List repository issues")]),
    ]}, indent=1)
    CONFIG_NAME = "config.json"

    def interfaces(self):
        res = self.client.call_tool("get_all_tools_python_interfaces")
        self.assertFalse(res["isError"], res)
        return res["structuredContent"]["interfaces"]

    def compile_and_import(self, text):
        """compile() and import in a fresh interpreter that has only typing."""
        compile(text, "<interfaces>", "exec")
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "generated_tools.py"), "w") as f:
                f.write(text)
            probe = ("import sys, typing\nsys.path.insert(0, %r)\nimport generated_tools as g\n" % d +
                     "names = [n for n in dir(g) if n.endswith(('Input', 'Output', 'Namespace'))]\n"
                     "for n in names:\n"
                     "    obj = getattr(g, n)\n"
                     "    if hasattr(obj, '__annotations__') and not n.endswith('Namespace'):\n"
                     "        typing.get_type_hints(obj, vars(g))\n"
                     "print(len(names))\n")
            out = subprocess.run([sys.executable, "-I", "-S", "-c", probe], cwd=d, env={"PYTHONPATH": d},
                                 capture_output=True, text=True, timeout=60)
            self.assertEqual(out.returncode, 0, out.stderr + "\n" + text)
            return out.stdout

    def test_corpus_compiles_and_imports(self):
        text = self.interfaces()
        self.compile_and_import(text)
        ns = {}
        exec(compile(text, "<interfaces>", "exec"), ns)
        node = ns["corpus_Node"]  # a $ref'd definition: one class the manual's tools share
        hints = __import__("typing").get_type_hints(node, ns)
        self.assertIn("children", hints)
        self.assertEqual(node.__required_keys__, frozenset({"value"}))
        inp = ns["corpus_EverythingInput"]
        self.assertIn("content-type", inp.__annotations__)  # functional form kept the key
        self.assertIn("__private", inp.__annotations__)     # not name-mangled
        self.assertEqual(inp.__required_keys__, frozenset({"root", "content-type", "class"}))
        self.assertIn('Literal["a", "b\\"c", "x\\ny"]', text)
        self.assertIn('Literal["fast"]', text)
        self.assertIn("Literal[1, 2, None, True]", text)
        self.assertIn("Union[str, None, int]", text)
        self.assertIn("Optional[str]", text)
        self.assertIn("Dict[str, int]", text)
        # the compact text says the first sentence; the whole tool (every parameter in the
        # Access line, whole descriptions) is detail "full"
        full = self.client.call_tool("get_tool_interface", {"tool_name": "corpus.everything",
                                                            "detail": "full"})
        full = full["structuredContent"]["interface"]
        self.compile_and_import(full)
        self.assertIn('Access: await corpus.everything(root=..., loop=..., missing=..., remote=..., '
                      '**{\\"content-type\\": ...}', full)
        self.assertNotIn("Access: ", text)
        merged = [k for k in ns if k.startswith("corpus_EverythingInputMerged")]
        self.assertTrue(merged)
        self.assertEqual(ns[merged[0]].__required_keys__, frozenset({"a"}))

    def test_same_tool_name_in_two_manuals_distinct_classes(self):
        text = self.interfaces()
        self.assertIn("class corpus_GetInput(TypedDict):", text)
        self.assertIn("class other_GetInput(TypedDict):", text)
        ns = {}
        exec(compile(text, "<i>", "exec"), ns)
        import typing
        self.assertEqual(ns["corpus_GetInput"].__annotations__["id"], typing.NotRequired[str])
        self.assertEqual(ns["other_GetInput"].__annotations__["id"], typing.NotRequired[int])
        # getPr and get_pr both Pascal-case to GetPr: still two classes
        self.assertIn("class corpus_GetPrInput(TypedDict):", text)
        self.assertIn("class corpus_GetPrInput2(TypedDict):", text)

    def test_per_tool_interface_by_utcp_or_access_name(self):
        a = self.client.call_tool("get_tool_interface", {"tool_name": "corpus.not-an-object"})
        b = self.client.call_tool("get_tool_interface", {"tool_name": "corpus.not_an_object"})
        self.assertFalse(a["isError"], a)
        self.assertEqual(a["structuredContent"]["interface"], b["structuredContent"]["interface"])
        self.compile_and_import(a["structuredContent"]["interface"])
        bad = self.client.call_tool("get_tool_interface", {"tool_name": "nope.nothing"})
        self.assertTrue(bad["isError"])

    def test_chain_introspection_matches_engine(self):
        index = self.client.call_tool("get_all_tools_python_interfaces", {"detail": "index"})
        text = index["structuredContent"]["interfaces"]
        one = self.client.call_tool("get_tool_interface", {"tool_name": "github.get_pull_request"})
        r = self.client.chain(
            "i = get_tool_interface('github.get_pull_request')\n"
            "assert i == __get_tool_interface('github.get_pull_request')\n"
            "return {'same': interfaces == __interfaces, 'text': interfaces, 'one': i,\n"
            "        'has_github': 'namespace github' in __interfaces,\n"
            "        'has_slack': 'namespace slack' in __interfaces,\n"
            "        'found': [t['access_name'] for t in search_tools('pull request', 3)],\n"
            "        'awaited': [t['access_name'] for t in await search_tools('PR', limit=1)],\n"
            "        'entry': search_tools('PR', 1)[0]}")
        self.assertIsNone(r["error"], r)
        res = r["result"]
        self.assertTrue(res["same"])
        # `interfaces` is the compact index, the engine's detail "index"; one tool's text
        # is the engine's get_tool_interface
        self.assertEqual(res["text"], text)
        self.assertEqual(res["one"], one["structuredContent"]["interface"])
        self.assertIn("#   github.get_pull_request(pull_number: int = ...) -> Any  # Fetch a PR by number", text)
        compile(text, "<index>", "exec")
        self.assertEqual(sorted(res["entry"]), ["access_name", "signature", "summary"])
        self.assertTrue(res["has_github"])
        self.assertFalse(res["has_slack"])
        self.assertIn("async def get_pull_request", res["one"])
        self.assertEqual(res["found"][0], "github.get_pull_request")
        self.assertEqual(res["awaited"], ["github.get_pull_request"])

    def test_chain_unknown_interface_is_clear_error(self):
        r = self.client.chain("return get_tool_interface('x.y')")
        self.assertEqual(r["error"]["kind"], "exception")
        self.assertIn("unknown tool 'x.y'", r["error"]["message"])

    def test_search_synonyms_and_determinism(self):
        res = self.client.call_tool("search_tools", {"task_description": "pull request", "limit": 5})
        names = [t["access_name"] for t in res["structuredContent"]["tools"]]
        self.assertEqual(names[0], "github.get_pull_request")
        res2 = self.client.call_tool("search_tools", {"task_description": "repo issues", "limit": 5,
                                                      "detail": "full"})
        self.assertEqual(res2["structuredContent"]["tools"][0]["name"], "github.list_issues")
        # a query that is a tool's name finds that tool first
        res3 = self.client.call_tool("search_tools", {"task_description": "github.list_issues"})
        self.assertEqual(res3["structuredContent"]["tools"][0]["access_name"], "github.list_issues")
        # ties broken by name, the same every time
        a = self.client.call_tool("search_tools", {"task_description": "get", "limit": 10})
        b = self.client.call_tool("search_tools", {"task_description": "get", "limit": 10})
        self.assertEqual(a["structuredContent"], b["structuredContent"])

    def test_tools_cli_and_prompt(self):
        out = subprocess.run([BIN, "tools", "--socket", self.engine.socket, "interfaces"],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout, self.interfaces())
        out = subprocess.run([BIN, "tools", "--socket", self.engine.socket, "search", "PR"],
                             capture_output=True, text=True, timeout=30)
        self.assertIn("github.get_pull_request", out.stdout.splitlines()[0])
        out = subprocess.run([BIN, "tools", "--socket", self.engine.socket, "interface", "x.y"],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 1)
        prompt = subprocess.run([BIN, "prompt"], capture_output=True, text=True, timeout=30).stdout
        for needle in ("search_tools", "manual.tool", "await", "return", "print", "ToolError",
                       "timeout", "__interfaces"):
            self.assertIn(needle, prompt)
        res = self.client.call_tool("agent_prompt")
        self.assertEqual(res["structuredContent"]["prompt"], prompt)

    def test_reregistering_a_manual_regenerates_its_interfaces(self):
        m = manual("temp", [tool("t", "v1", {"type": "object", "properties": {"a": {"type": "string"}}})])
        self.assertFalse(self.client.call_tool("register_manual", {"manual_call_template": m})["isError"])
        self.assertIn("class temp_TInput", self.interfaces())
        self.client.call_tool("deregister_manual", {"manual_name": "temp"})
        self.assertNotIn("temp_TInput", self.interfaces())
        m = manual("temp", [tool("t", "v2", {"type": "object", "properties": {"b": {"type": "integer"}}})])
        self.client.call_tool("register_manual", {"manual_call_template": m})
        text = self.interfaces()
        self.assertIn("    b: NotRequired[int]", text)
        self.client.call_tool("deregister_manual", {"manual_name": "temp"})


class Streaming(EngineTest):
    CONFIG = json.dumps({"manual_call_templates": []})
    CONFIG_NAME = "config.json"

    def test_run_follow_streams_lines_before_the_end(self):
        code = "import asyncio\nprint('first')\nawait asyncio.sleep(1.5)\nprint('second')\nreturn 7"
        p = subprocess.Popen([BIN, "run", "--follow", "--socket", self.engine.socket, "-"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            p.stdin.write(code)
            p.stdin.close()
            first = p.stdout.readline()
            self.assertEqual(first, "first\n")
            self.assertIsNone(p.poll())  # still running: the line came while the chain ran
            rest = p.stdout.read()
            self.assertEqual(p.wait(30), 0)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertTrue(rest.startswith("second\n"))
        self.assertEqual(json.loads(rest[len("second\n"):])["result"], 7)

    def test_mcp_logging_and_progress_notifications(self):
        c = self.engine.client()
        try:
            self.assertEqual(c.request("logging/setLevel", {"level": "info"})["result"], {})
            bad = c.request("logging/setLevel", {"level": "loud"})
            self.assertEqual(bad["error"]["code"], -32602)
            c.send_raw(json.dumps({"jsonrpc": "2.0", "id": 99, "method": "tools/call", "params": {
                "name": "call_tool_chain", "arguments": {"code": "print('a')\nprint('b')\nreturn 1"},
                "_meta": {"progressToken": "tok"}}}).encode() + b"\n")
            seen = []
            while True:
                m = c.read_message()
                if m.get("id") == 99:
                    break
                seen.append(m)
            msgs = [m["params"]["data"] for m in seen if m["method"] == "notifications/message"]
            prog = [(m["params"]["progress"], m["params"]["message"]) for m in seen
                    if m["method"] == "notifications/progress"]
            self.assertEqual(msgs, ["a", "b"])
            self.assertEqual(prog, [(1, "a"), (2, "b")])
            self.assertTrue(all(m["params"].get("progressToken", "tok") == "tok" for m in seen))
        finally:
            c.close()


class McpStdio(EngineTest):
    CONFIG = json.dumps({"manual_call_templates": []})
    CONFIG_NAME = "config.json"

    def run_mcp(self, args, messages, env=None):
        lines = "".join(json.dumps(m) + "\n" for m in messages)
        out = subprocess.run([BIN, "mcp"] + args, input=lines, capture_output=True, text=True,
                             timeout=120, env=env)
        self.assertEqual(out.returncode, 0, out.stderr)
        return [json.loads(l) for l in out.stdout.splitlines()], out.stderr

    def session(self, *calls):
        msgs = [{"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
            {"jsonrpc": "2.0", "method": "notifications/initialized"}]
        for i, (name, args) in enumerate(calls, 1):
            msgs.append({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                         "params": {"name": name, "arguments": args}})
        return msgs

    def test_bridge_failed_chain_is_error(self):
        out, _ = self.run_mcp(["--socket", self.engine.socket], self.session(
            ("call_tool_chain", {"code": "raise ValueError('boom')"}),
            ("call_tool_chain", {"code": "return 2"})))
        by_id = {m["id"]: m for m in out if "id" in m}
        self.assertIn("logging", by_id[0]["result"]["capabilities"])
        self.assertTrue(by_id[1]["result"]["isError"])
        self.assertIn("ValueError: boom", by_id[1]["result"]["content"][0]["text"])
        self.assertFalse(by_id[2]["result"]["isError"])

    def test_embedded_engine_honours_utcp_config_file(self):
        d = tempfile.mkdtemp(prefix="codemode-mcp-test-")
        cfg = os.path.join(d, "utcp.json")
        with open(cfg, "w") as f:
            json.dump({"manual_call_templates": [manual("emb", [tool("hello", "say hello",
                       command="echo '{\"hi\": 1}'")])],
                       "engine": {"rootfs": self.engine_rootfs()}}, f)
        env = dict(os.environ, UTCP_CONFIG_FILE=cfg)
        out, err = self.run_mcp([], self.session(("call_tool_chain", {"code": "return await emb.hello()"}),
                                                ("list_tools", {})), env=env)
        by_id = {m["id"]: m for m in out if "id" in m}
        self.assertEqual(by_id[1]["result"]["structuredContent"]["result"], {"hi": 1}, err)
        self.assertEqual(by_id[2]["result"]["structuredContent"]["tools"], ["emb.hello"])
        self.assertFalse(any(n.startswith("codemode-mcp-") for n in os.listdir("/tmp")
                             if os.path.exists(os.path.join("/tmp", n, "engine.sock"))))
        import shutil
        shutil.rmtree(d, ignore_errors=True)

    def engine_rootfs(self):
        from tests.integration.engine import ROOTFS
        return ROOTFS
