"""floor.py — the bench's "floor" row: the cheapest round trip a chain could
possibly cost here, with no sandbox and no engine: a Unix-socket round trip
to an already-running Python that compiles and execs `return 1 + 1` as the
body of a function, calls it and answers the JSON result.  Every real chain
pays at least this; compare.py prints how far we are above it.

    /usr/bin/python3.11 bench/floor.py SOCKET     (the server; compare.py starts it)"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time


def serve(path):
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(4)
    print("ready", flush=True)
    conn, _ = srv.accept()
    f = conn.makefile("rwb", buffering=0)
    for line in f:
        code = json.loads(line)["code"]
        body = "def __chain__():\n" + "".join("    " + ln + "\n" for ln in code.splitlines())
        g = {}
        exec(compile(body, "<chain>", "exec"), g)
        f.write(json.dumps({"result": g["__chain__"]()}).encode() + b"\n")


class Floor:
    """The client side: start the server, time round trips."""
    name = "floor"

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="cm-floor-")
        path = os.path.join(self.dir, "s")
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), path],
                                     stdout=subprocess.PIPE, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("floor server did not start")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.f = self.sock.makefile("rwb", buffering=0)

    def run(self, code):
        self.f.write(json.dumps({"code": code}).encode() + b"\n")
        return json.loads(self.f.readline())["result"]

    def close(self):
        self.sock.shutdown(socket.SHUT_RDWR)
        self.f.close()
        self.sock.close()
        self.proc.wait(10)
        os.unlink(os.path.join(self.dir, "s"))
        os.rmdir(self.dir)


if __name__ == "__main__":
    if len(sys.argv) == 2:
        serve(sys.argv[1])
    else:
        fl = Floor()
        xs = []
        for _ in range(1000):
            t = time.perf_counter()
            assert fl.run("return 1 + 1") == 2
            xs.append((time.perf_counter() - t) * 1000)
        fl.close()
        xs.sort()
        print("floor p50 %.3f ms p99 %.3f ms" % (xs[500], xs[990]))
