#!/usr/bin/env python3
"""Tokens an agent reads (issue 20), counted by a real tokenizer (npm
`gpt-tokenizer`, o200k_base): a plain MCP `tools/list` of N of GitHub's
REST operations (name, description, inputSchema per tool) versus
codemode's path for the fixed tasks (tests/eval/agent_path.py TASKS): our
tools/list + the agent prompt + one search_tools answer (limit 10, the
largest of the tasks') + the interfaces of the 3 tools they use, each as
the text that goes over the wire.  N = 50, 500 and all 1,223 (the tasks'
tools among them).  `make bench` runs it (section 50-tokens)."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from tests.eval import agent_path  # noqa: E402


def main():
    rows = [(str(n) if n else "all", agent_path.measure(n)) for n in (50, 500, None)]
    print("tokens (o200k_base) an agent reads: MCP tools/list of N GitHub tools vs codemode's path")
    print("tasks: " + "; ".join(t for t, _ in agent_path.TASKS))
    print("%-5s %6s %16s %10s %7s %7s %7s %8s %7s %7s" % (
        "N", "tools", "MCP tools/list", "ours list", "prompt", "search", "ifaces", "path",
        "ratio", "less"))
    for label, r in rows:
        print("%-5s %6d %16d %10d %7d %7d %7d %8d %6.2f%% %6.0fx" % (
            label, r["tools"], r["mcp_tools_list"], r["ours_tools_list"], r["prompt"],
            r["search_max"], r["interfaces"], r["path"], 100 * r["ratio"], 1 / r["ratio"]))
    print("targets: path <= 2.5% of MCP tools/list at N=500, <= 1% for all")


if __name__ == "__main__":
    main()
