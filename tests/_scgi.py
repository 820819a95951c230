"""Shared test helpers: build SCGI requests, read CGI responses, drive a channel.

Requests: :func:`buildRequest` frames variables and a body the way every frontend
does (``CONTENT_LENGTH`` first, then ``SCGI=1``), :func:`nginxVariables` gives the
variables stock nginx sends for a request line, and :func:`rawRequest` frames exactly
the pairs it is given, for malformed requests.

Responses: :func:`parseResponse` reads what the channel wrote to its transport
strictly (``Status:`` first, CRLF everywhere, a blank line) into a
:class:`CGIResponse`.

Connections: :func:`connect` builds the real channel of a site on a
:class:`HalfCloseTransport` (a ``StringTransport`` that also records
``loseWriteConnection``), and :func:`collectLogEvents` records what is logged.

Applications: :class:`WebRequest` is the typed surface of ``twisted.web.server.Request``
that tests use (Twisted's own is untyped), and :class:`Recorder` is a leaf resource
that keeps a :class:`Seen` snapshot of every request it renders.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any, Protocol

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress, IProducer
from twisted.internet.testing import StringTransport
from twisted.logger import ILogObserver, LogEvent, LogLevel, globalLogPublisher
from twisted.python.urlpath import URLPath
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource
from zope.interface import provider

from scgi_twisted import SCGIChannel, SCGISite, SCGIVariables, getSCGIVariables

__all__ = [
    "CGIResponse",
    "HalfCloseTransport",
    "Pairs",
    "Recorder",
    "Seen",
    "WebRequest",
    "buildRequest",
    "collectLogEvents",
    "connect",
    "headerBlock",
    "netstring",
    "nginxVariables",
    "parseResponse",
    "rawRequest",
    "warningsAndErrors",
]

Pairs = Sequence[tuple[bytes, bytes]]
"""SCGI variables as ``(name, value)`` pairs, in the order they are sent."""

Variables = Pairs | Mapping[str, bytes]
"""Variables as pairs or as a mapping from names (text) to values."""


# Building requests.


def headerBlock(pairs: Pairs) -> bytes:
    """Encode name/value pairs as an SCGI header block (without the netstring)."""
    return b"".join(name + b"\x00" + value + b"\x00" for name, value in pairs)


def netstring(block: bytes) -> bytes:
    """Frame a header block as a netstring, computing its length."""
    return b"%d:%s," % (len(block), block)


def rawRequest(pairs: Pairs, body: bytes = b"") -> bytes:
    """Frame exactly ``pairs`` (nothing added) and append ``body``."""
    return netstring(headerBlock(pairs)) + body


def _pairs(variables: Variables) -> list[tuple[bytes, bytes]]:
    """Turn variables given either way into pairs."""
    if isinstance(variables, Mapping):
        return [(name.encode("latin-1"), value) for name, value in variables.items()]
    return list(variables)


def buildRequest(
    variables: Variables = (), body: bytes = b"", *, contentLength: int | None = None
) -> bytes:
    """Build a valid request: ``CONTENT_LENGTH``, ``SCGI=1``, the variables, the body.

    :param variables: the other variables, in order; repeated names are kept.
    :param body: the bytes sent after the header block.
    :param contentLength: the declared length, if not ``len(body)``.
    """
    declared = len(body) if contentLength is None else contentLength
    pairs = [(b"CONTENT_LENGTH", b"%d" % declared), (b"SCGI", b"1")]
    pairs.extend(_pairs(variables))
    return rawRequest(pairs, body)


def nginxVariables(
    uri: bytes = b"/", /, **overrides: bytes | None
) -> list[tuple[bytes, bytes]]:
    """Return what Debian's nginx ``scgi_params`` send for ``GET uri HTTP/1.1``.

    ``QUERY_STRING`` and ``DOCUMENT_URI`` are taken from ``uri``.  Each keyword, named
    as the variable, replaces it (``REQUEST_METHOD=b"POST"``) or is appended when
    nginx would not send it (``SCRIPT_NAME=b"/app"``); a ``None`` value leaves the
    variable out.
    """
    for name in overrides:
        assert name == name.upper(), f"{name!r} is not a CGI variable name"
    path, _, query = uri.partition(b"?")
    variables: dict[str, bytes | None] = {
        "REQUEST_METHOD": b"GET",
        "REQUEST_URI": uri,
        "QUERY_STRING": query,
        "CONTENT_TYPE": b"",
        "DOCUMENT_URI": path,
        "DOCUMENT_ROOT": b"/usr/share/nginx/html",
        "SERVER_PROTOCOL": b"HTTP/1.1",
        "REQUEST_SCHEME": b"http",
        "REMOTE_ADDR": b"203.0.113.9",
        "REMOTE_PORT": b"51234",
        "SERVER_PORT": b"8080",
        "SERVER_NAME": b"localhost",
        "HTTP_HOST": b"example.test",
    }
    variables.update(overrides)
    return [
        (name.encode("latin-1"), value)
        for name, value in variables.items()
        if value is not None
    ]


# Reading responses.


@dataclass(frozen=True)
class CGIResponse:
    """A CGI response as the channel wrote it.

    :ivar status: the code of the ``Status:`` line.
    :ivar reason: its reason phrase.
    :ivar headers: the other header lines, as ``(name, value)``, in order.
    :ivar body: everything after the blank line.
    """

    status: int
    reason: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes

    def values(self, name: bytes) -> list[bytes]:
        """Return every value of the header ``name`` (any case), in order."""
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]

    def header(self, name: bytes) -> bytes | None:
        """Return the one value of the header ``name``, or ``None`` if absent.

        :raises AssertionError: if the header is repeated.
        """
        found = self.values(name)
        assert len(found) <= 1, f"{name!r} is repeated: {found!r}"
        return found[0] if found else None


def parseResponse(data: bytes) -> CGIResponse:
    """Parse a CGI response strictly.

    The first line must be ``Status: <3 digits> <reason>``, every head line must end
    with CRLF and hold no other CR or LF, each header must be ``Name: value``, and a
    blank line must end the head.

    :raises ValueError: if ``data`` is not such a response.
    """
    head, separator, body = data.partition(b"\r\n\r\n")
    if not separator:
        raise ValueError(f"no blank line ends the head: {data[:200]!r}")
    lines = head.split(b"\r\n")
    for line in lines:
        if b"\r" in line or b"\n" in line:
            raise ValueError(f"a bare CR or LF in the head: {line!r}")
    first = lines[0]
    if not first.startswith(b"Status: "):
        raise ValueError(f"the first line is not a Status line: {first!r}")
    code, _, reason = first[len(b"Status: ") :].partition(b" ")
    if len(code) != 3 or not code.isdigit():
        raise ValueError(f"the status is not three digits: {first!r}")
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(b": ")
        if not colon or not name or b" " in name:
            raise ValueError(f"not a header line: {line!r}")
        headers.append((name, value))
    return CGIResponse(int(code), reason, tuple(headers), body)


def parseHTTPRefusal(data: bytes) -> CGIResponse:
    """Parse the HTTP/1.0 answer to an HTTP request sent to the SCGI port, strictly.

    The first line must be ``HTTP/1.0 <3 digits> <reason>``; the rest is checked as
    :func:`parseResponse` checks a CGI response's head.

    :raises ValueError: if ``data`` is not such a response.
    """
    first, separator, rest = data.partition(b"\r\n")
    version, _, status = first.partition(b" ")
    if version != b"HTTP/1.0" or not separator:
        raise ValueError(f"the first line is not an HTTP/1.0 status line: {first!r}")
    return parseResponse(b"Status: " + status + b"\r\n" + rest)


# Driving a channel.


class HalfCloseTransport(StringTransport):
    """A ``StringTransport`` that can half-close its write side, as TCP can.

    :ivar writeClosed: whether ``loseWriteConnection`` was called.
    """

    writeClosed = False

    def loseWriteConnection(self) -> None:
        """Record the half-close; the peer may still send."""
        self.writeClosed = True


def connect(
    site: SCGISite, peer: IAddress | None = None
) -> tuple[SCGIChannel, HalfCloseTransport]:
    """Build the site's channel for a new connection and connect it to a transport.

    :param site: the site whose ``buildProtocol`` makes the channel.
    :param peer: the address given to ``buildProtocol``.
    :returns: the channel and its transport.
    """
    channel = site.buildProtocol(peer)
    assert channel is not None, "the site refused the connection"
    transport = HalfCloseTransport()
    channel.makeConnection(transport)
    return channel, transport


def collectLogEvents(case: SynchronousTestCase) -> list[LogEvent]:
    """Record every event logged until the end of the test.

    :param case: the running test, whose cleanup stops the recording.
    :returns: the list the events are appended to.
    """
    events: list[LogEvent] = []

    @provider(ILogObserver)
    def observe(event: LogEvent) -> None:
        events.append(event)

    globalLogPublisher.addObserver(observe)
    case.addCleanup(globalLogPublisher.removeObserver, observe)
    return events


def warningsAndErrors(events: Iterable[LogEvent]) -> list[dict[str, Any]]:
    """Return the events logged at ``warn`` level or above."""
    levels = (LogLevel.warn, LogLevel.error, LogLevel.critical)
    return [dict(event) for event in events if event.get("log_level") in levels]


# Applications.


class WebRequest(Protocol):
    """The part of ``twisted.web.server.Request`` the tests use, typed."""

    method: bytes
    uri: bytes
    path: bytes
    args: dict[bytes, list[bytes]]
    clientproto: bytes
    prepath: list[bytes]
    postpath: list[bytes]
    sitepath: list[bytes]
    requestHeaders: Headers
    responseHeaders: Headers
    received_cookies: dict[bytes, bytes]
    content: IO[bytes]
    code: int
    sentLength: int
    chunked: int
    finished: int

    def getClientAddress(self) -> IAddress:
        """Return the client's address."""

    def getHost(self) -> IPv4Address:
        """Return the address the client addressed."""

    def isSecure(self) -> bool:
        """Return whether the client used TLS."""

    def getRequestHostname(self) -> bytes:
        """Return the host name the client asked for."""

    def getHeader(self, key: bytes) -> bytes | None:
        """Return the last value of a request header."""

    def getCookie(self, key: bytes) -> bytes | None:
        """Return a request cookie."""

    def prePathURL(self) -> bytes:
        """Return the URL up to and including ``prepath``."""

    def URLPath(self) -> URLPath:
        """Return the request's URL as a ``URLPath``."""

    def getSession(self) -> Any:
        """Return the request's session, making one if needed."""

    def setResponseCode(self, code: int, message: bytes | None = None) -> None:
        """Set the response status."""

    def setHeader(self, name: bytes, value: bytes) -> None:
        """Set a response header."""

    def redirect(self, url: bytes) -> None:
        """Answer 302 with a Location."""

    def write(self, data: bytes) -> None:
        """Write response body bytes."""

    def finish(self) -> None:
        """End the response."""

    def loseConnection(self) -> None:
        """Close the connection the request came on."""

    def notifyFinish(self) -> Deferred[None]:
        """Return a Deferred that fires when the response ends or fails."""

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        """Register a producer of the response body."""

    def unregisterProducer(self) -> None:
        """Unregister the producer."""


@dataclass
class Seen:
    """What a request looked like while it was rendered.

    Some answers change once the request has finished (``isSecure()`` becomes false,
    the channel and the body file go away), so they are taken during ``render``.
    ``urlPath`` is ``None`` when the Host header makes no URL (``[::1``).
    """

    request: WebRequest
    method: bytes
    uri: bytes
    path: bytes
    args: dict[bytes, list[bytes]]
    clientproto: bytes
    headers: dict[bytes, list[bytes]]
    cookies: dict[bytes, bytes]
    client: IAddress
    host: IPv4Address
    secure: bool
    prepath: list[bytes]
    postpath: list[bytes]
    prePathURL: bytes
    urlPath: str | None
    content: bytes
    contentFile: IO[bytes]
    variables: SCGIVariables | None

    @classmethod
    def of(cls, request: WebRequest) -> Seen:
        """Take the snapshot of ``request`` now."""
        content = request.content.read()
        request.content.seek(0)
        return cls(
            request=request,
            method=request.method,
            uri=request.uri,
            path=request.path,
            args=dict(request.args),
            clientproto=request.clientproto,
            headers={
                name: list(values)
                for name, values in request.requestHeaders.getAllRawHeaders()
            },
            cookies=dict(request.received_cookies),
            client=request.getClientAddress(),
            host=request.getHost(),
            secure=request.isSecure(),
            prepath=list(request.prepath),
            postpath=list(request.postpath),
            prePathURL=request.prePathURL(),
            urlPath=_urlPath(request),
            content=content,
            contentFile=request.content,
            variables=getSCGIVariables(request),
        )


def _urlPath(request: WebRequest) -> str | None:
    """Return ``str(request.URLPath())``, or ``None`` for a Host it cannot parse."""
    try:
        return str(request.URLPath())
    except ValueError:
        return None


class Recorder(Resource):
    """A leaf resource that answers ``body`` and keeps a :class:`Seen` per request.

    :ivar seen: the snapshots, in the order the requests were rendered.
    """

    isLeaf = True

    def __init__(self, body: bytes = b"ok") -> None:
        """Answer every request with ``body``."""
        super().__init__()
        self.body = body
        self.seen: list[Seen] = []

    def render(self, request: WebRequest) -> bytes:
        """Record the request and answer."""
        self.seen.append(Seen.of(request))
        return self.body


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
