"""Real sockets: a site on the real reactor that records its connections, and clients.

:class:`RecordingSite` is an :class:`~scgi_twisted.SCGISite` whose connections report
how and when they ended, so a test can wait until every one is closed before its port
stops.  Clients are blocking sockets run in threads (``deferToThread``) with
:data:`CLIENT_TIMEOUT` on every call: :func:`readToEnd` reads until EOF, a reset or
the timeout and says which.  :func:`sleep` and :func:`until` wait on the reactor.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

from twisted.internet import reactor as _global_reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import connectionDone
from twisted.internet.task import deferLater
from twisted.python.failure import Failure

from scgi_twisted import SCGIChannel, SCGISite

from .scgi import buildRequest, nginxVariables

__all__ = [
    "CLIENT_TIMEOUT",
    "RecordingChannel",
    "RecordingSite",
    "nginxRequest",
    "reactor",
    "readToEnd",
    "sleep",
    "until",
]


def readToEnd(client: socket.socket, data: bytes = b"") -> tuple[bytes, str]:
    """Read a blocking socket until EOF, a reset or its timeout; say which it was.

    :param client: the socket, with a timeout set.
    :param data: bytes already read, put in front of the result.
    :returns: everything read, and ``"eof"``, ``"reset"`` or ``"timeout"``.
    """
    chunks = [data]
    while True:
        try:
            chunk = client.recv(65536)
        except TimeoutError:
            return b"".join(chunks), "timeout"
        except ConnectionResetError:
            return b"".join(chunks), "reset"
        if not chunk:
            return b"".join(chunks), "eof"
        chunks.append(chunk)


reactor: Any = _global_reactor


CLIENT_TIMEOUT = 15.0
"""Every blocking client call gives up after this many seconds."""


def sleep(seconds: float) -> Deferred[None]:
    """Return a Deferred that fires ``seconds`` from now on the real reactor."""
    return deferLater(reactor, seconds, lambda: None)


async def until(
    condition: Callable[[], bool], what: str, timeout: float = 10.0
) -> None:
    """Poll ``condition`` on the reactor until it holds; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await sleep(0.01)


class RecordingChannel(SCGIChannel):
    """A channel that reports how and when its connection ended."""

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Run the channel's own handling, then report the loss to the site."""
        super().connectionLost(reason)
        site = self.site
        assert isinstance(site, RecordingSite)
        site.recordClose(reason)


class RecordingSite(SCGISite):
    """An :class:`SCGISite` that records its connections' ends and peak load.

    :ivar closes: ``(time.monotonic(), reason)`` for each closed connection.
    :ivar maxServed: the most connections served at once (waiting ones excluded).
    """

    protocol = RecordingChannel

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Create the site; see :class:`SCGISite`."""
        super().__init__(*args, **kwargs)
        self.closes: list[tuple[float, Failure]] = []
        self.maxServed = 0
        self._idle: list[Deferred[None]] = []

    def connectionOpened(self, channel: SCGIChannel) -> bool:
        """Count the connection as the site does, then note the peak."""
        admitted = super().connectionOpened(channel)
        self.maxServed = max(self.maxServed, self._served())
        return admitted

    def recordClose(self, reason: Failure) -> None:
        """Record a closed connection; wake the waiters once none is open."""
        self.closes.append((time.monotonic(), reason))
        if not self.connections:
            waiting, self._idle = self._idle, []
            for waiter in waiting:
                waiter.callback(None)

    def allClosed(self) -> Deferred[None]:
        """Return a Deferred that fires once no connection is open."""
        waiter: Deferred[None] = Deferred()
        if self.connections:
            self._idle.append(waiter)
        else:
            waiter.callback(None)
        return waiter


def nginxRequest(uri: bytes = b"/", body: bytes = b"", **kwargs: Any) -> bytes:
    """Return a complete SCGI request as nginx frames it."""
    method = b"POST" if body or kwargs.get("contentLength") else b"GET"
    return buildRequest(nginxVariables(uri, REQUEST_METHOD=method), body, **kwargs)


SLACK = 1.5
"""How much later than its deadline a timer may fire on a busy machine, in seconds."""


MiB = 1024 * 1024


Address = tuple[socket.AddressFamily, Any]
"""Where to connect: an address family and a ``connect()`` argument."""


def connectClient(address: Address, receiveBuffer: int | None = None) -> socket.socket:
    """Connect a blocking socket with :data:`CLIENT_TIMEOUT` on every call."""
    family, target = address
    client = socket.socket(family, socket.SOCK_STREAM)
    client.settimeout(CLIENT_TIMEOUT)
    try:
        if receiveBuffer is not None:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receiveBuffer)
        client.connect(target)
    except BaseException:
        client.close()
        raise
    return client
