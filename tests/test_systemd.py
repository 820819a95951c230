"""Tests for systemd readiness and socket activation (:mod:`scgi_twisted._systemd`).

Strategy:

* :class:`NotifyTests` sends real ``sd_notify`` datagrams to a unix datagram socket the
  test binds (a path, and a name in the abstract namespace), in process.
* :class:`ReadinessTests` runs ``twistd -n scgi`` (one process, and ``--workers 2``)
  with ``NOTIFY_SOCKET`` naming such a socket: ``READY=1`` must come once the socket
  serves (a request sent right after it succeeds), ``RELOADING=1`` then ``READY=1``
  around a ``SIGHUP`` reload, and ``STOPPING=1`` on ``SIGTERM``.
* :class:`SocketActivationTests` plays systemd: it creates a listening unix socket,
  passes it as descriptor 3 with ``LISTEN_FDS``, ``LISTEN_FDNAMES`` and ``LISTEN_PID``
  (set to the server's own pid by a launcher that then execs the server), and
  checks that ``--listen systemd:domain=UNIX:index=0`` serves on it, keeps the socket
  file's mode, and leaves the socket file and the listening socket intact when it
  stops: a request sent while no server runs waits in the backlog and is answered by
  the next server started on the same socket.

Nothing here skips.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from scgi_twisted import _systemd

from .support.frontend_cases import shownFiles
from .support.processes import (
    STARTED,
    STOPPED,
    TWISTD,
    WORKERS_APPLICATION,
    Server,
    Supervised,
    environment,
    isWorker,
    request,
    temporaryDirectory,
)
from .support.scgi import BASE, Response, buildRequest, replace
from .support.sockets import Address

DOCS = Path(__file__).resolve().parent.parent / "docs"
"""The documentation."""

DEADLINE = 30.0
"""Seconds to wait for anything a test waits for."""


class Notifications:
    """A unix datagram socket standing in for systemd's notification socket.

    :ivar name: the ``NOTIFY_SOCKET`` value naming it.
    :ivar messages: every message received so far, in order.
    """

    def __init__(self, case: SynchronousTestCase, *, abstract: bool = False) -> None:
        """Bind the socket (in the abstract namespace if ``abstract``)."""
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        case.addCleanup(self._sock.close)
        if abstract:
            name = f"scgi-test-{uuid.uuid4().hex}"
            self._sock.bind(b"\0" + name.encode())
            self.name = "@" + name
        else:
            path = temporaryDirectory(case) / "notify"
            self._sock.bind(str(path))
            self.name = str(path)
        self.messages: list[str] = []

    def receive(self, timeout: float = DEADLINE) -> str | None:
        """Return the next message, or ``None`` if none comes in ``timeout`` s."""
        self._sock.settimeout(timeout)
        try:
            data = self._sock.recv(65536)
        except TimeoutError:
            return None
        message = data.decode("utf-8")
        self.messages.append(message)
        return message

    def expect(self, assignment: str) -> str:
        """Wait for a message holding the line ``assignment``, and return it."""
        deadline = time.monotonic() + DEADLINE
        while True:
            message = self.receive(max(0.01, deadline - time.monotonic()))
            if message is not None and assignment in message.split("\n"):
                return message
            if time.monotonic() > deadline:
                raise AssertionError(f"no {assignment!r} in time: {self.messages}")

    def count(self, assignment: str) -> int:
        """Return how many of the messages received hold ``assignment``."""
        return sum(assignment in m.split("\n") for m in self.messages)


class NotifyTests(SynchronousTestCase):
    """:func:`notify` sends ``sd_notify`` datagrams, and only when asked to."""

    def test_path(self) -> None:
        """A message goes, as one datagram, to the socket at ``$NOTIFY_SOCKET``."""
        listener = Notifications(self)
        sent = _systemd.notify(
            "READY=1\nSTATUS=Serving", {"NOTIFY_SOCKET": listener.name}
        )
        self.assertTrue(sent)
        self.assertEqual(listener.receive(), "READY=1\nSTATUS=Serving")

    def test_abstract(self) -> None:
        """``@name`` is ``name`` in the abstract namespace."""
        listener = Notifications(self, abstract=True)
        self.assertTrue(listener.name.startswith("@"))
        self.assertTrue(_systemd.notify("STOPPING=1", {"NOTIFY_SOCKET": listener.name}))
        self.assertEqual(listener.receive(), "STOPPING=1")

    def test_unset(self) -> None:
        """Without ``NOTIFY_SOCKET`` (or with it empty) nothing is sent."""
        self.assertFalse(_systemd.notify("READY=1", {}))
        self.assertFalse(_systemd.notify("READY=1", {"NOTIFY_SOCKET": ""}))

    def test_failures(self) -> None:
        """A relative name or a missing socket is logged, never raised."""
        missing = str(temporaryDirectory(self) / "nothing-here")
        for name in ("relative/socket", missing):
            self.assertFalse(_systemd.notify("READY=1", {"NOTIFY_SOCKET": name}))
        self.assertEqual(len(self.flushLoggedErrors()), 0)

    def test_defaultEnvironment(self) -> None:
        """By default ``NOTIFY_SOCKET`` is read from ``os.environ``."""
        listener = Notifications(self)
        self.patch(os, "environ", {**os.environ, "NOTIFY_SOCKET": listener.name})
        self.assertTrue(_systemd.notify("READY=1"))
        self.assertEqual(listener.receive(), "READY=1")

    def test_service(self) -> None:
        """:class:`NotifyService` says READY=1 (with MAINPID) and STOPPING=1."""
        listener = Notifications(self)
        self.patch(os, "environ", {**os.environ, "NOTIFY_SOCKET": listener.name})
        notifier = _systemd.NotifyService("Serving on x")
        notifier.startService()
        self.assertEqual(
            listener.receive(), f"READY=1\nMAINPID={os.getpid()}\nSTATUS=Serving on x"
        )
        notifier.stopService()
        message = listener.receive()
        assert message is not None
        self.assertEqual(message.split("\n")[0], "STOPPING=1")

    def test_monotonic(self) -> None:
        """``MONOTONIC_USEC`` is ``CLOCK_MONOTONIC`` in microseconds."""
        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        value = _systemd.monotonicMicroseconds()
        after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.assertTrue(before <= value <= after, (before, value, after))


def _notifyEnvironment(directory: Path, listener: Notifications) -> dict[str, str]:
    """The environment of a server that should notify ``listener``."""
    env = environment(str(directory))
    env["NOTIFY_SOCKET"] = listener.name
    return env


class ReadinessTests(SynchronousTestCase):
    """``twistd scgi`` tells systemd when it serves, reloads and stops."""

    def test_singleProcess(self) -> None:
        """One process: READY=1 once the socket serves; STOPPING=1 on SIGTERM."""
        listener = Notifications(self, abstract=True)
        directory = temporaryDirectory(self)
        sock = directory / "scgi.sock"
        server = Server(
            self,
            directory,
            [*TWISTD, "-n", "--pidfile=", "scgi", "--listen", f"unix:{sock}"],
            env=_notifyEnvironment(directory, listener),
        )
        ready = listener.expect("READY=1")
        self.assertIn(f"MAINPID={server.process.pid}", ready.split("\n"))
        self.assertEqual(request((socket.AF_UNIX, str(sock))).status, b"200 OK")
        server.process.send_signal(signal.SIGTERM)
        listener.expect("STOPPING=1")
        self.assertIn(server.process.wait(DEADLINE), STOPPED, server.output())
        self.assertEqual(listener.count("READY=1"), 1)

    def test_workers(self) -> None:
        """Workers: READY=1 once all serve, RELOADING=1/READY=1, then STOPPING=1.

        Only the supervisor notifies: the workers are not given ``NOTIFY_SOCKET``.
        """
        listener = Notifications(self)
        directory = temporaryDirectory(self)
        supervised = Supervised(self, env=_notifyEnvironment(directory, listener))
        ready = listener.expect("READY=1")
        self.assertIn("All 2 worker(s) serve", supervised.output())
        self.assertIn("STATUS=Serving with 2 worker(s)", ready.split("\n"))
        self.assertEqual(supervised.get("/").status, b"200 OK")
        os.kill(supervised.pid, signal.SIGHUP)
        reloading = listener.expect("RELOADING=1")
        self.assertTrue(
            any(line.startswith("MONOTONIC_USEC=") for line in reloading.split("\n"))
        )
        listener.expect("READY=1")
        self.assertIn("Reloaded: generation 2 serves", supervised.output())
        supervised.server.process.send_signal(signal.SIGTERM)
        listener.expect("STOPPING=1")
        self.assertIn(supervised.server.process.wait(DEADLINE), STOPPED)
        self.assertEqual(listener.count("READY=1"), 2, listener.messages)
        self.assertEqual(listener.count("STOPPING=1"), 1, listener.messages)


def killWorkers(server: Server) -> None:
    """Kill every worker a supervisor started that still runs (by pid)."""
    for _, pid, _ in STARTED.findall(server.output()):
        if isWorker(int(pid)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)


_LAUNCHER = (
    "import os, sys; os.dup2(int(os.environ.pop('SCGI_TEST_FD')), 3); "
    "os.environ['LISTEN_PID'] = str(os.getpid()); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
)
"""Put the socket at descriptor 3 and set ``LISTEN_PID`` to our pid, as systemd does,
then become the server (``exec`` keeps the pid)."""


class _ActivatedSocket(SynchronousTestCase):
    """A listening unix socket made and passed on as systemd does (no tests)."""

    def setUp(self) -> None:
        """Create the socket as systemd would for ``SocketMode=0600``."""
        self.directory = temporaryDirectory(self)
        (self.directory / "scgi_workers_app.py").write_text(WORKERS_APPLICATION)
        self.path = self.directory / "activated.sock"
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(self.listener.close)
        self.listener.bind(str(self.path))
        os.chmod(self.path, 0o600)
        self.listener.listen(64)
        self.address: Address = (socket.AF_UNIX, str(self.path))

    def activate(self, *arguments: str) -> Server:
        """Start ``twistd -n scgi`` with the socket passed the systemd way."""
        return self.launch(
            [
                *TWISTD,
                "-n",
                "--pidfile=",
                "scgi",
                "--listen",
                "systemd:domain=UNIX:index=0",
                "--resource",
                "scgi_workers_app.root",
                *arguments,
            ]
        )

    def launch(self, command: list[str], **extra: str) -> Server:
        """Run ``command`` (a Python one) as systemd would, with the socket passed.

        :param extra: more environment variables.
        """
        env = environment(str(self.directory))
        env.update(
            LISTEN_FDS="1",
            LISTEN_FDNAMES="scgi",
            SCGI_TEST_FD=str(self.listener.fileno()),
            **extra,
        )
        self.assertEqual(command[0], sys.executable)
        server = Server(
            self,
            self.directory,
            [sys.executable, "-c", _LAUNCHER, *command[1:]],
            passFds=[self.listener.fileno()],
            env=env,
        )
        self.addCleanup(killWorkers, server)
        return server

    def assertSurvivesRestart(self, *arguments: str) -> None:
        """Serve, stop, queue a request, serve it from a new server: nothing lost.

        The socket keeps its mode while served and its file after the server stops,
        and still listens: a connection made while no server runs is accepted by the
        next one.
        """
        first = self.activate(*arguments)
        first.waitFor("SCGISite starting on")
        if arguments:
            first.waitFor(r"All \d worker\(s\) serve")
        response = request(self.address, b"/")
        self.assertEqual(response.status, b"200 OK")
        firstPid = int(response.body)
        self.assertEqual(self.path.stat().st_mode & 0o777, 0o600)
        self.assertIn(first.stop(), STOPPED, first.output())
        self.assertTrue(self.path.exists(), "the server removed systemd's socket")
        self.assertNotIn("Traceback", first.output())

        queued: list[Response | BaseException] = []

        def send() -> None:
            try:
                data = buildRequest(replace(BASE, REQUEST_URI=b"/queued"))
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    sock.settimeout(DEADLINE)
                    sock.connect(str(self.path))
                    sock.sendall(data)
                    chunks = []
                    while chunk := sock.recv(65536):
                        chunks.append(chunk)
                queued.append(Response(b"".join(chunks)))
            except BaseException as error:
                queued.append(error)

        thread = threading.Thread(target=send, daemon=True)
        thread.start()
        time.sleep(0.5)
        self.assertEqual(queued, [], "answered while no server ran")
        second = self.activate(*arguments)
        thread.join(DEADLINE)
        (answer,) = queued
        assert isinstance(answer, Response), answer
        self.assertEqual(answer.status, b"200 OK")
        self.assertNotEqual(int(answer.body), firstPid)
        self.assertIn(second.stop(), STOPPED, second.output())
        self.assertTrue(self.path.exists())


class SocketActivationTests(_ActivatedSocket):
    """``--listen systemd:domain=UNIX:index=0`` serves a socket systemd passed."""

    def test_singleProcess(self) -> None:
        """One process serves the passed socket and leaves it intact on stop."""
        self.assertSurvivesRestart()

    def test_workers(self) -> None:
        """The supervisor passes systemd's socket on to its workers, intact."""
        self.assertSurvivesRestart("--workers", "2")


class DocumentedUnitsTests(_ActivatedSocket):
    """The unit files ``docs/scaling.md`` shows work as they stand."""

    def test_workersService(self) -> None:
        """``scgi-workers.service``'s ``ExecStart`` and ``ExecReload`` work.

        Run as systemd would run them (the socket passed as descriptor 3, a
        ``NOTIFY_SOCKET``, ``myapp.root`` importable), the supervisor reports
        ``READY=1`` once its workers serve, reloads on the ``ExecReload`` command,
        and stops on ``SIGTERM`` well within ``TimeoutStopSec``, leaving systemd's
        socket file in place.
        """
        shown = {path.resolve(): text for path, text in shownFiles("scaling.md")}
        for unit in ("scgi-workers.service", "scgi-workers.socket"):
            path = (DOCS / "deploy" / unit).resolve()
            self.assertEqual(shown.get(path), path.read_text(encoding="utf-8"), unit)
        unit = (DOCS / "deploy" / "scgi-workers.service").read_text(encoding="utf-8")
        settings = dict(
            line.split("=", 1)
            for line in unit.splitlines()
            if line[:1].isalpha() and "=" in line
        )
        self.assertEqual(settings["Type"], "notify")
        self.assertEqual(settings["KillMode"], "mixed")
        argv = shlex.split(settings["ExecStart"])
        self.assertEqual(Path(argv[0]).name, "twistd")
        workers = int(argv[argv.index("--workers") + 1])
        (self.directory / "myapp.py").write_text(WORKERS_APPLICATION)
        listener = Notifications(self)
        server = self.launch([*TWISTD, *argv[1:]], NOTIFY_SOCKET=listener.name)
        ready = listener.expect("READY=1")
        self.assertIn(f"STATUS=Serving with {workers} worker(s)", ready.split("\n"))
        self.assertEqual(request(self.address, b"/").status, b"200 OK")
        reload = shlex.split(
            settings["ExecReload"].replace("$MAINPID", str(server.process.pid))
        )
        subprocess.run(reload, check=True, timeout=DEADLINE)
        listener.expect("RELOADING=1")
        listener.expect("READY=1")
        self.assertEqual(request(self.address, b"/").status, b"200 OK")
        started = time.monotonic()
        self.assertIn(server.stop(), STOPPED, server.output())
        self.assertLess(time.monotonic() - started, float(settings["TimeoutStopSec"]))
        listener.expect("STOPPING=1")
        self.assertTrue(self.path.exists())
        self.assertNotIn("Traceback", server.output())
