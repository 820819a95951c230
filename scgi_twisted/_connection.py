"""The connection under an SCGI channel: its phases, its deadlines and its close.

:class:`Connection` is the part of :class:`~scgi_twisted.SCGIChannel` that knows
nothing of requests: where the connection is in its life (:class:`Phase`), the one
timer of the phase deadlines, the site that counts connections
(:class:`ConnectionTracker`), and the ways a connection ends: a clean close once our
output is flushed, draining what the peer still sends after an early answer, the
shutdown of the server, and the abort of a peer that ignores the close.  The channel
adds the request: parsing, the ``twisted.web`` request, the upload, the answer.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any
from typing import Protocol as TypingProtocol

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IAddress, IDelayedCall
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from ._config import SCGIConfig
from ._metrics import Metrics
from ._response import ResponseWriter, cancelTimer

__all__ = ["Connection", "ConnectionTracker", "Phase"]

_log = Logger()

_DEFAULT_CONFIG = SCGIConfig()


def _failure(error: BaseException) -> Failure:
    """Wrap an exception in a ``Failure`` (``Failure`` itself is untyped)."""
    return Failure(error)  # type: ignore[no-untyped-call]


class Phase(enum.Enum):
    """Where a connection is in its life.

    It goes through these in order; a refused or abandoned request skips ahead (to
    ``DRAINING`` or ``CLOSING``).
    """

    HEAD = "head"
    """Reading the header block, under the header timeout."""

    BODY = "body"
    """The request is built; its body arrives, under the idle timeout (a streamed
    upload is already being answered)."""

    PROCESSING = "processing"
    """The whole request has arrived: the application answers, with no deadline."""

    DRAINING = "draining"
    """An early answer was written and our side half-closed: what the peer still
    sends is read and dropped until the request's end or its EOF (the linger
    timeout)."""

    CLOSING = "closing"
    """The close was asked for: output is flushed (the write timeout), or the peer
    has the abort timeout to take the close."""

    CLOSED = "closed"
    """The connection is gone."""


_HEAD = Phase.HEAD
_BODY = Phase.BODY
_PROCESSING = Phase.PROCESSING
_DRAINING = Phase.DRAINING
_CLOSING = Phase.CLOSING
_CLOSED = Phase.CLOSED


class ConnectionTracker(TypingProtocol):
    """What a channel tells the site that counts its connections (``tracker``)."""

    def connectionOpened(self, channel: Any) -> bool:
        """Count ``channel``; return whether it may be served now.

        If not, its transport is paused and :meth:`Connection.admit` is called once
        a slot is free.
        """

    def connectionClosed(self, channel: Any) -> None:
        """Forget ``channel``: its connection is gone."""


class Connection(Protocol):
    """One SCGI connection's life: phases, deadlines, draining and the close.

    ``timeOut`` and ``callLater`` are set by ``Site.buildProtocol``; :attr:`config`
    and :attr:`tracker` by the SCGI site.

    :ivar config: the limits and policies of this connection.
    :ivar tracker: the :class:`ConnectionTracker` told when the connection opens and
        closes, or ``None``.
    :ivar phase: where the connection is (:class:`Phase`).
    :ivar metrics: the site's counts, if it keeps them
        (:class:`~scgi_twisted._metrics.Metrics`).
    """

    transport: Any
    callLater: Any
    timeOut: float | None = 60.0
    config: SCGIConfig = _DEFAULT_CONFIG
    tracker: ConnectionTracker | None = None
    phase: Phase = _HEAD
    metrics: Metrics | None = None
    # The addresses and the scheme the frontend reports, once the header block is in.
    _peer: IAddress | None = None
    _host: IPv4Address | None = None
    _secure: bool = False
    # When the request's header block was in, on the site's clock, while it is
    # counted in flight (metrics only).
    _started: float | None = None

    _writer: ResponseWriter
    _drained: int = 0
    _drainTarget: int | None = None
    # The one timer of the phase deadlines (header, idle body, linger, abort after
    # close), re-armed in place (``reset``) as the phase or the deadline moves on,
    # and what it does when it fires.
    _timer: IDelayedCall | None = None
    _timerAction: Callable[[], None] | None = None
    # Independent of the phase: reading is paused for a streamed body (its receiver
    # asked for a pause, or a chunk waits for a receiver).
    _readPaused: bool = False

    def connectionMade(self) -> None:
        """Set up the response writer; start the header deadline once admitted."""
        self._writer = ResponseWriter(
            self.transport,
            self.callLater,
            self.config.write_timeout,
            self._writeTimedOut,
        )
        if self.tracker is not None and not self.tracker.connectionOpened(self):
            # Over the connection limit: the site paused the transport and calls
            # admit() once a slot is free.
            return
        self.admit()

    # What the request's side answers.

    def timeoutConnection(self) -> None:
        """The header block or the body stalled (the header or idle deadline)."""
        raise NotImplementedError

    def _abortRequest(self, reason: Failure, gone: bool = False) -> None:
        """Tell the request, if any, that its connection is gone.

        :param gone: whether the client went away (rather than the server ending
            the request), for the metrics.
        """
        raise NotImplementedError

    def _bodyReceived(self) -> int:
        """Return how many bytes of the request body have arrived."""
        raise NotImplementedError

    def _processEvents(self) -> None:
        """Act on what has been read (reading resumed)."""
        raise NotImplementedError

    def _responseUnfinished(self) -> bool:
        """Return whether the application has begun its response and not ended it."""
        raise NotImplementedError

    def _requestURI(self) -> bytes:
        """Return the request's URI for log lines."""
        raise NotImplementedError

    # Reading paused for a streamed body.

    def pauseReading(self) -> None:
        """Stop reading the connection (and its idle timeout) for the body."""
        if self._readPaused or self.phase is not _BODY:
            return
        self._readPaused = True
        self._setTimeout(None)
        self.transport.pauseProducing()

    def resumeReading(self) -> None:
        """Read the connection again and act on what has already arrived."""
        if not self._readPaused:
            return
        self._readPaused = False
        phase = self.phase
        if phase is _DRAINING or phase is _CLOSING or phase is _CLOSED:
            return
        self.transport.resumeProducing()
        if phase is _BODY:
            self._setTimeout(self.timeOut)
        self._processEvents()

    # The life of the connection.

    def admit(self) -> None:
        """Start the header-read deadline: the connection is being served.

        Called by :meth:`connectionMade`, or by the tracker once a slot is free.
        """
        header_timeout = self.config.header_timeout
        self._setTimeout(self.timeOut if header_timeout is None else header_timeout)

    def writeConnectionLost(self) -> None:
        """Our side was half-closed after an early answer; wait for the peer's EOF."""

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Tell an unfinished request that its connection is gone."""
        self.phase = _CLOSED
        self._writer.lost()
        self._disarm()
        self._abortRequest(reason, gone=True)
        if self.tracker is not None:
            self.tracker.connectionClosed(self)

    def _arm(self, seconds: float, action: Callable[[], None]) -> None:
        """Have ``action`` run in ``seconds``, instead of what the timer would run.

        The one timer is moved rather than replaced; ``reset`` to a later time only
        records the new time (the reactor looks at it when the old one comes).
        """
        self._timerAction = action
        timer = self._timer
        if timer is not None and timer.active():
            timer.reset(seconds)
        else:
            self._timer = self.callLater(seconds, self._deadline)

    def _disarm(self) -> None:
        """Stop the timer: no deadline in this phase.

        The action is dropped too: a method of this connection, kept on it, would
        hold the connection in a reference cycle, freed only by the collector.
        """
        self._timerAction = None
        timer = self._timer
        if timer is not None:
            self._timer = None
            cancelTimer(timer)

    def _deadline(self) -> None:
        """The deadline of the phase has come: act."""
        self._timer = None
        action, self._timerAction = self._timerAction, None
        assert action is not None
        action()

    def _setTimeout(self, seconds: float | None) -> None:
        """Start or restart the header or idle deadline (``None``: stop the timer)."""
        if seconds is None:
            self._disarm()
        else:
            self._arm(seconds, self.timeoutConnection)

    def _startDraining(self, target: int | None, already: int = 0) -> None:
        """Half-close our side and read until ``target`` bytes or the peer's EOF.

        :param target: the stream offset at which the request ends, when known.
        :param already: how many bytes of the stream were read so far.
        """
        phase = self.phase
        if phase is _DRAINING or phase is _CLOSING or phase is _CLOSED:
            return
        self.phase = _DRAINING
        if self._readPaused:
            self._readPaused = False
            self.transport.resumeProducing()
        self._drained = already
        self._drainTarget = target
        if target is not None and already >= target:
            self._closeConnection()
            return
        self._writer.closeWrite()
        self._arm(self.config.linger_timeout, self._forceAbort)

    def _drain(self, count: int) -> None:
        """Drop ``count`` bytes read while draining; close once the request is read."""
        self._drained += count
        self._arm(self.config.linger_timeout, self._forceAbort)
        target = self._drainTarget
        if target is not None and self._drained >= target:
            self._closeConnection()
        elif self._drained > self.config.max_drain:
            _log.info("Stopped draining after {count} bytes", count=self._drained)
            self._forceAbort()

    def _closeConnection(self) -> None:
        """Close once our output is flushed; every input byte has been read.

        The peer has the write timeout to take what is left of our output.
        """
        phase = self.phase
        if phase is _CLOSING or phase is _CLOSED:
            return
        self.phase = _CLOSING
        self._disarm()
        self._writer.close()

    # The channel surface a twisted.web Request uses: the frontend's addresses.

    def getPeer(self) -> IAddress:
        """Return the client's address, from ``REMOTE_ADDR`` and ``REMOTE_PORT``."""
        if self._peer is None:
            return IPv4Address("TCP", "0.0.0.0", 0)
        return self._peer

    def getHost(self) -> IPv4Address:
        """Return the address the client addressed, from the Host and SERVER_*."""
        if self._host is None:
            return IPv4Address("TCP", "localhost", 80)
        return self._host

    def isSecure(self) -> bool:
        """Return whether the client used TLS to reach the frontend."""
        return self._secure

    # What the site counts and logs.

    def _countEnded(self, request: Any, gone: bool | None) -> None:
        """Count the end of a request counted in flight (``_started`` is set).

        :param gone: ``None`` if its response is complete; otherwise whether the
            client went away.
        """
        started, self._started = self._started, None
        metrics = self.metrics
        assert started is not None and metrics is not None
        sent = getattr(request, "sentLength", 0)
        if gone is None:
            method, code = request.method, request.code
            metrics.requestFinished(started, method, code, self._bodyReceived(), sent)
        else:
            metrics.requestAbandoned(self._bodyReceived(), sent, gone)

    def _logRefused(self, status: int, length: int) -> None:
        """Tell the site (if it keeps such a log) of an answer the channel wrote."""
        if self.metrics is not None:
            self.metrics.refused(str(status))
        logRefused = getattr(self.factory, "logRefused", None)
        if logRefused is not None:
            logRefused(self, status, length)

    def _writeTimedOut(self) -> None:
        """The peer took none of our output for the write timeout: abort."""
        _log.warn(
            "Aborted the connection from {peer}: it took none of the response to "
            "{uri} for {timeout:g} s",
            peer=self.transport.getPeer() if self.transport else None,
            uri=self._requestURI(),
            timeout=self.config.write_timeout,
        )
        self._abortRequest(_failure(ConnectionDone("write timed out")), gone=True)
        self._forceAbort()

    def shutDown(self) -> None:
        """The server is stopping: abandon the request and close, then abort.

        Called by the tracker once its grace period is over.  An unfinished
        response is aborted at once: the close that ends an SCGI response would
        tell the frontend that the truncated answer is complete.
        """
        phase = self.phase
        if phase is _CLOSED:
            return
        unfinished = self._responseUnfinished()
        self._abortRequest(_failure(ConnectionDone("the server is shutting down")))
        if unfinished:
            self._forceAbort()
            return
        self.phase = _CLOSING
        self._writer.close(watched=False)
        timer = self._timer
        if (
            (phase is _DRAINING or phase is _CLOSING)
            and timer is not None
            and timer.active()
        ):
            return  # the linger or abort deadline already runs: it ends the close
        self._arm(self.config.abort_timeout, self._forceAbort)

    def _forceAbort(self) -> None:
        """Abort a connection whose peer ignored our close."""
        self._disarm()
        if self.phase is not _CLOSED:
            self.phase = _CLOSING
        abort = getattr(self.transport, "abortConnection", None)
        if abort is not None:
            abort()
        else:  # pragma: no cover - every Twisted stream transport can abort
            self.transport.loseConnection()
