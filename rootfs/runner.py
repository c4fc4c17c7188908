"""codemode in-sandbox runner: the Python side of the control protocol.

Installed in the rootfs as /usr/lib/python3.11/_codemode_runner.pyc and started by
the engine as

    /usr/bin/python3.11 -I -S -B -c "import _codemode_runner as r; r.main(3)"

with fd 3 a connected AF_UNIX SOCK_STREAM socket to the engine.  The protocol is
documented in rootfs/README.md.  This is a compatibility and error-reporting layer,
NOT the security boundary (the kernel layers are).

Uses only the standard library.  Also runnable as a script for tests:
    python3.11 -I -S rootfs/runner.py      (fd 3 must be the control socket)
"""

import ast
import asyncio
import builtins
import gc
import inspect
import io
import json
import linecache
import os
import select
import socket
import struct
import sys
import traceback

# The default allow-list is imported before "ready" so a chain starts fast.
DEFAULT_ALLOWED_IMPORTS = (
    "json", "math", "asyncio", "datetime", "time", "re", "typing", "collections",
    "itertools", "functools", "operator", "uuid", "random", "string", "textwrap",
    "decimal", "fractions", "statistics", "base64", "copy", "dataclasses", "enum",
    "heapq", "bisect",
)
for _m in DEFAULT_ALLOWED_IMPORTS:
    __import__(_m)
import _strptime  # noqa: E402,F401  (lazily imported by datetime/time.strptime)

MAX_FRAME = 64 * 1024 * 1024          # largest frame accepted from / sent to the engine
MAX_LOG_LINE = 1024 * 1024            # longer lines are sent in pieces of this many chars
CHAIN_FILENAME = "<chain>"
EXIT_OK, EXIT_MALFORMED, EXIT_EOF = 0, 3, 4

# Builtins a chain does not get; calling one raises RuntimeError with the reason.
REMOVED_BUILTINS = {
    "exec": "dynamic code is disabled; write the code in the chain itself",
    "eval": "dynamic code is disabled; write the code in the chain itself",
    "compile": "dynamic code is disabled; write the code in the chain itself",
    "open": "a chain has no files; read and write data through tool calls",
    "input": "a chain has no standard input; pass data through tool calls",
    "breakpoint": "there is no debugger in a chain; use print()",
}
# asyncio functions whose tool-call arguments are left as awaitable Pendings.
ASYNC_CONSUMERS = frozenset(
    ("gather", "wait", "create_task", "ensure_future", "wait_for", "shield", "as_completed"))

_real_import = builtins.__import__
_orig_gather = asyncio.gather
_orig_wait = asyncio.wait
_orig_create_task = asyncio.create_task
_orig_ensure_future = asyncio.ensure_future
_orig_wait_for = asyncio.wait_for
_orig_shield = asyncio.shield
_orig_as_completed = asyncio.as_completed


# --------------------------------------------------------------------------- errors
class ToolError(Exception):
    """A tool call failed.  Attributes: kind, message, tool."""

    def __init__(self, message="", kind="tool_error", tool=None):
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.tool = tool

    def __str__(self):
        return self.message


class PolicyDenied(ToolError):
    """The engine's policy refused a tool call."""

    def __init__(self, message="", kind="policy_denied", tool=None):
        super().__init__(message, kind, tool)


ToolError.__module__ = "builtins"
PolicyDenied.__module__ = "builtins"


def _diag(msg):
    """Diagnostics for the engine operator (fd 2 is the engine's diagnostics pipe)."""
    try:
        os.write(2, ("codemode-runner: " + msg + "\n").encode("utf-8", "replace"))
    except OSError:
        pass


def _fatal(code, msg):
    _diag(msg)
    _kill_chain_process()
    os._exit(code)


# --------------------------------------------------------------------------- framing
class _Channel:
    """Length-prefixed JSON frames over a non-blocking fd."""

    def __init__(self, fd):
        self.fd = fd
        self.buf = bytearray()
        self.frames = []             # decoded frames not yet dispatched
        os.set_blocking(fd, False)

    # -- output
    @staticmethod
    def encode(obj):
        try:
            text = json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
            data = text.encode("utf-8")
        except UnicodeEncodeError:    # lone surrogates: fall back to \u escapes
            data = json.dumps(obj, allow_nan=False, separators=(",", ":")).encode("ascii")
        return data

    def send(self, obj):
        self.send_bytes(self.encode(obj))

    def send_bytes(self, payload):
        data = memoryview(struct.pack(">I", len(payload)) + payload)
        while data:
            try:
                n = os.write(self.fd, data)
                data = data[n:]
            except BlockingIOError:
                # Never block writing while the engine may be blocked writing to us.
                r, _, _ = select.select([self.fd], [self.fd], [])
                if r:
                    self._read_available()
            except OSError as e:
                self.closed("control socket write failed: %s" % e)

    # -- input
    def _read_available(self):
        """Read what is available without blocking; returns False if nothing was."""
        try:
            chunk = os.read(self.fd, 1 << 20)
        except BlockingIOError:
            return False
        except OSError as e:
            self.closed("control socket read failed: %s" % e)
        if not chunk:
            self.closed("engine closed the control socket")
        self.buf += chunk
        self._split()
        return True

    def _split(self):
        buf = self.buf
        while len(buf) >= 4:
            (n,) = struct.unpack_from(">I", buf, 0)
            if n > MAX_FRAME:
                self.malformed("malformed frame: length %d exceeds %d" % (n, MAX_FRAME))
            if len(buf) < 4 + n:
                break
            payload = bytes(buf[4:4 + n])
            del buf[:4 + n]
            try:
                obj = json.loads(payload.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as e:
                self.malformed("malformed frame: invalid JSON: %s" % e)
            if not isinstance(obj, dict) or not isinstance(obj.get("t"), str):
                self.malformed("malformed frame: not an object with a string 't'")
            self.frames.append(obj)

    def wait_readable(self):
        select.select([self.fd], [], [])

    # -- failures (the engine's side: fatal; see _ChainLink for the chain's side)
    @staticmethod
    def malformed(msg):
        _fatal(EXIT_MALFORMED, msg)

    @staticmethod
    def closed(msg):
        _fatal(EXIT_EOF, msg)

    def recv(self):
        """Blocking: the next frame."""
        while not self.frames:
            if not self._read_available():
                self.wait_readable()
        return self.frames.pop(0)


# --------------------------------------------------------------------------- tool calls
class _Pending:
    """A tool call whose request frame has been sent.  Awaitable; _cm_sync() blocks on it."""

    __slots__ = ("id", "tool", "done", "ok", "value", "error", "future")

    def __init__(self, call_id, tool):
        self.id = call_id
        self.tool = tool
        self.done = False
        self.ok = False
        self.value = None
        self.error = None
        self.future = None

    def __repr__(self):
        return "<pending tool call %s #%d>" % (self.tool, self.id)

    def _outcome(self):
        if self.ok:
            return self.value
        raise self.error

    def resolve(self, ok, value, error):
        self.done, self.ok, self.value, self.error = True, ok, value, error
        fut = self.future
        if fut is not None and not fut.done():
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(error)

    def __await__(self):
        if not self.done:
            if self.future is None:
                self.future = asyncio.get_running_loop().create_future()
            yield from self.future.__await__()
        return self._outcome()

    def sync(self):
        _STATE.wait_for(self)
        return self._outcome()


class _State:
    def __init__(self, chan):
        self.chan = chan
        self.next_id = 1
        self.pending = {}

    def call(self, tool, kwargs):
        try:
            payload = json.dumps(kwargs, allow_nan=False, default=_json_default)
        except (TypeError, ValueError) as e:
            raise TypeError("arguments to tool %s are not JSON-serializable: %s" % (tool, e)) from None
        call_id = self.next_id
        self.next_id += 1
        p = _Pending(call_id, tool)
        self.pending[call_id] = p
        head = '{"t":"call","id":%d,"tool":%s,"args":' % (call_id, json.dumps(tool))
        self.chan.send_bytes(head.encode() + payload.encode("utf-8", "surrogatepass") + b"}")
        return p

    def dispatch(self):
        chan = self.chan
        while chan.frames:
            f = chan.frames.pop(0)
            if f["t"] != "result":
                _fatal(EXIT_MALFORMED, "malformed frame: unexpected %r during a run" % f["t"])
            cid = f.get("id")
            if type(cid) is not int or cid not in self.pending:
                _fatal(EXIT_MALFORMED, "malformed frame: result for unknown call id %r" % (cid,))
            p = self.pending.pop(cid)
            ok = f.get("ok")
            if ok is True:
                if "value" not in f:
                    _fatal(EXIT_MALFORMED, "malformed frame: result without value")
                p.resolve(True, f["value"], None)
            elif ok is False:
                err = f.get("error")
                if not isinstance(err, dict) or not isinstance(err.get("kind"), str):
                    _fatal(EXIT_MALFORMED, "malformed frame: failed result without error.kind")
                kind = err["kind"]
                msg = err.get("message")
                if not isinstance(msg, str):
                    msg = kind
                cls = PolicyDenied if kind == "policy_denied" else ToolError
                p.resolve(False, None, cls(msg, kind, p.tool))
            else:
                _fatal(EXIT_MALFORMED, "malformed frame: result without boolean ok")

    def on_readable(self):
        """Event-loop reader callback for the control fd."""
        while self.chan._read_available():
            pass
        self.dispatch()

    def wait_for(self, p):
        """Block (the whole loop) until p is resolved, dispatching other results."""
        self.dispatch()
        while not p.done:
            if not self.chan._read_available():
                self.chan.wait_readable()
            self.dispatch()


_STATE = None


def _json_default(o):
    if isinstance(o, _Pending):
        return o.sync()
    raise TypeError("Object of type %s is not JSON serializable" % type(o).__name__)


def _resolve_deep(v, depth=0):
    """Replace Pendings inside lists/tuples/dicts by their values (blocking)."""
    if isinstance(v, _Pending):
        return v.sync()
    if depth > 100:
        return v
    if type(v) is list:
        return [_resolve_deep(x, depth + 1) for x in v]
    if type(v) is tuple:
        return tuple(_resolve_deep(x, depth + 1) for x in v)
    if type(v) is dict:
        return {k: _resolve_deep(x, depth + 1) for k, x in v.items()}
    return v


# helpers injected into the chain's globals by the AST rewrite
def _cm_sync(v):
    if isinstance(v, _Pending):
        return v.sync()
    return v


def _cm_resolve_all(v):
    """A container whose elements are tool calls: all requests are already sent, so
    they run concurrently on the engine side; then wait for every one."""
    if isinstance(v, list):
        return [_cm_sync(x) for x in v]
    if isinstance(v, tuple):
        return tuple(_cm_sync(x) for x in v)
    if isinstance(v, set):
        return {_cm_sync(x) for x in v}
    if isinstance(v, dict):
        return {k: _cm_sync(x) for k, x in v.items()}
    return v


async def _value(v):
    return v


async def _await_it(v):
    return await v


def _cm_aw(v):
    """Operand of `await`: plain (already resolved) values are awaitable too."""
    if inspect.isawaitable(v):
        return v
    return _value(v)


def _as_coro(v):
    if asyncio.iscoroutine(v):
        return v
    if inspect.isawaitable(v):
        return _await_it(v)
    return _value(v)


def _as_future_like(v):
    if inspect.isawaitable(v):
        return v
    return _value(v)


# Chain-facing versions of asyncio functions: tolerate plain values and Pendings.
def _gather(*aws, return_exceptions=False):
    return _orig_gather(*[_as_future_like(a) for a in aws], return_exceptions=return_exceptions)


def _create_task(coro, **kw):
    return _orig_create_task(_as_coro(coro), **kw)


def _ensure_future(v, **kw):
    return _orig_ensure_future(_as_future_like(v), **kw)


def _wait_for(aw, timeout):
    return _orig_wait_for(_as_future_like(aw), timeout)


def _shield(aw):
    return _orig_shield(_as_future_like(aw))


def _wait(fs, **kw):
    return _orig_wait([_orig_ensure_future(_as_future_like(f)) for f in fs], **kw)


def _as_completed(fs, **kw):
    return _orig_as_completed([_as_future_like(f) for f in fs], **kw)


def _patch_asyncio():
    asyncio.gather = _gather
    asyncio.create_task = _create_task
    asyncio.ensure_future = _ensure_future
    asyncio.wait_for = _wait_for
    asyncio.shield = _shield
    asyncio.wait = _wait
    asyncio.as_completed = _as_completed


class _Namespace:
    """A manual as seen by the chain: attributes are its tools (or nested namespaces)."""

    def __init__(self, name):
        object.__setattr__(self, "_cm_name", name)

    def __repr__(self):
        names = sorted(k for k in vars(self) if not k.startswith("_cm_"))
        return "<manual %s: %s>" % (self._cm_name, ", ".join(names))

    def __dir__(self):
        return sorted(k for k in vars(self) if not k.startswith("_cm_"))


def _make_tool(utcp_name, manual, tool):
    def tool_fn(*args, **kwargs):
        if len(args) == 1 and not kwargs and isinstance(args[0], dict):
            args, kwargs = (), dict(args[0])  # tool(args_dict), as UTCP clients call tools
        if args:
            raise TypeError(
                "%s.%s() takes keyword arguments only (got %d positional argument%s); "
                "call it as %s.%s(name=value, ...)"
                % (manual, tool, len(args), "" if len(args) == 1 else "s", manual, tool))
        return _STATE.call(utcp_name, kwargs)

    tool_fn.__name__ = tool if tool.isidentifier() else "tool"
    tool_fn.__qualname__ = "%s.%s" % (manual, tool)
    tool_fn.__doc__ = "Tool %s (keyword arguments only)." % utcp_name
    return tool_fn


# --------------------------------------------------------------------------- AST rewrite
def _dotted_root(node):
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


class _Rewriter(ast.NodeTransformer):
    """Wrap tool calls that are neither awaited nor handed to an asyncio consumer in
    _cm_sync(...); containers of tool calls in _cm_resolve_all(...); and the operand
    of every other `await` in _cm_aw(...)."""

    def __init__(self, roots):
        self.roots = roots
        self.exempt = set()

    def is_tool_call(self, node):
        return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and _dotted_root(node.func) in self.roots)

    @staticmethod
    def _wrap(name, node):
        new = ast.Call(func=ast.Name(id=name, ctx=ast.Load()), args=[node], keywords=[])
        return ast.copy_location(new, node)

    def _exempt_elements(self, node):
        if isinstance(node, ast.Starred):
            node = node.value
        if self.is_tool_call(node):
            self.exempt.add(id(node))
        elif isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            for e in node.elts:
                self._exempt_elements(e)
        elif isinstance(node, (ast.ListComp, ast.GeneratorExp, ast.SetComp)):
            if self.is_tool_call(node.elt):
                self.exempt.add(id(node.elt))

    def visit_Await(self, node):
        if self.is_tool_call(node.value):
            self.exempt.add(id(node.value))
            self.generic_visit(node)
            return node
        self.generic_visit(node)
        node.value = self._wrap("_cm_aw", node.value)
        return node

    def _container_of_calls(self, elts):
        return any(self.is_tool_call(e) and id(e) not in self.exempt for e in elts)

    def _visit_container(self, node, elts):
        wrap = self._container_of_calls(elts)
        if wrap:
            for e in elts:
                if self.is_tool_call(e):
                    self.exempt.add(id(e))
        self.generic_visit(node)
        if wrap and not isinstance(getattr(node, "ctx", None), (ast.Store, ast.Del)):
            return self._wrap("_cm_resolve_all", node)
        return node

    def visit_List(self, node):
        return self._visit_container(node, node.elts)

    def visit_Tuple(self, node):
        return self._visit_container(node, node.elts)

    def visit_Set(self, node):
        return self._visit_container(node, node.elts)

    def visit_Dict(self, node):
        return self._visit_container(node, node.values)

    def visit_ListComp(self, node):
        return self._visit_container(node, [node.elt])

    def visit_SetComp(self, node):
        return self._visit_container(node, [node.elt])

    def visit_DictComp(self, node):
        return self._visit_container(node, [node.value])

    def visit_Call(self, node):
        f = node.func
        fname = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
        if fname in ASYNC_CONSUMERS and not self.is_tool_call(node):
            for a in node.args:
                self._exempt_elements(a)
            for k in node.keywords:
                if k.arg in ("fs", "aws", "coro", "arg"):
                    self._exempt_elements(k.value)
        tool = self.is_tool_call(node)
        exempt = id(node) in self.exempt
        self.generic_visit(node)
        if tool and not exempt:
            return self._wrap("_cm_sync", node)
        return node


def _compile_chain(code, roots):
    """Compile the chain as the body of `async def __chain__()`; line numbers are the
    user's.  Raises SyntaxError (or ValueError for NUL bytes)."""
    tree = ast.parse(code, CHAIN_FILENAME, "exec")
    body = tree.body or [ast.Pass(lineno=1, col_offset=0, end_lineno=1, end_col_offset=0)]
    # yield at chain top level would turn the chain into a generator
    if "yield" in code:
        _check_no_top_level_yield(body)
    fn = ast.AsyncFunctionDef(
        name="__chain__",
        args=ast.arguments(posonlyargs=[], args=[], vararg=None, kwonlyargs=[],
                           kw_defaults=[], kwarg=None, defaults=[]),
        body=body, decorator_list=[], returns=None, type_comment=None,
        lineno=1, col_offset=0, end_lineno=1, end_col_offset=0)
    mod = ast.Module(body=[fn], type_ignores=[])
    if _needs_rewrite(code, roots):  # the nodes it adds need locations
        mod = _Rewriter(roots).visit(mod)
        ast.fix_missing_locations(mod)
    return compile(mod, CHAIN_FILENAME, "exec", dont_inherit=True)


def _needs_rewrite(code, roots):
    """False when _Rewriter cannot change the tree: it only touches `await`s and calls
    on a tool namespace, and neither can occur unless its name is in the source."""
    return "await" in code or any(r in code for r in roots)


def _check_no_top_level_yield(body):
    stack = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef,
                             ast.GeneratorExp, ast.ListComp, ast.SetComp, ast.DictComp)):
            continue
        if isinstance(node, (ast.Yield, ast.YieldFrom)):
            err = SyntaxError("'yield' outside function")
            err.filename, err.lineno, err.offset = CHAIN_FILENAME, node.lineno, node.col_offset + 1
            raise err
        stack.extend(ast.iter_child_nodes(node))


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
    b = dict(builtins.__dict__)
    for name, why in REMOVED_BUILTINS.items():
        b[name] = _unavailable(name, why)
    return b


def _build_globals(tools, allowed, policy="default", b=None):
    """The chain's globals; b is a dict from _chain_builtins() (made here if None)."""
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
    roots = set()
    for t in tools:
        path = t["access_manual"].split(".")
        root = path[0]
        ns = g.get(root)
        if not isinstance(ns, _Namespace):
            ns = _Namespace(root)
            g[root] = ns
        roots.add(root)
        for i, part in enumerate(path[1:], 1):
            child = getattr(ns, part, None)
            if not isinstance(child, _Namespace):
                child = _Namespace(".".join(path[:i + 1]))
                object.__setattr__(ns, part, child)
            ns = child
        object.__setattr__(ns, t["access_tool"], _make_tool(t["name"], t["access_manual"], t["access_tool"]))
    return g, roots


def _parse_run(frame):
    if frame.get("t") != "run":
        _fatal(EXIT_MALFORMED, "malformed frame: expected 'run', got %r" % frame.get("t"))
    code = frame.get("code")
    if not isinstance(code, str):
        _fatal(EXIT_MALFORMED, "malformed frame: run.code must be a string")
    tools = frame.get("tools", [])
    if not isinstance(tools, list):
        _fatal(EXIT_MALFORMED, "malformed frame: run.tools must be a list")
    for t in tools:
        if not (isinstance(t, dict) and all(isinstance(t.get(k), str) and t.get(k)
                                            for k in ("name", "access_manual", "access_tool"))):
            _fatal(EXIT_MALFORMED, "malformed frame: each tool needs string name, access_manual, access_tool")
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
# `get_tool_interface`/`__get_tool_interface`, `search_tools`.  The run frame's
# tool entries carry their interface parts (iface_classes, iface_method); the
# text is assembled exactly as the engine's get_all_tools_python_interfaces.
_IFACE_HEADER = ("from typing import Any, Dict, List, Literal, NotRequired, Optional, TypedDict, "
                 "Union, Unpack\n")


def _assemble_interfaces(tools):
    groups = {}
    for t in tools:
        groups.setdefault(t["access_manual"], []).append(t)
    out = [_IFACE_HEADER]
    for manual, ts in groups.items():
        out.append("\n# namespace %s  (call its tools as: await %s.<tool>(name=value, ...))\n"
                   % (manual, manual))
        out.extend(t.get("iface_classes") or "" for t in ts)
        out.append('class %s_Namespace:\n    "namespace %s"\n\n' % (manual, manual))
        out.extend(t.get("iface_method") or "" for t in ts)
    return "".join(out)


def _install_introspection(g, state, tools):
    # tools the policy hides (advertised: false) stay callable but unlisted
    tools = [t for t in tools if t.get("advertised", True) is not False]
    text = _assemble_interfaces(tools)
    by_name = {}
    for t in tools:
        by_name[t["name"]] = t
        by_name.setdefault("%s.%s" % (t["access_manual"], t["access_tool"]), t)

    def get_tool_interface(name):
        """Interface text of one tool, by UTCP name or access name (manual.tool)."""
        t = by_name.get(name)
        if t is None:
            raise ValueError("unknown tool %r (use search_tools(query) or interfaces)" % (name,))
        return _assemble_interfaces([t])

    def search_tools(query, limit=10):
        """Tools ranked for a task description: [{name, access_name, description, ...}]."""
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

    for key, value in (("interfaces", text), ("__interfaces", text),
                       ("get_tool_interface", get_tool_interface),
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
        g, roots = _build_globals([{"name": "w.x", "access_manual": "w", "access_tool": "x"}],
                                  None)
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


def _wait_for_kill(fd):
    """After `done` the bridge kills this process: wait for that (reading and
    dropping late results) instead of exiting, so the process's teardown does not
    compete for a CPU with the bridge passing `done` on.  Returns at EOF."""
    os.set_blocking(fd, True)
    try:
        while os.read(fd, 1 << 16):
            pass
    except OSError:
        pass


def _run_chain(fd):
    """The chain process: fd is its link to the bridge (never the engine's socket)."""
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
    run = chan.recv()
    code, tools, allowed = _parse_run(run)
    policy = run.get("policy") if isinstance(run.get("policy"), str) else "default"
    if chan.frames:
        _fatal(EXIT_MALFORMED, "malformed frame: unexpected frame before any call")

    g, roots = _build_globals(tools, allowed, policy, b)
    _install_introspection(g, state, tools)

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
        except BaseException as e:  # noqa: B902 - report everything, incl. SystemExit
            outcome["exc"] = e

    try:
        loop.run_until_complete(drive())
    finally:
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__

    if "exc" in outcome:
        return finish(_exception_done(outcome["exc"]))
    return finish(_result_done(outcome.get("value")))



# --------------------------------------------------------------------------- bridge
# The runner forks before `ready`.  The parent (the bridge) alone holds the
# engine's control socket; the child runs the chain and speaks the same frames to
# the bridge over a private socketpair.  Nothing in the chain's process (its
# globals, closures, frames, gc.get_objects(), even os.write on any fd) reaches
# the engine's socket.  The bridge re-encodes every frame after checking it:
# calls only to the run's tools with ids 1, 2, 3...; one `done`, whose error kind
# is one the runner produces or one the engine returned for a call in this run
# (a chain cannot claim "timeout", "sandbox_failure", "policy_denied"... on its
# own); results only for calls in flight.  A chain that breaks these rules ends
# with kind "exception" and a message saying so.
RUNNER_ERROR_KINDS = frozenset(("syntax", "exception", "result_not_serializable", "output_limit",
                                "tool_error"))
_CHILD_PID = None      # the chain process, killed by _fatal and after `done`


class _ChainBroke(Exception):
    """The chain process sent something the bridge refuses."""


class _ChainLink(_Channel):
    """The bridge's end of the chain process's socketpair: failures are the chain's."""

    @staticmethod
    def malformed(msg):
        raise _ChainBroke(msg)

    @staticmethod
    def closed(msg):
        raise EOFError(msg)

    dead = False

    def send_bytes(self, payload):
        """Results for a chain process that has already ended are dropped."""
        if not self.dead:
            try:
                super().send_bytes(payload)
            except EOFError:
                self.dead = True

    def drain(self):
        """Read what the ended chain process left in the socket."""
        try:
            while True:
                if not self._read_available():
                    self.wait_readable()
        except (EOFError, _ChainBroke):
            pass


def _check_call(f, bridge):
    tool, args = f.get("tool"), f.get("args")
    if f.get("id") != bridge.next_id or type(f.get("id")) is not int:
        raise _ChainBroke("call id %r out of sequence" % (f.get("id"),))
    if tool not in bridge.tools:
        raise _ChainBroke("call to %r, which is not a tool of this run" % (tool,))
    if not isinstance(args, dict):
        raise _ChainBroke("call arguments are not an object")
    bridge.next_id += 1
    bridge.in_flight.add(f["id"])
    return {"t": "call", "id": f["id"], "tool": tool, "args": args}


def _check_log(f, bridge):
    if not isinstance(f.get("line"), str):
        raise _ChainBroke("log line is not a string")
    return {"t": "log", "line": f["line"]}


def _check_done(f, bridge):
    if f.get("ok") is True and "result" in f:
        return {"t": "done", "ok": True, "result": f["result"]}
    err = f.get("error")
    if f.get("ok") is not False or not isinstance(err, dict):
        raise _ChainBroke("done frame without ok/result or error")
    kind, msg, tb = err.get("kind"), err.get("message"), err.get("traceback")
    if not isinstance(kind, str) or not isinstance(msg, str) or not isinstance(tb, (str, type(None))):
        raise _ChainBroke("done frame with a malformed error")
    if kind not in RUNNER_ERROR_KINDS and kind not in bridge.engine_kinds:
        raise _ChainBroke("the chain ended with error kind %r, which no tool call returned" % kind)
    return _error(kind, msg, tb)


def _check_search(f, bridge):
    query, limit = f.get("query"), f.get("limit")
    if f.get("id") != bridge.next_id or type(f.get("id")) is not int:
        raise _ChainBroke("search id %r out of sequence" % (f.get("id"),))
    if not isinstance(query, str) or type(limit) is not int or not 1 <= limit <= 1000:
        raise _ChainBroke("search frame needs a string query and an int limit 1..1000")
    bridge.next_id += 1
    bridge.in_flight.add(f["id"])
    return {"t": "search", "id": f["id"], "query": query, "limit": limit}


# frame type from the chain process -> check returning the frame to send the engine;
# add new chain->engine frame types here.
CHAIN_FRAME_CHECKS = {"call": _check_call, "log": _check_log, "done": _check_done,
                      "search": _check_search}


class _Bridge:
    def __init__(self, engine, link, run):
        self.engine, self.link = engine, link
        self.tools = frozenset(t["name"] for t in run.get("tools", []))
        self.next_id = 1
        self.in_flight = set()
        self.engine_kinds = set()

    def from_engine(self, f):
        """A result frame: checked as the protocol says (malformed -> exit 3), passed on."""
        cid = f.get("id")
        if f["t"] != "result":
            _fatal(EXIT_MALFORMED, "malformed frame: unexpected %r during a run" % f["t"])
        if type(cid) is not int or cid not in self.in_flight:
            _fatal(EXIT_MALFORMED, "malformed frame: result for unknown call id %r" % (cid,))
        ok, err = f.get("ok"), f.get("error")
        if ok is True and "value" not in f:
            _fatal(EXIT_MALFORMED, "malformed frame: result without value")
        if ok is False and not (isinstance(err, dict) and isinstance(err.get("kind"), str)):
            _fatal(EXIT_MALFORMED, "malformed frame: failed result without error.kind")
        if ok is not True and ok is not False:
            _fatal(EXIT_MALFORMED, "malformed frame: result without boolean ok")
        self.in_flight.discard(cid)
        if ok is False:
            self.engine_kinds.add(err["kind"])
        self.link.send(f)

    def from_chain(self, f):
        """Returns True once `done` has been passed on."""
        check = CHAIN_FRAME_CHECKS.get(f["t"])
        if check is None:
            raise _ChainBroke("unexpected frame %r" % f["t"])
        self.engine.send(check(f, self))
        return f["t"] == "done"

    def serve(self):
        """Relay until the chain's `done` (or its end); returns the exit status."""
        engine, link = self.engine, self.link
        try:
            while True:
                if self.chain_frames():
                    return EXIT_OK
                while engine.frames:
                    self.from_engine(engine.frames.pop(0))
                if link.dead:
                    raise EOFError("chain process gone")
                r, _, _ = select.select([engine.fd, link.fd], [], [])
                if engine.fd in r:
                    engine._read_available()
                if link.fd in r:
                    link._read_available()
        except _ChainBroke as e:
            self.engine.send(_error("exception", "the chain broke the runner protocol: %s" % e))
            return EXIT_OK
        except EOFError:
            link.drain()
            try:
                if self.chain_frames():      # what it sent before it ended
                    return EXIT_OK
            except _ChainBroke as e:
                self.engine.send(_error("exception", "the chain broke the runner protocol: %s" % e))
                return EXIT_OK
            return self.chain_ended()

    def chain_frames(self):
        while self.link.frames:
            if self.from_chain(self.link.frames.pop(0)):
                return True
        return False

    def chain_ended(self):
        _, status = os.waitpid(_CHILD_PID, 0)
        code = os.waitstatus_to_exitcode(status)
        if code == 1:                # the chain process hit a runner bug (traceback on fd 2)
            return 1
        how = "exit status %d" % code if code >= 0 else "signal %d" % -code
        self.engine.send(_error("exception", "the chain process ended without a result (%s)" % how))
        return EXIT_OK


def _kill_chain_process():
    global _CHILD_PID
    if _CHILD_PID is not None:
        try:
            os.kill(_CHILD_PID, 9)
            os.waitpid(_CHILD_PID, 0)
        except OSError:
            pass
        _CHILD_PID = None


def _socketpair_fds():
    """A connected AF_UNIX stream pair as plain fds (no socket objects left behind)."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    return a.detach(), b.detach()


def _run(fd):
    """The bridge: fork the chain process, report ready, relay one run."""
    global _CHILD_PID
    parent_fd, child_fd = _socketpair_fds()
    pid = os.fork()
    if pid == 0:                 # the chain process: drop every way to the engine
        os.close(fd)
        os.close(parent_fd)
        return _run_chain(child_fd)
    _CHILD_PID = pid
    os.close(child_fd)
    engine, link = _Channel(fd), _ChainLink(parent_fd)
    engine.send({"t": "ready"})
    run = engine.recv()
    _parse_run(run)              # exits 3 on a bad run frame
    if engine.frames:
        _fatal(EXIT_MALFORMED, "malformed frame: unexpected frame before any call")
    link.send(run)
    return _Bridge(engine, link, run).serve()


# --------------------------------------------------------------------------- zygote
# The zygote (engine side: isolate/zygote.c) is a sandbox whose runner has done
# the imports above once; per request it forks a sandbox in fresh namespaces,
# hardened by the _codemode_zygote extension (isolate/zygote_ext.c), which then
# goes on here as an ordinary runner (main below).  Messages are SOCK_SEQPACKET
# datagrams: a JSON config first, then "spawn" + [control fd, output fd].
def _zygote_configure(z, chan):
    try:
        cfg = json.loads(chan.recv(1 << 16))
        rl = cfg.get("rlimits")
        z.configure(bytes.fromhex(cfg["seccomp"]), int(cfg["caps"]),
                    tuple(int(x) for x in rl) if rl else None, int(cfg["tmp_size"]),
                    bool(cfg["init"]))
    except Exception as e:  # noqa: BLE001 - reported to the engine
        chan.send(("error bad zygote config: %s" % e).encode()[:400])
        os._exit(1)


def _zygote_reap():
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


def zygote_main(fd=3):
    import gc
    import signal
    import _codemode_zygote as z
    chan = socket.socket(fileno=fd)
    _zygote_configure(z, chan)
    _warm_up()                 # the paths every chain takes, once, before the image is shared
    gc.collect()
    gc.freeze()                # a child's collections leave the shared image's pages alone
    chan.send(b"ready")
    # a sandbox's pid 1 is reaped as soon as it ends (the interrupted select
    # is retried after the handler, PEP 475)
    signal.signal(signal.SIGCHLD, lambda *_: _zygote_reap())
    while True:
        _zygote_reap()
        if not select.select([chan], [], [], 1.0)[0]:
            continue
        msg, fds, _, _ = socket.recv_fds(chan, 64, 2)
        if not msg:
            os._exit(0)          # the engine is gone
        if msg != b"spawn" or len(fds) != 2:
            for f in fds:
                os.close(f)
            chan.send(b"error malformed spawn request")
            continue
        try:
            pid, pidfd = z.spawn(fds[0], fds[1])
        except OSError as e:
            chan.send(("error fork: %s" % e).encode()[:400])
            pid = None
        if pid == 0:             # the new sandbox: fd 3 is now its control socket
            chan.detach()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            main(3)
        for f in fds:
            os.close(f)
        if pid:
            socket.send_fds(chan, [b"ok %d" % pid], [pidfd])
            os.close(pidfd)


# --------------------------------------------------------------------------- main
def main(fd=3):
    try:
        code = _run(fd)
    except BaseException as e:  # a bug in the runner itself
        _diag("internal error: %s" % "".join(traceback.format_exception(e)))
        code = 1
    if _CHILD_PID is not None:   # the bridge
        _kill_chain_process()
    os._exit(code)


if __name__ == "__main__":
    main(3)
