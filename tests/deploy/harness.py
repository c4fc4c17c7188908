"""What the deployment tests share: podman run with a test-only
containers.conf, the engine's config taken from the shipped ConfigMap, a
real HTTP server in a pod's network namespace, waiting for the engine's
socket, and clean-up of exactly what a test created (by name or pid).

Why a test-only containers.conf (CONTAINERS_CONF): the OCI runtime is runc
(Debian 12's crun 1.8 refuses v1 hosts whose cgroup2 mount has a
controller), and the default ulimits are the ones this host allows (where
podman lacks CAP_SYS_RESOURCE, as in this CI VM, its defaults of 1M open
files cannot be set).  Nothing of the host's podman configuration changes."""
import copy
import json
import os
import re
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, "build", "codemode")
PYTHON = "/usr/bin/python3.11"
IMAGE_DIR = os.path.join(ROOT, "build", "image")
SECCOMP = os.path.join(IMAGE_DIR, "codemode-engine.json")
DOC_SECCOMP = "/etc/containers/codemode-engine.json"  # the path deploy/README.md uses
SIDECAR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "http_sidecar.py")
WRAPPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "oci_procmount.py")
# layers `codemode doctor` reports (isolate/doctor.c); each must be listed
LAYERS = ("namespaces", "cgroup", "seccomp", "caps", "rlimits", "userns_limit", "bpf", "init")


def version():
    with open(os.path.join(ROOT, "engine", "engine.h")) as f:
        return re.search(r'#define CM_VERSION "([^"]+)"', f.read()).group(1)


IMAGE = os.environ.get("CODEMODE_IMAGE", "localhost/codemode:" + version())


def documented_privileges():
    """The podman flags deploy/README.md documents for the engine container
    (the block between its engine-privileges markers), as a list."""
    with open(os.path.join(ROOT, "deploy", "README.md")) as f:
        text = f.read()
    m = re.search(r"<!-- engine-privileges:begin -->\s*```sh\n(.*?)```\s*<!-- engine-privileges:end -->",
                  text, re.S)
    if not m:
        raise AssertionError("deploy/README.md has no engine-privileges block")
    flags = shlex.split(m.group(1).replace("\\\n", " "), comments=True)
    return [f.replace(DOC_SECCOMP, SECCOMP) for f in flags]


def configmap_files(dest):
    """Writes the data files of the shipped ConfigMap into dest."""
    with open(os.path.join(ROOT, "deploy", "kubernetes", "configmap.yaml")) as f:
        cm = yaml.safe_load(f)
    for name, text in cm["data"].items():
        with open(os.path.join(dest, name), "w") as f:
            f.write(text)
    return sorted(cm["data"])


class Podman:
    """podman with this test's containers.conf; remembers what to remove."""

    def __init__(self, tag):
        self.tmp = tempfile.mkdtemp(prefix="codemode-%s-" % tag)
        os.chmod(self.tmp, 0o755)
        self.prefix = "cmtest-%s-%d" % (tag, os.getpid())
        self.conf = os.path.join(self.tmp, "containers.conf")
        self.runtime = os.environ.get("CODEMODE_OCI_RUNTIME", "/usr/bin/runc")
        self.write_conf(self.runtime)
        self.pods, self.containers, self.procs, self.cgroups = [], [], [], []
        self.volumes = []

    def write_conf(self, runtime):
        nofile = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 65536)
        nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 16384)
        with open(self.conf, "w") as f:
            f.write('[containers]\ndefault_ulimits = ["nofile=%d:%d", "nproc=%d:%d"]\n'
                    '[engine]\nruntime = "%s"\n' % (nofile, nofile, nproc, nproc, runtime))

    def env(self):
        return dict(os.environ, CONTAINERS_CONF=self.conf)

    def run(self, *args, check=True, timeout=180, **kw):
        p = subprocess.run(["podman"] + list(args), capture_output=True, text=True,
                           timeout=timeout, env=self.env(), **kw)
        if check and p.returncode != 0:
            raise AssertionError("podman %s: exit %d\n%s%s" % (
                " ".join(args[:3]), p.returncode, p.stdout[-2000:], p.stderr[-3000:]))
        return p

    def infra_pid(self, pod):
        infra = self.run("pod", "inspect", pod, "--format", "{{.InfraContainerID}}").stdout.strip()
        return int(self.run("inspect", infra, "--format", "{{.State.Pid}}").stdout.strip())

    def remember_pod_cgroup(self, pod):
        """podman (cgroupfs manager, v1) leaves the pod's directory on the
        unified hierarchy behind; the test removes it (empty dirs only)."""
        pid = self.run("pod", "inspect", pod, "--format", "{{.ID}}").stdout.strip()
        self.cgroups.append("/sys/fs/cgroup/unified/libpod_parent/" + pid)

    def engine_caps(self, container):
        """(podman inspect of the container, its pid 1's effective caps)."""
        cfg = json.loads(self.run("inspect", container).stdout)[0]
        with open("/proc/%d/status" % cfg["State"]["Pid"]) as f:
            eff = int([l for l in f if l.startswith("CapEff:")][0].split()[1], 16)
        return cfg, eff

    def start_sidecar(self, pod):
        """A real HTTP server on 127.0.0.1:8080 in the pod's network
        namespace (a host process: the image holds no Python of its own)."""
        pid = self.infra_pid(pod)
        proc = subprocess.Popen(["nsenter", "-t", str(pid), "-n", PYTHON, SIDECAR],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(proc)
        line = proc.stdout.readline()
        if "listening" not in line:
            raise AssertionError("sidecar did not start: %r %s" % (line, proc.stderr.read()))
        return proc

    def cleanup(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        for c in self.containers:
            self.run("rm", "-f", "-t", "10", c, check=False)
        for p in self.pods:
            self.run("pod", "rm", "-f", "-t", "10", p, check=False)
        for v in dict.fromkeys(self.volumes):
            self.run("volume", "rm", v, check=False)  # never -f: that removes users
        for d in self.cgroups:
            try:
                os.rmdir(d)
            except OSError:
                pass
        shutil.rmtree(self.tmp, ignore_errors=True)


CAP_BITS = {"CHOWN": 0, "SETGID": 6, "SETUID": 7, "NET_ADMIN": 12, "BPF": 39}


def caps_mask(names):
    return sum(1 << CAP_BITS[c] for c in names)


def podman_template(template, name, namespace):
    """A workload's pod template adapted for podman 4.3 (tests/deploy/
    test_kube.py says why): seccompProfile Localhost as the legacy
    annotation podman reads, procMount: Unmasked as the annotation the
    test's OCI runtime wrapper acts on."""
    t = copy.deepcopy(template)
    t["metadata"] = dict(t["metadata"], name=name, namespace=namespace)
    ann = t["metadata"].setdefault("annotations", {})
    for c in t["spec"]["containers"]:
        sc = c.get("securityContext", {})
        prof = sc.get("seccompProfile", {})
        if prof.get("type") == "Localhost":
            ann["container.seccomp.security.alpha.kubernetes.io/" + c["name"]] = (
                "localhost/" + prof["localhostProfile"])
        if sc.get("procMount") == "Unmasked":
            ann["codemode.test/proc-mount"] = "Unmasked"
    return t


def own_volumes(pm, cm, spec, name):
    """The ConfigMap and the emptyDir volumes under names of the test's own
    (name-...), remembered for removal.  podman 4.3 keeps each as a named
    volume called after the ConfigMap or the volume, shared by every pod
    that names it and left by `kube down`: parallel runs (and a
    Deployment's replicas) must not share them.  Returns the ConfigMap."""
    old = cm["metadata"]["name"]
    cm = dict(cm, metadata=dict(cm["metadata"], name=name + "-config"))
    renamed = {}
    for v in spec["volumes"]:
        if v.get("configMap", {}).get("name") == old:
            v["configMap"]["name"] = cm["metadata"]["name"]
            pm.volumes.append(cm["metadata"]["name"])
        if "emptyDir" in v:
            renamed[v["name"]] = v["name"] = "%s-%s" % (name, v["name"])
            pm.volumes.append(v["name"])
    for c in spec["containers"]:
        for m in c.get("volumeMounts", []):
            m["name"] = renamed.get(m["name"], m["name"])
    return cm


class PlayedTest(unittest.TestCase):
    """Manifests played with `podman kube play` in setUpClass (the subclass's
    play(), which sets cls.played, cls.pods, cls.container, cls.engine) and
    torn down with `podman kube down` in tearDownClass, plus what the test
    made (its Podman's cleanup), also when play() fails half-way."""
    TAG = "kube"

    @classmethod
    def setUpClass(cls):
        cls.pm = Podman(cls.TAG)
        cls.played, cls.pods = None, []
        try:
            cls.pm.write_conf(WRAPPER)
            if cls.pm.run("image", "exists", IMAGE, check=False).returncode != 0:
                raise AssertionError("image %s missing: run `make image`" % IMAGE)
            cls.play()
        except BaseException:
            cls.down()
            cls.pm.cleanup()
            raise

    @classmethod
    def engine_container(cls, workload):
        """The workload's engine container; it must run the image make image builds."""
        c = workload["spec"]["template"]["spec"]["containers"][0]
        if not IMAGE.endswith("/" + c["image"]):
            raise AssertionError("the %s runs %s, make image builds %s" % (
                workload["kind"], c["image"], IMAGE))
        return c

    @classmethod
    def down(cls):
        """`podman kube down`, after noting the cgroup of every pod the play
        made (also when it failed half-way: found by the test's name prefix)."""
        if not cls.played:
            return
        ps = cls.pm.run("pod", "ps", "--filter", "name=^" + cls.pm.prefix, "--format",
                        "{{.Name}}", check=False)
        for pod in ps.stdout.split():
            if pod.startswith(cls.pm.prefix):
                cls.pm.remember_pod_cgroup(pod)
        cls.pm.run("kube", "down", cls.played, check=False)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.down()
            left = [p for p in cls.pods
                    if cls.pm.run("pod", "exists", p, check=False).returncode == 0]
        finally:
            cls.pm.cleanup()
        if left:
            raise AssertionError("pods %s still exist after podman kube down" % left)

    def test_probe_commands(self):
        for probe in ("readinessProbe", "livenessProbe"):
            cmd = self.container[probe]["exec"]["command"]
            p = self.pm.run("exec", self.engine, *cmd, check=False)
            self.assertEqual(p.returncode, 0, "%s %s: %s" % (probe, cmd, p.stdout + p.stderr))


def wait_ready(sock, proc_alive, timeout=60):
    """Waits until `codemode health` through sock says ready."""
    deadline = time.time() + timeout
    last = ""
    while time.time() < deadline:
        if os.path.exists(sock):
            p = subprocess.run([BIN, "health", "--socket", sock], capture_output=True, text=True,
                               timeout=30)
            last = p.stdout + p.stderr
            if p.returncode == 0:
                return json.loads(p.stdout) if p.stdout.strip().startswith("{") else p.stdout
        if not proc_alive():
            break
        time.sleep(0.3)
    raise AssertionError("engine not ready on %s: %s" % (sock, last[-2000:]))


def wait_container_ready(pm, sock, name, what):
    """wait_ready for the engine in container `name`; on failure the error
    carries the end of its log, `what` naming it."""
    def running():
        st = pm.run("inspect", name, "--format", "{{.State.Running}}", check=False)
        return st.stdout.strip() == "true"
    try:
        wait_ready(sock, running)
    except AssertionError:
        logs = pm.run("logs", name, check=False)
        raise AssertionError("%s not ready; its log:\n%s" % (what, logs.stderr[-3000:]))


def run_chain(sock, code, timeout=60):
    p = subprocess.run([BIN, "run", "--socket", sock, "-"], input=code, capture_output=True,
                       text=True, timeout=timeout)
    try:
        return json.loads(p.stdout)
    except ValueError:
        raise AssertionError("codemode run: exit %d: %s %s" % (p.returncode, p.stdout, p.stderr))


def doctor_rows(text):
    """{layer: (status, detail)} from `codemode doctor`'s report."""
    rows = {}
    for line in text.splitlines():
        m = re.match(r"^([a-z_]+(?: check)?)\s{2,}(active|unavailable|disabled|ok|FAILED)\s+(.*)$", line)
        if m:
            rows[m.group(1)] = (m.group(2), m.group(3).strip())
    return rows


def descendants(pid):
    """{host pid: host uid} of every process below pid (host /proc)."""
    parent, uid = {}, {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/status" % d) as f:
                st = dict(l.split(":", 1) for l in f if ":" in l)
            parent[int(d)] = int(st["PPid"])
            uid[int(d)] = int(st["Uid"].split()[0])
        except (OSError, ValueError, KeyError):
            pass
    out, todo = {}, [pid]
    while todo:
        p = todo.pop()
        for c, pp in parent.items():
            if pp == p and c not in out:
                out[c] = uid[c]
                todo.append(c)
    return out


CHAIN = """n = await node.word_count(text="one two three")
s = await node.api_status()
return {"words": n, "status": s}
"""


def log(msg):
    print("deploy-test: " + msg, file=sys.stderr, flush=True)
