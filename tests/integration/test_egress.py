"""HTTP egress decided by the caller's policy profile, end to end: a real
engine with a policy, an http manual pointing at a loopback server, and
chains whose calls are allowed or refused by the profile's `http` rules —
including a redirect to a host the profile does not allow."""
import json

from tests.integration import http_fixture
from tests.integration.engine import Engine, EngineTest

POLICY = """\
version: 1
profiles:
  default:
    tools:
      - {name: web, match: "web.*", allow: true}
    http:
      - {host: 127.0.0.1, schemes: [http], ports: [%d]}
  closed:
    tools:
      - {name: web, match: "web.*", allow: true}
"""

CONFIG = """
manual_call_templates:
  - name: web
    call_template_type: file
    file_path: manual.json
    allowed_communication_protocols: [http]
engine:
  policy:
    file: policy.yaml
    callers:
      - {uid: 0, profile: %s}
    default_profile: null
"""


def manual(base, other_base):
    t = lambda name, url: {"name": name, "description": name, "inputs": {"type": "object"},
                           "tool_call_template": {"call_template_type": "http",
                                                  "http_method": "GET", "url": url}}
    return {"utcp_version": "1.0.1", "manual_version": "1.0.0",
            "tools": [t("get", base + "/echo/get"),
                      t("other_port", other_base + "/echo/get"),
                      t("hop_away", base + "/redirect?to=" + other_base + "/echo/get")]}


class EgressBase(EngineTest):
    PROFILE = "default"

    @classmethod
    def setUpClass(cls):
        cls.srv = http_fixture.Server()
        cls.addClassCleanup(cls.srv.stop)  # runs even when setUpClass fails
        cls.other = http_fixture.Server()
        cls.addClassCleanup(cls.other.stop)
        cls.CONFIG = CONFIG % cls.PROFILE
        cls.FILES = {"policy.yaml": POLICY % cls.srv.port,
                     "manual.json": json.dumps(manual(cls.srv.base, cls.other.base))}
        super().setUpClass()


class EgressAllowedByRule(EgressBase):

    def test_listed_host_and_port_allowed(self):
        r = self.client.chain("return await web.get()")
        self.assertIsNone(r["error"], r)

    def test_unlisted_port_denied(self):
        r = self.client.chain("return await web.other_port()")
        self.assertEqual(r["error"]["kind"], "policy_denied", r)
        self.assertIn(str(self.other.port), r["error"]["message"])
        self.assertFalse([l for l in self.other.httpd.log if "/echo/get" in str(l)])

    def test_redirect_to_unlisted_port_denied(self):
        r = self.client.chain("return await web.hop_away()")
        self.assertEqual(r["error"]["kind"], "policy_denied", r)
        self.assertIn("redirect", r["error"]["message"])


class EgressClosedProfile(EgressBase):
    PROFILE = "closed"

    def test_profile_without_http_rules_has_no_egress(self):
        r = self.client.chain(
            "try:\n    await web.get()\nexcept PolicyDenied as e:\n    return e.message\n")
        self.assertIsNone(r["error"], r)
        self.assertIn("127.0.0.1", r["result"])
