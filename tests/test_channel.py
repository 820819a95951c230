"""Tests for the SCGI channel, driven in memory through a real ``SCGISite``.

Every test builds the channel with ``site.buildProtocol(None)`` on a
``StringTransport`` (see ``tests/support/``), with ``SCGISite(root, reactor=Clock())``
and a real resource tree, feeds it SCGI bytes, and reads the CGI response the channel
wrote.  Time is the ``Clock``; a closed connection is a transport flag, so a test that
needs the close calls ``connectionLost`` itself.  What is pinned, by class: how the
request is built from the variables; the raw variables; the response framing; the
body; the answers to bad input and the draining after them; the end of input; the
timeouts; disconnects and half-close; producers; and the parts of Twisted's
channel/request contract the channel relies on.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
from collections.abc import Callable
from dataclasses import replace
from typing import Any, cast

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.abstract import FileDescriptor
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import (
    IHalfCloseableProtocol,
    IPushProducer,
    ITCPTransport,
)
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactor, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web import http, static
from twisted.web.http_headers import Headers
from twisted.web.resource import EncodingResourceWrapper, IResource, Resource
from twisted.web.server import NOT_DONE_YET, GzipEncoderFactory, Request
from zope.interface import implementer
from zope.interface.verify import verifyObject

from scgi_twisted import (
    SCGIChannel,
    SCGISite,
    SCGIVariables,
    _channel,
    getSCGIVariables,
)
from scgi_twisted._bodies import POOLED_BODY_MIN, BodyBuffer, PooledBody
from scgi_twisted._internals import _cannotBeForm
from scgi_twisted._internals import addRawHeaders as _addHeaders
from scgi_twisted._sansio import SCGIParser

from .support.apps import Recorder, Seen, WebRequest
from .support.memory import (
    HalfCloseTransport,
    collectLogEvents,
    connect,
    warningsAndErrors,
)
from .support.scgi import (
    CGIResponse,
    Pairs,
    buildRequest,
    headerBlock,
    netstring,
    nginxVariables,
    parseHTTPRefusal,
    parseResponse,
    rawRequest,
)


class _HeadersSubclass(Headers):
    """A ``Headers`` subclass: the channel uses only its public methods."""

    added: list[tuple[bytes, bytes]]

    def addRawHeader(self, name: str | bytes, value: str | bytes) -> None:
        """Record the call, then add as ``Headers`` does."""
        assert isinstance(name, bytes) and isinstance(value, bytes)
        self.added = [*getattr(self, "added", []), (name, value)]
        super().addRawHeader(name, value)


class _FormRequest:
    """The two attributes of a request that decide whether its body is a form."""

    _parsePOSTFormSubmission = True

    def __init__(self, requestHeaders: Headers) -> None:
        """Hold the request's headers."""
        self.requestHeaders = requestHeaders


def _failure(error: BaseException) -> Failure:
    """Wrap an exception in a ``Failure``."""
    return Failure(error)


class Pending(Resource):
    """A leaf that answers nothing yet: each request waits in :attr:`requests`."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[WebRequest] = []

    def render(self, request: WebRequest) -> int:
        """Keep the request and answer later."""
        self.requests.append(request)
        return NOT_DONE_YET


class Raising(Resource):
    """A leaf whose rendering fails."""

    isLeaf = True

    def render(self, request: WebRequest) -> bytes:
        """Fail with ZeroDivisionError."""
        raise ZeroDivisionError("the secret detail 4711")


class Rendering(Resource):
    """A leaf that renders with a function of the test's choosing."""

    isLeaf = True

    def __init__(self, render: Callable[[WebRequest], bytes | int]) -> None:
        super().__init__()
        self._render = render

    def render(self, request: WebRequest) -> bytes | int:
        """Call the function."""
        return self._render(request)


@implementer(IPushProducer)
class PushProducer:
    """A streaming producer that records what its consumer asked of it."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def pauseProducing(self) -> None:
        """Record a pause."""
        self.calls.append("pause")

    def resumeProducing(self) -> None:
        """Record a resume."""
        self.calls.append("resume")

    def stopProducing(self) -> None:
        """Record a stop."""
        self.calls.append("stop")


class RecordingRequests:
    """A request factory that builds stock requests and keeps every one it built."""

    def __init__(self) -> None:
        self.made: list[WebRequest] = []

    def __call__(self, channel: SCGIChannel) -> Request:
        """Build a stock ``server.Request``."""
        request = Request(channel)
        self.made.append(cast(WebRequest, request))
        return request


class ChannelTestCase(SynchronousTestCase):
    """Shared set-up: a clock, a recording leaf as the root, and recorded logs."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.recorder = Recorder()
        self.logged = collectLogEvents(self)

    def makeSite(self, root: IResource | None = None, **options: Any) -> SCGISite:
        """Build a site on the test's clock; the root defaults to the recorder."""
        resource = self.recorder if root is None else root
        return SCGISite(resource, reactor=self.clock, **options)

    def respond(
        self, data: bytes, site: SCGISite | None = None
    ) -> tuple[CGIResponse, HalfCloseTransport]:
        """Send ``data`` on a new connection; return the complete response."""
        channel, transport = connect(site or self.makeSite())
        channel.dataReceived(data)
        self.assertTrue(transport.disconnecting, "the response is not complete")
        return parseResponse(transport.value()), transport

    def seen(self, variables: Pairs, body: bytes = b"") -> Seen:
        """Send one valid request to the recorder; return how it looked."""
        response, _ = self.respond(buildRequest(variables, body))
        self.assertEqual(response.status, 200, response)
        self.assertEqual(len(self.recorder.seen), 1)
        return self.recorder.seen.pop()

    def assertQuiet(self) -> None:
        """Nothing was logged at warn level or above."""
        self.assertEqual(warningsAndErrors(self.logged), [])


class RequestBuildingTests(ChannelTestCase):
    """The stock request is built from the CGI variables."""

    def respondRefused(self, data: bytes) -> tuple[CGIResponse, HalfCloseTransport]:
        """Send a complete request that is refused; the channel closes at once."""
        response, transport = self.respond(data)
        self.assertEqual(self.recorder.seen, [])
        self.assertFalse(transport.disconnected)
        return response, transport

    def test_method(self) -> None:
        """REQUEST_METHOD is the request's method, as sent."""
        seen = self.seen(nginxVariables(REQUEST_METHOD=b"DELETE"))
        self.assertEqual(seen.method, b"DELETE")

    def test_methodDefault(self) -> None:
        """Without REQUEST_METHOD the method is GET."""
        seen = self.seen(nginxVariables(REQUEST_METHOD=None))
        self.assertEqual(seen.method, b"GET")

    def test_uriFromRequestURI(self) -> None:
        """``uri`` is REQUEST_URI as sent, query included; path and args follow it."""
        seen = self.seen(nginxVariables(b"/a%20b/c%2Fd?x=1&y=%FF&x=2"))
        self.assertEqual(seen.uri, b"/a%20b/c%2Fd?x=1&y=%FF&x=2")
        self.assertEqual(seen.path, b"/a%20b/c%2Fd")
        self.assertEqual(seen.args, {b"x": [b"1", b"2"], b"y": [b"\xff"]})

    def test_uriSynthesized(self) -> None:
        """Without REQUEST_URI, ``uri`` is quote(SCRIPT_NAME+PATH_INFO)?QUERY_STRING."""
        variables = nginxVariables(
            REQUEST_URI=None,
            SCRIPT_NAME=b"/app",
            PATH_INFO=b"/a b/c",
            QUERY_STRING=b"q=1",
        )
        seen = self.seen(variables)
        self.assertEqual(seen.uri, b"/app/a%20b/c?q=1")
        self.assertEqual(seen.args, {b"q": [b"1"]})
        self.assertEqual(seen.prepath, [b"app"])
        self.assertEqual(seen.postpath, [b"a b", b"c"])

    def test_uriAbsoluteForm(self) -> None:
        """An absolute-form REQUEST_URI is reduced to its path and query."""
        seen = self.seen(nginxVariables(b"http://example.test:81/x/y?z=1"))
        self.assertEqual(seen.uri, b"/x/y?z=1")
        self.assertEqual(seen.postpath, [b"x", b"y"])

    def test_clientproto(self) -> None:
        """``clientproto`` is SERVER_PROTOCOL unchanged."""
        for protocol in [b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0"]:
            seen = self.seen(nginxVariables(SERVER_PROTOCOL=protocol))
            self.assertEqual(seen.clientproto, protocol)

    def test_clientprotoDefault(self) -> None:
        """Without SERVER_PROTOCOL (or with an empty one) it is HTTP/1.0."""
        for value in [None, b""]:
            seen = self.seen(nginxVariables(SERVER_PROTOCOL=value))
            self.assertEqual(seen.clientproto, b"HTTP/1.0")

    def test_httpHeaders(self) -> None:
        """HTTP_X_FOO_BAR arrives as the header X-Foo-Bar, value as sent."""
        seen = self.seen(
            nginxVariables(HTTP_X_FOO_BAR=b"caf\xe9", HTTP_ACCEPT=b"text/*")
        )
        self.assertEqual(seen.headers[b"X-Foo-Bar"], [b"caf\xe9"])
        self.assertEqual(seen.headers[b"Accept"], [b"text/*"])
        self.assertEqual(seen.headers[b"Host"], [b"example.test"])
        self.assertNotIn(b"X_foo_bar", seen.headers)

    def test_contentHeaders(self) -> None:
        """CONTENT_TYPE and CONTENT_LENGTH win; their HTTP_ copies are dropped."""
        variables = nginxVariables(
            REQUEST_METHOD=b"PUT",
            CONTENT_TYPE=b"text/plain",
            HTTP_CONTENT_TYPE=b"application/evil",
            HTTP_CONTENT_LENGTH=b"9999",
        )
        seen = self.seen(variables, b"hello")
        self.assertEqual(seen.headers[b"Content-Type"], [b"text/plain"])
        self.assertEqual(seen.headers[b"Content-Length"], [b"5"])

    def test_noContentHeaders(self) -> None:
        """An empty CONTENT_TYPE and a zero CONTENT_LENGTH add no header."""
        seen = self.seen(nginxVariables())
        self.assertNotIn(b"Content-Type", seen.headers)
        self.assertNotIn(b"Content-Length", seen.headers)

    def test_skippedHeaders(self) -> None:
        """HTTP_TRANSFER_ENCODING and HTTP_PROXY never become headers."""
        variables = nginxVariables(
            HTTP_TRANSFER_ENCODING=b"chunked", HTTP_PROXY=b"http://evil.test/"
        )
        seen = self.seen(variables, b"de-chunked body")
        self.assertNotIn(b"Transfer-Encoding", seen.headers)
        self.assertNotIn(b"Proxy", seen.headers)
        self.assertEqual(seen.content, b"de-chunked body")

    def test_repeatedHeadersMerged(self) -> None:
        """Repeated HTTP_* (nginx 1.22) arrive merged: one header, values joined."""
        variables = nginxVariables()
        variables += [
            (b"HTTP_X_FOO", b"one"),
            (b"HTTP_COOKIE", b"a=1"),
            (b"HTTP_X_FOO", b"two"),
            (b"HTTP_COOKIE", b"b=2"),
        ]
        seen = self.seen(variables)
        self.assertEqual(seen.headers[b"X-Foo"], [b"one, two"])
        self.assertEqual(seen.headers[b"Cookie"], [b"a=1; b=2"])
        self.assertEqual(seen.cookies, {b"a": b"1", b"b": b"2"})

    def test_badHeaderName(self) -> None:
        """An HTTP_* name that cannot be a header is refused with 400, not served."""
        data = buildRequest(nginxVariables(**{"HTTP_X\x01Y": b"1"}))
        response, _ = self.respondRefused(data)
        self.assertEqual(response.status, 400)
        self.assertIn(b"is not a token", response.body)

    def test_crlfInHeaderValue(self) -> None:
        """CR or LF in an HTTP_* value is refused with 400, not served."""
        data = buildRequest(nginxVariables(HTTP_X_FOO=b"a\r\nX-Injected: 1"))
        response, _ = self.respondRefused(data)
        self.assertEqual(response.status, 400)
        self.assertIn(b"CR or LF", response.body)

    def test_malformedOptionalVariables(self) -> None:
        """Missing, empty or malformed optional variables never stop the request."""
        variants: list[dict[str, bytes | None]] = [
            {"SERVER_PORT": b""},
            {"SERVER_PORT": b"http"},
            {"SERVER_NAME": b""},
            {"SERVER_NAME": None, "SERVER_PORT": None, "HTTP_HOST": None},
            {"REMOTE_PORT": b"abc"},
            {"REMOTE_PORT": b"99999999999999999999"},
            {"REMOTE_ADDR": b"garbage"},
            {"REMOTE_ADDR": b""},
            {"REMOTE_ADDR": None, "REMOTE_PORT": None},
            {"REQUEST_URI": None, "QUERY_STRING": None},
            {"REQUEST_URI": b""},
            {"REQUEST_URI": b"no-slash"},
            {"SERVER_PROTOCOL": b"FOO/9"},
            {"HTTP_HOST": b"[::1"},
            {"HTTP_HOST": b"host:port"},
            {"HTTPS": b"maybe"},
            {"REQUEST_SCHEME": b""},
            {"SCRIPT_NAME": b"no-slash", "PATH_INFO": b"also-none"},
            {"PATH_INFO": b"/x"},
            {"CONTENT_TYPE": b"\xff\xfe"},
        ]
        for overrides in variants:
            response, _ = self.respond(buildRequest(nginxVariables(**overrides)))
            self.assertEqual(response.status, 200, overrides)
        self.assertEqual(len(self.recorder.seen), len(variants))
        self.assertQuiet()

    def test_onlyRequiredVariables(self) -> None:
        """CONTENT_LENGTH and SCGI alone make a GET / HTTP/1.0 from 0.0.0.0."""
        seen = self.seen([])
        self.assertEqual(
            (seen.method, seen.uri, seen.clientproto), (b"GET", b"/", b"HTTP/1.0")
        )
        self.assertEqual(seen.client, IPv4Address("TCP", "0.0.0.0", 0))
        self.assertEqual(seen.host, IPv4Address("TCP", "localhost", 80))
        self.assertFalse(seen.secure)


class DescriptorTransport(FileDescriptor):
    """A transport built on Twisted's own ``FileDescriptor`` write buffer.

    ``writeSomeData`` records each buffer exactly as the descriptor hands it over
    (a piece written alone is handed over as the same object); :meth:`flush` runs
    the writes a reactor would run, then the close.
    """

    def __init__(self) -> None:
        super().__init__(reactor=MemoryReactor())
        self.connected = 1
        self.sent: list[bytes] = []
        self.protocol: SCGIChannel | None = None

    def writeSomeData(self, data: bytes) -> int:
        """Record what the descriptor sends (never an empty buffer); take it all."""
        if data:
            self.sent.append(data)
        return len(data)

    def getPeer(self) -> IPv4Address:
        """Return a peer address."""
        return IPv4Address("TCP", "127.0.0.1", 5000)

    def getHost(self) -> IPv4Address:
        """Return a host address."""
        return IPv4Address("TCP", "127.0.0.1", 4000)

    def output(self) -> bytes:
        """Return everything sent so far."""
        return b"".join(bytes(piece) for piece in self.sent)

    def flush(self) -> None:
        """Run the writes the reactor would; close the connection when they end it."""
        reactor = cast(MemoryReactor, self.reactor)
        while self in reactor.getWriters():
            why = self.doWrite()
            if why is not None:
                self.connectionLost(_failure(why))
                assert self.protocol is not None
                self.protocol.connectionLost(_failure(why))
                return


class HeldHeadTests(ChannelTestCase):
    """The head goes out with the first piece of body; large pieces are not joined.

    A first piece of 64 KiB or more is handed to the transport after the head, each
    from its own buffer, and what follows keeps its order.
    """

    large = b"L" * (256 * 1024)

    def serve(self, render: Callable[[WebRequest], bytes | int]) -> DescriptorTransport:
        """Send a GET for a leaf rendering with ``render`` over a descriptor."""
        channel = self.makeSite(Rendering(render)).buildProtocol(None)
        assert channel is not None
        transport = DescriptorTransport()
        transport.protocol = channel
        channel.makeConnection(transport)
        channel.dataReceived(buildRequest(nginxVariables()))
        return transport

    def test_smallBodyWithHead(self) -> None:
        """A small body leaves in one buffer with the head."""
        transport = self.serve(lambda request: b"hello")
        transport.flush()
        (sent,) = transport.sent
        response = parseResponse(bytes(sent))
        self.assertEqual((response.status, response.body), (200, b"hello"))
        self.assertTrue(transport.disconnected)

    def test_largeBodyNotJoined(self) -> None:
        """A large body is handed over as the very object rendered, after the head."""
        transport = self.serve(lambda request: self.large)
        transport.flush()
        head, body = transport.sent
        self.assertTrue(bytes(head).startswith(b"Status: 200 OK\r\n"))
        self.assertTrue(bytes(head).endswith(b"\r\n\r\n"))
        self.assertIs(body, self.large)
        self.assertEqual(parseResponse(transport.output()).body, self.large)
        self.assertTrue(transport.disconnected)

    def test_laterWritesKeepOrder(self) -> None:
        """Writes after a large one, and the finish, wait their turn."""

        def render(request: WebRequest) -> int:
            request.write(self.large)
            request.write(b"tail")
            cast(Any, request).channel.writeSequence([b"-one", b"-two"])
            request.finish()
            return NOT_DONE_YET

        transport = self.serve(render)
        self.assertFalse(transport.disconnected)
        transport.flush()
        response = parseResponse(transport.output())
        self.assertEqual(response.body, self.large + b"tail-one-two")
        self.assertTrue(transport.disconnected)

    def test_producerWaitsForQueue(self) -> None:
        """A push producer registered behind a large write is paused until its turn."""
        producer = PushProducer()
        requests: list[WebRequest] = []

        def render(request: WebRequest) -> int:
            requests.append(request)
            request.write(self.large)
            request.registerProducer(producer, True)
            return NOT_DONE_YET

        transport = self.serve(render)
        self.assertEqual(producer.calls, ["pause"])
        self.assertIsNot(transport.producer, producer)
        transport.flush()
        self.assertIs(transport.producer, producer)
        self.assertEqual(producer.calls, ["pause", "resume"])
        (request,) = requests
        request.write(b"more")
        request.unregisterProducer()
        request.finish()
        transport.flush()
        self.assertEqual(parseResponse(transport.output()).body, self.large + b"more")
        self.assertTrue(transport.disconnected)

    def test_producerUnregisteredWhileQueued(self) -> None:
        """A producer registered and unregistered behind the queue is never used."""
        producer = PushProducer()

        def render(request: WebRequest) -> int:
            request.write(self.large)
            request.registerProducer(producer, True)
            request.unregisterProducer()
            request.finish()
            return NOT_DONE_YET

        transport = self.serve(render)
        transport.flush()
        self.assertEqual(producer.calls, ["pause"])
        self.assertEqual(parseResponse(transport.output()).body, self.large)

    def test_lostWhileQueued(self) -> None:
        """A connection lost with queued pieces drops them quietly."""

        def render(request: WebRequest) -> int:
            request.write(self.large)
            request.write(b"tail")
            return NOT_DONE_YET

        transport = self.serve(render)
        lost = _failure(ConnectionLost())
        transport.connectionLost(lost)
        assert transport.protocol is not None
        transport.protocol.connectionLost(lost)
        transport.flush()
        self.assertEqual(transport.sent, [])
        self.assertIsNone(transport.producer)
        self.assertQuiet()

    def test_pullProducerOfLargePieces(self) -> None:
        """``static.File`` (a pull producer of 64 KiB pieces) is served whole."""
        path = self.mktemp()
        content = os.urandom(300 * 1024)
        with open(path, "wb") as file:
            file.write(content)
        root = Resource()
        root.putChild(b"file", static.File(path))
        channel = self.makeSite(root).buildProtocol(None)
        assert channel is not None
        transport = DescriptorTransport()
        transport.protocol = channel
        channel.makeConnection(transport)
        channel.dataReceived(buildRequest(nginxVariables(b"/file")))
        transport.flush()
        self.assertEqual(parseResponse(transport.output()).body, content)
        self.assertTrue(transport.disconnected)

    def test_headersOnlyLeaveAfterRender(self) -> None:
        """Headers written alone (``write(b"")``) leave once render returns."""
        requests: list[WebRequest] = []

        def render(request: WebRequest) -> int:
            request.write(b"")
            requests.append(request)
            return NOT_DONE_YET

        channel, transport = connect(self.makeSite(Rendering(render)))
        channel.dataReceived(buildRequest(nginxVariables()))
        self.assertTrue(transport.value().startswith(b"Status: 200 OK\r\n"))
        self.assertTrue(transport.value().endswith(b"\r\n\r\n"))
        requests[0].write(b"event")
        self.assertTrue(transport.value().endswith(b"\r\n\r\nevent"))


class AddHeadersTests(SynchronousTestCase):
    """``_addHeaders`` fills a request's ``Headers`` exactly as ``addRawHeader``."""

    @settings(max_examples=200, deadline=None)
    @given(
        st.lists(
            st.tuples(
                st.sampled_from(
                    [b"host", b"x-foo", b"content-md5", b"dnt", b"te", b"etag", b"a"]
                ),
                st.binary(max_size=8).filter(
                    lambda v: b"\r" not in v and b"\n" not in v
                ),
            ),
            max_size=8,
        ),
        st.lists(st.tuples(st.just(b"x-foo"), st.just(b"already")), max_size=1),
    )
    def test_sameAsAddRawHeader(
        self, pairs: list[tuple[bytes, bytes]], before: list[tuple[bytes, bytes]]
    ) -> None:
        """The result equals a ``Headers`` built with ``addRawHeader``, in order.

        Headers already present keep their values, new ones are appended.
        """
        expected, actual = Headers(), Headers()
        for name, value in before + pairs:
            expected.addRawHeader(name, value)
        for name, value in before:
            actual.addRawHeader(name, value)
        _addHeaders(actual, pairs)
        self.assertEqual(
            list(actual.getAllRawHeaders()), list(expected.getAllRawHeaders())
        )

    def test_subclassUsesPublicMethod(self) -> None:
        """A ``Headers`` subclass is filled through its own ``addRawHeader``."""
        headers = _HeadersSubclass()
        _addHeaders(headers, [(b"host", b"h"), (b"x-a", b"1")])
        self.assertEqual(headers.added, [(b"host", b"h"), (b"x-a", b"1")])
        self.assertEqual(headers.getRawHeaders(b"x-a"), [b"1"])


class AddressTests(ChannelTestCase):
    """getClientAddress(), getHost() and isSecure() answer from the variables."""

    def client(self, **overrides: bytes | None) -> object:
        """Return getClientAddress() for nginx variables with some overrides."""
        return self.seen(nginxVariables(**overrides)).client

    def test_clientIPv4(self) -> None:
        """An IPv4 REMOTE_ADDR and REMOTE_PORT give an IPv4Address."""
        self.assertEqual(
            self.client(REMOTE_ADDR=b"198.51.100.7", REMOTE_PORT=b"40001"),
            IPv4Address("TCP", "198.51.100.7", 40001),
        )

    def test_clientIPv6(self) -> None:
        """An IPv6 REMOTE_ADDR gives an IPv6Address."""
        self.assertEqual(
            self.client(REMOTE_ADDR=b"2001:db8::7", REMOTE_PORT=b"40001"),
            IPv6Address("TCP", "2001:db8::7", 40001),
        )

    def test_clientMissing(self) -> None:
        """Without REMOTE_ADDR the client is 0.0.0.0 port 0."""
        self.assertEqual(
            self.client(REMOTE_ADDR=None, REMOTE_PORT=None),
            IPv4Address("TCP", "0.0.0.0", 0),
        )

    def test_clientUnix(self) -> None:
        """The ``unix:`` nginx sends for unix-listener clients gives 0.0.0.0 port 0."""
        self.assertEqual(
            self.client(REMOTE_ADDR=b"unix:", REMOTE_PORT=b""),
            IPv4Address("TCP", "0.0.0.0", 0),
        )

    def test_clientBadPort(self) -> None:
        """A non-numeric REMOTE_PORT gives port 0 and keeps the address."""
        self.assertEqual(
            self.client(REMOTE_ADDR=b"198.51.100.7", REMOTE_PORT=b"x1"),
            IPv4Address("TCP", "198.51.100.7", 0),
        )

    def test_channelPeerBeforeRequest(self) -> None:
        """Before any request the channel's peer is 0.0.0.0 and its host localhost."""
        channel, _ = connect(self.makeSite())
        self.assertEqual(channel.getPeer(), IPv4Address("TCP", "0.0.0.0", 0))
        self.assertEqual(channel.getHost(), IPv4Address("TCP", "localhost", 80))
        self.assertFalse(channel.isSecure())

    def host(self, **overrides: bytes | None) -> IPv4Address:
        """Return getHost() for nginx variables with some overrides."""
        return self.seen(nginxVariables(**overrides)).host

    def test_hostFromServerVariables(self) -> None:
        """getHost() is SERVER_NAME and SERVER_PORT, the host a str."""
        host = self.host(SERVER_NAME=b"www.example.test", SERVER_PORT=b"8080")
        self.assertEqual(host, IPv4Address("TCP", "www.example.test", 8080))
        self.assertIsInstance(host.host, str)

    def test_hostHeaderPort(self) -> None:
        """An explicit port in HTTP_HOST wins over SERVER_PORT."""
        host = self.host(HTTP_HOST=b"example.test:4443", SERVER_PORT=b"8080")
        self.assertEqual(host.port, 4443)
        self.assertEqual(host.host, "localhost")

    def test_hostEmptyServerName(self) -> None:
        """An empty SERVER_NAME (lighttpd) falls back to HTTP_HOST's host name."""
        host = self.host(SERVER_NAME=b"", HTTP_HOST=b"example.test")
        self.assertEqual(host.host, "example.test")

    def test_hostNonASCII(self) -> None:
        """A Latin-1 SERVER_NAME without a Host header still gives working URLs."""
        hostnames: list[bytes] = []

        def render(request: WebRequest) -> bytes:
            hostnames.append(request.getRequestHostname())
            return request.prePathURL()

        site = self.makeSite(Rendering(render))
        variables = nginxVariables(b"/x", SERVER_NAME=b"\xe9t\xe9", HTTP_HOST=None)
        response, _ = self.respond(buildRequest(variables), site)
        self.assertEqual(response.status, 200)
        self.assertEqual(response.body, b"http://localhost:8080/")
        self.assertEqual(hostnames, [b"localhost"])

    def test_hostNothing(self) -> None:
        """No SERVER_NAME and no Host give localhost."""
        host = self.host(SERVER_NAME=None, HTTP_HOST=None)
        self.assertEqual(host.host, "localhost")

    def test_hostEmptyPort(self) -> None:
        """An empty SERVER_PORT falls back to 80, or 443 over TLS."""
        self.assertEqual(self.host(SERVER_PORT=b"").port, 80)
        self.assertEqual(self.host(SERVER_PORT=b"", HTTPS=b"on").port, 443)

    def test_hostRemembered(self) -> None:
        """Requests naming the same server share one address; new names are bounded.

        The answer is remembered per value of the server variables, and at most
        ``SERVER_ADDRESSES_CACHED`` are, whatever Host headers clients send.
        """
        self.assertIs(self.host(), self.host())
        for index in range(_channel.SERVER_ADDRESSES_CACHED + 10):
            self.assertEqual(
                self.host(SERVER_NAME=None, HTTP_HOST=b"h%d.test" % (index,)).host,
                f"h{index}.test",
            )
        self.assertLessEqual(
            _channel._addressed.cache_info().currsize,
            _channel.SERVER_ADDRESSES_CACHED,
        )

    def secure(self, **overrides: bytes | None) -> bool:
        """Return isSecure() for nginx variables with some overrides."""
        return self.seen(nginxVariables(**overrides)).secure

    def test_secure(self) -> None:
        """HTTPS on, 1 or ON, or REQUEST_SCHEME https, make the request secure."""
        self.assertTrue(self.secure(HTTPS=b"on"))
        self.assertTrue(self.secure(HTTPS=b"1"))
        self.assertTrue(self.secure(HTTPS=b"ON"))
        self.assertTrue(self.secure(REQUEST_SCHEME=b"https"))

    def test_notSecure(self) -> None:
        """Plain nginx variables, HTTPS off, or X-Forwarded-Proto are not secure."""
        self.assertFalse(self.secure())
        self.assertFalse(self.secure(HTTPS=b"off"))
        self.assertFalse(self.secure(HTTP_X_FORWARDED_PROTO=b"https"))
        self.assertFalse(self.secure(HTTP_X_FORWARDED_SSL=b"on"))


class RawVariablesTests(ChannelTestCase):
    """getSCGIVariables(request) gives the variables exactly as sent."""

    def test_raw(self) -> None:
        """Inside render the variables are there: raw pairs in order, merged map."""
        variables = [
            (b"REQUEST_URI", b"/caf\xc3\xa9?q=\xff"),
            (b"HTTP_X_FOO", b"one"),
            (b"DOCUMENT_ROOT", b"/srv/\xe9"),
            (b"HTTP_X_FOO", b"two"),
            (b"EMPTY", b""),
        ]
        seen = self.seen(variables)
        found = seen.variables
        assert found is not None
        self.assertIsInstance(found, SCGIVariables)
        expected = [(b"CONTENT_LENGTH", b"0"), (b"SCGI", b"1"), *variables]
        self.assertEqual(list(found.raw), expected)
        self.assertEqual(found.getAll("HTTP_X_FOO"), [b"one", b"two"])
        self.assertEqual(found["HTTP_X_FOO"], b"one, two")
        self.assertEqual(found["EMPTY"], b"")
        self.assertEqual(found["CONTENT_LENGTH"], b"0")

    def test_header(self) -> None:
        """header(name, 'buffer') gives bytes; header(name, 'utf-8') gives text."""
        seen = self.seen([(b"REQUEST_URI", b"/caf\xc3\xa9")])
        found = seen.variables
        assert found is not None
        self.assertEqual(found.header("REQUEST_URI", "buffer"), b"/caf\xc3\xa9")
        self.assertEqual(found.header("REQUEST_URI", "utf-8"), "/café")
        self.assertIsNone(found.header("PATH_INFO", "utf-8"))

    def test_afterFinish(self) -> None:
        """Once the request has finished, getSCGIVariables gives None."""
        seen = self.seen([])
        self.assertIsNone(getSCGIVariables(seen.request))

    def test_notSCGI(self) -> None:
        """Something that did not come over SCGI gives None."""
        self.assertIsNone(getSCGIVariables(object()))


class ResponseTests(ChannelTestCase):
    """The response is CGI: a Status line, CRLF headers, a blank line, the body."""

    def test_layout(self) -> None:
        """``Status: 200 OK`` comes first; never an HTTP/1.x status line."""
        data = buildRequest(nginxVariables())
        response, transport = self.respond(data)
        raw = transport.value()
        self.assertTrue(raw.startswith(b"Status: 200 OK\r\n"), raw)
        head = raw.partition(b"\r\n\r\n")[0]
        self.assertNotIn(b"HTTP/1.", head)
        self.assertEqual(
            [name for name, _ in response.headers],
            [b"Server", b"Date", b"Content-Length", b"Content-Type"],
        )
        self.assertEqual(response.header(b"Content-Length"), b"2")
        self.assertEqual(response.body, b"ok")

    def test_notDoneYetNoChunking(self) -> None:
        """Delayed writes under HTTP/1.1 go out raw: no Transfer-Encoding, no sizes."""

        def render(request: WebRequest) -> int:
            self.clock.callLater(1, request.write, b"abc")
            self.clock.callLater(2, request.write, b"defghijklmnopq")
            self.clock.callLater(3, request.finish)
            return NOT_DONE_YET

        site = self.makeSite(Rendering(render))
        channel, transport = connect(site)
        channel.dataReceived(buildRequest(nginxVariables()))
        self.assertEqual(transport.value(), b"")
        self.clock.advance(1)
        self.assertTrue(transport.value().endswith(b"\r\n\r\nabc"))
        self.clock.advance(1)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(1)
        self.assertTrue(transport.disconnecting)
        response = parseResponse(transport.value())
        self.assertEqual(response.status, 200)
        self.assertIsNone(response.header(b"Transfer-Encoding"))
        self.assertIsNone(response.header(b"Content-Length"))
        self.assertEqual(response.body, b"abcdefghijklmnopq")

    def test_finishWithoutWrite(self) -> None:
        """An HTTP/1.1 response finished without a write has no last-chunk marker."""
        pending = Pending()
        channel, transport = connect(self.makeSite(pending))
        channel.dataReceived(buildRequest(nginxVariables()))
        (request,) = pending.requests
        request.finish()
        response = parseResponse(transport.value())
        self.assertEqual(response.body, b"")
        self.assertEqual(response.values(b"Transfer-Encoding"), [])
        self.assertTrue(transport.value().endswith(b"\r\n\r\n"))

    def test_gzip(self) -> None:
        """A gzip-encoded HTTP/1.1 response (no Content-Length) is not chunked."""
        body = b"compress me " * 1000
        root = EncodingResourceWrapper(Recorder(body), [GzipEncoderFactory()])
        variables = nginxVariables(HTTP_ACCEPT_ENCODING=b"gzip")
        response, _ = self.respond(buildRequest(variables), self.makeSite(root))
        self.assertEqual(response.header(b"Content-Encoding"), b"gzip")
        self.assertEqual(response.values(b"Transfer-Encoding"), [])
        self.assertEqual(response.values(b"Content-Length"), [])
        self.assertEqual(gzip.decompress(response.body), body)

    def test_reasonCRLF(self) -> None:
        """A CR/LF in a reason set by setResponseCode cannot add a header line."""

        def render(request: WebRequest) -> bytes:
            request.setResponseCode(200, b"OK\r\nX-Injected: 1\r\n\r\nevil")
            return b"body"

        response, _ = self.respond(
            buildRequest(nginxVariables()), self.makeSite(Rendering(render))
        )
        self.assertEqual(response.status, 200)
        self.assertEqual(response.reason, b"OK  X-Injected: 1    evil")
        self.assertEqual(response.values(b"X-Injected"), [])
        self.assertEqual(response.body, b"body")

    def test_reason(self) -> None:
        """An application's code and reason are sent as they are."""

        def render(request: WebRequest) -> bytes:
            request.setResponseCode(299, b"Whatever You Like")
            return b""

        response, _ = self.respond(
            buildRequest(nginxVariables()), self.makeSite(Rendering(render))
        )
        self.assertEqual(
            (response.status, response.reason), (299, b"Whatever You Like")
        )

    def test_emptyReason(self) -> None:
        """An empty reason is replaced by the standard phrase (old nginx needs one)."""

        def render(request: WebRequest) -> bytes:
            request.setResponseCode(404, b"")
            return b""

        response, _ = self.respond(
            buildRequest(nginxVariables()), self.makeSite(Rendering(render))
        )
        self.assertEqual((response.status, response.reason), (404, b"Not Found"))

    def test_statusHeaderDropped(self) -> None:
        """A ``Status`` header set by the application never reaches the frontend."""

        def render(request: WebRequest) -> bytes:
            request.setHeader(b"Status", b"404 Not Found")
            return b"x"

        response, transport = self.respond(
            buildRequest(nginxVariables()), self.makeSite(Rendering(render))
        )
        self.assertEqual(response.status, 200)
        self.assertEqual(response.values(b"Status"), [])
        self.assertEqual(transport.value().count(b"Status:"), 1)

    def test_invalidHead(self) -> None:
        """A head that cannot be encoded (NUL in a value) is a 500; the body dropped."""

        def render(request: WebRequest) -> bytes:
            request.setHeader(b"X-Bad", b"a\x00b")
            return b"the application's body"

        response, _ = self.respond(
            buildRequest(nginxVariables()), self.makeSite(Rendering(render))
        )
        self.assertEqual(response.status, 500)
        self.assertEqual(
            response.body,
            b"500 Internal Server Error: the application produced an "
            b"invalid response\n",
        )
        self.assertEqual(response.header(b"Content-Length"), b"%d" % len(response.body))
        errors = warningsAndErrors(self.logged)
        self.assertEqual(len(errors), 1)
        self.assertIn("cannot be sent", errors[0]["log_format"])

    def test_invalidStatus(self) -> None:
        """A status code outside 100-999 is a 500 from the channel."""

        def render(request: WebRequest) -> bytes:
            request.setResponseCode(42)
            return b"x"

        response, _ = self.respond(
            buildRequest(nginxVariables()), self.makeSite(Rendering(render))
        )
        self.assertEqual(response.status, 500)

    def test_head(self) -> None:
        """HEAD gets the headers, Content-Length included, and no body."""

        class Page(Resource):
            isLeaf = True

            def render_GET(self, request: WebRequest) -> bytes:
                return b"hello"

        response, transport = self.respond(
            buildRequest(nginxVariables(REQUEST_METHOD=b"HEAD")), self.makeSite(Page())
        )
        self.assertEqual(response.status, 200)
        self.assertEqual(response.header(b"Content-Length"), b"5")
        self.assertEqual(response.body, b"")
        self.assertTrue(transport.value().endswith(b"\r\n\r\n"))

    def test_headRender(self) -> None:
        """HEAD to a resource that renders a body anyway still sends no body."""
        response, _ = self.respond(buildRequest(nginxVariables(REQUEST_METHOD=b"HEAD")))
        self.assertEqual(response.header(b"Content-Length"), b"2")
        self.assertEqual(response.body, b"")

    def test_writeSequence(self) -> None:
        """Pieces given to the channel's writeSequence go out as they are."""
        pending = Pending()
        channel, transport = connect(self.makeSite(pending))
        channel.dataReceived(buildRequest(nginxVariables()))
        (request,) = pending.requests
        request.write(b"")
        head = transport.value()
        channel.writeSequence([b"one", b"", b"two"])
        self.assertEqual(transport.value(), head + b"onetwo")

    def test_loseConnection(self) -> None:
        """Request.loseConnection() (WSGI's error path) closes the transport."""
        pending = Pending()
        channel, transport = connect(self.makeSite(pending))
        channel.dataReceived(buildRequest(nginxVariables()))
        (request,) = pending.requests
        finished = request.notifyFinish()
        request.loseConnection()
        self.assertTrue(transport.disconnecting)
        channel.connectionLost(_failure(ConnectionDone()))
        self.failureResultOf(finished, ConnectionDone)

    def test_closedAfterResponse(self) -> None:
        """The transport is closed (not aborted) right after; no timer is left.

        Until the close completes only the write timeout runs; the close ends it.
        """
        channel, transport = connect(self.makeSite())
        channel.dataReceived(buildRequest(nginxVariables()))
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.disconnected)
        (call,) = self.clock.getDelayedCalls()
        self.assertEqual(call.getTime(), 300.0)
        channel.connectionLost(_failure(ConnectionDone()))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertQuiet()

    def test_deferred(self) -> None:
        """A resource answering from a Deferred is written when it fires."""
        fired: Deferred[bytes] = Deferred()

        def render(request: WebRequest) -> int:
            def answer(body: bytes) -> None:
                request.write(body)
                request.finish()

            fired.addCallback(answer)
            return NOT_DONE_YET

        channel, transport = connect(self.makeSite(Rendering(render)))
        channel.dataReceived(buildRequest(nginxVariables()))
        self.assertEqual(transport.value(), b"")
        self.assertFalse(transport.disconnecting)
        fired.callback(b"later")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(parseResponse(transport.value()).body, b"later")

    def test_notFound(self) -> None:
        """A path with no resource gets a 404 page."""
        response, _ = self.respond(
            buildRequest(nginxVariables(b"/missing")), self.makeSite(Resource())
        )
        self.assertEqual((response.status, response.reason), (404, b"Not Found"))
        self.assertIn(b"No Such Resource", response.body)

    def test_raises(self) -> None:
        """A resource that raises gets the 500 page, without the traceback."""
        site = self.makeSite(Raising())
        self.assertFalse(site.displayTracebacks)
        response, _ = self.respond(buildRequest(nginxVariables()), site)
        self.assertEqual(response.status, 500)
        self.assertIn(b"Processing Failed", response.body)
        self.assertNotIn(b"4711", response.body)
        self.assertNotIn(b"ZeroDivisionError", response.body)
        self.assertEqual(response.header(b"Content-Length"), b"%d" % len(response.body))
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_displayTracebacks(self) -> None:
        """With displayTracebacks on, the 500 page shows the traceback."""
        site = self.makeSite(Raising())
        site.displayTracebacks = True
        response, _ = self.respond(buildRequest(nginxVariables()), site)
        self.assertEqual(response.status, 500)
        self.assertIn(b"ZeroDivisionError", response.body)
        self.assertIn(b"4711", response.body)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)


class StaticFileTests(ChannelTestCase):
    """static.File serves a large file through its producer, byte for byte."""

    def test_oneMebibyte(self) -> None:
        """1 MiB from a temporary directory arrives exactly, with Content-Length."""
        directory = self.mktemp()
        os.makedirs(directory)
        data = b"".join(hashlib.sha256(b"%d" % i).digest() for i in range(32768))
        self.assertEqual(len(data), 1024 * 1024)
        with open(os.path.join(directory, "big.bin"), "wb") as f:
            f.write(data)
        root = static.File(directory)
        channel, transport = connect(self.makeSite(root))
        channel.dataReceived(buildRequest(nginxVariables(b"/big.bin")))
        producer = transport.producer
        self.assertIsNotNone(producer)
        self.assertFalse(transport.streaming)
        for _ in range(1000):
            if transport.producer is None:
                break
            transport.producer.resumeProducing()
        self.assertIsNone(transport.producer)
        self.assertTrue(transport.disconnecting)
        response = parseResponse(transport.value())
        self.assertEqual(response.status, 200)
        self.assertEqual(response.header(b"Content-Length"), b"1048576")
        self.assertEqual(response.values(b"Transfer-Encoding"), [])
        self.assertEqual(
            hashlib.sha256(response.body).hexdigest(),
            hashlib.sha256(data).hexdigest(),
        )


class SessionTests(ChannelTestCase):
    """Sessions work over SCGI: a cookie is set and finds the session again."""

    def test_session(self) -> None:
        """A session sets TWISTED_SESSION; the cookie brings back the same session."""
        uids: list[bytes] = []

        def render(request: WebRequest) -> bytes:
            uids.append(request.getSession().uid)
            return b"s"

        site = self.makeSite(Rendering(render))
        first, _ = self.respond(buildRequest(nginxVariables()), site)
        cookies = first.values(b"Set-Cookie")
        self.assertEqual(len(cookies), 1)
        name, _, rest = cookies[0].partition(b"=")
        self.assertEqual(name, b"TWISTED_SESSION")
        uid = rest.partition(b";")[0]
        self.assertIn(b"Path=/", cookies[0])
        self.assertEqual(uids, [uid])
        self.assertIn(uid, site.sessions)
        cookie = b"other=1; TWISTED_SESSION=" + uid
        second, _ = self.respond(buildRequest(nginxVariables(HTTP_COOKIE=cookie)), site)
        self.assertEqual(second.values(b"Set-Cookie"), [])
        self.assertEqual(uids, [uid, uid])

    def test_secureSession(self) -> None:
        """Over TLS the cookie is TWISTED_SECURE_SESSION and marked Secure."""

        def render(request: WebRequest) -> bytes:
            request.getSession()
            return b"s"

        response, _ = self.respond(
            buildRequest(nginxVariables(HTTPS=b"on")), self.makeSite(Rendering(render))
        )
        (cookie,) = response.values(b"Set-Cookie")
        self.assertTrue(cookie.startswith(b"TWISTED_SECURE_SESSION="))
        self.assertIn(b"Secure", cookie)


class BodyTests(ChannelTestCase):
    """The body arrives in request.content, exactly CONTENT_LENGTH bytes."""

    def test_large(self) -> None:
        """8 MiB fed in 64 KiB pieces arrives intact, spooled to a file."""
        body = os.urandom(8 * 1024 * 1024)
        data = buildRequest(nginxVariables(REQUEST_METHOD=b"PUT"), body)
        channel, transport = connect(self.makeSite())
        for start in range(0, len(data), 65536):
            channel.dataReceived(data[start : start + 65536])
        self.assertTrue(transport.disconnecting)
        (seen,) = self.recorder.seen
        self.assertEqual(
            hashlib.sha256(seen.content).hexdigest(), hashlib.sha256(body).hexdigest()
        )
        self.assertNotIsInstance(seen.contentFile, BodyBuffer)
        self.assertEqual(parseResponse(transport.value()).status, 200)

    def test_spoolThreshold(self) -> None:
        """Below spool_threshold the body stays in memory; at it, it goes to a file."""
        site = self.makeSite(spool_threshold=16)
        for size, inMemory in [(0, True), (15, True), (16, False), (17, False)]:
            self.respond(
                buildRequest(nginxVariables(REQUEST_METHOD=b"PUT"), b"x" * size), site
            )
            seen = self.recorder.seen.pop()
            self.assertEqual(seen.content, b"x" * size)
            self.assertEqual(
                isinstance(seen.contentFile, BodyBuffer | PooledBody | io.BytesIO),
                inMemory,
                size,
            )

    def test_defaultSpoolThreshold(self) -> None:
        """By default bodies up to 1 MiB stay in memory and larger go to a file."""
        for size, inMemory in [(1024 * 1024, True), (1024 * 1024 + 1, False)]:
            seen = self.seen(nginxVariables(REQUEST_METHOD=b"PUT"), b"y" * size)
            self.assertEqual(
                isinstance(seen.contentFile, BodyBuffer | PooledBody | io.BytesIO),
                inMemory,
                size,
            )

    def test_pooledBodies(self) -> None:
        """Bodies from 64 KiB to 1 MiB go to a pooled buffer, reused once finished.

        The buffer is back in the pool when the request finishes, and when the
        connection is lost before it does.  Smaller bodies are kept as read.
        """
        site = self.makeSite()
        body = os.urandom(POOLED_BODY_MIN)
        request = buildRequest(nginxVariables(REQUEST_METHOD=b"PUT"), body)
        idle: list[bytearray] = []
        for _ in range(2):
            self.respond(request, site)
            seen = self.recorder.seen.pop()
            self.assertEqual(seen.content, body)
            self.assertIsInstance(seen.contentFile, PooledBody)
            self.assertEqual(site._bodyPool.idle, 1)
            idle.append(site._bodyPool._idle[0])
        self.assertIs(idle[0], idle[1])
        self.respond(
            buildRequest(nginxVariables(REQUEST_METHOD=b"PUT"), body[1:]), site
        )
        self.assertIsInstance(self.recorder.seen.pop().contentFile, BodyBuffer)
        pending = self.makeSite(Pending())
        channel, _ = connect(pending)
        channel.dataReceived(request)
        self.assertEqual(pending._bodyPool.idle, 0)
        channel.connectionLost(_failure(ConnectionLost()))
        self.assertEqual(pending._bodyPool.idle, 1)

    def test_trailingBytesIgnored(self) -> None:
        """Bytes after CONTENT_LENGTH never reach the request."""
        data = buildRequest(nginxVariables(REQUEST_METHOD=b"POST"), b"hello")
        channel, transport = connect(self.makeSite())
        channel.dataReceived(data + b"GET / HTTP/1.1\r\n\r\n")
        channel.dataReceived(b"more after the response")
        (seen,) = self.recorder.seen
        self.assertEqual(seen.content, b"hello")
        self.assertEqual(seen.headers[b"Content-Length"], [b"5"])
        self.assertEqual(parseResponse(transport.value()).body, b"ok")

    def test_smallChunks(self) -> None:
        """A request fed one byte, then seven bytes at a time arrives the same."""
        body = bytes(range(256)) * 40
        data = buildRequest(nginxVariables(REQUEST_METHOD=b"POST"), body)
        for size in [1, 7]:
            channel, transport = connect(self.makeSite())
            for start in range(0, len(data), size):
                self.assertEqual(self.recorder.seen, [])
                channel.dataReceived(data[start : start + size])
            self.assertTrue(transport.disconnecting)
            self.assertEqual(self.recorder.seen.pop().content, body)

    def test_dispatchedAfterBody(self) -> None:
        """The request is dispatched only once the whole body has arrived."""
        data = buildRequest(nginxVariables(REQUEST_METHOD=b"POST"), b"0123456789")
        channel, transport = connect(self.makeSite())
        channel.dataReceived(data[:-1])
        self.assertEqual(self.recorder.seen, [])
        self.assertEqual(transport.value(), b"")
        channel.dataReceived(data[-1:])
        self.assertEqual(self.recorder.seen[0].content, b"0123456789")

    def test_formBody(self) -> None:
        """A urlencoded POST body is parsed into args, as over HTTP."""
        variables = nginxVariables(
            b"/?q=0",
            REQUEST_METHOD=b"POST",
            CONTENT_TYPE=b"application/x-www-form-urlencoded",
        )
        seen = self.seen(variables, b"a=1&b=%20")
        self.assertEqual(seen.args, {b"q": [b"0"], b"a": [b"1"], b"b": [b" "]})

    def test_formBodyAnyCase(self) -> None:
        """A form media type in any case, with parameters, is still parsed."""
        variables = nginxVariables(
            REQUEST_METHOD=b"POST",
            CONTENT_TYPE=b"Application/X-WWW-FORM-Urlencoded ; charset=utf-8",
        )
        seen = self.seen(variables, b"a=1")
        self.assertEqual(seen.args, {b"a": [b"1"]})

    def test_nonFormBodyNotParsed(self) -> None:
        """A POST whose Content-Type is not a form skips twisted.web's type parser.

        The body stays in ``content``, ``args`` holds only the query, and the
        request's form-parsing setting is as it was once the request is processed.
        """
        calls: list[bytes] = []
        original = http._parseContentType

        def parseContentType(line: bytes) -> bytes:
            calls.append(line)
            return original(line)

        self.patch(http, "_parseContentType", parseContentType)
        variables = nginxVariables(
            b"/?q=0", REQUEST_METHOD=b"POST", CONTENT_TYPE=b"application/json"
        )
        seen = self.seen(variables, b"a=1")
        self.assertEqual((seen.args, seen.content), ({b"q": [b"0"]}, b"a=1"))
        self.assertEqual(calls, [])
        formVariables = nginxVariables(
            REQUEST_METHOD=b"POST", CONTENT_TYPE=b"multipart/form-data; boundary=x"
        )
        multipart = (
            b'--x\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--x--\r\n'
        )
        self.assertEqual(self.seen(formVariables, multipart).args, {b"a": [b"1"]})
        self.assertEqual(calls, [b"multipart/form-data; boundary=x"])

    @settings(max_examples=300, deadline=None)
    @given(
        st.sampled_from([b"", b" ", b"(c) ", b"\t", b'"', b"=?utf-8?q?", b"\xe9"]),
        st.sampled_from(
            [
                b"application/x-www-form-urlencoded",
                b"multipart/form-data",
                b"application/json",
                b"text/plain",
                b"application/x-www-",
            ]
        ),
        st.lists(st.booleans(), min_size=40, max_size=40),
        st.sampled_from([b"", b" ", b";", b"; charset=utf-8", b"(form)", b"?=", b","]),
    )
    def test_skipOnlyWhatIsNotAForm(
        self, before: bytes, mediaType: bytes, upper: list[bool], after: bytes
    ) -> None:
        """Whenever the channel skips the type parser, it would not find a form."""
        cased = bytes(
            letter - 32 if flip and 97 <= letter <= 122 else letter
            for letter, flip in zip(mediaType, upper, strict=False)
        )
        contentType = before + cased + after
        request = _FormRequest(Headers({b"content-type": [contentType]}))
        if _cannotBeForm(request):
            self.assertNotIn(
                http._parseContentType(contentType),
                (b"application/x-www-form-urlencoded", b"multipart/form-data"),
            )


class ErrorTests(ChannelTestCase):
    """Malformed requests get one short 4xx answer; nothing is dispatched."""

    def assertRefused(
        self,
        data: bytes,
        status: int,
        message: str,
        site: SCGISite | None = None,
    ) -> tuple[SCGIChannel, HalfCloseTransport]:
        """Send ``data``; expect exactly one short ``status`` answer and no request.

        The answer has a text body naming the problem and a Content-Length; the
        channel has half-closed its side and waits for the rest of the request.
        """
        requests = RecordingRequests()
        site = site or self.makeSite(requestFactory=requests)
        channel, transport = connect(site)
        channel.dataReceived(data)
        response = parseResponse(transport.value())
        self.assertEqual(response.status, status)
        self.assertEqual(response.header(b"Content-Type"), b"text/plain; charset=utf-8")
        self.assertEqual(response.header(b"Content-Length"), b"%d" % len(response.body))
        reason = response.reason.decode()
        self.assertEqual(response.body, f"{status} {reason}: {message}\n".encode())
        self.assertLess(len(response.body), 200)
        self.assertEqual(self.recorder.seen, [])
        self.assertEqual(requests.made, [])
        warned = warningsAndErrors(self.logged)
        self.assertEqual(len(warned), 1)
        self.assertEqual(warned[0]["status"], status)
        return channel, transport

    def test_badRequests(self) -> None:
        """Each kind of malformed request gets its own 400."""
        variables = headerBlock([(b"SCGI", b"1")])
        cases: list[tuple[bytes, str]] = [
            (b"GEX / HTTP/1.1\r\n\r\n", SCGIParser.ERR_LENGTH_NOT_DIGITS),
            (b"\x16\x03\x01\x02\x00", SCGIParser.ERR_LENGTH_NOT_DIGITS),
            (b"070:", SCGIParser.ERR_LENGTH_LEADING_ZERO),
            (b":", SCGIParser.ERR_EMPTY_LENGTH),
            (
                netstring(b"CONTENT_LENGTH\x000\x00")[:-1] + b";",
                SCGIParser.ERR_BAD_TERMINATOR,
            ),
            (netstring(b"CONTENT_LENGTH\x000"), SCGIParser.ERR_NOT_NUL_TERMINATED),
            (netstring(b"CONTENT_LENGTH\x000\x00SCGI\x00"), SCGIParser.ERR_ODD_STRINGS),
            (netstring(b""), SCGIParser.ERR_NO_CONTENT_LENGTH),
            (netstring(variables), SCGIParser.ERR_NO_CONTENT_LENGTH),
            (
                rawRequest([(b"SCGI", b"1"), (b"CONTENT_LENGTH", b"0")]),
                SCGIParser.ERR_CONTENT_LENGTH_NOT_FIRST,
            ),
            (
                rawRequest([(b"CONTENT_LENGTH", b"-1"), (b"SCGI", b"1")]),
                SCGIParser.ERR_CONTENT_LENGTH_NOT_DIGITS,
            ),
            (rawRequest([(b"CONTENT_LENGTH", b"0")]), SCGIParser.ERR_NO_SCGI),
            (
                rawRequest([(b"CONTENT_LENGTH", b"0"), (b"SCGI", b"2")]),
                SCGIParser.ERR_BAD_SCGI,
            ),
            (
                rawRequest(
                    [
                        (b"CONTENT_LENGTH", b"0"),
                        (b"SCGI", b"1"),
                        (b"REQUEST_METHOD", b"GET"),
                        (b"REQUEST_METHOD", b"PUT"),
                    ]
                ),
                SCGIParser.ERR_DUPLICATE.format(name="REQUEST_METHOD"),
            ),
            (
                rawRequest([(b"CONTENT_LENGTH", b"0"), (b"SCGI", b"1"), (b"", b"x")]),
                SCGIParser.ERR_EMPTY_NAME,
            ),
        ]
        for data, message in cases:
            self.logged.clear()
            _, transport = self.assertRefused(data, 400, message)
            self.assertEqual(parseResponse(transport.value()).reason, b"Bad Request")

    def test_httpRequest(self) -> None:
        """An HTTP request on the SCGI port is answered in HTTP/1.0, naming SCGI.

        ``curl http://127.0.0.1:4000/`` then prints the reason instead of "Received
        HTTP/0.9 when not allowed"; nothing is dispatched, one warning is logged, and
        the channel half-closes and drains as for any refused request.
        """
        requests = RecordingRequests()
        site = self.makeSite(requestFactory=requests)
        channel, transport = connect(site)
        channel.dataReceived(b"GET / HTTP/1.1\r\nHost: 127.0.0.1:4000\r\n\r\n")
        data = transport.value()
        self.assertTrue(data.startswith(b"HTTP/1.0 400 Bad Request\r\n"), data)
        response = parseHTTPRefusal(data)
        self.assertEqual(response.status, 400)
        self.assertEqual(response.header(b"Connection"), b"close")
        self.assertEqual(response.header(b"Content-Type"), b"text/plain; charset=utf-8")
        self.assertEqual(response.header(b"Content-Length"), b"%d" % len(response.body))
        self.assertEqual(
            response.body,
            f"400 Bad Request: {SCGIParser.ERR_HTTP_REQUEST}\n".encode(),
        )
        self.assertIn(b"speaks SCGI", response.body)
        self.assertEqual(requests.made, [])
        self.assertTrue(transport.writeClosed)
        (warning,) = warningsAndErrors(self.logged)
        self.assertEqual(warning["status"], 400)
        channel.dataReceived(b"more of what the client sends")
        self.assertEqual(transport.value(), data)
        channel.readConnectionLost()
        self.assertTrue(transport.disconnecting)

    def test_duplicatesStrict(self) -> None:
        """With merge_duplicates off, a repeated HTTP_* name is a 400."""
        site = self.makeSite(merge_duplicates=False)
        data = buildRequest([(b"HTTP_X", b"1"), (b"HTTP_X", b"2")])
        self.assertRefused(
            data, 400, SCGIParser.ERR_DUPLICATE.format(name="HTTP_X"), site
        )

    def test_headerTooLarge(self) -> None:
        """A declared header block over max_header_size is a 431, from its digits."""
        site = self.makeSite(max_header_size=100)
        self.assertRefused(
            b"101", 431, SCGIParser.ERR_LENGTH_TOO_LARGE.format(limit=100), site
        )

    def test_tooManyVariables(self) -> None:
        """More variables than max_variables is a 431."""
        site = self.makeSite(max_variables=3)
        data = buildRequest([(b"A", b"1"), (b"B", b"2")])
        self.assertRefused(
            data, 431, SCGIParser.ERR_TOO_MANY_VARIABLES.format(limit=3), site
        )

    def test_bodyTooLarge(self) -> None:
        """A CONTENT_LENGTH over max_body_size is a 413, sent before the body."""
        site = self.makeSite(max_body_size=10)
        data = buildRequest(nginxVariables(REQUEST_METHOD=b"POST"), b"x" * 11)
        self.assertRefused(
            data[:-11],
            413,
            SCGIParser.ERR_CONTENT_LENGTH_TOO_LARGE.format(limit=10),
            site,
        )

    def test_bodyAtLimit(self) -> None:
        """A body of exactly max_body_size bytes is served."""
        site = self.makeSite(max_body_size=10)
        response, _ = self.respond(buildRequest([], b"x" * 10), site)
        self.assertEqual(response.status, 200)

    def test_oneResponse(self) -> None:
        """After the answer, more garbage gets no second answer."""
        channel, transport = self.assertRefused(
            b"x", 400, SCGIParser.ERR_LENGTH_NOT_DIGITS
        )
        before = transport.value()
        channel.dataReceived(b"GET / HTTP/1.1\r\n\r\n" * 10)
        channel.readConnectionLost()
        self.assertEqual(transport.value(), before)

    def test_internalError(self) -> None:
        """A failure in our own code (the request factory) is a logged 500."""

        def brokenFactory(channel: SCGIChannel) -> Request:
            raise RuntimeError("factory failure")

        site = self.makeSite(requestFactory=brokenFactory)
        channel, transport = connect(site)
        channel.dataReceived(buildRequest(nginxVariables(), b"body"))
        response = parseResponse(transport.value())
        self.assertEqual(response.status, 500)
        self.assertEqual(response.body, b"500 Internal Server Error: internal error\n")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.recorder.seen, [])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class DrainTests(ChannelTestCase):
    """After an early answer the rest of the request is read before the close."""

    def test_bodyTooLargeDrains(self) -> None:
        """A 413 drains exactly CONTENT_LENGTH bytes, then closes, not before."""
        site = self.makeSite(max_body_size=10)
        data = buildRequest(nginxVariables(REQUEST_METHOD=b"POST"), b"b" * 1000)
        channel, transport = connect(site)
        channel.dataReceived(data[:-1000])
        self.assertEqual(parseResponse(transport.value()).status, 413)
        self.assertTrue(transport.writeClosed)
        for _ in range(999):
            channel.dataReceived(b"b")
        self.assertFalse(transport.disconnecting)
        channel.dataReceived(b"b")
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.disconnected)

    def test_bodyTooLargeAlreadyRead(self) -> None:
        """A 413 whose body came in the same read closes at once."""
        site = self.makeSite(max_body_size=10)
        channel, transport = connect(site)
        channel.dataReceived(buildRequest([], b"b" * 20))
        self.assertEqual(parseResponse(transport.value()).status, 413)
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.disconnected)

    def test_bodyTooLargeWithTrailing(self) -> None:
        """Bytes past the declared body, in the read that ends it, still close."""
        site = self.makeSite(max_body_size=10)
        data = buildRequest([], b"b" * 20)
        channel, transport = connect(site)
        channel.dataReceived(data[:-20])
        channel.dataReceived(b"b" * 20 + b"extra")
        self.assertTrue(transport.disconnecting)

    def test_hugeDeclaredBody(self) -> None:
        """A body too large to represent is a 413 that lingers until EOF."""
        data = rawRequest([(b"CONTENT_LENGTH", b"9" * 30), (b"SCGI", b"1")])
        channel, transport = connect(self.makeSite())
        channel.dataReceived(data)
        self.assertEqual(parseResponse(transport.value()).status, 413)
        self.assertFalse(transport.disconnecting)
        channel.readConnectionLost()
        self.assertTrue(transport.disconnecting)

    def test_lingerUntilEOF(self) -> None:
        """After a header error the channel reads and drops until the peer's EOF."""
        channel, transport = connect(self.makeSite())
        channel.dataReceived(b"5:abcde;")
        answer = transport.value()
        self.assertEqual(parseResponse(answer).status, 400)
        self.assertTrue(transport.writeClosed)
        channel.dataReceived(b"anything at all" * 100)
        self.assertFalse(transport.disconnecting)
        self.assertEqual(transport.value(), answer)
        channel.readConnectionLost()
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.disconnected)
        channel.connectionLost(_failure(ConnectionDone()))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_lingerTimeout(self) -> None:
        """A peer that never sends EOF is aborted linger_timeout after its last byte."""
        channel, transport = connect(self.makeSite(linger_timeout=5))
        channel.dataReceived(b"x")
        self.assertEqual(parseResponse(transport.value()).status, 400)
        self.clock.advance(4)
        channel.dataReceived(b"more")
        self.clock.advance(4)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(1)
        self.assertTrue(transport.disconnected)
        channel.connectionLost(_failure(ConnectionLost()))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_plainTransport(self) -> None:
        """On a transport that cannot half-close, the channel still lingers to EOF."""
        channel = self.makeSite().buildProtocol(None)
        assert channel is not None
        transport = StringTransport()
        channel.makeConnection(transport)
        channel.dataReceived(b"x")
        self.assertEqual(parseResponse(transport.value()).status, 400)
        self.assertFalse(transport.disconnecting)
        channel.readConnectionLost()
        self.assertTrue(transport.disconnecting)

    def test_maxDrain(self) -> None:
        """Draining stops with an abort once max_drain bytes have been dropped."""
        site = self.makeSite()
        channel = site.buildProtocol(None)
        assert channel is not None
        channel.config = replace(channel.config, max_drain=100)
        transport = HalfCloseTransport()
        channel.makeConnection(transport)
        channel.dataReceived(b"x")
        channel.dataReceived(b"y" * 99)
        self.assertFalse(transport.disconnecting)
        channel.dataReceived(b"y")
        self.assertTrue(transport.disconnected)

    def test_headerErrorDrainsKnownBody(self) -> None:
        """A refused header (bad HTTP_ name) drains the declared body, then closes."""
        data = buildRequest(nginxVariables(**{"HTTP_X Y": b"1"}), b"z" * 50)
        channel, transport = connect(self.makeSite())
        channel.dataReceived(data[:-50])
        self.assertEqual(parseResponse(transport.value()).status, 400)
        channel.dataReceived(b"z" * 49)
        self.assertFalse(transport.disconnecting)
        channel.dataReceived(b"z")
        self.assertTrue(transport.disconnecting)

    def test_eofWhileDrainingKnownBody(self) -> None:
        """EOF while draining a declared body closes quietly: no premature-EOF line."""
        data = buildRequest(nginxVariables(**{"HTTP_X Y": b"1"}), b"z" * 50)
        channel, transport = connect(self.makeSite())
        channel.dataReceived(data[:-40])
        logged = len(self.logged)
        channel.readConnectionLost()
        self.assertTrue(transport.disconnecting)
        self.assertEqual(len(self.logged), logged)

    def test_noTimeoutWhileDraining(self) -> None:
        """Draining replaces the request timeout: no 408 follows the answer."""
        channel, transport = connect(self.makeSite(timeout=10, linger_timeout=30))
        channel.dataReceived(b"x")
        answer = transport.value()
        self.clock.advance(20)
        self.assertEqual(transport.value(), answer)
        self.assertFalse(transport.disconnecting)


class EndOfInputTests(ChannelTestCase):
    """A read-EOF before the request is complete."""

    def test_emptyConnection(self) -> None:
        """Connect then EOF: nothing written, nothing logged above info, closed."""
        channel, transport = connect(self.makeSite())
        channel.readConnectionLost()
        self.assertEqual(transport.value(), b"")
        self.assertTrue(transport.disconnecting)
        channel.connectionLost(_failure(ConnectionDone()))
        self.assertEqual(self.logged, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_connectAndReset(self) -> None:
        """Connect then a lost connection: nothing written, nothing logged."""
        channel, transport = connect(self.makeSite())
        channel.connectionLost(_failure(ConnectionLost()))
        self.assertEqual(transport.value(), b"")
        self.assertEqual(self.logged, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_inHeaders(self) -> None:
        """EOF in the header block: nothing written, one info line, closed."""
        channel, transport = connect(self.makeSite())
        channel.dataReceived(buildRequest(nginxVariables())[:40])
        channel.readConnectionLost()
        self.assertEqual(transport.value(), b"")
        self.assertTrue(transport.disconnecting)
        self.assertQuiet()
        self.assertEqual(len(self.logged), 1)

    def test_inBody(self) -> None:
        """EOF in the body: the request built gets connectionLost; nothing written."""
        requests = RecordingRequests()
        site = self.makeSite(requestFactory=requests)
        channel, transport = connect(site)
        channel.dataReceived(
            buildRequest(nginxVariables(REQUEST_METHOD=b"POST"), b"body")[:-1]
        )
        (request,) = requests.made
        finished = request.notifyFinish()
        self.assertNoResult(finished)
        channel.readConnectionLost()
        self.failureResultOf(finished)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(transport.value(), b"")
        self.assertEqual(self.recorder.seen, [])
        channel.connectionLost(_failure(ConnectionDone()))
        self.assertQuiet()

    def test_lostInBody(self) -> None:
        """A lost connection in the body gives the request that reason, once."""
        requests = RecordingRequests()
        channel, _ = connect(self.makeSite(requestFactory=requests))
        channel.dataReceived(buildRequest([], b"body")[:-1])
        (request,) = requests.made
        finished = request.notifyFinish()
        channel.connectionLost(_failure(ConnectionLost("reset")))
        self.failureResultOf(finished, ConnectionLost)
        self.assertEqual(self.recorder.seen, [])


class TimeoutTests(ChannelTestCase):
    """The header deadline, the body idle timeout, and none after dispatch."""

    def test_headerDeadline(self) -> None:
        """Bytes trickling in do not extend the header deadline: 408 at timeOut."""
        data = buildRequest(nginxVariables())
        channel, transport = connect(self.makeSite(timeout=30))
        for second in range(29):
            channel.dataReceived(data[second : second + 1])
            self.clock.advance(1)
        self.assertEqual(transport.value(), b"")
        self.assertFalse(transport.disconnecting)
        self.clock.advance(1)
        response = parseResponse(transport.value())
        self.assertEqual(response.status, 408)
        self.assertEqual(
            response.body, b"408 Request Timeout: timed out waiting for the request\n"
        )
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.disconnected)
        self.assertQuiet()

    def test_abortAfterTimeout(self) -> None:
        """A peer ignoring the close after a timeout is aborted abort_timeout later."""
        channel, transport = connect(self.makeSite(timeout=30))
        channel.dataReceived(b"1")
        self.clock.advance(30)
        self.assertTrue(transport.disconnecting)
        self.clock.advance(14)
        self.assertFalse(transport.disconnected)
        self.clock.advance(1)
        self.assertTrue(transport.disconnected)

    def test_closedBeforeAbort(self) -> None:
        """A connection lost after the timeout's close is not aborted later."""
        channel, transport = connect(self.makeSite(timeout=30))
        self.clock.advance(30)
        channel.connectionLost(_failure(ConnectionDone()))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertFalse(transport.disconnected)

    def test_silentConnection(self) -> None:
        """A connection that never sends a byte is closed at timeOut, unanswered."""
        _, transport = connect(self.makeSite(timeout=30))
        self.clock.advance(30)
        self.assertEqual(transport.value(), b"")
        self.assertTrue(transport.disconnecting)

    def test_bodyIdle(self) -> None:
        """While the body arrives each read restarts timeOut; a stall is a 408."""
        requests = RecordingRequests()
        site = self.makeSite(timeout=30, requestFactory=requests)
        data = buildRequest(nginxVariables(REQUEST_METHOD=b"POST"), b"b" * 10)
        channel, transport = connect(site)
        channel.dataReceived(data[:-10])
        for _ in range(9):
            self.clock.advance(29)
            channel.dataReceived(b"b")
        self.assertEqual(transport.value(), b"")
        (request,) = requests.made
        finished = request.notifyFinish()
        self.clock.advance(30)
        self.assertEqual(parseResponse(transport.value()).status, 408)
        self.assertTrue(transport.disconnecting)
        self.failureResultOf(finished, ConnectionDone)
        self.assertEqual(self.recorder.seen, [])

    def test_bodyAfterLateHeaders(self) -> None:
        """Headers completed near the deadline leave the body a full idle timeOut."""
        data = buildRequest(nginxVariables(REQUEST_METHOD=b"POST"), b"b" * 10)
        channel, transport = connect(self.makeSite(timeout=30))
        channel.dataReceived(data[:5])
        self.clock.advance(29)
        channel.dataReceived(data[5:-10])
        self.clock.advance(29)
        self.assertEqual(transport.value(), b"")
        channel.dataReceived(data[-10:])
        self.assertEqual(parseResponse(transport.value()).status, 200)

    def test_noTimeoutAfterDispatch(self) -> None:
        """Once dispatched, the application may take longer than timeOut."""
        pending = Pending()
        channel, transport = connect(self.makeSite(pending, timeout=30))
        channel.dataReceived(buildRequest(nginxVariables()))
        self.clock.advance(3600)
        self.assertEqual(transport.value(), b"")
        self.assertFalse(transport.disconnecting)
        (request,) = pending.requests
        request.write(b"finally")
        request.finish()
        self.assertEqual(parseResponse(transport.value()).body, b"finally")
        self.assertTrue(transport.disconnecting)

    def test_noTimeout(self) -> None:
        """With timeout=None no timer is ever started."""
        channel, transport = connect(self.makeSite(timeout=None))
        channel.dataReceived(buildRequest([], b"xy")[:-1])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(3600)
        self.assertFalse(transport.disconnecting)


class DisconnectTests(ChannelTestCase):
    """The frontend going away during the response, and half-close."""

    def dispatch(
        self, site: SCGISite | None = None
    ) -> tuple[SCGIChannel, HalfCloseTransport, WebRequest]:
        """Dispatch a complete request to a resource that answers later."""
        pending = Pending()
        channel, transport = connect(site or self.makeSite(pending))
        if site is not None:
            site.resource = pending
        channel.dataReceived(buildRequest(nginxVariables()))
        (request,) = pending.requests
        return channel, transport, request

    def test_frontendGoesAway(self) -> None:
        """A read-EOF after the request fails notifyFinish; later writes vanish."""
        channel, transport, request = self.dispatch()
        finished = request.notifyFinish()
        channel.readConnectionLost()
        self.failureResultOf(finished, ConnectionDone)
        self.assertTrue(transport.disconnecting)
        channel.connectionLost(_failure(ConnectionDone()))
        request.write(b"nobody is listening")
        self.assertEqual(transport.value(), b"")
        self.assertRaises(RuntimeError, request.finish)
        self.assertQuiet()

    def test_connectionLost(self) -> None:
        """A lost connection after dispatch fails notifyFinish with its reason."""
        channel, transport, request = self.dispatch()
        finished = request.notifyFinish()
        channel.connectionLost(_failure(ConnectionLost("reset by peer")))
        self.failureResultOf(finished, ConnectionLost)
        request.write(b"dropped")
        self.assertEqual(transport.value(), b"")
        self.assertQuiet()

    def test_lostMidResponse(self) -> None:
        """A loss after part of the response was written fails notifyFinish too."""
        channel, transport, request = self.dispatch()
        finished = request.notifyFinish()
        request.write(b"part")
        channel.connectionLost(_failure(ConnectionLost()))
        self.failureResultOf(finished, ConnectionLost)
        written = transport.value()
        request.write(b"more")
        self.assertEqual(transport.value(), written)

    def test_halfClose(self) -> None:
        """With half_close, a read-EOF after the request lets the response go out."""
        site = self.makeSite(half_close=True)
        channel, transport, request = self.dispatch(site)
        finished = request.notifyFinish()
        channel.readConnectionLost()
        self.assertNoResult(finished)
        self.assertFalse(transport.disconnecting)
        request.write(b"still here")
        request.finish()
        self.successResultOf(finished)
        self.assertEqual(parseResponse(transport.value()).body, b"still here")
        self.assertTrue(transport.disconnecting)

    def test_halfCloseEarlyEOF(self) -> None:
        """Even with half_close, a read-EOF inside the request is premature."""
        channel, transport = connect(self.makeSite(half_close=True))
        channel.dataReceived(buildRequest([], b"abc")[:-1])
        channel.readConnectionLost()
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.recorder.seen, [])

    def test_eofAfterResponse(self) -> None:
        """A read-EOF after the response is complete changes nothing, logs nothing."""
        channel, transport = connect(self.makeSite())
        channel.dataReceived(buildRequest([]))
        written = transport.value()
        channel.readConnectionLost()
        channel.connectionLost(_failure(ConnectionDone()))
        self.assertEqual(transport.value(), written)
        self.assertEqual(
            [e for e in self.logged if "frontend closed" in e.get("log_format", "")],
            [],
        )

    def test_interface(self) -> None:
        """The channel provides IHalfCloseableProtocol, so EOF is seen, not fatal."""
        channel, _ = connect(self.makeSite())
        self.assertTrue(verifyObject(IHalfCloseableProtocol, channel))


class ProducerTests(ChannelTestCase):
    """Producers registered by the application reach the transport."""

    def test_streamingProducer(self) -> None:
        """A push producer is registered on the transport itself, then unregistered."""
        producer = PushProducer()

        pending: list[WebRequest] = []

        def render(request: WebRequest) -> int:
            pending.append(request)
            request.registerProducer(producer, True)
            request.write(b"first")
            return NOT_DONE_YET

        channel, transport = connect(self.makeSite(Rendering(render)))
        channel.dataReceived(buildRequest(nginxVariables()))
        self.assertIs(transport.producer, producer)
        self.assertTrue(transport.streaming)
        self.assertEqual(producer.calls, [])
        (request,) = pending
        request.write(b" second")
        request.unregisterProducer()
        self.assertIsNone(transport.producer)
        request.finish()
        self.assertEqual(parseResponse(transport.value()).body, b"first second")

    def _tcpTransport(self) -> Any:
        """Return a half-closeable transport that says it is TCP, noting Nagle."""

        @implementer(ITCPTransport)
        class TCPTransport(HalfCloseTransport):
            noDelay = False
            # What was written when Nagle's algorithm was turned off.
            writtenBefore: bytes | None = None

            def setTcpNoDelay(self, enabled: bool) -> None:
                self.noDelay = enabled
                self.writtenBefore = self.value()

            def getTcpNoDelay(self) -> bool:
                return self.noDelay

            def setTcpKeepAlive(self, enabled: bool) -> None:
                raise NotImplementedError()

            def getTcpKeepAlive(self) -> bool:
                return False

        return TCPTransport()

    def _streaming(self, transport: Any) -> tuple[WebRequest, bytes]:
        """Connect ``transport`` to a resource that writes its head, then waits.

        :returns: the request, to write more of its response, and its head.
        """
        pending: list[WebRequest] = []

        def render(request: WebRequest) -> int:
            pending.append(request)
            request.write(b"")  # the head goes out now
            return NOT_DONE_YET

        channel, _ = connect(self.makeSite(Rendering(render)), transport=transport)
        channel.dataReceived(buildRequest(nginxVariables()))
        (request,) = pending
        return request, transport.value()

    def test_tcpNoDelayNotForWholeResponses(self) -> None:
        """A response written in one piece leaves Nagle's algorithm on.

        The whole response leaves in one write, with no earlier segment in flight
        for Nagle to wait on, so the socket option (a system call) is not set.
        """
        channel, transport = connect(self.makeSite(), transport=self._tcpTransport())
        channel.dataReceived(buildRequest(nginxVariables()))
        self.assertTrue(transport.value().startswith(b"Status: 200 OK\r\n"))
        self.assertFalse(transport.noDelay)

    def test_tcpNoDelayForStreams(self) -> None:
        """A response written in pieces turns Nagle off before its second piece.

        Server-sent events write the head, then small pieces over time: each would
        otherwise wait for the frontend to acknowledge the previous one.
        """
        transport = self._tcpTransport()
        request, head = self._streaming(transport)
        self.assertTrue(head.endswith(b"\r\n\r\n"))
        self.assertFalse(transport.noDelay)
        request.write(b"data: 1\n\n")
        self.assertTrue(transport.noDelay)
        self.assertEqual(transport.writtenBefore, head)
        request.write(b"data: 2\n\n")
        request.finish()
        self.assertEqual(transport.value(), head + b"data: 1\n\ndata: 2\n\n")

    def test_tcpNoDelayForSequences(self) -> None:
        """A ``writeSequence`` after the head went out turns Nagle off too."""
        transport = self._tcpTransport()
        request, head = self._streaming(transport)
        cast(Any, request).channel.writeSequence([b"a", b"b"])
        self.assertTrue(transport.noDelay)
        self.assertEqual(transport.writtenBefore, head)
        request.finish()
        self.assertEqual(transport.value(), head + b"ab")

    def test_noDelayNotTCP(self) -> None:
        """A transport that is not TCP (a unix socket) is written to as before."""
        transport = HalfCloseTransport()
        request, _ = self._streaming(transport)
        cast(Any, request).channel.writeSequence([b"a", b"b"])
        request.write(b"c")
        request.finish()
        self.assertTrue(transport.value().endswith(b"\r\n\r\nabc"))


class RecordingChannel(SCGIChannel):
    """The real channel, noting what Twisted hands to ``writeHeaders``."""

    calls: list[dict[str, object]]

    def writeHeaders(
        self, version: bytes, code: bytes, reason: bytes, headers: Headers
    ) -> None:
        """Note the arguments and the request's chunked flag, then write."""
        request = self._request
        self.calls = getattr(self, "calls", [])
        self.calls.append(
            {
                "version": version,
                "headers": headers,
                "type": type(headers),
                "chunkedBefore": getattr(request, "chunked", None),
                "transferEncoding": headers.getRawHeaders(b"Transfer-Encoding"),
                "request": request,
            }
        )
        super().writeHeaders(version, code, reason, headers)


class ContractTests(ChannelTestCase):
    """Twisted behaviour the channel relies on (twisted-integration.md §0)."""

    def recordingSite(self, root: IResource) -> SCGISite:
        """A site whose channels record their writeHeaders calls."""
        site = self.makeSite(root)
        site.protocol = RecordingChannel
        return site

    def test_writeHeadersGetsHeaders(self) -> None:
        """The channel's writeHeaders gets the request's responseHeaders (Headers)."""
        site = self.recordingSite(self.recorder)
        channel, _ = connect(site)
        assert isinstance(channel, RecordingChannel)
        channel.dataReceived(buildRequest(nginxVariables()))
        (call,) = channel.calls
        self.assertIs(call["type"], Headers)
        request = self.recorder.seen[0].request
        self.assertIs(call["headers"], request.responseHeaders)

    def test_chunkedHonoured(self) -> None:
        """Twisted turns chunking on before writeHeaders and honours it turned off.

        The stock ``Request`` (a site's own ``requestFactory``); ``SCGIRequest``
        never turns it on (``tests/test_request.py``).
        """
        pending = Pending()
        site = self.recordingSite(pending)
        site.requestFactory = cast(Any, Request)
        channel, transport = connect(site)
        assert isinstance(channel, RecordingChannel)
        channel.dataReceived(buildRequest(nginxVariables()))
        (request,) = pending.requests
        request.write(b"abc")
        (call,) = channel.calls
        self.assertEqual(call["version"], b"HTTP/1.1")
        self.assertEqual(call["chunkedBefore"], 1)
        self.assertEqual(call["transferEncoding"], [b"chunked"])
        self.assertEqual(request.chunked, 0)
        request.write(b"def")
        request.finish()
        response = parseResponse(transport.value())
        self.assertEqual(response.body, b"abcdef")
        self.assertEqual(response.values(b"Transfer-Encoding"), [])

    def test_badMultipart(self) -> None:
        """A malformed multipart body makes Request call our 400 answer."""
        requests = RecordingRequests()
        site = self.makeSite(requestFactory=requests)
        variables = nginxVariables(
            REQUEST_METHOD=b"POST", CONTENT_TYPE=b"multipart/form-data; boundary=AaB03x"
        )
        data = buildRequest(variables, b"not a multipart body")
        channel, transport = connect(site)
        channel.dataReceived(data[:-1])
        (request,) = requests.made
        finished = request.notifyFinish()
        channel.dataReceived(data[-1:])
        response = parseResponse(transport.value())
        self.assertEqual(response.status, 400)
        self.assertEqual(response.body, b"400 Bad Request: malformed request body\n")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.recorder.seen, [])
        self.failureResultOf(finished, ConnectionDone)

    def test_multipartNotParsed(self) -> None:
        """With parsePOSTFormSubmission off the same body is dispatched untouched."""
        site = self.makeSite(parsePOSTFormSubmission=False)
        variables = nginxVariables(
            REQUEST_METHOD=b"POST", CONTENT_TYPE=b"multipart/form-data; boundary=AaB03x"
        )
        response, _ = self.respond(buildRequest(variables, b"not multipart"), site)
        self.assertEqual(response.status, 200)
        self.assertEqual(self.recorder.seen[0].content, b"not multipart")
