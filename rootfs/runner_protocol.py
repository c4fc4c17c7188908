# rootfs/runner_protocol.py — part 1 of the runner (rootfs/runner.py joins the
# parts into one module): the imports done before `ready`, the constants, the
# errors a chain sees (ToolError, PolicyDenied), fatal exits, and the framing
# of the control protocol (_Channel).
#
# Why its own file: every other part speaks frames and fails through these;
# it uses nothing of theirs, so it comes first.
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
    os._exit(code)


# --------------------------------------------------------------------------- framing
class _Channel:
    """Length-prefixed JSON frames over a non-blocking fd."""

    def __init__(self, fd):
        self.fd = fd
        self.buf = bytearray()
        self.frames = []             # decoded frames not yet dispatched
        # called after a send that read frames while it waited to write (the
        # event loop's reader will not fire for bytes already read): the
        # chain's dispatch, once its run has begun
        self.on_frames = None
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
        if self.frames and self.on_frames is not None:
            self.on_frames()

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
