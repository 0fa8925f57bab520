"""Runs tests/conformance/oauth_flow.mjs (oauth4webapi + jose) against a fresh credod."""

import os
import shutil
import subprocess
import unittest

from credo_harness import CredoTestCase

CONFORMANCE_DIR = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "conformance"))
SCRIPT = os.path.join(CONFORMANCE_DIR, "oauth_flow.mjs")
NODE_MODULES = os.path.join(CONFORMANCE_DIR, "node_modules")


# scripts/test.sh sets CREDO_REQUIRE_CONFORMANCE=1: there a missing node or node_modules fails
# the run instead of skipping the test.
_REQUIRED = os.environ.get("CREDO_REQUIRE_CONFORMANCE") == "1"
_HAVE_DEPS = (shutil.which("node") is not None
              and os.path.isdir(os.path.join(NODE_MODULES, "oauth4webapi"))
              and os.path.isdir(os.path.join(NODE_MODULES, "jose")))


@unittest.skipUnless(
    _HAVE_DEPS or _REQUIRED,
    f"node or {NODE_MODULES} is missing: run `npm ci` in tests/conformance to enable this test")
class OAuthLibraryConformanceTest(CredoTestCase):

    def test_oauth4webapi_and_jose_flow(self):
        try:
            result = subprocess.run(
                ["node", SCRIPT, self.server.url, self.server.admin_token], cwd=CONFORMANCE_DIR,
                stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=90)
        except subprocess.TimeoutExpired as exc:
            self.fail(f"oauth_flow.mjs did not finish in 90 s:\n{exc.stdout}\n{exc.stderr}")
        self.assertEqual(result.returncode, 0,
                         f"oauth_flow.mjs failed (exit {result.returncode}):\n"
                         f"{result.stdout}\n{result.stderr}\n{self.server.output_tail(20)}")


if __name__ == "__main__":
    unittest.main()
