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
import sys
import tempfile
import time

__all__ = ["CodeModeUtcpClient", "ChainStream", "CodeModeError", "ToolCallError", "Record"]
_KEEPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_keeper.py")

_MAX_LINE = 256 << 20
_tokens = itertools.count(1)


class CodeModeError(Exception):
    """The engine could not be started or reached, or refused a request."""


class ToolCallError(CodeModeError):
    """call_tool: the tool failed (`kind` as a chain's ToolError: tool_error,
    timeout, policy_denied, invalid_arguments, ...; `message` the engine's)."""

    def __init__(self, kind, message):
        super().__init__("%s: %s" % (kind, message))
        self.kind, self.message = kind, message


class Record(dict):
    """A dict whose keys also read as attributes (`tool.name`, `result.success`),
    as the library's pydantic models do; still JSON-serializable."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


# Manual-template keys that hold paths (resolved against the caller's working
# directory, or root_dir, before the template leaves this process).
_PATH_KEYS = {"file": ("file_path",), "cli": ("working_dir",)}


def _abs(path, base):
    if not isinstance(path, str) or not path or os.path.isabs(path) or "$" in path:
        return path
    return os.path.normpath(os.path.join(base, path))


def _resolve_template(tmpl, base):
    """Copy of a manual call template with relative paths made absolute."""
    if not isinstance(tmpl, dict):
        return tmpl
    t = dict(tmpl)
    for key in _PATH_KEYS.get(t.get("call_template_type"), ()):
        if key in t:
            t[key] = _abs(t[key], base)
    servers = (t.get("config") or {}).get("mcpServers") if t.get("call_template_type") == "mcp" else None
    if isinstance(servers, dict):
        t["config"] = dict(t["config"], mcpServers={
            n: dict(v, cwd=_abs(v["cwd"], base)) if isinstance(v, dict) and "cwd" in v else v
            for n, v in servers.items()})
    return t


def _write_config(cfg, base, tmpdir):
    text = json.dumps(cfg).encode()
    for d in (base, tmpdir):
        path = os.path.join(d, ".utcp_code_mode_%d_%s.json" % (os.getpid(), os.urandom(4).hex()))
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError:
            continue
        with os.fdopen(fd, "wb") as f:
            f.write(text)
        return path
    raise CodeModeError("cannot write the engine's config into %s or %s" % (base, tmpdir))


def _resolve_config(cfg, base):
    """A config dict with the relative paths of its manuals, variable files and
    engine section resolved against base (it is written to a temp directory)."""
    cfg = dict(cfg)
    if isinstance(cfg.get("manual_call_templates"), list):
        cfg["manual_call_templates"] = [_resolve_template(t, base) for t in cfg["manual_call_templates"]]
    if isinstance(cfg.get("load_variables_from"), list):
        cfg["load_variables_from"] = [dict(l, env_file_path=_abs(l["env_file_path"], base))
                                      if isinstance(l, dict) and "env_file_path" in l else l
                                      for l in cfg["load_variables_from"]]
    eng = cfg.get("engine")
    if isinstance(eng, dict):
        eng = dict(eng)
        for key in ("rootfs", "rootfs_full", "metrics_file"):
            if key in eng:
                eng[key] = _abs(eng[key], base)
        if isinstance(eng.get("policy"), dict):
            eng["policy"] = dict(eng["policy"])
            for key in ("file", "audit_log"):
                if key in eng["policy"]:
                    eng["policy"][key] = _abs(eng["policy"][key], base)
        cfg["engine"] = eng
    if os.geteuid() == 0:
        # a private engine serves this process alone and reads the caller's
        # own files (manuals registered later, relative to its cwd): it keeps
        # the caller's identity instead of dropping to the service user of a
        # shared engine (README, "who runs as what"); a non-root caller's
        # engine is that user anyway
        eng = dict(cfg.get("engine") or {})
        eng.setdefault("user", "root")
        cfg["engine"] = eng
    return cfg


def _root_config(config, base):
    """For a root caller: its config (a path, or None: base's
    .utcp_config.json) as a dict and the directory its relative paths
    resolve against, so that _resolve_config can keep the engine root; a
    file that is not JSON (a YAML config) is passed on as it is."""
    path = _abs(os.fspath(config), base) if config is not None else \
        os.path.join(base, ".utcp_config.json")
    if not os.path.exists(path):
        return ({} if config is None else config), base
    try:
        with open(path) as f:
            loaded = json.load(f)
    except (OSError, ValueError):
        return config, base
    return (loaded, os.path.dirname(path)) if isinstance(loaded, dict) else (config, base)


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

    def __init__(self, socket_path, proc=None, tmpdir=None, root_dir=None):
        self.socket_path = socket_path
        self.root_dir = root_dir
        self._proc = proc          # the keeper (_keeper.py) holding the private engine
        self._tmpdir = tmpdir
        self.engine_pid = None

    # ---- life cycle --------------------------------------------------------
    @classmethod
    async def create(cls, root_dir=None, config=None, socket=None):
        """Connects to the engine at `socket`, or (no socket) starts a private
        engine with `config`: a path, a dict (UTCP `.utcp_config.json` keys plus
        `engine:`), or None (then `<root_dir or cwd>/.utcp_config.json` when
        present).  Relative paths in a dict config and in manual templates
        resolve against root_dir, default the working directory; a config
        file's own relative paths against its directory.  The private engine
        lives as long as this process at most: it stops at close(), or when
        this process ends however it ends (see _keeper.py), and it never has
        more privilege than this process."""
        base = os.path.abspath(root_dir) if root_dir else os.getcwd()
        if socket:
            client = cls(socket, root_dir=base)
            await client._request("ping", {})
            return client
        tmpdir = tempfile.mkdtemp(prefix="utcp-code-mode-")
        config_path = written = None
        cfg_base = base
        if os.geteuid() == 0 and not isinstance(config, dict):
            # a root caller's engine keeps its identity (_resolve_config), so
            # a JSON config file is read here and written again with that
            config, cfg_base = _root_config(config, base)
        if isinstance(config, dict):
            # the engine resolves relative paths (tool templates' too) against
            # its config file's directory: write it into base when we may,
            # and remove it once the engine has read it
            written = config_path = _write_config(_resolve_config(config, cfg_base), cfg_base,
                                                  tmpdir)
        elif config is not None:
            config_path = _abs(os.fspath(config), base)
        elif os.path.exists(os.path.join(base, ".utcp_config.json")):
            config_path = os.path.join(base, ".utcp_config.json")
        sock = os.path.join(tmpdir, "engine.sock")
        log_path = os.path.join(tmpdir, "engine.log")
        cmd = [_engine_binary(), "serve", "--socket", sock]
        if config_path:
            cmd += ["--config", config_path]
        proc = subprocess.Popen([sys.executable, "-I", _KEEPER, tmpdir, log_path, "--"] + cmd,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, cwd=base, start_new_session=True)
        os.set_blocking(proc.stdout.fileno(), False)
        client = cls(sock, proc, tmpdir, base)
        deadline = time.monotonic() + 20
        exited = None
        while not os.path.exists(sock) and exited is None:
            for line in (proc.stdout.read() or b"").decode().splitlines():
                word, _, num = line.partition(" ")
                if word == "pid":
                    client.engine_pid = int(num)
                elif word == "exited":
                    exited = num
            if proc.poll() is not None or time.monotonic() > deadline:
                exited = exited or "?"
            if exited is None:
                await asyncio.sleep(0.02)
        if written and os.path.dirname(written) != tmpdir:
            try:
                os.unlink(written)
            except OSError:
                pass
        if exited is not None:
            try:
                with open(log_path, errors="replace") as f:
                    text = f.read()
            except OSError:
                text = ""
            await client.close()
            raise CodeModeError("codemode engine did not start (exit status %s): %s"
                                % (exited, text.strip()[-2000:]))
        return client

    async def close(self):
        """Stops the private engine (if this client started one) and removes
        its temp directory; without close() that happens when the process ends."""
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.stdin.close()      # the keeper reads EOF: SIGTERM, wait, clean up
            try:
                await asyncio.get_running_loop().run_in_executor(None, proc.wait, 45)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stdout.close()
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
        """Registers a manual (relative paths: against root_dir / the working
        directory).  Returns a RegisterManualResult-like Record: success,
        manual_call_template, manual ({tools: [...]}), errors, plus the engine's
        manual_name, tools (names) and renamed.  A failed registration is
        success=False with the reason in errors, as the library does."""
        tmpl = _resolve_template(manual_call_template, self.root_dir or os.getcwd())
        res = await self._request("tools/call", {"name": "register_manual",
                                                 "arguments": {"manual_call_template": tmpl}}, 120)
        sc = dict(res.get("structuredContent") or {})
        out = Record(sc, manual_call_template=tmpl, errors=[])
        if res.get("isError") or not sc.get("success"):
            out["success"] = False
            out["errors"] = [(sc.get("error") or {}).get("message", "registration failed")]
            out["manual"] = Record(tools=[])
            return out
        names = sc.get("tools") or []
        info = await self._tool("tools_info", {"tool_names": names}) if names else {"tools": []}
        out["manual"] = Record(tools=[Record(t) for t in info.get("tools", [])])
        return out

    async def deregister_manual(self, manual_name):
        """Removes a manual; True when it was registered."""
        try:
            await self._tool("deregister_manual", {"manual_name": manual_name})
            return True
        except CodeModeError:
            return False

    async def call_tool(self, tool_name, tool_args=None, timeout=130):
        """Calls one tool (UTCP name `manual.tool` or access name) with the
        arguments dict and returns its result, as UtcpClient.call_tool: it runs
        as a one-line chain, so policy, secrets and limits apply as in chains.
        Raises CodeModeError (unknown tool) or ToolCallError (the call failed)."""
        info = await self._tool("tools_info", {"tool_names": [tool_name]})
        if not info.get("tools"):
            raise CodeModeError("tool '%s' not found: search_tools() lists tools" % tool_name)
        access = info["tools"][0].get("access_name") or tool_name
        code = "import json\nreturn await %s(**json.loads(%r))" % (access, json.dumps(tool_args or {}))
        r = await self.call_tool_chain(code, timeout=timeout)
        err = r.get("error")
        if err:
            kind = err.get("kind", "tool_error")
            raise ToolCallError(kind, err.get("message", ""))
        return r.get("result")

    async def call_tool_chain(self, code, timeout=30):
        """Runs a chain; never raises for chain failures.  Returns {result, logs,
        error, stats}: error is None on success, else {kind, message, traceback?}."""
        return await self._tool("call_tool_chain", {"code": code, "timeout": timeout}, timeout + 60)

    def stream_tool_chain(self, code, timeout=30):
        """Async iterator of log lines while the chain runs (see ChainStream)."""
        return ChainStream(self, code, timeout)

    async def search_tools(self, query, limit=10, any_of_tags_required=None):
        """Tools ranked for a task description, as Records (name, access_name,
        description, tags, inputs, outputs, score); any_of_tags_required keeps
        only tools carrying one of those tags.  limit=0: no limit."""
        want = min(limit, 1000) if limit and not any_of_tags_required else 1000
        # detail "full": the library's Tool shape (the engine's default answer is
        # the compact one an agent reads: access_name, signature, summary)
        tools = (await self._tool("search_tools", {"task_description": query, "limit": want,
                                                   "detail": "full"}))["tools"]
        if any_of_tags_required:
            tags = set(any_of_tags_required)
            tools = [t for t in tools if tags & set(t.get("tags") or [])]
        return [Record(t) for t in (tools[:limit] if limit else tools)]

    async def get_tools(self):
        """Access names of every registered tool (list_tools is paged)."""
        names, offset = [], 0
        while offset is not None:
            page = await self._tool("list_tools", {"offset": offset, "limit": 1000})
            names.extend(page["tools"])
            offset = page.get("next_offset")
        return names

    async def get_all_tools_python_interfaces(self):
        """Python TypedDict interfaces of all tools (compiles; typing only)."""
        return (await self._tool("get_all_tools_python_interfaces", {}))["interfaces"]

    async def tool_to_python_interface(self, tool):
        """Interface of one tool (a tool dict with `name`, or a name)."""
        name = tool["name"] if isinstance(tool, dict) else tool
        return (await self._tool("get_tool_interface", {"tool_name": name}))["interface"]

    async def get_required_keys_for_tool(self, tool_name):
        """Variable names the tool's template needs (list of str)."""
        return (await self._tool("get_required_keys_for_tool", {"tool_name": tool_name}))["required_variables"]

    # the library's (UtcpClient) names for the same
    get_required_variables_for_registered_tool = get_required_keys_for_tool
    get_required_variables_for_tool = get_required_keys_for_tool
