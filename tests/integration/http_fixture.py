"""A real HTTP server on loopback (Python stdlib) for the http/OpenAPI
provider tests: a UTCP manual, an OpenAPI 3 document with $refs and an
API-key-protected endpoint, OAuth2 client credentials, redirects (same and
cross origin), slow and failing endpoints.  It logs every request, and the
/slow endpoint (?ms=N, default 100) counts how many requests overlap (the
concurrency proof) and how many finished."""
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API_KEY = "k-123"
CLIENT_ID, CLIENT_SECRET = "cid", "csecret"


def utcp_manual(base):
    def http(name, method, path, **kw):
        t = {"call_template_type": "http", "http_method": method, "url": base + path}
        t.update(kw)
        return {"name": name, "description": name + " over http", "tags": ["http"],
                "inputs": {"type": "object", "properties": {}}, "tool_call_template": t}
    return {"utcp_version": "1.0.1", "manual_version": "1.0.0", "tools": [
        http("echo", "POST", "/echo/{kind}", header_fields=["X-Trace"], body_field="payload",
             headers={"X-Static": "static-value"}),
        http("get_echo", "GET", "/echo/get"),
        http("slow", "GET", "/slow"),
        http("fail", "GET", "/fail"),
        http("text", "GET", "/text"),
        http("redirect_same", "GET", "/redirect?to=/echo/get",
             auth={"auth_type": "api_key", "api_key": "${SECRET_TOKEN}", "var_name": "X-Secret"}),
        http("redirect_cross", "GET", "/redirect-cross",
             auth={"auth_type": "api_key", "api_key": "${SECRET_TOKEN}", "var_name": "X-Secret"}),
        http("redirect_loop", "GET", "/loop"),
        http("basic", "GET", "/basic", auth={"auth_type": "basic", "username": "u", "password": "p w"}),
        http("oauth", "GET", "/oauth/data",
             auth={"auth_type": "oauth2", "token_url": base + "/oauth/token",
                   "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "scope": "read"}),
        http("form", "POST", "/echo/form", content_type="application/x-www-form-urlencoded"),
        http("big", "GET", "/big"),
    ]}


def openapi_doc():
    return {
        "openapi": "3.0.3",
        "info": {"title": "Pets", "version": "2.1.0"},
        "servers": [{"url": "/api"}],
        "components": {
            "securitySchemes": {"key": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
            "parameters": {"PetId": {"name": "petId", "in": "path", "required": True,
                                     "schema": {"$ref": "#/components/schemas/Id"}}},
            "schemas": {
                "Id": {"type": "integer", "minimum": 1},
                "Pet": {"type": "object", "required": ["name"], "properties": {
                    "name": {"type": "string"}, "owner": {"$ref": "#/components/schemas/Owner"}}},
                "Owner": {"type": "object", "properties": {
                    "name": {"type": "string"},
                    "pets": {"type": "array", "items": {"$ref": "#/components/schemas/Pet"}}}},
            },
        },
        "security": [{"key": []}],
        "paths": {
            "/pets/{petId}": {
                "parameters": [{"$ref": "#/components/parameters/PetId"}],
                "get": {"operationId": "getPet", "summary": "Get a pet", "tags": ["pets"],
                        "security": [{"key": []}],
                        "parameters": [{"name": "verbose", "in": "query",
                                        "schema": {"type": "boolean"}}],
                        "responses": {"200": {"description": "ok", "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}}}}},
            },
            "/pets": {
                "post": {"summary": "Create a pet", "requestBody": {"required": True, "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}}},
                    "responses": {"201": {"description": "created"}}},
            },
        },
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True   # headers and body are separate writes

    def log_message(self, *a):
        pass

    def reply(self, status, body, ctype="application/json", headers=None):
        data = body if isinstance(body, bytes) else (
            json.dumps(body) if ctype.endswith("json") else body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        return self._body

    def handle_any(self):
        srv = self.server
        u = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(u.query)
        srv.log.append({"method": self.command, "path": u.path, "query": u.query,
                        "port": self.client_address[1],
                        "headers": dict(self.headers)})
        base = "http://127.0.0.1:%d" % srv.server_address[1]
        n = int(self.headers.get("Content-Length") or 0)   # always drain (keep-alive)
        self._body = self.rfile.read(n).decode() if n else ""
        p = u.path
        if p == "/utcp":
            return self.reply(200, utcp_manual(base))
        if p == "/openapi.json":
            return self.reply(200, openapi_doc())
        if p.startswith("/echo/"):
            body = self.body()
            return self.reply(200, {"method": self.command, "path": p, "query": q,
                                    "body": body, "ctype": self.headers.get("Content-Type"),
                                    "trace": self.headers.get("X-Trace"),
                                    "static": self.headers.get("X-Static"),
                                    "secret": self.headers.get("X-Secret"),
                                    "host": self.headers.get("Host")})
        if p == "/slow":
            with srv.lock:
                srv.active += 1
                srv.max_active = max(srv.max_active, srv.active)
            ms = int(q.get("ms", ["100"])[0])
            time.sleep(ms / 1000)
            with srv.lock:
                srv.active -= 1
                srv.finished += 1
            return self.reply(200, {"slept_ms": ms})
        if p == "/fail":
            return self.reply(500, "database exploded: " + "x" * 2000, "text/plain")
        if p == "/text":
            return self.reply(200, "plain words", "text/plain")
        if p == "/big":
            return self.reply(200, "y" * (3 << 20), "text/plain")
        if p == "/redirect":
            return self.reply(302, "", "text/plain", {"Location": q["to"][0]})
        if p == "/redirect-cross":  # another origin: localhost instead of 127.0.0.1
            return self.reply(302, "", "text/plain",
                              {"Location": "http://localhost:%d/echo/cross" % srv.server_address[1]})
        if p == "/loop":
            return self.reply(302, "", "text/plain", {"Location": "/loop"})
        if p == "/basic":
            return self.reply(200, {"authorization": self.headers.get("Authorization")})
        if p == "/oauth/token":
            form = urllib.parse.parse_qs(self.body())
            if form.get("client_id") != [CLIENT_ID] or form.get("client_secret") != [CLIENT_SECRET]:
                return self.reply(401, {"error": "invalid_client"})
            srv.tokens_issued += 1
            return self.reply(200, {"access_token": "tok-%d" % srv.tokens_issued,
                                    "token_type": "bearer", "expires_in": srv.token_lifetime})
        if p == "/oauth/data":
            auth = self.headers.get("Authorization", "")
            if auth != "Bearer tok-%d" % srv.tokens_issued:
                return self.reply(401, {"error": "bad token"})
            return self.reply(200, {"token": auth.split()[1]})
        if p.startswith("/api/pets"):
            if self.headers.get("X-API-Key") != API_KEY:
                return self.reply(401, {"error": "missing or wrong API key"})
            if self.command == "POST":
                return self.reply(201, {"created": json.loads(self.body())})
            pid = int(p.rsplit("/", 1)[1])
            return self.reply(200, {"id": pid, "name": "pet%d" % pid, "verbose": q.get("verbose")})
        return self.reply(404, {"error": "no such path " + p})

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = handle_any


class QuietServer(ThreadingHTTPServer):
    request_queue_size = 128   # 50 calls connect at once
    def handle_error(self, request, client_address):
        pass   # clients that abort (response caps) are expected


class Server:
    def __init__(self):
        self.httpd = QuietServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.log = []
        self.httpd.lock = threading.Lock()
        self.httpd.active = self.httpd.max_active = self.httpd.finished = 0
        self.httpd.tokens_issued = 0
        self.httpd.token_lifetime = 3600
        self.port = self.httpd.server_address[1]
        self.base = "http://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
