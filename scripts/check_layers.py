#!/usr/bin/env python3
"""check_layers.py — the project's layering rule, checked from the code.

Layers, bottom to top (docs/architecture.md):

    core/                         error, util, log, frame, vars, yamljson, ...
    isolate/  policies/  providers/   each includes only core/ and itself
    engine/                       the daemon and the CLI: may include all

Reads every `#include "..."` of the C sources and headers in those folders,
finds the file it names (core/ first, then the including folder, then the
others, as the compiler's include path would) and fails on an include that
runs up a layer or sideways between two middle folders.  Also fails on any C
or Python source file of the repository over 1,000 lines (the project's
file-size rule), and on a file of a source folder its README does not list.  Prints the layer picture with the include counts between
folders.  Exit 0 when clean, 1 otherwise.  Stdlib only.

Usage: scripts/check_layers.py [REPO_DIR]
"""
import os
import re
import subprocess
import sys

LAYERS = {"core": 0, "isolate": 1, "policies": 1, "providers": 1, "engine": 2}
GENERATED = {"guard.skel.h"}  # built into build/bpf by the Makefile
MAX_LINES = 1000
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def tracked_files(root):
    try:
        out = subprocess.run(["git", "-C", root, "ls-files", "--cached", "--others",
                              "--exclude-standard"], capture_output=True, text=True, check=True)
        return [f for f in out.stdout.splitlines() if os.path.isfile(os.path.join(root, f))]
    except (OSError, subprocess.CalledProcessError):
        found = []
        for d, _, names in os.walk(root):
            if "/build" in d or "/." in d:
                continue
            found += [os.path.relpath(os.path.join(d, n), root) for n in names]
        return found


def resolve(root, folder, name):
    """The folder holding the included header, or None (a system header)."""
    for f in ["core", folder] + [x for x in LAYERS if x not in ("core", folder)]:
        if os.path.isfile(os.path.join(root, f, name)):
            return f
    return None


def check_includes(root, files):
    errors, edges = [], {}
    for path in files:
        folder = path.split("/", 1)[0]
        if folder not in LAYERS or "/" not in path or not path.endswith((".c", ".h")):
            continue
        with open(os.path.join(root, path), errors="replace") as f:
            text = f.read()
        for m in INCLUDE.finditer(text):
            name = m.group(1)
            if name in GENERATED:
                continue
            target = resolve(root, folder, name)
            if target is None:
                errors.append("%s: includes \"%s\", which no layer folder holds" % (path, name))
                continue
            edges[(folder, target)] = edges.get((folder, target), 0) + 1
            if target == folder:
                continue
            up = LAYERS[target] > LAYERS[folder]
            sideways = LAYERS[target] == LAYERS[folder]
            if up or sideways:
                line = text[:m.start()].count("\n") + 1
                errors.append("%s:%d: includes %s/%s: %s (%s is layer %d, %s layer %d); only "
                              "lower layers may be included" % (
                                  path, line, target, name, "runs up" if up else "sideways",
                                  folder, LAYERS[folder], target, LAYERS[target]))
    return errors, edges


def check_sizes(root, files):
    errors = []
    for path in files:
        if not path.endswith((".c", ".h", ".py")) or path.startswith("build/"):
            continue
        with open(os.path.join(root, path), errors="replace") as f:
            n = sum(1 for _ in f)
        if n > MAX_LINES:
            errors.append("%s: %d lines, over the %d-line rule: split it along its sections"
                          % (path, n, MAX_LINES))
    return errors


README_FOLDERS = ["core", "engine", "isolate", "policies", "providers", "rootfs", "scripts"]


def listed(readme, name):
    stem, ext = os.path.splitext(name)
    forms = [name]
    if ext in (".c", ".h"):
        forms += [stem + ".[ch]", stem + ".c/.h"]
    return any(f in readme for f in forms)


def check_readmes(root, files):
    """Every file of a source folder appears in that folder's README."""
    errors = []
    for folder in README_FOLDERS:
        path = os.path.join(root, folder, "README.md")
        if not os.path.isfile(path):
            errors.append("%s/README.md: missing (a folder's README lists its files)" % folder)
            continue
        with open(path) as f:
            readme = f.read()
        for fpath in files:
            parts = fpath.split("/")
            if len(parts) != 2 or parts[0] != folder or parts[1] == "README.md":
                continue
            if not listed(readme, parts[1]):
                errors.append("%s/README.md: does not list %s" % (folder, parts[1]))
    return errors


def picture(edges):
    rows = []
    for level in sorted(set(LAYERS.values()), reverse=True):
        names = sorted(f for f, l in LAYERS.items() if l == level)
        rows.append("  layer %d: %s" % (level, "  ".join(n + "/" for n in names)))
    rows.append("  includes between folders (from -> to: count):")
    for (a, b), n in sorted(edges.items()):
        if a != b:
            rows.append("    %s -> %s: %d" % (a, b, n))
    return "\n".join(rows)


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                           os.path.join(os.path.dirname(__file__), ".."))
    files = tracked_files(root)
    inc_errors, edges = check_includes(root, files)
    size_errors = check_sizes(root, files) + check_readmes(root, files)
    print("layers (bottom: core):\n" + picture(edges))
    for e in inc_errors + size_errors:
        print("ERROR " + e)
    if inc_errors or size_errors:
        print("check_layers: %d include(s) against the layering, %d size or README problem(s)"
              % (len(inc_errors), len(size_errors)))
        return 1
    print("check_layers: ok (%d files)" % len(files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
