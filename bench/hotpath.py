"""hotpath.py — latency of a POOL HIT: `return 1 + 1` chains spaced apart so
every chain finds a warm sandbox (pool_size 4), measured at the client on the
engine's Unix socket (the same request bench/compare.py's latency() sends).
Prints median, p90, p99 of the client-side time, and the engine's own
wall_ms / pool_hit fields.

    python3.11 bench/hotpath.py [N=60] [GAP_S=0.15] [--manuals]

--manuals registers the tools make bench's engine has (the MCP `everything`
server over stdio and a CLI echo), so the run frame carries their interfaces.

Env CODEMODE_BIN picks the engine binary (default build/codemode); HOTPATH_LOG=path
keeps the engine's log there."""
import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from tests.integration.engine import Engine  # noqa: E402


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def bench_manuals():
    everything = os.path.join(
        ROOT, "build/npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js")
    cli = {"utcp_version": "1.0.1", "manual_version": "1.0.0", "tools": [{
        "name": "echo", "description": "echo",
        "inputs": {"type": "object", "properties": {"msg": {"type": "string"}}},
        "tool_call_template": {"call_template_type": "cli",
                               "commands": [{"command": "printf '%s' UTCP_ARG_msg_UTCP_END"}]}}]}
    return [{"name": "ev", "call_template_type": "mcp", "config": {"mcpServers": {
                "srv": {"command": "node", "args": [everything, "stdio"]}}}},
            {"name": "sh", "call_template_type": "text", "allowed_communication_protocols": ["cli"],
             "content": json.dumps(cli)}]


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[0]) if args else 60
    gap = float(args[1]) if len(args) > 1 else 0.15
    cfg = {"engine": {"workers": 16, "pool_size": 4, "pool_refill_concurrency": 2,
                      "sandbox_uid": 320000, "sandbox_gid": 320000, "sandbox_uid_range": 64}}
    if "--manuals" in sys.argv:
        cfg["manual_call_templates"] = bench_manuals()
    eng = Engine(json.dumps(cfg), "config.json").start()
    try:
        c = eng.client(timeout=60)
        deadline = time.time() + 60
        while not c.request("codemode/health")["result"]["ready"] and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # let the whole pool fill
        xs, walls, misses = [], [], 0
        for i in range(n + 3):
            time.sleep(gap)
            t = time.perf_counter()
            sc = c.chain("return 1 + 1", timeout=10)
            dt = (time.perf_counter() - t) * 1000
            assert sc["result"] == 2 and sc["error"] is None, sc
            if i < 3:
                continue  # warm-up
            if not sc["stats"]["pool_hit"]:
                misses += 1
                continue
            xs.append(dt)
            walls.append(sc["stats"]["wall_ms"])
        tools = c.call_tool("list_tools")["structuredContent"] if "--manuals" in sys.argv else None
        c.close()
        print("pool hits %d, misses %d%s" % (len(xs), misses,
                                             ", tools: %s" % json.dumps(tools)[:200] if tools else ""))
        print("client ms: p25 %.3f  median %.3f  p90 %.3f  p99 %.3f  min %.3f" %
              (pct(xs, 0.25), statistics.median(xs), pct(xs, 0.9), pct(xs, 0.99), min(xs)))
        print("engine wall_ms: median %.3f" % statistics.median(walls))
    finally:
        eng.stop()
        if os.environ.get("HOTPATH_LOG"):  # keep the engine log (timestamps when CM_HOT=1)
            with open(os.environ["HOTPATH_LOG"], "w") as f:
                f.write(eng.read_log())
        eng.cleanup()


if __name__ == "__main__":
    main()
