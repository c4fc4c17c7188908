#!/usr/bin/python3.11
"""An OCI runtime wrapper (tests only) that gives podman kube play the one
Kubernetes field the engine's manifests use and podman 4.3 ignores:
`securityContext.procMount: Unmasked`.  A Kubernetes runtime (CRI-O,
containerd) implements that field by emptying the OCI spec's maskedPaths
and readonlyPaths; this wrapper does the same, at `create`, for a container
whose spec carries the annotation the test sets in place of the field
(codemode.test/proc-mount: Unmasked), then runs the real runtime (runc) with
the same arguments.  Every other container and command passes through
unchanged.  The test points podman at it through a test-only
containers.conf ([engine] runtime), never the host's configuration."""
import json
import os
import sys

REAL = os.environ.get("CODEMODE_OCI_REAL_RUNTIME", "/usr/bin/runc")
ANNOTATION = "codemode.test/proc-mount"


def bundle_of(args):
    for i, a in enumerate(args):
        if a in ("--bundle", "-b") and i + 1 < len(args):
            return args[i + 1]
        if a.startswith("--bundle="):
            return a.split("=", 1)[1]
    return None


def unmask(bundle):
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        spec = json.load(f)
    if spec.get("annotations", {}).get(ANNOTATION) != "Unmasked":
        return
    spec["linux"]["maskedPaths"] = []
    spec["linux"]["readonlyPaths"] = []
    with open(path + ".tmp", "w") as f:
        json.dump(spec, f)
    os.replace(path + ".tmp", path)


def main():
    args = sys.argv[1:]
    if "create" in args or "run" in args:
        bundle = bundle_of(args)
        if bundle:
            unmask(bundle)
    os.execv(REAL, [REAL] + args)


if __name__ == "__main__":
    main()
