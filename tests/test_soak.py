"""The soak at a small scale: ``bench/soak.py`` with 4,000 mixed requests.

The script (see ``bench/README.md``) starts ``twistd -n scgi`` and sends a fixed mix of
GETs, hashed POSTs, streamed answers, aborted uploads and streams, and malformed
requests, checking every answer; at 10 points it checks that every request the
server saw ended and samples the server's RSS and descriptors.  Here it runs 4,000
requests (the full run is 1,000,000); the memory bound is looser than the script's
default, since such a short run does not fill the site's body-buffer pool (16 MiB)
before the warm-up ends.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

ROOT = Path(__file__).resolve().parent.parent


class SoakTests(SynchronousTestCase):
    """``bench/soak.py --requests 4000``."""

    def test_smallSoak(self) -> None:
        """No request fails or comes back corrupted, every one ends, nothing leaks.

        The descriptors are the same at every point after the warm-up, and the
        server logs no traceback.
        """
        with tempfile.TemporaryDirectory(prefix="scgi-soak-test-") as directory:
            output = Path(directory) / "soak.json"
            run = subprocess.run(
                [
                    sys.executable,
                    str(ROOT / "bench" / "soak.py"),
                    "--requests",
                    "4000",
                    "--warmup",
                    "400",
                    "--rss-slack",
                    "16",
                    "--quiet",
                    "--json",
                    str(output),
                ],
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
            result = json.loads(output.read_text())
        self.assertTrue(result["passed"], result)
        self.assertEqual((result["failed"], result["corrupted"]), (0, 0), result)
        self.assertEqual(result["unfinished"], [], result)
        self.assertEqual(len(result["points"]), 10, result)
        self.assertEqual(sum(result["ok"].values()), 4000, result)
        self.assertGreater(result["points"][-1]["server_aborted"], 0, result)
