"""What ``twistd scgi`` serves: the site, the single-process service, the messages.

:func:`makeSiteService` builds one :class:`SCGIService` (the site on every
``--listen``) from parsed :class:`~scgi_twisted._options.Options`; the supervisor of
``--workers`` (:mod:`scgi_twisted._workers`) and each of its workers
(:mod:`scgi_twisted._worker`) use the same pieces: the description of the root, the
announcement, the warning about listening on every interface, and the start-up errors
(:class:`StartupError`, told in one line on the command line).
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType, TracebackType
from typing import Any

from twisted.application import service, strports
from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IReactorThreads
from twisted.logger import Logger
from twisted.web.resource import IResource
from twisted.web.static import File
from twisted.web.wsgi import WSGIResource

from ._accesslog import AccessLog, FileSink, LoggerSink, Sink, StreamSink
from ._defaultpage import DefaultPage
from ._internals import serverEndpointAddress
from ._options import ACCESS_LOG_NONE, Options, commandName
from ._site import SCGISite
from ._stopping import RecordingEndpoint, acceptBacklog
from ._systemd import InheritedSocketEndpoint, NotifyService, inheritedSafely
from .metrics import enableMetrics, metricsSite

__all__ = [
    "SCGIService",
    "SignalHook",
    "StartupError",
    "StartupGuard",
    "commandLine",
    "describeRoot",
    "makeSiteService",
    "servingAnnouncement",
    "warnIfEverywhere",
]

# The namespace is the command's: users read "[scgi_twisted.tap#info] Serving ..."
# (docs/quickstart.md) whichever module builds the service.
_log = Logger(namespace="scgi_twisted.tap")

LISTENS_EVERYWHERE = (
    "{listen} listens on every interface: SCGI trusts REMOTE_ADDR and HTTPS from any "
    "peer that connects. Give an interface= or --allow."
)
"""The warning for a ``--listen`` on every interface without ``--allow`` (a log
format: ``listen`` is the endpoint description)."""


def _listensEverywhere(endpoint: object, description: str) -> bool:
    """Return whether ``endpoint`` is a TCP (or TLS) endpoint on every interface."""
    address = serverEndpointAddress(endpoint, description)
    return address is not None and address[0] in ("", "0.0.0.0", "::", "::0")


def warnIfEverywhere(
    log: Logger, description: str, endpoint: object, config: Options
) -> None:
    """Warn (on ``log``) if ``endpoint`` listens on every interface without --allow.

    :param log: the logger of the process that listens (the single process, or the
        supervisor).
    :param description: the ``--listen`` value ``endpoint`` was parsed from.
    :param endpoint: the server endpoint.
    :param config: the parsed options.
    """
    if _listensEverywhere(endpoint, description) and not config["allow"]:
        log.warn(LISTENS_EVERYWHERE, listen=description)


_ROOTS = {
    "resource": "the resource",
    "wsgi": "the WSGI application",
    "path": "the directory",
}


def describeRoot(config: Options) -> str:
    """Describe what the options serve, such as ``the resource myapp.root``."""
    kind = config["root"]
    if kind in _ROOTS:
        return f"{_ROOTS[kind]} {config['root-name']}"
    return "the built-in page"


def servingAnnouncement(config: Options, served: Sequence[str]) -> str:
    """Return the line logged once every listener listens.

    :param config: the parsed options.
    :param served: where the site is served (``--listen`` values).
    """
    return f"Serving {describeRoot(config)} over SCGI on {', '.join(served)}"


class StartupError(Exception):
    """``twistd scgi`` could not start; the message says what failed and what to do.

    On the command line (without ``--traceback``) only the message is printed, on
    standard error, and the process ends with status 1.
    """


def _listenProblem(error: BaseException) -> str:
    """Describe why listening failed, and what to do about it."""
    if isinstance(error, CannotListenError):
        where = f"{error.interface or '*'}:{error.port}"
        socketError = error.socketError
        code = getattr(socketError, "errno", None)
        if code == errno.EADDRINUSE:
            return (
                f"cannot listen on {where}: the address is already in use (is another "
                "server, perhaps another twistd scgi, running?): stop it or choose "
                "another --listen"
            )
        if code == errno.EACCES:
            return (
                f"cannot listen on {where}: permission denied (ports below 1024 need "
                "root): choose a port above 1024 with --listen"
            )
        if code == errno.EADDRNOTAVAIL:
            return (
                f"cannot listen on {where}: no interface of this machine has that "
                "address: give one of its addresses in interface="
            )
        return f"cannot listen on {where}: {socketError}"
    if isinstance(error, OSError) and error.filename:
        # A unix socket's lock is a symbolic link to the pid: the path is filename2.
        filename = os.fsdecode(error.filename2 or error.filename)
        if filename.endswith(".lock"):
            filename = filename[: -len(".lock")]
        directory = os.path.dirname(filename) or "."
        if isinstance(error, FileNotFoundError) and not os.path.isdir(directory):
            return (
                f"cannot create {filename}: the directory {directory} does not exist: "
                "create it (with RuntimeDirectory= in a systemd unit, or mkdir -p) or "
                "choose another path"
            )
        if isinstance(error, PermissionError):
            return (
                f"cannot create {filename}: permission denied: run as a user who may "
                f"write to {directory}, or choose another path"
            )
        return f"cannot create {filename}: {error.strerror}"
    return f"{type(error).__name__}: {error}"


def _quietStartupErrors(
    hook: Callable[[type[BaseException], BaseException, TracebackType | None], Any],
) -> Callable[[type[BaseException], BaseException, TracebackType | None], Any]:
    """Wrap ``sys.excepthook`` to print a :class:`StartupError` as its message alone.

    ``twistd`` and ``twist`` let an exception raised while starting the services end
    the process (``twistd`` removes its pid file on the way); only the last step,
    printing it, is ours to change.
    """

    def excepthook(
        kind: type[BaseException],
        value: BaseException,
        tb: TracebackType | None,
    ) -> Any:
        if isinstance(value, StartupError):
            stream = sys.__stderr__
            if stream is not None:
                stream.write(f"{value}\n")
                stream.flush()
            return None
        return hook(kind, value, tb)

    return excepthook


class _CommandLineSite(SCGISite):
    """The site of ``twistd scgi``: an :class:`SCGISite` with a batched access log.

    :ivar accessLog: the open access log, while the site is started (``None`` with
        ``--access-log none``, and while stopped).
    :ivar openSink: opens where the access log writes, when the site starts
        (``None``: no access log).
    """

    accessLog: AccessLog | None = None
    openSink: Callable[[], Sink] | None = None

    def startFactory(self) -> None:
        """Open the access log."""
        super().startFactory()
        if self.openSink is not None and self.accessLog is None:
            self.accessLog = AccessLog(self.openSink(), self.reactor)

    def stopFactory(self) -> None:
        """Write what the access log holds, and close it."""
        accessLog, self.accessLog = self.accessLog, None
        if accessLog is not None:
            accessLog.close()
        super().stopFactory()

    def log(self, request: Any) -> None:
        """Buffer the request's access-log line."""
        accessLog = self.accessLog
        if accessLog is not None:
            accessLog.request(request)

    def logRefused(self, channel: Any, status: int, length: int) -> None:
        """Log a request the channel answered itself (400, 408, 413, 431)."""
        accessLog = self.accessLog
        if accessLog is not None and 400 <= status < 500:
            accessLog.refused(channel, status, length)

    def reopenLog(self) -> None:
        """Reopen the access log file (``SIGUSR1``, after log rotation)."""
        if self.accessLog is not None:
            self.accessLog.reopen()

    def logPrefix(self) -> str:
        """Name this factory as the site class it is, in log lines."""
        return "SCGISite"


def _accessLogSink(accessLog: str | None) -> Callable[[], Sink] | None:
    """Return what opens the sink ``--access-log`` names (``None`` for ``none``).

    :param accessLog: the option's value: ``None`` (the ``twistd`` log), ``-``
        (standard output), ``none``, or an absolute path.
    """
    if accessLog == ACCESS_LOG_NONE:
        return None
    if accessLog is None:
        return LoggerSink
    if accessLog == "-":
        return lambda: StreamSink(sys.__stdout__.fileno() if sys.__stdout__ else 1)
    path = accessLog
    return lambda: FileSink(path)


def _nothing() -> None:
    """Do nothing (a site without an access log to reopen)."""


def _threadPool(reactor: object) -> Any:
    """Return the reactor's thread pool, for WSGI applications."""
    if not IReactorThreads.providedBy(reactor):
        raise TypeError(f"{reactor!r} has no thread pool to run a WSGI application")
    return reactor.getThreadPool()


def _root(config: Options, reactor: object) -> IResource:
    """Return the root resource the options describe."""
    kind = config["root"]
    if kind == "resource":
        resource: IResource = config["resource"]
        return resource
    if kind == "wsgi":
        return WSGIResource(  # type: ignore[no-untyped-call]
            reactor, _threadPool(reactor), config["wsgi"]
        )
    if kind == "path":
        return File(config["path"])
    return DefaultPage()


class SignalHook:
    """Run a callback in the reactor on a signal, after any handler already set.

    ``twistd`` itself rotates its own log file on ``SIGUSR1`` (when it writes one):
    that handler still runs, before the callback is scheduled.

    :param signum: the signal, such as ``signal.SIGUSR1``.
    :param reactor: the reactor the callback runs in.
    :param callback: what to do, called with no arguments.
    """

    def __init__(self, signum: int, reactor: Any, callback: Callable[[], None]) -> None:
        """Describe the hook; :meth:`install` sets it."""
        self.signum = signum
        self._reactor = reactor
        self._callback = callback
        self._previous: Any = None
        self.installed = False

    def install(self) -> None:
        """Set the handler (only from the main thread, where signals are handled)."""
        if self.installed or threading.current_thread() is not threading.main_thread():
            return
        self._previous = signal.signal(self.signum, self._handle)
        self.installed = True

    def uninstall(self) -> None:
        """Put the previous handler back."""
        if self.installed:
            self.installed = False
            signal.signal(self.signum, self._previous)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        """Call the previous handler, then schedule the callback in the reactor."""
        previous = self._previous
        if callable(previous):
            previous(signum, frame)
        self._reactor.callFromThread(self._callback)


class StartupGuard(service.MultiService):
    """Services whose start-up errors are told in one line on the command line.

    :ivar announcement: logged once every child has started (nothing if empty).
    :ivar command: the command name for start-up errors printed on the command line,
        such as ``twistd scgi``; ``None`` raises them unchanged (from Python, or with
        ``--traceback``).
    """

    announcement = ""
    command: str | None = None

    def __init__(self) -> None:
        """Create the service, with no children yet."""
        super().__init__()  # type: ignore[no-untyped-call]

    def privilegedStartService(self) -> None:
        """Listen (``twistd`` listens before it drops privileges)."""
        try:
            super().privilegedStartService()  # type: ignore[no-untyped-call]
        except Exception as error:
            raise self._startupError(error) from error

    def startService(self) -> None:
        """Listen if not yet listening, then log the announcement."""
        try:
            super().startService()  # type: ignore[no-untyped-call]
        except Exception as error:
            raise self._startupError(error) from error
        if self.announcement:
            _log.info("{announcement}", announcement=self.announcement)

    def _startupError(self, error: Exception) -> Exception:
        """Return the error to raise when listening failed with ``error``."""
        if isinstance(error, StartupError) or self.command is None:
            return error
        message = f"{self.command}: {_listenProblem(error)}"
        # Into the twistd log as well: a daemonizing twistd sends its user there.
        _log.critical("{message}", message=message)
        sys.excepthook = _quietStartupErrors(sys.excepthook)
        return StartupError(message)


class SCGIService(StartupGuard):
    """The listeners of one site, stopped gracefully.

    On stop (SIGTERM, SIGINT) every listener stops accepting at once, after taking
    the connections the kernel had already queued for it; requests in flight then
    have the grace period to finish before their connections are closed.

    :ivar site: the site whose connections are drained.
    :ivar gracePeriod: the grace period, in seconds.
    :ivar endpoints: the endpoints whose ports' backlogs are taken on stop.
    """

    def __init__(self, site: SCGISite, gracePeriod: float) -> None:
        """Create the service for ``site`` with a grace period in seconds."""
        super().__init__()
        self.site = site
        self.gracePeriod = gracePeriod
        self.endpoints: list[RecordingEndpoint] = []
        self.reopenHook = SignalHook(
            signal.SIGUSR1, site.reactor, getattr(site, "reopenLog", _nothing)
        )

    def startService(self) -> None:
        """Listen, then reopen the access log on ``SIGUSR1`` from now on."""
        super().startService()
        self.reopenHook.install()

    def _acceptBacklogs(self) -> None:
        """Take every connection queued on our ports; new ones are refused."""
        site = self.site
        taken = 0
        for endpoint in self.endpoints:
            for port in endpoint.ports:
                taken += acceptBacklog(port, lambda: site.connections)
        if taken:
            _log.info(
                "Took {count} queued connection(s) before closing the listeners",
                count=taken,
            )

    def stopService(self) -> Deferred[None]:
        """Stop listening, then wait for the open connections (up to the grace)."""
        self.reopenHook.uninstall()
        site = self.site
        # Stopping the last listener stops the site (closing its access log): hold it
        # started until the connections are gone.
        site.doStart()  # type: ignore[no-untyped-call]
        self._acceptBacklogs()
        stopped: Deferred[Any] = super().stopService()  # type: ignore[no-untyped-call]

        def drain(_: object) -> Deferred[None]:
            return site.drain(self.gracePeriod)

        def release(result: object) -> object:
            site.doStop()  # type: ignore[no-untyped-call]
            return result

        return stopped.addCallback(drain).addBoth(release)


def serveMetricsFrom(registry: Any, endpoint: str, reactor: Any) -> service.Service:
    """Return the service that serves ``registry`` at ``/metrics`` on ``endpoint``.

    :param registry: a ``prometheus_client`` registry.
    :param endpoint: the ``--metrics`` endpoint description.
    :param reactor: the reactor to listen with.
    """
    return strports.service(endpoint, metricsSite(registry), reactor)


def commandLine(config: Options) -> str | None:
    """Return ``twistd scgi`` (or ``twist scgi``) if start-up errors are to be short.

    That is when the options were parsed on the command line (as a subcommand of
    ``twistd`` or ``twist``) without ``--traceback``.
    """
    parent = getattr(config, "parent", None)
    if parent is None or config.get("traceback"):
        return None
    return f"{commandName(parent)} scgi"


def makeSiteService(
    config: Options, reactor: Any, served: Sequence[str] | None = None
) -> SCGIService:
    """Build the single-process service: one SCGI site on every ``--listen``.

    :param config: the parsed options.
    :param reactor: the reactor to listen with and to run WSGI applications on.
    :param served: where the site is served, for the announcement, if not on
        ``config["listen"]`` (a worker serves the sockets its supervisor passed).
    :returns: a service with one child per ``--listen``.
    """
    root = _root(config, reactor)
    accessLog = config["access-log"]
    site = _CommandLineSite(
        root,
        mount=config["mount"],
        max_header_size=config["max-header-size"],
        max_body_size=config["max-body-size"],
        timeout=config["timeout"],
        header_timeout=config["header-timeout"],
        abort_timeout=config["abort-timeout"],
        write_timeout=config["write-timeout"],
        max_connections=config["max-connections"],
        stream_uploads=config["stream-uploads"],
        half_close=bool(config["half-close"]),
        allow=config["allow"] or None,
        reactor=reactor,
        parsePOSTFormSubmission=not config["no-form-parsing"],
    )
    site.openSink = _accessLogSink(accessLog)
    site.displayTracebacks = bool(config["display-tracebacks"])
    parent = SCGIService(site, config["grace-period"])
    for listen in config["listen"]:
        server = strports.service(listen, site, reactor)
        server.endpoint = inheritedSafely(server.endpoint)
        warnIfEverywhere(_log, listen, server.endpoint, config)
        if not isinstance(server.endpoint, InheritedSocketEndpoint):
            server.endpoint = RecordingEndpoint(server.endpoint)
            parent.endpoints.append(server.endpoint)
        server.setServiceParent(parent)  # type: ignore[no-untyped-call]
    if config["metrics"]:
        registry = enableMetrics(site)
        metrics = serveMetricsFrom(registry, config["metrics"], reactor)
        metrics.setServiceParent(parent)  # type: ignore[no-untyped-call]
    NotifyService().setServiceParent(parent)  # type: ignore[no-untyped-call]
    parent.announcement = servingAnnouncement(
        config, config["listen"] if served is None else served
    )
    parent.command = commandLine(config)
    return parent
