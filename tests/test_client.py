"""Tests for the Twisted SCGI client, ``scgi_twisted.client``.

Two layers.  The in-memory tests connect the client through an endpoint that hands
its protocol a ``StringTransport``, with a ``Clock`` as the reactor, so that every
byte written, every pause and every timeout is checked exactly.  The real-socket
tests (trial ``TestCase`` on the real reactor) run the client against
:class:`~scgi_twisted.SCGISite` listening on TCP and on a unix socket, and against raw
servers that send garbage or never answer; each waits until every server-side
connection is closed before the listener stops, so the reactor is left clean.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any, cast

from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import (
    CancelledError,
    Deferred,
    fail,
    succeed,
)
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    UNIXClientEndpoint,
    serverFromString,
)
from twisted.internet.error import (
    ConnectError,
    ConnectionDone,
    ConnectionLost,
    ConnectionRefusedError,
)
from twisted.internet.interfaces import (
    IProtocol,
    IProtocolFactory,
    IPushProducer,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import FileBodyProducer, ResponseDone, readBody
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
from twisted.web.resource import Resource
from twisted.web.server import Request
from zope.interface import implementer

from scgi_twisted import SCGIChannel, SCGISite, getSCGIVariables
from scgi_twisted._client import ERR_UNKNOWN_LENGTH
from scgi_twisted._clientendpoint import describeEndpoint
from scgi_twisted._clientprotocol import ERR_BODY_TWICE
from scgi_twisted._clientsansio import ResponseParser, encode_request
from scgi_twisted._errors import LocalProtocolError
from scgi_twisted._sansio import RequestEnded, SCGIParser
from scgi_twisted.client import (
    ConnectFailedError,
    MalformedResponseError,
    Response,
    ResponseTimeoutError,
    SCGIClient,
    clientEndpoint,
    request,
)

_reactor: Any = reactor

# In memory.


class MemoryTransport(StringTransport):
    """A lenient ``StringTransport``: pausing after a close is allowed, as on TCP."""

    def __init__(self) -> None:
        super().__init__(lenient=True)


@implementer(IStreamClientEndpoint)
class MemoryEndpoint:
    """An endpoint that connects at once to an in-memory transport.

    :ivar protocols: every protocol it connected, with its transport.
    """

    def __init__(self) -> None:
        self.connections: list[tuple[Protocol, MemoryTransport]] = []

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        """Build the protocol and connect it to a new transport."""
        address = IPv4Address("TCP", "127.0.0.1", 4000)
        protocol = cast(Protocol, protocolFactory.buildProtocol(address))
        assert protocol is not None
        transport = MemoryTransport()
        protocol.makeConnection(transport)
        self.connections.append((protocol, transport))
        return succeed(cast(IProtocol, protocol))


@implementer(IStreamClientEndpoint)
class PendingEndpoint:
    """An endpoint whose connection attempt never completes (until cancelled)."""

    def __init__(self) -> None:
        self.attempts: list[Deferred[IProtocol]] = []
        self.cancelled = 0

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        """Return a Deferred that fires only with a cancellation."""

        def cancel(_: Deferred[IProtocol]) -> None:
            self.cancelled += 1

        attempt: Deferred[IProtocol] = Deferred(cancel)
        self.attempts.append(attempt)
        return attempt


@implementer(IStreamClientEndpoint)
class FailingEndpoint:
    """An endpoint whose connection attempt fails with a given exception."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        """Fail."""
        return fail(self.error)


@implementer(IBodyProducer)
class ChunkProducer:
    """A body producer that writes its chunks at once and finishes when told.

    :ivar finished: the Deferred ``startProducing`` returned; fire it to finish.
    """

    def __init__(self, chunks: list[bytes], length: Any = None) -> None:
        self.chunks = chunks
        self.length = sum(map(len, chunks)) if length is None else length
        self.finished: Deferred[None] = Deferred()
        self.calls: list[str] = []

    def startProducing(self, consumer: Any) -> Deferred[None]:
        """Write every chunk."""
        self.calls.append("start")
        for chunk in self.chunks:
            consumer.write(chunk)
        return self.finished

    def pauseProducing(self) -> None:
        """Record a pause."""
        self.calls.append("pause")

    def resumeProducing(self) -> None:
        """Record a resume."""
        self.calls.append("resume")

    def stopProducing(self) -> None:
        """Record a stop."""
        self.calls.append("stop")


class Chunks(Protocol):
    """A body protocol that records what it receives."""

    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.reason: Failure | None = None

    def dataReceived(self, data: bytes) -> None:
        """Record a piece of body."""
        self.data.append(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Record the end."""
        self.reason = reason


class MemoryClientTestCase(SynchronousTestCase):
    """A client on a clock, connected to an in-memory endpoint."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.endpoint = MemoryEndpoint()

    def client(self, **options: Any) -> SCGIClient:
        """Build a client on the clock and the memory endpoint."""
        return SCGIClient(self.clock, self.endpoint, **options)

    def send(
        self, **options: Any
    ) -> tuple[Deferred[Response], Protocol, MemoryTransport]:
        """Send one request; return its Deferred, protocol and transport."""
        timeout = options.pop("timeout", 10.0)
        method = options.pop("method", b"GET")
        path = options.pop("path", b"/")
        result = self.client(timeout=timeout).request(method, path, **options)
        protocol, transport = self.endpoint.connections[-1]
        return result, protocol, transport

    def respond(
        self, raw: bytes, method: bytes = b"GET", close: bool = True
    ) -> tuple[Response, Protocol, MemoryTransport]:
        """Send a request, feed ``raw`` as the answer, close; return the response."""
        result, protocol, transport = self.send(method=method)
        protocol.dataReceived(raw)
        response = self.successResultOf(result)
        if close:
            protocol.connectionLost(Failure(ConnectionDone()))
        return response, protocol, transport


class RequestWritingTests(MemoryClientTestCase):
    """The client writes exactly the request a frontend would."""

    def test_headThenBody(self) -> None:
        """The variables' netstring then the body go out as soon as it connects."""
        result, _, transport = self.send(
            method=b"POST",
            path="/a?b=c",
            headers=[("Content-Type", "text/plain"), ("X-A", "1")],
            body=b"hello",
        )
        expected = encode_request(
            b"POST", "/a?b=c", [("Content-Type", "text/plain"), ("X-A", "1")], (), 5
        )
        self.assertEqual(transport.value(), expected + b"hello")
        self.assertNoResult(result)

    def test_clientOptions(self) -> None:
        """The client's script name, TLS flag and variables apply to each request.

        The request's own variables come after the client's, so they win.
        """
        client = self.client(
            script_name="/app",
            secure=True,
            variables={"REMOTE_ADDR": "203.0.113.9", "X_ONE": "client"},
        )
        client.request("GET", "/app/x", variables=[("X_ONE", "request")])
        _, transport = self.endpoint.connections[-1]
        expected = encode_request(
            b"GET",
            "/app/x",
            (),
            [("REMOTE_ADDR", "203.0.113.9"), ("X_ONE", "request")],
            0,
            script_name="/app",
            secure=True,
        )
        self.assertEqual(transport.value(), expected)

    def test_twistedHeaders(self) -> None:
        """A ``Headers`` object is accepted, repeated values merged as HTTP does."""
        headers = Headers({b"Cookie": [b"a=1", b"b=2"]})
        self.send(headers=headers)
        _, transport = self.endpoint.connections[-1]
        self.assertIn(b"HTTP_COOKIE\x00a=1; b=2\x00", transport.value())

    def test_badArgumentsRaiseAtOnce(self) -> None:
        """Arguments no request can carry raise before any connection is made."""
        client = self.client()
        self.assertRaises(LocalProtocolError, client.request, "GET", "no-slash")
        self.assertRaises(
            LocalProtocolError, client.request, "GET", "/", headers={"X": "a\nb"}
        )
        self.assertEqual(self.endpoint.connections, [])

    def test_unknownLength(self) -> None:
        """A producer of unknown length is refused at once, with the reason."""
        producer = ChunkProducer([], length=UNKNOWN_LENGTH)
        error = self.assertRaises(
            LocalProtocolError, self.client().request, "POST", "/", body=producer
        )
        self.assertEqual(str(error), ERR_UNKNOWN_LENGTH)
        self.assertEqual(self.endpoint.connections, [])
        self.assertEqual(producer.calls, [])

    def test_producer(self) -> None:
        """A body producer is registered as a streaming producer of the transport.

        Its bytes follow the head, CONTENT_LENGTH is its length, and it is
        unregistered once it finishes.
        """
        producer = ChunkProducer([b"abc", b"de"])
        result, _, transport = self.send(method=b"PUT", body=producer)
        self.assertIs(transport.producer, producer)
        self.assertTrue(transport.streaming)
        self.assertEqual(
            transport.value(), encode_request(b"PUT", b"/", (), (), 5) + b"abcde"
        )
        producer.finished.callback(None)
        self.assertIsNone(transport.producer)
        self.assertFalse(transport.disconnecting)
        self.assertNoResult(result)

    def test_producerTooShort(self) -> None:
        """A producer that writes less than its length fails the request."""
        producer = ChunkProducer([b"abc"], length=5)
        result, protocol, transport = self.send(method=b"PUT", body=producer)
        producer.finished.callback(None)
        self.assertTrue(transport.disconnected)
        self.assertNoResult(result)
        protocol.connectionLost(Failure(ConnectionLost()))
        error = self.failureResultOf(result, LocalProtocolError).value
        self.assertEqual(
            str(error), "the body producer wrote 3 bytes, not its length 5"
        )

    def test_producerTooLong(self) -> None:
        """Bytes beyond a producer's length are not sent; the request fails."""
        producer = ChunkProducer([b"abc", b"defg"], length=5)
        result, protocol, transport = self.send(method=b"PUT", body=producer)
        self.assertTrue(transport.value().endswith(b",abc"))
        self.assertTrue(transport.disconnected)
        protocol.connectionLost(Failure(ConnectionLost()))
        error = self.failureResultOf(result, LocalProtocolError).value
        self.assertEqual(
            str(error), "the body producer wrote more than its length of 5 bytes"
        )

    def test_producerWritesAfterAbort(self) -> None:
        """Once the request failed, later writes of the producer are dropped."""
        producer = ChunkProducer([b"abc", b"defg", b"hij"], length=5)
        result, protocol, transport = self.send(method=b"PUT", body=producer)
        self.assertTrue(transport.value().endswith(b",abc"))
        protocol.connectionLost(Failure(ConnectionLost()))
        self.failureResultOf(result, LocalProtocolError)

    def test_emptyBody(self) -> None:
        """An empty body sends only the head, with CONTENT_LENGTH 0."""
        _, _, transport = self.send(method=b"POST", body=b"")
        self.assertEqual(transport.value(), encode_request(b"POST", b"/"))

    def test_producerFails(self) -> None:
        """A producer's failure closes the connection and fails the request."""
        producer = ChunkProducer([b"ab"])
        result, protocol, transport = self.send(method=b"PUT", body=producer)
        producer.finished.errback(Failure(OSError("disk gone")))
        self.assertTrue(transport.disconnected)
        self.assertIsNone(transport.producer)
        protocol.connectionLost(Failure(ConnectionLost()))
        self.assertEqual(str(self.failureResultOf(result, OSError).value), "disk gone")

    def test_producerLeftToTransportOnLoss(self) -> None:
        """After a lost connection the client leaves the producer alone.

        A real transport stops its registered producer itself.
        """
        producer = ChunkProducer([b"ab"])
        result, protocol, transport = self.send(method=b"PUT", body=producer)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(producer.calls, ["start"])
        self.assertIs(transport.producer, producer)
        self.failureResultOf(result, MalformedResponseError)


class ResponseTests(MemoryClientTestCase):
    """The response fires with its head, and the body streams after it."""

    def test_head(self) -> None:
        """Code, phrase, headers, raw headers and length come from the CGI head."""
        result, protocol, _ = self.send()
        protocol.dataReceived(b"Status: 201 Made\r\nX-A: 1\r\nx-a: 2\r\n")
        self.assertNoResult(result)
        protocol.dataReceived(b"Content-Length: 3\r\n\r\n")
        response = self.successResultOf(result)
        self.assertEqual(response.code, 201)
        self.assertEqual(response.phrase, b"Made")
        self.assertEqual(response.headers.getRawHeaders(b"x-a"), [b"1", b"2"])
        self.assertEqual(
            response.rawHeaders,
            ((b"X-A", b"1"), (b"x-a", b"2"), (b"Content-Length", b"3")),
        )
        self.assertEqual(response.length, 3)
        self.assertEqual(repr(response), "<Response 201 'Made'>")

    def test_standardPhrase(self) -> None:
        """An empty reason becomes the standard phrase; an unknown code gets none."""
        response, _, _ = self.respond(b"Status: 404\r\n\r\n")
        self.assertEqual(response.phrase, b"Not Found")
        response, _, _ = self.respond(b"Status: 599\r\n\r\n")
        self.assertEqual(response.phrase, b"")
        self.assertIsNone(response.length)

    def test_pausedUntilDelivered(self) -> None:
        """The socket is paused from the head until a body consumer is given."""
        result, protocol, transport = self.send()
        protocol.dataReceived(b"A: 1\r\n\r\nfirst")
        response = self.successResultOf(result)
        self.assertEqual(transport.producerState, "paused")
        protocol.dataReceived(b"-second")
        body = Chunks()
        response.deliverBody(body)
        self.assertEqual(transport.producerState, "producing")
        self.assertEqual(body.data, [b"first", b"-second"])
        self.assertIsNone(body.reason)
        protocol.dataReceived(b"-third")
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(body.data, [b"first", b"-second", b"-third"])
        assert body.reason is not None
        self.assertIsInstance(body.reason.value, ResponseDone)

    def test_noBodyNotPaused(self) -> None:
        """When no body can follow, the socket is not paused: the exchange can end."""
        for raw, method in (
            (b"Content-Length: 0\r\n\r\n", b"GET"),
            (b"Status: 204 No Content\r\n\r\n", b"GET"),
            (b"Content-Length: 10\r\n\r\n", b"HEAD"),
        ):
            result, protocol, transport = self.send(method=method)
            protocol.dataReceived(raw)
            self.successResultOf(result)
            self.assertEqual(transport.producerState, "producing", raw)

    def test_deliveredAfterTheEnd(self) -> None:
        """A consumer given after the connection closed gets the body and the end."""
        response, _, _ = self.respond(b"A: 1\r\n\r\nall")
        body = Chunks()
        response.deliverBody(body)
        self.assertEqual(body.data, [b"all"])
        assert body.reason is not None
        self.assertIsInstance(body.reason.value, ResponseDone)

    def test_deliverTwice(self) -> None:
        """The body can be delivered only once."""
        response, _, _ = self.respond(b"A: 1\r\n\r\n")
        response.deliverBody(Chunks())
        error = self.assertRaises(LocalProtocolError, response.deliverBody, Chunks())
        self.assertEqual(str(error), ERR_BODY_TWICE)

    def test_content(self) -> None:
        """``content()`` fires with the whole body at EOF."""
        result, protocol, _ = self.send()
        protocol.dataReceived(b"A: 1\r\n\r\nab")
        content = self.successResultOf(result).content()
        protocol.dataReceived(b"cd")
        self.assertNoResult(content)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.successResultOf(content), b"abcd")

    def test_text(self) -> None:
        """``text()`` decodes with the charset, else UTF-8, replacing bad bytes."""
        cases = [
            (b"Content-Type: text/plain; charset=latin-1\r\n\r\ncaf\xe9", "caf\xe9"),
            (b'Content-Type: text/plain;CHARSET="utf-8"\r\n\r\ncaf\xc3\xa9', "caf\xe9"),
            (
                b"Content-Type: text/plain; format=x; charset=latin-1\r\n\r\n\xe9",
                "\xe9",
            ),
            (b"Content-Type: text/plain; charset=nonesuch\r\n\r\nok\xff", "ok\ufffd"),
            (b"Content-Type: text/plain\r\n\r\ncaf\xc3\xa9", "caf\xe9"),
            (b"A: 1\r\n\r\nx", "x"),
        ]
        for raw, expected in cases:
            response, _, _ = self.respond(raw)
            self.assertEqual(self.successResultOf(response.text()), expected, raw)
        response, _, _ = self.respond(b"A: 1\r\n\r\ncaf\xe9")
        self.assertEqual(self.successResultOf(response.text("latin-1")), "caf\xe9")

    def test_collect(self) -> None:
        """``collect`` calls the function with each piece, then fires with None."""
        result, protocol, _ = self.send()
        protocol.dataReceived(b"A: 1\r\n\r\n")
        pieces: list[bytes] = []
        collected = self.successResultOf(result).collect(pieces.append)
        protocol.dataReceived(b"one")
        protocol.dataReceived(b"two")
        self.assertEqual(pieces, [b"one", b"two"])
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertIsNone(self.successResultOf(collected))

    def test_collectorRaises(self) -> None:
        """A collector that raises closes the connection and fails the Deferred."""
        result, protocol, transport = self.send()
        protocol.dataReceived(b"A: 1\r\n\r\n")

        def collector(data: bytes) -> None:
            raise ZeroDivisionError(data)

        collected = self.successResultOf(result).collect(collector)
        protocol.dataReceived(b"boom")
        self.assertTrue(transport.disconnected)
        protocol.dataReceived(b"more")
        protocol.connectionLost(Failure(ConnectionLost()))
        self.failureResultOf(collected, ZeroDivisionError)

    def test_collectorRaisesOnBuffered(self) -> None:
        """A collector that raises on buffered body gets no more pieces."""
        result, protocol, transport = self.send()
        protocol.dataReceived(b"A: 1\r\n\r\none")
        protocol.dataReceived(b"two")
        pieces: list[bytes] = []

        def collector(data: bytes) -> None:
            pieces.append(data)
            raise ZeroDivisionError(data)

        collected = self.successResultOf(result).collect(collector)
        self.assertEqual(pieces, [b"one"])
        self.assertTrue(transport.disconnected)
        protocol.connectionLost(Failure(ConnectionLost()))
        self.failureResultOf(collected, ZeroDivisionError)

    def test_readBodyCancelled(self) -> None:
        """Cancelling ``readBody`` aborts the connection."""
        result, protocol, transport = self.send()
        protocol.dataReceived(b"A: 1\r\n\r\npart")
        read = readBody(self.successResultOf(result))  # type: ignore[arg-type]
        read.cancel()
        self.assertTrue(transport.disconnected)
        protocol.connectionLost(Failure(ConnectionLost()))
        self.failureResultOf(read, CancelledError)

    def test_flowControl(self) -> None:
        """A body consumer's pause, resume and stop reach the socket."""
        result, protocol, transport = self.send()
        protocol.dataReceived(b"A: 1\r\n\r\n")
        body = Chunks()
        self.successResultOf(result).deliverBody(body)
        control = cast(IPushProducer, body.transport)
        control.pauseProducing()
        self.assertEqual(transport.producerState, "paused")
        control.resumeProducing()
        self.assertEqual(transport.producerState, "producing")
        control.stopProducing()
        self.assertTrue(transport.disconnected)
        protocol.dataReceived(b"late")
        protocol.connectionLost(Failure(ConnectionLost()))
        # A consumer that stopped the body gets no more calls.
        self.assertEqual(body.data, [])
        self.assertIsNone(body.reason)
        # Once the connection is gone, flow control does nothing.
        state = transport.producerState
        control.pauseProducing()
        control.resumeProducing()
        self.assertEqual(transport.producerState, state)

    def test_pauseBeforeDeliveryKept(self) -> None:
        """A consumer that pauses while its buffered body is replayed stays paused."""
        result, protocol, transport = self.send()
        protocol.dataReceived(b"A: 1\r\n\r\nbuffered")

        class Pausing(Chunks):
            def dataReceived(self, data: bytes) -> None:
                super().dataReceived(data)
                cast(IPushProducer, self.transport).pauseProducing()

        body = Pausing()
        self.successResultOf(result).deliverBody(body)
        self.assertEqual(body.data, [b"buffered"])
        self.assertEqual(transport.producerState, "paused")

    def test_resumeDuringReplay(self) -> None:
        """A consumer that pauses then resumes while buffered body is replayed reads on.

        The socket stays paused until the replay is over, then resumes.
        """
        result, protocol, transport = self.send()
        protocol.dataReceived(b"A: 1\r\n\r\nbuffered")
        states: list[str] = []

        class PauseResume(Chunks):
            def dataReceived(self, data: bytes) -> None:
                super().dataReceived(data)
                control = cast(IPushProducer, self.transport)
                control.pauseProducing()
                control.resumeProducing()
                states.append(transport.producerState)

        self.successResultOf(result).deliverBody(PauseResume())
        self.assertEqual(states, ["paused"])
        self.assertEqual(transport.producerState, "producing")

    def test_readBody(self) -> None:
        """``twisted.web.client.readBody`` reads the body, as for an HTTP response."""
        result, protocol, _ = self.send()
        protocol.dataReceived(b"A: 1\r\n\r\nread me")
        read = readBody(self.successResultOf(result))  # type: ignore[arg-type]
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.successResultOf(read), b"read me")

    def test_resetAfterCompleteBody(self) -> None:
        """A reset after all Content-Length bytes arrived still ends the body well."""
        result, protocol, _ = self.send()
        protocol.dataReceived(b"Content-Length: 2\r\n\r\nok")
        content = self.successResultOf(result).content()
        protocol.connectionLost(Failure(ConnectionLost("reset")))
        self.assertEqual(self.successResultOf(content), b"ok")

    def test_deadlineStopped(self) -> None:
        """Once the connection is gone, the timeout is no longer pending."""
        self.respond(b"A: 1\r\n\r\n")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_noTimeout(self) -> None:
        """With ``timeout=None`` nothing is scheduled."""
        self.send(timeout=None)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class ResponseErrorTests(MemoryClientTestCase):
    """Malformed, cut-off and late responses fail, once the connection is gone."""

    def test_malformedHead(self) -> None:
        """A bad head aborts the connection; the request fails when it is gone."""
        result, protocol, transport = self.send()
        protocol.dataReceived(b"HTTP/1.1 200 OK\r\n\r\n")
        self.assertTrue(transport.disconnected)
        self.assertNoResult(result)
        protocol.dataReceived(b"ignored")
        protocol.connectionLost(Failure(ConnectionLost()))
        error = self.failureResultOf(result, MalformedResponseError).value
        self.assertEqual(str(error), ResponseParser.ERR_NPH)

    def test_malformedBody(self) -> None:
        """Bytes beyond Content-Length fail the body, after the good part."""
        result, protocol, transport = self.send()
        protocol.dataReceived(b"Content-Length: 2\r\n\r\n")
        body = Chunks()
        self.successResultOf(result).deliverBody(body)
        protocol.dataReceived(b"okextra")
        self.assertTrue(transport.disconnected)
        protocol.connectionLost(Failure(ConnectionLost()))
        self.assertEqual(body.data, [b"ok"])
        assert body.reason is not None
        self.assertIsInstance(body.reason.value, MalformedResponseError)

    def test_firstErrorWins(self) -> None:
        """A timeout after a malformed head does not replace its error."""
        result, protocol, transport = self.send(timeout=1)
        protocol.dataReceived(b"bad line\r\n")
        self.assertTrue(transport.disconnected)
        self.clock.advance(1)
        protocol.connectionLost(Failure(ConnectionLost()))
        self.failureResultOf(result, MalformedResponseError)

    def test_emptyResponse(self) -> None:
        """A server that closes without answering fails the request."""
        result, protocol, _ = self.send()
        protocol.connectionLost(Failure(ConnectionDone()))
        error = self.failureResultOf(result, MalformedResponseError).value
        self.assertEqual(str(error), ResponseParser.ERR_EMPTY)

    def test_truncated(self) -> None:
        """A body cut short of its Content-Length fails ``content()``."""
        result, protocol, _ = self.send()
        protocol.dataReceived(b"Content-Length: 9\r\n\r\nshort")
        content = self.successResultOf(result).content()
        protocol.connectionLost(Failure(ConnectionDone()))
        error = self.failureResultOf(content, MalformedResponseError).value
        self.assertEqual(
            str(error),
            "the connection closed with 4 of the 9 body bytes (Content-Length) missing",
        )

    def test_resetWithoutLength(self) -> None:
        """A reset during a body of unknown length is an incomplete response."""
        result, protocol, _ = self.send()
        protocol.dataReceived(b"A: 1\r\n\r\npartial")
        content = self.successResultOf(result).content()
        reset = Failure(ConnectionLost("Connection reset by peer"))
        protocol.connectionLost(reset)
        error = self.failureResultOf(content, MalformedResponseError).value
        self.assertEqual(
            str(error),
            "the connection was lost before the response was complete: "
            + reset.getErrorMessage(),
        )
        self.assertEqual(error.bytes_received, 15)

    def test_timeoutBeforeHead(self) -> None:
        """No head within the timeout: abort, then ResponseTimeoutError."""
        client = SCGIClient(self.clock, self.endpoint, timeout=5)
        client.description = "unix:/run/app.sock"
        result = client.request("GET", "/")
        protocol, transport = self.endpoint.connections[-1]
        self.clock.advance(4.9)
        self.assertFalse(transport.disconnected)
        self.clock.advance(0.1)
        self.assertTrue(transport.disconnected)
        protocol.connectionLost(Failure(ConnectionLost()))
        error = self.failureResultOf(result, ResponseTimeoutError).value
        self.assertEqual(
            str(error), "no response from unix:/run/app.sock within 5 seconds"
        )
        self.assertEqual(error.timeout, 5)
        self.assertFalse(error.head_received)
        self.assertIsInstance(error, TimeoutError)

    def test_timeoutInBody(self) -> None:
        """A body not complete within the timeout fails with ResponseTimeoutError."""
        result, protocol, transport = self.send(timeout=2.5)
        protocol.dataReceived(b"Content-Length: 10\r\n\r\nabc")
        content = self.successResultOf(result).content()
        self.clock.advance(2.5)
        self.assertTrue(transport.disconnected)
        protocol.connectionLost(Failure(ConnectionLost()))
        error = self.failureResultOf(content, ResponseTimeoutError).value
        self.assertTrue(error.head_received)
        self.assertIn("the response body from", str(error))
        self.assertTrue(str(error).endswith("was not complete within 2.5 seconds"))

    def test_timeoutNotClosed(self) -> None:
        """A server that sent its whole sized body but never closes is named so."""
        result, protocol, _ = self.send(timeout=1)
        protocol.dataReceived(b"Content-Length: 2\r\n\r\nok")
        content = self.successResultOf(result).content()
        self.clock.advance(1)
        protocol.connectionLost(Failure(ConnectionLost()))
        error = self.failureResultOf(content, ResponseTimeoutError).value
        self.assertIn(
            "sent the whole body (Content-Length) but did not close the connection "
            "within 1 seconds",
            str(error),
        )

    def test_timeoutConnecting(self) -> None:
        """A connection attempt that takes too long is cancelled: a timeout."""
        endpoint = PendingEndpoint()
        result = SCGIClient(self.clock, endpoint, timeout=3).request()
        self.clock.advance(3)
        self.assertEqual(endpoint.cancelled, 1)
        error = self.failureResultOf(result, ResponseTimeoutError).value
        self.assertIn("timed out after 3 seconds connecting to", str(error))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_cancelConnecting(self) -> None:
        """Cancelling while connecting cancels the attempt: CancelledError."""
        endpoint = PendingEndpoint()
        result = SCGIClient(self.clock, endpoint).request()
        result.cancel()
        self.assertEqual(endpoint.cancelled, 1)
        self.failureResultOf(result, CancelledError)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_cancelWaiting(self) -> None:
        """Cancelling while waiting for the head aborts the connection."""
        result, protocol, transport = self.send()
        result.cancel()
        self.assertTrue(transport.disconnected)
        self.failureResultOf(result, CancelledError)
        protocol.connectionLost(Failure(ConnectionLost()))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_refused(self) -> None:
        """A refused connection is ConnectFailedError with ``refused`` set."""
        client = SCGIClient(self.clock, FailingEndpoint(ConnectionRefusedError()))
        client.description = "tcp:127.0.0.1:4000"
        error = self.failureResultOf(client.request(), ConnectFailedError).value
        self.assertEqual(str(error), "connection refused by tcp:127.0.0.1:4000")
        self.assertTrue(error.refused)
        self.assertEqual(error.endpoint, "tcp:127.0.0.1:4000")
        self.assertIsInstance(error, ConnectionError)
        self.assertIsInstance(error.__cause__, ConnectionRefusedError)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_otherConnectError(self) -> None:
        """Any other connection failure says what went wrong, without ``refused``."""
        failing = FailingEndpoint(ConnectError("2: No such file or directory"))
        client = SCGIClient(self.clock, failing)
        error = self.failureResultOf(client.request(), ConnectFailedError).value
        self.assertFalse(error.refused)
        self.assertIn("could not connect to", str(error))
        self.assertIn("No such file or directory", str(error))

    def test_unexpectedConnectFailure(self) -> None:
        """A failure that is not a connection error is passed on unchanged."""
        client = SCGIClient(self.clock, FailingEndpoint(KeyError("odd")))
        self.failureResultOf(client.request(), KeyError)


class EndpointTests(SynchronousTestCase):
    """``clientEndpoint`` understands endpoint strings, HOST:PORT and paths."""

    def test_endpointStrings(self) -> None:
        """Twisted endpoint strings are parsed as such."""
        self.assertIsInstance(
            clientEndpoint(_reactor, "tcp:127.0.0.1:4000"), TCP4ClientEndpoint
        )
        self.assertIsInstance(
            clientEndpoint(_reactor, "unix:/run/a.sock"), UNIXClientEndpoint
        )
        self.assertIsInstance(
            clientEndpoint(_reactor, "TCP:host=h:port=1"), TCP4ClientEndpoint
        )

    def test_hostPort(self) -> None:
        """``HOST:PORT`` and ``[IPV6]:PORT`` connect by host name, v4 or v6."""
        for text in ("127.0.0.1:4000", "localhost:4000", "[::1]:4000", "a.example:1"):
            self.assertIsInstance(
                clientEndpoint(_reactor, text), HostnameEndpoint, text
            )

    def test_paths(self) -> None:
        """Text without ``:``, or starting like a path, is a unix socket path."""
        for text in ("/run/app.sock", "app.sock", "./odd:name", "../x:1", "~/s"):
            self.assertIsInstance(
                clientEndpoint(_reactor, text), UNIXClientEndpoint, text
            )

    def test_serverEndpointStrings(self) -> None:
        """A server's endpoint string reaches that server (loopback for every iface)."""
        for text, expected in [
            ("tcp:4000:interface=127.0.0.1", "127.0.0.1:4000"),
            ("tcp:4000", "127.0.0.1:4000"),
            ("tcp:port=4000:interface=0.0.0.0", "127.0.0.1:4000"),
            ("tcp:4000:interface=192.0.2.7:backlog=5", "192.0.2.7:4000"),
            (r"tcp6:4000:interface=\:\:1", "[::1]:4000"),
            ("tcp6:4000", "[::1]:4000"),
            ("unix:/run/app/scgi.sock:mode=660", "unix:/run/app/scgi.sock"),
            ("unix:/run/a.sock:lockfile=1:mode=600", "unix:/run/a.sock"),
        ]:
            endpoint = clientEndpoint(_reactor, text)
            self.assertEqual(describeEndpoint(endpoint), expected, text)
        # The client forms keep their meaning.
        self.assertEqual(
            describeEndpoint(clientEndpoint(_reactor, "tcp:host=h:port=1")), "h:1"
        )

    def test_invalid(self) -> None:
        """Empty text, a bad port, or a bad endpoint string raise ValueError."""
        for text in (
            "",
            "host:70000",
            "tcp:70000:interface=127.0.0.1",
            "tcp6:x",
            "unix::mode=660",
            "nosuchtype:a:b",
        ):
            self.assertRaises(ValueError, clientEndpoint, _reactor, text)

    def test_describedInErrors(self) -> None:
        """An endpoint given as a string is described by that string."""
        client = SCGIClient(Clock(), "unix:/nonexistent/x.sock")
        self.assertEqual(client.description, "unix:/nonexistent/x.sock")
        self.assertEqual(
            SCGIClient(Clock(), UNIXClientEndpoint(_reactor, "/s")).description,
            "unix:/s",
        )
        self.assertEqual(
            SCGIClient(Clock(), HostnameEndpoint(_reactor, "::1", 4)).description,
            "[::1]:4",
        )


# Real sockets.


class Echo(Resource):
    """Answers with a JSON account of the request (and a body when asked)."""

    isLeaf = True

    def render(self, request: Request) -> bytes:
        """Describe the request, or answer ``/status/NNN`` or ``/big``."""
        path = request.path
        if path.startswith(b"/status/"):
            request.setResponseCode(int(path[8:11]))
            return b"status page"
        if path == b"/big":
            return b"0123456789abcdef" * 65536
        assert request.content is not None
        assert request.prepath is not None and request.postpath is not None
        body = request.content.read()
        variables = getSCGIVariables(request)
        assert variables is not None
        account = {
            "method": request.method.decode(),
            "uri": request.uri.decode(),
            "prepath": [segment.decode() for segment in request.prepath],
            "postpath": [segment.decode() for segment in request.postpath],
            "secure": request.isSecure(),
            "cookies": {
                name.decode(): value.decode()
                for name, value in request.received_cookies.items()
            },
            "variables": {
                name: value.decode("latin-1") for name, value in variables.items()
            },
            "length": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
        }
        request.setHeader(b"content-type", b"application/json; charset=utf-8")
        return json.dumps(account).encode()


class TrackedChannel(SCGIChannel):
    """A channel that tells its site when its connection is gone."""

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Report the loss to the site."""
        super().connectionLost(reason)
        site: TrackedSite = self.site  # type: ignore[assignment]
        site.lost.append(reason)
        for waiter in site.waiters:
            waiter.callback(None)
        site.waiters.clear()


class TrackedSite(SCGISite):
    """An SCGI site that counts the connections it made and lost."""

    protocol = TrackedChannel

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.made = 0
        self.lost: list[Failure] = []
        self.waiters: list[Deferred[None]] = []

    def buildProtocol(self, addr: Any) -> SCGIChannel | None:  # type: ignore[override]
        """Count a connection."""
        self.made += 1
        return super().buildProtocol(addr)

    async def allClosed(self) -> None:
        """Wait until every connection made is gone."""
        while len(self.lost) < self.made:
            waiter: Deferred[None] = Deferred()
            self.waiters.append(waiter)
            await waiter


class RawServer(Protocol):
    """Reads one SCGI request, then sends fixed bytes and closes, or never answers."""

    def __init__(self, factory: RawFactory) -> None:
        self.factory = factory
        self.parser = SCGIParser()

    def dataReceived(self, data: bytes) -> None:
        """Answer once the request is complete."""
        self.parser.receive_data(data)
        while (event := self.parser.next_event()) is not None:
            if isinstance(event, RequestEnded) and self.factory.answer is not None:
                assert self.transport is not None
                self.transport.write(self.factory.answer)
                self.transport.loseConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Tell the factory."""
        self.factory.lost.callback(None)


class RawFactory(Factory):
    """Builds :class:`RawServer` protocols for one connection."""

    def __init__(self, answer: bytes | None) -> None:
        self.answer = answer
        self.lost: Deferred[None] = Deferred()

    def buildProtocol(self, addr: Any) -> RawServer:
        """Build the raw server."""
        return RawServer(self)


class RealSocketTestCase(TestCase):
    """Listen with real sockets on the real reactor; clean up after each test."""

    def setUp(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="scgi-client-"))
        self.addCleanup(shutil.rmtree, self.directory, True)

    async def listen(self, description: str, factory: Any) -> Any:
        """Listen; stop listening at the end of the test."""
        port = await serverFromString(_reactor, description).listen(factory)
        self.addCleanup(port.stopListening)
        return port

    async def site(self, kind: str = "tcp", **options: Any) -> tuple[TrackedSite, str]:
        """Serve :class:`Echo` over ``kind``; return the site and an endpoint string."""
        site = TrackedSite(Echo(), **options)
        if kind == "tcp":
            port = await self.listen("tcp:0:interface=127.0.0.1", site)
            endpoint = f"tcp:127.0.0.1:{port.getHost().port}"
        else:
            path = self.directory / "scgi.sock"
            await self.listen(f"unix:{path}", site)
            endpoint = f"unix:{path}"
        self.addCleanup(site.allClosed)
        return site, endpoint

    async def raw(self, answer: bytes | None) -> tuple[RawFactory, str]:
        """Serve one raw answer over TCP; return the factory and an endpoint."""
        factory = RawFactory(answer)
        port = await self.listen("tcp:0:interface=127.0.0.1", factory)
        return factory, f"127.0.0.1:{port.getHost().port}"


class RealSocketTests(RealSocketTestCase):
    """The client against the real server, over TCP and unix sockets."""

    async def test_tcp(self) -> None:
        """A GET over TCP gets the status, headers and body the server wrote."""
        _, endpoint = await self.site("tcp")
        response = await request(_reactor, endpoint, "GET", "/a/b?x=1", timeout=10)
        self.assertEqual((response.code, response.phrase), (200, b"OK"))
        self.assertEqual(
            response.headers.getRawHeaders(b"content-type"),
            [b"application/json; charset=utf-8"],
        )
        account = json.loads(await response.content())
        self.assertEqual(account["uri"], "/a/b?x=1")
        self.assertEqual(account["postpath"], ["a", "b"])
        self.assertEqual(account["variables"]["QUERY_STRING"], "x=1")
        self.assertEqual(response.length, len(json.dumps(account)))

    async def test_unix(self) -> None:
        """The same works over a unix socket, given as a bare path."""
        _, endpoint = await self.site("unix")
        path = endpoint[len("unix:") :]
        response = await request(_reactor, path, "GET", "/u", timeout=10)
        self.assertEqual(json.loads(await response.content())["uri"], "/u")

    async def test_whatArrives(self) -> None:
        """Method, body, headers, cookies, TLS flag, mount and variables all arrive."""
        _, endpoint = await self.site("tcp", mount="/app")
        client = SCGIClient(
            _reactor, endpoint, timeout=10, script_name="/app", secure=True
        )
        response = await client.request(
            "POST",
            "/app/x/y",
            headers=[("Cookie", "a=1"), ("X-Trace", "t1"), ("cookie", "b=2")],
            variables={"REMOTE_ADDR": "203.0.113.9"},
            body=b"payload",
        )
        account = json.loads(await response.content())
        self.assertEqual(account["method"], "POST")
        self.assertEqual(account["prepath"], ["app"])
        self.assertEqual(account["postpath"], ["x", "y"])
        self.assertTrue(account["secure"])
        self.assertEqual(account["cookies"], {"a": "1", "b": "2"})
        self.assertEqual(account["variables"]["HTTP_X_TRACE"], "t1")
        self.assertEqual(account["variables"]["REMOTE_ADDR"], "203.0.113.9")
        self.assertEqual(account["length"], 7)

    async def test_producerUpload(self) -> None:
        """A 1 MiB body from a producer arrives intact."""
        _, endpoint = await self.site("unix")
        payload = bytes(range(256)) * 4096
        producer = FileBodyProducer(io.BytesIO(payload))
        response = await request(
            _reactor, endpoint, "PUT", "/upload", body=producer, timeout=10
        )
        account = json.loads(await response.content())
        self.assertEqual(account["length"], len(payload))
        self.assertEqual(account["sha256"], hashlib.sha256(payload).hexdigest())

    async def test_earlyAnswerWhileUploading(self) -> None:
        """A 413 sent before the body is read reaches the client as it sends."""
        _, endpoint = await self.site("tcp", max_body_size=1000)
        producer = FileBodyProducer(io.BytesIO(b"x" * 300_000))
        response = await request(
            _reactor, endpoint, "POST", "/", body=producer, timeout=10
        )
        self.assertEqual(response.code, 413)
        self.assertIn(b"413", await response.content())

    async def test_streamedDownload(self) -> None:
        """A 1 MiB body arrives in several pieces, in order."""
        _, endpoint = await self.site("tcp")
        response = await request(_reactor, endpoint, "GET", "/big", timeout=10)
        pieces: list[bytes] = []
        await response.collect(pieces.append)
        self.assertGreater(len(pieces), 1)
        self.assertEqual(b"".join(pieces), b"0123456789abcdef" * 65536)

    async def test_readBody(self) -> None:
        """``twisted.web.client.readBody`` works on a real response."""
        _, endpoint = await self.site("tcp")
        response = await request(_reactor, endpoint, "GET", "/status/404", timeout=10)
        self.assertEqual(response.code, 404)
        self.assertEqual(await readBody(response), b"status page")  # type: ignore[arg-type]

    async def test_head(self) -> None:
        """A HEAD gets the head (with Content-Length) and an empty body."""
        _, endpoint = await self.site("tcp")
        response = await request(_reactor, endpoint, "HEAD", "/big", timeout=10)
        self.assertEqual(response.length, 1 << 20)
        self.assertEqual(await response.content(), b"")


class RealSocketErrorTests(RealSocketTestCase):
    """Refused connections, malformed answers and silence, on real sockets."""

    def boundNotListening(self, family: int, address: Any) -> socket.socket:
        """A socket bound to ``address`` but not listening: connects are refused."""
        sock = socket.socket(family, socket.SOCK_STREAM)
        self.addCleanup(sock.close)
        sock.bind(address)
        return sock

    async def test_refusedTCP(self) -> None:
        """Nothing listening on a TCP port: ConnectFailedError, refused."""
        sock = self.boundNotListening(socket.AF_INET, ("127.0.0.1", 0))
        port = sock.getsockname()[1]
        with self.assertRaises(ConnectFailedError) as caught:
            await request(_reactor, f"127.0.0.1:{port}", timeout=10)
        self.assertTrue(caught.exception.refused)
        self.assertEqual(
            str(caught.exception), f"connection refused by 127.0.0.1:{port}"
        )

    async def test_refusedUnix(self) -> None:
        """A unix socket nobody listens on: ConnectFailedError, refused."""
        path = str(self.directory / "dead.sock")
        self.boundNotListening(socket.AF_UNIX, path)
        with self.assertRaises(ConnectFailedError) as caught:
            await request(_reactor, path, timeout=10)
        self.assertTrue(caught.exception.refused)

    async def test_noSuchSocket(self) -> None:
        """A unix socket path that does not exist: ConnectFailedError, not refused."""
        path = str(self.directory / "missing.sock")
        with self.assertRaises(ConnectFailedError) as caught:
            await request(_reactor, f"unix:{path}", timeout=10)
        self.assertFalse(caught.exception.refused)
        self.assertIn("No such file or directory", str(caught.exception))

    async def test_garbage(self) -> None:
        """A server that answers garbage: MalformedResponseError."""
        factory, endpoint = await self.raw(b"garbage without a colon\r\n\r\n")
        with self.assertRaises(MalformedResponseError) as caught:
            await request(_reactor, endpoint, timeout=10)
        self.assertEqual(
            str(caught.exception),
            "a response header line has no ':': b'garbage without a colon'",
        )
        await factory.lost

    async def test_closedWithoutAnswer(self) -> None:
        """A server that reads the request and closes: MalformedResponseError."""
        factory, endpoint = await self.raw(b"")
        with self.assertRaises(MalformedResponseError) as caught:
            await request(_reactor, endpoint, timeout=10)
        self.assertEqual(str(caught.exception), ResponseParser.ERR_EMPTY)
        await factory.lost

    async def test_wrongContentLength(self) -> None:
        """A body longer than its Content-Length fails ``content()``."""
        factory, endpoint = await self.raw(b"Content-Length: 1\r\n\r\nabc")
        response = await request(_reactor, endpoint, timeout=10)
        with self.assertRaises(MalformedResponseError):
            await response.content()
        await factory.lost

    async def test_silence(self) -> None:
        """A server that never answers: ResponseTimeoutError after the timeout."""
        factory, endpoint = await self.raw(None)
        with self.assertRaises(ResponseTimeoutError) as caught:
            await request(_reactor, endpoint, timeout=0.3)
        self.assertEqual(
            str(caught.exception), f"no response from {endpoint} within 0.3 seconds"
        )
        await factory.lost

    async def test_pausedBodyTimesOut(self) -> None:
        """A body nobody reads is not read; the deadline still ends the exchange."""
        _, endpoint = await self.site("tcp")
        response = await request(_reactor, endpoint, "GET", "/big", timeout=0.5)
        await deferLater(_reactor, 0.7, lambda: None)
        with self.assertRaises(ResponseTimeoutError):
            await response.content()
