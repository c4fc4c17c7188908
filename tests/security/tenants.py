"""Multi-tenant harness (issue 14): a real engine run by root whose clients
are separate processes under real non-root uids (`setpriv`), mapped by the
policy to two tenant profiles and an admin profile.  The client is a small
stdlib script written into a world-readable temp dir (the checkout may sit
under /root, which other uids cannot read) and run with the system Python.

Everything a test creates — the engine, its temp dir, the client dir, the
loopback HTTP server — is removed in tearDown/tearDownClass, even on
failure."""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from tests.integration.engine import Engine
from tests.integration.http_fixture import Server

SOCKET_GID = 61000
UID_A, UID_B, UID_ADMIN, UID_STRANGER = 61001, 61002, 61003, 61009

# Reads raw request lines (JSON list of strings) on stdin, sends each, and
# prints the raw response line to each (notifications skipped) as a JSON list.
CLIENT = r'''
import json, socket, sys
reqs = json.load(sys.stdin)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(60)
s.connect(sys.argv[1])
buf, out = b"", []
for line in reqs:
    s.sendall(line.encode() + b"\n")
    while True:
        while b"\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                raise SystemExit("engine closed the connection")
            buf += chunk
        raw, buf = buf.split(b"\n", 1)
        if "method" not in json.loads(raw):
            out.append(raw.decode())
            break
print(json.dumps(out))
'''

MANUAL = {
    "utcp_version": "1.0.1", "manual_version": "1.0.0",
    "tools": [{"name": "whoami", "description": "Returns the token the policy trusts github with.",
               "inputs": {"type": "object", "properties": {}},
               "tool_call_template": {"call_template_type": "cli",
                                      "commands": [{"command": "printf '%s' '${GH_TOKEN}'"}]}}],
}

POLICY = """\
version: 1
manuals:
  github:
    variables: [GH_TOKEN]
profiles:
  tenant_a:
    tools: [{name: all, match: "*", allow: true}]
    http: [{host: 127.0.0.1/32, ports: [%(port)d], schemes: [http]}]
    grants:
      register: [http, openapi, text]
      deregister: true
  tenant_b:
    tools: [{name: all, match: "*", allow: true}]
    grants:
      register: [text, cli, mcp]
      commands: ["printf hello"]
      deregister: true
  admin:
    tools: [{name: all, match: "*", allow: true}]
    http: [{host: 127.0.0.1/32, ports: [%(port)d], schemes: [http]}]
    grants:
      register: all
      commands: all
      env: all
      deregister: true
      manage_all: true
      reload: true
      stats: true
      health: true
      metrics: true
"""

CONFIG = """
manual_call_templates:
  - name: github
    call_template_type: file
    file_path: manual.json
    allowed_communication_protocols: [cli]
variables:
  GH_TOKEN: gh-secret-canary-7731
engine:
  workers: 4
  policy:
    file: policy.yaml
    audit_log: audit.jsonl
    callers:
      - {uid: %(a)d, profile: tenant_a}
      - {uid: %(b)d, profile: tenant_b}
      - {uid: %(admin)d, profile: admin}
      - {uid: 0, profile: admin}
    default_profile: null
"""


def rpc(rid, method, params=None):
    msg = {"jsonrpc": "2.0", "id": rid, "method": method}
    if params is not None:
        msg["params"] = params
    return json.dumps(msg)


def tool(rid, name, arguments):
    return rpc(rid, "tools/call", {"name": name, "arguments": arguments})


class TenantEngine:
    """One engine with the tenant policy, and clients as other uids."""

    def __init__(self, config=None, files=None):
        self.http = Server()
        self.marker_dir = tempfile.mkdtemp(prefix="codemode-tenant-marks-")
        os.chmod(self.marker_dir, 0o777)  # any uid could create a marker: none may
        params = {"port": self.http.port}
        cfg = config if config is not None else CONFIG % {
            "a": UID_A, "b": UID_B, "admin": UID_ADMIN}
        files = files if files is not None else {
            "manual.json": json.dumps(MANUAL), "policy.yaml": POLICY % params}
        self.engine = Engine(cfg, files=files)
        self.client_dir = tempfile.mkdtemp(prefix="codemode-tenant-client-")
        self.script = os.path.join(self.client_dir, "client.py")
        with open(self.script, "w") as f:
            f.write(CLIENT)
        os.chmod(self.client_dir, 0o755)
        os.chmod(self.script, 0o644)
        try:
            self.engine.start()
        except Exception:
            self.cleanup()
            raise
        os.chmod(self.engine.dir, 0o711)  # reach the socket, list nothing
        os.chown(self.engine.socket, 0, SOCKET_GID)

    def marker(self, name):
        return os.path.join(self.marker_dir, name)

    def send(self, uid, lines):
        """Raw response lines, the client running as uid (gid SOCKET_GID)."""
        p = subprocess.run(
            ["setpriv", "--reuid=%d" % uid, "--regid=%d" % SOCKET_GID, "--clear-groups",
             "--inh-caps=-all", "/usr/bin/python3", "-I", self.script, self.engine.socket],
            input=json.dumps(lines), capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            raise AssertionError("client uid %d failed: %s" % (uid, p.stderr))
        return json.loads(p.stdout)

    def ask(self, uid, *lines):
        return [json.loads(r) for r in self.send(uid, list(lines))]

    def call(self, uid, name, arguments):
        return self.ask(uid, tool(1, name, arguments))[0]["result"]

    def audit(self):
        try:
            with open(os.path.join(self.engine.dir, "audit.jsonl")) as f:
                return [json.loads(l) for l in f if l.strip()]
        except OSError:
            return []

    def cleanup(self):
        """Stops and removes everything; then fails on an unclean exit or a
        sanitizer report in the engine log."""
        rc = self.engine.stop()
        log = self.engine.read_log()
        self.engine.cleanup()
        self.http.stop()
        shutil.rmtree(self.client_dir, ignore_errors=True)
        shutil.rmtree(self.marker_dir, ignore_errors=True)
        if rc != 0:
            raise AssertionError("engine exited with %s on SIGTERM; log:\n%s" % (rc, log[-4000:]))
        if "ERROR: AddressSanitizer" in log or "runtime error:" in log or "LeakSanitizer" in log:
            raise AssertionError("sanitizer report in engine log:\n" + log[-6000:])


class TenantTest(unittest.TestCase):
    """Starts one TenantEngine per test class."""

    @classmethod
    def setUpClass(cls):
        cls.t = TenantEngine()

    @classmethod
    def tearDownClass(cls):
        cls.t.cleanup()

    def refused(self, result, kind="policy_denied"):
        self.assertTrue(result["isError"], result)
        err = result["structuredContent"]["error"]
        self.assertEqual(err["kind"], kind, err)
        return err["message"]
