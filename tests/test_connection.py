"""Tests for the connection under the channel: its phase and its one deadline timer.

Strategy: a real ``SCGISite`` on a ``Clock`` builds the channel, which is connected to
a ``StringTransport``; the requests are encoded by the package's own client encoder.
Each test follows :attr:`SCGIChannel.phase` and the clock's delayed calls through a
connection's life, so that the phase is what the code does (the behaviour behind
each phase, bytes and closes, is pinned in ``tests/test_channel.py``), and the phase
deadlines (header, idle body, linger, abort after close) are one timer at a time.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request
from zope.interface import implementer

from scgi_twisted import (
    IStreamingUploadResource,
    SCGIChannel,
    SCGISite,
    deliverBody,
)
from scgi_twisted._clientsansio import encode_request
from scgi_twisted._connection import Phase


class _Transport(StringTransport):
    """A ``StringTransport`` that records an abort (``aborted``)."""

    aborted = False

    def abortConnection(self) -> None:
        """Record the abort, then close as ``StringTransport`` does."""
        self.aborted = True
        super().abortConnection()


class _Holding(Resource):
    """A leaf that keeps each request unanswered in :attr:`requests`."""

    isLeaf = True

    def __init__(self) -> None:
        """Start with no request."""
        super().__init__()
        self.requests: list[Request] = []

    def render(self, request: Request) -> int:
        """Keep the request; answer later."""
        self.requests.append(request)
        return NOT_DONE_YET


class _Counting(Protocol):
    """Receives a streamed body and answers with its length once it is complete."""

    def __init__(self, request: Request) -> None:
        """Answer ``request``."""
        self.request = request
        self.received = 0

    def dataReceived(self, data: bytes) -> None:
        """Count the body's bytes."""
        self.received += len(data)

    def connectionLost(self, reason: object = None) -> None:
        """Answer with the count."""
        self.request.write(b"%d" % self.received)
        self.request.finish()


@implementer(IStreamingUploadResource)
class _Streaming(Resource):
    """A leaf that reads its upload as it arrives."""

    isLeaf = True

    def render_POST(self, request: Request) -> int:
        """Deliver the body to a counter."""
        deliverBody(request, _Counting(request))
        return NOT_DONE_YET


class _Answering(Resource):
    """A leaf that answers at once, with ``size`` bytes."""

    isLeaf = True

    def __init__(self, size: int) -> None:
        """Answer with ``size`` bytes."""
        super().__init__()
        self.size = size

    def render(self, request: Request) -> bytes:
        """Answer."""
        return b"x" * self.size


@contextmanager
def _noCollector() -> Iterator[None]:
    """Run the block with the cyclic garbage collector off."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class _Connected(SynchronousTestCase):
    """A site on a clock, and a way to open a connection to it."""

    def setUp(self) -> None:
        """Make the clock and the resource."""
        self.clock = Clock()
        self.root = _Holding()

    def connect(self, **options: Any) -> tuple[SCGIChannel, _Transport]:
        """Open a connection to a site made with ``options``."""
        site = SCGISite(self.root, reactor=self.clock, **options)
        channel = site.buildProtocol(None)
        assert isinstance(channel, SCGIChannel)
        transport = _Transport()
        channel.makeConnection(transport)
        return channel, transport

    def lose(self, channel: SCGIChannel) -> None:
        """Tell the channel its connection is gone."""
        channel.connectionLost(Failure(ConnectionError("gone")))


class PhaseTests(_Connected):
    """The phase follows the request, and a refusal, through the connection."""

    def test_requestPhases(self) -> None:
        """HEAD, BODY while the body arrives, PROCESSING, CLOSING after the answer.

        The phase moves at each step of the request, not before: half a header block
        leaves HEAD, half a body leaves BODY.
        """
        channel, transport = self.connect()
        head = encode_request(b"POST", b"/", (), (), 4)
        self.assertIs(channel.phase, Phase.HEAD)
        channel.dataReceived(head[:5])
        self.assertIs(channel.phase, Phase.HEAD)
        channel.dataReceived(head[5:] + b"ab")
        self.assertIs(channel.phase, Phase.BODY)
        channel.dataReceived(b"cd")
        self.assertIs(channel.phase, Phase.PROCESSING)
        (request,) = self.root.requests
        assert request.content is not None
        self.assertEqual(request.content.read(), b"abcd")
        self.assertFalse(transport.disconnecting)
        request.write(b"done")
        request.finish()
        self.assertIs(channel.phase, Phase.CLOSING)
        self.assertTrue(transport.disconnecting)
        self.assertIn(b"done", transport.value())
        self.lose(channel)
        self.assertIs(channel.phase, Phase.CLOSED)

    def test_refusalDrains(self) -> None:
        """A refused request is answered, then DRAINING until the peer's EOF."""
        channel, transport = self.connect()
        channel.dataReceived(b"x:")
        self.assertIs(channel.phase, Phase.DRAINING)
        self.assertTrue(transport.value().startswith(b"Status: 400"))
        self.assertFalse(transport.disconnecting)
        channel.dataReceived(b"more bytes the peer still sends")
        self.assertIs(channel.phase, Phase.DRAINING)
        channel.readConnectionLost()
        self.assertIs(channel.phase, Phase.CLOSING)
        self.assertTrue(transport.disconnecting)

    def test_lostWhileProcessing(self) -> None:
        """A connection lost mid-request is CLOSED, and its request is told."""
        channel, _ = self.connect()
        channel.dataReceived(encode_request(b"GET", b"/", (), (), 0))
        self.assertIs(channel.phase, Phase.PROCESSING)
        (request,) = self.root.requests
        lost: list[Failure] = []
        request.notifyFinish().addErrback(lost.append)
        self.lose(channel)
        self.assertIs(channel.phase, Phase.CLOSED)
        self.assertEqual(len(lost), 1)


class TimerTests(_Connected):
    """The phase deadlines are one timer, moved from phase to phase."""

    def test_headerDeadlineBecomesIdleDeadline(self) -> None:
        """The header deadline is moved to the idle deadline: one call at a time.

        Each read of the body moves it; the complete request stops it, and the
        application then has all the time it needs.
        """
        channel, _ = self.connect(timeout=10.0, header_timeout=3.0)
        (call,) = self.clock.getDelayedCalls()
        self.assertEqual(call.getTime(), 3.0)
        self.clock.advance(2)
        channel.dataReceived(encode_request(b"POST", b"/", (), (), 2) + b"a")
        (call,) = self.clock.getDelayedCalls()
        self.assertEqual(call.getTime(), 12.0)
        self.clock.advance(5)
        channel.dataReceived(b"b")
        self.assertIs(channel.phase, Phase.PROCESSING)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(1000)
        self.assertIs(channel.phase, Phase.PROCESSING)

    def test_headerTimeoutThenAbort(self) -> None:
        """At the header deadline: 408, close, and the abort deadline on one timer."""
        channel, transport = self.connect(header_timeout=3.0, abort_timeout=7.0)
        channel.dataReceived(b"12:")
        self.clock.advance(3)
        self.assertTrue(transport.value().startswith(b"Status: 408"))
        self.assertIs(channel.phase, Phase.CLOSING)
        self.assertTrue(transport.disconnecting)
        (call,) = self.clock.getDelayedCalls()
        self.assertEqual(call.getTime(), 10.0)
        self.assertFalse(transport.aborted)
        self.clock.advance(7)
        self.assertTrue(transport.aborted)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_lingerMovedByReads(self) -> None:
        """While draining, each read moves the linger deadline; silence aborts."""
        channel, transport = self.connect(linger_timeout=5.0)
        channel.dataReceived(b"x:")
        self.assertIs(channel.phase, Phase.DRAINING)
        (call,) = self.clock.getDelayedCalls()
        self.clock.advance(4)
        channel.dataReceived(b"still sending")
        self.assertEqual(self.clock.getDelayedCalls(), [call])
        self.clock.advance(4)
        self.assertFalse(transport.aborted)
        self.clock.advance(1)
        self.assertTrue(transport.aborted)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_noTimerOnceClosed(self) -> None:
        """A lost connection leaves no delayed call behind, whatever its phase."""
        for data in (b"12:", encode_request(b"POST", b"/", (), (), 5), b"x:", None):
            channel, _ = self.connect()
            if data is not None:
                channel.dataReceived(data)
            self.assertEqual(len(self.clock.getDelayedCalls()), 1, data)
            self.lose(channel)
            self.assertEqual(self.clock.getDelayedCalls(), [], data)


class FreedTests(SynchronousTestCase):
    """A closed connection is freed at once, by reference counting.

    A reference cycle through the channel (a method of it kept on it, or on a part
    that it holds) would keep the connection, its request and the response's
    buffers alive until the cyclic collector runs.
    """

    def assertFreed(
        self, root: Resource, data: bytes, act: Callable[[Any], object] = repr
    ) -> None:
        """Serve ``data`` (then ``act(clock)``), lose the connection, find it freed."""
        with _noCollector():
            clock = Clock()
            site = SCGISite(root, reactor=clock, stream_uploads=True)
            site.log = lambda request: None  # type: ignore[method-assign]
            channel = site.buildProtocol(None)
            assert channel is not None
            transport = StringTransport()
            channel.makeConnection(transport)
            channel.dataReceived(data)
            act(clock)
            self.assertTrue(transport.value().startswith(b"Status: "))
            channel.connectionLost(Failure(ConnectionError("gone")))
            freed = weakref.ref(channel)
            del channel, transport
            self.assertIsNone(freed())
            self.assertEqual(clock.getDelayedCalls(), [])

    def test_answered(self) -> None:
        """A short answer and a 1 MiB one (watched by the write timeout) are freed."""
        for size in (5, 1024 * 1024):
            self.assertFreed(_Answering(size), encode_request(b"GET", b"/"))

    def test_streamedUpload(self) -> None:
        """A streamed upload, its receiver and its producer are freed."""
        body = b"0123456789"
        self.assertFreed(
            _Streaming(), encode_request(b"POST", b"/", (), (), len(body)) + body
        )

    def test_timedOut(self) -> None:
        """A request that timed out (closed, then aborted) is freed."""
        self.assertFreed(_Answering(1), b"12:", lambda clock: clock.advance(60))
