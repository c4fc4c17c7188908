"""The Kubernetes manifests, run (issue 22): deploy/kubernetes's ConfigMap
and DaemonSet played with `podman kube play`, the engine reached through
the socket directory the manifests share with the node, a chain run with a
CLI and an HTTP tool (a real HTTP server on the pod's loopback), the
probes' command run, and everything torn down with `podman kube down`.

What podman 4.3 (Debian 12) does not support is adapted in a copy, and only
that (deploy/README.md lists the same):
  - DaemonSet: not a kind podman plays; its pod template is played as a Pod.
  - hostPath /run/codemode: a temporary directory (the node's socket dir).
  - ports: podman refuses port mappings without a bridge network, and the
    pod runs with no network but loopback (--network none).
  - securityContext.seccompProfile (Localhost): podman reads only the
    legacy annotation container.seccomp.security.alpha.kubernetes.io/<c>,
    from --seccomp-profile-root; the test sets it to the same profile.
  - securityContext.procMount: Unmasked: ignored by podman; the test's OCI
    runtime wrapper (oci_procmount.py) does what a Kubernetes runtime does
    for it, on the container annotated in its place.
  - probes: podman runs them from systemd timers, which this machine has
    not; the test runs the probes' command itself."""
import copy
import json
import os
import unittest

import yaml

from tests.deploy import harness as h

KDIR = os.path.join(h.ROOT, "deploy", "kubernetes")
WRAPPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "oci_procmount.py")


def load(name):
    with open(os.path.join(KDIR, name)) as f:
        return yaml.safe_load(f)


def as_podman_pod(ds, name, sockdir):
    """The DaemonSet's pod template as a Pod podman can play (the module
    docstring says why each change)."""
    t = copy.deepcopy(ds["spec"]["template"])
    meta = dict(t["metadata"], name=name, namespace=ds["metadata"]["namespace"])
    ann = meta.setdefault("annotations", {})
    for c in t["spec"]["containers"]:
        c.pop("ports", None)
        sc = c.get("securityContext", {})
        prof = sc.get("seccompProfile", {})
        if prof.get("type") == "Localhost":
            ann["container.seccomp.security.alpha.kubernetes.io/" + c["name"]] = (
                "localhost/" + prof["localhostProfile"])
        if sc.get("procMount") == "Unmasked":
            ann["codemode.test/proc-mount"] = "Unmasked"
    for v in t["spec"]["volumes"]:
        if v["name"] == "socket-dir":
            v["hostPath"]["path"] = sockdir
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": t["spec"]}


class KubePlay(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.pm = h.Podman("kube")
        cls.played = None
        try:
            cls.play()
        except BaseException:
            cls.down()
            cls.pm.cleanup()
            raise

    @classmethod
    def play(cls):
        pm = cls.pm
        pm.write_conf(WRAPPER)
        if pm.run("image", "exists", h.IMAGE, check=False).returncode != 0:
            raise AssertionError("image %s missing: run `make image`" % h.IMAGE)
        cls.ds = load("daemonset.yaml")
        cls.container = cls.ds["spec"]["template"]["spec"]["containers"][0]
        image = cls.container["image"]
        if not h.IMAGE.endswith("/" + image):
            raise AssertionError("the DaemonSet runs %s, make image builds %s" % (image, h.IMAGE))
        cls.sockdir = os.path.join(pm.tmp, "node-run-codemode")
        os.mkdir(cls.sockdir)
        cls.pod = pm.prefix
        docs = [load("configmap.yaml"), as_podman_pod(cls.ds, cls.pod, cls.sockdir)]
        cls.played = os.path.join(pm.tmp, "play.yaml")
        with open(cls.played, "w") as f:
            yaml.safe_dump_all(docs, f)
        pm.run("kube", "play", "--network", "none", "--seccomp-profile-root", h.IMAGE_DIR,
               cls.played)
        pm.remember_pod_cgroup(cls.pod)
        cls.engine = "%s-%s" % (cls.pod, cls.container["name"])
        cls.sidecar = pm.start_sidecar(cls.pod)
        sock_arg = cls.container["args"][cls.container["args"].index("--socket") + 1]
        cls.sock = os.path.join(cls.sockdir, os.path.basename(sock_arg))

        def alive():
            st = pm.run("inspect", cls.engine, "--format", "{{.State.Running}}", check=False)
            return st.stdout.strip() == "true"
        try:
            h.wait_ready(cls.sock, alive)
        except AssertionError:
            logs = pm.run("logs", cls.engine, check=False)
            raise AssertionError("played engine not ready; its log:\n" + logs.stderr[-3000:])

    @classmethod
    def down(cls):
        if cls.played:
            cls.pm.run("kube", "down", cls.played, check=False)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.down()
            gone = cls.pm.run("pod", "exists", cls.pod, check=False).returncode
        finally:
            cls.pm.cleanup()
        if gone == 0:
            raise AssertionError("pod %s still exists after podman kube down" % cls.pod)

    def test_the_played_container_has_the_manifest_security_context(self):
        cfg = json.loads(self.pm.run("inspect", self.engine).stdout)[0]
        self.assertFalse(cfg["HostConfig"]["Privileged"])
        with open("/proc/%d/status" % cfg["State"]["Pid"]) as f:
            eff = int([l for l in f if l.startswith("CapEff:")][0].split()[1], 16)
        names = {"CHOWN": 0, "SETGID": 6, "SETUID": 7, "NET_ADMIN": 12, "BPF": 39}
        want = sum(1 << names[c] for c in self.container["securityContext"]["capabilities"]["add"])
        self.assertEqual(eff, want, hex(eff))
        self.assertTrue(cfg["HostConfig"]["ReadonlyRootfs"])
        self.assertEqual(os.stat(self.sock).st_gid,
                         self.container["securityContext"]["runAsGroup"])

    def test_chain_through_the_node_socket(self):
        r = h.run_chain(self.sock, h.CHAIN)
        self.assertIsNone(r["error"], r)
        self.assertEqual(str(r["result"]["words"]).strip(), "3")
        self.assertTrue(r["result"]["status"]["ok"])

    def test_pod_client_on_the_node(self):
        """A non-root client in the socket's group (as a client pod with
        supplementalGroups [990]) gets the policy's default profile."""
        gid = self.container["securityContext"]["runAsGroup"]
        p = self.pm.run("exec", "-i", "--user", "65534:%d" % gid, self.engine, "codemode", "run",
                        "-", input=h.CHAIN, check=False)
        r = json.loads(p.stdout)
        self.assertIsNone(r["error"], r)
        self.assertEqual(r["stats"]["profile"], "default")

    def test_probe_commands(self):
        for probe in ("readinessProbe", "livenessProbe"):
            cmd = self.container[probe]["exec"]["command"]
            p = self.pm.run("exec", self.engine, *cmd, check=False)
            self.assertEqual(p.returncode, 0, "%s %s: %s" % (probe, cmd, p.stdout + p.stderr))

    def test_doctor_in_the_played_pod(self):
        p = self.pm.run("exec", self.engine, "codemode", "doctor", "--config",
                        "/etc/codemode/codemode.yaml", check=False)
        rows = h.doctor_rows(p.stdout)
        for layer in h.LAYERS:
            self.assertEqual(rows.get(layer, ("missing",))[0], "active", p.stdout)
        self.assertEqual(p.returncode, 0, p.stdout)


if __name__ == "__main__":
    unittest.main()
