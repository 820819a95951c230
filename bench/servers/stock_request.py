"""The floor of a stock ``server.Request``: the least channel that feeds one.

It splits the netstring without checking it, copies the ``HTTP_*`` variables into
the request's headers, streams the body into ``request.content`` and calls
``requestReceived``; it writes ``Status:`` and the headers, then closes.  No limits,
no timeouts, no error answers, no mounting, no addresses from the variables: what
is left is the cost of twisted.web's ``Request`` itself on top of the minimal
protocol, which no channel that feeds stock requests can go below.  It is the
"straightforward channel" of the issue's calibration, measured side by side.
"""

from __future__ import annotations

import sys
from typing import Any

from _common import arguments, use_working_tree

use_working_tree()

from twisted.internet.address import IPv4Address  # noqa: E402
from twisted.internet.protocol import Protocol  # noqa: E402
from twisted.web.server import Site  # noqa: E402
from twisted_tree import root, serve  # noqa: E402

_PEER = IPv4Address("TCP", "127.0.0.1", 0)
_HOST = IPv4Address("TCP", "localhost", 80)


class StockRequestChannel(Protocol):
    """One request per connection, fed to ``site.requestFactory`` as is."""

    site: Any = None
    requestFactory: Any = None

    def __init__(self) -> None:
        self._buffer = b""
        self._request: Any = None
        self._remaining = 0
        self._line: tuple[bytes, bytes, bytes] = (b"", b"", b"")

    def dataReceived(self, data: bytes) -> None:
        """Parse the header block once complete, then stream the body."""
        if self._request is None:
            buffer = self._buffer + data
            colon = buffer.find(b":")
            end = colon + 1 + int(buffer[:colon]) if colon > 0 else -1
            if colon < 0 or len(buffer) <= end:
                self._buffer = buffer
                return
            strings = buffer[colon + 1 : end].split(b"\0")
            environ = dict(zip(strings[0::2], strings[1::2], strict=False))
            request = self._request = self.requestFactory(self)
            headers = request.requestHeaders
            for name, value in environ.items():
                if name.startswith(b"HTTP_"):
                    headers.addRawHeader(name[5:].replace(b"_", b"-").lower(), value)
            if environ.get(b"CONTENT_TYPE"):
                headers.addRawHeader(b"content-type", environ[b"CONTENT_TYPE"])
            self._remaining = int(environ[b"CONTENT_LENGTH"])
            request.gotLength(self._remaining)
            self._line = (
                environ[b"REQUEST_METHOD"],
                environ[b"REQUEST_URI"],
                environ[b"SERVER_PROTOCOL"],
            )
            data = buffer[end + 1 :]
        if self._remaining > 0 and data:
            piece = data[: self._remaining]
            self._remaining -= len(piece)
            self._request.handleContentChunk(piece)
        if self._remaining == 0:
            self._remaining = -1
            self._request.requestReceived(*self._line)

    # The channel surface twisted.web's Request uses.

    def getPeer(self) -> IPv4Address:
        """Return a fixed client address."""
        return _PEER

    def getHost(self) -> IPv4Address:
        """Return a fixed server address."""
        return _HOST

    def isSecure(self) -> bool:
        """Return False: the benchmark is plain."""
        return False

    def writeHeaders(
        self, version: bytes, code: bytes, reason: bytes, headers: Any
    ) -> None:
        """Write a CGI head."""
        lines = [b"Status: " + code + b" " + reason]
        for name, values in headers.getAllRawHeaders():
            if name != b"Transfer-Encoding":
                lines.extend(name + b": " + value for value in values)
        lines.append(b"\r\n")
        self.transport.write(b"\r\n".join(lines))

    def write(self, data: bytes) -> None:
        """Write body bytes."""
        self.transport.write(data)

    def writeSequence(self, data: list[bytes]) -> None:
        """Write body pieces."""
        self.transport.writeSequence(data)

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Register a producer on the transport."""
        self.transport.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        """Unregister the producer."""
        self.transport.unregisterProducer()

    def requestDone(self, request: Any) -> None:
        """Close: one request per connection."""
        self.transport.loseConnection()


class StockRequestSite(Site):
    """A ``Site`` whose connections are :class:`StockRequestChannel`."""

    protocol = StockRequestChannel  # type: ignore[assignment]


def main() -> None:
    """Serve the tree through the least channel that feeds stock requests.

    ``--scgi-request`` feeds :class:`scgi_twisted.SCGIRequest` instead: the least
    channel under scgi_twisted's own request class, without any of its checks.
    """
    scgiRequest = "--scgi-request" in sys.argv
    if scgiRequest:
        sys.argv.remove("--scgi-request")
    args = arguments(__doc__ or "", profile=True)
    site = StockRequestSite(root())
    if scgiRequest:
        from scgi_twisted import SCGIRequest

        site.requestFactory = SCGIRequest
    serve(
        site,
        args.listen.twisted_endpoint(),
        args.profile,
        args.access_log,
    )


if __name__ == "__main__":
    main()
