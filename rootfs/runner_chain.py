# rootfs/runner_chain.py — part 3 of the runner (rootfs/runner.py joins the
# parts into one module): the chain process — its log streams, its globals
# (restricted import, removed builtins, tool namespaces), the `done` frame
# built from a result or an exception, in-chain introspection, and the run
# itself (_warm_up, _run_chain).
#
# Why its own file: this is everything one run of a chain needs; it uses
# parts 1 and 2, and part 4 (the zygote's loop, main) calls it.

# --------------------------------------------------------------------------- log capture
class _LogSink:
    def __init__(self, chan):
        self.chan = chan
        self.partial = []

    def write(self, s):
        parts = s.split("\n")
        if len(parts) == 1:
            self.partial.append(s)
        else:
            self.partial.append(parts[0])
            self.emit("".join(self.partial))
            for line in parts[1:-1]:
                self.emit(line)
            self.partial = [parts[-1]] if parts[-1] else []
        if self.partial and sum(len(p) for p in self.partial) > MAX_LOG_LINE:
            pending = "".join(self.partial)
            while len(pending) > MAX_LOG_LINE:
                self.emit(pending[:MAX_LOG_LINE])
                pending = pending[MAX_LOG_LINE:]
            self.partial = [pending] if pending else []

    def emit(self, line):
        self.chan.send({"t": "log", "line": line})

    def flush_partial(self):
        if self.partial:
            line = "".join(self.partial)
            self.partial = []
            if line:
                self.emit(line)


class _LogStream(io.TextIOBase):
    """sys.stdout / sys.stderr inside a chain: every complete line becomes a log frame."""

    def __init__(self, sink, name):
        super().__init__()
        self._sink = sink
        self._name = name

    @property
    def name(self):
        return self._name

    @property
    def encoding(self):
        return "utf-8"

    @property
    def errors(self):
        return "strict"

    def writable(self):
        return True

    def isatty(self):
        return False

    def write(self, s):
        if not isinstance(s, str):
            raise TypeError("write() argument must be str, not %s" % type(s).__name__)
        if s:
            self._sink.write(s)
        return len(s)

    def flush(self):
        pass


# --------------------------------------------------------------------------- chain globals
def _make_import(allowed, policy="default"):
    def restricted_import(name, globals=None, locals=None, fromlist=(), level=0):
        # C code importing on its own behalf (PyImport_Import, e.g. datetime.strptime
        # -> _strptime, datetime.now -> time) calls the *current frame's* __import__
        # with a list as fromlist; import statements pass None or a tuple.  Those
        # implicit imports are not the chain's and pass through.
        if type(fromlist) is list:
            return _real_import(name, globals, locals, fromlist, level)
        if level != 0:
            raise ImportError("relative imports are not available in a chain")
        top = name.partition(".")[0]
        if allowed is not None and top not in allowed:
            raise ImportError(
                "import of '%s' is not allowed: module '%s' is not in the allow-list of "
                "policy '%s' (%s)" % (name, top, policy, ", ".join(sorted(allowed))), name=name)
        return _real_import(name, globals, locals, fromlist, level)

    return restricted_import


def _unavailable(name, why):
    """A stand-in for a removed builtin.  Made by exec with a globals dict holding
    only RuntimeError, so its __globals__ leads nowhere."""
    src = "def %s(*args, **kwargs):\n    raise RuntimeError(%r)\n" % (
        name, "%s() is not available in a chain: %s" % (name, why))
    ns = {"__builtins__": {"RuntimeError": RuntimeError}}
    exec(src, ns)
    return ns[name]


def _chain_builtins():
    """The chain's builtins without its import hook: a fresh dict with the removed
    builtins' stand-ins.  The chain process builds it before its run frame arrives."""
    b = _ChainBuiltins(builtins.__dict__)
    for name, why in REMOVED_BUILTINS.items():
        b[name] = _unavailable(name, why)
    return b


def _tool_namespaces(tools):
    """The tool namespaces of a tool table: {root name: _Namespace}.  Made when
    the table arrives (a `tools` frame, while the sandbox waits in the pool)."""
    spaces = {}
    for t in tools:
        path = t["access_manual"].split(".")
        root = path[0]
        ns = spaces.get(root)
        if ns is None:
            ns = spaces[root] = _Namespace(root)
        for i, part in enumerate(path[1:], 1):
            child = getattr(ns, part, None)
            if not isinstance(child, _Namespace):
                child = _Namespace(".".join(path[:i + 1]))
                ns._cm_add_child(part, child)
            ns = child
        ns._cm_add_tool(t["access_tool"], t["name"])
    return spaces


def _build_globals(spaces, allowed, policy="default", b=None):
    """The chain's globals; spaces from _tool_namespaces, b a dict from
    _chain_builtins() (made here if None)."""
    if b is None:
        b = _chain_builtins()
    b["__import__"] = _make_import(allowed, policy)
    g = {
        "__name__": "__chain__",
        "__builtins__": b,
        "ToolError": ToolError,
        "PolicyDenied": PolicyDenied,
        "_cm_sync": _cm_sync,
        "_cm_resolve_all": _cm_resolve_all,
        "_cm_aw": _cm_aw,
    }
    g.update(spaces)   # a manual named like a helper or a builtin shadows it
    return g, set(spaces)


def _check_tools(tools, what):
    if not isinstance(tools, list):
        _fatal(EXIT_MALFORMED, "malformed frame: %s must be a list" % what)
    for t in tools:
        if not (isinstance(t, dict) and all(isinstance(t.get(k), str) and t.get(k)
                                            for k in ("name", "access_manual", "access_tool"))):
            _fatal(EXIT_MALFORMED, "malformed frame: each tool needs string name, access_manual, access_tool")


def _parse_tools(frame):
    """A `tools` frame (the engine primes a warm sandbox with the tool table it
    expects the next chain to have): returns (key, tools)."""
    key = frame.get("key")
    if not isinstance(key, str) or not key:
        _fatal(EXIT_MALFORMED, "malformed frame: tools.key must be a non-empty string")
    tools = frame.get("tools")
    _check_tools(tools, "tools.tools")
    return key, tools


def _parse_run(frame):
    if frame.get("t") != "run":
        _fatal(EXIT_MALFORMED, "malformed frame: expected 'run', got %r" % frame.get("t"))
    code = frame.get("code")
    if not isinstance(code, str):
        _fatal(EXIT_MALFORMED, "malformed frame: run.code must be a string")
    if "tools_key" in frame:     # the table of the sandbox's `tools` frame
        if "tools" in frame or not isinstance(frame["tools_key"], str):
            _fatal(EXIT_MALFORMED, "malformed frame: run.tools_key must be a string, without run.tools")
        tools = None
    else:
        tools = frame.get("tools", [])
        _check_tools(tools, "run.tools")
    allowed = frame.get("allowed_imports", None)
    if allowed is None:
        allowed = frozenset(DEFAULT_ALLOWED_IMPORTS)
    elif allowed == "all":
        allowed = None
    elif isinstance(allowed, list) and all(isinstance(a, str) for a in allowed):
        allowed = frozenset(allowed)
    else:
        _fatal(EXIT_MALFORMED, "malformed frame: allowed_imports must be a list of strings or \"all\"")
    return code, tools, allowed


# --------------------------------------------------------------------------- results
def _format_traceback(exc):
    runner_file = _format_traceback.__code__.co_filename
    tb = exc.__traceback__
    # skip the runner's own frames (the driver that awaited the chain, tool plumbing)
    te = traceback.TracebackException(type(exc), exc, tb, compact=True)
    _strip_frames(te, runner_file)
    return "".join(te.format())


def _strip_frames(te, runner_file, seen=None):
    seen = seen if seen is not None else set()
    if id(te) in seen:
        return
    seen.add(id(te))
    kept = [fs for fs in te.stack if fs.filename != runner_file]
    te.stack = traceback.StackSummary.from_list(kept)
    for sub in (te.__cause__, te.__context__):
        if sub is not None:
            _strip_frames(sub, runner_file, seen)


def _error(kind, message, tb=None):
    err = {"kind": kind, "message": message}
    if tb is not None:
        err["traceback"] = tb
    return {"t": "done", "ok": False, "error": err}


def _hint_name_error(exc, roots, g):
    """A misspelled manual: the message names the nearest manuals and how to list tools."""
    name = getattr(exc, "name", None)
    if not isinstance(name, str) or name in g or not exc.args or not isinstance(exc.args[0], str):
        return
    near = _nearest_names(name, sorted(roots))
    if not near:
        return
    exc.args = ("%s; did you mean the manual %s? %s" % (
        exc.args[0], " or ".join("`%s`" % m for m in near), LIST_TOOLS_HINT),) + exc.args[1:]


def _exception_done(exc):
    tb = _format_traceback(exc)
    if isinstance(exc, ToolError):
        return _error(exc.kind or "tool_error", exc.message, tb)
    msg = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return _error("exception", msg, tb)


def _result_done(value):
    try:
        value = _resolve_deep(value)
    except ToolError as e:
        return _exception_done(e)
    bad = []

    def default(o):
        bad.append(type(o).__name__)
        raise TypeError("not serializable")

    try:
        payload = json.dumps({"t": "done", "ok": True, "result": value}, ensure_ascii=False,
                             allow_nan=False, separators=(",", ":"), default=default)
        data = payload.encode("utf-8")
    except UnicodeEncodeError:
        data = json.dumps({"t": "done", "ok": True, "result": value},
                          allow_nan=False, separators=(",", ":")).encode("ascii")
    except (TypeError, ValueError, RecursionError) as e:
        if bad:
            what = bad[0]
        elif isinstance(e, RecursionError):
            what = "nesting too deep"
        elif "Circular" in str(e):
            what = "circular reference"
        elif "Out of range float" in str(e):
            what = "float nan/inf"
        elif "keys must be" in str(e):
            what = "dict key (%s)" % e
        else:
            what = str(e)
        return _error("result_not_serializable", "return value is not JSON-serializable: %s" % what)
    if len(data) > MAX_FRAME:
        return _error("output_limit", "return value too large (%d bytes > %d)" % (len(data), MAX_FRAME))
    return data


# --------------------------------------------------------------------------- introspection
# The agent surface inside a chain (issue 7): `interfaces`/`__interfaces`,
# `get_tool_interface`/`__get_tool_interface`, `search_tools`.  The interface
# text is the engine's (get_all_tools_python_interfaces, the caller's view),
# asked for on first use with an `interfaces` frame, so a chain that never
# reads it never pays for it (4.6 MB at 10,000 tools).
class _ChainBuiltins(dict):
    """The chain's builtins: `interfaces` and `__interfaces` are looked up here
    last (after the chain's globals, so a manual of that name shadows them) and
    fetched from the engine the first time."""

    __slots__ = ()

    def __missing__(self, key):
        if key not in ("interfaces", "__interfaces"):
            raise KeyError(key)
        text = _ask_interfaces(None)
        self["interfaces"] = self["__interfaces"] = text
        return text


def _ask_interfaces(name):
    """Interface text from the engine: all the chain's advertised tools (name
    None) or one tool's (None when it has no such tool)."""
    state = _STATE
    call_id = state.next_id
    state.next_id += 1
    p = _Pending(call_id, "interfaces")
    state.pending[call_id] = p
    frame = {"t": "interfaces", "id": call_id}
    if name is not None:
        frame["name"] = name
    state.chan.send(frame)
    return p.sync()


def _install_introspection(g, state):
    def get_tool_interface(name):
        """Interface text of one tool, by UTCP name or access name (manual.tool)."""
        text = _ask_interfaces(name) if isinstance(name, str) else None
        if text is None:
            raise ValueError("unknown tool %r (use search_tools(query) or interfaces)" % (name,))
        return text

    def search_tools(query, limit=10):
        """Tools ranked for a task description: [{access_name, signature, summary}]."""
        if not isinstance(query, str):
            raise TypeError("search_tools(query, limit=10): query must be a string")
        if type(limit) is not int or not 1 <= limit <= 1000:
            raise ValueError("search_tools: limit must be an int in 1..1000")
        call_id = state.next_id
        state.next_id += 1
        p = _Pending(call_id, "search_tools")
        state.pending[call_id] = p
        state.chan.send({"t": "search", "id": call_id, "query": query, "limit": limit})
        return p.sync()

    for key, value in (("get_tool_interface", get_tool_interface),
                       ("__get_tool_interface", get_tool_interface),
                       ("search_tools", search_tools)):
        g.setdefault(key, value)


# --------------------------------------------------------------------------- chain process
def _warm_up():
    """Run the paths every chain takes (globals, compile + rewrite, an event
    loop, JSON) once in this freshly forked process, so their copy-on-write
    page faults (~20 us each on a VM) happen while the sandbox waits in the
    pool, not on the request path.  Leaves no state behind."""
    try:
        g, roots = _build_globals(_tool_namespaces(
            [{"name": "w.x", "access_manual": "w", "access_tool": "x"}]), None)
        codeobj = _compile_chain("x = [i for i in range(3)]\nreturn {'a': x, 'b': 'c'}", roots)
        exec(codeobj, g)
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(g.pop("__chain__")())
        finally:
            loop.close()
        _result_done({"a": [1, 2.5, "s", None, True]})
    except Exception:  # a warm-up problem must never cost a chain
        pass


# The tool table the zygote was primed with (part 4, _zygote_prime; engine:
# cm_zygote_prime): every sandbox forked after inherits it parsed, its
# namespaces built: (key, tool names, namespaces), or None.
_PRIMED = None


def _wait_for_kill(fd):
    """After `done` the engine kills the sandbox: wait for that (reading and
    dropping late results) at the lowest priority instead of exiting, so this
    process's teardown (unmapping a copy of the zygote's image) does not
    compete for a CPU with the engine's answer or the next request.
    Returns at EOF."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, 19)
    except OSError:
        pass
    os.set_blocking(fd, True)
    try:
        while os.read(fd, 1 << 16):
            pass
    except OSError:
        pass


def _tools_for_key(run, primed):
    """The namespaces a run frame's tools_key names: this sandbox's `tools`
    frame's or the zygote's; any other key is a malformed frame (exit 3)."""
    key = run["tools_key"]
    if primed is not None and key == primed[0]:
        return primed[1]
    if primed is None and _PRIMED is not None and key == _PRIMED[0]:
        return _PRIMED[2]    # inherited from the zygote
    _fatal(EXIT_MALFORMED, "malformed frame: run.tools_key %r is not this sandbox's tool "
           "table" % (key,))


def _run_chain(fd):
    """The sandbox's runner, and the chain's one process: fd is the engine's
    control socket.  Nothing here is a security boundary: the chain can reach
    everything this process holds, fd 3 included, and the engine checks every
    frame it sends (engine/chain_check.c)."""
    global _STATE
    _warm_up()
    # everything that does not depend on the run frame is made while the sandbox
    # waits in the pool: the builtins, the patched asyncio, the event loop
    b = _chain_builtins()
    _patch_asyncio()
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(lambda lp, ctx: _diag("asyncio: %s" % ctx.get("message")))
    asyncio.set_event_loop(loop)
    chan = _Channel(fd)
    _STATE = state = _State(chan)
    loop.add_reader(fd, state.on_readable)  # dispatches nothing until the loop runs
    sink = _LogSink(chan)
    streams = _LogStream(sink, "<stdout>"), _LogStream(sink, "<stderr>")
    # the objects of the imports and the warm-up never die: out of the collector's
    # way, so a collection the run frame's objects trigger walks only new ones
    gc.freeze()
    chan.send({"t": "ready"})
    run, primed = chan.recv(), None
    while run.get("t") == "tools":   # the table, sent ahead: build its namespaces now
        primed = _parse_tools(run)[0], _tool_namespaces(run["tools"])
        run = None
        gc.freeze()
        run = chan.recv()
    code, tools, allowed = _parse_run(run)
    policy = run.get("policy") if isinstance(run.get("policy"), str) else "default"
    if chan.frames:
        _fatal(EXIT_MALFORMED, "malformed frame: unexpected frame before any call")
    # a big frame to the engine is written while the engine answers (a call
    # it refuses unread, say): what a send read is dispatched at once
    chan.on_frames = state.dispatch

    if tools is None:
        spaces = _tools_for_key(run, primed)
    else:
        spaces = _tool_namespaces(tools)
    g, roots = _build_globals(spaces, allowed, policy, b)
    _install_introspection(g, state)

    def finish(done):
        sink.flush_partial()
        if isinstance(done, bytes):
            chan.send_bytes(done)
        else:
            chan.send(done)
        _wait_for_kill(fd)
        return EXIT_OK

    try:
        codeobj = _compile_chain(code, roots)
    except SyntaxError as e:
        line = e.lineno if e.lineno is not None else 0
        msg = "%s (line %d)" % (e.msg, line)
        tb = "".join(traceback.format_exception_only(SyntaxError, e))
        return finish(_error("syntax", msg, tb))
    except (ValueError, RecursionError, MemoryError) as e:
        return finish(_error("syntax", "%s (line 1)" % e))

    linecache.cache[CHAIN_FILENAME] = (len(code), None, code.splitlines(True), CHAIN_FILENAME)
    exec(codeobj, g)
    chain_fn = g.pop("__chain__")

    sys.stdout, sys.stderr = streams
    outcome = {}

    async def drive():
        try:
            outcome["value"] = await chain_fn()
        except NameError as e:
            _hint_name_error(e, roots, g)
            outcome["exc"] = e
        except BaseException as e:  # noqa: B902 - report everything, incl. SystemExit
            outcome["exc"] = e

    try:
        loop.run_until_complete(drive())
    finally:
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__

    if "exc" in outcome:
        return finish(_exception_done(outcome["exc"]))
    return finish(_result_done(outcome.get("value")))
