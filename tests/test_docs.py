"""Every Python example in the README and in ``docs/`` runs, and answers as it says.

Strategy: each fenced ``python`` block is written to a temporary file and run.

* A block that listens with an ``SCGISite`` and runs the reactor is run under
  :mod:`tests._docs_prelude`, which moves its listeners to free ports and temporary
  paths and sends each one SCGI ``GET`` per expected answer.  The expected answers
  are written in the Markdown, in an HTML comment (invisible when rendered) on the
  line before the block: ``<!-- answers: GET /hello -> 200 "Hello, world!" -->``
  (several separated by ``;``); the status must match and the body must contain the
  quoted text.  Such a block without that comment fails the test (the README's block
  must answer ``GET /`` with 200).
* A block that defines tests (``def test_``) is a test module: it is run with
  ``pytest`` (pytest-twisted active, as for a user who installed it) and, if it
  holds ``TestCase`` classes, with ``trial``; each must pass with at least one test
  run.
* Any other block must run without error.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

ROOT = Path(__file__).resolve().parent.parent
_BLOCK = re.compile(
    r"^(?:<!-- answers: (?P<answers>.*?) -->\n)?```python\n(?P<code>.*?)^```",
    re.DOTALL | re.MULTILINE,
)
_ANSWER = re.compile(r'GET (?P<path>\S+) -> (?P<status>\d{3})(?: "(?P<body>[^"]*)")?')


class Example:
    """One Python block of the documentation.

    :ivar label: ``file#index``.
    :ivar code: the code.
    :ivar answers: ``(path, status, body text)`` expected from its SCGI listeners.
    """

    def __init__(self, label: str, code: str, answers: str | None) -> None:
        self.label = label
        self.code = code
        self.answers: list[tuple[str, int, str]] = []
        for part in (answers or "").split(";"):
            if not part.strip():
                continue
            match = _ANSWER.fullmatch(part.strip())
            if match is None:
                raise ValueError(f"{label}: cannot read the answer {part!r}")
            self.answers.append(
                (match["path"], int(match["status"]), match["body"] or "")
            )

    @property
    def listens(self) -> bool:
        """Whether the block serves SCGI and runs the reactor."""
        return "reactor.run()" in self.code and "SCGISite" in self.code

    @property
    def isTestModule(self) -> bool:
        """Whether the block is a module of tests."""
        return re.search(r"^\s*(async )?def test_", self.code, re.MULTILINE) is not None


def examples() -> list[Example]:
    """Return every Python block in README.md and docs/*.md."""
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        for index, match in enumerate(_BLOCK.finditer(text)):
            label = f"{path.relative_to(ROOT)}#{index}"
            found.append(Example(label, match["code"], match["answers"]))
    return found


def environment() -> dict[str, str]:
    """The environment of an example: the checkout on the path, nothing else set."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), *filter(None, [env.get("PYTHONPATH")])]
    )
    return env


def runListening(example: Example) -> list[str]:
    """Run a listening example and check its answers; return the failures."""
    answers = example.answers
    if not answers and example.label.startswith("README"):
        answers = [("/", 200, "")]
    if not answers:
        return [f"{example.label}: it listens but states no answers (<!-- answers -->)"]
    with tempfile.TemporaryDirectory() as directory:
        script = Path(directory) / "example.py"
        script.write_text(example.code, encoding="utf-8")
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests._docs_prelude",
                str(script),
                *[path for path, _, _ in answers],
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    if result.returncode != 0:
        return [f"{example.label}: exit {result.returncode}\n{result.stderr}"]
    received = [
        json.loads(line.split(" ", 1)[1])
        for line in result.stdout.splitlines()
        if line.startswith("SCGI-RESPONSE ")
    ]
    failures = []
    if not received:
        failures.append(f"{example.label}: no SCGI listener answered\n{result.stderr}")
    for path, status, body in answers:
        got = [answer for answer in received if answer["path"] == path]
        if not got:
            failures.append(f"{example.label}: no answer for GET {path}")
        for answer in got:
            if not answer["status"].startswith(f"Status: {status} "):
                failures.append(f"{example.label}: GET {path}: {answer['status']!r}")
            if body not in answer["body"]:
                failures.append(
                    f"{example.label}: GET {path}: {body!r} not in {answer['body']!r}"
                )
    return failures


def runTests(example: Example) -> list[str]:
    """Run a test-module example under pytest (and trial); return the failures."""
    failures = []
    with tempfile.TemporaryDirectory() as directory:
        name = "test_docs_example_" + re.sub(r"\W", "_", example.label)
        (Path(directory) / f"{name}.py").write_text(example.code, encoding="utf-8")
        env = environment()
        env["PYTHONPATH"] = os.pathsep.join([directory, env["PYTHONPATH"]])
        runs = [("pytest", ["pytest", "-q", "-p", "no:cacheprovider", f"{name}.py"])]
        if "TestCase" in example.code:
            runs.append(("trial", ["twisted.trial", name]))
        for runner, arguments in runs:
            result = subprocess.run(
                [sys.executable, "-m", *arguments],
                cwd=directory,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            passed = (
                r"\b[1-9]\d* passed"
                if runner == "pytest"
                else r"(?m)^PASSED \(.*successes=[1-9]"
            )
            if result.returncode != 0 or not re.search(passed, result.stdout):
                failures.append(
                    f"{example.label}: {runner} failed\n{result.stdout}{result.stderr}"
                )
    return failures


def runPlain(example: Example) -> list[str]:
    """Run any other example; return the failures."""
    with tempfile.TemporaryDirectory() as directory:
        script = Path(directory) / "example.py"
        script.write_text(example.code, encoding="utf-8")
        result = subprocess.run(
            [sys.executable, "-m", "tests._docs_prelude", str(script)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    if result.returncode != 0:
        return [f"{example.label}: exit {result.returncode}\n{result.stderr}"]
    return []


class DocumentationExamplesTests(SynchronousTestCase):
    """The code in the documentation is real code, and answers as documented."""

    def test_examplesFound(self) -> None:
        """The README and the docs hold Python examples (the search itself works)."""
        found = examples()
        labels = [example.label for example in found]
        self.assertIn("README.md#0", labels)
        self.assertTrue(any(label.startswith("docs/") for label in labels))
        self.assertTrue(any(example.isTestModule for example in found))
        self.assertTrue(any(example.answers for example in found))

    def test_answersRead(self) -> None:
        """The answers comment is read, and a wrong one is an error, not ignored."""
        example = Example("x", "", 'GET /a -> 200 "hi"; GET /b -> 404')
        self.assertEqual(example.answers, [("/a", 200, "hi"), ("/b", 404, "")])
        self.assertRaises(ValueError, Example, "x", "", "GET /a 200")

    def test_checkCanFail(self) -> None:
        """An example whose answer differs from its comment is reported."""
        code = (ROOT / "README.md").read_text(encoding="utf-8")
        (readme,) = [e for e in examples() if e.label == "README.md#0"]
        self.assertIn(readme.code, code)
        wrong = Example("docs/x.md#0", readme.code, 'GET /README.md -> 404 "nowhere"')
        failures = runListening(wrong)
        self.assertEqual(len(failures), 2, failures)

    def test_shownFilesEqualTheirSources(self) -> None:
        """Every configuration shown in docs/ is the very file the tests run.

        Configurations are shown as plain code blocks, readable where Markdown is read
        (a code host), each after an ``<!-- file: deploy/NAME -->`` comment; the block
        must equal that file, byte for byte.  No ``literalinclude`` is left (it shows
        nothing outside Sphinx).
        """
        from .support.frontend_cases import shownFiles

        count = 0
        for guide in sorted((ROOT / "docs").glob("*.md")):
            text = guide.read_text(encoding="utf-8")
            self.assertNotIn("{literalinclude}", text, guide.name)
            markers = text.count("<!-- file: ")
            shown = shownFiles(guide.name)
            self.assertEqual(
                len(shown), markers, f"{guide.name}: a marker without block"
            )
            for path, block in shown:
                self.assertEqual(
                    block,
                    path.read_text(encoding="utf-8"),
                    f"{guide.name} shows an old {path.name}: python -m tests.sync_docs",
                )
            count += len(shown)
        self.assertGreaterEqual(count, 12)

    def test_everyExampleRuns(self) -> None:
        """Each example runs; a listening one answers as stated; tests pass."""
        failures = []
        for example in examples():
            if example.listens:
                failures += runListening(example)
            elif example.isTestModule:
                failures += runTests(example)
            else:
                failures += runPlain(example)
        self.assertEqual(failures, [])
