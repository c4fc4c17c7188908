"""The service form, run (issue 22): deploy/kubernetes-service's Deployment
played with `podman kube play` (with deploy/kubernetes's ConfigMap), the
engine reached from the host over its streamable HTTP transport on the
pod's own address — MCP initialize, tools/list, a call_tool_chain that runs
the `node` manual's CLI tool and its pod-local HTTP tool (a real HTTP server
on the pod's loopback) — authenticated with a bearer token whose SHA-256 is
in the ConfigMap's codemode-http.yaml, the probes' command run, and
everything torn down with `podman kube down` (plus the named volumes podman
made for the pod), also on failure.

What the test does that a platform team does (deploy/README.md, "Service
form"): a fresh random token, its SHA-256 put in place of the ConfigMap's
`SET-ME` placeholder (the token itself stays with the client: in a cluster,
the Secret codemode-http-token).

What podman 4.3 (Debian 12) does not support is adapted in the copy, and
only that (deploy/README.md lists the same):
  - the Deployment: podman plays it (one pod per replica) but names every
    ConfigMap and emptyDir volume after the volume, so replicas (and
    parallel runs) would share one socket directory: each replica is played
    as a Deployment of one with volumes named after it (harness.own_volumes),
    removed after `kube down`;
  - securityContext.seccompProfile / procMount: the annotations the node
    test uses (tests/deploy/test_kube.py, harness.podman_template), on the
    Deployment's own metadata too: podman 4.3 gives a Deployment's pods
    the Deployment's annotations, not the pod template's;
  - ports: podman publishes a containerPort on the host's same port (two
    replicas collide); dropped, the test connects to each pod's address;
  - Service, HorizontalPodAutoscaler, PodDisruptionBudget: not kinds podman
    plays.  The test connects to the port the Service's targetPort names
    and checks that the engine exports the HPA's metric; the PDB has
    nothing to run here;
  - probes: the test runs the probes' command (podman runs probes from
    systemd timers, which this machine has not)."""
import hashlib
import http.client
import json
import os
import secrets
import time
import unittest

import yaml

from tests.deploy import harness as h

SDIR = os.path.join(h.ROOT, "deploy", "kubernetes-service")
KDIR = os.path.join(h.ROOT, "deploy", "kubernetes")
PLACEHOLDER = "SET-ME: printf %s TOKEN | sha256sum"
# what a client in the cluster sends through the Service
SERVICE_HOST = "codemode-http.codemode.svc.cluster.local"
INIT = {"protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "deploy-test", "version": "1"}}


def load(directory, name):
    with open(os.path.join(directory, name)) as f:
        return yaml.safe_load(f)


def service_port(service, deployment):
    """The containerPort the Service's targetPort names (as kube-proxy
    resolves it)."""
    target = service["spec"]["ports"][0]["targetPort"]
    for c in deployment["spec"]["template"]["spec"]["containers"]:
        for p in c.get("ports", []):
            if target in (p.get("name"), p["containerPort"]):
                return p["containerPort"]
    raise AssertionError("Service targetPort %r names no containerPort" % target)


class Mcp:
    """One MCP client over streamable HTTP (a connection per request)."""

    def __init__(self, addr, port, token):
        self.addr, self.port, self.token, self.session, self.ids = addr, port, token, None, 0

    def post(self, method, params=None, token=True):
        self.ids += 1
        hdr = {"Content-Type": "application/json", "Host": SERVICE_HOST,
               "Accept": "application/json, text/event-stream"}
        if token:
            hdr["Authorization"] = "Bearer " + (self.token if token is True else token)
        if self.session:
            hdr["Mcp-Session-Id"] = self.session
        msg = {"jsonrpc": "2.0", "id": self.ids, "method": method, "params": params or {}}
        c = http.client.HTTPConnection(self.addr, self.port, timeout=60)
        try:
            c.request("POST", "/mcp", body=json.dumps(msg), headers=hdr)
            r = c.getresponse()
            text = r.read().decode()
        finally:
            c.close()
        if r.getheader("Content-Type") == "text/event-stream":  # the answer: its last event
            text = [l[6:] for l in text.splitlines() if l.startswith("data: ")][-1]
        return r, (json.loads(text) if text.strip() else None)

    def initialize(self):
        r, body = self.post("initialize", INIT)
        if r.status != 200:
            raise AssertionError("initialize: HTTP %d %s" % (r.status, body))
        self.session = r.getheader("Mcp-Session-Id")
        return body

    def tool(self, name, arguments):
        r, body = self.post("tools/call", {"name": name, "arguments": arguments})
        if r.status != 200 or "result" not in body:
            raise AssertionError("tools/call %s: HTTP %d %s" % (name, r.status, body))
        return body["result"]


class KubePlayService(h.PlayedTest):
    TAG = "ksvc"

    @classmethod
    def play(cls):
        pm = cls.pm
        dep = load(SDIR, "deployment.yaml")
        cls.container = cls.engine_container(dep)
        cls.port = service_port(load(SDIR, "service.yaml"), dep)
        cls.token = secrets.token_urlsafe(32)
        cls.replicas, docs = [], []
        for i in range(dep["spec"]["replicas"]):
            docs += cls.replica_docs(dep, "%s-r%d" % (pm.prefix, i))
        cls.played = os.path.join(pm.tmp, "play.yaml")
        with open(cls.played, "w") as f:
            yaml.safe_dump_all(docs, f)
        out = pm.run("kube", "play", "--seccomp-profile-root", h.IMAGE_DIR, cls.played).stdout
        ids = [chunk.split()[0] for chunk in out.split("Pod:")[1:]]
        if len(ids) != dep["spec"]["replicas"]:
            raise AssertionError("played %d pods for %d replicas:\n%s" % (
                len(ids), dep["spec"]["replicas"], out))
        for pod_id in ids:
            cls.replicas.append(cls.replica(pod_id))
        for r in cls.replicas:
            cls.wait_ready(r)
        cls.engine, cls.addr = cls.replicas[0]["engine"], cls.replicas[0]["addr"]

    @classmethod
    def replica_docs(cls, dep, name):
        """One replica as a Deployment of one, with its own ConfigMap and
        emptyDir volumes (podman 4.3 would share them between replicas),
        the token's SHA-256 in place of the placeholder."""
        tpl = h.podman_template(dep["spec"]["template"], name, dep["metadata"]["namespace"])
        cm = h.own_volumes(cls.pm, load(KDIR, "configmap.yaml"), tpl["spec"], name)
        args = cls.container["args"]
        cfg_name = os.path.basename(args[args.index("--config") + 1])
        if PLACEHOLDER not in cm["data"][cfg_name]:
            raise AssertionError("%s has no token placeholder %r" % (cfg_name, PLACEHOLDER))
        cm["data"] = dict(cm["data"], **{cfg_name: cm["data"][cfg_name].replace(
            PLACEHOLDER, hashlib.sha256(cls.token.encode()).hexdigest())})
        for c in tpl["spec"]["containers"]:
            c.pop("ports", None)
        # podman 4.3 gives a Deployment's pods the Deployment's annotations
        meta = dict(dep["metadata"], name=name, annotations=tpl["metadata"]["annotations"])
        return [cm, dict(dep, metadata=meta, spec=dict(dep["spec"], replicas=1, template=tpl))]

    @classmethod
    def replica(cls, pod_id):
        """One played replica: its engine container, its sidecar, its address."""
        pm = cls.pm
        pod = pm.run("pod", "inspect", pod_id, "--format", "{{.Name}}").stdout.strip()
        cls.pods.append(pod)
        engine = "%s-%s" % (pod, cls.container["name"])
        pm.start_sidecar(pod)
        infra = pm.run("pod", "inspect", pod, "--format", "{{.InfraContainerID}}").stdout.strip()
        addr = pm.run("inspect", infra, "--format",
                      "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}").stdout.strip()
        if not addr:
            raise AssertionError("pod %s has no address on podman's kube network" % pod)
        return {"pod": pod, "engine": engine, "addr": addr}

    @classmethod
    def wait_ready(cls, replica, timeout=60):
        """Until the readiness probe's command passes (what gates a replica
        into the Service), then until the HTTP port answers."""
        cmd = cls.container["readinessProbe"]["exec"]["command"]
        deadline, last = time.time() + timeout, None
        while time.time() < deadline:
            last = cls.pm.run("exec", replica["engine"], *cmd, check=False)
            if last.returncode == 0:
                break
            time.sleep(0.5)
        else:
            logs = cls.pm.run("logs", replica["engine"], check=False)
            raise AssertionError("played engine not ready (%s): %s\nits log:\n%s" % (
                cmd, last.stdout + last.stderr, logs.stderr[-3000:]))
        while True:
            try:
                Mcp(replica["addr"], cls.port, None).post("ping", token=False)
                return
            except OSError as e:
                if time.time() > deadline:
                    logs = cls.pm.run("logs", replica["engine"], check=False)
                    raise AssertionError("HTTP transport on %s:%d: %s\nthe engine's log:\n%s" % (
                        replica["addr"], cls.port, e, logs.stderr[-3000:]))
                time.sleep(0.3)

    def test_engine_was_built_with_libmicrohttpd(self):
        with open(os.path.join(h.ROOT, "deploy", "image", "base-packages.txt")) as f:
            self.assertIn("libmicrohttpd12", f.read().split())
        cfg, _ = self.pm.engine_caps(self.engine)
        init = cfg["State"]["Pid"]  # tini; the engine is its child
        with open("/proc/%d/task/%d/children" % (init, init)) as f:
            engine = int(f.read().split()[0])
        with open("/proc/%d/cmdline" % engine) as f:
            self.assertIn("serve", f.read().split("\0"))
        with open("/proc/%d/maps" % engine) as f:
            self.assertIn("libmicrohttpd.so.12", f.read())

    def test_the_played_container_has_the_manifest_security_context(self):
        cfg, eff = self.pm.engine_caps(self.engine)
        self.assertFalse(cfg["HostConfig"]["Privileged"])
        self.assertEqual(eff, h.caps_mask(self.container["securityContext"]["capabilities"]["add"]),
                         hex(eff))
        self.assertTrue(cfg["HostConfig"]["ReadonlyRootfs"])

    def test_requests_without_the_token_get_401(self):
        client = Mcp(self.addr, self.port, self.token)
        r, _ = client.post("initialize", INIT, token=False)
        self.assertEqual(r.status, 401)
        r, _ = client.post("initialize", INIT, token="not-" + self.token)
        self.assertEqual(r.status, 401)
        self.assertIn('error="invalid_token"', r.getheader("WWW-Authenticate"))

    def test_chain_over_the_service_port_on_every_replica(self):
        """Any replica serves any chain: the same token, tools and answer."""
        for r in self.replicas:
            client = Mcp(r["addr"], self.port, self.token)
            body = client.initialize()
            self.assertIn("protocolVersion", body["result"])
            self.assertTrue(client.session)
            _, body = client.post("tools/list")
            self.assertIn("call_tool_chain", [t["name"] for t in body["result"]["tools"]])
            out = client.tool("call_tool_chain", {"code": h.CHAIN})["structuredContent"]
            self.assertIsNone(out.get("error"), out)
            self.assertEqual(str(out["result"]["words"]).strip(), "3")
            self.assertTrue(out["result"]["status"]["ok"])
            # the token's uid 1000 is no caller of the policy: its default profile
            self.assertEqual(out["stats"]["profile"], "default")

    def test_a_session_belongs_to_its_replica(self):
        """Why the Service has ClientIP affinity (deploy/README.md)."""
        one, other = self.replicas[0], self.replicas[-1]
        self.assertNotEqual(one["addr"], other["addr"])
        client = Mcp(one["addr"], self.port, self.token)
        client.initialize()
        stray = Mcp(other["addr"], self.port, self.token)
        stray.session = client.session
        self.assertEqual(stray.post("tools/list")[0].status, 404)
        self.assertEqual(client.post("tools/list")[0].status, 200)
        with open(os.path.join(SDIR, "service.yaml")) as f:
            self.assertEqual(yaml.safe_load(f)["spec"]["sessionAffinity"], "ClientIP")

    def test_registrations_are_refused_on_a_replica(self):
        """No replica may hold a manual another lacks (deploy/README.md)."""
        client = Mcp(self.addr, self.port, self.token)
        client.initialize()
        manual = {"name": "extra", "call_template_type": "cli",
                  "commands": [{"command": "true"}]}
        res = client.tool("register_manual", {"manual_call_template": manual})
        self.assertTrue(res.get("isError"), res)
        self.assertEqual(res["structuredContent"]["error"]["kind"], "policy_denied", res)
        self.assertIn("not granted register", res["structuredContent"]["error"]["message"])

    def test_engine_exports_the_hpa_metric(self):
        hpa = load(SDIR, "hpa.yaml")
        metric = hpa["spec"]["metrics"][0]["pods"]["metric"]["name"]
        sock = self.container["args"][self.container["args"].index("--socket") + 1]
        p = self.pm.run("exec", self.engine, "codemode", "stats", "--prometheus", "--socket", sock)
        self.assertRegex(p.stdout, r"(?m)^%s(\{[^}]*\})? \d" % metric)


if __name__ == "__main__":
    unittest.main()
