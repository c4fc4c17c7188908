"""A chain's tool table built once per registry generation and sent ahead
(issue 18.2, engine/chain_tools.c): with thousands of tools every chain
still sees exactly the registry's tools, its interface text is the engine's,
and a registration or removal reaches the next chain even when the warm
sandboxes (and the zygote) were primed with the table before it."""
import json
import time

from tests.integration.engine import EngineTest

N = 3000


def http_tools(names):
    return [{"name": n, "description": "tool %s of the table test" % n,
             "inputs": {"type": "object", "properties": {"msg": {"type": "string"}}},
             "tool_call_template": {"call_template_type": "http", "http_method": "GET",
                                    "url": "http://127.0.0.1:9/echo"}} for n in names]


def text_manual(name, names):
    return {"name": name, "call_template_type": "text", "allowed_communication_protocols": ["http"],
            "content": json.dumps({"utcp_version": "1.0.1", "manual_version": "1.0.0",
                                   "tools": http_tools(names)})}


class ChainTools(EngineTest):
    CONFIG = json.dumps({"engine": {"pool_size": 2, "registration": {"max_tools": N + 10}},
                         "manual_call_templates": [
                             text_manual("big", ["t%05d" % i for i in range(N)])]})
    CONFIG_NAME = "config.json"

    def chains(self, code, n=6, gap=0.3):
        """n chains, spaced so refills prime the pool in between."""
        out = []
        for _ in range(n):
            r = self.client.chain(code)
            self.assertIsNone(r["error"], r)
            out.append(r["result"])
            time.sleep(gap)
        return out

    def test_every_chain_sees_the_whole_table(self):
        self.assertEqual(self.chains("return [len(dir(big)), big.t02999.__qualname__]"),
                         [[N, "big.t02999"]] * 6)

    def test_interface_text_is_the_engines(self):
        # `interfaces` in a chain is the compact index (issue 20)
        want_all = self.client.call_tool("get_all_tools_python_interfaces",
                                         {"detail": "index"})["structuredContent"]
        want_one = self.client.call_tool("get_tool_interface", {"tool_name": "big.t00042"})
        got = self.chains("return [interfaces, get_tool_interface('big.t00042')]", n=2)
        for text, one in got:
            self.assertEqual(text, want_all["interfaces"])
            self.assertEqual(one, want_one["structuredContent"]["interface"])
            self.assertIn("t00042", one)

    def test_registration_and_removal_reach_primed_sandboxes(self):
        self.chains("return 1", n=3)  # pool and zygote primed with the table without `extra`
        r = self.client.call_tool("register_manual",
                                  {"manual_call_template": text_manual("extra", ["x1", "x2"])})
        self.assertFalse(r["isError"], r)
        try:
            self.assertEqual(self.chains("return [sorted(dir(extra)), len(dir(big))]", n=6, gap=0.2),
                             [[["x1", "x2"], N]] * 6)
        finally:
            r = self.client.call_tool("deregister_manual", {"manual_name": "extra"})
            self.assertFalse(r["isError"], r)
        self.assertEqual(self.chains("return ['extra' in globals(), len(dir(big))]", n=6, gap=0.2),
                         [[False, N]] * 6)
