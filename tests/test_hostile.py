"""Hostile inputs over real sockets: every case of ``scgi-spec.md`` §4-§5 and more.

Strategy: table-driven.  Each :class:`Case` is a client script (send bytes, pause,
half-close, read a response, wait for the application, abort with a TCP reset) and the
documented outcome: a ``Status:`` code, or a clean close with no bytes.  The script
runs with a blocking socket in a thread while the real reactor serves an
:class:`~scgi_twisted.SCGISite` listening on ``127.0.0.1`` (and on a unix socket for a
few cases).  After every case the runner waits until the server has closed every
connection of the case, then checks:

* the response is one strict CGI response (``Status:`` first, CRLF, a blank line, a
  body as long as its ``Content-Length``) with the expected status, or nothing;
* the connection ended with a FIN, never a reset (the server drains what it refuses);
* at most one line was logged by ``scgi_twisted``, nothing at error or critical level,
  and no failure (traceback), except in the pinned application-bug cases;
* what the application saw (``notifyFinish`` fired or errbacked);
* a normal ``GET`` is served right after.

:class:`MemoryTests` replays every fast case for many rounds and checks that the
process's resident memory stays flat and that no channel or request outlives its
connection.  Application bugs (a header value with CR/LF, NUL, a bad header name) are
pinned too: none of them may put an extra header line on the wire.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import os
import shutil
import socket
import ssl
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, cast

from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IListeningPort,
    IPushProducer,
    IReactorTime,
)
from twisted.internet.protocol import connectionDone
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThreadPool
from twisted.logger import LogEvent, LogLevel, formatEvent
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import TestCase
from twisted.web.http_headers import InvalidHeaderName
from twisted.web.pages import notFound
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request
from zope.interface import implementer

from scgi_twisted import SCGIChannel, SCGISite

from .support.memory import collectLogEvents
from .support.scgi import (
    DEEPTHOUGHT,
    DEEPTHOUGHT_BLOCK,
    MINIMAL,
    buildRequest,
    headerBlock,
    netstring,
    nginxVariables,
    parseHTTPRefusal,
    parseResponse,
)

reactor = cast(IReactorTime, _reactor)

MIB = 1024 * 1024
STREAM_SIZE = 16 * MIB
"""How much the streaming resource sends unless its query says otherwise."""

CLIENT_TIMEOUT = 10.0
"""How long a client script waits for any one read, in seconds."""


def clientHello() -> bytes:
    """Return a real TLS ClientHello, as a TLS client would send to the SCGI port."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="example.test")
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def deepthought(block: bytes, body: bytes = b"What is the answer to life?") -> bytes:
    """Frame a variant of the deepthought header block, its length recomputed."""
    return netstring(block) + body


def get(uri: bytes = b"/ok", **overrides: bytes | None) -> bytes:
    """Return the request stock nginx sends for ``GET uri HTTP/1.1``."""
    return buildRequest(nginxVariables(uri, **overrides))


# Client scripts.


@dataclass(frozen=True)
class Send:
    """Send these bytes (all of them)."""

    data: bytes


@dataclass(frozen=True)
class Pause:
    """Sleep, so that what was sent arrives in its own read."""

    seconds: float


@dataclass(frozen=True)
class ShutdownWrite:
    """Half-close: ``shutdown(SHUT_WR)``, the client sends nothing more."""


@dataclass(frozen=True)
class Close:
    """Close the socket at once, reading nothing (ends the script)."""


@dataclass(frozen=True)
class Abort:
    """Close with a reset: ``SO_LINGER`` 0, then close (ends the script)."""


@dataclass(frozen=True)
class WaitDispatched:
    """Wait until the application has received the request."""


@dataclass(frozen=True)
class ReadResponse:
    """Read one complete sized response before going on (without EOF)."""


@dataclass(frozen=True)
class ReadAtLeast:
    """Read at least ``count`` bytes of the response before going on."""

    count: int


Step = (
    Send
    | Pause
    | ShutdownWrite
    | Close
    | Abort
    | WaitDispatched
    | ReadResponse
    | ReadAtLeast
)


@dataclass(frozen=True)
class ClientResult:
    """What the client saw.

    :ivar received: every byte read.
    :ivar ending: ``"eof"`` (a FIN), ``"reset"``, ``"timeout"``, or ``"closed"``
        (the script closed or aborted the socket itself).
    """

    received: bytes
    ending: str


def _readSizedResponse(sock: socket.socket, received: bytearray) -> None:
    """Read until ``received`` holds a head and a body as long as its length."""
    while True:
        head, blank, body = bytes(received).partition(b"\r\n\r\n")
        if blank:
            parse = parseHTTPRefusal if received.startswith(b"HTTP/") else parseResponse
            length = parse(bytes(received)).header(b"Content-Length")
            if length is None:
                raise AssertionError(f"an early response without length: {head!r}")
            if len(body) >= int(length):
                return
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"EOF before a complete response: {received!r}")
        received += chunk


def runClient(
    address: tuple[int, Any], steps: Iterable[Step], app: App
) -> ClientResult:
    """Run a client script against the server (in a thread) and say what it saw.

    :param address: ``(family, address)`` of the listener.
    :param steps: the script; unless it ends in :class:`Close` or :class:`Abort`, the
        client then reads until the server's EOF and closes.
    :param app: the application, for :class:`WaitDispatched`.
    """
    family, where = address
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(CLIENT_TIMEOUT)
    received = bytearray()
    try:
        sock.connect(where)
        for step in steps:
            if isinstance(step, Send):
                sock.sendall(step.data)
            elif isinstance(step, Pause):
                time.sleep(step.seconds)
            elif isinstance(step, ShutdownWrite):
                sock.shutdown(socket.SHUT_WR)
            elif isinstance(step, WaitDispatched):
                if not app.dispatched.wait(CLIENT_TIMEOUT):
                    raise AssertionError("the application never got the request")
            elif isinstance(step, ReadResponse):
                _readSizedResponse(sock, received)
            elif isinstance(step, ReadAtLeast):
                while len(received) < step.count:
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise AssertionError(f"EOF after {len(received)} bytes")
                    received += chunk
            elif isinstance(step, Abort):
                if family != socket.AF_UNIX:
                    sock.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                return ClientResult(bytes(received), "closed")
            else:
                return ClientResult(bytes(received), "closed")
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                return ClientResult(bytes(received), "timeout")
            except ConnectionResetError:
                return ClientResult(bytes(received), "reset")
            if not chunk:
                return ClientResult(bytes(received), "eof")
            received += chunk
    except OSError as error:
        if error.errno in (errno.ECONNRESET, errno.EPIPE):
            return ClientResult(bytes(received), "reset")
        raise
    finally:
        sock.close()


# The application.


@implementer(IPushProducer)
class _Streamer:
    """Write ``total`` bytes to a request, as fast as the transport takes them."""

    chunk = b"x" * 65536

    def __init__(self, request: Request, total: int) -> None:
        self.request = request
        self.remaining = total
        self.paused = False
        self.stopped = False
        self.call: IDelayedCall | None = None

    def start(self) -> None:
        """Register as the request's producer and begin."""
        self.request.registerProducer(self, True)
        self._schedule()

    def _schedule(self) -> None:
        if self.call is None and not self.stopped:
            self.call = reactor.callLater(0, self._produce)

    def _produce(self) -> None:
        self.call = None
        while not self.paused and not self.stopped and self.remaining > 0:
            data = self.chunk[: self.remaining]
            self.remaining -= len(data)
            self.request.write(data)
        if self.remaining == 0 and not self.stopped:
            self.stopped = True
            self.request.unregisterProducer()
            self.request.finish()

    def pauseProducing(self) -> None:
        """The transport's buffer is full."""
        self.paused = True

    def resumeProducing(self) -> None:
        """The transport's buffer drained."""
        self.paused = False
        self._schedule()

    def stopProducing(self) -> None:
        """The connection is gone."""
        self.stopped = True
        if self.call is not None and self.call.active():
            self.call.cancel()
        self.call = None


class App:
    """The resource tree the hostile suite talks to, and what it observed.

    :ivar dispatched: set (from the reactor thread) when a tracked resource got its
        request.
    :ivar finishes: for each tracked request, ``"finished"`` once its ``notifyFinish``
        fired, or ``"lost"`` once it errbacked.
    """

    def __init__(self) -> None:
        self.dispatched = threading.Event()
        self.finishes: list[str] = []
        self.calls: list[IDelayedCall] = []
        self.root = _Root()
        children: dict[bytes, Callable[[Request], bytes | int]] = {
            b"": self.ok,
            b"ok": self.ok,
            b"echo": self.echo,
            b"info": self.info,
            b"deepthought": self.deepthought,
            b"pending": self.pending,
            b"later": self.later,
            b"stream": self.stream,
            b"crlf-header": self.crlfHeader,
            b"nul-header": self.nulHeader,
            b"bad-header-name": self.badHeaderName,
        }
        for name, render in children.items():
            self.root.putChild(name, _Leaf(render))

    def reset(self) -> None:
        """Forget what the last case observed."""
        self.dispatched.clear()
        del self.finishes[:]

    def cancelCalls(self) -> None:
        """Cancel every delayed call still pending (test cleanup)."""
        for call in self.calls:
            if call.active():
                call.cancel()
        del self.calls[:]

    def track(self, request: Request) -> None:
        """Record how the request ends and say it was dispatched."""

        def finished(_: object) -> None:
            self.finishes.append("finished")

        def lost(_: Failure) -> None:
            self.finishes.append("lost")

        request.notifyFinish().addCallbacks(finished, lost)
        self.dispatched.set()

    def ok(self, request: Request) -> bytes:
        """Answer ``ok``."""
        return b"ok"

    def echo(self, request: Request) -> bytes:
        """Answer with what the request carried, as raw bytes."""
        lines = [
            b"method=" + request.method,
            b"uri=" + request.uri,
            b"path=" + request.path,
        ]
        for name in (b"X-A", b"X-Foo", b"Cookie", b"Content-Type"):
            for value in request.requestHeaders.getRawHeaders(name, []):
                lines.append(name.lower() + b"=" + value)
        assert request.content is not None
        lines.append(b"body=" + request.content.read())
        return b"\n".join(lines)

    def info(self, request: Request) -> bytes:
        """Use every accessor an application may call on odd CGI variables."""
        parts = [
            repr(request.getClientAddress()),
            repr(request.getHost()),
            repr(request.isSecure()),
            repr(request.getRequestHostname()),
            repr(request.prePathURL()),
            repr(request.URLPath()),
            repr(request.args),
            repr(request.received_cookies),
            repr(request.clientproto),
        ]
        return "\n".join(parts).encode("utf-8", "backslashreplace")

    def deepthought(self, request: Request) -> bytes:
        """Answer ``42`` to exactly the question of the specification's example."""
        assert request.content is not None
        if request.content.read() == b"What is the answer to life?":
            return b"42"
        request.setResponseCode(422)
        return b"wrong question"

    def pending(self, request: Request) -> int:
        """Never answer."""
        self.track(request)
        return NOT_DONE_YET

    def later(self, request: Request) -> int:
        """Answer ``later`` after ``delay`` seconds (20 ms), unless the peer left."""
        delay = float(request.args.get(b"delay", [b"0.02"])[0])

        def finish() -> None:
            request.write(b"later")
            request.finish()

        call = reactor.callLater(delay, finish)
        self.calls = [pending for pending in self.calls if pending.active()]
        self.calls.append(call)
        request.notifyFinish().addErrback(lambda _: call.cancel())
        self.track(request)
        return NOT_DONE_YET

    def stream(self, request: Request) -> int:
        """Stream ``size`` bytes (the query argument; 16 MiB by default)."""
        size = int(request.args.get(b"size", [STREAM_SIZE])[0])
        self.track(request)
        _Streamer(request, size).start()
        return NOT_DONE_YET

    def crlfHeader(self, request: Request) -> bytes:
        """Try to inject a header and a body through a header value."""
        request.setHeader(b"X-A", b"a\r\nSet-Cookie: injected=1\r\n\r\nsmuggled")
        return b"ok"

    def nulHeader(self, request: Request) -> bytes:
        """Set a header value holding NUL, which no CGI head may carry."""
        request.setHeader(b"X-A", b"a\x00b")
        return b"ok"

    def badHeaderName(self, request: Request) -> bytes:
        """Try to inject a header through a header name."""
        request.setHeader(b"X-A\r\nSet-Cookie", b"injected=1")
        return b"ok"


class _Root(Resource):
    """The root: unknown children get Twisted's escaped 404 page."""

    def getChild(self, path: bytes, request: Request) -> Resource:
        return cast(Resource, notFound())


class _Leaf(Resource):
    """A leaf whose every method renders with one callable."""

    isLeaf = True

    def __init__(self, render: Callable[[Request], bytes | int]) -> None:
        super().__init__()
        self._render = render

    def render(self, request: Request) -> bytes | int:
        return self._render(request)


# The server side.


class _TrackedChannel(SCGIChannel):
    """The product's channel, reporting its end to the site that built it."""

    onLost: Callable[[SCGIChannel], None] | None = None

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        try:
            super().connectionLost(reason)
        finally:
            if self.onLost is not None:
                self.onLost(self)


class _TrackingSite(SCGISite):
    """An ``SCGISite`` that knows how many connections it built and which are open."""

    protocol = _TrackedChannel

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.built = 0
        self.open: set[SCGIChannel] = set()

    def buildProtocol(  # type: ignore[override]
        self, addr: IAddress | None
    ) -> SCGIChannel | None:
        channel = super().buildProtocol(addr)
        if isinstance(channel, _TrackedChannel):
            self.built += 1
            self.open.add(channel)
            channel.onLost = self.open.discard
        return channel

    async def settle(self, connections: int) -> None:
        """Wait until ``connections`` were built and all of them are closed."""
        deadline = time.monotonic() + CLIENT_TIMEOUT
        while self.built < connections or self.open:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the server still holds {len(self.open)} connection(s) "
                    f"({self.built}/{connections} built)"
                )
            await deferLater(reactor, 0.002, lambda: None)


# The cases.

CLEAN_CLOSE = 0
"""The expected status for "the server closed cleanly and sent nothing"."""

ANY = -1
"""The expected status for a script that aborts: nothing is read, nothing checked."""


@dataclass(frozen=True)
class Case:
    """One hostile input and its documented outcome.

    :ivar name: the test's name.
    :ivar doc: the behaviour pinned, as the test's docstring.
    :ivar steps: the client script.
    :ivar status: the expected status, :data:`CLEAN_CLOSE` or :data:`ANY`.
    :ivar body: the exact expected body, if checked.
    :ivar contains: bytes the body must contain.
    :ivar headers: ``(name, value)`` header lines the response must have.
    :ivar finishes: what the application must have seen (``App.finishes``).
    :ivar slow: left out of the memory rounds (it pauses).
    :ivar unix: also run over the unix socket.
    :ivar appError: the application's own error, logged by Twisted (flushed).
    :ivar errorLines: how many error-level lines from ``scgi_twisted`` are expected
        (only for application bugs).
    :ivar http: the answer is an HTTP/1.0 response (to an HTTP request), not CGI.
    """

    name: str
    doc: str
    steps: tuple[Step, ...]
    status: int
    body: bytes | None = None
    contains: tuple[bytes, ...] = ()
    headers: tuple[tuple[bytes, bytes], ...] = ()
    finishes: tuple[str, ...] = ()
    slow: bool = False
    unix: bool = False
    appError: type[Exception] | None = None
    errorLines: int = 0
    http: bool = False


def sent(data: bytes, *more: Step) -> tuple[Step, ...]:
    """A script that sends ``data`` then runs ``more`` (then reads to EOF)."""
    return (Send(data), *more)


def refused(name: str, data: bytes, status: int, doc: str, **kw: Any) -> Case:
    """A request the server must refuse with ``status`` without the client's EOF."""
    return Case(name, doc, sent(data), status, **kw)


def served(name: str, data: bytes, doc: str, **kw: Any) -> Case:
    """A request the server must serve (200)."""
    return Case(name, doc, sent(data), 200, **kw)


def _cl(value: bytes) -> bytes:
    """The deepthought request with another CONTENT_LENGTH value."""
    block = DEEPTHOUGHT_BLOCK.replace(
        b"CONTENT_LENGTH\x0027\x00", b"CONTENT_LENGTH\x00"
    )
    block = block.replace(
        b"CONTENT_LENGTH\x00", b"CONTENT_LENGTH\x00" + value + b"\x00"
    )
    return deepthought(block)


def _variables(**variables: bytes) -> list[tuple[bytes, bytes]]:
    return [(name.encode("latin-1"), value) for name, value in variables.items()]


_PAD = 65536 - len(headerBlock([(b"CONTENT_LENGTH", b"0"), (b"SCGI", b"1")]))
_PAD -= len(b"HTTP_X_PAD\x00\x00")
_FULL_BLOCK = headerBlock(
    [(b"CONTENT_LENGTH", b"0"), (b"SCGI", b"1"), (b"HTTP_X_PAD", b"p" * _PAD)]
)
assert len(_FULL_BLOCK) == 65536
_MIB_BLOCK = headerBlock(
    [(b"CONTENT_LENGTH", b"0"), (b"SCGI", b"1"), (b"HTTP_X_PAD", b"p" * MIB)]
)

SPEC_CASES: list[Case] = [
    # scgi-spec.md §3 and §5, items 1, 8, 13: valid requests.
    served(
        "deepthought",
        DEEPTHOUGHT,
        "The specification's example request, in one piece, gets ``42``.",
        body=b"42",
        unix=True,
    ),
    Case(
        "deepthoughtSplitLength",
        "A length prefix split across reads (``7`` then ``0:...``) parses the same.",
        (Send(DEEPTHOUGHT[:1]), Pause(0.02), Send(DEEPTHOUGHT[1:])),
        200,
        body=b"42",
        slow=True,
    ),
    Case(
        "deepthoughtByteByByte",
        "The example sent one byte at a time is served the same.",
        tuple(
            step
            for index in range(len(DEEPTHOUGHT))
            for step in (Send(DEEPTHOUGHT[index : index + 1]), Pause(0.001))
        ),
        200,
        body=b"42",
        slow=True,
    ),
    served(
        "bodyLongerThanContentLength",
        DEEPTHOUGHT + b"GET /smuggled HTTP/1.1\r\n\r\n",
        "Bytes after CONTENT_LENGTH never reach the application (it answers 42 only "
        "to exactly the declared body).",
        body=b"42",
    ),
    served(
        "emptyLastValue",
        deepthought(DEEPTHOUGHT_BLOCK + b"QUERY_STRING\x00\x00"),
        "An empty last value (``QUERY_STRING\\0\\0``, sent by nginx) is accepted.",
        body=b"42",
    ),
    served(
        "minimal",
        MINIMAL,
        "The minimal request (CONTENT_LENGTH and SCGI only) is served as ``GET /``.",
        body=b"ok",
    ),
    served(
        "headerBlockAtLimit",
        netstring(_FULL_BLOCK),
        "A header block of exactly 64 KiB, the default limit, is served.",
        body=b"ok",
    ),
    # Item 2: no colon, endless digits, garbage, other protocols.
    refused(
        "endlessDigits",
        b"9" * 9000,
        431,
        "Endless digits are refused with 431 as soon as they exceed the limit.",
    ),
    refused(
        "garbage",
        b"A" * 9000,
        400,
        "A first byte that is not a digit is refused with 400 at once.",
    ),
    refused(
        "tlsClientHello",
        clientHello(),
        400,
        "A TLS ClientHello sent to the SCGI port gets 400, not a hang.",
        unix=True,
    ),
    refused(
        "httpRequest",
        b"GET / HTTP/1.1\r\nHost: example.test\r\nUser-Agent: curl\r\n\r\n",
        400,
        "An HTTP/1.1 request sent to the SCGI port gets an HTTP/1.0 400 naming SCGI.",
        http=True,
        contains=(b"this port speaks SCGI",),
    ),
    refused(
        "http2Preface",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        400,
        "The HTTP/2 connection preface gets an HTTP/1.0 400 naming SCGI.",
        http=True,
        contains=(b"this port speaks SCGI",),
    ),
    refused(
        "nulBytes",
        b"\x00" * 100,
        400,
        "NUL bytes instead of a length prefix get 400.",
    ),
    # Item 3: a huge declared length, and the 1 MiB header block.
    refused(
        "hugeLength",
        b"99999999999999999999:",
        431,
        "A huge declared length is refused with 431 before anything is buffered.",
    ),
    Case(
        "oneMebibyteHeaderBlock",
        "A 1 MiB header block gets 431 as soon as its length digits are read: the "
        "answer arrives before the block is sent; the server then drains the block "
        "and closes without a reset.",
        (
            Send(b"%d:" % len(_MIB_BLOCK)),
            ReadResponse(),
            Send(_MIB_BLOCK + b","),
            ShutdownWrite(),
        ),
        431,
        unix=True,
    ),
    refused(
        "oneMebibyteHeaderBlockAtOnce",
        netstring(_MIB_BLOCK),
        431,
        "A 1 MiB header block sent in one go gets 431, and no reset.",
    ),
    refused(
        "headerBlockOverLimit",
        netstring(_FULL_BLOCK + b"X\x00\x00"),
        431,
        "A header block one variable over 64 KiB gets 431.",
    ),
    refused(
        "tooManyVariables",
        buildRequest([(b"V%d" % index, b"") for index in range(600)]),
        431,
        "More than 500 variables get 431.",
    ),
    # Item 4: non-canonical lengths.
    refused(
        "leadingZero",
        b"0" + DEEPTHOUGHT,
        400,
        "A length with a leading zero (``070:``) gets 400.",
    ),
    refused(
        "plusSign",
        b"+" + DEEPTHOUGHT,
        400,
        "A length with a sign (``+70:``) gets 400.",
    ),
    refused(
        "leadingSpace",
        b" " + DEEPTHOUGHT,
        400,
        "A length with a leading space gets 400.",
    ),
    refused(
        "underscore",
        b"7_0:" + DEEPTHOUGHT[3:],
        400,
        "A length with an underscore (``7_0:``) gets 400.",
    ),
    refused(
        "emptyLength",
        b":" + DEEPTHOUGHT[3:],
        400,
        "An empty length (``:``) gets 400.",
    ),
    refused(
        "emptyNetstring",
        b"0:,",
        400,
        "The empty netstring ``0:,`` gets 400 (no CONTENT_LENGTH).",
    ),
    # Items 5 to 7: framing.
    refused(
        "badTerminator",
        DEEPTHOUGHT[:73] + b"@" + DEEPTHOUGHT[74:],
        400,
        "A block followed by ``@`` instead of ``,`` gets 400.",
    ),
    refused(
        "notNulTerminated",
        deepthought(DEEPTHOUGHT_BLOCK[:-1]),
        400,
        "A block whose last string is cut off (no final NUL) gets 400.",
    ),
    refused(
        "stringPastLength",
        b"60:" + DEEPTHOUGHT[3:],
        400,
        "A string running past the declared length gets 400 (the terminator is "
        "wrong); nothing is read past the length.",
    ),
    refused(
        "oddStrings",
        deepthought(DEEPTHOUGHT_BLOCK.replace(b"POST\x00", b"")),
        400,
        "An odd number of strings gets 400.",
    ),
    refused(
        "emptyName",
        deepthought(DEEPTHOUGHT_BLOCK + b"\x00value\x00"),
        400,
        "An empty variable name gets 400.",
    ),
    # Item 9: duplicates.
    refused(
        "duplicateSCGI",
        deepthought(DEEPTHOUGHT_BLOCK + b"SCGI\x001\x00"),
        400,
        "A repeated CGI name (``SCGI``) gets 400.",
    ),
    refused(
        "duplicateContentLength",
        deepthought(DEEPTHOUGHT_BLOCK + b"CONTENT_LENGTH\x0027\x00"),
        400,
        "A second CONTENT_LENGTH (a user ``scgi_param``) gets 400.",
    ),
    served(
        "duplicateHTTPMerged",
        buildRequest(
            [
                *nginxVariables(b"/echo"),
                (b"HTTP_X_FOO", b"one"),
                (b"HTTP_COOKIE", b"a=1"),
                (b"HTTP_X_FOO", b"two"),
                (b"HTTP_COOKIE", b"b=2"),
            ]
        ),
        "Repeated ``HTTP_*`` names (nginx 1.22) are merged: ``, `` and ``; ``.",
        contains=(b"\nx-foo=one, two\n", b"\ncookie=a=1; b=2"),
    ),
    # Items 10 and 11: CONTENT_LENGTH and SCGI.
    refused(
        "contentLengthMissing",
        deepthought(DEEPTHOUGHT_BLOCK.replace(b"CONTENT_LENGTH\x0027\x00", b"")),
        400,
        "A request without CONTENT_LENGTH gets 400.",
    ),
    refused(
        "contentLengthNotFirst",
        deepthought(
            b"SCGI\x001\x00CONTENT_LENGTH\x0027\x00"
            b"REQUEST_METHOD\x00POST\x00REQUEST_URI\x00/deepthought\x00"
        ),
        400,
        "CONTENT_LENGTH not first gets 400.",
    ),
    refused("contentLengthEmpty", _cl(b""), 400, "An empty CONTENT_LENGTH gets 400."),
    refused(
        "contentLengthNegative", _cl(b"-1"), 400, "CONTENT_LENGTH ``-1`` gets 400."
    ),
    refused("contentLengthPlus", _cl(b"+27"), 400, "CONTENT_LENGTH ``+27`` gets 400."),
    refused("contentLengthSpace", _cl(b" 27"), 400, "CONTENT_LENGTH `` 27`` gets 400."),
    refused(
        "contentLengthUnderscore", _cl(b"2_7"), 400, "CONTENT_LENGTH ``2_7`` gets 400."
    ),
    refused(
        "contentLengthUnicodeDigit",
        _cl("²7".encode()),
        400,
        "CONTENT_LENGTH with a non-ASCII digit gets 400.",
    ),
    refused(
        "contentLengthHuge",
        _cl(b"9" * 30),
        413,
        "A CONTENT_LENGTH larger than any body gets 413.",
    ),
    refused(
        "scgiMissing",
        deepthought(DEEPTHOUGHT_BLOCK.replace(b"SCGI\x001\x00", b"")),
        400,
        "A request without ``SCGI`` gets 400.",
    ),
    refused(
        "scgiVersion2",
        deepthought(DEEPTHOUGHT_BLOCK.replace(b"SCGI\x001", b"SCGI\x002")),
        400,
        "``SCGI=2`` gets 400.",
    ),
    # Item 12: premature EOF, and connect-and-close.
    Case(
        "connectAndClose",
        "A connection closed at once with nothing sent: no bytes, no log line.",
        (Close(),),
        ANY,
    ),
    Case(
        "connectAndHalfClose",
        "A connection half-closed with nothing sent gets a clean close, no bytes.",
        (ShutdownWrite(),),
        CLEAN_CLOSE,
        unix=True,
    ),
    Case(
        "eofInLength",
        "EOF in the length prefix: a clean close with no bytes.",
        (Send(b"7"), ShutdownWrite()),
        CLEAN_CLOSE,
    ),
    Case(
        "eofInHeaders",
        "EOF in the header block: a clean close with no bytes.",
        (Send(DEEPTHOUGHT[:40]), ShutdownWrite()),
        CLEAN_CLOSE,
    ),
    Case(
        "eofInBody",
        "EOF one byte before the end of the body: a clean close with no bytes.",
        (Send(DEEPTHOUGHT[:-1]), ShutdownWrite()),
        CLEAN_CLOSE,
    ),
    # Item 15: missing or odd CGI variables.
    served(
        "noCGIVariables",
        buildRequest(_variables(REQUEST_URI=b"/info")),
        "Only CONTENT_LENGTH, SCGI and REQUEST_URI: every accessor has a default.",
    ),
    served(
        "noRequestURI",
        buildRequest(_variables(SCRIPT_NAME=b"/in", PATH_INFO=b"fo", QUERY_STRING=b"")),
        "Without REQUEST_URI the target is rebuilt from SCRIPT_NAME and PATH_INFO.",
        contains=(b"b'http://localhost/info'",),
    ),
    served(
        "noRequestMethod",
        buildRequest(nginxVariables(b"/info", REQUEST_METHOD=None)),
        "A missing REQUEST_METHOD defaults to GET.",
    ),
    served(
        "oddServerVariables",
        buildRequest(
            nginxVariables(
                b"/info",
                SERVER_NAME=b"",
                SERVER_PORT=b"",
                REMOTE_PORT=b"port",
                REMOTE_ADDR=b"unix:",
                SERVER_PROTOCOL=b"SPDY/9",
                QUERY_STRING=None,
                HTTP_HOST=None,
                HTTPS=b"maybe",
            )
        ),
        "Empty SERVER_NAME/SERVER_PORT, non-numeric REMOTE_PORT, a unix REMOTE_ADDR, "
        "an unknown SERVER_PROTOCOL and no Host header are served with defaults.",
    ),
    served(
        "latin1ServerName",
        buildRequest(
            nginxVariables(b"/info", SERVER_NAME=b"\xe9t\xe9", HTTP_HOST=None)
        ),
        "A Latin-1 SERVER_NAME does not break URL building.",
    ),
    served(
        "absoluteRequestURI",
        get(b"http://example.test/echo?q=1"),
        "An absolute-form REQUEST_URI is reduced to its path.",
        contains=(b"uri=/echo?q=1\n",),
    ),
    # Item 16 and the issue: non-UTF-8 bytes.
    served(
        "nonUTF8RequestURI",
        get(b"/echo/caf\xe9/\xff\xfe?q=\x80"),
        "Non-UTF-8 bytes in REQUEST_URI are served, the bytes kept.",
        contains=(b"uri=/echo/caf\xe9/\xff\xfe?q=\x80\n",),
    ),
    served(
        "nonUTF8Header",
        get(b"/echo", HTTP_X_A=b"\xff\xfe\x80 caf\xe9"),
        "Non-UTF-8 bytes in a header value are served, the bytes kept.",
        contains=(b"\nx-a=\xff\xfe\x80 caf\xe9\n",),
    ),
    # The issue: header names and values.
    refused(
        "headerNameParenthesis",
        get(b"/echo", **{"HTTP_X(Y": b"v"}),
        400,
        "A header name that is not a token (``HTTP_X(Y``) gets 400.",
    ),
    refused(
        "headerNameSpace",
        get(b"/echo", **{"HTTP_X Y": b"v"}),
        400,
        "A header name with a space gets 400.",
    ),
    refused(
        "headerNameColon",
        get(b"/echo", **{"HTTP_X:Y": b"v"}),
        400,
        "A header name with a colon gets 400.",
    ),
    refused(
        "headerNameHighByte",
        buildRequest([*nginxVariables(b"/echo"), (b"HTTP_X\xe9", b"v")]),
        400,
        "A header name with a non-ASCII byte gets 400.",
    ),
    refused(
        "headerNameEmpty",
        get(b"/echo", HTTP_=b"v"),
        400,
        "``HTTP_`` alone (an empty header name) gets 400.",
    ),
    served(
        "oddNonHeaderName",
        buildRequest([*nginxVariables(b"/ok"), (b"X(Y \xe9", b"v")]),
        "A variable that is not ``HTTP_*`` may have any name: it is no header.",
        body=b"ok",
    ),
    refused(
        "crlfInHeaderValue",
        get(b"/echo", HTTP_X_A=b"a\r\nSet-Cookie: injected=1"),
        400,
        "CR/LF in a header value gets 400.",
    ),
    refused(
        "lfInHeaderValue",
        get(b"/echo", HTTP_X_A=b"a\nb"),
        400,
        "A bare LF in a header value gets 400.",
    ),
    refused(
        "crInHeaderValue",
        get(b"/echo", HTTP_X_A=b"a\rb"),
        400,
        "A bare CR in a header value gets 400.",
    ),
    refused(
        "lfInContentType",
        buildRequest(
            nginxVariables(
                b"/echo", REQUEST_METHOD=b"POST", CONTENT_TYPE=b"text/plain\nX: y"
            ),
            b"body",
        ),
        400,
        "LF in CONTENT_TYPE gets 400; the body is drained.",
    ),
    Case(
        "crlfInRequestURI",
        "CR/LF in REQUEST_URI reaches routing only (404), never the response head.",
        sent(get(b"/ok\r\nSet-Cookie: injected=1")),
        404,
    ),
    # Application bugs: no header injection reaches the wire.
    served(
        "applicationHeaderCRLF",
        get(b"/crlf-header"),
        "CR/LF in a header value the application sets become spaces (Twisted "
        "sanitises them): one header line, no injected header, the real body.",
        body=b"ok",
        headers=((b"X-A", b"a Set-Cookie: injected=1  smuggled"),),
    ),
    Case(
        "applicationHeaderNUL",
        "A header value with NUL from the application cannot be sent: 500, one "
        "error line naming the request, and the application's body is dropped.",
        sent(get(b"/nul-header")),
        500,
        contains=(b"invalid response",),
        errorLines=1,
    ),
    Case(
        "applicationHeaderNameCRLF",
        "A header name with CR/LF is refused by Twisted inside the application: "
        "Twisted's 500 page, its own logged failure, nothing injected.",
        sent(get(b"/bad-header-name")),
        500,
        appError=InvalidHeaderName,
    ),
    refused(
        "malformedMultipart",
        buildRequest(
            nginxVariables(
                b"/echo", REQUEST_METHOD=b"POST", CONTENT_TYPE=b"multipart/form-data"
            ),
            b"not a multipart body",
        ),
        400,
        "A form body Twisted cannot parse gets 400 (Request's bad-request path).",
    ),
    # Item 18: half-close after a complete request, and aborts in every phase.
    Case(
        "halfCloseWhilePending",
        "A half-close right after a complete request means the client went away "
        "(the default): the application's notifyFinish errbacks, nothing is sent.",
        (Send(get(b"/later?delay=2")), ShutdownWrite()),
        CLEAN_CLOSE,
        finishes=("lost",),
        unix=True,
    ),
    Case(
        "halfCloseAfterSynchronousResponse",
        "A response rendered synchronously is on its way before the half-close is "
        "read: it is delivered.",
        (Send(get(b"/ok")), ShutdownWrite()),
        200,
        body=b"ok",
    ),
    Case(
        "abortInLength",
        "A reset in the length prefix: the server closes quietly.",
        (Send(b"7"), Pause(0.01), Abort()),
        ANY,
    ),
    Case(
        "abortInHeaders",
        "A reset in the header block: the server closes quietly.",
        (Send(DEEPTHOUGHT[:40]), Pause(0.01), Abort()),
        ANY,
    ),
    Case(
        "abortInBody",
        "A reset in the body: the server closes quietly; the request never runs.",
        (Send(DEEPTHOUGHT[:-10]), Pause(0.01), Abort()),
        ANY,
    ),
    Case(
        "abortWhilePending",
        "A reset while a NOT_DONE_YET resource is pending: its notifyFinish errbacks.",
        (Send(get(b"/pending")), WaitDispatched(), Abort()),
        ANY,
        finishes=("lost",),
        unix=True,
    ),
    Case(
        "abortMidResponse",
        "A reset in the middle of a large streamed response: notifyFinish errbacks "
        "and the producer stops.",
        (Send(get(b"/stream")), ReadAtLeast(256 * 1024), Abort()),
        ANY,
        finishes=("lost",),
    ),
    Case(
        "abortWhileDraining",
        "A reset while the server drains a refused request: it closes quietly.",
        (Send(b"A"), ReadResponse(), Send(b"B" * 1000), Abort()),
        ANY,
    ),
    Case(
        "streamedResponse",
        "A 1 MiB streamed HTTP/1.1 response arrives whole, without chunk framing.",
        sent(get(b"/stream?size=1048576")),
        200,
        body=b"x" * MIB,
        finishes=("finished",),
    ),
]

REGRESSION_CASES: list[Case] = [
    # Bugs the fuzzing found; kept out of the memory rounds, so that a failure
    # names the bug and not a leak.
    served(
        "nonUTF8QueryWithBody",
        buildRequest(
            nginxVariables(b"/echo?q=caf\xc3\xa9&\xff", REQUEST_METHOD=b"POST"),
            b"body",
        ),
        "A POST whose REQUEST_URI holds raw non-UTF-8 bytes in the query is served "
        "(the resource lookup before the body must not decode the query as ASCII).",
        contains=(b"uri=/echo?q=caf\xc3\xa9&\xff\n", b"body=body"),
    ),
]

CASES: dict[str, Case] = {case.name: case for case in SPEC_CASES + REGRESSION_CASES}
assert len(CASES) == len(SPEC_CASES) + len(REGRESSION_CASES), "names must be unique"

SCGI_LOGGERS = "scgi_twisted"


class HostileTestCase(TestCase):
    """Run cases against a :class:`_TrackingSite` listening on TCP and unix sockets."""

    siteOptions: ClassVar[dict[str, Any]] = {}

    def setUp(self) -> Deferred[None]:  # type: ignore[override]
        self.events = collectLogEvents(self)
        self.app = App()
        self.addCleanup(self.app.cancelCalls)
        self.site = _TrackingSite(self.app.root, **self.siteOptions)
        directory = tempfile.mkdtemp(prefix="scgi-hostile-")
        self.addCleanup(shutil.rmtree, directory, True)
        self.unixPath = f"{directory}/scgi.sock"
        # One client thread: the clients' own memory stays the same every round.
        self.clientThread = ThreadPool(minthreads=1, maxthreads=1, name="client")
        self.clientThread.start()
        self.addCleanup(self.clientThread.stop)
        return Deferred.fromCoroutine(self._listen())

    async def _listen(self) -> None:
        tcp: IListeningPort = await serverFromString(
            _reactor, "tcp:0:interface=127.0.0.1"
        ).listen(self.site)
        self.addCleanup(tcp.stopListening)
        unix: IListeningPort = await serverFromString(
            _reactor, f"unix:{self.unixPath}"
        ).listen(self.site)
        self.addCleanup(unix.stopListening)
        host = tcp.getHost()
        self.tcpAddress = (socket.AF_INET, (host.host, host.port))  # type: ignore[attr-defined]
        self.unixAddress = (socket.AF_UNIX, self.unixPath)

    async def client(self, steps: Iterable[Step], unix: bool = False) -> ClientResult:
        """Run a client script in a thread and wait until the server closed."""
        address = self.unixAddress if unix else self.tcpAddress
        target = self.site.built + 1
        result: ClientResult = await deferToThreadPool(
            _reactor,  # type: ignore[arg-type]
            self.clientThread,
            runClient,
            address,
            tuple(steps),
            self.app,
        )
        await self.site.settle(target)
        return result

    async def runCase(self, case: Case, unix: bool = False) -> None:
        """Run one case, check its outcome and logs, then serve a normal GET."""
        self.app.reset()
        mark = len(self.events)
        result = await self.client(case.steps, unix)
        self.checkOutcome(case, result)
        self.checkLogs(case, self.events[mark:])
        del self.events[mark:]  # a logged failure holds the request's frames
        self.assertEqual(list(case.finishes), self.app.finishes, case.name)
        await self.assertServesNormalGet(unix)

    def checkOutcome(self, case: Case, result: ClientResult) -> None:
        """Check what the client read against the case's expectations."""
        label = f"{case.name}: {result.received[:300]!r} ({result.ending})"
        if case.status == ANY:
            self.assertEqual(result.ending, "closed", label)
            return
        self.assertEqual(result.ending, "eof", label)
        if case.status == CLEAN_CLOSE:
            self.assertEqual(result.received, b"", label)
            return
        parse = parseHTTPRefusal if case.http else parseResponse
        response = parse(result.received)
        self.assertEqual(response.status, case.status, label)
        self.assertTrue(response.reason, label)
        length = response.header(b"Content-Length")
        if length is not None:
            self.assertEqual(int(length), len(response.body), label)
        self.assertIsNone(response.header(b"Transfer-Encoding"), label)
        self.assertEqual(response.values(b"Set-Cookie"), [], label)
        if case.body is not None:
            self.assertEqual(response.body, case.body, label)
        for expected in case.contains:
            self.assertIn(expected, response.body, label)
        for name, value in case.headers:
            self.assertEqual(response.values(name), [value], label)

    def checkLogs(self, case: Case, events: list[LogEvent]) -> None:
        """At most one ``scgi_twisted`` line, and no error unless pinned."""
        ours = [
            event
            for event in events
            if str(event.get("log_namespace", "")).startswith(SCGI_LOGGERS)
        ]
        described = [formatEvent(event) for event in ours]
        self.assertLessEqual(len(ours), 1, f"{case.name}: {described}")
        errors = [
            event
            for event in ours
            if event.get("log_level") in (LogLevel.error, LogLevel.critical)
        ]
        self.assertEqual(len(errors), case.errorLines, f"{case.name}: {described}")
        failures = [event for event in events if "log_failure" in event]
        if case.appError is None:
            self.assertEqual(failures, [], case.name)
        else:
            self.assertEqual(len(failures), 1, case.name)
            self.assertEqual(
                [event["log_namespace"] for event in failures],
                ["twisted.web.server.Request"],
            )
            self.assertEqual(len(self.flushLoggedErrors(case.appError)), 1)
        if case.appError is None and case.errorLines == 0:
            levels = [event.get("log_level") for event in events]
            self.assertNotIn(LogLevel.error, levels, case.name)
            self.assertNotIn(LogLevel.critical, levels, case.name)

    async def assertServesNormalGet(self, unix: bool = False) -> None:
        """A normal request is served right after."""
        result = await self.client([Send(get(b"/ok"))], unix)
        self.assertEqual(result.ending, "eof")
        response = parseResponse(result.received)
        self.assertEqual((response.status, response.body), (200, b"ok"))


def _caseTest(case: Case, unix: bool) -> Callable[[HostileTestCase], Deferred[None]]:
    """Build the test method that runs one case."""

    def test(self: HostileTestCase) -> Deferred[None]:
        return Deferred.fromCoroutine(self.runCase(case, unix))

    suffix = " (over a unix socket)" if unix else ""
    test.__doc__ = case.doc + suffix
    return test


def addCases(cls: type[HostileTestCase], cases: Iterable[Case]) -> None:
    """Add a ``test_<name>`` method per case (and ``test_<name>Unix`` if asked)."""
    for case in cases:
        setattr(cls, f"test_{case.name}", _caseTest(case, unix=False))
        if case.unix:
            setattr(cls, f"test_{case.name}Unix", _caseTest(case, unix=True))


class HostileInputTests(HostileTestCase):
    """The default site: every hostile case of the table, on TCP and unix sockets."""


addCases(HostileInputTests, SPEC_CASES + REGRESSION_CASES)


class HostileSuiteSanityTests(TestCase):
    """The table and its checks can fail: they are not vacuous."""

    def test_outcomeCheckRejectsWrongStatus(self) -> None:
        """A 400 where 200 is expected, a reset, or a second response all fail."""
        case = CASES["deepthought"]
        checker = HostileInputTests("test_deepthought")
        good = b"Status: 200 OK\r\nContent-Length: 2\r\n\r\n42"
        checker.checkOutcome(case, ClientResult(good, "eof"))
        for bad in [
            ClientResult(good.replace(b"200 OK", b"400 Bad Request"), "eof"),
            ClientResult(good, "reset"),
            ClientResult(good + good, "eof"),
            ClientResult(b"", "eof"),
            ClientResult(
                good.replace(b"\r\n\r\n", b"\r\nSet-Cookie: a\r\n\r\n"), "eof"
            ),
        ]:
            self.assertRaises(
                (AssertionError, self.failureException, ValueError),
                checker.checkOutcome,
                case,
                bad,
            )

    def test_everySpecItemHasACase(self) -> None:
        """The table names a case for each hostile-input item the issue lists."""
        required = {
            "tlsClientHello",
            "httpRequest",
            "connectAndClose",
            "oneMebibyteHeaderBlock",
            "nonUTF8RequestURI",
            "nonUTF8Header",
            "headerNameParenthesis",
            "crlfInHeaderValue",
            "applicationHeaderCRLF",
            "halfCloseWhilePending",
            "abortInLength",
            "abortInHeaders",
            "abortInBody",
            "abortWhilePending",
            "abortMidResponse",
            "deepthoughtSplitLength",
            "endlessDigits",
            "hugeLength",
            "leadingZero",
            "stringPastLength",
            "badTerminator",
            "oddStrings",
            "emptyName",
            "emptyLastValue",
            "duplicateHTTPMerged",
            "contentLengthMissing",
            "scgiMissing",
            "eofInBody",
            "bodyLongerThanContentLength",
            "oddServerVariables",
        }
        self.assertEqual(required - set(CASES), set())

    def test_clientHelloIsTLS(self) -> None:
        """The ClientHello case really starts with a TLS handshake record."""
        hello = clientHello()
        self.assertEqual(hello[:2], b"\x16\x03")
        self.assertGreater(len(hello), 100)


class OneMebibyteRefusedEarlyTests(HostileTestCase):
    """The 431 for a huge block comes from the digits alone."""

    def test_answerBeforeBlock(self) -> Deferred[None]:
        """Sending only the 1 MiB block's length gets the whole 431 at once.

        The server half-closes its side: the client reads EOF while it still has not
        sent the block, then the server waits for the client's EOF and closes.
        """

        async def run() -> None:
            result = await self.client([Send(b"%d:" % len(_MIB_BLOCK))])
            self.assertEqual(result.ending, "eof")
            self.assertEqual(parseResponse(result.received).status, 431)

        return Deferred.fromCoroutine(run())


class LimitsTests(HostileTestCase):
    """A site with a body limit, strict duplicates and short timeouts."""

    siteOptions: ClassVar[dict[str, Any]] = {
        "max_body_size": 1024,
        "merge_duplicates": False,
        "timeout": 0.3,
        "linger_timeout": 2.0,
    }


addCases(
    LimitsTests,
    [
        refused(
            "bodyTooLarge",
            buildRequest(
                nginxVariables(b"/echo", REQUEST_METHOD=b"POST"), b"b" * (4 * MIB)
            ),
            413,
            "A 4 MiB body over ``max_body_size`` gets 413 before it is read, then "
            "is drained: the close is a FIN, never a reset.",
        ),
        Case(
            "bodyTooLargeAnsweredEarly",
            "The 413 arrives as soon as the header block is read, before the body.",
            (
                Send(buildRequest(nginxVariables(b"/echo"), contentLength=4 * MIB)),
                ReadResponse(),
                Send(b"b" * (4 * MIB)),
            ),
            413,
        ),
        refused(
            "duplicateHTTPStrict",
            buildRequest(
                [
                    *nginxVariables(b"/echo"),
                    (b"HTTP_X_FOO", b"1"),
                    (b"HTTP_X_FOO", b"2"),
                ]
            ),
            400,
            "With ``merge_duplicates=False`` a repeated ``HTTP_*`` name gets 400.",
        ),
        Case(
            "stalledLength",
            "A length prefix that stalls gets 408 after the header deadline.",
            (Send(b"7"),),
            408,
            slow=True,
        ),
        Case(
            "stalledHeaders",
            "A header block that stalls (slowloris) gets 408 after the deadline.",
            (Send(DEEPTHOUGHT[:40]),),
            408,
            slow=True,
        ),
        Case(
            "stalledBody",
            "A body shorter than CONTENT_LENGTH, then silence, gets 408.",
            (Send(DEEPTHOUGHT[:-5]),),
            408,
            slow=True,
        ),
        Case(
            "silentConnection",
            "A connection that sends nothing is closed at the deadline, no bytes.",
            (),
            CLEAN_CLOSE,
            slow=True,
        ),
        served(
            "bodyAtLimit",
            buildRequest(nginxVariables(b"/echo", REQUEST_METHOD=b"POST"), b"b" * 1024),
            "A body of exactly ``max_body_size`` is served.",
            contains=(b"body=" + b"b" * 1024,),
        ),
    ],
)


class HalfCloseTests(HostileTestCase):
    """A site with ``half_close=True``: a read-EOF after the request is no abort."""

    siteOptions: ClassVar[dict[str, Any]] = {"half_close": True}


addCases(
    HalfCloseTests,
    [
        Case(
            "halfCloseAfterRequest",
            "With ``half_close=True`` the response to a half-closed request is "
            "delivered.",
            (Send(get(b"/later")), ShutdownWrite()),
            200,
            body=b"later",
            finishes=("finished",),
            unix=True,
        ),
        Case(
            "eofInBodyStillPremature",
            "Even with ``half_close=True`` an EOF inside the body is premature: a "
            "clean close with no bytes.",
            (Send(DEEPTHOUGHT[:-1]), ShutdownWrite()),
            CLEAN_CLOSE,
        ),
        Case(
            "abortWhilePendingHalfClose",
            "A reset still reaches a pending resource with ``half_close=True``.",
            (Send(get(b"/pending")), WaitDispatched(), Abort()),
            ANY,
            finishes=("lost",),
        ),
    ],
)


def residentMemory() -> int:
    """Return this process's resident set size, in bytes."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def liveObjects() -> tuple[int, int]:
    """Return how many channels and requests are alive after a full collection."""
    gc.collect()
    objects = gc.get_objects()
    channels = sum(isinstance(obj, SCGIChannel) for obj in objects)
    requests = sum(isinstance(obj, Request) for obj in objects)
    return channels, requests


class MemoryTests(HostileTestCase):
    """Memory stays flat across the whole suite, replayed many times.

    The access log goes to ``/dev/null``: without a log file, and before logging
    begins (under pytest), Twisted buffers every log event in memory.
    """

    siteOptions: ClassVar[dict[str, Any]] = {"logPath": os.devnull}

    rounds = 30
    warmup = 3
    allowedGrowth = 4 * MIB

    def test_memoryFlat(self) -> Deferred[None]:
        """Replaying the fast cases 30 times leaves memory flat and nothing alive.

        After three warm-up rounds, 30 more rounds of every fast case of the default
        table grow the resident set by less than 4 MiB and leave no more channels
        or requests alive than before.
        """
        # A failure logged by the application holds its request in the log
        # buffer; that is the logging system's memory, not the server's.
        cases = [case for case in SPEC_CASES if not case.slow and case.appError is None]

        async def run() -> None:
            for _ in range(self.warmup):
                for case in cases:
                    await self.runCase(case)
            channelsBefore, requestsBefore = liveObjects()
            before = residentMemory()
            for _ in range(self.rounds):
                for case in cases:
                    await self.runCase(case)
            channelsAfter, requestsAfter = liveObjects()
            after = residentMemory()
            # Compared with before, not with zero: a failed earlier test may keep
            # its request alive in its reported traceback.
            self.assertEqual(
                (channelsAfter, requestsAfter), (channelsBefore, requestsBefore)
            )
            self.assertLess(
                after - before,
                self.allowedGrowth,
                f"RSS grew from {before} to {after} over {self.rounds} rounds",
            )

        return Deferred.fromCoroutine(run())
