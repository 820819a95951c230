r"""One worker process of ``twistd scgi --workers N``: the site, on inherited sockets.

The supervisor (:mod:`scgi_twisted._workers`) starts each worker as::

    python -m scgi_twisted._worker --worker 1 --socket 4:unix:50:unix:/run/app.sock \\
        -- <the twistd scgi options, as given>

and hands it these file descriptors:

* 0: a pipe from the supervisor, never written to.  End of file means the supervisor
  is gone: the worker then stops as on ``SIGTERM`` instead of living on orphaned.
* 1: the supervisor's own standard output (``--access-log -`` writes there).
* 2: a pipe to the supervisor, which relays every line into its log, prefixed with
  the worker's number and pid.  The worker logs there, one event per line, and its
  ``print`` and ``sys.stderr`` go through the log as under ``twistd``.
* 3: a pipe to the supervisor: ``ready`` is written once every socket is served;
  with ``--metrics``, a line ``metrics`` and the JSON of the worker's counts follows
  whenever they changed, every :data:`REPORT_INTERVAL` seconds and at exit (the
  supervisor serves their sum).
* 4 and up: the listening sockets the supervisor bound (``--socket``).

``--reactor NAME`` (the supervisor's own reactor, such as ``asyncio``) is installed
before anything imports the reactor, so that the workers run the reactor that
``twistd --reactor`` chose.  ``SIGUSR1`` (forwarded by the supervisor) reopens the
access log file.

The options are parsed by :class:`WorkerOptions`, the ``twistd scgi`` options with
``--listen`` and ``--workers`` ignored, and the site is built by
:func:`scgi_twisted._service.makeSiteService`, so a worker serves exactly what a
single ``twistd scgi`` process would.  On ``SIGTERM`` (or ``SIGINT``) the worker stops
accepting at once and lets the requests in flight finish within ``--grace-period``,
then exits with status 0.  ``SIGHUP`` is ignored: reloading is the supervisor's job.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any, TextIO

from twisted.application import service
from twisted.application.reactors import installReactor
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IListeningPort, IReadDescriptor
from twisted.internet.task import LoopingCall
from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogEvent,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    eventAsText,
    globalLogBeginner,
)
from twisted.python import usage
from twisted.python.failure import Failure
from zope.interface import implementer

from ._metrics import Metrics
from ._options import Options
from ._service import makeSiteService
from ._systemd import adoptListeningSocket

__all__ = ["FAMILIES", "FIRST_SOCKET_FD", "READY_FD", "WorkerOptions", "main"]

_log = Logger(namespace="scgi_twisted._worker")

READY_FD = 3
"""The descriptor on which a worker says ``ready``."""

FIRST_SOCKET_FD = 4
"""The descriptor of the first listening socket; the others follow in order."""

READY = b"ready\n"
"""What a worker writes on :data:`READY_FD` once it serves."""

METRICS = b"metrics "
"""The start of a line of counts on :data:`READY_FD`; the JSON of them follows."""

REPORT_INTERVAL = 0.5
"""Seconds between two reports of a worker's counts, when they changed."""

FAMILIES = {
    "inet": socket.AF_INET,
    "inet6": socket.AF_INET6,
    "unix": socket.AF_UNIX,
}
"""The address families a socket may have, by the name ``--socket`` gives them."""


@dataclass(frozen=True)
class InheritedSocket:
    """A listening socket a worker inherits.

    :ivar fd: its descriptor in the worker.
    :ivar family: its address family.
    :ivar backlog: the listen backlog (used for unix sockets).
    :ivar description: what it is, for log lines (the ``--listen`` value).
    """

    fd: int
    family: socket.AddressFamily
    backlog: int
    description: str

    def argument(self) -> str:
        """Return this socket as a ``--socket`` value."""
        name = next(key for key, value in FAMILIES.items() if value == self.family)
        return f"{self.fd}:{name}:{self.backlog}:{self.description}"

    @classmethod
    def parse(cls, value: str) -> InheritedSocket:
        """Parse a ``--socket`` value: ``FD:FAMILY:BACKLOG:DESCRIPTION``.

        :raises ValueError: if it is not one.
        """
        fd, family, backlog, description = value.split(":", 3)
        if family not in FAMILIES:
            raise ValueError(f"unknown address family {family!r}")
        return cls(int(fd), FAMILIES[family], int(backlog), description)


class WorkerOptions(Options):
    """The ``twistd scgi`` options as a worker reads them.

    ``--listen`` and ``--workers`` are accepted and ignored: the supervisor listens,
    and passes the sockets.  (``systemd:`` endpoints could not even be parsed here,
    since systemd passed their sockets to the supervisor.)
    """

    def opt_listen(self, description: str) -> None:
        """Ignored in a worker: it serves the sockets the supervisor passes."""

    def opt_workers(self, count: str) -> None:
        """Ignored in a worker."""


def parseArguments(
    arguments: Sequence[str],
) -> tuple[int, list[InheritedSocket], list[str], str | None]:
    """Split a worker's command line.

    :param arguments: ``--worker N``, any number of ``--socket SPEC``, optionally
        ``--reactor NAME``, ``--``, then the ``twistd scgi`` options.
    :returns: the worker's number, its sockets, the ``twistd scgi`` options, and the
        reactor's short name (``None``: the default reactor).
    :raises ValueError: if the command line is not of that form.
    """
    arguments = list(arguments)
    if "--" not in arguments:
        raise ValueError("expected -- before the twistd scgi options")
    split = arguments.index("--")
    own, options = arguments[:split], arguments[split + 1 :]
    number = 0
    sockets = []
    reactorName = None
    if len(own) % 2:
        raise ValueError(f"an option without a value in {own!r}")
    for name, value in zip(own[::2], own[1::2], strict=True):
        if name == "--worker":
            number = int(value)
        elif name == "--socket":
            sockets.append(InheritedSocket.parse(value))
        elif name == "--reactor":
            reactorName = value
        else:
            raise ValueError(f"unknown option {name!r}")
    return number, sockets, options, reactorName


@implementer(ILogObserver)
class _LineObserver:
    """Write each log event as one line (or a few, for a traceback), untimed.

    The supervisor adds the time and the worker's name when it relays the line.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def __call__(self, event: LogEvent) -> None:
        """Write ``event``."""
        text = eventAsText(event, includeTimestamp=False)
        try:
            self._stream.write(text + "\n")
            self._stream.flush()
        except (OSError, ValueError):  # the supervisor is gone
            pass


@implementer(IReadDescriptor)
class _SupervisorPipe:
    """Descriptor 0: a pipe the supervisor holds open while it lives."""

    def __init__(self, worker: _Worker) -> None:
        self._worker = worker

    def fileno(self) -> int:
        """Standard input."""
        return 0

    def doRead(self) -> Failure | None:
        """Read (and drop) what arrives; end of file means the supervisor is gone."""
        try:
            data = os.read(0, 1024)
        except BlockingIOError:
            return None
        except OSError:
            data = b""
        return None if data else Failure(ConnectionDone())  # type: ignore[no-untyped-call]

    def connectionLost(self, reason: Failure) -> None:
        """The supervisor went away: stop."""
        self._worker.stop("the supervisor went away")

    def logPrefix(self) -> str:
        """Name this descriptor in log lines."""
        return "supervisor"


class _InheritedPortService(service.Service):
    """Serve the site on one inherited socket; stop accepting on stop.

    :ivar socket: the socket.
    """

    _port: IListeningPort | None = None

    def __init__(self, reactor: Any, inherited: InheritedSocket, factory: Any) -> None:
        self._reactor = reactor
        self.socket = inherited
        self._factory = factory

    def startService(self) -> None:
        """Listen on the socket (a duplicate of it: the inherited one is closed)."""
        super().startService()  # type: ignore[no-untyped-call]
        inherited = self.socket
        self._port = adoptListeningSocket(
            self._reactor,
            inherited.fd,
            inherited.family,
            self._factory,
            inherited.backlog,
        )
        os.close(inherited.fd)

    def stopService(self) -> Deferred[None] | None:
        """Stop accepting (the socket's file, if any, is left to the supervisor)."""
        super().stopService()  # type: ignore[no-untyped-call]
        port, self._port = self._port, None
        if port is None:
            return None
        return port.stopListening()


class _Reporter:
    """Send the worker's counts to the supervisor when they changed.

    Writes never block: a report the pipe has no room for is dropped, and the next
    one (the counts only grow) replaces it.
    """

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._last = b""

    def report(self) -> None:
        """Write the counts, if they changed since the last report."""
        line = METRICS + json.dumps(self._metrics.snapshot()).encode() + b"\n"
        if line == self._last:
            return
        try:
            os.write(READY_FD, line)
        except BlockingIOError:
            return
        except OSError:  # run by hand, without the supervisor's pipe
            return
        self._last = line


class _Worker:
    """The running worker: says ready, and stops once on a signal or orphaning."""

    exitCode = 0
    stopping = False

    def __init__(
        self, reactor: Any, number: int, reporter: _Reporter | None = None
    ) -> None:
        self._reactor = reactor
        self.number = number
        self._reporter = reporter

    def started(self) -> None:
        """The reactor runs: take over the signals, watch the supervisor, say ready."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._signalled)
        self._reactor.addReader(_SupervisorPipe(self))
        try:
            os.write(READY_FD, READY)
            if self._reporter is None:
                os.close(READY_FD)
            else:
                os.set_blocking(READY_FD, False)
                reports = LoopingCall(self._reporter.report)
                reports.clock = self._reactor
                reports.start(REPORT_INTERVAL)
                self._reactor.addSystemEventTrigger(
                    "after", "shutdown", self._reporter.report
                )
        except OSError as error:  # run by hand, without the supervisor's pipe
            _log.warn("Could not report readiness: {error}", error=error)
        _log.info(
            "Worker {number} (pid {pid}) ready", number=self.number, pid=os.getpid()
        )

    def _signalled(self, signum: int, frame: FrameType | None) -> None:
        """Stop on ``SIGTERM`` or ``SIGINT`` (at most once, however often sent)."""
        name = signal.Signals(signum).name
        self._reactor.callFromThread(self.stop, f"received {name}")

    def stop(self, why: str) -> None:
        """Stop gracefully: stop accepting, finish the requests in flight, exit."""
        if self.stopping:
            return
        self.stopping = True
        _log.info("Worker {number} stopping ({why})", number=self.number, why=why)
        self._reactor.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Run a worker; return its exit status.

    :param argv: the arguments after the program name (``sys.argv[1:]``).
    """
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # Until the service reopens its access log on it, SIGUSR1 must not end us.
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    try:
        number, sockets, options, reactorName = parseArguments(
            sys.argv[1:] if argv is None else argv
        )
    except ValueError as error:
        sys.stderr.write(f"scgi_twisted._worker: {error}\n")
        return 2
    observer = FilteringLogObserver(
        _LineObserver(sys.__stderr__ or sys.stderr),
        [LogLevelFilterPredicate(defaultLogLevel=LogLevel.info)],
    )
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=True)

    if reactorName is not None:
        try:
            installReactor(reactorName)
        except Exception as error:
            _log.critical(
                "Worker {number} could not install the {name} reactor: {error}",
                number=number,
                name=reactorName,
                error=error,
            )
            return 2

    from twisted.internet import reactor  # noqa: PLC0415

    config = WorkerOptions()
    try:
        config.parseOptions(options)
    except usage.UsageError as error:
        if error.__cause__ is None:
            _log.critical("Bad options: {error}", error=error)
            return 2
        # The application raised while it was imported or built.
        _log.failure(
            "Worker {number} could not load the application: {error}",
            Failure(error.__cause__),  # type: ignore[no-untyped-call]
            number=number,
            error=error,
        )
        return 2
    except Exception:
        _log.failure("Worker {number} could not load the application", number=number)
        return 2
    config["listen"] = []
    config["workers"] = 0
    # The supervisor serves the metrics; a worker counts, and reports its counts.
    counted, config["metrics"] = bool(config["metrics"]), None
    served = [inherited.description for inherited in sockets] or ["no socket"]
    parent = makeSiteService(config, reactor, served)
    reporter = None
    if counted:
        parent.site.metrics = Metrics(reactor.seconds)
        reporter = _Reporter(parent.site.metrics)
    for inherited in sockets:
        port = _InheritedPortService(reactor, inherited, parent.site)
        port.setServiceParent(parent)  # type: ignore[no-untyped-call]
    worker = _Worker(reactor, number, reporter)
    try:
        parent.startService()
    except Exception:
        _log.failure("Worker {number} could not start", number=number)
        return 1
    reactor.addSystemEventTrigger("before", "shutdown", parent.stopService)
    reactor.callWhenRunning(worker.started)
    reactor.run()
    return worker.exitCode


if __name__ == "__main__":
    sys.exit(main())
