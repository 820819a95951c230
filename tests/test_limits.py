"""Limits, timeouts, the connection limit, graceful drain and slow clients.

Strategy:

* The real-socket tests (:class:`TCPLimitsTests`, :class:`UnixLimitsTests`) run an
  :class:`~scgi_twisted.SCGISite` on the real reactor, on ``tcp:0`` and on a unix
  socket, with small timeouts (fractions of a second).  Clients are blocking sockets
  run in threads (``deferToThread``) with a timeout on every call, so a server that
  never answers fails the test instead of hanging it.  Durations are measured on both
  sides with ``time.monotonic()`` and checked against the configured timeout with a
  lower bound (the limit is really waited for) and a generous upper bound (it is not
  ignored).  Every server-side connection records how it ended (``ConnectionDone``
  for a close, ``ConnectionAborted`` for an abort); each test waits until all are
  closed before the port stops, so the reactor is left clean.
  These classes set ``measuresWallClock``, so pytest marks them ``timing``.
* :class:`TimeoutClockTests`, :class:`DrainTests` and :class:`ConnectionLimitTests`
  drive the site's own channels on string transports with a ``Clock``: every
  timeout to the tick (header deadline, body idle, linger, the abort of an unfinished
  answer), the graceful drain (``site.drain``) and the bookkeeping of the connection
  limit, step by step.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from twisted.internet.endpoints import serverFromString
from twisted.internet.error import ConnectionAborted, ConnectionDone
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from twisted.web.static import File
from zope.interface import implementer

from scgi_twisted import IStreamingUploadResource, SCGIChannel, SCGISite, deliverBody

from .support.apps import Big, Hello, Hold, WebRequest
from .support.memory import HalfCloseTransport, Port, PortTransport, connect
from .support.scgi import parseResponse
from .support.sockets import (
    CLIENT_TIMEOUT,
    SLACK,
    Address,
    MiB,
    RecordingSite,
    connectClient,
    nginxRequest,
    reactor,
    readToEnd,
    sleep,
    until,
)

if TYPE_CHECKING:
    _MixinBase = TestCase
else:
    _MixinBase = object


def _failure(error: BaseException) -> Failure:
    """Wrap an exception in a ``Failure``."""
    return Failure(error)


def _rss() -> int:
    """Return this process's resident set size, in bytes."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


# The server side.


class Upload(Resource):
    """Answers the length of the request body."""

    isLeaf = True

    def render_POST(self, request: WebRequest) -> bytes:
        """Answer the body's length, in decimal."""
        return b"%d" % len(request.content.read())


@implementer(IStreamingUploadResource)
class StreamingAnswer(Resource):
    """Starts a big answer as soon as the headers arrive, while the body streams in.

    :ivar failures: how each request's ``notifyFinish()`` failed.
    """

    isLeaf = True

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self.failures: list[Failure] = []

    def render_POST(self, request: WebRequest) -> object:
        """Take the body, write the answer, and never finish."""
        deliverBody(request, Protocol())
        request.notifyFinish().addErrback(self.failures.append)
        request.write(b"y" * self.size)
        return NOT_DONE_YET


class RecordingFile(File):
    """A ``static.File`` that keeps the requests it renders."""

    requests: ClassVar[list[WebRequest]] = []

    def render_GET(self, request: Any) -> Any:
        """Keep the request and serve the file."""
        RecordingFile.requests.append(request)
        return super().render_GET(request)


# The client side: blocking sockets, run in threads.


def _exchange(address: Address, payload: bytes) -> tuple[bytes, str, float]:
    """Send ``payload``; read the answer; return it, its end and the time it took."""
    with contextlib.closing(connectClient(address)) as client:
        started = time.monotonic()
        client.sendall(payload)
        data, end = readToEnd(client)
        return data, end, time.monotonic() - started


class _Trickler:
    """Connections that each send one header byte every ``interval`` seconds.

    The bytes are those of a valid request whose header block is far longer than
    what is sent, so none of them ever completes.  Run :meth:`run` in a thread;
    :meth:`stop` ends it and closes the connections.
    """

    def __init__(self, address: Address, count: int, interval: float) -> None:
        self.address = address
        self.count = count
        self.interval = interval
        self.payload = nginxRequest(b"/" + b"x" * 4000)
        self.sent = 0
        self.errors: list[str] = []
        self.sockets: list[socket.socket] = []
        self._stop = threading.Event()

    def run(self) -> None:
        """Open the connections, then trickle until stopped."""
        for _ in range(self.count):
            self.sockets.append(connectClient(self.address))
        index = 0
        while not self._stop.wait(self.interval):
            byte = self.payload[index : index + 1]
            index += 1
            for sock in self.sockets:
                try:
                    sock.send(byte)
                except OSError as error:
                    self.errors.append(repr(error))
            self.sent = index

    def stop(self) -> None:
        """Stop trickling and close every connection."""
        self._stop.set()
        for sock in self.sockets:
            sock.close()


# The real-socket tests.


class _LimitsTestsMixin(_MixinBase):
    """Tests that hold over any stream socket; subclasses choose TCP or unix.

    :cvar abortIsVisible: whether the client sees an abort as a reset (TCP: yes;
        a unix socket has no reset, its peer sees a plain EOF).
    """

    timeout = 45.0
    abortIsVisible: ClassVar[bool]

    def endpointFor(self) -> str:
        """Return the server endpoint string to listen on."""
        raise NotImplementedError

    def addressOf(self, port: Any) -> Address:
        """Return where a client connects to reach the listening ``port``."""
        raise NotImplementedError

    async def serve(
        self, resource: Resource, **options: Any
    ) -> tuple[RecordingSite, Address]:
        """Listen with a recording site serving ``resource``.

        Cleanup waits (at most 10 s) for every connection to close, aborts any left,
        then stops listening.

        :param options: keyword arguments of :class:`SCGISite`.
        """
        site = RecordingSite(resource, reactor=reactor, **options)
        port = await serverFromString(reactor, self.endpointFor()).listen(site)

        async def cleanUp() -> None:
            deadline = time.monotonic() + 10.0
            while site.connections and time.monotonic() < deadline:
                await sleep(0.02)
            for channel in list(site._channels):
                channel.transport.abortConnection()
            await site.allClosed()
            await port.stopListening()

        self.addCleanup(cleanUp)
        return site, self.addressOf(port)

    def assertReasons(self, site: RecordingSite, *expected: type[Exception]) -> None:
        """Assert how the connections ended, in order."""
        self.assertEqual(
            [type(reason.value) for _, reason in site.closes],
            list(expected),
            [reason for _, reason in site.closes],
        )

    # Header-read timeout.

    async def test_headerTimeout(self) -> None:
        """Part of a header block is answered 408 and closed at ``header_timeout``.

        The body idle timeout (``timeout``) is much longer and plays no part.
        """
        site, address = await self.serve(Hello(), timeout=20, header_timeout=0.5)

        def client() -> tuple[bytes, str, float]:
            with contextlib.closing(connectClient(address)) as sock:
                started = time.monotonic()
                sock.sendall(b"70:CONTENT_LENGTH\x000\x00SCGI\x00")
                data, end = readToEnd(sock)
                return data, end, time.monotonic() - started

        data, end, elapsed = await deferToThread(client)
        self.assertEqual(parseResponse(data).status, 408, data)
        self.assertEqual(end, "eof")
        self.assertGreater(elapsed, 0.4)
        self.assertLess(elapsed, 0.5 + SLACK)
        await site.allClosed()
        self.assertReasons(site, ConnectionDone)

    # Body idle timeout.

    # The abort that follows a close the peer ignores.

    async def test_ignoredCloseAborted(self) -> None:
        """An answer the peer never reads is aborted after the close it ignores.

        The grace period ends with a close; ``abort_timeout`` after it, the
        connection is aborted.  The client shrinks its receive buffer, asks for
        16 MiB and reads nothing, so the close cannot complete.
        """
        big = Big(16 * MiB)
        site, address = await self.serve(big, abort_timeout=0.5)
        release = threading.Event()

        def client() -> tuple[bytes, str]:
            with contextlib.closing(connectClient(address, receiveBuffer=4096)) as sock:
                sock.sendall(nginxRequest(b"/big"))
                release.wait(CLIENT_TIMEOUT)
                return readToEnd(sock)

        answer = deferToThread(client)
        try:
            await until(lambda: big.rendered == 1, "the answer")
            await sleep(0.1)
            self.assertEqual(site.connections, 1)
            started = time.monotonic()
            await site.drain(0.2)
            elapsed = time.monotonic() - started
        finally:
            release.set()
        data, end = await answer
        self.assertGreater(elapsed, 0.2 + 0.5 - 0.05)
        self.assertLess(elapsed, 0.7 + SLACK)
        self.assertReasons(site, ConnectionAborted)
        self.assertLess(len(data), 16 * MiB)
        if self.abortIsVisible:
            self.assertEqual(end, "reset")

    async def test_timeoutAbortsUnfinishedAnswer(self) -> None:
        """A timeout during an answer still being written aborts it at once.

        A streaming resource answers while the body arrives; the body stalls.  A
        close would end the answer as if it were complete, so the connection is
        aborted at ``timeout``, without waiting ``abort_timeout`` (10 s here).
        """
        streaming = StreamingAnswer(16 * MiB)
        site, address = await self.serve(
            streaming, timeout=0.5, abort_timeout=10, stream_uploads=True
        )
        release = threading.Event()
        header = nginxRequest(b"/stream", contentLength=1000)

        def client() -> tuple[bytes, str]:
            with contextlib.closing(connectClient(address, receiveBuffer=4096)) as sock:
                sock.sendall(header + b"z" * 10)
                release.wait(CLIENT_TIMEOUT)
                return readToEnd(sock)

        answer = deferToThread(client)
        try:
            started = time.monotonic()
            await site.allClosed()
            await until(lambda: bool(site.closes), "the close")
            elapsed = site.closes[0][0] - started
        finally:
            release.set()
        data, end = await answer
        self.assertGreater(elapsed, 0.4)
        self.assertLess(elapsed, 0.5 + SLACK)
        self.assertReasons(site, ConnectionAborted)
        self.assertTrue(data.startswith(b"Status: 200 OK\r\n"), data[:100])
        self.assertLess(len(data), 16 * MiB)
        self.assertEqual(len(streaming.failures), 1)
        if self.abortIsVisible:
            self.assertEqual(end, "reset")

    # The connection limit.

    async def test_connectionLimitWaitsForSlot(self) -> None:
        """At ``max_connections`` the next connection is served only once one ends.

        Four idle connections fill the limit; a fifth sends a whole request.  It
        stays unanswered (and the process idle: no busy loop) until one of the four
        closes, then it is served at once.
        """
        hello = Hello()
        site, address = await self.serve(hello, max_connections=4, timeout=30)
        idle = [await deferToThread(connectClient, address) for _ in range(4)]
        try:
            await until(lambda: site.connections == 4, "four connections")
            fifth = deferToThread(_exchange, address, nginxRequest(b"/fifth"))
            await sleep(0.3)
            before = time.process_time()
            await sleep(1.0)
            cpu = time.process_time() - before
            self.assertEqual(hello.rendered, [])
            self.assertEqual(site.connections, 4)
            self.assertLess(cpu, 0.15)
            freed = time.monotonic()
            idle.pop().close()
            data, end, _ = await fifth
        finally:
            for sock in idle:
                sock.close()
        response = parseResponse(data)
        self.assertEqual((response.status, response.body), (200, b"hello"))
        self.assertEqual(end, "eof")
        (rendered,) = hello.rendered
        self.assertGreater(rendered, freed)
        self.assertLess(rendered - freed, 1.0)
        self.assertEqual(site.maxServed, 4)

    async def test_connectionLimitHoldsInABurst(self) -> None:
        """Connections accepted in one batch past the limit wait for a free slot.

        Ten requests are queued before the reactor runs, so the listening port
        accepts them all in one go; only three are served at a time, and each
        waiting one is served as a slot frees, in order.
        """
        hold = Hold()
        site, address = await self.serve(hold, max_connections=3, timeout=30)
        sockets = []
        try:
            for index in range(10):  # connect from the reactor thread: no accept yet
                sock = connectClient(address)
                sockets.append(sock)
                sock.sendall(nginxRequest(b"/%d" % index))
            answers = [deferToThread(readToEnd, sock) for sock in sockets]
            rounds = []
            for expected in (3, 3, 3, 1):

                def held(count: int = expected) -> bool:
                    return len(hold.pending) == count

                await until(held, f"{expected} held requests")
                await sleep(0.2)
                self.assertEqual(len(hold.pending), expected)
                self.assertEqual(site.connections, 10 - hold.served)
                rounds.append(sorted(request.uri for request in hold.pending))
                hold.release()
            results = [await answer for answer in answers]
        finally:
            for sock in sockets:
                sock.close()
        for data, end in results:
            self.assertEqual(parseResponse(data).body, b"released")
            self.assertEqual(end, "eof")
        self.assertEqual(hold.served, 10)
        self.assertEqual(site.maxServed, 3)
        self.assertEqual(
            rounds,
            [
                [b"/0", b"/1", b"/2"],
                [b"/3", b"/4", b"/5"],
                [b"/6", b"/7", b"/8"],
                [b"/9"],
            ],
        )

    # Refused bodies.

    async def test_bodyTooLargeDrained(self) -> None:
        """A 16 MiB body over ``max_body_size`` is read to its end before the close.

        The client sends it all before reading, as nginx does, then reads a complete
        413 and a clean EOF; once the server has closed, the socket holds no error
        (a close with unread bytes would have reset it).
        """
        site, address = await self.serve(Upload(), max_body_size=MiB)
        body = b"u" * (16 * MiB)
        client = await deferToThread(connectClient, address)
        self.addCleanup(client.close)

        def send() -> tuple[bytes, str]:
            client.sendall(nginxRequest(b"/upload", body))
            return readToEnd(client)

        data, end = await deferToThread(send)
        response = parseResponse(data)
        self.assertEqual(response.status, 413)
        self.assertEqual(response.header(b"Content-Length"), b"%d" % len(response.body))
        self.assertEqual(end, "eof")
        await site.allClosed()
        await sleep(0.1)
        self.assertEqual(client.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR), 0)
        client.setblocking(False)
        self.assertEqual(client.recv(1), b"")
        self.assertReasons(site, ConnectionDone)

    # Slow clients and back-pressure.

    async def test_tricklingClientsDoNotDelayOthers(self) -> None:
        """Fifty connections trickling header bytes do not slow normal requests.

        While they trickle, a hundred requests one after the other are all served,
        with a 99th-percentile latency under 250 ms; the trickling connections stay
        open (their header deadline is far away).
        """
        site, address = await self.serve(Hello(), timeout=60)
        trickler = _Trickler(address, 50, 0.1)
        trickling = deferToThread(trickler.run)
        try:
            await until(lambda: site.connections >= 50, "fifty connections")
            await until(lambda: trickler.sent >= 3, "some trickling")

            def normal() -> list[tuple[int, float]]:
                results = []
                for index in range(100):
                    data, _, elapsed = _exchange(address, nginxRequest(b"/n%d" % index))
                    results.append((parseResponse(data).status, elapsed))
                return results

            results = await deferToThread(normal)
            self.assertGreaterEqual(site.connections, 50)
        finally:
            trickler.stop()
            await trickling
        self.assertEqual(trickler.errors, [])
        self.assertEqual([status for status, _ in results], [200] * 100)
        latencies = sorted(elapsed for _, elapsed in results)
        self.assertLess(latencies[98], 0.25, latencies[-5:])

    async def test_slowReaderBoundedMemory(self) -> None:
        """A client reading a 256 MiB file slowly costs the server little memory.

        ``static.File`` is a pull producer: it writes only as the transport drains.
        The client reads 64 KiB every 10 ms for 3 s, then goes away; the process's
        RSS grows by less than 8 MiB, and the server never runs more than the
        kernel's buffers ahead of the client.
        """
        directory = Path(tempfile.mkdtemp(prefix="scgi-limits-"))
        self.addCleanup(shutil.rmtree, directory, True)
        path = directory / "big.bin"
        with path.open("wb") as file:
            file.truncate(256 * MiB)
        RecordingFile.requests = []
        site, address = await self.serve(RecordingFile(str(directory)))
        samples: list[int] = []
        baseline = _rss()
        ahead: list[int] = []

        def client() -> int:
            received = 0
            with contextlib.closing(connectClient(address)) as sock:
                sock.sendall(nginxRequest(b"/big.bin"))
                deadline = time.monotonic() + 3.0
                while time.monotonic() < deadline:
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise AssertionError(f"EOF after {received} bytes")
                    received += len(chunk)
                    if RecordingFile.requests:
                        sent = RecordingFile.requests[0].sentLength
                        ahead.append(sent - received)
                    time.sleep(0.01)
            return received

        reading = deferToThread(client)
        while not reading.called:
            samples.append(_rss())
            await sleep(0.05)
        received = await reading
        await site.allClosed()
        growth = max(samples) - baseline
        self.assertGreater(received, 4 * MiB)
        self.assertLess(received, 128 * MiB)
        self.assertLess(growth, 8 * MiB, f"RSS grew by {growth / MiB:.1f} MiB")
        self.assertLess(max(ahead), 16 * MiB)


class TCPLimitsTests(_LimitsTestsMixin, TestCase):
    """The limits over TCP on 127.0.0.1."""

    abortIsVisible = True
    measuresWallClock = True

    def endpointFor(self) -> str:
        """Listen on a free port of 127.0.0.1."""
        return "tcp:0:interface=127.0.0.1"

    def addressOf(self, port: Any) -> Address:
        """Connect to the bound port."""
        return socket.AF_INET, ("127.0.0.1", port.getHost().port)


class UnixLimitsTests(_LimitsTestsMixin, TestCase):
    """The limits over a unix socket."""

    abortIsVisible = False
    measuresWallClock = True

    def endpointFor(self) -> str:
        """Listen on a socket in a fresh temporary directory."""
        directory = Path(tempfile.mkdtemp(prefix="scgi-lim-"))
        self.addCleanup(shutil.rmtree, directory, True)
        return f"unix:{directory / 'scgi.sock'}"

    def addressOf(self, port: Any) -> Address:
        """Connect to the socket's path."""
        name: bytes = port.getHost().name
        return socket.AF_UNIX, name


# On a clock: the timeouts, to the tick.


class TimeoutClockTests(SynchronousTestCase):
    """The header deadline, the body idle timeout and the linger bound, on a Clock.

    The real-socket tests above show that the timers fire over real sockets; these
    pin when, exactly, and how the connection ends (a close, or an abort).
    """

    def setUp(self) -> None:
        self.clock = Clock()

    def open(
        self, resource: Resource, **options: Any
    ) -> tuple[SCGIChannel, HalfCloseTransport]:
        """Connect to a site serving ``resource`` on the test's clock."""
        return connect(SCGISite(resource, reactor=self.clock, **options))

    def test_headerTimeout(self) -> None:
        """Part of a header block is answered 408 and closed at ``header_timeout``.

        The body idle timeout (``timeout``) is much longer and plays no part.
        """
        channel, transport = self.open(Hello(), timeout=20, header_timeout=0.5)
        channel.dataReceived(b"70:CONTENT_LENGTH\x000\x00SCGI\x00")
        self.clock.advance(0.49)
        self.assertEqual(transport.value(), b"")
        self.assertFalse(transport.disconnecting)
        self.clock.advance(0.01)
        self.assertEqual(parseResponse(transport.value()).status, 408)
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.disconnected)

    def test_headerTrickleDoesNotExtendTimeout(self) -> None:
        """A header arriving a byte at a time is cut at ``header_timeout`` anyway.

        A byte every 50 ms keeps every read well within any idle timeout; the
        deadline counts from the connection, not from the last byte.
        """
        payload = nginxRequest(b"/trickle")
        channel, transport = self.open(Hello(), timeout=20, header_timeout=0.6)
        sent = 0
        while not transport.value():
            channel.dataReceived(payload[sent : sent + 1])
            sent += 1
            self.clock.advance(0.05)
        self.assertEqual(self.clock.seconds(), 0.6)
        self.assertEqual(sent, 12)
        self.assertLess(sent, len(payload))
        self.assertEqual(parseResponse(transport.value()).status, 408)
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.disconnected)

    def test_bodyIdleTimeout(self) -> None:
        """A body that stops arriving is answered 408 ``timeout`` after its last read.

        The header block arrived long before: the header deadline no longer applies.
        """
        channel, transport = self.open(Upload(), timeout=0.5)
        channel.dataReceived(nginxRequest(b"/upload", contentLength=1000))
        for _ in range(4):  # 1.2 s of steady body: no timeout
            self.clock.advance(0.3)
            channel.dataReceived(b"b" * 10)
        self.assertEqual(transport.value(), b"")
        self.clock.advance(0.49)
        self.assertEqual(transport.value(), b"")
        self.clock.advance(0.01)
        self.assertEqual(parseResponse(transport.value()).status, 408)
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.disconnected)

    def test_steadyBodyNotCut(self) -> None:
        """A body arriving slowly but steadily is served, however long it takes.

        It takes four times ``timeout`` in all, each piece well within it.
        """
        pieces = [b"p" * 100] * 20
        channel, transport = self.open(Upload(), timeout=0.5, header_timeout=0.5)
        channel.dataReceived(
            nginxRequest(b"/upload", contentLength=sum(map(len, pieces)))
        )
        for piece in pieces:
            self.clock.advance(0.1)
            channel.dataReceived(piece)
        self.assertGreaterEqual(self.clock.seconds(), 4 * 0.5)
        response = parseResponse(transport.value())
        self.assertEqual((response.status, response.body), (200, b"2000"))
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.disconnected)

    def test_bodyTooLargeLingerBounded(self) -> None:
        """A refused body that stops arriving is aborted after ``linger_timeout``.

        The 413 was readable all along.
        """
        channel, transport = self.open(Upload(), max_body_size=MiB, linger_timeout=0.5)
        channel.dataReceived(nginxRequest(b"/upload", contentLength=16 * MiB))
        channel.dataReceived(b"v" * MiB)
        self.assertEqual(parseResponse(transport.value()).status, 413)
        self.clock.advance(0.49)
        self.assertFalse(transport.disconnected)
        self.clock.advance(0.01)
        self.assertTrue(transport.disconnected)

    def test_timeoutAbortsUnfinishedAnswer(self) -> None:
        """A timeout during an answer still being written aborts it at once.

        A close would end the answer as if it were complete, so the connection is
        aborted at ``timeout``, without waiting ``abort_timeout``.
        """
        streaming = StreamingAnswer(64 * 1024)
        channel, transport = self.open(
            streaming, timeout=0.5, abort_timeout=10, stream_uploads=True
        )
        channel.dataReceived(nginxRequest(b"/stream", contentLength=1000) + b"z" * 10)
        self.assertTrue(transport.value().startswith(b"Status: 200 OK\r\n"))
        self.clock.advance(0.49)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(0.01)
        self.assertTrue(transport.disconnected)
        channel.connectionLost(Failure(ConnectionAborted()))
        self.assertEqual(len(streaming.failures), 1)


# In memory: the graceful drain.


class _Finishing(Resource):
    """Holds every request; can write a first piece of the answer at once."""

    isLeaf = True

    def __init__(self, firstPiece: bytes = b"") -> None:
        super().__init__()
        self.firstPiece = firstPiece
        self.pending: list[WebRequest] = []
        self.failures: list[Failure] = []

    def render(self, request: WebRequest) -> object:
        """Keep the request (after writing the first piece, if any)."""
        self.pending.append(request)
        request.notifyFinish().addErrback(self.failures.append)
        if self.firstPiece:
            request.write(self.firstPiece)
        return NOT_DONE_YET


class DrainTests(SynchronousTestCase):
    """``SCGISite.drain(grace)``: requests in flight finish; the rest are closed."""

    def setUp(self) -> None:
        self.clock = Clock()

    def makeSite(self, resource: Resource, **options: Any) -> SCGISite:
        """Build a site on the test's clock."""
        return SCGISite(resource, reactor=self.clock, **options)

    def startRequest(self, site: SCGISite) -> tuple[SCGIChannel, HalfCloseTransport]:
        """Open a connection and send a whole GET on it."""
        channel, transport = connect(site)
        channel.dataReceived(nginxRequest(b"/slow"))
        return channel, transport

    def test_nothingOpen(self) -> None:
        """With no connection open, the drain is over at once."""
        site = self.makeSite(_Finishing())
        self.successResultOf(site.drain(5))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_inFlightFinishes(self) -> None:
        """A request finishing within the grace period is answered in full.

        The drain ends when its connection does, before the grace period is over.
        """
        resource = _Finishing()
        site = self.makeSite(resource)
        channel, transport = self.startRequest(site)
        drained = site.drain(5)
        self.clock.advance(1)
        self.assertNoResult(drained)
        (request,) = resource.pending
        request.write(b"late but whole")
        request.finish()
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.disconnected)
        self.assertNoResult(drained)
        channel.connectionLost(_failure(ConnectionDone()))
        self.successResultOf(drained)
        response = parseResponse(transport.value())
        self.assertEqual((response.status, response.body), (200, b"late but whole"))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(resource.failures, [])

    def test_closedAtGrace(self) -> None:
        """A request still unanswered when the grace period ends is closed.

        It is told that its connection is gone; nothing was sent, so a plain close
        suffices.
        """
        resource = _Finishing()
        site = self.makeSite(resource, abort_timeout=15)
        channel, transport = self.startRequest(site)
        drained = site.drain(5)
        self.clock.advance(4.9)
        self.assertFalse(transport.disconnecting)
        self.assertEqual(resource.failures, [])
        self.clock.advance(0.1)
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.disconnected)
        self.assertEqual(len(resource.failures), 1)
        self.assertEqual(transport.value(), b"")
        self.assertNoResult(drained)
        channel.connectionLost(_failure(ConnectionDone()))
        self.successResultOf(drained)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_unfinishedAnswerAbortedAtGrace(self) -> None:
        """An answer begun but unfinished at the end of the grace period is aborted.

        A close would tell the frontend that the truncated answer is complete.
        """
        resource = _Finishing(b"the first half")
        site = self.makeSite(resource)
        channel, transport = self.startRequest(site)
        drained = site.drain(5)
        self.clock.advance(5)
        self.assertTrue(transport.disconnected)
        self.assertEqual(len(resource.failures), 1)
        channel.connectionLost(_failure(ConnectionAborted()))
        self.successResultOf(drained)

    def test_ignoredCloseAbortedLater(self) -> None:
        """A finished answer whose close the peer ignores is aborted later.

        The abort comes ``abort_timeout`` after the end of the grace period.
        """
        resource = _Finishing()
        site = self.makeSite(resource, abort_timeout=3)
        channel, transport = self.startRequest(site)
        (request,) = resource.pending
        request.finish()
        self.assertTrue(transport.disconnecting)
        drained = site.drain(5)
        self.clock.advance(5)
        self.clock.advance(2.5)
        self.assertFalse(transport.disconnected)
        self.clock.advance(0.5)
        self.assertTrue(transport.disconnected)
        self.assertNoResult(drained)
        channel.connectionLost(_failure(ConnectionAborted()))
        self.successResultOf(drained)

    def test_accessLogKeptOpen(self) -> None:
        """A request finishing during the drain is written to the access log.

        Stopping the last listening port stops the site, which closes its log; the
        drain keeps the log open until the last connection is gone.
        """
        directory = self.mktemp()
        os.makedirs(directory)
        log = os.path.join(directory, "access.log")
        resource = _Finishing()
        site = self.makeSite(resource, logPath=log)
        site.doStart()  # as listening does
        channel, _ = self.startRequest(site)
        site.doStop()  # as stopListening does
        drained = site.drain(5)
        (request,) = resource.pending
        request.finish()
        channel.connectionLost(_failure(ConnectionDone()))
        self.successResultOf(drained)
        with open(log, "rb") as file:
            lines = file.read().splitlines()
        self.assertEqual(len(lines), 1)
        self.assertIn(b'"GET /slow HTTP/1.1" 200', lines[0])
        self.assertEqual(site.numPorts, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])


# In memory: the connection limit's bookkeeping.


class ConnectionLimitTests(SynchronousTestCase):
    """The site stops accepting at ``max_connections``; extra connections wait."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.site = SCGISite(Hello(), reactor=self.clock, max_connections=2, timeout=9)
        self.port = Port()

    def open(self, port: Port | None = None) -> tuple[SCGIChannel, PortTransport]:
        """Accept a connection on ``port`` (the test's port by default)."""
        return connect(self.site, transport=PortTransport(port or self.port))

    def close(self, channel: SCGIChannel) -> None:
        """End a connection."""
        channel.connectionLost(_failure(ConnectionDone()))

    def test_limitMustBePositive(self) -> None:
        """``max_connections`` below 1 is refused."""
        self.assertRaises(ValueError, SCGISite, Hello(), max_connections=0)

    def test_stopsAndResumes(self) -> None:
        """The port stops at the limit and reads again once below it."""
        first, _ = self.open()
        self.assertTrue(self.port.reading)
        second, _ = self.open()
        self.assertFalse(self.port.reading)
        self.assertEqual(self.site.connections, 2)
        self.close(first)
        self.assertTrue(self.port.reading)
        self.close(second)
        self.assertTrue(self.port.reading)
        self.assertEqual(self.site.connections, 0)

    def test_overLimitWaits(self) -> None:
        """A connection accepted past the limit waits, paused, for a free slot.

        No deadline runs while it waits; once admitted it is read and its header
        deadline starts.
        """
        first, _ = self.open()
        self.open()
        timers = len(self.clock.getDelayedCalls())
        third, transport = self.open()
        self.assertEqual(transport.producerState, "paused")
        self.assertEqual(len(self.clock.getDelayedCalls()), timers)
        self.assertEqual(self.site.connections, 3)
        self.clock.advance(100)  # the served ones time out; not the waiting one
        self.assertFalse(transport.disconnecting)
        self.close(first)
        self.assertEqual(transport.producerState, "producing")
        self.assertFalse(self.port.reading, "still at the limit")
        third.dataReceived(nginxRequest(b"/third"))
        self.assertEqual(parseResponse(transport.value()).body, b"hello")

    def test_waitingServedInOrder(self) -> None:
        """Waiting connections are admitted first come, first served."""
        first, _ = self.open()
        second, _ = self.open()
        waiting = [self.open()[1] for _ in range(3)]
        self.close(first)
        self.assertEqual(
            [t.producerState for t in waiting], ["producing", "paused", "paused"]
        )
        self.close(second)
        self.assertEqual(
            [t.producerState for t in waiting], ["producing", "producing", "paused"]
        )

    def test_waitingConnectionLost(self) -> None:
        """A waiting connection that goes away is forgotten, never admitted."""
        first, _ = self.open()
        self.open()
        third, transport = self.open()
        self.close(third)
        self.assertEqual(self.site.connections, 2)
        self.close(first)
        self.assertEqual(transport.producerState, "paused")
        self.assertTrue(self.port.reading)

    def test_everyPortStopped(self) -> None:
        """A port first seen through a connection past the limit is stopped too."""
        self.open()
        self.open()
        other = Port()
        self.open(other)
        self.assertFalse(other.reading)
        self.assertFalse(self.port.reading)

    def test_stoppingPortNotRestarted(self) -> None:
        """A port being stopped (``stopListening``) does not accept again."""
        first, _ = self.open()
        self.open()
        self.port.disconnecting = True
        self.close(first)
        self.assertFalse(self.port.reading)

    def test_waitingClosedAtGrace(self) -> None:
        """At the end of a grace period, waiting connections are closed too.

        None is admitted afterwards.
        """
        first, _ = self.open()
        self.open()
        _, transport = self.open()
        drained = self.site.drain(1)
        self.clock.advance(1)
        self.assertTrue(transport.disconnecting)
        self.close(first)
        self.assertEqual(transport.producerState, "paused")
        self.assertNoResult(drained)

    def test_noLimit(self) -> None:
        """Without a limit the port is never stopped."""
        site = SCGISite(Hello(), reactor=self.clock)
        for _ in range(50):
            connect(site, transport=PortTransport(self.port))
        self.assertEqual(self.port.stops, 0)
        self.assertEqual(site.connections, 50)
