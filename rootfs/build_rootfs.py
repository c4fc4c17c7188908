#!/usr/bin/python3.11
"""Build the codemode sandbox rootfs: Debian's python3.11, the shared libraries it
needs, the stdlib as sourceless .pyc, and the runner.  See rootfs/README.md.

    /usr/bin/python3.11 rootfs/build_rootfs.py --out DIR [--profile minimal|full]

Deterministic: two builds from the same host files give the same MANIFEST, whose
sha256 (printed last) is the rootfs id.  Stdlib only.
"""

import argparse
import ctypes
import hashlib
import importlib.util
import json
import multiprocessing
import os
import py_compile
import re
import shutil
import stat
import subprocess
import sys
import time

HOST_PYTHON = "/usr/bin/python3.11"
STDLIB = "/usr/lib/python3.11"
DYNLOAD = STDLIB + "/lib-dynload"
HERE = os.path.dirname(os.path.abspath(__file__))
# runner.py joins the runner's parts (runner_*.py next to it) into one module
RUNNER_SRC = os.path.join(HERE, "runner.py")
RUNNER_MODULE = "_codemode_runner"
# The zygote's extension module (isolate/zygote_ext.c), built by the Makefile
# next to this file in build/share/codemode/; optional: without it the engine
# builds every sandbox from scratch.
ZYGOTE_EXT = os.path.join(HERE, "_codemode_zygote.so")
ZYGOTE_EXT_DST = DYNLOAD + "/_codemode_zygote.cpython-311-x86_64-linux-gnu.so"

# Top-level stdlib entries never shipped (profile full).
EXCLUDED_TOP = {
    "test", "idlelib", "tkinter", "turtledemo", "ensurepip", "venv", "lib2to3",
    "distutils", "pydoc_data", "site-packages", "dist-packages", "sqlite3", "dbm",
    "curses", "sitecustomize.py", "turtle.py", "__phello__",
}
EXCLUDED_DIR_NAMES = {"test", "tests", "__pycache__", "idle_test"}
# Extension modules needing libraries we do not ship, or useless in a sandbox.
EXCLUDED_EXT = {
    "_tkinter", "_curses", "_curses_panel", "_dbm", "_gdbm", "readline", "_sqlite3",
    "_ssl", "_hashlib", "nis", "_crypt", "_ctypes_test", "_testbuffer", "_testcapi",
    "_testclinic", "_testimportmultiple", "_testinternalcapi", "_testmultiphase",
    "_xxsubinterpreters", "_xxtestfuzz", "xxlimited", "xxlimited_35", "ossaudiodev",
    "audioop",
}

MINIMAL_MODULES = [
    "json", "math", "asyncio", "datetime", "time", "re", "typing", "collections",
    "itertools", "functools", "operator", "uuid", "traceback", "io", "ast", "types",
    "random", "string", "textwrap", "decimal", "fractions", "statistics", "base64",
    "hashlib", "copy", "dataclasses", "enum", "heapq", "bisect", "struct", "os",
    "select", "selectors", "socket",
    # imported lazily by the modules above at run time
    "_strptime", "linecache", "tokenize", "encodings.idna", "stringprep",
]

DIR_MODE, FILE_MODE, EXEC_MODE = 0o755, 0o644, 0o755


def log(msg):
    print("build_rootfs: " + msg, file=sys.stderr, flush=True)


def ext_name(filename):
    """'_json.cpython-311-x86_64-linux-gnu.so' -> '_json'"""
    return filename.split(".", 1)[0]


# ------------------------------------------------------------------ module selection
def select_full():
    """(py sources, extension .so files) of the full profile, as absolute host paths."""
    py, so = [], []
    for dirpath, dirnames, filenames in os.walk(STDLIB):
        rel = os.path.relpath(dirpath, STDLIB)
        if rel == ".":
            dirnames[:] = [d for d in dirnames
                           if d not in EXCLUDED_TOP and not d.startswith("config-3.11")]
            filenames = [f for f in filenames if f not in EXCLUDED_TOP]
        dirnames[:] = sorted(d for d in dirnames if d not in EXCLUDED_DIR_NAMES)
        if rel == "lib-dynload":
            so += [os.path.join(dirpath, f) for f in sorted(filenames)
                   if f.endswith(".so") and ext_name(f) not in EXCLUDED_EXT]
            continue
        for f in sorted(filenames):
            p = os.path.join(dirpath, f)
            if f.endswith(".py") and not os.path.islink(p):
                py.append(p)
    return py, so


_PROBE = r"""
import sys, json, importlib.util
mods = json.loads(sys.argv[1])
for m in mods:
    __import__(m)
spec = importlib.util.spec_from_file_location("_codemode_runner_probe", sys.argv[2])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)          # imports what the runner imports (main() not run)
files = sorted({getattr(m, "__file__", None) or "" for m in list(sys.modules.values())})
print(json.dumps([f for f in files if f]))
"""


def select_minimal(runner):
    """Transitive closure of MINIMAL_MODULES + the runner's imports (runner: the
    joined source's path) + encodings/."""
    out = subprocess.run(
        [HOST_PYTHON, "-I", "-S", "-B", "-c", _PROBE, json.dumps(MINIMAL_MODULES), runner],
        check=True, stdout=subprocess.PIPE, env={"LANG": "C.UTF-8"}).stdout
    files = json.loads(out)
    py, so = set(), set()
    for f in files:
        if not f.startswith(STDLIB + "/"):
            continue
        if f.endswith(".so"):
            if ext_name(os.path.basename(f)) not in EXCLUDED_EXT:
                so.add(f)
        elif f.endswith(".py"):
            py.add(f)
            # a submodule needs every enclosing package's __init__
            d = os.path.dirname(f)
            while d != STDLIB:
                init = os.path.join(d, "__init__.py")
                if os.path.exists(init):
                    py.add(init)
                d = os.path.dirname(d)
    enc = os.path.join(STDLIB, "encodings")
    py.update(os.path.join(enc, f) for f in os.listdir(enc) if f.endswith(".py"))
    return sorted(py), sorted(so)


# ------------------------------------------------------------------ shared libraries
_LDD_ARROW = re.compile(r"^\s*(\S+)\s+=>\s+(/\S+)\s+\(0x[0-9a-f]+\)\s*$")
_LDD_ABS = re.compile(r"^\s*(/\S+)\s+\(0x[0-9a-f]+\)\s*$")


def needed_libraries(elf_files):
    """Absolute paths the dynamic loader opens for these ELF files (from ldd)."""
    libs = set()
    for f in elf_files:
        res = subprocess.run(["ldd", f], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env={"LC_ALL": "C"}, text=True)
        if res.returncode != 0:
            raise SystemExit("ldd failed for %s: %s" % (f, res.stderr.strip()))
        for line in res.stdout.splitlines():
            m = _LDD_ARROW.match(line) or _LDD_ABS.match(line)
            if m:
                libs.add(m.group(m.lastindex))
            elif "not found" in line:
                raise SystemExit("missing library for %s: %s" % (f, line.strip()))
            # linux-vdso.so.1 has no path: nothing to copy
    return sorted(libs)


# ------------------------------------------------------------------ compilation
def write_runner_source(path):
    """The runner's one module: its parts as rootfs/runner.py joins them."""
    spec = importlib.util.spec_from_file_location("_codemode_runner_parts", RUNNER_SRC)
    parts = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(parts)      # not __main__: defines source(), runs nothing
    with open(path, "w", encoding="utf-8") as f:
        f.write(parts.source())


def _compile_one(job):
    src, dst, dfile = job
    py_compile.compile(src, cfile=dst, dfile=dfile, doraise=True, optimize=0,
                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    return dst


def compile_all(jobs):
    jobs = list(jobs)
    if len(jobs) > 50 and (os.cpu_count() or 1) > 1:
        with multiprocessing.get_context("fork").Pool(os.cpu_count()) as pool:
            for _ in pool.imap_unordered(_compile_one, jobs, chunksize=16):
                pass
    else:
        for j in jobs:
            _compile_one(j)


# ------------------------------------------------------------------ helpers
def copy_file(src, dst, mode):
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    shutil.copyfile(os.path.realpath(src), dst)   # real contents at the path asked for
    os.chmod(dst, mode)


def under(root, abspath):
    return os.path.join(root, abspath.lstrip("/"))


def normalise_tree(root):
    """Modes 0755/0644 (0755 for python3.11 and .so), owner root, mtime 0; rejects
    anything that is not a plain dir or file."""
    can_chown = os.geteuid() == 0
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for f in filenames:
            p = os.path.join(dirpath, f)
            st = os.lstat(p)
            if not stat.S_ISREG(st.st_mode):
                raise SystemExit("unexpected non-regular file in rootfs: %s" % p)
            mode = EXEC_MODE if (f.endswith(".so") or ".so." in f or f.startswith("python3")
                                 or f.startswith("ld-linux")) else FILE_MODE
            if can_chown:
                os.chown(p, 0, 0)
            os.chmod(p, mode)
            os.utime(p, (0, 0))
        for d in dirnames:
            p = os.path.join(dirpath, d)
            if not stat.S_ISDIR(os.lstat(p).st_mode):
                raise SystemExit("unexpected non-directory in rootfs: %s" % p)
    for dirpath, dirnames, _ in os.walk(root, topdown=False):
        if can_chown:
            os.chown(dirpath, 0, 0)
        os.chmod(dirpath, DIR_MODE)
        os.utime(dirpath, (0, 0))


def write_manifest(root):
    lines = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for d in dirnames:
            # directories too, so `codemode rootfs verify` rejects extra/missing ones
            rel = os.path.relpath(os.path.join(dirpath, d), root) + "/"
            st = os.lstat(os.path.join(dirpath, d))
            lines.append((rel, "- %04o 0 %s" % (stat.S_IMODE(st.st_mode), rel)))
        for f in filenames:
            p = os.path.join(dirpath, f)
            rel = os.path.relpath(p, root)
            if rel == "MANIFEST":
                continue
            st = os.lstat(p)
            h = hashlib.sha256()
            with open(p, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
            lines.append((rel, "%s %04o %d %s" % (h.hexdigest(), stat.S_IMODE(st.st_mode),
                                                   st.st_size, rel)))
    lines.sort()
    data = ("".join(l + "\n" for _, l in lines)).encode()
    mpath = os.path.join(root, "MANIFEST")
    with open(mpath, "wb") as fh:
        fh.write(data)
    if os.geteuid() == 0:
        os.chown(mpath, 0, 0)
    os.chmod(mpath, FILE_MODE)
    os.utime(mpath, (0, 0))
    os.utime(root, (0, 0))
    return hashlib.sha256(data).hexdigest(), len(lines)


def replace_dir(tmp, out):
    """Put tmp at out; the old out (if any) is swapped out atomically and removed."""
    if os.path.lexists(out):
        libc = ctypes.CDLL(None, use_errno=True)
        AT_FDCWD, RENAME_EXCHANGE = -100, 2
        rc = -1
        if hasattr(libc, "renameat2"):
            rc = libc.renameat2(AT_FDCWD, tmp.encode(), AT_FDCWD, out.encode(), RENAME_EXCHANGE)
        if rc == 0:
            shutil.rmtree(tmp)                 # tmp now holds the old tree
            return
        old = "%s.old-%d" % (out, os.getpid())
        os.rename(out, old)
        os.rename(tmp, out)
        shutil.rmtree(old)
    else:
        os.rename(tmp, out)


# ------------------------------------------------------------------ main
def build(out, profile, zygote_ext=None):
    out = os.path.abspath(out.rstrip("/"))
    runner_src = "%s.runner-%d.py" % (out, os.getpid())   # the joined runner, outside the tree
    write_runner_source(runner_src)
    try:
        return build_tree(out, profile, zygote_ext, runner_src)
    finally:
        os.unlink(runner_src)


def build_tree(out, profile, zygote_ext, runner_src):
    t0 = time.monotonic()
    tmp = "%s.tmp-%d" % (out, os.getpid())
    if os.path.lexists(tmp):
        shutil.rmtree(tmp)
    os.makedirs(tmp)
    os.umask(0o022)

    py, so = select_full() if profile == "full" else select_minimal(runner_src)
    log("profile %s: %d modules, %d extension modules" % (profile, len(py), len(so)))

    # interpreter + extension modules + the libraries they need
    copy_file(HOST_PYTHON, under(tmp, "/usr/bin/python3.11"), EXEC_MODE)
    for f in so:
        copy_file(f, under(tmp, f), EXEC_MODE)
    libs = needed_libraries([HOST_PYTHON] + so)
    for lib in libs:
        copy_file(lib, under(tmp, lib), EXEC_MODE)
    log("%d shared libraries: %s" % (len(libs), " ".join(libs)))
    os.makedirs(under(tmp, DYNLOAD), exist_ok=True)   # must exist for start-up
    if zygote_ext:
        copy_file(zygote_ext, under(tmp, ZYGOTE_EXT_DST), EXEC_MODE)
        log("zygote extension: %s" % zygote_ext)
    else:
        log("no zygote extension (%s missing): sandboxes will be built from scratch" % ZYGOTE_EXT)

    # stdlib as sourceless .pyc where the .py was; the runner as _codemode_runner.pyc
    jobs = [(p, under(tmp, p), p) for p in py]
    runner_dst = "%s/%s.py" % (STDLIB, RUNNER_MODULE)
    jobs.append((runner_src, under(tmp, runner_dst) + "c", runner_dst))
    for _, dst, _ in jobs:
        os.makedirs(os.path.dirname(dst), exist_ok=True)
    for i, (src, dst, dfile) in enumerate(jobs):
        jobs[i] = (src, dst[:-3] + ".pyc" if dst.endswith(".py") else dst, dfile)
    compile_all(jobs)

    # mount points
    for d in ("tmp", "proc", "run", "dev"):
        os.makedirs(os.path.join(tmp, d), exist_ok=True)
    for f in ("null", "zero", "urandom"):
        open(os.path.join(tmp, "dev", f), "wb").close()

    normalise_tree(tmp)
    rootfs_id, nfiles = write_manifest(tmp)
    replace_dir(tmp, out)
    size = sum(os.lstat(os.path.join(d, f)).st_size
               for d, _, fs in os.walk(out) for f in fs)
    log("%s: %d files, %.1f MB, %.1f s" % (out, nfiles, size / 1e6, time.monotonic() - t0))
    print(rootfs_id)
    return rootfs_id


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="rootfs directory to (re)place")
    ap.add_argument("--profile", choices=("minimal", "full"), default="minimal")
    ap.add_argument("--zygote-ext", default=ZYGOTE_EXT if os.path.exists(ZYGOTE_EXT) else None,
                    help="the _codemode_zygote extension module to ship (default: next to this file)")
    args = ap.parse_args(argv)
    build(args.out, args.profile, args.zygote_ext)


if __name__ == "__main__":
    main()
