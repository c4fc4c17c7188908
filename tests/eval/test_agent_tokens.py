"""The agent's token budget (issue 20), counted by a real tokenizer
(tests/eval/agent_path.py), with GitHub's whole description registered:
the interfaces of the 3 tools of the fixed tasks (pulls/list,
issues/create-comment, repos/get-latest-release) at most 900 tokens
together, and each compiles, imports with typing alone and passes mypy as
a stub; our MCP tools/list at most 500; the prompt at most 600; a
10-result search answer at most 400; the compact index compiles."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from tests.eval import agent_path
from tests.integration.engine import BIN, Engine


class AgentTokens(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.engine = Engine(json.dumps({"engine": {"pool_size": 0}}), "config.json").start()
        cls.client = cls.engine.client(timeout=600)
        r = cls.client.call_tool("register_manual", {"manual_call_template": agent_path.file_manual(
            "github", agent_path.GITHUB)})
        assert not r["isError"], r
        cls.dir = tempfile.mkdtemp(prefix="codemode-iface-")

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.engine.stop()
        cls.engine.cleanup()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def interface(self, name, detail=None):
        args = {"tool_name": name}
        if detail:
            args["detail"] = detail
        r = self.client.call_tool("get_tool_interface", args)
        self.assertFalse(r["isError"], r)
        return r["structuredContent"]["interface"]

    def check_compiles(self, name, text):
        """py_compile, import with typing alone (every class's hints resolve),
        and mypy over it as a stub (`...` bodies)."""
        path = os.path.join(self.dir, name + ".py")
        with open(path, "w") as f:
            f.write(text)
        subprocess.run([sys.executable, "-m", "py_compile", path], check=True)
        probe = ("import sys, typing\nsys.path.insert(0, %r)\nimport %s as g\n"
                 "for n in dir(g):\n"
                 "    o = getattr(g, n)\n"
                 "    if isinstance(o, type) and hasattr(o, '__annotations__'):\n"
                 "        typing.get_type_hints(o, vars(g))\n" % (self.dir, name))
        out = subprocess.run([sys.executable, "-I", "-S", "-c", probe], capture_output=True,
                             text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr + text)
        stub = os.path.join(self.dir, name + ".pyi")
        shutil.copy(path, stub)
        mypy = shutil.which("mypy")
        self.assertIsNotNone(mypy, "mypy is missing: make deps installs it")
        out = subprocess.run([mypy, "--enable-incomplete-feature=Unpack", "--no-incremental",
                              "--cache-dir=/dev/null", stub], capture_output=True, text=True,
                             timeout=300)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr + text)

    def test_three_interfaces_compile_and_fit_900_tokens(self):
        texts = [self.interface(t) for _, t in agent_path.TASKS]
        for (_, t), text in zip(agent_path.TASKS, texts):
            self.check_compiles(t.split(".", 1)[1].replace("/", "_").replace("-", "_"), text)
        counts = agent_path.count_tokens(texts)
        sys.stderr.write("interfaces of %s: %s tokens (%d)\n"
                         % ([t for _, t in agent_path.TASKS], counts, sum(counts)))
        self.assertLessEqual(sum(counts), 900)
        # what the compact text leaves out is there in full, and compiles too
        full = self.interface("github.pulls/list", "full")
        self.assertIn("class github_NullableSimpleUser(TypedDict)", full)  # nested: a dict in compact
        self.assertIn("class github_Repository(TypedDict)", full)
        self.assertGreater(len(full), 4 * len(texts[0]))
        self.check_compiles("pulls_list_full", full)

    def test_prompt_tools_list_and_search_budgets(self):
        row, texts = agent_path.measure_client(self.client, mcp_baseline=False)
        sys.stderr.write("tokens: %s\n" % row)
        self.assertLessEqual(row["ours_tools_list"], 500)
        self.assertLessEqual(row["search_max"], 400)
        prompt = subprocess.run([BIN, "prompt"], capture_output=True, text=True,
                                timeout=30).stdout
        self.assertLessEqual(agent_path.count_tokens([prompt])[0], 600)
        for i in range(len(agent_path.TASKS)):
            top3 = [t["access_name"] for t in json.loads(texts["search%d" % i])["tools"][:3]]
            self.assertIn(agent_path.TASKS[i][1].replace("/", "_").replace("-", "_"), top3)

    def test_index_and_whole_manual_compile(self):
        idx = self.client.call_tool("get_all_tools_python_interfaces", {"detail": "index"})
        text = idx["structuredContent"]["interfaces"]
        self.assertEqual(text.count("\n#   github."), 1223)
        compile(text, "<index>", "exec")
        whole = self.client.call_tool("get_all_tools_python_interfaces")
        text = whole["structuredContent"]["interfaces"]
        compile(text, "<github>", "exec")
        # a definition several tools use is one class in the manual's text, and in each
        # of those tools' own text (which compiles alone)
        self.assertEqual(text.count("\nclass github_PullRequestSimple("), 1)
        for t in ("github.pulls/list", "github.repos/list-pull-requests-associated-with-commit"):
            self.assertIn("\nclass github_PullRequestSimple(", self.interface(t))


if __name__ == "__main__":
    unittest.main()
