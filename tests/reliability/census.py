"""What an engine holds, counted from /proc and /sys: fds, RSS, sandbox
processes (uid range 100000..; provider processes run with uids from the
same range, and count too), codemode cgroup dirs, /proc/mounts lines."""
import os

from tests.integration.engine import codemode_cgroup_roots

SANDBOX_UID_MIN = 100000


def in_instance(pid, instance):
    """True when pid's cgroup path names the engine instance (e<engine pid>)."""
    try:
        with open("/proc/%s/cgroup" % pid) as f:
            return ("/codemode/%s/" % instance) in f.read()
    except OSError:
        return False


def sandbox_procs(instance=None):
    """Processes in the sandbox uid range; with instance, only that engine's
    (the machine is shared: other engines may be running)."""
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/status" % p) as f:
                for line in f:
                    if line.startswith("Uid:"):
                        if int(line.split()[1]) >= SANDBOX_UID_MIN and (
                                instance is None or in_instance(p, instance)):
                            out.append(int(p))
                        break
        except (OSError, ValueError):
            pass
    return out


def cgroup_dirs(instance=None):
    """Cgroup directories of one engine instance e<pid> (with its cgroup2
    provider group p<pid>), or of all."""
    dirs = []
    mine = instance and (instance, "p" + instance[1:])
    for root in codemode_cgroup_roots():
        for d, sub, _ in os.walk(root):
            rel = d[len(root) + 1:].split("/")[0]
            if d != root and (instance is None or rel in mine):
                dirs.append(d)
    return dirs


def engine(pid):
    inst = "e%d" % pid
    fds = len(os.listdir("/proc/%d/fd" % pid))
    rss = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
    with open("/proc/%d/status" % pid) as f:
        threads = next(int(l.split()[1]) for l in f if l.startswith("Threads:"))
    return {"fds": fds, "rss": rss, "threads": threads, "sandbox_procs": len(sandbox_procs(inst)),
            "cgroups": len(cgroup_dirs(inst)), "mounts": mounts()}


def mounts():
    with open("/proc/mounts") as f:
        return sum(1 for _ in f)
