"""Keeps a private codemode engine tied to the life of the client that
started it (run by client.py as `python -I _keeper.py TMPDIR LOG -- CMD...`).

Why: a client that exits without close() (an exception, sys.exit, SIGKILL)
must not leave an engine, often root's, running with its temp directory.
The client holds the write end of this process's stdin; the kernel closes
it whatever way the client ends, this process reads EOF, stops the engine
(SIGTERM, SIGKILL after 30 s) and removes TMPDIR.  The engine gets
PR_SET_PDEATHSIG so it stops even if this process is SIGKILLed, and
PR_SET_NO_NEW_PRIVS when the caller is not root, so no set-uid binary or
file capability can make it run with more privilege than the caller.
Prints `pid N` once the engine is spawned and `exited N` if it ends first."""
import ctypes
import os
import select
import shutil
import signal
import subprocess
import sys

PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38


def main():
    tmpdir, log_path, cmd = sys.argv[1], sys.argv[2], sys.argv[4:]
    libc = ctypes.CDLL(None, use_errno=True)
    keeper = os.getpid()
    unprivileged = os.getuid() != 0 or os.geteuid() != 0

    def child_setup():
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0 or os.getppid() != keeper:
            os._exit(127)
        if unprivileged and libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            os._exit(127)

    for sig in (signal.SIGINT, signal.SIGHUP):  # the terminal's signals are the client's
        signal.signal(sig, signal.SIG_IGN)
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    with open(log_path, "ab") as log:
        engine = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                  preexec_fn=child_setup)
    def tell(line):
        try:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        except OSError:
            pass  # the client is gone: EOF on stdin follows

    tell("pid %d" % engine.pid)
    reported = False
    while not stop:
        if not reported and engine.poll() is not None:
            tell("exited %d" % engine.returncode)
            reported = True
        try:
            ready, _, _ = select.select([0], [], [], 0.2)
        except InterruptedError:
            continue
        if ready and not os.read(0, 4096):
            break  # the client closed the pipe or is gone
    if engine.poll() is None:
        engine.send_signal(signal.SIGTERM)
        try:
            engine.wait(30)
        except subprocess.TimeoutExpired:
            engine.kill()
            engine.wait()
    shutil.rmtree(tmpdir, ignore_errors=True)


if __name__ == "__main__":
    main()
