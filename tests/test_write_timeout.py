"""The write timeout: a peer that takes none of our output cannot hold a connection.

Strategy: :class:`WriteTimeoutTests` drives the site's own channels on string
transports with a ``Clock``.  A string transport never reports its buffer, so the
tests play the transport's part: ``pauseProducing()`` on the producer the channel
registered is what a real transport does when the peer stops reading (its buffer is
full), ``resumeProducing()`` what it does once the buffer has drained, and a
``loseConnection()`` that never completes is a close the peer keeps from finishing.
:class:`TCPWriteTimeoutTests` and :class:`UnixWriteTimeoutTests` check the same on
real sockets: a client that asks for 16 MiB and reads nothing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import threading
import time
from typing import Any

from twisted.internet.endpoints import serverFromString
from twisted.internet.error import ConnectionAborted, ConnectionDone
from twisted.internet.interfaces import IPushProducer
from twisted.internet.task import Clock
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from scgi_twisted import SCGISite
from scgi_twisted.tap import Options, makeService

from .support.apps import Big, Hello, WebRequest
from .support.memory import Port as _Port
from .support.memory import PortTransport as _PortTransport
from .support.memory import collectLogEvents, connect, warningsAndErrors
from .support.scgi import buildRequest, nginxVariables, parseResponse
from .support.sockets import CLIENT_TIMEOUT, SLACK, MiB, readToEnd
from .support.sockets import RecordingSite as _Site
from .support.sockets import connectClient as _connect  # noqa: N813 (short local name)
from .support.sockets import nginxRequest as _request  # noqa: N813 (short local name)
from .support.sockets import reactor as _reactor
from .support.sockets import sleep as _sleep
from .support.sockets import until as _until

TIMEOUT = 30.0
"""The write timeout of the string-transport tests, in seconds."""


def _failure(error: BaseException) -> Failure:
    """Wrap an exception in a ``Failure``."""
    return Failure(error)


PIECE = b"p" * (64 * 1024)
"""A first piece as large as the smallest buffer a transport pauses its producer at."""


class Unfinished(Resource):
    """Writes a 64 KiB first piece of an answer and keeps the request open.

    :ivar requests: the requests, in order.
    :ivar ends: how each request's ``notifyFinish()`` fired.
    """

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[WebRequest] = []
        self.ends: list[object] = []

    def render(self, request: WebRequest) -> object:
        """Write a piece; never finish."""
        self.requests.append(request)
        request.notifyFinish().addBoth(self.ends.append)
        request.write(PIECE)
        return NOT_DONE_YET


@implementer(IPushProducer)
class _PushProducer:
    """A push producer that records the calls it gets."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def pauseProducing(self) -> None:
        self.calls.append("pause")

    def resumeProducing(self) -> None:
        self.calls.append("resume")

    def stopProducing(self) -> None:
        self.calls.append("stop")


class WriteTimeoutTests(SynchronousTestCase):
    """The write timeout on string transports, with a ``Clock``."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.events = collectLogEvents(self)

    def makeSite(self, resource: Resource, **options: Any) -> SCGISite:
        """Return a site on the test's clock (write timeout :data:`TIMEOUT`)."""
        options.setdefault("write_timeout", TIMEOUT)
        return SCGISite(resource, reactor=self.clock, **options)

    def timeouts(self) -> list[str]:
        """Return the write-timeout log lines."""
        return [
            str(event.get("log_format"))
            for event in warningsAndErrors(self.events)
            if "took none of the response" in str(event.get("log_format"))
        ]

    def test_finishedResponseNotTaken(self) -> None:
        """A finished response whose close never completes is aborted at the timeout.

        The close starts at once; the abort comes exactly ``write_timeout`` later,
        with one log line.
        """
        channel, transport = connect(self.makeSite(Hello()))
        channel.dataReceived(_request(b"/x"))
        self.assertEqual(parseResponse(transport.value()).body, b"hello")
        self.assertTrue(transport.disconnecting)
        self.clock.advance(TIMEOUT - 0.1)
        self.assertFalse(transport.disconnected)
        self.assertEqual(self.timeouts(), [])
        self.clock.advance(0.1)
        self.assertTrue(transport.disconnected, "aborted")
        self.assertEqual(len(self.timeouts()), 1)
        channel.connectionLost(_failure(ConnectionAborted()))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_closeCompletesInTime(self) -> None:
        """A close that completes stops the write timeout: nothing is logged."""
        channel, transport = connect(self.makeSite(Hello()))
        channel.dataReceived(_request(b"/x"))
        self.clock.advance(TIMEOUT - 1)
        channel.connectionLost(_failure(ConnectionDone()))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(TIMEOUT)
        self.assertFalse(transport.disconnected)
        self.assertEqual(warningsAndErrors(self.events), [])

    def test_stalledResponseAborted(self) -> None:
        """A response in progress whose buffer stays full is aborted at the timeout.

        The channel watches the transport while the application writes without a
        producer; the request is told through ``notifyFinish()``.
        """
        resource = Unfinished()
        channel, transport = connect(self.makeSite(resource))
        channel.dataReceived(_request(b"/stream"))
        watch: Any = transport.producer
        self.assertIsNotNone(watch)
        self.assertTrue(transport.streaming)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        watch.pauseProducing()  # the peer stops reading
        self.clock.advance(TIMEOUT - 0.1)
        self.assertFalse(transport.disconnected)
        self.assertEqual(resource.ends, [])
        self.clock.advance(0.1)
        self.assertTrue(transport.disconnected, "aborted")
        (end,) = resource.ends
        self.assertIsInstance(end, Failure)
        self.assertEqual(len(self.timeouts()), 1)

    def test_drainedBufferRestartsClock(self) -> None:
        """A buffer that drains stops the timeout; the next stall starts it afresh."""
        resource = Unfinished()
        channel, transport = connect(self.makeSite(resource))
        channel.dataReceived(_request(b"/stream"))
        watch: Any = transport.producer
        watch.pauseProducing()
        self.clock.advance(TIMEOUT - 1)
        watch.resumeProducing()  # the peer took everything
        self.assertEqual(self.clock.getDelayedCalls(), [])
        watch.pauseProducing()
        self.clock.advance(TIMEOUT - 1)
        self.assertFalse(transport.disconnected)
        (request,) = resource.requests
        request.write(b"last")
        request.finish()
        self.assertIsNone(transport.producer, "the watch is gone before the close")
        self.clock.advance(1)
        self.assertTrue(transport.disconnected, "the stall still counts")
        self.assertEqual(len(self.timeouts()), 1)

    def test_shortResponseNotWatched(self) -> None:
        """A response shorter than any transport buffer registers no watch.

        The transport cannot fill its buffer with it; only the close is timed.
        """

        class Short(Resource):
            isLeaf = True

            def render(self, request: WebRequest) -> object:
                request.write(b"x" * (64 * 1024 - 200))
                return NOT_DONE_YET

        channel, transport = connect(self.makeSite(Short()))
        channel.dataReceived(_request(b"/short"))
        self.assertIsNone(transport.producer)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_applicationProducerTakesOver(self) -> None:
        """An application's producer replaces the watch; its pauses are its own.

        No write timeout runs while the application's producer is registered, so a
        producer paused for long is never cut by it.
        """
        producer = _PushProducer()

        class Producing(Resource):
            isLeaf = True

            def render(self, request: WebRequest) -> object:
                request.write(PIECE)
                request.registerProducer(producer, True)
                return NOT_DONE_YET

        channel, transport = connect(self.makeSite(Producing()))
        channel.dataReceived(_request(b"/p"))
        self.assertIs(transport.producer, producer)
        producer.pauseProducing()
        self.clock.advance(TIMEOUT * 3)
        self.assertFalse(transport.disconnecting)
        self.assertEqual(self.timeouts(), [])

    def test_countedInMaxConnections(self) -> None:
        """A connection waiting on the write timeout holds its slot until aborted.

        With ``max_connections=1`` a second connection waits, unread, until the first
        one is aborted and gone.
        """
        site = self.makeSite(Hello(), max_connections=1)
        port = _Port()

        def open() -> tuple[Any, _PortTransport]:
            channel = site.buildProtocol(None)
            assert channel is not None
            transport = _PortTransport(port)
            channel.makeConnection(transport)
            return channel, transport

        first, firstTransport = open()
        first.dataReceived(_request(b"/first"))
        second, secondTransport = open()
        self.assertEqual(secondTransport.producerState, "paused")
        self.assertFalse(port.reading)
        self.clock.advance(TIMEOUT)
        self.assertTrue(firstTransport.disconnected)
        self.assertEqual(secondTransport.producerState, "paused")
        first.connectionLost(_failure(ConnectionAborted()))
        self.assertEqual(secondTransport.producerState, "producing")
        second.dataReceived(_request(b"/second"))
        self.assertEqual(parseResponse(secondTransport.value()).body, b"hello")

    def test_disabled(self) -> None:
        """``write_timeout=None`` registers no watch and starts no timer."""
        resource = Unfinished()
        channel, transport = connect(self.makeSite(resource, write_timeout=None))
        channel.dataReceived(_request(b"/stream"))
        self.assertIsNone(transport.producer)
        (request,) = resource.requests
        request.finish()
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_defaultIsGenerous(self) -> None:
        """By default the timeout is on, at 300 s."""
        site = SCGISite(Hello(), reactor=self.clock)
        self.assertEqual(site.config.write_timeout, 300.0)
        channel, transport = connect(site)
        channel.dataReceived(buildRequest(nginxVariables()))
        self.clock.advance(299)
        self.assertFalse(transport.disconnected)
        self.clock.advance(1)
        self.assertTrue(transport.disconnected)


class WriteTimeoutOptionTests(SynchronousTestCase):
    """``twistd scgi --write-timeout``."""

    def parse(self, *arguments: str) -> Options:
        """Parse ``arguments`` as ``twistd scgi`` would."""
        options = Options()
        options.parseOptions(list(arguments))
        return options

    def test_default(self) -> None:
        """Without the option the timeout is 300 s."""
        self.assertEqual(self.parse()["write-timeout"], 300.0)

    def test_seconds(self) -> None:
        """It takes seconds, with a fraction; 0 turns it off (``None``)."""
        self.assertEqual(self.parse("--write-timeout", "2.5")["write-timeout"], 2.5)
        self.assertIsNone(self.parse("--write-timeout", "0")["write-timeout"])

    def test_badValue(self) -> None:
        """A value that is not a non-negative number is a usage error naming it."""
        for value in ("-1", "soon", "inf"):
            with self.assertRaises(UsageError) as raised:
                self.parse("--write-timeout", value)
            self.assertIn("--write-timeout", str(raised.exception))

    def test_reachesSite(self) -> None:
        """``makeService`` gives the value to the site."""
        clock = Clock()
        service = makeService(self.parse("--write-timeout", "7"), reactor=clock)
        self.assertEqual(service.site.config.write_timeout, 7.0)  # type: ignore[attr-defined]


class _SocketTestsMixin:
    """A client that asks for 16 MiB and reads nothing, on a real socket."""

    abortIsVisible: bool

    def endpointFor(self) -> str:
        """Return the server endpoint string to listen on."""
        raise NotImplementedError

    def addressOf(self, port: Any) -> Any:
        """Return where a client connects to reach ``port``."""
        raise NotImplementedError

    async def test_peerNeverReads(self) -> None:
        """The response is aborted ``write_timeout`` after it ended; the slot is free.

        The client shrinks its receive buffer and reads nothing, so the close that
        follows the response cannot complete.
        """
        case: Any = self
        big = Big(16 * MiB)
        site = _Site(big, reactor=_reactor, write_timeout=0.5)
        port = await serverFromString(_reactor, self.endpointFor()).listen(site)
        case.addCleanup(port.stopListening)
        address = self.addressOf(port)
        release = threading.Event()
        case.addCleanup(release.set)

        def client() -> tuple[bytes, str]:
            with contextlib.closing(_connect(address, receiveBuffer=4096)) as sock:
                sock.sendall(_request(b"/big"))
                release.wait(CLIENT_TIMEOUT)
                return readToEnd(sock)

        answer = deferToThread(client)
        await _until(lambda: big.rendered == 1, "the answer")
        started = time.monotonic()
        await site.allClosed()
        elapsed = time.monotonic() - started
        release.set()
        data, end = await answer
        case.assertGreater(elapsed, 0.5 - 0.05)
        case.assertLess(elapsed, 0.5 + SLACK)
        case.assertEqual(
            [type(reason.value) for _, reason in site.closes], [ConnectionAborted]
        )
        case.assertEqual(site.connections, 0)
        case.assertLess(len(data), 16 * MiB)
        if self.abortIsVisible:
            case.assertEqual(end, "reset")
        await _sleep(0)


class TCPWriteTimeoutTests(_SocketTestsMixin, TestCase):
    """The write timeout over TCP on 127.0.0.1."""

    timeout = 30.0
    abortIsVisible = True

    def endpointFor(self) -> str:
        """Listen on a free loopback port."""
        return "tcp:0:interface=127.0.0.1"

    def addressOf(self, port: Any) -> Any:
        """Connect to the port's address."""
        return socket.AF_INET, ("127.0.0.1", port.getHost().port)


class UnixWriteTimeoutTests(_SocketTestsMixin, TestCase):
    """The write timeout over a unix socket."""

    timeout = 30.0
    abortIsVisible = False

    def setUp(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="scgi-wt-")
        self.addCleanup(shutil.rmtree, self.directory, True)

    def endpointFor(self) -> str:
        """Listen on a socket in a private directory."""
        return f"unix:{os.path.join(self.directory, 's.sock')}"

    def addressOf(self, port: Any) -> Any:
        """Connect to the socket's path."""
        return socket.AF_UNIX, os.path.join(self.directory, "s.sock")
