"""Test harness: start a real codemode engine on a temporary socket and talk
JSON-RPC to it.  Used by every integration test; stdlib only.

CODEMODE_BIN selects the binary (default build/codemode); `make test` runs the
suite against both the normal and the ASan/UBSan build."""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _searchable_by_all(path):
    """True when any uid may reach path (every directory on the way o+x)."""
    while True:
        if not os.stat(path).st_mode & 0o001:
            return False
        if path == "/":
            return True
        path = os.path.dirname(path)


def _provider_view(root):
    """Provider processes (CLI commands, MCP servers) run as unprivileged
    uids (isolate/provider_jail.c), so the test servers and npm packages of
    the checkout must be reachable by any uid.  A clone below a 0700
    directory (/root) is not: then this test process takes a mount
    namespace of its own (the bind goes with it) and binds the checkout at
    /run/codemode-tests/<pid> (removed at exit), which every engine it
    starts, and so every provider, sees.  A checkout any uid can reach is used as
    it is."""
    if _searchable_by_all(root) or os.geteuid() != 0:
        return root
    import atexit
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    view = "/run/codemode-tests/%d" % os.getpid()
    if libc.unshare(0x00020000) != 0:  # CLONE_NEWNS
        raise RuntimeError("the checkout %s is not reachable by other uids and a private mount "
                           "namespace failed (errno %d): clone it below a world-searchable "
                           "directory" % (root, ctypes.get_errno()))
    subprocess.run(["mount", "--make-rprivate", "/"], check=True)
    os.makedirs(view, exist_ok=True)
    os.chmod(os.path.dirname(view), 0o755)
    subprocess.run(["mount", "--bind", root, view], check=True)

    def remove():
        subprocess.run(["umount", "-l", view], check=False)
        for d in (view, os.path.dirname(view)):
            try:
                os.rmdir(d)
            except OSError:
                pass  # another test process still has its own there
    atexit.register(remove)
    return view


_CHECKOUT = ROOT
ROOT = _provider_view(ROOT)
BIN = os.environ.get("CODEMODE_BIN", os.path.join(ROOT, "build", "codemode"))
if ROOT != _CHECKOUT and BIN.startswith(_CHECKOUT + "/"):
    # the binary through the same view (a rootless engine's uid must exec it)
    BIN = ROOT + BIN[len(_CHECKOUT):]
ROOTFS = os.path.join(ROOT, "build", "rootfs")


def alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_port(port, proc=None, what="server", timeout=30):
    """Waits until something listens on 127.0.0.1:port (proc: fail early if it exits)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("%s exited with %s" % (what, proc.returncode))
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("%s did not listen on port %d" % (what, port))


def stop_process(proc, timeout=10):
    """SIGTERM, then SIGKILL after timeout; reaped either way."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def status_fields(pid):
    """/proc/PID/status as a dict of stripped strings."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def chain_result(socket_path, code):
    """Runs one chain on a fresh connection; its result (AssertionError
    with the whole response when the chain failed)."""
    c = Client(socket_path)
    try:
        r = c.chain(code)
    finally:
        c.close()
    if r["error"] is not None:
        raise AssertionError("chain failed: %r" % r)
    return r["result"]


def codemode_cgroup_roots():
    """Every `codemode` cgroup directory an engine started by this process
    may use: at each hierarchy's root and below this process's own cgroup
    in it (engines nest below the cgroup they start in)."""
    import glob
    roots = set(glob.glob("/sys/fs/cgroup/*/codemode") + glob.glob("/sys/fs/cgroup/codemode"))
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if path == "/":
                continue
            mounts = (["/sys/fs/cgroup/unified", "/sys/fs/cgroup"] if not ctrls else
                      ["/sys/fs/cgroup/" + c for c in ctrls.split(",") if not c.startswith("name=")])
            for m in mounts:
                if os.path.isdir(m + path + "/codemode"):
                    roots.add(m + path + "/codemode")
    return sorted(roots)


class Client:
    """One connection to the engine: newline-delimited JSON-RPC."""

    def __init__(self, path, timeout=60):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""
        self.next_id = 1

    def close(self):
        self.sock.close()

    def send_raw(self, data: bytes):
        self.sock.sendall(data)

    def read_message(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("engine closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def request(self, method, params=None):
        rid = self.next_id
        self.next_id += 1
        msg = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            msg["params"] = params
        self.send_raw(json.dumps(msg).encode() + b"\n")
        while True:
            resp = self.read_message()
            if resp.get("id") == rid:
                return resp

    def call_tool(self, name, arguments=None):
        resp = self.request("tools/call", {"name": name, "arguments": arguments or {}})
        if "error" in resp:
            raise AssertionError("JSON-RPC error: %r" % resp["error"])
        return resp["result"]

    def chain(self, code, timeout=None):
        args = {"code": code}
        if timeout is not None:
            args["timeout"] = timeout
        res = self.call_tool("call_tool_chain", args)
        sc = res["structuredContent"]
        assert res["isError"] == (sc["error"] is not None), res
        assert json.loads(res["content"][0]["text"]) == sc
        return sc


class Engine:
    """A running `codemode serve` with its own temp dir, socket and config."""

    def __init__(self, config=None, config_name="config.yaml", files=None, args=None):
        self.args = list(args or [])  # more `codemode serve` options (e.g. --http ADDR)
        self.dir = tempfile.mkdtemp(prefix="codemode-test-")
        # a root engine drops to its service user after its start (isolate/
        # README.md "Privilege separation"): that user reads the manual and
        # policy files here at run time and writes the metrics file (temp +
        # rename) and removes its socket at stop; which uid it is (the
        # claimed sandbox range's last) is known only once the engine runs
        os.chmod(self.dir, 0o1777)
        self.socket = os.path.join(self.dir, "engine.sock")
        self.config_path = None
        for name, text in (files or {}).items():
            with open(os.path.join(self.dir, name), "w") as f:
                f.write(text)
        if config is not None:
            self.config_path = os.path.join(self.dir, config_name)
            with open(self.config_path, "w") as f:
                f.write(config if isinstance(config, str) else json.dumps(config))
        self.log_path = os.path.join(self.dir, "engine.log")
        self.proc = None

    def start(self, wait=True):
        cmd = [BIN, "serve", "--socket", self.socket]
        if self.config_path:
            cmd += ["--config", self.config_path]
        cmd += self.args
        self.log = open(self.log_path, "w")
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        self.proc = subprocess.Popen(cmd, stderr=self.log, stdout=self.log, env=env)
        if wait:
            # CODEMODE_TEST_START_S: more time where the machine is slow (the
            # test VM under software emulation); 20 s otherwise
            deadline = time.time() + float(os.environ.get("CODEMODE_TEST_START_S", "20"))
            while not os.path.exists(self.socket):
                if self.proc.poll() is not None:
                    raise RuntimeError("engine exited %s: %s" % (self.proc.returncode, self.read_log()))
                if time.time() > deadline:
                    raise RuntimeError("engine did not start: " + self.read_log())
                time.sleep(0.02)
        return self

    def read_log(self):
        try:
            with open(self.log_path) as f:
                return f.read()
        except OSError:
            return ""

    def client(self, timeout=60):
        return Client(self.socket, timeout)

    def stop(self):
        """SIGTERM, wait, and return the exit code."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode if self.proc else None
        if getattr(self, "log", None):
            self.log.close()
        return rc

    def cleanup(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class EngineTest(unittest.TestCase):
    """Starts one engine per test class (CONFIG / FILES class attributes)."""

    CONFIG = None
    CONFIG_NAME = "config.yaml"
    FILES = None

    @classmethod
    def cleanup_side(cls):
        """What a test class starts besides the engine (servers, dirs): stopped
        after the engine, and when setUpClass fails."""

    @classmethod
    def ready(cls):
        """Runs after the engine started (e.g. wait for its HTTP port)."""

    @classmethod
    def setUpClass(cls):
        cls.engine = Engine(cls.CONFIG, cls.CONFIG_NAME, cls.FILES)
        try:
            cls.engine.start()
            cls.client = cls.engine.client()
            cls.ready()
        except Exception:
            cls.engine.cleanup()  # never leave an engine running
            cls.cleanup_side()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.stop_engine()
        finally:
            cls.cleanup_side()

    @classmethod
    def stop_engine(cls):
        cls.client.close()
        rc = cls.engine.stop()
        log = cls.engine.read_log()
        cls.engine.cleanup()
        if rc != 0:
            raise AssertionError("engine exited with %s on SIGTERM; log:\n%s" % (rc, log[-4000:]))
        if "ERROR: AddressSanitizer" in log or "runtime error:" in log or "LeakSanitizer" in log:
            raise AssertionError("sanitizer report in engine log:\n" + log[-6000:])
