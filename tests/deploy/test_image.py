"""The OCI image, run (issue 22): the image `make image` built, started by
podman with exactly the privileges deploy/README.md documents (read from
its engine-privileges block), in a pod with no network but loopback, the
engine's config, policy and manual taken from the shipped ConfigMap, and a
real HTTP server on the pod's loopback.  Chains run through it with a CLI
and an HTTP tool, as the operator (root on the host side of the socket) and
as a pod client (a non-root uid in the socket's group), and every
isolation layer `codemode doctor` reports inside the container is active or
unavailable with its reason."""
import json
import os
import subprocess
import unittest

from tests.deploy import harness as h


class ImageRun(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.pm = h.Podman("img")
        try:
            cls.start()
        except BaseException:
            cls.pm.cleanup()
            raise

    @classmethod
    def start(cls):
        pm = cls.pm
        if pm.run("image", "exists", h.IMAGE, check=False).returncode != 0:
            raise AssertionError("image %s missing: run `make image`" % h.IMAGE)
        if not os.path.exists(h.SECCOMP):
            raise AssertionError("%s missing: run `make image`" % h.SECCOMP)
        conf = os.path.join(pm.tmp, "etc")
        cls.sockdir = os.path.join(pm.tmp, "run")
        os.mkdir(conf)
        os.mkdir(cls.sockdir)
        h.configmap_files(conf)
        cls.sock = os.path.join(cls.sockdir, "codemode.sock")
        cls.pod = pm.prefix
        pm.run("pod", "create", "--name", cls.pod, "--network", "none")
        pm.pods.append(cls.pod)
        pm.run("pod", "start", cls.pod)
        pm.remember_pod_cgroup(cls.pod)
        cls.sidecar = pm.start_sidecar(cls.pod)
        cls.engine = pm.prefix + "-engine"
        pm.containers.append(cls.engine)
        cls.flags = h.documented_privileges()
        pm.run("run", "-d", "--name", cls.engine, "--pod", cls.pod, *cls.flags,
               "-v", conf + ":/etc/codemode:ro", "-v", cls.sockdir + ":/run/codemode", h.IMAGE)

        h.wait_container_ready(pm, cls.sock, cls.engine, "engine container")

    @classmethod
    def tearDownClass(cls):
        cls.pm.cleanup()

    def exec_engine(self, *args, user=None, stdin=None):
        extra = ["--user", user] if user else []
        return self.pm.run("exec", "-i", *extra, self.engine, *args, check=False, input=stdin)

    def test_privileges_are_the_documented_ones(self):
        cfg = json.loads(self.pm.run("inspect", self.engine).stdout)[0]
        self.assertFalse(cfg["HostConfig"]["Privileged"])
        pid = cfg["State"]["Pid"]
        with open("/proc/%d/status" % pid) as f:
            eff = int([l for l in f if l.startswith("CapEff:")][0].split()[1], 16)
        # CAP_CHOWN 0, CAP_SETGID 6, CAP_SETUID 7, CAP_NET_ADMIN 12, CAP_BPF 39: nothing else
        self.assertEqual(eff, 1 | (1 << 6) | (1 << 7) | (1 << 12) | (1 << 39), hex(eff))

    def test_each_documented_privilege_is_needed(self):
        """Without any one of them, `codemode doctor` in the container fails
        (a required layer missing or no sandbox), saying why."""
        def without(drop):
            flags = []
            for f in self.flags:
                if f.startswith("--cap-add="):
                    caps = [c for c in f.split("=", 1)[1].split(",") if c != drop]
                    f = "--cap-add=" + ",".join(caps)
                if f != drop and not (drop == "cgroup" and "/sys/fs/cgroup" in f):
                    flags.append(f)
            return flags
        # (CHOWN is needed by CLI calls only, not by doctor: the chain tests
        # run CLI tools with it)
        for drop in ("SETUID", "SETGID", "BPF", "NET_ADMIN", "--security-opt=unmask=/proc/sys",
                     "--security-opt=seccomp=" + h.SECCOMP, "cgroup"):
            with self.subTest(without=drop):
                flags = without(drop)
                self.assertNotEqual(flags, self.flags)
                p = self.pm.run("run", "--rm", "--network", "none", *flags, h.IMAGE, "doctor",
                                check=False)
                self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
                self.assertRegex(p.stdout, r"(required layers missing|FAILED to start)", p.stdout)

    def test_readme_shows_the_same_privileges(self):
        for readme in ("README.md", "deploy/README.md"):
            with open(os.path.join(h.ROOT, readme)) as f:
                text = f.read().replace("\\\n", " ")
            runs = [l for l in text.splitlines() if l.strip().startswith("podman run -d")]
            self.assertTrue(runs, readme)
            for flag in h.documented_privileges():
                flag = flag.replace(h.SECCOMP, h.DOC_SECCOMP)
                alt = flag.replace("--volume=", "-v ")
                self.assertTrue(flag in runs[0] or alt in runs[0], "%s: %s" % (readme, flag))

    def test_doctor_inside_the_container(self):
        p = self.exec_engine("codemode", "doctor", "--config", "/etc/codemode/codemode.yaml")
        rows = h.doctor_rows(p.stdout)
        h.log("doctor in the container:\n" + p.stdout)
        for layer in h.LAYERS:
            self.assertIn(layer, rows, p.stdout)
            status, detail = rows[layer]
            self.assertIn(status, ("active", "unavailable"), "%s: %s" % (layer, detail))
            if status == "unavailable":
                self.assertGreater(len(detail), 10, "%s unavailable without a reason" % layer)
        self.assertEqual(rows["live check"][0], "ok", p.stdout)
        # on this host every layer is available to the documented privileges
        self.assertEqual([l for l in h.LAYERS if rows[l][0] != "active"], [], p.stdout)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_chain_cli_and_http_as_operator(self):
        before = self.sidecar_served()
        r = h.run_chain(self.sock, h.CHAIN)
        self.assertIsNone(r["error"], r)
        self.assertEqual(str(r["result"]["words"]).strip(), "3")
        self.assertTrue(r["result"]["status"]["ok"])
        self.assertEqual(r["stats"]["profile"], "operator")
        self.assertEqual(r["stats"]["tool_calls"], 2)
        self.assertGreater(self.sidecar_served(), before)

    def sidecar_served(self):
        r = h.run_chain(self.sock, "return (await node.api_status())['served']")
        self.assertIsNone(r["error"], r)
        return r["result"]

    def test_package_made_the_service_user_outside_the_socket_group(self):
        # engine.user's default account, with a group of its own: a socket
        # client (group codemode) must not share the engine's group
        pw = self.exec_engine("getent", "passwd", "codemode")
        self.assertEqual(pw.returncode, 0, "the package's postinst made no codemode account")
        fields = pw.stdout.strip().split(":")
        self.assertNotEqual(fields[2], "0")
        self.assertEqual(fields[6], "/usr/sbin/nologin")
        grp = self.exec_engine("getent", "group", fields[3])
        self.assertEqual(grp.stdout.split(":")[0], "codemode-engine", grp.stdout)
        sock = self.exec_engine("getent", "group", "codemode")
        self.assertNotIn("codemode", sock.stdout.strip().split(":")[3].split(","), sock.stdout)

    def test_pod_client_gets_the_default_profile(self):
        p = self.exec_engine("codemode", "run", "-", user="65534:990", stdin=h.CHAIN)
        r = json.loads(p.stdout)
        self.assertIsNone(r["error"], r)
        self.assertEqual(r["stats"]["profile"], "default")
        self.assertTrue(r["result"]["status"]["ok"])
        # the policy's budget: 20 API calls per chain, the 21st refused
        code = ("ok = 0\nfor i in range(21):\n    try:\n        await node.api_status()\n"
                "        ok += 1\n    except PolicyDenied as e:\n        return [ok, str(e)]\n"
                "return [ok, None]\n")
        r = json.loads(self.exec_engine("codemode", "run", "-", user="65534:990",
                                        stdin=code).stdout)
        self.assertIsNone(r["error"], r)
        self.assertEqual(r["result"][0], 20, r)
        self.assertIn("max_calls", r["result"][1])
        # no stats grant for pod clients; the operator has it
        self.assertNotEqual(self.exec_engine("codemode", "stats", user="65534:990").returncode, 0)
        self.assertEqual(self.exec_engine("codemode", "stats").returncode, 0)

    def test_prometheus_metrics_for_the_autoscaler(self):
        p = self.exec_engine("codemode", "stats", "--prometheus")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("codemode_", p.stdout)

    def test_sandboxes_run_as_unprivileged_host_uids(self):
        # the warm pool and the zygote are sandboxes too: always there
        init = int(self.pm.run("inspect", self.engine, "--format", "{{.State.Pid}}").stdout)
        procs = h.descendants(init)
        sandboxes = {p: u for p, u in procs.items() if u != 0}
        self.assertTrue(sandboxes, "no sandbox process below the container's init: %r" % procs)
        for pid, uid in sandboxes.items():
            self.assertTrue(100000 <= uid < 101000, "pid %d runs as host uid %d" % (pid, uid))
        # root processes: tini and the engine only (providers run per call)
        self.assertLessEqual(len([u for u in procs.values() if u == 0]), 2, procs)


if __name__ == "__main__":
    unittest.main()
