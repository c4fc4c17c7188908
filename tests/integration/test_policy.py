"""Policies end to end: a real engine with `engine.policy`, chains in real
sandboxes whose tool calls are allowed or denied, the audit log, limits
clamping, imports, reload (method and SIGHUP) and `codemode policy` CLI."""
import json
import os
import signal
import subprocess
import tempfile
import time
import unittest

from tests.integration.engine import BIN, ROOT, Engine, EngineTest

MANUAL = {
    "utcp_version": "1.0.1",
    "manual_version": "1.0.0",
    "tools": [
        {"name": "echo", "description": "Echo a message back.",
         "inputs": {"type": "object", "properties": {"msg": {"type": "string"}}},
         "tool_call_template": {"call_template_type": "cli",
                                "commands": [{"command": "printf '%s' UTCP_ARG_msg_UTCP_END"}]}},
        {"name": "secret", "description": "Uses a secret variable.",
         "tool_call_template": {"call_template_type": "cli",
                                "commands": [{"command": "printf '%s' '${SECRET_X}'"}]}},
        {"name": "drop", "description": "Something the policy forbids.",
         "tool_call_template": {"call_template_type": "cli",
                                "commands": [{"command": "echo dropped"}]}},
    ],
}

POLICY = """\
version: 1
manuals:
  t:
    variables: []
profiles:
  default:
    limits: {timeout_s: 20, max_tool_calls: 5, max_output_bytes: 4096}
    imports: [json]
    tools:
      - name: echo-ok
        match: "t.echo"
        allow: true
        args:
          msg: {type: string, pattern: "[a-z ]+"}
      - name: secret-by-rule
        match: "t.secret"
        allow: true
      - name: deny-rest
        match: "t.*"
        allow: false
    grants: {reload: true}
"""

# the same policy with a syntax error on line 7 (a token YAML cannot start with)
BROKEN = POLICY.replace("    limits: {timeout_s: 20", "    limits: @{timeout_s: 20", 1)
assert POLICY.splitlines()[6].startswith("    limits:")

DENY_ECHO = POLICY.replace("      - name: echo-ok\n        match: \"t.echo\"\n        allow: true\n"
                           "        args:\n          msg: {type: string, pattern: \"[a-z ]+\"}\n", "")

CONFIG = """
manual_call_templates:
  - name: t
    call_template_type: file
    file_path: manual.json
    allowed_communication_protocols: [cli]
variables:
  SECRET_X: hunter2
engine:
  policy:
    file: policy.yaml
    audit_log: audit.jsonl
    callers:
      - {uid: 0, profile: default}
    default_profile: null
"""


def audit_lines(engine):
    with open(os.path.join(engine.dir, "audit.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


class PolicyEnforcement(EngineTest):
    CONFIG = CONFIG
    FILES = {"manual.json": json.dumps(MANUAL), "policy.yaml": POLICY}

    def write_policy(self, text):
        with open(os.path.join(self.engine.dir, "policy.yaml"), "w") as f:
            f.write(text)

    def test_denied_tools_are_not_advertised_inside_the_chain(self):
        r = self.client.chain(
            "names = [t['access_name'] for t in search_tools('drop something echo', 10)]\n"
            "try:\n"
            "    get_tool_interface('t.drop')\n"
            "    iface = 'shown'\n"
            "except ValueError:\n"
            "    iface = 'hidden'\n"
            "return ['drop' in interfaces, 'echo' in interfaces, names, iface]\n")
        self.assertIsNone(r["error"], r)
        drop_shown, echo_shown, names, iface = r["result"]
        self.assertFalse(drop_shown)
        self.assertTrue(echo_shown)
        self.assertNotIn("t.drop", names)
        self.assertIn("t.echo", names)
        self.assertEqual(iface, "hidden")

    def test_allowed_call_runs_denied_call_raises_and_both_are_audited(self):
        r = self.client.chain(
            "a = await t.echo(msg='hello')\n"
            "try:\n"
            "    await t.drop()\n"
            "    d = 'not denied'\n"
            "except PolicyDenied as e:\n"
            "    d = e.message\n"
            "return [a, d]\n")
        self.assertIsNone(r["error"], r)
        self.assertEqual(r["result"][0], "hello")
        self.assertIn("deny-rest", r["result"][1])
        self.assertIn("t.drop", r["result"][1])
        self.assertEqual(r["stats"]["policy_denials"], 1)
        self.assertEqual(r["stats"]["profile"], "default")
        lines = audit_lines(self.engine)
        allow = [l for l in lines if l.get("tool") == "t.echo" and l["decision"] == "allow"]
        deny = [l for l in lines if l.get("tool") == "t.drop" and l["decision"] == "deny"]
        self.assertTrue(allow and deny, lines)
        self.assertEqual(allow[-1]["rule"], "echo-ok")
        self.assertEqual(deny[-1]["rule"], "deny-rest")
        self.assertEqual(allow[-1]["args"], {"msg": "<redacted>"})
        self.assertEqual(allow[-1]["uid"], 0)
        self.assertGreater(allow[-1]["bytes_out"], 0)
        for key in ("time", "chain", "profile", "reason", "decision_us", "bytes_in"):
            self.assertIn(key, deny[-1])
        chain_id = deny[-1]["chain"]
        events = [l["event"] for l in lines if l.get("chain") == chain_id]
        self.assertEqual(events[0], "chain_start")
        self.assertEqual(events[-1], "chain_end")
        end = [l for l in lines if l.get("chain") == chain_id and l["event"] == "chain_end"][0]
        self.assertEqual(end["outcome"], "ok")
        self.assertEqual(end["stats"]["policy_denials"], 1)

    def test_uncaught_denial_fails_the_chain_with_policy_denied(self):
        r = self.client.chain("return await t.drop()")
        self.assertEqual(r["error"]["kind"], "policy_denied", r)
        self.assertIn("deny-rest", r["error"]["message"])

    def test_argument_constraint_names_rule_and_reason(self):
        r = self.client.chain("return await t.echo(msg='Hello; rm -rf /')")
        self.assertEqual(r["error"]["kind"], "policy_denied", r)
        self.assertIn("echo-ok", r["error"]["message"])
        self.assertIn("pattern", r["error"]["message"])

    def test_manual_variables_are_restricted(self):
        r = self.client.chain("return await t.secret()")
        self.assertEqual(r["error"]["kind"], "policy_denied", r)
        self.assertIn("SECRET_X", r["error"]["message"])
        self.assertIn("manuals.t.variables", r["error"]["message"])

    def test_limits_are_clamped_and_reported(self):
        res = self.client.call_tool("call_tool_chain", {
            "code": "return 1", "timeout": 600, "limits": {"max_tool_calls": 100}})
        r = res["structuredContent"]
        self.assertIsNone(r["error"], r)
        clamped = {c["limit"]: c for c in r["stats"]["clamped"]}
        self.assertEqual(clamped["max_tool_calls"]["applied"], 5)
        self.assertEqual(clamped["timeout_s"]["requested"], 600)
        self.assertEqual(clamped["timeout_s"]["applied"], 20)
        self.assertEqual(r["stats"]["timeout_s"], 20)
        self.assertEqual(r["stats"]["limits"]["max_output_bytes"], 4096)

    def test_request_may_ask_for_less(self):
        res = self.client.call_tool("call_tool_chain", {
            "code": "for i in range(3):\n    await t.echo(msg='x')\n",
            "limits": {"max_tool_calls": 2}})
        r = res["structuredContent"]
        self.assertEqual(r["error"]["kind"], "tool_error", r)
        self.assertIn("budget of 2", r["error"]["message"])
        self.assertNotIn("clamped", r["stats"])

    def test_profile_limits_apply_to_output(self):
        r = self.client.chain("print('x' * 5000)")
        self.assertEqual(r["error"]["kind"], "output_limit", r)

    def test_imports_follow_the_profile(self):
        self.assertIsNone(self.client.chain("import json\nreturn json.dumps(1)")["error"])
        r = self.client.chain("import math\nreturn 1")
        self.assertEqual(r["error"]["kind"], "exception", r)
        self.assertIn("not allowed", r["error"]["message"])

    def test_reload_rejects_broken_file_and_keeps_policy(self):
        try:
            self.write_policy(BROKEN)
            resp = self.client.request("codemode/reload")
            self.assertIn("error", resp)
            self.assertIn("policy.yaml:7:", resp["error"]["message"])
            self.assertEqual(self.client.chain("return await t.echo(msg='still')")["result"],
                             "still")
            self.write_policy(DENY_ECHO)
            resp = self.client.request("codemode/reload")
            self.assertEqual(resp.get("result"), {"reloaded": True}, resp)
            r = self.client.chain("return await t.echo(msg='now')")
            self.assertEqual(r["error"]["kind"], "policy_denied", r)
        finally:
            self.write_policy(POLICY)
            self.client.request("codemode/reload")
        self.assertEqual(self.client.chain("return await t.echo(msg='back')")["result"], "back")

    def test_sighup_reload_rejects_broken_file(self):
        try:
            self.write_policy(BROKEN)
            self.engine.proc.send_signal(signal.SIGHUP)
            deadline = time.time() + 10
            while "policy reload rejected" not in self.engine.read_log():
                self.assertLess(time.time(), deadline, self.engine.read_log())
                time.sleep(0.05)
            self.assertIn("policy.yaml:7:", self.engine.read_log())
            self.assertEqual(self.client.chain("return await t.echo(msg='ok')")["result"], "ok")
        finally:
            self.write_policy(POLICY)


class UnknownPeerRefused(EngineTest):
    CONFIG = CONFIG.replace("{uid: 0, profile: default}", "{uid: 12345, profile: default}")
    FILES = {"manual.json": json.dumps(MANUAL), "policy.yaml": POLICY}

    def test_unknown_peer_is_refused(self):
        resp = self.client.request("tools/call", {"name": "call_tool_chain",
                                                  "arguments": {"code": "return 1"}})
        self.assertEqual(resp["error"]["code"], -32001, resp)
        self.assertIn("uid 0", resp["error"]["message"])
        self.assertIn("result", self.client.request("ping"))


class BadPolicyAtStartup(unittest.TestCase):
    def test_engine_refuses_to_start_with_line_and_column(self):
        eng = Engine(CONFIG, files={"manual.json": json.dumps(MANUAL), "policy.yaml": BROKEN})
        try:
            with self.assertRaises(RuntimeError) as cm:
                eng.start()
            self.assertIn("policy.yaml:7:", str(cm.exception))
        finally:
            eng.stop()
            eng.cleanup()


class PolicyCli(unittest.TestCase):
    def run_cli(self, *args):
        return subprocess.run([BIN, "policy", *args], capture_output=True, text=True, timeout=60)

    def test_check_reports_line_7(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "p.yaml")
            with open(path, "w") as f:
                f.write(BROKEN)
            r = self.run_cli("check", path)
            self.assertEqual(r.returncode, 1)
            self.assertIn(path + ":7:", r.stderr)
            with open(path, "w") as f:
                f.write(POLICY.replace("allow: false", "allw: false"))
            r = self.run_cli("check", path)
            self.assertEqual(r.returncode, 1)
            self.assertIn("allw: unknown key", r.stderr)
            self.assertIn("p.yaml:20:9:", r.stderr)

    def test_broken_case_exits_1_with_junit(self):
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "policy.yaml"), "w") as f:
                f.write(POLICY)
            os.mkdir(os.path.join(d, "cases"))
            with open(os.path.join(d, "cases", "cases.yaml"), "w") as f:
                f.write("policy: ../policy.yaml\ncases:\n"
                        "  - name: good\n    tool: t.echo\n    args: {msg: hi}\n    expect: allow\n"
                        "  - name: deliberately wrong\n    tool: t.drop\n    expect: allow\n")
            junit = os.path.join(d, "junit.xml")
            r = self.run_cli("test", "--junit", junit, os.path.join(d, "cases"))
            self.assertEqual(r.returncode, 1, r.stdout)
            self.assertIn("1 passed, 1 failed", r.stdout)
            self.assertIn("FAIL  deliberately wrong", r.stdout)
            with open(junit) as f:
                xml = f.read()
            self.assertIn('failures="1"', xml)

    def test_shipped_policies_pass(self):
        r = self.run_cli("test", os.path.join(ROOT, "tests", "policy"))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_explain_names_the_deciding_rule(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "p.yaml")
            with open(path, "w") as f:
                f.write(POLICY)
            r = self.run_cli("explain", "--policy", path, "--tool", "t.drop")
            self.assertEqual(r.returncode, 1)
            self.assertIn("deny by rule 'deny-rest'", r.stdout)
            r = self.run_cli("explain", "--policy", path, "--tool", "t.echo", "--args",
                             '{"msg": "hi"}')
            self.assertEqual(r.returncode, 0, r.stdout)
            self.assertIn("allow by rule 'echo-ok'", r.stdout)


if __name__ == "__main__":
    unittest.main()
