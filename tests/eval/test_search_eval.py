"""make search-eval (part of make test): the search evaluation
(tests/eval/search_eval.py) over GitHub's, Slack's and Spotify's real
descriptions must find the right tool in the top 3 for at least 90% of the
tasks; the report (top-1, top-3, MRR, the tasks missed) is printed."""
import sys
import unittest

from tests.eval import search_eval

TOP3_AT_LEAST = 0.90


class SearchEval(unittest.TestCase):
    def test_top3_accuracy(self):
        spec = search_eval.load_tasks()
        self.assertGreaterEqual(len(spec["tasks"]), 60)
        self.assertEqual(sorted(spec["apis"]), ["github", "slack", "spotify"])
        ntools, s = search_eval.run()
        self.assertGreater(ntools, 1400)  # the three descriptions registered whole
        search_eval.report(ntools, s, sys.stderr)
        self.assertGreaterEqual(s["top3"], TOP3_AT_LEAST,
                                "%d of %d tasks missed" % (len(s["missed"]), s["tasks"]))


if __name__ == "__main__":
    unittest.main()
