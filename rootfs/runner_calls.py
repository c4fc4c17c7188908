# rootfs/runner_calls.py — part 2 of the runner (rootfs/runner.py joins the
# parts into one module): tool calls as the chain makes them (_Pending, _State,
# the chain-facing asyncio functions, tool namespaces) and the AST rewrite that
# decides how each call is consumed (awaited, handed to asyncio, resolved as a
# container, or blocked on).
#
# Why its own file: how a call is sent, awaited and resolved is one concern,
# and the rewrite exists only to place those helpers; it uses only part 1.

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


def _edit_distance(a, b):
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _nearest_names(word, names, n=3):
    """Up to n names close to word (edit distance <= max(2, len/3), or a prefix/substring)."""
    limit = max(2, len(word) // 3)
    scored = []
    for name in names:
        d = _edit_distance(word.lower(), name.lower()) if abs(len(name) - len(word)) <= limit else limit + 1
        if d <= limit or (len(word) >= 3 and word.lower() in name.lower()):
            scored.append((d, name))
    return [name for _, name in sorted(scored)[:n]]


LIST_TOOLS_HINT = "search_tools(\"what you need\") finds tools; print(interfaces) shows them all"


class _Namespace:
    """A manual as seen by the chain: attributes are its tools (or nested namespaces).
    A tool's function is made on first use (_cm_tools: access name -> UTCP name),
    so a manual of 10,000 tools costs a dict entry per tool, not a closure."""

    def __init__(self, name):
        object.__setattr__(self, "_cm_name", name)
        object.__setattr__(self, "_cm_tools", {})

    def _cm_add_tool(self, tool, utcp_name):
        if tool in vars(self):   # a later tool replaces a namespace of its name
            object.__delattr__(self, tool)
        self._cm_tools[tool] = utcp_name

    def _cm_add_child(self, part, child):
        self._cm_tools.pop(part, None)   # ... and a later namespace a tool
        object.__setattr__(self, part, child)

    def __getattr__(self, name):
        """Only for names that are not there: a tool not made yet, or say what is
        (the nearest names, how to list)."""
        if name.startswith("__") or name.startswith("_cm_"):
            raise AttributeError(name)
        manual = object.__getattribute__(self, "_cm_name")
        utcp_name = object.__getattribute__(self, "_cm_tools").get(name)
        if utcp_name is not None:
            fn = _make_tool(utcp_name, manual, name)
            object.__setattr__(self, name, fn)
            return fn
        names = self.__dir__()
        near = _nearest_names(name, names)
        msg = "manual `%s` has no tool `%s`" % (manual, name)
        if near:
            msg += "; did you mean %s?" % " or ".join("`%s.%s`" % (manual, t) for t in near)
        if len(names) <= 12:
            msg += " Its tools: %s." % (", ".join(names) or "none")
        raise AttributeError(msg + " " + LIST_TOOLS_HINT)

    def __repr__(self):
        return "<manual %s: %s>" % (self._cm_name, ", ".join(self.__dir__()))

    def __dir__(self):
        return sorted({k for k in vars(self) if not k.startswith("_cm_")} | set(self._cm_tools))


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
