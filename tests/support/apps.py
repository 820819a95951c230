"""Applications for tests: a typed request surface and resources that record.

:class:`WebRequest` is the typed surface of ``twisted.web.server.Request`` that tests
use (Twisted's own is untyped).  :class:`Recorder` is a leaf resource that keeps a
:class:`Seen` snapshot of every request it renders; :class:`Hello` answers ``hello``
and notes when; :class:`Hold` keeps every request open until released.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import IO, Any, Protocol

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress, IProducer
from twisted.python.urlpath import URLPath
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from scgi_twisted import SCGIVariables, getSCGIVariables

__all__ = ["Hello", "Hold", "Recorder", "Seen", "WebRequest"]


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


class Hello(Resource):
    """Answers ``hello``; notes when each request was rendered."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.rendered: list[float] = []

    def render(self, request: WebRequest) -> bytes:
        """Note the time and answer."""
        self.rendered.append(time.monotonic())
        return b"hello"


class Hold(Resource):
    """Holds every request open until :meth:`release`."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.pending: list[WebRequest] = []
        self.served = 0

    def render(self, request: WebRequest) -> object:
        """Keep the request; answer later."""
        self.pending.append(request)
        return NOT_DONE_YET

    def release(self) -> int:
        """Finish every held request; return how many there were."""
        pending, self.pending = self.pending, []
        for request in pending:
            request.write(b"released")
            request.finish()
        self.served += len(pending)
        return len(pending)


class Big(Resource):
    """Answers ``size`` bytes at once (the whole response is buffered at once)."""

    isLeaf = True

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self.rendered = 0

    def render(self, request: WebRequest) -> bytes:
        """Answer the bytes."""
        self.rendered += 1
        return b"x" * self.size
