"""What a user sees when ``twistd scgi`` cannot start: one or two lines, no traceback.

Strategy:

* :class:`HintTests` parses command lines with :class:`~scgi_twisted.tap.Options` (as
  Python code does, so a bad one raises ``UsageError``) and checks the hints for the
  likeliest mistakes: ``host:port`` given to ``--listen``, a Klein app or a function
  of no arguments given to ``--wsgi``, a ``--resource`` module that raises.
* :class:`StartupErrorServiceTests` starts the service built by
  :func:`~scgi_twisted.tap.makeService` on a reactor whose ``listen`` fails, and checks
  that the announcement ("Serving ... on ...") is logged only once listening worked.
* :class:`CommandLineTests` runs the real ``twistd -n scgi`` (and ``twist scgi``) as a
  subprocess in an empty temporary directory for each failure a user can cause: a busy
  port, a unix socket in a missing directory, a usage error, a ``--resource`` module
  that raises at import.  Each must exit with status 1, print no ``Traceback``, print
  its message in at most two lines on standard error (twistd's own start-up lines go
  to standard output, its log), omit the help text, and leave no ``twistd.pid``.
  ``--traceback`` brings the traceback back.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from twisted.internet.error import CannotListenError
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import ILogObserver, LogEvent, formatEvent, globalLogPublisher
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from scgi_twisted._service import _listenProblem
from scgi_twisted.tap import Options, SCGIService, StartupError, makeService

from .support.processes import (
    TWIST,
    TWISTD,
    environment,
    temporaryDirectory,
    waitUntil,
)

MODULES = {
    "scgi_boom.py": '''
        """A module that fails while it is imported."""

        raise RuntimeError("the database is not configured")
    ''',
    "scgi_kinds.py": '''
        """Objects that are not WSGI applications, and one that is."""

        from twisted.web.resource import Resource


        class KleinLike:
            """Has a resource() method, as a Klein app has."""

            def resource(self):
                return Resource()


        app = KleinLike()
        root = Resource()


        class BrokenKlein:
            """Its resource() method raises."""

            def resource(self):
                raise RuntimeError("no routes")


        brokenApp = BrokenKlein()


        def noArguments():
            return [b"never"]


        def broken():
            raise ValueError("no settings")


        def application(environ, start_response):
            start_response("200 OK", [])
            return [b"ok"]
    ''',
}


def writeModules(directory: Path) -> None:
    """Write the test modules into ``directory``."""
    for name, text in MODULES.items():
        (directory / name).write_text(textwrap.dedent(text), encoding="utf-8")


class HintTests(SynchronousTestCase):
    """Bad values get a message that says what to do instead."""

    def setUp(self) -> None:
        directory = temporaryDirectory(self)
        writeModules(directory)
        sys.path.insert(0, str(directory))
        self.addCleanup(sys.path.remove, str(directory))
        for name in MODULES:
            self.addCleanup(sys.modules.pop, name[:-3], None)

    def refused(self, *arguments: str) -> str:
        """Parse ``arguments``, which must be refused; return the message."""
        with self.assertRaises(usage.UsageError) as context:
            Options().parseOptions(list(arguments))
        return str(context.exception)

    def test_listenHostPort(self) -> None:
        """``--listen`` of ``host:port`` or a bare port suggests the endpoint string."""
        for given, suggested in [
            ("127.0.0.1:4000", "tcp:4000:interface=127.0.0.1"),
            ("localhost:4001", "tcp:4001:interface=localhost"),
            ("4002", "tcp:4002:interface=127.0.0.1"),
            (":4003", "tcp:4003:interface=127.0.0.1"),
            ("[::1]:4004", r"tcp6:4004:interface=\:\:1"),
        ]:
            message = self.refused("--listen", given)
            self.assertIn(f"did you mean {suggested}?", message)
            # The suggestion itself is accepted.
            Options().parseOptions(["--listen", suggested])

    def test_listenOtherMistakeNoHint(self) -> None:
        """A mistake that is not ``host:port`` gets no endpoint suggestion."""
        self.assertNotIn("did you mean", self.refused("--listen", "tcp:http"))

    def test_wsgiKleinApp(self) -> None:
        """``--wsgi`` of an object with a resource() method suggests ``--resource``."""
        message = self.refused("--wsgi", "scgi_kinds.app")
        self.assertIn("use --resource scgi_kinds.app", message)
        # And --resource takes it.
        Options().parseOptions(["--resource", "scgi_kinds.app"])

    def test_wsgiResource(self) -> None:
        """``--wsgi`` of a resource class or instance suggests ``--resource``."""
        for name in ("twisted.web.resource.Resource", "scgi_kinds.root"):
            self.assertIn(f"use --resource {name}", self.refused("--wsgi", name))

    def test_wsgiNoArguments(self) -> None:
        """``--wsgi`` of a function taking no arguments is refused while parsing."""
        message = self.refused("--wsgi", "scgi_kinds.noArguments")
        self.assertTrue(message.startswith("--wsgi: "), message)
        self.assertIn("environ and start_response", message)

    def test_wsgiApplicationAccepted(self) -> None:
        """A real WSGI application (two arguments) is still accepted."""
        options = Options()
        options.parseOptions(["--wsgi", "scgi_kinds.application"])
        self.assertEqual(options["root"], "wsgi")

    def test_resourceRaisesAtImport(self) -> None:
        """A ``--resource`` module that raises is named, with the file and line."""
        message = self.refused("--resource", "scgi_boom.root")
        self.assertTrue(message.startswith("--resource: "), message)
        self.assertIn("importing 'scgi_boom.root' raised RuntimeError", message)
        self.assertIn("the database is not configured", message)
        self.assertIn("scgi_boom.py, line 4", message)
        self.assertIn("--traceback", message)
        self.assertEqual(len(message.splitlines()), 1)

    def test_resourceMethodRaises(self) -> None:
        """An app whose resource() raises is named, with what it raised."""
        message = self.refused("--resource", "scgi_kinds.brokenApp")
        self.assertTrue(message.startswith("--resource: calling <"), message)
        self.assertIn(".resource() raised RuntimeError: no routes", message)

    def test_resourceFactoryRaises(self) -> None:
        """A ``--resource`` factory that raises when called is named as the culprit."""
        message = self.refused("--resource", "scgi_kinds.broken")
        self.assertIn("calling scgi_kinds.broken() raised ValueError", message)


class FailingReactor(MemoryReactorClock):
    """A memory reactor on which every TCP listen fails: the port is in use."""

    def listenTCP(self, port: int, *args: Any, **kwargs: Any) -> Any:
        raise CannotListenError(
            "127.0.0.1", port, OSError(98, "Address already in use")
        )


class StartupErrorServiceTests(SynchronousTestCase):
    """The service announces itself only once it listens."""

    def setUp(self) -> None:
        self.events: list[LogEvent] = []
        observer = cast(ILogObserver, self.events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)

    def announcements(self) -> list[str]:
        """Return the "Serving ..." lines logged so far."""
        return [
            formatEvent(event)
            for event in self.events
            if formatEvent(event).startswith("Serving ")
        ]

    def test_noAnnouncementBeforeListening(self) -> None:
        """Building the service logs nothing; starting it logs the announcement."""
        options = Options()
        options.parseOptions(["--listen", "tcp:4000:interface=127.0.0.1"])
        service = makeService(options, MemoryReactorClock())
        self.assertEqual(self.announcements(), [])
        service.startService()
        self.addCleanup(service.stopService)
        self.assertEqual(
            self.announcements(),
            ["Serving the built-in page over SCGI on tcp:4000:interface=127.0.0.1"],
        )

    def test_failedListenNotAnnounced(self) -> None:
        """From Python, a failed listen raises the reactor's error, unannounced."""
        options = Options()
        options.parseOptions(["--listen", "tcp:4000:interface=127.0.0.1"])
        service = makeService(options, FailingReactor())
        assert isinstance(service, SCGIService)
        self.assertIsNone(service.command)
        self.assertRaises(CannotListenError, service.privilegedStartService)
        self.assertEqual(self.announcements(), [])

    def test_commandLineError(self) -> None:
        """On the command line, a failed listen is a StartupError saying what to do."""
        options = Options()
        options.parseOptions([])
        service = makeService(options, FailingReactor())
        assert isinstance(service, SCGIService)
        service.command = "twistd scgi"
        hook = sys.excepthook
        self.addCleanup(setattr, sys, "excepthook", hook)
        error = self.assertRaises(StartupError, service.startService)
        self.assertEqual(
            str(error),
            "twistd scgi: cannot listen on 127.0.0.1:4000: the address is already in "
            "use (is another server, perhaps another twistd scgi, running?): stop it "
            "or choose another --listen",
        )
        self.assertEqual(self.announcements(), [])


class Result:
    """The outcome of a command: its status, standard output and standard error."""

    def __init__(self, completed: subprocess.CompletedProcess[str]) -> None:
        self.status = completed.returncode
        self.out = completed.stdout
        self.err = completed.stderr

    def __repr__(self) -> str:
        return f"<exit {self.status}>\nstdout:\n{self.out}\nstderr:\n{self.err}"


class CommandLineTests(SynchronousTestCase):
    """``twistd -n scgi`` fails in one or two lines, with status 1."""

    def setUp(self) -> None:
        self.directory = temporaryDirectory(self)
        writeModules(self.directory)

    def run_(self, arguments: Sequence[str], command: Sequence[str] = ()) -> Result:
        """Run ``twistd -n scgi arguments`` (or ``command``) in the directory.

        No ``--pidfile=``: the default ``twistd.pid`` must not be left behind.
        """
        completed = subprocess.run(
            [*(command or (*TWISTD, "-n")), "scgi", *arguments],
            cwd=self.directory,
            env=environment(str(self.directory)),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        return Result(completed)

    def assertShortFailure(self, result: Result, *fragments: str) -> list[str]:
        """Assert status 1, at most two lines on stderr holding ``fragments``.

        Also: no traceback anywhere, no help text, no "Serving" announcement, at
        most one scgi_twisted log line on standard output (the log), which repeats
        the error, and no ``twistd.pid`` left.

        :returns: the lines on standard error.
        """
        self.assertEqual(result.status, 1, result)
        lines = result.err.splitlines()
        self.assertTrue(1 <= len(lines) <= 2, result)
        for fragment in fragments:
            self.assertIn(fragment, result.err, result)
        for text in (result.out, result.err):
            self.assertNotIn("Traceback", text, result)
            self.assertNotIn("--max-body-size=", text, result)
            self.assertNotIn("Serving ", text, result)
        logged = [line for line in result.out.splitlines() if "scgi_twisted" in line]
        self.assertLessEqual(len(logged), 1, result)
        for line in logged:
            self.assertIn("#critical] " + lines[0], line, result)
        self.assertFalse((self.directory / "twistd.pid").exists(), result)
        return lines

    def test_busyPort(self) -> None:
        """A second server on a busy port: one line, what and what to do."""
        busy = socket.socket()
        self.addCleanup(busy.close)
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = self.run_(["--listen", f"tcp:{port}:interface=127.0.0.1"])
        (line,) = self.assertShortFailure(
            result, f"127.0.0.1:{port}", "already in use", "choose another --listen"
        )
        self.assertTrue(line.startswith("twistd scgi: "), line)

    def test_busyPortWorkers(self) -> None:
        """With ``--workers``, the supervisor's failed bind is the same one line."""
        busy = socket.socket()
        self.addCleanup(busy.close)
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = self.run_(
            ["--workers", "2", "--listen", f"tcp:{port}:interface=127.0.0.1"]
        )
        self.assertShortFailure(result, f"127.0.0.1:{port}", "already in use")
        self.assertNotIn("Starting 2 worker(s)", result.out)

    def test_unixSocketMissingDirectory(self) -> None:
        """A unix socket in a missing directory names the directory to create."""
        missing = self.directory / "run" / "myapp"
        result = self.run_(["--listen", f"unix:{missing}/scgi.sock:mode=660"])
        self.assertShortFailure(
            result,
            f"cannot create {missing}/scgi.sock",
            f"the directory {missing} does not exist",
            "RuntimeDirectory=",
        )
        self.assertEqual(sorted(os.listdir(self.directory)), sorted(MODULES))

    def test_usageError(self) -> None:
        """A usage error is the problem and where the help is, not the help."""
        result = self.run_(["--max-body-size", "10Q"])
        lines = self.assertShortFailure(result, "--max-body-size: '10Q' is not a size")
        self.assertEqual(
            lines,
            [
                "twistd scgi: --max-body-size: '10Q' is not a size: give a number of "
                "bytes, optionally followed by k, M or G (such as 65536, 64k or 10M)",
                "Run 'twistd scgi --help' for the options.",
            ],
        )
        self.assertEqual(result.out, "")

    def test_daemonLogFile(self) -> None:
        """A daemonizing twistd points to its log file: the error is in it."""
        busy = socket.socket()
        self.addCleanup(busy.close)
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = self.run_(
            ["--listen", f"tcp:{port}:interface=127.0.0.1"],
            command=(*TWISTD, "--logfile=twistd.log"),
        )
        self.assertEqual(result.status, 1, result)
        self.assertIn("An error has occurred", result.out + result.err)
        log = (self.directory / "twistd.log").read_text(encoding="utf-8")
        self.assertIn(f"twistd scgi: cannot listen on 127.0.0.1:{port}", log)
        self.assertNotIn("Traceback", log)
        # The daemon reports the error to the parent, which exits at once, and then
        # shuts down, removing its pid file: wait for that, within the deadline.
        pidFile = self.directory / "twistd.pid"
        waitUntil(lambda: not pidFile.exists(), f"twistd.pid removed ({result})")

    def test_unknownOption(self) -> None:
        """An unknown option is a short usage error too."""
        result = self.run_(["--port", "4000"])
        self.assertShortFailure(result, "twistd scgi: option --port not recognized")

    def test_listenHint(self) -> None:
        """``--listen 127.0.0.1:4000`` suggests the endpoint string, in two lines."""
        result = self.run_(["--listen", "127.0.0.1:4000"])
        self.assertShortFailure(result, "did you mean tcp:4000:interface=127.0.0.1?")

    def test_resourceRaisesAtImport(self) -> None:
        """A ``--resource`` module raising at import: its error, file and line."""
        result = self.run_(["--resource", "scgi_boom.root"])
        self.assertShortFailure(
            result,
            "--resource: importing 'scgi_boom.root' raised RuntimeError: the database "
            "is not configured",
            "scgi_boom.py, line 4",
        )

    def test_wsgiHints(self) -> None:
        """``--wsgi`` of a Klein-like app or a no-argument function: short hints."""
        self.assertShortFailure(
            self.run_(["--wsgi", "scgi_kinds.app"]), "use --resource scgi_kinds.app"
        )
        self.assertShortFailure(
            self.run_(["--wsgi", "scgi_kinds.noArguments"]),
            "environ and start_response",
        )

    def test_tracebackOnRequest(self) -> None:
        """``--traceback`` shows the traceback of the failure, then the message."""
        result = self.run_(["--resource", "scgi_boom.root", "--traceback"])
        self.assertEqual(result.status, 1, result)
        self.assertIn("Traceback", result.err)
        self.assertIn('scgi_boom.py", line 4', result.err)
        self.assertIn("twistd scgi: --resource: importing", result.err)
        busy = socket.socket()
        self.addCleanup(busy.close)
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = self.run_(
            ["--traceback", "--listen", f"tcp:{port}:interface=127.0.0.1"]
        )
        self.assertEqual(result.status, 1, result)
        self.assertIn("CannotListenError", result.out + result.err)
        self.assertIn("Traceback", result.out + result.err)

    def test_twist(self) -> None:
        """``twist scgi`` fails the same way, naming itself."""
        missing = self.directory / "missing"
        result = self.run_(["--listen", f"unix:{missing}/scgi.sock"], command=TWIST)
        self.assertShortFailure(
            result, f"twist scgi: cannot create {missing}/scgi.sock"
        )
        result = self.run_(["--timeout", "x"], command=TWIST)
        lines = self.assertShortFailure(result, "twist scgi: --timeout: 'x'")
        self.assertEqual(lines[-1], "Run 'twist scgi --help' for the options.")


class DocumentedMessagesTests(SynchronousTestCase):
    """The error lines ``docs/options.md`` shows are the lines the program prints."""

    def setUp(self) -> None:
        self.directory = temporaryDirectory(self)
        self.addCleanup(sys.modules.pop, "kleinapp", None)
        self.addCleanup(sys.modules.pop, "myapp", None)

    def module(self, name: str, text: str) -> None:
        """Make ``name`` importable with ``text`` as its source, afresh."""
        sys.modules.pop(name, None)
        place = self.directory / name
        place.mkdir(exist_ok=True)
        (place / f"{name}.py").write_text(textwrap.dedent(text), encoding="utf-8")
        sys.path.insert(0, str(place))
        self.addCleanup(sys.path.remove, str(place))

    def usageLine(self, *arguments: str) -> str:
        """Return the first line the command line prints for ``arguments``."""
        with self.assertRaises(usage.UsageError) as context:
            Options().parseOptions(list(arguments))
        return f"twistd scgi: {context.exception}"

    def test_documentedLines(self) -> None:
        """Each ``twistd scgi: ...`` line in the options reference is reproduced."""
        produced = [
            self.usageLine("--max-body-size", "10Q"),
            self.usageLine("--listen", "127.0.0.1:4000"),
            self.usageLine(
                "--resource", "twisted.web.resource.Resource", "--path", "."
            ),
        ]
        self.module(
            "kleinapp",
            """
            class Klein:
                def resource(self):
                    raise AssertionError("not called")
            app = Klein()
            """,
        )
        produced.append(self.usageLine("--wsgi", "kleinapp.app"))
        self.module("myapp", "def main():\n    return []\n")
        produced.append(self.usageLine("--wsgi", "myapp.main"))
        self.module(
            "myapp",
            '"""My application."""\nimport os\n\n'
            'DATABASE = os.environ["DATABASE_URL"]\n',
        )
        self.patch(os, "environ", {})
        line = self.usageLine("--resource", "myapp.root")
        produced.append(line.replace(str(self.directory / "myapp"), "/srv/app"))
        busy = CannotListenError("127.0.0.1", 4000, OSError(98, "in use"))
        produced.append(f"twistd scgi: {_listenProblem(busy)}")
        self.assertFalse(os.path.exists("/run/myapp"))
        missing = FileNotFoundError(2, "No such file", "123")
        missing.filename2 = "/run/myapp/scgi.sock.lock"
        produced.append(f"twistd scgi: {_listenProblem(missing)}")

        text = (Path(__file__).parent.parent / "docs" / "options.md").read_text(
            encoding="utf-8"
        )
        documented = [
            line for line in text.splitlines() if line.startswith("twistd scgi: ")
        ]
        self.assertEqual(sorted(documented), sorted(produced))
