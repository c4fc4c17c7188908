"""The pod-local HTTP API the ConfigMap's `node.api_status` tool calls: a
real HTTP server on 127.0.0.1:8080, started by the tests inside the pod's
network namespace.  GET /status answers JSON; it counts requests, so a
test can see that each call reached it."""
import http.server
import json
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    served = 0

    def do_GET(self):
        Handler.served += 1
        body = json.dumps({"ok": self.path == "/status", "path": self.path,
                           "served": Handler.served}).encode()
        self.send_response(200 if self.path == "/status" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    server = http.server.HTTPServer(("127.0.0.1", 8080), Handler)
    print("listening on 127.0.0.1:8080", flush=True)
    sys.stdout.close()
    server.serve_forever()


if __name__ == "__main__":
    main()
