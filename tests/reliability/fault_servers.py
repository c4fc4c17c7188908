"""Misbehaving providers for the reliability suite (stdlib only).

As a script: a stdio MCP server whose tools misbehave on purpose
(`python3 fault_servers.py mcp`): `ok` answers, `crash` exits mid-call,
`hang` never answers, `garbage` writes non-JSON and then nothing.
As a module: FaultHTTP, a loopback HTTP server whose paths reset the
connection, stall the headers or the body, answer 5xx or never end."""
import http.server
import json
import os
import socket
import socketserver
import struct
import sys
import threading
import time


def _mcp_reply(rid, result):
    sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": rid, "result": result}) + "\n")
    sys.stdout.flush()


MCP_TOOLS = [{"name": n, "description": "fault: " + n,
              "inputSchema": {"type": "object", "properties": {}}}
             for n in ("ok", "crash", "hang", "garbage")]


def run_mcp():
    for line in sys.stdin:
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        method, rid = msg.get("method"), msg.get("id")
        if method == "initialize":
            _mcp_reply(rid, {"protocolVersion": msg.get("params", {}).get("protocolVersion", "2025-06-18"),
                             "capabilities": {"tools": {}},
                             "serverInfo": {"name": "faulty", "version": "1"}})
        elif method == "tools/list":
            _mcp_reply(rid, {"tools": MCP_TOOLS})
        elif method == "tools/call":
            name = msg.get("params", {}).get("name")
            if name == "crash":
                os._exit(3)
            if name == "hang":
                time.sleep(3600)
            if name == "garbage":
                sys.stdout.write("\x00\xff not json {{{\n" * 50)
                sys.stdout.write("x" * (1 << 20) + "\n")
                sys.stdout.flush()
                time.sleep(3600)
            _mcp_reply(rid, {"content": [{"type": "text", "text": "fine"}]})
        elif rid is not None:
            _mcp_reply(rid, {})


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        self.do_POST()

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        p = self.path.split("?")[0]
        if p == "/ok":
            return self._send(200, b'{"fine": true}')
        if p == "/reset":
            # RST instead of FIN: SO_LINGER 0 then close
            # (the buffered files hold the socket open: close them first)
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.wfile.close()
            self.rfile.close()
            self.connection.close()
            return
        if p == "/500":
            return self._send(500, b'{"error": "boom"}')
        if p == "/503":
            return self._send(503, b"unavailable")
        if p == "/slowheaders":
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            self.wfile.flush()
            return self._dribble(b"X-Slow: a\r\n")
        if p == "/slowbody":
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
            self.wfile.flush()
            return self._dribble(b"a")
        if p == "/endless":
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b"%x\r\n%s\r\n" % (65536, b"z" * 65536)
            try:
                while not self.server.stopping:
                    self.wfile.write(chunk)
            except OSError:
                pass
            self.close_connection = True
            return
        self._send(404, b"no")

    def _dribble(self, piece):
        try:
            while not self.server.stopping:
                self.wfile.write(piece)
                self.wfile.flush()
                time.sleep(0.5)
        except OSError:
            pass
        self.close_connection = True

    def _send(self, code, body):
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    stopping = False

    def handle_error(self, request, client_address):
        pass  # the faults are deliberate


class FaultHTTP:
    """Loopback HTTP server with faulty paths; base is http://127.0.0.1:port."""

    PATHS = ("ok", "reset", "500", "503", "slowheaders", "slowbody", "endless")

    def __init__(self):
        self.srv = _Server(("127.0.0.1", 0), _Handler)
        self.base = "http://127.0.0.1:%d" % self.srv.server_address[1]
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()

    def manual(self):
        return {"utcp_version": "1.0.1", "manual_version": "1.0.0", "tools": [
            {"name": "p" + p, "inputs": {"type": "object", "properties": {}},
             "tool_call_template": {"call_template_type": "http", "http_method": "GET",
                                    "url": self.base + "/" + p}} for p in self.PATHS]}

    def stop(self):
        self.srv.stopping = True
        self.srv.shutdown()
        self.srv.server_close()


if __name__ == "__main__" and sys.argv[1:] == ["mcp"]:
    run_mcp()
