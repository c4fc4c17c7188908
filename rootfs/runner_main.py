# rootfs/runner_main.py — part 4 of the runner (rootfs/runner.py joins the
# parts into one module): the zygote's loop and main(), the two ways the
# runner starts.
#
# Why its own file: how a sandbox's one process comes to be (started by the
# engine, or forked from the zygote) is apart from what it runs (part 3);
# it uses parts 1-3, which never call it.  There is no bridge process any
# more: the chain process holds the engine's socket itself and the engine
# checks every frame (rootfs/README.md "One process", engine/chain_check.c).

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
        if pid == 0:             # the new sandbox's one process: fd 3 is its control socket
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
        code = _run_chain(fd)
    except BaseException as e:  # a bug in the runner itself
        _diag("internal error: %s" % "".join(traceback.format_exception(e)))
        code = 1
    os._exit(code)


if __name__ == "__main__":
    main(3)
