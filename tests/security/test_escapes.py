"""The security regression suite: every probe of probes.py, as a chain in the
wide-import mode, must fail in the specific way asserted (errno, engine
error kind...).  Then the suite runs again with layers switched off by the
test-only switch (engine.test_mode + CODEMODE_TEST_DISABLE_LAYER) and asserts
exactly which probes the remaining layers still stop, and how.  The
per-layer table is written to build/security-layers.md."""
import os
import unittest

from tests.integration.engine import codemode_cgroup_roots

from tests.security import harness
from tests.security.probes import PROBES

EXPECTED = {name: outcome for name, _, outcome in PROBES}

# What changes when a layer is switched off: {probe: outcome}; every probe
# not listed must still give EXPECTED.  ["ok"] = the remaining layers do NOT
# stop it (documented, asserted so a regression in either direction shows).
WITHOUT_SECCOMP = {
    "userns_unshare": ["errno", "ENOSPC"],        # max_user_namespaces=0 inside
    "userns_clone": ["errno", "ENOSPC"],
    "clone3_enosys": ["errno", "EINVAL"],          # plain clone3 is harmless (flags checked)
    "setns": ["errno", "EINVAL"],                  # no namespace fd to join
    "host_abstract_unix_socket": ["errno", "ECONNREFUSED"],  # other network namespace
    "setuid_change": ["errno", "EINVAL"],          # uid 1000 is not mapped
    "perf_event_open": ["errno", "EACCES"],        # perf_event_paranoid
    "keyctl": ["ok"],                              # only seccomp stops the keyring
    "add_key": ["ok"],
    "io_uring_setup": ["ok"],                      # only seccomp stops io_uring
    "tiocsti": ["errno", "ENOTTY"],                # no tty in the sandbox
    "tiocsti_high_bits": ["errno", "ENOTTY"],
    # the kernel decides: ENOSYS where it is built without module loading or
    # kexec (the 6.18 host), EPERM for the missing capability where it has them
    # (Debian's 6.1 in the test VM)
    "init_module": (["errno", "ENOSYS"], ["errno", "EPERM"]),
    "finit_module": (["errno", "ENOSYS"], ["errno", "EPERM"]),
    "kexec_load": (["errno", "ENOSYS"], ["errno", "EPERM"]),
    # EFAULT on 6.9+ (the capability check is relaxed and the handle is read
    # first), EPERM before (no CAP_DAC_READ_SEARCH)
    "open_by_handle_at": (["errno", "EFAULT"], ["errno", "EPERM"]),
}
# Under software emulation (the test VM with VM_ACCEL=tcg) writing the 1 GiB
# RLIMIT_AS allows takes longer than the probe's timeout: the chain ends
# either way, nothing escapes.
EMULATED = os.environ.get("CODEMODE_TEST_EMULATED") == "1"
LAYER_RUNS = {
    "seccomp": WITHOUT_SECCOMP,
    "caps": {},
    "bpf": {},
    "cgroup": {"memory_bomb": (["error", "exception"], ["error", "timeout"]) if EMULATED
               else ["error", "exception"]},  # RLIMIT_AS: MemoryError
    # fork_bomb still EAGAIN: RLIMIT_NPROC
    "rlimits": {},
    "userns_limit": {},
    "init": {},
    # two layers off: what the third line holds
    "seccomp,bpf": dict(WITHOUT_SECCOMP, tcp_host_loopback=["errno", "ENETUNREACH"],
                        udp_host_loopback=["errno", "ENETUNREACH"]),
    "seccomp,userns_limit": dict(WITHOUT_SECCOMP, userns_unshare=["ok"], userns_clone=["ok"]),
    "seccomp,caps": dict(WITHOUT_SECCOMP, netns_unshare=["ok"], mount_tmpfs=["ok"],
                         # a v1 hierarchy mounts; with cgroup v2 only (the test VM,
                         # cgroup_no_v1=all) there is no v1 memory controller: EINVAL
                         mount_cgroupfs_release_agent=(["ok"], ["errno", "EINVAL"]),
                         fsopen_new_mount_api=["ok"],
                         open_tree=["ok"], chroot=["ok"], pivot_root=["ok"], packet_socket=["ok"],
                         sethostname=["ok"],
                         # pid 1 is forked from the zygote (isolate/zygote_ext.c), so its
                         # memory is a copy of the zygote's (no engine memory) and belongs to
                         # the zygote's user namespace, where a chain with its capabilities
                         # kept is root: with both layers off, pid 1 can be traced and read
                         ptrace_init=["ok"], process_vm_readv_init=["ok"],
                         # reboot() kills the sandbox's pid namespace, its init first (no
                         # report of the runner's end: sandbox_failure); should the
                         # engine see the chain process end first it is the chain's
                         # doing (exception): either way the chain ends, nothing escapes
                         reboot=(["error", "sandbox_failure"], ["error", "exception"])),
}
TABLE = os.path.join(harness.ROOT, "build", "security-layers.md")


CONTROLS = {"threads_still_work"}  # must keep working: not an escape


def short(outcome, name=""):
    if name in CONTROLS:
        return "works" if outcome == ["ok"] else "BROKEN"
    if outcome == ["ok"]:
        return "**not stopped**"
    return ":".join(str(x) for x in outcome[1:]) if outcome[0] in ("errno", "error") else \
        str(outcome[1])


class SecuritySuite(unittest.TestCase):
    results = {}

    @classmethod
    def setUpClass(cls):
        cls.targets = harness.HostTargets()

    @classmethod
    def tearDownClass(cls):
        cls.targets.close()
        cls.write_table()

    @classmethod
    def write_table(cls):
        if "all layers" not in cls.results:
            return
        cols = ["all layers"] + ["no " + k for k in LAYER_RUNS if "no " + k in cls.results]
        lines = ["| probe | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        for name, _, _ in PROBES:
            lines.append("| %s | %s |" % (name, " | ".join(short(cls.results[c][name], name)
                                                           for c in cols)))
        os.makedirs(os.path.dirname(TABLE), exist_ok=True)
        with open(TABLE, "w") as f:
            f.write("%d probes (%d escape attempts + %d control)\n\n" % (len(PROBES), len(PROBES) - len(CONTROLS), len(CONTROLS)) + "\n".join(lines) + "\n")

    def run_suite(self, disabled, overrides):
        eng = harness.start_engine(disabled)
        try:
            got = harness.run_all(eng, self.targets)
            log = eng.read_log()
            for layer in filter(None, disabled.split(",")):
                self.assertIn('isolation layer %s: disabled' % layer, log)
        finally:
            rc = eng.stop()
            eng.cleanup()
        self.assertEqual(rc, 0)
        self.assertNoInstanceCgroups(eng.proc.pid)
        SecuritySuite.results["no " + disabled if disabled else "all layers"] = got
        want = dict(EXPECTED, **overrides)
        for name, _, _ in PROBES:
            with self.subTest(probe=name, disabled=disabled or "-"):
                if isinstance(want[name], tuple):  # alternatives, each specific
                    self.assertIn(got[name], list(want[name]))
                else:
                    self.assertEqual(got[name], want[name])

    def assertNoInstanceCgroups(self, pid):
        for root in codemode_cgroup_roots():
            self.assertFalse(os.path.exists(os.path.join(root, "e%d" % pid)), root)

    def test_00_probe_count(self):
        self.assertGreaterEqual(len(PROBES), 40)
        self.assertEqual(len(EXPECTED), len(PROBES), "probe names must be unique")

    def test_01_all_layers(self):
        self.run_suite("", {})

    def test_02_switch_needs_test_mode(self):
        """Without engine.test_mode the environment variable is ignored."""
        eng = harness.Engine("engine:\n  imports: all\n")
        os.environ["CODEMODE_TEST_DISABLE_LAYER"] = "seccomp"
        try:
            eng.start()
        finally:
            del os.environ["CODEMODE_TEST_DISABLE_LAYER"]
        try:
            c = eng.client()
            sc = c.chain(harness.PRELUDE + "\n" + dict((n, code) for n, code, _ in PROBES)
                         ["userns_unshare"])
            c.close()
            self.assertEqual(sc["result"], ["errno", "EPERM"])
            self.assertNotIn("disabled", eng.read_log())
        finally:
            eng.stop()
            eng.cleanup()


def _make_layer_test(disabled, overrides):
    def test(self):
        self.run_suite(disabled, overrides)
    return test


for _i, (_layers, _over) in enumerate(LAYER_RUNS.items()):
    setattr(SecuritySuite, "test_%02d_without_%s" % (_i + 10, _layers.replace(",", "_")),
            _make_layer_test(_layers, _over))

if __name__ == "__main__":
    unittest.main()
