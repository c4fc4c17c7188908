"""CodeModeUtcpClient over the codemode engine socket (see __init__.py).

One Unix-socket connection per request keeps concurrent calls independent;
streamed chains ask for MCP progress notifications (tagged with a token of
their own) and yield each log line as it arrives."""
import asyncio
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

__all__ = ["CodeModeUtcpClient", "ChainStream", "CodeModeError"]

_MAX_LINE = 256 << 20
_tokens = itertools.count(1)


class CodeModeError(Exception):
    """The engine could not be started or reached, or refused a request."""


def _engine_binary():
    env = os.environ.get("CODEMODE_BIN")
    if env:
        return env
    found = shutil.which("codemode")
    if found:
        return found
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.join(here, "..", "..", "..", "build", "codemode")
    if os.path.exists(repo):
        return os.path.abspath(repo)
    raise CodeModeError("codemode binary not found: set CODEMODE_BIN or put codemode on PATH")


class _PromptTemplate:
    """Class-level AGENT_PROMPT_TEMPLATE: read once from `codemode prompt`, the
    engine's own template, so it always matches the engine's semantics."""

    def __init__(self):
        self.text = None

    def __get__(self, obj, owner):
        if self.text is None:
            out = subprocess.run([_engine_binary(), "prompt"], capture_output=True, text=True,
                                 timeout=30, check=True)
            self.text = out.stdout
        return self.text


async def _open(path, timeout):
    try:
        return await asyncio.wait_for(asyncio.open_unix_connection(path, limit=_MAX_LINE), timeout)
    except (OSError, asyncio.TimeoutError) as e:
        raise CodeModeError("cannot connect to the codemode engine at %s: %s" % (path, e)) from None


class ChainStream:
    """`async for line in client.stream_tool_chain(code)`: log lines as the
    chain prints them; afterwards `.response` holds {result, logs, error, stats}."""

    def __init__(self, client, code, timeout):
        self._client, self._code, self._timeout = client, code, timeout
        self.response = None
        self._gen = None

    def __aiter__(self):
        self._gen = self._run()
        return self._gen

    async def result(self):
        """Drains the stream and returns the response."""
        async for _ in self:
            pass
        return self.response

    async def _run(self):
        token = "utcp-code-mode-%d-%d" % (os.getpid(), next(_tokens))
        params = {"name": "call_tool_chain", "arguments": {"code": self._code, "timeout": self._timeout},
                  "_meta": {"progressToken": token}}
        reader, writer = await _open(self._client.socket_path, 10)
        try:
            writer.write(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                     "params": params}).encode() + b"\n")
            await writer.drain()
            deadline = time.monotonic() + self._timeout + 30
            while True:
                line = await asyncio.wait_for(reader.readline(), max(0.1, deadline - time.monotonic()))
                if not line:
                    raise CodeModeError("the engine closed the connection")
                msg = json.loads(line)
                if msg.get("method") == "notifications/progress":
                    p = msg.get("params") or {}
                    if p.get("progressToken") == token and isinstance(p.get("message"), str):
                        yield p["message"]
                    continue
                if msg.get("id") == 1:
                    self.response = _chain_response(msg)
                    return
        finally:
            writer.close()


def _chain_response(msg):
    if "error" in msg:
        return {"result": None, "logs": [], "error": {"kind": "invalid_request",
                "message": msg["error"].get("message", "")}, "stats": {}}
    return msg["result"]["structuredContent"]


class CodeModeUtcpClient:
    """Code Mode client: register manuals, search tools, run tool chains."""

    AGENT_PROMPT_TEMPLATE = _PromptTemplate()

    def __init__(self, socket_path, proc=None, tmpdir=None):
        self.socket_path = socket_path
        self._proc = proc
        self._tmpdir = tmpdir

    # ---- life cycle --------------------------------------------------------
    @classmethod
    async def create(cls, root_dir=None, config=None, socket=None):
        """Connects to the engine at `socket`, or (no socket) starts a private
        engine with `config`: a path, a dict (UTCP `.utcp_config.json` keys plus
        `engine:`), or None (then `<root_dir>/.utcp_config.json` when present)."""
        if socket:
            client = cls(socket)
            await client._request("ping", {})
            return client
        tmpdir = tempfile.mkdtemp(prefix="utcp-code-mode-")
        config_path = None
        if isinstance(config, dict):
            config_path = os.path.join(root_dir or tmpdir, ".utcp_code_mode_%d.json" % os.getpid())
            with open(config_path, "w") as f:
                json.dump(config, f)
        elif config is not None:
            config_path = os.fspath(config)
        elif root_dir and os.path.exists(os.path.join(root_dir, ".utcp_config.json")):
            config_path = os.path.join(root_dir, ".utcp_config.json")
        sock = os.path.join(tmpdir, "engine.sock")
        cmd = [_engine_binary(), "serve", "--socket", sock]
        if config_path:
            cmd += ["--config", config_path]
        log = open(os.path.join(tmpdir, "engine.log"), "wb")
        proc = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        client = cls(sock, proc, tmpdir)
        client._own_config = config_path if isinstance(config, dict) else None
        deadline = time.monotonic() + 20
        while not os.path.exists(sock):
            if proc.poll() is not None or time.monotonic() > deadline:
                with open(os.path.join(tmpdir, "engine.log"), errors="replace") as f:
                    text = f.read()
                await client.close()
                raise CodeModeError("codemode engine did not start: %s" % text.strip()[-2000:])
            await asyncio.sleep(0.02)
        return client

    async def close(self):
        """Stops the private engine (if this client started one)."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.get_running_loop().run_in_executor(None, self._proc.wait, 30)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
            self._proc = None
        own = getattr(self, "_own_config", None)
        if own and os.path.exists(own):
            os.unlink(own)
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    # ---- requests ----------------------------------------------------------
    async def _request(self, method, params, timeout=60):
        reader, writer = await _open(self.socket_path, 10)
        try:
            writer.write(json.dumps({"jsonrpc": "2.0", "id": 1, "method": method,
                                     "params": params}).encode() + b"\n")
            await writer.drain()
            while True:
                line = await asyncio.wait_for(reader.readline(), timeout)
                if not line:
                    raise CodeModeError("the engine closed the connection")
                msg = json.loads(line)
                if msg.get("id") == 1:
                    if "error" in msg:
                        raise CodeModeError("%s: %s" % (method, msg["error"].get("message")))
                    return msg["result"]
        finally:
            writer.close()

    async def _tool(self, name, arguments, timeout=60):
        res = await self._request("tools/call", {"name": name, "arguments": arguments}, timeout)
        sc = res.get("structuredContent") or {}
        if res.get("isError") and name != "call_tool_chain":
            err = sc.get("error") or {}
            raise CodeModeError("%s: %s" % (name, err.get("message", "failed")))
        return sc

    # ---- Code Mode API -----------------------------------------------------
    async def register_manual(self, manual_call_template):
        """Registers a manual; returns {success, manual_name, tools, renamed}."""
        return await self._tool("register_manual", {"manual_call_template": manual_call_template}, 120)

    async def deregister_manual(self, manual_name):
        """Removes a manual; True when it was registered."""
        try:
            await self._tool("deregister_manual", {"manual_name": manual_name})
            return True
        except CodeModeError:
            return False

    async def call_tool_chain(self, code, timeout=30):
        """Runs a chain; never raises for chain failures.  Returns {result, logs,
        error, stats}: error is None on success, else {kind, message, traceback?}."""
        return await self._tool("call_tool_chain", {"code": code, "timeout": timeout}, timeout + 60)

    def stream_tool_chain(self, code, timeout=30):
        """Async iterator of log lines while the chain runs (see ChainStream)."""
        return ChainStream(self, code, timeout)

    async def search_tools(self, query, limit=10):
        """Tools ranked for a task description (name, access_name, description,
        tags, inputs, outputs, score)."""
        return (await self._tool("search_tools", {"task_description": query, "limit": limit}))["tools"]

    async def get_tools(self):
        """Access names of every registered tool."""
        return (await self._tool("list_tools", {}))["tools"]

    async def get_all_tools_python_interfaces(self):
        """Python TypedDict interfaces of all tools (compiles; typing only)."""
        return (await self._tool("get_all_tools_python_interfaces", {}))["interfaces"]

    async def tool_to_python_interface(self, tool):
        """Interface of one tool (a tool dict with `name`, or a name)."""
        name = tool["name"] if isinstance(tool, dict) else tool
        return (await self._tool("get_tool_interface", {"tool_name": name}))["interface"]

    async def get_required_variables_for_tool(self, tool_name):
        return (await self._tool("get_required_keys_for_tool", {"tool_name": tool_name}))["required_variables"]
