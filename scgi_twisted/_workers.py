"""``twistd scgi --workers N``: a supervisor and N worker processes sharing its sockets.

The supervisor is the ``twistd`` process itself.  It:

* binds every ``--listen`` endpoint (TCP, unix, or the sockets systemd passed for
  ``systemd:`` endpoints) while ``twistd`` still has its privileges, and never accepts
  on them itself;
* starts N workers (``python -m scgi_twisted._worker``, see that module), each given
  every listening socket as an inherited descriptor and the ``twistd scgi`` options as
  they were given, so that each serves the same site.  The kernel hands each new
  connection to one of the workers waiting on the socket;
* relays each line a worker logs into its own log, with the system
  ``worker N pid P``: one log for the whole server;
* restarts a worker that exits without being asked to, after a delay that doubles
  (from :data:`RESTART_DELAY` up to :data:`MAX_RESTART_DELAY`) while workers keep
  dying young;
* on ``SIGHUP`` reloads gracefully: it starts a new generation of N workers (which
  import the application afresh) and, once all of them serve, sends ``SIGTERM`` to
  the old generation, whose workers stop accepting and finish their requests in flight
  within ``--grace-period``.  If a new worker fails before it serves, the reload is
  abandoned and the old generation keeps serving;
* on stop (``SIGTERM``, ``SIGINT``) closes its own copies of the sockets and sends
  ``SIGTERM`` to every worker, waits for them up to the grace period plus
  :data:`STOP_MARGIN` seconds, then kills what is left with ``SIGKILL``;
* with ``--metrics``, serves ``/metrics`` itself: its own counts (restarts,
  reloads) and the sum of the counts its workers report (see
  :class:`scgi_twisted._metrics.Totals`);
* tells systemd ``READY=1`` once the first generation serves, ``RELOADING=1`` and
  ``READY=1`` around a reload, and ``STOPPING=1`` on stop, when ``$NOTIFY_SOCKET`` is
  set.

Passing the sockets (rather than ``SO_REUSEPORT``) works for unix sockets and
systemd's sockets alike, and keeps the sockets open across a reload: no connection is
refused while generations change.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

from twisted.application import service
from twisted.application.reactors import getReactorTypes
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.interfaces import IDelayedCall, IListeningPort
from twisted.internet.protocol import Factory, ProcessProtocol, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from . import _worker
from ._metrics import Metrics, Totals
from ._options import Options
from ._service import (
    SignalHook,
    StartupGuard,
    commandLine,
    serveMetricsFrom,
    servingAnnouncement,
    warnIfEverywhere,
)
from ._systemd import inheritedSafely, monotonicMicroseconds, notify
from .metrics import collectorRegistry

__all__ = [
    "MAX_RESTART_DELAY",
    "READY_TIMEOUT",
    "RESTART_DELAY",
    "STOP_MARGIN",
    "Supervisor",
    "makeSupervisorService",
]

_log = Logger()

RESTART_DELAY = 0.25
"""Seconds before restarting a worker that died, the first time."""

MAX_RESTART_DELAY = 30.0
"""The longest wait before restarting a worker that keeps dying."""

STABLE_AFTER = 10.0
"""A worker that ran this many seconds before dying is restarted at once."""

READY_TIMEOUT = 60.0
"""Seconds a reload's new workers have to serve before the reload is abandoned."""

STOP_MARGIN = 5.0
"""Seconds past the grace period that stopping workers get before ``SIGKILL``."""

MAX_LINE = 65536
"""A worker's log line longer than this is relayed in pieces."""

_UNSET_IN_WORKERS = ("NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")


class _NeverAccepts(Factory):
    """The supervisor's factory: its ports never read, so it builds nothing."""

    noisy = False

    def buildProtocol(self, addr: object) -> Protocol | None:
        """Refuse (never called: the supervisor's ports do not accept)."""
        return None

    def logPrefix(self) -> str:
        """Name the supervisor in the ports' log lines."""
        return "SCGI supervisor"


@dataclass
class _Socket:
    """A listening socket of the supervisor.

    :ivar description: the ``--listen`` value.
    :ivar port: the supervisor's port on it (not reading).
    """

    description: str
    port: Any

    def inherited(self, fd: int) -> _worker.InheritedSocket:
        """Describe this socket as a worker sees it at descriptor ``fd``."""
        family = self.port.addressFamily
        return _worker.InheritedSocket(fd, family, self.port.backlog, self.description)


def _status(reason: Failure) -> str:
    """Describe how a process ended."""
    value = reason.value
    sig = getattr(value, "signal", None)
    if sig:
        try:
            return f"killed by {signal.Signals(sig).name}"
        except ValueError:
            return f"killed by signal {sig}"
    return f"exit status {getattr(value, 'exitCode', None)}"


class _WorkerProcess(ProcessProtocol):
    """One worker, as the supervisor sees it.

    :ivar slot: its number, 1 to N.
    :ivar generation: the generation it belongs to (1, then one more per reload).
    :ivar pid: its process id, once started.
    :ivar ready: whether it said it serves.
    :ivar stopping: whether the supervisor asked it to stop.
    :ivar started: when it was started (reactor time).
    """

    pid: int | None = None
    ready = False
    stopping = False
    _reopenPending = False
    _killer: IDelayedCall | None = None

    def __init__(self, supervisor: Supervisor, slot: int, generation: int) -> None:
        self._supervisor = supervisor
        self.slot = slot
        self.generation = generation
        self.started = supervisor.reactor.seconds()
        self._partial = b""
        self._control = b""

    @property
    def name(self) -> str:
        """The worker's name in log lines."""
        return f"worker {self.slot} pid {self.pid}"

    def connectionMade(self) -> None:
        """Record the pid."""
        self.pid = self.transport.pid  # type: ignore[union-attr]

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        """Relay log lines (descriptor 2); note readiness and counts (descriptor 3)."""
        if childFD == _worker.READY_FD:
            lines = (self._control + data).split(b"\n")
            self._control = lines.pop()[-MAX_LINE:]
            for line in lines:
                self._controlLine(line)
            return
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        if len(self._partial) > MAX_LINE:
            lines.append(self._partial)
            self._partial = b""
        for line in lines:
            self._relay(line)

    def _controlLine(self, line: bytes) -> None:
        """Act on one line of descriptor 3: ``ready``, or the worker's counts."""
        if line == _worker.READY.strip():
            if not self.ready:
                self.ready = True
                if self._reopenPending:
                    self.reopenLog()
                self._supervisor._workerReady(self)
        elif line.startswith(_worker.METRICS):
            totals = self._supervisor.totals
            if totals is not None and self.pid is not None:
                try:
                    totals.update(self.pid, json.loads(line[len(_worker.METRICS) :]))
                except ValueError:
                    _log.warn("Ignored unreadable counts from {name}", name=self.name)

    def _relay(self, line: bytes) -> None:
        """Log one line of the worker's, under the worker's name."""
        text = line.decode("utf-8", "replace").rstrip("\r")
        if text:
            _log.info("{line}", line=text, log_system=self.name)

    def childConnectionLost(self, childFD: int) -> None:
        """Relay a last line that had no newline."""
        if childFD == 2 and self._partial:
            partial, self._partial = self._partial, b""
            self._relay(partial)

    def processEnded(self, reason: Failure) -> None:
        """Tell the supervisor."""
        if self._killer is not None and self._killer.active():
            self._killer.cancel()
        self._supervisor._workerEnded(self, reason)

    def signal(self, name: str | int) -> None:
        """Send a signal ("TERM", "KILL", or a number) unless the worker is gone."""
        with contextlib.suppress(ProcessExitedAlready, OSError):
            self.transport.signalProcess(name)  # type: ignore[union-attr]

    def reopenLog(self) -> None:
        """Have the worker reopen its access log (``SIGUSR1``), once it is ready.

        Until then the worker may not handle ``SIGUSR1`` yet, whose default action
        would end it: the signal is sent when it says it is ready.
        """
        self._reopenPending = not self.ready
        if self.ready:
            self.signal(signal.SIGUSR1)

    def terminate(self, deadline: float) -> None:
        """Ask the worker to stop; kill it if it still runs after ``deadline`` s."""
        if self.stopping:
            return
        self.stopping = True
        self.signal("TERM")
        self._killer = self._supervisor.reactor.callLater(deadline, self._kill)

    def _kill(self) -> None:
        """The worker outlived its deadline: ``SIGKILL``."""
        _log.warn(
            "Worker {slot} (pid {pid}) did not stop in time: killing it",
            slot=self.slot,
            pid=self.pid,
        )
        self.signal("KILL")


def _workerEnvironment() -> dict[str, str]:
    """Return the workers' environment: ours, with our import path, minus systemd's.

    The workers import the application as this process did: ``PYTHONPATH`` holds this
    process's ``sys.path`` (the current directory for an empty entry).
    """
    env = {k: v for k, v in os.environ.items() if k not in _UNSET_IN_WORKERS}
    paths: list[str] = []
    for entry in sys.path:
        path = os.path.abspath(entry or os.curdir)
        if path not in paths:
            paths.append(path)
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def reactorName(reactor: object) -> str | None:
    """Return the ``--reactor`` name of ``reactor``'s kind, for the workers.

    :returns: the short name (such as ``epoll`` or ``asyncio``) of the installable
        reactor whose module made ``reactor``, or ``None`` if none did (the workers
        then run the default reactor).
    """
    module = type(reactor).__module__
    for installable in getReactorTypes():
        if getattr(installable, "moduleName", None) == module:
            return str(installable.shortName)
    return None


def _listenNow(endpoint: Any, factory: Factory) -> IListeningPort:
    """Listen on ``endpoint``, which must do so at once; raise what it raised."""
    results: list[Any] = []
    endpoint.listen(factory).addBoth(results.append)
    if not results:
        raise RuntimeError(f"{endpoint!r} did not listen at once")
    result = results[0]
    if isinstance(result, Failure):
        result.raiseException()
    return result  # type: ignore[no-any-return]


class Supervisor(service.Service):
    """Run N workers on the sockets of every ``--listen``; see the module docstring.

    :ivar reactor: the reactor.
    :ivar count: the number of workers per generation.
    :ivar generation: the generation serving (or the first one, starting).
    :ivar workers: every worker process still running, of any generation.
    """

    def __init__(
        self,
        reactor: Any,
        listen: Sequence[str],
        count: int,
        arguments: Sequence[str],
        gracePeriod: float,
        *,
        executable: str = sys.executable,
        installSignalHandler: bool = True,
        metrics: bool = False,
    ) -> None:
        """Describe the supervisor; nothing runs before the service starts.

        :param reactor: the reactor (it must be able to spawn processes).
        :param listen: the ``--listen`` endpoint descriptions.
        :param count: how many workers to run.
        :param arguments: the ``twistd scgi`` options as given, for the workers.
        :param gracePeriod: ``--grace-period``, in seconds.
        :param executable: the Python interpreter the workers run on.
        :param installSignalHandler: whether to reload on ``SIGHUP``.
        :param metrics: whether to count (restarts, reloads) and add up the counts
            the workers report (:attr:`totals`).
        """
        self.reactor = reactor
        self.listen = list(listen)
        self.count = count
        self.arguments = list(arguments)
        self.gracePeriod = gracePeriod
        self.executable = executable
        self.installSignalHandler = installSignalHandler
        self.generation = 0
        self.workers: set[_WorkerProcess] = set()
        self._sockets: list[_Socket] = []
        self._current: dict[int, _WorkerProcess] = {}
        self._pending: dict[int, _WorkerProcess] | None = None
        self._reloadAgain = False
        self._reloadTimer: IDelayedCall | None = None
        self._restarts: dict[int, IDelayedCall] = {}
        self._failures: dict[int, int] = {}
        self._announced = False
        self._stopping = False
        self._stopped: list[Deferred[None]] = []
        self._previousHandler: Any = None
        self.reactorName = reactorName(reactor)
        self._reopenHook = SignalHook(signal.SIGUSR1, reactor, self.reopenLogs)
        self.metrics = Metrics(reactor.seconds) if metrics else None
        self.totals = None if self.metrics is None else Totals(self.metrics)

    # Starting.

    def privilegedStartService(self) -> None:
        """Bind every ``--listen`` (before ``twistd`` drops privileges)."""
        super().privilegedStartService()  # type: ignore[no-untyped-call]
        self._bind()

    def _bind(self) -> None:
        """Listen on every endpoint, without accepting: the workers accept."""
        if self._sockets:
            return
        factory = _NeverAccepts()
        for description in self.listen:
            endpoint = inheritedSafely(serverFromString(self.reactor, description))  # type: ignore[no-untyped-call]
            port = _listenNow(endpoint, factory)
            port.stopReading()  # type: ignore[attr-defined]
            self._sockets.append(_Socket(description, port))

    def startService(self) -> None:
        """Start the first generation of workers; reload on ``SIGHUP`` from now on."""
        super().startService()  # type: ignore[no-untyped-call]
        self._bind()
        if self.installSignalHandler:
            self._installHandler()
            self._reopenHook.install()
        _log.info(
            "Starting {count} worker(s) on {listen}",
            count=self.count,
            listen=", ".join(self.listen),
        )
        self.generation = 1
        self._current = {slot: self._spawn(slot) for slot in self._slots()}

    def _slots(self) -> range:
        """The workers' numbers."""
        return range(1, self.count + 1)

    def _installHandler(self) -> None:
        """Reload on ``SIGHUP`` (from the main thread only, as signals require)."""
        if threading.current_thread() is not threading.main_thread():
            return
        self._previousHandler = signal.signal(signal.SIGHUP, self._sighup)

    def reopenLogs(self) -> None:
        """``SIGUSR1``: have every worker reopen its access log (logrotate)."""
        for process in list(self.workers):
            process.reopenLog()

    def _sighup(self, signum: int, frame: FrameType | None) -> None:
        """``SIGHUP``: reload, from the reactor."""
        self.reactor.callFromThread(self.reload)

    def _spawn(self, slot: int) -> _WorkerProcess:
        """Start worker ``slot`` of the current generation."""
        process = _WorkerProcess(self, slot, self.generation)
        childFDs: dict[int, int | str] = {
            0: "w",
            1: 1,
            2: "r",
            _worker.READY_FD: "r",
        }
        arguments = [
            self.executable,
            "-m",
            _worker.__name__,
            "--worker",
            str(slot),
        ]
        if self.reactorName is not None:
            arguments += ["--reactor", self.reactorName]
        for index, sock in enumerate(self._sockets):
            fd = _worker.FIRST_SOCKET_FD + index
            childFDs[fd] = sock.port.fileno()
            arguments += ["--socket", sock.inherited(fd).argument()]
        arguments += ["--", *self.arguments]
        self.reactor.spawnProcess(
            process,
            self.executable,
            arguments,
            env=_workerEnvironment(),
            childFDs=childFDs,
        )
        self.workers.add(process)
        _log.info(
            "Started worker {slot} (pid {pid}, generation {generation})",
            slot=slot,
            pid=process.pid,
            generation=self.generation,
        )
        return process

    # Events from the workers.

    def _workerReady(self, process: _WorkerProcess) -> None:
        """A worker serves: finish a start or a reload once its generation all does."""
        if self._stopping or process.stopping:
            return
        pending = self._pending
        if pending is not None and pending.get(process.slot) is process:
            if all(worker.ready for worker in pending.values()):
                self._finishReload()
            return
        if not self._announced and all(w.ready for w in self._current.values()):
            self._announced = True
            _log.info("All {count} worker(s) serve", count=self.count)
            notify(f"READY=1\nSTATUS=Serving with {self.count} worker(s)")

    def _workerEnded(self, process: _WorkerProcess, reason: Failure) -> None:
        """A worker exited: expected, a failed reload, or a crash to recover from."""
        self.workers.discard(process)
        if self.totals is not None and process.pid is not None:
            self.totals.ended(process.pid)
        status = _status(reason)
        if process.stopping or self._stopping:
            _log.info(
                "Worker {slot} (pid {pid}, generation {generation}) stopped: {status}",
                slot=process.slot,
                pid=process.pid,
                generation=process.generation,
                status=status,
            )
        elif self._pending is not None and self._pending.get(process.slot) is process:
            self._abandonReload(
                f"worker {process.slot} (pid {process.pid}) of the new generation "
                f"ended before it served: {status}"
            )
        elif self._current.get(process.slot) is process:
            del self._current[process.slot]
            self._scheduleRestart(process, status)
        if self._stopping and not self.workers:
            waiting, self._stopped = self._stopped, []
            for d in waiting:
                d.callback(None)

    def _scheduleRestart(self, process: _WorkerProcess, status: str) -> None:
        """Restart a worker that died, later if workers keep dying young."""
        slot = process.slot
        lived = self.reactor.seconds() - process.started
        failures = 0 if lived >= STABLE_AFTER else self._failures.get(slot, 0) + 1
        self._failures[slot] = failures
        delay = (
            RESTART_DELAY
            if failures <= 1
            else min(RESTART_DELAY * 2 ** (failures - 1), MAX_RESTART_DELAY)
        )
        _log.warn(
            "Worker {slot} (pid {pid}) exited unexpectedly ({status}); restarting it "
            "in {delay:g} s",
            slot=slot,
            pid=process.pid,
            status=status,
            delay=delay,
        )
        self._restarts[slot] = self.reactor.callLater(delay, self._restart, slot)

    def _restart(self, slot: int) -> None:
        """Start a replacement for worker ``slot``."""
        self._restarts.pop(slot, None)
        if self._stopping or slot in self._current:
            return
        if self.metrics is not None:
            self.metrics.worker_restarts += 1
        self._current[slot] = self._spawn(slot)

    # Reloading.

    def reload(self) -> None:
        """Start a new generation; retire the old one once the new one serves."""
        if self._stopping:
            return
        if self._pending is not None:
            _log.info("Reload requested during a reload: reloading again after it")
            self._reloadAgain = True
            return
        notify(
            f"RELOADING=1\nMONOTONIC_USEC={monotonicMicroseconds()}\n"
            "STATUS=Reloading: starting new workers"
        )
        self.generation += 1
        _log.info(
            "Reloading: starting generation {generation} ({count} worker(s))",
            generation=self.generation,
            count=self.count,
        )
        for call in self._restarts.values():
            call.cancel()
        self._restarts.clear()
        self._pending = {slot: self._spawn(slot) for slot in self._slots()}
        self._reloadTimer = self.reactor.callLater(
            READY_TIMEOUT,
            self._abandonReload,
            f"the new workers did not all serve within {READY_TIMEOUT:g} s",
        )

    def _finishReload(self) -> None:
        """The new generation serves: make it current and retire the old one."""
        pending, self._pending = self._pending, None
        assert pending is not None
        self._cancelReloadTimer()
        old, self._current = self._current, pending
        self._failures.clear()
        if self.metrics is not None:
            self.metrics.worker_reloads += 1
        for process in old.values():
            process.terminate(self.gracePeriod + STOP_MARGIN)
        self._announced = True
        _log.info(
            "Reloaded: generation {generation} serves; the old workers finish their "
            "requests in flight",
            generation=self.generation,
        )
        notify(f"READY=1\nSTATUS=Serving with {self.count} worker(s), reloaded")
        self._reloadLater()

    def _abandonReload(self, why: str) -> None:
        """Stop the new generation and keep the old one serving."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        self._cancelReloadTimer()
        _log.error("Reload failed, {why}: the old workers keep serving", why=why)
        for process in pending.values():
            process.terminate(self.gracePeriod + STOP_MARGIN)
        for slot in self._slots():
            if slot not in self._current and slot not in self._restarts:
                self._restarts[slot] = self.reactor.callLater(0, self._restart, slot)
        notify("READY=1\nSTATUS=Reload failed: the old workers keep serving")
        self._reloadLater()

    def _cancelReloadTimer(self) -> None:
        """Cancel the reload's deadline."""
        timer, self._reloadTimer = self._reloadTimer, None
        if timer is not None and timer.active():
            timer.cancel()

    def _reloadLater(self) -> None:
        """Run the reload that was asked for during the last one."""
        if self._reloadAgain:
            self._reloadAgain = False
            self.reactor.callLater(0, self.reload)

    # Stopping.

    def stopService(self) -> Deferred[Any]:
        """Close our sockets, stop every worker gracefully, wait for them all."""
        super().stopService()  # type: ignore[no-untyped-call]
        self._stopping = True
        notify("STOPPING=1\nSTATUS=Stopping: workers finish their requests")
        if self._previousHandler is not None:
            signal.signal(signal.SIGHUP, self._previousHandler)
            self._previousHandler = None
        self._reopenHook.uninstall()
        for call in self._restarts.values():
            call.cancel()
        self._restarts.clear()
        self._cancelReloadTimer()
        self._pending = None
        closing: list[Deferred[Any]] = []
        for sock in self._sockets:
            stopped = sock.port.stopListening()
            if stopped is not None:
                closing.append(stopped)
        self._sockets = []
        if self.workers:
            _log.info(
                "Stopping {count} worker(s): up to {grace:g} s for requests in flight",
                count=len(self.workers),
                grace=self.gracePeriod,
            )
            workersGone: Deferred[None] = Deferred()
            self._stopped.append(workersGone)
            closing.append(workersGone)
            for process in list(self.workers):
                process.terminate(self.gracePeriod + STOP_MARGIN)
        else:
            closing.append(succeed(None))
        return DeferredList(closing)


def makeSupervisorService(config: Options, reactor: Any) -> StartupGuard:
    """Build the service of ``twistd scgi --workers N``.

    :param config: the parsed :class:`~scgi_twisted._options.Options`; its ``arguments``
        (the options as given) are passed to every worker.
    :param reactor: the reactor.
    :returns: a service holding the :class:`Supervisor`.
    """
    arguments = getattr(config, "arguments", None)
    if arguments is None:
        raise ValueError(
            "--workers needs the options as given: parse them with parseOptions()"
        )
    for description in config["listen"]:
        endpoint = serverFromString(reactor, description)  # type: ignore[no-untyped-call]
        warnIfEverywhere(_log, description, endpoint, config)
    parent = StartupGuard()
    supervisor = Supervisor(
        reactor,
        config["listen"],
        config["workers"],
        arguments,
        config["grace-period"],
        metrics=bool(config["metrics"]),
    )
    supervisor.setServiceParent(parent)  # type: ignore[no-untyped-call]
    if supervisor.totals is not None:
        registry = collectorRegistry(supervisor.totals.snapshot, workers=True)
        metrics = serveMetricsFrom(registry, config["metrics"], reactor)
        metrics.setServiceParent(parent)  # type: ignore[no-untyped-call]
    # Logged once the supervisor has bound every --listen, not before.
    serving = servingAnnouncement(config, config["listen"])
    parent.announcement = f"{serving} with {config['workers']} worker processes"
    parent.command = commandLine(config)
    return parent
