"""The in-memory connection of :mod:`scgi_twisted.testing`.

:class:`MemoryConnection` joins the SCGI client's own protocol
(:class:`~scgi_twisted._clientprotocol.SCGIClientProtocol`) to a site's channel with
``twisted.test.iosim``; :class:`ClientOutcome` keeps what the client made of the
response.  So the test client reads responses with the same code as the network
client, and there is one response parser.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import cast

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IProducer, IPullProducer
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.test.iosim import FakeTransport, connect

from ._clientprotocol import Response, SCGIClientProtocol

__all__ = [
    "BACKEND",
    "FRONTEND",
    "ClientOutcome",
    "MemoryConnection",
    "NullTransport",
    "ServerTransport",
]

FRONTEND = IPv4Address("TCP", "127.0.0.1", 40000)
"""The address the test frontend seems to connect from."""

BACKEND = IPv4Address("TCP", "127.0.0.1", 4000)
"""The address the test frontend seems to connect to."""


class ClientOutcome:
    """What the SCGI client's own protocol made of a response.

    The one response parser of the project: ``PendingResponse`` and
    ``TestResponse.parse`` (:mod:`scgi_twisted.testing`) read responses with the
    client's protocol, as :mod:`scgi_twisted.client` reads a real server's.

    :ivar client: the protocol, to connect; it sends ``head`` and ``body``.
    """

    def __init__(self, method: bytes, head: bytes = b"", body: bytes = b"") -> None:
        """Make a client protocol for one request, and collect what it reads."""
        responded: Deferred[Response] = Deferred()
        responded.addCallbacks(self._responded, self._failed)
        self.client = SCGIClientProtocol(head, body, method, "the test site", responded)
        self._response: Response | None = None
        self._body: list[bytes] = []
        self._failure: Failure | None = None

    def result(self) -> tuple[Response, bytes]:
        """Return the response and its body, once the client's connection is closed.

        :raises MalformedResponseError: (or any error of the client) if the
            response was not valid.
        """
        if self._failure is not None:
            error = self._failure.value
            assert isinstance(error, BaseException)
            raise error
        response = self._response
        assert response is not None  # the client failed otherwise
        return response, b"".join(self._body)

    def _responded(self, response: Response) -> None:
        """The head arrived: collect the body."""
        self._response = response
        response.collect(self._body.append).addErrback(self._failed)

    def _failed(self, reason: Failure) -> None:
        """Keep the client's error, for :meth:`result`."""
        if self._failure is None:
            self._failure = reason


class NullTransport:
    """Where ``TestResponse.parse`` lets the client write its (empty) request."""

    def write(self, data: bytes) -> None:
        """Drop the request."""

    def pauseProducing(self) -> None:
        """There is no socket to pause."""

    def resumeProducing(self) -> None:
        """There is no socket to resume."""

    def abortConnection(self) -> None:
        """The client gave up on a malformed response; its error is kept."""


class ServerTransport(FakeTransport):
    """The channel's side of an in-memory connection (a ``FakeTransport``).

    What the channel writes reaches the client at once, as a socket's bytes would
    once the reactor reads them, so a response the channel finishes outside the
    clock (a Deferred the test fires) is finished without pumping.  A half-close
    ends the output as a close does, and a pull producer is resumed until it is
    done or writes nothing, as a TCP transport does.

    :ivar connected: whether the channel still has its connection (it has not
        been told that the connection is lost).
    :ivar written: every byte the channel wrote before its close.
    :ivar aborted: whether the channel aborted the connection (as on a
        ``StringTransport``).
    """

    writeClosed = False
    aborted = False

    def __init__(self, channel: Protocol, output: Callable[[], None]) -> None:
        super().__init__(  # type: ignore[no-untyped-call]
            channel, isServer=True, hostAddress=BACKEND, peerAddress=FRONTEND
        )
        self._output = output
        self.connected = True
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        """Send response bytes; drop any after the close, as a socket would."""
        if self.disconnecting or self.writeClosed or not data:
            return
        self.written.append(data)
        super().write(data)  # type: ignore[no-untyped-call]
        self._output()

    def writeSequence(self, data: Iterable[bytes]) -> None:
        """Send several pieces of response."""
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        """Close: the response is complete."""
        if not self.disconnecting:
            super().loseConnection()  # type: ignore[no-untyped-call]
            self._output()

    def abortConnection(self) -> None:
        """Abort: as a close here, what was written is delivered."""
        self.aborted = True
        self.loseConnection()

    def loseWriteConnection(self) -> None:
        """Half-close: the response is complete, as with a close."""
        if not self.writeClosed:
            self.writeClosed = True
            self.loseConnection()

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        """Register a producer; a pull producer is asked for data until done.

        As a TCP transport does, a pull producer is resumed at once; here it is
        resumed again after each write, until it unregisters, the connection closes,
        or a resume writes nothing (the producer is waiting for something else).
        """
        self.producer = producer
        self.streamingProducer = streaming
        if streaming:
            return
        while self.producer is producer and not self.disconnecting:
            before = len(self.written)
            cast(IPullProducer, producer).resumeProducing()
            if self.producer is producer and len(self.written) == before:
                return

    def reportDisconnect(self) -> None:
        """Tell the channel that its connection is gone."""
        self.connected = False
        super().reportDisconnect()  # type: ignore[no-untyped-call]


class MemoryConnection:
    """A client protocol connected to a channel in memory, by ``iosim``.

    What the channel writes reaches the client at once; what the client writes, and
    the channel's news of a closed connection, move when :meth:`flush` runs (the
    test client flushes after sending, on disconnecting, and on the clock tick after
    the channel closes).

    :ivar server: the channel's transport.
    :ivar client: the client's transport.
    """

    def __init__(self, channel: Protocol, client: Protocol, clock: Clock) -> None:
        """Connect ``client`` to ``channel``; nothing moves until :meth:`flush`."""
        self._clock = clock
        self._flushing = False
        self._flushCall: IDelayedCall | None = None
        self.server = ServerTransport(channel, self._serverOutput)
        self.client = FakeTransport(  # type: ignore[no-untyped-call]
            client, isServer=False, hostAddress=FRONTEND, peerAddress=BACKEND
        )
        self._pump = connect(  # type: ignore[no-untyped-call]
            channel, self.server, client, self.client, greet=False, clock=clock
        )

    def flush(self) -> None:
        """Move bytes and closes both ways until nothing moves."""
        call, self._flushCall = self._flushCall, None
        if call is not None and call.active():
            call.cancel()
        self._flushing = True
        try:
            while (
                self._pump.pump(advanceClock=False)
                or self.server.stream
                or self.client.stream
            ):
                pass
        finally:
            self._flushing = False

    def _serverOutput(self) -> None:
        """The channel wrote or closed: the client reads it now.

        The channel hears of the closed connection later (on the next clock tick,
        or when the test disconnects), as from a real transport, never from inside
        its own call.
        """
        if self._flushing:
            return
        server, client = self.server, self.client
        data = server.getOutBuffer()  # type: ignore[no-untyped-call]
        if data:
            client.bufferReceived(data)  # type: ignore[no-untyped-call]
        if (server.disconnecting or client.disconnecting) and not server.disconnected:
            # The client's side ends now; the pump ends the channel's side.
            server.disconnected = True
            client.disconnecting = True
            client.reportDisconnect()  # type: ignore[no-untyped-call]
            if self._flushCall is None:
                self._flushCall = self._clock.callLater(0, self.flush)
