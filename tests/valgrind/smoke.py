"""Valgrind smoke: the engine (normal build) under
`valgrind --leak-check=full --error-exitcode=99` serves a few chains and
requests (including bad ones), then SIGTERM; passes when valgrind reports
no invalid access and no definite/indirect leak.  Suppressions (with their
reasons) are in tests/valgrind/codemode.supp."""
import json
import os
import re
import subprocess
import sys
import time

from tests.integration import engine as harness

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    # Valgrind's prlimit64 emulation refuses any change to the NOFILE hard
    # limit (EPERM), libseccomp's attribute probe fails under it and it does
    # not know the bpf attr union: the rlimits, seccomp and bpf layers are
    # switched off for this run only (engine.test_mode; they are covered by
    # the security suite and the ASan run).  The engine's own code is what is
    # checked here.  No timeout chain: valgrind does not implement
    # pidfd_send_signal (syscall 424), which the engine kills sandboxes with.
    os.environ["CODEMODE_TEST_DISABLE_LAYER"] = "rlimits,seccomp,bpf"
    # engine.user: root: one process; under valgrind the engine is not its
    # own /proc/self/exe, so the privileged part it would exec and the checks
    # that part makes of its targets' parent are not the real ones (the
    # split is covered by test_privilege_model, test_sandboxd and ASan)
    e = harness.Engine(json.dumps({"engine": {"workers": 2, "test_mode": True, "user": "root"}}))
    vlog = os.path.join(e.dir, "valgrind.log")
    real_bin = harness.BIN
    wrapper = os.path.join(e.dir, "codemode-vg")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\nexec valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect "
                "--errors-for-leak-kinds=definite,indirect --error-exitcode=99 --track-fds=no "
                "--child-silent-after-fork=yes --trace-children=no --suppressions=%s "
                "--log-file=%s %s \"$@\"\n" % (os.path.join(HERE, "codemode.supp"), vlog, real_bin))
    os.chmod(wrapper, 0o755)
    harness.BIN = wrapper
    ok = False
    t0 = time.time()
    try:
        e.start()
        c = e.client(timeout=120)
        res = [c.chain("return sum(range(10))")["result"],
               c.chain("print('x')\nraise ValueError('no')")["error"]["kind"],
               c.chain("return await search_tools(query='a')")["error"],
               c.chain("return 'x' * 100000")["result"] == "x" * 100000]
        c.send_raw(b"{bad json\n")
        bad = c.read_message()
        c.request("tools/list")
        c.request("codemode/stats")
        c.close()
        rc = e.stop()
        with open(vlog) as f:  # exists only when valgrind really ran the engine
            report = f.read()
        print("valgrind smoke: chains", res, "bad json ->", bad["error"]["code"], "exit", rc,
              "in %.0fs" % (time.time() - t0))
        if rc != 0 or re.search(r"(Invalid (read|write|free)|uninitialised|definitely lost|"
                                r"indirectly lost|Mismatched free)", report):
            print(report[-8000:])
            print(e.read_log()[-3000:])
            return 1
        assert res[0] == 45 and res[1] == "exception" and res[3] is True, res
        ok = True
        print("valgrind smoke: no invalid accesses, no definite/indirect leaks")
        return 0
    finally:
        if not ok:
            print("valgrind smoke FAILED; engine dir kept for inspection would be", e.dir)
        e.cleanup()


if __name__ == "__main__":
    sys.exit(main())
