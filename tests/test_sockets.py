"""Real-socket tests: :class:`~scgi_twisted.SCGISite` on the real reactor.

The site listens on ``tcp:0:interface=127.0.0.1`` or on a unix socket in a temporary
directory and serves the end-to-end application's tree (:mod:`tests.e2e_app`).  The
client is a blocking socket run in a thread (``deferToThread``) with a timeout on every
call, so a server that does not answer or does not close makes the test fail rather
than hang.  Each test waits until every server-side connection is closed (and records
how it closed) before it stops listening, so the reactor is left clean.

The same tests run over TCP and over unix sockets, by subclassing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import shutil
import socket
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from twisted.internet import reactor as _global_reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import connectionDone
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from scgi_twisted import SCGIChannel, SCGISite
from scgi_twisted import client as scgi_client

from .e2e_app import AppState, buildRoot
from .support.scgi import buildRequest, nginxVariables, parseHTTPRefusal, parseResponse
from .support.sockets import readToEnd

if TYPE_CHECKING:
    _MixinBase = TestCase
else:
    _MixinBase = object

_reactor: Any = _global_reactor

CLIENT_TIMEOUT = 10.0
"""Every blocking client call gives up after this many seconds."""

Address = tuple[socket.AddressFamily, Any]
"""Where to connect: an address family and a ``connect()`` argument."""


# The server side: a site that tracks its connections.


class _TrackedChannel(SCGIChannel):
    """A channel that tells its site when its connection is gone."""

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Run the channel's own handling, then report the loss."""
        super().connectionLost(reason)
        site = self.site
        assert isinstance(site, _TrackingSite)
        site.channelClosed(self, reason)


class _TrackingSite(SCGISite):
    """An :class:`SCGISite` that knows which of its connections are still open.

    :ivar closeReasons: why each closed connection closed, in order.
    """

    protocol = _TrackedChannel

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Create the site; see :class:`SCGISite`."""
        super().__init__(*args, **kwargs)
        self._open: set[SCGIChannel] = set()
        self._waiters: list[Deferred[list[Failure]]] = []
        self.closeReasons: list[Failure] = []

    def buildProtocol(  # type: ignore[override]
        self, addr: IAddress | None
    ) -> SCGIChannel | None:
        """Build and remember a channel; a refused peer's stand-in is not one."""
        channel = super().buildProtocol(addr)
        if isinstance(channel, _TrackedChannel):
            self._open.add(channel)
        return channel

    def channelClosed(self, channel: SCGIChannel, reason: Failure) -> None:
        """Record a closed connection; wake the waiters once none is open."""
        self._open.discard(channel)
        self.closeReasons.append(reason)
        if not self._open:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                waiter.callback(self.closeReasons)

    def allClosed(self) -> Deferred[list[Failure]]:
        """Return a Deferred that fires with :attr:`closeReasons` once none is open."""
        waiter: Deferred[list[Failure]] = Deferred()
        if self._open:
            self._waiters.append(waiter)
        else:
            waiter.callback(self.closeReasons)
        return waiter


# The client side: blocking sockets, run in a thread.


@dataclass(frozen=True)
class _Exchange:
    """What a client saw.

    :ivar data: every byte received.
    :ivar end: how the input ended: ``"eof"``, ``"reset"`` or ``"timeout"``.
    :ivar sendError: the error sending raised, if any.
    """

    data: bytes
    end: str
    sendError: str | None = None


def _connect(address: Address) -> socket.socket:
    """Connect a blocking socket with :data:`CLIENT_TIMEOUT` on every call."""
    family, target = address
    client = socket.socket(family, socket.SOCK_STREAM)
    client.settimeout(CLIENT_TIMEOUT)
    try:
        client.connect(target)
    except BaseException:
        client.close()
        raise
    return client


def _readUntil(client: socket.socket, marker: bytes) -> bytes:
    """Read until ``marker`` has arrived; raise if the input ends first."""
    received = b""
    while marker not in received:
        chunk = client.recv(65536)
        if not chunk:
            raise AssertionError(f"EOF before {marker!r}: {received!r}")
        received += chunk
    return received


def _roundTrip(address: Address, payload: bytes, halfClose: bool = False) -> _Exchange:
    """Send ``payload``, optionally half-close, and read until the input ends."""
    with contextlib.closing(_connect(address)) as client:
        sendError = None
        try:
            client.sendall(payload)
            if halfClose:
                client.shutdown(socket.SHUT_WR)
        except OSError as error:
            sendError = repr(error)
        data, end = readToEnd(client)
    return _Exchange(data, end, sendError)


def _variables(
    uri: bytes, method: bytes = b"GET", **overrides: bytes | None
) -> list[tuple[bytes, bytes]]:
    """Return nginx's variables for a request from 127.0.0.1."""
    overrides.setdefault("REMOTE_ADDR", b"127.0.0.1")
    overrides.setdefault("REQUEST_METHOD", method)
    return nginxVariables(uri, **overrides)


def _json(data: bytes) -> Any:
    """Parse a CGI response, check it is a complete 200, and return its JSON."""
    response = parseResponse(data)
    if response.status != 200:
        raise AssertionError(f"not a 200: {data[:500]!r}")
    length = response.header(b"Content-Length")
    if length is not None and int(length) != len(response.body):
        raise AssertionError(f"incomplete body: {length!r} != {len(response.body)}")
    return json.loads(response.body)


# The tests.


class _SocketTestsMixin(_MixinBase):
    """Tests that hold over any stream socket; subclasses choose TCP or unix."""

    timeout = 30.0

    def endpointFor(self) -> str:
        """Return the server endpoint string to listen on."""
        raise NotImplementedError

    def addressOf(self, port: Any) -> Address:
        """Return where a client connects to reach the listening ``port``."""
        raise NotImplementedError

    async def serve(self, **options: Any) -> tuple[_TrackingSite, AppState, Address]:
        """Listen with a tracking SCGI site serving the application.

        Cleanup waits for every connection to close, then stops listening.

        :param options: keyword arguments of :class:`SCGISite`.
        :returns: the site, the application's state and the address to connect to.
        """
        state = AppState()
        site = _TrackingSite(buildRoot(state, _reactor), reactor=_reactor, **options)
        port = await serverFromString(_reactor, self.endpointFor()).listen(site)
        self.addCleanup(port.stopListening)
        self.addCleanup(site.allClosed)
        return site, state, self.addressOf(port)

    def assertClosedCleanly(self, reasons: list[Failure]) -> None:
        """Assert the server closed every connection itself, without an abort."""
        self.assertTrue(reasons, "no connection was made")
        for reason in reasons:
            self.assertIs(type(reason.value), ConnectionDone, reason)

    async def test_get(self) -> None:
        """A GET reaches the resource with its URI, args and raw variables."""
        site, _, address = await self.serve()
        variables = _variables(b"/echo?a=1&a=2&b=x%20y")
        exchange = await deferToThread(_roundTrip, address, buildRequest(variables))
        echo = _json(exchange.data)
        self.assertEqual(echo["method"], "GET")
        self.assertEqual(echo["uri"], "/echo?a=1&a=2&b=x%20y")
        self.assertEqual(echo["args"], {"a": ["1", "2"], "b": ["x y"]})
        self.assertEqual(echo["client"]["host"], "127.0.0.1")
        sent = [(b"CONTENT_LENGTH", b"0"), (b"SCGI", b"1"), *variables]
        self.assertEqual(
            echo["scgi"], [[n.decode("latin-1"), v.decode("latin-1")] for n, v in sent]
        )
        self.assertClosedCleanly(await site.allClosed())

    def clientEndpoint(self, address: Address) -> str:
        """Return the client endpoint string that reaches ``address``."""
        family, where = address
        if family == socket.AF_UNIX:
            path = where.decode() if isinstance(where, bytes) else str(where)
            return f"unix:{path}"
        host, port = cast(tuple[str, int], where)
        return f"tcp:{host}:{port}"

    async def test_clientGet(self) -> None:
        """scgi_twisted's own SCGI client gets a GET answered over the socket.

        The request carries a query, a header and an extra SCGI variable; the
        response's status, headers and body come back through the client.
        """
        site, _, address = await self.serve()
        response = await scgi_client.request(
            _reactor,
            self.clientEndpoint(address),
            "GET",
            "/echo?a=1",
            headers=[("X-Custom", "yes")],
            variables={"HTTPS": "on"},
        )
        self.assertEqual(response.code, 200)
        self.assertEqual(
            response.headers.getRawHeaders(b"content-type"), [b"application/json"]
        )
        echo = json.loads(await response.content())
        self.assertEqual(echo["args"], {"a": ["1"]})
        self.assertTrue(echo["isSecure"])
        self.assertIn(["x-custom", "yes"], echo["headers"])
        self.assertClosedCleanly(await site.allClosed())

    async def test_clientPost8MiB(self) -> None:
        """The SCGI client sends an 8 MiB body that arrives intact."""
        site, _, address = await self.serve()
        body = random.Random(9).randbytes(8 * 1024 * 1024)
        response = await scgi_client.request(
            _reactor, self.clientEndpoint(address), "POST", "/upload", body=body
        )
        self.assertEqual(response.code, 200)
        answer = json.loads(await response.content())
        self.assertEqual(answer["sha256"], hashlib.sha256(body).hexdigest())
        self.assertClosedCleanly(await site.allClosed())

    async def test_clientBodyTooLarge(self) -> None:
        """A 413 from the server reaches the client as a 413 response, not an error.

        The client sends a body over ``max_body_size``; the server answers 413,
        reads the body to its end and closes cleanly.
        """
        site, _, address = await self.serve(max_body_size=1024)
        response = await scgi_client.request(
            _reactor, self.clientEndpoint(address), "POST", "/upload", body=b"x" * 4096
        )
        self.assertEqual(response.code, 413)
        self.assertIn(b"CONTENT_LENGTH", await response.content())
        self.assertClosedCleanly(await site.allClosed())

    async def test_post8MiB(self) -> None:
        """An 8 MiB body arrives intact: same length and SHA-256."""
        site, _, address = await self.serve()
        body = random.Random(8).randbytes(8 * 1024 * 1024)
        request = buildRequest(
            _variables(b"/upload", b"POST", CONTENT_TYPE=b"application/octet-stream"),
            body,
        )
        exchange = await deferToThread(_roundTrip, address, request)
        self.assertEqual(
            _json(exchange.data),
            {"length": len(body), "sha256": hashlib.sha256(body).hexdigest()},
        )
        self.assertClosedCleanly(await site.allClosed())

    async def test_serverClosesAfterResponse(self) -> None:
        """The client gets the whole response, then EOF: the server closes.

        The client never closes or half-closes; without the server's close it would
        time out.
        """
        site, _, address = await self.serve()
        exchange = await deferToThread(
            _roundTrip, address, buildRequest(_variables(b"/echo"))
        )
        self.assertEqual(exchange.end, "eof")
        self.assertIsNone(exchange.sendError)
        _json(exchange.data)
        self.assertClosedCleanly(await site.allClosed())

    async def test_clientCloseErrbacksNotifyFinish(self) -> None:
        """A client that closes mid-response makes ``notifyFinish()`` errback."""
        site, state, address = await self.serve()
        request = buildRequest(_variables(b"/abort?id=close&delay=0.05"))

        def client() -> None:
            with contextlib.closing(_connect(address)) as connection:
                connection.sendall(request)
                _readUntil(connection, b"tick 2\n")

        await deferToThread(client)
        record = await state.abortRecord("close").whenDone()
        self.assertEqual(record.outcome, "errback", record)
        self.assertLess(record.writes, 100)
        await site.allClosed()

    async def test_clientResetErrbacksNotifyFinish(self) -> None:
        """A client that resets mid-response makes ``notifyFinish()`` errback."""
        site, state, address = await self.serve()
        request = buildRequest(_variables(b"/abort?id=reset&delay=0.05"))

        def client() -> None:
            with contextlib.closing(_connect(address)) as connection:
                connection.sendall(request)
                _readUntil(connection, b"tick 2\n")
                linger = struct.pack("ii", 1, 0)
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)

        await deferToThread(client)
        record = await state.abortRecord("reset").whenDone()
        self.assertEqual(record.outcome, "errback", record)
        await site.allClosed()

    async def test_halfCloseIsAnAbortByDefault(self) -> None:
        """By default, a read-EOF after the request means the client went away."""
        site, state, address = await self.serve()
        request = buildRequest(_variables(b"/abort?id=half&delay=0.05"))
        exchange = await deferToThread(_roundTrip, address, request, True)
        record = await state.abortRecord("half").whenDone()
        self.assertEqual(record.outcome, "errback", record)
        self.assertEqual(exchange.end, "eof")
        self.assertClosedCleanly(await site.allClosed())

    async def test_halfCloseModeKeepsServing(self) -> None:
        """With ``half_close=True`` a client's half-close still gets the response."""
        site, _, address = await self.serve(half_close=True)
        request = buildRequest(_variables(b"/stream?n=3&delay=0.05"))
        exchange = await deferToThread(_roundTrip, address, request, True)
        self.assertEqual(exchange.end, "eof")
        response = parseResponse(exchange.data)
        self.assertEqual(response.status, 200)
        lines = response.body.splitlines()
        self.assertEqual([line.split()[0] for line in lines], [b"0", b"1", b"2"])
        self.assertClosedCleanly(await site.allClosed())

    async def test_headerErrorAnsweredAndDrained(self) -> None:
        """Header garbage gets a complete 400, and the server reads on until EOF.

        The client sends an HTTP request (not SCGI) followed by 4 MiB before it reads
        anything: a server that closed with those bytes unread would reset the
        connection, failing the client's send.  Once the client half-closes, the
        server closes cleanly.
        """
        site, _, address = await self.serve()
        garbage = b"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n"
        extra = b"x" * (4 * 1024 * 1024)

        def client() -> tuple[bytes, str, bytes, str]:
            with contextlib.closing(_connect(address)) as connection:
                connection.sendall(garbage + extra)
                data, end = readToEnd(connection)
                connection.sendall(extra)
                connection.shutdown(socket.SHUT_WR)
                after, endAfter = readToEnd(connection)
            return data, end, after, endAfter

        data, end, after, endAfter = await deferToThread(client)
        self.assertEqual(end, "eof")
        # An HTTP request is answered in HTTP, which the sender can read.
        response = parseHTTPRefusal(data)
        self.assertEqual(response.status, 400)
        self.assertIn(b"this port speaks SCGI", response.body)
        self.assertEqual(response.header(b"Content-Length"), b"%d" % len(response.body))
        self.assertEqual((after, endAfter), (b"", "eof"))
        self.assertClosedCleanly(await site.allClosed())

    async def test_bodyTooLargeAnsweredAndDrained(self) -> None:
        """A body over ``max_body_size`` gets 413; the server reads it all and closes.

        The client sends the whole 4 MiB body before reading and never half-closes,
        as nginx does: the server closes once it has read ``CONTENT_LENGTH`` bytes.
        """
        site, _, address = await self.serve(max_body_size=1024)
        body = b"y" * (4 * 1024 * 1024)
        request = buildRequest(_variables(b"/upload", b"POST"), body)
        exchange = await deferToThread(_roundTrip, address, request)
        self.assertIsNone(exchange.sendError)
        self.assertEqual(exchange.end, "eof")
        self.assertEqual(parseResponse(exchange.data).status, 413)
        self.assertClosedCleanly(await site.allClosed())


class TCPSocketTests(_SocketTestsMixin, TestCase):
    """The socket tests over TCP on 127.0.0.1, plus the ``allow=`` checks."""

    def endpointFor(self) -> str:
        """Listen on a free port of 127.0.0.1."""
        return "tcp:0:interface=127.0.0.1"

    def addressOf(self, port: Any) -> Address:
        """Connect to the bound port."""
        return socket.AF_INET, ("127.0.0.1", port.getHost().port)

    async def test_allowRefusesOtherPeers(self) -> None:
        """A peer outside ``allow=`` is closed on at once, without a response."""
        site, _, address = await self.serve(allow=["192.0.2.0/24", "::1"])
        exchange = await deferToThread(
            _roundTrip, address, buildRequest(_variables(b"/echo"))
        )
        self.assertEqual(exchange.data, b"")
        self.assertIn(exchange.end, ("eof", "reset"))
        self.assertEqual(site.closeReasons, [])

    async def test_allowServesListedPeers(self) -> None:
        """A peer inside ``allow=`` is served."""
        site, _, address = await self.serve(allow=["192.0.2.0/24", "127.0.0.0/8"])
        exchange = await deferToThread(
            _roundTrip, address, buildRequest(_variables(b"/echo"))
        )
        self.assertEqual(_json(exchange.data)["method"], "GET")
        self.assertClosedCleanly(await site.allClosed())


class UnixSocketTests(_SocketTestsMixin, TestCase):
    """The socket tests over a unix socket, plus the ``allow=`` exemption."""

    def endpointFor(self) -> str:
        """Listen on a socket in a fresh temporary directory."""
        directory = Path(tempfile.mkdtemp(prefix="scgi-sock-"))
        self.addCleanup(shutil.rmtree, directory, True)
        return f"unix:{directory / 'scgi.sock'}"

    def addressOf(self, port: Any) -> Address:
        """Connect to the socket's path."""
        name: bytes = port.getHost().name
        return socket.AF_UNIX, name

    async def test_allowNeverRefusesUnixPeers(self) -> None:
        """``allow=`` does not apply to unix-socket peers: they are served."""
        site, _, address = await self.serve(allow=["192.0.2.0/24"])
        exchange = await deferToThread(
            _roundTrip, address, buildRequest(_variables(b"/echo"))
        )
        self.assertEqual(_json(exchange.data)["method"], "GET")
        self.assertClosedCleanly(await site.allClosed())
