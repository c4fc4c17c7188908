"""run_suite.py — one suite folder in the test VM: unittest discovery of
tests/<suite>, minus the tests that check host tooling rather than the
engine (SKIP, each with its reason, printed), streaming unittest's output.

Why not plain `unittest discover`: the guest is a minimal Debian without
make, man, systemd or a compiler, so the packaging/ops tests that drive
those cannot run there; they run on the host in `make test`.
usage: python3.11 scripts/vm/run_suite.py SUITE[/test_file.py]  (exit status: unittest's)"""
import sys
import unittest

SKIP = {
    "tests.integration.test_ops.": "install.sh, systemd-analyze, man, systemd socket activation: host tooling",
    "tests.integration.test_rootfs.RootfsMakeCache.": "runs make (the rootfs build cache)",
}


def flatten(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from flatten(t)
        else:
            yield t


def main():
    suite = sys.argv[1]  # a folder under tests/, or folder/test_file.py
    folder, _, pattern = suite.partition("/")
    found = unittest.defaultTestLoader.discover("tests/" + folder, pattern=pattern or "test*.py",
                                                top_level_dir=".")
    keep = unittest.TestSuite()
    skipped = {}
    for t in flatten(found):
        reason = next((r for p, r in SKIP.items() if t.id().startswith(p)), None)
        if reason:
            skipped[reason] = skipped.get(reason, 0) + 1
        else:
            keep.addTest(t)
    for reason, n in skipped.items():
        print("run_suite: %s: %d tests left to the host (%s)" % (suite, n, reason), flush=True)
    result = unittest.TextTestRunner(verbosity=1).run(keep)
    sys.exit(0 if result.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
