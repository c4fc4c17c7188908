"""hotpath.py — latency of a POOL HIT: `return 1 + 1` chains spaced apart so
every chain finds a warm sandbox (pool_size 4), measured at the client on the
engine's Unix socket (the same request bench/compare.py's latency() sends).
Prints median, p90, p99 of the client-side time, and the engine's own
wall_ms / pool_hit fields.

    python3.11 bench/hotpath.py [N=60] [GAP_S=0.15]

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


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    gap = float(sys.argv[2]) if len(sys.argv) > 2 else 0.15
    cfg = {"engine": {"workers": 16, "pool_size": 4, "pool_refill_concurrency": 2,
                      "sandbox_uid": 320000, "sandbox_gid": 320000, "sandbox_uid_range": 64}}
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
        c.close()
        print("pool hits %d, misses %d" % (len(xs), misses))
        print("client ms: median %.3f  p90 %.3f  p99 %.3f  min %.3f" %
              (statistics.median(xs), pct(xs, 0.9), pct(xs, 0.99), min(xs)))
        print("engine wall_ms: median %.3f" % statistics.median(walls))
    finally:
        eng.stop()
        if os.environ.get("HOTPATH_LOG"):  # keep the engine log (timestamps when CM_HOT=1)
            with open(os.environ["HOTPATH_LOG"], "w") as f:
                f.write(eng.read_log())
        eng.cleanup()


if __name__ == "__main__":
    main()
