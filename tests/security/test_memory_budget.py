"""Bounded engine memory (issue 14, deliverable 4): tool-call data in flight
is counted per chain (engine.chain_inflight_mb) and for the engine
(engine.inflight_mb); a call over a budget, or bigger than engine.max_call_mb,
gets a tool_error naming the key, and the engine's RSS stays bounded: < 200 MB
under one chain gathering 16 calls with 5 MB arguments, < 500 MB with 16 such
chains at once (the shipped defaults), and it goes back down afterwards.

The calls go to a real loopback HTTP server whose /slow endpoint reads the
body and holds the answer, so the calls really are in flight together.
Under ASan the RSS numbers are the sanitizer's (shadow memory, quarantine):
only the error behaviour is asserted there."""
import json
import os
import re
import threading
import time
import unittest

from tests.integration import http_fixture
from tests.integration.engine import BIN, EngineTest

ASAN = "asan" in BIN
MB = 1 << 20
ARG_MB = 5

REFUSED = re.compile(r"tool call of \d+ bytes (refused: the (chain|engine) already has \d+ bytes "
                     r"of tool-call data in flight.*\(engine\.(chain_)?inflight_mb\)|exceeds the "
                     r"limit of \d+ bytes for one call \(engine\.max_call_mb\))")


def rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def manual(base):
    def tool(name, path, method="POST"):
        return {"name": name, "description": name, "inputs": {"type": "object", "properties": {}},
                "tool_call_template": {"call_template_type": "http", "http_method": method,
                                       "url": base + path, "body_field": "payload",
                                       "content_type": "text/plain"}}
    return {"utcp_version": "1.0.1", "manual_version": "1.0.0",
            "tools": [tool("hold", "/slow?ms=1500"), tool("quick", "/slow?ms=1"),
                      tool("big", "/big", "GET")]}  # /big: 3 MiB of text


def hostile(n=16, mb=ARG_MB):
    """A chain gathering n calls with an mb MB argument each; it returns, per
    call, the answer or the error text."""
    return ("import asyncio\n"
            "big = 'x' * (%d << 20)\n"
            "rs = await asyncio.gather(*[api.hold(payload=big) for _ in range(%d)],"
            " return_exceptions=True)\n"
            "return [r if isinstance(r, dict) else str(r) for r in rs]\n" % (mb, n))


class Sampler:
    """Peak VmRSS of a process, sampled every 20 ms while running."""

    def __init__(self, pid):
        self.pid, self.peak, self.stop = pid, 0.0, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            time.sleep(0.02)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


class MemoryBudget(EngineTest):

    @classmethod
    def setUpClass(cls):
        cls.http = http_fixture.Server()
        cls.addClassCleanup(cls.http.stop)  # runs even when setUpClass fails
        cls.CONFIG = json.dumps({"manual_call_templates": [
            {"name": "api", "call_template_type": "text", "allowed_communication_protocols": ["http"],
             "content": json.dumps(manual(cls.http.base))}],
            # 16 chains at once, like a busy multi-tenant engine
            "engine": {"workers": 16}})
        super().setUpClass()

    def pid(self):
        return self.engine.proc.pid

    def check_results(self, r, n=16):
        """Every call either came back from the server or was refused with
        the precise budget message; returns how many were refused."""
        self.assertIsNone(r["error"], r)
        self.assertEqual(len(r["result"]), n)
        refused = 0
        for x in r["result"]:
            if isinstance(x, dict):
                self.assertEqual(x, {"slept_ms": 1500})
            else:
                self.assertRegex(x, REFUSED)
                refused += 1
        return refused

    def run_chains(self, k):
        out, errs = [], []

        def one():
            c = self.engine.client(120)
            try:
                out.append(c.chain(hostile(), timeout=60))
            except Exception as e:  # noqa: BLE001 - reported below
                errs.append(e)
            finally:
                c.close()
        ths = [threading.Thread(target=one) for _ in range(k)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        self.assertEqual(errs, [])
        return out

    def settle(self):
        """RSS once the engine is idle again (the reaper may still run)."""
        time.sleep(0.5)
        return rss_mb(self.pid())

    def test_1_one_hostile_chain(self):
        base = self.settle()
        peaks, afters = [], []
        for _ in range(2):  # a second run must not grow the engine further
            with Sampler(self.pid()) as s:
                r = self.run_chains(1)[0]
            refused = self.check_results(r)
            # 16 x 5 MB is over engine.chain_inflight_mb (32): some were refused
            self.assertGreater(refused, 0, r["result"])
            self.assertLess(refused, 16, r["result"])
            self.assertTrue(any("engine.chain_inflight_mb" in x for x in r["result"]
                                if isinstance(x, str)), r["result"])
            peaks.append(s.peak)
            afters.append(self.settle())
        print("\n  one chain, 16 x %d MB: RSS %.0f MB before, peaks %s, after %s"
              % (ARG_MB, base, ["%.0f" % p for p in peaks], ["%.0f" % a for a in afters]))
        if ASAN:
            return
        self.assertLess(max(peaks), 200)
        self.assertLess(afters[1], afters[0] + 10)
        self.assertLess(afters[1], base + 40)

    def test_2_sixteen_hostile_chains(self):
        base = self.settle()
        with Sampler(self.pid()) as s:
            rs = self.run_chains(16)
        refused = [self.check_results(r) for r in rs]
        after = self.settle()
        print("\n  16 chains, 16 x %d MB each: RSS %.0f MB before, peak %.0f, after %.0f; "
              "%d of 256 calls refused" % (ARG_MB, base, s.peak, after, sum(refused)))
        self.assertEqual(len(rs), 16)
        self.assertGreater(sum(refused), 0)
        if ASAN:
            return
        self.assertLess(s.peak, 500)
        self.assertLess(after, base + 40)

    def test_3_normal_chain_afterwards(self):
        r = self.client.chain("return (await api.quick(payload='hi'))['slept_ms']")
        self.assertIsNone(r["error"], r)
        self.assertEqual(r["result"], 1)
        # the whole budget is free again: 4 calls of 5 MB fit one chain
        r = self.client.chain(hostile(4), timeout=60)
        self.assertEqual(self.check_results(r, 4), 0, r["result"])

    def test_5_budget_given_back_on_timeout(self):
        # each chain times out holding ~31 MB of calls; were that not given
        # back, three would use up engine.inflight_mb (96) for good
        # (the calls' own deadline stops them just before the chain's: on a
        # busy machine the chain may then still return, every call failed)
        for _ in range(4):
            r = self.client.chain(hostile(), timeout=1)
            if r["error"] is None:
                for x in r["result"]:
                    self.assertRegex(x, "timed out \\(stopped before the chain's timeout|"
                                     + REFUSED.pattern, r)
            else:
                self.assertIn(r["error"]["kind"], ("timeout", "exception", "tool_error"), r)
        r = self.client.chain(hostile(6), timeout=60)
        self.assertEqual(self.check_results(r, 6), 0, r["result"])

    def test_4_call_over_max_call_mb(self):
        r = self.client.chain("big = 'x' * (9 << 20)\n"
                              "try:\n"
                              "    await api.quick(payload=big)\n"
                              "except ToolError as e:\n"
                              "    return str(e)\n")
        self.assertIsNone(r["error"], r)
        self.assertRegex(r["result"], r"api\.quick: tool call of \d+ bytes exceeds the limit of "
                                      r"8388608 bytes for one call \(engine\.max_call_mb\)")


class ResultCap(EngineTest):
    """engine.max_call_result_mb: a tool result over it reaches the chain as
    a tool_error naming the sizes and the key, not as the value."""

    @classmethod
    def setUpClass(cls):
        cls.http = http_fixture.Server()
        cls.addClassCleanup(cls.http.stop)
        cls.CONFIG = json.dumps({"manual_call_templates": [
            {"name": "api", "call_template_type": "text", "allowed_communication_protocols": ["http"],
             "content": json.dumps(manual(cls.http.base))}],
            "engine": {"max_call_result_mb": 1, "max_tool_output_bytes": 8 * MB}})
        super().setUpClass()

    def test_result_over_the_cap_is_a_tool_error(self):
        r = self.client.chain("try:\n"
                              "    await api.big()\n"
                              "except ToolError as e:\n"
                              "    return str(e)\n")
        self.assertIsNone(r["error"], r)
        self.assertRegex(r["result"], r"^api\.big: result of \d+ bytes exceeds the limit of "
                                      r"1048576 bytes for one tool result "
                                      r"\(engine\.max_call_result_mb\)$")
        r = self.client.chain("return (await api.quick(payload='x'))['slept_ms']")
        self.assertEqual(r["result"], 1, r)


if __name__ == "__main__":
    unittest.main()
