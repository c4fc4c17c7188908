"""Soak: N chains at concurrency C against one engine, one in ten hostile
(memory bomb, fork bomb, spin, garbage on the control socket, huge output).
Counts sent vs answered, engine crashes, and the engine's fds, RSS, threads,
sandbox processes, cgroups and mounts before vs after, and every answer whose
error kind is not the one its program must get (issue 18.7: a plain `raise
ValueError` answered sandbox_failure, a 300 MB `return` at the memory cap
answered timeout).

    python3 -m tests.reliability.soak [--chains N] [--concurrency C]
Prints one JSON report; exits 1 when a check fails."""
import argparse
import json
import sys
import threading
import time

from tests.integration.engine import Engine
from tests.reliability import census

NORMAL = [
    "return sum(range(1000))",
    "print('hello')\nreturn 'ok'",
    "import json\nreturn json.dumps({'a': [1, 2, 3]})",
    "return await search_tools(query='x')",
    "raise ValueError('boom')",
]
# the kind each normal program must end with (None: success)
NORMAL_KIND = {"raise ValueError('boom')": "exception"}
HOSTILE = {
    "memory_bomb": "x = []\nwhile True:\n    x.append(' ' * (1 << 20))",
    "fork_bomb": "import threading\nts = []\nwhile True:\n    t = threading.Thread(target=lambda: __import__('time').sleep(5))\n    t.start()\n    ts.append(t)",
    "spin": "while True:\n    pass",
    "garbage_frames": "import gc\nfor o in gc.get_objects():\n    if hasattr(o, 'send_bytes') and not isinstance(o, type):\n        o.send_bytes(b'\\xff' * 100)\n        break\nreturn 'sent'",
    "huge_output": "while True:\n    print('y' * 65536)",
    "big_return": "return 'x' * (300 << 20)",
}
# the kinds each hostile program may end with
HOSTILE_KINDS = {"memory_bomb": {"memory_limit"}, "fork_bomb": {"exception"}, "spin": {"timeout"},
                 "garbage_frames": {"exception"}, "huge_output": {"output_limit"},
                 "big_return": {"memory_limit"}}
CONFIG = {"engine": {"workers": 4, "default_timeout_s": 2, "memory_mb": 64, "queue_max": 64,
                     "client_queue_max": 64}}


def run(chains, concurrency):
    e = Engine(json.dumps(CONFIG)).start()
    try:
        warm = e.client(timeout=60)
        warm.chain("return 1")
        time.sleep(0.5)
        before = census.engine(e.proc.pid)
        lock = threading.Lock()
        counts = {"sent": 0, "answered": 0, "kinds": {}, "hostile": 0,
                  "transport_errors": 0, "wrong_kinds": {}}
        next_i = [0]

        def worker():
            c = e.client(timeout=120)
            while True:
                with lock:
                    i = next_i[0]
                    if i >= chains:
                        break
                    next_i[0] += 1
                    counts["sent"] += 1
                if i % 10 == 9:
                    name = list(HOSTILE)[(i // 10) % len(HOSTILE)]
                    code = HOSTILE[name]
                    allowed = HOSTILE_KINDS[name]
                else:
                    code = NORMAL[i % len(NORMAL)]
                    name = "normal %d" % (i % len(NORMAL))
                    allowed = {NORMAL_KIND.get(code, "ok")}
                try:
                    r = c.call_tool("call_tool_chain", {"code": code})
                    kind = r["structuredContent"]["error"]["kind"] if r["isError"] else "ok"
                except Exception as ex:  # noqa: BLE001 - counted, reported
                    kind = "transport:" + type(ex).__name__
                    c.close()
                    c = e.client(timeout=120)
                with lock:
                    if not kind.startswith("transport:"):
                        counts["answered"] += 1
                    else:
                        counts["transport_errors"] += 1
                    counts["kinds"][kind] = counts["kinds"].get(kind, 0) + 1
                    if kind not in allowed and not kind.startswith("transport:"):
                        w = counts["wrong_kinds"].setdefault(name, {})
                        w[kind] = w.get(kind, 0) + 1
                        if len(counts.setdefault("wrong_examples", [])) < 5:
                            counts["wrong_examples"].append({"program": name, "answer": r})
                    if i % 10 == 9:
                        counts["hostile"] += 1
            c.close()

        t0 = time.time()
        threads = [threading.Thread(target=worker) for _ in range(concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        took = time.time() - t0
        time.sleep(1.0)
        crashed = e.proc.poll() is not None
        after = census.engine(e.proc.pid) if not crashed else None
        warm.close()
        rc = e.stop()
        log = e.read_log()
        report = dict(counts, seconds=round(took, 1), rate=round(chains / took, 1),
                      engine_crashes=int(crashed or rc != 0), before=before, after=after,
                      sanitizer_report=("ERROR: AddressSanitizer" in log or "runtime error:" in log))
        return report
    finally:
        e.cleanup()


def check(rep):
    """Returns the list of failed checks (empty = pass)."""
    bad = []
    if rep["sent"] != rep["answered"]:
        bad.append("sent %d != answered %d" % (rep["sent"], rep["answered"]))
    if rep["wrong_kinds"]:
        bad.append("wrong error kinds: %s" % json.dumps(rep["wrong_kinds"]))
    if rep["engine_crashes"]:
        bad.append("engine crashed / bad exit")
    if rep["sanitizer_report"]:
        bad.append("sanitizer report")
    b, a = rep["before"], rep["after"] or {}
    if a:
        if a["fds"] > b["fds"] + 8:
            bad.append("fd growth %d -> %d" % (b["fds"], a["fds"]))
        if a["rss"] > b["rss"] + (64 << 20):
            bad.append("RSS growth %d -> %d" % (b["rss"], a["rss"]))
        if a["sandbox_procs"] > b["sandbox_procs"]:
            bad.append("sandbox processes %d -> %d" % (b["sandbox_procs"], a["sandbox_procs"]))
        if a["cgroups"] > b["cgroups"]:
            bad.append("cgroups %d -> %d" % (b["cgroups"], a["cgroups"]))
    return bad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--chains", type=int, default=10000)
    ap.add_argument("--concurrency", type=int, default=16)
    a = ap.parse_args()
    rep = run(a.chains, a.concurrency)
    rep["failed_checks"] = check(rep)
    print(json.dumps(rep, indent=1))
    sys.exit(1 if rep["failed_checks"] else 0)


if __name__ == "__main__":
    main()
