# rootfs/runner_bridge.py — part 4 of the runner (rootfs/runner.py joins the
# parts into one module): the bridge (the process that alone holds the
# engine's socket and checks every frame of the chain process), the zygote's
# loop, and main().
#
# Why its own file: the bridge is the runner's protocol gate, kept apart from
# the chain-side code it guards; it uses parts 1-3, which never call it.

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


def _check_interfaces(f, bridge):
    name = f.get("name")
    if f.get("id") != bridge.next_id or type(f.get("id")) is not int:
        raise _ChainBroke("interfaces id %r out of sequence" % (f.get("id"),))
    if not isinstance(name, (str, type(None))):
        raise _ChainBroke("interfaces frame with a name that is not a string")
    bridge.next_id += 1
    bridge.in_flight.add(f["id"])
    out = {"t": "interfaces", "id": f["id"]}
    if name is not None:
        out["name"] = name
    return out


# frame type from the chain process -> check returning the frame to send the engine;
# add new chain->engine frame types here.
CHAIN_FRAME_CHECKS = {"call": _check_call, "log": _check_log, "done": _check_done,
                      "search": _check_search, "interfaces": _check_interfaces}


class _Bridge:
    def __init__(self, engine, link, names):
        self.engine, self.link = engine, link
        self.tools = names
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
    run, primed = engine.recv(), None
    while run.get("t") == "tools":   # the tool table, sent ahead while the sandbox waits
        primed = _parse_tools(run)   # exits 3 on a bad one
        link.send(run)
        run = engine.recv()
    _parse_run(run)              # exits 3 on a bad run frame
    if engine.frames:
        _fatal(EXIT_MALFORMED, "malformed frame: unexpected frame before any call")
    if "tools_key" in run:
        if primed is not None and run["tools_key"] == primed[0]:
            names = frozenset(t["name"] for t in primed[1])
        elif primed is None and _PRIMED is not None and run["tools_key"] == _PRIMED[0]:
            names = _PRIMED[1]   # inherited from the zygote
        else:
            _fatal(EXIT_MALFORMED, "malformed frame: run.tools_key %r is not this sandbox's tool "
                   "table" % (run["tools_key"],))
    else:
        names = frozenset(t["name"] for t in run.get("tools", []))
    link.send(run)
    return _Bridge(engine, link, names).serve()


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


def _zygote_prime(chan, fds):
    """A `tools` frame in a memfd: parse it and build its namespaces here, once."""
    global _PRIMED
    try:
        with os.fdopen(fds[0], "rb") as f:
            frame = json.loads(f.read())
        key, tools = frame.get("key"), frame.get("tools")
        if frame.get("t") != "tools" or not isinstance(key, str) or not key:
            raise ValueError("not a tools frame with a key")
        if not isinstance(tools, list) or not all(
                isinstance(t, dict) and all(isinstance(t.get(k), str) and t.get(k)
                                            for k in ("name", "access_manual", "access_tool"))
                for t in tools):
            raise ValueError("each tool needs string name, access_manual, access_tool")
        _PRIMED = None
        _PRIMED = (key, frozenset(t["name"] for t in tools), _tool_namespaces(tools))
    except Exception as e:  # noqa: BLE001 - reported to the engine
        chan.send(("error bad tools: %s" % e).encode()[:400])
        return
    import gc
    gc.collect()
    gc.freeze()                # out of the children's collections, as the imports
    chan.send(b"ok")


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
        if msg == b"tools" and len(fds) == 1:
            _zygote_prime(chan, fds)
            continue
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
