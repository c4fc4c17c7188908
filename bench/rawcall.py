"""rawcall.py — the tool servers' own time, for compare.py's per-call
overhead rows (issue 18.4): a raw client makes the same 10 sequential echo
calls a chain makes, straight to the same server (a keep-alive HTTP
connection to the bench's tool server; JSON-RPC over the pipes of an MCP
`everything` server started the same way the engine starts it), with no
engine, sandbox or provider in between.  Each side has compare.py's
`run(code)` shape (the code is ignored) and returns the 10 answers, so the
row checks them like a chain's result.

The overhead of one call inside a chain is then
(chain of 10 calls - trivial chain - raw 10 calls) / 10, from samples taken
alternately in one latency_pair."""
import http.client
import json
import subprocess


class RawHTTP:
    name = "raw HTTP client"

    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port)

    def run(self, code):
        out = []
        for i in range(10):
            self.conn.request("GET", "/echo?msg=m%dz" % i)
            r = self.conn.getresponse()
            body = r.read()
            if r.status != 200:
                raise SystemExit("bench: raw HTTP echo answered %d: %.200r" % (r.status, body))
            out.append(json.loads(body))
        return out

    def close(self):
        self.conn.close()


class RawMCP:
    name = "raw MCP stdio client"

    def __init__(self, node, server):
        self.proc = subprocess.Popen([node, server, "stdio"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.next_id = 0
        self.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                    "clientInfo": {"name": "bench-raw", "version": "1"}})
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def send(self, msg):
        self.proc.stdin.write(json.dumps(msg).encode() + b"\n")
        self.proc.stdin.flush()

    def request(self, method, params):
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise SystemExit("bench: the raw MCP server closed its output")
            msg = json.loads(line)
            if msg.get("id") == self.next_id and "method" not in msg:
                if "error" in msg:
                    raise SystemExit("bench: raw MCP %s failed: %.200r" % (method, msg["error"]))
                return msg["result"]

    def run(self, code):
        return [self.request("tools/call", {"name": "echo", "arguments": {"message": "m%dz" % i}})
                for i in range(10)]

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
