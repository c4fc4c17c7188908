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
    not; the test runs the probes' command itself.
  - the ConfigMap and emptyDir volumes: podman keeps each as a named
    volume called after the ConfigMap or the volume, which every pod naming
    it shares and `kube down` leaves; the copy names them after the test
    (parallel runs share none) and the test removes them."""
import json
import os
import unittest

import yaml

from tests.deploy import harness as h

KDIR = os.path.join(h.ROOT, "deploy", "kubernetes")


def load(name):
    with open(os.path.join(KDIR, name)) as f:
        return yaml.safe_load(f)


def as_podman_pod(ds, name, sockdir):
    """The DaemonSet's pod template as a Pod podman can play (the module
    docstring says why each change)."""
    t = h.podman_template(ds["spec"]["template"], name, ds["metadata"]["namespace"])
    for c in t["spec"]["containers"]:
        c.pop("ports", None)
    for v in t["spec"]["volumes"]:
        if v["name"] == "socket-dir":
            v["hostPath"]["path"] = sockdir
    return {"apiVersion": "v1", "kind": "Pod", "metadata": t["metadata"], "spec": t["spec"]}


class KubePlay(h.PlayedTest):
    TAG = "kube"

    @classmethod
    def play(cls):
        pm = cls.pm
        cls.ds = load("daemonset.yaml")
        cls.container = cls.engine_container(cls.ds)
        cls.sockdir = os.path.join(pm.tmp, "node-run-codemode")
        os.mkdir(cls.sockdir)
        cls.pod = pm.prefix
        pod = as_podman_pod(cls.ds, cls.pod, cls.sockdir)
        cm = h.own_volumes(pm, load("configmap.yaml"), pod["spec"], cls.pod)
        docs = [cm, pod]
        cls.played = os.path.join(pm.tmp, "play.yaml")
        with open(cls.played, "w") as f:
            yaml.safe_dump_all(docs, f)
        pm.run("kube", "play", "--network", "none", "--seccomp-profile-root", h.IMAGE_DIR,
               cls.played)
        cls.pods.append(cls.pod)
        cls.engine = "%s-%s" % (cls.pod, cls.container["name"])
        cls.sidecar = pm.start_sidecar(cls.pod)
        sock_arg = cls.container["args"][cls.container["args"].index("--socket") + 1]
        cls.sock = os.path.join(cls.sockdir, os.path.basename(sock_arg))

        h.wait_container_ready(pm, cls.sock, cls.engine, "played engine")

    def test_the_played_container_has_the_manifest_security_context(self):
        cfg, eff = self.pm.engine_caps(self.engine)
        self.assertFalse(cfg["HostConfig"]["Privileged"])
        want = h.caps_mask(self.container["securityContext"]["capabilities"]["add"])
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

    def test_doctor_in_the_played_pod(self):
        p = self.pm.run("exec", self.engine, "codemode", "doctor", "--config",
                        "/etc/codemode/codemode.yaml", check=False)
        rows = h.doctor_rows(p.stdout)
        for layer in h.LAYERS:
            self.assertEqual(rows.get(layer, ("missing",))[0], "active", p.stdout)
        self.assertEqual(p.returncode, 0, p.stdout)


if __name__ == "__main__":
    unittest.main()
