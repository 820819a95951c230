"""The in-memory driver: a site's real channel on a string transport.

:func:`connect` builds the channel of a site for a new connection on a
:class:`HalfCloseTransport` (a ``StringTransport`` that also records
``loseWriteConnection``); the test feeds it bytes and reads what it wrote, with a
``Clock`` as the site's reactor when time matters.  :func:`serveSCGI` does a whole
exchange in one call.  :class:`Port` and :class:`PortTransport` stand in for a
listening port, for the connection limit.  :func:`collectLogEvents` records what is
logged.

Tests that want the whole client side too (a request built and a response read by
the library's own client) use :class:`scgi_twisted.testing.SCGITestClient`, which
runs the same channel over ``iosim``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar, overload

from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IAddress
from twisted.internet.testing import StringTransport
from twisted.logger import ILogObserver, LogEvent, LogLevel, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import provider

from scgi_twisted import SCGIChannel, SCGISite

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


def serveSCGI(site: SCGISite, data: bytes) -> Response:
    """Feed one SCGI request to a new channel of ``site`` and return the response.

    A pull producer that the response registers is pumped until it is done; then the
    connection is lost, so that nothing is left waiting.
    """
    channel, transport = connect(site)
    channel.dataReceived(data)
    for _ in range(1000):  # a pull producer (static.File) writes when asked to
        producer = transport.producer
        if producer is None:
            break
        producer.resumeProducing()
    channel.connectionLost(Failure(ConnectionDone()))
    return Response(transport.value())


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
