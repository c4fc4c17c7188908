"""utcp_code_mode against a real engine: the Python library README's
examples (PR summary over several tools, runtime introspection, error
handling with timeout) run unchanged; tools are CLI tools that call a
loopback HTTP server.  Needs build/codemode and build/rootfs (CODEMODE_BIN)."""
import asyncio
import json
import os
import socket
import threading
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from utcp_code_mode import CodeModeError, CodeModeUtcpClient

PR = {"title": "Fix memory leak in hooks", "state": "open", "id": 77, "user": {"login": "alice"}}
COMMENTS = [{"user": {"login": "bob"}, "body": "Looks good " * 20}, {"user": {"login": "carol"}, "body": "nit"}]
REVIEWS = [{"state": "APPROVED"}, {"state": "COMMENTED"}, {"state": "APPROVED"}]
FILES = [{"filename": "a.ts"}, {"filename": "b.ts"}]


class Api(BaseHTTPRequestHandler):
    posted = []

    def log_message(self, *a):
        pass

    def reply(self, obj):
        body = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        routes = {"/repos/microsoft/vscode/pulls/1234": PR,
                  "/repos/microsoft/vscode/pulls/1234/comments": COMMENTS,
                  "/repos/microsoft/vscode/pulls/1234/reviews": REVIEWS,
                  "/repos/microsoft/vscode/pulls/1234/files": FILES,
                  "/data/user-123": {"id": "user-123", "name": "Ada"},
                  "/ping": {"ok": True}}
        if self.path.startswith("/transform"):
            return self.reply({"id": "user-123", "warnings": ["w1", "w2"]})
        if self.path not in routes:
            self.send_error(404)
            return
        self.reply(routes[self.path])

    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        Api.posted.append(json.loads(self.rfile.read(n)))
        self.reply({"ok": True})


def cli(name, command, description, props=()):
    return {"name": name, "description": description, "tags": [],
            "inputs": {"type": "object", "properties": {
                p: {"type": "integer" if p == "pull_number" else "string"} for p in props},
                       "required": list(props)},
            "tool_call_template": {"call_template_type": "cli", "commands": [{"command": command}]}}


def text_manual(name, tools):
    return {"name": name, "call_template_type": "text", "allowed_communication_protocols": ["cli"],
            "content": json.dumps({"utcp_version": "1.0.1", "tools": tools})}


def run(coro):
    return asyncio.run(coro)


class ReadmeExamples(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.http = ThreadingHTTPServer(("127.0.0.1", 0), Api)
        cls.base = "http://127.0.0.1:%d" % cls.http.server_address[1]
        threading.Thread(target=cls.http.serve_forever, daemon=True).start()

    @classmethod
    def tearDownClass(cls):
        cls.http.shutdown()
        cls.http.server_close()

    def github_manual(self):
        pr = self.base + "/repos/UTCP_ARG_owner_UTCP_END/UTCP_ARG_repo_UTCP_END/pulls/UTCP_ARG_pull_number_UTCP_END"
        args = ("owner", "repo", "pull_number")
        return text_manual("github", [
            cli("get_pull_request", "curl -sf " + pr, "Get a pull request (PR)", args),
            cli("get_pull_request_comments", "curl -sf %s/comments" % pr, "Comments on a PR", args),
            cli("get_pull_request_reviews", "curl -sf %s/reviews" % pr, "Reviews of a PR", args),
            cli("get_pull_request_files", "curl -sf %s/files" % pr, "Files changed by a PR", args)])

    def test_readme_examples(self):
        run(self._readme_examples())

    async def _readme_examples(self):
        client = await CodeModeUtcpClient.create()
        try:
            reg = await client.register_manual(self.github_manual())
            self.assertTrue(reg["success"], reg)
            await client.register_manual(text_manual("slack", [cli(
                "post_message", "curl -sf -X POST -H 'Content-Type: application/json' -d "
                "\"{\\\"channel\\\": \\\"UTCP_ARG_channel_UTCP_END\\\", \\\"text\\\": \\\"UTCP_ARG_text_UTCP_END\\\"}\" "
                + self.base + "/slack", "Post a message to a Slack channel", ("channel", "text"))]))
            await client.register_manual(text_manual("external_api", [cli(
                "fetch_data", "curl -sf %s/data/UTCP_ARG_id_UTCP_END" % self.base, "Fetch data", ("id",))]))
            await client.register_manual(text_manual("data_processor", [cli(
                "transform", "curl -sf '%s/transform?id='UTCP_ARG_id_UTCP_END" % self.base,
                "Transform data", ("id",))]))
            await client.register_manual(text_manual("ping", [cli(
                "check", "curl -sf %s/ping" % self.base, "Ping")]))

            # Progressive tool discovery
            tools = await client.search_tools('github pull request')
            self.assertTrue(tools and tools[0]["name"].startswith("github.get_pull_request"))

            # Natural code execution (README "Execute Multi-Step Workflows")
            result = await client.call_tool_chain('''
# Traditional: 4 separate API round trips → Code Mode: 1 execution
pr = await github.get_pull_request(owner='microsoft', repo='vscode', pull_number=1234)
comments = await github.get_pull_request_comments(owner='microsoft', repo='vscode', pull_number=1234)
reviews = await github.get_pull_request_reviews(owner='microsoft', repo='vscode', pull_number=1234)
files = await github.get_pull_request_files(owner='microsoft', repo='vscode', pull_number=1234)
# Process data in-sandbox (no token overhead)
summary = {
"title": pr["title"],
"state": pr["state"],
"author": pr["user"]["login"],
"stats": {
"comments": len(comments),
"reviews": len(reviews),
"files_changed": len(files),
"approvals": len([r for r in reviews if r["state"] == "APPROVED"])
},
"top_discussion": [
{
"author": c["user"]["login"],
"preview": c["body"][:100] + "..."
}
for c in comments[:3]
]
}
print(f'PR "{pr["title"]}" analysis complete')
return summary
''')
            self.assertIsNone(result["error"], result)
            self.assertEqual(result["logs"], ['PR "Fix memory leak in hooks" analysis complete'])
            s = result["result"]
            self.assertEqual(s["stats"], {"comments": 2, "reviews": 3, "files_changed": 2, "approvals": 2})
            self.assertEqual(s["author"], "alice")
            self.assertEqual(s["top_discussion"][1], {"author": "carol", "preview": "nit..."})

            # Runtime interface introspection
            result = await client.call_tool_chain('''
# Discover available tools at runtime
print('Available interfaces:', __interfaces)
# Get specific tool interface for validation
pr_interface = __get_tool_interface('github.get_pull_request')
print('PR tool expects:', pr_interface)
# Use interface info for dynamic workflows
has_slack_tools = 'namespace slack' in __interfaces
if has_slack_tools:
    await slack.post_message(channel='#dev', text='Analysis complete')
return {"tools_available": has_slack_tools}
''')
            self.assertIsNone(result["error"], result)
            self.assertEqual(result["result"], {"tools_available": True})
            self.assertIn({"channel": "#dev", "text": "Analysis complete"}, Api.posted)
            self.assertTrue(any("class github_GetPullRequestInput(TypedDict)" in l for l in result["logs"]))

            # Error handling & observability
            result = await client.call_tool_chain('''
try:
    print('Starting multi-step workflow...')
    data = await external_api.fetch_data(id='user-123')
    print('Data fetched successfully')
    processed = await data_processor.transform(data)
    print(f'Processing completed with {len(processed.get("warnings", []))} warnings')
    return processed
except Exception as error:
    print(f'Workflow failed: {error}')
    raise error # Propagates to outer error handling
''', timeout=30) # 30-second timeout
            self.assertIsNone(result["error"], result)
            self.assertEqual(result["logs"], ['Starting multi-step workflow...', 'Data fetched successfully',
                                              'Processing completed with 2 warnings'])
            self.assertEqual(result["result"]["warnings"], ["w1", "w2"])

            quick_result = await client.call_tool_chain('return await ping.check()', timeout=5)
            self.assertEqual(quick_result["result"], {"ok": True})

            # failures come back (never raised), with logs kept; timeouts too
            failed = await client.call_tool_chain("print('before')\nawait external_api.fetch_data(id='nope')")
            self.assertEqual(failed["error"]["kind"], "tool_error")
            self.assertEqual(failed["logs"], ["before"])
            slow = await client.call_tool_chain("while True:\n    pass", timeout=1)
            self.assertEqual(slow["error"]["kind"], "timeout")

            # IDE interfaces: compile and import with typing alone
            interfaces = await client.get_all_tools_python_interfaces()
            ns = {}
            exec(compile(interfaces, "generated_tools.py", "exec"), ns)
            self.assertIn("GithubNamespace", ns)
            one = await client.tool_to_python_interface(tools[0])
            self.assertIn("async def get_pull_request", one)
            self.assertTrue(await client.deregister_manual("ping"))
            self.assertFalse(await client.deregister_manual("ping"))
        finally:
            await client.close()

    def test_streaming_iterator_yields_lines_as_they_arrive(self):
        async def go():
            async with await CodeModeUtcpClient.create() as client:
                stream = client.stream_tool_chain(
                    "import asyncio\nprint('one')\nawait asyncio.sleep(1)\nprint('two')\nreturn 3")
                seen = []
                async for line in stream:
                    seen.append((line, stream.response is None))
                self.assertEqual(seen, [("one", True), ("two", True)])
                self.assertEqual(stream.response["result"], 3)
        run(go())

    def test_prompt_template_and_config_dict_and_bad_socket(self):
        prompt = CodeModeUtcpClient.AGENT_PROMPT_TEMPLATE
        self.assertIn("search_tools", prompt)
        self.assertIn("__interfaces", prompt)

        async def go():
            cfg = {"manual_call_templates": [text_manual("cfg", [cli("hi", "echo '{\"x\": 1}'", "hi")])]}
            async with await CodeModeUtcpClient.create(config=cfg) as client:
                self.assertEqual(await client.get_tools(), ["cfg.hi"])
                shared = await CodeModeUtcpClient.create(socket=client.socket_path)
                r = await shared.call_tool_chain("return cfg.hi()")
                self.assertEqual(r["result"], {"x": 1})
            with self.assertRaises(CodeModeError):
                await CodeModeUtcpClient.create(socket="/nonexistent/engine.sock")
        run(go())


if __name__ == "__main__":
    unittest.main()
