"""The in-memory driver: a site's real channel on a string transport.

:func:`connect` builds the channel of a site for a new connection on a
:class:`HalfCloseTransport` (a ``StringTransport`` that also records
``loseWriteConnection``); the test feeds it bytes and reads what it wrote, with a
``Clock`` as the site's reactor when time matters.  :class:`Port` and
:class:`PortTransport` stand in for a listening port, for the connection limit.
:func:`collectLogEvents` records what is logged.

A test that only needs an answer sends bytes with :func:`serveSCGI`, which uses the
library's own in-memory connection (``scgi_twisted._memory``, over ``iosim``), the
one behind :class:`scgi_twisted.testing.SCGITestClient`; a test that builds its
request from a method and a path uses ``SCGITestClient`` itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar, overload

from twisted.internet.interfaces import IAddress
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import ILogObserver, LogEvent, LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import provider

from scgi_twisted import SCGIChannel, SCGISite
from scgi_twisted._memory import FRONTEND, ClientOutcome, MemoryConnection

from .scgi import Response

_T = TypeVar("_T", bound="HalfCloseTransport")

__all__ = [
    "HalfCloseTransport",
    "Port",
    "PortTransport",
    "collectLogEvents",
    "connect",
    "serveSCGI",
    "warningsAndErrors",
]


class HalfCloseTransport(StringTransport):
    """A ``StringTransport`` that can half-close its write side, as TCP can.

    :ivar writeClosed: whether ``loseWriteConnection`` was called.
    """

    writeClosed = False

    def loseWriteConnection(self) -> None:
        """Record the half-close; the peer may still send."""
        self.writeClosed = True


@overload
def connect(
    site: SCGISite, peer: IAddress | None = None
) -> tuple[SCGIChannel, HalfCloseTransport]: ...


@overload
def connect(
    site: SCGISite, peer: IAddress | None = None, *, transport: _T
) -> tuple[SCGIChannel, _T]: ...


def connect(
    site: SCGISite,
    peer: IAddress | None = None,
    *,
    transport: HalfCloseTransport | None = None,
) -> tuple[SCGIChannel, HalfCloseTransport]:
    """Build the site's channel for a new connection and connect it to a transport.

    :param site: the site whose ``buildProtocol`` makes the channel.
    :param peer: the address given to ``buildProtocol``.
    :param transport: the transport, if not a new :class:`HalfCloseTransport`.
    :returns: the channel and its transport.
    """
    channel = site.buildProtocol(peer)
    assert channel is not None, "the site refused the connection"
    if transport is None:
        transport = HalfCloseTransport()
    channel.makeConnection(transport)
    return channel, transport


def collectLogEvents(case: SynchronousTestCase) -> list[LogEvent]:
    """Record every event logged until the end of the test.

    :param case: the running test, whose cleanup stops the recording.
    :returns: the list the events are appended to.
    """
    events: list[LogEvent] = []

    @provider(ILogObserver)
    def observe(event: LogEvent) -> None:
        events.append(event)

    globalLogPublisher.addObserver(observe)
    case.addCleanup(globalLogPublisher.removeObserver, observe)
    return events


def warningsAndErrors(events: Iterable[LogEvent]) -> list[dict[str, Any]]:
    """Return the events logged at ``warn`` level or above."""
    levels = (LogLevel.warn, LogLevel.error, LogLevel.critical)
    return [dict(event) for event in events if event.get("log_level") in levels]


def serveSCGI(site: SCGISite, data: bytes, method: bytes = b"GET") -> Response:
    """Send ``data`` to a new channel of ``site`` as the test client does; parse it.

    The library's own in-memory connection (:mod:`scgi_twisted.testing`'s, over
    ``iosim``) carries the bytes: what the channel writes reaches the client at once,
    a pull producer is resumed until it is done, and the channel hears of the close
    as from a real transport.  If the answer is not finished, the client disconnects
    so that nothing is left waiting.

    :param data: the whole request, as a frontend sends it.
    :param method: the request's method, for the client's reading of the answer.
    :returns: the answer, checked strictly (:func:`tests.support.scgi.parseResponse`).
    """
    clock = Clock()
    channel = site.buildProtocol(FRONTEND)
    assert channel is not None, "the site refused the connection"
    outcome = ClientOutcome(method, head=data)
    connection = MemoryConnection(channel, outcome.client, clock)
    connection.flush()
    if not connection.server.disconnecting:
        connection.client.loseConnection()
    connection.flush()
    clock.advance(0)
    return Response(b"".join(connection.server.written))


class Port:
    """Stands in for a listening port: records whether it is reading."""

    connected = True
    disconnecting = False

    def __init__(self) -> None:
        self.reading = True
        self.stops = 0

    def stopReading(self) -> None:
        """Stop accepting."""
        self.reading = False
        self.stops += 1

    def startReading(self) -> None:
        """Accept again."""
        self.reading = True


class PortTransport(HalfCloseTransport):
    """A transport that, like a real server connection, knows its port."""

    def __init__(self, port: Port) -> None:
        super().__init__()
        self.server = port
