"""http_rows.py — only compare.py's HTTP rows, for working on the per-call path
without the 5-minute `make bench`: trivial chain, 10 sequential and 10 gathered
HTTP calls (ours and/or the peer, the same loopback server compare.py uses),
new server connections per row (keep-alive check), and our per-call latency
timed inside the chain (no sandbox start-up in it).

    /usr/bin/python3.11 bench/http_rows.py [ours] [peer]     (N chains per row, default 60)

Needs `make all rootfs` and, for the peer, build/bench-npm (bench/sections/40-compare)."""
import os
import statistics
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402

N = int(os.environ.get("N", "60"))
INNER = """import time
xs = []
for i in range(10):
    t = time.perf_counter()
    await api.echo(msg=str(i))
    xs.append((time.perf_counter() - t) * 1000)
return xs"""


class Counting(compare.Tools):
    def setup(self):
        self.server.connections += 1
        super().setup()


def report(impl, ours, srv):
    r = compare.latency(impl, "return 1 + 1" if ours else "return 1 + 1;", N)
    print("%-5s trivial chain   p50 %7.2f ms  p99 %7.2f ms" % ("ours" if ours else "peer", r["p50"], r["p99"]), flush=True)
    for gather in (False, True):
        c0 = srv.connections
        r = compare.latency(impl, compare.tool_code(ours, "http", gather), N)
        print("%-5s 10 HTTP %-7s p50 %7.2f ms  p99 %7.2f ms  (%d chains, %d new server connections)"
              % ("ours" if ours else "peer", "gather" if gather else "seq", r["p50"], r["p99"], N, srv.connections - c0),
              flush=True)
    if ours:
        per = []
        for _ in range(N):
            per += impl.run(INNER)["result"]
        print("ours  one HTTP call timed inside the chain: p50 %.3f ms  mean %.3f  p90 %.3f  min %.3f"
              % (statistics.median(per), statistics.mean(per), compare.pct(per, 0.9), min(per)), flush=True)


def main():
    which = sys.argv[1:] or ["ours", "peer"]
    srv = compare.ToolServer(("127.0.0.1", 0), Counting)
    srv.connections = 0
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    manual = {"name": "api", "call_template_type": "http", "http_method": "GET",
              "url": "http://127.0.0.1:%d/utcp" % srv.server_port}
    try:
        for w in which:
            impl = compare.Ours([manual]) if w == "ours" else compare.Peer([manual])
            try:
                report(impl, w == "ours", srv)
            finally:
                try:
                    impl.close()
                except Exception:  # noqa: BLE001 — the peer may linger on keep-alive sockets
                    if w == "peer":
                        impl.proc.kill()
                        impl.proc.wait()
    finally:
        srv.shutdown()


if __name__ == "__main__":
    main()
