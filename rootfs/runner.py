"""rootfs/runner.py — the in-sandbox runner, assembled from its parts.

The runner is ONE module in the sandbox (/usr/lib/python3.11/_codemode_runner.pyc,
see rootfs/README.md): one namespace (the chain's helpers share one __globals__,
module globals such as _STATE and _PRIMED are one variable) and one code
filename (its frames are stripped from chain tracebacks by that name).  Its
source reads better by concern, so it lives in the parts below, each using only
names of the parts before it; source() joins them in this order.

Why its own file: it is the one place that says which parts make the runner and
how they are joined.  rootfs/build_rootfs.py compiles source() into the rootfs
(and probes its imports); run as a script, this file runs the joined source as
__main__, exactly as the installed module would run (host-side tests):

    python3.11 -I -S rootfs/runner.py      (fd 3 must be the control socket)
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PARTS = ("runner_protocol.py", "runner_calls.py", "runner_chain.py", "runner_main.py")


def source(here=HERE):
    """The runner's source: the parts, in order, two blank lines apart."""
    texts = []
    for name in PARTS:
        with open(os.path.join(here, name), encoding="utf-8") as f:
            texts.append(f.read().rstrip("\n") + "\n")
    return "\n\n".join(texts)


if __name__ == "__main__":
    code = compile(source(), "<codemode runner: %s>" % " + ".join(PARTS), "exec")
    main_module = type(sys)("__main__")
    sys.modules["__main__"] = main_module
    exec(code, main_module.__dict__)
