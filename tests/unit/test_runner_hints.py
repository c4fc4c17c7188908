"""Host-side tests for the runner's errors that say what to do (issue 19): a
misspelled tool or manual names the nearest names and how to list tools, and
an engine ToolError of kind invalid_arguments reaches the chain as it is."""
import unittest

from tests.unit.test_runner import run_chain


class NearestNames(unittest.TestCase):
    def test_misspelled_tool(self):
        done, _, calls, _ = run_chain("return await demo.word_cont(text='a')")
        self.assertEqual(calls, [])
        msg = done["error"]["message"]
        self.assertEqual(done["error"]["kind"], "exception")
        self.assertIn("AttributeError: manual `demo` has no tool `word_cont`", msg)
        self.assertIn("did you mean `demo.word_count`?", msg)
        self.assertIn("Its tools: echo, fail, word_count.", msg)
        self.assertIn("search_tools(", msg)

    def test_misspelled_tool_can_be_caught(self):
        done, _, _, _ = run_chain("try:\n    demo.ech\nexcept AttributeError as e:\n"
                                  "    return str(e)\n")
        self.assertIn("did you mean `demo.echo`?", done["result"])

    def test_hasattr_and_getattr_default_still_work(self):
        done, _, _, _ = run_chain("return [hasattr(demo, 'nope'), getattr(demo, 'x', 1), "
                                  "hasattr(demo, 'echo')]")
        self.assertEqual(done["result"], [False, 1, True])

    def test_misspelled_manual(self):
        done, _, _, _ = run_chain("return await dem.word_count(text='a')")
        msg = done["error"]["message"]
        self.assertIn("NameError: name 'dem' is not defined", msg)
        self.assertIn("did you mean the manual `demo`?", msg)
        self.assertIn("search_tools(", msg)

    def test_unrelated_name_error_unchanged(self):
        done, _, _, _ = run_chain("return undefined_variable_xyz")
        self.assertEqual(done["error"]["message"],
                         "NameError: name 'undefined_variable_xyz' is not defined")


class InvalidArguments(unittest.TestCase):
    def test_kind_kept_uncaught_and_caught(self):
        done, _, _, _ = run_chain("await demo.fail(kind='invalid_arguments')")
        self.assertEqual(done["error"]["kind"], "invalid_arguments")
        done, _, _, _ = run_chain("try:\n    await demo.fail(kind='invalid_arguments')\n"
                                  "except ToolError as e:\n    return e.kind\n")
        self.assertEqual(done["result"], "invalid_arguments")


if __name__ == "__main__":
    unittest.main()
