"""Every Python example in the README and in ``docs/`` runs, and serves over SCGI."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

ROOT = Path(__file__).resolve().parent.parent
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def examples() -> list[tuple[str, str]]:
    """Return ``(label, code)`` for every Python block in README.md and docs/*.md."""
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        for index, match in enumerate(_BLOCK.finditer(text)):
            found.append((f"{path.relative_to(ROOT)}#{index}", match.group(1)))
    return found


class DocumentationExamplesTests(SynchronousTestCase):
    """The code in the documentation is real code."""

    def test_examplesFound(self) -> None:
        """The README and the docs hold Python examples (the search itself works)."""
        labels = [label for label, _ in examples()]
        self.assertIn("README.md#0", labels)
        self.assertTrue(any(label.startswith("docs/") for label in labels))

    def test_everyExampleRuns(self) -> None:
        """Each example runs without error; one that listens answers SCGI requests.

        Listeners are moved to free ports and temporary paths, ``reactor.run()``
        stops after a moment, and every ``SCGISite`` it listens with is sent one
        ``GET /``, which must get a ``Status:`` line back (``200`` for the README's
        example).
        """
        failures = []
        for label, code in examples():
            with tempfile.TemporaryDirectory() as directory:
                script = Path(directory) / "example.py"
                script.write_text(code, encoding="utf-8")
                result = subprocess.run(
                    [sys.executable, "-m", "tests._docs_prelude", str(script)],
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=False,
                )
            statuses = [
                line for line in result.stdout.splitlines() if "SCGI-STATUS" in line
            ]
            if result.returncode != 0:
                failures.append(f"{label}: exit {result.returncode}\n{result.stderr}")
            elif "reactor.run()" in code and "SCGISite" in code and not statuses:
                failures.append(f"{label}: no SCGI listener answered\n{result.stderr}")
            expected = (
                "SCGI-STATUS Status: 200"
                if label.startswith("README")
                else ("SCGI-STATUS Status: ")
            )
            for line in statuses:
                if not line.startswith(expected):
                    failures.append(f"{label}: bad answer {line!r}")
        self.assertEqual(failures, [])
