"""Search evaluation (issue 20): registers GitHub's REST description and two
public APIs (tests/eval/search_tasks.json) in a real engine and asks
search_tools for every task; a task is found when one of its expected tools
ranks in the top 3.  Reports top-1/top-3 accuracy, MRR (over the top 10)
and the tasks missed.  `python3 -m tests.eval.search_eval` prints the
report; tests/eval/test_search_eval.py asserts on it (make search-eval,
part of make test)."""
import json
import os
import sys

from tests.integration.engine import ROOT, Engine

NPM = os.path.join(ROOT, "build", "npm", "node_modules")
TASKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "search_tasks.json")


def load_tasks():
    with open(TASKS) as f:
        return json.load(f)


def file_manual(name, path):
    # an OpenAPI description read from a file: its operations are http tools
    return {"name": name, "call_template_type": "file", "file_path": path,
            "allowed_communication_protocols": ["http"]}


def register_apis(client, apis):
    """Registers each API; returns the number of tools registered."""
    total = 0
    for name, rel in apis.items():
        path = os.path.join(NPM, rel)
        if not os.path.exists(path):
            raise RuntimeError("%s is missing: run `make npm-deps`" % path)
        r = client.call_tool("register_manual", {"manual_call_template": file_manual(name, path)})
        if r["isError"]:
            raise RuntimeError("registering %s failed: %s" % (name, r["structuredContent"]))
        total += len(r["structuredContent"]["tools"])
    return total


def evaluate(client, tasks, limit=10):
    """[(task, expected, rank or None, top names)] with ranks from 1."""
    rows = []
    for t in tasks:
        r = client.call_tool("search_tools", {"task_description": t["task"], "limit": limit,
                                              "detail": "full"})
        names = [x["name"] for x in r["structuredContent"]["tools"]]
        ranks = [names.index(e) + 1 for e in t["expect"] if e in names]
        rows.append((t["task"], t["expect"], min(ranks) if ranks else None, names))
    return rows


def summary(rows):
    n = len(rows)
    top1 = sum(1 for r in rows if r[2] == 1)
    top3 = sum(1 for r in rows if r[2] is not None and r[2] <= 3)
    mrr = sum(1.0 / r[2] for r in rows if r[2] is not None) / n
    missed = [r for r in rows if r[2] is None or r[2] > 3]
    return {"tasks": n, "top1": top1 / n, "top3": top3 / n, "mrr": mrr, "missed": missed}


def run():
    spec = load_tasks()
    eng = Engine(json.dumps({"engine": {"pool_size": 0}}), "config.json").start()
    try:
        client = eng.client(timeout=300)
        ntools = register_apis(client, spec["apis"])
        rows = evaluate(client, spec["tasks"])
        client.close()
    finally:
        eng.stop()
        eng.cleanup()
    return ntools, summary(rows)


def report(ntools, s, out=sys.stdout):
    out.write("search eval: %d tasks over %d tools: top-1 %.1f%%, top-3 %.1f%%, MRR %.3f\n"
              % (s["tasks"], ntools, 100 * s["top1"], 100 * s["top3"], s["mrr"]))
    for task, expect, rank, names in s["missed"]:
        out.write("  missed (rank %s): %r wants %s; got %s\n"
                  % (rank or ">10", task, " or ".join(expect), ", ".join(names[:3])))


if __name__ == "__main__":
    report(*run())
