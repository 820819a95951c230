"""Streaming request bodies in memory: ``IStreamingUploadResource``, ``deliverBody``.

Every test drives the real channel of an ``SCGISite(root, reactor=Clock(),
stream_uploads=True)`` (streaming is off by default: the tests opt in) on a
``StringTransport`` (:func:`tests.support.memory.connect`): it sends the header
block, then
the body in whatever pieces it likes, and watches what the body's receiver gets,
the transport's ``producerState`` (``pauseProducing`` sets ``"paused"``), what the
channel wrote, and when it closed.  A closed connection is a transport flag, so a
test that needs the loss calls ``connectionLost`` itself.

What is pinned, by class: delivery of the body in pieces; ``deliverBody`` called
later; flow control (pause, resume, stop); answers before the body is complete and
the drain after them; the frontend going away; the idle timeout; the misuses of
``deliverBody``; and the standard path, which must not change: a resource that does
not stream is traversed once, after which it is rendered with its complete body.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import ResponseDone
from twisted.web.http import HTTPChannel
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET, Site
from zope.interface import implementer
from zope.interface.verify import verifyObject

from scgi_twisted import (
    IStreamingUploadResource,
    NotStreamingError,
    PrematureEOFError,
    SCGIChannel,
    SCGISite,
    deliverBody,
)
from scgi_twisted.testing import SCGITestClient

from ._streaming_app import StreamingHash
from .support.apps import WebRequest
from .support.memory import HalfCloseTransport, collectLogEvents, connect
from .support.scgi import buildRequest, nginxVariables, parseResponse


def _failure(error: BaseException) -> Failure:
    """Wrap an exception in a ``Failure``."""
    return Failure(error)


# The body's receiver and the resources under test.


class BodyRecorder(Protocol):
    """A body receiver that records what it is given.

    The hooks choose its behaviour: each is called after the event is recorded.

    :ivar chunks: the pieces of body, in order.
    :ivar reasons: every ``connectionLost`` reason (there must be exactly one).
    :ivar producer: the flow-control object it was connected to.
    :ivar request: the request whose body it receives (set by :class:`Sink`).
    """

    request: Any = None

    def __init__(
        self,
        onConnect: Callable[[BodyRecorder], object] | None = None,
        onData: Callable[[BodyRecorder, bytes], object] | None = None,
        onLost: Callable[[BodyRecorder, Failure], object] | None = None,
    ) -> None:
        self.chunks: list[bytes] = []
        self.reasons: list[Failure] = []
        self.producer: Any = None
        self._onConnect = onConnect
        self._onData = onData
        self._onLost = onLost

    @property
    def body(self) -> bytes:
        """Every byte received so far."""
        return b"".join(self.chunks)

    @property
    def reason(self) -> Failure | None:
        """The one ``connectionLost`` reason, or ``None`` before it."""
        assert len(self.reasons) <= 1, f"connectionLost called twice: {self.reasons}"
        return self.reasons[0] if self.reasons else None

    def connectionMade(self) -> None:
        """Keep the producer."""
        self.producer = self.transport
        if self._onConnect is not None:
            self._onConnect(self)

    def dataReceived(self, data: bytes) -> None:
        """Record a piece of body."""
        self.chunks.append(data)
        if self._onData is not None:
            self._onData(self, data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Record the end of the body."""
        self.reasons.append(reason)
        if self._onLost is not None:
            self._onLost(self, reason)


@implementer(IStreamingUploadResource)
class Sink(Resource):
    """A streaming leaf: every request is kept, and its body goes to a recorder.

    :param render: what ``render`` does after recording the request; by default it
        calls ``deliverBody`` with a new :class:`BodyRecorder` and returns
        ``NOT_DONE_YET``.

    :ivar requests: the requests rendered, in order.
    :ivar receivers: the receivers given to ``deliverBody`` by :meth:`deliver`.
    :ivar finishes: how each request's ``notifyFinish()`` ended: ``None`` for
        success, else the failure (absent while it has not fired).
    :ivar contents: ``request.content`` as it was during ``render``.
    """

    isLeaf = True

    def __init__(
        self,
        render: Callable[[Sink, WebRequest], bytes | int] | None = None,
        receiver: Callable[[], BodyRecorder] = BodyRecorder,
    ) -> None:
        super().__init__()
        self._render = render
        self._receiver = receiver
        self.requests: list[WebRequest] = []
        self.receivers: list[BodyRecorder] = []
        self.finishes: list[Failure | None] = []
        self.contents: list[bytes] = []

    def render(self, request: WebRequest) -> bytes | int:
        """Record the request, then deliver its body or do as told."""
        self.requests.append(request)
        self.contents.append(request.content.read())
        request.notifyFinish().addBoth(self.finishes.append)
        if self._render is not None:
            return self._render(self, request)
        self.deliver(request)
        return NOT_DONE_YET

    def deliver(self, request: WebRequest) -> BodyRecorder:
        """Deliver the body of ``request`` to a new receiver, and return it."""
        receiver = self._receiver()
        receiver.request = request
        self.receivers.append(receiver)
        deliverBody(request, receiver)
        return receiver

    @property
    def receiver(self) -> BodyRecorder:
        """The only receiver."""
        assert len(self.receivers) == 1, self.receivers
        return self.receivers[0]


class Counting(Resource):
    """A resource that counts how often it is asked for a child."""

    def __init__(self) -> None:
        super().__init__()
        self.lookups: list[bytes] = []

    def getChildWithDefault(self, path: bytes, request: Any) -> IResource:
        """Record the lookup, then look up as usual."""
        self.lookups.append(path)
        child: IResource = super().getChildWithDefault(path, request)
        return child


@dataclass(frozen=True)
class Paths:
    """Where a request was in the tree when it was rendered."""

    uri: bytes
    path: bytes
    args: dict[bytes, list[bytes]]
    prepath: list[bytes]
    postpath: list[bytes]
    sitepath: list[bytes]
    prePathURL: bytes

    @classmethod
    def of(cls, request: WebRequest) -> Paths:
        """Take the snapshot now."""
        return cls(
            uri=request.uri,
            path=request.path,
            args=dict(request.args),
            prepath=list(request.prepath),
            postpath=list(request.postpath),
            sitepath=list(request.sitepath),
            prePathURL=request.prePathURL(),
        )


class PathRecorder(Resource):
    """An ordinary leaf that records the request's paths and its complete body."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.paths: list[Paths] = []
        self.contents: list[bytes] = []

    def render(self, request: WebRequest) -> bytes:
        """Record, and answer ``ok``."""
        self.paths.append(Paths.of(request))
        self.contents.append(request.content.read())
        return b"ok"


def _answer(request: WebRequest, code: int, body: bytes = b"") -> None:
    """Write a complete response with a length."""
    request.setResponseCode(code)
    request.setHeader(b"Content-Length", b"%d" % len(body))
    request.write(body)
    request.finish()


# The test case.


class StreamingTestCase(SynchronousTestCase):
    """Shared set-up: a clock, recorded logs, and request builders."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.logged = collectLogEvents(self)

    def makeSite(self, root: IResource, **options: Any) -> SCGISite:
        """Build a site on the test's clock that streams uploads at every path.

        Streaming is off by default; these tests opt in explicitly
        (``stream_uploads=True``) unless they pass their own ``stream_uploads``.
        """
        options.setdefault("stream_uploads", True)
        return SCGISite(root, reactor=self.clock, **options)

    def open(
        self, root: IResource | SCGISite, **options: Any
    ) -> tuple[SCGIChannel, HalfCloseTransport]:
        """Connect a new channel of a site (built for ``root`` if not a site)."""
        site = root if isinstance(root, SCGISite) else self.makeSite(root, **options)
        return connect(site)

    def head(
        self, length: int, uri: bytes = b"/", method: bytes = b"POST", **more: bytes
    ) -> bytes:
        """Return the header block of a request whose body is ``length`` bytes."""
        variables = nginxVariables(uri, REQUEST_METHOD=method, **more)
        return buildRequest(variables, contentLength=length)

    def assertDone(self, receiver: BodyRecorder) -> None:
        """The receiver was told, once, that the body is complete."""
        reason = receiver.reason
        self.assertIsNotNone(reason, "the receiver was not told the body ended")
        assert reason is not None
        self.assertIsNotNone(reason.check(ResponseDone), reason)

    def assertFailed(
        self, receiver: BodyRecorder, kind: type[BaseException] = Exception
    ) -> Failure:
        """The receiver was told, once, that the body will never be complete."""
        reason = receiver.reason
        self.assertIsNotNone(reason, "the receiver was not told the body ended")
        assert reason is not None
        self.assertIsNone(reason.check(ResponseDone), "told complete, not failed")
        self.assertIsNotNone(reason.check(kind), reason)
        return reason

    def failures(self) -> list[Failure]:
        """Return the failures logged so far."""
        return [event["log_failure"] for event in self.logged if "log_failure" in event]


def _answerWhenDone(receiver: BodyRecorder, reason: Failure) -> None:
    """On a complete body, answer with its SHA-256."""
    if reason.check(ResponseDone):
        digest = hashlib.sha256(receiver.body).hexdigest().encode()
        _answer(receiver.request, 200, digest)


def answeringSink() -> Sink:
    """A sink whose receivers answer with the body's SHA-256 once it is complete."""
    return Sink(receiver=lambda: BodyRecorder(onLost=_answerWhenDone))


class DeliveryTests(StreamingTestCase):
    """The body reaches the receiver in pieces, as it arrives, and then its end."""

    def test_renderedWhenHeadersArrive(self) -> None:
        """The resource is rendered once the header block is in, with no body yet."""
        sink = Sink()
        channel, _ = self.open(sink)
        channel.dataReceived(self.head(10, b"/upload?x=1"))
        self.assertEqual(len(sink.requests), 1)
        request = sink.requests[0]
        self.assertEqual(
            (request.method, request.uri, request.args),
            (b"POST", b"/upload?x=1", {b"x": [b"1"]}),
        )
        self.assertEqual(sink.contents, [b""])
        self.assertEqual(sink.receiver.chunks, [])
        self.assertIsNone(sink.receiver.reason)

    def test_bodyInPieces(self) -> None:
        """Each read is handed on as it arrives; the end comes after the last byte."""
        sink = Sink()
        channel, _ = self.open(sink)
        channel.dataReceived(self.head(10))
        receiver = sink.receiver
        for piece in [b"abc", b"defg"]:
            channel.dataReceived(piece)
            self.assertEqual(receiver.chunks[-1], piece)
            self.assertIsNone(receiver.reason)
        channel.dataReceived(b"hij")
        self.assertEqual(receiver.chunks, [b"abc", b"defg", b"hij"])
        self.assertDone(receiver)

    def test_manyReads(self) -> None:
        """A request cut into one-byte reads gives the exact body, then one end."""
        body = random.Random(1).randbytes(300)
        data = buildRequest(nginxVariables(b"/", REQUEST_METHOD=b"POST"), body)
        sink = Sink()
        channel, _ = self.open(sink)
        for index in range(len(data)):
            channel.dataReceived(data[index : index + 1])
        self.assertEqual(sink.receiver.body, body)
        self.assertEqual(len(sink.receiver.chunks), len(body))
        self.assertDone(sink.receiver)

    def test_wholeRequestInOneRead(self) -> None:
        """Headers and body in one read: the body arrives whole, then the end."""
        sink = Sink()
        channel, _ = self.open(sink)
        channel.dataReceived(self.head(5) + b"hello")
        self.assertEqual(sink.receiver.chunks, [b"hello"])
        self.assertDone(sink.receiver)

    def test_nothingPastContentLength(self) -> None:
        """Bytes after CONTENT_LENGTH are never given to the receiver."""
        sink = Sink()
        channel, _ = self.open(sink)
        channel.dataReceived(self.head(5) + b"hel")
        channel.dataReceived(b"lo and more")
        channel.dataReceived(b"even more")
        self.assertEqual(sink.receiver.body, b"hello")
        self.assertDone(sink.receiver)

    def test_answerOnceComplete(self) -> None:
        """An answer written at the body's end is sent, then the connection closes."""
        sink = answeringSink()
        channel, transport = self.open(sink)
        channel.dataReceived(self.head(6) + b"abc")
        self.assertEqual(transport.value(), b"")
        channel.dataReceived(b"def")
        response = parseResponse(transport.value())
        self.assertEqual(response.status, 200)
        self.assertEqual(response.body, hashlib.sha256(b"abcdef").hexdigest().encode())
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.writeClosed)
        self.assertEqual(sink.finishes, [None])

    def test_producer(self) -> None:
        """The receiver's transport is an ``IPushProducer``."""
        sink = Sink()
        channel, _ = self.open(sink)
        channel.dataReceived(self.head(1))
        self.assertTrue(verifyObject(IPushProducer, sink.receiver.producer))

    def test_requestAsWithoutBody(self) -> None:
        """The streamed request is where an ordinary one is in the tree.

        Under a mount, the paths, args and URL seen in ``render`` are those of the
        same request without a body (rendered the ordinary way).
        """
        paths: list[Paths] = []

        def record(_: Sink, request: WebRequest) -> bytes:
            paths.append(Paths.of(request))
            return b"ok"

        sink = Sink(render=record)
        app = Resource()
        app.putChild(b"upload", sink)
        site = self.makeSite(app, mount="/app")
        uri = b"/app/upload/a%2Fb/c?q=1&q=2"
        for method, length in [(b"GET", 0), (b"POST", 3)]:
            channel, transport = connect(site)
            channel.dataReceived(self.head(length, uri, method) + b"x" * length)
            self.assertEqual(parseResponse(transport.value()).status, 200)
        self.assertEqual(len(paths), 2)
        self.assertEqual(paths[0], paths[1])
        self.assertEqual(paths[1].prepath, [b"app", b"upload"])
        self.assertEqual(paths[1].postpath, [b"a/b", b"c"])
        self.assertEqual(paths[1].sitepath, [b"app"])

    def test_streamingHash(self) -> None:
        """The shared ``StreamingHash`` resource hashes an upload through the client."""
        body = random.Random(2).randbytes(200_000)
        client = SCGITestClient(StreamingHash(Clock()), stream_uploads=True)
        response = client.post("/", body)
        self.assertEqual(response.status, 200)
        answer = json.loads(response.body)
        self.assertEqual(answer["length"], len(body))
        self.assertEqual(answer["sha256"], hashlib.sha256(body).hexdigest())


class LateDeliveryTests(StreamingTestCase):
    """``deliverBody`` called after ``render`` returned: the body waits for it."""

    def setUp(self) -> None:
        super().setUp()
        self.release: Deferred[None] = Deferred()

        def later(sink: Sink, request: WebRequest) -> int:
            self.release.addCallback(lambda _: sink.deliver(request))
            return NOT_DONE_YET

        self.sink = Sink(render=later)

    def test_heldAndPaused(self) -> None:
        """Body read before ``deliverBody`` is held, and the transport is paused.

        Once ``deliverBody`` is called, the held bytes come first, in order, and the
        transport reads again.
        """
        channel, transport = self.open(self.sink)
        channel.dataReceived(self.head(9) + b"abc")
        self.assertEqual(transport.producerState, "paused")
        channel.dataReceived(b"def")
        self.assertEqual(self.sink.receivers, [])
        self.release.callback(None)
        receiver = self.sink.receiver
        self.assertEqual(receiver.body, b"abcdef")
        self.assertEqual(transport.producerState, "producing")
        self.assertIsNone(receiver.reason)
        channel.dataReceived(b"ghi")
        self.assertEqual(receiver.body, b"abcdefghi")
        self.assertDone(receiver)

    def test_wholeBodyHeld(self) -> None:
        """A body read whole before ``deliverBody`` is given whole, then ends."""
        channel, transport = self.open(self.sink)
        channel.dataReceived(self.head(5) + b"hello")
        self.assertEqual(transport.producerState, "paused")
        self.release.callback(None)
        self.assertEqual(self.sink.receiver.body, b"hello")
        self.assertDone(self.sink.receiver)

    def test_noTimeoutWhileHeld(self) -> None:
        """While the body waits for ``deliverBody`` the idle timeout does not run."""
        channel, transport = self.open(self.sink, timeout=10)
        channel.dataReceived(self.head(9) + b"abc")
        self.clock.advance(100)
        self.assertEqual(transport.value(), b"")
        self.assertFalse(transport.disconnecting)
        self.release.callback(None)
        self.clock.advance(9)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(1)
        self.assertEqual(parseResponse(transport.value()).status, 408)

    def test_pauseWhileHeldBodyIsGiven(self) -> None:
        """A receiver that pauses on a held piece gets no more of them until it resumes.

        The transport stays paused meanwhile.
        """
        self.sink = Sink(
            render=self.sink._render,
            receiver=lambda: BodyRecorder(
                onData=lambda receiver, _: receiver.producer.pauseProducing()
            ),
        )
        channel, transport = self.open(self.sink)
        channel.dataReceived(self.head(9) + b"abc")
        channel.dataReceived(b"def")
        self.release.callback(None)
        receiver = self.sink.receiver
        self.assertEqual(receiver.chunks, [b"abc"])
        self.assertEqual(transport.producerState, "paused")
        receiver.producer.resumeProducing()
        self.assertEqual(receiver.chunks, [b"abc", b"def"])
        self.assertEqual(transport.producerState, "paused")
        receiver.producer.resumeProducing()
        self.assertEqual(transport.producerState, "producing")
        channel.dataReceived(b"ghi")
        self.assertEqual(receiver.body, b"abcdefghi")
        receiver.producer.resumeProducing()
        self.assertDone(receiver)

    def test_lostBeforeDeliverBody(self) -> None:
        """A connection lost before ``deliverBody``: the held body, then the failure.

        ``notifyFinish()`` has failed already; the receiver still gets what arrived
        and the same failure, not a silent truncation.
        """
        channel, _ = self.open(self.sink)
        channel.dataReceived(self.head(9) + b"abc")
        channel.connectionLost(_failure(ConnectionLost("reset")))
        self.assertEqual(len(self.sink.finishes), 1)
        finished = self.sink.finishes[0]
        assert finished is not None
        self.assertIsNotNone(finished.check(ConnectionLost))
        self.release.callback(None)
        receiver = self.sink.receiver
        self.assertEqual(receiver.body, b"abc")
        self.assertFailed(receiver, ConnectionLost)


class FlowControlTests(StreamingTestCase):
    """The receiver pauses, resumes and stops the body; the transport follows."""

    def pausingSink(self, every: int = 1) -> Sink:
        """A sink whose receiver pauses after every ``every`` pieces."""

        def onData(receiver: BodyRecorder, _: bytes) -> None:
            if len(receiver.chunks) % every == 0:
                receiver.producer.pauseProducing()

        return Sink(receiver=lambda: BodyRecorder(onData=onData))

    def test_pausePausesTransport(self) -> None:
        """A pause pauses the transport; nothing is delivered until the resume."""
        sink = self.pausingSink()
        channel, transport = self.open(sink)
        channel.dataReceived(self.head(9) + b"abc")
        receiver = sink.receiver
        self.assertEqual(transport.producerState, "paused")
        channel.dataReceived(b"def")
        channel.dataReceived(b"ghi")
        self.assertEqual(receiver.chunks, [b"abc"])
        receiver.producer.resumeProducing()
        self.assertEqual(receiver.chunks, [b"abc", b"def"])
        receiver.producer.resumeProducing()
        self.assertEqual(receiver.body, b"abcdefghi")
        self.assertIsNone(receiver.reason)
        receiver.producer.resumeProducing()
        self.assertEqual(transport.producerState, "producing")
        self.assertDone(receiver)

    def test_pauseAtConnect(self) -> None:
        """A receiver that pauses in ``connectionMade`` gets nothing until resumed."""
        sink = Sink(
            receiver=lambda: BodyRecorder(
                onConnect=lambda receiver: receiver.producer.pauseProducing()
            )
        )
        channel, transport = self.open(sink)
        channel.dataReceived(self.head(6))
        self.assertEqual(transport.producerState, "paused")
        channel.dataReceived(b"abcdef")
        self.assertEqual(sink.receiver.chunks, [])
        sink.receiver.producer.resumeProducing()
        self.assertEqual(transport.producerState, "producing")
        self.assertEqual(sink.receiver.body, b"abcdef")
        self.assertDone(sink.receiver)

    def test_pauseAndResumeInOneCall(self) -> None:
        """A pause undone within the same ``dataReceived`` does not stop the flow."""

        def onData(receiver: BodyRecorder, _: bytes) -> None:
            receiver.producer.pauseProducing()
            receiver.producer.resumeProducing()

        sink = Sink(receiver=lambda: BodyRecorder(onData=onData))
        channel, transport = self.open(sink)
        channel.dataReceived(self.head(6) + b"abc")
        channel.dataReceived(b"def")
        self.assertEqual(transport.producerState, "producing")
        self.assertEqual(sink.receiver.chunks, [b"abc", b"def"])
        self.assertDone(sink.receiver)

    def test_pausedReceiverIsNotToldTheEnd(self) -> None:
        """A receiver paused after the last piece learns of the end once it resumes."""
        sink = self.pausingSink()
        channel, _ = self.open(sink)
        channel.dataReceived(self.head(3) + b"abc")
        self.assertIsNone(sink.receiver.reason)
        sink.receiver.producer.resumeProducing()
        self.assertDone(sink.receiver)

    def test_resumeWithoutPause(self) -> None:
        """``resumeProducing`` without a pause changes nothing."""
        sink = Sink()
        channel, transport = self.open(sink)
        channel.dataReceived(self.head(6) + b"abc")
        sink.receiver.producer.resumeProducing()
        self.assertEqual(transport.producerState, "producing")
        self.assertEqual(sink.receiver.chunks, [b"abc"])
        channel.dataReceived(b"def")
        self.assertDone(sink.receiver)

    def test_producerInertAfterEnd(self) -> None:
        """Once the body is complete, pausing the producer does not pause the transport.

        The channel must go on reading, to notice the frontend going away.
        """
        sink = Sink()
        channel, transport = self.open(sink)
        channel.dataReceived(self.head(3) + b"abc")
        self.assertDone(sink.receiver)
        sink.receiver.producer.pauseProducing()
        self.assertEqual(transport.producerState, "producing")
        sink.receiver.producer.stopProducing()
        sink.receiver.producer.resumeProducing()
        self.assertEqual(len(sink.receiver.reasons), 1)

    def test_stopProducing(self) -> None:
        """After ``stopProducing`` the receiver gets nothing more, and its end at once.

        The end is a failure (the body will never be complete for it); the rest of
        the body is still read, and the connection closes once the response is
        written, not before.
        """
        sink = Sink(
            receiver=lambda: BodyRecorder(
                onData=lambda receiver, _: receiver.producer.stopProducing()
            )
        )
        channel, transport = self.open(sink)
        channel.dataReceived(self.head(9) + b"abc")
        receiver = sink.receiver
        self.assertFailed(receiver, ConnectionDone)
        channel.dataReceived(b"def")
        channel.dataReceived(b"ghi")
        self.assertEqual(receiver.chunks, [b"abc"])
        self.assertEqual(transport.producerState, "producing")
        self.assertFalse(transport.disconnecting)
        _answer(sink.requests[0], 204)
        self.assertEqual(parseResponse(transport.value()).status, 204)
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.writeClosed)
        self.assertEqual(len(receiver.reasons), 1)

    def test_stopWhilePaused(self) -> None:
        """``stopProducing`` on a paused body makes the transport read again."""
        sink = self.pausingSink()
        channel, transport = self.open(sink)
        channel.dataReceived(self.head(9) + b"abc")
        self.assertEqual(transport.producerState, "paused")
        sink.receiver.producer.stopProducing()
        self.assertEqual(transport.producerState, "producing")
        channel.dataReceived(b"defghi")
        self.assertEqual(sink.receiver.chunks, [b"abc"])
        self.assertFailed(sink.receiver, ConnectionDone)

    def test_stopThenAnswerDrains(self) -> None:
        """A stop then an answer before the body is complete drains the rest."""
        sink = Sink(
            receiver=lambda: BodyRecorder(
                onData=lambda receiver, _: receiver.producer.stopProducing()
            )
        )
        channel, transport = self.open(sink)
        channel.dataReceived(self.head(9) + b"abc")
        _answer(sink.requests[0], 400, b"no")
        self.assertTrue(transport.writeClosed)
        channel.dataReceived(b"defgh")
        self.assertFalse(transport.disconnecting)
        channel.dataReceived(b"i")
        self.assertTrue(transport.disconnecting)


class EarlyAnswerTests(StreamingTestCase):
    """An answer before the body is complete is sent at once; the rest is drained."""

    def refusingSink(self) -> Sink:
        """A sink whose receiver answers 413 after the first piece."""

        def onData(receiver: BodyRecorder, _: bytes) -> None:
            _answer(receiver.request, 413, b"too large")

        return Sink(receiver=lambda: BodyRecorder(onData=onData))

    def test_refusedAfterFirstPiece(self) -> None:
        """A 413 after the first piece is written at once; the close waits for the rest.

        The channel half-closes, reads up to CONTENT_LENGTH (giving nothing more to
        the receiver, which was told the body will not complete), and only then
        closes.
        """
        sink = self.refusingSink()
        channel, transport = self.open(sink)
        channel.dataReceived(self.head(1000) + b"x" * 100)
        response = parseResponse(transport.value())
        self.assertEqual((response.status, response.body), (413, b"too large"))
        self.assertTrue(transport.writeClosed)
        self.assertFalse(transport.disconnecting)
        receiver = sink.receiver
        self.assertFailed(receiver, ConnectionDone)
        self.assertEqual(sink.finishes, [None])
        for _ in range(899):
            channel.dataReceived(b"x")
        self.assertFalse(transport.disconnecting)
        channel.dataReceived(b"x")
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.disconnected)
        self.assertEqual(receiver.body, b"x" * 100)
        self.assertEqual(len(receiver.reasons), 1)

    def test_refusedInRender(self) -> None:
        """A resource may refuse without reading; ``deliverBody`` is then refused."""

        def refuse(sink: Sink, request: WebRequest) -> int:
            _answer(request, 403)
            return NOT_DONE_YET

        sink = Sink(render=refuse)
        channel, transport = self.open(sink)
        channel.dataReceived(self.head(10))
        self.assertEqual(parseResponse(transport.value()).status, 403)
        self.assertTrue(transport.writeClosed)
        self.assertRaises(NotStreamingError, sink.deliver, sink.requests[0])
        channel.dataReceived(b"x" * 9)
        self.assertFalse(transport.disconnecting)
        channel.dataReceived(b"x")
        self.assertTrue(transport.disconnecting)

    def test_refusedWithBodyRead(self) -> None:
        """A refusal after the whole body was read closes at once."""
        sink = self.refusingSink()
        channel, transport = self.open(sink)
        channel.dataReceived(self.head(10) + b"x" * 10)
        self.assertEqual(parseResponse(transport.value()).status, 413)
        self.assertTrue(transport.disconnecting)

    def test_refusedWhilePaused(self) -> None:
        """An answer while the receiver has paused the body resumes the transport."""
        sink = Sink(
            receiver=lambda: BodyRecorder(
                onData=lambda receiver, _: receiver.producer.pauseProducing()
            )
        )
        channel, transport = self.open(sink)
        channel.dataReceived(self.head(10) + b"abc")
        self.assertEqual(transport.producerState, "paused")
        _answer(sink.requests[0], 413)
        self.assertEqual(transport.producerState, "producing")
        self.assertFailed(sink.receiver, ConnectionDone)
        channel.dataReceived(b"x" * 7)
        self.assertTrue(transport.disconnecting)

    def test_lingerTimeout(self) -> None:
        """After a refusal, a frontend that stops sending is aborted in time."""
        sink = self.refusingSink()
        channel, transport = self.open(sink, linger_timeout=5)
        channel.dataReceived(self.head(1000) + b"x")
        self.clock.advance(4)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(1)
        self.assertTrue(transport.disconnected)


class DisconnectTests(StreamingTestCase):
    """The frontend going away before the body is complete is never silent."""

    def test_eofMidBody(self) -> None:
        """An EOF mid-body: the receiver gets PrematureEOFError, notifyFinish fails.

        The request is told first: when the receiver hears of it, ``notifyFinish()``
        has already failed, so it knows not to answer.
        """
        seen: list[int] = []
        sink = Sink(
            receiver=lambda: BodyRecorder(
                onLost=lambda receiver, reason: seen.append(len(sink.finishes))
            )
        )
        channel, transport = self.open(sink)
        channel.dataReceived(self.head(10) + b"abc")
        channel.readConnectionLost()
        self.assertFailed(sink.receiver, PrematureEOFError)
        self.assertEqual(seen, [1])
        finished = sink.finishes[0]
        assert finished is not None
        self.assertIsNotNone(finished.check(PrematureEOFError))
        self.assertTrue(transport.disconnecting)
        self.assertEqual(transport.value(), b"")

    def test_resetMidBody(self) -> None:
        """A connection lost mid-body gives its reason to the receiver."""
        sink = Sink()
        channel, _ = self.open(sink)
        channel.dataReceived(self.head(10) + b"abc")
        channel.connectionLost(_failure(ConnectionLost("reset")))
        self.assertFailed(sink.receiver, ConnectionLost)
        self.assertEqual(len(sink.finishes), 1)

    def test_goneAfterBody(self) -> None:
        """Gone after the body: notifyFinish fails; the receiver had ResponseDone."""
        sink = Sink()
        channel, _ = self.open(sink)
        channel.dataReceived(self.head(3) + b"abc")
        channel.readConnectionLost()
        self.assertDone(sink.receiver)
        finished = sink.finishes[0]
        assert finished is not None
        self.assertIsNotNone(finished.check(ConnectionDone))

    def test_noAnswerAfterLoss(self) -> None:
        """A receiver that tries to answer when told of the loss writes nothing."""

        def answerAnyway(receiver: BodyRecorder, reason: Failure) -> None:
            receiver.request.write(b"late")

        sink = Sink(receiver=lambda: BodyRecorder(onLost=answerAnyway))
        channel, transport = self.open(sink)
        channel.dataReceived(self.head(10) + b"abc")
        channel.readConnectionLost()
        self.assertFailed(sink.receiver, PrematureEOFError)
        self.assertEqual(transport.value(), b"")

    def test_receiverErrorOnLoss(self) -> None:
        """A receiver whose ``connectionLost`` raises on a loss: logged, and contained.

        The site still forgets the connection, so the connection limit does not leak.
        """

        def fail(receiver: BodyRecorder, reason: Failure) -> None:
            raise ZeroDivisionError("receiver bug")

        sink = Sink(receiver=lambda: BodyRecorder(onLost=fail))
        site = self.makeSite(sink, max_connections=1)
        channel, _ = connect(site)
        channel.dataReceived(self.head(10) + b"abc")
        self.assertEqual(site.connections, 1)
        channel.connectionLost(_failure(ConnectionLost("reset")))
        self.assertEqual(site.connections, 0)
        self.assertEqual(
            [f.type for f in self.failures()], [ZeroDivisionError], self.failures()
        )
        self.flushLoggedErrors(ZeroDivisionError)

    def test_receiverErrorOnCompletion(self) -> None:
        """A ``connectionLost(ResponseDone)`` that raises answers 500, as in render."""

        def fail(receiver: BodyRecorder, reason: Failure) -> None:
            raise ZeroDivisionError("receiver bug")

        sink = Sink(receiver=lambda: BodyRecorder(onLost=fail))
        channel, transport = self.open(sink)
        channel.dataReceived(self.head(3) + b"abc")
        self.assertEqual(parseResponse(transport.value()).status, 500)
        self.assertTrue(transport.disconnecting)
        self.assertEqual([f.type for f in self.failures()], [ZeroDivisionError])
        self.flushLoggedErrors(ZeroDivisionError)

    def test_receiverErrorOnData(self) -> None:
        """A ``dataReceived`` that raises: 500, the request aborted, the rest read."""

        def fail(receiver: BodyRecorder, data: bytes) -> None:
            raise ZeroDivisionError("receiver bug")

        sink = Sink(receiver=lambda: BodyRecorder(onData=fail))
        channel, transport = self.open(sink)
        channel.dataReceived(self.head(10) + b"abc")
        self.assertEqual(parseResponse(transport.value()).status, 500)
        self.assertFailed(sink.receiver)
        self.assertFalse(transport.disconnecting)
        channel.dataReceived(b"x" * 7)
        self.assertTrue(transport.disconnecting)
        self.flushLoggedErrors(ZeroDivisionError)


class TimeoutTests(StreamingTestCase):
    """While the body streams in, ``timeout`` is an idle timeout, except when paused."""

    def test_idleTimeout(self) -> None:
        """A body that stalls for ``timeout`` seconds: 408, and the receiver fails."""
        sink = Sink()
        channel, transport = self.open(sink, timeout=10)
        channel.dataReceived(self.head(10) + b"abc")
        self.clock.advance(9)
        self.assertEqual(transport.value(), b"")
        self.clock.advance(1)
        self.assertEqual(parseResponse(transport.value()).status, 408)
        self.assertTrue(transport.disconnecting)
        self.assertFailed(sink.receiver, ConnectionDone)
        self.assertEqual(len(sink.finishes), 1)
        self.assertIsNotNone(sink.finishes[0])

    def test_eachReadRestartsTimer(self) -> None:
        """Every read of the body restarts the idle timer."""
        sink = Sink()
        channel, transport = self.open(sink, timeout=10)
        channel.dataReceived(self.head(10))
        for _ in range(10):
            self.clock.advance(9)
            channel.dataReceived(b"x")
        self.assertFalse(transport.disconnecting)
        self.assertDone(sink.receiver)

    def test_noTimeoutWhilePaused(self) -> None:
        """A receiver's pause stops the timer; the resume starts it again."""
        sink = Sink(
            receiver=lambda: BodyRecorder(
                onData=lambda receiver, _: receiver.producer.pauseProducing()
            )
        )
        channel, transport = self.open(sink, timeout=10)
        channel.dataReceived(self.head(10) + b"abc")
        self.clock.advance(1000)
        self.assertEqual(transport.value(), b"")
        self.assertFalse(transport.disconnecting)
        sink.receiver.producer.resumeProducing()
        self.clock.advance(9)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(1)
        self.assertEqual(parseResponse(transport.value()).status, 408)
        self.assertFailed(sink.receiver)

    def test_noTimeoutOnceComplete(self) -> None:
        """Once the body is complete the application has all the time it needs."""
        sink = Sink()
        channel, transport = self.open(sink, timeout=10)
        channel.dataReceived(self.head(3) + b"abc")
        self.clock.advance(1000)
        self.assertFalse(transport.disconnecting)
        _answer(sink.requests[0], 200, b"late")
        self.assertEqual(parseResponse(transport.value()).body, b"late")

    def test_onlyTheTimeoutAnswer(self) -> None:
        """A receiver that answers when told of the timeout cannot add to the 408."""

        def answer(receiver: BodyRecorder, reason: Failure) -> None:
            sink.requests[0].setResponseCode(400)
            sink.requests[0].write(b"bad upload")

        sink = Sink(receiver=lambda: BodyRecorder(onLost=answer))
        channel, transport = self.open(sink, timeout=10)
        channel.dataReceived(self.head(10) + b"abc")
        self.clock.advance(10)
        response = parseResponse(transport.value())
        self.assertEqual(response.status, 408)
        self.assertNotIn(b"bad upload", transport.value())


class DeliverBodyMisuseTests(StreamingTestCase):
    """``deliverBody`` refuses what it cannot do, with ``NotStreamingError``."""

    def test_twice(self) -> None:
        """A second ``deliverBody`` is refused; the first receiver is unaffected."""

        def deliverTwice(sink: Sink, request: WebRequest) -> int:
            sink.deliver(request)
            self.assertRaises(NotStreamingError, deliverBody, request, BodyRecorder())
            return NOT_DONE_YET

        sink = Sink(render=deliverTwice)
        channel, _ = self.open(sink)
        channel.dataReceived(self.head(3) + b"abc")
        self.assertEqual(sink.receiver.body, b"abc")
        self.assertDone(sink.receiver)

    def test_afterTheEnd(self) -> None:
        """Once the body has ended, ``deliverBody`` is refused."""
        sink = Sink()
        channel, _ = self.open(sink)
        channel.dataReceived(self.head(3) + b"abc")
        self.assertDone(sink.receiver)
        self.assertRaises(
            NotStreamingError, deliverBody, sink.requests[0], BodyRecorder()
        )

    def test_ordinaryResource(self) -> None:
        """A resource that does not stream cannot ask for the body; it has it."""
        errors: list[type[BaseException]] = []

        class Ordinary(Resource):
            isLeaf = True

            def render_POST(self, request: WebRequest) -> bytes:
                try:
                    deliverBody(request, BodyRecorder())
                except NotStreamingError as error:
                    errors.append(type(error))
                return request.content.read()

        channel, transport = self.open(Ordinary())
        channel.dataReceived(self.head(3) + b"abc")
        self.assertEqual(errors, [NotStreamingError])
        self.assertEqual(parseResponse(transport.value()).body, b"abc")

    def test_noBody(self) -> None:
        """A streaming resource hit without a body is rendered the ordinary way.

        It is rendered once the request is complete, and ``deliverBody`` is refused.
        """
        errors: list[type[BaseException]] = []

        def tryDeliver(sink: Sink, request: WebRequest) -> bytes:
            try:
                sink.deliver(request)
            except NotStreamingError as error:
                errors.append(type(error))
            return b"ordinary"

        sink = Sink(render=tryDeliver)
        for method in [b"GET", b"POST"]:
            channel, transport = self.open(sink)
            channel.dataReceived(self.head(0, method=method))
            self.assertEqual(parseResponse(transport.value()).body, b"ordinary")
        self.assertEqual(errors, [NotStreamingError, NotStreamingError])
        self.assertEqual(sink.contents, [b"", b""])

    def test_streamUploadsOff(self) -> None:
        """With ``stream_uploads=False`` a streaming resource gets the spooled body."""
        errors: list[type[BaseException]] = []

        def tryDeliver(sink: Sink, request: WebRequest) -> bytes:
            try:
                sink.deliver(request)
            except NotStreamingError as error:
                errors.append(type(error))
            return b"spooled"

        sink = Sink(render=tryDeliver)
        channel, transport = self.open(sink, stream_uploads=False)
        channel.dataReceived(self.head(6) + b"abc")
        self.assertEqual(sink.requests, [])
        channel.dataReceived(b"def")
        self.assertEqual(sink.contents, [b"abcdef"])
        self.assertEqual(errors, [NotStreamingError])
        self.assertEqual(parseResponse(transport.value()).body, b"spooled")

    def test_notSCGI(self) -> None:
        """A request that did not arrive over SCGI is refused."""
        overHTTP = SimpleNamespace(channel=HTTPChannel())
        for request in [overHTTP, SimpleNamespace(), object()]:
            self.assertRaises(NotStreamingError, deliverBody, request, BodyRecorder())


class StandardPathTests(StreamingTestCase):
    """A resource that does not stream sees what it always saw, from one traversal."""

    def tree(self) -> tuple[Counting, Counting, PathRecorder]:
        """Return ``root -> a -> leaf`` with counting inner resources."""
        root, inner, leaf = Counting(), Counting(), PathRecorder()
        root.putChild(b"a", inner)
        inner.putChild(b"leaf", leaf)
        return root, inner, leaf

    def test_traversedOnce(self) -> None:
        """A POST is traversed once and rendered with the whole body."""
        root, inner, leaf = self.tree()
        channel, transport = self.open(root)
        channel.dataReceived(self.head(6, b"/a/leaf/x"))
        self.assertEqual((root.lookups, inner.lookups), ([b"a"], [b"leaf"]))
        self.assertEqual(leaf.contents, [])
        channel.dataReceived(b"abc")
        channel.dataReceived(b"def")
        self.assertEqual((root.lookups, inner.lookups), ([b"a"], [b"leaf"]))
        self.assertEqual(leaf.contents, [b"abcdef"])
        self.assertEqual(leaf.paths[0].postpath, [b"x"])
        self.assertEqual(parseResponse(transport.value()).body, b"ok")

    def test_pathsAsWithoutBody(self) -> None:
        """Paths, args and URL of a POST are those of the same request without a body.

        At the root, under a mount given by the site or by ``SCRIPT_NAME``, and when
        sharing a plain ``Site``.
        """
        cases: list[
            tuple[str, Callable[[IResource], SCGISite], bytes, dict[str, bytes]]
        ]
        cases = [
            ("root", self.makeSite, b"/a/leaf/x%2Fy/z?q=1", {}),
            ("mount", lambda r: self.makeSite(r, mount="/app"), b"/app/a/leaf/x", {}),
            (
                "script name",
                self.makeSite,
                b"/app/a/leaf/x",
                {"SCRIPT_NAME": b"/app", "PATH_INFO": b"/a/leaf/x"},
            ),
            (
                "sharing",
                lambda r: SCGISite.sharing(
                    Site(r, reactor=self.clock), mount="/app", stream_uploads=True
                ),
                b"/app/a/leaf/x?q=2",
                {},
            ),
        ]
        for label, makeSite, uri, variables in cases:
            root, _, leaf = self.tree()
            site = makeSite(root)
            for method, body in [(b"GET", b""), (b"POST", b"abc")]:
                channel, transport = connect(site)
                head = self.head(len(body), uri, method, **variables)
                channel.dataReceived(head + body)
                self.assertEqual(parseResponse(transport.value()).status, 200, label)
            self.assertEqual(len(leaf.paths), 2, label)
            self.assertEqual(leaf.paths[0], leaf.paths[1], label)
            self.assertEqual(leaf.contents, [b"", b"abc"], label)
            self.assertEqual(len(root.lookups), 2, label)

    def test_mountedPaths(self) -> None:
        """Under a mount, the mount's segments are in ``prepath`` and ``sitepath``."""
        root, _, leaf = self.tree()
        channel, _ = self.open(root, mount="/app")
        channel.dataReceived(self.head(3, b"/app/a/leaf/x") + b"abc")
        self.assertEqual(leaf.paths[0].prepath, [b"app", b"a", b"leaf"])
        self.assertEqual(leaf.paths[0].postpath, [b"x"])
        self.assertEqual(leaf.paths[0].sitepath, [b"app"])
        self.assertEqual(
            leaf.paths[0].prePathURL, b"http://example.test:8080/app/a/leaf"
        )

    def test_streamUploadsOffTraversesLate(self) -> None:
        """With ``stream_uploads=False`` the tree is traversed once the body is in."""
        root, inner, leaf = self.tree()
        channel, _ = self.open(root, stream_uploads=False)
        channel.dataReceived(self.head(6, b"/a/leaf") + b"abc")
        self.assertEqual(root.lookups, [])
        channel.dataReceived(b"def")
        self.assertEqual((root.lookups, inner.lookups), ([b"a"], [b"leaf"]))
        self.assertEqual(leaf.contents, [b"abcdef"])

    def test_lookupErrorIsThe500Page(self) -> None:
        """A ``getChild`` that raises gets twisted.web's 500 page, after the body.

        The tree is traversed once and the error logged once.
        """
        calls: list[bytes] = []

        class Broken(Resource):
            def getChild(self, path: bytes, request: Any) -> IResource:
                calls.append(path)
                raise ZeroDivisionError("lookup bug")

        channel, transport = self.open(Broken())
        channel.dataReceived(self.head(6, b"/x") + b"abc")
        self.assertEqual(transport.value(), b"")
        channel.dataReceived(b"def")
        response = parseResponse(transport.value())
        self.assertEqual(response.status, 500)
        self.assertIn(b"Processing Failed", response.body)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(calls, [b"x"])
        self.assertEqual([f.type for f in self.failures()], [ZeroDivisionError])
        self.flushLoggedErrors(ZeroDivisionError)

    def test_formArgs(self) -> None:
        """A form POST's fields are in ``request.args``, with the query's."""
        root, _, leaf = self.tree()
        channel, _ = self.open(root)
        body = b"a=1&b=x+y&a=2"
        head = self.head(
            len(body),
            b"/a/leaf?c=3",
            CONTENT_TYPE=b"application/x-www-form-urlencoded",
            HTTP_CONTENT_TYPE=b"application/x-www-form-urlencoded",
        )
        channel.dataReceived(head + body[:5])
        channel.dataReceived(body[5:])
        self.assertEqual(
            leaf.paths[0].args,
            {b"a": [b"1", b"2"], b"b": [b"x y"], b"c": [b"3"]},
        )

    def test_nonASCIIQuery(self) -> None:
        """A query with bytes that are not ASCII is parsed as twisted.web parses it."""
        root, _, leaf = self.tree()
        site = self.makeSite(root)
        uri = b"/a/leaf?q=%FF&r=\xff\xfe&s"
        for method, body in [(b"GET", b""), (b"POST", b"abc")]:
            channel, transport = connect(site)
            channel.dataReceived(self.head(len(body), uri, method) + body)
            self.assertEqual(parseResponse(transport.value()).status, 200)
        self.assertEqual(leaf.paths[0].args, {b"q": [b"\xff"], b"r": [b"\xff\xfe"]})
        self.assertEqual(leaf.paths[1].args, leaf.paths[0].args)
        self.assertEqual(self.failures(), [])

    def test_traversalEffectsKept(self) -> None:
        """What ``getChild`` does to the request at the headers is kept for render."""

        class Marking(Resource):
            def getChild(self, path: bytes, request: Any) -> IResource:
                request.setHeader(b"X-Traversed", path)
                return PathRecorder()

        channel, transport = self.open(Marking())
        channel.dataReceived(self.head(3, b"/m") + b"abc")
        self.assertEqual(
            parseResponse(transport.value()).values(b"X-Traversed"), [b"m"]
        )

    def test_asteriskNotTraversed(self) -> None:
        """A request for ``*``: no early lookup, the same answer."""
        answers = []
        for stream in [True, False]:
            root = Counting()
            channel, transport = self.open(root, stream_uploads=stream)
            channel.dataReceived(self.head(3, b"*", b"OPTIONS") + b"abc")
            self.assertEqual(root.lookups, [])
            answers.append(parseResponse(transport.value()).status)
        self.assertEqual(answers[0], answers[1])


class StreamingHashTests(StreamingTestCase):
    """The shared ``StreamingHash`` resource does what its options say."""

    def test_slowConsumer(self) -> None:
        """``pause_every`` and ``pause`` pause the body on a timer; the hash holds."""
        channel, transport = self.open(StreamingHash(self.clock))
        body = random.Random(3).randbytes(1000)
        channel.dataReceived(self.head(1000, b"/?pause_every=2&pause=1"))
        for index in range(0, 1000, 100):
            channel.dataReceived(body[index : index + 100])
            while transport.producerState == "paused":
                self.clock.advance(1)
        answer = json.loads(parseResponse(transport.value()).body)
        self.assertEqual(answer["sha256"], hashlib.sha256(body).hexdigest())
        self.assertEqual((answer["chunks"], answer["pauses"]), (10, 5))

    def test_limit(self) -> None:
        """``limit`` answers 413 as soon as more than that many bytes arrived."""
        resource = StreamingHash(self.clock)
        channel, transport = self.open(resource)
        channel.dataReceived(self.head(1000, b"/?limit=150") + b"x" * 100)
        self.assertEqual(transport.value(), b"")
        channel.dataReceived(b"x" * 100)
        response = parseResponse(transport.value())
        self.assertEqual(response.status, 413)
        self.assertEqual(json.loads(response.body)["received"], 200)
        self.assertFalse(resource.ended[0].complete)

    def test_rss(self) -> None:
        """``rss=1`` adds the memory measured during the upload to the answer."""
        client = SCGITestClient(StreamingHash(Clock()), stream_uploads=True)
        answer = json.loads(client.post("/?rss=1", b"x" * 1000).body)
        self.assertEqual(set(answer["rss"]), {"baseline", "peak", "growth"})
        self.assertGreater(answer["rss"]["baseline"], 0)
        self.assertGreaterEqual(answer["rss"]["growth"], 0)
