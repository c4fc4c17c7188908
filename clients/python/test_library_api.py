"""utcp_code_mode as the library documents it, beyond the chain examples of
test_client.py: a private engine lives no longer than its client process
(even without close(), even SIGKILLed) and never as root for a non-root
caller; relative manual paths resolve against the caller's working
directory; the README's IDE example imports `GithubNamespace`; the
UtcpClient methods (call_tool, search_tools, get_required_keys_for_tool,
register_manual, deregister_manual) behave as the library documents.
Needs build/codemode and build/rootfs (CODEMODE_BIN)."""
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

from utcp_code_mode import CodeModeError, CodeModeUtcpClient, ToolCallError

HERE = os.path.dirname(os.path.abspath(__file__))

# A client process that starts an engine, reports its pid and temp dir,
# then ends the way argv[1] says, never calling close().
CHILD = r'''
import asyncio, json, os, signal, sys, time
sys.path.insert(0, %r)
from utcp_code_mode import CodeModeUtcpClient
async def main():
    c = await CodeModeUtcpClient.create()
    print(json.dumps({"pid": c.engine_pid, "tmpdir": c._tmpdir}), flush=True)
    if sys.argv[1] == "hang":
        time.sleep(600)
    if sys.argv[1] == "raise":
        raise RuntimeError("the caller crashed")
asyncio.run(main())
'''


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_gone(pid, path, timeout=40):
    deadline = time.time() + timeout
    while time.time() < deadline and (alive(pid) or os.path.exists(path)):
        time.sleep(0.1)
    return not alive(pid) and not os.path.exists(path)


def status_field(pid, name):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(name + ":"):
                return line.split()[1:]
    return None


def cli(name, command, description="", props=()):
    return {"name": name, "description": description, "tags": ["demo"],
            "inputs": {"type": "object", "properties": {p: {"type": "string"} for p in props},
                       "required": list(props)},
            "tool_call_template": {"call_template_type": "cli", "commands": [{"command": command}]}}


class Lifetime(unittest.TestCase):
    def start_child(self, how, python=sys.executable, prefix=(), pkg=HERE, binary=None):
        env = dict(os.environ)
        if binary:
            env["CODEMODE_BIN"] = binary
        p = subprocess.Popen(list(prefix) + [python, "-c", CHILD % pkg, how], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=env, cwd="/tmp")
        self.addCleanup(p.stderr.close)
        self.addCleanup(p.stdout.close)
        line = p.stdout.readline()
        if not line:
            p.wait()
            self.fail("child did not start a client: %s" % p.stderr.read().decode()[-2000:])
        return p, json.loads(line)

    def test_engine_ends_with_the_client_without_close(self):
        for how in ("exit", "raise"):
            with self.subTest(how):
                p, info = self.start_child(how)
                p.wait(30)
                self.assertTrue(wait_gone(info["pid"], info["tmpdir"]),
                                "engine %d or %s left behind" % (info["pid"], info["tmpdir"]))

    def test_engine_ends_when_the_client_is_killed(self):
        p, info = self.start_child("hang")
        self.assertTrue(alive(info["pid"]))
        p.send_signal(signal.SIGKILL)
        p.wait(10)
        self.assertTrue(wait_gone(info["pid"], info["tmpdir"]))

    @unittest.skipUnless(os.geteuid() == 0 and shutil.which("setpriv")
                         and os.path.exists("/usr/bin/python3"), "needs root and setpriv")
    def test_never_root_for_a_non_root_caller(self):
        # uid 65534 may not reach the checkout (a clone under a 0700 /root):
        # it gets a world-readable copy of the package, binary and rootfs
        d = tempfile.mkdtemp(prefix="utcp-nonroot-")
        self.addCleanup(shutil.rmtree, d, True)
        os.chmod(d, 0o755)
        shutil.copytree(os.path.join(HERE, "utcp_code_mode"), os.path.join(d, "utcp_code_mode"))
        src = os.environ.get("CODEMODE_BIN") or shutil.which("codemode")
        os.mkdir(os.path.join(d, "bin"))
        shutil.copy2(src, os.path.join(d, "bin", "codemode"))
        subprocess.run(["cp", "-a", os.path.join(os.path.dirname(src), "rootfs"),
                        os.path.join(d, "bin", "rootfs")], check=True)
        subprocess.run(["chmod", "-R", "a+rX", d], check=True)
        p, info = self.start_child("hang", "/usr/bin/python3",
                                   ("setpriv", "--reuid", "65534", "--regid", "65534",
                                    "--clear-groups"), pkg=d,
                                   binary=os.path.join(d, "bin", "codemode"))
        try:
            uids = status_field(info["pid"], "Uid")
            self.assertEqual(set(uids), {"65534"}, uids)
            self.assertEqual(status_field(info["pid"], "NoNewPrivs"), ["1"])
        finally:
            p.send_signal(signal.SIGKILL)
            p.wait(10)
        self.assertTrue(wait_gone(info["pid"], info["tmpdir"]))


class LibraryApi(unittest.TestCase):
    def setUp(self):
        self.cwd = os.getcwd()
        self.dir = tempfile.mkdtemp(prefix="utcp-api-test-")
        os.chdir(self.dir)

    def tearDown(self):
        os.chdir(self.cwd)
        shutil.rmtree(self.dir, ignore_errors=True)
        sys.modules.pop("generated_tools", None)

    def test_relative_paths_namespace_class_and_utcp_client_methods(self):
        asyncio.run(self._go())

    async def _go(self):
        with open("db-tools.json", "w") as f:
            json.dump({"utcp_version": "1.0.1", "tools": [{
                "name": "get_deployment_status", "description": "Deployment status of a PR",
                "inputs": {"type": "object", "properties": {"pr_id": {"type": "integer"}}},
                "tool_call_template": {"call_template_type": "file",
                                       "file_path": "deployment.json"}}]}, f)
        with open("deployment.json", "w") as f:
            json.dump({"environment": "staging"}, f)
        gh = {"name": "github", "call_template_type": "text",
              "allowed_communication_protocols": ["cli"],
              "content": json.dumps({"utcp_version": "1.0.1", "tools": [
                  cli("get_pull_request", 'echo "{\\"id\\": 42, \\"n\\": UTCP_ARG_n_UTCP_END}"',
                      "Get a pull request", ("n",)),
                  cli("fail", "exit 3", "always fails"),
                  dict(cli("secret", "echo ${GH_TOKEN}", "needs a token"))]})}
        client = await CodeModeUtcpClient.create(config={"variables": {"GH_TOKEN": "t0ken-xyz"}})
        try:
            # README: "Loads UTCP manual from JSON", relative to the caller's cwd
            await client.register_manual({'name': 'db', 'call_template_type': 'file', 'file_path': './db-tools.json'})  # Loads UTCP manual from JSON
            reg = await client.register_manual(gh)
            self.assertTrue(reg.success)
            self.assertEqual(sorted(t.name for t in reg.manual.tools),
                             ["github.fail", "github.get_pull_request", "github.secret"])
            self.assertEqual(reg.errors, [])
            r = await client.call_tool_chain('return await db.get_deployment_status(pr_id=1)')
            self.assertEqual(r["result"], {"environment": "staging"}, r)

            # UtcpClient.call_tool: the result, or an exception
            self.assertEqual(await client.call_tool("github.get_pull_request", {"n": "7"}),
                             {"id": 42, "n": 7})
            with self.assertRaises(ToolCallError) as cm:
                await client.call_tool("github.fail", {})
            self.assertEqual(cm.exception.kind, "tool_error")
            with self.assertRaises(CodeModeError):
                await client.call_tool("github.nope", {})

            # search_tools: Tool-like records; tag filter; limit
            tools = await client.search_tools("pull request")
            self.assertEqual(tools[0].name, "github.get_pull_request")
            self.assertEqual(tools[0]["description"], "Get a pull request")
            self.assertEqual(len(await client.search_tools("pull request", limit=1)), 1)
            self.assertEqual(await client.search_tools("pull request", any_of_tags_required=["x"]), [])
            self.assertEqual(await client.get_required_keys_for_tool("github.secret"), ["GH_TOKEN"])
            self.assertEqual(await client.get_required_variables_for_registered_tool("github.secret"),
                             ["GH_TOKEN"])

            # a failed registration is reported, not raised (RegisterManualResult)
            bad = await client.register_manual({"name": "broken", "call_template_type": "file",
                                                "file_path": "./missing.json"})
            self.assertFalse(bad.success)
            self.assertIn(os.path.join(self.dir, "missing.json"), bad.errors[0])

            # README "IDE Integration", unchanged
            interfaces = await client.get_all_tools_python_interfaces()
            with open('generated_tools.py', 'w') as f:
                f.write(interfaces)
            sys.path.insert(0, self.dir)
            try:
                from generated_tools import GithubNamespace
                from generated_tools import DbNamespace
            finally:
                sys.path.remove(self.dir)
            self.assertTrue(hasattr(GithubNamespace, "get_pull_request"))
            self.assertTrue(DbNamespace)
            self.assertEqual([n for n in os.listdir(".") if n.startswith(".utcp")], [])

            self.assertTrue(await client.deregister_manual("db"))
            self.assertFalse(await client.deregister_manual("db"))
        finally:
            await client.close()


if __name__ == "__main__":
    unittest.main()
