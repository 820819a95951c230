"""pytest users: the opt-in ``scgi_serve`` fixture, and our tests under pytest-twisted.

Strategy: each test runs pytest in a subprocess, in a temporary directory (so this
project's ``addopts``, which turn pytest-twisted off, do not apply), with the
checkout on ``PYTHONPATH`` and pytest-twisted installed (it is in the ``test``
extra): exactly what a user's project gets.

* :meth:`PytestPluginTests.test_fixtureServes` opts in with ``pytest_plugins`` in a
  ``conftest.py`` and serves a leaf resource, a ``WSGIResource`` on a unix socket and
  a resource on IPv6 loopback, each answered through the returned client.
* :meth:`PytestPluginTests.test_optIn` checks that without the opt-in the fixture does
  not exist: installing scgi_twisted changes nothing for a pytest user.
* :meth:`PytestTwistedTests.test_ourReactorTests` runs our own reactor-based test
  modules (real sockets, trial ``TestCase`` classes) with pytest-twisted active.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from .support.processes import temporaryDirectory

ROOT = Path(__file__).resolve().parent.parent

USING = '''
"""Uses the scgi_serve fixture."""

import pytest_twisted
from twisted.internet import reactor
from twisted.web.resource import Resource
from twisted.web.wsgi import WSGIResource


class Hello(Resource):
    isLeaf = True

    def render_GET(self, request):
        return b"hello " + request.uri


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"wsgi ", environ["PATH_INFO"].encode()]


@pytest_twisted.ensureDeferred
async def test_hello(scgi_serve):
    client = scgi_serve(Hello(), max_body_size=1024)
    response = await client.request("GET", "/a?b=c")
    assert response.code == 200
    assert await response.content() == b"hello /a?b=c"
    response = await client.request("POST", "/", body=b"x" * 2000)
    assert response.code == 413


@pytest_twisted.ensureDeferred
async def test_wsgiOnUnixSocket(scgi_serve, tmp_path):
    wsgi = WSGIResource(reactor, reactor.getThreadPool(), application)
    client = scgi_serve(wsgi, endpoint=f"unix:{tmp_path}/scgi.sock")
    response = await client.request("GET", "/x")
    assert await response.content() == b"wsgi /x"


@pytest_twisted.ensureDeferred
async def test_ipv6(scgi_serve):
    client = scgi_serve(Hello(), endpoint=r"tcp6:0:interface=\\:\\:1")
    response = await client.request("GET", "/six")
    assert await response.content() == b"hello /six"
'''


def pytest(directory: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """Run pytest in ``directory`` with the checkout on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(directory), str(ROOT), *filter(None, [env.get("PYTHONPATH")])]
    )
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *arguments],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


class PytestPluginTests(SynchronousTestCase):
    """``scgi_twisted.pytest_plugin`` serves resources to pytest tests, on request."""

    def test_fixtureServes(self) -> None:
        """Opted in, ``scgi_serve`` listens, returns a working client, cleans up."""
        directory = temporaryDirectory(self)
        (directory / "conftest.py").write_text(
            'pytest_plugins = ["scgi_twisted.pytest_plugin"]\n', encoding="utf-8"
        )
        (directory / "test_using.py").write_text(
            textwrap.dedent(USING), encoding="utf-8"
        )
        result = pytest(directory, "-v", "test_using.py")
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("3 passed", result.stdout)
        self.assertRegex(result.stdout, r"plugins: .*\btwisted-")

    def test_optIn(self) -> None:
        """Without ``pytest_plugins``, there is no ``scgi_serve`` fixture."""
        directory = temporaryDirectory(self)
        (directory / "test_using.py").write_text(
            textwrap.dedent(USING), encoding="utf-8"
        )
        result = pytest(directory, "-q", "test_using.py", "-k", "test_hello")
        self.assertNotEqual(result.returncode, 0, result.stdout)
        self.assertIn("fixture 'scgi_serve' not found", result.stdout)


class PytestTwistedTests(SynchronousTestCase):
    """Our own reactor-based tests pass with pytest-twisted running the reactor."""

    def test_ourReactorTests(self) -> None:
        """The real-socket modules pass under pytest with pytest-twisted active.

        The project's ``addopts`` turn pytest-twisted off (``-p no:twisted``): its
        tests are trial ``TestCase`` classes, which run the reactor themselves under
        either runner.  Here the ``addopts`` are replaced, so pytest-twisted owns the
        reactor, as in a user's project that installed it.
        """
        result = pytest(
            ROOT,
            "-o",
            "addopts=",
            "tests/test_sockets.py",
            "tests/test_streaming_sockets.py",
        )
        self.assertEqual(result.returncode, 0, result.stdout[-3000:] + result.stderr)
        self.assertRegex(result.stdout, r"plugins: .*\btwisted-")
        self.assertRegex(result.stdout, r"\b[1-9][0-9]* passed")
        self.assertNotIn("failed", result.stdout)
