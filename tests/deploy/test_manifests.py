"""deploy/check_manifests.py over both manifest directories (the offline
check `make deploy-check` runs; tests/integration/test_ops.py covers the
DaemonSet's own checks): the shipped set passes, and the references the
service form adds — the ConfigMap's policy being the tested one, a
Service's selector and targetPort, an HPA's target, a PDB's selector, the
files the config names, the service config drifting from the node one, an
HTTP listen port no containerPort names — each fail when broken; and the
engine refuses the service config's token placeholder."""
import os
import shutil
import subprocess
import tempfile
import unittest

from tests.deploy import harness as h

DIRS = ("kubernetes", "kubernetes-service")


class ManifestRefs(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="codemode-k8s-refs-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        for d in DIRS:
            shutil.copytree(os.path.join(h.ROOT, "deploy", d), os.path.join(self.tmp, d))

    def check(self):
        return subprocess.run([h.PYTHON, os.path.join(h.ROOT, "deploy", "check_manifests.py")] +
                              [os.path.join(self.tmp, d) for d in DIRS],
                              capture_output=True, text=True, timeout=60)

    def edit(self, rel, old, new):
        path = os.path.join(self.tmp, rel)
        with open(path) as f:
            text = f.read()
        self.assertIn(old, text)
        with open(path, "w") as f:
            f.write(text.replace(old, new, 1))

    def assertCaught(self, needle):
        p = self.check()
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn(needle, p.stdout)

    def test_shipped_set_passes(self):
        p = self.check()
        self.assertEqual(p.returncode, 0, p.stdout)
        self.assertIn("7 manifests OK", p.stdout)

    def test_policy_must_be_the_tested_one(self):
        self.edit("kubernetes/configmap.yaml", "max_calls: 20", "max_calls: 2000")
        self.assertCaught("differs from policies/examples/kubernetes.yaml")

    def test_config_names_files_the_configmap_holds(self):
        self.edit("kubernetes/configmap.yaml", "file_path: node-manual.json",
                  "file_path: other.json")
        self.assertCaught("names other.json")

    def test_service_target_port_and_selector(self):
        self.edit("kubernetes-service/service.yaml", "targetPort: http", "targetPort: web")
        self.assertCaught("targetPort web is no containerPort name")
        self.edit("kubernetes-service/service.yaml", "    app.kubernetes.io/name: codemode-http\n  ports",
                  "    app.kubernetes.io/name: nothing\n  ports")
        self.assertCaught("matches no workload's pods")

    def test_hpa_and_pdb_targets(self):
        self.edit("kubernetes-service/hpa.yaml", "name: codemode-http\n  minReplicas",
                  "name: codemode-gone\n  minReplicas")
        self.assertCaught("scaleTargetRef Deployment/codemode-gone")
        self.edit("kubernetes-service/pdb.yaml", "      app.kubernetes.io/name: codemode-http",
                  "      app.kubernetes.io/name: other")
        self.assertCaught("PodDisruptionBudget selector")

    def test_service_config_is_the_node_config_plus_http(self):
        # e.g. the service's tokens made operators by a default profile of their own
        self.edit("kubernetes/configmap.yaml", "default_profile: default\n      http:",
                  "default_profile: operator\n      http:")
        self.assertCaught("codemode-http.yaml differs from codemode.yaml in more than engine.http")

    def test_http_listen_port_is_a_container_port(self):
        self.edit("kubernetes/configmap.yaml", "listen: 0.0.0.0:8765", "listen: 0.0.0.0:9000")
        self.assertCaught("HTTP transport on 0.0.0.0:9000, which no containerPort names")


class ShippedServiceConfig(unittest.TestCase):
    """The ConfigMap's service config ships a token placeholder: until a
    platform team puts its token's SHA-256 there, the engine refuses to
    start and names the key (deploy/README.md, "Service form")."""

    def test_engine_refuses_the_placeholder(self):
        tmp = tempfile.mkdtemp(prefix="codemode-k8s-token-")
        self.addCleanup(shutil.rmtree, tmp, True)
        h.configmap_files(tmp)
        p = subprocess.run([h.BIN, "serve", "--config", os.path.join(tmp, "codemode-http.yaml"),
                            "--socket", os.path.join(tmp, "s.sock")],
                           capture_output=True, text=True, timeout=60)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("engine.http.tokens[0].sha256: must be the token's SHA-256", p.stderr)
        self.assertFalse(os.path.exists(os.path.join(tmp, "s.sock")))


if __name__ == "__main__":
    unittest.main()
