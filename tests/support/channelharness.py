"""The channel harness: one connection of a real channel in memory, and its contract.

:func:`runChannel` builds the real channel of an :class:`~scgi_twisted.SCGISite` (on a
:class:`~twisted.internet.task.Clock`) with :func:`tests.support.memory.connect` over
a :class:`RecordingTransport`, feeds it bytes (whole or split), optionally a read-EOF,
advances the clock past every timeout, and ends the connection the way a transport
would.  :func:`checkOutcome` states the channel's contract for *any* input.  The
hypothesis properties (``tests/test_channel_properties.py``) and the coverage-guided
fuzzer (``tests/fuzz_scgi.py``) share it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IDelayedCall, IPushProducer
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.task import Clock
from twisted.logger import (
    ILogObserver,
    LogEvent,
    LogLevel,
    formatEvent,
    globalLogPublisher,
)
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.pages import notFound
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET, Request
from zope.interface import implementer, provider

from scgi_twisted import (
    IStreamingUploadResource,
    NotStreamingError,
    SCGISite,
    deliverBody,
)

from .memory import HalfCloseTransport, connect
from .scgi import (
    parseHTTPRefusal,
    parseResponse,
)

__all__ = [
    "ChannelOutcome",
    "PropertyApp",
    "RecordingTransport",
    "checkOutcome",
    "runChannel",
]

ADVANCES = (0.0, 1.0, 2.5, 5.1, 15.1, 60.1)
"""Clock steps worth taking: the app's delays, linger (5 s), abort (15 s), timeOut."""

IDLE_STEPS = 200
"""At most this many timers fire after the chosen clock steps (the run goes idle)."""


# The application.


class _Leaf(Resource):
    isLeaf = True

    def __init__(self, render: object) -> None:
        super().__init__()
        self._render = render

    def render(self, request: Request) -> bytes | int:
        result: bytes | int = self._render(request)  # type: ignore[operator]
        return result


@implementer(IStreamingUploadResource)
class _Upload(_Leaf):
    """A leaf that reads its body as it arrives (``deliverBody``)."""


class _BodyReader(Protocol):
    """Receive a streamed body the way ``mode`` says, then answer.

    ``consume`` reads everything; ``slow`` pauses after each piece and resumes a
    second later; ``stop`` stops the body after its first piece; ``early`` answers
    after the first piece, before the body is complete.
    """

    def __init__(self, request: Request, mode: bytes, clock: Clock) -> None:
        self.request = request
        self.mode = mode
        self.clock = clock
        self.received = bytearray()
        self.answered = False
        self.producer: IPushProducer | None = None
        self.calls: list[IDelayedCall] = []

    def makeConnection(self, transport: object) -> None:
        self.producer = cast(IPushProducer, transport)

    def dataReceived(self, data: bytes) -> None:
        assert data, "an empty piece of body"
        assert not self.answered or self.mode == b"early", "body after stopProducing"
        self.received += data
        assert self.producer is not None
        if self.mode == b"slow":
            self.producer.pauseProducing()
            self.calls.append(self.clock.callLater(1.0, self.producer.resumeProducing))
        elif self.mode == b"stop" and not self.answered:
            self.producer.stopProducing()
            self.answer(b"stopped")
        elif self.mode == b"early" and not self.answered:
            self.answer(b"early")

    def answer(self, body: bytes) -> None:
        if self.answered:
            return
        self.answered = True
        self.request.write(body)
        self.request.finish()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        for call in self.calls:
            if call.active():
                call.cancel()
        if reason.check(ResponseDone) and not self.answered:
            self.answer(_digest(bytes(self.received)))


class _Root(Resource):
    def getChild(self, path: bytes, request: Request) -> IResource:
        return notFound()


def _digest(data: bytes) -> bytes:
    """Return ASCII that identifies ``data`` (no app body may look like a head)."""
    return b"%d:%s" % (len(data), hashlib.sha256(data).hexdigest().encode("ascii"))


class PropertyApp:
    """Resources whose outputs are known, driven by the test's clock.

    :ivar requests: every request that reached a resource.
    :ivar ended: for each of them, ``"finished"`` or ``"lost"`` once known.
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.requests: list[Request] = []
        self.ended: dict[int, str] = {}
        self.root = _Root()
        for name, render in {
            b"": self.ok,
            b"ok": self.ok,
            b"echo": self.echo,
            b"info": self.info,
            b"pending": self.pending,
            b"later": self.later,
            b"stream": self.stream,
            b"crlf-header": self.crlfHeader,
        }.items():
            self.root.putChild(name, _Leaf(render))
        self.root.putChild(b"upload", _Upload(self.upload))

    def _track(self, request: Request) -> None:
        index = len(self.requests)
        self.requests.append(request)

        def finished(_: object) -> None:
            self.ended[index] = "finished"

        def lost(_: Failure) -> None:
            self.ended[index] = "lost"

        request.notifyFinish().addCallbacks(finished, lost)

    def unfinished(self) -> list[int]:
        """Return the indexes of requests that have not ended yet."""
        return [i for i in range(len(self.requests)) if i not in self.ended]

    def ok(self, request: Request) -> bytes:
        self._track(request)
        return b"ok"

    def echo(self, request: Request) -> bytes:
        self._track(request)
        assert request.content is not None
        return b"\n".join(
            [
                _digest(request.method),
                _digest(request.uri),
                _digest(request.content.read()),
            ]
        )

    def info(self, request: Request) -> bytes:
        self._track(request)
        return repr(
            (
                request.getClientAddress(),
                request.getHost(),
                request.isSecure(),
                request.args,
                request.received_cookies,
                request.clientproto,
                request.prepath,
                request.postpath,
                request.getAllHeaders(),
            )
        ).encode("ascii", "backslashreplace")

    def pending(self, request: Request) -> int:
        self._track(request)
        return NOT_DONE_YET

    def later(self, request: Request) -> int:
        """Answer after 2 s of the clock, unless the connection is gone."""
        self._track(request)

        def finish() -> None:
            request.write(b"later")
            request.finish()

        call = self.clock.callLater(2.0, finish)
        request.notifyFinish().addErrback(lambda _: call.cancel())
        return NOT_DONE_YET

    def stream(self, request: Request) -> int:
        """Write three pieces a second apart, without a Content-Length."""
        self._track(request)
        pieces = [b"one ", b"two ", b"three"]
        calls = []

        def write() -> None:
            request.write(pieces.pop(0))
            if pieces:
                calls.append(self.clock.callLater(1.0, write))
            else:
                request.finish()

        def stop(_: Failure) -> None:
            for call in calls:
                if call.active():
                    call.cancel()

        request.notifyFinish().addErrback(stop)
        calls.append(self.clock.callLater(0, write))
        return NOT_DONE_YET

    def upload(self, request: Request) -> bytes | int:
        """Stream the body to a :class:`_BodyReader` (``?mode=``), or refuse it."""
        self._track(request)
        mode = request.args.get(b"mode", [b"consume"])[0]
        if mode == b"refuse":
            request.setResponseCode(413)
            return b"refused"
        try:
            deliverBody(request, _BodyReader(request, mode, self.clock))
        except NotStreamingError:
            return _digest(request.content.read() if request.content else b"")
        return NOT_DONE_YET

    def crlfHeader(self, request: Request) -> bytes:
        self._track(request)
        request.setHeader(b"X-A", b"a\r\nSet-Cookie: injected=1\r\n\r\nsmuggled")
        return b"ok"


# The harness.


class RecordingTransport(HalfCloseTransport):
    """A transport that records aborts and any write after the channel closed.

    :ivar aborted: whether ``abortConnection`` was called.
    :ivar lateWrites: bytes written after ``loseConnection``, ``abortConnection`` or
        ``loseWriteConnection``.
    """

    aborted = False

    def __init__(self) -> None:
        super().__init__()
        self.lateWrites: list[bytes] = []

    @property
    def closed(self) -> bool:
        """Whether the channel closed or aborted the connection."""
        return bool(self.disconnecting) or self.aborted

    def write(self, data: bytes) -> None:
        if self.closed or self.writeClosed:
            self.lateWrites.append(data)
        super().write(data)

    def writeSequence(self, data: Sequence[bytes]) -> None:
        for piece in data:
            self.write(piece)

    def abortConnection(self) -> None:
        self.aborted = True
        super().abortConnection()


@dataclass
class ChannelOutcome:
    """What one run of the channel produced.

    :ivar output: every byte written.
    :ivar transport: the transport, for its flags.
    :ivar app: the application, for its requests.
    :ivar events: everything logged during the run.
    :ivar closedByServer: whether the channel had closed the connection once the
        clock passed every timeout (before the harness ended it).
    :ivar servingAtEnd: the requests still being served at that moment.
    :ivar leftoverCalls: timers still pending right after ``connectionLost``.
    """

    output: bytes
    transport: RecordingTransport
    app: PropertyApp
    events: list[LogEvent] = field(default_factory=list)
    closedByServer: bool = True
    servingAtEnd: list[int] = field(default_factory=list)
    leftoverCalls: list[str] = field(default_factory=list)


def runChannel(
    chunks: Sequence[bytes],
    *,
    eof: bool = False,
    advances: Sequence[float] = (),
    halfClose: bool = False,
    maxBodySize: int | None = None,
    mergeDuplicates: bool = True,
    maxHeaderSize: int = 64 * 1024,
) -> ChannelOutcome:
    """Drive one connection of a real channel in memory; let any exception escape.

    :param chunks: the reads, in order.  They stop once the channel closed, and
        wait while it paused the transport (as a real transport's reads do).
    :param eof: whether the peer's EOF follows the last read.
    :param advances: clock steps taken after the first reads; then time passes
        until no timer is left (at most :data:`IDLE_STEPS` of them).
    :returns: what happened.
    """
    clock = Clock()
    app = PropertyApp(clock)
    site = SCGISite(
        app.root,
        reactor=clock,
        half_close=halfClose,
        max_body_size=maxBodySize,
        merge_duplicates=mergeDuplicates,
        max_header_size=maxHeaderSize,
    )
    events: list[LogEvent] = []

    @provider(ILogObserver)
    def observe(event: LogEvent) -> None:
        events.append(event)

    globalLogPublisher.addObserver(observe)
    try:
        channel, transport = connect(site, transport=RecordingTransport())
        lost = False
        leftover: list[str] = []

        def loseConnection(reason: str) -> None:
            nonlocal lost
            lost = True
            channel.connectionLost(Failure(ConnectionDone(reason)))
            leftover.extend(repr(call) for call in clock.getDelayedCalls())

        def settle() -> None:
            # A real transport reports the loss soon after the channel closed.
            if transport.closed and not lost:
                loseConnection("closed")

        pending = [chunk for chunk in chunks if chunk]
        eofPending = eof

        def pump() -> None:
            # Deliver reads while the transport reads: not once closed, not while
            # the channel paused it; the EOF comes after the last read.
            nonlocal eofPending
            while not transport.closed and transport.producerState != "paused":
                if pending:
                    channel.dataReceived(pending.pop(0))
                elif eofPending:
                    eofPending = False
                    channel.readConnectionLost()
                else:
                    break
                settle()

        pump()
        for step in advances:
            clock.advance(step)
            settle()
            pump()
        # Let time pass until nothing is scheduled: every timer fires, in order.
        for _ in range(IDLE_STEPS):
            calls = clock.getDelayedCalls()
            if not calls:
                break
            clock.advance(
                max(0.0, min(call.getTime() for call in calls) - clock.seconds())
            )
            settle()
            pump()
        closedByServer = transport.closed
        servingAtEnd = app.unfinished()
        if not lost:
            loseConnection("the peer went away")
        return ChannelOutcome(
            transport.value(),
            transport,
            app,
            events,
            closedByServer,
            servingAtEnd,
            leftover,
        )
    finally:
        globalLogPublisher.removeObserver(observe)


def checkOutcome(outcome: ChannelOutcome) -> None:
    """Check the channel's contract on one outcome; raise AssertionError if broken."""
    output = outcome.output
    transport = outcome.transport
    app = outcome.app
    assert not transport.lateWrites, (
        f"written after the close: {transport.lateWrites!r}"
    )
    if output.startswith(b"HTTP/"):
        # Only an HTTP request, refused before any dispatch, is answered in HTTP.
        try:
            response = parseHTTPRefusal(output)
        except ValueError as error:
            raise AssertionError(f"not one HTTP refusal: {error}") from None
        assert response.status == 400, output[:300]
        assert not app.requests, f"an HTTP answer after a dispatch: {output[:300]!r}"
    elif output:
        try:
            response = parseResponse(output)
        except ValueError as error:
            raise AssertionError(f"not one CGI response: {error}") from None
        assert response.reason, output[:200]
        length = response.header(b"Content-Length")
        bodiless = response.status in (204, 304) or any(
            request.method == b"HEAD" for request in app.requests
        )
        if bodiless:
            assert response.body == b"", f"a body for HEAD: {output[:300]!r}"
        elif length is not None:
            assert int(length) == len(response.body), (
                f"Content-Length {length!r} but {len(response.body)} body bytes: "
                f"{output[:300]!r}"
            )
        else:
            assert transport.closed, "an unsized body must be ended by a close"
        assert b"Status:" not in response.body, f"a second response: {output!r}"
        assert response.header(b"Transfer-Encoding") is None, output[:300]
        assert not response.values(b"Set-Cookie"), f"a header injected: {output!r}"
        assert not 200 <= response.status < 300 or app.requests, (
            f"a success no application produced: {output[:300]!r}"
        )
    unfinished = app.unfinished()
    assert not unfinished, f"requests never told how they ended: {unfinished}"
    assert outcome.closedByServer or outcome.servingAtEnd, (
        f"the connection is still open after every timeout: {output[:300]!r}"
    )
    assert not outcome.leftoverCalls, f"timers left running: {outcome.leftoverCalls}"
    ours = [
        event
        for event in outcome.events
        if str(event.get("log_namespace", "")).startswith("scgi_twisted")
    ]
    assert len(ours) <= 1, [formatEvent(event) for event in ours]
    bad = [
        event
        for event in outcome.events
        if "log_failure" in event
        or event.get("log_level") in (LogLevel.error, LogLevel.critical)
    ]
    assert not bad, [formatEvent(event) for event in bad] + [
        event["log_failure"].getTraceback() for event in bad if "log_failure" in event
    ]
