"""Runs the probes of probes.py against a real engine (wide imports, test
mode) and returns each probe's normalised outcome.  Also owns the host-side
targets the probes aim at: a TCP and a UDP port on host loopback and a host
abstract Unix socket, all created (and closed) by the test."""
import concurrent.futures
import json
import os
import socket

from tests.integration.engine import ROOT, ROOTFS, Engine
from tests.security.probes import PRELUDE, PROBES

CONFIG = """
engine:
  imports: all
  test_mode: true
  workers: 4
  memory_mb: 64
  pids_max: 32
  cpu_quota_pct: 50
  tmp_size_mb: 8
  default_timeout_s: 10
  max_timeout_s: 20
"""
TIMEOUTS = {"cpu_spin": 2, "memory_bomb": 15}


class HostTargets:
    """Listening sockets on the host the sandbox must not reach."""

    def __init__(self):
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(8)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.abstract_name = "codemode-sec-%d" % os.getpid()
        self.unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.unix.bind("\0" + self.abstract_name)
        self.unix.listen(8)

    def params(self):
        return {"tcp_port": self.tcp.getsockname()[1], "udp_port": self.udp.getsockname()[1],
                "abstract": self.abstract_name, "test_pid": os.getpid()}

    def close(self):
        for s in (self.tcp, self.udp, self.unix):
            s.close()


def start_engine(disabled=None):
    """An engine with the given layers switched off (CODEMODE_TEST_DISABLE_LAYER)."""
    eng = Engine(CONFIG)
    old = os.environ.get("CODEMODE_TEST_DISABLE_LAYER")
    os.environ["CODEMODE_TEST_DISABLE_LAYER"] = disabled or ""
    os.environ["CODEMODE_SECRET_CANARY"] = "s3cret"
    try:
        eng.start()
    except Exception:
        eng.cleanup()
        raise
    finally:
        del os.environ["CODEMODE_SECRET_CANARY"]
        if old is None:
            del os.environ["CODEMODE_TEST_DISABLE_LAYER"]
        else:
            os.environ["CODEMODE_TEST_DISABLE_LAYER"] = old
    return eng


def outcome(sc):
    if sc["error"] is not None:
        return ["error", sc["error"]["kind"]]
    return sc["result"]


def run_probe(eng, name, code, params):
    client = eng.client(timeout=60)
    try:
        body = PRELUDE + "\n" + code.format(**params)
        return name, outcome(client.chain(body, timeout=TIMEOUTS.get(name, 10))), body
    finally:
        client.close()


def run_all(eng, targets, names=None):
    """{probe name: outcome} for every probe (4 at a time)."""
    params = dict(targets.params(), engine_pid=eng.proc.pid, config_path=eng.config_path)
    todo = [(n, c) for n, c, _ in PROBES if names is None or n in names]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futs = [pool.submit(run_probe, eng, n, c, params) for n, c in todo]
        return {n: o for n, o, _ in (f.result() for f in futs)}


if __name__ == "__main__":  # exploration: python3 -m tests.security.harness [layers]
    import sys
    t = HostTargets()
    e = start_engine(sys.argv[1] if len(sys.argv) > 1 else "")
    try:
        res = run_all(e, t)
        expected = {n: x for n, _, x in PROBES}
        for n in expected:
            mark = "  " if res[n] == expected[n] else "!!"
            print(mark, n, json.dumps(res[n]))
    finally:
        e.stop()
        e.cleanup()
        t.close()
