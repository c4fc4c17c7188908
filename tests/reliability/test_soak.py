"""Short soak for `make test` (CODEMODE_SOAK_SHORT chains, default 300);
`make soak` runs the 10,000-chain version (tests/reliability/soak.py)."""
import json
import os
import unittest

from tests.reliability import soak


class ShortSoak(unittest.TestCase):
    def test_short_soak(self):
        n = int(os.environ.get("CODEMODE_SOAK_SHORT", "300"))
        rep = soak.run(n, 16)
        print("\nshort soak:", json.dumps({k: rep[k] for k in ("sent", "answered", "seconds", "rate",
                                                            "kinds", "before", "after")}))
        self.assertEqual(soak.check(rep), [], json.dumps(rep))
        self.assertGreater(rep["hostile"], 0)
        self.assertGreater(rep["kinds"].get("ok", 0), n // 2, rep["kinds"])


if __name__ == "__main__":
    unittest.main()
