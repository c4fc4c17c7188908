"""Per-call latency of http and MCP stdio tools from chains (not part of make test):
   /usr/bin/python3.11 tests/bench_providers.py"""
import json, os, statistics, sys, time
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tests.integration import http_fixture
from tests.integration.engine import Engine
from tests.integration.test_providers import EVERYTHING, NODE
srv = http_fixture.Server()
cfg = {"manual_call_templates": [
    {"name": "api", "call_template_type": "http", "url": srv.base + "/utcp"},
    {"name": "ev", "call_template_type": "mcp", "config": {"mcpServers": {"srv": {"command": NODE, "args": [EVERYTHING, "stdio"]}}}}]}
e = Engine(json.dumps(cfg), "config.json").start()
c = e.client()
def run(code, n=30):
    ws = []
    for _ in range(n):
        t = time.perf_counter(); r = c.chain(code); ws.append((time.perf_counter() - t) * 1000)
        assert r["error"] is None, r
    return statistics.median(ws)
base = run("return 1")
h1 = run("return await api.get_echo()")
h10 = run("for _ in range(10):\n    await api.get_echo()\nreturn 1")
m1 = run("return await ev.srv_echo(message='x')")
m10 = run("for _ in range(10):\n    await ev.srv_echo(message='x')\nreturn 1")
g10 = run("import asyncio\nawait asyncio.gather(*[api.slow() for _ in range(10)])\nreturn 1", 10)
print("medians of 30 chains (ms): trivial %.1f | 1 http %.1f | 10 http seq %.1f (%.2f/call) | 1 mcp stdio %.1f | 10 mcp seq %.1f (%.2f/call) | gather 10x100ms slow %.1f" % (
    base, h1, h10, (h10 - base) / 10, m1, m10, (m10 - base) / 10, g10))
# per-call latency measured inside the chain (no sandbox start-up noise)
inner = [c.chain("import time\nawait api.get_echo()\nt = time.perf_counter()\n"
                 "for _ in range(10):\n    await api.get_echo()\n"
                 "return (time.perf_counter() - t) * 100")["result"] for _ in range(40)]
print("10 sequential http calls timed in the chain: median %.2f ms/call (40 chains)" %
      statistics.median(inner))
c.close(); e.stop(); e.cleanup(); srv.stop()
