"""The version matrix: every Python we declare, with the oldest and the newest Twisted.

nox rather than tox: the sessions are plain Python, so the oldest Twisted is read from
``pyproject.toml`` here instead of being written down a second time, and the two Twisted
versions are one ``parametrize`` instead of a factor grammar.

``nox -l`` lists the sessions; ``nox -s "tests-3.13(twisted='newest')"`` runs one.
Each session installs the project with its ``test`` extra into a new virtual
environment, then runs the unit and socket tests under pytest: the end-to-end tests
through nginx, Apache and lighttpd (marker ``frontend``) are left to ``.ci/run``, which
installs those servers. Arguments after ``--`` replace the pytest arguments, for example
``nox -s "tests-3.10(twisted='oldest')" -- tests/test_sansio.py -q``.
"""

from __future__ import annotations

import re
from pathlib import Path

import nox

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
ROOT = Path(__file__).parent

nox.options.error_on_missing_interpreters = True
nox.options.sessions = ["tests"]


def oldestTwisted() -> str:
    """Return the oldest Twisted that ``pyproject.toml`` allows, as a pin.

    :return: a requirement such as ``twisted==25.5``, from the project's
        ``"twisted>=X"`` dependency.
    :raises ValueError: if the project declares Twisted without such a lower bound.
    """
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    match = re.search(r'"twisted\s*>=\s*([0-9][0-9.]*)"', text, re.I)
    if match is None:
        raise ValueError('no "twisted>=X" dependency in pyproject.toml')
    return f"twisted=={match.group(1)}"


@nox.session(python=PYTHONS)
@nox.parametrize("twisted", ["oldest", "newest"])
def tests(session: nox.Session, twisted: str) -> None:
    """Run the unit and socket tests on one Python with one end of Twisted's range.

    :param session: the nox session.
    :param twisted: ``"oldest"`` for the lowest Twisted ``pyproject.toml`` allows,
        ``"newest"`` for the newest on the registry.
    """
    session.install("-e", ".[test]")
    if twisted == "oldest":
        session.install(oldestTwisted())
    else:
        session.install("--upgrade", "twisted")
    session.run(
        "python",
        "-c",
        "import sys, twisted; print(sys.version.split()[0], twisted.__version__)",
    )
    arguments = session.posargs or ["tests", "-q", "-m", "not frontend"]
    session.run("python", "-m", "pytest", "-p", "no:twisted", *arguments)
