"""The README's first command works as written, in a fresh shell.

Strategy: the tracked files of the checkout are copied into a temporary directory
(so the ``.venv`` the command creates lands there), and the README's first ``sh``
block is run by ``bash`` with an environment that has no virtual environment active,
no ``PYTHONPATH`` and only the system directories on ``PATH``: what a newcomer has.
The server it starts is told to listen on a free port as well (``--listen`` added
at the end, since 4000 may be taken on a test machine), must log that it serves,
answer a real SCGI request with the built-in page, and stop cleanly on SIGTERM.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from .support.processes import STOPPED, Server, request, temporaryDirectory

ROOT = Path(__file__).resolve().parent.parent
_SH = re.compile(r"^```sh\n(.*?)^```", re.DOTALL | re.MULTILINE)


def readmeCommand() -> str:
    """Return the README's first shell command."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = _SH.search(text)
    assert match is not None, "the README has no sh block"
    return match.group(1).strip()


def freshEnvironment() -> dict[str, str]:
    """Return an environment with no virtual environment and no ``PYTHONPATH``."""
    keep = ("HOME", "LANG", "LC_ALL", "TMPDIR", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    env["PYTHONUNBUFFERED"] = "1"
    return env


class ReadmeTests(SynchronousTestCase):
    """The first command of the README."""

    def test_firstCommandShape(self) -> None:
        """It is one line that creates a venv and runs only the venv's programs."""
        command = readmeCommand()
        self.assertEqual(len(command.splitlines()), 1, command)
        steps = [step.strip() for step in command.split("&&")]
        self.assertEqual(steps[0], "python3 -m venv .venv")
        for step in steps[1:]:
            self.assertTrue(step.startswith(".venv/bin/"), step)
        self.assertEqual(steps[-1], ".venv/bin/twistd -n scgi")

    def test_firstCommandRuns(self) -> None:
        """Run as written in a fresh shell, it installs and serves the built-in page."""
        copy = temporaryDirectory(self) / "checkout"
        files = subprocess.run(
            ["git", "ls-files", "-z"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout.split(b"\0")
        for name in filter(None, files):
            source = ROOT / os.fsdecode(name)
            if source.is_file():
                target = copy / os.fsdecode(name)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
        *install, serve = [step.strip() for step in readmeCommand().split("&&")]
        env = freshEnvironment()
        installed = subprocess.run(
            ["bash", "-c", " && ".join(install)],
            cwd=copy,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        self.assertEqual(installed.returncode, 0, installed.stdout + installed.stderr)
        # The last step as written, plus a free port (4000 may be taken here).
        command = [*serve.split(), "--listen", "tcp:0:interface=127.0.0.1"]
        server = Server(self, copy, command, env=env)
        port = int(server.waitFor(r"SCGISite starting on (\d+)").group(1))
        server.waitFor(r"Serving the built-in page over SCGI")
        response = request((socket.AF_INET, ("127.0.0.1", port)), b"/hello")
        self.assertEqual(response.status, b"200 OK")
        self.assertIn(server.stop(), STOPPED, server.output())
        self.assertNotIn("Traceback", server.output())


class SystemdInstallTests(SynchronousTestCase):
    """The systemd guide installs what exists: a checkout, or the wheel built from it.

    Both ways are run elsewhere: :meth:`ReadmeTests.test_firstCommandRuns` installs a
    checkout with ``pip install``, and ``tests/test_plugin.py``'s packaging tests build
    the wheel and install it into a new virtual environment.
    """

    def test_installsFromACheckoutOrAWheel(self) -> None:
        """It never says ``pip install scgi-twisted``; its wheel name is right."""
        text = (ROOT / "docs" / "systemd.md").read_text(encoding="utf-8")
        blocks = [block for block in _SH.findall(text) if "pip install" in block]
        self.assertEqual(len(blocks), 1, blocks)
        pipLines = [
            line.lstrip("# ").strip()
            for line in blocks[0].splitlines()
            if "pip install" in line
        ]
        self.assertTrue(pipLines)
        for line in pipLines:
            target = line.split("pip install", 1)[1].split("#")[0].strip()
            self.assertTrue(target.startswith("/"), line)
        version = re.search(
            r'^version = "([^"]+)"',
            (ROOT / "pyproject.toml").read_text(encoding="utf-8"),
            re.MULTILINE,
        )
        assert version is not None
        wheel = f"scgi_twisted-{version.group(1)}-py3-none-any.whl"
        self.assertTrue(any(line.endswith(wheel) for line in pipLines), pipLines)
        self.assertIn("python3 -m build --wheel", text)
